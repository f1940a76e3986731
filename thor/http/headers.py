"""Header fields: the public helpers, the byte classes, and what thor sends.

Owns:

* the seed's helpers over header tuples: ``header_names``, ``header_dict``
  and ``get_header``. They take ``bytes`` tuples (and answer in ``bytes``)
  or ``str`` tuples (and answer in ``str``); a field name given as the
  other type is converted (Latin-1).
* the byte classes of RFC 9110 (``TCHAR``, ``is_token``) that the parser
  shares;
* the rules for fields thor sends: ``encode_field_name``,
  ``encode_field_value``, ``encode_headers``, ``encode_status``,
  ``encode_phrase`` raise an ``ApplicationError`` (a ``ValueError``) at the
  call for anything that would put invalid bytes on the wire;
* which fields are not forwarded: ``HOP_BY_HOP`` and ``strip_hop_by_hop``
  (RFC 9110 7.6.1), and ``TRAILER_FORBIDDEN`` (RFC 9110 6.5.1);
* list fields' members (``field_tokens``): thor's one reading of a
  Connection field (and of Expect, Transfer-Encoding...), and
  ``CONNECTION_OPTIONS``, the Connection tokens that are not field names.

thor.http.common re-exports the helpers under Thor 0.17's names.
"""

from __future__ import annotations

from collections import defaultdict
from typing import (
    TYPE_CHECKING, AnyStr, DefaultDict, Dict, Iterable, List, Optional, Set, Tuple,
    Type, TypeVar, Union,
)

from thor.http.error import BadHeaderError, BadStatusError, detail_text

if TYPE_CHECKING:
    from thor.types import HeaderInput, RawHeaderListType, StatusInput, TextInput

__all__ = [
    "header_names", "header_dict", "get_header",
    "TCHAR", "CTL_EXCEPT_HTAB", "is_token", "HOP_BY_HOP", "TRAILER_FORBIDDEN",
    "CONNECTION_OPTIONS", "field_tokens",
    "to_bytes_field", "encode_field_name", "encode_field_value", "encode_headers",
    "encode_body_chunk", "strip_hop_by_hop", "encode_status", "encode_phrase",
]

