"""Open user-named input files safely: regular files only, bounded size, never block on a FIFO.

A FIFO, ``/dev/zero``, a directory or a symbolic-link loop given where a file is expected gets a clear
:class:`~certify.errors.InvalidInputError` (or the subclass the caller names) instead of a hang or a
traceback.  The file is opened with ``O_NONBLOCK`` and checked again with ``fstat`` after opening, so a
path swapped for a FIFO between the check and the open cannot block either.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> check_regular_file(d, "plant file")
Traceback (most recent call last):
...
certify.errors.InvalidInputError: plant file ... is a directory, not a regular file.
"""

from __future__ import annotations

import errno
import os
import stat

from certify.errors import InvalidInputError

__all__ = ["MAX_TEXT_BYTES", "check_regular_file", "file_kind", "read_regular_file"]

#: Largest loop, plant or sidecar text file certify reads (a 500-state plant is about 5 MB of text).
MAX_TEXT_BYTES = 64 * 1024 * 1024


def file_kind(mode: int) -> str:
    """Words for the kind of file ``mode`` (from ``os.stat``) describes.

    >>> import stat
    >>> file_kind(stat.S_IFIFO | 0o644)
    'a FIFO (named pipe)'
    """
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "not a regular file"


def _stat_error(path: str, what: str, exc: OSError, error: type[InvalidInputError]) -> InvalidInputError:
    if exc.errno == errno.ENOENT:
        return error(f"{what} {path} does not exist.")
    if exc.errno == errno.ELOOP:
        return error(f"{what} {path} cannot be read: it is a loop of symbolic links.")
    return error(f"{what} {path} cannot be read: {exc.strerror or exc}.")


def check_regular_file(
    path: str | os.PathLike[str], what: str, *, error: type[InvalidInputError] = InvalidInputError,
    max_bytes: int | None = None,
) -> int:
    """Raise ``error`` unless ``path`` is an existing regular file (at most ``max_bytes``); return its size.

    Parameters
    ----------
    path : str or PathLike
        The file a user named.
    what : str
        How messages name it ("loop file", "plant file", "data file", ...).
    error : type, optional
        The :class:`~certify.errors.InvalidInputError` subclass to raise.
    max_bytes : int, optional
        Refuse larger files.

    Examples
    --------
    >>> check_regular_file("/dev/zero", "data file")
    Traceback (most recent call last):
    ...
    certify.errors.InvalidInputError: data file /dev/zero is a character device, not a regular file.
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL byte
        if isinstance(exc, ValueError):
            raise error(f"{what} {p!r} is not a valid path.") from None
        raise _stat_error(p, what, exc, error) from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {p} is {file_kind(st.st_mode)}, not a regular file.")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{what} {p} is too large ({st.st_size} bytes; the limit is {max_bytes} bytes).")
    return st.st_size


def read_regular_file(
    path: str | os.PathLike[str], what: str, *, error: type[InvalidInputError] = InvalidInputError,
    max_bytes: int | None = MAX_TEXT_BYTES,
) -> bytes:
    """The bytes of a regular file, read without ever blocking on a FIFO or reading a device forever.

    Examples
    --------
    >>> import os, tempfile
    >>> f = os.path.join(tempfile.mkdtemp(), "x.toml")
    >>> _ = open(f, "w").write("a = 1")
    >>> read_regular_file(f, "loop file")
    b'a = 1'
    """
    p = os.fspath(path)
    check_regular_file(p, what, error=error, max_bytes=max_bytes)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise _stat_error(p, what, exc, error) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what} {p} is {file_kind(st.st_mode)}, not a regular file.")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if max_bytes is not None and total > max_bytes:
                raise error(f"{what} {p} is too large (more than {max_bytes} bytes).")
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"{what} {p} cannot be read: {exc.strerror or exc}.") from None
    finally:
        os.close(fd)
