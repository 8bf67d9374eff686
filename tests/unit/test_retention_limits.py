"""A retention whose TTL would pass the end of ClickHouse's DateTime wraps to 1970 and
deletes every row at the next merge: no setting, command or endpoint may ask for one."""

from datetime import UTC, datetime

import pytest

from auditstream.config import ConfigError, Settings
from auditstream.schemas.limits import DATETIME_END, max_retention_days
from auditstream.sinks import tables

NOW = datetime(2026, 12, 2, tzinfo=UTC)


def test_the_longest_retention_keeps_a_year_of_new_events_inside_datetime() -> None:
    longest = max_retention_days(NOW)
    assert 28_000 < longest < 29_000  # about 78 years in 2026
    one_year_later = NOW.replace(year=2027)
    from datetime import timedelta

    assert one_year_later + timedelta(days=1 + longest) < DATETIME_END


def test_set_retention_refuses_a_wrapping_ttl_and_names_the_limit() -> None:
    class Client:
        commands: list[str] = []

        def command(self, sql: str) -> None:
            self.commands.append(sql)

    client = Client()
    with pytest.raises(ValueError, match="longer than the store can keep") as info:
        tables.set_retention(client, "db", tables.EVENTS, 30_000)
    assert str(max_retention_days(datetime.now(UTC))) in str(info.value)
    assert client.commands == []  # nothing was sent to the store
    tables.set_retention(client, "db", tables.EVENTS, 3650)
    assert len(client.commands) == 1


@pytest.mark.parametrize("name", ["AUDITSTREAM_RETENTION_DAYS", "AUDITSTREAM_ALERT_RETENTION_DAYS"])
def test_a_wrapping_retention_setting_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}=30000 is longer than the store can keep"):
        Settings.from_env({name: "30000"})
    assert Settings.from_env({name: "3650"})
