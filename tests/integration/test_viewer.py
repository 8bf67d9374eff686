"""The web viewer in headless Chromium, against the real API, store and pipeline.

One pipeline (sink with the API, normalizer, detector worker) and one dataset, produced
through the SDK, serve every test of this module; each test opens its own browser context.
Screenshots go to ``AUDITSTREAM_SCREENSHOTS`` when it names a directory (the docs' images:
``AUDITSTREAM_SCREENSHOTS=docs/screenshots pytest tests/integration/test_viewer.py``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pytest

from auditstream.api.tokens import Role, Scope, TokenStore
from auditstream.producers import AuditProducer, ProducerConfig

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN_KEY = "auditstream.viewer.token"
ZONE = "Europe/Berlin"  # the browser's time zone: dates show in it, UTC on hover
NOW = datetime.now(UTC).replace(microsecond=0)
SHOTS = os.environ.get("AUDITSTREAM_SCREENSHOTS")
JOB_ROWS = 40
"""Exports of this many rows run as background jobs (the dataset has more, a filter fewer)."""

ADA = {"id": "usr_ada", "type": "member", "display_name": "Ada Lovelace"}
BOB = {"id": "usr_bob", "type": "member", "display_name": "Bob Builder"}
FLOW = {"id": "wf_billing", "type": "workflow", "display_name": "Billing workflow"}
SYSTEM = {"id": "sys_cascade", "type": "system", "display_name": "Cascade"}
BOT = {"id": "key_ci", "type": "api", "display_name": "CI deploy key"}
AGENT = {"id": "agent_copilot", "type": "agent", "display_name": "Copilot"}
SERVICE = {"id": "svc_sync", "type": "service", "display_name": "Sync service"}
INVOICE = {"type": "invoice", "id": "INV-7", "name": "Invoice Zebra 7"}


@dataclass
class Seeded:
    """What was produced, to compute each filter's expected rows."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    """Named events: their ids."""

    def add(self, audit: AuditProducer, name: str | None = None, **fields: Any) -> str:
        event_id = audit.emit(**fields)
        self.events.append({**fields, "event_id": event_id})
        if name:
            self.ids[name] = event_id
        return event_id

    def tenant(self, tenant: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["tenant_id"] == tenant]


def _seed(audit: AuditProducer) -> Seeded:
    s = Seeded()
    at = NOW - timedelta(hours=1)

    def ev(
        when: datetime,
        actor: dict[str, str],
        action: str,
        resource: dict[str, str],
        name: str | None = None,
        tenant: str = "acme",
        **more: Any,
    ) -> str:
        return s.add(
            audit,
            name,
            tenant_id=tenant,
            occurred_at=when,
            actor=actor,
            action=action,
            resource=resource,
            **more,
        )

    # one invoice's life: its timeline
    ev(
        at - timedelta(days=3),
        ADA,
        "create",
        INVOICE,
        "inv_create",
        changes=[{"field": "amount", "old": None, "new": 120}],
    )
    ev(
        at - timedelta(days=2),
        ADA,
        "update",
        INVOICE,
        "inv_update",
        changes=[
            {"field": "amount", "old": 120, "new": 80},
            {"field": "currency", "old": "EUR", "new": "USD"},
        ],
    )
    ev(
        at - timedelta(days=1),
        FLOW,
        "status_change",
        INVOICE,
        "inv_status",
        changes=[{"field": "status", "old": "draft", "new": "sent"}],
    )
    # a sign-in, with its place (the actor page lists sign-ins with places)
    ev(at - timedelta(days=5), ADA, "sign_in", {"type": "session", "id": "sess_ada"},
       ip="203.0.113.9", location={"country": "DE", "city": "Berlin"})  # fmt: skip
    # a cascade: deleting a project deletes its documents
    parent = ev(
        at - timedelta(days=4),
        BOB,
        "delete",
        {"type": "project", "id": "prj_apollo", "name": "Apollo"},
        "cascade_parent",
        correlation_id="req-apollo",
    )
    for n in (1, 2):
        ev(
            at - timedelta(days=4) + timedelta(seconds=n),
            SYSTEM,
            "delete",
            {"type": "document", "id": f"doc_{n}", "name": f"Apollo spec {n}"},
            f"cascade_child{n}",
            parent_event_id=parent,
            correlation_id="req-apollo",
        )
    # filler: enough for three pages of 20, every actor type
    actors = [BOT, AGENT, SERVICE, BOT, AGENT]
    verbs = ["comment", "assign", "create", "update", "access"]
    for i in range(50):
        ev(
            at - timedelta(hours=2 * i + 1),
            actors[i % 5],
            verbs[i % 5],
            {"type": "task", "id": f"task_{i}", "name": f"Task number {i}"},
        )
    # three weeks ago: the date-range filter's day
    old = (NOW - timedelta(days=20)).replace(hour=11, minute=0, second=0)
    for n in range(3):
        ev(
            old + timedelta(minutes=n),
            ADA,
            "settings_change",
            {"type": "workspace", "id": "ws_1", "name": "Acme workspace"},
            changes=[{"field": f"setting_{n}", "old": False, "new": True}],
        )
    # another tenant: never shown, even when its names match a search
    for n in range(5):
        ev(
            at - timedelta(hours=n),
            ADA,
            "update",
            {"type": "invoice", "id": f"G-{n}", "name": f"Globex Zebra {n}"},
            tenant="globex",
        )
    return s


