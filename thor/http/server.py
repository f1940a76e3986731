"""The HTTP/1.1 server: HttpServer, its connections, and its exchanges.

Theory of operation
-------------------
- A connection owns one sans-I/O parser (thor.http.parser) and answers its
  requests strictly in order. ``connection.exchange`` is the exchange whose
  request is being read or whose response is outstanding; between requests
  it is None. Once a request has been read, the parser is paused until that
  request's response is done, so pipelined requests cost no more memory
  than the bytes already read.
- Input is read only while the parser holds fewer than ``inbuf_limit``
  unparsed bytes (decided before each read, so a connection holds at most
  ``inbuf_limit`` plus one read), only while the application has not paused
  the request body, and not at all while the output is backed up after a
  response: a client that sends requests but reads no responses cannot
  grow the server's memory, whether the application answers at once or
  later.
- When the connection's output backs up (the transport emitted
  ``pause(True)``), the exchange in progress gets a ``pause(True)`` event.
- The client's end of input (the transport's ``end``: thor's connections
  always ask for it) takes effect where it is in the stream: every request
  read before it is answered as if it had not come, and the connection
  closes after the last answer (without ``half_close``, an answer still
  awaited at the end gets ``send_timeout``: the client may be gone).
- Responses are framed by thor: the application's Content-Length is used
  (and enforced) when given, chunked otherwise for HTTP/1.1, and
  close-delimited for HTTP/1.0. Output is gathered: what the application
  writes while the connection is handling input goes out in one send at
  the end of that input (one send for a whole hello-world response, and
  one per read for pipelined ones); what it writes at other times goes out
  on the next loop pass, or at once past ``_FLUSH_SIZE`` bytes.
- One timer per connection (thor.loop.LazyTimer), re-armed lazily, with a
  deadline for the state the connection is in: ``idle_timeout`` between
  requests, ``request_timeout`` from the first byte of a request head to
  its end (absolute: later bytes do not move it; slow clients get 408) and
  for the rest of a request body that the application answered early,
  ``body_timeout`` between reads of a request body (408, or a close once a
  response has started), ``send_timeout`` while output is backed up or a
  close waits for it to be sent (measured as progress: the deadline moves
  while the client takes anything). While an exchange waits for its
  response, the application governs time. A keep-alive request without a
  body costs no timer work beyond the one deadline store per request.
  ``shutdown_timeout`` is the server's: one timer for a graceful shutdown.
- An exception from a listener of the exchange (or of 'exchange') ends
  that exchange: it goes to the loop's exception handler, the exchange gets
  ``error`` (InternalServerError, its ``__cause__`` the exception), and the
  client gets 500 if no response had started, or the connection closes.
- Everything the application passes is checked before anything is written
  (thor.http.headers); a field line once checked is cached, so a response
  head is a few dictionary look-ups and one join.
- HTTP/2 is served on the same port by thor.http.server_h2 (imported when
  a connection needs it): a TLS connection whose ALPN selected ``h2`` goes
  there at once; a connection's first read goes through ``_first_data``,
  which hands it over if it opens with the HTTP/2 preface (holding a part
  of one until the rest decides) and otherwise returns it to ``_on_data``:
  HTTP/1.1 pays the check once per connection, and a flag test per read.
"""

from __future__ import annotations

import time as _time
from typing import TYPE_CHECKING

import thor.loop
from thor.events import EventEmitter
from thor.tcp import TcpServer
from thor.http import error
from thor.http.headers import (
    encode_status, encode_phrase, encode_field_name, encode_field_value,
    encode_body_chunk, field_tokens, CONNECTION_OPTIONS, HOP_BY_HOP,
)
from thor.http.parser import HttpParser, NO_BODY
from thor.http.writer import (
    BodyWriter, LengthWriter, check_content_length, hand_over,
    CHUNKED_WRITER, CLOSE_WRITER, NO_BODY_WRITER,
)

if TYPE_CHECKING:
    import socket
    import ssl
    from typing import AbstractSet, Any, Dict, List, Optional, Sequence, Set, Tuple, Type, Union

    from thor.loop import LoopBase, ScheduledEvent
    from thor.tcp import TcpConnection
    from thor.http.h2.connection import H2Config
    from thor.http.server_h2 import H2ServerConnection
    from thor.types import (
        BodyInput, HeaderInput, RawHeaderListType, StatusInput, TextInput,
    )

    # A checked field line: (b"Name: value\r\n", lower-cased name, value).
    FieldEntry = Tuple[bytes, bytes, bytes]
    # A checked response head: see ``_heads``.
    # A final head's special fields worked out (see _special_head).
    SpecialHead = Tuple[bytes, bool, bool]
    HeadEntry = Tuple[
        bytes, bytes, Optional[int], Optional[Tuple[FieldEntry, ...]], Optional[bytes],
        Optional[SpecialHead],
    ]
    Fields = Union[Sequence[Any], "HeaderInput"]

__all__ = ["HttpServer", "HttpServerConnection", "HttpServerExchange"]

_now = _time.time

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# What an HTTP/2 client with prior knowledge sends first (RFC 9113 3.4);
# the same as thor.http.h2.connection.PREFACE, which is imported only when
# a connection turns out to be HTTP/2.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# An exchange's request is in one of three states: its body is being read
# and delivered (request_body, request_done); the exchange has failed or
# been abandoned, and the rest of the body is read only to reach the next
# request, delivered to no one; or it has been read whole.
_RECEIVING = 0
_DROPPING = 1
_RECEIVED = 2

# Its response is in one of five, in this order: none yet; the head is
# sent and the body is going out; complete (or handed over as a tunnel);
# cut (the exchange failed after its head was sent); failed before any of
# it was sent (an error status may still answer it). From _ANSWERED on the
# exchange is finished: it emits nothing more.
_UNANSWERED = 0
_ANSWERING = 1
_ANSWERED = 2
_CUT = 3
_FAILED = 4

# Written output is gathered up to this many bytes before it is sent at
# once: about what a loopback socket takes in one send, and the transport's
# write_high mark, so that an application writing small chunks in a loop
# sees pause(True) while it is still writing.
_FLUSH_SIZE = 65536

# A piece of output this large is sent by itself, after what is gathered,
# never copied into a join: besides the copy, a large send that does not
# start where the previous one ended costs the kernel about twice as much
# per byte over loopback (1 MiB responses in 64 KiB chunks: 410-480 ms/GB
# with the head joined to the first chunk, 245-275 without; asyncio's
# reference server measured the same way with the same join: 395-430).
_DIRECT_SIZE = 16384

# Field names that _head treats specially: framing and connection fields
# that thor owns (hop-by-hop), Content-Length (framing), Date (added unless
# given).
_SPECIAL_OUT = HOP_BY_HOP | {b"content-length", b"date"}

# Checked field lines: (name, value) as the application passed them ->
# (b"Name: value\r\n", lower-cased name, value bytes). Applications send the same few fields again and again; a proxy
# relays arbitrary ones, so the cache is emptied when it fills up, and long
# values are not kept.
_field_lines: Dict[Any, FieldEntry] = {}
_FIELD_CACHE_MAX = 4096
_FIELD_CACHE_VALUE = 256

