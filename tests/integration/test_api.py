"""The audit-log API against the real pipeline: events produced through the SDK, normalized,
stored by the sink (which serves the API on a thread), read over HTTP on the real port.

One pipeline for the module (normalizer + sink; the detectors are not needed), one seeded
dataset for two tenants; every answer is cross-checked against SQL on the same store."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from auditstream.api.tokens import Role, Scope, TokenStore
from auditstream.infra import topics
from auditstream.producers import AuditProducer, ProducerConfig
from auditstream.producers.sample import events as sample_events

from .conftest import Env, wait_for

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
HOSTILE_NAME = "=cmd|' /C calc'!A0"
SECRET = "GLOBEX-SECRET-PLAN"
PARENT_ID = str(uuid.uuid4())
CHILD_IDS = [str(uuid.uuid4()), str(uuid.uuid4())]
JOB_ROWS = 100
"""AUDITSTREAM_API_EXPORT_JOB_ROWS for this module: exports this big run as jobs."""


@dataclass
class Api:
    env: Env
    url: str
    tokens: dict[str, str]
    produced: int

    def client(self, who: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def ids(self, sql_where: str, tenant: str = "acme") -> set[str]:
        rows = self.env.sql(
            "SELECT toString(event_id) FROM audit_events "
            f"WHERE tenant_id = '{tenant}' AND {sql_where}"
        )
        return {r[0] for r in rows}


def _ts(days: float = 0, hours: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours)


def _seed() -> list[dict[str, Any]]:
    ada = {"id": "usr_ada", "type": "member", "display_name": "Ada Lovelace"}
    bob = {"id": "usr_bob", "type": "member", "display_name": "Bob Builder"}
    bot = {"id": "svc_sync", "type": "system", "display_name": "Sync Bot"}
    corr = "req-cascade-1"
    out: list[dict[str, Any]] = [
        # the life of task T-1 (its timeline), oldest first
        {"occurred_at": _ts(5), "tenant_id": "acme", "actor": ada, "action": "create",
         "resource": {"type": "task", "id": "T-1", "name": "Quarterly report"},
         "changes": [{"field": "title", "old": None, "new": "Quarterly report"}],
         "ip": "203.0.113.9", "session_id": "sess-ada-1"},
        {"occurred_at": _ts(4), "tenant_id": "acme", "actor": bob, "action": "edited",
         "resource": {"type": "task", "id": "T-1", "name": "Quarterly report v2"},
         "changes": [{"field": "title", "old": "Quarterly report", "new": "Quarterly report v2"},
                     {"field": "estimate", "old": -5, "new": -74.01}]},
        {"occurred_at": _ts(3), "tenant_id": "acme", "actor": bob, "action": "status_change",
         "resource": {"type": "task", "id": "T-1", "name": "Quarterly report v2"},
         "changes": [{"field": "status", "old": "open", "new": "done"}]},
        {"occurred_at": _ts(2), "tenant_id": "acme", "actor": ada, "action": "comment",
         "resource": {"type": "task", "id": "T-1", "name": "Quarterly report v2"},
         "metadata": {"text": "looks good"}},
        {"occurred_at": _ts(1), "tenant_id": "acme", "actor": ada, "action": "assign",
         "resource": {"type": "task", "id": "T-1", "name": "Quarterly report v2"},
         "changes": [{"field": "assignee", "old": "usr_bob", "new": "usr_ada"}]},
        # a cascade: deleting a project deletes its tasks
        {"event_id": PARENT_ID, "occurred_at": _ts(hours=6), "tenant_id": "acme", "actor": ada,
         "action": "delete", "resource": {"type": "project", "id": "P-9", "name": "Apollo"},
         "correlation_id": corr, "ip": "198.51.100.7", "session_id": "sess-ada-2",
         "outcome": "success"},
        *[
            {"event_id": cid, "occurred_at": _ts(hours=6) + timedelta(milliseconds=5 + i),
             "tenant_id": "acme", "actor": bot, "action": "delete",
             "resource": {"type": "task", "id": f"T-9{i}", "name": f"Apollo task {i}"},
             "correlation_id": corr, "parent_event_id": PARENT_ID}
            for i, cid in enumerate(CHILD_IDS)
        ],
        # hostile values for the exports, failures and denials
        {"occurred_at": _ts(hours=3), "tenant_id": "acme", "actor": bob, "action": "update",
         "resource": {"type": "invoice", "id": "INV-7", "name": HOSTILE_NAME},
         "changes": [{"field": "amount", "old": -5, "new": -74.01},
                     {"field": "note", "old": "a,b", "new": "line1\nline2 \"q\""}]},
        {"occurred_at": _ts(hours=2), "tenant_id": "acme", "actor": bob, "action": "export",
         "resource": {"type": "report", "id": "R-1"}, "outcome": "denied",
         "ip": "198.51.100.7"},
        {"occurred_at": _ts(45), "tenant_id": "acme", "actor": ada, "action": "delete",
         "resource": {"type": "task", "id": "T-old", "name": "Old task"}},
        # the other tenant: same ids and names, and a name only it has
        {"occurred_at": _ts(hours=5), "tenant_id": "globex", "actor": ada, "action": "update",
         "resource": {"type": "task", "id": "T-1", "name": SECRET},
         "changes": [{"field": "title", "old": "x", "new": SECRET}], "ip": "203.0.113.9",
         "session_id": "sess-ada-1"},
        {"occurred_at": _ts(hours=4), "tenant_id": "globex", "actor": ada, "action": "delete",
         "resource": {"type": "project", "id": "P-9", "name": SECRET},
         "correlation_id": corr},
    ]  # fmt: skip
    for n, end in ((220, _ts(hours=1)), (90, _ts(10)), (40, _ts(40))):
        out.extend(sample_events(n, seed=n, end=end))
    return out


def _producer(env: Env) -> AuditProducer:
    return AuditProducer(
        ProducerConfig(
            bootstrap_servers=env.bootstrap,
            topic=env.settings.topics.raw,
            spool_dir=env.settings.home / "spool",
        )
    )


def _emit(env: Env, events: list[dict[str, Any]]) -> None:
    with _producer(env) as audit:
        for fields in events:
            audit.emit(**fields)
        assert audit.flush(30) == 0


def _cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditstream.cli.main", *args],
        env={**os.environ, **env.vars}, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL, cwd=env.settings.home.parent,
    )  # fmt: skip


@pytest.fixture(scope="module")
def api(_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = Path(tmp_path_factory.mktemp("api")) / "home"
    env = Env(_broker, home, {"AUDITSTREAM_API_PORT": "0",
                              "AUDITSTREAM_API_EXPORT_JOB_ROWS": str(JOB_ROWS)})  # fmt: skip
    pipeline = env.pipeline()
    try:
        pipeline.start("sink")
        pipeline.start("normalizer")
        pipeline.wait_sink_ready()
        api_file = env.settings.home / "api.json"
        sink_pid = pipeline.procs["sink"].pid
        doc = wait_for(
            lambda: api_file.exists() and json.loads(api_file.read_text())["pid"] == sink_pid
            and json.loads(api_file.read_text()),
            what="the sink's API",
        )  # fmt: skip
        seeded = _seed()
        _emit(env, seeded)
        wait_for(lambda: env.scalar("SELECT count() FROM audit_events") >= len(seeded),
                 timeout=90, what="seeded events stored")  # fmt: skip
        # one token through the CLI (shown once), the rest through the store
        made = _cli(env, "tokens", "create", "--tenant", "acme", "--scope",
                    "audit_log:read,audit_log:export,admin", "--name", "lead")  # fmt: skip
        assert made.returncode == 0, made.stderr
        store = TokenStore.in_home(env.settings.home)
        tokens = {"acme_owner": made.stdout.strip().splitlines()[-1]}
        tokens["acme_member"], _ = store.create("acme", (Scope.READ,), Role.MEMBER)
        tokens["acme_exporter"], _ = store.create("acme", (Scope.EXPORT,), Role.ADMIN)
        tokens["globex"], _ = store.create("globex", (Scope.READ, Scope.EXPORT), Role.ADMIN)
        tokens["revoked"], revoked = store.create("acme", (Scope.READ,), Role.MEMBER)
        store.revoke(revoked.id)
        yield Api(env, doc["url"], tokens, len(seeded))
    finally:
        pipeline.stop_all()
        topics.delete_topics_with(_broker, env.run, env.security)


def _all(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a listing, following next_cursor."""
    out: list[dict[str, Any]] = []
    params = {"limit": 100, **params}
    while True:
        page = client.get(path, params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        out.extend(body["data"])
        if body["next_cursor"] is None:
            return out
        params = {**params, "cursor": body["next_cursor"]}


RANGE = "occurred_at >= now64(3) - INTERVAL 30 DAY"


def test_filters_and_search_match_sql(api: Api) -> None:
    with api.client("acme_owner") as c:
        cases: list[tuple[dict[str, Any], str]] = [
            ({}, "1"),
            ({"actor_id": "usr_ada"}, "actor_id = 'usr_ada'"),
            ({"actor_id": "usr_ada,usr_bob"}, "actor_id IN ('usr_ada', 'usr_bob')"),
            ({"actor_type": "system"}, "actor_type = 'system'"),
            ({"action": "update"}, "action IN ('update','status_change','comment','assign')"),
            ({"action": "update", "exact_action": "true"}, "action = 'update'"),
            ({"action": "deleted"}, "action = 'delete'"),
            ({"entity_type": "task"}, "resource_type = 'task'"),
            ({"entity_type": "task", "entity_id": "T-1"},
             "resource_type = 'task' AND resource_id = 'T-1'"),
            ({"outcome": "denied"}, "outcome = 'denied'"),
            ({"ip": "198.51.100.7"}, "ip = '198.51.100.7'"),
            ({"session_id": "sess-ada-1"}, "session_id = 'sess-ada-1'"),
            ({"q": "apollo"}, "(positionCaseInsensitive(resource_name, 'apollo') > 0 OR "
                              "positionCaseInsensitive(resource_id, 'apollo') > 0 OR "
                              "positionCaseInsensitive(actor_display_name, 'apollo') > 0)"),
            ({"q": "LOVELACE"}, "positionCaseInsensitive(actor_display_name, 'lovelace') > 0"),
            ({"q": "INV-7"}, "resource_id = 'INV-7'"),
        ]  # fmt: skip
        for params, where in cases:
            got = _all(c, "/v1/events", **params)
            ids = [e["event_id"] for e in got]
            assert len(ids) == len(set(ids)), params
            assert set(ids) == api.ids(f"{RANGE} AND {where}"), params
            assert {e["tenant_id"] for e in got} <= {"acme"}
        assert _all(c, "/v1/events", q="T-old") == []  # 45 days ago: outside the default range
        start = (NOW - timedelta(days=50)).isoformat()
        old = _all(c, "/v1/events", q="T-old", **{"from": start})
        assert [e["entity"]["id"] for e in old] == ["T-old"]
        window = {"from": _ts(4, 1).isoformat(), "to": _ts(2, -1).isoformat()}
        got = _all(c, "/v1/events", entity_id="T-1", **window)
        assert [e["action"] for e in got] == ["comment", "status_change", "update"]


def test_sort_and_cursor_stay_stable_while_events_arrive(api: Api) -> None:
    expected = [r[0] for r in api.env.sql(
        "SELECT toString(event_id) FROM audit_events WHERE tenant_id = 'acme' AND "
        f"{RANGE} ORDER BY occurred_at DESC, event_id DESC"
    )]  # fmt: skip
    with api.client("acme_owner") as c:
        first = c.get("/v1/events", params={"limit": 7}).json()
        assert len(first["data"]) == 7
        # events arrive while the reader pages on: 15 newer than every page, and one
        # late one, stamped two days ago, which belongs to a page still to come
        arriving = [dict(f, tenant_id="acme", occurred_at=datetime.now(UTC))
                    for f in sample_events(15, seed=4242)]  # fmt: skip
        late_id = str(uuid.uuid4())
        late = dict(next(sample_events(1, seed=4243)), tenant_id="acme",
                    occurred_at=_ts(2, 0.5), event_id=late_id)  # fmt: skip
        _emit(api.env, [*arriving, late])
        before = api.produced
        wait_for(lambda: api.env.scalar("SELECT count() FROM audit_events") >= before + 16,
                 what="events that arrived meanwhile")  # fmt: skip
        api.produced += 16
        seen = [e["event_id"] for e in first["data"]]
        cursor = first["next_cursor"]
        while cursor:
            page = c.get("/v1/events", params={"limit": 7, "cursor": cursor}).json()
            seen.extend(e["event_id"] for e in page["data"])
            cursor = page["next_cursor"]
        assert len(seen) == len(set(seen))  # nothing repeated
        assert set(expected) <= set(seen)  # nothing skipped
        assert set(seen) - set(expected) == {late_id}  # the late one, once; no newer one
        assert [i for i in seen if i != late_id] == expected  # in the same order
        oldest = [e["event_id"] for e in _all(c, "/v1/events", sort="oldest")]
        fresh = api.ids(RANGE)
        assert set(oldest) == fresh
        assert oldest == [r[0] for r in api.env.sql(
            "SELECT toString(event_id) FROM audit_events WHERE tenant_id = 'acme' AND "
            f"{RANGE} ORDER BY occurred_at, event_id"
        )]  # fmt: skip
        times = [e["occurred_at"] for e in _all(c, "/v1/events", sort="oldest")]
        assert times == sorted(times)
        page = c.get("/v1/events", params={"limit": 7, "cursor": first["next_cursor"],
                                           "actor_id": "usr_ada"})  # fmt: skip
        assert page.status_code == 400
        assert "other filters" in page.json()["error"]["message"]
        assert c.get("/v1/events", params={"limit": 101}).status_code == 400
        assert len(c.get("/v1/events").json()["data"]) == 20


def test_event_detail_has_four_cards_and_the_cascade(api: Api) -> None:
    with api.client("acme_owner") as c:
        child = c.get(f"/v1/events/{CHILD_IDS[0]}").json()
        assert child["action"]["action"] == "delete"
        assert child["actor"]["id"] == "svc_sync"
        assert child["actor"]["type"] == "system"
        assert child["entity"] == {"type": "task", "id": "T-90", "name": "Apollo task 0"}
        assert child["parent"]["event_id"] == PARENT_ID
        assert {r["event_id"] for r in child["related"]} == {PARENT_ID, CHILD_IDS[1]}
        parent = c.get(f"/v1/events/{PARENT_ID}").json()
        assert [k["event_id"] for k in parent["children"]] == CHILD_IDS
        assert parent["parent"] is None
        assert parent["actor"]["ip"] == "198.51.100.7"
        assert parent["actor"]["session_id"] == "sess-ada-2"
        # related never reaches the other tenant's event with the same correlation id
        assert all(r["tenant_id"] == "acme" for r in parent["related"])
        [edit] = _all(c, "/v1/events", entity_id="T-1", action="update", exact_action="true")
        detail = c.get(f"/v1/events/{edit['event_id']}").json()
        assert detail["details"]["changes"] == [
            {"field": "title", "old": "Quarterly report", "new": "Quarterly report v2"},
            {"field": "estimate", "old": -5, "new": -74.01},
        ]
        assert detail["action"]["occurred_at"].endswith("Z")
        missing = c.get(f"/v1/events/{uuid.uuid4()}")
        assert missing.status_code == 404
        assert c.get("/v1/events/not-a-uuid").status_code == 404


def test_entity_timeline_oldest_first_with_before_after(api: Api) -> None:
    with api.client("acme_owner") as c:
        body = c.get("/v1/entities/task/T-1/timeline").json()
        entries = body["data"]
        assert [e["event"]["action"] for e in entries] == [
            "create", "update", "status_change", "comment", "assign",
        ]  # fmt: skip
        assert entries[2]["event"]["changes"] == [{"field": "status", "old": "open", "new": "done"}]
        assert entries[0]["event"]["changes"][0] == {"field": "title", "old": None,
                                                     "new": "Quarterly report"}  # fmt: skip
        assert body["entity"]["name"] == "Quarterly report v2"
        assert all(e["event"]["tenant_id"] == "acme" for e in entries)
        cascade = c.get("/v1/entities/task/T-91/timeline").json()["data"]
        assert [e["cascade"] for e in cascade] == [True]
        paged = c.get("/v1/entities/task/T-1/timeline", params={"limit": 2}).json()
        rest = c.get("/v1/entities/task/T-1/timeline",
                     params={"limit": 10, "cursor": paged["next_cursor"]}).json()  # fmt: skip
        assert [e["event"]["event_id"] for e in paged["data"] + rest["data"]] == [
            e["event"]["event_id"] for e in entries
        ]


def test_analytics_match_sql(api: Api) -> None:
    def sql_counts(column: str, extra: str = "1") -> dict[str, int]:
        rows = api.env.sql(
            f"SELECT {column}, count() FROM audit_events WHERE tenant_id = 'acme' AND {RANGE} "
            f"AND {extra} GROUP BY {column}"
        )
        return {str(k): int(n) for k, n in rows}

    with api.client("acme_owner") as c:
        for dim, column in (("action", "action"), ("entity_type", "resource_type"),
                            ("actor_type", "actor_type"), ("actor", "actor_id")):  # fmt: skip
            body = c.get("/v1/analytics/counts", params={"dimension": dim}).json()
            assert {d["key"]: d["count"] for d in body["data"]} == sql_counts(column), dim
            assert body["total"] == sum(sql_counts(column).values())
        summary = c.get("/v1/analytics/summary").json()
        [[events, entities, actors]] = api.env.sql(
            "SELECT count(), uniqExact(resource_type, resource_id), uniqExact(actor_id) "
            f"FROM audit_events WHERE tenant_id = 'acme' AND {RANGE}"
        )
        assert (summary["events"], summary["unique_entities"], summary["unique_actors"]) == (
            events, entities, actors,
        )  # fmt: skip
        filtered = c.get("/v1/analytics/summary", params={"action": "delete"}).json()
        assert filtered["events"] == sum(sql_counts("action", "action = 'delete'").values())
        top = c.get("/v1/analytics/top-actors", params={"limit": 3}).json()["data"]
        by_actor = sql_counts("actor_id")
        assert [d["count"] for d in top] == sorted(by_actor.values(), reverse=True)[:3]
        assert all(d["label"] for d in top)
        modified = c.get("/v1/analytics/top-entity-types").json()["data"]
        assert {d["key"]: d["count"] for d in modified} == sql_counts(
            "resource_type",
            "action IN ('create','update','delete','restore','status_change','comment','assign')",
        )
        for interval, fn in (("day", "toStartOfDay"), ("hour", "toStartOfHour"),
                             ("week", "toMonday")):  # fmt: skip
            trend = c.get("/v1/analytics/trend", params={"interval": interval}).json()["data"]
            nonzero = {p["start"][:10 if interval != "hour" else 13]: p["count"]
                       for p in trend if p["count"]}  # fmt: skip
            fmt = "%Y-%m-%d" if interval != "hour" else "%Y-%m-%dT%H"
            rows = api.env.sql(
                f"SELECT formatDateTime({fn}(occurred_at), '{fmt}'), count() FROM audit_events "
                f"WHERE tenant_id = 'acme' AND {RANGE} GROUP BY 1"
            )
            assert nonzero == {k: int(n) for k, n in rows}, interval
            assert sum(p["count"] for p in trend) == events


def _ids_of(fmt: str, content: bytes, tmp: Path) -> list[str]:
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(content.decode(), newline="")))
        return [r["event_id"] for r in rows]
    if fmt == "jsonl":
        return [orjson.loads(line)["event_id"] for line in content.splitlines()]
    path = tmp / f"x.{fmt}"
    path.write_bytes(content)
    if fmt == "xlsx":
        from openpyxl import load_workbook

        values = list(load_workbook(path, read_only=True).worksheets[0].values)
        return [str(v[0]) for v in values[1:]]
    import pyarrow.parquet as pq

    return [str(v) for v in pq.read_table(path).column("event_id").to_pylist()]


