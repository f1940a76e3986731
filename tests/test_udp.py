"""Tests for thor.udp on loopback."""

import socket
import sys
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


def caller():
    """The name of the function that called the listener calling this."""
    return sys._getframe(2).f_code.co_name


class TestUdpDispatch(UdpTestCase):
    """A lone 'datagram' listener is called by the receiving loop itself;
    anything else goes through emit. Both keep emit's rules."""

    def queued(self, count):
        """A bound, unpaused endpoint with no listener, and ``count``
        datagrams (b"0", b"1", ...) already waiting on its socket, so that
        one readable event receives them all."""
        left = UdpEndpoint(self.loop)
        self.addCleanup(left.shutdown)
        left.bind(self.host, 0)
        sender = self.endpoint()
        for index in range(count):
            sender.send(b"%d" % index, self.host, left.port)
        left.sender = sender
        return left

    def test_lone_listener_gets_every_datagram_in_order(self):
        left = self.queued(3)
        got = []
        left.on("datagram", lambda *args: got.append(args))
        left.pause(False)
        self.run_until(lambda: len(got) == 3)
        self.assertEqual(got, [
            (b"%d" % index, self.host, left.sender.port) for index in range(3)
        ])

    def test_several_listeners_go_through_emit_in_order(self):
        left = self.queued(2)
        got = []
        left.on("datagram", lambda data, host, port: got.append(("a", data, caller())))
        left.on("datagram", lambda data, host, port: got.append(("b", data, caller())))
        left.pause(False)
        self.run_until(lambda: len(got) == 4)
        emit = UdpEndpoint.emit.__name__
        self.assertEqual(got, [
            ("a", b"0", emit), ("b", b"0", emit), ("a", b"1", emit), ("b", b"1", emit),
        ])

    def test_sink_and_once(self):
        left = self.queued(3)
        once, sunk = [], []

        class Sink:
            def datagram(self, data, host, port):
                sunk.append(data)

        left.sink(Sink())
        left.once("datagram", lambda data, host, port: once.append(data))
        left.pause(False)
        self.run_until(lambda: len(sunk) == 2)
        self.assertEqual(once, [b"0"])
        self.assertEqual(sunk, [b"1", b"2"])
        self.assertEqual(left.listeners("datagram"), [])

    def test_listeners_changed_by_a_listener_count_from_the_next_datagram(self):
        # All four arrive in one readable event: the listeners are looked
        # up per datagram, not once per event.
        left = self.queued(4)
        got_a, got_b = [], []

        def listener_a(data, host, port):
            got_a.append(data)
            if data == b"0":
                left.on("datagram", listener_b)

        def listener_b(data, host, port):
            got_b.append(data)
            if len(got_b) == 2:
                left.removeListener("datagram", listener_a)

        left.on("datagram", listener_a)
        left.pause(False)
        self.run_until(lambda: len(got_b) == 3)
        self.assertEqual(got_a, [b"0", b"1", b"2"])
        self.assertEqual(got_b, [b"1", b"2", b"3"])

    def test_pause_by_a_listener_stops_the_batch_and_loses_nothing(self):
        left = self.queued(5)
        got = []

        def listener(data, host, port):
            got.append(data)
            if len(got) == 2:
                left.pause(True)

        left.on("datagram", listener)
        left.pause(False)
        self.run_until(lambda: len(got) == 2)
        idle(self.loop)
        self.assertEqual(got, [b"0", b"1"])
        left.pause(False)
        self.run_until(lambda: len(got) == 5)
        self.assertEqual(got, [b"%d" % index for index in range(5)])

    def test_listener_exception_reaches_the_loop_and_the_rest_arrive(self):
        left = self.queued(3)
        got, errors = [], []
        self.loop.exception_handler = lambda loop, exc, where: errors.append((exc, where))

        def listener(data, host, port):
            got.append(data)
            if data == b"0":
                raise RuntimeError("listener failed")

        left.on("datagram", listener)
        left.pause(False)
        self.run_until(lambda: len(got) == 3)
        self.assertEqual(got, [b"0", b"1", b"2"])
        self.assertEqual([(str(exc), where) for exc, where in errors],
                         [("listener failed", left)])

    def test_a_subclass_emit_sees_every_datagram(self):
        seen = []

        class Watched(UdpEndpoint):
            def emit(self, event, *args):
                seen.append((event,) + args[:1])
                UdpEndpoint.emit(self, event, *args)

        left = Watched(self.loop)
        self.addCleanup(left.shutdown)
        left.bind(self.host, 0)
        got = []
        left.on("datagram", lambda data, host, port: got.append(data))
        left.pause(False)
        sender = self.endpoint()
        sender.send(b"one", self.host, left.port)
        sender.send(b"two", self.host, left.port)
        self.run_until(lambda: len(got) == 2)
        self.assertEqual(seen, [("datagram", b"one"), ("datagram", b"two")])


