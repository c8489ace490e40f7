"""Append-only audit log of alias moves: JSON lines chained by hash, so edits and deletions are detectable.

Each entry: ``ts`` (UTC ISO-8601), ``action`` (promote | promote_refused | rollback | rollback_refused |
observed), ``model_type``, ``name``, ``version``, ``aliases`` (alias -> version after the action, null = removed),
``actor``, ``host``, ``reason``, ``gates``, ``prev`` (hash of the previous line) and ``hash``. MLflow keeps no
alias history; this file answers "which version was stable at time X".
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from common.clock import now_iso, parse_iso
from common.errors import TrendflowError

GENESIS = "0" * 16


def actor_name(actor: str | None = None) -> str:
    """Who acts: explicit, else ``$TRENDFLOW_ACTOR``, else the OS user."""
    if actor:
        return actor
    if os.environ.get("TRENDFLOW_ACTOR"):
        return os.environ["TRENDFLOW_ACTOR"]
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _digest(entry: dict[str, Any]) -> str:
    blob = json.dumps({k: v for k, v in entry.items() if k != "hash"}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read(path: Path) -> list[dict[str, Any]]:
    """All entries, oldest first (missing file = empty log)."""
    if not Path(path).exists():
        return []
    try:
        lines = Path(path).read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise TrendflowError(f"{path}: not UTF-8 ({exc})", code="audit_corrupt") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            raise TrendflowError(f"{path}:{n}: not a JSON object (the log was edited or truncated)",
                                 code="audit_corrupt")
        out.append(entry)
    return out


def verify(path: Path) -> list[str]:
    """Problems with the hash chain (empty list = intact)."""
    problems, prev = [], GENESIS
    for i, e in enumerate(read(path), 1):
        if e.get("prev") != prev:
            problems.append(f"line {i}: chain broken (prev={e.get('prev')}, expected {prev})")
        if _digest(e) != e.get("hash"):
            problems.append(f"line {i}: content does not match its hash")
        prev = e.get("hash", "")
    return problems


def append(path: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Append ``entry`` (``ts``, ``actor``, ``host`` filled in if absent) under an exclusive lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"ts": now_iso(), "actor": actor_name(None), "host": socket.gethostname(), **entry}
    with open(path, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.seek(0)
            lines = [ln for ln in fh.read().splitlines() if ln.strip()]
            entry["prev"] = json.loads(lines[-1])["hash"] if lines else GENESIS
            entry["hash"] = _digest(entry)
            fh.seek(0, os.SEEK_END)
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return entry


def alias_at(entries: list[dict[str, Any]], name: str, alias: str, when: str | datetime) -> str | None:
    """Version that ``alias`` of registered model ``name`` pointed at, at time ``when`` (None = unset/unknown)."""
    t = parse_iso(when)
    version: str | None = None
    for e in entries:
        if e.get("name") != name or parse_iso(e["ts"]) > t:
            continue
        if alias in (e.get("aliases") or {}):
            version = e["aliases"][alias]
    return version
