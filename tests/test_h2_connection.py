"""thor.http.h2.connection: a client and a server in memory, a raw peer
that writes frames by hand to test each rule and each defence, and real
peers (curl, nghttp, h2load, nghttpd), each test skipped when its peer is
not installed."""

import copy
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from thor.http.h2 import frames as F
from thor.http.h2.connection import (
    H2Connection, H2Config, H2UsageError, PREFACE, Event,
    RequestReceived, ResponseReceived, TrailersReceived,
    DataReceived, StreamEnded, StreamReset, WindowUpdated, SettingsChanged,
    SettingsAcknowledged, PingAck, ConnectionTerminated,
)
from thor.http.h2.frames import FrameReader
from thor.http.h2.hpack import Decoder, Encoder

GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"),
       (b":authority", b"example.com")]
POST = [(b":method", b"POST"), (b":scheme", b"https"), (b":path", b"/up"),
        (b":authority", b"example.com")]
OK = [(b":status", b"200")]


def pump(client, server):
    """Move bytes both ways until quiet; (client events, server events)."""
    cev, sev = [], []
    while True:
        a = client.data_to_send()
        b = server.data_to_send()
        if not a and not b:
            return cev, sev
        if a:
            sev += server.receive_data(a)
        if b:
            cev += client.receive_data(b)


def pair(client_config=None, server_config=None, clock=None):
    kw = {"clock": clock} if clock else {}
    client = H2Connection(True, client_config, **kw)
    server = H2Connection(False, server_config, **kw)
    client.initiate()
    server.initiate()
    pump(client, server)
    return client, server


def drain(client, server):
    """pump(), with the client consuming all data it gets, until quiet."""
    cev, sev = [], []
    while True:
        c, s = pump(client, server)
        if not c and not s:
            return cev, sev
        cev += c
        sev += s
        for e in c:
            if isinstance(e, DataReceived):
                client.acknowledge_data(e.stream_id, e.flow_length)


def kinds(events):
    return [type(e).__name__ for e in events]


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class RawClient:
    """Writes a client's frames by hand, and reads what the server answers."""

    def __init__(self, server_config=None, clock=None):
        kw = {"clock": clock} if clock else {}
        self.server = H2Connection(False, server_config, **kw)
        self.server.initiate()
        self.encoder = Encoder()
        self.reader = FrameReader()
        self.decoder = Decoder()
        self.events = self.server.receive_data(PREFACE + F.settings_frame())
        self.answer()
        self.events += self.server.receive_data(F.settings_frame(ack=True))

    def send(self, data):
        events = self.server.receive_data(data)
        self.events += events
        return events

    def headers(self, sid, fields, end_stream=True, **kw):
        return F.headers_frames(sid, self.encoder.encode(fields), end_stream, **kw)

    def answer(self):
        """The frames the server queued since the last call."""
        return self.reader.feed(self.server.data_to_send())

    def goaway(self):
        frames = [f for f in self.answer() if f.type == F.GOAWAY]
        return F.error_name(frames[-1].error_code) if frames else None


class HandshakeTest(unittest.TestCase):

    def test_settings_exchanged_and_acknowledged(self):
        client = H2Connection(True, H2Config(max_concurrent_streams=7, initial_window_size=100000))
        server = H2Connection(False, H2Config(max_frame_size=32768))
        client.initiate()
        server.initiate()
        out = client.data_to_send()
        self.assertTrue(out.startswith(PREFACE))
        sev = server.receive_data(out)
        self.assertEqual(kinds(sev), ["SettingsChanged", "WindowUpdated"])
        self.assertEqual(sev[0].changed[F.MAX_CONCURRENT_STREAMS], 7)
        self.assertEqual(sev[0].changed[F.ENABLE_PUSH], 0)
        cev = client.receive_data(server.data_to_send())
        self.assertEqual(kinds(cev), ["SettingsChanged", "WindowUpdated", "SettingsAcknowledged"])
        self.assertEqual(client.remote_settings[F.MAX_FRAME_SIZE], 32768)
        self.assertEqual(server.remote_settings[F.INITIAL_WINDOW_SIZE], 100000)
        sev = server.receive_data(client.data_to_send())
        self.assertEqual(kinds(sev), ["SettingsAcknowledged"])
        self.assertEqual(server.local_settings[F.MAX_FRAME_SIZE], 32768)

    def test_preface_byte_at_a_time(self):
        client = H2Connection(True)
        server = H2Connection(False)
        client.initiate()
        server.initiate()
        out = client.data_to_send()
        events = []
        for i in range(len(out)):
            events += server.receive_data(out[i:i + 1])
        self.assertEqual(kinds(events), ["SettingsChanged", "WindowUpdated"])

    def test_bad_preface(self):
        server = H2Connection(False)
        server.initiate()
        server.data_to_send()
        events = server.receive_data(b"GET / HTTP/1.1\r\n")
        self.assertEqual(kinds(events), ["ConnectionTerminated"])
        self.assertEqual(events[0].error_code, F.PROTOCOL_ERROR)
        self.assertTrue(server.closed)
        self.assertEqual(server.receive_data(b"more"), [])
        frames = FrameReader().feed(server.data_to_send())
        self.assertEqual(frames[-1].type, F.GOAWAY)

    def test_first_frame_not_settings(self):
        server = H2Connection(False)
        server.initiate()
        events = server.receive_data(PREFACE + F.ping_frame(b"\0" * 8))
        self.assertEqual(events[-1].error_code, F.PROTOCOL_ERROR)
        client = H2Connection(True)
        client.initiate()
        events = client.receive_data(F.ping_frame(b"\0" * 8))
        self.assertEqual(events[-1].error_code, F.PROTOCOL_ERROR)


class ExchangeTest(unittest.TestCase):

    def test_get(self):
        client, server = pair()
        sid = client.start_request(GET, end_stream=True)
        self.assertEqual(sid, 1)
        cev, sev = pump(client, server)
        self.assertEqual(sev, [RequestReceived(1, GET), StreamEnded(1)])
        server.send_headers(1, OK + [(b"content-length", b"5")])
        server.send_data(1, b"hello", end_stream=True)
        cev, sev = pump(client, server)
        self.assertEqual(cev, [ResponseReceived(1, OK + [(b"content-length", b"5")]),
                               DataReceived(1, b"hello", 5), StreamEnded(1)])
        self.assertEqual(client.open_streams, 0)
        self.assertEqual(server.open_streams, 0)
        self.assertEqual(client.start_request(GET, True), 3)

    def test_post_with_trailers_and_informational(self):
        client, server = pair()
        sid = client.start_request(POST + [(b"te", b"trailers")])
        client.send_data(sid, b"part1")
        client.send_headers(sid, [(b"x-checksum", b"abc")], end_stream=True)
        cev, sev = pump(client, server)
        self.assertEqual(sev, [RequestReceived(sid, POST + [(b"te", b"trailers")]),
                               DataReceived(sid, b"part1", 5),
                               TrailersReceived(sid, [(b"x-checksum", b"abc")]),
                               StreamEnded(sid)])
        server.send_headers(sid, [(b":status", b"103"), (b"link", b"</a>")])
        server.send_headers(sid, OK)
        server.send_data(sid, b"x")
        server.send_headers(sid, [(b"grpc-status", b"0")])
        cev, sev = pump(client, server)
        self.assertEqual(kinds(cev), ["InformationalResponse", "ResponseReceived",
                                      "DataReceived", "TrailersReceived", "StreamEnded"])
        self.assertEqual(cev[0].headers, [(b":status", b"103"), (b"link", b"</a>")])

    def test_many_concurrent_streams_interleaved(self):
        client, server = pair()
        ids = [client.start_request(POST) for _ in range(10)]
        for i, sid in enumerate(ids):
            client.send_data(sid, b"%d" % i, end_stream=True)
        cev, sev = pump(client, server)
        got = {e.stream_id: e.data for e in sev if isinstance(e, DataReceived)}
        self.assertEqual(got, {sid: b"%d" % i for i, sid in enumerate(ids)})
        for sid in reversed(ids):
            server.send_headers(sid, OK, end_stream=True)
        cev, sev = pump(client, server)
        self.assertEqual([e.stream_id for e in cev if isinstance(e, ResponseReceived)],
                         list(reversed(ids)))

    def test_head_response_content_length_without_body(self):
        client, server = pair()
        sid = client.start_request([(b":method", b"HEAD")] + GET[1:], end_stream=True)
        pump(client, server)
        server.send_headers(sid, OK + [(b"content-length", b"1000")], end_stream=True)
        cev, _ = pump(client, server)
        self.assertEqual(kinds(cev), ["ResponseReceived", "StreamEnded"])

    def test_split_input_gives_the_same_events(self):
        # what a client sends, fed to a server whole, a byte at a time, and
        # split at every offset: the same events each way
        client = H2Connection(True)
        client.initiate()
        sid = client.start_request(POST + [(b"content-length", b"11")])
        client.send_data(sid, b"hello ")
        client.send_data(sid, b"world", end_stream=True)
        client.ping(b"pingpong")
        wire = client.data_to_send()

        def run(pieces):
            server = H2Connection(False)
            server.initiate()
            events = []
            for piece in pieces:
                events += server.receive_data(piece)
            return events, server.data_to_send()

        whole = run([wire])
        self.assertEqual(kinds(whole[0]), ["SettingsChanged", "WindowUpdated",
                                           "RequestReceived", "DataReceived", "DataReceived",
                                           "StreamEnded"])
        self.assertEqual(run([wire[i:i + 1] for i in range(len(wire))]), whole)
        for cut in range(1, len(wire)):
            self.assertEqual(run([wire[:cut], wire[cut:]]), whole, cut)

    def test_response_split_at_every_offset(self):
        client, server = pair()
        sid = client.start_request(GET, end_stream=True)
        pump(client, server)
        server.send_headers(sid, [(b":status", b"100")])
        server.send_headers(sid, OK + [(b"content-type", b"text/plain")])
        server.send_data(sid, b"abc" * 50)
        server.send_headers(sid, [(b"x-t", b"1")])
        wire = server.data_to_send()
        whole = copy.deepcopy(client).receive_data(wire)
        self.assertEqual(kinds(whole), ["InformationalResponse", "ResponseReceived",
                                        "DataReceived", "TrailersReceived", "StreamEnded"])
        for cut in range(1, len(wire)):
            c = copy.deepcopy(client)
            events = c.receive_data(wire[:cut]) + c.receive_data(wire[cut:])
            # data may arrive in two pieces: merge
            merged = []
            for e in events:
                if merged and isinstance(e, DataReceived) and isinstance(merged[-1], DataReceived):
                    merged[-1] = DataReceived(e.stream_id, merged[-1].data + e.data,
                                              merged[-1].flow_length + e.flow_length)
                else:
                    merged.append(e)
            self.assertEqual(merged, whole, cut)


