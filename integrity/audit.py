"""``auditstream verify`` and the sink's scheduled verification: the store, read-only,
against the checkpoints; failures raise a ``log_tampering`` alert.

The store is read through ``sinks.query.run`` (the running sink answers when it owns the
embedded store), one tenant and at most ``WINDOW_DAYS`` days per query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from auditstream.config import Settings
from auditstream.integrity.checkpoints import (
    CheckpointLog,
    Doc,
    iter_type,
    read_topic,
    retirements,
    valid,
)
from auditstream.integrity.keys import KeyStore
from auditstream.integrity.verify import (
    Finding,
    Query,
    Report,
    merge,
    pending_cutoff,
    prove,
    read_records,
    verify_records,
)
from auditstream.schemas.alert import Alert, Severity, content_alert_id
from auditstream.sinks.query import literal

WINDOW_DAYS = 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def day_bounds(
    lo: datetime | None, hi: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """Whole UTC days: chains are per day."""
    start = (lo or EPOCH).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end_at = (hi or now + timedelta(days=2)).astimezone(UTC)
    end = end_at.replace(hour=0, minute=0, second=0, microsecond=0)
    if end < end_at:
        end += timedelta(days=1)
    return start, end


def tenants(run: Query, database: str, docs: Sequence[Doc]) -> list[str]:
    stored = {str(r[0]) for r in run(f"SELECT DISTINCT tenant_id FROM `{database}`.`audit_events`")}
    signed = {str(d.get("tenant")) for d in iter_type(docs, "heads")}
    return sorted(stored | signed)


def first_day(run: Query, database: str, tenant: str) -> datetime | None:
    rows = run(
        "SELECT toUnixTimestamp64Milli(min(occurred_at)), count() "
        f"FROM `{database}`.`audit_events` WHERE tenant_id = {literal(tenant)}"
    )
    if not rows or not int(rows[0][1]):
        return None
    return EPOCH + timedelta(milliseconds=int(rows[0][0]))


def unchained_allowance(docs: Sequence[Doc], keys: Mapping[str, Any]) -> dict[str, int]:
    """Rows stored before tamper evidence, as the first signed retention checkpoint counted."""
    retired = retirements(docs, keys)
    for d in iter_type(docs, "retention"):
        if d.get("source") == "initial" and valid(d, keys, retired):
            return {str(k): int(v) for k, v in (d.get("unchained") or {}).items()}
    return {}


def verify_store(
    run: Query,
    database: str,
    docs: Sequence[Doc],
    keys: Mapping[str, Any],
    *,
    tenant: str | None = None,
    lo: datetime | None = None,
    hi: datetime | None = None,
    progress: Callable[[str], None] = lambda _: None,
    now: datetime | None = None,
    checkpoint_seconds: float = 60.0,
) -> dict[str, Report]:
    """A report per tenant, read and verified one UTC day (one set of chains) at a time, so
    memory and each query's result stay bounded by a day of one tenant. Unsigned records
    the checkpoints should have signed by now (``pending_cutoff``) are insertions."""
    now = now or datetime.now(UTC)
    allowance = unchained_allowance(docs, keys)
    signed_by = pending_cutoff(docs, keys, checkpoint_seconds)
    out: dict[str, Report] = {}
    for t in [tenant] if tenant is not None else tenants(run, database, docs):
        proof = prove(docs, keys, t, now=now)
        signed_days = sorted(k[2] for k in proof.anchors)
        earliest = first_day(run, database, t)
        candidates = [x for x in (earliest, _day(signed_days[0]) if signed_days else None) if x]
        start, end = day_bounds(lo or (min(candidates) if candidates else now), hi, now)
        reports: list[Report] = []
        cursor = start
        while cursor < end:
            step = cursor + timedelta(days=WINDOW_DAYS)
            day = cursor.strftime("%Y-%m-%d")
            progress(f"{t}: {day}")
            records = read_records(run, database, t, cursor, step, literal, chained=True)
            reports.append(
                verify_records(
                    records, proof, tenant=t, days=(day, day), now=now, signed_by=signed_by
                )
            )
            cursor = step
        report = merge(reports)
        report.findings.extend(unchained_findings(run, database, t, allowance.get(t, 0), lo, hi))
        out[t] = report
    return out


def unchained_findings(
    run: Query,
    database: str,
    tenant: str,
    allowed: int,
    lo: datetime | None,
    hi: datetime | None,
    limit: int = 1000,
) -> list[Finding]:
    """Rows with no chain link beyond those stored before tamper evidence: inserted."""
    where = f"tenant_id = {literal(tenant)} AND chain_seq = 0"
    total = int(run(f"SELECT count() FROM `{database}`.`audit_events` WHERE {where}")[0][0])
    if total <= allowed:
        return []
    if lo is not None:
        where += (
            f" AND occurred_at >= fromUnixTimestamp64Milli({int(lo.timestamp() * 1000)}, 'UTC')"
        )
    if hi is not None:
        where += f" AND occurred_at < fromUnixTimestamp64Milli({int(hi.timestamp() * 1000)}, 'UTC')"
    rows = run(
        f"SELECT toString(event_id) FROM `{database}`.`audit_events` WHERE {where} "
        f"ORDER BY occurred_at LIMIT {limit}"
    )
    note = f" ({total} such rows; {allowed} predate tamper evidence)" if allowed else ""
    return [
        Finding(
            "inserted", tenant, "a record in no chain (no chain link)" + note, event_id=str(r[0])
        )
        for r in rows
    ]


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def tampering_alert(
    tenant: str, report: Report, lo: datetime, hi: datetime, now: datetime
) -> Alert:
    findings = report.all_findings()
    kinds: dict[str, int] = {}
    for f in findings:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    return Alert(
        # The same findings found again (the next scheduled run) are the same alert.
        alert_id=content_alert_id(
            "log_tampering", tenant, "audit_events", "\n".join(sorted(f.line() for f in findings))
        ),
        rule="log_tampering",
        severity=Severity.CRITICAL,
        tenant_id=tenant,
        subject="audit_events",
        title=f"Stored audit log fails verification: {summary}",
        explanation=(
            "auditstream verify recomputed this tenant's hash chains against the signed "
            f"checkpoints and found: {summary}. First: " + "; ".join(f.line() for f in findings[:5])
        ),
        window_start=lo,
        window_end=hi,
        first_seen=now,
        last_seen=now,
        mitre_technique="T1565.001",
        mitre_name="Data Manipulation: Stored Data Manipulation",
        context={"findings": [f.line() for f in findings[:50]], "count": len(findings)},
        detected_at=now,
    )


def publish_alerts(settings: Settings, alerts: list[Alert], timeout: float = 10.0) -> int:
    """Send the alerts to the alert topic; returns how many Kafka did not acknowledge."""
    if not alerts:
        return 0
    from confluent_kafka import Producer

    producer = Producer(
        {**settings.kafka.client_config(), "enable.idempotence": True, "log_level": 0}
    )
    for alert in alerts:
        producer.produce(
            settings.topics.alerts,
            key=alert.tenant_id.encode(),
            value=orjson.dumps(alert.model_dump(mode="json")),
        )
    return int(producer.flush(timeout))


def load_material(
    settings: Settings,
    public_key_text: str | None = None,
    checkpoints: Path | None = None,
    from_topic: bool = False,
) -> tuple[list[Doc], dict[str, Any]]:
    """The checkpoints (this home's file, ``checkpoints``, or the checkpoint topic) and public
    keys (this home's, or the given PEM text)."""
    from auditstream.integrity.keys import load_public_keys

    if from_topic:
        docs = read_topic(settings.kafka.client_config(), settings.topics.checkpoints)
    else:
        log = CheckpointLog(checkpoints) if checkpoints else CheckpointLog.at_home(settings.home)
        docs = log.read()
        if checkpoints is not None and not docs:
            raise ValueError(f"no checkpoints in {checkpoints}")
    keys: dict[str, Any] = (
        dict(load_public_keys(public_key_text))
        if public_key_text is not None
        else dict(KeyStore.at_home(settings.home).public_keys())
    )
    # Keys introduced by a rotation signed with a key already trusted (before its own
    # retirement) are trusted too.
    for d in iter_type(docs, "key_rotation"):
        if valid(d, keys, retirements(docs, keys)):
            keys.update(load_public_keys(str(d["new_public_key"])))
    return docs, keys


class ScheduledVerification:
    """In the sink (``AUDITSTREAM_VERIFY_INTERVAL_SECONDS``): every interval, verify every
    tenant on an analyst session of its own (read-only), log the verdict, and raise a
    ``log_tampering`` alert per tenant that fails."""

    def __init__(self, settings: Settings, interval: float) -> None:
        import threading

        self._settings = settings
        self._interval = interval
        self.stopping = threading.Event()
        self.runs = 0
        self.failed_tenants: list[str] = []

    def once(self) -> dict[str, Report]:
        import logging

        from auditstream.sinks import query, store

        log = logging.getLogger(__name__)
        ch = self._settings.clickhouse
        docs, keys = load_material(self._settings)  # checkpoints first, then the records
        client = store.open_analyst(ch)
        try:
            reports = verify_store(
                lambda sql: query.execute(client, sql, ch.database).rows,
                ch.database,
                docs,
                keys,
                checkpoint_seconds=self._settings.integrity.checkpoint_seconds,
            )
        finally:
            client.close()
        self.runs += 1
        bad = {t: r for t, r in reports.items() if not r.ok}
        self.failed_tenants = sorted(bad)
        now = datetime.now(UTC)
        for r in bad.values():
            for f in r.all_findings()[:20]:
                log.error("log tampering: %s", f.line())
        if bad:
            lo, hi = day_bounds(None, None, now)
            alerts = [tampering_alert(t, r, lo, hi, now) for t, r in bad.items()]
            publish_alerts(self._settings, alerts)
        else:
            log.info("verification: %d tenants OK", len(reports))
        return reports

    def run(self) -> None:
        import logging

        while not self.stopping.wait(self._interval):
            try:
                self.once()
            except Exception as exc:  # the store busy or away: try again next time
                logging.getLogger(__name__).warning("scheduled verification failed: %s", exc)
