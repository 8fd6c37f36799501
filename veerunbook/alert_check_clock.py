"""An alert check's time against the stored samples: future samples, a clock behind
the store, and a replay of a time already stored.

A check's time is the clock, or a replay time. Stored samples later than both the
check's time and the clock by more than a tolerance of two intervals come from a
forward clock jump or a replay ahead of the clock. They would keep every later check
behind the store, so ``drop_future`` deletes them, with their scrapes, and records a
warning. A smaller step back, within the tolerance, is a clock behind the store: the
check evaluates nothing and changes no state, until the clock has passed the newest
sample. A check at a time already stored evaluates the stored samples and writes,
queues and sends nothing (``replay_stored``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from veerunbook.alert_check_eval import evaluate_all
from veerunbook.alert_check_result import (
    CheckResult,
    journal_clock_behind,
    journal_result,
)
from veerunbook.alert_rules import Signal
from veerunbook.alert_store import SampleStore, StoredSpan
from veerunbook.journal import utc_timestamp

if TYPE_CHECKING:
    from veerunbook.config import Target
    from veerunbook.record import RunContext

logger = logging.getLogger("veerunbook.alert_check_clock")

# Why a check at a time already stored writes nothing: the live webhook, the live
# target's scrape and the rule states belong to the checks at new times.
REPLAY_READ_ONLY = (
    "a time already stored is replayed from the stored samples: nothing scraped or"
    " stored, no rule state written, no notification queued or sent"
)


class ClockContext(Protocol):
    """The part of an alert check's context that the clock checks read."""

    target: Target
    now: float
    wall: float  # the clock (Unix seconds) when the check started
    interval: float
    run: RunContext | None


def check_clock(
    samples: SampleStore, context: ClockContext, *, delete: bool
) -> CheckResult | None:
    """Drop the stored samples ahead of the clock, then return the result of a
    check that is behind the newest valid sample or replays a stored time.

    Returns None when the check goes on. The tolerance for both is two intervals.
    Without ``delete`` the samples ahead are only ignored, for a check that writes
    nothing.
    """
    now, run = context.now, context.run
    tolerance = 2 * context.interval
    valid_until = drop_future(
        samples, now, context.wall, tolerance, delete=delete, run=run
    )
    name = context.target.name
    behind = clock_behind(samples, now, name, valid_until=valid_until, run=run)
    if behind is not None:
        return behind
    if not samples.has_samples_at(now):
        return None
    result = replay_stored(samples, now, context.interval, name)
    if run is not None:
        journal_result(run, result)
    return result


def drop_future(
    samples: SampleStore,
    now: float,
    wall: float,
    tolerance: float,
    *,
    delete: bool,
    run: RunContext | None,
) -> float | None:
    """Delete (or, without ``delete``, only ignore) stored samples ahead of the clock.

    Samples count as ahead when the newest one is later than both ``now`` and the
    clock ``wall`` by more than ``tolerance`` seconds. Then every sample after the
    later of the two is dropped, and the check records a warning. Returns that
    time, after which stored samples are invalid, or None when none are ahead.
    """
    limit = max(now, wall)
    newest = samples.newest_time()
    if newest is None or newest <= limit + tolerance:
        return None
    span = samples.delete_after(limit) if delete else samples.span_after(limit)
    if span is not None:
        _warn_future(span, limit, tolerance, delete, run)
    return limit


def _warn_future(
    span: StoredSpan,
    limit: float,
    tolerance: float,
    deleted: bool,
    run: RunContext | None,
) -> None:
    verb = "deleted" if deleted else "ignored (this check stores nothing)"
    text = (
        f"{verb} the samples of {span.checks} checks from {_iso(span.first)} to"
        f" {_iso(span.last)}: more than {tolerance:g} s after the clock"
        f" ({_iso(limit)}), from a forward clock jump or a replay ahead of it"
    )
    logger.warning("alert sample store: %s", text)
    if run is not None:
        run.check(
            "alert clock",
            "warn",
            observed=span.checks,
            unit="checks",
            expected=f"stored samples at most {tolerance:g} s after the clock",
            summary=f"{text}; evaluated without them",
        )


def clock_behind(
    samples: SampleStore,
    now: float,
    target: str,
    *,
    valid_until: float | None,
    run: RunContext | None,
) -> CheckResult | None:
    """Return the skipped result of a check whose time is not after the newest
    valid stored sample, or None. A time already stored is not behind.

    Samples after ``valid_until`` (Unix seconds) are left out, as invalid.
    """
    newest = samples.newest_time(at_most=valid_until)
    if newest is None or now > newest or samples.has_samples_at(now):
        return None
    reason = f"clock behind the newest stored sample by {newest - now:g} s"
    if run is not None:
        journal_clock_behind(run, reason, newest)
    return CheckResult(time=now, target=target, skipped=reason)


def replay_stored(
    samples: SampleStore, now: float, interval: float, target: str
) -> CheckResult:
    """Evaluate every rule at ``now``, a time already stored, over the stored
    samples alone; report no transition, because no state is compared or written."""
    values: dict[Signal, float | None] = {}
    for signal in Signal:
        found = samples.read(signal, now, now)
        values[signal] = found[0].value if found else None
    error = None
    if values[Signal.UP] == 0.0:
        error = "the scrape stored at this time failed (up 0)"
    return CheckResult(
        time=now,
        target=target,
        values=values,
        rules=evaluate_all(samples, now, interval),
        scrape_error=error,
        read_only=REPLAY_READ_ONLY,
    )


def _iso(unix_seconds: float) -> str:
    return utc_timestamp(datetime.fromtimestamp(unix_seconds, UTC))
