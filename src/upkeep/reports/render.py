"""Render a digest (``build.build_digest``) as markdown or as one self-contained HTML page.

(About 500 lines on purpose: the markdown and the HTML render the same sections in the same order,
side by side, so a section added to one is seen missing from the other.)

Charts are small inline SVG documents drawn here (no JavaScript, no CDN, nothing fetched), so the HTML
works in a mail client and offline. :func:`capacity_chart_svg` is public for the web UI: one metric's
samples, its fitted trend extended into the future (dashed), the threshold and the projected crossing.
Every time carries its zone (the digest's ``timezone``: ``Settings.timezone``, UTC by default) and,
where it helps (what failed, last verification, last ping, last drill), how long before the report.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from typing import Any

from upkeep.clock import format_when

ADJECTIVE = {"day": "daily", "week": "weekly", "month": "monthly"}
COLORS = {
    "ok": "#2e7d32",
    "warning": "#ef6c00",
    "critical": "#c62828",
    "failed": "#6a1b9a",
    "line": "#1565c0",
    "trend": "#1565c0",
    "threshold": "#c62828",
    "grid": "#e0e0e0",
    "text": "#424242",
}


# --- formatting -----------------------------------------------------------------------------------------


def human_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"


def fmt_value(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return human_bytes(value)
    if unit == "%":
        return f"{value:.1f}%"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def _ts(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


# --- SVG charts ------------------------------------------------------------------------------------------


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>" + "".join(body) + "</svg>"
    )


def runs_chart_svg(per_day: list[dict[str, Any]], width: int = 480, height: int = 160) -> str:
    """Stacked bars per day: ok, warning, critical outcomes and failed runs."""
    left, right, top, bottom = 32, 8, 10, 22
    keys = ("ok", "warning", "critical", "failed")
    peak = max([sum(d.get(k, 0) for k in keys) for d in per_day] + [1])
    n = max(len(per_day), 1)
    slot = (width - left - right) / n
    bar = max(2.0, slot * 0.7)
    plot_h = height - top - bottom
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="{COLORS["grid"]}"/>',
        f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end" fill="{COLORS["text"]}">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end" fill="{COLORS["text"]}">0</text>',
    ]
    for i, d in enumerate(per_day):
        x = left + i * slot + (slot - bar) / 2
        y = top + plot_h
        for k in keys:
            count = d.get(k, 0)
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            body.append(
                f'<rect class="bar-{k}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{COLORS[k]}"><title>{escape(d["day"])}: {count} {k}</title></rect>'
            )
        if n <= 10 or i % max(1, n // 8) == 0:
            body.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - 6}" font-size="9" text-anchor="middle" '
                f'fill="{COLORS["text"]}">{escape(d["day"][5:])}</text>'
            )
    return _svg(width, height, "runs per day by outcome", body)


def line_chart_svg(
    points: list[tuple[Any, float]], label: str, unit: str = "", width: int = 480, height: int = 140
) -> str:
    """A simple time series (e.g. backup sizes)."""
    return capacity_chart_svg(points, {"metric": label, "unit": unit}, width=width, height=height)


def capacity_chart_svg(
    samples: list[tuple[Any, float]] | list[list[Any]],
    projection: dict[str, Any] | None,
    width: int = 480,
    height: int = 180,
) -> str:
    """One metric as an SVG chart: samples (line and dots), the fitted trend projected forward (dashed),
    the threshold (red line) and the crossing date (marker).

    ``samples``: ``[(datetime or ISO string, value), ...]``. ``projection``: a ``capacity.plan`` metric
    result (``metric``, ``unit``, ``threshold``, ``crossing_date``, ``fit: {t0, intercept, slope_per_day}``,
    ``status``, ``message``) or None for the samples only.
    """
    projection = projection or {}
    unit = projection.get("unit", "")
    label = str(projection.get("metric") or "metric")
    points = sorted(((_ts(t), float(v)) for t, v in samples), key=lambda p: p[0])
    left, right, top, bottom = 58, 10, 22, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    body: list[str] = [
        f'<text x="{left}" y="14" font-size="11" font-weight="bold" fill="{COLORS["text"]}">{escape(label)}</text>'
    ]
    if not points:
        body.append(
            f'<text x="{width / 2}" y="{height / 2}" font-size="11" text-anchor="middle" '
            f'fill="{COLORS["text"]}">no samples yet</text>'
        )
        return _svg(width, height, f"{label}: no samples", body)
    fit = projection.get("fit") or None
    threshold = projection.get("threshold")
    crossing = _ts(projection["crossing_date"]) if projection.get("crossing_date") else None
    x_min, x_max = points[0][0], points[-1][0]
    span = max(x_max - x_min, timedelta(hours=1))
    end = x_max + span * 0.5 if fit else x_max
    if crossing is not None:
        end = max(end, min(crossing + span * 0.1, x_max + max(span * 4, timedelta(days=30))))
    ys = [v for _, v in points]

    def fit_at(t: datetime) -> float:
        days = (t - _ts(fit["t0"])).total_seconds() / 86400
        return fit["intercept"] + fit["slope_per_day"] * days

    if fit:
        ys += [fit_at(x_min), fit_at(end)]
    if threshold is not None:
        ys.append(float(threshold))
    y_lo, y_hi = min(ys + [0.0]), max(ys)
    if y_hi == y_lo:
        y_hi = y_lo + 1
    y_hi += (y_hi - y_lo) * 0.05
    total = (end - x_min).total_seconds() or 1.0

    def sx(t: datetime) -> float:
        return left + plot_w * (t - x_min).total_seconds() / total

    def sy(v: float) -> float:
        return top + plot_h * (1 - (v - y_lo) / (y_hi - y_lo))

    for frac in (0.0, 0.5, 1.0):
        v = y_lo + (y_hi - y_lo) * frac
        body.append(
            f'<line x1="{left}" y1="{sy(v):.1f}" x2="{width - right}" y2="{sy(v):.1f}" stroke="{COLORS["grid"]}"/>'
        )
        body.append(
            f'<text x="{left - 4}" y="{sy(v) + 3:.1f}" font-size="9" text-anchor="end" '
            f'fill="{COLORS["text"]}">{escape(fmt_value(v, unit))}</text>'
        )
    body.append(f'<text x="{left}" y="{height - 6}" font-size="9" fill="{COLORS["text"]}">{x_min:%Y-%m-%d}</text>')
    body.append(
        f'<text x="{width - right}" y="{height - 6}" font-size="9" text-anchor="end" '
        f'fill="{COLORS["text"]}">{end:%Y-%m-%d}</text>'
    )
    if threshold is not None:
        y = sy(float(threshold))
        body.append(
            f'<line class="threshold" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            f'stroke="{COLORS["threshold"]}" stroke-width="1.5"/>'
        )
        body.append(
            f'<text x="{width - right - 2}" y="{y - 3:.1f}" font-size="9" text-anchor="end" '
            f'fill="{COLORS["threshold"]}">threshold {escape(fmt_value(float(threshold), unit))}</text>'
        )
    if fit:
        body.append(
            f'<line class="trend" x1="{sx(x_min):.1f}" y1="{sy(fit_at(x_min)):.1f}" x2="{sx(end):.1f}" '
            f'y2="{sy(fit_at(end)):.1f}" stroke="{COLORS["trend"]}" stroke-dasharray="5,4" '
            'stroke-width="1.2" opacity="0.8"/>'
        )
    path = " ".join(f"{sx(t):.1f},{sy(v):.1f}" for t, v in points)
    body.append(f'<polyline class="samples" points="{path}" fill="none" stroke="{COLORS["line"]}" stroke-width="1.8"/>')
    if len(points) <= 60:
        body += [f'<circle cx="{sx(t):.1f}" cy="{sy(v):.1f}" r="2.2" fill="{COLORS["line"]}"/>' for t, v in points]
    if crossing is not None and threshold is not None and crossing <= end:
        cx, cy = sx(crossing), sy(float(threshold))
        body.append(
            f'<circle class="crossing" cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="none" '
            f'stroke="{COLORS["threshold"]}" stroke-width="2"/>'
        )
        body.append(
            f'<text x="{min(cx, width - right - 60):.1f}" y="{cy + 14:.1f}" font-size="9" '
            f'fill="{COLORS["threshold"]}">{crossing:%Y-%m-%d}</text>'
        )
    text = projection.get("message") or f"{len(points)} samples"
    return _svg(width, height, f"{label}: {text}", body)


# --- markdown ---------------------------------------------------------------------------------------------


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _at(d: dict[str, Any], value: str | None, *, ago: bool = False, missing: str = "-") -> str:
    """A time of report ``d`` in its zone, labelled (``2026-12-05 03:00 CET``), and with ``ago``
    how long before the report it was (``2 h ago``)."""
    if not value:
        return missing
    now = datetime.fromisoformat(d["generated_at"]) if ago and d.get("generated_at") else None
    return format_when(value, now, d.get("timezone") or "UTC", seconds=False)


def _drill_row(d: dict[str, Any], report: dict[str, Any]) -> str:
    last = d["latest"]
    rto = _dur(last.get("rto_s")) if last.get("ok") else "failed"
    rpo = f"{last['rpo_s'] / 3600:.1f}h" if last.get("ok") else "-"
    met = "met" if last.get("met") else "MISSED"
    if last.get("fell_back_from"):
        met += " (fell back)"
    return f"| {d['source']} | {_at(report, last['at'], ago=True)} | {rto} | {rpo} | {met} | {len(d['points'])} |"


def render_markdown(d: dict[str, Any]) -> str:
    runs, health, backups, capacity = d["runs"], d["health"], d["backups"], d["capacity"]
    lines = [
        f"# upkeep {ADJECTIVE.get(d['period'], d['period'])} report: {d['status'].upper()}",
        "",
        f"{_at(d, d['since'])} to {_at(d, d['until'])}",
        "",
        "## What ran",
        "",
    ]
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(runs["by_status"].items())) or "no runs"
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(runs["by_outcome"].items()))
    lines.append(f"{runs['total']} runs: {statuses}" + (f" (outcomes: {outcomes})" if outcomes else ""))
    if runs["tasks"]:
        lines += ["", "| task | runs | failed | critical | avg |", "|---|---:|---:|---:|---:|"]
        lines += [
            f"| {t['task']} | {t['runs']} | {t['failed']} | {t['critical']} | {_dur(t['avg_seconds'])} |"
            for t in runs["tasks"][:30]
        ]
    lines += ["", "## What failed", ""]
    if runs["failed"]:
        for r in runs["failed"][:20]:
            when = _at(d, r["finished_at"], ago=True, missing="?")
            outcome = " / " + r["outcome"] if r.get("outcome") else ""
            lines.append(f"- {when} **{r['task'] or r['type']}** {r['status']}{outcome}")
    else:
        lines.append("Nothing failed.")
    lines += ["", "## Health", ""]
    q = health.get("queue_depth") or {}
    lines.append(
        f"Queue: {q.get('pending', 0)} pending, {q.get('submitted', 0)} submitted; "
        f"{len(health['failing_tasks'])} failing task(s), {len(health['overdue_tasks'])} overdue."
    )
    for t in health["failing_tasks"][:10]:
        streak = f", {t['not_ok_in_a_row']} runs not ok in a row" if t.get("not_ok_in_a_row") else ""
        lines.append(f"- failing: {t['name']} ({' '.join(filter(None, (t.get('status'), t.get('outcome'))))}{streak})")
    for t in health["overdue_tasks"][:10]:
        lines.append(f"- overdue: {t.get('name', t)}")
    if health["targets"]:
        lines += ["", "| target | kind | status | detail | note |", "|---|---|---|---|---|"]
        lines += [
            f"| {t['name']} | {t['kind']} | {t['status']} | {(t['detail'] or '').replace('|', '/')} | "
            f"{(t.get('note') or '').replace('|', '/')} |"
            for t in health["targets"][:40]
        ]
    lines += _heartbeats_markdown(d.get("heartbeats") or {}, d)
    lines += [
        "",
        "## Backups",
        "",
        f"{backups['created']} created, {backups['verified']} verified, {backups['broken']} broken in the period.",
    ]
    if backups["sources"]:
        lines += ["", "| source | latest | age | size | status | verified |", "|---|---|---:|---:|---|---|"]
        lines += [
            f"| {s['source']} | {_at(d, s['latest_at'])} | {s['age_hours']:.0f} h | "
            f"{human_bytes(s['size'])} | {s['status']} | {_at(d, s['verified_at'], ago=True, missing='never')} |"
            for s in backups["sources"]
        ]
    if backups.get("drills"):
        lines += ["", "| drill | last | RTO | RPO | objectives | drills in period |", "|---|---|---:|---:|---|---:|"]
        lines += [_drill_row(drill, d) for drill in backups["drills"]]
    lines += ["", "## Capacity", ""]
    if capacity["warnings"]:
        lines += [f"- **{w['metric']}** ({w['status']}): {w.get('message', '')}" for w in capacity["warnings"]]
    elif capacity["at"]:
        lines.append(f"No metric is near its threshold ({capacity['metrics']} metrics, plan of {capacity['at'][:10]}).")
    else:
        lines.append("No capacity plan yet (schedule capacity.sample and capacity.plan).")
    if capacity["too_few"]:
        lines.append(f"Too few samples to project: {', '.join(capacity['too_few'][:10])}.")
    return "\n".join(lines) + "\n"


def _heartbeats_markdown(hb: dict[str, Any], d: dict[str, Any]) -> list[str]:
    monitors = hb.get("monitors") or []
    if not monitors:
        return []
    lines = ["", "## Heartbeats", "", f"{len(monitors)} monitor(s), {len(hb.get('down') or [])} down."]
    lines += ["", "| monitor | status | last ping | successes | failures |", "|---|---|---|---:|---:|"]
    lines += [
        f"| {m['name']} | {m['status']} | {_at(d, m['last_ping_at'], ago=True, missing='never')} | "
        f"{m['successes']} | {m['failures']} |"
        for m in monitors[:40]
    ]
    lines += [f"- down: {m['name']}: {m['reason']}" for m in monitors if m["status"] == "down"][:10]
    return lines


def _heartbeats_html(hb: dict[str, Any], d: dict[str, Any]) -> str:
    monitors = hb.get("monitors") or []
    if not monitors:
        return ""
    color = {"down": "critical", "late": "warning"}
    rows = [
        [
            escape(m["name"]),
            f'<span class="badge {color.get(m["status"], "ok")}">{escape(m["status"])}</span>',
            escape(_at(d, m["last_ping_at"], ago=True, missing="never")),
            str(m["successes"]),
            str(m["failures"]),
            escape(m["reason"] if m["status"] == "down" else ""),
        ]
        for m in monitors[:40]
    ]
    return f"<h2>Heartbeats</h2><p>{len(monitors)} monitor(s), {len(hb.get('down') or [])} down.</p>" + _table(
        ["monitor", "status", "last ping", "successes", "failures", "why down"], rows, {3, 4}
    )


# --- HTML --------------------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;color:#212121;margin:24px;max-width:1000px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e0e0e0}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #e0e0e0;padding:3px 8px;text-align:left}
th{background:#f5f5f5}.num{text-align:right}.badge{display:inline-block;padding:1px 8px;border-radius:9px;
color:#fff;font-size:12px}.ok{background:#2e7d32}.warning{background:#ef6c00}.critical{background:#c62828}
.failed{background:#6a1b9a}.neutral{background:#616161}.muted{color:#757575}.charts{display:flex;flex-wrap:wrap;gap:12px}
.chart{border:1px solid #eee;background:#fff}.legend span{margin-right:12px}
"""


