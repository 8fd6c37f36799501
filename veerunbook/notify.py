"""Slack-compatible webhook notifications: build, send with one retry, journal.

A message is the JSON object ``{"channel": ..., "text": ...}`` that Slack's incoming
webhooks and compatible receivers (Mattermost, Rocket.Chat) accept. The webhook URL
carries its credential in the path, so it is a secret: it is read from the
environment variable that the configuration's ``notify_webhook_env`` names and never
appears in a message, log line or journal entry.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

_log = logging.getLogger("veerunbook.notify")

# Seconds one POST may take in all, so a hanging receiver cannot stall a procedure.
NOTIFY_TIMEOUT_SECONDS = 5.0
# One retry after a network error or an HTTP 429 or 5xx response.
NOTIFY_ATTEMPTS = 2


class _NoteTaker(Protocol):
    """The part of a run record that ``deliver`` journals through."""

    def note(self, text: str, **fields: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Delivery:
    """Result of sending one message, with a one-line outcome that omits the URL."""

    sent: bool
    outcome: str
    attempts: int = 0

    @property
    def failed(self) -> bool:
        """Whether sending was attempted and did not succeed."""
        return not self.sent and self.attempts > 0


def build_message(channel: str, text: str) -> dict[str, Any]:
    """Return a Slack-compatible webhook message for ``channel``."""
    return {"channel": channel, "text": text}


def webhook_url(variable: str | None) -> str | None:
    """Return the webhook URL from the environment variable ``variable``, if set."""
    if not variable:
        return None
    return os.environ.get(variable) or None


def post_message(
    url: str,
    message: dict[str, Any],
    *,
    timeout: float = NOTIFY_TIMEOUT_SECONDS,
    attempts: int = NOTIFY_ATTEMPTS,
) -> Delivery:
    """POST ``message`` as JSON to ``url``, retrying once; never raises.

    An HTTP 2xx response counts as sent. A network error, an HTTP 429 or a 5xx
    response is retried until ``attempts`` are used up, and any other is final. The
    outcome names the error class or HTTP status only, because httpx puts the URL
    into its error messages.
    """
    outcome = "sending failed: no attempt made"
    for attempt in range(1, max(1, attempts) + 1):
        try:
            response = httpx.post(url, json=message, timeout=timeout)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            outcome = f"sending failed: {exc.__class__.__name__}"
            _log.warning("webhook attempt %d of %d: %s", attempt, attempts, outcome)
            continue
        code = response.status_code
        if 200 <= code < 300:
            return Delivery(True, f"sent, webhook answered HTTP {code}", attempt)
        outcome = f"sending failed: webhook answered HTTP {code}"
        _log.warning("webhook attempt %d of %d: %s", attempt, attempts, outcome)
        if code != 429 and code < 500:
            return Delivery(False, outcome, attempt)
    return Delivery(False, outcome, max(1, attempts))


def deliver(
    message: dict[str, Any], *, variable: str | None, send: bool, run: _NoteTaker
) -> Delivery:
    """Send ``message`` to the webhook in ``$variable`` when ``send``; journal a note.

    Without ``send`` or without a configured URL the message is only prepared, and
    the note gives the reason it was not sent.
    """
    url = webhook_url(variable)
    if not send or not url:
        why = "sending not requested" if not send else "no webhook configured"
        if send and variable:
            why = f"no webhook URL in ${variable}"
        run.note(f"notification prepared, not sent ({why})", message=message)
        return Delivery(False, f"prepared, not sent: {why}")
    delivery = post_message(url, message)
    run.note(
        f"notification {delivery.outcome}", message=message, attempts=delivery.attempts
    )
    _log.info("notification to %s: %s", message.get("channel"), delivery.outcome)
    return delivery
