"""The shared findings helpers: a run's outcome is its findings' worst severity, info counting as ok."""

from __future__ import annotations

from upkeep.handlers.findings import finding, outcome_of, severity_counts, worst_of


def test_the_outcome_is_the_worst_severity_and_info_or_nothing_is_ok():
    assert outcome_of([]) == "ok"
    assert outcome_of([finding("info", "tls", "a", "fine")]) == "ok"
    found = [
        finding("warning", "tls", "a", "soon"),
        finding("critical", "tls", "b", "expired"),
        finding("info", "x", "c", ""),
    ]
    assert outcome_of(found) == "critical"
    assert outcome_of(found[:1]) == "warning"
    assert severity_counts(found) == {"critical": 1, "warning": 1, "info": 1}


def test_worst_of_outcomes_ranks_unknown_words_and_none_as_ok():
    assert worst_of(["ok", "warning", None, "too_few_samples"]) == "warning"
    assert worst_of(["critical", "warning"]) == "critical"
    assert worst_of([]) == "ok"
