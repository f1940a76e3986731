"""thor.http.h2.frames: every frame type written, then read back whole, one
byte at a time and split at every offset, with the same result each way."""

import unittest

from thor.http.h2 import frames as F
from thor.http.h2.frames import FrameReader


def read(testcase, data, max_frame_size=16384):
    """The frames read from ``data`` fed whole, a byte at a time and split
    at every offset (long inputs: every offset near the frame headers and
    a sample between, to keep the test quick); asserts all ways agree and
    nothing is left over."""
    whole = FrameReader(max_frame_size).feed(data)
    ways = []
    r = FrameReader(max_frame_size)
    ways.append([f for i in range(len(data)) for f in r.feed(data[i:i + 1])])
    cuts = range(1, len(data))
    if len(data) > 2000:
        cuts = sorted(set(range(1, 200)) | set(range(len(data) - 200, len(data)))
                      | set(range(1, len(data), 499)))
    for cut in cuts:
        r = FrameReader(max_frame_size)
        ways.append(r.feed(data[:cut]) + r.feed(data[cut:]))
        if not r.failed:
            testcase.assertEqual(r.buffered, 0)
    for way in ways:
        testcase.assertEqual(way, whole)
    return whole


class RoundTripTest(unittest.TestCase):

    def one(self, data, expect):
        self.assertEqual(read(self, data), [expect])

    def test_data(self):
        self.one(F.data_frame(1, b"hello"), F.DataFrame(1, b"hello", False, 5))
        self.one(F.data_frame(3, b"", end_stream=True), F.DataFrame(3, b"", True, 0))
        self.one(F.data_frame(5, b"abc", True, pad=10), F.DataFrame(5, b"abc", True, 13))
        self.one(F.data_frame(5, b"", pad=1), F.DataFrame(5, b"", False, 1))
        self.one(F.data_frame(7, b"x" * 16384), F.DataFrame(7, b"x" * 16384, False, 16384))

    def test_headers(self):
        self.one(F.headers_frames(1, b"\x82\x84", end_stream=True),
                 F.HeadersFrame(1, b"\x82\x84", True, True))
        self.one(F.headers_frames(3, b"\x82", priority=(True, 1, 256), pad=4),
                 F.HeadersFrame(3, b"\x82", False, True, (True, 1, 256)))
        self.one(F.headers_frames(3, b"", priority=(False, 0, 1)),
                 F.HeadersFrame(3, b"", False, True, (False, 0, 1)))

    def test_headers_split_into_continuations(self):
        block = bytes(range(256)) * 100
        got = read(self, F.headers_frames(1, block, True, max_frame_size=16384))
        self.assertEqual([type(f) for f in got],
                         [F.HeadersFrame, F.ContinuationFrame])
        self.assertFalse(got[0].end_headers)
        self.assertTrue(got[0].end_stream)
        self.assertTrue(got[1].end_headers)
        self.assertEqual(got[0].block + got[1].block, block)

    def test_priority(self):
        self.one(F.priority_frame(5, 3, 200, exclusive=True), F.PriorityFrame(5, True, 3, 200))
        self.one(F.priority_frame(5, 0), F.PriorityFrame(5, False, 0, 16))

    def test_rst_stream(self):
        self.one(F.rst_stream_frame(9, F.CANCEL), F.RstStreamFrame(9, F.CANCEL))

    def test_settings(self):
        s = [(F.HEADER_TABLE_SIZE, 0), (F.ENABLE_PUSH, 0), (F.MAX_CONCURRENT_STREAMS, 100),
             (F.INITIAL_WINDOW_SIZE, 2 ** 31 - 1), (F.MAX_FRAME_SIZE, 2 ** 24 - 1),
             (F.MAX_HEADER_LIST_SIZE, 8192), (0x99, 7)]
        self.one(F.settings_frame(s), F.SettingsFrame(False, s))
        self.one(F.settings_frame(), F.SettingsFrame(False, []))
        self.one(F.settings_frame(ack=True), F.SettingsFrame(True, []))

    def test_push_promise(self):
        self.one(F.push_promise_frames(1, 2, b"\x82\x84", pad=3),
                 F.PushPromiseFrame(1, 2, b"\x82\x84", True))

    def test_ping(self):
        self.one(F.ping_frame(b"12345678"), F.PingFrame(False, b"12345678"))
        self.one(F.ping_frame(b"12345678", ack=True), F.PingFrame(True, b"12345678"))

    def test_goaway(self):
        self.one(F.goaway_frame(7, F.PROTOCOL_ERROR, b"why"),
                 F.GoAwayFrame(7, F.PROTOCOL_ERROR, b"why"))
        self.one(F.goaway_frame(0, F.NO_ERROR), F.GoAwayFrame(0, F.NO_ERROR, b""))

    def test_window_update(self):
        self.one(F.window_update_frame(0, 2 ** 31 - 1), F.WindowUpdateFrame(0, 2 ** 31 - 1))
        self.one(F.window_update_frame(3, 1), F.WindowUpdateFrame(3, 1))

    def test_continuation(self):
        self.one(F.continuation_frame(3, b"abc", False), F.ContinuationFrame(3, b"abc", False))

    def test_unknown_type_ignored_but_read(self):
        raw = b"\x00\x00\x03\x42\x07\x00\x00\x00\x05abc"
        self.one(raw, F.UnknownFrame(0x42, 7, 5, b"abc"))

    def test_reserved_bit_ignored(self):
        raw = bytearray(F.data_frame(1, b"a"))
        raw[5] |= 0x80
        self.one(bytes(raw), F.DataFrame(1, b"a", False, 1))

    def test_many_frames_in_a_row(self):
        data = (F.settings_frame([(F.MAX_FRAME_SIZE, 20000)]) + F.headers_frames(1, b"\x82")
                + F.data_frame(1, b"x" * 100, True) + F.ping_frame(b"\0" * 8)
                + F.window_update_frame(0, 10))
        got = read(self, data)
        self.assertEqual([f.type for f in got],
                         [F.SETTINGS, F.HEADERS, F.DATA, F.PING, F.WINDOW_UPDATE])