class TestUdpSend(UdpTestCase):
    """send() to a host already sent to takes a short path; everything the
    first send checks is still checked."""

    def test_remembered_hosts_str_and_bytes(self):
        left = self.endpoint()
        left.pause(False)
        sender = self.endpoint()
        for index in range(3):
            sender.send(b"s%d" % index, self.host, left.port)
            sender.send(b"b%d" % index, self.host.encode(), left.port)
        self.assertEqual(sender._addresses, {self.host: self.host, self.host.encode(): self.host})
        self.run_until(lambda: len(left.got) == 6)
        self.assertEqual(sorted(got[0] for got in left.got),
                         [b"b0", b"b1", b"b2", b"s0", b"s1", b"s2"])

    def test_remembered_host_still_checks_everything(self):
        left = self.endpoint()
        left.pause(False)
        sender = self.endpoint()
        sender.send(b"first", self.host, left.port)
        self.assertIn(self.host, sender._addresses)
        sender.send("w\u00f6rld", self.host, left.port)
        sender.send(b"str port", self.host, str(left.port))
        sender.send(bytearray(b"bytearray"), self.host, left.port)
        sender.send(memoryview(b"memoryview"), self.host, left.port)
        sender.send(b"bytearray host", bytearray(self.host.encode()), left.port)
        self.run_until(lambda: len(left.got) == 6)
        self.assertEqual([got[0] for got in left.got], [
            b"first", "w\u00f6rld".encode("utf-8"), b"str port", b"bytearray",
            b"memoryview", b"bytearray host",
        ])
        with self.assertRaises(ValueError):
            sender.send(b"x" * (UdpEndpoint.max_dgram + 1), self.host, left.port)
        with self.assertRaises(ValueError):
            sender.send(b"x" * (UdpEndpoint.max_dgram + 1), self.host, str(left.port))
        sender.max_dgram = 4
        with self.assertRaises(ValueError):
            sender.send(b"12345", self.host, left.port)
        sender.send(b"1234", self.host, left.port)
        self.run_until(lambda: len(left.got) == 7)
        with self.assertRaises(OverflowError):
            sender.send(b"port", self.host, 70000)
        sender.shutdown()
        self.assertEqual(sender._addresses, {})
        with self.assertRaisesRegex(OSError, "UDP endpoint closed"):
            sender.send(b"closed", self.host, left.port)

    def test_memory_is_bounded(self):
        sender = self.endpoint()
        with mock.patch.object(thor.udp, "_ADDRESSES_MAX", 4):
            for last in range(1, 11):
                sender.send(b"x", "127.0.0.%d" % last, 9)
                self.assertLessEqual(len(sender._addresses), 4)
        self.assertIn("127.0.0.10", sender._addresses)


def dual_stack():
    """Can an IPv6 socket on this machine send to a v4-mapped address?"""
    if not has_ipv6():
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as six, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as four:
            four.bind(("127.0.0.1", 0))
            six.bind(("::", 0))
            six.sendto(b"?", ("::ffff:127.0.0.1", four.getsockname()[1]))
        return True
    except OSError:
        return False


@unittest.skipUnless(dual_stack(), "no dual-stack IPv6")
class TestUdpMapped(UdpTestCase):
    def test_v6_endpoint_sends_to_v4_hosts_mapped(self):
        left = self.endpoint()
        left.pause(False)
        six = self.endpoint(host="::")
        for index in range(2):
            six.send(b"%d" % index, self.host, left.port)
        self.assertEqual(six._addresses, {self.host: "::ffff:" + self.host})
        self.run_until(lambda: len(left.got) == 2)
        self.assertEqual([got[0] for got in left.got], [b"0", b"1"])

    def test_memory_goes_with_the_socket(self):
        left = self.endpoint()
        left.pause(False)
        sender = self.endpoint()
        sender.send(b"on v4", self.host, left.port)
        sender.shutdown()
        sender.bind("::", 0)
        # The host remembered for the IPv4 socket would not do for this one.
        sender.send(b"on v6", self.host, left.port)
        sender.send(b"again", self.host, left.port)
        self.run_until(lambda: len(left.got) == 3)
        self.assertEqual([got[0] for got in left.got], [b"on v4", b"on v6", b"again"])

    def test_v4_endpoint_refuses_v6_hosts_every_time(self):
        sender = self.endpoint()
        for _ in range(2):
            with self.assertRaises(ValueError):
                sender.send(b"no", "::1", 9)
        self.assertEqual(sender._addresses, {})

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
