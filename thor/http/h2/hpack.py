"""HPACK (RFC 7541): header compression for HTTP/2, bytes in, fields out.

``Decoder.decode(block)`` turns one complete header block into a list of
``(name, value)`` bytes pairs; ``Encoder.encode(fields)`` does the
reverse. Each side keeps its dynamic table (RFC 7541 2.3.2, section 4),
so one Decoder serves every header block a peer sends on a connection,
one Encoder every block sent to it, in order.

Errors are ``HpackError`` (a connection error, COMPRESSION_ERROR in
HTTP/2, since the two tables can no longer agree), except
``HeaderListTooLarge``: the decoder has finished the block, so the table
is still in step and only the one header list is refused.

Limits (the decoder's attributes):

* ``max_header_list_size`` (default 65536): the RFC 9113 size of the
  decoded list (every name + value + 32). Once the running total passes
  it, the decoder keeps reading the block only to keep its table in step
  and stops keeping fields, then raises ``HeaderListTooLarge``: a small
  block that decodes huge (an "HPACK bomb", many references to one big
  table entry) costs at most its own length in work and no memory.
* ``max_table_size``: the largest dynamic table size the peer may ask for
  (what we announce in SETTINGS_HEADER_TABLE_SIZE).
* An integer may have at most ``_MAX_INT_BYTES`` continuation octets.

Huffman strings decode through a table built once from the code of
Appendix B (``HUFFMAN_CODE``, typed in from the RFC): one look-up per
input octet, giving the next state and the octets completed.
"""

from __future__ import annotations

from collections import deque
from typing import Collection, Deque, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

__all__ = [
    "Decoder", "Encoder", "HpackError", "HeaderListTooLarge",
    "huffman_encode", "huffman_decode", "encode_integer", "decode_integer",
    "STATIC_TABLE", "HUFFMAN_CODE",
]

Field = Tuple[bytes, bytes]
_NONE: FrozenSet[bytes] = frozenset()


class HpackError(Exception):
    """The header block cannot be decoded (HTTP/2 COMPRESSION_ERROR)."""


class HeaderListTooLarge(HpackError):
    """The decoded header list is larger than ``max_header_list_size``.

    Raised after the whole block was read, so the dynamic table is still
    in step with the peer's and the connection can go on.
    """

    def __init__(self, size: int, limit: int) -> None:
        HpackError.__init__(
            self, "header list of at least %d bytes is over the limit of %d" % (size, limit))
        self.size = size
        self.limit = limit


# RFC 7541 Appendix A, index 1 to 61.
STATIC_TABLE: Tuple[Field, ...] = (
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
)
_STATIC_LEN = len(STATIC_TABLE)
# Encoder look-ups: a whole field, and a name (its lowest index).
_STATIC_FIELD: Dict[Field, int] = {}
_STATIC_NAME: Dict[bytes, int] = {}
for _i, _f in enumerate(STATIC_TABLE, 1):
    _STATIC_FIELD.setdefault(_f, _i)
    _STATIC_NAME.setdefault(_f[0], _i)

