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

import select
import socket
import threading
from unittest import mock

import thor.http.client as client_module
from tests.test_http_client import OK, ClientTestCase, answer_each


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


if __name__ == "__main__":
    import unittest

    unittest.main()
