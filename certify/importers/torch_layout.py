"""PyTorch weight layouts → canonical layers (shared by the state-dict importer and certify.train).

PyTorch gate orders: GRU ``[r|z|n]`` (``b_hn`` = the n-block of ``bias_hh``, kept apart), LSTM
``[i|f|g|o]``; biases outside every product are summed (``bias_ih + bias_hh``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from certify.networks import ElmanLayer, GRULayer, LSTMLayer


def layer_from_torch_weights(kind: str, W: np.ndarray, U: np.ndarray, bi: np.ndarray, bh: np.ndarray, *,
                             reset_after: bool = True, nonlinearity: str = "tanh") -> Any:
    """One canonical layer from PyTorch-ordered ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``.

    >>> layer_from_torch_weights("rnn", np.ones((1, 1)), np.zeros((1, 1)), np.zeros(1), np.zeros(1)).kind
    'elman'
    """
    H = U.shape[1]
    blk = lambda a, i: a[i * H:(i + 1) * H]
    if kind == "gru":
        return GRULayer(W_z=blk(W, 1), W_r=blk(W, 0), W_n=blk(W, 2), U_z=blk(U, 1), U_r=blk(U, 0), U_n=blk(U, 2),
                        b_z=blk(bi, 1) + blk(bh, 1), b_r=blk(bi, 0) + blk(bh, 0), b_in=blk(bi, 2), b_hn=blk(bh, 2),
                        reset_after=reset_after)
    if kind == "lstm":
        kw = {}
        for i, g in enumerate("ifgo"):
            kw[f"W_{g}"], kw[f"U_{g}"], kw[f"b_{g}"] = blk(W, i), blk(U, i), blk(bi, i) + blk(bh, i)
        return LSTMLayer(**kw)
    return ElmanLayer(W=W, U=U, b=bi + bh, activation=nonlinearity)
