"""Hostile-input cases for the fuzz suite (tests/test_fuzz.py) and the long campaign (benchmarks/fuzz.py).

A case is a folder of input files plus a ``certify`` command line; :func:`run_case` runs the real command
line on it (in-process through :func:`certify.cli.main`, or as ``python -m certify`` in a subprocess) and
returns an :class:`Outcome`: exit code, whether a traceback reached the user, whether it hung, and which
input files changed on disk.  Mutators take a :class:`random.Random`, so hypothesis (``st.randoms``) and
the benchmark's plain loop drive the same code.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import math
import os
import random
import resource
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "models_zoo"
ALLOWED_EXITS = {0, 1, 3, 4}
SPECIAL_KINDS = ("fifo", "devzero", "directory", "empty", "symlink_loop", "missing", "devnull_link")

# ------------------------------------------------------------------------------------------------
# cases


@dataclass
class Case:
    """Input files (name -> bytes, or a special-file kind) and the argv (``{dir}`` is the case folder)."""

    kind: str
    files: dict[str, Any]
    argv: list[str]
    label: str = ""


@dataclass
class Outcome:
    kind: str
    label: str
    exit_code: int | None
    hang: bool = False
    traceback: bool = False
    modified: list[str] = field(default_factory=list)
    area: str = ""  # where an exit 5 / hang came from: "importers", "other" or ""
    stderr: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.exit_code in ALLOWED_EXITS and not self.hang and not self.traceback and not self.modified)


def _special(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "devzero":
        os.symlink("/dev/zero", path)
    elif kind == "devnull_link":
        os.symlink("/dev/null", path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "symlink_loop":
        os.symlink(path.name + ".b", path)
        os.symlink(path.name, str(path) + ".b")
    elif kind == "missing":
        pass
    else:  # pragma: no cover
        raise ValueError(kind)


def materialize(case: Case, folder: Path) -> None:
    for name, content in case.files.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            _special(p, content)


def _digest(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink() or not p.is_file():
            continue
        out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class Hang(BaseException):
    """Raised by the in-process watchdog (a BaseException, so no ``except Exception`` swallows it)."""


def _area(tb_text: str) -> str:
    frames = [line for line in tb_text.splitlines() if line.strip().startswith("File ") and "/certify/" in line]
    if not frames:
        return "other"
    if "/certify/importers/" in frames[-1]:
        return "importers"
    return "verify" if "/certify/verify.py" in frames[-1] else "other"


def _memory_limit() -> Callable[[], None]:
    """Cap the address space (a MemoryError instead of the OOM killer); returns the undo."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        with open("/proc/self/status") as fh:
            vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        cap = vm + 3 * 2**30
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (OSError, ValueError, StopIteration):
        pass
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_case(case: Case, folder: Path, *, timeout: float = 60.0, subprocess_mode: bool = False) -> Outcome:
    """Run ``certify`` on ``case`` in ``folder`` (created) and judge the outcome."""
    folder.mkdir(parents=True, exist_ok=True)
    materialize(case, folder)
    argv = [a.replace("{dir}", str(folder)) for a in case.argv]
    before = _digest(folder)
    t0 = time.monotonic()
    out = Outcome(case.kind, case.label, None)
    if subprocess_mode:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        try:
            proc = subprocess.run([sys.executable, "-m", "certify", *argv], capture_output=True, text=True,
                                  timeout=timeout, env=env, cwd=str(folder), errors="replace",
                                  stdin=subprocess.DEVNULL)
            out.exit_code, text = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            out.hang, text = True, str(exc.stdout or "") + str(exc.stderr or "")
    else:
        from certify.cli import main

        buf = io.StringIO()

        def on_alarm(signum: int, frame: Any) -> None:
            raise Hang()

        old = signal.signal(signal.SIGALRM, on_alarm)
        undo = _memory_limit()
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                out.exit_code = main(argv)
        except Hang:
            out.hang = True
            out.area = _area(traceback.format_exc())
        except BaseException:  # an exception escaping main() would be a traceback for the user
            out.traceback = True
            out.area = _area(traceback.format_exc())
            buf.write(traceback.format_exc())
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            undo()
        text = buf.getvalue()
    out.seconds = time.monotonic() - t0
    out.stderr = text[-2000:]
    if "Traceback (most recent call last)" in text:
        out.traceback = True
    after = _digest(folder)
    out.modified = sorted(k for k, v in before.items() if after.get(k) != v)
    if out.exit_code == 5 and not subprocess_mode and not out.area:
        out.area = _debug_area(argv)
    return out


