"""HTTP protocol behaviour without sockets or real time: the server and the
client run over tests.fake's FakeTransport, on a loop whose clock the test
advances by hand (see tests/fake.py)."""

from __future__ import annotations

import errno
import unittest
from typing import TYPE_CHECKING

from thor.http import error
from thor.http.client import HttpClient
from thor.http.server import HttpServer, HttpServerExchange

from tests.fake import FakeNetTestCase, FakeTransport, without_date

if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Tuple

GET = b"GET /%s HTTP/1.1\r\nHost: fake.example\r\n\r\n"


def ok(body: bytes) -> bytes:
    """The response ``answer`` makes, as the client receives it (no Date)."""
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def answer(exchange: HttpServerExchange, body: bytes) -> None:
    exchange.response_start(200, "OK", [("Content-Length", str(len(body)))])
    exchange.response_body(body)
    exchange.response_done()


class HarnessTests(FakeNetTestCase):
    """The harness itself: what the HTTP tests below rely on."""

    def test_advance_runs_each_timer_at_its_deadline(self) -> None:
        clock = self.net.clock
        start = clock()
        fired = []

        def tick(n: int) -> None:
            fired.append((n, round(clock() - start, 6)))
            if n < 3:
                self.loop.schedule(1, tick, n + 1)

        self.loop.schedule(1, tick, 1)
        self.net.advance(0.999)
        self.assertEqual(fired, [])
        self.net.advance(2.5)
        self.assertEqual(fired, [(1, 1.0), (2, 2.0), (3, 3.0)])
        self.assertEqual(round(clock() - start, 6), 3.499)

    def test_transport_backpressure_marks(self) -> None:
        transport = FakeTransport(self.loop)
        transport.write_high, transport.write_low = 10, 4
        pauses: List[bool] = []
        transport.on("pause", pauses.append)
        transport.write(b"12345")
        self.assertEqual((transport.take(), transport.write_buffered), (b"12345", 0))
        transport.stop_reading()
        transport.write(b"abcdefghij")
        self.assertEqual(pauses, [])  # 10 queued: not above the mark
        transport.write(b"k")
        self.assertEqual(pauses, [True])
        self.assertEqual(transport.read_some(7), b"abcdefg")
        self.assertEqual(pauses, [True])  # 4 left: not below the low mark
        transport.read_some(1)
        self.assertEqual(pauses, [True, False])
        transport.resume_reading()
        self.assertEqual(transport.take(), b"abcdefghijk")

    def test_data_fed_while_paused_waits_for_reading(self) -> None:
        transport = FakeTransport(self.loop)
        transport.half_close = True
        got: List[Any] = []
        transport.on("data", got.append)
        transport.on("end", lambda: got.append("end"))
        transport.feed(b"one")
        transport.feed(b"two")
        transport.end()
        self.net.run()
        self.assertEqual(got, [])  # connections start paused
        transport.pause(False)
        self.net.run()
        self.assertEqual(got, [b"one", b"two", "end"])

    def test_close_waits_for_the_peer_to_take_the_output(self) -> None:
        transport = FakeTransport(self.loop)
        closed = []
        transport.on("close", lambda: closed.append(True))
        transport.stop_reading()
        transport.write(b"bye")
        transport.close()
        self.net.run()
        self.assertEqual((closed, transport.tcp_connected), ([], True))
        transport.resume_reading()
        self.net.run()
        self.assertEqual((closed, transport.output, transport.aborted), ([True], b"bye", False))


