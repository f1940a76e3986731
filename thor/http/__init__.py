"""HTTP/1.1 for thor: HttpClient, HttpServer, the header utilities, and the
error classes (thor.http.error).

The client and server (and their modules, ``thor.http.client``,
``thor.http.server``, ``thor.http.proxy``) are imported when first used,
so that ``import thor.http`` stays cheap and ``python -m thor.http.client``
and ``python -m thor.http.proxy`` run their module once. The names Thor
0.17 exports here (its exchange classes, ``hop_by_hop_hdrs``,
``strip_hop_by_hop``, ``idempotent_methods``, ``safe_methods``,
``OriginType``, ``RawHeaderListType``) are here too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List, Tuple

from thor.http import common, error
from thor.http.common import (
    get_header, header_dict, header_names, hop_by_hop_hdrs, idempotent_methods,
    safe_methods, strip_hop_by_hop,
)
from thor.types import OriginType, RawHeaderListType

if TYPE_CHECKING:  # what __getattr__ gives, for type checkers
    from thor.http import client, headers, parser, proxy, server, uri
    from thor.http.client import HttpClient, HttpClientExchange
    from thor.http.server import HttpServer, HttpServerExchange

__all__ = [
    "HttpClient", "HttpClientExchange", "HttpServer", "HttpServerExchange",
    "header_names", "header_dict", "get_header", "hop_by_hop_hdrs", "strip_hop_by_hop",
    "idempotent_methods", "safe_methods", "OriginType", "RawHeaderListType",
    "error", "common",
]

_LAZY: Dict[str, Tuple[str, str]] = {
    "HttpClient": ("thor.http.client", "HttpClient"),
    "HttpClientExchange": ("thor.http.client", "HttpClientExchange"),
    "HttpServer": ("thor.http.server", "HttpServer"),
    "HttpServerExchange": ("thor.http.server", "HttpServerExchange"),
}
_SUBMODULES = ("client", "server", "proxy", "parser", "headers", "uri")


def __getattr__(name: str) -> Any:
    found = _LAZY.get(name)
    if found is not None:
        value = getattr(importlib.import_module(found[0]), found[1])
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module("thor.http." + name)
    raise AttributeError("module 'thor.http' has no attribute %r" % name)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
