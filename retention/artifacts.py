"""GC of artifact stores (the extraction store, the service's ``.trendflow/serving/artifacts``): scan, mark, sweep.

:func:`gc_store` is one store; :func:`gc_artifacts` is the composition ``python -m extraction gc`` calls.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from common.errors import TrendflowError
from extraction.lease import LeaseInfo, is_live, read_leases
from retention.live import LiveSet, StoreSnapshot, mark
from retention.pins import Pins
from retention.policy import RetentionPolicy, resolve
from retention.report import GcReport, Item
from retention.store import scan, sweep
from retention.temp import stale_tmp_files

RUN_KIND = {"incomplete": "incomplete_run"}


def video_leases(root: Path) -> list[LeaseInfo]:
    """The distributed executor's per-video leases (``extraction.store``: ``<p>/<v>/.lease``, no heartbeat, broken
    after its TTL) as run leases on one video each. Their holder may be another node: only the TTL ends them."""
    from extraction.store import DEFAULT_LEASE_TTL_S, LEASE_NAME, SharedFilesystemStore

    store, out = SharedFilesystemStore(Path(root)), []
    for path in Path(root).glob(f"*/*/{LEASE_NAME}"):
        lease = store.current(path.parent.parent.name, path.parent.name)
        if lease is not None:
            out.append(LeaseInfo(lease.run_id, lease.pid, f"node:{lease.holder}", lease.acquired_at,
                                 lease.acquired_unix, DEFAULT_LEASE_TTL_S,
                                 ((path.parent.parent.name, path.parent.name),), str(path)))
    return out


def live_leases(root: Path, policy: RetentionPolicy, now: float) -> tuple[list[LeaseInfo], list[LeaseInfo]]:
    """``(live, dead)`` run leases of a store; the policy's ``lease_timeout_s`` is a floor on each lease's timeout.
    Live per-video leases of the distributed executor count too; dead ones are theirs to break, not the GC's."""
    live, dead = [], []
    for lease in read_leases(root):
        lease = dataclasses.replace(lease, timeout_s=max(lease.timeout_s, policy.artifacts.lease_timeout_s))
        (live if is_live(lease, now) else dead).append(lease)
    live += [lease for lease in video_leases(root) if is_live(lease, now)]
    return live, dead


def _mark(snap: StoreSnapshot, policy: RetentionPolicy, now: float, pins: Pins, leases: list[LeaseInfo]) -> LiveSet:
    return mark(snap, now=now, cap_s=policy.cap_s, keep_previous=policy.keep_previous, min_age_s=policy.min_age_s,
                pins=pins.runs, live_leases=leases)


def _items(root: Path, snap: StoreSnapshot, live: LiveSet, dead: list[LeaseInfo]) -> tuple[list[Item], list[Item]]:
    items = [Item(RUN_KIND.get(d.rule, "run"), str(root / d.run.rel), d.rule, d.reason, d.freed_bytes)
             for d in live.deleted]
    items += [Item("trash", t, "interrupted_gc", "left by a GC that did not finish", 0) for t in snap.trash]
    if snap.trash:
        items[-1] = dataclasses.replace(items[-1], bytes=snap.trash_bytes)
    items += [Item("index_entry", f"{root}/{u.entry.platform_id}/{u.entry.video_id}/cache/{u.entry.cache_key}.json",
                   "dangling" if u.dangling else "target_deleted",
                   f"points at {u.entry.target}, which no kept run holds", 0)
              for u in live.index_updates if u.new_target is None]
    items += [Item("lease", lease.path, "dead_lease", f"run {lease.run_id} stopped its heartbeat", 0)
              for lease in dead]
    kept = [Item("run", str(root / d.run.rel), d.rule, d.reason) for d in live.kept_past_cap]
    return items, kept


