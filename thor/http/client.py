"""The HTTP/1.1 client: HttpClient, its connection pools, and its exchanges.

Connections are pooled per origin (scheme, host, port); at most
``max_server_conn`` are open to one origin and requests beyond that wait in
a queue. A connection carries one exchange at a time, and goes back to the
pool only when its response ended cleanly and nothing followed it; bytes
that arrive while it is idle, or beyond the end of a response, mean it
cannot be trusted and it is closed.

A request whose connection fails before any byte of its response arrived is
retried on a new connection (``retry_limit`` times, ``retry_delay`` apart)
when its method is idempotent and its body was small enough to keep; any
other failure is an ``error`` event.

Run ``python -m thor.http.client --help`` for the command line.
"""

import errno
import sys
import time as _time
from collections import deque
from urllib.parse import urlsplit

import thor.loop
from thor.events import EventEmitter, on
from thor.tcp import TcpClient
from thor.http import error
from thor.http.headers import (
    encode_field_name, encode_field_value, is_token, to_bytes_field, HOP_BY_HOP,
)
from thor.http.parser import HttpParser

__all__ = ["HttpClient", "HttpClientExchange"]

# RFC 9110 9.2.2: methods a client may repeat automatically.
IDEMPOTENT = frozenset(
    (b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE")
)
# Methods whose empty body is still announced with Content-Length: 0, as
# servers expect a length on them (RFC 9110 8.6).
_LENGTH_EXPECTED = frozenset((b"POST", b"PUT", b"PATCH"))
# The most request body kept in memory so that a request can be replayed.
_REPLAY_LIMIT = 65536
# Body bytes buffered before a connection exists before 'pause' is emitted.
_PRECONNECT_HIGH = 65536

_name_cache = {}


def _field_name(name):
    cached = _name_cache.get(name)
    if cached is None:
        raw = encode_field_name(name)
        cached = (raw, raw.lower())
        if len(_name_cache) < 512:
            _name_cache[name] = cached
    return cached


class HttpClient:
    """An HTTP/1.1 client, sharing a pool of idle connections.

    Settings are class variables; setting one on an instance works too:
    ``tcp_client_class``, ``tls_client_class``, ``connect_timeout`` (None),
    ``read_timeout`` (None), ``idle_timeout`` (60), ``retry_limit`` (2),
    ``retry_delay`` (0.5), ``max_server_conn`` (6), ``tls_context`` (None:
    the system's trust store, verification on).
    """

    tcp_client_class = TcpClient
    tls_client_class = None  # thor.tls.TlsClient, imported when first needed
    connect_timeout = None
    read_timeout = None
    idle_timeout = 60
    retry_limit = 2
    retry_delay = 0.5
    max_server_conn = 6
    tls_context = None
    parser_limits = {}

    def __init__(self, loop=None, idle_timeout=None):
        self.loop = loop or thor.loop._loop
        if idle_timeout is not None:
            self.idle_timeout = idle_timeout
        self._origins = {}

    def exchange(self):
        """Create a request/response exchange."""
        return HttpClientExchange(self)

    def close(self):
        """Close every idle pooled connection."""
        for origin in list(self._origins.values()):
            for conn in list(origin.idle):
                conn.close()

    # -- pooling -------------------------------------------------------------

    def _origin(self, key):
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(key)
        return origin

    def _acquire(self, exchange):
        """Give ``exchange`` a connection now, or queue it for one."""
        origin = self._origin(exchange._origin_key)
        while origin.idle:
            conn = origin.idle.pop()
            if conn.usable():
                conn.attach(exchange)
                return
            conn.close()
        if origin.count < self.max_server_conn:
            self._connect(origin, exchange)
        else:
            origin.queue.append(exchange)

    def _connect(self, origin, exchange):
        origin.count += 1
        scheme, host, port = origin.key
        if scheme == "https":
            tls_class = self.tls_client_class
            if tls_class is None:
                from thor.tls import TlsClient as tls_class
            tcp_client = tls_class(self.loop, tls_context=self.tls_context)
        else:
            tcp_client = self.tcp_client_class(self.loop)
        pending = _PendingConnect(self, origin, exchange)
        tcp_client.on("connect", pending.connected)
        tcp_client.on("connect_error", pending.failed)
        exchange._pending_connect = pending
        tcp_client.connect(host, port, self.connect_timeout)

    def _release(self, conn):
        """``conn`` finished an exchange cleanly: reuse it or pool it."""
        origin = conn.origin
        while origin.queue:
            exchange = origin.queue.popleft()
            if exchange._state != _DONE:
                conn.attach(exchange)
                return
        conn.go_idle()
        origin.idle.append(conn)

    def _connection_gone(self, conn):
        origin = conn.origin
        origin.count -= 1
        try:
            origin.idle.remove(conn)
        except ValueError:
            pass
        self._dequeue(origin)

    def _dequeue(self, origin):
        while origin.queue and origin.count < self.max_server_conn:
            exchange = origin.queue.popleft()
            if exchange._state != _DONE:
                self._connect(origin, exchange)
        if not origin.count and not origin.queue and not origin.idle:
            self._origins.pop(origin.key, None)


class _Origin:
    __slots__ = ("key", "idle", "count", "queue")

    def __init__(self, key):
        self.key = key
        self.idle = []
        self.count = 0
        self.queue = deque()


class _PendingConnect:
    """A connection being opened for an exchange."""

    __slots__ = ("client", "origin", "exchange", "cancelled")

    def __init__(self, client, origin, exchange):
        self.client = client
        self.origin = origin
        self.exchange = exchange
        self.cancelled = False

    def connected(self, tcp_conn):
        conn = _ClientConnection(self.client, self.origin, tcp_conn)
        exchange = self.exchange
        if exchange._pending_connect is self:
            exchange._pending_connect = None
        if self.cancelled or exchange._state == _DONE:
            self.client._release(conn)
        else:
            conn.attach(exchange)

    def failed(self, errtype, err):
        self.origin.count -= 1
        exchange = self.exchange
        if exchange._pending_connect is self:
            exchange._pending_connect = None
        if not self.cancelled and exchange._state != _DONE:
            if err == errno.ETIMEDOUT and errtype is OSError:
                exc = error.ConnectTimeoutError("connect timed out")
            else:
                exc = error.ConnectError("%s: %s" % (getattr(errtype, "__name__", errtype), err))
            exchange._fail(exc)
        self.client._dequeue(self.origin)


class _ClientConnection:
    """One pooled connection, its response parser and its timers."""

    __slots__ = (
        "client", "origin", "tcp", "parser", "exchange", "reused", "closed",
        "_deadline", "_timer", "_idle_since", "_release_pending", "_in_feed",
        "_paused",
    )

    def __init__(self, client, origin, tcp_conn):
        self.client = client
        self.origin = origin
        self.tcp = tcp_conn
        self.parser = HttpParser(self, False, **client.parser_limits)
        self.exchange = None
        self.reused = False
        self.closed = False
        self._deadline = None
        self._timer = None
        self._idle_since = None
        self._release_pending = False
        self._in_feed = False
        self._paused = False
        tcp_conn.on("data", self._on_data)
        tcp_conn.on("close", self._on_close)
        tcp_conn.on("pause", self._on_tcp_pause)
        tcp_conn.pause(False)

    def usable(self):
        return not self.closed and getattr(self.tcp, "tcp_connected", True)

    # -- timers --------------------------------------------------------------

    def _arm(self, timeout):
        if timeout is None:
            self._deadline = None
            return
        self._deadline = _time.monotonic() + timeout
        if self._timer is None:
            self._timer = self.client.loop.schedule(timeout, self._on_timer)

    def _on_timer(self):
        self._timer = None
        if self._deadline is None or self.closed:
            return
        remaining = self._deadline - _time.monotonic()
        if remaining > 0:
            self._timer = self.client.loop.schedule(remaining, self._on_timer)
            return
        exchange = self.exchange
        if exchange is None:
            self.close()  # idle too long
        elif self._paused:
            self._arm(self.client.read_timeout)  # the application is not reading
        else:
            self.exchange = None
            self.close()
            exchange._fail(error.ReadTimeoutError("no data for %s seconds" % self.client.read_timeout))

    # -- exchanges -----------------------------------------------------------

    def attach(self, exchange):
        self.exchange = exchange
        exchange._conn = self
        self.parser.expect_response(exchange.method)
        self._arm(self.client.read_timeout)
        exchange._connected()

    def go_idle(self):
        self.exchange = None
        self.reused = True
        if self._paused:
            self._paused = False
            self.tcp.pause(False)
        self._arm(self.client.idle_timeout)

    def write(self, data):
        if not self.closed:
            self.tcp.write(data)

    def pause(self, paused):
        if paused != self._paused and not self.closed:
            self._paused = paused
            self.tcp.pause(paused)
            if paused:
                self.parser.pause()
            elif not self._in_feed:
                self._in_feed = True
                try:
                    self.parser.resume()
                finally:
                    self._in_feed = False
                self._after_feed()
            else:
                self.parser.resume()

    # -- input -----------------------------------------------------------------

    def _on_data(self, data):
        if self.exchange is not None and self._deadline is not None:
            self._deadline = _time.monotonic() + self.client.read_timeout
        self._in_feed = True
        try:
            self.parser.feed(data)
        finally:
            self._in_feed = False
        self._after_feed()

    def _after_feed(self):
        if self._release_pending and not self.closed:
            self._release_pending = False
            self.client._release(self)

    def on_response_nonfinal(self, status, phrase, headers):
        exchange = self.exchange
        if exchange is not None:
            exchange._response_seen = True
            exchange._emit("response_nonfinal", status, phrase, headers)

    def on_response_head(self, status, phrase, headers):
        exchange = self.exchange
        if exchange is None:
            return
        exchange._response_seen = True
        exchange._switching = status == b"101" or (
            exchange.method == b"CONNECT" and status[:1] == b"2"
        )
        exchange.res_status = status
        exchange._emit("response_start", status, phrase, headers)

    def on_body(self, chunk):
        exchange = self.exchange
        if exchange is not None:
            exchange._emit("response_body", chunk)

    def on_message_done(self, trailers):
        exchange = self.exchange
        if exchange is None:
            return
        close = self.parser.close or exchange._request_close
        switching = exchange._switching
        if switching:
            self.parser.pause()
        elif not close and exchange._request_sent:
            self._release_pending = True
        self.exchange = None
        exchange._state = _DONE
        exchange._conn = None if not switching else self
        exchange._emit("response_done", trailers)
        if switching:
            if exchange._tunnelled is False:
                self.close()  # the application did not take the connection
            return
        if close or not exchange._request_sent:
            self._release_pending = False
            self.close()

    def on_request_head(self, *args):  # pragma: no cover
        raise AssertionError("a response parser never reports requests")

    def on_error(self, err):
        exchange = self.exchange
        self._release_pending = False
        self.exchange = None
        self.close()
        if exchange is not None:
            exchange._fail(err)

    def _on_tcp_pause(self, paused):
        exchange = self.exchange
        if exchange is not None and exchange._state != _DONE:
            exchange._output_paused(paused)

    # -- closing ---------------------------------------------------------------

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._deadline = None
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        self.tcp.removeListener("close", self._on_close)
        self.tcp.close()
        self.client._connection_gone(self)

    def _on_close(self):
        exchange = self.exchange
        if not self.closed:
            self.closed = True
            self._deadline = None
            if self._timer is not None:
                self._timer.delete()
                self._timer = None
            self.client._connection_gone(self)
        if exchange is None:
            return
        self._in_feed = True
        try:
            self.parser.finish()  # completes a close-delimited body, or fails
        finally:
            self._in_feed = False
        self.exchange = None
        if exchange._state == _DONE:
            return
        if not exchange._response_seen and exchange._replayable():
            exchange._retry()
            return
        exchange._fail(error.ConnectError("the server closed the connection"))

    def tunnel(self):
        self.closed = True
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        tcp = self.tcp
        tcp.removeListener("data", self._on_data)
        tcp.removeListener("close", self._on_close)
        tcp.removeListener("pause", self._on_tcp_pause)
        tcp.pause(True)
        self.client._connection_gone(self)
        return tcp, self.parser.leftover()


_NEW, _STARTED, _DONE = 0, 1, 2
_NO_FRAMING, _LENGTH, _CHUNKED = 0, 1, 2


class HttpClientExchange(EventEmitter):
    """One request and its response.

    Emits: response_nonfinal(status, phrase, headers) for each 1xx,
    response_start(status, phrase, headers), response_body(chunk),
    response_done(trailers), error(err) (a thor.http.error.HttpError; nothing
    follows it), pause(paused) (request body backpressure: stop calling
    request_body while paused).
    """

    def __init__(self, client):
        EventEmitter.__init__(self)
        self.client = client
        self.method = None
        self.uri = None
        self.req_hdrs = None
        self.res_status = None
        self._state = _NEW
        self._origin_key = None
        self._conn = None
        self._pending_connect = None
        self._head_fields = None
        self._framing = None
        self._length_left = None
        self._body = []  # request body not yet written
        self._body_size = 0
        self._kept = []  # request body kept for a replay
        self._kept_size = 0
        self._replay_ok = True
        self._req_done = False
        self._trailers = None
        self._request_sent = False
        self._request_close = False
        self._head_written = False
        self._response_seen = False
        self._switching = False
        self._tunnelled = False
        self._retries = 0
        self._paused_out = False
        self._input_paused = False
        self._failed = False
        self._upgrade = False

    def __repr__(self):
        return "<HttpClientExchange %r %r>" % (self.method, self.uri)

    # -- the request -----------------------------------------------------------

    def request_start(self, method, uri, headers):
        """Start the request (hop-by-hop fields in ``headers`` are dropped)."""
        if self._state != _NEW:
            raise error.StateError("request_start called twice")
        self._state = _STARTED
        self.method = method = _encode_method(method)
        if isinstance(uri, str):
            try:
                uri = uri.encode("ascii")
            except UnicodeEncodeError:
                uri = None
        self.uri = uri
        fields = []
        content_length = None
        tokens = None
        for name, value in headers:
            raw, lower = _field_name(name)
            value = encode_field_value(value)
            if lower in HOP_BY_HOP:
                if lower == b"connection":
                    tokens = (tokens or set()) | {
                        t.strip().lower() for t in value.split(b",")
                    }
                    if b"close" in tokens:
                        self._request_close = True
                elif lower == b"upgrade":
                    # Kept: asking for a protocol switch is the application's
                    # call; thor adds the matching Connection option.
                    self._upgrade = True
                    fields.append((raw, lower, value))
                continue
            if lower == b"host":
                continue  # the Host field comes from the URL
            if lower == b"content-length":
                length = value.strip()
                if not length.isdigit() or len(length) > 18:
                    raise error.BadHeaderError("Content-Length must be digits")
                if content_length is not None and int(length) != content_length:
                    raise error.BadHeaderError("conflicting Content-Length values")
                content_length = int(length)
                continue
            fields.append((raw, lower, value))
        if tokens:
            fields = [f for f in fields if f[1] not in tokens or f[1] == b"upgrade"]
        self.req_hdrs = [(raw, value) for raw, _, value in fields]
        if content_length is not None:
            self._framing = _LENGTH
            self._length_left = content_length
        try:
            scheme, host, port, target, authority = _parse_url(uri)
        except error.UrlError as exc:
            self._state = _DONE
            self.client.loop.schedule(0, self._emit_error, exc)
            return
        if method == b"CONNECT":
            target = authority
        self._origin_key = (scheme, host, port)
        self._head_fields = (target, authority, content_length)
        self.client._acquire(self)

    def request_body(self, chunk):
        """Send a chunk of the request body (bytes, or str as UTF-8)."""
        if self._state == _NEW or self._req_done:
            raise error.StateError("request_body outside a request")
        if chunk.__class__ is not bytes:
            chunk = _to_bytes(chunk)
        if not chunk:
            return
        if self._framing is None:
            self._framing = _CHUNKED
        if self._framing == _LENGTH:
            left = self._length_left - len(chunk)
            if left < 0:
                raise error.BodyLengthError("request body longer than its Content-Length")
            self._length_left = left
            data = chunk
        else:
            data = b"%x\r\n%b\r\n" % (len(chunk), chunk)
        if self._state == _DONE:
            return
        self._keep(chunk)
        conn = self._conn
        if conn is not None:
            self._write_head()
            conn.write(data)
        else:
            self._body.append(data)
            self._body_size += len(data)
            if self._body_size > _PRECONNECT_HIGH and not self._paused_out:
                self._output_paused(True)

    def request_done(self, trailers=None):
        """Finish the request. ``trailers`` go out with a chunked body."""
        if self._state == _NEW or self._req_done:
            raise error.StateError("request_done outside a request")
        if self._framing == _LENGTH and self._length_left:
            raise error.BodyLengthError(
                "request body %d bytes shorter than its Content-Length" % self._length_left
            )
        self._req_done = True
        self._trailers = trailers
        if self._framing is None:
            self._framing = _NO_FRAMING
        if self._state == _DONE:
            return
        conn = self._conn
        if conn is not None:
            self._write_head()
            self._write_end(conn)

    def _keep(self, chunk):
        if self._replay_ok:
            self._kept_size += len(chunk)
            if self._kept_size > _REPLAY_LIMIT:
                self._replay_ok = False
                self._kept = []
            else:
                self._kept.append(chunk)

    def _build_head(self):
        target, authority, content_length = self._head_fields
        lines = [self.method, b" ", target, b" HTTP/1.1\r\nHost: ", authority, b"\r\n"]
        for raw, value in self.req_hdrs:
            lines.append(raw + b": " + value + b"\r\n")
        framing = self._framing
        if framing == _LENGTH:
            lines.append(b"Content-Length: %d\r\n" % content_length)
        elif framing == _CHUNKED:
            lines.append(b"Transfer-Encoding: chunked\r\n")
        elif self.method in _LENGTH_EXPECTED:
            lines.append(b"Content-Length: 0\r\n")
        if self._upgrade:
            lines.append(b"Connection: upgrade\r\n")
        elif self._request_close:
            lines.append(b"Connection: close\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def _write_head(self):
        if not self._head_written:
            self._head_written = True
            self._conn.write(self._build_head())

    def _write_end(self, conn):
        if self._framing == _CHUNKED:
            trailers = self._trailers
            if trailers:
                lines = [b"0\r\n"]
                for name, value in trailers:
                    raw, lower = _field_name(name)
                    if lower in HOP_BY_HOP or lower in (b"content-length", b"host"):
                        continue
                    lines.append(raw + b": " + encode_field_value(value) + b"\r\n")
                lines.append(b"\r\n")
                conn.write(b"".join(lines))
            else:
                conn.write(b"0\r\n\r\n")
        self._request_sent = True

    def _connected(self):
        """A connection is attached: write what the application has given."""
        conn = self._conn
        if self._framing is None:
            return  # the head waits for the first body chunk or request_done
        self._write_head()
        if self._body:
            conn.write(b"".join(self._body))
            self._body = []
            self._body_size = 0
        if self._req_done:
            self._write_end(conn)
        if self._paused_out and not conn.closed:
            self._output_paused(False)

    def _output_paused(self, paused):
        if paused != self._paused_out:
            self._paused_out = paused
            self._emit("pause", paused)

    # -- retries ---------------------------------------------------------------

    def _replayable(self):
        return (
            self.method in IDEMPOTENT
            and self._replay_ok
            and self._retries < self.client.retry_limit
        )

    def _retry(self):
        self._retries += 1
        self._conn = None
        self._head_written = False
        self._request_sent = False
        framing = self._framing
        if framing == _CHUNKED:
            self._body = [b"%x\r\n%b\r\n" % (len(c), c) for c in self._kept]
        else:
            self._body = list(self._kept)
        self._body_size = sum(len(c) for c in self._body)
        self.client.loop.schedule(self.client.retry_delay, self._retry_now)

    def _retry_now(self):
        if self._state != _DONE:
            self.client._acquire(self)

    # -- response control ------------------------------------------------------

    def pause(self, paused):
        """Stop (True) or resume (False) response_body events."""
        self._input_paused = bool(paused)
        conn = self._conn
        if conn is not None:
            conn.pause(self._input_paused)

    def abort(self):
        """Abandon the exchange: its connection is closed and no further
        events are emitted."""
        if self._state == _DONE and not self._switching:
            return
        self._state = _DONE
        self._events.clear()
        pending = self._pending_connect
        if pending is not None:
            pending.cancelled = True
        conn = self._conn
        self._conn = None
        if conn is not None:
            conn.exchange = None
            conn.close()
        origin = self.client._origins.get(self._origin_key)
        if origin is not None:
            try:
                origin.queue.remove(self)
            except ValueError:
                pass

    def tunnel(self):
        """After a 101 answer to an Upgrade request (or a 2xx answer to
        CONNECT), return ``(tcp_connection, buffered)``: the raw connection,
        paused, and any bytes the server sent after its response head."""
        conn = self._conn
        if not self._switching or conn is None or self._tunnelled:
            raise error.StateError("tunnel() needs a 101 (or CONNECT 2xx) response")
        self._tunnelled = True
        self._state = _DONE
        self._conn = None
        return conn.tunnel()

    # -- events ----------------------------------------------------------------

    def _emit(self, event, *args):
        try:
            self.emit(event, *args)
        except Exception as exc:
            loop = self.client.loop
            loop.exception_handler(loop, exc, self)
            if event != "error":
                self.abort()

    def _emit_error(self, err):
        self._emit("error", err)

    def _fail(self, err):
        if self._failed:
            return
        self._failed = True
        self._state = _DONE
        self._conn = None
        self._emit("error", err)
        self._events.clear()


def _encode_method(method):
    raw = to_bytes_field(method, error.ApplicationError)
    if not is_token(raw):
        raise error.ApplicationError("request method is not a token: %r" % (method,))
    return raw


def _parse_url(uri):
    """Split an absolute http(s) URL into (scheme, host, port, target, authority)."""
    if uri is None:
        raise error.UrlError("URLs must be ASCII")
    if not uri or any(b <= 0x20 or b == 0x7F for b in uri):  # rare path: small
        raise error.UrlError("URL is empty or contains whitespace or control characters")
    try:
        parts = urlsplit(uri.decode("ascii"))
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except (ValueError, UnicodeDecodeError) as exc:
        raise error.UrlError(str(exc))
    if scheme not in ("http", "https"):
        raise error.UrlError("unsupported URL scheme %r" % scheme)
    if not host:
        raise error.UrlError("URL has no host")
    default = 443 if scheme == "https" else 80
    if port is None:
        port = default
    if port == 0:
        raise error.UrlError("URL port 0")
    name = "[%s]" % host if ":" in host else host
    authority = name if port == default else "%s:%d" % (name, port)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return scheme, host, port, target.encode("ascii"), authority.encode("ascii")


def _to_bytes(chunk):
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError("body chunks must be bytes or str, not %s" % type(chunk).__name__)


def main(argv=None):
    """``python -m thor.http.client``: fetch a URL, print the body."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m thor.http.client",
        description="Make one HTTP request with thor and print the response body.",
    )
    parser.add_argument("-X", "--request", dest="method", default=None,
                        help="request method (default GET, or POST with -d)")
    parser.add_argument("-H", "--header", dest="headers", action="append", default=[],
                        metavar="'Name: value'", help="add a request header (repeatable)")
    parser.add_argument("-d", "--data", default=None,
                        help="request body (@FILE reads it from a file)")
    parser.add_argument("-i", "--include", action="store_true",
                        help="print the status line and response headers too")
    parser.add_argument("-k", "--insecure", action="store_true",
                        help="do not verify the server's TLS certificate")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="connect and read timeout in seconds (default 30)")
    parser.add_argument("url")
    args = parser.parse_args(argv)

    headers = []
    for header in args.headers:
        name, sep, value = header.partition(":")
        if not sep:
            parser.error("bad header %r: use 'Name: value'" % header)
        headers.append((name.strip(), value.strip()))
    body = None
    if args.data is not None:
        if args.data.startswith("@"):
            with open(args.data[1:], "rb") as handle:
                body = handle.read()
        else:
            body = args.data.encode("utf-8")
    method = args.method or ("POST" if body is not None else "GET")

    loop = thor.loop.make()
    client = HttpClient(loop)
    client.connect_timeout = args.timeout
    client.read_timeout = args.timeout
    if args.insecure:
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client.tls_context = context
    out = sys.stdout.buffer
    status = {"code": 1}
    exchange = client.exchange()

    @on(exchange, "response_start")
    def response_start(code, phrase, res_headers):
        if args.include:
            out.write(b"HTTP/1.1 " + code + b" " + phrase + b"\r\n")
            for name, value in res_headers:
                out.write(name + b":" + value + b"\r\n")
            out.write(b"\r\n")
        status["code"] = 0 if code[:1] in (b"2", b"3") else 22

    exchange.on("response_body", out.write)

    @on(exchange, "response_done")
    def response_done(trailers):
        out.flush()
        loop.stop()

    @on(exchange, "error")
    def on_error(err):
        sys.stderr.write("thor: %s\n" % (err,))
        status["code"] = 1
        loop.stop()

    try:
        exchange.request_start(method, args.url, headers)
        if body:
            exchange.request_body(body)
        exchange.request_done([])
    except (ValueError, TypeError) as exc:
        sys.stderr.write("thor: %s\n" % exc)
        return 2
    loop.run()
    client.close()
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
