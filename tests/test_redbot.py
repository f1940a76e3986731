"""REDbot (https://redbot.org/), the main program written for Thor, run on
this thor as a user would run it: its command line against local origins,
and its daemon served by thor's HttpServer.

Skipped unless ``redbot`` is importable by the Python running the tests
(``pip install redbot`` in a virtual environment with this thor installed;
it is never a dependency of thor). REDbot runs in a subprocess with this
checkout first on its path, so it uses this thor whatever else is
installed. The origins run on a thor loop in this process (a thor
HttpServer) and in a thread (a raw-socket stdlib server, for responses
thor's server would never send).
"""

import configparser
import gzip
import importlib.util
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import unittest

from thor.http.client import HttpClient
from thor.http.server import HttpServer

from tests.support import LoopTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_REDBOT = importlib.util.find_spec("redbot") is not None
SKIP_WHY = "redbot is not installed (pip install redbot)"

BODY = b"<html><body><p>" + b"thor and REDbot " * 64 + b"</p></body></html>\n"
ETAG = b'"v1"'
LAST_MODIFIED = b"Mon, 30 Nov 2026 10:00:00 GMT"


def _get(headers, name):
    name = name.lower()
    for field, value in headers:
        if field.lower() == name:
            return value.strip()
    return None


def origin_app(exchange):
    """A thor origin: each path answers as a well-behaved server would, so
    that REDbot finds what it is there to find (and thor's client must carry
    it to REDbot intact)."""
    seen = {}

    def request_start(method, uri, headers):
        seen["method"], seen["uri"], seen["headers"] = method, uri, headers

    def request_done(trailers):
        path = seen["uri"].split(b"?", 1)[0]
        headers = seen["headers"]
        handler = ROUTES.get(path, not_found)
        handler(exchange, headers)

    exchange.on("request_start", request_start)
    exchange.on("request_done", request_done)


def common_headers(extra=()):
    return [
        (b"Content-Type", b"text/html; charset=utf-8"),
        (b"Cache-Control", b"max-age=60"),
        (b"Last-Modified", LAST_MODIFIED),
        (b"ETag", ETAG),
    ] + list(extra)


def plain(exchange, headers):
    exchange.response_start(200, b"OK", common_headers([(b"Content-Length", b"%d" % len(BODY))]))
    exchange.response_body(BODY)
    exchange.response_done([])


def chunked(exchange, headers):
    # No Content-Length on HTTP/1.1: thor's server frames it chunked.
    exchange.response_start(200, b"OK", common_headers())
    half = len(BODY) // 2
    exchange.response_body(BODY[:half])
    exchange.response_body(BODY[half:])
    exchange.response_done([])


def gzipped(exchange, headers):
    accept = _get(headers, b"accept-encoding") or b""
    extra = [(b"Vary", b"Accept-Encoding")]
    body = BODY
    if b"gzip" in accept:
        body = gzip.compress(BODY, mtime=0)
        extra.append((b"Content-Encoding", b"gzip"))
    extra.append((b"Content-Length", b"%d" % len(body)))
    headers_out = common_headers(extra)
    # Each representation has its own validator.
    if b"gzip" in accept:
        headers_out = [(n, b'"v1-gz"' if n == b"ETag" else v) for n, v in headers_out]
    exchange.response_start(200, b"OK", headers_out)
    exchange.response_body(body)
    exchange.response_done([])


def conditional(exchange, headers):
    if _get(headers, b"if-none-match") == ETAG or _get(headers, b"if-modified-since"):
        exchange.response_start(304, b"Not Modified", [
            (b"ETag", ETAG), (b"Cache-Control", b"max-age=60"),
            (b"Last-Modified", LAST_MODIFIED),
        ])
        exchange.response_done([])
        return
    plain(exchange, headers)


def ranged(exchange, headers):
    value = _get(headers, b"range")
    if value and value.startswith(b"bytes=") and b"," not in value:
        first, _, last = value[6:].partition(b"-")
        try:
            if first:
                start = int(first)
                end = min(int(last), len(BODY) - 1) if last else len(BODY) - 1
            else:
                start, end = max(0, len(BODY) - int(last)), len(BODY) - 1
        except ValueError:
            start, end = 0, -1
        if 0 <= start <= end:
            part = BODY[start:end + 1]
            exchange.response_start(206, b"Partial Content", common_headers([
                (b"Accept-Ranges", b"bytes"),
                (b"Content-Range", b"bytes %d-%d/%d" % (start, end, len(BODY))),
                (b"Content-Length", b"%d" % len(part)),
            ]))
            exchange.response_body(part)
            exchange.response_done([])
            return
    exchange.response_start(200, b"OK", common_headers([
        (b"Accept-Ranges", b"bytes"), (b"Content-Length", b"%d" % len(BODY)),
    ]))
    exchange.response_body(BODY)
    exchange.response_done([])


