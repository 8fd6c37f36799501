"""Classification of a probe's outcome into a status, an error kind and a sentence.

``judge`` fills in ``status``, ``error_kind``, ``error`` and ``reasons`` of a
``ProbeResult`` whose response fields are already recorded.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx

from veerunbook.health import HealthVerdict, interpret_health
from veerunbook.health_formats import MAX_JSON_DEPTH
from veerunbook.probe_body import Body, Exchange, Limits

if TYPE_CHECKING:
    from veerunbook.probe import ErrorKind, Expect, ProbeResult, Status

_LOGIN_WORDS = ("login", "signin", "sign-in", "sign_in", "auth", "sso", "oauth", "saml")
_SECRET_QUERY_WORDS = ("token", "key", "secret", "password", "passwd", "auth", "sig")
_UNRECOGNISED = ("deep-json", "empty", "html", "invalid-json", "json", "text")
_TOO_DEEP = f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels."
_TOO_DEEP_REASON = f"JSON nested deeper than {MAX_JSON_DEPTH} levels."


def judge(
    result: ProbeResult,
    exchange: Exchange,
    body: Body,
    failure: httpx.HTTPError | None,
    expect: Expect,
    limits: Limits,
) -> None:
    """Classify the exchange by how far it got, then by the response's content."""
    redirect = 300 <= (result.http_status or 0) < 400
    if failure is not None and exchange.response is None:
        _judge_transport_error(result, failure, limits, exchange.deadline_passed)
    elif failure is not None or _incomplete(exchange, body):
        _judge_incomplete(result, exchange, body, failure, limits)
    elif body.problem_kind is not None and body.problem and not redirect:
        status: Status = "error" if body.problem_kind == "protocol" else "fail"
        _set(result, status, body.problem_kind, body.problem)
    else:
        _judge_response(result, exchange, body, expect)
    if body.json_too_deep and _TOO_DEEP_REASON not in result.reasons:
        result.reasons.append(_TOO_DEEP_REASON)


def _incomplete(exchange: Exchange, body: Body) -> bool:
    return exchange.deadline_passed or exchange.too_large or body.too_large


def _judge_transport_error(
    result: ProbeResult, exc: httpx.HTTPError, limits: Limits, deadline_passed: bool
) -> None:
    """Classify a failure before a whole response head arrived."""
    host = _host(result.url)
    causes = list(_causes(exc))
    ssl_error = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
    kind: ErrorKind
    if deadline_passed:
        kind = "timeout"
        error = (
            f"No complete response from {host} within the total timeout of "
            f"{limits.total} s."
        )
    elif isinstance(exc, httpx.ConnectTimeout):
        kind, error = "timeout", f"No connection to {host} within {limits.connect} s."
    elif isinstance(exc, httpx.TimeoutException):
        kind, error = "timeout", f"No response from {host} within {limits.read} s."
    elif ssl_error is not None:
        reason = ssl_error.reason or str(ssl_error)
        kind, error = "tls", f"TLS handshake with {host} failed: {reason}."
    elif any(isinstance(c, socket.gaierror) for c in causes):
        kind, error = "dns", f"The host name {host} could not be resolved."
    elif any(isinstance(c, ConnectionRefusedError) for c in causes):
        kind, error = "connection refused", f"{host} refused the connection."
    elif isinstance(exc, httpx.ProtocolError | httpx.DecodingError):
        kind, error = "protocol", f"{host} broke the HTTP protocol: {sentence(exc)}"
    else:
        kind, error = "network", f"The request to {host} failed: {sentence(exc)}"
    _set(result, "error", kind, error)


def _judge_incomplete(
    result: ProbeResult,
    exchange: Exchange,
    body: Body,
    exc: httpx.HTTPError | None,
    limits: Limits,
) -> None:
    """Classify a response whose body did not arrive or decode whole."""
    result.truncated = True
    received = f"{result.body_bytes} bytes"
    if result.declared_length is not None:
        received = f"{result.body_bytes} of {result.declared_length} bytes"
    limit = limits.max_body_bytes
    if exchange.too_large:
        error = f"The body is larger than {limit} bytes, so only those were read."
        _set(result, "fail", "too large", error)
    elif body.too_large:
        error = f"The body decodes to more than {limit} bytes, so only those were read."
        _set(result, "fail", "too large", error)
    elif exchange.deadline_passed:
        error = (
            f"The body was incomplete when the total timeout of {limits.total} s "
            f"passed, after {received}."
        )
        _set(result, "error", "timeout", error)
    elif isinstance(exc, httpx.TimeoutException):
        error = f"The body stalled for {limits.read} s after {received}."
        _set(result, "error", "timeout", error)
    elif isinstance(exc, httpx.RemoteProtocolError):
        error = f"The server closed the connection after {received}."
        _set(result, "fail", "truncated", error)
    else:
        error = f"The body was cut off after {received}: {sentence(exc)}"
        _set(result, "error", "network", error)
    if result.http_status is not None:
        content_type, text = result.content_type, result.text
        result.health = interpret_health(result.http_status, content_type, text)
        result.reasons = list(result.health.reasons)


