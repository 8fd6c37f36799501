"""A parsed Prometheus scrape: its samples, metric families and defects."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# Suffixes that the text format appends to a family name in its sample names.
_SAMPLE_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created", "_info")


class Sample(NamedTuple):
    """One sample of a scrape, with its 1-based line in the exposition.

    ``line`` is None for a ``le="+Inf"`` bucket that the parser added.
    """

    name: str
    labels: dict[str, str]
    value: float
    line: int | None


@dataclass(frozen=True)
class ParseWarning:
    """A defect of an exposition, at a 1-based line or at None for the whole body."""

    line: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}


@dataclass
class Scrape:
    """The samples of one exposition and what was wrong with it.

    ``types`` maps each family to its type, with family names as prometheus_client
    reports them: a counter family is named without its ``_total`` suffix.
    """

    samples: list[Sample]
    types: dict[str, str]
    warnings: list[ParseWarning]
    rejected_lines: list[int]
    scraped_at: float | None = None
    _by_name: dict[str, list[Sample]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def valid(self) -> bool:
        """Whether every line parsed. A Prometheus server rejects the scrape if not."""
        return not self.rejected_lines

    def find(self, name: str) -> list[Sample]:
        """Return the samples named ``name``, in exposition order."""
        if self._by_name is None:
            self._by_name = {}
            for sample in self.samples:
                self._by_name.setdefault(sample.name, []).append(sample)
        return self._by_name.get(name, [])

    def type_of(self, sample_name: str) -> str | None:
        """Return the type of the family that a sample name belongs to."""
        if sample_name in self.types:
            return self.types[sample_name]
        for suffix in _SAMPLE_SUFFIXES:
            if sample_name.endswith(suffix):
                family = sample_name.removesuffix(suffix)
                if family in self.types:
                    return self.types[family]
        return None

    def to_dict(self) -> dict[str, Any]:
        """Summarise the scrape for the journal: counts and warnings, no samples."""
        return {
            "scraped_at": finite_or_none(self.scraped_at),
            "valid": self.valid,
            "samples": len(self.samples),
            "types": dict(self.types),
            "rejected_lines": list(self.rejected_lines),
            "warnings": [warning.to_dict() for warning in self.warnings],
        }


@dataclass
class Family:
    """One metric family as the parser returned it."""

    name: str
    type: str
    samples: list[Sample]


def finite_or_none(value: float | None) -> float | None:
    """Return ``value`` unless it is None, NaN or infinite, which JSON cannot carry."""
    if value is None or not math.isfinite(value):
        return None
    return value


def format_line_ranges(numbers: list[int]) -> str:
    """Format line numbers as ranges, for example ``15, 17, 31-40``."""
    ranges: list[str] = []
    ordered = sorted(set(numbers))
    start = previous = ordered[0] if ordered else 0
    for number in [*ordered[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ", ".join(ranges) if ordered else ""
