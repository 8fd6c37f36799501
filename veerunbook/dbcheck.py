"""The target's database URL: reading, parsing and display with the password masked.

``read_database_url`` reads the environment variable a target names and returns a
``DatabaseUrl``. Its ``shown`` form is rebuilt from the parsed parts with every
password replaced by ``***``, so the raw value is never displayed, not even when it
cannot be parsed (it might be a bare password pasted by mistake). The raw value is
kept in ``dsn`` for the driver only: it is left out of ``repr`` and ``to_dict``.

A URL whose password libpq would misread is invalid, and only its scheme is shown.
libpq ends the userinfo at the first ``@`` or ``/``, so with ``postgresql://app:pa/ss@db``
it reads ``pa`` as the port and ``ss@db`` as the database: showing those parts, or
connecting with them, would give the password away.

Accepted forms:

- PostgreSQL: ``postgresql://`` and ``postgres://`` URIs, SQLAlchemy's
  ``postgresql+DRIVER://`` (the suffix is dropped for libpq) and libpq's
  ``key=value`` connection strings, all parsed by libpq through psycopg.
- SQLite: SQLAlchemy's ``sqlite:///relative/path`` and ``sqlite:////absolute/path``
  and Prisma's ``file:path``. Relative paths are resolved against the working
  directory.
- Other schemes (``mysql``, ``mongodb``, ...) are recognised as unsupported.

The SQLite checks live in ``veerunbook.sqlite_check``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from veerunbook.dbconn_url import port_problem, show_postgres
from veerunbook.redact import (
    LIBPQ_SCHEMES,
    LIBPQ_SECRET_KEYWORDS,
    MASK,
    connection_secrets,
    url_userinfo,
    userinfo_misread,
)

UrlState = Literal["missing", "invalid", "postgresql", "sqlite", "unsupported"]

_SQLITE_SCHEMES = ("sqlite",)
_OTHER_SCHEMES = ("mysql", "mariadb", "mssql", "sqlserver", "mongodb", "redis")
_SCHEME = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9.\-]*)(?:\+(?P<driver>\w+))?://")
# Quoted parts of a libpq parse error may quote the whole value, password included;
# only these keywords are kept verbatim.
_LIBPQ_KEYWORDS = frozenset(
    {"host", "hostaddr", "port", "dbname", "user", "sslmode", "connect_timeout"}
)
_QUOTED = re.compile(r'"[^"]*"')
_MISREAD = (
    "the password contains an unencoded '@' or '/', which libpq takes for its end. "
    "Percent-encode '@' as %40 and '/' as %2F (an '@' in the database name or query "
    "counts too)"
)


@dataclass(frozen=True)
class DatabaseUrl:
    """A database URL as read from the environment, with its password masked.

    ``state`` is ``missing`` (variable unset or empty), ``invalid`` (cannot be
    parsed), ``unsupported`` (a database this procedure does not check) or the
    engine. ``problem`` is the reason the URL cannot be used, else None.
    """

    env_name: str
    state: UrlState
    shown: str = ""
    scheme: str | None = None
    problem: str | None = None
    has_password: bool = False
    host: str | None = None
    port: str | None = None
    database: str | None = None
    user: str | None = None
    sqlite_path: Path | None = None
    notes: tuple[str, ...] = ()
    dsn: str = field(default="", repr=False, compare=False)

    @property
    def usable(self) -> bool:
        """True when a direct connection can be attempted."""
        return self.state in ("postgresql", "sqlite") and self.problem is None

    def to_dict(self) -> dict[str, Any]:
        """Return the parsed parts as JSON values, without the raw value."""
        return {
            "env": self.env_name,
            "state": self.state,
            "shown": self.shown,
            "scheme": self.scheme,
            "problem": self.problem,
            "has_password": self.has_password,
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            "sqlite_path": str(self.sqlite_path) if self.sqlite_path else None,
            "notes": list(self.notes),
        }


def read_database_url(
    env_name: str, environ: Mapping[str, str] | None = None
) -> DatabaseUrl:
    """Read and parse the database URL held by the environment variable ``env_name``."""
    env = os.environ if environ is None else environ
    value = env.get(env_name, "")
    if not value.strip():
        # The variable is read in this process, not in the application's, so an
        # unset one shows nothing about the application's own configuration.
        state = "set but empty" if env_name in env else "not set"
        return DatabaseUrl(env_name, "missing", problem=f"${env_name} is {state}")
    return parse_database_url(value, env_name)


def parse_database_url(value: str, env_name: str = "") -> DatabaseUrl:
    """Parse a database URL or libpq connection string; never raise for its content."""
    text = value.strip()
    match = _SCHEME.match(text)
    if match is not None:
        scheme = match.group("scheme").lower()
        if scheme in LIBPQ_SCHEMES:
            return _parse_postgres(text, match, env_name)
        if scheme in _SQLITE_SCHEMES:
            return _parse_sqlite(text, text[match.end() :], scheme, env_name)
        if scheme in _OTHER_SCHEMES:
            return DatabaseUrl(
                env_name,
                "unsupported",
                shown=f"{scheme}://(not shown)",
                scheme=scheme,
                problem=f"{scheme} databases are not checked by this procedure",
                dsn=text,
            )
        return _invalid(env_name, f"unknown scheme {scheme!r}", text)
    if text.lower().startswith("file:"):
        rest = text[len("file:") :]
        return _parse_sqlite(text, rest, "file", env_name, prisma=True)
    if "=" in text:
        return _parse_keywords(text, env_name)
    return _invalid(env_name, "neither a URL with a scheme nor key=value pairs", text)


def _invalid(
    env_name: str, reason: str, text: str, scheme: str | None = None
) -> DatabaseUrl:
    """Return an invalid URL that shows at most its scheme."""
    shown = "(not shown: it cannot be parsed, so its password cannot be located)"
    return DatabaseUrl(
        env_name,
        "invalid",
        shown=f"{scheme}://(unparseable; not shown)" if scheme else shown,
        scheme=scheme,
        problem=f"${env_name} is not a valid database URL: {reason}",
        dsn=text,
    )


def _parse_postgres(text: str, match: re.Match[str], env_name: str) -> DatabaseUrl:
    notes: tuple[str, ...] = ()
    dsn = text
    driver = match.group("driver")
    if driver:
        # SQLAlchemy's dialect+driver form; libpq accepts only the bare scheme.
        dsn = "postgresql://" + text[match.end() :]
        notes = (f"the SQLAlchemy driver suffix +{driver} is not passed to libpq",)
    scheme = match.group("scheme").lower() + (f"+{driver}" if driver else "")
    # The userinfo runs to the last "@", so a password containing "@" or "/" shows
    # here even though libpq would misread it.
    userinfo = url_userinfo(text)
    written = userinfo.partition(":")[2] if userinfo else ""
    if userinfo and written and userinfo_misread(userinfo):
        return _invalid(env_name, _MISREAD, text, scheme)
    # psycopg is imported here because its import takes about 0.1 s, and only a
    # PostgreSQL URL needs it.
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        parsed = conninfo_to_dict(dsn)
    except ProgrammingError as exc:
        reason = f"libpq: {_libpq_reason(str(exc))}"
        return _invalid(env_name, reason, text, scheme)
    if written and not any(parsed.get(key) for key in LIBPQ_SECRET_KEYWORDS):
        return _invalid(env_name, _MISREAD, text, scheme)
    return _parsed(parsed, dsn, scheme, env_name, notes)


def _parse_keywords(text: str, env_name: str) -> DatabaseUrl:
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        parsed = conninfo_to_dict(text)
    except ProgrammingError as exc:
        return _invalid(env_name, f"libpq: {_libpq_reason(str(exc))}", text)
    return _parsed(parsed, text, "postgresql (key=value)", env_name, ())


def _parsed(
    parsed: Mapping[str, Any],
    dsn: str,
    scheme: str,
    env_name: str,
    notes: tuple[str, ...],
) -> DatabaseUrl:
    parts = {key: str(item) for key, item in parsed.items() if item is not None}
    problem = port_problem(parts.get("port"))
    if problem is not None:
        problem = f"${env_name}: {problem}"
    return DatabaseUrl(
        env_name,
        "postgresql",
        shown=show_postgres(parts, keywords="://" not in dsn),
        scheme=scheme,
        problem=problem,
        has_password=any(parts.get(key) for key in LIBPQ_SECRET_KEYWORDS),
        host=parts.get("host") or parts.get("hostaddr"),
        port=parts.get("port"),
        database=parts.get("dbname"),
        user=parts.get("user"),
        notes=notes,
        dsn=dsn,
    )


def _libpq_reason(message: str) -> str:
    """Return libpq's first line with every quoted part masked but keyword names."""
    first = message.strip().splitlines()[0] if message.strip() else "parse error"

    def keep_keyword(match: re.Match[str]) -> str:
        inner = match.group(0)[1:-1]
        return match.group(0) if inner in _LIBPQ_KEYWORDS else f'"{MASK}"'

    return _QUOTED.sub(keep_keyword, first)


