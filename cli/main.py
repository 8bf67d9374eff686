"""The ``auditstream`` command line."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from auditstream.config import ConfigError, Settings
from auditstream.ops import logs

console = Console()
err = Console(stderr=True)


def _settings(service: bool = False) -> Settings:
    """The settings, or one sentence and exit 2; a ``service`` also makes its home private
    (a home made before umask 077, or by another tool): once at start, not on every command."""
    from auditstream.infra.private import make_private

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        err.print("[red]configuration error:[/red]", escape(str(exc)))
        sys.exit(2)
    if service:
        make_private(settings.home)
    logs.configure(settings.log_format)
    return settings


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def cli(verbose: bool) -> None:
    """auditstream: audit and activity logs through Kafka, Faust and ClickHouse."""
    from auditstream.infra.private import PRIVATE_UMASK

    os.umask(PRIVATE_UMASK)  # store, state, logs, spools: the service user's only
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@cli.group()
def kafka() -> None:
    """The local single-node Kafka broker (ignored when KAFKA_BOOTSTRAP_SERVERS is set)."""


def _local_or_exit(settings: Settings) -> None:
    if settings.kafka.external:
        console.print(
            f"KAFKA_BOOTSTRAP_SERVERS={settings.kafka.bootstrap_servers}: using that cluster, "
            "starting nothing."
        )
        sys.exit(0)


@kafka.command("up")
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for ready.")
def kafka_up(timeout: float) -> None:
    """Provision the broker jars (once) and start the broker, or reuse the running one."""
    from auditstream.infra import kafka_local, topics

    settings = _settings()
    _local_or_exit(settings)
    try:
        with console.status("Fetching Kafka jars and starting the broker..."):
            before = kafka_local.status(settings.kafka.local)
            state = kafka_local.up(settings.kafka.local, timeout)
            topics.ensure_topics(state.bootstrap, settings.topics)
    except kafka_local.KafkaSetupError as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(1)
    verb = "reusing" if before.running else "started"
    console.print(f"Kafka {verb} at [bold]{state.bootstrap}[/bold] (pid {state.pid})")


@kafka.command("fetch")
def kafka_fetch() -> None:
    """Only resolve the broker jars from Maven Central into the cache (set-up step)."""
    from auditstream.infra import kafka_local

    settings = _settings()
    try:
        with console.status("Fetching the Kafka broker jars from Maven Central..."):
            path = kafka_local.provision(settings.kafka.local)
    except kafka_local.KafkaSetupError as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(1)
    console.print(f"Kafka {settings.kafka.local.kafka_version} jars in {path}")


@kafka.command("down")
def kafka_down() -> None:
    """Stop the local broker."""
    from auditstream.infra import kafka_local

    settings = _settings()
    _local_or_exit(settings)
    stopped = kafka_local.down(settings.kafka.local)
    console.print("Kafka stopped" if stopped else "Kafka was not running")


@kafka.command("status")
def kafka_status() -> None:
    """Is the local broker running and answering?"""
    from auditstream.infra import kafka_local

    settings = _settings()
    _local_or_exit(settings)
    s = kafka_local.status(settings.kafka.local)
    console.print(
        f"{s.bootstrap}: {s.detail}" + (f", {s.topics} topics, pid {s.pid}" if s.running else "")
    )
    sys.exit(0 if s.running else 1)


def _stop_cleanly_until_running(role: str) -> None:
    """SIGTERM / SIGINT while a service is still starting (or waiting for its broker): exit 0.

    Nothing is open yet, so there is nothing to flush: one line, no traceback, and a clean
    exit code for the supervisor. The service's own loop installs its graceful handler later.
    """

    def stop(signum: int, frame: Any) -> None:
        click.echo(f"{role}: stopped before it started", err=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _topics_when_kafka_is_up(settings: Settings) -> None:
    """A service's first step: its topics, waiting for a broker that is not up yet."""
    from auditstream.infra import topics

    topics.ensure_topics_patiently(
        settings.kafka.bootstrap_servers,
        settings.topics,
        say=lambda line: logs.say(line, err=True),
        security=settings.kafka.security.librdkafka(),
    )


@cli.command()
def worker() -> None:
    """Run the stream worker (the detectors) in the foreground."""
    _stop_cleanly_until_running("worker")
    from auditstream.detectors.config import DetectorConfigError
    from auditstream.stream_jobs import worker as stream_worker

    settings = _settings(service=True)
    try:
        stream_worker.build_engine(settings)
    except DetectorConfigError as exc:
        err.print("[red]detector configuration error:[/red]", escape(str(exc)))
        sys.exit(2)
    _topics_when_kafka_is_up(settings)
    stream_worker.run(settings)


