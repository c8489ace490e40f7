"""The byte-level storage under the artifact store: keys in, bytes out, with the guarantees the store relies on.

``extraction.artifacts`` (NPZs, manifests, the cache index) and ``extraction.store`` (manifest annotation) write
and read through an :class:`ArtifactBackend`, so that where the bytes live is one class: today
:class:`LocalFilesystemBackend`, a folder on a filesystem that every node mounts (NFS, a shared volume, or one
machine's disk). An object store is a second implementation of the same protocol; every operation here is one
an object store offers:

* ``publish`` -- a reader sees the whole new content or the old one, never part of it (a single PUT);
* ``put_if_absent`` -- create only if no object has the key, exactly one of concurrent callers wins (a
  conditional PUT, ``If-None-Match: *``);
* ``delete_if_unchanged`` -- delete only while the content still is what the caller saw (a DELETE conditional on
  the ETag);
* ``link_or_copy`` -- make a second key hold the same content (a server-side COPY; a hard link here).

Keys are relative POSIX paths (``yt/abc/cache/<key>.json``): no leading ``/``, no ``.`` or ``..`` part, no
backslash, so a key can never name anything outside the store (``bad_artifact_key``). A missing key is
``artifact_not_found`` (a ``FileNotFoundError`` too, so callers that treat a vanished file as "not there" keep
working).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from common.errors import TrendflowError
from common.fsio import TMP_SUFFIX, atomic_create_bytes, atomic_write_bytes, link_or_copy
from common.hashing import file_hash, sha256_hex


class ArtifactNotFound(TrendflowError, FileNotFoundError):
    code = "artifact_not_found"


class BadArtifactKey(TrendflowError, ValueError):
    code = "bad_artifact_key"


def check_key(key: str) -> str:
    """``key`` when it is a relative POSIX path inside the store; :class:`BadArtifactKey` otherwise."""
    if not isinstance(key, str) or not key or key.startswith("/") or "\\" in key or "\0" in key:
        raise BadArtifactKey(f"{key!r} is not an artifact key (a relative POSIX path inside the store)", key=key)
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise BadArtifactKey(f"{key!r} has an empty, '.' or '..' part: keys name files inside the store", key=key)
    return key


def content_etag(data: bytes) -> str:
    """The token :meth:`ArtifactBackend.delete_if_unchanged` compares for content ``data`` (full SHA-256)."""
    return sha256_hex(data, n=64)


class ArtifactBackend(Protocol):
    """Where artifact bytes live (see the module docstring for what each operation guarantees)."""

    def publish(self, key: str, data: bytes) -> None:
        """Make ``key`` hold ``data``, atomically (readers see all of it or the previous content)."""
        ...

    def read(self, key: str) -> bytes:
        """The content of ``key``; :class:`ArtifactNotFound` when there is none."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A seekable binary reader of ``key`` (for NPZs, whose one entry is read without the rest)."""
        ...

    def exists(self, key: str) -> bool: ...

    def etag(self, key: str) -> str:
        """The token of ``key``'s current content, for :meth:`delete_if_unchanged`; :class:`ArtifactNotFound`."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create ``key`` with ``data`` unless it exists; True when this call created it."""
        ...

    def delete_if_unchanged(self, key: str, token: str) -> bool:
        """Delete ``key`` if its content's token still is ``token``; False when changed or missing."""
        ...

    def link_or_copy(self, src_key: str, dst_key: str) -> None:
        """Make ``dst_key`` hold ``src_key``'s content (shared storage where possible), atomically."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Every key under the folder ``prefix`` ("" = the whole store), sorted."""
        ...


class LocalFilesystemBackend:
    """:class:`ArtifactBackend` on a folder; the store's files are exactly the keys' paths under ``root``.

    Writes go through :mod:`common.fsio` (temp file next to the target, fsync, rename or link), so the files, bytes
    and permissions are the ones the platform wrote before this interface existed.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalFilesystemBackend({str(self.root)!r})"

    # Paths <-> keys: only for callers that still hold paths (the runner); an object store has no paths.
    def path_of(self, key: str) -> Path:
        return self.root / check_key(key)

    def key_of(self, path: str | Path) -> str:
        """The key of a path under ``root``; resolved (symlinks, ``..``) when it is not literally under it."""
        path = Path(path)
        with contextlib.suppress(ValueError):
            rel = path.relative_to(self.root)
            if ".." not in rel.parts:
                return check_key(rel.as_posix())
        try:
            rel = path.resolve().relative_to(self.root.resolve())
        except ValueError:
            raise BadArtifactKey(f"{path} is not inside the store {self.root}", key=str(path)) from None
        return check_key(rel.as_posix())

    def publish(self, key: str, data: bytes) -> None:
        atomic_write_bytes(self.path_of(key), data)

    def read(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def open(self, key: str) -> BinaryIO:
        path = self.path_of(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ArtifactNotFound(f"no artifact {key!r} in {self.root}", key=key) from None

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def etag(self, key: str) -> str:
        try:
            return file_hash(self.path_of(key), n=64)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ArtifactNotFound(f"no artifact {key!r} in {self.root}", key=key) from None

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return atomic_create_bytes(self.path_of(key), data)

    def delete_if_unchanged(self, key: str, token: str) -> bool:
        """Rename the file aside (of concurrent deleters one rename finds it), then delete it if its content has
        ``token``; else link it back, unless a newer publish took the name meanwhile (the newer content stays).
        While a changed file is aside, readers see it missing for that instant."""
        path = self.path_of(key)
        aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.del{TMP_SUFFIX}")  # a crash: GC'd as temp
        try:
            os.rename(path, aside)
        except (FileNotFoundError, NotADirectoryError):
            return False
        try:
            if file_hash(aside, n=64) == token:
                return True
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            return False
        finally:
            aside.unlink(missing_ok=True)

    def link_or_copy(self, src_key: str, dst_key: str) -> None:
        src, dst = self.path_of(src_key), self.path_of(dst_key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            link_or_copy(src, dst)
        except FileNotFoundError:
            if src.is_file():
                raise
            raise ArtifactNotFound(f"no artifact {src_key!r} in {self.root}", key=src_key) from None

    def list(self, prefix: str = "") -> list[str]:
        """Keys of the files under ``prefix``, without the temp files of writes in flight."""
        prefix = prefix.rstrip("/")
        base = self.path_of(prefix) if prefix else self.root
        return sorted(self._walk(base))

    def _walk(self, base: Path) -> Iterator[str]:
        for dirpath, _, names in os.walk(base):
            for name in names:
                if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
                    yield (Path(dirpath) / name).relative_to(self.root).as_posix()


def backend_for(root: str | Path) -> LocalFilesystemBackend:
    """The backend of the store at ``root`` (a folder; the one place where an ``s3://`` URL would pick another)."""
    return LocalFilesystemBackend(root)
