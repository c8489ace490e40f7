"""Model weights on disk: Triton model repository versions that nothing references, and an LRU size cap.

A version folder ``<repo>/<model>/<N>/`` is referenced when ``conf/triton_models.yaml`` maps a logical model (the
profiles name logical models) to ``<model>:<N>``; referenced versions and the versions Triton has loaded now are
never touched. An unreferenced version unused for ``grace_days`` is archived (moved under ``archive_dir``, where it
is removed after ``archive_days``); if the remaining versions exceed ``max_bytes``, the least recently used
unreferenced, unloaded ones are evicted (removed) until they fit. "Used" is the newest access or modification time
of its files.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from retention.policy import RetentionPolicy, resolve
from retention.report import GcReport, Item
from retention.temp import tree_stats


@dataclass(frozen=True)
class WeightVersion:
    model: str
    version: str
    path: str
    bytes: int
    last_used: float  # epoch seconds


def plan_weights(versions: list[WeightVersion], referenced: set[tuple[str, str]], loaded: set[tuple[str, str]],
                 *, now: float, grace_s: float, max_bytes: int) -> list[tuple[WeightVersion, str, str]]:
    """Pure: ``(version, rule, reason)`` for each version to archive (``unreferenced_past_grace``) or evict
    (``lru_size_cap``), least recently used first. Referenced or loaded versions never appear."""
    out: list[tuple[WeightVersion, str, str]] = []
    protected = referenced | loaded
    remaining = []
    for v in versions:
        key = (v.model, v.version)
        if key not in protected and now - v.last_used > grace_s:
            out.append((v, "unreferenced_past_grace", f"no profile maps {v.model}:{v.version}; unused for "
                                                      f"{(now - v.last_used) / 86400:.1f} days"))
        else:
            remaining.append(v)
    total = sum(v.bytes for v in remaining)
    for v in sorted(remaining, key=lambda v: v.last_used):
        if total <= max_bytes:
            break
        if (v.model, v.version) in protected:
            continue
        out.append((v, "lru_size_cap", f"least recently used while versions hold {total} B over the cap "
                                       f"{max_bytes} B"))
        total -= v.bytes
    return out


def referenced_versions(mapping: Path) -> set[tuple[str, str]]:
    raw = yaml.safe_load(Path(mapping).read_text()) or {}
    return {(str(m["triton_model"]), str(m["version"])) for m in (raw.get("models") or {}).values()}


def loaded_versions(state_dir: Path | None = None) -> set[tuple[str, str]]:
    """``(model, version)`` that the local Triton (if running) reports READY."""
    from extraction import triton_server

    try:
        st = triton_server.status(state_dir or triton_server.DEFAULT_STATE_DIR)
    except Exception:  # no server, unreadable state: nothing is loaded
        return set()
    out = set()
    for name, state in (st.get("models") or {}).items():
        if state == "READY" and ":" in name:
            m, v = name.rsplit(":", 1)
            out.add((m, v))
    return out


def scan_versions(repo: Path) -> list[WeightVersion]:
    out = []
    for cfg in sorted(Path(repo).glob("*/config.pbtxt")):
        for d in sorted(cfg.parent.iterdir()):
            if d.is_dir() and d.name.isdigit():
                size, _ = tree_stats(d)
                stats = [os.stat(p) for p in d.rglob("*") if p.is_file()]
                used = max((max(st.st_atime, st.st_mtime) for st in stats), default=d.stat().st_mtime)
                out.append(WeightVersion(cfg.parent.name, d.name, str(d), size, used))
    return out


def gc_weights(policy: RetentionPolicy, *, apply: bool = False, now: float | None = None,
               loaded: set[tuple[str, str]] | None = None) -> GcReport:
    """Archive unreferenced versions past their grace, evict LRU over the size cap, expire the archive."""
    t0 = time.perf_counter()
    now = time.time() if now is None else now
    w = policy.weights
    repo, archive = resolve(w.model_repository), resolve(w.archive_dir)
    report = GcReport("weights", [str(repo)], apply)
    referenced = referenced_versions(resolve(w.mapping))
    loaded = loaded_versions() if loaded is None else loaded
    versions = scan_versions(repo) if repo.is_dir() else []
    plan = plan_weights(versions, referenced, loaded, now=now, grace_s=w.grace_days * 86400, max_bytes=w.max_bytes)
    for v, rule, reason in plan:
        # archiving frees the repository, not the disk, until the archive expires
        report.items.append(Item("weights", v.path, rule, reason, v.bytes if rule == "lru_size_cap" else 0))
    expired = []
    for d in sorted(archive.glob("*/*")) if archive.is_dir() else []:
        size, _ = tree_stats(d)
        age = now - d.stat().st_mtime
        if age > w.archive_days * 86400:
            expired.append(d)
            report.items.append(Item("weights", str(d), "archive_expired", f"archived {age / 86400:.1f} days ago",
                                     size))
    report.kept = {"referenced": sum((v.model, v.version) in referenced for v in versions),
                   "loaded": len(loaded)}
    if apply:
        for v, rule, _ in plan:
            if rule == "lru_size_cap":
                shutil.rmtree(v.path, ignore_errors=True)
            else:
                dst = archive / v.model / f"{v.version}-{int(now)}"
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.move(v.path, dst)
                    os.utime(dst)  # the archive's clock starts now
                except FileNotFoundError:
                    pass
        for d in expired:
            shutil.rmtree(d, ignore_errors=True)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report
