"""The dedup window, made transactional: ids first seen in an aborted batch are forgotten.

``RecentIds`` remembers an id the moment it is checked. In a transactional loop that is too
early: if the batch's transaction aborts, its events were never committed and will be read
again, and an id still marked seen would turn the first delivery into a ``Duplicate`` and
lose the event. ``StagedRecentIds`` notes each id it adds while a batch is open; ``commit``
keeps them, ``rollback`` removes them, so the window holds exactly the ids of committed
events (less whatever its bounds forgot, which storage dedups again).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from auditstream.stream_jobs.dedup import RecentIds


class StagedRecentIds(RecentIds):
    """``RecentIds`` with ``commit`` / ``rollback`` of the ids added since the last commit.

    Key-agnostic: whatever ``RecentIds.seen_before`` remembers (an event id, or a
    ``(tenant, event_id)`` pair) is what is staged, read back as the newest entry.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._staged: list[Hashable] = []

    @property
    def staged(self) -> int:
        """Ids added since the last ``commit`` / ``rollback``."""
        return len(self._staged)

    def seen_before(self, *args: Any, **kwargs: Any) -> bool:
        seen = super().seen_before(*args, **kwargs)
        if not seen and self._seen:
            self._staged.append(next(reversed(self._seen)))
        return seen

    def commit(self) -> None:
        """The batch's transaction committed: its ids stay remembered."""
        self._staged.clear()

    def rollback(self) -> None:
        """The batch's transaction aborted: forget the ids it added."""
        for key in self._staged:
            self._seen.pop(key, None)  # type: ignore[call-overload]
        self._staged.clear()
