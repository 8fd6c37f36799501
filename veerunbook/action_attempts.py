"""Earlier attempts of a guarded action that never recorded their end.

A kernel killed during a change leaves the action's ``intent`` in the incident's
journal and no end event (``dry-run``, ``refused``, ``already-done``, ``executed`` or
``failed``). ``unfinished_attempts`` finds such intents for the action that ``perform``
is about to run: the same name and the same masked parameters, confirmed, journaled
before this attempt's intent, and with no end event from the same run after them.

An unfinished attempt may still be running until its intent's time plus the timeout
the intent records (``timeout_s``, else ``DEFAULT_TIMEOUT_S``), because a change
started by another process may outlive its journal. ``perform`` refuses during that
window and names the attempt in its detail after it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from veerunbook.journal import readable_events

# The time a change may take when its action gives no timeout.
DEFAULT_TIMEOUT_S = 600.0
END_MODES = frozenset({"dry-run", "refused", "already-done", "executed", "failed"})
# Unfinished attempts named in one detail at most; the rest are counted.
MAX_NAMED = 3

_log = logging.getLogger("veerunbook.actions")


@dataclass(frozen=True)
class Attempt:
    """An earlier intent without an end: its run, start (UTC) and timeout in seconds.

    ``started`` is the time of the attempt's ``executing`` note, or of its intent
    when the change never started.
    """

    run: str
    started: datetime
    timeout_s: float
    same_run: bool

    @property
    def until(self) -> datetime:
        """The time after which the attempt cannot be running any more."""
        return self.started + timedelta(seconds=self.timeout_s)

    def may_be_running(self, now: datetime) -> bool:
        """Return whether the attempt may still be changing the target at ``now``.

        An attempt of this run is never running, because this process is past it.
        """
        return not self.same_run and now < self.until


def unfinished_attempts(
    journal: Path, intent: Mapping[str, Any], run: str
) -> list[Attempt]:
    """Return the earlier unfinished attempts of ``intent``'s action, oldest first.

    ``intent`` is the record of this attempt's intent as journaled, and ``run`` the
    id of this run. An attempt counts from its ``executing`` note when it has one,
    else from its intent. A journal that cannot be read gives no attempts and a
    warning, because the preconditions still guard the change.
    """
    try:
        events = readable_events(journal)
    except OSError as exc:
        _log.warning("cannot read %s for unfinished attempts: %s", journal, exc)
        return []
    name, own_seq = intent.get("name"), _seq(intent)
    # Per run: the open intent of this action and the time its change started.
    open_intents: dict[str, tuple[Mapping[str, Any], Any]] = {}
    for event in events:
        event_run = str(event.get("run"))
        if event.get("event") == "note" and event.get("action") == name:
            if event_run in open_intents:
                open_intents[event_run] = (open_intents[event_run][0], event["time"])
            continue
        if event.get("event") != "action" or event.get("name") != name:
            continue
        mode = event.get("mode")
        if mode in END_MODES:
            open_intents.pop(event_run, None)
        elif mode == "intent" and _seq(event) < own_seq and _matches(event, intent):
            open_intents[event_run] = (event, event.get("time"))
    found = [_attempt(found, time, run) for found, time in open_intents.values()]
    attempts = [attempt for attempt in found if attempt is not None]
    return sorted(attempts, key=lambda attempt: attempt.started)


def running_refusal(attempts: Sequence[Attempt], now: datetime) -> str | None:
    """Describe the attempt that may still be running at ``now``, or return None."""
    running = [attempt for attempt in attempts if attempt.may_be_running(now)]
    if not running:
        return None
    last = max(running, key=lambda attempt: attempt.until)
    return (
        f"an earlier attempt in run {last.run}, started {_utc(last.started)}, did "
        f"not record its end and may still be running until {_utc(last.until)}; "
        f"check the target, then run again after {_utc(last.until)}"
    )


def unfinished_note(attempts: Sequence[Attempt]) -> str:
    """Describe the unfinished attempts in a sentence, or return an empty string."""
    if not attempts:
        return ""
    named = [f"{a.run} (started {_utc(a.started)})" for a in attempts[-MAX_NAMED:]]
    more = len(attempts) - len(named)
    runs = ", ".join(named) + (f" and {more} more" if more else "")
    if len(attempts) == 1:
        return f"An earlier attempt in run {runs} did not record its end."
    return f"Earlier attempts in runs {runs} did not record their end."


def _seq(event: Mapping[str, Any]) -> int:
    seq = event.get("seq")
    return seq if isinstance(seq, int) else 0


def _matches(event: Mapping[str, Any], intent: Mapping[str, Any]) -> bool:
    """Return whether ``event`` is a confirmed intent with the same masked params."""
    return event.get("confirmed") is True and event.get("params") == intent.get(
        "params"
    )


def _attempt(event: Mapping[str, Any], time: Any, run: str) -> Attempt | None:
    try:
        started = datetime.fromisoformat(str(time)).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    timeout = event.get("timeout_s")
    timeout_s = DEFAULT_TIMEOUT_S
    if (
        isinstance(timeout, int | float)
        and not isinstance(timeout, bool)
        and timeout > 0
    ):
        timeout_s = float(timeout)
    event_run = str(event.get("run"))
    return Attempt(event_run, started, timeout_s, same_run=event_run == run)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
