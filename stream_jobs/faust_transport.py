"""Faust's Kafka transport, with stream partitions positioned before anything is fetched.

Why (docs/decisions/0003-faust-recovery.md): after a rebalance or a restart, Faust's recovery
resumes the stream partitions *before* it seeks them to their committed offsets, then resumes
flow control, which clears every stream queue. Records fetched in between reach the agents'
queues, move the consumer's read offset past them, and are then thrown away by that clear:
never processed, never acknowledged, and skipped on the re-fetch as "already read". Offsets are
lost (the commit stalls at the first one, or the gap bookkeeping commits past it).

Here a stream partition is *held* from its assignment until it has been seeked to its committed
offset **and** flow has been resumed after that seek: only then may it be fetched. The other
changes close the same bookkeeping holes: no commit for a partition not positioned yet in this
generation, the committed-offset check also when nothing was committed before, acknowledgements
of records fetched in an earlier generation ignored, and a gap never covers the record that
revealed it, and a fetch returns records of the partitions asked for only (aiokafka reads an
empty set as "all partitions"). The worker's consumers also read committed data only
(``read_committed``): the normalized topic is written by a transactional producer, and aborted
records must never reach an agent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from mode.utils.queues import FlowControlEvent

READ_COMMITTED = "read_committed"


class GatedFlowControl(FlowControlEvent):
    """``app.flow_control`` that tells its listeners when flow resumes, after the queues it
    clears on resuming are empty: a partition released then loses nothing to that clear."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_resumed: list[Callable[[], None]] = []

    def resume(self) -> None:
        super().resume()  # clears every stream queue
        for listener in self.on_resumed:
            listener()


class ReadCommittedConsumerThread(driver.AIOKafkaConsumerThread):
    """The aiokafka consumer of a worker, reading committed records only."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust picks read_uncommitted unless the app runs exactly-once (whose transactions
        # have open bugs). aiokafka hands this attribute to its fetcher when it starts.
        consumer._isolation_level = READ_COMMITTED
        return consumer

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: set[TP],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        """Records of the partitions Faust asked for, and of no other.

        Faust hands over its *live* set of active partitions. aiokafka reads it while it
        waits, and an empty set means "every partition" to it: when Faust pauses the last
        active ones meanwhile (the changelogs, at the end of a recovery), aiokafka returns and
        consumes the records of held stream partitions, which Faust then drops as inactive.
        A copy taken now cannot change; an empty one fetches nothing.
        """
        wanted = set(active_partitions)  # a copy: Faust's set changes, this one does not
        if not wanted:
            return {}
        records = dict(
            await super()._fetch_records(consumer, wanted, timeout=timeout, max_records=max_records)
        )
        held: frozenset[TP] = getattr(self.consumer, "held", frozenset())
        for tp in [tp for tp in records if tp in held]:  # never fetched: put them back
            consumer.seek(tp, records.pop(tp)[0].offset)
        note = getattr(self.consumer, "note_fetched", None)
        if note is not None:
            note(consumer, wanted - held, records)
        return records


@dataclass(frozen=True)
class Fetched:
    """What the consumer has handed over of one partition, as of its latest fetch."""

    position: int
    """aiokafka's position right after the fetch: the next offset it will read. It is past
    the control records (transaction markers) and aborted records it skipped, which no one
    ever receives."""
    last_record: int | None
    """The offset of the last record handed over since the assignment (None: none yet)."""
    highwater: int | None
    """The log's end as the fetch response gave it (past the last transaction marker)."""
    last_stable: int | None
    """The last stable offset (``read_committed``: where the first open transaction starts,
    else the high watermark); None or negative when the broker did not say."""
    answered_ms: int | None
    """Wall-clock time (ms) of the broker's latest fetch answer for it, which gave the two
    offsets above."""


