"""Splitting of a Node service's merged stdout and stderr into log events.

Each physical line is decoded on its own, with invalid UTF-8 replaced, and read by the
first rule that applies:

- a line starting with ``{`` is a JSON record. When it does not parse, it is re-joined
  with the next line if it is a piece of a record that the container runtime split
  (Docker and containerd cut lines into 16 KiB pieces), or if the concatenation parses.
  A line ending in ``{`` opens a pretty-printed object. Otherwise it is malformed.
- ``[2026-12-04T14:40:12.337Z] ERROR: message {`` is the non-production prefix line,
  followed by the record as pretty-printed JSON over many lines.
- a line starting with whitespace, ``}`` or ``]`` continues the open raw event, so a
  stack trace or an ``AxiosError`` dump is one event.
- Node's crash report (``node:internal/process/promises:394`` down to ``Node.js v20``)
  is one raw event, blank lines included.
- any other line starts a raw event. Blank lines elsewhere are skipped.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from veerunbook.logs_model import (
    LogRecord,
    Malformed,
    normalise_level,
    parse_time,
    record_from_object,
)
from veerunbook.logs_redact import mask_credentials

logger = logging.getLogger("veerunbook.logs")

# Docker's json-file driver and containerd's CRI logger cut longer lines into pieces
# of this size; every piece but the last is exactly this long.
PARTIAL_LINE_BYTES = 16384
MAX_PRETTY_LINES = 2000
MAX_CRASH_LINES = 200
EXCERPT_CHARS = 2000

_PREFIX = re.compile(r"^\[(\d{4}-\d\d-\d\d[T ][^\]]*)\]\s+([A-Za-z]+):\s?(.*)$")
# The source position Node prints first when a process dies of an uncaught error.
_CRASH_ORIGIN = re.compile(r"^(?:node:[\w/]+|file://\S+|/\S+|[A-Za-z]:\\\S+):\d+$")
_NODE_VERSION = re.compile(r"^Node\.js (v\d+\.\d+\.\d+)\s*$")
_ERROR_LINE = re.compile(r"(?<![\w.])(?:[A-Z][\w.]*)?(?:Error|Exception): .+$")


@dataclass(frozen=True, slots=True)
class PhysicalLine:
    """One line of input: its number, bytes, decoded text and how it ended."""

    number: int
    data: bytes
    text: str
    invalid_utf8: bool
    terminated: bool


def split_lines(data: bytes) -> list[PhysicalLine]:
    """Split bytes at ``\\n`` and decode each line, replacing invalid UTF-8."""
    pieces = data.split(b"\n")
    last_terminated = pieces[-1] == b""
    if last_terminated:
        pieces.pop()
    lines = []
    for index, piece in enumerate(pieces):
        piece = piece.removesuffix(b"\r")
        text, invalid = _decode(piece)
        terminated = last_terminated or index < len(pieces) - 1
        lines.append(PhysicalLine(index + 1, piece, text, invalid, terminated))
    return lines


def scan_lines(lines: list[PhysicalLine]) -> tuple[list[LogRecord], list[Malformed]]:
    """Group physical lines into records and return them with the malformed lines."""
    scanner = _Scanner(lines)
    scanner.run()
    return scanner.records, scanner.malformed


def find_error_line(text: str) -> str | None:
    """Return the first ``SomeError: message`` found in a line of ``text``."""
    for line in text.splitlines():
        match = _ERROR_LINE.search(line)
        if match:
            return match.group(0).strip()
    return None


class _Scanner:
    def __init__(self, lines: list[PhysicalLine]) -> None:
        self._lines = lines
        self._next = 0
        self._raw: list[PhysicalLine] = []
        self._crash = False
        self.records: list[LogRecord] = []
        self.malformed: list[Malformed] = []

    def run(self) -> None:
        while self._next < len(self._lines):
            line = self._lines[self._next]
            self._next += 1
            self._dispatch(line)
        self._close_raw()

    def _dispatch(self, line: PhysicalLine) -> None:
        text = line.text
        if self._crash and not _starts_record(text):
            self._add_crash_line(line)
        elif not text.strip():
            return
        elif text.startswith("{"):
            self._close_raw()
            self._read_json(line)
        elif prefix := _PREFIX.match(text):
            self._close_raw()
            self._read_prefixed(line, prefix)
        elif self._raw and text[0] in " \t}]":
            self._raw.append(line)
        else:
            self._close_raw()
            self._raw = [line]
            self._crash = _CRASH_ORIGIN.match(text) is not None

    def _add_crash_line(self, line: PhysicalLine) -> None:
        self._raw.append(line)
        if _NODE_VERSION.match(line.text) or len(self._raw) >= MAX_CRASH_LINES:
            self._close_raw()

    def _close_raw(self) -> None:
        if self._raw:
            self.records.append(_raw_record(self._raw, crash=self._crash))
        self._raw = []
        self._crash = False

    def _read_json(self, line: PhysicalLine) -> None:
        obj, error = _load_object(line.text)
        if obj is not None:
            self._emit(obj, line.number, line.number)
        elif len(line.data) == PARTIAL_LINE_BYTES and self._has_piece_after():
            self._read_split(line)
        elif line.text.rstrip().endswith("{"):
            self._read_block(line)
        elif not self._join_next(line):
            self.malformed.append(Malformed(line.number, _reason(line, error)))

    def _read_split(self, head: PhysicalLine) -> None:
        parts = [head]
        while len(parts[-1].data) == PARTIAL_LINE_BYTES and self._has_piece_after():
            parts.append(self._lines[self._next])
            self._next += 1
        joined = b"".join(part.data for part in parts).decode("utf-8", "replace")
        obj, error = _load_object(joined)
        if obj is not None:
            logger.debug(
                "re-joined a record split over lines %d-%d",
                head.number,
                parts[-1].number,
            )
            self._emit(obj, head.number, parts[-1].number)
            return
        reason = (
            f"A record split every {PARTIAL_LINE_BYTES} bytes into {len(parts)} "
            f"lines does not parse after re-joining ({error})."
        )
        self.malformed.extend(Malformed(part.number, reason) for part in parts)

    def _has_piece_after(self) -> bool:
        return self._next < len(self._lines) and self._lines[self._next].data != b""

    def _join_next(self, head: PhysicalLine) -> bool:
        if self._next >= len(self._lines):
            return False
        tail = self._lines[self._next]
        if _starts_record(tail.text) or not tail.text.strip():
            return False
        obj, _ = _load_object((head.data + tail.data).decode("utf-8", "replace"))
        if obj is None:
            return False
        self._next += 1
        self._emit(obj, head.number, tail.number)
        return True

    def _read_block(self, head: PhysicalLine) -> None:
        obj, last = self._collect_block(head)
        if obj is None:
            reason = "A pretty-printed JSON record starting here does not parse."
            self.malformed.append(Malformed(head.number, reason))
        else:
            self._emit(obj, head.number, last, kind="pretty")

    def _read_prefixed(self, head: PhysicalLine, prefix: re.Match[str]) -> None:
        stamp, level, rest = prefix.groups()
        message = rest.rstrip().removesuffix("{").strip()
        obj: dict[str, Any] | None = None
        last = head.number
        if rest.rstrip().endswith("{"):
            obj, last = self._collect_block(head, opening="{")
        self._emit(
            obj or {},
            head.number,
            last,
            kind="pretty",
            default_time=parse_time(stamp),
            default_level=normalise_level(level),
            default_message=message,
        )

    def _collect_block(
        self, head: PhysicalLine, opening: str | None = None
    ) -> tuple[dict[str, Any] | None, int]:
        buffer = [opening if opening is not None else head.text]
        taken: list[PhysicalLine] = []
        while self._next < len(self._lines) and len(taken) < MAX_PRETTY_LINES:
            line = self._lines[self._next]
            if not line.text or line.text[0] not in " \t}]":
                break
            self._next += 1
            taken.append(line)
            buffer.append(line.text)
            if line.text[0] in "}]":
                obj, _ = _load_object("\n".join(buffer))
                if obj is not None:
                    return obj, line.number
        reason = f"Pretty-printed JSON after line {head.number} does not parse."
        self.malformed.extend(Malformed(line.number, reason) for line in taken)
        return None, head.number

    def _emit(self, obj: dict[str, Any], first: int, last: int, **options: Any) -> None:
        self.records.append(record_from_object(obj, (first, last), **options))


def _raw_record(lines: list[PhysicalLine], *, crash: bool) -> LogRecord:
    text = "\n".join(line.text for line in lines)
    message = lines[0].text.strip()
    fields: dict[str, Any] = {}
    if crash:
        fields = {"crash": True, "origin": message}
        message = find_error_line(text) or message
        versions = [
            m.group(1) for line in lines if (m := _NODE_VERSION.match(line.text))
        ]
        if versions:
            fields["node_version"] = versions[0]
    return LogRecord(
        time=None,
        level=None,
        message=mask_credentials(message)[:EXCERPT_CHARS],
        fields=fields,
        raw_lines=(lines[0].number, lines[-1].number),
        kind="raw",
        excerpt=mask_credentials(text)[:EXCERPT_CHARS],
    )


def _starts_record(text: str) -> bool:
    return text.startswith("{") or _PREFIX.match(text) is not None


def _load_object(text: str) -> tuple[dict[str, Any] | None, str]:
    """Return a decoded JSON object, or ``None`` and the decoder's error message."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"{exc.msg}: column {exc.colno}"
    except (ValueError, RecursionError) as exc:  # over-long integers, deep nesting
        return None, str(exc) or type(exc).__name__
    if not isinstance(value, dict):
        return None, "not a JSON object"
    return value, ""


def _reason(line: PhysicalLine, error: str) -> str:
    sentences = [f"Invalid JSON record ({error})."]
    if line.invalid_utf8:
        sentences.append("The line contains invalid UTF-8.")
    if not line.terminated:
        sentences.append("It is the last line and has no newline, so it was cut short.")
    return " ".join(sentences)


def _decode(data: bytes) -> tuple[str, bool]:
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace"), True