# RFC 7541 Appendix B: "code as hex aligned to LSB / len in bits" for
# symbols 0 to 255 and EOS (256), eight a line. Typed in from the RFC;
# tests/test_h2_hpack.py checks that it is the canonical, complete prefix
# code the lengths define, round-trips every octet and decodes Appendix C.
_HUFFMAN_TEXT = """
1ff8/13 7fffd8/23 fffffe2/28 fffffe3/28 fffffe4/28 fffffe5/28 fffffe6/28 fffffe7/28
fffffe8/28 ffffea/24 3ffffffc/30 fffffe9/28 fffffea/28 3ffffffd/30 fffffeb/28 fffffec/28
fffffed/28 fffffee/28 fffffef/28 ffffff0/28 ffffff1/28 ffffff2/28 3ffffffe/30 ffffff3/28
ffffff4/28 ffffff5/28 ffffff6/28 ffffff7/28 ffffff8/28 ffffff9/28 ffffffa/28 ffffffb/28
14/6 3f8/10 3f9/10 ffa/12 1ff9/13 15/6 f8/8 7fa/11
3fa/10 3fb/10 f9/8 7fb/11 fa/8 16/6 17/6 18/6
0/5 1/5 2/5 19/6 1a/6 1b/6 1c/6 1d/6
1e/6 1f/6 5c/7 fb/8 7ffc/15 20/6 ffb/12 3fc/10
1ffa/13 21/6 5d/7 5e/7 5f/7 60/7 61/7 62/7
63/7 64/7 65/7 66/7 67/7 68/7 69/7 6a/7
6b/7 6c/7 6d/7 6e/7 6f/7 70/7 71/7 72/7
fc/8 73/7 fd/8 1ffb/13 7fff0/19 1ffc/13 3ffc/14 22/6
7ffd/15 3/5 23/6 4/5 24/6 5/5 25/6 26/6
27/6 6/5 74/7 75/7 28/6 29/6 2a/6 7/5
2b/6 76/7 2c/6 8/5 9/5 2d/6 77/7 78/7
79/7 7a/7 7b/7 7ffe/15 7fc/11 3ffd/14 1ffd/13 ffffffc/28
fffe6/20 3fffd2/22 fffe7/20 fffe8/20 3fffd3/22 3fffd4/22 3fffd5/22 7fffd9/23
3fffd6/22 7fffda/23 7fffdb/23 7fffdc/23 7fffdd/23 7fffde/23 ffffeb/24 7fffdf/23
ffffec/24 ffffed/24 3fffd7/22 7fffe0/23 ffffee/24 7fffe1/23 7fffe2/23 7fffe3/23
7fffe4/23 1fffdc/21 3fffd8/22 7fffe5/23 3fffd9/22 7fffe6/23 7fffe7/23 ffffef/24
3fffda/22 1fffdd/21 fffe9/20 3fffdb/22 3fffdc/22 7fffe8/23 7fffe9/23 1fffde/21
7fffea/23 3fffdd/22 3fffde/22 fffff0/24 1fffdf/21 3fffdf/22 7fffeb/23 7fffec/23
1fffe0/21 1fffe1/21 3fffe0/22 1fffe2/21 7fffed/23 3fffe1/22 7fffee/23 7fffef/23
fffea/20 3fffe2/22 3fffe3/22 3fffe4/22 7ffff0/23 3fffe5/22 3fffe6/22 7ffff1/23
3ffffe0/26 3ffffe1/26 fffeb/20 7fff1/19 3fffe7/22 7ffff2/23 3fffe8/22 1ffffec/25
3ffffe2/26 3ffffe3/26 3ffffe4/26 7ffffde/27 7ffffdf/27 3ffffe5/26 fffff1/24 1ffffed/25
7fff2/19 1fffe3/21 3ffffe6/26 7ffffe0/27 7ffffe1/27 3ffffe7/26 7ffffe2/27 fffff2/24
1fffe4/21 1fffe5/21 3ffffe8/26 3ffffe9/26 ffffffd/28 7ffffe3/27 7ffffe4/27 7ffffe5/27
fffec/20 fffff3/24 fffed/20 1fffe6/21 3fffe9/22 1fffe7/21 1fffe8/21 7ffff3/23
3fffea/22 3fffeb/22 1ffffee/25 1ffffef/25 fffff4/24 fffff5/24 3ffffea/26 7ffff4/23
3ffffeb/26 7ffffe6/27 3ffffec/26 3ffffed/26 7ffffe7/27 7ffffe8/27 7ffffe9/27 7ffffea/27
7ffffeb/27 ffffffe/28 7ffffec/27 7ffffed/27 7ffffee/27 7ffffef/27 7fffff0/27 3ffffee/26
3fffffff/30
"""

#: (code, length in bits) for each symbol, 0-255 and EOS (256).
HUFFMAN_CODE: Tuple[Tuple[int, int], ...] = tuple(
    (int(code, 16), int(bits))
    for code, bits in (item.split("/") for item in _HUFFMAN_TEXT.split())
)
_EOS = 256
_CODES = [c for c, _ in HUFFMAN_CODE[:256]]
_LENGTHS = [n for _, n in HUFFMAN_CODE[:256]]


