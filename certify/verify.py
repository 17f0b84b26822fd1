"""Re-check a saved report's counterexample without any search: ``certify verify REPORT MODEL``.

An ``unstable`` report carries the interval proof of its witness (Krawczyk boxes, the constant input,
the period).  :func:`verify_counterexample` reads the report and the model (and, for a closed loop,
the plant or loop file), rebuilds the map, and repeats the proof in ball arithmetic
(:func:`certify.witness.proofs.verify_witness`).  Nothing from the original run is trusted but the
numbers it names: the boxes either contain the claimed equilibria / periodic point of *this* model,
or the re-check fails.

>>> from certify.networks import ElmanLayer, Network
>>> import certify
>>> net = Network(layers=(ElmanLayer(W=[[0.0]], U=[[2.0]], b=[0.0]),))
>>> report = certify.check(net).to_dict()
>>> report["verdict"], verify_counterexample(report, net).proved
('unstable', True)
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from typing import Any

import numpy as np

from certify.errors import InvalidInputError

MAX_REPORT_BYTES = 64 * 1024 * 1024


def read_report(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON report file (one report, or the array ``certify check`` writes for several models)."""
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise InvalidInputError(f"cannot read the report {p}: {exc.strerror or exc}.") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInputError(f"the report {p} is not a regular file.")
    if st.st_size > MAX_REPORT_BYTES:
        raise InvalidInputError(f"the report {p} is larger than {MAX_REPORT_BYTES >> 20} MiB.")
    try:
        with open(p, "rb") as fh:
            return json.loads(fh.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"the report {p} is not a JSON report ({type(exc).__name__}).") from None


def _pick(report: Any, sha: str | None) -> Mapping[str, Any]:
    if isinstance(report, list):
        if sha:
            hits = [r for r in report if isinstance(r, Mapping) and (r.get("model") or {}).get("sha256") == sha]
            if len(hits) == 1:
                return hits[0]
        hits = [r for r in report if isinstance(r, Mapping) and r.get("counterexample")]
        if len(hits) != 1:
            raise InvalidInputError("the report file holds several reports; none matches the model's SHA-256 "
                                    "unambiguously.")
        return hits[0]
    if not isinstance(report, Mapping):
        raise InvalidInputError("the report is not a JSON object.")
    return report


def verify_counterexample(report: Any, model: Any, *, plant: str | None = None, loop: str | None = None) -> Any:
    """Repeat the interval proof of ``report``'s counterexample for ``model``.

    Parameters
    ----------
    report : path or Mapping or list
        A JSON report (``Report.to_dict()``) or its file.
    model : path or Network
        The model the report is about (its SHA-256 must match the report's when both are known).
    plant, loop : str, optional
        For a closed-loop report: the built-in plant or loop file (default: the ones the report names).

    Returns
    -------
    certify.witness.proofs.WitnessProof
        ``proved`` tells whether the proof holds again.
    """
    from certify.api import load_model
    from certify.networks import Network

    data = read_report(report) if isinstance(report, (str, os.PathLike)) else report
    net = model if isinstance(model, Network) else load_model(model)
    sha = net.info.sha256 or None
    if sha is None and isinstance(model, (str, os.PathLike)):
        from certify.api import file_sha256

        sha = file_sha256(model)
    try:
        return _verify(data, net, sha, plant, loop)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise InvalidInputError(f"malformed report or counterexample proof: {type(exc).__name__}: {exc}") from None


def _verify(data: Any, net: Any, sha: str | None, plant: str | None, loop: str | None) -> Any:
    from certify.networks import InputRange
    from certify.witness.proofs import verify_witness

    rep = _pick(data, sha)
    model = rep.get("model")
    claimed = model.get("sha256") if isinstance(model, Mapping) else None
    if sha and claimed and claimed != sha:
        raise InvalidInputError(f"the report is about another model file (SHA-256 {claimed[:12]}…, this model "
                                f"{sha[:12]}…).")
    cex = rep.get("counterexample")
    cdata = cex.get("data") if isinstance(cex, Mapping) else None
    if not isinstance(cdata, Mapping) or not isinstance(cdata.get("proof"), Mapping):
        raise InvalidInputError("the report has no counterexample with an interval proof to re-check "
                                f"(its verdict is {rep.get('verdict')!r}).")
    proof = cdata["proof"]
    if rep.get("subject") == "loop":
        from certify.loop.assemble import assemble
        from certify.loop.check import resolve_loop
        from certify.witness.systems import SNOFSystem

        described: Any = rep.get("loop") if isinstance(rep.get("loop"), Mapping) else {}
        if plant is None and loop is None:
            loop = described.get("loop_file") if isinstance(described.get("loop_file"), str) else None
            named = described.get("builtin_plant")
            plant = None if loop else (named if isinstance(named, str) else None)
        if plant is None and loop is None:
            raise InvalidInputError("the loop report names no loop file or built-in plant: pass --plant or --loop.")
        spec = resolve_loop(plant, loop)
        if any(layer.kind in ("gru", "lstm") for layer in net.layers):  # no SNOF: the gated loop map
            from certify.loop.gated import GatedLoopSystem, gated_loop

            return verify_witness(GatedLoopSystem(gated_loop(net, spec)), proof)
        return verify_witness(SNOFSystem(assemble(net, spec).form), proof)
    assumptions: Any = rep.get("assumptions") if isinstance(rep.get("assumptions"), Mapping) else {}
    ir = assumptions.get("input_range")
    box = None if not isinstance(ir, Mapping) else InputRange(low=ir["low"], high=ir["high"])
    return verify_witness(net, proof, input_range=box)


