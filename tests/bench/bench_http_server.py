"""Benchmark thor's HttpServer beside a minimal asyncio HTTP server.

    python3 tests/bench/bench_http_server.py [--quick] [--seconds N]
        [--rounds N] [--connections N] [--loadgen wrk|stdlib] [--profile]
        [--pipeline N] [--layers]

Both servers answer every request with the same hello-world response
(13-byte body, ``Content-Type`` and ``Content-Length``; thor adds its
``Date``). Each runs in its own child process; the load comes from ``wrk``
when it is installed, else from a stdlib load generator in another process
(non-blocking raw sockets, pre-built requests, many connections). The
figure that counts is the server process's CPU time (user + system, read
from ``/proc/<pid>/stat``, or ``os.times()`` reported by the child) per
request answered, so the load generator's own cost and the machine's core
count matter little; it is printed with its user and system parts. The two
servers take turns for ``--rounds`` rounds (3; ``--seconds`` 4 each) and
the lowest figure of each is compared: on a shared machine, other work
only ever adds to a run's CPU time.

Runs, in one go: keep-alive, and ``Connection: close`` (one request per
connection). Targets (issue 4): keep-alive <= 1.5x asyncio's CPU per
request, Connection: close <= 1.2x. ``--pipeline N`` also sends N requests
(100,000 if N is left out) pipelined on one connection, all at once, to
each server and checks that every response arrived, reporting the server's
peak RSS growth. ``--profile`` runs thor's server under
cProfile for the keep-alive load and prints the top functions.
``--layers`` prints, instead, in-process CPU microseconds per keep-alive
request for each layer (no load generator, no second process): the parser
alone, the HTTP server over a stand-in transport (parser, server and the
hello-world handler), the whole server over a socketpair, and a bare
TcpConnection answering with a canned response; the socketpair figures
include the test's own send and recv.

The issue 12 figures (thor beside the shared Protocol reference
refs/asyncio_http_server.py and upstream Thor 0.17; keep-alive,
Connection: close, 1 MiB bodies, idle connection memory; programs pinned to
their own CPU, median of rounds) come from tests/bench/bench_refs.py.
"""

import argparse
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

BODY = b"Hello, world!"
assert len(BODY) == 13

# -- the servers (each runs in a child process: python3 -c SOURCE) -------------

# Source, so that the child process and --layers run the same handler.
HELLO_HANDLER = r'''
def on_exchange(exch):
    def request_start(method, uri, headers):
        exch.response_start(200, "OK", [("Content-Type", "text/plain"),
                                         ("Content-Length", "13")])
        exch.response_body(b"Hello, world!")
        exch.response_done([])
    exch.on("request_start", request_start)
'''

THOR_SERVER = r'''
import os, sys
sys.path.insert(0, %(root)r)
import thor, thor.loop
from thor.http.server import HttpServer
%(handler)s
loop = thor.loop.make()
server = HttpServer("127.0.0.1", 0, loop)
server.on("exchange", on_exchange)
# Control: a line on stdin asks for this process's CPU times; EOF stops.
import thor.loop as tl
class Control(tl.EventSource):
    def _fd_ready(self, mask):
        line = sys.stdin.readline()
        if not line:
            loop.stop()
            return
        t = os.times()
        sys.stdout.write("%%r %%r\n" %% (t.user, t.system)); sys.stdout.flush()
control = Control(loop)
control.register_fd(sys.stdin.fileno(), "fd_readable")
print(server.port, flush=True)
if os.environ.get("BENCH_PROFILE"):
    import cProfile, pstats
    prof = cProfile.Profile()
    prof.enable()
    try:
        loop.run()
    finally:
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
else:
    loop.run()
'''

ASYNCIO_SERVER = r'''
import asyncio, os, sys
from email.utils import formatdate

RESPONSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"

class Hello(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""
    def data_received(self, data):
        buf = self.buf + data
        out = []
        close = False
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            buf = buf[end + 4:]
            if b"\r\nConnection: close" in head or b"\r\nconnection: close" in head:
                close = True
            out.append(RESPONSE_HEAD + b"Date: " + DATE[0] +
                       (b"\r\nConnection: close\r\n\r\n" if close else b"\r\n\r\n") +
                       b"Hello, world!")
            if close:
                break
        self.buf = buf
        if out:
            self.transport.write(b"".join(out))
        if close:
            self.transport.close()

DATE = [b""]
def tick(loop):
    DATE[0] = formatdate(usegmt=True).encode()
    loop.call_later(1, tick, loop)

def control(loop):
    line = sys.stdin.readline()
    if not line:
        loop.stop()
        return
    t = os.times()
    sys.stdout.write("%r %r\n" % (t.user, t.system)); sys.stdout.flush()

async def main():
    loop = asyncio.get_running_loop()
    tick(loop)
    server = await loop.create_server(Hello, "127.0.0.1", 0, backlog=511)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.add_reader(sys.stdin.fileno(), control, loop)
    await asyncio.Event().wait()

try:
    asyncio.run(main())
except RuntimeError:
    pass
'''


