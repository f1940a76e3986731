"""HttpServer's HTTP/2 side: a connection that serves HTTP/2 streams as
exchanges with the same events and calls as HTTP/1.1 (thor.http.server).

Theory of operation
-------------------
- HttpServer hands a connection here when it is HTTP/2: over TLS when ALPN
  selected ``h2``, in cleartext when its first bytes are the connection
  preface (prior knowledge; thor.http.server detects it on the first read
  and passes on what it read). The protocol is thor.http.h2's sans-I/O
  H2Connection; this module only ties it to the transport, the timers and
  the exchanges.
- Each request stream is an ``H2ServerExchange``, whose public surface is
  HttpServerExchange's: the application cannot tell the protocols apart
  but by ``req_version`` (b"2"). The request head is translated as
  RFC 9113 8.3.1 says for a translation to HTTP/1.1: ``:method`` and
  ``:path`` are the method and the URI (``:authority`` for CONNECT), a
  ``Host`` field is made from ``:authority`` when the request has none,
  and cookie fields are joined with "; " (8.2.3). The response is taken
  as HTTP/1.1's: the application's connection-specific fields are dropped
  (an HTTP/2 message must not have them), its Content-Length is enforced,
  a Date is added unless given, and trailers go out as a trailer section.
- Output is gathered: what the streams write while a read is handled goes
  out in one send after it; what they write at other times on the next
  loop pass. A stream's body goes out as the peer's flow-control windows
  allow (thor.http.h2); the exchange gets ``pause(True)`` once more than
  ``_PAUSE_SIZE`` octets wait for the window, or while the transport's
  output is backed up, and ``pause(False)`` when they drain.
- Request body data is acknowledged to the peer (WINDOW_UPDATE) as it is
  delivered; while the application has paused the request body it is held
  and not acknowledged, so the peer's window, not our memory, bounds it.
  Answered while paused, the request is given up (HTTP/1.1 closes the
  connection then): what is held is acknowledged, the rest dropped, and
  the stream reset NO_ERROR once END_STREAM is out (RFC 9113 8.1).
  Expect: 100-continue gets 100 once the application reads the body.
  While the transport's output is backed up nothing more is read.
- One timer per connection (thor.loop.LazyTimer): ``idle_timeout`` while no
  stream is open (from the last whole frame: a trickle does not renew
  it), ``send_timeout`` while output waits for the transport (the
  connection is closed) or for a peer's window that does not open (each
  stream from the last time some of its body went out: those are reset
  with CANCEL; their exchanges get SendTimeoutError),
  ``body_timeout`` for each request body that makes no progress (408 or
  RST_STREAM; BodyTimeoutError). While a stream waits for its response,
  the application governs time.
- ``graceful_shutdown`` sends GOAWAY: streams already opened finish, later
  ones are refused, and the connection closes after the last.
- An exception from a listener of an exchange ends that stream only: it goes
  to the loop's exception handler, the exchange gets ``error``
  (InternalServerError), and the client gets 500, or RST_STREAM
  INTERNAL_ERROR if the response had started.
"""

from __future__ import annotations

import time as _time
from typing import TYPE_CHECKING

from thor.http import error
from thor.http.headers import (
    encode_status, encode_phrase, encode_body_chunk, field_tokens, HOP_BY_HOP,
    TRAILER_FORBIDDEN,
)
from thor.http.h2.connection import (
    H2Config, H2Connection, H2UsageError, RequestReceived, DataReceived, StreamEnded,
    StreamReset, WindowUpdated, TrailersReceived, ConnectionTerminated, HALF_CLOSED_REMOTE,
)
from thor.http.h2.frames import NO_ERROR, INTERNAL_ERROR, CANCEL
from thor.http.server import (
    ServerExchangeBase, _checked_field, _listed, _EXACT,
    _RECEIVING, _DROPPING, _RECEIVED, _UNANSWERED, _ANSWERING, _ANSWERED, _CUT, _FAILED,
)
from thor.http.writer import check_content_length
import thor.loop

if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

    from thor.loop import LoopBase
    from thor.tcp import TcpConnection
    from thor.types import (
        BodyInput, HeaderInput, RawHeaderListType, StatusInput, TextInput,
    )
    from thor.http.server import HttpServer

    Field = Tuple[bytes, bytes]
    # A checked response head: (fields with :status, status code,
    # Content-Length or None, whether a Date was given).
    H2Head = Tuple[List[Field], bytes, Optional[int], bool]

__all__ = ["H2ServerConnection", "H2ServerExchange", "DEFAULT_CONFIG"]

#: The settings used when the server's ``http2_config`` is None. What the
#: application passes is checked (and lower-cased, connection-specific
#: fields dropped) here, as for HTTP/1.1, so the core need not check it
#: again.
DEFAULT_CONFIG = H2Config(validate_outbound=False)

# Octets of one stream's body waiting for the peer's window before its
# exchange is paused: what an application writing in 64 KiB chunks may
# have queued ahead of the window (resumed at half of it).
_PAUSE_SIZE = 65536

