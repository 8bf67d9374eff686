"""``pipeline.Supervisor``: a child that exits is restarted after a backoff; a configuration
error stops the run (fake children, fake clock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from auditstream.config import Settings
from auditstream.pipeline import ROLES, Backoff, ConfigurationExit, Pipeline, Supervisor


class FakeProc:
    _next = 100

    def __init__(self) -> None:
        FakeProc._next += 1
        self.pid = FakeProc._next
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


class FakePipeline(Pipeline):
    def start(self, role: str) -> None:
        self.procs[role] = FakeProc()  # type: ignore[assignment]

    def stop(self, role: str, timeout: float = 60.0, kill: bool = False) -> int | None:
        proc = self.procs.pop(role, None)
        return None if proc is None else proc.returncode


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _supervisor(tmp_path: Path) -> tuple[Supervisor, FakePipeline, Clock, list[str]]:
    settings = Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path)})
    pipeline = FakePipeline(env={}, settings=settings)
    said: list[str] = []
    clock = Clock()
    sup = Supervisor(pipeline, said.append, Backoff(first=1, most=8, reset_after=60), clock)
    sup.start_all()
    return sup, pipeline, clock, said


def _crash(pipeline: Pipeline, role: str, code: int = 1) -> Any:
    proc: Any = pipeline.procs[role]
    proc.returncode = code
    return proc


def test_backoff_doubles_up_to_its_bound() -> None:
    b = Backoff(first=1, most=30)
    assert [b.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_crashed_child_is_restarted_after_the_backoff(tmp_path: Path) -> None:
    sup, pipeline, clock, said = _supervisor(tmp_path)
    first = _crash(pipeline, "normalizer", -9)
    clock.now = 10.0
    sup.tick()
    assert "normalizer" not in pipeline.procs
    assert "normalizer exited with -9; restarting it in 1 s" in said[-1]
    clock.now = 10.5
    sup.tick()
    assert "normalizer" not in pipeline.procs  # not yet
    clock.now = 11.0
    sup.tick()
    assert pipeline.procs["normalizer"].pid != first.pid
    assert sup.children["normalizer"].restarts == 1
    assert sup.children["normalizer"].last_exit == -9
    assert set(pipeline.procs) == set(ROLES)


def test_repeated_quick_crashes_back_off_and_a_long_run_resets(tmp_path: Path) -> None:
    sup, pipeline, clock, _ = _supervisor(tmp_path)
    delays = []
    for _ in range(5):
        _crash(pipeline, "worker")
        sup.tick()
        delays.append(sup.children["worker"].due - clock.now)  # type: ignore[operator]
        clock.now = sup.children["worker"].due  # type: ignore[assignment]
        sup.tick()
        clock.now += 1  # crashes 1 s after each start
    assert delays == [1, 2, 4, 8, 8]
    clock.now += 120  # then runs for two minutes
    _crash(pipeline, "worker")
    sup.tick()
    assert sup.children["worker"].due - clock.now == 1  # type: ignore[operator]


def test_a_configuration_error_is_not_restarted(tmp_path: Path) -> None:
    settings = Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path)})
    log = Pipeline(env={}, settings=settings).log_path("worker")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("error: an earlier run's message\n")
    sup, pipeline, _, _ = _supervisor(tmp_path)
    with log.open("a") as out:  # after its start: what this run of it said, wrapped
        out.write(
            "starting\ndetector configuration error: x.toml: names unknown\ndetector(s) ['y']\n"
        )
    _crash(pipeline, "worker", 2)
    with pytest.raises(ConfigurationExit) as raised:
        sup.tick()
    assert str(raised.value) == (
        "the worker refused its configuration: detector configuration error: x.toml: names "
        "unknown detector(s) ['y']"
    )
