"""Tests for thor.http.client: HttpClient, its pool, retries, timeouts,
https, tunnels and the command line.

Most tests talk to a loopback server built from raw bytes (``RawServer``, a
thor TcpServer on the test's own loop writing canned responses), so that
every malformed or racy response is produced exactly; some use thor's own
HttpServer, a server thread, or a subprocess. No sleeps: the loop runs
until a condition holds, under a deadline.
"""

import gc
import gzip
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest
import weakref

from thor.http import error
from thor.http.client import HttpClient
from thor.http.server import HttpServer
from thor.tcp import TcpServer
from tests.support import LoopTestCase, answer_when_complete, has_ipv6, make_cert

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


class RawConnection:
    """One accepted connection: what it received, and the raw TcpConnection."""

    def __init__(self, server, tcp):
        self.server = server
        self.tcp = tcp
        self.data = b""
        self.closed = False
        self.answered = 0
        tcp.on("data", self._on_data)
        tcp.on("close", self._on_close)
        tcp.pause(False)

    @property
    def heads(self):
        """How many request heads have arrived."""
        return self.data.count(b"\r\n\r\n")

    def _on_data(self, data):
        self.data += data
        if self.server.script is not None:
            self.server.script(self)

    def _on_close(self):
        self.closed = True

    def write(self, data):
        self.tcp.write(data)

    def close(self):
        self.tcp.close()


class RawServer:
    """A TcpServer on the test's loop; ``script(conn)`` runs on every read
    and writes whatever bytes the test wants."""

    def __init__(self, loop, script=None, host="127.0.0.1"):
        self.script = script
        self.conns = []
        self.server = TcpServer(host, 0, loop)
        self.port = self.server.port
        self.server.on("connect", lambda tcp: self.conns.append(RawConnection(self, tcp)))

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    @property
    def requests(self):
        return sum(conn.heads for conn in self.conns)

    def close(self):
        self.server.close()
        for conn in self.conns:
            conn.tcp.abort()


def answer_each(response, close=False):
    """A script: answer every complete request head with ``response``."""

    def script(conn):
        while conn.answered < conn.heads:
            conn.answered += 1
            conn.write(response)
            if close:
                conn.close()
                return

    return script


class Recorder:
    """Records an exchange's events in order; counts them."""

    def __init__(self, exchange):
        self.exchange = exchange
        self.events = []
        self.body = b""
        self.status = None
        self.headers = None
        self.error = None
        for name in ("response_nonfinal", "response_start", "response_body",
                     "response_done", "error", "pause"):
            exchange.on(name, self._make(name))

    def _make(self, name):
        def listener(*args):
            self.events.append((name,) + args)
            if name == "response_start":
                self.status, _, self.headers = args
            elif name == "response_body":
                self.body += args[0]
            elif name == "error":
                self.error = args[0]
        return listener

    @property
    def names(self):
        return [event[0] for event in self.events]

    @property
    def finished(self):
        return "response_done" in self.names or "error" in self.names

    def header(self, name):
        name = name.lower().encode("ascii")
        return [v.strip() for n, v in self.headers if n.lower() == name]


class ClientTestCase(LoopTestCase):
    def setUp(self):
        self.addCleanup(gc.collect)  # runs last: a leaked socket warns in its test
        LoopTestCase.setUp(self)
        self.client = HttpClient(self.loop)
        self.client.retry_delay = 0.01
        self.client.connect_timeout = 5
        self.addCleanup(self.client.close)

    def raw(self, script=None, **kw):
        server = RawServer(self.loop, script, **kw)
        self.addCleanup(server.close)
        return server

    def request(self, url, method="GET", headers=(), body=None, done=True):
        exchange = self.client.exchange()
        rec = Recorder(exchange)
        exchange.request_start(method, url, list(headers))
        if body is not None:
            exchange.request_body(body)
        if done:
            exchange.request_done([])
        return rec

    def fetch(self, url, **kw):
        rec = self.request(url, **kw)
        self.run_until(lambda: rec.finished)
        return rec

    def settle(self):
        """Let what is ready run: a few passes of the loop that do not wait
        for timers (closes are emitted from the loop, a pass later)."""
        for _ in range(3):
            marker = []
            self.loop.schedule(0, marker.append, 1)
            self.run_until(lambda: marker)

    def assertDone(self, rec, body=b"hello"):
        self.assertEqual(rec.names[-1], "response_done", rec.events)
        self.assertEqual(rec.names.count("response_done"), 1)
        self.assertEqual(rec.body, body)

    def assertError(self, rec, kind, after_done=False):
        """The exchange ended with one ``error`` of class ``kind`` (after
        its response_done when ``after_done``: bytes beyond a response)."""
        self.assertTrue(rec.finished, rec.events)
        self.assertEqual(rec.names[-1], "error", rec.events)
        self.assertEqual(rec.names.count("error"), 1)
        if after_done:
            self.assertEqual(rec.names[-2], "response_done", rec.events)
        else:
            self.assertNotIn("response_done", rec.names)
        self.assertIsInstance(rec.error, kind)
        self.assertIsInstance(rec.error.detail, (str, type(None)))
        # Nothing follows the error, even later.
        count = len(rec.events)
        self.settle()
        self.assertEqual(len(rec.events), count, rec.events)


# -- requests as sent ------------------------------------------------------------


