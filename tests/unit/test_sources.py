"""Source adapters on samples of the vendors' real formats (sources/samples/)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditstream.cli.ingest import ingest
from auditstream.detectors import config
from auditstream.detectors.base import Scope
from auditstream.detectors.engine import DetectionEngine
from auditstream.detectors.registry import default_detectors
from auditstream.schemas.event import AuditEvent
from auditstream.sources import FORMATS, Options, Parsed

SAMPLES = Path(__file__).resolve().parents[2] / "sources" / "samples"
NOW = datetime(2026, 3, 10, tzinfo=UTC)
FILES = {
    "sshd": "auth.log",
    "okta": "okta.json",
    "github": "github.jsonl",
    "google-login": "google-login.json",
    "cloudtrail": "cloudtrail.json",
}


def parse(fmt: str, text: str | None = None, **kw: Any) -> Parsed:
    body = text if text is not None else (SAMPLES / FILES[fmt]).read_text()
    return FORMATS[fmt](body, Options("acme", now=kw.pop("now", NOW), **kw))


def events(fmt: str, text: str | None = None, **kw: Any) -> list[AuditEvent]:
    return [AuditEvent.model_validate(e) for e in parse(fmt, text, **kw).events]


def kinds(evs: list[AuditEvent]) -> Counter[tuple[str, str]]:
    return Counter((e.action.value, e.outcome.value) for e in evs)


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_every_sample_maps_to_valid_events_with_stable_ids(fmt: str) -> None:
    first, again = events(fmt), events(fmt)
    assert first
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert len({e.event_id for e in first}) == len(first)
    assert all(e.tenant_id == "acme" and e.metadata["source"] in (fmt, "sudo") for e in first)
    assert {e.event_id.version for e in first} == {7}


def test_sshd_failures_successes_and_repeats() -> None:
    parsed = parse("sshd")
    evs = [AuditEvent.model_validate(e) for e in parsed.events]
    assert kinds(evs) == {
        ("sign_in_failed", "failure"): 46,  # 26 root + 12 + 6 repeated + bob + sudo
        ("sign_in", "success"): 2,
        ("sign_out", "success"): 1,
        ("access", "success"): 1,
        ("access", "denied"): 1,
    }
    root = [e for e in evs if e.actor.id == "root"]
    assert len(root) == 26
    assert {e.ip for e in root} == {"203.0.113.50"}
    assert root[0].occurred_at == datetime(2026, 3, 3, 9, 10, tzinfo=UTC)
    assert root[0].resource.id == "bastion"
    assert root[0].metadata["method"] == "password"
    admin = [e for e in evs if e.actor.id == "admin"]
    assert len(admin) == 8  # 2 lines + "message repeated 6 times"
    assert admin[0].metadata["invalid_user"] is True
    alice = next(e for e in evs if e.action.value == "sign_in")
    assert (alice.actor.id, alice.ip, alice.metadata["method"]) == (
        "alice",
        "192.0.2.10",
        "publickey",
    )
    # "Invalid user" and "maximum authentication attempts" repeat logged failures: skipped.
    assert parsed.skipped["sshd: not a sign-in or sudo line"] == 15
    iso = next(e for e in evs if e.occurred_at.microsecond)
    assert iso.occurred_at == datetime(2026, 3, 3, 9, 40, 0, 123000, tzinfo=UTC)


def test_sshd_year_and_zone_of_classic_timestamps() -> None:
    line = "Dec 31 23:59:59 h sshd[1]: Failed password for root from 192.0.2.1 port 1 ssh2\n"
    [e] = events("sshd", line, now=datetime(2027, 1, 2, tzinfo=UTC))
    assert e.occurred_at == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    [e] = events("sshd", line, now=datetime(2027, 1, 2, tzinfo=UTC), timezone="Europe/Berlin")
    assert e.occurred_at == datetime(2026, 12, 31, 22, 59, 59, tzinfo=UTC)
    assert parse("sshd", "garbage\n").skipped == {"not a syslog line": 1}


def test_sshd_sample_raises_failure_alerts_without_any_success() -> None:
    detectors = default_detectors()
    engine = DetectionEngine(detectors, config.build({}, detectors), now=lambda: NOW)
    states: dict[tuple[Scope, str], dict[str, Any]] = {}
    alerts = []
    for e in sorted(events("sshd"), key=lambda e: e.occurred_at):
        for scope in Scope:
            subject = e.actor.id if scope is Scope.ACTOR else e.ip
            if subject is None or not engine.wants(e, scope):
                continue
            alerts += engine.process(e, states.setdefault((scope, subject), {}), scope, {})
    first = {(a.rule, a.subject) for a in alerts}
    assert ("account_sign_in_failures", "root") in first
    assert ("source_sign_in_failures", "203.0.113.50") in first
    assert ("source_sign_in_failures", "198.51.100.23") in first  # 18 failures, 6 names
    assert not any(a.rule == "brute_force" for a in alerts)


def test_okta_system_log() -> None:
    evs = events("okta")
    assert kinds(evs) == {
        ("sign_in", "success"): 1,
        ("sign_in_failed", "failure"): 2,  # a wrong password and a failed MFA step
        ("permission_change", "success"): 1,
        ("sign_out", "success"): 1,
    }
    ada = evs[0]
    assert (ada.actor.id, ada.actor.display_name, ada.ip) == (
        "ada@example.com",
        "Ada Lovelace",
        "192.0.2.44",
    )
    assert ada.user_agent is not None
    assert ada.user_agent.startswith("Mozilla/5.0 (Macintosh")
    assert ada.location is not None
    assert ada.location.city == "Berlin"
    assert ada.location.latitude == pytest.approx(52.5196)
    assert ada.location.country is None  # Okta sends "Germany": left to IP geolocation
    assert ada.session_id == "102bZ3mQfTPSv6QmA9uLx1b2g"
    assert evs[1].metadata["outcome_reason"] == "INVALID_CREDENTIALS"


def test_github_audit_log() -> None:
    evs = events("github")
    by_action = {e.metadata["github_action"]: e for e in evs}
    login = by_action["user.login"]
    assert login.action.value == "sign_in"
    assert login.ip == "192.0.2.60"
    assert login.occurred_at == datetime(2026, 3, 3, 9, 0, 0, 123000, tzinfo=UTC)
    assert login.location is not None
    assert login.location.country == "US"
    assert by_action["repo.destroy"].action.value == "delete"
    assert by_action["repo.destroy"].resource.id == "acme/legacy-billing"
    assert by_action["org.add_member"].action.value == "permission_change"
    assert by_action["org.invite_member"].action.value == "invite"
    assert by_action["repo.download_zip"].action.value == "export"
    assert by_action["org.update_member"].action.value == "role_change"
    assert by_action["protected_branch.destroy"].action.value == "delete"


def test_google_workspace_login_audit() -> None:
    evs = events("google-login")
    assert kinds(evs) == {
        ("sign_in", "success"): 1,
        ("sign_in_failed", "failure"): 2,  # a wrong password, then a failed challenge
        ("sign_out", "success"): 1,
        ("status_change", "success"): 1,
    }
    ok = evs[0]
    assert (ok.actor.id, ok.ip) == ("liz@example.com", "192.0.2.81")
    assert ok.location is not None
    assert ok.location.country == "GB"
    fail = evs[1]
    assert fail.metadata["login_failure_type"] == "login_failure_invalid_password"
    assert fail.metadata["is_suspicious"] is True


def test_cloudtrail() -> None:
    evs = events("cloudtrail")
    by_name = {e.metadata["event_name"]: [] for e in evs}
    for e in evs:
        by_name[e.metadata["event_name"]].append(e)
    ok, failed = by_name["ConsoleLogin"]
    assert (ok.action.value, ok.actor.id, ok.ip, ok.metadata["mfa_used"]) == (
        "sign_in",
        "anaya",
        "192.0.2.100",
        "Yes",
    )
    assert (failed.action.value, failed.outcome.value) == ("sign_in_failed", "failure")
    [attach] = by_name["AttachUserPolicy"]
    assert attach.action.value == "permission_change"
    assert attach.actor.id == "admin/alice@example.com"
    assert (attach.resource.type, attach.resource.id) == ("iam_user", "ci-deployer")
    [delete] = by_name["DeleteBucket"]
    assert (delete.action.value, delete.outcome.value) == ("delete", "denied")
    assert delete.resource.id == "arn:aws:s3:::acme-invoices"
    [run] = by_name["RunInstances"]
    assert run.ip is None
    assert run.actor.type.value == "service"


def test_json_inputs_in_every_shape() -> None:
    record = json.loads((SAMPLES / "cloudtrail.json").read_text())["Records"][0]
    as_lines = "\n".join(json.dumps(r) for r in [record, record]) + "\nnot json\n"
    parsed = parse("cloudtrail", as_lines)
    assert len(parsed.events) == 2
    assert parsed.skipped == {"not a CloudTrail record": 1}
    lookup = json.dumps({"Events": [{"EventId": "x", "CloudTrailEvent": json.dumps(record)}]})
    assert len(parse("cloudtrail", lookup).events) == 1
    assert parse("okta", "").events == []


def test_ingest_dry_run_prints_the_events() -> None:
    result = CliRunner().invoke(
        ingest,
        ["--format", "github", "--tenant", "acme", "--dry-run", str(SAMPLES / "github.jsonl")],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 7
    assert lines[0]["actor"]["id"] == "octocat"


def test_ingest_refuses_an_unknown_zone() -> None:
    result = CliRunner().invoke(
        ingest, ["--format", "sshd", "--tenant", "a", "--timezone", "Mars/Base", "-"], input=""
    )
    assert result.exit_code == 2
    assert "not an IANA time zone" in result.output


def test_eval_samples_raise_what_they_should() -> None:
    from auditstream.simulation import adapters

    detectors = default_detectors()
    results = adapters.run(DetectionEngine(detectors, config.build({}, detectors)))
    assert [r.format for r in results] == sorted(FILES, key=list(adapters.EXPECTED).index)
    for r in results:
        assert r.events > 0
        assert (r.format, r.missed, r.unexpected) == (r.format, frozenset(), frozenset())
