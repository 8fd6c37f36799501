"""The webhook receiver's HTTP side: a Starlette app, served by receive_server.

Routes: ``POST /`` and ``POST /alerts`` take an Alertmanager webhook notification,
``GET /healthz`` returns 200. Webhook responses are JSON: the receipt on 200 and
``{"error": ...}`` otherwise. The error statuses are 400 malformed, 401 missing or
wrong bearer token, 408 body not received within the deadline, 413 body over the
limit, 415 not ``application/json`` and 422 unsupported version. 500 means that an
alert could not be recorded, which makes Alertmanager retry, and 503 that too many
requests are in progress. Rejections are logged at most once a minute per kind, with
the count of those not logged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from veerunbook.receive import Receiver
from veerunbook.receive_log import RepeatFilter
from veerunbook.receive_payload import PayloadError, parse_body

DEFAULT_MAX_BODY_BYTES = 1 << 20
# Alertmanager sends a body of at most a few hundred kB at once, so a body still
# incomplete after this long comes from a stalled or hostile client.
DEFAULT_BODY_TIMEOUT_SECONDS = 10.0
# Requests in progress at once before the receiver responds with 503. Alertmanager
# sends one notification per group at a time, so this leaves room for many groups.
DEFAULT_MAX_CONCURRENT_REQUESTS = 64

_log = logging.getLogger("veerunbook.receive")
_rejected_log = logging.getLogger("veerunbook.receive.rejected")
_rejected_log.addFilter(RepeatFilter())


class _BodyTooLarge(Exception):
    """Raised while reading a request body that exceeds the limit."""


def build_app(
    receiver: Receiver,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    token: str | None = None,
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS,
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
) -> Starlette:
    """Build the receiver's ASGI app; ``token`` set requires ``Bearer <token>``.

    A body must arrive completely within ``body_timeout_seconds`` of the request
    head, or the request gets 408. A request that arrives while
    ``max_concurrent_requests`` are in progress gets 503.
    """
    limits = _BodyLimits(max_body_bytes, body_timeout_seconds)

    async def webhook(request: Request) -> Response:
        client = request.client.host if request.client else "unknown client"
        try:
            return await _webhook(request, receiver, limits, token)
        except Exception as exc:  # a request must never take the server down
            _log.error(
                "webhook request from %s failed: %s: %s",
                client,
                exc.__class__.__name__,
                exc,
            )
            return _error(500, "internal error; see the receiver's log.")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/", webhook, methods=["POST"]),
        Route("/alerts", webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    limit = Middleware(_RequestLimit, max_requests=max_concurrent_requests)
    return Starlette(routes=routes, middleware=[limit])


class _RequestLimit:
    """ASGI middleware that responds with 503 while ``max_requests`` are in progress.

    uvicorn's ``limit_concurrency`` is not used, because it also counts open
    connections: connections that never send a request head would make every request
    get 503. Such connections are limited by receive_server instead.
    """

    def __init__(self, app: ASGIApp, max_requests: int) -> None:
        self._app = app
        self._max_requests = max_requests
        # Only the server's event loop thread changes this count.
        self._in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if self._in_progress >= self._max_requests:
            client = scope["client"][0] if scope.get("client") else "unknown client"
            _rejected_log.warning(
                "request from %s rejected with 503: %d requests are in progress, "
                "the limit is %d",
                client,
                self._in_progress,
                self._max_requests,
            )
            response = _error(
                503,
                f"{self._in_progress} requests are in progress, the limit is "
                f"{self._max_requests}; try again later.",
            )
            await response(scope, receive, send)
            return
        self._in_progress += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self._in_progress -= 1


@dataclass(frozen=True)
class _BodyLimits:
    max_bytes: int
    timeout_seconds: float


async def _webhook(
    request: Request, receiver: Receiver, limits: _BodyLimits, token: str | None
) -> Response:
    client = request.client.host if request.client else "unknown client"
    if token is not None and not _authorized(request, token):
        _rejected_log.warning(
            "webhook request from %s rejected: no valid bearer token", client
        )
        response = _error(401, "missing or invalid bearer token.")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    media_type = request.headers.get("content-type", "").partition(";")[0]
    if media_type.strip().lower() != "application/json":
        _rejected_log.warning(
            "webhook request from %s rejected: content type %r", client, media_type
        )
        return _error(415, f"expected application/json, not {media_type!r}.")

    try:
        async with asyncio.timeout(limits.timeout_seconds):
            body = await _read_body(request, limits.max_bytes)
        notification = parse_body(body)
    except TimeoutError:
        _rejected_log.warning(
            "webhook request from %s rejected: body not received within %g s",
            client,
            limits.timeout_seconds,
        )
        return _error(
            408, f"request body not received within {limits.timeout_seconds:g} s."
        )
    except _BodyTooLarge:
        _rejected_log.warning(
            "webhook request from %s rejected: body over %d bytes",
            client,
            limits.max_bytes,
        )
        return _error(413, f"body larger than the limit of {limits.max_bytes} bytes.")
    except PayloadError as exc:
        _rejected_log.warning("webhook request from %s rejected: %s", client, exc)
        return _error(exc.status, str(exc))

    # Journal appends sync to disk, so they run in a worker thread.
    receipt = await run_in_threadpool(receiver.handle, notification)
    summary = receipt.to_dict()
    _log.info(
        "notification %s from %s: %d accepted, %d duplicates, %d runs queued, "
        "%d queued runs dropped%s",
        notification.group_key,
        client,
        summary["accepted"],
        summary["duplicates"],
        summary["runs_queued"],
        summary["runs_dropped"],
        f", {summary['errors']} errors" if receipt.failed else "",
    )
    return JSONResponse(summary, status_code=500 if receipt.failed else 200)


def _authorized(request: Request, token: str) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


async def _read_body(request: Request, limit: int) -> bytes:
    """Read the body, stopping as soon as it exceeds ``limit`` bytes.

    The declared Content-Length is checked first, and the stream is counted too,
    because a chunked body declares no length.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
