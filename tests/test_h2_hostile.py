"""HttpServer's HTTP/2 side against hostile clients (issue 14 item 5), as an
attacker would run them: raw frames over a loopback socket to a real
HttpServer.

The server runs in a child process (its own thor loop), so that what an
attack costs it is measured alone: CPU from /proc/PID/schedstat (or stat),
memory as the growth of its peak RSS (VmHWM, reset before each attack
through /proc/PID/clear_refs). Each test asserts a bound on both, the
frame and error code the server answers with (GOAWAY or RST_STREAM), and
that a well-behaved client on another connection is answered during and
after the attack. The figures are printed with THOR_H2_HOSTILE_VERBOSE=1.

Limits are the H2Config defaults (doc/http2.md) unless a test's server
sets smaller ones to stay fast.
"""

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from thor.http.h2 import frames as fr
from thor.http.h2.frames import (
    FrameReader, headers_frames, continuation_frame, rst_stream_frame, settings_frame,
    ping_frame, data_frame, window_update_frame,
    PROTOCOL_ERROR, FLOW_CONTROL_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM,
    NO_ERROR, MAX_STREAM_ID, INITIAL_WINDOW_SIZE,
)
from thor.http.h2.hpack import Encoder, Decoder

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERBOSE = bool(os.environ.get("THOR_H2_HOSTILE_VERBOSE"))
ON_LINUX = os.path.exists("/proc/self/stat")

# The servers the child runs: name -> HttpServer attributes and H2Config
# arguments.
SERVERS = {
    "default": {"attrs": {}, "config": {}},
    "streams": {"attrs": {}, "config": {"max_concurrent_streams": 10}},
    "window": {"attrs": {"send_timeout": 0.4}, "config": {}},
    "idle": {"attrs": {"idle_timeout": 0.3, "request_timeout": 0.3}, "config": {}},
    "body": {"attrs": {"body_timeout": 0.3}, "config": {}},
}

# The child: HttpServers on one thor loop, answering
#   /          "hello"
#   /slow?MS   "slow", MS milliseconds later (an application waiting on a
#              backend: the stream stays open meanwhile)
#   /big?N     N octets, produced as the exchange's pause events allow
#   /hold?MS   "held", MS milliseconds later, the request body paused
#   /stats     JSON: exchanges, errors by class, connections, exceptions
CHILD = r'''
import json, sys, traceback
import thor.loop
from thor.http import HttpServer
from thor.http.h2.connection import H2Config

loop = thor.loop.make()
exceptions = [0]

def on_exception(loop, exc, source):
    exceptions[0] += 1
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)

loop.exception_handler = on_exception

def serve(spec):
    server = HttpServer("127.0.0.1", 0, loop)
    for key, value in spec["attrs"].items():
        setattr(server, key, value)
    server.http2_config = H2Config(validate_outbound=False, **spec["config"])
    stats = {"exchanges": 0, "errors": {}, "answered": 0}

    def on_exchange(exchange):
        stats["exchanges"] += 1
        state = {"failed": False, "paused": False, "left": -1}

        def on_error(err):
            state["failed"] = True
            name = type(err).__name__
            stats["errors"][name] = stats["errors"].get(name, 0) + 1

        def respond(body):
            if state["failed"]:
                return
            exchange.response_start(200, "OK", [
                ("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            exchange.response_body(body)
            exchange.response_done()
            stats["answered"] += 1

        def produce():
            while not state["paused"] and not state["failed"] and state["left"] > 0:
                n = min(16384, state["left"])
                state["left"] -= n
                exchange.response_body(b"x" * n)
            if state["left"] == 0 and not state["failed"]:
                state["left"] = -1
                exchange.response_done()
                stats["answered"] += 1

        def on_pause(paused):
            state["paused"] = paused
            if not paused:
                loop.schedule(0, produce)

        def on_done(trailers):
            path, _, query = exchange.uri.partition(b"?")
            if path == b"/slow":
                loop.schedule(int(query or 500) / 1000.0, respond, b"slow")
            elif path == b"/big":
                state["left"] = int(query)
                exchange.response_start(200, "OK", [("Content-Length", query.decode())])
                produce()
            elif path == b"/stats":
                respond(json.dumps(dict(
                    stats, exceptions=exceptions[0],
                    connections=len(server.connections))).encode())
            else:
                respond(b"hello")

        def on_start(method, uri, headers):
            if uri.startswith(b"/hold?"):
                # the application holds the body back (pause), and answers
                # without it, MS milliseconds later
                exchange.pause(True)
                loop.schedule(int(uri[6:]) / 1000.0, respond, b"held")

        exchange.on("error", on_error)
        exchange.on("pause", on_pause)
        exchange.on("request_start", on_start)
        exchange.on("request_done", on_done)

    server.on("exchange", on_exchange)
    return server.port

ports = {name: serve(spec) for name, spec in json.loads(sys.argv[1]).items()}
print(json.dumps(ports), flush=True)
loop.run()
'''


