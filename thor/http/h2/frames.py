"""The HTTP/2 frame codec (RFC 9113 sections 4 and 6): bytes in, frames out.

``FrameReader.feed(data)`` returns the frames completed so far, in order,
as small ``__slots__`` objects (``DataFrame``, ``HeadersFrame``, ...);
the ``*_frame()`` functions write them. Nothing here keeps stream or
connection state: that is thor.http.h2.connection's. What the codec
checks is what a frame alone can show: its length against
``max_frame_size`` and its type's fixed sizes, the stream identifier its
type requires (zero or not), padding that fits, SETTINGS values in range,
a zero WINDOW_UPDATE increment, a PRIORITY frame making a stream depend
on itself (in HEADERS, that is the connection's to check, after it has
decoded the block).

A frame that breaks those rules comes out as an ``ErrorFrame`` in its
place, with the RFC's error code and whether it is a connection error
(``stream_id`` 0: the reader stops, and returns nothing more, ever) or a
stream error (the reader goes on with the next frame). Unknown frame types
come out as ``UnknownFrame`` (RFC 9113 5.5: ignored, but they still
interrupt a header block).

Memory: the reader holds at most one frame (``max_frame_size`` + 9
octets): a frame header announcing more is refused as soon as its nine
octets are in, before its payload is read.
"""

from __future__ import annotations

import struct
from typing import Dict, List, Optional, Sequence, Tuple, Union

__all__ = [
    "FrameReader", "Frame", "DataFrame", "HeadersFrame", "PriorityFrame", "RstStreamFrame",
    "SettingsFrame", "PushPromiseFrame", "PingFrame", "GoAwayFrame", "WindowUpdateFrame",
    "ContinuationFrame", "UnknownFrame", "ErrorFrame",
    "data_frame", "headers_frames", "priority_frame", "rst_stream_frame", "settings_frame",
    "push_promise_frames", "ping_frame", "goaway_frame", "window_update_frame",
    "continuation_frame",
]

# Frame types (RFC 9113 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
# Pseudo-types of ErrorFrame and UnknownFrame
ERROR = -1
UNKNOWN = -2

# Flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Error codes (RFC 9113 7)
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xa
ENHANCE_YOUR_CALM = 0xb
INADEQUATE_SECURITY = 0xc
HTTP_1_1_REQUIRED = 0xd

ERROR_NAMES: Dict[int, str] = {
    0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR",
    0x3: "FLOW_CONTROL_ERROR", 0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED",
    0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM", 0x8: "CANCEL",
    0x9: "COMPRESSION_ERROR", 0xa: "CONNECT_ERROR", 0xb: "ENHANCE_YOUR_CALM",
    0xc: "INADEQUATE_SECURITY", 0xd: "HTTP_1_1_REQUIRED",
}

# Settings (RFC 9113 6.5.2)
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6
ENABLE_CONNECT_PROTOCOL = 0x8

MAX_WINDOW = 2 ** 31 - 1
MIN_MAX_FRAME_SIZE = 2 ** 14
MAX_MAX_FRAME_SIZE = 2 ** 24 - 1
MAX_STREAM_ID = 2 ** 31 - 1

_HEAD = struct.Struct(">IBI")        # length << 8 | type, flags, R + stream id
_U32 = struct.Struct(">I")
_U32X2 = struct.Struct(">II")
_PRIO = struct.Struct(">IB")
_SETTING = struct.Struct(">HI")
_STREAM_MASK = 0x7fffffff


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, "0x%x" % code)


# -- frames ------------------------------------------------------------------------

class Frame:
    """A frame read: ``type``, ``stream_id`` and what its type carries."""

    __slots__ = ("stream_id",)
    type = ERROR

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        attrs = []
        for cls in type(self).__mro__:
            for name in getattr(cls, "__slots__", ()):
                attrs.append("%s=%r" % (name, getattr(self, name)))
        return "<%s %s>" % (type(self).__name__, " ".join(attrs))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return repr(self) == repr(other)

    __hash__ = None  # type: ignore[assignment]


