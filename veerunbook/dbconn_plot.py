"""The plot of the database-connection notebook: the pool over the window.

The upper panel shows the pool utilisation with the 80 % information alert line, the
lower one the requests waiting for a connection, both over UTC clock time. The legend
sits to the right of the axes so that it covers no data.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from veerunbook.dbconn_pool import POOL_WARN_PCT
from veerunbook.figures import new_figure

if TYPE_CHECKING:
    from veerunbook.dbconn_pool import PoolWindow

# A bar is this share of the shortest gap between two scrapes wide.
_BAR_SHARE = 0.5
_SINGLE_BAR = timedelta(seconds=1)


def draw_pool(pool: PoolWindow) -> Any:
    """Draw the pool utilisation and the waiting requests over the window.

    Returns the matplotlib figure, or None when there is nothing to draw.
    """
    if not pool.usage:
        print("no pool gauges in the window: nothing to plot")
        return None
    import matplotlib.dates as mdates

    figure = new_figure(10, 4.5)
    utilisation, waiting = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))

    # Upper panel: share of the pool in use, with the alert line.
    values = [_in_use(usage.utilisation) for usage in pool.usage]
    utilisation.plot(pool.times, values, marker="o", color="tab:blue", label="in use")
    utilisation.axhline(
        POOL_WARN_PCT,
        color="black",
        linestyle="--",
        linewidth=1,
        label="80 % for 15 min: information alert line",
    )
    utilisation.set_ylim(0, max(105.0, max(values) + 5))
    utilisation.set_ylabel("pool in use (%)")
    utilisation.set_title("database connection pool over the window")
    utilisation.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")

    # Lower panel: requests queueing for a connection.
    queued = [usage.waiting or 0.0 for usage in pool.usage]
    waiting.bar(
        pool.times,
        queued,
        width=_bar_width(pool),
        color="tab:red",
        label="requests waiting",
    )
    waiting.set_ylim(0, max(1.0, max(queued) * 1.1))
    waiting.set_ylabel("requests waiting")
    waiting.set_xlabel("time (UTC)")
    waiting.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    formatter = mdates.DateFormatter("%H:%M:%S")  # type: ignore[no-untyped-call]
    waiting.xaxis.set_major_formatter(formatter)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def _in_use(utilisation: float | None) -> float:
    return 0.0 if utilisation is None else utilisation * 100


def _bar_width(pool: PoolWindow) -> float:
    """Return the bar width in days, the unit of matplotlib's date axis."""
    gaps = [later - earlier for earlier, later in itertools.pairwise(pool.times)]
    gap = min(gaps) * _BAR_SHARE if gaps else _SINGLE_BAR
    return max(gap, timedelta(milliseconds=100)) / timedelta(days=1)
