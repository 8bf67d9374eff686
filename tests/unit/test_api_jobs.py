"""Export jobs: tenant-owned, progress to done, files of dead processes and expired jobs removed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditstream.api.exports import Format
from auditstream.api.jobs import Job, Jobs
from auditstream.api.query import EventRow


def _wait(jobs: Jobs, job: Job) -> Job:
    for _ in range(500):
        current = jobs.get(job.tenant, job.id)
        assert current is not None
        if current.status != "running":
            return current
        time.sleep(0.01)
    raise AssertionError("job did not finish")


def test_a_job_belongs_to_its_tenant_and_finishes(tmp_path: Path) -> None:
    jobs = Jobs(tmp_path)

    def rows() -> Iterator[EventRow]:
        return iter([])

    job = jobs.start("acme", Format.CSV, 0, rows)
    assert jobs.get("globex", job.id) is None
    done = _wait(jobs, job)
    assert done.status == "done"
    assert done.progress == 1.0
    assert jobs.path(done).read_text().startswith("event_id,")
    assert done.sha256 is not None


def test_a_failed_job_says_so_and_its_reason_goes_to_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = Jobs(tmp_path)

    def rows() -> Iterator[EventRow]:
        raise RuntimeError("the store at db-7.internal went away\nsecond line")

    done = _wait(jobs, jobs.start("acme", Format.JSONL, 5, rows))
    assert done.status == "failed"
    assert done.error == "the export failed; the operator's log has the reason"
    assert "db-7.internal" in caplog.text


def test_old_files_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / "999999999"  # no such process
    dead.mkdir()
    (dead / "x.csv").write_text("old")
    jobs = Jobs(tmp_path, keep_seconds=60)
    first = _wait(jobs, jobs.start("acme", Format.CSV, 0, lambda: iter([])))
    assert not dead.exists()
    assert jobs.path(first).exists()
    # an hour later, the next job removes the finished one
    jobs._jobs[first.id] = replace(first, finished_at=datetime.now(UTC) - timedelta(hours=1))
    _wait(jobs, jobs.start("acme", Format.CSV, 0, lambda: iter([])))
    assert not jobs.path(first).exists()
    assert jobs.get("acme", first.id) is None
