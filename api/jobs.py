"""Background exports: one job per large export, written to a private file, with progress.

A job reads its rows in keyset steps (``query.EXPORT_CHUNK`` rows, one analyst session per
step, released in between), writes them with ``exports.write`` and keeps its state in
memory and beside the file (``<id>.json``). Jobs belong to the tenant that asked: another
tenant's token is told there is no such job. Files live under
``AUDITSTREAM_HOME/exports/<pid>/`` (0600, like the rest of the home) for ``keep_seconds``
(a day) after they finish; a process removes its own expired ones as new jobs start, and the
folders of processes that no longer run (their jobs can no longer be asked for) when it
starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditstream.api.exports import Format, write
from auditstream.api.query import EventRow

log = logging.getLogger(__name__)

MAX_RUNNING = 2


@dataclass(frozen=True)
class Job:
    id: str
    tenant: str
    format: Format
    status: str
    rows_total: int
    rows_written: int
    created_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    sha256: str | None = None

    @property
    def progress(self) -> float:
        if self.status == "done":
            return 1.0
        return 0.0 if self.rows_total <= 0 else min(1.0, self.rows_written / self.rows_total)


KEEP_SECONDS = 86_400.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class Jobs:
    def __init__(self, root: Path, keep_seconds: float = KEEP_SECONDS) -> None:
        self.root = root
        self.directory = root / str(os.getpid())
        self.keep_seconds = keep_seconds
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(MAX_RUNNING, thread_name_prefix="api-export")
        self._swept_others = False

    def _sweep(self, now: datetime) -> None:
        """Expired jobs of this process; at the first call, folders of dead processes."""
        if not self._swept_others and self.root.is_dir():
            self._swept_others = True
            for folder in self.root.iterdir():
                if folder.is_dir() and folder.name.isdigit() and not _alive(int(folder.name)):
                    shutil.rmtree(folder, ignore_errors=True)
        with self._lock:
            expired = [
                j for j in self._jobs.values()
                if j.finished_at is not None
                and (now - j.finished_at).total_seconds() > self.keep_seconds
            ]  # fmt: skip
            for job in expired:
                del self._jobs[job.id]
        for job in expired:
            for path in (self.path(job), self.directory / f"{job.id}.json"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def path(self, job: Job) -> Path:
        return self.directory / f"{job.id}.{job.format.value}"

    def get(self, tenant: str, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.tenant == tenant else None

    def _set(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
        doc: dict[str, Any] = {k: str(v) if v is not None else None for k, v in asdict(job).items()}
        (self.directory / f"{job.id}.json").write_text(json.dumps(doc))

    def start(
        self, tenant: str, fmt: Format, total: int, rows: Callable[[], Iterator[EventRow]]
    ) -> Job:
        self._sweep(datetime.now(UTC))
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        job = Job(
            id=secrets.token_hex(12), tenant=tenant, format=fmt, status="running",
            rows_total=total, rows_written=0, created_at=datetime.now(UTC),
        )  # fmt: skip
        self._set(job)
        self._pool.submit(self._run, job, rows)
        return job

    def _run(self, job: Job, rows: Callable[[], Iterator[EventRow]]) -> None:
        def progress(done: int) -> None:
            with self._lock:
                current = self._jobs[job.id]
                self._jobs[job.id] = replace(current, rows_written=done)

        try:
            result = write(job.format, rows(), self.path(job), progress)
            with self._lock:
                current = self._jobs[job.id]
            self._set(
                replace(current, status="done", rows_written=result.rows,
                        finished_at=datetime.now(UTC), sha256=result.sha256)
            )  # fmt: skip
        except Exception:
            log.exception("export %s failed", job.id)
            with self._lock:
                current = self._jobs[job.id]
            self._set(
                replace(current, status="failed", finished_at=datetime.now(UTC),
                        error="the export failed; the operator's log has the reason")
            )  # fmt: skip

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
