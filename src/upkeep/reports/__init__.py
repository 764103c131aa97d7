"""Maintenance digests: ``build.build_digest`` collects a period's data, ``render`` turns it into
markdown or self-contained HTML with small inline SVG charts (no JavaScript, no CDN)."""

from upkeep.reports.build import build_digest
from upkeep.reports.render import capacity_chart_svg, render_html, render_markdown

__all__ = ["build_digest", "capacity_chart_svg", "render_html", "render_markdown"]
