"""Probe tests against real servers on loopback that send recorded or crafted bytes."""

from __future__ import annotations

import gzip
import json
import os
import resource
import socket
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpfixture import (
    RawServer,
    Responder,
    gzip_of_zeros,
    load_recorded,
    oversized,
    redirect,
    replay,
    response_bytes,
    silent,
    slow_head,
    trickle,
)

from veerunbook.probe import Expect, ProbeResult, default_total_timeout, probe
from veerunbook.redact import Redactor

MISBEHAVING = "health-misbehaving-responses"
FORMATS = "health-formats-actuator-ietf-k8s"
TOKEN = "Bearer s3cr3t-t0ken-value"


def probe_recorded(case: str, file_name: str, **options: Any) -> ProbeResult:
    recorded = load_recorded(case, file_name)
    return probe_raw(recorded.raw, name=file_name, **options)


def probe_raw(raw: bytes, **options: Any) -> ProbeResult:
    """Probe a loopback server that sends ``raw`` to every request."""
    options.setdefault("name", "raw")
    with RawServer(replay(raw)) as server:
        return probe(server.url("/health"), **options)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "veerunbook-probe-watchdog"]


def max_rss_bytes() -> int:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.fixture
def closed_port() -> int:
    """A loopback port that was bound and closed, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def failing_invalid_lookup(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail lookups of ``.invalid`` names in-process, as the C resolver reports them.

    RFC 6761 reserves ``.invalid``, but glibc still sends such a query to the
    configured name server, which may be off this machine. Failing the lookup here
    keeps every packet on loopback while httpx and httpcore run unchanged.
    """
    real_getaddrinfo = socket.getaddrinfo
    failed: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".invalid"):
            failed.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield failed


# The verdict table of the misbehaving health responses, one row per test.


def test_spa_fallback_is_not_health() -> None:
    result = probe_recorded(MISBEHAVING, "GET_api-readyz_spa-fallback-200.http")
    assert result.status == "fail"
    assert result.error_kind == "not a health response"
    assert result.error is not None
    assert '<div id="root">' in result.error
    assert result.health is not None
    assert result.health.format == "html"


def test_ready_503_reports_reason() -> None:
    result = probe_recorded(MISBEHAVING, "GET_health-ready_503-json.http")
    assert result.status == "fail"
    assert result.error_kind == "unhealthy"
    assert result.error is not None
    assert "not_ready: Database not connected" in result.error
    assert result.json["reason"] == "Database not connected"


def test_empty_200_passes_flagged() -> None:
    result = probe_recorded(MISBEHAVING, "GET_healthz_200-empty.http")
    assert result.status == "pass"
    assert result.body_bytes == 0
    assert "empty body" in result.reasons[0]


def test_204_passes_flagged() -> None:
    result = probe_recorded(MISBEHAVING, "GET_status_204-no-content.http")
    assert result.status == "pass"
    assert result.http_status == 204
    assert "no content" in result.reasons[0]


def test_302_login_not_followed() -> None:
    recorded = load_recorded(MISBEHAVING, "GET_actuator-health_302-login.http")
    with RawServer(replay(recorded.raw)) as server:
        result = probe(server.url("/actuator/health"), name="actuator")
        assert len(server.requests) == 1
    assert result.status == "fail"
    assert result.error_kind == "redirect"
    assert result.error is not None
    assert "redirected to login at http://192.0.2.20:8080/login" in result.error
    assert "The redirect leads to another host." in result.reasons


def test_login_page_not_healthy() -> None:
    result = probe_recorded(MISBEHAVING, "GET_login_200-after-redirect.http")
    assert result.status == "fail"
    assert result.error_kind == "not a health response"
    assert result.error is not None
    assert "login page" in result.error


def test_401_authentication_required() -> None:
    result = probe_recorded(MISBEHAVING, "GET_actuator-health_401.http")
    assert result.status == "fail"
    assert result.error_kind == "auth"
    assert result.error == "HTTP 401: authentication required."


