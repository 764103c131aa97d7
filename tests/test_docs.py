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
