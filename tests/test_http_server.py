"""HttpServer over real loopback sockets, driven by raw bytes and by
http.client.

Raw clients are non-blocking sockets registered with the test's loop, so
the loop wakes when they receive; http.client runs in a thread while the
loop runs in the test thread. No sleeps: the loop runs until a condition
holds, under a deadline.
"""

import gc
import http.client
import io
import socket
import ssl
import threading
import time
import tracemalloc
import unittest
from unittest import mock
import weakref

import thor.loop
from thor.http import error
from thor.http.server import HttpServer
from thor.tcp import TcpConnection
from tests.support import LoopTestCase, has_ipv6, make_cert


class RawClient(thor.loop.EventSource):
    """A raw TCP client on the test loop: send() queues bytes, what arrives
    is kept in ``data`` (or only counted, with keep=False); ``eof`` once the
    server closed."""

    def __init__(self, loop, port, host="127.0.0.1", keep=True, family=socket.AF_INET,
                 rcvbuf=None):
        thor.loop.EventSource.__init__(self, loop)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf:
            # A small window, so that the kernel does not absorb what the
            # server sends while the test does not read.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, port))
        self.sock.setblocking(False)
        self.data = bytearray()
        self.received = 0
        self.keep = keep
        self.eof = False
        self.reset = False
        self.reading = True
        self._out = bytearray()
        self.register_fd(self.sock.fileno(), "fd_readable")

    def send(self, data):
        self._out += data
        self._try_send()

    def _try_send(self):
        while self._out:
            try:
                sent = self.sock.send(self._out)
            except BlockingIOError:
                break
            except OSError:
                self._out.clear()
                break
            del self._out[:sent]
        if self._out:
            self.event_add("fd_writable")
        else:
            self.event_del("fd_writable")

    def pause_reading(self, paused):
        self.reading = not paused
        if paused:
            self.event_del("fd_readable")
        elif not self.eof:
            self.event_add("fd_readable")

    def _fd_ready(self, mask):
        if mask & thor.loop.WRITE:
            self._try_send()
        if self.reading and mask & (thor.loop.READ | thor.loop.HUP | thor.loop.ERROR):
            try:
                chunk = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            except OSError:
                self.reset = True
                chunk = b""
            if chunk:
                self.received += len(chunk)
                if self.keep:
                    self.data += chunk
            else:
                self.eof = True
                self.unregister_fd()

    def half_close(self):
        """Shut the sending side; everything send() queued must be sent."""
        if self._out:
            raise AssertionError("half_close() with bytes still queued")
        self.sock.shutdown(socket.SHUT_WR)

    @property
    def unsent(self):
        return len(self._out)

    def close(self):
        if not self.eof:
            self.unregister_fd()
        self.sock.close()


class _Unclosable(io.BufferedReader):
    """http.client closes a response's file when the body is read; several
    responses are read from this one."""

    def close(self):
        pass


class _FakeSock:
    def __init__(self, f):
        self.f = f

    def makefile(self, *args, **kw):
        return self.f


def parse_responses(data, methods):
    """[(status, HTTPMessage, body)] for each response in ``data``; the
    request methods tell http.client which ones have no body."""
    f = _Unclosable(io.BytesIO(bytes(data)))
    out = []
    for method in methods:
        response = http.client.HTTPResponse(_FakeSock(f), method=method)
        response.begin()
        out.append((response.status, response.msg, response.read()))
    return out


def hello(exchange):
    """The seed's hello world, with the path echoed in a header."""

    def request_start(method, uri, headers):
        exchange.response_start(200, "OK", [("Content-Type", "text/plain"), ("X-Uri", uri)])
        exchange.response_body("Hello, world!")
        exchange.response_done([])

    exchange.on("request_start", request_start)


class ServerTestCase(LoopTestCase):
    host = "127.0.0.1"

    def setUp(self):
        LoopTestCase.setUp(self)
        self.exchanges = []
        self.handler = hello
        self.server = self.make_server()

    def make_server(self, **kw):
        server = HttpServer(self.host, 0, self.loop, **kw)
        server.on("exchange", self._on_exchange)
        self.addCleanup(server.close)
        return server

    def _on_exchange(self, exchange):
        self.exchanges.append(exchange)
        self.handler(exchange)

    def on_request_start(self, start):
        """Answer each request from ``start(exchange, method, uri, headers)``."""
        self.handler = lambda exchange: exchange.on(
            "request_start", lambda *args: start(exchange, *args))

    def run_ready_passes(self, passes):
        """Run up to ``passes`` passes while work is ready, without waiting
        for timers or I/O: for checking that nothing moves."""
        for _ in range(passes):
            if self.loop._ready:
                self.loop._run_once()

    def client(self, **kw):
        client = RawClient(self.loop, self.server.port, **kw)
        self.addCleanup(client.close)
        return client

    def exchange_raw(self, request, methods=("GET",), close=False):
        """Send ``request`` on a new connection; wait for len(methods)
        responses (and the close, when ``close``); return them parsed."""
        client = self.client()
        client.send(request)
        if close:
            self.run_until(lambda: client.eof)
        else:
            self.run_until(lambda: _complete(client.data, methods))
        return client, parse_responses(client.data, methods)

    def in_thread(self, func):
        """Run ``func`` in a thread while the loop runs; return its result."""
        result = []

        def target():
            try:
                result.append((True, func()))
            except BaseException as exc:  # reported in the test thread
                result.append((False, exc))

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self.run_until(lambda: result, timeout=10)
        thread.join()
        ok, value = result[0]
        if not ok:
            raise value
        return value


def _complete(data, methods):
    try:
        parse_responses(data, methods)
    except (http.client.HTTPException, ValueError, OSError):
        return False
    return True


GET = b"GET /%s HTTP/1.1\r\nHost: example.com\r\n\r\n"


