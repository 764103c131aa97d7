"""Inline SVG charts rendered on the server (no JavaScript library)."""

from __future__ import annotations

from html import escape
from typing import Any

from markupsafe import Markup

WIDTH, HEIGHT, PAD = 600, 140, 24


def outcome_class(status: str | None, outcome: str | None) -> str:
    if status == "completed":
        return outcome or "ok"
    return status or "pending"


def _fmt(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def duration_chart(history: list[dict[str, Any]]) -> Markup:
    """Bars of recent run durations, oldest left, coloured by outcome; each bar links to its run."""
    if not history:
        return Markup('<p class="muted">No runs yet.</p>')
    longest = max((h["duration_seconds"] or 0.0) for h in history) or 1.0
    slot = (WIDTH - PAD) / max(len(history), 1)
    bar = max(slot * 0.7, 2)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Durations and outcomes of the last {len(history)} runs" preserveAspectRatio="none">',
        f'<text x="0" y="12" class="axis">{escape(_fmt(longest))}</text>',
        f'<line x1="{PAD}" y1="{HEIGHT - 14}" x2="{WIDTH}" y2="{HEIGHT - 14}" class="base"/>',
    ]
    usable = HEIGHT - 34
    for i, run in enumerate(history):
        seconds = run["duration_seconds"]
        height = max(usable * (seconds or 0.0) / longest, 3)
        x = PAD + i * slot + (slot - bar) / 2
        y = HEIGHT - 14 - height
        css = outcome_class(run["status"], run["outcome"])
        label = f"run {run['id']}: {run['status']}"
        if run["outcome"]:
            label += f" ({run['outcome']})"
        if seconds is not None:
            label += f", {_fmt(seconds)}"
        parts.append(
            f'<a href="/runs/{int(run["id"])}"><rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
            f'height="{height:.1f}" class="bar s-{escape(css)}"><title>{escape(label)}</title></rect></a>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
