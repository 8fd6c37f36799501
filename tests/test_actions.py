"""Guarded actions against a real loopback service whose block list is the state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from targetstate import difference, snapshot

from veerunbook.actions import (
    CONFIRM_PARAM,
    Action,
    ActionResult,
    Guard,
    Outcome,
    Precondition,
    Verification,
    actions_frame,
    perform,
)
from veerunbook.journal import Journal
from veerunbook.record import RUN_ID_ENV
from veerunbook.session import Session, begin
from veerunbook.shell import configured_command
from veerunbook.simulator import RunningTarget, start_target
from veerunbook.verify import verify

INCIDENT = "INC-ACT-1"
TOKEN = "vbtok_5e4d3c2b1a09f8e7d6c5b4a39281706f"
ADDRESS = "203.0.113.7"


class BlockListService:
    """A loopback HTTP service holding a block list, changed only with the token."""

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self.changes = 0
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with service.lock:
                    body = {"blocked": list(service.blocked), "token": TOKEN}
                self._send(200, body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._send(401, {"error": "Unauthorized"})
                    return
                with service.lock:
                    service.changes += 1
                    if request["ip"] not in service.blocked:
                        service.blocked.append(request["ip"])
                self._send(200, {"ip": request["ip"]})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def service() -> Iterator[BlockListService]:
    running = BlockListService()
    yield running
    running.stop()


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return tmp_path / "archive"


@pytest.fixture
def session(
    service: BlockListService,
    archive: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Session]:
    config = tmp_path / "veerunbook.toml"
    config.write_text(
        f'[targets.svc]\nbase_url = "{service.url}"\n'
        '[targets.svc.commands]\ndeploy_rollback = "echo rollback {version}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("VEERUNBOOK_CONFIG", str(config))
    monkeypatch.setenv("VEEFORE_ADMIN_TOKEN", TOKEN)
    monkeypatch.delenv(RUN_ID_ENV, raising=False)
    opened = begin("block-test", incident=INCIDENT, target="svc", archive=str(archive))
    yield opened
    opened.close()


def read_state(service: BlockListService) -> dict[str, Any]:
    response = httpx.get(f"{service.url}/state", timeout=5)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def block_action(service: BlockListService, **changes: Any) -> Action:
    """The action under test: add ADDRESS to the service's block list."""

    def execute() -> Outcome:
        response = httpx.post(
            f"{service.url}/block",
            json={"ip": ADDRESS},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        return Outcome(response.status_code == 200, f"HTTP {response.status_code}")

    def verify(before: Any, after: Any, outcome: Outcome) -> Verification:
        blocked = ADDRESS in after["blocked"]
        return Verification(blocked, f"{ADDRESS} blocked: {blocked}")

    action = Action(
        name="block-ip",
        intent=f"Block {ADDRESS}, the source of the failed logins.",
        params={"ip": ADDRESS, "admin_token": TOKEN, "note": f"seen with {TOKEN}"},
        read_state=lambda: read_state(service),
        execute=execute,
        verify=verify,
        already_done=lambda state: ADDRESS in state["blocked"],
    )
    for name, value in changes.items():
        setattr(action, name, value)
    return action


def action_events(archive: Path) -> list[dict[str, Any]]:
    journal = Journal(archive / INCIDENT)
    return [event for event in journal.events() if event["event"] == "action"]


def journal_text(archive: Path) -> str:
    return (archive / INCIDENT / "journal.jsonl").read_text(encoding="utf-8")


def confirmed() -> Guard:
    return Guard(INCIDENT, True)


def test_guard_confirmed_by_incident_id(session: Session) -> None:
    assert Guard.for_session(session, INCIDENT).confirmed


@pytest.mark.parametrize("confirm", ["", "INC-OTHER", "inc-act-1", f" {INCIDENT}"])
def test_guard_unconfirmed(session: Session, confirm: str) -> None:
    guard = Guard.for_session(session, confirm)
    assert not guard.confirmed
    assert guard.incident_id == INCIDENT


def test_dry_run_banner_says_how_to_confirm(session: Session) -> None:
    banner = Guard.for_session(session, "").banner()
    assert banner == (
        "DRY-RUN: nothing will be changed; to carry out the actions run with "
        f"--incident {INCIDENT} -p confirm {INCIDENT}"
    )
    assert CONFIRM_PARAM == "confirm"


def test_dry_run_changes_nothing(
    session: Session, service: BlockListService, archive: Path
) -> None:
    before = read_state(service)
    result = perform(session, Guard(INCIDENT, False), block_action(service))
    assert result.mode == "dry-run"
    assert read_state(service) == before
    assert service.changes == 0
    assert result.detail.endswith(
        f"To carry it out, run with --incident {INCIDENT} -p confirm {INCIDENT}"
    )
    assert "It would: Block 203.0.113.7" in result.detail
    assert [event["mode"] for event in action_events(archive)] == [
        "intent",
        "dry-run",
    ]


def test_intent_journaled_first(
    session: Session, service: BlockListService, archive: Path
) -> None:
    seen: list[list[str]] = []

    def state_with_journal() -> dict[str, Any]:
        seen.append([event["mode"] for event in action_events(archive)])
        return read_state(service)

    perform(session, confirmed(), block_action(service, read_state=state_with_journal))
    assert seen[0] == ["intent"]


def test_executed_and_verified(
    session: Session, service: BlockListService, archive: Path
) -> None:
    result = perform(session, confirmed(), block_action(service))
    assert result.mode == "executed"
    assert service.blocked == [ADDRESS]
    assert result.verification == Verification(True, f"{ADDRESS} blocked: True")
    assert result.before is not None
    assert result.before["blocked"] == []
    assert result.after is not None
    assert result.after["blocked"] == [ADDRESS]
    assert result.row() == {
        "name": "block-ip",
        "mode": "executed",
        "detail": f"HTTP 200; verification: {ADDRESS} blocked: True",
        "verified": "yes",
    }
    events = action_events(archive)
    assert [event["mode"] for event in events] == ["intent", "executed"]
    assert events[1]["verified"] is True
    assert events[1]["after"]["blocked"] == [ADDRESS]


def test_second_run_already_done(
    session: Session, service: BlockListService, archive: Path
) -> None:
    perform(session, confirmed(), block_action(service))
    again = perform(session, confirmed(), block_action(service))
    assert again.mode == "already-done"
    assert service.changes == 1
    assert again.verification is None
    assert again.row()["verified"] == "-"
    modes = [event["mode"] for event in action_events(archive)]
    assert modes == ["intent", "executed", "intent", "already-done"]


def test_already_done_in_dry_run(session: Session, service: BlockListService) -> None:
    service.blocked.append(ADDRESS)
    result = perform(session, Guard(INCIDENT, False), block_action(service))
    assert result.mode == "already-done"


def test_failing_precondition_refuses(
    session: Session, service: BlockListService, archive: Path
) -> None:
    calls: list[str] = []

    def backup_exists() -> Precondition:
        calls.append("backup")
        return Precondition("backup exists", False, "no backup newer than 1 h")

    def never_reached() -> Precondition:
        calls.append("second")
        return Precondition("second", True, "")

    action = block_action(service, preconditions=[backup_exists, never_reached])
    result = perform(session, confirmed(), action)
    assert result.mode == "refused"
    assert result.detail == (
        "precondition 'backup exists' not met: no backup newer than 1 h"
    )
    assert calls == ["backup"]
    assert service.changes == 0
    assert result.before is None
    assert [event["mode"] for event in action_events(archive)] == [
        "intent",
        "refused",
    ]


def test_passing_preconditions_run(session: Session, service: BlockListService) -> None:
    action = block_action(
        service, preconditions=[lambda: Precondition("token set", True, "set")]
    )
    assert perform(session, confirmed(), action).mode == "executed"


def test_raising_precondition_refuses(
    session: Session, service: BlockListService
) -> None:
    def target_reachable() -> Precondition:
        raise ConnectionError(f"refused with token {TOKEN}")

    action = block_action(service, preconditions=[target_reachable])
    result = perform(session, confirmed(), action)
    assert result.mode == "refused"
    assert "'target_reachable' not met: ConnectionError" in result.detail
    assert TOKEN not in result.detail
    assert service.changes == 0


def test_unreadable_state_refuses(session: Session, service: BlockListService) -> None:
    def unreadable() -> dict[str, Any]:
        raise httpx.ConnectError("connection refused")

    result = perform(session, confirmed(), block_action(service, read_state=unreadable))
    assert result.mode == "refused"
    assert result.detail == (
        "the state before could not be read: ConnectError: connection refused"
    )
    assert service.changes == 0


def test_raising_execute_fails(
    session: Session, service: BlockListService, archive: Path
) -> None:
    def broken() -> Outcome:
        raise RuntimeError(f"admin API rejected {TOKEN}")

    result = perform(session, confirmed(), block_action(service, execute=broken))
    assert result.mode == "failed"
    assert result.detail.startswith("RuntimeError: admin API rejected ***;")
    assert result.row()["verified"] == "no"
    checks = [c for c in session.run.checks if c.name == "action block-ip"]
    assert len(checks) == 1
    assert checks[0].status == "fail"
    assert session.run.verdict() == "findings"
    assert TOKEN not in journal_text(archive)


def test_failed_verification_fails(session: Session, service: BlockListService) -> None:
    def unconvinced(before: Any, after: Any, outcome: Outcome) -> Verification:
        return Verification(False, "still reachable from 203.0.113.7")

    result = perform(session, confirmed(), block_action(service, verify=unconvinced))
    assert result.mode == "failed"
    assert result.detail == "HTTP 200; verification: still reachable from 203.0.113.7"


def test_raising_verify_fails(session: Session, service: BlockListService) -> None:
    def crashes(before: Any, after: Any, outcome: Outcome) -> Verification:
        raise KeyError("blocked")

    result = perform(session, confirmed(), block_action(service, verify=crashes))
    assert result.mode == "failed"
    assert result.verification == Verification(
        False, "verification failed: KeyError: 'blocked'"
    )


def test_unsuccessful_outcome_fails(
    session: Session, service: BlockListService
) -> None:
    result = perform(
        session,
        confirmed(),
        block_action(service, execute=lambda: Outcome(False, "HTTP 503")),
    )
    assert result.mode == "failed"


def test_secrets_masked_in_journal_and_result(
    session: Session, service: BlockListService, archive: Path
) -> None:
    result = perform(session, confirmed(), block_action(service))
    events = action_events(archive)
    assert events[0]["params"] == {
        "ip": ADDRESS,
        "admin_token": "***",
        "note": "seen with ***",
    }
    assert result.before is not None
    assert result.before["token"] == "***"
    assert events[1]["before"]["token"] == "***"
    assert events[1]["after"]["token"] == "***"
    assert TOKEN not in journal_text(archive)


def test_interrupt_during_change_journaled(
    session: Session, service: BlockListService, archive: Path
) -> None:
    def interrupted() -> Outcome:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        perform(session, confirmed(), block_action(service, execute=interrupted))
    events = action_events(archive)
    assert [event["mode"] for event in events] == ["intent", "failed"]
    assert events[1]["detail"] == (
        "interrupted during the change; the state after is unknown"
    )


def test_system_exit_leaves_intent(
    session: Session, service: BlockListService, archive: Path
) -> None:
    def exits() -> Outcome:
        raise SystemExit(1)

    with pytest.raises(SystemExit):
        perform(session, confirmed(), block_action(service, execute=exits))
    assert [event["mode"] for event in action_events(archive)] == ["intent"]


KILLED_KERNEL = """
import os, sys
from veerunbook.actions import Action, Guard, Outcome, Verification, perform
from veerunbook.session import begin

session = begin("block-test", incident=sys.argv[1], target="svc", archive=sys.argv[2])

def die() -> Outcome:
    os._exit(9)

action = Action(
    name="block-ip",
    intent="Block 203.0.113.7, the source of the failed logins.",
    params={"ip": "203.0.113.7"},
    read_state=lambda: {"blocked": []},
    execute=die,
    verify=lambda before, after, outcome: Verification(True, ""),
)
perform(session, Guard(sys.argv[1], True), action)
"""


def test_killed_process_leaves_intent(session: Session, archive: Path) -> None:
    # os._exit skips every handler, as a kernel killed during the change does.
    process = subprocess.run(
        [sys.executable, "-c", KILLED_KERNEL, INCIDENT, str(archive)],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 9
    events = action_events(archive)
    assert [event["mode"] for event in events] == ["intent"]
    assert events[0]["intent"] == "Block 203.0.113.7, the source of the failed logins."
    assert verify(archive / INCIDENT).ok


EARLIER_ATTEMPT = """
import os, sys
from veerunbook.actions import Action, Guard, Outcome, Verification, perform
from veerunbook.session import begin

incident, archive, ip, timeout_s, confirmed = sys.argv[1:]
session = begin("block-test", incident=incident, target="svc", archive=archive)

def die() -> Outcome:
    os._exit(9)

action = Action(
    name="block-ip",
    intent=f"Block {ip}, the source of the failed logins.",
    params={"ip": ip},
    read_state=lambda: {"blocked": []} if confirmed == "yes" else die(),
    execute=die,
    verify=lambda before, after, outcome: Verification(True, ""),
    timeout_s=float(timeout_s),
)
perform(session, Guard(incident, confirmed == "yes"), action)
"""


def kill_earlier_attempt(
    archive: Path, *, timeout_s: float = 600, confirmed: bool = True, ip: str = ADDRESS
) -> str:
    """Run an attempt of block-ip in another process that dies during the change.

    An unconfirmed attempt dies while it reads the state. Returns its run id.
    """
    argv = [INCIDENT, str(archive), ip, str(timeout_s), "yes" if confirmed else "no"]
    process = subprocess.run(
        [sys.executable, "-c", EARLIER_ATTEMPT, *argv],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 9, process.stderr[-2000:]
    run: str = action_events(archive)[-1]["run"]
    return run


def single_address_action(service: BlockListService) -> Action:
    return block_action(service, params={"ip": ADDRESS})


def utc_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def test_intent_records_timeout(session: Session, service: BlockListService) -> None:
    perform(session, confirmed(), block_action(service, timeout_s=42.0))
    perform(session, confirmed(), block_action(service))
    intents = [e for e in session.run.actions if e["mode"] == "intent"]
    assert intents[0]["timeout_s"] == 42.0
    assert intents[1]["timeout_s"] == 600.0


def test_unfinished_attempt_refused_while_running(
    session: Session, service: BlockListService, archive: Path
) -> None:
    earlier = kill_earlier_attempt(archive)
    executing = [
        event
        for event in Journal(archive / INCIDENT).events()
        if event["event"] == "note" and event.get("action") == "block-ip"
    ]
    started = datetime.fromisoformat(executing[0]["time"])
    until = started + timedelta(seconds=600)
    result = perform(session, confirmed(), single_address_action(service))
    assert result.mode == "refused"
    assert f"an earlier attempt in run {earlier}, " in result.detail
    assert f"started {utc_text(started)}, did not record its end" in result.detail
    assert f"may still be running until {utc_text(until)}" in result.detail
    assert service.changes == 0


def test_unfinished_attempt_noted_after_timeout(
    session: Session, service: BlockListService, archive: Path
) -> None:
    earlier = kill_earlier_attempt(archive, timeout_s=0.001)
    result = perform(session, confirmed(), single_address_action(service))
    assert result.mode == "executed"
    assert f"An earlier attempt in run {earlier} (started " in result.detail
    assert result.detail.endswith(") did not record its end.")
    assert service.blocked == [ADDRESS]


def test_unfinished_attempt_but_already_done(
    session: Session, service: BlockListService, archive: Path
) -> None:
    kill_earlier_attempt(archive)
    service.blocked.append(ADDRESS)
    result = perform(session, confirmed(), single_address_action(service))
    assert result.mode == "already-done"
    assert service.changes == 0


def test_unfinished_attempt_in_dry_run_refused(
    session: Session, service: BlockListService, archive: Path
) -> None:
    earlier = kill_earlier_attempt(archive)
    result = perform(session, Guard(INCIDENT, False), single_address_action(service))
    assert result.mode == "refused"
    assert f"run {earlier}" in result.detail


def test_unconfirmed_attempt_not_reported(
    session: Session, service: BlockListService, archive: Path
) -> None:
    kill_earlier_attempt(archive, confirmed=False)
    result = perform(session, confirmed(), single_address_action(service))
    assert result.mode == "executed"
    assert "earlier attempt" not in result.detail


def test_attempt_with_other_params_not_reported(
    session: Session, service: BlockListService, archive: Path
) -> None:
    kill_earlier_attempt(archive, ip="198.51.100.9")
    result = perform(session, confirmed(), single_address_action(service))
    assert result.mode == "executed"
    assert "earlier attempt" not in result.detail


def test_ended_attempt_not_reported(
    session: Session, service: BlockListService
) -> None:
    refused = Precondition("maintenance window", False, "outside the window")
    first = single_address_action(service)
    first.preconditions = [lambda: refused]
    perform(session, confirmed(), first)
    result = perform(session, confirmed(), single_address_action(service))
    assert result.mode == "executed"
    assert "earlier attempt" not in result.detail


def test_actions_frame_rows(session: Session, service: BlockListService) -> None:
    results = [
        perform(session, Guard(INCIDENT, False), block_action(service)),
        perform(session, confirmed(), block_action(service)),
    ]
    frame = actions_frame(results)
    assert list(frame.columns) == ["name", "mode", "detail", "verified"]
    assert list(frame["mode"]) == ["dry-run", "executed"]
    assert list(frame["verified"]) == ["-", "yes"]


def test_result_is_frozen() -> None:
    result = ActionResult("block-ip", "dry-run", "", None, None, None)
    with pytest.raises(AttributeError):
        result.mode = "executed"  # type: ignore[misc]


def test_configured_command(session: Session) -> None:
    assert configured_command(session, "deploy_rollback") == "echo rollback {version}"
    assert configured_command(session, "db_restore") is None


# The same action against the embedded target, whose full state is compared.


@pytest.fixture
def embedded(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[RunningTarget, Session]]:
    with start_target("attack", traffic_rate=0, seed=5) as running:
        config = tmp_path / "embedded.toml"
        config.write_text(f'[targets.sim]\nbase_url = "{running.base_url}"\n')
        monkeypatch.setenv("VEERUNBOOK_CONFIG", str(config))
        monkeypatch.setenv("VEEFORE_ADMIN_TOKEN", TOKEN)
        monkeypatch.delenv(RUN_ID_ENV, raising=False)
        opened = begin(
            "block-test", incident=INCIDENT, target="sim", archive=str(archive)
        )
        yield running, opened
        opened.close()


def admin_block(running: RunningTarget) -> Action:
    """Block ADDRESS through the simulator's admin API."""

    def blocked_addresses() -> dict[str, Any]:
        response = httpx.get(f"{running.base_url}/api/audit/security", timeout=5)
        return {"blocked": [entry["ip"] for entry in response.json()["blockedIps"]]}

    def execute() -> Outcome:
        response = httpx.post(
            f"{running.base_url}/admin/security/block-ip",
            json={"ip": ADDRESS, "reason": "failed logins"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        return Outcome(response.status_code == 200, f"HTTP {response.status_code}")

    return Action(
        name="block-ip",
        intent=f"Block {ADDRESS}, the source of the failed logins.",
        params={"ip": ADDRESS},
        read_state=blocked_addresses,
        execute=execute,
        verify=lambda before, after, outcome: Verification(
            ADDRESS in after["blocked"], "blocked"
        ),
        already_done=lambda state: ADDRESS in state["blocked"],
    )


def test_embedded_dry_run_same_state(
    embedded: tuple[RunningTarget, Session],
) -> None:
    running, session = embedded
    before = snapshot(running)
    result = perform(session, Guard(INCIDENT, False), admin_block(running))
    assert result.mode == "dry-run"
    assert difference(before, snapshot(running)) == {}


def test_embedded_confirmed_exact_change(
    embedded: tuple[RunningTarget, Session],
) -> None:
    running, session = embedded
    before = snapshot(running)
    first = perform(session, confirmed(), admin_block(running))
    middle = snapshot(running)
    second = perform(session, confirmed(), admin_block(running))
    changes = difference(before, middle)
    assert first.mode == "executed"
    assert sorted(changes) == ["blocked_ips", "tables.blocked_ips"]
    assert changes["blocked_ips"] == {"before": [], "after": [ADDRESS]}
    added = changes["tables.blocked_ips"]["added"]
    assert [row[:2] for row in added] == [[ADDRESS, "failed logins"]]
    assert changes["tables.blocked_ips"]["removed"] == []
    assert second.mode == "already-done"
    assert difference(middle, snapshot(running)) == {}
