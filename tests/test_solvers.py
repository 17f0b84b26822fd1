"""Backend registry: names, errors, strict status map, and one feasible/infeasible suite per backend."""

from __future__ import annotations

import numpy as np
import pytest

from certify.criteria import solvers
from certify.criteria.lmi import solve_lmi
from certify.criteria.validate import LureSystem
from certify.errors import InvalidInputError, SolverError


def test_registry_and_lookup():
    avail = solvers.available_solvers()
    assert avail[:2] == ("clarabel", "scs")
    assert solvers.get_solver("CLARABEL").accuracy == "high"
    with pytest.raises(InvalidInputError, match="installed SDP solvers: clarabel, scs"):
        solvers.get_solver("gurobi-sdp")
    if "mosek" not in avail:
        with pytest.raises(InvalidInputError, match="not installed"):
            solvers.get_solver("mosek")
    assert solvers.choose_solver(20).name == "clarabel"
    assert solvers.choose_solver(500).name == "scs"


class _FakeProblem:
    def __init__(self, status):
        self.status = status
        self.solver_stats = None

    def solve(self, **kw):
        self.kw = kw


@pytest.mark.parametrize("raw", ["user_limit", "unbounded", "solver_error", "something_new", None,
                                 "infeasible_inaccurate"])
def test_unknown_or_bad_status_is_an_error(raw):
    with pytest.raises(SolverError):
        solvers.solve(_FakeProblem(raw), solvers.get_solver("scs"))
    out = solvers.run(_FakeProblem(raw), solvers.get_solver("scs"))   # typed outcome, never "infeasible"
    assert out.status == "undecided" and not out.has_point and "could not decide" in out.message


@pytest.mark.parametrize("raw,mapped", [("optimal", "solved"), ("optimal_inaccurate", "inaccurate"),
                                        ("infeasible", "infeasible")])
def test_known_status_map_and_timeout_option(raw, mapped):
    prob = _FakeProblem(raw)
    out = solvers.solve(prob, solvers.get_solver("scs"), timeout=3.0)
    assert out.status == mapped and out.raw_status == raw
    assert prob.kw["time_limit_secs"] == 3.0 and prob.kw["solver"] == "SCS"
    with pytest.raises(SolverError, match="budget"):
        solvers.solve(_FakeProblem(raw), solvers.get_solver("scs"), timeout=0.0)
    assert prob.kw["eps_abs"] == 1e-5   # loose first try
    retry = _FakeProblem(raw)
    solvers.run(retry, solvers.get_solver("scs"), retry=True, options={"max_iters": 7})
    assert retry.kw["eps_abs"] == 1e-6 and retry.kw["max_iters"] == 7   # tighter retry; user options win


class _Boom(_FakeProblem):
    def solve(self, **kw):
        import cvxpy as cp

        raise cp.error.SolverError("Solver 'CLARABEL' failed.")


def test_numerical_failure_and_memory_refusal_are_undecided():
    out = solvers.run(_Boom("optimal"), solvers.get_solver("clarabel"))
    assert out.status == "undecided" and out.solver == "clarabel" and "numerical" in out.message
    prob = _FakeProblem("optimal")
    out = solvers.run(prob, solvers.get_solver("clarabel"), psd_orders=[4000])   # ~ 2 TB KKT: refused
    assert out.status == "undecided" and out.raw_status == "refused" and not hasattr(prob, "kw")
    assert solvers.estimate_memory(solvers.get_solver("scs"), [4000]) < solvers.available_memory()


def _t2(alpha):
    return LureSystem([[0.9, -0.9], [0.1, 0.8]], [[0.0], [alpha]], [[0.4, -0.4]], [[0.0]], [1.0], odd=True)


@pytest.mark.parametrize("name", solvers.available_solvers())
def test_every_backend_passes_the_same_suite(name):
    scalar_ok = LureSystem([[0.5]], [[-1.0]], [[1.0]], [[0.0]], [1.0])
    assert solve_lmi(scalar_ok, "circle", solver=name).proved
    assert solve_lmi(_t2(0.3), "circle", solver=name).proved
    assert not solve_lmi(_t2(0.6), "circle", solver=name).proved
    assert solve_lmi(_t2(0.7), "lure_postnikov", solver=name).proved
    assert not solve_lmi(_t2(1.2), "lure_postnikov", solver=name).proved
    # D ≠ 0 (nilpotent), two channels
    sys = LureSystem(np.diag([0.5, 0.3]), [[0.2, 0.1], [0.0, 0.3]], [[1.0, 0.0], [0.0, 1.0]],
                     [[0.0, 0.0], [0.8, 0.0]], [1.0, 0.5])
    assert solve_lmi(sys, "lure_postnikov", solver=name).proved