class DataFrame(Frame):
    """DATA (6.1). ``flow_length`` is the payload length padding included,
    what flow control counts."""

    __slots__ = ("data", "end_stream", "flow_length")
    type = DATA

    def __init__(self, stream_id: int, data: bytes, end_stream: bool, flow_length: int) -> None:
        self.stream_id = stream_id
        self.data = data
        self.end_stream = end_stream
        self.flow_length = flow_length


class HeadersFrame(Frame):
    """HEADERS (6.2). ``priority`` is (exclusive, depends_on, weight) or None."""

    __slots__ = ("block", "end_stream", "end_headers", "priority")
    type = HEADERS

    def __init__(
        self, stream_id: int, block: bytes, end_stream: bool, end_headers: bool,
        priority: Optional[Tuple[bool, int, int]] = None,
    ) -> None:
        self.stream_id = stream_id
        self.block = block
        self.end_stream = end_stream
        self.end_headers = end_headers
        self.priority = priority


class PriorityFrame(Frame):
    """PRIORITY (6.3): deprecated by RFC 9113; read and ignored."""

    __slots__ = ("exclusive", "depends_on", "weight")
    type = PRIORITY

    def __init__(self, stream_id: int, exclusive: bool, depends_on: int, weight: int) -> None:
        self.stream_id = stream_id
        self.exclusive = exclusive
        self.depends_on = depends_on
        self.weight = weight


class RstStreamFrame(Frame):
    """RST_STREAM (6.4)."""

    __slots__ = ("error_code",)
    type = RST_STREAM

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id = stream_id
        self.error_code = error_code


class SettingsFrame(Frame):
    """SETTINGS (6.5): ``settings`` in the order sent, as (identifier, value)."""

    __slots__ = ("ack", "settings")
    type = SETTINGS

    def __init__(self, ack: bool, settings: List[Tuple[int, int]]) -> None:
        self.stream_id = 0
        self.ack = ack
        self.settings = settings


class PushPromiseFrame(Frame):
    """PUSH_PROMISE (6.6)."""

    __slots__ = ("promised_stream_id", "block", "end_headers")
    type = PUSH_PROMISE

    def __init__(
        self, stream_id: int, promised_stream_id: int, block: bytes, end_headers: bool,
    ) -> None:
        self.stream_id = stream_id
        self.promised_stream_id = promised_stream_id
        self.block = block
        self.end_headers = end_headers


class PingFrame(Frame):
    """PING (6.7)."""

    __slots__ = ("ack", "data")
    type = PING

    def __init__(self, ack: bool, data: bytes) -> None:
        self.stream_id = 0
        self.ack = ack
        self.data = data


class GoAwayFrame(Frame):
    """GOAWAY (6.8)."""

    __slots__ = ("last_stream_id", "error_code", "debug_data")
    type = GOAWAY

    def __init__(self, last_stream_id: int, error_code: int, debug_data: bytes) -> None:
        self.stream_id = 0
        self.last_stream_id = last_stream_id
        self.error_code = error_code
        self.debug_data = debug_data


class WindowUpdateFrame(Frame):
    """WINDOW_UPDATE (6.9)."""

    __slots__ = ("increment",)
    type = WINDOW_UPDATE

    def __init__(self, stream_id: int, increment: int) -> None:
        self.stream_id = stream_id
        self.increment = increment


class ContinuationFrame(Frame):
    """CONTINUATION (6.10)."""

    __slots__ = ("block", "end_headers")
    type = CONTINUATION

    def __init__(self, stream_id: int, block: bytes, end_headers: bool) -> None:
        self.stream_id = stream_id
        self.block = block
        self.end_headers = end_headers


class UnknownFrame(Frame):
    """A frame of a type this codec does not know (to be ignored)."""

    __slots__ = ("frame_type", "flags", "payload")
    type = UNKNOWN  # frame_type has the type on the wire

    def __init__(self, frame_type: int, flags: int, stream_id: int, payload: bytes) -> None:
        self.stream_id = stream_id
        self.frame_type = frame_type
        self.flags = flags
        self.payload = payload


