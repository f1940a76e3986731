# Copied unchanged from /work/shared/bench-refs/thor_proxy.py, the thor project's shared
# benchmark references (see README.md beside this file); run by tests/bench/bench_refs.py.
"""
A tiny thor reverse proxy, written against thor's public API only: each
server exchange starts a client exchange to the backend and the two are
wired together event by event, streaming (request_start/body/done forward,
response_start/body/done back). Errors before the response starts become a
502; after, the response is ended.

thor 0.17 caps client connections per origin (HttpClient.max_server_conn,
default 6); where that attribute exists it is raised so the backend pool is
not the bottleneck.

usage: thor_proxy.py PORT BACKEND_PORT
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
from thor.http import HttpClient, HttpServer

PORT = int(sys.argv[1])
BACKEND = b"http://127.0.0.1:%d" % int(sys.argv[2])

client = HttpClient()
if hasattr(client, "max_server_conn"):
    client.max_server_conn = 1000


def on_exchange(sx):
    def request_start(method, uri, headers):
        cx = client.exchange()
        state = {"started": False, "done": False}

        def response_start(status, phrase, res_headers):
            state["started"] = True
            sx.response_start(status, phrase, res_headers)

        def response_body(chunk):
            sx.response_body(chunk)

        def response_done(trailers):
            state["done"] = True
            sx.response_done(trailers)

        def error(err):
            if state["done"]:
                return
            state["done"] = True
            if not state["started"]:
                sx.response_start(
                    b"502", b"Bad Gateway",
                    [(b"Content-Type", b"text/plain"), (b"Content-Length", b"11")],
                )
                sx.response_body(b"Bad Gateway")
            sx.response_done([])

        cx.on("response_start", response_start)
        cx.on("response_body", response_body)
        cx.on("response_done", response_done)
        cx.on("error", error)
        sx.on("request_body", cx.request_body)
        sx.on("request_done", cx.request_done)
        cx.request_start(method, BACKEND + uri, headers)

    sx.on("request_start", request_start)


server = HttpServer(b"127.0.0.1", PORT)
server.on("exchange", on_exchange)

profile_to = os.environ.get("BENCH_PROFILE")
if profile_to:  # run under cProfile; stats are dumped on SIGTERM
    import cProfile

    prof = cProfile.Profile()

    def _dump(signum, frame):
        prof.disable()
        prof.dump_stats(profile_to)
        os._exit(0)

    signal.signal(signal.SIGTERM, _dump)
    prof.enable()
thor.run()
