"""Content hashes: SHA-256, hex, truncated to ``n`` characters (16 = 64 bits, ample against collisions among
the platform's keys)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def sha256_hex(data: bytes | str, n: int = 16) -> str:
    blob = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(blob).hexdigest()[:n]


def json_hash(obj: Any, n: int = 16) -> str:
    """Hash of ``obj``'s canonical JSON (sorted keys, compact separators): equal objects, equal hashes."""
    return sha256_hex(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str), n)


def file_hash(path: str | Path, n: int = 16, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:n]