class ErrorTest(unittest.TestCase):

    def error(self, data, code, connection=True, max_frame_size=16384):
        got = read(self, data, max_frame_size)
        err = got[-1]
        self.assertIsInstance(err, F.ErrorFrame)
        self.assertEqual((F.error_name(err.code), err.connection),
                         (F.error_name(code), connection), err.message)
        return got

    def raw(self, ftype, flags, stream_id, payload):
        return bytes(F._head(len(payload), ftype, flags, stream_id)) + payload

    def test_frame_too_large_refused_before_payload(self):
        r = FrameReader(16384)
        got = r.feed(F._head(16385, F.DATA, 0, 1))
        self.assertEqual(got[0].code, F.FRAME_SIZE_ERROR)
        self.assertTrue(r.failed)
        self.assertEqual(r.feed(b"x" * 100), [])
        # the limit follows max_frame_size
        self.assertEqual(read(self, F.data_frame(1, b"x" * 20000), 20000)[0].flow_length, 20000)
        self.error(F.data_frame(1, b"x" * 20001), F.FRAME_SIZE_ERROR, max_frame_size=20000)

    def test_stops_after_connection_error(self):
        data = F.ping_frame(b"a" * 8) + self.raw(F.PING, 0, 0, b"short") + F.ping_frame(b"b" * 8)
        got = self.error(data, F.FRAME_SIZE_ERROR)
        self.assertEqual(len(got), 2)

    def test_stream_zero_where_a_stream_is_needed(self):
        for ftype, payload in [(F.DATA, b""), (F.HEADERS, b""), (F.PRIORITY, b"\0" * 5),
                               (F.RST_STREAM, b"\0" * 4), (F.PUSH_PROMISE, b"\0" * 4),
                               (F.CONTINUATION, b"")]:
            self.error(self.raw(ftype, 0, 0, payload), F.PROTOCOL_ERROR)

    def test_stream_where_zero_is_needed(self):
        for ftype, payload in [(F.SETTINGS, b""), (F.PING, b"\0" * 8), (F.GOAWAY, b"\0" * 8)]:
            self.error(self.raw(ftype, 0, 1, payload), F.PROTOCOL_ERROR)

    def test_padding(self):
        self.error(self.raw(F.DATA, F.PADDED, 1, b"\x04abc"), F.PROTOCOL_ERROR)
        self.error(self.raw(F.DATA, F.PADDED, 1, b""), F.FRAME_SIZE_ERROR)
        self.error(self.raw(F.HEADERS, F.PADDED, 1, b"\x05\x82"), F.PROTOCOL_ERROR)
        # RFC 9113 6.2: padding over the priority fields is a PROTOCOL_ERROR;
        # a payload too short for them whatever the padding, FRAME_SIZE_ERROR
        self.error(self.raw(F.HEADERS, F.PADDED | F.PRIORITY_FLAG, 1, b"\x02\0\0\0\0\x10\0"),
                   F.PROTOCOL_ERROR)
        self.error(self.raw(F.HEADERS, F.PADDED | F.PRIORITY_FLAG, 1, b"\x00\0\0\0\0"),
                   F.FRAME_SIZE_ERROR)
        self.error(self.raw(F.HEADERS, F.PRIORITY_FLAG, 1, b"\0\0\0\0"), F.FRAME_SIZE_ERROR)
        self.error(self.raw(F.PUSH_PROMISE, F.PADDED, 1, b"\x09\0\0\0\x02abc"), F.PROTOCOL_ERROR)
        # the padding exactly fills the rest: valid, empty data
        self.assertEqual(read(self, self.raw(F.DATA, F.PADDED, 1, b"\x03abc")),
                         [F.DataFrame(1, b"", False, 4)])

    def test_fixed_sizes(self):
        self.error(self.raw(F.PRIORITY, 0, 1, b"\0" * 4), F.FRAME_SIZE_ERROR, connection=False)
        self.error(self.raw(F.RST_STREAM, 0, 1, b"\0" * 5), F.FRAME_SIZE_ERROR)
        self.error(self.raw(F.SETTINGS, 0, 0, b"\0" * 5), F.FRAME_SIZE_ERROR)
        self.error(self.raw(F.SETTINGS, F.ACK, 0, b"\0" * 6), F.FRAME_SIZE_ERROR)
        self.error(self.raw(F.PING, 0, 0, b"\0" * 9), F.FRAME_SIZE_ERROR)
        self.error(self.raw(F.GOAWAY, 0, 0, b"\0" * 7), F.FRAME_SIZE_ERROR)
        self.error(self.raw(F.WINDOW_UPDATE, 0, 0, b"\0" * 3), F.FRAME_SIZE_ERROR)
        self.error(self.raw(F.PUSH_PROMISE, 0, 1, b"\0" * 3), F.FRAME_SIZE_ERROR)

    def test_stream_errors_do_not_stop_the_reader(self):
        data = (self.raw(F.PRIORITY, 0, 1, b"\0" * 4) + F.window_update_frame(1, 1)[:-4]
                + b"\0\0\0\0" + F.ping_frame(b"c" * 8))
        got = read(self, data)
        self.assertEqual([f.type for f in got], [F.ERROR, F.ERROR, F.PING])
        self.assertEqual([f.stream_id for f in got[:2]], [1, 1])
        self.assertEqual(got[1].code, F.PROTOCOL_ERROR)

    def test_stream_errors_name_the_frame_type(self):
        got = read(self, self.raw(F.PRIORITY, 0, 1, b"\0" * 4) + F.priority_frame(3, 3)
                   + self.raw(F.WINDOW_UPDATE, 0, 5, b"\0" * 4))
        self.assertEqual([(f.type, f.frame_type) for f in got],
                         [(F.ERROR, F.PRIORITY), (F.ERROR, F.PRIORITY), (F.ERROR, F.WINDOW_UPDATE)])

    def test_zero_window_update_on_connection(self):
        self.error(self.raw(F.WINDOW_UPDATE, 0, 0, b"\0" * 4), F.PROTOCOL_ERROR)

    def test_self_dependency(self):
        self.error(F.priority_frame(3, 3), F.PROTOCOL_ERROR, connection=False)
        # in HEADERS, the connection checks it once it has decoded the block
        self.assertEqual(read(self, F.headers_frames(3, b"\x82", priority=(False, 3, 16))),
                         [F.HeadersFrame(3, b"\x82", False, True, (False, 3, 16))])

    def test_settings_values(self):
        self.error(F.settings_frame([(F.ENABLE_PUSH, 2)]), F.PROTOCOL_ERROR)
        self.error(F.settings_frame([(F.INITIAL_WINDOW_SIZE, 2 ** 31)]), F.FLOW_CONTROL_ERROR)
        self.error(F.settings_frame([(F.MAX_FRAME_SIZE, 16383)]), F.PROTOCOL_ERROR)
        self.error(F.settings_frame([(F.MAX_FRAME_SIZE, 2 ** 24)]), F.PROTOCOL_ERROR)


class WriterArgumentTest(unittest.TestCase):

    def test_bad_arguments_raise(self):
        with self.assertRaises(ValueError):
            F.data_frame(0, b"")
        with self.assertRaises(ValueError):
            F.data_frame(2 ** 31, b"")
        with self.assertRaises(ValueError):
            F.data_frame(1, b"", pad=257)
        with self.assertRaises(ValueError):
            F.ping_frame(b"short")
        with self.assertRaises(ValueError):
            F.window_update_frame(1, 0)
        with self.assertRaises(ValueError):
            F.settings_frame([(1, 1)], ack=True)
        with self.assertRaises(ValueError):
            F.priority_frame(1, 0, weight=0)


if __name__ == "__main__":
    unittest.main()
