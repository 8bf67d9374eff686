"""The export-and-restore drill (issue 16 item 5) on the real broker and chDB: it passes on
an intact log, records its result in the tenant's log, and fails when a record is removed
from the export."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from auditstream.integrity.drill import drill
from auditstream.integrity.keys import KeyStore, load_public_keys

from .conftest import Env
from .test_tamper_evidence import cli, make, run_sink_until, tenv  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)


def test_the_drill_passes_on_an_intact_log_and_fails_on_a_cut_export(
    tenv: Env,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    run_sink_until(tenv, 7, (make("acme", 5, when=TODAY), 0), (make("globex", 2), 50))

    code, out = cli(tenv, "archive", "drill", "--tenant", "acme", "--days", "2",
                    "--keep", str(tmp_path / "kept"))  # fmt: skip
    assert code == 0, out
    assert "PASS" in out
    assert "recorded as event" in out
    [recorded] = [
        orjson.loads(m.value())
        for m in tenv.read_topic(tenv.settings.topics.raw, 1, 20)
        if b"archive drill" in (m.value() or b"")
    ]
    assert recorded["tenant_id"] == "acme"
    assert recorded["outcome"] == "success"
    assert recorded["metadata"]["command"] == "auditstream archive drill"
    assert (recorded["metadata"]["exported"], recorded["metadata"]["read_back"]) == (5, 5)

    # The same export with one record cut out: the drill fails and says why.
    export = tmp_path / "kept" / "acme-export.jsonl"
    lines = export.read_bytes().splitlines(keepends=True)
    records = [i for i, line in enumerate(lines) if b'"type":"record"' in line]
    assert len(records) == 5
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(line for i, line in enumerate(lines) if i != records[2]))
    keys = load_public_keys(KeyStore.at_home(tenv.settings.home).export())
    intact = drill(export, keys, tmp_path / "scratch-intact")
    assert intact.passed, intact.findings
    result = drill(cut, keys, tmp_path / "scratch-cut")
    assert not result.passed
    assert (result.exported, result.read_back) == (4, 4)
    assert any("DELETED" in f for f in result.findings), result.findings
