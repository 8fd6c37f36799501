"""The plot of the security-incident notebook: failed logins and blocks per minute.

Both panels show a count over the minute before each moment, so they read like the
runbook's alerts, which count blocked IPs "in 1 minute". The time axis is UTC clock
time, as in the other procedures' plots.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from veerunbook.errorrate_plots import clock_axis
from veerunbook.errorrate_security import FAILED_LOGINS_ATTACK, FAILED_LOGINS_WARN
from veerunbook.errorrate_text import BLOCKED_CRITICAL, BLOCKED_WARNING
from veerunbook.figures import new_figure
from veerunbook.secincident_audit import Audit

MINUTE = timedelta(minutes=1)

# (count, label, colour, line style) of the lines of each panel.
LOGIN_LINES = (
    (FAILED_LOGINS_ATTACK, "attack line: 100 a minute (an estimate)", "black", "--"),
    (FAILED_LOGINS_WARN, "burst line: 20 a minute (an estimate)", "tab:orange", ":"),
)
BLOCK_LINES = (
    (BLOCKED_CRITICAL, "critical alert line: more than 50 in 1 min", "black", "--"),
    (BLOCKED_WARNING, "warning alert line: more than 10 in 1 min", "tab:orange", ":"),
)


def per_minute(
    times: list[datetime], begin: datetime, end: datetime
) -> tuple[list[datetime], list[int]]:
    """Return the steps of "events in the minute before" from ``begin`` to ``end``.

    Each event adds one at its time and removes it a minute later. The steps start
    at zero at ``begin``, or at the first event if that is earlier.
    """
    changes = sorted(
        [(moment, 1) for moment in times] + [(moment + MINUTE, -1) for moment in times]
    )
    first = min([begin, *times])
    xs, ys, count = [first], [0], 0
    for moment, step in changes:
        if moment > end:
            break
        count += step
        xs.append(moment)
        ys.append(count)
    xs.append(end)
    ys.append(count)
    return xs, ys


def plot_activity(audit: Audit | None) -> Any:
    """Draw failed logins and blocked IPs in the preceding minute over time.

    Returns the matplotlib figure, or None when the audit shows neither.
    """
    failed = [
        event.time
        for event in (audit.events if audit is not None else [])
        if event.type == "failed_login" and event.time is not None
    ]
    blocked = [
        block.blocked_at
        for block in (audit.blocks.values() if audit is not None else [])
        if block.blocked_at is not None
    ]
    if audit is None or not (failed or blocked):
        print("no failed logins or blocks with a time in the audit: nothing to plot")
        return None
    end = audit.at
    start = min([*failed, *blocked])
    figure = new_figure(10, 5.5)
    logins, blocks = figure.subplots(2, 1, sharex=True)
    steps = per_minute(failed, start, end)
    _panel(logins, steps, ("failed logins", "tab:red"), LOGIN_LINES)
    logins.set_ylabel("failed logins\nin the minute before")
    logins.set_title("Failed logins and blocked IPs in the preceding minute")
    steps = per_minute(blocked, start, end)
    _panel(blocks, steps, ("IPs blocked", "tab:blue"), BLOCK_LINES)
    blocks.set_ylabel("IPs blocked\nin the minute before")
    blocks.set_xlabel("time (UTC)")
    clock_axis(blocks, end - start)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def _panel(
    axes: Any,
    steps: tuple[list[datetime], list[int]],
    series: tuple[str, str],
    lines: tuple[tuple[int, str, str, str], ...],
) -> None:
    from matplotlib.ticker import MaxNLocator

    xs, ys = steps
    label, colour = series
    axes.step(xs, ys, where="post", color=colour, label=label)
    top = max(ys, default=0)
    for value, label, line_colour, style in lines:
        # A line far above the data would flatten it; the lowest one always shows.
        if value <= 2 * top or value == lines[-1][0]:
            axes.axhline(value, color=line_colour, linestyle=style, label=label)
    axes.set_ylim(bottom=0)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
