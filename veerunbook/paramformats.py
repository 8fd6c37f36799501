"""Value formats of text parameters, checked before a run writes anything.

A text parameter's help text may end with ``{format}``, after any ``[low..high]``
range, such as ``# version to roll back to {version}``. ``FORMATS`` maps each
format's name to its description and its check. A check returns None for a valid
value, else a sentence that names the value and the fix. The empty string
always passes, because it means "choose for me" in every procedure that uses a
format.

The checks are syntax only. Whether an address may be blocked or a version exists is
decided by the procedure, which reads the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from veerunbook.approllback_versions import VERSION_PATTERN
from veerunbook.backup_manifest import check_backup_name
from veerunbook.blocklist import parse_network, split_addresses
from veerunbook.errors import UsageError

__all__ = ["FORMATS", "ValueFormat", "check_format"]

# Values longer than this are shortened in messages.
MAX_SHOWN_CHARS = 40


@dataclass(frozen=True)
class ValueFormat:
    """A named format: what it accepts, for ``veerunbook show``, and its check."""

    name: str
    description: str
    check: Callable[[str], str | None]


def _shown(value: str) -> str:
    text = repr(value)
    if len(text) > MAX_SHOWN_CHARS:
        text = text[: MAX_SHOWN_CHARS - 3] + "..."
    return text


def _check_addresses(value: str) -> str | None:
    items = split_addresses(value)
    if not items:
        return (
            f"{_shown(value)} contains no address; give at least one or leave it empty"
        )
    for item in items:
        try:
            parse_network(item)
        except ValueError as exc:
            if len(item) <= MAX_SHOWN_CHARS:
                return str(exc)
            return (
                f"invalid address {_shown(item)}: give IPv4 or IPv6 addresses or CIDR "
                "ranges such as 203.0.113.0/24, separated by commas"
            )
    return None


def _check_version(value: str) -> str | None:
    if VERSION_PATTERN.fullmatch(value):
        return None
    return (
        f"invalid version {_shown(value)}: use 1 to 64 letters, digits, '.', '_', '+' "
        "or '-', starting with a letter or digit, such as 1.4.2"
    )


def _check_backup_name(value: str) -> str | None:
    try:
        check_backup_name(value)
    except UsageError as exc:
        # The message names the value and the rule, so only a long value needs care.
        if len(value) <= MAX_SHOWN_CHARS:
            return str(exc)
        return f"invalid backup name {_shown(value)}: use at most 64 characters"
    return None


def _check_utc_time(value: str) -> str | None:
    fix = "use ISO 8601 with Z or an offset, such as 2026-03-01T12:00:00Z"
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return f"invalid time {_shown(value)}: {fix}"
    if moment.tzinfo is None:
        return f"time {_shown(value)} has no time zone: {fix}"
    return None


FORMATS: dict[str, ValueFormat] = {
    item.name: item
    for item in (
        ValueFormat(
            "addresses",
            "IPv4 or IPv6 addresses or CIDR ranges, separated by commas",
            _check_addresses,
        ),
        ValueFormat(
            "version",
            "1 to 64 letters, digits, '.', '_', '+' or '-', starting with a letter "
            "or digit, such as 1.4.2",
            _check_version,
        ),
        ValueFormat(
            "backup-name",
            "1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit",
            _check_backup_name,
        ),
        ValueFormat(
            "utc-time",
            "ISO 8601 time with Z or an offset, such as 2026-03-01T12:00:00Z",
            _check_utc_time,
        ),
    )
}


def check_format(name: str, value: str) -> str | None:
    """Check ``value`` against format ``name`` and return the problem, or None.

    Raises KeyError for an unknown format name.
    """
    if value == "":
        return None
    return FORMATS[name].check(value)
