"""Peak memory of an unattended alert check: the runner and its kernel together.

Each repetition runs ``veerunbook run alert-check`` twice against the embedded target
with ``sample_seconds`` 1. The first check starts from a fresh archive, so it scrapes
twice. The second reuses that archive and scrapes once, computing rates against the
stored scrape as a scheduler's check every interval does. Every 20 ms the sampler
sums RSS, USS and PSS over the runner and all its descendants. The verdict uses the
RSS sum, which counts shared pages once per process and so overstates the tree's
real footprint. PSS and USS are shown for information.
"""

from __future__ import annotations

from common import MB, Context, Goal, Row
from engine import RUN_CODES, RUN_TIMEOUT
from processes import TreePeak, sample_tree

LIMIT_MB = 250.0


def alert_check_memory(ctx: Context) -> list[Row]:
    """Measure the peak memory of a first and of a second alert check."""
    veerunbook = ctx.tool("veerunbook")
    peaks: dict[str, list[TreePeak]] = {"first": [], "second": []}
    for index in range(ctx.repeats + 1):
        label = " (warm-up)" if index == 0 else ""
        ctx.say(f"pair of checks {index + 1} of {ctx.repeats + 1}{label} ...")
        archive = ctx.folder(f"alert-check-{index}")
        argv = [str(veerunbook), "run", "alert-check", "--target", ctx.target_url]
        argv += ["-p", "sample_seconds", "1", "--archive", str(archive)]
        for check in ("first", "second"):
            peak = sample_tree(
                argv,
                env=ctx.env(),
                cwd=ctx.work,
                timeout=RUN_TIMEOUT,
                ok_codes=RUN_CODES,
            )
            if index > 0:
                peaks[check].append(peak)

    rows = []
    for check, samples in peaks.items():
        name = f"alert-check {check} check"
        rss = [peak.rss / MB for peak in samples]
        pss = [peak.pss / MB for peak in samples]
        uss = [peak.uss / MB for peak in samples]
        goal = Goal("<", LIMIT_MB, on="median")
        rows.append(Row(f"{name}, RSS sum", "MB", rss, goal=goal))
        rows.append(Row(f"{name}, PSS sum", "MB", pss))
        rows.append(Row(f"{name}, USS sum", "MB", uss))
    return rows