@dataclass
class Site:
    env: Env
    url: str
    seeded: Seeded
    reader: str
    no_read: str
    browser: Any
    audit: AuditProducer

    def api(self, path: str, token: str, **params: Any) -> Any:
        response = httpx.get(
            f"{self.url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def site(_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium (make setup installs it as root: apt-get install chromium)")
    env = Env(
        _broker,
        tmp_path_factory.mktemp("viewer") / "home",
        {"AUDITSTREAM_API_PORT": "0", "AUDITSTREAM_API_EXPORT_JOB_ROWS": str(JOB_ROWS)},
    )
    pipeline = env.pipeline()
    tokens = TokenStore.in_home(env.settings.home)
    reader, _ = tokens.create("acme", (Scope.READ, Scope.EXPORT), Role.ADMIN, name="viewer test")
    no_read, _ = tokens.create("acme", (Scope.EXPORT,), Role.ADMIN, name="no read")
    audit = AuditProducer(
        ProducerConfig(bootstrap_servers=env.bootstrap, topic=env.settings.topics.raw)
    )
    try:
        pipeline.start_all()
        pipeline.wait_sink_ready()
        api_json = env.settings.home / "api.json"
        url = wait_for(
            lambda: api_json.exists() and json.loads(api_json.read_text())["url"],
            timeout=60,
            what="the API to listen",
        )
        seeded = _seed(audit)
        assert audit.flush() == 0
        expected = len(seeded.tenant("acme"))
        site = Site(env, url, seeded, reader, no_read, None, audit)
        wait_for(
            lambda: site.api("/v1/analytics/summary", reader)["events"] == expected,
            timeout=90,
            what=f"{expected} events through the API",
        )
        with playwright_api.sync_playwright() as pw:
            site.browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                yield site
            finally:
                site.browser.close()
    finally:
        audit.close()
        pipeline.stop_all()


