"""A streaming HTTP intermediary built on thor's public server and client.

``HttpProxy`` joins each server exchange (the downstream side: the client
talking to the proxy) to a client exchange (the upstream side: the proxy
talking to the origin) and streams both bodies with end-to-end
backpressure: when the downstream client stops reading, the proxy stops
reading from the origin; when the origin stops reading, the proxy stops
reading from the client. Memory stays flat whatever the body sizes.

Modes:

- forward (no upstreams): requests in absolute form
  (``GET http://host/path HTTP/1.1``), and ``CONNECT host:port`` tunnels to
  the ports in ``connect_ports`` (443 by default);
- reverse (one or more upstream URLs): requests go to the upstreams in turn
  (round-robin); an upstream that refuses connections is skipped for
  ``down_time`` seconds, and the request that found it down is sent to the
  next one. CONNECT is refused in reverse mode.

In both modes, a request with ``Upgrade`` that the origin accepts with
``101 Switching Protocols`` becomes a two-way byte tunnel.

As RFC 9110 section 7.6 asks of an intermediary: hop-by-hop fields
(``Connection`` and the fields it names, ``Keep-Alive``,
``Proxy-Connection``, ``TE``, ``Trailer``, ``Transfer-Encoding``,
``Upgrade`` unless upgrading) are removed both ways before the hooks see
the message, and each message is framed again for its next hop (RFC 9112
6.3: a received Content-Length goes when Transfer-Encoding came with it);
a ``Via`` field is added both ways, ``Max-Forwards`` is honoured for
OPTIONS and TRACE, 1xx responses (other than 100, which the server sends
itself) and trailers are forwarded, and origin failures become 502
(refused, broken, bad response) or 504 (timeout) responses. No exception
escapes to the loop: a failing hook is reported to
``loop.exception_handler`` and answered with a 500 (or the connection is
cut if the response had started).

Hooks: subclass ``HttpProxy`` and override ``request_hook``,
``response_hook``, ``request_body_hook``, ``response_body_hook`` (see their
docstrings and doc/proxy.md).

Run ``python -m thor.http.proxy --help`` for the command line.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import subprocess
import sys
import time as _time
from functools import partial
from typing import (
    TYPE_CHECKING, Any, Callable, Collection, Dict, Iterable, List, Optional, Set, Tuple,
)
from urllib.parse import urlsplit

import thor.loop
from thor.events import EventEmitter
from thor.tcp import TcpClient
from thor.http import error
from thor.http.client import HttpClient
from thor.http.headers import CONNECTION_OPTIONS, HOP_BY_HOP, field_tokens, get_header
from thor.http.server import HttpServer


if TYPE_CHECKING:
    import argparse
    import ssl
    from types import FrameType
    from typing import IO

    from thor.http.client import HttpClientExchange
    from thor.http.server import HttpServerExchange
    from thor.loop import LoopBase, ScheduledEvent
    from thor.tcp import TcpConnection
    from thor.types import HeaderInput, RawHeaderListType, StatusInput, TextInput

__all__ = ["HttpProxy", "ProxyExchange", "splice", "main"]

# How much of a request body (bytes) the proxy keeps so that it can send the
# request to another upstream when the first one refused the connection; a
# request with a longer body is answered 502 instead.
_RETRY_BODY_LIMIT = 65536
# Request fields _request_start looks at: the hop-by-hop ones (not
# forwarded), Expect (answered by the server itself, which sends 100
# Continue when the body is wanted) and Max-Forwards (counted down).
_REQUEST_SPECIAL = HOP_BY_HOP | {b"expect", b"max-forwards", b"content-length"}
# Fields a TRACE answer leaves out (RFC 9110 9.3.8): credentials.
_TRACE_HIDDEN = frozenset((
    b"authorization", b"proxy-authorization", b"cookie", b"set-cookie",
))

# Transfer codings that leave the content as it is: "identity" (RFC 2616;
# gone from RFC 7230 on, but still sent by a few old origins).
_NULL_CODINGS = frozenset((b"identity",))
# Seconds a --workers supervisor waits before starting again a worker that
# died within this long of its start (a crash at start-up must not spin).
_RESPAWN_DELAY = 1.0


class ProxyExchange:
    """One request passing through the proxy; what the hooks see.

    Attributes the hooks may read and change before the request goes out:
    ``method``, ``uri`` (the absolute URL it is sent to; ``host:port`` for
    CONNECT), ``headers`` (list of (name, value) tuples, bytes).
    Read-only: ``proxy``, ``server_exchange`` (the downstream
    HttpServerExchange), ``client_exchange`` (the upstream
    HttpClientExchange, once the request has gone out), ``client_address``,
    ``status`` (int, once answered), ``started`` (time.monotonic() when the
    request arrived), ``upstream`` (index into ``proxy.upstreams`` in
    reverse mode, else None).
    ``data`` is a dict for the application's own per-request state.
    """

    __slots__ = (
        "proxy", "server_exchange", "client_exchange", "method", "uri", "headers",
        "status", "started", "_data", "upstream",
        "_response_started", "_kept", "_kept_size", "_bytes_out",
        "_req_done", "_trailers", "_finished", "_upgrade",
        "_down_paused",
    )

    proxy: HttpProxy
    server_exchange: HttpServerExchange
    client_exchange: Optional[HttpClientExchange]
    method: bytes
    uri: bytes
    headers: RawHeaderListType
    status: Optional[int]
    started: float
    _data: Optional[Dict[Any, Any]]
    upstream: Optional[int]
    _response_started: bool
    _kept: Optional[List[bytes]]
    _kept_size: int
    _bytes_out: int
    _req_done: bool
    _trailers: Optional[RawHeaderListType]
    _finished: bool
    _upgrade: bool
    _down_paused: bool

    def __init__(self, proxy: HttpProxy, server_exchange: HttpServerExchange) -> None:
        self.proxy = proxy
        self.server_exchange = server_exchange
        self.client_exchange = None
        self.method = server_exchange.method
        self.uri = server_exchange.uri
        self.headers = []
        self.status = None
        self.started = _time.monotonic()
        self._data = None
        self.upstream = None
        self._response_started = False
        self._kept = None
        self._kept_size = 0
        self._bytes_out = 0
        self._req_done = False
        self._trailers = None
        self._finished = False
        self._upgrade = False
        self._down_paused = False

    def __repr__(self) -> str:
        return "<ProxyExchange %s %s>" % (
            self.method.decode("latin-1"), self.uri.decode("latin-1")
        )

    @property
    def data(self) -> Dict[Any, Any]:
        """A dict for the application's own per-request state."""
        data = self._data
        if data is None:
            data = self._data = {}
        return data

    @property
    def client_address(self) -> Optional[str]:
        """The downstream client's address (a str), or None."""
        tcp = getattr(self.server_exchange.connection, "tcp", None)
        return getattr(tcp, "host", None)

    def respond(
        self, status: StatusInput, phrase: TextInput, headers: HeaderInput,
        body: bytes | str = b"",
    ) -> None:
        """Answer the request from the proxy itself (from ``request_hook``):
        the request is not forwarded. ``body`` is bytes (or str, as UTF-8)."""
        self._respond(status, phrase, headers, body)

    def _respond(
        self, status: StatusInput, phrase: TextInput, headers: HeaderInput,
        body: bytes | str,
    ) -> None:
        ex = self.server_exchange
        if self._response_started or ex.finished:
            self._done()
            return
        self._response_started = True
        if isinstance(body, str):
            body = body.encode("utf-8")
        fields: List[Tuple[TextInput, TextInput]] = [
            (n, v) for n, v in headers
            if (n.lower() if isinstance(n, bytes) else n.lower().encode("latin-1"))
            != b"content-length"
        ]
        fields.append((b"Content-Length", b"%d" % len(body)))
        try:
            ex.response_start(status, phrase, fields)
            self.status = int(status)
            if body:
                ex.response_body(body)
                self._bytes_out += len(body)
            ex.response_done([])
        except Exception as exc:
            self.proxy._report(exc)
            ex.abort()
        self._done()

    def _done(self) -> None:
        if not self._finished:
            self._finished = True
            self.proxy._log(self)


