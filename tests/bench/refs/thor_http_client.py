# Not from /work/shared/bench-refs/ (its asyncio_http_client.py names a
# thor_http_client.py that it does not include): written for
# tests/bench/bench_refs.py, public API only, so that thor and upstream
# Thor 0.17 run the same script.
"""
thor HTTP/1.1 client load, public API only (HttpClient, exchange,
request_start / request_done, response_start / response_body /
response_done / error, thor.run, thor.stop): C exchanges in flight, each
one starting the next when it completes, over up to C persistent
connections (max_server_conn is raised to C).

Same protocol and output as asyncio_http_client.py: the first C requests
are an untimed warm-up, then N requests are timed; CPU time is this
process's (getrusage) over the timed part.

usage: thor_http_client.py URL N C [TIMEOUT]
prints one JSON line: requests, done, ok, errors, bytes, seconds, rps,
cpu_us_per_req, cpu_util (and error, when something went wrong)
"""

import json
import resource
import sys
import time

import thor
from thor.http import HttpClient

argv = [a for a in sys.argv[1:] if not a.startswith("--")]
URL = argv[0].encode("ascii")
N = int(argv[1])
C = int(argv[2])
TIMEOUT = float(argv[3]) if len(argv) > 3 else 120.0
TOTAL = N + C


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class State:
    issued = 0
    done = 0
    ok = 0
    errors = 0
    bytes = 0
    t0 = c0 = t1 = c1 = None
    first_error = None


st = State()
client = HttpClient()
client.max_server_conn = C


def send():
    if st.issued >= TOTAL:
        return
    st.issued += 1
    ex = client.exchange()
    status = []

    def response_start(code, phrase, headers):
        status.append(code)

    def response_body(chunk):
        st.bytes += len(chunk)

    def response_done(trailers):
        complete(status[0] == b"200" if status else False, status)

    def error(err):
        st.first_error = st.first_error or repr(err)
        complete(False, status)

    ex.on("response_start", response_start)
    ex.on("response_body", response_body)
    ex.on("response_done", response_done)
    ex.on("error", error)
    ex.request_start(b"GET", URL, [])
    ex.request_done([])


def complete(ok, status):
    st.done += 1
    if ok:
        st.ok += 1
    else:
        st.errors += 1
        st.first_error = st.first_error or "status %r" % (status,)
    if st.done == C:
        st.t0, st.c0 = time.perf_counter(), cpu()
    if st.done >= TOTAL:
        st.t1, st.c1 = time.perf_counter(), cpu()
        thor.stop()
        return
    send()


def timed_out():
    st.first_error = st.first_error or "timed out after %ss" % TIMEOUT
    thor.stop()


for _ in range(C):
    send()
thor.schedule(TIMEOUT, timed_out)
thor.run()

out = {"requests": N, "done": st.done, "ok": st.ok, "errors": st.errors,
       "bytes": st.bytes}
if st.t1 is not None and st.t0 is not None:
    secs = st.t1 - st.t0
    timed = st.done - C
    out["seconds"] = secs
    out["rps"] = timed / secs
    out["cpu_us_per_req"] = (st.c1 - st.c0) / timed * 1e6
    out["cpu_util"] = (st.c1 - st.c0) / secs
if st.errors or st.t1 is None:
    out["error"] = "%d errors, first: %s" % (st.errors, st.first_error)
print(json.dumps(out))