def huffman_encode(data: bytes) -> bytes:
    """``data`` in the Huffman code, padded with the high bits of EOS."""
    codes, lengths = _CODES, _LENGTHS
    out = bytearray()
    acc = 0
    bits = 0
    for octet in data:
        n = lengths[octet]
        acc = (acc << n) | codes[octet]
        bits += n
        if bits >= 32:
            # flush whole octets so the accumulator stays a small int
            bits -= 32
            out += (acc >> bits).to_bytes(4, "big")
            acc &= (1 << bits) - 1
    if bits:
        whole, rest = divmod(bits, 8)
        if rest:
            pad = 8 - rest
            acc = (acc << pad) | ((1 << pad) - 1)
            whole += 1
        out += acc.to_bytes(whole, "big")
    return bytes(out)


def huffman_length(data: bytes) -> int:
    """How many octets ``huffman_encode(data)`` takes."""
    lengths = _LENGTHS
    return (sum([lengths[o] for o in data]) + 7) >> 3


# -- the decoding state machine ------------------------------------------------
#
# The code's tree has 256 internal nodes (257 leaves). A decoder state is
# an internal node: where the bits read so far, after the last complete
# symbol, lead from the root (state 0). _NEXT[state << 8 | octet] is the
# state after reading that octet's eight bits (-1: they hit EOS, an error),
# _EMIT[...] the symbols they completed (at most two: codes are at least
# 5 bits long). A string may end only in a state reached from the root by
# at most seven 1 bits (the padding, RFC 7541 5.2): _ACCEPT.

_NEXT: List[int] = []
_EMIT: List[bytes] = []
_ACCEPT: List[bool] = []


def _build_decoder() -> None:
    # children[node] = [child for bit 0, child for bit 1]; a child >= 0 is
    # an internal node, -1 - symbol a leaf.
    children: List[List[int]] = [[0, 0]]
    present: List[List[bool]] = [[False, False]]
    for sym, (code, length) in enumerate(HUFFMAN_CODE):
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = (code >> shift) & 1
            if not present[node][bit]:
                children.append([0, 0])
                present.append([False, False])
                children[node][bit] = len(children) - 1
                present[node][bit] = True
            elif children[node][bit] < 0:
                raise AssertionError("Huffman code is not a prefix code")
            node = children[node][bit]
        bit = code & 1
        if present[node][bit]:
            raise AssertionError("Huffman code is not a prefix code")
        children[node][bit] = -1 - sym
        present[node][bit] = True
    if not all(all(p) for p in present) or len(children) != 256:
        raise AssertionError("Huffman code is not complete")
    # four bits at a time first, then octets as two nibbles
    nib_next: List[int] = []
    nib_emit: List[bytes] = []
    for state in range(256):
        for nibble in range(16):
            node = state
            out = bytearray()
            for shift in (3, 2, 1, 0):
                child = children[node][(nibble >> shift) & 1]
                if child >= 0:
                    node = child
                elif child == -1 - _EOS:
                    node = -1
                    break
                else:
                    out.append(-1 - child)
                    node = 0
            nib_next.append(node)
            nib_emit.append(bytes(out))
    interned: Dict[bytes, bytes] = {}
    for state in range(256):
        for octet in range(256):
            i = (state << 4) | (octet >> 4)
            mid = nib_next[i]
            if mid < 0:
                _NEXT.append(-1)
                _EMIT.append(b"")
                continue
            j = (mid << 4) | (octet & 15)
            _NEXT.append(nib_next[j])
            emit = nib_emit[i] + nib_emit[j]
            # one object per distinct string: the table stays small
            _EMIT.append(interned.setdefault(emit, emit))
    _ACCEPT.extend([False] * 256)
    node = 0
    for _ in range(8):
        _ACCEPT[node] = True
        node = children[node][1]


