"""Audit reviews on the real broker and chDB: events with known findings go through the SDK,
the normalizer and the sink; the review report (API and CLI) lists each planted finding and
nothing else; the owner signs off in the viewer (headless Chromium), the sign-off is an
event in the tenant's log that verifies; the PDF opens and carries the cover facts.

One pipeline (sink with the API, normalizer; no detector worker, so the only alert is the
planted one) serves the whole module; the last test stops it to use the CLI on the store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Producer

from auditstream.api.tokens import Role, Scope, TokenStore
from auditstream.integrity.keys import KeyStore
from auditstream.pipeline import Pipeline
from auditstream.producers import AuditProducer, ProducerConfig
from auditstream.schemas.alert import Alert, Severity

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN_KEY = "auditstream.viewer.token"
HI = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
LO = HI - timedelta(days=7)
BERLIN = "Europe/Berlin"
ALICE = {"id": "alice", "type": "member", "timezone": BERLIN}
BOB = {"id": "bob", "type": "member", "timezone": BERLIN}
CHECK = "Invoice deletions=action:delete;type:invoice"
SHOTS = os.environ.get("AUDITSTREAM_SCREENSHOTS")
"""A directory for the docs' screenshot of the Reviews page (as in test_viewer.py)."""


def day(n: int, hour: int, minute: int = 0) -> datetime:
    return LO + timedelta(days=n, hours=hour, minutes=minute)


@dataclass
class World:
    env: Env
    pipeline: Pipeline
    url: str
    admin: str
    planted: dict[str, set[str]] = field(default_factory=dict)
    """Section key -> the event ids (or details) the report must list there, and no more."""

    def get(self, path: str, **params: Any) -> httpx.Response:
        r = httpx.get(f"{self.url}{path}", params=params, timeout=120,
                      headers={"Authorization": f"Bearer {self.admin}"})  # fmt: skip
        assert r.status_code == 200, r.text
        return r


def _seed(audit: AuditProducer, w: World) -> int:
    n = 0

    def ev(section: str | None, **fields: Any) -> str:
        nonlocal n
        n += fields.get("tenant_id", "acme") == "acme"
        event_id = audit.emit(**{"tenant_id": "acme", "outcome": "success", **fields})
        if section:
            w.planted.setdefault(section, set()).add(event_id)
        return event_id

    invoice = {"type": "invoice", "id": "INV-1"}
    # before the period: where alice and bob usually sign in from
    for who in (ALICE, BOB):
        ev(None, occurred_at=day(-3, 9), actor=who, action="sign_in", resource={"type": "session",
           "id": f"s-{who['id']}-0"}, location={"country": "DE"})  # fmt: skip
    # an ordinary day's work on every day but day 3 (the gap)
    for d in (0, 1, 2, 4, 5, 6):
        ev(None, occurred_at=day(d, 10), actor=ALICE, action="update", resource=invoice,
           changes=[{"field": "amount", "old": d, "new": d + 1}])  # fmt: skip
    ev(None, occurred_at=day(0, 9), actor=ALICE, action="sign_in",
       resource={"type": "session", "id": "s1"}, location={"country": "DE"})  # fmt: skip
    # planted: a sign-in from a new place, one at an odd hour
    ev("unexpected_access", occurred_at=day(1, 11), actor=ALICE, action="sign_in",
       resource={"type": "session", "id": "s2"}, location={"country": "BR"})  # fmt: skip
    ev("unexpected_access", occurred_at=day(2, 2), actor=BOB, action="sign_in",
       resource={"type": "session", "id": "s3"}, location={"country": "DE"})  # fmt: skip
    ev("failed_actions", occurred_at=day(4, 11), actor={"id": "carol"}, action="update",
       resource=invoice, outcome="denied")  # fmt: skip
    mass = {
        ev(
            None,
            occurred_at=day(5, 12, i),
            actor={"id": "mallory"},
            action="delete",
            resource={"type": "document", "id": f"DOC-{i}"},
        )
        for i in range(20)
    }
    ev("mass_deletions_exports", occurred_at=day(5, 14), actor={"id": "dave"}, action="export",
       resource={"type": "report", "id": "all-customers"})  # fmt: skip
    ev("access_changes", occurred_at=day(4, 9), actor=ALICE, action="role_change",
       resource={"type": "member", "id": "bob"},
       changes=[{"field": "role", "old": "viewer", "new": "admin"}])  # fmt: skip
    ev("access_changes", occurred_at=day(4, 9, 5), actor=ALICE, action="invite",
       resource={"type": "member", "id": "erin@example.com"})  # fmt: skip
    ev("new_integrations", occurred_at=day(6, 9), actor=ALICE, action="integration_connect",
       resource={"type": "integration", "id": "slack"})  # fmt: skip
    for i in range(2):  # two invoice deletions: the tenant's own check, not a mass deletion
        ev(f"custom:{CHECK.split('=')[0]}", occurred_at=day(6, 11, i), actor=ALICE,
           action="delete", resource={"type": "invoice", "id": f"INV-{10 + i}"})  # fmt: skip
    # a store-wide retention change, as `auditstream retention set` records it
    ev("scope_changes", tenant_id="_system", occurred_at=day(2, 15),
       actor={"id": "os:ops", "type": "system"}, action="update",
       resource={"type": "retention_policy", "id": "audit_events"},
       changes=[{"field": "retention_days", "old": 365, "new": 180}])  # fmt: skip
    # another tenant's findings must not show
    ev(None, tenant_id="globex", occurred_at=day(4, 11), actor={"id": "gus"}, action="delete",
       resource={"type": "invoice", "id": "G-1"}, outcome="failure")  # fmt: skip
    ev(None, tenant_id="globex", occurred_at=day(4, 3), actor={"id": "gus"}, action="sign_in",
       resource={"type": "session", "id": "g"}, location={"country": "FR"})  # fmt: skip
    w.planted["mass_deletions_exports"] |= {"mass:" + ",".join(sorted(mass))}
    w.planted["timeline_gaps"] = {f"gap:{LO + timedelta(days=3):%Y-%m-%d}"}
    return n