def _debug_area(argv: list[str]) -> str:
    """Rerun an internal error with --debug to see which package raised it."""
    from certify.cli import main

    if argv and argv[0] in ("check", "inspect", "verify", "retrain", "plants"):
        argv = [*argv, "--debug"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            main(argv)
        except BaseException:  # noqa: BLE001
            buf.write(traceback.format_exc())
    return _area(buf.getvalue())


# ------------------------------------------------------------------------------------------------
# values


def weird_value(rng: random.Random) -> Any:
    """A value of a random (often wrong) type for a field."""
    return rng.choice([
        0, -1, 3, 10**12, 2**63, 1.5, -0.0, float("nan"), float("inf"), -float("inf"), True, False, "", "x", "false",
        "0.01", "é\u202e", "y:E", [], [1], ["a", 1], [[1.0, 2.0]], [[float("nan")]], {}, {"a": 1}, None,
    ])


def deep(depth: int, json_text: bool = True) -> str:
    return "[" * depth + "]" * depth if json_text else "a = " + "[" * depth + "]" * depth


# ------------------------------------------------------------------------------------------------
# ONNX models


def fused_model(op: str, n_in: int = 2, hidden: int = 3, rng: random.Random | None = None,
                metadata: dict[str, str] | None = None) -> Any:
    """A small fused GRU/LSTM/RNN ModelProto (opset 14) as PyTorch's legacy exporter writes it."""
    from onnx import TensorProto, helper, numpy_helper

    gates = {"GRU": 3, "LSTM": 4, "RNN": 1}[op]
    g = np.random.default_rng(0 if rng is None else rng.randrange(1 << 30))
    W = numpy_helper.from_array((0.3 * g.standard_normal((1, gates * hidden, n_in))).astype(np.float32), "W")
    R = numpy_helper.from_array((0.3 * g.standard_normal((1, gates * hidden, hidden))).astype(np.float32), "R")
    B = numpy_helper.from_array((0.1 * g.standard_normal((1, 2 * gates * hidden))).astype(np.float32), "B")
    attrs: dict[str, Any] = {"hidden_size": hidden}
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    node = helper.make_node(op, ["X", "W", "R", "B"], ["Y", "Y_h"], name=op.lower(), **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [5, 1, n_in])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [5, 1, 1, hidden])], [W, R, B],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    for k, v in (metadata or {"certify.input_range": json.dumps({"low": [-1] * n_in, "high": [1] * n_in})}).items():
        model.metadata_props.add(key=k, value=v)
    return model


_OPS = ["GRU", "LSTM", "RNN", "Loop", "Scan", "If", "Foo", "Add", "MatMul", "Tanh", "ConstantOfShape", "Expand",
        "Tile", "Range", "Reshape", ""]
_DIMS = [0, 1, -1, 2, 3, 7, 100, 10**5, 10**9, 2**31, 2**62]


