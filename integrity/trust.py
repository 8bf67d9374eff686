"""Which chain heads in the store the sink may continue (review finding H2).

The sink continues a chain from its head. A head it holds in memory it wrote itself; a head
it has to *read from the store* (a restart, a partition assigned again, a failed INSERT) may
have been put there by someone with write access to ClickHouse: a forged row at ``seq + 1``
that links correctly to the real head is easy to compute (the hash has no secret). Extending
such a row, and then signing the result, would launder it.

So a head read from the store is adopted only if this sink can vouch for it, from material
kept outside the store, in its home (the same trust as its checkpoints):

* the heads its checkpoints signed (``checkpoints.jsonl``), and
* ``intents.jsonl``, a write-ahead journal: before each INSERT the sink appends, and fsyncs,
  the head each touched chain will have once the rows land. A head a killed sink stored after
  its last checkpoint is therefore still one it can vouch for. Entries a checkpoint has since
  signed are compacted away.

For each chain read from the store:

* its stored head is one of those: adopted;
* otherwise the highest head it can vouch for that the store still has (same position, same
  hash) is adopted, and the rows above it are reported (a signed ``untrusted_head``
  checkpoint and an error in the log). The chain continues from there, so the forged rows end
  up beside the sink's own at the same positions, which ``verify`` reports;
* a chain it has no material for at all: with the embedded store only this sink writes, so it
  is treated the same way (continued from genesis, reported); with a ClickHouse server,
  another sink may have written it (a rebalance) and it is adopted as stored (documented).

A home with no material at all (a first start on an existing store, or a lost home) adopts
what the store has, and says so once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from auditstream.integrity.chain import ChainKey, Head, HeadReader
from auditstream.integrity.checkpoints import Doc, iter_type

log = logging.getLogger("auditstream.integrity")

Vouched = dict[ChainKey, dict[int, str]]
"""Per chain: the positions this sink can vouch for, and the hash each must have."""

Stored = dict[ChainKey, dict[int, set[str]]]
"""Per chain: the hashes stored at each position (more than one: a fork)."""

RowsAt = Callable[[Mapping[ChainKey, set[int]]], Stored]
"""Reads the hashes stored at these positions of these chains (missing rows left out)."""

Report = Callable[[ChainKey, Head, Head | None], None]
"""A chain whose stored head (2nd) this sink did not write; continued from the 3rd."""


def signed_heads(docs: Iterable[Doc]) -> Vouched:
    """Every head the ``heads`` checkpoints in ``docs`` sign."""
    out: Vouched = {}
    for doc in iter_type(docs, "heads"):
        tenant = str(doc.get("tenant"))
        for h in doc.get("heads", []):
            key = (tenant, int(h["partition"]), str(h["day"]))
            out.setdefault(key, {})[int(h["seq"])] = str(h["hash"])
    return out


class HeadJournal:
    """``intents.jsonl``: the heads the sink is about to store, written ahead of the INSERT.

    Holds, in memory, what the sink can vouch for: the signed heads (the latest per chain,
    loaded once) and the journal's entries. Appends come from the writer thread, compaction
    from the checkpointer's: a lock keeps the file and the index in step."""

    def __init__(self, path: Path, signed: Vouched) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._index: Vouched = {k: {max(v): v[max(v)]} for k, v in signed.items() if v}
        self._had_material = bool(self._index)
        for key, head in self._read_file():
            self._index.setdefault(key, {})[head.seq] = head.hash
            self._had_material = True

    @classmethod
    def at_home(cls, home: Path, docs: Iterable[Doc]) -> HeadJournal:
        return cls(home / "checkpoints" / "intents.jsonl", signed_heads(docs))

    @property
    def had_material(self) -> bool:
        """Whether the home had anything to vouch with when the sink started."""
        return self._had_material

    def vouched(self, keys: Iterable[ChainKey]) -> Vouched:
        with self._lock:
            return {k: dict(self._index[k]) for k in keys if k in self._index}

    def pending(self) -> Vouched:
        """The journal's entries (heads written since the checkpoints that compacted it)."""
        with self._lock:
            out: Vouched = {}
            for key, head in self._read_file():
                out.setdefault(key, {})[head.seq] = head.hash
            return out

    def append(self, heads: Mapping[ChainKey, Head]) -> None:
        """Durably, before the rows that reach these heads are inserted."""
        if not heads:
            return
        lines = b"".join(
            orjson.dumps({"t": k[0], "p": k[1], "d": k[2], "s": h.seq, "h": h.hash}) + b"\n"
            for k, h in heads.items()
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, lines)
                os.fsync(fd)
            finally:
                os.close(fd)
            for key, head in heads.items():
                self._index.setdefault(key, {})[head.seq] = head.hash

    def compact(self, signed: Mapping[ChainKey, Head]) -> None:
        """These heads are signed now: entries at or below them are no longer needed."""
        if not signed:
            return
        with self._lock:
            for key, head in signed.items():
                known = self._index.setdefault(key, {})
                known[head.seq] = head.hash
                for seq in [s for s in known if s < head.seq]:
                    del known[seq]
            kept = [
                (k, h) for k, h in self._read_file() if k not in signed or h.seq > signed[k].seq
            ]
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(
                    fd,
                    b"".join(
                        orjson.dumps({"t": k[0], "p": k[1], "d": k[2], "s": h.seq, "h": h.hash})
                        + b"\n"
                        for k, h in kept
                    ),
                )
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)

    def _read_file(self) -> list[tuple[ChainKey, Head]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out: list[tuple[ChainKey, Head]] = []
        for line in data.splitlines():
            try:  # a line torn by a crash mid-append is the last one: it never landed
                e = orjson.loads(line)
                out.append(((str(e["t"]), int(e["p"]), str(e["d"])), Head(int(e["s"]), e["h"])))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
        return out


class TrustedHeads:
    """A ``HeadReader`` that adopts only the stored heads this sink can vouch for."""

    def __init__(
        self,
        stored: HeadReader,
        rows_at: RowsAt,
        journal: HeadJournal,
        *,
        adopt_unknown: bool,
        report: Report,
    ) -> None:
        self._stored = stored
        self._rows_at = rows_at
        self._journal = journal
        self._adopt_unknown = adopt_unknown
        self._report = report
        self._warned = False

    def __call__(self, keys: set[ChainKey]) -> dict[ChainKey, Head]:
        stored = self._stored(keys)
        if not self._journal.had_material:
            if stored and not self._warned:
                self._warned = True
                log.warning(
                    "no checkpoints or journal in this sink's home: continuing the store's "
                    "chains as stored (a first start on an existing store, or a lost home)"
                )
            return stored
        vouched = self._journal.vouched(stored)
        out: dict[ChainKey, Head] = {}
        check: dict[ChainKey, set[int]] = {}
        for key, head in stored.items():
            known = vouched.get(key)
            if known is not None and known.get(head.seq) == head.hash:
                out[key] = head
            elif known:
                check[key] = {s for s in known if s <= head.seq}
            elif self._adopt_unknown:
                out[key] = head
            else:
                self._report(key, head, None)
        found = self._rows_at(check) if check else {}
        for key, seqs in check.items():
            known, have = vouched[key], found.get(key, {})
            good = [s for s in seqs if known[s] in have.get(s, set())]
            best = Head(max(good), known[max(good)]) if good else None
            if best is not None:
                out[key] = best
            self._report(key, stored[key], best)
        return out


def store_rows_at(client: Any, database: str, table: str = "audit_events") -> RowsAt:
    """A ``RowsAt`` querying the store (the writer's client, on its thread)."""

    def read(wanted: Mapping[ChainKey, set[int]]) -> Stored:
        out: Stored = {}
        for (tenant, partition, day), seqs in wanted.items():
            if not seqs:
                continue
            rows = client.query(
                f"SELECT chain_seq, record_hash FROM `{database}`.`{table}` "
                "WHERE tenant_id = {tenant:String} AND kafka_partition = {part:UInt32} "
                "AND toDate(occurred_at, 'UTC') = toDate({day:String}) "
                "AND chain_seq IN {seqs:Array(UInt64)}",
                parameters={"tenant": tenant, "part": partition, "day": day, "seqs": sorted(seqs)},
            ).result_rows
            found = out.setdefault((tenant, partition, day), {})
            for seq, digest in rows:
                found.setdefault(int(seq), set()).add(str(digest))
        return out

    return read
