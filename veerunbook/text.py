"""Formats shared by every message and table: counts, percents and lists.

Counts take the right plural ("1 group", "2 groups") and percents have a space
before the sign ("85 %"), the same in every procedure. Lists built from what a target
reports are cut to a few short items, so one message stays one readable line.
"""

from __future__ import annotations

from collections.abc import Sequence

# Items that ``listed`` shows before it counts the rest.
LISTED_ITEMS = 10
# Characters that ``clipped`` keeps by default: the longest version that
# ``approllback_versions.VERSION_PATTERN`` accepts. The longest IP address without a
# zone id has 45.
ITEM_CHARS = 64


def counted(count: float, noun: str, plural: str | None = None) -> str:
    """Return ``count`` with ``noun`` in the singular or plural: "1 scrape"."""
    word = noun if count == 1 else (plural or noun + "s")
    return f"{count:g} {word}"


def percent(fraction: float, digits: int = 0) -> str:
    """Return a fraction as a percent with a space before the sign: "85 %"."""
    return f"{fraction * 100:.{digits}f} %"


def whole(value: float | None) -> float | int | None:
    """Return a whole-numbered count as an int, so a table shows 97, not 97.0."""
    if value is None or not float(value).is_integer():
        return value
    return int(value)


def clipped(text: str, limit: int = ITEM_CHARS) -> str:
    """Return ``text`` cut to at most ``limit`` characters, ending in "…" if cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def listed(items: Sequence[str], limit: int = LISTED_ITEMS, empty: str = "none") -> str:
    """Join the first ``limit`` items, each clipped, and count the rest.

    Returns "1.2, 1.1 and 18 more", or ``empty`` for no items.
    """
    if not items:
        return empty
    joined = ", ".join(clipped(item) for item in items[:limit])
    rest = len(items) - limit
    return f"{joined} and {rest} more" if rest > 0 else joined
