"""HttpClient over HTTP/2 (thor.http.client_h2): the same exchanges as over
HTTP/1.1, many at once on one connection.

Origins: thor's own HttpServer (TLS, ALPN h2); a scripted server built on
thor.http.h2's H2Connection over a thor TlsServer, for what HttpServer
never does (refused streams, GOAWAY, resets, a window that never opens);
and nghttpd where it is installed (skipped otherwise).
"""

import os
import shutil
import ssl
import subprocess
import tempfile
import time
import unittest

import thor
from thor.http import HttpClient, HttpServer, error
from thor.http.h2.connection import (
    H2Config, H2Connection, RequestReceived, DataReceived, StreamEnded,
)
from thor.http.h2 import frames
from thor.http.h2.frames import REFUSED_STREAM, INTERNAL_ERROR, NO_ERROR
from thor.tls import server_context

from tests.support import LoopTestCase, make_cert

BIG = 200000  # over the 65535-octet initial window, and _PAUSE_SIZE


def client_context(certfile, alpn=("h2", "http/1.1")):
    context = ssl.create_default_context(cafile=certfile)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


class Result:
    """What an exchange emitted."""

    def __init__(self, exchange):
        self.exchange = exchange
        self.status = None
        self.phrase = None
        self.headers = None
        self.version = None
        self.body = []
        self.trailers = None
        self.error = None
        self.nonfinal = []
        self.pauses = []
        exchange.on("response_nonfinal", lambda s, p, h: self.nonfinal.append((s, h)))
        exchange.on("response_start", self._start)
        exchange.on("response_body", self.body.append)
        exchange.on("response_done", self._done)
        exchange.on("error", self._error)
        exchange.on("pause", self.pauses.append)
        self.ended = 0

    def _start(self, status, phrase, headers):
        self.status, self.phrase, self.headers = status, phrase, headers
        self.version = self.exchange.res_version

    def _done(self, trailers):
        self.trailers = trailers
        self.ended += 1

    def _error(self, err):
        self.error = err
        self.ended += 1

    @property
    def data(self):
        return b"".join(self.body)


class H2ClientTestCase(LoopTestCase):
    def setUp(self):
        super().setUp()
        self.certfile, self.keyfile = make_cert()
        self.client = HttpClient(self.loop)
        self.client.tls_context = client_context(self.certfile)
        self.client.http2 = True
        self.client.retry_delay = 0.01
        self.addCleanup(self.client.close)

    def thor_server(self, respond=None, **settings):
        """HttpServer over TLS offering h2; ``respond(exchange, body,
        trailers)`` answers each complete request (default: echo)."""
        server = HttpServer("127.0.0.1", 0, self.loop,
                            tls_context=server_context(self.certfile, self.keyfile, alpn=None))
        for name, value in settings.items():
            setattr(server, name, value)
        self.exchanges = []

        def on_exchange(exchange):
            self.exchanges.append(exchange)
            body = []
            exchange.on("request_body", body.append)
            exchange.on("request_done", lambda trailers: (respond or echo)(
                exchange, b"".join(body), trailers))

        server.on("exchange", on_exchange)
        self.addCleanup(server.close)
        return server

    def request(self, port, method="GET", path="/", headers=(), body=None, trailers=None):
        exchange = self.client.exchange()
        result = Result(exchange)
        exchange.request_start(method, "https://127.0.0.1:%d%s" % (port, path), list(headers))
        if body is not None:
            exchange.request_body(body)
        exchange.request_done(trailers or [])
        return result

    def done(self, *results, timeout=5):
        self.run_until(lambda: all(r.ended for r in results), timeout)
        for r in results:
            self.assertEqual(r.ended, 1)

    def origin(self):
        (origin,) = self.client._origins.values()
        return origin


def echo(exchange, body, trailers):
    exchange.response_start(200, "OK", [
        ("Content-Type", "text/plain"), ("X-Method", exchange.method),
        ("X-Version", exchange.req_version),
        ("X-Fields", b",".join(n.lower() for n, _ in exchange.req_hdrs)),
    ])
    exchange.response_body(body or b"empty")
    exchange.response_done([("x-request-trailers", str(len(trailers)))])