# Checked response heads: (status, phrase, tuple(headers)) as passed ->
# (status line and plain field lines, status code, Content-Length or None,
# the special field entries or None, the end of the head for a plain
# request, and for a final status (not 1xx) with special fields, what
# _special_head makes of them). An application answering with the same
# few heads then pays one dictionary look-up per response instead of one
# per field, and for an ordinary request (see HttpServerExchange._plain)
# the head is that entry, the Date and that end. A head is kept only once
# all of its field lines were already cached (seen before), so a proxy
# relaying ever-different heads does not churn it; keys are exact ints,
# strs and bytes (200.0 == 200, but 200.0 is not a status).
_heads: Dict[Tuple[Any, Any, Tuple[Any, ...]], HeadEntry] = {}
_HEAD_CACHE_MAX = 256
_HEAD_CACHE_SIZE = 4096


def _field_line(field: Any) -> FieldEntry:
    """Check one (name, value) field; raises BadHeaderError / TypeError."""
    if isinstance(field, (str, bytes)):  # would unpack as two characters
        raise error.BadHeaderError("a field is a (name, value) tuple: %r" % (field,))
    try:
        name, value = field
    except (TypeError, ValueError):
        raise error.BadHeaderError("a field is a (name, value) tuple: %r" % (field,)) from None
    raw = encode_field_name(name)
    try:
        encoded = encode_field_value(value)
    except error.BadHeaderError as err:
        raise error.BadHeaderError("%s: %s" % (raw.decode("latin-1"), err.detail)) from None
    entry = (raw + b": " + encoded + b"\r\n", raw.lower(), encoded)
    if type(field) is tuple and len(encoded) <= _FIELD_CACHE_VALUE:
        if len(_field_lines) >= _FIELD_CACHE_MAX:
            _field_lines.clear()
        _field_lines[field] = entry
    return entry


def _checked_field(field: Any) -> FieldEntry:
    """``field`` checked (``_field_line``): from the cache when seen before."""
    try:
        entry = _field_lines.get(field)
    except TypeError:  # unhashable (a list): checked, not cached
        entry = None
    return entry if entry is not None else _field_line(field)


def _status_line(status: StatusInput, phrase: TextInput) -> bytes:
    """b"HTTP/1.1 <status> <phrase>\r\n"; raises BadStatusError."""
    return b"HTTP/1.1 " + encode_status(status) + b" " + encode_phrase(phrase) + b"\r\n"


_EXACT = (int, str, bytes)


def _checked_head(status: StatusInput, phrase: TextInput, headers: Fields) -> HeadEntry:
    """The checked entry for a response head (see ``_heads``); raises,
    having cached nothing, for anything that is not valid on the wire."""
    key: Optional[Tuple[Any, Any, Tuple[Any, ...]]] = None
    if type(status) in _EXACT and type(phrase) in _EXACT:
        try:
            key = (status, phrase, tuple(headers))
            found = _heads.get(key)
        except TypeError:  # an unhashable field (a list): checked, not cached
            key = found = None
        if found is not None:
            return found
    lines = [_status_line(status, phrase)]
    content_length: Optional[int] = None
    fields: Optional[List[FieldEntry]] = None  # special fields but Content-Length
    lower: bytes
    cacheable = key is not None
    for field in headers:
        try:
            entry = _field_lines.get(field)
        except TypeError:  # unhashable (a list): checked, not cached
            entry = None
        if entry is None:
            entry = _field_line(field)
            cacheable = False
        elif type(field) is not tuple:
            cacheable = False  # equal to a cached field, but not one
        lower = entry[1]
        if lower in _SPECIAL_OUT:
            if lower == b"content-length":
                content_length = check_content_length(entry[2], content_length)
            else:
                if fields is None:
                    fields = []
                fields.append(entry)
        else:
            lines.append(entry[0])
    prefix = b"".join(lines)
    code = prefix[9:12]
    tail: Optional[bytes] = None
    special: Optional[SpecialHead] = None
    if fields is None:
        if code[0] != 49 and code != b"204" and code != b"304":
            # What _framed adds for a plain request (after the Date).
            if content_length is not None:
                tail = b"Content-Length: %d\r\n\r\n" % content_length
            else:
                tail = b"Transfer-Encoding: chunked\r\n\r\n"
    elif code[0] != 49:
        # Worked out once per head, not per response: a proxy relays
        # heads with Date and Connection fields on every response.
        special = _special_head(prefix, headers, fields)
    head: HeadEntry = (
        prefix, code, content_length, tuple(fields) if fields else None, tail, special,
    )
    if key is not None and cacheable and len(prefix) <= _HEAD_CACHE_SIZE:
        if len(_heads) >= _HEAD_CACHE_MAX:
            _heads.clear()
        _heads[key] = head
    return head


def _head_lines(prefix: bytes, headers: Fields, tokens: AbstractSet[bytes]) -> List[bytes]:
    """The status line and plain field lines (``prefix``), less those the
    Connection ``tokens`` name: fields the application named in Connection
    are hop-by-hop too (RFC 9110 7.6.1), so the lines are built again
    without them."""
    if not tokens - CONNECTION_OPTIONS:
        return [prefix]
    lines = [prefix[:prefix.index(b"\r\n") + 2]]
    for field in headers:
        found = _checked_field(field)
        if found[1] not in _SPECIAL_OUT and found[1] not in tokens:
            lines.append(found[0])
    return lines


def _special_head(
    prefix: bytes, headers: Fields, fields: Sequence[FieldEntry],
) -> SpecialHead:
    """A final (not 1xx) head with special fields: the status line and
    field lines without the fields the head's Connection field names
    (hop-by-hop too: RFC 9110 7.6.1), and its Date field; whether
    Connection says close; whether there is a Date. ``prefix`` is the
    status line and plain field lines, ``fields`` the special ones."""
    if len(fields) == 1 and fields[0][1] == b"date":
        # The usual one: an origin's Date, relayed by a proxy.
        return prefix + fields[0][0], False, True
    tokens = field_tokens(entry[2] for entry in fields if entry[1] == b"connection")
    lines = _head_lines(prefix, headers, tokens)
    has_date = False
    for entry in fields:
        if entry[1] == b"date":
            lines.append(entry[0])
            has_date = True
    return b"".join(lines), b"close" in tokens, has_date


class _DateCache:
    """The Date field, formatted once a second (RFC 9110 6.6.1).

    Hot paths read ``field`` directly while ``_time()`` is below ``expires``
    (the start of the next second), and call ``get()`` otherwise."""

    __slots__ = ("expires", "field")

    def __init__(self) -> None:
        self.expires = 0.0
        self.field = b""

    def get(self) -> bytes:
        now = _time.time()
        if now >= self.expires:
            second = int(now)
            self.expires = second + 1
            self.field = b"Date: " + _time.strftime(
                "%a, %d %b %Y %H:%M:%S GMT", _time.gmtime(second)
            ).encode("ascii") + b"\r\n"
        return self.field


_date = _DateCache()


