"""The HTTP/1.1 server: HttpServer, its connections, and its exchanges.

A connection owns one sans-I/O parser (thor.http.parser) and answers its
requests strictly in order: after a request has been read, the parser waits
until that request's response is done before it reads the next, so
pipelined requests cost no more memory than the bytes that the kernel has
handed over, and the server stops reading from a client that has too many
of them queued instead of refusing it.

Responses are framed by thor: the application's Content-Length is used (and
enforced) when given, chunked otherwise for HTTP/1.1, and close-delimited for
HTTP/1.0. Output is gathered and written once per response where possible
(head, body and end in one send for a response made in one go).
"""

import time as _time

import thor.loop
from thor.events import EventEmitter
from thor.tcp import TcpServer
from thor.http import error
from thor.http.headers import (
    encode_status, encode_phrase, encode_field_name, encode_field_value, HOP_BY_HOP,
)
from thor.http.parser import HttpParser

__all__ = ["HttpServer", "HttpServerConnection", "HttpServerExchange"]

_NO_BODY_STATUS = frozenset((b"204", b"304"))
_FRAMING = 0
_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = 1, 2, 3, 4
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# Response header names already checked, mapped to (bytes name, lower-cased
# name). Applications reuse a handful of names, so this saves a token check
# and a lower() per field per response; it is bounded by _NAME_CACHE_MAX.
_name_cache = {}
_NAME_CACHE_MAX = 512


def _field_name(name):
    cached = _name_cache.get(name)
    if cached is None:
        raw = encode_field_name(name)
        cached = (raw, raw.lower())
        if len(_name_cache) < _NAME_CACHE_MAX:
            _name_cache[name] = cached
    return cached


class _DateCache:
    """The Date field, formatted once a second (RFC 9110 6.6.1)."""

    __slots__ = ("second", "field")

    def __init__(self):
        self.second = -1
        self.field = b""

    def get(self):
        now = int(_time.time())
        if now != self.second:
            self.second = now
            self.field = b"Date: " + _time.strftime(
                "%a, %d %b %Y %H:%M:%S GMT", _time.gmtime(now)
            ).encode("ascii") + b"\r\n"
        return self.field


_date = _DateCache()


class HttpServer(EventEmitter):
    """An HTTP/1.1 server listening on ``host``:``port``.

    Emits: start(), stop(), exchange(HttpServerExchange).

    Settings (class variables, or set on an instance):
    ``tcp_server_class`` (what listens; must implement thor.TcpServer),
    ``idle_timeout`` (seconds an idle persistent connection is kept; None to
    disable), ``request_timeout`` (seconds a client has to send a whole
    request head once it has started one: slow clients get 408),
    ``parser_limits`` (keyword arguments for thor.http.parser.HttpParser).
    """

    tcp_server_class = TcpServer
    idle_timeout = 60
    request_timeout = 30
    parser_limits = {}
    # Bytes of unparsed input kept while a response is outstanding before
    # the connection stops reading from the client.
    inbuf_limit = 65536

    def __init__(self, host, port, loop=None, *, tls_context=None, reuse_port=False):
        EventEmitter.__init__(self)
        self._loop = loop or thor.loop._loop
        if tls_context is not None:
            from thor.tls import TlsServer

            kwargs = {"reuse_port": True} if reuse_port else {}
            self.tcp_server = TlsServer(host, port, tls_context, self._loop, **kwargs)
        elif reuse_port:
            self.tcp_server = self.tcp_server_class(host, port, self._loop, reuse_port=True)
        else:
            self.tcp_server = self.tcp_server_class(host, port, self._loop)
        self.host = getattr(self.tcp_server, "host", host)
        self.port = getattr(self.tcp_server, "port", port)
        self.connections = set()
        self._draining = False
        self._stopped = False
        self.tcp_server.on("start", self._on_start)
        self.tcp_server.on("connect", self._on_connect)
        self.tcp_server.on("stop", self._on_stop)

    def _on_start(self):
        self.emit("start")

    def _on_stop(self):
        if not self._draining:
            self._emit_stop()

    def _emit_stop(self):
        if not self._stopped:
            self._stopped = True
            self.emit("stop")

    def _on_connect(self, tcp_conn):
        if self._draining:
            tcp_conn.close()
            return
        self.connections.add(HttpServerConnection(self, tcp_conn))

    def _connection_closed(self, conn):
        self.connections.discard(conn)
        if self._draining and not self.connections:
            self._emit_stop()

    def close(self):
        """Stop listening and close every connection at once."""
        self._draining = False
        self.tcp_server.close()
        for conn in list(self.connections):
            conn.abort()

    shutdown = close

    def graceful_shutdown(self):
        """Stop listening; let exchanges in progress finish, close idle
        connections, and emit 'stop' once the last connection has closed."""
        self._draining = True
        self.tcp_server.close()
        for conn in list(self.connections):
            conn.drain()
        if not self.connections:
            self._emit_stop()