class _Downstream:
    """The server exchange's sink: its events, passed to the proxy. (A
    sink, not listeners: one call per exchange instead of five.)"""

    __slots__ = ("pex",)

    def __init__(self, pex: ProxyExchange) -> None:
        self.pex = pex

    def request_start(self, method: bytes, uri: bytes, headers: RawHeaderListType) -> None:
        pex = self.pex
        pex.proxy._request_start(pex, headers)

    def request_body(self, chunk: bytes) -> None:
        pex = self.pex
        pex.proxy._request_body(pex, chunk)

    def request_done(self, trailers: RawHeaderListType) -> None:
        pex = self.pex
        pex.proxy._request_done(pex, trailers)

    def pause(self, paused: bool) -> None:
        # The downstream client is slow (or fast again): stop (or resume)
        # reading the origin's response.
        pex = self.pex
        pex._down_paused = paused
        cex = pex.client_exchange
        if cex is not None:
            cex.pause(paused)

    def error(self, err: error.HttpError) -> None:
        # The downstream exchange failed (the client went away, or a server
        # timeout gave up on it): the upstream exchange is of no use any
        # more, and aborting it frees its connection for the next request.
        pex = self.pex
        cex = pex.client_exchange
        if cex is not None:
            cex.abort()
        if pex.status is None:
            pex.status = 499  # nginx's "client closed request", for the log
        pex._done()


