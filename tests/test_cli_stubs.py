"""Stand-ins for the importer, the criteria and the falsifier, used by the report/CLI/API tests.

They let the tests drive every verdict (and a crash) through the real ``certify.api`` / ``certify.cli``
code without depending on the numerical pieces.  ``install(scenario, setitem)`` puts fake modules into
``sys.modules``; in-process tests pass ``monkeypatch.setitem`` (undone after the test), subprocess
tests go through a ``sitecustomize.py`` written by :func:`write_sitecustomize`.
This module holds no tests itself.
"""

from __future__ import annotations

import hashlib
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from certify.errors import NotApplicableError, SolverError
from certify.results import CheckResult, CheckStatus, Counterexample, Property

SCENARIOS = ("certified", "not_certified", "unstable", "crash", "lmi", "not_applicable", "solver_error",
             "non_contracting")
CALLS: list[str] = []


def gru_net(path: str = "") -> Any:
    import numpy as np

    from certify.networks import GRULayer, LinearHead, ModelInfo, Network

    H, m = 2, 1
    z = np.zeros
    layer = GRULayer(W_z=z((H, m)), W_r=z((H, m)), W_n=0.5 * np.ones((H, m)), U_z=z((H, H)), U_r=z((H, H)),
                     U_n=0.1 * np.eye(H), b_z=z(H), b_r=z(H), b_in=z(H), b_hn=z(H), reset_after=True)
    sha = hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""
    info = ModelInfo(source_format="onnx" if path else "python", path=path, sha256=sha)
    return Network(layers=(layer,), head=LinearHead(W=[[1.0, -1.0]], b=[0.0]), info=info)


def elman_net(path: str = "", U: float = 0.3) -> Any:
    from certify.networks import ElmanLayer, ModelInfo, Network

    sha = hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""
    info = ModelInfo(source_format="onnx" if path else "python", path=path, sha256=sha)
    return Network(layers=(ElmanLayer(W=[[0.5, 0.1]], U=[[U]], b=[0.0]),), info=info)


def _check(name: str, prop: Property, status: CheckStatus, scope: str = "model", **kw: Any) -> CheckResult:
    return CheckResult(name, prop, status, "stub_" + name.split(".")[0], message=f"stub {status.value}",
                       scope=scope, seconds=0.01, **kw)


def _modules(scenario: str) -> dict[str, types.ModuleType]:
    if scenario not in SCENARIOS:
        raise ValueError(scenario)

    def load_model(path: Any, *, input_range: Any = None, **_: Any) -> Any:
        CALLS.append("load_model")
        p = os.fspath(path)
        return gru_net(p) if "gru" in os.path.basename(p) else elman_net(p)

    def check_diss(net: Any, *, input_range: Any = None) -> list[CheckResult]:
        CALLS.append("check_diss")
        if scenario == "crash":
            raise RuntimeError("boom in check_diss")
        if scenario == "not_applicable":
            raise NotApplicableError("stub: no closed-form test for this architecture")
        ok = CheckStatus.PROVED if scenario == "certified" else CheckStatus.NOT_PROVED
        margin = -0.25 if ok is CheckStatus.PROVED else 0.4
        return [
            _check("diss.delta_iss.layer0", Property.DELTA_ISS, ok, scope="layer0", margin=margin,
                   quantities={"norm": "inf", "sigma_bar": 0.5}),
            _check("diss.delta_iss", Property.DELTA_ISS, ok, margin=margin, quantities={"norm": "inf"}),
        ]

    def from_network(net: Any) -> Any:
        CALLS.append("from_network")
        if any(layer.kind in ("gru", "lstm") for layer in net.layers):
            raise NotApplicableError("stub: gated cells have no exact SNOF")
        return types.SimpleNamespace(net=net)

    def check_lmi(form: Any, *, criterion: str = "auto", solver: Any = None, margin: Any = None,
                  timeout: Any = None, prop: Property = Property.GAS, name: str = "lmi") -> CheckResult:
        CALLS.append("check_lmi")
        if scenario == "solver_error":
            raise SolverError("stub solver crashed")
        ok = CheckStatus.PROVED if scenario in ("lmi", "certified") else CheckStatus.NOT_PROVED
        return _check(name, prop, ok, margin=-1e-3 if ok is CheckStatus.PROVED else 0.2, solver=solver or "CLARABEL",
                      solver_status="optimal", validation={"max_eig_M": -1e-3, "margin_required": 1e-6})

    def falsify(net: Any, *, input_range: Any = None, seed: int = 0, budget_seconds: float = 2.0) -> Any:
        CALLS.append("falsify")
        if scenario == "unstable":
            return Counterexample("multiple_equilibria", "two equilibria for u = 0",
                                  {"u": [0.0], "x1": [0.9], "x2": [-0.9], "disproves": ["delta_iss", "gas"]}, residual=1e-13)
        if scenario == "non_contracting":
            return Counterexample("non_contracting_pair", "a pair that moves apart", {"x1": [0.1], "disproves": ["delta_iss"]}, 1e-14)
        return None

    def search(net: Any, *, input_range: Any = None, seed: int = 0, budget: Any = None, deadline: Any = None) -> Any:
        cex = falsify(net, input_range=input_range, seed=seed)
        return types.SimpleNamespace(counterexample=cex, unproved=(), truncated=False, seconds=0.01,
                                     to_dict=lambda: {"seed": seed, "found": None if cex is None else cex.kind})

    def falsification_check(net: Any, cex: Counterexample, prop: Property) -> CheckResult:
        CALLS.append(f"falsification_check:{prop.value}")
        if prop.value not in cex.data["disproves"]:  # as the real one does
            raise NotApplicableError(f"a {cex.kind} witness does not disprove {prop.value}")
        return CheckResult("falsify." + cex.kind, prop, CheckStatus.DISPROVED, "falsification",
                           message=cex.description, counterexample=cex, seconds=0.02)

    mods = {
        "certify.importers": {"load_model": load_model},
        "certify.criteria.diss": {"check_diss": check_diss},
        "certify.snof": {"from_network": from_network},
        "certify.criteria.lmi": {"check_lmi": check_lmi},
        "certify.falsify": {"falsify": falsify, "search": search, "falsification_check": falsification_check},
    }
    out = {}
    for name, attrs in mods.items():
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        out[name] = mod
    return out


def install(scenario: str, setitem: Callable[[Any, str, Any], None] | None = None) -> None:
    """Put the fake modules for ``scenario`` into ``sys.modules`` (via ``setitem`` when given)."""
    CALLS.clear()
    for name, mod in _modules(scenario).items():
        if setitem is None:
            sys.modules[name] = mod
        else:
            setitem(sys.modules, name, mod)


def write_sitecustomize(folder: Path) -> Path:
    """A ``sitecustomize.py`` that installs the stubs named by ``$CERTIFY_TEST_SCENARIO`` at start-up."""
    tests_dir = Path(__file__).resolve().parent
    text = (
        "import os, sys\n"
        "if os.environ.get('CERTIFY_TEST_SCENARIO'):\n"
        f"    sys.path.insert(0, {str(tests_dir)!r})\n"
        "    import test_cli_stubs\n"
        "    test_cli_stubs.install(os.environ['CERTIFY_TEST_SCENARIO'])\n"
        "    sys.path.pop(0)\n"
    )
    path = folder / "sitecustomize.py"
    path.write_text(text, encoding="utf-8")
    return path
