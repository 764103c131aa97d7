"""Inline SVG charts rendered on the server (no JavaScript library, nothing from a CDN).

Colours come from CSS classes (``s-<kind>``) so light and dark themes both apply. A failed run and
a run that completed with outcome critical are different things (the handler broke vs. it found
something broken) and get different colours. Charts whose parts link to runs are SVG groups of
links, never ``role="img"``: an image may not contain focusable children.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from html import escape
from typing import Any

from markupsafe import Markup

WIDTH, HEIGHT = 600, 170
LEFT, RIGHT, TOP, BOTTOM = 60, 8, 10, 30  # room for the value axis and the time axis labels

# the kinds a run falls into on a chart, in stacking and legend order
KINDS = ("ok", "warning", "critical", "failed", "cancelled")
KIND_LABEL = {
    "ok": "ok",
    "warning": "warning",
    "critical": "critical (found a problem)",
    "failed": "failed (handler error or timeout)",
    "cancelled": "cancelled or skipped",
}


def outcome_class(status: str | None, outcome: str | None) -> str:
    if status == "completed":
        return outcome or "ok"
    return status or "pending"


def chart_kind(status: str | None, outcome: str | None) -> str:
    """The chart category of a run: its outcome when it completed, else what happened to it."""
    if status == "completed":
        return outcome if outcome in ("warning", "critical") else "ok"
    if status in ("failed", "timed_out"):
        return "failed"
    if status in ("cancelled", "skipped"):
        return "cancelled"
    return "running"


def fmt_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def legend(kinds: tuple[str, ...] = KINDS) -> Markup:
    items = "".join(
        f'<li><span class="swatch s-{k}" aria-hidden="true"></span>{escape(KIND_LABEL[k])}</li>' for k in kinds
    )
    return Markup(f'<ul class="legend">{items}</ul>')


def _axis(ticks: list[tuple[float, str]], *, y: float) -> list[str]:
    parts = [f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" class="base"/>']
    for x, label in ticks:
        anchor = "start" if x <= LEFT + 1 else ("end" if x >= WIDTH - RIGHT - 1 else "middle")
        parts.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" class="base"/>')
        parts.append(f'<text x="{x:.1f}" y="{y + 16}" text-anchor="{anchor}" class="axis">{escape(label)}</text>')
    return parts


def duration_chart(history: list[dict[str, Any]], when: Callable[[str], str]) -> Markup:
    """Each run's duration as a bar at the time it was created (a labelled time axis), coloured by
    what it came to; each bar links to its run. ``when`` formats a time for the axis, in the
    viewer's zone."""
    if not history:
        return Markup('<p class="muted">No runs yet.</p>')
    times = [datetime.fromisoformat(h["created_at"]).timestamp() for h in history]
    first, last = min(times), max(times)
    span = (last - first) or 1.0
    longest = max((h["duration_seconds"] or 0.0) for h in history) or 1.0
    inner_w, base = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM
    usable = base - TOP
    bar = max(min(inner_w / max(len(history), 1) * 0.6, 14), 3)
    label = f"Durations of the last {len(history)} runs over time, coloured by outcome; each bar opens its run"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="group" aria-label="{escape(label)}">',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end" class="axis">{escape(fmt_seconds(longest))}</text>',
        f'<text x="{LEFT - 4}" y="{base}" text-anchor="end" class="axis">0</text>',
    ]
    middle = history[len(history) // 2]["created_at"]
    ticks = [(LEFT, when(history[0]["created_at"])), (WIDTH - RIGHT, when(history[-1]["created_at"]))]
    if len(history) > 2:
        ticks.insert(1, (LEFT + bar / 2 + (times[len(history) // 2] - first) / span * (inner_w - bar), when(middle)))
    parts += _axis(ticks, y=base)
    for run, t in zip(history, times, strict=True):
        seconds = run["duration_seconds"]
        height = max(usable * (seconds or 0.0) / longest, 3)
        x = LEFT + (t - first) / span * (inner_w - bar) if len(history) > 1 else LEFT + (inner_w - bar) / 2
        kind = chart_kind(run["status"], run["outcome"])
        text = f"run {run['id']} {when(run['created_at'])}: {run['status']}"
        if run["outcome"]:
            text += f" ({run['outcome']})"
        if seconds is not None:
            text += f", {fmt_seconds(seconds)}"
        parts.append(
            f'<a href="/runs/{int(run["id"])}" aria-label="{escape(text)}"><rect x="{x:.1f}" y="{base - height:.1f}" '
            f'width="{bar:.1f}" height="{height:.1f}" class="bar s-{kind}"><title>{escape(text)}</title></rect></a>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def runs_per_day_chart(days: list[dict[str, Any]]) -> Markup:
    """Runs per day stacked by what they came to, oldest day left. ``days`` holds ``{"day":
    "YYYY-MM-DD", "ok": n, "warning": n, ...}`` for every day of the range, empty days included."""
    if not days:
        return Markup('<p class="muted">No runs yet.</p>')
    inner_w, base = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM
    usable = base - TOP
    most = max(sum(d.get(k, 0) for k in KINDS) for d in days) or 1
    slot = inner_w / len(days)
    bar = max(slot * 0.75, 2)
    total = sum(sum(d.get(k, 0) for k in KINDS) for d in days)
    label = f"Runs per day over the last {len(days)} days by outcome: {total} runs, at most {most} a day"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end" class="axis">{most}</text>',
        f'<text x="{LEFT - 4}" y="{base}" text-anchor="end" class="axis">0</text>',
    ]
    step = 7 if len(days) > 14 else 1
    ticks = [(LEFT + i * slot + slot / 2, days[i]["day"][5:]) for i in range(len(days) - 1, -1, -step)]
    parts += _axis(ticks, y=base)
    for i, d in enumerate(days):
        x, y = LEFT + i * slot + (slot - bar) / 2, float(base)
        for kind in KINDS:
            count = d.get(kind, 0)
            if not count:
                continue
            height = usable * count / most
            y -= height
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" class="bar s-{kind}"/>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def outcome_strip(runs: list[dict[str, Any]], slots: int = 20) -> Markup:
    """The last ``slots`` runs of a task as small squares, oldest left; the text says it too."""
    if not runs:
        return Markup('<span class="muted">—</span>')
    cells = []
    counts: dict[str, int] = {}
    for i, run in enumerate(runs[-slots:]):
        kind = chart_kind(run["status"], run["outcome"])
        counts[kind] = counts.get(kind, 0) + 1
        cells.append(f'<rect x="{i * 7}" y="0" width="6" height="14" rx="1" class="bar s-{kind}"/>')
    said = ", ".join(f"{n} {k}" for k, n in counts.items())
    label = f"last {len(cells)} runs: {said}"
    return Markup(
        f'<svg class="strip" width="{slots * 7}" height="14" viewBox="0 0 {slots * 7} 14" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>{"".join(cells)}</svg>'
    )


def sparkline(values: list[float | None], label: str) -> Markup:
    """A small line of values, oldest left, for a trend beside a figure (backup sizes)."""
    points = [v for v in values if v is not None]
    if len(points) < 2:
        return Markup("")
    low, high = min(points), max(points)
    spread = (high - low) or 1.0
    step = 100 / (len(points) - 1)
    coords = " ".join(f"{i * step:.1f},{22 - (v - low) / spread * 20:.1f}" for i, v in enumerate(points))
    return Markup(
        f'<svg class="spark" viewBox="0 0 100 24" preserveAspectRatio="none" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>"
        f'<polyline points="{coords}" fill="none" vector-effect="non-scaling-stroke"/></svg>'
    )
