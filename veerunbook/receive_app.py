"""The webhook receiver's HTTP side: a Starlette app served by uvicorn in a thread.

Routes: ``POST /`` and ``POST /alerts`` take an Alertmanager webhook notification,
``GET /healthz`` returns 200. Webhook responses are JSON: the receipt on 200,
``{"error": ...}`` otherwise (400 malformed, 401 missing or wrong bearer token, 413 body
over the limit, 415 not ``application/json``, 422 unsupported version, 500 an alert
could not be recorded, which makes Alertmanager retry).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from veerunbook.errors import UsageError, VeerunbookError
from veerunbook.receive import Receiver
from veerunbook.receive_payload import PayloadError, parse_body

DEFAULT_MAX_BODY_BYTES = 1 << 20
START_TIMEOUT_SECONDS = 10.0
GRACEFUL_SHUTDOWN_SECONDS = 5

_log = logging.getLogger("veerunbook.receive")


class _BodyTooLarge(Exception):
    """Raised while reading a request body that exceeds the limit."""


def build_app(
    receiver: Receiver,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    token: str | None = None,
) -> Starlette:
    """Build the receiver's ASGI app; ``token`` set requires ``Bearer <token>``."""

    async def webhook(request: Request) -> Response:
        client = request.client.host if request.client else "unknown client"
        try:
            return await _webhook(request, receiver, max_body_bytes, token)
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
    return Starlette(routes=routes)


async def _webhook(
    request: Request, receiver: Receiver, max_body_bytes: int, token: str | None
) -> Response:
    client = request.client.host if request.client else "unknown client"
    if token is not None and not _authorized(request, token):
        _log.warning("webhook request from %s rejected: no valid bearer token", client)
        response = _error(401, "missing or invalid bearer token.")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    media_type = request.headers.get("content-type", "").partition(";")[0]
    if media_type.strip().lower() != "application/json":
        _log.warning(
            "webhook request from %s rejected: content type %r", client, media_type
        )
        return _error(415, f"expected application/json, not {media_type!r}.")

    try:
        body = await _read_body(request, max_body_bytes)
        notification = parse_body(body)
    except _BodyTooLarge:
        _log.warning(
            "webhook request from %s rejected: body over %d bytes",
            client,
            max_body_bytes,
        )
        return _error(413, f"body larger than the limit of {max_body_bytes} bytes.")
    except PayloadError as exc:
        _log.warning("webhook request from %s rejected: %s", client, exc)
        return _error(exc.status, str(exc))

    # Journal appends sync to disk, so they run in a worker thread.
    receipt = await run_in_threadpool(receiver.handle, notification)
    summary = receipt.to_dict()
    _log.info(
        "notification %s from %s: %d accepted, %d duplicates, %d runs queued%s",
        notification.group_key,
        client,
        summary["accepted"],
        summary["duplicates"],
        summary["runs_queued"],
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


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:PORT`` for IPv6) into an IP address and a port.

    Raises UsageError naming the value when either part is invalid.
    """
    host, sep, port_text = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    host = "127.0.0.1" if host.lower() == "localhost" else host
    try:
        address = str(ipaddress.ip_address(host))
        port = int(port_text)
    except ValueError:
        address, port = "", -1
    if not sep or not address or not 0 <= port <= 65535:
        raise UsageError(
            f"invalid --listen value {value!r}: use IP:PORT such as 127.0.0.1:9095 "
            "or [::1]:9095, with a port from 0 (any free port) to 65535."
        )
    return address, port


def is_loopback(address: str) -> bool:
    """Return whether ``address`` (an IP address) is a loopback address."""
    return ipaddress.ip_address(address).is_loopback


class ReceiverServer:
    """The app served by uvicorn on its own thread; ``stop()`` it when done."""

    def __init__(self, app: Starlette, address: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((address, port))
        except OSError:
            self._listener.close()
            raise
        host, self.port = self._listener.getsockname()[:2]
        self.url = (
            f"http://[{host}]:{self.port}"
            if ":" in host
            else (f"http://{host}:{self.port}")
        )
        config = uvicorn.Config(
            app,
            log_config=None,  # the veerunbook logger reports each request
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._listener]},
            name="veerunbook-receiver",
            daemon=True,
        )

    def start(self) -> None:
        """Start serving and return once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started and time.monotonic() < deadline:
            if not self._thread.is_alive():
                break
            time.sleep(0.01)
        if not self._server.started:
            self.stop()
            raise VeerunbookError(
                f"the receiver did not start within {START_TIMEOUT_SECONDS:g} s; see "
                "the log of the uvicorn.error logger for the cause."
            )
        _log.info("receiver listening on %s", self.url)

    @property
    def running(self) -> bool:
        """Whether the server thread is still serving."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop accepting requests, finish those in flight and close the socket."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join()
        self._listener.close()


def serve_until_signal(server: ReceiverServer, on_stop: Callable[[], object]) -> None:
    """Serve until SIGINT or SIGTERM, then stop the server and call ``on_stop``.

    Must run on the main thread, where Python delivers signals. The previous signal
    handlers are restored on return.
    """
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    previous = {
        signum: signal.signal(signum, request_stop)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.start()
        while server.running and not stop_requested.wait(0.5):
            pass
        _log.info("receiver stopping")
        server.stop()
        on_stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _log.info("receiver stopped")
