from collections import Counter

import pytest

from auditstream.integrity.reconcile import (
    OffsetRange,
    Place,
    Progress,
    account,
    describe_runs,
    runs,
)

SETTLED = Progress(normalized_to=10**9, settled=True)


def places(stored=(), dead=(), repeats=()):
    return {
        Place.STORED: Counter(stored),
        Place.DEAD_LETTER: Counter(dead),
        Place.REPEAT: Counter(repeats),
    }


def test_every_offset_in_exactly_one_place_is_ok():
    report = account(
        OffsetRange(0, 0, 6), range(6), places(stored=[0, 1, 4], dead=[2], repeats=[3, 5]), SETTLED
    )
    assert report.ok
    assert (report.messages, report.stored, report.dead_lettered, report.repeats) == (6, 3, 1, 2)
    assert report.missing == ()
    assert report.multiple == ()


def test_an_offset_in_no_place_is_named_missing():
    report = account(OffsetRange(2, 0, 5), range(5), places(stored=[0, 1, 3]), SETTLED)
    assert not report.ok
    assert report.missing == (2, 4)


def test_an_offset_in_two_places_or_stored_twice_is_named():
    report = account(
        OffsetRange(0, 0, 3), range(3), places(stored=[0, 1, 1], dead=[0], repeats=[2]), SETTLED
    )
    assert not report.ok
    assert dict(report.multiple) == {
        0: (Place.STORED, Place.DEAD_LETTER),
        1: (Place.STORED, Place.STORED),
    }
    assert report.repeats == 1


def test_control_records_are_not_messages():
    # A transactional producer's commit markers occupy offsets 3 and 7: no message there.
    offsets = [0, 1, 2, 4, 5, 6]
    report = account(OffsetRange(0, 0, 8), offsets, places(stored=offsets), SETTLED)
    assert report.ok
    assert report.messages == 6


def test_unprocessed_offsets_are_in_flight_not_missing():
    report = account(
        OffsetRange(0, 0, 10), range(10), places(stored=range(6)), Progress(8, settled=True)
    )
    # 6 and 7 were committed by the normalizer yet are nowhere: missing; 8 and 9 are not
    # processed yet.
    assert report.missing == (6, 7)
    assert report.in_flight == 2


def test_nothing_is_missing_while_a_sink_still_has_input():
    report = account(
        OffsetRange(0, 0, 10), range(10), places(stored=range(6)), Progress(10, settled=False)
    )
    assert report.ok
    assert report.in_flight == 4


def test_offsets_outside_the_range_are_ignored_and_strays_reported():
    report = account(OffsetRange(0, 5, 8), range(0, 7), places(stored=[4, 5, 6, 7]), SETTLED)
    assert report.messages == 2
    assert report.stored == 2
    assert report.strays == (7,)


def test_bad_range_is_refused():
    with pytest.raises(ValueError, match="bad offset range"):
        OffsetRange(0, 5, 4)


def test_runs_compress_offsets():
    assert runs([9, 3, 4, 5]) == [(3, 5), (9, 9)]
    assert describe_runs([1, 2, 3, 7]) == "1-3, 7"
    assert describe_runs(list(range(0, 100, 2)), limit=2) == "0, 2 (+48 more runs)"


def test_offsets_expired_before_the_normalizer_read_them_are_named():
    from auditstream.integrity.reconcile import expired_unprocessed

    assert expired_unprocessed(low=0, committed=None) is None
    assert expired_unprocessed(low=100, committed=100) is None
    assert expired_unprocessed(low=100, committed=250) is None
    assert expired_unprocessed(low=100, committed=40) == (40, 100)
    assert expired_unprocessed(low=100, committed=None) == (0, 100)
