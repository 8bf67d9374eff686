"""Create the pipeline's topics when missing; find and delete a run's topics."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from auditstream.config import Topics

DAY_MS = 24 * 3600 * 1000
BROKER_DEFAULT = -1
"""A replication factor of -1 in CreateTopics: the broker's ``default.replication.factor``."""


def _admin(bootstrap_servers: str, security: Mapping[str, str] | None) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers, **(security or {})})


def ensure_topics(
    bootstrap_servers: str,
    topics: Topics,
    replication: int | None = None,
    security: Mapping[str, str] | None = None,
) -> list[str]:
    """Create any missing topic; returns the names created. Existing topics are left alone.
    ``replication``: replicas per topic; None: ``topics.replication_factor``, and when that is
    None too, the broker's ``default.replication.factor``.
    ``security``: librdkafka TLS / SASL settings (``KafkaSecurity.librdkafka()``)."""
    if replication is None:
        replication = topics.replication_factor
    admin = _admin(bootstrap_servers, security)
    existing = set(admin.list_topics(timeout=15).topics)
    wanted = {
        topics.raw: {"retention.ms": str(7 * DAY_MS)},
        topics.normalized: {"retention.ms": str(7 * DAY_MS)},
        topics.dead_letter: {"retention.ms": str(30 * DAY_MS)},
        topics.repeats: {"retention.ms": str(30 * DAY_MS)},
        topics.alerts: {"retention.ms": str(30 * DAY_MS)},
    }
    # Checkpoints: kept forever, in one partition (one order for an auditor to read).
    wanted[topics.checkpoints] = {"retention.ms": "-1"}
    new = [
        NewTopic(
            name,
            num_partitions=1 if name == topics.checkpoints else topics.partitions,
            replication_factor=BROKER_DEFAULT if replication is None else replication,
            config=cfg,
        )
        for name, cfg in wanted.items()
        if name not in existing
    ]
    if not new:
        return []
    created = []
    for name, future in admin.create_topics(new, operation_timeout=15).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def ensure_topics_patiently(
    bootstrap_servers: str,
    topics: Topics,
    say: Callable[[str], None],
    security: Mapping[str, str] | None = None,
    retry_seconds: float = 5.0,
    report_seconds: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """``ensure_topics``, waiting for the cluster if it is not reachable yet.

    A service started before its broker (or during a broker restart) waits instead of
    exiting: one line through ``say`` when the wait starts and then at most every
    ``report_seconds``, never librdkafka's own line per connection attempt.
    """
    quiet = {**(security or {}), "log_level": "0"}
    started = clock()
    last_report: float | None = None
    while True:
        try:
            created = ensure_topics(bootstrap_servers, topics, security=quiet)
        except KafkaException as exc:
            now = clock()
            if last_report is None or now - last_report >= report_seconds:
                reason = exc.args[0].str() if exc.args else str(exc)
                waited = f" (waiting for {now - started:.0f} s)" if last_report is not None else ""
                say(
                    f"Kafka at {bootstrap_servers} is unreachable ({reason}){waited}; "
                    f"retrying every {retry_seconds:.0f} s. Is the broker running? "
                    "(`auditstream kafka status`, or check KAFKA_BOOTSTRAP_SERVERS)"
                )
                last_report = now
            sleep(retry_seconds)
            continue
        if last_report is not None:
            say(f"Kafka at {bootstrap_servers} is reachable again.")
        return created


def topics_with(
    bootstrap_servers: str, text: str, security: Mapping[str, str] | None = None
) -> list[str]:
    """Topics whose name contains ``text``: a run's own, its Faust app's internal ones
    (``<app>-...-changelog``) and its repartition topics (``detect-ip-<topic>-by-ip-...``)."""
    admin = _admin(bootstrap_servers, security)
    return sorted(t for t in admin.list_topics(timeout=10).topics if text in t)


def delete_topics_with(
    bootstrap_servers: str, text: str, security: Mapping[str, str] | None = None
) -> list[str]:
    """Delete every topic whose name contains ``text``; returns their names. Best effort: a
    topic already gone (or not deletable) is left to the broker."""
    names = topics_with(bootstrap_servers, text, security)
    if names:
        admin = _admin(bootstrap_servers, security)
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(KafkaException):
                future.result()
    return names


def default_replication_factor(
    bootstrap_servers: str, security: Mapping[str, str] | None = None, timeout: float = 10.0
) -> int:
    """The broker's ``default.replication.factor`` (for clients that need a number: Faust).
    Raises ``KafkaException`` when no broker answers within ``timeout``."""
    admin = _admin(bootstrap_servers, security)
    brokers = admin.list_topics(timeout=timeout).brokers
    if not brokers:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "no broker in the metadata"))
    resource = ConfigResource(ResourceType.BROKER, str(min(brokers)))
    described = admin.describe_configs([resource], request_timeout=timeout)[resource]
    entry = described.result(timeout=timeout)["default.replication.factor"]
    return int(entry.value)
