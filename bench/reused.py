"""Figures measured by the other benchmark scripts of this folder, read into Rows.

``procedures_together`` and ``metrics_parse`` are imported when their figure runs.
If one of them is missing, its figure is reported as not available. ``timeline`` is
imported for its incident writer and timed jobs. ``simulator_load`` runs as a child
process with fewer requests than its default, and its printed figures are parsed.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from types import ModuleType

from common import BenchError, Context, Goal, Row
from processes import run_command

THROUGHPUT_TARGET = 200.0  # req/s, the target printed by simulator_load.py
# 600 requests take about 3 s at 200 req/s, so warm-up and five runs stay near 30 s.
LOAD_REQUESTS = 600
TIMELINE_SIZES = (10, 100, 1000)
TIMELINE_LIMIT_MS = 2000.0  # for the 1000-run incident


def _optional_module(name: str) -> ModuleType | None:
    """Import a sibling script, or return None when the script itself is missing."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        return None


def _not_available(name: str, script: str) -> list[Row]:
    return [Row(name, "", [], note=f"not available: bench/{script} is missing")]


def procedures_together(ctx: Context) -> list[Row]:
    """Read ``procedures_together.measure``: each read-only procedure alone, and all
    of them in one ``veerunbook run`` invocation."""
    module = _optional_module("procedures_together")
    if module is None:
        return _not_available("read-only procedures together", "procedures_together.py")
    ctx.say(f"procedures_together.measure(url, repeats={ctx.repeats}) ...")
    result = module.measure(ctx.target_url, ctx.repeats)
    alone = _field(result, "alone")
    if not isinstance(alone, Mapping):
        raise BenchError(f"expected a mapping of procedure to seconds, got {alone!r}")
    rows = [Row(f"{name} alone", "s", _samples(value)) for name, value in alone.items()]
    slowest = max(row.median for row in rows)
    sequential = _samples(_field(result, "sequential"))
    rows.append(Row("one after another, one veerunbook run --jobs 1", "s", sequential))
    together = _samples(_field(result, "together"))
    goal = Goal("<=", 1.5, text="ratio <= 1.5")
    name = "all together, one veerunbook run"
    rows.append(Row(name, "s", together, reference=slowest, goal=goal))
    return rows


def _field(result: object, name: str) -> object:
    if isinstance(result, Mapping):
        return result[name]
    return getattr(result, name)


def _samples(value: object) -> list[float]:
    """Return a timing or a list of timings as a list of floats."""
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, list | tuple):
        return [float(item) for item in value]
    raise BenchError(f"expected seconds or a list of seconds, got {value!r}")


def metrics_parsing(ctx: Context) -> list[Row]:
    """Read ``metrics_parse.measure``: series per second of veerunbook's parser, with
    prometheus_client's parser as the reference."""
    module = _optional_module("metrics_parse")
    if module is None:
        return _not_available("metrics parsing", "metrics_parse.py")
    ctx.say(f"metrics_parse.measure(repeats={ctx.repeats}) ...")
    results = module.measure(sizes=(1000, 10000, 100000), repeats=ctx.repeats)
    rows = []
    for result in results:
        # measure() returns medians only, so these rows show no spread.
        samples = [float(result["veerunbook_series_per_s"])]
        reference = float(result["reference_series_per_s"])
        name = f"metrics parse, {result['size']:,} series"
        goal = Goal(">=", 1.0)
        rows.append(Row(name, "series/s", samples, reference=reference, goal=goal))
    return rows


def timeline_build(ctx: Context) -> list[Row]:
    """Time the timeline's build and each rendering on incidents of 10 to 1000 runs."""
    import timeline

    archive = ctx.folder("timeline-archive")
    rows = []
    for runs in TIMELINE_SIZES:
        ctx.say(f"writing an incident of {runs} runs (not timed) ...")
        folder = timeline.write_incident(archive, runs)
        for rendering, job in timeline.renderings(folder).items():
            ctx.say(f"{runs} runs, build and {rendering}")
            samples = ctx.repeat(partial(_time_once, timeline.median_seconds, job))
            goal = None
            if runs == 1000:
                goal = Goal("<", TIMELINE_LIMIT_MS, on="median")
            name = f"timeline {runs} runs, build + {rendering}"
            milliseconds = [seconds * 1000 for seconds in samples]
            rows.append(Row(name, "ms", milliseconds, goal=goal))
    return rows


def _time_once(
    median_seconds: Callable[[Callable[[], object], int], float],
    job: Callable[[], object],
    index: int,
) -> float:
    # median_seconds of one call is that call's time, so spread can be computed.
    return median_seconds(job, 1)


_RATE = re.compile(r"^throughput\s+([\d.]+) req/s", re.MULTILINE)
_ERRORS = re.compile(r"^errors\s+(\d+)", re.MULTILINE)


def simulator_throughput(ctx: Context) -> list[Row]:
    """Run ``simulator_load.py`` with fewer requests and read its req/s and errors."""
    script = ctx.repo / "bench" / "simulator_load.py"
    argv = [sys.executable, str(script), "--requests", str(LOAD_REQUESTS)]
    argv += ["--max-seconds", "10"]
    errors: list[int] = []

    def job(index: int) -> float:
        output = ctx.work / f"simulator-load-{index}.txt"
        run_command(argv, env=ctx.env(), cwd=ctx.work, timeout=120, log=output)
        rate, error_count = _parse_load(output)
        if index > 0:
            errors.append(error_count)
        return rate

    samples = ctx.repeat(job)
    goal = Goal(">=", THROUGHPUT_TARGET, on="median", text=">= 200 req/s, 0 errors")
    row = Row("embedded target throughput", "req/s", samples, goal=goal)
    row.extra_ok = not any(errors)
    row.details["errors"] = errors
    row.details["requests_per_run"] = LOAD_REQUESTS
    return [row]


def _parse_load(output: Path) -> tuple[float, int]:
    text = output.read_text()
    rate = _RATE.search(text)
    errors = _ERRORS.search(text)
    if rate is None or errors is None:
        raise BenchError(f"simulator_load.py printed no throughput or errors:\n{text}")
    return float(rate.group(1)), int(errors.group(1))
