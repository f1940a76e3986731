"""HTTP/1.1 for thor: HttpClient, HttpServer, the header utilities, and the
error classes (thor.http.error).

HttpClient and HttpServer are imported when first used, so that
``python -m thor.http.client`` and ``python -m thor.http.proxy`` run their
module once.
"""

from thor.http import error
from thor.http.headers import header_names, header_dict, get_header

__all__ = [
    "HttpClient", "HttpServer", "header_names", "header_dict", "get_header", "error",
]


def __getattr__(name):
    if name == "HttpClient":
        from thor.http.client import HttpClient

        return HttpClient
    if name == "HttpServer":
        from thor.http.server import HttpServer

        return HttpServer
    raise AttributeError("module 'thor.http' has no attribute %r" % name)