class BasicTest(ServerTestCase):
    def test_hello_via_http_client_keep_alive(self):
        port = self.server.port

        def client():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            out = []
            for path in ("/a", "/b", "/c"):
                conn.request("GET", path)
                response = conn.getresponse()
                out.append((response.status, response.getheader("X-Uri"), response.read(),
                            response.getheader("Transfer-Encoding")))
            sock = conn.sock
            conn.close()
            return out, sock

        out, sock = self.in_thread(client)
        self.assertEqual(out, [
            (200, "/a", b"Hello, world!", "chunked"),
            (200, "/b", b"Hello, world!", "chunked"),
            (200, "/c", b"Hello, world!", "chunked"),
        ])
        self.assertIsNotNone(sock)  # one connection for all three
        self.assertEqual(len(self.exchanges), 3)
        self.assertEqual(len({ex.connection for ex in self.exchanges}), 1)

    def test_post_via_http_client(self):
        seen = []

        def handler(exchange):
            body = []
            exchange.on("request_body", body.append)

            def done(trailers):
                seen.append((exchange.method, exchange.uri, exchange.req_version, b"".join(body)))
                exchange.response_start(201, "Created", [("Content-Length", "2")])
                exchange.response_body(b"ok")
                exchange.response_done()

            exchange.on("request_done", done)

        self.handler = handler
        port = self.server.port

        def client():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", "/p?q=1", body=b"x" * 100000)
            response = conn.getresponse()
            result = response.status, response.read()
            conn.request("PUT", "/chunked", body=iter([b"ab", b"cd"]),
                         encode_chunked=True)
            response = conn.getresponse()
            second = response.status, response.read()
            conn.close()
            return result, second

        self.assertEqual(self.in_thread(client), ((201, b"ok"), (201, b"ok")))
        self.assertEqual(seen, [
            (b"POST", b"/p?q=1", b"1.1", b"x" * 100000),
            (b"PUT", b"/chunked", b"1.1", b"abcd"),
        ])

    def test_request_attributes_and_headers(self):
        client, [(status, headers, body)] = self.exchange_raw(
            b"GET /x?y HTTP/1.1\r\nHost: h\r\nFoo: bar\r\n  baz\r\nFoo: two\r\n\r\n"
        )
        self.assertEqual(status, 200)
        exchange = self.exchanges[0]
        self.assertEqual((exchange.method, exchange.uri, exchange.req_version),
                         (b"GET", b"/x?y", b"1.1"))
        # obs-fold unfolded; one tuple per field line, in order.
        self.assertEqual(exchange.req_hdrs,
                         [(b"Host", b" h"), (b"Foo", b" bar baz"), (b"Foo", b" two")])
        self.assertTrue(exchange.finished)
        self.assertIn("Date", headers)
        self.assertTrue(bytes(client.data).startswith(b"HTTP/1.1 200 OK\r\n"))

    def test_request_trailers(self):
        trailers = []

        def handler(exchange):
            exchange.on("request_done", trailers.append)
            hello(exchange)

        self.handler = handler
        self.exchange_raw(
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nContent-Length: 5\r\n\r\n"
        )
        self.run_until(lambda: trailers)
        self.assertEqual(trailers, [[(b"X-Sum", b" 1")]])  # Content-Length not applied

    def test_response_trailers(self):
        def start(exchange, *args):
            exchange.response_start(200, "OK", [("Trailer", "X-Sum")])
            exchange.response_body(b"abc")
            exchange.response_done([("X-Sum", "1"), ("Content-Length", "9")])

        self.on_request_start(start)
        client = self.client()
        client.send(GET % b"")
        self.run_until(lambda: client.data.endswith(b"\r\n0\r\nX-Sum: 1\r\n\r\n"))
        self.assertNotIn(b"Trailer:", client.data)
        self.assertIn(b"3\r\nabc\r\n", client.data)

    def test_str_and_bytes_arguments(self):
        def start(exchange, *args):
            exchange.response_start(b"200", b"OK", [(b"X-A", b" a"), ("X-B", "\tb ")])
            exchange.response_body(bytearray(b"1"))
            exchange.response_body(memoryview(b"2"))
            exchange.response_body("3")
            exchange.response_done()

        self.on_request_start(start)
        client, [(status, headers, body)] = self.exchange_raw(GET % b"")
        self.assertEqual((status, headers["X-A"], headers["X-B"], body), (200, "a", "b", b"123"))


class IterableHeadersTest(ServerTestCase):
    def test_response_headers_from_any_iterable(self):
        fields = [("X-A", "1"), ("Connection", "X-B"), ("X-B", "2"), ("Content-Length", "2")]

        def request_start(exchange, method, uri, headers):
            exchange.response_start(200, "OK", (field for field in fields))
            exchange.response_body(b"ok")
            exchange.response_done()

        self.on_request_start(request_start)
        for _ in range(2):  # uncached, then cached
            client, responses = self.exchange_raw(GET % b"")
            [(status, msg, body)] = responses
            self.assertEqual((status, msg["X-A"], msg["X-B"], msg["Content-Length"], body),
                             (200, "1", None, "2", b"ok"))

    def test_connection_tokens_with_odd_spacing_case_and_empty_members(self):
        # thor.http.headers.field_tokens: " ,X-B ,, CLOSE\t" names X-B and
        # asks for a close.
        fields = [("X-A", "1"), ("Connection", " ,X-B ,, CLOSE\t"), ("X-B", "2"),
                  ("Content-Length", "2")]

        def request_start(exchange, method, uri, headers):
            exchange.response_start(200, "OK", fields)
            exchange.response_body(b"ok")
            exchange.response_done()

        self.on_request_start(request_start)
        client, [(status, msg, body)] = self.exchange_raw(GET % b"")
        self.assertEqual((status, msg["X-A"], msg["X-B"], msg["Connection"], body),
                         (200, "1", None, "close", b"ok"))
        self.run_until(lambda: client.eof)


