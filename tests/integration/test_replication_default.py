"""Without AUDITSTREAM_REPLICATION_FACTOR, topics get the broker's default.replication.factor."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from auditstream.config import Topics
from auditstream.infra import topics

pytestmark = pytest.mark.integration


def test_our_topics_get_the_brokers_default(kafka_bootstrap: str) -> None:
    run = f"rf{uuid.uuid4().hex[:8]}"
    layout = Topics(partitions=2).with_prefix(f"{run}.")
    assert layout.replication_factor is None
    try:
        created = topics.ensure_topics(kafka_bootstrap, layout)
        assert layout.normalized in created
        default = topics.default_replication_factor(kafka_bootstrap)
        metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
        for name in created:
            partitions = metadata.topics[name].partitions.values()
            assert {len(p.replicas) for p in partitions} == {default}
    finally:
        topics.delete_topics_with(kafka_bootstrap, run)