def _alert(env: Env) -> str:
    at = day(4, 9, 30)
    alert = Alert(
        alert_id=uuid.uuid4(), rule="privilege_escalation", severity=Severity.HIGH,
        tenant_id="acme", actor_id="alice", subject="alice", title="Role raised to admin",
        explanation="planted", window_start=at, window_end=at + timedelta(minutes=5),
        first_seen=at, last_seen=at, mitre_technique="T1098", detected_at=at,
    )  # fmt: skip
    producer = Producer(env.settings.kafka.client_config())
    producer.produce(env.settings.topics.alerts, key=b"acme",
                     value=orjson.dumps(alert.model_dump(mode="json")))  # fmt: skip
    assert producer.flush(15) == 0
    return str(alert.alert_id)


@pytest.fixture(scope="module")
def world(_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    env = Env(_broker, tmp_path_factory.mktemp("reviews") / "home",
              {"AUDITSTREAM_API_PORT": "0", "AUDITSTREAM_CHECKPOINT_SECONDS": "1"})  # fmt: skip
    pipeline = env.pipeline()
    admin, _ = TokenStore.in_home(env.settings.home).create(
        "acme", (Scope.READ, Scope.EXPORT, Scope.ADMIN), Role.OWNER, name="reviews test"
    )
    audit = AuditProducer(
        ProducerConfig(bootstrap_servers=env.bootstrap, topic=env.settings.topics.raw)
    )
    try:
        pipeline.start("sink")
        pipeline.wait_sink_ready()
        pipeline.start("normalizer")
        api_json = env.settings.home / "api.json"
        url = wait_for(lambda: api_json.exists() and json.loads(api_json.read_text())["url"],
                       what="the API to listen")  # fmt: skip
        w = World(env, pipeline, url, admin)
        expected = _seed(audit, w)
        assert audit.flush() == 0
        w.planted["alerts"] = {"alert:" + _alert(env)}
        span = {"from": (LO - timedelta(days=5)).isoformat(), "to": HI.isoformat()}
        wait_for(
            lambda: w.get("/v1/analytics/summary", **span).json()["events"] == expected,
            timeout=120,
            what=f"{expected} events stored",
        )
        # every tenant's events (globex's must be stored for their absence to mean anything)
        wait_for(lambda: env.scalar("SELECT count() FROM audit_events") == expected + 3,
                 what="every event stored")  # fmt: skip
        wait_for(lambda: env.scalar("SELECT count() FROM security_alerts") == 1, what="alert")
        r = httpx.put(f"{url}/v1/reviews/schedule", timeout=30,
                      headers={"Authorization": f"Bearer {admin}"},
                      json={"every": "week", "owner": "alice", "checks": [CHECK]})  # fmt: skip
        assert r.status_code == 200, r.text
        yield w
    finally:
        audit.close()
        pipeline.stop_all()


def found(report: dict[str, Any]) -> dict[str, set[str]]:
    """Section key -> what it lists, in the terms of ``World.planted``."""
    out: dict[str, set[str]] = {}
    for s in report["sections"]:
        items: set[str] = set()
        for f in s["findings"]:
            ids = f["event_ids"]
            if s["key"] == "alerts":
                items.add("alert:" + f["resource"].removeprefix("alert "))
            elif s["key"] == "timeline_gaps":
                items.add("gap:" + f["occurred_at"][:10])
            elif len(ids) > 1:
                items.add("mass:" + ",".join(sorted(ids)))
            else:
                items.update(ids)
        if items:
            out[s["key"]] = items
    return out


def check_findings(w: World, report: dict[str, Any]) -> None:
    assert found(report) == w.planted
    access = next(s for s in report["sections"] if s["key"] == "unexpected_access")["findings"]
    details = sorted(f["detail"] for f in access)
    assert details == ["sign-in at 03h local", "sign-in first sign-in from BR"]
    assert report["tenant"] == "acme"


def test_the_report_lists_each_planted_finding_and_nothing_else(world: World) -> None:
    report = world.get("/v1/reviews/report", **{"from": LO.isoformat(), "to": HI.isoformat(),
                       "completeness": "false"}).json()  # fmt: skip
    check_findings(world, report)
    by_day = dict(report["by_day"])
    assert by_day[f"{LO + timedelta(days=3):%Y-%m-%d}"] == 0
    assert len(by_day) == 7
    assert report["sections"][-1]["key"] == "custom:Invoice deletions"
    link = report["sections"][1]["findings"][0]["links"][0]
    assert link == f"/ui/#/events/{next(iter(world.planted['failed_actions']))}"
    info = world.get("/v1/reviews").json()
    assert info["schedule"]["owner"] == "alice"
    assert info["schedule"]["checks"] == [CHECK]


def test_the_owner_signs_off_on_the_reviews_page(world: World) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium (make setup installs it as root)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    expect = playwright_api.expect
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(f"sessionStorage.setItem({TOKEN_KEY!r}, {world.admin!r})")
            context.set_default_timeout(60_000)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(
                f"{world.url}/ui/#/reviews?from={LO:%Y-%m-%dT%H:%M:%SZ}&to={HI:%Y-%m-%dT%H:%M:%SZ}"
            )
            expect(page.locator("#review-owner")).to_have_text("alice")
            expect(page.locator("#review-report")).to_be_visible(timeout=120_000)
            for key, want in (("failed_actions", 1), ("access_changes", 2), ("alerts", 1),
                              ("new_integrations", 1), ("unexpected_access", 2)):  # fmt: skip
                count = page.locator(f'details.review-section[data-key="{key}"] .count')
                expect(count).to_have_text(str(want))
            section = page.locator('details.review-section[data-key="failed_actions"]')
            expect(section.locator("a", has_text="event")).to_have_attribute(
                "href", f"#/events/{next(iter(world.planted['failed_actions']))}"
            )
            page.fill("#signoff-note", "Reviewed <b>all</b> findings; role change approved.")
            page.click("#signoff-button")
            expect(page.locator("#signoff-status")).to_contain_text("recorded as audit event")
            signed = wait_for(lambda: world.get("/v1/reviews").json()["signoffs"], timeout=90,
                              what="the sign-off stored")  # fmt: skip
            page.reload()
            expect(page.locator("#signoffs")).to_contain_text("Reviewed <b>all</b> findings")
            expect(page.locator("#review-report")).to_be_visible(timeout=120_000)
            if SHOTS:
                Path(SHOTS).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(SHOTS) / "reviews.png"), full_page=False)
            assert page.locator("#signoffs b").count() == 0  # data, never markup
            assert not errors, errors
        finally:
            browser.close()
    assert signed[0]["by"] == "alice"
    assert signed[0]["note"].startswith("Reviewed <b>all</b>")


