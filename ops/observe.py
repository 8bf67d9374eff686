"""Wires metrics, health and lag into each service (called from its ``run``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from auditstream.config import Settings
from auditstream.ops import health, metrics
from auditstream.ops.logs import say

STUCK_SECONDS = 300.0
"""``/healthz`` fails when a loop has not turned for this long (every call in a turn is
bounded well below it)."""


def _start(
    settings: Settings,
    role: str,
    check: health.Health,
    collect: Callable[[], Any],
    groups: Sequence[tuple[str, str]],
) -> Callable[[], None]:
    metrics.register(collect)
    sampler = metrics.LagSampler(settings.kafka.client_config(), groups)
    metrics.register(sampler.metrics)
    server = health.serve(settings, role, check, say)
    sampler.start()

    def stop() -> None:
        sampler.stop()
        health.forget(settings, role, server)

    return stop


def observe_normalizer(settings: Settings, loop: Any) -> Callable[[], None]:
    """``loop``: the ``NormalizerLoop``; returns what stops the server."""

    def not_alive() -> str | None:
        at = loop.stats.turned_at
        if at is not None and time.monotonic() - at > STUCK_SECONDS:
            return f"the loop has not turned for {time.monotonic() - at:.0f} s"
        return None

    def not_ready() -> str | None:
        return None if loop.connected else "waiting for Kafka"

    return _start(
        settings,
        "normalizer",
        health.Health(not_alive, not_ready),
        metrics.normalizer_metrics(lambda: loop.stats),
        [(loop.config.group_id, loop.config.raw_topic)],
    )


def observe_sink(
    settings: Settings, loops: Sequence[Any], tables: Sequence[str]
) -> Callable[[], None]:
    """``loops``: the sink's ``SinkLoop`` list, filled once the store answered (in the order
    of ``tables``)."""
    from auditstream.ops.lag import pipeline_groups

    def not_ready() -> str | None:
        return None if loops else "waiting for the store"

    groups = [(g, t) for role, g, t in pipeline_groups(settings) if role == "sink"]
    return _start(
        settings,
        "sink",
        health.Health(not_ready=not_ready),
        metrics.sink_metrics(
            lambda: [(t, loop.stats) for t, loop in zip(tables, loops, strict=False)]
        ),
        groups,
    )


def observe_worker(
    settings: Settings, detect: Any, anomaly: Any | None, started: Callable[[], bool]
) -> Callable[[], None]:
    """``started()``: True once Faust has started every agent (its tables recovered)."""
    from auditstream.ops.lag import pipeline_groups

    def not_ready() -> str | None:
        return None if started() else "starting (joining the group, recovering tables)"

    groups = [(g, t) for role, g, t in pipeline_groups(settings) if role == "worker"]
    return _start(
        settings,
        "worker",
        health.Health(not_ready=not_ready),
        metrics.worker_metrics(detect, anomaly),
        groups,
    )
