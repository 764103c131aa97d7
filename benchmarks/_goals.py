"""The goals the benchmarks check, gathered as each is measured and printed together at the end of
``make bench``, so one run says which hold and which don't (one line each, with its figure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    what: str
    measured: str
    goal: str
    met: bool


RESULTS: list[Goal] = []


def check(what: str, measured: str, goal: str, met: bool) -> str:
    """Record a goal's figure and say whether it holds: "met" or "NOT met"."""
    RESULTS.append(Goal(what, measured, goal, met))
    return "met" if met else "NOT met"


def summary() -> str:
    if not RESULTS:
        return "no goal was measured"
    width = max(len(g.what) for g in RESULTS)
    lines = [f"{'':2}{'what':{width}}  {'measured':>24}  {'goal':16} verdict"]
    lines += [f"  {g.what:{width}}  {g.measured:>24}  {g.goal:16} {'met' if g.met else 'NOT met'}" for g in RESULTS]
    met = sum(g.met for g in RESULTS)
    lines.append(f"{met} of {len(RESULTS)} goals met")
    return "\n".join(lines)
