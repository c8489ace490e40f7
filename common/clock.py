"""Time stamps: always UTC, always ISO-8601 with a ``Z`` suffix."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def now_iso(precision: str = "microseconds") -> str:
    """``2026-12-02T14:20:13.123456Z`` (``precision="seconds"``: ``2026-12-02T14:20:13Z``, used where a
    human reads and compares the stamp, e.g. checklists)."""
    fmt = "%Y-%m-%dT%H:%M:%SZ" if precision == "seconds" else "%Y-%m-%dT%H:%M:%S.%fZ"
    return utc_now().strftime(fmt)


def parse_iso(value: str | datetime) -> datetime:
    """An ISO-8601 date or datetime; naive values are UTC."""
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
