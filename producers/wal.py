"""Segment files of the spool: append-only records framed by length and CRC.

A segment starts with an 8-byte magic. Each record is::

    u32 length of the payload   (little endian)
    u32 CRC-32 of the payload
    payload: u32 key length, key bytes, value bytes

A process killed mid-``write`` leaves at most one torn record at the tail: reading stops at
the first frame that is short or fails its CRC and reports where, so everything before it is
replayed and nothing after it is trusted.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"ASWAL\x00\x01\n"
_HEAD = struct.Struct("<II")
_KEY = struct.Struct("<I")
MAX_RECORD = 64 * 1024 * 1024


def frame(key: bytes, value: bytes) -> bytes:
    payload = _KEY.pack(len(key)) + key + value
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    end: int
    """Offset just past this record in its segment."""


@dataclass
class ReadResult:
    records: list[Record]
    valid_bytes: int
    """Bytes up to the end of the last good record; the rest of the file is a torn tail."""
    file_bytes: int

    @property
    def torn(self) -> bool:
        return self.valid_bytes < self.file_bytes


def read_segment(path: Path, start: int = 0) -> ReadResult:
    """Every intact record from offset ``start`` (default: the first) to the first bad one."""
    with path.open("rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            size = f.seek(0, os.SEEK_END)
            return ReadResult([], 0, size)
        base = max(start, len(MAGIC))
        f.seek(base)
        data = f.read()
    pos = 0
    records = []
    while pos + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, pos)
        body = pos + _HEAD.size
        if length < _KEY.size or length > MAX_RECORD or body + length > len(data):
            break
        payload = data[body : body + length]
        if zlib.crc32(payload) != crc:
            break
        (key_len,) = _KEY.unpack_from(payload)
        if _KEY.size + key_len > length:
            break
        pos = body + length
        key = payload[_KEY.size : _KEY.size + key_len]
        records.append(Record(key, payload[_KEY.size + key_len :], base + pos))
    return ReadResult(records, base + pos, base + len(data))


def iter_records(path: Path) -> Iterator[Record]:
    yield from read_segment(path).records


class SegmentWriter:
    """Appends frames to one segment with unbuffered writes: in the kernel when it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        os.write(self._fd, MAGIC)
        self.size = len(MAGIC)

    def append(self, data: bytes) -> int:
        """Write ``data`` (one or more frames); returns the new segment size."""
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)
        return self.size

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
