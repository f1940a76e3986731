"""TCP: connections, the client that makes them and the server that accepts
them, on top of the loop.

Theory of operation
-------------------
- A ``TcpConnection`` watches its socket level-triggered, as asyncio does:
  read interest while unpaused, write interest only while bytes are queued.
  Each readable event makes one ``recv`` of ``read_size`` bytes.
- ``write()`` sends at once when nothing is queued and queues only what the
  kernel did not take; the queue is a ``bytearray`` because deleting from
  its front is cheap in CPython. Output backpressure is reported with
  ``pause(True)`` / ``pause(False)`` around ``write_high`` / ``write_low``.
- ``close`` is emitted exactly once. When the application's own call
  (``write``, ``close``, ``abort``) ends the connection, it is emitted on the
  next pass of the loop, never inside that call.
- Peer EOF stops reading; what is queued still goes out; then the
  connection closes. thor half-closes its own side only when asked
  (``write_eof``, and a lingering close). With
  ``half_close`` set, peer EOF instead emits ``end`` and the connection
  stays open for writing until the application closes it (a server still
  owes a client that shut its side the answers to what it sent, RFC 9112
  section 9.6).
- Epoll reports HUP once both directions are shut, which for TCP (unless
  thor shut its own side: ``write_eof``) means a reset, and for a
  socketpair a peer that is gone; data still in the kernel is read first. HUP cannot be masked, so
  while the application has reading paused, the connection stops watching
  its fd (instead of spinning on the HUP) and watches it again on
  ``pause(False)``, when reading finds the rest and then the end. HUP with
  an error is a reset: the connection closes at once. HUP after the peer's
  EOF means that writing is over too, so the connection closes (it would
  otherwise sit half-closed, unwatched, until the application next wrote).
- ``write_eof`` marks the output as closing (``_closing``, so that writes
  are dropped without a test on the hot path) with ``_eof_out`` set:
  reading goes on, the write side is shut once the queue drains, and the
  connection closes when the peer's end comes too (or has come).
- A connection that a failure ends (a reset, a failed send) keeps that
  ``OSError`` in ``error``, so that the layer above can say "reset" rather
  than "closed"; an orderly end leaves it None.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import TYPE_CHECKING

from thor import dns
from thor.loop import ERROR, HUP, INVALID, READ, WRITE, EventSource

if TYPE_CHECKING:
    from typing import (
        Any, Callable, Iterator, List, Optional, Sequence, Set, Tuple, Type, Union,
    )

    from thor.dns import AddrInfo
    from thor.loop import LoopBase, ScheduledEvent
    from thor.types import Address

__all__ = ["TcpConnection", "TcpServer", "TcpClient", "server_listen"]

# SO_LINGER on, timeout 0: close() sends RST and drops what is queued.
_LINGER_RESET = struct.pack("ii", 1, 0)

_BLOCKED = (BlockingIOError, InterruptedError)

# accept() errors that mean "out of a resource": retrying at once would spin.
_ACCEPT_EXHAUSTED = frozenset(
    code
    for code in (
        getattr(errno, name, None)
        for name in ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM")
    )
    if code is not None
)

# connect_ex() results that mean "in progress, wait until writable".
_CONNECT_PENDING = frozenset(
    (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR, errno.EALREADY)
)




def _warm_allocator() -> None:
    """Free one block larger than a read, once, at import.

    Each read asks for ``read_size`` (256 KiB) and gets back what came.
    glibc's malloc serves a request that large with mmap until it has seen
    one such block freed; until then every read costs mmap, mremap and
    munmap (three system calls beside the recv: measured at 5x the CPU of
    the read alone, and 13 -> 37 us per request in the client benchmark,
    depending on what a program happened to allocate at start-up). A block
    freed here raises the threshold for good; elsewhere it costs nothing."""
    block = bytearray(1 << 20)
    del block


_warm_allocator()


def _reset() -> OSError:
    return ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))


def _set_nodelay(sock: socket.socket) -> None:
    # Tried rather than asked for: reading sock.family builds an enum (a
    # cost on every connection); a socket without TCP refuses (AF_UNIX).
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # not TCP, or the peer already went away


class _SlotSetting:
    """A class attribute (a setting) that an instance may set for itself,
    kept in a slot: the instance dict that setting it would otherwise
    create costs about 300 bytes, on every connection of a server that
    sets it (HttpServer sets ``half_close``). Set on a class, the value
    replaces this descriptor, and instances of that class keep their own
    values in their dict, as for any class attribute."""

    __slots__ = ("slot", "default")

    def __init__(self, slot: Any, default: Any) -> None:
        self.slot = slot
        self.default = default

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return self.default
        try:
            return self.slot.__get__(obj, cls)
        except AttributeError:
            return self.default  # never set on this instance

    def __set__(self, obj: Any, value: Any) -> None:
        self.slot.__set__(obj, value)

    def __delete__(self, obj: Any) -> None:
        self.slot.__delete__(obj)


class TcpConnection(EventSource):
    """A TCP connection.

    Emits: data(bytes), pause(paused: bool) for the write side, end() (the
    peer has finished sending; only with ``half_close``), close().

    Connections start paused: call ``pause(False)`` to get ``data`` events.
    ``write_buffered`` is the number of bytes queued for sending.

    Public attributes: ``socket`` (the ``socket.socket``; an
    ``ssl.SSLSocket`` under TLS), ``host`` and ``port`` (what ``connect``
    was given, the name as ``str``, on a client's connection; the peer's IP
    address and port on a server's), ``peer_address`` (the peer's socket
    address, kept after the close), ``tcp_connected``, ``error`` (the
    ``OSError`` that ended the connection; None while it is open and after
    an orderly end), and ``sent_at``: the time, on the loop's clock, when
    the socket last took some of the queued output (0.0 before any was
    queued), from which a bound on a peer that stops reading is measured.

    ``half_close`` (class attribute, settable per connection, default
    False) chooses what the peer's end of file does. False: reading stops,
    what is queued is sent, and the connection closes (``close``). True:
    ``end`` is emitted instead, once, after the last ``data``; the
    connection stays open for ``write``, and the application ends it with
    ``close()`` (flushed) or ``abort()``. A reset or a failed write still
    closes it, and so does the peer going away entirely (HUP). If
    ``close()`` was called before the end of file came, ``end`` is not
    emitted.
    """

    __slots__ = (
        "socket", "host", "port", "tcp_connected", "error", "_loop", "_fd",
        "_interest", "_buffer", "_recv", "_send", "_closing", "_read_eof",
        "_write_paused", "_server", "_hup", "_ended", "_peer", "sent_at", "_half_close",
        "_linger", "_eof_out",
    )

    # An event's lone listener is kept as itself (see thor.events): 'data'
    # is emitted once per read.
    _unwrap_single = True

    # Output backpressure: pause(True) once more than write_high bytes are
    # queued; pause(False) once fewer than write_low remain. The kernel's
    # send buffer already holds hundreds of KiB, so 64 KiB more in user
    # space keeps the socket busy while bounding memory per slow peer (as
    # asyncio's defaults do); the gap between the marks stops a writer from
    # flapping on every send.
    write_high = 65536
    write_low = 16384
    # One recv per readable event, sized as asyncio's (256 KiB): large enough
    # for streaming throughput, small enough to keep the loop fair.
    read_size = 262144
    # See the class docstring: False keeps the classic "EOF closes".
    half_close = False

    def __init__(
        self, sock: socket.socket, host: str, port: int, loop: Optional[LoopBase] = None
    ) -> None:
        EventSource.__init__(self, loop)
        self.socket = sock
        self.host = host
        self.port = port
        self.tcp_connected = True
        self.error: Optional[OSError] = None
        self._buffer = bytearray()
        self._closing = False
        self._read_eof = False
        self._write_paused = False
        self._server: Optional[TcpServer] = None
        self._hup = False  # HUP seen while paused: fd not watched for now
        self._ended = False  # 'end' emitted: EOF does not close when drained
        # The peer's address: set by whoever made the connection (from
        # accept() or getpeername() at connect time), else asked for on
        # first use.
        self._peer: Optional[Address] = None
        self.sent_at = 0.0
        self._linger = 0.0  # close(linger=): seconds to drop input after
        self._eof_out = False  # write_eof(): output ends, input goes on
        sock.setblocking(False)
        _set_nodelay(sock)
        self._recv: Callable[[int], Optional[bytes]] = sock.recv
        self._send: Callable[[Any], int] = sock.send
        self.register_fd(sock.fileno())

    def __repr__(self) -> str:
        state = []
        if not self.tcp_connected:
            state.append("closed")
        elif self._eof_out:
            state.append("output ended")
        elif self._closing:
            state.append("closing")
        elif self._ended:
            state.append("peer ended")
        if self._interest & READ == 0:
            state.append("paused")
        if self._buffer:
            state.append("%d bytes queued" % len(self._buffer))
        return "<%s %s:%s %s>" % (
            self.__class__.__name__, self.host, self.port, ", ".join(state) or "open",
        )

    @property
    def write_buffered(self) -> int:
        """How many bytes are queued, waiting for the socket to take them."""
        return len(self._buffer)

    @property
    def peer_address(self) -> Optional[Address]:
        """The peer's socket address, as ``getpeername()`` gives it:
        ``(ip, port)``, or ``(ip, port, flowinfo, scope_id)`` over IPv6.
        Taken when the connection was made, so it is still there after the
        close; None if the socket could not tell."""
        peer = self._peer
        if peer is None and self.tcp_connected:
            try:
                peer = self._peer = self.socket.getpeername()
            except OSError:
                return None
        return peer

    def _pending_error(self) -> Optional[OSError]:
        """The error the kernel holds for the socket (SO_ERROR), if any."""
        try:
            code = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError as why:
            return why
        # OSError(code, ...) is the errno's own subclass (ConnectionResetError...).
        return OSError(code, os.strerror(code)) if code else None

    # -- the loop's side ---------------------------------------------------

    def _fd_ready(self, mask: int) -> None:
        got_data = False
        if mask & READ and self._interest & READ:
            try:
                data = self._recv(self.read_size)
            except _BLOCKED:
                data = None
            except OSError as why:  # ECONNRESET, ETIMEDOUT, ...
                self._close_now(True, error=why)
                return
            if data:
                self.emit("data", data)
                if mask == READ:
                    return  # the usual event: nothing more to look at
                got_data = True
            elif data is not None:
                if mask & ERROR:
                    # An end with an error pending is a reset that the read
                    # reported as an end: TLS does (OpenSSL takes the errno
                    # and says "EOF"). No 'end', no goodbye: it is over.
                    self._close_now(True, error=self._pending_error() or _reset())
                    return
                self._peer_eof()
                if mask & (HUP | INVALID) and self._ended:
                    # Writing is over too; with no interest left, the loop
                    # would drop the fd and no event would ever close it.
                    self._close_now(True, error=self._pending_error())
                return
        if mask & WRITE and self._interest & WRITE:
            self._flush()
        if mask & (ERROR | HUP | INVALID) and self.tcp_connected:
            if mask & (ERROR | INVALID):
                self._close_now(True, error=self._pending_error())
            elif not self._interest & READ:
                self._hup_while_paused()
            elif not got_data:
                self._close_now(True, error=self._pending_error())
            # else: read the rest (and the EOF) on the next pass

    def _hup_while_paused(self) -> None:
        # The peer is gone, but may have left data that the application,
        # having paused, is not reading yet. Anything queued cannot be sent
        # (the send fails and closes); otherwise stop watching the fd, as
        # the HUP would be reported on every pass, until pause(False).
        if self._buffer:
            self._flush()
        if not self.tcp_connected:
            return
        if self._read_eof:
            # After the end of file (half_close) nothing is left to read:
            # waiting, unwatched, for a write that may never come would
            # keep a dead connection, and its 'close', forever.
            self._close_now(True, error=self._pending_error())
        elif not self._hup:
            self._hup = True
            self._loop._unregister_fd(self._fd, self)  # type: ignore[arg-type]  # open: has an fd

    def _flush(self) -> None:
        buffer = self._buffer
        try:
            sent = self._send(buffer)
        except _BLOCKED:
            return
        except OSError as why:  # EPIPE, ECONNRESET, ...
            self._close_now(True, error=why)
            return
        if sent:
            del buffer[:sent]
            # Only here, where output waited: the direct write in write()
            # is the hot path, and a send-progress bound needs no record
            # while nothing waits.
            self.sent_at = self._loop._clock()
        if not buffer:
            self.event_del("fd_writable")
            if self._closing or self._read_eof and not self._ended:
                if self._eof_out and not self._read_eof:
                    self._shut_write()  # write_eof: reading goes on
                elif self._linger:
                    self._start_linger()
                else:
                    self._close_now(True, True)
                return
        if self._write_paused and len(buffer) < self.write_low:
            self._write_paused = False
            self.emit("pause", False)

    def _peer_eof(self) -> None:
        self._read_eof = True
        self.event_del("fd_readable")
        if self.half_close and not self._closing and self._may_half_close():
            self._ended = True
            self.emit("end")
        elif not self._buffer:
            self._close_now(True, True)

    def _may_half_close(self) -> bool:
        """Whether the transport lets this side go on sending after the
        peer's end (TLS before 1.3 does not)."""
        return True

    def _close_now(
        self, in_dispatch: bool, graceful: bool = False, error: Optional[OSError] = None
    ) -> None:
        if not self.tcp_connected:
            return
        if error is not None:
            self.error = error
        self.tcp_connected = False
        self._closing = True
        self.unregister_fd()
        self._buffer = bytearray()
        self._release(graceful)
        server = self._server
        if server is not None:
            self._server = None
            server._forget(self)
        if in_dispatch:
            self.emit("close")
        else:
            self._loop.schedule(0, self.emit, "close")

    def _release(self, graceful: bool) -> None:
        """Close the socket; ``graceful`` when the connection ended without
        an error or an abort (TLS then says goodbye first)."""
        try:
            self.socket.close()
        except OSError:
            pass

    # -- the application's side ---------------------------------------------

    def write(self, data: Union[bytes, bytearray, memoryview, str]) -> None:
        """Send ``data`` (bytes-like, or ``str`` sent as UTF-8) without
        blocking; what the socket does not take now is queued. A no-op once
        the connection is closing or closed."""
        if self._closing:
            return
        if data.__class__ is not bytes:
            if isinstance(data, str):
                data = data.encode("utf-8")
            elif isinstance(data, memoryview) and data.itemsize != 1:
                data = data.cast("B")
        if not data:
            return
        buffer = self._buffer
        if buffer:
            buffer += data
        else:
            try:
                sent = self._send(data)
            except _BLOCKED:
                sent = 0
            except OSError as why:
                self._close_now(False, error=why)
                return
            if sent == len(data):
                return
            if sent:
                buffer += memoryview(data)[sent:]
            else:
                buffer += data
            self.event_add("fd_writable")
        if not self._write_paused and len(buffer) > self.write_high:
            self._write_paused = True
            self.emit("pause", True)

    def pause(self, paused: bool) -> None:
        """Stop (True) or start (False) ``data`` events."""
        if paused:
            self.event_del("fd_readable")
        elif (not self._closing or self._eof_out) and not self._read_eof:
            if self._hup:
                # Watch the fd again; the HUP comes back with READ.
                self._hup = False
                self._interest |= READ
                self._loop._register_fd(self._fd, self._interest, self)  # type: ignore[arg-type]  # open: has an fd
            else:
                self.event_add("fd_readable")

    def close(self, linger: Optional[float] = None) -> None:
        """Close once everything queued has been sent. No more ``data``
        events are emitted; ``close`` follows from the loop.

        ``linger`` (seconds): the peer may still be sending (an upload
        refused half-way, requests after the last answered one). Closing a
        socket with input unread makes the kernel reset the connection,
        and a reset can destroy what the peer has not read yet, the answer
        included (RFC 9112 9.6). So once the output is sent, the write side
        is shut (the peer reads the end of it), and what the peer still
        sends is read and dropped until it closes its side, or for at most
        ``linger`` seconds."""
        if self._closing:
            if not self._eof_out:
                return
            self._eof_out = False  # after write_eof: now the input too
        self._closing = True
        if linger is not None and linger > 0 and not self._read_eof:
            self._linger = linger
        if self._buffer:
            self.event_del("fd_readable")
        elif self._linger:
            self._start_linger()
        else:
            self._close_now(False, True)

    def can_write_eof(self) -> bool:
        """Whether ``write_eof`` can end the output alone: True for TCP,
        False under TLS (see ``write_eof``)."""
        return True

    def write_eof(self) -> None:
        """End the output, keeping the input open (a TCP half-close; the
        names are asyncio's): once everything queued has been sent, the
        write side is shut (the peer reads the end of file), while ``data``
        events go on (``pause`` still controls them). ``write`` after it
        does nothing, as after ``close``. When the peer's end of file has
        come too (before or after), nothing is left in either direction
        and the connection closes: ``close`` is emitted, after ``end``
        only if that was emitted before ``write_eof``. ``close()`` or
        ``abort()`` after it end the input too. A no-op once the
        connection is closing or closed.

        TLS has no half-close that Python's ssl module can make (sending
        close_notify and reading on: ``unwrap`` also waits for the peer's,
        and would take its data as an error), so under TLS
        (``can_write_eof()`` False) this raises NotImplementedError, as
        asyncio's TLS transports do, and sends nothing: the caller
        decides between ``close`` and carrying on."""
        if not self.can_write_eof():
            raise NotImplementedError("TLS cannot end its output alone: close() instead")
        if self._closing:
            return
        self._closing = True
        self._eof_out = True
        if self._buffer:
            return  # _flush shuts the write side once it is all sent
        if self._read_eof:
            self._close_now(False, True)
        else:
            self._shut_write()

    def _start_linger(self) -> None:
        """Everything is sent: shut the write side, and hand the fd to a
        _Lingerer that drops input until the peer's end or the bound (the
        hot read path never looks at this)."""
        self._shut_write()
        fd = self._fd
        if fd is None or not self.tcp_connected:
            return
        lingerer = _Lingerer(self)
        self._loop._unregister_fd(fd, self)
        self._interest = 0
        try:
            self._loop._register_fd(fd, READ, lingerer)
        except (OSError, ValueError):
            self._close_now(False, True)
            return
        lingerer.timer = self._loop.schedule(self._linger, lingerer.finish)

    def _shut_write(self) -> None:
        """Send the end of the output (FIN), input still open."""
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # gone already: the close that follows tells

    def abort(self) -> None:
        """Close at once, dropping anything queued, with a reset (RST)
        rather than an orderly end: the peer can tell that what it got is
        cut short (RFC 9112 section 8: a close-delimited body that ends
        with a FIN reads as complete). ``close`` follows from the loop."""
        if self.tcp_connected:
            try:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            except OSError:
                pass  # already gone: nothing to reset
        self._close_now(False)


