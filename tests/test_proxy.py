"""thor.http.proxy, end to end on loopback: thor origin servers, the proxy,
and clients (thor's HttpClient, http.client in a thread, curl in a
subprocess where installed), all driven by one loop per test; the command
line in subprocesses."""

import hashlib
import http.client
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import tracemalloc
import unittest

from thor.http.client import HttpClient
from thor.http.proxy import HttpProxy
from thor.http.server import HttpServer

from tests.support import LoopTestCase, answer_when_complete, make_cert

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CURL = shutil.which("curl")
MiB = 1048576


def refusing_port(test):
    """A port that refuses connections for the rest of ``test``: bound, so
    nothing else can take it, but not listening."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    test.addCleanup(sock.close)
    return sock.getsockname()[1]


def _nothing():
    pass


def tls_contexts():
    certfile, keyfile = make_cert("localhost")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certfile, keyfile)
    client = ssl.create_default_context(cafile=certfile)
    return server, client, certfile


class ProxyTestCase(LoopTestCase):
    """Origins, proxies and clients on self.loop."""

    def setUp(self):
        LoopTestCase.setUp(self)
        self.seen = []  # (origin name, method, uri, headers, body, trailers)

    # -- parties ---------------------------------------------------------------

    def origin(self, name="origin", handler=None, tls_context=None):
        """A thor HttpServer on port 0. ``handler(ex, body, trailers)`` answers
        once the request is complete; the default echoes what it got."""
        server = HttpServer("127.0.0.1", 0, self.loop, tls_context=tls_context)
        self.addCleanup(server.close)

        def respond(ex, data, trailers):
            self.seen.append((name, ex.method, ex.uri, ex.req_hdrs, data, trailers))
            (handler or self.echo)(ex, data, trailers)

        answer_when_complete(server, respond)
        server.name = name
        return server

    @staticmethod
    def echo(ex, body, trailers):
        ex.response_start(200, "OK", [("Content-Type", "text/plain"),
                                      ("Content-Length", str(len(body) + 3))])
        ex.response_body(b"ok:" + body)
        ex.response_done([])

    def proxy(self, cls=HttpProxy, **kwargs):
        proxy = cls("127.0.0.1", 0, self.loop, **kwargs)
        self.addCleanup(proxy.close)
        return proxy

    def url(self, server, path="/"):
        return "http://127.0.0.1:%d%s" % (server.port, path)

    def fetch(self, url, method="GET", headers=(), body=None, trailers=None, client=None):
        """Through thor's HttpClient; returns a dict with status, headers,
        body, trailers, or error."""
        client = client or HttpClient(self.loop)
        result = {}
        chunks = []
        ex = client.exchange()
        ex.on("response_start", lambda s, p, h: result.update(status=s, headers=h))
        ex.on("response_body", chunks.append)
        ex.on("response_done", lambda t: result.update(body=b"".join(chunks), trailers=t))
        ex.on("error", lambda err: result.update(error=err))
        ex.request_start(method, url, list(headers))
        for chunk in body or ():
            ex.request_body(chunk)
        ex.request_done(trailers or [])
        self.run_until(lambda: "body" in result or "error" in result, 10)
        return result

    def in_thread(self, function, timeout=20):
        """Run a blocking ``function`` in a thread while the loop runs here;
        return its result (or raise its exception)."""
        outcome = {}

        def run():
            try:
                outcome["result"] = function()
            except BaseException as exc:  # handed to the test's thread
                outcome["error"] = exc
            # The loop may be asleep with nothing to wake it: wake it, so
            # that run_until sees the outcome.
            self.loop.run_in_loop(_nothing)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.run_until(lambda: outcome, timeout)
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def tick(self, interval=0.01):
        loop = self.loop

        class Ticker:
            handle = None

            def fire(self):
                self.handle = loop.schedule(interval, self.fire)

            def stop(self):
                if self.handle is not None:
                    self.handle.delete()

        ticker = Ticker()
        ticker.fire()
        return ticker

    def curl(self, *args, timeout=20):
        if not CURL:
            self.skipTest("curl is not installed")
        command = [CURL, "-sS", "--max-time", "15"] + list(args)
        return self.in_thread(
            lambda: subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE),
            timeout,
        )

    def header(self, headers, name):
        name = name.lower().encode() if isinstance(name, str) else name.lower()
        return [v.strip() for n, v in headers if n.lower() == name]


class SpliceTest(LoopTestCase):
    def pairs(self, b_class=None):
        """Two spliced connections over socketpairs, half_close on; their
        peers (non-blocking sockets), and the list of closes."""
        from thor.http.proxy import splice
        from thor.tcp import TcpConnection

        a_peer, a_sock = socket.socketpair()
        b_peer, b_sock = socket.socketpair()
        for sock in (a_peer, b_peer):
            self.addCleanup(sock.close)
            sock.setblocking(False)
        a = TcpConnection(a_sock, "a", 0, self.loop)
        b = (b_class or TcpConnection)(b_sock, "b", 0, self.loop)
        a.half_close = b.half_close = True
        closed = []
        a.on("close", lambda: closed.append("a"))
        b.on("close", lambda: closed.append("b"))
        splice(a, b)
        return a_peer, b_peer, closed

    @staticmethod
    def reader(sock):
        """read(): True once ``sock`` has read its end; ``read.got``."""
        got = []

        def read():
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                return False
            got.append(chunk)
            return chunk == b""

        read.got = got
        return read

    def test_an_end_is_passed_on_as_a_half_close(self):
        # A's peer ends its output: B's peer reads the end, and its answer
        # still reaches A's peer; B's peer's end then closes both.
        a_peer, b_peer, closed = self.pairs()
        read_a, read_b = self.reader(a_peer), self.reader(b_peer)
        a_peer.sendall(b"ping")
        a_peer.shutdown(socket.SHUT_WR)
        self.run_until(read_b)
        self.assertEqual(b"".join(read_b.got), b"ping")
        self.assertEqual(closed, [])
        b_peer.sendall(b"answer after the end")
        self.run_until(lambda: (read_a(), b"".join(read_a.got))[1] == b"answer after the end")
        self.assertEqual(closed, [])
        b_peer.shutdown(socket.SHUT_WR)
        self.run_until(lambda: read_a() and len(closed) == 2)
        self.assertEqual(b"".join(read_a.got), b"answer after the end")

    def test_an_end_toward_a_side_that_cannot_half_close_closes_both(self):
        # TLS cannot half-close: both sides close once what each was sent
        # has been written, as before.
        from thor.tcp import TcpConnection

        class NoHalfClose(TcpConnection):
            def can_write_eof(self):
                return False

        a_peer, b_peer, closed = self.pairs(NoHalfClose)
        read_a, read_b = self.reader(a_peer), self.reader(b_peer)
        a_peer.sendall(b"ping")
        a_peer.shutdown(socket.SHUT_WR)
        self.run_until(lambda: read_b() and read_a() and len(closed) == 2)
        self.assertEqual(b"".join(read_b.got), b"ping")


class ForwardTest(ProxyTestCase):
    def get_with_http_client(self, proxy, url, headers):
        """GET ``url`` through ``proxy`` with http.client (which sends the
        fields as given): (status, headers, body)."""

        def get():
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            conn.request("GET", url, headers=headers)
            response = conn.getresponse()
            out = response.status, response.getheaders(), response.read()
            conn.close()
            return out

        return self.in_thread(get)

    def test_get_with_http_client_strips_hop_by_hop_and_adds_via(self):
        origin = self.origin()
        proxy = self.proxy()
        status, headers, body = self.get_with_http_client(proxy, self.url(origin, "/a?b=c"), {
            "Connection": "X-Secret", "X-Secret": "1", "Keep-Alive": "5",
            "Proxy-Connection": "keep-alive", "X-Kept": "yes",
        })
        self.assertEqual(status, 200)
        self.assertEqual(body, b"ok:")
        self.assertIn(("Via", "1.1 " + proxy.via), headers)
        name, method, uri, seen_headers, _, _ = self.seen[0]
        self.assertEqual((method, uri), (b"GET", b"/a?b=c"))
        names = {n.lower() for n, v in seen_headers}
        self.assertNotIn(b"x-secret", names)
        self.assertNotIn(b"keep-alive", names)
        self.assertNotIn(b"proxy-connection", names)
        self.assertEqual(self.header(seen_headers, "x-kept"), [b"yes"])
        self.assertEqual(self.header(seen_headers, "via"), [b"1.1 " + proxy.via.encode()])
        self.assertEqual(self.header(seen_headers, "host"), [b"127.0.0.1:%d" % origin.port])

    def test_connection_tokens_with_odd_spacing_case_and_empty_members(self):
        origin = self.origin()
        proxy = self.proxy()
        status, _, body = self.get_with_http_client(proxy, self.url(origin, "/"), {
            "Connection": " ,X-SECRET ,,\tkeep-alive", "X-Secret": "1", "X-Kept": "yes",
        })
        self.assertEqual((status, body), (200, b"ok:"))
        seen_headers = self.seen[0][3]
        names = {n.lower() for n, v in seen_headers}
        self.assertNotIn(b"x-secret", names)
        self.assertNotIn(b"connection", names)
        self.assertEqual(self.header(seen_headers, "x-kept"), [b"yes"])

    def test_refused_is_told_by_class_not_text(self):
        from thor.http import error
        from thor.http.proxy import _refused

        self.assertTrue(_refused(error.ConnectError("ECONNREFUSED: connection closed")))
        self.assertTrue(_refused(error.DnsError("cannot resolve")))
        self.assertFalse(_refused(error.ConnectionClosedError("reset by peer")))
        self.assertFalse(_refused(error.QueueTimeoutError("busy")))
        self.assertFalse(_refused(error.AccessError("refused by check_ip")))
        self.assertFalse(_refused(error.ReadTimeoutError("slow")))

    def test_post_body_with_curl(self):
        origin = self.origin(handler=lambda ex, body, t: (
            ex.response_start(200, "OK", []),
            ex.response_body(hashlib.sha256(body).hexdigest()),
            ex.response_done([]),
        ))
        proxy = self.proxy()
        payload = os.urandom(MiB + 17)
        path = os.path.join(self.tmpdir(), "payload")
        with open(path, "wb") as handle:
            handle.write(payload)
        done = self.curl("-x", "http://127.0.0.1:%d" % proxy.port,
                         "--data-binary", "@" + path, self.url(origin, "/upload"))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.decode(), hashlib.sha256(payload).hexdigest())
        self.assertEqual(self.seen[0][1], b"POST")

    def test_chunked_both_ways_with_http_client(self):
        def handler(ex, body, trailers):
            ex.response_start(200, "OK", [])  # no length: chunked
            for i in range(5):
                ex.response_body(b"piece%d-" % i + body[:10])
            ex.response_done([])

        origin = self.origin(handler=handler)
        proxy = self.proxy()

        def post():
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            conn.request("POST", self.url(origin, "/c"),
                         body=iter([b"hello ", b"chunked ", b"world"]), encode_chunked=True)
            response = conn.getresponse()
            out = response.getheader("Transfer-Encoding"), response.read()
            conn.close()
            return out

        encoding, body = self.in_thread(post)
        self.assertEqual(encoding, "chunked")
        self.assertEqual(body, b"".join(b"piece%d-hello chun" % i for i in range(5)))
        _, _, _, headers, seen_body, _ = self.seen[0]
        self.assertEqual(seen_body, b"hello chunked world")
        self.assertEqual(self.header(headers, "transfer-encoding"), [b"chunked"])

    def test_head_and_http10_with_curl(self):
        origin = self.origin()
        proxy = self.proxy()
        done = self.curl("-x", "http://127.0.0.1:%d" % proxy.port, "--http1.0", "-I",
                         self.url(origin, "/h"))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn(b"Content-Length: 3", done.stdout)
        self.assertEqual(self.seen[0][1], b"HEAD")
        self.assertEqual(self.header(self.seen[0][3], "via"), [b"1.0 " + proxy.via.encode()])

    def test_absolute_form_required(self):
        proxy = self.proxy()
        result = self.fetch("http://127.0.0.1:%d/relative" % proxy.port)
        self.assertEqual(result["status"], b"400")

    def test_refused_origin_is_502(self):
        proxy = self.proxy()
        port = refusing_port(self)

        def get():
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            conn.request("GET", "http://127.0.0.1:%d/" % port)
            response = conn.getresponse()
            return response.status, response.read()

        status, body = self.in_thread(get)
        self.assertEqual(status, 502)
        self.assertIn(b"Bad Gateway", body)

    def test_max_forwards(self):
        origin = self.origin()
        proxy = self.proxy()

        def options(value):
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            conn.request("OPTIONS", self.url(origin, "/"), headers={"Max-Forwards": value})
            response = conn.getresponse()
            return response.status, response.getheader("Allow"), response.read()

        status, allow, _ = self.in_thread(lambda: options("0"))
        self.assertEqual(status, 200)
        self.assertIn("GET", allow)
        self.assertEqual(self.seen, [])  # answered by the proxy
        status, allow, _ = self.in_thread(lambda: options("3"))
        self.assertEqual(status, 200)
        self.assertEqual(self.header(self.seen[0][3], "max-forwards"), [b"2"])

    def tmpdir(self):
        import tempfile

        path = tempfile.mkdtemp(prefix="thor-proxy-")
        self.addCleanup(shutil.rmtree, path, True)
        return path


class ConnectTest(ProxyTestCase):
    def setUp(self):
        ProxyTestCase.setUp(self)
        self.server_context, self.client_context, self.certfile = tls_contexts()
        self.tls_origin = self.origin("tls", tls_context=self.server_context)

    def connect_status(self, proxy, target):
        """The status of the proxy's answer to ``CONNECT target``."""

        def connect():
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            conn.request("CONNECT", target)
            return conn.getresponse().status

        return self.in_thread(connect)

    def test_tls_through_connect_with_http_client(self):
        proxy = self.proxy(connect_ports=[self.tls_origin.port])

        def get():
            conn = http.client.HTTPSConnection("127.0.0.1", proxy.port, timeout=10,
                                               context=self.client_context)
            conn.set_tunnel("localhost", self.tls_origin.port)
            conn.request("POST", "/secret", body=b"over tls")
            response = conn.getresponse()
            out = response.status, response.read()
            conn.close()
            return out

        self.assertEqual(self.in_thread(get), (200, b"ok:over tls"))
        self.assertEqual(self.seen[0][2], b"/secret")

    def test_tls_through_connect_with_curl(self):
        proxy = self.proxy(connect_ports=[self.tls_origin.port])
        done = self.curl("-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.certfile,
                         "-d", "x=1", "https://localhost:%d/curl" % self.tls_origin.port)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout, b"ok:x=1")

    def test_port_not_allowed(self):
        proxy = self.proxy()  # 443 only
        self.assertEqual(
            self.connect_status(proxy, "localhost:%d" % self.tls_origin.port), 403
        )

    def test_connect_refused_is_502(self):
        port = refusing_port(self)
        proxy = self.proxy(connect_ports=[port])
        self.assertEqual(self.connect_status(proxy, "127.0.0.1:%d" % port), 502)

    def tcp_target(self, echo=False):
        """A raw TCP server for CONNECT to reach; returns it and the list
        of connections it accepted (an echo server with ``echo``)."""
        from thor.tcp import TcpServer

        target = TcpServer("127.0.0.1", 0, self.loop)
        self.addCleanup(target.close)
        accepted = []

        def connected(conn):
            accepted.append(conn)
            if echo:
                conn.on("data", conn.write)
            conn.pause(False)

        target.on("connect", connected)
        return target, accepted

    def open_tunnel(self, proxy, target, accepted):
        """CONNECT through ``proxy`` to ``target``; returns the client's
        non-blocking socket and ``read()``, which appends what arrived to
        the list ``read.got`` and says whether the tunnel has ended."""
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        self.addCleanup(sock.close)
        sock.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % target.port)
        sock.setblocking(False)
        got = []

        def read():
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return False
            got.append(data)
            return not data

        read.got = got
        self.run_until(lambda: accepted and (read() or b"\r\n\r\n" in b"".join(got)))
        self.assertTrue(b"".join(got).startswith(b"HTTP/1.1 200 "))
        return sock, read

    def test_the_clients_half_close_reaches_the_target(self):
        # The client ends its output and waits for the answer (as a
        # netcat -N does): the target reads the end, and what it sends
        # after it still comes back, then its close ends the tunnel.
        target, accepted = self.tcp_target(echo=True)

        def answer_the_end(conn):
            conn.half_close = True
            conn.on("end", lambda: self.loop.schedule(
                0.05, lambda: (conn.write(b"[eof-seen]"), conn.close())))

        target.on("connect", answer_the_end)
        proxy = self.proxy(connect_ports=[target.port])
        sock, read = self.open_tunnel(proxy, target, accepted)
        del read.got[:]
        sock.sendall(b"hello")
        sock.shutdown(socket.SHUT_WR)
        self.run_until(read)
        self.assertEqual(b"".join(read.got), b"hello[eof-seen]")
        self.run_until(lambda: proxy.open_tunnels == 0 and not proxy._tunnels)

    def test_close_cuts_tunnels(self):
        # The server forgets a connection it hands over to a tunnel: the
        # proxy's close() cuts both ends itself.
        target, accepted = self.tcp_target()
        proxy = self.proxy(connect_ports=[target.port])
        sock, read = self.open_tunnel(proxy, target, accepted)
        closed = []
        accepted[0].on("close", lambda: closed.append(True))
        proxy.close()
        self.run_until(lambda: read() and closed)

    def test_connect_obeys_the_clients_check_ip(self):
        # A tunnel must not reach what a request may not (HttpClient.check_ip).
        target, accepted = self.tcp_target()
        proxy = self.proxy(connect_ports=[target.port])
        proxy.client.check_ip = lambda ip: ip != "127.0.0.1"
        self.assertEqual(self.connect_status(proxy, "127.0.0.1:%d" % target.port), 403)
        self.assertEqual(accepted, [])

    def test_idle_tunnel_is_closed_after_tunnel_timeout(self):
        target, accepted = self.tcp_target(echo=True)  # traffic keeps it open
        proxy = self.proxy(connect_ports=[target.port])
        proxy.tunnel_timeout = 0.3
        sock, read = self.open_tunnel(proxy, target, accepted)
        got = read.got
        started = time.monotonic()
        # Traffic every 0.1 s for 0.6 s keeps it open past its timeout.
        for n in range(6):
            ticked = []
            self.loop.schedule(0.1, ticked.append, True)
            sock.sendall(b"ping%d" % n)
            last_sent = time.monotonic()
            self.run_until(lambda: (read(), ticked)[1])
        self.assertFalse(any(chunk == b"" for chunk in got))
        self.assertIn(b"ping5", b"".join(got))
        self.run_until(read, timeout=5)  # then silence: closed
        self.assertGreaterEqual(time.monotonic() - last_sent, 0.25)
        self.assertGreater(time.monotonic() - started, 0.6)

    def test_connect_refused_in_reverse_mode(self):
        proxy = self.proxy(upstreams=[self.url(self.tls_origin)],
                           connect_ports=[self.tls_origin.port])
        self.assertEqual(
            self.connect_status(proxy, "127.0.0.1:%d" % self.tls_origin.port), 405
        )


