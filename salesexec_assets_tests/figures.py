"""The fault suite's figures: what was thrown at the pipeline and what it kept.

A module of its own so that ``conftest.py`` (which prints the line at the end of a pytest
session) and the scenarios (which count) share it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Figures:
    """Counts summed over scenarios; a promise that held adds its faults to ``survived``."""

    faults_injected: int = 0
    faults_survived: int = 0
    partitions_compared: int = 0
    rows_compared: int = 0
    rows_lost: int = 0
    duplicates_found: int = 0
    texts_scanned: int = 0
    secrets_leaked: int = 0

    def add(self, other: Figures) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    @property
    def empty(self) -> bool:
        return not any(getattr(self, item.name) for item in fields(self))

    def summary(self) -> str:
        """The one line the issue asks for (and the secret scan's two counts)."""
        return "fault suite: " + ", ".join(
            f"{item.name.replace('_', ' ')} {getattr(self, item.name)}" for item in fields(self)
        )