# The interim response to Expect: 100-continue.
_CONTINUE: List[Tuple[bytes, bytes]] = [(b":status", b"100")]

# Statuses whose responses have no content (with HEAD's).
_NO_CONTENT = frozenset((b"204", b"304"))

# Checked response heads (as in thor.http.server's _heads): (status,
# phrase, tuple(headers)) as passed -> H2Head.
_h2_heads: Dict[Tuple[Any, Any, Tuple[Any, ...]], H2Head] = {}
_H2_HEAD_CACHE_MAX = 256


class _DateValue:
    """The Date field's value, formatted once a second."""

    __slots__ = ("expires", "value")

    def __init__(self) -> None:
        self.expires = 0.0
        self.value = b""

    def get(self) -> bytes:
        now = _time.time()
        if now >= self.expires:
            second = int(now)
            self.expires = second + 1
            self.value = _time.strftime(
                "%a, %d %b %Y %H:%M:%S GMT", _time.gmtime(second)).encode("ascii")
        return self.value


_date = _DateValue()
_now = _time.time
# The last head given a Date: [its fields, the Date, the fields with it],
# for the next response with the same head in the same second (never
# modified: the lists are only read).
_dated: List[Any] = [None, b"", None]


def _checked_head(status: StatusInput, phrase: TextInput, headers: Any) -> H2Head:
    """The HTTP/2 fields for a response head; raises, having cached
    nothing, for anything that is not valid on the wire."""
    key: Optional[Tuple[Any, Any, Tuple[Any, ...]]] = None
    if type(status) in _EXACT and type(phrase) in _EXACT:
        try:
            key = (status, phrase, tuple(headers))
            found = _h2_heads.get(key)
        except TypeError:
            key = found = None
        if found is not None:
            return found
    code = encode_status(status)
    encode_phrase(phrase)  # checked as HTTP/1.1 would; HTTP/2 has no phrase
    entries = [_checked_field(field) for field in headers]
    tokens = field_tokens(e[2] for e in entries if e[1] == b"connection")
    fields: List[Field] = [(b":status", code)]
    content_length: Optional[int] = None
    has_date = False
    for _, lower, value in entries:
        if lower in HOP_BY_HOP or lower in tokens:
            continue  # connection-specific: never in HTTP/2 (RFC 9113 8.2.2)
        if lower == b"content-length":
            content_length = check_content_length(value, content_length)
            continue  # added once below
        if lower == b"date":
            has_date = True
        fields.append((lower, value))
    if content_length is not None and code != b"204":
        fields.append((b"content-length", b"%d" % content_length))
    head: H2Head = (fields, code, content_length, has_date)
    if key is not None:
        if len(_h2_heads) >= _H2_HEAD_CACHE_MAX:
            _h2_heads.clear()
        _h2_heads[key] = head
    return head


def _trailer_fields(trailers: Any) -> List[Field]:
    """Checked trailer fields, lower-cased, without those RFC 9110 6.5.1
    keeps out of trailers; raises BadHeaderError having sent nothing."""
    out: List[Field] = []
    for field in trailers:
        entry = _checked_field(field)
        if entry[1] not in TRAILER_FORBIDDEN:
            out.append((entry[1], entry[2]))
    return out


