"""HTTP probes of a target's endpoints that never raise for network trouble.

``probe`` sends one request and returns a ``ProbeResult``. Its ``status`` is:

- ``pass`` or ``warn``: the endpoint responded as expected;
- ``fail``: a response that reports unhealthy or cannot be used (redirect, 4xx, 5xx,
  HTML where JSON was expected, a truncated or oversized body);
- ``error``: no usable HTTP response (refused, timed out, DNS or TLS failure, broken
  protocol).

``error_kind`` names the trouble in a few words (``ErrorKind`` lists them) and
``error`` says it in one sentence.

Redirects are never followed, so credentials in ``headers`` never reach another host.
Neither the result nor the log contains header values or the password of the URL.
"""

from __future__ import annotations

import codecs
import json
import logging
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from veerunbook import __version__
from veerunbook.health import HealthVerdict, interpret_health

Expect = Literal["health", "json", "text", "metrics"]
Status = Literal["pass", "warn", "fail", "error"]
ErrorKind = Literal[
    "connection refused", "timeout", "dns", "tls", "protocol", "network",
    "truncated", "too large", "redirect", "auth", "http error",
    "upstream unavailable", "unhealthy", "not a health response",
    "unexpected content", "invalid json", "empty body",
]  # fmt: skip

logger = logging.getLogger("veerunbook.probe")

_USER_AGENT = f"veerunbook/{__version__}"
_PLAIN_HEADERS = {"accept", "accept-encoding", "content-type", "user-agent", "host"}
_TEXT_CHARS = 65_536
_EXCERPT_CHARS = 200
_LOGIN_WORDS = ("login", "signin", "sign-in", "sign_in", "auth", "sso", "oauth", "saml")
_SECRET_QUERY_WORDS = ("token", "key", "secret", "password", "passwd", "auth", "sig")
_UNRECOGNISED = ("empty", "html", "invalid-json", "json", "text")
_ACCEPT = {
    "health": "application/health+json, application/json;q=0.9, text/plain;q=0.8",
    "json": "application/json",
    "text": "text/plain, */*;q=0.5",
    "metrics": "text/plain;version=0.0.4, application/openmetrics-text;q=0.5",
}


@dataclass
class ProbeResult:
    """Outcome of one probe; ``to_dict`` is JSON-safe and free of credentials."""

    name: str
    url: str
    method: str
    status: Status
    started_at: str
    http_status: int | None = None
    latency_ms: float | None = None
    content_type: str | None = None
    body_bytes: int = 0
    declared_length: int | None = None
    truncated: bool = False
    error_kind: ErrorKind | None = None
    error: str | None = None
    reasons: list[str] = field(default_factory=list)
    json: Any = None
    text: str = ""
    excerpt: str = ""
    health: HealthVerdict | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["health"] = self.health.to_dict() if self.health else None
        return data

    def summary(self) -> str:
        """Return one line for a table: name, status, HTTP status, latency, reason."""
        http = str(self.http_status) if self.http_status is not None else "-"
        latency = f"{self.latency_ms:.0f} ms" if self.latency_ms is not None else "-"
        reason = self.error or (self.reasons[0] if self.reasons else "")
        return f"{self.name}  {self.status.upper()}  HTTP {http}  {latency}  {reason}"


@dataclass
class _Exchange:
    """Response and body bytes received before the exchange ended, normally or not."""

    response: httpx.Response | None = None
    body: bytearray = field(default_factory=bytearray)
    too_large: bool = False
    deadline_passed: bool = False


