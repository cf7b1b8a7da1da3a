"""The retention ladder (pressluft_lib.jobs.retention) with exact expected sets, worked out by calendar."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from pressluft_lib.jobs.retention import Candidate, Policy, expired, kept

NOW = datetime(2026, 3, 15, 12, 0)  # a Sunday, ISO week 11 of 2026


def daily_backups(days: int, hour: int = 2) -> list[Candidate]:
    """One backup per day at `hour`, the newest today: id `days` is today, id 1 the oldest."""
    start = NOW.replace(hour=hour)
    return [Candidate(days - k, start - timedelta(days=k)) for k in range(days)]


def test_sixty_daily_backups_7_4_3():
    backups = daily_backups(60)  # 2026-01-15 (id 1) .. 2026-03-15 (id 60)
    # daily: Mar 15..9 = ids 60..54; weekly: the Sundays Mar 15, 8, 1, Feb 22 = ids 60, 53, 46, 39;
    # monthly: Mar 15, Feb 28, Jan 31 = ids 60, 45, 17.
    want_kept = {60, 59, 58, 57, 56, 55, 54, 53, 46, 39, 45, 17}
    assert kept(backups, Policy(7, 4, 3), NOW) == want_kept
    assert expired(backups, Policy(7, 4, 3), NOW) == set(range(1, 61)) - want_kept
    assert len(expired(backups, Policy(), NOW)) == 48, "7/4/3 is the default"


def test_order_of_input_does_not_matter():
    backups = daily_backups(60)
    shuffled = backups[:]
    random.Random(4).shuffle(shuffled)
    assert expired(shuffled, Policy(7, 4, 3), NOW) == expired(backups, Policy(7, 4, 3), NOW)


def test_zero_everywhere_keeps_only_the_newest():
    assert kept(daily_backups(5), Policy(0, 0, 0), NOW) == {5}
    assert expired(daily_backups(5), Policy(0, 0, 0), NOW) == {1, 2, 3, 4}


def test_nothing_to_do():
    assert expired([], Policy(), NOW) == set()
    assert expired(daily_backups(1), Policy(0, 0, 0), NOW) == set()


def test_several_backups_a_day_keep_the_newest_of_each_day():
    # Hourly backups for 3 days: ids 1..72, id 72 newest (today 11:00).
    backups = [Candidate(72 - k, NOW - timedelta(hours=1 + k)) for k in range(72)]
    # today: 11:00 .. 00:00 are ids 72..61; Mar 14 23:00 is id 60; Mar 13 23:00 is id 36.
    assert kept(backups, Policy(2, 0, 0), NOW) == {72, 60}
    assert kept(backups, Policy(3, 0, 0), NOW) == {72, 60, 36}


def test_days_with_backups_count_not_calendar_days():
    # Backups stopped 30 days ago: 10 daily backups from Feb 4 back to Jan 26.
    old = [Candidate(10 - k, datetime(2026, 2, 4, 2) - timedelta(days=k)) for k in range(10)]
    assert kept(old, Policy(7, 0, 0), NOW) == {10, 9, 8, 7, 6, 5, 4}


def test_same_timestamp_breaks_ties_by_id():
    t = NOW - timedelta(hours=3)
    assert kept([Candidate(1, t), Candidate(2, t)], Policy(1, 0, 0), NOW) == {2}


def test_iso_weeks_and_months_across_new_year():
    # Sun 2025-12-28 is ISO week 52 of 2025; Mon 2025-12-29 and Fri 2026-01-02 are ISO week 1 of 2026.
    backups = [
        Candidate(1, datetime(2025, 12, 28, 2)),
        Candidate(2, datetime(2025, 12, 29, 2)),
        Candidate(3, datetime(2026, 1, 2, 2)),
    ]
    now = datetime(2026, 1, 2, 12)
    assert kept(backups, Policy(0, 1, 0), now) == {3}
    assert kept(backups, Policy(0, 2, 0), now) == {3, 1}
    assert kept(backups, Policy(0, 0, 2), now) == {3, 2}, "December's newest is Dec 29"


def test_young_pre_restore_backup_is_kept_old_one_is_not():
    backups = daily_backups(3)  # ids 1..3, 02:00 each day, id 3 today
    young = Candidate(10, NOW - timedelta(hours=5), pre_restore=True)  # today 07:00: newest of today
    older_today = Candidate(11, NOW - timedelta(hours=11), pre_restore=True)  # today 01:00
    old = Candidate(12, NOW - timedelta(days=1, hours=1), pre_restore=True)  # yesterday 11:00
    got = kept([*backups, young, older_today, old], Policy(2, 0, 0), NOW)
    # daily 2: today's newest (10) and yesterday's newest (12); 11 is young and pre-restore: kept too.
    assert got == {10, 11, 12}
    got = kept([*backups, young, older_today, old], Policy(1, 0, 0), NOW)
    assert got == {10, 11}, "the day-old pre-restore backup is no longer protected"


@pytest.mark.parametrize("bad", [-1, 1.5, True, "7", None])
def test_policy_refuses_bad_counts(bad):
    with pytest.raises(ValueError, match="retention daily"):
        Policy(daily=bad)
