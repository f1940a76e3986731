"""thor.http.proxy with HTTP/2 clients (issue 14 item 4): h2c prior
knowledge and ALPN h2 on the listening side, requests translated to
HTTP/1.1 for the origin and responses back, and what must never cross
from HTTP/2 to HTTP/1.1 (CR/LF/NUL in values, bad names, Host against
:authority, Content-Length against the body, TE, connection-specific
fields).

Clients: thor's own HTTP/2 core (tests.test_h2_server.H2Client, with
outbound checks off to send what a hostile client would), and curl,
nghttp and h2load where installed (each test skips without its tool).
Origins: thor HttpServers recording what reaches them, and a raw TCP
origin for responses thor's server would not write."""

import io
import os
import shutil
import socket
import ssl
import tempfile
import unittest

import thor
from thor.http.h2.connection import (
    H2Config, DataReceived, InformationalResponse, ResponseReceived, StreamReset,
    TrailersReceived,
)
from thor.http.h2.frames import PROTOCOL_ERROR
from thor.http.proxy import HttpProxy, tls_server_context
from thor.tls import server_context

from tests import test_proxy as tp
from tests.support import make_cert
from tests.test_h2_server import CURL_H2, PREFACE, H2Client, H2ServerTestCase

# Outbound checks off: the tests send what a hostile client would.
RAW = H2Config(validate_outbound=False)


def head(method=b"GET", path=b"/", authority=b"app.example", scheme=b"http", extra=()):
    fields = [(b":method", method)]
    if scheme is not None:
        fields.append((b":scheme", scheme))
    if path is not None:
        fields.append((b":path", path))
    if authority is not None:
        fields.append((b":authority", authority))
    return fields + list(extra)


class RawOrigin:
    """An origin answering every request (read to the end of its head)
    with ``response``, bytes as they go on the wire."""

    def __init__(self, loop, response):
        self.requests = []
        self.conns = []
        self.response = response
        self.server = thor.TcpServer("127.0.0.1", 0, loop)
        self.port = self.server.port
        self.server.on("connect", self._connect)

    def _connect(self, conn):
        self.conns.append(conn)
        received = []

        def data(chunk):
            received.append(chunk)
            whole = b"".join(received)
            if b"\r\n\r\n" in whole:
                self.requests.append(whole)
                del received[:]
                conn.write(self.response)

        conn.on("data", data)
        conn.pause(False)

    def close(self):
        self.server.close()
        for conn in self.conns:
            conn.close()


class ProxyH2TestCase(tp.ProxyTestCase, H2ServerTestCase):
    def setUp(self):
        tp.ProxyTestCase.setUp(self)
        self.arrived = []  # every exchange an origin was given, complete or not

    def origin(self, name="origin", handler=None, tls_context=None):
        server = tp.ProxyTestCase.origin(self, name, handler, tls_context)
        server.on("exchange", self._arrived)
        return server

    def _arrived(self, exchange):
        self.arrived.append(exchange)
        exchange.received = b""
        exchange.on("error", lambda err: setattr(exchange, "failed_with", err))

        def body(chunk):
            exchange.received += chunk

        exchange.on("request_body", body)

    def reverse(self, tls=False, **kwargs):
        origin = self.origin()
        context = None
        if tls:
            certfile, keyfile = make_cert("localhost")
            context = tls_server_context(certfile, keyfile)
        return origin, self.proxy(upstreams=[self.url(origin)], tls_context=context, **kwargs)

    def h2(self, proxy, tls=False):
        context = None
        if tls:
            context = ssl.create_default_context(cafile=make_cert("localhost")[0])
            context.set_alpn_protocols(["h2"])
        client = H2Client(self.loop, proxy.port, tls_context=context, config=RAW)
        self.addCleanup(lambda: client.conn is not None and client.conn.close())
        return client

    def send(self, client, fields, body=None, trailers=None):
        """One request on ``client``; its stream id, once it has ended."""
        sid = client.h2.start_request(fields, end_stream=body is None and not trailers)
        if body is not None:
            client.h2.send_data(sid, body, end_stream=not trailers)
        if trailers:
            client.h2.send_headers(sid, trailers, end_stream=True)
        client.flush()
        self.run_until(lambda: client.ended(sid))
        return sid

    def seen_fields(self, name):
        """The values of field ``name`` in the request the origin saw last."""
        return self.header(self.seen[-1][3], name)

    def reset_code(self, client, sid):
        resets = client.of(sid, StreamReset)
        return resets[0].error_code if resets else None


