"""Masking of secret values before anything is written, logged or printed.

A ``Redactor`` holds the values of the environment variables that the configuration
marks as secret. It masks each value in the forms in which it tends to leak: as is,
percent-encoded (inside a URL), JSON-escaped, and base64-encoded, including base64 blobs
whose decoded text merely contains the value (papermill's ``-b`` option carries YAML
that way). Independently of the known values, it masks the password of every URL with
credentials (``scheme://user:password@host``) and of libpq ``password=`` keywords, so a
database URL echoed back by a driver's error message is covered even when nobody
declared it.
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

_URL_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)"
    r"(?P<pw>[^\s@/'\"]+)(?P<at>@)"
)
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?P<pw>'[^']*'|\"[^\"]*\"|[^\s'\";&]+)",
    re.IGNORECASE,
)
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/_\-]{16,}={0,2}")

_log = logging.getLogger("veerunbook.redact")


def _variants(value: str) -> set[str]:
    """Return the encodings of one secret value that are masked wherever they occur."""
    forms = {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=True)[1:-1],
    }
    raw = value.encode("utf-8")
    forms.add(base64.b64encode(raw).decode("ascii").rstrip("="))
    forms.add(base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="))
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _decode_base64(blob: str) -> str | None:
    """Decode a base64 or base64url blob to text, or return None if it is neither."""
    padded = blob + "=" * (-len(blob) % 4)
    for decoder in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decoder(padded).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
    return None


class Redactor:
    """Mask known secret values and URL passwords in text and nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # A database URL's password is a secret of its own: it may be echoed without
        # the rest of the URL.
        for value in list(values):
            password = _url_password(value)
            if password and len(password) >= MIN_SECRET_LENGTH:
                values.add(unquote(password))
        self._values = sorted(values, key=len, reverse=True)
        forms: set[str] = set()
        for value in self._values:
            forms |= _variants(value)
        self._forms = sorted(forms, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(form) for form in self._forms))
            if self._forms
            else None
        )

    @classmethod
    def from_environment(
        cls, names: Iterable[str], environ: Mapping[str, str] | None = None
    ) -> Redactor:
        """Build a redactor from the values of the named environment variables."""
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
        decoded = _decode_base64(match.group(0))
        if decoded and any(value in decoded for value in self._values):
            return MASK
        return match.group(0)


def _mask_group(match: re.Match[str]) -> str:
    if match.group("pw") == MASK:
        return match.group(0)
    tail = match.groupdict().get("at") or ""
    return f"{match.group('head')}{MASK}{tail}"


def _url_password(value: str) -> str | None:
    try:
        return urlsplit(value).password
    except ValueError:
        return None


def mask_url(url: str) -> str:
    """Return ``url`` with its password, if any, replaced by ``***``."""
    return _URL_PASSWORD.sub(_mask_group, url)


class RedactingFilter(logging.Filter):
    """Logging filter that masks secrets in the formatted message of every record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.redactor.mask(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redactor.mask(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = None
        record.msg = masked
        record.args = None
        return True