class ConnectionTest(ServerTestCase):
    def test_keep_alive_raw(self):
        client = self.client()
        client.send(GET % b"1")
        self.run_until(lambda: _complete(client.data, ["GET"]))
        client.send(GET % b"2")
        self.run_until(lambda: _complete(client.data, ["GET"] * 2))
        responses = parse_responses(client.data, ["GET"] * 2)
        self.assertEqual([r[1]["X-Uri"] for r in responses], ["/1", "/2"])
        self.assertFalse(client.eof)
        self.assertNotIn("Connection", responses[0][1])

    def test_connection_close_from_client(self):
        client, [(status, headers, body)] = self.exchange_raw(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" + GET % b"ignored",
            close=True,
        )
        self.assertEqual((status, headers["Connection"], body), (200, "close", b"Hello, world!"))
        self.assertEqual(len(self.exchanges), 1)

    def test_close_from_application(self):
        for way in ("argument", "header"):
            def handler(exchange, way=way):
                def start(*args):
                    headers = [("Connection", "close")] if way == "header" else []
                    exchange.response_start(200, "OK", headers + [("Content-Length", "1")])
                    exchange.response_body(b"x")
                    exchange.response_done([], close=way == "argument")

                exchange.on("request_start", start)

            self.handler = handler
            client, [(status, headers, body)] = self.exchange_raw(
                GET % b"" + GET % b"more", close=True
            )
            self.assertEqual(body, b"x")
            if way == "header":
                self.assertEqual(headers["Connection"], "close")
            self.assertNotIn(b"/more", client.data)

    def test_http10_keep_alive(self):
        def start(exchange, *args):
            exchange.response_start(200, "OK", [("Content-Length", "2")])
            exchange.response_body(b"ok")
            exchange.response_done()

        self.on_request_start(start)
        client = self.client()
        request = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        client.send(request)
        self.run_until(lambda: _complete(client.data, ["GET"]))
        client.send(request)
        self.run_until(lambda: _complete(client.data, ["GET"] * 2))
        for status, headers, body in parse_responses(client.data, ["GET"] * 2):
            self.assertEqual((status, headers["Connection"], body), (200, "keep-alive", b"ok"))
        self.assertFalse(client.eof)
        self.assertEqual(self.exchanges[0].req_version, b"1.0")

    def test_http10_without_keep_alive_closes(self):
        client, [(status, headers, body)] = self.exchange_raw(
            b"GET / HTTP/1.0\r\n\r\n", close=True
        )
        # No Content-Length from the application: delimited by the close.
        self.assertEqual((status, body), (200, b"Hello, world!"))
        self.assertNotIn("Transfer-Encoding", headers)
        self.assertNotIn("Content-Length", headers)
        self.assertEqual(headers["Connection"], "close")

    def test_http10_keep_alive_without_length_is_close_delimited(self):
        client, [(status, headers, body)] = self.exchange_raw(
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", close=True
        )
        self.assertEqual((status, body, headers["Connection"]), (200, b"Hello, world!", "close"))

    def test_pipelining_in_order(self):
        # The first response is made later than the second could be.
        def start(exchange, method, uri, headers):
            def answer():
                exchange.response_start(200, "OK", [("X-Uri", uri)])
                exchange.response_body(uri)
                exchange.response_done()

            if uri == b"/0":
                self.loop.schedule(0.01, answer)
            else:
                answer()

        self.on_request_start(start)
        n = 50
        methods = ["HEAD" if i % 7 == 3 else "GET" for i in range(n)]
        request = b"".join(
            b"%s /%d HTTP/1.1\r\nHost: h\r\n\r\n" % (m.encode(), i) for i, m in enumerate(methods)
        )
        client, responses = self.exchange_raw(request, methods)
        self.assertEqual([r[1]["X-Uri"] for r in responses], ["/%d" % i for i in range(n)])
        self.assertEqual(
            [r[2] for r in responses],
            [b"" if m == "HEAD" else b"/%d" % i for i, m in enumerate(methods)],
        )

    def test_pipelined_client_that_does_not_read_is_not_buffered(self):
        # 20,000 requests, responses not read: the server stops answering
        # once its output backs up, and stops reading once its input does.
        n = 20000

        def handler(exchange):
            exchange.connection.tcp.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            hello(exchange)

        self.handler = handler
        client = self.client(keep=False, rcvbuf=4096)
        client.pause_reading(True)
        client.send(b"".join(GET % b"%d" % i for i in range(n)))
        self.run_until(lambda: self.server.connections)
        conn = next(iter(self.server.connections))
        self.run_until(lambda: conn._await_drain and conn._reading_paused)
        answered = len(self.exchanges)
        # Run a while longer: nothing moves.
        self.run_ready_passes(20)
        self.assertEqual(len(self.exchanges), answered)
        self.assertLess(answered, n)
        self.assertLess(conn.tcp.write_buffered, 2 * conn.tcp.write_high)
        client.keep = True
        client.pause_reading(False)
        self.run_until(lambda: client.data.count(b"Hello, world!") == n, timeout=30)
        tags = [int(line.split(b"/")[1]) for line in client.data.split(b"\r\n")
                if line.startswith(b"X-Uri: ")]
        self.assertEqual(tags, list(range(n)))

    def test_expect_100_continue_when_body_is_read(self):
        got = []

        def handler(exchange):
            exchange.on("request_body", got.append)

            def done(trailers):
                exchange.response_start(200, "OK", [("Content-Length", "0")])
                exchange.response_done()

            exchange.on("request_done", done)

        self.handler = handler
        client = self.client()
        client.send(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                    b"Content-Length: 4\r\n\r\n")
        self.run_until(lambda: client.data)
        self.assertEqual(bytes(client.data), b"HTTP/1.1 100 Continue\r\n\r\n")
        client.send(b"body")
        self.run_until(lambda: b"200 OK" in client.data)
        self.assertEqual(got, [b"body"])
        self.assertFalse(client.eof)

    def test_expect_100_not_sent_when_answered_first(self):
        client = self.client()
        client.send(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                    b"Content-Length: 4\r\n\r\n")
        self.run_until(lambda: client.eof)
        self.assertNotIn(b"100 Continue", client.data)
        [(status, headers, body)] = parse_responses(client.data, ["POST"])
        # The client may or may not send the body now: the server closes.
        self.assertEqual((status, headers["Connection"]), (200, "close"))

    def test_expect_100_sent_when_application_resumes(self):
        paused = []

        def handler(exchange):
            def start(*args):
                exchange.pause(True)
                paused.append(exchange)

            exchange.on("request_start", start)
            exchange.on("request_done", lambda t: hello_response(exchange))

        self.handler = handler
        client = self.client()
        client.send(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                    b"Content-Length: 2\r\n\r\n")
        self.run_until(lambda: paused)
        self.run_ready_passes(3)
        self.assertEqual(bytes(client.data), b"")
        paused[0].pause(False)
        self.run_until(lambda: client.data)
        self.assertEqual(bytes(client.data), b"HTTP/1.1 100 Continue\r\n\r\n")
        client.send(b"ok")
        self.run_until(lambda: b"Hello, world!" in client.data)

    def test_hop_by_hop_fields_are_stripped(self):
        def start(exchange, *args):
            exchange.response_start(200, "OK", [
                ("Connection", "x-private, keep-alive"), ("X-Private", "secret"),
                ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"),
                ("TE", "trailers"), ("Trailer", "X-Sum"), ("Transfer-Encoding", "gzip"),
                ("Upgrade", "h2c"), ("X-Kept", "yes"), ("Content-Length", "2"),
            ])
            exchange.response_body(b"ok")
            exchange.response_done()

        self.on_request_start(start)
        client, [(status, headers, body)] = self.exchange_raw(GET % b"")
        names = {name.lower() for name in headers.keys()}
        self.assertEqual(names, {"x-kept", "content-length", "date"})
        self.assertEqual(body, b"ok")

    def test_date_from_application_is_kept(self):
        def start(exchange, *args):
            exchange.response_start(200, "OK", [("Date", "Mon, 01 Jan 2001 00:00:00 GMT")])
            exchange.response_done()

        self.on_request_start(start)
        client, [(status, headers, body)] = self.exchange_raw(GET % b"")
        self.assertEqual(headers.get_all("Date"), ["Mon, 01 Jan 2001 00:00:00 GMT"])


