"""Grouping of error events by fingerprint.

The fingerprint of an error is its ``Type: message`` with variable parts replaced
(UUIDs, IP addresses, quoted values, ids, hex strings and numbers), followed by the
first stack frame when there is one. Records of the same failure at different times,
for different users or against different hosts therefore fall into one group.

Raw console output has no timestamp, correlation id or route. A Node route handler
that catches an error prints it with ``console.error`` and responds with a 5xx, so the
request's ``API_CALL`` record follows the dump within milliseconds. The raw error is
paired with that record, which gives it a time, a correlation id and a route, and the
``API_CALL`` record is then counted as part of the same occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from veerunbook.errors import UsageError
from veerunbook.logs_model import LEVEL_RANKS, LogRecord, format_time, level_rank
from veerunbook.logs_redact import mask_credentials
from veerunbook.logs_scan import EXCERPT_CHARS, find_error_line

MAX_CORRELATION_IDS = 5

_STACK_FRAME = re.compile(r"^\s*at (.+?)\s*\{?\s*$", re.MULTILINE)
# The ``message: '...'`` of an error response inside a printed AxiosError.
_NESTED_MESSAGE = re.compile(r"""\bmessage["']?\s*:\s*(?:'([^']*)'|"([^"]*)")""")
_VARIABLE_PARTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`"), "<str>"),
    (re.compile(r"\b[A-Za-z]+[_-](?=[0-9A-Za-z]*\d)[0-9A-Za-z]{6,}\b"), "<id>"),
    (re.compile(r"\b(?:0x)?(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
]


@dataclass(slots=True)
class ErrorGroup:
    """Occurrences of one error fingerprint, with samples for the incident record."""

    fingerprint: str
    signature: str
    first_frame: str | None
    sample: str
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    correlation_ids: list[str] = field(default_factory=list)
    routes: dict[str, int] = field(default_factory=dict)
    lines: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the group as JSON-compatible values."""
        return {
            "fingerprint": self.fingerprint,
            "signature": self.signature,
            "first_frame": self.first_frame,
            "sample": self.sample,
            "count": self.count,
            "first_seen": format_time(self.first_seen),
            "last_seen": format_time(self.last_seen),
            "correlation_ids": list(self.correlation_ids),
            "routes": dict(self.routes),
            "lines": list(self.lines),
        }


@dataclass(frozen=True, slots=True)
class _Occurrence:
    record: LogRecord
    request: LogRecord | None


def group_errors(
    records: Sequence[LogRecord], *, min_level: str = "error"
) -> list[ErrorGroup]:
    """Group records at ``min_level`` or above, and raw error dumps, by fingerprint.

    Groups are ordered by count, largest first, then by first occurrence.
    Raises ``UsageError`` for a level other than trace, debug, info, warn, error, fatal.
    """
    if min_level not in LEVEL_RANKS:
        allowed = ", ".join(LEVEL_RANKS)
        raise UsageError(f"Invalid min_level {min_level!r}: use one of {allowed}.")
    groups: dict[str, ErrorGroup] = {}
    for occurrence in _occurrences(records, LEVEL_RANKS[min_level]):
        signature, frame = describe_error(occurrence.record)
        key = fingerprint(signature, frame)
        group = groups.get(key)
        if group is None:
            group = ErrorGroup(key, signature, frame, _sample(occurrence.record))
            groups[key] = group
        _add(group, occurrence)
    return sorted(groups.values(), key=_order)


def describe_error(record: LogRecord) -> tuple[str, str | None]:
    """Return a record's error signature and its first stack frame, if any.

    A raw dump gives its ``Type: message`` line, followed by `` / `` and the message
    of an error response printed inside it when that differs. A JSON record with an
    ``err`` or ``error`` object gives ``type: message`` from it. Others give their
    message.
    """
    if record.kind == "raw":
        return _describe_raw(record)
    error = record.fields.get("err", record.fields.get("error"))
    if isinstance(error, dict) and error.get("message"):
        kind = error.get("type") or error.get("name") or "Error"
        frame = _first_frame(str(error.get("stack", "")))
        return mask_credentials(f"{kind}: {error['message']}"), frame
    return record.message, None


def fingerprint(signature: str, frame: str | None = None) -> str:
    """Return the signature with variable parts replaced, plus the stack frame."""
    normalised = signature
    for pattern, placeholder in _VARIABLE_PARTS:
        normalised = pattern.sub(placeholder, normalised)
    return f"{normalised} @ {frame}" if frame else normalised


def is_error_dump(record: LogRecord) -> bool:
    """Return whether a raw event is an error: a crash, ``Type: message`` or a stack."""
    if record.kind != "raw":
        return False
    text = record.excerpt or record.message
    return bool(
        record.fields.get("crash") or find_error_line(text) or _STACK_FRAME.search(text)
    )


def route_of(record: LogRecord) -> str | None:
    """Return ``METHOD /path`` from ``method``/``endpoint`` or a pino ``req``."""
    fields = record.fields
    request = _nested(fields, "req")
    method = fields.get("method") or request.get("method")
    path = fields.get("endpoint") or fields.get("route") or request.get("url")
    if not isinstance(path, str):
        return None
    path = path.split("?", 1)[0]
    return f"{method} {path}" if isinstance(method, str) else path


def correlation_id_of(record: LogRecord) -> str | None:
    """Return the record's correlation or request id, if it has one."""
    fields = record.fields
    request = _nested(fields, "req")
    for value in (
        fields.get("correlationId"),
        fields.get("correlation_id"),
        fields.get("requestId"),
        fields.get("reqId"),
        request.get("id"),
    ):
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None


def status_code_of(record: LogRecord) -> int | None:
    """Return the HTTP status of a request record (``statusCode`` or pino ``res``)."""
    fields = record.fields
    response = _nested(fields, "res")
    for value in (
        fields.get("statusCode"),
        fields.get("status"),
        response.get("statusCode"),
    ):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _nested(fields: dict[str, Any], key: str) -> dict[str, Any]:
    value = fields.get(key)
    return value if isinstance(value, dict) else {}


def _occurrences(records: Sequence[LogRecord], threshold: int) -> Iterable[_Occurrence]:
    paired: set[int] = set()
    for index, record in enumerate(records):
        if index in paired:
            continue
        if record.kind == "raw":
            # A crash report counts as fatal, any other error dump as error.
            rank = LEVEL_RANKS["fatal" if record.fields.get("crash") else "error"]
            if rank < threshold or not is_error_dump(record):
                continue
            request = _failed_request_after(records, index)
            if request is not None:
                paired.add(index + 1)
            yield _Occurrence(record, request)
        elif level_rank(record.level) >= threshold:
            yield _Occurrence(record, None)


def _failed_request_after(records: Sequence[LogRecord], index: int) -> LogRecord | None:
    # NOTE: raw output carries no time, so pairing relies on order alone. Only the
    # record right after the dump is taken, and only when it is a 5xx API_CALL.
    if index + 1 >= len(records):
        return None
    candidate = records[index + 1]
    status = status_code_of(candidate)
    if candidate.fields.get("event") != "API_CALL" or status is None or status < 500:
        return None
    return candidate


def _add(group: ErrorGroup, occurrence: _Occurrence) -> None:
    record, request = occurrence.record, occurrence.request
    context = request or record
    group.count += 1
    group.lines.append(record.raw_lines[0])
    time = record.time or context.time
    if time is not None:
        group.first_seen = min(time, group.first_seen or time)
        group.last_seen = max(time, group.last_seen or time)
    route = route_of(context)
    if route is not None:
        group.routes[route] = group.routes.get(route, 0) + 1
    correlation_id = correlation_id_of(context)
    ids = group.correlation_ids
    if correlation_id and correlation_id not in ids and len(ids) < MAX_CORRELATION_IDS:
        ids.append(correlation_id)


def _describe_raw(record: LogRecord) -> tuple[str, str | None]:
    text = record.excerpt or record.message
    signature = find_error_line(text) or record.message
    nested = _NESTED_MESSAGE.search(text)
    detail = (nested.group(1) or nested.group(2)) if nested else None
    if detail and detail not in signature:
        signature = f"{signature} / {detail}"
    return signature, _first_frame(text)


def _first_frame(text: str) -> str | None:
    match = _STACK_FRAME.search(text)
    return match.group(1) if match else None


def _sample(record: LogRecord) -> str:
    error = record.fields.get("err", record.fields.get("error"))
    stack = error.get("stack") if isinstance(error, dict) else None
    if record.excerpt:
        sample = record.excerpt
    elif isinstance(stack, str):
        sample = f"{record.message}\n{stack}"
    else:
        sample = record.message
    return sample[:EXCERPT_CHARS]


def _order(group: ErrorGroup) -> tuple[int, float, str]:
    first = group.first_seen.timestamp() if group.first_seen else float("inf")
    return (-group.count, first, group.signature)