def test_every_export_format_parses_back(api: Api, tmp_path: Path) -> None:
    expected = api.ids(f"{RANGE} AND resource_type = 'task'")
    assert len(expected) < JOB_ROWS
    with api.client("acme_exporter") as c:
        for fmt in ("csv", "jsonl", "xlsx", "parquet"):
            got = c.get("/v1/exports/stream", params={"format": fmt, "entity_type": "task"})
            assert got.status_code == 200, got.text
            assert "attachment" in got.headers["content-disposition"]
            ids = _ids_of(fmt, got.content, tmp_path)
            assert len(ids) == len(set(ids)), fmt
            assert set(ids) == expected, fmt
        hostile = c.get("/v1/exports/stream", params={"format": "csv", "entity_id": "INV-7"})
        [row] = list(csv.DictReader(io.StringIO(hostile.text, newline="")))
        assert row["resource_name"] == "'" + HOSTILE_NAME
        assert orjson.loads(row["changes"]) == [
            {"field": "amount", "old": -5, "new": -74.01},
            {"field": "note", "old": "a,b", "new": 'line1\nline2 "q"'},
        ]
        assert row["occurred_at"].endswith("Z")
        empty = c.get("/v1/exports/stream", params={"format": "csv", "entity_id": "nothing"})
        assert empty.text.startswith("event_id,tenant_id,occurred_at")
        assert empty.text.count("\r\n") == 1


