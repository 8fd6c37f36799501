"""Core Web Vitals read from a performance audit response and graded.

Services spell the fields differently: ``lcpMs`` in the VeeFore audit endpoint,
``lcp`` or ``LCP`` in web-vitals reports, ``largest_contentful_paint`` in the Chrome
UX Report API, ``largest-contentful-paint`` in Lighthouse. Keys are compared with
case, ``-`` and ``_`` ignored, so each spelling is found without listing every
variant. A value may be a number, a numeric string (``"2.5s"``, ``"0.05"``) or an
object that contains it under ``value``, ``numericValue``, ``p75`` or
``percentiles.p75``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Ratings, from the web-vitals library's names for them.
GOOD = "good"
NEEDS_IMPROVEMENT = "needs improvement"
POOR = "poor"
MISSING = "missing"
INVALID = "invalid"

_CHECK_STATUS = {GOOD: "pass", NEEDS_IMPROVEMENT: "warn", POOR: "fail"}

# Objects that contain the vitals, tried before the top level of the body.
_CONTAINERS = ("webvitals", "corewebvitals", "vitals", "metrics")
# Keys of an object that contain a metric's value, in order of preference.
_VALUE_KEYS = ("p75", "value", "numericvalue", "percentile")
# Fields that give the number of measurements behind the figures.
_SAMPLE_SIZE_FIELDS = ("samplesize", "samplecount", "samples")
_NUMBER_WITH_UNIT = re.compile(r"^\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*(ms|s)?\s*$", re.I)


@dataclass(frozen=True)
class VitalLimit:
    """A web vital's good and poor limits: good <= ``good``, poor > ``poor``."""

    name: str
    title: str
    unit: str  # "ms", or "" for the unitless layout shift score
    good: float
    poor: float
    names: tuple[str, ...]  # field names, lower case without "-" and "_"


# The limits of web.dev's articles on each metric, which the web-vitals package
# exports as LCPThresholds, INPThresholds, CLSThresholds, FCPThresholds and
# TTFBThresholds. They apply to the 75th percentile of page loads.
LIMITS = (
    VitalLimit(
        "LCP", "Largest Contentful Paint", "ms", 2500.0, 4000.0,
        ("lcp", "largestcontentfulpaint"),
    ),
    VitalLimit(
        "INP", "Interaction to Next Paint", "ms", 200.0, 500.0,
        ("inp", "interactiontonextpaint"),
    ),
    VitalLimit(
        "CLS", "Cumulative Layout Shift", "", 0.1, 0.25,
        ("cls", "cumulativelayoutshift"),
    ),
    VitalLimit(
        "FCP", "First Contentful Paint", "ms", 1800.0, 3000.0,
        ("fcp", "firstcontentfulpaint"),
    ),
    VitalLimit(
        "TTFB", "Time to First Byte", "ms", 800.0, 1800.0,
        ("ttfb", "timetofirstbyte", "experimentaltimetofirstbyte"),
    ),
)  # fmt: skip

# Suffixes of a field name that give the unit of a timing, and their factor to ms.
_UNIT_SUFFIXES = (
    ("milliseconds", 1.0),
    ("millis", 1.0),
    ("ms", 1.0),
    ("seconds", 1000.0),
    ("sec", 1000.0),
)


@dataclass(frozen=True)
class Vital:
    """One web vital as reported: value in ms (CLS unitless) and its rating.

    ``key`` is the field it was read from. ``problem`` gives the reason an ``invalid``
    value was rejected.
    """

    limit: VitalLimit
    value: float | None
    rating: str
    key: str | None = None
    problem: str | None = None

    @property
    def check_status(self) -> str:
        """The journal status: pass, warn or fail by rating, skip when missing."""
        if self.rating == INVALID:
            return "warn"
        return _CHECK_STATUS.get(self.rating, "skip")

    def to_row(self) -> dict[str, Any]:
        """Return a table row: metric, value, unit, rating and the limits."""
        limit = self.limit
        return {
            "metric": limit.name,
            "value": self.value,
            "unit": limit.unit,
            "rating": self.rating,
            "good up to": limit.good,
            "poor above": limit.poor,
            "field": self.key or "",
            "problem": self.problem or "",
        }


