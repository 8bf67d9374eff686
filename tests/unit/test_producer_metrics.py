"""The SDK's Prometheus metrics are the producer's delivery counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest

from auditstream.producers import DeliveryStats
from auditstream.producers.metrics import register_metrics


@dataclass
class FakeProducer:
    stats: DeliveryStats = field(default_factory=DeliveryStats)


def test_metrics_follow_the_producers_stats() -> None:
    registry = CollectorRegistry()
    audit = FakeProducer()
    register_metrics(audit, name="billing", registry=registry)
    audit.stats.accepted, audit.stats.delivered, audit.stats.failed = 5, 3, 1
    text = generate_latest(registry).decode()
    assert 'auditstream_sdk_events_total{producer="billing",state="accepted"} 5.0' in text
    assert 'auditstream_sdk_events_total{producer="billing",state="delivered"} 3.0' in text
    assert 'auditstream_sdk_pending{producer="billing"} 1.0' in text
    assert 'auditstream_sdk_undelivered{producer="billing"} 2.0' in text
    audit.stats.delivered = 4
    assert 'auditstream_sdk_pending{producer="billing"} 0.0' in generate_latest(registry).decode()
