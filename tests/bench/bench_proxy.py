"""Benchmark thor.http.proxy against a minimal stdlib asyncio reverse proxy.

    python3 tests/bench/bench_proxy.py [--seconds 5] [--connections 16]
                                       [--big-mib 1024] [--skip-big] [--skip-workers]
                                       [--load auto|wrk|python]

Every party runs in its own process, on loopback:

- a fast origin (asyncio Protocol, fixed 200 response with Content-Length,
  keep-alive);
- the proxy under test: ``python -m thor.http.proxy --upstream ...``, and
  two asyncio reverse proxies: one written here with asyncio streams (parse
  the request head, forward it over a kept-alive origin connection, relay
  the response by its Content-Length), and the shared Protocol reference
  (refs/asyncio_proxy.py, callbacks instead of ``await`` per request; the
  streams one costs about twice its CPU, so the ratio against the Protocol
  relay is the one the project's targets use);
- a load generator: ``--connections`` keep-alive connections, one request
  at a time on each, for ``--seconds``: ``wrk`` when it is installed (it
  costs little CPU, which leaves the proxies the machine), else an asyncio
  one written here (``--load`` chooses).

Reported for each proxy: requests per second, and the proxy's CPU time
(user + system, from /proc/<pid>/stat) per request in microseconds. Then:
one ``--big-mib`` body (1 GiB by default) through thor's proxy to a slow
client, with the growth of the proxy's peak RSS (VmHWM from
/proc/<pid>/status, minus its RSS before the transfer); and thor's
throughput with --workers 1 and --workers 2.

The side-by-side figures of issue 12 (nginx origin, programs pinned to
their own CPU, median of rounds, the public-API proxy and forward mode
too) come from tests/bench/bench_refs.py --jobs proxy.

Targets (issue 6): thor's CPU per request at most 2x the asyncio proxy's;
the 1 GiB body keeps the proxy's memory growth under 32 MiB; --workers 2
serves more requests per second than --workers 1 (on two or more cores).
Linux only (/proc).
"""

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BODY = b"x" * 1024
TICK = os.sysconf("SC_CLK_TCK")


# -- the origin ----------------------------------------------------------------


class _Origin(asyncio.Protocol):
    """Answers every request with a fixed response; a request whose target
    starts with /big/N gets an N-byte body, written as fast as the
    connection drains."""

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
        self.response = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
            % len(BODY) + BODY
        )
        self.writable = asyncio.Event()
        self.writable.set()

    def pause_writing(self):
        self.writable.clear()

    def resume_writing(self):
        self.writable.set()

    def data_received(self, data):
        buffer = self.buffer + data
        out = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            buffer = buffer[end + 4:]
            if head.startswith(b"GET /big/"):
                size = int(head[9:head.index(b" ", 9)])
                asyncio.ensure_future(self._big(size))
            else:
                out.append(self.response)
        self.buffer = buffer
        if out:
            self.transport.write(b"".join(out))

    async def _big(self, size):
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
        )
        chunk = b"y" * 262144
        while size > 0:
            await self.writable.wait()
            piece = chunk if size >= len(chunk) else chunk[:size]
            self.transport.write(piece)
            size -= len(piece)


def run_origin(port):
    loop = asyncio.new_event_loop()
    loop.run_until_complete(
        loop.create_server(_Origin, "127.0.0.1", port, reuse_address=True)
    )
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    loop.run_forever()


# -- the minimal asyncio reverse proxy -----------------------------------------


async def _asyncio_proxy_connection(reader, writer, origin_port):
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", origin_port)
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = 0
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                length = int(head[at + 17:head.index(b"\r\n", at + 2)])
            up_writer.write(head)
            if length:
                up_writer.write(await reader.readexactly(length))
            response = await up_reader.readuntil(b"\r\n\r\n")
            lower = response.lower()
            at = lower.find(b"\r\ncontent-length:")
            length = int(response[at + 17:response.index(b"\r\n", at + 2)]) if at >= 0 else 0
            writer.write(response)
            while length > 0:
                piece = await up_reader.read(min(length, 262144))
                if not piece:
                    raise ConnectionError("origin closed")
                writer.write(piece)
                length -= len(piece)
                await writer.drain()
            await writer.drain()
    finally:
        writer.close()
        up_writer.close()


