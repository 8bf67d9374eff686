"""Scoring on hand-made labels and alerts: hits, side effects, false positives, latency, rates;
and the in-process engine over a small simulated mix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditstream.simulation import metrics
from auditstream.simulation.evaluate import EvalConfig
from auditstream.simulation.evaluate import run as run_eval
from auditstream.simulation.labels import Kind, Label
from auditstream.simulation.metrics import SeenAlert, evaluate, percentile
from auditstream.simulation.plan import PlanConfig

T0 = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def label(
    sid: str,
    kind: str,
    subject: str,
    start: datetime = T0,
    minutes: int = 5,
    tolerate: tuple[str, ...] = (),
    emitted: dict[str, int] | None = None,
) -> Label:
    attack = kind in metrics.ATTACKS
    rule = (metrics.ATTACKS if attack else metrics.LOOKALIKES)[kind].rule
    return Label(
        id=sid,
        type=kind,
        kind=Kind.ATTACK if attack else Kind.BENIGN,
        tenant_id="acme",
        subject=subject,
        subject_kind="actor",
        window_start=start,
        window_end=start + minutes * MIN,
        expect=(rule,) if attack else (),
        tolerate=tolerate,
        forbid=() if attack else (rule,),
        event_ids=tuple(emitted or ()),
        emitted_ms=emitted or {},
    )


def alert(
    aid: str,
    rule: str,
    subject: str,
    start: datetime = T0,
    minutes: int = 1,
    seen_ms: int = 0,
    evidence: tuple[str, ...] = (),
) -> SeenAlert:
    return SeenAlert(aid, rule, "acme", subject, start, start + minutes * MIN, evidence, seen_ms)


def test_hits_side_effects_and_false_positives() -> None:
    labels = [
        label("bf-1", "brute_force", "u1", tolerate=("new_location",), emitted={"e1": 1_000}),
        label("bf-2", "brute_force", "u2", emitted={"e2": 5_000}),
        label("fp-1", "forgotten_password", "u3"),
    ]
    alerts = [
        alert("a1", "brute_force", "u1", seen_ms=1_250, evidence=("e0", "e1")),
        alert("a1", "brute_force", "u1", seen_ms=9_999),  # re-sent after a restart: same id
        alert("a2", "new_location", "u1"),  # tolerated side effect of bf-1
        alert("a3", "brute_force", "u3"),  # on the look-alike: a false positive
        alert("a4", "brute_force", "u9"),  # on background activity: a false positive
        alert("a5", "brute_force", "u2", start=T0 + timedelta(hours=3)),  # outside bf-2's window
    ]
    report = evaluate(alerts, labels, actor_days=2_000)
    (bf,) = report.attacks
    assert (bf.labels, bf.detected, bf.hits, bf.false_positives) == (2, 1, 1, 3)
    assert bf.recall == 0.5
    assert bf.precision == pytest.approx(1 / 4)
    assert bf.f1 == pytest.approx(2 * 0.25 * 0.5 / 0.75)
    assert bf.latency_p50_s == pytest.approx(0.25)  # from e1's emission to the first arrival
    assert bf.missed == ("bf-2",)
    assert not bf.meets_target
    (fp,) = report.lookalikes
    assert (fp.labels, fp.quiet, fp.alerts) == (1, 0, {"brute_force": 1})
    assert report.side_effects_by_rule == {"new_location": 1}
    assert report.false_positives == 3
    assert report.per_10k_actor_days == pytest.approx(15.0)
    assert [a.subject for a in report.unexplained] == ["u9", "u2"]


def test_an_attack_explains_more_than_a_lookalike_on_the_same_subject() -> None:
    labels = [
        label("trip", "plausible_trip", "u1", minutes=600, tolerate=("new_location",)),
        label("it", "impossible_travel", "u1", start=T0 + timedelta(hours=2)),
    ]
    report = evaluate(
        [
            alert("a1", "impossible_travel", "u1", start=T0 + timedelta(hours=2)),
            alert("a2", "new_location", "u1", start=T0 + timedelta(minutes=1)),
        ],
        labels,
        actor_days=100,
    )
    assert report.attacks[0].detected == 1
    assert report.attacks[0].precision == 1.0
    trip = report.lookalikes[0]
    assert trip.quiet == 1  # new_location was tolerated on the trip ...
    assert report.false_positives_by_rule == {"new_location": 1}  # ... but a benign alert


def test_a_perfect_type_meets_the_target() -> None:
    labels = [label(f"md-{i}", "mass_deletion", f"u{i}") for i in range(20)]
    alerts = [alert(f"a{i}", "mass_deletion", f"u{i}") for i in range(20)]
    report = evaluate(alerts, labels, actor_days=0)
    assert report.attacks[0].meets_target
    assert report.meets_target
    assert report.per_10k_actor_days is None
    assert report.attacks[0].latency_p50_s is None  # nothing emitted, nothing to time


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(v) for v in range(1, 101)], 95) == 95.0
    assert percentile([5.0], 95) == 5.0


def test_report_json_has_every_figure() -> None:
    report = evaluate([alert("a1", "mass_deletion", "u1")], [label("m", "mass_deletion", "u1")], 10)
    doc = report.to_json()
    assert doc["attacks"][0]["precision"] == 1.0
    assert doc["benign"]["per_10k_actor_days"] == 0.0
    assert doc["meets_target"] is True


def test_in_process_small_mix_detects_every_attack_and_spares_the_lookalikes(
    tmp_path: Path,
) -> None:
    from auditstream.config import Settings

    settings = Settings.from_env({"AUDITSTREAM_HOME": str(tmp_path)})
    config = EvalConfig(
        plan=PlanConfig(
            tenants=1,
            users=16,  # spraying needs 12 free users; two new users are taken for the run
            seed=3,
            history_days=21,
            attack_days=5,
            attacks=1,
            lookalikes=1,
            end=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        ),
        in_process=True,
    )
    result = run_eval(settings, config)
    report = result.report
    # A 2-day-old account is scored against its peers: in this 16-user tenant, spread over six
    # partitions, the prior holds few sign-ins, maybe too few to call a night hour odd.
    assert [t.type for t in report.attacks if t.recall != 1.0] in ([], ["new_user_odd_hour"])
    assert [t.type for t in report.lookalikes if t.quiet != t.labels] == []
    assert (result.home / "labels.jsonl").read_text().count("\n") == 21  # 12 attacks, 9 look-alikes
    assert "mass_deletion" in (result.home / "detectors.toml").read_text()


def test_an_alert_about_the_attackers_address_matches_the_victims_label() -> None:
    from auditstream.simulation.labels import Kind, Label
    from auditstream.simulation.metrics import SeenAlert, match

    t0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    label = Label(
        id="account_failures-001",
        type="account_failures",
        kind=Kind.ATTACK,
        tenant_id="acme",
        subject="usr_1",
        subject_kind="actor",
        window_start=t0,
        window_end=t0,
        expect=("account_sign_in_failures",),
        tolerate=("source_sign_in_failures",),
        event_ids=("e1", "e2"),
    )
    by_ip = SeenAlert("a", "source_sign_in_failures", "acme", "198.51.100.9", t0, t0, ("e2",), 0)
    other = SeenAlert("b", "source_sign_in_failures", "acme", "198.51.100.9", t0, t0, ("e9",), 0)
    [m1], [m2] = match([by_ip], [label]), match([other], [label])
    assert (m1.relation, m1.label) == ("side_effect", label)
    assert (m2.relation, m2.label) == ("false_positive", None)
