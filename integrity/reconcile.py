"""Reconcile: prove that every raw offset ended in exactly one known place.

For each partition of the raw topic and an offset range, three sources are compared:

- the raw topic itself (which offsets hold a message: a transactional producer's control
  records and aborted messages occupy offsets too, and are not messages);
- the store's accounting (docs/decisions/0001-accounting-contract.md): ``audit_events``
  (stored), ``audit_dead_letters`` (dead-lettered, with a reason), ``audit_repeats``
  (recorded as a repeat of an event already kept);
- the pipeline's progress: offsets at or past the normalizer's committed offset, or while a
  sink still has unread input, are *in flight*, not lost.

Every message offset is then exactly one of: stored, dead-lettered, repeat, in flight,
**missing** (in no place, and the pipeline has moved past it) or **multiple** (in more than
one place). The accounting step (``account``) is a pure function; the readers around it do
the I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Place(StrEnum):
    STORED = "stored"
    DEAD_LETTER = "dead_letter"
    REPEAT = "repeat"


@dataclass(frozen=True)
class OffsetRange:
    """Offsets ``lo`` (inclusive) to ``hi`` (exclusive) of one raw partition."""

    partition: int
    lo: int
    hi: int

    def __post_init__(self) -> None:
        if self.lo < 0 or self.hi < self.lo:
            raise ValueError(
                f"bad offset range [{self.lo}, {self.hi}) of partition {self.partition}"
            )


@dataclass(frozen=True)
class Progress:
    """How far the pipeline has got, for telling *in flight* from *missing*.

    ``normalized_to``: the normalizer's committed offset on this raw partition (offsets at
    or past it are not processed yet). ``settled``: True when every sink has read its input
    topics to the end, so what the normalizer committed is in the store by now.
    """

    normalized_to: int
    settled: bool


@dataclass(frozen=True)
class PartitionReport:
    range: OffsetRange
    messages: int
    """Offsets in the range that hold a message (control records excluded)."""
    stored: int
    dead_lettered: int
    repeats: int
    in_flight: int
    missing: tuple[int, ...]
    multiple: tuple[tuple[int, tuple[Place, ...]], ...]
    """Offsets found in more than one place (or twice in one), with where."""
    strays: tuple[int, ...] = ()
    """Offsets the store accounts for that hold no message in the raw topic (for example a
    record whose raw message has expired from the topic while the range still names it)."""
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    retention_deleted: tuple[int, ...] = ()
    """Offsets in no place whose event is past the table's retention: stored, then deleted
    by the TTL as configured (not a gap)."""
    expired: tuple[int, int] | None = None
    """Offsets [lo, hi) that the raw topic's retention deleted before the normalizer read
    them: accepted by the broker, never processed (the pipeline was down longer than the
    raw topic keeps messages)."""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.multiple and self.expired is None


def expired_unprocessed(low: int, committed: int | None) -> tuple[int, int] | None:
    """Offsets below the raw partition's low watermark that the normalizer never passed."""
    start = 0 if committed is None else committed
    return (start, low) if start < low else None


def account(
    rng: OffsetRange,
    messages: Iterable[int],
    places: dict[Place, Counter[int]],
    progress: Progress,
    dead_letter_reasons: dict[str, int] | None = None,
) -> PartitionReport:
    """The accounting step: where did each message offset of ``rng`` end?

    ``places[p][offset]`` counts the records of place ``p`` at that raw offset (a record the
    store holds twice, e.g. a duplicate row not yet merged, counts 2 and is reported).
    """
    present = sorted({o for o in messages if rng.lo <= o < rng.hi})
    counts = {p: 0 for p in Place}
    missing: list[int] = []
    multiple: list[tuple[int, tuple[Place, ...]]] = []
    in_flight = 0
    for offset in present:
        where: list[Place] = []
        for place in Place:
            where.extend([place] * places.get(place, Counter()).get(offset, 0))
        if len(where) == 1:
            counts[where[0]] += 1
        elif len(where) > 1:
            multiple.append((offset, tuple(where)))
        elif offset >= progress.normalized_to or not progress.settled:
            in_flight += 1
        else:
            missing.append(offset)
    present_set = set(present)
    strays = sorted(
        {
            o
            for counter in places.values()
            for o in counter
            if rng.lo <= o < rng.hi and o not in present_set
        }
    )
    return PartitionReport(
        range=rng,
        messages=len(present),
        stored=counts[Place.STORED],
        dead_lettered=counts[Place.DEAD_LETTER],
        repeats=counts[Place.REPEAT],
        in_flight=in_flight,
        missing=tuple(missing),
        multiple=tuple(multiple),
        strays=tuple(strays),
        dead_letter_reasons=dict(dead_letter_reasons or {}),
    )


def runs(offsets: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted offsets as inclusive runs: [3, 4, 5, 9] -> [(3, 5), (9, 9)]."""
    out: list[tuple[int, int]] = []
    for o in sorted(offsets):
        if out and o == out[-1][1] + 1:
            out[-1] = (out[-1][0], o)
        else:
            out.append((o, o))
    return out


def describe_runs(offsets: Sequence[int], limit: int = 20) -> str:
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in runs(offsets)]
    more = len(parts) - limit
    return ", ".join(parts[:limit]) + (f" (+{more} more runs)" if more > 0 else "")


Reader = Callable[[OffsetRange], Iterable[int]]


@dataclass(frozen=True)
class Groups:
    """The consumer groups whose progress tells *in flight* from *missing*."""

    normalizer: str
    """Reads the raw topic."""
    sinks: tuple[tuple[str, str], ...]
    """(group, topic) of every sink loop that stores what the normalizer wrote."""
