"""TLS: the TCP classes with an ``ssl`` layer, handshakes run without
blocking the loop.

Theory of operation
-------------------
- The handshake is its own small fd source (``_TlsHandshake``): it calls
  ``do_handshake()`` whenever the socket is ready the way OpenSSL last
  asked for (``SSLWantReadError`` / ``SSLWantWriteError``), then hands the
  socket on. On the client it runs inside the connect timeout; on the
  server it has ``TlsServer.handshake_timeout``.
- OpenSSL returns at most one record (16 KiB of plain text) per read, and
  may hold decrypted bytes the kernel no longer reports as readable
  (``pending()``); a readable event therefore reads records until OpenSSL
  wants more from the socket (or ``read_size`` is reached) and then drains
  ``pending()``, or the data would stall.
- Python puts OpenSSL in partial-write mode, so one ``send`` writes one
  record; writes loop until the socket is full. A write that OpenSSL could
  not finish must be retried with the same bytes at the front, which the
  connection's queue guarantees.
- The end of the peer's data (close_notify, or the TCP end without it) may
  be taken off the socket by a read that also returned data; the socket
  then need never be readable again, so the connection reads once more on
  the next pass to find it.
- ``half_close`` is honoured under TLS 1.3, where close_notify closes only
  the sender's side (RFC 8446 section 6.1). Before 1.3 the answer to
  close_notify must be one's own at once (RFC 5246 section 7.2.1), and an
  end without close_notify (a truncation) may leave OpenSSL unable to
  write; in both cases the end closes as it does without ``half_close``.
"""

from __future__ import annotations

import errno
import ssl
import sys
import weakref
from functools import partial
from typing import TYPE_CHECKING

from thor.loop import ERROR, HUP, INVALID, READ, EventSource
from thor.tcp import TcpClient, TcpConnection, TcpServer

if TYPE_CHECKING:
    import socket
    from typing import Any, Callable, Optional, Tuple, Type, Union

    from thor.loop import LoopBase, ScheduledEvent
    from thor.tcp import _Connector
    from thor.types import Address

    # What a handshake reports: the socket, or None and the error.
    HandshakeDone = Callable[[Optional[ssl.SSLSocket], Optional[Exception]], None]

__all__ = ["TlsClient", "TlsConnection", "TlsServer", "server_context", "HTTP_ALPN"]

#: The ALPN protocols thor's HTTP server offers, best first (RFC 7301).
HTTP_ALPN = ("h2", "http/1.1")

_WANT = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
# The largest plain-text record (RFC 8446 section 5.1): one read's worth.
_RECORD = 16384
# Versions whose close_notify must be answered by closing (RFC 5246 7.2.1).
_CLOSE_ANSWERS_CLOSE = frozenset(("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2"))
# Before 3.10 the ssl module fails an empty write after any end of the
# peer's data (SSL_write, not SSL_write_ex), so it cannot tell a
# close_notify from a truncation: half_close is not honoured there.
_WRITE_PROBE_TELLS = sys.version_info >= (3, 10)

_default_context: Optional[ssl.SSLContext] = None


def default_context() -> ssl.SSLContext:
    """The shared client context: ``ssl.create_default_context()``
    (certificate and host name verified against the system trust store),
    made once because loading the trust store is slow."""
    global _default_context
    if _default_context is None:
        _default_context = ssl.create_default_context()
    return _default_context