class TestAgainstHttpServer(H2ClientTestCase):
    def test_get_over_h2_with_the_same_events(self):
        server = self.thor_server()
        result = self.request(server.port, path="/a?b=c", headers=[
            ("Host", "elsewhere.example"), ("Connection", "close, x-hop"), ("X-Hop", "1"),
            ("Keep-Alive", "5"), ("TE", "gzip"), ("X-Kept", "yes"),
        ])
        self.done(result)
        self.assertIsNone(result.error)
        self.assertEqual((result.status, result.version, result.data), (b"200", b"2", b"empty"))
        self.assertEqual(result.phrase, b"")
        self.assertIn((b"x-method", b"GET"), result.headers)
        self.assertTrue(all(type(n) is bytes and type(v) is bytes for n, v in result.headers))
        (exchange,) = self.exchanges
        self.assertEqual(exchange.req_version, b"2")
        self.assertEqual(exchange.uri, b"/a?b=c")
        # :authority from the URL became the server's Host; the
        # connection-specific fields the application passed were dropped.
        self.assertEqual(exchange.req_hdrs, [(b"host", b"127.0.0.1:%d" % server.port),
                                             (b"x-kept", b"yes")])
        self.assertEqual(result.trailers, [(b"x-request-trailers", b"0")])

    def test_concurrent_requests_share_one_connection(self):
        held = []
        server = self.thor_server(lambda exchange, body, trailers: held.append(exchange))
        results = [self.request(server.port, path="/%d" % i) for i in range(10)]
        self.run_until(lambda: len(held) == 10)
        # All ten are open at once, on one connection; answered in reverse.
        self.assertEqual(len({exchange.http_conn for exchange in held}), 1)
        self.assertEqual(self.origin().count, 1)
        for exchange in reversed(held):
            echo(exchange, exchange.uri, [])
        self.done(*results)
        self.assertEqual([r.data for r in results], [b"/%d" % i for i in range(10)])
        self.assertEqual({r.version for r in results}, {b"2"})

    def test_queueing_beyond_max_concurrent_streams(self):
        held = []
        server = self.thor_server(lambda exchange, body, trailers: held.append(exchange),
                                  http2_config=H2Config(max_concurrent_streams=2))
        first = self.request(server.port)
        self.done_first = first
        # Once the server's SETTINGS are in, at most two streams are open.
        self.run_until(lambda: len(held) == 1)
        results = [self.request(server.port, path="/%d" % i) for i in range(5)]
        self.run_until(lambda: len(held) == 2)
        self.assertEqual(len(self.origin().queue), 4)
        answered = 0
        while answered < 6:
            self.run_until(lambda: len(held) > answered)
            echo(held[answered], b"x", [])
            answered += 1
            open_now = sum(1 for e in held if not e.finished)
            self.assertLessEqual(open_now, 2)
        self.done(first, *results)
        self.assertEqual(self.origin().count, 1)
        self.assertEqual(len({exchange.http_conn for exchange in held}), 1)

    def test_post_larger_than_the_window_pauses_and_is_echoed(self):
        server = self.thor_server()
        body = os.urandom(BIG)
        result = self.request(server.port, "POST", body=body,
                              headers=[("Content-Length", str(BIG))])
        self.done(result)
        self.assertIsNone(result.error)
        self.assertEqual(result.data, body)
        # The body waited for the server's window: pause, then resume.
        self.assertEqual(result.pauses, [True, False])

    def test_body_given_after_the_connection_in_pieces_with_trailers(self):
        server = self.thor_server()
        exchange = self.client.exchange()
        result = Result(exchange)
        exchange.request_start("PUT", "https://127.0.0.1:%d/up" % server.port, [])
        self.run_until(lambda: exchange.conn is not None)
        self.assertEqual(exchange.conn.res_version, b"2")
        exchange.request_body(b"one ")
        exchange.request_body("two")
        exchange.request_done([("X-Sum", "abc"), ("Content-Length", "5")])
        self.done(result)
        self.assertEqual(result.data, b"one two")
        (server_exchange,) = self.exchanges
        self.assertEqual(result.trailers, [(b"x-request-trailers", b"1")])

    def test_trailers_framed_before_the_connection_are_sent(self):
        server = self.thor_server()
        seen = []
        self.thor_trailers = seen
        exchange = self.client.exchange()
        result = Result(exchange)
        exchange.request_start("POST", "https://127.0.0.1:%d/up" % server.port, [])
        exchange.request_body(b"a")
        exchange.request_body(b"bc")
        exchange.request_done([("X-Digest", "d")])
        self.done(result)
        self.assertEqual(result.data, b"abc")
        self.assertEqual(result.trailers, [(b"x-request-trailers", b"1")])

    def test_response_pause_holds_data_until_resumed(self):
        big = os.urandom(BIG * 2)
        server = self.thor_server(lambda exchange, body, trailers: (
            exchange.response_start(200, "OK", []), exchange.response_body(big),
            exchange.response_done([])))
        out_paused = []
        server.on("exchange", lambda exchange: exchange.on("pause", out_paused.append))
        exchange = self.client.exchange()
        result = Result(exchange)
        exchange.on("response_start", lambda *args: exchange.pause(True))
        exchange.request_start("GET", "https://127.0.0.1:%d/" % server.port, [])
        exchange.request_done([])
        # The server's window closes: it is told to pause, and nothing was
        # delivered meanwhile.
        self.run_until(lambda: out_paused == [True] and result.status is not None)
        self.assertEqual(result.body, [])
        exchange.pause(False)
        self.done(result)
        self.assertEqual(result.data, big)

    def test_upgrade_request_goes_over_http11_beside_h2(self):
        # Upgrade has no meaning on an HTTP/2 stream: with thor's own
        # context, such a request gets an HTTP/1.1 connection of its own,
        # Upgrade kept, while the others share the HTTP/2 one.
        import thor.http.client as client_module
        from thor.tls import TlsClient

        class H1OnlyTls(TlsClient):
            tls_context = client_context(self.certfile, alpn=None)

        saved = client_module._h2_context_cache
        client_module._h2_context_cache = client_context(self.certfile)
        self.addCleanup(setattr, client_module, "_h2_context_cache", saved)
        self.client.tls_context = None
        self.client.tls_client_class = H1OnlyTls
        server = self.thor_server()
        first = self.request(server.port)
        self.done(first)
        upgrade = self.request(server.port, headers=[("Upgrade", "websocket")])
        after = self.request(server.port)
        self.done(upgrade, after)
        self.assertEqual([r.version for r in (first, upgrade, after)], [b"2", b"1.1", b"2"])
        self.assertIn(b"upgrade", dict(upgrade.headers)[b"X-Fields"].split(b","))

    def test_upgrade_request_fails_clearly_when_the_origin_picks_h2(self):
        # The application's context offers h2 and the origin takes it: the
        # request is refused rather than sent with its Upgrade dropped.
        server = self.thor_server()
        upgrade = self.request(server.port, headers=[("Upgrade", "websocket")])
        self.done(upgrade)
        self.assertIsInstance(upgrade.error, error.BadHeaderError)
        self.assertIn("Upgrade", str(upgrade.error))
        result = self.request(server.port)
        self.done(result)
        self.assertEqual(result.version, b"2")
        self.assertEqual(len(self.exchanges), 1)  # only the second reached it

    def test_origin_offering_only_http11(self):
        server = self.thor_server(http2=False)
        results = [self.request(server.port) for _ in range(2)]
        self.done(*results)
        self.assertEqual({r.version for r in results}, {b"1.1"})
        self.assertEqual({e.req_version for e in self.exchanges}, {b"1.1"})
        self.assertIsNone(self.origin().h2)
        self.assertEqual(self.origin().protocol, "http/1.1")

    def test_http2_off_speaks_http11_to_an_h2_origin(self):
        server = self.thor_server()
        self.client.http2 = False
        self.client.tls_context = client_context(self.certfile, alpn=None)
        result = self.request(server.port)
        self.done(result)
        self.assertEqual(result.version, b"1.1")
        self.assertEqual(HttpClient.http2, False)

    def test_own_context_offering_h2_is_honoured_with_http2_off(self):
        server = self.thor_server()
        self.client.http2 = False
        result = self.request(server.port)
        self.done(result)
        # HTTP/1.1 on a connection that agreed on h2 could only fail.
        self.assertEqual(result.version, b"2")

    def test_own_context_without_alpn_is_left_alone(self):
        server = self.thor_server()
        context = client_context(self.certfile, alpn=None)
        self.client.tls_context = context
        result = self.request(server.port)
        self.done(result)
        # Nothing was offered on it, so the origin chose nothing: HTTP/1.1.
        self.assertEqual(result.version, b"1.1")
        self.assertEqual(self.origin().protocol, "")

    def test_abort_resets_one_stream_only(self):
        held = []
        server = self.thor_server(lambda exchange, body, trailers: held.append(exchange))
        gone = self.request(server.port, path="/gone")
        kept = self.request(server.port, path="/kept")
        self.run_until(lambda: len(held) == 2)
        server_errors = []
        for exchange in held:
            exchange.on("error", server_errors.append)
        gone.exchange.abort()
        self.run_until(lambda: server_errors)
        self.assertEqual(server_errors[0].__class__, error.ConnectionClosedError)
        echo([e for e in held if e.uri == b"/kept"][0], b"kept", [])
        self.done(kept)
        self.assertEqual(gone.ended, 0)  # aborted: nothing more emitted
        self.assertEqual(self.origin().count, 1)

    def test_read_timeout_does_not_run_while_the_response_is_paused(self):
        server = self.thor_server()
        self.client.read_timeout = 0.2
        exchange = self.client.exchange()
        result = Result(exchange)
        exchange.on("response_start", lambda *args: exchange.pause(True))
        exchange.request_start("GET", "https://127.0.0.1:%d/" % server.port, [])
        exchange.request_done([])
        later = []
        self.loop.schedule(0.5, later.append, True)
        self.run_until(lambda: later)
        self.assertIsNone(result.error)
        exchange.pause(False)
        self.done(result)
        self.assertEqual(result.data, b"empty")

    def test_read_timeout_ends_one_stream_only(self):
        held = []
        server = self.thor_server(lambda exchange, body, trailers: (
            held.append(exchange) if exchange.uri == b"/slow" else echo(exchange, b"quick", [])))
        self.client.read_timeout = 0.3
        slow = self.request(server.port, path="/slow")
        self.run_until(lambda: held)
        started = time.monotonic()
        self.done(slow)
        self.assertGreaterEqual(time.monotonic() - started, 0.2)
        self.assertIsInstance(slow.error, error.ReadTimeoutError)
        quick = self.request(server.port, path="/quick")
        self.done(quick)
        self.assertEqual(quick.data, b"quick")
        self.assertEqual(self.origin().count, 1)  # the same connection

    def test_idle_timeout_closes_the_connection(self):
        server = self.thor_server()
        self.client.idle_timeout = 0.2
        result = self.request(server.port)
        self.done(result)
        h2 = self.origin().h2
        self.assertIsNotNone(h2)
        self.run_until(lambda: h2.closed)
        self.assertEqual(self.client._origins, {})

    def test_listener_that_raises_ends_its_stream_only(self):
        server = self.thor_server()
        caught = []
        self.loop.exception_handler = lambda loop, exc, where: caught.append(exc)
        bad = self.request(server.port, path="/bad")
        bad.exchange.on("response_start", lambda *args: 1 / 0)
        good = self.request(server.port, path="/good")
        self.done(bad, good)
        self.assertIsInstance(bad.error, error.ListenerError)
        self.assertEqual(good.data, b"empty")
        self.assertEqual([type(exc) for exc in caught], [ZeroDivisionError])
        self.assertEqual(self.origin().count, 1)

    def test_close_keeps_exchanges_in_progress(self):
        held = []
        server = self.thor_server(lambda exchange, body, trailers: held.append(exchange))
        result = self.request(server.port)
        self.run_until(lambda: held)
        h2 = self.origin().h2
        self.client.close()
        echo(held[0], b"late", [])
        self.done(result)
        self.assertEqual(result.data, b"late")
        self.run_until(lambda: h2.closed)


