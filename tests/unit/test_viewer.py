"""The viewer's server side without a store: static files, its config, viewer tokens, and
the alerts queries' shape. Its pages in a browser: tests/integration/test_viewer.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from auditstream.api.app import create_app
from auditstream.api.server import context
from auditstream.config import Settings
from auditstream.schemas.actions import Action
from auditstream.schemas.alert import Severity
from auditstream.viewer import STATIC
from auditstream.viewer import alerts as va


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def client(home: Path) -> TestClient:
    settings = Settings.from_env({"AUDITSTREAM_HOME": str(home)})

    def no_store() -> None:
        raise AssertionError("this test reads no events")

    return TestClient(create_app(context(settings, no_store)))  # type: ignore[arg-type]


def test_pages_are_served_with_the_right_types_and_headers(client: TestClient) -> None:
    page = client.get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "Content-Security-Policy" in page.text
    module = client.get("/ui/js/main.js")
    assert module.headers["content-type"].split(";")[0] in (
        "text/javascript",
        "application/javascript",
    )
    assert client.get("/ui", follow_redirects=False).headers["location"] == "/ui/"
    assert client.get("/ui/vendor/chart.umd.min.js").status_code == 200


def test_config_lists_what_the_filters_offer(client: TestClient) -> None:
    config = client.get("/ui/config.json").json()
    assert config["actions"] == [a.value for a in Action]
    assert set(config["action_groups"]["update"]) == {
        "update",
        "status_change",
        "comment",
        "assign",
    }
    assert config["actor_types"] == ["member", "system", "api", "workflow", "agent", "service"]
    assert config["max_range_days"] == 400
    assert (config["page_size"], config["max_page_size"]) == (20, 100)


def test_no_script_builds_markup_from_strings() -> None:
    """Data is never rendered as markup: no innerHTML & co. anywhere in the viewer's code."""
    sinks = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function"
    )
    scripts = sorted((STATIC / "js").glob("*.js"))
    assert len(scripts) >= 8
    for script in scripts:
        assert not sinks.search(script.read_text()), script.name


def test_the_pages_load_nothing_from_another_origin() -> None:
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    for script in (STATIC / "js").glob("*.js"):
        # the only absolute URLs are the .xlsx parts' XML namespaces, which are names
        text = script.read_text().replace("http://schemas.openxmlformats.org", "")
        assert not re.search(r"https?://", text), script.name
    assert (STATIC / "vendor" / "chart.js-LICENSE.md").exists()


def test_alert_queries_start_with_the_tenant_and_take_values_as_parameters() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    hostile = "x' OR 1=1 --"
    base = va.where("acme", now - timedelta(days=1), now, Severity.HIGH, hostile, hostile)
    assert base.sql.startswith("tenant_id = {tenant:String} AND ")
    assert hostile not in base.sql
    assert base.parameters["tenant"] == "acme"
    assert base.parameters["severities"] == ["high", "critical"]
    for query in (va.latest("db", base, 10), va.by_rule_and_severity("db", base)):
        assert " WHERE tenant_id = {tenant:String} AND " in query.sql
        assert hostile not in query.sql


def test_alert_query_aliases_never_shadow_a_column() -> None:
    """ClickHouse resolves aliases in WHERE: ``toString(x) AS x`` would compare strings."""
    from auditstream.sinks.tables import ALERT_COLUMN_NAMES

    for name, expr in va._COLUMNS:
        assert expr == name or name not in ALERT_COLUMN_NAMES, name