class PositionedConsumer(driver.Consumer):
    """Faust's aiokafka consumer; a stream partition is fetched only once positioned."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unseeked: set[TP] = set()
        """Stream partitions assigned and not yet seeked to their committed offsets."""
        self._seeked: set[TP] = set()
        """Seeked, waiting for flow to resume (which clears the queues) before fetching."""
        self._wanted: set[TP] = set()
        """Held partitions that Faust asked to resume: released together with flow."""
        self._floor: dict[TP, int] = {}
        """Per partition, the next offset not yet committed: the first record fetched after
        its seek, then each committed offset (the head of the acknowledged offsets)."""
        self._need_floor: set[TP] = set()
        self._fetched: dict[TP, Fetched] = {}
        flow = self.app.flow_control
        if isinstance(flow, GatedFlowControl):
            flow.on_resumed.append(self._release)

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def held(self) -> frozenset[TP]:
        """Stream partitions that may not be fetched yet."""
        return frozenset(self._unseeked | self._seeked)

    # -- holding partitions -------------------------------------------------------------

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        streams = {tp for tp in assigned if not self._is_changelog_tp(tp)}
        self._unseeked = set(streams)
        self._seeked.clear()
        self._wanted.clear()
        for tp in streams:
            # Acknowledgements recorded after the revocation cleared them belong to the
            # previous generation; the seek below re-reads from the committed offset.
            self._acked.pop(tp, None)
            self._acked_index.pop(tp, None)
            self._gap.pop(tp, None)
            self._floor.pop(tp, None)
        for tp in set(self._fetched):
            del self._fetched[tp]  # positions of the previous generation
        await super().on_partitions_assigned(assigned, generation_id)

    def _set_active_tps(self, tps: set[TP]) -> set[TP]:
        return super()._set_active_tps(set(tps) - self.held)

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        wanted = set(tps)
        held = wanted & self.held
        self._wanted |= held
        super().resume_partitions(wanted - held)

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        paused = set(tps)
        self._wanted -= paused
        super().pause_partitions(paused)

    def on_buffer_drop(self, tp: TP) -> None:
        if tp in self.held:
            self._buffered_partitions.discard(tp)
            return
        super().on_buffer_drop(tp)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        assignment = self.assignment()
        seeked = self._unseeked & assignment
        self._unseeked -= seeked
        self._seeked |= seeked
        self._need_floor |= seeked
        # Released by the next ``flow_control.resume()`` (Faust's recovery resumes flow right
        # after this seek), not now: flow may be active already, and that resume clears the
        # queues all the same.

    def _release(self) -> None:
        """Flow resumed: seeked partitions that Faust wants resumed may now be fetched."""
        ready = self._seeked & self._wanted
        self._seeked -= ready
        self._wanted -= ready
        if ready:
            super().resume_partitions(ready)

    # -- what was handed over ------------------------------------------------------------

    def fetched(self, tp: TP) -> Fetched | None:
        """The partition's position and last record handed over, as of its latest fetch
        (None: not fetched since its assignment)."""
        return self._fetched.get(tp)

    def note_fetched(self, consumer: Any, tps: Iterable[TP], records: Any) -> None:
        """After a fetch (on the consumer thread): each partition's position and last record.

        Recorded together, after aiokafka moved the position: a reader never sees a position
        past records that are not in ``last_record`` yet."""
        subscription = consumer._subscription.subscription
        assignment = subscription.assignment if subscription is not None else None
        if assignment is None:
            return  # not assigned any more
        for tp in tps:
            state = assignment.state_value(tp)
            if state is None or not state.has_valid_position:
                continue
            batch = records.get(tp)
            before = self._fetched.get(tp)
            last = batch[-1].offset if batch else (before.last_record if before else None)
            self._fetched[tp] = Fetched(
                position=int(state.position),
                last_record=last,
                highwater=state.highwater,
                last_stable=state.lso,
                answered_ms=state.timestamp,
            )

    # -- bookkeeping ---------------------------------------------------------------------

    def _to_message(self, tp: TP, record: Any) -> Any:
        if tp in self._need_floor:
            self._need_floor.discard(tp)
            self._floor[tp] = record.offset
        return super()._to_message(tp, record)

    def ack(self, message: Any) -> bool:
        if getattr(message, "generation_id", None) not in (None, self.app.consumer_generation_id):
            # Fetched before this assignment: it says nothing about the committed position
            # of this generation, which re-reads it from the committed offset.
            message.acked = True
            self._unacked_messages.discard(message)
            return False
        return bool(super().ack(message))

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # Faust passes the offset of the record that revealed the gap as the end; that record
        # is being delivered, not skipped: counting it as done could commit past it.
        await super()._add_gap(tp, offset_from, offset_to - 1)

    async def force_commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        # Write-back caches (``App.before_commit``) first: their changelog messages are then
        # in the producer's buffer, which Faust flushes before it commits the offsets.
        for flush in getattr(self.app, "before_commit", ()):
            flush()
        return bool(await super().force_commit(topics, start_new_transaction=start_new_transaction))

    def _new_offset(self, tp: TP) -> int | None:
        if tp in self.held or tp in self._need_floor:
            return None  # not positioned (or nothing fetched) in this generation
        floor = self._floor.get(tp)
        acked = self._acked[tp]
        if acked and floor is not None and not self._committed_offset[tp]:
            # Faust checks the head of the acknowledged offsets against the committed offset
            # only when one is known (and not 0); the floor covers the other cases.
            head = min(acked)
            gaps = self._gap[tp]
            if head - floor > 1 and not gaps.overlaps(floor + 1, head):
                return None
        offset: int | None = super()._new_offset(tp)
        if offset is not None:
            self._floor[tp] = offset
        return offset


class Transport(driver.Transport):
    """``kafka://`` with :class:`PositionedConsumer`."""

    Consumer = PositionedConsumer
