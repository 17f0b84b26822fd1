"""Loop descriptions: which plant signals feed the network, what it estimates, which PI closes the loop.

A loop file (TOML) looks like this (``docs/loops.md`` has the full reference)::

    [plant]
    builtin = "boiler"                  # or: file = "my_plant.json"   or inline A, B, C, D, Ts, ...

    [network]
    inputs = ["y:E", "u_prev:u1_fuel", "u:u2_steam_valve", "u:u3_feedwater"]
    output = 0                          # which network output is the estimate
    estimates = "p"                     # the plant output it stands in for (optional, for reports)

    [controller]
    type = "pi"
    form = "velocity"                   # or "positional"
    kp = 0.01                           # C(s) = kp + ki/s, discretised by ZOH at the plant's Ts
    ki = 0.0002
    actuator = "u1_fuel"
    reference = 108.0                   # set-point for the estimate, absolute units
    # u_min / u_max default to the plant's input limits

    [scaling]                           # optional; otherwise the model's metadata (or none)
    input = { raw_low = [...], raw_high = [...], net_low = -1.0, net_high = 1.0 }
    output = { raw_low = [...], raw_high = [...] }

Network input references (absolute plant units, before scaling):
``y:NAME`` a plant output; ``u:NAME`` a plant input that the loop holds at its operating value;
``u_prev:NAME`` the actuator's previous value u(k−1) (the velocity PI's state, which keeps the loop
causal); a bare number is a constant.  Feeding the *current* actuator value u(k) to the network would
close an algebraic loop through the estimate and is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certify.errors import LoopSpecError
from certify.loop.controllers import PIController
from certify.loop.plants import Plant, _load_toml, get_plant, load_plant_file, plant_from_mapping
from certify.networks import MinMaxScaling
from certify.schemas.files import check_regular_file
from certify.schemas.loop import plain, validate_loop


@dataclass(frozen=True)
class SignalRef:
    """One network input: ``kind`` in {"y", "u", "u_prev", "const"}, ``index`` into the plant's signals."""

    kind: str
    index: int = -1
    value: float = 0.0
    label: str = ""

    @classmethod
    def parse(cls, text: Any, plant: Plant, actuator: int) -> SignalRef:
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            return cls("const", value=float(text), label=str(text))
        if not isinstance(text, str):
            raise LoopSpecError(f"network input {text!r}: expected 'y:NAME', 'u:NAME', 'u_prev:NAME' or a number.")
        kind, _, name = text.partition(":")
        if not name:
            try:
                return cls("const", value=float(text), label=text)
            except ValueError:
                raise LoopSpecError(
                    f"network input {text!r}: expected 'y:NAME', 'u:NAME', 'u_prev:NAME' or a number."
                ) from None
        if kind == "y":
            return cls("y", plant.index("output", name), label=text)
        if kind in ("u", "u_prev"):
            idx = plant.index("input", name)
            if kind == "u" and idx == actuator:
                raise LoopSpecError(
                    f"network input {text!r} is the actuator's current value u(k): the estimate would depend on "
                    f"the control it determines (an algebraic loop). Use 'u_prev:{name}' (u(k−1)) instead."
                )
            if kind == "u_prev" and idx != actuator:
                raise LoopSpecError(
                    f"network input {text!r}: only the actuator ({plant.input_names[actuator]}) has a previous "
                    "value in the loop; other plant inputs are held at their operating values (use 'u:NAME')."
                )
            return cls(kind, idx, label=text)
        raise LoopSpecError(f"network input {text!r}: unknown kind {kind!r}; use y, u, u_prev or a number.")


@dataclass(frozen=True)
class LoopSpec:
    """A plant, a network that estimates one plant signal, and a saturated PI on one actuator."""

    plant: Plant
    inputs: tuple[SignalRef, ...]
    output: int
    controller: PIController
    actuator: int
    reference: float
    estimates: int | None = None
    input_scaling: MinMaxScaling | None = None
    output_scaling: MinMaxScaling | None = None
    name: str = "loop"

    def describe(self) -> dict[str, Any]:
        p = self.plant
        return {
            "name": self.name,
            "plant": p.describe(),
            "network_inputs": [r.label for r in self.inputs],
            "network_output": self.output,
            "estimates": None if self.estimates is None else p.output_names[self.estimates],
            "actuator": p.input_names[self.actuator],
            "reference": self.reference,
            "controller": self.controller.describe(),
            "input_scaling": None if self.input_scaling is None else self.input_scaling.to_dict(),
            "output_scaling": None if self.output_scaling is None else self.output_scaling.to_dict(),
        }


