"""Progress reporting for long steps; stages take a `Progress` and never import Rich themselves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Step(Protocol):
    def advance(self, n: int = 1) -> None: ...


class Progress(Protocol):
    def step(self, description: str, total: int | None = None) -> contextmanager[Step]: ...  # type: ignore[valid-type]


class _NullStep:
    def advance(self, n: int = 1) -> None:
        return None


class NullProgress:
    """Reports nothing (library use, tests)."""

    @contextmanager
    def step(self, description: str, total: int | None = None) -> Iterator[Step]:
        yield _NullStep()


class RichProgress:
    """A Rich progress bar per step, on stderr, transient-free so the user sees what ran."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    @contextmanager
    def step(self, description: str, total: int | None = None) -> Iterator[Step]:
        task = self._progress.add_task(description, total=total if total is not None else 1)
        progress = self._progress

        class _Step:
            def advance(self, n: int = 1) -> None:
                progress.advance(task, n)

        try:
            yield _Step()
        finally:
            progress.update(task, completed=total if total is not None else 1)
