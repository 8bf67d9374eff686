"""Prometheus metrics of the normalizer, the worker and the sink.

Each service already counts what it does in a stats object of its own
(``NormalizerStats``, ``SinkStats`` per table, ``DetectStats`` / ``AnomalyStats``); the
collectors here read those when Prometheus scrapes, so the hot paths gain no metric calls.
Consumer lag comes from the group's committed offsets (``ops.lag``), sampled by a
background thread at most every ``LagSampler.every`` seconds, never during a scrape.

Every metric name starts with ``auditstream_``; counters end in ``_total``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from auditstream.ops.lag import LagError, PartitionLag, group_lag

log = logging.getLogger(__name__)


class FunctionCollector(Collector):
    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return list(self._collect())


def register(
    collect: Callable[[], Iterable[Metric]], registry: CollectorRegistry = REGISTRY
) -> None:
    registry.register(FunctionCollector(collect))


class LagSampler:
    """The lag of some consumer groups, refreshed in the background."""

    def __init__(
        self,
        client: dict[str, Any],
        groups: Sequence[tuple[str, str]],
        every: float = 15.0,
    ) -> None:
        self._client, self._groups, self.every = client, groups, every
        self._latest: list[PartitionLag] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)

    def start(self) -> LagSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def sample(self) -> None:
        out: list[PartitionLag] = []
        for group, topic in self._groups:
            out.extend(group_lag(self._client, group, [topic], timeout=5.0))
        self._latest = out

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except LagError as exc:
                log.debug("lag sample failed: %s", exc)
            self._stop.wait(self.every)

    def metrics(self) -> Iterable[Metric]:
        g = GaugeMetricFamily(
            "auditstream_consumer_lag",
            "Messages behind the end of the partition, from the group's committed offset",
            labels=["group", "topic", "partition"],
        )
        for p in self._latest:
            g.add_metric([p.group, p.topic, str(p.partition)], p.lag)
        yield g


def _counter(
    name: str, doc: str, labels: Sequence[str], values: Iterable[tuple[Sequence[str], float]]
) -> Metric:
    c = CounterMetricFamily(name, doc, labels=list(labels))
    for label_values, value in values:
        c.add_metric(list(label_values), value)
    return c


def normalizer_metrics(stats: Callable[[], Any]) -> Callable[[], Iterable[Metric]]:
    """From a ``NormalizerStats`` (read through ``stats()``, the loop may replace it)."""

    def collect() -> Iterable[Metric]:
        s = stats()
        yield _counter(
            "auditstream_normalizer_events",
            "Raw messages by outcome, committed in a transaction",
            ["outcome"],
            [
                (["normalized"], s.normalized),
                (["dead_lettered"], s.dead_lettered),
                (["repeat"], s.repeats),
            ],
        )
        yield _counter(
            "auditstream_normalizer_dead_letters",
            "Dead letters by reason",
            ["reason"],
            [([reason], n) for reason, n in sorted(s.reasons.items())],
        )
        yield _counter(
            "auditstream_normalizer_transactions",
            "Transactions by result (an aborted one is redone)",
            ["result"],
            [(["committed"], s.committed_batches), (["aborted"], s.aborted_batches)],
        )
        yield SummaryMetricFamily(
            "auditstream_normalizer_batch_seconds",
            "Time from a filled batch to its settled transaction",
            count_value=s.batch_count,
            sum_value=s.batch_seconds,
        )

    return collect


def sink_metrics(loops: Callable[[], Sequence[tuple[str, Any]]]) -> Callable[[], Iterable[Metric]]:
    """From each loop's ``SinkStats``: ``loops()`` gives (table, stats) pairs."""

    def collect() -> Iterable[Metric]:
        pairs = list(loops())

        def per_table(attr: str) -> list[tuple[Sequence[str], float]]:
            return [([table], getattr(s, attr)) for table, s in pairs]

        yield _counter(
            "auditstream_sink_rows_consumed", "Messages read", ["table"], per_table("consumed")
        )
        yield _counter(
            "auditstream_sink_rows_written", "Rows inserted", ["table"], per_table("inserted")
        )
        yield _counter(
            "auditstream_sink_rows_already_stored",
            "Rows skipped as already stored (a redelivery or a repeat)",
            ["table"],
            per_table("already_stored"),
        )
        yield _counter(
            "auditstream_sink_dead_letters",
            "Rows dead-lettered by the sink, by reason",
            ["table", "reason"],
            [([t, r], n) for t, s in pairs for r, n in sorted(s.dead_letter_reasons.items())],
        )
        yield _counter(
            "auditstream_sink_write_retries",
            "Failed writes, retried",
            ["table"],
            per_table("failed_writes"),
        )
        yield _counter(
            "auditstream_sink_commit_retries",
            "Failed commits, retried",
            ["table"],
            per_table("failed_commits"),
        )
        summary = SummaryMetricFamily(
            "auditstream_sink_write_seconds", "Time of each successful write", labels=["table"]
        )
        for table, s in pairs:
            summary.add_metric([table], count_value=s.writes, sum_value=s.write_seconds)
        yield summary

    return collect


def worker_metrics(detect: Any, anomaly: Any | None) -> Callable[[], Iterable[Metric]]:
    """From the worker's ``DetectStats`` and (when the model is loaded) ``AnomalyStats``."""

    def collect() -> Iterable[Metric]:
        yield _counter(
            "auditstream_worker_events", "Events the detectors read", [], [([], detect.events)]
        )
        yield _counter(
            "auditstream_worker_unreadable",
            "Events the detectors could not read",
            [],
            [([], detect.unreadable)],
        )
        yield _counter(
            "auditstream_worker_alerts",
            "Alerts sent, by rule",
            ["rule"],
            [([rule], n) for rule, n in sorted(detect.by_rule.items())]
            + ([(["anomalous_activity"], anomaly.alerts)] if anomaly is not None else []),
        )
        if anomaly is not None:
            yield _counter(
                "auditstream_worker_anomaly_windows",
                "Activity windows scored",
                [],
                [([], anomaly.windows_closed)],
            )

    return collect
