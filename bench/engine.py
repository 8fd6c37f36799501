"""Figures of whole runs: the papermill reference, the same notebook through
veerunbook, triage at its minimum window, and the cost of importing veerunbook.

Each timing is the wall time of one fresh process, from start to exit, so it includes
the interpreter start, the kernel start and the kernel shutdown.
"""

from __future__ import annotations

import subprocess
import sys
from functools import partial

from common import Context, Goal, Row
from processes import run_command

NOTEBOOK = "parameters-only"
RUN_TIMEOUT = 300.0
# veerunbook run exits with 0 when healthy and 1 when a check has findings, and both
# are complete runs. 2 (invalid input) and 3 (incomplete run) fail the figure.
RUN_CODES = (0, 1)


def papermill_reference(ctx: Context) -> list[Row]:
    """Time the plain papermill CLI on the parameters-only notebook."""
    papermill = ctx.tool("papermill")
    notebook = ctx.repo / "bench" / "notebooks" / f"{NOTEBOOK}.ipynb"
    output = ctx.folder("papermill")

    def job(index: int) -> float:
        executed = output / f"{NOTEBOOK}-{index}.ipynb"
        argv = [str(papermill), str(notebook), str(executed), "-p", "target", "x"]
        return run_command(argv, env=ctx.env(), cwd=ctx.work, timeout=RUN_TIMEOUT)

    samples = ctx.repeat(job)
    row = Row("papermill CLI, parameters-only", "s", samples, note="the reference")
    ctx.reference_seconds = row.median
    return [row]


def engine_overhead(ctx: Context) -> list[Row]:
    """Time ``veerunbook run parameters-only``. Its ratio to papermill is the
    engine's overhead or saving."""
    veerunbook = ctx.tool("veerunbook")
    notebooks = ctx.repo / "bench" / "notebooks"
    archive = ctx.folder("engine-archive")
    env = ctx.env(VEERUNBOOK_NOTEBOOKS=str(notebooks))
    argv = [str(veerunbook), "run", NOTEBOOK, "--target", "demo"]
    argv += ["--archive", str(archive)]

    def job(index: int) -> float:
        return run_command(
            argv, env=env, cwd=ctx.work, timeout=RUN_TIMEOUT, ok_codes=RUN_CODES
        )

    samples = ctx.repeat(job)
    name = "veerunbook run parameters-only"
    return [Row(name, "s", samples, reference=ctx.reference_seconds)]


def triage(ctx: Context) -> list[Row]:
    """Time ``veerunbook run triage`` at its minimum window of 1 s against the
    embedded target."""
    veerunbook = ctx.tool("veerunbook")
    archive = ctx.folder("triage-archive")
    argv = [str(veerunbook), "run", "triage", "--target", ctx.target_url]
    argv += ["-p", "window_seconds", "1", "--archive", str(archive)]

    def job(index: int) -> float:
        return run_command(
            argv, env=ctx.env(), cwd=ctx.work, timeout=RUN_TIMEOUT, ok_codes=RUN_CODES
        )

    samples = ctx.repeat(job)
    goal = Goal("<=", 0.4, text="ratio <= 0.4")
    name = "veerunbook run triage, window 1 s"
    return [Row(name, "s", samples, reference=ctx.reference_seconds, goal=goal)]


IMPORT_TIMER = (
    "import time; start = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - start)"
)


_IMPORT_GOAL = Goal("<", 150.0, on="median")
# The first imports of each process: the package, a procedure's first cell in the
# kernel, the command line, and the runner in a run's parent process.
IMPORTS = (
    ("veerunbook", _IMPORT_GOAL),
    ("veerunbook.session, veerunbook.triage", _IMPORT_GOAL),
    ("veerunbook.cli", None),
    ("veerunbook.runner", None),
)


def imports(ctx: Context) -> list[Row]:
    """Time imports inside fresh interpreters, and ``veerunbook --help`` as a whole
    process.

    The package, and the modules that triage's first cell imports in the kernel,
    have the 150 ms goal. The CLI and the runner, which imports papermill and the
    Jupyter client, are shown for information.
    """
    runs = max(10, 2 * ctx.repeats)
    rows = []
    for module, goal in IMPORTS:
        ctx.say(f"import {module}")
        samples = ctx.repeat(partial(_child_import_ms, ctx, module), runs)
        rows.append(Row(f"import {module}", "ms", samples, goal=goal))

    ctx.say("python -c pass, the interpreter start")
    interpreter = ctx.repeat(
        lambda _: run_command([sys.executable, "-c", "pass"], cwd=ctx.work), runs
    )
    rows.append(Row("python -c pass", "s", interpreter, note="interpreter start"))

    ctx.say("veerunbook --help")
    help_argv = [str(ctx.tool("veerunbook")), "--help"]
    samples = ctx.repeat(lambda _: run_command(help_argv, cwd=ctx.work), runs)
    reference = rows[-1].median
    rows.append(Row("veerunbook --help", "s", samples, reference=reference))
    return rows


def _child_import_ms(ctx: Context, module: str, index: int) -> float:
    # A plain interpreter starts no descendants, so subprocess.run can stop it.
    code = IMPORT_TIMER.format(module=module)
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ctx.work,
        env=ctx.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return float(completed.stdout.strip().splitlines()[-1]) * 1000
