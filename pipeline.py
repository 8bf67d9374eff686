"""Runs the pipeline's processes (normalizer, stream worker, sink) as children, and stops them
cleanly.

Used by ``auditstream demo`` / ``auditstream run`` and by the integration tests, so both
exercise the same processes a deployment runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from auditstream.config import Settings
from auditstream.sinks import query

ROLES = ("sink", "normalizer", "worker")
"""The pipeline's processes, in start order (``auditstream <role>``)."""


class PipelineError(RuntimeError):
    """A pipeline process did not start or stop as expected."""


def _own_group() -> None:
    """In a child: a process group of its own (a terminal's Ctrl-C reaches the supervisor
    only, which then stops the children upstream first) and, on Linux, SIGTERM when the
    supervisor dies, so no child outlives it holding the store."""
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Pipeline:
    env: Mapping[str, str]
    settings: Settings
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: dict[str, IO[bytes]] = field(default_factory=dict)
    supervised: bool = False
    """Children in process groups of their own, stopped when this process dies
    (``auditstream run``)."""

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
            preexec_fn=_own_group if self.supervised else None,
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


@dataclass(frozen=True)
class Backoff:
    """Delay before restarting a child that exited: ``first`` doubling up to ``most``; a child
    that ran ``reset_after`` seconds before it exited starts again from ``first``."""

    first: float = 1.0
    most: float = 30.0
    reset_after: float = 60.0

    def delay(self, failures: int) -> float:
        return float(min(self.most, self.first * 2 ** max(0, failures - 1)))


@dataclass
class ChildState:
    started_at: float | None = None
    restarts: int = 0
    failures: int = 0
    """Exits in a row, each after less than ``Backoff.reset_after`` of running."""
    due: float | None = None
    """When to start it again (monotonic clock), while it is down."""
    last_exit: int | None = None
    log_from: int = 0
    """Where this run of the child starts in its log (the log is appended to)."""


def last_error(text: str) -> str:
    """The last ``...error: ...`` message of a child's output, its wrapped lines joined."""
    lines = [line.strip() for line in text.strip().splitlines()]
    starts = [i for i, line in enumerate(lines) if re.match(r"^[\w ]*error:", line)]
    if not starts:
        return lines[-1] if lines else "(no output)"
    return " ".join(line for line in lines[starts[-1] :] if line)


class ConfigurationExit(PipelineError):
    """A child exited with status 2 (a configuration error): restarting cannot fix that."""


class Supervisor:
    """Keeps the pipeline's children running: one that exits is started again after a
    ``Backoff`` delay (``tick`` does one round; ``auditstream run`` calls it in a loop)."""

    CONFIG_ERROR = 2

    def __init__(
        self,
        pipeline: Pipeline,
        say: Callable[[str], None],
        backoff: Backoff = Backoff(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pipeline, self._say, self.backoff, self._clock = pipeline, say, backoff, clock
        self.children = {role: ChildState() for role in ROLES}

    def start_all(self) -> None:
        for role in ROLES:
            self._start(role)

    def _start(self, role: str) -> None:
        state = self.children[role]
        log = self.pipeline.log_path(role)
        state.log_from = log.stat().st_size if log.exists() else 0
        self.pipeline.start(role)
        state.started_at, state.due = self._clock(), None

    def tick(self) -> None:
        now = self._clock()
        for role in ROLES:
            state = self.children[role]
            proc = self.pipeline.procs.get(role)
            if proc is None:
                if state.due is not None and now >= state.due:
                    state.restarts += 1
                    self._start(role)
                    self._say(f"{role} restarted (restart {state.restarts})")
                continue
            code = proc.poll()
            if code is None:
                continue
            self.pipeline.stop(role)  # closes its log
            state.last_exit = code
            log = self.pipeline.log_path(role)
            if code == self.CONFIG_ERROR:
                why = last_error(log.read_text(errors="replace")[state.log_from :])
                raise ConfigurationExit(f"the {role} refused its configuration: {why}")
            ran = now - (state.started_at if state.started_at is not None else now)
            state.failures = 1 if ran >= self.backoff.reset_after else state.failures + 1
            delay = self.backoff.delay(state.failures)
            state.due = now + delay
            self._say(f"{role} exited with {code}; restarting it in {delay:.0f} s (log: {log})")

    def pids(self) -> dict[str, int | None]:
        return {
            role: (p.pid if (p := self.pipeline.procs.get(role)) is not None else None)
            for role in ROLES
        }


@contextlib.contextmanager
def running(env: Mapping[str, str] | None = None) -> Iterator[Pipeline]:
    pipeline = Pipeline.from_env(env)
    try:
        pipeline.start_all()
        pipeline.wait_sink_ready()
        yield pipeline
    finally:
        pipeline.stop_all()