@pytest.fixture
def page(site: Site) -> Iterator[Any]:
    """A signed-in tab (the token in sessionStorage, as the sign-in form leaves it)."""
    context = site.browser.new_context(
        viewport={"width": 1280, "height": 900},
        timezone_id=ZONE,
        locale="en-GB",
        accept_downloads=True,
    )
    context.add_init_script(f"sessionStorage.setItem({TOKEN_KEY!r}, {site.reader!r})")
    context.set_default_timeout(20_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


def ids_shown(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "tbody tr[data-event-id]", "rows => rows.map(r => r.dataset.eventId)"
    )


def wait_rows(page: Any, expected: set[str] | int) -> list[str]:
    """The table's rows once they are what the test expects (or the count does)."""

    def done() -> Any:
        shown = ids_shown(page)
        ok = len(shown) == expected if isinstance(expected, int) else set(shown) == expected
        return shown if ok else None

    return wait_for(done, timeout=20, interval=0.1, what=f"rows {expected}")


def newest_first(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in sorted(events, key=lambda e: e["occurred_at"], reverse=True)]


def open_events(site: Site, page: Any, query: str = "") -> None:
    page.goto(f"{site.url}/ui/#/events{query}")
    page.wait_for_selector("tbody tr[data-event-id]")


# -- the table ----------------------------------------------------------------------------------
def test_table_shows_newest_first_in_local_time_with_utc_on_hover(site: Site, page: Any) -> None:
    acme = site.seeded.tenant("acme")
    open_events(site, page)
    assert wait_rows(page, 20) == newest_first(acme)[:20]
    first = page.locator("tbody tr").first
    newest = max(acme, key=lambda e: e["occurred_at"])
    time_el = first.locator("time")
    assert time_el.get_attribute("title") == newest["occurred_at"].strftime(
        "%Y-%m-%d %H:%M:%S.000 UTC"
    )
    local = newest["occurred_at"].astimezone(ZoneInfo(ZONE)).strftime("%H:%M")
    assert local in time_el.inner_text()
    assert first.locator(".badge").first.inner_text() == newest["actor"]["type"]
    shot(page, "audit-log")

    page.click("#sort")  # oldest first
    oldest = newest_first(acme)[::-1][:20]
    assert wait_rows(page, set(oldest)) == oldest
    assert "sort=oldest" in page.url

    # every control has a name a screen reader can say
    unnamed = page.evaluate(
        """[...document.querySelectorAll('input, select, button')]
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                         && !e.textContent.trim())
            .map(e => e.id || e.name || e.tagName)"""
    )
    assert unnamed == []
    # the keyboard alone opens an event: focus its action, press Enter
    page.locator("tbody tr").first.locator("a.action").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#card-details")


def test_each_filter_narrows_the_table_and_lives_in_the_url(site: Site, page: Any) -> None:
    acme = site.seeded.tenant("acme")

    def ids(pred: Any) -> set[str]:
        return {e["event_id"] for e in acme if pred(e)}

    open_events(site, page, "?limit=100")
    wait_rows(page, len(acme))
    update_group = {"update", "status_change", "comment", "assign"}
    page.select_option("#f-action", "update")
    wait_rows(page, ids(lambda e: e["action"] in update_group))
    page.select_option("#f-action", "delete")
    wait_rows(page, ids(lambda e: e["action"] == "delete"))
    page.select_option("#f-action", "verb:update")  # the exact verb, not the group
    wait_rows(page, ids(lambda e: e["action"] == "update"))
    page.select_option("#f-action", "")

    page.select_option("#f-actor-type", "workflow")
    wait_rows(page, ids(lambda e: e["actor"]["type"] == "workflow"))
    page.select_option("#f-actor-type", "")

    page.fill("#f-entity-type", "invoice")
    page.press("#f-entity-type", "Enter")
    page.locator("#f-entity-type").blur()
    wait_rows(page, ids(lambda e: e["resource"]["type"] == "invoice"))
    page.fill("#f-entity-type", "")
    page.locator("#f-entity-type").blur()

    page.fill("#f-actor", BOB["id"])
    page.locator("#f-actor").blur()
    wait_rows(page, ids(lambda e: e["actor"]["id"] == BOB["id"]))
    assert f"actor_id={BOB['id']}" in page.url
    page.fill("#f-actor", "")
    page.locator("#f-actor").blur()

    day = (NOW - timedelta(days=20)).astimezone(ZoneInfo(ZONE)).date()
    page.fill("#f-from", day.isoformat())
    page.fill("#f-to", day.isoformat())
    wait_rows(page, ids(lambda e: e["action"] == "settings_change"))

    # the maximum range is enforced, and said
    far = day - timedelta(days=site.env.settings.api.max_range_days + 5)
    page.fill("#f-from", far.isoformat())
    page.wait_for_selector("#range-hint.hint-error")
    assert f"at most {site.env.settings.api.max_range_days} days" in page.inner_text("#range-hint")
    assert ids_shown(page) == []

    # a shared URL restores the filters
    page.goto(f"{site.url}/ui/#/events?actor_type=workflow&entity_type=invoice")
    page.reload()
    wait_rows(page, {site.seeded.ids["inv_status"]})
    assert page.input_value("#f-actor-type") == "workflow"


def test_search_is_debounced_and_finds_names_of_this_tenant_only(site: Site, page: Any) -> None:
    open_events(site, page)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/v1/events?" in r.url else None)
    page.locator("#f-search").press_sequentially("zebra", delay=40)
    expected = {e["event_id"] for e in site.seeded.tenant("acme") if e["resource"] == INVOICE}
    wait_rows(page, expected)
    assert sum("q=zebra" in u for u in requests) == 1, requests  # one request, after typing
    assert not [u for u in requests if "q=z&" in u or u.endswith("q=z")]
    assert "Globex" not in page.inner_text("tbody")
    assert "q=zebra" in page.url
    shot(page, "search")


def test_pages_forward_and_back_by_cursor(site: Site, page: Any) -> None:
    order = newest_first(site.seeded.tenant("acme"))
    open_events(site, page)
    first = wait_rows(page, set(order[:20]))
    assert page.is_disabled("#prev")
    page.click("#next")
    second = wait_rows(page, set(order[20:40]))
    page.click("#next")
    wait_rows(page, set(order[40:60]))
    assert page.is_disabled("#next")
    assert "Page 3" in page.inner_text("#page-label")
    page.click("#prev")
    assert wait_rows(page, set(order[20:40])) == second
    page.click("#prev")
    assert wait_rows(page, set(order[:20])) == first
    page.select_option("#page-size", "50")
    wait_rows(page, set(order[:50]))
    assert "limit=50" in page.url


# -- detail, cascade, timeline, actor ----------------------------------------------------------
def test_detail_shows_four_cards_old_and_new_values_and_the_timeline(site: Site, page: Any) -> None:
    ids = site.seeded.ids
    open_events(site, page, "?entity_type=invoice")
    page.click(f"tr[data-event-id='{ids['inv_update']}'] a.action")
    page.wait_for_selector("#card-details")
    for card in ("Action", "Actor", "Entity", "Details"):
        assert page.locator(f"section.card h2:text-is('{card}')").count() == 1
    amount = page.locator("table.diff tr", has=page.locator("th:text-is('amount')"))
    assert amount.locator("td.old").inner_text() == "120"
    assert amount.locator("td.new").inner_text() == "80"
    currency = page.locator("table.diff tr", has=page.locator("th:text-is('currency')"))
    assert (currency.locator("td.old").inner_text(), currency.locator("td.new").inner_text()) == (
        "EUR",
        "USD",
    )
    update = next(e for e in site.seeded.events if e["event_id"] == ids["inv_update"])
    assert page.inner_text("#occurred-utc") == update["occurred_at"].strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )
    shot(page, "detail")

    page.click("#timeline-link")
    page.wait_for_selector("#timeline li")
    entries = page.locator("#timeline > li")
    assert entries.count() == 3
    assert [entries.nth(i).locator("a.action").inner_text() for i in range(3)] == [
        "create",
        "update",
        "status_change",
    ]
    assert entries.nth(2).locator("td.old").inner_text() == "draft"
    assert entries.nth(2).locator("td.new").inner_text() == "sent"
    shot(page, "timeline")

    # the actor page from the timeline
    entries.nth(2).locator(".actor-cell a").click()
    page.wait_for_selector("h1:has-text('Billing workflow')")
    assert page.locator("a.action:text-is('status_change')").count() == 1

    # Ada's page: her sign-in, with its place
    page.goto(f"{site.url}/ui/#/actors/{ADA['id']}")
    page.wait_for_selector("h2:text-is('Sign-ins')")
    sign_ins = page.locator("section.card", has=page.locator("h2:text-is('Sign-ins')"))
    sign_ins.locator("td:text-is('Berlin, DE')").wait_for()
    shot(page, "actor")


