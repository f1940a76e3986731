"""A socket-free harness for thor's HTTP server and client: fake transports,
a fake listening server and connecting client, and a loop on a fake clock.

Theory of operation
-------------------
- ``FakeTransport`` has the surface of ``thor.tcp.TcpConnection`` that the
  HTTP layer uses (``write``, ``pause``, ``close``, ``abort``,
  ``half_close``, ``write_buffered``, ``tcp_connected``, ``error``,
  ``host``, ``port``, ``peer_address``; ``socket`` is None, so code that
  would ask the kernel, such as the client's peek at an idle connection,
  skips it), and emits what a TcpConnection emits: data, pause, end,
  close. The test plays the peer: ``feed`` (data arrives), ``end`` (the
  peer shuts its side), ``reset``, and ``stop_reading`` /
  ``read_some`` / ``resume_reading`` to drive output backpressure. What
  the HTTP side wrote and the peer took is in ``output``; ``take()``
  returns what came since the last ``take()``.
- The rules are TcpConnection's (see thor/tcp.py): a transport starts
  paused; what the application's own call ends (``close``, ``abort``) is
  reported with ``close`` on the next loop pass, what the peer does is
  reported at once; ``pause(True)`` once more than ``write_high`` bytes are
  queued, ``pause(False)`` once fewer than ``write_low`` remain; the
  peer's end closes the transport (once what is queued is taken) unless
  ``half_close``, which emits ``end`` instead. Data fed while the
  transport is paused waits, and is delivered one ``feed`` per loop pass
  after ``pause(False)``, as a socket's reads would be.
- ``FakeNet`` makes the loop: ``thor.loop.LoopBase`` with a ``FakeClock``
  (its ``clock=``) and a poller that never sleeps and never reports a file
  descriptor, so no real time passes. ``run()`` runs the passes that have
  work (ready callbacks, timers due); ``advance(seconds)`` moves the clock
  from one timer deadline to the next up to the target, running each in
  turn, so a timer re-armed by another fires when it would have. An
  exception the loop catches fails the test (``LoopErrors``).
- ``FakeNet.server(**settings)`` is an ``HttpServer`` whose
  ``tcp_server_class`` is ``FakeTcpServer`` (it never binds);
  ``FakeNet.connect(server)`` hands it a new transport ('connect') and
  returns that transport for the test to act as the client.
  ``FakeNet.client(**settings)`` is an ``HttpClient`` whose
  ``tcp_client_class`` is a ``FakeTcpClient`` bound to this net: each
  ``connect()`` waits in ``net.connects`` until the test ``accept()``s it
  (a transport it controls) or ``refuse()``s it (``connect_error``); a
  ``timeout`` runs on the fake clock (ETIMEDOUT). ``auto_accept`` accepts
  every connect on the next pass.
- Every deadline of thor.http.server and thor.http.client is on the
  loop's clock, so the fake clock drives them all; nothing is patched.
"""

from __future__ import annotations

import errno
import math
import os
import unittest
from collections import deque
from typing import TYPE_CHECKING

from thor.events import EventEmitter
from thor.http.client import HttpClient
from thor.http.server import HttpServer
from thor.loop import LoopBase

if TYPE_CHECKING:
    from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, Type, Union

__all__ = [
    "FakeClock", "FakePoller", "FakeTransport", "FakeTcpServer", "FakeTcpClient",
    "FakeConnect", "FakeNet", "LoopErrors", "FakeNetTestCase", "without_date",
]