def test_truncated_body_reports_sizes() -> None:
    result = probe_recorded(MISBEHAVING, "GET_health-detailed_200-truncated.http")
    assert result.status == "fail"
    assert result.error_kind == "truncated"
    assert result.truncated
    assert result.body_bytes == 97
    assert result.declared_length == 201
    assert result.error is not None
    assert "97 of 201 bytes" in result.error
    assert result.health is not None
    assert result.health.format == "invalid-json"


def test_502_nginx_upstream_unavailable() -> None:
    result = probe_recorded(MISBEHAVING, "GET_readyz_502-nginx-html.http")
    assert result.status == "fail"
    assert result.error_kind == "upstream unavailable"
    assert "The upstream is unavailable." in result.reasons


def test_maintenance_page_not_healthy() -> None:
    result = probe_recorded(MISBEHAVING, "GET_healthz_200-html-maintenance.http")
    assert result.status == "fail"
    assert result.error_kind == "not a health response"
    assert result.error is not None
    assert "maintenance page" in result.error


@pytest.mark.parametrize(
    "file_name",
    [
        "GET_actuator-health_401.http",
        "GET_api-readyz_spa-fallback-200.http",
        "GET_health-ready_503-json.http",
        "GET_healthz_200-html-maintenance.http",
        "GET_readyz_502-nginx-html.http",
    ],
)
def test_record_keeps_evidence(file_name: str) -> None:
    recorded = load_recorded(MISBEHAVING, file_name)
    result = probe_recorded(MISBEHAVING, file_name)
    assert result.http_status == recorded.status
    assert result.content_type == recorded.content_type
    assert result.excerpt == " ".join(recorded.body.decode().split())[:200]
    assert json.loads(json.dumps(result.to_dict()))["http_status"] == recorded.status


# Health formats through the probe.


def test_actuator_down_is_unhealthy() -> None:
    result = probe_recorded(FORMATS, "actuator-down.http")
    assert result.status == "fail"
    assert result.error_kind == "unhealthy"
    assert result.health is not None
    assert result.health.diagnosis == "connection exhaustion"


def test_health_json_warn_is_warn() -> None:
    result = probe_recorded(FORMATS, "health-json-warn.http")
    assert result.status == "warn"
    assert result.error_kind is None


def test_readyz_failed_is_unhealthy() -> None:
    result = probe_recorded(FORMATS, "k8s-readyz-verbose-failed.http")
    assert result.status == "fail"
    assert result.error_kind == "unhealthy"


# Transport failures: each is a result, never an exception.


def test_refused_connection(closed_port: int) -> None:
    result = probe(f"http://127.0.0.1:{closed_port}/health", name="refused")
    assert result.status == "error"
    assert result.error_kind == "connection refused"
    assert result.http_status is None


def test_silent_server_times_out() -> None:
    with RawServer(silent()) as server:
        result = probe(server.url(), name="silent", read_timeout=0.3)
    assert result.status == "error"
    assert result.error_kind == "timeout"
    assert result.error == "No response from 127.0.0.1 within 0.3 s."


def test_trickled_body_hits_deadline() -> None:
    with RawServer(trickle(length=500, interval=0.02)) as server:
        result = probe(
            server.url(), name="trickle", read_timeout=1.0, total_timeout=0.3
        )
    assert result.status == "error"
    assert result.error_kind == "timeout"
    assert result.truncated
    assert result.declared_length == 500
    assert result.body_bytes < 500


def test_oversized_body_is_cut() -> None:
    with RawServer(oversized(5_000_000)) as server:
        result = probe(server.url(), name="big", expect="text", max_body_bytes=100_000)
    assert result.status == "fail"
    assert result.error_kind == "too large"
    assert result.truncated
    assert result.body_bytes == 100_000
    assert result.declared_length == 5_000_000


def test_dns_failure(failing_invalid_lookup: list[str]) -> None:
    result = probe("http://veefore-api.invalid/health", name="dns")
    assert failing_invalid_lookup == ["veefore-api.invalid"]
    assert result.status == "error"
    assert result.error_kind == "dns"
    assert result.error == "The host name veefore-api.invalid could not be resolved."