class ServerProcess:
    """The child process running the servers, and its CPU and memory."""

    def __init__(self):
        env = dict(os.environ, PYTHONPATH=ROOT)
        # a file, not a pipe: tracebacks cannot fill it and stop the child
        self.errors = tempfile.TemporaryFile()
        self.stderr = b""
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(SERVERS)],
            stdout=subprocess.PIPE, stderr=self.errors, cwd=ROOT, env=env)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.stop()
            raise RuntimeError("the server process did not start: %r" % self.stderr)
        self.ports = json.loads(line)
        self.pid = self.proc.pid
        self.clock_tick = os.sysconf("SC_CLK_TCK")
        try:
            self.reset_peak()
            self.can_reset_peak = True
        except OSError:
            self.can_reset_peak = False

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.errors.seek(0)
        self.stderr = self.errors.read()
        self.errors.close()

    def cpu(self):
        """Seconds of CPU the child has used: from schedstat (in ns) where
        the kernel has it, else user + system from stat (in ticks)."""
        try:
            with open("/proc/%d/schedstat" % self.pid) as f:
                return int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            pass
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / self.clock_tick

    def _status(self, key):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
        raise KeyError(key)

    def rss(self):
        """Resident memory, KiB."""
        return self._status("VmRSS:")

    def peak(self):
        """Peak resident memory since the last reset_peak, KiB."""
        return self._status("VmHWM:")

    def reset_peak(self):
        with open("/proc/%d/clear_refs" % self.pid, "w") as f:
            f.write("5")


class Measure:
    """What the child spends between __enter__ and __exit__: ``cpu_ms``,
    ``memory_kb`` (peak RSS growth)."""

    def __init__(self, server, name):
        self.server = server
        self.name = name

    def __enter__(self):
        server = self.server
        if server.can_reset_peak:
            server.reset_peak()
        self.rss = server.rss()
        self.cpu = server.cpu()
        return self

    def __exit__(self, *exc):
        server = self.server
        self.cpu_ms = (server.cpu() - self.cpu) * 1000
        end = server.peak() if server.can_reset_peak else server.rss()
        self.memory_kb = end - self.rss
        if VERBOSE:
            sys.stderr.write("\n%s: server CPU %.0f ms, peak RSS +%d KiB\n" % (
                self.name, self.cpu_ms, self.memory_kb))
        return False


