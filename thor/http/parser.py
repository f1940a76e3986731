"""Sans-I/O HTTP/1.1 message framing (RFC 9112): bytes in, delegate calls out.

``HttpParser`` owns everything between the bytes a connection reads and the
messages it hands on: start lines, field sections (obs-fold unfolded),
framing (Content-Length, chunked, close-delimited, no body), trailers,
pipelining, and the end of input. It never touches a socket or a loop; its
owner calls ``feed()`` with what it read and ``finish()`` when the peer
closed, and the parser calls its delegate:

    on_request_head(method, target, headers)         server side
    on_response_nonfinal(status, phrase, headers)     client side, 1xx but 101
    on_response_head(status, phrase, headers)         client side, final or 101
    on_body(chunk)
    on_message_done(trailers)
    on_error(err)                                     once; then nothing more

(``ParserDelegate`` is that interface, as a typing Protocol.) The parser
also says how long each message was on the wire: ``head_length`` and
``transfer_length``, for a client's ``input_header_length`` and
``input_transfer_length``.

Anything RFC 9112 / 9110 say to reject is reported through ``on_error``
with a ``thor.http.error`` class whose ``server_status`` is the answer; see
that module's docstring for the list. Errors are sticky.

Results never depend on how the input is split: every check is made on a
line once the line is complete, lines are checked in order, and a limit
trips at a fixed byte position, so the first problem in byte order is the
one reported, whether the input arrives at once or a byte at a time.

Memory is bounded whatever arrives: a head may not exceed
``max_start_line + max_field_section`` (plus line ends), a chunk-size line
``16 + max_chunk_ext``, a trailer section ``max_trailer_section``; body
bytes are handed on as they arrive, never gathered; parsed input is
dropped once it outweighs the unparsed rest. Bytes fed while the parser is
paused are kept (``buffered`` tells how many): an owner that pauses should
also stop reading.

Where a request goes must read one way only: the Host value must be
``uri-host [":" port]``, an http(s) absolute-form target needs a host and
no userinfo (RFC 9110 4.2.1, 4.2.4), a CONNECT target a port of 1-65535
and no content (RFC 9110 9.3.6).

Structure: ``feed`` calls the reader of the parser's state (``_READERS``,
one per state, as in h11's reader table) until the input runs out or the
owner pauses. A head's framing is decided by ``request_framing`` or
``response_framing``, pure functions that hold every framing and
request-smuggling rule; ``_start_body`` starts the body they chose and
``_message_done`` ends each message.

Speed: a common head that arrives whole (strict mode, origin-form or a
final status, at most one field of each kind that steers framing) takes a
fast path: a head seen before is one look-up (``_read_head``), another
``_quick_head``, which remembers the lines it has checked; it must reach
exactly the results of the general path, which it leaves anything else
to, errors included. The tests feed every case whole (fast) and a byte at
a time (general) and demand the same.

Leniency: ``lenient_bare_lf`` accepts a bare LF as the end of a start line
or field line (RFC 9112 2.2 lets a recipient do so); it does not apply to
chunk-size lines or chunk-data ends. A bare CR is always an error.
"""

from __future__ import annotations

from collections import deque
import re
from typing import (
    TYPE_CHECKING, Any, Callable, Collection, Deque, Dict, List, Optional, Protocol, Tuple, Type,
    Union, overload,
)

from thor.http.error import (
    HttpError, StartLineError, RequestLineError, HttpVersionError, UriTooLongError,
    StartLineTooLongError, HeaderSpaceError, TopLineSpaceError,
    HeaderNameError, HeaderValueError, HeaderNoColonError, BareCRError,
    HeaderLineEndingError, ObsoleteFoldError,
    FieldSectionTooLargeError, TooManyFieldsError, HostRequiredError, InvalidHostError,
    MalformedCLError, DuplicateCLError, CLTEError, BadTransferCodeError,
    RequestTransferEncodingError, TransferCodeError, ChunkError, ChunkTerminatorError,
    ChunkExtTooLargeError, TrailerTooLargeError, IncompleteHeadError,
    IncompleteBodyError, ExtraDataError, detail_text,
)
from thor.http.headers import TCHAR, CTL_EXCEPT_HTAB, TRAILER_FORBIDDEN, field_tokens, is_token

if TYPE_CHECKING:
    from typing import Literal

    from thor.types import RawHeaderListType

    _Buffer = Union[bytes, bytearray]
    _Field = Tuple[bytes, bytes]
    # ((name, value), special kind or None, what it says: see _field_entry)
    _Entry = Tuple[_Field, Optional[int], Any]
    _StartLine = Tuple[bytes, bytes, bytes]
    _Specials = List[Tuple[int, int]]
    _KnownRequest = Tuple[
        bytes, bytes, Tuple[_Field, ...], bytes, bool, bool, bool, int, Optional[int],
        int, int, int, int,
    ]
    _KnownResponse = Tuple[
        bytes, bytes, Tuple[_Field, ...], bytes, bool, bool, int, Optional[int], int, int,
        int, int,
    ]

__all__ = [
    "HttpParser", "ParserDelegate", "NO_BODY", "LENGTH", "CHUNKED", "UNTIL_CLOSE",
    "request_framing", "response_framing",
]

# How the body of the current message is framed (HttpParser.body; what
# request_framing and response_framing decide).
NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = 0, 1, 2, 3

# Parser states: what the parser reads next. Each has one reader
# (HttpParser._read_*, in _READERS), which feed's loop calls in turn.
# A request parser's _expected: nothing is ever kept in it (maxlen 0).
_NO_RESPONSES: Deque[bytes] = deque(maxlen=0)

_HEAD = 0         # a message head (after a 1xx head, the next one)
_BODY = 1         # a Content-Length body: _remaining bytes of it left
_UNTIL_CLOSE = 2  # a body that runs to the end of input
_CHUNK_SIZE = 3   # a chunk-size line
_CHUNK_DATA = 4   # chunk data: _remaining bytes of it left
_CHUNK_END = 5    # the CRLF that ends chunk data
_TRAILERS = 6     # the trailer section
_DONE = 7         # the message is complete; on_message_done is yet to come
_FAILED = 8       # an error was reported: nothing more, ever

_OWS = b" \t"
_HEX = b"0123456789abcdefABCDEF"
_VERSIONS = {b"HTTP/1.1": b"1.1", b"HTTP/1.0": b"1.0"}
_METHODS = frozenset((
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS",
    b"TRACE", b"PATCH",
))
_SCHEME_CHARS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-."
# RFC 3986 3.2.2: reg-name is unreserved / pct-encoded / sub-delims; an
# IP-literal between brackets takes those and ":" (IPv6, IPvFuture);
# userinfo (3.2.1) takes those and ":".
_ALNUM = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_HOST_COMMON = _ALNUM + b"-."  # what nearly every host name is made of
_REG_NAME_CHARS = _ALNUM + b"-._~!$&'()*+,;=%"
_LITERAL_CHARS = _REG_NAME_CHARS + b":"
_PCT_OK = re.compile(rb"(?:[^%]|%[0-9A-Fa-f]{2})*")
# Where the authority of an absolute URI ends (RFC 3986 3.2).
_AUTHORITY_END = re.compile(rb"[/?#]")

# Fields whose values decide framing or connection handling, by kind.
_HOST, _CONNECTION, _CONTENT_LENGTH, _TRANSFER_ENCODING, _EXPECT, _UPGRADE = range(6)
_SPECIAL = {
    b"host": _HOST, b"connection": _CONNECTION, b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING, b"expect": _EXPECT, b"upgrade": _UPGRADE,
}

# RFC 9112 7.1.1: chunk-ext, everything after the chunk-size digits. Used
# only when a chunk-size line carries more than hex digits.
_TOKEN_RE = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED_RE = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_EXT = re.compile(
    rb"(?:[ \t]*;[ \t]*%s(?:[ \t]*=[ \t]*(?:%s|%s))?)*" % (_TOKEN_RE, _TOKEN_RE, _QUOTED_RE)
)

# What is wrong with a line (HttpParser._line_error).
_BARE_CR, _BARE_LF, _CONTROL = range(3)

# The end of a head (or trailer section) when a bare LF ends lines.
_LENIENT_END = re.compile(rb"\n\r?\n")

# Up to this many empty lines before a request line are ignored
# (RFC 9112 2.2 asks for at least one); more is not a client being careless.
_MAX_EMPTY_LINES = 10

