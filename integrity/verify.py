"""Recompute the hash chains and hold them against the signed checkpoints.

Pure logic (``verify_chain``, ``verify_records``) plus the store reader (``read_records``).
A chain is walked from its highest signed head backwards along ``chain_prev`` links, by
*claimed* hash (the ``record_hash`` column), so the walk finds each record's true position
even when somebody changed the ``chain_seq`` column. Each record on the walk is then judged:

* recomputed hash == claimed, at its true position: intact;
* recomputed with its true position instead of the stored one == claimed: **reordered**
  (moved from that position to the stored one);
* otherwise: **modified**;
* a link that leads to no record: **deleted** (the records between it and the next record
  found below), unless the chain's day is past the retention horizon that the signed
  retention checkpoints allow: then **expired**;
* a record the walk never reaches (another row at a taken position, a row with no chain
  link, a row whose claimed hash nothing points at): **inserted**;
* records above the highest head (or in a chain no checkpoint signs) are **pending**
  ("not yet checkpointed": stored after the last checkpoint) when they may be: received
  after ``signed_by`` (the last signed checkpoint of the log less the checkpoint interval and
  a grace, ``pending_cutoff``) and not in the future. They are checked for self-consistency
  only. Older ones should have been signed by then: **inserted**.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from auditstream.integrity.chain import ChainKey
from auditstream.integrity.checkpoints import HEAD_TYPES, Doc, iter_type, retirements, valid
from auditstream.schemas.event import format_ts
from auditstream.schemas.record import (
    FIELD_NAMES,
    GENESIS,
    RECORD_FIELDS,
    canonical,
    canonical_time,
    chain_day,
    record_hash,
    select_expression,
)

FindingKind = Literal["modified", "deleted", "inserted", "reordered", "checkpoint"]
Record = dict[str, Any]
"""A stored event as ``canonical`` takes it, plus ``record_hash`` (the claimed hash)."""


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    tenant: str
    detail: str
    partition: int | None = None
    day: str | None = None
    seq: int | None = None
    event_id: str | None = None

    def line(self) -> str:
        where = ""
        if self.partition is not None:
            where = f" chain {self.tenant}/p{self.partition}/{self.day}"
        if self.seq is not None:
            where += f" seq {self.seq}"
        if self.event_id:
            where += f" event {self.event_id}"
        return f"{self.kind.upper()}{where}: {self.detail}"


@dataclass
class ChainResult:
    key: ChainKey
    records: int = 0
    verified: int = 0
    pending: int = 0
    expired: int = 0
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Report:
    chains: list[ChainResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    checkpoints: int = 0
    horizon: datetime | None = None

    @property
    def ok(self) -> bool:
        return not self.all_findings()

    def all_findings(self) -> list[Finding]:
        return self.findings + [f for c in self.chains for f in c.findings]

    def total(self, name: str) -> int:
        return sum(int(getattr(c, name)) for c in self.chains)


def _event(r: Record) -> str:
    return str(r["event_id"])


def verify_chain(
    key: ChainKey,
    records: Sequence[Record],
    anchors: Mapping[int, str],
    expirable: bool = False,
    signed_by: datetime | None = None,
    latest: datetime | None = None,
) -> ChainResult:
    """One chain's records (any order) against its signed heads (seq -> hash). Records
    above the highest head are pending if received in ``[signed_by, latest]`` (either None:
    no bound), inserted otherwise."""
    tenant, partition, day = key
    out = ChainResult(key, records=len(records))

    def finding(kind: FindingKind, detail: str, seq: int | None, event: str | None = None) -> None:
        out.findings.append(Finding(kind, tenant, detail, partition, day, seq, event))

    recomputed = [record_hash(r) for r in records]
    by_claim: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_claim.setdefault(str(r["record_hash"]), []).append(i)
    reached: set[int] = set()

    def judge(i: int, true_seq: int) -> None:
        r = records[i]
        claimed = str(r["record_hash"])
        if recomputed[i] == claimed:
            return
        if int(r["chain_seq"]) != true_seq and record_hash({**r, "chain_seq": true_seq}) == claimed:
            finding(
                "reordered",
                f"stored at position {r['chain_seq']}, signed at position {true_seq}",
                true_seq,
                _event(r),
            )
            return
        finding("modified", "its content no longer matches its hash", true_seq, _event(r))

    def pick(claim: str) -> int | None:
        """The record holding ``claim`` (the intact one if several do)."""
        found = [i for i in by_claim.get(claim, []) if i not in reached]
        if not found:
            return None
        intact = [i for i in found if recomputed[i] == claim]
        return (intact or found)[0]

    def missing(lo: int, hi: int, before: str) -> None:
        count = hi - lo + 1
        if count <= 0:
            return
        if expirable:
            out.expired += count
            return
        span = f"{lo}" if lo == hi else f"{lo}-{hi}"
        finding("deleted", f"{count} record(s) at position {span} missing ({before})", lo)

    top = max(anchors) if anchors else 0
    # Pending: records above the highest signed head (stored since the last checkpoint).
    for i, r in enumerate(records):
        if int(r["chain_seq"]) > top:
            reached.add(i)
            received = _received(r)
            if (signed_by is not None and received < signed_by) or (
                latest is not None and received > latest
            ):
                finding(
                    "inserted",
                    f"above the chain's signed head{' (no checkpoint signs it)' if not top else ''}"
                    f", received {format_ts(received)}, "
                    + (
                        "after the verification time"
                        if latest is not None and received > latest
                        else "before the last checkpoint could have missed it"
                    ),
                    int(r["chain_seq"]),
                    _event(r),
                )
                continue
            out.pending += 1
            if recomputed[i] != str(r["record_hash"]):
                finding(
                    "modified",
                    "its content no longer matches its hash",
                    int(r["chain_seq"]),
                    _event(r),
                )
    if top:
        seq, claim = top, anchors[top]
        while seq >= 1:
            at = pick(claim)
            if at is None:
                # A link to nothing: resume at the highest record below not reached yet.
                below = [
                    j
                    for j, r in enumerate(records)
                    if j not in reached and 0 < int(r["chain_seq"]) < seq
                ]
                if not below:
                    missing(1, seq, "the chain's start is gone")
                    break
                j = max(below, key=lambda k: _rank(records[k], recomputed[k]))
                resume = int(records[j]["chain_seq"])
                missing(resume + 1, seq, f"the record below is event {_event(records[j])}")
                seq, claim = resume, str(records[j]["record_hash"])
                continue
            reached.add(at)
            out.verified += 1
            judge(at, seq)
            # A day partly past the horizon may have lost its head and grown again from
            # an earlier record (a late event): older signed heads then disagree, legitimately.
            if seq in anchors and anchors[seq] != claim and not expirable:
                finding(
                    "modified", "the chain differs from a signed head", seq, _event(records[at])
                )
            prev = str(records[at]["chain_prev"])
            if seq == 1:
                if prev != GENESIS:
                    finding("modified", "the chain's first record has a predecessor", 1, None)
                break
            seq, claim = seq - 1, prev
    for i, r in enumerate(records):
        if i in reached:
            continue
        seq_value = int(r["chain_seq"])
        detail = (
            "a record in no chain (no chain link)"
            if seq_value == 0
            else f"claims position {seq_value}, but no signed link leads to it"
        )
        finding("inserted", detail, seq_value or None, _event(r))
    return out


def _received(r: Record) -> datetime:
    return datetime.fromisoformat(canonical_time(r["received_at"]).replace("Z", "+00:00"))


PENDING_GRACE = timedelta(minutes=5)
"""How late after its checkpoint interval a sink may sign a record it stored (a slow write,
a loaded machine, a short backlog)."""


def pending_cutoff(
    docs: Iterable[Doc],
    public_keys: Mapping[str, Any],
    interval: float,
    grace: timedelta = PENDING_GRACE,
) -> datetime | None:
    """Records received before this should be signed: the last signed ``heads`` checkpoint
    of the whole log (any tenant: the sink signs every chain that moved in one round) less
    the checkpoint interval and ``grace``. None: no checkpoint yet."""
    docs = list(docs)
    retired = retirements(docs, public_keys)
    times = [
        _parse(str(d["at"])) for d in iter_type(docs, "heads") if valid(d, public_keys, retired)
    ]
    if not times:
        return None
    return max(times) - timedelta(seconds=interval) - grace


def _rank(r: Record, recomputed: str) -> tuple[int, bool]:
    return int(r["chain_seq"]), recomputed == str(r["record_hash"])


def retention_horizon(docs: Iterable[Doc], table: str, now: datetime) -> datetime | None:
    """The latest moment before which rows may have expired, by the signed retention
    checkpoints alone (None: none signed)."""
    periods = sorted(
        (_parse(str(d["at"])), int(d["days"]))
        for d in iter_type(docs, "retention")
        if d.get("table") == table
    )
    horizon: datetime | None = None
    for n, (_at, days) in enumerate(periods):
        end = periods[n + 1][0] if n + 1 < len(periods) else now
        reach = end - timedelta(days=days)
        horizon = reach if horizon is None or reach > horizon else horizon
    return horizon


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def anchors_of(
    docs: Iterable[Doc], public_keys: Mapping[str, Any], tenant: str | None = None
) -> tuple[dict[ChainKey, dict[int, str]], list[Finding], int]:
    """Signed heads by chain; a checkpoint whose signature fails is a finding."""
    docs = list(docs)
    retired = retirements(docs, public_keys)
    out: dict[ChainKey, dict[int, str]] = {}
    findings: list[Finding] = []
    count = 0
    for doc in (d for d in docs if d.get("type") in HEAD_TYPES):
        doc_tenant = str(doc.get("tenant"))
        if tenant is not None and doc_tenant != tenant:
            continue
        count += 1
        if not valid(doc, public_keys, retired):
            kid = str(doc.get("key_id"))
            why = (
                f"was signed by key {kid} after its retirement at {retired[kid]}"
                if kid in retired and valid(doc, public_keys)
                else f"(key {kid}) has no valid signature from a known key"
            )
            findings.append(
                Finding("checkpoint", doc_tenant, f"checkpoint of {doc.get('at')} {why}")
            )
            continue
        for head in doc.get("heads", []):
            key = (doc_tenant, int(head["partition"]), str(head["day"]))
            out.setdefault(key, {})[int(head["seq"])] = str(head["hash"])
    return out, findings, count


def verified_retention(docs: Iterable[Doc], public_keys: Mapping[str, Any]) -> list[Doc]:
    docs = list(docs)
    retired = retirements(docs, public_keys)
    return [d for d in iter_type(docs, "retention") if valid(d, public_keys, retired)]


@dataclass(frozen=True)
class Proof:
    """What the checkpoints establish, their signatures checked once."""

    anchors: dict[ChainKey, dict[int, str]]
    findings: list[Finding]
    checkpoints: int
    horizon: datetime | None


def prove(
    docs: Sequence[Doc],
    public_keys: Mapping[str, Any],
    tenant: str | None = None,
    table: str = "audit_events",
    now: datetime | None = None,
) -> Proof:
    anchors, findings, count = anchors_of(docs, public_keys, tenant)
    horizon = retention_horizon(
        verified_retention(docs, public_keys), table, now or datetime.now(UTC)
    )
    return Proof(anchors, findings, count, horizon)


def verify_records(
    records: Iterable[Record],
    docs: Sequence[Doc] | Proof,
    public_keys: Mapping[str, Any] | None = None,
    *,
    tenant: str | None = None,
    days: tuple[str, str] | None = None,
    now: datetime | None = None,
    allow_unchained: Mapping[str, int] | None = None,
    signed_by: datetime | None = None,
) -> Report:
    """Every chain of ``records`` (and every chain the checkpoints name in ``days``,
    ``(first, last)`` inclusive) against the checkpoints (``docs`` and the ``public_keys``
    that sign them, or their ``Proof``). Unchained rows beyond ``allow_unchained`` (per
    tenant; None: none allowed) are reported as inserted. With ``signed_by``
    (``pending_cutoff``), unsigned records received before it, or after ``now`` plus
    ``PENDING_GRACE``, are inserted, not pending."""
    proof = docs if isinstance(docs, Proof) else prove(docs, public_keys or {}, tenant, now=now)
    anchors = proof.anchors
    chains: dict[ChainKey, list[Record]] = {}
    unchained: dict[str, list[Record]] = {}
    for r in records:
        if int(r["chain_seq"]) == 0:
            unchained.setdefault(str(r["tenant_id"]), []).append(r)
            continue
        key = (str(r["tenant_id"]), int(r["kafka_partition"]), chain_day(r["occurred_at"]))
        chains.setdefault(key, []).append(r)
    for key in anchors:
        if days is None or days[0] <= key[2] <= days[1]:
            chains.setdefault(key, [])
    report = Report(
        findings=list(proof.findings), checkpoints=proof.checkpoints, horizon=proof.horizon
    )
    horizon = proof.horizon
    for key in sorted(chains):
        start = datetime.fromisoformat(key[2]).replace(tzinfo=UTC)
        expirable = horizon is not None and start < horizon
        latest = (now or datetime.now(UTC)) + PENDING_GRACE if signed_by is not None else None
        report.chains.append(
            verify_chain(key, chains[key], anchors.get(key, {}), expirable, signed_by, latest)
        )
    allowed = allow_unchained or {}
    for t, rows in sorted(unchained.items()):
        if len(rows) <= allowed.get(t, 0):
            continue
        for r in rows:
            report.findings.append(
                Finding("inserted", t, "a record in no chain (no chain link)", event_id=_event(r))
            )
    return report


def merge(reports: Iterable[Report]) -> Report:
    """Reports of consecutive windows of one tenant: the checkpoints' own findings once."""
    out = Report()
    for n, r in enumerate(reports):
        out.chains.extend(r.chains)
        out.findings.extend(f for f in r.findings if n == 0 or f.kind != "checkpoint")
        out.checkpoints, out.horizon = r.checkpoints, r.horizon
    return out


