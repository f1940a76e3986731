"""Counters of thor.http.proxy, their Prometheus text exposition, and the
admin listener that serves them (``/metrics``) with a health check
(``/healthz``).

The counters are plain attributes that the proxy adds to once per
exchange (no locks: the loop is single-threaded; no allocation). The
exposition is built only when scraped. This module does not import the
proxy: the admin server reads the public attributes ``metrics``, ``pool``,
``server`` and ``open_tunnels`` of whatever it is given.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, List, Optional, Protocol, Tuple

from thor.http.server import HttpServer

if TYPE_CHECKING:
    from thor.http.server import HttpServerExchange
    from thor.http.upstreams import UpstreamPool
    from thor.loop import LoopBase

__all__ = ["ProxyMetrics", "AdminServer", "DURATION_BUCKETS", "exposition"]

log = logging.getLogger(__name__)

# Upper bounds (seconds) of the request duration histogram's buckets:
# Prometheus client libraries' default buckets.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class ProxyMetrics:
    """What a proxy has done since it started.

    ``requests``: exchanges finished, by status class (index 2 counts
    2xx; index 0 those that ended without a status). ``durations``: the
    histogram's counts per bucket of DURATION_BUCKETS (not cumulative; the
    last one is above the last bound), ``duration_sum`` in seconds.
    ``bytes_in`` and ``bytes_out``: request body bytes received from
    clients and response body bytes sent to them. ``retries``: requests
    sent to another upstream after a failure.
    """

    __slots__ = ("requests", "durations", "duration_sum", "bytes_in", "bytes_out", "retries")

    def __init__(self) -> None:
        self.requests = [0] * 10
        self.durations = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.retries = 0

    @property
    def total(self) -> int:
        """Exchanges finished."""
        return sum(self.requests)


class _Source(Protocol):
    """What the admin server reads of a proxy (its public attributes)."""

    metrics: ProxyMetrics
    pool: UpstreamPool
    server: HttpServer
    upstreams: List[bytes]
    open_tunnels: int


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(source: _Source) -> str:
    """The Prometheus text format (version 0.0.4) of ``source``'s metrics."""
    metrics = source.metrics
    pool = source.pool
    lines: List[str] = []
    add = lines.append
    add("# HELP thor_proxy_requests_total Exchanges finished, by status class.")
    add("# TYPE thor_proxy_requests_total counter")
    for index, count in enumerate(metrics.requests):
        if 1 <= index <= 5 or count:
            code = "%dxx" % index if index else "none"
            add('thor_proxy_requests_total{code="%s"} %d' % (code, count))
    add("# HELP thor_proxy_request_duration_seconds From the request's arrival to "
        "the end of its response.")
    add("# TYPE thor_proxy_request_duration_seconds histogram")
    cumulative = 0
    for bound, count in zip(DURATION_BUCKETS, metrics.durations):
        cumulative += count
        add('thor_proxy_request_duration_seconds_bucket{le="%g"} %d' % (bound, cumulative))
    cumulative += metrics.durations[-1]
    add('thor_proxy_request_duration_seconds_bucket{le="+Inf"} %d' % cumulative)
    add("thor_proxy_request_duration_seconds_sum %.6f" % metrics.duration_sum)
    add("thor_proxy_request_duration_seconds_count %d" % cumulative)
    add("# HELP thor_proxy_received_bytes_total Request body bytes received from clients.")
    add("# TYPE thor_proxy_received_bytes_total counter")
    add("thor_proxy_received_bytes_total %d" % metrics.bytes_in)
    add("# HELP thor_proxy_sent_bytes_total Response body bytes sent to clients.")
    add("# TYPE thor_proxy_sent_bytes_total counter")
    add("thor_proxy_sent_bytes_total %d" % metrics.bytes_out)
    add("# HELP thor_proxy_active_connections Open client connections.")
    add("# TYPE thor_proxy_active_connections gauge")
    add("thor_proxy_active_connections %d" % len(source.server.connections))
    # The server forgets a connection it hands over to a tunnel: counted
    # apart (each holds a client connection and one to the target).
    add("# HELP thor_proxy_open_tunnels Open CONNECT and Upgrade (101) tunnels.")
    add("# TYPE thor_proxy_open_tunnels gauge")
    add("thor_proxy_open_tunnels %d" % source.open_tunnels)
    add("# HELP thor_proxy_retries_total Requests sent to another upstream after a failure.")
    add("# TYPE thor_proxy_retries_total counter")
    add("thor_proxy_retries_total %d" % metrics.retries)
    ups = pool.upstreams
    if ups:
        for name, kind, help_text, values in (
            ("upstream_up", "gauge", "1 when the upstream is up, 0 when it is marked down.",
             [int(ok) for ok in pool.up()]),
            ("upstream_active_requests", "gauge", "Requests in flight to the upstream.",
             [up.active for up in ups]),
            ("upstream_requests_total", "counter", "Requests sent to the upstream.",
             [up.requests for up in ups]),
            ("upstream_failures_total", "counter", "Failures seen from the upstream "
             "(refused or failed connections, timeouts, 5xx, failed health checks).",
             [up.failures for up in ups]),
        ):
            add("# HELP thor_proxy_%s %s" % (name, help_text))
            add("# TYPE thor_proxy_%s %s" % (name, kind))
            for up, value in zip(ups, values):
                add('thor_proxy_%s{upstream="%s"} %d' % (name, _label(up.name), value))
    return "\n".join(lines) + "\n"