class ScriptedServer:
    """An HTTP/2 origin over TLS (thor's TlsServer, ALPN h2), built on
    H2Connection: ``on_request(server, conn, stream_id, headers, body)``
    decides each answer once the request is complete."""

    def __init__(self, test, on_request, config=None, ack=True, on_head=None):
        self.test = test
        self.on_request = on_request
        self.on_head = on_head  # (server, conn, stream_id, headers) as each head comes
        self.config = config
        self.ack = ack
        self.connections = []
        self.requests = []
        context = server_context(test.certfile, test.keyfile, alpn=("h2",))
        self.server = thor.TlsServer("127.0.0.1", 0, context, test.loop)
        self.port = self.server.port
        self.server.on("connect", self._connect)
        test.addCleanup(self.close)

    def close(self):
        self.server.close()
        for conn in self.connections:
            conn.tcp.abort()

    def _connect(self, tcp):
        conn = _ScriptedConnection(self, tcp)
        self.connections.append(conn)


class _ScriptedConnection:
    def __init__(self, server, tcp):
        self.server = server
        self.tcp = tcp
        self.h2 = H2Connection(False, server.config)
        self.h2.initiate()
        self.bodies = {}
        self.heads = {}
        tcp.on("data", self._data)
        tcp.on("close", lambda: None)
        tcp.pause(False)
        self.flush()

    def _data(self, data):
        for event in self.h2.receive_data(data):
            if isinstance(event, RequestReceived):
                self.heads[event.stream_id] = event.headers
                self.bodies[event.stream_id] = []
                if self.server.on_head is not None:
                    self.server.on_head(self.server, self, event.stream_id, event.headers)
            elif isinstance(event, DataReceived):
                self.bodies[event.stream_id].append(event.data)
                if self.server.ack:
                    self.h2.acknowledge_data(event.stream_id, event.flow_length)
            elif isinstance(event, StreamEnded):
                sid = event.stream_id
                self.server.requests.append((self, sid, dict(self.heads[sid])))
                self.server.on_request(self.server, self, sid, self.heads[sid],
                                       b"".join(self.bodies[sid]))
        self.flush()

    def respond(self, sid, body):
        self.h2.send_headers(sid, [(b":status", b"200")])
        self.h2.send_data(sid, body, True)
        self.flush()

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.tcp.write(data)