@cli.command()
def normalizer() -> None:
    """Run the normalizer (raw -> normalized / dead-letter / repeats) in the foreground."""
    _stop_cleanly_until_running("normalizer")
    from auditstream.stream_jobs import normalizer as loop

    settings = _settings(service=True)
    _topics_when_kafka_is_up(settings)
    try:
        loop.run(settings, say=logs.say)
    except loop.NormalizerError as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(1)


@cli.command()
def sink() -> None:
    """Run the ClickHouse sink in the foreground (it owns the embedded store)."""
    _stop_cleanly_until_running("sink")
    from auditstream.sinks import service
    from auditstream.sinks.store import StoreUnavailable

    settings = _settings(service=True)
    _topics_when_kafka_is_up(settings)
    try:
        service.run(settings)
    except StoreUnavailable as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(1)


@cli.command()
@click.argument("statement")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
def sql(statement: str, fmt: str) -> None:
    """Run one read-only SQL statement against the event store.

    Tables: audit_events, security_alerts. With the embedded store and a running sink, the
    sink answers. ClickHouse enforces read-only (readonly = 1 for the session) and limits
    (60 s, 1,000,000 result rows); values print as plain text, control characters escaped.
    """
    from auditstream.cli.render import print_result
    from auditstream.sinks import query
    from auditstream.sinks.query import QueryError
    from auditstream.sinks.store import StoreUnavailable

    settings = _settings()
    try:
        result = query.run(settings.clickhouse, statement)
    except (QueryError, StoreUnavailable) as exc:
        err.print("[red]query failed:[/red]", escape(str(exc)))
        sys.exit(1)
    print_result(console, result, fmt)


@cli.group()
def schema() -> None:
    """The event JSON Schema published for producers in other languages."""


@schema.command("export")
@click.option("--check", is_flag=True, help="Fail if the committed file differs from the model.")
def schema_export(check: bool) -> None:
    from auditstream.schemas import jsonschema

    if check:
        if jsonschema.SCHEMA_FILE.read_text() != jsonschema.render():
            err.print(
                f"{jsonschema.SCHEMA_FILE.name} is out of date: run `auditstream schema export`"
            )
            sys.exit(1)
        console.print(f"{jsonschema.SCHEMA_FILE.name} matches the model")
        return
    console.print(f"wrote {jsonschema.write()}")


@cli.command()
@click.option("--events", default=3000, show_default=True, help="How many events to publish.")
@click.option("--seed", default=7, show_default=True)
@click.option("--keep-kafka", is_flag=True, help="Leave the local broker running afterwards.")
def demo(events: int, seed: int, keep_kafka: bool) -> None:
    """Start (or reuse) Kafka and the pipeline, publish sample events, show what landed."""
    from auditstream.cli import demo as demo_mod

    sys.exit(demo_mod.run(_settings(), console, events=events, seed=seed, keep_kafka=keep_kafka))


from auditstream.cli.alerts import alerts  # noqa: E402
from auditstream.cli.detectors import detectors  # noqa: E402

cli.add_command(alerts)
cli.add_command(detectors)

from auditstream.cli.model import model  # noqa: E402

cli.add_command(model)

from auditstream.cli.bench import bench  # noqa: E402

cli.add_command(bench)

from auditstream.cli.retention import retention  # noqa: E402

cli.add_command(retention)

from auditstream.cli.reviews import reviews  # noqa: E402

cli.add_command(reviews)

from auditstream.cli.archive import archive  # noqa: E402

cli.add_command(archive)

from auditstream.cli.evaluate import evaluate  # noqa: E402
from auditstream.cli.simulate import simulate  # noqa: E402

cli.add_command(simulate)
cli.add_command(evaluate)

from auditstream.cli.backtest import backtest  # noqa: E402
from auditstream.cli.ingest import ingest  # noqa: E402
from auditstream.cli.reconcile import reconcile_command  # noqa: E402

cli.add_command(ingest)
cli.add_command(backtest)

cli.add_command(reconcile_command)

from auditstream.cli.verify import verify_command  # noqa: E402

cli.add_command(verify_command)

from auditstream.cli.keys import keys  # noqa: E402

cli.add_command(keys)

from auditstream.cli.export import export_command, verify_export_command  # noqa: E402

cli.add_command(export_command)
cli.add_command(verify_export_command)

from auditstream.cli.serve import serve  # noqa: E402

cli.add_command(serve)

from auditstream.cli.tokens import tokens  # noqa: E402

cli.add_command(tokens)

from auditstream.cli.run import run_command  # noqa: E402

cli.add_command(run_command)

from auditstream.cli.dlq import dlq  # noqa: E402

cli.add_command(dlq)

from auditstream.cli.status import status_command  # noqa: E402

cli.add_command(status_command)


def main() -> None:
    cli(prog_name="auditstream")


if __name__ == "__main__":
    main()
