# Copied unchanged from /work/shared/bench-refs/asyncio_http_client.py, the thor project's shared
# benchmark references (see README.md beside this file); run by tests/bench/bench_refs.py.
"""
Reference HTTP/1.1 client load: stdlib asyncio.Protocol, C persistent
connections each running requests back to back, with a minimal hand-written
response reader (status line + Content-Length framing only). About as fast
as a pure-stdlib client gets; not a complete HTTP client.

Same protocol as thor_http_client.py: the first C requests are an untimed
warm-up, then N requests are timed.

usage: asyncio_http_client.py URL N C [TIMEOUT] [--uvloop]
prints one JSON line like thor_http_client.py
"""

import asyncio
import json
import resource
import sys
import time
from urllib.parse import urlsplit

argv = [a for a in sys.argv[1:] if not a.startswith("--")]
USE_UVLOOP = "--uvloop" in sys.argv[1:]
URL = urlsplit(argv[0])
N = int(argv[1])
C = int(argv[2])
TIMEOUT = float(argv[3]) if len(argv) > 3 else 120.0
TOTAL = N + C
HOST = URL.hostname
PORT = URL.port or 80
REQ = (
    b"GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
    % ((URL.path or "/").encode(), HOST.encode(), PORT)
)


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class State:
    def __init__(self, loop):
        self.issued = 0
        self.done = 0
        self.ok = 0
        self.errors = 0
        self.bytes = 0
        self.t0 = self.c0 = self.t1 = self.c1 = None
        self.finished = loop.create_future()
        self.first_error = None


class ClientProtocol(asyncio.Protocol):
    def __init__(self, state):
        self.st = state
        self.transport = None
        self.buf = b""
        self.need = None  # total bytes of the current response, once known
        self.status = None

    def connection_made(self, transport):
        self.transport = transport
        self.send()

    def send(self):
        st = self.st
        if st.issued >= TOTAL:
            self.transport.close()
            return
        st.issued += 1
        self.buf = b""
        self.need = None
        self.transport.write(REQ)

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        if self.need is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            head = buf[:end]
            self.status = head[9:12]
            lower = head.lower()
            i = lower.find(b"\r\ncontent-length:")
            if i < 0:
                self.fail("no Content-Length")
                return
            j = lower.find(b"\r\n", i + 2)
            clen = int(head[i + 17 : j if j > 0 else len(head)])
            self.need = end + 4 + clen
        if len(buf) < self.need:
            self.buf = buf
            return
        st = self.st
        st.bytes += self.need - (buf.find(b"\r\n\r\n") + 4)
        self.complete(self.status == b"200")

    def complete(self, ok):
        st = self.st
        st.done += 1
        if ok:
            st.ok += 1
        else:
            st.errors += 1
            st.first_error = st.first_error or f"status {self.status!r}"
        if st.done == C:
            st.t0, st.c0 = time.perf_counter(), cpu()
        if st.done >= TOTAL:
            st.t1, st.c1 = time.perf_counter(), cpu()
            if not st.finished.done():
                st.finished.set_result(None)
            self.transport.close()
            return
        self.send()

    def fail(self, why):
        self.st.first_error = self.st.first_error or why
        self.complete(False)

    def connection_lost(self, exc):
        pass


async def main():
    loop = asyncio.get_running_loop()
    st = State(loop)
    for _ in range(C):
        await loop.create_connection(lambda: ClientProtocol(st), HOST, PORT)
    try:
        await asyncio.wait_for(st.finished, TIMEOUT)
    except asyncio.TimeoutError:
        st.first_error = f"timed out after {TIMEOUT}s"
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
        out["error"] = f"{st.errors} errors, first: {st.first_error}"
    print(json.dumps(out))


if USE_UVLOOP:
    import uvloop

    if hasattr(uvloop, "run"):
        uvloop.run(main())
    else:
        uvloop.install()
        asyncio.run(main())
else:
    asyncio.run(main())