def _scaling(data: Any, what: str) -> MinMaxScaling | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise LoopSpecError(f"[scaling] {what} must be a table with raw_low and raw_high.")
    unknown = set(data) - {"raw_low", "raw_high", "net_low", "net_high"}
    if unknown or "raw_low" not in data or "raw_high" not in data:
        raise LoopSpecError(
            f"[scaling] {what}: needs raw_low and raw_high (optional net_low, net_high); got {sorted(data)}."
        )
    from certify.errors import WeightError

    try:
        return MinMaxScaling(**{k: data[k] for k in data})
    except WeightError as exc:
        raise LoopSpecError(f"[scaling] {what}: {exc}") from None


def loop_from_mapping(
    data: Mapping[str, Any], *, base_dir: Path | None = None, name: str = "loop", where: str | None = None,
    max_states: int | None = None, deadline: Any = None,
) -> LoopSpec:
    """Build a :class:`LoopSpec` from the parsed loop file (see the module docstring).

    The mapping is checked against :data:`certify.schemas.LOOP_SCHEMA` first (exact types, named fields,
    did-you-mean for unknown keys); a plant ``file`` is resolved relative to ``base_dir``.

    Examples
    --------
    >>> body = {"plant": {"builtin": "boiler"}, "network": {"inputs": ["y:E"]},
    ...         "controller": {"kp": 0.01, "ki": 0.0002, "actuator": "u1_fuel", "reference": 108.0}}
    >>> loop_from_mapping(body).plant.name
    'boiler'
    >>> body["scaling"] = {"input": {"raw_low": [0.0], "raw_high": [1.0], "net_low": "-1"}}
    >>> loop_from_mapping(body)
    Traceback (most recent call last):
    ...
    certify.errors.LoopSpecError: loop: [scaling] input.net_low must be a number, got the string '-1'.
    """
    where = where or name
    validate_loop(data, where)
    try:
        return _loop_from_valid(plain(data), base_dir, name, where, max_states, deadline)
    except LoopSpecError as exc:
        text = str(exc)
        if text.startswith(("loop ", "plant ", where)):
            raise
        raise LoopSpecError(f"{where}: {text}") from None


def _loop_from_valid(
    data: dict[str, Any], base_dir: Path | None, name: str, where: str, max_states: int | None, deadline: Any,
) -> LoopSpec:
    pdata = dict(data["plant"])
    if "builtin" in pdata:
        plant = get_plant(pdata["builtin"])
    elif "file" in pdata:
        f = Path(pdata["file"])
        plant = load_plant_file(f if f.is_absolute() or base_dir is None else base_dir / f, max_states=max_states,
                                deadline=deadline)
    else:
        plant = plant_from_mapping(pdata, source=name, where=where, table="[plant]", max_states=max_states,
                                   deadline=deadline)

    c = dict(data["controller"])
    ctype = c.pop("type", "pi")
    if ctype != "pi":
        raise LoopSpecError(f"{where}: controller type {ctype!r} is not supported; supported: pi.")
    for req in ("kp", "ki", "actuator", "reference"):
        if req not in c:
            raise LoopSpecError(f"{where}: [controller] needs {req!r}.")
    actuator = plant.index("input", c.pop("actuator"))
    reference = c.pop("reference")
    if not isinstance(reference, (int, float)) or isinstance(reference, bool):
        raise LoopSpecError(f"{where}: [controller] reference must be a number.")
    u_min = c.pop("u_min", float(plant.u_min[actuator]))
    u_max = c.pop("u_max", float(plant.u_max[actuator]))
    form = c.pop("form", "velocity")
    kp, ki = c.pop("kp"), c.pop("ki")
    if c:
        raise LoopSpecError(f"{where}: unknown [controller] key(s) {', '.join(sorted(c))}.")
    controller = PIController(kp=kp, ki=ki, Ts=plant.Ts, u_min=u_min, u_max=u_max, form=form,
                              u_bias=float(plant.u_op[actuator]))

    n = dict(data["network"])
    if "inputs" not in n or not isinstance(n["inputs"], list) or not n["inputs"]:
        raise LoopSpecError(f"{where}: [network] needs a non-empty 'inputs' list.")
    inputs = tuple(SignalRef.parse(t, plant, actuator) for t in n.pop("inputs"))
    output = n.pop("output", 0)
    if not isinstance(output, int) or isinstance(output, bool) or output < 0:
        raise LoopSpecError(f"{where}: [network] output must be a non-negative integer.")
    est = n.pop("estimates", None)
    estimates = None if est is None else plant.index("output", est)
    if n:
        raise LoopSpecError(f"{where}: unknown [network] key(s) {', '.join(sorted(n))}.")
    sc = data.get("scaling", {}) or {}
    return LoopSpec(
        plant=plant, inputs=inputs, output=output, controller=controller, actuator=actuator,
        reference=float(reference), estimates=estimates,
        input_scaling=_scaling(sc.get("input"), "input"), output_scaling=_scaling(sc.get("output"), "output"),
        name=str(data.get("name", name)),
    )


