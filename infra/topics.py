"""Create the pipeline's topics when missing."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from auditstream.config import Topics

DAY_MS = 24 * 3600 * 1000


def ensure_topics(bootstrap_servers: str, topics: Topics, replication: int = 1) -> list[str]:
    """Create any missing topic; returns the names created. Existing topics are left alone."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    existing = set(admin.list_topics(timeout=15).topics)
    wanted = {
        topics.raw: {"retention.ms": str(7 * DAY_MS)},
        topics.normalized: {"retention.ms": str(7 * DAY_MS)},
        topics.dead_letter: {"retention.ms": str(30 * DAY_MS)},
        topics.alerts: {"retention.ms": str(30 * DAY_MS)},
    }
    new = [
        NewTopic(name, num_partitions=topics.partitions, replication_factor=replication, config=cfg)
        for name, cfg in wanted.items()
        if name not in existing
    ]
    if not new:
        return []
    created = []
    for name, future in admin.create_topics(new, operation_timeout=15).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created