def huffman_decode(data: bytes) -> bytes:
    """Decode a Huffman-coded string; HpackError when it is not valid."""
    if not _NEXT:
        # built on first use (~50 ms, 1.8 MB), not when thor.http is imported
        _build_decoder()
    nxt, emit = _NEXT, _EMIT
    state = 0
    parts = []
    for octet in data:
        i = (state << 8) | octet
        state = nxt[i]
        if state < 0:
            raise HpackError("EOS in a Huffman-coded string")
        parts.append(emit[i])
    if not _ACCEPT[state]:
        raise HpackError("Huffman-coded string badly padded")
    return b"".join(parts)


# -- integers and strings (RFC 7541 5.1, 5.2) ------------------------------------

# An integer may run to this many continuation octets (2**35: more than
# any length or index a block can hold).
_MAX_INT_BYTES = 5


def encode_integer(value: int, prefix_bits: int, first: int = 0) -> bytearray:
    """``value`` on an N-bit prefix; ``first`` holds the bits above it."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytearray((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return out


def decode_integer(data: bytes, pos: int, prefix_bits: int) -> Tuple[int, int]:
    """(value, position after it) of the integer whose prefix is at ``pos``."""
    limit = (1 << prefix_bits) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise HpackError("header block ends inside an integer")
        octet = data[pos]
        pos += 1
        value += (octet & 127) << shift
        if not octet & 128:
            return value, pos
        shift += 7
        if shift >= 7 * _MAX_INT_BYTES:
            raise HpackError("integer too large")


def _decode_string(data: bytes, pos: int, cache: bool = True) -> Tuple[bytes, int]:
    end = len(data)
    if pos >= end:
        raise HpackError("header block ends before a string")
    huffman = data[pos] & 128
    length, pos = decode_integer(data, pos, 7)
    stop = pos + length
    if stop > end:
        raise HpackError("string longer than the header block")
    raw = data[pos:stop]
    if huffman:
        # a short string seen before (a :path sent without indexing, say)
        # is one look-up; the cache is emptied when full, bounding it.
        # Credentials stay out: no timing tells one connection another's.
        text = _HUFFMAN_CACHE.get(raw) if cache else None
        if text is None:
            text = huffman_decode(raw)
            if cache and length <= _HUFFMAN_CACHE_LEN:
                if len(_HUFFMAN_CACHE) >= _HUFFMAN_CACHE_MAX:
                    _HUFFMAN_CACHE.clear()
                _HUFFMAN_CACHE[raw] = text
        return text, stop
    return raw, stop


_HUFFMAN_CACHE: Dict[bytes, bytes] = {}
# Decoded blocks and encoded lists kept per connection (see Decoder._cache
# and Encoder._cache): how many, and how long a block.
_BLOCK_CACHE_MAX = 64
_BLOCK_CACHE_LEN = 512
# the encoder's: a short string -> its coded form, length prefix included
_ENCODED_CACHE: Dict[bytes, bytes] = {}
_HUFFMAN_CACHE_MAX = 1024
_HUFFMAN_CACHE_LEN = 64


# -- the dynamic table ------------------------------------------------------------

class _Table:
    """A dynamic table (RFC 7541 2.3.2, 4): newest entry first."""

    __slots__ = ("entries", "size", "max_size")

    def __init__(self, max_size: int) -> None:
        self.entries: Deque[Field] = deque()
        self.size = 0
        self.max_size = max_size

    def add(self, name: bytes, value: bytes) -> None:
        need = len(name) + len(value) + 32
        entries = self.entries
        if need > self.max_size:
            # RFC 7541 4.4: an entry larger than the table empties it
            entries.clear()
            self.size = 0
            return
        size = self.size + need
        limit = self.max_size
        while size > limit:
            old_name, old_value = entries.pop()
            size -= len(old_name) + len(old_value) + 32
        entries.appendleft((name, value))
        self.size = size

    def resize(self, max_size: int) -> None:
        self.max_size = max_size
        entries = self.entries
        size = self.size
        while size > max_size:
            old_name, old_value = entries.pop()
            size -= len(old_name) + len(old_value) + 32
        self.size = size


class Decoder:
    """Decodes the header blocks one peer sends, in the order it sent them.

    ``max_table_size`` is the SETTINGS_HEADER_TABLE_SIZE we announced
    (the peer may use up to that much); ``max_header_list_size`` bounds
    each decoded list (see the module docstring).
    """

    __slots__ = (
        "_table", "max_table_size", "max_header_list_size", "never_indexed", "_cache",
        "_need_update",
    )

    def __init__(self, max_table_size: int = 4096, max_header_list_size: int = 65536) -> None:
        self._table = _Table(max_table_size)
        self.max_table_size = max_table_size
        self.max_header_list_size = max_header_list_size
        # Blocks that left the table as it was -> (list, never_indexed, list
        # size): a client repeating a request sends the same few octets of
        # indexed fields each time, decoded then by one look-up. Any change
        # to the table empties it, since the same octets may then mean
        # other fields.
        self._cache: Dict[bytes, Tuple[List[Field], FrozenSet[bytes], int]] = {}
        #: names the last block sent as never-indexed literals: an
        #: intermediary must send them on the same way (RFC 7541 7.1.3)
        self.never_indexed: FrozenSet[bytes] = _NONE
        # the next block must open with a size update (set_max_table_size)
        self._need_update = False

    def set_max_table_size(self, size: int) -> None:
        """Our SETTINGS_HEADER_TABLE_SIZE, once the peer acknowledged it.
        Below the table's size now, the peer's next block must start with
        a size update to at most ``size`` (RFC 7541 4.2), or HpackError."""
        self.max_table_size = size
        if size < self._table.max_size:
            self._need_update = True
            # a cached block would skip the check
            self._cache.clear()

    @property
    def table(self) -> List[Field]:
        """The dynamic table's entries, newest (index 62) first."""
        return list(self._table.entries)

    @property
    def table_size(self) -> int:
        return self._table.size

    def decode(self, data: bytes) -> List[Field]:
        """The header list in one complete header block. The list may be
        returned again for the same block: do not modify it."""
        cached = self._cache.get(data)
        if cached is not None and cached[2] <= self.max_header_list_size:
            self.never_indexed = cached[1]
            return cached[0]
        changed = False
        table = self._table
        entries = table.entries
        static = STATIC_TABLE
        fields: List[Field] = []
        append = fields.append
        limit = self.max_header_list_size
        total = 0
        pos = 0
        end = len(data)
        # RFC 7541 4.2: at most two size updates, before the first field
        updates = 2
        if self._need_update:
            if not end or data[0] & 224 != 32:
                raise HpackError("no table size update after SETTINGS_HEADER_TABLE_SIZE lowered")
        never: Optional[Set[bytes]] = None
        while pos < end:
            octet = data[pos]
            if octet & 128:
                # indexed field (6.1)
                if octet < 255:
                    index = octet & 127
                    pos += 1
                else:
                    index, pos = decode_integer(data, pos, 7)
                if index > _STATIC_LEN:
                    try:
                        field = entries[index - _STATIC_LEN - 1]
                    except IndexError:
                        raise HpackError("index %d out of the table" % index) from None
                elif index:
                    field = static[index - 1]
                else:
                    raise HpackError("index 0")
                updates = 0
            elif octet & 224 == 32:
                # dynamic table size update (6.3)
                if updates <= 0:
                    raise HpackError("table size update after a field, or more than two")
                updates -= 1
                size, pos = decode_integer(data, pos, 5)
                if size > self.max_table_size:
                    raise HpackError("table size update to %d over the limit of %d" % (
                        size, self.max_table_size))
                table.resize(size)
                self._need_update = False
                changed = True
                continue
            else:
                # literal: with incremental indexing (6.2.1, 01xxxxxx) or
                # without / never indexed (6.2.2, 6.2.3: 0000xxxx, 0001xxxx)
                updates = 0
                indexing = octet & 64
                index, pos = decode_integer(data, pos, 6 if indexing else 4)
                if index:
                    if index <= _STATIC_LEN:
                        name = static[index - 1][0]
                    else:
                        try:
                            name = entries[index - _STATIC_LEN - 1][0]
                        except IndexError:
                            raise HpackError("index %d out of the table" % index) from None
                else:
                    name, pos = _decode_string(data, pos)
                value, pos = _decode_string(data, pos, not (
                    octet & 16 and not indexing) and name not in _SENSITIVE)
                field = (name, value)
                if indexing:
                    table.add(name, value)
                    changed = True
                elif octet & 16:
                    if never is None:
                        never = set()
                    never.add(name)
            total += len(field[0]) + len(field[1]) + 32
            if total <= limit:
                append(field)
        never_indexed = self.never_indexed = frozenset(never) if never else _NONE
        if total > limit:
            if changed:
                self._cache.clear()
            raise HeaderListTooLarge(total, limit)
        cache = self._cache
        if changed:
            cache.clear()
        elif end <= _BLOCK_CACHE_LEN:
            if len(cache) >= _BLOCK_CACHE_MAX:
                cache.clear()
            cache[data] = (fields, never_indexed, total)
        return fields