class UpgradeTest(ProxyTestCase):
    """A WebSocket-style Upgrade: the origin answers 101 and echoes bytes,
    upper-cased, on the raw connection."""

    def upgrade_origin(self):
        def handler(ex, body, trailers):
            if self.header(ex.req_hdrs, "upgrade") != [b"echo"]:
                ex.response_start(400, "No Upgrade", [])
                ex.response_done([])
                return
            ex.response_start(101, "Switching Protocols", [("Upgrade", "echo")])
            ex.response_done([])
            tcp, buffered = ex.tunnel()
            tcp.on("data", lambda data: tcp.write(data.upper()))
            if buffered:
                tcp.write(buffered.upper())
            tcp.pause(False)

        return self.origin("upgrade", handler=handler)

    def talk(self, port, target):
        def run():
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                         b"Upgrade: echo\r\n\r\n" % target.encode())
            head = b""
            while b"\r\n\r\n" not in head:
                data = sock.recv(4096)
                if not data:
                    break
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            echoed = rest
            for word in (b"hello", b" tunnel", b" " + b"z" * 200000):
                sock.sendall(word)
            want = len(b"hello tunnel ") + 200000
            while len(echoed) < want:
                data = sock.recv(65536)
                if not data:
                    break
                echoed += data
            sock.close()
            return head, echoed

        return self.in_thread(run)

    def test_forward(self):
        origin = self.upgrade_origin()
        proxy = self.proxy()
        head, echoed = self.talk(proxy.port, self.url(origin, "/ws"))
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        self.assertIn(b"upgrade: echo", head.lower())
        self.assertEqual(echoed, b"HELLO TUNNEL " + b"Z" * 200000)

    def test_reverse(self):
        origin = self.upgrade_origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        head, echoed = self.talk(proxy.port, "/ws")
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        self.assertEqual(echoed, b"HELLO TUNNEL " + b"Z" * 200000)

    def test_upgrade_header_without_connection_option_is_dropped(self):
        origin = self.upgrade_origin()
        proxy = self.proxy(upstreams=[self.url(origin)])

        def get():
            # http.client sends the fields as given: Upgrade, no Connection.
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            conn.request("GET", "/ws", headers={"Upgrade": "echo"})
            return conn.getresponse().status

        self.assertEqual(self.in_thread(get), 400)


