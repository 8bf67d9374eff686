"""CPU time and resident memory of processes, read from /proc (no psutil).

CPU is reported as a percentage of one core (``200`` = both cores of a 2-core machine),
from the difference of two samples; peak RSS is the kernel's high-water mark (``VmHWM``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


@dataclass(frozen=True)
class SystemSample:
    busy_seconds: float
    total_seconds: float


def parse_stat(text: str, ticks: int = CLOCK_TICKS) -> float:
    """User + system CPU seconds from ``/proc/<pid>/stat``.

    The command name (field 2) may contain spaces and parentheses: split after the last ``)``.
    """
    rest = text[text.rindex(")") + 2 :].split()
    utime, stime = int(rest[11]), int(rest[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / ticks


def parse_status(text: str) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes from ``/proc/<pid>/status``."""
    values = {"VmRSS": 0, "VmHWM": 0}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in values:
            values[name] = int(rest.split()[0]) * 1024  # always kB
    return values["VmRSS"], values["VmHWM"]


def parse_system(text: str, ticks: int = CLOCK_TICKS) -> SystemSample:
    """Busy and total CPU seconds of the whole machine, from the ``cpu`` line of /proc/stat."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            fields = [int(v) for v in line.split()[1:]]
            # user nice system idle iowait irq softirq steal (guest time is inside user)
            total = sum(fields[:8])
            idle = fields[3] + fields[4]
            return SystemSample((total - idle) / ticks, total / ticks)
    raise ValueError("no cpu line in /proc/stat")


def read(pid: int, proc: Path = Path("/proc")) -> ProcSample | None:
    """A sample of ``pid``, or None when it is gone."""
    try:
        cpu = parse_stat((proc / str(pid) / "stat").read_text())
        rss, peak = parse_status((proc / str(pid) / "status").read_text())
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None
    return ProcSample(cpu, rss, peak)


def read_system(proc: Path = Path("/proc")) -> SystemSample:
    return parse_system((proc / "stat").read_text())


@dataclass(frozen=True)
class Snapshot:
    at: float
    """Monotonic seconds."""
    procs: Mapping[str, ProcSample]
    system: SystemSample


def snapshot(pids: Mapping[str, int], at: float) -> Snapshot:
    procs = {role: s for role, pid in pids.items() if (s := read(pid)) is not None}
    return Snapshot(at, procs, read_system())


@dataclass(frozen=True)
class CpuUsage:
    """Average CPU between two snapshots, in % of one core, by role."""

    by_role: Mapping[str, float]
    machine: float
    """All processes of the machine, in % of one core (so up to 100 x cores)."""
    seconds: float

    @property
    def others(self) -> float:
        """What the machine spent outside the roles measured (other processes, kernel)."""
        return max(0.0, self.machine - sum(self.by_role.values()))


def usage(before: Snapshot, after: Snapshot) -> CpuUsage:
    wall = max(1e-9, after.at - before.at)
    by_role = {
        role: 100.0 * (after.procs[role].cpu_seconds - b.cpu_seconds) / wall
        for role, b in before.procs.items()
        if role in after.procs
    }
    sys_busy = after.system.busy_seconds - before.system.busy_seconds
    sys_total = after.system.total_seconds - before.system.total_seconds
    cores = sys_total / wall if sys_total > 0 else 1.0
    machine = 100.0 * cores * (sys_busy / sys_total) if sys_total > 0 else 0.0
    return CpuUsage(by_role, machine, wall)
