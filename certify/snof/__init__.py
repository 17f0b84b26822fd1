"""Standard nonlinear operator form (SNOF): the form, channels, interconnection, loop transformations,
network conversion, and the LMI check entry point (docs/theory.md §1–§5, §7)."""

from __future__ import annotations

from typing import Any

from certify.snof.channels import Channel
from certify.snof.connect import interconnect, redheffer, star_product
from certify.snof.convert import from_network, layer_to_snof
from certify.snof.form import SNOF, WellPosedness

__all__ = [
    "SNOF",
    "Channel",
    "WellPosedness",
    "check_snof",
    "from_network",
    "interconnect",
    "layer_to_snof",
    "redheffer",
    "star_product",
]


def check_snof(form: SNOF, criterion: str = "auto", solver: str | None = None, **kwargs: Any):
    """Convenience wrapper of :func:`certify.criteria.lmi.check_lmi` (imported lazily).

    >>> import numpy as np
    >>> f = SNOF(A=[[0.5]], B_p=[[-1.0]], C_q=[[1.0]], channels=(Channel("tanh"),))
    >>> check_snof(f).status.value
    'proved'
    """
    from certify.criteria.lmi import check_lmi

    return check_lmi(form, criterion=criterion, solver=solver, **kwargs)