class H2ServerConnection(thor.loop.LazyTimer):
    """One HTTP/2 client connection: its H2Connection, its exchanges (by
    stream id), its timer. ``tcp`` is the transport, ``server`` the
    HttpServer, ``h2`` the protocol state (thor.http.h2.H2Connection)."""

    __slots__ = (
        "server", "tcp", "loop", "h2", "exchanges", "_in_input", "_flush_scheduled",
        "_closed", "_write_paused", "_draining", "_peer_ended", "_send_since",
        "_blocked", "_request_count", "_reading_paused", "_pending", "_last_request",
        "_read_at", "_blocked_due",
    )

    def __init__(self, server: HttpServer, tcp_conn: TcpConnection, data: bytes = b"") -> None:
        self.server = server
        self.tcp = tcp_conn
        self.loop: LoopBase = server._loop
        self.h2 = H2Connection(False, server.http2_config or DEFAULT_CONFIG, self.loop._clock)
        self.exchanges: Dict[int, H2ServerExchange] = {}
        self._in_input = False
        self._flush_scheduled = False
        self._closed = False
        self._write_paused = False
        self._reading_paused = False
        self._draining = False
        self._peer_ended = False
        self._send_since = 0.0
        # When the read being handled came (body_timeout counts from it).
        self._read_at = 0.0
        # Exchanges with body waiting for the peer's window (send_timeout,
        # each from its own last progress: see _check_output).
        self._blocked: Dict[H2ServerExchange, None] = {}
        # No blocked exchange times out before this (a lower bound: the
        # timer looks at each when it comes).
        self._blocked_due = 0.0
        self._request_count = 0
        # Exchanges holding the last piece of a body (see response_body).
        self._pending: List[H2ServerExchange] = []
        # The last request head and its translation (fields as
        # req_hdrs): a client repeating a request is translated once.
        self._last_request: Optional[
            Tuple[List[Field], bytes, bytes, RawHeaderListType]] = None
        self._init_timer(self.loop)
        self.h2.initiate()
        tcp_conn.on("data", self._on_data)
        tcp_conn.on("close", self._on_close)
        tcp_conn.on("pause", self._on_tcp_pause)
        tcp_conn.half_close = True
        tcp_conn.on("end", self._on_end)
        self._set_deadline(server.idle_timeout)
        if data:
            self._on_data(data)
        else:
            self._flush()
        if not self._closed:
            tcp_conn.pause(False)

    def __repr__(self) -> str:
        return "<H2ServerConnection %s:%s %d requests, %d open%s>" % (
            getattr(self.tcp, "host", "?"), getattr(self.tcp, "port", "?"),
            self._request_count, len(self.exchanges), " closed" if self._closed else "",
        )

    @property
    def tcp_conn(self) -> Optional[TcpConnection]:
        """The transport while the connection is open; None once closing."""
        return None if self._closed else self.tcp

    @property
    def is_idle(self) -> bool:
        """True while no stream is open."""
        return not self.exchanges

    # -- input -----------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        self._in_input = True
        self._read_at = self._clock()
        try:
            events = self.h2.receive_data(data)
            exchanges = self.exchanges
            opened = False
            for event in events:
                kind = event.__class__
                if kind is RequestReceived:
                    self._on_request(event)  # type: ignore[arg-type]
                elif kind is DataReceived:
                    exchange = exchanges.get(event.stream_id)  # type: ignore[attr-defined]
                    if exchange is None or exchange._request != _RECEIVING:
                        self.h2.acknowledge_data(
                            event.stream_id, event.flow_length)  # type: ignore[attr-defined]
                    else:
                        exchange._progress = self._read_at
                        exchange._on_body(event.data, event.flow_length)  # type: ignore[attr-defined]
                elif kind is StreamEnded:
                    exchange = exchanges.get(event.stream_id)  # type: ignore[attr-defined]
                    if exchange is not None:
                        exchange._on_end()
                elif kind is TrailersReceived:
                    exchange = exchanges.get(event.stream_id)  # type: ignore[attr-defined]
                    if exchange is not None:
                        exchange._trailers = event.headers  # type: ignore[attr-defined]
                elif kind is WindowUpdated:
                    # once per read, not per frame: each pass looks at
                    # every blocked stream, and a client sending WINDOW_UPDATE
                    # frames of 1 octet must not cost that per frame
                    opened = True
                elif kind is StreamReset:
                    self._on_stream_reset(event)  # type: ignore[arg-type]
                elif kind is ConnectionTerminated:
                    self._on_terminated(event)  # type: ignore[arg-type]
                if self._closed:
                    break
            if opened and self._blocked and not self._closed:
                self._window_opened()
        finally:
            self._in_input = False
        if self._pending:
            self._send_pending()
        data = self.h2.data_to_send()
        if data and not self._closed:
            self.tcp.write(data)
        if not self.exchanges and not self._write_paused and not self._closed:
            if self._draining or self._peer_ended or self.h2.goaway_received:
                self.close()
            elif self._deadline is None or not self.h2.input_pending:
                # Idle from the last whole frame: a frame or header block
                # trickled an octet at a time does not keep it open.
                self._set_deadline(self.server.idle_timeout)
        else:
            self._restate_deadline()

    def _on_request(self, event: RequestReceived) -> None:
        headers = event.headers
        last = self._last_request
        if last is not None and last[0] == headers:
            # (the same field objects, from HPACK's cache: compared by identity)
            method, uri, fields = last[1], last[2], last[3][:]
        else:
            method, uri, fields = _translate(headers)
            self._last_request = (headers, method, uri, fields[:])
        exchange = H2ServerExchange(self, event.stream_id, method, uri, fields)
        exchange._progress = self._read_at
        exchange._head = headers
        self.exchanges[event.stream_id] = exchange
        self._request_count += 1
        try:
            self.server.emit("exchange", exchange)
            if exchange._response < _ANSWERED:
                exchange.emit("request_start", method, uri, fields)
        except Exception as exc:
            self._app_failed(exc, exchange)
            return
        # (A request whose HEADERS ended it is already half-closed here.)
        stream = self.h2.streams.get(event.stream_id)
        if stream is not None and stream.state != HALF_CLOSED_REMOTE and _expects_continue(fields):
            # RFC 9110 10.1.1: the client waits for 100 before sending the
            # body: sent once the application reads it (as over HTTP/1.1).
            exchange._expect_continue = True
            if not exchange._input_paused:
                exchange._send_continue()

    def _on_stream_reset(self, event: StreamReset) -> None:
        exchange = self.exchanges.pop(event.stream_id, None)
        if exchange is None:
            return
        self._blocked.pop(exchange, None)
        exchange._gone = True
        if exchange._response < _ANSWERED:
            exchange._fail(error.ConnectionClosedError(
                "stream reset by the %s (error code %d)" % (
                    "client" if event.remote else "server", event.error_code)))
        exchange._events.clear()

    def _on_terminated(self, event: ConnectionTerminated) -> None:
        if event.remote:
            # The client's GOAWAY: it opens no more streams; those open
            # finish (the connection closes after the last).
            return
        # Our GOAWAY for the client's protocol error: nothing more is read.
        self._fail_all(error.ConnectionClosedError(
            "HTTP/2 connection error %d from the client" % event.error_code))
        self.close()

    def _fail_all(self, err: error.HttpError) -> None:
        exchanges = list(self.exchanges.values())
        self.exchanges.clear()
        self._blocked.clear()
        for exchange in exchanges:
            exchange._gone = True
            exchange._fail(err)
            exchange._events.clear()

    def _on_end(self) -> None:
        """The client will send nothing more: streams whose request is
        complete are answered, the others fail; then the connection closes."""
        if self._closed:
            return
        self._peer_ended = True
        for exchange in list(self.exchanges.values()):
            if exchange._request != _RECEIVED:
                exchange._gone = True
                exchange._fail(error.ConnectionClosedError("client closed the connection"))
                self._forget(exchange)
        if not self.exchanges:
            self.close()

    def _on_close(self) -> None:
        self._closed = True
        self._stop_timer()
        self._fail_all(error.ConnectionClosedError("client closed the connection"))
        self.server._connection_closed(self)

    # -- output ----------------------------------------------------------------

    def _wrote(self) -> None:
        """Something was queued outside of input: send it next pass."""
        if not self._in_input and not self._flush_scheduled and not self._closed:
            self._flush_scheduled = True
            self.loop.schedule(0, self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._send_pending()
        data = self.h2.data_to_send()
        if data and not self._closed:
            self.tcp.write(data)

    def _send_pending(self) -> None:
        """Body pieces held for an END_STREAM that has not come: send them."""
        pending = self._pending
        self._pending = []
        for exchange in pending:
            chunk = exchange._held_out
            if chunk is not None:
                exchange._held_out = None
                if not exchange._gone and not self._closed:
                    self.h2.send_data(exchange.stream_id, chunk)
                    self._check_output(exchange)

    def _check_output(self, exchange: H2ServerExchange) -> None:
        """Pause or resume ``exchange``'s output for the window it waits
        for and the transport; track it for send_timeout."""
        waiting = self.h2.outbound_buffered(exchange.stream_id)
        if waiting:
            blocked = self._blocked
            if exchange not in blocked:
                now = exchange._blocked_since = self._clock()
                if not blocked:
                    timeout = self.server.send_timeout
                    if timeout is not None:
                        self._blocked_due = now + timeout
                    self._set_deadline(timeout)
                blocked[exchange] = None
            elif waiting < exchange._send_mark:
                # Some went out: its send_timeout counts from now. (A
                # WINDOW_UPDATE that moves nothing of it is no progress:
                # else a client sending 1-octet ones on stream 0 would
                # keep every blocked response in memory for good.)
                exchange._blocked_since = self._clock()
            exchange._send_mark = waiting
        elif self._blocked:
            self._blocked.pop(exchange, None)
        paused = exchange._out_paused
        if paused:
            want = self._write_paused or waiting > _PAUSE_SIZE // 2
        else:
            want = self._write_paused or waiting >= _PAUSE_SIZE
        if want != paused and exchange._response == _ANSWERING:
            exchange._out_paused = want
            exchange._emit_safely("pause", want)

    def _window_opened(self) -> None:
        for exchange in list(self._blocked):
            self._check_output(exchange)
            if exchange not in self._blocked and exchange._done():
                self._forget(exchange)

    def _on_tcp_pause(self, paused: bool) -> None:
        self._write_paused = paused
        if self._closed:
            return
        if paused:
            self._send_since = self._clock()  # send_timeout from now
        if paused != self._reading_paused:
            # A client that does not read what it asked for gets no more
            # of its input read.
            self._reading_paused = paused
            self.tcp.pause(paused)
        now = self._clock()
        for exchange in list(self.exchanges.values()):
            if not paused:
                # unread, the client could send nothing: body_timeout
                # counts from now
                exchange._progress = now
            if exchange._response == _ANSWERING:
                self._check_output(exchange)
        self._restate_deadline()

    # -- exchanges ending ------------------------------------------------------

    def _forget(self, exchange: H2ServerExchange) -> None:
        """``exchange`` emits nothing more: drop it (and its listeners, which
        usually close over it, so that reference counting frees it)."""
        self.exchanges.pop(exchange.stream_id, None)
        self._blocked.pop(exchange, None)
        exchange._events.clear()
        if exchange._request == _DROPPING and not exchange._gone and not self._closed:
            # Answered whole (END_STREAM is out of the queue) before the
            # rest of a request the application gave up: the client may
            # stop sending it (RFC 9113 8.1).
            exchange._gone = True
            try:
                self.h2.reset_stream(exchange.stream_id, NO_ERROR)
            except H2UsageError:
                pass  # the stream has gone meanwhile
            self._wrote()
        if not self.exchanges and not self._in_input and not self._closed:
            if self._draining or self._peer_ended or self.h2.goaway_received:
                self.close()
            else:
                # The last stream ended outside a read (an answer from a
                # timer, say): the connection is idle from now.
                self._restate_deadline()

    def _app_failed(self, exc: Exception, exchange: H2ServerExchange) -> None:
        """A listener of ``exchange`` raised: report it, end the exchange
        with an error event, and end its stream: 500 if nothing was sent,
        RST_STREAM if the response had started. Other streams go on."""
        self.loop.exception_handler(self.loop, exc, exchange)
        err = error.InternalServerError(repr(exc))
        err.__cause__ = exc
        state = exchange._response
        exchange._stop()
        exchange._drop_input()
        if not exchange._error_sent:
            exchange._emit_error(err)
        if self._closed or exchange._gone:
            return
        h2 = self.h2
        sid = exchange.stream_id
        exchange._gone = True
        try:
            if state == _UNANSWERED or state == _FAILED:
                body = b"<html><body><p>Internal Server Error</p></body></html>\n"
                h2.send_headers(sid, [
                    (b":status", b"500"), (b"content-type", b"text/html"),
                    (b"content-length", b"%d" % len(body)), (b"date", _date.get()),
                ])
                h2.send_data(sid, body, True)
                if exchange._request != _RECEIVED and not h2.outbound_buffered(sid):
                    # Answered whole: the rest of the request is not wanted
                    # (RFC 9113 8.1).
                    h2.reset_stream(sid, NO_ERROR)
            elif state == _ANSWERING:
                h2.reset_stream(sid, INTERNAL_ERROR)
        except H2UsageError:
            pass  # the stream has gone meanwhile
        self._forget(exchange)
        self._wrote()

    # -- the timer -------------------------------------------------------------

    def _timeouts(self) -> Tuple[Optional[float], ...]:
        server = self.server
        return (server.idle_timeout, server.send_timeout, server.body_timeout)

    def _restate_deadline(self) -> None:
        server = self.server
        if self._closed:
            if self.tcp.tcp_connected and self.tcp.write_buffered:
                self._send_since = self._clock()
                self._set_deadline(server.send_timeout)
            return
        if self._write_paused or self._blocked:
            timeout = server.send_timeout
            if timeout is None:
                self._deadline = None
            elif self._write_paused:
                self._set_deadline(self._send_since + timeout - self._clock())
            else:
                self._set_deadline(self._blocked_due - self._clock())
        elif not self.exchanges:
            self._set_deadline(server.idle_timeout)
        else:
            # The application governs, but for request bodies that stall
            # (checked by _check_bodies, at least every body_timeout).
            timeout = server.body_timeout
            if timeout is None:
                self._deadline = None
            elif self._deadline is None or self._deadline - self._clock() > timeout:
                self._set_deadline(timeout)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._deadline_passed():
            return
        tcp = self.tcp
        timeout = self.server.send_timeout
        if self._closed:
            if tcp.tcp_connected and tcp.write_buffered:
                self._abort_transport()
            return
        if self._write_paused:
            sent_at: float = max(getattr(tcp, "sent_at", 0.0), self._send_since)
            if timeout is not None and sent_at + timeout > self._clock():
                self._set_deadline(sent_at + timeout - self._clock())
                return
            self._fail_all(error.SendTimeoutError(
                "the client took nothing for %s seconds" % timeout))
            self.abort()
            return
        if self._blocked:
            if timeout is None:
                self._deadline = None
                return
            # A peer that opens no window for what waits: the streams that
            # made no progress for send_timeout go.
            now = self._clock()
            due_next = now + timeout
            for exchange in list(self._blocked):
                self._check_output(exchange)  # (what went out since: progress)
                if exchange not in self._blocked:
                    if exchange._done():
                        self._forget(exchange)
                    continue
                due = exchange._blocked_since + timeout
                if due > now:
                    due_next = min(due_next, due)
                    continue
                exchange._gone = True
                exchange._fail(error.SendTimeoutError(
                    "the client opened no window for %s seconds" % timeout))
                try:
                    self.h2.reset_stream(exchange.stream_id, CANCEL)
                except H2UsageError:
                    pass
                self._forget(exchange)
            self._blocked_due = due_next
            self._flush()
            if not self._closed:
                self._restate_deadline()
            return
        if self.exchanges:
            self._check_bodies()
            return
        self.h2.close(NO_ERROR)  # idle: say so before closing
        self.close()

    def _check_bodies(self) -> None:
        """body_timeout, per stream: a request whose body made no progress
        for it (the application not pausing it) ends, as over HTTP/1.1:
        408 and RST_STREAM NO_ERROR if unanswered, else RST_STREAM CANCEL;
        its exchange gets BodyTimeoutError. A client cannot hold streams
        open (each an exchange in memory) by never finishing them. CONNECT
        streams are tunnels, whose silences are their owner's business."""
        timeout = self.server.body_timeout
        if timeout is None:
            self._deadline = None
            return
        now = self._clock()
        due_next = now + timeout
        h2 = self.h2
        for exchange in list(self.exchanges.values()):
            if (exchange._request != _RECEIVING or exchange._input_paused
                    or exchange.method == b"CONNECT"):
                continue
            due = exchange._progress + timeout
            if due > now:
                due_next = min(due_next, due)
                continue
            unanswered = exchange._response == _UNANSWERED
            exchange._gone = True
            exchange._fail(error.BodyTimeoutError(
                "no request body for %s seconds" % timeout))
            sid = exchange.stream_id
            try:
                if unanswered:
                    h2.send_headers(sid, [
                        (b":status", b"408"), (b"content-length", b"0"),
                        (b"date", _date.get()),
                    ], True)
                    h2.reset_stream(sid, NO_ERROR)
                else:
                    h2.reset_stream(sid, CANCEL)
            except H2UsageError:
                pass  # the stream has gone meanwhile
            self._forget(exchange)
        self._flush()
        if self._closed:
            return
        if self.exchanges:
            self._set_deadline(due_next - now)
        else:
            self._restate_deadline()

    # -- closing ---------------------------------------------------------------

    def drain(self) -> None:
        """For graceful shutdown: GOAWAY; close once the streams open finish."""
        if self._closed or self._draining:
            return
        self._draining = True
        self.h2.close(NO_ERROR)
        if not self.exchanges:
            self.close()
        else:
            self._wrote()

    def close(self) -> None:
        """Send what is queued, then close (within send_timeout)."""
        if self._closed:
            return
        self._flush()
        self._closed = True
        self.tcp.close()
        self._restate_deadline()

    close_conn = close

    def abort(self) -> None:
        """Close at once, dropping anything unsent."""
        if self._closed:
            return
        self._closed = True
        self._abort_transport()

    def _abort_transport(self) -> None:
        abort = getattr(self.tcp, "abort", None)
        (abort or self.tcp.close)()


def _translate(headers: List[Field]) -> Tuple[bytes, bytes, RawHeaderListType]:
    """(method, uri, fields) of an HTTP/2 request head, as RFC 9113 8.3.1
    says to translate one to HTTP/1.1 (see the module docstring)."""
    method = uri = authority = b""
    fields: RawHeaderListType = []
    append = fields.append
    has_host = False
    cookies = 0
    for field in headers:
        name = field[0]
        if name[0] == 58:  # a pseudo-header field (b":")
            if name == b":method":
                method = field[1]
            elif name == b":path":
                uri = field[1]
            elif name == b":authority":
                authority = field[1]
            continue
        if name == b"host":
            has_host = True
        elif name == b"cookie":
            cookies += 1
        append(field)
    if not has_host and authority:
        fields.insert(0, (b"host", authority))
    if cookies > 1:
        fields = _join_cookies(fields)
    if method == b"CONNECT":
        uri = authority
    return method, uri, fields


def _expects_continue(fields: RawHeaderListType) -> bool:
    """Whether a request head has Expect: 100-continue."""
    for name, value in fields:
        if name == b"expect" and b"100-continue" in field_tokens([value]):
            return True
    return False


def _join_cookies(fields: RawHeaderListType) -> RawHeaderListType:
    """Cookie fields as one, joined with "; " (RFC 9113 8.2.3), where the
    first one was."""
    values = [value for name, value in fields if name == b"cookie"]
    out: RawHeaderListType = []
    for field in fields:
        if field[0] == b"cookie":
            if values:
                out.append((b"cookie", b"; ".join(values)))
                values = []
        else:
            out.append(field)
    return out


class H2ServerExchange(ServerExchangeBase):
    """One HTTP/2 request stream and its response, with the interface of
    thor.http.server.HttpServerExchange.

    Emits: request_start(method, uri, headers), request_body(chunk),
    request_done(trailers), pause(paused) (output backpressure: the peer's
    flow-control window or the transport), error(err) (the stream or the
    connection failed before the response was done, or a listener of this
    exchange raised: InternalServerError; nothing else follows).

    Attributes: method, uri, req_hdrs (lower-case names, a Host field made
    from ``:authority`` if the request had none), req_version (b"2"),
    stream_id, connection (the H2ServerConnection; ``http_conn`` too),
    finished, req_complete, res_done, response_started.
    """

    connection: H2ServerConnection
    _out_paused = False
    _gone = False           # the stream is closed or reset: nothing more goes
    _no_body = False        # HEAD, 204, 304: body calls are taken, not sent
    _left: Optional[int] = None  # body octets the Content-Length still wants
    _trailers: Optional[RawHeaderListType] = None
    _held: Optional[List[Tuple[bytes, int]]] = None
    _held_end = False
    # The piece that completed the Content-Length, held so that it goes
    # out with END_STREAM in one DATA frame when response_done follows
    # (as it usually does at once), else when the connection flushes.
    _held_out: Optional[bytes] = None
    # When the request last made progress (its head, a DATA frame, the
    # application resuming it): body_timeout counts from it.
    _progress = 0.0
    # Expect: 100-continue, 100 not sent yet (see _send_continue).
    _expect_continue = False
    # While its body waits for the peer's window: since when it has made
    # no progress (send_timeout counts from it), and how much waited then.
    _blocked_since = 0.0
    _send_mark = 0

    req_version = b"2"
    # The request's HTTP/2 fields as received (pseudo-header fields first).
    _head: Optional[List[Field]] = None

    def __init__(
        self, connection: H2ServerConnection, stream_id: int, method: bytes, uri: bytes,
        headers: RawHeaderListType,
    ) -> None:
        self._init_emitter()
        self.connection = connection
        self.stream_id = stream_id
        self.method = method
        self.uri = uri
        self.req_hdrs = headers
        # Read on every request (see thor.http.server.ServerExchangeBase).
        self._request = _RECEIVING
        self._response = _UNANSWERED
        self._input_paused = False
        self._gone = False
        self._no_body = False
        self._left = None
        self._out_paused = False
        self._held = None

    def __repr__(self) -> str:
        return "<H2ServerExchange %d %s %s>" % (
            self.stream_id, self.method.decode("latin-1"), self.uri.decode("latin-1"))

    @property
    def scheme(self) -> bytes:
        """The request's ``:scheme`` (b"" for CONNECT): what a proxy needs,
        with the Host field, to know the target of a request in origin
        form (RFC 9113 8.3.1)."""
        for name, value in self._head or ():
            if name == b":scheme":
                return value
            if name[:1] != b":":
                break
        return b""

    def _done(self) -> bool:
        return self._response >= _ANSWERED and self._request != _RECEIVING

    def _drop_input(self) -> None:
        """The application reads no more of the request: what is held goes
        back to the client's window (else the connection's window would
        shrink for good), and the rest is taken and dropped as it comes."""
        held = self._held
        if held is not None:
            self._held = None
            conn = self.connection
            if not conn._closed:
                acknowledge = conn.h2.acknowledge_data
                for _, flow_length in held:
                    acknowledge(self.stream_id, flow_length)
        if self._held_end:
            self._held_end = False
            self._request = _RECEIVED  # the client has sent it all
        elif self._request == _RECEIVING:
            self._request = _DROPPING

    # -- input -------------------------------------------------------------------

    def _on_body(self, data: bytes, flow_length: int) -> None:
        if self._input_paused:
            if self._held is None:
                self._held = []
            self._held.append((data, flow_length))
            return
        conn = self.connection
        try:
            self.emit("request_body", data)
        except Exception as exc:
            conn._app_failed(exc, self)
        if not conn._closed:
            conn.h2.acknowledge_data(self.stream_id, flow_length)

    def _on_end(self) -> None:
        if self._request != _RECEIVING:
            self._request = _RECEIVED
            if self._response >= _ANSWERED:
                self.connection._forget(self)
            return
        if self._input_paused:
            self._held_end = True
            return
        self._request = _RECEIVED
        try:
            self.emit("request_done", self._trailers or [])
        except Exception as exc:
            self.connection._app_failed(exc, self)
            return
        if self._response >= _ANSWERED:
            conn = self.connection
            if conn.exchanges.get(self.stream_id) is self and (
                    not conn._blocked or self not in conn._blocked):
                conn._forget(self)

    def pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) request_body events. While paused,
        what arrives is held and not acknowledged: the client's
        flow-control window stops it. Resuming sends 100 (Continue) when
        the client asked for it and no response has started; answering
        while paused gives the rest of the request up."""
        paused = bool(paused)
        if paused == self._input_paused:
            return
        self._input_paused = paused
        if paused:
            return
        conn = self.connection
        self._progress = conn._clock()
        if self._expect_continue:
            self._send_continue()
        held = self._held
        self._held = None
        if held:
            for data, flow_length in held:
                if self._input_paused or self._request != _RECEIVING:
                    if self._request != _RECEIVING:
                        conn.h2.acknowledge_data(self.stream_id, flow_length)
                        continue
                    # paused again by a listener: hold the rest
                    if self._held is None:
                        self._held = []
                    self._held.append((data, flow_length))
                    continue
                self._on_body(data, flow_length)
        if self._held_end and not self._input_paused:
            self._held_end = False
            self._on_end()
        conn._wrote()

    def _send_continue(self) -> None:
        """100 (Continue), once, if the request body is still wanted and no
        response has started."""
        self._expect_continue = False
        conn = self.connection
        if (self._response != _UNANSWERED or self._request != _RECEIVING
                or self._gone or conn._closed):
            return
        try:
            conn.h2.send_headers(self.stream_id, _CONTINUE)
        except H2UsageError:
            return  # the stream has gone meanwhile
        conn._wrote()

    # -- response ------------------------------------------------------------------

    def response_nonfinal(
        self, status: StatusInput, phrase: TextInput, headers: Optional[HeaderInput],
    ) -> None:
        """Send an informational (1xx) response, e.g. 103 Early Hints."""
        code = encode_status(status)
        if code[:1] != b"1" or code == b"101":
            raise error.BadStatusError("response_nonfinal takes a 1xx status other than 101")
        if self.response_started:
            raise error.StateError("the final response has already started")
        fields = _checked_head(code, phrase, _listed(headers))[0]
        if self._gone or self.connection._closed:
            return
        self.connection.h2.send_headers(self.stream_id, fields)
        self.connection._wrote()

    def response_start(
        self, status: StatusInput, phrase: TextInput, headers: Optional[HeaderInput],
    ) -> None:
        """Start the response (its connection-specific fields are dropped)."""
        state = self._response
        if state != _UNANSWERED and state != _FAILED:
            raise error.StateError("response_start called twice")
        entry: Optional[H2Head] = None
        if type(headers) is list and type(status) in _EXACT and type(phrase) in _EXACT:
            try:
                entry = _h2_heads.get((status, phrase, tuple(headers)))
            except TypeError:
                pass
        if entry is None:
            entry = _checked_head(status, phrase, _listed(headers))
        fields, code, content_length, has_date = entry
        if code[0] == 49:  # 1xx
            if code == b"101":
                raise error.BadStatusError("101 (Switching Protocols) is not in HTTP/2")
            raise error.BadStatusError("use response_nonfinal for 1xx responses")
        if state == _FAILED:
            self._response = _CUT
            return
        self._response = _ANSWERING
        if self.method == b"HEAD" or code in _NO_CONTENT:
            self._no_body = True
        elif content_length is not None:
            self._left = content_length
        if not has_date:
            date = _date.value if _now() < _date.expires else _date.get()
            dated = _dated
            if dated[0] is fields and dated[1] is date:
                fields = dated[2]
            else:
                dated[0] = fields
                fields = dated[2] = fields + [(b"date", date)]
                dated[1] = date
        conn = self.connection
        if self._gone or conn._closed:
            return
        conn.h2.send_headers(self.stream_id, fields)
        if not conn._in_input:
            conn._wrote()

    def response_body(self, chunk: BodyInput) -> None:
        """Send a chunk of the response body (bytes, or str as UTF-8)."""
        if self._response != _ANSWERING:
            if self._response >= _ANSWERED and (self._gone or self.connection._closed):
                return
            raise error.StateError("response_body outside a response")
        if chunk.__class__ is not bytes:
            chunk = encode_body_chunk(chunk)
        if not chunk or self._no_body:
            return
        left = self._left
        conn = self.connection
        if left is not None:
            left -= len(chunk)
            if left <= 0:
                if left < 0:
                    raise error.BodyLengthError(
                        "response body longer than its Content-Length")
                if not self._gone and not conn._closed:
                    self._held_out = chunk
                    conn._pending.append(self)
                    if not conn._in_input:
                        conn._wrote()
                self._left = 0
                return
            self._left = left
        if self._gone or conn._closed:
            return
        conn.h2.send_data(self.stream_id, chunk)
        conn._check_output(self)
        if not conn._in_input:
            conn._wrote()

    def response_done(
        self, trailers: Optional[HeaderInput] = None, close: bool = False,
    ) -> None:
        """Finish the response; ``trailers`` go out as a trailer section
        (fields RFC 9110 6.5.1 keeps out of trailers are dropped).
        ``close=True`` ends the connection once its streams are done
        (GOAWAY)."""
        state = self._response
        conn = self.connection
        if state != _ANSWERING:
            if state == _UNANSWERED:
                raise error.StateError("response_done before response_start")
            if self._gone or conn._closed:
                return
            raise error.StateError("response_done called twice")
        fields = _trailer_fields(trailers) if trailers else None
        if self._left:
            # A short body cannot be mended; the client must not take it
            # as whole.
            self._stop()
            self._reset(INTERNAL_ERROR)
            raise error.BodyLengthError("response body shorter than its Content-Length")
        self._response = _ANSWERED
        if self._gone or conn._closed:
            return
        h2 = conn.h2
        chunk = self._held_out
        if chunk is not None:
            self._held_out = None
            h2.send_data(self.stream_id, chunk, not fields)
            if fields:
                h2.send_headers(self.stream_id, fields, True)
        elif fields:
            h2.send_headers(self.stream_id, fields, True)
        else:
            h2.end_stream(self.stream_id)
        if close:
            conn.drain()
        if self._input_paused and self._request == _RECEIVING:
            # Answered while the request body is paused: as over HTTP/1.1
            # (which closes the connection), the rest is not read for it.
            self._drop_input()
        conn._check_output(self)
        if not conn._in_input:
            conn._wrote()
        if self._request != _RECEIVING and (not conn._blocked or self not in conn._blocked):
            conn._forget(self)

    def tunnel(self) -> Tuple[TcpConnection, bytes]:
        """Not available over HTTP/2 (a stream is not a connection)."""
        raise error.StateError("tunnel() is not available over HTTP/2")

    def abort(self) -> None:
        """End this stream at once (RST_STREAM CANCEL), whatever was sent;
        the connection's other streams go on."""
        self._stop()
        self._held = None  # the reset gives their window back
        self._held_end = False
        self._reset(CANCEL)

    def _reset(self, code: int) -> None:
        conn = self.connection
        if self._gone or conn._closed:
            return
        self._gone = True
        try:
            conn.h2.reset_stream(self.stream_id, code)
        except H2UsageError:
            pass
        conn._forget(self)
        conn._wrote()

    def _emit_safely(self, event: str, *args: Any) -> None:
        try:
            self.emit(event, *args)
        except Exception as exc:
            self.connection._app_failed(exc, self)
