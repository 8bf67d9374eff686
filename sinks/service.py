"""The sink process: owns the ClickHouse store, runs one sink loop per table, serves SQL.

Four loops, each with its own consumer group, thread, writer thread and ClickHouse client:
events (``audit_events``), alerts (``security_alerts``), dead letters
(``audit_dead_letters``) and repeats (``audit_repeats``), so a slow or failing write to one
table never holds up another. One client per loop, not one shared: over HTTP a client is one
session, and a session runs one query at a time ("concurrent queries within the same
session"). On chDB every client is its own handle on the process's one engine, and
queries on different handles run concurrently.

The store may be unreachable when the sink starts (a server still booting, the embedded
store held by another process): the sink then waits for it, saying so once per
``log_every_seconds``, instead of exiting.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from confluent_kafka import Consumer, Producer

from auditstream.config import ClickHouseSettings, Settings
from auditstream.infra.ratelog import LibraryLogFilter, RateLimitedLog
from auditstream.integrity.audit import ScheduledVerification
from auditstream.integrity.chain import Chainer, ChainKey, Head, store_heads
from auditstream.integrity.checkpoints import (
    Checkpointer,
    CheckpointLog,
    Recorder,
    heads_checkpoints,
    iter_type,
    kafka_publisher,
    now_text,
    read_topic,
    unsigned_heads,
)
from auditstream.integrity.keys import KeyStore
from auditstream.integrity.trust import HeadJournal, TrustedHeads, store_rows_at
from auditstream.sinks import query_server, store, tables
from auditstream.sinks.consumer import (
    RowBuilder,
    SinkConfig,
    SinkLoop,
    consumer_config,
    producer_config,
)
from auditstream.sinks.horizon import Horizon, read_ttl_days
from auditstream.sinks.query_server import QueryServer
from auditstream.sinks.rows import alert_row, dead_letter_row, event_row, repeat_row
from auditstream.sinks.tables import ALERTS, DEAD_LETTERS, EVENTS, REPEATS, TableSpec
from auditstream.sinks.writer import BatchWriter

log = logging.getLogger(__name__)
kafka_log = logging.getLogger("auditstream.sinks.kafka")
kafka_log.addFilter(LibraryLogFilter())

ClientFactory = Callable[[], Any]


@dataclass(frozen=True)
class LoopSpec:
    """One table's loop: where it reads, what it writes, how a message becomes a row."""

    spec: TableSpec
    topic: str
    group: str
    row: RowBuilder
    dead_letters: bool = True
    """False for the loop reading the dead-letter topic: it must never write to it."""
    retention: bool = True
    """Dead-letter rows the table's TTL would delete at once (``horizon``)."""


def loop_specs(settings: Settings) -> list[LoopSpec]:
    app, topics = settings.app_id, settings.topics
    return [
        LoopSpec(EVENTS, topics.normalized, f"{app}-sink", event_row),
        LoopSpec(ALERTS, topics.alerts, f"{app}-sink-alerts", alert_row),
        LoopSpec(
            DEAD_LETTERS,
            topics.dead_letter,
            f"{app}-sink-dead-letters",
            dead_letter_row,
            dead_letters=False,
            retention=False,
        ),
        LoopSpec(REPEATS, topics.repeats, f"{app}-sink-repeats", repeat_row, retention=False),
    ]


def where(settings: ClickHouseSettings) -> str:
    """The store's address for a log line (no credentials)."""
    dsn = settings.dsn
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return dsn


def connect_waiting(
    connect: ClientFactory,
    settings: ClickHouseSettings,
    stopping: threading.Event,
    retry_seconds: float = 5.0,
    log_every: float = 30.0,
) -> Any | None:
    """``connect()`` until it succeeds (None if ``stopping`` is set first)."""
    rate = RateLimitedLog(log, log_every)
    failed = False
    while not stopping.is_set():
        try:
            client = connect()
        except Exception as exc:
            failed = True
            # store.connect's "cannot open ClickHouse at X: why": say X once, then why.
            why = exc.__cause__ if str(exc).startswith("cannot open") and exc.__cause__ else exc
            rate.warning(
                "store",
                "ClickHouse at %s unreachable: %s; retrying every %.0f s",
                where(settings), str(why)[:500], retry_seconds,
            )  # fmt: skip
            stopping.wait(retry_seconds)
            continue
        if failed:
            log.info("ClickHouse at %s reachable; starting", where(settings))
        return client
    return None


