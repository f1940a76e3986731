"""thor's HTTP client against hostile and broken peers, and against broken
applications: what an origin (or a listener) can make the client hold, and
that every such case ends, cleanly and promptly.

Each test reproduces its input exactly (a loopback server on the test's
loop writing raw bytes, or a subprocess) and checks that the client's
descriptors are back to where they were once it is over.
"""

import os
import socket
import subprocess
import sys
import threading
import time
import unittest

from thor.http import error
from tests.support import open_fds
from tests.test_http_client import (
    OK, ROOT, ClientTestCase, Recorder, answer_each,
)

READ_SIZE = 262144  # TcpConnection.read_size: the most one read takes


class HostileTestCase(ClientTestCase):
    def setUp(self):
        ClientTestCase.setUp(self)
        self.fd_base = open_fds()
        self.servers = []

    def raw(self, script=None, **kw):
        server = ClientTestCase.raw(self, script, **kw)
        self.servers.append(server)
        return server

    def assertFdsBack(self):
        """Once the servers and the client's pool are closed, the process
        holds no more descriptors than before the test."""
        for server in self.servers:
            server.close()
        self.client.close()
        if self.fd_base is not None:
            self.run_until(lambda: open_fds() <= self.fd_base, timeout=2)

    def catch(self):
        """Record what reaches the loop's exception handler, and the order
        of reports and events, in ``self.log``."""
        self.log = []
        self.loop.exception_handler = lambda loop, exc, where: self.log.append(("caught", exc))

    def watch(self, exchange, *events):
        """Record ``events`` of ``exchange`` in ``self.log`` (one listener
        each: the single-listener path)."""
        for event in events:
            exchange.on(event, lambda *args, event=event: self.log.append((event,) + args))


# -- B1: a listener that raises --------------------------------------------------------


class Boom(Exception):
    pass


def boom(*args):
    raise Boom("application bug")


INTERIM_THEN_OK = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK


class ListenerErrorTests(HostileTestCase):
    def check_ended(self, exchange, event):
        """The exception was reported, then error(ListenerError) came with
        it as the cause, and nothing more."""
        self.run_until(lambda: any(entry[0] == "error" for entry in self.log))
        self.settle()
        kinds = [entry[0] for entry in self.log]
        self.assertEqual(kinds[-2:], ["caught", "error"], self.log)
        self.assertEqual(kinds.count("error"), 1, self.log)
        caught, err = self.log[-2][1], self.log[-1][1]
        self.assertIsInstance(caught, Boom)
        self.assertIsInstance(err, error.ListenerError)
        self.assertIs(err.__cause__, caught)
        self.assertIn(event, err.detail)
        self.assertNotIn("response_done", kinds[kinds.index("caught"):])

    def test_each_response_listener_alone(self):
        # One listener on the event: the client's fast path.
        for event in ("response_nonfinal", "response_start", "response_body", "response_done"):
            with self.subTest(event=event):
                self.catch()
                server = self.raw(answer_each(INTERIM_THEN_OK))
                exchange = self.client.exchange()
                exchange.on(event, boom)
                self.watch(exchange, "error")
                exchange.request_start("GET", server.url(), [])
                exchange.request_done([])
                self.check_ended(exchange, event)
                if event != "response_done":
                    # Cut off at an unknown point: the connection is closed.
                    self.run_until(lambda: server.conns[0].closed)
                # The pool carries on.
                self.loop.exception_handler = self.recorder
                self.assertDone(self.fetch(server.url()))
        self.assertFdsBack()

    def test_second_listener(self):
        # Several listeners: the emit path; the first one ran.
        self.catch()
        server = self.raw(answer_each(INTERIM_THEN_OK))
        exchange = self.client.exchange()
        self.watch(exchange, "response_start")
        exchange.on("response_start", boom)
        self.watch(exchange, "response_done", "error")
        exchange.request_start("GET", server.url(), [])
        exchange.request_done([])
        self.check_ended(exchange, "response_start")
        self.assertEqual(self.log[0][0], "response_start")
        self.assertFdsBack()

    def test_pause_listener(self):
        self.catch()
        server = self.raw()
        server.server.on("connect", lambda tcp: tcp.pause(True))  # reads nothing
        exchange = self.client.exchange()
        exchange.on("pause", boom)
        self.watch(exchange, "error")
        exchange.request_start("POST", server.url(), [])
        exchange.request_body(b"x" * 70000)  # past the pre-connect buffer
        self.check_ended(exchange, "pause")
        self.assertFdsBack()

    def test_error_listener_that_raises_is_reported_once(self):
        self.catch()
        server = self.raw(answer_each(OK))
        exchange = self.client.exchange()
        exchange.on("response_start", boom)
        exchange.on("error", lambda err: self.log.append(("error", err)))
        exchange.on("error", boom)
        exchange.request_start("GET", server.url(), [])
        exchange.request_done([])
        self.run_until(lambda: len(self.log) >= 3)
        self.settle()
        self.assertEqual([entry[0] for entry in self.log], ["caught", "error", "caught"])
        self.assertIsInstance(self.log[1][1], error.ListenerError)
        self.assertFdsBack()

    def test_error_listener_raising_on_connect_error(self):
        self.catch()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        exchange = self.client.exchange()
        exchange.on("error", lambda err: self.log.append(("error", err)))
        exchange.on("error", boom)
        exchange.request_start("GET", "http://127.0.0.1:%d/" % port, [])
        exchange.request_done([])
        self.run_until(lambda: len(self.log) >= 2)
        self.settle()
        self.assertEqual([entry[0] for entry in self.log], ["error", "caught"])
        self.assertIsInstance(self.log[0][1], error.ConnectError)
        self.assertFdsBack()