class FieldRulesTest(unittest.TestCase):

    def refused(self, fields, end_stream=True):
        raw = RawClient()
        events = raw.send(raw.headers(1, fields, end_stream))
        self.assertEqual(events, [], fields)
        frames = raw.answer()
        self.assertEqual([(f.type, f.error_code) for f in frames],
                         [(F.RST_STREAM, F.PROTOCOL_ERROR)], fields)
        # the connection goes on, HPACK in step
        self.assertEqual(kinds(raw.send(raw.headers(3, GET))),
                         ["RequestReceived", "StreamEnded"])

    def test_malformed_requests_reset(self):
        for fields in [
            [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b"X-Up", b"1")],
            GET + [(b":path", b"/again")],
            [(b"accept", b"*/*")] + GET,
            GET + [(b":status", b"200")],
            GET[1:],
            [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a")],
            [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"")],
            GET + [(b"connection", b"close")],
            GET + [(b"transfer-encoding", b"chunked")],
            GET + [(b"upgrade", b"h2c")],
            GET + [(b"keep-alive", b"1")],
            GET + [(b"te", b"gzip")],
            GET + [(b"host", b"other.example")],
            GET + [(b"x", b"a\r\nb")],
            GET + [(b"x", b" lead")],
            GET + [(b"x", b"nul\0")],
            GET + [(b"content-length", b"abc")],
            GET + [(b"content-length", b"1, 2")],
            [(b":method", b"CONNECT"), (b":authority", b"a:443"), (b":path", b"/")],
            GET + [(b"content-length", b"5")],          # and END_STREAM: no content
            [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"),
             (b":authority", b"user@example.com")],
            GET + [(b":protocol", b"websocket")],       # RFC 8441 not announced
        ]:
            self.refused(fields)

    def test_fields_checked_before_are_still_placed_right(self):
        # a valid field is remembered; where it stands is checked each time
        raw = RawClient()
        fields = GET + [(b"x-seen", b"1")]
        self.assertEqual(kinds(raw.send(raw.headers(1, fields))), ["RequestReceived", "StreamEnded"])
        self.assertEqual(raw.send(raw.headers(3, [(b"x-seen", b"1")] + GET)), [])
        self.assertEqual([(f.type, f.error_code) for f in raw.answer()],
                         [(F.RST_STREAM, F.PROTOCOL_ERROR)])
        raw.send(raw.headers(5, POST, end_stream=False))
        self.assertEqual(kinds(raw.send(raw.headers(5, [(b"x-seen", b"1")]))),
                         ["TrailersReceived", "StreamEnded"])
        raw.send(raw.headers(7, POST, end_stream=False))
        self.assertEqual(raw.send(raw.headers(7, [(b"x-seen", b"1"), (b"host", b"a")])),
                         [StreamReset(7, F.PROTOCOL_ERROR, False)])

    def test_allowed_fields(self):
        raw = RawClient()
        fields = GET + [(b"te", b"trailers"), (b"host", b"example.com"),
                        (b"content-length", b"0, 0"), (b"x-empty", b"")]
        self.assertEqual(kinds(raw.send(raw.headers(1, fields))),
                         ["RequestReceived", "StreamEnded"])
        connect = [(b":method", b"CONNECT"), (b":authority", b"a:443")]
        self.assertEqual(kinds(raw.send(raw.headers(3, connect, end_stream=False))),
                         ["RequestReceived"])

    def test_content_length_checked_against_data(self):
        raw = RawClient()
        raw.send(raw.headers(1, POST + [(b"content-length", b"3")], end_stream=False))
        events = raw.send(F.data_frame(1, b"abcd", True))
        self.assertEqual(events[-1], StreamReset(1, F.PROTOCOL_ERROR, False))
        raw.send(raw.headers(3, POST + [(b"content-length", b"3")], end_stream=False))
        events = raw.send(F.data_frame(3, b"ab", True))
        self.assertEqual(kinds(events), ["DataReceived", "StreamReset"])
        self.assertEqual(events[-1].error_code, F.PROTOCOL_ERROR)

    def test_trailers_rules(self):
        raw = RawClient()
        raw.send(raw.headers(1, POST, end_stream=False))
        events = raw.send(raw.headers(1, [(b":path", b"/")], end_stream=True))
        self.assertEqual(events, [StreamReset(1, F.PROTOCOL_ERROR, False)])
        raw.send(raw.headers(3, POST, end_stream=False))
        events = raw.send(raw.headers(3, [(b"x", b"1")], end_stream=False))
        self.assertEqual(events, [StreamReset(3, F.PROTOCOL_ERROR, False)])

    def test_response_rules(self):
        for fields, end in [([(b"x", b"1")], True), ([(b":status", b"20")], True),
                            ([(b":status", b"101")], False), ([(b":status", b"100")], True),
                            (OK + [(b":path", b"/")], True)]:
            client, server = pair()
            sid = client.start_request(GET, True)
            pump(client, server)
            block = server._encoder.encode(fields)
            events = client.receive_data(F.headers_frames(sid, block, end))
            self.assertEqual(events, [StreamReset(sid, F.PROTOCOL_ERROR, False)], fields)

    def test_self_dependency_resets_and_keeps_hpack_in_step(self):
        raw = RawClient()
        events = raw.send(raw.headers(1, GET, priority=(False, 1, 16)))
        self.assertEqual(events, [])
        self.assertEqual([(f.type, f.error_code) for f in raw.answer()],
                         [(F.RST_STREAM, F.PROTOCOL_ERROR)])
        self.assertEqual(kinds(raw.send(raw.headers(3, GET))), ["RequestReceived", "StreamEnded"])

    def test_outbound_checked_before_anything_is_queued(self):
        client, server = pair()
        for fields in [GET + [(b"Upper", b"x")], GET + [(b"connection", b"close")],
                       GET[1:], GET + [(b"x", b"a\nb")]]:
            with self.assertRaises(H2UsageError):
                client.start_request(fields)
        self.assertEqual(client.data_to_send(), b"")
        sid = client.start_request(GET, True)
        pump(client, server)
        for fields in [[(b"x", b"1")], [(b":status", b"101")], OK + [(b":method", b"GET")]]:
            with self.assertRaises(H2UsageError):
                server.send_headers(sid, fields)
        with self.assertRaises(H2UsageError):
            server.send_headers(sid, [(b":status", b"100")], end_stream=True)
        with self.assertRaises(H2UsageError):
            server.send_data(sid, b"body before head")
        self.assertEqual(server.data_to_send(), b"")
        server.send_headers(sid, OK, end_stream=True)
        with self.assertRaises(H2UsageError):
            server.send_data(sid, b"after the end")
        with self.assertRaises(H2UsageError):
            server.start_request(GET)


