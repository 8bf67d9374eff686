"""One audit event the pipeline itself records (a retention change, a review's sign-off, a
drill's result), sent through the SDK and acknowledged by Kafka before the caller goes on.

A spool of its own, removed afterwards: a record Kafka did not take must not be replayed
later by some other producer (it would record something that, as far as the caller knows,
never happened). The caller decides what a missing acknowledgement means.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from auditstream.config import Settings

SYSTEM_TENANT = "_system"
"""The store-wide log: changes that are no single tenant's."""


class NotAcknowledged(RuntimeError):
    """Kafka did not acknowledge the record in time."""


def send_acknowledged(
    settings: Settings, client_id: str, timeout: float = 15.0, **event: Any
) -> str:
    """Emit ``event`` (``AuditProducer.emit``'s fields) to the raw topic and wait for Kafka's
    acknowledgement; returns the event id, or raises ``NotAcknowledged``."""
    from auditstream.producers import AuditProducer, ProducerConfig

    spool = tempfile.TemporaryDirectory(prefix=f"{client_id}-")
    config = ProducerConfig(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        topic=settings.topics.raw,
        client_id=client_id,
        librdkafka=settings.kafka.security.librdkafka(),
        block_timeout_seconds=timeout,
        spool_dir=Path(spool.name),
    )
    audit = AuditProducer(config)
    try:
        event_id = audit.emit(**event)
        left = audit.flush(timeout)
    finally:
        left_at_close = audit.close(1.0)
        spool.cleanup()
    if left or left_at_close:
        raise NotAcknowledged(
            f"Kafka ({settings.kafka.bootstrap_servers}) did not acknowledge the audit record "
            f"within {timeout:.0f}s"
        )
    return str(event_id)
