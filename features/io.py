"""Reading runs for feature building.

Two readers produce the same :class:`RunData` from a run folder:

* :func:`read_run` — the inference path: :func:`extraction.artifacts.load_run`, every artifact fully validated
  (meta through pydantic, every array against its schema).
* :func:`read_run_lean` — the batch path: reads only the fields the spec needs, straight from the NPZ bytes
  (:func:`read_npz`: one ``read`` per file, zip central directory and ``.npy`` headers parsed here,
  arrays are zero-copy views), and checks what can change a feature: the meta's component, schema version
  and status, and each field's rank and dtype kind. Anything unusual (compressed or Fortran-order members,
  zip64 directories) falls back to :func:`numpy.load`.

Both return identical arrays (the same bytes), which the parity test checks end to end.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import SchemaValidationError
from extraction.artifacts import load_run, read_manifest
from extraction.schemas import SCHEMAS, ArtifactMeta

# statuses a component can have in a RunData: the artifact's own, or "error" (manifest says error: no
# artifact) / "absent" (not in the manifest at all)
MISSING_STATUSES = ("error", "absent")


@dataclass
class RunData:
    """What feature building needs from one run: its manifest, the arrays it reads, each component's status."""

    manifest: dict[str, Any]
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # component -> field -> array
    status: dict[str, str] = field(default_factory=dict)  # component -> ok|degraded|empty|error|absent
    run_dir: str | None = None

    def component_status(self, component: str) -> str:
        return self.status.get(component, "absent")


def _statuses_from_manifest(manifest: dict[str, Any], components: list[str] | None) -> dict[str, str]:
    comps = manifest.get("components", {})
    names = components if components is not None else list(comps)
    out = {}
    for c in names:
        entry = comps.get(c)
        out[c] = "absent" if entry is None else ("error" if not entry.get("artifact") else str(entry["status"]))
    return out


def run_from_loaded(manifest: dict[str, Any], loaded: dict[str, tuple[dict[str, np.ndarray], ArtifactMeta]],
                    run_dir: str | Path | None = None) -> RunData:
    """A :class:`RunData` from :func:`extraction.artifacts.load_run`'s ``(manifest, {component: (arrays, meta)})``;
    an artifact's own ``meta.status`` wins over the manifest's entry."""
    status = _statuses_from_manifest(manifest, None)
    arrays = {}
    for comp, (arrs, meta) in loaded.items():
        arrays[comp] = arrs
        status[comp] = meta.status
    return RunData(manifest=manifest, arrays=arrays, status=status,
                   run_dir=str(run_dir) if run_dir is not None else None)


def read_run(run_dir: str | Path) -> RunData:
    """Fully validated read of one run folder (the inference path)."""
    manifest, loaded = load_run(Path(run_dir))
    return run_from_loaded(manifest, loaded, run_dir)


# ---- lean NPZ reading ------------------------------------------------------------------------------------

_HDR_DESCR = re.compile(r"'descr':\s*'([^']+)'")
_HDR_FORTRAN = re.compile(r"'fortran_order':\s*(True|False)")
_HDR_SHAPE = re.compile(r"'shape':\s*\(([^)]*)\)")
_EOCD = b"PK\x05\x06"
_NPY_MAGIC = b"\x93NUMPY"


class _Fallback(Exception):
    """The bytes are a valid NPZ this fast parser does not handle; use numpy.load."""


def _parse_members(data: bytes) -> dict[str, tuple[int, int]]:
    """member name -> (compression method, local header offset) from the zip central directory."""
    eocd = data.rfind(_EOCD, max(0, len(data) - 65557))
    if eocd < 0:
        raise _Fallback("no end-of-central-directory record")
    n_entries, _cd_size, cd_offset = struct.unpack_from("<HII", data, eocd + 10)
    if cd_offset == 0xFFFFFFFF or n_entries == 0xFFFF:
        raise _Fallback("zip64 directory")
    out = {}
    pos = cd_offset
    for _ in range(n_entries):
        if data[pos:pos + 4] != b"PK\x01\x02":
            raise _Fallback("bad central directory entry")
        method = struct.unpack_from("<H", data, pos + 10)[0]
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        local = struct.unpack_from("<I", data, pos + 42)[0]
        if local == 0xFFFFFFFF:
            raise _Fallback("zip64 offset")
        name = data[pos + 46:pos + 46 + name_len].decode()
        out[name] = (method, local)
        pos += 46 + name_len + extra_len + comment_len
    return out


_HEADER_CACHE: dict[bytes, tuple[np.dtype, tuple[int, ...], int]] = {}  # .npy header -> (dtype, shape, count)


