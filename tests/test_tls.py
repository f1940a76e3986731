"""Tests for thor.tls against real sockets on loopback, with throwaway
certificates made at test time."""

import errno
import os
import socket
import ssl
import sys
import unittest

import thor.tls
from thor.tcp import TcpServer
from thor.tls import TlsClient, TlsConnection, TlsServer

from tests.support import LoopTestCase, has_ipv6, make_cert
from tests.test_tcp import Collector, RawPeer, Recorder, idle


def server_context(name="localhost"):
    certfile, keyfile = make_cert(name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


def trusting_context(name="localhost", check_hostname=True):
    certfile, _ = make_cert(name)
    context = ssl.create_default_context(cafile=certfile)
    context.check_hostname = check_hostname
    return context


class TlsTestCase(LoopTestCase):
    host = "127.0.0.1"

    def server(self, name="localhost", host=None, **kw):
        server = TlsServer(host or self.host, 0, server_context(name), self.loop, **kw)
        self.addCleanup(self.drop, server)
        self.accepted = []
        server.on("connect", self.accepted.append)
        return server

    @staticmethod
    def drop(server):
        """Close the server, its connections and its handshakes in progress."""
        server.close()
        for conn in list(server._connections):
            conn.abort()

    def echo_server(self, **kw):
        server = self.server(**kw)

        def echo(conn):
            conn.on("data", conn.write)
            conn.pause(False)

        server.on("connect", echo)
        return server

    def connect(self, host, port, client=None, timeout=None, **kw):
        client = client or TlsClient(self.loop, **kw)
        result = []
        client.on("connect", lambda conn: result.append((conn,)))
        client.on("connect_error", lambda *args: result.append(args))
        client.connect(host, port, timeout)
        self.run_until(lambda: result)
        if len(result[0]) == 1:
            self.addCleanup(result[0][0].abort)
        return result[0]

    def assertRefused(self, outcome):
        self.assertEqual(len(outcome), 2, outcome)
        errtype, error = outcome
        self.assertIs(errtype, ssl.SSLError)
        self.assertIsInstance(error, ssl.SSLError)
        return error


class TestTls(TlsTestCase):
    def test_echo(self):
        server = self.echo_server()
        (conn,) = self.connect("localhost", server.port, tls_context=trusting_context())
        self.assertIsInstance(conn, TlsConnection)
        self.run_until(lambda: self.accepted)
        self.assertIsInstance(self.accepted[0], TlsConnection)
        got = Collector(conn)
        conn.write(b"secret ")
        conn.write("st\u00fcff")
        self.run_until(lambda: got.data == "secret st\u00fcff".encode("utf-8"))

    def test_ip_literal_checked_against_ip_san(self):
        server = self.echo_server()
        (conn,) = self.connect(self.host, server.port, tls_context=trusting_context())
        got = Collector(conn)
        conn.write(b"by address")
        self.run_until(lambda: got.data == b"by address")

    def test_large_transfer_both_ways(self):
        # Many full records in flight: exercises pending() and partial writes.
        server = self.echo_server()
        (conn,) = self.connect("localhost", server.port, tls_context=trusting_context())
        payload = os.urandom(6 * 1024 * 1024 + 123)
        got = Collector(conn)
        conn.write(payload)
        self.run_until(lambda: len(got.data) >= len(payload), timeout=20)
        self.assertEqual(bytes(got.data), payload)

    def test_close_flushes_and_peer_sees_clean_end(self):
        server = self.server()
        (conn,) = self.connect("localhost", server.port, tls_context=trusting_context())
        self.run_until(lambda: self.accepted)
        served = Collector(self.accepted[0])
        mine = Collector(conn)
        payload = os.urandom(2 * 1024 * 1024)
        conn.write(payload)
        conn.close()
        self.assertEqual(mine.closes, 0)
        self.run_until(lambda: served.closes and mine.closes)
        self.assertEqual(bytes(served.data), payload)
        self.assertEqual(self.loop.fd_count(), 1)
        self.assertEqual((conn.error, self.accepted[0].error), (None, None))

    def test_peer_address_and_check_ip(self):
        server = self.server()
        refused = TlsClient(self.loop, tls_context=trusting_context())
        refused.check_ip = lambda ip: False
        self.assertEqual(
            self.connect(self.host, server.port, client=refused),
            (PermissionError, errno.EACCES),
        )
        (conn,) = self.connect("localhost", server.port, tls_context=trusting_context())
        self.run_until(lambda: self.accepted)
        self.assertEqual(len(self.accepted), 1)  # the refused one never arrived
        served = self.accepted[0]
        self.assertEqual(conn.peer_address, served.socket.getsockname())
        self.assertEqual(served.peer_address, conn.socket.getsockname())
        client_side = conn.socket.getsockname()
        got = Collector(served)
        conn.close()
        self.run_until(lambda: got.closes)
        self.assertEqual(served.peer_address, client_side)

    def test_reset_is_kept_as_error(self):
        server = self.server()
        (conn,) = self.connect("localhost", server.port, tls_context=trusting_context())
        self.run_until(lambda: self.accepted)
        got = Collector(self.accepted[0])
        conn.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        conn.abort()  # with SO_LINGER 0: a reset, no close_notify
        self.run_until(lambda: got.closes)
        self.assertIsInstance(self.accepted[0].error, ConnectionResetError)

    def test_untrusted_refused_by_default(self):
        server = self.server()
        error = self.assertRefused(self.connect("localhost", server.port))
        self.assertIsInstance(error, ssl.SSLCertVerificationError)
        self.run_until(lambda: self.loop.fd_count() == 1)
        self.assertEqual(self.accepted, [])

    def test_wrong_name_refused(self):
        server = self.server("wrong.example")
        error = self.assertRefused(self.connect(
            "localhost", server.port, tls_context=trusting_context("wrong.example")
        ))
        self.assertIsInstance(error, ssl.SSLCertVerificationError)

    def test_wrong_name_accepted_with_own_context(self):
        server = self.echo_server(name="wrong.example")
        context = trusting_context("wrong.example", check_hostname=False)
        (conn,) = self.connect("localhost", server.port, tls_context=context)
        got = Collector(conn)
        conn.write(b"ok")
        self.run_until(lambda: got.data == b"ok")

    def test_context_as_class_attribute(self):
        server = self.echo_server()

        class TrustingClient(TlsClient):
            tls_context = trusting_context()

        (conn,) = self.connect("localhost", server.port, client=TrustingClient(self.loop))
        self.assertIsInstance(conn, TlsConnection)
        self.assertIsNone(TlsClient.tls_context)

    def test_sni_is_the_host_name(self):
        names = []
        context = server_context()
        context.sni_callback = lambda sock, name, ctx: names.append(name)
        server = TlsServer(self.host, 0, context, self.loop)
        self.addCleanup(self.drop, server)
        self.connect("localhost", server.port, tls_context=trusting_context())
        self.connect(self.host, server.port, tls_context=trusting_context())
        self.assertEqual(names, ["localhost", None])

    def test_handshake_covered_by_connect_timeout(self):
        # A plain TCP server: it accepts, but never answers the ClientHello.
        silent = TcpServer(self.host, 0, self.loop)
        self.addCleanup(self.drop, silent)
        outcome = self.connect(
            "localhost", silent.port, tls_context=trusting_context(), timeout=0.2
        )
        self.assertEqual(outcome, (OSError, errno.ETIMEDOUT))
        self.assertEqual(self.loop.fd_count(), 2)  # the silent server and its end

    def test_bad_client_dropped_without_disturbing_others(self):
        server = self.echo_server()
        garbage = socket.create_connection((self.host, server.port))
        self.addCleanup(garbage.close)
        garbage.sendall(b"GET / HTTP/1.1\r\n\r\n")
        (conn,) = self.connect("localhost", server.port, tls_context=trusting_context())
        got = Collector(conn)
        conn.write(b"still fine")
        self.run_until(lambda: got.data == b"still fine")
        garbage.setblocking(False)
        ended = []

        def check():
            try:
                ended.append(garbage.recv(100))
            except BlockingIOError:
                pass
            except OSError as why:
                ended.append(why)
            return ended

        self.run_until(check)
        self.assertEqual(len(self.accepted), 1)

    def test_connection_that_cannot_be_made_after_handshake_is_dropped(self):
        server = self.server()

        def broken(*args):
            raise OSError(errno.EBADF, "gone")

        server.connection_class = broken
        (conn,) = self.connect("localhost", server.port, tls_context=trusting_context())
        got = Collector(conn)
        self.run_until(lambda: got.closes)
        self.assertEqual(server._connections, set())
        self.assertEqual(self.accepted, [])
        self.assertEqual(self.loop.fd_count(), 1)  # the listening socket

    def test_handshake_timeout_on_server(self):
        server = self.server()
        server.handshake_timeout = 0.1
        stops = []
        server.on("stop", lambda: stops.append(1))
        idle = socket.create_connection((self.host, server.port))
        self.addCleanup(idle.close)
        self.run_until(lambda: len(server._connections) == 1)
        server.graceful_shutdown()
        self.run_until(lambda: stops)  # the handshake counted, then timed out
        self.assertEqual(self.accepted, [])
        self.assertEqual(self.loop.fd_count(), 0)
        self.assertEqual(idle.recv(10), b"")

    def test_default_context_verifies(self):
        context = thor.tls.default_context()
        self.assertEqual(context.verify_mode, ssl.CERT_REQUIRED)
        self.assertTrue(context.check_hostname)


def send_close_notify(tls):
    """Half-close ``tls`` (non-blocking) the TLS way. unwrap() sends
    close_notify, then waits for the other side's, which a non-blocking
    socket reports as SSLWantReadError; reading still works after it."""
    try:
        tls.unwrap()
    except ssl.SSLWantReadError:
        pass


class RawTlsPeer(RawPeer):
    """The other end as a plain ``ssl`` socket, which the test half-closes
    the TLS way: close_notify sent, reading goes on."""

    nothing_yet = (ssl.SSLWantReadError,)

    def end(self):
        send_close_notify(self.sock)

    def recv(self):
        try:
            return self.sock.recv(65536)
        except ssl.SSLZeroReturnError:  # close_notify, after our own
            return b""


def handshake_pair(client_context, server_ctx):
    """A TLS connection over a socketpair, handshaken in this thread:
    (client ssl socket, server ssl socket), both non-blocking."""
    left, right = socket.socketpair()
    for sock in (left, right):
        sock.setblocking(False)
    client = client_context.wrap_socket(
        left, server_hostname="localhost", do_handshake_on_connect=False
    )
    server = server_ctx.wrap_socket(
        right, server_side=True, do_handshake_on_connect=False
    )
    pending = [client, server]
    for _ in range(100):  # each round moves the handshake on a step
        for tls in list(pending):
            try:
                tls.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            pending.remove(tls)
        if not pending:
            return client, server
    raise AssertionError("the handshake did not finish")


class TestTlsHalfClose(TlsTestCase):
    def served(self, half_close=True, maximum_version=None):
        """A raw TLS client connected to a thor TLS server; the server's
        end, with ``half_close`` set before it reads anything."""
        server = self.server()
        context = trusting_context()
        if maximum_version is not None:
            context.maximum_version = maximum_version
        sock = socket.create_connection((self.host, server.port))
        # close_notify must not wait for an acknowledgement (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        tls = context.wrap_socket(
            sock, server_hostname="localhost", do_handshake_on_connect=False
        )
        self.addCleanup(tls.close)

        def handshake():
            try:
                tls.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False
            return True

        self.run_until(handshake)
        self.run_until(lambda: self.accepted)
        conn = self.accepted[0]
        conn.half_close = half_close
        peer = RawTlsPeer(tls, self.loop)
        self.addCleanup(peer.unregister_fd)
        return peer, conn

    def ended_in_one_read(self, payload, half_close):
        """A thor connection over a socketpair whose peer has sent
        ``payload`` and close_notify before thor reads anything: the
        peer's ssl socket and the connection's Recorder."""
        client, server_side = handshake_pair(trusting_context(), server_context())
        self.addCleanup(client.close)
        conn = TlsConnection(server_side, "pair", 0, self.loop)
        self.addCleanup(conn.abort)
        conn.half_close = half_close
        client.sendall(payload)
        send_close_notify(client)
        return client, Recorder(conn)

    @unittest.skipIf(sys.version_info < (3, 10), "TLS half_close needs Python 3.10+")
    def test_answer_after_end_under_tls13(self):
        peer, conn = self.served()
        self.assertEqual(conn.socket.version(), "TLSv1.3")
        got = Recorder(conn)
        peer.sock.sendall(b"request")
        peer.end()
        self.run_until(lambda: got.count("end"))
        self.assertEqual(got.events, [("data", b"request"), ("end",)])
        answer = os.urandom(2 * 1024 * 1024)
        self.loop.schedule(0, conn.write, answer)
        self.run_until(lambda: len(peer.data) == len(answer) or peer.eof)
        self.assertEqual(bytes(peer.data), answer)
        self.assertFalse(peer.eof)
        self.assertEqual(got.count("close"), 0)
        conn.close()
        self.run_until(lambda: peer.eof)  # this side's close_notify
        self.assertEqual(bytes(peer.data), answer)
        self.assertIsNone(peer.error)
        self.run_until(lambda: got.count("close"))
        self.assertEqual(got.events, [("data", b"request"), ("end",), ("close",)])
        self.assertEqual(self.loop.fd_count(), 1)  # the listener

    def test_lingering_close_reads_through_tls(self):
        # close(linger=) under TLS: no half-close (Python's ssl has none),
        # but what the peer still sends is read and dropped, so the answer
        # is not reset away; the peer's close ends it.
        peer, conn = self.served(half_close=False)
        got = Recorder(conn)
        conn.pause(False)
        peer.sock.sendall(b"request")
        self.run_until(lambda: got.count("data"))
        conn.pause(True)
        for _ in range(64):  # input thor does not read before its close
            try:
                peer.sock.send(b"u" * 16384)
            except ssl.SSLWantWriteError:
                break
        conn.write(b"answer")
        conn.close(linger=5)
        self.run_until(lambda: bytes(peer.data) == b"answer")
        self.assertEqual(got.count("close"), 0)  # lingering
        self.assertTrue(conn.tcp_connected)
        send_close_notify(peer.sock)
        peer.sock.close()
        peer.unregister_fd()
        self.run_until(lambda: got.count("close"))
        self.assertIsNone(conn.error)

    def test_tls12_end_closes(self):
        # RFC 5246 7.2.1: close_notify is answered at once, with one's own.
        peer, conn = self.served(maximum_version=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(conn.socket.version(), "TLSv1.2")
        got = Recorder(conn)
        peer.sock.sendall(b"request")
        peer.end()
        self.run_until(lambda: got.count("close"))
        self.assertEqual(got.events, [("data", b"request"), ("close",)])
        self.run_until(lambda: peer.eof)
        self.assertEqual(peer.data, b"")
        self.assertIsNone(peer.error)

    @unittest.skipUnless(
        ssl.OPENSSL_VERSION_INFO >= (3,), "OpenSSL 3 stops writing after a truncation"
    )
    def test_truncation_closes(self):
        # The TCP end without close_notify: OpenSSL 3 will not write any
        # more, so 'end' would promise an answer that cannot be sent.
        peer, conn = self.served()
        got = Recorder(conn)
        peer.sock.sendall(b"request")
        socket.socket.shutdown(peer.sock, socket.SHUT_WR)
        self.run_until(lambda: got.count("close"))
        self.assertEqual(got.events, [("data", b"request"), ("close",)])

    def test_end_read_along_with_data(self):
        # Two records and close_notify, all in the socket before thor reads:
        # one readable event takes them all, and the socket is never
        # readable again (the peer keeps its side of the socket open), yet
        # the end must still be noticed.
        payload = os.urandom(20000)
        for half_close, last in ((True, "end"), (False, "close")):
            if half_close and sys.version_info < (3, 10):
                continue  # TLS half_close needs Python 3.10+
            with self.subTest(half_close=half_close):
                _, got = self.ended_in_one_read(payload, half_close)
                self.run_until(lambda: got.count(last))
                self.assertEqual(got.events, [("data", payload), (last,)])

    @unittest.skipIf(sys.version_info < (3, 10), "TLS half_close needs Python 3.10+")
    def test_end_while_paused_is_seen_on_unpause(self):
        # As above, with the application pausing on the data: the end that
        # OpenSSL already holds is found once reading resumes.
        payload = os.urandom(20000)
        client, got = self.ended_in_one_read(payload, True)
        conn = got.conn
        conn.on("data", lambda data: conn.pause(True))
        self.run_until(lambda: got.events)
        idle(self.loop)
        self.assertEqual(got.events, [("data", payload)])
        conn.pause(False)
        self.run_until(lambda: got.count("end"))
        self.assertEqual(got.events, [("data", payload), ("end",)])
        conn.write(b"answer")
        conn.close()
        peer = RawTlsPeer(client, self.loop)
        self.addCleanup(peer.unregister_fd)
        self.run_until(lambda: peer.eof)
        self.assertEqual(peer.data, b"answer")
        self.assertIsNone(peer.error)


@unittest.skipUnless(has_ipv6(), "no IPv6 loopback")
class TestTlsIPv6(TlsTestCase):
    host = "::1"

    def test_echo_v6(self):
        server = self.echo_server(host="[::1]")
        for target in ("::1", "[::1]", "localhost"):
            outcome = self.connect(target, server.port, tls_context=trusting_context())
            if target == "localhost" and len(outcome) == 2:
                continue  # localhost may name only 127.0.0.1 here
            (conn,) = outcome
            self.assertEqual(conn.socket.family, socket.AF_INET6)
            got = Collector(conn)
            conn.write(b"six")
            self.run_until(lambda: got.data == b"six")


if __name__ == "__main__":
    unittest.main()
