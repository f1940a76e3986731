"""thor.http.proxy's upstream pools (issue 13, item 4): weighted
round-robin and least-connections, passive health (refusals, failures in
a row, 5xx), active health checks, retries of idempotent requests on
another upstream, and the log lines for all of it; from HttpProxy and
from the command line. Thor origins, thor and stdlib clients, loopback,
port 0."""

import http.client
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

from thor.http.client import HttpClient
from thor.http.proxy import HttpProxy, _arguments
from thor.http.server import HttpServer
from thor.http.upstreams import upstream_spec

from tests.support import answer_when_complete
from tests.test_proxy import ROOT, ProxyTestCase, refusing_port


class CommandLineMixin:
    """Running ``python -m thor.http.proxy`` in a subprocess and reading
    its stderr under a deadline (as tests/test_proxy.py's CommandLineTest,
    without its tests)."""

    def run_proxy(self, *args, pass_fds=()):
        env = dict(os.environ, PYTHONPATH=ROOT)
        proc = subprocess.Popen(
            [sys.executable, "-m", "thor.http.proxy"] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env,
            pass_fds=pass_fds,
        )

        def cleanup():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()

        self.addCleanup(cleanup)
        self.stderr_seen = getattr(self, "stderr_seen", {})
        return proc

    def stderr_matches(self, proc, pattern, count=1, timeout=20):
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

    def listening_port(self, proc):
        port, = self.stderr_matches(proc, rb"listening on \S+:(\d+) ")
        return int(port)


def get_many(port, count, path="/", results=None):
    """``count`` GETs over one keep-alive http.client connection (a new one
    after a failure); returns [(status, body) or exception]."""
    results = [] if results is None else results
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(count):
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            results.append((response.status, response.read()))
        except (OSError, http.client.HTTPException) as exc:
            results.append(exc)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.close()
    return results


def upgrade_handler(ex, body, trailers):
    """An origin's handler: 101 to ``Upgrade: echo``, then the raw
    connection echoes bytes upper-cased."""
    ex.response_start(101, "Switching Protocols", [("Upgrade", "echo")])
    ex.response_done([])
    tcp, buffered = ex.tunnel()
    tcp.on("data", lambda data: tcp.write(data.upper()))
    if buffered:
        tcp.write(buffered.upper())
    tcp.pause(False)


