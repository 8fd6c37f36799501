"""Masking of credentials in log text before any of it is returned or stored.

Application logs carry secrets by accident: an ``AxiosError`` dump prints the request
URL with its ``access_token`` query parameter, a failed database connection prints its
URL with the password, a debug line prints the ``Authorization`` header. Every message,
field and excerpt that the ``veerunbook.logs`` modules return passes through
``mask_credentials`` or ``mask_fields``, which replace the secret value with ``***`` and
keep the name, so a reader still sees which credential was present.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# Names whose value is a credential: ``access_token``, ``refresh_token``, ``password``,
# ``client_secret``, ``api_key`` and the like, also as the tail of a longer name.
_SECRET_NAME = r"[\w.-]*?(?:token|password|passwd|pwd|secret|api[_-]?key)"
_SECRET_KEY = re.compile(
    rf"(?i){_SECRET_NAME}|authorization|proxy-authorization|cookie|set-cookie"
)

# Any text that one of the patterns below could match contains one of these words, so
# testing for them first skips the five substitutions for most strings.
_CANDIDATE = re.compile(r"(?i)token|passw|pwd|secret|api[_-]?key|authoriz|bearer|://")
# ``Authorization: Bearer abc``, ``"authorization":"Basic abc"``, ``authorization=abc``.
_AUTHORIZATION = re.compile(
    r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(bearer|basic|token|digest)\s+)?[^\s\"',;}]+"
)
# A bearer token outside an Authorization header, as in an error message.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*")
# The password of a URL's userinfo: ``mongodb://user:secret@host``.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@")
# Query-string and form pairs: ``access_token=abc``, ``password=abc``.
_QUERY_PAIR = re.compile(rf"(?i)\b({_SECRET_NAME})=[^\s&'\",;]+")
# JSON and JavaScript object pairs: ``"password": "abc"``, ``token: 'abc'``.
_OBJECT_PAIR = re.compile(
    rf"(?i)([\"']?\b{_SECRET_NAME}[\"']?\s*:\s*)"
    r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s\"',;}&*][^\s,;}&]*)"
)


def mask_credentials(text: str) -> str:
    """Return ``text`` with every credential value it contains replaced by ``***``.

    The masked values are those of ``access_token=``, ``token=``, ``password=`` and
    other ``*_token``, ``*_secret`` and ``api_key`` pairs in query strings, JSON and
    JavaScript objects. ``Authorization`` headers, bare ``Bearer`` tokens and the
    passwords in URL userinfo are masked too.
    """
    if not _CANDIDATE.search(text):
        return text
    text = _AUTHORIZATION.sub(_mask_authorization, text)
    text = _BEARER.sub(rf"\1 {MASK}", text)
    text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    text = _QUERY_PAIR.sub(rf"\1={MASK}", text)
    return _OBJECT_PAIR.sub(_mask_object_pair, text)


def mask_fields(value: Any) -> Any:
    """Return a copy of a decoded JSON value with credentials masked.

    A value stored under a credential name (``password``, ``accessToken``,
    ``authorization``, ``cookie``, ...) becomes ``***`` unless it is a container, and
    every string is passed through ``mask_credentials``.
    """
    if isinstance(value, dict):
        return {str(key): _mask_item(str(key), item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_fields(item) for item in value]
    if isinstance(value, str):
        return mask_credentials(value)
    return value


def is_secret_key(name: str) -> bool:
    """Return whether a field name says that its value is a credential."""
    return _SECRET_KEY.fullmatch(name) is not None


def _mask_item(key: str, item: Any) -> Any:
    if is_secret_key(key) and not isinstance(item, dict | list) and item is not None:
        return MASK
    return mask_fields(item)


def _mask_authorization(match: re.Match[str]) -> str:
    scheme = match.group(2)
    prefix = match.group(1)
    return f"{prefix}{scheme} {MASK}" if scheme else f"{prefix}{MASK}"


def _mask_object_pair(match: re.Match[str]) -> str:
    value = match.group(2)
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match.group(1)}{quote}{MASK}{quote}"