def rate(value: float, limit: VitalLimit) -> str:
    """Rate ``value`` good, needs improvement or poor against ``limit``."""
    if value <= limit.good:
        return GOOD
    return NEEDS_IMPROVEMENT if value <= limit.poor else POOR


def read_vitals(body: Any) -> list[Vital]:
    """Find and rate each web vital in a parsed JSON body, in the order of LIMITS.

    A vital absent from the body is ``missing``; a value that is not a finite,
    non-negative number is ``invalid``. Never raises.
    """
    fields = _candidate_fields(body)
    return [_read_one(limit, fields) for limit in LIMITS]


def sample_size(body: Any) -> float | None:
    """Return the number of measurements the audit reports its figures rest on."""
    if not isinstance(body, Mapping):
        return None
    for key, value in body.items():
        number = finite_number(value)
        if _normalise(key) in _SAMPLE_SIZE_FIELDS and number is not None:
            return number
    return None


def finite_number(value: Any) -> float | None:
    """Return a JSON number as a finite float; None for anything else.

    Booleans are not numbers here, and neither is an integer too large for a float.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _candidate_fields(body: Any) -> list[tuple[str, str, Any]]:
    """Return (original key, normalised key, value) of the fields to search."""
    if not isinstance(body, Mapping):
        return []
    found: list[tuple[str, str, Any]] = []
    for key, value in body.items():
        if _normalise(key) in _CONTAINERS and isinstance(value, Mapping):
            found.extend((str(k), _normalise(k), v) for k, v in value.items())
    found.extend((str(k), _normalise(k), v) for k, v in body.items())
    return found


def _normalise(key: Any) -> str:
    return str(key).lower().replace("-", "").replace("_", "")


def _read_one(limit: VitalLimit, fields: list[tuple[str, str, Any]]) -> Vital:
    for key, normalised, raw in fields:
        factor = _unit_factor(normalised, limit)
        if factor is None:
            continue
        value, problem = _number(raw, factor, timing=bool(limit.unit))
        if value is None:
            return Vital(limit, None, INVALID, key, problem)
        return Vital(limit, value, rate(value, limit), key)
    return Vital(limit, None, MISSING)


def _unit_factor(normalised: str, limit: VitalLimit) -> float | None:
    """Return the factor to ms when ``normalised`` names ``limit``, else None.

    A bare name such as ``lcp`` is in milliseconds, as the web-vitals library
    reports it.
    """
    for name in limit.names:
        if normalised == name:
            return 1.0
        suffix = normalised.removeprefix(name)
        if suffix != normalised and limit.unit:
            for unit, factor in _UNIT_SUFFIXES:
                if suffix == unit:
                    return factor
    return None


def _number(
    raw: Any, factor: float, *, timing: bool
) -> tuple[float | None, str | None]:
    """Convert a reported value to a number, or return None and why it is invalid.

    A unit written in a string (``"2.5s"``) overrides ``factor`` for a timing.
    """
    value = _unwrap(raw)
    if isinstance(value, bool) or value is None:
        return None, f"not a number: {raw!r}"[:120]
    if isinstance(value, str):
        match = _NUMBER_WITH_UNIT.match(value)
        if match is None:
            return None, f"not a number: {value!r}"[:120]
        unit = (match.group(2) or "").lower()
        if unit and timing:
            factor = 1000.0 if unit == "s" else 1.0
        value = float(match.group(1))
    if not isinstance(value, int | float):
        return None, f"not a number: {type(value).__name__}"
    finite = finite_number(value)
    if finite is None or finite < 0:
        return None, f"not a finite, non-negative number: {value!r}"[:120]
    return finite * factor, None


def _unwrap(raw: Any) -> Any:
    """Return the number inside an object such as ``{"percentiles": {"p75": 2300}}``."""
    for _ in range(3):  # at most three levels deep, as in the CrUX API
        if not isinstance(raw, Mapping):
            return raw
        lowered = {_normalise(key): value for key, value in raw.items()}
        if isinstance(lowered.get("percentiles"), Mapping):
            raw = lowered["percentiles"]
            continue
        raw = next((lowered[k] for k in _VALUE_KEYS if k in lowered), None)
    return raw
