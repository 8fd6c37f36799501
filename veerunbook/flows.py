"""Synthetic requests for a target's critical user flows.

Flows run in the configured order. When a flow's JSON response contains a ``token`` or
``accessToken`` (a login), later flows send it as a bearer token. The token is added to
the session's redactor, so it is masked like any configured secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from veerunbook.config import UserFlow
from veerunbook.probe import ProbeResult

if TYPE_CHECKING:
    from veerunbook.session import Session

_TOKEN_KEYS = ("token", "accessToken", "access_token")


@dataclass
class FlowResult:
    """Outcome of one user flow."""

    flow: UserFlow
    result: ProbeResult
    ok: bool

    @property
    def is_auth(self) -> bool:
        """True for a login or other authentication flow."""
        return self.flow.name.lower() == "login" or "/auth" in self.flow.path

    def to_row(self) -> dict[str, Any]:
        return {
            "flow": self.flow.name,
            "request": f"{self.flow.method} {self.flow.path}",
            "critical": self.flow.critical,
            "HTTP": self.result.http_status,
            "expected": self.flow.expect_status,
            "latency ms": self.result.latency_ms,
            "result": "pass" if self.ok else "fail",
            "reason": ""
            if self.ok
            else (self.result.error or self.result.excerpt[:80]),
        }


def run_user_flows(session: Session) -> list[FlowResult]:
    """Run every configured flow, journal each as a check and return the results."""
    results = []
    headers: dict[str, str] = {}
    login_failed: str | None = None
    for flow in session.target.user_flows:
        if login_failed is not None:
            session.run.check(
                f"user flow: {flow.name}",
                "skip",
                summary=f"not sent: the {login_failed!r} flow failed, so the request "
                "would only be rejected as unauthenticated",
            )
            continue
        result = session.probe(
            flow.path,
            name=f"user flow: {flow.name}",
            expect="json",
            method=flow.method,
            json_body=flow.body(),
            headers=headers,
            record=False,
        )
        ok = result.http_status == flow.expect_status
        _remember_token(session, result, headers)
        status = "pass" if ok else "fail"
        if not ok and result.status == "error":
            status = "error"
        session.run.check(
            f"user flow: {flow.name}",
            status,
            observed=result.http_status,
            expected=flow.expect_status,
            unit="HTTP status",
            evidence={"latency_ms": result.latency_ms, "excerpt": result.excerpt},
            summary=f"{flow.method} {flow.path} answered {result.http_status}",
        )
        results.append(FlowResult(flow, result, ok))
        if not ok and results[-1].is_auth:
            login_failed = flow.name
    return results


def _remember_token(
    session: Session, result: ProbeResult, headers: dict[str, str]
) -> None:
    body = result.json
    if not isinstance(body, dict):
        return
    token = next(
        (body[key] for key in _TOKEN_KEYS if isinstance(body.get(key), str)), None
    )
    if token:
        session.redactor.add(token)
        headers["Authorization"] = f"Bearer {token}"