def open_upgrade(port, path=b"/ws"):
    """A blocking socket through which an Upgrade request got its 101;
    returns (socket, response head)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                 b"Upgrade: echo\r\n\r\n" % path)
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        if not data:
            break
        head += data
    return sock, head


class UpstreamSpecTest(unittest.TestCase):
    def test_weights(self):
        self.assertEqual(upstream_spec("http://a:1"), ("http://a:1", 1))
        self.assertEqual(upstream_spec("http://a:1,weight=3"), ("http://a:1", 3))
        self.assertEqual(upstream_spec(b"http://a:1/x, weight=7"), (b"http://a:1/x", 7))
        # A comma in the path is no option.
        self.assertEqual(upstream_spec("http://a:1/p,q"), ("http://a:1/p,q", 1))
        for bad in ("http://a:1,weight=0", "http://a:1,weight=x", "http://a:1,backup=1"):
            with self.assertRaises(ValueError):
                upstream_spec(bad)
        with self.assertRaises(ValueError):
            HttpProxy("127.0.0.1", 0, upstreams=["http://a:1,weight=-1"])


class PoolTest(ProxyTestCase):
    def names(self):
        return [s[0] for s in self.seen]

    def test_weighted_round_robin(self):
        a, b = self.origin("a"), self.origin("b")
        proxy = self.proxy(upstreams=[self.url(a), self.url(b) + ",weight=3"])
        client = HttpClient(self.loop)
        for _ in range(8):
            self.assertEqual(self.fetch("http://127.0.0.1:%d/" % proxy.port,
                                        client=client)["status"], b"200")
        self.assertEqual(self.names().count("a"), 2)
        self.assertEqual(self.names().count("b"), 6)
        # Smooth (nginx's): "a" comes within each cycle of four, not after
        # three "b" in a row.
        self.assertEqual(self.names(), ["b", "a", "b", "b"] * 2)

    def test_least_connections(self):
        held = []

        def holding(ex, body, trailers):
            if ex.uri == b"/hold":
                held.append(ex)
            else:
                self.echo(ex, body, trailers)

        a, b = self.origin("a", handler=holding), self.origin("b", handler=holding)

        class Proxy(HttpProxy):
            balance = "least-conn"

        proxy = self.proxy(Proxy, upstreams=[self.url(a), self.url(b)])
        client = HttpClient(self.loop)
        outcome = {}
        ex = client.exchange()
        ex.on("response_start", lambda s, p, h: outcome.setdefault("status", s))
        ex.on("response_done", lambda t: outcome.setdefault("done", True))
        ex.request_start("GET", "http://127.0.0.1:%d/hold" % proxy.port, [])
        ex.request_done([])
        self.run_until(lambda: held)
        # "a" has a request in flight: the next ones all go to "b" (round-
        # robin would alternate).
        for _ in range(4):
            self.assertEqual(self.fetch("http://127.0.0.1:%d/" % proxy.port)["status"],
                             b"200")
        self.assertEqual(self.names(), ["a", "b", "b", "b", "b"])
        self.assertEqual([up.active for up in proxy.pool.upstreams], [1, 0])
        self.echo(held.pop(), b"", [])
        self.run_until(lambda: "done" in outcome)
        self.assertEqual([up.active for up in proxy.pool.upstreams], [0, 0])
        # Both idle again: they share the requests.
        for _ in range(2):
            self.fetch("http://127.0.0.1:%d/" % proxy.port)
        self.assertEqual(sorted(self.names()[5:]), ["a", "b"])

    def test_5xx_in_a_row_mark_down_then_back_after_down_time(self):
        sick = {"a": True}

        def handler(ex, body, trailers):
            if sick["a"]:
                ex.response_start(503, "Service Unavailable", [("Content-Length", "0")])
                ex.response_done([])
            else:
                self.echo(ex, body, trailers)

        a, b = self.origin("a", handler=handler), self.origin("b")

        class Proxy(HttpProxy):
            max_fails = 2
            down_time = 0.3

        proxy = self.proxy(Proxy, upstreams=[self.url(a), self.url(b)])
        client = HttpClient(self.loop)
        url = "http://127.0.0.1:%d/" % proxy.port
        with self.assertLogs("thor.http.upstreams", "WARNING") as logs:
            statuses = [self.fetch(url, client=client)["status"] for _ in range(4)]
            # A 5xx is passed on (not retried): a, b, a (down now), b.
            self.assertEqual(statuses, [b"503", b"200", b"503", b"200"])
            self.assertEqual(proxy.pool.available(), [False, True])
            statuses = [self.fetch(url, client=client)["status"] for _ in range(3)]
            self.assertEqual(statuses, [b"200"] * 3)
            self.assertEqual(self.names(), ["a", "b", "a", "b", "b", "b", "b"])
            sick["a"] = False
            self.run_until(lambda: proxy.pool.available()[0], 5)
            for _ in range(2):
                self.assertEqual(self.fetch(url, client=client)["status"], b"200")
        self.assertIn("a", self.names()[7:])
        self.assertFalse(proxy.pool.upstreams[0].down)
        text = "\n".join(logs.output)
        self.assertRegex(text, r"upstream http://127\.0\.0\.1:%d down for 0\.3 s: status 503 "
                         r"\(2 failures in a row\)" % a.port)
        self.assertRegex(text, r"upstream http://127\.0\.0\.1:%d up again" % a.port)

    def test_a_success_resets_the_count(self):
        answers = iter([500, 200, 500, 200, 500])

        def handler(ex, body, trailers):
            ex.response_start(next(answers), "X", [("Content-Length", "0")])
            ex.response_done([])

        a = self.origin("a", handler=handler)

        class Proxy(HttpProxy):
            max_fails = 2

        proxy = self.proxy(Proxy, upstreams=[self.url(a)])
        for _ in range(5):
            self.fetch("http://127.0.0.1:%d/" % proxy.port)
        self.assertFalse(proxy.pool.upstreams[0].down)
        self.assertEqual(proxy.pool.upstreams[0].failures, 3)

    def test_a_request_the_client_refuses_is_400_and_not_the_upstreams_fault(self):
        # The proxy's HttpClient refuses the request before sending anything
        # (here a UrlError: a hook made a target it cannot take): the
        # request is at fault, not the upstream (no failure counted, no
        # retry), and the client is not shown the upstream's URL.
        a, b = self.origin("a"), self.origin("b")

        class Proxy(HttpProxy):
            max_fails = 1

            def request_hook(self, pex):
                if pex.uri.endswith(b"/bad"):
                    pex.uri = b"ftp" + pex.uri[4:]

        proxy = self.proxy(Proxy, upstreams=[self.url(a), self.url(b)])
        url = "http://127.0.0.1:%d/" % proxy.port
        for _ in range(2):
            result = self.fetch(url + "bad")
            self.assertEqual(result["status"], b"400")
            self.assertNotIn(b"127.0.0.1", result["body"])
        self.assertEqual([(up.failures, up.down) for up in proxy.pool.upstreams],
                         [(0, False), (0, False)])
        self.assertEqual([up.active for up in proxy.pool.upstreams], [0, 0])
        self.assertEqual(self.names(), [])
        self.assertEqual(self.fetch(url)["status"], b"200")

    def test_refused_any_method_is_retried_once_per_upstream(self):
        dead = ["http://127.0.0.1:%d" % refusing_port(self) for _ in range(2)]
        a = self.origin("a")
        proxy = self.proxy(upstreams=dead + [self.url(a)])
        client = HttpClient(self.loop)
        with self.assertLogs("thor.http", "INFO") as logs:
            result = self.fetch("http://127.0.0.1:%d/p" % proxy.port, "POST", client=client,
                                body=[b"abc"])
        self.assertEqual((result["status"], result["body"]), (b"200", b"ok:abc"))
        self.assertEqual(proxy.metrics.retries, 2)  # dead 1, dead 2, then a
        self.assertEqual(proxy.pool.available(), [False, False, True])
        text = "\n".join(logs.output)
        self.assertEqual(text.count("retrying POST /p on "), 2, text)
        self.assertEqual(text.count(" down for 10 s: "), 2, text)
        # Every upstream refusing: each is tried once, then 502.
        proxy2 = self.proxy(upstreams=dead)
        with self.assertLogs("thor.http", "INFO") as logs:
            result = self.fetch("http://127.0.0.1:%d/" % proxy2.port, client=client)
        self.assertEqual(result["status"], b"502")
        self.assertEqual(proxy2.metrics.retries, 1)
        self.assertEqual([up.requests for up in proxy2.pool.upstreams], [1, 1])

    def test_broken_connection_retries_idempotent_only(self):
        def breaking(ex, body, trailers):
            ex.abort()  # the origin dies before it answers

        a, b = self.origin("a", handler=breaking), self.origin("b")

        class Proxy(HttpProxy):
            max_fails = 2

        proxy = self.proxy(Proxy, upstreams=[self.url(a), self.url(b)])
        client = HttpClient(self.loop)
        url = "http://127.0.0.1:%d/x" % proxy.port
        with self.assertLogs("thor.http.proxy", "INFO") as logs:
            result = self.fetch(url, "PUT", body=[b"put"], client=client)
        self.assertEqual((result["status"], result["body"]), (b"200", b"ok:put"))
        self.assertIn("retrying PUT /x on http://127.0.0.1:%d" % b.port, "\n".join(logs.output))
        self.assertEqual(self.names()[-1], "b")
        # A POST that reached "a" may have done something there: 502.
        before = len(self.seen)
        result = self.fetch(url, "POST", body=[b"post"], client=client)
        self.assertEqual(result["status"], b"502")
        self.assertEqual(set(self.names()[before:]), {"a"})
        self.assertEqual(proxy.metrics.retries, 1)
        # Two failures in a row (max_fails) took "a" out of the rotation.
        self.assertTrue(proxy.pool.upstreams[0].down)

    def test_read_timeout_is_retried_for_get(self):
        a = self.origin("a", handler=lambda ex, body, t: None)  # never answers
        b = self.origin("b")

        class Proxy(HttpProxy):
            read_timeout = 0.2

        proxy = self.proxy(Proxy, upstreams=[self.url(a), self.url(b)])
        result = self.fetch("http://127.0.0.1:%d/slow" % proxy.port)
        self.assertEqual((result["status"], result["body"]), (b"200", b"ok:"))
        self.assertEqual(self.names(), ["a", "b"])

    def test_down_time_zero_or_none_tries_the_next_request(self):
        # --down-time 0 once made down_time None, and a refusal then raised
        # TypeError in the client's error listener: no answer, ever.
        self.assertEqual(_arguments(["--down-time", "0"])[1].down_time, 0.0)
        self.assertEqual(_arguments(["--down-time", "2.5"])[1].down_time, 2.5)
        for bad in ("-1", "nan", "inf", "x"):
            with self.assertRaises(SystemExit), open(os.devnull, "w") as quiet:
                stderr, sys.stderr = sys.stderr, quiet
                try:
                    _arguments(["--down-time", bad])
                finally:
                    sys.stderr = stderr
        a = self.origin("a")
        dead = "http://127.0.0.1:%d" % refusing_port(self)
        for down_time in (0, None):
            proxy = self.proxy(type("Proxy", (HttpProxy,), {"down_time": down_time}),
                               upstreams=[dead, self.url(a)])
            with self.assertLogs("thor.http.upstreams", "WARNING") as logs:
                for _ in range(2):
                    self.assertEqual(self.fetch("http://127.0.0.1:%d/" % proxy.port)["status"],
                                     b"200")
            self.assertIn("down for 0 s", "\n".join(logs.output))
            # No wait: the next request tried it again (then "a").
            self.assertEqual(proxy.pool.upstreams[0].requests, 2)
            self.assertEqual([up.active for up in proxy.pool.upstreams], [0, 0])

    def test_a_broken_upstream_gets_a_request_at_most_twice(self):
        # Each upstream reads the request and closes. The proxy's client
        # replays it once on a new connection (the case of a kept-alive
        # connection closed by the origin meanwhile), then the proxy moves
        # on: not retry_limit + 1 = 3 times per upstream.
        def breaking(ex, body, trailers):
            ex.abort()

        origins = [self.origin(name, handler=breaking) for name in "abc"]

        class Proxy(HttpProxy):
            max_fails = 10

        proxy = self.proxy(Proxy, upstreams=[self.url(o) for o in origins])
        with self.assertLogs("thor.http", "INFO"):
            result = self.fetch("http://127.0.0.1:%d/x" % proxy.port)
        self.assertEqual(result["status"], b"502")
        self.assertEqual([self.names().count(name) for name in "abc"], [2, 2, 2])
        self.assertEqual(proxy.metrics.retries, 2)

    def test_the_end_of_body_hook_runs_once_when_the_request_is_retried(self):
        # A stateful hook (compressing the body) gives its tail once; the
        # retried request carries the tail kept from the first time.
        ends = []

        class Gzipping(HttpProxy):
            def request_body_hook(self, pex, chunk):
                z = pex.data.setdefault("z", zlib.compressobj())
                if chunk is not None:
                    return z.compress(chunk)
                ends.append(pex)
                return z.flush()

        got = []

        def handler(ex, body, trailers):
            got.append(zlib.decompress(body))
            self.echo(ex, b"", trailers)

        a = self.origin("a", handler=handler)
        dead = "http://127.0.0.1:%d" % refusing_port(self)
        proxy = self.proxy(Gzipping, upstreams=[dead, self.url(a)])
        with self.assertLogs("thor.http", "INFO"):
            result = self.fetch("http://127.0.0.1:%d/x" % proxy.port, "PUT",
                                headers=[("Content-Length", "11")],
                                body=[b"hello", b" world"])
        self.assertEqual(result["status"], b"200")
        self.assertEqual(got, [b"hello world"])
        self.assertEqual(len(ends), 1)
        self.assertEqual(proxy.metrics.retries, 1)

    def test_least_conn_counts_an_upgraded_connection_until_it_closes(self):
        a = self.origin("a", handler=upgrade_handler)
        b = self.origin("b")

        class Proxy(HttpProxy):
            balance = "least-conn"

        proxy = self.proxy(Proxy, upstreams=[self.url(a), self.url(b)])
        sock, head = self.in_thread(lambda: open_upgrade(proxy.port))
        self.addCleanup(sock.close)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        # The tunnel holds a connection to "a": in flight until it closes.
        self.assertEqual([up.active for up in proxy.pool.upstreams], [1, 0])
        client = HttpClient(self.loop)
        for _ in range(2):
            self.fetch("http://127.0.0.1:%d/" % proxy.port, client=client)
        self.assertEqual(self.names(), ["a", "b", "b"])
        sock.close()
        self.run_until(lambda: proxy.pool.upstreams[0].active == 0)

    def test_no_retry_after_an_interim_response(self):
        # A 103 went on to the client: the upstream had begun to answer,
        # and another's answer may not follow it.
        def hinting(ex, body, trailers):
            ex.response_nonfinal(103, "Early Hints", [("Link", "</style.css>; rel=preload")])
            self.loop.schedule(0.05, ex.abort)

        a, b = self.origin("a", handler=hinting), self.origin("b")
        proxy = self.proxy(upstreams=[self.url(a), self.url(b)])
        client = HttpClient(self.loop)
        hints = []
        ex = client.exchange()
        ex.on("response_nonfinal", lambda s, p, h: hints.append(s))
        result = {}
        ex.on("response_start", lambda s, p, h: result.setdefault("status", s))
        ex.on("response_done", lambda t: result.setdefault("done", True))
        ex.on("error", lambda e: result.setdefault("error", e))
        with self.assertLogs("thor.http", "INFO"):
            ex.request_start("GET", "http://127.0.0.1:%d/x" % proxy.port, [])
            ex.request_done([])
            self.run_until(lambda: "done" in result or "error" in result)
        self.assertEqual(hints, [b"103"])
        self.assertEqual(result.get("status"), b"502")
        self.assertEqual(self.names(), ["a"])
        self.assertEqual(proxy.metrics.retries, 0)

    def restartable(self, name):
        """An origin that can be stopped (its connections cut, as when the
        process dies) and started again on the same port."""
        servers = []

        def start(port=0):
            server = HttpServer("127.0.0.1", port, self.loop)
            self.addCleanup(server.close)

            def respond(ex, data, trailers):
                self.seen.append((name, ex.method, ex.uri, ex.req_hdrs, data, trailers))
                self.echo(ex, data, trailers)

            answer_when_complete(server, respond)
            servers.append(server)
            return server

        return start

    def test_active_checks_take_down_and_bring_back(self):
        start_a = self.restartable("a")
        a, b = start_a(), self.origin("b")

        class Proxy(HttpProxy):
            health_check = "/health"
            health_interval = 0.1

        proxy = self.proxy(Proxy, upstreams=[self.url(a), self.url(b)])
        self.run_until(lambda: any(s[2] == b"/health" for s in self.seen))
        self.assertIsNotNone(proxy.pool.checker)
        self.assertEqual(self.header(self.seen[0][3], "user-agent"), [b"thor-health-check"])
        with self.assertLogs("thor.http.upstreams", "WARNING") as logs:
            a.close()
            self.run_until(lambda: proxy.pool.upstreams[0].down, 5)
            failures = proxy.pool.upstreams[0].failures
            # Down: no request goes there (no failed attempt on a client's
            # request), while the probes go on failing.
            client = HttpClient(self.loop)
            for _ in range(4):
                self.assertEqual(self.fetch("http://127.0.0.1:%d/" % proxy.port,
                                            client=client)["status"], b"200")
            self.assertEqual(proxy.pool.upstreams[0].requests, 0)
            rounds = proxy.pool.checker.rounds
            self.run_until(lambda: proxy.pool.checker.rounds >= rounds + 2, 5)
            self.assertTrue(proxy.pool.upstreams[0].down)  # a refused probe keeps it down
            self.assertGreater(proxy.pool.upstreams[0].failures, failures)
            start_a(a.port)
            self.run_until(lambda: not proxy.pool.upstreams[0].down, 5)
        text = "\n".join(logs.output)
        self.assertIn("down until a health check passes: health check: ", text)
        self.assertIn("up again: it answered 200", text)
        served = len(self.seen)
        for _ in range(2):
            self.fetch("http://127.0.0.1:%d/again" % proxy.port, client=client)
        self.assertEqual(sorted(s[0] for s in self.seen[served:] if s[2] == b"/again"),
                         ["a", "b"])
        proxy.close()
        self.run_until(lambda: proxy.pool.checker is None, 5)  # probes stop with the proxy

    def test_upstream_stopped_mid_load(self):
        # The "done when": one of two upstreams stops while clients
        # keep asking; every request is answered, the stopped one gets at
        # most one failed attempt per check interval (beyond the requests
        # in flight to it when it died), and the log shows it going down
        # and coming back.
        start_b = self.restartable("b")
        a, b = self.origin("a"), start_b()
        interval = 0.1

        class Proxy(HttpProxy):
            health_check = "/health"
            health_interval = interval

        proxy = self.proxy(Proxy, upstreams=[self.url(a), self.url(b)])
        threads, results = 4, [[] for _ in range(4)]
        per_thread = 80
        workers = [threading.Thread(target=get_many, args=(proxy.port, per_thread, "/load",
                                                           results[i]), daemon=True)
                   for i in range(threads)]
        done = lambda: sum(len(r) for r in results)  # noqa: E731
        upstream_b = proxy.pool.upstreams[1]
        with self.assertLogs("thor.http", "INFO") as logs:
            for worker in workers:
                worker.start()
            self.run_until(lambda: done() >= 60, 20)
            b.close()
            stopped_at_failures = upstream_b.failures
            rounds_at_stop = proxy.pool.checker.rounds
            self.run_until(lambda: done() >= 180, 20)
            self.assertTrue(upstream_b.down)
            failed_attempts = upstream_b.failures - stopped_at_failures
            rounds = proxy.pool.checker.rounds - rounds_at_stop
            start_b(b.port)
            self.run_until(lambda: not upstream_b.down, 5)
            self.run_until(lambda: not any(w.is_alive() for w in workers), 20)
        answers = [r for result in results for r in result]
        self.assertEqual(len(answers), threads * per_thread)
        self.assertEqual(answers, [(200, b"ok:")] * len(answers))
        # In flight when it died (at most one per client), the request that
        # found it refusing, then one probe per interval.
        self.assertLessEqual(failed_attempts, threads + 1 + rounds + 1, (failed_attempts, rounds))
        served = len(self.seen)
        client = HttpClient(self.loop)
        for _ in range(2):
            self.fetch("http://127.0.0.1:%d/after" % proxy.port, client=client)
        self.assertEqual(sorted(s[0] for s in self.seen[served:] if s[2] == b"/after"),
                         ["a", "b"])  # back in the rotation
        text = "\n".join(logs.output)
        self.assertRegex(text, r"upstream http://127\.0\.0\.1:%d down until a health check "
                         r"passes" % b.port)
        self.assertRegex(text, r"upstream http://127\.0\.0\.1:%d up again" % b.port)


class CommandLineUpstreamTest(CommandLineMixin, ProxyTestCase):
    def test_flags_health_checks_and_log_file(self):
        a, b = self.origin("a"), self.origin("b")
        log_file = os.path.join(tempfile.mkdtemp(), "proxy.log")
        self.addCleanup(lambda: os.path.exists(log_file) and os.unlink(log_file))
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--upstream", self.url(a),
                              "--upstream", self.url(b) + ",weight=2",
                              "--balance", "least-conn", "--max-fails", "1",
                              "--health-check", "/health", "--health-interval", "0.1",
                              "--log-file", log_file, "-v")
        ticker = self.tick()
        self.addCleanup(ticker.stop)

        def logged(pattern):
            try:
                with open(log_file) as f:
                    return re.search(pattern, f.read())
            except OSError:
                return None

        self.run_until(lambda: logged(r"listening on \S+:\d+ "), 20)
        port = int(logged(r"listening on \S+:(\d+) ").group(1))
        self.run_until(lambda: any(s[2] == b"/health" for s in self.seen), 20)
        b.close()
        self.run_until(lambda: logged(r"upstream http://127\.0\.0\.1:%d down until a health "
                                      r"check passes" % b.port), 20)
        self.assertEqual(self.in_thread(lambda: get_many(port, 4)), [(200, b"ok:")] * 4)
        # The log file has the lines, with time, logger, pid and level; -v
        # adds the debug ones (a down upstream's probes failing again).
        self.run_until(lambda: logged(r"DEBUG: upstream \S+ still down"), 20)
        self.assertTrue(logged(r"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
                               r"thor\.http\.upstreams\[%d\] WARNING: upstream " % proc.pid))
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(10), 0)
        out, err = proc.communicate()
        self.assertEqual(err, b"")  # all of it went to the file
        self.assertTrue(logged(r"SIGTERM: graceful shutdown"))
        self.assertTrue(logged(r"INFO: stopped"))

    def test_bad_flags(self):
        for args, message in (
            (["--balance", "random"], b"--balance"),
            (["--upstream", "http://a:1,weight=0"], b"weight"),
            (["--upstream", "http://a:1,backup"], None),
            (["--max-fails", "0"], b"--max-fails"),
            (["--health-check", "health"], b"--health-check"),
            (["--health-interval", "0"], b"--health-interval"),
        ):
            done = subprocess.run([sys.executable, "-m", "thor.http.proxy"] + args,
                                  stderr=subprocess.PIPE, cwd=ROOT, timeout=20,
                                  env=dict(os.environ, PYTHONPATH=ROOT))
            if message is None:
                # Not an option (no "="): part of the URL, which is then bad
                # only if urlsplit says so; here it is a port "1,backup".
                self.assertEqual(done.returncode, 2, done.stderr)
                continue
            self.assertEqual(done.returncode, 2, (args, done.stderr))
            self.assertIn(message, done.stderr)


if __name__ == "__main__":
    unittest.main()
