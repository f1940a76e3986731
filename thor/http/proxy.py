"""A streaming HTTP intermediary built on thor's public server and client.

``HttpProxy`` joins each server exchange to a client exchange and streams
both bodies with end-to-end backpressure: when the downstream client stops
reading, the read from the origin stops; when the origin stops reading,
the read from the client stops. Memory stays flat whatever the body sizes.

Modes:

- forward (no upstreams): requests in absolute form
  (``GET http://host/path HTTP/1.1``), and ``CONNECT host:port`` tunnels to
  the ports in ``connect_ports`` (443 by default);
- reverse (one or more upstream URLs): requests in origin form go to the
  upstreams in turn (round-robin); an upstream that refuses connections is
  skipped for ``down_time`` seconds.

In both modes, a request with ``Upgrade`` that the origin accepts with
``101 Switching Protocols`` becomes a two-way byte tunnel.

Hop-by-hop fields are stripped both ways (by the server and client), a
``Via`` field is added both ways, 1xx responses (other than 100, which the
server sends itself) and trailers are forwarded, and origin failures become
502 (refused, broken, bad response) or 504 (timeout) responses.

Hooks: subclass ``HttpProxy`` and override ``request_hook``,
``response_hook``, ``request_body_hook``, ``response_body_hook`` (see their
docstrings and doc/proxy.md).

Run ``python -m thor.http.proxy --help`` for the command line.
"""

import errno
import os
import signal
import subprocess
import sys
import time as _time

import thor.loop
from thor.events import EventEmitter, on
from thor.tcp import TcpClient
from thor.http import error
from thor.http.client import HttpClient
from thor.http.server import HttpServer

__all__ = ["HttpProxy", "ProxyExchange", "splice", "main"]

# Methods a proxy may resend to another upstream when the first refused it.
_RETRY_BODY_LIMIT = 65536


class ProxyExchange:
    """One request passing through the proxy; what the hooks see.

    Attributes the hooks may read and change before the request goes out:
    ``method``, ``uri`` (the full URL it is sent to), ``headers`` (list of
    (name, value) tuples). Read-only: ``server_exchange``, ``client_address``,
    ``status`` (once answered), ``started`` (monotonic time).
    ``data`` is a dict for the application's own per-request state.
    """

    __slots__ = (
        "proxy", "server_exchange", "client_exchange", "method", "uri", "headers",
        "client_address", "status", "started", "data", "_answered",
        "_response_started", "_body_sent", "_kept", "_kept_size", "_upstream",
        "_bytes_out", "_request_line", "_req_done", "_trailers", "_finished",
        "_upgrade", "_rewrite_request", "_rewrite_response",
    )

    def __init__(self, proxy, server_exchange):
        self.proxy = proxy
        self.server_exchange = server_exchange
        self.client_exchange = None
        self.method = server_exchange.method
        self.uri = server_exchange.uri
        self.headers = None
        tcp = server_exchange.connection.tcp
        self.client_address = getattr(tcp, "host", "-")
        self.status = None
        self.started = _time.monotonic()
        self.data = {}
        self._answered = False
        self._response_started = False
        self._body_sent = 0
        self._kept = []
        self._kept_size = 0
        self._upstream = None
        self._bytes_out = 0
        self._request_line = b"%s %s HTTP/%s" % (
            server_exchange.method, server_exchange.uri, server_exchange.req_version
        )
        self._req_done = False
        self._trailers = None
        self._finished = False
        self._upgrade = False
        self._rewrite_request = False
        self._rewrite_response = False

    def respond(self, status, phrase, headers, body=b""):
        """Answer the request from the proxy itself (from a hook): the request
        is not forwarded."""
        self._answered = True
        self._respond(status, phrase, headers, body)

    def _respond(self, status, phrase, headers, body):
        ex = self.server_exchange
        if self._response_started or ex.finished:
            return
        self._response_started = True
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.status = int(status)
        ex.response_start(status, phrase, list(headers) + [("Content-Length", str(len(body)))])
        if body:
            ex.response_body(body)
            self._bytes_out += len(body)
        ex.response_done([])
        self._done()

    def _done(self):
        if not self._finished:
            self._finished = True
            self.proxy._log(self)