def _judge_response(
    result: ProbeResult, exchange: Exchange, body: Body, expect: Expect
) -> None:
    """Classify a complete response against what the caller expects."""
    code = result.http_status or 0
    if 300 <= code < 400:
        location = (
            exchange.response.headers.get("location") if exchange.response else None
        )
        _judge_redirect(result, location)
    elif expect == "health":
        _judge_health(result)
    elif code in (401, 403):
        _set(result, "fail", "auth", f"HTTP {code}: authentication required.")
    elif code >= 400:
        _set(result, "fail", "http error", f"HTTP {code} from {result.url}.")
    elif expect == "json" and result.json is None:
        _judge_not_json(result, body)
    elif expect == "metrics" and (
        "html" in (result.content_type or "") or not result.text
    ):
        kind: ErrorKind = "unexpected content" if result.text else "empty body"
        _set(result, "fail", kind, f"HTTP {code} returned no Prometheus metrics text.")
    else:
        result.status = "pass"


def _judge_redirect(result: ProbeResult, location: str | None) -> None:
    code = result.http_status
    if not location:
        _set(result, "fail", "redirect", f"HTTP {code} redirect without a Location.")
        return
    try:
        # httpx has validated Location, but masking may have garbled result.url.
        origin = httpx.URL(result.url)
        target = origin.join(location)
    except httpx.InvalidURL:
        _set(result, "fail", "redirect", f"HTTP {code} redirected to an invalid URL.")
        return
    where = redact_url(str(target))
    if any(word in target.path.lower() for word in _LOGIN_WORDS):
        error = f"HTTP {code} redirected to login at {where}: authentication required."
    else:
        error = f"HTTP {code} redirected to {where}; the redirect was not followed."
    if target.host != origin.host:
        result.reasons.append("The redirect leads to another host.")
    _set(result, "fail", "redirect", error)


def _judge_health(result: ProbeResult) -> None:
    verdict = interpret_health(
        result.http_status or 0, result.content_type, result.text
    )
    result.health = verdict
    result.reasons = list(verdict.reasons)
    code = result.http_status or 0
    if verdict.overall in ("pass", "warn"):
        result.status = verdict.overall
    elif verdict.format == "html" and code in (502, 503, 504):
        _set(result, "fail", "upstream unavailable", verdict.reasons[0])
    elif code in (401, 403):
        _set(result, "fail", "auth", verdict.reasons[0])
    elif verdict.overall == "fail" and verdict.format not in _UNRECOGNISED:
        _set(result, "fail", "unhealthy", _name_failures(verdict))
    elif verdict.format == "deep-json":
        _set(result, "fail", "json too deep", _TOO_DEEP)
    elif verdict.format == "invalid-json":
        _set(result, "fail", "invalid json", verdict.reasons[0])
    elif code >= 400:
        _set(result, "fail", "http error", verdict.reasons[0])
    else:
        _set(result, "fail", "not a health response", verdict.reasons[0])


def _name_failures(verdict: HealthVerdict) -> str:
    names = [check.name for check in verdict.failing()]
    if not names:
        return verdict.reasons[0]
    cause = f" ({verdict.diagnosis})" if verdict.diagnosis else ""
    return f"Failing checks: {', '.join(names[:5])}{cause}."


def _judge_not_json(result: ProbeResult, body: Body) -> None:
    if body.json_too_deep:
        _set(result, "fail", "json too deep", _TOO_DEEP)
    elif not result.text.strip():
        _set(result, "fail", "empty body", f"HTTP {result.http_status} with no body.")
    elif "html" in (result.content_type or "") or result.text.lstrip().startswith("<"):
        _set(result, "fail", "unexpected content", "An HTML page, not JSON.")
    else:
        _set(result, "fail", "invalid json", "The body is not valid JSON.")


def _set(result: ProbeResult, status: Status, kind: ErrorKind, error: str) -> None:
    result.status, result.error_kind, result.error = status, kind, error


def _host(url: str) -> str:
    try:
        return httpx.URL(url).host
    except httpx.InvalidURL:
        return "the target"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """Yield the exception and every exception it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def redact_url(url: str) -> str:
    """Mask the URL's password and the values of secret-looking query parameters."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<invalid URL>"
    if parsed.password:
        parsed = parsed.copy_with(password="***")
    params = [
        (key, "***" if any(w in key.lower() for w in _SECRET_QUERY_WORDS) else value)
        for key, value in parsed.params.multi_items()
    ]
    if params:
        parsed = parsed.copy_with(params=params)
    return str(parsed)


def sentence(exc: object) -> str:
    """Return an exception's message as one sentence ending in a full stop."""
    return str(exc).rstrip(".") + "."
