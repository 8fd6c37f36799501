"""Quantile estimates from the cumulative buckets of a Prometheus histogram."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from veerunbook.metrics_window import json_safe


@dataclass(frozen=True)
class Quantile:
    """One quantile estimate.

    When ``lower_bound`` is true the quantile fell above the largest finite bucket, and
    ``value`` is that bucket's bound: the true quantile is at least ``value``.
    ``value`` is None when the histogram cannot give an estimate.
    """

    q: float
    value: float | None
    lower_bound: bool = False

    def exceeds(self, threshold: float) -> bool | None:
        """Return whether the quantile is above ``threshold``, or None when unknown."""
        if self.value is None:
            return None
        if self.lower_bound:
            return True if self.value > threshold else None
        return self.value > threshold

    def to_dict(self) -> dict[str, Any]:
        return dict(json_safe(asdict(self)))


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> Quantile:
    """Estimate quantile ``q`` from cumulative bucket counts keyed by upper bound.

    This follows Prometheus's ``bucketQuantile`` (promql/quantile.go) except for its
    1e-12 precision correction. Counts are made monotonic, and the value is interpolated
    linearly within its bucket. A quantile that falls into the +Inf bucket is the
    largest finite bound, flagged as a lower bound. Without a +Inf bucket, with fewer
    than two buckets or without observations the value is None.
    """
    check_quantile(q)
    ordered = sorted(buckets.items())
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return Quantile(q, None)
    bounds = [bound for bound, _ in ordered]
    counts = _monotonic([count for _, count in ordered])
    observations = counts[-1]
    if not observations > 0:
        return Quantile(q, None)

    # The first bucket whose cumulative count reaches the rank contains the quantile.
    rank = q * observations
    index = bisect.bisect_left(counts, rank, 0, len(counts) - 1)
    if index == len(counts) - 1:
        return Quantile(q, bounds[-2], lower_bound=True)
    if index == 0 and bounds[0] <= 0:
        return Quantile(q, bounds[0])
    start = bounds[index - 1] if index > 0 else 0.0
    below = counts[index - 1] if index > 0 else 0.0
    value = start + (bounds[index] - start) * (rank - below) / (counts[index] - below)
    return Quantile(q, value)


def check_quantile(q: float) -> None:
    """Raise ValueError unless ``q`` is a fraction from 0 to 1."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(
            f"quantile {q!r} is outside 0..1. Pass a fraction such as 0.95."
        )


def _monotonic(counts: list[float]) -> list[float]:
    envelope: list[float] = []
    for count in counts:
        envelope.append(max(count, envelope[-1]) if envelope else count)
    return envelope
