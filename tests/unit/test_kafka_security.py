"""TLS / SASL settings: from the environment, checked, and in each client's dialect."""

from __future__ import annotations

import re
from pathlib import Path

import faust
import pytest

from auditstream.config import ConfigError, Settings
from auditstream.infra.kafka_security import KafkaSecurity, KafkaSecurityError
from auditstream.sinks.consumer import consumer_config, producer_config

SASL = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9093",
    "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    "KAFKA_SASL_MECHANISM": "scram-sha-512",
    "KAFKA_SASL_USERNAME": "auditstream",
    "KAFKA_SASL_PASSWORD": "s3cret-value",
}


def test_plaintext_by_default() -> None:
    security = Settings.from_env({}).kafka.security
    assert security.protocol == "PLAINTEXT"
    assert security.librdkafka() == {"security.protocol": "PLAINTEXT"}
    assert security.faust_credentials() is None


def test_sasl_ssl_from_env_in_librdkafka_and_faust_terms() -> None:
    kafka = Settings.from_env(SASL).kafka
    assert kafka.client_config() == {
        "bootstrap.servers": "kafka.example:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "auditstream",
        "sasl.password": "s3cret-value",
    }
    credentials = kafka.security.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("auditstream", "s3cret-value")
    assert credentials.ssl_context is not None


def test_the_password_never_shows_in_a_repr() -> None:
    settings = Settings.from_env(SASL)
    assert "s3cret-value" not in repr(settings)
    assert "s3cret-value" not in repr(settings.kafka.security.faust_credentials())


def test_sink_clients_get_the_security_settings_and_keep_their_own() -> None:
    security = Settings.from_env(SASL).kafka.security.librdkafka()
    consumer = consumer_config("kafka.example:9093", "group", security)
    assert consumer["sasl.username"] == "auditstream"
    assert consumer["enable.auto.commit"] is False
    assert producer_config("kafka.example:9093", security)["security.protocol"] == "SASL_SSL"
    assert "security.protocol" not in consumer_config("localhost:9092", "group")


def test_the_worker_app_logs_in() -> None:
    from auditstream.stream_jobs.app import create_app

    app = create_app(Settings.from_env({**SASL, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}))
    credentials = app.conf.broker_credentials
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    assert credentials.ssl_context is None


def test_the_sdk_gets_the_security_settings() -> None:
    from auditstream.producers import ProducerConfig

    config = ProducerConfig.from_env(SASL)
    assert config.librdkafka_config()["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config.librdkafka_config()["enable.idempotence"] is True


def test_tls_with_a_ca_file_and_mutual_tls_needs_cert_and_key(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a connection is made")
    security = KafkaSecurity(protocol="SSL", ssl_ca_location=ca)
    assert security.librdkafka() == {"security.protocol": "SSL", "ssl.ca.location": str(ca)}
    with pytest.raises(KafkaSecurityError, match="both KAFKA_SSL_CERTIFICATE_LOCATION and"):
        KafkaSecurity(protocol="SSL", ssl_certificate_location=ca)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "use one of PLAINTEXT, SSL, SASL_PLAINTEXT"),
        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM='GSSAPI': use one of PLAIN"),
        ({"KAFKA_SASL_PASSWORD": ""}, None),  # an empty password is a password
        ({"KAFKA_SASL_USERNAME": ""}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"}, "/nonexistent/ca.pem: no such file"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SSL_CA_LOCATION": "ca.pem"},
            "does not use TLS: use SSL or SASL_SSL",
        ),
        ({"KAFKA_BOOTSTRAP_SERVERS": ""}, "the local broker (`auditstream kafka up`) is plaintext"),
    ],
)
def test_settings_that_cannot_work_say_what_to_set(
    env: dict[str, str], message: str | None
) -> None:
    merged = {**SASL, **env}
    if message is None:
        Settings.from_env(merged)
        return
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env(merged)
