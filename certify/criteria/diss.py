"""Closed-form ISS / δISS certificates for recurrent networks, layer by layer (issue "diss").

Entry point: :func:`check_diss`.  Every layer of the stack gets one check per property
(scope ``"layer{i}"``) and the network one model-level check per property (scope ``"model"``,
names ``"diss.iss"`` / ``"diss.delta_iss"``) that is proved iff every layer's check is proved: a
cascade of δISS (ISS) systems is δISS (ISS) (docs/theory.md §8).

Input bounds (docs/theory.md §8): layer 0 uses the declared input range (``input_range`` argument, else
``net.info.input_range``, else ``[−1, 1]`` *assumed* and recorded in ``quantities["assumptions"]``),
through its per-input absolute bound ``ū`` (``W·diag(ū)`` inside the norms); layer ``i > 0`` uses the
bound on layer ``i−1``'s output proved by that layer's check (GRU/LSTM/tanh-Elman: 1; LP-GRNN and
relu Elman: an invariant-box bound; SS-NN / affine cells: none, so gated layers above them are not
proved).  Certificates of gated layers hold on the invariant sets reported in ``quantities``
(``[−1, 1]ⁿ`` for GRU states, which every trajectory enters in finite time, Bonassi, Farina & Scattolini (2021) Lemma 2).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np

from certify.criteria.diss_common import PROPS, LayerContext, LayerOutcome, result
from certify.errors import InvalidInputError
from certify.networks import InputRange, Network
from certify.networks.kinds import kind_of, resolve
from certify.results import CheckResult, CheckStatus, Property

__all__ = ["ASSUMED_RANGE_NOTE", "check_diss", "resolve_input_range"]

ASSUMED_RANGE_NOTE = "assumed [-1, 1] (not declared)"


def _test_of(layer: Any) -> Any:
    """The closed-form test the layer-kind registry names for ``layer`` (None: no registered kind)."""
    try:
        return resolve(kind_of(layer).diss_test)
    except KeyError:
        return None


def resolve_input_range(net: Network, input_range: InputRange | None) -> tuple[InputRange, bool]:
    """The input range the theorems use and whether it was assumed (``[−1, 1]``, not declared).

    >>> from certify.networks import ElmanLayer
    >>> net = Network(layers=(ElmanLayer(W=[[1.0]], U=[[0.5]], b=[0.0]),))
    >>> rng, assumed = resolve_input_range(net, None)
    >>> rng.high.tolist(), assumed
    ([1.0], True)
    """
    rng = input_range if input_range is not None else net.info.input_range
    if rng is None:
        return InputRange.symmetric(net.n_inputs, 1.0), True
    if rng.low.shape[0] != net.n_inputs:
        raise InvalidInputError(
            f"the input range has {rng.low.shape[0]} entries but the network has {net.n_inputs} inputs."
        )
    return rng, False


def _unsupported(ctx: LayerContext, layer: Any) -> LayerOutcome:
    reason = f"no closed-form ISS/δISS criterion for layer kind {getattr(layer, 'kind', type(layer).__name__)!r}."
    checks = tuple(
        result(ctx, p, "closed_form", None, "", {}, 0.0, reason=reason, status=CheckStatus.NOT_APPLICABLE)
        for p in PROPS
    )
    return LayerOutcome(checks, None, reason)


def _failed(ctx: LayerContext, reason: str) -> LayerOutcome:
    checks = tuple(
        result(ctx, p, "closed_form", None, "", {}, 0.0, reason=reason, status=CheckStatus.ERROR) for p in PROPS
    )
    return LayerOutcome(checks, None, reason)


def _with_assumptions(c: CheckResult, assumptions: dict[str, str]) -> CheckResult:
    if not assumptions:
        return c
    q = dict(c.quantities)
    q["assumptions"] = dict(assumptions)
    return replace(c, quantities=q, message=c.message + " Input range " + assumptions["input_range"] + ".")


def _model_check(prop: Property, layer_checks: list[CheckResult], assumptions: dict[str, str]) -> CheckResult:
    statuses = [c.status for c in layer_checks]
    margins = [c.margin for c in layer_checks if c.margin is not None]
    margin = max(margins) if margins and len(margins) == len(layer_checks) else None
    worst_i = max(range(len(layer_checks)), key=lambda i: -math.inf if (mi := layer_checks[i].margin) is None
                  else mi)
    worst = layer_checks[worst_i]
    what = "δISS" if prop is Property.DELTA_ISS else "ISS"
    if all(s is CheckStatus.PROVED for s in statuses):
        status = CheckStatus.PROVED
        msg = (f"{what} proved for every layer (cascade); worst residual ν = {worst.margin:.6g} at "
               f"{worst.scope} ({worst.criterion}).")
    else:
        bad = next(c for c in layer_checks if c.status is not CheckStatus.PROVED)
        status = bad.status if bad.status in (CheckStatus.NOT_APPLICABLE, CheckStatus.ERROR) else CheckStatus.NOT_PROVED
        msg = f"{what} not proved: {bad.scope} ({bad.criterion}): {bad.message}"
        if worst.margin is not None:
            msg += f" Worst residual ν = {worst.margin:.6g} at {worst.scope}."
    q: dict[str, Any] = {
        "layers": [
            {"scope": c.scope, "criterion": c.criterion, "status": c.status.value, "nu": c.margin,
             "norm": c.quantities.get("norm"), "contraction_rate": c.quantities.get("contraction_rate"),
             "input_bound_source": c.quantities.get("input_bound_source")}
            for c in layer_checks
        ],
        "worst_layer": worst.scope,
    }
    if assumptions:
        q["assumptions"] = dict(assumptions)
        note = " Input range " + assumptions["input_range"] + "."
        msg = msg.replace(note, "") + note
    return CheckResult(
        name=f"diss.{prop.value}", property=prop, status=status, criterion="closed_form_cascade",
        message=msg, margin=margin, quantities=q, seconds=sum(c.seconds for c in layer_checks), scope="model",
    )


def check_diss(
    net: Network,
    *,
    input_range: InputRange | None = None,
    tol: float = 1e-9,
    full_2norm: bool | None = None,
) -> list[CheckResult]:
    """Closed-form ISS and δISS checks of every layer plus one model-level check per property.

    Parameters
    ----------
    net : Network
        The canonical network.
    input_range : InputRange or None
        Range of the network inputs; defaults to ``net.info.input_range``, else ``[−1, 1]`` is
        assumed and recorded (``quantities["assumptions"]``) and said in the messages.
    tol : float
        A residual proves its property only when ``ν < −tol`` (dominates the rounding of the norms).
    full_2norm : bool or None
        Spectral-norm variants (LSTM, Elman, SS-NN): always, never, or (None) when cheap or needed.

    Returns
    -------
    list of CheckResult
        ``[layer0 ISS, layer0 δISS, layer1 ISS, …, model ISS, model δISS]``.

    >>> from certify.networks import ElmanLayer
    >>> net = Network(layers=(ElmanLayer(W=[[1.0]], U=[[0.5]], b=[0.0]),))
    >>> [(c.name, c.status.value, round(c.margin, 6)) for c in check_diss(net)][-1]
    ('diss.delta_iss', 'proved', -0.5)
    """
    if not (tol >= 0.0 and math.isfinite(tol)):
        raise InvalidInputError(f"tol must be a finite non-negative number, got {tol!r}.")
    rng, assumed = resolve_input_range(net, input_range)
    assumptions = {"input_range": ASSUMED_RANGE_NOTE} if assumed else {}
    u_bar: np.ndarray | None = rng.abs_bound
    source = "assumed input range [-1, 1]" if assumed else "declared input range"
    per_layer: list[CheckResult] = []
    for i, layer in enumerate(net.layers):
        t0 = time.perf_counter()
        ctx = LayerContext(i, u_bar, source, tol, full_2norm)
        fn = _test_of(layer)
        try:
            outcome = _unsupported(ctx, layer) if fn is None else fn(layer, ctx)
        except np.linalg.LinAlgError as exc:  # an SVD / eigensolver did not converge: never a verdict
            outcome = _failed(ctx, f"a linear-algebra routine failed ({exc}); nothing is concluded.")
        dt = time.perf_counter() - t0
        for c in outcome.checks:
            c = replace(c, seconds=dt / len(outcome.checks))
            per_layer.append(_with_assumptions(c, assumptions))
        u_bar = outcome.out_bound
        source = f"output bound of layer {i}: {outcome.out_source}"
    model = [
        _model_check(prop, [c for c in per_layer if c.property is prop], assumptions) for prop in PROPS
    ]
    return per_layer + model