def probe(
    url: str,
    *,
    name: str,
    expect: Expect = "health",
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    connect_timeout: float = 2.0,
    read_timeout: float = 5.0,
    total_timeout: float = 10.0,
    max_body_bytes: int = 2_000_000,
    client: httpx.Client | None = None,
) -> ProbeResult:
    """Send one request and classify the response; network failures become results.

    ``connect_timeout`` and ``read_timeout`` bound each wait, in seconds.
    ``total_timeout`` bounds the exchange, checked as body chunks arrive, so it can be
    overrun by at most one ``read_timeout``. NOTE: response headers that trickle in
    are bounded only by ``read_timeout`` per read and h11's 64 KiB header limit.
    At most ``max_body_bytes`` of the body are read. A given ``client`` is used as it
    is, except that redirects are not followed. Raises ``ValueError`` for an invalid
    URL, ``expect`` or ``max_body_bytes``, and ``TypeError`` when ``json_body`` is not
    JSON-serialisable.
    """
    _validate(url, expect, max_body_bytes)
    request_headers = {"Accept": _ACCEPT[expect], "User-Agent": _USER_AGENT}
    request_headers.update(headers or {})
    secrets = _secret_values(headers or {})
    result = ProbeResult(name, _redact_url(url), method.upper(), "error", _now())
    exchange = _Exchange()
    timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
    started = time.monotonic()

    # Send the request and stream the body; transport errors end up in `failure`.
    failure: httpx.HTTPError | None = None
    try:
        with _client_for(client) as active:
            started = time.monotonic()  # not counting the client's TLS context setup
            stream = active.stream(
                method,
                url,
                headers=request_headers,
                json=json_body,
                timeout=timeout,
                follow_redirects=False,
            )
            with stream as response:
                exchange.response = response
                _read_body(response, exchange, max_body_bytes, started + total_timeout)
    except httpx.HTTPError as exc:
        failure = exc
    result.latency_ms = round((time.monotonic() - started) * 1000, 1)

    # Record what arrived, then judge it.
    _record_response(result, exchange, secrets)
    if failure is not None and exchange.response is None:
        _judge_transport_error(result, failure, connect_timeout, read_timeout)
    elif failure is not None or exchange.deadline_passed or exchange.too_large:
        _judge_incomplete(result, exchange, failure, total_timeout, max_body_bytes)
    else:
        _judge_response(result, exchange, expect)

    _scrub(result, secrets)
    level = logging.INFO if result.status == "error" else logging.DEBUG
    logger.log(level, "probe %s", result.summary())
    return result


def _validate(url: str, expect: str, max_body_bytes: int) -> None:
    try:
        scheme = httpx.URL(url).scheme
    except httpx.InvalidURL as exc:
        raise ValueError(f"Invalid probe URL {_redact_url(url)!r}: {exc}.") from None
    if scheme not in ("http", "https"):
        raise ValueError(f"Probe URL {_redact_url(url)!r} must use http or https.")
    if expect not in _ACCEPT:
        raise ValueError(f"expect must be one of {sorted(_ACCEPT)}, not {expect!r}.")
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be positive, not {max_body_bytes}.")


@contextmanager
def _client_for(client: httpx.Client | None) -> Iterator[httpx.Client]:
    """Yield the caller's client, or a private one closed afterwards.

    The private client ignores proxy, certificate and netrc settings from the
    environment, because netrc would add credentials that the caller never passed.
    """
    if client is not None:
        yield client
        return
    with httpx.Client(trust_env=False) as own:
        yield own


def _read_body(
    response: httpx.Response, exchange: _Exchange, limit: int, deadline: float
) -> None:
    for chunk in response.iter_bytes():
        room = limit - len(exchange.body)
        exchange.body.extend(chunk[:room])
        if len(chunk) > room:
            exchange.too_large = True
            return
        if time.monotonic() > deadline:
            exchange.deadline_passed = True
            return


def _record_response(
    result: ProbeResult, exchange: _Exchange, secrets: list[str]
) -> None:
    response = exchange.response
    if response is None:
        return
    result.http_status = response.status_code
    result.content_type = response.headers.get("content-type")
    declared = response.headers.get("content-length", "")
    result.declared_length = int(declared) if declared.isdigit() else None
    result.body_bytes = len(exchange.body)
    text = bytes(exchange.body).decode(_codec(response.charset_encoding), "replace")
    text = _mask(text, secrets)
    result.text = text[:_TEXT_CHARS]
    result.excerpt = " ".join(text[: _EXCERPT_CHARS * 2].split())[:_EXCERPT_CHARS]
    if _looks_like_json(result.content_type, text):
        try:
            result.json = json.loads(text)
        except (ValueError, RecursionError):
            result.json = None


