"""Batch checks: many models (files, folders, globs, manifests), local worker pools or Ray/Dask, a result cache.

The command line's ``certify check A.onnx models/ 'ckpt/**/*.pt' models.toml --jobs 4 --cache .certify-cache``
uses :func:`expand` to list the models, one :class:`~certify.request.CheckRequest` per model, and
:func:`run_batch` to check them.

>>> from certify.networks import ElmanLayer, Network
>>> from certify.request import CheckRequest
>>> net = Network(layers=(ElmanLayer(W=[[0.5]], U=[[0.3]], b=[0.0]),))
>>> [o.report.verdict.value for o in run_batch([CheckRequest(net, method="diss")], jobs=1)]
['certified']
"""

from __future__ import annotations

from certify.batch.cache import ResultCache, cache_key
from certify.batch.inputs import BatchItem, expand, is_manifest, parse_range, read_manifest
from certify.batch.runner import ENGINES, Outcome, check_one, run_batch

__all__ = ["ENGINES", "BatchItem", "Outcome", "ResultCache", "cache_key", "check_one", "expand", "is_manifest",
           "parse_range", "read_manifest", "run_batch"]
