"""thor.http.proxy against hostile or broken peers: origins whose framing
lies (Content-Length with Transfer-Encoding, codings thor cannot decode),
clients that play with hop-by-hop fields, stall uploads, never read, hold
a graceful shutdown open, or flood pipelined requests.

The peers are raw loopback sockets driven by the test's loop (or, for the
flood, other processes); time bounds are set small on the proxy under
test. Tests that need a time bound of the server or client that is not
there yet say so when they skip.
"""

import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from thor.http.client import HttpClient
from thor.http.proxy import HttpProxy
from thor.http.server import HttpServer
from thor.tcp import TcpServer

from tests.test_proxy import ROOT, ProxyTestCase

MiB = 1048576
NGINX = shutil.which("nginx")


def chunked(*pieces):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


class HostileProxyTestCase(ProxyTestCase):
    def raw_origin(self, *pieces, close=True):
        """An origin that answers every request head with ``pieces`` of
        bytes, written one loop pass apart (so that they arrive in separate
        reads), then closes the connection (``close``). Returns its port."""
        server = TcpServer("127.0.0.1", 0, self.loop)
        self.addCleanup(server.close)
        loop = self.loop

        def connected(conn):
            got = []

            def write(rest):
                if conn.tcp_connected:
                    conn.write(rest[0])
                    if rest[1:]:
                        loop.schedule(0.02, write, rest[1:])
                    elif close:
                        conn.close()

            def data(chunk):
                got.append(chunk)
                if b"\r\n\r\n" in b"".join(got) and len(got) < 1000:
                    got.extend([b""] * 1000)  # answered: once per connection
                    write(list(pieces))

            conn.on("data", data)
            conn.pause(False)

        server.on("connect", connected)
        return server.port

    def raw_client(self, port, data=b""):
        """A blocking socket to ``port`` that has sent ``data``; closed at
        the end of the test."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(sock.close)
        if data:
            sock.sendall(data)
        return sock

    def closed_by_peer(self, sock):
        """A predicate: ``sock``'s peer has closed it (what was sent before
        is read and dropped)."""
        sock.setblocking(False)

        def check():
            try:
                while True:
                    if not sock.recv(65536):
                        return True
            except BlockingIOError:
                return False
            except OSError:
                return True  # reset

        return check


class FramingTest(HostileProxyTestCase):
    """RFC 9112 6.3: the proxy frames each response again for its client;
    a Content-Length that came with Transfer-Encoding is not true of the
    body and must not reach the client."""

    def through(self, *pieces):
        port = self.raw_origin(*pieces)
        proxy = self.proxy(upstreams=["http://127.0.0.1:%d" % port])
        return self.fetch("http://127.0.0.1:%d/" % proxy.port)

    def test_short_content_length_with_chunked(self):
        # The first chunk alone matches the Content-Length: the old proxy
        # sent it as a complete 5-byte response.
        body = [b"hello", b" and the rest of", b" a 48-byte body,", b" chunked!!!"]
        result = self.through(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunked(body[0])[:-5],
            chunked(*body[1:]),
        )
        self.assertEqual(result["status"], b"200")
        self.assertEqual(result["body"], b"".join(body))
        self.assertEqual(len(result["body"]), 48)
        self.assertEqual(self.header(result["headers"], "content-length"), [])

    def test_long_content_length_with_chunked(self):
        result = self.through(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n",
            chunked(b"hello"),
        )
        self.assertEqual((result.get("status"), result.get("body")), (b"200", b"hello"))
        self.assertEqual(self.header(result["headers"], "content-length"), [])

    def test_identity_coding_runs_to_the_close(self):
        # Transfer-Encoding without chunked last: the body runs to the close
        # (RFC 9112 6.3 item 4), whatever the Content-Length says.
        result = self.through(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: identity\r\n\r\nhello",
            b" world, and more",
        )
        self.assertEqual((result.get("status"), result.get("body")),
                         (b"200", b"hello world, and more"))
        self.assertEqual(self.header(result["headers"], "content-length"), [])

    def test_coding_thor_cannot_decode_is_502(self):
        # Passed on re-chunked without its name, the client would take
        # gzip bytes for the content.
        result = self.through(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00gzipped",
        )
        self.assertEqual(result["status"], b"502")
        self.assertIn(b"gzip", result["body"])

    def test_chunked_in_http10_is_not_decoded_so_502(self):
        # RFC 9112 6.1: faulty framing in HTTP/1.0; the body (to the close)
        # is still chunk-coded.
        result = self.through(
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"hello"),
        )
        self.assertEqual(result["status"], b"502")

    def test_listed_content_length_becomes_one_value(self):
        result = self.through(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello")
        self.assertEqual((result.get("status"), result.get("body")), (b"200", b"hello"))
        self.assertEqual(self.header(result["headers"], "content-length"), [b"5"])

    def test_fields_named_by_connection_stay_on_the_origin_hop(self):
        result = self.through(
            b"HTTP/1.1 200 OK\r\nConnection: x-hop, keep-alive\r\nX-Hop: secret\r\n"
            b"Keep-Alive: timeout=5\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok",
        )
        self.assertEqual(result["status"], b"200")
        names = {n.lower() for n, v in result["headers"]}
        self.assertNotIn(b"x-hop", names)
        self.assertNotIn(b"keep-alive", names)
        self.assertEqual(self.header(result["headers"], "x-kept"), [b"1"])

    def test_plain_connection_field_stays_on_the_origin_hop(self):
        # "Connection: keep-alive" / "close" alone names no field: the
        # response takes the quick path (no second look at its fields);
        # one that names a field takes the full one.
        for value, full in ((b"keep-alive", 0), (b" Close ", 0), (b"x-hop", 1)):
            port = self.raw_origin(
                b"HTTP/1.1 200 OK\r\nConnection:" + value
                + b"\r\nX-Hop: 1\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok",
            )
            proxy = self.proxy(upstreams=["http://127.0.0.1:%d" % port])
            calls = []
            framing_fields = proxy._framing_fields
            proxy._framing_fields = lambda *args: calls.append(1) or framing_fields(*args)
            result = self.fetch("http://127.0.0.1:%d/" % proxy.port)
            self.assertEqual((result["status"], result.get("body")), (b"200", b"ok"))
            self.assertEqual(self.header(result["headers"], "connection"), [], value)
            self.assertEqual(self.header(result["headers"], "x-kept"), [b"1"])
            self.assertEqual(self.header(result["headers"], "x-hop"), [] if full else [b"1"])
            self.assertEqual(len(calls), full, value)


class HopByHopTest(HostileProxyTestCase):
    def test_connection_is_a_token_list(self):
        # "x-noupgrade" is not "upgrade": no upgrade request goes upstream.
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        sock = self.raw_client(
            proxy.port, b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: x-noupgrade\r\n"
            b"Upgrade: websocket\r\nX-Noupgrade: 1\r\n\r\n",
        )
        self.run_until(lambda: self.seen)
        headers = self.seen[0][3]
        self.assertEqual(self.header(headers, "upgrade"), [])
        self.assertEqual(self.header(headers, "x-noupgrade"), [])
        self.assertNotIn(b"upgrade", b",".join(self.header(headers, "connection")).lower())
        sock.settimeout(10)
        self.assertTrue(self.in_thread(lambda: sock.recv(65536)).startswith(b"HTTP/1.1 200 "))

    def test_listed_request_content_length_goes_on_as_one_value(self):
        # RFC 9110 8.6: "3, 3" agrees with itself; the next hop gets "3".
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        sock = self.raw_client(
            proxy.port, b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc")
        self.run_until(lambda: self.seen)
        self.assertEqual(self.header(self.seen[0][3], "content-length"), [b"3"])
        self.assertEqual(self.seen[0][4], b"abc")
        sock.settimeout(10)
        self.assertTrue(self.in_thread(lambda: sock.recv(65536)).startswith(b"HTTP/1.1 200 "))

    def test_http10_upgrade_is_ignored(self):
        # RFC 9110 7.8: a server ignores Upgrade in an HTTP/1.0 request.
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        sock = self.raw_client(
            proxy.port,
            b"GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        self.run_until(lambda: self.seen)
        self.assertEqual(self.header(self.seen[0][3], "upgrade"), [])
        sock.settimeout(10)
        self.assertTrue(self.in_thread(lambda: sock.recv(65536)).startswith(b"HTTP/1.1 200 "))

    def test_client_sends_asterisk_for_an_empty_path(self):
        # RFC 9112 3.2.4, which the proxy relies on.
        origin = self.origin()
        self.fetch("http://127.0.0.1:%d" % origin.port, "OPTIONS")
        self.assertEqual(self.seen.pop()[2], b"*")
        self.fetch("http://127.0.0.1:%d/" % origin.port, "OPTIONS")
        self.assertEqual(self.seen.pop()[2], b"/")
        self.fetch("http://127.0.0.1:%d" % origin.port, "GET")
        self.assertEqual(self.seen.pop()[2], b"/")

    def test_options_with_an_empty_path_is_asterisk_form(self):
        origin = self.origin()
        forward = self.proxy()
        reverse = self.proxy(upstreams=[self.url(origin)])
        for port, target in (
            (forward.port, b"http://127.0.0.1:%d" % origin.port),
            (reverse.port, b"http://127.0.0.1:%d" % origin.port),
            (reverse.port, b"*"),
        ):
            self.raw_client(port, b"OPTIONS %s HTTP/1.1\r\nHost: a\r\n\r\n" % target)
            self.run_until(lambda: self.seen)
            self.assertEqual(self.seen.pop()[2], b"*", target)
        self.raw_client(
            forward.port, b"OPTIONS http://127.0.0.1:%d/ HTTP/1.1\r\nHost: a\r\n\r\n" % origin.port
        )
        self.run_until(lambda: self.seen)
        self.assertEqual(self.seen.pop()[2], b"/")


class StalledPeerTest(HostileProxyTestCase):
    """What a client or origin that stops can make the proxy hold."""

    @unittest.skipUnless(hasattr(HttpServer, "body_timeout"), "needs HttpServer.body_timeout")
    def test_stalled_uploads_do_not_starve_other_requests(self):
        # Each stalled upload holds an upstream connection (or a place in
        # the queue for one); once the server gives up on its body, the
        # proxy aborts the upstream exchange and the slot is free.
        class Proxy(HttpProxy):
            body_timeout = 0.3
            max_server_conn = 2

        origin = self.origin()
        proxy = self.proxy(Proxy, upstreams=[self.url(origin)])
        uploads = [
            self.raw_client(proxy.port, b"POST /up HTTP/1.1\r\nHost: a\r\n"
                            b"Content-Length: 1000\r\n\r\n" + b"x" * 10)
            for _ in range(4)
        ]
        self.run_until(lambda: len(proxy.server.connections) == 4)
        started = time.monotonic()
        result = self.fetch("http://127.0.0.1:%d/after" % proxy.port)
        self.assertEqual(result.get("status"), b"200", result)
        self.assertLess(time.monotonic() - started, 5)
        for sock in uploads:
            self.run_until(self.closed_by_peer(sock))
        self.assertEqual([s[2] for s in self.seen], [b"/after"])

    @unittest.skipUnless(hasattr(HttpServer, "send_timeout"), "needs HttpServer.send_timeout")
    def test_client_that_reads_nothing_releases_the_origin(self):
        class Proxy(HttpProxy):
            send_timeout = 0.3

        origin_failed = []

        def on_exchange(ex):
            state = {"paused": False, "left": 256 * MiB}

            def write():
                while not state["paused"] and state["left"] > 0 and not origin_failed:
                    state["left"] -= 65536
                    ex.response_body(b"z" * 65536)

            def pause(paused):
                state["paused"] = paused
                if not paused:
                    write()

            ex.on("pause", pause)
            ex.on("error", origin_failed.append)
            ex.on("request_done", lambda t: (
                ex.response_start(200, "OK", [("Content-Length", str(state["left"]))]),
                write(),
            ))

        origin = HttpServer("127.0.0.1", 0, self.loop)
        self.addCleanup(origin.close)
        origin.on("exchange", on_exchange)
        proxy = self.proxy(Proxy, upstreams=[self.url(origin)])
        sock = socket.socket()
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", proxy.port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")  # and never reads
        self.run_until(lambda: origin_failed, 10)
        self.run_until(lambda: not proxy.server.connections)

    @unittest.skipUnless(hasattr(HttpClient, "send_timeout"), "needs HttpClient.send_timeout")
    def test_origin_that_reads_no_body_is_504(self):
        class Proxy(HttpProxy):
            send_timeout = 0.3

        def on_exchange(ex):
            ex.on("request_start", lambda *args: ex.pause(True))  # and never answers

        origin = HttpServer("127.0.0.1", 0, self.loop)
        self.addCleanup(origin.close)
        origin.on("exchange", on_exchange)
        proxy = self.proxy(Proxy, upstreams=[self.url(origin)])
        size = 16 * MiB
        result = self.fetch("http://127.0.0.1:%d/up" % proxy.port, "POST",
                            headers=[("Content-Length", str(size))], body=[b"u" * size])
        self.assertEqual(result.get("status"), b"504", result)

    @unittest.skipUnless(hasattr(HttpClient, "queue_timeout"), "needs HttpClient.queue_timeout")
    def test_queue_timeout_is_504_and_does_not_mark_the_upstream_down(self):
        # A busy upstream is not a down one: the request that waited too
        # long for a connection to it gets 504, and it is not taken out of
        # the rotation (nor is the request sent around the others, each
        # wait as long again).
        class Proxy(HttpProxy):
            queue_timeout = 0.3
            max_server_conn = 1
            down_time = 60

        held = []

        def handler(ex, body, trailers):
            if ex.uri == b"/hold":
                held.append(ex)
            else:
                self.echo(ex, body, trailers)

        a, b, c = self.origin("a", handler), self.origin("b", handler), self.origin("c", handler)
        proxy = self.proxy(Proxy, upstreams=[self.url(a), self.url(b), self.url(c)])
        client = HttpClient(self.loop)
        answers = []
        for _ in range(2):  # held by a and b
            ex = client.exchange()
            ex.on("response_start", lambda s, p, h: answers.append(s))
            ex.request_start("GET", "http://127.0.0.1:%d/hold" % proxy.port, [])
            ex.request_done([])
        self.run_until(lambda: len(held) == 2)
        self.assertEqual(self.fetch("http://127.0.0.1:%d/c" % proxy.port)["status"], b"200")
        result = self.fetch("http://127.0.0.1:%d/queued" % proxy.port)  # for a
        self.assertEqual(result.get("status"), b"504", result)
        for ex in held:
            self.echo(ex, b"", [])
        self.run_until(lambda: len(answers) == 2)
        del self.seen[:]
        for _ in range(3):
            self.assertEqual(self.fetch("http://127.0.0.1:%d/next" % proxy.port)["status"], b"200")
        self.assertEqual(sorted(s[0] for s in self.seen), ["a", "b", "c"])


class ShutdownTest(HostileProxyTestCase):
    def test_graceful_shutdown_ends_within_shutdown_timeout(self):
        # Four clients that would each hold a drain open: one trickling a
        # head, one stalled in its upload, one silent, one whose response
        # the origin holds.
        class Proxy(HttpProxy):
            shutdown_timeout = 0.5

        held = []
        origin = self.origin(handler=lambda ex, body, trailers: held.append(ex))
        proxy = self.proxy(Proxy, upstreams=[self.url(origin)])
        clients = [
            self.raw_client(proxy.port, b"GET /trickle HTTP/1.1\r\nHo"),
            self.raw_client(proxy.port, b"POST /up HTTP/1.1\r\nHost: a\r\n"
                            b"Content-Length: 100\r\n\r\nxx"),
            self.raw_client(proxy.port),
            self.raw_client(proxy.port, b"GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"),
        ]
        self.run_until(lambda: held and len(proxy.server.connections) == 4)
        stopped = []
        proxy.on("stop", lambda: stopped.append(time.monotonic()))
        started = time.monotonic()
        proxy.graceful_shutdown()
        self.run_until(lambda: stopped, 5)
        self.assertLess(stopped[0] - started, 3)
        for sock in clients:
            self.run_until(self.closed_by_peer(sock))


# -- the flood: other processes ---------------------------------------------------

ORIGIN_SCRIPT = r"""
import sys
import thor
from thor.http import HttpServer

