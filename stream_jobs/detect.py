"""Detector agents: normalized events -> detection engine -> alert topic.

Actor-scoped detectors read the normalized topic directly: it is keyed by tenant and actor,
so each actor's state lives in one partition, in a Faust table whose changelog restores it
after a restart. IP-scoped detectors read the events they look at regrouped by tenant and
source IP: the actor agent forwards those to a repartition topic keyed by IP. Alerts are
keyed by tenant; their ids are stable and repeats are suppressed in table state, so a restart
does not re-send them.

Per event the agents decode the normalized JSON without validating it again (``trusted``).
State is written back once per commit interval, not per batch (``WriteBack``): each changed
key's latest value goes to the changelog once, just before Faust commits the offsets of the
events that changed it (``App.before_commit``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from pydantic import ValidationError

from auditstream.config import Settings
from auditstream.detectors.base import Scope
from auditstream.detectors.engine import DetectionEngine
from auditstream.schemas.alert import Alert
from auditstream.schemas.event import AuditEvent
from auditstream.stream_jobs import trusted

log = logging.getLogger(__name__)


@dataclass
class DetectStats:
    events: int = 0
    alerts: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    unreadable: int = 0


def _decode(value: bytes) -> AuditEvent | None:
    """The normalizer wrote it canonical: decode it as such (``trusted``), else validate."""
    try:
        return trusted.decode(value)
    except trusted.NotCanonical:
        pass
    try:
        return AuditEvent.model_validate_json(value)
    except ValidationError:
        log.exception("unreadable event on the normalized topic; skipped")
        return None


def state_key(tenant_id: str, subject: str) -> str:
    """JSON, so no tenant or subject id can forge another key (e.g. a tenant-wide one)."""
    return json.dumps(["s", tenant_id, subject])


def tenant_key(tenant_id: str, partition: int) -> str:
    """Tenant-wide state is kept per partition: each holds its own sample of the tenant."""
    return json.dumps(["t", tenant_id, partition])


def repartition_topic(normalized: str) -> str:
    """The by-IP topic: the name Faust's ``group_by(name="by-ip")`` gave it before, so a
    deployment's topic and its unread messages carry over."""
    return f"detect-ip-{normalized}-by-ip-repartition"


