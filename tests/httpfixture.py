"""Loopback servers that send raw, recorded HTTP bytes, for probe tests.

The servers work at the socket level on purpose: a recorded response must reach the
client byte for byte, including a body shorter than its Content-Length, which
http.server or an ASGI server would correct or refuse to send.
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import struct
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

FIXTURES = Path(__file__).parent / "fixtures"

# A responder gets the accepted connection, the request bytes it read and the stop
# event of its server; it sends whatever it likes and returns.
Responder = Callable[[socket.socket, bytes, threading.Event], None]


@dataclass(frozen=True)
class RecordedResponse:
    """A recorded response file, parsed by the standard library's HTTP client."""

    raw: bytes
    status: int
    content_type: str | None
    body: bytes


class _RecordingSocket:
    """The one method http.client.HTTPResponse needs from a socket."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self._raw)


def load_recorded(case: str, file_name: str) -> RecordedResponse:
    """Parse ``tests/fixtures/<case>/<file_name>``; a short body is kept as it is."""
    raw = (FIXTURES / case / file_name).read_bytes()
    response = http.client.HTTPResponse(_RecordingSocket(raw))  # type: ignore[arg-type]
    response.begin()
    try:
        body = response.read()
    except http.client.IncompleteRead as exc:
        body = exc.partial
    return RecordedResponse(
        raw, response.status, response.getheader("content-type"), body
    )


class RawServer:
    """A TCP server on loopback that hands every connection to a responder.

    Each connection gets its own thread, so a responder that never responds does not
    block the next one. ``requests`` stores the raw request bytes in arrival order.
    """

    def __init__(self, responder: Responder, host: str = "127.0.0.1") -> None:
        self._responder = responder
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.05)
        self.host, self.port = self._listener.getsockname()[:2]
        self.requests: list[bytes] = []

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    def __enter__(self) -> RawServer:
        self._start(self._accept_loop)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._start(self._serve, connection)

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            request = _read_request(connection)
            self.requests.append(request)
            try:
                self._responder(connection, request, self._stop)
                _close_gently(connection)
            except OSError:
                pass  # the client hung up first, which several tests provoke


def _read_request(connection: socket.socket) -> bytes:
    """Read one request head and body; stop early on bytes that are not HTTP (TLS)."""
    connection.settimeout(2)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65_536)
            data += chunk
            if not chunk or not data[:1].isalpha():
                return data
        head, _, body = data.partition(b"\r\n\r\n")
        length = _content_length(head)
        while len(body) < length:
            chunk = connection.recv(65_536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body
    except TimeoutError:
        return data


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _close_gently(connection: socket.socket) -> None:
    """Half-close, then wait for the client to close, so it reads EOF, not a reset."""
    connection.shutdown(socket.SHUT_WR)
    connection.settimeout(2)
    try:
        while connection.recv(65_536):
            pass
    except (TimeoutError, ConnectionResetError):
        pass


def _text_head(length: int) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {length}"
    return head.encode() + b"\r\n\r\n"


def replay(raw: bytes) -> Responder:
    """Send ``raw`` exactly, then close the connection."""

    def respond(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(raw)

    return respond


def silent() -> Responder:
    """Read the request and send nothing until the server stops."""

    def respond(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        stop.wait()

    return respond


def trickle(length: int, interval: float) -> Responder:
    """Declare ``length`` body bytes and send them one at a time, ``interval`` apart."""

    def respond(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(_text_head(length))
        for _ in range(length):
            if stop.wait(interval):
                return
            conn.sendall(b"x")

    return respond


def oversized(length: int) -> Responder:
    """Send a ``length``-byte body of ``x`` in 64 KiB writes."""

    def respond(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(_text_head(length))
        sent = 0
        while sent < length and not stop.is_set():
            block = b"x" * min(65_536, length - sent)
            conn.sendall(block)
            sent += len(block)

    return respond


def redirect(location: str, status: str = "302 Found") -> Responder:
    """Respond with a redirect to ``location`` and an empty body."""
    head = f"HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
    return replay(head.encode())


def response_bytes(
    body: bytes,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """Return a 200 response with ``body``, its Content-Length and extra headers."""
    lines = ["HTTP/1.1 200 OK", f"Content-Type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def slow_head(interval: float, hung_up: threading.Event, count: int = 120) -> Responder:
    """Send a status line, then header bytes one at a time, ``interval`` apart.

    h11 accepts up to 64 KiB of header bytes, so only a total timeout stops a client
    from waiting for all of them. ``hung_up`` is set when the client closes the
    connection before ``count`` bytes were sent.
    """

    def respond(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(count):
            if stop.wait(interval):
                return
            if _peer_closed(conn):
                hung_up.set()
                return
            conn.sendall(b"x")

    return respond


def _peer_closed(conn: socket.socket) -> bool:
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True


def gzip_of_zeros(mebibytes: int) -> bytes:
    """Return a valid gzip stream of ``mebibytes`` MiB of zeros, about 1 KiB per MiB.

    Compressing a gigabyte takes seconds, so one MiB is compressed once and its
    deflate blocks are repeated: after a full flush the compressor starts afresh,
    so every repetition compresses to the same bytes.
    """
    block = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    piece = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(block, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # RFC 1952, no name
    final_block = b"\x03\x00"  # an empty block marked last
    trailer = struct.pack("<II", crc, (mebibytes << 20) & 0xFFFFFFFF)
    return header + piece * mebibytes + final_block + trailer
