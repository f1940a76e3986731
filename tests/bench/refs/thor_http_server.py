# Copied unchanged from /work/shared/bench-refs/thor_http_server.py, the thor project's shared
# benchmark references (see README.md beside this file); run by tests/bench/bench_refs.py.
"""
thor HTTP server for the benchmarks, written against thor's public API only
(HttpServer, the 'exchange' event, request_start / request_done events,
response_start / response_body / response_done, thor.run).

  GET /        -> 200, "Hello, world!" (13 bytes, Content-Length)
  GET /1m      -> 200, 1 MiB body streamed in 64 KiB chunks (Content-Length)
  GET /100m    -> 200, 100 MiB body streamed in 64 KiB chunks (Content-Length)
  GET /bytes/N -> 200, N bytes streamed in 64 KiB chunks

Large bodies are streamed, never built in memory: the script writes chunks
until the library signals back-pressure with a 'pause' event (True), and
resumes on 'pause' (False). It listens for 'pause' on the exchange (the
natural place for it); thor 0.17 emits it on the exchange's connection
(exchange.http_conn) instead, so that is listened to as well when present.
A library with neither will buffer the whole body and its peak RSS shows it.

usage: thor_http_server.py PORT
env BENCH_PROFILE=FILE: run under cProfile, dump stats to FILE on SIGTERM.
"""

import os
import signal
import sys

try:
    import resource

    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
except (ImportError, ValueError, OSError):
    pass

import thor
from thor.http import HttpServer

PORT = int(sys.argv[1])
HELLO = b"Hello, world!"
HELLO_HDRS = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"13")]
CHUNK = b"x" * 65536
SIZES = {b"/1m": 1 << 20, b"/100m": 100 << 20}


class Stream:
    "Writes `size` bytes of body to an exchange, honouring back-pressure."

    __slots__ = ("ex", "left", "paused", "done", "pumping")

    def __init__(self, ex, size):
        self.ex = ex
        self.left = size
        self.paused = False
        self.done = False
        self.pumping = False

    def on_pause(self, paused):
        if self.done:
            return
        self.paused = paused
        if not paused and not self.pumping:
            self.pump()

    def pump(self):
        ex = self.ex
        self.pumping = True
        try:
            while self.left > 0 and not self.paused:
                n = min(self.left, len(CHUNK))
                self.left -= n
                ex.response_body(CHUNK if n == len(CHUNK) else CHUNK[:n])
        finally:
            self.pumping = False
        if self.left <= 0 and not self.done:
            self.done = True
            ex.response_done([])


def _conn_pause(conn_streams):
    def listener(paused):
        stream = conn_streams.get("current")
        if stream is not None:
            stream.on_pause(paused)
    return listener


def start_stream(ex, size):
    stream = Stream(ex, size)
    ex.on("pause", stream.on_pause)
    conn = getattr(ex, "http_conn", None)
    if conn is not None and hasattr(conn, "on"):
        # one listener per connection, pointed at its current stream, so
        # listeners don't pile up on a keep-alive connection
        slot = getattr(conn, "_bench_streams", None)
        if slot is None:
            slot = {}
            try:
                conn._bench_streams = slot
                conn.on("pause", _conn_pause(slot))
            except AttributeError:
                slot = None
        if slot is not None:
            slot["current"] = stream
    ex.response_start(
        b"200",
        b"OK",
        [(b"Content-Type", b"application/octet-stream"),
         (b"Content-Length", b"%d" % size)],
    )
    stream.pump()


def on_exchange(ex):
    state = {}

    def request_start(method, uri, headers):
        state["uri"] = uri

    def request_done(trailers):
        uri = state.get("uri", b"/")
        size = SIZES.get(uri)
        if size is None and uri.startswith(b"/bytes/"):
            size = int(uri[7:])
        if size is None:
            ex.response_start(b"200", b"OK", list(HELLO_HDRS))
            ex.response_body(HELLO)
            ex.response_done([])
        else:
            start_stream(ex, size)

    ex.on("request_start", request_start)
    ex.on("request_done", request_done)


server = HttpServer(b"127.0.0.1", PORT)
server.on("exchange", on_exchange)

def run_loop():
    "thor.run(), under cProfile when BENCH_PROFILE names a stats file."
    profile_to = os.environ.get("BENCH_PROFILE")
    if not profile_to:
        thor.run()
        return
    import cProfile

    prof = cProfile.Profile()

    def _dump(signum, frame):
        prof.disable()
        prof.dump_stats(profile_to)
        os._exit(0)

    signal.signal(signal.SIGTERM, _dump)
    prof.enable()
    thor.run()


run_loop()
