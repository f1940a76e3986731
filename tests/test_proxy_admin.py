"""thor.http.proxy's operations (issue 13, item 5): the metrics and the
admin listener (/metrics, /healthz), the access log's formats on the
``thor.http.proxy.access`` logger, and the command line's logging flags
(-v/-q, --log-file, --access-log FILE, --access-log-format, --admin,
--version). Thor origins, thor and stdlib clients, loopback, port 0."""

import bisect
import http.client
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from unittest import mock

from thor.http import proxy as proxy_module
from thor.http.client import HttpClient
from thor.http.metrics import DURATION_BUCKETS
from thor.http.proxy import HttpProxy, ProxyExchange
from thor.http.proxylog import AccessFormat, escape
from thor.tcp import TcpServer

import thor

from tests.test_proxy import ROOT, ProxyTestCase, refusing_port
from tests.test_proxy_upstreams import (
    CommandLineMixin, get_many, open_upgrade, upgrade_handler,
)


def parse_metrics(text):
    """{(name, labels): value} from the Prometheus text format, checking
    that every sample follows a TYPE line for its family."""
    samples = {}
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        match = re.match(r'^([a-z_]+)(\{([^}]*)\})? (\S+)$', line)
        assert match, line
        name, labels, value = match.group(1), match.group(3) or "", match.group(4)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or family in types, line
        samples[(name, labels)] = float(value)
    return samples


def scrape(port, path="/metrics", method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path)
    response = conn.getresponse()
    result = (response.status, response.getheader("Content-Type"), response.read())
    conn.close()
    return result


