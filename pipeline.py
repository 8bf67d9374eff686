"""Runs the pipeline's processes (normalizer, stream worker, sink) as children, and stops them
cleanly.

Used by ``auditstream demo`` / ``auditstream run`` and by the integration tests, so both
exercise the same processes a deployment runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from auditstream.config import Settings
from auditstream.sinks import query

ROLES = ("sink", "normalizer", "worker")
"""The pipeline's processes, in start order (``auditstream <role>``)."""


class PipelineError(RuntimeError):
    """A pipeline process did not start or stop as expected."""


@dataclass
class Pipeline:
    env: Mapping[str, str]
    settings: Settings
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: dict[str, IO[bytes]] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Pipeline:
        env = dict(os.environ if env is None else env)
        return cls(env=env, settings=Settings.from_env(env))

    def log_path(self, role: str) -> Path:
        return self.settings.home / "logs" / f"{role}.log"

    def start(self, role: str) -> None:
        """Start ``normalizer``, ``worker`` or ``sink`` (no-op if that child is running)."""
        proc = self.procs.get(role)
        if proc is not None and proc.poll() is None:
            return
        path = self.log_path(role)
        path.parent.mkdir(parents=True, exist_ok=True)
        log = path.open("ab")
        self._logs[role] = log
        self.procs[role] = subprocess.Popen(
            [sys.executable, "-m", "auditstream.cli.main", role],
            env={**self.env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def wait_sink_ready(self, timeout: float = 60.0) -> None:
        """Embedded store: ready once this sink serves SQL (its pid in ``sink.json``)."""
        deadline = time.monotonic() + timeout
        owner = query.owner_file(self.settings.clickhouse)
        proc = self.procs["sink"]
        while time.monotonic() < deadline:
            self._check_alive("sink")
            if owner is None:
                return
            try:
                if json.loads(owner.read_text())["pid"] == proc.pid:
                    return
            except (FileNotFoundError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise PipelineError(
            f"the sink did not start within {timeout:.0f}s; see {self.log_path('sink')}"
        )

    def _check_alive(self, role: str) -> None:
        proc = self.procs.get(role)
        if proc is not None and proc.poll() is not None:
            tail = self.log_path(role).read_text(errors="replace").splitlines()[-20:]
            raise PipelineError(f"the {role} exited with {proc.returncode}:\n" + "\n".join(tail))

    def check(self) -> None:
        for role in self.procs:
            self._check_alive(role)

    def stop(self, role: str, timeout: float = 60.0, kill: bool = False) -> int | None:
        """SIGTERM (or SIGKILL with ``kill``) and wait; returns the exit code."""
        proc = self.procs.pop(role, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log = self._logs.pop(role, None)
        if log is not None:
            log.close()
        return proc.returncode

    def start_all(self) -> None:
        """The sink, the normalizer and the worker, in that order."""
        for role in ROLES:
            self.start(role)

    def stop_all(self) -> None:
        # Upstream first: the worker and the sink then drain what was last published.
        for role in ("normalizer", "worker", "sink"):
            self.stop(role)
        for role in list(self.procs):
            self.stop(role)


@contextlib.contextmanager
def running(env: Mapping[str, str] | None = None) -> Iterator[Pipeline]:
    pipeline = Pipeline.from_env(env)
    try:
        pipeline.start_all()
        pipeline.wait_sink_ready()
        yield pipeline
    finally:
        pipeline.stop_all()