# Received field names already checked, mapped to their lower-case form.
# Peers send a few dozen distinct names; the bounds keep hostile ones from
# growing it.
_names: Dict[bytes, bytes] = {}
_NAMES_MAX = 1024
_NAME_CACHE_LEN = 64
for _name in (
    b"Host", b"User-Agent", b"Accept", b"Accept-Language", b"Accept-Encoding",
    b"Connection", b"Content-Length", b"Content-Type", b"Transfer-Encoding",
    b"Cookie", b"Referer", b"Cache-Control", b"Date", b"Server", b"Expect",
    b"Upgrade", b"Authorization", b"If-None-Match", b"If-Modified-Since",
    b"ETag", b"Last-Modified", b"Location", b"Set-Cookie", b"Vary",
    b"Content-Encoding", b"Keep-Alive", b"Range", b"Origin",
):
    _names[_name] = _name.lower()
    _names[_name.lower()] = _name.lower()
del _name


# The fast path's memory (see HttpParser._quick_head) of lines it checked:
# a line is a key only once it passed every check the general path makes
# of such a line, and keys compare byte for byte, so a hit needs no check.
# Lines repeat across requests on a connection and across connections
# (Host, User-Agent, Accept, the start line of a client polling one URL).
# Each cache is cleared when full, so that changing lines (Date) and
# hostile ones cannot lock the common ones out for good; lines longer than
# _LINE_CACHE_LEN (User-Agent strings run to about 200 bytes) are checked
# each time. Bounds: 3 * 1024 + 256 lines of at most 256 bytes, with what
# they map to, about 2 MB at worst.
#   _plain_lines:   field line -> (name, value), for fields of no special kind
#   _special_lines: field line -> ((name, value), kind, what it says)
#   _request_lines: request line -> (method, target, version)
#   _status_lines:  status line -> (version, status, phrase)
_plain_lines: Dict[bytes, _Field] = {}
_special_lines: Dict[bytes, _Entry] = {}
_request_lines: Dict[bytes, _StartLine] = {}
_status_lines: Dict[bytes, _StartLine] = {}
_LINES_MAX = 1024
_STATUS_LINES_MAX = 256
_LINE_CACHE_LEN = 256
# And of whole request heads (the bytes before the empty line) it accepted:
# a client sends the same head again and again on a connection (a poller, a
# load tester, a browser fetching assets), so a repeat is one look-up.
#   _request_heads: head -> (method, target, headers (copied out), version,
#                            close, expect_continue, upgrade, body,
#                            content_length, start line length, line count)
# The last two are checked against this parser's limits on a hit, unless its
# limits hold any head that is cached (_cache_fits). Bounds: 256 heads of at
# most 1024 bytes and 101 lines with what they map to, about 1 MB at worst.
_request_heads: Dict[bytes, _KnownRequest] = {}
# The same for response heads, for a client fetching from one origin: only
# for requests whose method does not change the framing (not HEAD or
# CONNECT), so that the head alone decides what it means.
#   _response_heads: head -> (status, phrase, headers (copied out), version,
#                             close, upgrade, body, content_length,
#                             start line length, line count)
_response_heads: Dict[bytes, _KnownResponse] = {}
_HEADS_MAX = 256
_HEAD_CACHE_LEN = 1024
_HEAD_CACHE_LINES = 101  # the default max_fields, and the start line
# What resume() and finish() feed: no input, just the parser's loop.
_CARRY_ON: Any = object()
# What an origin-form target may hold (RFC 9112 3.2 with RFC 3986; HTAB
# and obs-text are left to the general path): visible ASCII.
_VCHAR = bytes(range(0x21, 0x7F))

def _remember(cache: Dict[bytes, Any], line: bytes, value: Any, most: int) -> None:
    if len(line) <= _LINE_CACHE_LEN:
        if len(cache) >= most:
            cache.clear()
        cache[line] = value


def _field_entry(line: bytes) -> Optional[_Entry]:
    """((name, value), special kind or None, what it says) for a field
    line, remembered; None if the general path must look at it (anything
    it might reject, or an obs-fold)."""
    name, colon, value = line.partition(b":")
    low = _names.get(name)
    if low is None:
        if not colon or not name or name.translate(None, TCHAR):
            return None  # no colon, a bad name, or an obs-fold
        low = _field_name(name)
    elif not colon:
        return None
    if len(value.translate(None, CTL_EXCEPT_HTAB)) != len(value):
        return None  # a bare CR or LF, or another control character
    pair = (name, value.rstrip(_OWS))
    meaning: Any
    kind = _SPECIAL.get(low)
    if kind is None:
        _remember(_plain_lines, line, pair, _LINES_MAX)
        return pair, None, None
    # What the field says, read as _request_head / _response_head read it
    # when it is the only one of its kind. Content-Length and
    # Transfer-Encoding say nothing here: their values go to the framing
    # functions, as the general path's do.
    value = pair[1]
    if kind == _HOST:
        host = value.strip(_OWS)
        meaning = not host.translate(None, _HOST_COMMON) or _host_port(host) is not None
    elif kind == _CONNECTION:
        meaning = frozenset(_tokens([value]))
    elif kind == _EXPECT:
        meaning = b"100-continue" in _tokens([value])
    else:  # Content-Length, Transfer-Encoding, Upgrade (only its presence counts)
        meaning = None
    entry = (pair, kind, meaning)
    _remember(_special_lines, line, entry, _LINES_MAX)
    return entry

def _field_name(name: bytes) -> bytes:
    """Lower-case ``name``, or raise if it is not a token."""
    if not name:
        raise HeaderNameError("empty field name")
    if name.translate(None, TCHAR):
        if name[-1] in (32, 9):
            raise HeaderSpaceError(detail_text(name))  # the name, as Thor 0.17 gives it
        raise HeaderNameError(detail_text(name))
    low = name.lower()
    if len(_names) < _NAMES_MAX and len(name) <= _NAME_CACHE_LEN:
        _names[name] = low
    return low


def _tokens(values: Optional[List[bytes]]) -> Collection[bytes]:
    """The lower-cased members of comma-separated list fields (None: no
    such field): thor.http.headers.field_tokens, thor's one reading."""
    if values is None:
        return ()
    return field_tokens(values)


def _content_length(values: List[bytes]) -> int:
    """RFC 9110 8.6: 1*DIGIT; a list or repeats only of the same value."""
    if len(values) == 1:
        value = values[0].strip(_OWS)
        if value.isdigit() and len(value) <= 18:
            return int(value)
    first: Optional[bytes] = None
    for value in values:
        for item in value.split(b","):
            item = item.strip(_OWS)
            # 18 digits stay below 2**63 (no overflow anywhere downstream).
            if not item.isdigit() or len(item) > 18:
                raise MalformedCLError(detail_text(item))
            if first is None:
                first = item
            elif item != first:
                raise DuplicateCLError("%s and %s" % (detail_text(first), detail_text(item)))
    return int(first)  # type: ignore[arg-type]  # values is never empty


def _host_port(value: bytes) -> Optional[Tuple[bytes, Optional[bytes]]]:
    """(host, port) from ``uri-host [":" port]`` (RFC 3986 3.2.2, 3.2.3);
    port is None without a colon, and may be b"" (port = *DIGIT). None if
    ``value`` is not one: a stray colon or bracket, a bad character, a
    broken %-escape."""
    port: Optional[bytes]
    if value[:1] == b"[":
        close = value.find(b"]")
        if close < 2:
            return None
        host = value[:close + 1]
        rest = value[close + 1:]
        if host[1:-1].translate(None, _LITERAL_CHARS):
            return None
        if rest:
            if rest[0] != 58:
                return None
            port = rest[1:]
        else:
            port = None
    else:
        host, colon, port = value.partition(b":")
        if host.translate(None, _REG_NAME_CHARS):
            return None
        if not colon:
            port = None
    if port and not port.isdigit():
        return None
    if b"%" in host and not _PCT_OK.fullmatch(host):
        return None
    return host, port


def _transfer_codings(values: List[bytes]) -> List[bytes]:
    """The lower-cased coding names of all Transfer-Encoding fields, in order."""
    if len(values) == 1 and values[0].strip(_OWS) == b"chunked":
        return [b"chunked"]  # nearly always
    names = []
    for value in values:
        for item in value.split(b","):
            item = item.strip(_OWS)
            if not item:
                continue
            name, semicolon, _ = item.partition(b";")
            name = name.rstrip(_OWS).lower()
            if not is_token(name):
                raise BadTransferCodeError("invalid coding %s" % detail_text(item))
            if semicolon and name == b"chunked":
                raise BadTransferCodeError("chunked takes no parameters")
            names.append(name)
    if not names:
        raise BadTransferCodeError("empty Transfer-Encoding")
    return names


