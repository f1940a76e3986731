"""HTTP/1 output, both sides: how thor frames what it sends.

Owns, for the server's responses, the client's requests and so the proxy:

* body framing (RFC 9112 6): a ``BodyWriter`` per framing, with
  ``chunk(data) -> bytes`` (the bytes to send for a piece of the body) and
  ``end(trailers) -> bytes`` (the bytes that end it). The framings are the
  parser's (thor.http.parser: NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE), so
  both directions speak of framing in one vocabulary;
* the trailer rule (``trailer_section``): which fields may go in a trailer
  section, RFC 9110 6.5.1 as thor.http.headers.TRAILER_FORBIDDEN says;
* the Content-Length check for what the application passes
  (``check_content_length``);
* the hand-off of a connection to the application after a protocol switch
  (``hand_over``: CONNECT, 101).

Theory of operation
-------------------
A writer is chosen once, when the head is written, and the exchange calls
its bound ``chunk`` for every piece of the body: framing costs one call,
and the exchange never branches on the framing again. Only a
Content-Length body has state (the bytes still owed), so only it is a new
object per message; the other writers are shared, stateless singletons.
A writer never writes: it returns bytes, and the exchange sends (or
gathers, or buffers before a connection exists) them as it does for its
head, so one hello-world response still goes out in one send.

Connection-token parsing, which framing and persistence also depend on,
is thor.http.headers.field_tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thor.http.error import BadHeaderError, BodyLengthError, detail_text
from thor.http.headers import (
    TRAILER_FORBIDDEN, encode_field_name, encode_field_value,
)
from thor.http.parser import CHUNKED, LENGTH, NO_BODY, UNTIL_CLOSE

if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Optional, Tuple

    from thor.http.parser import HttpParser
    from thor.tcp import TcpConnection

__all__ = [
    "NO_BODY", "LENGTH", "CHUNKED", "UNTIL_CLOSE",
    "BodyWriter", "LengthWriter", "NO_BODY_WRITER", "CHUNKED_WRITER", "CLOSE_WRITER",
    "encode_chunk", "trailer_section", "check_content_length", "hand_over",
]

_LAST_CHUNK = b"0\r\n\r\n"


def encode_chunk(data: bytes) -> bytes:
    """``data`` (not empty) as one chunk of a chunked body (RFC 9112 7.1)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def trailer_section(trailers: Optional[Iterable[Any]] = None) -> bytes:
    """The last chunk and the trailer section for ``trailers`` ((name,
    value) fields, str or bytes): every field is checked (BadHeaderError,
    TypeError), and those that RFC 9110 6.5.1 keeps out of trailers
    (framing, routing, connection, request modifiers, authentication,
    content format: TRAILER_FORBIDDEN) are dropped."""
    if not trailers:
        return _LAST_CHUNK
    lines = [b"0\r\n"]
    for field in trailers:
        if isinstance(field, (str, bytes)):  # would unpack as two characters
            raise BadHeaderError("a field is a (name, value) tuple: %r" % (field,))
        try:
            name, value = field
        except (TypeError, ValueError):
            raise BadHeaderError("a field is a (name, value) tuple: %r" % (field,)) from None
        raw = encode_field_name(name)
        try:
            encoded = encode_field_value(value)
        except BadHeaderError as err:
            raise BadHeaderError("%s: %s" % (raw.decode("latin-1"), err.detail)) from None
        if raw.lower() not in TRAILER_FORBIDDEN:
            lines.append(raw + b": " + encoded + b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def check_content_length(value: bytes, previous: Optional[int] = None) -> int:
    """The Content-Length an application gave (a checked field value), as
    an int; BadHeaderError unless it is 1-18 ASCII digits, or if it
    differs from ``previous`` (another Content-Length field of the head)."""
    # bytes.isdigit: ASCII digits only; 18 digits keep it a machine int.
    if not value.isdigit() or len(value) > 18:
        raise BadHeaderError("Content-Length must be digits: %s" % detail_text(value))
    length = int(value)
    if previous is not None and length != previous:
        raise BadHeaderError("conflicting Content-Length values")
    return length


class BodyWriter:
    """Frames a body that has none (HEAD, 1xx, 204, 304, a tunnel's 2xx,
    a bodiless request): pieces given are not sent (``chunk`` returns
    b""), and nothing ends it; trailers are checked and dropped.

    The subclasses frame the others; ``framing`` says which."""

    __slots__ = ()

    framing = NO_BODY

    def chunk(self, data: bytes) -> bytes:
        """The bytes to send for ``data`` (bytes, not empty)."""
        return b""

    def end(self, trailers: Optional[Iterable[Any]] = None) -> bytes:
        """The bytes that end the body (``trailers`` go out only with a
        chunked one; they are checked whatever the framing). Raises
        BodyLengthError if a Content-Length body is short, and
        BadHeaderError for a bad trailer field, having changed nothing."""
        if trailers:
            trailer_section(trailers)
        return b""


class LengthWriter(BodyWriter):
    """A body of ``length`` bytes (Content-Length); ``left`` are still owed.

    ``chunk`` raises BodyLengthError, and sends nothing of it, for a piece
    that would go beyond the length; ``end`` raises it for a short body."""

    __slots__ = ("left",)

    framing = LENGTH

    def __init__(self, length: int) -> None:
        self.left = length

    def chunk(self, data: bytes) -> bytes:
        left = self.left - len(data)
        if left < 0:
            raise BodyLengthError(
                "body longer than its Content-Length (%d bytes over)" % -left)
        self.left = left
        return data

    def end(self, trailers: Optional[Iterable[Any]] = None) -> bytes:
        if trailers:
            trailer_section(trailers)
        if self.left:
            raise BodyLengthError(
                "body %d bytes shorter than its Content-Length" % self.left)
        return b""


class _ChunkedWriter(BodyWriter):
    """A chunked body (HTTP/1.1, no Content-Length): each piece one chunk;
    the end is the last chunk and the trailer section."""

    __slots__ = ()

    framing = CHUNKED

    # The functions themselves: no call in between on the hot path.
    chunk = staticmethod(encode_chunk)
    end = staticmethod(trailer_section)


class _CloseWriter(BodyWriter):
    """A body that runs to the close of the connection (an HTTP/1.0
    client with no Content-Length given): sent as it is; the caller
    closes the connection to end it."""

    __slots__ = ()

    framing = UNTIL_CLOSE

    def chunk(self, data: bytes) -> bytes:
        return data


NO_BODY_WRITER = BodyWriter()
CHUNKED_WRITER: BodyWriter = _ChunkedWriter()
CLOSE_WRITER: BodyWriter = _CloseWriter()


def hand_over(
    tcp: TcpConnection, parser: HttpParser,
    listeners: Iterable[Tuple[str, Callable[..., Any]]],
) -> Tuple[TcpConnection, bytes]:
    """Give ``tcp`` to the application after a protocol switch (a 2xx to
    CONNECT, a 101): HTTP's ``listeners`` ((event, listener) pairs) come
    off, input is paused until the new owner resumes it, and what the
    parser had read past the message is returned with it."""
    for event, listener in listeners:
        tcp.removeListener(event, listener)
    tcp.pause(True)
    return tcp, parser.leftover()
