"""Mark: which runs of an artifact store are live, as pure functions on plain data (no I/O).

The scanner (:mod:`retention.store`) turns a store into a :class:`StoreSnapshot`; :func:`mark` decides every run
and every cache-index entry from it, the pins (registered models' training data, aliases) and the live leases.
Rules, in order of precedence (the first that applies decides; ``docs/retention.md``):

1. ``leased``: a live lease holds the run, or holds its video and the run holds a cached artifact of it.
2. ``pinned``: a registered model version was trained on the run, or a stable/previous alias version was
   (kept even past the cap: these are listed as kept past the cap, with the pin).
3. ``young``: younger than ``min_age_s`` (a run that just finished or is being written without a lease).
4. ``incomplete``: no manifest and no lease: a killed run (its finished artifacts survive where a later run
   hard-linked them).
5. ``past_cap``: older than the cap: the cap wins over "last + N".
6. ``last_success`` / ``previous`` / ``after_last_success``: per retention key, the last successful run, the
   ``keep_previous`` runs before it, and the (failed) runs after it.
7. ``superseded``: everything else.

Bytes are counted per inode: a hard-linked file is freed only when every one of its links is deleted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from extraction.lease import LeaseInfo

KEEP_RULES = ("leased", "pinned", "young", "last_success", "previous", "after_last_success")
DELETE_RULES = ("incomplete", "past_cap", "superseded")


@dataclass(frozen=True)
class FileRec:
    """One file of a run folder."""

    name: str
    size: int
    inode: tuple[int, int]  # (st_dev, st_ino): links of one file share it
    nlink: int


@dataclass(frozen=True)
class RunRec:
    """One run folder ``<platform_id>/<video_id>/<run_id>``."""

    platform_id: str
    video_id: str
    run_id: str
    complete: bool  # has manifest.json
    status: str | None  # the manifest's status (ok | partial | error)
    time: float  # epoch seconds: the manifest's finished_at, else the newest file's mtime
    key: str | None  # retention key (platform, video, config_hash, sampling policy, model signature set)
    files: tuple[FileRec, ...] = ()

    @property
    def rel(self) -> str:
        return f"{self.platform_id}/{self.video_id}/{self.run_id}"

    @property
    def video(self) -> tuple[str, str]:
        return (self.platform_id, self.video_id)


@dataclass(frozen=True)
class IndexRec:
    """One cache-index entry ``<platform_id>/<video_id>/cache/<cache_key>.json``."""

    platform_id: str
    video_id: str
    cache_key: str
    target: str  # relative path of the artifact it points at (``p/v/run/comp.npz``)


@dataclass(frozen=True)
class StoreSnapshot:
    root: str
    runs: tuple[RunRec, ...]
    index: tuple[IndexRec, ...]
    trash: tuple[str, ...] = ()  # leftovers of an interrupted GC (already decided dead)
    trash_bytes: int = 0


@dataclass(frozen=True)
class Decision:
    run: RunRec
    keep: bool
    rule: str
    reason: str
    past_cap: bool = False
    freed_bytes: int = 0  # bytes its deletion frees (inodes whose last link it holds)


@dataclass(frozen=True)
class IndexUpdate:
    entry: IndexRec
    new_target: str | None  # None: remove the entry (no link of the artifact survives)
    dangling: bool = False  # the scan saw no such file (re-checked before removing: it may have appeared since)


@dataclass
class LiveSet:
    decisions: list[Decision]
    index_updates: list[IndexUpdate]
    live_inodes: set[tuple[int, int]] = field(default_factory=set)

    @property
    def deleted(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if d.keep]

    @property
    def kept_past_cap(self) -> list[Decision]:
        return [d for d in self.decisions if d.keep and d.past_cap]

    @property
    def freed_bytes(self) -> int:
        return sum(d.freed_bytes for d in self.decisions)


def per_key_keep(runs: Iterable[RunRec], keep_previous: int) -> dict[str, str]:
    """``run rel -> rule`` for the runs "last successful + ``keep_previous`` before it" keeps, per retention key.

    Runs newer than the last successful one (failed attempts) are kept as ``after_last_success``; a key with no
    successful run keeps its newest ``1 + keep_previous``.
    """
    by_key: dict[str, list[RunRec]] = defaultdict(list)
    for r in runs:
        if r.complete and r.key is not None:
            by_key[r.key].append(r)
    out: dict[str, str] = {}
    for group in by_key.values():
        group.sort(key=lambda r: (r.time, r.run_id), reverse=True)
        last = next((i for i, r in enumerate(group) if r.status == "ok"), None)
        if last is None:
            for r in group[:1 + keep_previous]:
                out[r.rel] = "previous"
            continue
        for r in group[:last]:
            out[r.rel] = "after_last_success"
        out[group[last].rel] = "last_success"
        for r in group[last + 1:last + 1 + keep_previous]:
            out[r.rel] = "previous"
    return out


def _decide(r: RunRec, *, now: float, cap_s: float, min_age_s: float, keep: Mapping[str, str],
            pins: Mapping[tuple[str, str, str], str], held: Mapping[str, str]) -> Decision:
    age = now - r.time
    past_cap = age > cap_s
    if r.rel in held:
        return Decision(r, True, "leased", held[r.rel], past_cap)
    pin = pins.get((r.platform_id, r.video_id, r.run_id))
    if pin is not None:
        return Decision(r, True, "pinned", pin, past_cap)
    if age < min_age_s:
        return Decision(r, True, "young", f"{age / 3600:.1f} h old, under the minimum age")
    if not r.complete:
        return Decision(r, False, "incomplete", "no manifest and no live lease: an interrupted run")
    if past_cap:
        return Decision(r, False, "past_cap", f"{age / 86400:.1f} days old, over the {cap_s / 86400:g}-day cap")
    rule = keep.get(r.rel)
    if rule is not None:
        return Decision(r, True, rule, {"last_success": "the last successful run of its key",
                                        "previous": "one of the runs kept before the last successful one",
                                        "after_last_success": "a run after its key's last successful one"}[rule])
    return Decision(r, False, "superseded", "older than its key's last successful run + kept previous runs")


def held_by_leases(snap: StoreSnapshot, leases: Iterable[LeaseInfo]) -> dict[str, str]:
    """``run rel -> reason`` for the runs live leases hold: their own run folders, and every run holding an
    artifact the cache index points at for a video a lease processes (the run may be about to hard-link it)."""
    held: dict[str, str] = {}
    by_video: dict[tuple[str, str], str] = {}
    for lease in leases:
        for v in lease.videos:
            by_video.setdefault(v, lease.run_id)
    own = {lease.run_id: lease for lease in leases}
    for r in snap.runs:
        if r.run_id in own:
            held[r.rel] = f"lease of running run {r.run_id} (pid {own[r.run_id].pid})"
    for e in snap.index:
        holder = by_video.get((e.platform_id, e.video_id))
        if holder is not None:
            rel = e.target.rsplit("/", 1)[0]
            held.setdefault(rel, f"holds cached artifacts of a video running run {holder} processes")
    return held


def mark(snap: StoreSnapshot, *, now: float, cap_s: float, keep_previous: int, min_age_s: float,
         pins: Mapping[tuple[str, str, str], str] | None = None,
         live_leases: Iterable[LeaseInfo] = ()) -> LiveSet:
    """Decide every run and cache-index entry of ``snap`` (see the module docstring for the rules).

    Args:
        snap: the store as scanned.
        now: epoch seconds of "now".
        cap_s: the hard cap in seconds.
        keep_previous: runs kept before each key's last successful run.
        min_age_s: nothing younger is deleted.
        pins: ``(platform_id, video_id, run_id) -> why`` for runs registered models were trained on.
        live_leases: the leases judged live now (:func:`extraction.lease.is_live`).
    """
    leases = list(live_leases)
    keep = per_key_keep(snap.runs, keep_previous)
    held = held_by_leases(snap, leases)
    decisions = [_decide(r, now=now, cap_s=cap_s, min_age_s=min_age_s, keep=keep, pins=pins or {}, held=held)
                 for r in snap.runs]
    live_inodes = {f.inode for d in decisions if d.keep for f in d.run.files}
    decisions = _count_freed(decisions, live_inodes)
    leased_videos = {v for lease in leases for v in lease.videos}
    updates = index_updates(snap, decisions, leased_videos)
    return LiveSet(decisions, updates, live_inodes)


def _count_freed(decisions: list[Decision], live_inodes: set[tuple[int, int]]) -> list[Decision]:
    """Credit each freed inode's bytes to one deleted run: freed when no kept run links it and the deleted runs
    hold all of its links."""
    links: dict[tuple[int, int], int] = defaultdict(int)
    for d in decisions:
        if not d.keep:
            for f in d.run.files:
                links[f.inode] += 1
    credited: set[tuple[int, int]] = set()
    out = []
    for d in decisions:
        if d.keep:
            out.append(d)
            continue
        freed = 0
        for f in d.run.files:
            if f.inode in live_inodes or f.inode in credited or links[f.inode] < f.nlink:
                continue
            credited.add(f.inode)
            freed += f.size
        out.append(Decision(d.run, d.keep, d.rule, d.reason, d.past_cap, freed))
    return out


def index_updates(snap: StoreSnapshot, decisions: list[Decision],
                  leased_videos: set[tuple[str, str]] = frozenset()) -> list[IndexUpdate]:
    """Cache-index entries to rewrite so that none points into a deleted run or at a missing file: repointed at a
    surviving link of the same artifact (same inode, a kept run of the same video), else removed. Entries of videos
    a live lease processes are left alone (their runs are all kept)."""
    deleted = {d.run.rel for d in decisions if not d.keep}
    files: dict[str, FileRec] = {}
    kept_links: dict[tuple[tuple[str, str], tuple[int, int]], str] = {}
    for d in decisions:
        for f in d.run.files:
            files[f"{d.run.rel}/{f.name}"] = f
            if d.keep:
                kept_links.setdefault((d.run.video, f.inode), f"{d.run.rel}/{f.name}")
    out = []
    for e in snap.index:
        if (e.platform_id, e.video_id) in leased_videos:
            continue
        run_rel = e.target.rsplit("/", 1)[0]
        f = files.get(e.target)
        if f is None:
            out.append(IndexUpdate(e, None, dangling=True))  # dangling already: repair
        elif run_rel in deleted:
            out.append(IndexUpdate(e, kept_links.get(((e.platform_id, e.video_id), f.inode))))
    return out
