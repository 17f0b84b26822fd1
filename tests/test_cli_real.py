"""End to end with the real importer and criteria: ONNX GRUs exported by torch through ``certify check``.

Skipped when torch or the numerical pieces are missing.  A GRU with small weights must certify; one
with large recurrent weights has several equilibria and must come out ``unstable`` (never certified).
"""

from __future__ import annotations

import importlib.util
import json
import warnings

import jsonschema
import pytest

from certify.cli import main
from certify.report import schema


def _have(*names: str) -> bool:
    try:
        return all(importlib.util.find_spec(n) is not None for n in names)
    except ModuleNotFoundError:
        return False


pytestmark = [
    pytest.mark.torch,
    pytest.mark.skipif(not _have("torch", "certify.importers", "certify.criteria.diss", "certify.falsify"),
                       reason="torch or the numerical pieces are not available"),
]


@pytest.fixture(scope="module")
def onnx_grus(tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("zoo")
    torch.manual_seed(0)

    class M(torch.nn.Module):
        def __init__(self, scale: float):
            super().__init__()
            self.g, self.h = torch.nn.GRU(2, 8, batch_first=True), torch.nn.Linear(8, 1)
            with torch.no_grad():
                for p in self.g.parameters():
                    p.mul_(scale)

        def forward(self, x):
            return self.h(self.g(x)[0])

    paths = {}
    for name, scale in (("tiny", 0.05), ("big", 8.0)):
        paths[name] = folder / f"gru_{name}.onnx"
        with warnings.catch_warnings():  # the legacy exporter warns about batch sizes of GRUs
            warnings.simplefilter("ignore")
            torch.onnx.export(M(scale).eval(), torch.zeros(1, 5, 2), str(paths[name]), dynamo=False,
                              input_names=["u"], output_names=["y"])
    return paths


def test_real_grus_through_the_cli(onnx_grus, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["check", str(onnx_grus["tiny"]), str(onnx_grus["big"]), "--format", "json", "-o", str(out)])
    data = json.loads(out.read_text())
    jsonschema.validate(data, schema())
    assert [d["verdict"] for d in data] == ["certified", "unstable"]
    assert code == 4
    tiny, big = data
    assert tiny["model"]["architecture"] == "gru" and len(tiny["model"]["sha256"]) == 64
    assert any(c["scope"] == "layer0" for c in tiny["checks"])
    assert big["counterexample"]["kind"] in ("multiple_equilibria", "limit_cycle", "non_contracting_pair")
    html = tmp_path / "r.html"
    assert main(["check", str(onnx_grus["big"]), "--format", "html", "-o", str(html), "--quiet"]) == 4
    assert "unstable" in html.read_text() and "<svg" in html.read_text()
    capsys.readouterr()
    assert main(["inspect", str(onnx_grus["tiny"]), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"][0]["reset_after"] is True
    # asking for the LMI on a GRU is a clear invalid-input error, not a crash
    assert main(["check", str(onnx_grus["tiny"]), "--method", "lmi", "--quiet"]) == 3
