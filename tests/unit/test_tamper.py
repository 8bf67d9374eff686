"""Tamper evidence, the pure parts: canonical bytes, chains, the verifier, checkpoints,
keys and exports (docs/decisions/0005-tamper-evidence.md)."""

from __future__ import annotations

import io
import itertools
import os
import stat
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditstream.integrity.chain import Chainer, ChainKey, Head, chain_of
from auditstream.integrity.checkpoints import (
    CheckpointLog,
    Recorder,
    heads_checkpoints,
    retention_doc,
    sign,
    valid,
)
from auditstream.integrity.export import verify_export, write_export
from auditstream.integrity.keys import KeyStore, load_public_keys
from auditstream.integrity.verify import (
    as_record,
    retention_horizon,
    verify_chain,
    verify_records,
)
from auditstream.schemas.record import (
    FIELD_NAMES,
    GENESIS,
    canonical,
    canonical_bytes,
    record_hash,
)
from auditstream.sinks.rows import to_row

DAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def event(i: int, tenant: str = "acme", when: datetime = DAY, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=i + 1)),
            "tenant_id": tenant,
            "occurred_at": (when + timedelta(seconds=i)).isoformat(),
            "received_at": (when + timedelta(seconds=i, milliseconds=5)).isoformat(),
            "actor": {"id": f"u{i % 3}"},
            "action": "update",
            "resource": {"type": "invoice", "id": f"INV-{i}"},
            "location": {"latitude": 52, "longitude": 13.405},
            "changes": [{"field": "amount", "old": 1, "new": 2**63}],
            "metadata": {"n": i},
            **extra,
        }
    )


def rows(n: int, partition: int = 0, tenant: str = "acme", when: datetime = DAY) -> list[Any]:
    return [to_row(event(i, tenant, when), partition, 100 + i) for i in range(n)]