# -- B3: the queue and the send side ------------------------------------------------


class QueueTimeoutTests(HostileTestCase):
    def test_queued_exchange_times_out(self):
        self.client.max_server_conn = 1
        self.client.queue_timeout = 0.3
        server = self.raw()  # never answers
        first = self.request(server.url())
        started = time.monotonic()
        second = self.request(server.url())
        third = self.request(server.url())
        self.run_until(lambda: second.finished and third.finished, timeout=3)
        self.assertGreaterEqual(time.monotonic() - started, 0.29)
        self.assertError(second, error.QueueTimeoutError)
        self.assertError(third, error.QueueTimeoutError)
        self.assertIsInstance(second.error, error.ConnectTimeoutError)
        self.assertEqual(first.events, [])  # it has its connection
        first.exchange.abort()
        self.assertFdsBack()

    def test_served_in_time_is_not_failed(self):
        self.client.max_server_conn = 1
        self.client.queue_timeout = 0.3
        server = self.raw(answer_each(OK))
        recs = [self.request(server.url()) for _ in range(5)]
        self.run_until(lambda: all(rec.finished for rec in recs))
        for rec in recs:
            self.assertDone(rec)
        # Past the deadline of every one of them: nothing more comes.
        deadline = time.monotonic() + 0.4
        marker = []
        self.loop.schedule(0.4, marker.append, 1)
        self.run_until(lambda: marker)
        self.assertGreaterEqual(time.monotonic(), deadline - 0.05)
        for rec in recs:
            self.assertDone(rec)
        self.assertFdsBack()

    def test_expiry_comes_from_the_loop(self):
        # Even with no time to wait, the error is not emitted inside the
        # application's own request_start / request_done call.
        self.client.max_server_conn = 1
        self.client.queue_timeout = 0
        server = self.raw()  # never answers
        first = self.request(server.url())
        second = self.request(server.url())
        self.assertEqual(second.events, [])
        self.run_until(lambda: second.finished)
        self.assertError(second, error.QueueTimeoutError)
        self.assertEqual(first.events, [])
        first.exchange.abort()
        self.assertFdsBack()

    def test_aborted_while_queued_leaves_the_queue(self):
        self.client.max_server_conn = 1
        self.client.queue_timeout = 0.2
        server = self.raw()
        first = self.request(server.url())
        second = self.request(server.url())
        second.exchange.abort()
        origin = next(iter(self.client._origins.values()))
        self.assertEqual(list(origin.queue), [])
        self.assertIsNone(origin.timer)  # nothing waits: no queue timer
        server.script = answer_each(OK)
        self.run_until(lambda: server.conns)
        server.script(server.conns[0])
        self.run_until(lambda: first.finished)
        self.assertDone(first)
        self.assertEqual(second.events, [])
        self.assertEqual(server.requests, 1)
        self.assertFdsBack()

    def test_none_waits(self):
        self.client.max_server_conn = 1
        self.client.queue_timeout = None
        server = self.raw()
        first = self.request(server.url())
        second = self.request(server.url())
        self.run_until(lambda: server.conns)
        self.assertEqual(self.loop.scheduled_events() and [
            event for _, event in self.loop.scheduled_events()
            if "_queue_timer" in repr(event)], [])
        server.script = answer_each(OK)
        server.script(server.conns[0])
        self.run_until(lambda: second.finished)
        self.assertDone(first)
        self.assertDone(second)
        self.assertFdsBack()


