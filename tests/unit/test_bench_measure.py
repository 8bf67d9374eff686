"""Benchmark measurement: percentiles, alert matching, lag math, /proc parsing, stage rates."""

from __future__ import annotations

import orjson
import pytest

from auditstream.bench import procstats
from auditstream.bench.e2e import (
    Sample,
    cpu_split,
    drain_rate,
    per_event_us,
    progress_rate,
    short_names,
    verdict,
)
from auditstream.bench.lag import LagSummary, Position, bounded, growth, partition_lag, positions
from auditstream.bench.latency import AlertMatcher, Percentiles, percentile
from auditstream.bench.load import Sent, StepLoad
from auditstream.config import Settings

# -- percentiles --------------------------------------------------------------------------


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="percentage"):
        percentile([1.0], 101)


def test_percentiles_of_unsorted_values() -> None:
    p = Percentiles.of([30.0, 10.0, 20.0, 40.0, 1000.0])
    assert p is not None
    assert (p.count, p.p50, p.max) == (5, 30.0, 1000.0)
    assert p.p95 == pytest.approx(808.0)
    assert p.p99 == pytest.approx(961.6)
    assert Percentiles.of([]) is None


# -- alerts back to their trigger events ----------------------------------------------------


def alert(*evidence: str, rule: str = "mass_deletion") -> bytes:
    return orjson.dumps({"rule": rule, "evidence_event_ids": list(evidence)})


def test_an_alert_is_timed_from_the_latest_trigger_event_it_names() -> None:
    sent = {"a": Sent(step=2, burst=7, at=100.0), "b": Sent(step=2, burst=7, at=100.040)}
    matcher = AlertMatcher(sent.get)
    found = matcher.on_alert(alert("a", "b", "unknown"), arrived=100.140)
    assert found is not None
    assert (found.step, found.burst, found.rule) == (2, 7, "mass_deletion")
    assert found.ms == pytest.approx(100.0)
    assert matcher.for_step(2) == [pytest.approx(100.0)]
    assert matcher.for_step(1) == []


def test_alerts_about_other_things_and_repeats_are_counted_not_timed() -> None:
    sent = {"a": Sent(step=1, burst=1, at=5.0)}
    matcher = AlertMatcher(sent.get)
    assert matcher.on_alert(alert("x", rule="impossible_travel"), 6.0) is None
    assert matcher.on_alert(b"not json", 6.0) is None
    assert matcher.on_alert(alert("a"), 6.0) is not None
    assert matcher.on_alert(alert("a"), 7.0) is None
    assert (matcher.other, matcher.repeated, len(matcher.matched)) == (2, 1, 1)


# -- lag ---------------------------------------------------------------------------------


def test_partition_lag_counts_an_uncommitted_partition_from_its_low_watermark() -> None:
    assert partition_lag(committed=40, low=0, high=100) == 60
    assert partition_lag(committed=None, low=10, high=100) == 90
    assert partition_lag(committed=5, low=10, high=100) == 90  # retention passed the commit
    assert partition_lag(committed=120, low=0, high=100) == 0


def test_positions_sum_partitions_per_topic() -> None:
    committed = {("raw", 0): 10, ("raw", 1): None, ("out", 0): 3}
    marks = {("raw", 0): (0, 15), ("raw", 1): (2, 7), ("out", 0): (0, 3)}
    got = positions(committed, marks)
    assert got["raw"] == Position(committed=10 + 2, high=22)
    assert got["raw"].lag == 10
    assert got["out"].lag == 0


def test_growth_is_the_fitted_slope() -> None:
    assert growth([(0.0, 0.0), (1.0, 10.0), (2.0, 20.0)]) == pytest.approx(10.0)
    assert growth([(0.0, 5.0)]) == 0.0
    assert growth([(1.0, 5.0), (1.0, 9.0)]) == 0.0


def test_a_commit_sawtooth_is_bounded_a_steady_climb_is_not() -> None:
    rate = 1000.0
    saw = [(t / 2, 1000.0 if t % 2 else 100.0) for t in range(0, 60)]
    assert bounded(saw, rate)
    climb = [(float(t), 200.0 * t) for t in range(0, 30)]  # 20% of the rate, every second
    assert not bounded(climb, rate)
    assert bounded([(0.0, 1e6)], rate)


def test_lag_summary() -> None:
    summary = LagSummary.of([(0.0, 5.0), (1.0, 50.0), (2.0, 7.0)])
    assert (summary.start, summary.end, summary.max) == (5, 7, 50)


# -- /proc --------------------------------------------------------------------------------


STAT = (
    "4242 (python3 (x) y) S 1 4242 4242 0 -1 4194560 9 0 0 0 "
    "250 50 0 0 20 0 3 0 100 1000 100 18446744073709551615"
)


def test_parse_stat_survives_parentheses_in_the_command_name() -> None:
    assert procstats.parse_stat(STAT, ticks=100) == pytest.approx(3.0)


