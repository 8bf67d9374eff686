"""``auditstream status`` names the newest signed heads checkpoint of the local file."""

from __future__ import annotations

import json
from pathlib import Path

from auditstream.config import Settings
from auditstream.integrity.chain import Head
from auditstream.integrity.checkpoints import CheckpointLog, heads_doc, retention_doc
from auditstream.ops.status import Status, last_checkpoint


def test_no_file_is_no_checkpoint(tmp_path: Path) -> None:
    settings = Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path)})
    assert last_checkpoint(settings) == (None, 0)


def test_the_newest_heads_checkpoint_and_the_count(tmp_path: Path) -> None:
    settings = Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path)})
    heads = {("acme", 0, "2026-12-02"): Head(3, "ab" * 32)}
    CheckpointLog.at_home(settings.home).append(
        [
            heads_doc("acme", heads, at="2026-12-02T10:00:00.000Z"),
            heads_doc("globex", {}, at="2026-12-02T11:00:00.000Z"),
            heads_doc("acme", heads, at="2026-12-02T09:00:00.000Z"),
            # not a heads checkpoint: it does not count as the last one signed
            retention_doc("audit_events", 30, "admin", at="2026-12-02T12:00:00.000Z"),
        ]
    )
    assert last_checkpoint(settings) == ("2026-12-02T11:00:00.000Z", 4)
    status = Status(kafka="k", store="s")
    status.last_checkpoint, status.checkpoints = last_checkpoint(settings)
    doc = json.loads(status.to_json())
    assert (doc["last_checkpoint"], doc["checkpoints"]) == ("2026-12-02T11:00:00.000Z", 4)
