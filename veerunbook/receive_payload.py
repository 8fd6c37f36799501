"""Alertmanager webhook payloads (version "4"), parsed and validated strictly.

The fields are those of Alertmanager's webhook notification: ``receiver``, ``status``,
``alerts`` (each with ``status``, ``labels``, ``annotations``, ``startsAt``,
``endsAt``, ``generatorURL`` and ``fingerprint``), ``groupLabels``, ``commonLabels``,
``commonAnnotations``, ``externalURL``, ``version``, ``groupKey`` and
``truncatedAlerts``. Alertmanager sends a firing alert with the zero time
``0001-01-01T00:00:00Z`` as ``endsAt``, which is read here as "no end yet".

Field sizes are capped while parsing, so that one notification cannot grow the
receiver's memory of fingerprints or the archive without bound: see the ``MAX_*``
limits below. A body over a limit gets 400 with a message naming the limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from veerunbook.errors import UsageError

WEBHOOK_VERSION = "4"
ALERT_STATUSES = ("firing", "resolved")

# Alertmanager's fingerprints are 16 hex digits; 128 leaves room for other senders.
MAX_FINGERPRINT_CHARS = 128
# Label and annotation names, and every string value (labels, annotations, URLs).
MAX_NAME_CHARS = 1024
MAX_VALUE_CHARS = 16 * 1024
# Alerts per notification; Alertmanager's max_alerts cuts a larger group.
MAX_ALERTS = 1000

# Go's zero time.Time, which Alertmanager writes for "not set".
ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

# RFC 3339 date-time. datetime.fromisoformat alone also takes dates without a time
# zone, week dates and other ISO 8601 forms that Alertmanager never sends.
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)


class PayloadError(UsageError):
    """Raised for a webhook body that is not a valid version 4 notification.

    ``status`` is the HTTP status of the response: 400 for malformed JSON or a
    missing or mistyped field, 422 for a well-formed payload of another version.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Alert:
    """One alert of a notification, with times as timezone-aware UTC datetimes.

    ``ends_at`` is None while the alert fires (Alertmanager's zero time).
    """

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    fingerprint: str

    @property
    def name(self) -> str:
        """The ``alertname`` label, or an empty string when it is missing."""
        return self.labels.get("alertname", "")

    @property
    def expression(self) -> str | None:
        """The PromQL expression in ``generatorURL``'s ``g0.expr`` query parameter."""
        query = parse_qs(urlsplit(self.generator_url).query)
        values = query.get("g0.expr")
        return values[0] if values else None

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start to end, or None without an end or with an end before
        the start."""
        if self.ends_at is None or self.ends_at < self.starts_at:
            return None
        return (self.ends_at - self.starts_at).total_seconds()


@dataclass(frozen=True)
class Notification:
    """One webhook notification: an alert group and its alerts."""

    receiver: str
    status: str
    alerts: tuple[Alert, ...]
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    group_key: str
    truncated_alerts: int

    def truncation_text(self) -> str | None:
        """Describe the alerts that ``max_alerts`` left out, or None if none were."""
        if self.truncated_alerts == 0:
            return None
        present = len(self.alerts)
        total = present + self.truncated_alerts
        return (
            f"{self.truncated_alerts} alerts of the group missing from the payload "
            f"({total} in total, {present} present)"
        )


def parse_body(body: bytes) -> Notification:
    """Decode a webhook body and validate it; raise PayloadError when it is invalid."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise PayloadError("invalid JSON body: nested too deeply.") from None
    except ValueError as exc:
        raise PayloadError(f"invalid JSON body: {exc}.") from None
    return parse_notification(data)


def parse_notification(data: Any) -> Notification:
    """Validate a decoded webhook payload; raise PayloadError naming the bad field."""
    if not isinstance(data, dict):
        raise PayloadError(
            f"invalid payload: expected a JSON object, not {_json_type(data)}."
        )
    version = _field(data, "version", str, "")
    if version != WEBHOOK_VERSION:
        raise PayloadError(
            f"unsupported webhook version {version!r}: this receiver reads version "
            f"{WEBHOOK_VERSION!r} (Alertmanager 0.x).",
            status=422,
        )
    alerts = _field(data, "alerts", list, "")
    if len(alerts) > MAX_ALERTS:
        raise PayloadError(
            f"too many alerts: {len(alerts)} in one notification, the limit is "
            f"{MAX_ALERTS}; set max_alerts in Alertmanager's webhook_config."
        )
    truncated = data.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise PayloadError(
            f"invalid field truncatedAlerts: expected a count of 0 or more, "
            f"not {truncated!r}."
        )
    return Notification(
        receiver=_field(data, "receiver", str, ""),
        status=_status(data, ""),
        alerts=tuple(_alert(item, f"alerts[{i}]") for i, item in enumerate(alerts)),
        group_labels=_strings(data, "groupLabels", ""),
        common_labels=_strings(data, "commonLabels", ""),
        common_annotations=_strings(data, "commonAnnotations", ""),
        external_url=_field(data, "externalURL", str, ""),
        group_key=_field(data, "groupKey", str, ""),
        truncated_alerts=truncated,
    )