class ServerTests(FakeNetTestCase):
    def serve(
        self, respond: Optional[Callable[[HttpServerExchange], None]] = None,
        **settings: Any,
    ) -> HttpServer:
        """An HttpServer on the fake net; ``respond(exchange)`` is called
        once each request is complete. Exchanges and their errors are
        kept in self.exchanges and self.errors."""
        server = self.net.server(**settings)
        self.exchanges: List[HttpServerExchange] = []
        self.errors: List[error.HttpError] = []
        self.bodies: List[bytes] = []

        def on_exchange(exchange: HttpServerExchange) -> None:
            self.exchanges.append(exchange)
            exchange.on("error", self.errors.append)
            exchange.on("request_body", self.bodies.append)
            if respond is not None:
                exchange.on("request_done", lambda trailers: respond(exchange))

        server.on("exchange", on_exchange)
        self.net.run()
        return server

    def test_keep_alive_and_pipelining_in_order(self) -> None:
        def respond(exchange: HttpServerExchange) -> None:
            name = exchange.uri[1:]
            if name == b"slow":
                # Answered later than the request after it was sent.
                self.loop.schedule(0.5, answer, exchange, b"first")
            else:
                answer(exchange, name)

        server = self.serve(respond)
        client = self.net.connect(server)
        client.feed(GET % b"slow" + GET % b"fast")
        self.net.run()
        # The second request is not even read until the first is answered.
        self.assertEqual([e.uri for e in self.exchanges], [b"/slow"])
        self.assertEqual(client.take(), b"")
        self.net.advance(0.5)
        self.assertEqual(without_date(client.take()), ok(b"first") + ok(b"fast"))
        # Kept alive: a third request on the same connection.
        client.feed(GET % b"third")
        self.net.run()
        self.assertEqual(without_date(client.take()), ok(b"third"))
        self.assertTrue(client.tcp_connected)
        self.assertFalse(client.closing)
        self.assertEqual(len(server.connections), 1)
        self.assertEqual(self.errors, [])

    def test_output_gathered_but_large_pieces_sent_alone(self) -> None:
        """Small pieces of output go out together (one send per read
        handled, or per loop pass); a large piece is written by itself,
        uncopied, after what was gathered before it."""
        big = b"x" * 65536

        def respond(exchange: HttpServerExchange) -> None:
            if exchange.uri == b"/later":
                self.loop.schedule(0.1, answer, exchange, b"late")
            else:
                answer(exchange, big if exchange.uri == b"/big" else b"small")

        server = self.serve(respond)
        client = self.net.connect(server)
        writes: List[bytes] = []
        real_write = client.write

        def write(data: Any) -> None:
            writes.append(data)
            real_write(data)

        client.write = write  # type: ignore[method-assign]
        for name, pieces in ((b"small", 1), (b"big", 2), (b"later", 1)):
            del writes[:]
            client.feed(GET % name)
            self.net.advance(0.1)
            self.assertEqual(len(writes), pieces, name)
        # The big body is the application's own object, not a copy.
        client.feed(GET % b"big")
        self.net.run()
        self.assertIs(writes[-1], big)
        self.assertEqual(self.errors, [])

    def test_a_date_alone_is_relayed_and_a_101_still_needs_upgrade(self) -> None:
        raised: List[Exception] = []

        def respond(exchange: HttpServerExchange) -> None:
            date = ("Date", "Mon, 01 Jan 2001 00:00:00 GMT")
            if exchange.uri == b"/up":
                try:
                    exchange.response_start(101, "Switching Protocols", [date])
                except error.BadHeaderError as err:
                    raised.append(err)
                exchange.response_start(400, "Bad Request", [date, ("Content-Length", "0")])
            else:
                exchange.response_start(200, "OK", [date, ("Content-Length", "2")])
                exchange.response_body(b"ok")
            exchange.response_done()

        server = self.serve(respond)
        client = self.net.connect(server)
        client.feed(GET % b"x")
        self.net.run()
        self.assertEqual(
            client.take(),
            b"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\n"
            b"Content-Length: 2\r\n\r\nok",
        )
        client.feed(b"GET /up HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n")
        self.net.run()
        self.assertEqual(len(raised), 1)
        self.assertTrue(client.take().startswith(b"HTTP/1.1 400 Bad Request\r\n"))

    def test_idle_timeout_runs_from_the_last_answer(self) -> None:
        server = self.serve(lambda exchange: answer(exchange, b"x"), idle_timeout=1)
        client = self.net.connect(server)
        self.net.advance(0.5)
        client.feed(GET % b"")
        self.net.advance(0.9)  # 1.4 s since the connect, 0.9 since the answer
        self.assertEqual((without_date(client.take()), client.tcp_connected), (ok(b"x"), True))
        self.net.advance(0.2)
        self.assertFalse(client.tcp_connected)
        self.assertEqual(client.take(), b"")

    def test_request_head_that_stalls_gets_408(self) -> None:
        server = self.serve(lambda exchange: answer(exchange, b"x"), request_timeout=1)
        client = self.net.connect(server)
        client.feed(b"GET / HTTP/1.1\r\n")
        self.net.advance(0.6)
        client.feed(b"Host: fake.ex")  # later bytes do not move the deadline
        self.net.advance(0.3)
        self.assertEqual((client.take(), client.tcp_connected), (b"", True))
        self.net.advance(0.2)
        body = (b"<html><head><title>408 Request Timeout</title></head>"
                b"<body><p>Request Timeout</p></body></html>\n")
        self.assertEqual(without_date(client.take()), (
            b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/html\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        ))
        self.assertFalse(client.tcp_connected)
        self.assertFalse(client.aborted)  # the 408 was sent, then the close
        self.assertEqual(self.exchanges, [])
        self.assertEqual(server.connections, set())

    def test_body_timeout_between_reads(self) -> None:
        server = self.serve(lambda exchange: answer(exchange, b"x"), body_timeout=1)
        client = self.net.connect(server)
        client.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        self.net.advance(0.8)
        client.feed(b"def")  # progress: the deadline moves
        self.net.advance(0.8)
        self.assertEqual((self.errors, client.tcp_connected), ([], True))
        self.net.advance(0.3)
        self.assertEqual(self.bodies, [b"abc", b"def"])
        self.assertEqual(len(self.errors), 1)
        self.assertIsInstance(self.errors[0], error.BodyTimeoutError)
        self.assertTrue(client.take().startswith(b"HTTP/1.1 408 Request Timeout\r\n"))
        self.assertFalse(client.tcp_connected)

    def test_send_timeout_when_the_client_stops_reading(self) -> None:
        body = b"b" * 5000

        def respond(exchange: HttpServerExchange) -> None:
            # The application stops at the pause, waiting for pause(False).
            exchange.on("pause", pauses.append)
            exchange.response_start(200, "OK", [("Content-Length", "10000")])
            exchange.response_body(body)

        pauses: List[bool] = []
        server = self.serve(respond, send_timeout=1)
        client = self.net.connect(server)
        client.write_high, client.write_low = 1000, 100
        client.stop_reading()
        client.feed(GET % b"")
        self.net.run()
        self.assertEqual(pauses, [True])
        self.net.advance(0.1)
        client.read_some(50)  # some progress: the bound runs from here
        self.net.advance(0.8)
        client.read_some(50)  # and again, at 0.9 s
        # The check at 1 s sees the progress; the bound is a second from
        # the last of it (1.9 s), not from that check (2 s).
        self.net.advance(0.95)
        self.assertEqual((self.errors, client.tcp_connected), ([], True))
        self.net.advance(0.1)  # 1.95 s: within the second after 1.9 s
        self.assertEqual(len(self.errors), 1)
        self.assertIsInstance(self.errors[0], error.SendTimeoutError)
        self.assertTrue(client.aborted)
        # The peer got the 100 bytes it read, and nothing more.
        taken = client.take()
        self.assertEqual(len(taken), 100)
        taken = without_date(taken)
        sent = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n" + body
        self.assertEqual(taken, sent[:len(taken)])
        self.assertEqual(server.connections, set())

    def test_send_timeout_runs_from_the_last_progress_not_the_check(self) -> None:
        # Progress just after the pause is seen by the check at 1 s; the
        # bound still ends a second after the progress (1.1 s), not a
        # second after that check (2 s, nearly twice send_timeout).
        def respond(exchange: HttpServerExchange) -> None:
            exchange.response_start(200, "OK", [("Content-Length", "10000")])
            exchange.response_body(b"b" * 5000)

        server = self.serve(respond, send_timeout=1)
        client = self.net.connect(server)
        client.write_high, client.write_low = 1000, 100
        client.stop_reading()
        client.feed(GET % b"")
        self.net.run()
        self.net.advance(0.1)
        client.read_some(10)
        self.net.advance(0.95)  # 1.05 s
        self.assertEqual((self.errors, client.tcp_connected), ([], True))
        self.net.advance(0.1)  # 1.15 s
        self.assertEqual(len(self.errors), 1)
        self.assertIsInstance(self.errors[0], error.SendTimeoutError)
        self.assertTrue(client.aborted)

    def test_graceful_shutdown_deadline(self) -> None:
        server = self.serve(shutdown_timeout=2)  # nobody answers
        stops = []
        server.on("stop", lambda: stops.append(self.net.clock()))
        idle = self.net.connect(server)
        busy = self.net.connect(server)
        busy.feed(GET % b"")
        self.net.run()
        start = self.net.clock()
        server.graceful_shutdown()
        self.net.run()
        self.assertFalse(idle.tcp_connected)
        self.assertFalse(idle.aborted)
        self.assertTrue(busy.tcp_connected)
        self.net.advance(1.9)
        self.assertEqual((stops, busy.tcp_connected), ([], True))
        self.net.advance(0.2)
        self.assertEqual([round(t - start, 6) for t in stops], [2.0])
        self.assertTrue(busy.aborted)
        self.assertEqual(busy.take(), b"")
        self.assertEqual(len(self.errors), 1)
        self.assertIsInstance(self.errors[0], error.ConnectionClosedError)

    def test_graceful_shutdown_lets_an_answer_finish_first(self) -> None:
        server = self.serve(shutdown_timeout=2)
        stops = []
        server.on("stop", lambda: stops.append(True))
        client = self.net.connect(server)
        client.feed(GET % b"")
        self.net.run()
        server.graceful_shutdown()
        self.net.advance(1)
        answer(self.exchanges[0], b"done")
        self.net.run()
        self.assertEqual(without_date(client.take()), (
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndone"))
        self.assertEqual(stops, [True])
        self.assertFalse(client.tcp_connected)
        self.assertFalse(client.aborted)

    def test_reset_during_an_exchange(self) -> None:
        server = self.serve()  # nobody answers
        client = self.net.connect(server)
        client.feed(GET % b"")
        client.reset()
        self.assertIsInstance(client.error, ConnectionResetError)
        self.assertEqual(len(self.errors), 1)
        self.assertIsInstance(self.errors[0], error.ConnectionClosedError)
        self.assertEqual(server.connections, set())

    def test_half_closing_client_gets_every_pipelined_answer(self) -> None:
        def respond(exchange: HttpServerExchange) -> None:
            self.loop.schedule(0.1, answer, exchange, exchange.uri[1:])

        server = self.serve(respond)
        client = self.net.connect(server)
        client.feed(GET % b"a" + GET % b"b" + GET % b"c")
        client.end()
        self.net.advance(0.25)
        self.assertTrue(client.tcp_connected)  # "c" is still owed
        self.net.advance(0.1)
        self.assertEqual(without_date(client.take()), ok(b"a") + ok(b"b") + ok(b"c"))
        self.assertFalse(client.tcp_connected)
        self.assertFalse(client.aborted)
        self.assertEqual(self.errors, [])
        self.assertEqual(server.connections, set())


    def test_relayed_special_head_is_the_same_when_cached(self) -> None:
        # An origin's head as a proxy relays it: Date, a Connection field
        # naming another field, and close. The first response works it out,
        # the later ones take it from the head cache: all say the same.
        head = [
            ("Date", "Mon, 01 Jan 2001 00:00:00 GMT"), ("Connection", "x-hop"),
            ("X-Hop", "dropped"), ("X-Kept", "yes"), ("Content-Length", "2"),
        ]

        def respond(exchange: HttpServerExchange) -> None:
            exchange.response_start(200, "OK", list(head))
            exchange.response_body(b"ok")
            exchange.response_done()

        server = self.serve(respond)
        expected = (
            b"HTTP/1.1 200 OK\r\nX-Kept: yes\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\n"
            b"Content-Length: 2\r\n\r\nok"
        )
        client = self.net.connect(server)
        for _ in range(3):
            client.feed(GET % b"")
            self.net.run()
            self.assertEqual(client.take(), expected)
        head[1] = ("Connection", "close, x-hop")
        for _ in range(2):
            client = self.net.connect(server)
            client.feed(GET % b"")
            self.net.run()
            self.assertEqual(
                client.take(), expected[:-4] + b"Connection: close\r\n\r\nok")
            self.assertFalse(client.tcp_connected)

class ClientTests(FakeNetTestCase):
    def fetch(
        self, client: HttpClient, url: bytes = b"http://origin.example/x",
    ) -> List[Tuple[Any, ...]]:
        """Start a GET of ``url``; returns the list its events go to."""
        events = []
        exchange = client.exchange()
        for name in ("response_start", "response_body", "response_done", "error"):
            exchange.on(name, lambda *args, name=name: events.append((name,) + args))
        exchange.request_start(b"GET", url, [])
        exchange.request_done([])
        return events

    def test_response_then_extra_data(self) -> None:
        client = self.net.client()
        events = self.fetch(client)
        origin = self.net.accept()
        self.net.run()
        self.assertEqual(origin.take(), b"GET /x HTTP/1.1\r\nHost: origin.example\r\n\r\n")
        origin.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA")
        self.net.run()
        self.assertEqual(events[:3], [
            ("response_start", b"200", b"OK", [(b"Content-Length", b" 5")]),
            ("response_body", b"hello"),
            ("response_done", []),
        ])
        self.assertEqual(len(events), 4)
        self.assertEqual(events[3][0], "error")
        self.assertIsInstance(events[3][1], error.ExtraDataError)
        self.assertFalse(origin.tcp_connected)  # not trusted again
        # The next request gets a connection of its own.
        self.fetch(client)
        second = self.net.accept()
        self.net.run()
        self.assertIsNot(second, origin)
        self.assertEqual(second.take(), b"GET /x HTTP/1.1\r\nHost: origin.example\r\n\r\n")

    def test_send_timeout_runs_from_the_last_progress(self) -> None:
        # The origin stops reading a request body: send_timeout runs from
        # the last time it took some, not from the check that saw it.
        client = self.net.client(send_timeout=1)
        events: List[Tuple[Any, ...]] = []
        pauses: List[bool] = []
        exchange = client.exchange()
        for name in ("response_start", "error"):
            exchange.on(name, lambda *args, name=name: events.append((name,) + args))
        exchange.on("pause", pauses.append)
        exchange.request_start(b"POST", b"http://origin.example/up",
                               [(b"Content-Length", b"100000")])
        self.net.run()
        origin = self.net.accept()
        origin.write_high, origin.write_low = 1000, 100
        origin.stop_reading()
        exchange.request_body(b"u" * 5000)
        self.net.run()
        self.assertEqual(pauses, [True])
        self.net.advance(0.1)
        origin.read_some(10)  # the last progress
        self.net.advance(0.95)  # 1.05 s: the check at 1 s saw it
        self.assertEqual((events, origin.tcp_connected), ([], True))
        self.net.advance(0.1)  # 1.15 s
        self.assertEqual([e[0] for e in events], ["error"])
        self.assertIsInstance(events[0][1], error.SendTimeoutError)
        self.assertTrue(origin.aborted)

    def test_read_timeout_for_a_head_that_trickles(self) -> None:
        client = self.net.client(read_timeout=1)
        events = self.fetch(client)
        origin = self.net.accept()
        self.net.advance(0.5)
        origin.feed(b"HTTP/1.1 200 OK\r\n")  # the head must come whole in time
        self.net.advance(0.4)
        self.assertEqual((events, origin.tcp_connected), ([], True))
        self.net.advance(0.2)
        self.assertEqual([e[0] for e in events], ["error"])
        self.assertIsInstance(events[0][1], error.ReadTimeoutError)
        self.assertTrue(origin.aborted)

    def test_queue_timeout(self) -> None:
        client = self.net.client(queue_timeout=1, max_server_conn=1)
        first = self.fetch(client)
        second = self.fetch(client)  # waits for the one connection
        self.net.run()
        self.assertEqual(len(self.net.connects), 1)
        self.net.advance(0.9)
        self.assertEqual((first, second), ([], []))
        self.net.advance(0.2)
        self.assertEqual(first, [])
        self.assertEqual([e[0] for e in second], ["error"])
        self.assertIsInstance(second[0][1], error.QueueTimeoutError)
        origin = self.net.accept()
        self.net.run()
        self.assertEqual(origin.take(), b"GET /x HTTP/1.1\r\nHost: origin.example\r\n\r\n")
        origin.feed(ok(b"one"))
        self.net.run()
        self.assertEqual([e[0] for e in first],
                         ["response_start", "response_body", "response_done"])
        self.assertEqual(list(self.net.connects), [])

    def test_connect_timeout_on_the_fake_clock(self) -> None:
        client = self.net.client(connect_timeout=2)
        events = self.fetch(client)
        self.net.advance(1.9)
        self.assertEqual(events, [])
        self.net.advance(0.2)
        self.assertEqual([e[0] for e in events], ["error"])
        self.assertIsInstance(events[0][1], error.ConnectTimeoutError)

    def test_refused_connect(self) -> None:
        client = self.net.client()
        events = self.fetch(client)
        self.net.run()
        self.net.connects[0].refuse(OSError, errno.ECONNREFUSED)
        self.net.run()
        self.assertEqual([e[0] for e in events], ["error"])
        self.assertIsInstance(events[0][1], error.ConnectError)


if __name__ == "__main__":
    unittest.main()
