"""``auditstream run``: the whole pipeline as one foreground service.

Starts (or reuses) the local broker unless ``KAFKA_BOOTSTRAP_SERVERS`` names a cluster, then
the sink, the normalizer and the worker as child processes (``pipeline.Supervisor``), restarts
a child that exits (with backoff), and on Ctrl-C / SIGTERM stops them upstream first, then
the broker if it started it. ``AUDITSTREAM_HOME/run.json`` says what runs, for
``auditstream status``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any

import click
from confluent_kafka import KafkaException

from auditstream.config import Settings
from auditstream.ops import health
from auditstream.ops.logs import say
from auditstream.pipeline import ROLES, ConfigurationExit, Pipeline, Supervisor

TICK_SECONDS = 0.5
RECORDS_WAIT_SECONDS = 30.0
"""How long to wait for every service to say where it serves metrics before printing."""


class _Stopped(Exception):
    """A signal arrived while waiting for the broker."""


def state_path(settings: Settings) -> Any:
    return settings.home / "run.json"


def _write_state(settings: Settings, supervisor: Supervisor, kafka: str) -> None:
    doc = {
        "pid": os.getpid(),
        "kafka": kafka,
        "updated_at": time.time(),
        "children": {
            role: {
                "pid": pid,
                "restarts": supervisor.children[role].restarts,
                "last_exit": supervisor.children[role].last_exit,
            }
            for role, pid in supervisor.pids().items()
        },
    }
    path = state_path(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def where_lines(settings: Settings, kafka: str) -> list[str]:
    """Where things are, once the services have said (their records in ``services/``)."""
    from auditstream.sinks.service import where

    ch = settings.clickhouse
    lines = [
        f"  Kafka      {settings.kafka.bootstrap_servers} ({kafka})",
        f"  store      {where(ch)} (database {ch.database}); query it with "
        '`auditstream sql "SELECT count() FROM audit_events"`',
        f"  logs       {settings.home / 'logs'}/{{{','.join(ROLES)}}}.log",
    ]
    for role in ROLES:
        record = health.read_record(settings, role) or {}
        metrics = record.get("metrics")
        shown = f"{metrics}/metrics (/healthz, /readyz)" if metrics else "no metrics port"
        lines.append(f"  {role:<11}{shown}")
    api = _api_url(settings)
    if api:
        lines.append(f"  API        {api} (reference: {api}/docs)")
        lines.append(f"  viewer     {api}/ui/ (sign in with a token: `auditstream tokens create`)")
    elif settings.api.enabled:
        lines.append(f"  API        not serving (port {settings.api.port}?): see the sink's log")
    lines.append("  status     `auditstream status`; dead letters: `auditstream dlq list`")
    return lines


def _api_url(settings: Settings) -> str | None:
    from auditstream.api.server import live_api

    running = live_api(settings)
    return str(running["url"]) if running else None


def _records_ready(settings: Settings) -> bool:
    services = all(health.read_record(settings, role) is not None for role in ROLES)
    return services and (not settings.api.enabled or _api_url(settings) is not None)


def with_api(settings: Settings, env: dict[str, str]) -> tuple[Settings, dict[str, str]]:
    """The sink serves the audit-log API and the viewer (``AUDITSTREAM_API_PORT``, 8080
    unless set): with the embedded store only the store's owner can. With a ClickHouse server
    the API runs on its own (``auditstream serve``) and the sink does not serve it."""
    from auditstream.sinks import query

    if settings.api.enabled or query.owner_file(settings.clickhouse) is None:
        return settings, env
    env = {**env, "AUDITSTREAM_API_PORT": str(settings.api.port)}
    return Settings.from_env(env), env


def already_running(settings: Settings) -> str | None:
    """Why a second run on this home must not start (the store admits one owner), or None."""
    try:
        pid = int(json.loads(state_path(settings).read_text())["pid"])
        os.kill(pid, 0)
        return f"auditstream run is already running on {settings.home} (pid {pid})"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for role in ROLES:
        record = health.read_record(settings, role)
        if record is not None:
            return (
                f"a {role} is already running on {settings.home} (pid {record['pid']}); "
                "stop it first"
            )
    return None


def run(settings: Settings, keep_kafka: bool) -> int:
    from auditstream.infra import kafka_local, topics

    busy = already_running(settings)
    if busy:
        say(f"error: {busy}", err=True)
        return 1

    stopping = threading.Event()
    received: list[int] = []
    pipeline: Pipeline | None = None

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        stopping.set()
        if len(received) == 2 and pipeline is not None:
            # Impatient: nothing is lost (what was not committed is read again), only the
            # drain is skipped.
            say("second signal: killing the services", err=True)
            for proc in list(pipeline.procs.values()):
                proc.kill()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def nap(seconds: float) -> None:
        if stopping.wait(seconds):
            raise _Stopped

    started_kafka = False
    if settings.kafka.external:
        kafka = "external cluster, KAFKA_BOOTSTRAP_SERVERS"
    else:
        try:
            before = kafka_local.status(settings.kafka.local)
            if not before.running:
                say("starting Kafka (the first run fetches its jars from Maven Central)...")
            kafka_local.up(settings.kafka.local)
        except kafka_local.KafkaSetupError as exc:
            say(f"error: {exc}", err=True)
            return 1
        started_kafka = not before.running
        kafka = "local broker, started by this run" if started_kafka else "local broker, reused"
    try:
        topics.ensure_topics_patiently(
            settings.kafka.bootstrap_servers,
            settings.topics,
            say=lambda line: say(line, err=True),
            security=settings.kafka.security.librdkafka(),
            sleep=nap,
        )
        settings, env = with_api(settings, dict(os.environ))
        pipeline = Pipeline(env=env, settings=settings, supervised=True)
        supervisor = Supervisor(pipeline, say)
        try:
            code = _supervise(settings, supervisor, stopping, kafka)
        finally:
            if received:
                name = signal.Signals(received[0]).name
                say(f"{name}: stopping the normalizer, the worker, then the sink...")
            pipeline.stop_all()
    except _Stopped:
        code = 0
    except KafkaException as exc:  # not unreachable (that is waited out): refused
        why = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else exc
        say(f"error: Kafka at {settings.kafka.bootstrap_servers} refused us: {why}", err=True)
        code = 1
    finally:
        if started_kafka and not keep_kafka:
            kafka_local.down(settings.kafka.local)
        state_path(settings).unlink(missing_ok=True)
    say("stopped" + (" (Kafka left running)" if started_kafka and keep_kafka else ""))
    return code


def _supervise(
    settings: Settings, supervisor: Supervisor, stopping: threading.Event, kafka: str
) -> int:
    if stopping.is_set():
        return 0
    supervisor.start_all()
    say(f"auditstream running (pid {os.getpid()}); Ctrl-C or SIGTERM stops it")
    announced = False
    began = time.monotonic()
    while not stopping.is_set():
        try:
            supervisor.tick()
        except ConfigurationExit as exc:
            say(f"error: {exc}; fix it and run again", err=True)
            return 2
        _write_state(settings, supervisor, kafka)
        waited = time.monotonic() - began
        if not announced and (_records_ready(settings) or waited > RECORDS_WAIT_SECONDS):
            announced = True
            for line in where_lines(settings, kafka):
                say(line)
        stopping.wait(TICK_SECONDS)
    return 0


@click.command("run")
@click.option("--keep-kafka", is_flag=True, help="Leave a broker this run started running.")
def run_command(keep_kafka: bool) -> None:
    """Run the pipeline in the foreground: broker, sink (with the audit-log API and viewer),
    normalizer and worker.

    Reuses a running local broker (or uses KAFKA_BOOTSTRAP_SERVERS), restarts a service that
    exits (1 s doubling to 30 s), and on Ctrl-C or SIGTERM stops the services upstream first,
    so the last events published are stored, then the broker it started.
    """
    from auditstream.cli.main import _settings

    sys.exit(run(_settings(), keep_kafka))