# RFC 9110 5.6.2: tchar. Deleting these from a name leaves b"" iff it is a token.
TCHAR = (
    b"!#$%&'*+-.^_`|~0123456789"
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

# RFC 9110 5.5: a field value is field-vchar (VCHAR, obs-text), SP and HTAB;
# every other control, and DEL, is invalid.
CTL_EXCEPT_HTAB = bytes(range(0x00, 0x09)) + bytes(range(0x0A, 0x20)) + b"\x7f"

_OWS = b" \t"

HOP_BY_HOP = frozenset((
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
    b"transfer-encoding", b"upgrade",
))

# Connection options thor acts on itself (RFC 9112 9.3, 9.6; RFC 9110
# 7.8), rather than names of fields to remove (RFC 9110 7.6.1).
CONNECTION_OPTIONS = frozenset((b"close", b"keep-alive", b"upgrade"))

# RFC 9110 6.5.1: fields a recipient must not take from a trailer section,
# because they have to be known before the content: framing
# (content-length, transfer-encoding, trailer), routing (host), connection
# management, request modifiers and controls (RFC 9110 7.6, 10.1),
# authentication (RFC 9110 11), and content format (RFC 9110 8.3-8.5, 14.4).
TRAILER_FORBIDDEN = frozenset((
    b"content-length", b"transfer-encoding", b"trailer",
    b"host",
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade",
    b"cache-control", b"expect", b"max-forwards", b"pragma", b"range",
    b"authorization", b"proxy-authorization", b"www-authenticate",
    b"proxy-authenticate",
    b"content-encoding", b"content-type", b"content-range",
))

# A header tuple of any kind an application may pass.
_Field = TypeVar("_Field", bound="Tuple[Union[str, bytes], Union[str, bytes]]")


def is_token(value: bytes) -> bool:
    """True if ``value`` (bytes) is a non-empty RFC 9110 token."""
    return bool(value) and not value.translate(None, TCHAR)


def _quoted(value: object) -> str:
    """``value`` (bytes or str) between quotes, as text for a detail."""
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return '"%s"' % detail_text(value, 80)
    return repr(value)


# -- the seed's helpers -------------------------------------------------------


def _both_cases(name: object) -> Tuple[Optional[bytes], str]:
    """(lower-case bytes or None, lower-case str) for a field name of either type."""
    if isinstance(name, str):
        text = name.lower()
        try:
            return text.encode("latin-1"), text
        except UnicodeEncodeError:
            return None, text
    if isinstance(name, (bytes, bytearray, memoryview)):
        raw = bytes(name).lower()
        return raw, raw.decode("latin-1")
    raise TypeError("field names are str or bytes, not %s" % type(name).__name__)


def _split_values(value: AnyStr) -> List[AnyStr]:
    # RFC 9110 5.6.1: recipients ignore empty list elements.
    if isinstance(value, str):
        return [v for v in (p.strip(" \t") for p in value.split(",")) if v]
    return [v for v in (p.strip(_OWS) for p in value.split(b",")) if v]


def field_tokens(values: Iterable[bytes]) -> Set[bytes]:
    """The lower-cased members of the comma-separated list field values
    ``values`` (bytes), e.g. of every Connection field of a head: optional
    whitespace around members is dropped, and so are empty members
    (RFC 9110 5.6.1: ``, close ,,``)."""
    if values.__class__ is list and len(values) == 1:
        # The usual head: one field, one member (the parser's hot path).
        value: bytes = values[0]
        if b"," not in value:
            item = value.strip(_OWS).lower()
            return {item} if item else set()
    return {
        item.lower() for value in values for item in value.split(b",")
        for item in (item.strip(_OWS),) if item
    }


def header_names(headers: Iterable[Tuple[AnyStr, AnyStr]]) -> Set[AnyStr]:
    """The set of lower-cased field names in ``headers``."""
    return {name.lower() for name, _ in headers}


def header_dict(
    headers: Iterable[Tuple[AnyStr, AnyStr]],
    omit: Union[Iterable[TextInput], TextInput, None] = None,
) -> DefaultDict[AnyStr, List[AnyStr]]:
    """{lower-cased name: [values]} with values split on commas.

    Empty list elements are dropped (RFC 9110 5.6.1); a name whose values
    are all empty is still a key. Names in ``omit`` (any case, str or bytes;
    a single name is taken as one name) are left out. The result is a
    ``defaultdict(list)``, so a missing name reads as ``[]``, as in
    upstream Thor.
    """
    skip: Set[Union[str, bytes]] = set()
    if isinstance(omit, (str, bytes)):
        omit = [omit]
    for name in omit or ():
        skip.update(n for n in _both_cases(name) if n is not None)
    out: DefaultDict[AnyStr, List[AnyStr]] = defaultdict(list)
    for name, value in headers:
        key = name.lower()
        if key in skip:
            continue
        out[key].extend(_split_values(value))
    return out


def get_header(headers: Iterable[Tuple[AnyStr, AnyStr]], fieldname: TextInput) -> List[AnyStr]:
    """The values of ``fieldname`` in ``headers``, split on commas."""
    name_bytes, name_str = _both_cases(fieldname)
    out: List[AnyStr] = []
    for name, value in headers:
        wanted = name_str if isinstance(name, str) else name_bytes
        if name.lower() == wanted:
            out.extend(_split_values(value))
    return out


# -- what thor sends ----------------------------------------------------------


def to_bytes_field(value: object, error: Type[ValueError] = BadHeaderError) -> bytes:
    """``str`` as Latin-1 bytes; bytes-like as bytes; anything else TypeError.

    Text that is not Latin-1 raises ``error`` (a ValueError subclass)."""
    if type(value) is bytes:
        return value  # narrowed by the exact type check
    if isinstance(value, str):
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            raise error("not Latin-1 text: %s" % _quoted(value)) from None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError("expected str or bytes, not %s" % type(value).__name__)


# Names an application has already had checked, mapped to their bytes form.
# Applications reuse a handful of names; the bound keeps a proxy relaying
# arbitrary names from growing it without limit.
_name_cache: Dict[Union[str, bytes], bytes] = {}
_NAME_CACHE_MAX = 512


def encode_field_name(name: object) -> bytes:
    """``name`` as bytes, or BadHeaderError if it is not a token."""
    cacheable = type(name) is str or type(name) is bytes
    if cacheable:
        # str or bytes, checked above
        known: Optional[bytes] = _name_cache.get(name)  # type: ignore[call-overload]
        if known is not None:
            return known
    raw = to_bytes_field(name)
    if not is_token(raw):
        raise BadHeaderError("field name is not a token: %s" % _quoted(name))
    if cacheable and len(_name_cache) < _NAME_CACHE_MAX and len(raw) <= 64:
        _name_cache[name] = raw  # type: ignore[index]  # str or bytes (checked above)
    return raw


def encode_field_value(value: object) -> bytes:
    """``value`` as bytes without leading and trailing SP / HTAB, or
    BadHeaderError if it holds CR, LF, NUL or another control but HTAB.

    The surrounding whitespace is dropped so that the writer controls it:
    thor writes ``name: value``."""
    raw = to_bytes_field(value).strip(_OWS)
    if len(raw.translate(None, CTL_EXCEPT_HTAB)) != len(raw):
        raise BadHeaderError("control character in field value: %s" % _quoted(value))
    return raw


def encode_body_chunk(chunk: object) -> bytes:
    """A body chunk that is not bytes, as bytes: str as UTF-8, bytearray and
    memoryview copied; anything else is a TypeError."""
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError("body chunks must be bytes or str, not %s" % type(chunk).__name__)


def encode_headers(headers: HeaderInput) -> RawHeaderListType:
    """[(bytes name, bytes value)] for header tuples of str or bytes.

    Raises BadHeaderError (naming the field) for a name that is not a token
    or a value with forbidden bytes, TypeError for other types."""
    out: RawHeaderListType = []
    for field in headers:
        try:
            if isinstance(field, (str, bytes)):
                raise TypeError
            name, value = field
        except (TypeError, ValueError):
            raise BadHeaderError("a field is a (name, value) tuple: %s" % _quoted(field)) from None
        raw_name = encode_field_name(name)
        try:
            raw_value = encode_field_value(value)
        except BadHeaderError as err:
            raise BadHeaderError("%s: %s" % (raw_name.decode("latin-1"), err.detail)) from None
        out.append((raw_name, raw_value))
    return out


def _lower_bytes(name: Union[str, bytes]) -> bytes:
    if isinstance(name, str):
        return name.lower().encode("latin-1", "replace")
    return name.lower()


def strip_hop_by_hop(headers: List[_Field], also: Iterable[TextInput] = ()) -> List[_Field]:
    """``headers`` without hop-by-hop fields, the fields that any Connection
    field names (RFC 9110 7.6.1), and those named in ``also``; the same
    list when it has none.

    Content-Length is kept whatever Connection says: a sender may not make
    a field that frames the message hop-by-hop. Proxy-Authenticate /
    Proxy-Authorization are left for the application."""
    hop = HOP_BY_HOP
    extra = {_lower_bytes(n) for n in also} if also else None
    for name, _ in headers:
        low = _lower_bytes(name)
        if low in hop or (extra and low in extra):
            break
    else:
        return headers
    drop = set(hop)
    if extra:
        drop.update(extra)
    for name, value in headers:
        if _lower_bytes(name) == b"connection":
            drop.update(
                _lower_bytes(v) for v in _split_values(value)  # type: ignore[type-var]
            )
    drop.discard(b"content-length")
    return [field for field in headers if _lower_bytes(field[0]) not in drop]


_status_cache: Dict[Union[int, str, bytes], bytes] = {}


def encode_status(status: StatusInput) -> bytes:
    """A status code (int, or 3 digits as str / bytes) as 3 bytes in 100-599,
    else BadStatusError (RFC 9110 15)."""
    kind = type(status)
    if kind is int or kind is str or kind is bytes:
        raw = _status_cache.get(status)
        if raw is not None:
            return raw
    if kind is int:
        raw = b"%d" % status  # type: ignore[str-format]  # an int (checked above)
    elif isinstance(status, (str, bytes)):
        raw = to_bytes_field(status, BadStatusError)
    else:
        raise BadStatusError("status is an int, str or bytes: %r" % (status,))
    if len(raw) != 3 or not raw.isdigit() or not b"100" <= raw <= b"599":
        raise BadStatusError("status must be 100-599: %s" % _quoted(status))
    if len(_status_cache) < 1024:
        _status_cache[status] = raw
    return raw


def encode_phrase(phrase: object) -> bytes:
    """A reason phrase as bytes (HTAB / SP / VCHAR / obs-text only), else
    BadStatusError."""
    raw = to_bytes_field(phrase, BadStatusError)
    if len(raw.translate(None, CTL_EXCEPT_HTAB)) != len(raw):
        raise BadStatusError("control character in reason phrase: %s" % _quoted(phrase))
    return raw