def _loop(
    settings: Settings, client: Any, loop: LoopSpec, journal: HeadJournal | None = None
) -> SinkLoop:
    ch = settings.clickhouse
    bootstrap = settings.kafka.bootstrap_servers
    security = settings.kafka.security.librdkafka()
    horizon = None
    if loop.retention:
        spec = loop.spec
        horizon = Horizon(lambda: read_ttl_days(client, ch.database, spec.name, spec.time_column))
    chain = None
    if loop.spec == EVENTS:
        journal = journal or HeadJournal.at_home(
            settings.home, CheckpointLog.at_home(settings.home).read()
        )
        heads = TrustedHeads(
            store_heads(client, ch.database),
            store_rows_at(client, ch.database),
            journal,
            adopt_unknown=not ch.embedded,  # on a server, another sink may have written it
            report=lambda key, stored, used: report_untrusted(settings, key, stored, used),
        )
        chain = Chainer(heads, journal)
    return SinkLoop(
        consumer=Consumer(
            {**consumer_config(bootstrap, loop.group, security), "error_cb": _kafka_error},
            logger=kafka_log,
        ),
        writer=BatchWriter(
            client, ch.database, loop.spec, raw_topic=settings.topics.raw, chain=chain
        ),
        dead_letters=Producer(
            {**producer_config(bootstrap, security), "error_cb": _kafka_error}, logger=kafka_log
        )
        if loop.dead_letters
        else None,
        config=SinkConfig(
            topic=loop.topic,
            dead_letter_topic=settings.topics.dead_letter,
            max_rows=ch.batch_max_rows,
            max_seconds=ch.batch_max_seconds,
        ),
        row=loop.row,
        horizon=horizon,
    )


_kafka_errors = RateLimitedLog(kafka_log)


def _kafka_error(error: Any) -> None:
    """librdkafka's client-level errors (all brokers down...): one line per kind per 30 s."""
    code = error.code() if hasattr(error, "code") else error
    _kafka_errors.warning(f"kafka:{code}", "kafka: %s", error)


def build(
    settings: Settings,
    client_factory: ClientFactory | None = None,
    stopping: threading.Event | None = None,
) -> tuple[list[SinkLoop], QueryServer | None]:
    """The loops (one client each from ``client_factory``) and, on the embedded store, the
    SQL server (analyst sessions of its own). Waits for the store; returns no loops if
    ``stopping`` was set meanwhile."""
    ch = settings.clickhouse
    stopping = stopping or threading.Event()
    factory = client_factory or (lambda: store.connect(ch, create=False))
    first = connect_waiting(client_factory or (lambda: store.connect(ch)), ch, stopping)
    if first is None:
        return [], None
    tables.ensure_accounting(first, ch.database, ch.retention_days, ch.alert_retention_days)
    try:
        record_initial_retention(settings, first)
    except Exception as exc:  # verify then reports what TTL deletes; the sink still runs
        log.warning("the initial retention checkpoint was not written: %s", exc)
    journal = HeadJournal.at_home(settings.home, CheckpointLog.at_home(settings.home).read())
    try:
        sign_recovered_heads(settings, first, journal)
    except Exception as exc:  # those records stay "not yet checkpointed" until chains grow
        log.warning("heads stored after the last checkpoint not signed: %s", exc)
    loops: list[SinkLoop] = []
    for loop in loop_specs(settings):
        client = first if not loops else connect_waiting(factory, ch, stopping)
        if client is None:
            return [], None
        loops.append(_loop(settings, client, loop, journal))
    server = query_server.serve(ch)  # analysts' sessions of its own, never a writer's
    return loops, server


def recorder(settings: Settings) -> Recorder:
    """Signs checkpoints with this home's key, into its file and the checkpoint topic."""
    return Recorder(
        KeyStore.at_home(settings.home),
        CheckpointLog.at_home(settings.home),
        kafka_publisher(settings.kafka.client_config(), settings.topics.checkpoints),
    )


