"""Typed errors with stable error codes.

Every failure that a user or a caller can act on carries a ``code`` (``triton_unavailable``,
``model_not_found``, ``video_decode_failed``, ...) and a human message. CLIs print ``code: message``
and exit non-zero instead of dumping a stack trace.
"""

from __future__ import annotations


class TrendflowError(Exception):
    """Base error carrying a stable machine-readable ``code``."""

    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, **details: object) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, object]:
        return {"error_code": self.code, "error_message": self.message, **self.details}

    def __str__(self) -> str:  # "code: message" is what users see
        return f"{self.code}: {self.message}"


class TritonUnavailable(TrendflowError):
    code = "triton_unavailable"


class ModelNotFound(TrendflowError):
    code = "model_not_found"


class VideoDecodeFailed(TrendflowError):
    code = "video_decode_failed"


class DependencyMissing(TrendflowError):
    code = "dependency_missing"


class SchemaValidationError(TrendflowError):
    code = "schema_invalid"


class ConfigError(TrendflowError, ValueError):
    """A config file or composed config is invalid; the message names every bad key."""

    code = "config_invalid"


class InsufficientMemory(TrendflowError):
    """Raised by the planner before any work starts (``insufficient_gpu_memory`` on GPUs)."""

    code = "insufficient_memory"


class TransientIOError(TrendflowError):
    code = "transient_io_error"