class FlowControlTest(unittest.TestCase):

    def test_send_side_honours_windows_and_queues(self):
        client, server = pair()
        sid = client.start_request(GET, True)
        pump(client, server)
        server.send_headers(sid, OK)
        server.send_data(sid, b"x" * 100000, end_stream=True)
        self.assertEqual(server.outbound_buffered(sid), 100000 - 65535)
        cev, _ = pump(client, server)
        got = sum(len(e.data) for e in cev if isinstance(e, DataReceived))
        self.assertEqual(got, 65535)
        self.assertNotIn("StreamEnded", kinds(cev))
        # nothing more until the client consumes
        self.assertEqual(pump(client, server), ([], []))
        for e in cev:
            if isinstance(e, DataReceived):
                client.acknowledge_data(e.stream_id, e.flow_length)
        cev, sev = drain(client, server)
        self.assertIn(WindowUpdated(sid), sev)
        got += sum(len(e.data) for e in cev if isinstance(e, DataReceived))
        self.assertEqual(got, 100000)
        self.assertEqual(kinds(cev)[-1], "StreamEnded")
        self.assertEqual(server.outbound_buffered(), 0)

    def test_trailers_wait_for_queued_data(self):
        client, server = pair()
        sid = client.start_request(GET, True)
        pump(client, server)
        server.send_headers(sid, OK)
        server.send_data(sid, b"y" * 70000)
        server.send_headers(sid, [(b"x-trailer", b"t")])
        # another stream's head goes out meanwhile: HPACK order must hold
        sid2 = client.start_request(GET, True)
        first, _ = pump(client, server)
        self.assertNotIn("TrailersReceived", kinds(first))
        server.send_headers(sid2, OK + [(b"x-other", b"o")], end_stream=True)
        for e in first:
            if isinstance(e, DataReceived):
                client.acknowledge_data(e.stream_id, e.flow_length)
        events, _ = drain(client, server)
        events = first + events
        self.assertEqual(kinds(events)[-2:], ["TrailersReceived", "StreamEnded"])
        self.assertIn(ResponseReceived(sid2, OK + [(b"x-other", b"o")]), events)
        self.assertIn(TrailersReceived(sid, [(b"x-trailer", b"t")]), events)
        self.assertEqual(sum(len(e.data) for e in events if isinstance(e, DataReceived)), 70000)

    def test_window_updates_follow_acknowledgement(self):
        raw = RawClient()
        raw.send(raw.headers(1, POST, end_stream=False))
        raw.send(F.data_frame(1, b"z" * 15000) + F.data_frame(1, b"z" * 15000))
        self.assertEqual(raw.answer(), [])
        raw.server.acknowledge_data(1, 30000)
        self.assertEqual(raw.answer(), [])   # under half the window
        raw.send(F.data_frame(1, b"z" * 5000))
        raw.server.acknowledge_data(1, 5000)
        frames = raw.answer()
        self.assertEqual([(f.type, f.stream_id, f.increment) for f in frames],
                         [(F.WINDOW_UPDATE, 1, 35000)])

    def test_data_beyond_stream_window_resets(self):
        raw = RawClient(H2Config(initial_window_size=1000))
        raw.send(raw.headers(1, POST, end_stream=False))
        events = raw.send(F.data_frame(1, b"z" * 1001))
        self.assertEqual(events, [StreamReset(1, F.FLOW_CONTROL_ERROR, False)])

    def test_data_beyond_connection_window_is_a_connection_error(self):
        raw = RawClient(H2Config(connection_window_size=65535, initial_window_size=1000000))
        for sid in (1, 3, 5, 7, 9):
            raw.send(raw.headers(sid, POST, end_stream=False))
            raw.send(F.data_frame(sid, b"z" * 16000))
        self.assertEqual(raw.goaway(), "FLOW_CONTROL_ERROR")

    def test_initial_window_change_applies_to_open_streams(self):
        client, server = pair()
        sid = client.start_request(GET, True)
        pump(client, server)
        server.send_headers(sid, OK)
        server.send_data(sid, b"q" * 70000)
        pump(client, server)
        self.assertEqual(server.outbound_buffered(sid), 70000 - 65535)
        client.update_settings({F.INITIAL_WINDOW_SIZE: 200000})
        cev, sev = pump(client, server)
        self.assertEqual(server.outbound_buffered(sid), 0)
        self.assertEqual(sum(len(e.data) for e in cev if isinstance(e, DataReceived)), 70000 - 65535)

    def test_window_overflow(self):
        client, server = pair()
        events = client.receive_data(F.window_update_frame(0, 2 ** 31 - 1))
        self.assertEqual(events[-1].error_code, F.FLOW_CONTROL_ERROR)
        client, server = pair()
        sid = client.start_request(GET, True)
        events = client.receive_data(F.window_update_frame(sid, 2 ** 31 - 1))
        self.assertEqual(events, [StreamReset(sid, F.FLOW_CONTROL_ERROR, False)])

    def test_padding_counts_for_flow_control(self):
        raw = RawClient()
        raw.send(raw.headers(1, POST, end_stream=False))
        events = raw.send(F.data_frame(1, b"abc", pad=100))
        self.assertEqual(events, [DataReceived(1, b"abc", 103)])


class ControlFrameTest(unittest.TestCase):

    def test_ping(self):
        client, server = pair()
        client.ping(b"12345678")
        cev, sev = pump(client, server)
        self.assertEqual(cev, [PingAck(b"12345678")])
        raw = RawClient()
        raw.send(F.ping_frame(b"abcdefgh"))
        self.assertEqual(raw.answer(), [F.PingFrame(True, b"abcdefgh")])

    def test_goaway_from_server(self):
        client, server = pair()
        a = client.start_request(GET, True)
        pump(client, server)
        b = client.start_request(GET, True)
        server.close()
        cev, sev = pump(client, server)
        self.assertEqual(cev[0], ConnectionTerminated(F.NO_ERROR, a, b"", True))
        self.assertIn(StreamReset(b, F.REFUSED_STREAM, True), cev)
        # the request above last_stream_id never reached the server's application
        self.assertEqual(sev, [])
        self.assertFalse(client.can_open_stream)
        with self.assertRaises(H2UsageError):
            client.start_request(GET)
        # stream a still completes
        server.send_headers(a, OK, end_stream=True)
        cev, _ = pump(client, server)
        self.assertEqual(kinds(cev), ["ResponseReceived", "StreamEnded"])

    def test_rst_stream_from_peer(self):
        client, server = pair()
        sid = client.start_request(POST)
        pump(client, server)
        client.reset_stream(sid)
        cev, sev = pump(client, server)
        self.assertEqual(sev, [StreamReset(sid, F.CANCEL, True)])
        # frames the peer sends after its own reset are its error
        self.assertEqual(server.receive_data(F.data_frame(sid, b"late")), [])
        self.assertEqual(FrameReader().feed(server.data_to_send()),
                         [F.RstStreamFrame(sid, F.STREAM_CLOSED)])
        # a stream we reset: late frames (in flight) are ignored
        sid = client.start_request(POST)
        pump(client, server)
        server.reset_stream(sid)
        self.assertEqual(server.receive_data(F.data_frame(sid, b"in flight")), [])
        self.assertEqual(FrameReader().feed(server.data_to_send()),
                         [F.RstStreamFrame(sid, F.CANCEL)])
        # and a late call on it is a no-op (a race, not a misuse)
        self.assertIs(server.send_headers(sid, OK), False)
        self.assertEqual(server.data_to_send(), b"")

    def test_protocol_errors_end_with_goaway_and_the_right_code(self):
        cases = [
            (F.data_frame(9, b"x"), "PROTOCOL_ERROR"),                 # idle stream
            (F.headers_frames(1, b"\xff\xff\xff\xff\xff\xff\xff\xff"), "COMPRESSION_ERROR"),
            (F._head(20000, F.DATA, 0, 1) + b"x" * 20000, "FRAME_SIZE_ERROR"),
            (F.continuation_frame(1, b"\x82"), "PROTOCOL_ERROR"),
            (F.window_update_frame(11, 1), "PROTOCOL_ERROR"),
            (F.rst_stream_frame(11, 0), "PROTOCOL_ERROR"),
            (F.push_promise_frames(1, 2, b"\x82"), "PROTOCOL_ERROR"),
            (F.headers_frames(2, b"\x82"), "PROTOCOL_ERROR"),        # even id from a client
            (F.settings_frame([(F.INITIAL_WINDOW_SIZE, 2 ** 31)]), "FLOW_CONTROL_ERROR"),
        ]
        for wire, code in cases:
            raw = RawClient()
            events = raw.send(wire)
            self.assertEqual(kinds(events)[-1:], ["ConnectionTerminated"], code)
            self.assertEqual(F.error_name(events[-1].error_code), code)
            self.assertEqual(raw.goaway(), code)
            self.assertTrue(raw.server.closed)

    def test_header_block_interrupted(self):
        raw = RawClient()
        block = raw.encoder.encode(GET)
        raw.send(F._head(2, F.HEADERS, F.END_STREAM, 1) + block[:2])
        raw.send(F.ping_frame(b"\0" * 8))
        self.assertEqual(raw.goaway(), "PROTOCOL_ERROR")

    def test_header_block_in_continuations(self):
        raw = RawClient()
        fields = GET + [(b"x-big", b"v" * 40000)]
        events = raw.send(raw.headers(1, fields))
        self.assertEqual(events, [RequestReceived(1, fields), StreamEnded(1)])

    def test_decreasing_stream_id(self):
        raw = RawClient()
        raw.send(raw.headers(5, GET))
        raw.send(raw.headers(3, GET))
        self.assertEqual(raw.goaway(), "PROTOCOL_ERROR")

    def test_frames_on_closed_streams(self):
        # closed by both ends: DATA is a stream error, HEADERS a connection error
        raw = RawClient()
        raw.send(raw.headers(1, GET))
        raw.server.send_headers(1, OK, end_stream=True)
        raw.answer()
        raw.send(F.data_frame(1, b"late"))
        self.assertEqual([(f.type, f.error_code) for f in raw.answer()],
                         [(F.RST_STREAM, F.STREAM_CLOSED)])
        # answered once: then ignored
        raw.send(F.data_frame(1, b"later"))
        self.assertEqual(raw.answer(), [])
        raw = RawClient()
        raw.send(raw.headers(1, GET))
        raw.server.send_headers(1, OK, end_stream=True)
        raw.send(raw.headers(1, GET))
        self.assertEqual(raw.goaway(), "STREAM_CLOSED")
        # reset by the peer: the same
        raw = RawClient()
        raw.send(raw.headers(1, POST, end_stream=False) + F.rst_stream_frame(1, F.CANCEL))
        raw.send(F.data_frame(1, b"late"))
        self.assertEqual([(f.type, f.error_code) for f in raw.answer()],
                         [(F.RST_STREAM, F.STREAM_CLOSED)])
        # but WINDOW_UPDATE, PRIORITY and RST_STREAM are fine
        raw.send(F.window_update_frame(1, 5) + F.priority_frame(1, 0) + F.rst_stream_frame(1, 0))
        self.assertEqual(raw.answer(), [])
        self.assertFalse(raw.server.closed)


