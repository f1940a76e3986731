"""thor: evented I/O for HTTP intermediaries, clients and servers.

The public face: the default loop's run/stop/schedule/time, the transport
classes (TcpClient, TcpServer, TlsClient, TlsServer, UdpEndpoint) and the
HTTP client and server. Classes are imported when first used, so that
``import thor`` stays cheap and ``python -m thor.http.proxy`` runs its module
only once.
"""

__version__ = "0.18.0"

import importlib

from thor import events, loop
from thor.loop import run, stop, schedule, time, run_in_loop

__all__ = [
    "events", "loop", "run", "stop", "schedule", "time", "run_in_loop", "on",
    "TcpClient", "TcpServer", "TlsClient", "TlsServer", "UdpEndpoint",
    "HttpClient", "HttpServer", "tcp", "tls", "udp", "http", "dns",
]


def on(target, event=None):
    """Both faces of ``thor.on``: ``thor.on(emitter, event=None)`` is the
    decorator thor.events.on; ``thor.on(event, listener)`` (an event name
    first) listens to the default loop, e.g. ``thor.on("stop", cleanup)``."""
    if isinstance(target, str):
        return loop._loop.on(target, event)
    return events.on(target, event)


_LAZY = {
    "TcpClient": ("thor.tcp", "TcpClient"),
    "TcpServer": ("thor.tcp", "TcpServer"),
    "TlsClient": ("thor.tls", "TlsClient"),
    "TlsServer": ("thor.tls", "TlsServer"),
    "UdpEndpoint": ("thor.udp", "UdpEndpoint"),
    "HttpClient": ("thor.http.client", "HttpClient"),
    "HttpServer": ("thor.http.server", "HttpServer"),
}
_SUBMODULES = ("tcp", "tls", "udp", "http", "dns")


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module("thor." + name)
    raise AttributeError("module 'thor' has no attribute %r" % name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