class RequestTests(ClientTestCase):
    def test_get(self):
        server = self.raw(answer_each(OK))
        rec = self.fetch(server.url("/a/b?c=d#frag"))
        self.assertDone(rec)
        self.assertEqual(rec.status, b"200")
        head = server.conns[0].data
        self.assertTrue(head.startswith(b"GET /a/b?c=d HTTP/1.1\r\n"), head)
        self.assertIn(b"\r\nHost: 127.0.0.1:%d\r\n" % server.port, head)

    def test_str_and_bytes_arguments(self):
        server = self.raw(answer_each(OK))
        rec = self.fetch(server.url().encode("ascii"), method=b"GET",
                         headers=[(b"X-A", b"1"), ("X-B", " 2")])
        self.assertDone(rec)
        self.assertIn(b"\r\nX-A: 1\r\nX-B: 2\r\n", server.conns[0].data)

    def test_headers_from_any_iterable(self):
        server = self.raw(answer_each(OK))
        for _ in range(2):  # the second time, the request head is cached
            exchange = self.client.exchange()
            rec = Recorder(exchange)
            exchange.request_start("GET", server.url(), ((n, v) for n, v in [("X-A", "1")]))
            exchange.request_done([])
            self.run_until(lambda: rec.finished)
            self.assertDone(rec)
        self.assertEqual(server.conns[0].data.count(b"\r\nX-A: 1\r\n"), 2)

    def test_host_from_url_and_hop_by_hop_dropped(self):
        server = self.raw(answer_each(OK))
        rec = self.fetch(server.url(), headers=[
            ("Host", "evil.example"), ("Connection", "X-Hop, keep-alive"),
            ("X-Hop", "1"), ("Keep-Alive", "timeout=5"), ("TE", "trailers"),
            ("Transfer-Encoding", "chunked"), ("Proxy-Connection", "x"),
            ("Trailer", "X-T"), ("X-End", "yes"),
        ])
        self.assertDone(rec)
        head = server.conns[0].data.lower()
        self.assertNotIn(b"evil", head)
        for name in (b"x-hop", b"keep-alive", b"te:", b"transfer-encoding",
                     b"proxy-connection", b"trailer", b"connection"):
            self.assertNotIn(b"\r\n" + name, head)
        self.assertIn(b"\r\nx-end: yes\r\n", head)

    def test_connection_tokens_with_odd_spacing_case_and_empty_members(self):
        server = self.raw(answer_each(OK))
        rec = self.fetch(server.url(), headers=[
            ("Connection", "\tX-Hop ,,CLOSE "), ("X-Hop", "1"), ("X-End", "yes"),
        ])
        self.assertDone(rec)
        head = server.conns[0].data.lower()
        self.assertNotIn(b"x-hop", head)
        self.assertIn(b"\r\nconnection: close\r\n", head)
        self.assertIn(b"\r\nx-end: yes\r\n", head)

    def test_default_port_not_in_host(self):
        exchange = self.client.exchange()
        exchange.request_start("GET", "http://example.invalid/", [])
        target, authority, _ = exchange._head_fields
        self.assertEqual((target, authority), (b"/", b"example.invalid"))
        exchange.abort()

    def test_post_with_length(self):
        server = self.raw(answer_each(OK))
        rec = self.fetch(server.url(), method="POST",
                         headers=[("Content-Length", "6")], body=b"abcdef")
        self.assertDone(rec)
        data = server.conns[0].data
        self.assertIn(b"\r\nContent-Length: 6\r\n", data)
        self.assertTrue(data.endswith(b"\r\n\r\nabcdef"))

    def test_body_without_length_is_chunked_with_trailers(self):
        server = self.raw()
        exchange = self.client.exchange()
        rec = Recorder(exchange)
        exchange.request_start("PUT", server.url(), [])
        exchange.request_body(b"abc")
        exchange.request_body("dé")
        exchange.request_done([("X-Sum", "42"), ("Content-Length", "3")])
        self.run_until(lambda: server.conns and server.conns[0].data.endswith(b"\r\n\r\n")
                       and b"0\r\n" in server.conns[0].data)
        data = server.conns[0].data
        self.assertIn(b"\r\nTransfer-Encoding: chunked\r\n", data)
        body = data.split(b"\r\n\r\n", 1)[1]
        self.assertEqual(body, b"3\r\nabc\r\n3\r\nd\xc3\xa9\r\n0\r\nX-Sum: 42\r\n\r\n")
        server.conns[0].write(OK)
        self.run_until(lambda: rec.finished)
        self.assertDone(rec)

    def test_trailer_rule_is_the_servers(self):
        # thor.http.writer.trailer_section on both sides: RFC 9110 6.5.1's
        # fields (here Host, Connection, Content-Type, Authorization) are
        # dropped, others sent.
        server = self.raw()
        exchange = self.client.exchange()
        exchange.request_start("PUT", server.url(), [])
        exchange.request_body(b"abc")
        exchange.request_done([("Host", "h"), ("X-Sum", "42"), ("connection", "close"),
                               ("Content-Type", "text/plain"), (b"Authorization", b"x")])
        self.run_until(lambda: server.conns and server.conns[0].data.endswith(b"0\r\nX-Sum: 42\r\n\r\n"))
        exchange.abort()

    def test_bad_trailers_raise_at_request_done(self):
        # Checked at the call, before a connection exists (they used to be
        # checked only once written), whatever the framing; the request can
        # then still be finished.
        for headers, end in (([], b"0\r\n\r\n"), ([("Content-Length", "3")], b"\r\n\r\nabc")):
            server = self.raw()
            exchange = self.client.exchange()
            rec = Recorder(exchange)
            exchange.request_start("PUT", server.url(), headers)
            exchange.request_body(b"abc")
            with self.assertRaises(error.BadHeaderError):
                exchange.request_done([("X-Sum", "4\r\nInjected: 1")])
            exchange.request_done([])
            self.run_until(lambda: server.conns and server.conns[0].data.endswith(end))
            self.assertNotIn(b"Injected", server.conns[0].data)
            server.conns[0].write(OK)
            self.run_until(lambda: rec.finished)
            self.assertDone(rec)

    def test_empty_post_says_length_zero(self):
        server = self.raw(answer_each(OK))
        self.assertDone(self.fetch(server.url(), method="POST"))
        self.assertIn(b"\r\nContent-Length: 0\r\n", server.conns[0].data)

    def test_body_longer_than_length_raises(self):
        exchange = self.client.exchange()
        exchange.request_start("POST", "http://127.0.0.1:9/", [("Content-Length", "3")])
        with self.assertRaises(error.BodyLengthError):
            exchange.request_body(b"abcd")
        exchange.request_body(b"ab")
        with self.assertRaises(error.BodyLengthError):
            exchange.request_done([])
        exchange.abort()

    def test_bad_fields_raise_and_send_nothing(self):
        server = self.raw(answer_each(OK))
        for headers in ([("X-A", "a\r\nInjected: 1")], [("Bad Name", "x")],
                        [("X-A", "nul\x00")], [("Content-Length", "x")],
                        [("Content-Length", "1"), ("Content-Length", "2")]):
            exchange = self.client.exchange()
            with self.assertRaises(error.ApplicationError):
                exchange.request_start("GET", server.url(), headers)
        with self.assertRaises(error.ApplicationError):
            self.client.exchange().request_start("GE T", server.url(), [])
        self.settle()
        self.assertEqual(server.conns, [])

    def test_calls_out_of_order_raise(self):
        exchange = self.client.exchange()
        with self.assertRaises(error.StateError):
            exchange.request_body(b"x")
        with self.assertRaises(error.StateError):
            exchange.request_done([])
        exchange.request_start("GET", "http://127.0.0.1:9/", [])
        with self.assertRaises(error.StateError):
            exchange.request_start("GET", "http://127.0.0.1:9/", [])
        exchange.request_done([])
        with self.assertRaises(error.StateError):
            exchange.request_done([])
        exchange.abort()

    def test_request_close(self):
        server = self.raw(answer_each(OK))
        self.assertDone(self.fetch(server.url(), headers=[("Connection", "close")]))
        self.assertIn(b"\r\nConnection: close\r\n", server.conns[0].data)
        self.run_until(lambda: server.conns[0].closed)
        self.assertDone(self.fetch(server.url()))
        self.assertEqual(len(server.conns), 2)


class UrlTests(ClientTestCase):
    def check_bad(self, url):
        exchange = self.client.exchange()
        rec = Recorder(exchange)
        exchange.request_start("GET", url, [])  # does not raise
        exchange.request_done([])  # nor does this
        self.assertEqual(rec.events, [])  # reported from the loop
        self.run_until(lambda: rec.finished)
        self.assertError(rec, error.UrlError)

    def test_bad_urls(self):
        for url in ("ftp://example.com/", "http:///path", "not a url", "/relative",
                    "http://[::1/", "http://example.com:99999/", "http://exa mple/",
                    "http://example.com:0/", "http://h\u00e9.example/", "",
                    "http://example.com:/", "http://example.com\r\n/"):
            with self.subTest(url=url):
                self.check_bad(url)

    def test_abort_before_url_error(self):
        exchange = self.client.exchange()
        rec = Recorder(exchange)
        exchange.request_start("GET", "gopher://x/", [])
        exchange.abort()
        self.settle()
        self.assertEqual(rec.events, [])

    @unittest.skipUnless(has_ipv6(), "no IPv6 loopback")
    def test_ipv6_literal(self):
        server = self.raw(answer_each(OK), host="::1")
        rec = self.fetch("http://[::1]:%d/six" % server.port)
        self.assertDone(rec)
        self.assertIn(b"\r\nHost: [::1]:%d\r\n" % server.port, server.conns[0].data)

    def test_name_resolved(self):
        server = self.raw(answer_each(OK))
        rec = self.fetch("http://localhost:%d/" % server.port)
        if rec.error is not None:  # localhost may resolve to ::1 first
            self.assertIsInstance(rec.error, error.ConnectError)
        else:
            self.assertDone(rec)
            self.assertIn(b"\r\nHost: localhost:%d\r\n" % server.port, server.conns[0].data)


