"""Reading of one response within limits of time, size and nesting depth.

``Watchdog`` enforces the total timeout by shutting down the exchange's connection.
``read_raw`` collects the body as it was sent, so httpx never decodes a compressed body
beyond ``max_body_bytes`` in memory. ``decode_body`` undoes gzip and deflate within
the same limit and turns the bytes into masked text and parsed JSON.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import httpx

from veerunbook.health_formats import MAX_JSON_DEPTH, json_depth_exceeds

_INFLATE_WBITS = {
    "gzip": zlib.MAX_WBITS | 16,
    "x-gzip": zlib.MAX_WBITS | 16,
    "deflate": zlib.MAX_WBITS,
}
# A secret cut in two by max_body_bytes or the deadline is no longer recognised by
# masking, so this many characters before such a cut are dropped. NOTE: a longer
# secret, or one cut by a server that closed early, still leaves a prefix in the text.
_CUT_MARGIN_CHARS = 1024
_HEADER_CHARS = 100  # characters of a response header quoted in a message


@dataclass(frozen=True)
class Limits:
    """Effective limits of one exchange, in seconds and bytes."""

    connect: float
    read: float
    total: float
    max_body_bytes: int

    def timeout(self) -> httpx.Timeout:
        """Return the per-wait timeouts, using the read timeout for writes and pools."""
        return httpx.Timeout(self.read, connect=self.connect)


@dataclass
class Exchange:
    """The response and the raw body bytes received before the exchange ended."""

    response: httpx.Response | None = None
    raw: bytearray = field(default_factory=bytearray)
    too_large: bool = False
    deadline_passed: bool = False


@dataclass
class Body:
    """The decoded, masked body of a response and what kept it from being read."""

    text: str = ""
    json: Any = None
    too_large: bool = False
    json_too_deep: bool = False
    problem_kind: Literal["unsupported content encoding", "protocol"] | None = None
    problem: str | None = None


class Watchdog:
    """Shut down the connection of one exchange once its total timeout has passed.

    A blocked read or write fails at once when another thread shuts its socket down.
    Closing the socket instead would leave a blocked ``poll`` waiting on Linux. The
    watchdog keeps a duplicate of the socket's file descriptor, which stays usable
    while ``ssl`` wraps the original for the TLS handshake, and closes it on exit.
    The socket comes from httpcore's ``trace`` request extension when the request
    opens a connection, else from the response's ``network_stream`` extension.
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._stopped = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.name = "veerunbook-probe-watchdog"
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        self._timer.join()
        for sock in self._sockets:
            sock.close()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """Watch the connection that httpcore opens for the request."""
        if event == "connection.connect_tcp.complete":
            self.watch(info.get("return_value"))

    def watch(self, stream: object) -> None:
        """Watch the socket of an httpcore network stream, unless one is watched."""
        get_extra_info = getattr(stream, "get_extra_info", None)
        sock = get_extra_info("socket") if callable(get_extra_info) else None
        if not isinstance(sock, socket.socket) or self._sockets:
            return
        try:
            # fromfd duplicates the descriptor and returns a plain socket, also for
            # an ssl.SSLSocket, whose own shutdown would drop its SSL object while
            # the reading thread may still use it.
            duplicate = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except OSError:
            return  # the connection is closed already
        with self._lock:
            self._sockets.append(duplicate)
            fired = self.fired
        if fired:
            _shut_down(duplicate)

    def stop(self) -> bool:
        """Stop watching and return whether the timeout passed before this call.

        A true result means that the socket was shut down. A body without
        Content-Length or chunked framing then ends as if the server had closed the
        connection, with no exception, so it may be cut. A body that the server
        finished just before the timeout also counts as cut.
        """
        with self._lock:
            self._stopped = True
            return self.fired

    def _fire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    # OSError: the peer has reset the connection already.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def read_raw(
    response: httpx.Response, exchange: Exchange, limit: int, deadline: float
) -> None:
    """Append the undecoded body to ``exchange.raw``, stopping at ``limit`` bytes.

    The deadline is checked between chunks, for transports that the watchdog cannot
    reach.
    """
    for chunk in response.iter_raw():
        room = limit - len(exchange.raw)
        exchange.raw.extend(chunk[:room])
        if len(chunk) > room:
            exchange.too_large = True
            return
        if time.monotonic() > deadline:
            exchange.deadline_passed = True
            return


def decode_body(exchange: Exchange, limit: int, mask: Callable[[str], str]) -> Body:
    """Undo the content encoding, decode the text, mask it, then parse any JSON."""
    body = Body()
    response = exchange.response
    if response is None:
        return body
    data = _undo_content_encoding(
        bytes(exchange.raw), response.headers.get("content-encoding"), limit, body
    )
    if data is None:
        return body

    text = mask(data.decode(_codec(response.charset_encoding), "replace"))
    if exchange.too_large or body.too_large or exchange.deadline_passed:
        text = text[: max(0, len(text) - _CUT_MARGIN_CHARS)]
    body.text = text
    if _looks_like_json(response.headers.get("content-type"), text):
        _parse_json(text, body)
    return body


def _undo_content_encoding(
    data: bytes, header: str | None, limit: int, body: Body
) -> bytes | None:
    """Decode stacked codings last first; return None and set a problem if unable."""
    codings = [coding.strip().lower() for coding in (header or "").split(",")]
    codings = [coding for coding in codings if coding and coding != "identity"]
    quoted_header = (header or "")[:_HEADER_CHARS]
    if any(coding not in _INFLATE_WBITS for coding in codings):
        body.problem_kind = "unsupported content encoding"
        body.problem = (
            f"The body has Content-Encoding {quoted_header!r}, which the probe does "
            "not decode: only gzip and deflate are read."
        )
        return None
    for coding in reversed(codings):
        try:
            data, cut = _inflate(data, coding, limit)
        except zlib.error as exc:
            body.problem_kind = "protocol"
            body.problem = f"The {coding} body could not be decoded: {exc}."
            return None
        body.too_large = body.too_large or cut
    return data


def _inflate(data: bytes, coding: str, limit: int) -> tuple[bytes, bool]:
    """Decompress at most ``limit`` bytes; return them and whether more would follow."""
    try:
        return _inflate_with(data, _INFLATE_WBITS[coding], limit)
    except zlib.error:
        if coding != "deflate":
            raise
    # Some servers send raw deflate data without the zlib header, so httpx 0.29's
    # DeflateDecoder retries the same way.
    return _inflate_with(data, -zlib.MAX_WBITS, limit)


def _inflate_with(data: bytes, wbits: int, limit: int) -> tuple[bytes, bool]:
    decompressor = zlib.decompressobj(wbits)
    output = decompressor.decompress(data, limit + 1)
    return output[:limit], len(output) > limit


def _parse_json(text: str, body: Body) -> None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return
    if json_depth_exceeds(value, MAX_JSON_DEPTH):
        body.json_too_deep = True
    else:
        body.json = value


def _looks_like_json(content_type: str | None, text: str) -> bool:
    return "json" in (content_type or "") or text.lstrip().startswith("{")


def _codec(charset: str | None) -> str:
    """Return the codec for a response charset, UTF-8 when it is missing or unknown."""
    try:
        return codecs.lookup(charset or "utf-8").name
    except LookupError:
        return "utf-8"
