"""Figures and their presentation: Goal, Row, statistics, the table and progress lines.

A Row is one line of the result table. Every figure module returns Rows, and
``bench/run.py`` prints them and writes them as JSON.
"""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MB = 1_000_000
"""Bytes in a megabyte (SI), the unit of the memory figures."""


class BenchError(Exception):
    """A benchmark step failed: a command exited with an error or timed out."""


@dataclass(frozen=True)
class Goal:
    """A target: ``value`` compared with ``operator`` to the row's median or ratio."""

    operator: str  # one of "<", "<=", ">", ">="
    value: float
    on: str = "ratio"  # "ratio" or "median"
    text: str = ""  # how the table shows it; derived from the fields when empty

    def describe(self, unit: str) -> str:
        if self.text:
            return self.text
        if self.on == "ratio":
            return f"ratio {self.operator} {self.value:g}"
        return f"{self.operator} {self.value:g} {unit}"

    def is_met(self, observed: float) -> bool:
        checks = {
            "<": observed < self.value,
            "<=": observed <= self.value,
            ">": observed > self.value,
            ">=": observed >= self.value,
        }
        return checks[self.operator]


@dataclass
class Row:
    """One line of the result table: the samples of a figure and how it is judged.

    ``reference`` is a figure measured in the same invocation, in the same unit. A row
    without samples carries the reason in ``note``, such as "not available".
    """

    name: str
    unit: str
    samples: list[float]
    reference: float | None = None
    goal: Goal | None = None
    ratio: float | None = None  # derived from median and reference when left None
    extra_ok: bool = True  # a second condition of the goal, such as zero errors
    note: str = ""
    details: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.samples:
            if self.reference:
                self.ratio = self.median / self.reference
            elif self.goal is not None and self.goal.on == "median" and self.goal.value:
                self.ratio = self.median / self.goal.value

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def met(self) -> bool | None:
        """Return whether the goal is met, or None for a row without goal or samples."""
        if self.goal is None or not self.samples:
            return None
        observed = self.ratio if self.goal.on == "ratio" else self.median
        if observed is None:
            return None
        return self.goal.is_met(observed) and self.extra_ok

    def to_json(self) -> dict[str, object]:
        low, high = spread(self.samples) if self.samples else (None, None)
        return {
            "name": self.name,
            "unit": self.unit,
            "samples": self.samples,
            "median": self.median if self.samples else None,
            "min": low,
            "max": high,
            "reference": self.reference,
            "ratio": self.ratio,
            "target": self.goal.describe(self.unit) if self.goal else None,
            "met": self.met,
            "note": self.note,
            "details": self.details,
        }


def spread(samples: Sequence[float]) -> tuple[float, float]:
    """Return the smallest and the largest sample."""
    if not samples:
        raise ValueError("spread of an empty sample list is undefined")
    return min(samples), max(samples)


def format_number(value: float) -> str:
    """Format a figure with precision that suits its size: 1,234 / 123 / 12.3 / 1.23."""
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1 or size == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


_HEADER = (
    "figure",
    "median",
    "spread (min-max)",
    "reference",
    "ratio",
    "target",
    "met",
)


def format_table(rows: Sequence[Row]) -> str:
    """Format the rows as a plain-text table with one header line."""
    lines = [_HEADER, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
    text = []
    for line in lines:
        padded = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        text.append("  ".join(padded).rstrip())
    return "\n".join(text)


def _cells(row: Row) -> tuple[str, ...]:
    if not row.samples:
        # A failure's reason can span many lines, so run.py prints it below the table.
        reason = row.note or "no samples"
        if reason.startswith("failed"):
            reason = "failed (see below)"
        return (row.name, _shorten(reason, NOTE_WIDTH), "", "", "", "", "")
    low, high = spread(row.samples)
    unit = f" {row.unit}"
    span = f"{format_number(low)}-{format_number(high)}{unit}"
    if len(row.samples) == 1:
        span = "-"
    reference = "-" if row.reference is None else format_number(row.reference) + unit
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
    target = row.goal.describe(row.unit) if row.goal else (row.note or "-")
    met = {None: "-", True: "yes", False: "NO"}[row.met]
    return (
        row.name,
        format_number(row.median) + unit,
        span,
        reference,
        ratio,
        target,
        met,
    )


NOTE_WIDTH = 40


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def progress(step: int, total: int, figure: str, text: str) -> None:
    """Print a progress line such as ``[3/8] triage: run 4 of 6 ...`` to stderr."""
    print(f"[{step}/{total}] {figure}: {text}", file=sys.stderr, flush=True)


@dataclass
class Context:
    """Paths, repeat count, target URL and reference that every figure uses.

    ``work`` is a temporary folder that is the working directory of every child
    process, so no ``./veerunbook.toml`` is read and nothing is written into the
    repository. ``reference_seconds`` is the papermill median once it is measured.
    """

    repo: Path
    work: Path
    repeats: int
    step: int = 0
    total: int = 0
    figure: str = ""
    target_url: str = ""
    reference_seconds: float | None = None

    def tool(self, name: str) -> Path:
        """Return the console script ``name`` next to this interpreter."""
        path = Path(sys.executable).parent / name
        if not path.is_file():
            raise BenchError(f"{path} not found; install the project into this venv.")
        return path

    def env(self, **extra: str) -> dict[str, str]:
        """Return the environment of a child: the archive inside ``work``, no
        VEERUNBOOK_NOTEBOOKS, then ``extra``."""
        env = dict(os.environ)
        env.pop("VEERUNBOOK_NOTEBOOKS", None)
        env["VEERUNBOOK_ARCHIVE"] = str(self.work / "archive")
        env.update(extra)
        return env

    def folder(self, name: str) -> Path:
        """Create and return a new folder ``name`` inside ``work``."""
        path = self.work / name
        path.mkdir(parents=True, exist_ok=False)
        return path

    def say(self, text: str) -> None:
        """Print a progress line for the current figure."""
        progress(self.step, self.total, self.figure, text)

    def repeat(
        self, job: Callable[[int], float], runs: int | None = None
    ) -> list[float]:
        """Call ``job(index)`` once to warm up, then ``runs`` more times (default
        ``repeats``), and return the values of the timed calls."""
        runs = self.repeats if runs is None else runs
        values = []
        for index in range(runs + 1):
            label = " (warm-up)" if index == 0 else ""
            self.say(f"run {index + 1} of {runs + 1}{label} ...")
            value = job(index)
            if index > 0:
                values.append(value)
        return values
