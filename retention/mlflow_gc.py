"""``python -m registry gc``: MLflow runs and registered versions.

Runs: a run older than the cap is soft-deleted (``MlflowClient.delete_run``) unless a registered version (any, of
any registered model, archived ones included: their artifacts stay) was logged from it, or an audit-log entry names
its version; then MLflow's own ``mlflow gc --run-ids ...`` removes exactly those runs and their artifacts.

Versions (of the configured model types): a version is kept as is when it holds an alias (stable, previous or any
other: someone points at it), when ``conf/inference.yaml`` pins its number, or when it is younger than the cap;
every other version is archived: tagged ``archived=true`` + ``archived_at``, which stops it pinning training data
(:mod:`retention.pins`). Versions are never deleted.

Archived versions' artifacts (what ``models:/<name>/<version>`` loads) stay where they are with
``mlflow.archive.mode: keep``; with ``move`` each archived version that holds no alias and is not pinned by the
service has them moved under ``mlflow.archive.location`` (:mod:`retention.archive`: copy, verify hashes, record,
remove) and tagged ``archived_location``, ``archived_sha256`` (the manifest digest), ``archived_from`` (the old
URI) and ``archived_files``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from common.clock import now_iso
from common.errors import TrendflowError
from common.paths import CONF_DIR
from registry import audit
from registry.config import RegistryConfig
from retention.policy import RetentionPolicy
from retention.report import GcReport, Item

INFERENCE_CONFIG = CONF_DIR / "inference.yaml"


@dataclass(frozen=True)
class VersionRec:
    name: str
    version: str
    run_id: str | None
    created: float  # epoch seconds
    aliases: tuple[str, ...]
    archived: bool
    source: str = ""  # the registered source (``models:/m-...`` or ``runs:/...``): versions may share one
    moved_to: str | None = None  # the archive location tag: its artifacts were moved there


@dataclass(frozen=True)
class RunRec:
    run_id: str
    experiment_id: str
    start: float  # epoch seconds
    name: str


def plan_registry(runs: list[RunRec], versions: list[VersionRec], *, audit_versions: set[tuple[str, str]],
                  served: set[tuple[str, str]], managed: set[str], now: float, cap_s: float
                  ) -> tuple[list[tuple[RunRec, str]], list[tuple[VersionRec, str]], dict[str, int]]:
    """Pure: ``(runs to soft-delete with why, versions to archive with why, kept counts by rule)``."""
    kept: dict[str, int] = {}
    needed = {v.run_id: f"run of {v.name} v{v.version}" for v in versions if v.run_id}
    for v in versions:
        if (v.name, v.version) in audit_versions and v.run_id:
            needed[v.run_id] = f"run of {v.name} v{v.version}, named in the audit log"
    delete = []
    for r in runs:
        if r.run_id in needed:
            rule = "registered_version"
        elif now - r.start < cap_s:
            rule = "young"
        else:
            delete.append((r, f"{(now - r.start) / 86400:.1f} days old, over the cap; no version or audit entry "
                              "needs it"))
            continue
        kept[f"run_{rule}"] = kept.get(f"run_{rule}", 0) + 1
    archive = []
    for v in versions:
        if v.name not in managed or v.archived:
            continue
        if v.aliases:
            rule = "aliased"
        elif (v.name, v.version) in served:
            rule = "served"
        elif now - v.created < cap_s:
            rule = "young"
        else:
            archive.append((v, f"{(now - v.created) / 86400:.1f} days old, holds no alias, not pinned by the "
                               "service"))
            continue
        kept[f"version_{rule}"] = kept.get(f"version_{rule}", 0) + 1
    return delete, archive, kept


def plan_moves(versions: list[VersionRec], archive_now: list[VersionRec], *, served: set[tuple[str, str]],
               managed: set[str]) -> tuple[list[VersionRec], list[tuple[VersionRec, str]]]:
    """Pure: ``(versions whose artifacts to move, (version, why) kept in place)``. A candidate is archived (or is
    being archived now), managed, holds no alias, is not served, and was not moved yet (or its move was interrupted:
    the caller resumes it). A source another, unmoved version also uses stays (moving it would break that one)."""
    now_keys = {(v.name, v.version) for v in archive_now}
    cand = [v for v in versions if v.name in managed and (v.archived or (v.name, v.version) in now_keys)
            and not v.aliases and (v.name, v.version) not in served]
    cand_keys = {(v.name, v.version) for v in cand}
    users: dict[str, list[VersionRec]] = {}
    for v in versions:
        if v.source:
            users.setdefault(v.source, []).append(v)
    move, stay = [], []
    for v in cand:
        others = [o for o in users.get(v.source, []) if (o.name, o.version) not in cand_keys]
        if others:
            stay.append((v, f"its source {v.source} is also {others[0].name} v{others[0].version}'s"))
        else:
            move.append(v)
    return move, stay


def served_versions(cfg: RegistryConfig, path: Path = INFERENCE_CONFIG) -> set[tuple[str, str]]:
    """``(registered name, version)`` that ``conf/inference.yaml`` pins by number (aliases are kept anyway)."""
    if not Path(path).exists():
        return set()
    raw = yaml.safe_load(Path(path).read_text()) or {}
    out = set()
    for slot in (raw.get("models") or {}).values():
        if isinstance(slot, dict) and slot.get("version") is not None and slot.get("type") in cfg.models:
            out.add((cfg.models[slot["type"]], str(slot["version"])))
    return out


def _collect(client, archive_tag: str) -> tuple[list[RunRec], list[VersionRec]]:
    from mlflow.entities import ViewType

    from registry.store import version_run_id

    runs = []
    for exp in client.search_experiments(view_type=ViewType.ACTIVE_ONLY):
        token = None
        while True:
            page = client.search_runs([exp.experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                                      page_token=token)
            runs += [RunRec(r.info.run_id, exp.experiment_id, r.info.start_time / 1000, r.info.run_name or "")
                     for r in page]
            token = page.token
            if not token:
                break
    versions = []
    models, token = [], None
    while True:
        page = client.search_registered_models(max_results=100, page_token=token)
        models += list(page)
        token = page.token
        if not token:
            break
    for rm in models:
        aliases: dict[str, list[str]] = {}
        for a, ver in (rm.aliases or {}).items():
            aliases.setdefault(str(ver), []).append(a)
        for mv in client.search_model_versions(f"name='{rm.name}'"):
            tags = mv.tags or {}
            versions.append(VersionRec(rm.name, str(mv.version), version_run_id(mv), mv.creation_timestamp / 1000,
                                       tuple(sorted(aliases.get(str(mv.version), []))),
                                       tags.get(archive_tag) == "true", str(mv.source or ""),
                                       tags.get(f"{archive_tag}_location")))
    return runs, versions


def gc_registry(policy: RetentionPolicy, cfg: RegistryConfig, *, apply: bool = False, now: float | None = None,
                inference_config: Path = INFERENCE_CONFIG) -> GcReport:
    """Dry run (default) or apply the MLflow GC on the store ``cfg`` names."""
    from retention.pins import store_exists

    t0 = time.perf_counter()
    now = time.time() if now is None else now
    uri = cfg.resolved_tracking_uri()
    report = GcReport("registry", [uri], apply)
    if not store_exists(uri):
        report.warnings.append(f"{uri}: no MLflow store, nothing to collect")
        return report
    from registry.store import connect

    client = connect(cfg)
    runs, versions = _collect(client, policy.mlflow.archive_tag)
    audit_versions = {(str(e.get("name")), str(e.get(k))) for e in audit.read(cfg.audit_path())
                      for k in ("version", "from_version") if e.get(k) is not None}
    audit_versions |= {(str(e.get("name")), str(v)) for e in audit.read(cfg.audit_path())
                       for v in (e.get("aliases") or {}).values() if v is not None}
    delete, archive, kept = plan_registry(runs, versions, audit_versions=audit_versions,
                                          served=served_versions(cfg, inference_config),
                                          managed=set(cfg.models.values()), now=now, cap_s=policy.cap_s)
    report.kept = kept
    report.items = [Item("mlflow_run", f"{r.run_id} ({r.name})", "past_cap", why, 0) for r, why in delete]
    tag = policy.mlflow.archive_tag
    report.items += [Item("model_version", f"{v.name} v{v.version}", "archive", why, 0) for v, why in archive]
    report.stats = {"runs_scanned": len(runs), "versions_scanned": len(versions)}
    if apply:
        for r, _ in delete:
            client.delete_run(r.run_id)
        if delete:
            report.stats["mlflow_gc"] = _mlflow_gc(uri, [r.run_id for r, _ in delete])
        for v, _ in archive:
            client.set_model_version_tag(v.name, v.version, tag, "true")
            client.set_model_version_tag(v.name, v.version, f"{tag}_at", now_iso())
    if policy.mlflow.archive.mode == "move":
        move, stay = plan_moves(versions, [v for v, _ in archive], served=served_versions(cfg, inference_config),
                                managed=set(cfg.models.values()))
        report.warnings += [f"{v.name} v{v.version}: artifacts kept in place: {why}" for v, why in stay]
        for v in move:
            _move_version(client, v, policy, report, apply=apply)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _mlflow_gc(uri: str, run_ids: list[str]) -> str:
    """MLflow's own permanent deletion of exactly these (soft-deleted) runs and their artifacts."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run([sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", uri,
                           "--run-ids", ",".join(run_ids)], capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise TrendflowError(f"mlflow gc failed (exit {done.returncode}): {done.stderr.strip()[-500:]}",
                             code="mlflow_gc_failed")
    return f"mlflow gc removed {len(run_ids)} runs"