def test_large_exports_are_jobs_with_progress_and_a_download(api: Api, tmp_path: Path) -> None:
    expected = api.ids(RANGE)
    assert len(expected) >= JOB_ROWS
    with api.client("acme_exporter") as c:
        refused = c.get("/v1/exports/stream", params={"format": "csv"})
        assert refused.status_code == 413
        assert "POST /v1/exports" in refused.json()["error"]["message"]
        for fmt in ("csv", "parquet"):
            job = c.post("/v1/exports", params={"format": fmt})
            assert job.status_code == 202, job.text
            assert job.json()["rows_total"] == len(expected)
            job_id = job.json()["id"]

            def finished(job_id: str = job_id) -> dict[str, Any] | None:
                state: dict[str, Any] = c.get(f"/v1/exports/{job_id}").json()
                return None if state["status"] == "running" else state

            status = wait_for(finished, what="export job")
            assert status["status"] == "done", status
            assert status["progress"] == 1.0
            assert status["rows_written"] == len(expected)
            download = c.get(status["download_url"])
            assert download.status_code == 200
            ids = _ids_of(fmt, download.content, tmp_path)
            assert sorted(ids) == sorted(expected)
    with api.client("globex") as other:  # another tenant cannot see or fetch the job
        assert other.get(f"/v1/exports/{status['id']}").status_code == 404
        assert other.get(status["download_url"]).status_code == 404


