"""The Faust application: one app, agents registered by an explicit list of modules."""

from __future__ import annotations

from typing import Any

import faust

from auditstream.config import Settings


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap_servers.split(",") if host.strip()]


def create_app(settings: Settings, **overrides: Any) -> faust.App:
    """A Faust app for ``settings``; its agents are added by ``stream_jobs.worker``."""
    conf: dict[str, Any] = {
        "broker": broker_urls(settings.kafka.bootstrap_servers),
        "store": "memory://",
        "datadir": str(settings.home / "faust"),
        "topic_partitions": settings.topics.partitions,
        "topic_replication_factor": 1,
        "producer_acks": -1,
        "producer_linger_ms": 5,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_interval": 1.0,
        # A crashed worker's partitions move on after 10 s, not Faust's default 60 s.
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 2.0,
        "web_enabled": False,
        "autodiscover": False,
    }
    conf.update(overrides)
    return faust.App(f"{settings.app_id}-worker", **conf)
