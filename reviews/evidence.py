"""What a report says about the log itself: completeness (``auditstream reconcile`` and
``auditstream verify`` for the period) and the fingerprint of the key that signs it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization

from auditstream.config import Settings
from auditstream.reviews.report import Completeness


def key_fingerprint(settings: Settings) -> str:
    """``<key id> SHA256:<hex>`` of the current checkpoint-signing public key ('' if none)."""
    from auditstream.integrity.keys import KeyFileError, KeyStore

    try:
        key = KeyStore.at_home(settings.home).current(create=False)
    except KeyFileError:
        return ""
    raw = key.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    digest = hashlib.sha256(raw).hexdigest()
    return f"{key.key_id} SHA256:" + ":".join(digest[i : i + 4] for i in range(0, 64, 4))


def verification(
    settings: Settings,
    run_sql: Callable[[str], Sequence[Sequence[Any]]],
    tenant: str,
    lo: datetime,
    hi: datetime,
) -> tuple[str, tuple[str, ...]]:
    from auditstream.integrity import audit

    try:
        docs, keys = audit.load_material(settings)
        if not keys:
            return "not run: no public key (start the sink once)", ()
        reports = audit.verify_store(
            lambda sql: [list(r) for r in run_sql(sql)],
            settings.clickhouse.database, docs, keys, tenant=tenant, lo=lo, hi=hi,
        )  # fmt: skip
    except Exception as exc:  # the report says verification did not run, and why
        return f"not run: {exc}", ()
    report = reports.get(tenant)
    if report is None:
        return "OK", ("no events and no checkpoints",)
    detail = [
        f"{len(report.chains)} chains, {report.total('records')} records, "
        f"{report.total('verified')} verified"
        + (f", {report.total('expired')} expired" if report.total("expired") else "")
        + (f", {report.total('pending')} not yet checkpointed" if report.total("pending") else "")
    ]
    detail += [f.line() for f in report.all_findings()[:50]]
    return ("OK" if report.ok else "TAMPERED"), tuple(detail)


def reconciliation(settings: Settings, lo: datetime, hi: datetime) -> tuple[str, tuple[str, ...]]:
    from auditstream.integrity.reconcile import describe_runs
    from auditstream.integrity.run import Selection, reconcile, summary

    try:
        reports = reconcile(
            settings,
            Selection(from_millis=int(lo.timestamp() * 1000), to_millis=int(hi.timestamp() * 1000)),
        )
    except Exception as exc:  # the broker or the store away: say so in the report
        return f"not run: {exc}", ()
    t = summary(reports)
    detail = [
        f"{t['messages']} raw messages: {t['stored']} stored, {t['dead_lettered']} "
        f"dead-lettered, {t['repeats']} repeats, {t['in_flight']} in flight"
    ]
    for r in reports:
        if r.missing:
            detail.append(
                f"partition {r.range.partition}: missing offsets {describe_runs(r.missing)}"
            )
        for offset, places in r.multiple[:20]:
            where = ", ".join(p.value for p in places)
            detail.append(f"partition {r.range.partition}: offset {offset} is in {where}")
    bad = t["missing"] or t["multiple"] or t["expired_unprocessed"]
    verdict = "GAPS" if bad else ("IN FLIGHT" if t["in_flight"] else "OK")
    return verdict, tuple(detail)


def completeness(
    settings: Settings,
    run_sql: Callable[[str], Sequence[Sequence[Any]]],
    tenant: str,
    lo: datetime,
    hi: datetime,
) -> Completeness:
    v, vd = verification(settings, run_sql, tenant, lo, hi)
    r, rd = reconciliation(settings, lo, hi)
    return Completeness(v, vd, r, rd)
