"""HttpServer against hostile and broken clients: what a peer can make the
server hold (memory, descriptors, time), and what an application's failing
listener does to an exchange.

Each test drives real loopback sockets with the test's loop, sets the
server's time bounds small on the instance, and checks that the process's
file descriptors return to where they were.
"""

import os
import socket
import time
import unittest

import thor.loop
from thor.http import error
from tests.support import open_fds
from tests.test_http_server import GET, ServerTestCase, parse_responses


def rss():
    """This process's resident set size in bytes (None if unknown)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def answer(exchange, body=b"hello", headers=()):
    exchange.response_start(200, "OK", [("Content-Length", str(len(body))), *headers])
    exchange.response_body(body)
    exchange.response_done()


class FloodClient(thor.loop.EventSource):
    """Sends numbered pipelined requests, ``per_send`` at a time, for as
    long as the kernel takes them; holds at most one unsent block, so that
    the test process's own memory does not grow. Reads only when
    ``reading``; keeps what it reads."""

    REQUEST = b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n"

    def __init__(self, loop, port, per_send=512, rcvbuf=4096, sndbuf=16384):
        thor.loop.EventSource.__init__(self, loop)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.per_send = per_send
        self.sent = 0  # requests made (all of them sent once ``pending`` is empty)
        self.pending = b""
        self.flooding = True
        self.reading = False
        self.data = bytearray()
        self.eof = False
        self.register_fd(self.sock.fileno(), "fd_writable")

    def _fd_ready(self, mask):
        if mask & thor.loop.WRITE:
            while True:
                if not self.pending:
                    if not self.flooding:
                        self.event_del("fd_writable")
                        break
                    self.pending = b"".join(
                        self.REQUEST % n for n in range(self.sent, self.sent + self.per_send))
                    self.sent += self.per_send
                try:
                    n = self.sock.send(self.pending)
                except BlockingIOError:
                    break
                self.pending = self.pending[n:]
        if self.reading and mask & (thor.loop.READ | thor.loop.HUP | thor.loop.ERROR):
            try:
                chunk = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if chunk:
                self.data += chunk
            else:
                self.eof = True
                self.unregister_fd()

    def stop_flooding(self):
        """Send what is pending (the rest of the last block), then nothing."""
        self.flooding = False

    def start_reading(self):
        self.reading = True
        self.event_add("fd_readable")

    def close(self):
        if not self.eof:
            self.unregister_fd()
        self.sock.close()


class HostileTestCase(ServerTestCase):
    def setUp(self):
        ServerTestCase.setUp(self)
        self.baseline_fds = open_fds()
        # Anything left at the end of a test must still time out quickly.
        for name in ("idle_timeout", "request_timeout", "body_timeout", "send_timeout",
                     "shutdown_timeout"):
            setattr(self.server, name, 10)

    def assert_fds_released(self, *clients):
        """Close the test's clients; the server's descriptors must go too."""
        for client in clients:
            client.close()
        if self.baseline_fds is not None:
            self.run_until(lambda: open_fds() <= self.baseline_fds)
        self.run_until(lambda: not self.server.connections)

    def only_connection(self):
        self.run_until(lambda: self.server.connections)
        [conn] = self.server.connections
        return conn


class FloodTest(HostileTestCase):
    """A client pipelines requests and never reads, against an application
    that answers asynchronously: the server's memory stays bounded."""

    def test_pipelined_flood_against_an_async_application(self):
        if rss() is None:
            self.skipTest("no /proc/self/status")
        delay = [0.001]

        def handler(exchange):
            def done(trailers):
                if delay[0] is None:
                    answer(exchange, exchange.uri)
                else:
                    self.loop.schedule(delay[0], answer, exchange, exchange.uri)

            exchange.on("request_done", done)

        self.handler = handler
        # Kernel buffers large enough for full reads (read_size), small
        # enough that every request the client got in is answered quickly
        # at the end.
        listener = self.server.tcp_server.sock
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 262144)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        client = FloodClient(self.loop, self.server.port)
        self.addCleanup(client.close)
        conn = self.only_connection()
        bound = self.server.inbuf_limit + conn.tcp.read_size
        # Warm up (caches, allocator arenas), then measure the growth.
        self.run_until(lambda: len(self.exchanges) > 50)
        base = rss()
        peak = {"rss": base, "buffered": 0}
        over = []
        self.loop.schedule(0.5, over.append, True)

        def sample():
            peak["rss"] = max(peak["rss"], rss())
            peak["buffered"] = max(peak["buffered"], conn.parser.buffered)
            return over

        self.run_until(sample)
        if os.environ.get("THOR_TEST_VERBOSE"):
            print("flood: rss +%d KiB, parser peak %d bytes, %d answered"
                  % ((peak["rss"] - base) // 1024, peak["buffered"], len(self.exchanges)))
        self.assertLessEqual(peak["buffered"], bound)
        self.assertLess(peak["rss"] - base, 8 * 2**20)
        answered_during_flood = len(self.exchanges)
        self.assertGreater(answered_during_flood, 100)
        # Now the client reads; every request it sent is answered, in order
        # (from now on at once, to keep the test short).
        client.stop_flooding()
        delay[0] = None
        client.start_reading()
        self.run_until(lambda: not client.pending, timeout=10)
        total = client.sent
        # Every head, and the last body after its head (a head may come in
        # one read and its body in the next).
        last = b"/%d" % (total - 1)
        self.run_until(
            lambda: client.data.count(b"HTTP/1.1 200 OK") == total and client.data.endswith(last),
            timeout=20)
        responses = parse_responses(client.data, ["GET"] * total)
        self.assertEqual([body for _, _, body in responses], [b"/%d" % n for n in range(total)])
        self.assert_fds_released(client)


class BodyTimeoutTest(HostileTestCase):
    UPLOAD = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n"

    def setUp(self):
        HostileTestCase.setUp(self)
        self.errors = []
        self.started = False
        self.handler = self.record

    def record(self, exchange):
        exchange.on("error", self.errors.append)
        exchange.on("request_done", lambda trailers: answer(exchange))
        if self.started:
            exchange.on("request_start", lambda *args: (
                exchange.response_start(200, "OK", []), exchange.response_body(b"early")))

    def test_stalled_body_gets_408(self):
        self.server.body_timeout = 0.3
        client = self.client()
        client.send(self.UPLOAD + b"0123456789")
        began = time.monotonic()
        self.run_until(lambda: client.eof)
        self.assertGreaterEqual(time.monotonic() - began, 0.25)
        self.assertTrue(client.data.startswith(b"HTTP/1.1 408 "), client.data)
        self.assertEqual([type(err) for err in self.errors], [error.BodyTimeoutError])
        self.assert_fds_released(client)

    def test_stalled_body_after_the_response_started_closes(self):
        self.server.body_timeout = 0.3
        self.started = True
        client = self.client()
        client.send(self.UPLOAD + b"0123456789")
        self.run_until(lambda: client.eof)
        self.assertTrue(client.data.startswith(b"HTTP/1.1 200 OK"), client.data)
        self.assertNotIn(b"408", client.data)
        self.assertEqual([type(err) for err in self.errors], [error.BodyTimeoutError])
        self.assert_fds_released(client)

    def test_a_body_that_keeps_coming_is_not_cut(self):
        # 10 bytes every 0.1 s for 1 s against a 0.3 s bound between reads.
        self.server.body_timeout = 0.3
        client = self.client()
        client.send(self.UPLOAD)
        for n in range(100):
            self.loop.schedule(0.01 * n, client.send, b"0123456789")
        self.run_until(lambda: b"hello" in client.data)
        self.assertEqual(self.errors, [])
        self.assertFalse(client.eof)
        self.assert_fds_released(client)

    def test_expect_100_client_that_never_sends_the_body(self):
        self.server.body_timeout = 0.3
        client = self.client()
        client.send(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                    b"Expect: 100-continue\r\n\r\n")
        self.run_until(lambda: client.eof)
        self.assertTrue(client.data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 408 "),
                        client.data)
        self.assertEqual([type(err) for err in self.errors], [error.BodyTimeoutError])
        self.assert_fds_released(client)

    def test_no_body_timeout_while_the_application_holds_the_body(self):
        self.server.body_timeout = 0.2
        self.handler = lambda exchange: exchange.on(
            "request_start", lambda *args: exchange.pause(True))
        client = self.client()
        client.send(self.UPLOAD + b"0123456789")
        expired = []
        self.loop.schedule(0.5, expired.append, True)
        self.run_until(lambda: expired)
        self.assertFalse(client.eof)
        # Resumed, the body has body_timeout again.
        self.exchanges[-1].pause(False)
        began = time.monotonic()
        self.run_until(lambda: client.eof)
        self.assertGreaterEqual(time.monotonic() - began, 0.15)
        self.assertTrue(client.data.startswith(b"HTTP/1.1 408 "), client.data)
        self.assert_fds_released(client)


class LingeringCloseTest(HostileTestCase):
    """An answer that ends the connection while the client is still sending
    its upload (a 413 at request_start, an application that pauses the
    body): the client, which sends the whole body before it reads, as
    Python's http.client does, must get the answer, not a reset (RFC 9112
    9.6)."""

    SIZE = 8 << 20  # well beyond what the kernel's buffers hold

    def upload(self):
        """PUT SIZE bytes from another thread; what it got: (status, body)
        or the exception's name."""
        import http.client
        import threading

        result = []

        def run():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
                conn.request("PUT", "/up", body=b"x" * self.SIZE)
                response = conn.getresponse()
                result.append((response.status, response.read()))
                conn.close()
            except Exception as exc:  # the reset this is about, or another failure
                result.append(type(exc).__name__)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.run_until(lambda: result, timeout=20)
        thread.join(5)
        return result[0]

    def refuse(self, exchange):
        exchange.on("request_start", lambda *args: (
            exchange.response_start(413, "Content Too Large", [
                ("Content-Length", "7"), ("Connection", "close")]),
            exchange.response_body(b"too big"),
            exchange.response_done([]),
        ))

    def test_refused_upload_gets_its_answer(self):
        self.handler = self.refuse
        for _ in range(3):
            self.assertEqual(self.upload(), (413, b"too big"))
        self.run_until(lambda: not self.server.connections)

    def test_paused_upload_answered_early(self):
        def handler(exchange):
            def start(*args):
                exchange.pause(True)  # the application will not read it
                exchange.response_start(403, "Forbidden", [("Content-Length", "2")])
                exchange.response_body(b"no")
                exchange.response_done([])
            exchange.on("request_start", start)

        self.handler = handler
        self.assertEqual(self.upload(), (403, b"no"))

    def test_linger_is_bounded_for_a_client_that_never_stops(self):
        self.server.linger_timeout = 0.3
        self.handler = self.refuse
        client = self.client()
        client.send(b"PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n")
        conn = self.only_connection()
        began = time.monotonic()
        # The client goes on sending, never closing: the server lets go
        # within linger_timeout of its close.
        while conn in self.server.connections and time.monotonic() - began < 5:
            if not client._out:
                client.send(b"x" * 65536)
            self.loop._run_once()
        self.run_until(lambda: not self.server.connections, timeout=5)
        self.assertLess(time.monotonic() - began, 3)


class SendTimeoutTest(HostileTestCase):
    def setUp(self):
        HostileTestCase.setUp(self)
        self.errors = []
        listener = self.server.tcp_server.sock
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)

    def stream(self, total, respect_pause=True, close=False):
        """Answer with ``total`` bytes, in 64 KiB writes."""
        chunk = b"z" * 65536

        def handler(exchange):
            state = {"sent": 0, "paused": False}
            exchange.on("error", self.errors.append)

            def write():
                while state["sent"] < total and not (respect_pause and state["paused"]):
                    exchange.response_body(chunk)
                    state["sent"] += len(chunk)
                if state["sent"] >= total and not exchange.finished:
                    exchange.response_done(close=close)

            def pause(paused):
                state["paused"] = paused
                if not paused:
                    write()

            exchange.on("pause", pause)
            exchange.on("request_start", lambda *a: (
                exchange.response_start(200, "OK", [("Content-Length", str(total))]), write()))

        self.handler = handler

    def test_a_client_that_reads_nothing_of_a_large_response(self):
        self.server.send_timeout = 0.3
        self.stream(64 * 2**20)
        client = self.client(keep=False, rcvbuf=4096)
        client.pause_reading(True)
        client.send(GET % b"")
        conn = self.only_connection()
        self.run_until(lambda: conn._write_paused)
        stalled = time.monotonic()
        self.run_until(lambda: not self.server.connections)
        self.assertGreaterEqual(time.monotonic() - stalled, 0.25)
        self.assertEqual([type(err) for err in self.errors], [error.SendTimeoutError])
        self.assert_fds_released(client)

    def test_a_slow_reader_is_not_cut(self):
        self.server.send_timeout = 0.3
        total = 2**20
        self.stream(total)
        client = self.client(keep=False, rcvbuf=4096)
        client.pause_reading(True)
        client.send(GET % b"")
        conn = self.only_connection()
        self.run_until(lambda: conn._write_paused)

        # Read for a moment every 0.15 s: progress, if slow.
        def nibble():
            client.pause_reading(False)
            self.loop.schedule(0.001, client.pause_reading, True)
            if client.received < total:
                self.loop.schedule(0.15, nibble)

        self.loop.schedule(0.15, nibble)
        expired = []
        self.loop.schedule(1.0, expired.append, True)
        self.run_until(lambda: expired)
        self.assertEqual(self.errors, [])
        self.assertTrue(self.server.connections)
        self.assert_fds_released(client)

    def test_closing_with_output_a_client_never_reads(self):
        # The application ignores pause and finishes: the close then waits
        # for the output to be sent, but not for ever.
        self.server.send_timeout = 0.3
        self.stream(8 * 2**20, respect_pause=False, close=True)
        client = self.client(keep=False, rcvbuf=4096)
        client.pause_reading(True)
        client.send(GET % b"")
        self.run_until(lambda: self.exchanges and self.exchanges[0].finished)
        self.run_until(lambda: not self.server.connections)
        self.assertEqual(self.errors, [])
        self.assert_fds_released(client)

    def test_keep_alive_response_never_read(self):
        # The response is done, the connection would be idle, but its
        # output is backed up: send_timeout, not idle_timeout, applies.
        self.server.send_timeout = 0.3
        self.server.idle_timeout = 30
        self.stream(8 * 2**20, respect_pause=False)
        client = self.client(keep=False, rcvbuf=4096)
        client.pause_reading(True)
        client.send(GET % b"")
        self.run_until(lambda: self.exchanges and self.exchanges[0].finished)
        self.run_until(lambda: not self.server.connections)
        self.assert_fds_released(client)


class HalfCloseTest(HostileTestCase):
    """Requests a client sent before shutting its sending side are all
    answered, whatever ``half_close`` says."""

    def setUp(self):
        HostileTestCase.setUp(self)
        self.errors = []

    def serve(self, delay, size=5):
        def handler(exchange):
            exchange.on("error", self.errors.append)

            def go(trailers):
                if delay is None:
                    answer(exchange, b"h" * size)
                else:
                    self.loop.schedule(delay, answer, exchange, b"h" * size)

            exchange.on("request_done", go)

        self.handler = handler

    def pipeline_and_end(self, n, **kw):
        client = self.client(**kw)
        client.send(b"".join(GET % b"%d" % i for i in range(n)))
        client.half_close()
        return client

    def test_sync_application(self):
        for half_close in (False, True):
            self.server.half_close = half_close
            self.serve(None)
            client = self.pipeline_and_end(3)
            self.run_until(lambda: client.eof)
            self.assertEqual(client.data.count(b"HTTP/1.1 200 OK"), 3, half_close)
            self.assertEqual(self.errors, [])
            self.assert_fds_released(client)

    def test_sync_application_with_backed_up_output(self):
        self.serve(None, size=3 * 2**20)
        client = self.pipeline_and_end(2, keep=False, rcvbuf=4096)
        client.pause_reading(True)
        self.run_until(lambda: self.exchanges and self.only_connection()._await_drain)
        client.pause_reading(False)
        self.run_until(lambda: client.eof)
        self.assertEqual(client.received, 2 * (3 * 2**20) + 2 * len(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3145728\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"))
        self.assertEqual(self.errors, [])
        self.assert_fds_released(client)

    def test_async_application(self):
        # Every request read before the end is answered, however late,
        # whatever half_close says (issue 11, finding 3).
        self.serve(0.02)
        for half_close in (False, True):
            self.server.half_close = half_close
            for n in (1, 2, 3):
                client = self.pipeline_and_end(n)
                self.run_until(lambda: client.eof)
                self.assertEqual(client.data.count(b"HTTP/1.1 200 OK"), n, (half_close, client.data))
                self.assertEqual(self.errors, [])
                self.assert_fds_released(client)

    def test_an_answer_that_never_comes_after_the_end_is_bounded(self):
        # A client that sent its request and closed (or half-closed), and
        # an application that never answers: without half_close the
        # connection lasts send_timeout, not forever.
        self.server.send_timeout = 0.3
        self.handler = lambda exchange: exchange.on("error", self.errors.append)
        client = self.pipeline_and_end(1)
        started = time.monotonic()
        self.run_until(lambda: client.eof and not self.server.connections)
        self.assertGreaterEqual(time.monotonic() - started, 0.25)
        self.assertEqual([type(err) for err in self.errors], [error.ConnectionClosedError])
        self.assert_fds_released(client)

    def test_async_application_answering_at_once(self):
        # The answer comes on the next pass, before the client's end is
        # read or right after it.
        self.serve(0, size=3 * 2**20)
        client = self.pipeline_and_end(2, keep=False, rcvbuf=4096)
        self.run_until(lambda: client.eof)
        self.assertGreaterEqual(client.received, 3 * 2**20)
        self.assertEqual(len(self.errors) + client.received // (3 * 2**20), 2)
        self.assert_fds_released(client)


class ShutdownTest(HostileTestCase):
    def test_graceful_shutdown_is_bounded(self):
        self.server.shutdown_timeout = 0.4
        pending = []
        errors = []

        def handler(exchange):
            exchange.on("error", errors.append)
            if exchange.uri == b"/big":
                exchange.on("request_start", lambda *a: (
                    exchange.response_start(200, "OK", []),
                    exchange.response_body(b"z" * 8 * 2**20)))
            elif exchange.uri == b"/late":
                exchange.on("request_done", lambda t: pending.append(exchange))
            else:
                exchange.on("request_done", lambda t: answer(exchange))

        self.handler = handler
        self.server.tcp_server.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        trickler = self.client()
        trickler.send(b"GET / HTTP/1.1\r\n")
        uploader = self.client()
        uploader.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
        idle = self.client()
        idle.send(GET % b"idle")
        hog = self.client(keep=False, rcvbuf=4096)
        hog.pause_reading(True)
        hog.send(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        late = self.client()
        late.send(b"GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
        self.run_until(lambda: len(self.server.connections) == 5 and len(self.exchanges) == 4
                       and pending and b"hello" in idle.data)
        stopped = []
        self.server.on("stop", lambda: stopped.append(time.monotonic()))
        began = time.monotonic()
        self.server.graceful_shutdown()
        self.run_until(lambda: idle.eof)
        self.assertLess(time.monotonic() - began, 1.0)  # idle_timeout is 10
        # An exchange in progress may still finish before the deadline.
        answer(pending[0])
        self.run_until(lambda: late.eof)
        [(status, headers, body)] = parse_responses(late.data, ["GET"])
        self.assertEqual((status, headers["Connection"], body), (200, "close", b"hello"))
        self.run_until(lambda: stopped, timeout=2)
        self.assertLess(stopped[0] - began, 0.4 + 0.3)
        self.assertGreaterEqual(stopped[0] - began, 0.35)
        self.assertEqual(self.server.connections, set())
        self.assertEqual(sorted(type(err).__name__ for err in errors),
                         ["ConnectionClosedError", "ConnectionClosedError"])
        self.assert_fds_released(trickler, uploader, idle, hog, late)


    def test_a_client_gone_during_shutdown_is_not_waited_for(self):
        # Upstream Thor's test_graceful: an unanswered request whose client
        # then closes does not hold a graceful shutdown to its deadline.
        self.server.shutdown_timeout = 5
        errors = []
        self.handler = lambda exchange: exchange.on("error", errors.append)
        client = self.client()
        client.send(GET % b"never")
        self.run_until(lambda: self.exchanges)
        stopped = []
        self.server.on("stop", lambda: stopped.append(True))
        began = time.monotonic()
        self.server.graceful_shutdown()
        client.close()
        self.run_until(lambda: stopped, timeout=3)
        self.assertLess(time.monotonic() - began, 1.0)
        self.assertEqual([type(err) for err in errors], [error.ConnectionClosedError])
        self.assert_fds_released()


class ListenerErrorTest(HostileTestCase):
    """A listener that raises ends its exchange with an error event; the
    exception is reported, and the server goes on serving."""

    def setUp(self):
        HostileTestCase.setUp(self)
        self.caught = []
        self.loop.exception_handler = lambda loop, exc, where: self.caught.append(exc)
        self.errors = []

    def boom(self, *args):
        raise RuntimeError("boom")

    def check(self, client, status):
        self.run_until(lambda: client.eof)
        if status is None:
            self.assertNotIn(b"HTTP/1.1 500", client.data)
        else:
            self.assertTrue(client.data.startswith(b"HTTP/1.1 %d " % status), client.data)
        self.assertEqual([type(exc) for exc in self.caught], [RuntimeError])
        self.assertEqual(len(self.errors), 1, self.errors)
        err = self.errors[0]
        self.assertIsInstance(err, error.ListenerError)
        self.assertIsInstance(err, error.InternalServerError)
        self.assertIs(err.__cause__, self.caught[0])
        # The server still serves.
        self.handler = lambda exchange: exchange.on(
            "request_start", lambda *a: answer(exchange))
        other, [(code, _, body)] = self.exchange_raw(GET % b"next")
        self.assertEqual((code, body), (200, b"hello"))
        self.assert_fds_released(client, other)

    def raising(self, event, before=None):
        def handler(exchange):
            exchange.on("error", self.errors.append)
            if before is not None:
                before(exchange)
            exchange.on(event, self.boom)

        self.handler = handler

    def test_exchange_listener(self):
        def handler(exchange):
            exchange.on("error", self.errors.append)
            raise RuntimeError("boom")

        self.handler = handler
        client = self.client()
        client.send(GET % b"")
        self.check(client, 500)

    def test_request_start(self):
        self.raising("request_start")
        client = self.client()
        client.send(GET % b"")
        self.check(client, 500)

    def test_request_body(self):
        self.raising("request_body")
        client = self.client()
        client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        self.check(client, 500)

    def test_request_done(self):
        self.raising("request_done")
        client = self.client()
        client.send(GET % b"")
        self.check(client, 500)

    def test_request_done_after_the_response(self):
        # The response is complete: it is sent, then the connection closes.
        self.raising("request_done", lambda exchange: exchange.on(
            "request_start", lambda *a: answer(exchange)))
        client = self.client()
        client.send(GET % b"")
        self.check(client, 200)

    def test_pause(self):
        self.server.tcp_server.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)

        def start(exchange):
            def go(*args):
                exchange.response_start(200, "OK", [])
                for _ in range(64):
                    if exchange.finished:
                        break
                    exchange.response_body(b"z" * 65536)

            exchange.on("request_start", go)

        self.raising("pause", start)
        client = self.client(rcvbuf=4096)
        client.pause_reading(True)
        client.send(GET % b"")
        self.run_until(lambda: self.caught)
        client.pause_reading(False)
        self.check(client, 200)

    def test_error_listener_that_raises(self):
        calls = []

        def bad_error_listener(err):
            calls.append(err)
            raise RuntimeError("in error")

        def handler(exchange):
            exchange.on("error", bad_error_listener)
            exchange.on("request_start", self.boom)

        self.handler = handler
        client = self.client()
        client.send(GET % b"")
        self.run_until(lambda: client.eof)
        self.assertTrue(client.data.startswith(b"HTTP/1.1 500 "), client.data)
        self.assertEqual([str(exc) for exc in self.caught], ["boom", "in error"])
        self.assertEqual(len(calls), 1)
        self.assert_fds_released(client)

    def test_error_listener_that_raises_on_a_close(self):
        calls = []

        def bad_error_listener(err):
            calls.append(err)
            raise RuntimeError("in error")

        self.handler = lambda exchange: exchange.on("error", bad_error_listener)
        # The client's end is a close or a half-close: the answer that never
        # comes gets send_timeout (half_close off).
        self.server.send_timeout = 0.2
        client = self.client()
        client.send(GET % b"")
        self.run_until(lambda: self.exchanges)
        client.close()
        self.run_until(lambda: calls and not self.server.connections)
        self.assertEqual([type(err) for err in calls], [error.ConnectionClosedError])
        self.assertEqual([str(exc) for exc in self.caught], ["in error"])
        self.assert_fds_released()


class SlowClientTest(HostileTestCase):
    def test_slowloris_head_hits_request_timeout(self):
        # One byte every 0.02 s: each byte is progress, but the head as a
        # whole has request_timeout from its first byte.
        self.server.request_timeout = 0.3
        client = self.client()
        head = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Slow: " + b"s" * 200
        for n, byte in enumerate(head):
            self.loop.schedule(0.02 * n, client.send, bytes([byte]))
        began = time.monotonic()
        self.run_until(lambda: client.eof)
        # (Were each byte to move the deadline, the head would be complete,
        # and answered, after 4.5 s.)
        self.assertLess(time.monotonic() - began, 0.3 + 1.0)
        self.assertTrue(client.data.startswith(b"HTTP/1.1 408 "), client.data)
        self.assert_fds_released(client)

    def test_many_idle_connections(self):
        self.server.idle_timeout = 0.3
        socks = []
        try:
            for batch in range(4):
                for _ in range(250):
                    sock = socket.socket()
                    sock.setblocking(False)
                    sock.connect_ex(("127.0.0.1", self.server.port))
                    socks.append(sock)
                self.run_until(lambda: len(self.server.connections) == len(socks))
            began = time.monotonic()
            self.run_until(lambda: not self.server.connections)
            self.assertLess(time.monotonic() - began, 1.0)
        finally:
            for sock in socks:
                sock.close()
        self.assert_fds_released()


if __name__ == "__main__":
    unittest.main()
