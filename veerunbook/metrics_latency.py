"""Quantiles of a Prometheus histogram per route and over all routes in a window."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from veerunbook.metrics_quantile import Quantile, check_quantile, histogram_quantile
from veerunbook.metrics_scrape import Scrape
from veerunbook.metrics_window import (
    DEFAULT_EXCLUDE,
    ROUTE_LABELS,
    compile_exclude,
    is_excluded,
    json_safe,
    label_value,
    open_window,
    series_key,
)

_Key = tuple[tuple[str, str], ...]


@dataclass
class HistogramStats:
    """Observations of one histogram series, or of several summed by bucket.

    ``overflow`` counts the observations above the largest finite bucket bound.
    ``monotonic`` is false when a cumulative bucket count is below that of a smaller
    bound. ``usable`` is false then, and also when every observation is above the
    largest finite bound or there is no finite bucket. An unusable series reports no
    quantile.
    """

    method: str | None
    route: str | None
    labels: dict[str, str]
    probe: bool
    count: float
    sum: float | None
    largest_bound: float | None
    overflow: float
    quantiles: list[Quantile]
    usable: bool
    monotonic: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        """The mean observation, from ``_sum / _count``."""
        if self.sum is None or not self.count > 0:
            return None
        return self.sum / self.count

    def quantile(self, q: float) -> Quantile | None:
        """Return the estimate of quantile ``q`` when it was computed."""
        return next((item for item in self.quantiles if item.q == q), None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"] = self.mean
        return dict(json_safe(data))


@dataclass
class LatencyReport:
    """Histogram quantiles per series and summed over the routes not excluded."""

    metric: str
    series: list[HistogramStats]
    aggregate: HistogramStats | None
    window_seconds: float | None
    restart_detected: bool
    reset_detected: bool
    partial: bool
    notes: list[str] = field(default_factory=list)

    def route(self, route: str, method: str | None = None) -> HistogramStats | None:
        """Return the first series of ``route`` (and ``method`` when given)."""
        for stats in self.series:
            if stats.route == route and method in (None, stats.method):
                return stats
        return None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["series"] = [stats.to_dict() for stats in self.series]
        data["aggregate"] = self.aggregate.to_dict() if self.aggregate else None
        return dict(json_safe(data))


@dataclass
class _Histogram:
    labels: dict[str, str]
    buckets: dict[float, float] = field(default_factory=dict)
    count: float | None = None
    sum: float | None = None


def latency_quantiles(
    before: Scrape | None,
    after: Scrape,
    *,
    metric: str = "http_request_duration_seconds",
    quantiles: Iterable[float] = (0.5, 0.95, 0.99),
    exclude: str | None = DEFAULT_EXCLUDE,
) -> LatencyReport:
    """Estimate quantiles of histogram ``metric`` between two scrapes.

    Per series, and summed by bucket bound over every series whose route does not
    match ``exclude``. With ``before=None`` the histogram is cumulative since the
    process started. Bucket counts are reset-aware in the same way as counters.
    """
    wanted = tuple(quantiles)
    for q in wanted:
        check_quantile(q)
    pattern = compile_exclude(exclude)
    window = open_window(before, after)
    restarted = window.restart is not None
    earlier = _read_histograms(before, metric) if before is not None else {}

    # Each series' observations within the window.
    series: list[HistogramStats] = []
    included: list[_Histogram] = []
    resets = 0
    for key, current in _read_histograms(after, metric).items():
        observed, was_reset = _within(earlier.get(key), current, restarted)
        resets += was_reset
        route = label_value(observed.labels, ROUTE_LABELS)
        probe = is_excluded(route, pattern)
        series.append(_stats(observed, metric, wanted, route, probe))
        if not probe:
            included.append(observed)

    # The same quantiles over all included series, as histogram_quantile(sum by (le)).
    aggregate = None
    if included:
        aggregate = _stats(_sum_by_bound(included), metric, wanted, None, False)
    invalid = sum(not stats.monotonic for stats in series if not stats.probe)
    if aggregate is not None and invalid:
        reason = f"the sum includes {invalid} series whose bucket counts decrease"
        _drop_quantiles(aggregate, reason)
    notes = list(window.notes)
    if not series:
        notes.append(f"the later scrape has no {metric}_bucket samples.")
    broken = sum(not stats.monotonic for stats in series)
    if broken:
        notes.append(
            f"the bucket counts of {broken} histogram series decrease as the bound"
            " grows, so those series, and any sum that includes them, give no"
            " quantile."
        )
    if resets:
        notes.append(
            f"{resets} histogram series decreased without a process restart, so their"
            " later values count as the window. Observations before each reset are"
            " missing."
        )
    return LatencyReport(
        metric=metric,
        series=sorted(
            series, key=lambda stats: (stats.route or "", stats.method or "")
        ),
        aggregate=aggregate,
        window_seconds=window.seconds,
        restart_detected=restarted,
        reset_detected=restarted or resets > 0,
        partial=window.partial or resets > 0,
        notes=notes,
    )


def _read_histograms(scrape: Scrape, metric: str) -> dict[_Key, _Histogram]:
    histograms: dict[_Key, _Histogram] = {}
    for sample in scrape.find(metric + "_bucket"):
        bound = _bound(sample.labels.get("le"))
        if bound is None or not math.isfinite(sample.value):
            continue
        labels = {name: value for name, value in sample.labels.items() if name != "le"}
        histogram = histograms.setdefault(series_key(labels), _Histogram(labels))
        # Buckets with the same bound written differently ("1" and "1.0") are merged.
        histogram.buckets[bound] = histogram.buckets.get(bound, 0.0) + sample.value
    for suffix in ("_count", "_sum"):
        for sample in scrape.find(metric + suffix):
            found = histograms.get(series_key(sample.labels))
            if not math.isfinite(sample.value):
                continue
            if found is not None and suffix == "_count":
                found.count = sample.value
            elif found is not None:
                found.sum = sample.value
    return histograms


def _bound(le: str | None) -> float | None:
    try:
        bound = float(le or "")
    except ValueError:
        return None
    return None if math.isnan(bound) else bound


def _within(
    previous: _Histogram | None, current: _Histogram, restarted: bool
) -> tuple[_Histogram, bool]:
    """Return the observations of ``current`` made after ``previous`` was scraped."""
    if restarted or previous is None:
        return current, False
    earlier = previous.buckets
    decreased = any(
        value < earlier.get(bound, 0.0) for bound, value in current.buckets.items()
    )
    if decreased or _less(current.count, previous.count):
        return current, True
    buckets = {
        bound: value - earlier.get(bound, 0.0)
        for bound, value in current.buckets.items()
    }
    count = _difference(current.count, previous.count)
    total = _difference(current.sum, previous.sum)
    return _Histogram(current.labels, buckets, count, total), False


def _less(current: float | None, previous: float | None) -> bool:
    return current is not None and previous is not None and current < previous


def _difference(current: float | None, previous: float | None) -> float | None:
    if current is None:
        return None
    return current - (previous or 0.0)


def _sum_by_bound(histograms: list[_Histogram]) -> _Histogram:
    summed = _Histogram({})
    for histogram in histograms:
        for bound, value in histogram.buckets.items():
            summed.buckets[bound] = summed.buckets.get(bound, 0.0) + value
    counts = [histogram.count for histogram in histograms]
    sums = [histogram.sum for histogram in histograms]
    summed.count = None if None in counts else sum(c for c in counts if c is not None)
    summed.sum = None if None in sums else sum(s for s in sums if s is not None)
    return summed


def _stats(
    histogram: _Histogram,
    metric: str,
    wanted: tuple[float, ...],
    route: str | None,
    probe: bool,
) -> HistogramStats:
    buckets = histogram.buckets
    finite = [bound for bound in buckets if math.isfinite(bound)]
    largest = max(finite, default=None)
    total = buckets.get(math.inf, histogram.count or 0.0)
    below_largest = buckets[largest] if largest is not None else 0.0
    count = histogram.count if histogram.count is not None else total
    overflow = max(total - below_largest, 0.0) if largest is not None else 0.0
    usable = largest is not None and not (total > 0 and below_largest <= 0)

    quantiles = [histogram_quantile(q, buckets) for q in wanted]
    if not usable:
        quantiles = [Quantile(q, None) for q in wanted]
    stats = HistogramStats(
        method=histogram.labels.get("method"),
        route=route,
        labels=histogram.labels,
        probe=probe,
        count=count,
        sum=histogram.sum,
        largest_bound=largest,
        overflow=overflow,
        quantiles=quantiles,
        usable=usable,
    )
    stats.notes = _stats_notes(stats, total, metric)
    decreasing = _decreasing_bounds(buckets)
    if decreasing:
        stats.monotonic = False
        labels = ", ".join(_le_label(bound) for bound in decreasing[:5])
        _drop_quantiles(stats, f"the bucket counts decrease at {labels}")
    return stats


def _decreasing_bounds(buckets: dict[float, float]) -> list[float]:
    """Return the bounds whose cumulative count is below that of a smaller bound."""
    decreasing: list[float] = []
    highest = -math.inf
    for bound, count in sorted(buckets.items()):
        if count < highest:
            decreasing.append(bound)
        highest = max(highest, count)
    return decreasing


def _drop_quantiles(stats: HistogramStats, reason: str) -> None:
    # Prometheus's histogram_quantile raises such counts to a running maximum, which
    # makes a plausible quantile of a broken exposition, so none is reported here.
    stats.usable = False
    stats.quantiles = [Quantile(item.q, None) for item in stats.quantiles]
    stats.notes = [
        f"{reason}, but a histogram's cumulative counts can only grow with the bound,"
        " so no quantile is estimated. The exporter may write per-bucket counts"
        " instead of cumulative ones."
    ]


def _stats_notes(stats: HistogramStats, total: float, metric: str) -> list[str]:
    unit = _unit(metric)
    if not total > 0:
        return ["no observations in the window."]
    if stats.largest_bound is None:
        return ["the histogram has no finite bucket, so no quantile can be estimated."]
    bound = f"{stats.largest_bound:g}{unit}"
    if not stats.usable:
        mean = "" if stats.mean is None else f" (mean {stats.mean:g}{unit})"
        return [
            f"all {total:g} observations are above the largest bucket bound {bound}"
            f"{mean}, so the quantiles are unusable. The bucket bounds probably do not"
            " match the unit observed, for example bytes against bounds for seconds."
        ]
    if stats.overflow > 0:
        share = 100 * stats.overflow / total
        return [
            f"{stats.overflow:g} of {total:g} observations ({share:.1f} %) are above"
            f" the largest bucket bound {bound}, so a quantile among them is reported"
            f" as at least {bound}."
        ]
    return []


def _le_label(bound: float) -> str:
    return 'le="+Inf"' if bound == math.inf else f'le="{bound:g}"'


def _unit(metric: str) -> str:
    if metric.endswith("_seconds"):
        return " s"
    if metric.endswith("_bytes"):
        return " B"
    return ""
