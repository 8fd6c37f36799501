"""Masking of secret values before anything is written, logged or printed.

A ``Redactor`` holds the values of the environment variables that the configuration
marks as secret. It masks each value in the forms in which it tends to leak: as is,
percent-encoded (inside a URL), JSON-escaped, and base64-encoded, including base64 blobs
whose decoded text merely contains the value (papermill's ``-b`` option carries YAML
that way). A value that is a database URL or a libpq ``key=value`` string adds its
password as a secret of its own (see ``connection_secrets``). Independently of the
known values, it masks the password of every URL with credentials
(``scheme://user:password@host``) and of libpq ``password=`` keywords, so a database URL
echoed back by a driver's error message is covered even when nobody declared it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

MASK = "***"

# Values shorter than this are not masked by value: masking "ab" everywhere would make
# every output unreadable while protecting nothing. URL passwords are masked regardless.
MIN_SECRET_LENGTH = 4

# Path segments of a secret URL at least this long are masked on their own. Shorter
# segments ("services", "hooks") are common words that carry no credential.
MIN_PATH_SEGMENT = 12

_URL_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9+.\-])(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)"
    r"(?P<pw>[^\s@/'\"]+)(?P<at>@)"
)
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?P<pw>'[^']*'|\"[^\"]*\"|[^\s'\";&]+)",
    re.IGNORECASE,
)
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/_\-]{16,}={0,2}")
# A URL's scheme, with SQLAlchemy's optional "+driver" suffix.
_URL_SCHEME = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9.\-]*)(?:\+\w+)?://")
# URL schemes that libpq parses; URLs of other schemes are split by urllib.
LIBPQ_SCHEMES = ("postgresql", "postgres")
# libpq keywords whose value is a secret (a password or the key file's passphrase).
LIBPQ_SECRET_KEYWORDS = ("password", "sslpassword")

_log = logging.getLogger("veerunbook.redact")


def _variants(value: str) -> set[str]:
    """Return the encodings of one secret value that are masked wherever they occur."""
    forms = {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        # Some JSON encoders (PHP's, for one) also escape "/" as "\/".
        json.dumps(value)[1:-1].replace("/", "\\/"),
    }
    raw = value.encode("utf-8")
    forms.add(base64.b64encode(raw).decode("ascii").rstrip("="))
    forms.add(base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="))
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _decode_base64(blob: str) -> list[bytes]:
    """Decode a blob as base64 and as base64url; return the decodings that succeed.

    Decoding is strict: the lenient default would drop the other alphabet's ``-_`` or
    ``+/`` and shift every later byte. The result stays bytes because a secret may sit
    among bytes that are not UTF-8.
    """
    padded = blob.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    decoded = []
    for alphabet in (None, b"-_"):
        try:
            decoded.append(base64.b64decode(padded, altchars=alphabet, validate=True))
        except (binascii.Error, ValueError):
            continue
    return decoded


class Redactor:
    """Mask known secret values and URL passwords in text and nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values: list[str] = []
        self._pattern: re.Pattern[str] | None = None
        for value in secrets:
            self.add(value)

    def add(self, value: str) -> None:
        """Mask ``value`` (and its password, if it is a URL) from now on."""
        if not value or len(value) < MIN_SECRET_LENGTH or value in self._values:
            return
        values = {*self._values, value}
        # A database password is a secret of its own: a driver or a server may echo
        # it without the rest of the URL or connection string.
        for part in connection_secrets(value) | url_path_secrets(value):
            if len(part) >= MIN_SECRET_LENGTH:
                values.add(part)
        self._values = sorted(values, key=len, reverse=True)
        forms: set[str] = set()
        for known in self._values:
            forms |= _variants(known)
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(form) for form in ordered))

    @classmethod
    def from_environment(
        cls, names: Iterable[str], environ: Mapping[str, str] | None = None
    ) -> Redactor:
        """Build a redactor from the values of the named environment variables.

        Each value that is a database URL or connection string adds its password too.
        """
        env = os.environ if environ is None else environ
        return cls(env[name] for name in names if env.get(name))

    def __bool__(self) -> bool:
        return True

    @property
    def secret_count(self) -> int:
        """Number of distinct secret values being masked (not counting encodings)."""
        return len(self._values)

    def mask(self, text: str) -> str:
        """Return ``text`` with secret values and URL passwords masked."""
        if not text:
            return text
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
            text = _BASE64_BLOB.sub(self._mask_blob, text)
        text = _URL_PASSWORD.sub(_mask_group, text)
        return _KEYWORD_PASSWORD.sub(_mask_group, text)

    def mask_obj(self, obj: Any) -> Any:
        """Return a copy of ``obj`` with every string in it (keys included) masked."""
        if isinstance(obj, str):
            return self.mask(obj)
        if isinstance(obj, Mapping):
            return {
                (self.mask(k) if isinstance(k, str) else k): self.mask_obj(v)
                for k, v in obj.items()
            }
        if isinstance(obj, list | tuple):
            return [self.mask_obj(item) for item in obj]
        return obj

    def _mask_blob(self, match: re.Match[str]) -> str:
        for decoded in _decode_base64(match.group(0)):
            if any(value.encode("utf-8") in decoded for value in self._values):
                return MASK
        return match.group(0)