class ErrorFrame(Frame):
    """A frame that broke the rules: a connection error when
    ``connection`` (the reader has stopped), else an error of stream
    ``stream_id`` only. ``frame_type``: the type of the frame at fault
    (whether a stream error is allowed on an idle stream depends on it)."""

    __slots__ = ("code", "connection", "message", "frame_type")
    type = ERROR

    def __init__(
        self, stream_id: int, code: int, connection: bool, message: str, frame_type: int = -1,
    ) -> None:
        self.stream_id = stream_id
        self.code = code
        self.connection = connection
        self.message = message
        self.frame_type = frame_type


# -- reading -------------------------------------------------------------------------

def _conn_error(code: int, message: str) -> ErrorFrame:
    return ErrorFrame(0, code, True, message)


def _strip_padding(payload: bytes, flags: int, name: str) -> Union[bytes, ErrorFrame]:
    if not flags & PADDED:
        return payload
    if not payload:
        return _conn_error(FRAME_SIZE_ERROR, "padded %s frame without a pad length" % name)
    pad = payload[0]
    if pad >= len(payload):
        return _conn_error(PROTOCOL_ERROR, "%s padding longer than its payload" % name)
    return payload[1:len(payload) - pad]


def _parse_data(flags: int, stream_id: int, payload: bytes) -> Frame:
    if not stream_id:
        return _conn_error(PROTOCOL_ERROR, "DATA frame on stream 0")
    if flags & PADDED:
        data = _strip_padding(payload, flags, "DATA")
        if isinstance(data, ErrorFrame):
            return data
    else:
        data = payload
    return DataFrame(stream_id, data, bool(flags & END_STREAM), len(payload))


def _parse_headers(flags: int, stream_id: int, payload: bytes) -> Frame:
    if not stream_id:
        return _conn_error(PROTOCOL_ERROR, "HEADERS frame on stream 0")
    block = _strip_padding(payload, flags, "HEADERS")
    if isinstance(block, ErrorFrame):
        return block
    priority = None
    if flags & PRIORITY_FLAG:
        if len(block) < 5:
            if len(payload) - (1 if flags & PADDED else 0) >= 5:
                # RFC 9113 6.2: padding eating into the priority fields
                return _conn_error(PROTOCOL_ERROR, "HEADERS padding over its priority")
            return _conn_error(FRAME_SIZE_ERROR, "HEADERS frame too short for its priority")
        dep, weight = _PRIO.unpack_from(block)
        # a stream depending on itself is a stream error, left to the
        # connection: the block must still be decoded, for HPACK's sake
        priority = (bool(dep >> 31), dep & _STREAM_MASK, weight + 1)
        block = block[5:]
    return HeadersFrame(
        stream_id, block, bool(flags & END_STREAM), bool(flags & END_HEADERS), priority)


def _parse_priority(flags: int, stream_id: int, payload: bytes) -> Frame:
    if not stream_id:
        return _conn_error(PROTOCOL_ERROR, "PRIORITY frame on stream 0")
    if len(payload) != 5:
        return ErrorFrame(
            stream_id, FRAME_SIZE_ERROR, False, "PRIORITY frame not 5 octets", PRIORITY)
    dep, weight = _PRIO.unpack(payload)
    depends_on = dep & _STREAM_MASK
    if depends_on == stream_id:
        return ErrorFrame(stream_id, PROTOCOL_ERROR, False, "stream depends on itself", PRIORITY)
    return PriorityFrame(stream_id, bool(dep >> 31), depends_on, weight + 1)


def _parse_rst_stream(flags: int, stream_id: int, payload: bytes) -> Frame:
    if not stream_id:
        return _conn_error(PROTOCOL_ERROR, "RST_STREAM frame on stream 0")
    if len(payload) != 4:
        return _conn_error(FRAME_SIZE_ERROR, "RST_STREAM frame not 4 octets")
    return RstStreamFrame(stream_id, _U32.unpack(payload)[0])