class DefenceTest(unittest.TestCase):

    def test_too_many_concurrent_streams_refused(self):
        raw = RawClient(H2Config(max_concurrent_streams=2))
        raw.send(raw.headers(1, GET, end_stream=False))
        raw.send(raw.headers(3, GET, end_stream=False))
        events = raw.send(raw.headers(5, GET, end_stream=False))
        self.assertEqual(events, [])
        self.assertEqual([(f.type, f.stream_id, f.error_code) for f in raw.answer()],
                         [(F.RST_STREAM, 5, F.REFUSED_STREAM)])
        # one closes, the next may open
        raw.send(F.rst_stream_frame(1, F.CANCEL))
        self.assertEqual(kinds(raw.send(raw.headers(7, GET, end_stream=False))),
                         ["RequestReceived"])

    def test_client_keeps_to_the_servers_limit(self):
        client, server = pair(server_config=H2Config(max_concurrent_streams=2))
        client.start_request(GET)
        client.start_request(GET)
        self.assertFalse(client.can_open_stream)
        with self.assertRaises(H2UsageError):
            client.start_request(GET)

    def test_refusal_flood(self):
        clock = FakeClock()
        raw = RawClient(H2Config(max_concurrent_streams=1, reset_burst=50), clock)
        raw.send(raw.headers(1, GET, end_stream=False))
        for sid in range(3, 3 + 2 * 60, 2):
            raw.send(raw.headers(sid, GET, end_stream=False))
        self.assertEqual(raw.goaway(), "ENHANCE_YOUR_CALM")

    def test_rapid_reset(self):
        clock = FakeClock()
        raw = RawClient(H2Config(reset_burst=100, reset_rate=10), clock)
        sid = 1
        for _ in range(100):
            raw.send(raw.headers(sid, GET, end_stream=False) + F.rst_stream_frame(sid, F.CANCEL))
            sid += 2
        self.assertFalse(raw.server.closed)
        raw.send(raw.headers(sid, GET, end_stream=False) + F.rst_stream_frame(sid, F.CANCEL))
        self.assertTrue(raw.server.closed)
        self.assertEqual(raw.goaway(), "ENHANCE_YOUR_CALM")
        self.assertLessEqual(len(raw.server.streams), 1)

    def test_slow_resets_are_fine(self):
        clock = FakeClock()
        raw = RawClient(H2Config(reset_burst=10, reset_rate=10), clock)
        sid = 1
        for _ in range(500):
            raw.send(raw.headers(sid, GET, end_stream=False) + F.rst_stream_frame(sid, F.CANCEL))
            clock.now += 0.1
            sid += 2
        self.assertFalse(raw.server.closed)

    def test_continuation_flood(self):
        raw = RawClient(H2Config(max_continuation_frames=32))
        raw.send(F._head(1, F.HEADERS, 0, 1) + b"\x82")
        for _ in range(31):
            raw.send(F.continuation_frame(1, b"", end_headers=False))
        self.assertFalse(raw.server.closed)
        events = raw.send(F.continuation_frame(1, b"", end_headers=False))
        self.assertEqual(events[-1].error_code, F.ENHANCE_YOUR_CALM)
        self.assertEqual(raw.goaway(), "ENHANCE_YOUR_CALM")

    def test_header_block_size_cap(self):
        raw = RawClient(H2Config(max_header_block_size=20000))
        raw.send(F._head(16000, F.HEADERS, 0, 1) + b"\0" * 16000)
        self.assertFalse(raw.server.closed)
        raw.send(F.continuation_frame(1, b"\0" * 5000, end_headers=False))
        self.assertEqual(raw.goaway(), "ENHANCE_YOUR_CALM")

    def test_hpack_bomb_answered_431(self):
        raw = RawClient(H2Config(max_header_list_size=8000))
        # a 2500-octet entry, then references to it: a 1 KB block, 2.5 MB decoded
        raw.encoder.not_indexed = ()
        block = raw.encoder.encode(GET + [(b"x-bomb", b"b" * 2500)])
        bomb = raw.encoder.encode(GET + [(b"x-bomb", b"b" * 2500)] * 1000)
        self.assertLess(len(bomb), 2000)
        events = raw.send(F.headers_frames(1, block, True) + F.headers_frames(3, bomb, True))
        self.assertEqual(kinds(events), ["RequestReceived", "StreamEnded"])
        frames = raw.answer()
        self.assertEqual(frames[0].type, F.HEADERS)
        self.assertEqual(Decoder().decode(frames[0].block), [(b":status", b"431")])
        # the connection goes on
        self.assertEqual(kinds(raw.send(raw.headers(5, GET))), ["RequestReceived", "StreamEnded"])

    def test_response_over_the_list_limit_resets_the_stream(self):
        client, server = pair(client_config=H2Config(max_header_list_size=2000))
        sid = client.start_request(GET, True)
        other = client.start_request(GET, True)
        pump(client, server)
        server.send_headers(sid, OK + [(b"x-big", b"v" * 3000)], end_stream=True)
        server.send_headers(other, OK, end_stream=True)
        cev, sev = pump(client, server)
        self.assertEqual(cev, [StreamReset(sid, F.ENHANCE_YOUR_CALM, False),
                               ResponseReceived(other, OK), StreamEnded(other)])

    def test_empty_headers_flood(self):
        clock = FakeClock()
        raw = RawClient(H2Config(empty_frame_burst=30), clock)
        raw.send(raw.headers(1, POST, end_stream=False))
        raw.send(F.headers_frames(1, b"", False) * 100)
        self.assertEqual(raw.goaway(), "ENHANCE_YOUR_CALM")

    def test_settings_flood(self):
        clock = FakeClock()
        raw = RawClient(H2Config(settings_burst=20, settings_rate=1), clock)
        for _ in range(19):
            raw.send(F.settings_frame())
        self.assertFalse(raw.server.closed)
        raw.send(F.settings_frame())
        self.assertEqual(raw.goaway(), "ENHANCE_YOUR_CALM")

    def test_ping_flood_bounded_answers(self):
        clock = FakeClock()
        raw = RawClient(H2Config(ping_burst=20, ping_rate=1), clock)
        raw.send(F.ping_frame(b"\0" * 8) * 1000)
        frames = raw.answer()
        self.assertLessEqual(sum(1 for f in frames if f.type == F.PING), 20)
        self.assertEqual(frames[-1].type, F.GOAWAY)
        self.assertEqual(frames[-1].error_code, F.ENHANCE_YOUR_CALM)

    def test_empty_data_flood(self):
        clock = FakeClock()
        raw = RawClient(H2Config(empty_frame_burst=30, empty_frame_rate=1), clock)
        raw.send(raw.headers(1, POST, end_stream=False))
        raw.send(F.data_frame(1, b"") * 1000)
        self.assertEqual(raw.goaway(), "ENHANCE_YOUR_CALM")

    def test_priority_flood(self):
        clock = FakeClock()
        raw = RawClient(H2Config(empty_frame_burst=30), clock)
        raw.send(F.priority_frame(1, 0) * 1000)
        self.assertEqual(raw.goaway(), "ENHANCE_YOUR_CALM")

    def test_stream_id_exhaustion(self):
        client, server = pair()
        client._next_stream_id = 2 ** 31 - 3
        server._highest_peer_stream = 2 ** 31 - 5
        a = client.start_request(GET, True)
        b = client.start_request(GET, True)
        self.assertEqual((a, b), (2 ** 31 - 3, 2 ** 31 - 1))
        self.assertTrue(client.streams_exhausted)
        self.assertFalse(client.can_open_stream)
        with self.assertRaisesRegex(H2UsageError, "exhausted"):
            client.start_request(GET, True)
        cev, sev = pump(client, server)
        self.assertEqual([e.stream_id for e in sev if isinstance(e, RequestReceived)], [a, b])

    def test_late_frames_on_reset_streams_bounded(self):
        raw = RawClient(H2Config(max_closed_streams=10))
        for sid in range(1, 41, 2):
            raw.send(raw.headers(sid, POST, end_stream=False))
            raw.server.reset_stream(sid)
        self.assertEqual(len(raw.server._closed), 10)


class UsageTest(unittest.TestCase):

    def test_graceful_close_ignores_new_streams(self):
        raw = RawClient()
        raw.send(raw.headers(1, GET, end_stream=False))
        raw.server.close()
        self.assertEqual(raw.answer()[-1].last_stream_id, 1)
        self.assertEqual(raw.send(raw.headers(3, GET)), [])
        # stream 1 still answers
        raw.server.send_headers(1, OK, end_stream=True)
        self.assertEqual(raw.answer()[0].type, F.HEADERS)

    def test_informational_without_outbound_validation(self):
        client, server = pair(server_config=H2Config(validate_outbound=False))
        sid = client.start_request(GET, True)
        pump(client, server)
        server.send_headers(sid, [(b":status", b"100")])
        server.send_headers(sid, OK, end_stream=True)
        cev, _ = pump(client, server)
        self.assertEqual(kinds(cev), ["InformationalResponse", "ResponseReceived", "StreamEnded"])

    def test_config_checked(self):
        for kw in [{"max_frame_size": 100}, {"initial_window_size": 2 ** 31},
                   {"connection_window_size": 1000}, {"window_update_ratio": 0},
                   {"max_concurrent_streams": -1}]:
            with self.assertRaises(ValueError, msg=kw):
                H2Config(**kw)

    def test_never_indexed_fields_reported_and_passed_on(self):
        client, server = pair()
        sid = client.start_request(GET + [(b"authorization", b"Basic x"), (b"x-secret", b"s")],
                                   True, never_index=[b"x-secret"])
        cev, sev = pump(client, server)
        self.assertEqual(sev[0].never_indexed, {b"authorization", b"x-secret"})
        self.assertEqual([n for n, _ in client._encoder.table], [b":authority"])
        server.send_headers(sid, OK + [(b"x-secret", b"t")], never_index=sev[0].never_indexed)
        server.send_data(sid, b"q")
        server.send_headers(sid, [(b"x-secret", b"u")], never_index=[b"x-secret"])
        cev, sev = pump(client, server)
        self.assertEqual(cev[0].never_indexed, {b"x-secret"})
        self.assertEqual(cev[2], TrailersReceived(sid, [(b"x-secret", b"u")], {b"x-secret"}))
        self.assertNotIn(b"x-secret", [n for n, _ in server._encoder.table])

    def test_settings_ack_event(self):
        client, server = pair()
        self.assertTrue(client.settings_acknowledged)
        client.update_settings({F.MAX_CONCURRENT_STREAMS: 5})
        self.assertFalse(client.settings_acknowledged)
        cev, sev = pump(client, server)
        self.assertEqual(sev, [SettingsChanged({F.MAX_CONCURRENT_STREAMS: 5})])
        self.assertEqual(cev, [SettingsAcknowledged()])
        self.assertTrue(client.settings_acknowledged)
        self.assertEqual(client.local_settings[F.MAX_CONCURRENT_STREAMS], 5)

    def test_peer_table_size_applied(self):
        client, server = pair(server_config=H2Config(header_table_size=0))
        client.start_request(GET + [(b"x-a", b"1")], True)
        client.start_request(GET + [(b"x-a", b"1")], True)
        cev, sev = pump(client, server)
        self.assertEqual(len([e for e in sev if isinstance(e, RequestReceived)]), 2)
        self.assertEqual(client._encoder.table, [])


