"""The runbook's recovery actions for performance degradation, ranked by evidence.

Each action collects reasons from the observations, each reason worth 2 points
when it points at the action directly and 1 when it only supports it. Actions with
points are ranked from 1 by points, ties in the runbook's order. Actions without
points get no rank and follow in the runbook's order, and so does every action when
the target was unreachable. Nothing here changes the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from veerunbook import metrics
from veerunbook.perf_routes import INFORMATION_ALERT, WARNING_ALERT, RouteLatency
from veerunbook.text import counted
from veerunbook.triage import MEMORY_FAIL, P95_FAIL_S, P95_WARN_S, POOL_WARN
from veerunbook.webvitals import POOR, Vital

if TYPE_CHECKING:
    import pandas as pd

# The runbook's recovery actions for performance degradation, in its order.
CACHING = "Enable additional caching layers"
DATABASE = "Optimise database queries"
SCALING = "Scale infrastructure resources"
DEGRADATION = "Implement graceful degradation for non-critical features"
ACTIONS = (CACHING, DATABASE, SCALING, DEGRADATION)

# NOTE: the runbook gives no limit for database time. At half of the typical (p50)
# user request, one query or statement outweighs all other work of the request.
DATABASE_SHARE = 0.5

# Vitals that wait for the server's response, which a cache shortens.
_LOADING_VITALS = ("LCP", "FCP", "TTFB")
_CONFIDENCE = ((3, "high"), (2, "medium"), (1, "low"), (0, "no evidence"))
_ALERTS = (WARNING_ALERT, INFORMATION_ALERT)
NO_EVIDENCE = "no evidence in this run"
NOT_ASSESSED = "not assessed: the target sent no response"


@dataclass
class Evidence:
    """The observations of one run that the ranking reads, with None for unknown.

    ``unreachable`` is the diagnosis line for a target that sent no response
    (from :func:`veerunbook.metrics_series.unreachable_line`), else None.
    """

    routes: list[RouteLatency] = field(default_factory=list)
    user_p50_ms: float | None = None
    user_p95_ms: float | None = None
    vitals: list[Vital] = field(default_factory=list)
    pool: metrics.PoolUsage | None = None
    heap_fraction: float | None = None
    database_latency_ms: float | None = None
    slow_statements: list[str] = field(default_factory=list)
    long_queries: int = 0
    unreachable: str | None = None

    def user_routes(self) -> list[RouteLatency]:
        """Return the user routes with requests, slowest p95 first."""
        return [route for route in self.routes if not route.probe and route.requests]

    def slow_routes(self) -> list[RouteLatency]:
        """Return the user routes whose p95 is above the 1500 ms information alert."""
        return [route for route in self.user_routes() if route.alert in _ALERTS]

    def single_slow_route(self) -> RouteLatency | None:
        """Return the only user route above 1500 ms when other user routes are not."""
        slow = self.slow_routes()
        if len(slow) == 1 and len(self.user_routes()) > 1:
            return slow[0]
        return None


@dataclass(frozen=True)
class RecoveryOption:
    """One recovery action with the reasons for it, its points and its rank.

    ``rank`` counts from 1 among the options with evidence. It is None for an option
    without evidence, and for every option when the target was unreachable.
    """

    action: str
    reasons: tuple[str, ...]
    points: int
    rank: int | None = None
    assessed: bool = True  # False when the target sent no response

    @property
    def confidence(self) -> str:
        """The label for the points: high, medium, low or no evidence."""
        return next(label for least, label in _CONFIDENCE if self.points >= least)

    @property
    def evidence(self) -> str:
        """The reasons in one line, or a statement that there are none."""
        if not self.reasons and not self.assessed:
            return NOT_ASSESSED
        return "; ".join(self.reasons) or NO_EVIDENCE

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "action": self.action,
            "evidence": self.evidence,
            "confidence": self.confidence,
            "points": self.points,
            "reasons": list(self.reasons),
        }


def rank_options(evidence: Evidence) -> list[RecoveryOption]:
    """Return every recovery action: ranked ones from 1, then the unranked ones."""
    found = {
        CACHING: _caching(evidence),
        DATABASE: _database(evidence),
        SCALING: _scaling(evidence),
        DEGRADATION: _degradation(evidence),
    }
    scored = [
        RecoveryOption(
            action, tuple(text for text, _ in reasons), sum(p for _, p in reasons)
        )
        for action, reasons in found.items()
    ]
    scored.sort(key=lambda option: (-option.points, ACTIONS.index(option.action)))
    if evidence.unreachable is not None:
        # Without the target's own figures no ranking can be trusted.
        return [
            RecoveryOption(option.action, option.reasons, option.points, None, False)
            for option in sorted(scored, key=lambda item: ACTIONS.index(item.action))
        ]
    supported = [option for option in scored if option.points > 0]
    ranked = [
        RecoveryOption(option.action, option.reasons, option.points, rank)
        for rank, option in enumerate(supported, start=1)
    ]
    return ranked + [option for option in scored if option.points == 0]


def options_frame(options: list[RecoveryOption]) -> pd.DataFrame:
    """Tabulate the options: rank ("-" for none), action, confidence and evidence."""
    import pandas as pd

    rows = [
        {
            "rank": "-" if option.rank is None else option.rank,
            "action": option.action,
            "confidence": option.confidence,
            "evidence": option.evidence,
        }
        for option in options
    ]
    return pd.DataFrame(rows, columns=["rank", "action", "confidence", "evidence"])


_Reasons = list[tuple[str, int]]


def _caching(evidence: Evidence) -> _Reasons:
    reasons: _Reasons = []
    reads = [route for route in evidence.slow_routes() if route.is_read]
    if reads:
        listed = ", ".join(f"{route.route} {route.p95_ms:.0f} ms" for route in reads)
        reasons.append((f"read routes with p95 above 1500 ms: {listed}", 2))
    poor = [
        vital
        for vital in evidence.vitals
        if vital.limit.name in _LOADING_VITALS and vital.rating == POOR
    ]
    if poor:
        listed = ", ".join(f"{vital.limit.name} {vital.value:.0f} ms" for vital in poor)
        reasons.append((f"page loading rated poor: {listed}", 1))
    return reasons


def _database(evidence: Evidence) -> _Reasons:
    reasons: _Reasons = []
    if evidence.slow_statements:
        statements = counted(len(evidence.slow_statements), "slow statement")
        slowest = evidence.slow_statements[0]
        reasons.append((f"{statements}, slowest: {slowest}", 2))
    if evidence.long_queries:
        queries = counted(
            evidence.long_queries,
            "long-running active query",
            "long-running active queries",
        )
        reasons.append((queries, 2))
    latency, p50 = evidence.database_latency_ms, evidence.user_p50_ms
    if latency is not None and p50 and latency >= DATABASE_SHARE * p50:
        reasons.append(
            (
                f"the database query takes {latency:.0f} ms, at least half of the"
                f" user p50 of {p50:.0f} ms",
                2,
            )
        )
    return reasons


def _scaling(evidence: Evidence) -> _Reasons:
    reasons: _Reasons = []
    pool = evidence.pool
    utilisation = pool.utilisation if pool is not None else None
    if pool is not None and utilisation is not None and utilisation > POOL_WARN:
        reasons.append(
            (
                f"connection pool at {utilisation * 100:.0f} % ({pool.active:g} of"
                f" {pool.max:g}), {counted(pool.waiting or 0, 'request')} waiting",
                2,
            )
        )
    heap = evidence.heap_fraction
    if heap is not None and heap > MEMORY_FAIL:
        reasons.append(
            (
                f"heap at {heap * 100:.0f} % of its limit, above the warning alert"
                " line (85 % for 10 min)",
                2,
            )
        )
    # A slowdown spread over routes points at shared capacity, not at one feature.
    slow, routes = evidence.slow_routes(), evidence.user_routes()
    if len(slow) >= 2:
        users = counted(len(routes), "user route")
        reasons.append((f"p95 above 1500 ms on {len(slow)} of {users}", 2))
    return reasons


def _degradation(evidence: Evidence) -> _Reasons:
    route = evidence.single_slow_route()
    if route is None:
        return []
    others = len(evidence.user_routes()) - 1
    below = "is" if others == 1 else "are"
    text = (
        f"only {route.route} is above 1500 ms (p95 {route.p95_ms:.0f} ms), the"
        f" other {counted(others, 'user route')} {below} below"
    )
    if route.time_share is not None:
        text += f", and it takes {route.time_share * 100:.0f} % of user request time"
    return [(text, 2)]


def diagnose(evidence: Evidence, options: list[RecoveryOption]) -> str:
    """Return one line: the slowdown and where it is, or why none was measured."""
    if evidence.unreachable is not None:
        return evidence.unreachable
    p95 = evidence.user_p95_ms
    poor = [vital.limit.name for vital in evidence.vitals if vital.rating == POOR]
    vitals = f"; web vitals rated poor: {', '.join(poor)}" if poor else ""
    if p95 is None:
        return f"latency unknown: no user request was timed in the window{vitals}"
    slow = evidence.slow_routes()
    if p95 <= P95_WARN_S * 1000 and not slow and not poor:
        text = f"no slowdown: user p95 {p95:.0f} ms, no route above 1500 ms"
    else:
        text = f"slowdown: user p95 {p95:.0f} ms, {_level(p95)}"
    if slow:
        routes = counted(len(evidence.user_routes()), "route")
        text += f"; slowest {slow[0].route} at {slow[0].p95_ms:.0f} ms"
        text += f", {len(slow)} of {routes} above 1500 ms"
    text += vitals
    best = options[0] if options and options[0].rank == 1 else None
    if best is not None:
        text += f". First option: {best.action} ({best.confidence} confidence)"
    return text


def _level(p95_ms: float) -> str:
    if p95_ms > P95_FAIL_S * 1000:
        return "above the warning alert line (p95 2000 ms for 5 min)"
    if p95_ms > P95_WARN_S * 1000:
        return "above the information alert line (p95 1500 ms for 15 min)"
    return "below both alert lines"
