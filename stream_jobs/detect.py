"""Detector agents: normalized events -> detection engine -> alert topic.

Actor-scoped detectors read the normalized topic directly: it is keyed by tenant and actor,
so each actor's state lives in one partition, in a Faust table whose changelog restores it
after a restart. IP-scoped detectors read the same events regrouped by tenant and source IP
(Faust's ``group_by`` through a repartition topic). Alerts are keyed by tenant; their ids
are stable and repeats are suppressed in table state, so a restart does not re-send them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from pydantic import ValidationError

from auditstream.config import Settings
from auditstream.detectors.base import Scope
from auditstream.detectors.engine import DetectionEngine
from auditstream.schemas.alert import Alert
from auditstream.schemas.event import AuditEvent
from auditstream.stream_jobs.faust_context import make_current

log = logging.getLogger(__name__)


@dataclass
class DetectStats:
    events: int = 0
    alerts: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    unreadable: int = 0


def _decode(value: bytes) -> AuditEvent | None:
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
    """The by-IP repartition topic's name (after the app id prefix) that ``group_by`` makes."""
    return f"detect-ip-{normalized}-by-ip-repartition"


def register(app: faust.App, settings: Settings, engine: DetectionEngine) -> DetectStats:
    topics = settings.topics
    source = app.topic(topics.normalized, key_serializer="raw", value_serializer="raw")
    alerts = app.topic(topics.alerts, key_serializer="raw", value_serializer="raw")
    stats = DetectStats()

    async def publish(found: list[Alert]) -> None:
        for alert in found:
            await alerts.send(key=alert.tenant_id.encode(), value=alert.model_dump_json().encode())
            stats.alerts += 1
            stats.by_rule[alert.rule] = stats.by_rule.get(alert.rule, 0) + 1

    def detect_one(table: Any, event: Any, audit: AuditEvent, scope: Scope) -> list[Alert]:
        subject = audit.actor.id if scope is Scope.ACTOR else audit.ip
        if subject is None:
            return []
        make_current(event)
        key = state_key(audit.tenant_id, subject)
        shared_key = tenant_key(audit.tenant_id, event.message.partition)
        state = table[key]
        shared = table[shared_key]
        try:
            return engine.process(audit, state, scope, shared)
        finally:  # always write back: memory and changelog must agree
            table[key] = state
            table[shared_key] = shared

    def agent_for(scope: Scope, stream_of: Callable[[Any], Any]) -> None:
        table = app.Table(
            f"detector-state-{scope.value}",
            default=dict,
            partitions=topics.partitions,
            key_type=str,
            # No value_type: values are plain JSON. (value_type=dict breaks changelog
            # recovery: Faust then expects a Record class and calls dict.from_data.)
        )

        async def detect(stream: faust.StreamT[bytes]) -> None:
            batches = cast(faust.Stream[bytes], stream_of(stream)).take_events
            async for batch in batches(200, within=0.05):
                found: list[Alert] = []
                for event in batch:
                    stats.events += 1
                    audit = _decode(event.message.value or b"")
                    if audit is None:
                        stats.unreadable += 1
                        continue
                    if not engine.wants(audit, scope):
                        continue
                    try:
                        found.extend(detect_one(table, event, audit, scope))
                    except Exception:  # a detector bug must not stall the stream
                        log.exception("detection failed for event %s", audit.event_id)
                await publish(found)

        app.agent(source, name=f"detect-{scope.value}")(detect)

    if engine.has(Scope.ACTOR):
        agent_for(Scope.ACTOR, lambda stream: stream)
    if engine.has(Scope.IP):

        def by_ip(stream: Any) -> Any:
            return stream.filter(_has_ip).group_by(_ip_key, name="by-ip")

        agent_for(Scope.IP, by_ip)
    return stats


def _has_ip(value: bytes) -> bool:
    return b'"ip":"' in value  # normalized events omit absent fields, never "ip":null


def _ip_key(value: bytes) -> bytes:
    audit = AuditEvent.model_validate_json(value)
    return state_key(audit.tenant_id, audit.ip or "").encode()
