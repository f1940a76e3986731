"""Logging for thor.http.proxy: the access log's formats, and the logging
set-up of the command line.

The library only logs (loggers ``thor.http.proxy``, its access log
``thor.http.proxy.access``, ``thor.http.upstreams``); it configures
nothing, on import or otherwise. ``configure`` is what
``python -m thor.http.proxy`` does with its -v/-q, --log-file and
--access-log flags.

Access log formats (``AccessFormat``):

- ``common``: the Common Log Format,
  ``127.0.0.1 - - [03/Dec/2026:17:40:00 +0000] "GET / HTTP/1.1" 200 1234``;
- ``combined``: nginx's ``combined`` (common, then the quoted Referer and
  User-Agent) followed by the duration in milliseconds and the upstream
  (``-`` in forward mode), as nginx operators add ``$request_time`` and
  ``$upstream_addr``;
- ``json``: one JSON object per line, with the fields below;
- any other text is a template for ``str.format`` with the fields
  ``{client}``, ``{time}`` (CLF), ``{iso_time}``, ``{request}`` (the
  request line), ``{method}``, ``{uri}``, ``{version}``, ``{status}``,
  ``{bytes}`` (response body bytes sent), ``{bytes_in}`` (request body
  bytes received), ``{duration_ms}``, ``{upstream}``, ``{user_agent}``,
  ``{referer}``.

What the client sent (the method, URI and version, User-Agent, Referer)
is escaped as nginx escapes it, in every format: ``"``, ``\\``, and bytes
below 0x20, 0x7f and above become ``\\xHH``; so a line is one line of
printable ASCII whatever the client sent, and a quoted field cannot be
closed by it (``escape``).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time as _time
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

if TYPE_CHECKING:
    from thor.loop import LoopBase, ScheduledEvent
    from thor.types import RawHeaderListType

__all__ = ["AccessFormat", "FORMATS", "FailureLog", "configure", "escape", "log_exception"]

FORMATS = ("common", "combined", "json")

# The fields a template may name, with a sample value each (to check a
# template when it is given, not at the first request).
_SAMPLE = {
    "client": "127.0.0.1", "time": "03/Dec/2026:17:40:00 +0000",
    "iso_time": "2026-12-03T17:40:00Z", "request": "GET / HTTP/1.1", "method": "GET",
    "uri": "/", "version": "1.1", "status": 200, "bytes": 0, "bytes_in": 0,
    "duration_ms": 0.0, "upstream": "-", "user_agent": "-", "referer": "-",
}


# Bytes that pass unescaped: printable ASCII but the quote and backslash.
_PLAIN = bytes(c for c in range(0x20, 0x7f) if c not in b'"\\')
_ESCAPES = {c: "\\x%02X" % c for c in range(256) if c not in _PLAIN}


def escape(value: bytes) -> str:
    """``value`` (bytes a client sent) as log text: printable ASCII, with
    ``"``, ``\\``, control bytes, DEL and bytes above 0x7f as ``\\xHH``
    (nginx's escaping of its log variables). A text of plain bytes, the
    common case, costs one translate and one decode."""
    if not value.translate(None, _PLAIN):
        return value.decode("ascii")
    return value.decode("latin-1").translate(_ESCAPES)


class AccessFormat:
    """Turns one finished exchange into one access-log line (without its
    newline). ``spec`` is ``common``, ``combined``, ``json`` or a
    template (see the module's docstring); ValueError when a template
    names an unknown field."""

    __slots__ = ("spec", "_second", "_stamp", "_render")

    def __init__(self, spec: str = "common") -> None:
        self.spec = spec
        self._second = -1
        self._stamp = ""
        if spec == "common":
            self._render: Callable[..., str] = self._common
        elif spec == "combined":
            self._render = self._combined
        elif spec == "json":
            self._render = self._json
        elif "{" in spec:
            try:
                spec.format_map(_SAMPLE)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError("bad access log template %r: %s (fields: %s)" % (
                    spec, exc, ", ".join(sorted(_SAMPLE))))
            self._render = self._template
        else:
            raise ValueError("access log format: common, combined, json or a template "
                             "with {fields}, not %r" % spec)

    def _clf_time(self, now: float) -> str:
        second = int(now)
        if second != self._second:  # one strftime per second, not per line
            self._second = second
            self._stamp = _time.strftime("%d/%b/%Y:%H:%M:%S +0000", _time.gmtime(second))
        return self._stamp

    def line(
        self, client: Optional[str], method: bytes, uri: bytes, version: bytes,
        status: Optional[int], bytes_out: int, bytes_in: int, duration: float,
        upstream: Optional[bytes], headers: RawHeaderListType,
    ) -> str:
        """The line for an exchange: ``duration`` in seconds, ``headers``
        the request's as received."""
        return self._render(client or "-", escape(method), escape(uri), escape(version),
                            status, bytes_out, bytes_in, duration,
                            upstream.decode("latin-1") if upstream is not None else "-",
                            headers)

    def _common(self, client: str, method: str, uri: str, version: str,
                status: Optional[int], bytes_out: int, bytes_in: int, duration: float,
                upstream: str, headers: RawHeaderListType) -> str:
        return '%s - - [%s] "%s %s HTTP/%s" %s %s' % (
            client, self._clf_time(_time.time()), method, uri, version, status or "-",
            bytes_out or "-",
        )

    def _combined(self, client: str, method: str, uri: str, version: str,
                  status: Optional[int], bytes_out: int, bytes_in: int, duration: float,
                  upstream: str, headers: RawHeaderListType) -> str:
        referer, agent = _referer_agent(headers)
        return '%s "%s" "%s" %.3f %s' % (
            self._common(client, method, uri, version, status, bytes_out, bytes_in,
                         duration, upstream, headers),
            referer, agent, duration * 1000, upstream,
        )

    def _fields(self, client: str, method: str, uri: str, version: str,
                status: Optional[int], bytes_out: int, bytes_in: int, duration: float,
                upstream: str, headers: RawHeaderListType) -> Dict[str, Any]:
        now = _time.time()
        referer, agent = _referer_agent(headers)
        return {
            "client": client, "time": self._clf_time(now),
            "iso_time": _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(now))
            + ".%03dZ" % (int(now * 1000) % 1000),
            "request": "%s %s HTTP/%s" % (method, uri, version), "method": method,
            "uri": uri, "version": version, "status": status or "-", "bytes": bytes_out,
            "bytes_in": bytes_in, "duration_ms": round(duration * 1000, 3),
            "upstream": upstream, "user_agent": agent, "referer": referer,
        }

    def _json(self, *args: Any) -> str:
        fields = self._fields(*args)
        del fields["time"], fields["request"]
        if fields["status"] == "-":
            fields["status"] = None
        return json.dumps(fields, separators=(",", ":"))

    def _template(self, *args: Any) -> str:
        return self.spec.format_map(self._fields(*args))


def _referer_agent(headers: RawHeaderListType) -> Tuple[str, str]:
    referer = agent = "-"
    for name, value in headers:
        lower = name.lower()
        if lower == b"user-agent":
            agent = escape(value.strip())
        elif lower == b"referer":
            referer = escape(value.strip())
    return referer, agent


class FailureLog:
    """A bounded WARNING line per upstream failure: at most ``lines`` of
    them per ``period`` seconds on ``logger``; beyond that, each goes at
    DEBUG, and when the period ends one WARNING says how many there were.
    (A client hammering a dead upstream, or asking a forward proxy for
    unreachable URLs of its choosing, would otherwise write the log's
    lines for it, -q keeping them all.)"""

    __slots__ = ("logger", "loop", "lines", "period", "_start", "_count", "_over", "_timer")

    def __init__(self, logger: logging.Logger, loop: LoopBase, lines: int = 10,
                 period: float = 10.0) -> None:
        self.logger = logger
        self.loop = loop
        self.lines = lines
        self.period = period
        self._start = -period
        self._count = 0
        self._over = 0
        self._timer: Optional[ScheduledEvent] = None

    def warning(self, message: str, *args: Any) -> None:
        """Log ``message % args`` at WARNING, or at DEBUG over the bound."""
        now = self.loop._clock()
        if now - self._start >= self.period:
            self._start = now
            self._count = 0
        if self._count < self.lines:
            self._count += 1
            self.logger.warning(message, *args)
            return
        self._over += 1
        self.logger.debug(message, *args)
        if self._timer is None:
            self._timer = self.loop.schedule(
                max(0.0, self._start + self.period - now), self._summary)

    def _summary(self) -> None:
        self._timer = None
        over, self._over = self._over, 0
        if over:
            self.logger.warning("%d more upstream failure%s in the last %g s (lines at DEBUG)",
                                over, "" if over == 1 else "s", self.period)


# -- the command line's set-up -------------------------------------------------

_LINE = "%(asctime)s %(name)s[%(process)d] %(levelname)s: %(message)s"


class _StopOnError:
    """A handler that, when it cannot write (a closed pipe, a full disk),
    stops: it leaves its logger (whose level is raised so that the proxy
    no longer formats lines for it) and says so once on the main log. A
    traceback per request would only bury the cause."""

    failed = False
    target: Optional[logging.Logger] = None

    def handleError(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        self.failed = True
        exc = sys.exc_info()[1]
        target = self.target
        if target is not None:
            target.removeHandler(self)  # type: ignore[arg-type]  # a Handler mixin
            target.setLevel(logging.WARNING)
        logging.getLogger("thor.http.proxy").warning(
            "access log failed (%s); logging stopped", exc)


class _AccessStream(_StopOnError, logging.StreamHandler):  # type: ignore[type-arg]
    pass


class _AccessFile(_StopOnError, logging.handlers.WatchedFileHandler):
    pass


def configure(
    verbosity: int = 0, log_file: Optional[str] = None, access_log: Optional[str] = None,
) -> Optional[_AccessStream | _AccessFile]:
    """Set up logging as the command line does: the root logger at INFO
    (``verbosity`` 1: DEBUG; -1: WARNING; -2 and below: ERROR), to stderr,
    or to ``log_file`` (appended to; reopened when rotated away); the
    access log (logger ``thor.http.proxy.access``, message only) to
    stdout when ``access_log`` is "-", to that file otherwise, and
    nowhere when it is None. Returns the access log's handler (its
    ``failed`` is True once writing it failed), or None. Raises OSError
    when a file cannot be opened."""
    level = (logging.DEBUG if verbosity > 0 else logging.INFO if verbosity == 0
             else logging.WARNING if verbosity == -1 else logging.ERROR)
    handler: logging.Handler
    if log_file:
        handler = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LINE))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    access = logging.getLogger("thor.http.proxy.access")
    access.propagate = False
    if access_log is None:
        access.setLevel(logging.WARNING)  # the proxy then formats no line
        return None
    access_handler: _AccessStream | _AccessFile
    if access_log == "-":
        access_handler = _AccessStream(sys.stdout)
    else:
        access_handler = _AccessFile(access_log, encoding="utf-8")
    access_handler.target = access
    access.addHandler(access_handler)
    access.setLevel(logging.INFO)
    return access_handler


def log_exception(loop: LoopBase, exc: BaseException, callback: Any) -> None:
    """A loop ``exception_handler`` that logs (logger ``thor``) instead of
    printing: the command line's."""
    logging.getLogger("thor").error("exception in %r (the loop carries on)", callback,
                                    exc_info=(type(exc), exc, exc.__traceback__))