class TranslationTest(ProxyH2TestCase):
    def test_h2c_request_reaches_the_origin_as_http11(self):
        origin, proxy = self.reverse()
        client = self.h2(proxy)
        sid = self.send(client, head(path=b"/a?b=1", extra=[
            (b"accept", b"*/*"), (b"te", b"trailers"), (b"cookie", b"a=1"), (b"cookie", b"b=2"),
        ]))
        status, fields, body = client.response(sid)
        self.assertEqual((status, body), (b"200", b"ok:"))
        name, method, uri, headers, _, _ = self.seen[-1]
        self.assertEqual((method, uri), (b"GET", b"/a?b=1"))
        self.assertEqual(self.header(headers, "x-forwarded-host"), [b"app.example"])
        self.assertEqual(self.header(headers, "x-forwarded-proto"), [b"http"])
        self.assertEqual(self.header(headers, "cookie"), [b"a=1; b=2"])
        self.assertEqual(self.header(headers, "te"), [])  # hop-by-hop: on this hop only
        (via,) = self.header(headers, "via")
        self.assertTrue(via.startswith(b"2 thor-"), via)  # received over HTTP/2
        # and back: the origin's protocol in Via; nothing connection-specific
        self.assertTrue(fields[b"via"].startswith(b"1.1 thor-"), fields)

    def test_forward_proxy_target_from_scheme_and_authority(self):
        origin = self.origin()
        proxy = self.proxy()
        client = self.h2(proxy)
        authority = b"127.0.0.1:%d" % origin.port
        sid = self.send(client, head(path=b"/f", authority=authority))
        self.assertEqual(client.response(sid)[0], b"200")
        _, _, uri, headers, _, _ = self.seen[-1]
        self.assertEqual(uri, b"/f")
        self.assertEqual(self.header(headers, "host"), [authority])
        # A Host field alone (no :authority) names the target as well.
        sid = self.send(client, head(path=b"/g", authority=None, extra=[(b"host", authority)]))
        self.assertEqual(client.response(sid)[0], b"200")
        self.assertEqual(self.seen[-1][2], b"/g")
        # What makes no http(s) URL is refused, and goes nowhere.
        for fields in (
            head(path=b"/h", authority=authority, scheme=b"ftp"),
            head(path=b"/h", authority=None, extra=[(b"host", authority + b"/x?")]),
            head(path=b"/h", authority=None, extra=[(b"host", b"a@" + authority)]),
            head(path=b"/h", authority=None),
        ):
            sid = self.send(client, fields)
            self.assertEqual(client.response(sid)[0], b"400", fields)
        self.assertEqual(len(self.arrived), 2)

    def echo_target(self):
        """A TCP server echoing what it gets; its connections' count."""
        server = thor.TcpServer("127.0.0.1", 0, self.loop)
        conns = []

        def connect(conn):
            conns.append(conn)
            conn.on("data", conn.write)
            conn.pause(False)

        server.on("connect", connect)
        self.addCleanup(lambda: [c.close() for c in conns] and None)
        self.addCleanup(server.close)
        return server, conns

    def connect_stream(self, client, port):
        sid = client.h2.start_request([(b":method", b"CONNECT"),
                                       (b":authority", b"127.0.0.1:%d" % port)])
        client.flush()
        self.run_until(lambda: client.of(sid, ResponseReceived) or client.ended(sid))
        return sid

    def received(self, client, sid):
        return b"".join(e.data for e in client.of(sid, DataReceived))

    def test_connect_over_http2_is_a_tunnel_on_the_stream(self):
        target, conns = self.echo_target()
        forward = self.proxy(connect_ports=[target.port], access_log=io.StringIO())
        client = self.h2(forward)
        sid = self.connect_stream(client, target.port)
        (response,) = client.of(sid, ResponseReceived)
        self.assertEqual(dict(response.headers)[b":status"], b"200")
        # Both ways, more than the stream windows hold: backpressure works.
        data = os.urandom(300000)
        client.h2.send_data(sid, data)
        client.flush()
        self.run_until(lambda: len(self.received(client, sid)) >= len(data), 10)
        self.assertEqual(self.received(client, sid), data)
        # Another stream on the same connection meanwhile: a second tunnel.
        other = self.connect_stream(client, target.port)
        client.h2.send_data(other, b"ping")
        client.flush()
        self.run_until(lambda: self.received(client, other) == b"ping")
        # The client's END_STREAM closes the target; its close ends the stream.
        client.h2.send_data(sid, b"", end_stream=True)
        client.flush()
        self.run_until(lambda: client.ended(sid))
        self.assertEqual(client.of(sid, StreamReset), [])
        self.run_until(lambda: "CONNECT 127.0.0.1:%d HTTP/2\" 200" % target.port
                       in forward.access_log.getvalue())
        self.assertFalse(client.ended(other))
        self.assertEqual(len(conns), 2)
        # A reset stream closes its target.
        client.h2.reset_stream(other)
        client.flush()
        self.run_until(lambda: not conns[1].tcp_connected)
        self.assertFalse(client.closed)

    def test_end_stream_is_a_half_close_toward_the_target(self):
        # RFC 9113 8.5: the client's END_STREAM is the TCP FIN; what the
        # target sends after it still comes back, until its own close.
        server = thor.TcpServer("127.0.0.1", 0, self.loop)
        self.addCleanup(server.close)
        conns = []

        def connect(conn):
            conns.append(conn)
            conn.half_close = True
            conn.on("data", conn.write)
            conn.on("end", lambda: self.loop.schedule(
                0.05, lambda: (conn.write(b"[eof-seen]"), conn.close())))
            conn.pause(False)

        server.on("connect", connect)
        self.addCleanup(lambda: [c.abort() for c in conns] and None)
        forward = self.proxy(connect_ports=[server.port])
        client = self.h2(forward)
        sid = self.connect_stream(client, server.port)
        client.h2.send_data(sid, b"hello", end_stream=True)
        client.flush()
        self.run_until(lambda: client.ended(sid))
        self.assertEqual(client.of(sid, StreamReset), [])
        self.assertEqual(self.received(client, sid), b"hello[eof-seen]")
        self.run_until(lambda: forward.open_tunnels == 0)

    def test_http2_tunnels_in_the_open_tunnels_gauge(self):
        target, conns = self.echo_target()
        forward = self.proxy(connect_ports=[target.port])
        client = self.h2(forward)
        ended, reset = self.connect_stream(client, target.port), self.connect_stream(
            client, target.port)
        self.run_until(lambda: len(conns) == 2)
        self.assertEqual(forward.open_tunnels, 2)
        client.h2.send_data(ended, b"", end_stream=True)
        client.flush()
        self.run_until(lambda: client.ended(ended) and forward.open_tunnels == 1)
        client.h2.reset_stream(reset)
        client.flush()
        self.run_until(lambda: forward.open_tunnels == 0)
        self.assertFalse(forward._tunnels)

    def test_connect_over_http2_refusals(self):
        origin = self.origin()
        forward = self.proxy()
        client = self.h2(forward)
        # a port not in connect_ports, a target that refuses
        sid = self.connect_stream(client, origin.port)
        self.assertEqual(client.response(sid)[0], b"403")
        refusing = tp.refusing_port(self)
        allowed = self.proxy(connect_ports=[refusing])
        client = self.h2(allowed)
        with self.assertLogs("thor.http.proxy", "WARNING"):
            sid = self.connect_stream(client, refusing)
        self.run_until(lambda: client.ended(sid))
        self.assertEqual(client.response(sid)[0], b"502")
        _, reverse = self.reverse()
        client = self.h2(reverse)
        sid = self.connect_stream(client, origin.port)
        self.assertEqual(client.response(sid)[0], b"405")
        self.assertEqual(self.arrived, [])

    def test_an_idle_http2_tunnel_is_closed(self):
        target, conns = self.echo_target()
        idle = type("Idle", (HttpProxy,), {"tunnel_timeout": 0.2})
        forward = self.proxy(idle, connect_ports=[target.port])
        client = self.h2(forward)
        sid = self.connect_stream(client, target.port)
        self.run_until(lambda: client.ended(sid))
        self.run_until(lambda: conns and conns[0].tcp_connected is False)
        self.assertFalse(client.closed)  # the stream only

    def test_request_body_and_trailers_relayed(self):
        origin, proxy = self.reverse()
        client = self.h2(proxy)
        body = os.urandom(200000)  # over the stream windows both ways
        sid = self.send(client, head(method=b"POST", path=b"/up"), body,
                        trailers=[(b"x-checksum", b"abc")])
        status, fields, got = client.response(sid)
        self.assertEqual((status, got), (b"200", b"ok:" + body))
        _, _, _, headers, received, trailers = self.seen[-1]
        self.assertEqual(received, body)
        self.assertEqual([(n, v.strip()) for n, v in trailers], [(b"x-checksum", b"abc")])

    def test_response_translated_back(self):
        # What thor's own server would not write: the proxy must drop it.
        raw = RawOrigin(self.loop, (
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
            b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n"
            b"Trailer: X-Sum\r\nTransfer-Encoding: chunked\r\nX-Kept:  padded  \r\n"
            b"Content-Type: text/plain\r\n\r\n"
            b"5\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n"
        ))
        self.addCleanup(raw.close)
        proxy = self.proxy(upstreams=["http://127.0.0.1:%d" % raw.port])
        client = self.h2(proxy)
        sid = self.send(client, head())
        status, fields, body = client.response(sid)
        self.assertEqual((status, body), (b"200", b"hello"))
        for name in (b"connection", b"x-hop", b"keep-alive", b"proxy-connection",
                     b"upgrade", b"trailer", b"transfer-encoding"):
            self.assertNotIn(name, fields)
        self.assertEqual(fields[b"x-kept"], b"padded")  # no white space around, in HTTP/2
        (trailers,) = client.of(sid, TrailersReceived)
        self.assertEqual(trailers.headers, [(b"x-sum", b"5")])
        self.assertNotIn(b"te:", raw.requests[0].lower())

    def test_a_slow_http2_client_slows_the_origin(self):
        # The client opens no window: the proxy stops reading the origin,
        # whose writes back up (its exchange pauses); memory stays bounded.
        total = 16 << 20
        chunk = b"x" * 65536
        state = {"sent": 0, "paused": False, "pauses": 0}

        def stream(ex, body, trailers):
            def more():
                while not state["paused"] and state["sent"] < total:
                    ex.response_body(chunk)
                    state["sent"] += len(chunk)
                if state["sent"] >= total and not state.get("done"):
                    state["done"] = True
                    ex.response_done([])

            def pause(paused):
                state["paused"] = paused
                state["pauses"] += paused
                if not paused:
                    more()

            ex.on("pause", pause)
            ex.response_start(200, "OK", [("Content-Length", str(total))])
            more()

        origin = self.origin(handler=stream)
        proxy = self.proxy(upstreams=[self.url(origin)])
        client = H2Client(self.loop, proxy.port, config=RAW, ack=False)
        self.addCleanup(lambda: client.conn is not None and client.conn.close())
        sid = client.h2.start_request(head(), end_stream=True)
        client.flush()
        self.run_until(lambda: state["paused"], 10)
        self.assertLess(state["sent"], total)  # (the rest is in socket buffers)
        received = self.received(client, sid)
        self.assertLessEqual(len(received), 65535)  # the stream's window
        (conn,) = proxy.server.connections
        self.assertLessEqual(conn.h2.outbound_buffered(sid), 256 << 10)

        acked = [0]

        def read_all():
            events = client.events
            for event in events[acked[0]:]:
                if isinstance(event, DataReceived):
                    client.h2.acknowledge_data(event.stream_id, event.flow_length)
            acked[0] = len(events)
            client.flush()
            return client.ended(sid)

        ticker = self.tick()
        self.addCleanup(ticker.stop)
        self.run_until(read_all, 20)
        self.assertEqual(len(self.received(client, sid)), total)

    def test_head_204_and_304_have_no_body(self):
        def answer(ex, body, trailers):
            status = {b"/204": 204, b"/304": 304}.get(ex.uri, 200)
            ex.response_start(status, "X", [("Content-Length", "5"), ("ETag", '"e"')]
                              if status != 204 else [])
            if ex.method != b"HEAD" and status == 200:
                ex.response_body(b"hello")
            ex.response_done([])

        origin = self.origin(handler=answer)
        proxy = self.proxy(upstreams=[self.url(origin)])
        client = self.h2(proxy)
        for method, path, status in ((b"HEAD", b"/", b"200"), (b"GET", b"/204", b"204"),
                                     (b"GET", b"/304", b"304"), (b"GET", b"/", b"200")):
            sid = self.send(client, head(method=method, path=path))
            got, fields, body = client.response(sid)
            self.assertEqual(got, status)
            self.assertEqual(body, b"hello" if method == b"GET" and status == b"200" else b"")
            if status != b"204":
                self.assertEqual(fields[b"content-length"], b"5")
            self.assertEqual(client.of(sid, StreamReset), [])

    def test_informational_responses_relayed(self):
        def early_hints(ex, body, trailers):
            ex.response_nonfinal(103, "Early Hints", [("Link", "</s.css>; rel=preload")])
            self.echo(ex, body, trailers)

        origin = self.origin(handler=early_hints)
        proxy = self.proxy(upstreams=[self.url(origin)])
        client = self.h2(proxy)
        sid = self.send(client, head())
        (hints,) = client.of(sid, InformationalResponse)
        self.assertIn((b":status", b"103"), hints.headers)
        self.assertIn((b"link", b"</s.css>; rel=preload"), hints.headers)
        self.assertEqual(client.response(sid)[0], b"200")

    def test_streams_of_one_connection_go_to_the_origin_at_once(self):
        origin, proxy = self.reverse()
        client = self.h2(proxy)
        sids = [client.h2.start_request(head(path=b"/%d" % i), end_stream=True)
                for i in range(20)]
        client.flush()
        self.run_until(lambda: all(client.ended(sid) for sid in sids))
        self.assertEqual([client.response(sid)[0] for sid in sids], [b"200"] * 20)
        self.assertEqual(sorted(s[2] for s in self.seen),
                         sorted(b"/%d" % i for i in range(20)))

    def test_tls_listener_offers_h2_and_still_serves_http11(self):
        origin, proxy = self.reverse(tls=True)
        client = self.h2(proxy, tls=True)
        sid = self.send(client, head())
        self.assertEqual(client.alpn, "h2")
        self.assertEqual(client.response(sid)[0], b"200")
        self.assertEqual(self.seen_fields("x-forwarded-proto"), [b"https"])
        context = ssl.create_default_context(cafile=make_cert("localhost")[0])
        context.set_alpn_protocols(["http/1.1"])
        result = self.fetch("https://localhost:%d/one" % proxy.port,
                            client=self._tls_client(context))
        self.assertEqual(result["status"], b"200")
        self.assertTrue(self.seen_fields("via")[0].startswith(b"1.1 thor-"))

    def _tls_client(self, context):
        from thor.http.client import HttpClient

        client = HttpClient(self.loop)
        client.tls_context = context
        self.addCleanup(client.close)
        return client

    def test_http2_off(self):
        origin, proxy = self.reverse(cls=type("Http1Proxy", (HttpProxy,), {"http2": False}))
        self.assertFalse(proxy.server.http2)
        answer = self.raw_preface(proxy.port)
        # An HTTP/1.1 answer to "PRI * HTTP/2.0", not a SETTINGS frame.
        self.assertTrue(answer.startswith(b"HTTP/1.1 505 "), answer)
        self.assertEqual(self.arrived, [])

    def raw_preface(self, port):
        import socket

        def go():
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                got = b""
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return got
                    got += chunk

        return self.in_thread(go)


