"""Scan an artifact store into plain data (:class:`retention.live.StoreSnapshot`) and sweep what mark decided.

Layout (``extraction.artifacts``): ``ROOT/<platform_id>/<video_id>/<run_id>/{<component>.npz, manifest.json}``,
the cache index ``ROOT/<platform_id>/<video_id>/cache/<cache_key>.json``, leases ``ROOT/.leases/`` and the GC's
trash ``ROOT/.trash/<gc_id>/``. Anything that vanishes while being scanned or swept was deleted by someone else:
it is skipped, never an error.

Sweep order, chosen so that a crash (kill -9) at any point leaves a store the next run and the next GC accept:
(1) rewrite the cache-index entries (repointed at a surviving link, or removed) so no entry points at what goes;
(2) rename each dead run folder into ``.trash/<gc_id>/`` (one rename; a reader sees the whole run or none);
(3) remove the trash. Leftover trash of an interrupted GC is removed by the next one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from common.clock import parse_iso
from common.fsio import atomic_write_json
from common.hashing import json_hash
from extraction.artifacts import cache_index_path
from extraction.lease import LEASE_DIR
from retention.live import FileRec, IndexRec, IndexUpdate, LiveSet, RunRec, StoreSnapshot

TRASH_DIR = ".trash"
CACHE_DIR = "cache"


def retention_key(manifest: dict) -> str:
    """The retention key of a run: platform, video, config hash, sampling policy and the set of model
    signatures its components used (a changed model version is a new key)."""
    sigs = sorted({str(e.get("model_signature")) for e in manifest.get("components", {}).values()})
    return json_hash([manifest.get("platform_id"), manifest.get("video_id"), manifest.get("config_hash"),
                      manifest.get("sampling_policy_version"), sigs])


def _files(run_dir: Path) -> tuple[list[FileRec], float]:
    out, newest = [], 0.0
    try:
        entries = list(os.scandir(run_dir))
    except FileNotFoundError:
        return [], 0.0
    for e in entries:
        try:
            st = e.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not e.is_file(follow_symlinks=False):
            continue
        out.append(FileRec(e.name, st.st_size, (st.st_dev, st.st_ino), st.st_nlink))
        newest = max(newest, st.st_mtime)
    return out, newest


def _read_json(path: str | Path) -> dict:
    with open(path, "rb") as fh:  # bytes straight to json: no text decoding layer (20,000 manifests per scan)
        return json.loads(fh.read())


def _run(platform_id: str, video_id: str, run_dir: Path) -> RunRec | None:
    files, newest = _files(run_dir)
    man_path = run_dir / "manifest.json"
    manifest = None
    if any(f.name == "manifest.json" for f in files):
        try:
            manifest = _read_json(man_path)
        except (OSError, ValueError):
            manifest = None  # being replaced or unreadable: judged as incomplete (the young rule protects it)
    if manifest is None:
        if not files:
            try:
                newest = run_dir.stat().st_mtime
            except FileNotFoundError:
                return None
        return RunRec(platform_id, video_id, run_dir.name, False, None, newest, None, tuple(files))
    stamp = manifest.get("finished_at") or manifest.get("started_at")
    t = parse_iso(stamp).timestamp() if stamp else newest
    return RunRec(platform_id, video_id, run_dir.name, True, manifest.get("status"), t,
                  retention_key(manifest), tuple(files))


def _index(platform_id: str, video_id: str, cache_dir: Path) -> list[IndexRec]:
    out = []
    try:
        entries = list(os.scandir(cache_dir))
    except FileNotFoundError:
        return out
    for e in entries:
        if not e.name.endswith(".json") or e.name.startswith("."):
            continue
        try:
            target = _read_json(e.path)["artifact"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        out.append(IndexRec(platform_id, video_id, e.name[:-len(".json")], str(target)))
    return out


def _dirs(path: Path) -> list[os.DirEntry]:
    try:
        return [e for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def scan(root: Path, progress=None) -> StoreSnapshot:
    """Every run folder, cache-index entry and trash leftover of the store at ``root``; ``progress(stage, n)`` is
    called every 1,000 runs scanned."""
    root = Path(root)
    runs: list[RunRec] = []
    index: list[IndexRec] = []
    for p in _dirs(root):
        if p.name.startswith("."):
            continue  # .leases, .trash
        for v in _dirs(Path(p.path)):
            for r in _dirs(Path(v.path)):
                if r.name == CACHE_DIR:
                    index.extend(_index(p.name, v.name, Path(r.path)))
                elif not r.name.startswith("."):
                    rec = _run(p.name, v.name, Path(r.path))
                    if rec is not None:
                        runs.append(rec)
                        if progress is not None and len(runs) % 1000 == 0:
                            progress("runs scanned", len(runs))
    trash = [e.path for e in _dirs(root / TRASH_DIR)]
    return StoreSnapshot(str(root), tuple(runs), tuple(index), tuple(trash), sum(_tree_bytes(Path(t)) for t in trash))


def _tree_bytes(path: Path) -> int:
    """Bytes removing ``path`` frees: files whose every link lies inside it."""
    seen: dict[tuple[int, int], list[int]] = {}
    for dirpath, _, names in os.walk(path):
        for n in names:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except FileNotFoundError:
                continue
            rec = seen.setdefault((st.st_dev, st.st_ino), [0, st.st_nlink, st.st_size])
            rec[0] += 1
    return sum(size for count, nlink, size in seen.values() if count >= nlink)


def surviving_link(root: Path, target: str, going: set[str] | frozenset[str] = frozenset()) -> str | None:
    """A link of the artifact ``target`` (``p/v/run/comp.npz``) in another run folder of its video that is not in
    ``going``, looked up on disk now. The scan may predate it: a run that finished between the scan and the sweep
    hard-linked the artifact after its folder was scanned (its lease was gone by the time the GC re-read them)."""
    root = Path(root)
    run_rel, name = target.rsplit("/", 1)
    try:
        st = os.stat(root / target)
    except FileNotFoundError:
        return None
    video_rel = run_rel.rsplit("/", 1)[0]
    for d in _dirs(root / video_rel):
        rel = f"{video_rel}/{d.name}"
        if d.name == CACHE_DIR or rel == run_rel or rel in going:
            continue
        try:
            other = os.stat(os.path.join(d.path, name))
        except FileNotFoundError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            return f"{rel}/{name}"
    return None


def apply_index_updates(root: Path, updates: list[IndexUpdate], going: set[str] | frozenset[str] = frozenset()) -> int:
    """Rewrite (atomically) or remove each entry, but only while it still points where the scan saw it: a run
    that re-recorded the key meanwhile wins. An entry the scan would remove is repointed instead when a link of
    its artifact outside the runs ``going`` exists now. Returns how many entries changed."""
    changed = 0
    for u in updates:
        e = u.entry
        path = cache_index_path(Path(root), e.platform_id, e.video_id, e.cache_key)
        try:
            current = json.loads(path.read_text()).get("artifact")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue  # gone or being replaced: nothing to fix
        if current != e.target:
            continue
        if u.dangling and (Path(root) / e.target).exists():
            continue  # written after the scan looked at its run folder: not dangling after all
        new_target = u.new_target
        if new_target is None and not u.dangling:
            new_target = surviving_link(root, e.target, going)
        if new_target is None:
            path.unlink(missing_ok=True)
        else:
            atomic_write_json(path, {"artifact": new_target}, fsync=False)
        changed += 1
    if changed:
        os.sync()  # durable, all at once, before any run folder is renamed away
    return changed


def trash_runs(root: Path, rels: list[str], gc_id: str | None = None, progress=None) -> tuple[Path, int]:
    """Rename each run folder ``rels`` (``p/v/run``) into ``ROOT/.trash/<gc_id>/``; missing ones count as already
    deleted. Returns ``(trash folder, runs moved)``."""
    root = Path(root)
    gc_id = gc_id or uuid.uuid4().hex[:12]
    trash = root / TRASH_DIR / gc_id
    moved = 0
    made: set[Path] = set()
    for i, rel in enumerate(rels):
        dst = trash / rel
        if dst.parent not in made:
            dst.parent.mkdir(parents=True, exist_ok=True)
            made.add(dst.parent)
        try:
            os.rename(root / rel, dst)
            moved += 1
        except FileNotFoundError:
            pass
        if progress is not None and (i + 1) % 1000 == 0:
            progress("runs moved to trash", i + 1)
    return trash, moved


def empty_trash(root: Path) -> int:
    """Remove every trash folder of ``root`` (this GC's and any interrupted one's). Returns how many."""
    n = 0
    for t in _dirs(Path(root) / TRASH_DIR):
        shutil.rmtree(t.path, ignore_errors=True)
        n += 1
    return n


def sweep(root: Path, live: LiveSet, gc_id: str | None = None, progress=None) -> dict[str, int]:
    """Apply ``live`` to the store: index first, then rename-to-trash, then remove (see the module docstring)."""
    changed = apply_index_updates(root, live.index_updates, {d.run.rel for d in live.deleted})
    _, moved = trash_runs(root, [d.run.rel for d in live.deleted], gc_id, progress)
    emptied = empty_trash(root)
    return {"index_entries_changed": changed, "runs_moved": moved, "trash_folders_removed": emptied}


__all__ = ["LEASE_DIR", "TRASH_DIR", "apply_index_updates", "empty_trash", "retention_key", "scan",
           "surviving_link", "sweep", "trash_runs"]