class HttpServer(EventEmitter):
    """An HTTP/1.1 server listening on ``host``:``port`` (port 0: the system
    picks one; ``port`` is then the one it picked).

    Emits: start(), stop(), exchange(HttpServerExchange).

    ``tls_context`` (an ``ssl.SSLContext`` with a certificate loaded) serves
    HTTPS through thor.tls.TlsServer; ``reuse_port`` sets SO_REUSEPORT.

    HTTP/2 (thor.http.server_h2) is served on the same port, with the same
    events and calls: over TLS when ALPN selects ``h2``, and in cleartext
    when a connection opens with the HTTP/2 preface (prior knowledge).
    ``http2`` (default True) says whether it is offered: when true, the
    server sets ALPN ``h2`` and ``http/1.1`` on ``tls_context`` (the
    application's context is changed; set it False and call
    ``set_alpn_protocols`` yourself to choose otherwise), and accepts the
    cleartext preface. ``http2_config`` (a thor.http.h2.H2Config, shared by
    the connections; None: the defaults) holds HTTP/2's settings and
    limits.

    Attributes: ``host``, ``port``, ``loop`` (the loop it runs on),
    ``tcp_server``, ``connections`` (the open HttpServerConnections, and
    thor.http.server_h2.H2ServerConnections for HTTP/2),
    ``shutting_down`` (True once graceful_shutdown() was called).

    Settings (class variables, or set on an instance before it accepts;
    times in seconds, None disables): ``tcp_server_class`` (what listens;
    must implement thor.TcpServer), ``idle_timeout`` (an idle persistent
    connection is closed), ``request_timeout`` (a request head must arrive
    whole within this of its first byte, else 408; also the rest of a
    request body the application has already answered), ``body_timeout``
    (a request body that makes no progress between two reads for this
    long: 408, or a close once a response has started; the exchange gets
    BodyTimeoutError), ``send_timeout`` (the client takes none of the
    output for this long while it is backed up, or while a close waits for
    it: the connection closes, and an exchange in progress gets
    SendTimeoutError), ``shutdown_timeout`` (graceful_shutdown's deadline:
    the connections left are then closed and 'stop' is emitted),
    ``parser_limits`` (keyword arguments for thor.http.parser.HttpParser),
    ``inbuf_limit`` (bytes of unparsed input held while a response is
    outstanding before the server stops reading from that client),
    ``linger_timeout`` (when the server closes a connection while the
    client may still be sending, an upload it answered early or refused, or
    requests after the last it answers, it sends its answer and the end of
    its output, then reads and drops the client's input until the client
    closes, for at most this long: closing with input unread would reset
    the connection, and a reset can destroy the answer before the client
    reads it; RFC 9112 9.6),
    ``half_close`` (every request read before the client's end of input
    is answered either way. False: the client may be gone, so an answer
    still awaited when the end is reached gets ``send_timeout``, after
    which the exchange gets ConnectionClosedError and the connection
    closes; True: it is awaited however late. A tunnel taken with
    ``exchange.tunnel()`` gets the setting as its transport's: with True
    its owner hears 'end', with False the transport closes once what is
    written is sent).
    """

    tcp_server_class: Type[TcpServer] = TcpServer
    idle_timeout: Optional[float] = 60
    # Apache's default head timeout is 20-40 s (mod_reqtimeout), nginx's
    # client_header_timeout 60 s.
    request_timeout: Optional[float] = 30
    # nginx's client_body_timeout and send_timeout, haproxy's usual
    # "timeout client": 60 s between two reads / two writes.
    body_timeout: Optional[float] = 60
    send_timeout: Optional[float] = 60
    # systemd's and Kubernetes' stop grace periods are 90 s and 30 s.
    shutdown_timeout: Optional[float] = 30
    # nginx's lingering_timeout (between reads; its lingering_time, 30 s,
    # bounds the whole): here one bound for the whole.
    linger_timeout: Optional[float] = 5
    parser_limits: Dict[str, Any] = {}
    inbuf_limit = 65536
    # Off by default: TCP cannot tell a half-close from a client that has
    # gone away until something is written, so a tunnel's owner that is
    # not written for half-closes gets a plain close.
    half_close = False
    http2 = True
    http2_config: Optional[H2Config] = None

    # An event's lone listener is kept as itself (see thor.events).
    _unwrap_single = True

    def __init__(
        self, host: Union[str, bytes, None], port: Union[int, str],
        loop: Optional[LoopBase] = None, *,
        tls_context: Optional[ssl.SSLContext] = None, reuse_port: bool = False,
        sock: Optional[socket.socket] = None,
    ) -> None:
        EventEmitter.__init__(self)
        self._loop: LoopBase = loop or thor.loop.default_loop()
        # Thor 0.17's name for it.
        self.loop = self._loop
        kwargs: Dict[str, Any] = {"reuse_port": True} if reuse_port else {}
        if sock is not None:
            kwargs["sock"] = sock  # a listening socket made elsewhere (TcpServer)
        self.tcp_server: TcpServer
        if tls_context is not None:
            from thor.tls import TlsServer

            self.tcp_server = TlsServer(host, port, tls_context, self._loop, **kwargs)
            if self.http2:
                tls_context.set_alpn_protocols(["h2", "http/1.1"])
        else:
            self.tcp_server = self.tcp_server_class(host, port, self._loop, **kwargs)
        self._tls_context = tls_context
        self._alpn_h2 = tls_context is not None and bool(self.http2)
        self.host: Any = getattr(self.tcp_server, "host", host)
        self.port = int(getattr(self.tcp_server, "port", port))
        self.connections: Set[Union[HttpServerConnection, H2ServerConnection]] = set()
        self._draining = False
        self._stopped = False
        self._shutdown_timer: Optional[ScheduledEvent] = None
        self.tcp_server.on("start", self._on_start)
        self.tcp_server.on("connect", self._on_connect)
        self.tcp_server.on("stop", self._on_stop)

    def __repr__(self) -> str:
        return "<HttpServer %s:%s %d connections>" % (
            self.host, self.port, len(self.connections),
        )

    @property
    def shutting_down(self) -> bool:
        """True once graceful_shutdown() has been called (Thor 0.17's name)."""
        return self._draining

    def _on_start(self) -> None:
        context = self._tls_context
        if context is not None and bool(self.http2) != self._alpn_h2:
            # http2 set on the instance after it was made: offer as it says
            # (before the first connection is accepted).
            self._alpn_h2 = bool(self.http2)
            context.set_alpn_protocols(["h2", "http/1.1"] if self.http2 else ["http/1.1"])
        self.emit("start")

    def _on_stop(self) -> None:
        if not self._draining:
            self._emit_stop()

    def _emit_stop(self) -> None:
        if self._shutdown_timer is not None:
            self._shutdown_timer.delete()
            self._shutdown_timer = None
        if not self._stopped:
            self._stopped = True
            self.emit("stop")

    def _on_connect(self, tcp_conn: TcpConnection) -> None:
        if self._draining or self._stopped:
            tcp_conn.close()
            return
        if getattr(tcp_conn, "alpn_protocol", None) == "h2":
            from thor.http.server_h2 import H2ServerConnection

            self.connections.add(H2ServerConnection(self, tcp_conn))
            return
        self.connections.add(HttpServerConnection(self, tcp_conn))

    def _connection_closed(self, conn: Union[HttpServerConnection, H2ServerConnection]) -> None:
        self.connections.discard(conn)
        if self._draining and not self.connections:
            self._emit_stop()

    def close(self) -> None:
        """Stop listening and close every connection at once; 'stop' follows
        from the loop."""
        self._draining = False
        self.tcp_server.close()
        for conn in list(self.connections):
            conn.abort()
        self._loop.schedule(0, self._emit_stop)

    shutdown = close

    def graceful_shutdown(self) -> None:
        """Stop listening; let exchanges in progress finish (their responses
        say Connection: close when not started yet), close idle connections,
        and emit 'stop' once the last connection has closed, or once
        ``shutdown_timeout`` has passed (the connections left are then
        closed at once)."""
        if self._stopped:
            return
        self._draining = True
        self.tcp_server.close()
        for conn in list(self.connections):
            conn.drain()
        if not self.connections:
            self._loop.schedule(0, self._emit_stop)
        elif self._shutdown_timer is None and self.shutdown_timeout is not None:
            self._shutdown_timer = self._loop.schedule(
                max(0.0, self.shutdown_timeout), self._shutdown_expired)

    def _shutdown_expired(self) -> None:
        self._shutdown_timer = None
        if self._draining and not self._stopped:
            self.close()


