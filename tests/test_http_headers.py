"""thor.http.headers: the seed's helpers and the rules for what thor sends."""

import unittest

from thor.http import error
from thor.http.headers import (
    header_names, header_dict, get_header, is_token, to_bytes_field,
    encode_field_name, encode_field_value, encode_headers, strip_hop_by_hop,
    encode_status, encode_phrase, HOP_BY_HOP, TRAILER_FORBIDDEN, TCHAR,
)

SEED_STR = [
    ("Content-Type", " text/plain"),
    ("Foo", "bar, baz"),
    ("Cache-Control", " max-age=30, must-revalidate"),
    ("Foo", "boom"),
    ("user-agent", "Foo/1.0"),
]
SEED_BYTES = [(n.encode(), v.encode()) for n, v in SEED_STR]


class TestHeaderNames(unittest.TestCase):
    def test_bytes(self):
        self.assertEqual(header_names(SEED_BYTES),
                         {b"content-type", b"foo", b"cache-control", b"user-agent"})

    def test_str(self):
        self.assertEqual(header_names(SEED_STR),
                         {"content-type", "foo", "cache-control", "user-agent"})

    def test_empty(self):
        self.assertEqual(header_names([]), set())


class TestHeaderDict(unittest.TestCase):
    def test_seed_example(self):
        self.assertEqual(dict(header_dict(SEED_STR)), {
            "content-type": ["text/plain"],
            "foo": ["bar", "baz", "boom"],
            "cache-control": ["max-age=30", "must-revalidate"],
            "user-agent": ["Foo/1.0"],
        })

    def test_bytes(self):
        result = header_dict(SEED_BYTES)
        self.assertEqual(result[b"foo"], [b"bar", b"baz", b"boom"])
        self.assertEqual(result[b"missing"], [])

    def test_omit_any_case_and_type(self):
        result = header_dict(SEED_BYTES, omit=["FOO", b"Cache-Control"])
        self.assertEqual(set(result), {b"content-type", b"user-agent"})
        result = header_dict(SEED_STR, omit=[b"foo"])
        self.assertNotIn("foo", result)

    def test_omit_one_name(self):
        # Thor 0.17's callers pass a single name: it is one name, not a
        # sequence of characters or bytes.
        result = header_dict(SEED_BYTES, b"foo")
        self.assertEqual(set(result), {b"content-type", b"cache-control", b"user-agent"})
        result = header_dict(SEED_STR, "Content-Type")
        self.assertEqual(set(result), {"foo", "cache-control", "user-agent"})

    def test_empty_elements_dropped(self):
        result = header_dict([(b"A", b" , x,, y ,"), (b"B", b"")])
        self.assertEqual(result[b"a"], [b"x", b"y"])
        self.assertIn(b"b", result)
        self.assertEqual(result[b"b"], [])

    def test_tabs_are_whitespace(self):
        self.assertEqual(header_dict([(b"A", b"\tx\t,\ty")])[b"a"], [b"x", b"y"])


class TestGetHeader(unittest.TestCase):
    def test_same_type(self):
        self.assertEqual(get_header(SEED_STR, "foo"), ["bar", "baz", "boom"])
        self.assertEqual(get_header(SEED_BYTES, b"FOO"), [b"bar", b"baz", b"boom"])

    def test_other_type_name(self):
        self.assertEqual(get_header(SEED_BYTES, "Cache-Control"),
                         [b"max-age=30", b"must-revalidate"])
        self.assertEqual(get_header(SEED_STR, b"user-agent"), ["Foo/1.0"])

    def test_missing(self):
        self.assertEqual(get_header(SEED_BYTES, "nope"), [])
        self.assertEqual(get_header(SEED_BYTES, "caf\u20ac"), [])

    def test_bad_name_type(self):
        with self.assertRaises(TypeError):
            get_header(SEED_BYTES, 42)