class Store:
    """What the sink stored (rows with links), and a head reader over it."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.reads = 0

    def heads(self, keys: set[ChainKey]) -> dict[ChainKey, Head]:
        self.reads += 1
        out: dict[ChainKey, Head] = {}
        for r in self.rows:
            key = chain_of(r)
            seq = r[FIELD_NAMES.index("chain_seq")]
            if key in keys and (key not in out or out[key].seq < seq):
                out[key] = Head(seq, r[-1])
        return out


def stored(n: int = 6, **kw: Any) -> tuple[Store, Chainer, list[tuple[Any, ...]]]:
    store = Store()
    chain = Chainer(store.heads)
    linked = chain.link(rows(n, **kw))
    store.rows.extend(linked)
    chain.advance(linked)
    return store, chain, linked


def record(row: tuple[Any, ...]) -> dict[str, Any]:
    return as_record(row)


# -- canonical bytes ------------------------------------------------------------------------
def test_canonical_bytes_are_the_same_from_the_sink_the_store_and_an_export() -> None:
    row = to_row(event(1), 2, 7)
    from_sink = canonical_bytes(row)
    values = dict(zip(FIELD_NAMES, row, strict=False))
    # What a read-only query returns: ids as text, times as epoch milliseconds.
    from_store = {
        **values,
        "event_id": str(values["event_id"]),
        "occurred_at": int(values["occurred_at"].timestamp() * 1000),
        "received_at": int(values["received_at"].timestamp() * 1000),
        "parent_event_id": "",
        "latitude": 52.0,
    }
    assert canonical_bytes(from_store) == from_sink
    assert canonical_bytes(orjson.loads(from_sink)) == from_sink  # an export, read back
    doc = orjson.loads(from_sink)
    assert list(doc) == list(FIELD_NAMES)  # stable field order
    assert doc["occurred_at"] == "2026-11-30T09:00:01.000Z"  # UTC, milliseconds
    assert doc["changes.new"] == [str(2**63)]  # the JSON text as stored, exactly
    assert doc["latitude"] == 52.0  # an integer latitude is the float the column holds


def test_canonical_time_is_utc_whatever_the_offset() -> None:
    row = list(to_row(event(1), 0, 0))
    berlin = row[3].astimezone(timezone(timedelta(hours=1)))
    assert canonical_bytes([*row[:3], berlin, *row[4:]]) == canonical_bytes(row)


def test_every_field_is_in_the_hash() -> None:
    row = to_row(event(1), 0, 0)
    base = record_hash(row)
    for i, name in enumerate(FIELD_NAMES):
        value = row[i]
        if isinstance(value, str):
            changed = value + "x"
        elif isinstance(value, bool | int):
            changed = int(value) + 1 if value < 2**63 else int(value) - 1
        elif isinstance(value, float):
            changed = value + 1.0
        elif isinstance(value, list):
            changed = [*value, "x"]
        elif isinstance(value, datetime):
            changed = value + timedelta(milliseconds=1)
        elif isinstance(value, uuid.UUID):
            changed = uuid.UUID(int=value.int + 1)
        else:  # None
            changed = uuid.UUID(int=9) if name == "parent_event_id" else 1.0
        assert record_hash([*row[:i], changed, *row[i + 1 :]]) != base, name


def test_a_short_row_is_refused() -> None:
    with pytest.raises(ValueError, match="fields"):
        canonical_bytes(to_row(event(1), 0, 0)[:10])
    with pytest.raises(TypeError):
        canonical({**dict(zip(FIELD_NAMES, to_row(event(1), 0, 0), strict=False)), "ip": 5})


# -- chains ---------------------------------------------------------------------------------
def test_a_chain_links_each_record_to_the_previous_one() -> None:
    _, _, linked = stored(4)
    seq, prev = FIELD_NAMES.index("chain_seq"), FIELD_NAMES.index("chain_prev")
    assert [r[seq] for r in linked] == [1, 2, 3, 4]
    assert linked[0][prev] == GENESIS
    for before, after in itertools.pairwise(linked):
        assert after[prev] == before[-1] == record_hash(before)


def test_heads_move_only_for_stored_rows_and_a_failure_rereads_the_store() -> None:
    store, chain, _ = stored(3)
    fresh = rows(5)[3:]
    attempt = chain.link(fresh)  # the INSERT fails ...
    chain.forget(attempt)
    reads = store.reads
    again = chain.link(fresh)  # ... and the retry links the same rows the same way
    assert again == attempt
    assert store.reads == reads + 1  # the head came from the store, not from memory


def test_a_restarted_sink_continues_the_chain_from_the_store() -> None:
    store, _, linked = stored(3)
    restarted = Chainer(store.heads)
    more = restarted.link([to_row(event(9), 0, 200)])
    assert more[0][FIELD_NAMES.index("chain_seq")] == 4
    assert more[0][FIELD_NAMES.index("chain_prev")] == linked[-1][-1]


def test_chains_are_per_tenant_partition_and_day() -> None:
    store = Store()
    chain = Chainer(store.heads)
    mixed = rows(2) + rows(2, partition=1) + rows(2, tenant="globex")
    mixed += rows(2, when=DAY + timedelta(days=1))
    linked = chain.link(mixed)
    assert [r[FIELD_NAMES.index("chain_seq")] for r in linked] == [1, 2] * 4
    chain.advance(linked)
    changed = chain.changed()
    assert set(changed) == {
        ("acme", 0, "2026-11-30"),
        ("acme", 1, "2026-11-30"),
        ("globex", 0, "2026-11-30"),
        ("acme", 0, "2026-12-01"),
    }
    assert chain.changed() == {}
    docs = heads_checkpoints(changed)
    assert [d["tenant"] for d in docs] == ["acme", "globex"]  # one tenant per checkpoint


def test_a_reassigned_partition_is_read_from_the_store_again() -> None:
    store, chain, _ = stored(2)
    chain.forget_partitions([0])
    reads = store.reads
    chain.link(rows(3)[2:])
    assert store.reads == reads + 1


# -- the verifier ---------------------------------------------------------------------------
KEY: ChainKey = ("acme", 0, "2026-11-30")


def anchors(linked: list[tuple[Any, ...]]) -> dict[int, str]:
    return {len(linked): linked[-1][-1]}


def test_an_untouched_chain_verifies() -> None:
    _, _, linked = stored(6)
    result = verify_chain(KEY, [record(r) for r in linked], anchors(linked))
    assert result.findings == []
    assert result.verified == 6


def test_a_modified_record_is_named() -> None:
    _, _, linked = stored(6)
    recs = [record(r) for r in linked]
    recs[2]["action"] = "delete"
    [finding] = verify_chain(KEY, recs, anchors(linked)).findings
    assert (finding.kind, finding.seq) == ("modified", 3)
    assert finding.event_id == str(recs[2]["event_id"])


def test_a_modified_record_with_a_recomputed_hash_is_still_named() -> None:
    _, _, linked = stored(6)
    recs = [record(r) for r in linked]
    recs[2]["action"] = "delete"
    recs[2]["record_hash"] = record_hash(recs[2])  # the attacker knows the scheme
    kinds = {(f.kind, f.seq) for f in verify_chain(KEY, recs, anchors(linked)).findings}
    assert ("deleted", 3) in kinds  # the link from record 4 leads to no record any more
    assert ("inserted", 3) in kinds  # and the rewritten one is linked from nothing


def test_deleted_records_are_named_by_position() -> None:
    _, _, linked = stored(6)
    recs = [record(r) for i, r in enumerate(linked) if i not in (2, 3)]
    [finding] = verify_chain(KEY, recs, anchors(linked)).findings
    assert (finding.kind, finding.seq) == ("deleted", 3)
    assert "position 3-4" in finding.detail


def test_a_deleted_head_is_found_by_the_signed_checkpoint() -> None:
    _, _, linked = stored(6)
    [finding] = verify_chain(KEY, [record(r) for r in linked[:-1]], anchors(linked)).findings
    assert (finding.kind, finding.seq) == ("deleted", 6)


def test_a_whole_chain_deleted() -> None:
    _, _, linked = stored(3)
    [finding] = verify_chain(KEY, [], anchors(linked)).findings
    assert finding.kind == "deleted"
    assert "3 record(s)" in finding.detail


def test_inserted_records_are_named() -> None:
    _, _, linked = stored(4)
    recs = [record(r) for r in linked]
    copy = {**recs[1], "event_id": str(uuid.UUID(int=999)), "action": "sign_in"}
    unchained = {**recs[1], "event_id": str(uuid.UUID(int=998)), "chain_seq": 0}
    result = verify_chain(KEY, [*recs, copy, unchained], anchors(linked))
    assert {(f.kind, f.event_id) for f in result.findings} == {
        ("inserted", str(uuid.UUID(int=999))),
        ("inserted", str(uuid.UUID(int=998))),
    }


def test_reordered_records_are_named() -> None:
    _, _, linked = stored(5)
    recs = [record(r) for r in linked]
    recs[1]["chain_seq"], recs[3]["chain_seq"] = 4, 2  # swap the positions of two records
    found = {(f.kind, f.seq, f.event_id) for f in verify_chain(KEY, recs, anchors(linked)).findings}
    assert found == {
        ("reordered", 2, str(recs[1]["event_id"])),
        ("reordered", 4, str(recs[3]["event_id"])),
    }


def test_records_after_the_last_checkpoint_are_pending_not_failures() -> None:
    _, _, linked = stored(5)
    result = verify_chain(KEY, [record(r) for r in linked], {3: linked[2][-1]})
    assert (result.findings, result.verified, result.pending) == ([], 3, 2)


def test_gaps_in_an_expired_day_are_expiry() -> None:
    _, _, linked = stored(5)
    result = verify_chain(KEY, [record(linked[4])], anchors(linked), expirable=True)
    assert (result.findings, result.expired) == ([], 4)


def test_the_retention_horizon_follows_the_signed_changes() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    docs = [
        retention_doc("audit_events", 365, "initial", at="2026-01-01T00:00:00.000Z"),
        retention_doc("audit_events", 30, "admin", at="2026-06-01T00:00:00.000Z"),
        retention_doc("audit_events", 400, "admin", at="2026-07-01T00:00:00.000Z"),
    ]
    now = t0 + timedelta(days=200)
    # 30 days from June 1 until July 1 reached June 1; 400 days since then reaches less.
    assert retention_horizon(docs, "audit_events", now) == datetime(2026, 6, 1, tzinfo=UTC)
    assert retention_horizon([], "audit_events", now) is None


# -- keys and checkpoints -------------------------------------------------------------------
def test_keys_are_private_exportable_and_rotate(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys")
    first = keys.current()
    mode = stat.S_IMODE(os.stat(tmp_path / "keys" / f"{first.key_id}.key").st_mode)
    assert mode == 0o600
    log = CheckpointLog(tmp_path / "cp.jsonl")
    recorder = Recorder(keys, log)
    rotation = recorder.rotate()
    assert rotation["key_id"] == first.key_id != rotation["new_key_id"] == keys.current().key_id
    exported = load_public_keys(keys.export())
    assert set(exported) == {first.key_id, rotation["new_key_id"]}
    assert valid(rotation, {first.key_id: exported[first.key_id]})
    signed = recorder.retention("audit_events", 30, "admin")
    assert signed["key_id"] == rotation["new_key_id"]
    assert [d["type"] for d in log.read()] == ["key_rotation", "retention"]


def test_a_checkpoint_changed_after_signing_is_invalid(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    doc = sign(heads_checkpoints({KEY: Head(3, "ab" * 32)})[0], keys.current())
    public = keys.public_keys()
    assert valid(doc, public)
    assert not valid({**doc, "heads": [{**doc["heads"][0], "seq": 2}]}, public)
    assert not valid(doc, load_public_keys(KeyStore(tmp_path / "other").export()))


def test_verify_records_reports_a_forged_checkpoint(tmp_path: Path) -> None:
    _, chain, linked = stored(3)
    keys = KeyStore(tmp_path)
    docs = [sign(d, keys.current()) for d in heads_checkpoints(chain.changed())]
    docs[0]["heads"][0]["seq"] = 2
    report = verify_records([record(r) for r in linked], docs, keys.public_keys())
    assert [f.kind for f in report.findings] == ["checkpoint"]


# -- exports --------------------------------------------------------------------------------
def exported(tmp_path: Path) -> tuple[list[bytes], dict[str, Any]]:
    _, chain, linked = stored(5)
    more = chain.link(rows(3, partition=2))
    chain.advance(more)
    keys = KeyStore(tmp_path / "keys")
    docs = [sign(d, keys.current()) for d in heads_checkpoints(chain.changed())]
    other = to_row(event(50, tenant="globex"), 0, 1)
    out = io.BytesIO()
    summary = write_export(
        out,
        "acme",
        ("2026-11-30", "2026-11-30"),
        [record(r) for r in [*linked, *more, other]],
        docs,
        keys.public_keys(),
    )
    assert (summary.records, summary.chains) == (8, 2)
    public = load_public_keys(keys.export())  # only the public key, as an auditor has it
    return out.getvalue().splitlines(keepends=True), public


def test_an_untouched_export_verifies_with_the_public_key(tmp_path: Path) -> None:
    lines, public = exported(tmp_path)
    assert b"globex" not in b"".join(lines)  # no other tenant's records or names
    report = verify_export(lines, public)
    assert report.ok, report.all_findings()
    assert report.total("verified") == 8


def test_an_export_with_a_removed_line_fails(tmp_path: Path) -> None:
    lines, public = exported(tmp_path)
    del lines[3]  # the third record
    [finding] = verify_export(lines, public).all_findings()
    assert (finding.kind, finding.seq) == ("deleted", 3)


def test_an_export_with_an_edited_line_fails(tmp_path: Path) -> None:
    lines, public = exported(tmp_path)
    lines[2] = lines[2].replace(b'"action":"update"', b'"action":"read"')
    [finding] = verify_export(lines, public).all_findings()
    assert (finding.kind, finding.seq) == ("modified", 2)


def test_an_export_with_a_forged_key_fails(tmp_path: Path) -> None:
    lines, _ = exported(tmp_path)
    stranger = load_public_keys(KeyStore(tmp_path / "stranger").export())
    findings = verify_export(lines, stranger).all_findings()
    assert findings
    assert all(f.kind in ("checkpoint", "inserted", "deleted") for f in findings)


def test_records_forged_beyond_a_signed_head_or_in_an_unsigned_chain_fail_an_export(
    tmp_path: Path,
) -> None:
    """Review finding H1: whoever can edit the file could append records after a chain's
    signed head, or a whole chain no checkpoint signs, with hashes they computed themselves;
    they verified as "pending". An export holds signed records only, so they are insertions."""
    lines, public = exported(tmp_path)
    records = [orjson.loads(x) for x in lines if b'"type":"record"' in x]
    last = max((r for r in records if r["kafka_partition"] == records[0]["kafka_partition"]),
               key=lambda r: r["chain_seq"])  # fmt: skip

    def forged(base: dict[str, Any], **changes: Any) -> bytes:
        r = {k: v for k, v in {**base, **changes}.items() if k != "type"}
        r["record_hash"] = record_hash(r)
        return orjson.dumps({"type": "record", **r}) + b"\n"

    tail = forged(last, event_id=str(uuid.uuid4()), actor_id="attacker",
                  chain_seq=last["chain_seq"] + 1, chain_prev=last["record_hash"])  # fmt: skip
    ghost = forged(last, event_id=str(uuid.uuid4()), actor_id="ghost", kafka_partition=9,
                   chain_seq=1, chain_prev=GENESIS)  # fmt: skip
    for extra in (tail, ghost):
        findings = verify_export([*lines, extra], public).all_findings()
        assert [f.kind for f in findings] == ["inserted"], findings


# -- the writer links only what it stores ---------------------------------------------------
def writer_with_chain(bad: Any) -> tuple[Any, Any, Chainer]:
    from auditstream.sinks.tables import EVENTS
    from auditstream.sinks.writer import BatchWriter

    from .test_sink_poison import FakeStore

    fake = FakeStore(EVENTS, bad)

    def heads(keys: set[ChainKey]) -> dict[ChainKey, Head]:
        found: dict[ChainKey, Head] = {}
        for r in fake.rows:
            row = tuple(r[name] for name in (*FIELD_NAMES, "record_hash"))
            key, seq = chain_of(row), r["chain_seq"]
            if key in keys and (key not in found or found[key].seq < seq):
                found[key] = Head(seq, r["record_hash"])
        return found

    chain = Chainer(heads)
    return fake, BatchWriter(fake, "db", EVENTS, chain=chain), chain


def batch_of(rows_: list[tuple[Any, ...]]) -> Any:
    from auditstream.sinks.batch import Batch

    batch = Batch(1000, 1.0)
    for i, row in enumerate(rows_):
        batch.add(row, "t.audit.events", 0, 100 + i)
    return batch


def chain_is_whole(stored_rows: list[dict[str, Any]]) -> list[int]:
    ordered = sorted(stored_rows, key=lambda r: r["chain_seq"])
    prev = GENESIS
    for r in ordered:
        assert r["chain_prev"] == prev
        assert record_hash(r) == r["record_hash"]
        prev = r["record_hash"]
    return [r["chain_seq"] for r in ordered]


def test_a_row_the_store_refuses_leaves_no_gap_in_the_chain() -> None:
    fake, writer, _ = writer_with_chain(lambda r: r["resource_id"] == "INV-3")
    result = writer.write(batch_of(rows(7)))
    assert [r.index for r in result.refused] == [3]
    assert chain_is_whole(fake.rows) == [1, 2, 3, 4, 5, 6]


def test_an_outage_and_a_replay_neither_fork_nor_duplicate_the_chain() -> None:
    from auditstream.sinks.writer import WriteFailed

    fake, writer, chain = writer_with_chain(lambda r: False)
    writer.write(batch_of(rows(3)))
    fake.outages = 1
    second = batch_of(rows(6)[3:])
    with pytest.raises(WriteFailed):
        writer.write(second)
    writer.write(second)  # the retry
    writer.write(batch_of(rows(6)))  # a replay of everything: all stored already
    assert chain_is_whole(fake.rows) == [1, 2, 3, 4, 5, 6]
    assert max(h.seq for h in chain.changed().values()) == 6


def test_the_initial_retention_checkpoint_counts_rows_from_before_chaining() -> None:
    doc = retention_doc("audit_events", 30, "initial", unchained={"acme": 2})
    assert (doc["days"], doc["unchained"]) == (30, {"acme": 2})


def test_heads_a_killed_sink_left_unsigned_are_found() -> None:
    from auditstream.integrity.checkpoints import last_signed_at, unsigned_heads

    signed = heads_checkpoints({KEY: Head(3, "a" * 64), ("acme", 1, "2026-11-30"): Head(2, "b")})
    stored = [
        ("acme", 0, "2026-11-30", 5, "c" * 64),  # two records after the last checkpoint
        ("acme", 1, "2026-11-30", 2, "b"),  # signed already
        ("globex", 0, "2026-11-30", 1, "d" * 64),  # never signed
    ]
    assert unsigned_heads(signed, stored) == {
        KEY: Head(5, "c" * 64),
        ("globex", 0, "2026-11-30"): Head(1, "d" * 64),
    }
    assert last_signed_at(signed) == signed[0]["at"]
    assert last_signed_at([]) is None
    recovered = heads_checkpoints({KEY: Head(5, "c" * 64)}, recovered=True)
    assert recovered[0]["recovered"] is True


# -- review findings (second round) ---------------------------------------------------------
def test_unsigned_store_records_older_than_the_last_checkpoint_are_insertions(
    tmp_path: Path,
) -> None:
    """Review finding H1 (store side): records above a chain's signed head, or in a chain no
    checkpoint signs, were "pending" whatever their age, so an attacker could add them. Only
    records the last signed checkpoint cannot have covered yet are "not yet checkpointed"."""
    _, _, linked = stored(5)
    keys = KeyStore(tmp_path / "keys")
    head3 = {KEY: Head(3, linked[2][-1])}
    # Signed 2 s after the third record arrived: records 4 and 5 came in after it.
    signed_at = DAY + timedelta(seconds=2, milliseconds=500)
    docs = [sign(d, keys.current()) for d in heads_checkpoints(head3)]
    docs = [sign({**docs[0], "at": signed_at.isoformat().replace("+00:00", "Z")}, keys.current())]
    ghost = to_row(event(40), 9, 1)  # a chain (partition 9) no checkpoint signs
    ghost_rows = Chainer(Store().heads).link([ghost])
    recs = [record(r) for r in [*linked, *ghost_rows]]
    margin = timedelta(seconds=60)

    # Just after the checkpoint: both may legitimately be unsigned yet.
    report = verify_records(recs, docs, keys.public_keys(), signed_by=signed_at - margin)
    assert report.ok, report.all_findings()
    assert report.total("pending") == 3

    # Long after a later checkpoint (of any tenant): they should have been signed.
    other = heads_checkpoints({("globex", 0, "2026-11-30"): Head(1, "ab" * 32)})[0]
    later = sign({**other, "at": "2026-11-30T10:00:00.000Z"}, keys.current())
    cutoff = DAY + timedelta(hours=1) - margin
    report = verify_records(
        recs, [*docs, later], keys.public_keys(), tenant="acme", signed_by=cutoff
    )
    found = sorted((f.kind, f.partition, f.seq) for f in report.all_findings())
    assert found == [("inserted", 0, 4), ("inserted", 0, 5), ("inserted", 9, 1)], found
    assert report.total("pending") == 0


def test_a_rotation_removes_the_old_private_key_and_retires_it(tmp_path: Path) -> None:
    """Review finding M3: a rotation left the old private key on disk and the old key valid
    forever. Now the old private key is removed, and a checkpoint it signs after its
    retirement (recorded in the signed rotation) is rejected."""
    keys = KeyStore(tmp_path / "keys")
    old = keys.current()
    log = CheckpointLog(tmp_path / "cp.jsonl")
    _, _, linked = stored(3)
    before = sign(heads_checkpoints({KEY: Head(2, linked[1][-1])})[0], old)
    log.append([before])
    rotation = Recorder(keys, log).rotate()
    assert not (tmp_path / "keys" / f"{old.key_id}.key").exists()
    assert (tmp_path / "keys" / f"{old.key_id}.pub").exists()  # still verifies old checkpoints
    assert rotation["key_id"] == old.key_id
    # Someone who kept a copy of the old key signs a newer head after the rotation.
    late = {**heads_checkpoints({KEY: Head(3, linked[2][-1])})[0], "at": "2099-01-01T00:00:00.000Z"}
    docs = [*log.read(), sign(late, old)]
    public = keys.public_keys()
    report = verify_records([record(r) for r in linked], docs, public)
    assert [f.kind for f in report.findings] == ["checkpoint"], report.findings
    assert "after its retirement" in report.findings[0].detail
    assert report.total("verified") == 2  # the checkpoint from before the rotation holds


def test_an_export_cut_back_or_missing_a_chain_a_tenant_summary_covers_fails(
    tmp_path: Path,
) -> None:
    """Review finding H4: an export's header is not signed, so leaving out a chain together
    with its checkpoint, or cutting records back to an earlier head, verified. The tenant
    summary (every chain head of the tenant, signed with the checkpoint) closes that."""
    from auditstream.integrity.checkpoints import tenant_summaries

    keys = KeyStore(tmp_path / "keys")
    _, chain, linked = stored(4)
    first = [sign(d, keys.current()) for d in heads_checkpoints(chain.changed())]
    more = chain.link(rows(3, partition=2))
    chain.advance(more)
    changed = chain.changed()
    second = [
        sign(d, keys.current())
        for d in [
            *heads_checkpoints(changed, summary=True),
            *tenant_summaries(first, changed),
        ]
    ]
    docs = [*first, *second]
    out = io.BytesIO()
    days = ("2026-11-30", "2026-11-30")
    write_export(out, "acme", days, [record(r) for r in [*linked, *more]], docs, keys.public_keys())
    lines = out.getvalue().splitlines(keepends=True)
    public = load_public_keys(keys.export())
    assert verify_export(lines, public).ok

    def without(*drop: bytes) -> list[bytes]:
        return [x for x in lines if not any(d in x for d in drop)]

    # Chain p0 left out with the checkpoint that signs it: the summary still names it.
    p0_sig = first[0]["signature"].encode()
    cut = [
        x for x in without(p0_sig) if not (b'"type":"record"' in x and b'"kafka_partition":0' in x)
    ]
    header = orjson.loads(cut[0])
    header["chains"] = [c for c in header["chains"] if c["partition"] != 0]
    cut[0] = orjson.dumps(header) + b"\n"
    kinds = {(f.kind, f.partition) for f in verify_export(cut, public).all_findings()}
    assert ("deleted", 0) in kinds, kinds
    # The summary left out too, while the checkpoint it came with stays: named.
    summary_sig = second[-1]["signature"].encode()
    findings = verify_export(without(summary_sig), public).all_findings()
    assert [f.kind for f in findings] == ["checkpoint"], findings
    assert "summary" in findings[0].detail


def test_checkpoints_the_topic_did_not_take_are_sent_with_the_next_ones(tmp_path: Path) -> None:
    """Review finding L2: the topic is the copy outside the sink's home; a checkpoint it
    missed (Kafka away) is sent again, in order, once it is back, even by another recorder
    of the same home, and never lost from the file."""
    sent: list[list[str]] = []
    up = False

    def publish(docs: list[dict[str, object]]) -> None:
        if not up:
            raise RuntimeError("broker away")
        sent.append([str(d["days"]) for d in docs])

    keys, log = KeyStore(tmp_path / "keys"), CheckpointLog(tmp_path / "cp" / "cp.jsonl")
    first = Recorder(keys, log, publish)
    first.retention("audit_events", 30, "admin")
    first.retention("audit_events", 40, "admin")
    assert sent == []
    assert first.outbox.path.exists()
    up = True
    Recorder(keys, log, publish).retention("audit_events", 50, "admin")
    assert sent == [["30", "40", "50"]]
    assert not first.outbox.path.exists()
    assert first.send([]) is True
    assert sent == [["30", "40", "50"]]  # nothing more to send
    assert [d["days"] for d in log.read()] == [30, 40, 50]


def test_the_same_tampering_found_again_is_the_same_alert() -> None:
    """Review finding M2 (second half): the scheduled verification runs every few minutes;
    the same findings must not raise a new alert each time, new findings must."""
    from auditstream.integrity.audit import tampering_alert
    from auditstream.integrity.verify import Finding, Report

    lo, hi = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    one = Finding("modified", "acme", "its content no longer matches its hash", 0, "2026-12-01", 2)
    two = Finding("deleted", "acme", "1 record(s) at position 4 missing", 0, "2026-12-01", 4)
    first = tampering_alert("acme", Report(findings=[one, two]), lo, hi, hi)
    again = tampering_alert("acme", Report(findings=[two, one]), lo, hi, hi + timedelta(hours=3))
    more = tampering_alert("acme", Report(findings=[one]), lo, hi, hi + timedelta(hours=3))
    other = tampering_alert("globex", Report(findings=[one, two]), lo, hi, hi)
    assert first.alert_id == again.alert_id
    assert len({first.alert_id, more.alert_id, other.alert_id}) == 3
