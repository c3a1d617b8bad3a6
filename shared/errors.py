"""Tickwork's exception hierarchy."""

from __future__ import annotations

from dataclasses import dataclass


class TickworkError(Exception):
    """Root of every error Tickwork raises on purpose."""


@dataclass(frozen=True)
class FieldError:
    """One rejected input field: a dotted path such as ``schedule.cron.timezone``."""

    field: str
    message: str


class InvalidInputError(TickworkError):
    """Input that cannot be stored; names each field that was wrong and why."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))

    @classmethod
    def single(cls, field: str, message: str) -> InvalidInputError:
        return cls([FieldError(field, message)])


class DatabaseUnavailableError(TickworkError):
    """The database could not be reached."""
