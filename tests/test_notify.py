from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from veerunbook import session as vr_session
from veerunbook.alert_check_result import AlertTransition, CheckResult
from veerunbook.alert_check_steps import AlertCheck
from veerunbook.alert_rules import rule_named
from veerunbook.notify import Delivery, build_message, deliver, post_message

SECRET_PATH = "/hooks/T000/B000/Zq8secretpathvalue"


class _Notes:
    def __init__(self) -> None:
        self.notes: list[tuple[str, dict[str, Any]]] = []

    def note(self, text: str, **fields: Any) -> dict[str, Any]:
        self.notes.append((text, fields))
        return fields


class _Hook(BaseHTTPRequestHandler):
    statuses: ClassVar[list[int]] = []
    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).received.append(self.rfile.read(length))
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.statuses, _Hook.received = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}{SECRET_PATH}"
    server.shutdown()
    server.server_close()


def test_message_is_slack_shaped() -> None:
    assert build_message("#incidents", "hi") == {"channel": "#incidents", "text": "hi"}


def test_post_sends_json(hook: str) -> None:
    delivery = post_message(hook, build_message("#ops", "ErrorRateP0 firing"))
    assert delivery.sent
    assert json.loads(_Hook.received[0]) == {
        "channel": "#ops",
        "text": "ErrorRateP0 firing",
    }


def test_server_error_retried_once(hook: str) -> None:
    _Hook.statuses = [503, 200]
    delivery = post_message(hook, build_message("#ops", "x"))
    assert delivery.sent
    assert delivery.attempts == 2


def test_client_error_not_retried(hook: str) -> None:
    _Hook.statuses = [404, 200]
    delivery = post_message(hook, build_message("#ops", "x"))
    assert not delivery.sent
    assert len(_Hook.received) == 1


def test_dead_webhook_never_raises() -> None:
    delivery = post_message(
        "http://127.0.0.1:9" + SECRET_PATH, build_message("#ops", "x"), timeout=1.0
    )
    assert not delivery.sent
    assert "Zq8secretpathvalue" not in delivery.outcome


def test_deliver_masks_url_in_note(hook: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_NOTIFY_URL", hook)
    notes = _Notes()
    delivery = deliver(
        build_message("#ops", "x"), variable="TEST_NOTIFY_URL", send=True, run=notes
    )
    assert delivery.sent
    assert "Zq8secretpathvalue" not in json.dumps(notes.notes)


def test_deliver_without_url_prepares(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_NOTIFY_URL", raising=False)
    notes = _Notes()
    delivery = deliver(
        build_message("#ops", "x"), variable="TEST_NOTIFY_URL", send=True, run=notes
    )
    assert not delivery.sent
    assert notes.notes[0][0].startswith("notification prepared, not sent")


T0 = 1_796_392_800.0  # 2026-12-04 14:00:00 UTC


def _dead_url() -> str:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{bound.getsockname()[1]}"


def _alert_check(tmp_path: Path, transitions: bool) -> AlertCheck:
    """An alert-check run whose result has one firing transition, or none."""
    session = vr_session.begin("alert-check", target=_dead_url(), archive=str(tmp_path))
    session.config = dataclasses.replace(
        session.config, notify_webhook_env="TEST_ALERT_HOOK"
    )
    rule = rule_named("ErrorRateP0")
    found = (
        (AlertTransition(rule, "firing", T0 + 120, 0.08, T0),) if transitions else ()
    )
    result = CheckResult(time=T0 + 120, target="prod", transitions=found)
    return AlertCheck(session, result)


def _notification_check(check: AlertCheck) -> tuple[str, str]:
    check.session.close()
    found = [c for c in check.session.run.checks if c.name == "alert notification"]
    assert len(found) == 1
    return found[0].status, found[0].summary


def test_notification_sent_passes(
    tmp_path: Path, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ALERT_HOOK", hook)
    check = _alert_check(tmp_path, transitions=True)
    check.notify(True)
    status, _ = _notification_check(check)
    assert status == "pass"
    assert json.loads(_Hook.received[0])["text"] == (
        "[P0] ErrorRateP0 firing since 14:00:00 UTC (8 %, alert above 5 % for 2 min):"
        " More than 5.0% of user requests failed with a 5xx status for 2 minutes."
        " Run: veerunbook run high-error-rate --target prod"
    )


def test_notification_failure_is_error(
    tmp_path: Path, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ALERT_HOOK", hook)
    _Hook.statuses = [503, 503]
    check = _alert_check(tmp_path, transitions=True)
    check.notify(True)
    status, summary = _notification_check(check)
    assert status == "error"
    assert summary == "sending failed: webhook answered HTTP 503"


def test_notification_without_url_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_ALERT_HOOK", raising=False)
    check = _alert_check(tmp_path, transitions=True)
    check.notify(True)
    status, summary = _notification_check(check)
    assert status == "warn"
    assert summary == "prepared, not sent: no webhook URL in $TEST_ALERT_HOOK"


def test_notification_not_requested_warns(tmp_path: Path) -> None:
    check = _alert_check(tmp_path, transitions=True)
    check.notify(False)
    status, summary = _notification_check(check)
    assert status == "warn"
    assert summary == "prepared, not sent: sending not requested"


def test_nothing_to_notify_skips(tmp_path: Path, hook: str) -> None:
    check = _alert_check(tmp_path, transitions=False)
    check.notify(True)
    status, _ = _notification_check(check)
    assert status == "skip"
    assert _Hook.received == []


def test_failed_delivery_flag() -> None:
    assert Delivery(False, "sending failed: x", attempts=2).failed
    assert not Delivery(False, "prepared, not sent: y").failed
    assert not Delivery(True, "sent", attempts=1).failed
