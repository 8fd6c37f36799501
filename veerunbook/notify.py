"""Slack-compatible webhook notifications: build, send, journal.

A message is the JSON object ``{"channel": ..., "text": ...}`` that Slack's incoming
webhooks and compatible receivers (Mattermost, Rocket.Chat) accept. The webhook URL
carries its credential in the path, so it is a secret: it is read from the
environment variable that the configuration's ``notify_webhook_env`` names and never
appears in a message, log line or journal entry.

``send_outbox`` sends the alert check's queued lines at least once: a line leaves the
store's outbox only after the webhook accepted the message that carried it. A POST is
repeated at once only when it surely did not reach the webhook, so a webhook that
responds late or fails receives each message once per check.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import httpx

if TYPE_CHECKING:
    from veerunbook.alert_store import OutboxEntry, SampleStore

_log = logging.getLogger("veerunbook.notify")

# Seconds one POST may take in all, so a hanging receiver cannot stall a procedure.
NOTIFY_TIMEOUT_SECONDS = 5.0
# One retry after a connect error or connect timeout, when the request surely did
# not reach the webhook.
NOTIFY_ATTEMPTS = 2
# Limits of the alert outbox, our choice: a line unsent for a day no longer helps the
# on-call engineer, and one message carries at most 50 lines. The oldest lines beyond
# either limit are dropped with a journaled note.
OUTBOX_MAX_AGE_SECONDS = 24 * 3600.0
OUTBOX_MAX_LINES = 50


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
    """POST ``message`` as JSON to ``url``; never raises.

    An HTTP 2xx response counts as sent. A connect error or connect timeout is
    retried until ``attempts`` are used up, because the request surely did not
    reach the webhook. Any other failure is final: after a read timeout, an HTTP
    429 or a 5xx response the webhook may have taken the message, so a second
    POST now could deliver it twice, and the caller keeps it for later. The
    outcome names the error class or HTTP status only, because httpx puts the
    URL into its error messages.
    """
    outcome = "sending failed: no attempt made"
    for attempt in range(1, max(1, attempts) + 1):
        try:
            response = httpx.post(url, json=message, timeout=timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            outcome = f"sending failed: {exc.__class__.__name__}"
            _log.warning("webhook attempt %d of %d: %s", attempt, attempts, outcome)
            continue
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            outcome = f"sending failed: {exc.__class__.__name__}"
            _log.warning("webhook attempt %d of %d: %s", attempt, attempts, outcome)
            return Delivery(False, outcome, attempt)
        code = response.status_code
        if 200 <= code < 300:
            return Delivery(True, f"sent, webhook answered HTTP {code}", attempt)
        outcome = f"sending failed: webhook answered HTTP {code}"
        _log.warning("webhook attempt %d of %d: %s", attempt, attempts, outcome)
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


@dataclass(frozen=True)
class OutboxDelivery:
    """Result of sending the outbox: the delivery, lines sent, delayed and left."""

    delivery: Delivery
    lines: int
    delayed: int
    pending: int


def send_outbox(
    store: SampleStore,
    *,
    now: float,
    channel: str,
    url: str,
    run: _NoteTaker,
    timeout: float = NOTIFY_TIMEOUT_SECONDS,
) -> OutboxDelivery | None:
    """Send every queued line in one message; delete them once the webhook accepts.

    Lines queued before ``now`` (Unix seconds) are marked as delayed with their
    transition's time. A message that was not accepted in ``timeout`` seconds
    leaves its lines queued, so a webhook that accepted it late receives them
    again at the next check. Returns None when the outbox is empty.
    """
    entries = _drop_stale(store, store.outbox(), now, run)
    if not entries:
        return None
    delayed = [entry for entry in entries if entry.time < now]
    lines = [_delayed_line(entry) for entry in delayed]
    lines += [entry.text for entry in entries if entry.time >= now]
    message = build_message(channel, "\n".join(lines))
    delivery = post_message(url, message, timeout=timeout)
    pending = len(entries)
    if delivery.sent:
        store.delete_outbox(entry.id for entry in entries)
        pending = 0
    run.note(
        f"notification {delivery.outcome}",
        message=message,
        attempts=delivery.attempts,
        delayed=len(delayed),
        pending=pending,
    )
    _log.info("notification to %s: %s", channel, delivery.outcome)
    return OutboxDelivery(delivery, len(entries), len(delayed), pending)


def _drop_stale(
    store: SampleStore, entries: list[OutboxEntry], now: float, run: _NoteTaker
) -> list[OutboxEntry]:
    """Drop lines older than the maximum age, then the oldest beyond the count."""
    fresh = [e for e in entries if now - e.time <= OUTBOX_MAX_AGE_SECONDS]
    kept = fresh[-OUTBOX_MAX_LINES:]
    dropped = [entry for entry in entries if entry not in kept]
    if dropped:
        store.delete_outbox(entry.id for entry in dropped)
        run.note(
            f"dropped {len(dropped)} unsent notification lines: older than"
            f" {OUTBOX_MAX_AGE_SECONDS / 3600:g} h or beyond the newest"
            f" {OUTBOX_MAX_LINES}",
            dropped=[entry.text for entry in dropped],
        )
        _log.warning("dropped %d unsent notification lines", len(dropped))
    return kept


def _delayed_line(entry: OutboxEntry) -> str:
    moment = datetime.fromtimestamp(entry.time, UTC)
    return f"(delayed, from {moment:%Y-%m-%d %H:%M:%S} UTC) {entry.text}"