class SmugglingTest(ProxyH2TestCase):
    """Requests HTTP/2 can carry and HTTP/1.1 must never see: each is
    refused (the stream reset with PROTOCOL_ERROR, RFC 9113 8.1.1) and
    none reaches the origin; the connection serves the next request."""

    def refused(self, cases, warm=False):
        origin, proxy = self.reverse()
        client = self.h2(proxy)
        if warm:
            # An idle upstream connection is ready: what the proxy forwards
            # goes out at once.
            self.send(client, head(path=b"/before"))
            del self.arrived[:]
        for fields, body in cases:
            sid = self.send(client, fields, body)
            self.assertEqual(self.reset_code(client, sid), PROTOCOL_ERROR, fields)
            self.assertEqual(client.of(sid, ResponseReceived), [], fields)
        sid = self.send(client, head(path=b"/after"))
        self.assertEqual(client.response(sid)[0], b"200")
        return [ex.uri for ex in self.arrived]

    def test_cr_lf_nul_in_values(self):
        bad = [b"a\r\nX-Injected: 1", b"a\nX-Injected: 1", b"a\rb", b"a\x00b",
               b" leading", b"trailing\t"]
        cases = [(head(extra=[(b"x-a", value)]), None) for value in bad]
        cases += [
            (head(path=b"/x HTTP/1.1\r\nX-Injected: 1"), None),
            (head(path=b"/x y"), None),
            (head(method=b"GET /x"), None),
            (head(authority=b"a.example\r\nX-Injected: 1"), None),
            (head(extra=[(b"host", b"app.example\r\nX-Injected: 1")]), None),
        ]
        self.assertEqual(self.refused(cases, warm=True), [b"/after"])

    def test_bad_field_names(self):
        self.check_refused([(head(extra=[(name, b"1")]), None) for name in (
            b"X-Upper", b"x a", b"x:a", b"x\r\ny", b"", b"x\x00",
        )])

    def test_host_differing_from_authority(self):
        self.check_refused([
            (head(authority=b"app.example", extra=[(b"host", b"evil.example")]), None),
            (head(authority=None, extra=[(b"host", b"a.example"), (b"host", b"b.example")]),
             None),
        ])

    def check_refused(self, cases):
        self.assertEqual(self.refused(cases, warm=True), [b"/after"])

    def test_content_length_in_the_head(self):
        self.check_refused([
            (head(method=b"POST", extra=[(b"content-length", b"5")]), None),
            (head(method=b"POST", extra=[(b"content-length", b"5, 6")]), b"01234"),
            (head(method=b"POST", extra=[(b"content-length", b"-1")]), b""),
            (head(method=b"POST", extra=[(b"content-length", b"5"),
                                         (b"content-length", b"6")]), b"01234"),
        ])

    def test_a_body_longer_or_shorter_than_its_content_length(self):
        # Known only from the DATA frames: by then the head (and a short
        # body's first part) may have been streamed on to an upstream
        # connection that was ready. The proxy cuts that connection: the
        # origin has an incomplete request (an error), never a whole one,
        # never a byte past the Content-Length, nothing after it on that
        # connection. From a cold start (no upstream connection yet),
        # nothing reaches the origin at all.
        cases = [
            (head(method=b"POST", path=b"/long", extra=[(b"content-length", b"5")]),
             b"0123456789"),
            (head(method=b"POST", path=b"/short", extra=[(b"content-length", b"10")]),
             b"01234"),
        ]
        self.assertEqual(self.refused(cases[:1]), [b"/after"])
        del self.arrived[:], self.seen[:]
        uris = self.refused(cases, warm=True)
        self.assertEqual(uris[-1], b"/after")
        for ex in self.arrived[:-1]:
            self.run_until(lambda: hasattr(ex, "failed_with"))
            self.assertFalse(ex.req_complete)
            self.assertTrue(b"01234".startswith(ex.received), ex.received)
        self.assertEqual([s[2] for s in self.seen], [b"/before", b"/after"])

    def test_te_other_than_trailers(self):
        self.check_refused([(head(extra=[(b"te", value)]), None)
                      for value in (b"gzip", b"chunked", b"trailers, deflate")])

    def test_connection_specific_fields(self):
        self.check_refused([(head(extra=[(name, value)]), None) for name, value in (
            (b"connection", b"close"), (b"keep-alive", b"timeout=5"),
            (b"proxy-connection", b"keep-alive"), (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"websocket"),
        )])

    def test_a_matching_content_length_is_passed_on(self):
        origin, proxy = self.reverse()
        client = self.h2(proxy)
        sid = self.send(client, head(method=b"POST", extra=[(b"content-length", b"5")]),
                        b"01234")
        self.assertEqual(client.response(sid)[2], b"ok:01234")
        self.assertEqual(self.seen_fields("content-length"), [b"5"])


