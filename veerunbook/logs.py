"""Application log parsing, error grouping and request statistics.

``parse_log_text`` reads what a Node API writes to stdout and stderr. That is a mix of
JSON records (the service's own logger and pino), raw console output and stack dumps,
Node crash reports and the pretty-printed records of non-production instances. It
copes with records split by the container runtime, invalid UTF-8 and a last line cut
mid-record, and never raises for the content of the log. Lines it cannot read are
listed as malformed with a reason. ``normalise_entries`` turns the JSON entries of a
log endpoint such as ``/health/logs?level=error&last=1h`` into the same records.

On the records: ``group_errors`` groups failures by fingerprint, ``api_call_stats``
counts requests and 5xx responses, ``job_outcomes`` follows queue jobs and
``metric_samples`` collects metric values. Every message, field and excerpt returned
has its credentials masked (``mask_credentials``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from veerunbook.logs_grouping import ErrorGroup, fingerprint, group_errors
from veerunbook.logs_model import (
    LogParse,
    LogRecord,
    Malformed,
    Restart,
    normalise_level,
    record_from_object,
)
from veerunbook.logs_redact import mask_credentials, mask_fields
from veerunbook.logs_scan import scan_lines, split_lines
from veerunbook.logs_summary import (
    JobOutcome,
    api_call_stats,
    detect_restarts,
    job_outcomes,
    metric_samples,
)

__all__ = [
    "LIMIT_REACHED",
    "LOG_LIMIT",
    "ErrorGroup",
    "JobOutcome",
    "LogParse",
    "LogRecord",
    "Malformed",
    "Restart",
    "api_call_stats",
    "detect_restarts",
    "entry_limit",
    "fingerprint",
    "group_errors",
    "job_outcomes",
    "mask_credentials",
    "mask_fields",
    "metric_samples",
    "normalise_entries",
    "normalise_level",
    "parse_log_text",
]

logger = logging.getLogger("veerunbook.logs")

# Entries requested from a log endpoint. The demo serves at most 1000 per request,
# and 200 when the request names no limit.
LOG_LIMIT = 1000
LIMIT_REACHED = " (the endpoint's limit was reached, so older entries may be missing)"


def parse_log_text(data: bytes | str, *, source: str = "") -> LogParse:
    """Parse a log text into records, malformed lines and process restarts.

    ``source`` names the log (a file name or URL) in the result and in warnings.
    Raises ``TypeError`` when ``data`` is neither bytes nor str.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes or str, not {type(data).__name__}.")
    lines = split_lines(bytes(data))
    records, malformed = scan_lines(lines)
    parse = LogParse(source, len(lines), records, malformed, detect_restarts(records))
    if malformed:
        logger.warning(
            "%s: %d malformed log lines, the first at line %d",
            source or "log text",
            len(malformed),
            malformed[0].line,
        )
    logger.debug(
        "%s: %d lines, %d records", source or "log text", len(lines), len(records)
    )
    return parse


def normalise_entries(entries: Sequence[Any]) -> list[LogRecord]:
    """Turn the JSON objects of a log endpoint into records.

    Each entry is a pino-style object (``level``, ``time``, ``msg``,
    ``correlationId``, ``req``, ``err``) or one of the service's own logger. The
    record's ``raw_lines`` hold the entry's 1-based position in the list. Entries
    that are not objects are skipped with a warning.
    """
    records = []
    skipped = 0
    for position, entry in enumerate(entries, start=1):
        if isinstance(entry, dict):
            records.append(record_from_object(entry, (position, position)))
        else:
            skipped += 1
    if skipped:
        logger.warning("skipped %d log entries that are not JSON objects", skipped)
    return records


def entry_limit(body: Any) -> int:
    """Return the entry limit that a log endpoint applied, or the one requested."""
    limit = body.get("limit") if isinstance(body, dict) else None
    return limit if isinstance(limit, int) and limit > 0 else LOG_LIMIT
