"""Streaming commands (`broker`, `stream`), registered into the root CLI by `altaviz.cli`.

Heavy libraries (confluent-kafka, quixstreams) are imported inside the command bodies.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the streaming command groups to the root app."""