class SendTimeoutTests(HostileTestCase):
    def blocked_post(self, server):
        """A POST whose body the server does not read, written until the
        connection's write side is full."""
        exchange = self.client.exchange()
        rec = Recorder(exchange)
        exchange.request_start("POST", server.url(), [])
        self.run_until(lambda: exchange.conn is not None)
        chunk = b"x" * READ_SIZE
        for _ in range(400):  # 100 MiB at most: kernel buffers are smaller
            exchange.request_body(chunk)
            if ("pause", True) in rec.events:
                break
        self.assertIn(("pause", True), rec.events)
        return rec

    def test_server_reads_nothing(self):
        self.client.send_timeout = 0.3
        server = self.raw()
        server.server.on("connect", lambda tcp: tcp.pause(True))  # reads nothing
        rec = self.blocked_post(server)
        started = time.monotonic()
        self.run_until(lambda: rec.finished, timeout=3)
        self.assertGreaterEqual(time.monotonic() - started, 0.29)
        self.assertError(rec, error.SendTimeoutError)
        self.assertEqual(self.client._origins, {})  # the connection is closed
        self.assertFdsBack()

    def test_server_reading_slowly_is_progress(self):
        # The server takes one read every 0.1 s: never 0.3 s without
        # progress, though the body stays blocked for much longer.
        self.client.send_timeout = 0.3
        server = self.raw()
        tcps = []

        def accepted(tcp):
            tcp.pause(True)
            tcp.on("data", lambda data: tcp.pause(True))  # one read per burst
            tcps.append(tcp)

        server.server.on("connect", accepted)

        def burst():
            for tcp in tcps:
                tcp.pause(False)
            bursts.append(self.loop.schedule(0.1, burst))

        bursts = [self.loop.schedule(0.1, burst)]
        self.addCleanup(lambda: bursts[-1].delete())
        rec = self.blocked_post(server)
        # Well past the pause, written regardless: still the server's
        # progress that counts, not the size of the queue.
        rec.exchange.request_body(b"y" * (4 * 1024 * 1024))
        marker = []
        self.loop.schedule(1.0, marker.append, 1)
        self.run_until(lambda: marker or rec.finished, timeout=3)
        self.assertEqual(rec.names, ["pause"])  # no error
        rec.exchange.abort()
        self.assertFdsBack()

    def test_none_waits(self):
        self.client.send_timeout = None
        server = self.raw()
        server.server.on("connect", lambda tcp: tcp.pause(True))
        rec = self.blocked_post(server)
        marker = []
        self.loop.schedule(0.4, marker.append, 1)
        self.run_until(lambda: marker)
        self.assertEqual(rec.names, ["pause"])
        rec.exchange.abort()
        self.assertFdsBack()


# -- B4, B5: what an origin can make the client hold -----------------------------------


