"""Latency: percentiles, and alerts matched back to the trigger events that caused them.

Produce -> alert is measured in the bench process: an alert is matched to the burst whose
events it names as evidence, and its latency is the alert's arrival (wall clock, on the
alert topic) minus the produce time of the *latest* of those events, the one that crossed
the threshold. Produce -> stored is measured by the store itself (``stored_at`` minus the
produce time stamped in each event), see ``e2e.stored_latency``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from auditstream.bench.load import Sent


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); ``ordered`` sorted."""
    if not ordered:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError("q is a percentage")
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Percentiles:
    """Milliseconds."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Percentiles | None:
        if not values_ms:
            return None
        ordered = sorted(values_ms)
        return cls(
            len(ordered),
            round(percentile(ordered, 50), 1),
            round(percentile(ordered, 95), 1),
            round(percentile(ordered, 99), 1),
            round(ordered[-1], 1),
        )


@dataclass(frozen=True)
class AlertLatency:
    step: int
    burst: int
    rule: str
    ms: float


@dataclass
class AlertMatcher:
    """Turns alerts into produce -> alert latencies of the bursts they name as evidence."""

    sent_at: Callable[[str], Sent | None]
    matched: list[AlertLatency] = field(default_factory=list)
    other: int = 0
    """Alerts about no burst (the sample traffic's own, e.g. impossible travel)."""
    repeated: int = 0
    """A second alert naming a burst already matched."""
    _bursts: set[int] = field(default_factory=set)

    def on_alert(self, value: bytes, arrived: float) -> AlertLatency | None:
        try:
            alert: dict[str, Any] = orjson.loads(value)
        except orjson.JSONDecodeError:
            self.other += 1
            return None
        sent = [s for i in alert.get("evidence_event_ids") or [] if (s := self.sent_at(i))]
        if not sent:
            self.other += 1
            return None
        last = max(sent, key=lambda s: s.at)
        if last.burst in self._bursts:
            self.repeated += 1
            return None
        self._bursts.add(last.burst)
        found = AlertLatency(
            last.step, last.burst, str(alert.get("rule")), (arrived - last.at) * 1e3
        )
        self.matched.append(found)
        return found

    def for_step(self, step: int) -> list[float]:
        return [m.ms for m in self.matched if m.step == step]


class AlertListener:
    """Reads the alert topic in a thread and hands each alert, with its arrival time, on."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, matcher: AlertMatcher):
        from confluent_kafka import Consumer, TopicPartition

        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-alerts-{time.time_ns()}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 20,
                "fetch.min.bytes": 1,
            }
        )
        self._consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self._matcher = matcher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-alerts", daemon=True)
        self.lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            messages = self._consumer.consume(100, timeout=0.05)
            arrived = time.time()
            with self.lock:
                for message in messages:
                    if message.error() is None:
                        self._matcher.on_alert(message.value() or b"", arrived)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()
