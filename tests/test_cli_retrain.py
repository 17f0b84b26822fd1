"""`certify retrain` is wired into the command line: bad input gives exit 3, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from certify.cli import main

ZOO = Path(__file__).resolve().parents[1] / "models_zoo"


def test_retrain_missing_model_is_invalid_input(tmp_path, capsys):
    data = tmp_path / "d.npz"
    np.savez(data, u=np.zeros((50, 2)), y=np.zeros((50, 1)))
    code = main(["retrain", str(tmp_path / "missing.onnx"), "--data", str(data), "-o", str(tmp_path / "out")])
    assert code == 3
    assert "Traceback" not in capsys.readouterr().err


def test_retrain_lmi_target_on_gru_is_refused(tmp_path, capsys):
    data = tmp_path / "d.npz"
    np.savez(data, u=np.zeros((50, 2)), y=np.zeros((50, 1)))
    code = main(["retrain", str(ZOO / "gru_small.onnx"), "--data", str(data), "--target", "lmi",
                 "-o", str(tmp_path / "out")])
    assert code == 3
    assert "lmi" in capsys.readouterr().err.lower()