class FakeClock:
    """A monotonic clock that moves only when told (``advance``). It starts
    days away from the real monotonic time (``START``), so that a deadline
    read from the real clock instead of the loop's makes the tests fail
    rather than pass by the accident of the two being close."""

    START = 1e7

    def __init__(self, start: Optional[float] = None) -> None:
        self.now = self.START if start is None else float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock on (no timer runs: see ``FakeNet.advance``)."""
        if not seconds >= 0:
            raise ValueError("a clock does not go back: %r" % (seconds,))
        self.now += seconds


class FakePoller:
    """A poller that reports nothing and returns at once: the loop it
    drives watches no file descriptor and never sleeps."""

    name = "fake"

    def __init__(self) -> None:
        self.fds: Dict[int, int] = {}

    def register(self, fd: int, mask: int) -> None:
        self.fds[fd] = mask

    def modify(self, fd: int, mask: int) -> None:
        self.fds[fd] = mask

    def unregister(self, fd: int) -> None:
        self.fds.pop(fd, None)

    def poll(self, timeout: Optional[float]) -> List[Tuple[int, int]]:
        return []

    def close(self) -> None:
        self.fds.clear()


class LoopErrors:
    """The loop's ``exception_handler`` for a FakeNet: keeps what the loop
    caught, so that ``check()`` fails the test on it (tests/support.py's
    ExceptionRecorder, typed)."""

    def __init__(self) -> None:
        self.errors: List[Tuple[BaseException, Any]] = []

    def __call__(self, loop: LoopBase, exc: BaseException, callback: Any) -> None:
        self.errors.append((exc, callback))

    def check(self) -> None:
        if self.errors:
            exc, callback = self.errors[0]
            raise AssertionError(
                "the loop caught %d exception(s); the first, in %r: %r"
                % (len(self.errors), callback, exc)
            ) from exc


def _report(loop: LoopBase, exc: Exception, source: object) -> None:
    loop.exception_handler(loop, exc, source)


class FakeTransport(EventEmitter):
    """A TcpConnection without a socket; the test is its peer.

    Emits: data(bytes), pause(paused: bool) for the write side, end() (the
    peer has finished sending; only with ``half_close``), close().

    Peer's side: ``feed``, ``end``, ``reset``, ``stop_reading``,
    ``read_some``, ``resume_reading``, ``take``; ``output`` holds every
    byte the peer has taken, ``write_buffered`` what waits for it.
    ``aborted`` tells an ``abort()`` from a ``close()``.
    """

    write_high = 65536
    write_low = 16384
    half_close = False

    def __init__(
        self, loop: LoopBase, host: str = "192.0.2.1", port: int = 40000,
    ) -> None:
        EventEmitter.__init__(self)
        self._loop = loop
        self.host = host
        self.port = port
        self.socket: Any = None
        self.peer_address: Optional[Tuple[str, int]] = (host, port)
        self.tcp_connected = True
        self.error: Optional[OSError] = None
        self.aborted = False
        self.output = bytearray()
        self._taken = 0
        self._buffer = bytearray()
        self._reading = False  # connections start paused
        self._peer_reading = True
        self._inbox: Deque[bytes] = deque()
        self._eof_pending = False
        self._delivery_scheduled = False
        self._read_eof = False
        self._ended = False
        self._closing = False
        self._write_paused = False
        # As TcpConnection's: when the peer last took queued output.
        self.sent_at = 0.0

    def __repr__(self) -> str:
        state = "closed" if not self.tcp_connected else (
            "closing" if self._closing else "open")
        return "<FakeTransport %s:%s %s%s>" % (
            self.host, self.port, state, "" if self._reading else ", paused")

    @property
    def loop(self) -> LoopBase:
        return self._loop

    @property
    def write_buffered(self) -> int:
        """Bytes written that the peer has not taken."""
        return len(self._buffer)

    @property
    def reading(self) -> bool:
        """True while the application has reading on (``pause(False)``)."""
        return self._reading

    @property
    def closing(self) -> bool:
        """True once the application called ``close()`` or ``abort()``,
        or the transport closed."""
        return self._closing

    # -- the application's side ------------------------------------------------

    def write(self, data: Union[bytes, bytearray, memoryview, str]) -> None:
        if self._closing:
            return
        if isinstance(data, str):
            data = data.encode("utf-8")
        data = bytes(data)
        if not data:
            return
        if self._peer_reading and not self._buffer:
            self.output += data
            return
        self._buffer += data
        if not self._write_paused and len(self._buffer) > self.write_high:
            self._write_paused = True
            self.emit("pause", True)

    def pause(self, paused: bool) -> None:
        if paused:
            self._reading = False
        elif not self._closing and not self._read_eof:
            self._reading = True
            if self._inbox or self._eof_pending:
                self._schedule_delivery()

    def close(self, linger: Optional[float] = None) -> None:
        # linger: a real socket's concern (the kernel's reset); here the
        # close is as without it.
        if self._closing:
            return
        self._closing = True
        if not self._buffer:
            self._close_now(False, True)

    def abort(self) -> None:
        if self.tcp_connected:
            self.aborted = True
        self._close_now(False)

    def _close_now(
        self, in_dispatch: bool, graceful: bool = False, error: Optional[OSError] = None,
    ) -> None:
        if not self.tcp_connected:
            return
        if error is not None:
            self.error = error
        self.tcp_connected = False
        self._closing = True
        self._reading = False
        self._buffer = bytearray()
        self._inbox.clear()
        if in_dispatch:
            self._dispatch("close")
        else:
            self._loop.schedule(0, self.emit, "close")

    def _dispatch(self, event: str, *args: Any) -> None:
        # As the loop runs a source's handler: an exception is reported,
        # not raised into the test's call.
        try:
            self.emit(event, *args)
        except Exception as exc:
            _report(self._loop, exc, self)

    # -- the peer's side ---------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """The peer sends ``data``: one ``data`` event now if the
        application is reading, else when it next reads. Dropped once the
        transport is closed (as the kernel would)."""
        if self._eof_pending or self._read_eof:
            raise RuntimeError("the peer ended its side: it cannot send")
        if not self.tcp_connected or self._closing or not data:
            return
        if self._reading and not self._inbox:
            self._dispatch("data", bytes(data))
        else:
            self._inbox.append(bytes(data))

    def end(self) -> None:
        """The peer shuts its sending side (after what it fed)."""
        if self._eof_pending or self._read_eof or not self.tcp_connected:
            return
        if self._reading and not self._inbox:
            self._peer_eof()
        else:
            self._eof_pending = True

    def reset(self) -> None:
        """The peer resets the connection: closed at once, with the error."""
        self._close_now(True, error=ConnectionResetError(
            errno.ECONNRESET, os.strerror(errno.ECONNRESET)))

    def stop_reading(self) -> None:
        """The peer takes nothing more until ``read_some`` or
        ``resume_reading``: writes queue up."""
        self._peer_reading = False

    def resume_reading(self) -> None:
        """The peer takes everything queued, and what comes from now on."""
        self._peer_reading = True
        self.read_some()

    def read_some(self, size: Optional[int] = None) -> bytes:
        """The peer takes up to ``size`` queued bytes (all: None); returns
        them (they are in ``output`` too)."""
        buffer = self._buffer
        if not self.tcp_connected or not buffer:
            return b""
        count = len(buffer) if size is None else min(size, len(buffer))
        data = bytes(buffer[:count])
        del buffer[:count]
        self.output += data
        if count:
            self.sent_at = self._loop._clock()
        if not buffer and (self._closing or self._read_eof and not self._ended):
            self._close_now(True, True)
            return data
        if self._write_paused and len(buffer) < self.write_low:
            self._write_paused = False
            self._dispatch("pause", False)
        return data

    def take(self) -> bytes:
        """What the peer has taken since the last ``take()``."""
        data = bytes(self.output[self._taken:])
        self._taken = len(self.output)
        return data

    def _schedule_delivery(self) -> None:
        if not self._delivery_scheduled:
            self._delivery_scheduled = True
            self._loop.schedule(0, self._deliver)

    def _deliver(self) -> None:
        # One read per pass, as the loop gives a socket.
        self._delivery_scheduled = False
        if not self._reading or not self.tcp_connected:
            return
        if self._inbox:
            self._dispatch("data", self._inbox.popleft())
        elif self._eof_pending:
            self._eof_pending = False
            self._peer_eof()
        if self._reading and (self._inbox or self._eof_pending):
            self._schedule_delivery()

    def _peer_eof(self) -> None:
        self._read_eof = True
        self._reading = False
        if self.half_close and not self._closing:
            self._ended = True
            self._dispatch("end")
        elif not self._buffer:
            self._close_now(True, True)


class FakeTcpServer(EventEmitter):
    """A TcpServer that never binds; ``connect()`` makes its connections.

    Emits: start(), connect(FakeTransport), stop().
    """

    def __init__(
        self, host: Union[str, bytes, None], port: Union[int, str],
        loop: Optional[LoopBase] = None, **kwargs: Any,
    ) -> None:
        EventEmitter.__init__(self)
        if loop is None:
            raise TypeError("FakeTcpServer needs the test's loop")
        self._loop = loop
        self.host = host.decode("ascii") if isinstance(host, bytes) else (host or "")
        self.port = int(port) or 8080
        self.accepting = True
        self.transports: List[FakeTransport] = []
        loop.schedule(0, self.emit, "start")

    def connect(self, host: str = "192.0.2.1", port: Optional[int] = None) -> FakeTransport:
        """A client connects: returns the transport the server was given."""
        if not self.accepting:
            raise RuntimeError("the server is not accepting connections")
        transport = FakeTransport(self._loop, host, port or 40000 + len(self.transports))
        self.transports.append(transport)
        try:
            self.emit("connect", transport)
        except Exception as exc:
            _report(self._loop, exc, self)
        return transport

    def close(self) -> None:
        if self.accepting:
            self.accepting = False
            self._loop.schedule(0, self.emit, "stop")

    shutdown = close
    graceful_shutdown = close


class FakeConnect:
    """One ``FakeTcpClient.connect()`` waiting for the test's answer."""

    def __init__(
        self, net: FakeNet, client: FakeTcpClient, host: str, port: int,
        timeout: Optional[float],
    ) -> None:
        self.net = net
        self.client = client
        self.host = host
        self.port = port
        self.timeout = timeout
        self.done = False
        self.transport: Optional[FakeTransport] = None
        self._timer = (
            net.loop.schedule(timeout, self.refuse, OSError, errno.ETIMEDOUT)
            if timeout else None
        )

    def __repr__(self) -> str:
        return "<FakeConnect %s:%s%s>" % (self.host, self.port, " done" if self.done else "")

    def _finish(self) -> None:
        if self.done:
            raise RuntimeError("%r was answered already" % (self,))
        self.done = True
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        try:
            self.net.connects.remove(self)
        except ValueError:
            pass

    def accept(self) -> FakeTransport:
        """The connection is made: 'connect' with a new transport, which is
        returned (the test is the server at its other end)."""
        self._finish()
        transport = self.transport = FakeTransport(self.net.loop, self.host, self.port)
        self.net.transports.append(transport)
        try:
            self.client.emit("connect", transport)
        except Exception as exc:
            _report(self.net.loop, exc, self.client)
        return transport

    def refuse(self, errtype: Any = OSError, error: Any = errno.ECONNREFUSED) -> None:
        """The connection fails: 'connect_error(errtype, error)'."""
        self._finish()
        try:
            self.client.emit("connect_error", errtype, error)
        except Exception as exc:
            _report(self.net.loop, exc, self.client)


