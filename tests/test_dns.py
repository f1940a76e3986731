"""Tests for thor.dns: answers come back in the loop's thread, literals and
.invalid names never reach the resolver, and the worker pool is bounded."""

import socket
import threading
import unittest
from unittest import mock

import thor.dns
from thor.dns import lookup

from tests.support import LoopTestCase


class TestLookup(LoopTestCase):
    def resolve(self, host, port=80, **kw):
        results = []
        lookup(host, port, lambda result: results.append((result, threading.get_ident())),
               self.loop, **kw)
        self.assertEqual(results, [], "never called back from inside lookup()")
        self.run_until(lambda: results)
        result, thread = results[0]
        self.assertEqual(thread, threading.get_ident(), "called in the loop's thread")
        return result

    def test_ip_literals_skip_the_resolver(self):
        with mock.patch.object(thor.dns.socket, "getaddrinfo") as resolver:
            self.assertEqual(
                self.resolve("127.0.0.1", 80),
                [(socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", 80))],
            )
            self.assertEqual(
                self.resolve(b"[::1]", "443"),
                [(socket.AF_INET6, socket.SOCK_STREAM, 0, "", ("::1", 443, 0, 0))],
            )
            udp = self.resolve("10.1.2.3", 53, type=socket.SOCK_DGRAM)
            self.assertEqual(udp[0][1], socket.SOCK_DGRAM)
        resolver.assert_not_called()

    def test_invalid_names_fail_at_once(self):
        with mock.patch.object(thor.dns.socket, "getaddrinfo") as resolver:
            for name in ("a.invalid", "B.Invalid.", "invalid", b"x.y.invalid"):
                error = self.resolve(name)
                self.assertIsInstance(error, socket.gaierror)
                self.assertEqual(error.errno, socket.EAI_NONAME)
        resolver.assert_not_called()

    def test_names_resolve_in_a_worker(self):
        callers = []
        answer = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 80))]

        def fake(*args):
            callers.append(threading.get_ident())
            return answer

        with mock.patch.object(thor.dns.socket, "getaddrinfo", side_effect=fake):
            self.assertEqual(self.resolve("example.test"), answer)
        self.assertNotEqual(callers, [threading.get_ident()])

    def test_thor_017_argument_order(self):
        # lookup(loop, host, port, socktype, callback), as Thor 0.17 has it.
        got = {}
        answer = [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("192.0.2.1", 53))]
        with mock.patch.object(thor.dns.socket, "getaddrinfo", return_value=answer) as gai:
            for name, port, kind in ((b"example.test", 53, socket.SOCK_DGRAM),
                                     (b"x.invalid", 53, socket.SOCK_STREAM),
                                     (b"127.0.0.1", 80, socket.SOCK_STREAM)):
                lookup(self.loop, name, port, kind, lambda r, name=name: got.update({name: r}))
            self.run_until(lambda: len(got) == 3)
        gai.assert_called_once_with("example.test", 53, 0, socket.SOCK_DGRAM)
        self.assertEqual(got[b"example.test"], answer)
        self.assertIsInstance(got[b"x.invalid"], socket.gaierror)
        self.assertEqual(
            got[b"127.0.0.1"],
            [(socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", 80))],
        )

    def test_errors_come_back_as_values(self):
        error = socket.gaierror(socket.EAI_NONAME, "no such name")
        with mock.patch.object(thor.dns.socket, "getaddrinfo", side_effect=error):
            self.assertIs(self.resolve("nothing.test"), error)
        self.assertIsInstance(self.resolve("x.test", port="not a port"), ValueError)

    def test_port_out_of_range(self):
        with mock.patch.object(thor.dns.socket, "getaddrinfo") as resolver:
            for port in (65536, -1, "70000"):
                self.assertIsInstance(self.resolve("127.0.0.1", port), ValueError)
                self.assertIsInstance(self.resolve("example.test", port), ValueError)
        resolver.assert_not_called()

    def test_real_localhost(self):
        result = self.resolve("localhost", 80)
        self.assertTrue(result)
        self.assertIn(result[0][0], (socket.AF_INET, socket.AF_INET6))

    def test_pool_is_bounded(self):
        release = threading.Event()
        running = []
        peak = []

        def slow(*args):
            running.append(1)
            peak.append(len(running))
            release.wait(5)
            running.pop()
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 80))]

        results = []
        with mock.patch.object(thor.dns.socket, "getaddrinfo", side_effect=slow):
            for index in range(40):
                lookup("host%d.test" % index, 80, results.append, self.loop)
            self.run_until(lambda: len(peak) >= thor.dns.max_workers)
            self.assertLessEqual(
                sum(1 for t in threading.enumerate() if t.name == "thor-dns"),
                thor.dns.max_workers,
            )
            release.set()
            self.run_until(lambda: len(results) == 40)
        self.assertLessEqual(max(peak), thor.dns.max_workers)

    def test_parse_host(self):
        self.assertEqual(thor.dns.parse_host("[::1]"), "::1")
        self.assertEqual(thor.dns.parse_host(b"example.com"), "example.com")
        with self.assertRaises(TypeError):
            thor.dns.parse_host(12)


if __name__ == "__main__":
    unittest.main()