def _parse_settings(flags: int, stream_id: int, payload: bytes) -> Frame:
    if stream_id:
        return _conn_error(PROTOCOL_ERROR, "SETTINGS frame on a stream")
    if flags & ACK:
        if payload:
            return _conn_error(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
        return SettingsFrame(True, [])
    if len(payload) % 6:
        return _conn_error(FRAME_SIZE_ERROR, "SETTINGS frame not a multiple of 6 octets")
    settings = [s for s in _SETTING.iter_unpack(payload)]
    for ident, value in settings:
        if ident == ENABLE_PUSH and value > 1:
            return _conn_error(PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH not 0 or 1")
        if ident == INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
            return _conn_error(FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1")
        if ident == MAX_FRAME_SIZE and not MIN_MAX_FRAME_SIZE <= value <= MAX_MAX_FRAME_SIZE:
            return _conn_error(PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
        if ident == ENABLE_CONNECT_PROTOCOL and value > 1:
            return _conn_error(PROTOCOL_ERROR, "SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1")
    return SettingsFrame(False, settings)


def _parse_push_promise(flags: int, stream_id: int, payload: bytes) -> Frame:
    if not stream_id:
        return _conn_error(PROTOCOL_ERROR, "PUSH_PROMISE frame on stream 0")
    block = _strip_padding(payload, flags, "PUSH_PROMISE")
    if isinstance(block, ErrorFrame):
        return block
    if len(block) < 4:
        return _conn_error(FRAME_SIZE_ERROR, "PUSH_PROMISE frame too short")
    promised = _U32.unpack_from(block)[0] & _STREAM_MASK
    return PushPromiseFrame(stream_id, promised, block[4:], bool(flags & END_HEADERS))


def _parse_ping(flags: int, stream_id: int, payload: bytes) -> Frame:
    if stream_id:
        return _conn_error(PROTOCOL_ERROR, "PING frame on a stream")
    if len(payload) != 8:
        return _conn_error(FRAME_SIZE_ERROR, "PING frame not 8 octets")
    return PingFrame(bool(flags & ACK), payload)


def _parse_goaway(flags: int, stream_id: int, payload: bytes) -> Frame:
    if stream_id:
        return _conn_error(PROTOCOL_ERROR, "GOAWAY frame on a stream")
    if len(payload) < 8:
        return _conn_error(FRAME_SIZE_ERROR, "GOAWAY frame shorter than 8 octets")
    last, code = _U32X2.unpack_from(payload)
    return GoAwayFrame(last & _STREAM_MASK, code, payload[8:])


def _parse_window_update(flags: int, stream_id: int, payload: bytes) -> Frame:
    if len(payload) != 4:
        return _conn_error(FRAME_SIZE_ERROR, "WINDOW_UPDATE frame not 4 octets")
    increment = _U32.unpack(payload)[0] & _STREAM_MASK
    if not increment:
        if stream_id:
            return ErrorFrame(
                stream_id, PROTOCOL_ERROR, False, "WINDOW_UPDATE of 0", WINDOW_UPDATE)
        return _conn_error(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
    return WindowUpdateFrame(stream_id, increment)


def _parse_continuation(flags: int, stream_id: int, payload: bytes) -> Frame:
    if not stream_id:
        return _conn_error(PROTOCOL_ERROR, "CONTINUATION frame on stream 0")
    return ContinuationFrame(stream_id, payload, bool(flags & END_HEADERS))


_PARSERS = (
    _parse_data, _parse_headers, _parse_priority, _parse_rst_stream, _parse_settings,
    _parse_push_promise, _parse_ping, _parse_goaway, _parse_window_update,
    _parse_continuation,
)


def parse_frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> Frame:
    """The frame of that type, or an ErrorFrame (see the module docstring)."""
    if frame_type < 10:
        return _PARSERS[frame_type](flags, stream_id, payload)
    return UnknownFrame(frame_type, flags, stream_id, payload)


class FrameReader:
    """Reads frames from one peer's bytes (after the connection preface).

    ``max_frame_size`` is the largest payload accepted (the
    SETTINGS_MAX_FRAME_SIZE we announced); it may be changed between
    feeds. ``failed``: a connection error was returned; nothing more will be.
    """

    __slots__ = ("_buf", "max_frame_size", "failed")

    def __init__(self, max_frame_size: int = MIN_MAX_FRAME_SIZE) -> None:
        self._buf = bytearray()
        self.max_frame_size = max_frame_size
        self.failed = False

    @property
    def buffered(self) -> int:
        """How many octets of an incomplete frame are held."""
        return len(self._buf)

    def feed(self, data: bytes) -> List[Frame]:
        """The frames ``data`` completes (with what came before), in order."""
        if self.failed:
            return []
        buf = self._buf
        if buf:
            buf += data
            view: Union[bytes, bytearray] = buf
        else:
            view = data
        frames: List[Frame] = []
        append = frames.append
        pos = 0
        end = len(view)
        limit = self.max_frame_size
        unpack = _HEAD.unpack_from
        parsers = _PARSERS
        while end - pos >= 9:
            length_type, flags, stream_id = unpack(view, pos)
            length = length_type >> 8
            if length > limit:
                append(_conn_error(
                    FRAME_SIZE_ERROR, "frame of %d octets over the limit of %d" % (length, limit)))
                self.failed = True
                buf.clear()
                return frames
            stop = pos + 9 + length
            if stop > end:
                break
            frame_type = length_type & 0xff
            payload = bytes(view[pos + 9:stop])
            stream_id &= _STREAM_MASK
            if frame_type < 10:
                frame = parsers[frame_type](flags, stream_id, payload)
            else:
                frame = UnknownFrame(frame_type, flags, stream_id, payload)
            append(frame)
            pos = stop
            if frame.type == ERROR and frame.stream_id == 0:
                self.failed = True
                buf.clear()
                return frames
        if buf:
            del buf[:pos]
        elif pos < end:
            buf += view[pos:]
        return frames


# -- writing -------------------------------------------------------------------------

def _head(length: int, frame_type: int, flags: int, stream_id: int) -> bytes:
    return _HEAD.pack((length << 8) | frame_type, flags, stream_id)


def _check_stream(stream_id: int, allow_zero: bool = False) -> None:
    if not 0 <= stream_id <= MAX_STREAM_ID or (stream_id == 0 and not allow_zero):
        raise ValueError("bad stream id %r" % stream_id)


def _pad_parts(pad: int) -> Tuple[int, bytes, bytes]:
    """(flag, pad length octet, padding) for ``pad`` octets of padding (0: none)."""
    if not pad:
        return 0, b"", b""
    if not 1 <= pad <= 256:
        raise ValueError("padding must be 1 to 256 octets (pad length + padding)")
    return PADDED, bytes((pad - 1,)), bytes(pad - 1)


def data_frame(
    stream_id: int, data: Union[bytes, memoryview], end_stream: bool = False, pad: int = 0,
) -> bytes:
    """A DATA frame. ``pad``: octets of padding overhead (pad length octet
    included), counted by flow control."""
    _check_stream(stream_id)
    flag, pad_len, padding = _pad_parts(pad)
    length = len(data) + pad
    return b"".join((
        _head(length, DATA, flag | (END_STREAM if end_stream else 0), stream_id),
        pad_len, data, padding,
    ))


def headers_frames(
    stream_id: int, block: bytes, end_stream: bool = False,
    max_frame_size: int = MIN_MAX_FRAME_SIZE,
    priority: Optional[Tuple[bool, int, int]] = None, pad: int = 0,
) -> bytes:
    """HEADERS, and CONTINUATION frames when ``block`` does not fit in one
    frame of ``max_frame_size``. ``priority``: (exclusive, depends_on, weight 1-256)."""
    _check_stream(stream_id)
    flag, pad_len, padding = _pad_parts(pad)
    flags = flag | (END_STREAM if end_stream else 0)
    prio = b""
    if priority is not None:
        exclusive, depends_on, weight = priority
        _check_stream(depends_on, allow_zero=True)
        if not 1 <= weight <= 256:
            raise ValueError("weight must be 1 to 256")
        prio = _PRIO.pack(depends_on | (0x80000000 if exclusive else 0), weight - 1)
        flags |= PRIORITY_FLAG
    room = max_frame_size - pad - len(prio)
    if room < 0:
        raise ValueError("padding and priority do not fit in a frame")
    first = block[:room]
    rest = block[room:]
    if not rest:
        flags |= END_HEADERS
    parts = [
        _head(len(first) + pad + len(prio), HEADERS, flags, stream_id),
        pad_len, prio, first, padding,
    ]
    _continuations(parts, stream_id, rest, max_frame_size)
    return b"".join(parts)


def _continuations(parts: List[bytes], stream_id: int, rest: bytes, max_frame_size: int) -> None:
    while rest:
        chunk = rest[:max_frame_size]
        rest = rest[max_frame_size:]
        parts.append(_head(len(chunk), CONTINUATION, 0 if rest else END_HEADERS, stream_id))
        parts.append(chunk)


def continuation_frame(stream_id: int, block: bytes, end_headers: bool = True) -> bytes:
    """One CONTINUATION frame."""
    _check_stream(stream_id)
    return _head(len(block), CONTINUATION, END_HEADERS if end_headers else 0, stream_id) + block


def priority_frame(stream_id: int, depends_on: int, weight: int = 16, exclusive: bool = False) -> bytes:
    """A PRIORITY frame."""
    _check_stream(stream_id)
    _check_stream(depends_on, allow_zero=True)
    if not 1 <= weight <= 256:
        raise ValueError("weight must be 1 to 256")
    return _head(5, PRIORITY, 0, stream_id) + _PRIO.pack(
        depends_on | (0x80000000 if exclusive else 0), weight - 1)


def rst_stream_frame(stream_id: int, error_code: int) -> bytes:
    """An RST_STREAM frame."""
    _check_stream(stream_id)
    return _head(4, RST_STREAM, 0, stream_id) + _U32.pack(error_code)


def settings_frame(settings: Sequence[Tuple[int, int]] = (), ack: bool = False) -> bytes:
    """A SETTINGS frame (an acknowledgement when ``ack``, with no settings)."""
    if ack:
        if settings:
            raise ValueError("a SETTINGS acknowledgement carries no settings")
        return _head(0, SETTINGS, ACK, 0)
    payload = b"".join(_SETTING.pack(ident, value) for ident, value in settings)
    return _head(len(payload), SETTINGS, 0, 0) + payload


def push_promise_frames(
    stream_id: int, promised_stream_id: int, block: bytes,
    max_frame_size: int = MIN_MAX_FRAME_SIZE, pad: int = 0,
) -> bytes:
    """PUSH_PROMISE (with CONTINUATION as needed). thor never pushes; this
    is here for tests and completeness."""
    _check_stream(stream_id)
    _check_stream(promised_stream_id)
    flag, pad_len, padding = _pad_parts(pad)
    room = max_frame_size - pad - 4
    first = block[:room]
    rest = block[room:]
    parts = [
        _head(len(first) + pad + 4, PUSH_PROMISE, flag | (0 if rest else END_HEADERS), stream_id),
        pad_len, _U32.pack(promised_stream_id), first, padding,
    ]
    _continuations(parts, stream_id, rest, max_frame_size)
    return b"".join(parts)


def ping_frame(data: bytes, ack: bool = False) -> bytes:
    """A PING frame; ``data`` is 8 octets."""
    if len(data) != 8:
        raise ValueError("PING data must be 8 octets")
    return _head(8, PING, ACK if ack else 0, 0) + data


def goaway_frame(last_stream_id: int, error_code: int, debug_data: bytes = b"") -> bytes:
    """A GOAWAY frame."""
    _check_stream(last_stream_id, allow_zero=True)
    return _head(8 + len(debug_data), GOAWAY, 0, 0) + _U32X2.pack(
        last_stream_id, error_code) + debug_data


def window_update_frame(stream_id: int, increment: int) -> bytes:
    """A WINDOW_UPDATE frame (``stream_id`` 0: the connection's window)."""
    _check_stream(stream_id, allow_zero=True)
    if not 1 <= increment <= MAX_WINDOW:
        raise ValueError("window increment must be 1 to 2^31-1")
    return _head(4, WINDOW_UPDATE, 0, stream_id) + _U32.pack(increment)