class ReverseTest(ProxyTestCase):
    def test_round_robin(self):
        a, b = self.origin("a"), self.origin("b")
        proxy = self.proxy(upstreams=[self.url(a), self.url(b) + "/"])
        client = HttpClient(self.loop)
        for i in range(6):
            result = self.fetch("http://127.0.0.1:%d/n%d" % (proxy.port, i), client=client)
            self.assertEqual(result["status"], b"200")
        self.assertEqual([s[0] for s in self.seen], ["a", "b"] * 3)
        self.assertEqual([s[2] for s in self.seen], [b"/n%d" % i for i in range(6)])

    def test_refusing_upstream_is_skipped(self):
        a = self.origin("a")
        dead = "http://127.0.0.1:%d" % refusing_port(self)
        proxy = self.proxy(upstreams=[dead, self.url(a)])
        client = HttpClient(self.loop)
        # The first request finds the dead one, and goes on to "a"; so do a
        # POST with a body, and the later ones skip the dead one.
        result = self.fetch("http://127.0.0.1:%d/1" % proxy.port, client=client)
        self.assertEqual(result["status"], b"200")
        result = self.fetch("http://127.0.0.1:%d/2" % proxy.port, "POST", client=client,
                            body=[b"abc"])
        self.assertEqual((result["status"], result["body"]), (b"200", b"ok:abc"))
        for i in range(3):
            self.fetch("http://127.0.0.1:%d/more" % proxy.port, client=client)
        self.assertEqual([s[0] for s in self.seen], ["a"] * 5)

    def test_origin_going_down(self):
        a, b = self.origin("a"), self.origin("b")
        proxy = self.proxy(upstreams=[self.url(a), self.url(b)])
        self.fetch("http://127.0.0.1:%d/" % proxy.port)
        self.fetch("http://127.0.0.1:%d/" % proxy.port)
        a.close()  # stops listening, closes its connections
        statuses = [
            self.fetch("http://127.0.0.1:%d/after" % proxy.port)["status"] for _ in range(4)
        ]
        self.assertEqual(statuses, [b"200"] * 4)
        self.assertEqual([s[0] for s in self.seen[2:]], ["b"] * 4)

    def test_only_upstream_down_is_502(self):
        proxy = self.proxy(upstreams=["http://127.0.0.1:%d" % refusing_port(self)])
        result = self.fetch("http://127.0.0.1:%d/" % proxy.port)
        self.assertEqual(result["status"], b"502")

    def test_serves_a_socket_made_elsewhere(self):
        # What a --workers worker does with the supervisor's socket; also
        # over TLS.
        origin = self.origin()
        server_context, client_context, _ = tls_contexts()
        for context in (None, server_context):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)
            proxy = self.proxy(upstreams=[self.url(origin)], sock=sock,
                               tls_context=context)
            self.assertEqual(proxy.port, sock.getsockname()[1])
            client = HttpClient(self.loop)
            scheme = "http"
            if context is not None:
                client.tls_context = client_context
                scheme = "https"
            result = self.fetch("%s://localhost:%d/s" % (scheme, proxy.port), client=client)
            self.assertEqual((result.get("status"), result.get("body")), (b"200", b"ok:"))
            client.close()
            proxy.close()
            self.run_until(lambda: sock.fileno() == -1)  # closed with the proxy

    def test_check_ip_refusal_is_403_and_not_down(self):
        # The client's check_ip policy refusing an upstream's address is
        # the proxy's own rule, not the upstream being down: 403, and the
        # upstream stays in the rotation (nor is the request sent around).
        a = self.origin("a")
        b = HttpServer("127.0.0.2", 0, self.loop)
        self.addCleanup(b.close)
        answer_when_complete(b, lambda ex, body, trailers: (
            self.seen.append(("b", ex.method, ex.uri, ex.req_hdrs, body, trailers)),
            self.echo(ex, body, trailers),
        ))
        proxy = self.proxy(upstreams=[self.url(a), "http://127.0.0.2:%d" % b.port])
        proxy.down_time = 60
        proxy.client.check_ip = lambda ip: ip != "127.0.0.1"
        result = self.fetch("http://127.0.0.1:%d/" % proxy.port)
        self.assertEqual(result["status"], b"403")
        self.assertEqual(self.seen, [])
        proxy.client.check_ip = None
        for _ in range(2):
            self.fetch("http://127.0.0.1:%d/" % proxy.port)
        self.assertEqual(sorted(s[0] for s in self.seen), ["a", "b"])

    def test_read_timeout_is_504(self):
        origin = self.origin(handler=lambda ex, body, t: None)  # never answers
        proxy = self.proxy(upstreams=[self.url(origin)])
        proxy.client.read_timeout = 0.3
        result = self.fetch("http://127.0.0.1:%d/" % proxy.port)
        self.assertEqual(result["status"], b"504")

    def test_origin_breaking_mid_response_cuts_the_response(self):
        def handler(ex, body, trailers):
            ex.response_start(200, "OK", [("Content-Length", "100")])
            ex.response_body(b"partial")
            self.loop.schedule(0.05, ex.abort)

        origin = self.origin(handler=handler)
        proxy = self.proxy(upstreams=[self.url(origin)])
        result = self.fetch("http://127.0.0.1:%d/" % proxy.port)
        self.assertIn("error", result)

    def test_trailers_both_ways(self):
        def handler(ex, body, trailers):
            ex.response_start(200, "OK", [("Trailer", "X-Sum")])
            ex.response_body(body)
            ex.response_done([("X-Sum", str(len(body)))])

        origin = self.origin(handler=handler)
        proxy = self.proxy(upstreams=[self.url(origin)])
        result = self.fetch("http://127.0.0.1:%d/" % proxy.port, "POST",
                            body=[b"ab", b"cde"], trailers=[("X-Check", "ok")])
        self.assertEqual(result["body"], b"abcde")
        self.assertEqual(self.header(result["trailers"], "x-sum"), [b"5"])
        self.assertEqual(self.header(self.seen[0][5], "x-check"), [b"ok"])

    def test_informational_responses_are_forwarded(self):
        def handler(ex, body, trailers):
            ex.response_nonfinal(103, "Early Hints", [("Link", "</s.css>; rel=preload")])
            self.echo(ex, body, trailers)

        origin = self.origin(handler=handler)
        proxy = self.proxy(upstreams=[self.url(origin)])
        hints = []
        client = HttpClient(self.loop)
        ex = client.exchange()
        ex.on("response_nonfinal", lambda s, p, h: hints.append((s, h)))
        done = []
        ex.on("response_done", done.append)
        ex.request_start("GET", "http://127.0.0.1:%d/" % proxy.port, [])
        ex.request_done([])
        self.run_until(lambda: done)
        self.assertEqual(hints[0][0], b"103")