def run_asyncio_proxy(port, origin_port):
    loop = asyncio.new_event_loop()

    async def handle(reader, writer):
        try:
            await _asyncio_proxy_connection(reader, writer, origin_port)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass

    loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", port, reuse_address=True))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    loop.run_forever()


# -- the load generator ----------------------------------------------------------


class _Load(asyncio.Protocol):
    """One keep-alive connection sending a request whenever the previous
    response is complete."""

    request = b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n"

    def __init__(self, counter, deadline):
        self.counter = counter
        self.deadline = deadline
        self.buffer = b""
        self.need = None
        self.done = asyncio.get_event_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        buffer = self.buffer + data
        while True:
            if self.need is None:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = buffer[:end].lower()
                at = head.find(b"content-length:")
                line_end = head.find(b"\r\n", at)
                self.need = end + 4 + int(head[at + 15:line_end if line_end > 0 else None])
            if len(buffer) < self.need:
                break
            buffer = buffer[self.need:]
            self.need = None
            self.counter[0] += 1
            if time.monotonic() < self.deadline:
                self.transport.write(self.request)
            else:
                self.transport.close()
                break
        self.buffer = buffer

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(None)


def run_load(port, connections, seconds):
    """Returns the number of responses received in ``seconds``."""
    loop = asyncio.new_event_loop()
    counter = [0]

    async def go():
        deadline = time.monotonic() + seconds
        protocols = []
        for _ in range(connections):
            _, protocol = await loop.create_connection(
                lambda: _Load(counter, deadline), "127.0.0.1", port
            )
            protocols.append(protocol)
        await asyncio.gather(*(p.done for p in protocols))

    loop.run_until_complete(go())
    loop.close()
    return counter[0]


WRK = None  # set by main(): the path of wrk, when it is used


def _load_process(port, connections, seconds):
    """Run the load generator in its own process; return (responses, seconds)."""
    if WRK:
        out = subprocess.run(
            [WRK, "-t1", "-c%d" % connections, "-d%ds" % max(1, round(seconds)),
             "http://127.0.0.1:%d/hello" % port],
            check=True, stdout=subprocess.PIPE, universal_newlines=True,
        ).stdout
        match = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
        count, elapsed, unit = int(match.group(1)), float(match.group(2)), match.group(3)
        return count, elapsed / 1000 if unit == "ms" else elapsed
    code = (
        "import sys, time; sys.path.insert(0, %r); import bench_proxy as b; "
        "t = time.monotonic(); n = b.run_load(%d, %d, %r); "
        "print(n, time.monotonic() - t)" % (HERE, port, connections, seconds)
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.PIPE).stdout
    count, elapsed = out.split()
    return int(count), float(elapsed)


# -- process helpers ---------------------------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nothing listens on port %d" % port)


