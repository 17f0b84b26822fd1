"""Build models_zoo/gru_small.onnx: a 1-layer GRU (2 inputs, 4 hidden) + linear head, legacy exporter.

Deterministic (seed 0, float32 weights); the file carries ``certify.input_range`` = [-1, 1]² metadata.
Run from the repository root: ``python models_zoo/make_gru_small.py``.
"""

from __future__ import annotations

import json
import os

import torch

from certify.train.modules import GRUNet, export_onnx

HERE = os.path.dirname(os.path.abspath(__file__))


def main(path: str = os.path.join(HERE, "gru_small.onnx")) -> str:
    torch.manual_seed(0)
    module = GRUNet(n_in=2, hidden=4, num_layers=1, n_out=1)
    with torch.no_grad():  # small weights: a contracting network that the δISS tests can certify
        for p in module.parameters():
            p.mul_(0.5)
    meta = {"certify.input_range": json.dumps({"low": [-1.0, -1.0], "high": [1.0, 1.0]}),
            "certify.input_names": json.dumps(["u1", "u2"]), "certify.output_names": json.dumps(["y"])}
    return export_onnx(module, path, seq_len=10, dynamo=False, metadata=meta)


if __name__ == "__main__":
    print(main())
