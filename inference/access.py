"""Who may do what on the service: allowed roots for server-side paths, request limits, admin auth settings.

Framework-free (no FastAPI here): :class:`PathPolicy` resolves a client-given path (symlinks, ``..``, a
percent-encoded form a proxy might decode) and raises ``path_not_allowed`` when it lies outside every configured
root. The check runs before anything looks at the file, and its message is the same whether the path exists or
not, so a client cannot probe the server's file system. :func:`check_video` bounds what the video mode decodes
(size, declared duration, frame count, dimensions) from the container header alone, so a request for a 2-hour
video is refused in milliseconds instead of holding a worker for minutes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field

from common.auth import DEFAULT_TOKEN_ENV, AdminAuth
from common.errors import TrendflowError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdminConfig(_Strict):
    """Where the admin bearer token comes from (never the token itself: config files get committed)."""

    token_env: str = DEFAULT_TOKEN_ENV
    token_file: str | None = None

    def auth(self) -> AdminAuth:
        return AdminAuth(self.token_env, self.token_file)


class Limits(_Strict):
    """Request limits; each breach is a 413/422 with a code (see :class:`LimitExceeded`)."""

    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_text_chars: int = Field(5_000, ge=1, description="title, description and any other metadata string")
    max_abs_feature: float = Field(1e9, gt=0, description="|value| bound of a feature in the features mode")
    max_video_bytes: int = Field(512 * 1024**2, ge=1)
    max_video_duration_s: float = Field(900.0, gt=0)
    max_video_frames: int = Field(50_000, ge=1)
    min_video_side: int = Field(16, ge=1)
    max_video_side: int = Field(4096, ge=1)


class PathNotAllowed(TrendflowError):
    code = "path_not_allowed"


class LimitExceeded(TrendflowError):
    """A request over a configured limit; ``details['status']`` is 413 (too large) or 422 (out of range)."""

    code = "limit_exceeded"


@dataclass(frozen=True)
class PathPolicy:
    """Client-given paths must resolve under one of ``roots`` (themselves resolved once, at start-up)."""

    roots: tuple[Path, ...]

    @classmethod
    def from_config(cls, roots: list[str], resolve: object) -> PathPolicy:
        """``resolve`` maps a config string to a path (relative ones are relative to the repo root)."""
        return cls(tuple(Path(os.path.realpath(resolve(r))) for r in roots))  # type: ignore[operator]

    def _inside(self, candidate: str) -> Path | None:
        try:
            real = Path(os.path.realpath(candidate))  # follows every symlink that exists, folds `..`
        except (OSError, ValueError):  # a symlink loop, an unencodable name: not a path we serve
            return None
        return real if any(real == r or real.is_relative_to(r) for r in self.roots) else None

    def check(self, raw: object, field: str) -> Path:
        """The resolved path, or ``path_not_allowed``: not a string, relative, NUL bytes, outside every root
        (also when its percent-decoded form would be). Nothing in the error depends on the file existing."""
        refusal = PathNotAllowed(f"{field} is not an absolute path under an allowed root",
                                 errors=[{"field": field, "code": "path_not_allowed",
                                          "message": "paths must lie under the server's allowed roots"}])
        if not isinstance(raw, str):
            raise PathNotAllowed(f"{field} must be a string", code="invalid_request",
                                 errors=[{"field": field, "code": "invalid_type", "message": "expected a string"}])
        too_long = len(raw) > 4096 or any(len(seg.encode()) > 255 for seg in raw.split("/"))  # PATH_MAX, NAME_MAX
        if not raw or "\x00" in raw or not os.path.isabs(raw) or too_long:
            raise refusal
        decoded = unquote(raw)
        if "\x00" in decoded or (decoded != raw and self._inside(decoded) is None):
            raise refusal
        real = self._inside(raw)
        if real is None:
            raise refusal
        return real


def check_text(metadata: dict, limits: Limits) -> list[dict[str, str]]:
    """Field errors for metadata strings longer than ``limits.max_text_chars`` (one level of nesting)."""
    errors = []
    for key, value in metadata.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            if isinstance(v, str) and len(v) > limits.max_text_chars:
                name = f"metadata.{key}" + (f".{sub}" if sub else "")
                errors.append({"field": name, "code": "field_too_long",
                               "message": f"{len(v)} characters, at most {limits.max_text_chars}"})
    return errors


def check_video(path: Path, limits: Limits) -> None:
    """Refuse a video over the limits from its size and container header (no frame is decoded).

    Raises:
        LimitExceeded: ``video_too_large`` (413), ``video_too_long``, ``video_too_many_frames``,
            ``video_too_small`` or ``video_too_big_frame`` (422).
        VideoDecodeFailed: the file is not a readable video (0 bytes, no video stream).
    """
    from common.errors import VideoDecodeFailed
    from extraction.decode import probe

    size = path.stat().st_size
    if size > limits.max_video_bytes:
        raise LimitExceeded(f"video is {size} bytes, at most {limits.max_video_bytes}", code="video_too_large",
                            status=413)
    if size == 0:
        raise VideoDecodeFailed("the video file is empty (0 bytes)")
    info = probe(str(path))
    if info.duration_s > limits.max_video_duration_s:
        raise LimitExceeded(f"video declares {info.duration_s:.0f} s, at most {limits.max_video_duration_s:.0f} s",
                            code="video_too_long", status=422)
    frames = info.duration_s * info.fps
    if frames > limits.max_video_frames:
        raise LimitExceeded(f"video declares ~{frames:.0f} frames, at most {limits.max_video_frames}",
                            code="video_too_many_frames", status=422)
    if min(info.width, info.height) < limits.min_video_side:
        raise LimitExceeded(f"video is {info.width}x{info.height} pixels, each side at least "
                            f"{limits.min_video_side}", code="video_too_small", status=422)
    if max(info.width, info.height) > limits.max_video_side:
        raise LimitExceeded(f"video is {info.width}x{info.height} pixels, each side at most "
                            f"{limits.max_video_side}", code="video_too_big_frame", status=422)