def test_tls_to_plain_http_server() -> None:
    recorded = load_recorded(FORMATS, "k8s-readyz-plain.http")
    with RawServer(replay(recorded.raw)) as server:
        result = probe(server.url("/readyz", scheme="https"), name="tls")
    assert result.status == "error"
    assert result.error_kind == "tls"


# Credentials stay with the host they were meant for.


def test_cross_host_redirect_drops_credentials() -> None:
    with RawServer(replay(b""), host="127.0.0.2") as other:
        with RawServer(redirect(other.url("/health"))) as server:
            result = probe(
                server.url("/health"), name="redirect", headers={"Authorization": TOKEN}
            )
            first_request = server.requests[0]
        assert other.requests == []
    assert TOKEN.encode() in first_request
    assert result.status == "fail"
    assert result.error_kind == "redirect"
    assert "The redirect leads to another host." in result.reasons


def test_following_client_not_followed() -> None:
    with RawServer(replay(b""), host="127.0.0.2") as other:
        target = redirect(other.url("/health"))
        with RawServer(target) as server, httpx.Client(follow_redirects=True) as client:
            result = probe(
                server.url("/health"),
                name="redirect",
                headers={"Authorization": TOKEN},
                client=client,
            )
        assert other.requests == []
    assert result.error_kind == "redirect"


def test_same_host_redirect_reported() -> None:
    with RawServer(redirect("/health/", "301 Moved Permanently")) as server:
        result = probe(server.url("/health"), name="slash")
        assert len(server.requests) == 1
    assert result.status == "fail"
    assert result.error == (
        f"HTTP 301 redirected to {server.url('/health/')}; "
        "the redirect was not followed."
    )


def test_invalid_location_reported() -> None:
    with RawServer(redirect("http://192.0.2.30:abc/")) as server:
        result = probe(server.url("/health"), name="bad-location")
    assert result.status == "error"
    assert result.error_kind == "protocol"
    assert result.error == (
        "127.0.0.1 broke the HTTP protocol: "
        "Invalid URL in location header: Invalid port: 'abc'."
    )