class BackpressureTest(ProxyTestCase):
    """Large bodies through the proxy with a slow reader at the far end:
    the proxy must stop reading from the fast side, so memory stays flat."""

    SIZE = 64 * MiB
    LIMIT = 10 * MiB

    def pump(self, write, total, paused, chunk=b"p" * 262144):
        """Write ``total`` bytes with ``write`` whenever ``paused`` is clear;
        returns a function that resumes the pump."""
        state = {"left": total}

        def run():
            n = 0
            while state["left"] > 0 and not paused[0] and n < 8:
                piece = chunk if state["left"] >= len(chunk) else chunk[:state["left"]]
                state["left"] -= len(piece)
                write(piece)
                n += 1
            if state["left"] > 0 and not paused[0]:
                self.loop.schedule(0, run)
            elif state["left"] == 0 and not state.get("ended"):
                state["ended"] = True
                state["end"]()

        state["end"] = lambda: None
        return run, state

    def test_slow_client_large_response(self):
        size = self.SIZE

        def handler(ex, body, trailers):
            paused = [False]
            run, state = self.pump(ex.response_body, size, paused)
            state["end"] = lambda: ex.response_done([])

            def on_pause(p):
                paused[0] = p
                if not p:
                    run()

            ex.on("pause", on_pause)
            ex.response_start(200, "OK", [("Content-Length", str(size))])
            run()

        origin = self.origin(handler=handler)
        proxy = self.proxy(upstreams=[self.url(origin)])
        client = HttpClient(self.loop)
        ex = client.exchange()
        got = {"n": 0, "next": 4 * MiB, "pauses": 0}
        done = []

        def body(chunk):
            got["n"] += len(chunk)
            if got["n"] >= got["next"]:
                # The slow client: stops reading for a while every 4 MiB.
                got["next"] += 4 * MiB
                got["pauses"] += 1
                ex.pause(True)
                self.loop.schedule(0.02, ex.pause, False)

        ex.on("response_body", body)
        ex.on("response_done", done.append)
        ex.on("error", self.fail)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            ex.request_start("GET", "http://127.0.0.1:%d/big" % proxy.port, [])
            ex.request_done([])
            self.run_until(lambda: done, 60)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertEqual(got["n"], size)
        self.assertGreater(got["pauses"], 10)
        self.assertLess(peak - base, self.LIMIT, "memory grew by %d bytes" % (peak - base))

    def test_slow_origin_large_request(self):
        size = self.SIZE
        received = {"n": 0, "next": 4 * MiB}

        def on_exchange(ex):
            def body(chunk):
                received["n"] += len(chunk)
                if received["n"] >= received["next"]:
                    # The slow origin: stops reading for a while every 4 MiB.
                    received["next"] += 4 * MiB
                    ex.pause(True)
                    self.loop.schedule(0.02, ex.pause, False)

            ex.on("request_body", body)
            ex.on("request_done", lambda t: self.echo(ex, b"", t))

        origin = HttpServer("127.0.0.1", 0, self.loop)
        self.addCleanup(origin.close)
        origin.on("exchange", on_exchange)
        proxy = self.proxy(upstreams=[self.url(origin)])
        client = HttpClient(self.loop)
        ex = client.exchange()
        paused = [False]
        run, state = self.pump(ex.request_body, size, paused)
        state["end"] = lambda: ex.request_done([])

        def on_pause(p):
            paused[0] = p
            if not p:
                run()

        ex.on("pause", on_pause)
        done = []
        ex.on("response_done", done.append)
        ex.on("error", self.fail)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            ex.request_start("POST", "http://127.0.0.1:%d/up" % proxy.port,
                             [("Content-Length", str(size))])
            run()
            self.run_until(lambda: done, 60)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertEqual(received["n"], size)
        self.assertLess(peak - base, self.LIMIT, "memory grew by %d bytes" % (peak - base))


