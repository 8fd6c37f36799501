"""The application's own validation of payments rows.

Each row carries a SHA-256 checksum over its fields, written when the row is
created. A row fails validation when the checksum does not match, the amount is not
positive, or the currency is not a three-letter ISO 4217 code in lower case (Stripe's
form). A change made outside the application, such as a bad manual ``UPDATE``,
leaves the old checksum behind.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

_CURRENCY = re.compile(r"[a-z]{3}")

PAYMENT_COLUMNS = (
    "id",
    "account_id",
    "amount_cents",
    "currency",
    "status",
    "provider_ref",
    "created_at",
)


@dataclass(frozen=True)
class PaymentFinding:
    """One payments row that fails validation; the first problem is the main one."""

    payment_id: int
    amount_cents: int
    problems: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """Render the finding for JSON output."""
        return {
            "id": self.payment_id,
            "amountCents": self.amount_cents,
            "problems": list(self.problems),
        }


def payment_checksum(values: tuple[Any, ...]) -> str:
    """Return the SHA-256 hex digest of a row's values in ``PAYMENT_COLUMNS`` order."""
    text = "|".join(str(value) for value in values)
    return hashlib.sha256(text.encode()).hexdigest()


def find_invalid_payments(connection: sqlite3.Connection) -> list[PaymentFinding]:
    """Validate every payments row; return the failing rows in id order."""
    columns = ", ".join(PAYMENT_COLUMNS)
    rows = connection.execute(
        f"SELECT {columns}, checksum FROM payments ORDER BY id"
    ).fetchall()
    findings = []
    for row in rows:
        values, stored = tuple(row[: len(PAYMENT_COLUMNS)]), row[len(PAYMENT_COLUMNS)]
        problems = []
        if stored != payment_checksum(values):
            problems.append("checksum mismatch")
        amount, currency = values[2], values[3]
        if not isinstance(amount, int) or amount <= 0:
            problems.append("amount not positive")
        if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            problems.append("invalid currency")
        if problems:
            findings.append(PaymentFinding(int(values[0]), amount, tuple(problems)))
    return findings


def count_payments(connection: sqlite3.Connection) -> int:
    """Return the number of payments rows."""
    (count,) = connection.execute("SELECT COUNT(*) FROM payments").fetchone()
    return int(count)


def summarise_findings(findings: list[PaymentFinding], checked: int) -> str:
    """Summarise validation in one line, naming each main problem found.

    For example ``"12 payments rows fail validation (checksum mismatch)"``.
    """
    if not findings:
        return f"{checked} payments rows pass validation"
    main_problems = dict.fromkeys(finding.problems[0] for finding in findings)
    noun = "row fails" if len(findings) == 1 else "rows fail"
    return f"{len(findings)} payments {noun} validation ({', '.join(main_problems)})"
