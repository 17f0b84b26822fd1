"""A progress indicator for long runs: tqdm on stderr (a one-line fallback without tqdm), only on a TTY.

:func:`certify.check` reports stages through a plain callback ``progress(label)``; the command line
passes :meth:`Progress.stage` of a :class:`Progress` that draws nothing when stderr is not a TTY (CI
logs stay clean) or when ``--quiet`` is given.
"""

from __future__ import annotations

import sys
from typing import IO, Any


class _LineBar:
    """Minimal stand-in for tqdm: rewrites one status line with carriage returns."""

    def __init__(self, total: int, stream: IO[str]) -> None:
        self.total, self.stream, self.n, self.desc, self.width = total, stream, 0, "", 0

    def _draw(self) -> None:
        text = f"{self.desc} {self.n}/{self.total}"
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = max(self.width, len(text))

    def set_description_str(self, desc: str) -> None:
        self.desc = desc
        self._draw()

    def update(self, n: int) -> None:
        self.n += n
        self._draw()

    def close(self) -> None:
        self.stream.write("\r" + " " * self.width + "\r")
        self.stream.flush()


class Progress:
    """Context manager that shows the current stage of one or more model checks.

    Parameters
    ----------
    total : int
        Number of models (one bar tick per model).
    enabled : bool or None
        ``None`` (default): enabled iff ``stream`` is a terminal.
    stream : file
        Where to draw (default ``sys.stderr``).

    Examples
    --------
    >>> import io
    >>> with Progress(total=1, stream=io.StringIO()) as p:   # not a TTY: draws nothing
    ...     p.stage("loading")
    ...     p.advance()
    >>> p.enabled
    False
    """

    def __init__(self, total: int = 1, enabled: bool | None = None, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.total = total
        self._bar: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # progress is a nicety: a one-line fallback without tqdm
                self._bar = _LineBar(self.total, self.stream)
            else:
                self._bar = tqdm(total=self.total, file=self.stream, unit="model", leave=False,
                                 bar_format="{desc} {n_fmt}/{total_fmt} [{elapsed}]")
        return self

    def stage(self, label: str) -> None:
        """Show ``label`` as the current stage."""
        if self._bar is not None:
            self._bar.set_description_str(label)

    def advance(self) -> None:
        """One more model done."""
        if self._bar is not None:
            self._bar.update(1)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
