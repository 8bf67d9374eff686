"""The anomaly agent: normalized events -> per-actor hourly windows -> forest -> alert topic.

It reads the normalized topic (keyed by tenant and actor, so one actor's events arrive in
order on one partition) and keeps each actor's open windows in the Faust table
``anomaly-windows`` under the same tenant + actor key, so a restarted worker resumes them from
the changelog. Windows close by event time (``detectors/anomaly/windows.py``):

- **in the agent**, when the actor's own later events pass a window's end by ``lateness``;
  the windows a batch of events closed are scored together, in one forest call, at the end
  of that batch;
- **in a timer** (every ``tick_seconds``), for actors that went quiet, when the partition's
  watermark passes a window's end by ``idle_margin``; again one forest call per tick.

At-least-once, like the other detectors: alerts of a batch are published (and acknowledged by
Kafka) *before* the table records their windows as closed, so a crash in between re-closes
and re-sends them, with the same stable alert id (rule, tenant, actor, window start). Counting
is exactly once: the state records the offset of the last event it counted, and a re-delivered
event (after a rebalance or a crash) is skipped. The agent and the timer take one
lock, so they never work on the same actor's state at the same time.

Without a model (``AUDITSTREAM_ANOMALY_MODEL`` unset, missing, or unusable) the agent is not
registered: one log line says why, and the rest of the worker runs as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

import faust
import orjson
from faust.types import TP
from pydantic import ValidationError

from auditstream.config import Settings
from auditstream.stream_jobs.faust_context import make_current

log = logging.getLogger(__name__)

TABLE = "anomaly-windows"


@dataclass(frozen=True)
class AnomalyAgentConfig:
    lateness_seconds: float = 300.0
    idle_margin_seconds: float = 900.0
    max_future_seconds: float = 300.0
    forget_after_hours: float = 6.0
    batch_size: int = 500
    batch_within_seconds: float = 1.0
    tick_seconds: float = 10.0
    quiet_seconds: float = 60.0
    """A partition that delivered nothing this long is caught up: its watermark is now."""
    fetch_fresh_seconds: float = 10.0
    """A partition is read to its end only by a fetch answer at most this old: a consumer
    that stopped fetching (stalled) cannot say what came since."""
    rescan_seconds: float = 300.0
    """How often the timer re-reads the table for open windows it does not know about yet
    (windows restored from the changelog after a restart or a rebalance)."""


@dataclass
class AnomalyStats:
    events: int = 0
    unreadable: int = 0
    windows_closed: int = 0
    alerts: int = 0
    failures: int = 0
    by_verdict: dict[str, int] = field(default_factory=dict)


@dataclass
class _Scan:
    active: frozenset[int] = frozenset()
    at: float = 0.0


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _copy(state: Any) -> dict[str, Any]:
    """A private copy: the table's value must change only through an assignment."""
    return cast(dict[str, Any], orjson.loads(orjson.dumps(state))) if state else {}


def state_key(tenant_id: str, actor_id: str) -> str:
    return f"{tenant_id}\x1f{actor_id}"


def load_model(settings: Settings) -> Any:
    """The configured model, or None (with one log line saying why)."""
    from auditstream.detectors.anomaly.model import ModelError, load

    path = settings.anomaly_model
    if path is None:
        log.info(
            "anomaly scoring off: AUDITSTREAM_ANOMALY_MODEL is not set "
            "(train a model with `auditstream model train`)"
        )
        return None
    if not path.is_file():
        log.warning("anomaly scoring off: the model file %s does not exist", path)
        return None
    try:
        model = load(path)
    except ModelError as exc:
        log.error("anomaly scoring off: %s", exc)
        return None
    h = model.header
    log.info(
        "anomaly scoring on: %s (%d windows %s..%s, threshold %.3f)",
        path,
        h.windows,
        h.trained_from[:10],
        h.trained_to[:10],
        h.threshold,
    )
    return model