def _http_version(version: bytes, later_minor_ok: bool = False) -> bytes:
    """b"1.1" for a version not spelt exactly HTTP/1.0 or HTTP/1.1 that is
    still one: a response of a later HTTP/1.x reads as 1.1 (RFC 9110 2.5),
    since the client cannot answer it; a request must be HTTP/1.0 or
    HTTP/1.1. Otherwise HttpVersionError (505) for a well-formed version
    of HTTP or of another protocol (ICY/1.1, as Thor 0.17), or
    StartLineError for one that is not protocol "/" DIGIT "." DIGIT."""
    name, slash, number = version.partition(b"/")
    if (
        slash and len(number) == 3 and 48 <= number[0] <= 57 and number[1] == 46
        and 48 <= number[2] <= 57 and is_token(name)
    ):
        if name == b"HTTP" and number[0] == 49 and later_minor_ok:
            return b"1.1"
        raise HttpVersionError(detail_text(version))
    raise StartLineError("bad HTTP version %s" % detail_text(version))


# -- framing -------------------------------------------------------------------
#
# How a message's body is delimited (RFC 9112 6.1-6.3) is decided here and
# nowhere else: the fast path (_quick_head) and the general one
# (_request_head / _response_head) both ask these two functions, so the
# rules that keep two parsers in a chain from reading the same bytes
# differently (request smuggling) exist once.


def request_framing(
    method: bytes, version: bytes, lengths: Optional[List[bytes]],
    codings: Optional[List[bytes]],
) -> Tuple[int, Optional[int]]:
    """How the body of a request is framed: (NO_BODY, None), (LENGTH, n)
    or (CHUNKED, None). ``version`` is b"1.0" or b"1.1"; ``lengths`` and
    ``codings`` are the values of its Content-Length and Transfer-Encoding
    fields in order (None without any).

    Framing a server cannot be sure of raises the HttpError to refuse the
    request with (its ``server_status``): Transfer-Encoding in HTTP/1.0 or
    on CONNECT, or beside Content-Length (CL.TE, TE.CL), a final coding
    that is not chunked or chunked twice (TE.TE), Content-Length values
    that differ or are not digits (CL.CL), content on CONNECT; a coding
    other than chunked is not implemented (501)."""
    if codings is not None:
        if version == b"1.0":
            raise BadTransferCodeError("Transfer-Encoding in HTTP/1.0")
        if method == b"CONNECT":
            # RFC 9110 9.3.6: a CONNECT request has no content; what
            # follows its head is for the tunnel.
            raise BadTransferCodeError("Transfer-Encoding on CONNECT")
        if lengths is not None:
            raise CLTEError()
        names = _transfer_codings(codings)
        if names[-1] != b"chunked":
            raise RequestTransferEncodingError("chunked is not the final coding")
        if names.count(b"chunked") > 1:
            raise BadTransferCodeError("chunked more than once")
        if len(names) > 1:
            raise TransferCodeError(b", ".join(names[:-1]).decode("latin-1"))
        return CHUNKED, None
    if lengths is not None:
        length = _content_length(lengths)
        if length and method == b"CONNECT":
            raise MalformedCLError("CONNECT has no content")
        return LENGTH, length
    return NO_BODY, None


def response_framing(
    method: bytes, status: bytes, version: bytes, lengths: Optional[List[bytes]],
    codings: Optional[List[bytes]],
) -> Tuple[int, Optional[int], bool]:
    """How the body of a final (or 101) response to a ``method`` request is
    framed: (kind, content length or None, whether the connection must
    close after it whatever the response says), kind being NO_BODY,
    LENGTH, CHUNKED or UNTIL_CLOSE; ``version``, ``lengths`` and
    ``codings`` as for request_framing.

    RFC 9112 6.3, in order: no body for HEAD, 1xx, 204, 304 and a 2xx to
    CONNECT; Transfer-Encoding over Content-Length (and then the
    connection may have been tampered with: close it); a body to the close
    for HTTP/1.0 with Transfer-Encoding or a final coding other than
    chunked; codings under chunked are left applied. Chunked twice raises
    HttpError."""
    if (
        method == b"HEAD" or status[0] == 49 or status == b"204" or status == b"304"
        or (method == b"CONNECT" and status[0] == 50)
    ):
        return NO_BODY, None, False
    if codings is not None:
        names = _transfer_codings(codings)
        if version == b"1.0" or names[-1] != b"chunked":
            return UNTIL_CLOSE, None, True
        if names.count(b"chunked") > 1:
            raise BadTransferCodeError("chunked more than once")
        # Codings under chunked ("gzip, chunked") frame nothing: the body is
        # read as chunked and delivered with the rest still applied, named
        # in the Transfer-Encoding field (as a body to the close with
        # "gzip" alone is); the application (a proxy) decides what to do.
        return CHUNKED, None, lengths is not None
    if lengths is not None:
        return LENGTH, _content_length(lengths), False
    return UNTIL_CLOSE, None, True


def _closes(version: bytes, connection: Collection[bytes]) -> bool:
    """Whether a message's own Connection tokens close the connection
    after it (RFC 9112 9.3)."""
    if version == b"1.1":
        return b"close" in connection
    return b"keep-alive" not in connection or b"close" in connection

def _special_values(
    headers: RawHeaderListType, specials: _Specials,
) -> List[Optional[List[bytes]]]:
    """The values of the fields of each special kind, by kind (None for a
    kind without any)."""
    values: List[Optional[List[bytes]]] = [None, None, None, None, None, None]
    for kind, index in specials:
        seen = values[kind]
        if seen is None:
            values[kind] = [headers[index][1]]
        else:
            seen.append(headers[index][1])
    return values

