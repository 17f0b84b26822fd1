"""Closed loops: LTI plants, saturated PI controllers, scaling, and their assembly into one SNOF."""

from __future__ import annotations

from typing import Any

__all__ = ["check_closed_loop", "list_plants"]


def check_closed_loop(*args: Any, **kwargs: Any) -> Any:
    """See :func:`certify.loop.check.check_closed_loop` (imported lazily: it needs cvxpy)."""
    from certify.loop.check import check_closed_loop as impl

    return impl(*args, **kwargs)


def list_plants() -> list[dict[str, Any]]:
    """See :func:`certify.loop.plants.list_plants`."""
    from certify.loop.plants import list_plants as impl

    return impl()
