"""Learned anomalies end to end: normal history through the pipeline, a model trained from the
store by the CLI's function, a worker restarted with it, and an explained alert for a burst.

Two bursts cover both ways a window closes: mallory's by her own later event, trudy's by the
timer, once another actor's event on the same partition moves its watermark past the window.
"""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from rich.console import Console

from auditstream.cli.model import run_train
from auditstream.detectors.anomaly import model, training, windows
from auditstream.detectors.anomaly.features import facts_from_event, millis
from auditstream.producers import AuditProducer, ProducerConfig
from auditstream.schemas.event import AuditEvent, partition_key

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
RULES = windows.WindowRules()
DAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
NAMES = ("ada", "bob", "cy", "dee", "eli", "fay", "gus", "mallory", "trudy")
ACTORS = [f"usr_{name}" for name in NAMES]


def _event(actor: str, action: str, at: datetime, resource: str, **extra: Any) -> AuditEvent:
    return AuditEvent.model_validate(
        {
            "tenant_id": "acme",
            "actor": {"id": actor},
            "action": action,
            "resource": {"type": "document", "id": resource},
            "occurred_at": at,
            **extra,
        }
    )


def history(seed: int = 4) -> list[AuditEvent]:
    """Two working days (09:00-17:00 UTC) of ordinary work, three and two days ago."""
    rng = random.Random(seed)
    out = []
    for day in (3, 2):
        for hour in range(9, 17):
            start = DAY - timedelta(days=day) + timedelta(hours=hour)
            for actor in ACTORS:
                if rng.random() < 0.15:
                    continue
                minutes = sorted(rng.sample(range(60), rng.randint(4, 12)))
                for minute in minutes:
                    action = rng.choices(
                        ["access", "update", "create", "comment", "delete", "export"],
                        [40, 30, 15, 10, 3, 2],
                    )[0]
                    out.append(
                        _event(actor, action, start + timedelta(minutes=minute),
                               f"doc_{rng.randrange(30)}")
                    )  # fmt: skip
    return out


def emit(config: ProducerConfig, events: list[AuditEvent]) -> None:
    with AuditProducer(config) as audit:
        for event in events:
            audit.emit(event)
        assert audit.flush(10) == 0


def normalized_partition(actor: str, partitions: int) -> int:
    """Where the worker's Faust producer puts this actor on the normalized topic."""
    everything = list(range(partitions))
    return int(DefaultPartitioner()(partition_key("acme", actor), everything, everything))