# -- responses ----------------------------------------------------------------------


class ResponseTests(ClientTestCase):
    def test_headers_and_chunked_trailers(self):
        server = self.raw(answer_each(
            b"HTTP/1.1 201 Created\r\nX-A: 1\r\nX-A: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n"
        ))
        rec = self.fetch(server.url())
        self.assertDone(rec)
        self.assertEqual(rec.status, b"201")
        self.assertEqual(rec.header("x-a"), [b"1", b"2"])
        self.assertEqual(rec.events[-1], ("response_done", [(b"X-Trailer", b" t")]))

    def test_head_has_no_body(self):
        server = self.raw(answer_each(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"))
        rec = self.fetch(server.url(), method="HEAD")
        self.assertDone(rec, b"")
        rec = self.fetch(server.url(), method="HEAD")
        self.assertDone(rec, b"")
        self.assertEqual(len(server.conns), 1)  # reused

    def test_204_and_304_have_no_body(self):
        for status in (b"204 No Content", b"304 Not Modified"):
            with self.subTest(status=status):
                server = self.raw(answer_each(
                    b"HTTP/1.1 " + status + b"\r\nContent-Length: 10\r\n\r\n"))
                rec = self.fetch(server.url())
                self.assertDone(rec, b"")
                self.assertDone(self.fetch(server.url()), b"")
                self.assertEqual(len(server.conns), 1)

    def test_nonfinal_responses(self):
        server = self.raw(answer_each(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n"
            b"Content-Length: 4\r\n\r\n" + OK))
        rec = self.fetch(server.url())
        self.assertDone(rec)
        self.assertEqual(rec.names, ["response_nonfinal", "response_nonfinal",
                                     "response_start", "response_body", "response_done"])
        self.assertEqual(rec.events[1][1:3], (b"103", b"Early Hints"))

    def test_transfer_encoding_overrides_length_and_closes(self):
        server = self.raw(answer_each(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"))
        self.assertDone(self.fetch(server.url()))
        self.run_until(lambda: server.conns[0].closed)
        self.assertDone(self.fetch(server.url()))
        self.assertEqual(len(server.conns), 2)

    def test_close_delimited_body(self):
        server = self.raw(answer_each(b"HTTP/1.1 200 OK\r\n\r\nhel", close=False))
        rec = self.request(server.url())
        self.run_until(lambda: "response_body" in rec.names)
        server.conns[0].write(b"lo")
        server.conns[0].close()
        self.run_until(lambda: rec.finished)
        self.assertDone(rec)

    def test_http10_response_closes(self):
        server = self.raw(answer_each(
            b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
        self.assertDone(self.fetch(server.url()))
        self.assertDone(self.fetch(server.url()))
        self.assertEqual(len(server.conns), 2)

    def test_connection_close_response(self):
        server = self.raw(answer_each(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"))
        self.assertDone(self.fetch(server.url()))
        self.assertDone(self.fetch(server.url()))
        self.assertEqual(len(server.conns), 2)

    def test_response_before_request_body_done_closes(self):
        server = self.raw(answer_each(
            b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n"))
        exchange = self.client.exchange()
        rec = Recorder(exchange)
        exchange.request_start("POST", server.url(), [("Content-Length", "10")])
        exchange.request_body(b"12345")
        self.run_until(lambda: rec.finished)
        self.assertDone(rec, b"")
        exchange.request_body(b"67890")  # ignored, does not raise
        exchange.request_done([])
        self.run_until(lambda: server.conns[0].closed)


class MalformedResponseTests(ClientTestCase):
    """Each kind of bad response is an error event, never response_done."""

    CASES = [
        (b"HTTP/1.1 2000 OK\r\n\r\n", error.StartLineError),
        (b"HTTP/1.1 20 OK\r\n\r\n", error.StartLineError),
        (b"HTTP/1.1 099 Low\r\n\r\n", error.StartLineError),
        (b"ICY 200 OK\r\n\r\n", error.StartLineError),
        (b"HTTP/2.0 200 OK\r\n\r\n", error.HttpVersionError),
        (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", error.StartLineError),
        (b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", error.BadFieldError),
        (b"HTTP/1.1 200 OK\r\nBad : x\r\n\r\n", error.HeaderSpaceError),
        (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", error.BadFieldError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", error.MalformedCLError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
         error.DuplicateCLError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", error.ChunkError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
         error.ChunkError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
         error.BadTransferCodeError),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"x" * 140000 + b"\r\n\r\n",
         error.FieldSectionTooLargeError),
    ]

    def test_malformed(self):
        for response, kind in self.CASES:
            with self.subTest(response=response[:60]):
                server = self.raw(answer_each(response))
                rec = self.fetch(server.url())
                self.assertError(rec, kind)
                self.run_until(lambda: server.conns[0].closed)

    def test_truncated_bodies(self):
        # A dropped connection, as Thor 0.17 reports it (a ConnectError);
        # the parser's finding is the cause.
        for response in (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        ):
            with self.subTest(response=response):
                server = self.raw(answer_each(response, close=True))
                rec = self.fetch(server.url())
                self.assertError(rec, error.ConnectionClosedError)
                self.assertIsInstance(rec.error, error.ConnectError)
                self.assertIsInstance(rec.error.__cause__, error.IncompleteBodyError)

    def test_truncated_head(self):
        server = self.raw(answer_each(b"HTTP/1.1 200 OK\r\nContent-Le", close=True))
        rec = self.fetch(server.url())
        self.assertError(rec, error.ConnectionClosedError)
        self.assertIsInstance(rec.error.__cause__, error.IncompleteHeadError)
        self.assertEqual(server.requests, 1)  # a byte arrived: no retry

    def test_101_without_upgrade(self):
        server = self.raw(answer_each(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                                      b"Connection: upgrade\r\n\r\n"))
        rec = self.fetch(server.url())
        self.assertError(rec, error.StartLineError)

    def test_bytes_after_response_close_connection(self):
        # The response stands (response_done), then the bytes are reported
        # to its exchange (REDbot notes them), and the connection closes.
        server = self.raw(answer_each(OK + b"HTTP/1.1 200 OK\r\n"))
        rec = self.fetch(server.url())
        self.run_until(lambda: "error" in rec.names)
        self.assertError(rec, error.ExtraDataError, after_done=True)
        self.assertEqual(rec.body, b"hello")
        self.assertTrue(rec.error.detail.startswith("HTTP/1.1 200 OK"), rec.error.detail)
        self.run_until(lambda: server.conns[0].closed)
        server.script = answer_each(OK)
        self.assertDone(self.fetch(server.url()))
        self.assertEqual(len(server.conns), 2)

    def test_extra_bytes_after_a_closing_response(self):
        # Thor 0.17's test_extra_body and REDbot's "body on a 304": the
        # response says Connection: close, and more follows.
        for head, body in (
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", b"hello"),
            (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", b""),
        ):
            with self.subTest(head=head):
                server = self.raw(answer_each(head + b"hello67890\r\n", close=True))
                rec = self.fetch(server.url())
                self.run_until(lambda: "error" in rec.names)
                self.assertError(rec, error.ExtraDataError, after_done=True)
                self.assertEqual(rec.body, body)

    def test_whitespace_after_a_response_is_no_error(self):
        # A stray CRLF after a body (old CGI scripts): the connection is
        # not reused, but the exchange has nothing to answer for.
        server = self.raw(answer_each(OK + b"\r\n"))
        rec = self.fetch(server.url())
        self.run_until(lambda: server.conns[0].closed)
        self.settle()
        self.assertDone(rec)

    def test_bytes_after_response_in_next_read(self):
        server = self.raw(answer_each(OK))
        self.assertDone(self.fetch(server.url()))
        server.conns[0].write(b"junk")
        self.run_until(lambda: server.conns[0].closed)
        self.assertDone(self.fetch(server.url()))
        self.assertEqual(len(server.conns), 2)

    def test_queued_exchange_never_gets_connection_with_extra_bytes(self):
        self.client.max_server_conn = 1
        server = self.raw(answer_each(OK + b"extra"))
        first = self.request(server.url())
        second = self.request(server.url())  # queued behind the first
        self.run_until(lambda: "error" in first.names and "error" in second.names)
        self.assertError(first, error.ExtraDataError, after_done=True)
        self.assertError(second, error.ExtraDataError, after_done=True)
        self.assertEqual(len(server.conns), 2)
        self.assertEqual([c.heads for c in server.conns], [1, 1])


# -- connections: pooling, staleness, retries ----------------------------------


class PoolTests(ClientTestCase):
    def test_post_from_response_done_checks_a_connection_closed_behind_its_response(self):
        # The server answers (keeping the connection, by its head) and
        # closes at once; the listener's POST could not be replayed, so
        # the pooled connection is checked, found closed, and not used.
        # (loop.run(), not run_until: "this pass" needs a running loop.)
        server = self.raw(answer_each(OK, close=True))
        recs = []

        def post(trailers):
            exchange = self.client.exchange()
            recs.append(Recorder(exchange))
            exchange.on("response_done", lambda trailers: self.loop.stop())
            exchange.on("error", lambda err: self.loop.stop())
            exchange.request_start("POST", server.url(), [("Content-Length", "3")])
            exchange.request_body(b"abc")
            exchange.request_done([])

        first = self.client.exchange()
        first_rec = Recorder(first)
        first.on("response_done", post)
        first.request_start("GET", server.url(), [])
        first.request_done([])
        self.loop.schedule(5, self.loop.stop)  # a deadline, should it hang
        self.loop.run()
        self.assertDone(first_rec)
        self.assertDone(recs[0])
        self.assertEqual(len(server.conns), 2)

    def test_reuse(self):
        server = self.raw(answer_each(OK))
        for _ in range(3):
            self.assertDone(self.fetch(server.url()))
        self.assertEqual(len(server.conns), 1)
        self.assertEqual(server.conns[0].heads, 3)

    def test_request_from_response_done_reuses_the_connection(self):
        # The connection is released before response_done, so the next
        # request, made by its listener, gets it (no second connection).
        server = self.raw(answer_each(OK))
        recs = []

        def next_request(trailers):
            if len(recs) < 4:
                start()

        def start():
            rec = self.request(server.url())
            rec.exchange.on("response_done", next_request)
            recs.append(rec)

        start()
        self.run_until(lambda: len(recs) == 4 and recs[-1].finished)
        for rec in recs:
            self.assertDone(rec)
        self.assertEqual(len(server.conns), 1)
        self.assertEqual(server.conns[0].heads, 4)

    def test_repeated_request_heads_are_checked_and_independent(self):
        server = self.raw(answer_each(OK))
        headers = [("X-A", "1"), (b"X-B", b"2"), ("Connection", "x-c"), ("X-C", "3")]
        first = self.fetch(server.url("/p"), headers=headers)
        second = self.fetch(server.url("/p"), headers=headers)
        self.assertDone(first)
        self.assertDone(second)
        self.assertEqual(first.exchange.req_hdrs, [(b"X-A", b"1"), (b"X-B", b"2")])
        self.assertEqual(first.exchange.req_hdrs, second.exchange.req_hdrs)
        self.assertIsNot(first.exchange.req_hdrs, second.exchange.req_hdrs)
        sent = server.conns[0].data.split(b"\r\n\r\n")
        self.assertEqual(sent[0], sent[1])
        self.assertNotIn(b"X-C", sent[0])
        # A bad value still raises, every time.
        for _ in range(2):
            exchange = self.client.exchange()
            with self.assertRaises(error.BadHeaderError):
                exchange.request_start("GET", server.url("/p"), [("X-A", "1\x00")])

    def test_headers_that_are_not_pairs_raise(self):
        # A dict, listed, is its names: two-letter ones would unpack as
        # name and value ("XY" -> "X: Y") and reach the wire.
        server = self.raw(answer_each(OK))
        for headers in ({"XY": "a", "Ab": "b"}, {"Accept": "x"}, ["XY"], [b"XY"],
                        [("a", "b", "c")], [("X-A",)], [3]):
            exchange = self.client.exchange()
            with self.assertRaises(error.BadHeaderError, msg=headers):
                exchange.request_start("GET", server.url(), headers)
        self.assertEqual(server.conns, [])  # nothing reached the wire
        # Pairs as lists are pairs.
        self.assertDone(self.fetch(server.url(), headers=[["X-A", "1"]]))
        self.assertIn(b"X-A: 1\r\n", server.conns[0].data)

    def test_header_subclass_is_not_taken_from_the_cache(self):
        class Sly(str):
            def __eq__(self, other):
                return True

            def __hash__(self):
                return hash("1")  # so that it finds the cached ("X-A", "1")

        server = self.raw(answer_each(OK))
        self.assertDone(self.fetch(server.url(), headers=[("X-A", "1")]))
        exchange = self.client.exchange()
        with self.assertRaises(error.BadHeaderError):
            exchange.request_start("GET", server.url(), [("X-A", Sly("1\x00"))])

    def test_limit_and_queue(self):
        self.client.max_server_conn = 2
        server = self.raw()  # answers when told
        recs = [self.request(server.url("/%d" % i)) for i in range(5)]
        self.run_until(lambda: server.requests == 2)
        self.settle()
        self.assertEqual(len(server.conns), 2)
        answer = answer_each(OK)
        while not all(rec.finished for rec in recs):
            for conn in server.conns:
                answer(conn)
            self.loop._run_once()
        for rec in recs:
            self.assertDone(rec)
        self.assertEqual(len(server.conns), 2)
        paths = b"".join(c.data for c in server.conns)
        for i in range(5):
            self.assertIn(b"GET /%d " % i, paths)

    def test_limit_is_a_class_or_instance_setting(self):
        self.assertEqual(HttpClient.max_server_conn, 6)
        other = HttpClient(self.loop, idle_timeout=7)
        self.assertEqual(other.idle_timeout, 7)
        self.assertEqual(HttpClient.idle_timeout, 60)
        self.assertEqual((HttpClient.connect_timeout, HttpClient.read_timeout,
                          HttpClient.retry_limit, HttpClient.retry_delay),
                         (None, None, 2, 0.5))

    def test_pools_are_per_origin(self):
        one = self.raw(answer_each(OK))
        two = self.raw(answer_each(OK))
        self.assertDone(self.fetch(one.url()))
        self.assertDone(self.fetch(two.url()))
        self.assertDone(self.fetch(one.url()))
        self.assertEqual((len(one.conns), len(two.conns)), (1, 1))

    def test_idle_connection_closed_by_server_is_not_used(self):
        self.client.retry_limit = 0  # a retry would hide the mistake
        server = self.raw(answer_each(OK))
        self.assertDone(self.fetch(server.url()))
        server.conns[0].close()
        self.run_until(lambda: server.conns[0].closed)
        # (a Content-Length body: a chunked one's last CRLFCRLF would look
        # like a second request to answer_each)
        rec = self.fetch(server.url(), method="POST", body=b"x",
                         headers=[("Content-Length", "1")])
        self.assertDone(rec)
        self.assertEqual(len(server.conns), 2)

    def test_stale_connection_not_yet_seen_by_the_loop(self):
        """The server's FIN is in the kernel but the loop has not polled
        since: the pool's check still finds it."""
        self.client.retry_limit = 0
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        self.addCleanup(listener.close)
        port = listener.getsockname()[1]
        accepted = []

        def serve():
            conn, _ = listener.accept()
            accepted.append(conn)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            conn.sendall(OK)

        thread = threading.Thread(target=serve)
        thread.start()
        rec = self.fetch("http://127.0.0.1:%d/" % port)
        thread.join()
        self.assertDone(rec)
        accepted[0].close()  # FIN sent; the loop does not run before reuse
        thread = threading.Thread(target=serve)
        thread.start()
        rec = self.request("http://127.0.0.1:%d/" % port, method="POST", body=b"x")
        self.run_until(lambda: rec.finished)
        thread.join()
        self.assertDone(rec)
        accepted[1].close()

    def test_bytes_on_idle_connection_close_it(self):
        server = self.raw(answer_each(OK))
        self.assertDone(self.fetch(server.url()))
        server.conns[0].write(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        self.run_until(lambda: server.conns[0].closed)
        self.assertDone(self.fetch(server.url()))
        self.assertEqual(len(server.conns), 2)

    def test_close_closes_idle_connections(self):
        server = self.raw(answer_each(OK))
        self.assertDone(self.fetch(server.url()))
        self.client.close()
        self.run_until(lambda: server.conns[0].closed)


def close_after_reading(conn):
    """A script: read a request head, then close without answering."""
    if conn.heads:
        conn.close()


def drop_second_request(server):
    """A script: answer every request, except the second one on the first
    connection, which is closed unanswered (the keep-alive race)."""
    answer = answer_each(OK)

    def script(conn):
        if conn is server.conns[0] and conn.heads == 2:
            conn.close()
        else:
            answer(conn)

    return script


class RetryTests(ClientTestCase):
    def test_get_retried_on_reused_connection(self):
        server = self.raw()
        server.script = drop_second_request(server)
        self.assertDone(self.fetch(server.url()))
        rec = self.fetch(server.url())
        self.assertDone(rec)
        self.assertEqual(len(server.conns), 2)

    def test_get_retried_up_to_the_limit(self):
        self.client.retry_limit = 2
        server = self.raw(close_after_reading)
        rec = self.fetch(server.url())
        self.assertError(rec, error.ConnectionClosedError)
        self.assertEqual(server.requests, 3)  # the request and two retries

    def test_retry_limit_zero(self):
        self.client.retry_limit = 0
        server = self.raw(close_after_reading)
        self.assertError(self.fetch(server.url()), error.ConnectionClosedError)
        self.assertEqual(server.requests, 1)

    def test_post_never_replayed(self):
        server = self.raw()
        server.script = drop_second_request(server)
        self.assertDone(self.fetch(server.url()))
        rec = self.fetch(server.url(), method="POST",
                         headers=[("Content-Length", "8")], body=b"pay once")
        self.assertError(rec, error.ConnectionClosedError)
        self.settle()
        self.assertEqual(server.requests, 2)
        self.assertEqual(b"".join(c.data for c in server.conns).count(b"POST"), 1)

    def test_put_body_replayed_whole(self):
        server = self.raw()

        def script(conn):
            if len(server.conns) == 1 and conn.data.endswith(b"body!"):
                conn.close()
            elif conn.data.endswith(b"body!") and not conn.answered:
                conn.answered = 1
                conn.write(OK)

        server.script = script
        rec = self.fetch(server.url(), method="PUT",
                         headers=[("Content-Length", "5")], body=b"body!")
        self.assertDone(rec)
        self.assertEqual(len(server.conns), 2)
        self.assertTrue(server.conns[1].data.endswith(b"\r\n\r\nbody!"))

    def test_no_retry_after_response_started(self):
        server = self.raw(answer_each(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel", close=True))
        self.assertError(self.fetch(server.url()), error.ConnectionClosedError)
        self.assertEqual(server.requests, 1)

    def test_retry_gets_a_new_connection_closing_an_idle_one_for_room(self):
        # A retry does not take a pooled connection (it may be as stale as
        # the one that failed); at max_server_conn, the oldest idle one is
        # closed to make room for a new one.
        self.client.max_server_conn = 2
        self.client.retry_delay = 0.5
        server = self.raw()
        answer = answer_each(OK)
        server.script = lambda conn: (
            close_after_reading(conn) if conn is server.conns[0] else answer(conn))
        first = self.request(server.url())
        self.run_until(lambda: server.conns and server.conns[0].closed)
        self.settle()  # the client has seen the close: the retry waits
        others = [self.request(server.url()) for _ in range(2)]
        self.run_until(lambda: all(rec.finished for rec in others))
        self.assertEqual(len(server.conns), 3)
        self.assertEqual(first.events, [])
        self.run_until(lambda: first.finished)
        self.assertDone(first)
        self.assertEqual(len(server.conns), 4)  # the retry's own
        self.assertEqual(server.conns[3].heads, 1)
        self.run_until(lambda: server.conns[1].closed)  # the oldest idle one
        self.assertFalse(server.conns[2].closed)

    def test_connect_refused(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        rec = self.fetch("http://127.0.0.1:%d/" % port)
        self.assertError(rec, error.ConnectError)
        self.assertIn("ECONNREFUSED", str(rec.error))


# -- timeouts ----------------------------------------------------------------------


class TimeoutTests(ClientTestCase):
    def test_connect_timeout(self):
        # A listener with a full backlog: the kernel drops further SYNs.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        self.addCleanup(listener.close)
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
            self.addCleanup(filler.close)
        self.client.connect_timeout = 0.2
        began = time.monotonic()
        rec = self.fetch("http://127.0.0.1:%d/" % listener.getsockname()[1])
        self.assertError(rec, error.ConnectTimeoutError)
        self.assertGreaterEqual(time.monotonic() - began, 0.19)

    def test_read_timeout_before_response(self):
        self.client.read_timeout = 0.2
        self.client.retry_limit = 0
        server = self.raw()
        began = time.monotonic()
        rec = self.fetch(server.url())
        self.assertError(rec, error.ReadTimeoutError)
        self.assertGreaterEqual(time.monotonic() - began, 0.19)
        self.run_until(lambda: server.conns[0].closed)

    def test_read_timeout_mid_body(self):
        self.client.read_timeout = 0.2
        server = self.raw(answer_each(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel"))
        rec = self.fetch(server.url())
        self.assertError(rec, error.ReadTimeoutError)
        self.assertIn("response_start", rec.names)

    def test_read_timeout_is_between_reads(self):
        self.client.read_timeout = 0.3
        server = self.raw()
        parts = [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"] + [bytes([c]) for c in b"hello"]

        def drip(conn):
            if parts:
                conn.write(parts.pop(0))
                self.loop.schedule(0.1, drip, conn)

        def script(conn):
            if conn.heads == 1 and not conn.answered:
                conn.answered = 1
                drip(conn)

        server.script = script
        began = time.monotonic()
        rec = self.fetch(server.url())
        self.assertDone(rec)
        self.assertGreater(time.monotonic() - began, 0.4)  # longer than read_timeout

    def test_read_timeout_waits_while_application_paused(self):
        self.client.read_timeout = 0.1
        server = self.raw(answer_each(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"))
        rec = self.request(server.url())
        rec.exchange.once("response_body", lambda chunk: rec.exchange.pause(True))
        self.run_until(lambda: "response_body" in rec.names)
        fired = []
        self.loop.schedule(0.3, fired.append, 1)
        self.run_until(lambda: fired)
        self.assertNotIn("error", rec.names)
        rec.exchange.pause(False)
        server.conns[0].write(b"world")
        self.run_until(lambda: rec.finished)
        self.assertDone(rec, b"helloworld")

    def test_idle_timeout(self):
        client = HttpClient(self.loop, idle_timeout=0.2)
        server = self.raw(answer_each(OK))
        exchange = client.exchange()
        rec = Recorder(exchange)
        exchange.request_start("GET", server.url(), [])
        exchange.request_done([])
        self.run_until(lambda: rec.finished)
        self.assertDone(rec)
        began = time.monotonic()
        self.run_until(lambda: server.conns[0].closed)
        self.assertGreaterEqual(time.monotonic() - began, 0.15)
        self.assertEqual(client._origins, {})

    def test_idle_timeout_none_keeps_connection(self):
        self.client.idle_timeout = None
        server = self.raw(answer_each(OK))
        self.assertDone(self.fetch(server.url()))
        fired = []
        self.loop.schedule(0.2, fired.append, 1)
        self.run_until(lambda: fired)
        self.assertFalse(server.conns[0].closed)


# -- flow control, abort, tunnels ----------------------------------------------------


class FlowTests(ClientTestCase):
    def test_pause_response(self):
        server = self.raw(answer_each(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n"))
        rec = self.request(server.url())
        rec.exchange.on("response_body", lambda chunk: rec.exchange.pause(True))
        self.run_until(lambda: "response_body" in rec.names)
        self.settle()
        self.assertEqual(rec.body, b"a")
        for expected in (b"ab", b"abc"):
            rec.exchange.pause(False)
            self.assertEqual(rec.body, expected)
        rec.exchange.pause(False)
        self.assertDone(rec, b"abc")

    def test_pause_then_server_closes(self):
        server = self.raw(answer_each(
            b"HTTP/1.1 200 OK\r\n\r\nclose-delimited", close=True))
        rec = self.request(server.url())
        rec.exchange.on("response_start", lambda *a: rec.exchange.pause(True))
        self.run_until(lambda: "response_start" in rec.names and server.conns[0].closed)
        self.settle()
        self.assertEqual(rec.names, ["response_start"])
        rec.exchange.pause(False)
        self.run_until(lambda: rec.finished)
        self.assertDone(rec, b"close-delimited")

    def test_request_body_backpressure(self):
        server = self.raw()
        exchange = self.client.exchange()
        rec = Recorder(exchange)
        exchange.request_start("POST", server.url(), [])
        self.run_until(lambda: server.conns)
        server.conns[0].tcp.pause(True)  # the server stops reading
        chunk = b"x" * 65536
        sent = 0
        while "pause" not in rec.names and sent < 64 * 1024 * 1024:
            exchange.request_body(chunk)  # the socket takes what it can at once
            sent += len(chunk)
        self.assertEqual(rec.events[-1], ("pause", True))
        server.conns[0].tcp.pause(False)
        self.run_until(lambda: rec.events[-1] == ("pause", False))
        exchange.abort()

    def test_pause_before_connection(self):
        exchange = self.client.exchange()
        rec = Recorder(exchange)
        server = self.raw()
        exchange.request_start("POST", server.url(), [])
        exchange.request_body(b"x" * 70000)
        self.assertEqual(rec.events, [("pause", True)])
        self.run_until(lambda: ("pause", False) in rec.events)
        exchange.abort()

    def test_abort_mid_response(self):
        server = self.raw(answer_each(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel"))
        rec = self.request(server.url())
        self.run_until(lambda: "response_body" in rec.names)
        rec.exchange.abort()
        server.conns[0].write(b"lo12345")
        self.run_until(lambda: server.conns[0].closed)
        self.settle()
        self.assertEqual(rec.names, ["response_start", "response_body"])
        self.assertEqual(self.client._origins, {})

    def test_abort_queued_and_connecting(self):
        self.client.max_server_conn = 1
        server = self.raw(answer_each(OK))
        first = self.request(server.url())
        second = self.request(server.url())
        third = self.request(server.url())
        first.exchange.abort()   # while connecting: the connection goes on
        second.exchange.abort()  # while queued
        self.run_until(lambda: third.finished)
        self.assertDone(third)
        self.assertEqual(first.events + second.events, [])
        self.assertEqual(server.requests, 1)

    def test_upgrade_tunnel(self):
        server = self.raw(answer_each(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"
            b"Connection: upgrade\r\n\r\nearly"))
        exchange = self.client.exchange()
        rec = Recorder(exchange)
        got = []
        tcp = None

        def done(trailers):
            nonlocal tcp
            tcp, buffered = exchange.tunnel()
            got.append(buffered)
            tcp.on("data", got.append)
            tcp.pause(False)
            tcp.write(b"ping")

        exchange.on("response_done", done)
        exchange.request_start("GET", server.url(), [("Upgrade", "echo")])
        exchange.request_done([])
        self.run_until(lambda: rec.finished)
        head = server.conns[0].data
        self.assertIn(b"\r\nUpgrade: echo\r\n", head)
        self.assertIn(b"\r\nConnection: upgrade\r\n", head)
        self.assertEqual(rec.status, b"101")
        self.run_until(lambda: server.conns[0].data.endswith(b"ping"))
        server.conns[0].write(b"pong")
        self.run_until(lambda: b"pong" in got)
        self.assertEqual(got[0], b"early")
        tcp.close()
        with self.assertRaises(error.StateError):
            exchange.tunnel()

    def test_connect_tunnel(self):
        server = self.raw(answer_each(b"HTTP/1.1 200 Connection established\r\n\r\n"))
        exchange = self.client.exchange()
        rec = Recorder(exchange)
        tunnels = []
        exchange.on("response_done", lambda t: tunnels.append(exchange.tunnel()))
        exchange.request_start("CONNECT", server.url(), [])
        exchange.request_done([])
        self.run_until(lambda: rec.finished)
        self.assertTrue(server.conns[0].data.startswith(
            b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n" % server.port))
        tcp, buffered = tunnels[0]
        self.assertEqual(buffered, b"")
        tcp.close()

    def test_tunnel_not_taken_closes(self):
        server = self.raw(answer_each(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"))
        rec = self.fetch(server.url(), headers=[("Upgrade", "x")])
        self.assertDone(rec, b"")
        self.run_until(lambda: server.conns[0].closed)
        with self.assertRaises(error.StateError):
            rec.exchange.tunnel()

    def test_tunnel_refused_for_plain_response(self):
        server = self.raw(answer_each(OK))
        rec = self.fetch(server.url())
        with self.assertRaises(error.StateError):
            rec.exchange.tunnel()


class LargeResponseTests(ClientTestCase):
    SIZE = 100 * 1024 * 1024

    def test_100_mib_paused_reader_memory(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.addCleanup(listener.close)
        block = memoryview(b"x" * (1024 * 1024))

        def serve():
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.SIZE)
                for _ in range(self.SIZE // len(block)):
                    conn.sendall(block)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        exchange = self.client.exchange()
        state = {"bytes": 0, "done": False, "peak": 0, "error": None}
        before = rss()

        def body(chunk):
            state["bytes"] += len(chunk)
            exchange.pause(True)  # a slow consumer: resume on the next pass
            self.loop.schedule(0, exchange.pause, False)
            if state["bytes"] % (4 * 1024 * 1024) < len(chunk):
                state["peak"] = max(state["peak"], rss())

        exchange.on("response_body", body)
        exchange.on("response_done", lambda t: state.update(done=True))
        exchange.on("error", lambda e: state.update(error=e, done=True))
        exchange.request_start("GET", "http://127.0.0.1:%d/" % listener.getsockname()[1], [])
        exchange.request_done([])
        self.run_until(lambda: state["done"], timeout=60)
        thread.join()
        self.assertIsNone(state["error"])
        self.assertEqual(state["bytes"], self.SIZE)
        if before is not None:
            growth = max(state["peak"], rss()) - before
            self.assertLess(growth, 16 * 1024 * 1024, "RSS grew by %d bytes" % growth)


def rss():
    """This process's resident set size in bytes (None if unknown)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


# -- against thor's own server ---------------------------------------------------------


class LoopStopTests(ClientTestCase):
    def test_a_request_after_the_loop_stopped_and_runs_again(self):
        # stop() forgets every fd: a connection pooled before it can no
        # longer hear its responses, so the next request opens another.
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(b"hello")

            def log_message(self, *args):
                pass

        origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        origin.daemon_threads = True
        threading.Thread(target=origin.serve_forever, daemon=True).start()
        self.addCleanup(origin.server_close)
        self.addCleanup(origin.shutdown)
        url = "http://127.0.0.1:%d/" % origin.server_address[1]
        for _ in range(2):
            exchange = self.client.exchange()
            rec = Recorder(exchange)
            exchange.on("response_done", lambda trailers: self.loop.stop())
            exchange.on("error", lambda err: self.loop.stop())
            exchange.request_start("GET", url, [])
            exchange.request_done([])
            self.loop.schedule(5, self.loop.stop)  # a deadline, should it hang
            self.loop.run()
            self.assertDone(rec)


class CycleTests(ClientTestCase):
    def test_a_finished_exchange_is_freed_without_the_collector(self):
        # Listeners that close over their exchange (the usual way) make a
        # reference cycle; thor drops them once response_done is emitted,
        # so reference counting frees the exchange.
        server = self.raw(answer_each(OK))
        refs = []
        bodies = []

        def fetch():
            exchange = self.client.exchange()
            refs.append(weakref.ref(exchange))
            exchange.on("response_body", lambda chunk: bodies.append((exchange.uri, chunk)))
            exchange.on("response_done", lambda trailers: exchange.res_status)
            exchange.request_start("GET", server.url(), [])
            exchange.request_done([])

        gc.disable()
        self.addCleanup(gc.enable)
        fetch()
        fetch()
        self.run_until(lambda: len(bodies) == 2 and all(ref() is None for ref in refs))
        self.assertEqual([chunk for _, chunk in bodies], [b"hello", b"hello"])


class ThorServerTests(ClientTestCase):
    def make_server(self, **kw):
        server = HttpServer("127.0.0.1", 0, self.loop, **kw)
        self.addCleanup(server.close)

        def echo(ex, body, trailers):
            ex.response_start(200, "OK", [("Content-Type", "text/plain"),
                                          ("X-Method", ex.method)])
            ex.response_body(ex.uri + b" " + body)
            ex.response_done([])

        answer_when_complete(server, echo)
        return server

    def test_get_post_and_reuse(self):
        server = self.make_server()
        url = "http://127.0.0.1:%d" % server.port
        rec = self.fetch(url + "/one")
        self.assertDone(rec, b"/one ")
        rec = self.fetch(url + "/two", method="POST", body=b"chunked body")
        self.assertDone(rec, b"/two chunked body")
        rec = self.fetch(url + "/three", method="PUT",
                         headers=[("Content-Length", "3")], body=b"abc")
        self.assertDone(rec, b"/three abc")
        self.assertEqual(rec.header("x-method"), [b"PUT"])
        self.assertEqual(len(server.connections), 1)

    def test_many_in_flight_over_limited_pool(self):
        server = self.make_server()
        self.client.max_server_conn = 3
        recs = [self.request("http://127.0.0.1:%d/%d" % (server.port, i)) for i in range(30)]
        self.run_until(lambda: all(rec.finished for rec in recs))
        for i, rec in enumerate(recs):
            self.assertDone(rec, b"/%d " % i)
        self.assertLessEqual(len(server.connections), 3)

    def test_https(self):
        certfile, keyfile = make_cert("localhost")
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(certfile, keyfile)
        server = self.make_server(tls_context=server_context)
        url_ip = "https://127.0.0.1:%d/secure" % server.port

        # Refused by default: the certificate is not in the system's store.
        rec = self.fetch(url_ip)
        self.assertError(rec, error.ConnectError)

        # Verified with a supplied context (instance setting).
        context = ssl.create_default_context(cafile=certfile)
        self.client.tls_context = context
        rec = self.fetch(url_ip)
        self.assertDone(rec, b"/secure ")
        rec = self.fetch(url_ip)
        self.assertDone(rec, b"/secure ")
        self.assertEqual(len(server.connections), 1)

        # A host name the certificate does not cover is refused.
        wrong_cert, _ = make_cert("wrong.example")
        other = HttpClient(self.loop)
        other.tls_context = ssl.create_default_context(cafile=wrong_cert)
        exchange = other.exchange()
        rec = Recorder(exchange)
        exchange.request_start("GET", url_ip, [])
        exchange.request_done([])
        self.run_until(lambda: rec.finished)
        self.assertError(rec, error.ConnectError)


# -- what programs written for Thor 0.17 use ---------------------------------------


class Thor017Tests(ClientTestCase):
    """The names REDbot and upstream's tests use, behaving as there."""

    def test_conn_and_res_version(self):
        server = self.raw(answer_each(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
        exchange = self.client.exchange()
        rec = Recorder(exchange)
        seen = {}

        def response_start(status, phrase, headers):
            seen["version"] = exchange.res_version
            seen["conn version"] = exchange.conn.res_version
            seen["tcp"] = exchange.conn.tcp_conn
            seen["connected"] = exchange.conn.tcp_connected

        exchange.on("response_start", response_start)
        self.assertIsNone(exchange.conn)
        exchange.request_start("GET", server.url(), [])
        exchange.request_done([])
        self.run_until(lambda: rec.finished)
        self.assertDone(rec)
        self.assertEqual(seen["version"], b"1.0")
        self.assertEqual(seen["conn version"], b"1.0")
        self.assertTrue(hasattr(seen["tcp"], "abort"))
        self.assertTrue(seen["connected"])
        self.assertIsNone(exchange.conn)  # done: the connection is not its own

    def test_input_lengths(self):
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n"
        body = b"5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n"
        plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        for response, head_length, transfer_length in (
            (head + body, len(head), len(body)),
            (plain + b"hello", len(plain), 5),
        ):
            with self.subTest(response=response):
                server = self.raw(answer_each(response))
                exchange = self.client.exchange()
                rec = Recorder(exchange)
                at_start = []
                exchange.on("response_start",
                            lambda *a: at_start.append(exchange.input_header_length))
                exchange.on("response_done", lambda t: at_start.append(
                    (exchange.input_header_length, exchange.input_transfer_length)))
                exchange.request_start("GET", server.url(), [])
                exchange.request_done([])
                self.run_until(lambda: rec.finished)
                self.assertEqual(at_start, [head_length, (head_length, transfer_length)])

    def test_closing_conn_drops_the_fetch(self):
        # REDbot's _abort_exchange and stop(): exchange.conn.close() in the
        # middle of a response. The exchange then fails (from the loop).
        server = self.raw(answer_each(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel"))
        rec = self.request(server.url())
        rec.exchange.on("response_start", lambda *a: rec.exchange.conn.close())
        self.run_until(lambda: rec.finished)
        self.assertError(rec, error.ConnectionClosedError)
        self.assertEqual(rec.names, ["response_start", "error"])
        self.run_until(lambda: server.conns[0].closed)
        server.script = answer_each(OK)
        self.assertDone(self.fetch(server.url()))

    def test_aborting_tcp_conn_mid_body(self):
        # REDbot's captcha: exchange.conn.tcp_conn.abort() from response_body.
        server = self.raw(answer_each(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel"))
        rec = self.request(server.url())
        rec.exchange.on("response_body", lambda chunk: rec.exchange.conn.tcp_conn.abort())
        self.run_until(lambda: rec.finished)
        self.assertError(rec, error.ConnectError)
        self.run_until(lambda: server.conns[0].closed)
        self.assertEqual(self.client._origins, {})

    def test_check_ip_refuses(self):
        server = self.raw(answer_each(OK))
        seen = []

        def check_ip(address):
            seen.append(address)
            return False

        self.client.check_ip = check_ip
        rec = self.fetch(server.url())
        self.assertError(rec, error.AccessError)
        self.assertIsInstance(rec.error, error.ConnectError)
        self.assertEqual(seen, ["127.0.0.1"])
        self.settle()
        self.assertEqual(server.conns, [])  # nothing connected
        self.client.check_ip = lambda address: True
        self.assertDone(self.fetch(server.url()))

    def test_check_ip_set_on_a_class(self):
        server = self.raw(answer_each(OK))

        def refuse(address):
            return False

        class Careful(HttpClient):
            check_ip = refuse

        client = Careful(self.loop)
        self.addCleanup(client.close)
        exchange = client.exchange()
        rec = Recorder(exchange)
        exchange.request_start("GET", server.url(), [])
        exchange.request_done([])
        self.run_until(lambda: rec.finished)
        self.assertError(rec, error.AccessError)

    def test_check_ip_with_a_transport_that_cannot_apply_it(self):
        # A tcp_client_class of the application's that knows nothing of
        # check_ip: refused, never connected unchecked.
        from thor.events import EventEmitter

        connects = []

        class OldTransport(EventEmitter):
            def __init__(self, loop):
                EventEmitter.__init__(self)

            def connect(self, host, port, timeout=None):
                connects.append((host, port))

        self.client.tcp_client_class = OldTransport
        self.client.check_ip = lambda address: True
        rec = self.fetch("http://127.0.0.1:1/")
        self.assertError(rec, error.AccessError)
        self.assertEqual(connects, [])

    def test_dns_error(self):
        self.client.connect_timeout = 3
        rec = self.fetch("http://nonexistent.invalid/", )
        if isinstance(rec.error, error.ConnectTimeoutError):
            self.skipTest("the resolver did not answer in time")
        self.assertError(rec, error.DnsError)
        self.assertIn("nonexistent.invalid", rec.error.detail)

    def test_careful_false_still_reports_bare_lf(self):
        # REDbot sets careful=False and reports what thor finds, as on 0.17.
        response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\nX: y\r\n\r\nhello"
        server = self.raw(answer_each(response))
        self.assertError(self.fetch(server.url()), error.BadFieldError)
        self.client.careful = False
        self.assertError(self.fetch(server.url()), error.BadFieldError)

    def test_a_coding_under_chunked_is_left_applied(self):
        # As Thor 0.17: the body de-chunked, gzip still applied and named.
        body = gzip.compress(b"hello", mtime=0)
        response = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                    + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        server = self.raw(answer_each(response))
        rec = self.fetch(server.url())
        self.assertDone(rec, body)

    def test_a_large_response_head_is_read(self):
        # Thor 0.17's 128 KiB field section: a 70 KB field is REDbot's to report.
        response = (b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 70000
                    + b"\r\nContent-Length: 2\r\n\r\nok")
        server = self.raw(answer_each(response))
        self.assertDone(self.fetch(server.url()), b"ok")

    def test_retries_spent_is_a_connect_error(self):
        server = self.raw(lambda conn: conn.close() if conn.heads else None)
        rec = self.fetch(server.url(), method="OPTIONS")
        self.assertError(rec, error.ConnectError)
        self.assertEqual(len(server.conns), 3)  # retry_limit 2


# -- the command line --------------------------------------------------------------


class CommandLineTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = b"hello from " + self.path.encode()
                self.send_response(404 if self.path == "/missing" else 200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Seen", self.headers.get("X-Test", "-"))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(length) if length else b""
                body = b"posted " + data
                self.send_response(201)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_PUT = do_POST

            def log_message(self, *args):
                pass

        cls.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        cls.thread = threading.Thread(target=cls.httpd.serve_forever, daemon=True)
        cls.thread.start()
        cls.base = "http://127.0.0.1:%d" % cls.httpd.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.httpd.shutdown()
        cls.httpd.server_close()

    def cli(self, *args):
        env = dict(os.environ, PYTHONPATH=ROOT)
        return subprocess.run(
            [sys.executable, "-m", "thor.http.client"] + list(args),
            capture_output=True, timeout=30, env=env, cwd=ROOT,
        )

    def test_get(self):
        result = self.cli(self.base + "/path")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, b"hello from /path")

    def test_include_and_header(self):
        result = self.cli("-i", "-H", "X-Test: yes", self.base + "/h")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.startswith(b"HTTP/1.1 200 OK\r\n"), result.stdout)
        self.assertIn(b"X-Seen: yes\r\n", result.stdout)
        self.assertTrue(result.stdout.endswith(b"\r\n\r\nhello from /h"))

    def test_post_data(self):
        result = self.cli("-X", "PUT", "-d", "some data", self.base + "/p")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, b"posted some data")
        result = self.cli("-d", "x=1", self.base + "/p")
        self.assertEqual(result.stdout, b"posted x=1")

    def test_fail_status(self):
        result = self.cli(self.base + "/missing")
        self.assertEqual(result.returncode, 0)
        result = self.cli("-f", self.base + "/missing")
        self.assertEqual(result.returncode, 22)

    def test_errors(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        result = self.cli("http://127.0.0.1:%d/" % port)
        self.assertNotEqual(result.returncode, 0)
        self.assertEqual(result.stdout, b"")
        self.assertIn(b"thor:", result.stderr)
        result = self.cli("ftp://example.com/")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(b"URL", result.stderr)
        result = self.cli("-H", "no colon", self.base)
        self.assertNotEqual(result.returncode, 0)

    def test_help(self):
        result = self.cli("--help")
        self.assertEqual(result.returncode, 0)
        for option in (b"-X", b"-H", b"-d", b"-i", b"URL"):
            self.assertIn(option, result.stdout.upper() if option == b"URL" else result.stdout)


if __name__ == "__main__":
    unittest.main()