def hello_response(exchange, length=True):
    exchange.response_start(200, "OK", [("Content-Length", "13")] if length else [])
    exchange.response_body(b"Hello, world!")
    exchange.response_done()


class FramingTest(ServerTestCase):
    def respond(self, status, headers, chunks, method=b"GET", version=b"1.1", close=False):
        raised = []
        del self.exchanges[:]

        def start(exchange, *args):
            exchange.response_start(status, "Phrase", headers)
            for chunk in chunks:
                try:
                    exchange.response_body(chunk)
                except error.HttpError as err:
                    raised.append(err)
            try:
                exchange.response_done()
            except error.HttpError as err:
                raised.append(err)

        self.on_request_start(start)
        request = b"%s / HTTP/%s\r\nHost: h\r\n\r\n" % (method, version)
        client = self.client()
        client.send(request + GET % b"next")
        if close:
            self.run_until(lambda: client.eof)
        else:
            self.run_until(lambda: len(self.exchanges) == 2 and self.exchanges[1].finished)
            self.run_until(lambda: client.data.count(b"HTTP/1.1 ") == 2)
        return client, raised

    def test_content_length_given_is_used(self):
        client, raised = self.respond(200, [("Content-Length", "6")], [b"abc", b"def"])
        self.assertEqual(raised, [])
        first = bytes(client.data).split(b"HTTP/1.1 ")[1]
        self.assertIn(b"Content-Length: 6\r\n", first)
        self.assertNotIn(b"Transfer-Encoding", first)
        self.assertTrue(first.endswith(b"\r\n\r\nabcdef"))

    def test_body_longer_than_content_length_raises_and_sends_nothing(self):
        client, raised = self.respond(200, [("Content-Length", "3")], [b"abcd", b"abc"])
        # Once per request (the second answered the same way).
        self.assertEqual([type(e) for e in raised], [error.BodyLengthError] * 2)
        self.assertNotIn(b"abcd", client.data)
        [(status, headers, body), _] = parse_responses(client.data, ["GET", "GET"])
        self.assertEqual(body, b"abc")

    def test_body_shorter_than_content_length_closes(self):
        client, raised = self.respond(200, [("Content-Length", "10")], [b"abc"], close=True)
        self.assertEqual([type(e) for e in raised], [error.BodyLengthError])
        self.assertNotIn(b"/next", client.data)

    def test_each_response_counts_its_own_content_length(self):
        # The connection's one LengthWriter starts again with each response
        # (plain and non-plain heads), pipelined or not.
        raised = []
        lengths = iter([3, 5, 2])

        def start(exchange, *args):
            length = next(lengths)
            fields = [("Content-Length", str(length))]
            if length == 2:
                fields.append(("Date", "Mon, 01 Jan 2024 00:00:00 GMT"))  # not plain
            exchange.response_start(200, "OK", fields)
            try:
                exchange.response_body(b"x" * (length + 1))
            except error.BodyLengthError as err:
                raised.append(err)
            exchange.response_body(b"x" * length)
            exchange.response_done()

        self.on_request_start(start)
        client, responses = self.exchange_raw(GET % b"1" + GET % b"2" + GET % b"3",
                                              ["GET"] * 3)
        self.assertEqual([body for _, _, body in responses], [b"xxx", b"xxxxx", b"xx"])
        self.assertEqual(len(raised), 3)

    def test_conflicting_content_lengths_refused(self):
        raised = []

        def start(exchange, *args):
            for headers in ([("Content-Length", "1"), ("Content-Length", "2")],
                            [("Content-Length", "-1")], [("Content-Length", "0x1")]):
                try:
                    exchange.response_start(200, "OK", headers)
                except error.BadHeaderError as err:
                    raised.append(err)
            hello_response(exchange)

        self.on_request_start(start)
        client, [(status, headers, body)] = self.exchange_raw(GET % b"")
        self.assertEqual(len(raised), 3)
        self.assertEqual((status, body), (200, b"Hello, world!"))

    def test_chunked_for_http11_without_length(self):
        client, raised = self.respond(200, [], [b"abc", b"", b"de"])
        first = bytes(client.data).split(b"HTTP/1.1 ")[1]
        self.assertIn(b"Transfer-Encoding: chunked\r\n", first)
        self.assertTrue(first.endswith(b"\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"))

    def test_no_body_for_head_204_304(self):
        for status, method in ((200, b"HEAD"), (204, b"GET"), (304, b"GET")):
            client, raised = self.respond(
                status, [("Content-Length", "5")], [b"hello"], method=method
            )
            first = bytes(client.data).split(b"HTTP/1.1 ")[1]
            self.assertTrue(first.endswith(b"\r\n\r\n"), (status, first))
            self.assertNotIn(b"Transfer-Encoding", first)
            if status == 204:
                self.assertNotIn(b"Content-Length", first)
            else:
                self.assertIn(b"Content-Length: 5\r\n", first)
            self.assertFalse(client.eof)  # the connection carries on

    def test_nonfinal_responses(self):
        def start(exchange, *args):
            exchange.response_nonfinal(103, "Early Hints", [("Link", "</s.css>"),
                                                            ("Content-Length", "5")])
            with self.assertRaises(error.BadStatusError):
                exchange.response_nonfinal(200, "OK", [])
            with self.assertRaises(error.BadStatusError):
                exchange.response_start(102, "Processing", [])
            hello_response(exchange)
            with self.assertRaises(error.StateError):
                exchange.response_nonfinal(100, "Continue", [])

        self.on_request_start(start)
        client, _ = self.exchange_raw(GET % b"")
        self.assertTrue(bytes(client.data).startswith(
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\n"
        ))

    def test_nonfinal_not_sent_to_http10(self):
        def start(exchange, *args):
            exchange.response_nonfinal(103, "Early Hints", [])
            hello_response(exchange)

        self.on_request_start(start)
        client, _ = self.exchange_raw(b"GET / HTTP/1.0\r\n\r\n", close=True)
        self.assertTrue(bytes(client.data).startswith(b"HTTP/1.1 200 OK\r\n"))


