"""Closed loops: LTI plants, saturated PI controllers, scaling, and their assembly into one SNOF."""

from __future__ import annotations

from typing import Any

__all__ = ["check_closed_loop", "check_regional", "list_plants"]


def check_closed_loop(*args: Any, **kwargs: Any) -> Any:
    """Certify global asymptotic stability of the closed loop around a network.

    A lazy wrapper (it needs cvxpy) of :func:`certify.loop.check.check_closed_loop`; the loop is
    assembled into one SNOF and checked with the Luré–Postnikov LMI (docs/theory.md).  Every
    parameter after ``net`` is keyword-only.

    Parameters
    ----------
    net : Network
        The soft sensor, in network units.
    plant : str, optional
        A built-in plant (:func:`list_plants`) with its built-in loop.
    loop : str, optional
        A loop file (TOML, docs/loops.md).
    method : {"auto", "lmi", "all", "diss"}
        ``diss`` does not apply to loops and yields a ``not_applicable`` check.
    solver : str, optional
        Conic solver for the LMI.
    timeout : float, optional
        Seconds for the solver.
    simulate : bool
        Cross-check by simulating the loop (default ``True``).

    Returns
    -------
    LoopOutcome
        ``checks`` (the model-scope ``loop.gas`` check decides), ``description`` (plant, controller,
        equilibrium, ...), ``counterexample``, ``simulation``.

    Examples
    --------
    >>> import numpy as np
    >>> from certify.networks import ElmanLayer, LinearHead, Network
    >>> net = Network((ElmanLayer(W=np.zeros((1, 4)), U=[[0.5]], b=[0.0]),),
    ...               head=LinearHead(W=[[0.1]], b=[-30.0], D=[[1.2, 0, 0, 0]]))
    >>> out = check_closed_loop(net, plant="boiler", simulate=False)
    >>> [(c.name, c.status.value) for c in out.checks]
    [('loop.gas', 'proved')]
    """
    from certify.loop.check import check_closed_loop as impl

    return impl(*args, **kwargs)


def check_regional(*args: Any, **kwargs: Any) -> Any:
    """Certify an invariant ellipsoid in the region of attraction of a SNOF's equilibrium (never GAS).

    A lazy wrapper (it needs cvxpy) of :func:`certify.loop.regional.check_regional`; the result's property
    is ``region_of_attraction`` and it never makes a verdict ``certified`` (docs/theory.md §6.2,
    docs/loops.md "Regional results").  For an assembled loop use
    :func:`certify.loop.regional.check_loop_region`, which labels the states.

    >>> from certify.snof import SNOF, Channel
    >>> r = check_regional(SNOF(A=[[1.2]], B_p=[[-0.5]], C_q=[[1.0]], channels=(Channel("tanh"),)))
    >>> r.name, r.property.value, r.status.value
    ('loop.region', 'region_of_attraction', 'proved')
    """
    from certify.loop.regional import check_regional as impl

    return impl(*args, **kwargs)


def list_plants() -> list[dict[str, Any]]:
    """The built-in plants (what ``certify plants`` prints): one dictionary per plant.

    See :func:`certify.loop.plants.list_plants`; the keys are ``name``, ``summary`` and the plant's
    ``describe()`` fields (``Ts``, ``inputs``, ``outputs``, operating point, limits, ...).

    >>> [(p["name"], p["Ts"]) for p in list_plants()]
    [('boiler', 10.0), ('quadruple_tank', 15.0)]
    """
    from certify.loop.plants import list_plants as impl

    return impl()
