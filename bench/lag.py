"""Consumer-group lag: committed offsets against the partitions' high watermarks.

Committed offsets trail what a group has processed by up to its commit interval (Faust
commits every second, the sink after each batch), so a healthy group at 10k events/s shows a
lag of a few thousand events. What tells a sustainable rate from one that is not is the
*trend*: ``growth`` fits a line through the lag samples of a window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TopicPartitionKey = tuple[str, int]


def partition_lag(committed: int | None, low: int, high: int) -> int:
    """Messages not yet committed; a partition the group never committed counts from ``low``."""
    start = committed if committed is not None and committed >= 0 else low
    return max(0, high - max(start, low))


def growth(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, lag) samples, in lag per second (0 for < 2 samples)."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in samples) / var


def bounded(
    samples: Sequence[tuple[float, float]],
    rate: float,
    tolerance: float = 0.03,
    jitter_seconds: float = 2.0,
) -> bool:
    """True if the lag does not build up: its fitted growth is under ``tolerance`` of the
    offered rate, or under what commit jitter alone can produce over this window (offsets
    are committed every second or so, so the lag saws between 0 and about a second of
    events; over a short window that reads as a slope of up to ``jitter_seconds`` of
    events per window length)."""
    if len(samples) < 2:
        return True
    span = samples[-1][0] - samples[0][0]
    allowed = max(tolerance * rate, jitter_seconds * rate / span if span > 0 else rate)
    return growth(samples) <= allowed


@dataclass(frozen=True)
class LagSummary:
    start: int
    end: int
    max: int
    growth_per_second: float

    @classmethod
    def of(cls, samples: Sequence[tuple[float, float]]) -> LagSummary:
        values = [int(v) for _, v in samples] or [0]
        return cls(values[0], values[-1], max(values), round(growth(samples), 1))


@dataclass(frozen=True)
class Position:
    """One group on one topic, summed over partitions."""

    committed: int
    """Messages the group has committed (a partition never committed counts from ``low``)."""
    high: int
    """Messages in the topic (sum of high watermarks)."""

    @property
    def lag(self) -> int:
        return max(0, self.high - self.committed)


def positions(
    committed: Mapping[TopicPartitionKey, int | None],
    watermarks: Mapping[TopicPartitionKey, tuple[int, int]],
) -> dict[str, Position]:
    """Per topic, over the partitions in ``watermarks``."""
    done: dict[str, int] = {}
    high: dict[str, int] = {}
    for (topic, partition), (low, hi) in watermarks.items():
        lag = partition_lag(committed.get((topic, partition)), low, hi)
        done[topic] = done.get(topic, 0) + hi - lag
        high[topic] = high.get(topic, 0) + hi
    return {topic: Position(done[topic], high[topic]) for topic in high}


class LagProbe:
    """Samples consumer groups' positions through the admin API (a few round trips)."""

    def __init__(
        self, bootstrap: str, groups: Mapping[str, Sequence[str]], partitions: int
    ) -> None:
        """``groups``: each group and the topics it reads for sure (others are found from
        its commits: the worker's by-IP repartition topic, for instance)."""
        from confluent_kafka.admin import AdminClient

        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        self._groups = dict(groups)
        self._partitions = partitions

    def committed(self, group: str) -> dict[TopicPartitionKey, int | None]:
        from confluent_kafka import ConsumerGroupTopicPartitions

        futures = self._admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
        result = futures[group].result(timeout=10)
        return {
            (tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
            for tp in result.topic_partitions or []
        }

    def watermarks(
        self, keys: Iterable[TopicPartitionKey]
    ) -> dict[TopicPartitionKey, tuple[int, int]]:
        from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

        keys = list(keys)
        if not keys:
            return {}
        lows = self._list(keys, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        highs = self._list(keys, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        return {key: (lows[key], highs[key]) for key in keys}

    def _list(self, keys: list[TopicPartitionKey], spec: Any) -> dict[TopicPartitionKey, int]:
        from confluent_kafka import TopicPartition

        futures = self._admin.list_offsets(
            {TopicPartition(t, p): spec for t, p in keys}, request_timeout=10
        )
        return {(k.topic, k.partition): f.result(timeout=10).offset for k, f in futures.items()}

    def sample(self) -> dict[str, Position]:
        """Positions by ``group/topic``, for every topic a group reads or has committed on."""
        out: dict[str, Position] = {}
        for group, topics in self._groups.items():
            committed = self.committed(group)
            keys = set(committed) | {(t, p) for t in topics for p in range(self._partitions)}
            for topic, position in positions(committed, self.watermarks(keys)).items():
                out[f"{group}/{topic}"] = position
        return out