class TestAgainstScriptedServer(H2ClientTestCase):
    def test_refused_stream_is_retried_whatever_the_method(self):
        def on_request(server, conn, sid, head, body):
            if len(server.requests) == 1:
                conn.h2.reset_stream(sid, REFUSED_STREAM)
            else:
                conn.respond(sid, b"took " + body)

        server = ScriptedServer(self, on_request)
        exchange = self.client.exchange()
        result = Result(exchange)
        exchange.request_start("POST", "https://127.0.0.1:%d/" % server.port, [])
        exchange.request_body(b"da")
        exchange.request_body(b"ta")  # two pieces, no Content-Length: chunked on HTTP/1.1
        exchange.request_done([("X-Sum", "1")])
        self.done(result)
        self.assertEqual(result.data, b"took data")
        self.assertEqual(len(server.requests), 2)
        self.assertEqual(len(server.connections), 1)  # the connection stays good

    def test_reset_while_processed_retries_idempotent_only(self):
        def on_request(server, conn, sid, head, body):
            if len(server.requests) <= 2:
                conn.h2.reset_stream(sid, INTERNAL_ERROR)
            else:
                conn.respond(sid, b"ok")

        server = ScriptedServer(self, on_request)
        post = self.request(server.port, "POST", body=b"data")
        self.done(post)
        self.assertIsInstance(post.error, error.ConnectionClosedError)
        get = self.request(server.port, "GET")
        self.done(get)
        self.assertEqual(get.data, b"ok")
        self.assertEqual(len(server.requests), 3)

    def test_goaway_refuses_later_streams_which_go_to_a_new_connection(self):
        first = []

        def on_request(server, conn, sid, head, body):
            if conn is server.connections[0]:
                first.append(sid)
                if len(first) == 3:
                    # Processes the first stream only: the others were
                    # never seen, as GOAWAY's last-stream-id says (written
                    # by hand: the core's would name the highest seen).
                    conn.tcp.write(frames.goaway_frame(min(first), NO_ERROR, b""))
                    conn.respond(min(first), b"first")
            else:
                conn.respond(sid, b"second connection")

        server = ScriptedServer(self, on_request)
        results = [self.request(server.port, "POST" if i else "GET", body=b"x") for i in range(3)]
        self.done(*results)
        self.assertEqual([r.data for r in results],
                         [b"first", b"second connection", b"second connection"])
        self.assertEqual(len(server.connections), 2)

    def test_connection_closed_before_answering_retries_idempotent_only(self):
        def on_request(server, conn, sid, head, body):
            if len(server.requests) <= 2:  # the POST, and the GET's first try
                conn.tcp.abort()
            else:
                conn.respond(sid, b"ok")

        server = ScriptedServer(self, on_request)
        post = self.request(server.port, "POST", body=b"data")
        self.done(post)
        self.assertIsInstance(post.error, error.ConnectionClosedError)
        get = self.request(server.port, "GET")
        self.done(get)
        self.assertEqual(get.data, b"ok")
        self.assertEqual(len(server.connections), 3)

    def test_connection_error_fails_open_streams(self):
        def on_request(server, conn, sid, head, body):
            conn.tcp.write(b"\0\0\4\x08\0\0\0\0\0\0\0\0\0")  # WINDOW_UPDATE of 0 on the connection

        server = ScriptedServer(self, on_request)
        result = self.request(server.port)
        self.done(result)
        self.assertIsInstance(result.error, error.PeerError)
        self.run_until(lambda: not self.client._origins)

    def test_send_timeout_for_a_window_that_never_opens(self):
        server = ScriptedServer(self, lambda *args: None, ack=False)
        self.client.send_timeout = 0.3
        result = self.request(server.port, "POST", body=os.urandom(BIG))
        self.done(result)
        self.assertIsInstance(result.error, error.SendTimeoutError)

    def test_send_timeout_for_a_server_that_reads_nothing(self):
        # Windows wide open, and a server that stops reading after its
        # first read: the transport backs up instead.
        wide = H2Config(initial_window_size=2 ** 31 - 1, connection_window_size=2 ** 31 - 1)
        server = ScriptedServer(self, lambda *args: None, config=wide)
        server.server.on("connect", lambda tcp: tcp.once("data", lambda data: tcp.pause(True)))
        self.client.send_timeout = 0.3
        result = self.request(server.port, "POST", body=b"x" * (48 << 20),
                              headers=[("Content-Length", str(48 << 20))])
        self.done(result, timeout=10)
        self.assertIsInstance(result.error, error.SendTimeoutError)
        self.assertIn(True, result.pauses)
        self.run_until(lambda: not self.client._origins)

    def _answer_early(self, then):
        """A server answering 413 whole as soon as a request's head comes,
        then doing ``then(conn, sid)``; a POST whose body is not all sent,
        paused by the application on response_start, until the answer
        and ``then`` have come."""
        def on_head(server, conn, sid, head):
            conn.h2.send_headers(sid, [(b":status", b"413"), (b"content-length", b"4")])
            conn.h2.send_data(sid, b"big!", True)
            then(conn, sid)
            conn.flush()

        server = ScriptedServer(self, lambda *args: None, on_head=on_head)
        exchange = self.client.exchange()
        result = Result(exchange)
        exchange.on("response_start", lambda *args: exchange.pause(True))
        exchange.request_start("POST", "https://127.0.0.1:%d/" % server.port,
                               [("Content-Length", "100000")])
        exchange.request_body(b"a" * 1000)  # the rest is still to come
        stream = None

        def answered():
            nonlocal stream
            stream = stream or exchange._conn
            return stream is not None and stream.ended
        self.run_until(answered)
        return exchange, result, stream

    def test_complete_paused_response_kept_after_reset_no_error(self):
        # RFC 9113 8.1: a server may answer early, then reset the stream
        # with NO_ERROR to stop the upload; the response is not discarded.
        exchange, result, stream = self._answer_early(
            lambda conn, sid: conn.h2.reset_stream(sid, NO_ERROR))
        origin = self.origin()
        self.run_until(lambda: stream.stream_id not in origin.h2.h2.streams)
        self.assertEqual((result.ended, result.body), (0, []))
        exchange.pause(False)
        self.done(result)
        self.assertIsNone(result.error)
        self.assertEqual((result.status, result.data), (b"413", b"big!"))
        self.assertEqual(origin.h2.streams, {})  # its place is free

    def test_complete_paused_response_kept_after_connection_close(self):
        exchange, result, stream = self._answer_early(lambda conn, sid: None)
        conn = self.origin().h2
        conn.tcp.abort()  # as if the server had closed it
        self.run_until(lambda: conn.closed)
        exchange.pause(False)
        self.done(result)
        self.assertIsNone(result.error)
        self.assertEqual(result.data, b"big!")

    def test_held_data_given_back_when_a_paused_exchange_is_aborted(self):
        # A connection window of two responses: their held data, never
        # delivered, must be credited back, or the next exchange stalls.
        self.client.http2_config = H2Config(connection_window_size=131070)
        self.client.read_timeout = 0.5
        size = 65000

        def on_request(server, conn, sid, head, body):
            conn.respond(sid, b"s" * size if dict(head)[b":path"] == b"/small" else b"b" * BIG)

        server = ScriptedServer(self, on_request)
        paused = []
        for _ in range(2):
            exchange = self.client.exchange()
            exchange.on("response_start", lambda *args, ex=exchange: ex.pause(True))
            exchange.request_start("GET", "https://127.0.0.1:%d/small" % server.port, [])
            exchange.request_done([])
            paused.append(exchange)
        self.run_until(lambda: all(ex._conn is not None and ex._conn.ended for ex in paused))
        for exchange in paused:
            exchange.abort()
        result = self.request(server.port, path="/big")
        self.done(result)
        self.assertIsNone(result.error)
        self.assertEqual(len(result.data), BIG)
        self.assertEqual(len(server.connections), 1)

    def test_informational_response(self):
        def on_request(server, conn, sid, head, body):
            conn.h2.send_headers(sid, [(b":status", b"103"), (b"link", b"</s>")])
            conn.respond(sid, b"done")

        server = ScriptedServer(self, on_request)
        result = self.request(server.port)
        self.done(result)
        self.assertEqual(result.nonfinal, [(b"103", [(b"link", b"</s>")])])
        self.assertEqual(result.data, b"done")


