"""The HTTP/1.1 client: HttpClient, its connection pools, and its exchanges.

Connections are pooled per origin (scheme, host, port); at most
``max_server_conn`` are open to one origin and requests beyond that wait in
a queue, served in order as connections come free. A connection carries one
exchange at a time (no pipelining), and goes back to the pool only when its
response ended cleanly, the request was sent in full and nothing followed
the response: bytes that arrive while it is idle, or beyond the end of a
response, mean it cannot be trusted and it is closed. Before an idle
connection is reused, its socket is checked (a non-blocking peek) so that
one the server has closed in the meantime is not handed a request.

A request whose connection closes before any byte of its response arrived
is retried on a new connection (``retry_limit`` times, ``retry_delay``
apart) when that is safe: its method is idempotent (RFC 9110 9.2.2), or
nothing of it had been sent; and its body was small enough to keep
(``_REPLAY_LIMIT``). A POST that was sent is never replayed: it fails with
``ConnectionClosedError``. Every other failure is an ``error`` event, after
which the exchange emits nothing more.

Response framing is the parser's (thor.http.parser, RFC 9112 6.3): HEAD,
1xx, 204 and 304 responses have no body; Transfer-Encoding overrides
Content-Length and the connection is closed after such a response; a body
without either runs to the close; a body cut short is an error, never
``response_done``.

Run ``python -m thor.http.client --help`` for the command line.
"""

import errno
import os
import socket
import sys
import time as _time
from collections import deque
from itertools import chain
from urllib.parse import urlsplit

import thor.loop
from thor.events import EventEmitter, on
from thor.tcp import TcpClient
from thor.http import error
from thor.http.headers import (
    encode_body_chunk, encode_field_name, encode_field_value, is_token, to_bytes_field,
    CTL_EXCEPT_HTAB, TRAILER_FORBIDDEN,
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
# The most request body kept in memory so that a request can be replayed;
# beyond it a failed request is an error instead of a retry.
_REPLAY_LIMIT = 65536
# Request body buffered while no connection is ready before the exchange
# emits pause(True): the same as a TCP connection's write_high.
_PRECONNECT_HIGH = 65536

_monotonic = _time.monotonic
_peek = socket.socket.recv  # the raw socket's, also for an SSLSocket
_MSG_PEEK = socket.MSG_PEEK

# How request_start treats the fields the application passes.
_DROP, _CONNECTION, _UPGRADE, _LENGTH_FIELD, _EXPECT = range(5)
_REQUEST_SPECIAL = {
    b"host": _DROP,  # from the URL
    b"keep-alive": _DROP, b"proxy-connection": _DROP, b"te": _DROP,
    b"trailer": _DROP, b"transfer-encoding": _DROP,  # thor frames the body
    b"connection": _CONNECTION, b"upgrade": _UPGRADE,
    b"content-length": _LENGTH_FIELD, b"expect": _EXPECT,
}

# Field names already checked: name as given -> (bytes, lower-cased bytes).
_name_cache = {}
_NAME_CACHE_MAX = 512


def _field_name(name):
    cached = _name_cache.get(name)
    if cached is None:
        raw = encode_field_name(name)
        cached = (raw, raw.lower())
        if len(_name_cache) < _NAME_CACHE_MAX:
            _name_cache[name] = cached
    return cached


_methods = {}
for _method in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS",
                b"TRACE", b"PATCH", b"CONNECT"):
    _methods[_method] = _methods[_method.decode("ascii")] = _method
del _method


def _encode_method(method):
    raw = _methods.get(method) if method.__class__ in (bytes, str) else None
    if raw is not None:
        return raw
    raw = to_bytes_field(method, error.ApplicationError)
    if not is_token(raw):
        raise error.ApplicationError("request method is not a token: %r" % (method,))
    return raw


