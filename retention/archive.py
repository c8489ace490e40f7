"""Moving a folder to an archive verifiably: copy, verify every file's hash, then remove the source.

Used for the artifacts of archived MLflow model versions (``mlflow.archive.mode: move``) and model weight
versions. The order makes every crash safe:

1. copy ``src`` into ``<dst>.<gc_id>.partial`` next to ``dst`` and write its ``SHA256SUMS.json`` (relative path ->
   full sha256 of every file of ``src``) there;
2. hash the copy against that manifest; one rename makes it ``dst`` (a reader sees the whole archive or none);
3. the caller records where the files now live (e.g. tags on the model version), *then* calls :func:`remove_source`,
   which renames ``src`` aside and removes it.

A crash before (3) leaves the source intact; a crash after the record and before the removal leaves both, and the
next GC verifies the archive again (:func:`verify`) before it removes the source. A leftover ``.partial`` folder is
replaced by the next attempt; an existing ``dst`` that does not verify is never trusted (moved aside, copied again).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from common.errors import TrendflowError
from common.fsio import atomic_write_json
from common.hashing import file_hash, json_hash

MANIFEST = "SHA256SUMS.json"


@dataclass(frozen=True)
class Archived:
    """Where a folder now lives: its archive path, file count, bytes and the digest of its manifest."""

    path: str
    files: int
    bytes: int
    digest: str  # sha256 of the manifest's canonical JSON: one value to record and compare


def tree_hashes(root: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``root`` (the archive manifest itself excluded)."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): file_hash(p, 64) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.relative_to(root).as_posix() != MANIFEST}


def manifest_digest(hashes: dict[str, str]) -> str:
    return json_hash(hashes, 64)


def verify(dst: Path, digest: str | None = None) -> Archived | None:
    """The archive at ``dst`` if every file matches its ``SHA256SUMS.json`` (and the manifest matches ``digest``,
    when given), else None."""
    dst = Path(dst)
    try:
        recorded = json.loads((dst / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or tree_hashes(dst) != recorded:
        return None
    d = manifest_digest(recorded)
    if digest is not None and d != digest:
        return None
    size = sum((dst / rel).stat().st_size for rel in recorded)
    return Archived(str(dst), len(recorded), size, d)


def copy_verified(src: Path, dst: Path, gc_id: str | None = None) -> Archived:
    """Steps (1) and (2): ``dst`` holds a verified copy of ``src``; ``src`` is untouched.

    Raises:
        TrendflowError: ``archive_source_missing`` (no ``src``) or ``archive_verify_failed`` (the copy's hashes
            differ from the source's: the copy is removed, the source kept).
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise TrendflowError(f"{src}: nothing to archive (no such folder)", code="archive_source_missing")
    hashes = tree_hashes(src)
    done = verify(dst)
    if done is not None and done.digest == manifest_digest(hashes):
        return done  # an earlier attempt got this far
    gc_id = gc_id or uuid.uuid4().hex
    dst.parent.mkdir(parents=True, exist_ok=True)
    for left in dst.parent.glob(f".{dst.name}.*.partial"):  # interrupted attempts
        shutil.rmtree(left, ignore_errors=True)
    partial = dst.with_name(f".{dst.name}.{gc_id}.partial")
    shutil.copytree(src, partial, symlinks=True)
    atomic_write_json(partial / MANIFEST, hashes)
    if tree_hashes(partial) != hashes:
        shutil.rmtree(partial, ignore_errors=True)
        raise TrendflowError(f"{src} -> {dst}: the copy's hashes differ from the source's; source kept",
                             code="archive_verify_failed")
    if dst.exists():  # a copy that did not verify: set aside, never merged into
        os.rename(dst, dst.with_name(f".{dst.name}.{gc_id}.stale"))
        shutil.rmtree(dst.with_name(f".{dst.name}.{gc_id}.stale"), ignore_errors=True)
    os.rename(partial, dst)
    return Archived(str(dst), len(hashes), sum((src / r).stat().st_size for r in hashes), manifest_digest(hashes))


def remove_source(src: Path, gc_id: str | None = None) -> bool:
    """Step (3), once the archive is recorded: rename ``src`` aside (one rename), then remove it. Already gone:
    False."""
    src = Path(src)
    aside = src.with_name(f".{src.name}.{gc_id or uuid.uuid4().hex}.trash")
    try:
        os.rename(src, aside)
        moved = True
    except FileNotFoundError:
        moved = False
    for left in src.parent.glob(f".{src.name}.*.trash"):  # this one, and any an interrupted removal left
        shutil.rmtree(left, ignore_errors=True)
    return moved


__all__ = ["MANIFEST", "Archived", "copy_verified", "manifest_digest", "remove_source", "tree_hashes", "verify"]