class FeaturesTest(ProxyH2TestCase):
    def test_proxy_authorization_over_http2(self):
        origin = self.origin()
        proxy = self.proxy(auth=["ann:secret"])
        client = self.h2(proxy)
        authority = b"127.0.0.1:%d" % origin.port
        sid = self.send(client, head(authority=authority))
        status, fields, _ = client.response(sid)
        self.assertEqual(status, b"407")
        self.assertIn(b"basic", fields[b"proxy-authenticate"].lower())
        sid = self.send(client, head(authority=authority, extra=[
            (b"proxy-authorization", b"Basic YW5uOnNlY3JldA=="),
        ]))
        self.assertEqual(client.response(sid)[0], b"200")
        self.assertEqual(self.seen_fields("proxy-authorization"), [])
        self.assertEqual(len(self.arrived), 1)

    def test_access_control_over_http2(self):
        origin, proxy = self.reverse(allow=["10.0.0.0/8"])
        client = self.h2(proxy)
        sid = self.send(client, head())
        self.assertEqual(client.response(sid)[0], b"403")
        self.assertEqual(self.arrived, [])

    def test_access_log_and_metrics_show_http2(self):
        log = io.StringIO()
        origin, proxy = self.reverse(access_log=log)
        client = self.h2(proxy)
        sid = self.send(client, head(path=b"/logged"))
        self.assertEqual(client.response(sid)[0], b"200")
        self.run_until(lambda: log.getvalue())
        self.assertIn('"GET /logged HTTP/2" 200 3', log.getvalue())
        self.assertEqual(proxy.metrics.requests[2], 1)

    def test_hooks_see_and_change_http2_requests(self):
        class Hooked(HttpProxy):
            def request_hook(self, pex):
                pex.headers.append((b"X-Hooked", pex.server_exchange.req_version))
                if pex.uri.endswith(b"/answer"):
                    pex.respond(202, "Accepted", [], "from the hook")

            def response_hook(self, pex, status, phrase, headers):
                return status, phrase, headers + [(b"X-Seen", b"yes")]

            def response_body_hook(self, pex, chunk):
                return (chunk or b"").upper()

        origin = self.origin()
        proxy = self.proxy(Hooked, upstreams=[self.url(origin)])
        client = self.h2(proxy)
        sid = self.send(client, head(method=b"POST"), b"abc")
        status, fields, body = client.response(sid)
        self.assertEqual((status, body, fields[b"x-seen"]), (b"200", b"OK:ABC", b"yes"))
        self.assertEqual(self.seen_fields("x-hooked"), [b"2"])
        sid = self.send(client, head(path=b"/answer"))
        self.assertEqual(client.response(sid)[:3:2], (b"202", b"from the hook"))
        self.assertEqual(len(self.arrived), 1)

    def test_an_origin_failure_is_a_502_on_the_stream_only(self):
        proxy = self.proxy(upstreams=["http://127.0.0.1:%d" % tp.refusing_port(self)])
        client = self.h2(proxy)
        with self.assertLogs("thor.http", "WARNING"):  # (the upstream's failure)
            sid = self.send(client, head())
        self.assertEqual(client.response(sid)[0], b"502")
        self.assertFalse(client.closed)

    def test_a_paused_upload_answered_502_is_not_held(self):
        # The upstream takes nothing (never accepted; small buffers), so the
        # proxy pauses the client's upload; then it fails, and the proxy
        # answers 502. The upload paused for it must not stay held (nor the
        # client's flow-control windows with it): the exchange goes.
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        proxy = self.proxy(upstreams=["http://127.0.0.1:%d" % listener.getsockname()[1]])
        client = self.h2(proxy)
        sid = client.request(b"POST", b"/upload", body=b"u" * (8 << 20))

        def paused():
            return [conn for conn in proxy.server.connections
                    if any(ex._input_paused for ex in getattr(conn, "exchanges", {}).values())]
        self.run_until(paused, 10)
        (conn,) = paused()
        with self.assertLogs("thor.http", "WARNING"):  # (the upstream's failure)
            listener.close()  # the connection it never accepted is reset
            self.run_until(lambda: client.of(sid, ResponseReceived))
        self.assertEqual(client.response(sid)[0], b"502")
        self.run_until(lambda: not conn.exchanges and not client.h2.outbound_buffered(sid), 3)
        self.assertFalse(client.closed)