def load_loop_file(path: str | Path, *, max_states: int | None = None, deadline: Any = None) -> LoopSpec:
    """Read a TOML (or JSON, by the ``.json`` suffix) loop file; every problem is a :class:`~certify.errors.LoopSpecError`.

    Parameters
    ----------
    path : str or Path
        A regular file (a FIFO, a device or a directory is refused without being opened).
    max_states : int, optional
        State budget of the plant (default :func:`certify.loop.plants.max_plant_states`).
    deadline : certify.deadline.Deadline, optional
        Checked between stages.

    Examples
    --------
    >>> load_loop_file("/no/such/loop.toml")
    Traceback (most recent call last):
    ...
    certify.errors.LoopSpecError: loop file /no/such/loop.toml does not exist.
    """
    import json

    path = Path(path)
    if check_regular_file(path, "loop file", error=LoopSpecError) == 0:
        raise LoopSpecError(f"loop file {path} is empty.")
    if deadline is not None:
        deadline.check("reading the loop file")
    try:
        if path.suffix.lower() == ".json":
            from certify.loop.plants import MAX_TEXT_BYTES, _decode, read_regular_file

            data = json.loads(_decode(read_regular_file(path, "loop file", error=LoopSpecError,
                                                        max_bytes=MAX_TEXT_BYTES), path))
        else:
            data = _load_toml(path)
    except LoopSpecError:
        raise
    except RecursionError:
        raise LoopSpecError(f"loop file {path} cannot be read: it is nested too deeply.") from None
    except MemoryError:
        raise LoopSpecError(f"loop file {path} cannot be read: it does not fit in memory.") from None
    except Exception as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise LoopSpecError(f"loop file {path} is not valid {kind}: {exc}") from None
    return loop_from_mapping(data, base_dir=path.parent, name=path.stem, where=f"loop file {path}",
                             max_states=max_states, deadline=deadline)


# Default loops for the built-in plants (``--plant NAME``): project-chosen gains, documented in docs/loops.md.
DEFAULT_LOOPS: dict[str, dict[str, Any]] = {
    "boiler": {
        "name": "boiler-pressure-virtual-sensor",
        "plant": {"builtin": "boiler"},
        "network": {
            "inputs": ["y:E", "u_prev:u1_fuel", "u:u2_steam_valve", "u:u3_feedwater"],
            "output": 0,
            "estimates": "p",
        },
        "controller": {"type": "pi", "form": "velocity", "kp": 0.01, "ki": 0.0002,
                       "actuator": "u1_fuel", "reference": 108.0},
    },
    "quadruple_tank": {
        "name": "quadruple-tank-level-virtual-sensor",
        "plant": {"builtin": "quadruple_tank"},
        "network": {"inputs": ["y:h2", "u_prev:qa", "u:qb"], "output": 0, "estimates": "h1"},
        "controller": {"type": "pi", "form": "velocity", "kp": 1e-4, "ki": 2e-6,
                       "actuator": "qa", "reference": 0.6537},
    },
}


def default_loop(plant_name: str) -> LoopSpec:
    """The built-in loop for ``--plant NAME``."""
    if plant_name not in DEFAULT_LOOPS:
        get_plant(plant_name)  # raises the "unknown plant" error listing the built-ins
        raise LoopSpecError(f"plant {plant_name!r} has no default loop; give a loop file with --loop.")
    return loop_from_mapping(DEFAULT_LOOPS[plant_name], name=plant_name)
