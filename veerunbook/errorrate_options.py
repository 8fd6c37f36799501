"""The inputs and outputs of the high-error-rate ranking: evidence and options.

``Evidence`` collects what the procedure's steps found, and ``RecoveryOption`` is one
action with its score, its rank and the findings for and against it.
``veerunbook.errorrate_recovery`` turns the one into the other.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from veerunbook import metrics
from veerunbook.errorrate_evidence import (
    DeployAlignment,
    align_deploys,
    error_kind,
    error_type,
    new_signatures,
    release_in_stack,
)
from veerunbook.errorrate_resources import Resources
from veerunbook.errorrate_security import FAILED_LOGINS_WARN, BreachEvent
from veerunbook.errorrate_text import BLOCKED_WARNING
from veerunbook.security import SecuritySummary
from veerunbook.triage import ERROR_RATE_WARN

if TYPE_CHECKING:
    from veerunbook.errorrate import HighErrorRate


@dataclass
class Evidence:
    """The findings of the procedure's steps that the ranking reads.

    ``statuses`` counts user requests per HTTP status over the window and
    ``error_kinds`` counts error log entries per kind (code, resource, dependency,
    other). None means that the step could not find out. ``unreachable`` is the
    reason when no request got a response, and then nothing is ranked.
    """

    unreachable: str | None = None
    error_rate: float | None = None
    requests_per_second: float | None = None
    baseline_per_second: float | None = None
    statuses: dict[str, float] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)
    code_error_types: list[str] = field(default_factory=list)
    new_signatures: int | None = None
    release_in_stack: bool = False
    deploy: DeployAlignment | None = None
    resources: Resources | None = None
    security: SecuritySummary | None = None
    failed_logins_minute: int | None = None
    failed_login_sources: int = 0
    breaches: list[BreachEvent] = field(default_factory=list)

    def errors_high(self) -> bool:
        """Return whether the 5xx rate is above the information alert line (0.5 %)."""
        return self.error_rate is not None and self.error_rate > ERROR_RATE_WARN

    def kind_share(self, kind: str) -> float:
        """Return the share of error log entries of ``kind``."""
        total = sum(self.error_kinds.values())
        return self.error_kinds.get(kind, 0) / total if total else 0.0

    def attack_signs(self) -> list[str]:
        """List the findings that point at an attack rather than at users."""
        signs = [event.describe() for event in self.breaches[:2]]
        if (self.failed_logins_minute or 0) >= FAILED_LOGINS_WARN:
            signs.append(
                f"{self.failed_logins_minute} failed logins in the last minute"
            )
        security = self.security
        if security is not None and security.blocked_last_minute > BLOCKED_WARNING:
            signs.append(
                f"{security.blocked_last_minute} IPs blocked in the last minute"
            )
        return signs


@dataclass
class RecoveryOption:
    """One recovery action with its score, rank and the findings for and against."""

    key: str
    action: str
    score: int = 0
    rank: int | None = None
    evidence: list[str] = field(default_factory=list)
    against: list[str] = field(default_factory=list)
    from_runbook: bool = True

    @property
    def confidence(self) -> str:
        """``high`` from 70 points, ``medium`` from 40, ``low`` above 0."""
        if self.score >= 70:
            return "high"
        if self.score >= 40:
            return "medium"
        return "low" if self.score > 0 else "not indicated"

    def add(self, points: int, finding: str) -> None:
        self.score = min(100, self.score + points)
        self.evidence.append(finding)

    def to_row(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "action": self.action,
            "score": self.score,
            "confidence": self.confidence,
            "evidence": "; ".join(self.evidence) or "-",
            "against": "; ".join(self.against) or "-",
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the journal form: ``evidence`` and ``against`` as one line each."""
        return {
            **asdict(self),
            "confidence": self.confidence,
            "evidence": "; ".join(self.evidence) or "none",
            "against": "; ".join(self.against),
        }


def collect_evidence(procedure: HighErrorRate) -> Evidence:
    """Collect the findings of every step that ran into ranking evidence."""
    kinds: Counter[str] = Counter()
    types: Counter[str] = Counter()
    for group in procedure.error_groups:
        kind = error_kind(group)
        kinds[kind] += group.count
        if kind == "code":
            types[error_type(group) or "Error"] += group.count
    groups = procedure.error_groups
    alignment = procedure.alignment or align_deploys([], None, 0.0)
    window = procedure.window
    return Evidence(
        unreachable=procedure.unreachable,
        error_rate=window.rate if window else None,
        requests_per_second=_per_second(window),
        baseline_per_second=_per_second(procedure.lifetime),
        statuses=dict(procedure.statuses),
        error_kinds=dict(kinds),
        code_error_types=[name for name, _ in types.most_common()],
        new_signatures=new_signatures(groups, alignment),
        release_in_stack=release_in_stack(groups, alignment),
        deploy=procedure.alignment,
        resources=procedure.resources,
        security=procedure.security,
        failed_logins_minute=procedure.failed_logins_minute,
        failed_login_sources=procedure.failed_login_sources,
        breaches=list(procedure.breaches),
    )


def _per_second(rate: metrics.ErrorRate | None) -> float | None:
    if rate is None or not rate.window_seconds:
        return None
    return rate.requests / rate.window_seconds
