"""The worker's garbage-collector tuning: fewer collections, start-up objects frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from auditstream.stream_jobs.worker import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_raises_the_thresholds_and_freezes_what_exists() -> None:
    assert gc.get_threshold() != GC_THRESHOLDS
    assert gc.get_freeze_count() == 0
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 1000  # the interpreter, imports, and the app once built
    assert GC_THRESHOLDS[0] > 700  # fewer young collections than Python's default
