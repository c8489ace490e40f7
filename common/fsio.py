"""Atomic file writes: readers see either the old file or the whole new one, never half of it.

Every write goes to a temporary file in the destination folder (same filesystem, so ``os.replace`` is a
rename), is fsynced, then replaces the destination. A killed writer leaves at most a ``.<name>.*.tmp`` file,
which the retention GC removes after its TTL.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(path: str | Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed.

    For writers that need a file name rather than bytes (video encoders, parquet writers).
    ``mode`` is applied before the rename (``mkstemp`` creates 0600; our outputs are read by other users).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_temp(path: Path, data: bytes, fsync: bool) -> str:
    """``data`` in a new temp file next to ``path`` (same folder, so a rename or link to ``path`` is atomic);
    removed again when the write fails. Returns the temp file's name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename). ``fsync=False`` keeps the atomicity
    (readers and killed writers see old or new) but not durability across a power loss; for callers that write
    many small files and then make them durable together (one ``os.sync()``), e.g. the retention GC's index."""
    tmp = _write_temp(Path(path), data, fsync)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_create_bytes(path: str | Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` only if it does not exist yet; True when this call created it.

    The complete temp file is hard-linked to ``path``: ``link`` fails when the name exists (like ``O_EXCL``, and
    atomic on NFS too), and readers never see a partial file (``O_EXCL`` on ``path`` itself would show one while
    it is being written). Of several concurrent callers exactly one gets True.
    """
    tmp = _write_temp(Path(path), data, fsync=True)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)
    return True


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def json_bytes(obj: Any) -> bytes:
    """The bytes :func:`atomic_write_json` writes: sorted keys, two-space indent (stable for the same object)."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()


def atomic_write_json(path: str | Path, obj: Any, fsync: bool = True) -> None:
    """JSON with sorted keys and two-space indent (stable bytes for the same object)."""
    atomic_write_bytes(path, json_bytes(obj), fsync=fsync)


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Make ``dst`` the same file as ``src``: a hard link where the filesystem allows it, else a copy;
    atomically either way (a reader never sees a partial ``dst``)."""
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:6]}{TMP_SUFFIX}")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            if not os.path.exists(src):
                raise FileNotFoundError(2, "No such file or directory", str(src)) from None
            shutil.copy2(src, tmp)  # another filesystem, or one without hard links
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a copy that failed halfway
        raise