class Peer:
    """An HTTP/2 client written by hand over a plain socket: whatever it
    sends, it reads what the server sends meanwhile (so that a GOAWAY is
    not lost to a reset), and keeps the frames."""

    def __init__(self, port, settings=(), preface=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setblocking(False)
        self.reader = FrameReader(fr.MAX_MAX_FRAME_SIZE)
        self.frames = []
        self.received = 0
        self.eof = False
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.heads = {}
        self.next_id = 1
        if preface:
            self.send(PREFACE + settings_frame(settings))

    def close(self):
        self.sock.close()

    def _read(self):
        """Read what is there; False at the end (EOF or reset)."""
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return True
        except (ConnectionResetError, BrokenPipeError):
            self.eof = True
            return False
        if not data:
            self.eof = True
            return False
        self.received += len(data)
        for frame in self.reader.feed(data):
            self.frames.append(frame)
            if frame.type == fr.HEADERS:
                # every block, in order, or the HPACK tables part
                self.heads.setdefault(frame.stream_id, []).append(
                    dict(self.decoder.decode(frame.block)))
        return True

    def send(self, data, timeout=5):
        """Send ``data`` while reading; returns how much went before the
        server closed the connection."""
        view = memoryview(data)
        sent = 0
        deadline = time.monotonic() + timeout
        while sent < len(view) and not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("the server took %d of %d octets in %s s" % (
                    sent, len(view), timeout))
            readable, writable, _ = select.select([self.sock], [self.sock], [], remaining)
            if readable and not self._read():
                break
            if writable:
                try:
                    sent += self.sock.send(view[sent:sent + 262144])
                except (BrokenPipeError, ConnectionResetError):
                    self.eof = True
                except BlockingIOError:
                    pass
        return sent

    def read_until(self, predicate, timeout=3):
        """Read until ``predicate(frames)`` is true (or the end); returns it."""
        deadline = time.monotonic() + timeout
        while not predicate(self.frames):
            if self.eof:
                return predicate(self.frames)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            readable, _, _ = select.select([self.sock], [], [], remaining)
            if readable:
                self._read()
        return True

    def read_to_end(self, timeout=3):
        """Read until the server closes; fails if it does not in time."""
        if not self.read_until(lambda frames: False, timeout) and not self.eof:
            raise AssertionError("the server did not close the connection in %s s" % timeout)

    def of_type(self, frame_type, stream_id=None):
        return [f for f in self.frames if f.type == frame_type and (
            stream_id is None or f.stream_id == stream_id)]

    def goaway(self):
        found = self.of_type(fr.GOAWAY)
        return found[0] if found else None

    def request_block(self, path, extra=()):
        return self.encoder.encode([
            (b":method", b"GET"), (b":scheme", b"http"), (b":path", path),
            (b":authority", b"localhost")] + list(extra))

    def request(self, path, end_stream=True, stream_id=None):
        """The frames of a request on a new stream: (stream id, bytes)."""
        if stream_id is None:
            stream_id = self.next_id
        self.next_id = stream_id + 2
        return stream_id, headers_frames(stream_id, self.request_block(path), end_stream)

    def response(self, stream_id, timeout=3):
        """(status, body) of the response on ``stream_id``."""
        def ended(frames):
            return any(f.stream_id == stream_id and (
                f.type in (fr.DATA, fr.HEADERS) and f.end_stream or f.type == fr.RST_STREAM)
                for f in frames)
        if not self.read_until(ended, timeout):
            raise AssertionError("no response on stream %d in %s s" % (stream_id, timeout))
        heads = self.heads.get(stream_id)
        status = heads[0][b":status"] if heads else None
        body = b""
        for f in self.frames:
            if f.stream_id != stream_id:
                continue
            if f.type == fr.DATA:
                body += f.data
            elif f.type == fr.RST_STREAM and (status is None or f.error_code != NO_ERROR):
                # (NO_ERROR after a whole response: the rest of the
                # request is not wanted, RFC 9113 8.1)
                return ("RST", f.error_code), body
        return status, body


def setUpModule():
    global SERVER
    if not ON_LINUX:
        raise unittest.SkipTest("measures the server through /proc")
    SERVER = ServerProcess()


def tearDownModule():
    SERVER.stop()
    if SERVER.stderr:
        sys.stderr.write("\nthe server process wrote:\n%s\n" % SERVER.stderr.decode("utf-8", "replace"))


class HostileTestCase(unittest.TestCase):

    server_name = "default"

    def setUp(self):
        self.port = SERVER.ports[self.server_name]
        # A well-behaved client, connected before the attack.
        self.good = Peer(self.port)
        self.addCleanup(self.good.close)
        self.assertGood()

    def good_client(self):
        return self.good

    def attacker(self, settings=(), preface=True):
        peer = Peer(self.port, settings, preface)
        self.addCleanup(peer.close)
        return peer

    def measure(self):
        return Measure(SERVER, self.id().rpartition(".")[2])

    def assertGood(self, limit=1.0):
        """The well-behaved client is answered, within ``limit`` seconds."""
        started = time.monotonic()
        good = self.good_client()
        sid, frames = good.request(b"/")
        good.send(frames)
        self.assertEqual(good.response(sid), (b"200", b"hello"))
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, limit, "a well-behaved client waited %.3f s" % elapsed)

    def stats(self):
        good = self.good_client()
        sid, frames = good.request(b"/stats")
        good.send(frames)
        status, body = good.response(sid)
        self.assertEqual(status, b"200")
        return json.loads(body)

    def assertBounded(self, measure, cpu_ms, memory_kb):
        self.assertLess(measure.cpu_ms, cpu_ms, "server CPU %.0f ms" % measure.cpu_ms)
        self.assertLess(measure.memory_kb, memory_kb, "server memory +%d KiB" % measure.memory_kb)

    def assertGoaway(self, peer, code):
        goaway = peer.goaway()
        self.assertIsNotNone(goaway, "no GOAWAY")
        self.assertEqual(fr.error_name(goaway.error_code), fr.error_name(code))
        return goaway

    def tearDown(self):
        # The server is healthy: it answers, and nothing raised in it.
        self.assertGood()
        self.assertEqual(self.stats()["exceptions"], 0,
                         "the server's tracebacks are printed after the module's tests")


