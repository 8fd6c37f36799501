"""The receiver's HTTP server: uvicorn on its own thread, with connection limits.

uvicorn's ``timeout_keep_alive`` closes a connection idle after a response. A header
deadline, added here because uvicorn has none, closes a connection that has not sent
a complete request head in time. A cap on open connections keeps a flood of them
from running the process out of file descriptors. At the cap, a new connection
pushes out the oldest one that is waiting for a request head, so connections that
never send one cannot lock out a client that does. The limit on requests in progress
(503) is the app's, in receive_app.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
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
# Open connections at most. This keeps the file descriptors of a flood of
# connections well below the common soft limit of 1024 per process.
MAX_CONNECTIONS = 256
# Connections from one client address that wait for a request head at most, so that
# one address cannot push the connections of other clients out.
MAX_WAITING_PER_CLIENT = 32
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
        max_connections: int = MAX_CONNECTIONS,
        max_waiting_per_client: int = MAX_WAITING_PER_CLIENT,
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
            http=_deadline_protocol(
                header_timeout_seconds, max_connections, max_waiting_per_client
            ),
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
    """uvicorn's h11 protocol with a deadline for each request head and a
    connection cap that closes the oldest connection waiting for a head.

    uvicorn 0.55 times out a connection only while it idles after a response, so a
    client that connects and sends nothing, or part of a request head, would hold
    its connection until shutdown.

    NOTE: this relies on uvicorn's H11Protocol attributes ``loop``, ``transport``,
    ``client``, ``cycle`` and ``connections`` and its ``on_response_complete`` hook.
    They are internal, so check them when uvicorn is upgraded.
    """

    header_timeout_seconds = DEFAULT_HEADER_TIMEOUT_SECONDS
    max_connections = MAX_CONNECTIONS
    max_waiting_per_client = MAX_WAITING_PER_CLIENT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._start_head_timer()
        self._enforce_limits()

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
        # The order in which connections began to wait, oldest first. A counter,
        # unlike a clock, never gives two connections the same place.
        self._waiting_since = next(_waiting_order)
        self._head_timer = self.loop.call_later(
            self.header_timeout_seconds, self._head_timed_out, self.cycle
        )

    def _waits_for_head(self) -> bool:
        # A new request head replaces self.cycle with an unfinished cycle.
        return self.cycle is None or self.cycle.response_complete

    def _head_timed_out(self, cycle_when_started: RequestResponseCycle | None) -> None:
        # The same cycle, finished or None, means that no request head arrived in time.
        if self.cycle is not cycle_when_started or not self._waits_for_head():
            return
        if self.transport.is_closing():
            return
        _connections_log.warning(
            "connection from %s closed: no complete request head within %g s",
            _peer(self.client),
            self.header_timeout_seconds,
        )
        self.transport.close()

    def _enforce_limits(self) -> None:
        """Close the oldest connection waiting for a request head when this new
        connection puts its client address or the server over a limit.

        The new connection waits too and is the newest, so it is the one closed only
        when no other connection waits: every other one is inside a request.
        """
        open_connections = [c for c in self.connections if not c.transport.is_closing()]
        waiting = sorted(
            (
                c
                for c in open_connections
                if isinstance(c, _DeadlineProtocol) and c._waits_for_head()
            ),
            key=lambda c: c._waiting_since,
        )
        host = self.client[0] if self.client else None
        same_client = [c for c in waiting if c.client and c.client[0] == host]
        if len(same_client) > self.max_waiting_per_client:
            # Closing one keeps the count of open connections where it was before
            # this one, which was within the limit.
            oldest = same_client[0]
            _connections_log.warning(
                "connection from %s closed: %d connections from its address wait "
                "for a request head, the limit is %d, and it waited longest",
                _peer(oldest.client),
                len(same_client),
                self.max_waiting_per_client,
            )
            oldest.transport.close()
            return
        if len(open_connections) <= self.max_connections:
            return
        oldest = waiting[0]
        if oldest is self:
            _connections_log.warning(
                "connection from %s closed: %d connections are open, the limit is "
                "%d, and all others are inside a request",
                _peer(self.client),
                len(open_connections),
                self.max_connections,
            )
        else:
            _connections_log.warning(
                "connection from %s closed: %d connections are open, the limit is "
                "%d, and it waited longest for a request head",
                _peer(oldest.client),
                len(open_connections),
                self.max_connections,
            )
        oldest.transport.close()


_waiting_order = itertools.count()


def _deadline_protocol(
    header_timeout_seconds: float, max_connections: int, max_waiting_per_client: int
) -> type[_DeadlineProtocol]:
    """Return a protocol class with the given head deadline and connection limits."""
    attributes = {
        "header_timeout_seconds": header_timeout_seconds,
        "max_connections": max_connections,
        "max_waiting_per_client": max_waiting_per_client,
    }
    return type("DeadlineProtocol", (_DeadlineProtocol,), attributes)


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown client"
