"""Number formats shared by every message and table: counts and percents.

Counts take the right plural ("1 group", "2 groups") and percents have a space
before the sign ("85 %"), the same in every procedure.
"""

from __future__ import annotations


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