def test_record_omits_header_values(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/health"
    result = probe(url, name="refused", headers={"Authorization": TOKEN})
    assert "s3cr3t" not in json.dumps(result.to_dict())


def test_echoed_token_is_masked() -> None:
    body = b'{"status":"ok","echo":"s3cr3t-t0ken-value"}'
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    with RawServer(replay(head + body)) as server:
        result = probe(server.url(), name="echo", headers={"Authorization": TOKEN})
    assert result.status == "pass"
    assert "s3cr3t" not in json.dumps(result.to_dict())


def test_short_header_value_kept() -> None:
    body = b'{"status":"ok","replicas":1}'
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    with RawServer(replay(head + body)) as server:
        result = probe(server.url(), name="short", headers={"X-Debug": "1"})
    assert result.text == body.decode()


def test_url_password_is_masked(closed_port: int) -> None:
    url = f"http://ops:hunter2-pass@127.0.0.1:{closed_port}/health?token=abc123"
    result = probe(url, name="masked")
    assert "hunter2-pass" not in result.url
    assert "abc123" not in result.url


# Other expectations and the result's shape.


def test_expect_json_rejects_html() -> None:
    result = probe_recorded(
        MISBEHAVING, "GET_api-readyz_spa-fallback-200.http", expect="json"
    )
    assert result.status == "fail"
    assert result.error_kind == "unexpected content"


def test_expect_json_accepts_json() -> None:
    result = probe_recorded(FORMATS, "actuator-2.1-legacy.http", expect="json")
    assert result.status == "pass"
    assert result.json["status"] == "UP"


def test_expect_metrics_accepts_text() -> None:
    body = b"# TYPE up gauge\nup 1\n"
    head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
    raw = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    with RawServer(replay(raw)) as server:
        result = probe(server.url("/metrics"), name="metrics", expect="metrics")
    assert result.status == "pass"
    assert result.text == "# TYPE up gauge\nup 1\n"


def test_unknown_charset_decoded_as_utf8() -> None:
    body = '{"status":"ok","node":"zürich"}'.encode()
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=no-such"
    raw = f"{head}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    with RawServer(replay(raw)) as server:
        result = probe(server.url(), name="charset")
    assert result.status == "pass"
    assert result.json["node"] == "zürich"


def test_invalid_scheme_rejected() -> None:
    with pytest.raises(ValueError, match="must use http or https"):
        probe("ftp://127.0.0.1/health", name="ftp")


def test_summary_is_one_line() -> None:
    result = probe_recorded(MISBEHAVING, "GET_health-ready_503-json.http")
    line = result.summary()
    assert "\n" not in line
    assert line.startswith("GET_health-ready_503-json.http  FAIL  HTTP 503  ")


def test_started_at_is_utc() -> None:
    result = probe_recorded(FORMATS, "k8s-readyz-plain.http")
    assert result.started_at.endswith("+00:00")


# Hostile targets: slow headers, compression bombs, deep JSON.


def test_slow_headers_hit_total_timeout() -> None:
    hung_up = threading.Event()
    with RawServer(slow_head(0.5, hung_up)) as server:
        result = probe(server.url(), name="slow", read_timeout=5, total_timeout=1.5)
        assert hung_up.wait(timeout=10)
    assert result.status == "error"
    assert result.error_kind == "timeout"
    assert result.http_status is None
    assert result.error is not None
    assert "total timeout of 1.5 s" in result.error


def test_slow_headers_leak_nothing() -> None:
    descriptors = open_descriptors()
    hung_up = threading.Event()
    with RawServer(slow_head(0.5, hung_up)) as server:
        probe(server.url(), name="slow", read_timeout=5, total_timeout=1.0)
        assert hung_up.wait(timeout=10)
    assert watchdog_threads() == []
    assert open_descriptors() == descriptors


def test_slow_headers_caller_client() -> None:
    hung_up = threading.Event()
    with (
        RawServer(slow_head(0.5, hung_up)) as server,
        httpx.Client(trust_env=False) as client,
    ):
        result = probe(
            server.url(), name="slow", read_timeout=5, total_timeout=1.0, client=client
        )
        assert hung_up.wait(timeout=10)
    assert result.error_kind == "timeout"
    assert result.error is not None
    assert "total timeout of 1.0 s" in result.error


def test_silent_server_hits_total_timeout() -> None:
    with RawServer(silent()) as server:
        result = probe(server.url(), name="silent", read_timeout=30, total_timeout=0.5)
    assert result.status == "error"
    assert result.error_kind == "timeout"
    assert result.error is not None
    assert "0.5 s" in result.error


# Bodies still arriving when the total timeout passes.

METRICS_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
    b"Connection: close\r\n\r\n"
)
FIVE_XX_LINE = b'http_requests_total{route="/api/x",status="500"} 60\n'
COMMENT_LINE = b"# still generating\n"


