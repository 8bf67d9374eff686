"""The Faust application: one app, agents registered by an explicit list of modules."""

from __future__ import annotations

from typing import Any

import faust
from faust.sensors import Monitor

from auditstream.config import Settings


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap_servers.split(",") if host.strip()]


class Worker(faust.Worker):
    """``faust.Worker`` without the terminal spinner.

    To spin on every log record, Faust's worker sets the *root logger* to DEBUG (only its
    handler filters at ``loglevel``): every ``log.debug`` call in aiokafka and Faust, several
    per message sent, then builds a record that is thrown away (a few % of the worker's CPU).
    Without the spinner, the root logger stays at ``loglevel``.
    """

    def on_setup_root_logger(self, logger: Any, level: int) -> None:
        self.spinner = None


class QuietMonitor(Monitor):
    """Faust's Monitor without its per-message bookkeeping.

    The Monitor records statistics on every message in and out, every event through a
    stream, every send and table access, for Faust's web views (off here:
    ``web_enabled=False``). That was ~25 us an event, a quarter of what consuming one costs
    (``auditstream bench e2e``). Commit, rebalance and error statistics are still kept.
    """

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_table_get(self, table: Any, key: Any) -> None:
        return None

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        return None

    def on_table_del(self, table: Any, key: Any) -> None:
        return None

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> None:
        return None

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        return None


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
        # 256 KiB batches (aiokafka's default is 16 KiB, ~25 normalized events): fewer produce
        # requests under load; linger still bounds the wait when traffic is light.
        "producer_max_batch_size": 262_144,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_interval": 1.0,
        # A crashed worker's partitions move on after 10 s, not Faust's default 60 s.
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 2.0,
        "web_enabled": False,
        "Monitor": QuietMonitor,
        "autodiscover": False,
    }
    credentials = settings.kafka.security.faust_credentials()
    if credentials is not None:
        conf["broker_credentials"] = credentials
    conf.update(overrides)
    return faust.App(f"{settings.app_id}-worker", **conf)