def test_parse_status_reads_rss_and_its_peak() -> None:
    text = "Name:\tpython3\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t3\n"
    assert procstats.parse_status(text) == (100 * 2**20, 200 * 2**20)


def test_parse_system_and_usage() -> None:
    before = procstats.parse_system("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n", ticks=100)
    after = procstats.parse_system("cpu  200 0 200 800 100 0 0 0 0 0\n", ticks=100)
    assert before.busy_seconds == pytest.approx(2.0)
    a = procstats.Snapshot(0.0, {"worker": procstats.ProcSample(10.0, 0, 0)}, before)
    b = procstats.Snapshot(1.5, {"worker": procstats.ProcSample(11.2, 0, 0)}, after)
    usage = procstats.usage(a, b)
    assert usage.by_role["worker"] == pytest.approx(80.0)  # 1.2 s of CPU in 1.5 s
    assert usage.machine == pytest.approx(133.3, rel=0.01)  # 2 of 3 CPU-seconds busy
    assert usage.others == pytest.approx(53.3, rel=0.01)


def test_a_process_that_is_gone_reads_as_none(tmp_path: object) -> None:
    assert procstats.read(2**22 + 12345) is None


# -- stage rates and the verdict ------------------------------------------------------------


def sample(at: float, **committed: int) -> Sample:
    snap = procstats.Snapshot(at, {}, procstats.SystemSample(0, 0))
    return Sample(at, {k.replace("_", "/"): Position(v, v) for k, v in committed.items()}, snap)


def test_progress_rate_over_a_window() -> None:
    samples = [sample(10.0, sink_normalized=1000), sample(20.0, sink_normalized=31_000)]
    assert progress_rate(samples, "sink/normalized") == pytest.approx(3000.0)
    assert progress_rate(samples[:1], "sink/normalized") == 0.0


def test_drain_rate_between_ten_and_ninety_percent() -> None:
    samples = [sample(float(t), worker_raw=500 + min(100_000, 5000 * t)) for t in range(0, 30)]
    # 500 committed before the backlog; 100k more at 5000/s
    assert drain_rate(samples, "worker/raw", start=500, count=100_000) == pytest.approx(5000.0)
    assert drain_rate(samples[:3], "worker/raw", start=500, count=100_000) == 0.0


def test_verdict() -> None:
    load = StepLoad(1, 1000.0, started_wall=0.0, ended_wall=60.0, produced=60_000)
    flat = {"worker/raw": [(float(t), 300.0) for t in range(50)]}
    assert verdict(1000.0, load, 990.0, flat) == (True, "lag flat")
    climbing = {"worker/raw": [(float(t), 300.0 * t) for t in range(50)]}
    assert verdict(1000.0, load, 700.0, climbing) == (False, "lag grows: worker/raw")
    slow = StepLoad(1, 1000.0, started_wall=0.0, ended_wall=60.0, produced=30_000)
    assert verdict(1000.0, slow, 500.0, flat)[1] == "generator reached 500/s only"
    assert verdict(1000.0, load, 500.0, flat) == (False, "stored 500/s of 1,000/s")


def test_short_names_follow_the_topic_prefix() -> None:
    settings = Settings.from_env(
        {
            "AUDITSTREAM_HOME": "/tmp/x",
            "AUDITSTREAM_TOPIC_PREFIX": "b1.",
            "KAFKA_BOOTSTRAP_SERVERS": "k:1",
        }
    )
    names = short_names("bench-1", settings)
    assert names["bench-1-normalizer/b1.audit.events.raw"] == "worker/raw"  # normalize stage
    assert names["bench-1-sink/b1.audit.events"] == "sink/normalized"
    assert names["bench-1-worker/detect-ip-b1.audit.events-by-ip-repartition"] == "worker/by-ip"


def snap(at: float, busy: float, **cpu: float) -> procstats.Snapshot:
    procs = {role: procstats.ProcSample(v, 0, 0) for role, v in cpu.items()}
    return procstats.Snapshot(at, procs, procstats.SystemSample(busy, 2 * at))


def test_cpu_is_charged_per_event_each_role_handled() -> None:
    before = snap(0.0, 0.0, worker=0.0, sink=0.0, bench=0.0)
    after = snap(10.0, 12.0, worker=8.0, sink=1.0, bench=0.5)
    handled = {"worker": 20_000.0, "sink": 25_000.0, "*": 25_000.0}
    us = per_event_us(before, after, handled)
    assert us == {"worker": 400.0, "sink": 40.0, "bench": 20.0}
    split = cpu_split(before, after)
    assert split["worker"] == 80.0
    assert split["machine"] == 120.0
    assert split["others"] == pytest.approx(120.0 - 80.0 - 10.0 - 5.0)


def test_several_workers_add_up() -> None:
    before = snap(0.0, 0.0, **{"worker-1": 0.0, "worker-2": 0.0})
    after = snap(10.0, 10.0, **{"worker-1": 6.0, "worker-2": 4.0})
    assert per_event_us(before, after, {"worker": 10_000.0})["worker"] == 1000.0
    assert cpu_split(before, after)["worker"] == 100.0
