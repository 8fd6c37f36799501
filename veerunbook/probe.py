"""HTTP probes of a target's endpoints that never raise for network trouble.

``probe`` sends one request and returns a ``ProbeResult``. Its ``status`` is:

- ``pass`` or ``warn``: the endpoint responded as expected;
- ``fail``: a response that reports unhealthy or cannot be used (redirect, 4xx, 5xx,
  HTML where JSON was expected, a truncated, oversized, too deeply nested or
  undecodable body);
- ``error``: no usable HTTP response (refused, timed out, DNS or TLS failure, broken
  protocol).

``error_kind`` names the trouble in a few words (``ErrorKind`` lists them) and
``error`` says it in one sentence.

Redirects are never followed, so credentials in ``headers`` never reach another host.
Neither the result nor the log contains header values, the password of the URL, or
any value that the optional ``Redactor`` masks.
"""

from __future__ import annotations

import functools
import json
import logging
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from veerunbook import __version__
from veerunbook.health import HealthVerdict
from veerunbook.probe_body import (
    Body,
    Exchange,
    Limits,
    Watchdog,
    decode_body,
    read_raw,
)
from veerunbook.probe_judge import judge, redact_url
from veerunbook.redact import Redactor

Expect = Literal["health", "json", "text", "metrics"]
Status = Literal["pass", "warn", "fail", "error"]
ErrorKind = Literal[
    "connection refused", "timeout", "dns", "tls", "protocol", "network",
    "truncated", "too large", "redirect", "auth", "http error",
    "upstream unavailable", "unhealthy", "not a health response",
    "unexpected content", "invalid json", "json too deep", "empty body",
    "unsupported content encoding",
]  # fmt: skip

logger = logging.getLogger("veerunbook.probe")

_USER_AGENT = f"veerunbook/{__version__}"
_PLAIN_HEADERS = {"accept", "accept-encoding", "content-type", "user-agent", "host"}
_EXCERPT_CHARS = 200
_MESSAGE_CHARS = 1000  # of an error or reason, which may quote the response
_RECORDED_TEXT_BYTES = 16 * 1024  # of ``text`` in ``to_dict``
_RECORDED_JSON_BYTES = 64 * 1024  # of ``json`` in ``to_dict``, compact encoding
_ACCEPT = {
    "health": "application/health+json, application/json;q=0.9, text/plain;q=0.8",
    "json": "application/json",
    "text": "text/plain, */*;q=0.5",
    "metrics": "text/plain;version=0.0.4, application/openmetrics-text;q=0.5",
}


