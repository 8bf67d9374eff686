"""The analyst session's settings: readonly = 1 last, limits the query cannot raise.

No ClickHouse server runs here: the HTTP case (a server user with or without a read-only
profile) is checked on the settings we would send, from clickhouse-connect's view of the
server's ``system.settings``.
"""

from __future__ import annotations

from clickhouse_connect.driver.models import SettingDef

from auditstream.sinks.store import AnalystLimits, analyst_settings


def _server(readonly: int) -> dict[str, SettingDef]:
    names = AnalystLimits().settings()
    return {n: SettingDef(name=n, value="0", readonly=readonly) for n in names}


def test_limits_end_with_readonly_1() -> None:
    settings = AnalystLimits(max_execution_time=30, max_threads=2).settings()
    assert list(settings)[-1] == "readonly"
    assert settings["readonly"] == "1"  # 1, not 2: the session can't change settings
    assert settings["max_execution_time"] == "30"
    assert settings["timeout_overflow_mode"] == "throw"
    assert settings["result_overflow_mode"] == "throw"
    assert settings["max_threads"] == "2"
    assert {"max_result_rows", "max_result_bytes", "max_memory_usage"} <= set(settings)


def test_a_user_that_may_change_settings_gets_all_of_them() -> None:
    sent = analyst_settings(_server(readonly=0), AnalystLimits())
    assert sent == AnalystLimits().settings()
    assert list(sent)[-1] == "readonly"


def test_a_read_only_profile_governs_on_a_server() -> None:
    # A server user whose profile is readonly = 1 has every setting frozen: sending any of
    # them would fail, and the profile's own limits apply (docs/running-on-servers.md).
    assert analyst_settings(_server(readonly=1), AnalystLimits()) == {}


def test_settings_unknown_to_the_server_are_sent() -> None:
    assert analyst_settings({}, AnalystLimits()) == AnalystLimits().settings()
