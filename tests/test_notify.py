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
from veerunbook.alert_check_result import AlertTransition, CheckResult, transition_text
from veerunbook.alert_check_steps import AlertCheck
from veerunbook.alert_rules import Signal, rule_named
from veerunbook.alert_store import RuleState, SampleStore
from veerunbook.notify import (
    OUTBOX_MAX_LINES,
    Delivery,
    build_message,
    deliver,
    post_message,
    send_outbox,
)

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


def test_server_error_not_retried(hook: str) -> None:
    # The webhook may have taken the message before it failed: no second POST now.
    _Hook.statuses = [503, 200]
    delivery = post_message(hook, build_message("#ops", "x"))
    assert not delivery.sent
    assert delivery.attempts == 1
    assert len(_Hook.received) == 1


def test_refused_connection_retried_once() -> None:
    delivery = post_message(_dead_url(), build_message("#ops", "x"), timeout=1.0)
    assert not delivery.sent
    assert delivery.attempts == 2
    assert delivery.outcome == "sending failed: ConnectError"


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


# A target nothing listens on, the same in every test, so runs share its store.
_TARGET = _dead_url()


def _alert_check(tmp_path: Path, transitions: bool, at: float = T0 + 120) -> AlertCheck:
    """An alert-check run at ``at`` whose result has one firing transition, queued
    in the outbox as the evaluation step queues it, or none."""
    session = vr_session.begin("alert-check", target=_TARGET, archive=str(tmp_path))
    session.config = dataclasses.replace(
        session.config, notify_webhook_env="TEST_ALERT_HOOK"
    )
    rule = rule_named("ErrorRateP0")
    found: tuple[AlertTransition, ...] = ()
    if transitions:
        found = (AlertTransition(rule, "firing", at, 0.08, T0),)
    result = CheckResult(time=at, target="prod", transitions=found)
    if transitions:
        with SampleStore(tmp_path, session.target.name) as store:
            store.commit_states([], [(at, transition_text(found[0], result))])
    return AlertCheck(session, result)


def _outbox(check: AlertCheck) -> list[str]:
    with SampleStore(check.archive, check.session.target.name) as store:
        return [entry.text for entry in store.outbox()]


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
    assert summary == (
        "sending failed: webhook answered HTTP 503; lines left for the next check: 1"
    )
    assert len(_outbox(check)) == 1


