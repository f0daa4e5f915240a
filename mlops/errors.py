"""Errors typed once: a step raises, `mlops.step.main` maps them to exit codes."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a bug: neither bad input nor a transient fault
EXIT_BAD_INPUT = 2  # never retried
EXIT_TRANSIENT = 3  # retried by the template's retryStrategy


class MlopsError(Exception):
    """Base of the errors a step may raise on purpose."""

    exit_code = EXIT_FAILED


class BadInput(MlopsError):
    """The input or config is wrong; retrying cannot help (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class Transient(MlopsError):
    """Infrastructure failed in a way a retry may fix: timeout, refused connection, 5xx (exit 3)."""

    exit_code = EXIT_TRANSIENT


class AliasConflict(BadInput):
    """An alias was not where the mover expected it: someone else moved it."""
