"""Prometheus metrics for a service that emits audit events through the SDK.

``register_metrics(audit)`` adds the producer's delivery counters to a Prometheus registry
(the process's default one unless given), read from ``AuditProducer.stats`` /
``AsyncAuditProducer.stats`` at each scrape; the service exposes them with its own
``/metrics`` endpoint. ``name`` tells several producers of one process apart.

========================================  =================================================
``auditstream_sdk_events_total{state}``   ``accepted`` by ``emit``, ``recovered`` from the
                                          spool at start, ``spooled``, ``delivered``,
                                          ``failed`` (refused by Kafka for good)
``auditstream_sdk_pending``               accepted or recovered, not acknowledged yet
``auditstream_sdk_undelivered``           pending plus failed
========================================  =================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

    from auditstream.producers.delivery import DeliveryStats


class HasStats(Protocol):
    @property
    def stats(self) -> DeliveryStats: ...


STATES = ("accepted", "recovered", "spooled", "delivered", "failed")


def register_metrics(
    producer: HasStats, name: str = "default", registry: CollectorRegistry | None = None
) -> None:
    from prometheus_client import REGISTRY
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

    class ProducerCollector(Collector):
        def collect(self) -> Iterable[Metric]:
            s = producer.stats
            events = CounterMetricFamily(
                "auditstream_sdk_events",
                "Audit events by delivery state, since the producer started",
                labels=["producer", "state"],
            )
            for state in STATES:
                events.add_metric([name, state], getattr(s, state))
            yield events
            pending = GaugeMetricFamily(
                "auditstream_sdk_pending", "Accepted, not acknowledged yet", labels=["producer"]
            )
            pending.add_metric([name], s.pending)
            yield pending
            undelivered = GaugeMetricFamily(
                "auditstream_sdk_undelivered", "Pending plus failed", labels=["producer"]
            )
            undelivered.add_metric([name], s.undelivered)
            yield undelivered

        def describe(self) -> Iterable[Any]:
            return []

    (registry or REGISTRY).register(ProducerCollector())