# -- reading the store --------------------------------------------------------------------
COLUMNS: tuple[str, ...] = (*FIELD_NAMES, "record_hash")
SELECT_LIST = ", ".join([*(select_expression(f) for f in RECORD_FIELDS), "record_hash"])

Query = Callable[[str], list[list[Any]]]
"""Runs one read-only statement (``sinks.query.run(...).rows``)."""


def as_record(row: Sequence[Any]) -> Record:
    return dict(zip(COLUMNS, row, strict=True))


def read_records(
    run: Query,
    database: str,
    tenant: str,
    lo: datetime,
    hi: datetime,
    literal: Callable[[str], str],
    chained: bool = False,
) -> list[Record]:
    """A tenant's stored events with ``lo <= occurred_at < hi`` (``chained``: only rows with
    a chain link)."""
    rows = run(
        f"SELECT {SELECT_LIST} FROM `{database}`.`audit_events` "
        f"WHERE tenant_id = {literal(tenant)} "
        + ("AND chain_seq > 0 " if chained else "")
        + f"AND occurred_at >= fromUnixTimestamp64Milli({_ms(lo)}, 'UTC') "
        f"AND occurred_at < fromUnixTimestamp64Milli({_ms(hi)}, 'UTC') "
        "ORDER BY kafka_partition, chain_seq"
    )
    return [as_record(r) for r in rows]


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def canonical_record(r: Record) -> dict[str, Any]:
    """The record as exported (canonical values, with its claimed hash)."""
    return {**canonical(r), "record_hash": str(r["record_hash"])}