def _parse_sqlite(
    text: str, rest: str, scheme: str, env_name: str, *, prisma: bool = False
) -> DatabaseUrl:
    path_text, _, query = rest.partition("?")
    notes: list[str] = []
    if query:
        notes.append("the URL's query parameters are not used by these checks")
    if not prisma:
        # sqlite:///relative and sqlite:////absolute: the part after "://" is an
        # empty host followed by "/" and the path.
        if path_text and not path_text.startswith("/"):
            return _invalid(
                env_name, "a sqlite URL needs three slashes: sqlite:///", text
            )
        path_text = path_text[1:]
    if path_text in ("", ":memory:"):
        return DatabaseUrl(
            env_name,
            "sqlite",
            shown=f"{scheme}:///:memory:",
            scheme=scheme,
            problem="an in-memory SQLite database exists only inside the "
            "application's process and cannot be checked from here",
        )
    path = Path(path_text)
    if not path.is_absolute():
        where = "its schema's folder (Prisma)" if prisma else "its working directory"
        notes.append(
            f"relative path resolved against {Path.cwd()}; the application resolves "
            f"it against {where}"
        )
        path = Path.cwd() / path
    shown = f"file:{path_text}" if prisma else f"sqlite:///{path_text}"
    return DatabaseUrl(
        env_name,
        "sqlite",
        shown=shown,
        scheme=scheme,
        database=str(path),
        sqlite_path=path,
        notes=tuple(notes),
        dsn=str(path),
    )


def secret_values(url: DatabaseUrl) -> list[str]:
    """Return the values to mask for ``url``: the raw value and each password.

    A URL without a password (the demo's SQLite file) returns nothing. A value that
    cannot be parsed is returned whole, with the userinfo of a URL whose password
    libpq cannot locate (see ``redact.connection_secrets``).
    """
    if url.state == "postgresql" and not url.has_password:
        return []
    if url.state not in ("invalid", "unsupported", "postgresql"):
        return []
    return [url.dsn, *sorted(connection_secrets(url.dsn))]
