"""A sans-I/O HTTP/2 connection (RFC 9113): bytes in, events out.

``H2Connection`` is one endpoint of one connection, client or server side
(``client_side``), with one API for both. Its owner (a transport, or a
test) does three things:

* ``receive_data(data)``: hand over what the peer sent; returns the
  events it caused, in order (a list of the ``Event`` classes below);
* the application's calls (``start_request``, ``send_headers``,
  ``send_data``, ``end_stream``, ``reset_stream``, ``acknowledge_data``,
  ``ping``, ``close``, ``update_settings``) queue frames, and
  ``send_data`` queues body data under flow control;
* ``data_to_send()``: the bytes to write to the peer now.

``initiate()`` queues the connection preface (a client's 24 octets and
both sides' SETTINGS); call it once, first.

Events (all ``__slots__`` classes; ``stream_id`` where a stream is meant):

  RequestReceived(stream_id, headers, never_indexed)
                                             server: a request's head
  ResponseReceived(stream_id, headers, never_indexed)
                                             client: a final response head
  InformationalResponse(stream_id, headers, never_indexed)
                                             client: a 1xx head (not 101)
  TrailersReceived(stream_id, headers, never_indexed)
                                             a trailer section
  DataReceived(stream_id, data, flow_length) body data; acknowledge
                                             flow_length when consumed
  StreamEnded(stream_id)                     the peer ended its side
  StreamReset(stream_id, error_code, remote) the stream is gone: reset by
                                             the peer (remote) or by us
                                             (a malformed message, a limit),
                                             or above a GOAWAY's
                                             last_stream_id (REFUSED_STREAM,
                                             remote: safe to retry)
  WindowUpdated(stream_id)                   more may be sent (0: the
                                             connection); data queued by
                                             send_data went out as it could
  SettingsChanged(changed)                   the peer's settings: {id: value}
  SettingsAcknowledged()                     the peer applied ours
  PingAck(data)                              the answer to our ping()
  ConnectionTerminated(error_code, last_stream_id, debug_data, remote)
                                             GOAWAY received (remote) or
                                             sent by us because of an error;
                                             after an error nothing more is
                                             read

Header lists are lists of (name, value) bytes, pseudo-header fields first,
as on the wire; ``never_indexed`` on the head and trailer events names the
fields the peer sent as never-indexed (credentials: an intermediary passes
them on to ``send_headers(..., never_index=...)``). What is received is checked against RFC 9113 8.2-8.3: a
malformed message resets its stream (PROTOCOL_ERROR) and, if its head was
not yet delivered, is never seen by the application. What the application
sends is checked too (``validate_outbound``): ``H2UsageError`` (a
ValueError) at the call, before anything is queued.

Errors: a peer's protocol error ends the connection with GOAWAY and the
RFC's code (ConnectionTerminated, remote False); a stream error resets
that stream only. The application's misuse raises ``H2UsageError``; a
call on a stream already reset (a race, not a misuse) returns False.

Limits (``H2Config``; one config may serve many connections) and the
attacks they stop are listed in doc/http2.md; each has a test in
tests/test_h2_connection.py, and against HttpServer over loopback, with
its CPU and memory measured, in tests/test_h2_hostile.py. Rate limits are
token buckets (``burst`` frames at once, refilled at ``rate`` per second
of ``clock``, time.monotonic unless given): a peer that exceeds one gets
GOAWAY ENHANCE_YOUR_CALM.
"""

from __future__ import annotations

from collections import deque
import time
from typing import (
    Callable, Collection, Deque, Dict, FrozenSet, List, Optional, Sequence, Set, Tuple, Union,
)

from thor.http.h2 import frames as fr
from thor.http.h2.frames import (
    Frame, FrameReader, DataFrame, HeadersFrame, RstStreamFrame, SettingsFrame,
    PushPromiseFrame, PingFrame, GoAwayFrame, WindowUpdateFrame, ContinuationFrame,
    ErrorFrame,
    NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED,
    REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM,
    HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE,
    MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE, ENABLE_CONNECT_PROTOCOL, MAX_WINDOW, MAX_STREAM_ID,
)
from thor.http.h2.hpack import Decoder, Encoder, HpackError, HeaderListTooLarge

__all__ = [
    "H2Connection", "H2Config", "H2UsageError", "PREFACE",
    "Event", "RequestReceived", "ResponseReceived", "InformationalResponse",
    "TrailersReceived", "DataReceived", "StreamEnded", "StreamReset", "WindowUpdated",
    "SettingsChanged", "SettingsAcknowledged", "PingAck", "ConnectionTerminated",
]

Field = Tuple[bytes, bytes]
HeaderList = List[Field]

# A frame header: (length << 8 | type, flags, stream id) -> 9 octets.
_FRAME_HEAD = fr._HEAD.pack

#: What a client sends first (RFC 9113 3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class H2UsageError(ValueError):
    """The application misused the connection (raised at the call)."""


# -- events ---------------------------------------------------------------------------

_NONE: FrozenSet[bytes] = frozenset()

class Event:
    __slots__ = ()

    def _fields(self) -> Tuple[str, ...]:
        # The slots of the class and its bases (a subclass may add none).
        names: List[str] = []
        for klass in reversed(type(self).__mro__):
            names.extend(klass.__dict__.get("__slots__", ()))
        return tuple(names)

    def __repr__(self) -> str:
        attrs = ["%s=%r" % (name, getattr(self, name)) for name in self._fields()]
        return "<%s %s>" % (type(self).__name__, " ".join(attrs))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._fields())

    __hash__ = None  # type: ignore[assignment]


class _FieldsEvent(Event):
    """An event carrying a stream's header (or trailer) fields, and the
    names of those that came never-indexed (RFC 7541 7.1.3)."""

    __slots__ = ("stream_id", "headers", "never_indexed")

    def __init__(
        self, stream_id: int, headers: HeaderList, never_indexed: FrozenSet[bytes] = _NONE,
    ) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.never_indexed = never_indexed


class RequestReceived(_FieldsEvent):
    __slots__ = ()


class ResponseReceived(_FieldsEvent):
    __slots__ = ()


class InformationalResponse(_FieldsEvent):
    __slots__ = ()


class TrailersReceived(_FieldsEvent):
    __slots__ = ()


class DataReceived(Event):
    __slots__ = ("stream_id", "data", "flow_length")

    def __init__(self, stream_id: int, data: bytes, flow_length: int) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_length = flow_length


class StreamEnded(Event):
    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamReset(Event):
    __slots__ = ("stream_id", "error_code", "remote")

    def __init__(self, stream_id: int, error_code: int, remote: bool) -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote = remote


class WindowUpdated(Event):
    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class SettingsChanged(Event):
    __slots__ = ("changed",)

    def __init__(self, changed: Dict[int, int]) -> None:
        self.changed = changed


class SettingsAcknowledged(Event):
    __slots__ = ()


class PingAck(Event):
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class ConnectionTerminated(Event):
    __slots__ = ("error_code", "last_stream_id", "debug_data", "remote")

    def __init__(self, error_code: int, last_stream_id: int, debug_data: bytes, remote: bool) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        self.debug_data = debug_data
        self.remote = remote


# -- configuration ----------------------------------------------------------------------

