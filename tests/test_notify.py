from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from veerunbook.notify import build_message, deliver, post_message

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
