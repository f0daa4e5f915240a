"""Errors of the stand-in, with the status NVIDIA Triton answers for each over gRPC and HTTP."""

from __future__ import annotations

from enum import Enum


class Code(Enum):
    """Triton's error kinds (TRITONSERVER_Error_Code) that the stand-in raises."""

    INVALID_ARG = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    UNAVAILABLE = "UNAVAILABLE"
    UNSUPPORTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"

    @property
    def http_status(self) -> int:
        return {
            Code.INVALID_ARG: 400,
            Code.NOT_FOUND: 404,
            Code.UNAVAILABLE: 503,
            Code.UNSUPPORTED: 400,
            Code.INTERNAL: 500,
        }[self]


class ServingError(Exception):
    """A request the server refuses; `code` picks the gRPC status and HTTP status code."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
