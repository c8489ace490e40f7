"""Inline SVG line charts for the admin page (no JavaScript, no image files: the page is one HTML response)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape


def line_chart(xs: Sequence[datetime], ys: Sequence[float | None], title: str, unit: str = "",
               width: int = 360, height: int = 140, scale: float = 1.0) -> str:
    """One series as an SVG ``<polyline>`` (gaps where ``y`` is None), with its max and the time range labelled.

    ``scale`` multiplies values for the labels (e.g. 1000 to show seconds as ms).
    """
    pad_l, pad_r, pad_t, pad_b = 44, 8, 18, 18
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    vals = [y for y in ys if y is not None]
    top = max(vals) if vals else 1.0
    top = top if top > 0 else 1.0
    n = max(len(xs) - 1, 1)
    segments: list[list[str]] = [[]]
    for i, y in enumerate(ys):
        if y is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append(f"{pad_l + w * i / n:.1f},{pad_t + h * (1 - y / top):.1f}")
    lines = "".join(f'<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="{" ".join(s)}"/>'
                    + (f'<circle cx="{s[0].split(",")[0]}" cy="{s[0].split(",")[1]}" r="2" fill="#2563eb"/>'
                       if len(s) == 1 else "") for s in segments if s)
    first = f"{xs[0]:%m-%d %H:%M}" if xs else ""
    last = f"{xs[-1]:%m-%d %H:%M}" if xs else ""
    label = f"{top * scale:.3g}{unit}" if vals else "no data"
    return (f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
            f'<text x="{pad_l}" y="12" font-size="11" font-weight="bold">{escape(title)}</text>'
            f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{pad_l + w}" y2="{pad_t + h}" stroke="#999"/>'
            f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + h}" stroke="#999"/>'
            f'<text x="{pad_l - 4}" y="{pad_t + 8}" font-size="9" text-anchor="end">{escape(label)}</text>'
            f'<text x="{pad_l - 4}" y="{pad_t + h}" font-size="9" text-anchor="end">0</text>'
            f'<text x="{pad_l}" y="{height - 4}" font-size="9">{first}</text>'
            f'<text x="{pad_l + w}" y="{height - 4}" font-size="9" text-anchor="end">{last}</text>'
            f"{lines}</svg>")