class _Lingerer:
    """A closing TcpConnection's fd while it lingers (see close): reads
    and drops input until the peer's end, an error or the time bound, then
    closes the connection (an orderly close: its output was all sent)."""

    __slots__ = ("conn", "timer")

    def __init__(self, conn: TcpConnection) -> None:
        self.conn = conn
        self.timer: Optional[ScheduledEvent] = None

    def _fd_ready(self, mask: int) -> None:
        recv = self.conn._recv
        for _ in range(16):  # at most 1 MiB a pass: the loop stays fair
            try:
                data = recv(65536)
            except _BLOCKED:
                data = None
            except OSError:
                self.finish()
                return
            if data is None:
                if mask & (ERROR | HUP | INVALID):
                    self.finish()
                return
            if not data:
                self.finish()  # the peer's end: nothing more is coming
                return

    def finish(self) -> None:
        conn = self.conn
        if self.timer is not None:
            self.timer.delete()
            self.timer = None
        if conn._fd is not None:
            conn._loop._unregister_fd(conn._fd, self)
        conn._close_now(False, True)


# Set per connection without an instance dict (see _SlotSetting).
setattr(TcpConnection, "half_close", _SlotSetting(vars(TcpConnection)["_half_close"], False))


class TcpServer(EventSource):
    """A TCP server listening on ``host``:``port`` (port 0 picks a free one;
    ``port`` is then the port the system chose).

    Emits: start(), connect(TcpConnection), stop().

    Accepted connections start paused. ``sock``, when given, is a socket
    already bound and listening (made by a supervisor that forks workers,
    or inherited from systemd); it is served as it is and ``host``,
    ``port``, ``reuse_port`` and ``backlog`` are then not used for binding
    (``host`` and ``port`` are read from the socket).
    """

    # Accepting is bounded per readable event so that a flood of new
    # connections cannot starve the ones already being served.
    accept_batch = 64
    # How long to stop accepting after the process runs out of descriptors
    # or memory; the pending connections wait in the kernel's backlog.
    accept_backoff = 0.1
    connection_class: Type[TcpConnection] = TcpConnection

    def __init__(
        self,
        host: Union[str, bytes, None],
        port: Union[int, str],
        loop: Optional[LoopBase] = None,
        *,
        reuse_port: bool = False,
        backlog: int = 511,
        sock: Optional[socket.socket] = None,
    ) -> None:
        EventSource.__init__(self, loop)
        if sock is not None:
            if sock.type != socket.SOCK_STREAM:
                raise ValueError("TcpServer needs a SOCK_STREAM socket")
            sock.setblocking(False)
            self.sock = sock
            host = str(sock.getsockname()[0])
        else:
            host = dns.parse_host(host) if host is not None else ""
            self.sock = _listen(host, int(port), reuse_port, backlog)
        bound = self.sock.getsockname()
        self._socket_args = (int(self.sock.family), int(self.sock.type), self.sock.proto)
        self.host: str = host
        self.port: int = bound[1]
        # Accepted connections, and (TLS) handshakes in progress: anything
        # with abort().
        self._connections: Set[Any] = set()
        self._accepting = True
        self._graceful = False
        self._backoff: Optional[ScheduledEvent] = None
        self.register_fd(self.sock.fileno(), "fd_readable")
        self._loop.schedule(0, self.emit, "start")

    def __repr__(self) -> str:
        return "<%s %s:%s %d connections%s>" % (
            self.__class__.__name__, self.host, self.port, len(self._connections),
            "" if self._accepting else ", not accepting",
        )

    def _fd_ready(self, mask: int) -> None:
        listening = self.sock
        # socket.accept() converts the listening socket's family and type
        # to enums for each connection it makes; with _accept (CPython's,
        # what accept() calls) the new socket is made here from the values
        # read once.
        raw_accept = getattr(listening, "_accept", None)
        if raw_accept is not None:
            family, kind, proto = self._socket_args
        else:
            accept = listening.accept
        for _ in range(self.accept_batch):
            if not self._accepting:
                return
            try:
                if raw_accept is not None:
                    fd, address = raw_accept()
                    sock = socket.socket(family, kind, proto, fileno=fd)
                else:
                    sock, address = accept()
            except _BLOCKED:
                return
            except OSError as why:
                if why.errno in _ACCEPT_EXHAUSTED:
                    self._back_off()
                    return
                if why.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # that one client's problem; the next may be fine
                # Unexpected: report it, but pause first so that a listening
                # socket stuck in an error state does not spin the loop.
                self._back_off()
                raise
            self._accepted(sock, address)

    def _accepted(self, sock: socket.socket, address: Address) -> None:
        try:
            conn = self.connection_class(sock, address[0], address[1], self._loop)
        except OSError:
            sock.close()
            return
        conn._peer = address  # what getpeername() would say, without asking
        self._serve(conn)

    def _serve(self, conn: TcpConnection) -> None:
        conn._server = self
        self._connections.add(conn)
        self.emit("connect", conn)

    def _back_off(self) -> None:
        self.event_del("fd_readable")
        self._backoff = self._loop.schedule(self.accept_backoff, self._resume)

    def _resume(self) -> None:
        self._backoff = None
        if self._accepting:
            self.event_add("fd_readable")

    def _forget(self, conn: Any) -> None:
        self._connections.discard(conn)
        if self._graceful and not self._connections:
            self._graceful = False
            self._loop.schedule(0, self.emit, "stop")

    def _stop_accepting(self) -> bool:
        if not self._accepting:
            return False
        self._accepting = False
        if self._backoff is not None:
            self._backoff.delete()
            self._backoff = None
        self.unregister_fd()
        try:
            self.sock.close()
        except OSError:
            pass
        return True

    def close(self) -> None:
        """Stop accepting connections and close the listening socket;
        ``stop`` follows from the loop. Open connections are not touched."""
        if self._stop_accepting() or self._graceful:
            self._graceful = False
            self._loop.schedule(0, self.emit, "stop")

    shutdown = close

    def graceful_shutdown(self) -> None:
        """Stop accepting now; emit ``stop`` once every connection this
        server accepted has closed."""
        if not self._stop_accepting():
            return
        if self._connections:
            self._graceful = True
        else:
            self._loop.schedule(0, self.emit, "stop")


