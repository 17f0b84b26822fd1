"""Certificates anyone can re-check: exported, re-validated without a solver, tampering caught."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import certify
from certify.errors import InvalidInputError
from certify.networks import ElmanLayer, Network
from certify.verify import certificate_matches, is_certificate, verify_certificate

BOILER = "models_zoo/boiler_lpgrnn_linear.onnx"


@pytest.fixture(scope="module")
def loop_cert():
    r = certify.check(BOILER, plant="boiler", search=False)
    assert r.verdict.value == "certified"
    return json.loads(json.dumps(r.certificate))  # exactly what a JSON file holds


def test_a_genuine_certificate_is_accepted_and_matches_its_model(loop_cert):
    assert is_certificate(loop_cert) and loop_cert["model_sha256"] and loop_cert["subject"] == "loop"
    v = verify_certificate(loop_cert)
    assert v.ok and v.max_eig_M < -v.margin_M
    ok, why = certificate_matches(loop_cert, BOILER)
    assert ok, why
    ok, why = certificate_matches(loop_cert, "models_zoo/boiler_lpgrnn_plain.onnx")
    assert not ok  # the numbers are not that model's


def test_tampered_certificates_are_rejected(loop_cert):
    bad = copy.deepcopy(loop_cert)
    bad["P"][0][0] = -abs(bad["P"][0][0])  # one entry of P changed: P is no longer positive definite
    assert not verify_certificate(bad).ok
    bad = copy.deepcopy(loop_cert)
    i = int(np.argmax(np.abs(np.diag(np.array(bad["P"])))))
    bad["P"][i][i] *= 1e3  # one entry of P changed by a lot: the Lyapunov decrease fails
    assert not verify_certificate(bad).ok
    bad = copy.deepcopy(loop_cert)
    bad["system"]["A"][0][0] += 0.5  # another system
    assert not verify_certificate(bad).ok
    bad = copy.deepcopy(loop_cert)
    bad["system"]["K"] = [2.0 * k for k in bad["system"]["K"]]  # a wider slope class than certified
    assert not verify_certificate(bad).ok
    for junk in ({}, {"format": "certify-lmi-certificate"}, {"format": "certify-lmi-certificate", "system": 3},
                 [], "x"):
        with pytest.raises(InvalidInputError):
            verify_certificate(junk)


def test_network_certificate_and_the_cli(tmp_path, loop_cert):
    net = Network(layers=(ElmanLayer(W=[[0.5]], U=[[0.3]], b=[0.1]),))
    r = certify.check(net, method="lmi")
    assert r.certificate is not None and verify_certificate(r.certificate).ok
    assert certificate_matches(r.certificate, net)[0]
    assert certify.check(Network(layers=(ElmanLayer(W=[[0.5]], U=[[0.3]], b=[0.1]),)),
                         method="diss").certificate is None  # closed-form proofs have no LMI certificate
    from certify.cli import main

    path = tmp_path / "cert.json"
    path.write_text(json.dumps(loop_cert))
    assert main(["verify", str(path)]) == 0
    assert main(["verify", str(path), BOILER]) == 0
    assert main(["verify", str(path), "models_zoo/boiler_lpgrnn_plain.onnx"]) == 1
    bad = copy.deepcopy(loop_cert)
    bad["P"][0][0] = -abs(bad["P"][0][0])
    path.write_text(json.dumps(bad))
    assert main(["verify", str(path)]) == 1
    out = tmp_path / "c2.json"
    assert main(["check", BOILER, "--plant", "boiler", "--certificate", str(out), "--quiet"]) == 0
    assert verify_certificate(str(out)).ok


def test_a_multi_model_certificate_file_is_verified_entry_by_entry(tmp_path, loop_cert):
    from certify.cli import main

    path = tmp_path / "certs.json"
    path.write_text(json.dumps([loop_cert, None, loop_cert]))
    assert main(["verify", str(path)]) == 0
    bad = copy.deepcopy(loop_cert)
    bad["P"][0][0] = -abs(bad["P"][0][0])
    path.write_text(json.dumps([loop_cert, bad]))
    assert main(["verify", str(path)]) == 1
