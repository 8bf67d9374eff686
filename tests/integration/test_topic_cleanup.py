"""A run's topics are found by a marker in their names and deleted; nothing else is."""

from __future__ import annotations

import uuid

import pytest

from auditstream.config import Topics
from auditstream.infra import topics

from .conftest import wait_for

pytestmark = pytest.mark.integration


def test_delete_topics_with_removes_the_runs_topics_only(kafka_bootstrap: str) -> None:
    mine, other = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    created = topics.ensure_topics(kafka_bootstrap, Topics(partitions=1).with_prefix(f"c{mine}."))
    kept = topics.ensure_topics(kafka_bootstrap, Topics(partitions=1).with_prefix(f"c{other}."))
    assert len(created) == 6  # raw, normalized, dead-letter, repeats, alerts, checkpoints
    assert sorted(created) == topics.topics_with(kafka_bootstrap, mine)

    assert sorted(topics.delete_topics_with(kafka_bootstrap, mine)) == sorted(created)
    wait_for(lambda: topics.topics_with(kafka_bootstrap, mine) == [], what="deleted topics gone")
    assert topics.topics_with(kafka_bootstrap, other) == sorted(kept)
    assert topics.delete_topics_with(kafka_bootstrap, mine) == []  # nothing left: no error
    topics.delete_topics_with(kafka_bootstrap, other)
