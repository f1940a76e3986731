"""Type aliases shared by thor's modules and by programs that use thor.

The first group has the names and meanings of Thor 0.17's ``thor.types``
(what its events deliver); the second is thor's own, for what its calls
accept (the contract's "Types (Python 3)": str as well as bytes, an int
status). They are evaluated at run time, so they use ``typing``'s
generics, which Python 3.9 needs.
"""

from __future__ import annotations

import socket
from typing import Any, Callable, List, Sequence, Tuple, Union

__all__ = [
    "EventListener", "ScheduledEventTuple", "RawHeaderListType", "OriginType",
    "Address", "DnsResult", "DnsResultList",
    "TextInput", "HeaderInput", "StatusInput", "BodyInput", "HostInput",
]

# -- Thor 0.17's names ----------------------------------------------------------

#: Anything an EventEmitter calls.
EventListener = Callable[..., Any]
#: (deadline, callback), as Thor 0.17's loop reports scheduled events.
ScheduledEventTuple = Tuple[float, EventListener]
#: Header fields as thor delivers them: (name, value) bytes, one per line, in order.
RawHeaderListType = List[Tuple[bytes, bytes]]
#: (scheme, host, port): what an HTTP client pools its connections by.
OriginType = Tuple[str, str, int]
#: A socket address: (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6.
Address = Union[Tuple[str, int], Tuple[str, int, int, int]]
#: One entry of socket.getaddrinfo()'s answer.
DnsResult = Tuple[socket.AddressFamily, socket.SocketKind, int, str, Address]
DnsResultList = List[DnsResult]

# -- what thor's calls accept -----------------------------------------------------

#: A method, URI, field name or value, or reason phrase: bytes, or str
#: (ASCII / Latin-1).
TextInput = Union[str, bytes]
#: Header fields as an application passes them: (name, value) pairs of
#: str or bytes.
HeaderInput = Sequence[Tuple[TextInput, TextInput]]
#: A status code: 200, "200" or b"200".
StatusInput = Union[int, str, bytes]
#: A body chunk or TCP / UDP data: bytes-like, or str (sent as UTF-8).
BodyInput = Union[bytes, bytearray, memoryview, str]
#: A host name or address, with or without IPv6 brackets.
HostInput = Union[str, bytes]
