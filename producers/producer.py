"""The synchronous producer.

    with AuditProducer() as audit:
        audit.emit(tenant_id="acme", actor={"id": "u42"}, action="delete",
                   resource={"type": "invoice", "id": "INV-7"})

The contract, shared by ``AsyncAuditProducer`` (``aio.py``):

* ``emit`` validates first: invalid input raises ``InvalidEvent`` naming each field, and
  nothing is sent. It returns the event id once the event is accepted: in librdkafka's
  buffer (``memory``) or appended to the spool (``disk``, and any mode while Kafka is away).
* Delivery is idempotent (``enable.idempotence``, acks=all), keyed by tenant and actor so
  one actor's events keep their order, and never times out.
* When memory and spool are full, ``emit`` blocks up to ``block_timeout_seconds`` and then
  raises ``BufferFull`` (``on_full="raise"``: at once). Never silently dropped.
* ``flush(timeout)`` and ``close(timeout)`` return how many events are undelivered (0: all
  acknowledged by Kafka). ``close`` keeps those in the spool; the next start replays them.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from confluent_kafka import Producer

from auditstream.producers.config import ProducerConfig
from auditstream.producers.delivery import DeliveryStats, Dispatcher
from auditstream.producers.encoder import EventEncoder, Prepared
from auditstream.producers.helpers import EventHelpers
from auditstream.schemas.event import AuditEvent

log = logging.getLogger(__name__)


def build_config(config: ProducerConfig | None, overrides: dict[str, Any]) -> ProducerConfig:
    if config is not None and overrides:
        raise TypeError("pass a ProducerConfig or keyword settings, not both")
    return config or ProducerConfig.from_env(**overrides)


class AuditProducer(EventHelpers[str]):
    def __init__(
        self,
        config: ProducerConfig | None = None,
        *,
        kafka_factory: Any = Producer,
        **overrides: Any,
    ) -> None:
        """``config``, or settings from the environment with ``overrides`` applied."""
        self.config = build_config(config, overrides)
        self._encoder = EventEncoder(self.config)
        self._dispatcher = Dispatcher(self.config, kafka_factory)

    @property
    def stats(self) -> DeliveryStats:
        return self._dispatcher.stats

    def prepare(self, event: AuditEvent | None = None, /, **fields: Any) -> Prepared:
        """Validate and encode without sending (``emit`` = ``prepare`` + send)."""
        if event is None:
            return self._encoder.from_fields(fields)
        if fields:
            raise TypeError("pass an AuditEvent or keyword fields, not both")
        if not isinstance(event, AuditEvent):
            raise TypeError(f"emit takes an AuditEvent or keyword fields, not {type(event)}")
        return self._encoder.from_event(event)

    def emit(self, event: AuditEvent | None = None, /, **fields: Any) -> str:
        """Validate and accept one event; returns its event id.

        Takes an ``AuditEvent`` or its fields as keywords; ``occurred_at`` defaults to now.
        """
        prepared = self.prepare(event, **fields)
        self._dispatcher.submit(prepared)
        return prepared.event_id

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for deliveries; returns how many events are undelivered (0 = all in Kafka)."""
        return self._dispatcher.flush(timeout)

    def close(self, timeout: float = 30.0) -> int:
        """Flush, stop, keep anything undelivered in the spool; returns how many that is."""
        remaining = self._dispatcher.close(timeout)
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