def gc_store(root: Path, policy: RetentionPolicy, *, apply: bool = False, now: float | None = None,
             pins: Pins | None = None, progress=None) -> GcReport:
    """Dry run (default) or apply the GC of the store at ``root``; ``progress(stage, n)`` reports long scans and
    sweeps.

    On apply the leases are read again just before the sweep and the live set recomputed with them, so a run
    that started after the scan keeps what it holds (and its own new folders were never scanned).
    """
    t0 = time.perf_counter()
    root = Path(root)
    now = time.time() if now is None else now
    pins = pins or Pins()
    report = GcReport("artifacts", [str(root)], apply)
    before, _ = live_leases(root, policy, now)  # a run live at any point of the scan may have been scanned half-way
    snap = scan(root, progress)
    live_l, dead = _union(before, *live_leases(root, policy, now))
    live = _mark(snap, policy, now, pins, live_l)
    stale = stale_tmp_files([root], policy.temp.stale_tmp_hours * 3600, now, min_live_start=_oldest(live_l))
    if apply:  # a run may have started since the scan: what its lease holds must survive this sweep
        live_l, dead = _union(live_l, *live_leases(root, policy, now))
        live = _mark(snap, policy, now, pins, live_l)
    report.items, report.kept_past_cap = _items(root, snap, live, dead)
    report.items += stale
    for d in live.kept:
        report.kept[d.rule] = report.kept.get(d.rule, 0) + 1
    report.stats = {"runs_scanned": len(snap.runs), "index_entries": len(snap.index),
                    "files_scanned": sum(len(r.files) for r in snap.runs), "live_leases": len(live_l),
                    "index_repointed": sum(u.new_target is not None for u in live.index_updates)}
    if apply:
        report.stats.update(sweep(root, live, gc_id=report.gc_id, progress=progress))
        for lease in dead:
            Path(lease.path).unlink(missing_ok=True)
        for it in stale:
            Path(it.what).unlink(missing_ok=True)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _union(earlier: list[LeaseInfo], live: list[LeaseInfo], dead: list[LeaseInfo]
           ) -> tuple[list[LeaseInfo], list[LeaseInfo]]:
    """``(live, dead)``: the leases live now plus those live at an earlier read (a run that ended since then still
    holds, for this sweep, what the scan may have seen it half-way through); dead ones only when dead throughout."""
    seen = {lease.path for lease in live}
    live = live + [lease for lease in earlier if lease.path not in seen]
    held = {lease.path for lease in live}
    return live, [lease for lease in dead if lease.path not in held]


def _oldest(leases: list[LeaseInfo]) -> float | None:
    from common.clock import parse_iso

    starts = []
    for lease in leases:
        try:
            starts.append(parse_iso(lease.started_at).timestamp())
        except ValueError:
            starts.append(0.0)
    return min(starts) if starts else None


def default_stores(policy: RetentionPolicy) -> list[Path]:
    return [resolve(s) for s in policy.artifacts.stores]


def store_kind(root: Path, policy: RetentionPolicy) -> str:
    """``serving`` for the service's store (the policy's ``artifacts.serving_store``), else ``artifacts``."""
    serving = resolve(policy.artifacts.serving_store) if policy.artifacts.serving_store else None
    return "serving" if serving is not None and Path(root).resolve() == serving.resolve() else "artifacts"


def gc_artifacts(stores: list[Path], policy: RetentionPolicy, *, apply: bool = False, now: float | None = None,
                 pins: Pins | None = None, progress=None) -> list[tuple[str, GcReport]]:
    """GC every store of ``stores``: one ``(kind, report)`` per store (a missing one is skipped with a warning);
    refuses an empty scope."""
    if not stores:
        raise TrendflowError("no artifact store given (--artifacts DIR) and none configured in the retention "
                             "policy's artifacts.stores: refusing to guess a scope", code="gc_scope_missing")
    out = []
    for root in stores:
        kind = store_kind(Path(root), policy)
        if not Path(root).is_dir():
            skipped = GcReport(kind, [str(root)], apply)
            skipped.warnings.append(f"{root}: no such store, skipped")
            out.append((kind, skipped))
            continue
        out.append((kind, gc_store(Path(root), policy, apply=apply, now=now, pins=pins, progress=progress)))
    if pins is not None and pins.unrecorded:
        out[0][1].warnings.append("registered versions that record no training runs (their data cannot be "
                                  "pinned): " + ", ".join(pins.unrecorded))
    return out


__all__ = ["default_stores", "gc_artifacts", "gc_store", "live_leases", "store_kind"]
