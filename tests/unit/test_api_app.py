"""The app without a store: token checks, JSON errors, CORS, settings."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditstream.api.app import Context, create_app
from auditstream.api.jobs import Jobs
from auditstream.api.tokens import Role, Scope, TokenStore
from auditstream.config import ApiSettings, ConfigError, Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@contextlib.contextmanager
def _no_store() -> Iterator[Any]:
    raise AssertionError("no query may run before the token is checked")
    yield


def _client(tmp_path: Path, **api: Any) -> tuple[TestClient, TokenStore]:
    tokens = TokenStore(tmp_path / "t.json")
    ctx = Context(api=ApiSettings(**api), database="auditstream", sessions=_no_store,
                  tokens=tokens, jobs=Jobs(tmp_path / "exports"))  # fmt: skip
    return TestClient(create_app(ctx)), tokens


def test_no_query_runs_for_a_caller_without_the_permission(tmp_path: Path) -> None:
    client, tokens = _client(tmp_path)
    exporter, _ = tokens.create("acme", (Scope.EXPORT,), Role.ADMIN)
    for path in ("/v1/events", "/v1/analytics/summary", "/v1/entities/task/T/timeline"):
        assert client.get(path).json()["error"]["code"] == "unauthorized"
        answer = client.get(path, headers={"Authorization": f"Bearer {exporter}"})
        assert answer.status_code == 403
        assert answer.json()["error"]["missing_permission"] == "audit_log:read"


def test_cors_only_for_configured_origins(tmp_path: Path) -> None:
    preflight = {"Origin": "https://viewer.example.com", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}  # fmt: skip
    closed, _ = _client(tmp_path)
    assert (
        "access-control-allow-origin" not in closed.options("/v1/events", headers=preflight).headers
    )
    open_, _ = _client(tmp_path, cors_origins=("https://viewer.example.com",))
    answer = open_.options("/v1/events", headers=preflight)
    assert answer.headers["access-control-allow-origin"] == "https://viewer.example.com"
    other = open_.options("/v1/events", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_api_settings_from_the_environment(tmp_path: Path) -> None:
    env = {"AUDITSTREAM_HOME": str(tmp_path)}
    assert Settings.from_env(env).api.enabled is False
    api = Settings.from_env({**env, "AUDITSTREAM_API_PORT": "0",
                             "AUDITSTREAM_API_CORS_ORIGINS": "https://a.example, http://localhost:3000/",
                             "AUDITSTREAM_API_MAX_RANGE_DAYS": "90"}).api  # fmt: skip
    assert (api.enabled, api.port, api.max_range_days) == (True, 0, 90)
    assert api.cors_origins == ("https://a.example", "http://localhost:3000")
    with pytest.raises(ConfigError, match="not an origin"):
        Settings.from_env({**env, "AUDITSTREAM_API_CORS_ORIGINS": "*"})


def test_a_blank_entity_id_is_refused_before_any_query(tmp_path: Path) -> None:
    """Review finding: ``/v1/entities/task/%20/timeline`` dropped the id filter and listed every
    task of the tenant."""
    client, tokens = _client(tmp_path)
    reader, _ = tokens.create("acme", (Scope.READ,), Role.MEMBER)
    for path in ("/v1/entities/task/%20/timeline", "/v1/entities/%20/T-1/timeline"):
        answer = client.get(path, headers={"Authorization": f"Bearer {reader}"})
        assert answer.status_code == 400, answer.text
        assert "blank" in answer.text


def test_a_store_error_reaches_the_log_not_the_caller(tmp_path: Path) -> None:
    """Review finding: the 503 body carried the store's error text (DSN host, store path)."""
    from auditstream.sinks.store import StoreUnavailable

    @contextlib.contextmanager
    def down() -> Iterator[Any]:
        raise StoreUnavailable("cannot open ClickHouse at http://***@db-7.internal:8123: refused")
        yield

    tokens = TokenStore(tmp_path / "t.json")
    ctx = Context(api=ApiSettings(), database="auditstream", sessions=down,
                  tokens=tokens, jobs=Jobs(tmp_path / "exports"))  # fmt: skip
    client = TestClient(create_app(ctx))
    reader, _ = tokens.create("acme", (Scope.READ,), Role.MEMBER)
    answer = client.get("/v1/events", headers={"Authorization": f"Bearer {reader}"})
    assert answer.status_code == 503
    assert "db-7" not in answer.text
    assert "try again" in answer.json()["error"]["message"]