class ParserDelegate(Protocol):
    """What HttpParser calls: its owner (a server or client connection).

    A request parser calls on_request_head, a response parser
    on_response_nonfinal and on_response_head; both call on_body (a chunk
    of the body, never empty), on_message_done (the trailer fields a
    recipient may use; [] without) and on_error (once, then nothing more).
    """

    def on_request_head(self, method: bytes, target: bytes, headers: RawHeaderListType) -> None:
        ...

    def on_response_nonfinal(
        self, status: bytes, phrase: bytes, headers: RawHeaderListType,
    ) -> None:
        ...

    def on_response_head(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        ...

    def on_body(self, chunk: bytes) -> None:
        ...

    def on_message_done(self, trailers: RawHeaderListType) -> None:
        ...

    def on_error(self, err: HttpError) -> None:
        ...


class _Limit:
    """A public limit kept in a private slot (which the hot path reads):
    setting it re-checks whether the head caches still fit the limits."""

    __slots__ = ("slot",)

    def __init__(self, slot: str) -> None:
        self.slot = slot

    def __get__(self, parser: Optional[HttpParser], owner: type) -> int:
        if parser is None:
            raise AttributeError(self.slot)
        value: int = getattr(parser, self.slot)
        return value

    def __set__(self, parser: HttpParser, value: int) -> None:
        setattr(parser, self.slot, value)
        parser._limits_changed()


class HttpParser:
    """Parses a stream of HTTP/1.1 requests (``is_request``) or responses.

    Calls on its delegate: on_request_head(method, target, headers),
    on_response_nonfinal(status, phrase, headers),
    on_response_head(status, phrase, headers), on_body(chunk),
    on_message_done(trailers), on_error(err).

    Per message, before the head is reported: ``version`` (b"1.0" / b"1.1"),
    ``close``, ``expect_continue``, ``upgrade``, ``body`` (NO_BODY, LENGTH,
    CHUNKED, UNTIL_CLOSE), ``content_length`` (int or None), and
    ``head_length``, the head's bytes on the wire (start line through the
    empty line; a 1xx head's at on_response_nonfinal). ``transfer_length``
    (a property) is the bytes of the message after its head so far: 0 at
    the head, all of them (chunked framing and trailers included) at
    on_message_done, and unchanged from then until the next head.

    ``paused`` (read it, change it with pause() / resume()) is True while
    the parser holds its input; ``idle`` and ``buffered`` describe the
    buffered input. The limits (the keyword arguments) are attributes too.
    """

    __slots__ = (
        "_delegate", "is_request", "_max_start_line", "_max_field_section",
        "_max_fields", "max_chunk_ext", "max_trailer_section", "lenient_bare_lf",
        "_cache_fits", "version", "close", "expect_continue", "upgrade", "body", "content_length",
        "_state", "_buf", "_pos", "_queued", "paused", "_busy",
        "_eof", "_remaining", "_scanned", "_line_end",
        "_empty_lines", "_expected", "_switch", "head_length", "_transfer",
    )

    def __init__(
        self, delegate: ParserDelegate, is_request: bool, *, max_start_line: int = 8190,
        max_field_section: int = 65536, max_fields: int = 100, max_chunk_ext: int = 4096,
        max_trailer_section: int = 16384, lenient_bare_lf: bool = False,
    ) -> None:
        self._delegate = delegate
        self.is_request = bool(is_request)
        # Default limits: max_start_line 8190 is Apache's LimitRequestLine
        # (RFC 9112 3 asks for at least 8000 octets); max_fields 100 is
        # Apache's LimitRequestFields; max_field_section 64 KiB holds the
        # largest cookie sets browsers send with room to spare;
        # max_chunk_ext 4096 because extensions are all but unused and only
        # need to fit; max_trailer_section 16 KiB is Node's whole-head limit.
        self._max_start_line = max_start_line
        self._max_field_section = max_field_section
        self._max_fields = max_fields
        self.max_chunk_ext = max_chunk_ext
        self.max_trailer_section = max_trailer_section
        self.lenient_bare_lf = lenient_bare_lf
        self._limits_changed()
        self.version: Optional[bytes] = None
        self.close = False
        self.expect_continue = False
        self.upgrade = False
        self.body = NO_BODY
        self.content_length: Optional[int] = None
        self._state = _HEAD
        self._buf: _Buffer = b""
        self._pos = 0
        self._queued: List[bytes] = []  # input fed from inside a delegate call
        self.paused = False
        # What steers the loop besides _state and paused: inside feed's
        # loop (feed / resume only note what to do), the input has ended,
        # pause after this message (the protocol may change).
        self._busy = False
        self._eof = False
        self._remaining = 0
        self._scanned = 0      # bytes of an incomplete line / block already checked
        self._line_end = -1    # offset of the start line's LF, once seen
        self._empty_lines = 0
        # Request methods awaiting a response: a response parser's own. A
        # request parser shares one that stays empty, as a deque costs 760
        # bytes, on every idle server connection.
        self._expected: Deque[bytes] = _NO_RESPONSES if self.is_request else deque()
        self._switch = False
        self.head_length = 0
        # Chunked and close-delimited bodies: bytes of the message after its
        # head, counted ahead for chunk data and its CRLF (transfer_length).
        self._transfer = 0

    # -- limits ----------------------------------------------------------------

    def _limits_changed(self) -> None:
        # Every head in the caches fits these limits: a hit needs no check
        # of its sizes.
        self._cache_fits = (
            self._max_start_line >= _HEAD_CACHE_LEN
            and self._max_field_section >= _HEAD_CACHE_LEN
            and self._max_fields + 1 >= _HEAD_CACHE_LINES
        )

    # The limits the head caches depend on (see _limits_changed).
    max_start_line = _Limit("_max_start_line")
    max_field_section = _Limit("_max_field_section")
    max_fields = _Limit("_max_fields")

    # -- the owner's calls ---------------------------------------------------

    def finish(self) -> None:
        """The input has ended: complete a close-delimited body, or report
        IncompleteHeadError / IncompleteBodyError inside a message."""
        if self._eof or self._state == _FAILED:
            return
        self._eof = True
        if not self.paused and not self._busy:
            self.feed(_CARRY_ON)

    def pause(self) -> None:
        """Stop delivering; from inside a delegate call, feed() / resume()
        return right after it, keeping the rest of the input."""
        self.paused = True

    def resume(self) -> None:
        """Carry on with buffered input (at once, or after the current
        delegate call when called from inside one)."""
        if not self.paused:
            return
        self.paused = False
        if not self._busy and self._state != _FAILED:
            self.feed(_CARRY_ON)

    def leftover(self) -> bytes:
        """Take the buffered, unparsed bytes (after a protocol switch)."""
        data = self._buf[self._pos:]
        if self._queued:
            data = data + b"".join(self._queued)
            self._queued.clear()
        self._buf = b""
        self._pos = 0
        self._scanned = 0
        self._line_end = -1
        return bytes(data)

    def expect_response(self, method: Union[bytes, str]) -> None:
        """Client side: a request with ``method`` was sent; its response is
        expected after those of earlier calls."""
        if method.__class__ is not bytes and isinstance(method, str):
            method = method.encode("latin-1")
        self._expected.append(method)

    @property
    def idle(self) -> bool:
        """True between messages with no byte of the next one buffered."""
        return (
            self._state == _HEAD and self._pos == len(self._buf) and not self._queued
        )

    @property
    def buffered(self) -> int:
        """How many input bytes are held unparsed."""
        return len(self._buf) - self._pos + sum(map(len, self._queued))

    @property
    def transfer_length(self) -> int:
        """Bytes of the current (or last) message after its head, as they
        came: the body with its chunked framing and trailer section. 0 at
        the head; the whole when on_message_done runs."""
        # Worked out on demand: from what framing keeps anyway for a body of
        # known length (no cost); from a count kept ahead of the parse, one
        # addition per chunk or read, for chunked and close-delimited ones.
        body = self.body
        if body == LENGTH:
            return self.content_length - self._remaining  # type: ignore[operator]  # an int
        if body == CHUNKED:
            state = self._state
            if state == _CHUNK_DATA:
                return self._transfer - self._remaining - 2
            if state == _CHUNK_END or state == _TRAILERS:
                return self._transfer - 2
            return self._transfer
        if body == UNTIL_CLOSE:
            return self._transfer
        return 0

    # -- input buffer --------------------------------------------------------

    def _append(self, data: Union[bytes, bytearray, memoryview]) -> None:
        buf = self._buf
        pos = self._pos
        if pos == len(buf):
            self._buf = data if type(data) is bytes else bytes(data)
            self._pos = 0
            return
        if type(buf) is not bytearray:
            # One copy of the unparsed rest; later appends are amortised.
            # A bytearray keeps its parsed prefix until feed's loop drops it.
            buf = bytearray(memoryview(buf)[pos:])
            self._buf = buf
            self._pos = 0
        buf += data

    def _take_queued(self) -> bool:
        """Move input fed during a delegate call into the buffer."""
        if not self._queued:
            return False
        queued = self._queued
        self._queued = []
        for data in queued:
            self._append(data)
        return True

    # -- the loop --------------------------------------------------------------

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Parse ``data`` (bytes-like) as far as possible."""
        # Also the parser's own loop (data _CARRY_ON: go on with what is
        # buffered, for resume() and finish()): it calls the reader of the
        # current state (_READERS) until the parser pauses, or a reader
        # needs more input than there is, then handles the end of input if
        # it came. A reader returns True when it moved on (its state may
        # have changed, a delegate call may have paused the parser), False
        # when it needs more input (or failed: see _fail); it saves the
        # position before each delegate call.
        if data is not _CARRY_ON:
            if self._eof or self._state == _FAILED:
                return
            if self._busy:
                if data:
                    self._queued.append(bytes(data))
                return
            if data:
                if not self._buf:  # _append's common case, inline (_pos is 0)
                    self._buf = data if type(data) is bytes else bytes(data)
                else:
                    self._append(data)
            if self.paused:
                return
        self._busy = True
        try:
            readers = _READERS
            while not self.paused:
                if not readers[self._state](self):
                    if not (self._queued and self._take_queued()):
                        break
            if self._eof and not self.paused:
                self._end_of_input()
        finally:
            self._busy = False
            # Drop what was parsed once it outweighs the rest, so the parser
            # holds at most twice what is unparsed, and an owner that
            # resumes once per pipelined message does not copy the rest of
            # a large read each time (that would be quadratic).
            pos = self._pos
            if pos:
                rest = len(self._buf) - pos
                if not rest:  # the usual case: all of it was parsed
                    self._buf = b""
                    self._pos = 0
                elif pos >= rest:
                    self._buf = self._buf[pos:]
                    self._pos = 0
            if self._queued:
                self._take_queued()

    def _fail(self, err: HttpError) -> bool:
        """Report ``err``, once; the parser reads nothing more. False, for
        a reader to return."""
        self._state = _FAILED
        self._buf = b""
        self._pos = 0
        self._queued = []
        self._delegate.on_error(err)
        return False

    def _start_body(self, body: int, content_length: Optional[int]) -> None:
        """After a final head: read its body, framed as ``body`` says."""
        self.body = body
        self.content_length = content_length
        self._transfer = 0
        if body == LENGTH and content_length:
            self._remaining = content_length
            self._state = _BODY
        elif body == CHUNKED:
            self._state = _CHUNK_SIZE
        elif body == UNTIL_CLOSE:
            self._state = _UNTIL_CLOSE
        else:  # no body, or an empty one
            self._remaining = 0
            self._state = _DONE

    def _message_done(self, trailers: RawHeaderListType) -> None:
        """The message is complete: report it, and read the next head."""
        self._state = _HEAD
        if self._switch:
            # CONNECT, Upgrade or 101: what follows may not be HTTP. The
            # owner resumes (no switch) or takes leftover() (switched).
            self._switch = False
            self.paused = True
        self._delegate.on_message_done(trailers)

    def _end_of_input(self) -> None:
        # Runs whenever feed's loop ends after finish(): once it has run,
        # the parser has failed or holds nothing in state _HEAD, so a
        # repeat does nothing. (Never in state _DONE: its reader always
        # moves on.)
        state = self._state
        if state == _HEAD:
            if self._pos < len(self._buf):
                self._fail(IncompleteHeadError(
                    "%d bytes of an unfinished head" % (len(self._buf) - self._pos)
                ))
        elif state == _UNTIL_CLOSE:
            self._message_done([])
        elif state != _FAILED:
            self._fail(IncompleteBodyError())

    # -- the readers, one per state (see feed) ---------------------------------

    def _read_head(self) -> bool:
        buf = self._buf
        pos = self._pos
        end = len(buf)
        if pos == end:
            return False
        request = self.is_request
        if request:
            if buf[pos] == 13 or buf[pos] == 10:
                try:
                    skipped = self._skip_empty_lines(buf, pos, end)
                except HttpError as err:
                    return self._fail(err)
                if skipped is None or skipped == end:
                    return False
                pos = skipped
        elif not self._expected:
            return self._fail(ExtraDataError("no response expected"))
        # A head that is whole takes the fast path, in strict mode: a head
        # seen before (_request_heads / _response_heads, looked up here,
        # in the hottest path there is), or a common one (_quick_head).
        idx = -1 if self._scanned or self.lenient_bare_lf else buf.find(b"\r\n\r\n", pos)
        if idx >= 0:
            block = buf[pos:idx]
            if type(block) is not bytes:
                block = bytes(block)
            found: Optional[Tuple[bytes, bytes, RawHeaderListType]]
            if request:
                known = _request_heads.get(block)
                if known is not None and (
                    self._cache_fits or (
                        known[11] <= self._max_start_line
                        and idx - pos - known[11] <= self._max_field_section
                        and known[12] <= self._max_fields + 1
                    )
                ):
                    (method, target, fields, version, close, expects, upgrade, body,
                     content_length, state, remaining, _, _) = known
                    # What _begin_request and _start_body set for this
                    # head (_switch is upgrade: CONNECT is never cached).
                    self.version = version
                    self.close = close
                    self.expect_continue = expects
                    self.upgrade = self._switch = upgrade
                    self.body = body
                    self.content_length = content_length
                    self._transfer = 0
                    self._remaining = remaining
                    self._state = state
                    self._pos = idx + 4
                    self.head_length = idx + 4 - pos
                    self._empty_lines = 0
                    found = method, target, list(fields)
                else:
                    found = self._quick_head(block, pos, idx)
            else:
                method = self._expected[0]
                # Only for a method that does not change the framing (not
                # HEAD or CONNECT): the head alone decides what it means.
                seen = (
                    _response_heads.get(block) if method != b"HEAD" and method != b"CONNECT"
                    else None
                )
                if seen is not None and (
                    self._cache_fits or (
                        seen[10] <= self._max_start_line
                        and idx - pos - seen[10] <= self._max_field_section
                        and seen[11] <= self._max_fields + 1
                    )
                ):
                    (status, phrase, fields, version, close, upgrade, body,
                     content_length, state, remaining, _, _) = seen
                    # What _begin_response and _start_body set for this
                    # head (no switch: neither 101 nor CONNECT is cached;
                    # expect_continue stays False in a response parser).
                    self._expected.popleft()
                    self.version = version
                    self.close = close
                    self.upgrade = upgrade
                    self.body = body
                    self.content_length = content_length
                    self._transfer = 0
                    self._remaining = remaining
                    self._state = state
                    self._pos = idx + 4
                    self.head_length = idx + 4 - pos
                    found = status, phrase, list(fields)
                else:
                    found = self._quick_head(block, pos, idx)
            if found is not None:
                delegate = self._delegate
                if request:
                    delegate.on_request_head(*found)
                else:
                    delegate.on_response_head(*found)
                # The hot path keeps its shape: for a message whose body
                # is all here (or that has none), what the _BODY and _DONE
                # readers would do next, without their calls (and the
                # switch, _message_done's other part, left to them). As
                # readers called in turn, a message cost ~50 ns more per
                # call: GET 1.02 -> 1.20 us, a response with a body 1.14
                # -> 1.48 us (tests/bench/bench_parser.py).
                state = self._state
                if (
                    (state == _DONE or state == _BODY) and not self.paused
                    and not self._switch and self._buf is buf  # no leftover() meanwhile
                ):
                    if state == _BODY:
                        at = self._pos
                        stop = at + self._remaining
                        if stop > end:
                            return True
                        chunk = buf[at:stop]
                        if type(chunk) is not bytes:
                            chunk = bytes(chunk)
                        self._pos = stop
                        self._remaining = 0
                        self._state = _DONE
                        delegate.on_body(chunk)
                        if self.paused:
                            return True
                    self._state = _HEAD
                    delegate.on_message_done([])
                    return self._pos != len(self._buf)
                return True
        try:
            read = self._read_block(buf, pos, end, False)
            if read is None:
                return False
            lines, next_pos = read
            start, (headers, specials) = self._parse_lines(lines, False)
            if request:
                self._request_head(start, headers, specials)
            else:
                nonfinal = self._response_head(start, headers, specials)
        except HttpError as err:
            return self._fail(err)
        self._pos = next_pos
        self.head_length = next_pos - pos
        self._scanned = 0
        self._line_end = -1
        self._empty_lines = 0
        if request:
            self._delegate.on_request_head(start[0], start[1], headers)
        elif nonfinal:
            self._delegate.on_response_nonfinal(start[1], start[2], headers)
        else:
            self._delegate.on_response_head(start[1], start[2], headers)
        return True

    def _read_data(self) -> bool:
        """_BODY and _CHUNK_DATA: up to _remaining bytes, handed on as they are."""
        buf = self._buf
        pos = self._pos
        end = len(buf)
        if pos == end:
            return False
        remaining = self._remaining
        stop = pos + remaining
        if stop > end:
            stop = end
        chunk = buf[pos:stop]
        if type(chunk) is not bytes:
            chunk = bytes(chunk)
        self._pos = stop
        remaining -= stop - pos
        self._remaining = remaining
        if not remaining:
            self._state = _DONE if self._state == _BODY else _CHUNK_END
        self._delegate.on_body(chunk)
        return True

    def _read_until_close(self) -> bool:
        buf = self._buf
        pos = self._pos
        end = len(buf)
        if pos == end:
            return False
        chunk = buf[pos:end]
        if type(chunk) is not bytes:
            chunk = bytes(chunk)
        self._pos = end
        self._transfer += end - pos
        self._delegate.on_body(chunk)
        return True

    def _read_chunk_end(self) -> bool:
        buf = self._buf
        pos = self._pos
        end = len(buf)
        if pos == end or (end - pos < 2 and buf[pos] == 13):
            return False
        if buf[pos:pos + 2] != b"\r\n":
            return self._fail(ChunkTerminatorError("chunk data not followed by CRLF"))
        self._pos = pos + 2
        self._state = _CHUNK_SIZE
        return True

    def _read_chunk_size(self) -> bool:
        buf = self._buf
        pos = self._pos
        end = len(buf)
        if pos == end:
            return False
        # A chunk-size line of hex digits only, whole: what _chunk_size
        # makes of it, without the call.
        lf = buf.find(b"\n", pos, pos + 18) if not self._scanned else -1
        size: Optional[int]
        if lf > pos + 1 and buf[lf - 1] == 13 and not buf[pos:lf - 1].translate(None, _HEX):
            size = int(buf[pos:lf - 1], 16)
            self._pos = lf + 1
        else:
            try:
                size = self._chunk_size(buf, pos, end)
            except HttpError as err:
                return self._fail(err)
            if size is None:
                return False
        # Counted ahead (see transfer_length): the data and its CRLF, or
        # the empty line that ends a trailer section.
        if size:
            self._remaining = size
            self._state = _CHUNK_DATA
            self._transfer += self._pos - pos + size + 2
        else:
            self._state = _TRAILERS
            self._transfer += self._pos - pos + 2
        return True

    def _read_trailers(self) -> bool:
        buf = self._buf
        pos = self._pos
        end = len(buf)
        if pos == end:
            return False
        if buf[pos] == 13 and end - pos > 1 and buf[pos + 1] == 10:
            # No trailers: what _read_block would find.
            self._pos = pos + 2
            self._scanned = 0
            self._message_done([])
            return True
        try:
            block = self._read_block(buf, pos, end, True)
            if block is None:
                return False
            lines, next_pos = block
            # [] when there are no trailer lines
            trailers: RawHeaderListType = (
                lines and self._trailers(lines))  # type: ignore[assignment]
        except HttpError as err:
            return self._fail(err)
        self._pos = next_pos
        self._transfer += next_pos - pos - 2
        self._scanned = 0
        self._message_done(trailers)
        return True

    def _read_done(self) -> bool:
        self._message_done([])
        return True

    def _read_nothing(self) -> bool:  # _FAILED
        return False

    # -- message heads ---------------------------------------------------------

    def _skip_empty_lines(self, buf: _Buffer, pos: int, end: int) -> Optional[int]:
        """Consume empty lines before a request: the offset after them, or
        None if more input is needed to tell."""
        lenient = self.lenient_bare_lf
        while pos < end:
            if buf[pos] == 13:
                if pos + 1 == end:
                    self._pos = pos
                    return None
                if buf[pos + 1] != 10:
                    break
                pos += 2
            elif buf[pos] == 10 and lenient:
                pos += 1
            else:
                break
            self._empty_lines += 1
            if self._empty_lines > _MAX_EMPTY_LINES:
                raise StartLineError("too many empty lines before the request line")
        self._pos = pos
        return pos

    def _read_block(
        self, buf: _Buffer, start: int, end: int, trailer: bool,
    ) -> Optional[Tuple[List[bytes], int]]:
        """The lines of the head (or trailer section) at ``start`` and the
        offset after its empty line; None if more input is needed.

        Quick case (after _quick_head declined): one find for the empty
        line, one split, one translate to check every byte, two length
        checks; anything odd goes to the line-at-a-time reader, which finds
        the first problem in byte order.
        While the block is incomplete, only the new bytes are checked, for
        the problems that must be caught before the block ends (bare CR or
        LF, size limits); the first such one hands over to the line reader."""
        if trailer and buf[start] == 13:
            if end - start < 2:
                return None
            if buf[start + 1] == 10:
                return [], start + 2
        lenient = self.lenient_bare_lf
        scanned = self._scanned
        if not lenient:
            idx = buf.find(b"\r\n\r\n", start + scanned - 3 if scanned > 3 else start)
            if idx >= 0:
                block = buf[start:idx]
                if type(block) is not bytes:
                    block = bytes(block)
                lines = block.split(b"\r\n")
                if trailer:
                    fits = idx + 2 - start <= self.max_trailer_section
                else:
                    first = len(lines[0])
                    fits = first <= self._max_start_line and (
                        idx - first - start <= self._max_field_section
                    )
                if fits and (
                    len(block.translate(None, CTL_EXCEPT_HTAB))
                    == len(block) - 2 * len(lines) + 2
                ):
                    return lines, idx + 4
                return self._read_block_slowly(buf, start, idx + 4, trailer)
        elif trailer and buf[start] == 10:
            return [], start + 1
        else:
            # A bare-LF block ends at LF [CR] LF: one search that stops at
            # the first, not two that might scan the whole buffer.
            if _LENIENT_END.search(buf, start + scanned - 2 if scanned > 2 else start):
                return self._read_block_slowly(buf, start, end, trailer)

        # Incomplete: check the new bytes only.
        new = start + scanned
        if new >= end:
            return None
        trouble = False
        if not lenient:
            lf = buf.count(b"\n", new, end)
            if lf:
                pairs = buf.count(b"\r\n", new, end)
                if new > start and buf[new] == 10 and buf[new - 1] == 13:
                    pairs += 1
                trouble = lf != pairs
        cr = buf.count(b"\r", new, end)
        if cr:
            if buf[end - 1] == 13:
                cr -= 1
            trouble = trouble or cr != buf.count(b"\r\n", new, end)
        if new > start and buf[new - 1] == 13 and buf[new] != 10:
            trouble = True
        if trailer:
            trouble = trouble or end - start >= self.max_trailer_section + 2
        else:
            line_end = self._line_end
            if line_end < 0:
                lf = buf.find(b"\n", new, end)
                if lf >= 0:
                    self._line_end = line_end = lf - start
            if line_end < 0:
                trouble = trouble or end - start >= self._max_start_line + 2
            else:
                trouble = (
                    trouble or line_end > self._max_start_line + 1
                    or end - start - line_end - 1 >= self._max_field_section + 2
                )
        if trouble:
            found = self._read_block_slowly(buf, start, end, trailer)
            if found is not None:
                return found
        self._scanned = end - start
        return None

    def _read_block_slowly(
        self, buf: _Buffer, start: int, end: int, trailer: bool,
    ) -> Optional[Tuple[List[bytes], int]]:
        """Line-at-a-time ``_read_block`` over ``buf[start:end]``: raises the
        first problem in byte order, checking the syntax of the lines before
        a byte-level problem so that theirs comes first."""
        lenient = self.lenient_bare_lf
        lines = []
        pos = start
        too_large: Type[HttpError]
        try:
            if trailer:
                limit = start + self.max_trailer_section
                too_large = TrailerTooLargeError
            else:
                found = self._next_line(
                    buf, pos, end, start + self._max_start_line + 2, True,
                    UriTooLongError if self.is_request else StartLineTooLongError,
                )
                if found is None:
                    return None
                line, pos = found
                lines.append(line)
                limit = pos + self._max_field_section
                too_large = FieldSectionTooLargeError
            while True:
                if pos >= end:
                    return None
                if buf[pos] == 13:
                    if pos + 1 >= end:
                        return None
                    if buf[pos + 1] == 10:
                        return lines, pos + 2
                elif buf[pos] == 10 and lenient:
                    return lines, pos + 1
                found = self._next_line(buf, pos, end, limit, False, too_large)
                if found is None:
                    return None
                line, pos = found
                lines.append(line)
        except HttpError:
            if lines:
                self._parse_lines(lines, trailer)
            raise

    def _quick_head(
        self, block: bytes, pos: int, idx: int,
    ) -> Optional[Tuple[bytes, bytes, RawHeaderListType]]:
        """The fast path for a common head, ``block``, whole at ``pos`` in
        the buffer up to ``idx`` (its empty line): the arguments of the
        delegate's head call, with the parser set up exactly as the general
        path would; None to leave the head to the general path, having
        changed nothing.

        It takes strict mode, a final response but 101 (not to CONNECT),
        or a request but CONNECT; lines each known to pass
        the general checks (or passing them now: _field_entry); at most
        one field of each special kind; and framing that the framing
        functions accept (but a Transfer-Encoding that leaves the body to
        the close). Anything else, errors included, goes the general way,
        so that what is reported, and in which order, is the general
        path's. A head it takes is remembered whole, for _read_head."""
        request = self.is_request
        if not request:
            method = self._expected[0]
            if method == b"CONNECT":
                return None  # a 2xx answer switches protocols
        lines = block.split(b"\r\n")
        start = lines[0]
        first = len(start)
        if (
            first > self._max_start_line or idx - pos - first > self._max_field_section
            or len(lines) > self._max_fields + 1
        ):
            return None
        if request:
            parsed = _request_lines.get(start)
            if parsed is None:
                parts = start.split(b" ")
                if len(parts) != 3:
                    return None
                method, target, spelt = parts
                # A method that needs no check, not CONNECT, and a target
                # of visible ASCII (the translate also rules out CR, LF and
                # the other CTLs): origin-form, what _request_line accepts
                # without further ado, or another form that it accepts (a
                # forward proxy's absolute-form; once per line, as the
                # line is remembered).
                known_version = _VERSIONS.get(spelt)
                if (
                    known_version is None or method not in _METHODS or method == b"CONNECT"
                    or not target or target.translate(None, _VCHAR)
                ):
                    return None
                if target[0] != 47:
                    try:
                        self._request_line(start)
                    except HttpError:
                        return None
                parsed = (method, target, known_version)
                _remember(_request_lines, start, parsed, _LINES_MAX)
            method, target, version = parsed
        else:
            parsed = _status_lines.get(start)
            if parsed is None:
                if len(start.translate(None, CTL_EXCEPT_HTAB)) != first:
                    return None
                try:
                    parsed = self._status_line(start)
                except HttpError:
                    return None
                _remember(_status_lines, start, parsed, _STATUS_LINES_MAX)
            version, status, phrase = parsed
            if status[0] == 49:
                return None  # 1xx, 101 included
        headers: RawHeaderListType = []
        append = headers.append
        plain = _plain_lines
        special = _special_lines
        # What the fields of each special kind say (see _field_entry);
        # Content-Length and Transfer-Encoding: their values.
        host: Any
        connection: Any
        expect: Any
        lengths: Optional[List[bytes]]
        codings: Optional[List[bytes]]
        host = connection = expect = lengths = codings = None
        upgrade = False
        for line in lines[1:]:
            pair = plain.get(line)
            if pair is None:
                entry = special.get(line) or _field_entry(line)
                if entry is None:
                    return None
                pair, kind, meaning = entry
                # A second field of a kind: left to the general path, which
                # reads them together (but a response's Host is no matter).
                if kind is None:
                    pass
                elif kind == _HOST:
                    if host is not None and request:
                        return None
                    host = meaning
                elif kind == _CONNECTION:
                    if connection is not None:
                        return None
                    connection = meaning
                elif kind == _CONTENT_LENGTH:
                    if lengths is not None:
                        return None
                    lengths = [pair[1]]
                elif kind == _TRANSFER_ENCODING:
                    if codings is not None:
                        return None
                    codings = [pair[1]]
                elif kind == _EXPECT:
                    if expect is not None:
                        return None
                    expect = meaning
                else:  # _UPGRADE, whose presence is all that counts
                    upgrade = True
            append(pair)
        if connection is None:
            connection = ()
        # What _request_head / _response_head do, for at most one field of
        # each kind and no CONNECT.
        try:
            if request:
                if host is None:
                    if version == b"1.1":
                        return None
                elif not host:
                    return None
                body, content_length = request_framing(method, version, lengths, codings)
                must_close = False
            else:
                body, content_length, must_close = response_framing(
                    method, status, version, lengths, codings)
        except HttpError:
            return None
        if codings is not None and body == UNTIL_CLOSE:
            return None  # a response coded but not chunked: rare, the general path's
        self._pos = idx + 4
        self.head_length = idx + 4 - pos
        cache = len(block) <= _HEAD_CACHE_LEN and len(lines) <= _HEAD_CACHE_LINES
        if request:
            self._begin_request(
                method, version, body, content_length, connection, expect is True,
                upgrade,
            )
            self._empty_lines = 0
            if cache:
                if len(_request_heads) >= _HEADS_MAX:
                    _request_heads.clear()
                _request_heads[block] = (
                    method, target, tuple(headers), version, self.close,
                    self.expect_continue, self.upgrade, body, content_length, self._state,
                    self._remaining if body == LENGTH else 0, first, len(lines),
                )
            return method, target, headers
        self._expected.popleft()
        self._begin_response(
            method, status, version, body, content_length, must_close, connection,
            upgrade,
        )
        if cache and method != b"HEAD":
            if len(_response_heads) >= _HEADS_MAX:
                _response_heads.clear()
            _response_heads[block] = (
                status, phrase, tuple(headers), version, self.close, self.upgrade, body,
                content_length, self._state, self._remaining if body == LENGTH else 0,
                first, len(lines),
            )
        return status, phrase, headers

    def _next_line(
        self, buf: _Buffer, pos: int, end: int, limit: int, start_line: bool,
        size_error: Type[HttpError],
    ) -> Optional[Tuple[bytes, int]]:
        """(line, next offset) for the line at ``pos`` (the start line, or a
        field line), which must end before ``limit``; None if it has not
        ended yet."""
        stop = end if end < limit else limit
        lf = buf.find(b"\n", pos, stop)
        if lf < 0:
            if stop - 1 > pos and buf.find(b"\r", pos, stop - 1) >= 0:
                raise self._line_error(start_line, _BARE_CR, b"")
            if end >= limit:
                raise size_error()
            return None
        if lf - 1 > pos and buf.find(b"\r", pos, lf - 1) >= 0:
            raise self._line_error(start_line, _BARE_CR, b"")
        if lf > pos and buf[lf - 1] == 13:
            line = buf[pos:lf - 1]
        elif self.lenient_bare_lf:
            line = buf[pos:lf]
        else:
            raise self._line_error(start_line, _BARE_LF, b"")
        if type(line) is not bytes:
            line = bytes(line)
        if len(line.translate(None, CTL_EXCEPT_HTAB)) != len(line):
            raise self._line_error(start_line, _CONTROL, line)
        return line, lf + 1

    def _line_error(self, start_line: bool, problem: int, line: bytes) -> HttpError:
        """The error for a line with a bare CR, a bare LF (strict) or another
        control character (``problem``; ``line`` is the line for the last)."""
        if problem == _BARE_CR:
            detail = "bare CR"
        elif problem == _BARE_LF:
            detail = "bare LF"
        else:
            detail = "control character in %s" % detail_text(line, 80)
        if start_line:
            if self.is_request and problem != _BARE_LF:
                return RequestLineError(detail)
            return StartLineError(detail)
        if problem == _BARE_CR:
            return BareCRError(detail)
        if problem == _BARE_LF:
            return HeaderLineEndingError(detail)
        name, colon, _ = line.partition(b":")
        if colon and len(name.translate(None, CTL_EXCEPT_HTAB)) == len(name):
            return HeaderValueError(detail)
        return HeaderNameError(detail)

    @overload
    def _parse_lines(
        self, lines: List[bytes], trailer: Literal[False],
    ) -> Tuple[_StartLine, Tuple[RawHeaderListType, _Specials]]:
        ...

    @overload
    def _parse_lines(
        self, lines: List[bytes], trailer: bool,
    ) -> Tuple[Optional[_StartLine], Tuple[RawHeaderListType, _Specials]]:
        ...

    def _parse_lines(
        self, lines: List[bytes], trailer: bool,
    ) -> Tuple[Optional[_StartLine], Tuple[RawHeaderListType, _Specials]]:
        """Check the syntax of complete lines in order: (start line parts or
        None, (headers, special field indices))."""
        if trailer:
            return None, self._read_fields(lines, 0, ObsoleteFoldError)
        if self.is_request:
            start = self._request_line(lines[0])
        else:
            start = self._status_line(lines[0])
        return start, self._read_fields(lines, 1, TopLineSpaceError)

    def _read_fields(
        self, lines: List[bytes], first: int, fold_error: Type[HttpError],
    ) -> Tuple[RawHeaderListType, _Specials]:
        """(headers, [(special kind, index in headers)]) from field lines."""
        headers: RawHeaderListType = []
        append = headers.append
        specials = []
        names = _names
        special = _SPECIAL
        max_fields = self._max_fields
        counting = len(lines) - first > max_fields
        folds: Optional[Dict[int, List[bytes]]] = None  # {index in headers: [value, ...]}
        for line in lines[first:] if first else lines:
            name, colon, value = line.partition(b":")
            low = names.get(name)
            if low is None or not colon:
                if line[0] == 32 or line[0] == 9:
                    # RFC 9112 5.2: obs-fold; replace it with one SP. The
                    # pieces are joined once at the end, not re-copied per line.
                    if not headers:
                        raise fold_error(detail_text(line))
                    line = line.strip(_OWS)
                    if line:
                        if folds is None:
                            folds = {}
                        parts = folds.get(len(headers) - 1)
                        if parts is None:
                            parts = folds[len(headers) - 1] = [headers[-1][1]]
                        parts.append(line)
                    continue
                if not colon:
                    raise HeaderNoColonError(detail_text(line))
                low = _field_name(name)
            if counting and len(headers) >= max_fields:
                raise TooManyFieldsError("more than %d" % max_fields)
            kind = special.get(low)
            if kind is not None:
                specials.append((kind, len(headers)))
            append((name, value.rstrip(_OWS)))
        if folds:
            for index, parts in folds.items():
                headers[index] = (headers[index][0], b" ".join(parts))
        return headers, specials

    def _request_line(self, line: bytes) -> _StartLine:
        parts = line.split(b" ")
        if len(parts) != 3:
            raise StartLineError(detail_text(line))
        method, target, version = parts
        if method not in _METHODS and not is_token(method):
            raise RequestLineError("method is not a token: %s" % detail_text(method))
        # Bytes checks already excluded other CTLs and DEL.
        if not target or not target.isascii() or b"\t" in target:
            raise RequestLineError("bad request-target %s" % detail_text(target))
        version = _VERSIONS.get(version) or _http_version(version)
        # RFC 9112 3.2: authority-form only with CONNECT, which needs it;
        # asterisk-form only with OPTIONS.
        if target[0] == 47:  # origin-form
            if method == b"CONNECT":
                raise StartLineError("CONNECT needs authority-form")
        elif target == b"*":
            if method != b"OPTIONS":
                raise StartLineError("asterisk-form is for OPTIONS only")
        elif method == b"CONNECT":
            # RFC 9110 9.3.6: host and a valid, non-empty port.
            found = _host_port(target)
            if (
                found is None or not found[0] or not found[1]
                or len(found[1]) > 5 or not 0 < int(found[1]) <= 65535
            ):
                raise StartLineError("bad authority-form %s" % detail_text(target))
        else:
            scheme, sep, rest = target.partition(b"://")
            if (
                not sep or not scheme or not scheme[:1].isalpha()
                or scheme.translate(None, _SCHEME_CHARS) or not rest or rest[0] == 47
            ):
                raise StartLineError("bad request-target %s" % detail_text(target))
            # The authority is where the request goes (RFC 9112 3.2.2), so
            # it must read one way only. RFC 9110 4.2.1: an http(s) URI
            # with an empty host is invalid; 4.2.4: userinfo in one is an
            # error (it hides the real host: http://good.example@evil/).
            match = _AUTHORITY_END.search(rest)
            authority = rest[:match.start()] if match else rest
            userinfo, at, authority = authority.rpartition(b"@")
            web = scheme.lower() in (b"http", b"https")
            found = _host_port(authority)
            if (
                found is None or (web and (at or not found[0])) or (
                    at and (userinfo.translate(None, _LITERAL_CHARS)
                            or not _PCT_OK.fullmatch(userinfo))
                )
            ):
                raise StartLineError("bad authority in %s" % detail_text(target))
        return method, target, version

    def _status_line(self, line: bytes) -> _StartLine:
        version, space, rest = line.partition(b" ")
        version = _VERSIONS.get(version) or _http_version(version, True)
        status = rest[:3]
        if (
            not space or len(status) != 3 or not status.isdigit()
            or status < b"100" or status > b"599"
        ):
            raise StartLineError(detail_text(line))
        if len(rest) > 3:
            if rest[3] != 32:
                raise StartLineError(detail_text(line))
            phrase = rest[4:]
        else:
            phrase = b""
        return version, status, phrase

    def _request_head(
        self, start: _StartLine, headers: RawHeaderListType, specials: _Specials,
    ) -> None:
        method, _, version = start
        values = _special_values(headers, specials)
        # RFC 9112 3.2: exactly one valid Host in HTTP/1.1; never several.
        hosts = values[_HOST]
        if hosts is None:
            if version == b"1.1":
                raise HostRequiredError("no Host")
        elif len(hosts) > 1:
            raise InvalidHostError("%d Host fields" % len(hosts))
        else:
            host = hosts[0].strip(_OWS)
            if host.translate(None, _HOST_COMMON) and _host_port(host) is None:
                raise InvalidHostError(detail_text(host))
        body, content_length = request_framing(
            method, version, values[_CONTENT_LENGTH], values[_TRANSFER_ENCODING])
        expect = values[_EXPECT]
        self._begin_request(
            method, version, body, content_length, _tokens(values[_CONNECTION]),
            expect is not None and b"100-continue" in _tokens(expect),
            values[_UPGRADE] is not None,
        )

    def _response_head(
        self, start: _StartLine, headers: RawHeaderListType, specials: _Specials,
    ) -> bool:
        """Set up for the response; True if it is a nonfinal (1xx) one."""
        version, status, _ = start
        if status[0] == 49 and status != b"101":
            # No body; transfer_length reads 0 until the final response.
            self.body = NO_BODY
            return True
        method = self._expected.popleft()
        values = _special_values(headers, specials)
        body, content_length, must_close = response_framing(
            method, status, version, values[_CONTENT_LENGTH], values[_TRANSFER_ENCODING])
        self._begin_response(
            method, status, version, body, content_length, must_close,
            _tokens(values[_CONNECTION]), values[_UPGRADE] is not None,
        )
        return False

    def _begin_request(
        self, method: bytes, version: bytes, body: int, content_length: Optional[int],
        connection: Collection[bytes], expect: bool, upgrade: bool,
    ) -> None:
        """Set up for a request head that passed every check (both paths):
        its framing decided, its Connection tokens, whether it has an
        Expect: 100-continue and an Upgrade field."""
        self.version = version
        self.close = _closes(version, connection)
        if version == b"1.1":
            self.expect_continue = expect
            # RFC 9110 7.8: Upgrade counts only if Connection lists it.
            self.upgrade = upgrade and b"upgrade" in connection
        else:
            # RFC 9110 7.8, 10.1.1: HTTP/1.0 Upgrade and Expect are ignored.
            self.expect_continue = False
            self.upgrade = False
        self._switch = self.upgrade or method == b"CONNECT"
        self._start_body(body, content_length)

    def _begin_response(
        self, method: bytes, status: bytes, version: bytes, body: int,
        content_length: Optional[int], must_close: bool, connection: Collection[bytes],
        upgrade: bool,
    ) -> None:
        """Set up for a final (or 101) response head to a ``method`` request
        that passed every check (both paths); as _begin_request."""
        self.version = version
        self.close = must_close or _closes(version, connection)
        self.expect_continue = False
        self.upgrade = upgrade and b"upgrade" in connection
        # 101, and a 2xx to CONNECT: what follows is not HTTP.
        # (A 204 to CONNECT does not, as before; RFC 9110 9.3.6 says any 2xx.)
        self._switch = status == b"101" or (
            method == b"CONNECT" and status[0] == 50 and status != b"204")
        self._start_body(body, content_length)

    # -- chunked ---------------------------------------------------------------

    def _chunk_size(self, buf: _Buffer, pos: int, end: int) -> Optional[int]:
        """The size from the chunk-size line at ``pos`` (consumed), or None
        if it is incomplete."""
        limit = pos + 18 + self.max_chunk_ext  # 16 hex digits, extensions, CRLF
        stop = end if end < limit else limit
        new = pos + self._scanned
        lf = buf.find(b"\n", new, stop)
        check_from = new - 1 if new > pos else pos
        if lf < 0:
            if buf.find(b"\r", check_from, stop - 1) >= 0:
                raise ChunkError("bare CR in chunk-size line")
            if end >= limit:
                head = bytes(buf[pos:limit])
                digits = len(head) - len(head.lstrip(_HEX))
                if not digits or digits > 16:
                    raise ChunkError("bad chunk size")
                raise ChunkExtTooLargeError()
            self._scanned = end - pos
            return None
        if lf - 1 > check_from and buf.find(b"\r", check_from, lf - 1) >= 0:
            raise ChunkError("bare CR in chunk-size line")
        if lf == pos or buf[lf - 1] != 13:
            raise ChunkError("chunk-size line not ended by CRLF")
        line = buf[pos:lf - 1]
        if type(line) is not bytes:
            line = bytes(line)
        if 0 < len(line) <= 16 and not line.translate(None, _HEX):
            size = int(line, 16)
        else:
            rest = line.lstrip(_HEX)
            digits = len(line) - len(rest)
            if not digits or digits > 16:
                raise ChunkError("bad chunk size %s" % detail_text(line, 40))
            if len(rest) > self.max_chunk_ext:
                raise ChunkExtTooLargeError()
            if not _CHUNK_EXT.fullmatch(rest):
                raise ChunkError("bad chunk extension %s" % detail_text(rest, 40))
            size = int(line[:digits], 16)
        self._pos = lf + 1
        self._scanned = 0
        return size

    def _trailers(self, lines: List[bytes]) -> RawHeaderListType:
        """The trailer fields a recipient may use (RFC 9110 6.5.1)."""
        headers, _ = self._read_fields(lines, 0, ObsoleteFoldError)
        names = _names
        return [
            (name, value) for name, value in headers
            if (names.get(name) or name.lower()) not in TRAILER_FORBIDDEN
        ] if headers else headers


# Each state's reader (see HttpParser.feed), indexed by state.
_READER_OF: Dict[int, Callable[[HttpParser], bool]] = {
    _HEAD: HttpParser._read_head,
    _BODY: HttpParser._read_data,
    _UNTIL_CLOSE: HttpParser._read_until_close,
    _CHUNK_SIZE: HttpParser._read_chunk_size,
    _CHUNK_DATA: HttpParser._read_data,
    _CHUNK_END: HttpParser._read_chunk_end,
    _TRAILERS: HttpParser._read_trailers,
    _DONE: HttpParser._read_done,
    _FAILED: HttpParser._read_nothing,
}
_READERS = tuple(_READER_OF[state] for state in range(len(_READER_OF)))