def test_no_endpoint_returns_another_tenants_rows(api: Api, tmp_path: Path) -> None:
    with api.client("globex") as c:
        events = _all(c, "/v1/events")
        assert events
        assert {e["tenant_id"] for e in events} == {"globex"}
        assert {e["event_id"] for e in events} == api.ids(RANGE, tenant="globex")
        assert _all(c, "/v1/events", q="Apollo") == []
        assert _all(c, "/v1/events", q="Quarterly") == []
        timeline = c.get("/v1/entities/task/T-1/timeline").json()["data"]
        assert [e["event"]["entity"]["name"] for e in timeline] == [SECRET]
        for event_id in (PARENT_ID, CHILD_IDS[0]):
            answer = c.get(f"/v1/events/{event_id}")
            assert answer.status_code == 404
            assert answer.json() == c.get(f"/v1/events/{uuid.uuid4()}").json()  # no hint
            assert "acme" not in answer.text
            assert "Apollo" not in answer.text
        globex_delete = next(e for e in events if e["entity"]["id"] == "P-9")
        detail = c.get(f"/v1/events/{globex_delete['event_id']}").json()
        assert detail["related"] == []  # acme's cascade shares the correlation id
        summary = c.get("/v1/analytics/summary").json()
        assert summary["events"] == len(api.ids(RANGE, tenant="globex"))
        for dim in ("action", "actor", "entity_type"):
            counts = c.get("/v1/analytics/counts", params={"dimension": dim}).json()
            assert counts["total"] == summary["events"]
        assert (
            sum(p["count"] for p in c.get("/v1/analytics/trend").json()["data"])
            == (summary["events"])
        )
        for fmt in ("csv", "jsonl", "xlsx", "parquet"):
            got = c.get("/v1/exports/stream", params={"format": fmt, "entity_id": "T-1"})
            assert _ids_of(fmt, got.content, tmp_path) == [timeline[0]["event"]["event_id"]]
            assert SECRET.encode() in got.content or fmt in ("xlsx", "parquet")
            assert b"Quarterly" not in got.content
        for hostile in ("x' OR '1'='1", "') OR 1=1 --", "{tenant:String}", "acme"):
            assert _all(c, "/v1/events", q=hostile) == [], hostile
            assert _all(c, "/v1/events", entity_id=hostile, actor_id=hostile) == [], hostile
            timeline = c.get(f"/v1/entities/task/{hostile}/timeline")
            assert timeline.status_code in (200, 404), hostile
            assert timeline.status_code == 404 or timeline.json()["data"] == []
    with api.client("acme_owner") as c:
        assert _all(c, "/v1/events", q=SECRET) == []
        assert SECRET not in c.get("/v1/analytics/counts",
                                   params={"dimension": "actor"}).text  # fmt: skip