class HttpClient:
    """An HTTP/1.1 client, sharing a pool of idle connections.

    Settings are class variables; setting one on an instance works too:
    ``tcp_client_class`` (TcpClient), ``tls_client_class`` (None:
    thor.tls.TlsClient), ``connect_timeout`` (None), ``read_timeout``
    (None), ``idle_timeout`` (60), ``retry_limit`` (2), ``retry_delay``
    (0.5), ``max_server_conn`` (6), ``tls_context`` (None: the system's
    trust store, certificates and host names verified), ``parser_limits``
    (keyword arguments for thor.http.parser.HttpParser).
    """

    tcp_client_class = TcpClient
    tls_client_class = None  # thor.tls.TlsClient, imported when first needed
    connect_timeout = None
    read_timeout = None
    idle_timeout = 60
    retry_limit = 2
    retry_delay = 0.5
    # Six connections per origin: what browsers settled on (RFC 9112 9.4
    # asks clients to limit them; RFC 2616's old figure was two).
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
        """Close every idle pooled connection. Exchanges in progress carry
        on; their connections close when they are done with them."""
        for origin in list(self._origins.values()):
            for conn in list(origin.idle):
                conn.close()

    # -- pooling -------------------------------------------------------------

    def _acquire(self, exchange):
        """Give ``exchange`` a connection now, or queue it for one."""
        key = exchange._origin_key
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(key)
        idle = origin.idle
        if idle:
            if exchange._fresh:
                # A retry: a pooled connection may be as dead as the last one.
                if origin.count >= self.max_server_conn:
                    idle[0].close()
            else:
                now = self.loop.time()
                # A request that could not be replayed if the connection
                # turned out closed gets the socket checked, always.
                quick = exchange.method in IDEMPOTENT
                while idle:
                    conn = idle.pop()
                    # usable()'s quick answer, inline: a connection that went
                    # idle in this pass is (the poller saw it last).
                    if (quick and conn._idle_since == now and not conn.closed) or conn.usable(quick):
                        # attach(), inline: once per request.
                        conn.exchange = exchange
                        exchange._conn = conn
                        conn.parser.expect_response(exchange.method)
                        conn._deadline = None
                        if exchange._input_paused:
                            conn.pause(True)
                        if exchange._framing is not None:
                            exchange._connected()
                        return
                    conn.close()
            self._origins[key] = origin  # closing may have dropped it
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
        if conn.closed or not conn.parser.idle:
            conn.close()  # bytes beyond the response: not to be trusted
            return
        self._reuse(conn)

    def _reuse(self, conn):
        """``conn`` is open, idle, with nothing unread: give it to the next
        exchange waiting, or put it in the pool."""
        origin = conn.origin
        queue = origin.queue
        while queue:
            exchange = queue.popleft()
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
        queue = origin.queue
        while queue and origin.count < self.max_server_conn:
            exchange = queue.popleft()
            if exchange._state != _DONE:
                self._connect(origin, exchange)
        if not origin.count and not queue and self._origins.get(origin.key) is origin:
            del self._origins[origin.key]


class _Origin:
    """The connections to one (scheme, host, port): ``count`` open or
    opening, ``idle`` ones in the pool, exchanges waiting in ``queue``."""

    __slots__ = ("key", "idle", "count", "queue")

    def __init__(self, key):
        self.key = key
        self.idle = []
        self.count = 0
        self.queue = deque()


class _PendingConnect:
    """A connection being opened for an exchange (which may have been
    aborted meanwhile: the connection then goes to the next in the queue,
    or to the pool)."""

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
            exchange._fail(_connect_error(errtype, err))
        self.client._dequeue(self.origin)


def _connect_error(errtype, err):
    """The HttpError for a TcpClient / TlsClient connect_error."""
    if errtype is OSError and err == errno.ETIMEDOUT:
        return error.ConnectTimeoutError("connect timed out")
    if errtype is OSError and isinstance(err, int):
        detail = "%s: %s" % (errno.errorcode.get(err, err), os.strerror(err))
    elif errtype is socket.gaierror:
        detail = "cannot resolve the host name (%s)" % (err,)
    else:
        detail = "%s: %s" % (getattr(errtype, "__name__", errtype), err)
    return error.ConnectError(detail)


