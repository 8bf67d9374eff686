"""The sink process: owns the ClickHouse store, runs one sink loop per table, serves SQL.

Events and alerts are written by two loops (own consumer groups, own threads) sharing one
ClickHouse client, so a slow or failing alerts write never holds up events, and vice versa.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

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
from auditstream.sinks.rows import alert_to_row, to_row
from auditstream.sinks.tables import ALERTS, EVENTS, TableSpec
from auditstream.sinks.writer import BatchWriter

log = logging.getLogger(__name__)


def _loop(settings: Settings, client: Any, spec: TableSpec, topic: str, group: str) -> SinkLoop:
    ch = settings.clickhouse
    bootstrap = settings.kafka.bootstrap_servers
    security = settings.kafka.security.librdkafka()
    return SinkLoop(
        consumer=Consumer(consumer_config(bootstrap, group, security)),
        writer=BatchWriter(client, ch.database, spec),
        dead_letters=Producer(producer_config(bootstrap, security)),
        config=SinkConfig(
            topic=topic,
            dead_letter_topic=settings.topics.dead_letter,
            max_rows=ch.batch_max_rows,
            max_seconds=ch.batch_max_seconds,
        ),
        row=alert_to_row if spec is ALERTS else to_row,
    )


def build(settings: Settings) -> tuple[list[SinkLoop], QueryServer | None]:
    ch = settings.clickhouse
    client = store.connect(ch)
    app = settings.app_id
    loops = [
        _loop(settings, client, EVENTS, settings.topics.normalized, f"{app}-sink"),
        _loop(settings, client, ALERTS, settings.topics.alerts, f"{app}-sink-alerts"),
    ]
    owner = query.owner_file(ch)
    server = QueryServer(client, ch.database, owner) if owner is not None else None
    return loops, server


def run(settings: Settings) -> None:
    """Run in the foreground until SIGINT / SIGTERM; buffered rows are written first."""
    loops, server = build(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        for loop in loops:
            loop.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failures: list[BaseException] = []

    def guarded(loop: SinkLoop) -> None:
        try:
            loop.run()
        except BaseException as exc:
            log.exception("a sink loop failed; stopping the sink")
            failures.append(exc)
            stop(signal.SIGTERM, None)

    threads = [threading.Thread(target=guarded, args=(loop,)) for loop in loops]
    for thread in threads:
        thread.start()
    if server is not None:
        server.start()
    log.info("sink running -> %s", settings.clickhouse.database)
    try:
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(0.5)
    finally:
        if server is not None:
            server.stop()
    if failures:
        raise RuntimeError("a sink loop failed; see the log above") from failures[0]
