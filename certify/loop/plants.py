"""LTI plants in deviation variables: validation, ZOH discretisation, file loading, built-in registry.

A :class:`Plant` is a discrete-time LTI system ``δx⁺ = A δx + B δu``, ``δy = C δx + D δu`` about an
operating point ``(x°, u°, y°)``; absolute signals are ``x = x° + δx`` and so on.  Continuous models
are discretised by exact zero-order hold (``scipy.signal.cont2discrete``).  Input limits are absolute
(the saturation of the controller acts on absolute values; see ``certify.loop.controllers``).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from certify.errors import LoopSpecError
from certify.schemas.files import MAX_TEXT_BYTES, check_regular_file, read_regular_file
from certify.schemas.loop import plain, validate_plant

#: Default largest plant (number of states) certify accepts; the LMI grows as the square of the loop's
#: size, so a larger plant would not finish in useful time.  Override with ``max_states=`` or the
#: environment variable ``CERTIFY_MAX_PLANT_STATES`` (``certify check --max-plant-states N``).
MAX_PLANT_STATES = 500
_MAX_STATES_ENV = "CERTIFY_MAX_PLANT_STATES"


def max_plant_states(override: int | None = None) -> int:
    """The state budget for plant files: ``override``, else ``$CERTIFY_MAX_PLANT_STATES``, else 500.

    >>> max_plant_states(), max_plant_states(20)
    (500, 20)
    """
    if override is not None:
        return int(override)
    text = os.environ.get(_MAX_STATES_ENV, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            raise LoopSpecError(f"{_MAX_STATES_ENV}={text!r} is not an integer.") from None
        if value < 1:
            raise LoopSpecError(f"{_MAX_STATES_ENV} must be at least 1, got {value}.")
        return value
    return MAX_PLANT_STATES


def _check_sizes(sizes: Mapping[str, tuple[int, ...]], source: str, max_states: int | None) -> None:
    """Refuse a plant whose declared matrix sizes exceed the state budget, before allocating anything."""
    budget = max_plant_states(max_states)
    for name in ("A", "B", "C", "D", "x_op", "u_op", "y_op", "u_min", "u_max"):
        shape = sizes.get(name)
        if not shape:
            continue
        big = max(shape)
        if big > budget:
            what = {"A": "states", "B": "states or inputs", "C": "outputs or states",
                    "D": "outputs or inputs"}.get(name, "entries")
            raise LoopSpecError(
                f"plant {source}: {name} is {' x '.join(str(d) for d in shape)}, i.e. {big} {what}; certify refuses "
                f"plants larger than {budget} (the loop's LMI grows with the square of its size and would not finish). "
                f"Raise the limit with --max-plant-states N (or the environment variable {_MAX_STATES_ENV})."
            )


def _list_shape(value: Any) -> tuple[int, ...]:
    if isinstance(value, np.ndarray):
        return tuple(value.shape)
    if isinstance(value, (list, tuple)):
        first = value[0] if value else None
        inner = len(first) if isinstance(first, (list, tuple, np.ndarray)) else None
        return (len(value),) if inner is None else (len(value), inner)
    return ()


# what fixes each dimension of each plant matrix (for shape messages)
_SHAPE_WHY = {
    ("A", 2): ("its number of columns", "its number of rows (A must be square)"),
    ("B", 2): ("the number of states (rows of A)", "the number of inputs"),
    ("C", 2): ("the number of outputs", "the number of states (columns of A)"),
    ("D", 2): ("the number of outputs (rows of C)", "the number of inputs (columns of B)"),
}


def _mat(owner: str, name: str, value: Any, shape: tuple[int | None, ...]) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise LoopSpecError(f"{owner}: {name} is not a numeric array.") from None
    if arr.ndim == 1 and len(shape) == 2 and shape[0] == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        why = _SHAPE_WHY.get((name, len(shape)), "")
        if arr.ndim == len(shape) and why:
            axis = next(k for k, (s, a) in enumerate(zip(shape, arr.shape)) if s is not None and s != a)
            why = f" (incompatible dimensions of the {name} matrix: {arr.shape[axis]} {('rows', 'columns')[axis]} " \
                  f"but {why[axis]} is {shape[axis]})"
        else:
            why = ""
        raise LoopSpecError(f"{owner}: {name} has shape {tuple(arr.shape)}, expected {want}{why}.")
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
    # array_like or None when constructed; always an array after __post_init__ (mypy cannot express that)
    x_op: np.ndarray = None  # type: ignore[assignment]
    u_op: np.ndarray = None  # type: ignore[assignment]
    y_op: np.ndarray = None  # type: ignore[assignment]
    u_min: np.ndarray = None  # type: ignore[assignment]
    u_max: np.ndarray = None  # type: ignore[assignment]
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


def plant_from_mapping(
    data: Mapping[str, Any], *, source: str = "", max_states: int | None = None, deadline: Any = None,
    where: str | None = None, table: str | None = None,
) -> Plant:
    """Build a plant from a mapping (the ``[plant]`` table of a loop file, or a JSON/TOML plant file).

    ``continuous = true`` means (A, B) are continuous-time and are discretised by ZOH with ``Ts``.
    The mapping is checked against :data:`certify.schemas.PLANT_SCHEMA` (exact types, finite numbers)
    and the state budget (:func:`max_plant_states`) before any matrix is built.

    Examples
    --------
    >>> plant_from_mapping({"A": [[0.5]], "B": [[1.0]], "C": [[1.0]], "Ts": 1.0}).n_states
    1
    >>> plant_from_mapping({"A": [[0.5]], "B": [[1.0]], "C": [[1.0]], "Ts": 1.0, "nmae": "p"}, source="p.json")
    Traceback (most recent call last):
    ...
    certify.errors.LoopSpecError: plant file p.json: unknown key 'nmae' (did you mean 'name'?); allowed: A, B, C, D, Ts, continuous, description, input_names, name, output_names, state_names, u_max, u_min, u_op, x_op, y_op.
    """
    where = where or (f"plant file {source}" if source else "plant")
    if not isinstance(data, Mapping):
        raise LoopSpecError(f"{where}: expected a table/object of plant fields.")
    _check_sizes({k: _list_shape(data[k]) for k in data if k in _PLANT_KEYS}, source or where, max_states)
    if deadline is not None:
        deadline.check("reading the plant")
    validate_plant(data, where, table=table)
    data = plain(data)
    kw = {k: data[k] for k in data if k not in ("A", "B", "C", "D", "Ts", "continuous")}
    for k in ("input_names", "output_names", "state_names"):
        if k in kw:
            kw[k] = tuple(kw[k])
    kw.setdefault("name", Path(source).stem if source else "plant")
    kw["source"] = source
    # validate as a discrete plant first (clear errors naming the matrix), then discretise if asked
    plant = Plant(A=data["A"], B=data["B"], C=data["C"], D=data.get("D"), Ts=data["Ts"], **kw)  # type: ignore[arg-type]  # D=None: zeros
    if data.get("continuous", False):
        if deadline is not None:
            deadline.check("discretising the plant")
        return plant_from_continuous(plant.A, plant.B, plant.C, plant.D, plant.Ts, **kw)
    return plant


def _npz_headers(path: Path, max_states: int | None) -> None:
    """Read the array headers of an ``.npz`` (shapes, dtypes) and refuse what must not be loaded."""
    sizes: dict[str, tuple[int, ...]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = reader(fh)
                if dtype.hasobject:
                    raise LoopSpecError(f"plant file {path}: array {key!r} holds Python objects; certify reads "
                                        "only numeric and text arrays (it never unpickles).")
                sizes[key] = tuple(int(d) for d in shape)
    except LoopSpecError:
        raise
    except Exception as exc:  # not a zip, truncated, bad header
        raise LoopSpecError(f"plant file {path} cannot be read as .npz: {exc}") from None
    _check_sizes(sizes, str(path), max_states)


def _npz_mapping(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        data: dict[str, Any] = {k: z[k] for k in z.files}
    out: dict[str, Any] = {}
    for k, v in data.items():
        v = np.asarray(v)
        if k in ("Ts", "continuous", "name", "description") and v.size == 1:
            v = v.reshape(())
        if v.dtype.kind in "US":
            out[k] = str(v.item()) if v.ndim == 0 and v.dtype.kind == "U" else v.tolist()
        else:
            out[k] = v.tolist()
    return out


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LoopSpecError(f"{path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}).") from None


def load_plant_file(path: str | Path, *, max_states: int | None = None, deadline: Any = None) -> Plant:
    """Read a plant from ``.json``, ``.toml`` (top-level keys or a ``[plant]`` table) or ``.npz``.

    The file must be a regular file (never a FIFO or a device); its fields are checked against
    :data:`certify.schemas.PLANT_SCHEMA`; an ``.npz`` is read without unpickling and its declared
    sizes are checked against the state budget (:func:`max_plant_states`) before any array is loaded.

    Examples
    --------
    >>> load_plant_file("/dev/null")
    Traceback (most recent call last):
    ...
    certify.errors.LoopSpecError: plant file /dev/null is a character device, not a regular file.
    """
    path = Path(path)
    if check_regular_file(path, "plant file", error=LoopSpecError) == 0:
        raise LoopSpecError(f"plant file {path} is empty.")
    if deadline is not None:
        deadline.check("reading the plant file")
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".json", ".toml"):
        raise LoopSpecError(f"plant file {path}: unknown format {suffix!r}; use .toml, .json or .npz.")
    try:
        if suffix == ".npz":
            _npz_headers(path, max_states)
            data: Any = _npz_mapping(path)
        else:
            text = _decode(read_regular_file(path, "plant file", error=LoopSpecError, max_bytes=MAX_TEXT_BYTES), path)
            if suffix == ".json":
                data = json.loads(text)
            else:
                data = _toml_loads(text)
                if isinstance(data, Mapping) and isinstance(data.get("plant"), Mapping):
                    data = data["plant"]
    except LoopSpecError:
        raise
    except RecursionError:
        raise LoopSpecError(f"plant file {path} cannot be read: it is nested too deeply.") from None
    except MemoryError:
        raise LoopSpecError(f"plant file {path} cannot be read: it does not fit in memory.") from None
    except Exception as exc:  # malformed JSON/TOML/npz: one clear message
        raise LoopSpecError(f"plant file {path} cannot be read: {exc}") from None
    if not isinstance(data, Mapping):
        raise LoopSpecError(f"plant file {path}: expected a table/object of plant fields.")
    return plant_from_mapping(data, source=str(path), max_states=max_states, deadline=deadline)


def _toml_loads(text: str) -> dict[str, Any]:
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads(text)


def _load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file (regular files only, UTF-8, bounded size)."""
    text = _decode(read_regular_file(path, "file", error=LoopSpecError, max_bytes=MAX_TEXT_BYTES), path)
    return _toml_loads(text)


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
