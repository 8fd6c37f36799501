"""Normalise the bodies of health endpoints into one verdict.

``interpret_health`` recognises, in this order:

- an empty body or HTTP 204, judged by the status code alone;
- HTML, which is never healthy: single-page-app fallbacks, maintenance, login and proxy
  error pages are named as such;
- Spring Boot Actuator JSON with ``components`` (Boot 2.2 and later) or the older
  ``details`` layout (Boot 2.0 and 2.1), statuses UP, DOWN, OUT_OF_SERVICE, UNKNOWN;
- IETF ``application/health+json`` (draft-inadarei-api-health-check): ``checks`` keyed
  ``component:measurement``, each an array of objects with ``observedValue``;
- the application's own JSON: a ``status`` word and optional ``checks`` object;
- Kubernetes ``/readyz?verbose`` text (``[+]name ok``, ``[-]name failed: ...``) and a
  plain status word such as ``ok``.

JSON nested deeper than 64 levels is not read (format ``deep-json``). The readers of
each format live in ``veerunbook.health_formats``. The HTTP status is applied last, so
a redirect, a 4xx or a 5xx is never a pass.
"""

from __future__ import annotations

import codecs
import re
from http import HTTPStatus

from veerunbook.health_formats import (
    CheckStatus,
    ComponentCheck,
    HealthVerdict,
    ObservedValue,
    Overall,
    normalise_status,
    read_empty,
    read_html,
    read_json,
    read_text,
)

__all__ = [
    "CheckStatus",
    "ComponentCheck",
    "HealthVerdict",
    "ObservedValue",
    "Overall",
    "interpret_health",
    "normalise_status",
]

# PostgreSQL SQLSTATE 53300 (too_many_connections) in its wordings up to version 16.
_EXHAUSTION_PHRASES = (
    "too many clients",
    "remaining connection slots",
    "too many connections for role",
)
_MAX_REASONS = 30  # reasons kept from the body, the last counting those left out


def interpret_health(
    http_status: int, content_type: str | None, body: bytes | str
) -> HealthVerdict:
    """Read a health response of any supported format.

    Malformed input gives an ``unknown`` or ``fail`` verdict, not an exception.
    """
    media = (content_type or "").split(";")[0].strip().lower()
    if isinstance(body, bytes):
        body = body.decode(_charset(content_type), "replace")
    stripped = body.strip()

    if http_status == 204 or not stripped:
        verdict = read_empty(http_status)
    elif "html" in media or stripped[:15].lower().startswith(("<!doctype", "<html")):
        verdict = read_html(http_status, stripped)
    elif "json" in media or (
        stripped.startswith(("{", "[")) and not stripped.startswith(("[+]", "[-]"))
    ):
        verdict = read_json(media, stripped)
    else:
        verdict = read_text(stripped)

    for check in verdict.checks:
        if check.status in ("warn", "fail", "unknown"):
            verdict.reasons.append(_describe(check))
    _limit_reasons(verdict)
    _diagnose(verdict)
    _apply_http_status(verdict, http_status)
    return verdict


def _charset(content_type: str | None) -> str:
    match = re.search(r"charset=\"?([\w.:-]+)", content_type or "", re.IGNORECASE)
    if match is None:
        return "utf-8"
    try:
        return codecs.lookup(match.group(1)).name
    except LookupError:
        return "utf-8"


def _diagnose(verdict: HealthVerdict) -> None:
    """Name the cause when a check's error text is a known database symptom."""
    for check in verdict.checks:
        detail = (check.detail or "").lower()
        if check.status != "pass" and any(p in detail for p in _EXHAUSTION_PHRASES):
            verdict.diagnosis = "connection exhaustion"
            verdict.reasons.append(
                f"Check {check.name}: the database refused a connection because all "
                "of its connection slots are in use (PostgreSQL max_connections)."
            )
            return


def _apply_http_status(verdict: HealthVerdict, http_status: int) -> None:
    if 200 <= http_status < 300:
        return
    if 300 <= http_status < 400:
        reason = f"HTTP {http_status} is a redirect, not a health response."
    elif http_status == 401:
        reason = "HTTP 401: authentication required."
    elif http_status == 403:
        reason = "HTTP 403: access forbidden."
    elif http_status == 404:
        reason = "HTTP 404: no health endpoint at this path."
    elif verdict.overall == "fail":
        return
    elif verdict.overall == "unknown":
        reason = f"HTTP {http_status} {_reason_phrase(http_status)}."
    else:
        reason = f"HTTP {http_status} although the body reports {verdict.overall}."
    verdict.overall = "fail"
    verdict.reasons.insert(0, reason)


def _limit_reasons(verdict: HealthVerdict) -> None:
    """Keep the first reasons of a body with thousands of checks or notes."""
    if len(verdict.reasons) <= _MAX_REASONS:
        return
    left_out = len(verdict.reasons) - (_MAX_REASONS - 1)
    del verdict.reasons[_MAX_REASONS - 1 :]
    verdict.reasons.append(f"{left_out} more reasons are left out.")


def _reason_phrase(http_status: int) -> str:
    try:
        return HTTPStatus(http_status).phrase
    except ValueError:
        return "error"


def _describe(check: ComponentCheck) -> str:
    verb = {"fail": "fails", "warn": "warns"}.get(check.status, f"is {check.status}")
    sentence = f"Check {check.name} {verb}"
    if check.observed_value is not None:
        unit = f" {check.observed_unit}" if check.observed_unit else ""
        sentence += f" at {check.observed_value}{unit}"
    if check.detail:
        sentence += f": {check.detail}"
    return sentence + "."