def _judge_transport_error(
    result: ProbeResult,
    exc: httpx.HTTPError,
    connect_timeout: float,
    read_timeout: float,
) -> None:
    """Classify a failure before any response arrived."""
    host = httpx.URL(result.url).host
    causes = list(_causes(exc))
    ssl_error = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
    kind: ErrorKind
    if isinstance(exc, httpx.ConnectTimeout):
        kind, error = "timeout", f"No connection to {host} within {connect_timeout} s."
    elif isinstance(exc, httpx.TimeoutException):
        kind, error = "timeout", f"No response from {host} within {read_timeout} s."
    elif ssl_error is not None:
        reason = ssl_error.reason or str(ssl_error)
        kind, error = "tls", f"TLS handshake with {host} failed: {reason}."
    elif any(isinstance(c, socket.gaierror) for c in causes):
        kind, error = "dns", f"The host name {host} could not be resolved."
    elif any(isinstance(c, ConnectionRefusedError) for c in causes):
        kind, error = "connection refused", f"{host} refused the connection."
    elif isinstance(exc, httpx.ProtocolError | httpx.DecodingError):
        kind, error = "protocol", f"{host} broke the HTTP protocol: {_sentence(exc)}"
    else:
        kind, error = "network", f"The request to {host} failed: {_sentence(exc)}"
    _set(result, "error", kind, error)


def _judge_incomplete(
    result: ProbeResult,
    exchange: _Exchange,
    exc: httpx.HTTPError | None,
    total_timeout: float,
    limit: int,
) -> None:
    """Classify a response whose body did not arrive whole."""
    result.truncated = True
    received = f"{result.body_bytes} of {result.declared_length or 'unknown'} bytes"
    if exchange.too_large:
        result.status, result.error_kind = "fail", "too large"
        result.error = (
            f"The body is larger than {limit} bytes, so only those were read."
        )
    elif exchange.deadline_passed or isinstance(exc, httpx.TimeoutException):
        result.status, result.error_kind = "error", "timeout"
        result.error = f"The body was incomplete after {total_timeout} s: {received}."
    elif isinstance(exc, httpx.RemoteProtocolError):
        result.status, result.error_kind = "fail", "truncated"
        result.error = f"The server closed the connection after {received}."
    else:
        result.status, result.error_kind = "error", "network"
        result.error = f"The body was cut off after {received}: {_sentence(exc)}"
    if result.http_status is not None:
        content_type, body = result.content_type, result.text
        result.health = interpret_health(result.http_status, content_type, body)
        result.reasons = list(result.health.reasons)


def _judge_response(result: ProbeResult, exchange: _Exchange, expect: Expect) -> None:
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
        _judge_not_json(result)
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
    target = httpx.URL(result.url).join(location)  # httpx has validated Location
    where = _redact_url(str(target))
    if any(word in target.path.lower() for word in _LOGIN_WORDS):
        error = f"HTTP {code} redirected to login at {where}: authentication required."
    else:
        error = f"HTTP {code} redirected to {where}; the redirect was not followed."
    if target.host != httpx.URL(result.url).host:
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


def _judge_not_json(result: ProbeResult) -> None:
    if not result.text.strip():
        _set(result, "fail", "empty body", f"HTTP {result.http_status} with no body.")
    elif "html" in (result.content_type or "") or result.text.lstrip().startswith("<"):
        _set(result, "fail", "unexpected content", "An HTML page, not JSON.")
    else:
        _set(result, "fail", "invalid json", "The body is not valid JSON.")


def _set(result: ProbeResult, status: Status, kind: ErrorKind, error: str) -> None:
    result.status, result.error_kind, result.error = status, kind, error


def _looks_like_json(content_type: str | None, text: str) -> bool:
    return "json" in (content_type or "") or text.lstrip().startswith("{")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """Yield the exception and every exception it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _redact_url(url: str) -> str:
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


def _secret_values(headers: Mapping[str, str]) -> list[str]:
    """Return the caller's header values to mask, each also without its scheme.

    ``Bearer <token>`` yields the whole value and the token. Values shorter than
    four characters are skipped, because masking them would garble ordinary text.
    """
    values: set[str] = set()
    for name, value in headers.items():
        if name.lower() not in _PLAIN_HEADERS:
            values.update(
                part for part in (value, *value.split()[1:]) if len(part) >= 4
            )
    return sorted(values, key=len, reverse=True)


def _mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _scrub(result: ProbeResult, secrets: list[str]) -> None:
    """Mask any header value that an error message or reason repeats."""
    if result.error:
        result.error = _mask(result.error, secrets)
    result.reasons = [_mask(reason, secrets) for reason in result.reasons]


def _sentence(exc: object) -> str:
    return str(exc).rstrip(".") + "."


def _codec(charset: str | None) -> str:
    """Return the codec for a response charset, UTF-8 when it is missing or unknown."""
    try:
        return codecs.lookup(charset or "utf-8").name
    except LookupError:
        return "utf-8"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
