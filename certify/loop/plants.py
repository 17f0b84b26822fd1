"""LTI plants in deviation variables: validation, ZOH discretisation, file loading, built-in registry.

A :class:`Plant` is a discrete-time LTI system ``δx⁺ = A δx + B δu``, ``δy = C δx + D δu`` about an
operating point ``(x°, u°, y°)``; absolute signals are ``x = x° + δx`` and so on.  Continuous models
are discretised by exact zero-order hold (``scipy.signal.cont2discrete``).  Input limits are absolute
(the saturation of the controller acts on absolute values; see ``certify.loop.controllers``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from certify.errors import LoopSpecError


def _mat(owner: str, name: str, value: Any, shape: tuple[int | None, ...]) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise LoopSpecError(f"{owner}: {name} is not a numeric array.") from None
    if arr.ndim == 1 and len(shape) == 2 and shape[0] == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise LoopSpecError(f"{owner}: {name} has shape {tuple(arr.shape)}, expected {want}.")
    if not np.all(np.isfinite(arr)):
        raise LoopSpecError(f"{owner}: {name} contains NaN or Inf.")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class Plant:
    """Discrete-time LTI plant in deviation variables about an operating point.

    Parameters
    ----------
    A, B, C, D : array_like
        ``δx⁺ = A δx + B δu``, ``δy = C δx + D δu`` (sampled with period ``Ts``).
    Ts : float
        Sampling time in seconds (> 0).
    name, description : str
    input_names, output_names, state_names : tuple of str
    x_op, u_op, y_op : array_like
        Operating point (absolute units); zeros when not given.
    u_min, u_max : array_like
        Absolute input limits (``-inf``/``inf`` allowed).

    >>> p = Plant(A=[[0.5]], B=[[1.0]], C=[[1.0]], D=[[0.0]], Ts=1.0, name="toy")
    >>> p.n_states, p.n_inputs, p.n_outputs, p.is_schur
    (1, 1, 1, True)
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray
    Ts: float
    name: str = "plant"
    description: str = ""
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()
    x_op: np.ndarray | None = None
    u_op: np.ndarray | None = None
    y_op: np.ndarray | None = None
    u_min: np.ndarray | None = None
    u_max: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        o = f"Plant {self.name!r}"
        A = _mat(o, "A", self.A, (None, None))
        n = A.shape[0]
        A = _mat(o, "A", A, (n, n))
        B = _mat(o, "B", self.B, (n, None))
        m = B.shape[1]
        C = _mat(o, "C", self.C, (None, n))
        p = C.shape[0]
        D = _mat(o, "D", np.zeros((p, m)) if self.D is None else self.D, (p, m))
        for k, v in {"A": A, "B": B, "C": C, "D": D}.items():
            object.__setattr__(self, k, v)
        if not (isinstance(self.Ts, (int, float)) and np.isfinite(self.Ts) and self.Ts > 0):
            raise LoopSpecError(f"{o}: Ts must be a positive number of seconds, got {self.Ts!r}.")
        object.__setattr__(self, "Ts", float(self.Ts))
        defaults = {"x_op": (n, 0.0), "u_op": (m, 0.0), "y_op": (p, 0.0), "u_min": (m, -np.inf), "u_max": (m, np.inf)}
        for k, (size, fill) in defaults.items():
            v = getattr(self, k)
            try:
                arr = np.full(size, fill) if v is None else np.array(v, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise LoopSpecError(f"{o}: {k} is not a list of numbers.") from None
            if arr.shape != (size,):
                raise LoopSpecError(f"{o}: {k} has {arr.size} entries, expected {size}.")
            if np.any(np.isnan(arr)):
                raise LoopSpecError(f"{o}: {k} contains NaN.")
            arr.setflags(write=False)
            object.__setattr__(self, k, arr)
        if np.any(self.u_min > self.u_max):
            raise LoopSpecError(f"{o}: u_min exceeds u_max for some input.")
        if np.any((self.u_op < self.u_min) | (self.u_op > self.u_max)):
            raise LoopSpecError(f"{o}: the operating input u_op lies outside [u_min, u_max].")
        for k, size, prefix in (("input_names", m, "u"), ("output_names", p, "y"), ("state_names", n, "x")):
            names = tuple(getattr(self, k)) or tuple(f"{prefix}{i + 1}" for i in range(size))
            if len(names) != size:
                raise LoopSpecError(f"{o}: {k} has {len(names)} names, expected {size}.")
            object.__setattr__(self, k, names)

    @property
    def n_states(self) -> int:
        return self.A.shape[0]

    @property
    def n_inputs(self) -> int:
        return self.B.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.C.shape[0]

    @property
    def is_schur(self) -> bool:
        return bool(np.max(np.abs(np.linalg.eigvals(self.A))) < 1.0) if self.n_states else True

    def index(self, kind: str, name: str | int) -> int:
        """Index of an input or output given by name or 0-based position."""
        names = self.input_names if kind == "input" else self.output_names
        if isinstance(name, int) and not isinstance(name, bool):
            if 0 <= name < len(names):
                return name
        elif name in names:
            return names.index(name)
        raise LoopSpecError(
            f"Plant {self.name!r} has no {kind} {name!r}; its {kind}s are: {', '.join(names)}."
        )

    def step(self, dx: np.ndarray, du: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step in deviation variables: ``(δx⁺, δy)``."""
        return self.A @ dx + self.B @ du, self.C @ dx + self.D @ du

    def describe(self) -> dict[str, Any]:
        eig = np.linalg.eigvals(self.A) if self.n_states else np.zeros(0)
        return {
            "name": self.name,
            "description": self.description,
            "Ts": self.Ts,
            "n_states": self.n_states,
            "inputs": list(self.input_names),
            "outputs": list(self.output_names),
            "spectral_radius": float(np.max(np.abs(eig))) if eig.size else 0.0,
            "u_op": self.u_op.tolist(),
            "y_op": self.y_op.tolist(),
            "u_min": [None if not np.isfinite(v) else float(v) for v in self.u_min],
            "u_max": [None if not np.isfinite(v) else float(v) for v in self.u_max],
            "source": self.source,
        }


def zoh(A_c: Any, B_c: Any, Ts: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact zero-order-hold discretisation of ``ẋ = A_c x + B_c u`` (scipy ``cont2discrete``).

    >>> Ad, Bd = zoh([[-1.0]], [[1.0]], 1.0)
    >>> round(float(Ad[0, 0]), 6), round(float(Bd[0, 0]), 6)
    (0.367879, 0.632121)
    """
    from scipy.signal import cont2discrete

    A_c = np.atleast_2d(np.asarray(A_c, dtype=np.float64))
    B_c = np.atleast_2d(np.asarray(B_c, dtype=np.float64))
    n, m = B_c.shape
    Ad, Bd, *_ = cont2discrete((A_c, B_c, np.zeros((1, n)), np.zeros((1, m))), Ts, method="zoh")
    return np.asarray(Ad), np.asarray(Bd)


def plant_from_continuous(A_c: Any, B_c: Any, C: Any, D: Any, Ts: float, **kw: Any) -> Plant:
    """Build a :class:`Plant` from a continuous-time model by exact ZOH."""
    Ad, Bd = zoh(A_c, B_c, Ts)
    return Plant(A=Ad, B=Bd, C=C, D=D, Ts=Ts, **kw)


# ------------------------------------------------------------------------------------------------
# files


_PLANT_KEYS = {
    "A", "B", "C", "D", "Ts", "continuous", "name", "description", "input_names", "output_names",
    "state_names", "x_op", "u_op", "y_op", "u_min", "u_max",
}


def plant_from_mapping(data: Mapping[str, Any], *, source: str = "") -> Plant:
    """Build a plant from a mapping (the ``[plant]`` table of a loop file, or a JSON/TOML plant file).

    ``continuous = true`` means (A, B) are continuous-time and are discretised by ZOH with ``Ts``.
    """
    unknown = sorted(set(data) - _PLANT_KEYS)
    if unknown:
        raise LoopSpecError(
            f"plant {source or ''}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_PLANT_KEYS))}."
        )
    missing = [k for k in ("A", "B", "C", "Ts") if k not in data]
    if missing:
        raise LoopSpecError(f"plant {source or ''}: missing required key(s) {', '.join(missing)}.")
    kw = {k: data[k] for k in data if k not in ("A", "B", "C", "D", "Ts", "continuous")}
    for k in ("input_names", "output_names", "state_names"):
        if k in kw:
            kw[k] = tuple(kw[k])
    kw.setdefault("name", Path(source).stem if source else "plant")
    kw["source"] = source
    # validate as a discrete plant first (clear errors naming the matrix), then discretise if asked
    plant = Plant(A=data["A"], B=data["B"], C=data["C"], D=data.get("D"), Ts=data["Ts"], **kw)
    if data.get("continuous", False):
        return plant_from_continuous(plant.A, plant.B, plant.C, plant.D, plant.Ts, **kw)
    return plant


def load_plant_file(path: str | Path) -> Plant:
    """Read a plant from ``.json``, ``.toml`` (top-level keys or a ``[plant]`` table) or ``.npz``."""
    path = Path(path)
    if not path.is_file():
        raise LoopSpecError(f"plant file {path} does not exist.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                data: dict[str, Any] = {k: z[k] for k in z.files}
            if "Ts" in data:
                data["Ts"] = float(np.asarray(data["Ts"]).reshape(()))
            if "continuous" in data:
                data["continuous"] = bool(np.asarray(data["continuous"]).reshape(()))
            for k in ("name", "description"):
                if k in data:
                    data[k] = str(data[k])
            for k in ("input_names", "output_names", "state_names"):
                if k in data:
                    data[k] = tuple(str(s) for s in np.asarray(data[k]).reshape(-1))
        elif suffix == ".json":
            data = json.loads(path.read_text())
        elif suffix == ".toml":
            data = _load_toml(path)
            data = data.get("plant", data)
        else:
            raise LoopSpecError(f"plant file {path}: unknown format {suffix!r}; use .toml, .json or .npz.")
    except LoopSpecError:
        raise
    except Exception as exc:  # malformed JSON/TOML/npz: one clear message
        raise LoopSpecError(f"plant file {path} cannot be read: {exc}") from None
    if not isinstance(data, Mapping):
        raise LoopSpecError(f"plant file {path}: expected a table/object of plant fields.")
    return plant_from_mapping(data, source=str(path))


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    with path.open("rb") as f:
        return tomllib.load(f)


# ------------------------------------------------------------------------------------------------
# registry of built-in plants


@dataclass(frozen=True)
class BuiltinPlant:
    """A registry row: a factory and one line for ``certify plants``."""

    name: str
    summary: str
    factory: Callable[[], Plant]
    tags: tuple[str, ...] = field(default=())


_REGISTRY: dict[str, BuiltinPlant] = {}


def register_plant(row: BuiltinPlant) -> None:
    _REGISTRY[row.name] = row


def get_plant(name: str) -> Plant:
    """A built-in plant by name.

    >>> get_plant("boiler").Ts
    10.0
    """
    from certify.loop import builtin  # noqa: F401  (registers the built-ins)

    if name not in _REGISTRY:
        raise LoopSpecError(
            f"unknown plant {name!r}; built-in plants: {', '.join(sorted(_REGISTRY))} "
            "(or give a plant file in a loop file)."
        )
    return _REGISTRY[name].factory()


def list_plants() -> list[dict[str, Any]]:
    """One dictionary per built-in plant (name, summary, sizes), for ``certify plants``.

    >>> sorted(list_plants()[0])[:4]
    ['Ts', 'description', 'inputs', 'n_states']
    """
    from certify.loop import builtin  # noqa: F401

    rows = []
    for name in sorted(_REGISTRY):
        p = _REGISTRY[name].factory()
        rows.append({"name": name, "summary": _REGISTRY[name].summary, **p.describe()})
    return rows
