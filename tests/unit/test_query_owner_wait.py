"""A reader that finds the embedded store busy waits for the starting sink to announce itself."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from auditstream.config import ClickHouseSettings
from auditstream.sinks import query


def _settings(tmp_path: Path) -> ClickHouseSettings:
    return ClickHouseSettings(dsn=f"chdb://{tmp_path / 'clickhouse'}")


def test_waits_for_an_owner_that_announces_itself(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    announce = threading.Timer(
        0.3,
        lambda: query.owner_file(settings).write_text(  # type: ignore[union-attr]
            json.dumps({"pid": os.getpid(), "port": 1, "token": "t"})
        ),
    )
    announce.start()
    owner = query._owner_within(settings, 10.0)
    announce.join()
    assert owner is not None
    assert owner["pid"] == os.getpid()


def test_gives_up_when_no_owner_comes(tmp_path: Path) -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    assert query._owner_within(_settings(tmp_path), 3.0, clock) is None


def test_a_dead_owner_is_no_owner(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    query.owner_file(settings).write_text(  # type: ignore[union-attr]
        json.dumps({"pid": 2**22 + 7, "port": 1, "token": "t"})
    )
    assert query._owner_within(settings, 0.0) is None