class StreamAttacks(HostileTestCase):

    def test_rapid_reset(self):
        # CVE-2023-44487: streams opened (the application starts its work)
        # and reset at once, in a loop.
        peer = self.attacker()
        before = self.stats()
        pairs = []
        for _ in range(5000):
            sid, frames = peer.request(b"/slow?300")
            pairs.append(frames + rst_stream_frame(sid, CANCEL))
        attack = b"".join(pairs)
        with self.measure() as m:
            half = len(attack) // 2
            peer.send(attack[:half])
            self.assertGood()   # during
            peer.send(attack[half:])
            peer.read_to_end()
        self.assertBounded(m, 200, 4096)
        goaway = self.assertGoaway(peer, ENHANCE_YOUR_CALM)
        # the reset budget (reset_burst 200, and what refilled meanwhile)
        opened = (goaway.last_stream_id + 1) // 2
        self.assertLess(opened, 400)
        after = self.stats()
        self.assertLess(after["exchanges"] - before["exchanges"], 400)
        # the application's work ended with each stream: none answered
        self.assertEqual(after["answered"], before["answered"] + 2)

    def test_made_you_reset(self):
        # MadeYouReset (CVE-2025-8671): the client makes the server reset
        # its streams (a WINDOW_UPDATE overflowing a stream's window).
        peer = self.attacker()
        parts = []
        for _ in range(3000):
            sid, frames = peer.request(b"/slow?300")
            parts.append(frames + window_update_frame(sid, fr.MAX_WINDOW))
        with self.measure() as m:
            peer.send(b"".join(parts))
            peer.read_to_end()
        self.assertBounded(m, 200, 4096)
        self.assertGoaway(peer, ENHANCE_YOUR_CALM)
        resets = peer.of_type(fr.RST_STREAM)
        self.assertTrue(resets)
        self.assertEqual({f.error_code for f in resets}, {FLOW_CONTROL_ERROR})
        self.assertLess(len(resets), 400)



class TooManyStreams(HostileTestCase):

    server_name = "streams"    # max_concurrent_streams 10

    def test_too_many_streams(self):
        # The 11th stream and beyond are refused (REFUSED_STREAM: the
        # client may retry them); refusing them in a loop costs reset
        # tokens.
        peer = self.attacker()
        first = b"".join(peer.request(b"/slow?200")[1] for _ in range(15))
        peer.send(first)
        self.assertTrue(peer.read_until(lambda f: len(peer.of_type(fr.RST_STREAM)) >= 5))
        refused = peer.of_type(fr.RST_STREAM)
        self.assertEqual([(f.stream_id, f.error_code) for f in refused],
                         [(sid, REFUSED_STREAM) for sid in range(21, 31, 2)])
        # the ten taken are answered
        for sid in range(1, 21, 2):
            self.assertEqual(peer.response(sid), (b"200", b"slow"))
        # and a flood of streams over the limit ends the connection
        flood = b"".join(peer.request(b"/slow?1000")[1] for _ in range(3000))
        with self.measure() as m:
            peer.send(flood)
            self.assertGood()
            peer.read_to_end()
        self.assertBounded(m, 200, 4096)
        self.assertGoaway(peer, ENHANCE_YOUR_CALM)
        self.assertLess(len(peer.of_type(fr.RST_STREAM)), 5 + 400)

    def test_stream_id_exhaustion(self):
        # The last stream id a client may use is 2^31-1: it is served;
        # after it the client has no id left, and reusing a lower one is
        # a connection error.
        peer = self.attacker()
        sid, frames = peer.request(b"/", stream_id=MAX_STREAM_ID)
        with self.measure() as m:
            peer.send(frames)
            self.assertEqual(peer.response(sid), (b"200", b"hello"))
            peer.send(peer.request(b"/", stream_id=MAX_STREAM_ID - 2)[1])
            peer.read_to_end()
        self.assertBounded(m, 100, 1024)
        goaway = self.assertGoaway(peer, PROTOCOL_ERROR)
        self.assertEqual(goaway.last_stream_id, MAX_STREAM_ID)
        # A stream id with the reserved bit set is the id without it (1,
        # here: below the last, so a connection error as well).
        peer = self.attacker()
        sid, frames = peer.request(b"/", stream_id=MAX_STREAM_ID)
        peer.send(frames)
        self.assertEqual(peer.response(sid), (b"200", b"hello"))
        raw = bytearray(peer.request(b"/", stream_id=1)[1])
        raw[5] |= 0x80
        peer.send(bytes(raw))
        peer.read_to_end()
        self.assertGoaway(peer, PROTOCOL_ERROR)


