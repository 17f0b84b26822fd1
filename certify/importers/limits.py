"""Safe reading of untrusted files and the resource budget of an import.

Every byte certify reads from a model, its external data or its sidecar goes through
:func:`read_regular_file`: the path must be a regular file (``os.stat`` first, so a FIFO, a device such
as ``/dev/zero`` or a directory is refused without being opened for reading), and at most a fixed
number of bytes is read.  :class:`Budget` bounds the number of tensor elements an import may create
(declared initializer sizes, constant folding) and carries the :class:`~certify.deadline.Deadline`.

>>> b = Budget(max_elements=1000)
>>> b.claim(10 * 10, "a 10x10 weight")
>>> try:
...     b.claim(10**6, "ConstantOfShape 'big'")
... except ResourceLimitError as e:
...     print(str(e).split(":")[0])
ConstantOfShape 'big' would create 1,000,000 tensor elements
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from certify.deadline import NO_DEADLINE, Deadline
from certify.errors import InvalidInputError, ModelFileError

#: Largest model file read (protobuf itself cannot parse more than 2 GiB).
MAX_MODEL_BYTES = 2**31
#: Largest external-data file read next to an ONNX model.
MAX_EXTERNAL_BYTES = 2**33
#: Largest sidecar / metadata JSON text.
MAX_JSON_BYTES = 2**20
#: Default element budget of one import (all initializers plus everything constant folding creates).
DEFAULT_MAX_ELEMENTS = 10**8


class ResourceLimitError(InvalidInputError):
    """A model would need more memory or work than the import's budget allows (exit code 3).

    >>> ResourceLimitError("too big").exit_code.value
    3
    """


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """Human name of a non-regular file type from ``st_mode``.

    >>> file_kind(stat.S_IFIFO)
    'a named pipe (FIFO)'
    """
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_regular(path: str, what: str) -> os.stat_result:
    """``os.stat`` ``path`` and refuse anything but an existing regular file (never opens it).

    >>> try:
    ...     check_regular("/dev/null", "model file")
    ... except ModelFileError as e:
    ...     "character device" in str(e)
    True
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelFileError(
            f"{what} {path!r} does not exist. Check the path (it is relative to {os.getcwd()!r})."
        ) from None
    except OSError as exc:
        raise ModelFileError(f"{what} {path!r} cannot be accessed ({exc.strerror}).") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(
            f"{what} {path!r} is {file_kind(st.st_mode)}, not a regular file; certify only reads regular files."
        )
    return st


class RegularFile:
    """A regular file opened for reading without blocking (context manager; ``fh`` is the binary file).

    The path is checked with ``os.stat`` first (a FIFO or a device is refused without being opened),
    then opened non-blocking and checked again with ``fstat`` (a path swapped for a FIFO in between
    is still refused), and its size is compared with ``max_bytes``.

    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "f.bin"); _ = open(p, "wb").write(b"abc")
    >>> with RegularFile(p, "test file", 10) as f:
    ...     f.size, f.fh.read()
    (3, b'abc')
    """

    def __init__(self, path: str, what: str, max_bytes: int) -> None:
        self.path, self.what = path, what
        st = check_regular(path, what)
        if st.st_size > max_bytes:
            raise ResourceLimitError(
                f"{what} {path!r} has {st.st_size:,} bytes, more than the {max_bytes:,} bytes certify reads."
            )
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise ModelFileError(f"{what} {path!r} cannot be read ({exc.strerror}).") from None
        st2 = os.fstat(fd)
        if not stat.S_ISREG(st2.st_mode) or st2.st_size > max_bytes:
            os.close(fd)
            raise ModelFileError(f"{what} {path!r} changed while it was opened; certify only reads regular files.")
        self.size = st2.st_size
        self.fh = os.fdopen(fd, "rb")

    def __enter__(self) -> RegularFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()

    def read(self, offset: int = 0, length: int | None = None) -> bytes:
        """``length`` bytes from ``offset`` (all the rest when ``None``); OSError → ModelFileError."""
        try:
            self.fh.seek(offset)
            return self.fh.read(-1 if length is None else length)
        except (OSError, OverflowError, ValueError) as exc:
            raise ModelFileError(f"{self.what} {self.path!r} cannot be read ({exc}).") from None

    def sha256(self, budget: Budget | None = None) -> str:
        """SHA-256 of the whole file, read in 1 MiB chunks (the deadline is checked between chunks)."""
        h = hashlib.sha256()
        self.fh.seek(0)
        try:
            for chunk in iter(lambda: self.fh.read(1 << 20), b""):
                h.update(chunk)
                if budget is not None:
                    budget.check(f"hashing {self.path}")
        except OSError as exc:
            raise ModelFileError(f"{self.what} {self.path!r} cannot be read ({exc.strerror}).") from None
        return h.hexdigest()


def read_regular_file(path: str, what: str, max_bytes: int) -> bytes:
    """All bytes of a regular file of at most ``max_bytes`` (see :class:`RegularFile`).

    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "f.bin"); _ = open(p, "wb").write(b"abc")
    >>> read_regular_file(p, "test file", 10)
    b'abc'
    """
    with RegularFile(path, what, max_bytes) as f:
        data = f.read()
    if len(data) > max_bytes:
        raise ResourceLimitError(f"{what} {path!r} is larger than the {max_bytes:,} bytes certify reads.")
    return data


def manifest_sha256(entries: Iterable[tuple[str, str]]) -> str:
    """SHA-256 over several files: of the ``sha256sum``-style text ``"<hex>  <name>\\n"`` per file.

    With one file it is that file's own SHA-256, so a model without external data or sidecar keeps
    the hash ``sha256sum model.onnx`` prints.

    >>> manifest_sha256([("ab" * 32, "m.onnx")]) == "ab" * 32
    True
    >>> len(manifest_sha256([("ab" * 32, "m.onnx"), ("cd" * 32, "m.onnx.data")]))
    64
    """
    entries = list(entries)
    if len(entries) == 1:
        return entries[0][0]
    text = "".join(f"{h}  {name}\n" for h, name in entries)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Budget:
    """Element budget and deadline of one import.

    Parameters
    ----------
    max_elements : int
        Largest total number of tensor elements the import may create.
    deadline : Deadline
        Checked at safe points (every folded node, every decoded tensor).
    """

    max_elements: int = DEFAULT_MAX_ELEMENTS
    deadline: Deadline = field(default_factory=lambda: NO_DEADLINE)
    used: int = 0

    def claim(self, n: int | float, what: str) -> None:
        """Reserve ``n`` elements for ``what`` or raise :class:`ResourceLimitError` (before allocating)."""
        if not (isinstance(n, int) or math.isfinite(n)) or n < 0:
            raise ResourceLimitError(f"{what} declares an invalid tensor size ({n}).")
        n = int(n)
        if n > self.max_elements or self.used + n > self.max_elements:
            raise ResourceLimitError(
                f"{what} would create {n:,} tensor elements: with the {self.used:,} already created this exceeds "
                f"the budget of {self.max_elements:,} elements (load_model(..., max_elements=N) raises it). "
                "Recurrent networks certify can analyse are far smaller; the file is likely malformed."
            )
        self.used += n

    def check(self, stage: str) -> None:
        """Raise :class:`~certify.deadline.DeadlineExceeded` when the deadline has passed."""
        self.deadline.check(stage)


def numel(dims: Iterable[int]) -> int:
    """Number of elements of a shape (Python ints: no overflow).

    >>> numel((10**6, 10**6))
    1000000000000
    """
    out = 1
    for d in dims:
        out *= max(int(d), 0)
    return out
