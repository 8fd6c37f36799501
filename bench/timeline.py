"""Time the timeline's build and rendering on synthetic incidents of 10 to 1000 runs.

    .venv/bin/python bench/timeline.py [--sizes 10 100 1000] [--repeat 5]

Each incident is written into a temporary archive with the Journal API. After the
incident opens, every run journals run.started, 5 checks (error rate, p95 latency,
connection pool and two others), an action intent and its end, a note and
run.finished. A tenth of the action ends are ``executed`` so the plot draws lines.
For each size the script prints the median of ``--repeat`` timings of
``build_timeline`` followed by each rendering: Markdown, HTML without the figure, and
HTML with the figure. The target is 1000 runs under 2 s for each, and the ratio
printed is the median divided by 2 s (below 1 meets it).

Writing the journal is not timed: each append takes the lock and syncs the file, so
writing 10,000 lines takes far longer than reading them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from veerunbook.incident import open_or_update
from veerunbook.journal import Journal
from veerunbook.timeline import Timeline, build_timeline
from veerunbook.timeline_render import render_html, render_markdown

TARGET_SECONDS = 2.0
TARGET_RUNS = 1000


def write_incident(archive: Path, runs: int) -> Path:
    """Write an incident with ``runs`` runs and return its folder."""
    incident = f"INC-BENCH-{runs}"
    open_or_update(archive, incident, title=f"benchmark with {runs} runs")
    folder = archive / incident
    journal = Journal(folder)
    for number in range(runs):
        run = f"RUN-BENCH-{number:05d}"
        journal.append("run.started", run=run, procedure="triage")
        checks = [
            ("5xx error rate", "fail" if number % 7 == 0 else "pass", 3.0, "%"),
            ("p95 latency", "pass", 240.0 + number % 50, "ms"),
            ("connection pool", "warn" if number % 5 == 0 else "pass", 40.0, "%"),
            ("health", "pass", 12.0, "ms"),
            ("error log entries", "pass", 0, "entries"),
        ]
        for name, status, observed, unit in checks:
            journal.append(
                "check", run=run, name=name, status=status, observed=observed, unit=unit
            )
        journal.append("action", run=run, name="block-ip", mode="intent", intent="x")
        mode = "executed" if number % 10 == 0 else "dry-run"
        journal.append("action", run=run, name="block-ip", mode=mode, detail="done")
        journal.append("note", run=run, text=f"note of run {number}")
        journal.append(
            "run.finished",
            run=run,
            procedure="triage",
            status="findings",
            duration_s=1.5,
            notebook=None,
            counts={"pass": 3, "fail": 1, "warn": 1},
        )
    return folder


def median_seconds(job: Callable[[], object], repeat: int) -> float:
    """Return the median wall time of ``repeat`` calls of ``job``."""
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        job()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def renderings(folder: Path) -> dict[str, Callable[[], object]]:
    """Return the timed jobs: a build followed by one rendering each."""

    def build() -> Timeline:
        return build_timeline(folder)

    return {
        "md": lambda: render_markdown(build()),
        "html": lambda: render_html(build(), folder, plots=False),
        "html+plots": lambda: render_html(build(), folder, plots=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="veerunbook-bench-") as root:
        for runs in args.sizes:
            folder = write_incident(Path(root), runs)
            for name, job in renderings(folder).items():
                seconds = median_seconds(job, args.repeat)
                ratio = seconds / TARGET_SECONDS
                print(
                    f"{runs:>5} runs  {name:<10} median {seconds:7.3f} s  "
                    f"{ratio:5.2f} x the {TARGET_SECONDS:.0f} s target"
                )


if __name__ == "__main__":
    main()