def test_sent_line_leaves_outbox(
    tmp_path: Path, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ALERT_HOOK", hook)
    check = _alert_check(tmp_path, transitions=True)
    check.notify(True)
    assert _outbox(check) == []


def test_failed_line_sent_next_check(
    tmp_path: Path, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ALERT_HOOK", hook)
    _Hook.statuses = [500]
    _alert_check(tmp_path, transitions=True).notify(True)
    # The next check, a minute later, has no transition of its own.
    later = _alert_check(tmp_path, transitions=False, at=T0 + 180)
    later.notify(True)
    status, summary = _notification_check(later)
    text = json.loads(_Hook.received[-1])["text"]
    assert len(_Hook.received) == 2
    assert status == "pass"
    assert summary == "sent, webhook answered HTTP 200; lines sent: 1, delayed: 1"
    # The line of the check at T0 + 120 s, 14:02:00 UTC, marked as delayed.
    assert text.startswith(
        "(delayed, from 2026-12-04 14:02:00 UTC) [P0] ErrorRateP0 firing since"
    )
    assert _outbox(later) == []


def test_hanging_send_keeps_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A check killed while sending leaves its line queued: nothing was sent yet.
    monkeypatch.setenv("TEST_ALERT_HOOK", _dead_url())
    check = _alert_check(tmp_path, transitions=True)
    assert len(_outbox(check)) == 1


def test_old_line_dropped_with_note(
    tmp_path: Path, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ALERT_HOOK", hook)
    _alert_check(tmp_path, transitions=True)
    # 24 h and 1 s after the queued line: older than OUTBOX_MAX_AGE_SECONDS.
    later = _alert_check(tmp_path, transitions=False, at=T0 + 120 + 86_401)
    later.notify(True)
    status, _ = _notification_check(later)
    notes = [e for e in _journal(later) if e["text"].startswith("dropped ")]
    assert status == "skip"
    assert _Hook.received == []
    assert len(notes) == 1
    assert _outbox(later) == []


def test_outbox_count_capped(tmp_path: Path, hook: str) -> None:
    with SampleStore(tmp_path, "capped") as store:
        lines = [(T0 + i, f"line {i}") for i in range(OUTBOX_MAX_LINES + 3)]
        store.commit_states([], lines)
        notes = _Notes()
        sent = send_outbox(store, now=T0 + 100, channel="#c", url=hook, run=notes)
        left = store.outbox()
    text = json.loads(_Hook.received[0])["text"]
    assert sent is not None
    assert sent.lines == OUTBOX_MAX_LINES
    # The 3 oldest lines (0, 1, 2) are dropped, line 3 is the first one sent.
    assert text.splitlines()[0].endswith(" line 3")
    assert notes.notes[0][0].startswith("dropped 3 unsent notification lines")
    assert left == []


def _journal(check: AlertCheck) -> list[dict[str, Any]]:
    path = check.session.run.incident_dir / "journal.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    return [event for event in events if event["event"] == "note"]


def _resolving_check(tmp_path: Path) -> AlertCheck:
    """Evaluate a dead target whose stored ErrorRateP0 fires, so it resolves."""
    session = vr_session.begin("alert-check", target=_dead_url(), archive=str(tmp_path))
    session.config = dataclasses.replace(
        session.config, notify_webhook_env="TEST_ALERT_HOOK"
    )
    firing = RuleState("ErrorRateP0", "firing", T0 - 240, T0 - 60)
    with SampleStore(tmp_path, session.target.name) as store:
        store.set_rule_state(firing)
    check = AlertCheck(session)
    check.evaluate(60.0, 1.0, T0, send=True)
    session.close()
    return check


def test_no_webhook_queues_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_ALERT_HOOK", raising=False)
    check = _resolving_check(tmp_path)
    assert check.result is not None
    assert len(check.result.transitions) == 1
    assert _outbox(check) == []


def test_webhook_queues_transition(
    tmp_path: Path, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ALERT_HOOK", hook)
    check = _resolving_check(tmp_path)
    queued = _outbox(check)
    assert len(queued) == 1
    assert queued[0].startswith("[P0] ErrorRateP0 resolved after 4 min 00 s")


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


class _SlowHook(BaseHTTPRequestHandler):
    """A webhook that reads each POST and responds 200 only once released."""

    received: ClassVar[list[bytes]] = []
    arrived: ClassVar[threading.Semaphore] = threading.Semaphore(0)
    release: ClassVar[threading.Event] = threading.Event()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).received.append(self.rfile.read(length))
        type(self).arrived.release()
        type(self).release.wait(timeout=30.0)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


def test_slow_webhook_one_post_per_check(tmp_path: Path) -> None:
    _SlowHook.received = []
    _SlowHook.arrived = threading.Semaphore(0)
    _SlowHook.release = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}{SECRET_PATH}"
    sent = []
    try:
        with SampleStore(tmp_path, "slow") as store:
            store.commit_states([], [(T0, "[P0] ErrorRateP0 firing")])
            # Two checks a minute apart, each timing out before the webhook responds.
            for now in (T0, T0 + 60):
                result = send_outbox(
                    store, now=now, channel="#c", url=url, run=_Notes(), timeout=0.5
                )
                sent.append(result)
                assert _SlowHook.arrived.acquire(timeout=30.0)
            left = store.outbox()
    finally:
        _SlowHook.release.set()
        server.shutdown()
        server.server_close()
    assert [r.delivery.attempts for r in sent if r is not None] == [1, 1]
    assert [r.delivery.outcome for r in sent if r is not None] == [
        "sending failed: ReadTimeout",
        "sending failed: ReadTimeout",
    ]
    assert len(_SlowHook.received) == 2
    assert [entry.text for entry in left] == ["[P0] ErrorRateP0 firing"]


def test_replay_of_stored_time_sends_nothing(
    tmp_path: Path, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ALERT_HOOK", hook)
    session = vr_session.begin("alert-check", target=_dead_url(), archive=str(tmp_path))
    session.config = dataclasses.replace(
        session.config, notify_webhook_env="TEST_ALERT_HOOK"
    )
    firing = RuleState("ErrorRateP0", "firing", T0 - 240, T0 - 60)
    with SampleStore(tmp_path, session.target.name) as store:
        store.append(T0, {Signal.ERROR_RATE: 0.001, Signal.UP: 1.0})
        store.commit_states([firing], [(T0 - 60, "[P0] ErrorRateP0 firing")])
    check = AlertCheck(session)
    check.evaluate(60.0, 1.0, T0, send=True)
    check.notify(True)
    status, summary = _notification_check(check)
    assert check.result is not None
    assert check.result.transitions == ()
    assert _Hook.received == []
    assert status == "skip"
    assert summary.startswith("nothing sent: a time already stored is replayed")
    assert _outbox(check) == ["[P0] ErrorRateP0 firing"]
    with SampleStore(tmp_path, session.target.name) as store:
        assert store.rule_states() == {"ErrorRateP0": firing}
