"""Checks of an exposition for exporter mistakes, and messages that explain them.

A Prometheus server accepts two mistakes found here, but they mislead calculations: a
label value with undefined escapes, and a histogram series without a ``le="+Inf"``
bucket. It rejects the whole scrape for a line that its parser rejects, and
``rejection_message`` names the likely cause of such a line.
"""

from __future__ import annotations

import math
import re

from veerunbook.metrics_scrape import (
    Family,
    ParseWarning,
    Sample,
    format_line_ranges,
)

# A backslash and the character after it. Only \\, \" and \n are valid escapes.
ESCAPE = re.compile(r"\\(.?)")
_VALID_ESCAPES = frozenset({"\\", '"', "n"})
_MAX_REASON = 160

_SeriesKey = frozenset[tuple[str, str]]


def escape_warnings(lines: list[str], samples: list[Sample]) -> list[ParseWarning]:
    """Warn about accepted lines with escapes that the text format does not define.

    The library keeps such a backslash as written, as a Prometheus server does.
    """
    warnings = []
    for sample in samples:
        line = lines[sample.line - 1] if sample.line else ""
        if "\\" not in line:
            continue
        invalid = sorted(
            {"\\" + match.group(1) for match in ESCAPE.finditer(line)}
            - {"\\" + escape for escape in _VALID_ESCAPES}
        )
        if invalid:
            message = (
                f"invalid escape sequences {' '.join(invalid)} were kept as written."
                ' The text format defines only \\\\, \\" and \\n, so stricter parsers'
                " reject this line. The exporter probably does not escape label values."
            )
            warnings.append(ParseWarning(sample.line, message))
    return warnings


def add_inf_buckets(
    families: list[Family], warnings: list[ParseWarning]
) -> list[Sample]:
    """Return a ``le="+Inf"`` bucket for each histogram series that lacks one.

    Prometheus's histogram_quantile returns NaN for such a series, and a tool that
    takes the largest bucket as the total misses every observation above it.
    """
    # Keyed by family name and labels without "le", because one family arrives in
    # several parts when it was parsed line by line.
    buckets: dict[tuple[str, _SeriesKey], list[Sample]] = {}
    counts: dict[tuple[str, _SeriesKey], Sample] = {}
    for family in families:
        if family.type != "histogram":
            continue
        bucket_name = family.name + "_bucket"
        count_name = family.name + "_count"
        for sample in family.samples:
            if sample.name == bucket_name:
                key = (family.name, _series_key(sample.labels))
                buckets.setdefault(key, []).append(sample)
            elif sample.name == count_name:
                counts[(family.name, _series_key(sample.labels))] = sample

    # Client libraries write the +Inf bucket last, so most series pass the first test.
    added: list[Sample] = []
    for key, series in buckets.items():
        if series[-1].labels.get("le") == "+Inf":
            continue
        if not any(_bound(sample) == math.inf for sample in series):
            added.append(_inf_bucket(key[0], series, counts.get(key), warnings))
    return added


def _inf_bucket(
    family: str,
    series: list[Sample],
    count: Sample | None,
    warnings: list[ParseWarning],
) -> Sample:
    labels = {name: value for name, value in series[0].labels.items() if name != "le"}
    finite = [sample for sample in series if _finite_bound(sample) is not None]
    largest = max(finite, key=lambda sample: _finite_bound(sample) or 0.0, default=None)
    largest_value = largest.value if largest else 0.0
    largest_le = largest.labels.get("le") if largest else "none"
    shown = ",".join(f'{name}="{value}"' for name, value in labels.items())

    if count is None:
        value = largest_value
        reason = f"and no {family}_count, so a +Inf bucket equal to the largest bucket"
    else:
        value = max(count.value, largest_value)
        reason = f"so a +Inf bucket equal to {family}_count"
    message = (
        f'histogram {family}{{{shown}}} has no le="+Inf" bucket, {reason}'
        f' ({value:g}) was added. Observations above le="{largest_le}"'
        f" ({value - largest_value:g}) were counted only in _count."
    )
    warnings.append(ParseWarning(series[0].line, message))
    return Sample(family + "_bucket", {**labels, "le": "+Inf"}, value, None)


def _series_key(labels: dict[str, str]) -> _SeriesKey:
    without_le = labels.copy()
    without_le.pop("le", None)
    return frozenset(without_le.items())


def _bound(sample: Sample) -> float | None:
    try:
        return float(sample.labels.get("le", ""))
    except ValueError:
        return None


def _finite_bound(sample: Sample) -> float | None:
    bound = _bound(sample)
    return bound if bound is not None and math.isfinite(bound) else None


def rejection_message(line: str, reason: str) -> str:
    """Describe why the parser rejected ``line``, with the likely exporter mistake."""
    if len(reason) > _MAX_REASON:
        reason = reason[:_MAX_REASON] + "..."
    message = f"line rejected by the parser ({reason})."
    if '\\",' in line or '\\"}' in line:
        message += (
            " A label value probably ends in a backslash that escapes its closing"
            ' quote, because the exporter does not escape "\\" in label values.'
        )
    elif _unescaped_quotes(line) % 2:
        message += (
            ' A label value probably contains an unescaped ", because the exporter'
            " does not escape label values."
        )
    return message


def _unescaped_quotes(line: str) -> int:
    without_escapes = ESCAPE.sub("", line)
    return without_escapes.count('"')


def rejection_summary(rejected: list[int]) -> str:
    """Summarise the rejected lines and what a Prometheus server makes of them."""
    return (
        f"{len(rejected)} lines rejected ({format_line_ranges(rejected)}). A Prometheus"
        " server rejects the whole scrape when any line is invalid, so its target would"
        " show up == 0. The values here come from the other lines only."
    )
