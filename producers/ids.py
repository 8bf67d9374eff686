"""Fast UUIDv7 strings for event ids (RFC 9562, method 1: a 12-bit counter per millisecond).

``schemas.ids.uuid7`` builds a ``uuid.UUID`` (about 2.5 us with ``str()``); the SDK only needs
the text, so this keeps the last millisecond's prefix and formats the rest directly (~0.5 us).
Ids are strictly increasing within one generator. The 62 random bits come from a PRNG seeded
from ``os.urandom`` and re-seeded in a forked child, so two processes never share a stream.
"""

from __future__ import annotations

import os
import random
import threading
import time

_MASK62 = (1 << 62) - 1
_VARIANT = 0b10 << 62


class Uuid7Text:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(os.urandom(16))  # noqa: S311 - ids need uniqueness, not secrecy
        self._last_ms = -1
        self._counter = 0
        self._prefix = ""
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._rng = random.Random(os.urandom(16))  # noqa: S311 - ids need uniqueness, not secrecy
        self._lock = threading.Lock()

    def __call__(self, now_ms: int | None = None) -> tuple[str, int]:
        """A new id, and the current Unix millisecond (the id's, unless it borrowed ahead)."""
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        with self._lock:
            ms = now
            if ms > self._last_ms:
                self._last_ms = ms
                self._counter = self._rng.getrandbits(10)  # headroom below 0xFFF
                h = f"{ms & 0xFFFFFFFFFFFF:012x}"
                self._prefix = f"{h[:8]}-{h[8:]}-7"
            else:
                self._counter += 1
                if self._counter > 0xFFF:  # exhausted: borrow the next millisecond
                    self._last_ms += 1
                    self._counter = 0
                    h = f"{self._last_ms & 0xFFFFFFFFFFFF:012x}"
                    self._prefix = f"{h[:8]}-{h[8:]}-7"
            counter = self._counter
            prefix = self._prefix
            tail = _VARIANT | self._rng.getrandbits(62)
        return f"{prefix}{counter:03x}-{tail >> 48:04x}-{tail & 0xFFFFFFFFFFFF:012x}", now


new_id = Uuid7Text()
