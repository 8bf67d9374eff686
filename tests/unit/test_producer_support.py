"""Support for the producer unit tests (no tests here): a stand-in for confluent_kafka.Producer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from auditstream.producers import AsyncAuditProducer, AuditProducer


class FakeMessage:
    def __init__(self, key: bytes, value: bytes) -> None:
        self._key, self._value = key, value

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


class FakeKafka:
    """Queues up to ``capacity`` messages; ``up`` decides whether poll delivers them."""

    def __init__(self, config: dict[str, Any], capacity: int = 1_000_000) -> None:
        self.config = config
        self.capacity = capacity
        self.up = True
        self.queue: list[tuple[bytes, bytes, Callable[..., None]]] = []
        self.sent: list[tuple[bytes, bytes]] = []
        self._lock = threading.Lock()

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None:
        with self._lock:
            if len(self.queue) >= self.capacity:
                raise BufferError("queue full")
            self.queue.append((key, value, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        with self._lock:
            done: list[tuple[bytes, bytes, Callable[..., None]]] = []
            if self.up and self.queue:
                done, self.queue = self.queue, []
        if not done:
            time.sleep(timeout)
            return 0
        with self._lock:
            self.sent.extend((k, v) for k, v, _ in done)
        for key, value, callback in done:
            callback(None, FakeMessage(key, value))
        return len(done)

    def flush(self, timeout: float = 0) -> int:
        self.poll(0)
        return len(self.queue)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        with self._lock:
            done, self.queue = self.queue, []
        for key, value, callback in done:
            callback(KafkaError(KafkaError._PURGE_QUEUE), FakeMessage(key, value))

    def close(self) -> bool:
        self.closed = True
        return True

    def __len__(self) -> int:
        return len(self.queue)


class Sync:
    """Drives either producer through one interface, so every behaviour is tested on both."""

    def __init__(self, producer: AuditProducer | AsyncAuditProducer) -> None:
        self.producer = producer
        self.loop = asyncio.new_event_loop()

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.producer, name)(*args, **kwargs)
        if asyncio.iscoroutine(result):
            return self.loop.run_until_complete(result)
        return result

    def emit(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("emit", *args, **kwargs)

    def close(self, timeout: float = 5) -> int:
        if self.loop.is_closed():
            return int(self.producer.stats.undelivered)
        try:
            return int(self.call("close", timeout))
        finally:
            self.loop.close()
