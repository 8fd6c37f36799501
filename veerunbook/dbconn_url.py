"""The check of the database URL variable that the target's configuration names.

The variable is read in this process, so an unset one shows nothing about the
application. Without it, the database is only not checked directly. That is a skip
with a hint for the default ``DATABASE_URL``, and a warning when the target names a
variable of its own in ``database_url_env`` and it is missing.

``show_postgres`` and ``port_problem`` build the shown form and the port problem of a
PostgreSQL URL that ``veerunbook.dbcheck`` has parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from veerunbook.redact import LIBPQ_SECRET_KEYWORDS, MASK

if TYPE_CHECKING:
    from veerunbook.dbcheck import DatabaseUrl
    from veerunbook.record import RunContext

# The variable a target reads when its configuration names none (Target's default).
DEFAULT_ENV = "DATABASE_URL"
MAX_PORT = 65535
SET_HINT = (
    "set DATABASE_URL or the target's database_url_env to check the database directly"
)


def url_status(url: DatabaseUrl) -> str:
    """Return the check status for ``url``: pass, skip, warn or fail."""
    if url.state == "missing":
        # NOTE: a configuration that names DATABASE_URL itself looks the same as one
        # that names no variable, so both give a skip.
        return "skip" if url.env_name == DEFAULT_ENV else "warn"
    if url.state == "unsupported":
        return "warn"
    if url.state == "sqlite" and url.problem:
        return "skip"  # an in-memory database lives only inside the application
    return "pass" if url.usable else "fail"


def url_summary(url: DatabaseUrl) -> str:
    """Return one line on ``url``: where it was read, or what is wrong and the fix."""
    if url.state == "missing" and url.env_name == DEFAULT_ENV:
        return f"{url.problem}; {SET_HINT}"
    if url.state == "missing":
        return (
            f"{url.problem}, although the target's database_url_env names it; set it "
            "to check the database directly"
        )
    return url.problem or f"{url.state} URL in ${url.env_name}: {url.shown}"


def check_url(run: RunContext, url: DatabaseUrl) -> None:
    """Journal the database URL check."""
    run.check(
        "database URL",
        url_status(url),
        observed=url.state,
        expected="a postgresql:// or sqlite:/// URL",
        evidence=url.to_dict(),
        summary=url_summary(url),
    )


def port_problem(port: str | None) -> str | None:
    """Return why a libpq ``port`` value is invalid, or None for a valid one."""
    if port is None:
        return None
    # libpq takes one port per host, comma-separated.
    for item in port.split(","):
        if item and not (item.isdigit() and 0 < int(item) <= MAX_PORT):
            return f"invalid port {item!r}: use a number from 1 to {MAX_PORT}"
    return None


def show_postgres(parts: Mapping[str, str], *, keywords: bool) -> str:
    """Rebuild the connection string from its parts with the secrets masked."""
    shown = {
        key: (MASK if key in LIBPQ_SECRET_KEYWORDS else item)
        for key, item in parts.items()
    }
    if keywords:
        return " ".join(f"{key}={item}" for key, item in sorted(shown.items()))
    user = shown.pop("user", "")
    password = shown.pop("password", None)
    host = shown.pop("host", "")
    port = shown.pop("port", "")
    dbname = shown.pop("dbname", "")
    userinfo = user + (f":{password}" if password else "")
    netloc = host
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    if port:
        netloc = f"{netloc}:{port}"
    query = "&".join(f"{key}={item}" for key, item in sorted(shown.items()))
    return f"postgresql://{netloc}/{dbname}" + (f"?{query}" if query else "")
