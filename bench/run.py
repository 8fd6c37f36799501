"""Measure every benchmark figure of veerunbook in one invocation and print a table.

    .venv/bin/python bench/run.py [--only NAME[,NAME]] [--json FILE] [--repeats N]

The figures, measured one after another, never at the same time:

  papermill   plain papermill CLI on bench/notebooks/parameters-only.ipynb (reference)
  engine      the same notebook through ``veerunbook run``, as a ratio to papermill
  triage      ``veerunbook run triage`` with window_seconds 1; target <= 0.4 x papermill
  import      ``import veerunbook`` and a procedure's first-cell imports in fresh
              interpreters; target < 150 ms each
  together    the read-only procedures alone and in one invocation; target <= 1.5
  metrics     veerunbook's metrics parser against prometheus_client's; target >= 1
  timeline    timeline build and renderings at 10, 100, 1000 runs; target < 2 s at 1000
  memory      peak RSS of the runner and kernel of an alert check; target < 250 MB
  throughput  requests per second of the embedded target; target >= 200 with 0 errors

Each figure is the median of ``--repeats`` runs (default 5, 10 or more for imports)
after one warm-up run, with the spread (min-max). The ratio divides by a reference
measured in the same invocation where there is one, and by the target otherwise.
The metrics rows give medians only. The embedded target (``veerunbook simulate``,
healthy scenario) is started once on a free 127.0.0.1 port and stopped at the end,
also on an error, Ctrl-C or SIGTERM. Progress lines go to stderr. The exit code is 1
when a figure failed to run; a missed target does not change it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import engine
import memory
import reused
from common import Context, Row, format_table
from machine import machine_facts
from processes import embedded_target


@dataclass(frozen=True)
class Figure:
    """A figure: its name for ``--only``, what measures it and what it needs."""

    name: str
    measure: Callable[[Context], list[Row]]
    needs_target: bool = False
    needs_reference: bool = False


FIGURES = (
    Figure("papermill", engine.papermill_reference),
    Figure("engine", engine.engine_overhead, needs_reference=True),
    Figure("triage", engine.triage, needs_target=True, needs_reference=True),
    Figure("import", engine.imports),
    Figure("together", reused.procedures_together, needs_target=True),
    Figure("metrics", reused.metrics_parsing),
    Figure("timeline", reused.timeline_build),
    Figure("memory", memory.alert_check_memory, needs_target=True),
    Figure("throughput", reused.simulator_throughput),
)


def select(only: str | None) -> list[Figure]:
    """Return the figures named in ``only`` (all when None), with the papermill
    reference added when a selected figure is a ratio to it."""
    if only is None:
        return list(FIGURES)
    names = {name.strip() for name in only.split(",") if name.strip()}
    known = {figure.name for figure in FIGURES}
    unknown = sorted(names - known)
    if unknown:
        raise ValueError(
            f"unknown figure {', '.join(unknown)}; choose from {', '.join(known)}."
        )
    if any(f.needs_reference for f in FIGURES if f.name in names):
        names.add("papermill")
    return [figure for figure in FIGURES if figure.name in names]


def measure(figures: list[Figure], ctx: Context) -> tuple[dict[str, list[Row]], bool]:
    """Measure the figures in order and return their rows and whether all ran."""
    results: dict[str, list[Row]] = {}
    all_ran = True
    with ExitStack() as stack:
        for step, figure in enumerate(figures, start=1):
            ctx.step, ctx.total, ctx.figure = step, len(figures), figure.name
            try:
                if figure.needs_target and not ctx.target_url:
                    ctx.say("starting the embedded target ...")
                    target = embedded_target(
                        ctx.tool("veerunbook"), ctx.folder("target-data"), ctx.work
                    )
                    ctx.target_url = stack.enter_context(target)
                results[figure.name] = figure.measure(ctx)
            # A failed figure is reported in the table and the others still run.
            except Exception as error:
                traceback.print_exc(file=sys.stderr)
                message = f"failed: {error}"
                results[figure.name] = [Row(figure.name, "", [], note=message)]
                all_ran = False
    return results, all_ran


def write_json(path: Path, document: dict[str, object]) -> None:
    """Write the document to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(json.dumps(document, indent=2) + "\n")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds the stack, so every child process and the target stop.
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", metavar="NAME[,NAME]", help="measure only these figures"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write JSON")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs per figure (default 5)"
    )
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        figures = select(args.only)
    except ValueError as error:
        parser.error(str(error))
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    started = time.perf_counter()
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="veerunbook-bench-") as work:
        ctx = Context(repo=repo, work=Path(work), repeats=args.repeats)
        results, all_ran = measure(figures, ctx)
    wall_seconds = time.perf_counter() - started

    rows = [row for figure_rows in results.values() for row in figure_rows]
    print(format_table(rows))
    for row in rows:
        if row.note.startswith("failed"):
            print(f"\n{row.name} {row.note}")
    print(f"\nwall time {wall_seconds:.0f} s, {args.repeats} timed runs per figure")
    if args.json:
        document = {
            "wall_seconds": wall_seconds,
            "repeats": args.repeats,
            "machine": machine_facts(),
            "figures": {
                name: [row.to_json() for row in figure_rows]
                for name, figure_rows in results.items()
            },
        }
        write_json(args.json, document)
    return 0 if all_ran else 1


if __name__ == "__main__":
    sys.exit(main())