def server_listen(
    host: Union[str, bytes, None], port: Union[int, str], backlog: Optional[int] = None
) -> socket.socket:
    """A non-blocking socket listening on ``host``:``port`` (Thor 0.17's
    name), as TcpServer makes it; ``TcpServer(..., sock=...)`` serves it."""
    return _listen(
        dns.parse_host(host) if host is not None else "", int(port), False, backlog or 511
    )


def _listen(host: str, port: int, reuse_port: bool, backlog: int) -> socket.socket:
    family = dns.literal_family(host) if host else None
    candidates: List[Tuple[int, Any]]
    if family is not None:
        sockaddr = (host, port, 0, 0) if family == socket.AF_INET6 else (host, port)
        candidates = [(family, sockaddr)]
    else:
        # Binding happens before the loop runs the server, so a blocking
        # lookup of a local name here does not stall any traffic.
        candidates = [
            (info[0], info[4])
            for info in socket.getaddrinfo(
                host or None, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
            )
        ]
    error: Optional[OSError] = None
    for family, sockaddr in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(sockaddr)
            sock.listen(backlog)
            sock.setblocking(False)
            return sock
        except OSError as why:
            sock.close()
            error = why
    if error is None:  # getaddrinfo never answers with nothing; just in case
        error = OSError(errno.EADDRNOTAVAIL, "no address to listen on")
    raise error