@dataclass
class ProbeResult:
    """Outcome of one probe; ``to_dict`` is JSON-safe and free of credentials.

    ``text`` is the whole decoded body (at most ``max_body_bytes``) and ``json`` its
    parsed value, both after masking.
    """

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
        """Return a JSON-safe copy, bounded in size because it is journaled.

        ``text`` is cut to 16 KiB of UTF-8 (``text_truncated`` is then true), and
        ``json`` is kept only when its compact encoding is under 64 KiB (else it is
        None and ``json_omitted`` is true). The object keeps both in full.
        """
        data = {item.name: getattr(self, item.name) for item in fields(self)}
        data["reasons"] = list(self.reasons)
        data["text"], data["text_truncated"] = _cut_utf8(self.text)
        data["json"], data["json_omitted"] = _bounded_json(self.json)
        data["health"] = self.health.to_dict() if self.health else None
        return data

    def summary(self) -> str:
        """Return one line for a table: name, status, HTTP status, latency, reason."""
        http = str(self.http_status) if self.http_status is not None else "-"
        latency = f"{self.latency_ms:.0f} ms" if self.latency_ms is not None else "-"
        reason = self.error or (self.reasons[0] if self.reasons else "")
        return f"{self.name}  {self.status.upper()}  HTTP {http}  {latency}  {reason}"


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
    total_timeout: float | None = None,
    max_body_bytes: int = 2_000_000,
    client: httpx.Client | None = None,
    redactor: Redactor | None = None,
) -> ProbeResult:
    """Send one request and classify the response; network failures become results.

    ``connect_timeout`` and ``read_timeout`` bound each wait, in seconds, and neither
    is longer than ``total_timeout``, which bounds the whole exchange and defaults to
    ``connect_timeout + 2 * read_timeout``. When it passes, a watchdog thread shuts the
    connection's socket down, which ends a blocked read of headers or body, and a body
    still arriving then makes the result an ``error`` of kind ``timeout`` with
    ``truncated`` set. With a caller's ``client`` the watchdog reaches connections
    that this call opens through httpx's default transport. NOTE: on a reused
    keep-alive connection it can act only once the response headers have arrived,
    and other transports are checked between body chunks only.

    At most ``max_body_bytes`` of the body are read, and at most that many after
    undoing gzip or deflate. ``redactor`` masks configured secrets in the whole body
    before the text, the excerpt and the messages are cut from it. A given
    ``client`` is used as it is, except that redirects are not followed. Raises
    ``ValueError`` for an invalid URL, ``expect``, timeout or ``max_body_bytes``, and
    ``TypeError`` when ``json_body`` is not JSON-serialisable.
    """
    if total_timeout is None:
        total_timeout = default_total_timeout(connect_timeout, read_timeout)
    timeouts = (connect_timeout, read_timeout, total_timeout)
    _validate(url, expect, max_body_bytes, timeouts)
    mask = _masker(headers or {}, redactor)
    result = ProbeResult(name, mask(redact_url(url)), method.upper(), "error", _now())
    limits = Limits(
        min(connect_timeout, total_timeout),
        min(read_timeout, total_timeout),
        total_timeout,
        max_body_bytes,
    )

    # Send the request and read the raw body within the total timeout.
    exchange = Exchange()
    with _client_for(client) as active, Watchdog(total_timeout) as watchdog:
        request = active.build_request(
            method,
            url,
            headers=_request_headers(expect, headers or {}),
            json=json_body,
            timeout=limits.timeout(),
            extensions={"trace": watchdog.trace},
        )
        started = time.monotonic()  # not counting the client's TLS context setup
        failure = _send(active, request, exchange, watchdog, limits)
    result.latency_ms = round((time.monotonic() - started) * 1000, 1)

    # Decode and record what arrived, then judge it.
    body = decode_body(exchange, max_body_bytes, mask)
    _record_response(result, exchange, body, mask)
    judge(result, exchange, body, failure, expect, limits)

    _scrub(result, mask)
    level = logging.INFO if result.status == "error" else logging.DEBUG
    logger.log(level, "probe %s", result.summary())
    return result


def default_total_timeout(connect_timeout: float, read_timeout: float) -> float:
    """Return the default total timeout: one connect wait and two read waits.

    Two read waits leave room for one full wait for the response head and one for
    the body, while a server that keeps sending a little at a time is still stopped.
    """
    return connect_timeout + 2 * read_timeout


def _validate(
    url: str, expect: str, max_body_bytes: int, timeouts: tuple[float, ...]
) -> None:
    try:
        scheme = httpx.URL(url).scheme
    except httpx.InvalidURL as exc:
        raise ValueError(f"Invalid probe URL {redact_url(url)!r}: {exc}.") from None
    if scheme not in ("http", "https"):
        raise ValueError(f"Probe URL {redact_url(url)!r} must use http or https.")
    if expect not in _ACCEPT:
        raise ValueError(f"expect must be one of {sorted(_ACCEPT)}, not {expect!r}.")
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be positive, not {max_body_bytes}.")
    if not all(seconds > 0 for seconds in timeouts):
        raise ValueError(f"Timeouts must be positive seconds, not {timeouts}.")