def early_hints(exchange, headers):
    exchange.response_nonfinal(103, b"Early Hints", [(b"Link", b"</style.css>; rel=preload; as=style")])
    plain(exchange, headers)


def redirect(exchange, headers):
    exchange.response_start(301, b"Moved Permanently", [
        (b"Location", b"/conditional"), (b"Content-Length", b"0"),
        (b"Cache-Control", b"max-age=60"),
    ])
    exchange.response_done([])


def trailers(exchange, headers):
    exchange.response_start(200, b"OK", common_headers([(b"Trailer", b"Server-Timing")]))
    exchange.response_body(BODY)
    exchange.response_done([(b"Server-Timing", b"db;dur=53")])


def not_found(exchange, headers):
    exchange.response_start(404, b"Not Found", [(b"Content-Length", b"0")])
    exchange.response_done([])


ROUTES = {
    b"/plain": plain,
    b"/chunked": chunked,
    b"/gzip": gzipped,
    b"/conditional": conditional,
    b"/range": ranged,
    b"/early": early_hints,
    b"/redirect": redirect,
    b"/trailers": trailers,
}

# Responses thor's server would never send, from a raw socket server.
RAW = {
    b"/http10": (
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
        b"Cache-Control: max-age=60\r\n\r\nhello"
    ),
    b"/extra": (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
        b"Cache-Control: max-age=60\r\nConnection: close\r\n\r\n1234567890\r\n"
    ),
    b"/304-body": (
        b"HTTP/1.1 304 Not Modified\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
        b"Connection: close\r\n\r\n12345\r\n"
    ),
}


class _RawHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data = b""
        self.request.settimeout(10)
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            data += chunk
        path = data.split(b" ", 2)[1].split(b"?", 1)[0]
        self.request.sendall(RAW.get(path, b"HTTP/1.0 404 Not Found\r\n\r\n"))
        self.request.shutdown(socket.SHUT_WR)


class _RawServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def redbot_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


@unittest.skipUnless(HAVE_REDBOT, SKIP_WHY)
class RedbotCliTest(LoopTestCase):
    """``redbot URL`` against local origins, checked on what it reports."""

    @classmethod
    def setUpClass(cls):
        cls.raw = _RawServer(("127.0.0.1", 0), _RawHandler)
        cls.raw_port = cls.raw.server_address[1]
        threading.Thread(target=cls.raw.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.raw.shutdown()
        cls.raw.server_close()

    def setUp(self):
        LoopTestCase.setUp(self)
        self.server = HttpServer("127.0.0.1", 0, self.loop)
        self.server.on("exchange", origin_app)
        self.addCleanup(self.server.close)

    def redbot(self, url, *args):
        """Run REDbot's command line on ``url`` while this loop serves the
        thor origin; return what it printed."""
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from redbot.cli import main; main()", *args, url],
                stdout=out, stderr=subprocess.STDOUT, env=redbot_env(), cwd=ROOT,
            )
            # The loop sleeps until something happens to it: a thread that
            # waits for REDbot wakes it when REDbot exits.
            waiter = threading.Thread(
                target=lambda: (proc.wait(), self.loop.run_in_loop(lambda: None)), daemon=True)
            waiter.start()
            try:
                self.run_until(lambda: proc.poll() is not None, timeout=90)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            out.seek(0)
            text = out.read().decode("utf-8", "replace")
        self.assertNotIn("Traceback", text)
        self.assertNotIn("thor: exception", text)
        return text

    def thor_url(self, path):
        return "http://127.0.0.1:%d%s" % (self.server.port, path)

    def raw_url(self, path):
        return "http://127.0.0.1:%d%s" % (self.raw_port, path)

    # What REDbot 2.7.1 reports on Thor 0.17 for each origin (run side by
    # side while this was written): the findings that show thor's client
    # carried each part of the exchange to REDbot intact.
    def check(self, url, *expected):
        text = self.redbot(url)
        for line in expected:
            self.assertIn(line, text, "REDbot's report on %s:\n%s" % (url, text))
        return text

    def test_plain(self):
        self.check(self.thor_url("/plain"), "HTTP/1.1 200 OK",
                   "The Content-Length header is correct.",
                   "The server's clock is correct.")

    def test_chunked(self):
        self.check(self.thor_url("/chunked"), "Transfer-Encoding: chunked",
                   "This response is fresh for 60 seconds.")

    def test_gzip_vary(self):
        self.check(self.thor_url("/gzip"), "Vary: Accept-Encoding",
                   "Content negotiation for gzip compression is supported, saving 93%.")

    def test_etag_304(self):
        self.check(self.thor_url("/conditional"),
                   "If-None-Match conditional requests are supported.",
                   "If-Modified-Since conditional requests are supported.")

    def test_range_206(self):
        self.check(self.thor_url("/range"),
                   "A ranged request returned the correct partial content.")

    def test_early_hints(self):
        self.check(self.thor_url("/early"), "HTTP/1.1 103 Early Hints",
                   "Link: </style.css>; rel=preload; as=style", "HTTP/1.1 200 OK")

    def test_redirect(self):
        self.check(self.thor_url("/redirect"), "HTTP/1.1 301 Moved Permanently",
                   "The Location header contains a relative URI.")

    def test_trailers(self):
        # The finding comes from the Server-Timing trailer field.
        self.check(self.thor_url("/trailers"), "Transfer-Encoding: chunked",
                   "The 'db' metric is missing the 'desc' parameter.")

    def test_http10(self):
        self.check(self.raw_url("/http10"), "HTTP/1.0 200 OK",
                   "The Content-Length header is correct.",
                   "This response doesn't have a Date header.")

    def test_extra_bytes(self):
        self.check(self.raw_url("/extra"), "HTTP/1.1 200 OK",
                   "This response has extra data after it.")

    def test_304_with_body(self):
        self.check(self.raw_url("/304-body"), "HTTP/1.1 304 Not Modified",
                   "This response has content.")


