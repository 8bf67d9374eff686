"""The detection engine in this process, without Kafka: a quick loop for tuning settings.

Runs the same detectors, config and engine as the worker, event by event, with state kept
per subject and tenant-wide state per partition, partitioned as the worker's normalized
topic is (murmur2 of the ``tenant:actor`` key, like Kafka's Java client and aiokafka).
What it cannot tell is latency: ``seen_ms`` of every alert is the moment the engine made
it. ``auditstream eval`` runs through the real pipeline; ``--in-process`` uses this.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from auditstream.detectors.engine import DetectionEngine
from auditstream.detectors.replay import InProcess
from auditstream.schemas.event import AuditEvent
from auditstream.simulation.events import SimEvent
from auditstream.simulation.metrics import SeenAlert


def detect(
    engine: DetectionEngine,
    events: Iterable[SimEvent],
    partitions: int = 6,
    on_event: Callable[[SimEvent, int], None] | None = None,
) -> list[SeenAlert]:
    """Every alert the engine raises over ``events`` (in their order)."""
    detection = InProcess(engine, partitions)
    out: list[SeenAlert] = []
    for sim in events:
        emitted = time.time_ns() // 1_000_000
        if on_event is not None:
            on_event(sim, emitted)
        for alert in detection.process(AuditEvent.model_validate(sim.fields)):
            doc = alert.model_dump(mode="json")
            out.append(SeenAlert.from_alert(doc, time.time_ns() // 1_000_000))
    return out