class HookTest(ProxyTestCase):
    def test_request_and_response_hooks_add_headers(self):
        class Tagging(HttpProxy):
            def request_hook(self, pex):
                pex.headers.append((b"X-Through", b"thor"))
                pex.data["tag"] = "seen"

            def response_hook(self, pex, status, phrase, headers):
                headers.append((b"X-Tag", pex.data["tag"].encode()))
                return status, phrase, headers

        origin = self.origin()
        proxy = self.proxy(Tagging, upstreams=[self.url(origin)])
        result = self.fetch("http://127.0.0.1:%d/" % proxy.port)
        self.assertEqual(self.header(self.seen[0][3], "x-through"), [b"thor"])
        self.assertEqual(self.header(result["headers"], "x-tag"), [b"seen"])

    def test_body_hooks_rewrite(self):
        class Shouting(HttpProxy):
            def request_body_hook(self, pex, chunk):
                return chunk.replace(b"a", b"4") if chunk else b"!"

            def response_body_hook(self, pex, chunk):
                if chunk is None:
                    return b" (rewritten)"
                return chunk.upper()

        origin = self.origin()
        proxy = self.proxy(Shouting, upstreams=[self.url(origin)])
        result = self.fetch("http://127.0.0.1:%d/" % proxy.port, "POST",
                            headers=[("Content-Length", "6")], body=[b"banana"])
        self.assertEqual(self.seen[0][4], b"b4n4n4!")
        self.assertEqual(result["body"], b"OK:B4N4N4! (rewritten)")
        # The origin's Content-Length no longer applies: re-framed.
        self.assertEqual(self.header(result["headers"], "content-length"), [])

    def test_respond_from_hook(self):
        class Blocking(HttpProxy):
            def request_hook(self, pex):
                if pex.uri.endswith(b"/blocked"):
                    pex.respond(403, "Forbidden", [("Content-Type", "text/plain")], "no\n")

        origin = self.origin()
        proxy = self.proxy(Blocking, upstreams=[self.url(origin)])
        result = self.fetch("http://127.0.0.1:%d/blocked" % proxy.port)
        self.assertEqual((result["status"], result["body"]), (b"403", b"no\n"))
        self.assertEqual(self.seen, [])
        result = self.fetch("http://127.0.0.1:%d/open" % proxy.port)
        self.assertEqual(result["status"], b"200")

    def test_failing_hook_is_a_500_and_reported(self):
        class Broken(HttpProxy):
            def response_hook(self, pex, status, phrase, headers):
                raise RuntimeError("hook bug")

        origin = self.origin()
        proxy = self.proxy(Broken, upstreams=[self.url(origin)])
        errors = []
        self.loop.exception_handler = lambda loop, exc, callback: errors.append(exc)
        result = self.fetch("http://127.0.0.1:%d/" % proxy.port)
        self.loop.exception_handler = self.recorder
        self.assertEqual(result["status"], b"500")
        self.assertEqual([type(e) for e in errors], [RuntimeError])

    def test_exchange_event_and_access_log(self):
        import io

        log = io.StringIO()
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)], access_log=log)
        seen = []
        proxy.on("exchange", seen.append)
        self.fetch("http://127.0.0.1:%d/logged?q=1" % proxy.port)
        self.assertEqual(len(seen), 1)
        self.assertEqual(seen[0].status, 200)
        self.assertRegex(log.getvalue(), LOG_LINE)
        self.assertIn('"GET /logged?q=1 HTTP/1.1" 200 3', log.getvalue())

    def test_access_log_that_fails_stops_quietly(self):
        class BrokenPipe:
            writes = 0

            def write(self, text):
                self.writes += 1
                raise BrokenPipeError(32, "Broken pipe")

            def flush(self):
                pass

        log = BrokenPipe()
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)], access_log=log)
        with self.assertLogs("thor.http.proxy", "WARNING") as logged:
            for _ in range(3):
                self.assertEqual(self.fetch("http://127.0.0.1:%d/" % proxy.port)["status"],
                                 b"200")
        self.assertEqual(log.writes, 1)  # then logging stopped
        said = "\n".join(logged.output)
        self.assertEqual(said.count("access log failed"), 1, said)
        # (and tearDown finds no exception reported to the loop)


