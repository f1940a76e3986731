"""thor.http.writer, called directly: body framing, the trailer rule, the
Content-Length check and the tunnel hand-off; and thor.http.headers'
field_tokens, the one Connection-token parser of server, client and proxy."""

import unittest

from thor.http import client as http_client
from thor.http import error
from thor.http import parser as http_parser
from thor.http import proxy as http_proxy
from thor.http import server as http_server
from thor.http.headers import CONNECTION_OPTIONS, TRAILER_FORBIDDEN, field_tokens
from thor.http.writer import (
    CHUNKED, CHUNKED_WRITER, CLOSE_WRITER, LENGTH, NO_BODY, NO_BODY_WRITER, UNTIL_CLOSE,
    LengthWriter, check_content_length, encode_chunk, hand_over, trailer_section,
)


class TestFramingNames(unittest.TestCase):
    def test_the_parsers_enum(self):
        # One vocabulary for framing, in and out.
        for name in ("NO_BODY", "LENGTH", "CHUNKED", "UNTIL_CLOSE"):
            self.assertIs(getattr(http_parser, name), globals()[name])
        self.assertEqual(NO_BODY_WRITER.framing, NO_BODY)
        self.assertEqual(LengthWriter(1).framing, LENGTH)
        self.assertEqual(CHUNKED_WRITER.framing, CHUNKED)
        self.assertEqual(CLOSE_WRITER.framing, UNTIL_CLOSE)

    def test_server_and_client_number_no_framing_of_their_own(self):
        for module in (http_server, http_client):
            for name in ("_LENGTH", "_CHUNKED", "_NO_BODY", "_UNTIL_CLOSE", "_NO_FRAMING",
                         "_UNDECIDED", "_parse_length", "_CONNECTION_OPTIONS"):
                self.assertFalse(hasattr(module, name), (module.__name__, name))
        self.assertFalse(hasattr(http_proxy, "_CONNECTION_OPTIONS"))


class TestLengthWriter(unittest.TestCase):
    def test_exact_body(self):
        writer = LengthWriter(5)
        self.assertEqual(writer.chunk(b"he"), b"he")
        self.assertEqual(writer.chunk(b"llo"), b"llo")
        self.assertEqual(writer.left, 0)
        self.assertEqual(writer.end(), b"")
        self.assertEqual(writer.end([]), b"")

    def test_over_raises_and_counts_nothing(self):
        writer = LengthWriter(3)
        writer.chunk(b"ab")
        with self.assertRaises(error.BodyLengthError) as caught:
            writer.chunk(b"cd")
        self.assertIn("1 bytes over", str(caught.exception))
        self.assertEqual(writer.left, 1)  # the refused piece is not counted
        self.assertEqual(writer.chunk(b"c"), b"c")
        self.assertEqual(writer.end(), b"")

    def test_under_raises_at_end(self):
        writer = LengthWriter(4)
        writer.chunk(b"ab")
        with self.assertRaises(error.BodyLengthError) as caught:
            writer.end()
        self.assertIn("2 bytes shorter", str(caught.exception))
        self.assertIsInstance(caught.exception, ValueError)  # the application's error

    def test_zero_length(self):
        writer = LengthWriter(0)
        with self.assertRaises(error.BodyLengthError):
            writer.chunk(b"x")
        self.assertEqual(writer.end(), b"")

    def test_trailers_checked_then_dropped(self):
        writer = LengthWriter(0)
        self.assertEqual(writer.end([("X-Sum", "1")]), b"")
        with self.assertRaises(error.BadHeaderError):
            writer.end([("X-Sum", "1\r\nInjected: 1")])

    def test_bad_trailer_reported_before_a_short_body(self):
        # A bad trailer changes nothing; the caller can still end properly.
        writer = LengthWriter(2)
        with self.assertRaises(error.BadHeaderError):
            writer.end([("Bad Name", "x")])


class TestChunkedWriter(unittest.TestCase):
    def test_chunks(self):
        self.assertEqual(CHUNKED_WRITER.chunk(b"hello"), b"5\r\nhello\r\n")
        self.assertEqual(CHUNKED_WRITER.chunk(b"x" * 255)[:5], b"ff\r\nx")
        self.assertEqual(encode_chunk(b"x" * 4096)[:6], b"1000\r\n")
        self.assertTrue(encode_chunk(b"x" * 4096).endswith(b"x\r\n"))

    def test_end_without_trailers(self):
        self.assertEqual(CHUNKED_WRITER.end(), b"0\r\n\r\n")
        self.assertEqual(CHUNKED_WRITER.end(None), b"0\r\n\r\n")
        self.assertEqual(CHUNKED_WRITER.end([]), b"0\r\n\r\n")

    def test_end_with_trailers(self):
        self.assertEqual(
            CHUNKED_WRITER.end([("X-Sum", " 42 "), (b"X-Other", b"a, b")]),
            b"0\r\nX-Sum: 42\r\nX-Other: a, b\r\n\r\n",
        )

    def test_forbidden_trailers_dropped(self):
        # RFC 9110 6.5.1: every field of TRAILER_FORBIDDEN, in any case and
        # either type, is left out; the others go.
        for name in sorted(TRAILER_FORBIDDEN):
            for given in (name, name.upper(), name.decode("latin-1").title()):
                with self.subTest(given=given):
                    self.assertEqual(
                        CHUNKED_WRITER.end([(given, "1"), ("X-Kept", "2")]),
                        b"0\r\nX-Kept: 2\r\n\r\n",
                    )

    def test_forbidden_set_covers_framing_routing_and_connection(self):
        for name in (b"content-length", b"transfer-encoding", b"trailer", b"host",
                     b"connection", b"keep-alive", b"proxy-connection", b"te",
                     b"upgrade", b"authorization", b"content-type",
                     b"content-encoding", b"cache-control", b"expect"):
            self.assertIn(name, TRAILER_FORBIDDEN)
        for name in (b"x-checksum", b"server-timing", b"digest", b"etag"):
            self.assertNotIn(name, TRAILER_FORBIDDEN)

    def test_bad_trailers_raise(self):
        for trailers in ([("X", "a\r\nb")], [("Bad Name", "x")], [("X", "a\x00")],
                         ["X: y"], [("X",)], [b"XY"], [("X", 5)]):
            with self.subTest(trailers=trailers):
                with self.assertRaises((error.BadHeaderError, TypeError)):
                    CHUNKED_WRITER.end(trailers)

    def test_bad_forbidden_trailer_still_raises(self):
        # Checked before the rule drops it: nothing invalid passes silently.
        with self.assertRaises(error.BadHeaderError):
            trailer_section([("Content-Length", "1\r\nX: y")])


