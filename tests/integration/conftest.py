"""Per-test pipeline environments: own topics, own consumer groups, own ClickHouse store."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from auditstream.config import ClickHouseSettings, Settings
from auditstream.infra import topics
from auditstream.pipeline import Pipeline
from auditstream.sinks import query, store


def wait_for(
    predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.3, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what or predicate}: {last!r}"
    )


class Env:
    """Settings and helpers for one test's pipeline."""

    def __init__(self, bootstrap: str, home: Path, extra: Mapping[str, str] | None = None) -> None:
        run = uuid.uuid4().hex[:10]
        self.run = run
        self.vars = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AUDITSTREAM_HOME": str(home),
            "AUDITSTREAM_TOPIC_PREFIX": f"t{run}.",
            "AUDITSTREAM_APP_ID": f"test-{run}",
            "AUDITSTREAM_PARTITIONS": "3",
            "AUDITSTREAM_SINK_BATCH_SECONDS": "0.3",
            # metrics and health on free ports (each service records its own)
            "AUDITSTREAM_NORMALIZER_METRICS_PORT": "0",
            "AUDITSTREAM_WORKER_METRICS_PORT": "0",
            "AUDITSTREAM_SINK_METRICS_PORT": "0",
            **(extra or {}),
        }
        self.settings = Settings.from_env(self.vars)
        self.security = self.settings.kafka.security.librdkafka()
        topics.ensure_topics(bootstrap, self.settings.topics, security=self.security)

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka.bootstrap_servers

    def pipeline(self) -> Pipeline:
        import os

        return Pipeline(env={**os.environ, **self.vars}, settings=self.settings)

    def sql(self, statement: str) -> list[list[Any]]:
        return query.run(self.settings.clickhouse, statement).rows

    def scalar(self, statement: str) -> Any:
        return self.sql(statement)[0][0]

    def read_topic(self, topic: str, expected: int, timeout: float = 30.0) -> list[Message]:
        """Every message on ``topic`` from the start, once ``expected`` have arrived."""
        consumer = Consumer(
            {
                **self.settings.kafka.client_config(),
                "group.id": f"reader-{uuid.uuid4()}",
                "enable.auto.commit": False,
            }
        )
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and len(out) < expected:
                for msg in consumer.consume(100, timeout=0.5):
                    if msg.error() is None:
                        out.append(msg)
            # a little longer, to catch anything beyond what was expected
            for msg in consumer.consume(100, timeout=1.0):
                if msg.error() is None:
                    out.append(msg)
        finally:
            consumer.close()
        return out


@pytest.fixture
def env(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Env]:
    environment = Env(kafka_bootstrap, tmp_path / "home")
    yield environment
    # Its topics (and its Faust app's changelogs and repartition topics) go with it: a shared
    # cluster (KAFKA_BOOTSTRAP_SERVERS) is not left with a few hundred test topics.
    topics.delete_topics_with(kafka_bootstrap, environment.run, environment.security)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The one chDB engine this test process may open (chDB allows one per process, and one
    data directory at a time): a module's tests share it, each in a database of its own. Per
    module, not per session: while it is open, no later test in this process can open a
    store of its own (``EmbeddedServer already initialized with path ...``)."""
    path = Path(tmp_path_factory.mktemp("chdb"))
    client = store.connect(ClickHouseSettings(dsn=f"chdb://{path}", database="sessiontest"))
    yield client
    client.close()
