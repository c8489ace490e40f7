"""Reading and writing component artifacts (NPZ + ``meta``) and run manifests, atomically.

Layout: ``ARTIFACTS/<platform_id>/<video_id>/<run_id>/<component>.npz`` and
``ARTIFACTS/<platform_id>/<video_id>/<run_id>/manifest.json``. A content-addressed index
``ARTIFACTS/<platform_id>/<video_id>/cache/<cache_key>.json`` points at the artifact that a cache key
produced, so a later run can reuse it.

Every read and write goes through an :class:`extraction.backend.ArtifactBackend` (today the store's folder,
:class:`~extraction.backend.LocalFilesystemBackend`): a write is published atomically, so a reader never sees a
half-written file and two writers of the same key never corrupt each other (the last complete write wins; both
are identical by construction of the key). The functions here take paths, as their callers hold them; ``root``
(the store's root, where a caller knows it) makes the backend's key the path under the store, and without it the
file's folder is the backend's root.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import SchemaValidationError
from common.fsio import json_bytes
from extraction.backend import BadArtifactKey, LocalFilesystemBackend, backend_for
from extraction.schemas import SCHEMAS, ArtifactMeta

MANIFEST_NAME = "manifest.json"


def locate(path: str | Path, root: str | Path | None = None) -> tuple[LocalFilesystemBackend, str]:
    """The backend and key of the file ``path``: under the store ``root`` when given, else in its folder."""
    path = Path(path)
    if root is None:
        return backend_for(path.parent), path.name
    backend = backend_for(root)
    return backend, backend.key_of(path)


def encode_artifact(arrays: dict[str, np.ndarray], meta: ArtifactMeta | dict[str, Any]) -> bytes:
    """The NPZ bytes of an artifact, after validating ``arrays`` against the component's schema and ``meta``
    against :class:`ArtifactMeta` (nothing invalid ever reaches the store)."""
    meta = meta if isinstance(meta, ArtifactMeta) else ArtifactMeta.model_validate(meta)
    schema = SCHEMAS[meta.component]
    if meta.schema_version != schema.version:
        raise SchemaValidationError(
            f"{meta.component}: meta says schema {meta.schema_version}, code has {schema.version}",
            component=meta.component,
        )
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    schema.validate(arrays)
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(meta.model_dump_json()), **arrays)
    return buf.getvalue()


def write_artifact(path: Path, arrays: dict[str, np.ndarray], meta: ArtifactMeta | dict[str, Any], *,
                   root: Path | None = None) -> Path:
    """Validate and publish an artifact at ``path`` (see :func:`encode_artifact`). Returns ``path``."""
    backend, key = locate(path, root)
    backend.publish(key, encode_artifact(arrays, meta))
    return Path(path)


def read_artifact(path: Path, *, root: Path | None = None) -> tuple[dict[str, np.ndarray], ArtifactMeta]:
    """Load an NPZ artifact, validating meta and arrays. Raises :class:`SchemaValidationError`."""
    backend, key = locate(path, root)
    try:
        with backend.open(key) as fh, np.load(fh, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # truncated or not an NPZ at all
        raise SchemaValidationError(f"{path}: not a readable artifact ({exc})", code="artifact_corrupt") from exc
    if "meta" not in arrays:
        raise SchemaValidationError(f"{path}: artifact has no meta")
    meta = ArtifactMeta.model_validate_json(str(arrays.pop("meta")))
    schema = SCHEMAS.get(meta.component)
    if schema is None:
        raise SchemaValidationError(f"{path}: unknown component {meta.component!r}")
    if meta.schema_version != schema.version:
        raise SchemaValidationError(
            f"{path}: schema {meta.schema_version} is not readable by this code (expects {schema.version})",
            component=meta.component,
        )
    schema.validate(arrays)
    return arrays, meta


def read_meta(path: Path, *, root: Path | None = None) -> ArtifactMeta:
    """Only the ``meta`` of an artifact (cheap: loads one entry)."""
    backend, key = locate(path, root)
    with backend.open(key) as fh, np.load(fh, allow_pickle=False) as z:
        return ArtifactMeta.model_validate_json(str(z["meta"]))


def run_dir(root: Path, platform_id: str, video_id: str, run_id: str) -> Path:
    return Path(root) / platform_id / video_id / run_id


def cache_index_key(platform_id: str, video_id: str, cache_key: str) -> str:
    return f"{platform_id}/{video_id}/cache/{cache_key}.json"


def cache_index_path(root: Path, platform_id: str, video_id: str, cache_key: str) -> Path:
    return Path(root) / cache_index_key(platform_id, video_id, cache_key)


def lookup_cache(root: Path, platform_id: str, video_id: str, cache_key: str, verify: bool = True) -> Path | None:
    """Artifact previously produced under ``cache_key``, if it still exists and is readable. ``verify=False``
    skips reading the artifact's meta (what a planner needs: 0.3 ms instead of 0.8 ms per lookup; the runner
    verifies). An index entry naming a key outside the store is no hit."""
    backend = backend_for(root)
    try:
        entry = json.loads(backend.read(cache_index_key(platform_id, video_id, cache_key)))
    except (OSError, json.JSONDecodeError):  # missing (artifact_not_found is an OSError) or torn by hand
        return None
    try:
        if not backend.exists(key := entry["artifact"]):
            return None
    except BadArtifactKey:
        return None
    path = backend.path_of(key)
    if not verify:
        return path
    try:
        meta = read_meta(path, root=root)
    except (OSError, ValueError, KeyError):
        return None
    return path if meta.cache_key == cache_key else None


def record_cache(root: Path, platform_id: str, video_id: str, cache_key: str, artifact: Path) -> None:
    """Index ``artifact`` (a path under ``root``) as what ``cache_key`` produced: ``{"artifact": <its key>}``."""
    backend = backend_for(root)
    backend.publish(cache_index_key(platform_id, video_id, cache_key),
                    json_bytes({"artifact": backend.key_of(artifact)}))


def list_runs(root: Path) -> list[Path]:
    """Every run folder under ``root`` that has a complete ``manifest.json``, sorted."""
    return sorted(p.parent for p in Path(root).glob("*/*/*/manifest.json"))


def read_manifest(run_path: Path) -> dict[str, Any]:
    """A run's ``manifest.json``; ``manifest_invalid`` naming the file when it is not UTF-8 JSON of a run."""
    path = Path(run_path) / MANIFEST_NAME
    try:
        man = json.loads(backend_for(run_path).read(MANIFEST_NAME).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SchemaValidationError(f"{path}: not a readable manifest ({type(exc).__name__}: {exc})"[:500],
                                    code="manifest_invalid") from None
    if not isinstance(man, dict):
        raise SchemaValidationError(f"{path}: a manifest is a JSON object", code="manifest_invalid")
    missing = [k for k in ("platform_id", "video_id", "components") if k not in man]
    if missing or not isinstance(man.get("components"), dict):
        raise SchemaValidationError(f"{path}: manifest lacks {missing or ['components (an object)']}",
                                    code="manifest_invalid")
    return man


def write_manifest(run_path: Path, manifest: dict[str, Any]) -> Path:
    """Publish a run's ``manifest.json`` (it closes the run folder: readers find a run by it, complete)."""
    backend_for(run_path).publish(MANIFEST_NAME, json_bytes(manifest))
    return Path(run_path) / MANIFEST_NAME


def latest_runs(root: Path) -> dict[tuple[str, str], Path]:
    """The newest complete run per (platform_id, video_id), by manifest ``finished_at``."""
    best: dict[tuple[str, str], tuple[str, Path]] = {}
    for rd in list_runs(root):
        man = read_manifest(rd)
        key = (str(man["platform_id"]), str(man["video_id"]))
        stamp = man.get("finished_at", "")
        if key not in best or stamp > best[key][0]:
            best[key] = (stamp, rd)
    return {k: v[1] for k, v in best.items()}


def load_run(run_path: Path) -> tuple[dict[str, Any], dict[str, tuple[dict[str, np.ndarray], ArtifactMeta]]]:
    """Manifest plus every component artifact of one run (``component -> (arrays, meta)``)."""
    run_path = Path(run_path)
    manifest = read_manifest(run_path)
    out: dict[str, tuple[dict[str, np.ndarray], ArtifactMeta]] = {}
    for comp, entry in manifest["components"].items():
        art = entry.get("artifact")
        if art:
            out[comp] = read_artifact(run_path / art)
    return manifest, out