class TestTokens(unittest.TestCase):
    def test_is_token(self):
        for value in (b"a", b"Content-Type", b"!#$%&'*+-.^_`|~", b"0"):
            self.assertTrue(is_token(value), value)
        for value in (b"", b"a b", b"a:b", b"a\x00", b"caf\xe9", b"(x)", b"a\"", b"a/b",
                      b"a\t", b"a@b", b"[a]", b"{a}", b"a,b", b"a;b", b"a=b", b"a?", b"\\"):
            self.assertFalse(is_token(value), value)

    def test_tchar_exact(self):
        expected = set(b"!#$%&'*+-.^_`|~0123456789"
                       b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        self.assertEqual(set(TCHAR), expected)


class TestToBytes(unittest.TestCase):
    def test_types(self):
        self.assertEqual(to_bytes_field("caf\xe9"), b"caf\xe9")
        self.assertEqual(to_bytes_field(b"x"), b"x")
        self.assertEqual(to_bytes_field(bytearray(b"x")), b"x")
        self.assertIs(type(to_bytes_field(memoryview(b"x"))), bytes)
        with self.assertRaises(TypeError):
            to_bytes_field(5)
        with self.assertRaises(error.BadHeaderError):
            to_bytes_field("\u20ac")
        with self.assertRaises(error.BadStatusError):
            to_bytes_field("\u20ac", error.BadStatusError)


class TestEncodeHeaders(unittest.TestCase):
    def test_str_and_bytes(self):
        self.assertEqual(encode_headers(SEED_STR + [(b"X", b"y")]), [
            (b"Content-Type", b"text/plain"), (b"Foo", b"bar, baz"),
            (b"Cache-Control", b"max-age=30, must-revalidate"), (b"Foo", b"boom"),
            (b"user-agent", b"Foo/1.0"), (b"X", b"y"),
        ])

    def test_values_kept_inside(self):
        self.assertEqual(encode_headers([("A", " \t a\tb \xe9 \t")]), [(b"A", b"a\tb \xe9")])
        self.assertEqual(encode_headers([("A", "")]), [(b"A", b"")])

    def test_bad_values(self):
        for value in ("a\r\nEvil: yes", "a\rb", "a\nb", "a\x00", "a\x01", "a\x1f", "a\x7f",
                      b"a\r\n", "\u20ac"):
            with self.subTest(value=value):
                with self.assertRaises(error.BadHeaderError) as caught:
                    encode_headers([("X-Name", value)])
                self.assertIn("X-Name", str(caught.exception))
                self.assertIsInstance(caught.exception, ValueError)

    def test_bad_names(self):
        for name in ("", "a b", "a:", "a\r\n", "caf\xe9", "X-A\t", "(a)", b"a\x00", "\u20ac"):
            with self.subTest(name=name):
                with self.assertRaises(error.BadHeaderError):
                    encode_headers([(name, "v")])

    def test_details_are_text(self):
        for headers in ([(b"a b", b"v")], [(b"X", b"a\r\nb")], [(b"X", "\u20ac")],
                        [(b"caf\xe9 x", b"v")], [b"ab"]):
            with self.subTest(headers=headers):
                with self.assertRaises(error.BadHeaderError) as caught:
                    encode_headers(headers)
                detail = caught.exception.detail
                self.assertIsInstance(detail, str)
                self.assertNotIn("b'", detail)
                self.assertNotIn("\r", detail)  # controls are shown as escapes
        with self.assertRaises(error.BadStatusError) as caught:
            encode_status(b"2x0")
        self.assertEqual(caught.exception.detail, 'status must be 100-599: "2x0"')

    def test_bad_types(self):
        with self.assertRaises(TypeError):
            encode_headers([(1, "v")])
        with self.assertRaises(TypeError):
            encode_headers([("a", 1)])
        with self.assertRaises(error.BadHeaderError):
            encode_headers([("a", "b", "c")])
        with self.assertRaises(error.BadHeaderError):
            encode_headers(["ab"])

    def test_field_name_and_value(self):
        self.assertEqual(encode_field_name("Host"), b"Host")
        self.assertEqual(encode_field_name("Host"), b"Host")  # cached
        self.assertEqual(encode_field_name(bytearray(b"Host")), b"Host")
        self.assertEqual(encode_field_value(b" v "), b"v")
        with self.assertRaises(error.BadHeaderError):
            encode_field_name("Ho st")


class TestHopByHop(unittest.TestCase):
    def test_members(self):
        self.assertEqual(HOP_BY_HOP, {
            b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
            b"transfer-encoding", b"upgrade",
        })
        self.assertNotIn(b"proxy-authenticate", HOP_BY_HOP)
        self.assertNotIn(b"proxy-authorization", HOP_BY_HOP)

    def test_fast_path_returns_same_list(self):
        headers = [(b"A", b"1"), (b"Proxy-Authorization", b"x")]
        self.assertIs(strip_hop_by_hop(headers), headers)

    def test_strips(self):
        headers = [
            (b"Connection", b"X-Foo, close"), (b"X-Foo", b"1"), (b"x-foo", b"2"),
            (b"Keep-Alive", b"300"), (b"TE", b"trailers"), (b"Trailer", b"X"),
            (b"Transfer-Encoding", b"chunked"), (b"Upgrade", b"h2c"),
            (b"Proxy-Connection", b"keep-alive"), (b"X-Bar", b"3"), (b"close", b"x"),
        ]
        self.assertEqual(strip_hop_by_hop(headers), [(b"X-Bar", b"3")])

    def test_str_headers(self):
        headers = [("CONNECTION", "x-foo"), ("X-FOO", "1"), ("Keep-Alive", "1"), ("A", "b")]
        self.assertEqual(strip_hop_by_hop(headers), [("A", "b")])

    def test_also(self):
        headers = [(b"A", b"1"), (b"X-Hop", b"2"), (b"x-other", b"3")]
        self.assertEqual(strip_hop_by_hop(headers, also=[b"x-hop", "X-OTHER"]), [(b"A", b"1")])
        self.assertIs(strip_hop_by_hop(headers, also=[b"x-none"]), headers)

    def test_content_length_is_never_hop_by_hop(self):
        # A Connection field cannot make the field that frames the message
        # hop-by-hop (RFC 9112 6.3 reads it whatever Connection says).
        headers = [(b"Connection", b"Content-Length, X-A"), (b"Content-Length", b"5"),
                   (b"X-A", b"1")]
        self.assertEqual(strip_hop_by_hop(headers), [(b"Content-Length", b"5")])

    def test_trailer_forbidden(self):
        for name in (b"content-length", b"transfer-encoding", b"host", b"trailer",
                     b"authorization", b"content-type", b"cache-control"):
            self.assertIn(name, TRAILER_FORBIDDEN)
        self.assertNotIn(b"x-checksum", TRAILER_FORBIDDEN)
        self.assertNotIn(b"server-timing", TRAILER_FORBIDDEN)


class TestStatus(unittest.TestCase):
    def test_good(self):
        for status, raw in ((200, b"200"), ("404", b"404"), (b"100", b"100"), (599, b"599"),
                            (100, b"100"), ("200", b"200")):
            self.assertEqual(encode_status(status), raw)

    def test_bad(self):
        for status in (99, 600, 0, -200, 1000, "20", "2000", "abc", " 200", "200 ", b"2x0",
                       True, 200.0, None, [200], "\u0662\u0660\u0660", b"099"):
            with self.subTest(status=status):
                with self.assertRaises(error.BadStatusError):
                    encode_status(status)
        self.assertTrue(issubclass(error.BadStatusError, ValueError))

    def test_phrase(self):
        self.assertEqual(encode_phrase("Not Found"), b"Not Found")
        self.assertEqual(encode_phrase(b"\tOK \xff"), b"\tOK \xff")
        self.assertEqual(encode_phrase(""), b"")
        for phrase in ("OK\r\nSet-Cookie: x", "a\nb", "a\x00", "a\x7f", "\u20ac"):
            with self.subTest(phrase=phrase):
                with self.assertRaises(error.BadStatusError):
                    encode_phrase(phrase)
        with self.assertRaises(TypeError):
            encode_phrase(200)


if __name__ == "__main__":
    unittest.main()