def server_context(
    certfile: str, keyfile: Optional[str] = None, alpn: Optional[Tuple[str, ...]] = HTTP_ALPN,
) -> ssl.SSLContext:
    """A server context with ``certfile`` (and ``keyfile``) loaded, offering
    ``alpn`` (by default ``h2`` and ``http/1.1``; None: no ALPN)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


class TlsConnection(TcpConnection):
    """A TLS connection; the same interface as ``TcpConnection``.

    Emits: data(bytes), pause(paused: bool) for the write side, end()
    (with ``half_close``, under TLS 1.3 only), close().
    """

    __slots__ = ("_eof_held",)

    socket: ssl.SSLSocket

    def __init__(
        self, sock: ssl.SSLSocket, host: str, port: int, loop: Optional[LoopBase] = None
    ) -> None:
        TcpConnection.__init__(self, sock, host, port, loop)
        # OpenSSL has taken the peer's end off the socket: see _tls_recv.
        self._eof_held = False
        # partial, not bound methods: no reference cycle through self.
        self._recv = partial(_tls_recv, sock, weakref.ref(self))
        self._send = partial(_tls_send, sock)

    @property
    def alpn_protocol(self) -> Optional[str]:
        """The protocol ALPN selected (e.g. "h2"), or None."""
        try:
            return self.socket.selected_alpn_protocol()
        except (OSError, ValueError):
            return None

    def pause(self, paused: bool) -> None:
        TcpConnection.pause(self, paused)
        if not paused and self._interest & READ and (
            self._eof_held or self.socket.pending()
        ):
            # Plain text OpenSSL already holds (read along with the end of
            # the handshake), or an end it already read, would never make
            # the socket readable again.
            self._loop.schedule(0, self._fd_ready, READ)

    def _hold_eof(self) -> None:
        self._eof_held = True
        self._loop.schedule(0, self._fd_ready, READ)

    def _may_half_close(self) -> bool:
        sock = self.socket
        if sock.version() in _CLOSE_ANSWERS_CLOSE or not _WRITE_PROBE_TELLS:
            return False
        # An end without close_notify is a truncation, after which OpenSSL
        # 3 refuses to write: an empty write tells, before 'end' promises a
        # way back to the peer that does not exist.
        try:
            sock.send(b"")
        except (OSError, ValueError):
            return False
        return True

    def can_write_eof(self) -> bool:
        # See TcpConnection.write_eof: Python's ssl cannot half-close.
        return False

    def _shut_write(self) -> None:
        # A TCP half-close under TLS would tear its records (the SSL object
        # forgets the socket); a lingering close reads on through TLS and
        # says goodbye (close_notify) in _release.
        pass

    def _release(self, graceful: bool) -> None:
        if graceful:
            # Send close_notify so that the peer can tell an end from a
            # truncation; do not wait for the peer's.
            try:
                self.socket.unwrap()
            except (OSError, ValueError):
                pass
        TcpConnection._release(self, graceful)


def _tls_recv(
    sock: ssl.SSLSocket, conn_ref: weakref.ref[TlsConnection], size: int
) -> Optional[bytes]:
    """One readable event's worth of plain text: None when OpenSSL has no
    complete record yet, b"" at the end."""
    try:
        data = sock.recv(_RECORD)
    except _WANT:
        return None
    if not data:
        return data
    if len(data) < _RECORD and not sock.pending():
        return data  # the common case: one small record
    chunks = [data]
    total = len(data)
    try:
        while total < size:
            chunk = sock.recv(_RECORD)
            if not chunk:
                # OpenSSL returns the end again on the next read, but the
                # socket may never be readable again to prompt one.
                conn = conn_ref()
                if conn is not None:
                    conn._hold_eof()
                break
            chunks.append(chunk)
            total += len(chunk)
        pending = sock.pending()
        while pending:
            chunk = sock.recv(pending)
            if not chunk:
                break
            chunks.append(chunk)
            pending = sock.pending()
    except _WANT:
        pass
    except OSError:
        pass  # reported by the next read; deliver what arrived first
    return b"".join(chunks)


def _tls_send(sock: ssl.SSLSocket, data: Any) -> int:
    """Send records until the socket is full; BlockingIOError if none fit."""
    send = sock.send
    size = len(data)
    total = 0
    with memoryview(data) as view:
        while total < size:
            try:
                total += send(view[total:])
            except _WANT:
                break
    if not total and size:
        raise BlockingIOError
    return total


class _TlsHandshake(EventSource):
    """Runs a non-blocking handshake on ``sock`` (an ``SSLSocket``), then
    calls ``done(sock, None)``, or ``done(None, error)`` after closing it."""

    __slots__ = ("sock", "_done", "_timer")

    def __init__(
        self,
        sock: ssl.SSLSocket,
        loop: LoopBase,
        done: HandshakeDone,
        timeout: Optional[float] = None,
    ) -> None:
        EventSource.__init__(self, loop)
        self.sock: Optional[ssl.SSLSocket] = sock
        self._done: Optional[HandshakeDone] = done
        self._timer: Optional[ScheduledEvent] = (
            loop.schedule(timeout, self._timed_out) if timeout else None
        )
        self.register_fd(sock.fileno())

    def start(self) -> None:
        """Begin; ``done`` may be called before this returns."""
        self._step()

    def _fd_ready(self, mask: int) -> None:
        if self.sock is not None:
            self._step(mask)

    def _step(self, mask: int = 0) -> None:
        try:
            self.sock.do_handshake()  # type: ignore[union-attr]  # None only once finished
        except ssl.SSLWantReadError:
            if mask & (ERROR | HUP | INVALID):
                self._finish(ConnectionResetError(
                    errno.ECONNRESET, "connection lost in the handshake"
                ))
            else:
                self.event_del("fd_writable")
                self.event_add("fd_readable")
        except ssl.SSLWantWriteError:
            self.event_del("fd_readable")
            self.event_add("fd_writable")
        except (OSError, ValueError) as why:  # SSLError is an OSError
            self._finish(why)
        else:
            self._finish(None)

    def _timed_out(self) -> None:
        self._timer = None
        self._finish(TimeoutError(errno.ETIMEDOUT, "TLS handshake timed out"))

    def cancel(self) -> None:
        """Give up: close the socket; ``done`` is not called."""
        self._done = None
        self._finish(ConnectionAbortedError(errno.ECONNABORTED, "cancelled"))

    abort = cancel  # so that a server's connections can all be aborted alike

    def _finish(self, error: Optional[Exception]) -> None:
        sock = self.sock
        if sock is None:
            return
        self.sock = None
        self.unregister_fd()
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        done, self._done = self._done, None
        if error is not None:
            try:
                sock.close()
            except OSError:
                pass
            sock = None
        if done is not None:
            done(sock, error)


class TlsClient(TcpClient):
    """Makes TLS connections; the same interface as ``TcpClient``.

    Emits: connect(TlsConnection), connect_error(errtype, error), where a
    failed handshake (including an untrusted certificate or a host name it
    does not cover) gives ``errtype`` ``ssl.SSLError`` and the ``SSLError``
    itself as ``error``.

    ``tls_context`` (the argument, else the class attribute, else
    ``ssl.create_default_context()``) is the ``ssl.SSLContext`` used. The
    server name sent (SNI) and checked is the host given to ``connect``.
    """

    connection_class: Type[TcpConnection] = TlsConnection
    tls_context: Optional[ssl.SSLContext] = None

    def __init__(
        self, loop: Optional[LoopBase] = None, tls_context: Optional[ssl.SSLContext] = None
    ) -> None:
        TcpClient.__init__(self, loop)
        if tls_context is not None:
            self.tls_context = tls_context

    def _established(self, connector: _Connector, sock: socket.socket) -> None:
        context = self.tls_context or default_context()
        try:
            # Python leaves SNI out by itself when the name is an IP literal,
            # and checks the certificate's IP addresses instead.
            tls_sock = context.wrap_socket(
                sock, server_hostname=connector.host or None,
                do_handshake_on_connect=False,
            )
        except (OSError, ValueError) as why:
            sock.close()
            connector.fail(*_client_error(why))
            return

        def done(tls_sock: Optional[ssl.SSLSocket], error: Optional[Exception]) -> None:
            if error is not None or tls_sock is None:
                connector.fail(*_client_error(error))
            else:
                connector.succeed(self.connection_class(
                    tls_sock, connector.host, connector.port, self._loop
                ))

        handshake = _TlsHandshake(tls_sock, self._loop, done)
        connector._cancel = handshake.cancel
        handshake.start()


def _client_error(error: Optional[BaseException]) -> Tuple[Type[Exception], Any]:
    if isinstance(error, ssl.SSLError):
        return ssl.SSLError, error
    if isinstance(error, OSError) and error.errno:
        return OSError, error.errno
    # A context that cannot be used as asked (ValueError): still an SSL
    # problem from the caller's point of view.
    return ssl.SSLError, ssl.SSLError(str(error))


class TlsServer(TcpServer):
    """A TLS server: the ``TcpServer`` interface, serving with
    ``tls_context`` (an ``ssl.SSLContext`` with a certificate loaded).

    Emits: start(), connect(TlsConnection), stop().

    ``connect`` is emitted once the handshake has succeeded. A client whose
    handshake fails, or does not finish within ``handshake_timeout``
    seconds, is dropped without a word.
    """

    connection_class: Type[TcpConnection] = TlsConnection
    # Long enough for a slow client on a bad network, short enough that
    # idle sockets that never say hello do not pile up.
    handshake_timeout: Optional[float] = 30

    def __init__(
        self,
        host: Union[str, bytes, None],
        port: Union[int, str],
        tls_context: ssl.SSLContext,
        loop: Optional[LoopBase] = None,
        **kw: Any,
    ) -> None:
        self.tls_context = tls_context
        TcpServer.__init__(self, host, port, loop, **kw)

    def _accepted(self, sock: socket.socket, address: Address) -> None:
        try:
            sock.setblocking(False)
            tls_sock = self.tls_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        except (OSError, ValueError):
            sock.close()
            return
        host, port = address[0], address[1]

        def done(tls_sock: Optional[ssl.SSLSocket], error: Optional[Exception]) -> None:
            if error is None and tls_sock is not None:
                try:
                    conn = self.connection_class(tls_sock, host, port, self._loop)
                except OSError:  # e.g. the client already went away
                    tls_sock.close()
                    self._forget(handshake)
                    return
                conn._peer = address
                self._connections.discard(handshake)
                self._serve(conn)
            else:
                self._forget(handshake)

        # Counted among the server's connections, for graceful_shutdown.
        handshake = _TlsHandshake(tls_sock, self._loop, done, self.handshake_timeout)
        self._connections.add(handshake)
        handshake.start()
