"""Fuzz the real command line with hostile inputs: never a traceback, a hang, exit 5, or a changed input file.

Every case runs ``certify.cli.main`` in-process (a SIGALRM watchdog catches hangs, an address-space cap
turns runaway allocations into MemoryError) on a folder of generated files: mutated ONNX protobufs and
raw bytes, mutated PyTorch state dicts and sidecars, mutated loop and plant files (TOML, JSON, npz), and
special files (FIFO, /dev/zero, a directory, an empty file, a symlink loop) in every input position.
Each case must exit with 0, 1, 3 or 4, print no traceback, finish within its time limit and leave every
input file byte-for-byte unchanged.  Hypothesis drives the mutations (derandomized: the same cases on
every run); ``benchmarks/fuzz.py`` runs the long campaign.

Failures whose innermost certify frame lies in ``certify/importers`` (or ``certify/verify.py``) are
collected separately and checked by :func:`test_no_importer_findings` (:func:`test_no_verify_findings`),
so that a finding there does not hide (or get hidden by) one elsewhere.
"""

from __future__ import annotations

import random
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fuzz_cases as F  # noqa: E402

TIMEOUT = 60.0  # per case; generous so a loaded machine does not flake
SPECIAL_TIMEOUT = 20.0  # special files need no computation at all
IMPORTER_FINDINGS: list[str] = []
VERIFY_FINDINGS: list[str] = []

# Importer findings not fixed yet (handed to the importer owner); these cases are xfail(strict=False) so that
# they start asserting again as soon as the importer is fixed.  Empty when everything passes.
KNOWN_IMPORTER_CASES: set[str] = set()
# Same for `certify verify` (certify/verify.py).
KNOWN_VERIFY_CASES: set[str] = set()


def _settings(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


def _judge(case: F.Case, timeout: float = TIMEOUT) -> F.Outcome:
    with tempfile.TemporaryDirectory(prefix="certify-fuzz-") as tmp:
        out = F.run_case(case, Path(tmp) / "case", timeout=timeout)
    return out


def _describe(case: F.Case, out: F.Outcome) -> str:
    return (f"{case.kind} case {case.label!r}: argv {case.argv}, exit {out.exit_code}, hang={out.hang}, "
            f"traceback={out.traceback}, modified={out.modified}\n{out.stderr[-1500:]}")


def _assert_ok(case: F.Case, out: F.Outcome) -> None:
    assert not out.modified, "an input file changed on disk: " + _describe(case, out)
    if out.ok:
        return
    if out.area in ("importers", "verify"):
        (IMPORTER_FINDINGS if out.area == "importers" else VERIFY_FINDINGS).append(_describe(case, out))
        return
    raise AssertionError(_describe(case, out))


def _generated(kind: str, rnd: random.Random) -> F.Case:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return F.GENERATORS[kind](rnd)


@pytest.mark.parametrize("case", F.base_cases(), ids=lambda c: c.label)
def test_unmutated_inputs_are_accepted(case):
    """The fuzz starts from inputs certify accepts (otherwise every mutation would be refused for nothing)."""
    out = _judge(case)
    assert out.ok and out.exit_code in (0, 1), _describe(case, out)


@_settings(100)
@given(st.randoms(use_true_random=False))
def test_fuzz_onnx_protobuf_mutations(rnd):
    case = _generated("onnx", rnd)
    _assert_ok(case, _judge(case))


@_settings(40)
@given(st.randoms(use_true_random=False))
def test_fuzz_raw_bytes(rnd):
    case = _generated("raw_bytes", rnd)
    _assert_ok(case, _judge(case))


@_settings(60)
@given(st.randoms(use_true_random=False))
def test_fuzz_state_dicts(rnd):
    pytest.importorskip("torch")
    case = _generated("state_dict", rnd)
    _assert_ok(case, _judge(case, SPECIAL_TIMEOUT if "special" in case.label else TIMEOUT))


@_settings(40)
@given(st.randoms(use_true_random=False))
def test_fuzz_sidecars(rnd):
    pytest.importorskip("torch")
    case = _generated("sidecar", rnd)
    _assert_ok(case, _judge(case, SPECIAL_TIMEOUT if "special" in case.label else TIMEOUT))


@_settings(45)
@given(st.randoms(use_true_random=False))
def test_fuzz_loop_files(rnd):
    case = _generated("loop", rnd)
    _assert_ok(case, _judge(case))


@_settings(60)
@given(st.randoms(use_true_random=False))
def test_fuzz_plant_files(rnd):
    case = _generated("plant", rnd)
    _assert_ok(case, _judge(case))


def test_unstable_report_for_the_verify_fuzz_exists():
    model, report = F.unstable_report()
    assert report.get("verdict") == "unstable" and report.get("counterexample")


@_settings(80)
@given(st.randoms(use_true_random=False))
def test_fuzz_verify_reports(rnd):
    if not F.unstable_report()[1]:
        pytest.skip("no unstable report to mutate")
    case = _generated("report", rnd)
    _assert_ok(case, _judge(case))


def _params(cases: list[F.Case]) -> list:
    known = KNOWN_IMPORTER_CASES | KNOWN_VERIFY_CASES
    return [pytest.param(c, id=c.label, marks=[pytest.mark.xfail(strict=False, reason="finding handed over")]
                         if c.label in known else []) for c in cases]


@pytest.mark.parametrize("case", _params(F.special_cases()))
def test_special_files_and_output_paths(case):
    out = _judge(case, SPECIAL_TIMEOUT)
    assert out.ok, _describe(case, out)  # special files: every position must be refused cleanly


@pytest.mark.parametrize("case", _params(F.retrain_cases()))
def test_retrain_bad_inputs_exit_3(case):
    pytest.importorskip("torch")
    out = _judge(case)
    assert out.ok and out.exit_code == 3, _describe(case, out)


@pytest.mark.parametrize("case", _params(F.importer_regression_cases()))
def test_importer_findings_of_the_long_campaign(case):
    out = _judge(case)
    assert out.ok, _describe(case, out)


@pytest.mark.parametrize("case", _params(F.verify_regression_cases()))
def test_verify_findings_of_the_long_campaign(case):
    out = _judge(case)
    assert out.ok, _describe(case, out)


def test_no_importer_findings():
    """Runs after the fuzz tests above (file order): importer-caused exit 5 / hangs / tracebacks."""
    assert not IMPORTER_FINDINGS, "\n\n".join(IMPORTER_FINDINGS[:10])


def test_no_verify_findings():
    """Runs after test_fuzz_verify_reports: internal errors of `certify verify` on mutated reports."""
    assert not VERIFY_FINDINGS, "\n\n".join(VERIFY_FINDINGS[:10])
