"""Verifiable exports: one tenant's events for whole UTC days, with their proof.

JSON Lines, checked offline by ``verify_export`` with nothing but the public key:

1. ``{"type": "header", "format": 1, "tenant", "from", "to", "exported_at", "chains": [...],
   "left_out": n}``: the day-chains exported, each with its signed head (``partition``,
   ``day``, ``seq``, ``hash``); ``left_out`` counts records stored after the last checkpoint
   (not provable yet, so not exported);
2. ``{"type": "record", ...}``: each record's canonical fields (``schemas/record.py``) and its
   ``record_hash``; the chain link is in the fields (``chain_seq``, ``chain_prev``);
3. ``{"type": "checkpoint", "checkpoint": {...}}``: the signed checkpoints that cover the
   chains (this tenant's heads only), the tenant's latest signed summary (every chain head:
   no signed chain can be left out unnoticed), the signed retention checkpoints, which tell a
   gap left by TTL expiry from a removed record, and the key rotations (each key's validity).

``write_export`` is the reusable part (the HTTP API's exports can call it with records it
read); ``verify_export`` recomputes every hash and link, checks every signature, and names
any record removed from, altered in, added to or moved within the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from auditstream.integrity.chain import ChainKey
from auditstream.integrity.checkpoints import (
    HEAD_TYPES,
    SUMMARY,
    Doc,
    iter_type,
    now_text,
    retirements,
    valid,
)
from auditstream.integrity.verify import Finding, Record, Report, canonical_record, verify_records
from auditstream.schemas.record import chain_day

FORMAT = 1


@dataclass(frozen=True)
class ExportSummary:
    records: int
    chains: int
    checkpoints: int
    left_out: int


def _covering(
    docs: Sequence[Doc], tenant: str, keys: Mapping[str, Any]
) -> tuple[dict[ChainKey, tuple[int, str]], dict[ChainKey, Doc]]:
    """Per chain of ``tenant``: its highest signed head, and the checkpoint that signs it."""
    retired = retirements(docs, keys)
    heads: dict[ChainKey, tuple[int, str]] = {}
    by: dict[ChainKey, Doc] = {}
    for doc in (d for d in docs if d.get("type") in HEAD_TYPES):
        if doc.get("tenant") != tenant or not valid(doc, keys, retired):
            continue
        for h in doc.get("heads", []):
            key = (tenant, int(h["partition"]), str(h["day"]))
            if key not in heads or int(h["seq"]) > heads[key][0]:
                heads[key] = (int(h["seq"]), str(h["hash"]))
                by[key] = doc
    return heads, by


def write_export(
    out: IO[bytes],
    tenant: str,
    days: tuple[str, str],
    records: Iterable[Record],
    docs: Sequence[Doc],
    keys: Mapping[str, Any],
) -> ExportSummary:
    """Write the export of ``records`` (the tenant's stored events for ``days``, first and
    last UTC day inclusive) with the checkpoints from ``docs`` that prove them."""
    heads, by = _covering(docs, tenant, keys)
    retired = retirements(docs, keys)
    kept: list[Record] = []
    left_out = 0
    chains: set[ChainKey] = set()
    for r in records:
        key = (tenant, int(r["kafka_partition"]), chain_day(r["occurred_at"]))
        if r["tenant_id"] != tenant or not days[0] <= key[2] <= days[1]:
            continue
        head = heads.get(key)
        if head is None or int(r["chain_seq"]) > head[0] or int(r["chain_seq"]) == 0:
            left_out += 1
            continue
        chains.add(key)
        kept.append(r)
    # Chains signed in the range but with no record left are exported too (as heads): a
    # reader then sees that their records are gone.
    chains |= {k for k in heads if days[0] <= k[2] <= days[1]}
    proof: dict[str, Doc] = {str(by[k]["signature"]): by[k] for k in sorted(chains)}
    summaries = [
        d for d in iter_type(docs, SUMMARY) if d.get("tenant") == tenant and valid(d, keys, retired)
    ]
    if summaries:  # the latest: every chain of the tenant, signed
        latest = max(summaries, key=lambda d: str(d["at"]))
        proof[str(latest["signature"])] = latest
    for d in docs:  # retention and key rotations (which give each key's validity window)
        if d.get("type") in ("retention", "key_rotation") and valid(d, keys, retired):
            proof[str(d["signature"])] = d
    header = {
        "type": "header",
        "format": FORMAT,
        "tenant": tenant,
        "from": days[0],
        "to": days[1],
        "exported_at": now_text(),
        "chains": [
            {"partition": k[1], "day": k[2], "seq": heads[k][0], "hash": heads[k][1]}
            for k in sorted(chains)
        ],
        "left_out": left_out,
    }
    out.write(orjson.dumps(header) + b"\n")
    kept.sort(
        key=lambda r: (chain_day(r["occurred_at"]), int(r["kafka_partition"]), int(r["chain_seq"]))
    )
    for r in kept:
        out.write(orjson.dumps({"type": "record", **canonical_record(r)}) + b"\n")
    for doc in proof.values():
        out.write(orjson.dumps({"type": "checkpoint", "checkpoint": doc}) + b"\n")
    return ExportSummary(len(kept), len(chains), len(proof), left_out)


class ExportError(ValueError):
    """The file is not an auditstream export."""


def verify_export(lines: Iterable[bytes], keys: Mapping[str, Any]) -> Report:
    """Recompute an export's chains against its signed checkpoints (``keys``: the public
    keys the auditor trusts, by id)."""
    header: dict[str, Any] | None = None
    records: list[Record] = []
    docs: list[Doc] = []
    bad: list[Finding] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad.append(Finding("modified", "?", f"line {number} is not JSON"))
            continue
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "header":
            header = item
        elif kind == "record":
            records.append({k: v for k, v in item.items() if k != "type"})
        elif kind == "checkpoint":
            docs.append(item["checkpoint"])
        else:
            bad.append(Finding("inserted", "?", f"line {number} is not part of an export"))
    if header is None or header.get("format") != FORMAT:
        raise ExportError("no auditstream export header (format 1) in the file")
    tenant = str(header["tenant"])
    retired = retirements(docs, keys)
    signed_at = [str(d["at"]) for d in docs if valid(d, keys, retired)]
    # Gaps TTL could have left are judged as of the last signed checkpoint in the file, not
    # as of today: a record removed from the file later is a removal.
    as_of = max(signed_at) if signed_at else now_text()
    report = verify_records(
        records,
        docs,
        keys,
        tenant=tenant,
        days=(str(header["from"]), str(header["to"])),
        now=datetime.fromisoformat(as_of.replace("Z", "+00:00")).astimezone(UTC),
    )
    for r in records:
        if r.get("tenant_id") != tenant:
            bad.append(
                Finding(
                    "inserted",
                    str(r.get("tenant_id")),
                    "a record of another tenant",
                    event_id=str(r.get("event_id")),
                )
            )
    report.findings.extend(bad)
    # An export holds signed records only (``write_export``): a record beyond its chain's
    # signed head, or in a chain no checkpoint signs, was added to the file. (In the store,
    # such records are "pending" until the next checkpoint; in an export they can't be.)
    for chain in report.chains:
        if chain.pending:
            _, partition, day = chain.key
            report.findings.append(
                Finding(
                    "inserted",
                    tenant,
                    f"{chain.pending} record(s) beyond the chain's signed head: an export "
                    "holds signed records only",
                    int(partition),
                    str(day),
                )
            )
    # A checkpoint signed with a tenant summary whose summary is not in the file: the file
    # was cut back (chains or records a later checkpoint signs may be left out).
    own = [d for d in docs if d.get("tenant") == tenant and valid(d, keys, retired)]
    summary_at = max((str(d["at"]) for d in own if d.get("type") == SUMMARY), default="")
    for d in own:
        if d.get("type") == "heads" and d.get("summary") and str(d["at"]) > summary_at:
            report.findings.append(
                Finding(
                    "checkpoint",
                    tenant,
                    f"the tenant summary signed with the checkpoint of {d['at']} is not in "
                    "the file: chains or records it covers may have been left out",
                )
            )
    signed_chains = {
        (int(h["partition"]), str(h["day"]))
        for d in docs
        if d.get("type") in HEAD_TYPES
        if valid(d, keys, retired)
        for h in d.get("heads", [])
        if header["from"] <= str(h["day"]) <= header["to"]
    }
    for c in header.get("chains", []):
        if (int(c["partition"]), str(c["day"])) not in signed_chains:
            report.findings.append(
                Finding(
                    "deleted",
                    tenant,
                    "the header names this chain but no signed checkpoint in the file covers it",
                    int(c["partition"]),
                    str(c["day"]),
                )
            )
    return report