def _badge(status: str | None, outcome: str | None = None) -> str:
    """A status or outcome badge; a completed run's colour is its outcome's (critical is not green)."""
    s = status or "ok"
    if s in ("failed", "timed_out"):
        cls = "failed"
    elif s in ("ok", "warning", "critical"):
        cls = s
    elif s == "completed":
        cls = outcome if outcome in ("warning", "critical") else "ok"
    else:  # cancelled, skipped, unknown: neither good nor bad
        cls = "neutral"
    return f'<span class="badge {cls}">{escape(s)}</span>'


def _backup_badge(status: str | None) -> str:
    cls = {"verified": "ok", "broken": "critical"}.get(status or "", "warning")
    return f'<span class="badge {cls}">{escape(status or "unknown")}</span>'


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(d: dict[str, Any]) -> str:
    runs, health, backups, capacity = d["runs"], d["health"], d["backups"], d["capacity"]
    e = escape
    name = e(ADJECTIVE.get(d["period"], d["period"]))
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>upkeep {name} report</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>upkeep {name} report {_badge(d['status'])}</h1>",
        f'<div class="muted">{e(_at(d, d["since"]))} to {e(_at(d, d["until"]))}'
        f" &middot; generated {e(_at(d, d['generated_at']))}</div>",
        "<h2>What ran</h2>",
    ]
    statuses = ", ".join(f"{e(k)} {v}" for k, v in sorted(runs["by_status"].items())) or "no runs"
    parts.append(f"<p>{runs['total']} runs: {statuses}</p>")
    parts.append(runs_chart_svg(runs["per_day"]))
    parts.append(
        '<div class="legend muted">'
        + "".join(
            f'<span><span class="badge {k}">&nbsp;</span> {k}</span>' for k in ("ok", "warning", "critical", "failed")
        )
        + "</div>"
    )
    if runs["tasks"]:
        parts.append(
            _table(
                ["task", "runs", "failed", "critical", "avg"],
                [
                    [e(t["task"]), str(t["runs"]), str(t["failed"]), str(t["critical"]), _dur(t["avg_seconds"])]
                    for t in runs["tasks"][:30]
                ],
                {1, 2, 3, 4},
            )
        )
    parts.append("<h2>What failed</h2>")
    if runs["failed"]:
        parts.append(
            _table(
                ["finished", "task", "status", "outcome"],
                [
                    [
                        e(_at(d, r["finished_at"], ago=True, missing="?")),
                        e(r["task"] or r["type"] or "?"),
                        _badge(r["status"], r.get("outcome")),
                        _badge(r["outcome"]) if r.get("outcome") else "",
                    ]
                    for r in runs["failed"][:30]
                ],
            )
        )
    else:
        parts.append("<p>Nothing failed.</p>")
    parts.append("<h2>Health</h2>")
    q = health.get("queue_depth") or {}
    parts.append(
        f"<p>Queue: {q.get('pending', 0)} pending, {q.get('submitted', 0)} submitted; "
        f"{len(health['failing_tasks'])} failing task(s), {len(health['overdue_tasks'])} overdue.</p>"
    )
    if health["failing_tasks"]:
        parts.append(
            _table(
                ["failing task", "last run", "runs not ok in a row"],
                [
                    [
                        e(t["name"]),
                        _badge(t.get("status"), t.get("outcome"))
                        + (f" {_badge(t['outcome'])}" if t.get("outcome") else ""),
                        str(t.get("not_ok_in_a_row") or "?"),
                    ]
                    for t in health["failing_tasks"][:20]
                ],
            )
        )
    if health["targets"]:
        parts.append(
            _table(
                ["target", "kind", "status", "detail", "note"],
                [
                    [
                        e(str(t["name"])),
                        e(str(t["kind"])),
                        _badge(t["status"]),
                        e(t["detail"] or ""),
                        e(t.get("note") or ""),
                    ]
                    for t in health["targets"][:40]
                ],
            )
        )
    parts.append(_heartbeats_html(d.get("heartbeats") or {}, d))
    parts.append("<h2>Backups</h2>")
    parts.append(
        f"<p>{backups['created']} created, {backups['verified']} verified, {backups['broken']} broken "
        "in the period.</p>"
    )
    if backups["sources"]:
        parts.append(
            _table(
                ["source", "latest", "age", "size", "status", "verified"],
                [
                    [
                        e(s["source"]),
                        e(_at(d, s["latest_at"])),
                        f"{s['age_hours']:.0f} h",
                        human_bytes(s["size"]),
                        _backup_badge(s["status"]),
                        e(_at(d, s["verified_at"], ago=True, missing="never")),
                    ]
                    for s in backups["sources"]
                ],
                {2, 3},
            )
        )
        charts = [
            line_chart_svg([(t, v) for t, v in pts], f"backup size: {src}", "bytes", width=320, height=120)
            for src, pts in sorted(backups["sizes"].items())
            if len(pts) >= 2
        ]
        if charts:
            parts.append('<div class="charts">' + "".join(charts) + "</div>")
    if backups.get("drills"):
        rows = [[e(c.strip()) for c in _drill_row(drill, d).strip("|").split("|")] for drill in backups["drills"]]
        parts.append(_table(["drill", "last", "RTO", "RPO", "objectives", "drills in period"], rows, {2, 3, 5}))
        charts = [
            line_chart_svg(
                [(p[0], p[1]) for p in d["points"] if p[1] is not None], f"RTO: {d['source']}", "s", 320, 120
            )
            for d in backups["drills"]
            if len([p for p in d["points"] if p[1] is not None]) >= 2
        ]
        if charts:
            parts.append('<div class="charts">' + "".join(charts) + "</div>")
    parts.append("<h2>Capacity</h2>")
    if capacity["warnings"]:
        parts.append(
            "<ul>"
            + "".join(
                f"<li>{_badge(w['status'])} <b>{e(w['metric'])}</b>: {e(w.get('message', ''))}</li>"
                for w in capacity["warnings"]
            )
            + "</ul>"
        )
    elif capacity["at"]:
        parts.append(f"<p>No metric is near its threshold ({capacity['metrics']} metrics).</p>")
    else:
        parts.append("<p>No capacity plan yet (schedule capacity.sample and capacity.plan).</p>")
    if capacity["too_few"]:
        parts.append(f'<p class="muted">Too few samples to project: {e(", ".join(capacity["too_few"][:10]))}.</p>')
    if capacity["charts"]:
        parts.append(
            '<div class="charts">'
            + "".join(capacity_chart_svg(c["samples"], c["projection"]) for c in capacity["charts"])
            + "</div>"
        )
    parts.append("</body></html>")
    return "".join(parts)
