"""Application traffic around a database restore: the mode, the measurement, the stages.

The traffic mode is read from the ``maintenance`` field of the target's health
body: ``{"mode": ..., "since": ...}`` as the demo service reports it, or a plain
text. It is set with the target's ``traffic`` command (its ``{mode}`` placeholder)
when one is configured, else with ``POST /admin/traffic {"mode": ...}`` and the
bearer token from the target's ``admin_token_env``.

Stopped traffic is measured rather than assumed: ``measure`` counts the user
requests (health checks and metrics scrapes left out) between two metrics scrapes
``window_seconds`` apart. Traffic counts as stopped when there were none, or when
the target reports the mode ``stopped``, because a refused request still counts.

The runbook resumes in stages, and ``check_stage`` checks each: after
``health-only`` the health and readiness endpoints return 2xx, after ``read-only``
the GET user flows do (after the login flow), and after ``full`` a POST user flow
does. For that stage the flows that ask for a dry run (``"dryRun": true``) are
sent when there are any, because they exercise the write path without storing
anything. Without such flows, every POST flow but the login is sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from veerunbook.actions import Outcome, Verification
from veerunbook.config import UserFlow
from veerunbook.metrics import error_rate
from veerunbook.metrics_series import sample_series, session_fetch
from veerunbook.probe import ProbeResult
from veerunbook.session import Session
from veerunbook.shell import configured_command, fill_template, run_command
from veerunbook.text import counted

STOPPED = "stopped"
STAGES = ("health-only", "read-only", "full")
TRAFFIC_PATH = "/admin/traffic"
_TOKEN_KEYS = ("token", "accessToken", "access_token")


@dataclass(frozen=True)
class TrafficReading:
    """User requests over a window and the reported mode; None where unknown."""

    requests: float | None
    mode: str | None
    window_seconds: float
    problem: str | None = None
    routes: dict[str, float] = field(default_factory=dict)

    @property
    def stopped(self) -> bool:
        """Whether traffic counts as stopped: reported so, or no user request."""
        return self.mode == STOPPED or self.requests == 0

    def summary(self) -> str:
        """Describe the reading in one line."""
        mode = f"mode {self.mode}" if self.mode else "no traffic mode reported"
        if self.requests is None:
            counted_text = f"user requests not measured ({self.problem})"
        else:
            counted_text = (
                f"{counted(self.requests, 'user request')} in {self.window_seconds:g} s"
            )
        return f"{counted_text}; {mode}"


def read_mode(session: Session) -> dict[str, Any]:
    """Return the reported traffic mode; raise ConnectionError without a response."""
    result = session.probe("health", name="traffic mode", record=False)
    if result.http_status is None:
        raise ConnectionError(f"the health endpoint did not respond: {result.error}")
    mode, since = _maintenance(result)
    return {"mode": mode, "since": since, "reported": mode is not None}


def set_mode(session: Session, mode: str, timeout_s: float) -> Outcome:
    """Switch the traffic mode with the ``traffic`` command or the admin endpoint."""
    template = configured_command(session, "traffic")
    if template:
        return _set_by_command(session, template, mode, timeout_s)
    return _set_by_endpoint(session, mode)


def resume_command(session: Session) -> str:
    """Return how an operator switches the traffic back to full by hand."""
    template = configured_command(session, "traffic")
    if template:
        try:
            command = fill_template(template, {"mode": "full"})
        except ValueError:
            command = template
        return f"run the target's traffic command: {session.redactor.mask(command)}"
    path = session.target.endpoints.get("traffic", TRAFFIC_PATH)
    variable = session.target.admin_token_env
    return f'POST {path} {{"mode": "full"}} with the bearer token in ${variable}'


def _set_by_command(
    session: Session, template: str, mode: str, timeout_s: float
) -> Outcome:
    result = run_command(
        template, values={"mode": mode}, timeout_s=timeout_s, redactor=session.redactor
    )
    last = result.stderr.strip().splitlines()[-1:] or [""]
    detail = f"traffic command {result.summary()}"
    if not result.ok and last[0]:
        detail += f": {last[0]}"
    return Outcome(result.ok, detail, {"command": result.to_dict()})


def _set_by_endpoint(session: Session, mode: str) -> Outcome:
    variable = session.target.admin_token_env
    token = os.environ.get(variable, "")
    if not token:
        return Outcome(
            False,
            f"no traffic command is configured and ${variable} is not set, so "
            f"{TRAFFIC_PATH} cannot be called; stop the traffic at the load balancer",
        )
    path = session.target.endpoints.get("traffic", TRAFFIC_PATH)
    result = session.probe(
        path,
        name=f"traffic mode {mode}",
        expect="json",
        method="POST",
        json_body={"mode": mode},
        headers={"Authorization": f"Bearer {token}"},
        record=False,
    )
    ok = result.http_status == 200
    detail = f"POST {path} answered {result.http_status or result.error}"
    if not ok and isinstance(result.json, dict) and result.json.get("error"):
        detail += f": {result.json['error']}"
    return Outcome(ok, detail, {"http_status": result.http_status})


def measure(
    session: Session,
    window_seconds: float,
    progress: Callable[[str], None] | None = print,
) -> TrafficReading:
    """Count the user requests over ``window_seconds`` and read the mode."""
    series = sample_series(
        session_fetch(session, record=False),
        window_seconds=window_seconds,
        samples=1,
        progress=progress,
    )
    try:
        mode = read_mode(session)["mode"]
    except ConnectionError:
        mode = None
    scrapes = [sample.scrape for sample in series if sample.scrape is not None]
    if len(scrapes) < 2:
        problems = [sample.problem for sample in series if sample.problem]
        problem = problems[0] if problems else "fewer than two metrics scrapes"
        return TrafficReading(None, mode, window_seconds, problem)
    rate = error_rate(scrapes[0], scrapes[-1])
    routes = {
        f"{route.method or ''} {route.route}".strip(): route.requests
        for route in rate.routes
        if not route.probe and route.requests
    }
    return TrafficReading(rate.requests, mode, window_seconds, routes=routes)


def check_stage(session: Session, stage: str) -> Verification:
    """Send the requests that show ``stage`` works; journal each as a check."""
    if stage == "health-only":
        results = [
            _send(session, stage, "health", "GET", None, {}),
            _send(session, stage, "readyz", "GET", None, {}),
        ]
        failed = [line for ok, line in results if not ok]
        return Verification(not failed, _verdict(stage, results, failed))
    flows = _stage_flows(session.target.user_flows, stage)
    if not flows:
        detail = f"no {_kind(stage)} user flow is configured, so only the mode is known"
        return Verification(True, detail)
    headers: dict[str, str] = {}
    results = []
    for flow in flows:
        ok, line = _send(
            session, stage, flow.path, flow.method, flow.body(), headers, flow
        )
        results.append((ok, line))
        if not ok and _is_login(flow):
            break
    failed = [line for ok, line in results if not ok]
    return Verification(not failed, _verdict(stage, results, failed))


def _stage_flows(flows: tuple[UserFlow, ...], stage: str) -> list[UserFlow]:
    logins = [flow for flow in flows if _is_login(flow)]
    others = [flow for flow in flows if not _is_login(flow)]
    if stage == "read-only":
        chosen = [flow for flow in others if flow.method == "GET"]
    else:
        posts = [flow for flow in others if flow.method == "POST"]
        dry = [flow for flow in posts if _asks_dry_run(flow)]
        chosen = dry or posts
    return logins + chosen if chosen else []


def _send(
    session: Session,
    stage: str,
    endpoint: str,
    method: str,
    body: Any,
    headers: dict[str, str],
    flow: UserFlow | None = None,
) -> tuple[bool, str]:
    name = flow.name if flow else endpoint
    result = session.probe(
        endpoint,
        name=f"resume {stage}: {name}",
        expect="json" if flow else "health",
        method=method,
        json_body=body,
        headers=dict(headers),
        record=False,
    )
    expected = flow.expect_status if flow else None
    status = result.http_status
    ok = status == expected if expected else status is not None and status < 300
    _remember_token(session, result, headers)
    line = f"{method} {urlsplit(result.url).path} answered {status or result.error}"
    session.run.check(
        f"resume {stage}: {name}",
        "pass" if ok else "fail",
        observed=status,
        unit="HTTP status",
        expected=expected or "2xx",
        evidence={"latency_ms": result.latency_ms, "excerpt": result.excerpt},
        summary=session.redactor.mask(line),
    )
    return ok, session.redactor.mask(line)


def _verdict(stage: str, results: list[tuple[bool, str]], failed: list[str]) -> str:
    if failed:
        return f"{stage} check failed: {'; '.join(failed)}"
    return f"{stage} works: {counted(len(results), 'request')} answered as expected"


def _kind(stage: str) -> str:
    return "GET" if stage == "read-only" else "POST"


def _is_login(flow: UserFlow) -> bool:
    return flow.name.lower() == "login" or "/auth" in flow.path


def _asks_dry_run(flow: UserFlow) -> bool:
    return isinstance(flow.json, dict) and flow.json.get("dryRun") is True


def _maintenance(result: ProbeResult) -> tuple[str | None, str | None]:
    body = result.json if isinstance(result.json, dict) else {}
    field_value = body.get("maintenance")
    if isinstance(field_value, dict) and isinstance(field_value.get("mode"), str):
        since = field_value.get("since")
        return field_value["mode"], since if isinstance(since, str) else None
    if isinstance(field_value, str) and field_value:
        return field_value, None
    return None, None


def _remember_token(
    session: Session, result: ProbeResult, headers: dict[str, str]
) -> None:
    body = result.json if isinstance(result.json, dict) else {}
    token = next((body[k] for k in _TOKEN_KEYS if isinstance(body.get(k), str)), None)
    if token:
        session.redactor.add(token)
        headers["Authorization"] = f"Bearer {token}"
