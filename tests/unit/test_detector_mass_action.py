"""Mass actions count requests: a cascade or one bulk request is one, many big requests alert."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditstream.detectors.base import Finding
from auditstream.detectors.mass_action import MassActionSettings, MassDeletion, request_of
from auditstream.schemas.event import AuditEvent

T0 = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
MD = MassDeletion()
DEFAULT = MassActionSettings()


def delete(
    seconds: float, correlation: str | None = None, parent: uuid.UUID | None = None, n: int = 0
) -> AuditEvent:
    return AuditEvent(
        occurred_at=T0 + timedelta(seconds=seconds),
        tenant_id="acme",
        actor={"id": "usr_1"},
        action="delete",
        resource={"type": "task", "id": f"t{n}"},
        correlation_id=correlation,
        parent_event_id=parent,
    )


def run(events: list[AuditEvent], settings: MassActionSettings = DEFAULT) -> list[Finding]:
    state: dict[str, Any] = {}
    out: list[Finding] = []
    for e in events:
        out += MD.observe(e, state, settings, {})
        state = json.loads(json.dumps(state))
    return out


def cascade(start: float, children: int, request: str) -> list[AuditEvent]:
    root = delete(start, request, n=0)
    return [
        root,
        *(delete(start + 0.01 * i, request, root.event_id, i) for i in range(1, children + 1)),
    ]


def test_a_project_deleting_its_25_tasks_is_one_deletion() -> None:
    assert run(cascade(0, 25, "req_1")) == []


def test_a_cascade_without_correlation_id_counts_once_by_its_parent() -> None:
    root = delete(0)
    children = [delete(0.01 * i, parent=root.event_id, n=i) for i in range(1, 40)]
    assert request_of(children[0]) == request_of(root)
    assert run([root, *children]) == []


def test_one_delete_selected_of_80_items_is_quiet() -> None:
    assert run([delete(i * 0.05, "req_bulk", n=i) for i in range(80)]) == []


def test_25_separate_deletions_alert_as_before() -> None:
    events = [delete(i * 10, n=i) for i in range(25)]
    [finding] = run(events)
    assert finding.observations[0].observed == 25
    assert finding.window_start == T0
    assert finding.window_end == events[-1].occurred_at
    assert "counting each request once" in finding.explanation
    assert run(events[:24]) == []


def test_many_requests_each_deleting_a_lot_alert() -> None:
    events = [e for r in range(4) for e in cascade(r * 60, 29, f"req_{r}")]
    [finding] = run(events)
    assert finding.observations[0].observed == 4  # requests
    assert finding.observations[1].observed >= 100  # items
    assert "bulk threshold" in finding.explanation
    assert {e.correlation_id for e in events[:3]} == {"req_0"}


def test_two_big_requests_are_quiet() -> None:
    # Two clean-ups of 60 items each: below bulk_requests (3).
    assert run([e for r in range(2) for e in cascade(r * 60, 59, f"req_{r}")]) == []


def test_bulk_settings_are_validated_and_used() -> None:
    events = [e for r in range(2) for e in cascade(r * 60, 59, f"req_{r}")]
    assert len(run(events, MassActionSettings(bulk_requests=2))) == 1
    with pytest.raises(ValueError, match="greater than or equal"):
        MassActionSettings(bulk_requests=1)


@pytest.mark.parametrize("seed", range(5))
def test_the_same_finding_in_any_arrival_order(seed: int) -> None:
    events = [delete(i * 7, n=i) for i in range(25)]
    rng = random.Random(seed)
    late = sorted(events, key=lambda e: e.occurred_at + timedelta(seconds=rng.uniform(0, 60)))
    [a], [b] = run(events), run(late)
    assert (a.window_start, a.window_end, a.explanation) == (
        b.window_start,
        b.window_end,
        b.explanation,
    )
    assert set(a.evidence) == set(b.evidence)