def test_cascade_links_parent_and_children(site: Site, page: Any) -> None:
    ids = site.seeded.ids
    page.goto(f"{site.url}/ui/#/events/{ids['cascade_parent']}")
    page.wait_for_selector("#cascade-children")
    children = page.eval_on_selector_all(
        "#cascade-children a.action", "links => links.map(a => a.getAttribute('href'))"
    )
    assert sorted(children) == sorted(f"#/events/{ids[f'cascade_child{n}']}" for n in (1, 2))
    page.click("#cascade-children li >> nth=0 >> a.action")
    page.wait_for_selector("#cascade-parent")
    assert (
        page.get_attribute("#cascade-parent a.action", "href")
        == f"#/events/{ids['cascade_parent']}"
    )


# -- export ------------------------------------------------------------------------------------
def saved(download: Any, directory: Path) -> Path:
    """The download under the name the page gave it (openpyxl goes by the extension)."""
    path = directory / download.suggested_filename
    download.save_as(path)
    return path


def test_export_all_matching_and_selected_as_csv_excel_and_json(
    site: Site, page: Any, tmp_path: Path
) -> None:
    invoice = {e["event_id"] for e in site.seeded.tenant("acme") if e["resource"] == INVOICE}
    open_events(site, page, "?entity_type=invoice")
    wait_rows(page, invoice)
    with page.expect_download() as info:
        page.click("#export-all")
    rows = list(
        csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8-sig")))
    )
    assert {r["event_id"] for r in rows} == invoice
    assert info.value.suggested_filename.endswith(".csv")

    page.click(f"tr[data-event-id='{site.seeded.ids['inv_update']}'] input[type=checkbox]")
    page.click(f"tr[data-event-id='{site.seeded.ids['inv_status']}'] input[type=checkbox]")
    assert page.inner_text("#selected-count") == "2 selected"
    with page.expect_download() as info:
        page.click("#export-selected")
    chosen = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert {r["event_id"] for r in chosen} == {
        site.seeded.ids["inv_update"],
        site.seeded.ids["inv_status"],
    }
    update = next(r for r in chosen if r["event_id"] == site.seeded.ids["inv_update"])
    assert json.loads(update["changes"])[0] == {"field": "amount", "old": 120, "new": 80}

    # a selection's cells are formula-safe like the API's, numbers stay numbers
    safe = page.evaluate(
        """import('./js/exports.js').then(m =>
             ['=HYPERLINK("x")', '+1+1', '@SUM(A1)', '-5', '-74.01', 'plain'].map(m.formulaSafe))"""
    )
    assert safe == ['\'=HYPERLINK("x")', "'+1+1", "'@SUM(A1)", "-5", "-74.01", "plain"]

    # Excel: the selection (written by the page) and all matching (by the API)
    page.select_option("#export-format", "xlsx")
    with page.expect_download() as info:
        page.click("#export-selected")
    sheet = openpyxl.load_workbook(saved(info.value, tmp_path), read_only=True).active
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert table[0][0] == "event_id"
    assert {r[0] for r in table[1:]} == {
        site.seeded.ids["inv_update"],
        site.seeded.ids["inv_status"],
    }
    with page.expect_download() as info:
        page.click("#export-all")
    path = saved(info.value, tmp_path)
    assert path.suffix == ".xlsx"
    sheet = openpyxl.load_workbook(path, read_only=True).active
    header, *body = list(sheet.iter_rows(values_only=True))
    event_id = header.index("event_id")
    assert {r[event_id] for r in body} == invoice
    # JSON Lines of all matching
    page.select_option("#export-format", "jsonl")
    with page.expect_download() as info:
        page.click("#export-all")
    lines = Path(info.value.path()).read_text().splitlines()
    assert {json.loads(line)["event_id"] for line in lines} == invoice

    # everything: more than JOB_ROWS, so a background job with progress, then a download
    acme = {e["event_id"] for e in site.seeded.tenant("acme")}
    assert len(acme) > JOB_ROWS
    open_events(site, page)
    page.select_option("#export-format", "csv")
    page.click("#export-all")
    ready = page.locator("#export-status button:has-text('Download CSV')")
    ready.wait_for()
    assert f"{len(acme)} rows" in page.inner_text("#export-status")
    shot(page, "export-job")
    with page.expect_download() as info:
        ready.click()
    rows = list(
        csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8-sig")))
    )
    assert {r["event_id"] for r in rows} == acme