def healthy(source: _Source) -> Tuple[bool, str]:
    """(ok, text) for /healthz: ok when the proxy is not shutting down and
    (in reverse mode) at least one upstream is up (not marked down: one
    due a trial request is not known to be up)."""
    if source.server.shutting_down:
        return False, "shutting down\n"
    pool = source.pool
    if not pool.upstreams:
        return True, "ok\n"
    ups = pool.up()
    up = sum(ups)
    if up:
        return True, "ok: %d of %d upstreams up\n" % (up, len(ups))
    return False, "no upstream is up\n"


class AdminServer:
    """An HTTP listener for operators, beside a proxy's: ``GET /metrics``
    (Prometheus text format) and ``GET /healthz`` (200 when the proxy can
    serve, else 503: what a load balancer's health check points at).
    Anything else is 404 (405 for a method other than GET and HEAD).

    ``host``, ``port`` (0 picks one; ``port`` is then the one chosen) and
    ``server`` (the HttpServer) are attributes; ``close()`` stops it.
    """

    def __init__(self, source: _Source, host: str = "127.0.0.1", port: int = 0,
                 loop: Optional[LoopBase] = None) -> None:
        self.source = source
        self.server = HttpServer(host, port, loop)
        self.host = self.server.host
        self.port = self.server.port
        self.server.on("exchange", self._exchange)

    def close(self) -> None:
        self.server.close()

    def _exchange(self, ex: HttpServerExchange) -> None:
        ex.on("request_done", lambda trailers: self._answer(ex))

    def _answer(self, ex: HttpServerExchange) -> None:
        path = ex.uri.partition(b"?")[0]
        status, phrase = 200, "OK"
        kind = b"text/plain; charset=utf-8"
        if ex.method not in (b"GET", b"HEAD"):
            status, phrase, body = 405, "Method Not Allowed", "GET or HEAD\n"
        elif path == b"/metrics":
            body = exposition(self.source)
            kind = _CONTENT_TYPE
        elif path == b"/healthz":
            ok, body = healthy(self.source)
            if not ok:
                status, phrase = 503, "Service Unavailable"
        else:
            status, phrase, body = 404, "Not Found", "/metrics or /healthz\n"
        data = body.encode("utf-8")
        headers = [(b"Content-Type", kind), (b"Content-Length", b"%d" % len(data)),
                   (b"Cache-Control", b"no-store")]
        if status == 405:
            headers.append((b"Allow", b"GET, HEAD"))
        ex.response_start(status, phrase, headers)
        if ex.method != b"HEAD":
            ex.response_body(data)
        ex.response_done([])
