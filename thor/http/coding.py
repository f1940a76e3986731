"""Content codings for code that rewrites message bodies: a proxy's hooks
(``HttpProxy.response_hook`` / ``response_body_hook``, and the request
hooks), or any server or client that changes a body it passes on.

A body sent with ``Content-Encoding: gzip`` (or ``x-gzip``, or
``deflate``) is compressed: rewriting its bytes as they come corrupts it.
``Recoder`` undoes the coding as the body streams (zlib, incrementally,
in bounded memory), hands the decoded content to the caller, and applies
the same coding again to what the caller makes of it, or leaves it off;
and it makes the header fields true of the new body (RFC 9110 7.7, 8.4,
8.6, 8.8.3). Codings it cannot undo (``br``, ``zstd``, several stacked
codings), a range (206), and a response marked ``no-transform`` are left
alone: ``Recoder.transformable`` is then False and ``reason`` says why, and
the caller passes the bytes on as they are.

``limit_accept_encoding`` narrows a request's Accept-Encoding to the
codings ``Recoder`` can undo, so that an origin answers in one of them.

The errors (``CodingError`` and its subclasses) are ``PeerError`` s: the
sender's body is at fault. They are sticky: after one, every call of the
same ``Recoder`` raises it again.

Nothing here imports the proxy, the client or the server: they may use
this module, not the other way round.
"""

from __future__ import annotations

import zlib
from typing import Any, List, Optional, Union

from thor.http.error import PeerError
from thor.http.headers import get_header
from thor.types import RawHeaderListType

__all__ = [
    "Recoder", "limit_accept_encoding", "DECODABLE",
    "CodingError", "CorruptBodyError", "TruncatedBodyError", "BodyTooLargeError",
]

#: The content codings Recoder undoes (RFC 9110 8.4.1: x-gzip is gzip).
DECODABLE = frozenset((b"gzip", b"x-gzip", b"deflate"))

# Not a coding (RFC 9110 12.5.3 reserves it in Accept-Encoding); a few
# origins still send it in Content-Encoding, where it changes nothing.
_IDENTITY = b"identity"

# zlib's wbits: gzip wrapper only (gzip never arrives without it); the
# zlib wrapper (RFC 1950, what RFC 9110 8.4.1.2 calls deflate); raw deflate
# (RFC 1951, what some origins send as deflate all the same).
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_WBITS = -zlib.MAX_WBITS

# Fields that describe the bytes of the body or the representation as the
# origin made it, and are false once either changes (RFC 9530 digests;
# Content-MD5 and Digest are their obsolete forms).
_STALE = frozenset((b"content-length", b"content-md5", b"digest", b"content-digest",
                    b"repr-digest"))
# Accept-Ranges goes too: ranges of the origin's bytes are not ranges of
# the transformed body, and a client resuming a download would splice an
# untransformed 206 onto rewritten bytes.
_DROPPED = _STALE | {b"accept-ranges"}

_MiB = 1048576
# The most output one zlib call makes: bounds the memory a decode() uses
# beyond what it returns, whatever the budget.
_STEP = 256 * 1024


class CodingError(PeerError):
    """A coded body cannot be decoded. ``server_status`` is the answer of a
    server decoding a request body (a proxy answers a response's 502)."""

    desc = "The body's content coding cannot be decoded"
    server_status = (b"400", b"Bad Request")


class CorruptBodyError(CodingError):
    """The coded bytes are not gzip / deflate (zlib's words in ``detail``),
    or bytes follow the end of a deflate stream."""

    desc = "Corrupt coded body"


class TruncatedBodyError(CodingError):
    """The body ended inside the coded stream."""

    desc = "The coded body ended early"


class BodyTooLargeError(CodingError):
    """Decoding would pass ``max_size``, or ``max_ratio`` times the coded
    bytes: a decompression bomb, or a body larger than the caller allows."""

    desc = "Decoded body over the limit"
    server_status = (b"413", b"Content Too Large")


def _status_code(status: Union[bytes, str, int, None]) -> Optional[int]:
    if status is None:
        return None
    try:
        return int(status)
    except ValueError:
        raise ValueError("status must be a number, not %r" % (status,)) from None


def _has_no_body(status: Optional[int], method: Union[bytes, str, None]) -> bool:
    """RFC 9110 6.3 / RFC 9112 6.3: responses to HEAD, 1xx, 204 and 304
    carry no content, whatever their fields say."""
    if status is None:  # a request: it has the body its framing gives it
        return False
    if method is not None and (method == b"HEAD" or method == "HEAD"):
        return True
    return status < 200 or status == 204 or status == 304


def _no_transform(headers: RawHeaderListType) -> bool:
    return any(
        directive.partition(b"=")[0].rstrip(b" \t").lower() == b"no-transform"
        for directive in get_header(headers, b"cache-control")
    )


