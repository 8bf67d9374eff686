"""A bounded memory of recently seen events, by (tenant_id, event_id)."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable


class RecentIds:
    """Remembers ids for ``window_seconds``, at most ``max_ids`` of them (oldest forgotten first).

    An event's identity is its tenant and its event id: the same id from another tenant is
    another event (tenants choose their ids, and CloudEvent ids map to predictable ones), so
    one tenant can never make another's event look like a repeat.

    Kafka keys events by tenant and actor, so a redelivered event reaches the worker that saw
    it first; this catches producer retries and replays within the window. Storage dedups
    again by (tenant_id, event_id), so forgetting early costs a little work, never a
    duplicate row.
    """

    def __init__(
        self,
        window_seconds: float,
        max_ids: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window_seconds
        self._max = max_ids
        self._clock = clock
        self._seen: OrderedDict[tuple[str, uuid.UUID], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def seen_before(self, tenant_id: str, event_id: uuid.UUID) -> bool:
        """True if this tenant's ``event_id`` was seen within the window; remembers it."""
        now = self._clock()
        self._expire(now)
        identity = (tenant_id, event_id)
        if identity in self._seen:
            return True
        self._seen[identity] = now
        if len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return False

    def forget(self, tenant_id: str, event_id: uuid.UUID) -> None:
        """Forget one id (a no-op if it is not remembered)."""
        self._seen.pop((tenant_id, event_id), None)

    def _expire(self, now: float) -> None:
        horizon = now - self._window
        seen = self._seen
        while seen:
            oldest = next(iter(seen.values()))
            if oldest >= horizon:
                break
            seen.popitem(last=False)