def _mask_group(match: re.Match[str]) -> str:
    if match.group("pw") == MASK:
        return match.group(0)
    tail = match.groupdict().get("at") or ""
    return f"{match.group('head')}{MASK}{tail}"


def connection_secrets(value: str) -> set[str]:
    """Return the passwords inside a database URL or libpq ``key=value`` string.

    PostgreSQL URLs and ``key=value`` strings are parsed by libpq, so the password
    found is the one the driver sends. URLs of other schemes are split by urllib.
    When a URL's userinfo reads ``user:password`` but the parser finds no password
    in it or misreads it, the whole userinfo and the text after its first colon are
    returned, each also percent-decoded. Any other value returns an empty set.
    """
    text = value.strip()
    match = _URL_SCHEME.match(text)
    if match is None:
        return _conninfo_passwords(text) if "=" in text else set()
    if match.group("scheme").lower() in LIBPQ_SCHEMES:
        passwords = _libpq_passwords("postgresql://" + text[match.end() :]) or set()
    else:
        passwords = _urlsplit_passwords(text)
    userinfo = url_userinfo(text)
    written = userinfo.partition(":")[2] if userinfo else ""
    if userinfo is None or not written:
        return passwords
    if passwords and not userinfo_misread(userinfo):
        return passwords
    return passwords | {userinfo, unquote(userinfo), written, unquote(written)}


def url_path_secrets(value: str) -> set[str]:
    """Return the path and the long path segments of an http(s) URL, or nothing.

    A webhook URL carries its credential in the path (``/services/T0/B0/<token>``),
    so the path and each segment of at least ``MIN_PATH_SEGMENT`` characters are
    secrets of their own: a server may echo the token without the host.
    """
    text = value.strip()
    if not text.lower().startswith(("http://", "https://")):
        return set()
    try:
        parts = urlsplit(text)
    except ValueError:
        return set()
    found: set[str] = set()
    path = parts.path.strip("/")
    if len(path) >= MIN_PATH_SEGMENT:
        found.add(path)
    found.update(
        segment for segment in path.split("/") if len(segment) >= MIN_PATH_SEGMENT
    )
    if len(parts.query) >= MIN_PATH_SEGMENT:
        found.add(parts.query)
    return found


def url_userinfo(url: str) -> str | None:
    """Return the text between a URL's ``//`` and its last ``@``, or None.

    The last ``@`` is taken because a password may contain an unencoded ``@``, ``/``,
    ``?`` or ``#``. NOTE: an ``@`` in the path or query ends the userinfo as well, so
    the text returned then runs into the host and path.
    """
    _, slashes, rest = url.partition("//")
    userinfo, at, _ = rest.rpartition("@")
    return userinfo if slashes and at else None


def userinfo_misread(userinfo: str) -> bool:
    """Return True when libpq would misread ``userinfo`` as a URL's userinfo.

    libpq (18.0, in psycopg-binary 3.3) ends the userinfo at the first ``@`` or ``/``.
    """
    return "@" in userinfo or "/" in userinfo


def _libpq_passwords(conninfo: str) -> set[str] | None:
    """Return the secret keywords' values libpq parses, or None when it rejects them."""
    # Imported here because psycopg's import takes about 0.1 s, and most runs declare
    # no database URL among their secrets.
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        parsed = conninfo_to_dict(conninfo)
    except ProgrammingError:
        return None
    return {str(parsed[key]) for key in LIBPQ_SECRET_KEYWORDS if parsed.get(key)}


def _conninfo_passwords(text: str) -> set[str]:
    parsed = _libpq_passwords(text)
    if parsed is not None:
        return parsed
    # libpq rejects the string (an unquoted space, say), so take each password=
    # value as written: it may still be echoed on its own.
    found: set[str] = set()
    for match in _KEYWORD_PASSWORD.finditer(text):
        written = match.group("pw")
        found.update((written, written.strip("'\"")))
    return found


def _urlsplit_passwords(url: str) -> set[str]:
    try:
        password = urlsplit(url).password
    except ValueError:  # an unclosed IPv6 bracket or an invalid port
        return set()
    return {unquote(password)} if password else set()


def mask_url(url: str) -> str:
    """Return ``url`` with its password, if any, replaced by ``***``."""
    return _URL_PASSWORD.sub(_mask_group, url)


class RedactingFilter(logging.Filter):
    """Logging filter that masks secrets in the formatted message of every record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # Arguments that do not fit the format string: a handler would print a
            # logging error, but a filter runs outside that guard and would raise
            # into the caller. Keep both parts, masked, instead.
            message = f"{record.msg} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redactor.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.mask(record.stack_info)
        record.msg = self.redactor.mask(message)
        record.args = None
        return True