def _alert(data: Any, where: str) -> Alert:
    if not isinstance(data, dict):
        raise PayloadError(
            f"invalid field {where}: expected an object, not {_json_type(data)}."
        )
    fingerprint = _field(data, "fingerprint", str, where, MAX_FINGERPRINT_CHARS)
    if not fingerprint:
        raise PayloadError(f"invalid field {where}.fingerprint: it is empty.")
    ends_at = _time(data, "endsAt", where)
    return Alert(
        status=_status(data, where),
        labels=_strings(data, "labels", where),
        annotations=_strings(data, "annotations", where),
        starts_at=_time(data, "startsAt", where),
        ends_at=None if ends_at == ZERO_TIME else ends_at,
        generator_url=_field(data, "generatorURL", str, where),
        fingerprint=fingerprint,
    )


def _field(
    data: Mapping[str, Any],
    name: str,
    kind: type,
    where: str,
    max_chars: int = MAX_VALUE_CHARS,
) -> Any:
    """Check that field ``name`` is a ``kind`` (a string of at most ``max_chars``
    characters) and return it; raise PayloadError naming the field otherwise."""
    path = f"{where}.{name}" if where else name
    if name not in data:
        raise PayloadError(f"missing field {path}.")
    value = data[name]
    if not isinstance(value, kind):
        raise PayloadError(
            f"invalid field {path}: expected {_TYPE_NAMES[kind]}, "
            f"not {_json_type(value)}."
        )
    if isinstance(value, str):
        _check_length(value, max_chars, path)
    return value


def _check_length(text: str, limit: int, path: str) -> None:
    if len(text) > limit:
        raise PayloadError(
            f"invalid field {path}: {len(text)} characters, the limit is {limit}."
        )


def _status(data: Mapping[str, Any], where: str) -> str:
    value: str = _field(data, "status", str, where)
    if value not in ALERT_STATUSES:
        path = f"{where}.status" if where else "status"
        raise PayloadError(
            f"invalid field {path}: expected 'firing' or 'resolved', not {value!r}."
        )
    return value


def _strings(data: Mapping[str, Any], name: str, where: str) -> dict[str, str]:
    mapping: dict[str, Any] = _field(data, name, dict, where)
    path = f"{where}.{name}" if where else name
    for key, value in mapping.items():
        _check_length(key, MAX_NAME_CHARS, f"{path} name {key[:40]!r}")
        if not isinstance(value, str):
            raise PayloadError(
                f"invalid field {path}.{key}: expected a string, "
                f"not {_json_type(value)}."
            )
        _check_length(value, MAX_VALUE_CHARS, f"{path}.{key}")
    return mapping


def _time(data: Mapping[str, Any], name: str, where: str) -> datetime:
    text: str = _field(data, name, str, where)
    try:
        return parse_rfc3339(text)
    except (ValueError, OverflowError):
        raise PayloadError(
            f"invalid field {where}.{name}: {text[:40]!r} is not an RFC 3339 time "
            "such as 2026-12-04T14:22:30.118Z."
        ) from None


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 time into UTC; raise ValueError for anything else.

    OverflowError is raised for a time that leaves the year range in UTC, such as
    ``0001-01-01T00:00:00+01:00``. Digits beyond microseconds (Go writes up to
    nanoseconds) are dropped.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    day, clock, fraction, offset = match.groups()
    fraction = (fraction or "")[:7]
    offset = "+00:00" if offset in ("Z", "z") else offset
    return datetime.fromisoformat(f"{day}T{clock}{fraction}{offset}").astimezone(UTC)


_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _json_type(value: Any) -> str:
    """Name the JSON type of a decoded value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _TYPE_NAMES.get(type(value), type(value).__name__)