class EndlessWriter:
    """A server connection that writes ``head`` and then ``chunk`` again and
    again, as fast as the client reads (and never more than its write
    buffer holds): an endless body."""

    def __init__(self, server, head, chunk):
        self.head = head
        self.chunk = chunk
        self.written = 0
        self.tcps = []
        server.server.on("connect", self.accepted)

    def accepted(self, tcp):
        self.tcps.append(tcp)
        self.out_paused = False
        tcp.on("pause", self.paused)
        tcp.on("data", lambda data: self.start(tcp) if b"\r\n\r\n" in data else None)

    def start(self, tcp):
        tcp.write(self.head)
        self.fill(tcp)

    def paused(self, paused):
        self.out_paused = paused
        if not paused:
            self.fill(self.tcps[-1])

    def fill(self, tcp):
        while not self.out_paused and tcp.tcp_connected:
            tcp.write(self.chunk)
            self.written += len(self.chunk)


class HeldResponseTests(HostileTestCase):
    def test_res_body_pause_holds_back_a_large_response(self):
        server = self.raw()
        writer = EndlessWriter(
            server, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 40), b"z" * 65536)
        exchange = self.client.exchange()
        rec = Recorder(exchange)
        exchange.on("response_start", lambda *args: exchange.res_body_pause(True))
        exchange.request_start("GET", server.url(), [])
        exchange.request_done([])
        self.run_until(lambda: "response_start" in rec.names)
        # The server fills the socket buffers, then its own write side
        # stops: nothing more is read by the client, whatever it sends.
        self.run_until(lambda: writer.out_paused)
        written = writer.written
        self.settle()
        parser = exchange.conn.parser
        held = parser.buffered
        self.assertLessEqual(held, READ_SIZE)
        self.assertEqual(rec.body, b"")
        self.settle()
        self.assertEqual(writer.written, written)
        self.assertEqual(parser.buffered, held)
        # Resumed: it flows again.
        exchange.res_body_pause(False)
        self.run_until(lambda: len(rec.body) > written)
        exchange.abort()
        self.assertFdsBack()

    def test_endless_chunked_body_with_a_pausing_application(self):
        server = self.raw()
        writer = EndlessWriter(
            server, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"4000\r\n" + b"c" * 0x4000 + b"\r\n")
        exchange = self.client.exchange()
        received = []

        def body(chunk):
            received.append(len(chunk))
            if sum(received) > 1024 * 1024:
                exchange.pause(True)

        exchange.on("response_body", body)
        exchange.request_start("GET", server.url(), [])
        exchange.request_done([])
        self.run_until(lambda: sum(received) > 1024 * 1024)
        self.run_until(lambda: writer.out_paused)
        total = sum(received)
        marker = []
        self.loop.schedule(0.3, marker.append, 1)
        self.run_until(lambda: marker)
        self.assertEqual(sum(received), total)
        self.assertLessEqual(exchange.conn.parser.buffered, READ_SIZE)
        exchange.abort()
        self.assertFdsBack()

    def test_head_trickled_a_byte_at_a_time(self):
        # Every byte arrives well within read_timeout; the head as a whole
        # does not. read_timeout bounds the head, also after an interim
        # response.
        self.client.read_timeout = 0.4
        head = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"s" * 200 + b"\r\n\r\n"
        for before in (b"", b"HTTP/1.1 102 Processing\r\n\r\n"):
            with self.subTest(before=before):
                server = self.raw()
                timers = []

                def trickle(conn, at):
                    if at < len(head) and not conn.closed:
                        conn.write(head[at:at + 1])
                        timers.append(self.loop.schedule(0.02, trickle, conn, at + 1))

                def script(conn, before=before, timers=timers):
                    if conn.heads == 1 and not timers:
                        conn.write(before)
                        trickle(conn, 0)

                server.script = script
                self.addCleanup(lambda timers=timers: timers and timers[-1].delete())
                started = time.monotonic()
                rec = self.fetch(server.url())
                self.assertError(rec, error.ReadTimeoutError)
                self.assertIn("head", rec.error.detail)
                self.assertLess(time.monotonic() - started, 2)
                self.run_until(lambda: server.conns[0].closed)
        self.assertFdsBack()

    def test_interim_responses_are_progress(self):
        # A server that sends 102 Processing while it works (each whole
        # interim response restarts read_timeout), then answers.
        self.client.read_timeout = 0.3
        server = self.raw()
        timers = []

        def keep_alive(conn, left):
            if conn.closed:
                return
            if left:
                conn.write(b"HTTP/1.1 102 Processing\r\n\r\n")
                timers.append(self.loop.schedule(0.1, keep_alive, conn, left - 1))
            else:
                conn.write(OK)

        server.script = lambda conn: keep_alive(conn, 6) if conn.heads == 1 and not timers else None
        self.addCleanup(lambda: timers and timers[-1].delete())
        rec = self.fetch(server.url())
        self.assertDone(rec)
        self.assertEqual(rec.names.count("response_nonfinal"), 6)
        self.assertFdsBack()

    def test_origin_that_never_answers(self):
        self.client.read_timeout = 0.3
        server = self.raw()
        rec = self.fetch(server.url())
        self.assertError(rec, error.ReadTimeoutError)
        self.run_until(lambda: server.conns[0].closed)
        self.assertFdsBack()

    def test_interim_response_flood(self):
        server = self.raw(answer_each(b"HTTP/1.1 102 Processing\r\n\r\n" * 150 + OK))
        rec = self.fetch(server.url())
        self.assertError(rec, error.TooManyMsgsError)
        self.assertEqual(rec.names.count("response_nonfinal"), 100)
        self.run_until(lambda: server.conns[0].closed)
        self.assertFdsBack()

    def test_interim_responses_below_the_cap(self):
        server = self.raw(answer_each(b"HTTP/1.1 102 Processing\r\n\r\n" * 100 + OK))
        rec = self.fetch(server.url())
        self.assertDone(rec)
        self.assertEqual(rec.names.count("response_nonfinal"), 100)
        self.assertFdsBack()


