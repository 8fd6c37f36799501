"""The receiver's HTTP server: uvicorn on its own thread, with connection limits.

uvicorn's ``limit_concurrency`` responds with 503 once that many connections or
requests are open, and ``timeout_keep_alive`` closes a connection idle after a
response. A header deadline, added here because uvicorn has none, closes a
connection that has not sent a complete request head in time, so idle or half-open
connections cannot pile up until the process runs out of file descriptors.
"""

from __future__ import annotations

import asyncio
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
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from veerunbook.errors import UsageError, VeerunbookError
from veerunbook.receive_log import RepeatFilter

START_TIMEOUT_SECONDS = 10.0
GRACEFUL_SHUTDOWN_SECONDS = 5
# Connections or requests open at once before uvicorn responds with 503. Alertmanager
# sends one notification per group at a time, so this leaves room for many groups.
DEFAULT_LIMIT_CONCURRENCY = 64
# Connections beyond this many are closed at once without a response. This keeps
# the file descriptors of a flood of connections well below the common soft limit
# of 1024 per process.
MAX_CONNECTIONS = 4 * DEFAULT_LIMIT_CONCURRENCY
DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
# h11's default limit for a request head, stated here so that it is visible.
MAX_HEAD_BYTES = 16 * 1024

_log = logging.getLogger("veerunbook.receive")
_connections_log = logging.getLogger("veerunbook.receive.connections")
_connections_log.addFilter(RepeatFilter())


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
    """The app served by uvicorn on its own thread; ``stop()`` it when done.

    The socket is bound in the constructor, which raises OSError when it cannot be.
    """

    def __init__(
        self,
        app: Starlette,
        address: str,
        port: int,
        *,
        limit_concurrency: int = DEFAULT_LIMIT_CONCURRENCY,
        max_connections: int = MAX_CONNECTIONS,
        header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS,
    ) -> None:
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
            http=_deadline_protocol(header_timeout_seconds, max_connections),
            limit_concurrency=limit_concurrency,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        )
        # uvicorn and asyncio log once per failed connection or accept() call.
        self._repeat_filter = RepeatFilter()
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._listener]},
            name="veerunbook-receiver",
            daemon=True,
        )

    def start(self) -> None:
        """Start serving and return once the server accepts connections."""
        for name in _FLOODED_LOGGERS:
            logging.getLogger(name).addFilter(self._repeat_filter)
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
        for name in _FLOODED_LOGGERS:
            logging.getLogger(name).removeFilter(self._repeat_filter)


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


# Loggers that write a line per rejected connection or failed accept() call.
_FLOODED_LOGGERS = ("asyncio", "uvicorn.error")


class _DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head.

    uvicorn 0.55 times out a connection only while it idles after a response, so a
    client that connects and sends nothing, or part of a request head, would hold
    its connection until shutdown.

    NOTE: this relies on uvicorn's H11Protocol attributes ``loop``, ``transport``,
    ``cycle`` and ``connections`` and its ``on_response_complete`` hook, which are
    internal; check them when uvicorn is upgraded.
    """

    header_timeout_seconds = DEFAULT_HEADER_TIMEOUT_SECONDS
    max_connections = MAX_CONNECTIONS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            _connections_log.warning(
                "connection from %s closed: over %d connections are open",
                _peer(self.client),
                self.max_connections,
            )
            transport.close()
            return
        self._start_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(
            self.header_timeout_seconds, self._head_timed_out, self.cycle
        )

    def _head_timed_out(self, cycle_when_started: RequestResponseCycle | None) -> None:
        # A new request head replaces self.cycle, so the same cycle, finished or
        # None, means that no request head arrived in time.
        idle = cycle_when_started is None or cycle_when_started.response_complete
        if self.cycle is not cycle_when_started or not idle:
            return
        if self.transport.is_closing():
            return
        _connections_log.warning(
            "connection from %s closed: no complete request head within %g s",
            _peer(self.client),
            self.header_timeout_seconds,
        )
        self.transport.close()


def _deadline_protocol(
    header_timeout_seconds: float, max_connections: int
) -> type[_DeadlineProtocol]:
    """Return a protocol class with the given head deadline and connection limit."""
    attributes = {
        "header_timeout_seconds": header_timeout_seconds,
        "max_connections": max_connections,
    }
    return type("DeadlineProtocol", (_DeadlineProtocol,), attributes)


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown client"