class TestCloseAndNoBodyWriters(unittest.TestCase):
    def test_until_close(self):
        self.assertEqual(CLOSE_WRITER.chunk(b"abc"), b"abc")
        self.assertEqual(CLOSE_WRITER.end(), b"")
        self.assertEqual(CLOSE_WRITER.end([("X-Sum", "1")]), b"")  # no trailers without chunks
        with self.assertRaises(error.BadHeaderError):
            CLOSE_WRITER.end([("X-Sum", "1\n")])

    def test_no_body(self):
        self.assertEqual(NO_BODY_WRITER.chunk(b"abc"), b"")
        self.assertEqual(NO_BODY_WRITER.end(), b"")
        with self.assertRaises(error.BadHeaderError):
            NO_BODY_WRITER.end([("Bad Name", "1")])

    def test_shared_writers_hold_no_state(self):
        for writer in (NO_BODY_WRITER, CHUNKED_WRITER, CLOSE_WRITER):
            self.assertFalse(hasattr(writer, "__dict__"))
            with self.assertRaises(AttributeError):
                writer.left = 1


class TestContentLength(unittest.TestCase):
    def test_valid(self):
        self.assertEqual(check_content_length(b"0"), 0)
        self.assertEqual(check_content_length(b"00012"), 12)
        self.assertEqual(check_content_length(b"9" * 18), 10 ** 18 - 1)

    def test_invalid(self):
        for value in (b"", b"-1", b"+1", b"1.0", b"0x10", b"1 2", b"1,1", b" 1",
                      b"9" * 19, "\u0663".encode("utf-8"), b"\xb2"):
            with self.subTest(value=value):
                with self.assertRaises(error.BadHeaderError):
                    check_content_length(value)

    def test_repeated(self):
        self.assertEqual(check_content_length(b"5", 5), 5)
        self.assertEqual(check_content_length(b"05", 5), 5)
        with self.assertRaises(error.BadHeaderError) as caught:
            check_content_length(b"6", 5)
        self.assertIn("conflicting", str(caught.exception))


class TestFieldTokens(unittest.TestCase):
    def test_odd_spacing_case_and_empty_elements(self):
        self.assertEqual(field_tokens([b"close"]), {b"close"})
        self.assertEqual(field_tokens([b"  Close \t"]), {b"close"})
        self.assertEqual(field_tokens([b",,Keep-Alive ,\tX-Foo,,"]), {b"keep-alive", b"x-foo"})
        self.assertEqual(field_tokens([b"UPGRADE", b"x-a, X-A"]), {b"upgrade", b"x-a"})
        self.assertEqual(field_tokens([b"", b" , ,\t"]), set())
        self.assertEqual(field_tokens([]), set())
        self.assertEqual(field_tokens(iter([b"a", b"b"])), {b"a", b"b"})

    def test_member_not_substring(self):
        self.assertNotIn(b"upgrade", field_tokens([b"x-noupgrade, closed"]))
        self.assertNotIn(b"close", field_tokens([b"x-noupgrade, closed"]))

    def test_connection_options(self):
        self.assertEqual(CONNECTION_OPTIONS, {b"close", b"keep-alive", b"upgrade"})


class _FakeTcp:
    def __init__(self):
        self.removed = []
        self.paused = None

    def removeListener(self, event, listener):
        self.removed.append((event, listener))

    def pause(self, paused):
        self.paused = paused


class _FakeParser:
    def leftover(self):
        return b"tunnel bytes"


class TestHandOver(unittest.TestCase):
    def test_listeners_off_paused_leftover_returned(self):
        tcp = _FakeTcp()
        on_data, on_close = object(), object()
        got, leftover = hand_over(tcp, _FakeParser(), (("data", on_data), ("close", on_close)))
        self.assertIs(got, tcp)
        self.assertEqual(leftover, b"tunnel bytes")
        self.assertEqual(tcp.removed, [("data", on_data), ("close", on_close)])
        self.assertIs(tcp.paused, True)


if __name__ == "__main__":
    unittest.main()