class HttpServerConnection:
    """One client connection: its parser, its exchanges, its timers."""

    __slots__ = (
        "server", "tcp", "loop", "parser", "exchange", "_out", "_flush_scheduled",
        "_closing", "_closed", "_in_parser", "_reading_paused", "_deadline",
        "_timer", "_draining", "_request_count",
    )

    def __init__(self, server, tcp_conn):
        self.server = server
        self.tcp = tcp_conn
        self.loop = server._loop
        self.parser = HttpParser(self, True, **server.parser_limits)
        self.exchange = None
        self._out = []
        self._flush_scheduled = False
        self._closing = False
        self._closed = False
        self._in_parser = False
        self._reading_paused = False
        self._draining = False
        self._request_count = 0
        self._deadline = None
        self._timer = None
        tcp_conn.on("data", self._on_data)
        tcp_conn.on("close", self._on_close)
        tcp_conn.on("pause", self._on_tcp_pause)
        self._set_deadline(server.idle_timeout)
        tcp_conn.pause(False)

    # -- timers: one lazily re-armed timer per connection ---------------------

    def _set_deadline(self, timeout):
        if timeout is None:
            self._deadline = None
            return
        self._deadline = _time.monotonic() + timeout
        if self._timer is None:
            self._timer = self.loop.schedule(timeout, self._on_timer)

    def _on_timer(self):
        self._timer = None
        deadline = self._deadline
        if deadline is None or self._closed:
            return
        remaining = deadline - _time.monotonic()
        if remaining > 0:
            self._timer = self.loop.schedule(remaining, self._on_timer)
            return
        exchange = self.exchange
        if exchange is None and self.parser.idle:
            self.abort()  # idle persistent connection: nothing to say
        elif exchange is None:
            self._reject(error.RequestTimeoutError("request head not received in time"))
        # An exchange in progress is governed by the application.

    # -- input ---------------------------------------------------------------

    def _on_data(self, data):
        if self._deadline is not None and self.exchange is None and self.parser.idle:
            self._set_deadline(self.server.request_timeout)
        self._in_parser = True
        try:
            self.parser.feed(data)
        finally:
            self._in_parser = False
        if (
            self.parser.paused
            and not self._reading_paused
            and self.parser.buffered > self.server.inbuf_limit
        ):
            self._pause_reading(True)

    def _pause_reading(self, paused):
        if self._reading_paused != paused and not self._closed:
            self._reading_paused = paused
            self.tcp.pause(paused)

    def on_request_head(self, method, uri, headers):
        parser = self.parser
        exchange = HttpServerExchange(self, method, uri, headers, parser.version)
        exchange._request_close = parser.close
        self.exchange = exchange
        self._request_count += 1
        self._deadline = None  # the exchange is the application's now
        if not self._emit(self.server, "exchange", exchange):
            return
        if not self._emit(exchange, "request_start", method, uri, headers):
            return
        if (
            parser.expect_continue
            and not exchange._started
            and not exchange._input_paused
            and not self._closed
        ):
            exchange._send_continue()

    def on_body(self, chunk):
        exchange = self.exchange
        if exchange is not None and exchange._request_live:
            self._emit(exchange, "request_body", chunk)

    def on_message_done(self, trailers):
        exchange = self.exchange
        if exchange is None:
            return
        exchange._request_done = True
        if exchange._request_live:
            if not self._emit(exchange, "request_done", trailers):
                return
        if self.exchange is exchange and not exchange._finished:
            # Read no further until this response is done (pipelining).
            self.parser.pause()

    def on_response_nonfinal(self, status, phrase, headers):  # pragma: no cover
        raise AssertionError("a request parser never reports responses")

    on_response_head = on_response_nonfinal

    def on_error(self, err):
        exchange = self.exchange
        if exchange is not None and exchange._request_live and not exchange._request_done:
            exchange._fail(err)
        self._reject(err)

    def _reject(self, err):
        """Answer a broken or late request with its status, then close."""
        exchange = self.exchange
        if exchange is not None and exchange._started:
            self.abort()
            return
        status, phrase = err.server_status or (b"400", b"Bad Request")
        body = (
            b"<html><head><title>" + status + b" " + phrase + b"</title></head><body><p>"
            + phrase + b"</p></body></html>\n"
        )
        self._out.append(
            b"HTTP/1.1 " + status + b" " + phrase + b"\r\n" + _date.get()
            + b"Content-Type: text/html\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n" + body
        )
        self.exchange = None
        self.close()

    def _emit(self, emitter, event, *args):
        """Emit to the application; an exception it raises is reported, the
        client gets a 500 if nothing was sent yet, and the connection closes.
        Returns False when the connection went away."""
        try:
            emitter.emit(event, *args)
        except Exception as exc:
            self.loop.exception_handler(self.loop, exc, emitter)
            exchange = self.exchange
            if exchange is not None:
                exchange._request_live = False
            if exchange is not None and not exchange._started and not self._closed:
                self._reject(error.InternalServerError(repr(exc)))
            else:
                self.abort()
            return False
        return not self._closed

    # -- output --------------------------------------------------------------

    def _write(self, data):
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.schedule(0, self._flush)

    def _flush(self):
        self._flush_scheduled = False
        out = self._out
        if out and not self._closed:
            self.tcp.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def _on_tcp_pause(self, paused):
        exchange = self.exchange
        if exchange is not None:
            exchange.emit("pause", paused)

    def _exchange_done(self, exchange, close):
        """The response of ``exchange`` is complete."""
        self._flush()
        if close or self._draining or (exchange._input_paused and not exchange._request_done):
            self.close()
            return
        if not exchange._request_done:
            # Still reading the request body; the next request waits for it.
            return
        self._next_request()

    def _next_request(self):
        self.exchange = None
        self._set_deadline(self.server.idle_timeout)
        if self._reading_paused:
            self._pause_reading(False)
        if self.parser.paused and not self._in_parser:
            self._in_parser = True
            try:
                self.parser.resume()
            finally:
                self._in_parser = False
        elif self.parser.paused:
            # Called from inside a parser callback: let feed() carry on.
            self.parser.resume_after_callback()

    # -- closing -------------------------------------------------------------

    def drain(self):
        """For graceful shutdown: close now if idle, else after this exchange."""
        self._draining = True
        if self.exchange is None and self.parser.idle:
            self.close()

    def close(self):
        """Flush what is written, then close."""
        if self._closed:
            return
        self._flush()
        self._closed = True
        self.tcp.close()

    def abort(self):
        """Close at once, dropping anything unsent."""
        if self._closed:
            return
        self._closed = True
        self._out.clear()
        abort = getattr(self.tcp, "abort", None)
        (abort or self.tcp.close)()

    def _on_close(self):
        self._closed = True
        self._deadline = None
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        exchange = self.exchange
        self.exchange = None
        if exchange is not None and not exchange._finished:
            exchange._fail(error.ConnectionClosedError("client closed the connection"))
        self.server._connection_closed(self)

    def tunnel(self):
        """Hand the TCP connection to the application (CONNECT, 101)."""
        self._flush()
        self._closed = True  # nothing of HTTP's is written to it from now on
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        tcp = self.tcp
        tcp.removeListener("data", self._on_data)
        tcp.removeListener("close", self._on_close)
        tcp.removeListener("pause", self._on_tcp_pause)
        leftover = self.parser.leftover()
        self.server._connection_closed(self)
        if not self._reading_paused:
            tcp.pause(True)
        return tcp, leftover


