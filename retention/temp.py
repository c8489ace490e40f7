"""Temp TTL: frames folders, calibration renders, spools (configured folder + glob pairs) older than the TTL, and
stale ``.<name>.*.tmp`` files that a killed writer of :mod:`common.fsio` left behind."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from common.fsio import TMP_SUFFIX
from retention.policy import RetentionPolicy, resolve
from retention.report import GcReport, Item


def tree_stats(path: Path) -> tuple[int, float]:
    """``(bytes, newest mtime)`` of a file or folder tree (vanishing entries are skipped)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0, 0.0
    if not os.path.isdir(path) or os.path.islink(path):
        return st.st_size, st.st_mtime
    total, newest = 0, st.st_mtime
    for dirpath, _, names in os.walk(path):
        for n in names:
            try:
                s = os.lstat(os.path.join(dirpath, n))
            except FileNotFoundError:
                continue
            total += s.st_size
            newest = max(newest, s.st_mtime)
    return total, newest


def is_tmp_name(name: str) -> bool:
    """``common.fsio``'s temp files: ``.<name>.<random>.tmp``."""
    return name.startswith(".") and name.endswith(TMP_SUFFIX) and name.count(".") >= 3


def stale_tmp_files(roots: list[Path], max_age_s: float, now: float,
                    min_live_start: float | None = None) -> list[Item]:
    """Atomic-write temp files under ``roots`` older than ``max_age_s``; with a live writer's start time, only those
    older than it too (a file a live run could still be writing is never stale)."""
    out = []
    for root in roots:
        for dirpath, dirnames, names in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != ".trash"]
            for n in names:
                if not is_tmp_name(n):
                    continue
                p = os.path.join(dirpath, n)
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    continue
                if now - st.st_mtime <= max_age_s or (min_live_start is not None and st.st_mtime >= min_live_start):
                    continue
                out.append(Item("tmp_file", p, "stale_tmp", f"{(now - st.st_mtime) / 3600:.1f} h old: its writer "
                                "is gone", st.st_size if st.st_nlink == 1 else 0))
    return out


def gc_temp(policy: RetentionPolicy, *, apply: bool = False, now: float | None = None) -> GcReport:
    """Expire the policy's temp folders/files older than ``temp.ttl_days`` and stale ``.*.tmp`` files."""
    t0 = time.perf_counter()
    now = time.time() if now is None else now
    tp = policy.temp
    report = GcReport("temp", [f"{r.folder}/{r.glob}" for r in tp.roots] + list(tp.tmp_file_roots), apply)
    ttl = tp.ttl_days * 86400
    for r in tp.roots:
        folder = resolve(r.folder)
        for p in sorted(folder.glob(r.glob)) if folder.is_dir() else []:
            size, newest = tree_stats(p)
            if now - newest > max(ttl, policy.min_age_s):
                report.items.append(Item("temp", str(p), "temp_ttl", f"untouched for {(now - newest) / 86400:.1f} "
                                         f"days, over the {tp.ttl_days:g}-day TTL", size))
    report.items += stale_tmp_files([resolve(r) for r in tp.tmp_file_roots if resolve(r).is_dir()],
                                    tp.stale_tmp_hours * 3600, now)
    if apply:
        for it in report.items:
            remove(Path(it.what))
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def remove(path: Path) -> None:
    """Remove a file or tree; already gone is fine."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
