"""The one rate-limited log: counts what it holds back, and never %-formats a message twice."""

from __future__ import annotations

import logging

import pytest

from auditstream.infra.ratelog import RateLimitedLog


def test_a_message_with_a_percent_sign_survives_the_suppressed_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    rate = RateLimitedLog(logging.getLogger("t.ratelog"), every=30, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="t.ratelog"):
        assert rate.warning("disk", "disk 100% full")
        assert not rate.warning("disk", "disk 100% full")
        now[0] = 31.0
        assert rate.warning("disk", "disk 100% full")
    assert [r.getMessage() for r in caplog.records] == [
        "disk 100% full",
        "disk 100% full (1 more like this in the last 30 s)",
    ]


def test_allow_counts_per_condition() -> None:
    now = [0.0]
    rate = RateLimitedLog(logging.getLogger("t.ratelog"), every=10, clock=lambda: now[0])
    assert rate.allow("a") == 0
    assert rate.allow("a") is None
    assert rate.allow("b") == 0
    assert rate.allow("a") is None
    now[0] = 10.0
    assert rate.allow("a") == 2