class ToolsTest(ProxyH2TestCase):
    @unittest.skipUnless(CURL_H2, "curl with HTTP2 is not installed")
    def test_curl_prior_knowledge_and_tls(self):
        origin, proxy = self.reverse()
        result = self.curl("--http2-prior-knowledge", "-w", "\n%{http_version}",
                           "http://127.0.0.1:%d/pk" % proxy.port)
        self.assertEqual(result.stdout, b"ok:\n2", result.stderr)
        _, secure = self.reverse(tls=True)
        result = self.curl("--http2", "-k", "-w", "\n%{http_version}",
                           "https://127.0.0.1:%d/tls" % secure.port)
        self.assertEqual(result.stdout, b"ok:\n2", result.stderr)
        self.assertEqual(self.seen_fields("x-forwarded-proto"), [b"https"])
        self.assertEqual([s[2] for s in self.seen], [b"/pk", b"/tls"])

    @unittest.skipUnless(CURL_H2, "curl with HTTP2 is not installed")
    def test_curl_upload_larger_than_the_windows(self):
        origin, proxy = self.reverse()
        fd, path = tempfile.mkstemp(prefix="thor-h2-")
        self.addCleanup(os.remove, path)
        data = os.urandom(1 << 20)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        result = self.curl("--http2-prior-knowledge", "--data-binary", "@" + path,
                           "http://127.0.0.1:%d/up" % proxy.port)
        self.assertEqual(result.stdout, b"ok:" + data, result.stderr[-500:])

    @unittest.skipUnless(shutil.which("nghttp"), "nghttp is not installed")
    def test_nghttp_concurrent_requests(self):
        origin, proxy = self.reverse()
        url = "http://127.0.0.1:%d/" % proxy.port
        code, out, err = self.tool(["nghttp", "-n", "-s", url + "a", url + "b", url + "c"])
        self.assertEqual(code, 0, err)
        self.assertEqual(sorted(s[2] for s in self.seen), [b"/a", b"/b", b"/c"])

    @unittest.skipUnless(shutil.which("h2load"), "h2load is not installed")
    def test_h2load_through_the_proxy(self):
        origin, proxy = self.reverse()
        code, out, err = self.tool(["h2load", "-n", "2000", "-c", "10", "-m", "10",
                                    "http://127.0.0.1:%d/" % proxy.port], 60)
        self.assertEqual(code, 0, err)
        self.assertIn(b"2000 succeeded", out, out)
        self.assertIn(b"status codes: 2000 2xx", out, out)
        self.assertEqual(len(self.seen), 2000)


