"""``auditstream eval`` on a small labelled mix, through the real broker, worker and sink:
every injected attack is detected, no look-alike sets off the rule it imitates, and every
alert the worker published is stored."""

from __future__ import annotations

import pytest

from auditstream.infra.topics import topics_with
from auditstream.simulation.evaluate import EvalConfig, run
from auditstream.simulation.plan import PlanConfig
from auditstream.simulation.scenarios import ATTACKS, LONG, LOOKALIKES

from .conftest import Env

pytestmark = pytest.mark.integration


# The scenarios of a new user's first week and of a traveller need a whole week of attack
# period to themselves (``LONG``); this mix has five days. They run in the unit tests'
# in-process mix and in ``auditstream eval``.
TYPES = tuple(name for name in (*ATTACKS, *LOOKALIKES) if name not in LONG)


def test_small_mix_every_attack_detected_and_lookalikes_quiet(env: Env) -> None:
    config = EvalConfig(
        plan=PlanConfig(
            tenants=1,
            users=24,
            seed=5,
            history_days=21,
            attack_days=5,
            attacks=1,
            lookalikes=1,
            types=TYPES,
        ),
        rate=200,
        drain_timeout=120,
        stall_seconds=45,
    )
    steps: list[str] = []
    result = run(env.settings, config, progress=lambda step, done, total: steps.append(step))
    report = result.report

    assert {t.type: t.recall for t in report.attacks} == {
        "mass_deletion": 1.0,
        "off_hours_sign_in": 1.0,
        "brute_force": 1.0,
        "password_spraying": 1.0,
        "impossible_travel": 1.0,
        "privilege_escalation": 1.0,
        "mass_export": 1.0,
        "account_failures": 1.0,
        "source_failures": 1.0,
        "low_and_slow": 1.0,
        "bulk_deletion": 1.0,
    }
    assert {t.type: t.quiet for t in report.lookalikes} == {
        "planned_cleanup": 1,
        "plausible_trip": 1,
        "night_shift": 1,
        "forgotten_password": 1,
        "month_end_export": 1,
        "stale_password": 1,
        "project_cascade": 1,
    }
    for t in report.attacks:
        assert t.latency_p50_s is not None, t
        assert 0 <= t.latency_p50_s < 30, t
    assert result.alerts_stored == report.alerts  # the sink stored each published alert once
    assert result.events > 3000
    assert [p for p, _, _ in result.phases] == [
        "History (learning baselines)",
        "Attack period at 200/s",
    ]
    assert "Worker caught up: attack period at 200/s" in steps
    assert (result.home / "labels.jsonl").read_text().count("\n") == len(TYPES)
    assert topics_with(env.bootstrap, f"eval-{result.run_id}") == []  # cleaned up
