"""UDP: ``UdpEndpoint``, one datagram socket, IPv4 or IPv6.

Theory of operation
-------------------
- Receiving uses a 64 KiB buffer, so that any datagram that can exist
  (65,507 bytes of payload over IPv4, 65,527 over IPv6) arrives whole.
- A readable event receives up to ``read_batch`` datagrams: each costs one
  system call either way, and batching saves poller passes when datagrams
  come in bursts.
- Sending never blocks. UDP promises no delivery, so a datagram the kernel
  will not take right now (EAGAIN, ENOBUFS) or that an earlier ICMP error
  refuses (ECONNREFUSED) is dropped, not queued.
- Per datagram, the system calls (recvfrom, sendto) cost several times
  what the Python around them does, so that Python is kept to the least
  the API allows: ``datagram`` goes out through ``emit``, which calls a
  lone listener without a loop (``_unwrap_single``, thor.events).
- ``send`` to a host already sent to, with ``bytes`` and an ``int`` port,
  is one dict lookup, three checks and a ``sendto``. Each endpoint
  remembers, for every IP literal it has sent to (as given, ``str`` or
  ``bytes``), the host its socket takes (an IPv4 one on an IPv6 socket is
  v4-mapped); the first send to a host checks everything, anything else
  (a ``str`` datagram, a ``str`` port, a name) takes that path every
  time, and the memory goes with the socket (``shutdown``, a new socket).
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING

from thor import dns
from thor.loop import ERROR, READ, EventSource

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Tuple, Union

    from thor.dns import Result
    from thor.loop import LoopBase

    Host = Union[str, bytes]

__all__ = ["UdpEndpoint"]

_DROPPED = frozenset(
    code
    for code in (
        getattr(errno, name, None)
        for name in ("EAGAIN", "EWOULDBLOCK", "ENOBUFS", "EINTR", "ECONNREFUSED",
                     "EHOSTUNREACH", "ENETUNREACH")
    )
    if code is not None
)

# The most hosts an endpoint remembers: one-off destinations must not pin
# memory (past it, the memory starts again, empty).
_ADDRESSES_MAX = 4096
# Hosts remembered as given: only these exact types are hashable and
# compare by value.
_HASHABLE = frozenset((str, bytes))


class UdpEndpoint(EventSource):
    """A UDP endpoint.

    Emits: datagram(data: bytes, host: str, port: int).

    Endpoints start paused: call ``pause(False)`` to get ``datagram`` events.
    ``host`` and ``port`` are the bound local address, once there is one.
    """

    __slots__ = (
        "sock", "host", "port", "_paused", "_recvfrom", "_shut", "_v6",
        "_sendto_raw", "_addresses", "_address_of",
    )

    # An event's lone listener is kept as itself (see thor.events): 'datagram'
    # is emitted once per datagram.
    _unwrap_single = True

    # The largest UDP payload over IPv4: 65,535 - 8 (UDP) - 20 (IP).
    max_dgram = 65507
    recv_size = 65536
    read_batch = 64

    def __init__(self, loop: Optional[LoopBase] = None) -> None:
        EventSource.__init__(self, loop)
        self.sock: Optional[socket.socket] = None
        self.host: Optional[str] = None
        self.port: Optional[int] = None
        self._paused = True
        self._recvfrom: Optional[Callable[[int], Tuple[bytes, Any]]] = None
        self._sendto_raw: Optional[Callable[[Any, Tuple[Any, ...]], int]] = None
        self._shut = False
        self._v6 = False
        # Host as given -> the host of the sockaddr this socket sends to.
        self._addresses: Dict[Host, str] = {}
        self._address_of: Callable[[Host], Optional[str]] = self._addresses.get

    def __repr__(self) -> str:
        return "<%s %s:%s%s>" % (
            self.__class__.__name__, self.host, self.port,
            " paused" if self._paused else "",
        )

    def _open(self, family: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        self.sock = sock
        self._recvfrom = sock.recvfrom
        self._sendto_raw = sock.sendto
        # socket.family builds an enum on each read: once, here.
        self._v6 = family == socket.AF_INET6
        self._addresses.clear()  # they were for another socket
        return sock

    def _registered(self, sock: socket.socket) -> None:
        sockname = sock.getsockname()
        self.host, self.port = sockname[0], sockname[1]
        self.register_fd(sock.fileno(), None if self._paused else "fd_readable")

    def bind(self, host: Union[str, bytes, None], port: Union[int, str]) -> None:
        """Bind to ``port`` on ``host`` (a local address; port 0 lets the
        system choose: see ``port`` afterwards). Call before ``send()``."""
        if self.sock is not None:
            raise RuntimeError("the endpoint already has a socket")
        host = dns.parse_host(host) if host is not None else ""
        family = dns.literal_family(host) if host else None
        sockaddr: Tuple[Any, ...]
        if family is None:
            # A local name, resolved before any traffic flows: a blocking
            # lookup here holds up nothing.
            family, _, _, _, sockaddr = socket.getaddrinfo(
                host or None, port, 0, socket.SOCK_DGRAM, 0, socket.AI_PASSIVE
            )[0]
        elif family == socket.AF_INET6:
            sockaddr = (host, int(port), 0, 0)
        else:
            sockaddr = (host, int(port))
        sock = self._open(family)
        try:
            sock.bind(sockaddr)
        except OSError:
            sock.close()
            self.sock = None
            raise
        self._shut = False
        self._registered(sock)

    def send(
        self,
        datagram: Union[bytes, bytearray, memoryview, str],
        host: Host,
        port: Union[int, str],
    ) -> None:
        """Send ``datagram`` (bytes, or ``str`` sent as UTF-8) to ``port`` on
        ``host``. Without ``bind()``, the first send opens a socket on a
        port the system chooses, of the family of ``host``. A name is
        resolved off the loop, and the datagram sent once it has been.
        After ``shutdown()`` (and until ``bind()``), ``send`` raises
        ``OSError``; a datagram whose name resolves after it is dropped."""
        # Read into locals, then called: a call straight on a slot is a
        # method lookup that the interpreter cannot specialize.
        address_of = self._address_of
        try:
            address = address_of(host)
        except TypeError:
            address = None  # unhashable: _send_checked says what is wrong
        if (
            address is not None and datagram.__class__ is bytes
            and port.__class__ is int and len(datagram) <= self.max_dgram
        ):
            # A host this socket has sent to (so it is open, and not shut
            # down: the memory goes with the socket), plain arguments.
            sendto = self._sendto_raw
            try:
                sendto(datagram, (address, port))  # type: ignore[misc]  # open
            except OSError as why:
                if why.errno not in _DROPPED:
                    raise
            return
        self._send_checked(datagram, host, port)

    def _send_checked(
        self,
        datagram: Union[bytes, bytearray, memoryview, str],
        host: Host,
        port: Union[int, str],
    ) -> None:
        if self._shut:
            raise OSError(errno.EBADF, "UDP endpoint closed (shutdown() was called)")
        if isinstance(datagram, str):
            datagram = datagram.encode("utf-8")
        if len(datagram) > self.max_dgram:
            raise ValueError(
                "UDP datagram of %d bytes is over max_dgram (%d)"
                % (len(datagram), self.max_dgram)
            )
        parsed = dns.parse_host(host)
        family = dns.literal_family(parsed)
        if family is None:
            dns.lookup(parsed, port, self._resolved(datagram), self._loop,
                       self.sock.family if self.sock else 0, socket.SOCK_DGRAM)
            return
        self._sendto(datagram, family, parsed, int(port), host)

    def _resolved(self, datagram: Any) -> Callable[[Result], None]:
        def send(result: Result) -> None:
            if isinstance(result, Exception) or not result:
                return  # like any lost datagram: UDP reports nothing
            family, _, _, _, sockaddr = result[0]
            self._sendto(datagram, family, sockaddr[0], sockaddr[1])
        return send

    def _sendto(
        self, datagram: Any, family: int, host: str, port: int,
        literal: Optional[Host] = None,
    ) -> None:
        # ``literal``: the IP literal as given to send(), to remember.
        if self._shut:
            return
        sock = self.sock
        if sock is None:
            sock = self._open(family)
            # What the first sendto would do anyway, but now, so that the
            # port is known (and datagrams in reply are received) at once.
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            self._registered(sock)
        if self._v6:
            if family == socket.AF_INET:
                host = "::ffff:" + host  # a v4-mapped address
        elif family == socket.AF_INET6:
            raise ValueError("an IPv4 endpoint cannot send to %s" % host)
        if literal is not None and literal.__class__ in _HASHABLE:
            addresses = self._addresses
            if len(addresses) >= _ADDRESSES_MAX:
                addresses.clear()
            addresses[literal] = host
        try:
            self._sendto_raw(datagram, (host, port))  # type: ignore[misc]  # open
        except OSError as why:
            if why.errno not in _DROPPED:
                raise

    def pause(self, paused: bool) -> None:
        """Stop (True) or start (False) ``datagram`` events."""
        self._paused = bool(paused)
        if paused:
            self.event_del("fd_readable")
        else:
            self.event_add("fd_readable")

    def shutdown(self) -> None:
        """Stop the endpoint and close its socket."""
        self._shut = True
        self._addresses.clear()
        if self.sock is not None:
            self.unregister_fd()
            self.sock.close()
            self.sock = None
            self._recvfrom = None

    def _fd_ready(self, mask: int) -> None:
        if mask & ERROR and self.sock is not None:
            # An ICMP error queued on the socket: reading it clears it.
            self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if not mask & READ:
            return
        size = self.recv_size
        recvfrom = self._recvfrom
        emit = self.emit
        for _ in range(self.read_batch):
            try:
                data, address = recvfrom(size)  # type: ignore[misc]  # set while watched
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error for an earlier send
            emit("datagram", data, address[0], address[1])
            if not self._interest & READ:
                return  # paused, or shut down, by a listener

