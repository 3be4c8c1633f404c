"""Errors of the lake stages (bronze, silver, gold and the Delta adapters)."""

from __future__ import annotations

from altaviz.errors import AltavizError


class LakeError(AltavizError):
    """A lake table or raw input is missing, unreadable or inconsistent."""


class SchemaMismatchError(LakeError):
    """Data about to be written does not have the schema of the existing table (or of the contract)."""