server = HttpServer("127.0.0.1", 0)


def exchange(ex):
    ex.on("request_done", lambda trailers: (
        ex.response_start(200, "OK", [("Content-Length", "6")]),
        ex.response_body(b"hello\n"),
        ex.response_done([]),
    ))


server.on("exchange", exchange)
sys.stderr.write("origin listening on 127.0.0.1:%d \n" % server.port)
sys.stderr.flush()
thor.run()
"""

NGINX_CONF = """
daemon off;
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %(dir)s;
    proxy_temp_path %(dir)s;
    fastcgi_temp_path %(dir)s;
    uwsgi_temp_path %(dir)s;
    scgi_temp_path %(dir)s;
    server {
        listen 127.0.0.1:%(port)d;
        location / { return 200 "hello\\n"; }
    }
}
"""


def rss_of(pid):
    with open("/proc/%d/status" % pid, "rb") as handle:
        for line in handle:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for %d" % pid)


@unittest.skipUnless(os.path.exists("/proc/self/status"), "needs /proc")
class FloodTest(unittest.TestCase):
    SECONDS = 2.0
    LIMIT = 16 * MiB

    def spawn(self, command, **kwargs):
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=ROOT), **kwargs)

        def cleanup():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.communicate()

        self.addCleanup(cleanup)
        return proc

    def port_of(self, proc):
        """The port in the first "listening on HOST:PORT " line on stderr."""
        seen = b""
        deadline = time.monotonic() + 20
        while True:
            found = re.search(rb"listening on \S+:(\d+) ", seen)
            if found:
                return int(found.group(1))
            remaining = deadline - time.monotonic()
            self.assertGreater(remaining, 0, "no listening line: %r" % seen)
            ready, _, _ = select.select([proc.stderr], [], [], remaining)
            if ready:
                data = os.read(proc.stderr.fileno(), 65536)
                self.assertTrue(data, "exited: %r" % seen)
                seen += data

    def origin(self):
        """A fast origin in another process: nginx when installed (on a
        socket bound here to port 0, which nginx inherits), else thor."""
        if NGINX:
            directory = tempfile.mkdtemp(prefix="thor-nginx-")
            self.addCleanup(shutil.rmtree, directory, True)
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)
            port = sock.getsockname()[1]
            with open(os.path.join(directory, "nginx.conf"), "w") as handle:
                handle.write(NGINX_CONF % {"dir": directory, "port": port})
            proc = subprocess.Popen(
                [NGINX, "-c", os.path.join(directory, "nginx.conf"), "-p", directory + "/"],
                pass_fds=(sock.fileno(),), env=dict(os.environ, NGINX="%d;" % sock.fileno()),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )

            def cleanup():
                proc.terminate()  # nginx's fast shutdown: the master stops its worker
                proc.wait(10)

            self.addCleanup(cleanup)
            sock.close()
            return port
        return self.port_of(self.spawn([sys.executable, "-c", ORIGIN_SCRIPT]))

    def test_pipelined_flood_keeps_the_proxy_small(self):
        origin_port = self.origin()
        proxy = self.spawn([sys.executable, "-m", "thor.http.proxy", "--listen", "127.0.0.1:0",
                            "--upstream", "http://127.0.0.1:%d" % origin_port])
        port = self.port_of(proxy)
        check = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(check.close)
        check.sendall(b"GET /warm HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(check.recv(65536).startswith(b"HTTP/1.1 200 "))
        base = peak = rss_of(proxy.pid)
        flood = socket.create_connection(("127.0.0.1", port))
        self.addCleanup(flood.close)
        flood.setblocking(False)
        block = b"GET /p HTTP/1.1\r\nHost: a\r\n\r\n" * 512
        sent = 0
        deadline = time.monotonic() + self.SECONDS
        while time.monotonic() < deadline:
            try:
                sent += flood.send(block)  # and never reads
            except BlockingIOError:
                select.select([], [flood], [], 0.05)
            peak = max(peak, rss_of(proxy.pid))
        growth = peak - base
        self.assertLess(growth, self.LIMIT, "the proxy grew by %.1f MiB (%d bytes sent)"
                        % (growth / MiB, sent))
        # And it still serves others.
        check.sendall(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(check.recv(65536).startswith(b"HTTP/1.1 200 "))


if __name__ == "__main__":
    unittest.main()
