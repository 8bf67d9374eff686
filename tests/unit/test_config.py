"""Settings.from_env with an explicit environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditstream.config import ConfigError, Settings, Topics


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "state"


def settings(home: Path, **env: str) -> Settings:
    return Settings.from_env({"AUDITSTREAM_HOME": str(home), **env})


def test_defaults(home: Path) -> None:
    s = settings(home)
    assert s.home == home.resolve()
    assert s.app_id == "auditstream"
    assert s.kafka.external is False
    assert s.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert s.kafka.local.home == home.resolve() / "kafka"
    assert (s.kafka.local.port, s.kafka.local.controller_port) == (19092, 19093)
    assert s.kafka.local.heap_mb == 512
    assert s.clickhouse.dsn == f"chdb://{home.resolve() / 'clickhouse'}"
    assert s.clickhouse.embedded is True
    assert s.clickhouse.embedded_path == home.resolve() / "clickhouse"
    assert s.clickhouse.database == "auditstream"
    assert s.clickhouse.retention_days == 365
    assert s.clickhouse.batch_max_rows == 20_000
    assert s.clickhouse.batch_max_seconds == 1.0
    assert s.topics == Topics()
    assert s.topics.raw == "audit.events.raw"
    assert s.topics.partitions == 6


def test_home_defaults_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).home == (tmp_path / ".auditstream").resolve()


def test_empty_strings_mean_default(home: Path) -> None:
    s = settings(
        home,
        AUDITSTREAM_KAFKA_PORT="",
        AUDITSTREAM_RETENTION_DAYS="",
        AUDITSTREAM_SINK_BATCH_SECONDS="",
        AUDITSTREAM_CLICKHOUSE_DSN="",
        AUDITSTREAM_CLICKHOUSE_DATABASE="",
        AUDITSTREAM_APP_ID="",
    )
    assert s.kafka.local.port == 19092
    assert s.clickhouse.retention_days == 365
    assert s.clickhouse.batch_max_seconds == 1.0
    assert s.clickhouse.embedded
    assert s.clickhouse.database == "auditstream"
    assert s.app_id == "auditstream"


def test_external_kafka(home: Path) -> None:
    s = settings(home, KAFKA_BOOTSTRAP_SERVERS=" broker-1:9092,broker-2:9092 ")
    assert s.kafka.external is True
    assert s.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"


def test_blank_bootstrap_means_local(home: Path) -> None:
    s = settings(home, KAFKA_BOOTSTRAP_SERVERS="   ")
    assert s.kafka.external is False
    assert s.kafka.bootstrap_servers == "127.0.0.1:19092"


def test_local_port_moves_bootstrap(home: Path) -> None:
    s = settings(home, AUDITSTREAM_KAFKA_PORT="29092")
    assert s.kafka.bootstrap_servers == "127.0.0.1:29092"
    assert s.kafka.local.bootstrap == "127.0.0.1:29092"


def test_overrides(home: Path) -> None:
    s = settings(
        home,
        AUDITSTREAM_KAFKA_CONTROLLER_PORT="29093",
        AUDITSTREAM_KAFKA_HEAP_MB="1024",
        AUDITSTREAM_RETENTION_DAYS="30",
        AUDITSTREAM_SINK_BATCH_ROWS="500",
        AUDITSTREAM_SINK_BATCH_SECONDS="0.25",
        AUDITSTREAM_CLICKHOUSE_DATABASE="audit_test",
        AUDITSTREAM_PARTITIONS="12",
        AUDITSTREAM_APP_ID="auditstream-test",
    )
    assert s.kafka.local.controller_port == 29093
    assert s.kafka.local.heap_mb == 1024
    assert s.clickhouse.retention_days == 30
    assert s.clickhouse.batch_max_rows == 500
    assert s.clickhouse.batch_max_seconds == 0.25
    assert s.clickhouse.database == "audit_test"
    assert s.topics.partitions == 12
    assert s.app_id == "auditstream-test"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AUDITSTREAM_KAFKA_PORT", "abc", "is not a whole number"),
        ("AUDITSTREAM_KAFKA_PORT", "0", "must be at least 1"),
        ("AUDITSTREAM_KAFKA_CONTROLLER_PORT", "9.5", "is not a whole number"),
        ("AUDITSTREAM_KAFKA_HEAP_MB", "64", "must be at least 128"),
        ("AUDITSTREAM_RETENTION_DAYS", "0", "must be at least 1"),
        ("AUDITSTREAM_RETENTION_DAYS", "a year", "is not a whole number"),
        ("AUDITSTREAM_SINK_BATCH_ROWS", "-1", "must be at least 1"),
        ("AUDITSTREAM_PARTITIONS", "six", "is not a whole number"),
        ("AUDITSTREAM_SINK_BATCH_SECONDS", "soon", "is not a number"),
        ("AUDITSTREAM_SINK_BATCH_SECONDS", "0", "must be positive"),
        ("AUDITSTREAM_SINK_BATCH_SECONDS", "-2.5", "must be positive"),
    ],
)
def test_bad_numbers_name_the_variable(home: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(home, **{name: value})
    assert str(info.value).startswith(f"{name}=")
    assert message in str(info.value)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    "dsn",
    ["clickhouse://localhost:9000", "tcp://localhost:9000", "localhost:8123", "/var/lib/ch"],
)
def test_bad_dsn_scheme_refused(home: Path, dsn: str) -> None:
    with pytest.raises(ConfigError, match="AUDITSTREAM_CLICKHOUSE_DSN=") as info:
        settings(home, AUDITSTREAM_CLICKHOUSE_DSN=dsn)
    assert repr(dsn) in str(info.value)


@pytest.mark.parametrize("dsn", ["http://default:secret@ch:8123", "https://ch.example.com:8443"])
def test_server_dsn(home: Path, dsn: str) -> None:
    s = settings(home, AUDITSTREAM_CLICKHOUSE_DSN=dsn)
    assert s.clickhouse.dsn == dsn
    assert s.clickhouse.embedded is False
    assert s.clickhouse.embedded_path is None


def test_embedded_dsn_path(home: Path, tmp_path: Path) -> None:
    s = settings(home, AUDITSTREAM_CLICKHOUSE_DSN=f"chdb://{tmp_path}/ch")
    assert s.clickhouse.embedded_path == tmp_path / "ch"


def test_topic_prefix_applied_to_every_topic(home: Path) -> None:
    s = settings(home, AUDITSTREAM_TOPIC_PREFIX="run42.", AUDITSTREAM_PARTITIONS="3")
    assert s.topics.raw == "run42.audit.events.raw"
    assert s.topics.normalized == "run42.audit.events"
    assert s.topics.dead_letter == "run42.audit.events.dlq"
    assert s.topics.alerts == "run42.security.alerts"
    assert s.topics.partitions == 3


def test_with_prefix_keeps_partitions() -> None:
    topics = Topics(partitions=9).with_prefix("x-")
    assert topics.partitions == 9
    assert topics.raw == "x-audit.events.raw"


def test_settings_are_frozen(home: Path) -> None:
    s = settings(home)
    with pytest.raises(AttributeError):
        s.app_id = "other"  # type: ignore[misc]


def test_max_future_skew(home: Path) -> None:
    assert settings(home).normalizer.max_future_skew_seconds == 86_400
    assert (
        settings(home, AUDITSTREAM_MAX_FUTURE_SKEW_SECONDS="").normalizer.max_future_skew_seconds
        == 86_400
    )
    s = settings(home, AUDITSTREAM_MAX_FUTURE_SKEW_SECONDS="300")
    assert s.normalizer.max_future_skew_seconds == 300
    for bad, message in [
        ("0", "must be positive"),
        ("a day", "is not a number"),
        ("inf", "finite"),
    ]:
        with pytest.raises(ConfigError, match=message):
            settings(home, AUDITSTREAM_MAX_FUTURE_SKEW_SECONDS=bad)


def test_normalizer_instance_defaults_to_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setattr(socket, "gethostname", lambda: "node 7.example")
    settings = Settings.from_env({})
    assert settings.normalizer.instance == "node-7.example"
    explicit = Settings.from_env({"AUDITSTREAM_NORMALIZER_INSTANCE": "n2"})
    assert explicit.normalizer.instance == "n2"
