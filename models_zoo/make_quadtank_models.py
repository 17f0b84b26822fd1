"""Train the bundled quadruple-tank models (Bonassi, Farina & Scattolini 2021, §V setting,
CPU-sized) on simulated data.

Reproducible: ``python models_zoo/make_quadtank_models.py`` (CPU, about a minute).  Data: the nonlinear
HD-MPC four-tank model (``certify.datasets.quadruple_tank_dataset``, MPRS flows, Ts = 15 s), inputs (qa, qb)
and outputs (h1, h2) min-max scaled to [−1, 1]; the ranges are stored as certify metadata.

* ``quadtank_gru_diss.onnx``  — deep GRU (2 × 6), trained with the δISS penalty: certified δISS.
* ``quadtank_lstm_diss.onnx`` — LSTM (1 × 6), trained with the δISS penalty: certified δISS.
* ``quadtank_gru_plain.onnx`` — the same deep GRU trained without the penalty: not certified.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from certify.datasets import quadruple_tank_dataset
from certify.networks import MinMaxScaling
from certify.train.metrics import metrics
from certify.train.modules import GRUNet, LSTMNet, export_onnx
from certify.train.penalties import Penalty
from certify.train.residuals import gated_residuals
from certify.train.trainer import TrainConfig, simulate, train

HERE = Path(__file__).resolve().parent


def data():
    d = quadruple_tank_dataset(T=1600, seed=3)
    s_in = MinMaxScaling(raw_low=d.u.min(0), raw_high=d.u.max(0))
    s_out = MinMaxScaling(raw_low=d.y.min(0), raw_high=d.y.max(0))
    U, Y = s_in.to_net(d.u), s_out.to_net(d.y)
    return U, Y, s_in, s_out


def main() -> None:
    torch.manual_seed(0)
    U, Y, s_in, s_out = data()
    n_tr, n_val = 1000, 300
    split = dict(u=U[:n_tr], y=Y[:n_tr], u_val=U[n_tr:n_tr + n_val], y_val=Y[n_tr:n_tr + n_val])
    meta = {
        "certify.input_range": json.dumps({"low": [-1.0, -1.0], "high": [1.0, 1.0]}),
        "certify.input_scaling": json.dumps(s_in.to_dict()),
        "certify.output_scaling": json.dumps(s_out.to_dict()),
        "certify.note": "quadruple-tank model made by models_zoo/make_quadtank_models.py",
    }
    cfg = TrainConfig(epochs=80, lr=1e-2, seq_len=80, washout=10, batches_per_epoch=4, seed=0, device="cpu",
                      progress=False)
    models = {
        "quadtank_gru_diss": (GRUNet(2, 6, num_layers=2, n_out=2), True),
        "quadtank_lstm_diss": (LSTMNet(2, 6, num_layers=1, n_out=2), True),
        "quadtank_gru_plain": (GRUNet(2, 6, num_layers=2, n_out=2), False),
    }
    for name, (module, penalised) in models.items():
        kw = {}
        if penalised:
            kw = dict(residuals=lambda m: gated_residuals(m).diss, penalty=Penalty(weight=0.05, eps=0.05))
        cfg_i = cfg if penalised else TrainConfig(**{**cfg.__dict__, "require_certified": False})
        res = train(module, split["u"], split["y"], split["u_val"], split["y_val"], cfg_i, **kw)
        pred = simulate(module, U[n_tr + n_val:])
        fit = metrics(Y[n_tr + n_val:], pred)["fit"]
        export_onnx(module, str(HERE / f"{name}.onnx"), seq_len=20, metadata=meta)
        worst = gated_residuals(module).worst("diss")
        print(name, json.dumps({"best_epoch": res.best_epoch, "test_fit": np.round(fit, 2).tolist(),
                                "worst_delta_iss_residual": round(worst, 4)}))


if __name__ == "__main__":
    main()
