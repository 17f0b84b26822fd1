"""Loops built in Python: plants from python-control or matrices, PI gains as arguments, gain sweeps.

:func:`make_loop` gives the same :class:`~certify.loop.spec.LoopSpec` a loop file would (it goes through
the same validation), from

* a built-in plant name, a :class:`~certify.loop.plants.Plant`, a python-control ``StateSpace``
  (discrete, or continuous with ``Ts`` for a zero-order-hold discretisation), or a mapping of
  matrices (``A``, ``B``, ``C``, ``D``, ``Ts`` and the optional fields of a plant file);
* the network's inputs (``"y:NAME"``, ``"u:NAME"``, ``"u_prev:NAME"``, numbers) and the PI's gains.

``certify.check(model, loop=make_loop(...))`` then checks it; :func:`sweep_pi` maps the certified
``(kp, ki)`` region.

>>> import numpy as np
>>> spec = make_loop({"A": [[0.9]], "B": [[0.1]], "C": [[1.0]], "Ts": 1.0, "u_min": [-1.0], "u_max": [1.0]},
...                  inputs=["y:y0"], kp=0.5, ki=0.1, reference=0.2)
>>> spec.plant.n_states, spec.controller.kp, spec.inputs[0].label
(1, 0.5, 'y:y0')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from certify.errors import LoopSpecError
from certify.loop.plants import Plant, get_plant
from certify.loop.spec import LoopSpec, loop_from_mapping

_PLANT_FIELDS = ("A", "B", "C", "D", "Ts", "name", "description", "input_names", "output_names", "state_names",
                 "x_op", "u_op", "y_op", "u_min", "u_max")


def _listify(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return list(v)
    return v


def plant_mapping(plant: Any, *, Ts: float | None = None) -> dict[str, Any]:
    """The plant-file mapping for a :class:`Plant`, a python-control ``StateSpace`` or a mapping.

    A continuous-time ``StateSpace`` (``dt == 0``) needs ``Ts`` and is discretised by zero-order hold;
    a discrete one keeps its own sampling time (``Ts``, if given, must agree).
    """
    if isinstance(plant, Plant):
        data: dict[str, Any] = {f.name: getattr(plant, f.name) for f in fields(plant) if f.name in _PLANT_FIELDS}
        data = {k: _listify(v) for k, v in data.items() if v is not None and v != ""}
        for k in ("input_names", "output_names", "state_names"):
            if not data.get(k):
                data.pop(k, None)
        return data
    if hasattr(plant, "A") and hasattr(plant, "dt") and hasattr(plant, "isctime"):  # python-control StateSpace
        data = {k: np.asarray(getattr(plant, k), dtype=np.float64).tolist() for k in "ABCD"}
        continuous = bool(plant.isctime(strict=True)) if plant.dt is not None else False
        if continuous:
            if Ts is None:
                raise LoopSpecError("a continuous-time plant needs a sampling time: make_loop(..., Ts=SECONDS).")
            data.update(Ts=float(Ts), continuous=True)
        else:
            dt = plant.dt
            if dt is None or dt is True:
                if Ts is None:
                    raise LoopSpecError("the discrete-time plant has no numeric sampling time: pass Ts=SECONDS.")
                dt = Ts
            if Ts is not None and abs(float(Ts) - float(dt)) > 1e-12 * max(1.0, abs(float(dt))):
                raise LoopSpecError(f"Ts = {Ts} disagrees with the plant's sampling time {dt}.")
            data["Ts"] = float(dt)
        for attr, key in (("input_labels", "input_names"), ("output_labels", "output_names"),
                          ("state_labels", "state_names")):
            labels = getattr(plant, attr, None)
            if labels:
                data[key] = [str(s) for s in labels]
        name = getattr(plant, "name", None)
        if isinstance(name, str) and name:
            data["name"] = name
        return data
    if isinstance(plant, Mapping):
        data = {k: _listify(v) for k, v in plant.items()}
        if Ts is not None and "Ts" not in data:
            data["Ts"] = float(Ts)
        return data
    raise LoopSpecError(f"plant must be a built-in name, a Plant, a python-control StateSpace or a mapping of "
                        f"matrices, not {type(plant).__name__}.")


def make_loop(
    plant: Any,
    *,
    inputs: Sequence[Any],
    kp: float,
    ki: float,
    reference: float,
    actuator: int | str = 0,
    output: int = 0,
    estimates: int | str | None = None,
    form: str = "velocity",
    u_min: float | None = None,
    u_max: float | None = None,
    Ts: float | None = None,
    input_scaling: Mapping[str, Any] | None = None,
    output_scaling: Mapping[str, Any] | None = None,
    name: str = "loop",
) -> LoopSpec:
    """A closed loop from Python objects (see the module docstring); the same checks as a loop file.

    Parameters
    ----------
    plant : str, Plant, control.StateSpace or Mapping
        The plant (a built-in name such as ``"boiler"`` uses that plant).
    inputs : sequence
        Network inputs, as in a loop file's ``[network] inputs``.
    kp, ki, reference : float
        PI gains and the set-point for the estimate (absolute units).
    actuator : int or str
        The plant input the PI drives.
    output, estimates : int, int or str
        Which network output is the estimate, and which plant output it stands for.
    form, u_min, u_max : str, float, float
        ``"velocity"`` or ``"positional"``; actuator limits (default: the plant's).
    Ts : float, optional
        Sampling time for a continuous-time plant (zero-order hold).
    input_scaling, output_scaling : Mapping, optional
        ``{"raw_low": [...], "raw_high": [...], "net_low": -1, "net_high": 1}``.
    """
    if isinstance(plant, str):
        plant_obj = get_plant(plant)
        pdata: dict[str, Any] = {"builtin": plant}
    else:
        pdata = plant_mapping(plant, Ts=Ts)
        plant_obj = None
    names = (plant_obj.input_names if plant_obj is not None else pdata.get("input_names")) or []
    out_names = (plant_obj.output_names if plant_obj is not None else pdata.get("output_names")) or []
    n_in = plant_obj.n_inputs if plant_obj is not None else np.asarray(pdata["B"]).shape[1]
    n_out = plant_obj.n_outputs if plant_obj is not None else np.asarray(pdata["C"]).shape[0]
    if not names:
        names = [f"u{i}" for i in range(n_in)]
        pdata.setdefault("input_names", names)
    if not out_names:
        out_names = [f"y{i}" for i in range(n_out)]
        pdata.setdefault("output_names", out_names)
    if isinstance(actuator, (int, np.integer)) and not isinstance(actuator, bool):
        if not 0 <= int(actuator) < len(names):
            raise LoopSpecError(f"actuator {actuator} is not one of the plant's {len(names)} inputs.")
        actuator = names[int(actuator)]
    controller: dict[str, Any] = {"type": "pi", "form": form, "kp": kp, "ki": ki, "actuator": actuator,
                                  "reference": reference}
    if u_min is not None:
        controller["u_min"] = u_min
    if u_max is not None:
        controller["u_max"] = u_max
    network: dict[str, Any] = {"inputs": list(inputs), "output": output}
    if estimates is not None:
        network["estimates"] = out_names[estimates] if isinstance(estimates, (int, np.integer)) else estimates
    body: dict[str, Any] = {"name": name, "plant": pdata, "network": network, "controller": controller}
    scaling = {k: dict(v) for k, v in (("input", input_scaling), ("output", output_scaling)) if v is not None}
    if scaling:
        body["scaling"] = {k: {kk: _listify(vv) for kk, vv in v.items()} for k, v in scaling.items()}
    return loop_from_mapping(body, name=name)


@dataclass(frozen=True)
class PISweep:
    """Verdicts of a loop over a grid of PI gains (rows: ``ki``, columns: ``kp``).

    ``verdicts[i][j]`` is the verdict for ``ki[i]``, ``kp[j]``; ``margins`` the deciding check's margin.
    """

    kp: tuple[float, ...]
    ki: tuple[float, ...]
    verdicts: tuple[tuple[str, ...], ...]
    margins: tuple[tuple[float | None, ...], ...]

    @property
    def certified(self) -> np.ndarray:
        """Boolean grid: where the loop is certified."""
        return np.array([[v == "certified" for v in row] for row in self.verdicts])

    def chart(self) -> str | None:
        """An inline SVG map of the verdicts over ``(kp, ki)``."""
        from certify.report.plots import verdict_map

        return verdict_map(self.kp, self.ki, self.verdicts)

    def to_html(self) -> str:
        """A self-contained page with the map and the table."""
        import html

        rows = "".join(
            "<tr><th>" + f"{ki:.4g}" + "</th>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
            for ki, row in zip(self.ki, self.verdicts))
        head = "<tr><th>ki \\ kp</th>" + "".join(f"<th>{kp:.4g}</th>" for kp in self.kp) + "</tr>"
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>certify PI sweep</title>"
                "</head><body><h1>Certified PI gains</h1>" + (self.chart() or "")
                + f"<table border=\"1\">{head}{rows}</table></body></html>\n")


def sweep_pi(net: Any, loop: LoopSpec, kp: Sequence[float], ki: Sequence[float], *, method: str = "auto",
             solver: str | None = None, timeout: float | None = None) -> PISweep:
    """Check ``loop`` around ``net`` for every ``(kp, ki)`` of a grid (the LMI only: no search, no simulation).

    >>> import numpy as np
    >>> from certify.networks import ElmanLayer, LinearHead, Network
    >>> net = Network((ElmanLayer(W=np.zeros((1, 4)), U=[[0.5]], b=[0.0]),),
    ...               head=LinearHead(W=[[0.1]], b=[-30.0], D=[[1.2, 0, 0, 0]]))
    >>> from certify.loop.spec import default_loop
    >>> s = sweep_pi(net, default_loop("boiler"), kp=[0.01], ki=[0.0002])
    >>> s.verdicts
    (('certified',),)
    """
    from certify.loop.check import check_closed_loop
    from certify.report.verdict import decide
    from certify.results import Property

    try:
        kp = [float(v) for v in kp]
        ki = [float(v) for v in ki]
    except (TypeError, ValueError):
        raise LoopSpecError("sweep_pi: kp and ki must be sequences of numbers.") from None
    if not kp or not ki or not all(np.isfinite(kp + ki)):
        raise LoopSpecError("sweep_pi: kp and ki must be non-empty sequences of finite numbers.")
    verdicts, margins = [], []
    for k_i in ki:
        vrow, mrow = [], []
        for k_p in kp:
            spec = replace(loop, controller=replace(loop.controller, kp=float(k_p), ki=float(k_i)))
            out = check_closed_loop(net, loop=spec, method=method, solver=solver, timeout=timeout, simulate=False)
            d = decide(out.checks, (Property.GAS,), "loop")
            vrow.append(d.verdict.value)
            main = next((c for c in out.checks if c.name == "loop.gas"), None)
            mrow.append(None if main is None or main.margin is None else float(main.margin))
        verdicts.append(tuple(vrow))
        margins.append(tuple(mrow))
    return PISweep(tuple(map(float, kp)), tuple(map(float, ki)), tuple(verdicts), tuple(margins))
