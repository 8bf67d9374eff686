"""The API's query layer: filters -> parameterised SQL, scoped to the tenant; cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from auditstream.api import query as q

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
HOSTILE = "x' OR 1=1 --"


def _filters(**kw: object) -> q.Filters:
    return q.build_filters(now=NOW, default_days=30, max_days=90, **kw)  # type: ignore[arg-type]


def test_every_statement_starts_with_the_tenant_and_values_are_parameters() -> None:
    f = _filters(actor_id=[HOSTILE], actor_type=["member"], action=["delete"],
                 entity_type=["Task"], entity_id=HOSTILE, outcome=["failure"], ip=HOSTILE,
                 session_id=HOSTILE, q=HOSTILE)  # fmt: skip
    built = [
        q.page("db", HOSTILE, f, q.Sort.NEWEST, 20),
        q.count("db", HOSTILE, f),
        q.summary("db", HOSTILE, f),
        q.trend("db", HOSTILE, f, q.Interval.DAY),
        q.counts_by("db", HOSTILE, f, q.Dimension.ACTOR, 10),
        q.by_id("db", HOSTILE, "00000000-0000-0000-0000-000000000001"),
        q.children("db", HOSTILE, "00000000-0000-0000-0000-000000000001"),
        q.correlated("db", HOSTILE, HOSTILE),
    ]
    for query in built:
        assert "WHERE tenant_id = {tenant:String}" in query.sql
        assert query.parameters["tenant"] == HOSTILE
        assert HOSTILE not in query.sql
        assert "OR 1=1" not in query.sql


def test_filters_become_clauses_with_typed_parameters() -> None:
    f = _filters(actor_id=["u1,u2", "u3"], entity_type=["Task"], entity_id="T-1", q=" Ada ")
    query = q.where("acme", f)
    assert "actor_id IN {actor_ids:Array(String)}" in query.sql
    assert query.parameters["actor_ids"] == ["u1", "u2", "u3"]
    assert query.parameters["resource_types"] == ["task"]
    assert query.parameters["resource_id"] == "T-1"
    assert query.parameters["q"] == "Ada"
    assert "positionCaseInsensitiveUTF8(actor_display_name, {q:String})" in query.sql
    assert query.parameters["start_ms"] == q.to_ms(NOW - timedelta(days=30))
    assert query.parameters["end_ms"] == q.to_ms(NOW)
    assert "ip =" not in query.sql  # no filter, no clause


def test_action_groups_expand_and_exact_does_not() -> None:
    assert _filters(action=["update"]).actions == ("assign", "comment", "status_change", "update")
    assert _filters(action=["update"], exact_action=True).actions == ("update",)
    assert _filters(action=["deleted", "LOGIN"]).actions == ("delete", "sign_in")
    assert _filters(action=["session"]).actions == ("sign_in", "sign_in_failed", "sign_out")
    with pytest.raises(q.BadRequest, match="unknown action 'nope'"):
        _filters(action=["nope"])


def test_range_default_bounds_and_maximum() -> None:
    f = _filters()
    assert (f.start, f.end) == (NOW - timedelta(days=30), NOW)
    naive = _filters(start=datetime(2026, 11, 1), end=datetime(2026, 11, 2))
    assert naive.start.tzinfo is UTC
    with pytest.raises(q.BadRequest, match="at most 90 days"):
        _filters(start=NOW - timedelta(days=91))
    with pytest.raises(q.BadRequest, match="before"):
        _filters(start=NOW, end=NOW - timedelta(seconds=1))


def test_cursor_round_trip_and_refusals() -> None:
    f = _filters(actor_id=["u1"])
    cursor = q.Cursor(q.to_ms(NOW), "0190c0de-0000-7000-8000-000000000001", q.Sort.NEWEST,
                      q.to_ms(f.start), q.to_ms(f.end), f.fingerprint())  # fmt: skip
    text = cursor.encode()
    assert "=" not in text
    assert q.Cursor.decode(text) == cursor
    for bad in ("", "abc", "eyJ4IjoxfQ", text[:-3]):
        with pytest.raises(q.BadRequest, match="cursor"):
            q.Cursor.decode(bad)
    # the cursor pins the range of the first page, even when "now" has moved on
    later = _filters(actor_id=["u1"], end=NOW + timedelta(hours=1))
    assert q.apply_cursor(later, cursor, q.Sort.NEWEST, 90).end == NOW
    with pytest.raises(q.BadRequest, match="other filters"):
        q.apply_cursor(_filters(actor_id=["u2"]), cursor, q.Sort.NEWEST, 90)
    with pytest.raises(q.BadRequest, match="other filters"):
        q.apply_cursor(f, cursor, q.Sort.OLDEST, 90)


def test_page_after_a_cursor_is_a_keyset_step_in_the_sort_order() -> None:
    f = _filters()
    at = q.Cursor(q.to_ms(NOW), "0190c0de-0000-7000-8000-000000000001", q.Sort.NEWEST, 0, 1, "")
    newest = q.page("db", "acme", f, q.Sort.NEWEST, 20, at)
    assert "(occurred_at, event_id) < (" in newest.sql
    assert newest.sql.endswith("ORDER BY occurred_at DESC, event_id DESC LIMIT {limit:UInt32}")
    assert newest.parameters["limit"] == 21
    assert newest.parameters["cursor_id"] == at.event_id
    oldest = q.page("db", "acme", f, q.Sort.OLDEST, 5, at)
    assert "(occurred_at, event_id) > (" in oldest.sql
    assert "ORDER BY occurred_at ASC, event_id ASC" in oldest.sql


def test_trend_buckets_are_filled_with_zeros() -> None:
    f = _filters(start=datetime(2026, 11, 30, 22, 30, tzinfo=UTC),
                 end=datetime(2026, 12, 1, 1, 10, tzinfo=UTC))  # fmt: skip
    hour = q.to_ms(datetime(2026, 11, 30, 23, tzinfo=UTC))
    points = q.filled([(hour, 7)], f, q.Interval.HOUR)
    assert [(p.hour, n) for p, n in points] == [(22, 0), (23, 7), (0, 0), (1, 0)]
    weeks = _filters(
        start=datetime(2026, 11, 4, tzinfo=UTC), end=datetime(2026, 11, 20, tzinfo=UTC)
    )
    week = q.filled([], weeks, q.Interval.WEEK)
    assert [p.date().isoformat() for p, _ in week] == ["2026-11-02", "2026-11-09", "2026-11-16"]


def test_ip_filter_is_normalised_like_stored_addresses() -> None:
    assert _filters(ip="::ffff:203.0.113.9").ip == "203.0.113.9"
    assert _filters(ip="2001:DB8::1").ip == "2001:db8::1"
    assert _filters(ip="h:1f2e3d").ip == "h:1f2e3d"  # a hashed address, as sent


def test_unique_drops_neighbouring_copies_only() -> None:
    from auditstream.api.query import ROW_NAMES, EventRow

    def row(event_id: str) -> EventRow:
        values = {n: "" for n in ROW_NAMES} | {"event_id": event_id, "changes_field": [],
                                               "changes_old": [], "changes_new": []}  # fmt: skip
        return EventRow.of([values[n] for n in ROW_NAMES])

    ids = [r.event_id for r in q.unique([row("a"), row("a"), row("b"), row("a")])]
    assert ids == ["a", "b", "a"]


def test_times_the_store_cannot_hold_are_a_bad_request_not_a_500() -> None:
    """Review finding: ``to=0001-01-02`` raised OverflowError, a cursor with a start of 1e16 ms
    ValueError: both were 500s with a traceback."""
    with pytest.raises(q.BadRequest, match="between 1970-01-01"):
        _filters(end=datetime(1, 1, 2, tzinfo=UTC))
    with pytest.raises(q.BadRequest, match="between 1970-01-01"):
        _filters(start=datetime(1960, 1, 1, tzinfo=UTC), end=datetime(1960, 1, 2, tzinfo=UTC))
    f = _filters()
    for start_ms in (10**16, -(10**15)):
        cursor = q.Cursor(q.to_ms(NOW), "0190c0de-0000-7000-8000-000000000001", q.Sort.NEWEST,
                          start_ms, q.to_ms(f.end), f.fingerprint())  # fmt: skip
        with pytest.raises(q.BadRequest, match="cursor"):
            q.Cursor.decode(cursor.encode())