class FakeTcpClient(EventEmitter):
    """A TcpClient whose connections the test makes (see ``FakeConnect``).

    Emits: connect(FakeTransport), connect_error(errtype, error).

    ``net`` is set on the subclass ``FakeNet`` makes.
    """

    net: FakeNet
    check_ip: Optional[Callable[[str], bool]] = None

    def __init__(self, loop: Optional[LoopBase] = None) -> None:
        EventEmitter.__init__(self)
        self._loop = loop or self.net.loop

    def connect(
        self, host: Union[str, bytes], port: Union[int, str], timeout: Optional[float] = None,
    ) -> None:
        if isinstance(host, bytes):
            host = host.decode("ascii")
        net = self.net
        check = self.check_ip
        if check is not None:
            address = net.addresses.get(host, host)
            if not check(address):
                self._loop.schedule(
                    0, self.emit, "connect_error", PermissionError, errno.EACCES)
                return
        pending = FakeConnect(net, self, host, int(port), timeout)
        net.connects.append(pending)
        if net.auto_accept:
            net.loop.schedule(0, _accept_if_waiting, pending)


def _accept_if_waiting(pending: FakeConnect) -> None:
    if not pending.done:
        pending.accept()


class _FakeServedHttpServer(HttpServer):
    tcp_server_class = FakeTcpServer  # type: ignore[assignment]  # the TcpServer surface HttpServer uses


