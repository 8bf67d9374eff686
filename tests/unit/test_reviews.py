"""Audit reviews without a store: periods, overdue, the checklist's own sections, and the
evidence files (the PDF is opened with poppler's pdftotext and pdftoppm)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from auditstream.reviews import export
from auditstream.reviews.checklist import Check, checks_from_json, checks_to_json, parse_check
from auditstream.reviews.controls import ISO27001_A815, SOC2_CC72, mapping
from auditstream.reviews.report import Completeness, Finding, Report, Section
from auditstream.reviews.schedule import (
    GRACE,
    Every,
    Schedule,
    SignOff,
    last_complete,
    next_start,
    period_start,
    status,
)
from auditstream.reviews.signoff import overdue_alert

AT = datetime(2026, 5, 14, 15, 30, tzinfo=UTC)  # a Thursday


def test_periods_are_whole_calendar_units() -> None:
    assert period_start(Every.WEEK, AT) == datetime(2026, 5, 11, tzinfo=UTC)
    assert period_start(Every.MONTH, AT) == datetime(2026, 5, 1, tzinfo=UTC)
    assert period_start(Every.QUARTER, AT) == datetime(2026, 4, 1, tzinfo=UTC)
    assert next_start(Every.QUARTER, datetime(2026, 10, 1, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    assert last_complete(Every.MONTH, AT) == (
        datetime(2026, 4, 1, tzinfo=UTC),
        datetime(2026, 5, 1, tzinfo=UTC),
    )
    assert last_complete(Every.WEEK, AT) == (
        datetime(2026, 5, 4, tzinfo=UTC),
        datetime(2026, 5, 11, tzinfo=UTC),
    )


def test_a_review_is_overdue_after_the_grace_unless_signed_off() -> None:
    s = Schedule("acme", Every.WEEK, "alice", set_at=AT - timedelta(days=30))
    end = datetime(2026, 5, 11, tzinfo=UTC)
    assert not status(s, [], end + GRACE - timedelta(minutes=1)).overdue
    late = status(s, [], end + GRACE)
    assert late.overdue
    assert late.due_to == end
    done = SignOff("e1", "alice", end, "2026-05-04T00:00:00.000Z", "2026-05-11T00:00:00.000Z", "")
    assert not status(s, [done], end + GRACE).overdue
    partial = SignOff(
        "e2", "alice", end, "2026-05-05T00:00:00.000Z", "2026-05-12T00:00:00.000Z", ""
    )
    assert status(s, [partial], end + GRACE).overdue  # does not hold the whole period
    fresh = Schedule("acme", Every.WEEK, "alice", set_at=end + timedelta(hours=1))
    assert not status(fresh, [], end + GRACE).overdue  # set after the period: nothing owed
    alert = overdue_alert(late, end + GRACE)
    assert alert.severity == "low"
    assert alert.rule == "review_overdue"
    assert alert.alert_id == overdue_alert(late, end + GRACE + timedelta(hours=5)).alert_id


def test_own_checks_parse_and_round_trip() -> None:
    c = parse_check("Invoice changes=action:edited|delete;type:invoice")
    assert c == Check("Invoice changes", ("update", "delete"), ("invoice",))
    assert checks_from_json(checks_to_json((c,))) == (c,)
    for bad in ("no-equals", "x=", "x=colour:red"):
        with pytest.raises(ValueError, match=r"check|filter|use"):
            parse_check(bad)
    with pytest.raises(ValueError, match="unknown control mapping"):
        mapping("pci")


def _report() -> Report:
    lo = datetime(2026, 5, 4, tzinfo=UTC)
    f1 = Finding(
        "failed_actions", "2026-05-05T09:00:00.000Z", "mallory", "delete", "invoice INV-1",
        "denied", "203.0.113.9", "BR", "denied", "", ("11111111-1111-1111-1111-111111111111",),
    )  # fmt: skip
    f2 = Finding(
        "access_changes", "2026-05-06T10:00:00.000Z", "=cmd|' /C calc'!A0", "role_change",
        "member bob", "success", "", "DE", "role_change", "role: viewer -> admin",
        ("22222222-2222-2222-2222-222222222222",),
    )  # fmt: skip
    return Report(
        tenant="acme", period_from=lo, period_to=lo + timedelta(days=7),
        generated_at=lo + timedelta(days=8), generator="auditstream 0.1.0",
        key_fingerprint="0123456789abcdef SHA256:aaaa:bbbb", total=42, previous_total=40,
        by_day=tuple((f"2026-05-{4 + i:02d}", 6) for i in range(7)), by_action=(("update", 42),),
        sections=(Section("failed_actions", "Failed and denied actions", (f1,)),
                  Section("access_changes", "Settings, role and permission changes", (f2,)),
                  Section("alerts", "Security alerts raised, and their state", ())),
        completeness=Completeness("OK", ("1 chains, 42 records, 42 verified",), "OK"),
    )  # fmt: skip


def test_csv_follows_the_mapping_and_neutralises_formulas() -> None:
    rows = list(csv.reader(io.StringIO(export.to_csv(_report(), ISO27001_A815))))
    assert rows[0] == [h for h, _ in ISO27001_A815.columns]
    assert len(rows) == 3
    by = dict(zip(rows[0], rows[2], strict=True))
    assert by["User ID"] == "'=cmd|' /C calc'!A0"
    assert by["Change description"] == "role: viewer -> admin"
    assert by["Control"] == "ISO/IEC 27001:2022 A.8.15"
    soc2 = list(csv.reader(io.StringIO(export.to_csv(_report(), SOC2_CC72))))
    assert soc2[0][0:2] == ["Control", "Monitoring activity"]
    assert soc2[1][0] == "SOC 2 CC7.2"


def test_json_links_each_finding_to_its_event() -> None:
    doc = orjson.loads(export.to_json(_report()))
    assert doc["review_id"] == "acme:2026-05-04..2026-05-11"
    assert doc["sections"][0]["findings"][0]["links"] == [
        "/ui/#/events/11111111-1111-1111-1111-111111111111"
    ]
    assert doc["completeness"]["ok"] is True


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
def test_the_pdf_opens_and_its_cover_carries_the_facts(tmp_path: Path) -> None:
    pdf = tmp_path / "review.pdf"
    pdf.write_bytes(export.to_pdf(_report(), SOC2_CC72))
    cover = subprocess.run(
        ["pdftotext", "-layout", "-f", "1", "-l", "1", str(pdf), "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    facts = ("acme", "2026-05-04 00:00 to 2026-05-11 00:00 UTC", "auditstream 0.1.0",
             "Verification", "OK", "0123456789abcdef SHA256:aaaa:bbbb", "SOC 2 CC7.2")  # fmt: skip
    for fact in facts:
        assert fact in cover, fact
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "mallory" in text
    assert "203.0.113.9" in text
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 5  # cover, counts, three sections
    from PIL import Image

    for page in pages:
        with Image.open(page) as im:
            assert im.width > im.height  # landscape A4
            extrema = im.convert("L").getextrema()
            assert extrema[0] < 100 < extrema[1]  # ink on paper, not a blank page


class _Session:
    """Records each statement; answers every one with a single row of zeros or nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []

    def query(self, sql: str, parameters: dict[str, object]) -> object:
        self.calls.append((sql, parameters))
        rows = [[0]] if "system.tables" in sql else []
        return type("R", (), {"result_rows": rows})()