if __name__ == "__main__":
    unittest.main()


class FuzzTest(unittest.TestCase):
    """Corrupted input ends in events (at worst GOAWAY), never an exception."""

    def test_corrupted_client_input(self):
        rnd = random.Random(14)
        client = H2Connection(True)
        client.initiate()
        for _ in range(3):
            sid = client.start_request(POST + [(b"x-n", b"v" * rnd.randint(0, 40))])
            client.send_data(sid, b"abc" * 10, True)
        client.ping()
        wire = client.data_to_send()
        for _ in range(1500):
            w = bytearray(wire)
            for _ in range(rnd.randint(1, 3)):
                w[rnd.randrange(len(PREFACE), len(w))] = rnd.randrange(256)
            server = H2Connection(False)
            server.initiate()
            cut = rnd.randrange(len(w))
            for e in server.receive_data(bytes(w[:cut])) + server.receive_data(bytes(w[cut:])):
                self.assertIsInstance(e, Event)
            server.data_to_send()

    def test_corrupted_server_input(self):
        rnd = random.Random(15)
        client, server = pair()
        sid = client.start_request(GET, True)
        pump(client, server)
        server.send_headers(sid, [(b":status", b"103")])
        server.send_headers(sid, OK + [(b"content-length", b"10")])
        server.send_data(sid, b"0123456789")
        server.send_headers(sid, [(b"x-t", b"1")])
        wire = server.data_to_send()
        for _ in range(1500):
            w = bytearray(wire)
            for _ in range(rnd.randint(1, 3)):
                w[rnd.randrange(len(w))] = rnd.randrange(256)
            c = copy.deepcopy(client)
            c.receive_data(bytes(w))
            c.data_to_send()


# -- against real peers (each test skips when its peer is not installed) ------------
#
# The core has no I/O of its own, so these tests drive it with blocking
# sockets, one thread per connection: a small server for curl, nghttp and
# h2load, and a client for nghttpd.


