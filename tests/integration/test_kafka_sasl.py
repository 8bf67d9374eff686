"""The whole pipeline against a SASL-authenticated listener: the SDK, the Faust worker (aiokafka
credentials), the sink (librdkafka), topic admin and the alert reader all log in; a client
with a wrong password gets nothing."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from auditstream.infra import topics
from auditstream.producers import AuditProducer, ProducerConfig

from ..conftest import Broker
from .conftest import Env, wait_for

pytestmark = pytest.mark.integration


def sasl_env(broker: Broker, password: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": broker.sasl_bootstrap or "",
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": broker.sasl_username,
        "KAFKA_SASL_PASSWORD": password,
    }


def test_pipeline_over_sasl_stores_events_and_publishes_alerts(
    sasl_kafka: Broker, tmp_path: Path
) -> None:
    assert sasl_kafka.sasl_bootstrap is not None
    env = Env(
        sasl_kafka.sasl_bootstrap, tmp_path / "home", sasl_env(sasl_kafka, sasl_kafka.sasl_password)
    )
    producer = ProducerConfig.from_env({**env.vars})
    assert producer.librdkafka["security.protocol"] == "SASL_PLAINTEXT"
    pipeline = env.pipeline()
    try:
        pipeline.start_all()
        with AuditProducer(producer) as audit:
            for i in range(30):  # a mass deletion: 30 deletes by one actor within minutes
                audit.emit(
                    tenant_id="acme",
                    actor={"id": "usr_sasl"},
                    action="delete",
                    resource={"type": "document", "id": f"doc_{i}"},
                )
            assert audit.flush(15) == 0
        pipeline.wait_sink_ready()
        wait_for(
            lambda: env.scalar("SELECT count() FROM audit_events") == 30, what="30 rows stored"
        )
        alerts = wait_for(
            lambda: [
                orjson.loads(m.value()) for m in env.read_topic(env.settings.topics.alerts, 1, 5)
            ],
            what="the mass deletion alert",
        )
        pipeline.check()
    finally:
        pipeline.stop_all()
        topics.delete_topics_with(env.bootstrap, env.run, env.security)
    assert {a["rule"] for a in alerts} == {"mass_deletion"}
    assert alerts[0]["actor_id"] == "usr_sasl"


def test_a_wrong_password_is_refused(sasl_kafka: Broker) -> None:
    assert sasl_kafka.sasl_bootstrap is not None
    security = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": sasl_kafka.sasl_username,
        "sasl.password": "not-" + sasl_kafka.sasl_password,
    }
    admin = AdminClient({"bootstrap.servers": sasl_kafka.sasl_bootstrap, **security})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
