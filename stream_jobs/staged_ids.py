"""The dedup window, made transactional: ids first seen in an aborted batch are forgotten.

``RecentIds`` remembers an id the moment it is checked. In a transactional loop that is too
early: if the batch's transaction aborts, its events were never committed and will be read
again, and an id still marked seen would turn the first delivery into a ``Duplicate`` and
lose the event. ``StagedRecentIds`` notes each id it adds while a batch is open; ``commit``
keeps them, ``rollback`` removes them, so the window holds exactly the ids of committed
events (less whatever its bounds forgot, which storage dedups again).
"""

from __future__ import annotations

import uuid
from typing import Any

from auditstream.stream_jobs.dedup import RecentIds


class StagedRecentIds(RecentIds):
    """``RecentIds`` with ``commit`` / ``rollback`` of the ids added since the last commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._staged: list[tuple[str, uuid.UUID]] = []

    @property
    def staged(self) -> int:
        """Ids added since the last ``commit`` / ``rollback``."""
        return len(self._staged)

    def seen_before(self, tenant_id: str, event_id: uuid.UUID) -> bool:
        seen = super().seen_before(tenant_id, event_id)
        if not seen:
            self._staged.append((tenant_id, event_id))
        return seen

    def commit(self) -> None:
        """The batch's transaction committed: its ids stay remembered."""
        self._staged.clear()

    def rollback(self) -> None:
        """The batch's transaction aborted: forget the ids it added."""
        for tenant_id, event_id in self._staged:
            self.forget(tenant_id, event_id)
        self._staged.clear()