class HttpServerConnection(thor.loop.LazyTimer):
    """One client connection: its parser, its exchanges, its timer.

    ``exchange`` is the exchange in progress (None between requests);
    ``tcp`` the transport connection (``tcp_conn``, Thor 0.17's name, is the
    same while the connection is open, and None once it is closing);
    ``server`` the HttpServer.
    """

    __slots__ = (
        "server", "tcp", "loop", "parser", "exchange", "_out", "_out_size",
        "_flush_scheduled", "_in_input", "_closed", "_reading_paused",
        "_write_paused", "_await_drain", "_draining", "_request_count",
        "_between_requests", "_peer_ended", "_send_since", "_length_writer",
        "_held",
    )

    def __init__(self, server: HttpServer, tcp_conn: TcpConnection) -> None:
        self.server = server
        self.tcp = tcp_conn
        self.loop = server._loop
        self.parser = HttpParser(self, True, **server.parser_limits)
        self.exchange: Optional[HttpServerExchange] = None
        self._out: List[bytes] = []
        self._out_size = 0
        self._flush_scheduled = False
        self._in_input = False
        self._closed = False
        self._reading_paused = False
        self._write_paused = False
        self._await_drain = False
        self._draining = False
        self._request_count = 0
        # Idle between requests, no byte of the next one read yet.
        self._between_requests = True
        # The client has shut its sending side (tcp 'end').
        self._peer_ended = False
        # When the client's wait to take our output began (the loop's
        # clock): send_timeout runs from it, or from the transport's
        # sent_at, the last time the client took some, whichever is later.
        self._send_since = 0.0
        # The writer of every Content-Length response on this connection:
        # responses go out one at a time (a request is not read until the
        # response before it is done), so one is enough, and a response
        # costs no object for it.
        self._length_writer = LengthWriter(0)
        self._init_timer(self.loop)
        # With http2 on, until the first read has shown whether the client
        # speaks HTTP/2: the start of a preface, held until it is whole or
        # is not one (b"" before any); None once that is settled.
        self._held: Optional[bytes] = b"" if server.http2 else None
        tcp_conn.on("data", self._on_data)
        tcp_conn.on("close", self._on_close)
        tcp_conn.on("pause", self._on_tcp_pause)
        # The end of input is always reported as 'end', the transport
        # staying open for the answers: requests read before it are owed
        # their answers whatever half_close says (see _after_end).
        tcp_conn.half_close = True
        tcp_conn.on("end", self._on_end)
        self._set_deadline(server.idle_timeout)
        tcp_conn.pause(False)

    def __repr__(self) -> str:
        return "<HttpServerConnection %s:%s %d requests%s>" % (
            getattr(self.tcp, "host", "?"), getattr(self.tcp, "port", "?"),
            self._request_count, " closed" if self._closed else "",
        )

    @property
    def tcp_conn(self) -> Optional[TcpConnection]:
        """The transport while the connection is open; None once it is
        closing (Thor 0.17's name and meaning)."""
        return None if self._closed else self.tcp

    @property
    def is_idle(self) -> bool:
        """True between requests, with no byte of the next one read."""
        return self.exchange is None and self.parser.idle

    # -- the timer -------------------------------------------------------------

    def _timeouts(self) -> Tuple[Optional[float], ...]:
        server = self.server
        return (
            server.idle_timeout, server.request_timeout, server.body_timeout,
            server.send_timeout,
        )

    def _on_timer(self) -> None:
        self._timer = None
        if not self._deadline_passed():
            return
        if self._closed:
            # A close waiting for its output to be sent.
            if self.tcp.tcp_connected and self._send_stalled():
                self._abort_transport()
            return
        exchange = self.exchange
        if self._write_paused:
            if self._send_stalled():
                if exchange is not None and exchange._response < _ANSWERED:
                    exchange._fail(error.SendTimeoutError(
                        "the client took nothing for %s seconds" % self.server.send_timeout))
                self.abort()
            return
        if exchange is not None:
            if exchange._response >= _ANSWERED:
                if exchange._request != _RECEIVED:
                    self.abort()  # the rest of an answered request never came
            elif exchange._request == _RECEIVING and not exchange._input_paused:
                err = error.BodyTimeoutError(
                    "no request body for %s seconds" % self.server.body_timeout)
                exchange._fail(err)
                self._reject(err)
            elif self._answer_bound() is not None:
                exchange._fail(error.ConnectionClosedError(
                    "the client ended its input and no answer came within %s seconds"
                    % self.server.send_timeout))
                self.close()
            return  # otherwise the application governs
        if self.parser.idle or self._await_drain:
            self.abort()  # idle
        else:
            self._reject(error.RequestTimeoutError("request head not received in time"))

    def _send_stalled(self) -> bool:
        """For the timer, with output queued: True if the client has taken
        none of it for send_timeout; otherwise the deadline is set again,
        send_timeout from the last progress (not from this check, which
        would stretch the bound towards twice send_timeout)."""
        tcp = self.tcp
        timeout = self.server.send_timeout
        if not tcp.write_buffered or timeout is None:
            return False
        last = self._send_since
        sent_at: float = getattr(tcp, "sent_at", 0.0)  # a transport without it: none seen
        if sent_at > last:
            last = sent_at
        left = last + timeout - self._clock()
        if left <= 0:
            return True
        self._set_deadline(left)
        return False

    def _restate_deadline(self) -> None:
        """Set the deadline for the state the connection is in now (after a
        change of state off the hot paths: output paused or resumed, input
        paused or resumed by the application, a close)."""
        server = self.server
        tcp = self.tcp
        if self._closed:
            if tcp.tcp_connected and tcp.write_buffered:
                self._send_since = self._clock()
                self._set_deadline(server.send_timeout)
            return
        if self._write_paused:
            self._send_since = self._clock()
            self._set_deadline(server.send_timeout)
            return
        exchange = self.exchange
        if exchange is None:
            self._set_deadline(
                server.idle_timeout if self.parser.idle else server.request_timeout)
        elif exchange._response >= _ANSWERED:
            self._set_deadline(
                None if exchange._request == _RECEIVED else server.request_timeout)
        elif exchange._request != _RECEIVING or exchange._input_paused:
            self._set_deadline(self._answer_bound())
        else:
            self._set_deadline(server.body_timeout)

    def _answer_bound(self) -> Optional[float]:
        """How long an answer may take: the application's business, except
        once the client has ended its input without half_close: the client
        may have gone (TCP cannot tell until something is written), so the
        answer gets send_timeout; none at all during a graceful shutdown if
        it has not started (the server is going, and the client may be)."""
        if self._peer_ended and not self.server.half_close:
            exchange = self.exchange
            if self._draining and exchange is not None and exchange._response == _UNANSWERED:
                return 0
            return self.server.send_timeout
        return None

    # -- input ---------------------------------------------------------------

    def _first_data(self, data: bytes) -> Optional[bytes]:
        """The connection's first read(s), with http2 on: the HTTP/2
        preface makes it an HTTP/2 connection (None: nothing for HTTP/1.1);
        anything else is returned, unchanged, for HTTP/1.1. (A flag test
        in _on_data costs less than swapping 'data' listeners, which a
        Connection: close client would pay on every request.)"""
        held = self._held
        if held:
            data = held + data
        head = data[:24]
        if head == _H2_PREFACE[:len(head)]:
            if len(head) == 24:
                self._held = None
                self._become_h2(data)
            elif not self._closed:
                # A part of the preface: wait for the rest, within
                # request_timeout of its first part (a trickle of one octet
                # at a time must not renew it).
                self._held = data
                if not held:
                    self._between_requests = False
                    self._set_deadline(self.server.request_timeout)
            return None
        self._held = None
        return data

    def _become_h2(self, data: bytes) -> None:
        """Hand the transport, and what was read, to an H2ServerConnection."""
        from thor.http.server_h2 import H2ServerConnection

        tcp = self.tcp
        for event, listener in (
            ("data", self._on_data), ("close", self._on_close),
            ("pause", self._on_tcp_pause), ("end", self._on_end),
        ):
            tcp.removeListener(event, listener)
        self._closed = True
        self._stop_timer()
        server = self.server
        server.connections.discard(self)
        server.connections.add(H2ServerConnection(server, tcp, data))

    def _on_data(self, data: bytes) -> None:
        if self._held is not None:
            first = self._first_data(data)
            if first is None:
                return
            data = first
        head_started = self._between_requests
        self._between_requests = False
        count = self._request_count
        self._in_input = True
        try:
            self.parser.feed(data)
        finally:
            self._in_input = False
        exchange = self.exchange
        if exchange is None:
            if head_started and self._request_count == count and not self._closed:
                # This read began a request head but did not complete it:
                # the client has request_timeout from now for the rest. (A
                # head that arrives in one read, the usual case, never
                # needs the request deadline; when a request was read,
                # finishing it set the deadline for what follows.)
                self._set_deadline(self.server.request_timeout)
        elif exchange._request == _RECEIVING and exchange._response < _ANSWERED:
            # A request body is coming: this read was progress.
            if not exchange._input_paused and not self._write_paused and not self._closed:
                self._set_deadline(self.server.body_timeout)
        out = self._out
        if out:  # _flush, inline: once per read
            data = b"".join(out)  # a lone bytes object is returned as it is
            out.clear()
            self._out_size = 0
            if not self._closed:
                self.tcp.write(data)
        if self.parser.paused or self._reading_paused:
            self._update_reading()

    def _update_reading(self) -> None:
        """Read from the client only while the parser holds less than
        ``inbuf_limit``, the application has not paused the request body,
        and the output is not backed up after a response. Called after the
        parser has run, and so before the next read."""
        if self._closed:
            return
        parser = self.parser
        exchange = self.exchange
        paused = (
            self._await_drain
            or (parser.paused and parser.buffered >= self.server.inbuf_limit)
            or (
                exchange is not None and exchange._input_paused
                and exchange._request != _RECEIVED
            )
        )
        if paused != self._reading_paused:
            self._reading_paused = paused
            self.tcp.pause(paused)

    def on_request_head(self, method: bytes, uri: bytes, headers: RawHeaderListType) -> None:
        parser = self.parser
        version = parser.version or b"1.1"
        exchange = HttpServerExchange(self, method, uri, headers, version)
        has_body = parser.body != NO_BODY and parser.content_length != 0
        if not has_body:
            exchange._no_request_body = True
        if (
            parser.close or parser.upgrade or parser.expect_continue
            or version != b"1.1" or method == b"HEAD" or method == b"CONNECT"
        ):  # not a plain request (the class defaults describe one)
            if parser.close:
                exchange._request_close = True
                exchange._plain = False
            if parser.upgrade:
                exchange._upgrade = True
            if parser.expect_continue:
                exchange._expect_continue = True
                exchange._plain = False
            if version != b"1.1" or method == b"HEAD" or method == b"CONNECT":
                exchange._plain = False
        self.exchange = exchange
        self._request_count += 1
        self._deadline = None  # the exchange is the application's now
        server = self.server
        try:
            server.emit("exchange", exchange)
            if self._closed:
                return
            exchange.emit("request_start", method, uri, headers)
        except Exception as exc:
            self._app_failed(exc, exchange)
            return
        if has_body and not self._closed and not exchange._input_paused:
            if exchange._expect_continue and exchange._response == _UNANSWERED:
                exchange._send_continue()
            if exchange._response < _ANSWERED and not self._write_paused:
                # The body has body_timeout between reads (the first
                # included: a 100-continue client that never sends it).
                timeout = server.body_timeout
                if timeout is not None:
                    self._set_deadline(timeout)

    def on_body(self, chunk: bytes) -> None:
        exchange = self.exchange
        if exchange is not None and exchange._request == _RECEIVING:
            try:
                exchange.emit("request_body", chunk)
            except Exception as exc:
                self._app_failed(exc, exchange)

    def on_message_done(self, trailers: RawHeaderListType) -> None:
        exchange = self.exchange
        if exchange is None:
            return  # closed meanwhile
        delivered = exchange._request == _RECEIVING
        exchange._request = _RECEIVED
        if delivered:
            # emit(), skipped when nobody listens and there is no sink.
            if "request_done" in exchange._events or exchange._sink is not None:
                try:
                    exchange.emit("request_done", trailers)
                except Exception as exc:
                    self._app_failed(exc, exchange)
                    return
            if self._closed:
                return
        if self.exchange is not exchange:
            return  # answered in request_done, the usual way: its end went on from there
        if exchange._response >= _ANSWERED:
            if not exchange._tunnel_ok:
                self._exchange_complete()  # answered before its request was done
        else:
            # Read no further until this response is done (pipelining);
            # the application governs time meanwhile.
            self.parser.pause()
            if not self._write_paused:
                self._deadline = None

    def on_response_nonfinal(
        self, status: bytes, phrase: bytes, headers: RawHeaderListType,
    ) -> None:  # pragma: no cover
        raise AssertionError("a request parser never reports responses")

    on_response_head = on_response_nonfinal

    def on_error(self, err: error.HttpError) -> None:
        exchange = self.exchange
        if exchange is not None and exchange._request == _RECEIVING:
            exchange._request = _DROPPING
            exchange._fail(err)
        self._reject(err)

    def _reject(self, err: error.HttpError) -> None:
        """Answer a broken or late request with its status, then close."""
        exchange = self.exchange
        if self._closed:
            return
        if exchange is not None and exchange.response_started:
            # Its response is under way: a status now would corrupt it.
            self.abort()
            return
        status, phrase = err.server_status or (b"400", b"Bad Request")
        body = (
            b"<html><head><title>" + status + b" " + phrase + b"</title></head><body><p>"
            + phrase + b"</p></body></html>\n"
        )
        self._out.append(
            b"HTTP/1.1 " + status + b" " + phrase + b"\r\n" + _date.get()
            + b"Content-Type: text/html\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n" + body
        )
        self.exchange = None
        self.close()

    def _app_failed(self, exc: Exception, exchange: HttpServerExchange) -> None:
        """A listener of ``exchange`` raised: report it, end the exchange
        with an error event, answer 500 if nothing was sent yet (else send
        a complete response, or cut an unfinished one), and close."""
        self.loop.exception_handler(self.loop, exc, exchange)
        err = error.InternalServerError(repr(exc))
        err.__cause__ = exc
        state = exchange._response
        exchange._stop()
        if not exchange._error_sent:
            exchange._emit_error(err)
        if self._closed:
            return
        if state == _UNANSWERED or state == _FAILED:
            self._reject(err)
        elif state == _ANSWERING:
            self.abort()
        else:
            self.close()

    # -- output --------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        """Queue ``data`` for the client: what is written while a read is
        handled goes out in one send after it (see _on_data), anything
        else on the next loop pass, and a large piece at once (see
        _DIRECT_SIZE)."""
        size = len(data)
        if size >= _DIRECT_SIZE:
            if self._out:
                self._flush()
            if not self._closed:
                self.tcp.write(data)
            return
        self._out.append(data)
        size += self._out_size
        self._out_size = size
        if size >= _FLUSH_SIZE:
            self._flush()
        elif not self._in_input and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.schedule(0, self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        out = self._out
        if out:
            data = b"".join(out)  # a lone bytes object is returned as it is
            out.clear()
            self._out_size = 0
            if not self._closed:
                self.tcp.write(data)

    def _on_tcp_pause(self, paused: bool) -> None:
        self._write_paused = paused
        exchange = self.exchange
        if exchange is not None and exchange._response < _ANSWERED:
            try:
                exchange.emit("pause", paused)
            except Exception as exc:
                self._app_failed(exc, exchange)
                return
        if not paused and self._await_drain and not self._closed:
            self._await_drain = False
            self._resume_input()
        else:
            self._restate_deadline()

    def _exchange_complete(self) -> None:
        """Both the request and the response of the current exchange are
        done: go on to the next request, unless output is backed up."""
        exchange = self.exchange
        self.exchange = None
        # It emits nothing more: dropping its listeners now frees it by
        # reference counting, where a handler's closure over it (the usual
        # way to write one) would leave a cycle for the garbage collector
        # (an eighth of the server's CPU per request in the hello-world
        # benchmark).
        if exchange is not None:
            exchange._events.clear()
        if self._write_paused:
            self._await_drain_output()
            return
        parser = self.parser
        if (
            parser.paused or self._reading_paused or self._await_drain
            or self._peer_ended or self._closed
        ):
            self._resume_input()
            return
        # _resume_input's common case (once per request): nothing paused,
        # nothing ended; the next request is read as reading goes on.
        if parser.idle:
            self._between_requests = True
            self._set_deadline(self.server.idle_timeout)
        else:
            self._between_requests = False
            self._set_deadline(self.server.request_timeout)

    def _await_drain_output(self) -> None:
        """Read nothing more until the output drains (pause(False))."""
        self._await_drain = True
        self._between_requests = False
        self.parser.pause()
        self._update_reading()
        self._restate_deadline()  # send_timeout

    def _resume_input(self) -> None:
        parser = self.parser
        if parser.idle:
            self._between_requests = True
            timeout = self.server.idle_timeout
        else:
            self._between_requests = False
            timeout = self.server.request_timeout
        self._set_deadline(timeout)
        if parser.paused:
            # From inside a parser callback this only clears the pause; the
            # parser's own loop carries on (no recursion), and whoever fed
            # it updates reading afterwards. Otherwise the requests already
            # read are handled now, up to one left waiting for its answer.
            parser.resume()
        if self._closed:
            return
        if self._reading_paused or parser.paused or self._await_drain:
            self._update_reading()  # otherwise reading goes on as it is
        if self._peer_ended:
            self._after_end()

    # -- closing -------------------------------------------------------------

    def drain(self) -> None:
        """For graceful shutdown: close now if idle, else after this exchange."""
        self._draining = True
        if self.exchange is None and (self.parser.idle or self._await_drain):
            self.close()
        elif self._peer_ended:
            self._restate_deadline()

    def close(self) -> None:
        """Send what is written, then close (within send_timeout); lingering
        (linger_timeout) if the client may still be sending."""
        if self._closed:
            return
        self._flush()
        self._closed = True
        self.parser.pause()  # no further request is read
        linger = self.server.linger_timeout
        if linger and self._input_pending():
            self.tcp.close(linger=linger)
        else:
            self.tcp.close()
        self._restate_deadline()

    def _input_pending(self) -> bool:
        """Whether the client may still be sending: a request body not read
        to its end, bytes read and not parsed (requests after the one
        answered, or the rest of a head that failed), and no end of input
        from it yet."""
        if self._peer_ended:
            return False
        exchange = self.exchange
        if exchange is not None and exchange._request != _RECEIVED:
            return True
        return not self.parser.idle

    close_conn = close  # Thor 0.17's name

    def abort(self) -> None:
        """Close at once, dropping anything unsent."""
        if self._closed:
            return
        self._closed = True
        self._out.clear()
        self.parser.pause()
        self._abort_transport()

    def _abort_transport(self) -> None:
        abort = getattr(self.tcp, "abort", None)
        (abort or self.tcp.close)()

    def _on_end(self) -> None:
        """The client will send nothing more. The end takes effect once the
        requests read before it are handled (see _after_end); an
        unfinished request gets the parser's error (400)."""
        if self._closed:
            return
        self._peer_ended = True
        exchange = self.exchange
        if (
            exchange is not None and exchange._response >= _ANSWERED
            and exchange._request != _RECEIVED
        ):
            # Answered already; the rest of its body will never come.
            self.close()
            return
        # Inside a request head or body this reports IncompleteHeadError /
        # IncompleteBodyError through on_error (400, then close); while
        # the parser is paused (a response outstanding) the end waits for
        # the requests before it.
        self.parser.finish()
        if not self._closed:
            self._after_end()

    def _after_end(self) -> None:
        """The client's input has ended; once the parser has reached the
        end (every request read before it handled), close when nothing is
        left to answer. A request read before the end is never given up
        at once: the client sent it, and may be reading; without
        half_close its answer gets send_timeout (see _answer_bound)."""
        if self._closed or not self.parser.idle:
            return
        exchange = self.exchange
        if exchange is None:
            self.close()  # every request the client sent has its answer
        elif exchange._response < _ANSWERED:
            bound = self._answer_bound()
            if bound is not None:
                self._set_deadline(bound)

    def _on_close(self) -> None:
        self._closed = True
        self._stop_timer()
        exchange = self.exchange
        self.exchange = None
        if exchange is not None and exchange._response < _ANSWERED:
            exchange._fail(error.ConnectionClosedError("client closed the connection"))
        self.server._connection_closed(self)

    def tunnel(self) -> Tuple[TcpConnection, bytes]:
        """Hand the transport to the application (CONNECT, 101)."""
        self._flush()
        self._closed = True  # nothing of HTTP's is written to it from now on
        self._stop_timer()
        tcp, leftover = hand_over(self.tcp, self.parser, (
            ("data", self._on_data), ("close", self._on_close),
            ("pause", self._on_tcp_pause), ("end", self._on_end),
        ))
        self.exchange = None
        self.server._connection_closed(self)
        # The transport's own rule for the end of input, for its new owner.
        tcp.half_close = bool(self.server.half_close)
        if self._peer_ended:
            # The client ended its side before the tunnel began: the new
            # owner hears it as the transport would tell it, next pass.
            self.loop.schedule(0, _ended_before_tunnel, tcp)
        return tcp, leftover