class _ClientConnection(thor.loop.LazyTimer):
    """One pooled connection, its response parser and its timer (a
    LazyTimer: the deadline moves on every read without touching the
    loop's heap)."""

    __slots__ = (
        "client", "loop", "origin", "tcp", "parser", "exchange", "closed",
        "_idle_since", "_release_pending", "_in_feed", "_paused", "_out_paused",
    )

    def __init__(self, client, origin, tcp_conn):
        self.client = client
        self.loop = client.loop
        self.origin = origin
        self.tcp = tcp_conn
        self.parser = HttpParser(self, False, **client.parser_limits)
        self.exchange = None
        self.closed = False
        self._deadline = None
        self._timer = None
        self._timer_due = 0.0
        self._idle_since = None
        self._release_pending = False
        self._in_feed = False
        self._paused = False      # the application paused the response
        self._out_paused = False  # the socket's write side is full
        tcp_conn.on("data", self._on_data)
        tcp_conn.on("close", self._on_close)
        tcp_conn.on("pause", self._on_tcp_pause)
        tcp_conn.pause(False)

    def __repr__(self):
        return "<_ClientConnection %r %s>" % (
            self.origin.key, "closed" if self.closed else
            "idle" if self.exchange is None else "busy",
        )

    def usable(self, quick=True):
        """Still open, with nothing waiting to be read (an idle connection
        that has data or an EOF pending cannot take a request). ``quick``:
        trust a connection that went idle in this pass without asking the
        socket (the poller saw it last; a server's close may be just behind
        its response, so a request that cannot be replayed asks anyway)."""
        if self.closed or not getattr(self.tcp, "tcp_connected", True):
            return False
        if quick and self._idle_since == self.loop.time():
            return True
        watched = getattr(self.tcp, "watched", None)
        if watched is not None and not watched():
            return False  # the loop has stopped since: its fd is forgotten
        sock = getattr(self.tcp, "socket", None)
        if sock is None:
            return True
        try:
            data = _peek(sock, 1, _MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return True
        except (OSError, ValueError):
            return False
        # TLS: a record may be a session ticket, not data; EOF is certain.
        return bool(data) and sock.__class__ is not socket.socket

    # -- timers --------------------------------------------------------------

    def _timeouts(self):
        client = self.client
        return client.read_timeout, client.idle_timeout

    def _on_timer(self):
        self._timer = None
        if self.closed or not self._deadline_passed():
            return
        exchange = self.exchange
        if exchange is None:
            self.close()  # idle for idle_timeout
            return
        if self._paused or (not exchange._request_sent and not self._out_paused):
            # Waiting on the application (not reading the response, or not
            # giving the rest of the request): not the server's stall.
            self._set_deadline(self.client.read_timeout)
            return
        self.exchange = None
        self.abort()
        exchange._fail(error.ReadTimeoutError(
            "nothing received for %s seconds" % self.client.read_timeout
        ))

    # -- exchanges -----------------------------------------------------------

    def attach(self, exchange):
        self.exchange = exchange
        exchange._conn = self
        self.parser.expect_response(exchange.method)
        self._deadline = None
        if exchange._input_paused:
            self.pause(True)
        if exchange._framing is not None:
            exchange._connected()
        # else: the head waits for the first body chunk or request_done

    def request_sent(self):
        """The whole request is written: the server's turn."""
        read_timeout = self.client.read_timeout
        if read_timeout is not None:
            self._set_deadline(read_timeout)

    def go_idle(self):
        self.exchange = None
        if self._paused:
            self._paused = False
            self.tcp.pause(False)
        self._idle_since = self.loop.time()
        self._set_deadline(self.client.idle_timeout)

    def write(self, data):
        if not self.closed:
            self.tcp.write(data)

    def pause(self, paused):
        if paused == self._paused:
            return
        self._paused = paused
        if paused:
            self.parser.pause()
            if not self.closed:
                self.tcp.pause(True)
            return
        if not self.closed:
            self.tcp.pause(False)
        if self._in_feed:
            self.parser.resume()  # carries on once the current call returns
            return
        self._in_feed = True
        try:
            self.parser.resume()
        finally:
            self._in_feed = False
        self._after_feed()

    # -- input ---------------------------------------------------------------

    def _on_data(self, data):
        read_timeout = self.client.read_timeout
        if read_timeout is not None and self.exchange is not None:
            self._set_deadline(read_timeout)
        self._in_feed = True
        try:
            self.parser.feed(data)
        finally:
            self._in_feed = False
        if self._release_pending:
            self._after_feed()

    def _after_feed(self):
        if self._release_pending:
            self._release_pending = False
            if not self.closed:
                self.client._release(self)
        elif self.closed and self.exchange is not None and not self._paused:
            self._input_ended()

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
        if status == b"101":
            if not exchange._upgrade:
                # RFC 9110 15.2.2: a server switches only when asked to.
                self.on_error(error.StartLineError("101 response to a request without Upgrade"))
                return
            exchange._switching = True
        elif exchange.method == b"CONNECT" and status[0] == 50:
            exchange._switching = True
        exchange.res_status = status
        exchange.res_version = self.parser.version
        listeners = exchange._events.get("response_start")
        if listeners and len(listeners) == 1:
            try:
                listeners[0](status, phrase, headers)
            except Exception as exc:
                exchange._listener_failed(exc)
        elif listeners or exchange._sink is not None:
            exchange._emit("response_start", status, phrase, headers)

    def on_body(self, chunk):
        exchange = self.exchange
        if exchange is not None:
            listeners = exchange._events.get("response_body")
            if listeners and len(listeners) == 1:
                try:
                    listeners[0](chunk)
                except Exception as exc:
                    exchange._listener_failed(exc)
            elif listeners or exchange._sink is not None:
                exchange._emit("response_body", chunk)

    def on_message_done(self, trailers):
        exchange = self.exchange
        if exchange is None:
            return
        self.exchange = None
        exchange._state = _DONE
        if exchange._switching:
            # The parser has paused: what follows is not HTTP. The
            # application takes the connection with tunnel() while
            # response_done is emitted, or it is closed.
            exchange._conn = self
            exchange._emit("response_done", trailers)
            if not exchange._tunnelled:
                exchange._conn = None
                self.abort()
            return
        exchange._conn = None
        parser = self.parser
        if parser.close or exchange._request_close or not exchange._request_sent:
            # The server said so, or framing forced it; or it answered
            # before the request was all sent, which then cannot be.
            self.close()
        elif parser.idle:
            # Nothing follows the response in what was read: the connection
            # is free before response_done, so that a request made by its
            # listener (the usual place) reuses it rather than queueing or
            # opening another.
            origin = self.origin
            if origin.queue or self._paused:
                self.client._reuse(self)
            else:
                # _reuse and go_idle, inline: once per response. The idle
                # deadline is set below, if no request takes it meanwhile.
                self._idle_since = self.loop.time()
                origin.idle.append(self)
        else:
            # More input: once the parser has seen it (ExtraDataError, as
            # no response is expected), the release closes the connection.
            self._release_pending = True
        listeners = exchange._events.get("response_done")
        if listeners and len(listeners) == 1:
            try:
                listeners[0](trailers)
            except Exception as exc:
                exchange._listener_failed(exc)
        else:
            exchange._emit("response_done", trailers)
        if self.exchange is None and not self.closed and not self._release_pending:
            # Still idle (pooled) after response_done: go_idle's deadline.
            timeout = self.client.idle_timeout
            if timeout is None:
                self._deadline = None
            else:
                deadline = self._deadline = _monotonic() + timeout
                if self._timer is None or deadline < self._timer_due:
                    self._set_deadline(timeout)
        # It emits nothing more: dropping its listeners frees it by
        # reference counting, where listeners that close over it (the usual
        # way to write them) would leave a cycle for the garbage collector.
        exchange._events.clear()

    def on_request_head(self, *args):  # pragma: no cover
        raise AssertionError("a response parser never reports requests")

    def on_error(self, err):
        exchange = self.exchange
        self.exchange = None
        self._release_pending = False
        self.abort()
        if exchange is not None:
            exchange._fail(err)

    def _on_tcp_pause(self, paused):
        self._out_paused = paused
        exchange = self.exchange
        if exchange is not None and exchange._state != _DONE:
            if paused and self.client.read_timeout is not None and not exchange._request_sent:
                self._set_deadline(self.client.read_timeout)  # the server is not reading
            exchange._output_paused(paused)

    # -- closing -------------------------------------------------------------

    def _closed(self):
        """Forget the connection (once)."""
        if self.closed:
            return False
        self.closed = True
        self._stop_timer()
        self.client._connection_gone(self)
        return True

    def close(self):
        """Close after what is queued is sent."""
        if self._closed():
            self.tcp.removeListener("close", self._on_close)
            self.tcp.close()

    def abort(self):
        """Close at once, dropping what is queued, reading nothing more."""
        self.parser.pause()
        if self._closed():
            self.tcp.removeListener("close", self._on_close)
            abort = getattr(self.tcp, "abort", None)
            (abort or self.tcp.close)()

    def _on_close(self):
        self._closed()
        if self.exchange is not None and not self._paused:
            self._input_ended()
        # else: the application paused the response; what the parser holds
        # is delivered on resume, and then the end of input (_after_feed).

    def _input_ended(self):
        exchange = self.exchange
        self._in_feed = True
        try:
            self.parser.finish()  # completes a close-delimited body, or fails
        finally:
            self._in_feed = False
        if self.exchange is not exchange or exchange._state == _DONE:
            return  # done, or failed
        self.exchange = None
        if not exchange._response_seen and exchange._replayable():
            exchange._retry()
            return
        exchange._fail(error.ConnectionClosedError(
            "the server closed the connection before responding"
            if not exchange._response_seen else "the server closed the connection"
        ))

    def tunnel(self):
        """Hand over the TCP connection: (tcp, bytes read past the head)."""
        self._closed()
        tcp = self.tcp
        tcp.removeListener("data", self._on_data)
        tcp.removeListener("close", self._on_close)
        tcp.removeListener("pause", self._on_tcp_pause)
        tcp.pause(True)
        return tcp, self.parser.leftover()


_NEW, _STARTED, _DONE = 0, 1, 2
_NO_FRAMING, _LENGTH, _CHUNKED = 0, 1, 2

# URL -> (origin key, request-target, authority); bounded.
_url_cache = {}
_URL_CACHE_MAX = 1024
# Bytes that may not appear in a URL as given: controls, space, DEL, non-ASCII.
_URL_BAD = bytes(range(0x00, 0x21)) + bytes(range(0x7F, 0x100))


_EXACT = (bytes, str)
_TUPLE = frozenset((tuple,))
_STRINGS = frozenset(_EXACT)
_flatten = chain.from_iterable
# (method, URL, tuple(headers)) -> _KnownRequest, for requests whose every
# part is exactly str or bytes and passed request_start's checks: an
# intermediary sends the same few heads over and over. Emptied when full.
_request_heads = {}
_REQUEST_HEADS_MAX = 256


class _KnownRequest:
    """What request_start made of one (method, URL, headers), and the
    request heads built from it, by framing."""

    __slots__ = (
        "method", "uri", "req_hdrs", "request_close", "upgrade", "expect",
        "origin_key", "head_fields", "heads", "special",
    )

    def __init__(self, exchange, expect):
        self.method = exchange.method
        self.uri = exchange.uri
        self.req_hdrs = tuple(exchange.req_hdrs)
        self.request_close = exchange._request_close
        self.upgrade = exchange._upgrade
        self.expect = expect
        self.origin_key = exchange._origin_key
        self.head_fields = exchange._head_fields
        self.heads = {}
        self.special = (
            self.request_close or self.upgrade or expect
            or self.head_fields[2] is not None
        )

    @staticmethod
    def matches(headers):
        """The headers that compared equal to the key's are exactly its
        types too (a subclass may define equality as it likes): tuples of
        str or bytes."""
        return (
            set(map(type, headers)) <= _TUPLE
            and set(map(type, _flatten(headers))) <= _STRINGS
        )


class HttpClientExchange(EventEmitter):
    """One request and its response.

    Emits: response_nonfinal(status, phrase, headers) for each 1xx but 101,
    response_start(status, phrase, headers), response_body(chunk),
    response_done(trailers), error(err) (a thor.http.error.HttpError;
    nothing follows it), pause(paused) (request body backpressure: stop
    calling request_body while paused).

    Attributes: method, uri, req_hdrs (as sent, without the fields thor
    writes), res_status, res_version.
    """

    # The state every exchange starts in is kept on the class: __init__
    # stores only what differs, and each attribute is set on the instance
    # when it first changes (HttpServerExchange does the same).
    method = None
    uri = None
    req_hdrs = None
    res_status = None
    res_version = None
    _state = _NEW
    _origin_key = None
    _conn = None
    _pending_connect = None
    _head_fields = None
    _head_entry = None  # the _request_heads entry this request matched
    _framing = None
    _length_left = None
    _body = None  # request body not yet written (list)
    _body_size = 0
    _kept = None  # request body kept for a replay (list)
    _kept_size = 0
    _replay_ok = True
    _req_done = False
    _trailers = None
    _request_sent = False
    _request_close = False
    _head_written = False
    _response_seen = False
    _switching = False
    _tunnelled = False
    _retries = 0
    _paused_out = False
    _input_paused = False
    _failed = False
    _upgrade = False
    _fresh = False

    def __init__(self, client):
        self._events = {}  # EventEmitter.__init__, inline: once per request
        self._sink = None
        self.client = client

    def __repr__(self):
        return "<HttpClientExchange %r %r>" % (self.method, self.uri)

    # -- the request ---------------------------------------------------------

    def request_start(self, method, uri, headers):
        """Start the request to ``uri`` (an absolute http:// or https://
        URL). Hop-by-hop fields in ``headers`` and Host are dropped: thor
        writes Host from the URL, and its own framing and Connection
        fields. A bad URL is reported with an ``error`` event (UrlError);
        bad fields raise here, before anything is sent."""
        if self._state != _NEW:
            raise error.StateError("request_start called twice")
        if headers.__class__ is not list and headers.__class__ is not tuple:
            headers = list(headers)  # read more than once below
        key = None
        if method.__class__ in _EXACT and uri.__class__ in _EXACT:
            try:
                key = (method, uri, tuple(headers))
                known = _request_heads.get(key)
            except TypeError:  # unhashable parts: not cached
                key = known = None
            if known is not None:
                # _KnownRequest.matches, inline (a few C calls, whatever the
                # number of fields).
                if (
                    set(map(type, headers)) <= _TUPLE
                    and set(map(type, _flatten(headers))) <= _STRINGS
                ):
                    # What the rest of request_start would make of it.
                    self.method = known.method
                    self._state = _STARTED
                    self.req_hdrs = list(known.req_hdrs)
                    self._head_entry = known
                    if known.special:
                        self._start_special(known)
                    self.uri = known.uri
                    self._origin_key = known.origin_key
                    self._head_fields = known.head_fields
                    self.client._acquire(self)
                    return
        method = _encode_method(method)
        fields = []
        exact = key is not None and _KnownRequest.matches(headers)
        content_length = None
        tokens = None
        expect = False
        special = _REQUEST_SPECIAL
        for name, value in headers:
            raw, lower = _field_name(name)
            if value.__class__ is bytes:
                value = value.strip(b" \t")
                if len(value.translate(None, CTL_EXCEPT_HTAB)) != len(value):
                    raise error.BadHeaderError(
                        "control character in field value: %r" % (value,)
                    )
            else:
                value = encode_field_value(value)
            kind = special.get(lower)
            if kind is None:
                fields.append((raw, lower, value))
            elif kind == _CONNECTION:
                if tokens is None:
                    tokens = set()
                tokens.update(t.strip(b" \t").lower() for t in value.split(b","))
            elif kind == _UPGRADE:
                # Kept: asking for a protocol switch is the application's
                # call; thor adds the matching Connection option.
                self._upgrade = True
                fields.append((raw, lower, value))
            elif kind == _LENGTH_FIELD:
                if not value.isdigit() or len(value) > 18:
                    raise error.BadHeaderError("Content-Length must be digits: %r" % value)
                if content_length is not None and int(value) != content_length:
                    raise error.BadHeaderError("conflicting Content-Length values")
                content_length = int(value)
            elif kind == _EXPECT:
                expect = True
                fields.append((raw, lower, value))
        if tokens:
            if b"close" in tokens:
                self._request_close = True
            # RFC 9110 7.6.1: fields named by Connection are hop-by-hop too.
            fields = [f for f in fields if f[1] not in tokens or f[1] == b"upgrade"]
        self.method = method
        self._state = _STARTED
        self.req_hdrs = [(raw, value) for raw, _, value in fields] if fields else fields
        if content_length is not None:
            self._framing = _LENGTH
            self._length_left = content_length
        elif expect:
            # The head must go out before the body: the application may wait
            # for 100 Continue before sending any.
            self._framing = _CHUNKED
        if uri.__class__ is not bytes:
            uri = _url_bytes(uri)
        self.uri = uri
        parsed = _url_cache.get(uri)
        if parsed is None:
            try:
                parsed = _parse_url(uri)
            except error.UrlError as exc:
                self._state = _DONE
                self.client.loop.schedule(0, self._fail, exc)
                return
            if len(_url_cache) < _URL_CACHE_MAX:
                _url_cache[uri] = parsed
        origin_key, target, authority = parsed
        if method == b"CONNECT":
            target = authority
        self._origin_key = origin_key
        self._head_fields = (target, authority, content_length)
        if exact:
            # Validated, and every part exactly str or bytes (a subclass
            # might not compare, hash or encode as the value it shows).
            if len(_request_heads) >= _REQUEST_HEADS_MAX:
                _request_heads.clear()  # one-off requests must not pin it
            known = _request_heads[key] = _KnownRequest(self, expect)
            self._head_entry = known
        self.client._acquire(self)

    def _start_special(self, known):
        """request_start's settings for a known request (_request_heads)
        that closes, upgrades, has a Content-Length or expects 100."""
        if known.request_close:
            self._request_close = True
        if known.upgrade:
            self._upgrade = True
        content_length = known.head_fields[2]
        if content_length is not None:
            self._framing = _LENGTH
            self._length_left = content_length
        elif known.expect:
            self._framing = _CHUNKED

    def request_body(self, chunk):
        """Send a chunk of the request body (bytes, or str as UTF-8).
        Raises BodyLengthError if it goes beyond the Content-Length given."""
        if self._state == _NEW or self._req_done:
            raise error.StateError("request_body outside a request")
        if chunk.__class__ is not bytes:
            chunk = encode_body_chunk(chunk)
        if not chunk:
            return
        framing = self._framing
        if framing is None:
            framing = self._framing = _CHUNKED
        if framing == _LENGTH:
            left = self._length_left - len(chunk)
            if left < 0:
                raise error.BodyLengthError(
                    "request body longer than its Content-Length (%d)"
                    % self._head_fields[2]
                )
            self._length_left = left
            data = chunk
        else:
            data = b"%x\r\n%b\r\n" % (len(chunk), chunk)
        if self._state == _DONE:
            return
        if self._replay_ok:
            self._keep(chunk)
        conn = self._conn
        if conn is not None:
            if not self._head_written:
                self._write_head()
            conn.write(data)
        else:
            if self._body is None:
                self._body = []
            self._body.append(data)
            self._body_size += len(data)
            if self._body_size > _PRECONNECT_HIGH and not self._paused_out:
                self._output_paused(True)

    def request_done(self, trailers=None):
        """Finish the request. ``trailers`` go out with a chunked body.
        Raises BodyLengthError if the body is shorter than its
        Content-Length."""
        if self._state == _NEW or self._req_done:
            raise error.StateError("request_done outside a request")
        if self._framing == _LENGTH and self._length_left:
            raise error.BodyLengthError(
                "request body %d bytes shorter than its Content-Length" % self._length_left
            )
        self._req_done = True
        if trailers:
            self._trailers = trailers
        framing = self._framing
        if framing is None:
            framing = self._framing = _NO_FRAMING
        if self._state == _DONE:
            return
        conn = self._conn
        if conn is None:
            return  # written once a connection is attached (_connected)
        if self._head_written:
            self._write_end(conn)
        elif framing == _NO_FRAMING:
            # The usual request, a head alone: _write_head and _write_end,
            # inline.
            self._head_written = True
            known = self._head_entry
            head = None if known is None else known.heads.get(_NO_FRAMING)
            if not conn.closed:
                conn.tcp.write(head or self._build_head())
            self._request_sent = True
            if self.client.read_timeout is not None:
                conn.request_sent()
        else:
            self._write_head()
            self._write_end(conn)

    def _keep(self, chunk):
        size = self._kept_size + len(chunk)
        if size > _REPLAY_LIMIT:
            self._replay_ok = False
            self._kept = None
        else:
            self._kept_size = size
            if self._kept is None:
                self._kept = [chunk]
            else:
                self._kept.append(chunk)

    def _build_head(self):
        known = self._head_entry
        if known is not None:
            # Built from the fields request_start checked, once per framing.
            head = known.heads.get(self._framing)
            if head is None:
                head = known.heads[self._framing] = self._make_head(known.req_hdrs)
            return head
        return self._make_head(self.req_hdrs)

    def _make_head(self, req_hdrs):
        target, authority, content_length = self._head_fields
        lines = [self.method, b" ", target, b" HTTP/1.1\r\nHost: ", authority, b"\r\n"]
        for raw, value in req_hdrs:
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
        self._head_written = True
        self._conn.write(self._build_head())

    def _write_end(self, conn):
        if self._framing == _CHUNKED:
            trailers = self._trailers
            if trailers:
                lines = [b"0\r\n"]
                for name, value in trailers:
                    raw, lower = _field_name(name)
                    if lower in TRAILER_FORBIDDEN:
                        continue
                    lines.append(raw + b": " + encode_field_value(value) + b"\r\n")
                lines.append(b"\r\n")
                conn.write(b"".join(lines))
            else:
                conn.write(b"0\r\n\r\n")
        self._request_sent = True
        conn.request_sent()

    def _connected(self):
        """A connection is attached: write what the application has given."""
        conn = self._conn
        if self._framing is None:
            return  # the head waits for the first body chunk or request_done
        self._write_head()
        if self._body:
            conn.write(b"".join(self._body))
            self._body = None
            self._body_size = 0
        if self._req_done:
            self._write_end(conn)
        if self._paused_out and not conn.closed:
            self._output_paused(False)

    def _output_paused(self, paused):
        if paused != self._paused_out:
            self._paused_out = paused
            self._emit("pause", paused)

    # -- retries -------------------------------------------------------------

    def _replayable(self):
        return (
            self._replay_ok
            and self._retries < self.client.retry_limit
            and (self.method in IDEMPOTENT or not self._head_written)
        )

    def _retry(self):
        self._retries += 1
        self._conn = None
        self._head_written = False
        self._request_sent = False
        self._fresh = True
        kept = self._kept or []
        if self._framing == _CHUNKED:
            self._body = [b"%x\r\n%b\r\n" % (len(c), c) for c in kept]
        else:
            self._body = list(kept)
        self._body_size = sum(map(len, self._body))
        self.client.loop.schedule(self.client.retry_delay, self._retry_now)

    def _retry_now(self):
        if self._state != _DONE:
            self.client._acquire(self)

    # -- response control ----------------------------------------------------

    def pause(self, paused):
        """Stop (True) or resume (False) response_body events; while
        paused, nothing more is read from the connection."""
        self._input_paused = paused = bool(paused)
        conn = self._conn
        if conn is not None and conn.exchange is self:
            conn.pause(paused)

    def abort(self):
        """Abandon the exchange: its connection (if it has one) is closed,
        and it emits no further events."""
        if self._state == _DONE and not self._switching:
            self._events.clear()
            return
        self._state = _DONE
        self._failed = True  # nothing more is emitted
        self._events.clear()
        pending = self._pending_connect
        if pending is not None:
            pending.cancelled = True
        conn = self._conn
        self._conn = None
        if conn is not None:
            if conn.exchange is self:
                conn.exchange = None
                conn._release_pending = False
            conn.abort()
        origin = self.client._origins.get(self._origin_key)
        if origin is not None:
            try:
                origin.queue.remove(self)
            except ValueError:
                pass

    def tunnel(self):
        """From a ``response_done`` listener after a 101 answer to an
        Upgrade request (or a 2xx answer to CONNECT): take the connection.
        Returns ``(tcp_connection, buffered)``: the TcpConnection (or
        TlsConnection), paused, with no listeners of thor's, and the bytes
        the server sent after its response head. Raises StateError at any
        other time."""
        conn = self._conn
        if not self._switching or conn is None or self._tunnelled:
            raise error.StateError("tunnel() needs a 101 (or CONNECT 2xx) response")
        self._tunnelled = True
        self._conn = None
        return conn.tunnel()

    # -- events --------------------------------------------------------------

    def _emit(self, event, *args):
        try:
            self.emit(event, *args)
        except Exception as exc:
            if event == "error":
                loop = self.client.loop
                loop.exception_handler(loop, exc, self)
            else:
                self._listener_failed(exc)

    def _listener_failed(self, exc):
        """A listener raised: report it to the loop, abandon the exchange."""
        loop = self.client.loop
        loop.exception_handler(loop, exc, self)
        self.abort()

    def _fail(self, err):
        if self._failed:
            return
        self._failed = True
        self._state = _DONE
        self._conn = None
        self._emit("error", err)
        self._events.clear()


def _url_bytes(uri):
    if isinstance(uri, str):
        try:
            return uri.encode("ascii")
        except UnicodeEncodeError:
            return None
    if isinstance(uri, (bytearray, memoryview)):
        return bytes(uri)
    raise TypeError("the URI is str or bytes, not %s" % type(uri).__name__)


def _parse_url(uri):
    """((scheme, host, port), target, authority) for an absolute http(s) URL."""
    if uri is None:
        raise error.UrlError("URLs must be ASCII (percent-encode the rest)")
    if not uri or len(uri.translate(None, _URL_BAD)) != len(uri):
        raise error.UrlError("URL is empty or holds whitespace or control characters")
    try:
        parts = urlsplit(uri.decode("ascii"))
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except (ValueError, UnicodeDecodeError) as exc:
        raise error.UrlError("%s: %r" % (exc, uri)) from None
    if scheme not in ("http", "https"):
        raise error.UrlError("unsupported URL scheme %r" % scheme)
    if not host:
        raise error.UrlError("URL has no host: %r" % uri)
    default = 443 if scheme == "https" else 80
    if port is None:
        if parts.netloc.endswith(":"):
            raise error.UrlError("URL has an empty port: %r" % uri)
        port = default
    if port == 0:
        raise error.UrlError("URL port 0: %r" % uri)
    name = "[%s]" % host if ":" in host else host
    authority = name if port == default else "%s:%d" % (name, port)
    target = parts.path or "/"
    if parts.query or uri.endswith(b"?"):
        target += "?" + parts.query
    return (scheme, host, port), target.encode("ascii"), authority.encode("ascii")


# -- the command line --------------------------------------------------------


def main(argv=None):
    """``python -m thor.http.client``: make one request, print the body."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m thor.http.client",
        description="Make one HTTP request with thor and print the response body "
        "to stdout. Errors go to stderr, with exit status 1.",
    )
    parser.add_argument("-X", "--request", dest="method", default=None,
                        help="request method (default GET, or POST with -d)")
    parser.add_argument("-H", "--header", dest="headers", action="append", default=[],
                        metavar="'Name: value'", help="add a request header (repeatable)")
    parser.add_argument("-d", "--data", default=None,
                        help="request body (@FILE reads it from a file, @- from stdin)")
    parser.add_argument("-i", "--include", action="store_true",
                        help="print the status line and response headers too")
    parser.add_argument("-f", "--fail", action="store_true",
                        help="exit with status 22 when the response status is 400 or more")
    parser.add_argument("-k", "--insecure", action="store_true",
                        help="do not verify the server's TLS certificate")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="connect and read timeout in seconds (default 30)")
    parser.add_argument("url")
    args = parser.parse_args(argv)

    headers = []
    for header in args.headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            parser.error("bad header %r: use 'Name: value'" % header)
        headers.append((name.strip(), value.strip()))
    body = None
    if args.data is not None:
        if args.data == "@-":
            body = sys.stdin.buffer.read()
        elif args.data.startswith("@"):
            try:
                with open(args.data[1:], "rb") as handle:
                    body = handle.read()
            except OSError as exc:
                sys.stderr.write("thor: %s\n" % exc)
                return 2
        else:
            body = args.data.encode("utf-8")
    method = args.method or ("POST" if body is not None else "GET")
    if body is not None and not any(n.lower() == "content-length" for n, _ in headers):
        headers.append(("Content-Length", str(len(body))))

    loop = thor.loop.make()
    client = HttpClient(loop)
    client.connect_timeout = args.timeout
    client.read_timeout = args.timeout
    client.retry_delay = 0.1
    if args.insecure:
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client.tls_context = context
    out = sys.stdout.buffer
    result = {"code": 1}
    exchange = client.exchange()

    @on(exchange, "response_start")
    def response_start(code, phrase, res_headers):
        if args.include:
            out.write(b"HTTP/" + (exchange.res_version or b"1.1") + b" " + code
                      + (b" " + phrase if phrase else b"") + b"\r\n")
            for name, value in res_headers:
                out.write(name + b":" + value + b"\r\n")
            out.write(b"\r\n")
        result["status"] = int(code)

    exchange.on("response_body", out.write)

    @on(exchange, "response_done")
    def response_done(trailers):
        out.flush()
        result["code"] = 22 if args.fail and result["status"] >= 400 else 0
        loop.stop()

    @on(exchange, "error")
    def on_error(err):
        sys.stderr.write("thor: %s\n" % (err,))
        result["code"] = 1
        loop.stop()

    try:
        exchange.request_start(method, args.url, headers)
        if body:
            exchange.request_body(body)
        exchange.request_done([])
    except (ValueError, TypeError) as exc:
        sys.stderr.write("thor: %s\n" % exc)
        return 2
    try:
        loop.run()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    client.close()
    try:
        out.flush()
    except BrokenPipeError:
        return 1
    return result["code"]


if __name__ == "__main__":
    sys.exit(main())
