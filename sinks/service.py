"""The sink process: owns the ClickHouse store, runs the sink loop, serves SQL if embedded."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from confluent_kafka import Consumer, Producer

from auditstream.config import Settings
from auditstream.sinks import query, store
from auditstream.sinks.consumer import (
    SinkConfig,
    SinkLoop,
    consumer_config,
    producer_config,
)
from auditstream.sinks.query_server import QueryServer
from auditstream.sinks.writer import EventWriter

log = logging.getLogger(__name__)


def build(settings: Settings) -> tuple[SinkLoop, QueryServer | None]:
    ch = settings.clickhouse
    client = store.connect(ch)
    loop = SinkLoop(
        consumer=Consumer(
            consumer_config(settings.kafka.bootstrap_servers, f"{settings.app_id}-sink")
        ),
        writer=EventWriter(client, ch.database),
        dead_letters=Producer(producer_config(settings.kafka.bootstrap_servers)),
        config=SinkConfig(
            topic=settings.topics.normalized,
            dead_letter_topic=settings.topics.dead_letter,
            max_rows=ch.batch_max_rows,
            max_seconds=ch.batch_max_seconds,
        ),
    )
    owner = query.owner_file(ch)
    server = QueryServer(client, ch.database, owner) if owner is not None else None
    return loop, server


def run(settings: Settings) -> None:
    """Run in the foreground until SIGINT / SIGTERM; buffered rows are written first."""
    loop, server = build(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        loop.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if server is not None:
        server.start()
    log.info("sink running: %s -> %s", settings.topics.normalized, settings.clickhouse.database)
    try:
        loop.run()
    finally:
        if server is not None:
            server.stop()
