"""Which stored chain heads the sink continues (integrity/trust.py, review finding H2)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from auditstream.integrity.chain import ChainKey, Head
from auditstream.integrity.trust import HeadJournal, Stored, TrustedHeads

A: ChainKey = ("acme", 0, "2026-12-01")
B: ChainKey = ("acme", 1, "2026-12-01")
SIGNED = [
    {
        "type": "heads",
        "tenant": "acme",
        "heads": [{"partition": 0, "day": A[2], "seq": 5, "hash": "h5"}],
    }
]


def trusted(
    tmp_path: Path,
    stored: dict[ChainKey, Head],
    rows: Stored,
    *,
    docs: list[dict[str, object]] = SIGNED,
    adopt_unknown: bool = False,
) -> tuple[dict[ChainKey, Head], list[tuple[ChainKey, Head, Head | None]]]:
    journal = HeadJournal.at_home(tmp_path, docs)
    journal.append({A: Head(7, "h7")})
    reports: list[tuple[ChainKey, Head, Head | None]] = []

    def rows_at(wanted: Mapping[ChainKey, set[int]]) -> Stored:
        return {k: {s: rows.get(k, {}).get(s, set()) for s in seqs} for k, seqs in wanted.items()}

    heads = TrustedHeads(
        lambda keys: {k: h for k, h in stored.items() if k in keys},
        rows_at,
        journal,
        adopt_unknown=adopt_unknown,
        report=lambda k, s, u: reports.append((k, s, u)),
    )
    return heads({A, B}), reports


def test_a_signed_or_journaled_head_is_adopted(tmp_path: Path) -> None:
    for head in (Head(5, "h5"), Head(7, "h7")):
        out, reports = trusted(tmp_path / str(head.seq), {A: head}, {})
        assert out == {A: head}
        assert reports == []


def test_a_forged_tail_is_reported_and_the_chain_goes_on_from_the_sinks_own_head(
    tmp_path: Path,
) -> None:
    out, reports = trusted(tmp_path, {A: Head(8, "forged")}, {A: {5: {"h5"}, 7: {"h7"}}})
    assert out == {A: Head(7, "h7")}
    assert reports == [(A, Head(8, "forged"), Head(7, "h7"))]


def test_a_forged_row_at_the_sinks_own_position_is_not_taken_for_it(tmp_path: Path) -> None:
    out, reports = trusted(tmp_path, {A: Head(7, "forged")}, {A: {5: {"h5"}, 7: {"forged"}}})
    assert out == {A: Head(5, "h5")}
    assert reports == [(A, Head(7, "forged"), Head(5, "h5"))]


def test_a_chain_the_sink_never_wrote(tmp_path: Path) -> None:
    out, reports = trusted(tmp_path / "embedded", {B: Head(3, "x")}, {})
    assert out == {}
    assert reports == [(B, Head(3, "x"), None)]
    out, reports = trusted(tmp_path / "server", {B: Head(3, "x")}, {}, adopt_unknown=True)
    assert out == {B: Head(3, "x")}
    assert reports == []


def test_a_home_with_nothing_to_vouch_with_adopts_the_store(tmp_path: Path) -> None:
    journal = HeadJournal.at_home(tmp_path, [])
    heads = TrustedHeads(
        lambda keys: {A: Head(8, "x")}, lambda w: {}, journal, adopt_unknown=False,
        report=lambda *a: None,
    )  # fmt: skip
    assert heads({A}) == {A: Head(8, "x")}


def test_the_journal_survives_a_restart_a_torn_line_and_compaction(tmp_path: Path) -> None:
    journal = HeadJournal.at_home(tmp_path, [])
    journal.append({A: Head(1, "a1"), B: Head(2, "b2")})
    journal.append({A: Head(3, "a3")})
    with journal.path.open("ab") as f:
        f.write(b'{"t": "acme", "p": 0, "d"')  # killed mid-append
    again = HeadJournal.at_home(tmp_path, [])
    assert again.had_material
    assert again.pending() == {A: {1: "a1", 3: "a3"}, B: {2: "b2"}}
    again.compact({A: Head(3, "a3")})
    assert again.pending() == {B: {2: "b2"}}
    assert again.vouched([A]) == {A: {3: "a3"}}  # the signed head itself stays vouched for
    assert journal.path.stat().st_mode & 0o777 == 0o600
