"""The sink's write-retry backoff (``sinks.consumer.RetryPolicy``)."""

from __future__ import annotations

import pytest

from auditstream.sinks.consumer import RetryPolicy, SinkConfig


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (6, 16.0), (7, 30.0), (50, 30.0)],
)
def test_default_delays_grow_then_cap(attempt: int, expected: float) -> None:
    assert RetryPolicy().delay(attempt) == expected


def test_delays_never_decrease() -> None:
    policy = RetryPolicy()
    delays = [policy.delay(a) for a in range(1, 40)]
    assert delays == sorted(delays)
    assert max(delays) == policy.max_seconds


def test_custom_policy() -> None:
    policy = RetryPolicy(initial_seconds=0.1, max_seconds=1.0, multiplier=3.0)
    assert [policy.delay(a) for a in (1, 2, 3, 4)] == pytest.approx([0.1, 0.3, 0.9, 1.0])


def test_constant_policy() -> None:
    policy = RetryPolicy(initial_seconds=2.0, max_seconds=10.0, multiplier=1.0)
    assert {policy.delay(a) for a in range(1, 100)} == {2.0}


@pytest.mark.parametrize("attempt", [1_025, 1_100, 10_000, 10**9])
def test_delay_stays_capped_during_a_long_outage(attempt: int) -> None:
    # The sink retries a failed write forever with this delay. After ~1025 attempts
    # (about 8.5 hours at the 30 s cap) 2.0 ** attempt overflows a float; the delay
    # must stay at the cap instead of raising OverflowError and killing the sink.
    assert RetryPolicy().delay(attempt) == 30.0


def test_sink_config_defaults_use_the_default_policy() -> None:
    config = SinkConfig(topic="t", dead_letter_topic="t.dlq")
    assert config.retry == RetryPolicy()
    assert config.max_rows == 20_000
    assert config.max_seconds == 1.0
