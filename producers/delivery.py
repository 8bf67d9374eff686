"""Where an accepted event goes until Kafka acknowledges it: librdkafka's buffer or the spool.

The ``Dispatcher`` is the one place that decides, shared by the sync and async producers:

* ``memory``: straight into librdkafka's in-memory buffer (bounded by ``buffer_max_events``).
  When that is full, or librdkafka reports every broker down, new events go to the spool
  instead, and keep going there until the spool is replayed and acknowledged: librdkafka's
  queue is first-in first-out per partition, so each actor's events stay in order.
* ``disk``: every event is appended to the spool first, then handed to librdkafka; its
  segment is deleted once Kafka acknowledged every event in it.

A background thread serves delivery callbacks, replays the spool (at most ``replay_window``
events unacknowledged at once) and runs the ``fsync=interval`` group commit. librdkafka is
told never to time an event out, so an unreachable broker never turns into a lost event; the
bound on memory and disk is the caller's signal instead: ``BufferFull``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, Producer

from auditstream.producers.config import Durability, OnFull, ProducerConfig
from auditstream.producers.encoder import Prepared
from auditstream.producers.errors import BufferFull, ProducerClosed
from auditstream.producers.spool import Spool, SpoolFull, SpoolRoot

log = logging.getLogger(__name__)

_PURGED = {KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT}


@dataclass
class DeliveryStats:
    """Counters since this producer started (delivery callbacks feed the last three)."""

    accepted: int = 0
    """Events ``emit`` accepted."""
    recovered: int = 0
    """Events found in the spool at start, left by an earlier process."""
    spooled: int = 0
    """Events written to the spool (every one in ``disk`` mode; overflow in ``memory``)."""
    delivered: int = 0
    failed: int = 0
    """Events Kafka refused for good (see ``last_error``); they are not retried."""
    last_error: str | None = None

    @property
    def pending(self) -> int:
        """Accepted or recovered, not yet acknowledged (in memory or in the spool)."""
        return self.accepted + self.recovered - self.delivered - self.failed

    @property
    def undelivered(self) -> int:
        return self.pending + self.failed


class KafkaProducer(Protocol):
    """The part of ``confluent_kafka.Producer`` we use (tests pass a fake)."""

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...
    def purge(self, in_queue: bool = ..., in_flight: bool = ..., blocking: bool = ...) -> None: ...
    def close(self) -> bool: ...
    def __len__(self) -> int: ...


class Dispatcher:
    def __init__(self, config: ProducerConfig, kafka_factory: Any = Producer) -> None:
        self.config = config
        self.stats = DeliveryStats()
        self._topic = config.topic
        self._disk = config.durability is Durability.DISK
        self._lock = threading.RLock()
        self._closed = False
        self._purging = False
        self._put_back: list[tuple[int, bytes, bytes]] = []
        self._broker_down = False
        self._spooling = False
        self._root = SpoolRoot(
            config.spool_dir,
            config.spool_max_bytes,
            config.segment_bytes,
            config.fsync,
            config.fsync_interval_ms,
        )
        self._spool: Spool | None = self._root.acquire() if self._disk else None
        if self._spool is None:
            self._spool = self._root.acquire_leftover()
        if self._spool is not None:
            self.stats.recovered = self._spool.recovered
            self._spooling = self._spool.has_backlog()
            if self._spool.recovered:
                log.warning(
                    "replaying %d audit events left in the spool %s by an earlier process",
                    self._spool.recovered,
                    self._spool.directory,
                )
        settings = {**config.librdkafka_config(), "error_cb": self._on_error}
        self._kafka: KafkaProducer = kafka_factory(settings)
        self._on_direct_cb = self._on_direct
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pump = threading.Thread(target=self._run, name="auditstream-delivery", daemon=True)
        self._pump.start()

    @property
    def spool(self) -> Spool | None:
        return self._spool

    # -- accepting -----------------------------------------------------------------------
    def submit(self, event: Prepared, block: bool = True) -> None:
        """Take one event; raises ``BufferFull`` when memory and spool are full."""
        with self._lock:
            if self._closed:
                raise ProducerClosed("this producer is closed: create a new one")
            if self._disk:
                self._submit_disk(event, block)
                return
            if not self._spooling and not self._broker_down:
                try:
                    self._kafka.produce(
                        self._topic, event.value, event.key, on_delivery=self._on_direct_cb
                    )
                    self.stats.accepted += 1
                    if not self.stats.accepted & 1023:
                        # serve delivery callbacks here in batches: cheaper than waking the
                        # delivery thread for them (no GIL hand-over per batch)
                        self._kafka.poll(0)
                    return
                except BufferError:
                    pass
            self._spooling = True
            self._append(event, block)

    def _submit_disk(self, event: Prepared, block: bool) -> None:
        spool = self._spool
        assert spool is not None
        caught_up = not spool.has_backlog() and not self._broker_down
        segment, end = self._append(event, block)
        if caught_up:
            try:
                self._kafka.produce(
                    self._topic,
                    event.value,
                    event.key,
                    on_delivery=functools.partial(self._on_spooled, segment),
                )
            except BufferError:
                return  # stays in the spool; the delivery thread replays it
            spool.mark(segment, end)

    def _append(self, event: Prepared, block: bool) -> tuple[int, int]:
        spool = self._ensure_spool()
        deadline = time.monotonic() + self.config.block_timeout_seconds
        while True:
            try:
                where = spool.append(event.key, event.value)
            except SpoolFull:
                if not block or self.config.on_full is OnFull.RAISE:
                    raise self._full() from None
                if time.monotonic() >= deadline:
                    raise self._full() from None
                self._wait_for_room()
                continue
            self.stats.accepted += 1
            self.stats.spooled += 1
            self._wake.set()
            return where

    def _full(self) -> BufferFull:
        return BufferFull(
            f"the audit spool is full ({self.config.spool_max_bytes} bytes in "
            f"{self.config.spool_dir}) and Kafka at {self.config.bootstrap_servers} is not "
            f"taking events ({self.stats.pending} pending; last error: "
            f"{self.stats.last_error or 'none'}): the event was not accepted. Check the "
            "broker, or raise spool_max_bytes / block_timeout_seconds"
        )

    def _wait_for_room(self) -> None:
        """Let deliveries and replay free spool space (the lock is released meanwhile)."""
        self._wake.set()
        depth = 0
        while True:  # release a re-entrant lock fully, whatever the depth
            try:
                self._lock.release()
                depth += 1
            except RuntimeError:
                break
        try:
            self._kafka.poll(0.05)
        finally:
            for _ in range(depth):
                self._lock.acquire()

    def _ensure_spool(self) -> Spool:
        if self._spool is None:
            self._spool = self._root.acquire()
        return self._spool

    # -- delivery callbacks (run inside poll / flush) --------------------------------------
    def _on_direct(self, error: KafkaError | None, message: Message) -> None:
        with self._lock:
            if error is None:
                self.stats.delivered += 1
                self._broker_down = False
            elif self._purging and error.code() in _PURGED:
                stamp = message.timestamp()[1]
                self._put_back.append((stamp, message.key() or b"", message.value() or b""))
            else:
                self._failed(error)

    def _on_spooled(self, segment: int, error: KafkaError | None, message: Message) -> None:
        with self._lock:
            if error is None:
                self.stats.delivered += 1
                self._broker_down = False
            elif self._purging and error.code() in _PURGED:
                return  # still in its segment: replayed on the next start
            else:
                self._failed(error)
            if self._spool is not None:
                self._spool.ack(segment)

    def _failed(self, error: KafkaError) -> None:
        self.stats.failed += 1
        self.stats.last_error = str(error)
        log.error("audit event refused by Kafka for good (%s); %d so far", error, self.stats.failed)

    def _on_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            with self._lock:
                self._broker_down = True
                self.stats.last_error = str(error)
            log.warning("Kafka is unreachable (%s): audit events go to the spool", error)

    # -- the delivery thread -------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._kafka.poll(0.1)
                with self._lock:
                    self._step()
            except Exception:  # keep serving callbacks whatever happens
                log.exception("audit delivery thread error")
                time.sleep(0.1)

    def _step(self) -> None:
        spool = self._spool
        if spool is None:
            return
        spool.maybe_sync()
        if spool.has_backlog():
            room = self.config.replay_window - spool.unacked()
            if room > 0:
                self._replay(spool, room)
        elif self._spooling and spool.unacked() == 0 and not self._broker_down:
            self._spooling = False  # everything spooled is in Kafka: back to the fast path

    def _replay(self, spool: Spool, limit: int) -> None:
        for item in spool.next_batch(limit):
            try:
                self._kafka.produce(
                    self._topic,
                    item.value,
                    item.key,
                    on_delivery=functools.partial(self._on_spooled, item.segment),
                )
            except BufferError:
                return
            spool.mark(item.segment, item.end)

    # -- finishing -----------------------------------------------------------------------
    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds; returns ``stats.undelivered`` (0: all in Kafka)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                self._step()
                if self._spool is not None:
                    self._spool.sync()
                remaining = self.stats.undelivered
            left = deadline - time.monotonic()
            if self.stats.pending == 0 or left <= 0:
                return remaining
            self._kafka.flush(min(left, 0.1))

    def close(self, timeout: float) -> int:
        """Flush, then keep what is still undelivered for the next start; returns its count."""
        with self._lock:
            if self._closed:
                return self.stats.undelivered
        remaining = self.flush(timeout)
        self._stop.set()
        self._pump.join()
        with self._lock:
            self._closed = True
            if self.stats.pending:
                self._purging = True
        if self.stats.pending:
            self._kafka.purge(in_queue=True, in_flight=True, blocking=True)
            self._kafka.poll(0)
            deadline = time.monotonic() + 5
            while len(self._kafka) and time.monotonic() < deadline:
                self._kafka.poll(0.05)
        with self._lock:
            if self._put_back:
                self._put_back.sort(key=lambda item: item[0])  # stable: per-actor order kept
                spool = self._ensure_spool()
                spool.put_back([(k, v) for _, k, v in self._put_back])
                log.error(
                    "%d audit events were not delivered; they are kept in %s for the next "
                    "producer start",
                    len(self._put_back),
                    spool.directory,
                )
                self._put_back.clear()
            if self._spool is not None:
                self._spool.close()
        # Nothing is left in librdkafka now (delivered, or purged into the spool): close its
        # connections, or they keep reconnecting to a broker that went away.
        self._kafka.close()
        return remaining
