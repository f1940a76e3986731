"""thor.http.h2.hpack: RFC 7541, against its Appendix C examples."""

import os
import random
import unittest

from thor.http.h2 import hpack
from thor.http.h2.hpack import Decoder, Encoder, HpackError, HeaderListTooLarge


def unhex(text):
    return bytes.fromhex("".join(text.split()))


REQ1 = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
        (b":authority", b"www.example.com")]
REQ2 = REQ1 + [(b"cache-control", b"no-cache")]
REQ3 = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
        (b":authority", b"www.example.com"), (b"custom-key", b"custom-value")]
REQ_TABLES = [
    ([(b":authority", b"www.example.com")], 57),
    ([(b"cache-control", b"no-cache"), (b":authority", b"www.example.com")], 110),
    ([(b"custom-key", b"custom-value"), (b"cache-control", b"no-cache"),
      (b":authority", b"www.example.com")], 164),
]
COOKIE = b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
RESP1 = [(b":status", b"302"), (b"cache-control", b"private"),
         (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"),
         (b"location", b"https://www.example.com")]
RESP2 = [(b":status", b"307")] + RESP1[1:]
RESP3 = [(b":status", b"200"), (b"cache-control", b"private"),
         (b"date", b"Mon, 21 Oct 2013 20:13:22 GMT"),
         (b"location", b"https://www.example.com"), (b"content-encoding", b"gzip"),
         (b"set-cookie", COOKIE)]
RESP_TABLES = [
    ([(b"location", b"https://www.example.com"),
      (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"),
      (b"cache-control", b"private"), (b":status", b"302")], 222),
    ([(b":status", b"307"), (b"location", b"https://www.example.com"),
      (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"),
      (b"cache-control", b"private")], 222),
    ([(b"set-cookie", COOKIE), (b"content-encoding", b"gzip"),
      (b"date", b"Mon, 21 Oct 2013 20:13:22 GMT")], 215),
]

C3 = [
    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "8286 84be 5808 6e6f 2d63 6163 6865",
    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
]
C4 = [
    "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
    "8286 84be 5886 a8eb 1064 9cbf",
    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
]
C5 = [
    """4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
    2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
    6c65 2e63 6f6d""",
    "4803 3330 37c1 c0bf",
    """88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
    54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
    5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
    3d31""",
]
C6 = [
    """4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
    2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3""",
    "4883 640e ffc1 c0bf",
    """88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
    77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
    9587 3160 65c0 03ed 4ee5 b106 3d50 07""",
]


class HuffmanTest(unittest.TestCase):

    def test_table_is_the_canonical_code_its_lengths_define(self):
        # Appendix B's code is canonical: ordered by (length, symbol), each
        # code the previous plus one, shifted left when the length grows.
        # A mistyped code or length breaks this.
        code = hpack.HUFFMAN_CODE
        self.assertEqual(len(code), 257)
        order = sorted(range(257), key=lambda s: (code[s][1], s))
        expect = 0
        prev_len = code[order[0]][1]
        for sym in order:
            c, n = code[sym]
            expect <<= n - prev_len
            prev_len = n
            self.assertEqual(c, expect, "symbol %d" % sym)
            expect += 1
        # complete (Kraft sum 1) and EOS is 30 ones
        self.assertEqual(sum(2 ** (30 - n) for _, n in code), 2 ** 30)
        self.assertEqual(code[256], (0x3fffffff, 30))

    def test_some_codes_from_appendix_b(self):
        for sym, pair in [(ord("0"), (0x0, 5)), (ord(" "), (0x14, 6)), (ord("a"), (0x3, 5)),
                          (ord("<"), (0x7ffc, 15)), (0, (0x1ff8, 13)),
                          (255, (0x3ffffee, 26)), (10, (0x3ffffffc, 30))]:
            self.assertEqual(hpack.HUFFMAN_CODE[sym], pair)

    def test_every_octet_round_trips(self):
        for i in range(256):
            data = bytes([i])
            self.assertEqual(hpack.huffman_decode(hpack.huffman_encode(data)), data)
            self.assertEqual(hpack.huffman_length(data), len(hpack.huffman_encode(data)))
        data = bytes(range(256)) * 3
        self.assertEqual(hpack.huffman_decode(hpack.huffman_encode(data)), data)
        for n in range(0, 100):
            data = os.urandom(n)
            self.assertEqual(hpack.huffman_decode(hpack.huffman_encode(data)), data)

    def test_appendix_c_strings(self):
        for coded, text in [
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", b"www.example.com"),
            ("a8eb 1064 9cbf", b"no-cache"),
            ("25a8 49e9 5ba9 7d7f", b"custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", b"custom-value"),
            ("6402", b"302"), ("aec3 771a 4b", b"private"),
            ("d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
             b"Mon, 21 Oct 2013 20:13:21 GMT"),
            ("9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3", b"https://www.example.com"),
            ("640e ff", b"307"), ("9bd9 ab", b"gzip"),
        ]:
            self.assertEqual(hpack.huffman_decode(unhex(coded)), text)
            self.assertEqual(hpack.huffman_encode(text), unhex(coded))

    def test_eos_in_string_is_an_error(self):
        # EOS (30 ones) then padding: 32 one bits
        with self.assertRaisesRegex(HpackError, "EOS"):
            hpack.huffman_decode(b"\xff\xff\xff\xff")

    def test_padding_longer_than_seven_bits_is_an_error(self):
        # "0" is 00000; then 11 one bits of padding
        with self.assertRaisesRegex(HpackError, "padded"):
            hpack.huffman_decode(bytes([0b00000111, 0b11111111]))
        # a whole octet of ones alone
        with self.assertRaisesRegex(HpackError, "padded"):
            hpack.huffman_decode(b"\xff")

    def test_padding_not_ones_is_an_error(self):
        # "0" (00000) then 000 padding: decodes as a partial code, not EOS bits
        with self.assertRaisesRegex(HpackError, "padded"):
            hpack.huffman_decode(bytes([0b00000000]))
        self.assertEqual(hpack.huffman_decode(bytes([0b00000111])), b"0")


class IntegerTest(unittest.TestCase):

    def test_appendix_c1(self):
        self.assertEqual(hpack.encode_integer(10, 5), bytearray([10]))
        self.assertEqual(hpack.encode_integer(1337, 5), bytearray([31, 154, 10]))
        self.assertEqual(hpack.encode_integer(42, 8), bytearray([42]))
        self.assertEqual(hpack.decode_integer(bytes([0xea]), 0, 5), (10, 1))
        self.assertEqual(hpack.decode_integer(bytes([0xff, 154, 10]), 0, 5), (1337, 3))
        self.assertEqual(hpack.decode_integer(bytes([42]), 0, 8), (42, 1))

    def test_round_trip(self):
        for prefix in range(1, 9):
            for value in [0, 1, 2 ** prefix - 2, 2 ** prefix - 1, 2 ** prefix, 127, 128,
                          300, 16383, 16384, 2 ** 24, 2 ** 31 - 1]:
                data = bytes(hpack.encode_integer(value, prefix))
                self.assertEqual(hpack.decode_integer(data, 0, prefix), (value, len(data)))

    def test_overflow(self):
        with self.assertRaisesRegex(HpackError, "too large"):
            hpack.decode_integer(b"\x1f" + b"\xff" * 10 + b"\x01", 0, 5)
        # zero continuation octets forever are refused too
        with self.assertRaisesRegex(HpackError, "too large"):
            hpack.decode_integer(b"\x1f" + b"\x80" * 10 + b"\x00", 0, 5)

    def test_truncated(self):
        with self.assertRaisesRegex(HpackError, "ends inside"):
            hpack.decode_integer(b"\x1f\xff", 0, 5)


class AppendixCTest(unittest.TestCase):

    def decode_sequence(self, blocks, lists, tables, size=4096):
        d = Decoder(max_table_size=size)
        d._table.resize(size)
        for block, expect, (table, table_size) in zip(blocks, lists, tables):
            self.assertEqual(d.decode(unhex(block)), expect)
            self.assertEqual(d.table, table)
            self.assertEqual(d.table_size, table_size)

    def encode_sequence(self, blocks, lists, tables, huffman, size=4096):
        e = Encoder(huffman=huffman, not_indexed=())
        e._table.resize(size)
        for block, fields, (table, table_size) in zip(blocks, lists, tables):
            self.assertEqual(e.encode(fields).hex(), unhex(block).hex())
            self.assertEqual(e.table, table)
            self.assertEqual(e.table_size, table_size)

    def test_c2_1_literal_with_indexing(self):
        d = Decoder()
        block = unhex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")
        self.assertEqual(d.decode(block), [(b"custom-key", b"custom-header")])
        self.assertEqual(d.table, [(b"custom-key", b"custom-header")])
        self.assertEqual(d.table_size, 55)
        e = Encoder(huffman=False, not_indexed=())
        self.assertEqual(e.encode([(b"custom-key", b"custom-header")]), block)

    def test_c2_2_literal_without_indexing(self):
        d = Decoder()
        block = unhex("040c 2f73 616d 706c 652f 7061 7468")
        self.assertEqual(d.decode(block), [(b":path", b"/sample/path")])
        self.assertEqual(d.table, [])
        # :path is not indexed by default
        self.assertEqual(Encoder(huffman=False).encode([(b":path", b"/sample/path")]), block)

    def test_c2_3_never_indexed(self):
        d = Decoder()
        block = unhex("1008 7061 7373 776f 7264 0673 6563 7265 74")
        self.assertEqual(d.decode(block), [(b"password", b"secret")])
        self.assertEqual(d.table, [])
        self.assertEqual(d.never_indexed, {b"password"})
        d.decode(b"\x82")
        self.assertEqual(d.never_indexed, frozenset())
        e = Encoder(huffman=False)
        self.assertEqual(e.encode([(b"password", b"secret")], never_index=[b"password"]), block)
        self.assertEqual(e.table, [])

    def test_c2_4_indexed(self):
        d = Decoder()
        self.assertEqual(d.decode(b"\x82"), [(b":method", b"GET")])
        self.assertEqual(d.table, [])
        self.assertEqual(Encoder().encode([(b":method", b"GET")]), b"\x82")

    def test_c3_requests(self):
        self.decode_sequence(C3, [REQ1, REQ2, REQ3], REQ_TABLES)
        self.encode_sequence(C3, [REQ1, REQ2, REQ3], REQ_TABLES, huffman=False)

    def test_c4_requests_huffman(self):
        self.decode_sequence(C4, [REQ1, REQ2, REQ3], REQ_TABLES)
        self.encode_sequence(C4, [REQ1, REQ2, REQ3], REQ_TABLES, huffman=True)

    def test_c5_responses(self):
        self.decode_sequence(C5, [RESP1, RESP2, RESP3], RESP_TABLES, size=256)
        self.encode_sequence(C5, [RESP1, RESP2, RESP3], RESP_TABLES, huffman=False, size=256)

    def test_c6_responses_huffman(self):
        self.decode_sequence(C6, [RESP1, RESP2, RESP3], RESP_TABLES, size=256)
        self.encode_sequence(C6, [RESP1, RESP2, RESP3], RESP_TABLES, huffman=True, size=256)


class DecoderErrorTest(unittest.TestCase):

    def test_bad_index(self):
        for block in [b"\x80", b"\xbe", b"\xff\x00", b"\x7e\x01a", b"\x0f\x30\x01a"]:
            with self.assertRaises(HpackError, msg=block):
                Decoder().decode(block)
        # after one entry, 62 is valid and 63 is not
        d = Decoder()
        d.decode(unhex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"))
        self.assertEqual(d.decode(b"\xbe"), [(b"custom-key", b"custom-header")])
        with self.assertRaisesRegex(HpackError, "index 63"):
            d.decode(b"\xbf")

    def test_truncated_strings(self):
        for block in [b"\x40", b"\x40\x05abc", b"\x41", b"\x41\x03ab", b"\x41\x85\xff"]:
            with self.assertRaises(HpackError, msg=block):
                Decoder().decode(block)

    def test_bad_huffman_in_block(self):
        with self.assertRaisesRegex(HpackError, "EOS"):
            Decoder().decode(b"\x41\x84\xff\xff\xff\xff")

    def test_integer_overflow_in_block(self):
        with self.assertRaisesRegex(HpackError, "too large"):
            Decoder().decode(b"\xff" + b"\xff" * 8 + b"\x01")

    def test_table_size_update(self):
        d = Decoder(max_table_size=4096)
        d.decode(unhex(C3[0]))
        self.assertEqual(d.table_size, 57)
        # to 0 empties the table, then back up
        self.assertEqual(d.decode(b"\x20\x3f\xe1\x1f\x82"), [(b":method", b"GET")])
        self.assertEqual(d.table, [])
        with self.assertRaisesRegex(HpackError, "over the limit"):
            d.decode(b"\x3f\xe2\x1f")  # 4097
        with self.assertRaisesRegex(HpackError, "after a field"):
            Decoder().decode(b"\x82\x20")
        # two updates are allowed (smallest, then final), a third is not
        self.assertEqual(Decoder().decode(b"\x20\x3f\xe1\x1f\x82"), [(b":method", b"GET")])
        with self.assertRaisesRegex(HpackError, "more than two"):
            Decoder().decode(b"\x20\x20\x20\x82")

    def test_lowered_table_size_needs_an_update_first(self):
        # RFC 7541 4.2: once our smaller SETTINGS_HEADER_TABLE_SIZE is
        # acknowledged, the next block must start with an update to it
        d = Decoder(max_table_size=4096)
        d.decode(unhex(C3[0]))
        d.decode(b"\x82")          # cached
        d.set_max_table_size(100)
        self.assertEqual(d.max_table_size, 100)
        with self.assertRaisesRegex(HpackError, "size update"):
            d.decode(b"\x82")
        with self.assertRaisesRegex(HpackError, "over the limit"):
            d.decode(b"\x3f\x46\x82")   # 101
        with self.assertRaisesRegex(HpackError, "size update"):
            d.decode(b"\x82")
        self.assertEqual(d.decode(b"\x3f\x41\x82"), [(b":method", b"GET")])  # 96
        self.assertEqual(d.decode(b"\x82"), [(b":method", b"GET")])
        # raising the limit, or lowering it to no less than the table's
        # size in use, asks for nothing
        d.set_max_table_size(4096)
        self.assertEqual(d.decode(b"\x82"), [(b":method", b"GET")])
        d.set_max_table_size(96)
        self.assertEqual(d.decode(b"\x82"), [(b":method", b"GET")])

    def test_eviction_keeps_size(self):
        d = Decoder(max_table_size=100)
        d._table.resize(100)
        block = b"".join(b"\x40\x01" + bytes([97 + i]) + b"\x10" + b"v" * 16 for i in range(5))
        d.decode(block)
        # each entry is 1 + 16 + 32 = 49; two fit in 100
        self.assertEqual(d.table, [(b"e", b"v" * 16), (b"d", b"v" * 16)])
        self.assertEqual(d.table_size, 98)
        # an entry larger than the table empties it
        d.decode(b"\x40\x01z\x7f\x00" + b"x" * 127)
        self.assertEqual(d.table, [])
        self.assertEqual(d.table_size, 0)

    def test_hpack_bomb_stops_at_the_limit(self):
        # one 4000-byte entry, then 10000 one-byte references to it: a 10 KB
        # block that would decode to 40 MB
        d = Decoder(max_header_list_size=16384)
        setup = b"\x40\x01x" + bytes(hpack.encode_integer(4000, 7)) + b"a" * 4000
        with self.assertRaises(HeaderListTooLarge):
            d.decode(setup + b"\xbe" * 10000)
        # the table is still in step: the entry was added and the next block decodes
        self.assertEqual(d.table, [(b"x", b"a" * 4000)])
        self.assertEqual(d.decode(b"\xbe"), [(b"x", b"a" * 4000)])

    def test_header_list_limit_counts_rfc_size(self):
        d = Decoder(max_header_list_size=32 + 7 + 3)
        self.assertEqual(d.decode(b"\x82"), [(b":method", b"GET")])
        with self.assertRaises(HeaderListTooLarge) as cm:
            d.decode(b"\x82\x82")
        self.assertEqual(cm.exception.limit, 42)


class EncoderTest(unittest.TestCase):

    def test_round_trip_through_decoder(self):
        e = Encoder()
        d = Decoder()
        lists = [
            REQ1, REQ2, REQ3, RESP3,
            [(b":method", b"POST"), (b":path", b"/x" * 50), (b"x-long", b"y" * 5000),
             (b"cookie", b"a=b"), (b"authorization", b"Basic abc"), (b"bin", bytes(range(256)))],
        ] * 3
        for fields in lists:
            self.assertEqual(d.decode(e.encode(fields)), fields)
            self.assertEqual(d.table, e.table)

    def test_sensitive_never_indexed(self):
        e = Encoder(huffman=False)
        block = e.encode([(b"authorization", b"secret"), (b"cookie", b"short=1"),
                          (b"x-token", b"t")], never_index=[b"x-token"])
        self.assertEqual(e.table, [])
        # each is a never-indexed literal (0001xxxx)
        self.assertEqual(block[0] & 0xf0, 0x10)
        # a long cookie is indexed
        e.encode([(b"cookie", b"session=" + b"z" * 40)])
        self.assertEqual(e.table, [(b"cookie", b"session=" + b"z" * 40)])

    def test_credentials_stay_out_of_the_string_caches(self):
        hpack._HUFFMAN_CACHE.clear()
        hpack._ENCODED_CACHE.clear()
        secret = b"Bearer abcdef"
        fields = [(b"authorization", secret), (b"cookie", b"id=1234567"),
                  (b"x-token", b"tok123"), (b"x-plain", b"public")]
        block = Encoder().encode(fields, never_index=[b"x-token"])
        self.assertEqual(Decoder().decode(block), fields)
        cached = set(hpack._HUFFMAN_CACHE.values()) | set(hpack._ENCODED_CACHE)
        self.assertIn(b"public", cached)
        for value in (secret, b"id=1234567", b"tok123"):
            self.assertNotIn(value, cached)

    def test_table_size_update_signalled(self):
        e = Encoder()
        d = Decoder()
        d.decode(e.encode(REQ1))
        e.set_peer_table_size(0)
        e.set_peer_table_size(1000)
        block = e.encode(REQ1)
        # smallest (0) then final (1000), RFC 7541 4.2
        self.assertEqual(block[:1], b"\x20")
        self.assertEqual(block[1:4], bytes(hpack.encode_integer(1000, 5, 32)))
        self.assertEqual(d.decode(block), REQ1)
        self.assertEqual(e.table, [(b":authority", b"www.example.com")])
        self.assertEqual(d.table, e.table)

    def test_smaller_own_table_signalled_first(self):
        e = Encoder(max_table_size=100)
        d = Decoder()
        block = e.encode(REQ3)
        self.assertEqual(block[:2], b"\x3f\x45")
        self.assertEqual(d.decode(block), REQ3)
        self.assertEqual(d.table, e.table)


if __name__ == "__main__":
    unittest.main()


class FuzzTest(unittest.TestCase):

    def test_corrupted_blocks_raise_only_hpack_errors(self):
        rnd = random.Random(7541)
        enc = Encoder()
        blocks = [enc.encode(REQ3 + [(b"x-a", b"v" * rnd.randint(0, 50))]) for _ in range(20)]
        for _ in range(5000):
            b = bytearray(rnd.choice(blocks))
            for _ in range(rnd.randint(1, 4)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
            try:
                Decoder().decode(bytes(b))
            except HpackError:
                pass