class _Upstream:
    """The client exchange's sink: its events, passed to the proxy."""

    __slots__ = ("pex", "cex")

    def __init__(self, pex: ProxyExchange, cex: HttpClientExchange) -> None:
        self.pex = pex
        self.cex = cex

    def response_nonfinal(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        pex = self.pex
        if status != b"100":
            try:
                pex.server_exchange.response_nonfinal(status, phrase, headers)
            except Exception as exc:
                pex.proxy._report(exc)

    def response_start(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        pex = self.pex
        pex.proxy._response_start(pex, self.cex, status, phrase, headers)

    def response_body(self, chunk: bytes) -> None:
        pex = self.pex
        pex.proxy._response_body(pex, chunk)

    def response_done(self, trailers: RawHeaderListType) -> None:
        pex = self.pex
        pex.proxy._response_done(pex, self.cex, trailers)

    def pause(self, paused: bool) -> None:
        # The origin is slow to take the request body: stop (or resume)
        # reading it from the downstream client.
        self.pex.server_exchange.pause(paused)

    def error(self, err: error.HttpError) -> None:
        pex = self.pex
        if pex.client_exchange is self.cex:  # not one given up for a retry
            pex.proxy._upstream_error(pex, err)


class HttpProxy(EventEmitter):
    """An HTTP proxy listening on ``host``:``port`` (port 0 picks a free one;
    ``port`` is then the one chosen).

    Emits: start(), stop() (as its server does), exchange(ProxyExchange)
    (a request arrived, before the hooks run).

    Keyword arguments: ``upstreams``: origin URLs for reverse mode (None for
    a forward proxy). ``connect_ports``: ports CONNECT may reach (forward
    mode; default 443 only). ``access_log``: a file object receiving one
    common-log-format line per exchange, or None. ``client``: the
    HttpClient to use upstream (one is made, with this class's
    ``connect_timeout``, ``read_timeout``, ``queue_timeout``,
    ``send_timeout`` and ``max_server_conn``, when omitted). ``reuse_port``:
    listen with SO_REUSEPORT. ``tls_context``: serve TLS downstream.
    ``sock``: a listening socket to serve on (made elsewhere, e.g. by a
    supervisor process) instead of binding ``host``:``port``.

    Settings (class variables; set them on a subclass, or on an instance
    before requests arrive for ``via``, ``down_time`` and
    ``connect_ports``): ``via`` (the Via pseudonym, "thor"), ``down_time``
    (seconds an upstream that refused a connection is skipped),
    ``connect_ports``, ``max_server_conn`` (connections per origin), and
    the time bounds, in seconds (None disables one), copied to the server
    and client when the proxy is made: ``connect_timeout``,
    ``read_timeout``, ``queue_timeout`` (waiting for a free upstream
    connection), ``send_timeout`` (a peer reads nothing of what the proxy
    sends: the downstream client its response, the origin its request
    body), ``body_timeout`` (a request body makes no progress),
    ``shutdown_timeout`` (graceful_shutdown's drain deadline),
    ``tunnel_timeout`` (a CONNECT or upgrade tunnel in which neither side
    sends anything for this long is closed).
    """

    connect_ports: Collection[int] = (443,)
    via: str | bytes = "thor"
    down_time = 10.0
    connect_timeout: Optional[float] = 10
    read_timeout: Optional[float] = 60
    queue_timeout: Optional[float] = 60
    send_timeout: Optional[float] = 60
    body_timeout: Optional[float] = 60
    shutdown_timeout: Optional[float] = 30
    # haproxy's "timeout tunnel" is commonly an hour, nginx's proxy_read_timeout
    # (which bounds an idle WebSocket) a minute; most WebSocket
    # applications ping well within five.
    tunnel_timeout: Optional[float] = 300
    max_server_conn = 100

    def __init__(
        self, host: str = "127.0.0.1", port: int = 8080, loop: Optional[LoopBase] = None, *,
        upstreams: Optional[Iterable[str | bytes]] = None,
        connect_ports: Optional[Iterable[int]] = None,
        access_log: Optional[IO[str]] = None, client: Optional[HttpClient] = None,
        reuse_port: bool = False, tls_context: Optional[ssl.SSLContext] = None,
        sock: Optional[socket.socket] = None,
    ) -> None:
        EventEmitter.__init__(self)
        self.loop: LoopBase = loop or thor.loop.default_loop()
        self.upstreams = [_upstream(u) for u in (upstreams or ())]
        self._next_upstream = 0
        self._down_until = [0.0] * len(self.upstreams)
        if connect_ports is not None:
            self.connect_ports = frozenset(int(p) for p in connect_ports)
        self.access_log = access_log
        self._log_second: Optional[int] = None
        self._log_stamp = ""
        if client is None:
            client = HttpClient(self.loop)
            client.connect_timeout = self.connect_timeout
            client.read_timeout = self.read_timeout
            client.queue_timeout = self.queue_timeout
            client.send_timeout = self.send_timeout
            client.max_server_conn = self.max_server_conn
            # A kept-alive upstream connection that the origin closed is
            # retried at once (for idempotent requests), not after a delay.
            client.retry_delay = 0
        self.client = client
        if sock is not None:
            self.server: HttpServer = _ServerOnSocket(sock, self.loop, tls_context)
        else:
            self.server = HttpServer(
                host, port, self.loop, reuse_port=reuse_port, tls_context=tls_context
            )
        server = self.server
        server.body_timeout = self.body_timeout
        server.send_timeout = self.send_timeout
        server.shutdown_timeout = self.shutdown_timeout
        self.host = server.host
        self.port = server.port
        server.on("start", self._on_start)
        server.on("stop", self._on_stop)
        server.on("exchange", self._on_exchange)
        cls = type(self)
        self._rewrites_request = cls.request_body_hook is not HttpProxy.request_body_hook
        self._rewrites_response = cls.response_body_hook is not HttpProxy.response_body_hook
        self._via: Dict[bytes, bytes] = {}
        self._draining = False
        self._deadline: Optional[ScheduledEvent] = None
        # Both ends of every CONNECT / 101 tunnel: the server forgets a
        # connection it hands over, so the proxy closes them itself.
        self._tunnels: Set[TcpConnection] = set()

    def _on_start(self) -> None:
        self.emit("start")

    def _on_stop(self) -> None:
        if self._deadline is not None:
            self._deadline.delete()
            self._deadline = None
        self.emit("stop")

    def close(self) -> None:
        """Stop at once: stop listening, cut every downstream connection and
        tunnel, close idle upstream ones (the others are aborted as their
        downstream exchanges fail)."""
        if self._deadline is not None:
            self._deadline.delete()
            self._deadline = None
        self.server.close()
        for tcp in list(self._tunnels):
            tcp.close()
        self.client.close()

    shutdown = close

    def graceful_shutdown(self) -> None:
        """Stop accepting; exchanges in flight finish; then 'stop'. After
        ``shutdown_timeout`` seconds what is left is cut (as by
        ``close()``). Calling it again does nothing."""
        if not self._draining:
            self._draining = True
            self.server.graceful_shutdown()
            timeout = self.shutdown_timeout
            if timeout is not None:
                self._deadline = self.loop.schedule(timeout, self._shutdown_expired)

    def _shutdown_expired(self) -> None:
        self._deadline = None
        self.close()

    # -- hooks -----------------------------------------------------------------

    def request_hook(self, pex: ProxyExchange) -> None:
        """Called with each ProxyExchange before its request goes out. Change
        ``pex.method``, ``pex.uri``, ``pex.headers``, or call ``pex.respond()``
        to answer it here. For CONNECT, ``pex.uri`` is ``host:port`` (checked
        against ``connect_ports`` after the hook). The default does nothing."""

    def response_hook(
        self, pex: ProxyExchange, status: bytes, phrase: bytes, headers: RawHeaderListType
    ) -> Tuple[Any, Any, Any]:
        """Called with the origin's response head (status and phrase bytes,
        headers a list of (name, value) tuples); return the
        ``(status, phrase, headers)`` to send on. The default passes it on."""
        return status, phrase, headers

    def request_body_hook(self, pex: ProxyExchange, chunk: Optional[bytes]) -> bytes:
        """Return the bytes to forward for a chunk of the request body (b""
        to hold it back); called with ``chunk=None`` at the end of the body,
        when anything returned is sent last. Overriding this makes the
        proxy drop the request's Content-Length (the body is re-framed)."""
        return chunk or b""

    def response_body_hook(self, pex: ProxyExchange, chunk: Optional[bytes]) -> bytes:
        """As request_body_hook, for the response body (Content-Length is
        dropped from the response head when this is overridden)."""
        return chunk or b""

    # -- plumbing: the request -------------------------------------------------

    def _on_exchange(self, server_exchange: HttpServerExchange) -> None:
        server_exchange.sink(_Downstream(ProxyExchange(self, server_exchange)))

    def _request_start(self, pex: ProxyExchange, headers: RawHeaderListType) -> None:
        self.emit("exchange", pex)
        method = pex.method
        if method == b"CONNECT":
            pex.headers = list(headers)
            self._connect_tunnel(pex)
            return
        uri = pex.uri
        if self.upstreams:
            if uri[:1] != b"/":
                if uri == b"*" and method == b"OPTIONS":
                    uri = b""
                else:
                    # An absolute-form target is acceptable; forward its path.
                    try:
                        parts = urlsplit(uri.decode("ascii"))
                    except (ValueError, UnicodeError):
                        pex.respond(400, "Bad Request", [], "Bad request target\n")
                        return
                    if method == b"OPTIONS" and not parts.path and not parts.query:
                        # RFC 9112 3.2.4: an empty path asks about the
                        # server as a whole (OPTIONS *).
                        uri = b""
                    else:
                        uri = (parts.path or "/").encode("ascii") + (
                            b"?" + parts.query.encode("ascii") if parts.query else b""
                        )
            index = self._pick_upstream()
            pex.upstream = index
            pex.uri = self.upstreams[index] + uri
        elif not (uri[:7].lower() == b"http://" or uri[:8].lower() == b"https://"):
            pex.respond(400, "Bad Request", [(b"Content-Type", b"text/plain")],
                        "This is a forward proxy: requests need an absolute URL.\n")
            return
        ex = pex.server_exchange
        connection = False
        upgrades: Optional[RawHeaderListType] = None
        max_forwards = None
        length: Optional[bytes] = None
        kept = []
        for field in headers:
            lower = field[0].lower()
            if lower in _REQUEST_SPECIAL:
                if lower == b"connection":
                    connection = True
                    kept.append(field)  # for strip_hop_by_hop, below
                elif lower == b"upgrade":
                    if upgrades is None:
                        upgrades = []
                    upgrades.append(field)
                elif lower == b"content-length":
                    # "3, 3", or the field repeated: the parser made sure the
                    # values agree (RFC 9110 8.6); the next hop gets one.
                    if length is None:
                        length = field[1].split(b",", 1)[0].strip()
                        kept.append((field[0], length) if b"," in field[1] else field)
                elif lower == b"max-forwards":
                    if method == b"OPTIONS" or method == b"TRACE":
                        if max_forwards is None:
                            max_forwards = field[1].strip()
                    else:
                        kept.append(field)  # end-to-end for other methods
                # Other hop-by-hop fields, and Expect, are not forwarded.
                continue
            kept.append(field)
        if connection:
            # Connection is a list of tokens (RFC 9110 7.6.1): "upgrade" must
            # be one of them, not part of one ("x-noupgrade").
            tokens = _connection_tokens(headers)
            # RFC 9110 7.8: an HTTP/1.0 request's Upgrade is ignored.
            if upgrades is not None and b"upgrade" in tokens and ex.req_version == b"1.1":
                pex._upgrade = True
            # Connection itself, and the fields it names, stay on this hop.
            kept = _strip_named(kept, tokens)
        if pex._upgrade and upgrades is not None:
            kept.extend(upgrades)  # the client adds Connection: upgrade
        if max_forwards is not None:
            # RFC 9110 7.6.2: the last hop answers; the others count down.
            if not max_forwards.isdigit():
                pex.respond(400, "Bad Request", [], "Bad Max-Forwards\n")
                return
            left = int(max_forwards)
            if left == 0:
                if method == b"TRACE":
                    # RFC 9110 9.3.8: not the fields that carry credentials.
                    echo = b"%s %s HTTP/%s\r\n" % (method, ex.uri, ex.req_version) + b"".join(
                        name + b": " + value.strip() + b"\r\n" for name, value in headers
                        if name.lower() not in _TRACE_HIDDEN
                    )
                    pex.respond(200, "OK", [(b"Content-Type", b"message/http")], echo)
                else:
                    pex.respond(200, "OK", [(b"Allow", b"GET, HEAD, POST, PUT, DELETE, "
                                             b"OPTIONS, TRACE, PATCH, CONNECT")])
                return
            kept.append((b"Max-Forwards", b"%d" % (left - 1)))
        kept.append((b"Via", self._via_value(ex.req_version)))
        pex.headers = kept
        try:
            self.request_hook(pex)
        except Exception as exc:
            self._hook_failed(pex, exc)
            return
        if pex._finished:  # answered by the hook
            return
        self._forward(pex)

    def _via_value(self, version: bytes) -> bytes:
        via = self._via.get(version)
        if via is None:
            name = self.via
            if isinstance(name, str):
                name = name.encode("latin-1")
            # RFC 9110 7.6.3: the received protocol, then our pseudonym.
            via = self._via[version] = b"%s %s" % (version, name)
        return via

    def _forward(self, pex: ProxyExchange) -> None:
        cex = self.client.exchange()
        pex.client_exchange = cex
        headers = pex.headers
        if self._rewrites_request:
            headers = [(n, v) for n, v in headers if n.lower() != b"content-length"]
        cex.sink(_Upstream(pex, cex))
        try:
            cex.request_start(pex.method, pex.uri, headers)
            if pex._kept:
                for chunk in pex._kept:
                    cex.request_body(chunk)
            if pex._req_done:
                self._finish_request(pex, cex)
        except (ValueError, TypeError) as exc:
            # A hook put something unsendable in the request.
            cex.abort()
            pex._respond(400, "Bad Request", [], "Bad request: %s\n" % exc)

    def _request_body(self, pex: ProxyExchange, chunk: bytes) -> None:
        if pex._finished:
            return  # answered already: the rest of the body is dropped
        if self._rewrites_request:
            try:
                chunk = self.request_body_hook(pex, chunk)
            except Exception as exc:
                self._hook_failed(pex, exc)
                return
            if not chunk:
                return
        if pex.upstream is not None and pex._kept_size <= _RETRY_BODY_LIMIT:
            # Kept so the request can go to another upstream if this one
            # turns out to be down.
            if pex._kept is None:
                pex._kept = []
            pex._kept.append(chunk)
            pex._kept_size += len(chunk)
        cex = pex.client_exchange
        if cex is not None:
            try:
                cex.request_body(chunk)
            except (ValueError, TypeError) as exc:
                self._hook_failed(pex, exc)

    def _request_done(self, pex: ProxyExchange, trailers: RawHeaderListType) -> None:
        pex._req_done = True
        pex._trailers = trailers
        cex = pex.client_exchange
        if cex is None or pex._finished:
            return
        try:
            self._finish_request(pex, cex)
        except (ValueError, TypeError) as exc:
            self._hook_failed(pex, exc)

    def _finish_request(self, pex: ProxyExchange, cex: HttpClientExchange) -> None:
        if self._rewrites_request:
            try:
                tail = self.request_body_hook(pex, None)
            except Exception as exc:
                self._hook_failed(pex, exc)
                return
            if tail:
                cex.request_body(tail)
        cex.request_done(pex._trailers or [])

    # -- plumbing: the response ------------------------------------------------

    def _response_start(
        self, pex: ProxyExchange, cex: HttpClientExchange, status: bytes, phrase: bytes,
        headers: RawHeaderListType,
    ) -> None:
        if status == b"101" and not pex._upgrade:
            cex.abort()
            self._upstream_error(pex, error.StartLineError("101 response to a request without Upgrade"))
            return
        drop_length = self._rewrites_response
        fields = []
        hop = False
        for field in headers:
            lower = field[0].lower()
            if lower in HOP_BY_HOP:
                hop = True
            elif lower == b"content-length":
                if not drop_length:
                    fields.append(field)
                    if b"," in field[1]:
                        hop = True  # "5, 5": one value, in _framing_fields
            else:
                fields.append(field)
        if hop:
            fields, undecoded = self._framing_fields(cex, status, headers, fields)
            if undecoded:
                # RFC 9112 6.1 lets a recipient decode a transfer coding, or
                # pass it on named in Transfer-Encoding; but a sender may
                # apply no coding but chunked unless the recipient asked
                # for it with TE (RFC 9110 10.1.4). The proxy sends no TE
                # upstream (and the downstream client's TE, hop-by-hop,
                # was about the proxy), the origin's coding was not asked
                # for, and thor decodes none but chunked: passing it on
                # would give the client bytes it never asked for, and
                # dropping its name would give it a corrupt body. Such a
                # response is invalid for the proxy to use: 502 (RFC 9110
                # 15.6.3).
                cex.abort()
                self._upstream_error(pex, error.TransferCodeError(
                    "the origin applied the transfer coding %s, which the proxy "
                    "cannot decode" % b", ".join(undecoded).decode("latin-1")
                ))
                return
        # RFC 9110 7.6.3: the version the proxy received the response in.
        fields.append((b"Via", self._via_value(cex.res_version or b"1.1")))
        try:
            status, phrase, fields = self.response_hook(pex, status, phrase, fields)
        except Exception as exc:
            self._hook_failed(pex, exc)
            return
        if pex._finished:
            return
        pex._response_started = True
        ex = pex.server_exchange
        if not pex._down_paused:
            # The downstream connection may still be busy sending an earlier
            # response; its pause(False) then comes to this exchange.
            tcp = getattr(ex.connection, "tcp", None)
            if tcp is not None and tcp.write_buffered > tcp.write_high:
                pex._down_paused = True
        if pex._down_paused:
            # Applied here, once the upstream connection exists: a pause
            # given to a client exchange before it has a connection is lost.
            cex.pause(True)
        try:
            pex.status = int(status)
            ex.response_start(status, phrase, fields)
        except Exception as exc:
            # What the hook returned (or, rarely, the origin sent) cannot be
            # sent on.
            pex._response_started = False
            self._hook_failed(pex, exc)

    def _framing_fields(
        self, cex: HttpClientExchange, status: bytes, headers: RawHeaderListType,
        fields: RawHeaderListType,
    ) -> Tuple[RawHeaderListType, List[bytes]]:
        """The response fields to pass on when the origin's head has
        hop-by-hop or listed Content-Length fields; and the transfer
        codings still applied to the body that thor did not decode.

        The server frames the response again for its client, from the
        fields it is given: so a Content-Length goes when the origin sent
        Transfer-Encoding too (RFC 9112 6.3 item 3: the body was framed by
        the coding, the length may be anything), and one that lists a
        value ("5, 5", accepted by the parser when all agree) becomes one
        value."""
        codings = [
            coding.partition(b";")[0].strip().lower()
            for coding in get_header(headers, b"transfer-encoding")
        ]
        if codings:
            fields = [f for f in fields if f[0].lower() != b"content-length"]
            if cex.res_version == b"1.1" and codings[-1] == b"chunked":
                # The parser decoded it (RFC 9112 6.3 item 4). In HTTP/1.0,
                # it did not: such a body runs to the close as it is.
                codings.pop()
            if (
                status[:1] == b"1" or status == b"204" or status == b"304"
                or cex.method == b"HEAD"
            ):
                codings = []  # no body, nothing coded
            else:
                codings = [c for c in codings if c not in _NULL_CODINGS]
        else:
            lengths = get_header(headers, b"content-length")
            if len(lengths) > 1:
                # Listed or repeated: the parser made sure they all agree.
                kept = [f for f in fields if f[0].lower() != b"content-length"]
                if len(kept) != len(fields):  # not dropped for a body hook
                    kept.append((b"Content-Length", lengths[0]))
                fields = kept
        tokens = _connection_tokens(headers)
        if status == b"101":
            # The server needs the Upgrade field of a 101 (RFC 9110 15.2.2).
            tokens.discard(b"upgrade")
            fields.extend(f for f in headers if f[0].lower() == b"upgrade")
        return _strip_named(fields, tokens), codings

    def _response_body(self, pex: ProxyExchange, chunk: bytes) -> None:
        if pex._finished:
            return
        if self._rewrites_response:
            try:
                chunk = self.response_body_hook(pex, chunk)
            except Exception as exc:
                self._hook_failed(pex, exc)
                return
            if not chunk:
                return
        pex._bytes_out += len(chunk)
        try:
            pex.server_exchange.response_body(chunk)
        except Exception as exc:
            self._hook_failed(pex, exc)

    def _response_done(
        self, pex: ProxyExchange, cex: HttpClientExchange, trailers: RawHeaderListType
    ) -> None:
        if pex._finished:
            return
        ex = pex.server_exchange
        if pex.status == 101:
            try:
                ex.response_done([])
                downstream, down_buffered = ex.tunnel()
                upstream, up_buffered = cex.tunnel()
            except error.HttpError as exc:
                self._report(exc)
                ex.abort()
                cex.abort()
            else:
                self._splice(downstream, upstream, down_buffered, up_buffered)
            pex._done()
            return
        try:
            if self._rewrites_response:
                try:
                    tail = self.response_body_hook(pex, None)
                except Exception as exc:
                    self._hook_failed(pex, exc)
                    return
                if tail:
                    pex._bytes_out += len(tail)
                    ex.response_body(tail)
            ex.response_done(trailers)
        except Exception as exc:
            self._report(exc)
            ex.abort()
        pex._done()

    def _upstream_error(self, pex: ProxyExchange, err: error.HttpError) -> None:
        if pex._finished:
            return
        index = pex.upstream
        if index is not None and _refused(err):
            self._down_until[index] = self.loop._clock() + self.down_time
            if not pex._response_started and pex._kept_size <= _RETRY_BODY_LIMIT:
                retry = self._pick_upstream(avoid=index)
                if retry >= 0:
                    path = pex.uri[len(self.upstreams[index]):]
                    pex.upstream = retry
                    pex.uri = self.upstreams[retry] + path
                    # The failed exchange may have paused the downstream
                    # request body; the new one pauses it again if need be.
                    pex.server_exchange.pause(False)
                    self._forward(pex)
                    return
        ex = pex.server_exchange
        if pex._response_started:
            ex.abort()  # too late for a clean answer: cut the response short
            pex._done()
            return
        status: int
        if isinstance(err, (error.ReadTimeoutError, error.ConnectTimeoutError,
                            error.SendTimeoutError)):
            status, phrase = 504, "Gateway Timeout"
        elif isinstance(err, error.AccessError):
            status, phrase = 403, "Forbidden"  # the client's check_ip refused it
        else:
            status, phrase = 502, "Bad Gateway"
        pex._respond(status, phrase, [(b"Content-Type", b"text/plain")],
                     "%s %s: %s\n" % (status, phrase, err))

    def _hook_failed(self, pex: ProxyExchange, exc: Exception) -> None:
        self._report(exc)
        if pex.client_exchange is not None:
            pex.client_exchange.abort()
        if pex._response_started:
            pex.server_exchange.abort()
            pex._done()
        else:
            pex._respond(500, "Internal Server Error", [], "")

    def _report(self, exc: BaseException) -> None:
        self.loop.exception_handler(self.loop, exc, self)

    def _pick_upstream(self, avoid: Optional[int] = None) -> int:
        """The next upstream that is not marked down (round-robin). With
        ``avoid``, -1 when there is no other; without, when every upstream
        is marked down the next one is tried anyway."""
        count = len(self.upstreams)
        down = self._down_until
        now = self.loop._clock()
        for _ in range(count):
            index = self._next_upstream
            self._next_upstream = (index + 1) % count
            if index != avoid and down[index] <= now:
                return index
        if avoid is not None:
            return -1
        index = self._next_upstream
        self._next_upstream = (index + 1) % count
        return index

    # -- CONNECT and tunnels ---------------------------------------------------------

    def _connect_tunnel(self, pex: ProxyExchange) -> None:
        if self.upstreams:
            pex.respond(405, "Method Not Allowed", [(b"Content-Type", b"text/plain")],
                        "CONNECT is not allowed on a reverse proxy.\n")
            return
        try:
            self.request_hook(pex)
        except Exception as exc:
            self._hook_failed(pex, exc)
            return
        if pex._finished:  # answered by the hook
            return
        host, sep, port = pex.uri.rpartition(b":")
        host = host.strip(b"[]")
        if not sep or not port.isdigit() or not host or int(port) not in self.connect_ports:
            pex.respond(403, "Forbidden", [(b"Content-Type", b"text/plain")],
                        "CONNECT to that port is not allowed.\n")
            return
        tcp_client = TcpClient(self.loop)
        # The same address policy as for requests (HttpClient.check_ip):
        # a tunnel must not reach what a request may not.
        tcp_client.check_ip = getattr(self.client, "check_ip", None)

        def connected(upstream: TcpConnection) -> None:
            ex = pex.server_exchange
            if ex.finished:
                upstream.close()
                return
            pex._response_started = True
            pex.status = 200
            try:
                ex.response_start(200, "Connection Established", [])
                ex.response_done([])
                downstream, buffered = ex.tunnel()
            except error.HttpError as exc:
                self._report(exc)
                upstream.close()
                ex.abort()
            else:
                self._splice(downstream, upstream, buffered, b"")
            pex._done()

        def failed(errtype: type, err: Any) -> None:
            if errtype is PermissionError:
                pex._respond(403, "Forbidden", [], "That address is not allowed.\n")
            elif err == errno.ETIMEDOUT:
                pex._respond(504, "Gateway Timeout", [], "Connect timed out\n")
            else:
                pex._respond(502, "Bad Gateway", [], "Could not connect: %s\n" % (err,))

        tcp_client.on("connect", connected)
        tcp_client.on("connect_error", failed)
        tcp_client.connect(host.decode("latin-1"), int(port), self.connect_timeout)

    def _splice(
        self, a: TcpConnection, b: TcpConnection, a_buffered: bytes, b_buffered: bytes
    ) -> None:
        tunnels = self._tunnels
        for tcp in (a, b):
            tunnels.add(tcp)
            tcp.on("close", partial(tunnels.discard, tcp))
        splice(a, b, a_buffered, b_buffered)
        if self.tunnel_timeout is not None:
            _TunnelWatch(a, b, self.loop, self.tunnel_timeout)

    # -- logging -------------------------------------------------------------------

    def _log(self, pex: ProxyExchange) -> None:
        log = self.access_log
        if log is None:
            return
        now = _time.time()
        second = int(now)
        if second != self._log_second:
            self._log_second = second
            self._log_stamp = _time.strftime("%d/%b/%Y:%H:%M:%S +0000", _time.gmtime(second))
        ex = pex.server_exchange
        line = b"%s %s HTTP/%s" % (ex.method, ex.uri, ex.req_version)
        address = pex.client_address or "-"
        try:
            log.write('%s - - [%s] "%s" %s %s\n' % (
                address, self._log_stamp,
                line.decode("latin-1").replace("\\", "\\\\").replace('"', '\\"'),
                pex.status or "-", pex._bytes_out or "-",
            ))
            log.flush()
        except (OSError, ValueError) as exc:
            self._log_failed(exc)

    def _log_failed(self, exc: Exception) -> None:
        """The access log cannot be written (a closed pipe, a full disk):
        logging stops, with one line on stderr; requests go on being
        served. (A traceback per request would only bury the cause.)"""
        self.access_log = None
        try:
            sys.stderr.write("thor proxy: access log failed (%s); logging stopped\n" % (exc,))
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def splice(
    a: TcpConnection, b: TcpConnection, a_buffered: bytes = b"", b_buffered: bytes = b""
) -> None:
    """Join two TCP connections into a two-way byte tunnel with backpressure.

    ``a_buffered`` is already-received data from ``a`` (written to ``b``
    first), and the same for ``b_buffered``. When one side cannot take more
    (its write buffer is above its high-water mark), reading from the other
    stops until it drains. When one side closes, the other is closed once
    what it was sent has been written; so it is when one side ends its
    input (``end``, for a connection with ``half_close``), TcpConnection
    having no way to pass a half-close on.
    """
    if a_buffered:
        b.write(a_buffered)
    if b_buffered:
        a.write(b_buffered)
    a.on("data", b.write)
    b.on("data", a.write)
    a.on("pause", b.pause)
    b.on("pause", a.pause)
    a.on("close", b.close)
    b.on("close", a.close)
    a.on("end", partial(_ended, a, b))
    b.on("end", partial(_ended, b, a))
    a.pause(False)
    b.pause(False)


class _TunnelWatch:
    """Closes a tunnel in which neither side has sent anything for
    ``timeout`` seconds. A read costs one clock read; the timer is moved
    only when it fires."""

    __slots__ = ("a", "b", "loop", "clock", "timeout", "last", "timer")

    def __init__(self, a: TcpConnection, b: TcpConnection, loop: LoopBase, timeout: float) -> None:
        self.a, self.b, self.loop, self.timeout = a, b, loop, timeout
        # The loop's clock, bound once: the one its timer fires by.
        self.clock = loop._clock
        self.last = self.clock()
        self.timer: Optional[ScheduledEvent] = loop.schedule(timeout, self._check)
        for tcp in (a, b):
            tcp.on("data", self._touch)
            tcp.on("close", self._stop)

    def _touch(self, data: bytes) -> None:
        self.last = self.clock()

    def _stop(self) -> None:
        if self.timer is not None:
            self.timer.delete()
            self.timer = None

    def _check(self) -> None:
        self.timer = None
        idle = self.clock() - self.last
        if idle < self.timeout:
            self.timer = self.loop.schedule(self.timeout - idle, self._check)
            return
        self.a.close()
        self.b.close()


def _ended(ended: TcpConnection, other: TcpConnection) -> None:
    other.close()
    ended.close()


def _connection_tokens(headers: RawHeaderListType) -> Set[bytes]:
    """The options of every Connection field in ``headers``, lower-cased."""
    return field_tokens(value for name, value in headers if name.lower() == b"connection")


def _strip_named(fields: RawHeaderListType, tokens: Set[bytes]) -> RawHeaderListType:
    """``fields`` without Connection, and without the fields its ``tokens``
    name (RFC 9110 7.6.1), bar Content-Length: a sender cannot make a field
    that frames the message hop-by-hop (as in headers.strip_hop_by_hop)."""
    drop = tokens - CONNECTION_OPTIONS
    drop.discard(b"content-length")
    drop.add(b"connection")
    return [field for field in fields if field[0].lower() not in drop]


def _refused(err: error.HttpError) -> bool:
    """Did the upstream refuse (or fail to accept) the connection, as
    opposed to closing one that was working? Only then is the request
    certainly unseen by the origin, so it may be resent elsewhere, and the
    upstream is marked down. (Not a queue timeout: that upstream is busy,
    not down, the wait is spent, and the client's own limit may be the
    cause; nor a refusal of the client's check_ip.)

    HttpClient reports both as ConnectError; the second is its subclass
    ConnectionClosedError."""
    return isinstance(err, error.ConnectError) and not isinstance(
        err, (error.ConnectionClosedError, error.QueueTimeoutError, error.AccessError)
    )


def _upstream(url: str | bytes) -> bytes:
    if isinstance(url, str):
        url = url.encode("ascii")
    url = url.rstrip(b"/")
    if not (url[:7].lower() == b"http://" or url[:8].lower() == b"https://"):
        raise ValueError("upstream must be an http:// or https:// URL: %r" % url)
    try:
        parts = urlsplit(url.decode("ascii"))
        parts.port  # noqa: B018 -- validates the port
    except ValueError as exc:
        raise ValueError("bad upstream URL %r: %s" % (url, exc))
    if not parts.hostname:
        raise ValueError("upstream URL has no host: %r" % url)
    return url


# -- serving a socket made elsewhere ---------------------------------------------


class _ServerOnSocket(HttpServer):
    """An HttpServer on a listening socket that it did not make (a
    supervisor's, shared by its workers)."""

    def __init__(
        self, sock: socket.socket, loop: LoopBase, tls_context: Optional[ssl.SSLContext]
    ) -> None:
        host, port = sock.getsockname()[:2]
        HttpServer.__init__(self, host, port, loop, tls_context=tls_context, sock=sock)


def _listen_socket(host: str, port: int, backlog: int = 511) -> socket.socket:
    """A listening socket on ``host``:``port``, without SO_REUSEPORT: a
    second process asking for the same port gets EADDRINUSE."""
    failure: Optional[OSError] = None
    for family, kind, proto, _, address in socket.getaddrinfo(
        host or None, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    ):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog)
            return sock
        except OSError as exc:
            sock.close()
            failure = exc
    raise failure or OSError(errno.EADDRNOTAVAIL, "no address to listen on")


# -- the command line ------------------------------------------------------------


def _split_listen(value: str) -> Tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError("--listen takes HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


def _seconds(value: str) -> Optional[float]:
    """A command-line time bound: seconds, 0 for none."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        import argparse

        raise argparse.ArgumentTypeError("a number of seconds (0 for no limit): %r" % value)
    return seconds or None


class _ParentWatch(thor.loop.EventSource):
    """The read end of a pipe whose write end a --workers supervisor holds:
    it becomes readable (EOF) when the supervisor wants the worker to stop,
    or is gone, however it died; the worker then shuts down gracefully
    instead of running on orphaned."""

    def __init__(self, fd: int, loop: LoopBase, on_gone: Callable[[], None]) -> None:
        thor.loop.EventSource.__init__(self, loop)
        self.on("fd_readable", self._gone)
        self.on("fd_close", self._gone)
        self.on("fd_error", self._gone)
        self._on_gone = on_gone
        self.register_fd(fd, "fd_readable")

    def _gone(self) -> None:
        self.unregister_fd()
        self._on_gone()


def _say(message: str) -> None:
    try:
        sys.stderr.write("thor proxy: %s\n" % message)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _arguments(argv: Optional[List[str]]) -> Tuple[argparse.ArgumentParser, argparse.Namespace]:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m thor.http.proxy",
        description="A streaming HTTP proxy. With no --upstream it is a forward "
        "proxy (try: curl -x http://127.0.0.1:8080 http://example.com/); with "
        "--upstream it is a reverse proxy / load balancer. SIGTERM or SIGINT "
        "stops it gracefully (requests in flight finish, for at most "
        "--shutdown-timeout seconds); a second one stops it at once. With "
        "--workers, SIGHUP replaces the workers gracefully.",
    )
    parser.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                        help="where to listen (default 127.0.0.1:8080)")
    parser.add_argument("--upstream", action="append", default=[], metavar="URL",
                        help="origin URL for reverse mode (repeat for round-robin)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="run N worker processes on one listening socket, under "
                        "a supervisor that restarts a worker that dies, and all of "
                        "them gracefully on SIGHUP (default: one process, no "
                        "supervisor)")
    parser.add_argument("--access-log", action="store_true",
                        help="write one common-log-format line per exchange to stdout")
    parser.add_argument("--connect-port", action="append", type=int, default=None,
                        metavar="PORT", help="a port CONNECT may reach (repeatable; "
                        "default 443)")
    for name, default, text in (
        ("connect", HttpProxy.connect_timeout, "to connect to an origin"),
        ("read", HttpProxy.read_timeout, "an origin may leave its response without "
         "sending a byte"),
        ("queue", HttpProxy.queue_timeout, "a request may wait for a free upstream "
         "connection (see max_server_conn)"),
        ("send", HttpProxy.send_timeout, "a peer may read nothing of what the proxy "
         "sends (the client its response, the origin its request body)"),
        ("body", HttpProxy.body_timeout, "a request body may make no progress"),
        ("shutdown", HttpProxy.shutdown_timeout, "a graceful shutdown waits for the "
         "exchanges in flight before it cuts them"),
        ("tunnel", HttpProxy.tunnel_timeout, "a CONNECT or upgrade tunnel may carry "
         "nothing either way before it is closed"),
    ):
        parser.add_argument("--%s-timeout" % name, type=_seconds, default=default,
                            metavar="SECONDS",
                            help="seconds %s (default %s; 0: no limit)" % (text, default))
    parser.add_argument("--worker-of", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        _split_listen(args.listen)
        for url in args.upstream:
            _upstream(url)
    except ValueError as exc:
        parser.error(str(exc))
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    return parser, args


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m thor.http.proxy``: run a forward or reverse proxy."""
    if argv is None:
        argv = sys.argv[1:]
    _, args = _arguments(argv)
    host, port = _split_listen(args.listen)
    if args.workers is not None and args.worker_of is None:
        try:
            listening = _listen_socket(host, port)
        except OSError as exc:
            _say("cannot listen on %s: %s" % (args.listen, exc))
            return 1
        return _Supervisor(argv, args.workers, listening).run()

    loop = thor.loop.default_loop()
    worker = args.worker_of is not None
    settings = {
        "%s_timeout" % name: getattr(args, "%s_timeout" % name)
        for name in ("connect", "read", "queue", "send", "body", "shutdown", "tunnel")
    }
    proxy_class = type("CommandLineProxy", (HttpProxy,), settings)
    try:
        sock = socket.socket(fileno=args.listen_fd) if args.listen_fd is not None else None
        proxy = proxy_class(
            host, port, loop, upstreams=args.upstream or None,
            connect_ports=args.connect_port, sock=sock,
            access_log=sys.stdout if args.access_log else None,
        )
    except OSError as exc:
        _say("cannot listen on %s: %s" % (args.listen, exc))
        return 1
    outcome = {"signals": 0, "status": 0}

    def force() -> None:
        outcome["status"] = 1
        proxy.close()
        loop.stop()

    def stop_signal(signum: int, frame: Optional[FrameType]) -> None:
        # A signal handler runs between two bytecodes, maybe in the middle
        # of the loop's own work: hand over through the thread-safe (and
        # poller-waking) run_in_loop.
        outcome["signals"] += 1
        if outcome["signals"] == 1:
            loop.run_in_loop(proxy.graceful_shutdown)
        else:
            loop.run_in_loop(force)

    def hangup(signum: int, frame: Optional[FrameType]) -> None:
        loop.run_in_loop(_say, "SIGHUP ignored: graceful restarts need --workers")

    signal.signal(signal.SIGTERM, stop_signal)
    signal.signal(signal.SIGINT, stop_signal)
    if worker:
        # The supervisor owns SIGHUP (it replaces the workers); the end of
        # its pipe tells a worker to stop, which is not a signal: a signal
        # then still counts as the first.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        _ParentWatch(args.worker_of, loop, proxy.graceful_shutdown)
    else:
        signal.signal(signal.SIGHUP, hangup)
    proxy.on("stop", loop.stop)

    def started() -> None:
        mode = ("reverse proxy to %s" % ", ".join(args.upstream)
                if args.upstream else "forward proxy")
        sys.stderr.write("thor %s listening on %s:%s (pid %d)\n" % (
            mode, proxy.host, proxy.port, os.getpid()))
        sys.stderr.flush()

    proxy.on("start", started)
    loop.run()
    proxy.client.close()
    if args.access_log and proxy.access_log is None:
        # Logging stopped on a broken stdout: what its buffer still holds
        # would fail again at exit, with a message; let it go nowhere.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
    return outcome["status"]


class _Worker:
    __slots__ = ("proc", "generation", "started")

    def __init__(self, proc: subprocess.Popen[bytes], generation: int, started: float) -> None:
        self.proc = proc
        self.generation = generation
        self.started = started


class _Supervisor:
    """``--workers N``: the process that binds the port once and runs N
    worker processes on that one socket (passed to them as a file
    descriptor). A second instance on the same port finds it in use; a
    worker that dies is started again; SIGHUP starts N new workers and lets
    the old ones finish their exchanges (code changes are picked up);
    SIGTERM or SIGINT stops the workers gracefully, and a second one kills
    them.

    Each generation of workers holds the read end of a pipe whose write
    end only the supervisor has: closing it tells them to shut down
    gracefully, and they find out the same way if the supervisor dies
    (however it dies). Signals reach the supervisor's loop through
    signal.set_wakeup_fd, so that nothing runs inside a signal handler."""

    def __init__(self, argv: List[str], count: int, sock: socket.socket) -> None:
        self.argv = argv
        self.count = count
        self.sock = sock
        self.workers: Dict[int, _Worker] = {}
        self.pipes: Dict[int, Tuple[int, int]] = {}  # generation -> (read, write)
        self.generation = 0
        self.stopping = False
        self.forced = False
        self.status = 0
        self.respawns: List[float] = []  # when to start a worker again
        env = dict(os.environ)
        # The workers import the same thor as this process.
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
        self.env = env

    def run(self) -> int:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        previous_fd = signal.set_wakeup_fd(wake_write)
        watched = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
        previous = {signum: signal.signal(signum, _noted) for signum in watched}
        try:
            self._new_generation()
            for _ in range(self.count):
                self._spawn()
            while not (self.stopping and not self.workers):
                timeout = None
                if self.respawns and not self.stopping:
                    timeout = max(0.0, min(self.respawns) - _time.monotonic())
                ready, _, _ = select.select([wake_read], [], [], timeout)
                if ready:
                    try:
                        received = os.read(wake_read, 512)
                    except BlockingIOError:
                        received = b""
                    for signum in received:
                        self._signal(signum)
                self._reap()
                self._respawn_due()
        finally:
            signal.set_wakeup_fd(previous_fd)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for fd in (wake_read, wake_write):
                os.close(fd)
            for generation in list(self.pipes):
                self._retire(generation)
            self.sock.close()
        return self.status

    def _new_generation(self) -> None:
        self.generation += 1
        self.pipes[self.generation] = os.pipe()

    def _retire(self, generation: int) -> None:
        """Close a generation's pipe: its workers shut down gracefully."""
        for fd in self.pipes.pop(generation, ()):
            os.close(fd)

    def _spawn(self) -> None:
        read_end = self.pipes[self.generation][0]
        listen_fd = self.sock.fileno()
        command = [sys.executable, "-m", "thor.http.proxy"] + self.argv + [
            "--worker-of", str(read_end), "--listen-fd", str(listen_fd),
        ]
        try:
            proc = subprocess.Popen(command, pass_fds=(read_end, listen_fd), env=self.env)
        except OSError as exc:
            _say("cannot start a worker: %s" % exc)
            self.respawns.append(_time.monotonic() + _RESPAWN_DELAY)
            return
        self.workers[proc.pid] = _Worker(proc, self.generation, _time.monotonic())

    def _signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            if not self.stopping:
                self.stopping = True
                self.respawns.clear()
                # New connections are refused from now on (the kernel
                # would queue them on the socket while the workers drain).
                self.sock.close()
                for generation in list(self.pipes):
                    self._retire(generation)
            elif not self.forced:
                self.forced = True
                self.status = 1
                _say("second signal: stopping the workers at once")
                for worker in self.workers.values():
                    try:
                        worker.proc.kill()
                    except OSError:
                        pass
        elif signum == signal.SIGHUP and not self.stopping:
            old = self.generation
            self._new_generation()
            self.respawns.clear()
            for _ in range(self.count):
                self._spawn()
            self._retire(old)
            _say("SIGHUP: %d new workers started; the old ones finish their "
                 "exchanges, then exit" % self.count)

    def _reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            worker.proc.returncode = code  # reaped here, not by Popen
            if self.stopping or worker.generation != self.generation:
                if code != 0 and not self.forced:
                    self.status = 1
                continue
            how = ("was killed by signal %d" % -code if code < 0
                   else "exited with status %d" % code)
            now = _time.monotonic()
            if now - worker.started < _RESPAWN_DELAY:
                _say("worker %d %s soon after it started; starting a new one in %g s"
                     % (pid, how, _RESPAWN_DELAY))
                self.respawns.append(now + _RESPAWN_DELAY)
            else:
                _say("worker %d %s; starting a new one" % (pid, how))
                self.respawns.append(now)

    def _respawn_due(self) -> None:
        if self.stopping:
            return
        now = _time.monotonic()
        due = [when for when in self.respawns if when <= now]
        if due:
            self.respawns = [when for when in self.respawns if when > now]
            for _ in due:
                self._spawn()


def _noted(signum: int, frame: Optional[FrameType]) -> None:
    """The supervisor's signal handler: nothing here; the signal number
    reaches its loop through the wake-up pipe."""


if __name__ == "__main__":
    sys.exit(main())