class ThreadServer:
    """An h2c (prior knowledge) server on a port of the OS's choosing:
    answers each request with ``GET <path>`` or, for a body, its echo."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.errors = []
        self.requests = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        h2 = H2Connection(False)
        h2.initiate()
        heads, bodies = {}, {}
        try:
            conn.sendall(h2.data_to_send())
            while not h2.closed:
                data = conn.recv(65536)
                if not data:
                    break
                for ev in h2.receive_data(data):
                    if isinstance(ev, RequestReceived):
                        heads[ev.stream_id] = dict(ev.headers)
                        bodies[ev.stream_id] = []
                        self.requests.append(ev.headers)
                    elif isinstance(ev, DataReceived):
                        bodies[ev.stream_id].append(ev.data)
                        h2.acknowledge_data(ev.stream_id, ev.flow_length)
                    elif isinstance(ev, StreamEnded):
                        head = heads.pop(ev.stream_id)
                        body = b"".join(bodies.pop(ev.stream_id))
                        if not body:
                            body = b"GET " + head[b":path"]
                        h2.send_headers(ev.stream_id, [
                            (b":status", b"200"), (b"content-length", b"%d" % len(body)),
                            (b"content-type", b"text/plain")])
                        h2.send_data(ev.stream_id, body, end_stream=True)
                out = h2.data_to_send()
                if out:
                    conn.sendall(out)
        except Exception as err:  # reported by the test
            self.errors.append(err)
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def run(args, timeout=20):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


class PeerTestCase(unittest.TestCase):

    def setUp(self):
        self.server = ThreadServer()
        self.url = "http://127.0.0.1:%d" % self.server.port

    def tearDown(self):
        self.server.close()
        self.assertEqual(self.server.errors, [])


def curl_has_http2():
    curl = shutil.which("curl")
    if not curl:
        return False
    out = subprocess.run([curl, "--version"], stdout=subprocess.PIPE).stdout
    return b"HTTP2" in out or b"nghttp2" in out


@unittest.skipUnless(curl_has_http2(), "curl with HTTP/2 not installed")
class CurlTest(PeerTestCase):

    # one URL per run: curl 7.88 fails reusing an h2c connection for a
    # second URL against nghttpd just the same ("Error in the HTTP2 framing
    # layer")

    def test_get_prior_knowledge(self):
        res = run(["curl", "-sS", "--http2-prior-knowledge", "-w", " %{http_version}",
                   "-H", "X-Custom: yes", self.url + "/a?b=c"])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout, b"GET /a?b=c 2")
        self.assertIn((b"x-custom", b"yes"), self.server.requests[0])

    def test_post_prior_knowledge(self):
        body = os.urandom(300000).hex().encode()   # 600 KB: windows must reopen
        res = subprocess.run(
            ["curl", "-sS", "--http2-prior-knowledge", "--data-binary", "@-", self.url + "/up"],
            input=body, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout, body)
        self.assertIn((b":method", b"POST"), self.server.requests[0])


@unittest.skipUnless(shutil.which("nghttp"), "nghttp not installed")
class NghttpTest(PeerTestCase):

    def test_concurrent_streams(self):
        res = run(["nghttp", "-n", "-s", "-m", "20", self.url + "/x"])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(len(self.server.requests), 20)

    def test_upload(self):
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"z" * 200000)
            f.flush()
            res = run(["nghttp", "-d", f.name, self.url + "/up"])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout, b"z" * 200000)


@unittest.skipUnless(shutil.which("h2load"), "h2load not installed")
class H2loadTest(PeerTestCase):

    def test_load(self):
        res = run(["h2load", "-n", "400", "-c", "4", "-m", "10", self.url + "/load"])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stdout, rb"requests: 400 total, 400 started, 400 done, 400 succeeded")


def _listening_port(pid, deadline):
    """The TCP port process ``pid`` listens on (from /proc), once it does."""
    while time.monotonic() < deadline:
        inodes = set()
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                m = re.match(r"socket:\[(\d+)\]", target)
                if m:
                    inodes.add(m.group(1))
            with open("/proc/%d/net/tcp" % pid) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if parts[3] == "0A" and parts[9] in inodes:   # LISTEN
                        return int(parts[1].split(":")[1], 16)
        except OSError:
            pass
        time.sleep(0.02)   # polling the process for its port, not synchronising
    raise AssertionError("nghttpd did not listen")


@unittest.skipUnless(shutil.which("nghttpd") and os.path.isdir("/proc/self/fd"),
                     "nghttpd (or /proc) not available")
class ClientAgainstNghttpdTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        with open(os.path.join(self.dir, "index.html"), "wb") as f:
            f.write(b"hello\n")
        self.big = os.urandom(500000)
        with open(os.path.join(self.dir, "big"), "wb") as f:
            f.write(self.big)
        self.proc = subprocess.Popen(
            ["nghttpd", "--no-tls", "-a", "127.0.0.1", "-d", self.dir, "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port = _listening_port(self.proc.pid, time.monotonic() + 5)

    def tearDown(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir)

    def test_requests_and_flow_control(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        h2 = H2Connection(True)
        h2.initiate()
        paths = [b"/index.html", b"/big", b"/index.html", b"/missing"]
        ids = {}
        for path in paths:
            ids[h2.start_request([(b":method", b"GET"), (b":scheme", b"http"), (b":path", path),
                                  (b":authority", b"127.0.0.1")], end_stream=True)] = path
        sock.sendall(h2.data_to_send())
        status, bodies, ended = {}, {sid: [] for sid in ids}, set()
        deadline = time.monotonic() + 10
        while len(ended) < len(ids) and time.monotonic() < deadline:
            data = sock.recv(65536)
            self.assertTrue(data, "nghttpd closed the connection")
            for ev in h2.receive_data(data):
                if isinstance(ev, ResponseReceived):
                    status[ev.stream_id] = dict(ev.headers)[b":status"]
                elif isinstance(ev, DataReceived):
                    bodies[ev.stream_id].append(ev.data)
                    h2.acknowledge_data(ev.stream_id, ev.flow_length)
                elif isinstance(ev, StreamEnded):
                    ended.add(ev.stream_id)
                elif isinstance(ev, (StreamReset, ConnectionTerminated)):
                    self.fail(ev)
            out = h2.data_to_send()
            if out:
                sock.sendall(out)
        h2.close()
        sock.sendall(h2.data_to_send())
        sock.close()
        got = {ids[sid]: (status[sid], b"".join(bodies[sid])) for sid in ids}
        self.assertEqual(got[b"/index.html"], (b"200", b"hello\n"))
        self.assertEqual(got[b"/big"], (b"200", self.big))
        self.assertEqual(got[b"/missing"][0], b"404")


class ProvokedResetTest(unittest.TestCase):
    """Resets a peer makes us send cost it tokens (review findings 1, 2)."""

    def _flood(self, trigger, count=60):
        clock = FakeClock()
        raw = RawClient(H2Config(reset_burst=20, reset_rate=1), clock)
        for i in range(count):
            raw.send(trigger(raw, 1 + 2 * i))
            raw.answer()
            if raw.server.closed:
                return raw, i
        return raw, None

    def test_made_you_reset_window_overflow(self):
        # CVE-2025-8671: a valid request, then a frame that makes us reset it
        raw, n = self._flood(lambda raw, sid: raw.headers(sid, POST, end_stream=False)
                             + F.window_update_frame(sid, 2 ** 31 - 1))
        self.assertEqual(n, 20)
        self.assertEqual(raw.server.error_code, F.ENHANCE_YOUR_CALM)

    def test_made_you_reset_content_length_and_trailers(self):
        for trigger in (
            lambda raw, sid: raw.headers(sid, POST + [(b"content-length", b"1")], False)
            + F.data_frame(sid, b"xx"),
            lambda raw, sid: raw.headers(sid, POST, False) + raw.headers(sid, [(b"x", b"y")], False),
        ):
            raw, n = self._flood(trigger)
            self.assertEqual(n, 20)
            self.assertEqual(raw.server.error_code, F.ENHANCE_YOUR_CALM)

    def test_rst_answers_to_bad_priority_bounded(self):
        clock = FakeClock()
        raw = RawClient(H2Config(reset_burst=20, reset_rate=1, empty_frame_burst=1000), clock)
        raw.send(raw.headers(1001, GET))
        raw.answer()
        # bad-length PRIORITY on closed (skipped) streams: a stream error each
        raw.send(b"".join(F._head(4, F.PRIORITY, 0, sid) + b"\0" * 4 for sid in range(1, 999, 2)))
        frames = raw.answer()
        self.assertLessEqual(sum(1 for f in frames if f.type == F.RST_STREAM), 20)
        self.assertEqual(frames[-1].type, F.GOAWAY)
        self.assertEqual(frames[-1].error_code, F.ENHANCE_YOUR_CALM)

    def test_rst_answers_to_data_on_closed_streams_bounded(self):
        clock = FakeClock()
        raw = RawClient(H2Config(reset_burst=20, reset_rate=1), clock)
        raw.send(raw.headers(1001, GET))
        raw.answer()
        raw.send(b"".join(F.data_frame(sid, b"") for sid in range(1, 999, 2)))
        frames = raw.answer()
        self.assertLessEqual(sum(1 for f in frames if f.type == F.RST_STREAM), 20)
        self.assertEqual(frames[-1].error_code, F.ENHANCE_YOUR_CALM)

    def test_431_answers_bounded(self):
        clock = FakeClock()
        raw = RawClient(H2Config(reset_burst=20, reset_rate=1, max_header_list_size=1000), clock)
        raw.encoder.not_indexed = ()
        raw.send(raw.headers(1, GET + [(b"x-big", b"b" * 600)]))
        raw.answer()
        big = GET + [(b"x-big", b"b" * 600)] * 3
        for sid in range(3, 3 + 2 * 40, 2):
            raw.send(raw.headers(sid, big))
        self.assertTrue(raw.server.closed)
        self.assertEqual(raw.server.error_code, F.ENHANCE_YOUR_CALM)

    def test_occasional_stream_errors_are_fine(self):
        clock = FakeClock()
        raw = RawClient(H2Config(reset_burst=20, reset_rate=10), clock)
        for i in range(200):
            sid = 1 + 2 * i
            raw.send(raw.headers(sid, POST, end_stream=False)
                     + F.window_update_frame(sid, 2 ** 31 - 1))
            clock.now += 0.2
        self.assertFalse(raw.server.closed)


class PseudoHeaderValueTest(unittest.TestCase):
    """RFC 9113 8.3.1: pseudo-header values that would turn into another
    request line once translated (review finding 5, nits 13, 14)."""

    def refused(self, fields, end_stream=True, raw=None):
        raw = raw or RawClient()
        events = raw.send(raw.headers(1, fields, end_stream))
        self.assertEqual(events, [], fields)
        self.assertEqual([(f.type, f.error_code) for f in raw.answer()],
                         [(F.RST_STREAM, F.PROTOCOL_ERROR)], fields)
        self.assertEqual(kinds(raw.send(raw.headers(3, GET))), ["RequestReceived", "StreamEnded"])

    def test_bad_pseudo_header_values_reset(self):
        rest = [(b":scheme", b"https"), (b":authority", b"example.com")]
        for fields in [
            [(b":method", b"GET /admin"), (b":path", b"/x")] + rest,
            [(b":method", b""), (b":path", b"/")] + rest,
            [(b":method", b"G\x01T"), (b":path", b"/")] + rest,
            [(b":method", b"GET"), (b":path", b"x")] + rest,
            [(b":method", b"GET"), (b":path", b"/a b")] + rest,
            [(b":method", b"GET"), (b":path", b"/a\x01")] + rest,
            [(b":method", b"GET"), (b":path", b"/a\x7f")] + rest,
            [(b":method", b"GET"), (b":path", b"/a\tb")] + rest,
            # Not ASCII: no URI has it, and HTTP/1.1's request-target refuses
            # it (400) as thor's client does (a proxy would blame its origin).
            [(b":method", b"GET"), (b":path", b"/\xc3\xa9")] + rest,
            [(b":method", b"GET"), (b":path", b"/\xff")] + rest,
            [(b":method", b"GET"), (b":path", b"*")] + rest,
            [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b""), (b":authority", b"a")],
            [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"ht tp"), (b":authority", b"a")],
            [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"1http"), (b":authority", b"a")],
            [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"https"), (b":authority", b"a b")],
            [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"https"), (b":authority", b"a/b")],
            [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"https"), (b":authority", b"")],
            [(b":method", b"CONNECT"), (b":authority", b"a b:443")],
        ]:
            self.refused(fields)

    def test_good_pseudo_header_values(self):
        raw = RawClient()
        sid = 1
        for fields in [
            [(b":method", b"OPTIONS"), (b":scheme", b"https"), (b":path", b"*"),
             (b":authority", b"example.com")],
            [(b":method", b"M-SEARCH"), (b":scheme", b"coap+tcp"), (b":path", b"/a?b=%20&c#d"),
             (b":authority", b"[::1]:8443")],
            [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/%C3%A9"),
             (b":authority", b"xn--e1afmkfd.example:80")],
            GET + [(b"host", b"Example.COM")],     # Host compares case-insensitively
        ]:
            self.assertEqual(kinds(raw.send(raw.headers(sid, fields))),
                             ["RequestReceived", "StreamEnded"], fields)
            sid += 2

    def test_extended_connect_needs_authority(self):
        raw = RawClient()
        raw.server.update_settings({F.ENABLE_CONNECT_PROTOCOL: 1})
        raw.answer()
        fields = [(b":method", b"CONNECT"), (b":protocol", b"websocket"),
                  (b":scheme", b"https"), (b":path", b"/chat")]
        self.refused(fields, end_stream=False, raw=raw)
        events = raw.send(raw.headers(5, fields + [(b":authority", b"example.com")], False))
        self.assertEqual(kinds(events), ["RequestReceived"])

    def test_outbound_request_checked_too(self):
        client, server = pair()
        with self.assertRaises(H2UsageError):
            client.start_request([(b":method", b"GET / HTTP/1.1\r\n"), (b":scheme", b"https"),
                                  (b":path", b"/"), (b":authority", b"a")], True)
        with self.assertRaises(H2UsageError):
            client.start_request([(b":method", b"GET"), (b":scheme", b"https"),
                                  (b":path", b"/ x"), (b":authority", b"a")], True)
        self.assertEqual(client.data_to_send(), b"")

    def test_status_out_of_range_is_malformed(self):
        for status in (b"000", b"099", b"600", b"999"):
            client, server = pair()
            sid = client.start_request(GET, True)
            pump(client, server)
            block = server._encoder.encode([(b":status", status)])
            events = client.receive_data(F.headers_frames(sid, block, False))
            self.assertEqual(events, [StreamReset(sid, F.PROTOCOL_ERROR, False)], status)
        with self.assertRaises(H2UsageError):
            client, server = pair()
            sid = client.start_request(GET, True)
            pump(client, server)
            server.send_headers(sid, [(b":status", b"099")])


class PaddingWindowTest(unittest.TestCase):
    """Padding-only DATA: its window comes back to the peer by
    WINDOW_UPDATE, as for data (review finding 4)."""

    def test_padding_only_data_gives_stream_window_back(self):
        raw = RawClient()
        raw.send(raw.headers(1, POST, end_stream=False))
        raw.answer()
        peer_window = 65535
        for _ in range(257):
            self.assertEqual(raw.send(F.data_frame(1, b"", pad=255)), [])
            peer_window -= 255
        updates = [f for f in raw.answer() if f.type == F.WINDOW_UPDATE and f.stream_id == 1]
        peer_window += sum(f.increment for f in updates)
        self.assertEqual(peer_window, raw.server.streams[1].recv_window)
        self.assertGreaterEqual(peer_window, 65535 // 2)
        # and the window we announced is the one enforced
        body = b"x" * (peer_window + 1)
        events = raw.send(b"".join(F.data_frame(1, body[i:i + 16384])
                                   for i in range(0, len(body), 16384)))
        self.assertEqual(sum(len(e.data) for e in events if isinstance(e, DataReceived)),
                         len(body) - len(body) % 16384)
        self.assertEqual(events[-1], StreamReset(1, F.FLOW_CONTROL_ERROR, False))


class IdleStreamErrorTest(unittest.TestCase):
    """Frame errors on idle streams, and before the first SETTINGS
    (review finding 3, nit 10)."""

    def test_zero_window_update_on_idle_stream_is_a_connection_error(self):
        raw = RawClient()
        raw.send(raw.headers(1, GET))
        raw.answer()
        events = raw.send(F._head(4, F.WINDOW_UPDATE, 0, 101) + b"\0\0\0\0")
        self.assertEqual(kinds(events), ["ConnectionTerminated"])
        frames = raw.answer()
        self.assertEqual([(f.type, f.error_code) for f in frames], [(F.GOAWAY, F.PROTOCOL_ERROR)])

    def test_zero_window_update_on_open_stream_resets_it(self):
        raw = RawClient()
        raw.send(raw.headers(1, POST, end_stream=False))
        raw.answer()
        events = raw.send(F._head(4, F.WINDOW_UPDATE, 0, 1) + b"\0\0\0\0")
        self.assertEqual(events, [StreamReset(1, F.PROTOCOL_ERROR, False)])
        self.assertFalse(raw.server.closed)

    def test_bad_priority_on_idle_stream_is_a_stream_error(self):
        # PRIORITY may come on an idle stream (RFC 9113 5.1)
        raw = RawClient()
        raw.send(F._head(4, F.PRIORITY, 0, 201) + b"\0\0\0\0")
        self.assertFalse(raw.server.closed)
        self.assertEqual([(f.type, f.error_code) for f in raw.answer()],
                         [(F.RST_STREAM, F.FRAME_SIZE_ERROR)])

    def test_stream_error_before_settings_is_a_connection_error(self):
        server = H2Connection(False)
        server.initiate()
        server.data_to_send()
        events = server.receive_data(PREFACE + F._head(4, F.PRIORITY, 0, 1) + b"\0\0\0\0")
        self.assertEqual(kinds(events), ["ConnectionTerminated"])
        self.assertEqual(events[0].error_code, F.PROTOCOL_ERROR)
        self.assertTrue(server.closed)


class TableSizeTest(unittest.TestCase):
    """A lowered SETTINGS_HEADER_TABLE_SIZE is enforced (review finding 6)."""

    def test_peer_ignoring_a_smaller_table_size_is_a_compression_error(self):
        raw = RawClient(H2Config(header_table_size=0))
        self.assertEqual(raw.server.local_settings[F.HEADER_TABLE_SIZE], 0)
        events = raw.send(F.headers_frames(1, Encoder().encode(GET + [(b"x-big", b"v" * 300)]), True))
        self.assertEqual(kinds(events), ["ConnectionTerminated"])
        self.assertEqual(raw.goaway(), "COMPRESSION_ERROR")

    def test_peer_honouring_a_smaller_table_size(self):
        client, server = pair(server_config=H2Config(header_table_size=256))
        for _ in range(3):
            sid = client.start_request(GET + [(b"x-big", b"v" * 300)], True)
            cev, sev = pump(client, server)
            self.assertEqual(kinds(sev), ["RequestReceived", "StreamEnded"])
        self.assertFalse(server.closed)
        self.assertLessEqual(server._decoder.table_size, 256)


class OutputCapTest(unittest.TestCase):
    """H2Config(max_output=...): body data is framed as the owner takes
    it, so what waits is counted by outbound_buffered (review finding 9)."""

    def big_windows(self, config):
        raw = RawClient(config)
        raw.send(F.settings_frame([(F.INITIAL_WINDOW_SIZE, 2 ** 31 - 1)])
                 + F.window_update_frame(0, 2 ** 31 - 1 - 65535))
        raw.send(raw.headers(1, GET))
        raw.answer()
        raw.server.send_headers(1, OK)
        return raw

    def test_capped_output_framed_lazily(self):
        raw = self.big_windows(H2Config(max_output=65536))
        body = bytes(range(256)) * 4096   # 1 MiB
        for i in range(0, len(body), 65536 * 2):
            raw.server.send_data(1, body[i:i + 65536 * 2])
        raw.server.end_stream(1)
        self.assertLessEqual(len(raw.server._out), 65536 + 16384 + 200)
        self.assertGreaterEqual(raw.server.outbound_buffered(), len(body) - 65536 - 16384)
        self.assertEqual(raw.server.outbound_buffered(1), raw.server.outbound_buffered())
        got, calls, ended = [], 0, False
        while not ended:
            out = raw.server.data_to_send()
            self.assertTrue(out)
            self.assertLessEqual(len(out), 65536 + 16384 + 200)
            calls += 1
            for f in raw.reader.feed(out):
                if f.type == F.DATA:
                    got.append(f.data)
                    ended = f.end_stream
        self.assertEqual(b"".join(got), body)
        self.assertGreater(calls, 8)
        self.assertEqual(raw.server.outbound_buffered(), 0)
        self.assertEqual(raw.server.data_to_send(), b"")

    def test_cap_holds_for_small_pieces(self):
        raw = self.big_windows(H2Config(max_output=65536))
        for _ in range(1000):
            raw.server.send_data(1, b"y" * 1000)
        self.assertLessEqual(len(raw.server._out), 65536 + 16384 + 200)
        self.assertGreaterEqual(raw.server.outbound_buffered(1), 1000 * 1000 - 65536 - 16384)
        raw.server.end_stream(1)
        got, ended = 0, False
        while not ended:
            for f in raw.reader.feed(raw.server.data_to_send()):
                if f.type == F.DATA:
                    got += len(f.data)
                    ended = f.end_stream
        self.assertEqual(got, 1000 * 1000)

    def test_uncapped_by_default(self):
        raw = self.big_windows(None)
        raw.server.send_data(1, b"x" * (1 << 20), True)
        self.assertEqual(raw.server.outbound_buffered(), 0)
        frames = raw.answer()
        self.assertEqual(sum(len(f.data) for f in frames if f.type == F.DATA), 1 << 20)


class SettingsFoldTest(unittest.TestCase):
    """Many INITIAL_WINDOW_SIZE entries in one SETTINGS frame walk the
    streams once (review finding 7)."""

    class CountingDict(dict):
        walks = 0

        def values(self):
            type(self).walks += 1
            return dict.values(self)

    def test_one_walk_per_frame(self):
        raw = RawClient()
        for sid in range(1, 41, 2):
            raw.send(raw.headers(sid, POST, end_stream=False))
        streams = raw.server.streams = self.CountingDict(raw.server.streams)
        type(streams).walks = 0
        entries = [(F.INITIAL_WINDOW_SIZE, 65535 + (i & 1)) for i in range(2000)]
        raw.send(F.settings_frame(entries + [(F.INITIAL_WINDOW_SIZE, 70000)]))
        self.assertLessEqual(type(streams).walks, 2)
        self.assertFalse(raw.server.closed)
        self.assertEqual({s.send_window for s in streams.values()}, {70000})

    def test_overflow_still_caught(self):
        raw = RawClient()
        raw.send(raw.headers(1, POST, end_stream=False))
        raw.send(F.window_update_frame(1, 2 ** 31 - 1 - 65535))
        raw.send(F.settings_frame([(F.INITIAL_WINDOW_SIZE, 65536)]))
        self.assertEqual(raw.goaway(), "FLOW_CONTROL_ERROR")


class NeverIndexedCacheTest(unittest.TestCase):
    """Never-indexed fields stay out of the process-wide cache of valid
    fields (review finding 8)."""

    def setUp(self):
        from thor.http.h2 import connection
        self.valid = connection._VALID
        self.valid.clear()

    def test_received_never_indexed_not_cached(self):
        raw = RawClient()
        secret = (b"x-api-key", b"s3cr3t-token-of-alice")
        plain = (b"x-plain", b"1")
        block = raw.encoder.encode(GET + [secret, plain], never_index=(b"x-api-key",))
        events = raw.send(F.headers_frames(1, block, False))
        self.assertEqual(events[0].never_indexed, frozenset((b"x-api-key",)))
        self.assertNotIn(secret, self.valid)
        self.assertIn(plain, self.valid)
        trailer = (b"x-sig", b"s3cr3t-signature")
        raw.send(F.headers_frames(1, raw.encoder.encode([trailer], never_index=(b"x-sig",)), True))
        self.assertNotIn(trailer, self.valid)

    def test_received_response_never_indexed_not_cached(self):
        client, server = pair()
        sid = client.start_request(GET, True)
        pump(client, server)
        secret = (b"x-token", b"s3cr3t-token-of-bob")
        server.send_headers(sid, OK + [secret], True, never_index=(b"x-token",))
        self.assertNotIn(secret, self.valid)   # checked on the way out too
        cev, _ = pump(client, server)
        self.assertEqual(kinds(cev), ["ResponseReceived", "StreamEnded"])
        self.assertEqual(cev[0].never_indexed, frozenset((b"x-token",)))
        self.assertNotIn(secret, self.valid)

    def test_outbound_never_index_not_cached(self):
        client, server = pair()
        secret = (b"x-api-key", b"s3cr3t-token-of-carol")
        client.start_request(GET + [secret], True, never_index=(b"x-api-key",))
        self.assertNotIn(secret, self.valid)


class NitsTest(unittest.TestCase):
    """Review nits 11, 12, 16, 17."""

    def client(self, config=None, clock=None):
        kw = {"clock": clock} if clock else {}
        client = H2Connection(True, config, **kw)
        client.initiate()
        client.data_to_send()
        client.receive_data(F.settings_frame())
        client.data_to_send()
        return client

    def test_informational_flood(self):
        clock = FakeClock()
        client = self.client(H2Config(empty_frame_burst=30, empty_frame_rate=1), clock)
        sid = client.start_request(GET, True)
        client.data_to_send()
        block = Encoder().encode([(b":status", b"103"), (b"link", b"</a>; rel=preload")])
        events = client.receive_data(F.headers_frames(sid, block) * 1000)
        self.assertLessEqual(kinds(events).count("InformationalResponse"), 30)
        self.assertEqual(events[-1].error_code, F.ENHANCE_YOUR_CALM)
        self.assertTrue(client.closed)

    def test_header_block_cap_in_one_frame(self):
        raw = RawClient(H2Config(max_frame_size=1 << 20, max_header_block_size=1024,
                                 max_header_list_size=1 << 20))
        raw.send(raw.headers(1, GET + [(b"x", b"a" * 20000)], max_frame_size=1 << 20))
        self.assertEqual(raw.goaway(), "ENHANCE_YOUR_CALM")

    def test_ping_ack_out_of_order(self):
        client = self.client()
        client.ping(b"AAAAAAAA")
        client.ping(b"BBBBBBBB")
        client.ping(b"CCCCCCCC")
        events = client.receive_data(F.ping_frame(b"BBBBBBBB", ack=True)
                                     + F.ping_frame(b"CCCCCCCC", ack=True)
                                     + F.ping_frame(b"AAAAAAAA", ack=True))
        self.assertEqual(events, [PingAck(b"BBBBBBBB"), PingAck(b"CCCCCCCC")])
        self.assertEqual(len(client._ping_sent), 0)

    def test_unanswered_pings_bounded(self):
        client = self.client()
        for i in range(10000):
            client.ping(b"%08d" % i)
        self.assertLessEqual(len(client._ping_sent), 100)
        self.assertEqual(client.receive_data(F.ping_frame(b"00009999", ack=True)),
                         [PingAck(b"00009999")])

    def test_goaway_last_stream_id_must_not_grow(self):
        client = self.client()
        events = client.receive_data(F.goaway_frame(101, 0))
        self.assertEqual(kinds(events), ["ConnectionTerminated"])
        events = client.receive_data(F.goaway_frame(1, 0))
        self.assertEqual(kinds(events), ["ConnectionTerminated"])
        self.assertFalse(client.closed)
        events = client.receive_data(F.goaway_frame(3, 0))
        self.assertEqual(events[-1], ConnectionTerminated(F.PROTOCOL_ERROR, 0, b"", False))
        self.assertTrue(client.closed)


class ResetRaceTest(unittest.TestCase):
    """Calls on a stream the peer reset in the same batch are no-ops that
    return False; misuse still raises (review API point a)."""

    def reset_by_peer(self):
        raw = RawClient()
        raw.send(raw.headers(1, POST, end_stream=False))
        raw.answer()
        events = raw.send(F.data_frame(1, b"x" * 100) + F.rst_stream_frame(1, F.CANCEL))
        self.assertEqual(kinds(events), ["DataReceived", "StreamReset"])
        return raw

    def test_calls_after_peer_reset_are_no_ops(self):
        raw = self.reset_by_peer()
        server = raw.server
        self.assertIs(server.send_headers(1, OK), False)
        self.assertIs(server.send_data(1, b"late"), False)
        self.assertIs(server.end_stream(1), False)
        self.assertIs(server.reset_stream(1), False)
        self.assertEqual(server.data_to_send(), b"")

    def test_calls_after_our_reset_are_no_ops(self):
        raw = RawClient()
        raw.send(raw.headers(1, POST, end_stream=False))
        self.assertIs(raw.server.reset_stream(1), True)
        raw.answer()
        self.assertIs(raw.server.send_data(1, b"late"), False)
        self.assertIs(raw.server.reset_stream(1), False)
        self.assertEqual(raw.server.data_to_send(), b"")

    def test_calls_after_goaway_refusal_are_no_ops(self):
        client, server = pair()
        sid = client.start_request(POST)
        events = client.receive_data(F.goaway_frame(0, F.NO_ERROR))
        self.assertIn(StreamReset(sid, F.REFUSED_STREAM, True), events)
        self.assertIs(client.send_data(sid, b"body", True), False)

    def test_successful_calls_return_true(self):
        client, server = pair()
        sid = client.start_request(POST)
        self.assertIs(client.send_data(sid, b"a"), True)
        self.assertIs(client.send_headers(sid, [(b"x-trailer", b"1")]), True)
        pump(client, server)
        self.assertIs(server.send_headers(sid, [(b":status", b"103")]), True)
        self.assertIs(server.send_headers(sid, OK), True)
        self.assertIs(server.end_stream(sid), True)

    def test_misuse_still_raises(self):
        raw = RawClient()
        with self.assertRaises(H2UsageError):
            raw.server.send_headers(7, OK)       # never opened
        with self.assertRaises(H2UsageError):
            raw.server.reset_stream(7)
        raw.send(raw.headers(1, GET))
        raw.server.send_headers(1, OK, end_stream=True)   # done normally
        with self.assertRaises(H2UsageError):
            raw.server.send_data(1, b"more")
        with self.assertRaises(H2UsageError):
            raw.server.reset_stream(1)

    def test_remembered_resets_bounded(self):
        raw = RawClient(H2Config(max_closed_streams=10))
        for sid in range(1, 41, 2):
            raw.send(raw.headers(sid, POST, end_stream=False))
            raw.server.reset_stream(sid)
        self.assertLessEqual(len(raw.server._reset_ids), 10)


class UpdateSettingsTest(unittest.TestCase):
    """update_settings refuses what the peer would have to treat as a
    connection error, before anything is queued (review API point c)."""

    def test_bad_values_refused(self):
        client, server = pair()
        for settings in [
            {F.MAX_FRAME_SIZE: 100}, {F.MAX_FRAME_SIZE: 2 ** 24},
            {F.INITIAL_WINDOW_SIZE: 2 ** 31}, {F.ENABLE_PUSH: 2}, {F.ENABLE_PUSH: 1},
            {F.ENABLE_CONNECT_PROTOCOL: 2}, {F.MAX_CONCURRENT_STREAMS: -1},
            {F.HEADER_TABLE_SIZE: 2 ** 32}, {0x10000: 1},
        ]:
            with self.assertRaises(H2UsageError, msg=settings):
                server.update_settings(settings)
            self.assertEqual(server.data_to_send(), b"", settings)
        self.assertEqual(server.local_settings[F.INITIAL_WINDOW_SIZE], 65535)

    def test_good_values_sent(self):
        client, server = pair()
        server.update_settings({F.MAX_FRAME_SIZE: 32768, F.INITIAL_WINDOW_SIZE: 2 ** 31 - 1,
                                F.ENABLE_CONNECT_PROTOCOL: 1, 0x4242: 7})
        cev, sev = pump(client, server)
        self.assertEqual(kinds(cev), ["SettingsChanged"])
        self.assertEqual(kinds(sev), ["SettingsAcknowledged"])
        self.assertEqual(client.remote_settings[F.MAX_FRAME_SIZE], 32768)


class ResetCreditTest(unittest.TestCase):
    """Data delivered on a stream that is then reset gives its connection
    window back whether or not the application acknowledges it (review
    API point b); acknowledging it as well counts once."""

    def setup(self):
        raw = RawClient(H2Config(connection_window_size=65535))
        raw.send(raw.headers(1, POST, end_stream=False))
        raw.answer()
        return raw

    def connection_credit(self, raw):
        return sum(f.increment for f in raw.answer()
                   if f.type == F.WINDOW_UPDATE and f.stream_id == 0)

    def test_unacknowledged_data_credited_on_peer_reset(self):
        raw = self.setup()
        events = raw.send(F.data_frame(1, b"x" * 16000) * 3 + F.rst_stream_frame(1, F.CANCEL))
        self.assertEqual(kinds(events), ["DataReceived"] * 3 + ["StreamReset"])
        self.assertEqual(raw.server._recv_window + raw.server._recv_unacked, 65535)
        self.assertEqual(self.connection_credit(raw), 48000)
        # the application acknowledging it anyway changes nothing
        for e in events[:3]:
            raw.server.acknowledge_data(e.stream_id, e.flow_length)
        self.assertEqual(raw.server._recv_window + raw.server._recv_unacked, 65535)
        self.assertEqual(self.connection_credit(raw), 0)

    def test_partly_acknowledged_then_reset_by_us(self):
        raw = self.setup()
        events = raw.send(F.data_frame(1, b"x" * 16000) * 3)
        raw.server.acknowledge_data(1, events[0].flow_length)
        raw.server.reset_stream(1)
        for e in events[1:]:
            raw.server.acknowledge_data(e.stream_id, e.flow_length)
        self.assertEqual(raw.server._recv_window + raw.server._recv_unacked, 65535)

    def test_normal_close_still_needs_acknowledgement(self):
        raw = self.setup()
        events = raw.send(F.data_frame(1, b"x" * 16000, True))
        raw.server.send_headers(1, OK, end_stream=True)
        self.assertEqual(raw.server._recv_window + raw.server._recv_unacked, 65535 - 16000)
        raw.server.acknowledge_data(1, events[0].flow_length)
        self.assertEqual(raw.server._recv_window + raw.server._recv_unacked, 65535)
