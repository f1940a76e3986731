"""HttpServer over HTTP/2 (thor.http.server_h2): the same exchanges as
HTTP/1.1, on the same port.

The client is thor's own HTTP/2 core (thor.http.h2) over a real loopback
connection (thor.TcpClient / TlsClient on the test's loop), and, where they
are installed, curl, nghttp and h2load (each test skips without its tool).
"""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import thor
import thor.loop
from thor.http import HttpServer, error
from thor.http.h2.connection import (
    H2Config, H2Connection, ResponseReceived, DataReceived, StreamEnded, StreamReset,
    TrailersReceived, ConnectionTerminated, InformationalResponse,
)
from thor.http.h2.frames import NO_ERROR, INTERNAL_ERROR, CANCEL
from thor.tls import server_context

from tests.support import LoopTestCase, answer_when_complete, make_cert

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HELLO = b"Hello, world!"


def curl_has_http2():
    curl = shutil.which("curl")
    if not curl:
        return False
    try:
        out = subprocess.run([curl, "-V"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "HTTP2" in out


CURL_H2 = curl_has_http2()


class H2Client:
    """thor's HTTP/2 core as a client over a thor transport on ``loop``."""

    def __init__(self, loop, port, tls_context=None, config=None, ack=True):
        self.loop = loop
        self.h2 = H2Connection(True, config)
        self.ack = ack
        self.events = []
        self.conn = None
        self.closed = False
        self.alpn = None
        self.h2.initiate()  # queued until connected, before any request
        if tls_context is not None:
            client = thor.TlsClient(loop, tls_context=tls_context)
        else:
            client = thor.TcpClient(loop)
        client.on("connect", self._connected)
        client.on("connect_error", lambda *args: self.events.append(("connect_error", args)))
        client.connect("127.0.0.1", port)

    def _connected(self, conn):
        self.conn = conn
        self.alpn = getattr(conn, "alpn_protocol", None)
        conn.on("data", self._data)
        conn.on("close", self._closed)
        conn.pause(False)
        self.flush()

    def _data(self, data):
        events = self.h2.receive_data(data)
        self.events.extend(events)
        if self.ack:
            for event in events:
                if isinstance(event, DataReceived):
                    self.h2.acknowledge_data(event.stream_id, event.flow_length)
        self.flush()

    def _closed(self):
        self.closed = True

    def flush(self):
        if self.conn is not None and not self.closed:  # else kept until connected
            data = self.h2.data_to_send()
            if data:
                self.conn.write(data)

    def request(self, method=b"GET", path=b"/", body=None, headers=(), end=True):
        fields = [(b":method", method), (b":scheme", b"http"), (b":path", path),
                  (b":authority", b"example.test")] + list(headers)
        sid = self.h2.start_request(fields, end_stream=end and body is None)
        if body is not None:
            self.h2.send_data(sid, body, end_stream=end)
        self.flush()
        return sid

    def of(self, sid, kind):
        return [e for e in self.events if isinstance(e, kind) and e.stream_id == sid]

    def ended(self, sid):
        return bool(self.of(sid, StreamEnded) or self.of(sid, StreamReset))

    def response(self, sid):
        """(status, headers dict, body) of a complete response."""
        (head,) = self.of(sid, ResponseReceived)
        fields = dict(head.headers)
        body = b"".join(e.data for e in self.of(sid, DataReceived))
        return fields[b":status"], fields, body

    def goaway(self):
        return [e for e in self.events if isinstance(e, ConnectionTerminated)]


def hello(exchange):
    exchange.on("request_done", lambda trailers: (
        exchange.response_start(200, "OK", [("Content-Type", "text/plain"),
                                            ("Content-Length", "13")]),
        exchange.response_body(HELLO),
        exchange.response_done([]),
    ))


def echo(exchange):
    body = []
    exchange.on("request_body", body.append)
    exchange.on("request_done", lambda trailers: (
        exchange.response_start(200, "OK", [("Content-Length", str(sum(map(len, body))))]),
        exchange.response_body(b"".join(body)),
        exchange.response_done([]),
    ))


class _PipeWatch:
    """Registers pipe fds with the loop so that their output (and end)
    wakes it; run_until reads them."""

    def __init__(self, loop, *fds):
        self.sources = []
        for fd in fds:
            source = thor.loop.EventSource(loop)
            source.register_fd(fd, "fd_readable")
            source.event_add("fd_readable")
            source.on("fd_readable", lambda: None)
            self.sources.append(source)

    def close(self):
        for source in self.sources:
            source.unregister_fd()


class H2ServerTestCase(LoopTestCase):
    def server(self, on_exchange=hello, tls=False, **settings):
        context = None
        if tls:
            certfile, keyfile = make_cert()
            context = server_context(certfile, keyfile, alpn=None)
        server = HttpServer("127.0.0.1", 0, self.loop, tls_context=context)
        for name, value in settings.items():
            setattr(server, name, value)
        if on_exchange is not None:
            server.on("exchange", on_exchange)
        self.addCleanup(server.close)
        self.exchanges = []
        server.on("exchange", self.exchanges.append)
        return server

    def client(self, server, **kw):
        client = H2Client(self.loop, server.port, **kw)
        self.addCleanup(lambda: client.conn is not None and client.conn.close())
        return client

    def tool(self, args, timeout=10):
        """Run a command while the loop serves; (returncode, stdout bytes)."""
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        out, err = [], []

        # The tool's output pipes wake the loop (a process exiting does
        # not): read until both reach their end.
        for pipe, into in ((proc.stdout, out), (proc.stderr, err)):
            os.set_blocking(pipe.fileno(), False)

        def done():
            for pipe, into in ((proc.stdout, out), (proc.stderr, err)):
                try:
                    while True:
                        chunk = os.read(pipe.fileno(), 65536)
                        into.append(chunk)
                        if not chunk:
                            break
                except BlockingIOError:
                    pass
            return b"" in out and b"" in err

        source = _PipeWatch(self.loop, proc.stdout.fileno(), proc.stderr.fileno())
        try:
            self.run_until(done, timeout)
        finally:
            source.close()
        proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()
        return proc.returncode, b"".join(out), b"".join(err)


class TestThorClient(H2ServerTestCase):
    def test_hello_world_written_for_http1(self):
        server = self.server()
        client = self.client(server)
        sid = client.request(path=b"/where?x=1")
        self.run_until(lambda: client.ended(sid))
        status, fields, body = client.response(sid)
        self.assertEqual((status, body), (b"200", HELLO))
        self.assertEqual(fields[b"content-type"], b"text/plain")
        self.assertEqual(fields[b"content-length"], b"13")
        self.assertIn(b"date", fields)
        (exchange,) = self.exchanges
        self.assertEqual(exchange.req_version, b"2")
        self.assertEqual((exchange.method, exchange.uri), (b"GET", b"/where?x=1"))
        # :authority becomes Host (RFC 9113 8.3.1)
        self.assertEqual(exchange.req_hdrs, [(b"host", b"example.test")])
        self.assertTrue(exchange.finished)

    def test_post_body_larger_than_the_window_is_echoed(self):
        body = bytes(range(256)) * 1024  # 256 KiB: four initial stream windows
        chunks = []

        def echo(exchange, data, trailers):
            chunks.append(len(data))
            exchange.response_start(200, "OK", [("Content-Length", str(len(data)))])
            exchange.response_body(data)
            exchange.response_done()

        server = self.server(None)
        answer_when_complete(server, echo)
        client = self.client(server)
        sid = client.request(b"POST", b"/echo", body)
        self.run_until(lambda: client.ended(sid))
        self.assertEqual(client.response(sid)[2], body)
        self.assertEqual(chunks, [len(body)])

    def test_concurrent_streams_answered_out_of_order(self):
        waiting = []

        def later(exchange):
            exchange.on("request_done", lambda trailers: waiting.append(exchange))

        server = self.server(later)
        client = self.client(server)
        sids = [client.request(path=b"/%d" % n) for n in range(20)]
        self.run_until(lambda: len(waiting) == 20)
        for exchange in reversed(waiting):
            exchange.response_start(200, "OK", [])
            exchange.response_body(exchange.uri)
            exchange.response_done()
        self.run_until(lambda: all(client.ended(s) for s in sids))
        for n, sid in enumerate(sids):
            self.assertEqual(client.response(sid)[2], b"/%d" % n)
        self.assertEqual(len(server.connections), 1)

    def test_listener_that_raises_fails_its_stream_only(self):
        caught = []
        self.loop.exception_handler = lambda loop, exc, where: caught.append(exc)
        errors = []

        def on_exchange(exchange):
            exchange.on("error", errors.append)
            if exchange.uri == b"/raise":
                exchange.on("request_start", lambda *a: 1 / 0)
            elif exchange.uri == b"/raise-later":
                def fail(trailers):
                    exchange.response_start(200, "OK", [])
                    exchange.response_body(b"partial")
                    raise KeyError("late")
                exchange.on("request_done", fail)
            else:
                hello(exchange)

        server = self.server(on_exchange)
        client = self.client(server)
        bad = client.request(path=b"/raise")
        late = client.request(path=b"/raise-later")
        good = client.request()
        self.run_until(lambda: all(client.ended(s) for s in (bad, late, good)))
        self.assertEqual(client.response(bad)[0], b"500")
        self.assertEqual(client.of(late, StreamReset)[0].error_code, INTERNAL_ERROR)
        self.assertEqual(client.response(good)[2], HELLO)
        self.assertEqual([type(e) for e in caught], [ZeroDivisionError, KeyError])
        self.assertEqual([type(e) for e in errors], [error.InternalServerError] * 2)
        self.assertFalse(client.goaway())

    def test_graceful_shutdown_lets_open_streams_finish(self):
        waiting = []
        server = self.server(lambda ex: ex.on("request_done", lambda t: waiting.append(ex)))
        stopped = []
        server.on("stop", lambda: stopped.append(True))
        client = self.client(server)
        sid = client.request()
        self.run_until(lambda: waiting)
        server.graceful_shutdown()
        self.run_until(lambda: client.goaway())
        (goaway,) = client.goaway()
        self.assertEqual((goaway.error_code, goaway.last_stream_id), (NO_ERROR, sid))
        self.assertFalse(stopped)
        waiting[0].response_start(200, "OK", [])
        waiting[0].response_done()
        self.run_until(lambda: client.ended(sid) and client.closed and stopped)
        self.assertEqual(client.response(sid)[0], b"200")

    def test_trailers_both_ways_and_connection_fields_dropped(self):
        got = []

        def on_exchange(exchange):
            exchange.on("request_done", lambda trailers: (
                got.append(trailers),
                exchange.response_start(200, "OK", [
                    ("Connection", "close, X-Hop"), ("X-Hop", "1"), ("Keep-Alive", "5"),
                    ("Transfer-Encoding", "chunked"), ("X-Kept", "yes")]),
                exchange.response_body(b"abc"),
                exchange.response_done([("X-Sum", "42"), ("Content-Length", "3")]),
            ))

        server = self.server(on_exchange)
        client = self.client(server)
        sid = client.request(b"POST", body=b"data", end=False)
        client.h2.send_headers(sid, [(b"x-req-sum", b"7")])
        client.flush()
        self.run_until(lambda: client.ended(sid))
        self.assertEqual(got, [[(b"x-req-sum", b"7")]])
        status, fields, body = client.response(sid)
        self.assertEqual((status, body), (b"200", b"abc"))
        self.assertEqual(fields[b"x-kept"], b"yes")
        for name in (b"connection", b"x-hop", b"keep-alive", b"transfer-encoding"):
            self.assertNotIn(name, fields)
        (trailers,) = client.of(sid, TrailersReceived)
        self.assertEqual(trailers.headers, [(b"x-sum", b"42")])

    def test_content_length_is_enforced(self):
        outcome = {}

        def on_exchange(exchange):
            def done(trailers):
                exchange.response_start(200, "OK", [("Content-Length", "5")])
                try:
                    exchange.response_body(b"too long")
                except error.BodyLengthError:
                    outcome["long"] = True
                exchange.response_body(b"abc")
                try:
                    exchange.response_done()
                except error.BodyLengthError:
                    outcome["short"] = True
            exchange.on("request_done", done)

        server = self.server(on_exchange)
        client = self.client(server)
        sid = client.request()
        self.run_until(lambda: client.ended(sid))
        self.assertEqual(outcome, {"long": True, "short": True})
        self.assertEqual(client.of(sid, StreamReset)[0].error_code, INTERNAL_ERROR)

    def test_head_and_informational(self):
        def on_exchange(exchange):
            exchange.on("request_done", lambda trailers: (
                exchange.response_nonfinal(103, "Early Hints", [("Link", "</a>; rel=preload")]),
                exchange.response_start(200, "OK", [("Content-Length", "13")]),
                exchange.response_body(HELLO),
                exchange.response_done(),
            ))

        server = self.server(on_exchange)
        client = self.client(server)
        sid = client.request(b"HEAD")
        self.run_until(lambda: client.ended(sid))
        status, fields, body = client.response(sid)
        self.assertEqual((status, fields[b"content-length"], body), (b"200", b"13", b""))
        (early,) = client.of(sid, InformationalResponse)
        self.assertIn((b"link", b"</a>; rel=preload"), early.headers)

    def test_100_continue_when_the_body_is_read(self):
        # As over HTTP/1.1: 100 once the application reads the body (at
        # once, or when it resumes it); none for a request answered first,
        # or one whose HEADERS ended it.
        def on_exchange(exchange):
            if exchange.uri == b"/paused":
                exchange.pause(True)
            elif exchange.uri == b"/refused":
                exchange.on("request_start", lambda *a: (
                    exchange.response_start(417, "Expectation Failed", []),
                    exchange.response_done()))
            echo(exchange)

        server = self.server(on_exchange)
        client = self.client(server)
        expect = [(b"expect", b"100-Continue")]

        def continues(sid):
            return [dict(e.headers)[b":status"] for e in client.of(sid, InformationalResponse)]

        read = client.request(b"POST", b"/read", headers=expect, end=False)
        paused = client.request(b"POST", b"/paused", headers=expect, end=False)
        refused = client.request(b"POST", b"/refused", headers=expect, end=False)
        empty = client.request(b"POST", b"/empty", headers=expect)
        self.run_until(lambda: continues(read) and client.ended(refused)
                       and client.ended(empty))
        self.assertEqual(continues(read), [b"100"])
        self.assertEqual((continues(refused), client.response(refused)[0]), ([], b"417"))
        self.assertEqual((continues(empty), client.response(empty)[0]), ([], b"200"))
        self.assertEqual(continues(paused), [])
        (held,) = [ex for ex in self.exchanges if ex.uri == b"/paused"]
        held.pause(False)
        self.run_until(lambda: continues(paused))
        for sid in (read, paused):
            client.h2.send_data(sid, b"body", end_stream=True)
        client.flush()
        self.run_until(lambda: client.ended(read) and client.ended(paused))
        for sid in (read, paused):
            self.assertEqual(continues(sid), [b"100"])
            self.assertEqual(client.response(sid)[::2], (b"200", b"body"))

    def test_paused_request_body_is_held_and_not_acknowledged(self):
        got = []

        def on_exchange(exchange):
            exchange.pause(True)
            exchange.on("request_body", got.append)
            exchange.on("request_done", lambda trailers: got.append(None))

        server = self.server(on_exchange)
        client = self.client(server)
        body = b"x" * 65535  # the whole initial stream window
        sid = client.request(b"POST", body=body, end=False)
        self.run_until(lambda: self.exchanges and client.h2.send_window(sid) == 0
                       and not client.h2.outbound_buffered())
        # another read of the server's: still nothing delivered or acknowledged
        client.h2.ping()
        client.flush()
        self.run_until(lambda: [e for e in client.events if type(e).__name__ == "PingAck"])
        self.assertEqual(got, [])
        self.assertEqual(client.h2.send_window(sid), 0)
        self.exchanges[0].pause(False)
        self.run_until(lambda: client.h2.send_window(sid) > 0)
        self.assertEqual(b"".join(got), body)
        client.h2.end_stream(sid)
        client.flush()
        self.run_until(lambda: got[-1:] == [None])

    def test_a_paused_request_answered_gives_back_what_it_held(self):
        # Answered with its body paused (a proxy whose upstream is slow,
        # answering 502), a request's held DATA goes back to the connection
        # window, its stream is reset NO_ERROR after END_STREAM (RFC 9113
        # 8.1), and the exchange is forgotten: more of these than the
        # connection window (1 MiB) holds leave it open for other uploads.
        def on_exchange(exchange):
            if exchange.uri == b"/paused":
                exchange.on("request_start", lambda *a: (
                    exchange.pause(True),
                    exchange.response_start(403, "Forbidden", [("Content-Length", "0")]),
                    exchange.response_done()))
            else:
                echo(exchange)

        server = self.server(on_exchange)
        client = self.client(server)
        paused = [client.request(b"POST", b"/paused", body=b"x" * 65535, end=False)
                  for _ in range(17)]  # 17 x 65535 > the 1 MiB connection window
        self.run_until(lambda: all(client.ended(s) for s in paused))
        for sid in paused:
            self.assertEqual(client.response(sid)[0], b"403")
            self.assertEqual([e.error_code for e in client.of(sid, StreamReset)], [NO_ERROR])
        (conn,) = server.connections
        self.run_until(lambda: not conn.exchanges)
        body = b"y" * 100000
        sid = client.request(b"POST", b"/echo", body=body)
        self.run_until(lambda: client.ended(sid), timeout=3)
        self.assertEqual(client.response(sid)[2], body)
        stopped = []
        server.on("stop", lambda: stopped.append(True))
        server.graceful_shutdown()
        self.run_until(lambda: stopped, timeout=1)  # nothing left open

    def test_pause_while_the_peer_window_is_closed(self):
        pauses = []
        chunk = b"y" * 16384
        total = 16 * len(chunk)
        state = {"paused": False, "sent": 0}

        def on_exchange(exchange):
            def pump():
                while not state["paused"] and state["sent"] < total:
                    exchange.response_body(chunk)
                    state["sent"] += len(chunk)
                if state["sent"] >= total and not exchange.finished:
                    exchange.response_done()

            def on_pause(paused):
                pauses.append(paused)
                state["paused"] = paused
                if not paused:
                    pump()
            exchange.on("pause", on_pause)
            exchange.on("request_done", lambda trailers: (
                exchange.response_start(200, "OK", []), pump()))

        server = self.server(on_exchange)
        client = self.client(server, ack=False)
        sid = client.request()

        def received():
            return sum(len(e.data) for e in client.of(sid, DataReceived))
        # the stream window (65535) goes out; past _PAUSE_SIZE more, pause
        self.run_until(lambda: pauses == [True] and received() == 65535)
        self.assertLess(state["sent"], 65535 + 65536 + len(chunk))
        self.loop._run_once()  # nothing more comes
        self.assertEqual(received(), 65535)
        for event in client.of(sid, DataReceived):
            client.h2.acknowledge_data(sid, event.flow_length)
        client.ack = True
        client.flush()
        self.run_until(lambda: client.ended(sid))
        self.assertEqual(pauses[:2], [True, False])
        self.assertEqual(len(client.response(sid)[2]), total)

    def test_send_timeout_for_a_window_that_never_opens(self):
        errors = []

        def on_exchange(exchange):
            exchange.on("error", errors.append)
            exchange.on("request_done", lambda trailers: (
                exchange.response_start(200, "OK", []),
                exchange.response_body(b"z" * 100000),
            ))

        server = self.server(on_exchange, send_timeout=0.3)
        client = self.client(server, ack=False)
        sid = client.request()
        other = client.request()
        started = time.monotonic()
        self.run_until(lambda: errors, timeout=3)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertIsInstance(errors[0], error.SendTimeoutError)
        self.run_until(lambda: client.of(sid, StreamReset) and client.of(other, StreamReset))
        self.assertEqual(client.of(sid, StreamReset)[0].error_code, CANCEL)
        self.assertFalse(client.closed)
        self.assertEqual(len(errors), 2)

    def test_send_timeout_counts_per_stream_from_its_own_progress(self):
        # A client sending 1-octet WINDOW_UPDATEs on stream 0 moves nothing
        # of a stream whose window stays shut: it still times out; a stream
        # whose window opens a little at a time does not.
        from thor.http.h2 import frames as fr
        errors = []

        def on_exchange(exchange):
            exchange.on("error", errors.append)
            exchange.on("request_done", lambda trailers: (
                exchange.response_start(200, "OK", []),
                exchange.response_body(b"z" * 100000),
            ))

        server = self.server(on_exchange, send_timeout=0.3)
        client = self.client(server, ack=False, config=H2Config(initial_window_size=0))
        shut = client.request()
        moving = client.request()
        started = time.monotonic()
        ticks = []

        def nudge():
            if client.closed or time.monotonic() - started > 2:
                return
            client.conn.write(fr.window_update_frame(0, 1))
            client.h2.acknowledge_data(moving, 1000)  # opens its window by 1000
            client.flush()
            ticks.append(self.loop.schedule(0.1, nudge))

        self.addCleanup(lambda: ticks and ticks[-1].delete())
        self.run_until(lambda: client.conn is not None)
        nudge()
        self.run_until(lambda: client.of(shut, StreamReset), timeout=1.5)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertEqual(client.of(shut, StreamReset)[0].error_code, CANCEL)
        self.assertEqual([type(e) for e in errors], [error.SendTimeoutError], errors)
        def moved():
            return sum(len(e.data) for e in client.of(moving, DataReceived))
        before = moved()
        self.run_until(lambda: moved() > before + 2000)  # still going, past send_timeout
        self.assertFalse(client.of(moving, StreamReset))

    def test_send_timeout_for_a_client_that_reads_nothing(self):
        errors, pauses = [], []

        def on_exchange(exchange):
            exchange.on("error", errors.append)
            exchange.on("pause", pauses.append)
            exchange.on("request_done", lambda trailers: (
                exchange.response_start(200, "OK", []),
                exchange.response_body(b"w" * (8 << 20)),
            ))

        server = self.server(on_exchange, send_timeout=0.3)
        h2 = H2Connection(True, H2Config(
            initial_window_size=2 ** 31 - 1, connection_window_size=2 ** 31 - 1))
        h2.initiate()
        h2.start_request([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
                          (b":authority", b"a")], end_stream=True)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        self.addCleanup(sock.close)
        sock.sendall(h2.data_to_send())  # and never reads
        started = time.monotonic()
        self.run_until(lambda: errors, timeout=5)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertIsInstance(errors[0], error.SendTimeoutError)
        self.assertEqual(pauses[:1], [True])
        self.run_until(lambda: not server.connections)

    def test_idle_timeout_sends_goaway_and_closes(self):
        server = self.server(idle_timeout=0.2)
        client = self.client(server)
        sid = client.request()
        self.run_until(lambda: client.ended(sid))
        self.run_until(lambda: client.closed, timeout=3)
        self.assertEqual(client.goaway()[0].error_code, NO_ERROR)
        self.assertFalse(server.connections)

    def test_idle_timeout_after_an_answer_from_a_timer(self):
        # The last stream ends outside a read (the usual asynchronous
        # answer): the connection is idle from then, even with no
        # body_timeout to wake its timer meanwhile.
        def later(exchange):
            exchange.on("request_done", lambda trailers: self.loop.schedule(0.05, lambda: (
                exchange.response_start(200, "OK", []), exchange.response_done())))

        server = self.server(later, idle_timeout=0.2, body_timeout=None)
        client = self.client(server)
        sid = client.request()
        self.run_until(lambda: client.ended(sid))
        answered = time.monotonic()
        self.run_until(lambda: client.closed, timeout=2)
        self.assertGreaterEqual(time.monotonic() - answered, 0.15)
        self.assertEqual(client.goaway()[0].error_code, NO_ERROR)

    def test_protocol_error_fails_open_exchanges(self):
        errors = []
        server = self.server(lambda ex: ex.on("error", errors.append))
        client = self.client(server)
        client.request()
        self.run_until(lambda: self.exchanges)
        client.conn.write(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00")  # WINDOW_UPDATE 0
        self.run_until(lambda: client.closed)
        self.assertIsInstance(errors[0], error.ConnectionClosedError)
        self.assertEqual(client.goaway()[0].error_code, 1)  # PROTOCOL_ERROR

    def test_cookies_joined_and_host_kept(self):
        server = self.server()
        client = self.client(server)
        sid = client.request(headers=[(b"cookie", b"a=1"), (b"x", b"y"), (b"cookie", b"b=2"),
                                      (b"host", b"example.test")])
        self.run_until(lambda: client.ended(sid))
        self.assertEqual(self.exchanges[0].req_hdrs, [
            (b"cookie", b"a=1; b=2"), (b"x", b"y"), (b"host", b"example.test")])

    def test_end_of_input_fails_unfinished_requests(self):
        errors = []
        server = self.server(lambda ex: ex.on("error", errors.append))
        client = self.client(server)
        client.request(b"POST", body=b"part", end=False)
        self.run_until(lambda: self.exchanges)
        client.conn.socket.shutdown(socket.SHUT_WR)
        self.run_until(lambda: client.closed)
        self.assertEqual([type(e) for e in errors], [error.ConnectionClosedError])
        self.assertFalse(server.connections)

    def test_tls_without_http2_offers_no_h2(self):
        server = self.server(tls=True, http2=False)
        certfile, _ = make_cert()
        context = ssl.create_default_context(cafile=certfile)
        context.set_alpn_protocols(["h2", "http/1.1"])
        got = []
        tls = thor.TlsClient(self.loop, tls_context=context)

        def connected(conn):
            self.addCleanup(conn.close)
            got.append(conn.alpn_protocol)
            conn.on("data", got.append)
            conn.pause(False)
            conn.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        tls.on("connect", connected)
        tls.connect("localhost", server.port)
        self.run_until(lambda: b"".join(got[1:]).endswith(HELLO))
        self.assertNotEqual(got[0], "h2")

    def test_tls_alpn_selects_h2_and_http1_still_served(self):
        server = self.server(tls=True)
        certfile, _ = make_cert()
        context = ssl.create_default_context(cafile=certfile)
        context.set_alpn_protocols(["h2", "http/1.1"])
        client = self.client(server, tls_context=context)
        sid = client.request()
        self.run_until(lambda: client.ended(sid))
        self.assertEqual(client.alpn, "h2")
        self.assertEqual(client.response(sid)[2], HELLO)
        # an HTTP/1.1 client on the same port (ALPN http/1.1)
        context1 = ssl.create_default_context(cafile=certfile)
        context1.set_alpn_protocols(["http/1.1"])
        got = []
        tls1 = thor.TlsClient(self.loop, tls_context=context1)

        def connected(conn):
            self.addCleanup(conn.close)
            conn.on("data", got.append)
            conn.pause(False)
            conn.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        tls1.on("connect", connected)
        tls1.connect("localhost", server.port)
        self.run_until(lambda: b"".join(got).endswith(HELLO))
        self.assertTrue(b"".join(got).startswith(b"HTTP/1.1 200 OK\r\n"))


class TestDetection(H2ServerTestCase):
    def raw(self, server):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setblocking(False)
        self.addCleanup(sock.close)
        return sock

    def read_until(self, sock, predicate):
        got = bytearray()

        def ready():
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return False
            got.extend(data)
            return predicate(bytes(got)) or not data
        self.run_until(ready)
        return bytes(got)

    def test_http1_on_the_same_port_byte_for_byte(self):
        got = []
        server = self.server(None)
        answer_when_complete(server, lambda ex, body, t: (
            got.append((ex.method, ex.uri, ex.req_version, ex.req_hdrs, body)),
            ex.response_start(200, "OK", []), ex.response_done()))
        sock = self.raw(server)
        # "P" could begin the preface: held, then handed on whole
        sock.send(b"P")
        self.run_until(lambda: server.connections)
        self.loop._run_once()
        sock.send(b"OST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")
        out = self.read_until(sock, lambda b: b.endswith(b"0\r\n\r\n"))
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertEqual(got, [(b"POST", b"/p", b"1.1", [(b"Host", b" h"), (b"Content-Length", b" 3")], b"abc")])

    def test_preface_split_across_reads(self):
        server = self.server()
        h2 = H2Connection(True)
        h2.initiate()
        h2.start_request([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
                          (b":authority", b"a")], end_stream=True)
        data = h2.data_to_send()
        sock = self.raw(server)
        for piece in (data[:3], data[3:20], data[20:]):
            sock.send(piece)
            self.run_until(lambda: server.connections)
            self.loop._run_once()
        events = []

        def ready():
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                return False
            events.extend(h2.receive_data(chunk))
            return any(isinstance(e, StreamEnded) for e in events) or not chunk
        self.run_until(ready)
        data_events = [e for e in events if isinstance(e, DataReceived)]
        self.assertEqual(b"".join(e.data for e in data_events), HELLO)

    def test_http2_off_leaves_the_preface_to_http1(self):
        server = self.server(http2=False)
        sock = self.raw(server)
        sock.send(PREFACE)
        out = self.read_until(sock, lambda b: b"\r\n\r\n" in b)
        self.assertTrue(out.startswith(b"HTTP/1.1 "), out[:40])


class TestHpackCaches(unittest.TestCase):
    """The block caches the server's speed rests on (thor.http.h2.hpack)
    must never answer from a table that has changed."""

    def test_decoder_cache_follows_the_table(self):
        from thor.http.h2.hpack import Decoder, Encoder
        enc, dec = Encoder(huffman=False), Decoder()
        dec.decode(enc.encode([(b"x-a", b"1")]))      # (x-a, 1) is index 62
        newest = bytes([0x80 | 62])
        self.assertEqual(dec.decode(newest), [(b"x-a", b"1")])
        self.assertEqual(dec.decode(newest), [(b"x-a", b"1")])  # from the cache
        dec.decode(enc.encode([(b"x-b", b"2")]))      # now (x-b, 2) is 62
        self.assertEqual(dec.decode(newest), [(b"x-b", b"2")])

    def test_encoder_cache_follows_the_table(self):
        from thor.http.h2.hpack import Decoder, Encoder
        enc, dec = Encoder(), Decoder()
        fields = [(b"x-a", b"1"), (b"server", b"thor")]
        for _ in range(3):
            first = enc.encode(fields)
            self.assertEqual(dec.decode(first), fields)
        self.assertIs(enc.encode(fields), enc.encode(fields))  # cached
        self.assertEqual(dec.decode(enc.encode([(b"x-b", b"2")])), [(b"x-b", b"2")])
        again = enc.encode(fields)                    # indices moved by one
        self.assertNotEqual(again, first)
        self.assertEqual(dec.decode(again), fields)

    def test_repeated_request_heads_are_copies_and_still_checked(self):
        server = H2Connection(False)
        client = H2Connection(True)
        client.initiate()
        server.initiate()
        head = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
                (b":authority", b"a")]
        for _ in range(2):
            client.start_request(head, end_stream=True)
        events = server.receive_data(client.data_to_send())
        requests = [e for e in events if type(e).__name__ == "RequestReceived"]
        self.assertEqual([r.headers for r in requests], [head, head])
        self.assertIsNot(requests[0].headers, requests[1].headers)  # copies
        # the same octets after a malformed head are still checked
        bad = H2Connection(True, H2Config(validate_outbound=False))
        bad.initiate()
        bad.start_request(head + [(b"connection", b"x")], end_stream=True)
        bad.start_request(head + [(b"connection", b"x")], end_stream=True)
        other = H2Connection(False)
        other.initiate()
        events = other.receive_data(bad.data_to_send())
        self.assertFalse([e for e in events if type(e).__name__ == "RequestReceived"])


@unittest.skipUnless(CURL_H2, "curl with HTTP2 is not installed")
class TestCurl(H2ServerTestCase):
    def test_prior_knowledge(self):
        server = self.server()
        code, out, err = self.tool([
            "curl", "-s", "-S", "--http2-prior-knowledge", "-w", "\n%{http_version}",
            "http://127.0.0.1:%d/" % server.port])
        self.assertEqual((code, out), (0, HELLO + b"\n2"), err)

    def test_tls_alpn(self):
        server = self.server(tls=True)
        code, out, err = self.tool([
            "curl", "-s", "-S", "-k", "--http2", "-w", "\n%{http_version}",
            "https://127.0.0.1:%d/" % server.port])
        self.assertEqual((code, out), (0, HELLO + b"\n2"), err)

    def test_post_larger_than_the_window(self):
        server = self.server(None)
        answer_when_complete(server, lambda ex, body, t: (
            ex.response_start(200, "OK", [("Content-Length", str(len(body)))]),
            ex.response_body(body), ex.response_done()))
        body = b"0123456789abcdef" * 20000  # 320000 octets
        with tempfile.TemporaryDirectory() as where:
            sent, got = os.path.join(where, "sent"), os.path.join(where, "got")
            with open(sent, "wb") as handle:
                handle.write(body)
            code, out, err = self.tool([
                "curl", "-s", "-S", "--http2-prior-knowledge", "--data-binary", "@" + sent,
                "-o", got, "http://127.0.0.1:%d/" % server.port])
            self.assertEqual(code, 0, err)
            with open(got, "rb") as handle:
                self.assertEqual(handle.read(), body)

    def test_http1_client_on_the_same_port(self):
        server = self.server()
        code, out, err = self.tool([
            "curl", "-s", "-S", "--http1.1", "-w", "\n%{http_version}",
            "http://127.0.0.1:%d/" % server.port])
        self.assertEqual((code, out), (0, HELLO + b"\n1.1"), err)


@unittest.skipUnless(shutil.which("nghttp"), "nghttp is not installed")
class TestNghttp(H2ServerTestCase):
    def test_concurrent_requests(self):
        server = self.server()
        url = "http://127.0.0.1:%d/" % server.port
        code, out, err = self.tool(["nghttp", "-n", "-s", url, url + "a", url + "b"])
        self.assertEqual(code, 0, err)
        self.assertEqual(len(self.exchanges), 3)
        self.assertTrue(all(ex.finished for ex in self.exchanges))


@unittest.skipUnless(shutil.which("h2load"), "h2load is not installed")
class TestH2load(H2ServerTestCase):
    def test_load_cleartext_and_tls(self):
        for tls in (False, True):
            server = self.server(tls=tls)
            url = "%s://127.0.0.1:%d/" % ("https" if tls else "http", server.port)
            code, out, err = self.tool(["h2load", "-n", "2000", "-c", "4", "-m", "10", url], 30)
            self.assertEqual(code, 0, err)
            self.assertIn(b"2000 succeeded, 0 failed, 0 errored", out)
            self.assertIn(b"2000 2xx", out)
            if tls:
                self.assertIn(b"Application protocol: h2", out)


if __name__ == "__main__":
    unittest.main()
