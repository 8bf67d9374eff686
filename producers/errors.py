"""Every error the producer SDK raises, each saying what to do next."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from auditstream.schemas import codec


class ProducerError(Exception):
    """Base class of the SDK's own errors."""


@dataclass(frozen=True)
class Problem:
    """One reason an event was refused: the field (dotted path) and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidEvent(ProducerError, ValueError):
    """The event was refused before anything was sent; ``problems`` names each field."""

    def __init__(self, problems: tuple[Problem, ...] | list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            "invalid audit event (nothing was sent): " + "; ".join(map(str, self.problems))
        )

    @classmethod
    def from_validation(cls, error: ValidationError) -> InvalidEvent:
        problems = []
        for item in error.errors(include_url=False):
            loc = ".".join(str(p) for p in item["loc"]) or "event"
            problems.append(Problem(loc, item["msg"].removeprefix("Value error, ")))
        return cls(problems)

    @classmethod
    def one(cls, field: str, message: str) -> InvalidEvent:
        return cls([Problem(field, message)])


class EventTooLarge(InvalidEvent, codec.EventTooLarge):
    """The serialized event is over ``max_event_bytes``: shrink metadata or changes."""


class BufferFull(ProducerError):
    """The in-memory buffer and the spool are full (the broker has been unreachable for long).

    With ``on_full="block"`` this is raised after ``block_timeout_seconds``; with
    ``on_full="raise"`` at once. The event was not accepted: retry later or fail the request.
    """


class SpoolError(ProducerError):
    """The local spool can't be used (permissions, disk, another process holds it)."""


class ProducerClosed(ProducerError):
    """``emit`` after ``close``: create a new producer."""