class H2Config:
    """Settings we announce and the limits we enforce (doc/http2.md)."""

    __slots__ = (
        "header_table_size", "max_concurrent_streams", "initial_window_size",
        "connection_window_size", "max_frame_size", "max_header_list_size",
        "max_header_block_size", "max_continuation_frames", "window_update_ratio",
        "reset_burst", "reset_rate", "ping_burst", "ping_rate",
        "settings_burst", "settings_rate", "empty_frame_burst", "empty_frame_rate",
        "max_closed_streams", "validate_outbound", "huffman", "max_output",
    )

    def __init__(
        self,
        header_table_size: int = 4096,
        max_concurrent_streams: int = 100,
        initial_window_size: int = 65535,
        connection_window_size: int = 1048576,
        max_frame_size: int = 16384,
        max_header_list_size: int = 65536,
        max_header_block_size: int = 65536,
        max_continuation_frames: int = 32,
        window_update_ratio: float = 0.5,
        reset_burst: int = 200,
        reset_rate: float = 100.0,
        ping_burst: int = 50,
        ping_rate: float = 10.0,
        settings_burst: int = 50,
        settings_rate: float = 10.0,
        empty_frame_burst: int = 100,
        empty_frame_rate: float = 20.0,
        max_closed_streams: int = 1000,
        validate_outbound: bool = True,
        huffman: bool = True,
        max_output: int = 0,
    ) -> None:
        self.header_table_size = header_table_size
        self.max_concurrent_streams = max_concurrent_streams
        self.initial_window_size = initial_window_size
        self.connection_window_size = connection_window_size
        self.max_frame_size = max_frame_size
        self.max_header_list_size = max_header_list_size
        self.max_header_block_size = max_header_block_size
        self.max_continuation_frames = max_continuation_frames
        self.window_update_ratio = window_update_ratio
        self.reset_burst = reset_burst
        self.reset_rate = reset_rate
        self.ping_burst = ping_burst
        self.ping_rate = ping_rate
        self.settings_burst = settings_burst
        self.settings_rate = settings_rate
        self.empty_frame_burst = empty_frame_burst
        self.empty_frame_rate = empty_frame_rate
        self.max_closed_streams = max_closed_streams
        self.validate_outbound = validate_outbound
        self.huffman = huffman
        self.max_output = max_output
        if not fr.MIN_MAX_FRAME_SIZE <= max_frame_size <= fr.MAX_MAX_FRAME_SIZE:
            raise ValueError("max_frame_size must be 2^14 to 2^24-1")
        if not 0 <= initial_window_size <= MAX_WINDOW:
            raise ValueError("initial_window_size must be 0 to 2^31-1")
        if not 65535 <= connection_window_size <= MAX_WINDOW:
            raise ValueError("connection_window_size must be 65535 to 2^31-1")
        if not 0 < window_update_ratio <= 1:
            raise ValueError("window_update_ratio must be over 0 and at most 1")
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, bool) and value < 0:
                raise ValueError("%s must not be negative" % name)


class _Bucket:
    """A token bucket: ``take()`` is False once more than ``burst`` were
    taken faster than ``rate`` per second refills them."""

    __slots__ = ("burst", "rate", "tokens", "stamp", "clock")

    def __init__(self, burst: int, rate: float, clock: Callable[[], float]) -> None:
        self.burst = burst
        self.rate = rate
        self.tokens = float(burst)
        self.clock = clock
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1
        return True


# -- field rules (RFC 9113 8.2, 8.3) ---------------------------------------------------------

