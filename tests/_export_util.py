"""Helpers to build, export and run small recurrent models in the importer tests."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_SESSIONS: dict[tuple[str, float], object] = {}


def run_ort(path: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run an ONNX file with onnxruntime (float32 feeds); sessions are cached per file version."""
    import onnxruntime as ort

    key = (str(path), os.path.getmtime(path))
    if key not in _SESSIONS:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        _SESSIONS[key] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return _SESSIONS[key].run(None, {k: np.asarray(v, dtype=np.float32) for k, v in feeds.items()})


def torch_forward(module, u: np.ndarray) -> np.ndarray:
    """Run a certify.train module in float64 on u of shape (batch, T, n_in); the module is left in float32."""
    import torch

    module.double()
    try:
        with torch.no_grad():
            return module(torch.as_tensor(u, dtype=torch.float64)).numpy()
    finally:
        module.float()


def seeded(seed: int):
    import torch

    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def randomize(module, rng: np.random.Generator, scale: float = 0.6) -> None:
    """Overwrite every parameter with float32-representable random values (incl. biases)."""
    import torch

    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.as_tensor(rng.uniform(-scale, scale, size=tuple(p.shape)), dtype=torch.float32))


def gru_lbr0_model(rng: np.random.Generator, n_in: int, hidden: int, layers: int, n_out: int, *,
                   bias: bool = True, lbr: int = 0, batch_first: bool = False, T: int | None = None,
                   extra_attrs: dict | None = None, W_override=None, metadata: dict | None = None) -> onnx.ModelProto:
    """A hand-built ONNX graph: stacked fused GRU nodes (ONNX gate order z|r|h) + Gemm head.

    ``batch_first`` uses ``layout=1``; otherwise the graph transposes [batch, T, F] → [T, batch, F] first.
    """
    f32 = lambda a: numpy_helper.from_array(np.asarray(a, dtype=np.float32), name=None)
    nodes, inits = [], []

    def init(name, arr):
        t = f32(arr)
        t.name = name
        inits.append(t)
        return name

    x = "u"
    if not batch_first:
        nodes.append(helper.make_node("Transpose", ["u"], ["u_t"], perm=[1, 0, 2], name="to_time_major"))
        x = "u_t"
    m = n_in
    for k in range(layers):
        W = rng.uniform(-0.7, 0.7, (1, 3 * hidden, m)) if W_override is None or k else W_override
        R = rng.uniform(-0.7, 0.7, (1, 3 * hidden, hidden))
        ins = [x, init(f"W{k}", W), init(f"R{k}", R)]
        if bias:
            ins.append(init(f"B{k}", rng.uniform(-0.5, 0.5, (1, 6 * hidden))))
        attrs = {"hidden_size": hidden, "linear_before_reset": lbr, "layout": int(batch_first)}
        attrs.update(extra_attrs or {})
        nodes.append(helper.make_node("GRU", ins, [f"Y{k}"], name=f"gru{k}", **attrs))
        sq_axis = 2 if batch_first else 1
        nodes.append(helper.make_node("Squeeze", [f"Y{k}", init(f"ax{k}", np.array([sq_axis]))], [f"S{k}"],
                                      name=f"squeeze{k}"))
        inits[-1] = numpy_helper.from_array(np.array([sq_axis], dtype=np.int64), name=f"ax{k}")
        x, m = f"S{k}", hidden
    if not batch_first:
        nodes.append(helper.make_node("Transpose", [x], ["o_bf"], perm=[1, 0, 2], name="to_batch_first"))
        x = "o_bf"
    nodes.append(helper.make_node("MatMul", [x, init("Wh", rng.uniform(-1, 1, (hidden, n_out)))], ["mm"], name="head_mm"))
    nodes.append(helper.make_node("Add", ["mm", init("bh", rng.uniform(-1, 1, n_out))], ["y"], name="head_add"))
    graph = helper.make_graph(
        nodes, "gru_lbr0",
        [helper.make_tensor_value_info("u", TensorProto.FLOAT, [None, T, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, T, n_out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="certify-tests")
    model.ir_version = 8
    for k_, v in (metadata or {}).items():
        model.metadata_props.add(key=k_, value=json.dumps(v) if not isinstance(v, str) else v)
    return model


def save(model: onnx.ModelProto, path: str | os.PathLike) -> str:
    onnx.save(model, str(path))
    return str(path)


def cell_model(nodes: list, inits: dict[str, np.ndarray], nu: int, nx: int, ny: int) -> onnx.ModelProto:
    """A one-step cell graph with inputs u [1, nu], x [1, nx] and outputs x_next, y."""
    graph = helper.make_graph(
        nodes, "cell",
        [helper.make_tensor_value_info("u", TensorProto.FLOAT, [1, nu]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, nx])],
        [helper.make_tensor_value_info("x_next", TensorProto.FLOAT, [1, nx]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, ny])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), name=k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="certify-tests")
    model.ir_version = 8
    return model