class MetricsTest(ProxyTestCase):
    def origin_with_statuses(self):
        def handler(ex, body, trailers):
            if ex.uri == b"/missing":
                ex.response_start(404, "Not Found", [("Content-Length", "4")])
                ex.response_body(b"nope")
                ex.response_done([])
            else:
                self.echo(ex, body, trailers)

        return self.origin(handler=handler)

    def test_counters_match_the_requests_sent(self):
        a, b = self.origin_with_statuses(), self.origin_with_statuses()
        proxy = self.proxy(upstreams=[self.url(a), self.url(b)])
        admin = proxy.serve_admin("127.0.0.1", 0)
        client = HttpClient(self.loop)
        sent_in = sent_out = 0
        for i in range(30):
            if i % 3 == 2:
                result = self.fetch("http://127.0.0.1:%d/missing" % proxy.port, client=client)
            else:
                body = b"x" * i
                result = self.fetch("http://127.0.0.1:%d/p" % proxy.port, "POST",
                                    body=[body], client=client)
                sent_in += len(body)
            sent_out += len(result["body"])
        status, kind, text = self.in_thread(lambda: scrape(admin.port))
        self.assertEqual(status, 200)
        self.assertEqual(kind, "text/plain; version=0.0.4; charset=utf-8")
        m = parse_metrics(text.decode())
        self.assertEqual(m[("thor_proxy_requests_total", 'code="2xx"')], 20)
        self.assertEqual(m[("thor_proxy_requests_total", 'code="4xx"')], 10)
        self.assertEqual(m[("thor_proxy_requests_total", 'code="5xx"')], 0)
        self.assertEqual(m[("thor_proxy_request_duration_seconds_count", "")], 30)
        self.assertEqual(m[("thor_proxy_request_duration_seconds_bucket", 'le="+Inf"')], 30)
        buckets = [m[("thor_proxy_request_duration_seconds_bucket", 'le="%g"' % bound)]
                   for bound in DURATION_BUCKETS]
        self.assertEqual(buckets, sorted(buckets))  # cumulative
        self.assertGreater(m[("thor_proxy_request_duration_seconds_sum", "")], 0)
        self.assertEqual(m[("thor_proxy_received_bytes_total", "")], sent_in)
        self.assertEqual(m[("thor_proxy_sent_bytes_total", "")], sent_out)
        self.assertEqual(m[("thor_proxy_active_connections", "")], 1)  # the client's
        for origin in (a, b):
            label = 'upstream="%s"' % self.url(origin)[:-1]
            self.assertEqual(m[("thor_proxy_upstream_up", label)], 1)
            self.assertEqual(m[("thor_proxy_upstream_requests_total", label)], 15)
            self.assertEqual(m[("thor_proxy_upstream_active_requests", label)], 0)
            self.assertEqual(m[("thor_proxy_upstream_failures_total", label)], 0)
        self.assertEqual(m[("thor_proxy_retries_total", "")], 0)
        self.assertEqual(proxy.metrics.total, 30)
        status, _, text = self.in_thread(lambda: scrape(admin.port, "/healthz"))
        self.assertEqual((status, text), (200, b"ok: 2 of 2 upstreams up\n"))

    def test_healthz_follows_the_upstreams(self):
        with self.assertLogs("thor.http", "WARNING"):
            self.healthz_follows_the_upstreams()

    def healthz_follows_the_upstreams(self):
        held = []

        def handler(ex, body, trailers):
            if ex.uri == b"/hold":
                held.append(ex)
            else:
                self.echo(ex, body, trailers)

        a = self.origin(handler=handler)
        dead = "http://127.0.0.1:%d" % refusing_port(self)
        proxy = self.proxy(upstreams=[dead, self.url(a)])
        admin = proxy.serve_admin()
        self.assertEqual(self.fetch("http://127.0.0.1:%d/" % proxy.port)["status"], b"200")
        m = parse_metrics(self.in_thread(lambda: scrape(admin.port))[2].decode())
        self.assertEqual(m[("thor_proxy_upstream_up", 'upstream="%s"' % dead)], 0)
        self.assertEqual(m[("thor_proxy_upstream_failures_total", 'upstream="%s"' % dead)], 1)
        self.assertEqual(m[("thor_proxy_retries_total", "")], 1)
        self.assertEqual(self.in_thread(lambda: scrape(admin.port, "/healthz"))[0], 200)
        only_dead = self.proxy(upstreams=[dead])
        admin2 = only_dead.serve_admin()
        # Nothing known against it yet: healthy; after one refusal: 503.
        self.assertEqual(self.in_thread(lambda: scrape(admin2.port, "/healthz"))[0], 200)
        self.assertEqual(self.fetch("http://127.0.0.1:%d/" % only_dead.port)["status"], b"502")
        status, _, text = self.in_thread(lambda: scrape(admin2.port, "/healthz"))
        self.assertEqual((status, text), (503, b"no upstream is up\n"))
        m = parse_metrics(self.in_thread(lambda: scrape(admin2.port))[2].decode())
        self.assertEqual(m[("thor_proxy_requests_total", 'code="5xx"')], 1)
        # Not healthy once it drains (a load balancer should stop sending).
        client = HttpClient(self.loop)
        ex = client.exchange()
        ex.request_start("GET", "http://127.0.0.1:%d/hold" % proxy.port, [])
        ex.request_done([])
        self.run_until(lambda: held)
        proxy.graceful_shutdown()
        self.assertEqual(self.in_thread(lambda: scrape(admin.port, "/healthz")),
                         (503, "text/plain; charset=utf-8", b"shutting down\n"))
        self.echo(held.pop(), b"", [])
        self.run_until(lambda: MetricsTest._refused(admin.port))  # closed with the proxy

    def test_a_down_upstream_is_down_after_its_down_time(self):
        # Once its down_time is over, a dead upstream (no active checks) is
        # due a trial request: still down, not up, until one succeeds.
        dead = "http://127.0.0.1:%d" % refusing_port(self)

        class Proxy(HttpProxy):
            down_time = 0.2

        proxy = self.proxy(Proxy, upstreams=[dead])
        admin = proxy.serve_admin()
        with self.assertLogs("thor.http", "WARNING"):
            self.assertEqual(self.fetch("http://127.0.0.1:%d/" % proxy.port)["status"], b"502")
        waited = []
        self.loop.schedule(0.3, waited.append, True)
        self.run_until(lambda: waited)
        self.assertEqual(proxy.pool.available(), [True])  # the next request tries it
        status, _, text = self.in_thread(lambda: scrape(admin.port, "/healthz"))
        self.assertEqual((status, text), (503, b"no upstream is up\n"))
        m = parse_metrics(self.in_thread(lambda: scrape(admin.port))[2].decode())
        self.assertEqual(m[("thor_proxy_upstream_up", 'upstream="%s"' % dead)], 0)
        self.assertEqual(proxy.pool.up(), [False])

    def test_open_tunnels(self):
        # The server forgets a connection it hands to a tunnel: CONNECT and
        # 101 tunnels have a gauge of their own.
        target = TcpServer("127.0.0.1", 0, self.loop)
        self.addCleanup(target.close)
        target.on("connect", lambda conn: conn.pause(False))
        forward = self.proxy(connect_ports=[target.port])
        admin = forward.serve_admin()

        def connect():
            sock = socket.create_connection(("127.0.0.1", forward.port), timeout=10)
            sock.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % target.port)
            head = b""
            while b"\r\n\r\n" not in head:
                data = sock.recv(4096)
                if not data:
                    break
                head += data
            return sock, head

        socks = []
        for _ in range(2):
            sock, head = self.in_thread(connect)
            self.addCleanup(sock.close)
            self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
            socks.append(sock)
        m = parse_metrics(self.in_thread(lambda: scrape(admin.port))[2].decode())
        self.assertEqual(m[("thor_proxy_open_tunnels", "")], 2)
        self.assertEqual(m[("thor_proxy_active_connections", "")], 0)
        socks[0].close()
        self.run_until(lambda: forward.open_tunnels == 1)
        origin = self.origin(handler=upgrade_handler)
        reverse = self.proxy(upstreams=[self.url(origin)])
        admin = reverse.serve_admin()
        sock, head = self.in_thread(lambda: open_upgrade(reverse.port))
        self.addCleanup(sock.close)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        m = parse_metrics(self.in_thread(lambda: scrape(admin.port))[2].decode())
        self.assertEqual(m[("thor_proxy_open_tunnels", "")], 1)
        sock.close()
        self.run_until(lambda: reverse.open_tunnels == 0)

    def test_admin_methods_and_paths(self):
        proxy = self.proxy()
        admin = proxy.serve_admin()
        self.assertEqual(self.in_thread(lambda: scrape(admin.port, "/nope"))[0], 404)
        self.assertEqual(self.in_thread(lambda: scrape(admin.port, "/metrics", "POST"))[0], 405)
        status, _, body = self.in_thread(lambda: scrape(admin.port, "/metrics", "HEAD"))
        self.assertEqual((status, body), (200, b""))
        # No upstream families in forward mode; the others are there.
        m = parse_metrics(self.in_thread(lambda: scrape(admin.port))[2].decode())
        self.assertEqual(m[("thor_proxy_requests_total", 'code="2xx"')], 0)
        self.assertFalse([k for k in m if k[0].startswith("thor_proxy_upstream")])
        # The admin listener stops with the proxy.
        proxy.close()
        self.run_until(lambda: self._refused(admin.port))

    @staticmethod
    def _refused(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except OSError:
            return True


class AccessLogTest(ProxyTestCase):
    def lines(self, fmt, path="/p?q=1"):
        origin = self.origin()

        class Proxy(HttpProxy):
            access_log_format = fmt

        proxy = self.proxy(Proxy, upstreams=[self.url(origin)])
        with self.assertLogs("thor.http.proxy.access", "INFO") as logs:
            self.fetch("http://127.0.0.1:%d%s" % (proxy.port, path), "POST",
                       headers=[("User-Agent", 'curl/8 "x"'), ("Referer", "http://r/")],
                       body=[b"abcd"])
        self.assertEqual([r.name for r in logs.records], ["thor.http.proxy.access"])
        return [r.getMessage() for r in logs.records], origin

    def test_common(self):
        (line,), _ = self.lines("common")
        self.assertRegex(line, r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                         r'"POST /p\?q=1 HTTP/1\.1" 200 7$')

    def test_combined_has_agent_duration_and_upstream(self):
        (line,), origin = self.lines("combined")
        # The client's quotes are escaped as nginx escapes them.
        self.assertRegex(line, r'"POST /p\?q=1 HTTP/1\.1" 200 7 "http://r/" "curl/8 \\x22x\\x22" '
                         r'\d+\.\d{3} http://127\.0\.0\.1:%d$' % origin.port)

    def test_json(self):
        (line,), origin = self.lines("json")
        record = json.loads(line)
        self.assertEqual(record["client"], "127.0.0.1")
        self.assertEqual((record["method"], record["uri"], record["version"]),
                         ("POST", "/p?q=1", "1.1"))
        self.assertEqual((record["status"], record["bytes"], record["bytes_in"]), (200, 7, 4))
        self.assertEqual(record["user_agent"], 'curl/8 \\x22x\\x22')  # as in every format
        self.assertEqual(record["referer"], "http://r/")
        self.assertEqual(record["upstream"], "http://127.0.0.1:%d" % origin.port)
        self.assertIsInstance(record["duration_ms"], float)
        self.assertGreaterEqual(record["duration_ms"], 0)
        self.assertRegex(record["iso_time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_template(self):
        (line,), origin = self.lines("{method} {uri} {status} {upstream} {user_agent}")
        self.assertEqual(line, 'POST /p?q=1 200 http://127.0.0.1:%d curl/8 \\x22x\\x22'
                         % origin.port)
        with self.assertRaises(ValueError):
            AccessFormat("{nope}")
        with self.assertRaises(ValueError):
            AccessFormat("fancy")

    def test_what_the_client_sent_is_escaped_in_every_format(self):
        # A quote would forge fields; 0x85 is a line break to
        # str.splitlines() and many log shippers. Escaped as nginx does.
        origin = self.origin()
        request = (b'GET /p?"q"=\\x HTTP/1.1\r\nHost: x\r\n'
                   b'User-Agent: x" 200 0 "forged\x85y\r\nReferer: a\xe9\r\n\r\n')

        def send(port):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(request)
            answer = sock.recv(100)
            sock.close()
            return answer

        agent = "x\\x22 200 0 \\x22forged\\x85y"
        uri = "/p?\\x22q\\x22=\\x5Cx"
        for fmt in ("common", "combined", "json", '{request} "{user_agent}" "{referer}"'):
            proxy = self.proxy(type("Proxy", (HttpProxy,), {"access_log_format": fmt}),
                               upstreams=[self.url(origin)])
            with self.assertLogs("thor.http.proxy.access", "INFO") as logs:
                answer = self.in_thread(lambda: send(proxy.port))
                self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer)
                self.run_until(lambda: logs.records)
            line = logs.records[0].getMessage()
            self.assertEqual(len(line.splitlines()), 1, line)
            self.assertTrue(all(" " <= c <= "~" for c in line), line)
            if fmt == "json":
                record = json.loads(line)
                self.assertEqual((record["uri"], record["user_agent"], record["referer"]),
                                 (uri, agent, "a\\xE9"))
                continue
            self.assertIn("GET %s HTTP/1.1" % uri, line)
            if fmt != "common":
                self.assertIn('"%s"' % agent, line)
                self.assertIn('"a\\xE9"', line)
        # What the parser refuses is escaped too, should it get that far.
        line = AccessFormat("combined").line(
            "127.0.0.1", b"GET", b"/\x1b[2J", b"1.1", 200, 0, 0, 0.001, None,
            [(b"User-Agent", b"\x1b]0;pwned\x07\x7f\\\n!")])
        self.assertIn('"GET /\\x1B[2J HTTP/1.1"', line)
        self.assertIn('"\\x1B]0;pwned\\x07\\x7F\\x5C\\x0A!"', line)
        self.assertEqual([escape(bytes([c])) for c in b"a ~"], ["a", " ", "~"])
        self.assertEqual({len(escape(bytes([c]))) for c in range(256)
                          if c < 0x20 or c >= 0x7f or c in b'"\\'}, {4})

    def test_nothing_formatted_when_nobody_listens(self):
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        calls = []

        class Counting:
            def line(self, *args):
                calls.append(args)
                return ""

        proxy._access_format = Counting()
        self.fetch("http://127.0.0.1:%d/" % proxy.port)
        self.assertEqual(calls, [])  # the logger is not enabled for INFO

    def test_the_access_logger_settings_are_read_for_each_exchange(self):
        # The proxy reads logging's cached answer: every change of level,
        # logging.disable() and the logger's ``disabled`` take effect at
        # the next exchange.
        origin = self.origin()
        proxy = self.proxy(upstreams=[self.url(origin)])
        logger = logging.getLogger("thor.http.proxy.access")
        records = []
        handler = logging.Handler()
        handler.emit = records.append
        logger.addHandler(handler)
        propagate, logger.propagate = logger.propagate, False
        parent = logging.getLogger("thor.http.proxy")
        parent_level = parent.level

        def restore():
            logger.removeHandler(handler)
            logger.propagate = propagate
            logger.disabled = False
            logger.setLevel(logging.NOTSET)
            parent.setLevel(parent_level)
            logging.disable(logging.NOTSET)

        self.addCleanup(restore)
        url = "http://127.0.0.1:%d/" % proxy.port
        for change, logged in (
            (lambda: logger.setLevel(logging.WARNING), 0),
            (lambda: logger.setLevel(logging.INFO), 1),
            (lambda: setattr(logger, "disabled", True), 0),
            (lambda: setattr(logger, "disabled", False), 1),
            (lambda: logging.disable(logging.INFO), 0),
            (lambda: logging.disable(logging.NOTSET), 1),
            (lambda: logger.setLevel(logging.WARNING), 0),
            # The level it inherits.
            (lambda: (logger.setLevel(logging.NOTSET), parent.setLevel(logging.WARNING)), 0),
            (lambda: parent.setLevel(logging.INFO), 1),
        ):
            change()
            before, total = len(records), proxy.metrics.total
            self.fetch(url)
            self.run_until(lambda: proxy.metrics.total == total + 1)
            self.assertEqual(len(records) - before, logged, records[before:])

    def test_duration_buckets(self):
        # Each duration goes to the first bucket whose bound it does not
        # exceed (a bound belongs to its own bucket), as Prometheus counts.
        proxy = self.proxy(upstreams=[self.url(self.origin())])
        exchange = mock.Mock(method=b"GET", uri=b"/", req_version=b"1.1", req_hdrs=[],
                             connection=None)
        now = [0.0]
        clock = mock.Mock(monotonic=lambda: now[0])
        durations = [0.0, 0.001, 0.005, 0.0050001, 0.0099, 0.01, 0.0100001, 0.025, 0.03,
                     0.7, 10.0, 10.5, 1e9]
        for duration in durations:
            pex = ProxyExchange(proxy, exchange)
            pex.started = 0.0
            now[0] = duration
            before = list(proxy.metrics.durations)
            with mock.patch.object(proxy_module, "_time", clock):
                pex._done()
            expected = before[:]
            expected[bisect.bisect_left(DURATION_BUCKETS, duration)] += 1
            self.assertEqual(proxy.metrics.durations, expected, duration)
        self.assertAlmostEqual(proxy.metrics.duration_sum, sum(durations))
        self.assertEqual(sum(proxy.metrics.durations), len(durations))


class FailureLogTest(ProxyTestCase):
    def test_upstream_failures_do_not_flood_the_log(self):
        # Once an upstream is down, requests failing on it are not one
        # WARNING line each (which -q would keep).
        dead_port = refusing_port(self)
        proxy = self.proxy(upstreams=["http://127.0.0.1:%d" % dead_port])
        client = HttpClient(self.loop)
        with self.assertLogs("thor.http", "WARNING") as logs:
            for _ in range(20):
                self.assertEqual(self.fetch("http://127.0.0.1:%d/x" % proxy.port,
                                            client=client)["status"], b"502")
        # The upstream going down, and the request that found it so.
        self.assertEqual([r.name for r in logs.records],
                         ["thor.http.upstreams", "thor.http.proxy"], logs.output)
        # A forward proxy's client asking for unreachable URLs of its choosing:
        # a bounded number of lines, each with the URI cut short, then a
        # count of the others.
        forward = self.proxy()
        forward._failure_log.lines = 3
        forward._failure_log.period = 1.0
        client = HttpClient(self.loop)
        client.proxy = "http://127.0.0.1:%d" % forward.port
        url = "http://127.0.0.1:%d/%s" % (dead_port, "A" * 5000)
        with self.assertLogs("thor.http.proxy", "WARNING") as logs:
            for _ in range(10):
                self.assertEqual(self.fetch(url, client=client)["status"], b"502")
            self.run_until(lambda: len(logs.records) > 3)
        self.assertEqual(len(logs.records), 4, logs.output)
        for record in logs.records[:3]:
            message = record.getMessage()
            self.assertIn("/%s... from 127.0.0.1: " % ("A" * (200 - len(url) + 5000)), message)
            self.assertLess(len(message), 400)
        self.assertEqual(logs.records[3].getMessage(),
                         "7 more upstream failures in the last 1 s (lines at DEBUG)")


class CommandLineOperationsTest(CommandLineMixin, ProxyTestCase):
    def test_admin_metrics_match_the_load(self):
        a, b = self.origin("a"), self.origin("b")
        directory = tempfile.mkdtemp()
        access = os.path.join(directory, "access.log")
        self.addCleanup(lambda: [os.unlink(os.path.join(directory, f))
                                 for f in os.listdir(directory)])
        proc = self.run_proxy("--listen", "127.0.0.1:0", "--upstream", self.url(a),
                              "--upstream", self.url(b), "--admin", "127.0.0.1:0",
                              "--access-log", access, "--access-log-format", "json")
        port = self.listening_port(proc)
        admin_port, = self.stderr_matches(proc, rb"admin endpoint on http://127\.0\.0\.1:(\d+)/")
        admin_port = int(admin_port)
        count = 120
        answers = self.in_thread(lambda: [r for i in range(3)
                                          for r in get_many(port, count // 3)])
        self.assertEqual(answers, [(200, b"ok:")] * count)
        status, _, text = self.in_thread(lambda: scrape(admin_port))
        self.assertEqual(status, 200)
        m = parse_metrics(text.decode())
        self.assertEqual(m[("thor_proxy_requests_total", 'code="2xx"')], count)
        self.assertEqual(m[("thor_proxy_request_duration_seconds_count", "")], count)
        self.assertEqual(m[("thor_proxy_sent_bytes_total", "")], 3 * count)
        self.assertEqual(sum(v for k, v in m.items()
                             if k[0] == "thor_proxy_upstream_requests_total"), count)
        self.assertEqual(self.in_thread(lambda: scrape(admin_port, "/healthz"))[0], 200)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(10), 0)
        with open(access) as f:
            records = [json.loads(line) for line in f]
        self.assertEqual(len(records), count)
        self.assertEqual({r["status"] for r in records}, {200})
        self.assertEqual(proc.stdout.read(), b"")  # the access log went to the file
        self.assertTrue(self._refused(admin_port))

    @staticmethod
    def _refused(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except OSError:
            return True

    def run_on_socket(self, *args):
        """The proxy on a listening socket made here (so its port is known
        without its log), with ``args``."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.addCleanup(sock.close)
        proc = self.run_proxy("--listen-fd", str(sock.fileno()), *args,
                              pass_fds=(sock.fileno(),))
        return proc, sock.getsockname()[1]

    def test_quiet_and_verbose(self):
        origin = self.origin()
        dead = "http://127.0.0.1:%d" % refusing_port(self)
        outputs = {}
        for flag in ("-q", "-v", "-qq"):
            proc, port = self.run_on_socket("--upstream", dead, "--upstream", self.url(origin),
                                            flag)
            self.assertEqual(self.in_thread(lambda: get_many(port, 2)), [(200, b"ok:")] * 2)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(10), 0)
            outputs[flag] = proc.communicate()[1].decode()
        # -q: warnings (the upstream going down), not the start, the retry
        # or the stop.
        self.assertIn("WARNING: upstream %s down for 10 s" % dead, outputs["-q"])
        self.assertNotIn("listening on", outputs["-q"])
        self.assertNotIn("retrying", outputs["-q"])
        # -v: all of them, and debug lines.
        for text in ("listening on", "INFO: retrying GET / on ", "WARNING: upstream",
                     "INFO: SIGTERM: graceful shutdown", "INFO: stopped"):
            self.assertIn(text, outputs["-v"])
        # -qq: errors only.
        self.assertEqual(outputs["-qq"], "")

    def test_common_access_log_on_stdout_and_exceptions_logged(self):
        origin = self.origin()
        proc, port = self.run_on_socket("--upstream", self.url(origin), "--access-log",
                                        "--access-log-format", "combined")
        conn_answers = self.in_thread(lambda: get_many(port, 3))
        self.assertEqual(conn_answers, [(200, b"ok:")] * 3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        lines = out.decode().splitlines()
        self.assertEqual(len(lines), 3, out)
        for line in lines:
            self.assertRegex(line, r'"GET / HTTP/1\.1" 200 3 "-" "-" '
                             r'\d+\.\d{3} http://127\.0\.0\.1:%d$' % origin.port)

    def test_version_and_bad_flags(self):
        done = subprocess.run([sys.executable, "-m", "thor.http.proxy", "--version"],
                              stdout=subprocess.PIPE, cwd=ROOT, timeout=20,
                              env=dict(os.environ, PYTHONPATH=ROOT))
        self.assertEqual((done.returncode, done.stdout.decode().strip()),
                         (0, "thor %s" % thor.__version__))
        for args, message in (
            (["--access-log-format", "{nope}"], b"template"),
            (["--access-log-format", "fancy"], b"access log format"),
            (["--admin", "nope"], b"--admin takes HOST:PORT"),
            (["--admin", "127.0.0.1:0", "--workers", "2"], b"--workers"),
        ):
            done = subprocess.run([sys.executable, "-m", "thor.http.proxy"] + args,
                                  stderr=subprocess.PIPE, cwd=ROOT, timeout=20,
                                  env=dict(os.environ, PYTHONPATH=ROOT))
            self.assertEqual(done.returncode, 2, (args, done.stderr))
            self.assertIn(message, done.stderr)
        # A log file that cannot be opened: a clear line, status 1.
        done = subprocess.run([sys.executable, "-m", "thor.http.proxy", "--log-file",
                               "/nonexistent/dir/proxy.log"],
                              stderr=subprocess.PIPE, cwd=ROOT, timeout=20,
                              env=dict(os.environ, PYTHONPATH=ROOT))
        self.assertEqual(done.returncode, 1)
        self.assertIn(b"cannot open the log", done.stderr)

    def test_the_library_configures_no_logging(self):
        code = ("import logging, thor, thor.http.proxy, thor.http.upstreams, "
                "thor.http.metrics, thor.http.proxylog; "
                "names = ['', 'thor', 'thor.http.proxy', 'thor.http.proxy.access', "
                "'thor.http.upstreams']; "
                "print([(logging.getLogger(n).handlers, logging.getLogger(n).level) "
                "for n in names])")
        done = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              cwd=ROOT, timeout=20, env=dict(os.environ, PYTHONPATH=ROOT))
        self.assertEqual(done.stdout.strip(), b"[([], 30), ([], 0), ([], 0), ([], 0), ([], 0)]")


if __name__ == "__main__":
    unittest.main()