class ServerExchangeBase(EventEmitter):
    """What every server exchange has, whatever the protocol on the wire
    (HttpServerExchange here; thor.http.server_h2's H2ServerExchange for
    HTTP/2): the request and response states (_RECEIVING..., _UNANSWERED...
    above), Thor 0.17's names that read them, and how an exchange fails.
    Subclasses set ``connection`` and write the responses."""

    # An event's lone listener is kept as itself (see thor.events).
    _unwrap_single = True

    # Per-exchange state starts as these class attributes; an exchange
    # stores what changes, and (HttpServerExchange.__init__) what is read on
    # every request: Python 3.11 reads a class default through an instance
    # unspecialised, costlier than storing it once (-470 instructions per
    # hello request, /tmp/s4/abi.sh).
    _request = _RECEIVING
    _response = _UNANSWERED
    _input_paused = False
    _error_sent = False

    connection: Any

    @property
    def http_conn(self) -> Any:
        """The connection (Thor 0.17's name for ``connection``)."""
        return self.connection

    @property
    def req_complete(self) -> bool:
        """True once the whole request has been read (Thor 0.17's name)."""
        return self._request == _RECEIVED

    @property
    def res_done(self) -> bool:
        """True once the response is done, or the exchange has failed
        (Thor 0.17's name; ``finished`` is the same)."""
        return self._response >= _ANSWERED

    @property
    def finished(self) -> bool:
        """True once the response is done (or the exchange failed)."""
        return self._response >= _ANSWERED

    @property
    def response_started(self) -> bool:
        """True once the final response has started (Thor 0.17's name)."""
        state = self._response
        return state == _ANSWERING or state == _ANSWERED or state == _CUT

    def _stop(self) -> None:
        """The exchange fails or is aborted: it is finished (cut if its
        response had started, failed if not; a complete one stays so), and
        the rest of its request is read but not delivered."""
        state = self._response
        if state < _ANSWERED:
            self._response = _CUT if state == _ANSWERING else _FAILED
        if self._request == _RECEIVING:
            self._request = _DROPPING

    def _fail(self, err: error.HttpError) -> None:
        """End the exchange with ``err``, unless its response was done."""
        if self._response >= _ANSWERED:
            return
        self._stop()
        self._emit_error(err)

    def _emit_error(self, err: error.HttpError) -> None:
        self._error_sent = True
        try:
            self.emit("error", err)
        except Exception as exc:
            # Reported, not turned into another error event: the exchange
            # is over already.
            loop = self.connection.loop
            loop.exception_handler(loop, exc, self)