def close_delimited_drip(lines: int, interval: float) -> Responder:
    """Send a body without Content-Length or chunking, one line per ``interval``.

    The body ends only when the connection closes, after ``lines`` comment lines.
    """

    def respond(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(METRICS_HEAD + FIVE_XX_LINE)
        for _ in range(lines):
            if stop.wait(interval):
                return
            conn.sendall(COMMENT_LINE)

    return respond


def chunked_drip(interval: float) -> Responder:
    """Send a chunked body, one chunk per ``interval``, until the server stops."""

    def respond(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        conn.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        while not stop.wait(interval):
            conn.sendall(b"%x\r\n%s\r\n" % (len(COMMENT_LINE), COMMENT_LINE))

    return respond


@pytest.mark.parametrize("expect", ["health", "json", "text", "metrics"])
def test_close_delimited_drip_is_cut(expect: Expect) -> None:
    with RawServer(close_delimited_drip(lines=100, interval=0.05)) as server:
        result = probe(
            server.url("/metrics"),
            name="drip",
            expect=expect,
            read_timeout=5,
            total_timeout=0.5,
        )
    assert result.status == "error"
    assert result.error_kind == "timeout"
    assert result.truncated
    assert result.declared_length is None
    assert result.body_bytes >= len(FIVE_XX_LINE)
    assert result.error == (
        "The body was incomplete when the total timeout of 0.5 s passed, "
        f"after {result.body_bytes} bytes."
    )


def test_chunked_drip_is_cut() -> None:
    with RawServer(chunked_drip(interval=0.05)) as server:
        result = probe(
            server.url("/metrics"),
            name="drip",
            expect="metrics",
            read_timeout=5,
            total_timeout=0.5,
        )
    assert result.status == "error"
    assert result.error_kind == "timeout"
    assert result.truncated
    assert result.error is not None
    assert "total timeout of 0.5 s passed" in result.error


def test_close_delimited_body_in_time_passes() -> None:
    with RawServer(close_delimited_drip(lines=2, interval=0.05)) as server:
        result = probe(
            server.url("/metrics"),
            name="drip",
            expect="metrics",
            read_timeout=5,
            total_timeout=5,
        )
    assert result.status == "pass"
    assert not result.truncated
    assert result.text == (FIVE_XX_LINE + 2 * COMMENT_LINE).decode()


def test_default_total_timeout_value() -> None:
    assert default_total_timeout(2.0, 5.0) == 12.0


def test_default_total_timeout_applied() -> None:
    # Each line arrives well within the read timeout, so only the total stops it.
    with RawServer(close_delimited_drip(lines=100, interval=0.02)) as server:
        result = probe(
            server.url("/metrics"),
            name="drip",
            expect="metrics",
            connect_timeout=0.1,
            read_timeout=0.2,
        )
    assert result.error_kind == "timeout"
    assert result.error is not None
    assert "total timeout of 0.5 s passed" in result.error


def test_invalid_timeout_rejected() -> None:
    with pytest.raises(ValueError, match="Timeouts must be positive"):
        probe("http://127.0.0.1:9/health", name="zero", total_timeout=0)


def test_probe_requests_identity_encoding() -> None:
    with RawServer(replay(response_bytes(b'{"status":"ok"}'))) as server:
        probe(server.url(), name="identity")
    assert b"accept-encoding: identity" in server.requests[0].lower()


def test_gzip_bomb_is_cut() -> None:
    bomb = gzip.compress(gzip_of_zeros(1024))
    raw = response_bytes(bomb, "text/plain", {"Content-Encoding": "gzip, gzip"})
    before = max_rss_bytes()
    result = probe_raw(raw, expect="text", max_body_bytes=1_000_000)
    assert max_rss_bytes() - before < 200 * 2**20
    assert result.status == "fail"
    assert result.error_kind == "too large"
    assert result.truncated
    assert result.body_bytes == len(bomb)
    assert result.error == (
        "The body decodes to more than 1000000 bytes, so only those were read."
    )


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),
        ("gzip, deflate", lambda data: zlib.compress(gzip.compress(data))),
    ],
)
def test_compressed_body_decoded(encoding: str, compress: Any) -> None:
    body = b'{"status":"ok","node":"eu-1"}'
    raw = response_bytes(compress(body), headers={"Content-Encoding": encoding})
    result = probe_raw(raw)
    assert result.status == "pass"
    assert result.json == {"status": "ok", "node": "eu-1"}
    assert result.text == body.decode()


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, br"])
def test_unsupported_encoding_not_decoded(encoding: str) -> None:
    raw = response_bytes(b"\x8b\x0b\x80ok\x03", headers={"Content-Encoding": encoding})
    result = probe_raw(raw)
    assert result.status == "fail"
    assert result.error_kind == "unsupported content encoding"
    assert result.text == ""
    assert result.error is not None
    assert repr(encoding) in result.error


def test_compressed_redirect_still_redirect() -> None:
    head = "HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Encoding: br\r\n"
    raw = f"{head}Content-Length: 4\r\n\r\n".encode() + b"\x8b\x01\x80\x03"
    result = probe_raw(raw)
    assert result.status == "fail"
    assert result.error_kind == "redirect"


def test_invalid_gzip_is_protocol_error() -> None:
    raw = response_bytes(b"not gzip at all", headers={"Content-Encoding": "gzip"})
    result = probe_raw(raw)
    assert result.status == "error"
    assert result.error_kind == "protocol"
    assert result.error is not None
    assert result.error.startswith("The gzip body could not be decoded: ")


