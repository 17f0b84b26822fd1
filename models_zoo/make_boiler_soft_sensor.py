"""Train the bundled boiler virtual pressure sensors (LP-GRNN) on data simulated from the nonlinear boiler.

Reproducible: ``python models_zoo/make_boiler_soft_sensor.py`` (CPU, about a minute).  Writes, for each
variant, ``<name>.onnx`` (one-step cell graph with certify metadata), ``<name>.pt`` (state dict) with its
``<name>.pt.certify.json`` sidecar:

* ``boiler_lpgrnn_linear``  — LP-GRNN with an explicit linear term (a direct path from the inputs to the
  estimate, as in the gR-SS-NN of Schoukens 2021).  With the built-in boiler loop it certifies.
* ``boiler_lpgrnn_plain``   — the same without the linear term.  Its estimate has no linear path from the
  measurements, so the velocity PI's integrator is open in the "all network slopes zero" member of the
  sector class: no global certificate can exist, and ``certify`` says why (docs/theory.md §9).

Data: ``certify.datasets.boiler_pressure_dataset`` (inputs E, u1(k−1), u2, u3; output p; Ts = 10 s),
min-max scaled to [−1, 1] with the ranges stored in the model metadata.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from certify.datasets import boiler_pressure_dataset
from certify.networks import InputRange, LinearHead, LPGRNNLayer, MinMaxScaling, ModelInfo, Network

HERE = Path(__file__).resolve().parent


class LPGRNN(torch.nn.Module):
    """Torch mirror of certify.networks.LPGRNNLayer + LinearHead (float64)."""

    def __init__(self, n_in: int, n: int, n_r: int, linear: bool, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        r = lambda *s, scale=0.3: torch.nn.Parameter(scale * torch.randn(*s, generator=g, dtype=torch.float64))
        self.W_r, self.U_r, self.b_r = r(n_r, n_in), r(n_r, n, scale=0.1), r(n_r)
        self.W_h, self.U_h, self.V_h, self.b_h = r(n, n_in), r(n, n, scale=0.1), r(n, n_r, scale=0.1), r(n)
        self.theta_z = torch.nn.Parameter(torch.full((n,), 1.0, dtype=torch.float64))
        self.W_y, self.b_y = r(1, n), torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        self.D = r(1, n_in, scale=0.1) if linear else None

    @property
    def n_in(self) -> int:
        return self.W_h.shape[1]

    @property
    def n_state(self) -> int:
        return self.W_h.shape[0]

    def step(self, h: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.sigmoid(self.theta_z)
        rr = torch.sigmoid(u @ self.W_r.T + h @ self.U_r.T + self.b_r)
        cand = torch.tanh(u @ self.W_h.T + h @ self.U_h.T + rr @ self.V_h.T + self.b_h)
        h = z * h + (1 - z) * cand
        y = h @ self.W_y.T + self.b_y
        if self.D is not None:
            y = y + u @ self.D.T
        return h, y

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # u: (B, T, n_in)
        h = torch.zeros(u.shape[0], self.n_state, dtype=u.dtype)
        ys = []
        for k in range(u.shape[1]):
            h, y = self.step(h, u[:, k])
            ys.append(y)
        return torch.stack(ys, dim=1)

    def to_network(self, info: ModelInfo) -> Network:
        t = lambda p: p.detach().cpu().numpy().astype(np.float64)
        layer = LPGRNNLayer(W_r=t(self.W_r), U_r=t(self.U_r), b_r=t(self.b_r), W_h=t(self.W_h), U_h=t(self.U_h),
                            V_h=t(self.V_h), b_h=t(self.b_h), z=t(torch.sigmoid(self.theta_z)))
        head = LinearHead(W=t(self.W_y), b=t(self.b_y), D=None if self.D is None else t(self.D))
        return Network(layers=(layer,), head=head, info=info)


def train_model(linear: bool, *, epochs: int, seed: int = 0, n_hidden: int = 4, n_gate: int = 2,
          readout_penalty: float = 1e-3, Ts: float = 10.0, T_train: int = 3000) -> tuple[Network, dict]:
    torch.manual_seed(seed)
    data = boiler_pressure_dataset(T=T_train, seed=seed, Ts=Ts)
    val = boiler_pressure_dataset(T=T_train // 3, seed=seed + 1, Ts=Ts)
    lo_u, hi_u = data.u.min(0), data.u.max(0)
    pad = 0.1 * (hi_u - lo_u)
    s_in = MinMaxScaling(raw_low=lo_u - pad, raw_high=hi_u + pad)
    lo_y, hi_y = data.y.min(0), data.y.max(0)
    pad_y = 0.1 * (hi_y - lo_y)
    s_out = MinMaxScaling(raw_low=lo_y - pad_y, raw_high=hi_y + pad_y)
    U = torch.tensor(s_in.to_net(data.u))
    Y = torch.tensor(s_out.to_net(data.y))
    seq, washout, batch = 100, 10, 16
    starts = np.arange(0, U.shape[0] - seq, seq // 2)
    model = LPGRNN(4, n_hidden, n_gate, linear, seed)
    if linear:
        # explicit linear term initialised by least squares (Schoukens 2021: start from a linear approximation);
        # the recurrent part then learns the residual.
        Xls = np.column_stack([U.numpy(), np.ones(U.shape[0])])
        coef, *_ = np.linalg.lstsq(Xls, Y.numpy()[:, 0], rcond=None)
        with torch.no_grad():
            model.D.copy_(torch.tensor(coef[None, :4]))
            model.b_y.copy_(torch.tensor(coef[4:]))
            model.W_y.mul_(0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for _ in range(max(1, len(starts) // batch)):
            idx = rng.choice(starts, size=batch)
            ub = torch.stack([U[i : i + seq] for i in idx])
            yb = torch.stack([Y[i : i + seq] for i in idx])
            loss = torch.mean((model(ub)[:, washout:] - yb[:, washout:]) ** 2)
            # keep the recurrent correction small next to the linear term (certifiable closed loops)
            loss = loss + readout_penalty * torch.sum(model.W_y**2)
            opt.zero_grad()
            loss.backward()
            opt.step()
    info = ModelInfo(
        input_names=data.input_names, output_names=data.output_names,
        input_range=InputRange.symmetric(4), input_scaling=s_in, output_scaling=s_out,
        source_format="python",
    )
    net = model.to_network(info)
    model.network = net
    # validation: free-run FIT on held-out data (canonical simulation, plant units)
    pred = s_out.to_raw(net.simulate(s_in.to_net(val.u)).y)
    err = val.y[50:] - pred[50:]
    fit = 100.0 * (1.0 - np.linalg.norm(err) / np.linalg.norm(val.y[50:] - val.y[50:].mean()))
    return model, {"fit_percent": float(fit), "rmse": float(np.sqrt(np.mean(err**2)))}


def metadata(net: Network) -> dict[str, str]:
    """certify metadata keys (docs/formats.md) for the ONNX file."""
    info = net.info
    return {
        "certify.input_range": json.dumps(info.input_range.to_dict()),
        "certify.input_scaling": json.dumps(info.input_scaling.to_dict()),
        "certify.output_scaling": json.dumps(info.output_scaling.to_dict()),
        "certify.input_names": json.dumps(list(info.input_names)),
        "certify.output_names": json.dumps(list(info.output_names)),
        "certify.note": "LP-GRNN virtual pressure sensor for the built-in boiler loop; "
        "made by models_zoo/make_boiler_soft_sensor.py",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    from certify.train.modules import export_step_onnx

    for name, linear in (("boiler_lpgrnn_linear", True), ("boiler_lpgrnn_plain", False)):
        model, metrics = train_model(linear, epochs=args.epochs)
        export_step_onnx(model.float(), str(HERE / f"{name}.onnx"), metadata=metadata(model.network))
        print(name, json.dumps(metrics))


if __name__ == "__main__":
    main()