class ValidationTest(ServerTestCase):
    def test_invalid_output_raises_and_sends_nothing(self):
        bad_calls = [
            (99, "X", []), (600, "X", []), ("20", "X", []), ("abc", "X", []), (1000, "X", []),
            (200, "O\rK", []), (200, "O\nK", []), (200, "O\x00K", []),
            (200, "OK", [("Bad Name", "v")]), (200, "OK", [("a:b", "v")]), (200, "OK", [("", "v")]),
            (200, "OK", [("X", "a\r\nInjected: 1")]), (200, "OK", [("X", "a\nb")]),
            (200, "OK", [("X", "a\x00b")]), (200, "OK", [("X", "caf\u00e9\u20ac")]),
            (200, "OK", [("X",)]),
        ]
        raised = []

        def start(exchange, *args):
            for call in bad_calls:
                try:
                    exchange.response_start(*call)
                except (error.ApplicationError, ValueError, TypeError) as err:
                    raised.append(err)
            with self.assertRaises(error.StateError):
                exchange.response_body(b"too early")
            with self.assertRaises(error.StateError):
                exchange.response_done()
            exchange.response_start(200, "OK", [("Content-Length", "13")])
            with self.assertRaises(TypeError):
                exchange.response_body(12)
            exchange.response_body(b"Hello, world!")
            exchange.response_done()
            with self.assertRaises(error.StateError):
                exchange.response_start(200, "OK", [])
            with self.assertRaises(error.StateError):
                exchange.response_done()

        self.on_request_start(start)
        client, [(status, headers, body)] = self.exchange_raw(GET % b"")
        self.assertEqual(len(raised), len(bad_calls))
        for err in raised:
            self.assertIsInstance(err, ValueError)
        self.assertEqual(bytes(client.data).count(b"HTTP/1.1"), 1)
        self.assertNotIn(b"Injected", client.data)
        self.assertEqual((status, body), (200, b"Hello, world!"))

    def test_bad_trailers_raise_before_anything_is_sent(self):
        outcome = []

        def start(exchange, *args):
            exchange.response_start(200, "OK", [])
            exchange.response_body(b"x")
            try:
                exchange.response_done([("X", "a\r\nb")])
            except error.BadHeaderError:
                outcome.append("raised")
            exchange.response_done([("X", "ok")])

        self.on_request_start(start)
        client = self.client()
        client.send(GET % b"")
        self.run_until(lambda: client.data.endswith(b"0\r\nX: ok\r\n\r\n"))
        self.assertEqual(outcome, ["raised"])

    def test_101_without_upgrade_request_refused(self):
        raised = []

        def start(exchange, *args):
            try:
                exchange.response_start(101, "Switching Protocols", [("Upgrade", "x")])
            except error.StateError as err:
                raised.append(err)
            hello_response(exchange)

        self.on_request_start(start)
        self.exchange_raw(GET % b"")
        self.assertEqual(len(raised), 1)


