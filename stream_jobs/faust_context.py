"""Faust table writes inside a batch of events.

Faust writes a table change to the changelog partition of the *current event*, a context
variable its stream sets per event. ``take_events`` yields a batch after the stream has moved
past all of it, so before changing a table for one event of a batch we make that event current
again; otherwise the change could land in another partition's changelog and be restored to
the wrong worker after a rebalance.
"""

from __future__ import annotations

import weakref
from typing import Any

from faust.streams import _current_event


def make_current(event: Any) -> None:
    _current_event.set(weakref.ref(event))