def test_permission_errors_are_clear_json(api: Api) -> None:
    with api.client(None) as anonymous:
        answer = anonymous.get("/v1/events")
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
        assert answer.headers["www-authenticate"] == "Bearer"
        bad = anonymous.get("/v1/events", headers={"Authorization": "Bearer ast_0_nope"})
        assert bad.status_code == 401
    with api.client("revoked") as c:
        assert c.get("/v1/events").status_code == 401
    with api.client("acme_member") as c:
        assert c.get("/v1/events").status_code == 200
        for method, path in (("GET", "/v1/exports/stream"), ("POST", "/v1/exports"),
                             ("GET", "/v1/exports/abc")):  # fmt: skip
            answer = c.request(method, path)
            assert answer.status_code == 403, path
            assert answer.json()["error"] == {
                "code": "forbidden",
                "message": "this token lacks the audit_log:export permission",
                "missing_permission": "audit_log:export",
            }
        assert c.get("/v1/tokens").json()["error"]["missing_permission"] == "admin"
    with api.client("acme_exporter") as c:
        answer = c.get("/v1/events")
        assert answer.status_code == 403
        assert answer.json()["error"]["missing_permission"] == "audit_log:read"
    with api.client("acme_owner") as c:
        tokens = c.get("/v1/tokens").json()
        assert {t["tenant"] for t in tokens} == {"acme"}
        assert len(tokens) == 3  # the revoked one is not listed; globex's never
        assert c.get("/v1/me").json()["role"] == "owner"
        bad = c.get("/v1/events", params={"from": "2020-01-01"})
        assert bad.status_code == 400
        assert "at most 400 days" in bad.json()["error"]["message"]
        assert c.get("/v1/events", params={"action": "teleport"}).status_code == 400
        assert c.get("/v1/events", params={"cursor": "garbage"}).status_code == 400


