"""Log records as parsed from an application's output, and their normalisation.

A ``LogRecord`` is one event: a JSON record (the service's own logger or pino), a
pretty-printed record of a non-production instance, or raw console output such as a
``console.error`` stack dump or Node's crash report. Levels are normalised to
``trace``, ``debug``, ``info``, ``warn``, ``error`` and ``fatal``. Times are
timezone-aware UTC. Messages and fields are masked with ``veerunbook.logs_redact``
when a record is built.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from veerunbook.logs_redact import mask_credentials, mask_fields

Kind = Literal["json", "raw", "pretty"]

LEVEL_RANKS: dict[str, int] = {
    "trace": 10,
    "debug": 20,
    "info": 30,
    "warn": 40,
    "error": 50,
    "fatal": 60,
}

_LEVEL_NAMES: dict[str, str] = {
    **{name: name for name in LEVEL_RANKS},
    "verbose": "trace",
    "silly": "trace",
    "notice": "info",
    "information": "info",
    "warning": "warn",
    "err": "error",
    "critical": "fatal",
    "crit": "fatal",
    "alert": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "panic": "fatal",
}

# Keys that become the record's time, level and message instead of a field.
_RESERVED_KEYS = frozenset(
    {"level", "time", "timestamp", "@timestamp", "msg", "message"}
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Epoch values at or above this are milliseconds (pino's ``time``), below it seconds:
# 1e11 seconds lies in the year 5138, 1e11 milliseconds in March 1973.
_EPOCH_MS_FROM = 100_000_000_000


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One log event with its source line range (1-based, both ends included)."""

    time: datetime | None
    level: str | None
    message: str
    fields: dict[str, Any]
    raw_lines: tuple[int, int]
    kind: Kind
    # Masked source text of a raw event, capped; JSON records keep theirs in fields.
    excerpt: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-compatible values."""
        return {
            "time": format_time(self.time),
            "level": self.level,
            "message": self.message,
            "fields": self.fields,
            "raw_lines": list(self.raw_lines),
            "kind": self.kind,
            "excerpt": self.excerpt,
        }


@dataclass(frozen=True, slots=True)
class Malformed:
    """A physical line that could not be parsed, with the reason in a sentence."""

    line: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-compatible values."""
        return {"line": self.line, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Restart:
    """A process restart, seen as a new pid on the same host."""

    line: int
    time: datetime | None
    hostname: str
    old_pid: int
    new_pid: int

    def to_dict(self) -> dict[str, Any]:
        """Return the restart as JSON-compatible values."""
        return {
            "line": self.line,
            "time": format_time(self.time),
            "hostname": self.hostname,
            "old_pid": self.old_pid,
            "new_pid": self.new_pid,
        }


@dataclass(frozen=True, slots=True)
class LogParse:
    """The result of parsing one log text."""

    source: str
    line_count: int
    records: list[LogRecord]
    malformed: list[Malformed]
    restarts: list[Restart] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Number of records per normalised level (raw console output has none)."""
        levels = Counter(r.level for r in self.records if r.level is not None)
        return {name: levels[name] for name in LEVEL_RANKS if levels[name]}

    def to_dict(self) -> dict[str, Any]:
        """Return the whole parse as JSON-compatible values."""
        return {
            "source": self.source,
            "line_count": self.line_count,
            "counts": self.counts,
            "records": [record.to_dict() for record in self.records],
            "malformed": [entry.to_dict() for entry in self.malformed],
            "restarts": [restart.to_dict() for restart in self.restarts],
        }


def normalise_level(value: Any) -> str | None:
    """Map a string level or a pino numeric level (10-60) to a normalised name.

    A number between pino's steps takes the step below it (35 is ``info``). Unknown
    values return ``None``.
    """
    if isinstance(value, str):
        return _LEVEL_NAMES.get(value.strip().lower())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    names = [name for name, rank in LEVEL_RANKS.items() if rank <= value]
    return names[-1] if names else None


def level_rank(level: str | None) -> int:
    """Return the numeric rank of a normalised level, 0 for ``None``."""
    return LEVEL_RANKS.get(level, 0) if level is not None else 0


def parse_time(value: Any) -> datetime | None:
    """Parse an ISO 8601 string or an epoch number (seconds or milliseconds) as UTC.

    A time without an offset is taken as UTC. Invalid values return ``None``.
    """
    if isinstance(value, str):
        return _parse_iso(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    unit = "milliseconds" if abs(value) >= _EPOCH_MS_FROM else "seconds"
    try:
        return _EPOCH + timedelta(**{unit: value})
    except (OverflowError, ValueError):  # out of range, or NaN
        return None


def record_from_object(
    obj: dict[str, Any],
    raw_lines: tuple[int, int],
    kind: Kind = "json",
    *,
    default_time: datetime | None = None,
    default_level: str | None = None,
    default_message: str = "",
) -> LogRecord:
    """Build a record from a decoded JSON object; its own values win over defaults."""
    time = parse_time(_first_present(obj, "timestamp", "time", "@timestamp"))
    level = normalise_level(obj.get("level"))
    message = _first_present(obj, "message", "msg")
    fields = {k: v for k, v in obj.items() if k not in _RESERVED_KEYS}
    return LogRecord(
        time=time or default_time,
        level=level or default_level,
        message=mask_credentials(
            str(message) if message is not None else default_message
        ),
        fields=mask_fields(fields),
        raw_lines=raw_lines,
        kind=kind,
    )


def _first_present(obj: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if obj.get(key) is not None:
            return obj[key]
    return None


def _parse_iso(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.strip())
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def format_time(value: datetime | None) -> str | None:
    """Return ISO 8601 UTC with milliseconds and ``Z``, or ``None``."""
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