class TcpClient(EventSource):
    """Makes TCP connections.

    Emits: connect(TcpConnection), connect_error(errtype, error) where
    ``errtype`` is ``socket.error`` (``OSError``) with an errno (``ETIMEDOUT``
    when the timeout passes), ``socket.gaierror`` with a resolver code, or
    ``PermissionError`` with ``errno.EACCES`` when ``check_ip`` refused
    every address.

    Each ``connect()`` is independent; a client may have several in flight.

    ``check_ip`` (class attribute, settable per client; None by default):
    a callable given each address a name resolves to, as an IP string (no
    port, no brackets), before any socket is made; it returns True to allow
    the address. Refused addresses are skipped. If it raises, the exception
    goes to the loop's exception handler and the address counts as refused.
    On a class, it is a method (``def check_ip(self, ip)``) or a
    staticmethod, as Python binds it.
    """

    connection_class: Type[TcpConnection] = TcpConnection
    check_ip: Optional[Callable[[str], bool]] = None

    def __init__(self, loop: Optional[LoopBase] = None) -> None:
        EventSource.__init__(self, loop)

    def connect(
        self,
        host: Union[str, bytes],
        port: Union[int, str],
        timeout: Optional[float] = None,
    ) -> None:
        """Connect to ``port`` on ``host`` (a name or IP literal; names are
        resolved off the loop and each address is tried in turn).
        ``timeout`` (seconds) bounds the whole attempt; None or 0: none."""
        if timeout and not timeout > 0:
            raise ValueError("timeout must be positive (or None), not %r" % (timeout,))
        _Connector(self, host, port, timeout)

    # Called by _Connector with a connected socket; TlsClient overrides it to
    # run a handshake first.
    def _established(self, connector: _Connector, sock: socket.socket) -> None:
        try:
            conn = self.connection_class(sock, connector.host, connector.port, self._loop)
        except OSError as why:
            sock.close()
            connector.fail(OSError, why.errno or errno.EIO)
            return
        connector.succeed(conn)