LOG_LINE = re.compile(
    r'^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
    r'"[A-Z]+ \S+ HTTP/1\.[01]" \d{3} (\d+|-)$', re.M
)


class CommandLineTest(ProxyTestCase):
    def setUp(self):
        ProxyTestCase.setUp(self)
        self.stderr_seen = {}  # proc -> what stderr_matches read of its stderr

    def run_proxy(self, *args):
        env = dict(os.environ, PYTHONPATH=ROOT)
        proc = subprocess.Popen(
            [sys.executable, "-m", "thor.http.proxy"] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env,
        )

        def cleanup():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()

        self.addCleanup(cleanup)
        return proc

    def stderr_matches(self, proc, pattern, count=1, timeout=20):
        """The matches of ``pattern`` (bytes regex) in what ``proc`` wrote
        on stderr, once there are ``count`` of them, read under a deadline.
        Raw reads, so that two lines arriving together are both seen; what
        was read is kept for the next call."""
        seen = self.stderr_seen
        fd = proc.stderr.fileno()
        deadline = time.monotonic() + timeout
        while True:
            found = re.findall(pattern, seen.get(proc, b""))
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail("no %d x %r on stderr: %r" % (count, pattern, seen.get(proc)))
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    self.fail("the proxy exited: %r" % seen.get(proc))
                seen[proc] = seen.get(proc, b"") + data

    def stderr_rest(self, proc):
        """All that ``proc`` wrote on stderr, once it has exited."""
        proc.wait(20)
        rest = proc.stderr.read()
        return self.stderr_seen.get(proc, b"") + rest

    def listening_ports(self, proc, count=1, timeout=20):
        """The ports named by the proxy's "listening on HOST:PORT" lines on
        stderr (one per worker)."""
        found = self.stderr_matches(proc, rb"listening on \S+:(\d+) ", count, timeout)
        return [int(port) for port in found]

    def listening_pids(self, proc, count=1):
        """The pids in the first ``count`` "listening on" lines."""
        found = self.stderr_matches(proc, rb"listening on \S+:\d+ \(pid (\d+)\)", count)
        return [int(pid) for pid in found[:count]]

    def holding_origin(self):
        """An origin that holds requests for /hold (they are appended to
        the returned list) and echoes the others."""
        held = []

        def handler(ex, body, trailers):
            if ex.uri == b"/hold":
                held.append(ex)
            else:
                self.echo(ex, body, trailers)

        return self.origin(handler=handler), held

    def get_in_background(self, port, path):
        """GET ``path`` from ``port`` in a thread; returns (thread, outcome),
        outcome getting "response" (status, body) or "error"."""
        outcome = {}

        def get():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                conn.request("GET", path)
                response = conn.getresponse()
                outcome["response"] = (response.status, response.read())
                conn.close()
            except (OSError, http.client.HTTPException) as exc:
                outcome["error"] = exc
            self.loop.run_in_loop(_nothing)

        thread = threading.Thread(target=get, daemon=True)
        thread.start()
        return thread, outcome

    def refused(self, port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except OSError:
            return True

    def test_help(self):
        done = subprocess.run([sys.executable, "-m", "thor.http.proxy", "--help"],
                              stdout=subprocess.PIPE, cwd=ROOT, timeout=20,
                              env=dict(os.environ, PYTHONPATH=ROOT))
        self.assertEqual(done.returncode, 0)
        for flag in (b"--listen", b"--upstream", b"--workers", b"--access-log",
                     b"--connect-port", b"--connect-timeout", b"--read-timeout",
                     b"--queue-timeout", b"--send-timeout", b"--body-timeout",
                     b"--shutdown-timeout"):
            self.assertIn(flag, done.stdout)

    def test_bad_arguments(self):
        done = subprocess.run([sys.executable, "-m", "thor.http.proxy", "--listen", "nope"],
                              stderr=subprocess.PIPE, cwd=ROOT, timeout=20,
                              env=dict(os.environ, PYTHONPATH=ROOT))
        self.assertEqual(done.returncode, 2)
        self.assertIn(b"HOST:PORT", done.stderr)

    def test_forward_with_curl_http_and_connect(self):
        if not CURL:
            self.skipTest("curl is not installed")
        server_context, _, certfile = tls_contexts()
        origin = self.origin()
        tls_origin = self.origin("tls", tls_context=server_context)
        proc = self.run_proxy("--listen", "127.0.0.1:0",
                              "--connect-port", str(tls_origin.port))
        port, = self.listening_ports(proc)
        done = self.curl("-x", "http://127.0.0.1:%d" % port, self.url(origin, "/plain"))
        self.assertEqual((done.returncode, done.stdout), (0, b"ok:"), done.stderr)
        done = self.curl("-x", "http://127.0.0.1:%d" % port, "--cacert", certfile,
                         "https://localhost:%d/tls" % tls_origin.port)
        self.assertEqual((done.returncode, done.stdout), (0, b"ok:"), done.stderr)
        proc.send_signal(signal.SIGINT)
        self.assertEqual(proc.wait(10), 0)

    def test_reverse_access_log_and_graceful_sigterm(self):
        parts = {}

        def slow(ex, body, trailers):
            ex.response_start(200, "OK", [("Content-Length", "12")])
            ex.response_body(b"first")
            parts["ex"] = ex  # the rest waits for the test

        origin = self.origin(handler=slow)
        proc = self.run_proxy("--listen", "127.0.0.1:0",
                              "--upstream", self.url(origin), "--access-log")
        port, = self.listening_ports(proc)
        outcome = {}

        def get():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            conn.request("GET", "/slow")
            response = conn.getresponse()
            outcome["response"] = (response.status, response.read())

        thread = threading.Thread(target=get, daemon=True)
        thread.start()
        ticker = self.tick()
        self.addCleanup(ticker.stop)
        self.run_until(lambda: "ex" in parts, 10)
        proc.send_signal(signal.SIGTERM)

        def refused():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return False
            except OSError:
                return True

        self.run_until(refused, 10)  # stopped listening; the exchange goes on
        self.assertIsNone(proc.poll())
        parts["ex"].response_body(b"-second")
        parts["ex"].response_done([])
        self.run_until(lambda: not thread.is_alive(), 10)
        self.assertEqual(outcome["response"], (200, b"first-second"))
        out, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 0, err)
        lines = out.decode().splitlines()
        self.assertEqual(len(lines), 1, out)
        self.assertRegex(lines[0], LOG_LINE)
        self.assertIn('"GET /slow HTTP/1.1" 200 12', lines[0])

    def test_workers(self):
        origin = self.origin()
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--workers", "2",
                              "--upstream", self.url(origin))
        port, other = self.listening_ports(proc, count=2)
        self.assertEqual(port, other)  # the workers share the port

        def get():
            bodies = []
            for _ in range(6):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/w")
                bodies.append(conn.getresponse().read())
                conn.close()
            return bodies

        self.assertEqual(self.in_thread(get), [b"ok:"] * 6)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(10), 0)
        proc.communicate()


    def test_supervisor(self):
        origin, held = self.holding_origin()
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--workers", "2",
                              "--upstream", self.url(origin))
        port, _ = self.listening_ports(proc, count=2)
        first, second = self.listening_pids(proc, count=2)
        ticker = self.tick()
        self.addCleanup(ticker.stop)
        # The supervisor bound the port once, without SO_REUSEPORT: another
        # instance (with workers or without) finds it in use, at once.
        for extra in (["--workers", "2"], []):
            done = self.in_thread(lambda: subprocess.run(
                [sys.executable, "-m", "thor.http.proxy", "--listen",
                 "127.0.0.1:%d" % port] + extra,
                stderr=subprocess.PIPE, cwd=ROOT, timeout=20,
                env=dict(os.environ, PYTHONPATH=ROOT),
            ))
            self.assertEqual(done.returncode, 1, done.stderr)
            self.assertIn(b"in use", done.stderr)
        # A worker killed with SIGKILL is started again, with a line.
        os.kill(first, signal.SIGKILL)
        self.stderr_matches(proc, rb"worker %d was killed by signal 9" % first)
        self.listening_ports(proc, count=3)
        # SIGHUP: new workers; the old ones finish what they started.
        thread, outcome = self.get_in_background(port, "/hold")
        self.run_until(lambda: held, 10)
        proc.send_signal(signal.SIGHUP)
        self.listening_ports(proc, count=5)
        self.assertIsNone(proc.poll())
        self.echo(held.pop(), b"", [])
        self.run_until(lambda: not thread.is_alive(), 10)
        self.assertEqual(outcome.get("response"), (200, b"ok:"))
        replaced = self.listening_pids(proc, count=5)[3:]
        self.assertNotIn(second, replaced)
        self.assertEqual(self.fetch("http://127.0.0.1:%d/new" % port)["status"], b"200")
        # SIGTERM drains; a second SIGTERM stops everything at once.
        thread, outcome = self.get_in_background(port, "/hold")
        self.run_until(lambda: held, 10)
        proc.send_signal(signal.SIGTERM)
        self.run_until(lambda: self.refused(port), 10)
        self.assertIsNone(proc.poll())
        proc.send_signal(signal.SIGTERM)
        self.run_until(lambda: proc.poll() is not None, 10)
        self.assertEqual(proc.returncode, 1)
        self.run_until(lambda: not thread.is_alive(), 10)
        self.assertIn("error", outcome)
        self.assertIn(b"second signal", self.stderr_rest(proc))

    def test_second_signal_stops_at_once(self):
        origin, held = self.holding_origin()
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--upstream", self.url(origin))
        port, = self.listening_ports(proc)
        ticker = self.tick()
        self.addCleanup(ticker.stop)
        thread, outcome = self.get_in_background(port, "/hold")
        self.run_until(lambda: held, 10)
        proc.send_signal(signal.SIGTERM)
        self.run_until(lambda: self.refused(port), 10)  # draining, for up to 30 s
        self.assertIsNone(proc.poll())
        proc.send_signal(signal.SIGINT)
        self.run_until(lambda: proc.poll() is not None, 10)
        self.assertEqual(proc.returncode, 1)
        self.run_until(lambda: not thread.is_alive(), 10)
        self.assertIn("error", outcome)

    def test_shutdown_timeout_bounds_the_drain(self):
        origin, held = self.holding_origin()
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--upstream", self.url(origin),
                              "--shutdown-timeout", "0.3")
        port, = self.listening_ports(proc)
        ticker = self.tick()
        self.addCleanup(ticker.stop)
        thread, outcome = self.get_in_background(port, "/hold")
        self.run_until(lambda: held, 10)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        self.run_until(lambda: proc.poll() is not None, 10)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(proc.returncode, 0)
        self.run_until(lambda: not thread.is_alive(), 10)
        self.assertIn("error", outcome)

    def test_sighup_without_workers_is_ignored(self):
        origin = self.origin()
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--upstream", self.url(origin))
        port, = self.listening_ports(proc)
        proc.send_signal(signal.SIGHUP)
        self.stderr_matches(proc, rb"SIGHUP ignored")
        self.assertEqual(self.fetch("http://127.0.0.1:%d/" % port)["status"], b"200")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(10), 0)

    def test_access_log_on_a_closed_pipe(self):
        origin = self.origin()
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--upstream", self.url(origin),
                              "--access-log")
        port, = self.listening_ports(proc)
        proc.stdout.close()  # whoever read the log has gone

        def get():
            answers = []
            for _ in range(3):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/logged")
                response = conn.getresponse()
                answers.append((response.status, response.read()))
                conn.close()
            return answers

        self.assertEqual(self.in_thread(get), [(200, b"ok:")] * 3)
        proc.send_signal(signal.SIGTERM)
        err = self.stderr_rest(proc)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(err.count(b"access log failed"), 1, err)
        self.assertNotIn(b"Traceback", err)
        self.assertNotIn(b"Exception ignored", err)

if __name__ == "__main__":
    unittest.main()
