"""thor: evented I/O for HTTP intermediaries, clients and servers.

The public face: the default loop's run/stop/schedule/time, the transport
classes (TcpClient, TcpServer, TcpConnection, TlsClient, TlsServer,
UdpEndpoint), the HTTP client and server with their exchange classes, and
Thor 0.17's type aliases (thor.types). Classes and submodules are imported
when first used, so that ``import thor`` stays cheap and
``python -m thor.http.proxy`` runs its module only once; after
``import thor``, ``thor.http.server.HttpServerExchange`` and the like
resolve as in Thor 0.17, where everything is imported at once.
"""

from __future__ import annotations

__version__ = "0.18.0"

import importlib
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Union

from thor import events, loop
from thor.loop import run, stop, schedule, time, run_in_loop

if TYPE_CHECKING:  # what __getattr__ gives, for type checkers
    from thor import dns, http, tcp, tls, types, udp
    from thor.http.client import HttpClient, HttpClientExchange
    from thor.http.server import HttpServer, HttpServerExchange
    from thor.tcp import TcpClient, TcpConnection, TcpServer
    from thor.tls import TlsClient, TlsServer
    from thor.types import (
        Address, DnsResult, DnsResultList, EventListener, OriginType, RawHeaderListType,
    )
    from thor.udp import UdpEndpoint

__all__ = [
    "events", "loop", "run", "stop", "schedule", "time", "run_in_loop", "on",
    "TcpClient", "TcpServer", "TcpConnection", "TlsClient", "TlsServer", "UdpEndpoint",
    "HttpClient", "HttpClientExchange", "HttpServer", "HttpServerExchange",
    "EventListener", "RawHeaderListType", "OriginType", "Address", "DnsResult",
    "DnsResultList", "tcp", "tls", "udp", "http", "dns", "types",
]


def on(
    target: Union[str, events.EventEmitter],
    event: Union[str, Callable[..., Any], None] = None,
) -> Any:
    """Both faces of ``thor.on``: ``thor.on(emitter, event=None)`` is the
    decorator thor.events.on; ``thor.on(event, listener)`` (an event name
    first) listens to the default loop, e.g. ``thor.on("stop", cleanup)``."""
    if isinstance(target, str):
        return loop.default_loop().on(target, event)  # type: ignore[arg-type]  # the listener
    return events.on(target, event)  # type: ignore[arg-type]  # the event name or None


_LAZY: Dict[str, Tuple[str, str]] = {
    "TcpClient": ("thor.tcp", "TcpClient"),
    "TcpServer": ("thor.tcp", "TcpServer"),
    "TcpConnection": ("thor.tcp", "TcpConnection"),
    "TlsClient": ("thor.tls", "TlsClient"),
    "TlsServer": ("thor.tls", "TlsServer"),
    "UdpEndpoint": ("thor.udp", "UdpEndpoint"),
    "HttpClient": ("thor.http.client", "HttpClient"),
    "HttpClientExchange": ("thor.http.client", "HttpClientExchange"),
    "HttpServer": ("thor.http.server", "HttpServer"),
    "HttpServerExchange": ("thor.http.server", "HttpServerExchange"),
    "EventListener": ("thor.types", "EventListener"),
    "RawHeaderListType": ("thor.types", "RawHeaderListType"),
    "OriginType": ("thor.types", "OriginType"),
    "Address": ("thor.types", "Address"),
    "DnsResult": ("thor.types", "DnsResult"),
    "DnsResultList": ("thor.types", "DnsResultList"),
}
_SUBMODULES = ("tcp", "tls", "udp", "http", "dns", "types")


def __getattr__(name: str) -> Any:
    found: Optional[Tuple[str, str]] = _LAZY.get(name)
    if found is not None:
        value = getattr(importlib.import_module(found[0]), found[1])
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module("thor." + name)
    raise AttributeError("module 'thor' has no attribute %r" % name)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
