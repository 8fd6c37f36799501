"""The database health endpoint: one probe, the reachability decision, the body.

``probe_endpoint`` probes the target's ``database`` endpoint. When no response comes
back (connection refused, DNS failure, timeout or another network error), the
metrics sampler of ``veerunbook.metrics_series`` decides whether the target is
unreachable. It scrapes once and retries once a few seconds later, because a
refused connection is refused again within a millisecond. An unreachable target is
journaled as one ``error`` check, so that the later steps can skip with that
reason. ``pool_figures`` and ``check_integrity`` read the body that the endpoint
returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from veerunbook.metrics_series import (
    sample_series,
    session_fetch,
    unreachable_line,
    unreachable_reason,
)
from veerunbook.triage_signals import data_corruption

if TYPE_CHECKING:
    from veerunbook.probe import ProbeResult
    from veerunbook.session import Session

# Probe errors that mean no HTTP response came back at all.
NO_RESPONSE_KINDS = ("connection refused", "timeout", "dns", "network")
# Pool figure names of the health body: the application's own and pg-pool's.
_POOL_KEYS = {
    "total": ("total", "totalCount"),
    "active": ("active", "activeCount", "used"),
    "idle": ("idle", "idleCount"),
    "waiting": ("waiting", "waitingCount"),
    "max": ("max", "maxCount", "size"),
}


@dataclass(frozen=True)
class EndpointResult:
    """The endpoint's probe and, for an unreachable target, why and where.

    ``unreachable`` is the sampler's reason ("connection refused") and ``url`` the
    target's masked base URL. Both are None when the target responded.
    """

    probe: ProbeResult
    unreachable: str | None = None
    url: str | None = None


def no_response(result: ProbeResult) -> bool:
    """Return whether the probe got no HTTP response at all."""
    return result.status == "error" and result.error_kind in NO_RESPONSE_KINDS


def probe_endpoint(
    session: Session, progress: Callable[[str], None] | None = print
) -> EndpointResult:
    """Probe the database endpoint and journal it, or journal the target unreachable."""
    first = session.probe("database", name="database endpoint", record=False)
    if not no_response(first):
        session.run.record_probe(first)
        return EndpointResult(first)

    # No response: a metrics scrape and its one retry decide.
    if progress is not None:
        progress(f"no response from the database endpoint ({_sentence(first.error)})")
    fetch = session_fetch(session, record=False)
    series = sample_series(fetch, window_seconds=0.0, samples=1, progress=progress)
    reason = unreachable_reason(series)
    if reason is None:
        session.run.record_probe(first)
        return EndpointResult(first)
    url = session.redactor.mask(session.target.base_url or "-")
    session.run.check(
        "target",
        "error",
        observed=reason,
        evidence={
            "database endpoint": first.to_dict(),
            "metrics scrapes": [sample.problem for sample in series],
        },
        summary=unreachable_line(reason, url),
    )
    return EndpointResult(first, reason, url)


def _sentence(text: str | None) -> str:
    return (text or "no response").rstrip(".")


def pool_figures(body: dict[str, Any]) -> dict[str, float]:
    """Return the pool figures of a database health body, by ``_POOL_KEYS`` name."""
    pool = body.get("pool") or body.get("connections")
    if not isinstance(pool, dict):
        return {}
    figures = {}
    for name, keys in _POOL_KEYS.items():
        value = first_value(pool, keys)
        if isinstance(value, int | float) and not isinstance(value, bool):
            figures[name] = float(value)
    return figures


def first_value(body: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """Return the value of the first of ``keys`` that ``body`` contains, or None."""
    return next((body[key] for key in keys if key in body), None)


def check_integrity(session: Session, result: ProbeResult) -> str | None:
    """Journal the integrity that the endpoint reports; return the failure, if any.

    Only an integrity check that ran and passed is a pass. One that the endpoint
    skipped (its database unreachable) or reported without a status is a skip.
    """
    body = result.json if isinstance(result.json, dict) else {}
    problem = data_corruption({"database": result})
    if "integrity" not in body and problem is None:
        return None
    integrity = body.get("integrity")
    word = integrity_word(body)
    if problem:
        status, summary = "fail", problem
    elif word == "pass":
        status, summary = "pass", "the database endpoint reports its data valid"
    else:
        detail = integrity.get("detail") if isinstance(integrity, dict) else None
        status = "skip"
        summary = f"the database endpoint did not check integrity ({word or '-'})"
        if detail:
            summary += f": {detail}"
    session.run.check(
        "data integrity (endpoint)", status, evidence=integrity, summary=summary
    )
    return problem


def integrity_word(body: dict[str, Any]) -> str:
    """Return the integrity status of a health body ("pass", "fail", ...) or ""."""
    integrity = body.get("integrity")
    if not isinstance(integrity, dict):
        return ""
    return str(integrity.get("status", "")).lower()
