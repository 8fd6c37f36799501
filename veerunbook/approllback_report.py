"""The diagnosis line and the recovery options of the application-rollback procedure.

The diagnosis states in one line what was found and what was done, or would be
done in a confirmed run. The recovery options are the runbook's next actions around a
rollback: the rollback itself, fixing forward the release the errors started with,
and the high-error-rate procedure when the errors did not come with a deployment or
returned after the rollback. Only an option with evidence for it gets a rank.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from veerunbook.actions import confirm_flags
from veerunbook.approllback_watch import NOT_HELD

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.approllback import ApplicationRollback
    from veerunbook.record import RunContext

# The order of the check statuses in the summary table: the worst first.
STATUS_ORDER = {"fail": 0, "error": 1, "warn": 2, "skip": 3, "pass": 4}


@dataclass
class RecoveryOption:
    """One of the runbook's actions, with the evidence for it and its rank."""

    key: str
    action: str
    evidence: str
    rank: int | None = None


def diagnosis(rollback: ApplicationRollback) -> str:
    """Return what the run found and did, in one line."""
    if rollback.unreachable is not None:
        return f"{rollback.unreachable}; nothing was rolled back"
    choice, result = rollback.choice, rollback.result
    if choice is None or result is None:
        return "the procedure stopped before the rollback step"

    # No version: the reason is the diagnosis.
    suspect = choice.suspect
    cause = f"the errors started with {suspect.version}; " if suspect else ""
    if choice.version is None:
        reason = choice.reason
        if not reason.startswith("nothing to roll back"):
            reason = f"no rollback: {reason}"
        return f"{cause}{reason}"

    # A version was chosen: what the action did with it.
    version = choice.version
    if result.mode == "dry-run":
        minutes = rollback.monitor_minutes
        watch = "" if minutes is None else f", which then watches for {minutes:g} min"
        flags = confirm_flags(rollback.guard.incident_id)
        return (
            f"{cause}would roll back to {version} (chosen by {choice.by}); dry-run,"
            f" nothing was changed: run with {flags}{watch}"
        )
    if result.mode == "already-done":
        now = rollback.baseline.text() if rollback.baseline else "no baseline"
        return f"{version} is running already, so nothing was rolled back; now: {now}"
    if result.mode == "executed":
        before = (result.before or {}).get("version", "?")
        if rollback.watched is None:
            watched = "fewer than two metrics scrapes succeeded"
        else:
            watched = rollback.watched.brief()
        return f"rolled back from {before} to {version}; {rollback.verdict}: {watched}"
    outcome = {"refused": "was refused", "failed": "failed"}.get(
        result.mode, f"ended {result.mode}"
    )
    return f"{cause}the rollback to {version} {outcome}: {result.detail}"


def recovery_options(rollback: ApplicationRollback) -> pd.DataFrame:
    """Rank the options by the evidence, journal them as a note and tabulate them."""
    import pandas as pd

    options = _options(rollback)
    unranked = len(options) + 1
    rank = 0
    for option in options:
        if option.evidence != "none":
            rank += 1
            option.rank = rank
    options.sort(key=lambda option: option.rank or unranked)
    ranked = [option for option in options if option.rank is not None]
    if ranked:
        text = "recovery options ranked: " + ", ".join(
            f"{option.rank}. {option.action}" for option in ranked
        )
    else:
        text = "no recovery option ranked: no finding supports one"
    rows = [asdict(option) for option in options]
    rollback.session.run.note(text, recovery_options=rows)
    print(text)
    return pd.DataFrame(rows).astype({"rank": "Int64"})


def _options(rollback: ApplicationRollback) -> list[RecoveryOption]:
    choice, result = rollback.choice, rollback.result
    mode = result.mode if result else None
    version = choice.version if choice else None
    suspect = choice.suspect if choice else None
    options = []

    evidence = "none"
    if version and mode in ("dry-run", "executed", "failed"):
        evidence = choice.reason if choice else "none"
    action = f"roll back to {version}" if version else "roll back the deployment"
    options.append(RecoveryOption("rollback", action, evidence))

    evidence = "none"
    if suspect is not None and version:
        evidence = f"the errors started with {suspect.version}"
    release = suspect.version if suspect else "the release"
    action = f"fix forward: correct {release} and deploy a new release"
    options.append(RecoveryOption("fix", action, evidence))

    evidence = "none"
    if rollback.verdict == NOT_HELD:
        evidence = "the errors or the latency stayed high after the rollback"
    elif choice is not None and choice.version is None and choice.status == "warn":
        evidence = choice.reason
    action = "run high-error-rate to find the cause of the errors"
    options.append(RecoveryOption("investigate", action, evidence))
    if rollback.verdict == NOT_HELD:
        # Errors that outlast the rollback did not come with the release alone.
        options.insert(0, options.pop())
    return options


def checks_table(run: RunContext) -> pd.DataFrame:
    """Tabulate every check of the run, worst first, with "" for a missing value."""
    checks = run.checks_frame()
    if checks.empty:
        return checks
    checks = checks.assign(_order=checks["status"].map(STATUS_ORDER))
    checks = checks.sort_values(["_order", "time"]).drop(columns="_order")
    text = ["observed", "unit", "expected"]
    checks[text] = checks[text].astype(object).where(checks[text].notna(), "")
    # A column with a missing value turns whole numbers into floats: 200 -> 200.0.
    checks["observed"] = checks["observed"].map(_whole)
    return checks.reset_index(drop=True)


def _whole(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
