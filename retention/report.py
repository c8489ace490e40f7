"""What a GC would free (dry run) or freed (``--apply``), printed per kind, and the record each GC leaves.

Each GC (one per kind: ``artifacts``, ``serving``, ``mlflow``, ``weights``, ``temp``) has a record
(:func:`gc_record`: ``gc_id``, ``kind``, ``started_at``, ``ended_at``, ``applied``, ``candidates``, ``deleted``,
``bytes_freed``, ``kept_past_cap``, ``errors``). :func:`write_records` appends it, with the per-kind details, as one
JSON line to ``.trendflow/gc.jsonl`` (the policy's ``record``; always: it is the local trail, and ``gc_id`` makes a
resend idempotent) and hands it to the observability store through :func:`send_to_store`, which imports
``observability.api.record_gc`` lazily and gives up, logged, when that function or its store is absent.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.clock import now_iso

log = logging.getLogger(__name__)
GC_KINDS = ("artifacts", "serving", "mlflow", "weights", "temp")


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
    gc_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ended_at: str | None = None
    items: list[Item] = field(default_factory=list)
    kept_past_cap: list[Item] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)  # rule -> how many were kept by it
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # what the GC failed to do (it went on with the rest)
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
        self.errors += other.errors
        for k, v in other.stats.items():
            self.stats[k] = self.stats.get(k, 0) + v if isinstance(v, int | float) else v

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["by_kind"] = self.by_kind()
        d["freed_bytes"] = self.freed_bytes
        return d

    def finish(self) -> GcReport:
        """Stamp ``ended_at`` (once); returns self."""
        if self.ended_at is None:
            self.ended_at = now_iso()
        return self

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
        for e in self.errors:
            lines.append(f"  error: {e}")
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


def gc_record(report: GcReport, kind: str) -> dict[str, Any]:
    """The record of one GC, as the observability store takes it (``gc_id`` is its idempotency key).

    ``candidates`` is what the GC found to delete, ``deleted`` and ``bytes_freed`` what it deleted (0 for a dry
    run); ``kept_past_cap`` lists ``{item, reason}``.
    """
    if kind not in GC_KINDS:
        raise ValueError(f"gc kind {kind!r} is not one of {', '.join(GC_KINDS)}")
    report.finish()
    return {"gc_id": report.gc_id, "kind": kind, "started_at": report.started_at, "ended_at": report.ended_at,
            "applied": report.applied, "candidates": len(report.items),
            "deleted": len(report.items) if report.applied else 0,
            "bytes_freed": report.freed_bytes if report.applied else 0,
            "kept_past_cap": [{"item": f"{i.kind} {i.what}", "reason": f"{i.rule}: {i.reason}"}
                              for i in report.kept_past_cap],
            "errors": list(report.errors)}


def json_line(report: GcReport, kind: str) -> dict[str, Any]:
    """The record plus what a reader of ``gc.jsonl`` wants besides: scope, per-kind counts and bytes (a dry run's
    would-free bytes too), the rules that kept things, warnings, stats, seconds."""
    return {**gc_record(report, kind), "ts": now_iso(), "scope": report.scope, "targets": report.targets,
            "by_kind": report.by_kind(), "freed_bytes": report.freed_bytes, "kept": report.kept,
            "kept_past_cap_items": [asdict(i) for i in report.kept_past_cap], "warnings": report.warnings,
            "stats": report.stats, "seconds": report.seconds}


def send_to_store(record: dict[str, Any], url: str | None = None) -> bool:
    """Hand one record to ``observability.api.record_gc`` (True once stored). An observability package without
    that function, an absent or unreachable store, or a failing call: False, logged, never raised (a GC's
    outcome must not depend on the metrics store; the JSON line is written anyway)."""
    try:
        from observability.api import record_gc
    except ImportError as exc:
        log.info("gc record %s not sent to the observability store: %s", record.get("gc_id"), exc)
        return False
    try:
        return bool(record_gc(record, url=url))
    except Exception as exc:  # record_gc promises not to raise; if it does, the record still stands in gc.jsonl
        log.warning("gc record %s: observability.api.record_gc failed: %s", record.get("gc_id"), exc)
        return False


def write_records(parts: list[tuple[str, GcReport]], path: Path, store_url: str | None = None) -> list[dict]:
    """One JSON line per ``(kind, report)`` in ``path``, and each record sent to the observability store;
    returns the lines written (``stored``: whether the store took it)."""
    out = []
    for kind, report in parts:
        line = json_line(report, kind)
        line["stored"] = send_to_store(gc_record(report, kind), store_url)
        append_line(Path(path), json.dumps(line, default=str, sort_keys=True))
        out.append(line)
    return out


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


__all__ = ["GC_KINDS", "GcReport", "Item", "fmt_bytes", "gc_record", "read_records", "send_to_store",
           "write_records"]
