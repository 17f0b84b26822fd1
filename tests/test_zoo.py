"""Every bundled model gives the verdict models_zoo/README.md promises (the checker, not the training code)."""

from __future__ import annotations

from pathlib import Path

import pytest

import certify

ZOO = Path(__file__).resolve().parents[1] / "models_zoo"


@pytest.mark.parametrize(
    "name, plant, verdict",
    [
        ("quadtank_gru_diss.onnx", None, "certified"),
        ("quadtank_lstm_diss.onnx", None, "certified"),
        ("quadtank_gru_plain.onnx", None, "not_certified"),
        ("boiler_lpgrnn_linear.onnx", "boiler", "certified"),
        ("boiler_lpgrnn_plain.onnx", "boiler", "not_certified"),
    ],
)
def test_zoo_verdicts(name, plant, verdict):
    report = certify.check(ZOO / name, plant=plant, falsify_budget=0.5)
    assert report.verdict.value == verdict


def test_penalised_gru_is_certified_with_a_clearance_and_the_plain_one_is_far_off():
    net = certify.load_model(ZOO / "quadtank_gru_diss.onnx")
    from certify.criteria.diss import check_diss

    model = {c.name: c for c in check_diss(net) if c.scope == "model"}
    assert model["diss.delta_iss"].margin < -0.01
    plain = {c.name: c for c in check_diss(certify.load_model(ZOO / "quadtank_gru_plain.onnx")) if c.scope == "model"}
    assert plain["diss.delta_iss"].margin > 1.0
