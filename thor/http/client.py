"""The HTTP/1.1 client: HttpClient, its connection pools, and its exchanges.

Connections are pooled per origin (scheme, host, port); at most
``max_server_conn`` are open to one origin and requests beyond that wait in
a queue (at most ``queue_timeout`` seconds), served in order as connections
come free. Every change to a pool (a request, a connection going idle,
closing or failing to open, a queue deadline) ends in one call of
``HttpClient._assign``, which alone decides what follows from it (but
for the usual case, which _acquire takes itself: a request that finds no
queue and an idle connection that passes the check below). A
connection carries one exchange at a time (no pipelining), and
goes back to the pool only when its response ended cleanly, the request was
sent in full and nothing followed the response: bytes that arrive while it
is idle, or beyond the end of a response, mean it cannot be trusted and it
is closed (bytes that came with the response are reported to its exchange,
after response_done, as ExtraDataError). Before an idle connection is
reused, its socket is checked (poll(), then a non-blocking peek when that
reports something) so that one the server has closed in the meantime is
not handed a request.

A request whose connection closes before any byte of its response arrived
is retried on a new connection (``retry_limit`` times, ``retry_delay``
apart) when that is safe: its method is idempotent (RFC 9110 9.2.2), or
nothing of it had been sent; and its body was small enough to keep
(``_REPLAY_LIMIT``). A POST that was sent is never replayed: it fails with
``ConnectionClosedError``. Every other failure is an ``error`` event, after
which the exchange emits nothing more; that includes an exception raised
by one of the exchange's own listeners (``ListenerError``, reported to the
loop's exception handler first).

With ``HttpClient.http2`` on, a direct https:// connection offers h2 by
ALPN; an origin that picks it gets one HTTP/2 connection (``_Origin.h2``,
thor.http.client_h2, imported when first needed) on which _assign gives
each exchange a stream, with the events, errors, timeouts and retry rules
described here; one asking for Upgrade gets an HTTP/1.1 connection
instead. With it off, nothing of that runs.

With ``HttpClient.proxy`` set, the client connects to that proxy only:
http:// requests go to it in absolute-form over connections pooled per
proxy, https:// ones through a CONNECT tunnel, with TLS to the origin
inside it (_TunnelClient).

An exchange has two named states (``_req_state``, ``_res_state``, after
h11's per-role states): how far the request has got, and how far the
response has, and how the exchange ended.

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

import base64
import errno
import itertools
import os
import select
import socket
import sys
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import thor.loop
from thor.events import EventEmitter, on
from thor.tcp import TcpClient
from thor.http import error
from thor.http.headers import (
    encode_body_chunk, encode_field_name, encode_field_value, field_tokens, is_token,
    to_bytes_field, CTL_EXCEPT_HTAB,
)
from thor.http.parser import HttpParser, CHUNKED, LENGTH
from thor.http.writer import (
    BodyWriter, LengthWriter, check_content_length, encode_chunk, hand_over,
    CHUNKED_WRITER, NO_BODY_WRITER,
)

if TYPE_CHECKING:
    import ssl
    from typing import (
        Any, Callable, Deque, Dict, Hashable, Iterable, List, Optional, Tuple, Type, Union,
    )

    from thor.loop import LoopBase, ScheduledEvent
    from thor.tcp import TcpConnection
    from thor.http.client_h2 import H2ClientConnection
    from thor.http.h2.connection import H2Config
    from thor.types import BodyInput, OriginType, RawHeaderListType, TextInput

    # A request's fields as request_start keeps them: (name, lower-cased
    # name, value).
    _CheckedField = Tuple[bytes, bytes, bytes]
    # (origin key, request-target, authority) for a URL.
    _ParsedUrl = Tuple[OriginType, bytes, bytes]
    # (request-target, authority, Content-Length or None).
    _HeadFields = Tuple[bytes, bytes, Optional[int]]
    _HeaderList = List[Tuple[Any, Any]]

__all__ = ["HttpClient", "HttpClientExchange", "ProxyTunnelError"]

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
_new_object = object.__new__
_MSG_PEEK = socket.MSG_PEEK
# What asks first whether an idle connection has anything to read (see
# _ClientConnection.usable); None where the platform has no poll().
_new_poll = getattr(select, "poll", None)
_POLLIN = getattr(select, "POLLIN", 1)

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
    a response's field section may be 128 KiB unless it says otherwise),
    ``proxy`` (None, or an upstream HTTP proxy's URL, "http://host:port"
    or "http://user:password@host:port": http:// requests go to it in
    absolute-form, https:// ones through a CONNECT tunnel; see _Proxy and
    _TunnelClient), ``http2`` (False: when true, https:// connections made
    directly offer h2 over ALPN, and an origin that picks it gets one
    HTTP/2 connection carrying its exchanges at once; thor.http.client_h2.
    With your own ``tls_context``, call its ``set_alpn_protocols(["h2",
    "http/1.1"])`` yourself: thor does not change a context it is given),
    ``http2_config`` (None, or a thor.http.h2.H2Config for those
    connections).
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
    proxy: Optional[str] = None
    http2: bool = False
    http2_config: Optional[H2Config] = None

    def __init__(self, loop: Optional[LoopBase] = None, idle_timeout: Optional[float] = None) -> None:
        self.loop: LoopBase = loop or thor.loop.default_loop()
        if idle_timeout is not None:
            self.idle_timeout = idle_timeout
        # Pools, by origin (scheme, host, port), or with a proxy (see _acquire).
        self._origins: Dict[Hashable, _Origin] = {}
        self._proxy_cache: Optional[_Proxy] = None  # the proxy setting, parsed

    def exchange(self) -> HttpClientExchange:
        """Create a request/response exchange."""
        # HttpClientExchange(self), less the cost of calling __init__ from
        # the type (some 500 instructions of a request's): its body, here.
        exchange: HttpClientExchange = _new_object(HttpClientExchange)
        exchange._init_emitter()
        exchange.client = self
        exchange._req_state = _REQ_IDLE
        exchange._res_state = _RES_WAIT
        exchange._writer = None
        exchange._input_paused = False
        exchange._via = None
        exchange._head_written = False
        exchange._body = None
        exchange._end = None
        exchange._request_close = False
        return exchange

    def close(self) -> None:
        """Close every idle pooled connection. Exchanges in progress carry
        on; their connections close when they are done with them."""
        for origin in list(self._origins.values()):
            for conn in list(origin.idle):
                conn.close()
            if origin.h2 is not None:
                origin.h2.release()  # closes once its streams are done

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
    #
    # An origin's pool changes in a few ways: an exchange wants a connection
    # (_acquire), a connection comes free (_ClientConnection._go_idle), one
    # closes or fails to open (_lost), an exchange gives up its place
    # (_withdraw), a queue deadline passes (_queue_timer). Each makes its
    # change and then calls _assign, the one place that decides what
    # follows from it (a connection going idle while nothing waits leaves
    # it nothing to decide, and does not call it: once per response; nor
    # does a request that finds nothing queued and an idle connection
    # usable, which _acquire gives it: once per request).

    def _acquire(self, exchange: HttpClientExchange, retry: bool = False) -> None:
        """``exchange`` wants a connection: it joins the queue of its
        origin (or of its proxy, for an http:// request through one).
        ``retry``: it has had one (else it has no _via, no _retries)."""
        key: Hashable = exchange._origin_key
        proxy = self.proxy
        via = None
        if proxy is not None:
            via = self._parsed_proxy(proxy)
            if exchange._origin_key[0] == "http":  # type: ignore[index]  # set by request_start
                exchange._via = via
                key = (None, via.key)
            else:
                key = (key, via.key)
        elif retry and exchange._via is not None:
            exchange._via = None  # the setting was unset before a retry
        pool = self._origins.get(key)
        if pool is None:
            pool = self._origins[key] = _Origin(key, exchange._origin_key, via)  # type: ignore[arg-type]  # set by request_start
        exchange._pool = pool
        idle = pool.idle
        if idle and not retry and not pool.queue and pool.h2 is None and not pool.assigning:
            # The usual case of a busy client, taken without a pass of
            # _assign: nothing waits ahead of it and a connection is idle,
            # so _assign would give it the one used last if that is
            # usable. (If not, _assign finds it so again and closes it.)
            conn = idle[-1]
            if conn.usable(exchange.method in IDEMPOTENT):
                idle.pop()
                conn.attach(exchange)
                return
        pool.queue.append(exchange)
        self._assign(pool)

    def _parsed_proxy(self, proxy: Union[str, bytes]) -> _Proxy:
        parsed = self._proxy_cache
        if parsed is None or parsed.setting != proxy:
            parsed = self._proxy_cache = _Proxy(proxy)
        return parsed

    def _lost(self, origin: _Origin, conn: Optional[_ClientConnection] = None) -> None:
        """A connection to ``origin`` closed (``conn``), or failed to open."""
        origin.count -= 1
        if conn is not None:
            try:
                origin.idle.remove(conn)
            except ValueError:
                pass
        self._assign(origin)

    def _withdraw(self, origin: _Origin, exchange: HttpClientExchange) -> None:
        """``exchange`` ended: out of ``origin``'s queue, if it waits there."""
        try:
            origin.queue.remove(exchange)
        except ValueError:
            return
        self._assign(origin)

    def _queue_timer(self, origin: _Origin) -> None:
        origin.timer = None
        self._assign(origin, True)

    def _assign(self, origin: _Origin, expire: bool = False) -> None:
        """Serve ``origin``'s queue, in order. The exchange at its head
        gets an idle connection (the most recently used; one found closed
        is dropped), or a new one while fewer than ``max_server_conn`` are
        open; a retry always gets a new one (a pooled connection may be as
        stale as the one that failed it), an idle one being closed to make
        room. Those left wait, each for at most ``queue_timeout`` seconds
        (QueueTimeoutError, from the queue's timer: ``expire``, so that
        no exchange fails inside a call of the application's). An origin
        with nothing left is forgotten.

        With HTTP/2 (``origin.h2``), the exchange gets a stream on that
        connection while it has room, and waits otherwise (one asking for
        Upgrade, which has no meaning on a stream, RFC 9113 8.6, gets an
        HTTP/1.1 connection as above; see _connect); while the first
        connection of an origin that may speak it is opening
        (``origin.probing``), no other is opened: its ALPN answer says
        whether it will carry them all.

        A change made while this runs (a connection closed here, a request
        made by a listener this calls) calls it again: that call returns at
        once, and the pass in progress sees the change."""
        if origin.assigning:
            return
        origin.assigning = True
        expired = None
        try:
            queue = origin.queue
            idle = origin.idle
            while queue:
                exchange = queue[0]
                if exchange._res_state >= _RES_DONE:
                    queue.popleft()  # ended while it waited
                elif origin.h2 is not None and not exchange._upgrade:
                    if not origin.h2.has_room:
                        break
                    queue.popleft()
                    origin.h2.attach(exchange)
                elif idle and not exchange._retries:
                    conn = idle.pop()
                    # A request that could not be replayed if the
                    # connection turned out closed gets the socket checked.
                    if conn.usable(exchange.method in IDEMPOTENT):
                        queue.popleft()
                        conn.attach(exchange)
                    else:
                        conn.close()
                elif origin.count < self.max_server_conn and not origin.probing:
                    queue.popleft()
                    self._connect(origin, exchange)
                elif idle:
                    idle[0].close()  # room for a retry's new connection
                else:
                    break
            if queue:
                expired = self._wait(origin, expire)
        finally:
            origin.assigning = False
        if expired:
            for exchange in expired:
                exchange._fail(error.QueueTimeoutError(
                    "no connection to %s came free within %s seconds"
                    % (origin.label, self.queue_timeout)
                ))
        if not origin.queue:
            if origin.timer is not None:
                origin.timer.delete()
                origin.timer = None
            if not origin.count and self._origins.get(origin.key) is origin:
                del self._origins[origin.key]

    def _wait(self, origin: _Origin, expire: bool) -> Optional[List[HttpClientExchange]]:
        """For _assign: the exchanges left in the queue wait. Those new to
        it get their deadline; with ``expire``, those past theirs are taken
        out and returned; the timer is set for the next. Deadlines are in
        queue order: an exchange joins at the tail, after the others."""
        timeout = self.queue_timeout
        if timeout is None:
            return None
        queue = origin.queue
        now = self.loop._clock()
        for exchange in reversed(queue):
            if exchange._queue_deadline is not None:
                break
            exchange._queue_deadline = now + timeout
        expired = None
        if expire:
            while queue and queue[0]._queue_deadline <= now:  # type: ignore[operator]  # set just above
                if expired is None:
                    expired = []
                expired.append(queue.popleft())
        if queue and origin.timer is None:
            deadline: float = queue[0]._queue_deadline  # type: ignore[assignment]  # set just above
            origin.timer = self.loop.schedule(max(deadline - now, 0), self._queue_timer, origin)
        return expired

    def _connect(self, origin: _Origin, exchange: HttpClientExchange) -> None:
        origin.count += 1
        tcp_client: TcpClient
        offer_h2 = False
        if origin.proxy is not None and origin.tls:
            tcp_client = _TunnelClient(self, origin.proxy)  # type: ignore[assignment]  # the TcpClient surface used here
        elif origin.tls:
            tls_class = self.tls_client_class
            if tls_class is None:
                from thor.tls import TlsClient

                tls_class = TlsClient
            context = self.tls_context
            # A context of the application's may offer h2 by itself: an
            # origin that takes it is spoken to in HTTP/2 whatever the
            # setting (HTTP/1.1 there would fail every exchange). An
            # Upgrade request needs HTTP/1.1: thor's own context offers h2
            # only for the others (it fails if the origin picks h2 on a
            # context of the application's: H2ClientConnection.attach).
            offer_h2 = context is not None
            if self.http2 and not exchange._upgrade:
                offer_h2 = True
                if context is None:
                    context = _h2_context()
                # Until it is known whether the origin speaks HTTP/2 (or,
                # if it did, whether it still does), this one connection
                # is the only one opened (_assign): it may carry them all.
                protocol = origin.protocol
                origin.probing = protocol is None or protocol == "h2"
            tcp_client = tls_class(self.loop, tls_context=context)  # type: ignore[call-arg]  # a TlsClient takes it
        else:
            tcp_client = self.tcp_client_class(self.loop)
        pending = _PendingConnect(self, origin, exchange, offer_h2)
        policy = self._ip_policy()
        if policy is not None:
            if not hasattr(type(tcp_client), "check_ip"):
                # A transport that would not apply the policy: refused,
                # rather than connected unchecked (from the loop, as a
                # connect error comes).
                self.loop.schedule(0, pending.failed, PermissionError, errno.EACCES)
                return
            # Enforced by the TcpClient after resolution, before any socket
            # is made: connect_error(PermissionError, EACCES) if it refuses
            # every address.
            tcp_client.check_ip = policy
        tcp_client.on("connect", pending.connected)
        tcp_client.on("connect_error", pending.failed)
        tcp_client.connect(origin.host, origin.port, self.connect_timeout)


_h2_context_cache: Optional[ssl.SSLContext] = None


def _h2_context() -> ssl.SSLContext:
    """The client context offering h2 (with http/1.1) over ALPN, made once:
    the system's trust store, certificates and host names verified."""
    global _h2_context_cache
    if _h2_context_cache is None:
        import ssl

        context = ssl.create_default_context()
        context.set_alpn_protocols(["h2", "http/1.1"])
        _h2_context_cache = context
    return _h2_context_cache


class _Origin:
    """A pool: the connections to one origin (scheme, host, port), to an
    https origin through a proxy, or to a proxy for http:// requests.
    Where they go: ``host``, ``port``, with TLS to the origin (``tls``),
    through ``proxy`` (a CONNECT tunnel; None when direct, or when the
    proxy is the peer itself); ``label`` names the pool in messages,
    ``peer`` the host a connection is made to. ``count``
    connections are open or opening, ``idle`` ones in the pool,
    exchanges waiting in ``queue``, the ``timer`` for the queue's next
    deadline, and whether HttpClient._assign is ``assigning`` them.
    With ``http2``: the HTTP/2 connection that takes new streams (``h2``),
    the ALPN ``protocol`` the origin chose last ("h2", "http/1.1" or "";
    None: unknown), and whether the connection that will tell it is
    opening (``probing``)."""

    __slots__ = (
        "key", "host", "port", "tls", "proxy", "label", "peer",
        "idle", "count", "queue", "timer", "assigning", "h2", "protocol", "probing",
    )

    def __init__(self, key: Hashable, origin: OriginType, via: Optional[_Proxy]) -> None:
        self.key = key
        scheme, host, port = origin
        self.tls = scheme == "https"
        self.proxy = via if self.tls else None
        if via is None:
            self.host, self.port = host, port
            self.label = "%s://%s:%d" % origin
            self.peer = host
        else:
            self.peer = "the proxy %s:%d" % (via.host, via.port)
            if self.tls:
                self.host, self.port = host, port
                self.label = "%s://%s:%d through %s" % (scheme, host, port, self.peer)
            else:
                self.host, self.port = via.host, via.port
                self.label = self.peer
        self.idle: List[_ClientConnection] = []
        self.count = 0
        self.queue: Deque[HttpClientExchange] = deque()
        self.timer: Optional[ScheduledEvent] = None
        self.assigning = False
        self.h2: Optional[H2ClientConnection] = None
        self.protocol: Optional[str] = None
        self.probing = False


class _PendingConnect:
    """A connection being opened for an exchange (which may have ended
    meanwhile: the connection then goes to the pool, which hands it to the
    next in the queue)."""

    __slots__ = ("client", "origin", "exchange", "offer_h2")

    def __init__(
        self, client: HttpClient, origin: _Origin, exchange: HttpClientExchange, offer_h2: bool = False,
    ) -> None:
        self.client = client
        self.origin = origin
        self.exchange = exchange
        self.offer_h2 = offer_h2  # h2 was offered over ALPN

    def connected(self, tcp_conn: TcpConnection) -> None:
        probed = False
        if self.offer_h2:
            probed = self.origin.probing
            if self._alpn(tcp_conn):
                return
        conn = _ClientConnection(self.client, self.origin, tcp_conn)
        exchange = self.exchange
        if exchange._res_state < _RES_DONE:
            conn.attach(exchange)
        else:
            conn.release()
        if probed and self.origin.queue:
            self.client._assign(self.origin)  # they waited for the ALPN answer

    def _alpn(self, tcp_conn: TcpConnection) -> bool:
        """Whether the origin chose h2: the connection is then an HTTP/2
        one, which takes this exchange and those waiting."""
        origin = self.origin
        origin.probing = False
        try:
            protocol = getattr(tcp_conn, "socket").selected_alpn_protocol() or ""
        except (AttributeError, OSError, ValueError):
            protocol = ""
        origin.protocol = protocol
        if protocol != "h2":
            return False
        from thor.http.client_h2 import H2ClientConnection

        client = self.client
        conn = H2ClientConnection(client, origin, tcp_conn)
        if origin.h2 is None:
            origin.h2 = conn
        exchange = self.exchange
        if exchange._res_state < _RES_DONE:
            conn.attach(exchange)
        if origin.h2 is not conn:
            conn.release()  # another took the pool's place: this one stream only
        elif not conn.streams:
            conn._stream_gone()  # idle: its idle deadline
        if origin.queue:
            client._assign(origin)
        return True

    def failed(self, errtype: Any, err: Any) -> None:
        self.origin.probing = False
        exchange = self.exchange
        if exchange._res_state < _RES_DONE:
            exchange._fail(_connect_error(errtype, err, self.origin.peer))
        self.client._lost(self.origin)


# getaddrinfo's error codes by number, for messages.
_GAI_NAMES = {
    getattr(socket, name): name for name in dir(socket) if name.startswith("EAI_")
}


def _connect_error(errtype: Any, err: Any, host: str) -> error.HttpError:
    """The HttpError for a TcpClient / TlsClient connect_error (an
    _TunnelClient's may be one already)."""
    if isinstance(err, error.HttpError):
        return err
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


# Defined with the other errors; thor.http.client.ProxyTunnelError too.
ProxyTunnelError = error.ProxyTunnelError


class _Proxy:
    """An upstream proxy, from ``HttpClient.proxy``: ``http://host:port``,
    with ``user:password@`` before the host for Basic authentication
    (RFC 9110 11.7.1; percent-encoded, as in any URL). ``host:port`` alone
    reads as ``http://host:port``; the port defaults to 80, as in any
    http:// URL. A bad setting raises UrlError."""

    __slots__ = ("setting", "key", "host", "port", "authorization")

    def __init__(self, setting: Union[str, bytes]) -> None:
        self.setting = setting
        text = setting.decode("ascii", "replace") if isinstance(setting, bytes) else setting
        if "://" not in text:
            text = "http://" + text
        try:
            parts = urlsplit(text)
            host = parts.hostname
            port = parts.port
        except ValueError as exc:
            raise error.UrlError("proxy %s: %s" % (exc, _no_credentials(text))) from None
        if parts.scheme.lower() != "http":
            # TLS to the proxy itself (an https:// proxy) is not supported.
            raise error.UrlError("the proxy must be an http:// URL: " + _no_credentials(text))
        if not host or len(text.translate(_URL_BAD_TEXT)) != len(text):
            raise error.UrlError("not a proxy URL: " + _no_credentials(text))
        self.host: str = host
        self.port: int = port or 80
        # What its pools are known by.
        self.key = "http://%s:%d" % ("[%s]" % host if ":" in host else host, self.port)
        self.authorization: Optional[bytes] = None
        if parts.username is not None:
            credentials = "%s:%s" % (unquote(parts.username), unquote(parts.password or ""))
            self.authorization = b"Basic " + base64.b64encode(credentials.encode("utf-8"))
            # One pool per proxy and credentials: a tunnel is opened with
            # them. (Not hashed: hashlib would load libcrypto, after which
            # glibc serves each of TcpConnection's 256 KiB reads with mmap,
            # mremap and munmap, three system calls per read.)
            self.key += "#" + credentials


# Characters a proxy URL may not hold (removed by str.translate).
_URL_BAD_TEXT = dict.fromkeys(list(range(0x21)) + [0x7F])


def _no_credentials(url: str) -> str:
    """``url`` without its user:password, for a message."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    return scheme + sep + authority.rpartition("@")[2] + slash + path


class _TunnelClient(EventEmitter):
    """Connects to an https:// origin through an HTTP proxy: TCP to the
    proxy, ``CONNECT host:port`` (RFC 9110 9.3.6; Proxy-Authorization on
    it alone), then TLS with the origin inside the tunnel, verified as a
    direct connection is (the client's ``tls_context``; the origin's name).

    What HttpClient._connect uses of a TcpClient: ``check_ip`` (applied to
    the proxy's addresses: the only ones connected to),
    ``connect(host, port, timeout)`` (``timeout`` bounds all three steps),
    and the events connect(TlsConnection) and connect_error(errtype,
    error), where a failure after the TCP connect comes as an HttpError
    (ProxyTunnelError for the proxy's refusal) for both.
    """

    check_ip: Optional[Callable[[str], bool]] = None

    def __init__(self, client: HttpClient, proxy: _Proxy) -> None:
        EventEmitter.__init__(self)
        self.client = client
        self.loop = client.loop
        self.proxy = proxy
        self.host = ""
        self.port = 0
        self._tcp: Optional[TcpConnection] = None
        self._parser: Optional[HttpParser] = None
        self._status: Optional[bytes] = None
        self._handshake: Any = None
        self._timer: Optional[ScheduledEvent] = None
        self._done = False

    def connect(self, host: str, port: int, timeout: Optional[float] = None) -> None:
        self.host, self.port = host, port
        tcp_client = self.client.tcp_client_class(self.loop)
        proxy = self.proxy
        if self.check_ip is not None:
            if not hasattr(type(tcp_client), "check_ip"):
                self.loop.schedule(0, self._tcp_failed, PermissionError, errno.EACCES)
                return
            tcp_client.check_ip = self.check_ip
        tcp_client.on("connect", self._connected)
        tcp_client.on("connect_error", self._tcp_failed)
        if timeout:
            self._timer = self.loop.schedule(timeout, self._timed_out)
        tcp_client.connect(proxy.host, proxy.port, timeout)

    def _fail(self, err: error.HttpError) -> None:
        if self._done:
            return
        self._done = True
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        if self._handshake is not None:
            self._handshake.cancel()
            self._handshake = None
        if self._parser is not None:
            self._parser.pause()
        if self._tcp is not None:
            self._tcp.removeListener("close", self._closed)
            self._tcp.abort()
            self._tcp = None
        self.emit("connect_error", err.__class__, err)

    def _tcp_failed(self, errtype: Any, err: Any) -> None:
        self._fail(_connect_error(errtype, err, "the proxy %s:%d" % (self.proxy.host, self.proxy.port)))

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(error.ConnectTimeoutError("connect to %s:%d through the proxy %s:%d timed out" % (
            self.host, self.port, self.proxy.host, self.proxy.port)))

    def _connected(self, tcp: TcpConnection) -> None:
        if self._done:
            tcp.abort()  # timed out meanwhile
            return
        self._tcp = tcp
        host = self.host
        authority = (("[%s]:%d" if ":" in host else "%s:%d") % (host, self.port)).encode("ascii")
        lines = [b"CONNECT ", authority, b" HTTP/1.1\r\nHost: ", authority, b"\r\n"]
        if self.proxy.authorization is not None:
            lines += [b"Proxy-Authorization: ", self.proxy.authorization, b"\r\n"]
        lines.append(b"\r\n")
        parser = self._parser = HttpParser(self, False)
        parser.expect_response(b"CONNECT")
        tcp.on("data", parser.feed)
        tcp.on("close", self._closed)
        tcp.pause(False)
        tcp.write(b"".join(lines))

    def _closed(self) -> None:
        self._tcp = None
        self._fail(ProxyTunnelError(
            "the proxy %s:%d closed the connection before answering CONNECT"
            % (self.proxy.host, self.proxy.port)
        ))

    # -- the parser's delegate: the proxy's answer to CONNECT ------------------

    def on_response_nonfinal(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        pass  # an interim answer: the final one follows

    def on_response_head(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        if status[:1] != b"2":
            self._fail(ProxyTunnelError("the proxy %s:%d answered CONNECT %s:%d with %s %s" % (
                self.proxy.host, self.proxy.port, self.host, self.port,
                status.decode("latin-1"), error.detail_text(phrase)), int(status)))
            return
        self._status = status

    def on_body(self, chunk: bytes) -> None:
        pass  # of a refusal, already reported

    def on_message_done(self, trailers: RawHeaderListType) -> None:
        if self._done or self._status is None:
            return
        tcp, extra = hand_over(self._tcp, self._parser, (  # type: ignore[arg-type]  # set by _connected
            ("data", self._parser.feed), ("close", self._closed),  # type: ignore[union-attr]  # set by _connected
        ))
        self._tcp = None
        if extra:
            # The origin speaks only after the client's hello.
            tcp.abort()
            self._fail(ProxyTunnelError("the proxy sent bytes after its answer to CONNECT"))
            return
        self._start_tls(tcp)

    def on_request_head(self, *args: Any) -> None:  # pragma: no cover
        raise AssertionError("a response parser never reports requests")

    def on_error(self, err: error.HttpError) -> None:
        failure = ProxyTunnelError("the proxy's answer to CONNECT: %s" % err)
        failure.__cause__ = err
        self._fail(failure)

    # -- TLS with the origin, inside the tunnel --------------------------------

    def _start_tls(self, tcp: TcpConnection) -> None:
        import ssl

        from thor.tls import TlsConnection, _TlsHandshake, default_context

        raw = getattr(tcp, "socket", None)
        try:
            if raw is None:
                raise OSError(errno.ENOTSOCK, "the transport has no socket for TLS")
            # The TcpConnection lets go of its descriptor; the tunnel goes on
            # on a duplicate of it, under TLS.
            sock = raw.dup()
        except OSError as exc:
            tcp.abort()
            self._fail(error.ConnectError("TLS through the proxy: %s" % exc))
            return
        tcp.close()
        context = self.client.tls_context or default_context()
        try:
            tls_sock = context.wrap_socket(
                sock, server_hostname=self.host or None, do_handshake_on_connect=False,
            )
        except (OSError, ValueError) as exc:
            sock.close()
            self._fail(_connect_error(ssl.SSLError, exc, self.host))
            return

        def done(tls: Optional[ssl.SSLSocket], err: Optional[Exception]) -> None:
            self._handshake = None
            if self._done:
                if tls is not None:
                    tls.close()
                return
            if tls is None:
                if isinstance(err, ssl.SSLError) or not isinstance(err, OSError) or not err.errno:
                    self._fail(_connect_error(ssl.SSLError, err, self.host))
                else:
                    self._fail(_connect_error(OSError, err.errno, self.host))
                return
            try:
                conn = TlsConnection(tls, self.host, self.port, self.loop)
            except OSError as exc:
                tls.close()
                self._fail(_connect_error(OSError, exc.errno or errno.EIO, self.host))
                return
            self._done = True
            if self._timer is not None:
                self._timer.delete()
                self._timer = None
            self.emit("connect", conn)

        self._handshake = _TlsHandshake(tls_sock, self.loop, done)
        self._handshake.start()


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
        "_poller", "_fresh",
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
        # It went idle in on_message_done, whose response_done is being
        # emitted: as good as gone idle in this pass (usable()).
        self._fresh = False
        self._poller: Optional[select.poll] = None  # made by usable() when first needed
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
        if quick and (self._fresh or self._idle_since == self.loop.time()):
            return True
        watched = getattr(self.tcp, "watched", None)
        if watched is not None and not watched():
            return False  # the loop has stopped since: its fd is forgotten
        sock = getattr(self.tcp, "socket", None)
        if sock is None:
            return True
        # poll() first: nothing to read is the usual answer, on which a
        # peek fails with EAGAIN, and Python's BlockingIOError costs
        # several times what a poll of one descriptor does. A poll object
        # holds no descriptor of its own: one per connection, made once.
        poller = self._poller
        if poller is None and _new_poll is not None:
            poller = self._poller = _new_poll()
            poller.register(sock.fileno(), _POLLIN)
        if poller is not None and not poller.poll(0):
            return True  # no data, no end of file, no error
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
        if self._paused or (exchange._req_state != _REQ_SENT and not self._out_paused):
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

    def release(self) -> None:
        """No exchange is using the connection: to the pool, unless bytes
        nobody asked for have come (it cannot be trusted then)."""
        if self.closed or not self.parser.idle:
            self.close()
            return
        self._go_idle()
        if self.exchange is None and not self.closed:
            self._set_deadline(self.client.idle_timeout)  # none took it

    def _go_idle(self) -> None:
        """Into the pool, which may hand it to a waiting exchange at once."""
        self.exchange = None
        if self._paused:
            self._paused = False
            self.tcp.pause(False)
        self._idle_since = self.loop.time()
        origin = self.origin
        origin.idle.append(self)
        if origin.queue:  # else there is nothing for the pool to decide
            self.client._assign(origin)

    def write(self, data: bytes, last: bool = False) -> None:
        """Send ``data``; ``last``: it ends the request, and it is the
        server's turn (read_timeout runs from here). (HttpClientExchange._send
        does the same, inline, for the end of a request.)"""
        if not self.closed:
            if self._out_paused:
                # Written past the pause: not the origin's progress.
                self._send_mark += len(data)
            self.tcp.write(data)
        if last:
            read_timeout = self.client.read_timeout
            if read_timeout is not None:
                self._set_deadline(read_timeout)

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
            exchange._res_state = _RES_NONFINAL
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
        if status == b"101":
            if not exchange._upgrade:
                # RFC 9110 15.2.2: a server switches only when asked to.
                self.on_error(error.StartLineError("101 response to a request without Upgrade"))
                return
            exchange._res_state = _RES_SWITCHING
        elif exchange.method == b"CONNECT" and status[0] == 50:
            exchange._res_state = _RES_SWITCHING
        else:
            exchange._res_state = _RES_BODY
        exchange.res_status = status
        parser = self.parser
        exchange.res_version = parser.version
        exchange.input_header_length = parser.head_length
        try:
            exchange.emit("response_start", status, phrase, headers)
        except Exception as exc:
            exchange._listener_failed(exc, "response_start")

    def on_body(self, chunk: bytes) -> None:
        exchange = self.exchange
        if exchange is not None:
            try:
                exchange.emit("response_body", chunk)
            except Exception as exc:
                exchange._listener_failed(exc, "response_body")

    def on_message_done(self, trailers: RawHeaderListType) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        self.exchange = None
        parser = self.parser
        exchange.input_transfer_length = parser.transfer_length
        if exchange._res_state == _RES_SWITCHING:
            # The parser has paused: what follows is not HTTP. The
            # application takes the connection with tunnel() while
            # response_done is emitted, or it is closed.
            exchange._res_state = _RES_SWITCHED
            exchange._conn = self
            exchange._emit("response_done", trailers)
            if exchange._conn is self:  # not tunnel()led, nor aborted
                exchange._conn = None
                self.abort()
            return
        exchange._res_state = _RES_DONE
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
        elif parser.close or exchange._request_close or exchange._req_state != _REQ_SENT:
            # The server said so, or framing forced it; or it answered
            # before the request was all sent, which then cannot be.
            self.close()
        else:
            # Nothing follows the response: the connection is free before
            # response_done, so that a request made by its listener (the
            # usual place) reuses it rather than queueing or opening
            # another. Its idle deadline waits until then (below): it is
            # usually taken by then. _go_idle, but for the time it went
            # idle: while response_done is emitted, _fresh tells usable()
            # (no call of loop.time() for a request its listener makes).
            self._fresh = True
            if self._paused:
                self._paused = False
                self.tcp.pause(False)
            origin = self.origin
            origin.idle.append(self)
            if origin.queue:
                self.client._assign(origin)
        try:
            exchange.emit("response_done", trailers)
        except Exception as exc:
            exchange._listener_failed(exc, "response_done")
        finally:
            self._fresh = False
        if extra is not None:
            # Whitespace alone (a stray CRLF after a body, common enough)
            # only costs the connection.
            if extra.strip(b" \t\r\n") and exchange._res_state != _RES_ERROR:
                exchange._fail(error.ExtraDataError(extra))
        elif self.exchange is None and not self.closed:
            # No exchange has taken it from the pool: closed after
            # idle_timeout.
            self._idle_since = self.loop.time()
            self._set_deadline(self.client.idle_timeout)
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
        if exchange is not None and exchange._res_state < _RES_DONE:
            client = self.client
            if paused:
                send_timeout = client.send_timeout
                if send_timeout is not None:
                    # The server is not reading: how long it may go on not
                    # reading (see _check_send).
                    self._send_mark, kernel = _unsent(self.tcp)
                    self._send_since = self._clock()
                    self._set_deadline(min(send_timeout, _SEND_POLL) if kernel else send_timeout)
                elif client.read_timeout is not None and exchange._req_state != _REQ_SENT:
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
        self.client._lost(self.origin, self)
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
        if exchange is None or self.exchange is not exchange or exchange._res_state >= _RES_DONE:
            return  # done, or failed
        self.exchange = None
        unanswered = exchange._res_state == _RES_WAIT
        if unanswered and exchange._replayable():
            exchange._retry()
            return
        exchange._fail(error.ConnectionClosedError(
            "the server closed the connection before responding"
            + (" (%d attempts)" % (exchange._retries + 1) if exchange._retries else "")
            if unanswered else "the server closed the connection"
        ))

    def tunnel(self) -> Tuple[TcpConnection, bytes]:
        """Hand over the TCP connection: (tcp, bytes read past the head)."""
        self._closed()
        return hand_over(self.tcp, self.parser, (
            ("data", self._on_data), ("close", self._on_close), ("pause", self._on_tcp_pause),
        ))


# The parser's errors for input that ended inside a message.
_CUT_SHORT = frozenset((error.IncompleteHeadError, error.IncompleteBodyError))

# An exchange's two states, after h11's per-role states: one for the
# request (what the application has given, and whether all of it is on
# the wire), one for the response (what has come, and how the exchange
# ended). Ordered: a comparison asks "this far yet?".
#
# The request: not started; started, body still coming from the
# application; request_done called, not all of it written yet (no
# connection, or a retry pending); all of it written on the connection.
_REQ_IDLE, _REQ_BODY, _REQ_DONE, _REQ_SENT = range(4)
# The response: nothing yet; interim (1xx) responses only; the final head,
# its body coming; the final head switches protocols (101, CONNECT 2xx);
# -- the exchange has ended from here on (_RES_DONE and beyond) --
# complete (response_done; an ExtraDataError may still follow); the
# switch complete (the connection is the application's to tunnel()); cut
# off, its error on its way (a closed connection, a bad URL); failed or
# aborted: nothing more is emitted.
(
    _RES_WAIT, _RES_NONFINAL, _RES_BODY, _RES_SWITCHING,
    _RES_DONE, _RES_SWITCHED, _RES_CLOSED, _RES_ERROR,
) = range(8)

# URL -> (origin key, request-target, authority); bounded.
_url_cache: Dict[bytes, _ParsedUrl] = {}
_URL_CACHE_MAX = 1024
# Bytes that may not appear in a URL as given: controls, space, DEL, non-ASCII.
_URL_BAD = bytes(range(0x00, 0x21)) + bytes(range(0x7F, 0x100))


_EXACT = (bytes, str)
_STRINGS = frozenset(_EXACT)
# (method, URL, tuple(headers)) -> _KnownRequest, for requests whose every
# part is exactly str or bytes and passed request_start's checks: an
# intermediary sends the same few heads over and over. Emptied when full.
_request_heads: Dict[Tuple[Any, Any, Tuple[Any, ...]], _KnownRequest] = {}
_REQUEST_HEADS_MAX = 256


def _field_pair(field: Any) -> Tuple[Any, Any]:
    """A request field that is not a 2-tuple, as (name, value); raises
    BadHeaderError for what is not one (a str would unpack as its
    characters: a dict of headers, listed, gives its names)."""
    if isinstance(field, (str, bytes, bytearray)):
        raise error.BadHeaderError(
            "a field is a (name, value) pair, not %r (headers are a list of pairs, "
            "not a dict)" % (field,))
    try:
        name, value = field
    except (TypeError, ValueError):
        raise error.BadHeaderError("a field is a (name, value) pair: %r" % (field,)) from None
    return name, value


# For _KnownRequest.matches: no field is known.
_UNKNOWN = itertools.repeat(None)


class _KnownRequest:
    """What request_start made of one (method, URL, headers), and the
    request heads built from it, by framing."""

    __slots__ = (
        "method", "uri", "req_hdrs", "request_close", "upgrade", "expect",
        "origin_key", "head_fields", "heads", "special", "fields",
    )

    def __init__(
        self, exchange: HttpClientExchange, expect: bool, fields: Tuple[Any, ...],
    ) -> None:
        # The headers as given (the key's): the same field objects given
        # again need no second look (see matches).
        self.fields = fields
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
    def matches(headers: Iterable[Any], known: Iterable[Any] = _UNKNOWN) -> bool:
        """The headers that compared equal to the key's are exactly its
        types too (a subclass may define equality as it likes): tuples of
        str or bytes. A field that is the very object in ``known`` (the
        key's fields, checked when it was made) is one."""
        # A loop that stops at the first odd one: a third cheaper than
        # building sets of the types (once per request of a proxy, whose
        # fields are mostly the parser's and its own, the same objects
        # each time).
        for field, same in zip(headers, known):
            if field is same:
                continue
            if (
                field.__class__ is not tuple or len(field) != 2
                or field[0].__class__ not in _STRINGS or field[1].__class__ not in _STRINGS
            ):
                return False
        return True


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
    writes), res_status, res_version (b"1.1" or b"1.0"; b"2" over HTTP/2; set before
    response_start), conn (the connection while one carries the exchange,
    else None), input_header_length (the response head's bytes) and
    input_transfer_length (the response's bytes after its head, as they
    came; complete at response_done).
    """

    # The state every exchange starts in is kept on the class, and each
    # attribute is set on the instance when it first changes
    # (HttpServerExchange does the same); but those read on every request
    # before they change (_FRESH_STATE) are stored by __init__ too: CPython
    # (3.11) reads a class attribute through an instance by its
    # unspecialised lookup, about 200 instructions, where a store in
    # __init__ costs some 60 and makes every later read the cheap one.
    method: Optional[bytes] = None
    uri: Optional[bytes] = None
    req_hdrs: Optional[RawHeaderListType] = None
    res_status: Optional[bytes] = None
    res_version: Optional[bytes] = None
    input_header_length = 0
    input_transfer_length = 0
    _req_state = _REQ_IDLE
    _res_state = _RES_WAIT
    _origin_key: Optional[OriginType] = None
    _pool: Optional[_Origin] = None  # where it waits for, or got, its connection
    _via: Optional[_Proxy] = None  # the proxy an http:// request goes to, in absolute-form
    _conn: Optional[_ClientConnection] = None
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
    _end: Optional[bytes] = None  # what ends the body, from request_done
    _request_close = False
    _head_written = False  # on the current connection
    _retries = 0
    _paused_out = False
    _input_paused = False
    _upgrade = False
    _nonfinal = 0  # interim responses received
    _queue_deadline: Optional[float] = None  # while it waits in its origin's queue

    # A lone listener is kept unwrapped (thor.events): nothing here reads
    # _events but to clear it.
    _unwrap_single = True

    def __init__(self, client: HttpClient) -> None:
        # What HttpClient.exchange does without this call (a test holds
        # the two to the same state).
        self._init_emitter()
        self.client = client
        self._req_state = _REQ_IDLE
        self._res_state = _RES_WAIT
        self._writer = None
        self._input_paused = False
        self._via = None
        self._head_written = False
        self._body = None
        self._end = None
        self._request_close = False

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
        if self._req_state != _REQ_IDLE:
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
                if not headers or _KnownRequest.matches(headers, known.fields):
                    # What the rest of request_start would make of it.
                    self.method = known.method
                    self._req_state = _REQ_BODY
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
        for field in headers:
            if field.__class__ is tuple and len(field) == 2:
                name, value = field
            else:
                name, value = _field_pair(field)
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
        self._req_state = _REQ_BODY
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
                self._res_state = _RES_CLOSED
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
            known = _request_heads[key] = _KnownRequest(self, expect, key[2])  # type: ignore[index]  # exact: key is set
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
        if self._req_state != _REQ_BODY:
            raise error.StateError("request_body outside a request")
        if chunk.__class__ is not bytes:
            chunk = encode_body_chunk(chunk)
        if not chunk:
            return
        writer = self._writer
        if writer is None:
            writer = self._writer = CHUNKED_WRITER
        data = writer.chunk(chunk)  # raises BodyLengthError past Content-Length
        if self._res_state >= _RES_DONE:
            return
        if self._replay_ok:
            self._keep(chunk)
        conn = self._conn
        if conn is not None:
            if not self._head_written:
                self._send(conn)
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
        if self._req_state != _REQ_BODY:
            raise error.StateError("request_done outside a request")
        writer = self._writer
        if writer is None:
            # No body: nothing ends it, and with no trailers to check
            # there is nothing to ask of it.
            writer = NO_BODY_WRITER
            if trailers:
                writer.end(trailers)
        else:
            end = writer.end(trailers)
            if end:
                self._end = end
        self._req_state = _REQ_DONE
        self._writer = writer
        conn = self._conn
        if conn is not None and self._res_state < _RES_DONE:
            self._send(conn)
        # else: written once a connection is attached

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

    def _make_head(self, req_hdrs: Iterable[Tuple[bytes, bytes]]) -> bytes:
        target, authority, content_length = self._head_fields  # type: ignore[misc]  # set by request_start
        via = self._via
        if via is not None and self.method != b"CONNECT":
            # RFC 9112 3.2.2: to a proxy, the absolute-form (without a path
            # for OPTIONS *, 3.2.4).
            target = b"http://" + authority + (b"" if target == b"*" else target)
        lines = [self.method or b"", b" ", target, b" HTTP/1.1\r\nHost: ", authority, b"\r\n"]
        if via is not None and via.authorization is not None:
            lines.append(b"Proxy-Authorization: " + via.authorization + b"\r\n")
            # The proxy setting's credentials are the ones for this hop: a
            # Proxy-Authorization of the application's would be a second.
            req_hdrs = [f for f in req_hdrs if f[0].lower() != b"proxy-authorization"]
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

    def _send(self, conn: _ClientConnection) -> None:
        """Write on ``conn`` what the application has given and is not on
        it yet, in one write: the head (once the framing is known: the
        fields said, or the first body chunk or request_done has come),
        the body given before the connection was, and the end of the
        request once request_done has come."""
        writer = self._writer
        if writer is None:
            return  # the head waits for the first body chunk or request_done
        if self._head_written:
            out = b""
        else:
            self._head_written = True
            known = self._head_entry
            if known is not None and self._via is None:
                # Built from the fields request_start checked, once per
                # framing.
                out = known.heads.get(writer.framing)  # type: ignore[assignment]  # None: made below
                if out is None:
                    out = known.heads[writer.framing] = self._make_head(known.req_hdrs)
            else:
                out = self._make_head(self.req_hdrs or ())
        body = self._body
        if body:
            out = b"".join([out, *body])
            self._body = None
            self._body_size = 0
        if self._req_state == _REQ_DONE:
            self._req_state = _REQ_SENT
            end = self._end
            if end is not None:
                out += end
            if conn.__class__ is not _ClientConnection:
                conn.write(out, True)  # an HTTP/2 stream (client_h2)
                return
            # conn.write(out, True), inline (once per request).
            if not conn.closed:
                if conn._out_paused:
                    conn._send_mark += len(out)
                conn.tcp.write(out)
            read_timeout = self.client.read_timeout
            if read_timeout is not None:
                conn._set_deadline(read_timeout)
        else:
            conn.write(out)

    def _connected(self) -> None:
        """A connection is attached: write what the application has given."""
        conn: _ClientConnection = self._conn  # type: ignore[assignment]  # just attached
        self._send(conn)
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
        if self._req_state == _REQ_SENT:
            self._req_state = _REQ_DONE
        self._queue_deadline = None
        kept = self._kept or []
        if self._writer is CHUNKED_WRITER:
            self._body = [encode_chunk(c) for c in kept]
        else:
            self._body = list(kept)
        self._body_size = sum(map(len, self._body))
        self.client.loop.schedule(self.client.retry_delay, self._retry_now)

    def _retry_now(self) -> None:
        if self._res_state < _RES_DONE:
            try:
                self.client._acquire(self, True)
            except error.UrlError as exc:  # the proxy setting was changed meanwhile
                self._fail(exc)

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
        if self._res_state >= _RES_DONE and self._res_state != _RES_SWITCHED:
            self._events.clear()
            return
        self._events.clear()
        self._drop(_RES_ERROR)  # nothing more is emitted

    def _drop(self, state: int) -> None:
        """End the exchange (in ``state``): give up its connection (closed:
        its state is unknown), its place in the queue, or the connection
        being opened for it (which goes to the pool)."""
        self._res_state = state
        conn = self._conn
        self._conn = None
        if conn is not None:
            if conn.exchange is self:
                conn.exchange = None
            conn.abort()
        pool = self._pool
        if pool is not None and pool.queue:
            self.client._withdraw(pool, self)

    def tunnel(self) -> Tuple[TcpConnection, bytes]:
        """From a ``response_done`` listener after a 101 answer to an
        Upgrade request (or a 2xx answer to CONNECT): take the connection.
        Returns ``(tcp_connection, buffered)``: the TcpConnection (or
        TlsConnection), paused, with no listeners of thor's, and the bytes
        the server sent after its response head. Raises StateError at any
        other time."""
        conn = self._conn
        if self._res_state != _RES_SWITCHED or conn is None:
            raise error.StateError("tunnel() needs a 101 (or CONNECT 2xx) response")
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
        if self._res_state == _RES_ERROR:
            return
        err = error.ListenerError(
            "a %s listener raised %s: %s" % (event, exc.__class__.__name__, exc)
        )
        err.__cause__ = exc
        self._drop(_RES_CLOSED)
        self._fail(err)

    def _orphaned(self) -> None:
        """The application closed the exchange's connection (Thor 0.17's
        ``exchange.conn.close()``): it fails, from the loop, as Thor 0.17's
        does once the close is seen."""
        self._conn = None
        self._res_state = _RES_CLOSED
        self.client.loop.schedule(0, self._fail, error.ConnectionClosedError(
            "the connection was closed by the application"
        ))

    def _fail(self, err: error.HttpError) -> None:
        if self._res_state == _RES_ERROR:
            return
        self._res_state = _RES_ERROR
        self._conn = None
        self._emit("error", err)
        self._events.clear()


# CPython 3.11 keeps the attribute names of a class's instances in one
# table their values share, which takes a new name only while it has room,
# and each instance made takes some of that room: a name first set once
# many exchanges exist (res_status, when twenty requests start before the
# first response comes) no longer fits, and every exchange that sets it
# gets a dict of its own, read the slow way (a client harness measured
# some 700 instructions per request more). One exchange made here, before
# any other, sets first the names exchanges set on their usual paths (all
# but the rarest three: _nonfinal, _upgrade, _paused_out).
def _enter_names(cls: type, names: Tuple[str, ...]) -> None:
    instance: object = _new_object(cls)
    for name in names:
        setattr(instance, name, None)


_enter_names(HttpClientExchange, (
    "client", "_req_state", "_res_state", "_writer", "_input_paused", "_via",
    "_head_written", "_body", "_end", "_request_close", "method", "req_hdrs",
    "uri", "_origin_key", "_head_fields", "_head_entry", "_pool", "_conn",
    "_queue_deadline", "res_status", "res_version", "input_header_length",
    "input_transfer_length", "_retries", "_kept", "_kept_size", "_replay_ok",
    "_body_size",
))


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
    parser.add_argument("-x", "--proxy", default=None, metavar="URL",
                        help="use this HTTP proxy: http://[user:password@]host:port "
                        "(https:// URLs go through a CONNECT tunnel)")
    parser.add_argument("--http2", action="store_true",
                        help="offer HTTP/2 to https:// origins (ALPN h2)")
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
    if args.proxy:
        client.proxy = args.proxy
    if args.insecure:
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if args.http2:
            context.set_alpn_protocols(["h2", "http/1.1"])
        client.tls_context = context
    client.http2 = args.http2
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
