"""thor's HttpServer over HTTP/2 beside itself over HTTP/1.1: CPU per request.

    python3 tests/bench/bench_h2.py [--seconds 5] [--rounds 3]
        [--connections 50] [--streams 10] [--profile FILE]

One server program (tests/bench/refs/thor_http_server.py, the shared
hello-world reference: 13-byte body with Content-Length; HttpServer serves
HTTP/2 on the same port when a connection opens with the preface) runs
pinned to CPU 1 (``taskset -c 1``), a fresh process per run; the load runs
on CPU 0:

  HTTP/1.1   wrk -t1 -c50 -d5s http://127.0.0.1:PORT/
  HTTP/2     h2load -t1 -c50 -m10 -D 5 http://127.0.0.1:PORT/
             (cleartext, prior knowledge)

The figure is the server's CPU time (user + system, /proc/PID/stat, read
before and after the load) divided by the requests answered, in µs; the
lowest of ``--rounds`` is printed for each, and their ratio (issue 14's
target: HTTP/2 at most 1.2x HTTP/1.1). ``--profile FILE`` runs the HTTP/2
load once more with the server under cProfile (BENCH_PROFILE) and prints
the top functions. ``--hypercorn PYTHON`` (a Python with hypercorn
installed, e.g. in a virtualenv made for this: ``pip install hypercorn``;
thor itself never needs it) also runs the same h2load load against
hypercorn serving the same response from a minimal ASGI application, in
one process (``hypercorn.asyncio.serve``, no worker processes), the
pure-Python HTTP/2 server issue 14 compares with. Needs wrk and h2load
(Linux only: /proc, taskset); not collected by the test runner.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SERVER = os.path.join(HERE, "refs", "thor_http_server.py")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HYPERCORN_APP = r'''
import asyncio, sys
from hypercorn.asyncio import serve
from hypercorn.config import Config

HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"Hello, world!"})

config = Config()
config.bind = ["127.0.0.1:%s" % sys.argv[1]]
config.accesslog = None
config.errorlog = None
asyncio.run(serve(app, config))
'''


def start_server(port, profile=None, python=None):
    env = dict(os.environ, PYTHONPATH=ROOT)
    if profile:
        env["BENCH_PROFILE"] = profile
    if python:
        cmd = [python, "-c", HYPERCORN_APP, str(port)]
        env.pop("PYTHONPATH")
    else:
        cmd = [sys.executable, SERVER, str(port)]
    proc = subprocess.Popen(
        ["taskset", "-c", "1"] + cmd, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("server exited: %s" % proc.stderr.read().decode())
            time.sleep(0.05)
    raise SystemExit("server did not start")


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wrk_cmd(opt, port):
    return ["taskset", "-c", "0", "wrk", "-t1", "-c%d" % opt.connections,
            "-d%ds" % opt.seconds, "http://127.0.0.1:%d/" % port]


def h2load_cmd(opt, port):
    return ["taskset", "-c", "0", "h2load", "-t1", "-c%d" % opt.connections,
            "-m%d" % opt.streams, "-D", str(opt.seconds), "http://127.0.0.1:%d/" % port]


def count_wrk(out):
    match = re.search(r"(\d+) requests in", out)
    if not match or "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit("wrk failed:\n" + out)
    return int(match.group(1))


def count_h2load(out):
    match = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored", out)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    if not match or not codes or int(match.group(2)) or int(match.group(3)):
        raise SystemExit("h2load failed:\n" + out)
    return int(codes.group(1))


def measure(opt, make_cmd, count, profile=None, python=None):
    port = free_port()
    proc = start_server(port, profile, python)
    try:
        before = cpu_seconds(proc.pid)
        out = subprocess.run(make_cmd(opt, port), capture_output=True, text=True,
                             check=False).stdout
        after = cpu_seconds(proc.pid)
    finally:
        stop_server(proc)
    requests = count(out)
    return (after - before) / requests * 1e6, requests


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--profile", metavar="FILE")
    parser.add_argument("--hypercorn", metavar="PYTHON")
    opt = parser.parse_args()
    for tool in ("wrk", "h2load", "taskset"):
        if not shutil.which(tool):
            raise SystemExit("%s is not installed" % tool)
    print("server: taskset -c 1 %s %s PORT" % (sys.executable, SERVER))
    print("HTTP/1.1 load: %s" % " ".join(wrk_cmd(opt, 0)).replace(":0/", ":PORT/"))
    print("HTTP/2 load:   %s" % " ".join(h2load_cmd(opt, 0)).replace(":0/", ":PORT/"))
    if opt.hypercorn:
        print("hypercorn:     taskset -c 1 %s -c HYPERCORN_APP PORT (bench_h2.py), same h2load"
              % opt.hypercorn)
    h1s, h2s, hcs = [], [], []
    for n in range(opt.rounds):
        h1, n1 = measure(opt, wrk_cmd, count_wrk)
        h2, n2 = measure(opt, h2load_cmd, count_h2load)
        h1s.append(h1)
        h2s.append(h2)
        print("round %d: HTTP/1.1 %6.1f µs/request (%d requests)   "
              "HTTP/2 %6.1f µs/request (%d requests)   ratio %.2f"
              % (n + 1, h1, n1, h2, n2, h2 / h1))
        if opt.hypercorn:
            hc, n3 = measure(opt, h2load_cmd, count_h2load, python=opt.hypercorn)
            hcs.append(hc)
            print("         hypercorn HTTP/2 %6.1f µs/request (%d requests)   "
                  "hypercorn / thor %.1f" % (hc, n3, hc / h2))
    if h1s:
        best1, best2 = min(h1s), min(h2s)
        print("best:    HTTP/1.1 %6.1f µs/request              HTTP/2 %6.1f µs/request"
              "              ratio %.2f (target <= 1.2)" % (best1, best2, best2 / best1))
        if hcs:
            print("best:    hypercorn HTTP/2 %6.1f µs/request: %.1fx thor's HTTP/2 "
                  "(target >= 3)" % (min(hcs), min(hcs) / best2))
    if opt.profile:
        measure(opt, h2load_cmd, count_h2load, profile=opt.profile)
        import pstats
        pstats.Stats(opt.profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
