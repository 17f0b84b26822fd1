"""One deadline for a whole check, passed down explicitly (no globals).

``certify check --timeout S`` bounds everything a check does: reading and validating the model,
constant folding, SNOF assembly, the LMI solves and the counterexample search.  The API creates one
:class:`Deadline` and hands it to every stage; a stage calls :meth:`Deadline.check` at safe points (a
loop iteration, before an allocation, between solver calls) and passes :meth:`Deadline.remaining` to
anything that takes a time limit of its own (a conic solver).

>>> d = Deadline.after(None)
>>> d.expired(), d.remaining() is None
(False, True)
>>> d = Deadline.after(0.0)
>>> d.expired()
True
>>> d.check("folding constants")
Traceback (most recent call last):
...
certify.deadline.DeadlineExceeded: the time limit (0 s) was reached while folding constants.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from certify.errors import CertifyError
from certify.results import ExitCode


class DeadlineExceeded(CertifyError):
    """The ``--timeout`` was reached; nothing was proved or disproved (exit code 1, not certified)."""

    exit_code = ExitCode.NOT_CERTIFIED


@dataclass(frozen=True)
class Deadline:
    """An absolute point on the monotonic clock (``None``: no limit).

    Parameters
    ----------
    end : float or None
        ``time.monotonic()`` value after which the work must stop.
    seconds : float or None
        The limit as the user gave it (for messages).
    """

    end: float | None = None
    seconds: float | None = None

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        """A deadline ``seconds`` from now (``None``: never)."""
        if seconds is None:
            return cls(None, None)
        return cls(time.monotonic() + max(0.0, float(seconds)), float(seconds))

    def remaining(self) -> float | None:
        """Seconds left (never negative), or ``None`` without a limit."""
        if self.end is None:
            return None
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        """Whether the limit has been reached."""
        return self.end is not None and time.monotonic() >= self.end

    def check(self, stage: str) -> None:
        """Raise :class:`DeadlineExceeded` naming ``stage`` when the limit has been reached."""
        if self.expired():
            raise DeadlineExceeded(f"the time limit ({self.seconds:g} s) was reached while {stage}.")

    def cap(self, seconds: float | None) -> float | None:
        """The smaller of ``seconds`` and the time left (``None`` means unbounded on either side)."""
        left = self.remaining()
        if seconds is None:
            return left
        return float(seconds) if left is None else min(float(seconds), left)


NO_DEADLINE = Deadline()
