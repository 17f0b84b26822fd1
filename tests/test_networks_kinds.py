"""The layer-kind registry (certify/networks/kinds.py) is complete, consistent, and what the stages use."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import certify.networks as networks
from certify.errors import NotApplicableError
from certify.networks import ElmanLayer, GRULayer, LPGRNNLayer, Network
from certify.networks.kinds import GATED_KINDS, KINDS, SIDECAR_ARCHITECTURES, kind_named, kind_of, resolve


def _layer_classes():
    return [obj for name in networks.__all__ if isinstance(obj := getattr(networks, name), type)
            and isinstance(getattr(obj, "kind", None), str)]


def test_one_row_per_layer_class_named_by_its_kind():
    classes = _layer_classes()
    assert len(classes) == len(KINDS) == 6
    for cls in classes:
        assert KINDS[cls.kind].layer_class is cls


def test_every_named_implementation_exists_and_gated_rows_have_no_snof():
    from certify.criteria.diss_common import LayerContext  # noqa: F401  (the tests' signature)

    for row in KINDS.values():
        assert callable(resolve(row.diss_test)), row.name
        assert (row.snof is None) == row.gated, row.name
        if row.snof is not None:
            assert callable(resolve(row.snof))
    assert GATED_KINDS == {"gru", "lstm"}


def test_torch_twins_and_sidecar_rows_agree():
    pytest.importorskip("torch")
    from certify.importers.sidecar import ARCHITECTURES, SIDECAR_SCHEMA

    assert ARCHITECTURES == SIDECAR_ARCHITECTURES == ("gru", "lstm", "rnn", "lpgrnn", "ssnn")
    for row in KINDS.values():
        cls = resolve(row.torch_module)
        for key in row.sidecar_keys:
            assert key in SIDECAR_SCHEMA["properties"], (row.name, key)
        if row.sidecar_architecture is not None:
            assert kind_named(row.sidecar_architecture) is row
            assert callable(getattr(cls, "sidecar", None)), row.name


def test_the_core_never_imports_the_torch_side():
    code = ("import sys, certify.networks.kinds, certify.api, certify.snof.convert, certify.falsify; "
            "print(any(m == 'torch' or m.startswith('certify.train') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_snof_conversion_and_closed_form_test_dispatch_through_the_registry():
    from certify.criteria.diss import check_diss
    from certify.snof.convert import layer_to_snof

    gru = GRULayer(W_z=[[0.1]], U_z=[[0.2]], b_z=[0.0], W_r=[[0.1]], U_r=[[0.2]], b_r=[0.0], W_n=[[0.1]],
                   U_n=[[0.2]], b_in=[0.0], b_hn=[0.0])
    with pytest.raises(NotApplicableError, match="GRU layers have no exact SNOF"):
        layer_to_snof(gru)
    assert kind_of(gru).gated
    layer = ElmanLayer(W=[[1.0]], U=[[0.5]], b=[0.0])
    assert layer_to_snof(layer).m == 1
    assert [c.criterion for c in check_diss(Network((layer,)))][-1] == "closed_form_cascade"
    with pytest.raises(KeyError):
        kind_of(object())
    with pytest.raises(KeyError, match="unknown layer kind"):
        kind_named("transformer")


def test_search_facts_per_kind():
    """The counterexample search's boxes come from the registry (hand values)."""
    from certify.falsify import _bounded_box, _can_grow, _state_scale

    tanh = ElmanLayer(W=[[1.0]], U=[[0.5]], b=[0.0])
    relu = ElmanLayer(W=[[1.0]], U=[[0.5]], b=[0.0], activation="relu")
    lp = LPGRNNLayer(W_r=[[0.1]], U_r=[[0.1]], b_r=[0.0], W_h=[[0.1]], U_h=[[0.1]], V_h=[[0.1]], b_h=[0.0],
                     z=[0.5])
    net = Network((tanh, ElmanLayer(W=[[1.0]], U=[[0.5]], b=[0.0])))
    assert _bounded_box(net).tolist() == [1.0, 1.0] and _state_scale(net).tolist() == [1.0, 1.0]
    assert not _can_grow(net)
    net = Network((relu,))
    assert _bounded_box(net).tolist() == [np.inf] and _state_scale(net).tolist() == [3.0] and _can_grow(net)
    assert _bounded_box(Network((lp,))).tolist() == [1.0] and not _can_grow(Network((lp,)))