class HttpServerExchange(EventEmitter):
    """One request and its response.

    Emits: request_start(method, uri, headers), request_body(chunk),
    request_done(trailers), pause(paused) (output backpressure: stop calling
    response_body while paused), error(err) (the connection failed before
    the response was done; nothing else follows).

    Attributes: method, uri, req_hdrs, req_version (all bytes).
    """

    __slots__ = (
        "connection", "method", "uri", "req_hdrs", "req_version", "_started",
        "_finished", "_framing", "_length_left", "_request_close",
        "_request_done", "_request_live", "_input_paused", "_continue_state",
        "_close_after", "_is_head", "_tunnel_ok",
    )

    def __init__(self, connection, method, uri, headers, version):
        EventEmitter.__init__(self)
        self.connection = connection
        self.method = method
        self.uri = uri
        self.req_hdrs = headers
        self.req_version = version
        self._started = False
        self._finished = False
        self._framing = _FRAMING
        self._length_left = None
        self._request_close = False
        self._request_done = False
        self._request_live = True
        self._input_paused = False
        self._continue_state = 0  # 0: not needed or not sent, 1: sent
        self._close_after = False
        self._is_head = method == b"HEAD"
        self._tunnel_ok = False

    def __repr__(self):
        return "<HttpServerExchange %s %s>" % (
            self.method.decode("latin-1"), self.uri.decode("latin-1")
        )

    # -- input control ---------------------------------------------------------

    def pause(self, paused):
        """Stop (True) or resume (False) request_body events for this request."""
        paused = bool(paused)
        if paused == self._input_paused:
            return
        self._input_paused = paused
        conn = self.connection
        if conn.exchange is not self or self._request_done:
            return
        if paused:
            conn.parser.pause()
            conn._pause_reading(True)
        else:
            if conn.parser.expect_continue and not self._started:
                self._send_continue()
            conn._pause_reading(False)
            if not conn._in_parser:
                conn._in_parser = True
                try:
                    conn.parser.resume()
                finally:
                    conn._in_parser = False
            else:
                conn.parser.resume_after_callback()

    def _send_continue(self):
        if self._continue_state == 0 and self.req_version == b"1.1":
            self._continue_state = 1
            self.connection._write(_CONTINUE)
            self.connection._flush()

    # -- response --------------------------------------------------------------

    def response_nonfinal(self, status, phrase, headers):
        """Send an informational (1xx) response, e.g. 103 Early Hints."""
        status = encode_status(status)
        if status[:1] != b"1" or status == b"101":
            raise error.BadStatusError("response_nonfinal takes a 1xx status other than 101")
        if self._started:
            raise error.StateError("the final response has already started")
        head = self._head(status, encode_phrase(phrase), headers, _NO_BODY, nonfinal=True)
        if self.req_version == b"1.1" and not self.connection._closed:
            if status == b"100":
                self._continue_state = 1
            self.connection._write(head)
            self.connection._flush()

    def response_start(self, status, phrase, headers):
        """Start the response; thor chooses and writes the framing."""
        if self._started:
            raise error.StateError("response_start called twice")
        status = encode_status(status)
        phrase = encode_phrase(phrase)
        first = status[:1]
        if first == b"1" and status != b"101":
            raise error.BadStatusError("use response_nonfinal for 1xx responses")
        if self.method == b"CONNECT" and first == b"2" or status == b"101":
            framing = _NO_BODY
            self._tunnel_ok = True
        elif self.method == b"CONNECT":
            # A refused tunnel: whatever the client sent after its request
            # may be tunnel data, not HTTP, so do not read on.
            self._close_after = True
            framing = None
        elif self._is_head or status in _NO_BODY_STATUS:
            framing = _NO_BODY
        else:
            framing = None  # decided once the headers are known
        head = self._head(status, phrase, headers, framing)
        self._started = True
        if self.connection._closed:
            return
        self.connection._write(head)

    def _head(self, status, phrase, headers, framing, nonfinal=False):
        lines = [b"HTTP/1.1 ", status, b" ", phrase, b"\r\n"]
        append = lines.append
        content_length = None
        connection_tokens = None
        has_date = False
        upgrade = status == b"101"
        for name, value in headers:
            raw, lower = _field_name(name)
            value = encode_field_value(value)
            if lower in HOP_BY_HOP:
                if lower == b"connection":
                    connection_tokens = (connection_tokens or set()) | {
                        t.strip().lower() for t in value.split(b",")
                    }
                    continue
                if not (upgrade and lower == b"upgrade"):
                    continue
            elif lower == b"content-length":
                if framing is not None or nonfinal:
                    if not self._is_head or nonfinal:
                        continue  # no body here: the field would mislead
                elif content_length is None:
                    content_length = _parse_length(value)
                    continue
                elif _parse_length(value) != content_length:
                    raise error.BadHeaderError("conflicting Content-Length values")
                else:
                    continue
            elif lower == b"date":
                has_date = True
            append(raw)
            append(b": ")
            append(value)
            append(b"\r\n")
        if connection_tokens:
            # Fields the application named in Connection are hop-by-hop too.
            lines = _drop_named(lines, connection_tokens)
        if not has_date and not nonfinal:
            append(_date.get())
        if nonfinal:
            append(b"\r\n")
            return b"".join(lines)
        conn = self.connection
        close = self._request_close or conn._draining
        if framing is None:
            if content_length is not None:
                framing = _LENGTH
                self._length_left = content_length
                append(b"Content-Length: %d\r\n" % content_length)
            elif self.req_version == b"1.1":
                framing = _CHUNKED
                append(b"Transfer-Encoding: chunked\r\n")
            else:
                framing = _UNTIL_CLOSE
                close = True
        elif self._is_head and content_length is not None:
            append(b"Content-Length: %d\r\n" % content_length)
        self._framing = framing
        if upgrade:
            append(b"Connection: upgrade\r\n\r\n")
            return b"".join(lines)
        if self._tunnel_ok:
            append(b"\r\n")
            return b"".join(lines)
        if close or self._close_after:
            self._close_after = True
            append(b"Connection: close\r\n\r\n")
        elif self.req_version == b"1.0":
            append(b"Connection: keep-alive\r\n\r\n")
        else:
            append(b"\r\n")
        return b"".join(lines)

    def response_body(self, chunk):
        """Send a chunk of the response body (bytes, or str as UTF-8)."""
        if not self._started or self._finished:
            raise error.StateError("response_body outside a response")
        if chunk.__class__ is not bytes:
            chunk = _to_bytes(chunk)
        if not chunk:
            return
        framing = self._framing
        conn = self.connection
        if framing == _CHUNKED:
            data = b"%x\r\n%b\r\n" % (len(chunk), chunk)
        elif framing == _LENGTH:
            left = self._length_left - len(chunk)
            if left < 0:
                raise error.BodyLengthError(
                    "response body longer than its Content-Length"
                )
            self._length_left = left
            data = chunk
        elif framing == _UNTIL_CLOSE:
            data = chunk
        else:
            return  # HEAD, 204, 304: a body here is not sent
        if conn._closed:
            return
        conn._write(data)
        if len(data) > 16384:
            conn._flush()

    def response_done(self, trailers=None, close=False):
        """Finish the response; ``close=True`` closes the connection after it."""
        if not self._started:
            raise error.StateError("response_done before response_start")
        if self._finished:
            raise error.StateError("response_done called twice")
        conn = self.connection
        framing = self._framing
        if framing == _LENGTH and self._length_left:
            self._finished = True
            conn.abort()
            raise error.BodyLengthError(
                "response body %d bytes shorter than its Content-Length" % self._length_left
            )
        self._finished = True
        if framing == _CHUNKED and not conn._closed:
            if trailers:
                lines = [b"0\r\n"]
                for name, value in trailers:
                    raw, lower = _field_name(name)
                    if lower in HOP_BY_HOP or lower in _NOT_TRAILERS:
                        continue
                    lines.append(raw + b": " + encode_field_value(value) + b"\r\n")
                lines.append(b"\r\n")
                conn._write(b"".join(lines))
            else:
                conn._write(b"0\r\n\r\n")
        if conn._closed:
            return
        if self._tunnel_ok:
            conn._flush()
            return  # the application takes the connection with tunnel()
        conn._exchange_done(self, close or self._close_after or framing == _UNTIL_CLOSE)

    def tunnel(self):
        """After a 2xx answer to CONNECT or a 101 answer to an Upgrade,
        return ``(tcp_connection, buffered)``: the raw connection, paused, and
        any bytes the client sent after its request. HTTP is done with the
        connection; the application owns it from here."""
        if not self._tunnel_ok or not self._started:
            raise error.StateError("tunnel() needs a 2xx CONNECT or 101 response")
        self._finished = True
        return self.connection.tunnel()

    def abort(self):
        """Close the connection at once, whatever was sent (e.g. when an
        upstream failed half-way through a response)."""
        self._finished = True
        self._request_live = False
        self.connection.abort()

    @property
    def finished(self):
        """True once the response is done (or the exchange failed)."""
        return self._finished

    def _fail(self, err):
        if self._finished:
            return
        self._finished = True
        self._request_live = False
        self.emit("error", err)


_NOT_TRAILERS = frozenset(
    (b"content-length", b"host", b"content-type", b"content-encoding",
     b"content-range", b"cache-control", b"expires", b"date", b"location",
     b"retry-after", b"vary", b"authorization", b"set-cookie", b"www-authenticate")
)


def _parse_length(value):
    value = value.strip()
    if not value.isdigit() or not value.isascii() or len(value) > 18:
        raise error.BadHeaderError("Content-Length must be digits: %r" % value)
    return int(value)


def _drop_named(lines, tokens):
    """Remove field lines (quads of name, ': ', value, CRLF) named in Connection."""
    head, fields = lines[:5], lines[5:]
    kept = head
    for i in range(0, len(fields), 4):
        if fields[i].lower() not in tokens:
            kept.extend(fields[i : i + 4])
    return kept


def _to_bytes(chunk):
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError("body chunks must be bytes or str, not %s" % type(chunk).__name__)