class HttpProxy(EventEmitter):
    """An HTTP proxy listening on ``host``:``port``.

    Emits: start(), stop() (as its server does), exchange(ProxyExchange)
    (a request arrived, before the hooks run).

    ``upstreams``: origin URLs for reverse mode (None for a forward proxy).
    ``connect_ports``: ports CONNECT may reach (forward mode).
    ``via``: the Via field value added both ways. ``access_log``: a file
    object receiving one common-log-format line per exchange, or None.
    ``client``: the HttpClient to use (one is made, with ``client_settings``
    applied, when omitted).
    """

    connect_ports = (443,)
    via = b"1.1 thor"
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
            self.connect_ports = tuple(int(p) for p in connect_ports)
        self.access_log = access_log
        if client is None:
            client = HttpClient(self.loop)
            client.connect_timeout = self.connect_timeout
            client.read_timeout = self.read_timeout
            client.max_server_conn = self.max_server_conn
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

    def _on_start(self):
        self.emit("start")

    def _on_stop(self):
        self.emit("stop")

    def close(self):
        """Stop at once."""
        self.server.close()
        self.client.close()

    shutdown = close

    def graceful_shutdown(self):
        """Stop accepting; exchanges in flight finish; then 'stop'."""
        self.server.graceful_shutdown()

    # -- hooks -----------------------------------------------------------------

    def request_hook(self, pex):
        """Called with each ProxyExchange before its request goes out. Change
        ``pex.method``, ``pex.uri``, ``pex.headers``, or call ``pex.respond()``
        to answer it here. The default does nothing."""

    def response_hook(self, pex, status, phrase, headers):
        """Called with the origin's response head; return the
        ``(status, phrase, headers)`` to send on. The default passes it on."""
        return status, phrase, headers

    def request_body_hook(self, pex, chunk):
        """Return the bytes to forward for a chunk of the request body (b""
        to hold it back); called with ``chunk=None`` at the end of the body,
        when anything returned is sent last. Overriding this makes the
        proxy drop the request's Content-Length (the body is re-framed)."""
        return chunk or b""

    def response_body_hook(self, pex, chunk):
        """As request_body_hook, for the response body."""
        return chunk or b""

    # -- plumbing --------------------------------------------------------------

    def _on_exchange(self, server_exchange):
        pex = ProxyExchange(self, server_exchange)
        server_exchange.on("request_start", lambda m, u, h: self._request_start(pex, h))
        server_exchange.on("request_body", lambda chunk: self._request_body(pex, chunk))
        server_exchange.on("request_done", lambda trailers: self._request_done(pex, trailers))
        server_exchange.on("pause", lambda paused: self._downstream_paused(pex, paused))
        server_exchange.on("error", lambda err: self._downstream_error(pex, err))

    def _request_start(self, pex, headers):
        self.emit("exchange", pex)
        method = pex.method
        if method == b"CONNECT":
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
                        from urllib.parse import urlsplit

                        parts = urlsplit(uri.decode("ascii"))
                        uri = (parts.path or "/").encode("ascii") + (
                            b"?" + parts.query.encode("ascii") if parts.query else b""
                        )
                    except (ValueError, UnicodeDecodeError):
                        pex.respond(400, "Bad Request", [], "Bad request target\n")
                        return
            index = self._pick_upstream()
            pex._upstream = index
            pex.uri = self.upstreams[index] + uri
        elif not (uri[:7].lower() == b"http://" or uri[:8].lower() == b"https://"):
            pex.respond(400, "Bad Request", [("Content-Type", "text/plain")],
                        "This is a forward proxy: requests need an absolute URL.\n")
            return
        pex.headers = [
            (name, value) for name, value in headers if name.lower() not in (b"expect",)
        ]
        conn_tokens = _connection_tokens(headers)
        if b"upgrade" in conn_tokens:
            pex._upgrade = True  # keep Upgrade; the client adds Connection
        else:
            pex.headers = [(n, v) for n, v in pex.headers if n.lower() != b"upgrade"]
        pex.headers.append((b"Via", self.via))
        try:
            self.request_hook(pex)
        except Exception as exc:
            self._hook_failed(pex, exc)
            return
        if pex._answered:
            return
        self._forward(pex)

    def _forward(self, pex):
        cex = self.client.exchange()
        pex.client_exchange = cex
        headers = pex.headers
        if self._rewrites_request:
            headers = [(n, v) for n, v in headers if n.lower() != b"content-length"]
        cex.on("response_nonfinal", lambda s, p, h: self._nonfinal(pex, s, p, h))
        cex.on("response_start", lambda s, p, h: self._response_start(pex, s, p, h))
        cex.on("response_body", lambda chunk: self._response_body(pex, chunk))
        cex.on("response_done", lambda trailers: self._response_done(pex, trailers))
        cex.on("pause", pex.server_exchange.pause)
        cex.on("error", lambda err: self._upstream_error(pex, err))
        try:
            cex.request_start(pex.method, pex.uri, headers)
            for chunk in pex._kept:
                cex.request_body(chunk)
            if pex._req_done:
                cex.request_done(pex._trailers or [])
        except (ValueError, TypeError) as exc:
            cex.abort()
            pex._respond(400, "Bad Request", [], "Bad request: %s\n" % exc)

    def _request_body(self, pex, chunk):
        if self._rewrites_request:
            chunk = self.request_body_hook(pex, chunk)
            if not chunk:
                return
        if pex._upstream is not None and pex._kept_size <= _RETRY_BODY_LIMIT:
            pex._kept.append(chunk)
            pex._kept_size += len(chunk)
        cex = pex.client_exchange
        if cex is not None:
            cex.request_body(chunk)

    def _request_done(self, pex, trailers):
        pex._req_done = True
        pex._trailers = trailers
        cex = pex.client_exchange
        if cex is None:
            return
        if self._rewrites_request:
            tail = self.request_body_hook(pex, None)
            if tail:
                cex.request_body(tail)
        cex.request_done(trailers)

    def _nonfinal(self, pex, status, phrase, headers):
        if status != b"100":
            pex.server_exchange.response_nonfinal(status, phrase, headers)

    def _response_start(self, pex, status, phrase, headers):
        headers = list(headers)
        if status == b"101" and not pex._upgrade:
            self._upstream_error(pex, error.StartLineError("unexpected 101 response"))
            return
        if self._rewrites_response:
            headers = [(n, v) for n, v in headers if n.lower() != b"content-length"]
        headers.append((b"Via", self.via))
        try:
            status, phrase, headers = self.response_hook(pex, status, phrase, headers)
        except Exception as exc:
            self._hook_failed(pex, exc)
            return
        pex._response_started = True
        pex.status = int(status)
        pex.server_exchange.response_start(status, phrase, headers)

    def _response_body(self, pex, chunk):
        if self._rewrites_response:
            try:
                chunk = self.response_body_hook(pex, chunk)
            except Exception as exc:
                self._hook_failed(pex, exc)
                return
            if not chunk:
                return
        pex._bytes_out += len(chunk)
        pex.server_exchange.response_body(chunk)

    def _response_done(self, pex, trailers):
        ex = pex.server_exchange
        cex = pex.client_exchange
        if pex.status == 101:
            ex.response_done([])
            downstream, down_buffered = ex.tunnel()
            upstream, up_buffered = cex.tunnel()
            splice(downstream, upstream, down_buffered, up_buffered)
            pex._done()
            return
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
        pex._done()

    def _downstream_paused(self, pex, paused):
        cex = pex.client_exchange
        if cex is not None:
            cex.pause(paused)

    def _downstream_error(self, pex, err):
        cex = pex.client_exchange
        if cex is not None:
            cex.abort()
        pex.status = pex.status or 499
        pex._done()

    def _upstream_error(self, pex, err):
        index = pex._upstream
        if isinstance(err, error.ConnectError) and not isinstance(err, error.ConnectTimeoutError):
            if index is not None:
                self._down_until[index] = _time.monotonic() + self.down_time
                if (
                    not pex._response_started
                    and pex._kept_size <= _RETRY_BODY_LIMIT
                    and any(t <= _time.monotonic() for t in self._down_until)
                    and not getattr(err, "_after_request", False)
                ):
                    retry = self._pick_upstream(avoid=index)
                    if retry is not None and retry != index:
                        path = pex.uri[len(self.upstreams[index]):]
                        pex._upstream = retry
                        pex.uri = self.upstreams[retry] + path
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
        pex._respond(status, phrase, [("Content-Type", "text/plain")],
                     "%s %s: %s\n" % (status, phrase, err))

    def _hook_failed(self, pex, exc):
        self.loop.exception_handler(self.loop, exc, self)
        if pex.client_exchange is not None:
            pex.client_exchange.abort()
        if pex._response_started:
            pex.server_exchange.abort()
            pex._done()
        else:
            pex._respond(500, "Internal Server Error", [], "")

    def _pick_upstream(self, avoid=None):
        count = len(self.upstreams)
        now = _time.monotonic()
        for _ in range(count):
            index = self._next_upstream
            self._next_upstream = (index + 1) % count
            if index != avoid and self._down_until[index] <= now:
                return index
        if avoid is not None:
            return None
        # Every upstream is marked down: try the next one anyway.
        index = self._next_upstream
        self._next_upstream = (index + 1) % count
        return index

    # -- CONNECT -----------------------------------------------------------------

    def _connect_tunnel(self, pex):
        host, sep, port = pex.uri.rpartition(b":")
        host = host.strip(b"[]")
        if not sep or not port.isdigit() or not host or int(port) not in self.connect_ports:
            pex.respond(403, "Forbidden", [("Content-Type", "text/plain")],
                        "CONNECT to that port is not allowed.\n")
            return
        try:
            self.request_hook(pex)
        except Exception as exc:
            self._hook_failed(pex, exc)
            return
        if pex._answered:
            return
        tcp_client = TcpClient(self.loop)

        def connected(upstream):
            ex = pex.server_exchange
            if ex.finished:
                upstream.close()
                return
            pex._response_started = True
            pex.status = 200
            ex.response_start(200, "Connection Established", [])
            ex.response_done([])
            downstream, buffered = ex.tunnel()
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
        when = _time.strftime("%d/%b/%Y:%H:%M:%S +0000", _time.gmtime())
        log.write('%s - - [%s] "%s" %s %s\n' % (
            pex.client_address or "-", when,
            pex._request_line.decode("latin-1").replace('"', "%22"),
            pex.status or "-", pex._bytes_out or "-",
        ))
        log.flush()