def _content_codings(headers: RawHeaderListType) -> List[bytes]:
    """The codings applied, in order, without ``identity``."""
    return [
        coding for coding in (c.lower() for c in get_header(headers, b"content-encoding"))
        if coding != _IDENTITY
    ]


def _weak(etag: bytes) -> bytes:
    etag = etag.strip(b" \t")
    return etag if etag[:2] == b"W/" else b"W/" + etag


class Recoder:
    """Decodes one message body's content coding as the body streams, and
    encodes what the caller makes of it again (or leaves the coding off),
    with the header fields to send.

    ``Recoder(headers, status=None, method=None, *, reencode=True,
    etag="weaken", level=6, max_ratio=100, ratio_grace=1 MiB,
    max_size=None)``

    - ``headers``: the message's fields, (name, value) bytes, as the hooks
      see them. For a response, give ``status`` (bytes or int) and the
      request's ``method``: responses to HEAD, and 1xx, 204 and 304, have
      no body (their fields are fixed all the same); a request has neither.
    - ``reencode``: True applies the origin's coding again (the same
      wrapper for deflate, raw or zlib, at compression ``level``); False
      sends the decoded content with no coding.
    - ``etag``: ``"weaken"`` turns a strong ETag into a weak one (the
      transformed content is not the origin's bytes, so it may not claim
      their strong validator: RFC 9110 8.8.1, 8.8.3); ``"remove"`` drops it.

    Attributes: ``transformable`` (False: pass the body on untouched, as
    ``reason`` explains: a coding other than gzip, x-gzip and deflate, or
    several codings; a 206; ``Cache-Control: no-transform``, RFC 9110 7.7),
    ``coding`` (the coding undone, lower-case bytes, or None for none),
    ``headers`` (the fields to send: when transformable, without
    Content-Length and the digest fields, without Content-Encoding when
    ``reencode`` is False, with the ETag weakened or removed; Vary and the
    rest as given; when not, ``headers`` itself), ``has_body``,
    ``coded_size`` and ``decoded_size`` (bytes so far).

    Calls, matching the proxy's body hooks (``None`` ends the body):

    - ``decode(chunk)``: the content decoded from ``chunk``; ``decode(None)``
      at the end returns what is left and raises ``TruncatedBodyError`` if
      the stream is incomplete. A body that is empty (no bytes at all) is
      empty content, whatever its Content-Encoding says.
    - ``encode(data, end=False, flush=False)``: the bytes to send for
      ``data``; ``end=True`` once, last, finishes the stream. ``flush=True``
      sends all of ``data`` now (zlib's sync flush: a streamed page shows
      as it comes, at a small cost in size); otherwise zlib keeps what it
      has not yet compressed.

    Memory is bounded by the chunks, not the body: each ``decode`` call
    yields at most ``max_ratio`` times its chunk plus ``ratio_grace``
    bytes, and the body as a whole at most ``max_ratio`` times its coded
    size plus ``ratio_grace`` (deflate reaches about 1000:1, markup 5:1
    to 30:1), and at most ``max_size`` (None: no limit). zlib works in
    steps of 256 KiB; ``BodyTooLargeError`` is raised at the step that
    passes a limit, and nothing past it is made.

    Raises ``CorruptBodyError`` for bytes that are not the coding, and
    ``ValueError`` for calls on a Recoder that is not ``transformable``,
    or after ``encode(..., end=True)``.
    """

    __slots__ = (
        "transformable", "reason", "coding", "headers", "has_body", "reencode",
        "coded_size", "decoded_size", "max_ratio", "ratio_grace", "max_size", "level",
        "_wbits", "_inflater", "_head", "_ended", "_error", "_deflater",
        "_finished",
    )

    transformable: bool
    reason: Optional[str]
    coding: Optional[bytes]
    headers: RawHeaderListType
    has_body: bool
    reencode: bool
    coded_size: int
    decoded_size: int
    max_ratio: float
    ratio_grace: int
    max_size: Optional[int]
    level: int
    _wbits: Optional[int]  # None: deflate whose wrapper is not yet known
    _inflater: Any  # zlib's decompress object (its type is not public)
    _head: bytes  # the first bytes of a deflate body, until they tell its wrapper
    _ended: bool  # a stream (or gzip member) ended; what follows is checked
    _error: Optional[CodingError]
    _deflater: Any
    _finished: bool

    def __init__(
        self,
        headers: RawHeaderListType,
        status: Union[bytes, str, int, None] = None,
        method: Union[bytes, str, None] = None,
        *,
        reencode: bool = True,
        etag: str = "weaken",
        level: int = 6,
        max_ratio: float = 100.0,
        ratio_grace: int = _MiB,
        max_size: Optional[int] = None,
    ) -> None:
        if etag not in ("weaken", "remove"):
            raise ValueError('etag must be "weaken" or "remove", not %r' % (etag,))
        if not -1 <= level <= 9:
            raise ValueError("level must be -1 (zlib's default) to 9, not %r" % (level,))
        if max_ratio <= 0 or ratio_grace < 0 or (max_size is not None and max_size < 0):
            raise ValueError("max_ratio must be above 0, ratio_grace and max_size not below 0")
        code = _status_code(status)
        self.has_body = not _has_no_body(code, method)
        self.reencode = reencode
        self.level = level
        self.max_ratio = max_ratio
        self.ratio_grace = ratio_grace
        self.max_size = max_size
        self.coded_size = 0
        self.decoded_size = 0
        self._inflater = None
        self._head = b""
        self._ended = False
        self._error = None
        self._deflater = None
        self._finished = False
        self.coding = None
        self._wbits = None
        codings = _content_codings(headers)
        reason = None
        if code == 206:
            reason = "a 206 response carries a range of the coded representation"
        elif _no_transform(headers):
            reason = "Cache-Control: no-transform (RFC 9110 7.7)"
        elif len(codings) > 1:
            reason = "several content codings (%s)" % b", ".join(codings).decode("latin-1")
        elif codings and codings[0] not in DECODABLE:
            reason = "content coding %s (only gzip, x-gzip and deflate are decoded)" % (
                codings[0].decode("latin-1"))
        self.reason = reason
        self.transformable = reason is None
        if reason is not None:
            self.headers = headers
            return
        if codings:
            self.coding = codings[0]
            if self.coding != b"deflate":
                self._wbits = _GZIP_WBITS
        fields = []
        drop_coding = self.coding is not None and not reencode
        for field in headers:
            lower = field[0].lower()
            if lower in _DROPPED:
                continue
            if lower == b"content-encoding" and drop_coding:
                continue
            if lower == b"etag":
                if etag == "remove":
                    continue
                field = (field[0], _weak(field[1]))
            fields.append(field)
        self.headers = fields

    def __repr__(self) -> str:
        if not self.transformable:
            return "<Recoder: not transformable: %s>" % self.reason
        return "<Recoder %s, %d coded bytes, %d decoded>" % (
            (self.coding or b"identity").decode("latin-1"), self.coded_size, self.decoded_size)

    # -- decoding ----------------------------------------------------------------

    def decode(self, chunk: Optional[bytes]) -> bytes:
        """The content in ``chunk`` (coded bytes of the body, as they come);
        ``None`` at the end of the body."""
        if not self.transformable:
            raise ValueError("cannot decode: %s" % self.reason)
        if self._error is not None:
            raise self._error
        if chunk is None:
            return self._decode_end()
        if not chunk or not self.has_body:
            return b""
        self.coded_size += len(chunk)
        if self.coding is None:
            self.decoded_size += len(chunk)
            return chunk
        try:
            return self._inflate(chunk)
        except CodingError as exc:
            self._error = exc
            raise

    def _budget(self, size: int) -> int:
        """How many decoded bytes a chunk of ``size`` coded bytes (already
        counted in coded_size) may still give."""
        grace = self.ratio_grace
        budget = min(
            int(self.max_ratio * size) + grace,
            int(self.max_ratio * self.coded_size) + grace - self.decoded_size,
        )
        if self.max_size is not None:
            budget = min(budget, self.max_size - self.decoded_size)
        return max(budget, 0)

    def _too_large(self, budget: int) -> BodyTooLargeError:
        limits = "max_ratio %g, ratio_grace %d" % (self.max_ratio, self.ratio_grace)
        if self.max_size is not None:
            limits += ", max_size %d" % self.max_size
        return BodyTooLargeError(
            "the %s body decodes to more than %d bytes from %d coded bytes (limits: %s)"
            % ((self.coding or b"").decode("latin-1"), self.decoded_size + budget,
               self.coded_size, limits))

    def _inflate(self, data: bytes) -> bytes:
        budget = self._budget(len(data))
        out = []
        while data:
            inflater = self._inflater
            if inflater is None:
                if self._ended:
                    if self._wbits != _GZIP_WBITS:
                        raise CorruptBodyError("%d bytes after the end of the deflate stream"
                                               % len(data))
                    # Another gzip member may follow (RFC 1952 2.2), after
                    # zero bytes that some writers pad with (as the gzip
                    # module allows).
                    data = data.lstrip(b"\0")
                    if not data:
                        break
                if self._wbits is None:
                    # Deflate comes zlib-wrapped (as RFC 9110 says) or raw
                    # (as some servers send it): a zlib header is CM 8,
                    # CINFO <= 7 and a 16-bit check (RFC 1950 2.2), which
                    # zlib itself writes and a raw stream's first block
                    # almost never matches.
                    data = self._head + data
                    if len(data) < 2:
                        self._head = data
                        break
                    self._head = b""
                    zlib_wrapped = (
                        data[0] & 0x0F == 8 and data[0] >> 4 <= 7
                        and (data[0] << 8 | data[1]) % 31 == 0
                    )
                    self._wbits = _ZLIB_WBITS if zlib_wrapped else _RAW_WBITS
                inflater = self._inflater = zlib.decompressobj(self._wbits)
                self._ended = False
            while True:
                # At most a step at a time, and one byte more than the
                # budget allows: getting that byte means over the limit,
                # found before more of the output is made.
                want = min(_STEP, budget + 1)
                try:
                    piece = inflater.decompress(data, want)
                except zlib.error as exc:
                    raise CorruptBodyError("%s: %s" % (
                        (self.coding or b"").decode("latin-1"), exc)) from None
                if len(piece) > budget:
                    raise self._too_large(budget)
                budget -= len(piece)
                self.decoded_size += len(piece)
                out.append(piece)
                if inflater.eof:
                    data = inflater.unused_data
                    self._inflater = None
                    self._ended = True
                    break
                data = inflater.unconsumed_tail
                if len(piece) < want:
                    break  # all input taken, no output waiting
                # A full step: more output may wait, in the tail or in
                # zlib's window (even with no input left).
        return b"".join(out)

    def _decode_end(self) -> bytes:
        if not self.has_body or self.coded_size == 0 or self.coding is None:
            return b""
        if self._inflater is not None or self._head or not self._ended:
            self._error = TruncatedBodyError(
                "the %s body ended after %d bytes, inside its stream"
                % (self.coding.decode("latin-1"), self.coded_size))
            raise self._error
        return b""

    # -- encoding ----------------------------------------------------------------

    def encode(self, data: bytes, end: bool = False, flush: bool = False) -> bytes:
        """The bytes to send for the content ``data``; ``end=True`` (once,
        last) finishes the coded stream."""
        if not self.transformable:
            raise ValueError("cannot encode: %s" % self.reason)
        if self._finished:
            raise ValueError("encode() after encode(..., end=True)")
        if end:
            self._finished = True
        if not self.has_body:
            return b""
        if self.coding is None or not self.reencode:
            return data
        deflater = self._deflater
        if deflater is None:
            # An empty body stays empty (no empty gzip member for it), but
            # content that was coded stays coded, even when it is empty.
            if not data and not (end and self.coded_size):
                return b""
            wbits = self._wbits if self._wbits is not None else _ZLIB_WBITS
            deflater = self._deflater = zlib.compressobj(self.level, zlib.DEFLATED, wbits)
        out: bytes = deflater.compress(data) if data else b""
        if end or flush:
            tail: bytes = deflater.flush(zlib.Z_FINISH if end else zlib.Z_SYNC_FLUSH)
            return out + tail
        return out