class HeaderAttacks(HostileTestCase):

    def test_continuation_flood_large_frames(self):
        # A header block that never ends, in full-size CONTINUATION frames.
        peer = self.attacker()
        sid = 1
        start = fr._head(10, fr.HEADERS, 0, sid) + peer.request_block(b"/")[:10]
        chunk = continuation_frame(sid, b"\x00" * 16384, end_headers=False)
        with self.measure() as m:
            peer.send(start + chunk * 256)  # 4 MiB offered
            peer.read_to_end()
        self.assertBounded(m, 150, 4096)
        goaway = self.assertGoaway(peer, ENHANCE_YOUR_CALM)
        self.assertEqual(goaway.last_stream_id, 0)

    def test_continuation_flood_empty_frames(self):
        # ... and in empty CONTINUATION frames (no size grows, the count does).
        peer = self.attacker()
        start = fr._head(10, fr.HEADERS, 0, 1) + peer.request_block(b"/")[:10]
        chunk = continuation_frame(1, b"", end_headers=False)
        with self.measure() as m:
            peer.send(start + chunk * 100000)
            peer.read_to_end()
        self.assertBounded(m, 150, 4096)
        self.assertGoaway(peer, ENHANCE_YOUR_CALM)

    def test_hpack_bomb(self):
        # One 4000-octet value put in the HPACK table, then referenced by
        # one octet, 12000 times a block: each block decodes to 48 MB.
        peer = self.attacker()
        name, value = b"x-bomb", b"a" * 4000
        literal = bytes([0x40, len(name)]) + name + bytes([0x7f]) + \
            _integer(len(value) - 127) + value
        refs = bytes([0x80 | 62]) * 12000
        base = peer.request_block(b"/")
        with self.measure() as m:
            for i in range(20):
                sid = peer.next_id
                peer.next_id += 2
                # (base's literals enter the table too: the value is put
                # in after them, every time, so that 62 is always it)
                block = base + literal + refs
                peer.send(headers_frames(sid, block, True))
                self.assertEqual(peer.response(sid), (b"431", b""))
            self.assertGood()
        self.assertBounded(m, 400, 4096)
        self.assertIsNone(peer.goaway())
        # The connection goes on, its HPACK state in step.
        # (a new encoder refers to nothing it did not put in the table;
        # the server's older entries are evicted first)
        peer.encoder = Encoder()
        sid, frames = peer.request(b"/")
        peer.send(frames)
        self.assertEqual(peer.response(sid), (b"200", b"hello"))