def splice(a, b, a_buffered=b"", b_buffered=b""):
    """Join two TCP connections into a two-way byte tunnel with backpressure.

    ``a_buffered`` is already-received data from ``a`` (written to ``b``
    first), and the same for ``b_buffered``. When one side closes, the other
    is closed after what it was sent has been written.
    """
    if a_buffered:
        b.write(a_buffered)
    if b_buffered:
        a.write(b_buffered)
    a.on("data", b.write)
    b.on("data", a.write)
    # When one side cannot take more, stop reading from the other.
    a.on("pause", b.pause)
    b.on("pause", a.pause)
    a.on("close", b.close)
    b.on("close", a.close)
    a.pause(False)
    b.pause(False)


def _upstream(url):
    if isinstance(url, str):
        url = url.encode("ascii")
    url = url.rstrip(b"/")
    if not (url[:7].lower() == b"http://" or url[:8].lower() == b"https://"):
        raise ValueError("upstream must be an http:// or https:// URL: %r" % url)
    return url


def _connection_tokens(headers):
    tokens = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return tokens


def _split_listen(value):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("--listen takes HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv=None):
    """``python -m thor.http.proxy``: run a forward or reverse proxy."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m thor.http.proxy",
        description="A streaming HTTP proxy. With no --upstream it is a forward "
        "proxy (try: curl -x http://127.0.0.1:8080 http://example.com/); with "
        "--upstream it is a reverse proxy / load balancer.",
    )
    parser.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                        help="where to listen (default 127.0.0.1:8080)")
    parser.add_argument("--upstream", action="append", default=[], metavar="URL",
                        help="origin URL for reverse mode (repeat for round-robin)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="processes sharing the listening port (SO_REUSEPORT)")
    parser.add_argument("--access-log", action="store_true",
                        help="write one common-log-format line per exchange to stdout")
    parser.add_argument("--connect-port", action="append", type=int, default=None,
                        metavar="PORT", help="ports CONNECT may reach (default 443)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        host, port = _split_listen(args.listen)
        for url in args.upstream:
            _upstream(url)
    except ValueError as exc:
        parser.error(str(exc))
    if args.workers < 1:
        parser.error("--workers must be at least 1")

    if args.workers > 1 and not args.worker:
        return _run_workers(args)

    loop = thor.loop._loop
    try:
        proxy = HttpProxy(
            host, port, loop, upstreams=args.upstream or None,
            connect_ports=args.connect_port, reuse_port=args.worker,
            access_log=sys.stdout if args.access_log else None,
        )
    except OSError as exc:
        sys.stderr.write("thor proxy: cannot listen on %s: %s\n" % (args.listen, exc))
        return 1

    def graceful(signum, frame):
        loop.schedule(0, proxy.graceful_shutdown)

    signal.signal(signal.SIGTERM, graceful)
    signal.signal(signal.SIGINT, graceful)
    proxy.on("stop", loop.stop)

    @on(proxy, "start")
    def started():
        mode = "reverse proxy to %s" % ", ".join(args.upstream) if args.upstream else "forward proxy"
        sys.stderr.write("thor %s listening on %s:%s (pid %d)\n" % (
            mode, host, proxy.port, os.getpid()))
        sys.stderr.flush()

    loop.run()
    return 0


def _run_workers(args):
    """Start ``args.workers`` processes that share the port, and wait."""
    command = [sys.executable, "-m", "thor.http.proxy", "--worker", "--listen", args.listen]
    for url in args.upstream:
        command += ["--upstream", url]
    for port in args.connect_port or ():
        command += ["--connect-port", str(port)]
    if args.access_log:
        command.append("--access-log")
    children = [subprocess.Popen(command) for _ in range(args.workers)]

    def forward(signum, frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for child in children:
        status = child.wait() or status
    return status


if __name__ == "__main__":
    sys.exit(main())