# -- alerts, dashboard ---------------------------------------------------------------------------
def test_a_new_alert_appears_live(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/ui/#/alerts")
    page.wait_for_selector("#alerts-status:not(:empty)")
    before = page.locator("li.alert-item").count()
    event_id = site.seeded.add(
        site.audit,
        "escalation",
        tenant_id="acme",
        actor=BOB,
        action="role_change",
        occurred_at=datetime.now(UTC),
        resource={"type": "user", "id": "usr_mallory", "name": "Mallory"},
        changes=[{"field": "role", "old": "member", "new": "admin"}],
    )
    assert site.audit.flush() == 0
    item = page.locator("li.alert-item[data-rule='privilege_escalation']")
    try:
        item.first.wait_for(timeout=90_000)  # no reload: the page polls
    except playwright_api.TimeoutError:
        stored = site.api("/v1/alerts", site.reader)
        log = site.env.settings.home / "logs" / "worker.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no worker log)"
        status = page.inner_text("#alerts-status")
        raise AssertionError(
            f"no alert shown ({status!r}); stored: {stored}; worker: {tail}"
        ) from None
    assert page.locator("li.alert-item").count() == before + 1
    assert "T1098" in item.first.inner_text()
    assert item.first.locator(f"a[href='#/events/{event_id}']").count() == 1
    shot(page, "alerts")

    # the alerts endpoint is the tenant's own: another tenant's token sees none of them
    globex, _ = TokenStore.in_home(site.env.settings.home).create(
        "globex", (Scope.READ,), Role.MEMBER
    )
    assert site.api("/v1/alerts", globex)["data"] == []
    assert site.api("/v1/alerts/summary", globex)["total"] == 0
    summary = site.api("/v1/alerts/summary", site.reader)
    assert ("privilege_escalation", "high") in {(c["rule"], c["severity"]) for c in summary["data"]}


def test_dashboard_draws_its_charts(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/ui/#/dashboard?days=30")
    page.wait_for_selector("#stats .stat")
    total = len(site.seeded.tenant("acme"))
    assert page.locator("#stats .stat strong").first.inner_text() == f"{total:,}"
    for chart in ("c-trend", "c-actors", "c-entities", "c-actions"):
        expect(page.locator(f"#{chart}")).not_to_have_attribute("aria-label", "loading")
    assert "CI deploy key" in page.get_attribute("#c-actors", "aria-label")
    assert page.evaluate("Object.keys(Chart.instances).length") == 5
    assert "privilege_escalation" in page.get_attribute("#c-alerts", "aria-label")
    shot(page, "dashboard")

    # a chosen range: the day of the settings changes, three weeks ago
    day = (NOW - timedelta(days=20)).astimezone(ZoneInfo(ZONE)).date().isoformat()
    page.goto(f"{site.url}/ui/#/dashboard?from={day}&to={day}")
    expect(page.locator("#stats .stat strong").first).to_have_text("3")
    assert "settings_change: 3" in page.get_attribute("#c-actions", "aria-label")


# -- access ------------------------------------------------------------------------------------
def test_without_read_permission_the_page_says_ask_your_admin(site: Site) -> None:
    context = site.browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(f"sessionStorage.setItem({TOKEN_KEY!r}, {site.no_read!r})")
    tab = context.new_page()
    tab.goto(f"{site.url}/ui/#/events")
    tab.wait_for_selector("[data-page=no-access]")
    text = tab.inner_text("main")
    assert "Ask your admin for access" in text
    assert "audit_log:read" in text
    assert tab.locator("tbody tr").count() == 0
    shot(tab, "no-access")
    context.close()


def test_sign_in_with_a_token_or_an_embedded_viewer_token(site: Site) -> None:
    context = site.browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    tab = context.new_page()
    tab.goto(f"{site.url}/ui/")
    tab.fill("#token", "ast_000000000000_notarealtokennotarealtoken")
    tab.click("button[type=submit]")
    tab.wait_for_selector("#signin-error .notice-error")
    tab.fill("#token", site.reader)
    tab.click("button[type=submit]")
    tab.wait_for_selector("tbody tr[data-event-id]")
    assert tab.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") == site.reader
    shot(tab, "phone")
    context.close()

    # embedding: the product's backend mints a short-lived read-only token with its admin
    # token, and opens the viewer with it in the fragment (never sent to a server)
    owner, _ = TokenStore.in_home(site.env.settings.home).create(
        "acme", (Scope.READ, Scope.EXPORT, Scope.ADMIN), Role.OWNER
    )
    minted = httpx.post(
        f"{site.url}/v1/viewer-tokens",
        params={"ttl_minutes": 5},
        headers={"Authorization": f"Bearer {owner}"},
    )
    assert minted.status_code == 201, minted.text
    viewer = minted.json()
    assert viewer["scopes"] == ["audit_log:read"]
    assert viewer["tenant"] == "acme"
    context = site.browser.new_context()
    tab = context.new_page()
    tab.goto(f"{site.url}/ui/#token={viewer['token']}")
    tab.wait_for_selector("tbody tr[data-event-id]")
    assert "token" not in tab.url
    assert tab.is_disabled("#export-all")  # read only: exports need audit_log:export
    assert tab.is_visible("#export-hint")
    context.close()
