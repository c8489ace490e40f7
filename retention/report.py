"""What a GC would free (dry run) or freed (``--apply``), printed per kind, and the record each GC leaves.

Every GC appends one JSON line to ``.trendflow/gc.jsonl`` (the policy's ``record``): when, what scope, applied or
not, count and bytes per kind, and what was kept past the cap and why. An observability store can take the records
instead: it calls :func:`register_sink` with a function that receives each record and returns True once it has
stored it (then no JSON line is written). Retention does not import it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.clock import now_iso

Sink = Callable[[dict[str, Any]], bool]
_SINKS: list[Sink] = []


@dataclass(frozen=True)
class Item:
    """One thing a GC deletes (or, in ``kept_past_cap``, keeps): its kind, what, the rule and why, its bytes."""

    kind: str  # run | incomplete_run | trash | index_entry | temp | tmp_file | weights | mlflow_run | model_version
    what: str
    rule: str
    reason: str
    bytes: int = 0


@dataclass
class GcReport:
    """The typed result of one GC (dry run or applied)."""

    scope: str
    targets: list[str]
    applied: bool
    started_at: str = field(default_factory=now_iso)
    items: list[Item] = field(default_factory=list)
    kept_past_cap: list[Item] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)  # rule -> how many were kept by it
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def by_kind(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for it in self.items:
            k = out.setdefault(it.kind, {"count": 0, "bytes": 0})
            k["count"] += 1
            k["bytes"] += it.bytes
        return out

    @property
    def freed_bytes(self) -> int:
        return sum(it.bytes for it in self.items)

    def merge(self, other: GcReport) -> None:
        self.targets += other.targets
        seen = {(it.kind, it.what) for it in self.items}  # scopes overlap (a store's tmp files, the temp roots)
        self.items += [it for it in other.items if (it.kind, it.what) not in seen]
        self.kept_past_cap += other.kept_past_cap
        for k, v in other.kept.items():
            self.kept[k] = self.kept.get(k, 0) + v
        self.warnings += other.warnings
        for k, v in other.stats.items():
            self.stats[k] = self.stats.get(k, 0) + v if isinstance(v, int | float) else v

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["by_kind"] = self.by_kind()
        d["freed_bytes"] = self.freed_bytes
        return d

    def record(self) -> dict[str, Any]:
        """The JSON line of this GC (the items are summarised per kind; kept-past-cap entries listed in full)."""
        return {"ts": now_iso(), "started_at": self.started_at, "scope": self.scope, "targets": self.targets,
                "applied": self.applied, "by_kind": self.by_kind(), "freed_bytes": self.freed_bytes,
                "kept": self.kept, "kept_past_cap": [asdict(i) for i in self.kept_past_cap],
                "warnings": self.warnings, "stats": self.stats, "seconds": self.seconds}

    def render(self, max_per_kind: int = 20) -> str:
        verb = "deleted" if self.applied else "would delete"
        lines = [f"gc {self.scope} ({'applied' if self.applied else 'dry run: nothing deleted; --apply deletes'})"
                 f": {', '.join(self.targets) or 'nothing in scope'}"]
        shown: dict[str, int] = {}
        for it in self.items:
            shown[it.kind] = shown.get(it.kind, 0) + 1
            if shown[it.kind] <= max_per_kind:
                lines.append(f"  {verb} {it.kind} {it.what}  [{it.rule}: {it.reason}]  {fmt_bytes(it.bytes)}")
        for kind, n in shown.items():
            if n > max_per_kind:
                lines.append(f"  ... and {n - max_per_kind} more {kind} (--json lists all)")
        for it in self.kept_past_cap:
            lines.append(f"  kept past the cap: {it.kind} {it.what}  [{it.rule}: {it.reason}]")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        for kind, k in sorted(self.by_kind().items()):
            lines.append(f"  {kind}: {k['count']} {'deleted' if self.applied else 'to delete'}, "
                         f"{fmt_bytes(k['bytes'])}")
        if self.kept:
            lines.append("  kept: " + ", ".join(f"{n} {rule}" for rule, n in sorted(self.kept.items())))
        lines.append(f"total: {'freed' if self.applied else 'would free'} {fmt_bytes(self.freed_bytes)} "
                     f"({len(self.items)} items, {len(self.kept_past_cap)} kept past the cap) in {self.seconds:.2f} s")
        return "\n".join(lines)


def fmt_bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def register_sink(sink: Sink) -> None:
    """Route GC records to ``sink`` (e.g. an observability store); it returns True when it stored the record."""
    if sink not in _SINKS:
        _SINKS.append(sink)


def unregister_sink(sink: Sink) -> None:
    if sink in _SINKS:
        _SINKS.remove(sink)


def write_record(report: GcReport, path: Path) -> dict[str, Any]:
    """Hand the record to the registered sinks; if none stored it, append it as a JSON line to ``path``."""
    rec = report.record()
    stored = False
    for sink in list(_SINKS):
        try:
            stored = bool(sink(rec)) or stored
        except Exception:  # a broken sink must not lose the record: the JSON line is written
            continue
    if not stored:
        append_line(Path(path), json.dumps(rec, default=str, sort_keys=True))
    return rec


def append_line(path: Path, line: str) -> None:
    """Append one line: a single ``write`` on an O_APPEND descriptor, so concurrent GCs never interleave lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of a ``gc.jsonl`` (missing file = none)."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


__all__ = ["GcReport", "Item", "fmt_bytes", "read_records", "register_sink", "write_record"]