def cpu_seconds(pid):
    """User + system CPU seconds of ``pid`` and its reaped children... and
    of its live children too (for --workers)."""
    total = 0.0
    pids = [pid] + _children(pid)
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def spawn(args, ready_line=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    if ready_line:
        proc.stdout.readline()
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the measurements ----------------------------------------------------------------


def measure(port, pid, connections, seconds):
    _load_process(port, connections, 0.5)  # warm up: pools, caches
    before = cpu_seconds(pid)
    count, elapsed = _load_process(port, connections, seconds)
    cpu = cpu_seconds(pid) - before
    return count / elapsed, cpu / max(count, 1) * 1e6


def big_body(origin_port, mib):
    port = free_port()
    proxy = spawn([sys.executable, "-m", "thor.http.proxy", "--listen", "127.0.0.1:%d" % port,
                   "--upstream", "http://127.0.0.1:%d" % origin_port])
    try:
        wait_port(port)
        _load_process(port, 4, 0.3)  # warm: the baseline includes a working proxy
        baseline = status_kib(proxy.pid, "VmRSS")
        size = mib * 1048576
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /big/%d HTTP/1.1\r\nHost: bench\r\n\r\n" % size)
        received = 0
        head = b""
        start = time.monotonic()
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        received = len(head) - head.index(b"\r\n\r\n") - 4
        # Slow: small reads with a pause between them, so the proxy keeps
        # finding the client's window full.
        while received < size:
            data = sock.recv(65536)
            if not data:
                break
            received += len(data)
            time.sleep(0.0001)
        elapsed = time.monotonic() - start
        sock.close()
        peak = status_kib(proxy.pid, "VmHWM")
        return received, elapsed, (peak - baseline) / 1024.0, baseline / 1024.0
    finally:
        stop(proxy)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator: wrk (C, cheap, when installed) or the "
                        "asyncio one here; auto picks wrk when found")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--origin-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "origin":
        return run_origin(args.port)
    if args.role == "asyncio-proxy":
        return run_asyncio_proxy(args.port, args.origin_port)

    global WRK
    WRK = shutil.which("wrk") if args.load in ("auto", "wrk") else None
    if args.load == "wrk" and not WRK:
        parser.error("wrk is not installed")
    me = os.path.abspath(__file__)
    origin_port = free_port()
    origin = spawn([sys.executable, me, "--role", "origin", "--port", str(origin_port)], True)
    procs = [origin]
    try:
        results = {}
        aport = free_port()
        aproxy = spawn([sys.executable, me, "--role", "asyncio-proxy", "--port", str(aport),
                        "--origin-port", str(origin_port)], True)
        procs.append(aproxy)
        tport = free_port()
        tproxy = spawn([sys.executable, "-m", "thor.http.proxy", "--listen",
                        "127.0.0.1:%d" % tport, "--upstream", "http://127.0.0.1:%d" % origin_port])
        procs.append(tproxy)
        pport = free_port()
        pproxy = spawn([sys.executable, os.path.join(HERE, "refs", "asyncio_proxy.py"),
                        str(pport), str(origin_port)])
        procs.append(pproxy)
        wait_port(tport)
        wait_port(pport)
        print("keep-alive, %d connections, %.0f s each, 1 KiB responses, cpus=%d, load: %s"
              % (args.connections, args.seconds, os.cpu_count(), "wrk" if WRK else "python"))
        order = (("asyncio streams", aport, aproxy), ("asyncio Protocol", pport, pproxy),
                 ("thor proxy", tport, tproxy))
        for name, port, proc in order + order:
            rps, us = measure(port, proc.pid, args.connections, args.seconds)
            results.setdefault(name, []).append((rps, us))
            print("  %-16s %8.0f req/s  %7.1f us CPU/request" % (name, rps, us))
        stop(aproxy)
        stop(pproxy)
        stop(tproxy)
        a_us = min(us for _, us in results["asyncio streams"])
        p_us = min(us for _, us in results["asyncio Protocol"])
        t_us = min(us for _, us in results["thor proxy"])
        print("  ratio thor/asyncio streams CPU per request: %.2fx (target <= 2x)" % (t_us / a_us))
        print("  ratio thor/asyncio Protocol relay (refs/asyncio_proxy.py): %.2fx (issue 12 "
              "target <= 1.6x; see bench_refs.py)" % (t_us / p_us))

        if not args.skip_workers:
            print("--workers (thor, %d connections):" % (args.connections * 2))
            rates = {}
            for workers in (1, 2, 1, 2):
                wport = free_port()
                proc = spawn([sys.executable, "-m", "thor.http.proxy", "--listen",
                              "127.0.0.1:%d" % wport, "--workers", str(workers),
                              "--upstream", "http://127.0.0.1:%d" % origin_port])
                try:
                    wait_port(wport)
                    deadline = time.monotonic() + 10
                    while len(_children(proc.pid)) < workers and time.monotonic() < deadline:
                        time.sleep(0.02)
                    time.sleep(0.3)  # let every worker reach its listen()
                    rps, us = measure(wport, proc.pid, args.connections * 2, args.seconds)
                finally:
                    stop(proc)
                rates.setdefault(workers, []).append(rps)
                print("  --workers %d  %8.0f req/s  %7.1f us CPU/request" % (workers, rps, us))
            print("  workers 2 / workers 1: %.2fx (target > 1)"
                  % (max(rates[2]) / max(rates[1])))

        if not args.skip_big:
            received, elapsed, growth, base = big_body(origin_port, args.big_mib)
            print("big body: %d MiB to a slow client in %.1f s (%.0f MiB/s); proxy RSS "
                  "%.1f MiB before, peak growth %.1f MiB (target < 32 MiB)"
                  % (received // 1048576, elapsed, received / 1048576 / elapsed, base, growth))
    finally:
        for proc in procs:
            stop(proc)


if __name__ == "__main__":
    main()
