"""The spool: a bounded, append-only write-ahead log of events not yet acknowledged by Kafka.

A spool *root* holds slots (``slot-0``, ``slot-1`` ...); a producer locks one slot for its
lifetime (``flock``), so processes sharing a root never share a slot, and a restarted process
(or any other one) picks up a slot that a dead process left with segments in it.

Inside a slot, segment files (``wal.py``) are named by increasing ids and replayed in that
order. Each event is appended once; the producer *dispatches* it to Kafka (straight after the
append, or later by replay) and *acks* it from the delivery callback. A segment is deleted
only once it is sealed (no longer appended to), fully dispatched and every event in it acked.
So a crash at any point loses nothing that was appended; it may replay events that Kafka
already has, which keep their event ids and are dropped downstream.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from auditstream.producers.config import Fsync
from auditstream.producers.errors import SpoolError
from auditstream.producers.wal import MAGIC, SegmentWriter, frame, read_segment

log = logging.getLogger(__name__)

FIRST_SEGMENT = 10**12
"""Segment ids start here, leaving room below for events put back in front at close."""


class SpoolFull(Exception):
    """Internal: appending would exceed ``max_bytes`` (the producer decides: block or raise)."""


@dataclass
class Segment:
    id: int
    path: Path
    size: int
    sealed: bool
    end: int
    """Offset past the last intact record (below ``size`` when the tail is torn)."""
    records: int = 0
    read_to: int = 0
    """Offset past the last dispatched record (0: none yet)."""
    dispatched: int = 0
    acked: int = 0

    @property
    def exhausted(self) -> bool:
        return max(self.read_to, len(MAGIC)) >= self.end

    @property
    def done(self) -> bool:
        return self.sealed and self.exhausted and self.acked >= self.dispatched


@dataclass(frozen=True)
class Dispatch:
    """A spooled event to hand to Kafka; ``segment`` goes back in ``ack``."""

    segment: int
    key: bytes
    value: bytes
    end: int


def segment_name(segment_id: int) -> str:
    return f"{segment_id:020d}.seg"


class Spool:
    """One locked slot: its segments, what was dispatched from them and what Kafka acked."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        segment_bytes: int,
        fsync: Fsync = Fsync.INTERVAL,
        fsync_interval_ms: int = 100,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._interval = fsync_interval_ms / 1000
        self._lock_fd = _lock(directory)
        self._segments: dict[int, Segment] = {}
        self._bytes = 0
        self._undispatched = 0
        self.torn_bytes = 0
        """Bytes skipped at torn or corrupt segment tails (a crash mid-write leaves these)."""
        for path in sorted(directory.glob("*.seg")):
            try:
                seg_id = int(path.stem)
            except ValueError:
                continue
            self._adopt(seg_id, path)
        self.recovered = self._undispatched
        """Events found in the slot when it was opened (left by an earlier process)."""
        self._writer: SegmentWriter | None = None
        self._active: Segment | None = None
        self._last_sync = time.monotonic()
        self._dirty = False

    def _adopt(self, seg_id: int, path: Path) -> None:
        _private(path, 0o600)  # a segment left by an older version may be 0644
        result = read_segment(path)
        seg = Segment(seg_id, path, result.file_bytes, sealed=True, end=result.valid_bytes)
        seg.records = len(result.records)
        if result.torn:
            self.torn_bytes += result.file_bytes - result.valid_bytes
            log.warning(
                "spool segment %s: %d bytes after offset %d are torn or corrupt and are "
                "skipped (a crash mid-write leaves this at the tail)",
                path, result.file_bytes - result.valid_bytes, result.valid_bytes,
            )  # fmt: skip
        self._segments[seg_id] = seg
        self._bytes += seg.size
        self._undispatched += seg.records
        self._remove_if_done(seg)

    # -- state ---------------------------------------------------------------------------
    @property
    def total_bytes(self) -> int:
        return self._bytes

    @property
    def segments(self) -> list[Segment]:
        return [self._segments[k] for k in sorted(self._segments)]

    def has_backlog(self) -> bool:
        """Are there appended events not yet dispatched?"""
        return self._undispatched > 0

    @property
    def undispatched(self) -> int:
        return self._undispatched

    def unacked(self) -> int:
        """Dispatched events Kafka has not acknowledged yet."""
        return sum(s.dispatched - s.acked for s in self._segments.values())

    # -- writing -------------------------------------------------------------------------
    def append(self, key: bytes, value: bytes) -> tuple[int, int]:
        """Write one event (undispatched); returns ``(segment id, end offset)`` for ``mark``.

        Raises ``SpoolFull`` when the spool is at ``max_bytes``.
        """
        data = frame(key, value)
        if self._bytes + len(data) > self.max_bytes:
            raise SpoolFull
        active = self._active
        if active is None or (
            active.size + len(data) > self.segment_bytes and active.size > len(MAGIC)
        ):
            active = self._roll()
        assert self._writer is not None
        size = self._writer.append(data)
        self._bytes += size - active.size
        active.size = active.end = size
        active.records += 1
        self._undispatched += 1
        self._dirty = True
        if self.fsync is Fsync.ALWAYS:
            self.sync()
        else:
            self.maybe_sync()
        return active.id, size

    def _roll(self) -> Segment:
        if self._active is not None:
            self._seal_active()
        seg_id = max(self._segments, default=FIRST_SEGMENT - 1) + 1
        path = self.directory / segment_name(seg_id)
        try:
            self._writer = SegmentWriter(path)
        except OSError as exc:
            raise SpoolError(f"can't create spool segment {path}: {exc}") from exc
        size = self._writer.size
        self._active = Segment(seg_id, path, size, sealed=False, end=size, read_to=size)
        self._segments[seg_id] = self._active
        self._bytes += size
        if self.fsync is not Fsync.NEVER:
            _sync_dir(self.directory)
        return self._active

    def _seal_active(self) -> None:
        if self._writer is not None:
            if self.fsync is not Fsync.NEVER and self._dirty:
                self._writer.sync()
                self._dirty = False
            self._writer.close()
        active = self._active
        self._writer = None
        self._active = None
        if active is not None:
            active.sealed = True
            self._remove_if_done(active)

    def sync(self) -> None:
        """Flush appended events to the device (the group commit of ``fsync=interval``)."""
        if self._writer is not None and self._dirty:
            self._writer.sync()
        self._dirty = False
        self._last_sync = time.monotonic()

    def maybe_sync(self) -> None:
        """``fsync=interval``: sync if the interval has passed since the last one."""
        interval_over = time.monotonic() - self._last_sync >= self._interval
        if self.fsync is Fsync.INTERVAL and self._dirty and interval_over:
            self.sync()

    def put_back(self, events: list[tuple[bytes, bytes]]) -> None:
        """Write ``events`` in a segment *before* all others: they are older than the spool's.

        Used at close for events still waiting in memory, so the next start replays them first.
        Not bounded by ``max_bytes``: refusing them here would lose them.
        """
        if not events:
            return
        seg_id = min(self._segments, default=FIRST_SEGMENT) - 1
        path = self.directory / segment_name(seg_id)
        writer = SegmentWriter(path)
        try:
            writer.append(b"".join(frame(k, v) for k, v in events))
            if self.fsync is not Fsync.NEVER:
                writer.sync()
        finally:
            writer.close()
        if self.fsync is not Fsync.NEVER:
            _sync_dir(self.directory)
        self._adopt(seg_id, path)

    # -- replaying -----------------------------------------------------------------------
    def next_batch(self, limit: int) -> list[Dispatch]:
        """Up to ``limit`` undispatched events, oldest first. ``mark`` each one you send."""
        out: list[Dispatch] = []
        for seg_id in sorted(self._segments):
            if len(out) >= limit:
                break
            seg = self._segments[seg_id]
            if seg.exhausted:
                continue
            result = read_segment(seg.path, seg.read_to)
            for record in result.records[: limit - len(out)]:
                if record.end > seg.end:
                    break
                out.append(Dispatch(seg.id, record.key, record.value, record.end))
            if out and out[-1].segment == seg.id and out[-1].end < seg.end:
                break  # keep order: nothing from later segments before this one is done
        return out

    def mark(self, segment_id: int, end: int) -> None:
        """The event ending at ``end`` in that segment was handed to Kafka."""
        seg = self._segments[segment_id]
        seg.read_to = end
        seg.dispatched += 1
        self._undispatched -= 1
        self._remove_if_done(seg)

    def ack(self, segment_id: int) -> None:
        """Kafka acknowledged (or permanently refused) one dispatched event of that segment."""
        seg = self._segments.get(segment_id)
        if seg is None:
            return
        seg.acked += 1
        self._remove_if_done(seg)

    def _remove_if_done(self, seg: Segment) -> None:
        if seg.done and seg is not self._active:
            self._segments.pop(seg.id, None)
            self._bytes -= seg.size
            with contextlib.suppress(FileNotFoundError):
                seg.path.unlink()
            if self.fsync is not Fsync.NEVER:
                _sync_dir(self.directory)

    def close(self) -> None:
        """Seal the active segment and release the slot; unacked segments stay for replay."""
        self._seal_active()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1