def cli(env: Env, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "auditstream.cli.main", *args],
        env={**os.environ, **env.vars, "COLUMNS": "200"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


OVERDUE = """
import sys
from datetime import UTC, datetime, timedelta
from auditstream.config import ClickHouseSettings
from auditstream.reviews import schedule as sched
from auditstream.sinks import store
client = store.open_admin(ClickHouseSettings(dsn=sys.argv[1], database=sys.argv[2]))
set_at = datetime.now(UTC) - timedelta(days=60)
sched.save(client, sys.argv[2], sched.Schedule("initech", sched.Every.MONTH, "ivan", set_at=set_at))
"""


def test_the_sign_off_verifies_and_the_pdf_carries_the_cover_facts(
    world: World, tmp_path: Path
) -> None:
    env = world.env
    world.pipeline.stop_all()  # the CLI opens the store itself; the sink signs its heads
    code, out = cli(env, "verify", "--tenant", "acme")
    assert code == 0, out
    assert "acme: " in out
    assert ": OK" in out
    code, out = cli(env, "reviews", "list", "--no-alert")
    assert "alice" in out, out
    assert "never" not in out, out
    # a schedule set long ago and never signed off: overdue, a low-severity alert
    ch = env.settings.clickhouse
    subprocess.run([sys.executable, "-c", OVERDUE, ch.dsn, ch.database], check=True, timeout=120)
    code, out = cli(env, "reviews", "list", "--tenant", "initech", "--grace-days", "0")
    assert code == 1, out
    assert "OVERDUE" in out, out
    alerts = [orjson.loads(m.value()) for m in env.read_topic(env.settings.topics.alerts, 2)]
    overdue = [a for a in alerts if a["rule"] == "review_overdue"]
    assert [(a["tenant_id"], a["severity"], a["subject"]) for a in overdue] == [
        ("initech", "low", "ivan")
    ]
    due = tmp_path / "due"
    code, out = cli(env, "reviews", "run", "--due", "--out-dir", str(due), "--no-completeness")
    assert code == 0, out
    names = sorted(p.name for p in due.iterdir())
    assert [n.rsplit(".", 1)[1] for n in names] == ["csv", "json", "pdf"], names
    assert all(n.startswith("review-initech-") for n in names), names  # acme owes nothing yet
    span = ["--tenant", "acme", "--from", LO.isoformat(), "--to", HI.isoformat()]
    report_json = tmp_path / "report.json"
    code, out = cli(env, "reviews", "run", *span, "--format", "json", "--out", str(report_json))
    assert code == 0, out
    report = orjson.loads(report_json.read_bytes())
    check_findings(world, report)
    assert report["completeness"]["verification"] == "OK", report["completeness"]
    assert report["completeness"]["reconciliation"] == "OK", report["completeness"]
    assert [s["by"] for s in report["signoffs"]] == ["alice"]

    pdf = tmp_path / "review.pdf"
    code, out = cli(env, "reviews", "run", *span, "--format", "pdf", "--mapping",
                    "iso27001-a8.15", "--out", str(pdf))  # fmt: skip
    assert code == 0, out
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils not installed (make setup installs it as root)")
    cover = subprocess.run(["pdftotext", "-layout", "-l", "1", str(pdf), "-"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    key = KeyStore.at_home(env.settings.home).current(create=False).key_id
    period = f"{LO:%Y-%m-%d} 00:00 to {HI:%Y-%m-%d} 00:00 UTC"
    for fact in ("acme", period, "auditstream 0.1.0", "ISO/IEC 27001:2022 A.8.15", key):
        assert fact in cover, (fact, cover)
    assert [ln.split()[-1] for ln in cover.splitlines() if ln.startswith(("Verification",
            "Reconciliation"))] == ["OK", "OK"]  # fmt: skip
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "p")], check=True)
    assert len(list(tmp_path.glob("p-*.png"))) == 2 + 9  # cover, counts, nine sections
