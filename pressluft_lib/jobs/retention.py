"""The backup retention ladder: a pure function, no database.

Rules (the semantics of restic's `forget --keep-daily/--keep-weekly/--keep-monthly`), applied to
the completed backups of ONE environment and ONE scope (a db-only backup never stands in for a
full one):
- walking the backups newest first, keep the newest backup of each of the `daily` most recent
  UTC days that have a backup, of each of the `weekly` most recent ISO weeks, and of each of the
  `monthly` most recent months; one backup may be kept by several rules;
- the newest backup is always kept (even with 0/0/0);
- a pre-restore backup younger than PRE_RESTORE_GRACE is always kept (it is the way back from
  a restore that turned out wrong);
- everything else expires.
"Most recent days that have a backup" rather than calendar days: when backups stop for a while,
the old ones are not all expired at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

PRE_RESTORE_GRACE = timedelta(days=1)
DEFAULT_KEEP = (7, 4, 3)  # daily, weekly, monthly


@dataclass(frozen=True)
class Candidate:
    id: int
    taken_at: datetime  # naive UTC
    pre_restore: bool = False


@dataclass(frozen=True)
class Policy:
    daily: int = DEFAULT_KEEP[0]
    weekly: int = DEFAULT_KEEP[1]
    monthly: int = DEFAULT_KEEP[2]

    def __post_init__(self) -> None:
        for name in ("daily", "weekly", "monthly"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"retention {name} must be an integer >= 0, not {value!r}")


def _buckets(policy: Policy):
    return (
        (policy.daily, lambda t: t.date()),
        (policy.weekly, lambda t: tuple(t.isocalendar())[:2]),
        (policy.monthly, lambda t: (t.year, t.month)),
    )


def kept(backups: Iterable[Candidate], policy: Policy, now: datetime) -> set[int]:
    """Ids of the backups the ladder keeps."""
    ordered = sorted(backups, key=lambda b: (b.taken_at, b.id), reverse=True)
    keep: set[int] = {ordered[0].id} if ordered else set()
    for limit, bucket_of in _buckets(policy):
        seen: set = set()
        for b in ordered:
            if len(seen) >= limit:
                break
            bucket = bucket_of(b.taken_at)
            if bucket not in seen:
                seen.add(bucket)
                keep.add(b.id)
    keep.update(b.id for b in ordered if b.pre_restore and now - b.taken_at < PRE_RESTORE_GRACE)
    return keep


def expired(backups: Iterable[Candidate], policy: Policy, now: datetime) -> set[int]:
    """Ids of the backups the ladder lets go."""
    backups = list(backups)
    return {b.id for b in backups} - kept(backups, policy, now)