class Server:
    """A server child process, its port, and its CPU time."""

    def __init__(self, name, source, profile=False):
        self.name = name
        env = dict(os.environ)
        if profile:
            env["BENCH_PROFILE"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", source], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=env, bufsize=0,
        )
        self.port = int(self.proc.stdout.readline())

    def cpu(self):
        """The child's CPU seconds (user + system) so far."""
        return sum(self.cpu_split())

    def cpu_split(self):
        """The child's (user, system) CPU seconds so far."""
        try:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                fields = f.read().rpartition(")")[2].split()
            ticks = os.sysconf("SC_CLK_TCK")
            return int(fields[11]) / ticks, int(fields[12]) / ticks
        except OSError:
            self.proc.stdin.write(b"\n")
            user, system = self.proc.stdout.readline().split()
            return float(user), float(system)

    def rss(self):
        """Resident set size in bytes (None where /proc is missing)."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def stop(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- load generators -----------------------------------------------------------

KEEPALIVE_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
CLOSE_REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nAccept: */*\r\n"
    b"Connection: close\r\n\r\n"
)

STDLIB_LOADGEN = r'''
import os, selectors, socket, sys, time
port, seconds, conns, close = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
REQ = %(request)r
BODY = b"Hello, world!"
sel = selectors.DefaultSelector()
done = 0
errors = 0

def start():
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    sel.register(s, selectors.EVENT_WRITE, [b"", False])

for _ in range(conns):
    start()
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    for key, mask in sel.select(0.5):
        s, state = key.fileobj, key.data
        if mask & selectors.EVENT_WRITE:
            try:
                s.send(REQ)
            except OSError:
                errors += 1
                sel.unregister(s); s.close(); start()
                continue
            sel.modify(s, selectors.EVENT_READ, state)
            continue
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
            errors += 1
        if not data:
            sel.unregister(s); s.close()
            if close and state[1]:
                done += 1
            elif not close:
                errors += 1
            start()
            continue
        buf = state[0] + data
        if buf.endswith(BODY):
            if close:
                state[0] = b""
                state[1] = True
            else:
                done += 1
                state[0] = b""
                s.send(REQ)
        else:
            state[0] = buf
print(done, errors)
'''


def load_wrk(port, seconds, connections, close):
    cmd = ["wrk", "-t1", "-c%d" % connections, "-d%ds" % max(1, round(seconds)),
           "http://127.0.0.1:%d/" % port]
    if close:
        cmd[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return int(match.group(1)), (errors.group(1) if errors else "") + (
        (" non-2xx: " + non2xx.group(1)) if non2xx else "")


def load_stdlib(port, seconds, connections, close):
    source = STDLIB_LOADGEN % {"request": CLOSE_REQUEST if close else KEEPALIVE_REQUEST}
    out = subprocess.run(
        [sys.executable, "-c", source, str(port), str(seconds), str(connections),
         "1" if close else "0"],
        capture_output=True, text=True, check=True,
    ).stdout
    done, errors = out.split()
    return int(done), ("errors: " + errors) if int(errors) else ""


def measure(server, load, seconds, connections, close):
    load(server.port, 0.3, min(connections, 8), close)  # warm up
    user0, system0 = server.cpu_split()
    requests, note = load(server.port, seconds, connections, close)
    user1, system1 = server.cpu_split()
    return requests, (user1 - user0, system1 - system0), note


# -- pipelining ----------------------------------------------------------------


def pipeline(server, total=100_000):
    """Send ``total`` pipelined requests on one connection, all at once, and
    check that every response arrives (counted by their bodies). Returns
    (seconds, server CPU seconds, peak RSS growth)."""
    requests = [b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(total)]
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setblocking(False)
    rss0 = server.rss() or 0
    peak = rss0
    cpu0 = server.cpu()
    started = time.monotonic()
    out = memoryview(b"".join(requests))
    received = 0
    tail = b""
    while received < total:
        r, w, _ = select.select([sock], [sock] if out else [], [], 10)
        if not r and not w:
            raise AssertionError("pipelining stalled at %d responses" % received)
        if w:
            try:
                n = sock.send(out)
                out = out[n:]
            except BlockingIOError:
                pass
        if r:
            data = sock.recv(1 << 20)
            if not data:
                raise AssertionError("server closed after %d responses" % received)
            data = tail + data
            count = data.count(BODY)
            received += count
            tail = data[-16:]
            if tail.count(BODY):
                tail = tail[tail.rindex(BODY) + len(BODY):]
            if received % 5000 < count:
                peak = max(peak, server.rss() or 0)
    elapsed = time.monotonic() - started
    cpu = server.cpu() - cpu0
    sock.close()
    return elapsed, cpu, peak - rss0


def layers(requests=30000, rounds=5):
    """In-process CPU us per request for each layer (see the docstring)."""
    import thor.loop
    from thor.http.parser import HttpParser
    from thor.http.server import HttpServer, HttpServerConnection
    from thor.tcp import TcpConnection

    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
    canned = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
              b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\nHello, world!")
    handler = {}
    exec(HELLO_HANDLER, handler)
    on_exchange = handler["on_exchange"]

    class NullDelegate:
        def on_request_head(self, method, uri, headers): pass
        def on_body(self, chunk): pass
        def on_message_done(self, trailers): pass
        def on_error(self, err): raise err

    class StandInTransport:
        def on(self, event, listener): pass
        def pause(self, paused): pass
        def write(self, data): pass
        def close(self): pass

    loop = thor.loop.make()
    server = HttpServer("127.0.0.1", 0, loop)
    server.on("exchange", on_exchange)
    loop._running = True  # passes are run by hand below

    def parser_only():
        feed = HttpParser(NullDelegate(), True).feed
        for _ in range(requests):
            feed(request)

    def http_layer():
        on_data = HttpServerConnection(server, StandInTransport())._on_data
        for _ in range(requests):
            on_data(request)

    def over_socketpair(tcp_side):
        def run():
            ours, theirs = socket.socketpair()
            tcp_side(TcpConnection(ours, "socketpair", 0, loop))
            send, recv, one_pass = theirs.send, theirs.recv, loop._run_once
            for _ in range(requests):
                send(request)
                one_pass()
                recv(65536)
        return run

    def bare(tcp):
        tcp.on("data", lambda data: tcp.write(canned))
        tcp.pause(False)

    for label, run in (
        ("parser alone", parser_only),
        ("HTTP server, stand-in transport", http_layer),
        ("HttpServer over a socketpair", over_socketpair(server._on_connect)),
        ("bare TcpConnection, canned answer", over_socketpair(bare)),
    ):
        best = None
        for _ in range(rounds):
            began = time.process_time()
            run()
            took = time.process_time() - began
            best = took if best is None else min(best, took)
        print("  %-34s %6.2f us CPU/request (best of %d)" % (label, best / requests * 1e6, rounds))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loadgen", choices=("wrk", "stdlib"), default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--pipeline", type=int, nargs="?", const=100_000, default=None)
    parser.add_argument("--layers", action="store_true")
    args = parser.parse_args()
    if args.layers:
        print("thor, in-process, per keep-alive request (python %s):" % sys.version.split()[0])
        layers()
        return 0
    seconds = args.seconds or (2.0 if args.quick else 4.0)
    if args.quick or args.profile:
        args.rounds = 1
    loadgen = args.loadgen or ("wrk" if shutil.which("wrk") else "stdlib")
    load = load_wrk if loadgen == "wrk" else load_stdlib
    print("thor HttpServer vs minimal asyncio server: %s, %d connections, %.0f s per run,"
          " python %s" % (loadgen, args.connections, seconds, sys.version.split()[0]))
    servers = [
        Server("thor", THOR_SERVER % {"root": ROOT, "handler": HELLO_HANDLER},
               profile=args.profile),
        Server("asyncio", ASYNCIO_SERVER),
    ]
    verdicts = []
    try:
        for close, label, limit in ((False, "keep-alive", 1.5), (True, "Connection: close", 1.2)):
            if args.profile and close:
                break
            per = {}  # server name -> the lowest CPU us per request of any round
            for round_ in range(args.rounds):
                for server in servers:
                    requests, (user, system), note = measure(
                        server, load, seconds, args.connections, close)
                    cpu = user + system
                    figure = cpu / requests * 1e6 if requests else float("inf")
                    per[server.name] = min(per.get(server.name, figure), figure)
                    print("  %-18s %-8s %8d requests  %7.0f req/s  CPU %6.2f s  %6.1f us/request"
                          " (user %.1f, system %.1f) %s"
                          % (label, server.name, requests, requests / seconds, cpu, figure,
                             user / requests * 1e6 if requests else 0,
                             system / requests * 1e6 if requests else 0, note))
            ratio = per["thor"] / per["asyncio"]
            met = ratio <= limit
            verdicts.append((label, ratio, limit, met))
            print("  %-18s lowest of %d: thor %.1f us, asyncio %.1f us per request;"
                  " ratio thor/asyncio %.2fx (target <= %.1fx) %s"
                  % (label, args.rounds, per["thor"], per["asyncio"], ratio, limit,
                     "MET" if met else "MISSED"))
        if args.pipeline:
            for server in servers:
                elapsed, cpu, growth = pipeline(server, args.pipeline)
                print("  pipelined %-8s %d requests on one connection, all answered in %.2f s,"
                      " CPU %.1f us/request, peak RSS growth %.1f MiB"
                      % (server.name, args.pipeline, elapsed, cpu / args.pipeline * 1e6,
                         growth / 2**20))
    finally:
        for server in servers:
            server.stop()
    return 0 if all(v[3] for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