class HttpServerExchange(ServerExchangeBase):
    """One request and its response.

    Emits: request_start(method, uri, headers), request_body(chunk),
    request_done(trailers), pause(paused) (output backpressure: stop calling
    response_body while paused), error(err) (the connection failed, or a
    time bound passed, before the response was done, or a listener of this
    exchange raised: InternalServerError; nothing else follows).

    Attributes: method, uri, req_hdrs, req_version (bytes: b"1.1", b"1.0"),
    connection (the HttpServerConnection; ``http_conn`` is Thor 0.17's
    name for it), finished, and Thor 0.17's req_complete, res_done,
    response_started.
    """

    connection: HttpServerConnection
    # How the response body is framed: set with the head (thor.http.writer).
    _writer: BodyWriter = NO_BODY_WRITER
    _request_close = False
    _continue_sent = False
    _close_after = False
    _tunnel_ok = False
    _upgrade = False
    _no_request_body = False
    _expect_continue = False
    # Nothing about the request changes how a response is framed: HTTP/1.1,
    # not HEAD or CONNECT, no Connection: close, no Expect: 100-continue.
    _plain = True

    def __init__(
        self, connection: HttpServerConnection, method: bytes, uri: bytes,
        headers: RawHeaderListType, version: bytes,
    ) -> None:
        self._init_emitter()
        self.connection = connection
        self.method = method
        self.uri = uri
        self.req_hdrs = headers
        self.req_version = version
        # Read on every request (see ServerExchangeBase).
        self._request = _RECEIVING
        self._response = _UNANSWERED
        self._input_paused = False
        self._tunnel_ok = False
        self._close_after = False
        self._no_request_body = False
        self._plain = True

    def __repr__(self) -> str:
        return "<HttpServerExchange %s %s>" % (
            self.method.decode("latin-1"), self.uri.decode("latin-1")
        )

    # -- input control ---------------------------------------------------------

    def pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) request_body events for this request.
        Resuming sends ``100 Continue`` when the client asked for it and no
        response has started. While paused, the request body has no time
        bound: the application governs."""
        paused = bool(paused)
        if paused == self._input_paused:
            return
        self._input_paused = paused
        conn = self.connection
        if conn.exchange is not self or self._request == _RECEIVED or conn._closed:
            return
        if paused:
            conn.parser.pause()
        else:
            if self._expect_continue and self._response == _UNANSWERED:
                self._send_continue()
            conn.parser.resume()
            if conn._closed:
                return
            if conn._peer_ended:
                conn._after_end()
                if conn._closed:
                    return
        conn._update_reading()
        conn._restate_deadline()

    def _send_continue(self) -> None:
        if not self._continue_sent and self.req_version == b"1.1":
            self._continue_sent = True
            self.connection._write(_CONTINUE)

    # -- response --------------------------------------------------------------

    def response_nonfinal(
        self, status: StatusInput, phrase: TextInput, headers: Optional[HeaderInput],
    ) -> None:
        """Send an informational (1xx) response, e.g. 103 Early Hints.
        Not sent to HTTP/1.0 clients."""
        code = encode_status(status)
        if code[:1] != b"1" or code == b"101":
            raise error.BadStatusError("response_nonfinal takes a 1xx status other than 101")
        if self.response_started:
            raise error.StateError("the final response has already started")
        fields_in = _listed(headers)
        prefix, _, _, fields, _, _ = _checked_head(code, phrase, fields_in)
        if fields is not None:
            head = self._head_special(prefix, fields_in, fields, True, None)
        else:
            head = prefix + b"\r\n"
        if self.req_version == b"1.1" and not self.connection._closed:
            if code == b"100":
                if self._continue_sent:
                    return
                self._continue_sent = True
            self.connection._write(head)

    def response_start(
        self, status: StatusInput, phrase: TextInput, headers: Optional[HeaderInput],
    ) -> None:
        """Start the response; thor chooses and writes the framing."""
        state = self._response
        if state != _UNANSWERED and state != _FAILED:
            raise error.StateError("response_start called twice")
        entry: Optional[HeadEntry] = None
        if type(headers) is list and type(status) in _EXACT and type(phrase) in _EXACT:
            # _checked_head's look-up, inline: a head seen before.
            try:
                entry = _heads.get((status, phrase, tuple(headers)))
            except TypeError:
                pass
        fields_in: Fields = headers  # type: ignore[assignment]  # listed below when needed
        if entry is None:
            fields_in = _listed(headers)
            entry = _checked_head(status, phrase, fields_in)
        prefix, code, content_length, fields, tail, special = entry
        conn = self.connection
        if tail is not None and self._plain and not conn._draining:
            # The common case: a plain request, a final status with a body,
            # no connection field and no Date: the framing is known.
            if content_length is None:
                self._writer = CHUNKED_WRITER
            else:
                writer = self._writer = conn._length_writer
                writer.left = content_length
            date = _date.field if _now() < _date.expires else _date.get()
            head = prefix + date + tail
        else:
            if code[0] == 49:  # 1xx
                if code != b"101":
                    raise error.BadStatusError("use response_nonfinal for 1xx responses")
                if not self._upgrade:
                    raise error.StateError("101 answers only a request that asked to Upgrade")
            if fields is None:
                head = self._framed(prefix, code, content_length, False, False)
            elif special is not None:
                head = self._framed(special[0], code, content_length, special[1], special[2])
            else:  # a 101
                head = self._head_special(prefix, fields_in, fields, False, content_length)
        if state == _FAILED:
            # Its connection has closed (the error event said so): the rest
            # of the response is taken and dropped.
            self._response = _CUT
            return
        self._response = _ANSWERING
        if not conn._closed:
            # _write's common case, inline (this module owns it): a small
            # piece gathered during input, once per response.
            size = conn._out_size + len(head)
            if conn._in_input and size < _DIRECT_SIZE:
                conn._out.append(head)
                conn._out_size = size
            else:
                conn._write(head)

    def _head_special(
        self, prefix: bytes, headers: Fields, fields: Tuple[FieldEntry, ...],
        nonfinal: bool, content_length: Optional[int],
    ) -> bytes:
        """The head of a 1xx response with special fields (final heads
        have theirs worked out in their entry: _special_head); a 101's
        framing is set. Raises, having changed nothing, for anything that
        is not valid on the wire."""
        status = prefix[9:12]
        tokens = field_tokens(entry[2] for entry in fields if entry[1] == b"connection")
        extra: List[bytes] = []  # Date, and Upgrade in a 101
        has_upgrade = False
        for entry in fields:
            lower = entry[1]
            if lower == b"date":
                extra.append(entry[0])
            elif lower == b"upgrade" and status == b"101":
                has_upgrade = True
                extra.append(entry[0])
        if status == b"101" and not has_upgrade:
            raise error.BadHeaderError("a 101 response needs an Upgrade field")
        lines = _head_lines(prefix, headers, tokens)
        if nonfinal:
            lines.append(b"\r\n")
            return b"".join(lines)
        has_date = False
        for line in extra:
            lines.append(line)
            has_date = has_date or line[:5].lower() == b"date:"
        return self._framed(
            b"".join(lines), status, content_length, b"close" in tokens, has_date
        )

    def _framed(
        self, head: bytes, status: bytes, content_length: Optional[int], app_close: bool,
        has_date: bool,
    ) -> bytes:
        """Add Date, the framing and the connection fields to ``head`` (the
        status line and the application's fields); sets the framing."""
        method = self.method
        if not has_date:
            head += _date.get()
        close = self._request_close or app_close or self.connection._draining
        if status == b"101":
            self._writer = NO_BODY_WRITER
            self._tunnel_ok = True
            return head + b"Connection: upgrade\r\n\r\n"
        if method == b"CONNECT":
            if status[0] == 50:  # 2xx: a tunnel, no framing fields (RFC 9110 9.3.6)
                self._writer = NO_BODY_WRITER
                self._tunnel_ok = True
                return head + b"\r\n"
            # A refused tunnel: what the client sent after its request may be
            # tunnel data, not HTTP, so read no further.
            close = True
        if (
            self._expect_continue and not self._continue_sent
            and self._request != _RECEIVED and not self._no_request_body
        ):
            # Answered without 100 Continue: the client may or may not send
            # the body now (RFC 9110 10.1.1); do not guess which.
            close = True
        if method == b"HEAD" or status == b"204" or status == b"304":
            self._writer = NO_BODY_WRITER
            if content_length is not None and status != b"204":
                # HEAD: the length a GET would have; 304: of the selected
                # representation (RFC 9110 8.6). 204 never has one.
                head += b"Content-Length: %d\r\n" % content_length
        elif content_length is not None:
            writer = self._writer = self.connection._length_writer
            writer.left = content_length
            head += b"Content-Length: %d\r\n" % content_length
        elif self.req_version == b"1.1":
            self._writer = CHUNKED_WRITER
            head += b"Transfer-Encoding: chunked\r\n"
        else:
            self._writer = CLOSE_WRITER
            close = True
        if close:
            self._close_after = True
            return head + b"Connection: close\r\n\r\n"
        if self.req_version == b"1.0":
            return head + b"Connection: keep-alive\r\n\r\n"
        return head + b"\r\n"

    def response_body(self, chunk: BodyInput) -> None:
        """Send a chunk of the response body (bytes, or str as UTF-8)."""
        state = self._response
        if state != _ANSWERING:
            if state >= _ANSWERED and self.connection._closed:
                return  # the client went away (an error event said so)
            raise error.StateError("response_body outside a response")
        if chunk.__class__ is not bytes:
            chunk = encode_body_chunk(chunk)
        if not chunk:
            return
        data = self._writer.chunk(chunk)  # raises BodyLengthError past Content-Length
        if not data:
            return  # HEAD, 204, 304, tunnels: a body here is not sent
        conn = self.connection
        if not conn._closed:
            # As in response_start.
            size = conn._out_size + len(data)
            if conn._in_input and size < _DIRECT_SIZE:
                conn._out.append(data)
                conn._out_size = size
            else:
                conn._write(data)

    def response_done(
        self, trailers: Optional[HeaderInput] = None, close: bool = False,
    ) -> None:
        """Finish the response; ``close=True`` closes the connection after it.
        ``trailers`` go out with a chunked response and are dropped otherwise
        (fields that must not be trailers are dropped too)."""
        conn = self.connection
        state = self._response
        if state != _ANSWERING:
            if state == _UNANSWERED:
                raise error.StateError("response_done before response_start")
            if conn._closed:
                return  # the client went away (an error event said so)
            raise error.StateError("response_done called twice")
        writer = self._writer
        try:
            # A bad trailer field raises with nothing changed; a short body
            # cannot be mended, and the client must not take it as whole.
            end = writer.end(trailers)
        except error.BodyLengthError:
            self._stop()
            conn.abort()
            raise
        self._response = _ANSWERED
        if conn._closed:
            return
        if end:
            conn._write(end)
        if self._tunnel_ok:
            return  # the application takes the connection with tunnel()
        if close or self._close_after or writer is CLOSE_WRITER or conn._draining:
            conn.close()
        elif self._request == _RECEIVED:
            conn._exchange_complete()
        elif self._input_paused:
            conn.close()  # the application will not read the rest
        elif not self._no_request_body:
            # The rest of the request body is read and dropped, in time.
            conn._set_deadline(conn.server.request_timeout)
        # else: answered before its (bodiless) request was done, the usual
        # case; on_message_done goes on from here.

    def tunnel(self) -> Tuple[TcpConnection, bytes]:
        """After a 2xx answer to CONNECT or a 101 answer to an Upgrade
        request, and once the request is done, return ``(tcp_connection,
        buffered)``: the raw transport, paused, and any bytes the client sent
        after its request. HTTP is done with the connection; the
        application owns it (and must close it) from here."""
        if not self._tunnel_ok or not self.response_started:
            raise error.StateError("tunnel() needs a 2xx CONNECT or 101 response")
        if self._request != _RECEIVED:
            raise error.StateError("tunnel() before the request is done")
        if self.connection._closed:
            raise error.StateError("the connection is closed")
        self._response = _ANSWERED
        return self.connection.tunnel()

    def abort(self) -> None:
        """Close the connection at once, whatever was sent (e.g. when an
        upstream failed half-way through a response)."""
        self._stop()
        self.connection.abort()


def _ended_before_tunnel(tcp: TcpConnection) -> None:
    """The client ended its input before tunnel(): its new owner hears
    'end' if it set half_close meanwhile (read now, not at tunnel()),
    else the transport closes once what was written is sent, as it
    would have; unless the owner has closed it already."""
    if tcp.tcp_connected:
        if tcp.half_close:
            tcp.emit("end")
        else:
            tcp.close()


def _listed(headers: Optional[HeaderInput]) -> Fields:
    """``headers`` as a list or tuple: they may be read more than once."""
    if headers is None:
        return ()
    if headers.__class__ is list or headers.__class__ is tuple:
        return headers
    return list(headers)

