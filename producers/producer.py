"""The producer SDK: validate an audit event, then publish it to the raw topic.

    with AuditProducer() as audit:
        audit.emit(tenant_id="acme", actor={"id": "u42"}, action="delete",
                   resource={"type": "invoice", "id": "INV-7"})

Delivery is idempotent (``enable.idempotence``, so acks=all and safe retries), keyed by
tenant and actor so one actor's events keep their order. ``flush`` and ``close`` return
how many events are still undelivered: a caller that ignores it may lose events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from auditstream.schemas.codec import EventTooLarge, encode
from auditstream.schemas.event import AuditEvent

log = logging.getLogger(__name__)


class DeliveryTimeout(RuntimeError):
    """The local buffer stayed full for longer than ``buffer_timeout_seconds``."""


@dataclass(frozen=True)
class ProducerConfig:
    bootstrap_servers: str
    topic: str = "audit.events.raw"
    max_event_bytes: int = 65_536
    linger_ms: int = 5
    buffer_timeout_seconds: float = 10.0
    client_id: str = "auditstream-sdk"
    librdkafka: Mapping[str, Any] = field(default_factory=dict)
    """Extra librdkafka settings (security.protocol, sasl.* ...); ours win on idempotence."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ProducerConfig:
        from auditstream.config import Settings

        settings = Settings.from_env(env)
        values: dict[str, Any] = {
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "topic": settings.topics.raw,
        }
        values.update(overrides)
        return cls(**values)

    def librdkafka_config(self) -> dict[str, Any]:
        return {
            **self.librdkafka,
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": self.linger_ms,
            "compression.type": "lz4",
            "message.max.bytes": max(1_000_000, self.max_event_bytes * 2),
        }


@dataclass
class DeliveryStats:
    emitted: int = 0
    delivered: int = 0
    failed: int = 0
    last_error: str | None = None

    @property
    def in_flight(self) -> int:
        return self.emitted - self.delivered - self.failed


class AuditProducer:
    def __init__(self, config: ProducerConfig | None = None, **overrides: Any) -> None:
        self.config = config or ProducerConfig.from_env(**overrides)
        self._producer = Producer(self.config.librdkafka_config())
        self._lock = threading.Lock()
        self.stats = DeliveryStats()

    # -- sending ---------------------------------------------------------------------------
    def emit(self, event: AuditEvent | None = None, /, **fields: Any) -> AuditEvent:
        """Validate and publish one event; returns it (with its event id).

        Takes an ``AuditEvent`` or its fields as keywords; ``occurred_at`` defaults to now.
        Raises ``pydantic.ValidationError`` (naming the field) or ``EventTooLarge`` before
        anything is sent.
        """
        if event is None:
            fields.setdefault("occurred_at", datetime.now(UTC))
            event = AuditEvent(**fields)
        elif fields:
            raise TypeError("pass an AuditEvent or keyword fields, not both")
        value = encode(event)
        if len(value) > self.config.max_event_bytes:
            raise EventTooLarge(
                f"event {event.event_id} is {len(value)} bytes; "
                f"the limit is {self.config.max_event_bytes} (max_event_bytes)"
            )
        self._produce(event.key, value)
        return event

    def _produce(self, key: bytes, value: bytes) -> None:
        deadline: float | None = None
        while True:
            try:
                self._producer.produce(
                    self.config.topic, value=value, key=key, on_delivery=self._on_delivery
                )
                break
            except BufferError:
                now = time.monotonic()
                deadline = deadline or now + self.config.buffer_timeout_seconds
                if now >= deadline:
                    raise DeliveryTimeout(
                        "the producer buffer stayed full for "
                        f"{self.config.buffer_timeout_seconds}s: is the broker reachable?"
                    ) from None
                self._producer.poll(0.05)
        self.stats.emitted += 1
        self._producer.poll(0)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        with self._lock:
            if error is None:
                self.stats.delivered += 1
            else:
                self.stats.failed += 1
                self.stats.last_error = str(error)
        if error is not None:
            log.error("audit event not delivered: %s", error)

    # -- finishing -------------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> int:
        """Wait for deliveries; returns how many events are still undelivered (0 = all sent)."""
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 30.0) -> int:
        remaining = self.flush(timeout)
        if remaining:
            log.error("closing with %d audit events undelivered", remaining)
        return remaining

    def __enter__(self) -> AuditProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