# Fields never put in the dynamic table, always sent as never-indexed
# literals (RFC 7541 7.1.3): credentials an attacker could probe for by
# watching the compressed size.
NEVER_INDEXED = frozenset((b"authorization", b"proxy-authorization"))
# Cookies shorter than this are never indexed either (7.1.3: short values
# are guessable).
SHORT_COOKIE = 20
# Values kept out of the string caches.
_SENSITIVE = NEVER_INDEXED | {b"cookie", b"set-cookie"}
# Fields sent without indexing by default: values that seldom repeat, so
# indexing them would only evict entries that do.
NOT_INDEXED = frozenset((
    b":path", b"content-length", b"content-range", b"etag", b"if-none-match",
    b"if-modified-since", b"if-unmodified-since", b"last-modified", b"date", b"age",
    b"expires", b"set-cookie", b"link", b"location", b"referer", b"range",
))


class Encoder:
    """Encodes the header blocks sent to one peer, in the order they go out.

    ``huffman``: Huffman-code a string when that makes it shorter.
    ``not_indexed``: names whose fields are sent without indexing.
    Credentials (``NEVER_INDEXED``, short cookies, and names passed to
    ``encode`` as ``never_index``) are sent as never-indexed literals.
    ``max_table_size`` is what we are prepared to use; the table used is
    the smaller of it and the peer's SETTINGS_HEADER_TABLE_SIZE
    (``set_peer_table_size``).
    """

    __slots__ = (
        "_table", "huffman", "not_indexed", "_max_table_size", "_pending_sizes",
        "_inserted", "_field_at", "_name_at", "_cache",
    )

    def __init__(
        self, max_table_size: int = 4096, huffman: bool = True,
        not_indexed: Collection[bytes] = NOT_INDEXED,
    ) -> None:
        self._max_table_size = max_table_size
        self._table = _Table(min(max_table_size, 4096))
        self.huffman = huffman
        self.not_indexed = not_indexed
        # table size updates to announce at the start of the next block
        self._pending_sizes: List[int] = []
        if max_table_size < 4096:
            # the peer's decoder starts at 4096 (RFC 7541 4.2)
            self._pending_sizes.append(max_table_size)
        # Look-ups without scanning the table: the number of the latest
        # insertion of each field and name; an entry is still in the table
        # while fewer than len(entries) were added after it (eviction takes
        # the oldest), and its index follows from that age.
        self._inserted = 0
        self._field_at: Dict[Field, int] = {}
        self._name_at: Dict[bytes, int] = {}
        # Lists encoded without a change to the table -> their block (the
        # same list encodes the same way until the table changes; emptied
        # when it does). A server answering alike pays one look-up.
        self._cache: Dict[Tuple[Field, ...], bytes] = {}

    def _index_of(self, number: int) -> int:
        """The index of the entry inserted as ``number`` (0: evicted)."""
        age = self._inserted - 1 - number
        if age < len(self._table.entries):
            return age + _STATIC_LEN + 1
        return 0

    def _add(self, name: bytes, value: bytes) -> None:
        self._cache.clear()
        entries = self._table.entries
        self._table.add(name, value)
        number = self._inserted
        self._inserted = number + 1
        self._field_at[(name, value)] = number
        self._name_at[name] = number
        if len(self._field_at) > 2 * len(entries) + 64:
            # drop what was evicted, oldest first so the newest number wins
            field_at: Dict[Field, int] = {}
            name_at: Dict[bytes, int] = {}
            last = len(entries) - 1
            for age in range(last, -1, -1):
                entry = entries[age]
                field_at[entry] = self._inserted - 1 - age
                name_at[entry[0]] = self._inserted - 1 - age
            self._field_at = field_at
            self._name_at = name_at

    @property
    def table(self) -> List[Field]:
        """The dynamic table's entries, newest (index 62) first."""
        return list(self._table.entries)

    @property
    def table_size(self) -> int:
        return self._table.size

    def set_peer_table_size(self, size: int) -> None:
        """The peer's SETTINGS_HEADER_TABLE_SIZE changed to ``size``."""
        new = min(size, self._max_table_size)
        if new == self._table.max_size and not self._pending_sizes:
            return
        # RFC 7541 4.2: signal the smallest size reached, then the final one
        pending = self._pending_sizes
        if not pending:
            pending.append(new)
        elif new < min(pending):
            pending[:] = [new]
        else:
            pending[1:] = [new]
        self._table.resize(new)
        self._cache.clear()

    def _string(self, out: bytearray, data: bytes, cache: bool = True) -> None:
        if self.huffman and len(data) > 1:
            coded = _ENCODED_CACHE.get(data) if cache else None
            if coded is None:
                coded_len = huffman_length(data)
                if coded_len <= len(data):
                    coded = bytes(encode_integer(coded_len, 7, 128)) + huffman_encode(data)
                else:
                    coded = bytes(encode_integer(len(data), 7)) + data
                if cache and len(data) <= _HUFFMAN_CACHE_LEN:
                    if len(_ENCODED_CACHE) >= _HUFFMAN_CACHE_MAX:
                        _ENCODED_CACHE.clear()
                    _ENCODED_CACHE[data] = coded
            out += coded
            return
        out += encode_integer(len(data), 7)
        out += data

    def encode(self, fields: Iterable[Field], never_index: Collection[bytes] = ()) -> bytes:
        """One header block for ``fields`` (names must be lowercase)."""
        key: Optional[Tuple[Field, ...]] = None
        if not never_index and not self._pending_sizes:
            key = tuple(fields)
            try:
                block = self._cache.get(key)
            except TypeError:  # fields given as lists: encoded, not cached
                fields = key
                key = None
            else:
                if block is not None:
                    return block
                fields = key
        inserted = self._inserted
        out = bytearray()
        if self._pending_sizes:
            for size in self._pending_sizes:
                out += encode_integer(size, 5, 32)
            self._pending_sizes = []
        table = self._table
        field_at = self._field_at
        name_at = self._name_at
        for name, value in fields:
            field = (name, value)
            never = (
                name in NEVER_INDEXED or name in never_index
                or (name == b"cookie" and len(value) < SHORT_COOKIE)
            )
            if not never:
                index = _STATIC_FIELD.get(field, 0)
                if not index:
                    number = field_at.get(field)
                    if number is not None:
                        index = self._index_of(number)
                if index:
                    out += encode_integer(index, 7, 128)
                    continue
            name_index = _STATIC_NAME.get(name, 0)
            if not name_index:
                number = name_at.get(name)
                if number is not None:
                    name_index = self._index_of(number)
            if never:
                out += encode_integer(name_index, 4, 16)
            elif (
                name in self.not_indexed
                or len(name) + len(value) + 32 > table.max_size * 3 // 4
            ):
                out += encode_integer(name_index, 4, 0)
            else:
                out += encode_integer(name_index, 6, 64)
                self._add(name, value)
                field_at = self._field_at
                name_at = self._name_at
            if not name_index:
                self._string(out, name)
            self._string(out, value, not never and name not in _SENSITIVE)
        block = bytes(out)
        if key is not None and self._inserted == inserted and len(block) <= _BLOCK_CACHE_LEN:
            cache = self._cache
            if len(cache) >= _BLOCK_CACHE_MAX:
                cache.clear()
            cache[key] = block
        return block
