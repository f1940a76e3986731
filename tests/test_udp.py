"""Tests for thor.udp on loopback."""

import socket
import unittest
from unittest import mock

import thor.udp
from thor.udp import UdpEndpoint

from tests.support import LoopTestCase, has_ipv6, open_fds
from tests.test_tcp import idle


class UdpTestCase(LoopTestCase):
    host = "127.0.0.1"

    def endpoint(self, bind=True, host=None):
        endpoint = UdpEndpoint(self.loop)
        self.addCleanup(endpoint.shutdown)
        endpoint.got = []
        endpoint.on("datagram", lambda *args: endpoint.got.append(args))
        if bind:
            endpoint.bind(host or self.host, 0)
        return endpoint


class TestUdp(UdpTestCase):
    def test_exchange(self):
        left = self.endpoint()
        right = self.endpoint()
        self.assertEqual(left.host, self.host)
        self.assertNotEqual(left.port, 0)
        left.pause(False)
        right.pause(False)
        right.send(b"hello", self.host, left.port)
        right.send("w\u00f6rld", self.host, left.port)
        self.run_until(lambda: len(left.got) == 2)
        self.assertEqual(left.got, [
            (b"hello", self.host, right.port),
            ("w\u00f6rld".encode("utf-8"), self.host, right.port),
        ])
        left.send(b"back", left.got[0][1], left.got[0][2])
        self.run_until(lambda: right.got)
        self.assertEqual(right.got, [(b"back", self.host, left.port)])

    def test_starts_paused(self):
        left = self.endpoint()
        right = self.endpoint()
        right.send(b"waiting", self.host, left.port)
        idle(self.loop)
        self.assertEqual(left.got, [])
        left.pause(False)
        self.run_until(lambda: left.got)
        left.pause(True)
        right.send(b"held", self.host, left.port)
        idle(self.loop)
        self.assertEqual(len(left.got), 1)
        left.pause(False)
        self.run_until(lambda: len(left.got) == 2)

    def test_largest_datagram_arrives_whole(self):
        left = self.endpoint()
        right = self.endpoint()
        left.pause(False)
        payload = bytes(range(256)) * 255 + b"x" * (UdpEndpoint.max_dgram - 255 * 256)
        self.assertEqual(len(payload), 65507)
        right.send(payload, self.host, left.port)
        self.run_until(lambda: left.got)
        self.assertEqual(left.got[0][0], payload)
        with self.assertRaises(ValueError):
            right.send(payload + b"!", self.host, left.port)

    def test_send_without_bind(self):
        left = self.endpoint()
        left.pause(False)
        sender = self.endpoint(bind=False)
        self.assertIsNone(sender.port)
        sender.pause(False)
        sender.send(b"first", self.host, left.port)
        self.assertEqual(sender.sock.family, socket.AF_INET)
        self.assertIsNotNone(sender.port)
        self.run_until(lambda: left.got)
        self.assertEqual(left.got[0][2], sender.port)
        left.send(b"reply", self.host, sender.port)
        self.run_until(lambda: sender.got)

    def test_send_to_a_name(self):
        left = self.endpoint()
        left.pause(False)
        sender = self.endpoint()
        sender.send(b"by name", "localhost", left.port)
        self.run_until(lambda: left.got)
        self.assertEqual(left.got[0][0], b"by name")

    def test_many_datagrams(self):
        left = self.endpoint()
        right = self.endpoint()
        left.pause(False)
        for index in range(200):
            right.send(b"%d" % index, self.host, left.port)
        self.run_until(lambda: len(left.got) == 200)
        self.assertEqual([got[0] for got in left.got], [b"%d" % i for i in range(200)])

    def test_shutdown_releases_everything(self):
        baseline = open_fds()
        endpoint = self.endpoint()
        endpoint.pause(False)
        self.assertEqual(self.loop.fd_count(), 1)
        endpoint.shutdown()
        endpoint.shutdown()
        self.assertEqual(self.loop.fd_count(), 0)
        self.assertEqual(open_fds(), baseline)

    def test_send_after_shutdown_opens_nothing(self):
        baseline = open_fds()
        left = self.endpoint()
        sender = self.endpoint(bind=False)
        callbacks = []
        with mock.patch.object(thor.udp.dns, "lookup",
                               lambda host, port, callback, *a: callbacks.append(callback)):
            sender.send(b"to a name", "name.test", left.port)
        sender.shutdown()
        # The name resolves after the endpoint was shut down: dropped.
        callbacks[0]([(socket.AF_INET, socket.SOCK_DGRAM, 17, "", (self.host, left.port))])
        # Sending after it is the application's mistake, told at the call.
        with self.assertRaisesRegex(OSError, "UDP endpoint closed"):
            sender.send(b"direct", self.host, left.port)
        self.assertIsNone(sender.sock)
        left.shutdown()
        self.assertEqual(self.loop.fd_count(), 0)
        self.assertEqual(open_fds(), baseline)


@unittest.skipUnless(has_ipv6(), "no IPv6 loopback")
class TestUdpIPv6(UdpTestCase):
    host = "::1"

    def test_exchange_v6(self):
        left = self.endpoint(host="[::1]")
        self.assertEqual(left.sock.family, socket.AF_INET6)
        left.pause(False)
        sender = self.endpoint(bind=False)
        sender.send(b"six", "::1", left.port)
        self.assertEqual(sender.sock.family, socket.AF_INET6)
        self.run_until(lambda: left.got)
        self.assertEqual(left.got, [(b"six", "::1", sender.port)])

    def test_largest_v6_datagram(self):
        left = self.endpoint()
        left.pause(False)
        sender = self.endpoint()
        payload = b"6" * UdpEndpoint.max_dgram
        sender.send(payload, "::1", left.port)
        self.run_until(lambda: left.got)
        self.assertEqual(left.got[0][0], payload)


if __name__ == "__main__":
    unittest.main()
