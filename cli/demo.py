"""``auditstream demo``: the whole pipeline on this machine, end to end, in one command."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from auditstream.cli.render import result_table
from auditstream.config import Settings
from auditstream.infra import kafka_local, topics
from auditstream.pipeline import Pipeline, PipelineError
from auditstream.producers import AuditProducer, ProducerConfig
from auditstream.producers.sample import INVALID
from auditstream.producers.sample import events as sample_events
from auditstream.sinks import query
from auditstream.stream_jobs import dead_letter


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )


def _watermarks(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"demo-{uuid.uuid4()}"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in meta.partitions
        }
    finally:
        consumer.close()


def dead_letters_since(
    bootstrap: str, topic: str, since: dict[int, tuple[int, int]], timeout: float = 10.0
) -> list[dict[str, str]]:
    """The dead-letter context of every message added after the ``since`` watermarks."""
    now = _watermarks(bootstrap, topic)
    wanted = {p: (since.get(p, (0, 0))[1], high) for p, (_, high) in now.items()}
    total = sum(high - start for start, high in wanted.values())
    if total == 0:
        return []
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"demo-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in wanted.items()])
    out: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < total and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            partition, offset = msg.partition(), msg.offset()
            if partition is not None and offset is not None and offset < wanted[partition][1]:
                out.append(dead_letter.read(msg.headers()))
    finally:
        consumer.close()
    return out


def run(settings: Settings, console: Console, events: int, seed: int, keep_kafka: bool) -> int:
    started_kafka = False
    if not settings.kafka.external:
        try:
            with console.status(
                "Starting Kafka (first run fetches its jars from Maven Central)..."
            ):
                before = kafka_local.status(settings.kafka.local)
                kafka_local.up(settings.kafka.local)
        except kafka_local.KafkaSetupError as exc:
            console.print(f"[red]error:[/red] {exc}")
            return 1
        started_kafka = not before.running
        verb = "started" if started_kafka else "reused"
        console.print(f"Kafka {verb} at {settings.kafka.bootstrap_servers}")
    topics.ensure_topics(settings.kafka.bootstrap_servers, settings.topics)
    pipeline = Pipeline.from_env()
    try:
        with console.status("Starting the normalizer, the stream worker and the sink..."):
            pipeline.start_all()
            pipeline.wait_sink_ready()
        return _publish_and_report(settings, pipeline, console, events, seed)
    except PipelineError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    finally:
        with console.status("Stopping the pipeline..."):
            pipeline.stop_all()
            if started_kafka and not keep_kafka:
                kafka_local.down(settings.kafka.local)
        console.print("Stopped cleanly." + (" Kafka left running." if keep_kafka else ""))


def _publish_and_report(
    settings: Settings, pipeline: Pipeline, console: Console, count: int, seed: int
) -> int:
    bootstrap = settings.kafka.bootstrap_servers
    run_id = uuid.uuid4().hex[:12]
    dlq_before = _watermarks(bootstrap, settings.topics.dead_letter)
    config = ProducerConfig(bootstrap_servers=bootstrap, topic=settings.topics.raw)
    with _progress() as progress:
        task = progress.add_task("Publishing through the SDK", total=count)
        with AuditProducer(config) as audit:
            for n, fields in enumerate(sample_events(count, seed=seed, run_id=run_id), 1):
                audit.emit(**fields)
                if n % 100 == 0 or n == count:
                    progress.update(task, completed=n)
            undelivered = audit.flush(30)
        raw = Producer({"bootstrap.servers": bootstrap})
        for value in INVALID:
            raw.produce(settings.topics.raw, value=value, key=b"demo:invalid")
        raw.flush(10)
        if undelivered:
            console.print(f"[red]{undelivered} events were not delivered to Kafka[/red]")
            return 1

        task = progress.add_task("Landed in ClickHouse      ", total=count)
        landed_sql = (
            "SELECT count() FROM audit_events "
            f"WHERE JSONExtractString(metadata, 'demo_run') = '{run_id}'"
        )
        deadline = time.monotonic() + 120
        landed = 0
        while landed < count and time.monotonic() < deadline:
            pipeline.check()
            landed = int(query.run(settings.clickhouse, landed_sql).rows[0][0])
            progress.update(task, completed=landed)
            if landed < count:
                time.sleep(0.5)
    _report(settings, console, run_id)
    dead = dead_letters_since(bootstrap, settings.topics.dead_letter, dlq_before)
    reasons: dict[str, int] = {}
    for ctx in dead:
        reasons[ctx.get("reason", "?")] = reasons.get(ctx.get("reason", "?"), 0) + 1
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
    console.print(
        f"Dead-letter topic [bold]{settings.topics.dead_letter}[/bold]: {len(dead)} "
        f"new messages ({detail or 'none'}) of {len(INVALID)} invalid sent on purpose"
    )
    console.print(f"Landed {landed} of {count} events (run {run_id}).")
    console.print(
        "\nQuery it yourself (the sink answers while it runs; else the store opens directly):\n"
        '[bold]auditstream sql "SELECT action, count() FROM audit_events GROUP BY action"[/bold]'
    )
    return 0 if landed == count and len(dead) == len(INVALID) else 1


def _report(settings: Settings, console: Console, run_id: str) -> None:
    this_run = f"JSONExtractString(metadata, 'demo_run') = '{run_id}'"

    def show(title: str, sql: str) -> Any:
        result = query.run(settings.clickhouse, sql)
        console.print(result_table(result, title=title))
        return result

    show(
        "Events by action",
        f"SELECT action, count() AS events, uniqExact(actor_id) AS actors "
        f"FROM audit_events WHERE {this_run} GROUP BY action ORDER BY events DESC",
    )
    show(
        "Events by resource type",
        f"SELECT resource_type, count() AS events, uniqExact(resource_id) AS resources "
        f"FROM audit_events WHERE {this_run} GROUP BY resource_type ORDER BY events DESC",
    )
    top = query.run(
        settings.clickhouse,
        f"SELECT tenant_id, actor_id, any(actor_display_name) FROM audit_events "
        f"WHERE {this_run} GROUP BY tenant_id, actor_id ORDER BY count() DESC LIMIT 1",
    ).rows[0]
    show(
        f"Latest events of {top[2]} ({top[1]}, tenant {top[0]})",
        "SELECT formatDateTime(occurred_at, '%Y-%m-%d %H:%i:%S') AS occurred_at_utc, action, "
        "concat(resource_type, ' ', resource_id) AS resource, "
        "arrayStringConcat(arrayMap((f, o, n) -> concat(f, ': ', o, ' → ', n), "
        "changes.field, changes.old, changes.new), '; ') AS changes "
        f"FROM audit_events WHERE {this_run} AND tenant_id = '{top[0]}' "
        f"AND actor_id = '{top[1]}' ORDER BY occurred_at DESC LIMIT 8",
    )