class FakeNet:
    """A loop on a fake clock, and the fake servers, clients and
    transports on it. ``close()`` when done (FakeNetTestCase does)."""

    # The most passes ``run()`` makes before it decides the loop never
    # settles (a callback that schedules itself for "now" forever).
    max_passes = 10000

    def __init__(self, start: Optional[float] = None) -> None:
        self.clock = FakeClock(start)
        self.loop = LoopBase(clock=self.clock, poller=FakePoller)
        self.recorder = LoopErrors()
        self.loop.exception_handler = self.recorder
        self.transports: List[FakeTransport] = []
        self.connects: Deque[FakeConnect] = deque()
        # Host name -> the IP address check_ip is given.
        self.addresses: Dict[str, str] = {}
        self.auto_accept = False
        self.tcp_client_class: Type[FakeTcpClient] = type(
            "FakeTcpClient", (FakeTcpClient,), {"net": self})

    def close(self) -> None:
        self.loop.close()

    # -- time --------------------------------------------------------------------

    def _next_delay(self) -> Optional[float]:
        """Seconds until the next pending call (0: due now); None: none."""
        events = self.loop.scheduled_events()
        return events[0][0] if events else None

    def _pass(self) -> None:
        loop = self.loop
        # As run() makes a pass: the loop counts as running, so its time()
        # is the pass's.
        loop._running = True
        try:
            loop._run_once()
        finally:
            loop._running = False
        if loop._stopping:
            loop._stopping = False
            loop._clear()
        self.recorder.check()

    def run(self) -> None:
        """Run every pass that has work now (ready callbacks, timers due),
        without moving the clock."""
        for _ in range(self.max_passes):
            if self._next_delay() != 0:
                return
            self._pass()
        raise AssertionError("the loop still has work after %d passes" % self.max_passes)

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds``, running each timer at its
        deadline on the way (and what they schedule), in order."""
        if not seconds >= 0:
            raise ValueError("a clock does not go back: %r" % (seconds,))
        clock = self.clock
        target = clock.now + seconds
        self.run()
        while True:
            delay = self._next_delay()
            if delay is None or clock.now + delay > target:
                break
            later = clock.now + delay
            clock.now = later if later > clock.now else math.nextafter(clock.now, math.inf)
            self.run()
        clock.now = target
        self.run()

    # -- servers -----------------------------------------------------------------

    def server(self, **settings: Any) -> HttpServer:
        """An HttpServer on this loop that never binds; ``settings`` are
        set on the instance (``request_timeout=1``...)."""
        server = _FakeServedHttpServer("fake.example", 80, self.loop)
        _configure(server, settings)
        return server

    def connect(self, server: HttpServer, host: str = "192.0.2.1") -> FakeTransport:
        """A client connects to ``server`` (made by ``server()``): returns
        the transport, for the test to act as that client."""
        transport = server.tcp_server.connect(host)  # type: ignore[attr-defined]  # a FakeTcpServer
        self.transports.append(transport)
        return transport  # type: ignore[no-any-return]  # see above

    # -- clients -----------------------------------------------------------------

    def client(self, **settings: Any) -> HttpClient:
        """An HttpClient on this loop whose connections wait in
        ``connects`` for ``accept()``; ``settings`` are set on the
        instance."""
        client = HttpClient(self.loop)
        client.tcp_client_class = self.tcp_client_class  # type: ignore[assignment]  # the TcpClient surface HttpClient uses
        _configure(client, settings)
        return client

    def accept(self) -> FakeTransport:
        """Accept the oldest connect waiting (running the loop first, so a
        connect asked for from a callback is there)."""
        self.run()
        if not self.connects:
            raise AssertionError("no connect is waiting")
        return self.connects[0].accept()


def _configure(target: object, settings: Dict[str, Any]) -> None:
    for name, value in settings.items():
        if not hasattr(type(target), name):
            raise AttributeError("%s has no setting %r" % (type(target).__name__, name))
        setattr(target, name, value)


def without_date(data: bytes) -> bytes:
    """``data`` without its Date header lines (the one part of a response
    head that depends on the wall clock)."""
    lines = data.split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.lower().startswith(b"date:"))


class FakeNetTestCase(unittest.TestCase):
    """A fresh ``FakeNet`` per test (``self.net``, ``self.loop``), closed
    afterwards; an exception the loop caught fails the test."""

    def setUp(self) -> None:
        self.net = FakeNet()
        self.loop = self.net.loop
        self.addCleanup(self.net.close)

    def tearDown(self) -> None:
        self.net.recorder.check()
