"""The scrapes of one alert check and the signal values computed from them.

The window signals (error rate, availability, p95) need two scrapes. A check uses
the scrape stored by the check before it when that one is recent enough, so each
check scrapes once. The first check, or one after a gap, scrapes twice
``sample_seconds`` apart instead.

A scrape counts as failed unless it contains at least one metric family that the
rules read. A target that responds with some other text (an HTML page, a stub
``up 1``) is therefore treated as down rather than as healthy with no data. A family
that the rules read and the scrape lacks is not zero traffic: the signals computed
from it have no value, with the reason ``<family> absent from the scrape``, and a
family that the previous scrape had is named in ``Measurement.vanished``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from veerunbook.alert_promql import (
    BLOCKED_IPS_COUNTER,
    DURATION_BUCKETS,
    HEAP_LIMIT,
    HEAP_USED,
    REQUESTS,
)
from veerunbook.alert_rules import Signal
from veerunbook.alert_signals import signal_values
from veerunbook.alert_store import StoredScrape
from veerunbook.figures import preload
from veerunbook.metrics_parse import parse_exposition
from veerunbook.metrics_scrape import Scrape
from veerunbook.probe import probe

if TYPE_CHECKING:
    from veerunbook.config import Target
    from veerunbook.record import RunContext
    from veerunbook.redact import Redactor


# Sample names of the metric families the alert signals are computed from. The pool
# gauges are database_connections{state=...}, database_connections_max and
# database_connections_<state> (``veerunbook.metrics_gauges.database_pool``).
RULE_METRICS = (REQUESTS, DURATION_BUCKETS, BLOCKED_IPS_COUNTER, HEAP_USED, HEAP_LIMIT)
POOL_METRIC_PREFIX = "database_connections"

# The signals computed from each family the rules read, by sample name. A name that
# ends in "*" stands for every sample name with that prefix.
FAMILY_SIGNALS: dict[str, tuple[Signal, ...]] = {
    REQUESTS: (Signal.ERROR_RATE, Signal.AVAILABILITY),
    DURATION_BUCKETS: (Signal.P95_MS,),
    BLOCKED_IPS_COUNTER: (Signal.BLOCKED_IPS_PER_MIN,),
    HEAP_USED: (Signal.MEMORY_RATIO,),
    HEAP_LIMIT: (Signal.MEMORY_RATIO,),
    POOL_METRIC_PREFIX + "*": (Signal.POOL_UTILISATION,),
}


class CheckContext(Protocol):
    """The part of an alert check's context that scraping reads."""

    target: Target
    now: float
    sample_seconds: float
    run: RunContext | None
    redactor: Redactor | None
    progress: Callable[[str], None] | None


@dataclass(frozen=True)
class Measurement:
    """Signal values of one check, the body to store, and what went wrong.

    ``body`` is the latest exposition (None after a failed scrape), and
    ``window_seconds`` the span between the two scrapes the window signals cover.
    ``vanished`` names the families that the previous scrape had and the latest
    lacks, and ``reasons`` gives why a signal has no value when a family it is
    computed from is absent.
    """

    values: dict[Signal, float | None]
    body: str | None
    error: str | None
    window_seconds: float | None
    vanished: tuple[str, ...] = ()
    reasons: dict[Signal, str] = field(default_factory=dict)


def measure_signals(
    context: CheckContext, previous: StoredScrape | None
) -> Measurement:
    """Scrape the target and compute every signal; never raises for a bad target.

    ``previous`` is the stored scrape to measure the window from. Without it, a
    first scrape is taken and the second follows ``sample_seconds`` later.
    ``Signal.UP`` is 1.0 when every scrape succeeded and 0.0 when one failed.
    """
    before: Scrape | None = None
    window: float | None = None
    if previous is not None:
        before = parse_exposition(previous.body, scraped_at=previous.time)
        window = context.now - previous.time
    else:
        first_at = context.now - context.sample_seconds
        before, _, error = _scrape(context, "metrics (first scrape)", first_at)
        if before is None:
            return Measurement(_nothing(), None, error, None)
        _wait(context.sample_seconds, context.progress)
        window = context.sample_seconds
    after, body, error = _scrape(context, "metrics", context.now)
    if after is None:
        return Measurement(_nothing(), None, error, None)
    values = signal_values(before, after)
    values[Signal.UP] = 1.0
    vanished = tuple(
        family
        for family in FAMILY_SIGNALS
        if has_family(before, family) and not has_family(after, family)
    )
    reasons = absent_reasons(after, values)
    return Measurement(values, body, None, window, vanished, reasons)