def register(
    app: faust.App, settings: Settings, config: AnomalyAgentConfig | None = None
) -> AnomalyStats | None:
    """Add the anomaly agent and its timer to ``app`` if a model is configured."""
    model = load_model(settings)
    if model is None:
        return None
    # Imported here: a worker without a model never loads scikit-learn.
    from auditstream.detectors.anomaly import windows
    from auditstream.detectors.anomaly.features import facts_from_event
    from auditstream.detectors.anomaly.scoring import Scorer
    from auditstream.schemas.event import AuditEvent

    conf = config or AnomalyAgentConfig()
    rules = windows.WindowRules(
        lateness_ms=int(conf.lateness_seconds * 1000),
        idle_margin_ms=int(conf.idle_margin_seconds * 1000),
        max_future_ms=int(conf.max_future_seconds * 1000),
        forget_after_ms=int(conf.forget_after_hours * 3_600_000),
    )
    topics = settings.topics
    source = app.topic(topics.normalized, key_serializer="raw", value_serializer="raw")
    alerts = app.topic(topics.alerts, key_serializer="raw", value_serializer="raw")
    # No value_type: plain JSON values (value_type=dict would make changelog recovery call
    # ``dict.from_data``, as if dict were a faust Record).
    table = app.Table(TABLE, default=dict, partitions=topics.partitions, key_type=str)
    scorer = Scorer(model)
    clock = windows.PartitionClock(int(conf.quiet_seconds * 1000), rules.max_future_ms, _wall_ms)
    stats = AnomalyStats()
    lock = asyncio.Lock()
    open_keys: dict[int, set[str]] = defaultdict(set)
    processed: dict[int, int] = {}
    """Per partition of the normalized topic, the offset of the last event processed."""
    scan = _Scan()

    async def publish(closed: list[windows.ClosedWindow]) -> None:
        if not closed:
            return
        stats.windows_closed += len(closed)
        try:
            found = scorer.alerts(closed)
        except Exception:  # a scoring bug must not stall the stream
            stats.failures += 1
            log.exception("scoring %d closed windows failed", len(closed))
            return
        sent = [
            await alerts.send(key=alert.tenant_id.encode(), value=alert.model_dump_json().encode())
            for alert in found
        ]
        await asyncio.gather(*sent)  # delivered, before the state records the windows closed
        stats.alerts += len(found)
        if found:
            log.info("%d anomalous of %d closed windows", len(found), len(closed))

    def track(partition: int, key: str, state: dict[str, Any]) -> None:
        if windows.has_open(state):
            open_keys[partition].add(key)
        else:
            open_keys[partition].discard(key)

    async def process(batch: list[Any]) -> None:
        now_ms = _wall_ms()
        touched: dict[str, tuple[dict[str, Any], Any]] = {}
        closed: list[windows.ClosedWindow] = []
        for event in batch:
            stats.events += 1
            processed[event.message.partition] = event.message.offset
            try:
                audit = AuditEvent.model_validate_json(event.message.value or b"")
            except ValidationError:
                stats.unreadable += 1
                continue
            partition = event.message.partition
            key = state_key(audit.tenant_id, audit.actor.id)
            try:
                facts = facts_from_event(audit)
                state = touched[key][0] if key in touched else _copy(table[key])
                verdict, done = windows.observe(
                    state,
                    facts,
                    audit.tenant_id,
                    audit.actor.id,
                    partition,
                    event.message.offset,
                    now_ms,
                    rules,
                )
            except Exception:  # a bug on one event must not stall the stream
                stats.failures += 1
                log.exception("anomaly windowing failed for event %s", audit.event_id)
                continue
            stats.by_verdict[verdict.value] = stats.by_verdict.get(verdict.value, 0) + 1
            if verdict in (windows.Verdict.FUTURE, windows.Verdict.REPEAT):
                continue
            clock.saw(partition, facts.occurred_ms)
            if verdict is windows.Verdict.ACCEPTED:
                touched[key] = (state, event)
                closed.extend(done)
        await publish(closed)  # first: a crash before the writes below re-closes, re-sends
        for key, (state, event) in touched.items():
            make_current(event)  # the change goes to this event's changelog partition
            table[key] = state
            track(event.message.partition, key, state)

    async def windows_agent(stream: faust.StreamT[bytes]) -> None:
        batches = cast(faust.Stream[bytes], stream).take_events
        async for batch in batches(conf.batch_size, within=conf.batch_within_seconds):
            async with lock:
                await process(list(batch))

    def write(partition: int, key: str, state: dict[str, Any] | None) -> None:
        """A table change from the timer, which has no current event: the partition is
        explicit (the key's own, recorded in its state), as ``Table.on_key_set`` does it."""
        if state is None:
            table.data.pop(key, None)
            table.send_changelog(partition, key, None, value_serializer="raw")
        else:
            table.data[key] = state
            table.send_changelog(partition, key, state)

    def rescan(active: frozenset[int]) -> None:
        open_keys.clear()
        for gone in set(processed) - active:
            del processed[gone]  # another worker's now: its offset here goes stale
        marks = {p: clock.watermark(p, caught_up(p)) for p in active}  # once per partition
        for key, value in list(table.data.items()):
            partition = value.get("p") if isinstance(value, dict) else None
            if partition not in active:
                continue  # a standby copy, or another worker's partition
            watermark = marks[partition]
            if windows.has_open(value):
                open_keys[partition].add(key)
            elif watermark is not None and windows.forgettable(value, watermark, rules):
                write(partition, key, None)
        scan.active, scan.at = active, time.monotonic()

    def caught_up(partition: int) -> bool:
        """Read to the end of the partition (so its quiet is not a stalled consumer)?

        From the consumer's own record of its latest fetch (position, log end, last record
        handed over): offsets alone are wrong on a transactional topic, whose commit markers
        take offsets that no one receives (see ``windows.read_to_end``)."""
        fetched_of = getattr(app.consumer, "fetched", None)
        try:
            seen = fetched_of(TP(topics.normalized, partition)) if fetched_of else None
        except Exception:  # no consumer yet
            seen = None
        if seen is None or seen.answered_ms is None:
            return False  # not fetched since the assignment: nothing says it is read
        if _wall_ms() - seen.answered_ms > conf.fetch_fresh_seconds * 1000:
            return False  # the consumer stopped fetching: its view is stale
        end = windows.log_end(seen.highwater, seen.last_stable)
        return windows.read_to_end(processed.get(partition), seen.position, seen.last_record, end)

    async def close_idle() -> None:
        if app.rebalancing or app.in_recovery:
            return
        try:
            async with lock:
                await close_idle_windows()
        except Exception:  # the timer must keep ticking
            stats.failures += 1
            log.exception("closing idle anomaly windows failed")

    async def close_idle_windows() -> None:
        active = frozenset(
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topics.normalized
        )
        if active != scan.active or time.monotonic() - scan.at >= conf.rescan_seconds:
            rescan(active)
        due: list[tuple[int, str, dict[str, Any]]] = []
        closed: list[windows.ClosedWindow] = []
        for partition in active:
            watermark = clock.watermark(partition, caught_up(partition))
            if watermark is None:
                continue
            for key in list(open_keys.get(partition, ())):
                state = _copy(table.data.get(key))
                if not state:
                    open_keys[partition].discard(key)
                    continue
                done = windows.close_due(state, watermark - rules.idle_margin_ms)
                if done:
                    closed.extend(done)
                    due.append((partition, key, state))
        await publish(closed)
        for partition, key, state in due:
            write(partition, key, state)
            track(partition, key, state)

    app.agent(source, name="anomaly-windows")(windows_agent)
    app.timer(interval=conf.tick_seconds)(close_idle)
    log.debug("anomaly agent registered on %s", topics.normalized)
    return stats