# -- B2: the command line and a closed pipe -------------------------------------------------


class CommandLinePipeTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.listener = socket.socket()
        cls.listener.bind(("127.0.0.1", 0))
        cls.listener.listen(8)
        cls.port = cls.listener.getsockname()[1]
        cls.thread = threading.Thread(target=cls.serve, daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.listener.close()

    @classmethod
    def serve(cls):
        """Answer each connection with a body far larger than a pipe holds
        (written until the client goes away)."""
        while True:
            try:
                conn, _ = cls.listener.accept()
            except OSError:
                return
            threading.Thread(target=cls.answer, args=(conn,), daemon=True).start()

    @staticmethod
    def answer(conn):
        block = b"b" * 65536
        with conn:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    got = conn.recv(4096)
                    if not got:
                        return
                    data += got
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 30))
                for _ in range(4096):  # 256 MiB at most
                    conn.sendall(block)
            except OSError:
                pass

    def run_closed_early(self, *args):
        env = dict(os.environ, PYTHONPATH=ROOT)
        proc = subprocess.Popen(
            [sys.executable, "-m", "thor.http.client"] + list(args)
            + ["http://127.0.0.1:%d/big" % self.port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT,
        )
        self.addCleanup(proc.stderr.close)
        first = proc.stdout.read(10)  # as `| head -c 10` does
        proc.stdout.close()
        try:
            status = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.fail("the command line hangs once its stdout is closed")
        return first, status, proc.stderr.read()

    def test_body_into_a_closed_pipe(self):
        first, status, stderr = self.run_closed_early()
        self.assertEqual(first, b"b" * 10)
        self.assertEqual(status, 141)  # as a shell reports cat's (128 + SIGPIPE)
        self.assertEqual(stderr, b"")

    def test_headers_into_a_closed_pipe(self):
        first, status, stderr = self.run_closed_early("-i")
        self.assertEqual(first, b"HTTP/1.1 2")
        self.assertEqual(status, 141)
        self.assertEqual(stderr, b"")


if __name__ == "__main__":
    unittest.main()