class FloodAttacks(HostileTestCase):

    def flood(self, peer, frame, count, cpu_ms=150):
        with self.measure() as m:
            peer.send(frame * (count // 2))
            self.assertGood()
            peer.send(frame * (count // 2))
            peer.read_to_end()
        self.assertBounded(m, cpu_ms, 4096)
        return m

    def test_settings_flood(self):
        peer = self.attacker()
        self.flood(peer, settings_frame([(INITIAL_WINDOW_SIZE, 65535)] * 100), 2000)
        self.assertGoaway(peer, ENHANCE_YOUR_CALM)
        acks = [f for f in peer.of_type(fr.SETTINGS) if f.ack]
        self.assertLessEqual(len(acks), 50)   # settings_burst

    def test_ping_flood(self):
        peer = self.attacker()
        self.flood(peer, ping_frame(b"12345678"), 20000)
        self.assertGoaway(peer, ENHANCE_YOUR_CALM)
        self.assertLessEqual(len([f for f in peer.of_type(fr.PING) if f.ack]), 50)

    def test_empty_data_flood(self):
        peer = self.attacker()
        sid, frames = peer.request(b"/slow", end_stream=False)
        peer.send(frames)
        self.flood(peer, data_frame(sid, b""), 100000)
        self.assertGoaway(peer, ENHANCE_YOUR_CALM)

    def test_window_update_flood(self):
        # WINDOW_UPDATE frames of 1 octet on the connection while 100
        # streams wait for their own windows (the client announced 0):
        # each frame must cost the same whatever the number of streams.
        peer = self.attacker(settings=[(INITIAL_WINDOW_SIZE, 0)])
        sids = []
        for _ in range(100):
            sid, frames = peer.request(b"/big?1000000")
            sids.append(sid)
            peer.send(frames)
        self.assertTrue(peer.read_until(
            lambda f: len(peer.heads) == 100), "not all 100 responses started")
        attack = window_update_frame(0, 1) * 80000 + ping_frame(b"the end.")
        with self.measure() as m:
            peer.send(attack)
            self.assertGood()
            self.assertTrue(peer.read_until(lambda frames: any(
                f.type == fr.PING and f.ack and f.data == b"the end." for f in frames)))
        self.assertBounded(m, 400, 4096)
        self.assertIsNone(peer.goaway())
        # and the streams go on once their windows open
        peer.send(window_update_frame(sids[0], 100))
        self.assertTrue(peer.read_until(
            lambda f: sum(len(d.data) for d in peer.of_type(fr.DATA, sids[0])) == 100))

    def test_empty_headers_flood(self):
        # Empty header blocks on new streams (each also a malformed request).
        peer = self.attacker()
        frames = b"".join(headers_frames(sid, b"", True) for sid in range(1, 200001, 2))
        with self.measure() as m:
            peer.send(frames)
            peer.read_to_end()
        self.assertBounded(m, 150, 4096)
        self.assertGoaway(peer, ENHANCE_YOUR_CALM)
        resets = peer.of_type(fr.RST_STREAM)
        self.assertEqual({f.error_code for f in resets}, {PROTOCOL_ERROR})
        self.assertLess(len(resets), 200)


class WindowAttacks(HostileTestCase):

    server_name = "window"    # send_timeout 0.4 s

    def test_window_never_opened(self):
        # A client asks for 64 MiB and never opens its window: the server
        # sends what the window allows, holds little (the application is
        # paused), and resets the stream after send_timeout.
        peer = self.attacker()
        size = 64 * 1024 * 1024
        with self.measure() as m:
            started = time.monotonic()
            sid, frames = peer.request(b"/big?%d" % size)
            peer.send(frames)
            self.assertEqual(peer.response(sid, timeout=3)[0], ("RST", CANCEL))
            elapsed = time.monotonic() - started
            self.assertGood()
        self.assertBounded(m, 150, 4096)
        self.assertGreaterEqual(elapsed, 0.35)
        self.assertLess(elapsed, 1.5)
        body = sum(len(f.data) for f in peer.of_type(fr.DATA, sid))
        self.assertEqual(body, 65535)
        # the connection goes on (once the client opens the connection
        # window, which the 64 KiB took)
        self.assertIsNone(peer.goaway())
        sid, frames = peer.request(b"/")
        peer.send(window_update_frame(0, 65535) + frames)
        self.assertEqual(peer.response(sid), (b"200", b"hello"))
        self.assertEqual(self.stats()["errors"].get("SendTimeoutError"), 1)


class SlowBody(HostileTestCase):

    server_name = "body"    # body_timeout 0.3 s

    def test_stalled_request_bodies(self):
        # Streams opened and never finished (slow POST): each is timed out
        # on its own, however busy another stream of the connection keeps
        # it; an unanswered one gets 408.
        peer = self.attacker()
        stalled, frames = peer.request(b"/", end_stream=False)
        busy, more = peer.request(b"/", end_stream=False)
        with self.measure() as m:
            started = time.monotonic()
            peer.send(frames + more)
            # the busy stream: an octet every 0.1 s, for 0.8 s
            while time.monotonic() - started < 0.8:
                peer.send(data_frame(busy, b"x"))
                last_sent = time.monotonic()
                peer.read_until(lambda frames: False, 0.1)
            self.assertIn(stalled, peer.heads, "the stalled stream was not answered")
            self.assertEqual(peer.response(stalled), (b"408", b""))
            reset = peer.of_type(fr.RST_STREAM, stalled)
            self.assertEqual([f.error_code for f in reset], [NO_ERROR])
            self.assertEqual(peer.of_type(fr.RST_STREAM, busy), [])
            # once the busy one stalls, it goes too
            self.assertEqual(peer.response(busy, timeout=2), (b"408", b""))
            elapsed = time.monotonic() - last_sent
            self.assertGood()
        self.assertBounded(m, 100, 1024)
        self.assertGreater(elapsed, 0.25)
        self.assertLess(elapsed, 1.2)
        self.assertIsNone(peer.goaway())
        self.assertEqual(self.stats()["errors"].get("BodyTimeoutError"), 2)

    def test_paused_request_body(self):
        # A body the application paused is not the client's stall: no
        # body_timeout while the application holds it.
        peer = self.attacker()
        sid, frames = peer.request(b"/hold?700", end_stream=False)
        peer.send(frames + data_frame(sid, b"x" * 100))
        self.assertEqual(peer.response(sid), (b"200", b"held"))
        # Answered while its body was unread: the rest is refused with
        # NO_ERROR after the response (RFC 9113 8.1), not a body_timeout's
        # 408 or CANCEL.
        self.assertEqual([f.error_code for f in peer.of_type(fr.RST_STREAM, sid)], [NO_ERROR])


class IdleAttacks(HostileTestCase):

    server_name = "idle"   # idle_timeout and request_timeout 0.3 s

    def good_client(self):
        # a new connection each time: idle_timeout ends the others
        peer = Peer(self.port)
        self.addCleanup(peer.close)
        return peer

    def closes_within(self, peer, low, high):
        started = time.monotonic()
        with self.measure() as m:
            peer.read_to_end(timeout=high + 1)
        elapsed = time.monotonic() - started
        self.assertBounded(m, 50, 1024)
        self.assertGreaterEqual(elapsed, low)
        self.assertLess(elapsed, high)
        return elapsed

    def test_silent_connection(self):
        peer = self.attacker(preface=False)
        self.closes_within(peer, 0.25, 1.0)

    def test_partial_preface(self):
        peer = self.attacker(preface=False)
        peer.send(PREFACE[:10])
        self.closes_within(peer, 0.25, 1.0)

    def test_preface_without_settings(self):
        # The magic, and never the SETTINGS frame that must follow it.
        peer = self.attacker(preface=False)
        peer.send(PREFACE)
        self.closes_within(peer, 0.25, 1.0)
        self.assertGoaway(peer, NO_ERROR)

    def trickle(self, peer, data, interval, limit):
        """Send ``data`` an octet every ``interval`` s until the server
        closes; the time from the first octet to the close."""
        started = time.monotonic()
        with self.measure() as m:
            for octet in data:
                peer.send(bytes((octet,)))
                peer.read_until(lambda frames: False, interval)
                if peer.eof or time.monotonic() - started > limit:
                    break
            else:
                peer.read_to_end(timeout=limit)
        self.assertBounded(m, 50, 1024)
        return time.monotonic() - started

    def test_trickled_preface(self):
        # An octet every 0.2 s: the preface must be whole within
        # request_timeout (0.3 s) of its first octet.
        peer = self.attacker(preface=False)
        elapsed = self.trickle(peer, PREFACE + settings_frame(), 0.2, 1.2)
        self.assertLess(elapsed, 1.0)

    def test_trickled_frame(self):
        # After the preface, a frame an octet every 0.2 s, with no stream
        # open: the connection is idle, and idle_timeout must not be
        # renewed by a part of a frame.
        peer = self.attacker()
        elapsed = self.trickle(peer, ping_frame(b"12345678"), 0.2, 1.2)
        self.assertLess(elapsed, 1.0)


def _integer(value):
    """An HPACK integer's continuation octets (after a full prefix)."""
    out = bytearray()
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


if __name__ == "__main__":
    unittest.main()
