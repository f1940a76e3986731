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

As RFC 9110 section 7.6 asks of an intermediary: hop-by-hop fields are
stripped both ways (``Connection`` and the fields it names, ``Keep-Alive``,
``Proxy-Connection``, ``TE``, ``Trailer``, ``Transfer-Encoding``,
``Upgrade`` unless upgrading: the server and client do this), a ``Via``
field is added both ways, ``Max-Forwards`` is honoured for OPTIONS and
TRACE, 1xx responses (other than 100, which the server sends itself) and
trailers are forwarded, and origin failures become 502 (refused, broken,
bad response) or 504 (timeout) responses. No exception escapes to the loop:
a failing hook is reported to ``loop.exception_handler`` and answered with
a 500 (or the connection is cut if the response had started).

Hooks: subclass ``HttpProxy`` and override ``request_hook``,
``response_hook``, ``request_body_hook``, ``response_body_hook`` (see their
docstrings and doc/proxy.md).

Run ``python -m thor.http.proxy --help`` for the command line.
"""

import errno
import os
import signal
import socket
import subprocess
import sys
import time as _time
from functools import partial
from urllib.parse import urlsplit

import thor.loop
from thor.events import EventEmitter
from thor.tcp import TcpClient
from thor.http import error
from thor.http.client import HttpClient
from thor.http.server import HttpServer

__all__ = ["HttpProxy", "ProxyExchange", "splice", "main"]

# How much of a request body (bytes) the proxy keeps so that it can send the
# request to another upstream when the first one refused the connection; a
# request with a longer body is answered 502 instead.
_RETRY_BODY_LIMIT = 65536
# Request fields the proxy does not pass on: Expect is answered by the
# server itself (it sends 100 Continue when the body is wanted).
_DROP_REQUEST = frozenset((b"expect",))


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

    def __init__(self, proxy, server_exchange):
        self.proxy = proxy
        self.server_exchange = server_exchange
        self.client_exchange = None
        self.method = server_exchange.method
        self.uri = server_exchange.uri
        self.headers = None
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

    def __repr__(self):
        return "<ProxyExchange %s %s>" % (
            self.method.decode("latin-1"), self.uri.decode("latin-1")
        )

    @property
    def data(self):
        """A dict for the application's own per-request state."""
        data = self._data
        if data is None:
            data = self._data = {}
        return data

    @property
    def client_address(self):
        """The downstream client's address (a str), or None."""
        tcp = getattr(self.server_exchange.connection, "tcp", None)
        return getattr(tcp, "host", None)

    def respond(self, status, phrase, headers, body=b""):
        """Answer the request from the proxy itself (from ``request_hook``):
        the request is not forwarded. ``body`` is bytes (or str, as UTF-8)."""
        self._respond(status, phrase, headers, body)

    def _respond(self, status, phrase, headers, body):
        ex = self.server_exchange
        if self._response_started or ex.finished:
            self._done()
            return
        self._response_started = True
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = [
            (n, v) for n, v in headers
            if (n.lower() if isinstance(n, bytes) else n.lower().encode("latin-1"))
            != b"content-length"
        ]
        headers.append((b"Content-Length", b"%d" % len(body)))
        try:
            ex.response_start(status, phrase, headers)
            self.status = int(status)
            if body:
                ex.response_body(body)
                self._bytes_out += len(body)
            ex.response_done([])
        except Exception as exc:
            self.proxy._report(exc)
            ex.abort()
        self._done()

    def _done(self):
        if not self._finished:
            self._finished = True
            self.proxy._log(self)