def test_retention_is_shown(api: Api) -> None:
    with api.client("acme_member") as c:
        body = c.get("/v1/retention").json()
    assert body["days"] == 365
    assert body["per_tenant"] is False
    assert body["oldest_kept"][:4].isdigit()


def test_docs_and_serve_finds_the_running_api(api: Api) -> None:
    assert httpx.get(f"{api.url}/docs").status_code == 200
    schema = httpx.get(f"{api.url}/openapi.json").json()
    assert "/v1/events" in schema["paths"]
    assert "/v1/entities/{entity_type}/{entity_id}/timeline" in schema["paths"]
    done = _cli(api.env, "serve")
    assert done.returncode == 0, done.stderr
    assert api.url in done.stdout
    listed = _cli(api.env, "tokens", "list", "--json")
    records = json.loads(listed.stdout)
    assert len(records) == 5
    assert all("sha256" not in r for r in records)
    assert api.tokens["acme_owner"] not in listed.stdout


def test_tokens_cli_revokes(api: Api) -> None:
    store = TokenStore.in_home(api.env.settings.home)
    token, record = store.create("acme", (Scope.READ,), Role.MEMBER)
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.get("/v1/me").status_code == 200
        done = _cli(api.env, "tokens", "revoke", record.id)
        assert done.returncode == 0, done.stderr
        assert c.get("/v1/me").status_code == 401
    unknown = _cli(api.env, "tokens", "revoke", "feedfeedfeed")
    assert unknown.returncode == 1
    assert "no token" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_exports_read_in_keyset_steps_without_losing_rows(embedded: Any, tmp_path: Path) -> None:
    """An export's keyset steps (here 7 rows each; 10,000 by default) cover every row once,
    including rows sharing one timestamp across a step boundary and not yet folded copies."""
    import contextlib

    from auditstream.api.app import Context
    from auditstream.api.jobs import Jobs
    from auditstream.api.query import Sort, build_filters
    from auditstream.config import ApiSettings, ClickHouseSettings
    from auditstream.sinks import store, tables

    database = "apichunks"
    embedded.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    tables.ensure(embedded, database, 365)
    embedded.command(
        f"INSERT INTO {database}.audit_events (event_id, tenant_id, occurred_at, received_at) "
        "SELECT generateUUIDv4(), if(number % 3 = 0, 'other', 'acme'), "
        "now64(3) - toIntervalSecond(intDiv(number, 4)), now64(3) FROM numbers(100)"
    )
    # copies ClickHouse has not folded yet (ReplacingMergeTree folds at merge time)
    embedded.command(
        f"INSERT INTO {database}.audit_events SELECT * FROM {database}.audit_events "
        "WHERE tenant_id = 'acme' ORDER BY occurred_at LIMIT 3"
    )
    settings = ClickHouseSettings(dsn=f"chdb://{embedded.path}", database=database)
    analyst = store.open_analyst(settings)
    steps: list[int] = []
    ctx = Context(
        api=ApiSettings(), database=database,
        sessions=lambda: (steps.append(1), contextlib.nullcontext(analyst))[1],
        tokens=TokenStore(tmp_path / "t.json"), jobs=Jobs(tmp_path / "exports"), chunk=7,
    )  # fmt: skip
    f = build_filters(now=datetime.now(UTC) + timedelta(seconds=1), default_days=1, max_days=2)
    try:
        for sort in (Sort.NEWEST, Sort.OLDEST):
            steps.clear()
            ids = [r.event_id for r in ctx.iter_rows("acme", f, sort)]
            assert len(steps) == 10  # 69 rows stored: nine full steps of 7, and the last 6
            expected = {str(r[0]) for r in embedded.query(
                f"SELECT event_id FROM {database}.audit_events WHERE tenant_id = 'acme'"
            ).result_rows}  # fmt: skip
            assert len(ids) == len(set(ids)) == len(expected) == 66
            assert set(ids) == expected
    finally:
        analyst.close()


