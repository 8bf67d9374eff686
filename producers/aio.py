"""The asyncio producer, for FastAPI / aiohttp services: the same contract as ``AuditProducer``.

    async with AsyncAuditProducer() as audit:
        await audit.emit(tenant_id="acme", actor={"id": "u42"}, action="sign_in",
                         resource={"type": "session", "id": "s1"})

``emit`` never blocks the event loop: validation is CPU work of a few microseconds, handing
the event to librdkafka does not wait, and when memory and spool are full it waits with
``asyncio.sleep`` (up to ``block_timeout_seconds``) instead of blocking. With ``disk``
durability and ``fsync="always"`` the append and its fsync run in a worker thread.
``flush`` and ``close`` run in a worker thread too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from confluent_kafka import Producer

from auditstream.producers.config import Durability, Fsync, OnFull, ProducerConfig
from auditstream.producers.delivery import DeliveryStats, Dispatcher
from auditstream.producers.encoder import EventEncoder, Prepared
from auditstream.producers.errors import BufferFull
from auditstream.producers.helpers import EventHelpers
from auditstream.producers.producer import build_config
from auditstream.schemas.event import AuditEvent


class AsyncAuditProducer(EventHelpers[Coroutine[Any, Any, str]]):
    def __init__(
        self,
        config: ProducerConfig | None = None,
        *,
        kafka_factory: Any = Producer,
        **overrides: Any,
    ) -> None:
        self.config = build_config(config, overrides)
        self._encoder = EventEncoder(self.config)
        self._dispatcher = Dispatcher(self.config, kafka_factory)
        self._offload = (
            self.config.durability is Durability.DISK and self.config.fsync is Fsync.ALWAYS
        )

    @property
    def stats(self) -> DeliveryStats:
        return self._dispatcher.stats

    def prepare(self, event: AuditEvent | None = None, /, **fields: Any) -> Prepared:
        if event is None:
            return self._encoder.from_fields(fields)
        if fields:
            raise TypeError("pass an AuditEvent or keyword fields, not both")
        if not isinstance(event, AuditEvent):
            raise TypeError(f"emit takes an AuditEvent or keyword fields, not {type(event)}")
        return self._encoder.from_event(event)

    async def emit(self, event: AuditEvent | None = None, /, **fields: Any) -> str:
        """Validate and accept one event; returns its event id (see ``AuditProducer.emit``)."""
        prepared = self.prepare(event, **fields)
        deadline = time.monotonic() + self.config.block_timeout_seconds
        while True:
            try:
                if self._offload:
                    await asyncio.to_thread(self._dispatcher.submit, prepared, False)
                else:
                    self._dispatcher.submit(prepared, block=False)
                return prepared.event_id
            except BufferFull:
                if self.config.on_full is OnFull.RAISE or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.05)

    async def flush(self, timeout: float = 30.0) -> int:
        return await asyncio.to_thread(self._dispatcher.flush, timeout)

    async def close(self, timeout: float = 30.0) -> int:
        return await asyncio.to_thread(self._dispatcher.close, timeout)

    async def __aenter__(self) -> AsyncAuditProducer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
