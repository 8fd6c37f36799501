"""Time the read-only procedures alone, one after another, and all in one run.

    .venv/bin/veerunbook simulate --port 8080 &
    .venv/bin/python bench/procedures_together.py --url http://127.0.0.1:8080

Each procedure runs with its minimum window (window_seconds 1, samples 2,
sample_seconds 1) as its own ``veerunbook run`` process. Then all five run in one
``veerunbook run A B C D E`` invocation with ``--jobs 1`` (one after another) and
without it (all at once); the invocation forks one child per procedure. Every figure
is the wall time of the whole command, the median of ``--repeats`` timings after one
untimed warm-up run. The goal is together <= 1.5 x the slowest procedure alone. Each
invocation runs in a temporary folder, which is also its archive and is removed
afterwards, so no ``veerunbook.toml`` of the caller's folder is read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

# Each read-only procedure with the parameters of its minimum window.
MINIMUM_WINDOWS: dict[str, dict[str, str]] = {
    "triage": {"window_seconds": "1"},
    "database-connection": {"window_seconds": "1"},
    "high-error-rate": {"window_seconds": "1", "samples": "2"},
    "performance-degradation": {"window_seconds": "1", "samples": "2"},
    "alert-check": {"sample_seconds": "1"},
}
GOAL_RATIO = 1.5
_COMMAND_TIMEOUT_S = 600.0


def measure(base_url: str, repeats: int = 5) -> dict[str, Any]:
    """Time each procedure alone and all of them together against ``base_url``.

    Returns ``alone`` (procedure to list of seconds), ``alone_median``,
    ``sequential`` (list of seconds with ``--jobs 1``), ``one_after_another`` (its
    median), ``together`` (list of seconds), ``together_median``, ``slowest`` (the
    procedure slowest alone) and ``ratio`` (together median / slowest median).
    Raises RuntimeError when a run exits with 2 or 3.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be 1 or more, not {repeats}")
    names = list(MINIMUM_WINDOWS)
    _run(names, base_url)  # warm-up: file caches, compiled bytecode
    alone = {name: [_run([name], base_url) for _ in range(repeats)] for name in names}
    sequential = [_run(names, base_url, jobs=1) for _ in range(repeats)]
    together = [_run(names, base_url) for _ in range(repeats)]
    medians = {name: statistics.median(values) for name, values in alone.items()}
    slowest = max(medians, key=lambda name: medians[name])
    together_median = statistics.median(together)
    return {
        "alone": alone,
        "alone_median": medians,
        "sequential": sequential,
        "one_after_another": statistics.median(sequential),
        "together": together,
        "together_median": together_median,
        "slowest": slowest,
        "ratio": together_median / medians[slowest],
        "repeats": repeats,
    }


def _run(names: Sequence[str], base_url: str, jobs: int | None = None) -> float:
    """Run the procedures in one ``veerunbook run`` and return its wall seconds."""
    parameters: dict[str, str] = {}
    for name in names:
        parameters.update(MINIMUM_WINDOWS[name])
    command = [sys.executable, "-m", "veerunbook.cli", "run", *names]
    command += ["--target", base_url]
    if jobs is not None:
        command += ["--jobs", str(jobs)]
    for key, value in parameters.items():
        command += ["-p", key, value]
    archive = tempfile.mkdtemp(prefix="veerunbook-bench-")
    env = {**os.environ, "VEERUNBOOK_ARCHIVE": archive}
    try:
        started = time.perf_counter()
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            cwd=archive,
            timeout=_COMMAND_TIMEOUT_S,
        )
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(archive, ignore_errors=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(
            f"'veerunbook run {' '.join(names)}' exited with {done.returncode}: "
            f"{done.stderr.strip()[-1000:]}"
        )
    return elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        required=True,
        help="base URL of a running embedded target, such as http://127.0.0.1:8080",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs per figure (default 5)"
    )
    args = parser.parse_args(argv)
    result = measure(args.url, args.repeats)
    print(f"median of {args.repeats} runs after a warm-up, wall seconds")
    for name, seconds in result["alone_median"].items():
        print(f"  {name + ' alone':<32} {seconds:6.2f}")
    print(f"  {'one after another (--jobs 1)':<32} {result['one_after_another']:6.2f}")
    print(f"  {'all together':<32} {result['together_median']:6.2f}")
    ratio = result["ratio"]
    verdict = "meets" if ratio <= GOAL_RATIO else "misses"
    print(
        f"ratio together / slowest alone ({result['slowest']}): {ratio:.2f} "
        f"({verdict} the goal of {GOAL_RATIO:g})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
