"""Canonical, validated, float64 representation of recurrent networks (the semantic reference)."""

from certify.networks.affine_cell import AffineCell
from certify.networks.base import (
    InputRange,
    Layer,
    LinearHead,
    MinMaxScaling,
    ModelInfo,
    Network,
    Simulation,
)
from certify.networks.elman import ElmanLayer
from certify.networks.gru import GRULayer
from certify.networks.lpgrnn import LPGRNNLayer
from certify.networks.lstm import LSTMLayer
from certify.networks.state_space import StateSpaceLayer

__all__ = [
    "AffineCell",
    "ElmanLayer",
    "GRULayer",
    "InputRange",
    "LPGRNNLayer",
    "LSTMLayer",
    "Layer",
    "LinearHead",
    "MinMaxScaling",
    "ModelInfo",
    "Network",
    "Simulation",
    "StateSpaceLayer",
]