def _request_headers(expect: Expect, headers: Mapping[str, str]) -> dict[str, str]:
    # identity requests an uncompressed body, and decode_body reads gzip and deflate.
    request_headers = {
        "Accept": _ACCEPT[expect],
        "Accept-Encoding": "identity",
        "User-Agent": _USER_AGENT,
    }
    request_headers.update(headers)
    return request_headers


@contextmanager
def _client_for(client: httpx.Client | None) -> Iterator[httpx.Client]:
    """Yield the caller's client, or a private one closed afterwards.

    The private client ignores proxy, certificate and netrc settings from the
    environment, because netrc would add credentials that the caller never passed.
    """
    if client is not None:
        yield client
        return
    with httpx.Client(trust_env=False, verify=_ssl_context()) as own:
        yield own


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Return the certificate-verifying TLS context that private clients share.

    Loading the CA bundle takes about 25 ms of CPU (httpx 0.29, 2 cores), which a
    client of its own per probe paid on every request, plain HTTP included. A
    context is safe to share between connections and threads.
    """
    return httpx.create_ssl_context(trust_env=False)


def _send(
    client: httpx.Client,
    request: httpx.Request,
    exchange: Exchange,
    watchdog: Watchdog,
    limits: Limits,
) -> httpx.HTTPError | None:
    """Send the request and read the raw body; return the transport error, if any."""
    deadline = time.monotonic() + limits.total
    failure: httpx.HTTPError | None = None
    try:
        response = client.send(request, stream=True, follow_redirects=False)
        exchange.response = response
        try:
            watchdog.watch(response.extensions.get("network_stream"))
            read_raw(response, exchange, limits.max_body_bytes, deadline)
        finally:
            watchdog.stop()
            response.close()
    except httpx.HTTPError as exc:
        failure = exc

    # The watchdog's shutdown ends a body without Content-Length or chunked framing
    # as if the server had closed it, with no exception, so ask the watchdog.
    exchange.deadline_passed = exchange.deadline_passed or watchdog.stop()
    return failure


def _record_response(
    result: ProbeResult, exchange: Exchange, body: Body, mask: Callable[[str], str]
) -> None:
    response = exchange.response
    if response is None:
        return
    result.http_status = response.status_code
    content_type = response.headers.get("content-type")
    result.content_type = mask(content_type) if content_type is not None else None
    declared = response.headers.get("content-length", "")
    result.declared_length = int(declared) if declared.isdigit() else None
    result.body_bytes = len(exchange.raw)
    result.text = body.text
    result.excerpt = " ".join(body.text[: _EXCERPT_CHARS * 2].split())[:_EXCERPT_CHARS]
    result.json = body.json


def _masker(
    headers: Mapping[str, str], redactor: Redactor | None
) -> Callable[[str], str]:
    """Return a function that masks the caller's header values and known secrets."""
    secrets = _secret_values(headers)

    def mask(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return redactor.mask(text) if redactor is not None else text

    return mask


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


def _scrub(result: ProbeResult, mask: Callable[[str], str]) -> None:
    """Mask secrets that an error message or reason repeats, then cut it short."""
    if result.error:
        result.error = mask(result.error)[:_MESSAGE_CHARS]
    result.reasons = [mask(reason)[:_MESSAGE_CHARS] for reason in result.reasons]


def _cut_utf8(text: str) -> tuple[str, bool]:
    """Return ``text`` cut to the recorded size in UTF-8, and whether it was cut."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= _RECORDED_TEXT_BYTES:
        return text, False
    return encoded[:_RECORDED_TEXT_BYTES].decode("utf-8", "ignore"), True


def _bounded_json(value: Any) -> tuple[Any, bool]:
    """Return a copy of ``value`` and False, or None and True when it is too big."""
    if value is None:
        return None, False
    try:
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return None, True
    if len(encoded.encode("utf-8", "replace")) >= _RECORDED_JSON_BYTES:
        return None, True
    return json.loads(encoded), False


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
