"""Checks every page of the admin UI must pass in a real browser: screenshots at a desktop and a
phone width (kept in ``artifacts/ui/pages``), no horizontal overflow, and axe-core's WCAG 2.1 A/AA
rules with no violation."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.servers import in_ci

AXE = Path(__file__).parent / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"desktop": (1400, 900), "phone": (390, 844)}
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

RUN_AXE = """async (tags) => {
  const result = await axe.run(document, { runOnly: { type: "tag", values: tags } });
  return result.violations.map((v) => ({
    rule: v.id, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + ": " + n.failureSummary),
  }));
}"""

OVERFLOW = """() => {
  const root = document.documentElement;
  const wide = [...document.querySelectorAll("body *")]
    .filter((el) => el.getBoundingClientRect().right > root.clientWidth + 1)
    .slice(0, 5).map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + "." + el.className);
  return { scroll: root.scrollWidth, client: root.clientWidth, wide };
}"""


def axe_path() -> Path:
    if not AXE.exists():
        if in_ci():
            pytest.fail("axe-core is not installed (tests/support/setup_system.py runs npm ci in tests/web/a11y)")
        pytest.skip("axe-core is not installed (npm ci in tests/web/a11y)")
    return AXE


def check_page(page, url: str, name: str, shots: Path) -> list[str]:
    """Open ``url`` at each width: screenshot; what overflows horizontally and what axe finds."""
    shots.mkdir(parents=True, exist_ok=True)
    problems = []
    for width_name, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        response = page.goto(url)
        page.wait_for_load_state("load")
        if response.status != 200:
            problems.append(f"{width_name}: HTTP {response.status}")
        page.screenshot(path=str(shots / f"{name}-{width_name}.png"), full_page=True)
        box = page.evaluate(OVERFLOW)
        if box["scroll"] > box["client"]:
            problems.append(f"{width_name}: scrollWidth {box['scroll']} > clientWidth {box['client']}: {box['wide']}")
        page.add_script_tag(path=str(axe_path()))
        for v in page.evaluate(RUN_AXE, WCAG):
            problems.append(f"{width_name}: axe {v['rule']} ({v['help']}): {v['nodes']}")
    return [f"{name} ({url}) {p}" for p in problems]


def shown_and_expected_times(times, zone: str) -> tuple[list[str], list[str]]:
    """The texts of the ``<time>`` elements ``times`` (a locator) and what each should read in ``zone``:
    its instant there, with the zone's name for that date (CET or CEST), as the page formats it."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    pairs = times.evaluate_all("els => els.map((e) => [e.getAttribute('datetime'), e.innerText])")
    local = [datetime.fromisoformat(at).astimezone(ZoneInfo(zone)) for at, _ in pairs]
    return [shown for _, shown in pairs], [f"{t:%Y-%m-%d %H:%M:%S %Z}" for t in local]
