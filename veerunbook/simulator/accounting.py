"""ASGI middleware that counts, logs and filters every request to the service.

It runs before routing, so requests to unknown paths and requests that a handler
fails on are counted too. Blocked client addresses get 403 here on every path
except the health checks and ``/metrics``. User routes that the traffic mode closes
get 503 here (see ``maintenance``), and a route that the scenario makes hang waits
here before its handler runs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import secrets
import time
from dataclasses import dataclass, field

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veerunbook.simulator.behaviour import EXEMPT_FROM_BLOCKING, ROUTES
from veerunbook.simulator.maintenance import (
    RETRY_AFTER_SECONDS,
    TrafficState,
    accepts,
    maintenance_message,
)
from veerunbook.simulator.model import ErrorSignature, Scenario
from veerunbook.simulator.service import SimulatedService

logger = logging.getLogger("veerunbook.simulator")

KNOWN_PATHS = frozenset(route.path for route in ROUTES)
UNMATCHED_ENDPOINT = "unmatched"
_CORRELATION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
STOP_POLL_SECONDS = 0.05


@dataclass
class RequestContext:
    """Request facts that the middleware collects and shares with the handler.

    A handler sets ``error`` when it returns a 5xx response, so the log record
    carries the error.
    """

    service: SimulatedService
    scenario: Scenario
    correlation_id: str
    client_ip: str
    error: ErrorSignature | None = field(default=None)


def new_correlation_id() -> str:
    """Make an id in the application's format: ``corr_`` and 12 hex digits."""
    return f"corr_{secrets.token_hex(6)}"


def client_address(scope: Scope, headers: Headers) -> str:
    """Return the first ``X-Forwarded-For`` hop if it is an IP address, else the peer.

    Trusting the header matches an Express app behind one proxy with
    ``trust proxy`` set.
    """
    forwarded = headers.get("x-forwarded-for", "")
    first_hop = forwarded.split(",")[0].strip()
    for candidate in (first_hop, (scope.get("client") or ("",))[0]):
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return "unknown"


async def hang(context: RequestContext, seconds: float) -> bool:
    """Wait ``seconds``, or less when the service stops; return whether it stopped.

    The wait polls, so stopping the server never has to cancel the request.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    stopping = context.service.stopping
    while not stopping.is_set():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(remaining, STOP_POLL_SECONDS))
    return True


class RequestAccounting:
    """Pure ASGI middleware: correlation id, IP blocking, metrics and log record."""

    def __init__(self, app: ASGIApp, service: SimulatedService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = Headers(scope=scope)
        incoming_id = headers.get("x-correlation-id", "")
        context = RequestContext(
            service=self.service,
            scenario=self.service.scenario,
            correlation_id=incoming_id
            if _CORRELATION_ID.fullmatch(incoming_id)
            else new_correlation_id(),
            client_ip=client_address(scope, headers),
        )
        scope.setdefault("state", {})["request_context"] = context
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = MutableHeaders(scope=message)
                response_headers["X-Correlation-ID"] = context.correlation_id
                response_headers["X-Powered-By"] = "Express"
            await send(message)

        started = time.perf_counter()
        try:
            await self._dispatch(scope, receive, send_with_headers, context)
        except Exception as exc:
            # Starlette's ServerErrorMiddleware sends the 500 and logs the traceback.
            context.error = ErrorSignature(type(exc).__name__, str(exc), ())
            status = 500
            raise
        finally:
            self._record(scope, status, time.perf_counter() - started, context)

    async def _dispatch(
        self, scope: Scope, receive: Receive, send: Send, context: RequestContext
    ) -> None:
        path = scope["path"]
        blocked = self.service.security.is_blocked(context.client_ip)
        if blocked and path not in EXEMPT_FROM_BLOCKING:
            await _error(403, "Forbidden", context)(scope, receive, send)
            return
        traffic = self.service.traffic.state()
        if not accepts(traffic.mode, scope["method"], path):
            await _maintenance(traffic, context)(scope, receive, send)
            return
        hang_seconds = context.scenario.route_hangs.get(f"{scope['method']} {path}")
        if hang_seconds is not None:
            logger.debug(
                "request %s to %s hangs for %g s in scenario %s",
                context.correlation_id,
                path,
                hang_seconds,
                context.scenario.name,
            )
            if await hang(context, hang_seconds):
                message = "Service Unavailable: the server is shutting down"
                await _error(503, message, context)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _record(
        self, scope: Scope, status: int, seconds: float, context: RequestContext
    ) -> None:
        path = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        self.service.record_request(
            scope["method"],
            path if path in KNOWN_PATHS else UNMATCHED_ENDPOINT,
            f"{path}?{query}" if query else path,
            status,
            seconds,
            correlation_id=context.correlation_id,
            client_ip=context.client_ip,
            error=context.error,
        )


def _error(status: int, message: str, context: RequestContext) -> JSONResponse:
    body = {"error": message, "correlationId": context.correlation_id}
    return JSONResponse(body, status_code=status)


def _maintenance(traffic: TrafficState, context: RequestContext) -> JSONResponse:
    body = {
        "error": maintenance_message(traffic),
        "maintenance": traffic.to_json(),
        "correlationId": context.correlation_id,
    }
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return JSONResponse(body, status_code=503, headers=headers)