def limit_accept_encoding(headers: RawHeaderListType) -> RawHeaderListType:
    """``headers`` (a request's) with Accept-Encoding narrowed to the codings
    Recoder undoes (gzip, x-gzip, deflate, identity, with their weights), so
    that the origin does not answer with one it cannot (``br``, ``zstd``).
    When the client takes none of those (all absent or at ``q=0``), the
    fields are returned as they are: the response will then not be
    transformable, which is better than a 406 or a coding the client
    refused. A request without Accept-Encoding is returned as it is
    (origins send no coding then). Returns a new list; ``headers`` is not
    changed."""
    kept: List[bytes] = []
    accepted = False
    fields: RawHeaderListType = []
    position = -1
    for field in headers:
        if field[0].lower() != b"accept-encoding":
            fields.append(field)
            continue
        if position < 0:
            position = len(fields)
        for member in field[1].split(b","):
            member = member.strip(b" \t")
            coding, _, params = member.partition(b";")
            coding = coding.strip(b" \t").lower()
            if coding in DECODABLE or coding == _IDENTITY:
                kept.append(member)
                if not _refused(params):
                    accepted = True
    if position < 0:
        return fields
    if not accepted:
        # Nothing left that the client takes (none, or all at q=0, as in
        # "br, identity;q=0"): narrowing could only earn a 406 or a coding
        # the client refused. The request goes as it is; the response then
        # comes in a coding Recoder does not undo, and says so.
        return list(headers)
    name = next(n for n, _ in headers if n.lower() == b"accept-encoding")
    fields.insert(position, (name, b", ".join(kept)))
    return fields


def _refused(params: bytes) -> bool:
    """Whether a member's parameters give it weight 0 ("q=0", "q=0.000")."""
    for param in params.split(b";"):
        name, _, value = param.partition(b"=")
        if name.strip(b" \t").lower() == b"q":
            try:
                return float(value.strip(b" \t")) == 0
            except ValueError:
                return False
    return False

