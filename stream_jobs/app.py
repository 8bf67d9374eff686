"""The Faust application: one app, agents registered by an explicit list of modules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import faust
from confluent_kafka import KafkaException
from faust.sensors import Monitor
from faust.types import TransportT
from mode.utils.objects import cached_property

from auditstream.config import Settings
from auditstream.infra import topics as topic_admin
from auditstream.stream_jobs import quiet_logs
from auditstream.stream_jobs.faust_transport import GatedFlowControl, Transport

log = logging.getLogger(__name__)

BROKER_RETRY_SECONDS = 2.0


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap_servers.split(",") if host.strip()]


class Worker(faust.Worker):
    """``faust.Worker`` without the terminal spinner.

    To spin on every log record, Faust's worker sets the *root logger* to DEBUG (only its
    handler filters at ``loglevel``): every ``log.debug`` call in aiokafka and Faust, several
    per message sent, then builds a record that is thrown away (a few % of the worker's CPU).
    Without the spinner, the root logger stays at ``loglevel``.
    """

    started = False
    """True once every agent runs (tables recovered): the worker's ``/readyz``."""

    def on_setup_root_logger(self, logger: Any, level: int) -> None:
        self.spinner = None
        quiet_logs.install(list(logger.handlers))

    async def on_startup_finished(self) -> None:
        self.started = True
        await super().on_startup_finished()


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


class App(faust.App):
    """``faust.App`` with our transport (``faust_transport``) and a start that waits for Kafka.

    Before anything connects, the first start waits until a broker answers (one log line
    every 30 s says so and what to check; the worker keeps trying rather than exiting) and
    reads the replication factor Faust should give its own topics: ours, or the broker's
    ``default.replication.factor`` (Faust needs a number).
    """

    def __init__(self, id: str, *, settings: Settings, **options: Any) -> None:
        super().__init__(id, **options)
        self.settings = settings
        self.before_commit: list[Callable[[], None]] = []
        """Called (in order) at the start of every offset commit, before Faust computes the
        offsets: write-back caches of table state flush here (``detect``), so no offset is
        committed ahead of the state changes of the events before it."""

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)

    @cached_property
    def flow_control(self) -> GatedFlowControl:
        return GatedFlowControl(loop=self.loop)

    async def on_first_start(self) -> None:
        await super().on_first_start()
        replicas = await wait_for_broker(self.settings)
        self.conf.topic_replication_factor = replicas


def replication_factor(settings: Settings, timeout: float = 10.0) -> int:
    """What Faust's topics get: ``AUDITSTREAM_REPLICATION_FACTOR``, else the broker default.
    Raises ``KafkaException`` when no broker answers."""
    kafka = settings.kafka
    # librdkafka would print every failed connection attempt (20 a second) to stderr: the
    # caller says once that Kafka is unreachable, so its own log stays silent.
    config = {**kafka.security.librdkafka(), "log_level": "0"}
    default = topic_admin.default_replication_factor(kafka.bootstrap_servers, config, timeout)
    configured = settings.topics.replication_factor
    return default if configured is None else configured


async def wait_for_broker(settings: Settings, retry_seconds: float = BROKER_RETRY_SECONDS) -> int:
    """Until a broker answers: the replication factor for Faust's topics."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return await loop.run_in_executor(None, replication_factor, settings)
        except KafkaException as exc:
            # One line per condition every 30 s (``quiet_logs``); no traceback: expected.
            log.warning(
                "Kafka at %s is not reachable (%s); the worker keeps trying. Check that "
                "the broker runs (`auditstream kafka status`) and KAFKA_BOOTSTRAP_SERVERS.",
                settings.kafka.bootstrap_servers,
                exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else exc,
            )
            await asyncio.sleep(retry_seconds)


def create_app(settings: Settings, **overrides: Any) -> faust.App:
    """A Faust app for ``settings``; its agents are added by ``stream_jobs.worker``."""
    conf: dict[str, Any] = {
        "broker": broker_urls(settings.kafka.bootstrap_servers),
        "store": "memory://",
        "datadir": str(settings.home / "faust"),
        "topic_partitions": settings.topics.partitions,
        # Replaced at start by the configured or the broker's default (``App``); a number
        # until then, as Faust requires.
        "topic_replication_factor": settings.topics.replication_factor or 1,
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
    return App(f"{settings.app_id}-worker", settings=settings, **conf)