DAEMON = """
import sys, configparser
from redbot.daemon import RedBotServer
conf = configparser.ConfigParser()
conf.read(sys.argv[1])
server = RedBotServer(conf["redbot"])
print("PORT", server.http_server.port, flush=True)
server.run()
"""


@unittest.skipUnless(HAVE_REDBOT, SKIP_WHY)
class RedbotDaemonTest(LoopTestCase):
    """``redbot_daemon``'s server (RedBotServer, on thor's HttpServer) asked
    over HTTP to check an origin, then stopped with SIGTERM."""

    def start_daemon(self, local_access):
        directory = tempfile.mkdtemp(prefix="thor-redbot-")
        self.addCleanup(shutil.rmtree, directory, True)
        config = configparser.ConfigParser()
        config["redbot"] = {
            "host": "127.0.0.1", "port": "0", "ui_uri": "/", "static_root": "static",
            "max_runtime": "30", "enable_local_access": str(local_access),
        }
        path = os.path.join(directory, "redbot.ini")
        with open(path, "w") as handle:
            config.write(handle)
        self.log = open(os.path.join(directory, "log"), "w+b")
        self.addCleanup(self.log.close)
        proc = subprocess.Popen(
            [sys.executable, "-c", DAEMON, path], stdout=subprocess.PIPE,
            stderr=self.log, env=redbot_env(), cwd=directory,
        )
        self.addCleanup(self.stop_daemon, proc)
        line = b""
        while not line.startswith(b"PORT") and proc.poll() is None:
            line = proc.stdout.readline()  # REDbot's banner, then the port
        self.assertTrue(line.startswith(b"PORT"), self.daemon_log())
        return proc, int(line.split()[1])

    def daemon_log(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def stop_daemon(self, proc):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    def setUp(self):
        LoopTestCase.setUp(self)
        self.seen = []
        self.origin = HttpServer("127.0.0.1", 0, self.loop)
        self.origin.on("exchange", lambda exchange: (self.seen.append(exchange), origin_app(exchange)))
        self.addCleanup(self.origin.close)
        self.client = HttpClient(self.loop)

    def check(self, port, path):
        """POST a check of this loop's origin to the daemon; return the report."""
        result = {"body": b""}
        exchange = self.client.exchange()
        exchange.on("response_start", lambda s, p, h: result.update(status=s))
        exchange.on("response_body", lambda chunk: result.update(body=result["body"] + chunk))
        exchange.on("response_done", lambda trailers: result.update(done=True))
        exchange.on("error", lambda err: result.update(done=True, error=err))
        target = "http://127.0.0.1:%d%s" % (self.origin.port, path)
        exchange.request_start(
            b"POST", b"http://127.0.0.1:%d/check?format=text&uri=%s" % (port, target.encode()),
            [(b"Content-Length", b"0")],
        )
        exchange.request_done([])
        self.run_until(lambda: "done" in result, timeout=60)
        self.assertNotIn("error", result)
        self.assertEqual(result["status"], b"200")
        return result["body"].decode("utf-8", "replace")

    def test_daemon_checks_a_url_and_stops_on_sigterm(self):
        proc, port = self.start_daemon(local_access=True)
        report = self.check(port, "/conditional")
        self.assertIn("If-None-Match conditional requests are supported.", report)
        self.assertIn("If-Modified-Since conditional requests are supported.", report)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=30), 0, self.daemon_log())
        self.assertNotIn("Traceback", self.daemon_log())

    def test_daemon_refuses_a_private_address(self):
        # REDbot's own guard (HttpClient.check_ip): the origin must never
        # hear from it, and the report says why.
        proc, port = self.start_daemon(local_access=False)
        report = self.check(port, "/plain")
        self.assertIn("Access Error", report)
        self.assertEqual(self.seen, [])


if __name__ == "__main__":
    unittest.main()
