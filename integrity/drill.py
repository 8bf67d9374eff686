"""The export-and-restore drill (issue 16 item 5): can this tenant's log be handed over and
brought back intact?

``drill`` takes a verifiable export (``integrity/export.py``), checks it offline against the
signed checkpoints, loads its records into a **scratch** store (a fresh chDB directory, opened
by a child process: one process can hold one chDB store, and the caller may hold the live
one), reads them back, and compares:

* the number of records exported, restored and read back;
* the multiset of record hashes (a record lost, doubled or altered on the way);
* every restored row's hash recomputed from its columns (``schemas/record.py``), so the
  restore path itself (types, time zones, nested arrays) loses nothing.

It passes only if the export verifies and all three agree. The live tables are never
written; the scratch directory is removed unless the caller keeps it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from auditstream.integrity.export import verify_export
from auditstream.schemas.record import STORED_FIELDS, Kind, record_hash

SCRATCH_DATABASE = "drill"


@dataclass(frozen=True)
class DrillResult:
    exported: int
    restored: int
    read_back: int
    findings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings


def _value(kind: Kind, value: Any) -> Any:
    """A canonical (exported) value as the column takes it."""
    if kind == "uuid":
        return uuid.UUID(str(value))
    if kind == "uuid?":
        return None if value is None else uuid.UUID(str(value))
    if kind == "time":
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    if kind == "float?":
        return None if value is None else float(value)
    if kind == "texts":
        return list(value)
    return value


def exported_records(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with path.open("rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            item = orjson.loads(line)
            if isinstance(item, dict) and item.get("type") == "record":
                out.append({k: v for k, v in item.items() if k != "type"})
    return out


def restore(export: Path, scratch: Path) -> dict[str, Any]:
    """In the child process: load the export's records into a scratch store at ``scratch``
    and read them back. Returns counts and the hashes (claimed, recomputed) read back."""
    from auditstream.config import ClickHouseSettings
    from auditstream.integrity.verify import SELECT_LIST, as_record
    from auditstream.schemas.limits import max_retention_days
    from auditstream.sinks import store, tables

    records = exported_records(export)
    client = store.open_admin(ClickHouseSettings(dsn=f"chdb://{scratch}", database="default"))
    tables.ensure(client, SCRATCH_DATABASE, max_retention_days(datetime.now(UTC)))
    rows = [[_value(f.kind, r[f.name]) for f in STORED_FIELDS] for r in records]
    if rows:
        client.insert(
            f"`{SCRATCH_DATABASE}`.`audit_events`",
            rows,
            column_names=[f.name for f in STORED_FIELDS],
        )
    back = client.query(f"SELECT {SELECT_LIST} FROM `{SCRATCH_DATABASE}`.`audit_events`")
    claimed, recomputed = [], []
    for row in back.result_rows:
        record = as_record(row)
        claimed.append(str(record["record_hash"]))
        recomputed.append(record_hash(record))
    return {"restored": len(rows), "claimed": claimed, "recomputed": recomputed}


def drill(export: Path, keys: Mapping[str, Any], scratch: Path) -> DrillResult:
    """Verify ``export`` with the trusted public ``keys``, restore it into ``scratch`` (which
    must not exist yet) and compare (see the module's docstring)."""
    if scratch.exists():
        raise ValueError(f"{scratch} exists: the drill restores into a new scratch directory")
    findings: list[str] = []
    with export.open("rb") as lines:
        report = verify_export(lines, keys)
    findings.extend(f"export: {f.line()}" for f in report.all_findings())
    records = exported_records(export)
    done = subprocess.run(
        [sys.executable, "-m", "auditstream.integrity.drill", str(export), str(scratch)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return DrillResult(len(records), 0, 0, [*findings, f"restore failed: {tail}"])
    result = json.loads(done.stdout)
    claimed, recomputed = result["claimed"], result["recomputed"]
    exported = Counter(str(r["record_hash"]) for r in records)
    if Counter(claimed) != exported:
        lost = sum((exported - Counter(claimed)).values())
        extra = sum((Counter(claimed) - exported).values())
        findings.append(f"restore: {lost} exported record(s) not read back, {extra} unexpected")
    altered = sum(1 for a, b in zip(claimed, recomputed, strict=True) if a != b)
    if altered:
        findings.append(f"restore: {altered} record(s) read back differ from their hash")
    return DrillResult(len(records), int(result["restored"]), len(claimed), findings)


def main(argv: list[str]) -> int:
    export, scratch = Path(argv[0]), Path(argv[1])
    print(json.dumps(restore(export, scratch)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