def _scrape(
    context: CheckContext, name: str, at: float
) -> tuple[Scrape | None, str, str | None]:
    """Scrape the metrics endpoint with the target's limits; journal the probe.

    ``at`` is the scrape's time on the check's clock, which a replay sets, so
    the window between a stored scrape and this one follows that clock.
    """
    target = context.target
    limits = target.timeouts
    result = probe(
        target.url("metrics"),
        name=name,
        expect="metrics",
        connect_timeout=limits.connect_seconds,
        read_timeout=limits.read_seconds,
        total_timeout=limits.connect_seconds + 2 * limits.read_seconds,
        max_body_bytes=limits.max_body_bytes,
        redactor=context.redactor,
    )
    if context.run is not None:
        context.run.record_probe(result)
    if result.status != "pass" or result.http_status != 200:
        # The probe's summary starts with its name.
        return None, "", result.summary()
    if result.truncated:
        return None, "", f"{name}: body cut at {limits.max_body_bytes} bytes"
    scrape = parse_exposition(result.text, scraped_at=at)
    if not scrape.samples:
        return None, "", f"{name}: the body contains no metric samples"
    if not has_rule_metrics(scrape):
        missing = ", ".join([*RULE_METRICS, POOL_METRIC_PREFIX + "*"])
        return None, "", f"{name}: none of the rules' metric families found ({missing})"
    return scrape, result.text, None


def has_rule_metrics(scrape: Scrape) -> bool:
    """Return whether ``scrape`` has a sample of a family the alert rules read."""
    for sample in scrape.samples:
        if sample.name in RULE_METRICS or sample.name.startswith(POOL_METRIC_PREFIX):
            return True
    return False


def has_family(scrape: Scrape, family: str) -> bool:
    """Return whether ``scrape`` has a sample of ``family``, a key of
    ``FAMILY_SIGNALS``."""
    if family.endswith("*"):
        prefix = family.removesuffix("*")
        return any(sample.name.startswith(prefix) for sample in scrape.samples)
    return bool(scrape.find(family))


def absent_reasons(
    scrape: Scrape, values: dict[Signal, float | None]
) -> dict[Signal, str]:
    """Return ``<family> absent from the scrape`` for each signal without a value
    that is computed from a family ``scrape`` lacks."""
    absent: dict[Signal, list[str]] = {}
    for family, signals in FAMILY_SIGNALS.items():
        if has_family(scrape, family):
            continue
        for signal in signals:
            if values.get(signal) is None:
                absent.setdefault(signal, []).append(family)
    return {
        signal: f"{' and '.join(families)} absent from the scrape"
        for signal, families in absent.items()
    }


def _nothing() -> dict[Signal, float | None]:
    """Return the values of a failed scrape: None for every signal, UP 0."""
    values: dict[Signal, float | None] = dict.fromkeys(Signal)
    values[Signal.UP] = 0.0
    return values


def _wait(seconds: float, progress: Callable[[str], None] | None) -> None:
    """Sleep ``seconds`` in steps, reporting the time left about every 5 seconds.

    matplotlib is imported first, inside the wait, for the plot that follows.
    """
    deadline = time.monotonic() + max(0.0, seconds)
    if seconds > 0:
        preload()
    while (left := deadline - time.monotonic()) > 0:
        if progress is not None:
            progress(f"waiting for the second scrape: {left:.0f} s left")
        time.sleep(min(5.0, left))