def _mutate_onnx(model: Any, rng: random.Random) -> str:
    from onnx import TensorProto, helper

    g = model.graph
    what = rng.choice(["dims", "attribute", "op_type", "init_bytes", "data_type", "remove", "metadata", "opset",
                       "value_info", "cycle", "huge_fold", "nan", "scale", "scale", "range"])
    if what == "scale":  # keeps the model valid: from contractive to wildly unstable weights
        from onnx import numpy_helper

        factor = rng.choice([0.01, 0.5, 2.0, 5.0, 30.0, 1e6, 1e30, -1.0])
        for k, t in enumerate(list(g.initializer)):
            arr = numpy_helper.to_array(t)
            if arr.dtype.kind == "f":
                g.initializer[k].CopyFrom(numpy_helper.from_array((arr * factor).astype(arr.dtype), t.name))
        return f"scale:{factor:g}"
    if what == "range":  # a valid but unusual declared input range
        lo, hi = rng.choice([(-1e6, 1e6), (0.0, 0.0), (-1e-9, 1e-9), (5.0, 6.0), (-1e300, 1e300)])
        del model.metadata_props[:]
        model.metadata_props.add(key="certify.input_range", value=json.dumps({"low": [lo, lo], "high": [hi, hi]}))
        return "range"
    if what == "dims" and g.initializer:
        t = rng.choice(list(g.initializer))
        if t.dims:
            k = rng.randrange(len(t.dims))
            t.dims[k] = rng.choice(_DIMS)
    elif what == "attribute" and g.node:
        node = rng.choice(list(g.node))
        choice = rng.randrange(5)
        if choice == 0 and node.attribute:
            del node.attribute[rng.randrange(len(node.attribute))]
        elif choice == 1:
            node.attribute.append(helper.make_attribute("hidden_size", rng.choice(_DIMS)))
        elif choice == 2:
            node.attribute.append(helper.make_attribute(
                rng.choice(["direction", "activations", "linear_before_reset", "clip", "layout", "input_forget"]),
                rng.choice(["bidirectional", "reverse", "garbage", 2, 1.5, ["Relu", "Foo"], [b"\xff"]])))
        elif choice == 3:
            for a in node.attribute:
                if a.name == "hidden_size":
                    a.i = rng.choice(_DIMS)
        else:
            node.attribute.append(helper.make_attribute("hidden_size", 2.5))
    elif what == "op_type" and g.node:
        node = rng.choice(list(g.node))
        node.op_type = rng.choice(_OPS)
        if rng.random() < 0.2:
            node.domain = rng.choice(["com.microsoft", "ai.onnx.ml", "evil"])
    elif what == "init_bytes" and g.initializer:
        t = rng.choice(list(g.initializer))
        raw = bytearray(t.raw_data)
        if raw:
            if rng.random() < 0.5:
                for _ in range(rng.randint(1, 8)):
                    raw[rng.randrange(len(raw))] = rng.randrange(256)
            else:
                raw = raw[: rng.randrange(len(raw))]
            t.raw_data = bytes(raw)
    elif what == "data_type" and g.initializer:
        t = rng.choice(list(g.initializer))
        t.data_type = rng.choice([0, TensorProto.DOUBLE, TensorProto.INT64, TensorProto.STRING, TensorProto.BFLOAT16,
                                  TensorProto.FLOAT16, TensorProto.COMPLEX64, TensorProto.BOOL, 99])
    elif what == "remove":
        pools = [p for p in (g.initializer, g.input, g.output, g.node) if len(p)]
        if pools:
            pool = rng.choice(pools)
            del pool[rng.randrange(len(pool))]
    elif what == "metadata":
        key = rng.choice(["certify.input_range", "certify.input_scaling", "certify.output_scaling",
                          "certify.input_names", "certify.output_names"])
        value = rng.choice([deep(rng.choice([50, 5000, 200000])), "{not json", json.dumps(weird_value(rng)),
                            '{"low": "a", "high": [1]}', '{"low": [NaN], "high": [Infinity]}',
                            '{"raw_low": [0], "raw_high": [0]}', '{"low": [1e308], "high": [-1e308]}',
                            "[" + ",".join(["1"] * 100000) + "]", "\ud800".encode("utf-8", "surrogatepass")
                            .decode("utf-8", "replace")])
        del model.metadata_props[:]
        model.metadata_props.add(key=key, value=value)
    elif what == "opset":
        model.opset_import[0].version = rng.choice([1, 7, 13, 20, 21, 99, 10**6])
    elif what == "value_info" and g.input:
        shp = g.input[0].type.tensor_type.shape
        if shp.dim:
            d = shp.dim[rng.randrange(len(shp.dim))]
            if rng.random() < 0.5:
                d.dim_value = rng.choice(_DIMS[:8])
            else:
                d.dim_param = rng.choice(["T", "batch", ""])
    elif what == "cycle" and g.node:
        node = g.node[0]
        node.input.append(node.output[0])
    elif what == "huge_fold":
        n = rng.choice([10**6, 10**10, 10**12])
        shape = helper.make_tensor("shape", TensorProto.INT64, [2], [n, n])
        g.initializer.append(shape)
        g.node.insert(0, helper.make_node(rng.choice(["ConstantOfShape", "Expand", "Tile"]),
                                          ["shape"] if rng.random() < 0.5 else ["shape", "shape"], ["big"]))
        if g.node and len(g.node) > 1:
            g.node[1].input.append("big")
    elif what == "nan" and g.initializer:
        from onnx import numpy_helper

        k = rng.randrange(len(g.initializer))
        arr = numpy_helper.to_array(g.initializer[k]).copy()
        if arr.size:
            arr.reshape(-1)[rng.randrange(arr.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e38])
            name = g.initializer[k].name
            g.initializer[k].CopyFrom(numpy_helper.from_array(arr, name))
    return what


def onnx_case(rng: random.Random) -> Case:
    """A small valid GRU/LSTM/RNN ONNX model with 1-3 structural mutations, sometimes byte-damaged."""
    op = rng.choice(["GRU", "LSTM", "RNN"])
    model = fused_model(op, rng=rng)
    labels = [op]
    for _ in range(rng.choice([1, 1, 2, 3])):
        try:
            labels.append(_mutate_onnx(model, rng))
        except Exception:  # noqa: BLE001 - a mutation that an earlier one made impossible
            labels.append("skipped")
    try:
        data = model.SerializeToString()
    except Exception:  # noqa: BLE001 - an unserialisable mutation: fall back to bytes damage
        data = fused_model(op).SerializeToString()
        labels.append("unserialisable")
    if rng.random() < 0.25:
        data, how = _damage_bytes(data, rng)
        labels.append(how)
    return Case("onnx", {"m.onnx": data}, ["check", "{dir}/m.onnx", "--quiet", "--method",
                                           rng.choice(["diss", "auto"]), "--timeout", "3"], "+".join(labels))


