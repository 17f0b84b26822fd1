"""Errors raised by certify and the exit codes they map to.

Every error a user can cause is a :class:`CertifyError`; each subclass carries the
:class:`~certify.results.ExitCode` the command line returns for it.  Messages are one
readable paragraph that says what is wrong and, where possible, what to do about it.
"""

from __future__ import annotations

from certify.results import ExitCode


class CertifyError(Exception):
    """Base class of every error certify raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL_ERROR


class InvalidInputError(CertifyError):
    """The model, plant or loop file cannot be read, is malformed, or is unsupported (exit code 3)."""

    exit_code = ExitCode.INVALID_INPUT


class ModelFileError(InvalidInputError):
    """A model file is missing, empty, truncated, or not in a format certify reads."""


class UnsupportedModelError(InvalidInputError):
    """A model uses operators, attributes or architectures that certify does not support."""


class WeightError(InvalidInputError):
    """Weights have inconsistent shapes or non-finite values."""


class LoopSpecError(InvalidInputError):
    """A plant or loop description is malformed or does not fit the model."""


class NotApplicableError(CertifyError):
    """A criterion was asked for on a model it does not apply to (e.g. the LMI on a GRU).

    This is a usage problem, not a bug: it maps to exit code 3 (invalid input) on the
    command line, with a message that names the criterion that does apply.
    """

    exit_code = ExitCode.INVALID_INPUT


class WellPosednessError(CertifyError):
    """An interconnection or implicit nonlinear loop has no unique solution that certify can prove."""

    exit_code = ExitCode.INVALID_INPUT


class SolverError(CertifyError):
    """A conic solver failed, timed out, or returned a status certify does not know.

    Solver failures never produce a verdict on their own: the check that used the solver
    is reported as not proved, with this message as the reason.
    """

    exit_code = ExitCode.NOT_CERTIFIED
