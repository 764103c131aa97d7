"""Documentation generated from the code stays current with the code."""

from __future__ import annotations

from pathlib import Path

from upkeep.docs import handlers_reference
from upkeep.engine.registry import REGISTRY

DOCS = Path(__file__).parent.parent / "docs" / "handlers.md"


def test_handler_reference_is_generated_from_the_current_config_models():
    assert DOCS.read_text() == handlers_reference(), "run: python -m upkeep.docs > docs/handlers.md"


def test_every_handler_documents_itself_and_every_config_field():
    for spec in REGISTRY.all():
        assert spec.summary, f"{spec.name} has no description"
        for name, field in spec.config_model.model_fields.items():
            assert field.description, f"{spec.name}: config field {name} has no description"


def test_every_destructive_handler_is_marked_in_the_reference():
    text = handlers_reference()
    for spec in REGISTRY.all():
        if spec.destructive:
            section = text.split(f"## `{spec.name}`", 1)[1].split("\n## ", 1)[0]
            assert "destructive (has dry_run)" in section


def test_handler_summaries_are_whole_sentences_wherever_the_docstring_wraps():
    """The summary (UI, `handlers list`, the reference's index) is the description's first sentence."""
    for spec in REGISTRY.all():
        flowing = " ".join(spec.description.split())
        assert flowing.startswith(spec.summary), spec.name
        assert spec.summary.endswith((".", "!", "?")), f"{spec.name}: {spec.summary!r} is cut"
    restore = REGISTRY.get("backup.restore").summary
    assert restore.endswith("into the original or a new database.") and "dry_run" not in restore
    assert f"[`backup.restore`](#backuprestore): {restore}\n" in handlers_reference()


def test_first_sentence_ends_at_a_sentence_not_an_abbreviation():
    from upkeep.engine.registry import first_sentence

    assert first_sentence("Check things, e.g. disks and\n    ports. Then more.\n\nDetails.") == (
        "Check things, e.g. disks and ports."
    )
    assert first_sentence("No full stop at all") == "No full stop at all"