def _parse_header(raw: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
    hit = _HEADER_CACHE.get(raw)
    if hit is not None:
        return hit
    header = raw.decode("latin1")
    descr, fortran, shape = _HDR_DESCR.search(header), _HDR_FORTRAN.search(header), _HDR_SHAPE.search(header)
    if descr is None or fortran is None or shape is None or fortran.group(1) == "True":
        raise _Fallback("unusual .npy header")
    dims = tuple(int(s) for s in shape.group(1).replace(" ", "").split(",") if s)
    dtype = np.dtype(descr.group(1))
    if dtype.hasobject:
        raise _Fallback("object array")
    out = (dtype, dims, math.prod(dims))
    if len(_HEADER_CACHE) < 8192:  # headers repeat across runs (same dtypes, few distinct lengths)
        _HEADER_CACHE[raw] = out
    return out


def _array_at(data: bytes, method: int, local: int) -> np.ndarray:
    if method != 0:
        raise _Fallback("compressed member")
    name_len, extra_len = struct.unpack_from("<HH", data, local + 26)
    start = local + 30 + name_len + extra_len
    if data[start:start + 6] != _NPY_MAGIC:
        raise _Fallback("not an .npy member")
    if data[start + 6] == 1:
        hlen, hstart = struct.unpack_from("<H", data, start + 8)[0], start + 10
    else:
        hlen, hstart = struct.unpack_from("<I", data, start + 8)[0], start + 12
    dtype, dims, count = _parse_header(data[hstart:hstart + hlen])
    return np.frombuffer(data, dtype=dtype, count=count, offset=hstart + hlen).reshape(dims)


def read_npz(path: str | Path, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Arrays ``names`` (default: all) of an NPZ written by :func:`numpy.savez`, as read-only views of one
    ``read`` of the file. Same values as :func:`numpy.load`; falls back to it for layouts not parsed here."""
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        members = _parse_members(data)
        wanted = names if names is not None else [m[:-4] for m in members if m.endswith(".npy")]
        out = {}
        for n in wanted:
            entry = members.get(f"{n}.npy")
            if entry is None:
                raise KeyError(n)
            out[n] = _array_at(data, *entry)
        return out
    except _Fallback:
        with np.load(path, allow_pickle=False) as z:
            wanted = names if names is not None else list(z.files)
            return {n: z[n] for n in wanted}


def read_run_lean(run_dir: str | Path, fields: dict[str, list[str]], manifest: dict[str, Any] | None = None
                  ) -> RunData:
    """Read only ``fields`` (component -> field names) of a run, checking meta and ranks (the batch path).

    Raises:
        SchemaValidationError: an artifact's meta names another component, a schema version this code
            cannot read, or a field is absent / has the wrong rank or dtype kind.
    """
    run_dir = os.fspath(run_dir)
    if manifest is None:
        manifest = read_manifest(Path(run_dir))
    status = _statuses_from_manifest(manifest, list(fields))
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for comp, names in fields.items():
        if status[comp] in MISSING_STATUSES:
            continue
        path = os.path.join(run_dir, manifest["components"][comp]["artifact"])
        schema = SCHEMAS[comp]
        try:
            got = read_npz(path, [*names, "meta"])
        except KeyError as exc:
            raise SchemaValidationError(f"{path}: missing array {exc.args[0]!r}", component=comp) from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # truncated / not an NPZ
            raise SchemaValidationError(f"{path}: not a readable artifact ({exc})", component=comp,
                                        code="artifact_corrupt") from None
        meta = json.loads(got.pop("meta").item())
        if meta.get("component") != comp or meta.get("schema_version") != schema.version:
            raise SchemaValidationError(
                f"{path}: artifact is {meta.get('component')!r} schema {meta.get('schema_version')!r}, this code "
                f"reads {comp!r} schema {schema.version!r}", component=comp)
        for n, arr in got.items():
            want = schema.arrays[n]
            kind_ok = arr.dtype.kind == want.kind or (want.kind == "f" and arr.dtype.kind == "i" and arr.ndim == 0)
            if arr.ndim != len(want.shape) or not kind_ok:
                raise SchemaValidationError(f"{path}: {n} has dtype {arr.dtype} shape {arr.shape}, schema says "
                                            f"kind {want.kind!r} shape {want.shape}", component=comp)
        arrays[comp] = got
        status[comp] = str(meta.get("status", status[comp]))
    return RunData(manifest=manifest, arrays=arrays, status=status, run_dir=run_dir)