# characters a field name may hold: lowercase tchar
_NAME_CHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
# every octet but NUL, CR, LF (8.2.1)
_VALUE_CHARS = bytes(b for b in range(256) if b not in (0, 10, 13))
_WS = (32, 9)
_CONNECTION_SPECIFIC = frozenset((
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
))
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))
_PLAIN_PSEUDO = _REQUEST_PSEUDO - {b":protocol"}
_NO_PSEUDO: FrozenSet[bytes] = frozenset()
# Pseudo-header values (RFC 9113 8.3.1), checked so that none can turn
# into another request line once translated to HTTP/1.1: a token
# (RFC 9110 5.6.2); a path of visible ASCII (a URI's characters, RFC 3986
# 2: what HTTP/1.1's request-target takes too); a scheme
# (RFC 3986 3.1); an authority's characters (RFC 3986 3.2, no userinfo).
_TOKEN_CHARS = _NAME_CHARS + b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PATH_CHARS = bytes(range(0x21, 0x7f))
_SCHEME_CHARS = b"+-.0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_AUTHORITY_CHARS = _SCHEME_CHARS + b"_~%!$&'()*,;=:[]"
_SCHEME_LEAD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# the usual values, known good: one look-up
_METHODS = frozenset((
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE"))
_SCHEMES = frozenset((b"https", b"http"))
# authorities found valid (the few hosts a server answers for), bounded
_AUTHORITIES: Set[bytes] = set()


class _Malformed(Exception):
    pass


# Regular fields already found valid, so that a field seen again (from the
# HPACK table, mostly) costs one set look-up. Short fields only, and
# cleared when full: bounded memory. Content-Length and Host are never
# kept: they mean something per message.
_VALID: Set[Field] = set()
# credentials stay out: no timing tells one connection another's
_SENSITIVE = frozenset((b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"))
_VALID_MAX = 4096
_VALID_FIELD_LEN = 256


def _check_fields(
    headers: Sequence[Field], pseudo_allowed: FrozenSet[bytes],
    never_indexed: Collection[bytes] = _NONE,
) -> Tuple[Dict[bytes, bytes], Optional[int], Optional[bytes]]:
    """(pseudo-header fields, Content-Length, Host) of a field section,
    checked; raises _Malformed. ``never_indexed``: names sent (or to be
    sent) as never-indexed, kept out of _VALID as credentials are."""
    pseudo: Dict[bytes, bytes] = {}
    regular = False
    length: Optional[int] = None
    host: Optional[bytes] = None
    valid = _VALID
    for field in headers:
        if field in valid:
            regular = True
            continue
        name, value = field
        if value and (value.translate(None, _VALUE_CHARS)
                      or value[0] in _WS or value[-1] in _WS):
            raise _Malformed("field value of %r invalid" % name)
        if name[:1] == b":":
            if regular:
                raise _Malformed("pseudo-header field %r after a regular field" % name)
            if name not in pseudo_allowed:
                raise _Malformed("pseudo-header field %r not allowed here" % name)
            if name in pseudo:
                raise _Malformed("pseudo-header field %r repeated" % name)
            pseudo[name] = value
            continue
        regular = True
        if not name or name.translate(None, _NAME_CHARS):
            raise _Malformed("field name %r invalid (or not lowercase)" % name)
        if name in _CONNECTION_SPECIFIC:
            raise _Malformed("connection-specific field %r" % name)
        if name == b"content-length":
            length = _content_length(value, length)
        elif name == b"host":
            if host is not None and value != host:
                raise _Malformed("several Host values")
            host = value
        elif name == b"te" and value != b"trailers":
            raise _Malformed("TE other than trailers")
        elif (len(name) + len(value) <= _VALID_FIELD_LEN and name not in _SENSITIVE
              and name not in never_indexed):
            if len(valid) >= _VALID_MAX:
                valid.clear()
            valid.add(field)
    return pseudo, length, host


def _content_length(value: bytes, length: Optional[int]) -> int:
    """The Content-Length ``value`` says, agreeing with ``length`` (one
    seen before in the section, if any)."""
    n = 0
    for item in value.split(b","):
        item = item.strip(b" \t")
        if not item.isdigit() or len(item) > 18:
            raise _Malformed("content-length %r invalid" % value)
        n = int(item)
        if length is not None and n != length:
            raise _Malformed("conflicting content-length values")
        length = n
    return n


def _check_request(
    headers: Sequence[Field], connect_protocol: bool = False,
    never_indexed: Collection[bytes] = _NONE,
) -> Optional[int]:
    """A request head's Content-Length (or None), checked; raises _Malformed.
    ``connect_protocol``: we announced SETTINGS_ENABLE_CONNECT_PROTOCOL
    (RFC 8441), so ``:protocol`` is allowed."""
    pseudo, length, host = _check_fields(
        headers, _REQUEST_PSEUDO if connect_protocol else _PLAIN_PSEUDO, never_indexed)
    method = pseudo.get(b":method")
    if method is None:
        raise _Malformed("request without :method")
    if method == b"CONNECT" and b":protocol" not in pseudo:
        if b":scheme" in pseudo or b":path" in pseudo or b":authority" not in pseudo:
            raise _Malformed("CONNECT needs :authority and no :scheme or :path")
    else:
        if b":protocol" in pseudo and (method != b"CONNECT" or b":authority" not in pseudo):
            raise _Malformed(":protocol not on a CONNECT with :authority (RFC 8441 4)")
        scheme = pseudo.get(b":scheme")
        path = pseudo.get(b":path")
        if not scheme or not path:
            raise _Malformed("request without :scheme or :path")
        if scheme not in _SCHEMES and (
                scheme.translate(None, _SCHEME_CHARS) or scheme[0] not in _SCHEME_LEAD):
            raise _Malformed(":scheme %r invalid" % scheme)
        if path[0] != 47 and (path != b"*" or method != b"OPTIONS"):  # 47: "/"
            raise _Malformed(":path %r neither absolute nor OPTIONS *" % path)
        if path.translate(None, _PATH_CHARS):
            raise _Malformed(":path with spaces or control characters")
    if method not in _METHODS and (not method or method.translate(None, _TOKEN_CHARS)):
        raise _Malformed(":method %r not a token" % method)
    authority = pseudo.get(b":authority")
    if authority is not None:
        if authority not in _AUTHORITIES:
            if b"@" in authority:
                raise _Malformed(":authority with userinfo")
            if not authority or authority.translate(None, _AUTHORITY_CHARS):
                raise _Malformed(":authority %r invalid" % authority)
            if len(_AUTHORITIES) >= 256:
                _AUTHORITIES.clear()
            _AUTHORITIES.add(authority)
        if host is not None and host != authority and host.lower() != authority.lower():
            raise _Malformed("Host differs from :authority")
    return length


_STATUS_ONLY = frozenset((b":status",))


def _check_response(
    headers: Sequence[Field], never_indexed: Collection[bytes] = _NONE,
) -> Tuple[int, Optional[int]]:
    pseudo, length, _ = _check_fields(headers, _STATUS_ONLY, never_indexed)
    status = pseudo.get(b":status")
    if status is None or len(status) != 3 or not status.isdigit() or not b"100" <= status < b"600":
        raise _Malformed("response without a valid :status")
    return int(status), length


def _status_of(headers: Sequence[Field]) -> int:
    """The :status of an unchecked response head (200 if it has none)."""
    for name, value in headers:
        if name == b":status":
            return int(value) if value.isdigit() else 200
    return 200


def _check_trailers(headers: Sequence[Field], never_indexed: Collection[bytes] = _NONE) -> None:
    _, length, host = _check_fields(headers, _NO_PSEUDO, never_indexed)
    if length is not None or host is not None:
        raise _Malformed("Content-Length or Host in trailers")


# -- streams ----------------------------------------------------------------------------------

# Stream states (RFC 9113 5.1; no reserved states: thor never pushes and
# refuses pushes). An idle stream has no _Stream; a closed one is dropped.
OPEN = 1
HALF_CLOSED_LOCAL = 2     # we sent END_STREAM
HALF_CLOSED_REMOTE = 3    # the peer sent END_STREAM


class _Stream:
    __slots__ = (
        "stream_id", "state", "send_window", "recv_window", "unacked",
        "head_received", "head_sent", "expect_length", "received_length",
        "no_body", "outbound", "outbound_size", "end_queued", "trailers_queued",
        "trailers_never_index",
        "local", "delivered",
    )

    def __init__(self, stream_id: int, send_window: int, recv_window: int, local: bool) -> None:
        self.stream_id = stream_id
        self.state = OPEN
        self.send_window = send_window
        self.recv_window = recv_window
        self.unacked = 0
        self.head_received = False      # final (non-1xx) head received
        self.head_sent = False          # final head sent
        self.expect_length: Optional[int] = None
        self.received_length = 0
        self.no_body = False            # a response to HEAD, or 304
        # views, so that cutting frames off a large body copies nothing;
        # made when the first piece waits (most responses never wait)
        self.outbound: Union[Deque[memoryview], Tuple[()]] = ()
        self.outbound_size = 0
        self.end_queued = False         # END_STREAM to go after outbound
        self.trailers_queued: Optional[HeaderList] = None
        self.trailers_never_index: Collection[bytes] = ()
        self.local = local              # we opened it
        # DATA octets delivered, not yet acknowledged: given back to the
        # connection window if the stream is reset
        self.delivered = 0


# the peer's settings before its SETTINGS frame (RFC 9113 6.5.2)
_DEFAULT_SETTINGS = {
    HEADER_TABLE_SIZE: 4096, ENABLE_PUSH: 1, MAX_CONCURRENT_STREAMS: 2 ** 32 - 1,
    INITIAL_WINDOW_SIZE: 65535, MAX_FRAME_SIZE: 16384, MAX_HEADER_LIST_SIZE: 2 ** 32 - 1,
}

# connection states
_PREFACE, _FIRST_SETTINGS, _RUNNING, _CLOSED = range(4)


class _ConnectionError(Exception):
    def __init__(self, code: int, message: str) -> None:
        Exception.__init__(self, message)
        self.code = code


class H2Connection:
    """One end of an HTTP/2 connection (see the module docstring).

    Emits (returns from receive_data): RequestReceived, ResponseReceived,
    InformationalResponse, TrailersReceived, DataReceived, StreamEnded,
    StreamReset, WindowUpdated, SettingsChanged, SettingsAcknowledged,
    PingAck, ConnectionTerminated.
    """

    __slots__ = (
        "client_side", "config", "_clock", "_reader", "_decoder", "_encoder", "_out",
        "_state", "_preface_seen", "streams", "local_settings", "remote_settings",
        "_pending_settings", "_send_window", "_recv_window", "_recv_unacked",
        "_next_stream_id", "_highest_peer_stream",
        "_peer_open", "_local_open", "_continuing", "_closed", "_closed_evicted",
        "_resets", "_pings", "_settings_floods", "_empty_frames",
        "goaway_sent", "goaway_received", "_last_peer_processed", "_blocked",
        "_dispatch", "error_code", "_ping_sent", "_checked_head", "_checked_length",
        "_goaway_last", "_reset_ids", "_max_output",
    )

    def __init__(
        self, client_side: bool, config: Optional[H2Config] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_side = client_side
        cfg = self.config = config or H2Config()
        self._clock = clock
        self._reader = FrameReader(16384)
        self._decoder = Decoder(4096, cfg.max_header_list_size)
        self._encoder = Encoder(huffman=cfg.huffman)
        self._out = bytearray()
        self._state = _FIRST_SETTINGS if client_side else _PREFACE
        self._preface_seen = 0
        self.streams: Dict[int, _Stream] = {}
        #: what we announced (applied in full once acknowledged)
        self.local_settings: Dict[int, int] = dict(_DEFAULT_SETTINGS)
        self.local_settings[ENABLE_PUSH] = 0
        #: what the peer announced
        self.remote_settings: Dict[int, int] = dict(_DEFAULT_SETTINGS)
        self._pending_settings: Deque[List[Tuple[int, int]]] = deque()
        self._send_window = 65535
        self._recv_window = 65535
        self._recv_unacked = 0
        self._next_stream_id = 1 if client_side else 2
        self._highest_peer_stream = 0
        self._peer_open = 0
        self._local_open = 0
        # a header block in pieces: (stream_id, blocks, end_stream, frame
        # count, size, priority)
        self._continuing: Optional[Tuple[
            int, List[bytes], bool, int, int, Optional[Tuple[bool, int, int]]]] = None
        # recently closed streams (at most max_closed_streams, oldest
        # first): True for those we reset (their late frames are ignored),
        # False for the others (a frame on one is the peer's error)
        self._closed: Dict[int, bool] = {}
        self._closed_evicted = False
        self._resets = _Bucket(cfg.reset_burst, cfg.reset_rate, clock)
        self._pings = _Bucket(cfg.ping_burst, cfg.ping_rate, clock)
        self._settings_floods = _Bucket(cfg.settings_burst, cfg.settings_rate, clock)
        self._empty_frames = _Bucket(cfg.empty_frame_burst, cfg.empty_frame_rate, clock)
        self.goaway_sent = False
        self.goaway_received = False
        self._last_peer_processed = 0
        # streams with data waiting for window, in the order they blocked
        self._blocked: Dict[int, None] = {}
        self._dispatch: Dict[int, Callable[[Frame, List[Event]], None]] = {
            fr.DATA: self._on_data,                     # type: ignore[dict-item]
            fr.HEADERS: self._on_headers,               # type: ignore[dict-item]
            fr.PRIORITY: self._on_ignored,
            fr.RST_STREAM: self._on_rst_stream,         # type: ignore[dict-item]
            fr.SETTINGS: self._on_settings,             # type: ignore[dict-item]
            fr.PUSH_PROMISE: self._on_push_promise,     # type: ignore[dict-item]
            fr.PING: self._on_ping,                     # type: ignore[dict-item]
            fr.GOAWAY: self._on_goaway,                 # type: ignore[dict-item]
            fr.WINDOW_UPDATE: self._on_window_update,   # type: ignore[dict-item]
            fr.CONTINUATION: self._on_continuation,     # type: ignore[dict-item]
            fr.UNKNOWN: self._on_ignored,
            fr.ERROR: self._on_error_frame,             # type: ignore[dict-item]
        }
        #: set when the connection ended with an error (ours or the peer's)
        self.error_code: Optional[int] = None
        # unanswered pings, the oldest dropped past 64
        self._ping_sent: Deque[bytes] = deque(maxlen=64)
        # the last GOAWAY's last_stream_id, which may only go down
        self._goaway_last = MAX_STREAM_ID
        # streams reset (either side) that the application knew of
        self._reset_ids: Dict[int, None] = {}
        self._max_output = cfg.max_output
        # The last request head checked (the decoder's list, which it
        # returns again for a repeated block) and its Content-Length: a
        # client repeating a request is checked once.
        self._checked_head: Optional[HeaderList] = None
        self._checked_length: Optional[int] = None

    # -- the owner's calls ---------------------------------------------------------------

    def initiate(self) -> None:
        """Queue the connection preface: a client's magic, then SETTINGS
        (and a connection WINDOW_UPDATE up to connection_window_size)."""
        cfg = self.config
        if self.client_side:
            self._out += PREFACE
        settings = [
            (HEADER_TABLE_SIZE, cfg.header_table_size),
            (MAX_CONCURRENT_STREAMS, cfg.max_concurrent_streams),
            (INITIAL_WINDOW_SIZE, cfg.initial_window_size),
            (MAX_FRAME_SIZE, cfg.max_frame_size),
            (MAX_HEADER_LIST_SIZE, cfg.max_header_list_size),
        ]
        if self.client_side:
            settings.insert(1, (ENABLE_PUSH, 0))
        self._send_settings(settings)
        if cfg.connection_window_size > 65535:
            delta = min(cfg.connection_window_size, MAX_WINDOW) - 65535
            self._recv_window += delta
            self._out += fr.window_update_frame(0, delta)

    def data_to_send(self) -> bytes:
        """The bytes queued for the peer (and forget them). With
        ``max_output``, body data is framed here, about that much a call:
        call again whenever the transport can take more."""
        if self._blocked and self._max_output:
            self._frame_more()
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def closed(self) -> bool:
        """True once the connection ended with an error (the peer's protocol
        error, answered with GOAWAY): nothing more is read or may be sent."""
        return self._state == _CLOSED

    def receive_data(self, data: bytes) -> List[Event]:
        """What the peer sent: returns the events it causes, in order."""
        events: List[Event] = []
        if self._state == _CLOSED:
            return events
        try:
            if self._state == _PREFACE:
                data = self._read_preface(data)
                if not data:
                    return events
            frames = self._reader.feed(data)
            dispatch = self._dispatch
            for frame in frames:
                if self._state == _FIRST_SETTINGS:
                    if frame.type != fr.SETTINGS or frame.ack:  # type: ignore[attr-defined]
                        # a broken frame's own connection error stands; a
                        # stream error is no excuse to skip SETTINGS
                        if frame.type != fr.ERROR or not frame.connection:  # type: ignore[attr-defined]
                            raise _ConnectionError(
                                PROTOCOL_ERROR, "first frame is not SETTINGS")
                    else:
                        self._state = _RUNNING
                if self._continuing is not None and frame.type != fr.CONTINUATION and not (
                        frame.type == fr.ERROR and frame.stream_id == 0):
                    raise _ConnectionError(PROTOCOL_ERROR, "header block interrupted")
                dispatch[frame.type](frame, events)
                if self._state == _CLOSED:
                    break
        except _ConnectionError as err:
            self._fail(err.code, str(err), events)
        return events

    # -- the application's calls ----------------------------------------------------------

    @property
    def open_streams(self) -> int:
        """Streams not closed, both sides' together."""
        return len(self.streams)

    @property
    def can_open_stream(self) -> bool:
        """Whether start_request may be called now (client side)."""
        return (
            self._state != _CLOSED and not self.goaway_received and not self.goaway_sent
            and self._next_stream_id <= MAX_STREAM_ID
            and self._local_open < self.remote_settings[MAX_CONCURRENT_STREAMS]
        )

    @property
    def settings_acknowledged(self) -> bool:
        """Whether the peer acknowledged every SETTINGS we sent (an owner may
        time this out: SETTINGS_TIMEOUT)."""
        return not self._pending_settings

    @property
    def input_pending(self) -> bool:
        """A part of the preface, of a frame or of a header block has been
        received and the rest has not: an owner timing the peer out does
        not count such a part as activity (a trickle would renew it)."""
        return (
            bool(self._reader.buffered) or self._continuing is not None
            or (self._state == _PREFACE and self._preface_seen > 0)
        )

    @property
    def streams_exhausted(self) -> bool:
        """No stream identifier is left: open a new connection."""
        return self._next_stream_id > MAX_STREAM_ID

    def start_request(
        self, headers: Sequence[Field], end_stream: bool = False,
        never_index: Collection[bytes] = (),
    ) -> int:
        """Open a stream with a request head (client side); its id."""
        if not self.client_side:
            raise H2UsageError("a server does not start requests (no push)")
        if self._state == _CLOSED:
            raise H2UsageError("connection closed")
        if self.goaway_received or self.goaway_sent:
            raise H2UsageError("connection going away: no new streams")
        if self._next_stream_id > MAX_STREAM_ID:
            raise H2UsageError("stream identifiers exhausted")
        if self._local_open >= self.remote_settings[MAX_CONCURRENT_STREAMS]:
            raise H2UsageError("the peer allows %d concurrent streams" %
                               self.remote_settings[MAX_CONCURRENT_STREAMS])
        no_body = False
        if self.config.validate_outbound:
            try:
                _check_request(
                    headers, bool(self.remote_settings.get(ENABLE_CONNECT_PROTOCOL)), never_index)
            except _Malformed as err:
                raise H2UsageError(str(err)) from None
        for name, value in headers:
            if name == b":method":
                no_body = value == b"HEAD"
                break
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        stream = _Stream(
            stream_id, self.remote_settings[INITIAL_WINDOW_SIZE],
            self._initial_recv_window(), True)
        stream.head_sent = True
        stream.no_body = no_body
        self.streams[stream_id] = stream
        self._local_open += 1
        self._write_headers(stream_id, headers, end_stream, never_index)
        if end_stream:
            self._local_end(stream)
        return stream_id

    def send_headers(
        self, stream_id: int, headers: Sequence[Field], end_stream: bool = False,
        never_index: Collection[bytes] = (),
    ) -> bool:
        """A response head (server; 1xx heads first if any), or trailers
        (either side, after the head: ``end_stream`` is implied).
        ``never_index``: names to send as never-indexed literals (besides
        credentials, which always are). False (nothing sent) when the
        stream was reset, by the peer or by us: a race, not a misuse."""
        stream = self._sendable(stream_id)
        if stream is None:
            return False
        validate = self.config.validate_outbound
        if not stream.head_sent:
            if self.client_side:
                raise H2UsageError("request head already sent")
            try:
                status = (_check_response(headers, never_index)[0] if validate
                          else _status_of(headers))
            except _Malformed as err:
                raise H2UsageError(str(err)) from None
            if status < 200:
                if end_stream or status == 101:
                    raise H2UsageError("1xx heads cannot end a stream; 101 is not HTTP/2")
                self._write_headers(stream_id, headers, False, never_index)
                return True
            stream.head_sent = True
            if stream.outbound or stream.end_queued:
                raise H2UsageError("data queued before the head")
            self._write_headers(stream_id, headers, end_stream, never_index)
            if end_stream:
                self._local_end(stream)
            return True
        # trailers
        if validate:
            try:
                _check_trailers(headers, never_index)
            except _Malformed as err:
                raise H2UsageError(str(err)) from None
        if stream.end_queued:
            raise H2UsageError("stream already ended")
        stream.end_queued = True
        if stream.outbound:
            # encoded when they go out, so HPACK sees blocks in wire order
            stream.trailers_queued = list(headers)
            stream.trailers_never_index = never_index
            return True
        self._write_headers(stream_id, headers, True, never_index)
        self._local_end(stream)
        return True

    def send_data(
        self, stream_id: int, data: Union[bytes, bytearray, memoryview], end_stream: bool = False,
    ) -> bool:
        """Queue body data; it goes out as the peer's windows allow
        (``outbound_buffered`` tells how much waits). False (nothing
        queued) when the stream was reset, as for send_headers."""
        stream = self._sendable(stream_id)
        if stream is None:
            return False
        if not stream.head_sent:
            raise H2UsageError("data before the head")
        if stream.end_queued:
            raise H2UsageError("stream already ended")
        n = len(data)
        if (
            n and not stream.outbound and n <= self._send_window and n <= stream.send_window
            and n <= self.remote_settings[MAX_FRAME_SIZE]
            and (not self._max_output or len(self._out) < self._max_output)
        ):
            # What fits at once in one frame, nothing queued before it (a
            # small response): framed here, without a copy or a queue.
            self._send_window -= n
            stream.send_window -= n
            out = self._out
            out += _FRAME_HEAD((n << 8) | fr.DATA, fr.END_STREAM if end_stream else 0, stream_id)
            out += data
            if end_stream:
                stream.end_queued = True
                self._local_end(stream)
            return True
        if data:
            if not stream.outbound:
                stream.outbound = deque()
            stream.outbound.append(memoryview(bytes(data)))
            stream.outbound_size += len(data)
        if end_stream:
            stream.end_queued = True
        self._flush(stream)
        return True

    def end_stream(self, stream_id: int) -> bool:
        """End our side of the stream (after the data queued); False as
        for send_data."""
        return self.send_data(stream_id, b"", True)

    def outbound_buffered(self, stream_id: int = 0) -> int:
        """Body octets queued, waiting for flow-control window (0: all streams)."""
        if stream_id:
            stream = self.streams.get(stream_id)
            return stream.outbound_size if stream else 0
        return sum(s.outbound_size for s in self.streams.values())

    def send_window(self, stream_id: int) -> int:
        """How many octets could go on the stream now."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return 0
        return max(0, min(self._send_window, stream.send_window))

    def acknowledge_data(self, stream_id: int, flow_length: int) -> None:
        """The application consumed ``flow_length`` octets (a DataReceived's):
        WINDOW_UPDATE frames go out once half a window is consumed."""
        if flow_length <= 0 or self._state == _CLOSED:
            return
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.delivered -= flow_length
        elif stream_id in self._reset_ids:
            return  # given back when the stream was reset
        ratio = self.config.window_update_ratio
        self._recv_unacked += flow_length
        if self._recv_unacked >= self.config.connection_window_size * ratio:
            self._out += fr.window_update_frame(0, self._recv_unacked)
            self._recv_window += self._recv_unacked
            self._recv_unacked = 0
        if stream is None or stream.state == HALF_CLOSED_REMOTE:
            return
        stream.unacked += flow_length
        if stream.unacked >= self.local_settings[INITIAL_WINDOW_SIZE] * ratio:
            self._out += fr.window_update_frame(stream_id, stream.unacked)
            stream.recv_window += stream.unacked
            stream.unacked = 0

    def reset_stream(self, stream_id: int, error_code: int = CANCEL) -> bool:
        """Reset a stream (RST_STREAM); queued data for it is dropped.
        False (nothing sent) when it was reset already, either side."""
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id in self._reset_ids:
                return False
            raise H2UsageError("stream %d is not open" % stream_id)
        self._reset(stream, error_code)
        return True

    def ping(self, data: bytes = b"\0" * 8) -> None:
        """Send a PING; its answer comes as PingAck."""
        self._out += fr.ping_frame(data)
        self._ping_sent.append(data)

    def close(self, error_code: int = NO_ERROR, debug_data: bytes = b"") -> None:
        """Send GOAWAY: no new peer streams are taken; streams up to the
        last one the peer opened go on."""
        if self._state == _CLOSED:
            return
        self._goaway(error_code, debug_data)

    def update_settings(self, settings: Dict[int, int]) -> None:
        """Announce new settings (applied once the peer acknowledges; a more
        permissive value now). Values the peer would have to take as a
        connection error (RFC 9113 6.5.2, RFC 8441 3) raise H2UsageError."""
        for ident, value in settings.items():
            if not 0 <= ident <= 0xffff or not 0 <= value <= 0xffffffff:
                raise H2UsageError("setting %r = %r out of range" % (ident, value))
            if ident == ENABLE_PUSH and value:
                raise H2UsageError("push is not supported: SETTINGS_ENABLE_PUSH must be 0")
            if ident == ENABLE_CONNECT_PROTOCOL and value > 1:
                raise H2UsageError("SETTINGS_ENABLE_CONNECT_PROTOCOL must be 0 or 1")
            if ident == INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
                raise H2UsageError("SETTINGS_INITIAL_WINDOW_SIZE must be at most 2^31-1")
            if ident == MAX_FRAME_SIZE and not (
                    fr.MIN_MAX_FRAME_SIZE <= value <= fr.MAX_MAX_FRAME_SIZE):
                raise H2UsageError("SETTINGS_MAX_FRAME_SIZE must be 2^14 to 2^24-1")
        self._send_settings(list(settings.items()))

    # -- sending internals ------------------------------------------------------------------

    def _initial_recv_window(self) -> int:
        return self.local_settings[INITIAL_WINDOW_SIZE]

    def _send_settings(self, settings: List[Tuple[int, int]]) -> None:
        self._out += fr.settings_frame(settings)
        self._pending_settings.append(settings)
        # a more permissive value holds at once (the peer may act on it
        # before we see its ACK); a stricter one once acknowledged, but for
        # MAX_CONCURRENT_STREAMS: streams refused early are safe to retry
        for ident, value in settings:
            if value > self.local_settings.get(ident, 0) or ident == MAX_CONCURRENT_STREAMS:
                self._apply_local(ident, value)

    def _apply_local(self, ident: int, value: int) -> None:
        self._checked_head = None  # checked under other settings
        old = self.local_settings.get(ident, 0)
        self.local_settings[ident] = value
        if ident == INITIAL_WINDOW_SIZE:
            delta = value - old
            for stream in self.streams.values():
                stream.recv_window += delta
        elif ident == MAX_FRAME_SIZE:
            self._reader.max_frame_size = value
        elif ident == HEADER_TABLE_SIZE:
            self._decoder.set_max_table_size(value)
        elif ident == MAX_HEADER_LIST_SIZE:
            self._decoder.max_header_list_size = value

    def _sendable(self, stream_id: int) -> Optional[_Stream]:
        """The stream to send on; None if it was reset (either side)."""
        if self._state == _CLOSED:
            raise H2UsageError("connection closed")
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id in self._reset_ids:
                return None
            raise H2UsageError("stream %d is not open" % stream_id)
        if stream.state == HALF_CLOSED_LOCAL:
            raise H2UsageError("stream %d already ended on our side" % stream_id)
        return stream

    def _write_headers(
        self, stream_id: int, headers: Sequence[Field], end_stream: bool,
        never_index: Collection[bytes] = (),
    ) -> None:
        block = self._encoder.encode(headers, never_index)
        n = len(block)
        if n <= self.remote_settings[MAX_FRAME_SIZE]:
            # one HEADERS frame, the usual case: framed here
            out = self._out
            out += _FRAME_HEAD(
                (n << 8) | fr.HEADERS,
                fr.END_HEADERS | fr.END_STREAM if end_stream else fr.END_HEADERS, stream_id)
            out += block
            return
        self._out += fr.headers_frames(
            stream_id, block, end_stream, self.remote_settings[MAX_FRAME_SIZE])

    def _flush(self, stream: _Stream) -> None:
        """Send what the windows allow of the stream's queued data."""
        out = self._out
        outbound = stream.outbound
        max_frame = self.remote_settings[MAX_FRAME_SIZE]
        sid = stream.stream_id
        cap = self._max_output
        while outbound:
            room = min(self._send_window, stream.send_window, max_frame)
            if room <= 0 or (cap and len(out) >= cap):
                self._blocked[sid] = None
                return
            chunk = outbound[0]
            if len(chunk) > room:
                outbound[0] = chunk[room:]
                chunk = chunk[:room]
            else:
                outbound.popleft()
            n = len(chunk)
            stream.outbound_size -= n
            self._send_window -= n
            stream.send_window -= n
            last = not outbound and stream.end_queued and stream.trailers_queued is None
            out += fr.data_frame(sid, chunk, last)
            if last:
                self._blocked.pop(sid, None)
                self._local_end(stream)
                return
        self._blocked.pop(sid, None)
        if stream.end_queued and stream.state != HALF_CLOSED_LOCAL and stream.state != 0:
            if stream.trailers_queued is not None:
                trailers = stream.trailers_queued
                stream.trailers_queued = None
                self._write_headers(sid, trailers, True, stream.trailers_never_index)
            else:
                out += fr.data_frame(sid, b"", True)
            self._local_end(stream)

    def _frame_more(self) -> None:
        """Frame queued data up to max_output, for data_to_send."""
        cap = self._max_output
        for sid in list(self._blocked):
            if len(self._out) >= cap or self._send_window <= 0 or self._state == _CLOSED:
                return
            stream = self.streams.get(sid)
            if stream is None:
                self._blocked.pop(sid, None)
            elif stream.send_window > 0:
                self._flush(stream)

    def _flush_blocked(self, events: List[Event]) -> None:
        for sid in list(self._blocked):
            if self._send_window <= 0:
                return
            stream = self.streams.get(sid)
            if stream is None:
                self._blocked.pop(sid, None)
                continue
            if stream.send_window > 0:
                self._flush(stream)
                events.append(WindowUpdated(sid))

    def _local_end(self, stream: _Stream) -> None:
        if stream.state == HALF_CLOSED_REMOTE:
            self._close_stream(stream)
        else:
            stream.state = HALF_CLOSED_LOCAL

    def _close_stream(self, stream: _Stream, by_us: bool = False) -> None:
        stream.state = 0
        if self.streams.pop(stream.stream_id, None) is not None:
            if stream.local:
                self._local_open -= 1
            else:
                self._peer_open -= 1
        self._blocked.pop(stream.stream_id, None)
        self._remember_closed(stream.stream_id, by_us)

    def _remember_closed(self, stream_id: int, by_us: bool) -> None:
        closed = self._closed
        closed[stream_id] = by_us
        if len(closed) > self.config.max_closed_streams:
            del closed[next(iter(closed))]
            self._closed_evicted = True

    def _reset(self, stream: _Stream, code: int) -> None:
        self._out += fr.rst_stream_frame(stream.stream_id, code)
        self._close_stream(stream, True)
        self._note_reset(stream)

    def _note_reset(self, stream: _Stream) -> None:
        """Remember a stream the application knew and that was reset, so
        that its late calls on it are no-ops (bounded as _closed is), and
        give back the connection window of data it did not acknowledge
        (its acknowledgements from now on are ignored)."""
        if stream.delivered > 0:
            self._credit_connection(stream.delivered)
        reset = self._reset_ids
        reset[stream.stream_id] = None
        if len(reset) > self.config.max_closed_streams:
            del reset[next(iter(reset))]

    def _stream_error(self, stream_id: int, code: int, events: List[Event], announce: bool) -> None:
        # Every reset here answers a peer's frame: one that provokes them
        # in a loop (CVE-2025-8671, "MadeYouReset"), or makes us queue
        # RST_STREAM frames it never reads, pays from the reset bucket.
        if not self._resets.take():
            self._calm("too many stream errors")
        stream = self.streams.get(stream_id)
        if stream is not None:
            self._reset(stream, code)
        else:
            self._out += fr.rst_stream_frame(stream_id, code)
            self._remember_closed(stream_id, True)
        if announce:
            events.append(StreamReset(stream_id, code, False))

    def _goaway(self, code: int, debug: bytes = b"") -> None:
        self._out += fr.goaway_frame(self._last_peer_processed, code, debug)
        self.goaway_sent = True

    def _fail(self, code: int, message: str, events: List[Event]) -> None:
        """A connection error: GOAWAY with ``code``, and nothing more."""
        if self._state == _CLOSED:
            return
        self._goaway(code, message.encode("ascii", "replace")[:200])
        self._state = _CLOSED
        self.error_code = code
        events.append(ConnectionTerminated(code, self._last_peer_processed, b"", False))

    def _calm(self, what: str) -> None:
        raise _ConnectionError(ENHANCE_YOUR_CALM, what)

    # -- receiving --------------------------------------------------------------------------

    def _read_preface(self, data: bytes) -> bytes:
        seen = self._preface_seen
        want = PREFACE[seen:]
        part = data[:len(want)]
        if not want.startswith(part):
            raise _ConnectionError(PROTOCOL_ERROR, "invalid connection preface")
        seen += len(part)
        self._preface_seen = seen
        if seen == len(PREFACE):
            self._state = _FIRST_SETTINGS
            return data[len(part):]
        return b""

    def _on_ignored(self, frame: Frame, events: List[Event]) -> None:
        # PRIORITY (deprecated) and unknown frames do nothing but cost a little
        if not self._empty_frames.take():
            self._calm("PRIORITY or unknown frame flood")

    def _on_error_frame(self, frame: ErrorFrame, events: List[Event]) -> None:
        if frame.connection:
            raise _ConnectionError(frame.code, frame.message)
        sid = frame.stream_id
        if frame.frame_type != fr.PRIORITY and self._idle(sid):
            # RFC 9113 5.1: on an idle stream only HEADERS and PRIORITY may
            # come, and 6.4: no RST_STREAM on one
            raise _ConnectionError(PROTOCOL_ERROR, "%s on idle stream %d" % (frame.message, sid))
        self._stream_error(sid, frame.code, events, sid in self.streams)

    def _is_peer_stream(self, stream_id: int) -> bool:
        # clients open odd streams, servers (pushing) even ones
        return (stream_id & 1) == (0 if self.client_side else 1)

    def _idle(self, stream_id: int) -> bool:
        if self._is_peer_stream(stream_id):
            return stream_id > self._highest_peer_stream
        return stream_id >= self._next_stream_id

    def _on_data(self, frame: DataFrame, events: List[Event]) -> None:
        n = frame.flow_length
        sid = frame.stream_id
        if n > self._recv_window:
            raise _ConnectionError(FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        self._recv_window -= n
        stream = self.streams.get(sid)
        if stream is None or stream.state == HALF_CLOSED_REMOTE:
            if self._idle(sid):
                raise _ConnectionError(PROTOCOL_ERROR, "DATA on idle stream %d" % sid)
            # a closed stream: give its window back; answer unless we reset it
            self._credit_connection(n)
            if not self._closed.get(sid):
                self._stream_error(sid, STREAM_CLOSED, events, stream is not None)
            return
        if not stream.head_received:
            # DATA before a response's final head
            self._credit_connection(n)
            self._stream_error(sid, PROTOCOL_ERROR, events, True)
            return
        if n > stream.recv_window:
            self._credit_connection(n)
            self._stream_error(sid, FLOW_CONTROL_ERROR, events, True)
            return
        stream.recv_window -= n
        data = frame.data
        if not n and not frame.end_stream and not self._empty_frames.take():
            self._calm("empty DATA flood")
        if data:
            stream.received_length += len(data)
            if stream.no_body or (
                stream.expect_length is not None
                and stream.received_length > stream.expect_length
            ):
                self._credit_connection(n)
                self._stream_error(sid, PROTOCOL_ERROR, events, True)
                return
            stream.delivered += n
            events.append(DataReceived(sid, data, n))
        elif n:
            # padding only: nothing for the application to acknowledge, so
            # acknowledged here, as acknowledge_data would (the peer's
            # window must come back too, or the stream stalls)
            self._credit_connection(n)
            if not frame.end_stream:
                stream.unacked += n
                if stream.unacked >= (self.local_settings[INITIAL_WINDOW_SIZE]
                                      * self.config.window_update_ratio):
                    self._out += fr.window_update_frame(sid, stream.unacked)
                    stream.recv_window += stream.unacked
                    stream.unacked = 0
        if frame.end_stream:
            self._remote_end(stream, events)

    def _credit_connection(self, n: int) -> None:
        """Give back connection window for octets the application never sees."""
        if n:
            self._recv_unacked += n
            if self._recv_unacked >= self.config.connection_window_size * self.config.window_update_ratio:
                self._out += fr.window_update_frame(0, self._recv_unacked)
                self._recv_window += self._recv_unacked
                self._recv_unacked = 0

    def _remote_end(self, stream: _Stream, events: List[Event]) -> None:
        # a response to HEAD, or a 204 or 304, has no content whatever
        # Content-Length says
        if (
            stream.expect_length is not None and not stream.no_body
            and stream.received_length != stream.expect_length
        ):
            self._stream_error(stream.stream_id, PROTOCOL_ERROR, events, True)
            return
        events.append(StreamEnded(stream.stream_id))
        if stream.state == HALF_CLOSED_LOCAL:
            self._close_stream(stream)
        else:
            stream.state = HALF_CLOSED_REMOTE

    def _on_headers(self, frame: HeadersFrame, events: List[Event]) -> None:
        block = frame.block
        if len(block) > self.config.max_header_block_size:
            self._calm("header block over %d octets" % self.config.max_header_block_size)
        if not frame.end_headers:
            self._continuing = (
                frame.stream_id, [block], frame.end_stream, 1, len(block), frame.priority)
            return
        if not block and not self._empty_frames.take():
            self._calm("empty HEADERS flood")
        self._headers_done(frame.stream_id, block, frame.end_stream, events, frame.priority)

    def _on_continuation(self, frame: ContinuationFrame, events: List[Event]) -> None:
        cont = self._continuing
        if cont is None or cont[0] != frame.stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "CONTINUATION out of place")
        sid, blocks, end_stream, count, size, priority = cont
        count += 1
        size += len(frame.block)
        cfg = self.config
        if count > cfg.max_continuation_frames:
            self._calm("more than %d CONTINUATION frames" % cfg.max_continuation_frames)
        if size > cfg.max_header_block_size:
            self._calm("header block over %d octets" % cfg.max_header_block_size)
        blocks.append(frame.block)
        if not frame.end_headers:
            self._continuing = (sid, blocks, end_stream, count, size, priority)
            return
        self._continuing = None
        self._headers_done(sid, b"".join(blocks), end_stream, events, priority)

    def _decode(self, block: bytes) -> Optional[HeaderList]:
        """The header list, or None when it is over max_header_list_size."""
        try:
            return self._decoder.decode(block)
        except HeaderListTooLarge:
            return None
        except HpackError as err:
            raise _ConnectionError(COMPRESSION_ERROR, str(err)) from None

    def _headers_done(
        self, sid: int, block: bytes, end_stream: bool, events: List[Event],
        priority: Optional[Tuple[bool, int, int]],
    ) -> None:
        # decode first, whatever happens next: the tables must stay in step
        headers = self._decode(block)
        if priority is not None and priority[1] == sid:
            # RFC 9113 5.3.1: a stream depending on itself
            if self._idle(sid):
                self._highest_peer_stream = max(self._highest_peer_stream, sid)
            self._stream_error(sid, PROTOCOL_ERROR, events, sid in self.streams)
            return
        stream = self.streams.get(sid)
        if stream is None:
            if not self._idle(sid):
                by_us = self._closed.get(sid)
                if by_us:
                    return
                if by_us is None and self._is_peer_stream(sid) and not (
                        self._closed_evicted and sid < next(iter(self._closed))):
                    # RFC 9113 5.1.1: ids only grow; this one was skipped
                    raise _ConnectionError(
                        PROTOCOL_ERROR, "HEADERS on stream %d, below the last" % sid)
                raise _ConnectionError(STREAM_CLOSED, "HEADERS on closed stream %d" % sid)
            if not self._is_peer_stream(sid) or self.client_side:
                raise _ConnectionError(PROTOCOL_ERROR, "HEADERS opening stream %d" % sid)
            self._new_peer_stream(sid, headers, end_stream, events)
            return
        if stream.state == HALF_CLOSED_REMOTE:
            self._stream_error(sid, STREAM_CLOSED, events, True)
            return
        if headers is None:
            self._stream_error(sid, ENHANCE_YOUR_CALM, events, True)
            return
        try:
            if not stream.head_received:
                if not self.client_side:
                    raise _Malformed("second request head")
                status, length = _check_response(headers, self._decoder.never_indexed)
                if status < 200:
                    if end_stream or status == 101:
                        raise _Malformed("1xx head ends the stream, or 101")
                    # any number may come: each costs the peer a token
                    if not self._empty_frames.take():
                        self._calm("informational response flood")
                    events.append(InformationalResponse(
                        sid, headers[:], self._decoder.never_indexed))
                    return
                stream.head_received = True
                if status == 304 or status == 204:
                    stream.no_body = True
                stream.expect_length = length
                events.append(ResponseReceived(sid, headers[:], self._decoder.never_indexed))
            else:
                if not end_stream:
                    raise _Malformed("trailers without END_STREAM")
                _check_trailers(headers, self._decoder.never_indexed)
                events.append(TrailersReceived(sid, headers[:], self._decoder.never_indexed))
        except _Malformed:
            self._stream_error(sid, PROTOCOL_ERROR, events, True)
            return
        if end_stream:
            self._remote_end(stream, events)

    def _new_peer_stream(
        self, sid: int, headers: Optional[HeaderList], end_stream: bool,
        events: List[Event],
    ) -> None:
        self._highest_peer_stream = sid
        if self.goaway_sent:
            # opened after our GOAWAY: ignored (RFC 9113 6.8)
            self._remember_closed(sid, True)
            return
        if self._peer_open >= self.local_settings[MAX_CONCURRENT_STREAMS]:
            self._out += fr.rst_stream_frame(sid, REFUSED_STREAM)
            self._remember_closed(sid, True)
            if not self._resets.take():
                self._calm("too many refused streams")
            return
        self._last_peer_processed = sid
        if headers is None:
            # over max_header_list_size: 431, as RFC 9113 10.5.1 suggests
            self._respond_too_large(sid, end_stream)
            return
        try:
            if headers is self._checked_head:
                length = self._checked_length
            else:
                length = _check_request(
                    headers, bool(self.local_settings.get(ENABLE_CONNECT_PROTOCOL)),
                    self._decoder.never_indexed)
                self._checked_head = headers
                self._checked_length = length
            if end_stream and length:
                raise _Malformed("Content-Length with no content")
        except _Malformed:
            self._out += fr.rst_stream_frame(sid, PROTOCOL_ERROR)
            self._remember_closed(sid, True)
            if not self._resets.take():
                self._calm("too many malformed requests")
            return
        stream = _Stream(
            sid, self.remote_settings[INITIAL_WINDOW_SIZE], self._initial_recv_window(), False)
        stream.head_received = True
        stream.expect_length = length
        self.streams[sid] = stream
        self._peer_open += 1
        # a copy: the decoder may return its list again (see Decoder.decode)
        events.append(RequestReceived(sid, headers[:], self._decoder.never_indexed))
        if end_stream:
            self._remote_end(stream, events)

    def _respond_too_large(self, sid: int, end_stream: bool) -> None:
        # a small block can decode to a huge list: each answer costs a token
        if not self._resets.take():
            self._calm("too many oversized header lists")
        self._write_headers(sid, [(b":status", b"431")], True)
        if not end_stream:
            self._out += fr.rst_stream_frame(sid, NO_ERROR)
        self._remember_closed(sid, True)

    def _on_rst_stream(self, frame: RstStreamFrame, events: List[Event]) -> None:
        sid = frame.stream_id
        stream = self.streams.get(sid)
        if stream is None:
            if self._idle(sid):
                raise _ConnectionError(PROTOCOL_ERROR, "RST_STREAM on idle stream %d" % sid)
            return
        # closed by the peer: anything it sends on it later is an error
        self._close_stream(stream)
        self._note_reset(stream)
        events.append(StreamReset(sid, frame.error_code, True))
        # CVE-2023-44487: streams opened and reset in a loop cost us work
        # each; a peer that resets faster than the bucket refills must go
        if not stream.local and not self._resets.take():
            self._calm("rapid reset")

    def _on_settings(self, frame: SettingsFrame, events: List[Event]) -> None:
        if frame.ack:
            if self._pending_settings:
                for ident, value in self._pending_settings.popleft():
                    self._apply_local(ident, value)
            events.append(SettingsAcknowledged())
            return
        if not self._settings_floods.take():
            self._calm("SETTINGS flood")
        changed: Dict[int, int] = {}
        remote = self.remote_settings
        old_window = remote[INITIAL_WINDOW_SIZE]
        for ident, value in frame.settings:
            if ident == ENABLE_PUSH and value and self.client_side:
                raise _ConnectionError(PROTOCOL_ERROR, "a server enabling push")
            if ident == HEADER_TABLE_SIZE:
                self._encoder.set_peer_table_size(value)
            remote[ident] = value
            changed[ident] = value
        # the frame's net change, once: a frame repeating the setting
        # thousands of times costs one walk over the streams
        delta = remote[INITIAL_WINDOW_SIZE] - old_window
        if delta:
            for stream in self.streams.values():
                stream.send_window += delta
                if stream.send_window > MAX_WINDOW:
                    raise _ConnectionError(
                        FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE overflows a window")
        self._out += fr.settings_frame(ack=True)
        events.append(SettingsChanged(changed))
        if INITIAL_WINDOW_SIZE in changed or MAX_FRAME_SIZE in changed:
            for stream in list(self.streams.values()):
                if stream.outbound or stream.end_queued:
                    self._blocked[stream.stream_id] = None
            self._flush_blocked(events)

    def _on_push_promise(self, frame: PushPromiseFrame, events: List[Event]) -> None:
        # we announce SETTINGS_ENABLE_PUSH 0 (client), and a client never pushes
        raise _ConnectionError(PROTOCOL_ERROR, "PUSH_PROMISE received; push is disabled")

    def _on_ping(self, frame: PingFrame, events: List[Event]) -> None:
        if frame.ack:
            sent = self._ping_sent
            if frame.data in sent:
                # answered in order: the older ones will not be
                while sent.popleft() != frame.data:
                    pass
                events.append(PingAck(frame.data))
            return
        if not self._pings.take():
            self._calm("PING flood")
        self._out += fr.ping_frame(frame.data, ack=True)

    def _on_goaway(self, frame: GoAwayFrame, events: List[Event]) -> None:
        self.goaway_received = True
        last = frame.last_stream_id
        if last > self._goaway_last:
            raise _ConnectionError(PROTOCOL_ERROR, "GOAWAY last_stream_id increased")
        self._goaway_last = last
        events.append(ConnectionTerminated(frame.error_code, last, frame.debug_data, True))
        # our streams above last_stream_id were never processed: refused
        for sid in sorted(self.streams):
            stream = self.streams[sid]
            if stream.local and sid > last:
                self._close_stream(stream)
                self._note_reset(stream)
                events.append(StreamReset(sid, REFUSED_STREAM, True))
        if frame.error_code != NO_ERROR:
            self.error_code = frame.error_code

    def _on_window_update(self, frame: WindowUpdateFrame, events: List[Event]) -> None:
        sid = frame.stream_id
        inc = frame.increment
        if not sid:
            was = self._send_window
            self._send_window += inc
            if self._send_window > MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "connection window over 2^31-1")
            # While the connection window was open, what waits waits for
            # its streams' windows (or for max_output): a walk over them
            # would find nothing to send, and a peer sending increments of
            # 1 would make every frame cost one.
            if self._blocked and (was <= 0 or self._max_output):
                self._flush_blocked(events)
            events.append(WindowUpdated(0))
            return
        stream = self.streams.get(sid)
        if stream is None:
            if self._idle(sid):
                raise _ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE on idle stream %d" % sid)
            return
        stream.send_window += inc
        if stream.send_window > MAX_WINDOW:
            self._stream_error(sid, FLOW_CONTROL_ERROR, events, True)
            return
        if stream.outbound or (stream.end_queued and stream.state == OPEN):
            self._flush(stream)
        events.append(WindowUpdated(sid))