def _lock(directory: Path) -> int:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _private(directory, 0o700)  # spooled events are audit data: the service user's only
        fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise SpoolError(
            f"can't use the spool folder {directory}: {exc}; set spool_dir "
            "(AUDITSTREAM_SPOOL_DIR) to a writable local folder"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SpoolLocked(f"{directory} is held by another producer") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class SpoolLocked(SpoolError):
    """Another live producer holds this slot."""


def _private(path: Path, mode: int) -> None:
    """Give ``path`` exactly ``mode`` (whatever the process umask) if it is ours to change."""
    try:
        if os.stat(path).st_mode & 0o777 != mode:
            os.chmod(path, mode)
    except PermissionError:  # not our file: leave it; opening it will say so
        pass


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolRoot:
    """The folder of slots; hands each producer a slot of its own."""

    def __init__(
        self,
        root: Path,
        max_bytes: int,
        segment_bytes: int,
        fsync: Fsync = Fsync.INTERVAL,
        fsync_interval_ms: int = 100,
    ) -> None:
        self.root = root
        self._args = (max_bytes, segment_bytes, fsync, fsync_interval_ms)

    def _slots(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        _private(self.root, 0o700)
        slots = [p for p in self.root.iterdir() if p.is_dir() and p.name.startswith("slot-")]
        return sorted(slots, key=lambda p: int(p.name.removeprefix("slot-") or 0))

    def acquire_leftover(self) -> Spool | None:
        """A free slot that holds events from an earlier process, if there is one."""
        for slot in self._slots():
            if any(slot.glob("*.seg")):
                try:
                    return Spool(slot, *self._args)
                except SpoolLocked:
                    continue
        return None

    def acquire(self) -> Spool:
        """A free slot, preferring one with events left by an earlier process."""
        with contextlib.suppress(OSError):  # Spool() says what is wrong with the folder
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        spool = self.acquire_leftover()
        if spool is not None:
            return spool
        slots = self._slots()
        for slot in slots:
            try:
                return Spool(slot, *self._args)
            except SpoolLocked:
                continue
        n = len(slots)
        while True:
            try:
                return Spool(self.root / f"slot-{n}", *self._args)
            except SpoolLocked:  # pragma: no cover - a racing process took it
                n += 1