def is_certificate(data: Any) -> bool:
    """Whether ``data`` is an exported LMI certificate (not a report)."""
    return isinstance(data, Mapping) and data.get("format") == "certify-lmi-certificate"


def certificate_matches(data: Mapping[str, Any], model: Any, *, plant: str | None = None,
                        loop: Any = None, rtol: float = 1e-9) -> tuple[bool, str]:
    """Whether the certificate's Luré system is the one certify derives from ``model`` (and the loop).

    The SNOF is rebuilt from the model (closed around ``plant``/``loop`` for a loop certificate, by
    default the ones the certificate names), shifted to its equilibrium and normalised exactly as the
    check did; every matrix must agree to ``rtol``.
    """
    from certify.api import load_model
    from certify.criteria.lmi import lure_system
    from certify.networks import Network
    from certify.snof.transform import equilibrium

    net = model if isinstance(model, Network) else load_model(model)
    if data.get("subject") == "loop":
        from certify.loop.assemble import assemble
        from certify.loop.check import resolve_loop

        if plant is None and loop is None:
            plant = data.get("builtin_plant")
            if plant is None:
                return False, "the loop certificate names no built-in plant: pass plant= or loop=."
        form = assemble(net, resolve_loop(plant, loop)).form
    else:
        from certify.snof import from_network

        form = from_network(net)
    sys0, _, _ = lure_system(form, equilibrium(form, None))
    s = data["system"]
    for key in ("A", "B", "C", "D", "K"):
        a, b = np.asarray(s[key], dtype=np.float64), np.asarray(getattr(sys0, key))
        if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.abs(b).max(initial=0)))):
            return False, f"the certificate's {key} differs from the system certify derives from this model."
    return True, "the certificate's Luré system is this model's"


def verify_certificate(data: Any) -> Any:
    """Re-check an exported LMI certificate in float64, without any solver.

    The matrix ``M`` of the certificate's criterion is rebuilt from the stored Luré system, ``P`` and the
    multipliers, and must satisfy ``max eig(M) ≤ −margin`` and ``min eig(P) ≥ margin`` with the
    rounding margins of :func:`certify.criteria.validate.validate_certificate`.

    >>> import certify
    >>> from certify.networks import ElmanLayer, Network
    >>> r = certify.check(Network(layers=(ElmanLayer(W=[[0.5]], U=[[0.3]], b=[0.1]),)), method="lmi")
    >>> verify_certificate(r.certificate).ok
    True
    """
    from certify.criteria.validate import validate_certificate
    from certify.sdp.types import LMICertificate, LureSystem

    if isinstance(data, (str, os.PathLike)):
        data = read_report(data)
    if not is_certificate(data):
        raise InvalidInputError("not a certify LMI certificate (expected \"format\": \"certify-lmi-certificate\").")
    try:
        s = data["system"]
        sys = LureSystem(A=s["A"], B=s["B"], C=s["C"], D=s["D"], K=s["K"], odd=bool(s.get("odd", False)))
        cert = LMICertificate(str(data["criterion"]), data["P"], dict(data.get("multipliers") or {}))
        return validate_certificate(sys, cert)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise InvalidInputError(f"malformed certificate: {type(exc).__name__}: {exc}") from None


def render(proof: Any) -> str:
    """A few lines for people: what was re-checked and whether it holds."""
    lines = [f"witness: {proof.kind}" + (f" (period {proof.period})" if proof.kind == "limit_cycle" else ""),
             f"constant input u = {list(proof.u)}"]
    for i, b in enumerate(proof.boxes):
        lines.append(f"box {i}: radius {b.radius:.3g}, Krawczyk contraction ≤ {b.contraction:.3g}, "
                     f"inclusion {b.inclusion:.3g} ({'proved' if b.proved else 'NOT proved'})")
    lines.append("re-check: " + ("the proof holds: the property is false for this model."
                                 if proof.proved else f"the proof does NOT hold ({proof.reason})."))
    return "\n".join(lines)