class _Connector(EventSource):
    """One ``connect()`` in progress: resolve, try each address, report once."""

    __slots__ = (
        "client", "host", "port", "_addresses", "_sock", "_timer", "_done",
        "_last_errno", "_cancel",
    )

    def __init__(
        self,
        client: TcpClient,
        host: Union[str, bytes],
        port: Union[int, str],
        timeout: Optional[float],
    ) -> None:
        EventSource.__init__(self, client._loop)
        self.client = client
        # As given until the name is resolved; then parsed (str, int).
        self.host: Any = host
        self.port: Any = port
        self._addresses: Iterator[AddrInfo] = iter(())
        self._sock: Optional[socket.socket] = None
        self._done = False
        self._last_errno = errno.ECONNREFUSED
        # Something to call to give up a later stage (a TLS handshake).
        self._cancel: Optional[Callable[[], None]] = None
        self._timer: Optional[ScheduledEvent] = (
            self._loop.schedule(timeout, self._timed_out) if timeout else None
        )
        dns.lookup(host, port, self._resolved, self._loop)

    def _resolved(self, result: Union[Sequence[AddrInfo], Exception]) -> None:
        if self._done:
            return
        if isinstance(result, Exception):
            if isinstance(result, socket.gaierror):
                self.fail(socket.gaierror, result.errno)
            else:
                self.fail(OSError, getattr(result, "errno", None) or errno.EINVAL)
            return
        self.host = dns.parse_host(self.host)
        self.port = int(self.port)  # lookup() accepted it
        check = self.client.check_ip
        if check is not None:
            result = [info for info in result if self._allowed(check, info[4][0])]
            if not result:
                self.fail(PermissionError, errno.EACCES)
                return
        self._addresses = iter(result)
        self._try_next()

    def _allowed(self, check: Callable[[str], bool], address: str) -> bool:
        try:
            return bool(check(address))
        except Exception as exc:
            # A broken policy refuses rather than lets through; the
            # exception is reported, not lost.
            self._loop.exception_handler(self._loop, exc, check)
            return False

    def _try_next(self) -> None:
        for family, type_, proto, _, sockaddr in self._addresses:
            try:
                sock = socket.socket(family, type_, proto)
            except OSError as why:
                self._last_errno = why.errno or errno.EINVAL
                continue
            try:
                sock.setblocking(False)
                code = sock.connect_ex(sockaddr)
            except OSError as why:
                code = why.errno or errno.EINVAL
            except (OverflowError, TypeError, ValueError):
                code = errno.EINVAL  # an address the socket cannot take
            if code == 0:
                self.client._established(self, sock)
                return
            if code in _CONNECT_PENDING:
                self._sock = sock
                self.register_fd(sock.fileno(), "fd_writable")
                return
            sock.close()
            self._last_errno = code
        self.fail(OSError, self._last_errno)

    def _fd_ready(self, mask: int) -> None:
        sock = self._sock
        if sock is None:
            return  # not reached: finishing unregisters the fd too
        self.unregister_fd()
        self._sock = None
        try:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError as why:
            code = why.errno or errno.EINVAL
        if code == 0 and mask & (ERROR | HUP | INVALID):
            code = errno.ECONNRESET
        if code:
            sock.close()
            self._last_errno = code
            self._try_next()
        else:
            self.client._established(self, sock)

    def _timed_out(self) -> None:
        self._timer = None
        self.fail(OSError, errno.ETIMEDOUT)

    def _finish(self) -> bool:
        if self._done:
            return False
        self._done = True
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        if self._sock is not None:
            self.unregister_fd()
            self._sock.close()
            self._sock = None
        if self._cancel is not None:
            cancel, self._cancel = self._cancel, None
            cancel()
        return True

    def fail(self, errtype: Type[Exception], error: Any) -> None:
        if self._finish():
            self.client.emit("connect_error", errtype, error)

    def succeed(self, conn: TcpConnection) -> None:
        self._cancel = None
        if self._finish():
            try:
                conn._peer = conn.socket.getpeername()
            except OSError:
                pass  # gone already: peer_address will say None
            self.client.emit("connect", conn)
        else:
            conn.abort()