def _damage_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    b = bytearray(data)
    how = rng.choice(["truncate", "flip", "append", "insert"])
    if how == "truncate" and b:
        b = b[: rng.randrange(len(b))]
    elif how == "flip" and b:
        for _ in range(rng.randint(1, 16)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif how == "append":
        b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        pos = rng.randrange(len(b) + 1)
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(b), how


def raw_bytes_case(rng: random.Random) -> Case:
    """Random or adversarial bytes under a model extension."""
    ext = rng.choice([".onnx", ".pt", ".pth", ".bin", ""])
    kind = rng.choice(["random", "zip", "pickle", "text", "protobuf_varint", "gzip"])
    if kind == "random":
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 2000)))
    elif kind == "zip":
        data = b"PK\x03\x04" + bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    elif kind == "pickle":
        data = b"\x80\x04\x95" + b"cos\nsystem\n(S'echo pwned > /tmp/certify_pwned'\ntR."
    elif kind == "text":
        data = rng.choice([b"{}", b"hello", deep(1000).encode(), b"\xff\xfe\x00"])
    elif kind == "protobuf_varint":
        data = b"\x08" + b"\xff" * rng.randint(1, 20) + b"\x3a\xff\xff\xff\xff\x0f"
    else:
        data = b"\x1f\x8b\x08\x00" + bytes(rng.randrange(256) for _ in range(100))
    return Case("raw_bytes", {"m" + ext: data}, ["check", "{dir}/m" + ext, "--quiet", "--timeout", "3"], kind)


# ------------------------------------------------------------------------------------------------
# PyTorch state dicts and sidecars