def test_a_burst_after_normal_history_raises_an_explained_anomaly_alert(
    env: Env, tmp_path: Path
) -> None:
    topics = env.settings.topics
    produce = ProducerConfig(bootstrap_servers=env.bootstrap, topic=topics.raw)
    past = history()
    pipeline = env.pipeline()
    try:
        pipeline.start_all()
        with AuditProducer(produce) as audit:
            for event in past:
                audit.emit(event)
            assert audit.flush(10) == 0
        pipeline.wait_sink_ready()
        wait_for(
            lambda: env.scalar("SELECT count() FROM audit_events") >= len(past),
            what=f"{len(past)} history rows",
        )

        # Train through the running sink, as `auditstream model train --days 4` does.
        path = tmp_path / "anomaly.model"
        out = io.StringIO()
        params = training.TrainingParams(days=4, min_windows=20)
        run_train(env.settings, params, path, Console(file=out, width=120))
        header = model.read_header(path)
        assert header.events == len(past)
        assert "Trained the anomaly model" in out.getvalue()
        assert f"{len(past):,}" in out.getvalue()

        # The drift check, on the real store: the SQL windows are the stream's windows.
        start, end = training.training_range(NOW, 4)
        from_sql = {
            (w.actor_id, w.start_ms): w.summary for w in training.fetch_windows(env.sql, start, end)
        }
        states: dict[str, dict[str, Any]] = {}
        closed: list[windows.ClosedWindow] = []
        for offset, e in enumerate(past):
            state = states.setdefault(e.actor.id, {})
            closed += windows.observe(
                state, facts_from_event(e), "acme", e.actor.id, 0, offset, 2**62, RULES
            )[1]
        for state in states.values():
            closed += windows.close_due(state, 2**62)
        assert from_sql == {(w.actor_id, w.start_ms): w.summary for w in closed}

        # Restart the worker with the model, then the bursts.
        pipeline.stop("worker")
        pipeline.env = {**pipeline.env, "AUDITSTREAM_ANOMALY_MODEL": str(path)}
        pipeline.start("worker")

        sent: list[dict[str, Any]] = []

        def anomaly_alerts() -> dict[str, dict[str, Any]]:
            messages = env.read_topic(topics.alerts, expected=1, timeout=2)
            sent[:] = [orjson.loads(m.value()) for m in messages]
            return {a["actor_id"]: a for a in sent if a["rule"] == "anomalous_activity"}

        # mallory: a night of exports, closed by her own event 66 minutes later
        night = DAY - timedelta(days=1) + timedelta(hours=2)  # 02:00 UTC yesterday
        exfiltration = [
            _event("usr_mallory", "export", night + timedelta(seconds=10 * i), f"doc_x{i}")
            for i in range(120)
        ]
        closer = _event("usr_mallory", "access", night + timedelta(minutes=66), "doc_1")
        emit(produce, [*exfiltration, closer])
        wait_for(
            lambda: "usr_mallory" in anomaly_alerts(), timeout=30, interval=0.5, what="mallory"
        )

        # A restart: the windows table comes back from its changelog; nothing is re-sent.
        pipeline.stop("worker")
        pipeline.start("worker")

        # trudy: a burst of failed sign-ins, then silence; another actor's later event on
        # her partition (once her burst is all there) moves the watermark: the timer closes it
        guessing = [
            _event("usr_trudy", "login_failed", night + timedelta(hours=1, seconds=20 * i),
                   f"sess_{i}", outcome="failure")
            for i in range(60)
        ]  # fmt: skip
        emit(produce, guessing)
        partition = normalized_partition("usr_trudy", topics.partitions)
        neighbour = next(
            f"usr_n{i}"
            for i in range(1000)
            if normalized_partition(f"usr_n{i}", topics.partitions) == partition
        )
        failed = "SELECT count() FROM audit_events WHERE action = 'sign_in_failed'"
        wait_for(lambda: env.scalar(failed) >= len(guessing), what="trudy's burst stored")
        emit(produce, [_event(neighbour, "access", night + timedelta(hours=2, minutes=20), "d")])
        alerts = wait_for(
            lambda: (found := anomaly_alerts()) and "usr_trudy" in found and found,
            timeout=30,
            interval=0.5,
            what="trudy's alert",
        )
        pipeline.check()
    finally:
        pipeline.stop_all()

    assert set(alerts) == {"usr_mallory", "usr_trudy"}
    assert len([a for a in sent if a["rule"] == "anomalous_activity"]) == 2
    mallory = alerts["usr_mallory"]
    assert mallory["mitre_technique"] == "T1078"
    assert mallory["window_start"] == f"{night:%Y-%m-%dT%H:%M:%S}.000Z"
    metrics = [o["metric"] for o in mallory["observations"]]
    assert "exports" in metrics[:3]
    exports = next(o for o in mallory["observations"] if o["metric"] == "exports")
    assert exports["observed"] == 120
    assert "exports 120" in mallory["title"]
    assert str(exfiltration[-1].event_id) in mallory["evidence_event_ids"]
    trudy = alerts["usr_trudy"]
    trudy_metrics = [o["metric"] for o in trudy["observations"]]
    assert {"failed_sign_ins", "failure_ratio"} & set(trudy_metrics[:3])
    assert millis(datetime.fromisoformat(trudy["window_start"])) == millis(
        night + timedelta(hours=1)
    )
