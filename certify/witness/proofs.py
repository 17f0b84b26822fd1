"""Proofs that a network has two equilibria or a periodic orbit, valid in exact real arithmetic.

A witness is *proved* when

``multiple_equilibria``
    two Krawczyk boxes, each proved to contain exactly one zero of the equilibrium residual ``G``
    (:func:`certify.witness.layers.residual`, whose zeros are exactly the fixed points of the
    network's step for the constant input ``u``), are disjoint: the network has two distinct
    equilibria for ``u``, so the trajectories starting at them never approach (δISS and GAS false);
``limit_cycle``
    a Krawczyk box ``B`` is proved to contain exactly one zero of ``f^p(x) − x`` and the ball
    enclosure of ``f(B)`` is disjoint from ``B``: the fixed point ``x*`` of ``f^p`` in ``B`` is not an
    equilibrium, so its orbit is periodic and non-constant (GAS false; ``x*`` and ``f(x*)`` never
    approach, so δISS is false).

Every quantity is computed in ball arithmetic (:mod:`certify.witness.krawczyk`); the input ``u`` and
the box centres are float64 numbers used exactly.  :func:`verify_witness` repeats a proof from the
data stored in a report, without any search.

>>> import numpy as np
>>> from certify.networks import ElmanLayer, Network
>>> net = Network(layers=(ElmanLayer(W=[[0.0]], U=[[2.0]], b=[0.0]),))   # x⁺ = tanh(2x)
>>> w = prove_equilibria(net, np.zeros(1), [np.array([-0.9575040240772687]), np.array([0.9575040240772687])])
>>> w.proved, [round(b.center[0], 4) for b in w.boxes]
(True, [-0.9575, 0.9575])
>>> verify_witness(net, w.to_dict()).proved
True
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from certify.witness.dual import ArbOps, Dual
from certify.witness.krawczyk import PRECISION_BITS, BoxProof, arb_vector, boxes_disjoint, krawczyk
from certify.witness.systems import as_system

RELATIVE_RADII = (1e-13, 1e-11, 1e-9, 1e-7, 1e-5)  # box radii tried, relative to max(1, ‖x̃‖∞)


@dataclass(frozen=True)
class WitnessProof:
    """A proved (or failed) witness; ``to_dict`` is what reports store and :func:`verify_witness` reads.

    Parameters
    ----------
    kind : str
        ``"multiple_equilibria"`` or ``"limit_cycle"``.
    u : tuple of float
        The constant input.
    boxes : tuple of BoxProof
        One per equilibrium (two), or the one periodic point.
    period : int
        ``p`` for a limit cycle, 1 for equilibria.
    proved : bool
        Whether every condition of the module docstring was shown.
    reason : str
        Why not, when not proved.
    seconds : float
        Time the proof took.
    """

    kind: str
    u: tuple[float, ...]
    boxes: tuple[BoxProof, ...]
    period: int = 1
    proved: bool = False
    reason: str = ""
    seconds: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "krawczyk", "precision_bits": PRECISION_BITS, "kind": self.kind, "u": list(self.u),
                "period": self.period, "boxes": [b.to_dict() for b in self.boxes], "proved": self.proved,
                "reason": self.reason, **dict(self.extra)}


def _residual_map(net: Any, u: np.ndarray, ops: ArbOps):
    system = as_system(net)
    return lambda X: system.map(ops, X, u, "residual")


def _cycle_map(net: Any, u: np.ndarray, p: int, ops: ArbOps):
    system = as_system(net)

    def F(X: Dual) -> Dual:
        Y = X
        for _ in range(p):
            Y = system.map(ops, Y, u, "step")
        return Y - X
    return F


def _prove_box(F: Any, x: np.ndarray, radii: Sequence[float] | None) -> BoxProof:
    scale = max(1.0, float(np.abs(x).max()))
    tried = radii if radii is not None else [r * scale for r in RELATIVE_RADII]
    last = None
    for r in tried:
        last = krawczyk(F, x, r)
        if last.proved:
            return last
        if not np.isfinite(last.contraction):
            break  # enclosure not finite or singular: larger boxes will not help
    assert last is not None
    return last


def prove_equilibrium(net: Any, u: np.ndarray, x: np.ndarray, radius: float | None = None) -> BoxProof:
    """Krawczyk box around the approximate equilibrium ``x`` of ``net`` for the constant input ``u``."""
    F = _residual_map(net, np.asarray(u, dtype=np.float64), ArbOps())
    return _prove_box(F, np.asarray(x, dtype=np.float64), None if radius is None else [radius])


def prove_equilibria(net: Any, u: np.ndarray, points: Sequence[np.ndarray],
                     radii: Sequence[float | None] | None = None) -> WitnessProof:
    """Prove two distinct equilibria among ``points`` (tried in order; stops at the first proved pair)."""
    t0 = time.perf_counter()
    u = np.asarray(u, dtype=np.float64)
    ops = ArbOps()
    F = _residual_map(net, u, ops)
    proved: list[BoxProof] = []
    tried: list[BoxProof] = []
    for i, x in enumerate(points):
        r = None if radii is None else radii[i]
        box = _prove_box(F, np.asarray(x, dtype=np.float64), None if r is None else [r])
        tried.append(box)
        if not box.proved:
            continue
        for other in proved:
            if boxes_disjoint(other, box):
                return WitnessProof("multiple_equilibria", tuple(map(float, u)), (other, box), 1, True, "",
                                    time.perf_counter() - t0)
        proved.append(box)
    reason = (f"{len(proved)} of {len(tried)} candidate equilibria proved"
              + (" (their boxes overlap)" if len(proved) > 1 else ""))
    return WitnessProof("multiple_equilibria", tuple(map(float, u)), tuple(tried), 1, False, reason,
                        time.perf_counter() - t0)


def prove_cycle(net: Any, u: np.ndarray, x0: np.ndarray, period: int, radius: float | None = None) -> WitnessProof:
    """Prove that ``x0`` approximates a point of a non-constant periodic orbit of period ``period``."""
    from flint import ctx

    t0 = time.perf_counter()
    u = np.asarray(u, dtype=np.float64)
    ops = ArbOps()
    box = _prove_box(_cycle_map(net, u, int(period), ops), np.asarray(x0, dtype=np.float64),
                     None if radius is None else [radius])
    ok, reason = box.proved, "" if box.proved else "the Krawczyk test failed for f^p(x) − x"
    if ok:
        with ctx.workprec(PRECISION_BITS):
            image = as_system(net).map(ops, Dual(arb_vector(np.array(box.center), box.radius), None), u, "step").val
            from flint import arb

            apart = any((img - arb(c)).abs_lower() > arb(box.radius) for img, c in zip(image, box.center))
        if not apart:
            ok, reason = False, "f(B) meets B: the periodic point could be an equilibrium"
    return WitnessProof("limit_cycle", tuple(map(float, u)), (box,), int(period), ok, reason,
                        time.perf_counter() - t0)


def verify_witness(net: Any, proof: Mapping[str, Any], input_range: Any = None) -> WitnessProof:
    """Repeat a proof from its stored data (``WitnessProof.to_dict()``): no search, same boxes.

    Raises ``ValueError`` for malformed data (wrong sizes, unknown kind).
    """
    kind = proof.get("kind")
    net = as_system(net)
    u = np.asarray(proof["u"], dtype=np.float64)
    if u.shape != (net.n_inputs,) or not np.all(np.isfinite(u)):
        raise ValueError(f"the witness input has shape {u.shape}; the network has {net.n_inputs} inputs.")
    boxes = list(proof["boxes"])
    centers = [np.asarray(b["center"], dtype=np.float64) for b in boxes]
    radii = [float(b["radius"]) for b in boxes]
    if any(c.shape != (net.n_states,) for c in centers):
        raise ValueError(f"a witness box has the wrong dimension; the network has {net.n_states} states.")
    info = getattr(getattr(net, "net", None), "info", None)
    box_range = input_range if input_range is not None else getattr(info, "input_range", None)
    if box_range is not None and not (np.all(u >= box_range.low) and np.all(u <= box_range.high)):
        return WitnessProof(str(kind), tuple(map(float, u)), (), 1, False,
                            "the witness input lies outside the network's input range")
    if kind == "multiple_equilibria":
        if len(centers) != 2:
            raise ValueError("a multiple-equilibria witness needs exactly two boxes.")
        return prove_equilibria(net, u, centers, radii)
    if kind == "limit_cycle":
        if len(centers) != 1:
            raise ValueError("a limit-cycle witness needs exactly one box.")
        period = int(proof["period"])
        if period < 2:
            raise ValueError("a limit-cycle witness needs a period of at least 2.")
        return prove_cycle(net, u, centers[0], period, radii[0])
    raise ValueError(f"unknown witness kind {kind!r}.")