def sign_recovered_heads(settings: Settings, client: Any, journal: HeadJournal) -> int:
    """At start: heads a killed sink stored after its last checkpoint are signed now (marked
    ``recovered``), so an idle chain does not stay unsigned. Only heads in its write-ahead
    journal count, and only as the store still has them (same position, same hash): a row
    someone added to the store is never among them."""
    pending = journal.pending()
    if not pending:
        return 0
    found = store_rows_at(client, settings.clickhouse.database)(
        {key: set(known) for key, known in pending.items()}
    )
    stored: dict[ChainKey, Head] = {}
    for key, known in pending.items():
        have = found.get(key, {})
        good = [seq for seq, digest in known.items() if digest in have.get(seq, set())]
        if good:
            stored[key] = Head(max(good), known[max(good)])
    docs = CheckpointLog.at_home(settings.home).read()
    heads = unsigned_heads(docs, ((k[0], k[1], k[2], h.seq, h.hash) for k, h in stored.items()))
    if heads:
        recorder(settings).record(heads_checkpoints(heads, recovered=True))
        journal.compact(heads)
        log.warning(
            "signed %d chain heads a previous sink stored after its last checkpoint", len(heads)
        )
    return len(heads)


def report_untrusted(settings: Settings, key: ChainKey, stored: Head, used: Head | None) -> None:
    """A chain's head in the store is not one this sink wrote: say so, signed and in the log.
    The sink goes on from ``used`` (None: from the start); ``verify`` names the rows."""
    tenant, partition, day = key
    log.error(
        "chain %s/%d/%s: the store's head (position %d) is not one this sink wrote; "
        "continuing from %s. Run `auditstream verify --tenant %s`",
        tenant, partition, day, stored.seq,
        f"position {used.seq}" if used else "the start", tenant,
    )  # fmt: skip
    doc = {
        "type": "untrusted_head",
        "at": now_text(),
        "tenant": tenant,
        "partition": partition,
        "day": day,
        "stored": {"seq": stored.seq, "hash": stored.hash},
        "continued_from": None if used is None else {"seq": used.seq, "hash": used.hash},
    }
    try:
        recorder(settings).record([doc])
    except Exception as exc:  # the log line above stands; verify still finds the rows
        log.warning("the untrusted-head checkpoint was not written: %s", exc)


def record_initial_retention(settings: Settings, client: Any) -> None:
    """The first start of a store (for these checkpoints): sign the retention it keeps, so
    that ``verify`` can tell TTL expiry from deletion from the start. Generates the key.

    "First" is judged by the checkpoint topic too, not by the local file alone: a home that
    lost its file (a new volume) gets the topic's checkpoints back, and a TTL that differs
    from the last signed retention is reported, never signed as "initial" (review finding
    H3: a TTL shortened directly in ClickHouse would make deletions look like expiry)."""
    log_file = CheckpointLog.at_home(settings.home)
    docs = log_file.read()
    known = {d.get("table") for d in iter_type(docs, "retention")}
    if all(spec.name in known for spec in (EVENTS,)):
        return
    try:
        remote = read_topic(settings.kafka.client_config(), settings.topics.checkpoints)
    except RuntimeError as exc:
        if "does not exist" not in str(exc):
            log.warning(
                "the checkpoint topic could not be read (%s): the store's retention is signed "
                "at a start that can read it",
                exc,
            )
            return
        remote = []
    have = {d.get("signature") for d in docs}
    missing = [d for d in remote if d.get("signature") not in have]
    if missing:
        log_file.append(missing)
        docs += missing
        log.warning(
            "restored %d checkpoints from the checkpoint topic into %s (the file lacked them)",
            len(missing),
            log_file.path,
        )
    database = settings.clickhouse.database
    for spec in (EVENTS,):
        days = tables.current_retention_days(client, database, spec)
        if days is None:
            continue
        signed = sorted(
            (str(d["at"]), int(d["days"]))
            for d in iter_type(docs, "retention")
            if d.get("table") == spec.name
        )
        if signed:
            if signed[-1][1] != days:
                log.error(
                    "%s keeps rows %d days but its last signed retention is %d days: the TTL "
                    "was changed outside `auditstream retention set`; verify judges expiry by "
                    "the signed retention only (set it with `auditstream retention set`)",
                    spec.name, days, signed[-1][1],
                )  # fmt: skip
            continue
        # Rows stored before tamper evidence have no chain: counted, so none can be added.
        unchained = client.query(
            f"SELECT tenant_id, count() FROM `{database}`.`{spec.name}` "
            "WHERE chain_seq = 0 GROUP BY tenant_id"
        ).result_rows
        recorder(settings).retention(
            spec.name, days, "initial", unchained={str(t): int(n) for t, n in unchained}
        )


