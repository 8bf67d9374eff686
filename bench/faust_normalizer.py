"""The old Faust normalizer agent, kept only as the same-run baseline of
``bench/normalizer.py`` (``python -m auditstream.bench.faust_normalizer`` runs it alone).
The pipeline's normalizer is ``stream_jobs/normalizer.py`` (docs/decisions/0002).

As it was: raw topic -> normalized topic, or the dead-letter topic.

Every event ends in exactly one of three places: the normalized topic, the dead-letter
topic (with its reason and original bytes), or nowhere because it repeats an event seen
within the dedup window. Nothing an event contains can stop the agent: the step is pure
and total, and any unexpected error is caught per event and dead-lettered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from faust.types import EventT

from auditstream.config import Settings
from auditstream.stream_jobs import dead_letter
from auditstream.stream_jobs.normalize import Duplicate, Invalid, Normalized, Normalizer

log = logging.getLogger(__name__)


@dataclass
class NormalizerStats:
    normalized: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def register(app: faust.App, settings: Settings) -> NormalizerStats:
    """Add the normalizer agent to ``app``; returns live counters."""
    topics = settings.topics
    raw = app.topic(topics.raw, key_serializer="raw", value_serializer="raw")
    out = app.topic(topics.normalized, key_serializer="raw", value_serializer="raw")
    dlq = app.topic(topics.dead_letter, key_serializer="raw", value_serializer="raw")
    conf = settings.normalizer
    step = Normalizer.from_settings(settings)
    stats = NormalizerStats()

    async def send_dead_letter(event: EventT[bytes], reason: str, detail: str) -> None:
        msg = event.message
        source = dead_letter.Source(msg.topic, msg.partition, msg.offset)
        raw_headers: Any = msg.headers or []
        original = list(raw_headers.items()) if isinstance(raw_headers, dict) else raw_headers
        await dlq.send(
            key=msg.key,
            value=msg.value,
            headers=cast(Any, dead_letter.headers(reason, detail, source, original)),
        )
        stats.dead_lettered += 1
        stats.reasons[reason] = stats.reasons.get(reason, 0) + 1

    @app.agent(raw, name="normalize")
    async def normalize(stream: faust.StreamT[bytes]) -> None:
        # take_events acks a batch's events only after this loop body has handled them.
        batches = cast(faust.Stream[bytes], stream).take_events
        async for batch in batches(conf.batch_size, within=conf.batch_within_seconds):
            for event in batch:
                try:
                    outcome = step(event.message.value, event.message.headers)
                except Exception as exc:  # a bug must not stall consumption
                    log.exception("normalizer failed on an event; dead-lettering it")
                    await send_dead_letter(event, "internal_error", repr(exc))
                    continue
                if isinstance(outcome, Normalized):
                    await out.send(key=outcome.key, value=outcome.value)
                    stats.normalized += 1
                elif isinstance(outcome, Invalid):
                    await send_dead_letter(event, outcome.reason.value, outcome.detail)
                elif isinstance(outcome, Duplicate):
                    stats.duplicates += 1

    return stats


def main() -> None:
    from auditstream.stream_jobs.app import Worker, create_app

    settings = Settings.from_env()
    app = create_app(settings)
    register(app, settings)
    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
