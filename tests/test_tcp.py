"""Tests for thor.tcp against real sockets on loopback."""

import errno
import gc
import os
import socket
import ssl
import unittest
from unittest import mock

import thor.dns
from thor.tcp import TcpClient, TcpConnection, TcpServer

from thor.loop import EventSource
from tests.support import LoopTestCase, has_ipv6, open_fds, run_until


def vm_rss():
    """Resident set size in bytes, from /proc (None elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def idle(loop, seconds=0.05):
    """Let ``loop`` run for ``seconds``; how many passes it made (its
    poller's calls)."""
    passes = [0]
    original = loop._poller.poll

    def poll(timeout):
        passes[0] += 1
        return original(timeout)

    loop._poller.poll = poll
    # The loop binds its poll once (epoll's own, past the adapter, if it
    # can): unbound, the next pass binds again and takes the wrapper.
    loop._poll = None
    marker = []
    loop.schedule(seconds, marker.append, 1)
    run_until(loop, lambda: marker)
    return passes[0]


class Collector:
    """Listens to a connection and counts what it emits."""

    def __init__(self, conn, unpause=True):
        self.conn = conn
        self.data = bytearray()
        self.closes = 0
        self.pauses = []
        conn.on("data", self.data.extend)
        conn.on("close", self._close)
        conn.on("pause", self.pauses.append)
        if unpause:
            conn.pause(False)

    def _close(self):
        self.closes += 1


class TcpTestCase(LoopTestCase):
    host = "127.0.0.1"

    def server(self, host=None, **kw):
        server = TcpServer(host or self.host, 0, self.loop, **kw)
        self.addCleanup(server.close)
        self.accepted = []
        server.on("connect", self.accepted.append)
        self.addCleanup(lambda: [conn.abort() for conn in self.accepted])
        return server

    def echo_server(self, host=None, **kw):
        server = self.server(host, **kw)

        def echo(conn):
            conn.on("data", conn.write)
            conn.pause(False)

        server.on("connect", echo)
        return server

    def connect(self, host, port, timeout=None, client=None):
        """Connect; return a list that gets (conn,) or (errtype, error)."""
        client = client or TcpClient(self.loop)
        result = []
        client.on("connect", lambda conn: result.append((conn,)))
        client.on("connect_error", lambda *args: result.append(args))
        client.connect(host, port, timeout)
        return result

    def connected(self, host, port):
        result = self.connect(host, port)
        self.run_until(lambda: result)
        self.assertEqual(len(result[0]), 1, result)
        conn = result[0][0]
        self.addCleanup(conn.abort)
        return conn

    def idle(self, seconds=0.05):
        """Let the loop run for a while; how many passes it made."""
        return idle(self.loop, seconds)

    def served(self, half_close=False):
        """A raw client (RawPeer) connected to a thor server; the server's
        end, with ``half_close`` set before it reads anything."""
        server = self.server()
        sock = socket.create_connection((self.host, server.port))
        peer = RawPeer(sock, self.loop)
        self.addCleanup(peer.close)
        self.run_until(lambda: self.accepted)
        conn = self.accepted[0]
        conn.half_close = half_close
        return peer, conn


class TestConnect(TcpTestCase):
    def test_echo(self):
        server = self.echo_server()
        conn = self.connected(self.host, server.port)
        self.assertIsInstance(conn, TcpConnection)
        self.assertTrue(conn.tcp_connected)
        self.assertEqual((conn.host, conn.port), (self.host, server.port))
        got = Collector(conn)
        conn.write(b"hello ")
        conn.write("w\u00f6rld")
        conn.write(bytearray(b" and "))
        conn.write(memoryview(b"more"))
        want = b"hello " + "w\u00f6rld".encode("utf-8") + b" and more"
        self.run_until(lambda: bytes(got.data) == want)
        self.assertEqual(
            conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1
        )
        self.assertEqual(
            self.accepted[0].socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1
        )

    def test_start_and_stop_events(self):
        server = TcpServer(self.host, 0, self.loop)
        events = []
        server.on("start", lambda: events.append("start"))
        server.on("stop", lambda: events.append("stop"))
        self.assertNotEqual(server.port, 0)
        self.run_until(lambda: events)
        self.assertEqual(events, ["start"])
        server.close()
        self.assertEqual(events, ["start"], "stop is emitted from the loop")
        self.run_until(lambda: len(events) == 2)
        server.shutdown()  # alias, and idempotent
        self.loop.schedule(0, events.append, "marker")
        self.run_until(lambda: "marker" in events)
        self.assertEqual(events, ["start", "stop", "marker"])
        self.assertEqual(self.loop.fd_count(), 0)

    def test_connections_start_paused(self):
        server = self.server()
        conn = self.connected(self.host, server.port)
        self.run_until(lambda: self.accepted)
        got = Collector(conn, unpause=False)
        self.accepted[0].write(b"early")
        self.idle()
        self.assertEqual(got.data, b"")
        conn.pause(False)
        self.run_until(lambda: got.data == b"early")
        conn.pause(True)
        self.accepted[0].write(b"later")
        self.idle()
        self.assertEqual(got.data, b"early")
        conn.pause(False)
        self.run_until(lambda: got.data == b"earlylater")

    def test_refused(self):
        probe = socket.socket()
        probe.bind((self.host, 0))
        port = probe.getsockname()[1]
        probe.close()  # nobody listens there now
        result = self.connect(self.host, port)
        self.run_until(lambda: result)
        self.assertEqual(result, [(OSError, errno.ECONNREFUSED)])
        self.assertIs(socket.error, OSError)
        self.assertEqual(self.loop.fd_count(), 0)

    def test_port_out_of_range_is_a_connect_error(self):
        gc.collect()  # other tests' garbage must not close fds meanwhile
        baseline = open_fds()
        for port in (70000, -1):
            result = self.connect(self.host, port)
            self.run_until(lambda: result)
            self.assertEqual(result, [(OSError, errno.EINVAL)])
        self.assertEqual(self.loop.fd_count(), 0)
        gc.collect()
        self.assertEqual(open_fds(), baseline)

    def test_invalid_name_stays_on_the_machine(self):
        with mock.patch.object(thor.dns.socket, "getaddrinfo") as resolver:
            for name in ("no-such-host.invalid", b"x.INVALID.", "invalid"):
                result = self.connect(name, 80)
                self.run_until(lambda: result)
                self.assertEqual(result, [(socket.gaierror, socket.EAI_NONAME)])
        resolver.assert_not_called()

    def test_resolved_name(self):
        server = self.echo_server()
        got = []
        with mock.patch.object(
            thor.dns.socket, "getaddrinfo",
            return_value=[(socket.AF_INET, socket.SOCK_STREAM, 6, "", (self.host, server.port))],
        ) as resolver:
            result = self.connect("example.test", server.port)
            self.run_until(lambda: result)
        resolver.assert_called_once()
        conn = result[0][0]
        self.addCleanup(conn.abort)
        self.assertEqual(conn.host, "example.test")
        Collector(conn).conn.on("data", got.append)
        conn.write(b"x")
        self.run_until(lambda: got)

    def test_unresolvable_name(self):
        error = socket.gaierror(socket.EAI_NONAME, "nope")
        with mock.patch.object(thor.dns.socket, "getaddrinfo", side_effect=error):
            result = self.connect("nowhere.test", 80)
            self.run_until(lambda: result)
        self.assertEqual(result, [(socket.gaierror, socket.EAI_NONAME)])

    def test_tries_each_address(self):
        server = self.echo_server()
        probe = socket.socket()
        probe.bind((self.host, 0))
        dead_port = probe.getsockname()[1]
        probe.close()
        addresses = [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (self.host, dead_port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (self.host, server.port)),
        ]
        with mock.patch.object(thor.dns.socket, "getaddrinfo", return_value=addresses):
            result = self.connect("two.test", server.port)
            self.run_until(lambda: result)
        self.assertEqual(len(result[0]), 1, result)
        result[0][0].abort()

    def test_connect_timeout(self):
        # A listener whose accept queue is full drops further SYNs, so the
        # connect neither succeeds nor fails until the timeout.
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind((self.host, 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(3):
            filler = socket.socket()
            self.addCleanup(filler.close)
            filler.setblocking(False)
            filler.connect_ex(address)
        result = self.connect(self.host, address[1], timeout=0.2)
        started = self.loop._clock()
        self.run_until(lambda: result)
        self.assertGreaterEqual(self.loop._clock() - started, 0.19)
        self.assertEqual(result, [(OSError, errno.ETIMEDOUT)])
        self.assertEqual(self.loop.fd_count(), 0)

    def test_timeout_not_reported_after_connect(self):
        server = self.server()
        result = self.connect(self.host, server.port, timeout=0.05)
        self.run_until(lambda: result)
        self.assertEqual(len(result[0]), 1)
        done = []
        self.loop.schedule(0.1, done.append, 1)
        self.run_until(lambda: done)
        self.assertEqual(len(result), 1)
        result[0][0].abort()

    def test_connection_over_socketpair(self):
        left, right = socket.socketpair()
        conn = TcpConnection(left, "pair", 0, self.loop)
        got = Collector(conn)
        right.sendall(b"over the pair")
        self.run_until(lambda: got.data == b"over the pair")
        conn.write(b"back")
        self.assertEqual(right.recv(10), b"back")
        right.sendall(b"last words")
        right.close()
        self.run_until(lambda: got.closes)
        self.assertEqual(got.data, b"over the pairlast words")
        self.assertEqual(self.loop.fd_count(), 0)
        self.assertEqual(left.fileno(), -1)

    def test_peer_gone_while_paused_keeps_what_it_sent(self):
        # A socketpair peer that writes and closes makes epoll report HUP
        # (with no error); what it wrote is still to be read. A paused
        # connection must neither drop it nor spin on the HUP.
        left, right = socket.socketpair()
        conn = TcpConnection(left, "pair", 0, self.loop)
        got = Collector(conn, unpause=False)
        right.sendall(b"sent before going")
        right.close()
        self.assertLess(self.idle(), 20, "spinning on HUP while paused")
        self.assertEqual((got.data, got.closes), (b"", 0))
        conn.pause(False)
        self.run_until(lambda: got.closes)
        self.assertEqual((bytes(got.data), got.closes), (b"sent before going", 1))
        self.assertEqual(self.loop.fd_count(), 0)

    def test_pause_from_data_listener_after_peer_gone(self):
        # The listener pauses on each chunk and resumes a pass later; the
        # peer has gone (HUP) with more in the kernel than one read takes.
        left, right = socket.socketpair()
        conn = TcpConnection(left, "pair", 0, self.loop)
        conn.read_size = 1000
        payload = os.urandom(50000)
        right.sendall(payload)
        right.close()
        got = Collector(conn)

        def on_data(data):
            conn.pause(True)
            self.loop.schedule(0, conn.pause, False)

        conn.on("data", on_data)
        self.run_until(lambda: got.closes)
        self.idle(0.02)
        self.assertEqual((bytes(got.data), got.closes), (payload, 1))
        self.assertEqual(self.loop.fd_count(), 0)
        self.assertEqual(left.fileno(), -1)


class TestListeningSocket(TcpTestCase):
    """TcpServer(sock=...): serving a socket bound elsewhere (a supervisor's)."""

    def test_serves_the_given_socket(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        server = self.server(sock=sock)
        self.assertIs(server.sock, sock)
        self.assertEqual((server.host, server.port), ("127.0.0.1", port))
        conn = self.connected("127.0.0.1", port)
        self.run_until(lambda: self.accepted)
        self.assertEqual(self.accepted[0].peer_address[1], conn.socket.getsockname()[1])
        server.close()
        self.run_until(lambda: sock.fileno() == -1)

    def test_server_listen_makes_one_to_serve(self):
        # Thor 0.17's thor.tcp.server_listen, served with sock=.
        from thor.tcp import server_listen

        sock = server_listen(b"127.0.0.1", 0, backlog=8)
        self.assertFalse(sock.getblocking())
        server = self.server(sock=sock)
        self.connected("127.0.0.1", server.port)
        self.run_until(lambda: self.accepted)

    def test_accepted_sockets_either_way(self):
        # TcpServer makes accepted sockets itself from CPython's _accept
        # (no enum per connection), or with accept() where there is none:
        # both give non-blocking TCP_NODELAY sockets of the right family.
        import _socket

        class NoRawAccept(socket.socket):
            def __getattribute__(self, name):
                if name == "_accept":
                    raise AttributeError(name)
                return socket.socket.__getattribute__(self, name)

            def accept(self):
                fd, address = _socket.socket._accept(self)
                return socket.socket(self.family, self.type, self.proto, fileno=fd), address

        for family, host, kind in (
            (socket.AF_INET, "127.0.0.1", socket.socket),
            (socket.AF_INET, "127.0.0.1", NoRawAccept),
            (socket.AF_INET6, "::1", socket.socket),
        ):
            with self.subTest(family=family, kind=kind.__name__):
                try:
                    sock = kind(family, socket.SOCK_STREAM)
                    sock.bind((host, 0))
                except OSError:
                    self.skipTest("no %s" % host)
                sock.listen(8)
                server = self.server(sock=sock)
                self.connected(host, server.port)
                self.run_until(lambda: self.accepted)
                accepted = self.accepted[0].socket
                self.assertIs(type(accepted), socket.socket)
                self.assertEqual((accepted.family, accepted.type), (family, socket.SOCK_STREAM))
                self.assertFalse(accepted.getblocking())
                self.assertEqual(
                    accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0, True)
                server.close()

    def test_refuses_a_datagram_socket(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        with self.assertRaises(ValueError):
            TcpServer(None, 0, self.loop, sock=sock)


class TestCheckIp(TcpTestCase):
    """TcpClient.check_ip: a policy on the addresses a name resolves to,
    applied before any socket is made."""

    def client(self, check):
        client = TcpClient(self.loop)
        client.check_ip = check
        return client

    def test_refused_address_is_never_connected(self):
        server = self.server()
        checked = []
        gc.collect()  # other tests' garbage must not close fds meanwhile
        baseline = open_fds()
        refuse = self.client(lambda ip: checked.append(ip) or False)
        result = self.connect(self.host, server.port, client=refuse)
        self.run_until(lambda: result)
        self.assertEqual(result, [(PermissionError, errno.EACCES)])
        self.assertEqual(checked, ["127.0.0.1"])
        self.assertEqual(open_fds(), baseline)  # no socket was made
        # A connection made after it is the first the server sees: the
        # refused one never reached it.
        self.connected(self.host, server.port)
        self.run_until(lambda: self.accepted)
        self.idle(0.02)
        self.assertEqual(len(self.accepted), 1)
        self.assertEqual(
            self.accepted[0].peer_address[1], self.accepted[0].socket.getpeername()[1]
        )

    def test_allowed_address_connects(self):
        server = self.echo_server()
        checked = []
        allow = self.client(lambda ip: checked.append(ip) or True)
        result = self.connect(self.host, server.port, client=allow)
        self.run_until(lambda: result)
        conn = result[0][0]
        self.addCleanup(conn.abort)
        self.assertIsInstance(conn, TcpConnection)
        self.assertEqual(checked, ["127.0.0.1"])
        got = Collector(conn)
        conn.write(b"ok")
        self.run_until(lambda: got.data == b"ok")

    def test_class_attribute_default_and_subclass(self):
        self.assertIsNone(TcpClient.check_ip)

        class Careful(TcpClient):
            check_ip = staticmethod(lambda ip: False)

        class Method(TcpClient):
            def check_ip(self, ip):
                return not isinstance(self, Method)

        server = self.server()
        for client in (Careful(self.loop), Method(self.loop)):
            result = self.connect(self.host, server.port, client=client)
            self.run_until(lambda: result)
            self.assertEqual(result, [(PermissionError, errno.EACCES)])

    def resolve_both(self, v6_port, v4_port):
        """getaddrinfo answering ::1 first, then 127.0.0.1."""
        return mock.patch.object(thor.dns.socket, "getaddrinfo", return_value=[
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", v6_port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", v4_port)),
        ])

    def test_only_the_allowed_address_of_a_name_is_tried(self):
        v4 = self.server()
        v4_accepted = self.accepted
        v6_port = v4.port  # refused before any socket: need not exist
        if has_ipv6():
            v6 = self.server("::1")
            v6_port = v6.port
        checked = []
        client = self.client(lambda ip: checked.append(ip) or ip == "127.0.0.1")
        with self.resolve_both(v6_port, v4.port):
            result = self.connect("both.test", 80, client=client)
            self.run_until(lambda: result)
        conn = result[0][0]
        self.addCleanup(conn.abort)
        self.assertEqual(checked, ["::1", "127.0.0.1"])  # no port, no brackets
        self.assertEqual(conn.socket.family, socket.AF_INET)
        self.assertEqual(conn.peer_address, ("127.0.0.1", v4.port))
        self.assertEqual(conn.host, "both.test")
        if has_ipv6():
            self.run_until(lambda: v4_accepted)
            self.idle(0.02)
            self.assertEqual(self.accepted, [])  # the ::1 server's

    @unittest.skipUnless(has_ipv6(), "no IPv6 loopback")
    def test_only_the_allowed_v6_address_is_tried(self):
        v4 = self.server()
        v4_accepted = self.accepted
        v6 = self.server("::1")
        client = self.client(lambda ip: ip == "::1")
        with self.resolve_both(v6.port, v4.port):
            result = self.connect("both.test", 80, client=client)
            self.run_until(lambda: result)
        conn = result[0][0]
        self.addCleanup(conn.abort)
        self.assertEqual(conn.socket.family, socket.AF_INET6)
        self.assertEqual(conn.peer_address[:2], ("::1", v6.port))
        self.run_until(lambda: self.accepted)
        self.idle(0.02)
        self.assertEqual(v4_accepted, [])

    def test_every_address_refused(self):
        client = self.client(lambda ip: False)
        with self.resolve_both(1, 1):
            result = self.connect("both.test", 80, client=client)
            self.run_until(lambda: result)
        self.assertEqual(result, [(PermissionError, errno.EACCES)])
        self.assertEqual(self.loop.fd_count(), 0)

    def test_check_that_raises_is_reported_and_refuses(self):
        server = self.server()
        problem = ValueError("broken policy")

        def check(ip):
            raise problem

        seen = []
        self.loop.exception_handler = lambda loop, exc, callback: seen.append(
            (exc, callback)
        )
        result = self.connect(self.host, server.port, client=self.client(check))
        self.run_until(lambda: result)
        self.assertEqual(seen, [(problem, check)])
        self.assertEqual(result, [(PermissionError, errno.EACCES)])

    def test_negative_timeout_is_refused_at_the_call(self):
        client = TcpClient(self.loop)
        for timeout in (-1, float("nan")):
            with self.assertRaisesRegex(ValueError, "timeout"):
                client.connect(self.host, 80, timeout)
        self.assertEqual(self.loop.fd_count(), 0)


class TestClose(TcpTestCase):
    def pair(self):
        server = self.server()
        client = self.connected(self.host, server.port)
        self.run_until(lambda: self.accepted)
        return client, self.accepted[0]

    def test_close_is_emitted_once_from_the_loop(self):
        client, served = self.pair()
        got = Collector(client)
        client.close()
        self.assertEqual(got.closes, 0, "not inside close()")
        self.assertFalse(client.tcp_connected)
        client.close()
        client.abort()
        client.write(b"ignored")
        self.run_until(lambda: got.closes)
        other = Collector(served)
        self.run_until(lambda: other.closes)
        self.idle(0.02)
        self.assertEqual((got.closes, other.closes), (1, 1))
        self.assertEqual(self.loop.fd_count(), 1)  # the listener
        self.assertEqual((client.error, served.error), (None, None))  # orderly

    def test_peer_address_outlives_the_connection(self):
        client, served = self.pair()
        self.assertEqual(client.peer_address, served.socket.getsockname())
        self.assertEqual(served.peer_address, client.socket.getsockname())
        self.assertEqual(served.peer_address, (served.host, served.port))
        client_side = client.socket.getsockname()
        got = Collector(served)
        client.close()
        self.run_until(lambda: got.closes)
        self.assertEqual(served.peer_address, client_side)
        self.assertEqual(client.peer_address[0], "127.0.0.1")

    def test_peer_address_of_a_connection_made_by_hand(self):
        server = self.server()
        sock = socket.create_connection((self.host, server.port))
        conn = TcpConnection(sock, self.host, server.port, self.loop)
        self.addCleanup(conn.abort)
        self.assertEqual(conn.peer_address, (self.host, server.port))

    def test_close_flushes_first(self):
        client, served = self.pair()
        payload = os.urandom(4 * 1024 * 1024)
        got = Collector(served)
        mine = Collector(client)
        client.write(payload)
        self.assertGreater(client.write_buffered, 0)
        client.close()
        client.write(b"after close: dropped")
        self.assertEqual(mine.closes, 0)
        self.run_until(lambda: got.closes)
        self.assertEqual(bytes(got.data), payload)
        self.assertEqual(mine.closes, 1)

    def test_abort_drops_the_buffer(self):
        client, served = self.pair()
        got = Collector(served)
        mine = Collector(client)
        client.write(b"x" * (8 * 1024 * 1024))
        client.abort()
        self.assertEqual(client.write_buffered, 0)
        self.assertEqual(mine.closes, 0)
        self.run_until(lambda: got.closes and mine.closes)
        self.assertLess(len(got.data), 8 * 1024 * 1024)

    def test_peer_reset(self):
        client, served = self.pair()
        got = Collector(served)
        client.abort()  # a reset: the peer can tell it was cut short
        self.run_until(lambda: got.closes)
        self.assertEqual(got.closes, 1)
        self.assertIsInstance(served.error, ConnectionResetError)
        self.assertEqual(served.error.errno, errno.ECONNRESET)
        self.assertIsNone(client.error)  # aborted by its own side

    def test_peer_reset_while_paused(self):
        client, served = self.pair()
        got = Collector(served, unpause=False)
        client.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        client.abort()
        self.run_until(lambda: got.closes)
        self.assertEqual(self.loop.fd_count(), 1)
        self.assertIsInstance(served.error, ConnectionResetError)

    def test_write_error_closes_from_the_loop(self):
        client, served = self.pair()
        got = Collector(served)
        served.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        raw = client.socket
        client.unregister_fd()  # keep the client end out of the way
        raw.close()
        for _ in range(50):  # the first write gets the reset, a later one EPIPE
            served.write(b"into the void")
            if not served.tcp_connected:
                break
        self.assertFalse(served.tcp_connected)
        self.assertEqual(got.closes, 0)
        self.run_until(lambda: got.closes)
        self.assertIn(served.error.errno, (errno.ECONNRESET, errno.EPIPE))

    def test_half_close(self):
        # The peer sends a request and shuts its side; thor answers with more
        # than the socket buffers hold, and everything arrives before close.
        client, served = self.pair()
        answer = os.urandom(3 * 1024 * 1024)
        got = Collector(client)
        served_got = Collector(served)
        served.on("data", lambda data: served.write(answer))
        client.write(b"request")
        client.socket.shutdown(socket.SHUT_WR)
        self.run_until(lambda: served_got.closes and got.closes)
        self.assertEqual(served_got.data, b"request")
        self.assertEqual(bytes(got.data), answer)

    def test_graceful_shutdown(self):
        server = self.server()
        stops = []
        server.on("stop", lambda: stops.append(1))
        first = self.connected(self.host, server.port)
        second = self.connected(self.host, server.port)
        self.run_until(lambda: len(self.accepted) == 2)
        for conn in self.accepted:
            conn.pause(False)  # to notice the peer's close
        server.graceful_shutdown()
        refused = self.connect(self.host, server.port)
        self.run_until(lambda: refused)
        self.assertEqual(refused, [(OSError, errno.ECONNREFUSED)])
        first.close()
        self.run_until(lambda: not self.accepted[0].tcp_connected)
        self.assertEqual(stops, [])
        self.accepted[1].close()
        self.run_until(lambda: stops)
        self.assertEqual(self.loop.fd_count(), 1)  # the client end of "second"
        self.assertTrue(second.tcp_connected)

    def test_graceful_shutdown_when_idle(self):
        server = self.server()
        stops = []
        server.on("stop", lambda: stops.append(1))
        server.graceful_shutdown()
        self.run_until(lambda: stops)
        self.assertEqual(self.loop.fd_count(), 0)


class Recorder:
    """Listens to a connection and keeps what it emits, in order, with the
    data of consecutive 'data' events joined."""

    def __init__(self, conn, unpause=True):
        self.conn = conn
        self.events = []
        conn.on("data", self._data)
        conn.on("end", lambda: self.events.append(("end",)))
        conn.on("close", lambda: self.events.append(("close",)))
        if unpause:
            conn.pause(False)

    def _data(self, data):
        if self.events and self.events[-1][0] == "data":
            self.events[-1] = ("data", self.events[-1][1] + data)
        else:
            self.events.append(("data", data))

    def count(self, name):
        return sum(1 for event in self.events if event[0] == name)


class RawPeer(EventSource):
    """The other end as a plain socket, so that the test decides when it
    half-closes. The loop watches it and it reads whatever arrives: a
    writer that has filled the socket waits on it, and the loop must not
    sleep meanwhile. ``error`` is what ended reading, if not end of file."""

    # What a non-blocking read raises when nothing has arrived yet.
    nothing_yet = (BlockingIOError,)

    def __init__(self, sock, loop):
        EventSource.__init__(self, loop)
        self.sock = sock
        sock.setblocking(False)
        self.data = bytearray()
        self.eof = False
        self.error = None
        self.register_fd(sock.fileno(), "fd_readable")

    def _fd_ready(self, mask):
        self.read()

    def recv(self):
        return self.sock.recv(262144)

    def read(self):
        while not self.eof:
            try:
                chunk = self.recv()
            except self.nothing_yet:
                return
            except OSError as exc:
                self.error = exc
                chunk = b""
            if not chunk:
                self.eof = True
                self.unregister_fd()
            self.data += chunk

    def close(self):
        self.unregister_fd()
        self.sock.close()


class TestHalfClose(TcpTestCase):
    def served(self, half_close=True):
        return TcpTestCase.served(self, half_close)

    def ended(self, sock, conn, request=b""):
        """Record ``conn`` while ``sock``, the other end, sends ``request``
        and shuts its side; the Recorder, once ``end`` has come."""
        got = Recorder(conn)
        if request:
            sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        self.run_until(lambda: got.count("end"))
        return got

    def test_default_is_off(self):
        self.assertIs(TcpConnection.half_close, False)

    def test_answer_after_end(self):
        # The client sends a request and shuts its side; the application
        # answers later (from a timer, as a proxy would once its upstream
        # replied), with more than the socket buffers hold.
        peer, conn = self.served()
        got = self.ended(peer.sock, conn, b"request")
        self.assertEqual(got.events, [("data", b"request"), ("end",)])
        self.assertTrue(conn.tcp_connected)
        # Nothing to read, nothing to write: the loop sleeps, and neither a
        # HUP nor an unpause brings another event.
        conn.pause(False)
        self.assertLess(self.idle(), 10, "spinning after end")
        self.assertEqual(got.events, [("data", b"request"), ("end",)])
        answer = os.urandom(8 * 1024 * 1024)
        queued = []

        def respond():
            conn.write(answer)
            queued.append(conn.write_buffered)

        self.loop.schedule(0, respond)
        self.run_until(lambda: len(peer.data) == len(answer) or peer.eof)
        self.assertGreater(queued[0], 0, "the answer must outgrow the socket")
        self.assertEqual(bytes(peer.data), answer)
        self.assertFalse(peer.eof)
        self.assertEqual(got.count("close"), 0)
        conn.close()
        self.run_until(lambda: peer.eof)
        self.assertEqual(bytes(peer.data), answer)
        self.assertIsNone(peer.error)
        self.run_until(lambda: got.count("close"))
        self.idle()
        self.assertEqual(
            got.events, [("data", b"request"), ("end",), ("close",)]
        )
        self.assertEqual(self.loop.fd_count(), 1)  # the listener

    def test_close_flushes_after_end(self):
        # close() straight after a large write, both after 'end': all of
        # it arrives, then the end of file.
        peer, conn = self.served()
        got = self.ended(peer.sock, conn)
        answer = os.urandom(4 * 1024 * 1024)
        conn.write(answer)
        self.assertGreater(conn.write_buffered, 0)
        conn.close()
        self.run_until(lambda: peer.eof)
        self.assertEqual(bytes(peer.data), answer)
        self.assertIsNone(peer.error)
        self.run_until(lambda: got.count("close"))
        self.assertEqual(got.events, [("end",), ("close",)])

    def test_without_half_close_end_of_file_closes(self):
        peer, conn = self.served(half_close=False)
        got = Recorder(conn)
        peer.sock.sendall(b"request")
        peer.sock.shutdown(socket.SHUT_WR)
        self.run_until(lambda: got.count("close"))
        self.assertEqual(got.events, [("data", b"request"), ("close",)])
        self.assertFalse(conn.tcp_connected)
        conn.write(b"too late")  # dropped, quietly
        self.run_until(lambda: peer.eof)
        self.assertEqual(peer.data, b"")
        self.idle()
        self.assertEqual(got.count("close"), 1)

    def test_write_after_end_to_a_peer_that_has_gone(self):
        # After 'end' the peer closes entirely; TCP only says so when the
        # write draws a reset, which must end in 'close', not an exception.
        peer, conn = self.served()
        got = self.ended(peer.sock, conn, b"request")
        peer.close()
        self.loop.schedule(0, conn.write, b"x" * (1024 * 1024))
        self.run_until(lambda: got.count("close"))
        self.assertFalse(conn.tcp_connected)
        conn.write(b"after close")
        self.idle()
        self.assertEqual(got.events, [("data", b"request"), ("end",), ("close",)])
        self.assertEqual(self.loop.fd_count(), 1)

    def test_peer_gone_after_end_closes(self):
        # A socketpair reports HUP once the other end is closed: with both
        # directions over, the connection closes rather than wait forever
        # for a write.
        left, right = socket.socketpair()
        conn = TcpConnection(left, "pair", 0, self.loop)
        conn.half_close = True
        got = self.ended(right, conn, b"request")
        self.assertLess(self.idle(), 10, "spinning after end")
        self.assertTrue(conn.tcp_connected)
        right.close()
        self.run_until(lambda: got.count("close"))
        self.assertEqual(got.events, [("data", b"request"), ("end",), ("close",)])
        self.assertEqual(self.loop.fd_count(), 0)
        self.assertEqual(left.fileno(), -1)

    def test_end_noticed_once_unpaused(self):
        # The peer writes and goes entirely while the application has
        # reading paused: the data, then 'end', then (HUP) 'close'.
        left, right = socket.socketpair()
        conn = TcpConnection(left, "pair", 0, self.loop)
        conn.half_close = True
        got = Recorder(conn, unpause=False)
        right.sendall(b"sent before going")
        right.close()
        self.assertLess(self.idle(), 10, "spinning on HUP while paused")
        self.assertEqual(got.events, [])
        conn.pause(False)
        self.run_until(lambda: got.count("close"))
        self.assertEqual(
            got.events, [("data", b"sent before going"), ("end",), ("close",)]
        )
        self.assertEqual(self.loop.fd_count(), 0)

    def test_close_before_end_of_file_is_unchanged(self):
        # close() with output queued stops reading: the peer's end of file
        # is never read, 'end' never emitted, and 'close' follows the flush.
        peer, conn = self.served()
        got = Recorder(conn)
        answer = os.urandom(4 * 1024 * 1024)
        conn.write(answer)
        conn.close()
        peer.sock.shutdown(socket.SHUT_WR)
        self.run_until(lambda: peer.eof)
        self.assertEqual(bytes(peer.data), answer)
        self.run_until(lambda: got.count("close"))
        self.idle()
        self.assertEqual(got.events, [("close",)])

    def test_abort_after_end(self):
        peer, conn = self.served()
        got = self.ended(peer.sock, conn)
        conn.write(b"x" * (4 * 1024 * 1024))
        conn.abort()
        self.assertEqual(got.events, [("end",)], "close follows from the loop")
        self.run_until(lambda: got.count("close"))
        self.run_until(lambda: peer.eof)
        self.assertLess(len(peer.data), 4 * 1024 * 1024)
        self.assertEqual(got.events, [("end",), ("close",)])

    def test_class_attribute(self):
        # A subclass can turn it on for every connection a server makes.
        class Lingering(TcpConnection):
            half_close = True

        server = self.server()
        server.connection_class = Lingering
        sock = socket.create_connection((self.host, server.port))
        self.addCleanup(sock.close)
        self.run_until(lambda: self.accepted)
        got = self.ended(sock, self.accepted[0])
        self.assertEqual(got.events, [("end",)])

    def test_no_descriptor_leak(self):
        # Every way a half-closed connection can end releases its socket.
        gc.collect()
        baseline = open_fds()
        server = TcpServer(self.host, 0, self.loop)
        conns = []

        def on_connect(conn):
            conn.half_close = True
            conns.append(conn)
            Recorder(conn)

        server.on("connect", on_connect)
        peers = []
        for index in range(60):
            sock = socket.create_connection((self.host, server.port))
            peers.append(RawPeer(sock, self.loop))
        self.run_until(lambda: len(conns) == 60)
        for peer in peers:
            peer.sock.sendall(b"request")
            peer.sock.shutdown(socket.SHUT_WR)
        self.run_until(lambda: all(conn._ended for conn in conns))
        for index, (peer, conn) in enumerate(zip(peers, conns)):
            how = index % 3
            if how == 0:
                conn.write(b"answer")
                conn.close()
            elif how == 1:
                conn.abort()
            else:
                peer.close()
                conn.write(b"x" * 65536)
        self.run_until(lambda: not any(conn.tcp_connected for conn in conns))
        for index, peer in enumerate(peers):
            if index % 3 != 2:
                self.run_until(lambda: peer.eof)
                peer.close()
        self.assertEqual(peers[0].data, b"answer")
        server.close()
        self.assertEqual(self.loop.fd_count(), 0)
        del conns[:], peers[:]
        if baseline is not None:
            gc.collect()
            self.assertEqual(open_fds(), baseline)


class TestLingeringClose(TcpTestCase):
    """close(linger=): the answer reaches a peer that is still sending
    (RFC 9112 9.6), and the linger is bounded."""

    def flood(self, peer, size):
        """Send what the socket takes of ``size`` bytes; how much it took."""
        sent = 0
        chunk = b"u" * 65536
        while sent < size:
            try:
                sent += peer.sock.send(chunk)
            except BlockingIOError:
                break
        return sent

    def test_answer_and_end_reach_a_peer_still_sending(self):
        peer, conn = self.served()
        got = Collector(conn, unpause=False)
        # Input the server never reads (connections start paused): without
        # the linger, closing now would reset the connection, and the reset
        # would destroy the answer in the peer's socket.
        self.assertGreater(self.flood(peer, 4 << 20), 65536)
        conn.write(b"answer")
        conn.close(linger=5)
        self.run_until(lambda: peer.eof)
        self.assertEqual((bytes(peer.data), peer.error), (b"answer", None))
        # The peer may go on sending meanwhile: it is read and dropped.
        self.flood(peer, 1 << 20)
        self.idle(0.05)
        self.assertEqual((got.closes, bytes(got.data)), (0, b""))
        peer.sock.shutdown(socket.SHUT_WR)  # its end: the linger is over
        self.run_until(lambda: got.closes)
        self.assertIsNone(conn.error)
        self.assertEqual(self.loop.fd_count(), 1)  # the listener: the fd is let go

    def test_linger_is_bounded(self):
        peer, conn = self.served()
        got = Collector(conn, unpause=False)
        self.flood(peer, 1 << 20)
        conn.close(linger=0.2)
        self.run_until(lambda: peer.eof)
        self.assertEqual(got.closes, 0)
        self.run_until(lambda: got.closes, timeout=2)  # the peer never ended
        self.assertIsNone(peer.error)

    def test_output_first_then_the_linger(self):
        peer, conn = self.served()
        got = Collector(conn, unpause=False)
        self.flood(peer, 1 << 20)
        payload = os.urandom(8 << 20)  # more than the socket takes at once
        conn.write(payload)
        self.assertGreater(conn.write_buffered, 0)
        conn.close(linger=5)
        self.run_until(lambda: peer.eof)
        self.assertEqual(bytes(peer.data), payload)
        peer.sock.close()
        peer.unregister_fd()
        self.run_until(lambda: got.closes)

    def test_no_linger_after_the_peer_ended(self):
        peer, conn = self.served()
        conn.half_close = True
        got = Collector(conn)
        ends = []
        conn.on("end", lambda: ends.append(True))
        peer.sock.shutdown(socket.SHUT_WR)
        self.run_until(lambda: ends)
        conn.close(linger=5)  # nothing more can come: closed at once
        self.run_until(lambda: got.closes, timeout=1)


class TestWriteEof(TcpTestCase):
    """write_eof(): a half-close of thor's own side; reading goes on."""


    def test_output_ends_and_the_answer_still_comes(self):
        # What was queued goes first, then the end of file; the peer's
        # answer to that end is still delivered; its own end closes.
        peer, conn = self.served()
        got = Recorder(conn)
        payload = os.urandom(8 << 20)  # more than the socket takes at once
        conn.write(payload)
        self.assertGreater(conn.write_buffered, 0)
        self.assertTrue(conn.can_write_eof())
        conn.write_eof()
        conn.write(b"dropped")  # as after close()
        self.assertIn("output ended", repr(conn))
        self.run_until(lambda: peer.eof)
        self.assertEqual(bytes(peer.data), payload)
        self.assertIsNone(peer.error)
        self.assertTrue(conn.tcp_connected)
        peer.sock.sendall(b"answer after the end")
        self.run_until(lambda: got.count("data"))
        self.assertEqual(got.events, [("data", b"answer after the end")])
        peer.sock.shutdown(socket.SHUT_WR)
        self.run_until(lambda: got.count("close"))
        self.assertEqual(got.events, [("data", b"answer after the end"), ("close",)])
        self.assertIsNone(conn.error)
        self.assertEqual(self.loop.fd_count(), 1)  # the listener

    def test_reading_paused_then_resumed(self):
        # Paused when both ends are shut (epoll's HUP): the data and the
        # end still come once unpaused.
        peer, conn = self.served()
        got = Recorder(conn, unpause=False)
        conn.write_eof()
        self.run_until(lambda: peer.eof)
        peer.sock.sendall(b"late")
        peer.sock.shutdown(socket.SHUT_WR)
        self.assertLess(self.idle(), 10, "spinning on the HUP while paused")
        self.assertEqual(got.events, [])
        conn.pause(False)
        self.run_until(lambda: got.count("close"))
        self.assertEqual(got.events, [("data", b"late"), ("close",)])

    def test_after_the_peer_ended_it_closes(self):
        peer, conn = self.served(half_close=True)
        got = Recorder(conn)
        peer.sock.shutdown(socket.SHUT_WR)
        self.run_until(lambda: got.count("end"))
        conn.write(b"last words")
        conn.write_eof()
        self.run_until(lambda: peer.eof and got.count("close"))
        self.assertEqual(bytes(peer.data), b"last words")
        self.assertEqual(got.events, [("end",), ("close",)])

    def test_half_close_peer_end_after_write_eof_closes(self):
        # Nothing is left either way: no 'end' to wait on a close for.
        peer, conn = self.served(half_close=True)
        got = Recorder(conn)
        conn.write_eof()
        self.run_until(lambda: peer.eof)
        peer.sock.shutdown(socket.SHUT_WR)
        self.run_until(lambda: got.count("close"))
        self.assertEqual(got.events, [("close",)])

    def test_close_after_write_eof_ends_the_input(self):
        peer, conn = self.served()
        got = Recorder(conn)
        conn.write_eof()
        self.run_until(lambda: peer.eof)
        conn.close()
        self.run_until(lambda: got.count("close"))
        conn.write_eof()  # closed: nothing happens
        self.assertEqual(got.events, [("close",)])

    def test_tls_refuses(self):
        from tests.support import make_cert
        from thor.tls import TlsConnection

        certfile, keyfile = make_cert("localhost")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        a, b = socket.socketpair()
        self.addCleanup(b.close)
        tls = context.wrap_socket(a, server_side=True, do_handshake_on_connect=False)
        conn = TlsConnection(tls, "x", 0, self.loop)
        self.addCleanup(conn.abort)
        self.assertFalse(conn.can_write_eof())
        with self.assertRaises(NotImplementedError):
            conn.write_eof()
        self.assertEqual(repr(conn).count("output ended"), 0)
        conn.write(b"")  # still open for output


class TestBackpressure(TcpTestCase):
    def test_pause_events_once_per_crossing(self):
        server = self.server()
        client = self.connected(self.host, server.port)
        self.run_until(lambda: self.accepted)
        served = self.accepted[0]
        got = Collector(served, unpause=False)
        mine = Collector(client)
        chunk = b"z" * 16384
        written = 0
        while client.write_buffered <= client.write_high:
            client.write(chunk)
            written += len(chunk)
        self.assertEqual(mine.pauses, [True])
        client.write(chunk)
        written += len(chunk)
        self.assertEqual(mine.pauses, [True], "once per crossing")
        served.pause(False)
        self.run_until(lambda: len(got.data) == written)
        self.assertEqual(mine.pauses, [True, False])
        self.assertEqual(client.write_buffered, 0)

    def test_stalled_reader_holds_memory_flat(self):
        # The writer sends 100 MiB as fast as it is allowed; the reader keeps
        # stalling. Because the writer obeys pause events, the queue and the
        # process's memory stay small.
        total = 100 * 1024 * 1024
        chunk = b"m" * 65536
        server = self.server()
        writer = self.connected(self.host, server.port)
        self.run_until(lambda: self.accepted)
        reader = self.accepted[0]
        state = {"sent": 0, "received": 0, "paused": False, "max_queue": 0,
                 "max_rss": 0, "stalls": 0}
        baseline = vm_rss()

        def pump():
            while not state["paused"] and state["sent"] < total:
                writer.write(chunk)
                state["sent"] += len(chunk)
                state["max_queue"] = max(state["max_queue"], writer.write_buffered)

        def on_pause(paused):
            state["paused"] = paused
            if not paused:
                pump()

        def on_data(data):
            state["received"] += len(data)
            if state["received"] // (8 * 1024 * 1024) > state["stalls"]:
                # Stall every 8 MiB for long enough that the writer fills
                # its queue and is told to stop.
                state["stalls"] += 1
                reader.pause(True)
                self.loop.schedule(0.005, reader.pause, False)
                rss = vm_rss()
                if rss:
                    state["max_rss"] = max(state["max_rss"], rss)

        writer.on("pause", on_pause)
        writer_pauses = []
        writer.on("pause", writer_pauses.append)
        reader.on("data", on_data)
        reader.pause(False)
        pump()
        self.run_until(lambda: state["received"] >= total, timeout=30)
        self.assertEqual(state["received"], total)
        self.assertGreaterEqual(state["stalls"], 10)
        self.assertGreaterEqual(writer_pauses.count(True), 10)
        self.assertLessEqual(state["max_queue"], writer.write_high + len(chunk))
        if baseline:
            self.assertLess(state["max_rss"] - baseline, 16 * 1024 * 1024)


class TestMany(TcpTestCase):
    def exchange_many(self, count):
        server = self.echo_server(backlog=4096)
        closed = []
        echoed = []
        replies = {}

        def on_connect(conn):
            replies[conn] = bytearray()

            def on_data(data):
                replies[conn].extend(data)
                if replies[conn] == b"ping":
                    echoed.append(conn)

            conn.on("data", on_data)
            conn.on("close", lambda: closed.append(conn))
            conn.pause(False)
            conn.write(b"ping")

        errors = []
        client = TcpClient(self.loop)
        client.on("connect", on_connect)
        client.on("connect_error", lambda *args: errors.append(args))
        for _ in range(count):
            client.connect(self.host, server.port)
        self.run_until(lambda: len(echoed) + len(errors) >= count, timeout=30)
        self.assertEqual(errors, [])
        self.assertEqual(len(self.accepted), count)
        return server, list(replies), closed

    def test_2000_at_once(self):
        server, conns, closed = self.exchange_many(2000)
        for conn in conns:
            conn.close()
        self.run_until(lambda: len(closed) == 2000 and self.loop.fd_count() == 1, timeout=30)

    def test_5000_leave_nothing_behind(self):
        # Earlier tests may leave garbage holding descriptors; collect it so
        # the baseline does not shrink under us while this test runs.
        gc.collect()
        baseline = open_fds()
        server, conns, closed = self.exchange_many(5000)
        self.assertEqual(self.loop.fd_count(), 10001)
        # Half are closed by the client side, half by the server side.
        served = list(self.accepted)
        for index, conn in enumerate(conns):
            if index % 2:
                conn.close()
        for index, conn in enumerate(served):
            if index % 2 == 0:
                conn.close()
        self.run_until(
            lambda: len(closed) == 5000
            and not any(conn.tcp_connected for conn in served),
            timeout=30,
        )
        self.assertEqual(self.loop.fd_count(), 1)
        server.close()
        self.assertEqual(self.loop.fd_count(), 0)
        if baseline is not None:
            gc.collect()
            self.assertEqual(open_fds(), baseline)

    def test_accept_backs_off_when_out_of_descriptors(self):
        import resource

        server = self.server()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        clients = []
        for _ in range(5):
            sock = socket.socket()
            self.addCleanup(sock.close)
            sock.connect((self.host, server.port))  # completes in the backlog
            clients.append(sock)
        # The limit bounds descriptor *numbers*: set it at the lowest free one.
        lowest_free = os.dup(0)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        try:
            self.run_until(lambda: server._backoff is not None)
            self.assertEqual(self.accepted, [])
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        self.run_until(lambda: len(self.accepted) == 5)


@unittest.skipUnless(has_ipv6(), "no IPv6 loopback")
class TestIPv6(TcpTestCase):
    host = "::1"

    def test_echo_v6(self):
        for listen in ("::1", "[::1]", b"::1"):
            server = self.echo_server(listen)
            self.assertEqual(server.sock.family, socket.AF_INET6)
            for target in ("::1", "[::1]", b"[::1]"):
                conn = self.connected(target, server.port)
                self.assertEqual(conn.host, "::1")
                self.assertEqual(conn.socket.family, socket.AF_INET6)
                got = Collector(conn)
                conn.write(b"six")
                self.run_until(lambda: got.data == b"six")
                conn.close()
            server.close()


if __name__ == "__main__":
    unittest.main()