# (name, request, status): each answered with its status, then closed.
MALFORMED = [
    ("bad_request_line", b"GET /\r\nHost: h\r\n\r\n", 400),
    ("bad_method", b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("control_in_target", b"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("uri_too_long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
    ("http_version_2", b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    ("bad_version", b"GET / HTTP/1.1x\r\nHost: h\r\n\r\n", 400),
    ("field_section_too_large", b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
    ("too_many_fields", b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431),
    ("space_before_colon", b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
    ("bare_cr", b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400),
    ("nul_in_value", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400),
    ("missing_host", b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),
    ("two_hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("unknown_transfer_coding", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ("chunked_not_last", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("bad_content_length", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello", 400),
    ("bad_chunk_size", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    # Request smuggling, by name.
    ("smuggling_CL_TE", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 400),
    ("smuggling_TE_CL", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                        b"Content-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 400),
    ("smuggling_TE_TE", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("smuggling_TE_TE_obfuscated", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    ("smuggling_CL_CL", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                        b"Content-Length: 5\r\n\r\nhello", 400),
    ("transfer_encoding_in_http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
]


class MalformedTest(ServerTestCase):
    def check(self, request, status):
        done = []
        self.handler = lambda exchange: exchange.on("request_done", done.append)
        client = self.client()
        client.send(request)
        self.run_until(lambda: client.eof)
        [(got, headers, body)] = parse_responses(client.data, ["GET"])
        self.assertEqual(got, status, request[:80])
        self.assertEqual(headers["Connection"], "close")
        self.assertEqual(done, [])

    def test_bad_requests_in_pipeline_after_a_good_one(self):
        client = self.client()
        client.send(GET % b"good" + b"GET / HTTP/1.1\r\nHost : h\r\n\r\n")
        self.run_until(lambda: client.eof)
        [(s1, _, _), (s2, _, _)] = parse_responses(client.data, ["GET", "GET"])
        self.assertEqual((s1, s2), (200, 400))

    def test_error_mid_body_reported_to_exchange(self):
        errors = []
        self.handler = lambda exchange: exchange.on("error", errors.append)
        client = self.client()
        client.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3\r\nabcXX")
        self.run_until(lambda: client.eof)
        self.assertEqual(len(errors), 1, errors)
        self.assertIsInstance(errors[0], error.ChunkError)  # ChunkTerminatorError
        self.assertTrue(client.data.startswith(b"HTTP/1.1 400 "))

    def test_obs_fold_is_accepted(self):
        client, [(status, _, _)] = self.exchange_raw(
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n")
        self.assertEqual(status, 200)
        self.assertEqual(self.exchanges[0].req_hdrs[1], (b"X", b" a b"))


def _malformed_test(request, status):
    def test(self):
        self.check(request, status)
    return test


for _name, _request, _status in MALFORMED:
    setattr(MalformedTest, "test_" + _name, _malformed_test(_request, _status))


class ApplicationErrorTest(ServerTestCase):
    def setUp(self):
        ServerTestCase.setUp(self)
        self.caught = []
        self.loop.exception_handler = lambda loop, exc, where: self.caught.append(exc)

    def test_exception_answers_500_and_server_keeps_serving(self):
        def start(exchange, method, uri, headers):
            if uri == b"/boom":
                raise RuntimeError("boom")
            hello_response(exchange)

        self.on_request_start(start)
        client = self.client()
        client.send(GET % b"boom" + GET % b"after")
        self.run_until(lambda: client.eof)
        [(status, headers, _)] = parse_responses(client.data, ["GET"])
        self.assertEqual((status, headers["Connection"]), (500, "close"))
        self.assertEqual([type(e) for e in self.caught], [RuntimeError])
        client, [(status, _, body)] = self.exchange_raw(GET % b"fine")
        self.assertEqual((status, body), (200, b"Hello, world!"))

    def test_exception_after_response_started_closes(self):
        def start(exchange, *args):
            exchange.response_start(200, "OK", [])
            exchange.response_body(b"partial")
            raise RuntimeError("late")

        self.on_request_start(start)
        client = self.client()
        client.send(GET % b"")
        self.run_until(lambda: client.eof)
        self.assertNotIn(b"500", client.data)
        self.assertEqual([type(e) for e in self.caught], [RuntimeError])


class TimeoutTest(ServerTestCase):
    def test_idle_timeout(self):
        self.server.idle_timeout = 0.2
        started = time.monotonic()
        client = self.client()
        self.run_until(lambda: client.eof)
        self.assertGreaterEqual(time.monotonic() - started, 0.19)
        self.assertEqual(bytes(client.data), b"")

    def test_idle_timeout_after_a_request(self):
        self.server.idle_timeout = 0.2
        client = self.client()
        client.send(GET % b"")
        self.run_until(lambda: _complete(client.data, ["GET"]))
        answered = time.monotonic()
        self.run_until(lambda: client.eof)
        self.assertGreaterEqual(time.monotonic() - answered, 0.19)

    def test_no_idle_timeout(self):
        self.server.idle_timeout = None
        self.server.request_timeout = 0.1
        client = self.client()
        expired = []
        self.loop.schedule(0.3, expired.append, True)
        self.run_until(lambda: expired)
        self.assertFalse(client.eof)

    def test_slow_request_head_gets_408(self):
        self.server.request_timeout = 0.2
        self.server.idle_timeout = 10
        started = time.monotonic()
        client = self.client()
        client.send(b"GET / HTTP/1.1\r\nHo")
        self.run_until(lambda: client.eof)
        self.assertGreaterEqual(time.monotonic() - started, 0.19)
        [(status, headers, _)] = parse_responses(client.data, ["GET"])
        self.assertEqual((status, headers["Connection"]), (408, "close"))

    def test_slow_request_head_without_idle_timeout(self):
        self.server.request_timeout = 0.2
        self.server.idle_timeout = None
        client = self.client()
        client.send(b"GET / HTTP/1.1\r\nHo")
        self.run_until(lambda: client.eof)
        self.assertTrue(client.data.startswith(b"HTTP/1.1 408 "))


class TunnelTest(ServerTestCase):
    def echo_tunnel(self, exchange, status, phrase, headers):
        tunnels = []

        def done(trailers):
            exchange.response_start(status, phrase, headers)
            exchange.response_done()
            tcp, buffered = exchange.tunnel()
            tunnels.append(buffered)
            tcp.on("data", tcp.write)
            tcp.write(b"[" + buffered + b"]")
            tcp.pause(False)

        exchange.on("request_done", done)
        return tunnels

    def test_end_before_the_tunnel_follows_half_close_set_after_it(self):
        # The client sends its CONNECT and ends its output before the
        # application answers; the new owner sets half_close after
        # tunnel(): it hears 'end', and may still answer.
        done = []
        self.handler = lambda ex: ex.on("request_done", lambda trailers: done.append(ex))
        client = self.client()
        client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nhi")
        self.run_until(lambda: done)
        client.half_close()
        self.run_until(lambda: done[0].connection._peer_ended)
        exchange = done[0]
        exchange.response_start(200, "OK", [])
        exchange.response_done()
        tcp, buffered = exchange.tunnel()
        tcp.half_close = True
        tcp.on("end", lambda: (tcp.write(b"bye " + buffered), tcp.close()))
        self.run_until(lambda: client.eof)
        self.assertTrue(bytes(client.data).endswith(b"\r\n\r\nbye hi"))

    def test_connect_hands_over_the_connection(self):
        tunnels = []
        self.handler = lambda ex: tunnels.append(self.echo_tunnel(ex, 200, "Connection Established", [("Content-Length", "99")]))
        client = self.client()
        client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nEARLY")
        self.run_until(lambda: client.data.endswith(b"[EARLY]"))
        head = bytes(client.data).split(b"\r\n\r\n")[0]
        self.assertTrue(head.startswith(b"HTTP/1.1 200 Connection Established\r\n"))
        self.assertNotIn(b"Content-Length", head)
        self.assertNotIn(b"Transfer-Encoding", head)
        client.send(b"ping GET / HTTP/1.1\r\n\r\n")
        self.run_until(lambda: client.data.endswith(b"ping GET / HTTP/1.1\r\n\r\n"))
        self.assertEqual(self.server.connections, set())
        self.assertEqual(len(self.exchanges), 1)

    def test_refused_connect_closes(self):
        def handler(exchange):
            exchange.on("request_done", lambda t: (
                exchange.response_start(403, "Forbidden", [("Content-Length", "0")]),
                exchange.response_done()))

        self.handler = handler
        client = self.client()
        client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n" + GET % b"")
        self.run_until(lambda: client.eof)
        [(status, headers, _)] = parse_responses(client.data, ["GET"])
        self.assertEqual((status, headers["Connection"]), (403, "close"))

    def test_upgrade_101(self):
        self.handler = lambda ex: self.echo_tunnel(ex, 101, "Switching Protocols", [("Upgrade", "echo")])
        client = self.client()
        client.send(b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhi")
        self.run_until(lambda: client.data.endswith(b"[hi]"))
        head = bytes(client.data).split(b"\r\n\r\n")[0]
        self.assertTrue(head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"))
        self.assertIn(b"\r\nUpgrade: echo", head)
        self.assertIn(b"\r\nConnection: upgrade", head)

    def test_upgrade_declined_carries_on_as_http(self):
        client, responses = self.exchange_raw(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n" + GET % b"2",
            ["GET", "GET"])
        self.assertEqual([r[1]["X-Uri"] for r in responses], ["/", "/2"])

    def test_tunnel_refused_without_a_tunnel_response(self):
        raised = []

        def handler(exchange):
            def done(trailers):
                hello_response(exchange)
                try:
                    exchange.tunnel()
                except error.StateError as err:
                    raised.append(err)

            exchange.on("request_done", done)

        self.handler = handler
        self.exchange_raw(GET % b"")
        self.assertEqual(len(raised), 1)


class BackpressureTest(ServerTestCase):
    def test_output_backpressure_pause_events(self):
        events = []
        total = 8 * 2**20
        chunk = b"x" * 65536

        def handler(exchange):
            state = {"sent": 0, "paused": False}

            def write():
                while not state["paused"] and state["sent"] < total:
                    exchange.response_body(chunk)
                    state["sent"] += len(chunk)
                if state["sent"] >= total and not exchange.finished:
                    exchange.response_done()

            def pause(paused):
                events.append(paused)
                state["paused"] = paused
                if not paused:
                    write()

            exchange.on("pause", pause)
            exchange.on("request_start", lambda *a: (
                exchange.response_start(200, "OK", [("Content-Length", str(total))]), write()))

        self.handler = handler
        client = self.client(keep=False, rcvbuf=4096)
        client.pause_reading(True)
        client.send(GET % b"")
        self.run_until(lambda: events == [True])
        conn = next(iter(self.server.connections))
        self.assertLess(conn.tcp.write_buffered, 4 * 65536)
        client.pause_reading(False)
        self.run_until(lambda: client.received >= total)
        self.assertIn(False, events)
        self.assertEqual(events[:2], [True, False])

    def test_input_backpressure(self):
        bodies = []
        paused = []

        def handler(exchange):
            exchange.on("request_body", bodies.append)
            exchange.on("request_done", lambda t: hello_response(exchange))

            def start(*args):
                exchange.pause(True)
                paused.append(exchange)

            exchange.on("request_start", start)

        self.handler = handler
        size = 4 * 2**20
        client = self.client()
        client.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size + b"y" * size)
        self.run_until(lambda: paused)
        self.run_until(lambda: client.unsent > 0)  # the server stopped reading
        conn = next(iter(self.server.connections))
        self.assertEqual(bodies, [])
        self.assertLessEqual(conn.parser.buffered, 2 * 2**20)
        paused[0].pause(False)
        self.run_until(lambda: b"Hello, world!" in client.data)
        self.assertEqual(sum(map(len, bodies)), size)

    def test_100MiB_response_to_a_client_that_stops_reading(self):
        total = 100 * 2**20
        chunk = b"z" * 65536
        state = {"sent": 0, "paused": False, "stalls": 0}

        def handler(exchange):
            def write():
                while not state["paused"] and state["sent"] < total:
                    exchange.response_body(chunk)
                    state["sent"] += len(chunk)
                if state["sent"] >= total and not exchange.finished:
                    exchange.response_done()

            def pause(paused):
                state["paused"] = paused
                state["stalls"] += paused
                if not paused:
                    write()

            exchange.on("pause", pause)
            exchange.on("request_start", lambda *a: (
                exchange.response_start(200, "OK", [("Content-Length", str(total))]), write()))

        self.handler = handler
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        client = self.client(keep=False)
        client.pause_reading(True)
        client.send(GET % b"")
        self.run_until(lambda: state["paused"])
        stalled_at = state["sent"]
        self.run_ready_passes(5)
        self.assertEqual(state["sent"], stalled_at)
        client.pause_reading(False)
        self.run_until(lambda: client.received >= total, timeout=30)
        peak = tracemalloc.get_traced_memory()[1] - base
        self.assertLess(peak, 16 * 2**20)
        self.assertGreater(client.received, total)


class ShutdownTest(ServerTestCase):
    def test_graceful_shutdown(self):
        pending = []
        stopped = []

        def handler(exchange):
            exchange.on("request_start", lambda *a: pending.append(exchange))

        self.handler = handler
        self.server.on("stop", lambda: stopped.append(True))
        busy = self.client()
        idle = self.client()
        busy.send(GET % b"")
        self.run_until(lambda: pending and len(self.server.connections) == 2)
        self.server.graceful_shutdown()
        self.run_until(lambda: idle.eof)
        self.assertFalse(busy.eof)
        self.assertEqual(stopped, [])
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.server.port), timeout=1).close()
        hello_response(pending[0])
        self.run_until(lambda: busy.eof and stopped)
        [(status, headers, body)] = parse_responses(busy.data, ["GET"])
        self.assertEqual((status, headers["Connection"], body), (200, "close", b"Hello, world!"))

    def test_graceful_shutdown_without_connections(self):
        stopped = []
        self.server.on("stop", lambda: stopped.append(True))
        self.server.graceful_shutdown()
        self.assertEqual(stopped, [])  # emitted from the loop, not the call
        self.run_until(lambda: stopped)

    def test_close(self):
        stopped = []
        errors = []
        self.server.on("stop", lambda: stopped.append(True))
        self.handler = lambda exchange: exchange.on("error", errors.append)
        client = self.client()
        client.send(GET % b"")
        self.run_until(lambda: self.exchanges)
        self.server.shutdown()
        self.run_until(lambda: client.eof and stopped)
        self.assertEqual(stopped, [True])
        self.assertEqual([type(e) for e in errors], [error.ConnectionClosedError])


class TlsTest(ServerTestCase):
    def test_https(self):
        certfile, keyfile = make_cert()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        server = self.make_server(tls_context=context)
        client_context = ssl.create_default_context(cafile=certfile)

        def client():
            conn = http.client.HTTPSConnection("localhost", server.port, timeout=5,
                                               context=client_context)
            out = []
            for _ in range(2):
                conn.request("GET", "/tls")
                response = conn.getresponse()
                out.append((response.status, response.read()))
            conn.close()
            return out

        self.assertEqual(self.in_thread(client), [(200, b"Hello, world!")] * 2)


class HalfCloseTest(ServerTestCase):
    """With half_close, a client that shuts its sending side after its
    requests still gets every answer, however late the application answers."""

    def setUp(self):
        ServerTestCase.setUp(self)
        self.server.half_close = True
        self.delay = None  # seconds before answering; None: at request_done
        self.errors = []
        self.handler = self.answer_when_done

    def answer_when_done(self, exchange):
        exchange.on("error", self.errors.append)

        def answer():
            exchange.response_start(200, "OK", [("Content-Length", "5")])
            exchange.response_body(b"hello")
            exchange.response_done()

        def done(trailers):
            if self.delay is None:
                answer()
            else:
                self.loop.schedule(self.delay, answer)

        exchange.on("request_done", done)

    def send_and_end(self, data):
        client = self.client()
        client.send(data)
        client.half_close()
        self.run_until(lambda: client.eof)
        return client

    def test_late_answer_reaches_a_half_closed_client(self):
        self.delay = 0.05
        client = self.send_and_end(GET % b"")
        responses = parse_responses(client.data, ["GET"])
        self.assertEqual([(status, body) for status, _, body in responses], [(200, b"hello")])
        self.assertEqual(self.errors, [])

    def test_pipelined_requests_all_answered_then_closed(self):
        for delay in (None, 0.02):
            self.delay = delay
            client = self.send_and_end(b"".join(GET % n for n in (b"a", b"b", b"c")))
            responses = parse_responses(client.data, ["GET"] * 3)
            self.assertEqual([r[0] for r in responses], [200, 200, 200], delay)

    def test_end_between_requests_closes_quietly(self):
        client = self.send_and_end(b"")
        self.assertEqual(bytes(client.data), b"")
        self.assertEqual(self.exchanges, [])

    def test_end_inside_a_head_is_answered_400(self):
        client = self.send_and_end(b"GET / HTTP/1.1\r\nHost")
        self.assertTrue(client.data.startswith(b"HTTP/1.1 400 "), client.data)

    def test_end_inside_a_body_is_answered_400_and_reported(self):
        client = self.send_and_end(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"
        )
        self.assertTrue(client.data.startswith(b"HTTP/1.1 400 "), client.data)
        self.assertEqual(len(self.errors), 1)
        self.assertIsInstance(self.errors[0], error.IncompleteBodyError)

    def test_answer_then_unfinished_request(self):
        self.delay = 0.02
        client = self.send_and_end(GET % b"" + b"GET / HT")
        self.assertEqual(client.data.count(b"HTTP/1.1 200 OK"), 1, client.data)
        self.assertEqual(client.data.count(b"HTTP/1.1 400 "), 1, client.data)
        self.assertLess(client.data.index(b"HTTP/1.1 200"), client.data.index(b"HTTP/1.1 400"))

    def test_off_by_default_a_late_answer_still_reaches_the_client(self):
        # Issue 11: a request read before the client's end is never
        # dropped, whatever half_close says.
        for transport_default in (False, True):
            self.server.half_close = False
            self.assertFalse(HttpServer.half_close)
            self.delay = 0.05
            with mock.patch.object(TcpConnection, "half_close", transport_default):
                client = self.send_and_end(GET % b"")
            responses = parse_responses(client.data, ["GET"])
            self.assertEqual([(r[0], r[2]) for r in responses], [(200, b"hello")])
            self.assertEqual(self.errors, [])

    def test_end_before_a_tunnel_reaches_its_new_owner(self):
        heard = []

        def connect(exchange):
            def answer():
                exchange.response_start(200, "Connection established", [])
                tcp, buffered = exchange.tunnel()
                heard.append(buffered)
                tcp.on("end", lambda: (heard.append("end"), tcp.write(b"bye"), tcp.close()))
                tcp.pause(False)

            exchange.on("request_done", lambda trailers: self.loop.schedule(0.02, answer))

        self.handler = connect
        client = self.client()
        client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nhello")
        client.half_close()
        self.run_until(lambda: client.eof)
        self.assertEqual(heard, [b"hello", "end"])
        self.assertTrue(client.data.startswith(b"HTTP/1.1 200 "), client.data)
        self.assertTrue(client.data.endswith(b"\r\n\r\nbye"), client.data)


class CycleTest(ServerTestCase):
    def test_a_finished_exchange_is_freed_without_the_collector(self):
        # A handler that closes over its exchange (the usual way) makes a
        # reference cycle through the exchange's listeners; thor drops them
        # once the exchange is complete, so reference counting frees it.
        refs = []

        def handler(exchange):
            refs.append(weakref.ref(exchange))

            def request_start(method, uri, headers):
                exchange.response_start(200, "OK", [("Content-Length", "2")])
                exchange.response_body(b"ok")
                exchange.response_done()

            exchange.on("request_start", request_start)

        self.handler = handler
        gc.disable()
        self.addCleanup(gc.enable)
        client = self.client()
        client.send(GET % b"1" + GET % b"2")
        self.run_until(lambda: _complete(client.data, ["GET", "GET"]))
        self.exchanges.clear()
        self.assertEqual(len(refs), 2)
        self.assertEqual([ref() for ref in refs], [None, None])


class Thor017NamesTest(ServerTestCase):
    """The names programs written for Thor 0.17 use (REDbot's daemon)."""

    def test_redbot_style_handler(self):
        seen = {}

        def handler(exchange):
            # REDbot: "if not exchange.http_conn.tcp_conn: return", then
            # the client's address from the socket.
            conn = exchange.http_conn
            self.assertIs(conn, exchange.connection)
            self.assertIs(conn.tcp_conn, conn.tcp)
            seen["ip"] = conn.tcp_conn.socket.getpeername()[0]
            seen["idle"] = conn.is_idle

            def start(method, uri, headers):
                seen["start"] = (exchange.req_complete, exchange.response_started)

            def done(trailers):
                seen["done"] = exchange.req_complete
                exchange.response_start(b"200", b"OK", [(b"Content-Type", b"text/plain")])
                seen["started"] = exchange.response_started
                exchange.response_body(b"ok")
                exchange.response_done([])
                seen["res_done"] = exchange.res_done

            exchange.on("request_start", start)
            exchange.on("request_done", done)

        self.handler = handler
        self.assertIs(self.server.loop, self.loop)
        self.assertFalse(self.server.shutting_down)
        client, [(status, _, body)] = self.exchange_raw(GET % b"redbot")
        self.assertEqual((status, body), (200, b"ok"))
        self.assertEqual(seen, {
            "ip": "127.0.0.1", "idle": False, "start": (False, False), "done": True,
            "started": True, "res_done": True,
        })
        [conn] = self.server.connections
        self.assertTrue(conn.is_idle)
        conn.close_conn()
        self.assertIsNone(conn.tcp_conn)
        self.run_until(lambda: client.eof)
        self.server.graceful_shutdown()
        self.assertTrue(self.server.shutting_down)


@unittest.skipUnless(has_ipv6(), "no IPv6 loopback")
class Ipv6Test(ServerTestCase):
    host = "::1"

    def test_ipv6(self):
        client = self.client(host="::1", family=socket.AF_INET6)
        client.send(b"GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n")
        self.run_until(lambda: _complete(client.data, ["GET"]))
        [(status, _, body)] = parse_responses(client.data, ["GET"])
        self.assertEqual((status, body), (200, b"Hello, world!"))


if __name__ == "__main__":
    unittest.main()
