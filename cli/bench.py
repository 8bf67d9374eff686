"""``auditstream bench producer``: SDK throughput against raw confluent-kafka, same run.
(``auditstream bench e2e``, the whole pipeline, is at the end; its work is in ``bench/``.)

For each durability mode: the SDK with full validation (``emit(**fields)``), then raw
confluent-kafka producing the very bytes the SDK produced (same librdkafka settings,
``produce`` + ``poll(0)`` per message, as its docs advise), and their ratio. A benchmark
prints figures; no test asserts on them.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import click
from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

from auditstream.config import Settings
from auditstream.producers import AuditProducer, ProducerConfig
from auditstream.producers.encoder import EventEncoder
from auditstream.producers.sample import events as sample_events


def _events(count: int) -> list[dict[str, Any]]:
    """Realistic events stamped now by the SDK (as services do), ~600 bytes each."""
    out = []
    for fields in sample_events(min(count, 20_000), seed=3):
        fields.pop("occurred_at")
        out.append(fields)
    return out


def _sdk(config: ProducerConfig, fields: list[dict[str, Any]], count: int) -> tuple[float, int]:
    with AuditProducer(config) as audit:
        audit.emit(**fields[0])
        audit.flush(30)
        n = len(fields)
        start = time.perf_counter()
        for i in range(count):
            audit.emit(**fields[i % n])
        left = audit.flush(120)
        return time.perf_counter() - start, left


def _raw(config: ProducerConfig, payload: list[tuple[bytes, bytes]], count: int) -> float:
    settings = {k: v for k, v in config.librdkafka_config().items()}
    producer = Producer(settings)
    producer.produce(config.topic, payload[0][1], payload[0][0])
    producer.flush(30)
    produce, poll, topic, n = producer.produce, producer.poll, config.topic, len(payload)
    start = time.perf_counter()
    for i in range(count):
        key, value = payload[i % n]
        while True:
            try:
                produce(topic, value, key)
                break
            except BufferError:
                poll(0.005)
        poll(0)
    producer.flush(120)
    return time.perf_counter() - start


def _validate_only(config: ProducerConfig, fields: list[dict[str, Any]], count: int) -> float:
    encoder = EventEncoder(config)
    n = len(fields)
    start = time.perf_counter()
    for i in range(count):
        encoder.from_fields(fields[i % n])
    return time.perf_counter() - start


@click.group()
def bench() -> None:
    """Benchmarks (figures, not tests)."""


@bench.command("producer")
@click.option("--events", "count", default=200_000, show_default=True)
@click.option("--modes", default="memory,disk", show_default=True)
def bench_producer(count: int, modes: str) -> None:
    """Events/s of the SDK (full validation) and of raw confluent-kafka, per durability mode."""
    from auditstream.infra import kafka_local

    console = Console()
    settings = Settings.from_env()
    started = False
    if not settings.kafka.external:
        started = not kafka_local.status(settings.kafka.local).running
        kafka_local.up(settings.kafka.local)
    bootstrap = settings.kafka.bootstrap_servers
    topic = f"bench.producer.{uuid.uuid4().hex[:8]}"
    fields = _events(count)
    table = Table(title=f"{count} events of ~600 bytes to {topic} at {bootstrap}")
    for column in ("mode", "SDK events/s", "raw events/s", "SDK / raw", "undelivered"):
        table.add_column(column, justify="right")
    try:
        with tempfile.TemporaryDirectory() as spool:
            base = ProducerConfig(bootstrap_servers=bootstrap, topic=topic, spool_dir=Path(spool))
            payload = []
            encoder = EventEncoder(base)
            for f in fields:
                prepared = encoder.from_fields(f)
                payload.append((prepared.key, prepared.value))
            validate = _validate_only(base, fields, min(count, 100_000))
            console.print(
                f"validation + encoding alone: {min(count, 100_000) / validate:,.0f} events/s "
                f"({validate / min(count, 100_000) * 1e6:.1f} us/event)"
            )
            for mode in [m.strip() for m in modes.split(",") if m.strip()]:
                config = ProducerConfig(
                    bootstrap_servers=bootstrap,
                    topic=topic,
                    spool_dir=Path(spool) / mode,
                    durability=mode,  # type: ignore[arg-type]
                )
                sdk_s, left = _sdk(config, fields, count)
                raw_s = _raw(config, payload, count)
                table.add_row(
                    f"{mode} (fsync={config.fsync.value})" if mode == "disk" else mode,
                    f"{count / sdk_s:,.0f}",
                    f"{count / raw_s:,.0f}",
                    f"{raw_s / sdk_s:.2f}x",
                    str(left),
                )
    finally:
        if started:
            kafka_local.down(settings.kafka.local)
    console.print(table)


@bench.command("e2e")
@click.option(
    "--rate",
    "rates",
    default="1000,2000,3000,5000,10000",
    show_default=True,
    help="Target events/s; several (ascending, comma-separated) make a ramp.",
)
@click.option("--duration", default=60.0, show_default=True, help="Seconds per rate.")
@click.option("--warmup", default=10.0, show_default=True, help="Seconds left out of each window.")
@click.option("--backlog", default=100_000, show_default=True, help="Capacity phase (0: skip).")
@click.option("--baseline-events", default=200_000, show_default=True)
@click.option("--burst-every", default=1.0, show_default=True, help="Seconds between triggers.")
@click.option("--drain-timeout", default=180.0, show_default=True)
@click.option("--all-steps", is_flag=True, help="Go on after a rate that is not sustained.")
@click.option("--workers", default=1, show_default=True, help="Stream worker processes.")
@click.option("--keep", is_flag=True, help="Keep the run's store and topics.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
def bench_e2e(
    rates: str,
    duration: float,
    warmup: float,
    backlog: int,
    baseline_events: int,
    burst_every: float,
    drain_timeout: float,
    all_steps: bool,
    workers: int,
    keep: bool,
    json_path: Path | None,
) -> None:
    """The whole pipeline on this machine at fixed rates: throughput, latency, CPU, lag."""
    from auditstream.bench import e2e, report
    from auditstream.infra import kafka_local

    console = Console(width=max(Console().width, 150))
    settings = Settings.from_env()
    started = False
    broker_pid = None
    if not settings.kafka.external:
        started = not kafka_local.status(settings.kafka.local).running
        broker_pid = kafka_local.up(settings.kafka.local).pid
    options = e2e.E2EOptions(
        rates=tuple(sorted(float(r) for r in rates.split(",") if r.strip())),
        duration=duration,
        warmup=min(warmup, duration / 2),
        backlog=backlog,
        baseline_events=baseline_events,
        burst_every=burst_every,
        drain_timeout=drain_timeout,
        all_steps=all_steps,
        keep=keep,
        workers=workers,
    )
    try:
        result = e2e.execute(options, console, settings, broker_pid)
    finally:
        if started:
            kafka_local.down(settings.kafka.local)
    report.render(console, result)
    path = json_path or settings.home / "bench" / f"e2e-{result.run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(report.to_json(result))
    console.print(f"wrote {path}")


@bench.command("query-contention")
@click.option("--seconds", default=30.0, show_default=True, help="Seconds per phase.")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between batches.")
@click.option("--rows", default=2_000, show_default=True, help="Rows per batch.")
@click.option(
    "--threads", type=int, default=None, help="Analyst max_threads (default: half the cores)."
)
def bench_query_contention(seconds: float, interval: float, rows: int, threads: int | None) -> None:
    """Insert latency with and without a heavy analyst query (own session vs shared client)."""
    from auditstream.bench import query_contention

    phases = query_contention.run(seconds, interval, rows, threads=threads)
    for line in query_contention.report(phases):
        click.echo(line)
