from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from auditstream.config import Topics
from auditstream.infra import topics


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_waits_for_the_cluster_and_reports_once_per_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = 20  # 100 s of outage at a 5 s retry
    calls: list[dict[str, Any]] = []

    def ensure(bootstrap: str, wanted: Topics, security: Any = None) -> list[str]:
        calls.append(dict(security))
        if len(calls) <= failures:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
        return ["raw"]

    monkeypatch.setattr(topics, "ensure_topics", ensure)
    clock = Clock()
    lines: list[str] = []
    created = topics.ensure_topics_patiently(
        "127.0.0.1:1", Topics(), say=lines.append, sleep=clock.sleep, clock=clock
    )
    assert created == ["raw"]
    assert len(calls) == failures + 1
    assert all(c["log_level"] == "0" for c in calls)  # no librdkafka line per attempt
    # first line at once, then one per 30 s of a 100 s outage, then "reachable again"
    assert len(lines) == 1 + 3 + 1
    assert "unreachable" in lines[0]
    assert "Is the broker running?" in lines[0]
    assert lines[-1].endswith("reachable again.")


def test_other_errors_are_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def ensure(bootstrap: str, wanted: Topics, security: Any = None) -> list[str]:
        raise ValueError("bad topic config")

    monkeypatch.setattr(topics, "ensure_topics", ensure)
    with pytest.raises(ValueError, match="bad topic config"):
        topics.ensure_topics_patiently("127.0.0.1:1", Topics(), say=print)