def _start_api(settings: Settings, server: QueryServer | None, required: bool) -> Any:
    """The audit-log API on a thread of this process, on the query server's analyst
    sessions (embedded store only; with a server DSN it runs standalone). ``required``: a
    port that can't be bound stops the sink (``auditstream serve``); otherwise the sink
    keeps ingesting and says why there is no API."""
    if server is None or not settings.api.enabled:
        return None
    from auditstream.api.server import ApiServer, ApiUnavailable

    try:
        api = ApiServer(settings, server.sessions)
        api.start()
    except ApiUnavailable as exc:
        if required:
            raise
        log.error("%s; the sink runs without the API", exc)
        return None
    return api


def run(settings: Settings, *, api_required: bool = False) -> None:
    """Run in the foreground until SIGINT / SIGTERM; buffered rows are written first.

    With ``settings.api.enabled`` (``AUDITSTREAM_API_PORT``, or ``auditstream serve``) and
    the embedded store, the audit-log API runs here too."""
    stopping = threading.Event()
    loops: list[SinkLoop] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        for loop in loops:
            loop.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for handler in logging.getLogger().handlers:  # other libraries' retry warnings, bounded
        handler.addFilter(LibraryLogFilter())
    from auditstream.ops.observe import observe_sink

    observed = observe_sink(settings, loops, [s.spec.name for s in loop_specs(settings)])
    built, server = build(settings, stopping=stopping)
    loops.extend(built)
    if stopping.is_set():
        stop(signal.SIGTERM, None)
    failures: list[BaseException] = []

    def guarded(loop: SinkLoop) -> None:
        try:
            loop.run()
        except BaseException as exc:
            log.exception("a sink loop failed; stopping the sink")
            failures.append(exc)
            stop(signal.SIGTERM, None)

    threads = [
        threading.Thread(target=guarded, args=(loop,), name=f"sink-{spec.spec.name}")
        for loop, spec in zip(loops, loop_specs(settings), strict=False)
    ]
    chains = [loop.writer.chain for loop in loops if loop.writer.chain is not None]
    checkpointer = (
        Checkpointer(chains[0], recorder(settings), settings.integrity.checkpoint_seconds)
        if chains
        else None
    )
    checkpoint_thread = (
        threading.Thread(target=checkpointer.run, name="sink-checkpoints", daemon=True)
        if checkpointer is not None
        else None
    )
    interval = settings.integrity.verify_interval_seconds
    verification = ScheduledVerification(settings, interval) if interval and loops else None
    if verification is not None:
        threading.Thread(target=verification.run, name="sink-verify", daemon=True).start()
    for thread in threads:
        thread.start()
    if checkpoint_thread is not None:
        checkpoint_thread.start()
    api = None
    if server is not None:
        server.start()
        try:
            api = _start_api(settings, server, api_required)
        except BaseException:
            stop(signal.SIGTERM, None)
            for thread in threads:
                thread.join(60)
            server.stop()
            raise
    if loops:
        from auditstream.ops.logs import say

        say(
            f"sink: Kafka at {settings.kafka.bootstrap_servers}, store {where(settings.clickhouse)}"
            f" (database {settings.clickhouse.database}), writing "
            + ", ".join(f"{s.topic} -> {s.spec.name}" for s in loop_specs(settings)),
            err=True,
        )
    try:
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(0.5)
    finally:
        if verification is not None:
            verification.stopping.set()
        if checkpointer is not None and checkpoint_thread is not None:
            checkpointer.stopping.set()  # the loops are done: sign their last heads
            checkpoint_thread.join(30.0)
        if api is not None:
            api.stop()
        if server is not None:
            server.stop()
        observed()
    if failures:
        raise RuntimeError("a sink loop failed; see the log above") from failures[0]
