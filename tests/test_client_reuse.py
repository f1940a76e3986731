"""HttpClient: how a pooled connection is checked before it is reused.

An idle connection handed to a request in a later pass of the loop than
the one it went idle in is asked whether anything waits to be read on it
(bytes, or the server's end of file). The question goes to poll() first;
only when that reports something does the client peek at the socket, so
the usual answer (nothing) costs no failed recv. These tests hold both
halves: nothing pending means the connection is reused without a peek,
and something pending that the loop has not read yet means it is not
given a request that could not be replayed.
"""

import os
import select
import socket
import subprocess
import sys
import textwrap
import threading
import unittest
from unittest import mock

import thor.http.client as client_module
from thor.http import error
from tests.test_http_client import OK, ClientTestCase, Recorder, answer_each


class _PeekCounter:
    """Stands in for the client's socket peek, counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, sock, size, flags):
        self.calls += 1
        return socket.socket.recv(sock, size, flags)


class ReuseCheckTests(ClientTestCase):
    def test_idle_connection_with_nothing_pending_is_reused_without_a_peek(self):
        server = self.raw(answer_each(OK))
        self.assertDone(self.fetch(server.url()))
        self.settle()  # later passes: the reuse below is not "this pass"
        counter = _PeekCounter()
        with mock.patch.object(client_module, "_peek", counter):
            # A POST cannot be replayed: its connection is always checked.
            rec = self.fetch(server.url(), method="POST", body=b"x",
                             headers=[("Content-Length", "1")])
            self.assertDone(rec)
            self.assertDone(self.fetch(server.url()))  # a GET, a later pass
        self.assertEqual(len(server.conns), 1)
        self.assertEqual(server.conns[0].heads, 3)
        self.assertEqual(counter.calls, 0)

    def _serve_then(self, after_response):
        """A server thread: accept, read a request head, answer OK, then
        ``after_response(conn)``. Returns (port, accepted, start)."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        listener.settimeout(5)  # a thread never left waiting: the test fails instead
        self.addCleanup(listener.close)
        accepted = []

        def serve(then):
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # no connection came (the test says what went wrong)
            accepted.append(conn)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            conn.sendall(OK)
            if then is not None:
                then(conn)

        def start(then=None):
            thread = threading.Thread(target=serve, args=(then,))
            thread.start()
            return thread

        return listener.getsockname()[1], accepted, start

    def test_idle_connection_with_bytes_not_yet_read_is_not_given_a_post(self):
        """Bytes (not an end of file) that the server sent after its
        response are in the kernel, and the loop has not run since: the
        check finds them, and the POST goes on a new connection."""
        self.client.retry_limit = 0  # a retry would hide the mistake
        self.client.read_timeout = 1  # the stray bytes as its answer: never done
        port, accepted, start = self._serve_then(None)
        url = "http://127.0.0.1:%d/" % port
        thread = start()
        self.assertDone(self.fetch(url))
        thread.join()
        self.settle()
        accepted[0].sendall(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        # Until the stray bytes are in the client's kernel buffer (asked
        # without running the loop, which would read them).
        conn = self.client._origins[("http", "127.0.0.1", port)].idle[0]
        self.assertTrue(self._pending(conn.tcp.socket))
        thread = start()
        rec = self.request(url, method="POST", body=b"x",
                           headers=[("Content-Length", "1")])
        self.run_until(lambda: rec.finished)
        thread.join()
        self.assertDone(rec)
        self.assertEqual(len(accepted), 2)
        for sock in accepted:
            sock.close()

    def _pending(self, sock):
        """Wait (in the kernel, up to 5 s) until ``sock`` has bytes to read."""
        readable, _, _ = select.select([sock], [], [], 5)
        return bool(readable)


class PerRequestPathTests(ClientTestCase):
    """The shortcuts of a request's usual path keep what the long way does."""

    def test_exchange_from_the_client_starts_as_one_made_directly(self):
        # HttpClient.exchange() sets up, inline, what __init__ does.
        made = self.client.exchange()
        direct = client_module.HttpClientExchange(self.client)
        self.assertIs(type(made), client_module.HttpClientExchange)
        self.assertEqual(vars(made), vars(direct))
        self.assertEqual((made._events, made._sink), (direct._events, direct._sink))

    @unittest.skipUnless(
        sys.version_info[:2] in ((3, 11), (3, 12)),
        "how instances share their attribute names is CPython 3.11/3.12's "
        "(3.13 lays instances out otherwise; 3.9's dicts are always their own)")
    def test_exchanges_set_their_usual_names_in_the_shared_table(self):
        # Many exchanges started before the first response, whose names
        # (res_status and the others) are set last: none gets a dict of
        # its own. In a fresh interpreter, as the table is the class's.
        script = textwrap.dedent("""
            import gc
            from thor.http.client import HttpClient
            client = HttpClient()
            made = [client.exchange() for _ in range(40)]
            for ex in made:
                ex.res_status = b"200"
                ex.res_version = b"1.1"
                ex.input_header_length = 10
                ex.input_transfer_length = 5
            print(sum(1 for ex in made for r in gc.get_referents(ex)
                      if type(r) is dict and "res_status" in r))
        """)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run([sys.executable, "-c", script], cwd=root, timeout=60,
                             capture_output=True, text=True, check=True).stdout
        self.assertEqual(out.strip(), "0")

    def test_request_from_response_done_takes_the_connection_unasked(self):
        server = self.raw(answer_each(OK))
        second = []

        def again(trailers):
            second.append(self.request(server.url()))

        first = self.client.exchange()
        rec = Recorder(first)
        first.on("response_done", again)
        counter = _PeekCounter()
        with mock.patch.object(client_module, "_peek", counter):
            first.request_start("GET", server.url(), [])
            first.request_done([])
            self.run_until(lambda: second and second[0].finished)
        self.assertDone(rec)
        self.assertDone(second[0])
        self.assertEqual(len(server.conns), 1)
        self.assertEqual(server.conns[0].heads, 2)
        conn = self.client._origins[("http", "127.0.0.1", server.port)].idle[0]
        self.assertIsNone(conn._poller)  # never asked the socket
        self.assertEqual(counter.calls, 0)
        self.assertFalse(conn._fresh)

    def test_raising_response_done_listener_leaves_the_connection_checked_later(self):
        server = self.raw(answer_each(OK))
        reported = []
        self.loop.exception_handler = lambda loop, exc, source: reported.append(exc)

        def boom(trailers):
            raise ValueError("boom")

        exchange = self.client.exchange()
        rec = Recorder(exchange)
        exchange.on("response_done", boom)
        exchange.request_start("GET", server.url(), [])
        exchange.request_done([])
        self.run_until(lambda: rec.finished)
        self.assertIsInstance(rec.error, error.ListenerError)
        self.assertEqual(len(reported), 1)
        pool = self.client._origins[("http", "127.0.0.1", server.port)]
        conn = pool.idle[0]
        self.assertFalse(conn._fresh)
        self.settle()
        self.assertDone(self.fetch(server.url()))  # a later pass: asked
        self.assertIsNotNone(conn._poller)
        self.assertEqual(server.conns[0].heads, 2)

    def test_bodiless_request_checks_its_trailers_and_can_then_finish(self):
        server = self.raw(answer_each(OK))
        exchange = self.client.exchange()
        rec = Recorder(exchange)
        exchange.request_start("GET", server.url(), [])
        with self.assertRaises(error.BadHeaderError):
            exchange.request_done([("X-Sum", "4\r\nInjected: 1")])
        exchange.request_done([("X-Sum", "4")])  # dropped: no chunked body
        self.run_until(lambda: rec.finished)
        self.assertDone(rec)
        data = server.conns[0].data
        self.assertTrue(data.startswith(b"GET / HTTP/1.1\r\n"), data)
        self.assertTrue(data.endswith(b"\r\n\r\n"), data)
        self.assertNotIn(b"Injected", data)
        self.assertNotIn(b"Transfer-Encoding", data)
        self.assertNotIn(b"X-Sum", data)


if __name__ == "__main__":
    import unittest

    unittest.main()
