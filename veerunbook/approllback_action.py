"""The rollback as a guarded action: read the running version, roll back, verify.

The change runs through the target's ``deploy_rollback`` command, such as
``npm run deploy:rollback -- {version}``, with ``{version}`` filled in. A target
without that command is rolled back through ``POST /admin/deploy/rollback`` with
``{"version": ...}`` and the bearer token from the variable ``admin_token_env``
names. Without either, the action is refused. The demo target has the command:
``python -m veerunbook.simulator.ops --data-dir DIR deploy-rollback {version}``.

The state the action changes is the running version: ``current`` of the
deployment history, else the newest deployment that was not rolled back or failed,
else the ``version`` of the health body. The action is done when the running version
is the chosen one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from veerunbook.actions import Action, Outcome, Precondition, Verification
from veerunbook.approllback_choice import Choice
from veerunbook.approllback_versions import HISTORY_LIMIT, parse_deployments
from veerunbook.errors import VeerunbookError
from veerunbook.shell import configured_command, run_command
from veerunbook.text import clipped

if TYPE_CHECKING:
    from veerunbook.session import Session

ACTION_NAME = "deploy-rollback"
COMMAND_ROLE = "deploy_rollback"
ADMIN_ROLLBACK_PATH = "/admin/deploy/rollback"
# Characters of the command's output kept in the journal, from its end.
OUTPUT_KEPT = 2000
# Characters of the output's last line that the action's detail quotes.
LAST_LINE_CHARS = 200


def rollback_method(session: Session) -> tuple[str, str]:
    """Return the rollback method and its detail.

    The pair is ("command", template), ("admin endpoint", path), or ("", why neither
    is available).
    """
    template = configured_command(session, COMMAND_ROLE)
    if template:
        return "command", template
    variable = session.target.admin_token_env
    if os.environ.get(variable):
        return "admin endpoint", ADMIN_ROLLBACK_PATH
    return "", (
        f"target {session.target.name!r} has no {COMMAND_ROLE} command in"
        f" [targets.{session.target.name}.commands] and ${variable} is not set"
        f" for POST {ADMIN_ROLLBACK_PATH}; configure one of them"
    )


def rollback_action(session: Session, choice: Choice, timeout_s: float) -> Action:
    """Build the action that rolls the target back to ``choice.version``."""
    version = choice.version or ""
    method, detail = rollback_method(session)
    if method == "command":
        means = f"with the {COMMAND_ROLE} command"
    elif method:
        means = f"through POST {detail}"
    else:
        means = "(no rollback method is configured)"
    running = session.target.name
    return Action(
        name=ACTION_NAME,
        timeout_s=timeout_s,
        intent=f"Roll {running} back to version {version} {means}, because"
        f" {choice.reason or 'no version was chosen'}.",
        params={"version": version, "method": method, "chosen_by": choice.by},
        read_state=lambda: read_running_version(session),
        execute=_executor(session, version, method, detail, timeout_s),
        verify=lambda before, after, outcome: _verify(version, after),
        preconditions=(
            _version_chosen(choice),
            lambda: Precondition("rollback method", bool(method), detail),
        ),
        already_done=lambda before: before.get("version") == version,
    )


def _version_chosen(choice: Choice) -> Callable[[], Precondition]:
    def check() -> Precondition:
        detail = choice.reason if choice.version is None else choice.version
        return Precondition("version chosen", choice.version is not None, detail)

    return check


def read_running_version(session: Session) -> dict[str, Any]:
    """Return ``{"version", "source"}`` of the running version.

    Raises VeerunbookError when neither the deployment history nor the health body
    names one.
    """
    history = session.probe(
        "deployments",
        name="running version",
        expect="json",
        query=f"limit={HISTORY_LIMIT}",
        record=False,
    )
    parsed = parse_deployments(history.json) if history.http_status == 200 else None
    if parsed is not None and parsed[1]:
        return {"version": parsed[1], "source": "deployment history"}
    health = session.probe("health", name="running version", record=False)
    body = health.json
    if isinstance(body, dict) and isinstance(body.get("version"), str):
        return {"version": clipped(body["version"]), "source": "health body"}
    raise VeerunbookError(
        "the running version is unknown: the deployment history gave"
        f" {history.summary()!r} and the health body names no version"
    )


def _executor(
    session: Session, version: str, method: str, detail: str, timeout_s: float
) -> Callable[[], Outcome]:
    def by_command() -> Outcome:
        result = run_command(
            detail,
            values={"version": version},
            timeout_s=timeout_s,
            redactor=session.redactor,
        )
        data = {
            "method": method,
            "command": result.command,
            "exit_code": result.exit_code,
            "duration_s": result.duration_s,
            "stdout": result.stdout[-OUTPUT_KEPT:],
            "stderr": result.stderr[-OUTPUT_KEPT:],
        }
        last = (result.stderr or result.stdout).strip().splitlines()[-1:]
        # The detail continues after this line, so its own full stop is dropped.
        line = last[0].rstrip(" .") if last else ""
        message = f": {clipped(line, LAST_LINE_CHARS)}" if line else ""
        return Outcome(
            result.ok, f"the rollback command {result.summary()}{message}", data
        )

    def by_endpoint() -> Outcome:
        token = os.environ.get(session.target.admin_token_env, "")
        result = session.probe(
            detail,
            name="rollback request",
            expect="json",
            method="POST",
            json_body={"version": version},
            headers={"Authorization": f"Bearer {token}"},
            record=False,
        )
        ok = result.http_status == 200
        data: dict[str, Any] = {"method": method, "http_status": result.http_status}
        if isinstance(result.json, Mapping):
            data["response"] = dict(result.json)
        text = f"POST {detail} answered {result.http_status or result.error}"
        if not ok and result.excerpt:
            text += f": {result.excerpt}"
        return Outcome(ok, text, data)

    return by_command if method == "command" else by_endpoint


def _verify(version: str, after: Mapping[str, Any]) -> Verification:
    running = after.get("version")
    source = after.get("source", "the target")
    if running == version:
        return Verification(True, f"{version} is running, by the {source}")
    return Verification(False, f"{running} is running, not {version}, by the {source}")