class UpstreamH2Test(ProxyH2TestCase):
    def test_upstream_http2_to_an_https_origin_offering_it(self):
        from thor.http.proxy import tls_upstream_context

        certfile, keyfile = make_cert("localhost")
        origin = self.origin(tls_context=server_context(certfile, keyfile))
        over_h2 = type("H2Proxy", (HttpProxy,), {"upstream_http2": True})
        proxy = self.proxy(over_h2, upstreams=["https://localhost:%d" % origin.port])
        proxy.client.tls_context = tls_upstream_context(cafile=certfile, http2=True)
        client = self.h2(proxy)
        sids = [client.h2.start_request(head(path=b"/%d" % i), end_stream=True)
                for i in range(5)]
        client.flush()
        self.run_until(lambda: all(client.ended(sid) for sid in sids))
        for sid in sids:
            status, fields, body = client.response(sid)
            self.assertEqual((status, body), (b"200", b"ok:"))
            self.assertTrue(fields[b"via"].startswith(b"2 thor-"), fields)
        self.assertEqual({ex.req_version for ex in self.arrived}, {b"2"})
        # one upstream connection carried them
        self.assertEqual(len({id(ex.connection) for ex in self.arrived}), 1)

    @unittest.skipUnless(shutil.which("nghttpd") and os.path.isdir("/proc/self/fd"),
                         "nghttpd (or /proc) not available")
    def test_upstream_http2_to_nghttpd(self):
        # A third party's HTTP/2 origin (nghttp2's server) behind the proxy,
        # HTTP/2 on both sides.
        import subprocess
        import time

        from thor.http.proxy import tls_upstream_context
        from tests.test_h2_connection import _listening_port

        certfile, keyfile = make_cert("localhost")
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        big = os.urandom(300000)  # beyond the initial windows
        with open(os.path.join(directory, "big"), "wb") as handle:
            handle.write(big)
        nghttpd = subprocess.Popen(
            ["nghttpd", "-a", "127.0.0.1", "-d", directory, "0", keyfile, certfile],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(nghttpd.wait)
        self.addCleanup(nghttpd.kill)
        port = _listening_port(nghttpd.pid, time.monotonic() + 5)
        self.assertIsNotNone(port)
        over_h2 = type("H2Proxy", (HttpProxy,), {"upstream_http2": True})
        proxy = self.proxy(over_h2, upstreams=["https://localhost:%d" % port])
        proxy.client.tls_context = tls_upstream_context(cafile=certfile, http2=True)
        client = self.h2(proxy)
        paths = [b"/big", b"/missing", b"/big"]
        sids = [client.h2.start_request(head(path=path), end_stream=True) for path in paths]
        client.flush()
        self.run_until(lambda: all(client.ended(sid) for sid in sids), 10)
        for path, sid in zip(paths, sids):
            status, fields, body = client.response(sid)
            if path == b"/big":
                self.assertEqual((status, body), (b"200", big))
            else:
                self.assertEqual(status, b"404")
            self.assertTrue(fields[b"via"].startswith(b"2 thor-"), fields)


@unittest.skipUnless(CURL_H2, "curl with HTTP2 is not installed")
class CommandLineH2Test(ProxyH2TestCase):
    run_proxy = tp.CommandLineTest.run_proxy
    stderr_matches = tp.CommandLineTest.stderr_matches
    listening_ports = tp.CommandLineTest.listening_ports

    def setUp(self):
        ProxyH2TestCase.setUp(self)
        self.stderr_seen = {}

    def test_tls_listener_speaks_h2_unless_no_http2(self):
        certfile, keyfile = make_cert("localhost")
        origin = self.origin()
        for flags, version in (((), b"2"), (("--no-http2",), b"1.1")):
            proc = self.run_proxy("--listen", "127.0.0.1:0", "--upstream", self.url(origin),
                                  "--tls-cert", certfile, "--tls-key", keyfile, *flags)
            port, = self.listening_ports(proc)
            result = self.curl("--http2", "--cacert", certfile, "-w", "\n%{http_version}",
                               "https://localhost:%d/cli" % port)
            self.assertEqual(result.stdout, b"ok:\n" + version, (flags, result.stderr))
            (via,) = self.seen_fields("via")
            self.assertTrue(via.startswith(version + b" thor-"), via)


if __name__ == "__main__":
    unittest.main()