def test_deep_json_health_fails() -> None:
    result = probe_raw(response_bytes(nested_arrays(900)))
    assert result.status == "fail"
    assert result.error_kind == "json too deep"
    assert result.json is None
    assert "JSON nested deeper than 64 levels." in result.reasons
    assert json.loads(json.dumps(result.to_dict()))["json"] is None


def test_deep_json_expect_json_fails() -> None:
    body = b'{"a":' * 900 + b"1" + b"}" * 900
    result = probe_raw(response_bytes(body), expect="json")
    assert result.status == "fail"
    assert result.error_kind == "json too deep"
    assert result.json is None
    assert "JSON nested deeper than 64 levels." in result.reasons


def test_deep_json_expect_text_passes() -> None:
    result = probe_raw(response_bytes(nested_arrays(900)), expect="text")
    assert result.status == "pass"
    assert result.json is None
    assert "JSON nested deeper than 64 levels." in result.reasons


def test_json_at_depth_limit_kept() -> None:
    result = probe_raw(response_bytes(nested_arrays(64)), expect="json")
    assert result.status == "pass"
    assert result.json is not None
    assert result.to_dict()["json"] == result.json


# Secrets cut in two by the excerpt, the recorded text or the size limit.

SECRET = "Zq9-vault-root-token-4c1d2e7f"


def leaked_prefixes(record: dict[str, Any]) -> list[str]:
    """Return the prefixes of SECRET, four characters or longer, in the record."""
    dumped = json.dumps(record)
    return [SECRET[:n] for n in range(4, len(SECRET) + 1) if SECRET[:n] in dumped]


def test_secret_at_excerpt_cut_masked() -> None:
    body = ("a" * 188 + SECRET + " tail").encode()
    result = probe_raw(
        response_bytes(body, "text/plain"),
        expect="text",
        redactor=Redactor([SECRET]),
    )
    assert leaked_prefixes(result.to_dict()) == []
    assert "***" in result.excerpt


def test_secret_at_text_cut_masked() -> None:
    body = ("a" * (16 * 1024 - 12) + SECRET + "b" * 100).encode()
    result = probe_raw(
        response_bytes(body, "text/plain"),
        expect="text",
        redactor=Redactor([SECRET]),
    )
    assert leaked_prefixes(result.to_dict()) == []


def test_secret_at_size_cut_dropped() -> None:
    body = ("a" * 9_990 + SECRET + "b" * 100).encode()
    result = probe_raw(
        response_bytes(body, "text/plain"),
        expect="text",
        max_body_bytes=10_000,
        redactor=Redactor([SECRET]),
    )
    assert result.error_kind == "too large"
    assert leaked_prefixes(result.to_dict()) == []


def test_secret_in_reason_masked() -> None:
    body = json.dumps({"status": "down", "reason": f"vault login {SECRET} denied"})
    result = probe_raw(response_bytes(body.encode()), redactor=Redactor([SECRET]))
    assert result.error_kind == "unhealthy"
    assert "Status down: vault login *** denied." in result.reasons
    assert leaked_prefixes(result.to_dict()) == []


# The size of the record that the journal keeps.


def test_record_text_capped() -> None:
    body = "é" * 100_000
    result = probe_raw(response_bytes(body.encode(), "text/plain"), expect="text")
    record = result.to_dict()
    assert result.text == body
    assert len(record["text"].encode()) <= 16 * 1024
    assert record["text_truncated"]


def test_record_omits_large_json() -> None:
    items = [{"id": index, "name": f"replica-{index}"} for index in range(5_000)]
    body = json.dumps({"status": "ok", "items": items}).encode()
    result = probe_raw(response_bytes(body), expect="json")
    record = result.to_dict()
    assert result.json["items"][-1]["id"] == 4_999
    assert record["json"] is None
    assert record["json_omitted"]


def test_record_keeps_small_json() -> None:
    result = probe_raw(response_bytes(b'{"status":"ok","replicas":3}'), expect="json")
    record = result.to_dict()
    assert record["json"] == {"status": "ok", "replicas": 3}
    assert not record["json_omitted"]
    assert not record["text_truncated"]
