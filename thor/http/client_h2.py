"""HttpClient's HTTP/2 side: one connection to an origin that carries many
exchanges at once, each on its own stream (RFC 9113), with the events,
errors, timeouts and retry rules of thor.http.client's HTTP/1.1.

Theory of operation
-------------------
- HttpClient (with ``http2`` on) offers ``h2`` and ``http/1.1`` over ALPN
  on its https:// connections; when the origin picks ``h2``, the pool of
  that origin (thor.http.client._Origin) gets an ``H2ClientConnection`` as
  its ``h2``, and HttpClient._assign, the pool's one decision point, hands
  each waiting exchange a stream on it while the peer's
  SETTINGS_MAX_CONCURRENT_STREAMS allows (one until the peer's SETTINGS
  say); the rest wait in the queue, under ``queue_timeout``, as they do
  for HTTP/1.1 connections. The protocol is thor.http.h2's sans-I/O
  H2Connection; this module ties it to the transport, the timers and the
  exchanges.
- An exchange's ``conn`` is then its ``_H2Stream``, which has the surface
  the exchange uses of an HTTP/1.1 connection (write, pause, abort,
  close), so HttpClientExchange is the same object on both protocols. The
  head is translated from what request_start kept (RFC 9113 8.3.1):
  ``:method``, ``:scheme``, ``:authority`` (what Host would have said),
  ``:path``; field names lower-cased, connection-specific fields dropped
  (request_start dropped the others already). The body goes out raw under
  the peer's flow control: _H2BodyWriter stands in for the HTTP/1 framing
  writer, and what was framed before the connection was known is
  unframed once (chunked pieces and their trailer section).
- Output is gathered: what streams write while input is handled goes out
  in one send after it; what they write at other times on the next pass.
  An exchange gets ``pause(True)`` once more than ``_PAUSE_SIZE`` octets of
  its body wait for window, or while the transport is backed up, and
  ``pause(False)`` when they drain.
- Response data is acknowledged (WINDOW_UPDATE) as it is delivered; while
  the application has paused the response, it is held unacknowledged, so
  the peer's window, not our memory, bounds it. Held data is given back
  to the connection window when the exchange goes without taking it; a
  response held whole is delivered on resume even if the stream is reset
  or the connection closes meanwhile (RFC 9113 8.1).
- Retries: a stream the peer refused (RST_STREAM REFUSED_STREAM, or above
  a GOAWAY's last-stream-id) was not processed: it is retried whatever its
  method. A stream reset otherwise, or cut by the connection's close,
  before any response is retried on HTTP/1.1's rule (idempotent, or
  nothing sent). Both within ``retry_limit`` and only when its body was
  kept (``_REPLAY_LIMIT``).
- One timer per connection, at the earliest of: each stream's read
  deadline (``read_timeout``, moved by every frame of its response, not
  running while the application pauses it or has not finished the
  request), each stream's send deadline (``send_timeout`` while its body
  waits for a window that does not open: that stream is reset), the
  transport's (``send_timeout`` while it takes nothing: the connection is
  aborted), and ``idle_timeout`` while no stream is open (GOAWAY, close).
  A deadline that moves later does not touch the timer: it fires, finds
  nothing due, and is set again.
- A GOAWAY from the peer takes the connection out of the pool (later
  exchanges get a new one); streams it processes finish, refused ones are
  retried, and the connection closes after the last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thor.http import error
from thor.http.client import (
    IDEMPOTENT, _REQ_DONE, _REQ_SENT,
    _RES_WAIT, _RES_NONFINAL, _RES_BODY, _RES_DONE, _MAX_NONFINAL,
)
from thor.http.headers import TRAILER_FORBIDDEN, encode_field_name, encode_field_value
from thor.http.h2.connection import (
    H2Config, H2Connection, H2UsageError,
    ResponseReceived, InformationalResponse, TrailersReceived, DataReceived, StreamEnded,
    StreamReset, WindowUpdated, SettingsChanged, ConnectionTerminated,
)
from thor.http.h2.frames import NO_ERROR, CANCEL, REFUSED_STREAM, MAX_CONCURRENT_STREAMS
from thor.http.parser import CHUNKED
from thor.http.writer import BodyWriter, LengthWriter, CHUNKED_WRITER, NO_BODY_WRITER

if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, List, Optional, Tuple

    from thor.loop import LoopBase, ScheduledEvent
    from thor.tcp import TcpConnection
    from thor.types import RawHeaderListType
    from thor.http.client import HttpClient, HttpClientExchange, _Origin

    Field = Tuple[bytes, bytes]

__all__ = ["H2ClientConnection"]

# Request body octets waiting for the peer's window before the exchange
# gets pause(True) (a TCP connection's write_high, as for HTTP/1.1).
_PAUSE_SIZE = 65536
# Streams opened before the peer's SETTINGS say how many it takes. The
# peer's SETTINGS come in its first flight, so the others wait about one
# round trip; opening more would have those beyond its limit refused and
# retried retry_delay later (RFC 9113 5.1.2 allows either).
_FIRST_STREAMS = 1
# Fields request_start keeps that an HTTP/2 request may not carry (RFC
# 9113 8.2.2; Upgrade has no meaning on a stream: attach refuses those).
_NOT_H2 = frozenset((
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
    b"te", b"host",
))

DEFAULT_CONFIG = H2Config()


def _trailer_fields(trailers: Iterable[Any]) -> List[Field]:
    """The application's trailers (checked already by the framing writer)
    as HTTP/2 fields: names lower-cased, those not allowed in a trailer
    section dropped."""
    fields = []
    for name, value in trailers:
        lower = encode_field_name(name).lower()
        if lower not in TRAILER_FORBIDDEN:
            fields.append((lower, encode_field_value(value)))
    return fields


def _unframe_trailers(section: bytes) -> List[Field]:
    """The fields of a chunked body's last chunk and trailer section, as
    thor.http.writer.trailer_section wrote them (checked, ``name: value``)."""
    fields = []
    for line in section.split(b"\r\n")[1:]:
        if line:
            name, _, value = line.partition(b": ")
            fields.append((name.lower(), value))
    return fields


def _unframe_chunk(chunk: bytes) -> bytes:
    """One piece of a chunked body as thor.http.writer.encode_chunk made it."""
    return chunk[chunk.index(b"\r\n") + 2:-2]


class _H2BodyWriter(BodyWriter):
    """Stands in for an exchange's HTTP/1 framing writer (``inner``) while
    it is on a stream: pieces go out raw, the end is END_STREAM (or a
    trailer section, which HTTP/1.1 could send only with a chunked body, so
    here too). ``inner`` still checks a Content-Length, and is given back
    to the exchange if it is retried."""

    __slots__ = ("inner", "trailers", "framing")

    def __init__(self, inner: Optional[BodyWriter]) -> None:
        self.inner = inner
        self.trailers: Optional[List[Field]] = None
        self.framing = inner.framing if inner is not None else CHUNKED

    def chunk(self, data: bytes) -> bytes:
        inner = self.inner
        if inner is None:
            self.inner = CHUNKED_WRITER  # as request_body would choose
        elif inner.__class__ is LengthWriter:
            inner.chunk(data)  # raises BodyLengthError past Content-Length
        return data

    def end(self, trailers: Optional[Iterable[Any]] = None) -> bytes:
        inner = self.inner
        if inner is None:
            inner = self.inner = NO_BODY_WRITER
        inner.end(trailers)  # the checks HTTP/1.1 makes
        if trailers and inner is CHUNKED_WRITER:
            self.trailers = _trailer_fields(trailers)
        return b""


class _H2Stream:
    """One exchange on an H2ClientConnection: what HttpClientExchange uses
    of a connection (``write``, ``pause``, ``abort``, ``close``,
    ``exchange``, ``closed``) and Thor 0.17's ``tcp_conn``,
    ``tcp_connected``, ``res_version``."""

    __slots__ = (
        "conn", "exchange", "stream_id", "writer", "paused", "held", "ended",
        "trailers", "read_at", "blocked_since", "send_mark", "closed",
    )

    def __init__(self, conn: H2ClientConnection, exchange: HttpClientExchange, writer: _H2BodyWriter) -> None:
        self.conn = conn
        self.exchange: Optional[HttpClientExchange] = exchange
        self.stream_id = 0
        self.writer = writer
        self.paused = False
        self.held: Optional[List[Tuple[bytes, int]]] = None  # data while paused
        self.ended = False  # the response ended while paused
        self.trailers: RawHeaderListType = []
        self.read_at: Optional[float] = None  # read deadline
        self.blocked_since: Optional[float] = None  # body waiting for window
        self.send_mark = 0
        self.closed = False

    def __repr__(self) -> str:
        return "<_H2Stream %d of %r>" % (self.stream_id, self.conn)

    @property
    def tcp_conn(self) -> TcpConnection:
        return self.conn.tcp

    @property
    def tcp_connected(self) -> bool:
        return not self.closed and not self.conn.closed

    @property
    def res_version(self) -> bytes:
        return b"2"

    def write(self, data: bytes, last: bool = False) -> None:
        """Body ``data``; ``last``: the request ends (with the trailers the
        writer kept), and read_timeout runs from here."""
        if self.closed:
            return
        conn = self.conn
        h2 = conn.h2
        sid = self.stream_id
        if data:
            h2.send_data(sid, data)
        if last:
            trailers = self.writer.trailers
            if trailers:
                h2.send_headers(sid, trailers)
            else:
                h2.end_stream(sid)
            conn._read_deadline(self)
        conn._check_output(self)
        conn._wrote()

    def pause(self, paused: bool) -> None:
        """The application pauses (or resumes) the response: data is held,
        unacknowledged, and delivered on resume."""
        if paused == self.paused:
            return
        self.paused = paused
        conn = self.conn
        if paused:
            self.read_at = None  # the application's time, not the server's
            return
        held = self.held
        while held and not self.paused and self.exchange is not None:
            data, flow_length = held.pop(0)
            conn._deliver(self, data, flow_length)
        if not self.paused and self.exchange is not None:
            if self.ended:
                conn._complete(self)
            elif self.exchange._req_state == _REQ_SENT:
                conn._read_deadline(self)
        conn._wrote()

    def abort(self) -> None:
        """The exchange has ended: the stream is reset (if it is still open)
        and forgotten."""
        self.exchange = None
        self.conn._forget(self, CANCEL)

    def close(self) -> None:
        """Thor 0.17's ``exchange.conn.close()``: drop the request; the
        exchange fails with ConnectionClosedError, from the loop. Other
        streams on the connection go on."""
        exchange = self.exchange
        self.exchange = None
        if exchange is not None:
            exchange._orphaned()
        self.conn._forget(self, CANCEL)

    def tunnel(self) -> Tuple[TcpConnection, bytes]:
        raise error.StateError("an HTTP/2 stream cannot be taken as a tunnel")


class H2ClientConnection:
    """One HTTP/2 connection to an origin: its H2Connection (``h2``), its
    streams by id, its timer. Made by HttpClient when ALPN selected h2."""

    __slots__ = (
        "client", "loop", "origin", "tcp", "h2", "streams", "closed", "going_away",
        "_in_input", "_flush_scheduled", "_peer_settings", "_blocked", "_write_paused",
        "_paused_since", "_idle_at", "_timer", "_timer_at", "_clock",
    )

    def __init__(self, client: HttpClient, origin: _Origin, tcp_conn: TcpConnection) -> None:
        self.client = client
        self.loop: LoopBase = client.loop
        self.origin = origin
        self.tcp = tcp_conn
        config = client.http2_config or DEFAULT_CONFIG
        self._clock = self.loop._clock
        self.h2 = H2Connection(True, config, self._clock)
        self.streams: Dict[int, _H2Stream] = {}
        self.closed = False
        self.going_away = False  # GOAWAY received, or the client let it go
        self._in_input = False
        self._flush_scheduled = False
        self._peer_settings = False
        self._blocked: Dict[_H2Stream, None] = {}  # body waiting for window
        self._write_paused = False
        self._paused_since = 0.0
        self._idle_at: Optional[float] = None
        self._timer: Optional[ScheduledEvent] = None
        self._timer_at = 0.0
        self.h2.initiate()
        tcp_conn.on("data", self._on_data)
        tcp_conn.on("close", self._on_close)
        tcp_conn.on("pause", self._on_tcp_pause)
        tcp_conn.pause(False)
        self._flush()

    def __repr__(self) -> str:
        return "<H2ClientConnection %r %d streams%s>" % (
            self.origin.key, len(self.streams), " closed" if self.closed else "")

    # -- streams ---------------------------------------------------------------

    @property
    def has_room(self) -> bool:
        """Whether a stream may be opened now (HttpClient._assign asks)."""
        h2 = self.h2
        if self.closed or self.going_away or not h2.can_open_stream:
            return False
        return self._peer_settings or len(self.streams) < _FIRST_STREAMS

    def attach(self, exchange: HttpClientExchange) -> None:
        """Open a stream for ``exchange`` (HttpClient._assign checked
        has_room) and send what the application has given of the request.
        An Upgrade request fails: HttpClient sends those over HTTP/1.1, and
        this one came on a context of the application's offering h2."""
        if exchange._upgrade:
            exchange._fail(error.BadHeaderError(
                "not sendable over HTTP/2, which the origin chose: Upgrade has no"
                " meaning there (RFC 9113 8.6); give HttpClient a tls_context"
                " offering http/1.1 only for Upgrade requests"))
            return
        self._idle_at = None
        inner = exchange._writer
        writer = _H2BodyWriter(inner)
        stream = _H2Stream(self, exchange, writer)
        body = exchange._body
        if inner is CHUNKED_WRITER:
            if body:
                body = [_unframe_chunk(piece) for piece in body]
            end = exchange._end
            if end:
                writer.trailers = _unframe_trailers(end)
        exchange._body = None
        exchange._body_size = 0
        exchange._end = None
        exchange._writer = writer
        exchange._head_written = True
        exchange._conn = stream  # type: ignore[assignment]  # the connection surface it uses
        if exchange._input_paused:
            stream.paused = True
        done = exchange._req_state == _REQ_DONE
        end_now = done and not body and not writer.trailers
        try:
            sid = self.h2.start_request(self._head(exchange), end_now)
        except H2UsageError as exc:
            stream.exchange = None
            stream.closed = True
            exchange._fail(error.BadHeaderError("not sendable over HTTP/2: %s" % exc))
            self._stream_gone()
            return
        stream.stream_id = sid
        self.streams[sid] = stream
        if self.h2.streams_exhausted:
            self._leave_pool()  # later exchanges need a new connection
        if end_now:
            exchange._req_state = _REQ_SENT
            self._read_deadline(stream)
        elif body or done:
            exchange._body = body
            exchange._send(stream)  # type: ignore[arg-type]  # the connection surface it uses
        self._wrote()
        if exchange._paused_out and not self._write_paused and stream.blocked_since is None:
            exchange._output_paused(False)

    def _head(self, exchange: HttpClientExchange) -> List[Field]:
        """The request head, as HTTP/2 fields (RFC 9113 8.3.1)."""
        target, authority, content_length = exchange._head_fields  # type: ignore[misc]  # set by request_start
        method: bytes = exchange.method  # type: ignore[assignment]  # set by request_start
        if method == b"CONNECT":
            head = [(b":method", method), (b":authority", authority)]
        else:
            head = [
                (b":method", method), (b":scheme", b"https"),  # h2 only over TLS
                (b":authority", authority), (b":path", target),
            ]
        for raw, value in exchange.req_hdrs or ():
            lower = raw.lower()
            if lower not in _NOT_H2:
                head.append((lower, value))
        if content_length is not None:
            head.append((b"content-length", b"%d" % content_length))
        return head

    def _forget(self, stream: _H2Stream, code: Optional[int] = None) -> None:
        """``stream`` leaves the connection: reset it with ``code`` if it is
        still open, and drop it. Data held for a paused exchange that has
        gone is given back to the connection window (a stream that ended
        in the core gets no reset, which would have given it back)."""
        sid = stream.stream_id
        if not stream.closed:
            stream.closed = True
            if self.streams.pop(sid, None) is not None and code is not None and not self.closed:
                if sid in self.h2.streams and not self.h2.closed:
                    self.h2.reset_stream(sid, code)
                    self._wrote()
            self._blocked.pop(stream, None)
            self._stream_gone()
        held = stream.held
        if held and stream.exchange is None:
            stream.held = None
            for _, flow_length in held:
                # Ignored by the core for a reset stream: credited then.
                self.h2.acknowledge_data(sid, flow_length)
            self._wrote()

    def _keep_complete(self, stream: _H2Stream) -> bool:
        """Whether ``stream`` has its whole response, held while the
        application pauses it: then it leaves the connection but keeps its
        exchange, which gets the held data and response_done on resume
        whatever happens to the stream or the connection since (RFC 9113
        8.1: a complete response is not discarded for a RST_STREAM)."""
        exchange = stream.exchange
        if not stream.ended or exchange is None or exchange._res_state >= _RES_DONE:
            return False
        stream.blocked_since = None
        self._forget(stream, CANCEL)  # the rest of the request is not wanted
        return True

    def _stream_gone(self) -> None:
        """A stream has ended: its place may go to a waiting exchange; a
        connection left with none goes idle, or closes if it is going away."""
        if self.closed:
            return
        origin = self.origin
        if origin.queue and origin.h2 is self:
            self.client._assign(origin)
        if not self.streams:
            if self.going_away or self.h2.goaway_received:
                if not self._in_input:
                    self.close()
            else:
                idle = self.client.idle_timeout
                if idle is not None:
                    self._idle_at = self._clock() + idle
                    self._arm(self._idle_at)

    # -- input -----------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        self._in_input = True
        try:
            events = self.h2.receive_data(data)
            streams = self.streams
            for event in events:
                kind = event.__class__
                if kind is DataReceived:
                    stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                    if stream is None:
                        self.h2.acknowledge_data(event.stream_id, event.flow_length)  # type: ignore[attr-defined]
                    elif stream.paused:
                        if stream.held is None:
                            stream.held = []
                        stream.held.append((event.data, event.flow_length))  # type: ignore[attr-defined]
                    else:
                        self._deliver(stream, event.data, event.flow_length)  # type: ignore[attr-defined]
                elif kind is StreamEnded:
                    stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                    if stream is not None:
                        if stream.paused:
                            stream.ended = True
                        else:
                            self._complete(stream)
                elif kind is ResponseReceived:
                    stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                    if stream is not None:
                        self._on_head(stream, event.headers)  # type: ignore[attr-defined]
                elif kind is InformationalResponse:
                    stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                    if stream is not None:
                        self._on_nonfinal(stream, event.headers)  # type: ignore[attr-defined]
                elif kind is TrailersReceived:
                    stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                    if stream is not None:
                        stream.trailers = event.headers  # type: ignore[attr-defined]
                elif kind is WindowUpdated:
                    if self._blocked:
                        self._window_opened()
                elif kind is StreamReset:
                    self._on_reset(event)  # type: ignore[arg-type]
                elif kind is SettingsChanged:
                    first = not self._peer_settings
                    self._peer_settings = True
                    if (first or MAX_CONCURRENT_STREAMS in event.changed) and (  # type: ignore[attr-defined]
                            self.origin.queue and self.origin.h2 is self):
                        self.client._assign(self.origin)
                elif kind is ConnectionTerminated:
                    self._on_terminated(event)  # type: ignore[arg-type]
                if self.closed:
                    break
        finally:
            self._in_input = False
        self._flush()
        if not self.streams and not self.closed and (self.going_away or self.h2.goaway_received):
            self.close()

    def _on_nonfinal(self, stream: _H2Stream, headers: List[Field]) -> None:
        exchange = stream.exchange
        if exchange is None:
            return
        exchange._res_state = _RES_NONFINAL
        count = exchange._nonfinal = exchange._nonfinal + 1
        if count > _MAX_NONFINAL:
            self._forget(stream, CANCEL)
            stream.exchange = None
            exchange._fail(error.TooManyMsgsError(
                "more than %d interim (1xx) responses" % _MAX_NONFINAL))
            return
        exchange.input_header_length = _head_length(headers)
        self._read_deadline(stream)
        exchange._emit("response_nonfinal", headers[0][1], b"", headers[1:])

    def _on_head(self, stream: _H2Stream, headers: List[Field]) -> None:
        exchange = stream.exchange
        if exchange is None:
            return
        # The only pseudo-header field of a response, first (checked by H2Connection).
        status = headers[0][1]
        exchange._res_state = _RES_BODY
        exchange.res_status = status
        exchange.res_version = b"2"
        exchange.input_header_length = _head_length(headers)
        self._read_deadline(stream)
        exchange._emit("response_start", status, b"", headers[1:])

    def _deliver(self, stream: _H2Stream, data: bytes, flow_length: int) -> None:
        exchange = stream.exchange
        if exchange is not None:
            exchange.input_transfer_length += len(data)
            if stream.read_at is not None:
                self._read_deadline(stream)
            if data:
                exchange._emit("response_body", data)
        # Delivered: the peer may send as much again.
        self.h2.acknowledge_data(stream.stream_id, flow_length)

    def _complete(self, stream: _H2Stream) -> None:
        """The response has ended (and been delivered): response_done."""
        exchange = stream.exchange
        stream.exchange = None
        if exchange is None:
            return
        exchange._res_state = _RES_DONE
        exchange._conn = None
        # Answered before the request was all sent: the rest is not wanted
        # (RFC 9113 8.1); the stream is reset if our side is still open.
        self._forget(stream, CANCEL)
        exchange._emit("response_done", stream.trailers)
        exchange._events.clear()

    def _on_reset(self, event: StreamReset) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None or (event.remote and self._keep_complete(stream)):
            return
        exchange = stream.exchange
        stream.exchange = None
        self._forget(stream)
        if exchange is None or exchange._res_state >= _RES_DONE:
            return
        if not event.remote:
            # H2Connection found the response malformed (RFC 9113 8.1.1).
            exchange._fail(error.PeerError(
                "malformed HTTP/2 response; stream reset (error code %d)" % event.error_code))
            return
        self._lost_exchange(
            exchange, stream, event.error_code == REFUSED_STREAM,
            "the stream was reset by the server (error code %d)" % event.error_code)

    def _lost_exchange(
        self, exchange: HttpClientExchange, stream: _H2Stream, refused: bool, why: str,
    ) -> None:
        """``exchange``'s stream is gone: retried (see the module's
        docstring), or failed."""
        client = self.client
        if exchange._res_state == _RES_WAIT and exchange._replay_ok and (
                exchange._retries < client.retry_limit) and (
                refused or exchange.method in IDEMPOTENT):
            _restore(exchange, stream)
            exchange._retry()
            return
        if refused:
            why += " (not processed; %s)" % (
                "the body was too large to keep" if not exchange._replay_ok else
                "%d attempts" % (exchange._retries + 1))
        exchange._fail(error.ConnectionClosedError(why))

    def _on_terminated(self, event: ConnectionTerminated) -> None:
        self._leave_pool()
        if event.remote and event.error_code == NO_ERROR:
            # The peer's GOAWAY: streams above last_stream_id come as
            # refused (StreamReset) next; the others finish.
            return
        if event.remote:
            # The peer's connection error: streams it says it did not
            # process come refused next; the others are cut off.
            why = "the server ended the connection with HTTP/2 error code %d" % event.error_code
            for sid, stream in list(self.streams.items()):
                if sid <= event.last_stream_id:
                    self._fail_stream(stream, error.ConnectionClosedError(why))
            return
        # Ours, for the peer's protocol error: nothing more is read.
        for stream in list(self.streams.values()):
            self._fail_stream(stream, error.PeerError(
                "the server broke the HTTP/2 protocol (error code %d)" % event.error_code))
        self.close()

    def _fail_stream(self, stream: _H2Stream, err: error.HttpError) -> None:
        """``stream``'s exchange fails with ``err``; the stream is reset if
        it is still open. A complete response held for a paused exchange
        is kept (_keep_complete) instead."""
        if self._keep_complete(stream):
            return
        exchange = stream.exchange
        stream.exchange = None
        self._forget(stream, CANCEL)
        if exchange is not None and exchange._res_state < _RES_DONE:
            exchange._fail(err)

    # -- output ----------------------------------------------------------------

    def _wrote(self) -> None:
        """Something was queued outside of input: send it next pass."""
        if not self._in_input and not self._flush_scheduled and not self.closed:
            self._flush_scheduled = True
            self.loop.schedule(0, self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed:
            self.tcp.write(data)

    def _check_output(self, stream: _H2Stream) -> None:
        """Pause or resume ``stream``'s exchange for the window its body
        waits for and the transport; track it for send_timeout."""
        waiting = self.h2.outbound_buffered(stream.stream_id)
        if waiting:
            if stream.blocked_since is None or waiting < stream.send_mark:
                stream.blocked_since = self._clock()  # blocked now, or progress
                timeout = self.client.send_timeout
                if timeout is not None:
                    self._arm(stream.blocked_since + timeout)
            stream.send_mark = waiting
            self._blocked[stream] = None
        elif stream.blocked_since is not None:
            stream.blocked_since = None
            self._blocked.pop(stream, None)
        exchange = stream.exchange
        if exchange is None or exchange._res_state >= _RES_DONE:
            return
        if exchange._paused_out:
            want = self._write_paused or waiting > _PAUSE_SIZE // 2
        else:
            want = self._write_paused or waiting >= _PAUSE_SIZE
        if want != exchange._paused_out:
            exchange._output_paused(want)

    def _window_opened(self) -> None:
        for stream in list(self._blocked):
            self._check_output(stream)

    def _on_tcp_pause(self, paused: bool) -> None:
        self._write_paused = paused
        if self.closed:
            return
        if paused:
            self._paused_since = self._clock()
            timeout = self.client.send_timeout
            if timeout is not None:
                self._arm(self._paused_since + timeout)
        for stream in list(self.streams.values()):
            exchange = stream.exchange
            if exchange is not None and exchange._req_state < _REQ_SENT:
                self._check_output(stream)

    # -- the timer -------------------------------------------------------------

    def _read_deadline(self, stream: _H2Stream) -> None:
        """The server's turn on ``stream``: read_timeout runs from now."""
        timeout = self.client.read_timeout
        if timeout is None or stream.paused:
            stream.read_at = None
            return
        stream.read_at = at = self._clock() + timeout
        self._arm(at)

    def _arm(self, at: float) -> None:
        """The timer fires at ``at`` at the latest."""
        timer = self._timer
        if timer is not None:
            if self._timer_at <= at:
                return
            timer.delete()
        self._timer_at = at
        self._timer = self.loop.schedule(max(at - self._clock(), 0), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = self._clock()
        client = self.client
        send_timeout = client.send_timeout
        due: List[float] = []
        if self._write_paused and send_timeout is not None:
            since = max(getattr(self.tcp, "sent_at", 0.0), self._paused_since)
            if since + send_timeout <= now:
                self._fail_all(error.SendTimeoutError(
                    "the server read nothing for %s seconds" % send_timeout))
                self.abort()
                return
            due.append(since + send_timeout)
        for stream in list(self.streams.values()):
            exchange = stream.exchange
            if exchange is None:
                continue
            read_at = stream.read_at
            if read_at is not None and not stream.paused:
                if read_at <= now and exchange._req_state != _REQ_SENT:
                    # Waiting on the application for the rest of the
                    # request: not the server's stall (as for HTTP/1.1).
                    read_at = stream.read_at = now + client.read_timeout  # type: ignore[operator]  # set: read_at is
                if read_at <= now:
                    self._fail_stream(stream, error.ReadTimeoutError(
                        "nothing received for %s seconds" % client.read_timeout
                        if exchange.res_status is not None else
                        "no response head within %s seconds" % client.read_timeout))
                    continue
                due.append(read_at)
            since = stream.blocked_since
            if since is not None and send_timeout is not None:
                if since + send_timeout <= now:
                    self._fail_stream(stream, error.SendTimeoutError(
                        "the server opened no window for %s seconds" % send_timeout))
                    continue
                due.append(since + send_timeout)
        self._flush()
        if self.closed:
            return
        if not self.streams:
            idle_at = self._idle_at
            if idle_at is not None:
                if idle_at <= now:
                    self.close()
                    return
                due.append(idle_at)
        if due:
            self._arm(min(due))

    # -- closing ---------------------------------------------------------------

    def _leave_pool(self) -> None:
        """New exchanges go elsewhere (a new connection) from now on."""
        self.going_away = True
        origin = self.origin
        if origin.h2 is self:
            origin.h2 = None
            if origin.queue:
                self.client._assign(origin)

    def release(self) -> None:
        """HttpClient.close(): close now if idle, else once the streams open
        finish; no new ones."""
        self._leave_pool()
        if not self.streams:
            self.close()

    def _fail_all(self, err: error.HttpError) -> None:
        for stream in list(self.streams.values()):
            self._fail_stream(stream, err)

    def _closed(self) -> bool:
        """Forget the connection (once)."""
        if self.closed:
            return False
        self.closed = True
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        self.tcp.removeListener("close", self._on_close)
        origin = self.origin
        if origin.h2 is self:
            origin.h2 = None
        self.client._lost(origin)
        return True

    def close(self) -> None:
        """GOAWAY, send what is queued, close. Streams still open fail."""
        if self.closed:
            return
        self.h2.close(NO_ERROR)
        self._flush()
        streams = list(self.streams.values())
        if self._closed():
            self.tcp.close()
        for stream in streams:
            self._fail_stream(stream, error.ConnectionClosedError("the connection was closed"))

    def abort(self) -> None:
        """Close at once, dropping what is queued."""
        streams = list(self.streams.values())
        if self._closed():
            abort = getattr(self.tcp, "abort", None)
            (abort or self.tcp.close)()
        for stream in streams:
            self._fail_stream(stream, error.ConnectionClosedError("the connection was closed"))

    def _on_close(self) -> None:
        """The server closed the connection: streams with no response yet
        are retried where HTTP/1.1's rule allows; the others fail."""
        streams = list(self.streams.values())
        self.streams.clear()
        self._closed()
        for stream in streams:
            exchange = stream.exchange
            stream.closed = True
            if exchange is None or exchange._res_state >= _RES_DONE or stream.ended:
                continue  # (ended: a complete response held, kept)
            stream.exchange = None
            unanswered = exchange._res_state == _RES_WAIT
            if unanswered and exchange._replayable():
                _restore(exchange, stream)
                exchange._retry()
                continue
            exchange._fail(error.ConnectionClosedError(
                "the server closed the connection before responding"
                if unanswered else "the server closed the connection"))


def _restore(exchange: HttpClientExchange, stream: _H2Stream) -> None:
    """Before a retry, which may go to any connection: the exchange's
    HTTP/1 framing back, and the end of a chunked body as request_done
    would have framed it."""
    writer = stream.writer
    inner = exchange._writer = writer.inner
    if inner is CHUNKED_WRITER and exchange._req_state >= _REQ_DONE:
        exchange._end = CHUNKED_WRITER.end(writer.trailers)


def _head_length(headers: List[Field]) -> int:
    """A response head's size as an HTTP/1.1 head of the same fields would
    have it (HTTP/2 compresses it: the wire size says little)."""
    return sum(len(name) + len(value) + 4 for name, value in headers)