class _Downstream:
    """The server exchange's sink: its events, passed to the proxy. (A
    sink, not listeners: one call per exchange instead of five.)"""

    __slots__ = ("pex",)

    def __init__(self, pex):
        self.pex = pex

    def request_start(self, method, uri, headers):
        pex = self.pex
        pex.proxy._request_start(pex, headers)

    def request_body(self, chunk):
        pex = self.pex
        pex.proxy._request_body(pex, chunk)

    def request_done(self, trailers):
        pex = self.pex
        pex.proxy._request_done(pex, trailers)

    def pause(self, paused):
        # The downstream client is slow (or fast again): stop (or resume)
        # reading the origin's response.
        pex = self.pex
        pex._down_paused = paused
        cex = pex.client_exchange
        if cex is not None:
            cex.pause(paused)

    def error(self, err):
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

    def __init__(self, pex, cex):
        self.pex = pex
        self.cex = cex

    def response_nonfinal(self, status, phrase, headers):
        pex = self.pex
        if status != b"100":
            try:
                pex.server_exchange.response_nonfinal(status, phrase, headers)
            except Exception as exc:
                pex.proxy._report(exc)

    def response_start(self, status, phrase, headers):
        pex = self.pex
        pex.proxy._response_start(pex, status, phrase, headers)

    def response_body(self, chunk):
        pex = self.pex
        pex.proxy._response_body(pex, chunk)

    def response_done(self, trailers):
        pex = self.pex
        pex.proxy._response_done(pex, trailers)

    def pause(self, paused):
        # The origin is slow to take the request body: stop (or resume)
        # reading it from the downstream client.
        self.pex.server_exchange.pause(paused)

    def error(self, err):
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
    ``connect_timeout``, ``read_timeout`` and ``max_server_conn``, when
    omitted). ``reuse_port``: listen with SO_REUSEPORT (several processes
    sharing the port). ``tls_context``: serve TLS downstream.

    Settings (class variables, or set on an instance before requests
    arrive): ``via`` (the Via pseudonym, "thor"), ``down_time`` (seconds an
    upstream that refused a connection is skipped), ``connect_ports``,
    ``connect_timeout``, ``read_timeout``, ``max_server_conn`` (connections
    per origin).
    """

    connect_ports = (443,)
    via = "thor"
    down_time = 10.0
    connect_timeout = 10
    read_timeout = 60
    max_server_conn = 100

    def __init__(self, host="127.0.0.1", port=8080, loop=None, *, upstreams=None,
                 connect_ports=None, access_log=None, client=None, reuse_port=False,
                 tls_context=None):
        EventEmitter.__init__(self)
        self.loop = loop or thor.loop._loop
        self.upstreams = [_upstream(u) for u in (upstreams or ())]
        self._next_upstream = 0
        self._down_until = [0.0] * len(self.upstreams)
        if connect_ports is not None:
            self.connect_ports = frozenset(int(p) for p in connect_ports)
        self.access_log = access_log
        self._log_second = None
        self._log_stamp = ""
        if client is None:
            client = HttpClient(self.loop)
            client.connect_timeout = self.connect_timeout
            client.read_timeout = self.read_timeout
            client.max_server_conn = self.max_server_conn
            # A kept-alive upstream connection that the origin closed is
            # retried at once (for idempotent requests), not after a delay.
            client.retry_delay = 0
        self.client = client
        self.server = HttpServer(
            host, port, self.loop, reuse_port=reuse_port, tls_context=tls_context
        )
        self.host = self.server.host
        self.port = self.server.port
        self.server.on("start", self._on_start)
        self.server.on("stop", self._on_stop)
        self.server.on("exchange", self._on_exchange)
        cls = type(self)
        self._rewrites_request = cls.request_body_hook is not HttpProxy.request_body_hook
        self._rewrites_response = cls.response_body_hook is not HttpProxy.response_body_hook
        self._via = {}
        self._draining = False

    def _on_start(self):
        self.emit("start")

    def _on_stop(self):
        self.emit("stop")

    def close(self):
        """Stop at once: stop listening, cut every downstream connection,
        close idle upstream ones."""
        self.server.close()
        self.client.close()

    shutdown = close

    def graceful_shutdown(self):
        """Stop accepting; exchanges in flight finish; then 'stop'. Calling
        it again does nothing."""
        if not self._draining:
            self._draining = True
            self.server.graceful_shutdown()

    # -- hooks -----------------------------------------------------------------

    def request_hook(self, pex):
        """Called with each ProxyExchange before its request goes out. Change
        ``pex.method``, ``pex.uri``, ``pex.headers``, or call ``pex.respond()``
        to answer it here. For CONNECT, ``pex.uri`` is ``host:port`` (checked
        against ``connect_ports`` after the hook). The default does nothing."""

    def response_hook(self, pex, status, phrase, headers):
        """Called with the origin's response head (status and phrase bytes,
        headers a list of (name, value) tuples); return the
        ``(status, phrase, headers)`` to send on. The default passes it on."""
        return status, phrase, headers

    def request_body_hook(self, pex, chunk):
        """Return the bytes to forward for a chunk of the request body (b""
        to hold it back); called with ``chunk=None`` at the end of the body,
        when anything returned is sent last. Overriding this makes the
        proxy drop the request's Content-Length (the body is re-framed)."""
        return chunk or b""

    def response_body_hook(self, pex, chunk):
        """As request_body_hook, for the response body (Content-Length is
        dropped from the response head when this is overridden)."""
        return chunk or b""

    # -- plumbing: the request -------------------------------------------------

    def _on_exchange(self, server_exchange):
        server_exchange.sink(_Downstream(ProxyExchange(self, server_exchange)))

    def _request_start(self, pex, headers):
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
                        uri = (parts.path or "/").encode("ascii") + (
                            b"?" + parts.query.encode("ascii") if parts.query else b""
                        )
                    except (ValueError, UnicodeError):
                        pex.respond(400, "Bad Request", [], "Bad request target\n")
                        return
            index = self._pick_upstream()
            pex.upstream = index
            pex.uri = self.upstreams[index] + uri
        elif not (uri[:7].lower() == b"http://" or uri[:8].lower() == b"https://"):
            pex.respond(400, "Bad Request", [(b"Content-Type", b"text/plain")],
                        "This is a forward proxy: requests need an absolute URL.\n")
            return
        ex = pex.server_exchange
        upgrade = has_upgrade = False
        max_forwards = None
        kept = []
        for field in headers:
            lower = field[0].lower()
            if lower in _DROP_REQUEST:
                continue
            if lower == b"connection":
                if b"upgrade" in field[1].lower():
                    upgrade = True
            elif lower == b"upgrade":
                has_upgrade = True
            elif lower == b"max-forwards" and (method == b"OPTIONS" or method == b"TRACE"):
                max_forwards = field[1].strip()
                continue
            kept.append(field)
        if upgrade:
            pex._upgrade = True  # keep Upgrade; the client adds Connection
        elif has_upgrade:
            # Connection may come after Upgrade: only now is it known to go.
            kept = [field for field in kept if field[0].lower() != b"upgrade"]
        if max_forwards is not None:
            # RFC 9110 7.6.2: the last hop answers; the others count down.
            if not max_forwards.isdigit():
                pex.respond(400, "Bad Request", [], "Bad Max-Forwards\n")
                return
            left = int(max_forwards)
            if left == 0:
                if method == b"TRACE":
                    echo = b"%s %s HTTP/%s\r\n" % (method, ex.uri, ex.req_version) + b"".join(
                        name + b": " + value + b"\r\n" for name, value in headers
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

    def _via_value(self, version):
        via = self._via.get(version)
        if via is None:
            name = self.via
            if isinstance(name, str):
                name = name.encode("latin-1")
            # RFC 9110 7.6.3: the received protocol, then our pseudonym.
            via = self._via[version] = b"%s %s" % (version, name)
        return via

    def _forward(self, pex):
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

    def _request_body(self, pex, chunk):
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

    def _request_done(self, pex, trailers):
        pex._req_done = True
        pex._trailers = trailers
        cex = pex.client_exchange
        if cex is None or pex._finished:
            return
        try:
            self._finish_request(pex, cex)
        except (ValueError, TypeError) as exc:
            self._hook_failed(pex, exc)

    def _finish_request(self, pex, cex):
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

    def _response_start(self, pex, status, phrase, headers):
        if status == b"101" and not pex._upgrade:
            pex.client_exchange.abort()
            self._upstream_error(pex, error.StartLineError("101 response to a request without Upgrade"))
            return
        if self._rewrites_response:
            headers = [(n, v) for n, v in headers if n.lower() != b"content-length"]
        else:
            headers = list(headers)
        headers.append((b"Via", self._via_value(b"1.1")))
        try:
            status, phrase, headers = self.response_hook(pex, status, phrase, headers)
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
            pex.client_exchange.pause(True)
        try:
            pex.status = int(status)
            ex.response_start(status, phrase, headers)
        except Exception as exc:
            # What the hook returned (or, rarely, the origin sent) cannot be
            # sent on.
            pex._response_started = False
            self._hook_failed(pex, exc)

    def _response_body(self, pex, chunk):
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

    def _response_done(self, pex, trailers):
        if pex._finished:
            return
        ex = pex.server_exchange
        if pex.status == 101:
            try:
                ex.response_done([])
                downstream, down_buffered = ex.tunnel()
                upstream, up_buffered = pex.client_exchange.tunnel()
            except error.HttpError as exc:
                self._report(exc)
                ex.abort()
                pex.client_exchange.abort()
            else:
                splice(downstream, upstream, down_buffered, up_buffered)
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

    def _upstream_error(self, pex, err):
        if pex._finished:
            return
        index = pex.upstream
        if index is not None and _refused(err):
            self._down_until[index] = _time.monotonic() + self.down_time
            if not pex._response_started and pex._kept_size <= _RETRY_BODY_LIMIT:
                retry = self._pick_upstream(avoid=index)
                if retry is not None:
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
        if isinstance(err, (error.ReadTimeoutError, error.ConnectTimeoutError)):
            status, phrase = 504, "Gateway Timeout"
        else:
            status, phrase = 502, "Bad Gateway"
        pex._respond(status, phrase, [(b"Content-Type", b"text/plain")],
                     "%s %s: %s\n" % (status, phrase, err))

    def _hook_failed(self, pex, exc):
        self._report(exc)
        if pex.client_exchange is not None:
            pex.client_exchange.abort()
        if pex._response_started:
            pex.server_exchange.abort()
            pex._done()
        else:
            pex._respond(500, "Internal Server Error", [], "")

    def _report(self, exc):
        self.loop.exception_handler(self.loop, exc, self)

    def _pick_upstream(self, avoid=None):
        """The next upstream that is not marked down (round-robin). With
        ``avoid``, None when there is no other; without, when every
        upstream is marked down the next one is tried anyway."""
        count = len(self.upstreams)
        down = self._down_until
        now = _time.monotonic()
        for _ in range(count):
            index = self._next_upstream
            self._next_upstream = (index + 1) % count
            if index != avoid and down[index] <= now:
                return index
        if avoid is not None:
            return None
        index = self._next_upstream
        self._next_upstream = (index + 1) % count
        return index

    # -- CONNECT -----------------------------------------------------------------

    def _connect_tunnel(self, pex):
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

        def connected(upstream):
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
                splice(downstream, upstream, buffered, b"")
            pex._done()

        def failed(errtype, err):
            if err == errno.ETIMEDOUT:
                pex._respond(504, "Gateway Timeout", [], "Connect timed out\n")
            else:
                pex._respond(502, "Bad Gateway", [], "Could not connect: %s\n" % (err,))

        tcp_client.on("connect", connected)
        tcp_client.on("connect_error", failed)
        tcp_client.connect(host.decode("latin-1"), int(port), self.connect_timeout)

    # -- logging -------------------------------------------------------------------

    def _log(self, pex):
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
            self._report(exc)


def splice(a, b, a_buffered=b"", b_buffered=b""):
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


def _ended(ended, other):
    other.close()
    ended.close()


def _refused(err):
    """Did the upstream refuse (or fail to accept) the connection, as
    opposed to closing one that was working? Only then is the request
    certainly unseen by the origin, so it may be resent elsewhere, and the
    upstream is marked down.

    HttpClient reports both as ConnectError; it says the second with
    "closed the connection" in the detail (there is no subclass for it)."""
    return isinstance(err, error.ConnectError) and "closed" not in str(err.detail or "")


def _upstream(url):
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


def _split_listen(value):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError("--listen takes HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


class _ParentWatch(thor.loop.EventSource):
    """The read end of a pipe whose write end a --workers parent holds: it
    becomes readable (EOF) when the parent is gone, however it died, and the
    worker then shuts down gracefully instead of running on orphaned."""

    def __init__(self, fd, loop, on_gone):
        thor.loop.EventSource.__init__(self, loop)
        self.on("fd_readable", self._gone)
        self.on("fd_close", self._gone)
        self.on("fd_error", self._gone)
        self._on_gone = on_gone
        self.register_fd(fd, "fd_readable")

    def _gone(self):
        self.unregister_fd()
        self._on_gone()


def main(argv=None):
    """``python -m thor.http.proxy``: run a forward or reverse proxy."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m thor.http.proxy",
        description="A streaming HTTP proxy. With no --upstream it is a forward "
        "proxy (try: curl -x http://127.0.0.1:8080 http://example.com/); with "
        "--upstream it is a reverse proxy / load balancer. SIGTERM or SIGINT "
        "stops it gracefully: requests in flight finish.",
    )
    parser.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                        help="where to listen (default 127.0.0.1:8080)")
    parser.add_argument("--upstream", action="append", default=[], metavar="URL",
                        help="origin URL for reverse mode (repeat for round-robin)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="processes sharing the listening port (SO_REUSEPORT; "
                        "default 1)")
    parser.add_argument("--access-log", action="store_true",
                        help="write one common-log-format line per exchange to stdout")
    parser.add_argument("--connect-port", action="append", type=int, default=None,
                        metavar="PORT", help="a port CONNECT may reach (repeatable; "
                        "default 443)")
    parser.add_argument("--worker-of", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        host, port = _split_listen(args.listen)
        for url in args.upstream:
            _upstream(url)
    except ValueError as exc:
        parser.error(str(exc))
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.workers > 1 and args.worker_of is None:
        return _run_workers(args, host, port)

    loop = thor.loop._loop
    worker = args.worker_of is not None
    try:
        proxy = HttpProxy(
            host, port, loop, upstreams=args.upstream or None,
            connect_ports=args.connect_port, reuse_port=worker,
            access_log=sys.stdout if args.access_log else None,
        )
    except OSError as exc:
        sys.stderr.write("thor proxy: cannot listen on %s: %s\n" % (args.listen, exc))
        return 1

    def graceful(signum=None, frame=None):
        # A signal handler runs between two bytecodes, maybe in the middle
        # of the loop's own work: hand over through the thread-safe (and
        # poller-waking) run_in_loop.
        loop.run_in_loop(proxy.graceful_shutdown)

    signal.signal(signal.SIGTERM, graceful)
    signal.signal(signal.SIGINT, graceful)
    if worker:
        _ParentWatch(args.worker_of, loop, proxy.graceful_shutdown)
    proxy.on("stop", loop.stop)

    def started():
        mode = ("reverse proxy to %s" % ", ".join(args.upstream)
                if args.upstream else "forward proxy")
        sys.stderr.write("thor %s listening on %s:%s (pid %d)\n" % (
            mode, host, proxy.port, os.getpid()))
        sys.stderr.flush()

    proxy.on("start", started)
    loop.run()
    proxy.client.close()
    return 0


def _run_workers(args, host, port):
    """Start ``args.workers`` processes that each listen on the port (with
    SO_REUSEPORT the kernel spreads connections over them), and wait.

    Each worker holds the read end of a pipe whose write end only this
    process has. On SIGTERM or SIGINT this process closes its end, and the
    workers see end-of-file and shut down gracefully; they do the same if
    this process dies in any other way. (A pipe rather than passing the
    signal on: a worker still starting up has no signal handler yet, but it
    finds the end-of-file as soon as it watches the pipe.)"""
    placeholder = None
    if port == 0:
        # Port 0 would give each worker a port of its own: pick one here, and
        # hold it (bound, not listening, so it gets no connections) while the
        # workers bind it too.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        placeholder = socket.socket(family, socket.SOCK_STREAM)
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        placeholder.bind((host, 0))
        port = placeholder.getsockname()[1]
    listen = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "thor.http.proxy", "--worker-of", str(read_end),
               "--listen", listen]
    for url in args.upstream:
        command += ["--upstream", url]
    for port in args.connect_port or ():
        command += ["--connect-port", str(port)]
    if args.access_log:
        command.append("--access-log")
    ends = [write_end]

    def stop_workers(signum, frame):
        if ends:
            os.close(ends.pop())

    signal.signal(signal.SIGTERM, stop_workers)
    signal.signal(signal.SIGINT, stop_workers)
    children = [subprocess.Popen(command, pass_fds=(read_end,)) for _ in range(args.workers)]
    os.close(read_end)
    status = 0
    for child in children:
        code = child.wait()
        status = status or (code if code > 0 else 128 - code if code < 0 else 0)
    stop_workers(None, None)
    if placeholder is not None:
        placeholder.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