def _torch_bytes(obj: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def sidecar_case(rng: random.Random) -> Case:
    """A valid torch state dict whose sidecar is mutated (wrong types, non-UTF-8, nesting, special files)."""
    import torch

    torch.manual_seed(rng.randrange(1000))
    kind = rng.choice(["GRU", "LSTM", "RNN"])
    sd = getattr(torch.nn, kind)(2, 3).state_dict()
    side, how = sidecar_bytes(rng, kind.lower())
    return Case("sidecar", {"m.pt": _torch_bytes(sd), "m.pt.certify.json": side},
                ["check", "{dir}/m.pt", "--quiet", "--method", "diss", "--timeout", "3"], f"{kind}+{how}")


def state_dict_case(rng: random.Random) -> Case:
    """A torch GRU/LSTM/RNN state dict with mutated tensors or structure, and sometimes a mutated sidecar."""
    import torch

    torch.manual_seed(rng.randrange(1000))
    kind = rng.choice(["GRU", "LSTM", "RNN"])
    mod = getattr(torch.nn, kind)(2, 3, num_layers=rng.choice([1, 1, 2]))
    sd: Any = dict(mod.state_dict())
    labels = [kind]
    for _ in range(rng.randint(1, 2)):
        what = rng.choice(["shape", "nan", "extra", "missing", "sparse", "quantized", "nested", "non_tensor",
                           "dtype", "wrap", "huge", "zero_dim"])
        labels.append(what)
        keys = [k for k, v in sd.items() if isinstance(v, torch.Tensor)] if isinstance(sd, dict) else []
        if not keys:
            break
        key = rng.choice(keys)
        try:
            sd = _mutate_state_dict(sd, key, what, rng)
        except Exception:  # noqa: BLE001 - a mutation that does not apply to this tensor
            labels[-1] = what + "(skipped)"
    files: dict[str, Any] = {"m.pt": _torch_bytes(sd)}
    if rng.random() < 0.4:
        side, how = sidecar_bytes(rng, kind.lower())
        files["m.pt.certify.json"] = side
        labels.append("sidecar:" + how)
    return Case("state_dict", files, ["check", "{dir}/m.pt", "--quiet", "--method", "diss", "--timeout", "3"],
                "+".join(labels))


def _mutate_state_dict(sd: Any, key: str, what: str, rng: random.Random) -> Any:
    import torch

    t = sd[key]
    if what == "shape":
        sd[key] = torch.randn(tuple(rng.choice([0, 1, 2, 3, 5, 9]) for _ in range(rng.randint(0, 3))))
    elif what == "nan":
        t = t.clone()
        t.view(-1)[rng.randrange(t.numel())] = rng.choice([float("nan"), float("inf")])
        sd[key] = t
    elif what == "extra":
        sd[rng.choice(["head.weight", "weight_ih_l7", "fc.bias", "x" * 300, ""])] = torch.randn(3, 3)
    elif what == "missing":
        del sd[key]
    elif what == "sparse":
        sd[key] = t.to_sparse() if t.dim() >= 1 else t
    elif what == "quantized":
        sd[key] = torch.quantize_per_tensor(t.float(), 0.1, 0, torch.qint8)
    elif what == "nested":
        sd = {rng.choice(["model_state_dict", "model", "state_dict", "weights"]): sd} if rng.random() < 0.5 \
            else {**sd, "inner": {"a": {"b": t}}}
    elif what == "non_tensor":
        sd[key] = rng.choice([1, "tensor", [1.0, 2.0], None, {"x": 1}])
    elif what == "dtype":
        sd[key] = t.to(rng.choice([torch.float16, torch.int64, torch.bool, torch.complex64, torch.float64,
                                   torch.bfloat16]))
    elif what == "wrap":
        sd = rng.choice([[sd], (sd,), "not a dict", 42, {"epoch": 3, "model_state_dict": sd}])
    elif what == "huge":
        sd[key] = torch.zeros(1).expand(rng.choice([10**5, 10**7]))
    elif what == "zero_dim":
        sd[key] = torch.tensor(1.0)
    return sd


def sidecar_bytes(rng: random.Random, arch: str) -> tuple[Any, str]:
    """A sidecar: valid, with a field of the wrong type, non-UTF-8, deeply nested, or a special file."""
    base: dict[str, Any] = {"format": "certify.sidecar", "version": 1, "architecture": arch, "n_in": 2, "hidden": 3,
                            "reset_after": True, "input_range": {"low": [-1, -1], "high": [1, 1]}}
    how = rng.choice(["wrong_type", "unknown_key", "non_utf8", "deep", "special", "valid", "not_object"])
    if how == "wrong_type":
        key = rng.choice(sorted(base) + ["nonlinearity", "input_names", "input_scaling", "num_layers"])
        base[key] = weird_value(rng)
        return json.dumps(base, allow_nan=True).encode(), f"{how}:{key}"
    if how == "unknown_key":
        base[rng.choice(["reset_afterr", "architecure", "x"])] = 1
        return json.dumps(base).encode(), how
    if how == "non_utf8":
        return b'{"architecture": "\xff\xfe"}', how
    if how == "deep":
        return deep(rng.choice([100, 10000, 100000])).encode(), how
    if how == "special":
        kind = rng.choice(["fifo", "devzero", "directory", "empty", "symlink_loop"])
        return kind, f"{how}:{kind}"
    if how == "not_object":
        return json.dumps(rng.choice([[1], "x", 3, None])).encode(), how
    return json.dumps(base).encode(), how


# ------------------------------------------------------------------------------------------------
# loop and plant files


BASE_PLANT: dict[str, Any] = {"A": [[0.5, 0.1], [0.0, 0.3]], "B": [[1.0], [0.5]], "C": [[1.0, 0.0]], "Ts": 1.0,
                              "u_min": [-1.0], "u_max": [1.0], "input_names": ["u"], "output_names": ["y"]}
BASE_LOOP: dict[str, Any] = {
    "name": "fuzz",
    "plant": copy.deepcopy(BASE_PLANT),
    "network": {"inputs": ["y:y"], "output": 0},
    "controller": {"type": "pi", "form": "velocity", "kp": 0.05, "ki": 0.02, "actuator": "u", "reference": 0.0},
    "scaling": {"input": {"raw_low": [-2.0], "raw_high": [2.0], "net_low": -1.0, "net_high": 1.0}},
}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return '"None"'  # TOML has no null


def to_toml(data: dict[str, Any]) -> str:
    """A minimal TOML writer for loop/plant dictionaries (tables one level deep, inline tables below)."""
    top = [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            top.append(f"[{json.dumps(str(k))}]")
            top += [f"{json.dumps(str(kk))} = {_toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(top) + "\n"


def _mutate_mapping(d: dict[str, Any], rng: random.Random) -> str:
    """Change, delete or add one key somewhere in a nested dict."""
    path: list[str] = []
    cur: Any = d
    while isinstance(cur, dict) and cur and rng.random() < 0.7:
        key = rng.choice(sorted(cur))
        if not isinstance(cur[key], dict):
            break
        path.append(key)
        cur = cur[key]
    if not isinstance(cur, dict):
        return "none"
    op = rng.choice(["retype", "retype", "delete", "typo", "shape", "huge"])
    keys = sorted(cur)
    if op == "retype" and keys:
        k = rng.choice(keys)
        cur[k] = weird_value(rng)
        return f"retype:{'.'.join(path + [k])}"
    if op == "delete" and keys:
        k = rng.choice(keys)
        del cur[k]
        return f"delete:{'.'.join(path + [k])}"
    if op == "typo":
        k = rng.choice(keys) if keys else "x"
        cur[k + rng.choice(["s", "_", "X"])] = cur.get(k, 1)
        return f"typo:{'.'.join(path + [k])}"
    if op == "shape":
        for k in ("A", "B", "C", "D"):
            if k in cur:
                n = rng.choice([0, 1, 3])
                cur[k] = [[0.1] * rng.choice([0, 1, 2, 3]) for _ in range(n)]
                return f"shape:{k}"
    if op == "huge":
        for k in ("A",):
            if k in cur:
                n = rng.choice([600, 3000])
                cur["A"] = [[0.0] * n for _ in range(n)] if n <= 600 else [[0.0]] * n
                return f"huge:{n}"
    return "none"


def plant_file_bytes(rng: random.Random, plant: dict[str, Any], fmt: str) -> tuple[Any, str]:
    """A plant file in ``fmt`` (json/toml/npz) from a (mutated) mapping, or a hostile npz."""
    if fmt == "json":
        return json.dumps(plant, allow_nan=True).encode(), "json"
    if fmt == "toml":
        return to_toml(plant).encode(), "toml"
    buf = io.BytesIO()
    special = rng.random()
    if special < 0.15:  # a header that declares 3000 states but carries no data (must be refused, not loaded)
        import zipfile

        header = {"descr": "<f8", "fortran_order": False, "shape": (3000, 3000)}
        npy = io.BytesIO()
        np.lib.format.write_array_header_1_0(npy, header)
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("A.npy", npy.getvalue())
            for k in ("B", "C"):
                arr = io.BytesIO()
                np.save(arr, np.zeros((3000, 1)))
                zf.writestr(k + ".npy", arr.getvalue())
        return buf.getvalue(), "npz_declared_3000"
    if special < 0.25:  # an object array: loading it would unpickle
        np.savez(buf, A=np.array([object(), 1], dtype=object), B=np.eye(1), C=np.eye(1), Ts=1.0)
        return buf.getvalue(), "npz_object"
    arrays = {}
    for k, v in plant.items():
        try:
            arrays[k] = np.asarray(v)
        except Exception:  # noqa: BLE001 - ragged: store as text
            arrays[k] = np.asarray(str(v))
    if any(a.dtype == object for a in arrays.values()):
        arrays = {k: (a if a.dtype != object else np.asarray(str(a.tolist()))) for k, a in arrays.items()}
    np.savez(buf, **arrays)
    data = buf.getvalue()
    if rng.random() < 0.15:
        data, how = _damage_bytes(data, rng)
        return data, "npz_" + how
    return data, "npz"


def loop_case(rng: random.Random, plant_in_file: bool | None = None) -> Case:
    """A loop file (TOML or JSON) around a tiny Elman model, with a mutated field or a mutated plant file."""
    loop = copy.deepcopy(BASE_LOOP)
    files: dict[str, Any] = {"m.onnx": fused_model("RNN", n_in=1, hidden=2).SerializeToString()}
    labels = []
    if plant_in_file is None:
        plant_in_file = rng.random() < 0.4
    if plant_in_file:
        plant = copy.deepcopy(BASE_PLANT)
        if rng.random() < 0.8:
            labels.append("plant:" + _mutate_mapping(plant, rng))
        fmt = rng.choice(["json", "toml", "npz"])
        if rng.random() < 0.1:
            content, how = rng.choice(SPECIAL_KINDS), "special"
        else:
            content, how = plant_file_bytes(rng, plant, fmt)
        files["p." + fmt] = content
        labels.append(how)
        loop["plant"] = {"file": "p." + fmt}
        if rng.random() < 0.15:
            loop["plant"]["file"] = weird_value(rng)
            labels.append("file_retyped")
    if rng.random() < 0.8 or not plant_in_file:
        labels.append("loop:" + _mutate_mapping(loop, rng))
    fmt = rng.choice(["toml", "toml", "json"])
    if rng.random() < 0.08:
        files["l." + fmt] = rng.choice([b"\xff\xfe\x00bad", deep(5000, fmt == "json").encode(), b""])
        labels.append("bad_text")
    else:
        files["l." + fmt] = to_toml(loop).encode() if fmt == "toml" else json.dumps(loop, allow_nan=True).encode()
    return Case("plant" if plant_in_file else "loop", files,
                ["check", "{dir}/m.onnx", "--loop", "{dir}/l." + fmt, "--quiet", "--timeout", "3"], "+".join(labels))


def plant_case(rng: random.Random) -> Case:
    """A loop file that names a (mutated, hostile) plant file: .json, .toml or .npz."""
    return loop_case(rng, plant_in_file=True)


# ------------------------------------------------------------------------------------------------
# special files, output paths and retrain


def special_cases() -> list[Case]:
    """Every special file in every input position (model, sidecar, loop, plant, retrain data, -o)."""
    model = fused_model("RNN", n_in=1, hidden=2).SerializeToString()
    loop_plant = copy.deepcopy(BASE_LOOP)
    loop_plant["plant"] = {"file": "p.json"}
    out = []
    for kind in SPECIAL_KINDS:
        out.append(Case("special", {"m.onnx": kind}, ["check", "{dir}/m.onnx", "--quiet"], f"model:{kind}"))
        out.append(Case("special", {"m.onnx": kind}, ["inspect", "{dir}/m.onnx"], f"inspect:{kind}"))
        out.append(Case("special", {"m.pt": _torch_bytes_or_none(), "m.pt.certify.json": kind},
                        ["check", "{dir}/m.pt", "--quiet", "--method", "diss"], f"sidecar:{kind}"))
        out.append(Case("special", {"m.onnx": model, "l.toml": kind},
                        ["check", "{dir}/m.onnx", "--loop", "{dir}/l.toml", "--quiet"], f"loop:{kind}"))
        out.append(Case("special", {"m.onnx": model, "l.toml": to_toml(loop_plant).encode(), "p.json": kind},
                        ["check", "{dir}/m.onnx", "--loop", "{dir}/l.toml", "--quiet"], f"plant:{kind}"))
        out.append(Case("special", {"m.onnx": model, "d.npz": kind},
                        ["retrain", "{dir}/m.onnx", "--data", "{dir}/d.npz", "-o", "{dir}/out", "--epochs", "1",
                         "--device", "cpu"], f"retrain_data:{kind}"))
        out.append(Case("special", {"m.onnx": kind, "d.npz": _npz_bytes(u=np.zeros((100, 1)), y=np.zeros((100, 1)))},
                        ["retrain", "{dir}/m.onnx", "--data", "{dir}/d.npz", "-o", "{dir}/out", "--epochs", "1",
                         "--device", "cpu"], f"retrain_model:{kind}"))
    # outputs that are inputs (the model must survive), and odd output paths
    for target in ("m.onnx", "l.toml", "p.json"):
        out.append(Case("overwrite", {"m.onnx": model, "l.toml": to_toml(loop_plant).encode(),
                                      "p.json": json.dumps(BASE_PLANT).encode()},
                        ["check", "{dir}/m.onnx", "--loop", "{dir}/l.toml", "--quiet", "--format", "json", "-o",
                         "{dir}/" + target], f"output_is:{target}"))
    out.append(Case("overwrite", {"m.onnx": model, "link.onnx": b""},
                    ["check", "{dir}/m.onnx", "--quiet", "--format", "json", "-o", "{dir}/sub/../m.onnx"],
                    "output_is:model_via_dotdot"))
    out.append(Case("overwrite", {"m.onnx": model, "d": "directory"},
                    ["check", "{dir}/m.onnx", "--quiet", "--format", "json", "-o", "{dir}/d"], "output_is:directory"))
    out.append(Case("overwrite", {"m.onnx": model},
                    ["check", "{dir}/m.onnx", "--quiet", "--format", "json", "-o", "{dir}/no/such/dir/r.json"],
                    "output_in_missing_dir"))
    return [c for c in out if all(v is not None for v in c.files.values())]


def _npz_bytes(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _torch_bytes_or_none() -> bytes | None:
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    return _torch_bytes(torch.nn.RNN(2, 3).state_dict())


def retrain_cases() -> list[Case]:
    """Bad retrain inputs: sequence length 0, data with NaN / wrong dims / strings, -o an existing file."""
    model = fused_model("RNN", n_in=1, hidden=2).SerializeToString()

    def npz(**arrays: Any) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    good = npz(u=np.zeros((200, 1)), y=np.zeros((200, 1)))
    base = ["retrain", "{dir}/m.onnx", "--data", "{dir}/d.npz", "-o", "{dir}/out", "--epochs", "1", "--device", "cpu"]
    cases = [
        Case("retrain", {"m.onnx": model, "d.npz": good}, base + ["--seq-len", "0"], "seq_len_0"),
        Case("retrain", {"m.onnx": model, "d.npz": good}, base + ["--batch-size", "0"], "batch_0"),
        Case("retrain", {"m.onnx": model, "d.npz": good}, base + ["--lr", "nan"], "lr_nan"),
        Case("retrain", {"m.onnx": model, "d.npz": npz(u=np.full((200, 1), np.nan), y=np.zeros((200, 1)))}, base,
             "data_nan"),
        Case("retrain", {"m.onnx": model, "d.npz": npz(u=np.zeros((200, 1, 2)), y=np.zeros((200, 1)))}, base,
             "data_3d"),
        Case("retrain", {"m.onnx": model, "d.npz": npz(u=np.array(["a"] * 200), y=np.zeros((200, 1)))}, base,
             "data_strings"),
        Case("retrain", {"m.onnx": model, "d.npz": npz(u=np.zeros((200, 3)), y=np.zeros((200, 1)))}, base,
             "data_columns"),
        Case("retrain", {"m.onnx": model, "d.npz": b"garbage"}, base, "data_garbage"),
        Case("retrain", {"m.onnx": model, "d.npz": good, "out": b"precious"}, base, "output_is_file"),
        Case("retrain", {"model.onnx": model, "d.npz": good},
             ["retrain", "{dir}/model.onnx", "--data", "{dir}/d.npz", "-o", "{dir}/sub/..", "--epochs", "1",
              "--device", "cpu"], "output_folder_holds_the_model_via_dotdot"),
        Case("retrain", {"model.onnx": model, "d.npz": good},
             ["retrain", "{dir}/model.onnx", "--data", "{dir}/d.npz", "-o", "{dir}", "--epochs", "1", "--device",
              "cpu"], "output_folder_holds_the_model"),
    ]
    return cases


def base_cases() -> list[Case]:
    """The unmutated inputs the generators start from: each must be accepted (exit 0 or 1)."""
    rnn = fused_model("RNN", n_in=1, hidden=2).SerializeToString()
    loop_file = copy.deepcopy(BASE_LOOP)
    loop_file["plant"] = {"file": "p.npz"}
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in BASE_PLANT.items()})
    out = [Case("base", {"m.onnx": fused_model(op).SerializeToString()}, ["check", "{dir}/m.onnx", "--quiet"], op)
           for op in ("GRU", "LSTM", "RNN")]
    out.append(Case("base", {"m.onnx": rnn, "l.toml": to_toml(BASE_LOOP).encode()},
                    ["check", "{dir}/m.onnx", "--loop", "{dir}/l.toml", "--quiet"], "loop_toml"))
    out.append(Case("base", {"m.onnx": rnn, "l.json": json.dumps(loop_file).encode(), "p.npz": buf.getvalue()},
                    ["check", "{dir}/m.onnx", "--loop", "{dir}/l.json", "--quiet"], "loop_json_plant_npz"))
    return out


_UNSTABLE: dict[str, Any] = {}


def unstable_report() -> tuple[bytes, dict[str, Any]]:
    """A GRU with large weights and its `unstable` JSON report (a proved period-2 orbit), made once."""
    if not _UNSTABLE:
        import tempfile

        from onnx import numpy_helper

        from certify.cli import main

        model = fused_model("GRU")
        for k, t in enumerate(list(model.graph.initializer)):
            arr = numpy_helper.to_array(t)
            model.graph.initializer[k].CopyFrom(numpy_helper.from_array((arr * 10.0).astype(arr.dtype), t.name))
        data = model.SerializeToString()
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "u.onnx").write_bytes(data)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                rc = main(["check", str(Path(tmp, "u.onnx")), "--format", "json", "-o", str(Path(tmp, "r.json")),
                           "--quiet", "--timeout", "60"])
            report = json.loads(Path(tmp, "r.json").read_text()) if rc == 4 else {}
        _UNSTABLE.update(model=data, report=report)
    return _UNSTABLE["model"], copy.deepcopy(_UNSTABLE["report"])


def _mutate_anywhere(obj: Any, rng: random.Random) -> str:
    """Retype, delete or perturb one value anywhere in a nested dict/list structure."""
    path: list[str] = []
    cur = obj
    while True:
        keys = list(cur) if isinstance(cur, dict) else list(range(len(cur))) if isinstance(cur, list) else []
        if not keys:
            return "none"
        k = rng.choice(keys)
        child = cur[k]
        if isinstance(child, (dict, list)) and child and rng.random() < 0.8:
            path.append(str(k))
            cur = child
            continue
        op = rng.choice(["retype", "delete", "perturb"])
        if op == "delete":
            del cur[k]
        elif op == "perturb" and isinstance(child, (int, float)) and not isinstance(child, bool):
            cur[k] = child * rng.choice([0.0, -1.0, 1.0 + 1e-9, 1e6, float("nan")]) + rng.choice([0.0, 1e-12, 1.0])
        else:
            cur[k] = weird_value(rng)
        return f"{op}:{'.'.join(path + [str(k)])}"


def report_case(rng: random.Random) -> Case:
    """`certify verify` on a real `unstable` report whose proof data was mutated (or damaged as text)."""
    model, report = unstable_report()
    labels = []
    for _ in range(rng.choice([1, 1, 2])):
        labels.append(_mutate_anywhere(report.get("counterexample") or report, rng))
    text = json.dumps(report, allow_nan=True).encode()
    if rng.random() < 0.1:
        text, how = _damage_bytes(text, rng)
        labels.append(how)
    return Case("report", {"u.onnx": model, "r.json": text}, ["verify", "{dir}/r.json", "{dir}/u.onnx"],
                "+".join(labels))


def verify_regression_cases() -> list[Case]:
    """Findings of the long campaign in `certify verify`: proof data of the wrong type in a saved report."""
    model, report = unstable_report()
    if not report:
        return []
    out = []
    for label, value in (("data_is_a_list", [1]), ("data_is_a_boolean", True)):
        bad = copy.deepcopy(report)
        bad["counterexample"]["data"] = value
        out.append(Case("report", {"u.onnx": model, "r.json": json.dumps(bad).encode()},
                        ["verify", "{dir}/r.json", "{dir}/u.onnx"], label))
    return out


def importer_regression_cases() -> list[Case]:
    """Findings of the long campaign inside the model importers, kept as fixed cases."""
    no_output = fused_model("LSTM")
    del no_output.graph.output[:]
    negative = fused_model("LSTM")
    negative.graph.input[0].type.tensor_type.shape.dim[2].dim_value = -1
    argv = ["check", "{dir}/m.onnx", "--quiet", "--method", "diss"]
    return [Case("onnx", {"m.onnx": no_output.SerializeToString()}, argv, "graph_without_outputs"),
            Case("onnx", {"m.onnx": negative.SerializeToString()}, argv, "negative_input_dimension")]


GENERATORS: dict[str, Callable[[random.Random], Case]] = {
    "onnx": onnx_case, "raw_bytes": raw_bytes_case, "state_dict": state_dict_case, "sidecar": sidecar_case,
    "loop": lambda rng: loop_case(rng, plant_in_file=False), "plant": plant_case, "report": report_case,
}