def _listening_port(pid, deadline):
    from tests.test_h2_connection import _listening_port as find
    return find(pid, deadline)


@unittest.skipUnless(shutil.which("nghttpd") and os.path.isdir("/proc/self/fd"),
                     "nghttpd (or /proc) not available")
class TestAgainstNghttpd(H2ClientTestCase):
    def nghttpd(self, *options):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        with open(os.path.join(directory, "index.html"), "wb") as f:
            f.write(b"hello\n")
        self.big = os.urandom(BIG)
        with open(os.path.join(directory, "big"), "wb") as f:
            f.write(self.big)
        proc = subprocess.Popen(
            ["nghttpd", "-a", "127.0.0.1", "-d", directory, *options,
             "0", self.keyfile, self.certfile],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop():
            proc.kill()
            proc.wait()

        self.addCleanup(stop)
        return _listening_port(proc.pid, time.monotonic() + 5)

    def test_concurrent_requests_on_one_connection(self):
        port = self.nghttpd()
        paths = ["/index.html", "/big", "/missing"] * 4
        results = [self.request(port, path=path) for path in paths]
        self.done(*results, timeout=10)
        for path, r in zip(paths, results):
            self.assertIsNone(r.error)
            self.assertEqual(r.version, b"2")
            if path == "/index.html":
                self.assertEqual((r.status, r.data), (b"200", b"hello\n"))
            elif path == "/big":
                self.assertEqual((r.status, r.data), (b"200", self.big))
            else:
                self.assertEqual(r.status, b"404")
        self.assertEqual(self.origin().count, 1)

    def test_post_larger_than_the_window_echoed(self):
        port = self.nghttpd("--echo-upload")
        body = os.urandom(BIG)
        result = self.request(port, "POST", "/index.html", body=body,
                              headers=[("Content-Length", str(BIG))])
        self.done(result, timeout=10)
        self.assertIsNone(result.error)
        self.assertEqual((result.status, result.data), (b"200", body))
        self.assertIn(True, result.pauses)

    def test_queueing_beyond_the_servers_max_concurrent_streams(self):
        port = self.nghttpd("-m", "2")
        results = [self.request(port, path="/big") for _ in range(6)]
        most = []

        def ended():
            h2 = self.client._origins and self.origin().h2
            if h2:
                most.append(len(h2.streams))
            return all(r.ended for r in results)

        self.run_until(ended, 10)
        self.assertEqual(max(most), 2)  # never more open than allowed; none refused
        self.assertEqual([r.data for r in results], [self.big] * 6)
        self.assertEqual(self.origin().count, 1)
        self.assertEqual(self.origin().h2.h2.remote_settings[3], 2)  # MAX_CONCURRENT_STREAMS


    def test_streams_refused_beyond_its_limit_are_retried(self):
        # Streams opened before nghttpd's SETTINGS come, beyond its limit
        # of 2, are refused (REFUSED_STREAM) and retried.
        from thor.http import client_h2
        saved = client_h2._FIRST_STREAMS
        client_h2._FIRST_STREAMS = 100
        self.addCleanup(setattr, client_h2, "_FIRST_STREAMS", saved)
        port = self.nghttpd("-m", "2")
        results = [self.request(port, "POST", "/index.html", body=b"x") for _ in range(6)]
        self.done(*results, timeout=10)
        self.assertEqual([(r.error, r.data) for r in results], [(None, b"hello\n")] * 6)
        self.assertGreater(sum(r.exchange._retries for r in results), 0)


if __name__ == "__main__":
    unittest.main()