def register(app: faust.App, settings: Settings, engine: DetectionEngine) -> DetectStats:
    topics = settings.topics
    source = app.topic(topics.normalized, key_serializer="raw", value_serializer="raw")
    alerts = app.topic(topics.alerts, key_serializer="raw", value_serializer="raw")
    by_ip = app.topic(
        repartition_topic(topics.normalized),
        partitions=topics.partitions,
        internal=True,
        key_serializer="raw",
        value_serializer="raw",
    )
    stats = DetectStats()

    async def publish(found: list[Alert]) -> None:
        for alert in found:
            await alerts.send(key=alert.tenant_id.encode(), value=alert.model_dump_json().encode())
            stats.alerts += 1
            stats.by_rule[alert.rule] = stats.by_rule.get(alert.rule, 0) + 1

    def detect_one(
        table: Any, event: Any, audit: AuditEvent, scope: Scope, changed: WriteBack
    ) -> list[Alert]:
        subject = audit.actor.id if scope is Scope.ACTOR else audit.ip
        if subject is None:
            return []
        partition = event.message.partition
        key = state_key(audit.tenant_id, subject)
        shared_key = tenant_key(audit.tenant_id, partition)
        state = changed.get(table, key)
        shared = changed.get(table, shared_key)
        try:
            return engine.process(audit, state, scope, shared)
        finally:  # always marked (``WriteBack``): memory and changelog must agree
            changed.mark(table, key, partition, state)
            changed.mark(table, shared_key, partition, shared)

    def state_table(scope: Scope) -> Any:
        return app.Table(
            f"detector-state-{scope.value}",
            default=dict,
            partitions=topics.partitions,
            key_type=str,
            # No value_type: values are plain JSON. (value_type=dict breaks changelog
            # recovery: Faust then expects a Record class and calls dict.from_data.)
        )

    def detect(
        table: Any, event: Any, audit: AuditEvent, scope: Scope, changed: WriteBack
    ) -> list[Alert]:
        if not engine.wants(audit, scope):
            return []
        try:
            return detect_one(table, event, audit, scope, changed)
        except Exception:  # a detector bug must not stall the stream
            log.exception("detection failed for event %s", audit.event_id)
            return []

    actor_table = state_table(Scope.ACTOR) if engine.has(Scope.ACTOR) else None
    ip_table = state_table(Scope.IP) if engine.has(Scope.IP) else None
    changed = WriteBack()
    before_commit = getattr(app, "before_commit", None)
    if before_commit is not None:
        before_commit.append(changed.flush)
    else:  # a plain faust.App (tests' probes): no commit hook, so write back per batch
        changed.per_batch = True

    async def detect_normalized(stream: faust.StreamT[bytes]) -> None:
        """Actor-scoped detection, and regrouping by IP of what IP detectors look at.

        Only events an IP-scoped detector wants (about 1% of traffic) go through the
        by-IP topic. (``stream.filter(...).group_by(...)`` would not do it: Faust moves the
        filter behind the repartitioning, so every event made the trip.)
        """
        batches = cast(faust.Stream[bytes], stream).take_events
        async for batch in batches(200, within=0.05):
            found: list[Alert] = []
            for event in batch:
                stats.events += 1
                audit = _decode(event.message.value or b"")
                if audit is None:
                    stats.unreadable += 1
                    continue
                if ip_table is not None and audit.ip is not None and engine.wants(audit, Scope.IP):
                    await by_ip.send(
                        key=state_key(audit.tenant_id, audit.ip).encode(),
                        value=event.message.value,
                    )
                if actor_table is not None:
                    found.extend(detect(actor_table, event, audit, Scope.ACTOR, changed))
            changed.batch_done(alerted=bool(found))
            await publish(found)

    async def detect_by_ip(stream: faust.StreamT[bytes]) -> None:
        batches = cast(faust.Stream[bytes], stream).take_events
        async for batch in batches(200, within=0.05):
            found: list[Alert] = []
            for event in batch:
                audit = _decode(event.message.value or b"")
                if audit is None:
                    stats.unreadable += 1
                    continue
                found.extend(detect(ip_table, event, audit, Scope.IP, changed))
            changed.batch_done(alerted=bool(found))
            await publish(found)

    if actor_table is not None or ip_table is not None:
        app.agent(source, name="detect-actor")(detect_normalized)
    if ip_table is not None:
        app.agent(by_ip, name="detect-ip")(detect_by_ip)
    return stats


class WriteBack:
    """Detector state changed since the last commit, written to the changelog at the next.

    Values are dicts changed in place, so the table in memory is current all along; only
    the changelog waits. ``flush`` sends each changed key's latest value once, to the
    changelog partition of the events that changed it (a key's events all come from one
    partition), and runs at the start of every offset commit (``App.before_commit``): the
    messages are then in the producer's buffer, which Faust flushes before committing. So
    a committed offset never runs ahead of the state its events made, and a key changed by
    every event of a second is written once a second, not once per batch.

    A new key (the table's default) is put in memory at once, without a changelog message,
    so the next event reads the same dict. A value is kept here by reference until it is
    flushed, so a revocation that drops a partition's keys from memory before its commit
    still writes them.
    """

    def __init__(self) -> None:
        self.pending: dict[tuple[int, str], tuple[Any, int, dict[str, Any]]] = {}
        self.per_batch = False
        self.flushed_keys = 0
        """Changelog messages written (for the benchmark and tests)."""

    def get(self, table: Any, key: str) -> dict[str, Any]:
        entry = self.pending.get((id(table), key))
        if entry is not None:
            return entry[2]
        value: dict[str, Any] | None = table.data.get(key)
        if value is None:
            value = {}
            table.data[key] = value
        return value

    def mark(self, table: Any, key: str, partition: int, value: dict[str, Any]) -> None:
        self.pending[(id(table), key)] = (table, partition, value)

    def batch_done(self, alerted: bool = False) -> None:
        """After a batch. One that raised alerts flushes before they are published: the
        state that suppresses their repeats reaches the changelog first, so a crash before
        the next commit does not send them again after the restart (alerts are rare; the
        state of the other batches waits for the commit)."""
        if self.per_batch or alerted:
            self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        for (_, key), (table, partition, value) in pending.items():
            table.send_changelog(partition, key, value)
        self.flushed_keys += len(pending)
