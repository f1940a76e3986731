"""The HTTP/1.1 client: HttpClient, its connection pools, and its exchanges.

Connections are pooled per origin (scheme, host, port); at most
``max_server_conn`` are open to one origin and requests beyond that wait in
a queue (at most ``queue_timeout`` seconds), served in order as connections
come free. A connection carries one exchange at a time (no pipelining), and
goes back to the pool only when its response ended cleanly, the request was
sent in full and nothing followed the response: bytes that arrive while it
is idle, or beyond the end of a response, mean it cannot be trusted and it
is closed (bytes that came with the response are reported to its exchange,
after response_done, as ExtraDataError). Before an idle connection is
reused, its socket is checked (a non-blocking peek) so that one the server
has closed in the meantime is not handed a request.

A request whose connection closes before any byte of its response arrived
is retried on a new connection (``retry_limit`` times, ``retry_delay``
apart) when that is safe: its method is idempotent (RFC 9110 9.2.2), or
nothing of it had been sent; and its body was small enough to keep
(``_REPLAY_LIMIT``). A POST that was sent is never replayed: it fails with
``ConnectionClosedError``. Every other failure is an ``error`` event, after
which the exchange emits nothing more; that includes an exception raised
by one of the exchange's own listeners (``ListenerError``, reported to the
loop's exception handler first).

Response framing is the parser's (thor.http.parser, RFC 9112 6.3): HEAD,
1xx, 204 and 304 responses have no body; Transfer-Encoding overrides
Content-Length and the connection is closed after such a response; a body
without either runs to the close; a body cut short is an error, never
``response_done``.

What an origin can make the client hold is bounded: the parser's limits
bound a head and a chunk line, a paused response stops reading, at most
``_MAX_NONFINAL`` interim (1xx) responses are taken per request, a head
must arrive whole within ``read_timeout`` (when set), and ``send_timeout``
ends a request the origin does not read.

Run ``python -m thor.http.client --help`` for the command line.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections import deque
from itertools import chain
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import thor.loop
from thor.events import EventEmitter, on
from thor.tcp import TcpClient
from thor.http import error
from thor.http.headers import (
    encode_body_chunk, encode_field_name, encode_field_value, field_tokens, is_token,
    to_bytes_field, CTL_EXCEPT_HTAB,
)
from thor.http.parser import HttpParser, CHUNKED, LENGTH, NO_BODY
from thor.http.writer import (
    BodyWriter, LengthWriter, check_content_length, encode_chunk, hand_over,
    CHUNKED_WRITER, NO_BODY_WRITER,
)

if TYPE_CHECKING:
    import ssl
    from typing import (
        Any, Callable, Deque, Dict, Iterable, List, Optional, Tuple, Type, Union,
    )

    from thor.loop import LoopBase, ScheduledEvent
    from thor.tcp import TcpConnection
    from thor.types import BodyInput, OriginType, RawHeaderListType, TextInput

    # A request's fields as request_start keeps them: (name, lower-cased
    # name, value).
    _CheckedField = Tuple[bytes, bytes, bytes]
    # (origin key, request-target, authority) for a URL.
    _ParsedUrl = Tuple[OriginType, bytes, bytes]
    # (request-target, authority, Content-Length or None).
    _HeadFields = Tuple[bytes, bytes, Optional[int]]
    _HeaderList = List[Tuple[Any, Any]]

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
# Interim (1xx) responses taken for one request: a server sends one or two
# (100 Continue, 103 Early Hints); an endless stream of them would hold
# the exchange forever, each one resetting read_timeout.
_MAX_NONFINAL = 100

# How often a stalled upload is looked at while the kernel's send queue
# counts (see _check_send): a send_timeout ends at most this late.
_SEND_POLL = 1.0
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
_name_cache: Dict[object, Tuple[bytes, bytes]] = {}
_NAME_CACHE_MAX = 512


def _field_name(name: object) -> Tuple[bytes, bytes]:
    cached = _name_cache.get(name)
    if cached is None:
        raw = encode_field_name(name)
        cached = (raw, raw.lower())
        if len(_name_cache) < _NAME_CACHE_MAX:
            _name_cache[name] = cached
    return cached


_methods: Dict[Union[str, bytes], bytes] = {}
for _method in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS",
                b"TRACE", b"PATCH", b"CONNECT"):
    _methods[_method] = _methods[_method.decode("ascii")] = _method
del _method


def _encode_method(method: object) -> bytes:
    raw = _methods.get(method) if method.__class__ in (bytes, str) else None
    if raw is not None:
        return raw
    raw = to_bytes_field(method, error.ApplicationError)
    if not is_token(raw):
        raise error.ApplicationError("request method is not a token: " + error.detail_text(raw))
    return raw


class HttpClient:
    """An HTTP/1.1 client, sharing a pool of idle connections.

    Settings are class variables; setting one on an instance works too:
    ``tcp_client_class`` (TcpClient), ``tls_client_class`` (None:
    thor.tls.TlsClient), ``connect_timeout`` (None), ``read_timeout``
    (None), ``idle_timeout`` (60), ``queue_timeout`` (60: longest wait in
    the queue for a connection), ``send_timeout`` (60: longest the origin
    may read nothing of the request), ``retry_limit`` (2), ``retry_delay``
    (0.5), ``max_server_conn`` (6), ``tls_context`` (None: the system's
    trust store, certificates and host names verified), ``check_ip``
    (None, or a callable given each address a host name resolves to, as
    a string, that returns False to refuse it: AccessError), ``careful``
    (True; Thor 0.17's name, kept: thor reports what it finds either way),
    ``parser_limits`` (keyword arguments for thor.http.parser.HttpParser;
    a response's field section may be 128 KiB unless it says otherwise).
    """

    tcp_client_class: Type[TcpClient] = TcpClient
    tls_client_class: Optional[Type[TcpClient]] = None  # None: thor.tls.TlsClient, imported when first needed
    connect_timeout: Optional[float] = None
    read_timeout: Optional[float] = None
    idle_timeout: Optional[float] = 60
    queue_timeout: Optional[float] = 60
    send_timeout: Optional[float] = 60
    retry_limit: int = 2
    retry_delay: float = 0.5
    # Six connections per origin: what browsers settled on (RFC 9112 9.4
    # asks clients to limit them; RFC 2616's old figure was two).
    max_server_conn: int = 6
    tls_context: Optional[ssl.SSLContext] = None
    check_ip: Optional[Callable[[str], bool]] = None
    careful: bool = True
    parser_limits: Dict[str, Any] = {}

    def __init__(self, loop: Optional[LoopBase] = None, idle_timeout: Optional[float] = None) -> None:
        self.loop: LoopBase = loop or thor.loop.default_loop()
        if idle_timeout is not None:
            self.idle_timeout = idle_timeout
        self._origins: Dict[OriginType, _Origin] = {}

    def exchange(self) -> HttpClientExchange:
        """Create a request/response exchange."""
        return HttpClientExchange(self)

    def close(self) -> None:
        """Close every idle pooled connection. Exchanges in progress carry
        on; their connections close when they are done with them."""
        for origin in list(self._origins.values()):
            for conn in list(origin.idle):
                conn.close()

    def _ip_policy(self) -> Optional[Callable[[str], bool]]:
        """``check_ip`` as it was set: a function set on the class would
        come back from ``self.check_ip`` as a bound method."""
        policy = self.__dict__.get("check_ip")
        if policy is not None:
            return policy  # type: ignore[no-any-return]  # what was set
        for cls in type(self).__mro__:
            if "check_ip" in cls.__dict__:
                policy = cls.__dict__["check_ip"]
                if isinstance(policy, staticmethod):
                    policy = policy.__func__
                return policy
        return None

    def _parser_options(self) -> Dict[str, Any]:
        # careful=False (REDbot sets it) changes nothing thor parses: Thor
        # 0.17 still reported what it found then, and REDbot's findings
        # come from those reports. Thor 0.17's limit on a response's
        # field section (128 KiB) unless parser_limits says otherwise: a
        # client meets large heads it must read (REDbot reports on them).
        options = self.parser_limits
        if "max_field_section" not in options:
            options = dict(options, max_field_section=131072)
        return options

    # -- pooling -------------------------------------------------------------

    def _acquire(self, exchange: HttpClientExchange) -> None:
        """Give ``exchange`` a connection now, or queue it for one."""
        key: OriginType = exchange._origin_key  # type: ignore[assignment]  # set by request_start
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
                        conn.parser.expect_response(exchange.method)  # type: ignore[arg-type]  # set by request_start
                        conn._deadline = None
                        if exchange._input_paused:
                            conn.pause(True)
                        if exchange._writer is not None:
                            exchange._connected()
                        return
                    conn.close()
            self._origins[key] = origin  # closing may have dropped it
        if origin.count < self.max_server_conn:
            self._connect(origin, exchange)
        else:
            self._enqueue(origin, exchange)

    def _enqueue(self, origin: _Origin, exchange: HttpClientExchange) -> None:
        """``exchange`` waits for a connection to ``origin``, for at most
        ``queue_timeout`` seconds: one timer per origin, for the queue's
        earliest deadline."""
        timeout = self.queue_timeout
        if timeout is not None:
            exchange._queue_deadline = self.loop._clock() + timeout
            if origin.timer is None:
                origin.timer = self.loop.schedule(max(timeout, 0), self._queue_expired, origin)
        origin.queue.append(exchange)

    def _queue_expired(self, origin: _Origin) -> None:
        """Fail the exchanges that have waited in ``origin``'s queue past
        their deadline; wait for the next deadline."""
        origin.timer = None
        now = self.loop._clock()
        expired = []
        waiting: Deque[HttpClientExchange] = deque()
        soonest = None
        for exchange in origin.queue:
            if exchange._state == _DONE:
                continue  # aborted, or failed meanwhile
            deadline = exchange._queue_deadline
            if deadline is not None and deadline <= now:
                expired.append(exchange)
                continue
            waiting.append(exchange)
            if deadline is not None and (soonest is None or deadline < soonest):
                soonest = deadline
        origin.queue = waiting
        if soonest is not None:
            origin.timer = self.loop.schedule(soonest - now, self._queue_expired, origin)
        for exchange in expired:
            exchange._fail(error.QueueTimeoutError(
                "no connection to %s://%s:%d came free within %s seconds"
                % (origin.key[0], origin.key[1], origin.key[2], self.queue_timeout)
            ))
        if not origin.count and not origin.queue and self._origins.get(origin.key) is origin:
            del self._origins[origin.key]

    def _connect(self, origin: _Origin, exchange: HttpClientExchange) -> None:
        origin.count += 1
        scheme, host, port = origin.key
        tcp_client: TcpClient
        if scheme == "https":
            tls_class = self.tls_client_class
            if tls_class is None:
                from thor.tls import TlsClient

                tls_class = TlsClient
            tcp_client = tls_class(self.loop, tls_context=self.tls_context)  # type: ignore[call-arg]  # a TlsClient takes it
        else:
            tcp_client = self.tcp_client_class(self.loop)
        pending = _PendingConnect(self, origin, exchange)
        policy = self._ip_policy()
        if policy is not None:
            if not hasattr(type(tcp_client), "check_ip"):
                # A transport that would not apply the policy: refused,
                # rather than connected unchecked (from the loop, as a
                # connect error comes).
                exchange._pending_connect = pending
                self.loop.schedule(0, pending.failed, PermissionError, errno.EACCES)
                return
            # Enforced by the TcpClient after resolution, before any socket
            # is made: connect_error(PermissionError, EACCES) if it refuses
            # every address.
            tcp_client.check_ip = policy
        tcp_client.on("connect", pending.connected)
        tcp_client.on("connect_error", pending.failed)
        exchange._pending_connect = pending
        tcp_client.connect(host, port, self.connect_timeout)

    def _release(self, conn: _ClientConnection) -> None:
        """``conn`` is free and has never carried a response: reuse it or
        pool it."""
        if conn.closed or not conn.parser.idle:
            conn.close()  # bytes nobody asked for: not to be trusted
            return
        self._reuse(conn)

    def _reuse(self, conn: _ClientConnection) -> None:
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

    def _connection_gone(self, conn: _ClientConnection) -> None:
        origin = conn.origin
        origin.count -= 1
        try:
            origin.idle.remove(conn)
        except ValueError:
            pass
        self._dequeue(origin)

    def _dequeue(self, origin: _Origin) -> None:
        queue = origin.queue
        while queue and origin.count < self.max_server_conn:
            exchange = queue.popleft()
            if exchange._state != _DONE:
                self._connect(origin, exchange)
        if not origin.count and not queue and self._origins.get(origin.key) is origin:
            del self._origins[origin.key]
            if origin.timer is not None:
                origin.timer.delete()
                origin.timer = None


class _Origin:
    """The connections to one (scheme, host, port): ``count`` open or
    opening, ``idle`` ones in the pool, exchanges waiting in ``queue``,
    and the ``timer`` for the queue's next deadline."""

    __slots__ = ("key", "idle", "count", "queue", "timer")

    def __init__(self, key: OriginType) -> None:
        self.key = key
        self.idle: List[_ClientConnection] = []
        self.count = 0
        self.queue: Deque[HttpClientExchange] = deque()
        self.timer: Optional[ScheduledEvent] = None


class _PendingConnect:
    """A connection being opened for an exchange (which may have been
    aborted meanwhile: the connection then goes to the next in the queue,
    or to the pool)."""

    __slots__ = ("client", "origin", "exchange", "cancelled")

    def __init__(self, client: HttpClient, origin: _Origin, exchange: HttpClientExchange) -> None:
        self.client = client
        self.origin = origin
        self.exchange = exchange
        self.cancelled = False

    def connected(self, tcp_conn: TcpConnection) -> None:
        conn = _ClientConnection(self.client, self.origin, tcp_conn)
        exchange = self.exchange
        if exchange._pending_connect is self:
            exchange._pending_connect = None
        if self.cancelled or exchange._state == _DONE:
            self.client._release(conn)
        else:
            conn.attach(exchange)

    def failed(self, errtype: Any, err: Any) -> None:
        self.origin.count -= 1
        exchange = self.exchange
        if exchange._pending_connect is self:
            exchange._pending_connect = None
        if not self.cancelled and exchange._state != _DONE:
            exchange._fail(_connect_error(errtype, err, self.origin.key[1]))
        self.client._dequeue(self.origin)


# getaddrinfo's error codes by number, for messages.
_GAI_NAMES = {
    getattr(socket, name): name for name in dir(socket) if name.startswith("EAI_")
}


def _connect_error(errtype: Any, err: Any, host: str) -> error.HttpError:
    """The HttpError for a TcpClient / TlsClient connect_error."""
    if errtype is OSError and err == errno.ETIMEDOUT:
        return error.ConnectTimeoutError("connect to %s timed out" % host)
    if errtype is PermissionError:
        # TcpClient.check_ip refused every address (the OS's own EACCES
        # comes as OSError).
        return error.AccessError("check_ip refused every address of %s" % host)
    if errtype is socket.gaierror:
        return error.DnsError("cannot resolve %s (%s)" % (host, _GAI_NAMES.get(err, err)))
    if errtype is OSError and isinstance(err, int):
        detail = "%s: %s" % (errno.errorcode.get(err, err), os.strerror(err))
    else:
        detail = "%s: %s" % (getattr(errtype, "__name__", errtype), err)
    return error.ConnectError(detail)


def _unsent(tcp: TcpConnection) -> Tuple[int, bool]:
    """How many bytes written to ``tcp`` the peer has not taken: those it
    queues, and, where the system tells, those in the kernel's send queue
    (without them, a peer reading slowly makes no progress visible until
    a third of the send buffer, megabytes, has drained); and whether the
    kernel's queue was counted."""
    queued: int = getattr(tcp, "write_buffered", 0)
    sock = getattr(tcp, "socket", None)
    if sock is None:
        return queued, False
    try:
        if sys.platform.startswith("linux"):
            import fcntl
            import termios

            # SIOCOUTQ: sent but not acknowledged, and not yet sent.
            raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
            queued += int.from_bytes(raw, sys.byteorder, signed=True)
        elif sys.platform == "darwin":
            queued += sock.getsockopt(socket.SOL_SOCKET, 0x1024)  # SO_NWRITE
    except (OSError, ValueError, ImportError, AttributeError):
        pass
    else:
        return queued, True
    return queued, False


class _ClientConnection(thor.loop.LazyTimer):
    """One pooled connection, its response parser and its timer (a
    LazyTimer: the deadline moves on every read without touching the
    loop's heap).

    Thor 0.17's names for what a program may use (as ``exchange.conn``):
    ``tcp_conn``, ``tcp_connected``, ``res_version`` and ``close()``.
    """

    __slots__ = (
        "client", "loop", "origin", "tcp", "parser", "exchange", "closed",
        "_idle_since", "_in_feed", "_paused", "_out_paused", "_send_mark", "_send_since",
    )

    def __init__(self, client: HttpClient, origin: _Origin, tcp_conn: TcpConnection) -> None:
        self.client = client
        self.loop = client.loop
        self.origin = origin
        self.tcp = tcp_conn
        self.parser = HttpParser(self, False, **client._parser_options())
        self.exchange: Optional[HttpClientExchange] = None
        self.closed = False
        self._init_timer(self.loop)
        self._idle_since: Optional[float] = None
        self._in_feed = False
        self._paused = False      # the application paused the response
        self._out_paused = False  # the socket's write side is full
        # While it is: how many bytes were queued, and since when, the last
        # time the origin was seen to take some (send_timeout).
        self._send_mark = 0
        self._send_since = 0.0
        tcp_conn.on("data", self._on_data)
        tcp_conn.on("close", self._on_close)
        tcp_conn.on("pause", self._on_tcp_pause)
        tcp_conn.pause(False)

    def __repr__(self) -> str:
        return "<_ClientConnection %r %s>" % (
            self.origin.key, "closed" if self.closed else
            "idle" if self.exchange is None else "busy",
        )

    # -- Thor 0.17's names -----------------------------------------------------

    @property
    def tcp_conn(self) -> TcpConnection:
        """The TcpConnection (or TlsConnection) under this connection."""
        return self.tcp

    @property
    def tcp_connected(self) -> bool:
        return not self.closed and bool(getattr(self.tcp, "tcp_connected", True))

    @property
    def res_version(self) -> Optional[bytes]:
        """The HTTP version of the last response head read (interim ones
        included): b"1.1" or b"1.0"."""
        return self.parser.version

    def usable(self, quick: bool = True) -> bool:
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

    def _timeouts(self) -> Tuple[Optional[float], ...]:
        client = self.client
        return client.read_timeout, client.idle_timeout, client.send_timeout

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed or not self._deadline_passed():
            return
        exchange = self.exchange
        if exchange is None:
            self.close()  # idle for idle_timeout
            return
        client = self.client
        if self._out_paused and client.send_timeout is not None:
            self._check_send(exchange, client.send_timeout)
            return
        if self._paused or (not exchange._request_sent and not self._out_paused):
            # Waiting on the application (not reading the response, or not
            # giving the rest of the request): not the server's stall.
            self._set_deadline(client.read_timeout)
            return
        read_timeout = client.read_timeout
        if read_timeout is None:
            return  # a deadline of a phase that has passed
        self.exchange = None
        self.abort()
        exchange._fail(error.ReadTimeoutError(
            "nothing received for %s seconds" % read_timeout
            if exchange.res_status is not None else
            "no complete response head within %s seconds" % read_timeout
        ))

    def _check_send(self, exchange: HttpClientExchange, send_timeout: float) -> None:
        """The write side has been full since ``_send_since``: fail the
        exchange if the origin has taken nothing for ``send_timeout``."""
        now = self._clock()
        tcp = self.tcp
        queued, kernel = _unsent(tcp)
        # The transport knows when its own queue last moved: the bound
        # runs from then, not from this check (which would stretch it
        # towards twice send_timeout).
        sent_at: float = getattr(tcp, "sent_at", 0.0)
        if sent_at > self._send_since:
            self._send_since = sent_at
        if queued < self._send_mark:
            self._send_mark = queued  # it took some: progress
            if kernel:
                # Some may have left only the kernel's queue, which tells
                # no time: it happened since the last check, and while the
                # kernel's queue counts, checks are _SEND_POLL apart.
                self._send_since = now
        waited = now - self._send_since
        if waited < send_timeout:
            left = send_timeout - waited
            self._set_deadline(min(left, _SEND_POLL) if kernel else left)
            return
        self.exchange = None
        self.abort()
        exchange._fail(error.SendTimeoutError(
            "the server read nothing of the request for %s seconds" % send_timeout
        ))

    # -- exchanges -----------------------------------------------------------

    def attach(self, exchange: HttpClientExchange) -> None:
        self.exchange = exchange
        exchange._conn = self
        self.parser.expect_response(exchange.method)  # type: ignore[arg-type]  # set by request_start
        self._deadline = None
        if exchange._input_paused:
            self.pause(True)
        if exchange._writer is not None:
            exchange._connected()
        # else: the head waits for the first body chunk or request_done

    def request_sent(self) -> None:
        """The whole request is written: the server's turn."""
        read_timeout = self.client.read_timeout
        if read_timeout is not None:
            self._set_deadline(read_timeout)

    def go_idle(self) -> None:
        self.exchange = None
        if self._paused:
            self._paused = False
            self.tcp.pause(False)
        self._idle_since = self.loop.time()
        self._set_deadline(self.client.idle_timeout)

    def write(self, data: bytes) -> None:
        if not self.closed:
            if self._out_paused:
                # Written past the pause: not the origin's progress.
                self._send_mark += len(data)
            self.tcp.write(data)

    def pause(self, paused: bool) -> None:
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
        if self.closed and self.exchange is not None and not self._paused:
            self._input_ended()  # the close came while paused

    # -- input ---------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        read_timeout = self.client.read_timeout
        if read_timeout is not None:
            exchange = self.exchange
            # The final head must arrive whole within read_timeout: bytes
            # that trickle in do not move the deadline until it has (a
            # whole interim response does, below).
            if exchange is not None and exchange.res_status is not None:
                self._set_deadline(read_timeout)
        self._in_feed = True
        try:
            self.parser.feed(data)
        finally:
            self._in_feed = False

    def on_response_nonfinal(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange._response_seen = True
            count = exchange._nonfinal = exchange._nonfinal + 1
            if count > _MAX_NONFINAL:
                self.on_error(error.TooManyMsgsError(
                    "more than %d interim (1xx) responses" % _MAX_NONFINAL
                ))
                return
            exchange.input_header_length = self.parser.head_length
            read_timeout = self.client.read_timeout
            if read_timeout is not None:
                self._set_deadline(read_timeout)  # a whole message: progress
            exchange._emit("response_nonfinal", status, phrase, headers)

    def on_response_head(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
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
        parser = self.parser
        exchange.res_version = parser.version
        exchange.input_header_length = parser.head_length
        listeners = exchange._events.get("response_start")
        if listeners and len(listeners) == 1:
            try:
                listeners[0](status, phrase, headers)
            except Exception as exc:
                exchange._listener_failed(exc, "response_start")
        elif listeners or exchange._sink is not None:
            exchange._emit("response_start", status, phrase, headers)

    def on_body(self, chunk: bytes) -> None:
        exchange = self.exchange
        if exchange is not None:
            listeners = exchange._events.get("response_body")
            if listeners and len(listeners) == 1:
                try:
                    listeners[0](chunk)
                except Exception as exc:
                    exchange._listener_failed(exc, "response_body")
            elif listeners or exchange._sink is not None:
                exchange._emit("response_body", chunk)

    def on_message_done(self, trailers: RawHeaderListType) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        self.exchange = None
        exchange._state = _DONE
        parser = self.parser
        exchange.input_transfer_length = parser.transfer_length
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
        extra = None
        if not parser.idle:
            # Bytes follow the response in what was read, and no request
            # awaits them: the connection cannot be trusted. They are
            # taken from the parser (which would report them to nobody),
            # and reported to this exchange once response_done is out.
            parser.pause()
            extra = parser.leftover()
            self.close()
        elif parser.close or exchange._request_close or not exchange._request_sent:
            # The server said so, or framing forced it; or it answered
            # before the request was all sent, which then cannot be.
            self.close()
        else:
            # Nothing follows the response: the connection is free before
            # response_done, so that a request made by its listener (the
            # usual place) reuses it rather than queueing or opening
            # another.
            origin = self.origin
            if origin.queue or self._paused:
                self.client._reuse(self)
            else:
                # _reuse and go_idle, inline: once per response. The idle
                # deadline is set below, if no request takes it meanwhile.
                self._idle_since = self.loop.time()
                origin.idle.append(self)
        listeners = exchange._events.get("response_done")
        if listeners and len(listeners) == 1:
            try:
                listeners[0](trailers)
            except Exception as exc:
                exchange._listener_failed(exc, "response_done")
        else:
            exchange._emit("response_done", trailers)
        if extra is not None:
            # Whitespace alone (a stray CRLF after a body, common enough)
            # only costs the connection.
            if extra.strip(b" \t\r\n") and not exchange._failed:
                exchange._fail(error.ExtraDataError(extra))
        elif self.exchange is None and not self.closed:
            # Still idle (pooled) after response_done: go_idle's deadline.
            timeout = self.client.idle_timeout
            if timeout is None:
                self._deadline = None
            else:
                deadline = self._deadline = self._clock() + timeout
                if self._timer is None or deadline < self._timer_due:
                    self._set_deadline(timeout)
        # It emits nothing more: dropping its listeners frees it by
        # reference counting, where listeners that close over it (the usual
        # way to write them) would leave a cycle for the garbage collector.
        exchange._events.clear()

    def on_request_head(self, *args: Any) -> None:  # pragma: no cover
        raise AssertionError("a response parser never reports requests")

    def on_error(self, err: error.HttpError) -> None:
        exchange = self.exchange
        self.exchange = None
        self.abort()
        if exchange is not None:
            if err.__class__ in _CUT_SHORT:
                # The input ended inside the response (the parser reports
                # these only then): a dropped connection, as Thor 0.17
                # reports it.
                closed = error.ConnectionClosedError(
                    "the server closed the connection inside the response %s"
                    % ("head" if err.__class__ is error.IncompleteHeadError else "body")
                )
                closed.__cause__ = err
                err = closed
            exchange._fail(err)

    def _on_tcp_pause(self, paused: bool) -> None:
        self._out_paused = paused
        exchange = self.exchange
        if exchange is not None and exchange._state != _DONE:
            client = self.client
            if paused:
                send_timeout = client.send_timeout
                if send_timeout is not None:
                    # The server is not reading: how long it may go on not
                    # reading (see _check_send).
                    self._send_mark, kernel = _unsent(self.tcp)
                    self._send_since = self._clock()
                    self._set_deadline(min(send_timeout, _SEND_POLL) if kernel else send_timeout)
                elif client.read_timeout is not None and not exchange._request_sent:
                    self._set_deadline(client.read_timeout)  # the server is not reading
            else:
                self._set_deadline(client.read_timeout)
            exchange._output_paused(paused)

    # -- closing -------------------------------------------------------------

    def _closed(self) -> bool:
        """Forget the connection (once)."""
        if self.closed:
            return False
        self.closed = True
        self._stop_timer()
        self.client._connection_gone(self)
        return True

    def close(self) -> None:
        """Close after what is queued is sent. An exchange that was using
        the connection fails with ConnectionClosedError, from the loop (a
        program may drop a request this way, as with Thor 0.17)."""
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            self.parser.pause()
            exchange._orphaned()
        if self._closed():
            self.tcp.removeListener("close", self._on_close)
            self.tcp.close()

    def abort(self) -> None:
        """Close at once, dropping what is queued, reading nothing more."""
        self.parser.pause()
        if self._closed():
            self.tcp.removeListener("close", self._on_close)
            abort = getattr(self.tcp, "abort", None)
            (abort or self.tcp.close)()

    def _on_close(self) -> None:
        self._closed()
        if self.exchange is not None and not self._paused:
            self._input_ended()
        # else: the application paused the response; what the parser holds
        # is delivered on resume, and then the end of input (pause()).

    def _input_ended(self) -> None:
        exchange = self.exchange
        self._in_feed = True
        try:
            self.parser.finish()  # completes a close-delimited body, or fails
        finally:
            self._in_feed = False
        if exchange is None or self.exchange is not exchange or exchange._state == _DONE:
            return  # done, or failed
        self.exchange = None
        if not exchange._response_seen and exchange._replayable():
            exchange._retry()
            return
        exchange._fail(error.ConnectionClosedError(
            "the server closed the connection before responding"
            + (" (%d attempts)" % (exchange._retries + 1) if exchange._retries else "")
            if not exchange._response_seen else "the server closed the connection"
        ))

    def tunnel(self) -> Tuple[TcpConnection, bytes]:
        """Hand over the TCP connection: (tcp, bytes read past the head)."""
        self._closed()
        return hand_over(self.tcp, self.parser, (
            ("data", self._on_data), ("close", self._on_close), ("pause", self._on_tcp_pause),
        ))


# The parser's errors for input that ended inside a message.
_CUT_SHORT = frozenset((error.IncompleteHeadError, error.IncompleteBodyError))

_NEW, _STARTED, _DONE = 0, 1, 2

# URL -> (origin key, request-target, authority); bounded.
_url_cache: Dict[bytes, _ParsedUrl] = {}
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
_request_heads: Dict[Tuple[Any, Any, Tuple[Any, ...]], _KnownRequest] = {}
_REQUEST_HEADS_MAX = 256


class _KnownRequest:
    """What request_start made of one (method, URL, headers), and the
    request heads built from it, by framing."""

    __slots__ = (
        "method", "uri", "req_hdrs", "request_close", "upgrade", "expect",
        "origin_key", "head_fields", "heads", "special",
    )

    def __init__(self, exchange: HttpClientExchange, expect: bool) -> None:
        self.method: bytes = exchange.method  # type: ignore[assignment]  # set by request_start
        self.uri: bytes = exchange.uri  # type: ignore[assignment]  # set by request_start
        self.req_hdrs: Tuple[Tuple[bytes, bytes], ...] = tuple(exchange.req_hdrs or ())
        self.request_close = exchange._request_close
        self.upgrade = exchange._upgrade
        self.expect = expect
        self.origin_key: OriginType = exchange._origin_key  # type: ignore[assignment]  # set by request_start
        self.head_fields: _HeadFields = exchange._head_fields  # type: ignore[assignment]  # set by request_start
        self.heads: Dict[int, bytes] = {}
        self.special = bool(
            self.request_close or self.upgrade or expect
            or self.head_fields[2] is not None
        )

    @staticmethod
    def matches(headers: Iterable[Any]) -> bool:
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

    A listener that raises ends the exchange: the exception goes to the
    loop's exception handler, then ``error`` comes with a ListenerError
    whose ``__cause__`` is the exception, and the connection is closed.
    Bytes that follow a complete response in what was read are reported
    after its response_done, as an ``error`` (ExtraDataError).

    Attributes: method, uri, req_hdrs (as sent, without the fields thor
    writes), res_status, res_version (b"1.1" or b"1.0", set before
    response_start), conn (the connection while one carries the exchange,
    else None), input_header_length (the response head's bytes) and
    input_transfer_length (the response's bytes after its head, as they
    came; complete at response_done).
    """

    # The state every exchange starts in is kept on the class: __init__
    # stores only what differs, and each attribute is set on the instance
    # when it first changes (HttpServerExchange does the same).
    method: Optional[bytes] = None
    uri: Optional[bytes] = None
    req_hdrs: Optional[RawHeaderListType] = None
    res_status: Optional[bytes] = None
    res_version: Optional[bytes] = None
    input_header_length = 0
    input_transfer_length = 0
    _state = _NEW
    _origin_key: Optional[OriginType] = None
    _conn: Optional[_ClientConnection] = None
    _pending_connect: Optional[_PendingConnect] = None
    _head_fields: Optional[_HeadFields] = None
    _head_entry: Optional[_KnownRequest] = None  # the _request_heads entry this request matched
    # How the request body is framed (thor.http.writer): chosen by the
    # fields, else by the first body chunk (chunked) or by request_done
    # (none); the head waits for it.
    _writer: Optional[BodyWriter] = None
    _body: Optional[List[bytes]] = None  # request body not yet written
    _body_size = 0
    _kept: Optional[List[bytes]] = None  # request body kept for a replay
    _kept_size = 0
    _replay_ok = True
    _req_done = False
    _end: Optional[bytes] = None  # what ends the body, from request_done
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
    _nonfinal = 0  # interim responses received
    _queue_deadline: Optional[float] = None  # while it waits in its origin's queue

    def __init__(self, client: HttpClient) -> None:
        self._init_emitter()
        self.client = client

    def __repr__(self) -> str:
        return "<HttpClientExchange %r %r>" % (self.method, self.uri)

    @property
    def conn(self) -> Optional[_ClientConnection]:
        """The connection carrying the exchange (None before it has one,
        and once its response is done): Thor 0.17's ``exchange.conn``, with
        ``tcp_conn``, ``res_version`` and ``close()``."""
        return self._conn

    # -- the request ---------------------------------------------------------

    def request_start(self, method: TextInput, uri: TextInput, headers: Iterable[Tuple[Any, Any]]) -> None:
        """Start the request to ``uri`` (an absolute http:// or https://
        URL). Hop-by-hop fields in ``headers`` and Host are dropped: thor
        writes Host from the URL, and its own framing and Connection
        fields. A bad URL is reported with an ``error`` event (UrlError);
        bad fields raise here, before anything is sent."""
        if self._state != _NEW:
            raise error.StateError("request_start called twice")
        if headers.__class__ is not list and headers.__class__ is not tuple:
            headers = list(headers)  # read more than once below
        key: Optional[Tuple[Any, Any, Tuple[Any, ...]]] = None
        if method.__class__ in _EXACT and uri.__class__ in _EXACT:
            try:
                key = (method, uri, tuple(headers))
                known = _request_heads.get(key)
            except TypeError:  # unhashable parts: not cached
                key = None
                known = None
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
        fields: List[_CheckedField] = []
        exact = key is not None and _KnownRequest.matches(headers)
        content_length: Optional[int] = None
        connection: Optional[List[bytes]] = None  # the Connection values
        expect = False
        special = _REQUEST_SPECIAL
        for name, value in headers:
            raw, lower = _field_name(name)
            if value.__class__ is bytes:
                value = value.strip(b" \t")
                if len(value.translate(None, CTL_EXCEPT_HTAB)) != len(value):
                    raise error.BadHeaderError(
                        "control character in field value: " + error.detail_text(value)
                    )
            else:
                value = encode_field_value(value)
            kind = special.get(lower)
            if kind is None:
                fields.append((raw, lower, value))
            elif kind == _CONNECTION:
                if connection is None:
                    connection = []
                connection.append(value)
            elif kind == _UPGRADE:
                # Kept: asking for a protocol switch is the application's
                # call; thor adds the matching Connection option.
                self._upgrade = True
                fields.append((raw, lower, value))
            elif kind == _LENGTH_FIELD:
                content_length = check_content_length(value, content_length)
            elif kind == _EXPECT:
                expect = True
                fields.append((raw, lower, value))
        tokens = field_tokens(connection) if connection else None
        if tokens:
            if b"close" in tokens:
                self._request_close = True
            # RFC 9110 7.6.1: fields named by Connection are hop-by-hop too.
            fields = [f for f in fields if f[1] not in tokens or f[1] == b"upgrade"]
        self.method = method
        self._state = _STARTED
        self.req_hdrs = [(raw, value) for raw, _, value in fields]
        if content_length is not None:
            self._writer = LengthWriter(content_length)
        elif expect:
            # The head must go out before the body: the application may wait
            # for 100 Continue before sending any.
            self._writer = CHUNKED_WRITER
        raw_uri = uri if uri.__class__ is bytes else _url_bytes(uri)
        self.uri = raw_uri
        parsed = _url_cache.get(raw_uri) if raw_uri is not None else None
        if parsed is None:
            try:
                parsed = _parse_url(raw_uri)
            except error.UrlError as exc:
                self._state = _DONE
                self.client.loop.schedule(0, self._fail, exc)
                return
            if len(_url_cache) < _URL_CACHE_MAX:
                _url_cache[raw_uri] = parsed  # type: ignore[index]  # not None: _parse_url refuses None
        origin_key, target, authority = parsed
        if method == b"CONNECT":
            target = authority
        elif method == b"OPTIONS" and raw_uri.count(b"/") == 2 and b"?" not in raw_uri:  # type: ignore[union-attr,operator]  # parsed: not None
            # RFC 9112 3.2.4: an empty path asks about the server as a
            # whole, which the last hop sends as OPTIONS * (http://h:p has
            # exactly two slashes; http://h:p/ asks about "/").
            target = b"*"
        self._origin_key = origin_key
        self._head_fields = (target, authority, content_length)
        if exact:
            # Validated, and every part exactly str or bytes (a subclass
            # might not compare, hash or encode as the value it shows).
            if len(_request_heads) >= _REQUEST_HEADS_MAX:
                _request_heads.clear()  # one-off requests must not pin it
            known = _request_heads[key] = _KnownRequest(self, expect)  # type: ignore[index]  # exact: key is set
            self._head_entry = known
        self.client._acquire(self)

    def _start_special(self, known: _KnownRequest) -> None:
        """request_start's settings for a known request (_request_heads)
        that closes, upgrades, has a Content-Length or expects 100."""
        if known.request_close:
            self._request_close = True
        if known.upgrade:
            self._upgrade = True
        content_length = known.head_fields[2]
        if content_length is not None:
            self._writer = LengthWriter(content_length)
        elif known.expect:
            self._writer = CHUNKED_WRITER

    def request_body(self, chunk: BodyInput) -> None:
        """Send a chunk of the request body (bytes, or str as UTF-8).
        Raises BodyLengthError if it goes beyond the Content-Length given."""
        if self._state == _NEW or self._req_done:
            raise error.StateError("request_body outside a request")
        if chunk.__class__ is not bytes:
            chunk = encode_body_chunk(chunk)
        if not chunk:
            return
        writer = self._writer
        if writer is None:
            writer = self._writer = CHUNKED_WRITER
        data = writer.chunk(chunk)  # raises BodyLengthError past Content-Length
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

    def request_done(self, trailers: Optional[_HeaderList] = None) -> None:
        """Finish the request. ``trailers`` go out with a chunked body (they
        are checked whatever the framing; fields that may not be trailers
        are dropped). Raises BodyLengthError if the body is shorter than
        its Content-Length, BadHeaderError for a bad trailer field, having
        sent nothing more."""
        if self._state == _NEW or self._req_done:
            raise error.StateError("request_done outside a request")
        writer = self._writer
        if writer is None:
            writer = NO_BODY_WRITER
        end = writer.end(trailers)
        self._req_done = True
        self._writer = writer
        if end:
            self._end = end
        if self._state == _DONE:
            return
        conn = self._conn
        if conn is None:
            return  # written once a connection is attached (_connected)
        if self._head_written:
            self._write_end(conn)
        elif writer is NO_BODY_WRITER:
            # The usual request, a head alone: _write_head and _write_end,
            # inline.
            self._head_written = True
            known = self._head_entry
            head = None if known is None else known.heads.get(NO_BODY)
            if not conn.closed:
                conn.tcp.write(head or self._build_head())
            self._request_sent = True
            if self.client.read_timeout is not None:
                conn.request_sent()
        else:
            self._write_head()
            self._write_end(conn)

    def _keep(self, chunk: bytes) -> None:
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

    def _build_head(self) -> bytes:
        known = self._head_entry
        if known is not None:
            # Built from the fields request_start checked, once per framing.
            framing = self._writer.framing  # type: ignore[union-attr]  # set once a head is built
            head = known.heads.get(framing)
            if head is None:
                head = known.heads[framing] = self._make_head(known.req_hdrs)
            return head
        return self._make_head(self.req_hdrs or ())

    def _make_head(self, req_hdrs: Iterable[Tuple[bytes, bytes]]) -> bytes:
        target, authority, content_length = self._head_fields  # type: ignore[misc]  # set by request_start
        lines = [self.method or b"", b" ", target, b" HTTP/1.1\r\nHost: ", authority, b"\r\n"]
        for raw, value in req_hdrs:
            lines.append(raw + b": " + value + b"\r\n")
        framing = self._writer.framing  # type: ignore[union-attr]  # set once a head is built
        if framing == LENGTH:
            lines.append(b"Content-Length: %d\r\n" % content_length)  # type: ignore[str-format]  # an int with LENGTH
        elif framing == CHUNKED:
            lines.append(b"Transfer-Encoding: chunked\r\n")
        elif self.method in _LENGTH_EXPECTED:
            lines.append(b"Content-Length: 0\r\n")
        if self._upgrade:
            lines.append(b"Connection: upgrade\r\n")
        elif self._request_close:
            lines.append(b"Connection: close\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def _write_head(self) -> None:
        self._head_written = True
        self._conn.write(self._build_head())  # type: ignore[union-attr]  # called with a connection

    def _write_end(self, conn: _ClientConnection) -> None:
        if self._end is not None:
            conn.write(self._end)
        self._request_sent = True
        conn.request_sent()

    def _connected(self) -> None:
        """A connection is attached: write what the application has given."""
        conn: _ClientConnection = self._conn  # type: ignore[assignment]  # just attached
        if self._writer is None:
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

    def _output_paused(self, paused: bool) -> None:
        if paused != self._paused_out:
            self._paused_out = paused
            self._emit("pause", paused)

    # -- retries -------------------------------------------------------------

    def _replayable(self) -> bool:
        return (
            self._replay_ok
            and self._retries < self.client.retry_limit
            and (self.method in IDEMPOTENT or not self._head_written)
        )

    def _retry(self) -> None:
        self._retries += 1
        self._conn = None
        self._head_written = False
        self._request_sent = False
        self._fresh = True
        kept = self._kept or []
        if self._writer is CHUNKED_WRITER:
            self._body = [encode_chunk(c) for c in kept]
        else:
            self._body = list(kept)
        self._body_size = sum(map(len, self._body))
        self.client.loop.schedule(self.client.retry_delay, self._retry_now)

    def _retry_now(self) -> None:
        if self._state != _DONE:
            self.client._acquire(self)

    # -- response control ----------------------------------------------------

    def pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) response_body events; while
        paused, nothing more is read from the connection."""
        self._input_paused = paused = bool(paused)
        conn = self._conn
        if conn is not None and conn.exchange is self:
            conn.pause(paused)

    # Thor 0.17's name.
    res_body_pause = pause

    def abort(self) -> None:
        """Abandon the exchange: its connection (if it has one) is closed,
        and it emits no further events."""
        if self._state == _DONE and not self._switching:
            self._events.clear()
            return
        self._failed = True  # nothing more is emitted
        self._events.clear()
        self._drop()

    def _drop(self) -> None:
        """End the exchange: give up its connection (closed: its state is
        unknown) or its place in the queue."""
        self._state = _DONE
        pending = self._pending_connect
        if pending is not None:
            pending.cancelled = True
        conn = self._conn
        self._conn = None
        if conn is not None:
            if conn.exchange is self:
                conn.exchange = None
            conn.abort()
        origin = self.client._origins.get(self._origin_key)  # type: ignore[arg-type]  # None finds nothing
        if origin is not None:
            try:
                origin.queue.remove(self)
            except ValueError:
                pass

    def tunnel(self) -> Tuple[TcpConnection, bytes]:
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

    def _emit(self, event: str, *args: Any) -> None:
        try:
            self.emit(event, *args)
        except Exception as exc:
            if event == "error":
                # Reported, and that is all: the exchange has ended already.
                loop = self.client.loop
                loop.exception_handler(loop, exc, self)
            else:
                self._listener_failed(exc, event)

    def _listener_failed(self, exc: Exception, event: str) -> None:
        """A listener raised: report it to the loop, and end the exchange
        with ListenerError (its connection closed: the exchange was cut off
        at an unknown point)."""
        loop = self.client.loop
        loop.exception_handler(loop, exc, self)
        if self._failed:
            return
        err = error.ListenerError(
            "a %s listener raised %s: %s" % (event, exc.__class__.__name__, exc)
        )
        err.__cause__ = exc
        self._drop()
        self._fail(err)

    def _orphaned(self) -> None:
        """The application closed the exchange's connection (Thor 0.17's
        ``exchange.conn.close()``): it fails, from the loop, as Thor 0.17's
        does once the close is seen."""
        self._conn = None
        self._state = _DONE
        self.client.loop.schedule(0, self._fail, error.ConnectionClosedError(
            "the connection was closed by the application"
        ))

    def _fail(self, err: error.HttpError) -> None:
        if self._failed:
            return
        self._failed = True
        self._state = _DONE
        self._conn = None
        self._emit("error", err)
        self._events.clear()


def _url_bytes(uri: object) -> Optional[bytes]:
    if isinstance(uri, str):
        try:
            return uri.encode("ascii")
        except UnicodeEncodeError:
            return None
    if isinstance(uri, (bytearray, memoryview)):
        return bytes(uri)
    raise TypeError("the URI is str or bytes, not %s" % type(uri).__name__)


def _parse_url(uri: Optional[bytes]) -> _ParsedUrl:
    """((scheme, host, port), target, authority) for an absolute http(s) URL."""
    if uri is None:
        raise error.UrlError("URLs must be ASCII (percent-encode the rest)")
    if not uri or len(uri.translate(None, _URL_BAD)) != len(uri):
        raise error.UrlError("URL is empty or holds whitespace or control characters")
    text = uri.decode("ascii")  # printable ASCII, checked just above
    try:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        host = parts.hostname
        port: Optional[int] = parts.port
    except (ValueError, UnicodeDecodeError) as exc:
        raise error.UrlError("%s: %s" % (exc, text)) from None
    if scheme not in ("http", "https"):
        raise error.UrlError("unsupported URL scheme %r: %s" % (scheme, text))
    if not host:
        raise error.UrlError("URL has no host: %s" % text)
    default = 443 if scheme == "https" else 80
    if port is None:
        if parts.netloc.endswith(":"):
            raise error.UrlError("URL has an empty port: %s" % text)
        port = default
    if port == 0:
        raise error.UrlError("URL port 0: %s" % text)
    name = "[%s]" % host if ":" in host else host
    authority = name if port == default else "%s:%d" % (name, port)
    target = parts.path or "/"
    if parts.query or text.endswith("?"):
        target += "?" + parts.query
    return (scheme, host, port), target.encode("ascii"), authority.encode("ascii")


# -- the command line --------------------------------------------------------

# The exit status for a closed stdout: what a shell reports for cat killed
# by SIGPIPE (128 + 13).
_EXIT_PIPE = 141


def _stdout_gone() -> None:
    """stdout's reader has gone: send what is left to /dev/null, so that
    the interpreter's own flush at exit does not fail (and print) too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Optional[List[str]] = None) -> int:
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

    headers: List[Tuple[str, str]] = []
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
    result = {"code": 1, "status": 0}
    exchange = client.exchange()

    def write(data: bytes) -> None:
        try:
            out.write(data)
        except BrokenPipeError:
            # The reader has gone (``| head``): stop, quietly, as cat does.
            _stdout_gone()
            result["code"] = _EXIT_PIPE
            exchange.abort()
            loop.stop()

    @on(exchange, "response_start")
    def response_start(code: bytes, phrase: bytes, res_headers: RawHeaderListType) -> None:
        if args.include:
            lines = [b"HTTP/" + (exchange.res_version or b"1.1") + b" " + code
                     + (b" " + phrase if phrase else b"") + b"\r\n"]
            lines.extend(name + b":" + value + b"\r\n" for name, value in res_headers)
            lines.append(b"\r\n")
            write(b"".join(lines))
        result["status"] = int(code)

    exchange.on("response_body", write)

    @on(exchange, "response_done")
    def response_done(trailers: RawHeaderListType) -> None:
        try:
            out.flush()
        except BrokenPipeError:
            _stdout_gone()
            result["code"] = _EXIT_PIPE
        else:
            result["code"] = 22 if args.fail and result["status"] >= 400 else 0
        loop.stop()

    @on(exchange, "error")
    def on_error(err: error.HttpError) -> None:
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
    client.close()
    if result["code"] != _EXIT_PIPE:
        try:
            out.flush()
        except BrokenPipeError:
            _stdout_gone()
            return _EXIT_PIPE
    return result["code"]


if __name__ == "__main__":
    sys.exit(main())
