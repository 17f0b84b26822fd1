"""A result cache for batch runs: a report is reused when nothing that could change it has changed.

The key is the SHA-256 of

* every byte of the model file, of its sidecar (``<model>.certify.json``) and of every file in the
  model's folder that the model names (ONNX external data such as ``model.onnx.data``);
* the loop file and the files in its folder that it names (a plant file), when a loop file is used;
* every setting of the :class:`~certify.request.CheckRequest` (plant, method, solver and options, input
  range, timeout, seed, search) and the plant-size limit;
* the certify version.

Reports of internal errors and reports in which a check did not run to its end (status ``error``: a
solver failure or a timeout) are never stored: they depend on the machine, not only on the inputs.
Entries are JSON reports (``<dir>/<2 hex>/<key>.json``), written atomically, so several CI jobs may
share a folder; a damaged entry is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from typing import Any

from certify.request import CheckRequest

#: Largest model file whose bytes are scanned for the names of sibling files (external data).
_SCAN_LIMIT = 1 << 28


def _hash_file(h: Any, path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return True


def _named_siblings(path: str) -> list[str]:
    """Regular files beside ``path`` whose names occur in its bytes (external data, plant files)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        if os.path.getsize(path) > _SCAN_LIMIT:
            return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f != os.path.basename(path))
        with open(path, "rb") as fh:
            data = fh.read()
        names = os.listdir(folder)
    except OSError:
        return []
    own = os.path.basename(path)
    return sorted(os.path.join(folder, f) for f in names
                  if f != own and f.encode("utf-8") in data and os.path.isfile(os.path.join(folder, f)))


def _files_digest(path: str) -> str | None:
    h = hashlib.sha256()
    if not _hash_file(h, path):
        return None
    for extra in [path + ".certify.json"] + _named_siblings(path):
        h.update(b"\0" + os.path.basename(extra).encode("utf-8") + b"\0")
        _hash_file(h, extra)
    return h.hexdigest()


def cache_key(request: CheckRequest) -> str | None:
    """The cache key of ``request``, or ``None`` when it cannot be cached (not a regular model file).

    Examples
    --------
    >>> import os, tempfile
    >>> m = os.path.join(tempfile.mkdtemp(), "m.onnx")
    >>> _ = open(m, "wb").write(b"weights")
    >>> k1 = cache_key(CheckRequest(m, method="diss"))
    >>> k1 == cache_key(CheckRequest(m, method="diss")), k1 == cache_key(CheckRequest(m, method="lmi"))
    (True, False)
    >>> _ = open(m, "wb").write(b"other weights")
    >>> k1 == cache_key(CheckRequest(m, method="diss"))
    False
    """
    from certify import __version__

    if request.model_path is None:
        return None
    model = _files_digest(request.model_path)
    if model is None:
        return None
    loop: Any = None
    if isinstance(request.loop, str):
        loop = _files_digest(request.loop) or f"missing:{request.loop}"
    elif request.loop is not None:
        return None  # a LoopSpec built in Python: no stable bytes to hash
    ir = request.input_range
    if ir is not None and hasattr(ir, "low"):
        ir = (list(map(float, ir.low)), list(map(float, ir.high)))
    settings = {
        "model": model, "loop": loop, "plant": request.plant, "method": request.method, "solver": request.solver,
        "solver_options": {k: repr(v) for k, v in sorted(request.solver_options.items())},
        "input_range": ir, "input_range_source": request.input_range_source, "timeout": request.timeout,
        "seed": request.seed, "search": request.search if isinstance(request.search, bool) else repr(request.search),
        "max_plant_states": os.environ.get("CERTIFY_MAX_PLANT_STATES"), "version": __version__,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=repr).encode("utf-8")).hexdigest()


class ResultCache:
    """Reports on disk, by :func:`cache_key`.

    Examples
    --------
    >>> import tempfile
    >>> from certify.report import Report
    >>> from certify.results import Verdict
    >>> cache = ResultCache(tempfile.mkdtemp())
    >>> cache.get("0" * 64) is None
    True
    >>> cache.put("0" * 64, Report.from_error(Verdict.INVALID_INPUT, "bad", created="x"))
    True
    >>> cache.get("0" * 64).verdict.value
    'invalid_input'
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def _path(self, key: str) -> str:
        return os.path.join(self.folder, key[:2], key + ".json")

    def get(self, key: str) -> Any:
        """The stored :class:`~certify.report.Report`, or ``None``."""
        from certify.report import Report

        try:
            with open(self._path(key), encoding="utf-8") as fh:
                return Report.from_json(fh.read())
        except Exception:  # noqa: BLE001 - a missing or damaged entry is a miss
            return None

    def put(self, key: str, report: Any) -> bool:
        """Store ``report`` unless it depends on more than the inputs; returns whether it was stored."""
        from certify.results import CheckStatus, Verdict

        if report.verdict is Verdict.INTERNAL_ERROR or any(c.status is CheckStatus.ERROR for c in report.checks):
            return False
        import tempfile

        path = self._path(key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(report.to_json(None))
            os.replace(tmp, path)
        except OSError:
            return False
        return True
