"""upkeep: scheduled maintenance for self-hosted systems."""

__version__ = "0.1.0"
