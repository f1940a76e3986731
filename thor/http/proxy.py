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
- reverse (one or more upstream URLs): requests go to the upstreams of a
  pool (thor.http.upstreams: round-robin, weighted or least-connections,
  with passive and active health checks); a request whose upstream failed
  before answering is sent to another when that is safe. CONNECT is
  refused in reverse mode.

In both modes, a request with ``Upgrade`` that the origin accepts with
``101 Switching Protocols`` becomes a two-way byte tunnel.

Clients may speak HTTP/2 (``http2``, on by default: ALPN ``h2`` on a TLS
listener, the cleartext preface otherwise); their requests reach the proxy
as HTTP/1.1's do (thor.http.server_h2 has checked them as RFC 9113 8.2
and 8.3 ask: no connection-specific fields, ``TE`` only ``trailers``, Host
agreeing with ``:authority``, the body as long as its Content-Length, no
CR, LF or NUL anywhere), and go to the origin over HTTP/1.1 (over HTTP/2
to an https:// origin offering it, with ``upstream_http2``). A forward
proxy's HTTP/2 request names its target with ``:scheme`` and
``:authority``; CONNECT over HTTP/2 (RFC 9113 8.5) is a tunnel on its
stream (_StreamTunnel).

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

import base64
import binascii
import errno
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import time as _time
from bisect import bisect_left
from functools import partial
from typing import (
    TYPE_CHECKING, Any, Callable, Collection, Dict, Iterable, List, Mapping, Optional, Set,
    Tuple, Union,
)
from urllib.parse import urlsplit

import thor.loop
from thor.events import EventEmitter
from thor.tcp import TcpClient
from thor.http import error
from thor.http.client import HttpClient
from thor.http.headers import CONNECTION_OPTIONS, HOP_BY_HOP, field_tokens, get_header
from thor.http.metrics import DURATION_BUCKETS, AdminServer, ProxyMetrics
from thor.http.proxylog import AccessFormat
from thor.http.server import HttpServer
from thor.http.upstreams import BALANCES, UpstreamPool, counts_against, upstream_spec
from thor.http import proxylog


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

__all__ = [
    "HttpProxy", "ProxyExchange", "splice", "main", "FORWARDING_FIELDS",
    "tls_server_context", "tls_upstream_context", "read_auth_file",
]

# The operator's log, and the access log (one line per exchange, at INFO).
# (Named, not __name__: under "python -m" this module is __main__.)
log = logging.getLogger("thor.http.proxy")
access_logger = logging.getLogger("thor.http.proxy.access")
# The logger's cache of isEnabledFor's answers, by level (CPython's logging
# keeps one per logger, and clears it in place when any level changes);
# an empty dict, never filled, where there is none.
_ACCESS_ENABLED: Dict[int, bool] = getattr(access_logger, "_cache", {})

# How much of a request body (bytes) the proxy keeps so that it can send the
# request to another upstream when the first one refused the connection; a
# request with a longer body is answered 502 instead.
_RETRY_BODY_LIMIT = 65536
# RFC 9110 9.2.2: requests that may be sent again after a failure.
_IDEMPOTENT = frozenset((b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"))
# Failures before a response after which an idempotent request is sent to
# another upstream (as nginx's proxy_next_upstream "error timeout").
_RETRIABLE = (error.ConnectError, error.ReadTimeoutError)
# Request fields _request_start looks at: the hop-by-hop ones (not
# forwarded), Expect (answered by the server itself, which sends 100
# Continue when the body is wanted) and Max-Forwards (counted down); and
# Proxy-Authorization, never forwarded in any mode (RFC 9110 11.7.2: the
# credentials are for this proxy, whether it checks them or not).
_REQUEST_SPECIAL = HOP_BY_HOP | {
    b"expect", b"max-forwards", b"content-length", b"proxy-authorization",
}
# Fields a TRACE answer leaves out (RFC 9110 9.3.8): credentials.
_TRACE_HIDDEN = frozenset((
    b"authorization", b"proxy-authorization", b"cookie", b"set-cookie",
))

# The forwarding fields (issue 13): which the proxy may send, by the names
# its ``forwarded`` setting takes; a client it does not trust has all of
# them removed from its request whenever the proxy sends any.
FORWARDING_FIELDS = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded")


def _spellings(names: Iterable[str]) -> Iterable[bytes]:
    """Each name with each of its dashes as a dash or an underscore."""
    for name in names:
        variants = [b""]
        for part_index, part in enumerate(name.encode("ascii").split(b"-")):
            if part_index:
                variants = [v + sep for v in variants for sep in (b"-", b"_")]
            variants = [v + part for v in variants]
        yield from variants


# What is removed from an untrusted client's request whenever the proxy
# sends forwarding fields: those, the other fields origins take from their
# proxy as the client's address, scheme, port or path prefix, and each of
# them spelt with underscores (CGI, WSGI and PHP read X_Forwarded_For as
# X-Forwarded-For: both become HTTP_X_FORWARDED_FOR). From a trusted proxy
# the dashed names are kept; the underscore ones, which no proxy sends,
# never are.
_FORWARDING = frozenset(_spellings(
    FORWARDING_FIELDS
    + ("x-forwarded-port", "x-forwarded-prefix", "x-forwarded-server", "x-real-ip")
))
# The duration histogram's first bounds, compared with before any bisect.
_FIRST_BOUND, _SECOND_BOUND = DURATION_BUCKETS[:2]
# Who may use a forward proxy when ``allow`` is not given.
_LOOPBACK = ("127.0.0.0/8", "::1/128")
# Address -> verdict caches (allow, trusted_proxies) are emptied past this
# many entries, so that a scan from many addresses cannot grow them.
_ADDRESS_CACHE = 4096

# Transfer codings that leave the content as it is: "identity" (RFC 2616;
# gone from RFC 7230 on, but still sent by a few old origins).
_NULL_CODINGS = frozenset((b"identity",))
# Connection field values that name no other field (see _response_start).
_PLAIN_CONNECTION = frozenset((b"keep-alive", b"close"))
# The heads whose fields to pass on are kept (HttpProxy._request_fields and
# _response_fields) are forgotten past this many of either, so that a peer
# varying its fields cannot grow them without bound.
_HEAD_CACHE = 256
# A cached head's fields with the forwarding fields added are kept for this
# many client addresses (each), past which they are forgotten.
_PEERS_PER_HEAD = 64
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
        "_response_started", "_kept", "_kept_size", "_bytes_out", "_bytes_in", "_tried",
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
    _bytes_in: int
    _tried: int  # bit mask of the upstreams this request failed on
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
        self._bytes_in = 0
        self._tried = 0
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
        """The downstream client's address (a str), or None. An IPv4 client
        of a dual-stack socket (``::ffff:10.0.0.5``) is its IPv4 address."""
        try:  # attribute look-ups, not getattr() calls: once per request
            host: Optional[str] = self.server_exchange.connection.tcp.host
        except AttributeError:
            return None
        if host is not None and host[:7] == "::ffff:" and "." in host:
            return host[7:]
        return host

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
        # A body paused for a slow upstream (_Upstream.pause) is not wanted
        # now: resumed, the server drops the rest (_request_body sees the
        # exchange finished) instead of holding it, and the client's
        # flow-control window with it, for good.
        ex.pause(False)

    def _done(self) -> None:
        if not self._finished:
            self._finished = True
            self.proxy._log(self)


class _Exchange(ProxyExchange):
    """The ProxyExchange the proxy makes: also its server exchange's sink,
    whose events it passes to the proxy. (A sink, not listeners: one call
    per exchange instead of five; and the exchange itself, not an object
    of its own: one object per request fewer. The sink's methods are
    kept out of ProxyExchange, the class the hooks are documented with.)"""

    __slots__ = ()

    def request_start(self, method: bytes, uri: bytes, headers: RawHeaderListType) -> None:
        self.proxy._request_start(self, headers)

    def request_body(self, chunk: bytes) -> None:
        self.proxy._request_body(self, chunk)

    def request_done(self, trailers: RawHeaderListType) -> None:
        self.proxy._request_done(self, trailers)

    def pause(self, paused: bool) -> None:
        # The downstream client is slow (or fast again): stop (or resume)
        # reading the origin's response.
        self._down_paused = paused
        cex = self.client_exchange
        if cex is not None:
            cex.pause(paused)

    def error(self, err: error.HttpError) -> None:
        # The downstream exchange failed (the client went away, or a server
        # timeout gave up on it): the upstream exchange is of no use any
        # more, and aborting it frees its connection for the next request.
        cex = self.client_exchange
        if cex is not None:
            cex.abort()
        if self.status is None:
            self.status = 499  # nginx's "client closed request", for the log
        self._done()


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

    Forwarding and access (keyword arguments, or class variables of the
    same names on a subclass; read, checked and compiled when the proxy is
    made, a bad value raising ValueError there): ``forwarded``: which of
    FORWARDING_FIELDS to add to requests (None, the default: all of them
    in reverse mode, none in forward mode; ``()`` for none).
    ``trusted_proxies``: addresses or CIDR networks of proxies whose
    forwarding fields are kept and appended to; from any other client they
    are removed, whenever the proxy sends any. ``allow``: the CIDR networks
    whose clients are served (None: loopback only in forward mode, everyone
    in reverse mode); others get 403. ``auth``: a mapping (or iterable of
    "user:password" strings) of credentials for Basic authentication:
    ``Proxy-Authorization`` and 407 in forward mode, ``Authorization`` and
    401 in reverse mode, the field being removed before the request goes
    on; ``auth_realm`` names the realm. ``Proxy-Authorization`` is never
    forwarded (the hook sees it unless ``auth`` checked it). A request
    (CONNECT too) whose ``Via`` already names this proxy's pseudonym
    (``via``) is a loop, answered 508.

    Upstreams and logs (class variables, read when the proxy is made):
    ``balance`` ("round-robin", weighted when upstreams are given as
    ``URL,weight=N``; or "least-conn"), ``max_fails`` (failures in a row,
    timeouts and 5xx among them, that mark an upstream down; a refused
    connection marks it down at once; read at each failure, as is
    ``down_time``), ``health_check`` (a path each upstream is probed at
    every ``health_interval`` seconds; None: no active checks),
    ``access_log_format`` ("common", "combined", "json" or a template;
    see thor.http.proxylog). Each finished exchange is counted in
    ``metrics`` (thor.http.metrics.ProxyMetrics) and logged on the
    ``thor.http.proxy.access`` logger at INFO (or written to
    ``access_log``, when given); upstreams going down and up, retries and
    upstream failures are logged on ``thor.http.upstreams`` and
    ``thor.http.proxy``. ``serve_admin()`` serves the metrics.

    Settings (class variables; set them on a subclass, or on an instance
    before requests arrive for ``via``, ``down_time`` and
    ``connect_ports``): ``via`` (the Via pseudonym; None, the default,
    gives each proxy its own, "thor-" and 8 hex digits), ``down_time``
    (seconds a down upstream is skipped, without active checks),
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

    HTTP/2 (class variables, read when the proxy is made): ``http2``
    (default True) accepts HTTP/2 from clients: ALPN ``h2`` (and
    ``http/1.1``) on ``tls_context``, and the cleartext preface (prior
    knowledge); False serves HTTP/1.1 only (ALPN ``http/1.1``).
    ``upstream_http2`` (default False) lets the upstream client speak
    HTTP/2 to https:// origins that offer it over ALPN (HttpClient's
    ``http2``), HTTP/1.1 otherwise.
    """

    connect_ports: Collection[int] = (443,)
    via: Optional[str | bytes] = None
    forwarded: Optional[Iterable[str]] = None
    trusted_proxies: Iterable[Any] = ()
    allow: Optional[Iterable[Any]] = None
    auth: Optional[Mapping[str, str] | Iterable[str]] = None
    auth_realm = "thor proxy"
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
    # issue 13: upstream pools and logging (see the docstring).
    balance = "round-robin"
    max_fails = 3
    health_check: Optional[str] = None
    health_interval = 5.0
    access_log_format = "common"
    # issue 14: HTTP/2 (see the docstring).
    http2 = True
    upstream_http2 = False

    def __init__(
        self, host: str = "127.0.0.1", port: int = 8080, loop: Optional[LoopBase] = None, *,
        upstreams: Optional[Iterable[str | bytes]] = None,
        connect_ports: Optional[Iterable[int]] = None,
        access_log: Optional[IO[str]] = None, client: Optional[HttpClient] = None,
        reuse_port: bool = False, tls_context: Optional[ssl.SSLContext] = None,
        sock: Optional[socket.socket] = None,
        forwarded: Optional[Iterable[str]] = None, trusted_proxies: Optional[Iterable[str]] = None,
        allow: Optional[Iterable[str]] = None,
        auth: Optional[Mapping[str, str] | Iterable[str]] = None,
    ) -> None:
        EventEmitter.__init__(self)
        self.loop: LoopBase = loop or thor.loop.default_loop()
        specs = [upstream_spec(u) for u in (upstreams or ())]
        self.upstreams = [_upstream(url) for url, _ in specs]
        self.pool = UpstreamPool(self.upstreams, [weight for _, weight in specs], self.loop,
                                 self, self.balance)
        if self.health_check is not None and not self.health_check.startswith("/"):
            raise ValueError("health_check is a path starting with /: %r" % self.health_check)
        self.metrics = ProxyMetrics()
        self.on("start", self._start_checks)
        self.on("stop", self.pool.stop_checks)
        if connect_ports is not None:
            self.connect_ports = frozenset(int(p) for p in connect_ports)
        self.access_log = access_log
        self._access_format = AccessFormat(self.access_log_format)
        if client is None:
            client = HttpClient(self.loop)
            client.connect_timeout = self.connect_timeout
            client.read_timeout = self.read_timeout
            client.queue_timeout = self.queue_timeout
            client.send_timeout = self.send_timeout
            client.max_server_conn = self.max_server_conn
            # A kept-alive upstream connection that the origin closed is
            # retried at once (for idempotent requests), not after a delay,
            # and once: a request an upstream keeps failing goes to the
            # next upstream (_retry), not to the same one again and again.
            client.retry_delay = 0
            client.retry_limit = 1
            if self.upstream_http2:
                if not hasattr(client, "http2"):
                    raise ValueError("upstream_http2: this HttpClient has no HTTP/2")
                setattr(client, "http2", True)
        self.client = client
        http2 = bool(self.http2)
        if tls_context is not None and not http2:
            # What the application's context offers may include h2, which
            # the server would then be asked for and not speak.
            tls_context.set_alpn_protocols(["http/1.1"])
        if sock is not None:
            self.server: HttpServer = _ServerOnSocket(sock, self.loop, tls_context, http2)
        else:
            self.server = _ProxyServer(
                host, port, self.loop, reuse_port=reuse_port, tls_context=tls_context,
                http2=http2,
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
        # The head hooks are called only when overridden (the defaults do
        # nothing): a call and a try block fewer per request.
        self._hooks_request = cls.request_hook is not HttpProxy.request_hook
        self._hooks_response = cls.response_hook is not HttpProxy.response_hook
        self._via: Dict[bytes, Tuple[bytes, bytes]] = {}  # version: the Via field
        # head: (its fields to pass on, its Host, those with the forwarding
        # fields added by connection address)
        self._request_fields: Dict[
            _Head, Tuple[_Head, Optional[bytes], Dict[Optional[str], _Head]]
        ] = {}
        self._response_fields: Dict[_Head, _Head] = {}
        self._draining = False
        self._deadline: Optional[ScheduledEvent] = None
        # Both ends of every CONNECT / 101 tunnel: the server forgets a
        # connection it hands over, so the proxy closes them itself.
        self._tunnels: Set[TcpConnection] = set()
        self.open_tunnels = 0  # tunnels (not connections) open: the metrics' gauge
        self._failure_log = proxylog.FailureLog(log, self.loop)
        self._via_name: Optional[bytes] = None
        try:
            self._setup_access(forwarded, trusted_proxies, allow, auth, tls_context is not None)
        except BaseException:
            # A bad setting raises here, after the server was made: it must
            # not keep listening (nor leak its socket) behind the exception.
            self.server.close()
            raise

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
        server_exchange.sink(_Exchange(self, server_exchange))

    def _request_start(self, pex: ProxyExchange, headers: RawHeaderListType) -> None:
        # emit()'s call is skipped when it would find nobody to call.
        if self._events.get("exchange") is not None or self._sink is not None:
            self.emit("exchange", pex)
        if self._gate and not (
            # A client allowed before, with no credentials to check: no
            # _admit call.
            self._auth is None and self._allow_cache.get(pex.client_address)
            or self._admit(pex, headers)
        ):
            return
        method = pex.method
        if method == b"CONNECT":
            # Credentials that ``auth`` checked were for this proxy only
            # (the hook does not see them). A loop is seen here too, before
            # a tunnel is opened: a CONNECT that comes back (chained proxies
            # in a circle) would open connections without end.
            kept = []
            consumed = self._auth_field if self._auth is not None else None
            for field in headers:
                lower = field[0].lower()
                if lower == consumed:
                    continue
                if lower == b"via" and self._via_loops(field[1]):
                    self._loop_detected(pex)
                    return
                kept.append(field)
            pex.headers = kept
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
                    if parts.netloc:
                        # RFC 9112 3.2.2: the target's authority, not Host,
                        # is the request's host (as nginx takes it): what
                        # X-Forwarded-Host and Forwarded's host= say.
                        headers = _with_host(
                            headers, parts.netloc.rpartition("@")[2].encode("ascii"))
            index = self.pool.pick()
            pex.upstream = index
            pex.uri = self.upstreams[index] + uri
        elif not (uri[:7].lower() == b"http://" or uri[:8].lower() == b"https://"):
            target = (self._h2_target(pex, headers)
                      if pex.server_exchange.req_version == b"2" else None)
            if target is None:
                pex.respond(400, "Bad Request", [(b"Content-Type", b"text/plain")],
                            "This is a forward proxy: requests need an absolute URL.\n")
                return
            pex.uri = target
        elif self._forwarding is not None:
            # As in reverse mode: the URL's authority is the host the
            # forwarding fields name (and the one the client sends as Host).
            authority = uri[uri.find(b"//") + 2:]
            for end in (b"/", b"?", b"#"):
                authority = authority.partition(end)[0]
            headers = _with_host(headers, authority.rpartition(b"@")[2])
        # A client sends the same head again and again: what is passed on of
        # one that needs nothing worked out per request (no Upgrade,
        # Max-Forwards, forwarding fields or credentials) is looked up, not
        # worked out again; with the forwarding fields, for each client
        # address (by the connection's own address, which client_address
        # is made from).
        key = tuple(headers)
        known = self._request_fields.get(key)
        if known is not None:
            credentials = False
            if self._forwarding is None:
                kept = list(known[0])
            else:
                try:
                    peer: Optional[str] = pex.server_exchange.connection.tcp.host
                except AttributeError:
                    peer = None
                full = known[2].get(peer)
                if full is None:
                    full = self._forwarded_head(pex, known, peer)
                kept = list(full)
        else:
            made = self._end_to_end_request(pex, headers, key)
            if made is None:  # answered
                return
            kept, credentials = made
        version = pex.server_exchange.req_version
        kept.append(self._via.get(version) or self._via_field(version))
        pex.headers = kept
        if self._hooks_request and not self._request_hooked(pex):
            return
        if credentials:
            # RFC 9110 11.7.2: they were for this proxy; never forwarded.
            pex.headers = [f for f in pex.headers if f[0].lower() != b"proxy-authorization"]
        self._forward(pex)

    def _request_hooked(self, pex: ProxyExchange) -> bool:
        """Call request_hook; whether the request goes on (False: the hook
        answered it, or failed and that was answered)."""
        try:
            self.request_hook(pex)
        except Exception as exc:
            self._hook_failed(pex, exc)
            return False
        return not pex._finished

    def _end_to_end_request(
        self, pex: ProxyExchange, headers: RawHeaderListType, key: _Head,
    ) -> Optional[Tuple[RawHeaderListType, bool]]:
        """The request fields to pass on (to which the Via field is yet to
        be added), and whether they carry Proxy-Authorization for the hook
        to see; None when the request has been answered here (a loop, a
        bad Max-Forwards, or the last hop of one). Kept in _request_fields
        under ``key`` when nothing in them depends on the method or on who
        the client is."""
        method = pex.method
        ex = pex.server_exchange
        connection = False
        upgrades: Optional[RawHeaderListType] = None
        max_forwards = None
        length: Optional[bytes] = None
        kept = []
        special = self._special
        looped = False
        credentials = False
        host: Optional[bytes] = None
        # The forwarding fields a trusted proxy sent, by lower-case name;
        # None: the client is not one (or none are sent), so they go.
        incoming: Optional[Dict[bytes, RawHeaderListType]] = None
        if self._forwarding is not None and self._trusted and self._address_in(
            pex.client_address, self._trusted, self._trusted_cache
        ):
            incoming = {}
        plain = True  # nothing in the head that the cache cannot stand for
        for field in headers:
            lower = field[0].lower()
            if lower in special:
                if lower == b"connection":
                    # What it strips depends on the head alone (an Upgrade
                    # it names is not plain): it does not stop the caching.
                    connection = True
                    kept.append(field)  # for strip_hop_by_hop, below
                elif lower == b"upgrade":
                    plain = False
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
                    plain = False  # the method decides what becomes of it
                    if method == b"OPTIONS" or method == b"TRACE":
                        if max_forwards is None:
                            max_forwards = field[1].strip()
                    else:
                        kept.append(field)  # end-to-end for other methods
                elif lower == b"host":
                    host = field[1].strip()
                    kept.append(field)
                elif lower == b"via":
                    kept.append(field)
                    if not looped:
                        looped = self._via_loops(field[1])
                elif lower == b"proxy-authorization":
                    if self._show_credentials:
                        # For the hook to see; removed after it.
                        plain = False
                        kept.append(field)
                        credentials = True
                elif lower in _FORWARDING:
                    plain = False  # who the client is decides
                    if incoming is not None and b"_" not in lower:
                        incoming.setdefault(lower, []).append(field)
                    # Else they may be forged: the client is not trusted.
                # Other hop-by-hop fields, Expect, and the credentials for
                # this proxy are not forwarded.
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
            if incoming:
                # A trusted proxy's forwarding fields too.
                for token in tokens:
                    incoming.pop(token, None)
        if plain and not looped:
            if len(self._request_fields) >= _HEAD_CACHE:
                self._request_fields.clear()
            self._request_fields[key] = (tuple(kept), host, {})
        if pex._upgrade and upgrades is not None:
            kept.extend(upgrades)  # the client adds Connection: upgrade
        if looped:
            self._loop_detected(pex)
            return None
        if self._forwarding is not None:
            self._add_forwarding(pex, kept, host, incoming)
        if max_forwards is not None:
            # RFC 9110 7.6.2: the last hop answers; the others count down.
            if not max_forwards.isdigit():
                pex.respond(400, "Bad Request", [], "Bad Max-Forwards\n")
                return None
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
                return None
            kept.append((b"Max-Forwards", b"%d" % (left - 1)))
        return kept, credentials

    def _h2_target(self, pex: ProxyExchange, headers: RawHeaderListType) -> Optional[bytes]:
        """The absolute URL of a forward proxy's HTTP/2 request (RFC 9113
        8.3.1: ``:scheme``, ``:authority`` (the Host field, which
        thor.http.server_h2 makes from it, or checked to agree with it),
        ``:path``); None when they do not make one."""
        scheme = getattr(pex.server_exchange, "scheme", b"")
        if scheme not in (b"http", b"https") or pex.uri[:1] != b"/":
            return None
        hosts = [value for name, value in headers if name == b"host"]
        # The authority's characters only: no userinfo, path, query or
        # white space can slip into the URL the origin is chosen by.
        if len(hosts) != 1 or not hosts[0] or hosts[0].translate(None, _AUTHORITY_CHARS):
            return None
        return b"%s://%s%s" % (scheme, hosts[0], pex.uri)

    def _via_loops(self, value: bytes) -> bool:
        """Does the Via field value ``value`` name this proxy (a loop)?"""
        name = self._via_name
        if name is None:
            name = self._via_field(b"1.1")[1].split()[1].lower()
            self._via_name = name
        return name in value.lower() and _names_us(value, name)

    def _loop_detected(self, pex: ProxyExchange) -> None:
        pex.respond(508, "Loop Detected", [(b"Content-Type", b"text/plain")],
                    "This request has been through this proxy already (see Via).\n")

    def _via_field(self, version: bytes) -> Tuple[bytes, bytes]:
        """The Via field for a message received in HTTP/``version``: one
        tuple per version, made once (``via`` is read at the first
        message), added to each message as it is."""
        via = self._via.get(version)
        if via is None:
            name = self.via
            if isinstance(name, str):
                name = name.encode("latin-1")
            # RFC 9110 7.6.3: the received protocol, then our pseudonym.
            via = self._via[version] = (b"Via", b"%s %s" % (version, name))
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
        pex._bytes_in += len(chunk)
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
        if trailers and self._forwarding is not None:
            # Forwarding fields belong in the head, where this proxy sets
            # them: in trailers they could only be forged (the parser has
            # already dropped the credentials and other fields that may not
            # come there, RFC 9110 6.5.1).
            trailers = [f for f in trailers if f[0].lower() not in _FORWARDING]
        pex._req_done = True
        pex._trailers = trailers
        cex = pex.client_exchange
        if cex is None or pex._finished:
            return
        try:
            if self._rewrites_request:
                self._finish_request(pex, cex)
            else:  # what _finish_request comes to without a body hook
                cex.request_done(trailers or [])
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
                if pex.upstream is not None and pex._kept_size <= _RETRY_BODY_LIMIT:
                    # Kept with the body: a retry replays it (_retry), for
                    # the hook's end is called once per request.
                    if pex._kept is None:
                        pex._kept = []
                    pex._kept.append(tail)
                    pex._kept_size += len(tail)
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
        # An origin sends the same head again and again (but for Date, once
        # a second): what is passed on of one is looked up, not worked out
        # again, when nothing in it needs _framing_fields.
        key = tuple(headers)
        known = self._response_fields.get(key)
        if known is not None:
            fields = list(known)
        else:
            fields, hop = self._end_to_end(headers)
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
            else:
                if len(self._response_fields) >= _HEAD_CACHE:
                    self._response_fields.clear()
                self._response_fields[key] = tuple(fields)
        # RFC 9110 7.6.3: the version the proxy received the response in.
        version = cex.res_version or b"1.1"
        fields.append(self._via.get(version) or self._via_field(version))
        if self._hooks_response:
            try:
                status, phrase, fields = self.response_hook(pex, status, phrase, fields)
            except Exception as exc:
                self._hook_failed(pex, exc)
                return
        if pex._finished:
            return
        pex._response_started = True
        ex = pex.server_exchange
        if not pex._down_paused and ex.req_version != b"2":
            # The downstream connection may still be busy sending an earlier
            # response; its pause(False) then comes to this exchange. (An
            # HTTP/2 stream is paused by its connection, which resumes only
            # the streams it paused.)
            try:  # an attribute look-up, not a getattr() call
                tcp: Optional[TcpConnection] = ex.connection.tcp
            except AttributeError:
                tcp = None
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

    def _end_to_end(self, headers: RawHeaderListType) -> Tuple[RawHeaderListType, bool]:
        """The response fields to pass on, and whether _framing_fields must
        have a say in them (hop-by-hop fields other than a plain
        ``Connection: keep-alive`` or ``close``, a listed Content-Length)."""
        drop_length = self._rewrites_response
        fields = []
        hop = False
        for field in headers:
            lower = field[0].lower()
            if lower in HOP_BY_HOP:
                # A Connection field that only says keep-alive or close (as
                # most origins send) names no field to remove: dropping it
                # is all there is to do.
                if (
                    lower != b"connection"
                    or field[1].strip(b" \t").lower() not in _PLAIN_CONNECTION
                ):
                    hop = True
            elif lower == b"content-length":
                if not drop_length:
                    fields.append(field)
                    if b"," in field[1]:
                        hop = True  # "5, 5": one value, in _framing_fields
            else:
                fields.append(field)
        return fields, hop

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
        if not pex._finished:  # pex._done(), without the call
            pex._finished = True
            self._log(pex)

    def _upstream_error(self, pex: ProxyExchange, err: error.HttpError) -> None:
        if pex._finished:
            return
        if isinstance(err, error.ApplicationError):
            self._not_sent(pex, err)
            return
        index = pex.upstream
        # Down before this failure: the pool's WARNING told the operator.
        known = index is not None and self.pool.upstreams[index].down
        if index is not None and self._retry(pex, index, err):
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
        # The client gets a short reason; the detail (an SSLError's text,
        # an address) is for the operator's log.
        self._failure_detail(pex, str(err), known)
        pex._respond(status, phrase, [(b"Content-Type", b"text/plain")],
                     "%s %s: %s\n" % (status, phrase, _short_reason(err)))

    def _not_sent(self, pex: ProxyExchange, err: error.HttpError) -> None:
        """The client emitted an ApplicationError: it refused the request
        the proxy made (a UrlError: a target it cannot take; a
        BadHeaderError: fields HTTP/2 cannot carry) before any of it went
        upstream, or a listener of the proxy's raised (ListenerError, which
        the client has reported). Neither is the upstream's failure: it is
        not counted against it (passive health) nor retried elsewhere. The
        request is at fault (400), or the proxy (500); the client is told
        the kind, not the detail (the upstream's URL)."""
        if pex._response_started:
            pex.server_exchange.abort()
            pex._done()
            return
        log.debug("%s %s not forwarded: %s", proxylog.escape(pex.method),
                  proxylog.escape(pex.uri[:200]), err)
        if isinstance(err, error.ListenerError):
            pex._respond(500, "Internal Server Error", [], "")
        else:
            pex._respond(400, "Bad Request", [(b"Content-Type", b"text/plain")],
                         "The request cannot be forwarded: %s.\n" % err.desc)

    def _hook_failed(self, pex: ProxyExchange, exc: Exception) -> None:
        """A hook raised: a bug in it is reported to the loop's
        exception_handler and answered 500. A PeerError (e.g. thor.http.
        coding's CodingError: a coded body that is corrupt, cut short or a
        bomb) is the sender's fault, not the hook's: it is logged, and
        answered with 502 when the origin sent it, or with its own status
        (400, 413) when the client did. Either way a response already
        under way is cut."""
        cex = pex.client_exchange
        if isinstance(exc, error.PeerError):
            from_origin = cex is not None and cex.res_status is not None
            self._failure_detail(pex, "%s from the %s: %s" % (
                type(exc).__name__, "origin" if from_origin else "client", exc))
            status, phrase = (
                (b"502", b"Bad Gateway") if from_origin
                else exc.server_status or (b"400", b"Bad Request")
            )
        else:
            self._report(exc)
            status, phrase = b"500", b"Internal Server Error"
        if cex is not None:
            cex.abort()
        if pex._response_started:
            pex.server_exchange.abort()
            pex._done()
        else:
            pex._respond(status, phrase, [], "")

    def _report(self, exc: BaseException) -> None:
        self.loop.exception_handler(self.loop, exc, self)

    def _retry(self, pex: ProxyExchange, index: int, err: error.HttpError) -> bool:
        """Count an upstream's failure against it, and send the request to
        another upstream when that is safe: nothing of the response has
        gone to the client, the body as far as it came is kept, and either
        the connection was refused (the request is unseen: any method) or
        the request is idempotent (RFC 9110 9.2.2) and failed before its
        response (a broken connection, a timeout) and before any interim
        (1xx) one. Each upstream is tried once per request. True when the
        request went out again."""
        pool = self.pool
        # Marked as tried whether it is retried or not: what it answered, if
        # anything, is not to be counted again when the exchange is over.
        pex._tried |= 1 << index
        refused = _refused(err)
        counted = counts_against(err)
        if counted:
            pool.failed(index, str(err), at_once=refused)
        cex = pex.client_exchange
        if not (
            (refused or (counted and pex.method in _IDEMPOTENT
                         and isinstance(err, _RETRIABLE)))
            and not pex._response_started and pex._kept_size <= _RETRY_BODY_LIMIT
            # The upstream began to answer: its interim responses (a 103's
            # hints) went on to the client, and no other's may follow.
            and not (cex is not None and cex._nonfinal)
        ):
            return False
        retry = pool.pick(pex._tried)
        if retry < 0:
            return False
        pool.release(index)
        self.metrics.retries += 1
        path = pex.uri[len(self.upstreams[index]):]
        pex.upstream = retry
        pex.uri = self.upstreams[retry] + path
        log.info("retrying %s %s on %s: %s failed: %s", proxylog.escape(pex.method),
                 proxylog.escape(path[:200]) or "*", pool.upstreams[retry].name,
                 pool.upstreams[index].name, err)
        # The failed exchange may have paused the downstream request body;
        # the new one pauses it again if need be.
        pex.server_exchange.pause(False)
        # A request that had ended (the end-of-body hook's tail is kept with
        # its body) is ended here, not by _forward: the hook's end is
        # called once per request.
        done, pex._req_done = pex._req_done, False
        self._forward(pex)
        pex._req_done = done
        cex = pex.client_exchange
        if done and cex is not None and not pex._finished:
            try:
                cex.request_done(pex._trailers or [])
            except (ValueError, TypeError) as exc:
                self._hook_failed(pex, exc)
        return True

    def _start_checks(self) -> None:
        """Active health checks, from the proxy's start (by then the
        application has set the client's TLS context, which the probes
        of https:// upstreams share)."""
        if self.health_check is None or not self.upstreams or self.pool.checker is not None:
            return
        probes = HttpClient(self.loop)
        probes.connect_timeout = probes.read_timeout = self.health_interval
        probes.retry_delay = 0
        probes.tls_context = self.client.tls_context
        self.pool.start_checks(self.health_check, self.health_interval, probes)

    def serve_admin(self, host: str = "127.0.0.1", port: int = 0) -> AdminServer:
        """Serve ``/metrics`` (Prometheus text format) and ``/healthz`` on
        ``host``:``port`` (an HttpServer on the proxy's loop; port 0 picks
        one: see the returned AdminServer's ``port``). It closes when the
        proxy stops."""
        admin = AdminServer(self, host, port, self.loop)
        self.on("stop", admin.close)
        return admin

    # -- forwarding fields, loops and access (issue 13) -----------------------------

    def _setup_access(
        self, forwarded: Optional[Iterable[str]], trusted_proxies: Optional[Iterable[str]],
        allow: Optional[Iterable[str]], auth: Optional[Mapping[str, str] | Iterable[str]],
        tls: bool,
    ) -> None:
        """Check and compile the forwarding and access settings (a keyword
        given to the constructor wins over the class variable)."""
        if self.via is None:
            # One per proxy, so that two thor proxies in a chain are not
            # taken for a loop.
            self.via = "thor-" + secrets.token_hex(4)
        if forwarded is None:
            forwarded = self.forwarded
        if forwarded is None:
            forwarded = FORWARDING_FIELDS if self.upstreams else ()
        names = [forwarded] if isinstance(forwarded, str) else list(forwarded)
        chosen = []
        for name in names:
            lower = name.strip().lower()
            if lower not in FORWARDING_FIELDS:
                raise ValueError(
                    "forwarded: %r is none of %s" % (name, ", ".join(FORWARDING_FIELDS))
                )
            chosen.append(lower)
        self.forwarded = tuple(chosen)
        sent = [name in chosen for name in FORWARDING_FIELDS]
        self._forwarding: Optional[Tuple[bool, bool, bool, bool]] = (
            (sent[0], sent[1], sent[2], sent[3]) if chosen else None
        )
        self._proto = b"https" if tls else b"http"
        self.trusted_proxies = self._trusted = _networks(
            self.trusted_proxies if trusted_proxies is None else trusted_proxies,
            "trusted_proxies",
        )
        self._trusted_cache: Dict[Optional[str], bool] = {}
        self._forwarding_made: Dict[Tuple[str, Optional[bytes]], RawHeaderListType] = {}
        if allow is None:
            allow = self.allow
        if allow is None and not self.upstreams:
            allow = _LOOPBACK
        self._allow = None if allow is None else _networks(allow, "allow")
        self.allow = self._allow
        self._allow_cache: Dict[Optional[str], bool] = {}
        if auth is None:
            auth = self.auth
        self._auth: Optional[Dict[bytes, bytes]] = None
        if auth is not None:
            self._auth = _credentials(auth)
        # Basic authentication: of the proxy in forward mode (RFC 9110
        # 11.7), of the "origin" in reverse mode, where the proxy is one.
        self._auth_field = b"authorization" if self.upstreams else b"proxy-authorization"
        realm = self.auth_realm.replace("\\", "\\\\").replace('"', '\\"')
        self._challenge = ('Basic realm="%s", charset="UTF-8"' % realm).encode("utf-8")
        self._gate = self._allow is not None or self._auth is not None
        # Proxy-Authorization that ``auth`` did not check (reverse mode, or
        # no ``auth``) is shown to the hook, then removed.
        self._show_credentials = self._auth is None or bool(self.upstreams)
        special = set(_REQUEST_SPECIAL)
        special.add(b"via")
        if self._forwarding is not None:
            special |= _FORWARDING
            special.add(b"host")
        if self._auth is not None:
            special.add(self._auth_field)
        self._special = frozenset(special)

    def _address_in(self, address: Optional[str], networks: Tuple[_Network, ...],
                    cache: Dict[Optional[str], bool]) -> bool:
        if address is None:
            return False
        verdict = cache.get(address)
        if verdict is None:
            verdict = _address_in(address, networks)
            if len(cache) >= _ADDRESS_CACHE:
                cache.clear()
            cache[address] = verdict
        return verdict

    def _admit(self, pex: ProxyExchange, headers: RawHeaderListType) -> bool:
        """Is the client allowed, and authenticated if need be? If not, it
        is answered here (403; 407 or 401)."""
        allow = self._allow
        if allow is not None and not self._address_in(
            pex.client_address, allow, self._allow_cache
        ):
            pex.respond(403, "Forbidden", [(b"Content-Type", b"text/plain")],
                        "This proxy does not serve your address.\n")
            return False
        if self._auth is not None and not self._authenticated(headers):
            if self.upstreams:
                pex.respond(401, "Unauthorized", [
                    (b"WWW-Authenticate", self._challenge), (b"Content-Type", b"text/plain"),
                ], "Authentication required.\n")
            else:
                pex.respond(407, "Proxy Authentication Required", [
                    (b"Proxy-Authenticate", self._challenge), (b"Content-Type", b"text/plain"),
                ], "Proxy authentication required.\n")
            return False
        return True

    def _authenticated(self, headers: RawHeaderListType) -> bool:
        """Do ``headers`` carry Basic credentials that ``auth`` lists?"""
        accounts = self._auth
        if accounts is None:
            return True
        name = self._auth_field
        for field in headers:
            if field[0].lower() != name:
                continue
            scheme, _, token = field[1].strip().partition(b" ")
            if scheme.lower() != b"basic":
                continue
            try:
                user, sep, password = base64.b64decode(token.strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return False
            expected = accounts.get(user)
            # Digests, compared in constant time: how long the comparison
            # takes tells nothing of the password, nor (much) of the user.
            given = hashlib.sha256(password).digest()
            match = hmac.compare_digest(given, expected if expected is not None else _NO_DIGEST)
            return match and sep == b":" and expected is not None
        return False

    def _forwarded_head(
        self, pex: ProxyExchange,
        known: Tuple[_Head, Optional[bytes], Dict[Optional[str], _Head]], peer: Optional[str],
    ) -> _Head:
        """A known head's fields with the forwarding fields for a client
        (at ``peer``, its connection's address) added; kept in ``known``
        (for at most _PEERS_PER_HEAD addresses)."""
        kept = list(known[0])
        self._add_forwarding(pex, kept, known[1], None)
        by_peer = known[2]
        if len(by_peer) >= _PEERS_PER_HEAD:
            by_peer.clear()
        full = by_peer[peer] = tuple(kept)
        return full

    def _add_forwarding(
        self, pex: ProxyExchange, kept: RawHeaderListType, host: Optional[bytes],
        incoming: Optional[Dict[bytes, RawHeaderListType]],
    ) -> None:
        """Append the forwarding fields to ``kept``. ``incoming`` holds
        those a trusted proxy sent (None when the client is not one: its
        were dropped)."""
        client = pex.client_address or "unknown"
        if not incoming:
            # Then the fields depend on the client's address and Host only:
            # made once for each pair (a client sends many requests).
            key = (client, host)
            made = self._forwarding_made.get(key)
            if made is None:
                made = []
                self._forwarding_fields(made, client, host, None)
                if len(self._forwarding_made) >= _ADDRESS_CACHE:
                    self._forwarding_made.clear()
                self._forwarding_made[key] = made
            kept.extend(made)
        else:
            self._forwarding_fields(kept, client, host, incoming)

    def _forwarding_fields(
        self, kept: RawHeaderListType, client: str, host: Optional[bytes],
        incoming: Optional[Dict[bytes, RawHeaderListType]],
    ) -> None:
        forwarding = self._forwarding
        assert forwarding is not None
        send_for, send_proto, send_host, send_forwarded = forwarding
        address = client.encode("ascii", "replace")
        prior: Optional[RawHeaderListType]
        if send_for:
            prior = incoming.pop(b"x-forwarded-for", None) if incoming else None
            kept.append((b"X-Forwarded-For", _joined(prior, address)))
        if send_proto:
            prior = incoming.pop(b"x-forwarded-proto", None) if incoming else None
            kept.append((b"X-Forwarded-Proto", _joined(prior, None) if prior else self._proto))
        if send_host and host is not None:
            prior = incoming.pop(b"x-forwarded-host", None) if incoming else None
            kept.append((b"X-Forwarded-Host", _joined(prior, None) if prior else host))
        if send_forwarded:
            # RFC 7239 section 4: an IPv6 address is quoted and bracketed.
            node = b'"[%s]"' % address if b":" in address else address
            element = b"for=%s;proto=%s" % (node, self._proto)
            if host is not None:
                element += b";host=" + _forwarded_value(host)
            prior = incoming.pop(b"forwarded", None) if incoming else None
            kept.append((b"Forwarded", _joined(prior, element)))
        if incoming:
            # From a trusted proxy, and not among those this proxy sends:
            # passed on as they came.
            for fields in incoming.values():
                kept.extend(fields)

    def _failure_detail(self, pex: ProxyExchange, detail: str, known: bool = False) -> None:
        """An upstream failure's detail (which the client is not shown),
        for the operator: logged on the ``thor.http.proxy`` logger, at
        WARNING, at most 10 lines in 10 s (proxylog.FailureLog); at DEBUG
        when ``known`` (the upstream was down already: the pool's WARNING
        said so). The URI, the client's text, is escaped and cut to 200
        bytes."""
        uri = pex.uri
        args = (proxylog.escape(pex.method),
                proxylog.escape(uri[:200]) + ("..." if len(uri) > 200 else ""),
                pex.client_address or "-", detail)
        if known:
            log.debug("%s %s from %s: %s", *args)
        else:
            self._failure_log.warning("%s %s from %s: %s", *args)

    # -- CONNECT and tunnels ---------------------------------------------------------

    def _connect_tunnel(self, pex: ProxyExchange) -> None:
        if self.upstreams:
            pex.respond(405, "Method Not Allowed", [(b"Content-Type", b"text/plain")],
                        "CONNECT is not allowed on a reverse proxy.\n")
            return
        if not self._request_hooked(pex):
            return
        host, sep, port = pex.uri.rpartition(b":")
        host = host.strip(b"[]")
        if not sep or not port.isdigit() or not _valid_host(host):
            pex.respond(400, "Bad Request", [(b"Content-Type", b"text/plain")],
                        "CONNECT needs HOST:PORT.\n")
            return
        if int(port) not in self.connect_ports:
            pex.respond(403, "Forbidden", [(b"Content-Type", b"text/plain")],
                        "CONNECT to port %d is not allowed (the proxy's --connect-port / "
                        "connect_ports allows it).\n" % int(port))
            return
        # RFC 9113 8.5: over HTTP/2 the tunnel is the stream's DATA frames.
        stream = _StreamTunnel(self, pex) if pex.server_exchange.req_version == b"2" else None

        def connected(upstream: TcpConnection, upstream_buffered: bytes = b"") -> None:
            ex = pex.server_exchange
            if ex.finished:
                upstream.close()
                return
            pex._response_started = True
            pex.status = 200
            if stream is not None:
                try:
                    ex.response_start(200, "OK", [])
                except error.HttpError as exc:
                    self._report(exc)
                    upstream.close()
                    ex.abort()
                    pex._done()
                else:
                    stream.open(upstream, upstream_buffered)
                return
            try:
                ex.response_start(200, "Connection Established", [])
                ex.response_done([])
                downstream, buffered = ex.tunnel()
            except error.HttpError as exc:
                self._report(exc)
                upstream.close()
                ex.abort()
            else:
                self._splice(downstream, upstream, buffered, upstream_buffered)
            pex._done()

        def failed(errtype: type, err: Any) -> None:
            # The client gets a short reason; the detail is for the
            # operator's log.
            self._failure_detail(pex, "%s: %s" % (
                getattr(errtype, "__name__", errtype),
                os.strerror(err) if isinstance(err, int) and err > 0 else err,
            ))
            if errtype is _ChainRefused:
                pex._respond(502, "Bad Gateway", [], "The upstream proxy refused the tunnel.\n")
            elif errtype is PermissionError:
                pex._respond(403, "Forbidden", [], "That address is not allowed.\n")
            elif err == errno.ETIMEDOUT:
                pex._respond(504, "Gateway Timeout", [], "Connect timed out\n")
            elif errtype is socket.gaierror:
                pex._respond(502, "Bad Gateway", [], "Could not resolve the host name.\n")
            else:
                pex._respond(502, "Bad Gateway", [], "Could not connect.\n")
            if stream is not None:
                stream.failed()

        # The same address policy as for requests (HttpClient.check_ip):
        # a tunnel must not reach what a request may not.
        check_ip = getattr(self.client, "check_ip", None)
        via_proxy = getattr(self.client, "proxy", None)
        if via_proxy:
            # Requests go through the upstream proxy (--via-proxy): so do
            # tunnels, by a CONNECT of their own there. It carries Via, as
            # a forwarded request does (RFC 9110 7.6.3): the Via received,
            # then this proxy's, so that a chain leading back here is a
            # loop (508) at its next hop into this proxy.
            via = _joined([
                field for field in pex.headers if field[0].lower() == b"via"
                and not field[1].translate(None, _VIA_CHARS)
            ], self._via_field(pex.server_exchange.req_version)[1])
            _ChainedConnect(self.loop, via_proxy, host.decode("ascii"), int(port),
                            self.connect_timeout, check_ip, connected, failed, via)
            return
        tcp_client = TcpClient(self.loop)
        tcp_client.check_ip = check_ip
        tcp_client.on("connect", connected)
        tcp_client.on("connect_error", failed)
        tcp_client.connect(host.decode("ascii"), int(port), self.connect_timeout)

    def _splice(
        self, a: TcpConnection, b: TcpConnection, a_buffered: bytes, b_buffered: bytes
    ) -> None:
        tunnels = self._tunnels
        for tcp in (a, b):
            # An end of input is passed on as a half-close (splice): a
            # client that ends its output may still wait for the answer
            # (a half-close is not the close of RFC 9110 9.3.6).
            tcp.half_close = True
            tunnels.add(tcp)
            tcp.on("close", partial(tunnels.discard, tcp))
        self.open_tunnels += 1
        ended: List[bool] = []

        def tunnel_closed() -> None:
            # Either end's close ends the tunnel (splice closes the other).
            if not ended:
                ended.append(True)
                self.open_tunnels -= 1

        a.on("close", tunnel_closed)
        b.on("close", tunnel_closed)
        splice(a, b, a_buffered, b_buffered)
        if self.tunnel_timeout is not None:
            _TunnelWatch(a, b, self.loop, self.tunnel_timeout)

    # -- logging -------------------------------------------------------------------

    def _log(self, pex: ProxyExchange) -> None:
        """An exchange is over: count it, free its place on its upstream,
        and write its access-log line (to ``access_log`` when given, else
        to the access logger when it is enabled for INFO)."""
        duration = _time.monotonic() - pex.started
        metrics = self.metrics
        # Plain attributes: no lock (one thread), nothing allocated. Most
        # exchanges take less than the first bucket's bound or two: a
        # comparison or two; bisect for the rest.
        metrics.requests[(pex.status or 0) // 100] += 1
        if duration <= _FIRST_BOUND:
            metrics.durations[0] += 1
        elif duration <= _SECOND_BOUND:
            metrics.durations[1] += 1
        else:
            metrics.durations[bisect_left(DURATION_BUCKETS, duration)] += 1
        metrics.duration_sum += duration
        metrics.bytes_out += pex._bytes_out
        metrics.bytes_in += pex._bytes_in
        index = pex.upstream
        if index is not None:
            # Passive health, from the upstream's own status (not what a
            # response_hook made of it), unless its failure was counted.
            cex = pex.client_exchange
            status = (cex.res_status if cex is not None and not (pex._tried >> index) & 1
                      else None)
            tcp = (getattr(pex.server_exchange.connection, "tcp", None)
                   if pex.status == 101 else None)
            if tcp is not None and tcp in self._tunnels:
                # An upgraded connection (a WebSocket) holds its upstream
                # connection until the tunnel closes: in flight till then,
                # for least-conn.
                self.pool.done(index, status, release=False)
                tcp.on("close", partial(self.pool.release, index))
            else:
                self.pool.done(index, status)
        stream = self.access_log
        if stream is None:
            # What isEnabledFor would say, from logging's own cache of it
            # (emptied by logging whenever levels change), without the
            # call; the call when the cache has no answer.
            enabled = _ACCESS_ENABLED.get(logging.INFO)
            if enabled is None:
                enabled = access_logger.isEnabledFor(logging.INFO)
            if not enabled or access_logger.disabled:
                return
        ex = pex.server_exchange
        line = self._access_format.line(
            pex.client_address, ex.method, ex.uri, ex.req_version, pex.status,
            pex._bytes_out, pex._bytes_in, duration,
            self.upstreams[index] if index is not None else None, ex.req_hdrs,
        )
        if stream is None:
            access_logger.info(line)
            return
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:
            self._log_failed(exc)

    def _log_failed(self, exc: Exception) -> None:
        """The ``access_log`` file cannot be written (a closed pipe, a full
        disk): logging stops, with one warning on the proxy's logger;
        requests go on being served. (A traceback per request would only
        bury the cause.)"""
        self.access_log = None
        log.warning("access log failed (%s); logging stopped", exc)


def splice(
    a: TcpConnection, b: TcpConnection, a_buffered: bytes = b"", b_buffered: bytes = b""
) -> None:
    """Join two TCP connections into a two-way byte tunnel with backpressure.

    ``a_buffered`` is already-received data from ``a`` (written to ``b``
    first), and the same for ``b_buffered``. When one side cannot take more
    (its write buffer is above its high-water mark), reading from the other
    stops until it drains. When one side closes, the other is closed once
    what it was sent has been written. When one side's peer ends its
    output (``end``, for a connection with ``half_close``), the end is
    passed on as a half-close of the other side (``write_eof``), and what
    comes back still flows until that side ends too, which closes both;
    where the other side cannot half-close (TLS), both are closed once
    what each was sent has been written.
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


class _ChainRefused(Exception):
    """The upstream proxy would not open a tunnel (its status, or a bad
    answer)."""


class _ChainedConnect:
    """A CONNECT tunnel through the upstream proxy ``proxy_url``
    (``http://[user:password@]host:port``, HttpClient.proxy): TCP to it,
    ``CONNECT host:port`` (with ``Via: via`` when given), and its 2xx
    answer; then ``on_open(tcp, buffered)``. Else ``on_fail(errtype, err)``, as a TcpClient's
    connect_error (``_ChainRefused`` and a text for the proxy's refusal;
    OSError and ETIMEDOUT when ``timeout`` passes first)."""

    __slots__ = ("loop", "on_open", "on_fail", "request", "tcp", "received", "timer", "done")

    def __init__(
        self, loop: LoopBase, proxy_url: str | bytes, host: str, port: int,
        timeout: Optional[float], check_ip: Optional[Callable[[str], bool]],
        on_open: Callable[[TcpConnection, bytes], None], on_fail: Callable[[type, Any], None],
        via: bytes = b"",
    ) -> None:
        from urllib.parse import unquote

        self.loop, self.on_open, self.on_fail = loop, on_open, on_fail
        if isinstance(proxy_url, bytes):
            proxy_url = proxy_url.decode("ascii")
        parts = urlsplit(proxy_url)
        authority = ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)
        target = authority.encode("ascii")  # checked by _valid_host
        request = b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n" % (target, target)
        if via:
            request += b"Via: %s\r\n" % via
        if parts.username is not None:
            credentials = "%s:%s" % (unquote(parts.username), unquote(parts.password or ""))
            request += b"Proxy-Authorization: Basic %s\r\n" % base64.b64encode(
                credentials.encode("utf-8"))
        self.request = request + b"\r\n"
        self.tcp: Optional[TcpConnection] = None
        self.received = b""
        self.done = False
        self.timer: Optional[ScheduledEvent] = None
        if timeout:
            self.timer = loop.schedule(timeout, self._fail, OSError, errno.ETIMEDOUT)
        tcp_client = TcpClient(loop)
        tcp_client.check_ip = check_ip
        tcp_client.on("connect", self._connected)
        tcp_client.on("connect_error", self._fail)
        tcp_client.connect(parts.hostname or "", parts.port or 80, timeout)

    def _fail(self, errtype: type, err: Any) -> None:
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.delete()
        if self.tcp is not None:
            self.tcp.removeListener("close", self._closed)
            self.tcp.close()
        self.on_fail(errtype, err)

    def _connected(self, tcp: TcpConnection) -> None:
        if self.done:
            tcp.close()
            return
        self.tcp = tcp
        tcp.on("data", self._data)
        tcp.on("close", self._closed)
        tcp.pause(False)
        tcp.write(self.request)

    def _closed(self) -> None:
        self.tcp = None
        self._fail(_ChainRefused, "the upstream proxy closed the connection")

    def _data(self, data: bytes) -> None:
        received = self.received = self.received + data
        end = received.find(b"\r\n\r\n")
        if end < 0:
            if len(received) > 65536:
                self._fail(_ChainRefused, "the upstream proxy's answer is too long")
            return
        status_line = received[:received.find(b"\r\n")]
        parts = status_line.split(b" ", 2)
        if not (len(parts) >= 2 and parts[0][:7] == b"HTTP/1." and len(parts[1]) == 3
                and parts[1][:1] == b"2" and parts[1].isdigit()):
            self._fail(_ChainRefused, "the upstream proxy answered %r"
                       % status_line[:200].decode("latin-1"))
            return
        tcp = self.tcp
        assert tcp is not None
        self.done = True
        if self.timer is not None:
            self.timer.delete()
        tcp.removeListener("data", self._data)
        tcp.removeListener("close", self._closed)
        self.on_open(tcp, received[end + 4:])


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


class _StreamTunnel(EventEmitter):
    """CONNECT over HTTP/2 (RFC 9113 8.5): the DATA frames of the stream
    of ``pex`` and a TCP connection to the target, joined as a two-way
    byte tunnel with backpressure both ways (the stream's flow-control
    window for what the client sends while the target's write buffer is
    full; the TCP connection's reading while the stream's output waits).
    It is the server exchange's sink from the request on: the exchange
    stays paused (what the client sends waits in its window) until
    ``open()``.

    The target's close ends the stream (END_STREAM); the client's
    END_STREAM is a TCP half-close toward the target once what it sent is
    written (RFC 9113 8.5: END_STREAM is the FIN), after which what the
    target sends still comes back as DATA until it closes; a reset stream
    or a lost client connection closes the target.

    Emits: data(chunk) (either way), close() (the tunnel is over): for
    _TunnelWatch.
    """

    def __init__(self, proxy: HttpProxy, pex: ProxyExchange) -> None:
        EventEmitter.__init__(self)
        self.proxy = proxy
        self.pex = pex
        self.ex = pex.server_exchange
        self.tcp: Optional[TcpConnection] = None
        self.over = False
        self.ex.sink(self)
        self.ex.pause(True)

    def open(self, tcp: TcpConnection, buffered: bytes) -> None:
        """The target is connected (and sent ``buffered`` already)."""
        if self.over:
            tcp.close()
            return
        self.tcp = tcp
        proxy = self.proxy
        proxy._tunnels.add(tcp)
        proxy.open_tunnels += 1  # until _end (the metrics' gauge, as for _splice)
        tcp.on("data", self._from_target)
        tcp.on("pause", self._target_paused)
        tcp.on("close", self._target_closed)
        if buffered:
            self._from_target(buffered)
        if proxy.tunnel_timeout is not None:
            _TunnelWatch(tcp, self, proxy.loop, proxy.tunnel_timeout)  # type: ignore[arg-type]  # the surface it uses: on, close
        tcp.pause(False)
        self.ex.pause(False)

    def failed(self) -> None:
        """No tunnel (answered already): what the client sends is dropped."""
        self.over = True
        self.ex.pause(False)

    # -- the stream: the exchange's events (as its sink) -------------------------

    def request_body(self, chunk: bytes) -> None:
        self.pex._bytes_in += len(chunk)
        tcp = self.tcp
        if tcp is not None and not self.over:
            tcp.write(chunk)
            self.emit("data", chunk)

    def request_done(self, trailers: RawHeaderListType) -> None:
        tcp = self.tcp
        if tcp is not None:
            if tcp.can_write_eof():
                tcp.write_eof()  # its end (and close) ends the stream
            else:
                tcp.close()

    def pause(self, paused: bool) -> None:
        if self.tcp is not None and not self.over:
            self.tcp.pause(paused)

    def error(self, err: error.HttpError) -> None:
        if self.pex.status is None:
            self.pex.status = 499
        self.close()

    # -- the target ------------------------------------------------------------------

    def _from_target(self, data: bytes) -> None:
        ex = self.ex
        if ex.finished:
            return
        self.pex._bytes_out += len(data)
        try:
            ex.response_body(data)
        except error.HttpError as exc:
            self.proxy._report(exc)
            self.close()
            return
        self.emit("data", data)

    def _target_paused(self, paused: bool) -> None:
        if not self.over:
            self.ex.pause(paused)

    def _target_closed(self) -> None:
        ex = self.ex
        if not ex.finished:
            try:
                ex.response_done([])
            except error.HttpError as exc:
                self.proxy._report(exc)
                ex.abort()
        self._end()

    def close(self) -> None:
        """End the tunnel at once: the stream is reset unless it ended."""
        if not self.ex.finished:
            self.ex.abort()
        if self.tcp is not None:
            self.tcp.close()
        self._end()

    def _end(self) -> None:
        if not self.over or self.tcp is not None:
            tcp, self.tcp = self.tcp, None
            self.over = True
            if tcp is not None:
                self.proxy._tunnels.discard(tcp)
                self.proxy.open_tunnels -= 1
            self.emit("close")
            self.pex._done()


def _ended(ended: TcpConnection, other: TcpConnection) -> None:
    """``ended``'s peer will send nothing more: so ``other``'s peer is
    told. Its answer still flows back; ``other`` closes once its peer ends
    too (write_eof), and its close closes ``ended`` (splice)."""
    if other.can_write_eof():
        other.write_eof()
    else:
        other.close()
        ended.close()


def _with_host(headers: RawHeaderListType, authority: bytes) -> RawHeaderListType:
    """``headers`` with one Host field, saying ``authority``, in the place
    of the first (at the end if there was none); ``headers`` itself when it
    says that already (the usual case)."""
    fields: RawHeaderListType = []
    seen = False
    for field in headers:
        if field[0].lower() == b"host":
            if seen:
                continue
            seen = True
            if field[1].strip() != authority:
                field = (field[0], authority)
        fields.append(field)
    if not seen:
        fields.append((b"Host", authority))
    elif fields == headers:
        return headers
    return fields


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


_Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
_Head = Tuple[Tuple[bytes, bytes], ...]
# What a digest of no configured password is compared with (an unknown user).
_NO_DIGEST = hashlib.sha256(b"\0no such user").digest()
# RFC 9110 5.6.2 tchar: what a Forwarded value may hold unquoted.
_TCHAR = (b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
          b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _networks(values: Iterable[str], setting: str) -> Tuple[_Network, ...]:
    """CIDR networks (or single addresses) from ``values``; ValueError
    naming ``setting`` for one that is neither."""
    if isinstance(values, (str, bytes)):
        values = [values]  # one network, not its characters
    networks = []
    for value in values:
        text = value.decode("ascii") if isinstance(value, bytes) else str(value)
        try:
            network = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError as exc:
            raise ValueError(
                "%s: %r is not an address or CIDR network (%s)" % (setting, value, exc)
            )
        mapped = getattr(network.network_address, "ipv4_mapped", None)
        if mapped is not None and network.prefixlen >= 96:
            # IPv4-mapped (::ffff:10.0.0.0/104): the IPv4 network, which is
            # what a client address is matched as (see _address_in).
            network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
        networks.append(network)
    return tuple(networks)


def _address_in(address: str, networks: Tuple[_Network, ...]) -> bool:
    """Is the peer address ``address`` (text, as a socket gives it) in one
    of ``networks``? An IPv4 client of a dual-stack socket
    (``::ffff:10.0.0.1``) counts as its IPv4 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def _credentials(auth: Mapping[str, str] | Iterable[str]) -> Dict[bytes, bytes]:
    """user -> SHA-256 of the password, from a mapping or "user:password"
    strings (UTF-8, as browsers and curl send them)."""
    pairs: Iterable[Tuple[str, str]]
    if isinstance(auth, Mapping):
        pairs = auth.items()
    else:
        if isinstance(auth, (str, bytes)):
            auth = [auth]
        pairs = []
        for entry in auth:
            if isinstance(entry, bytes):
                entry = entry.decode("utf-8")
            user, sep, password = entry.partition(":")
            if not sep:
                raise ValueError("auth: %r is not USER:PASSWORD" % user)
            pairs.append((user, password))
    accounts = {}
    for user, password in pairs:
        if not user or ":" in user:
            raise ValueError("auth: the user name %r is empty or has a colon" % user)
        accounts[user.encode("utf-8")] = hashlib.sha256(password.encode("utf-8")).digest()
    return accounts


def read_auth_file(path: str) -> List[str]:
    """The USER:PASSWORD lines of the file ``path`` (UTF-8; blank lines and
    lines starting with # are skipped), for ``HttpProxy(auth=...)``. White
    space at the end of a line is part of its password (the command line
    warns of it)."""
    entries = []
    # utf-8-sig: a byte order mark (as Windows editors save UTF-8) is not
    # part of the first user name.
    with open(path, encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if ":" not in line:
                raise ValueError("%s line %d: not USER:PASSWORD" % (path, number))
            entries.append(line)
    return entries


# What an HTTP/2 request's authority may hold to become a forward proxy's
# target: a host (reg-name, IPv4, bracketed IPv6) and a port.
_AUTHORITY_CHARS = (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    b"-._~!$&'()*+,;=:[]")
# What a CONNECT target's host may hold: RFC 3986 reg-name characters, the
# colons of an IPv6 literal and the "%" of its zone (removed by translate).
_HOST_CHARS = (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
               b"-._~!$&'()*+,;=:%")
# What a received Via value may hold to be written on by the proxy itself
# (in a chained CONNECT): field-vchar, SP and HTAB; no CR, LF or NUL.
_VIA_CHARS = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\t"


def _valid_host(host: bytes) -> bool:
    """Is ``host`` (a CONNECT target's, without brackets) an IPv6 literal,
    or a name of labels of 1 to 63 characters (a final dot allowed) in the
    characters a URI allows? (Others could not be resolved, nor written
    to an upstream proxy: the idna codec refuses them.)"""
    if not host or len(host) > 254 or host.translate(None, _HOST_CHARS):
        return False
    if b":" in host:
        return True  # an address: getaddrinfo judges it
    labels = host[:-1] if host[-1:] == b"." else host
    return all(0 < len(label) < 64 for label in labels.split(b"."))


def _joined(prior: Optional[RawHeaderListType], value: Optional[bytes]) -> bytes:
    """The values of the fields ``prior``, then ``value``, as one list."""
    if not prior:
        return value or b""
    values = [field[1].strip() for field in prior]
    if value is not None:
        values.append(value)
    return b", ".join(v for v in values if v)


def _forwarded_value(value: bytes) -> bytes:
    """``value`` as a Forwarded parameter value: a token, or a quoted
    string (RFC 7239 section 4; a host with a port has a colon)."""
    if value and not value.translate(None, _TCHAR):
        return value
    return b'"%s"' % value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')


def _names_us(value: bytes, name: bytes) -> bool:
    """Does the Via field value ``value`` list ``name`` (lower-case) as the
    received-by of one of its entries (RFC 9110 7.6.3)?"""
    for entry in value.split(b","):
        parts = entry.split()
        if len(parts) >= 2 and parts[1].lower() == name:
            return True
    return False


def _short_reason(err: error.HttpError) -> str:
    """What the client is told of an upstream failure: its kind, not its
    detail."""
    if isinstance(err, error.QueueTimeoutError):
        return "no connection to the upstream became free in time"
    if isinstance(err, error.ConnectTimeoutError):
        return "connecting to the upstream timed out"
    if isinstance(err, error.ReadTimeoutError):
        return "the upstream did not answer in time"
    if isinstance(err, error.SendTimeoutError):
        return "the upstream did not read the request in time"
    if isinstance(err, error.AccessError):
        return "the upstream's address is not allowed"
    if isinstance(err, error.DnsError):
        return "the upstream's host name could not be resolved"
    if isinstance(err, error.ConnectionClosedError):
        return "the upstream closed the connection"
    if isinstance(err, error.ConnectError):
        if (err.detail or "").startswith("SSL"):
            return "TLS with the upstream failed"
        return "could not connect to the upstream"
    if isinstance(err, error.TransferCodeError):
        # Its detail names the codings (tokens, checked by the parser or
        # the proxy): nothing secret, and what the client needs to know.
        return "the upstream's transfer coding cannot be decoded (%s)" % (err.detail,)
    if isinstance(err, error.PeerError):
        return "the upstream's response was invalid"
    return "the upstream exchange failed"


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


class _ProxyServer(HttpServer):
    """The proxy's HttpServer, serving HTTP/2 as the proxy's ``http2``
    says (set before HttpServer.__init__, which reads it for ALPN)."""

    def __init__(
        self, host: str, port: int, loop: LoopBase, *, reuse_port: bool = False,
        tls_context: Optional[ssl.SSLContext] = None, sock: Optional[socket.socket] = None,
        http2: bool = True,
    ) -> None:
        self.http2 = http2
        HttpServer.__init__(self, host, port, loop, tls_context=tls_context,
                            reuse_port=reuse_port, sock=sock)


class _ServerOnSocket(_ProxyServer):
    """An HttpServer on a listening socket that it did not make (a
    supervisor's, shared by its workers)."""

    def __init__(
        self, sock: socket.socket, loop: LoopBase, tls_context: Optional[ssl.SSLContext],
        http2: bool = True,
    ) -> None:
        host, port = sock.getsockname()[:2]
        _ProxyServer.__init__(self, host, port, loop, tls_context=tls_context, sock=sock,
                              http2=http2)


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


def _wait(value: str) -> float:
    """A command-line wait (--down-time): seconds, 0 for none (0.0, not
    _seconds's None: it is added to a time)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):  # also NaN
        import argparse

        raise argparse.ArgumentTypeError("a number of seconds (0 for none): %r" % value)
    return seconds


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


def _say(message: str, level: int = logging.WARNING) -> None:
    """A line for the operator, on the proxy's logger (which the command
    line sends to stderr or --log-file). A "WARNING: " the message starts
    with is said by the line's level already."""
    if message.startswith("WARNING: "):
        message = message[9:]
    log.log(level, message)


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
    parser.add_argument("--access-log", nargs="?", const="-", default=None, metavar="FILE",
                        help="write one line per exchange to FILE (appended to), or to "
                        "stdout when no FILE is given (see --access-log-format)")
    parser.add_argument("--connect-port", action="append", type=int, default=None,
                        metavar="PORT", help="a port CONNECT may reach, besides 443 "
                        "(repeatable)")
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
    # issue 13: forwarding, TLS, access
    parser.add_argument("--forwarded", default=None, metavar="FIELDS",
                        help="the forwarding fields to add to requests, comma-separated, "
                        "of %s; or all, or none (default: all in reverse mode, none in "
                        "forward mode)" % ", ".join(FORWARDING_FIELDS))
    parser.add_argument("--trusted-proxy", action="append", default=[], metavar="CIDR",
                        help="a proxy (address or network) whose forwarding fields are "
                        "kept and appended to; from other clients they are replaced "
                        "(repeatable)")
    parser.add_argument("--pseudonym", default=None, metavar="NAME",
                        help="this proxy's name in Via (default: thor- and 8 random hex "
                        "digits); a request whose Via has it already is a loop (508)")
    parser.add_argument("--tls-cert", default=None, metavar="FILE",
                        help="serve HTTPS with this certificate (PEM; the chain may follow)")
    parser.add_argument("--tls-key", default=None, metavar="FILE",
                        help="the private key of --tls-cert (default: in that file)")
    parser.add_argument("--no-http2", action="store_true",
                        help="serve HTTP/1.1 only: no ALPN h2 with --tls-cert, no "
                        "cleartext HTTP/2 (prior knowledge); by default clients may "
                        "use either")
    parser.add_argument("--upstream-http2", action="store_true",
                        help="offer HTTP/2 to https:// upstreams (ALPN h2); those that "
                        "take it carry many requests on one connection (default: "
                        "HTTP/1.1 to every upstream)")
    parser.add_argument("--upstream-ca", default=None, metavar="FILE",
                        help="also trust this CA (PEM) for https:// upstreams")
    parser.add_argument("--upstream-cert", default=None, metavar="FILE",
                        help="a client certificate to show https:// upstreams")
    parser.add_argument("--upstream-key", default=None, metavar="FILE",
                        help="the private key of --upstream-cert (default: in that file)")
    parser.add_argument("--insecure-upstream", action="store_true",
                        help="do NOT check https:// upstreams' certificates (testing only)")
    parser.add_argument("--allow", action="append", default=None, metavar="CIDR",
                        help="serve clients from this network (repeatable; default: "
                        "loopback only for a forward proxy, everyone for a reverse proxy)")
    parser.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD",
                        help="require Basic authentication with these credentials "
                        "(repeatable; Proxy-Authorization for a forward proxy, "
                        "Authorization for a reverse proxy; other users of the machine "
                        "can see a command line: prefer --auth-file)")
    parser.add_argument("--auth-file", default=None, metavar="FILE",
                        help="as --auth, with one USER:PASSWORD per line")
    parser.add_argument("--via-proxy", default=None, metavar="URL",
                        help="send requests and CONNECT tunnels through this upstream "
                        "proxy (http://[USER:PASSWORD@]HOST:PORT)")
    # issue 13: upstreams, logging, admin
    parser.add_argument("--balance", default="round-robin", choices=sorted(BALANCES),
                        metavar="POLICY", help="how upstreams share requests: round-robin "
                        "(weighted by URL,weight=N) or least-conn (fewest requests in "
                        "flight per weight); default round-robin")
    parser.add_argument("--max-fails", type=int, default=HttpProxy.max_fails, metavar="N",
                        help="failures in a row (timeouts, broken connections, 5xx "
                        "other than 501/505) that mark an upstream down; a refused "
                        "connection marks it down at once (default %d)" % HttpProxy.max_fails)
    parser.add_argument("--down-time", type=_wait, default=HttpProxy.down_time,
                        metavar="SECONDS", help="how long a down upstream gets no requests "
                        "when there is no --health-check; 0: the next request tries it "
                        "(default %g)" % HttpProxy.down_time)
    parser.add_argument("--health-check", default=None, metavar="PATH",
                        help="probe each upstream with GET PATH every --health-interval "
                        "seconds: 2xx or 3xx is a pass; a down upstream comes back when "
                        "a probe passes")
    parser.add_argument("--health-interval", type=_seconds, default=HttpProxy.health_interval,
                        metavar="SECONDS", help="seconds between two probes of an upstream, "
                        "also the probe's timeout (default %g)" % HttpProxy.health_interval)
    parser.add_argument("--access-log-format", default="common", metavar="FORMAT",
                        help="common, combined (nginx's, then the duration in ms and the "
                        "upstream), json, or a template such as '{client} {request} "
                        "{status} {duration_ms}' (default common)")
    parser.add_argument("--log-file", default=None, metavar="FILE",
                        help="write the operator's log (start, stop, upstreams down and "
                        "up, retries, errors) to FILE instead of stderr")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (debug)")
    parser.add_argument("-q", "--quiet", action="count", default=0,
                        help="log less: warnings only (-qq: errors only)")
    parser.add_argument("--admin", default=None, metavar="HOST:PORT",
                        help="serve /metrics (Prometheus) and /healthz on this separate "
                        "listener")
    parser.add_argument("--version", action="version", version="thor %s" % thor.__version__)
    parser.add_argument("--worker-of", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        _split_listen(args.listen)
        for url in args.upstream:
            _upstream(upstream_spec(url)[0])
        AccessFormat(args.access_log_format)
    except ValueError as exc:
        parser.error(str(exc))
    if args.admin is not None:
        try:
            _split_listen(args.admin)
        except ValueError:
            parser.error("--admin takes HOST:PORT, e.g. 127.0.0.1:9100")
    if args.max_fails < 1:
        parser.error("--max-fails must be at least 1")
    if args.health_check is not None and not args.health_check.startswith("/"):
        parser.error("--health-check takes a path starting with /")
    if args.health_interval is None:
        parser.error("--health-interval must be more than 0")
    if args.admin is not None and args.workers is not None:
        parser.error("--admin does not work with --workers yet: each worker process has "
                     "its own counters")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    _operator_settings(parser, args)
    return parser, args


def _operator_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check the issue 13 flags, and make what they describe (TLS
    contexts, credentials) on ``args``; parser.error on a bad one, before
    a --workers supervisor starts anything."""
    if args.forwarded is None:
        args.forwarded_fields = None
    else:
        names = [n.strip().lower() for n in args.forwarded.split(",") if n.strip()]
        if names == ["all"]:
            names = list(FORWARDING_FIELDS)
        elif names == ["none"]:
            names = []
        bad = [n for n in names if n not in FORWARDING_FIELDS]
        if bad:
            parser.error("--forwarded: %s is none of %s, all, none"
                         % (", ".join(bad), ", ".join(FORWARDING_FIELDS)))
        args.forwarded_fields = names
    try:
        _networks(args.trusted_proxy, "--trusted-proxy")
        if args.allow is not None:
            _networks(args.allow, "--allow")
    except ValueError as exc:
        parser.error(str(exc))
    if args.pseudonym is not None and (
        not args.pseudonym or any(c in args.pseudonym for c in " ,\t\r\n()")
        or not args.pseudonym.isascii()
    ):
        parser.error("--pseudonym: one token (no spaces, commas or parentheses)")
    entries = list(args.auth)
    args.auth_file_entries = []
    if args.auth_file is not None:
        try:
            args.auth_file_entries = read_auth_file(args.auth_file)
        except (OSError, ValueError, UnicodeError) as exc:
            parser.error("--auth-file: %s" % (exc,))
        entries += args.auth_file_entries
    try:
        _credentials(entries)
        args.credentials = entries or None
    except ValueError as exc:
        parser.error("--auth: %s" % (exc,))
    if args.tls_key is not None and args.tls_cert is None:
        parser.error("--tls-key needs --tls-cert")
    if args.upstream_key is not None and args.upstream_cert is None:
        parser.error("--upstream-key needs --upstream-cert")
    import ssl

    try:
        args.server_tls = (tls_server_context(args.tls_cert, args.tls_key,
                                              http2=not args.no_http2)
                           if args.tls_cert is not None else None)
    except (OSError, ssl.SSLError) as exc:
        parser.error("--tls-cert/--tls-key: cannot load them: %s" % (exc,))
    try:
        if (args.upstream_ca or args.upstream_cert or args.insecure_upstream):
            args.upstream_tls = tls_upstream_context(
                args.upstream_ca, args.upstream_cert, args.upstream_key,
                insecure=args.insecure_upstream, http2=args.upstream_http2,
            )
        else:
            args.upstream_tls = None
    except (OSError, ssl.SSLError) as exc:
        parser.error("--upstream-ca/--upstream-cert/--upstream-key: cannot load them: %s"
                     % (exc,))
    if args.via_proxy is not None:
        parts = urlsplit(args.via_proxy)
        try:
            parts.port  # noqa: B018 -- validates the port
        except ValueError as exc:
            parser.error("--via-proxy: %s" % (exc,))
        if parts.scheme != "http" or not parts.hostname:
            parser.error("--via-proxy takes an http:// URL: http://[USER:PASSWORD@]HOST:PORT")


def _operator_warnings(args: argparse.Namespace, host: str) -> List[str]:
    """What the operator should hear about these settings at start."""
    warnings = []
    for entry in getattr(args, "auth_file_entries", ()):
        user, _, password = entry.partition(":")
        if password != password.rstrip():
            # Most likely left by an editor; but it may be meant.
            warnings.append("--auth-file: the password of %s ends in white space, which "
                            "is part of it" % user)
    if args.insecure_upstream:
        warnings.append(
            "--insecure-upstream: the certificates of https:// upstreams are "
            "NOT checked, so anyone on the way can read and change that traffic. "
            "For testing only."
        )
    if not args.upstream:
        if args.allow is None and not _loopback(host):
            warnings.append(
                "a forward proxy listening on %s, beyond loopback, without "
                "--allow: it serves loopback clients only (403 to the others); "
                "--allow CIDR admits a network (with --auth, to stay a closed proxy)"
                % (host or "every address")
            )
        elif args.allow is not None and args.credentials is None:
            wide = [a for a in args.allow if not all(
                net.is_loopback for net in _networks([a], "--allow")
            )]
            if wide:
                warnings.append(
                    "an open forward proxy: any client in %s may use it, "
                    "without authentication (see --auth)" % ", ".join(wide)
                )
    return warnings


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_server_context(
    certfile: str, keyfile: Optional[str] = None, http2: bool = True,
) -> ssl.SSLContext:
    """A TLS context for the proxy's listening side (``HttpProxy(
    tls_context=...)``): this certificate and key, ALPN ``h2`` and
    ``http/1.1`` (``http/1.1`` only when ``http2`` is false)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    return context


def tls_upstream_context(
    cafile: Optional[str] = None, certfile: Optional[str] = None,
    keyfile: Optional[str] = None, insecure: bool = False, http2: bool = False,
) -> ssl.SSLContext:
    """A TLS context for ``https://`` upstreams (``proxy.client.tls_context``):
    the system's trust store, plus the CA in ``cafile``; the client
    certificate ``certfile`` (and ``keyfile``) when given. ``insecure``
    checks no certificate at all: for testing only. ALPN offers
    ``http/1.1``, and ``h2`` first when ``http2`` (for
    ``upstream_http2``)."""
    import ssl

    context = ssl.create_default_context()
    if cafile is not None:
        context.load_verify_locations(cafile)
    if certfile is not None:
        context.load_cert_chain(certfile, keyfile)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    return context


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m thor.http.proxy``: run a forward or reverse proxy."""
    if argv is None:
        argv = sys.argv[1:]
    _, args = _arguments(argv)
    try:
        access_handler = proxylog.configure(args.verbose - args.quiet, args.log_file,
                                            args.access_log)
    except OSError as exc:
        sys.stderr.write("thor proxy: cannot open the log: %s\n" % (exc,))
        return 1
    host, port = _split_listen(args.listen)
    if args.worker_of is None:
        for warning in _operator_warnings(args, host):
            _say(warning)
    if args.workers is not None and args.worker_of is None:
        try:
            listening = _listen_socket(host, port)
        except OSError as exc:
            _say("cannot listen on %s: %s" % (args.listen, exc), logging.ERROR)
            return 1
        if args.pseudonym is None:
            # One Via pseudonym for all the workers: a request looping back
            # to another worker is a loop too.
            argv = argv + ["--pseudonym", "thor-" + secrets.token_hex(4)]
        return _Supervisor(argv, args.workers, listening).run()

    loop = thor.loop.default_loop()
    worker = args.worker_of is not None
    settings = {
        "%s_timeout" % name: getattr(args, "%s_timeout" % name)
        for name in ("connect", "read", "queue", "send", "body", "shutdown", "tunnel")
    }
    if args.pseudonym is not None:
        settings["via"] = args.pseudonym
    # issue 13: upstreams, logging
    settings.update(balance=args.balance, max_fails=args.max_fails, down_time=args.down_time,
                    health_check=args.health_check, health_interval=args.health_interval,
                    access_log_format=args.access_log_format,
                    http2=not args.no_http2, upstream_http2=args.upstream_http2)
    proxy_class = type("CommandLineProxy", (HttpProxy,), settings)
    try:
        sock = socket.socket(fileno=args.listen_fd) if args.listen_fd is not None else None
        proxy = proxy_class(
            host, port, loop, upstreams=args.upstream or None,
            connect_ports=[443] + args.connect_port if args.connect_port else None,
            sock=sock,
            tls_context=args.server_tls, forwarded=args.forwarded_fields,
            trusted_proxies=args.trusted_proxy, allow=args.allow, auth=args.credentials,
        )
        if args.upstream_tls is not None:
            proxy.client.tls_context = args.upstream_tls
        if args.via_proxy is not None:
            # HttpClient.proxy: the upstream proxy its requests go through.
            setattr(proxy.client, "proxy", args.via_proxy)
    except OSError as exc:
        _say("cannot listen on %s: %s" % (args.listen, exc), logging.ERROR)
        return 1
    # Exceptions a hook (or thor) raises go to the log, with their traceback.
    loop.exception_handler = proxylog.log_exception
    admin: Optional[AdminServer] = None
    if args.admin is not None:
        try:
            admin = proxy.serve_admin(*_split_listen(args.admin))
        except OSError as exc:
            _say("cannot listen on %s (--admin): %s" % (args.admin, exc), logging.ERROR)
            proxy.close()
            return 1
    outcome = {"signals": 0, "status": 0}

    def drain(why: str) -> None:
        log.info("%s: graceful shutdown; %d client connections open, cut after %s s",
                 why, len(proxy.server.connections), proxy.shutdown_timeout)
        proxy.graceful_shutdown()

    def force() -> None:
        log.warning("second signal: stopping at once")
        outcome["status"] = 1
        proxy.close()
        loop.stop()

    def stop_signal(signum: int, frame: Optional[FrameType]) -> None:
        # A signal handler runs between two bytecodes, maybe in the middle
        # of the loop's own work: hand over through the thread-safe (and
        # poller-waking) run_in_loop.
        outcome["signals"] += 1
        if outcome["signals"] == 1:
            loop.run_in_loop(drain, signal.Signals(signum).name)
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
        _ParentWatch(args.worker_of, loop, partial(drain, "the supervisor asked"))
    else:
        signal.signal(signal.SIGHUP, hangup)
    proxy.on("stop", loop.stop)

    def started() -> None:
        mode = ("reverse proxy to %s" % ", ".join(args.upstream)
                if args.upstream else "forward proxy")
        log.info("thor %s listening on %s:%s (pid %d)", mode, proxy.host, proxy.port,
                 os.getpid())
        if admin is not None:
            log.info("admin endpoint on http://%s:%d/ (/metrics, /healthz)",
                     admin.host if ":" not in admin.host else "[%s]" % admin.host, admin.port)

    proxy.on("start", started)
    loop.run()
    proxy.client.close()
    log.info("stopped")
    if access_handler is not None and access_handler.failed and args.access_log == "-":
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
            _say("supervisor (pid %d) starting %d workers" % (os.getpid(), self.count),
                 logging.INFO)
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
        _say("supervisor stopped: every worker has exited", logging.INFO)
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
                _say("%s: stopping %d workers gracefully" % (
                    signal.Signals(signum).name, len(self.workers)), logging.INFO)
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
                 "exchanges, then exit" % self.count, logging.INFO)

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