def test_serve_starts_the_store_owner_with_the_api(env: Env) -> None:
    """`auditstream serve` with no sink running is the sink, with the API on a thread."""
    import signal

    token, _ = TokenStore.in_home(env.settings.home).create("acme", (Scope.READ,), Role.MEMBER)
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditstream.cli.main", "serve", "--port", "0"],
        env={**os.environ, **env.vars}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, cwd=env.settings.home.parent,
    )  # fmt: skip
    api_file = env.settings.home / "api.json"
    try:
        doc = wait_for(lambda: api_file.exists() and json.loads(api_file.read_text()),
                       what="api.json")  # fmt: skip
        assert doc["pid"] == proc.pid
        with httpx.Client(base_url=doc["url"],
                          headers={"Authorization": f"Bearer {token}"}) as c:  # fmt: skip
            assert c.get("/v1/me").json()["tenant"] == "acme"
            assert c.get("/v1/events").json()["data"] == []
        owner = json.loads((env.settings.home / "sink.json").read_text())
        assert owner["pid"] == proc.pid  # the same process owns the store
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr.decode()
    assert not api_file.exists()


def test_viewer_tokens_read_only_their_tenant(api: Api) -> None:
    with api.client("acme_owner") as c:
        minted = c.post("/v1/viewer-tokens", params={"ttl_minutes": 5})
        assert minted.status_code == 201, minted.text
        assert minted.json()["scopes"] == ["audit_log:read"]
        refused = c.post("/v1/viewer-tokens", params={"scope": "admin"})
        assert refused.status_code == 400
    viewer = {"Authorization": f"Bearer {minted.json()['token']}"}
    with httpx.Client(base_url=api.url, headers=viewer) as v:
        events = _all(v, "/v1/events")
        assert {e["tenant_id"] for e in events} == {"acme"}
        assert {e["event_id"] for e in events} == api.ids(RANGE)
        answer = v.get("/v1/exports/stream")
        assert answer.json()["error"]["missing_permission"] == "audit_log:export"
        assert v.post("/v1/viewer-tokens").json()["error"]["missing_permission"] == "admin"
    with api.client("acme_member") as c:
        assert c.post("/v1/viewer-tokens").status_code == 403


def test_serve_says_how_when_a_sink_without_the_api_owns_the_store(env: Env) -> None:
    pipeline = env.pipeline()  # AUDITSTREAM_API_PORT is not set: a sink without the API
    try:
        pipeline.start("sink")
        pipeline.wait_sink_ready()
        done = _cli(env, "serve", "--port", "0")
        assert done.returncode == 1
        assert "serves no API" in done.stderr
        assert "AUDITSTREAM_API_PORT" in done.stderr
        assert "Traceback" not in done.stderr
        assert not (env.settings.home / "api.json").exists()
    finally:
        pipeline.stop_all()