def _local_dir(uri: str) -> Path | None:
    """The folder a ``file://`` (or plain path) artifact URI names; None for a remote store."""
    from urllib.parse import unquote, urlparse

    u = urlparse(uri)
    if u.scheme in ("", "file"):
        return Path(unquote(u.path))
    return None


def _move_version(client, v: VersionRec, policy: RetentionPolicy, report: GcReport, *, apply: bool) -> None:
    """Move one archived version's artifacts (or finish an interrupted move); dry run: the item only."""
    from retention.archive import copy_verified, remove_source, tree_hashes, verify
    from retention.policy import resolve

    tag = policy.mlflow.archive_tag
    what = f"{v.name} v{v.version}"
    uri = client.get_model_version_download_uri(v.name, v.version)
    src = _local_dir(uri)
    if src is None:
        report.errors.append(f"{what}: artifacts at {uri} are not on a local filesystem; not moved")
        return
    if v.moved_to:  # the archive is recorded: at most the source's removal is left
        if not src.exists():
            return
        digest = client.get_model_version(v.name, v.version).tags.get(f"{tag}_sha256")
        report.items.append(Item("model_artifacts", what, "archive_move_resume", f"archived at {v.moved_to}; "
                                 f"the source {src} is left from an interrupted move", 0))
        if apply:
            if verify(Path(v.moved_to), digest) is None:
                report.errors.append(f"{what}: the archive {v.moved_to} does not verify; the source {src} is kept")
            else:
                remove_source(src, report.gc_id)
        return
    dst = resolve(policy.mlflow.archive.location) / v.name / f"v{v.version}"
    if not src.is_dir():
        report.errors.append(f"{what}: its artifacts {src} are missing; nothing to move")
        return
    n = len(tree_hashes(src)) if not apply else None
    report.items.append(Item("model_artifacts", what, "archive_move",
                             f"archived: artifacts move from {src} to {dst}"
                             + (f" ({n} files)" if n is not None else ""), 0))
    if not apply:
        return
    try:
        done = copy_verified(src, dst, report.gc_id)
    except (TrendflowError, OSError) as exc:
        report.errors.append(f"{what}: not moved, source kept: {exc}")
        return
    # the record first: a crash after it leaves a verified archive + the source, which the next GC removes
    for key, value in (("location", done.path), ("sha256", done.digest), ("from", uri), ("files", done.files)):
        client.set_model_version_tag(v.name, v.version, f"{tag}_{key}", str(value))
    remove_source(src, report.gc_id)