def test_the_reviews_api_checks_scopes_first_and_scopes_every_query_to_the_token(
    tmp_path: Path,
) -> None:
    import contextlib
    import warnings

    from auditstream.api.app import Context, create_app
    from auditstream.api.jobs import Jobs
    from auditstream.api.tokens import Role, Scope, TokenStore
    from auditstream.config import ApiSettings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    session = _Session()
    tokens = TokenStore(tmp_path / "t.json")
    ctx = Context(api=ApiSettings(), database="db",
                  sessions=lambda: contextlib.nullcontext(session),
                  tokens=tokens, jobs=Jobs(tmp_path / "exports"))  # fmt: skip
    client = TestClient(create_app(ctx))
    member, _ = tokens.create("acme", (Scope.READ,), Role.MEMBER)
    auth = {"Authorization": f"Bearer {member}"}
    put = client.put("/v1/reviews/schedule", json={"every": "week", "owner": "a"}, headers=auth)
    assert put.json()["error"]["missing_permission"] == "admin"
    body = {"by": "a", "note": "n", "from": "2026-01-01", "to": "2026-01-08"}
    assert client.post("/v1/reviews/sign-off", json=body, headers=auth).status_code == 403
    assert client.get("/v1/reviews/report/pdf", headers=auth).status_code == 403
    assert session.calls == []
    answer = client.get("/v1/reviews", headers=auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["schedule"] is None
    assert session.calls
    tenants = {p.get("tenant") for sql, p in session.calls if "audit_events" in sql}
    assert tenants == {"acme"}
