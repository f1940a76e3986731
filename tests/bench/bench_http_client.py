"""HTTP client benchmark: thor's HttpClient beside a stdlib asyncio client.

    python3 tests/bench/bench_http_client.py [--requests N] [--concurrency C]
        [--rounds R] [--server nginx|stdlib] [--profile]

Both clients make ``--requests`` (20,000) keep-alive HTTP/1.1 GETs with
``--concurrency`` (50) in flight, over 50 connections, to the same local
server: nginx when it is installed (run on a free port with a temporary
configuration), else a small stdlib server in its own process. Each client
runs in this process, one after the other, and its CPU time
(``getrusage(RUSAGE_SELF)``: this process only, the server is elsewhere;
microsecond resolution, where ``os.times()`` counts 10 ms ticks) is divided
by the number of requests. The runs alternate for ``--rounds`` rounds; for
each client the lowest user, system and total (user plus system) figures of
any round are reported, with thor's ratio to the asyncio clients for each.
User time is the clients' own work; system time is mostly the kernel's
loopback TCP, shared with the server, and is where contention from other
processes on the machine shows up as noise.

The asyncio clients are what a careful stdlib programmer would write: one
``asyncio.Protocol`` per connection parsing Content-Length responses with
``bytes.find`` (the stricter comparison), and the same with asyncio streams
(``readuntil`` / ``readexactly``).

Target (issue 5): thor at most 1.5x the asyncio Protocol client's CPU per
request. For the shared references (refs/asyncio_http_client.py, each
program in its own process pinned to its own CPU, nginx origin, median of
rounds) run tests/bench/bench_refs.py --jobs client.
"""

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

BODY = b"x" * 100


# -- the servers -----------------------------------------------------------------


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def start_nginx():
    """(process, port, cleanup) for nginx on a free port, or None."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if nginx is None:
        return None
    directory = tempfile.mkdtemp(prefix="thor-bench-nginx-")
    port = free_port()
    config = os.path.join(directory, "nginx.conf")
    with open(config, "w") as handle:
        handle.write("""
daemon off;
master_process off;
worker_processes 1;
error_log %(dir)s/error.log crit;
pid %(dir)s/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %(dir)s;
    proxy_temp_path %(dir)s;
    fastcgi_temp_path %(dir)s;
    uwsgi_temp_path %(dir)s;
    scgi_temp_path %(dir)s;
    keepalive_requests 1000000;
    keepalive_timeout 600;
    server {
        listen 127.0.0.1:%(port)d;
        location / { default_type text/plain; return 200 "%(body)s"; }
    }
}
""" % {"dir": directory, "port": port, "body": BODY.decode()})
    proc = subprocess.Popen(
        [nginx, "-c", config, "-p", directory],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    if not wait_for_port(port, proc):
        proc.kill()
        proc.wait()
        shutil.rmtree(directory, True)
        return None

    def cleanup():
        proc.terminate()
        proc.wait()
        shutil.rmtree(directory, True)

    return "nginx", port, cleanup


def wait_for_port(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def serve_stdlib(port):
    """A small selectors server answering every request head at once with a
    fixed 200 response; runs in its own process."""
    import selectors

    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
        % (len(BODY), BODY)
    )
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(512)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    buffers = {}
    while True:
        for key, _ in selector.select():
            if key.data is None:
                conn, _ = listener.accept()
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buffers[conn] = b""
                selector.register(conn, selectors.EVENT_READ, True)
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                selector.unregister(conn)
                conn.close()
                del buffers[conn]
                continue
            buf = buffers[conn] + data
            count = buf.count(b"\r\n\r\n")
            if count:
                buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
                conn.sendall(response * count)
            buffers[conn] = buf


def start_stdlib():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", str(port)]
    )
    if not wait_for_port(port, proc):
        proc.kill()
        raise SystemExit("the stdlib server did not start")

    def cleanup():
        proc.terminate()
        proc.wait()

    return "stdlib server", port, cleanup


def cpu_now():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def cpu_since(began):
    """(user, system) CPU seconds this process used since ``began``
    (a ``cpu_now()``)."""
    user, system = cpu_now()
    return user - began[0], system - began[1]


# -- the clients ------------------------------------------------------------------


def run_thor(port, requests, concurrency):
    import thor.loop
    from thor.http.client import HttpClient

    loop = thor.loop.make()
    client = HttpClient(loop)
    client.max_server_conn = concurrency
    url = b"http://127.0.0.1:%d/" % port
    headers = [(b"User-Agent", b"bench")]
    state = {"started": 0, "done": 0, "bytes": 0}

    def start():
        state["started"] += 1
        exchange = client.exchange()
        exchange.on("response_body", body)
        exchange.on("response_done", done)
        exchange.on("error", failed)
        exchange.request_start(b"GET", url, headers)
        exchange.request_done([])

    def body(chunk):
        state["bytes"] += len(chunk)

    def done(trailers):
        state["done"] += 1
        if state["started"] < requests:
            start()
        elif state["done"] == requests:
            loop.stop()

    def failed(err):
        loop.stop()
        raise SystemExit("thor client error: %s" % err)

    began = cpu_now()
    wall = time.monotonic()
    for _ in range(concurrency):
        start()
    loop.run()
    cpu = cpu_since(began)
    wall = time.monotonic() - wall
    client.close()
    loop.close()
    assert state["done"] == requests and state["bytes"] == requests * len(BODY), state
    return cpu, wall


def run_asyncio_protocol(port, requests, concurrency):
    import asyncio

    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: bench\r\n\r\n" % port

    class Client(asyncio.Protocol):
        def __init__(self, shared, finished):
            self.shared = shared
            self.finished = finished
            self.buf = b""
            self.need = None  # body bytes still expected

        def connection_made(self, transport):
            self.transport = transport
            self.send()

        def send(self):
            shared = self.shared
            if shared["started"] >= requests:
                self.transport.close()
                return
            shared["started"] += 1
            self.transport.write(request)

        def data_received(self, data):
            buf = self.buf + data if self.buf else data
            while True:
                if self.need is None:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head = buf[:end].lower()
                    at = head.find(b"\r\ncontent-length:")
                    if at < 0:
                        raise RuntimeError("no Content-Length")
                    line_end = head.find(b"\r\n", at + 2)
                    self.need = int(head[at + 17:line_end if line_end > 0 else None])
                    buf = buf[end + 4:]
                if len(buf) < self.need:
                    break
                self.shared["bytes"] += self.need
                buf = buf[self.need:]
                self.need = None
                self.shared["done"] += 1
                if self.shared["done"] == requests:
                    self.finished.set_result(None)
                self.send()
            self.buf = buf

    async def main():
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        shared = {"started": 0, "done": 0, "bytes": 0}
        transports = []
        for _ in range(concurrency):
            transport, _ = await loop.create_connection(
                lambda: Client(shared, finished), "127.0.0.1", port
            )
            transports.append(transport)
        await finished
        for transport in transports:
            transport.close()
        assert shared["bytes"] == requests * len(BODY), shared

    began = cpu_now()
    wall = time.monotonic()
    asyncio.run(main())
    return cpu_since(began), time.monotonic() - wall


def run_asyncio_streams(port, requests, concurrency):
    import asyncio

    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: bench\r\n\r\n" % port

    async def worker(shared):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while shared["started"] < requests:
            shared["started"] += 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            length = int(lower[at + 17:lower.find(b"\r\n", at + 2)])
            body = await reader.readexactly(length)
            shared["bytes"] += len(body)
        writer.close()

    async def main():
        shared = {"started": 0, "bytes": 0}
        await asyncio.gather(*(worker(shared) for _ in range(concurrency)))
        assert shared["bytes"] == requests * len(BODY), shared

    began = cpu_now()
    wall = time.monotonic()
    asyncio.run(main())
    return cpu_since(began), time.monotonic() - wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", choices=("nginx", "stdlib"), default=None)
    parser.add_argument("--profile", action="store_true",
                        help="profile one thor run with cProfile and print the top")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_stdlib(args.serve)
        return

    started = None
    if args.server != "stdlib":
        started = start_nginx()
        if started is None and args.server == "nginx":
            raise SystemExit("nginx could not be started")
    if started is None:
        started = start_stdlib()
    name, port, cleanup = started
    try:
        print("server: %s on 127.0.0.1:%d; %d GETs, %d in flight; Python %s"
              % (name, port, args.requests, args.concurrency, sys.version.split()[0]))
        if args.profile:
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.runcall(run_thor, port, args.requests, args.concurrency)
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
            return
        runs = {
            "thor": run_thor,
            "asyncio Protocol": run_asyncio_protocol,
            "asyncio streams": run_asyncio_streams,
        }
        # One short warm-up each (connections, caches, imports).
        for run in runs.values():
            run(port, min(2000, args.requests), args.concurrency)
        best = {}  # label -> [user, system, total], the lowest of any round
        for round_ in range(args.rounds):
            for label, run in runs.items():
                (user, system), wall = run(port, args.requests, args.concurrency)
                figures = [x / args.requests * 1e6 for x in (user, system, user + system)]
                print("  round %d  %-17s %6.1f us CPU/request (user %5.1f, system %5.1f)"
                      "  %7.0f requests/s"
                      % (round_ + 1, label, figures[2], figures[0], figures[1],
                         args.requests / wall))
                kept = best.setdefault(label, figures)
                best[label] = [min(a, b) for a, b in zip(kept, figures)]
        print("lowest of %d rounds (client CPU us per request):" % args.rounds)
        for label, (user, system, total) in best.items():
            print("  %-17s total %6.1f  user %5.1f  system %5.1f" % (label, total, user, system))
        for other in ("asyncio Protocol", "asyncio streams"):
            ratios = [a / b if b else float("inf") for a, b in zip(best["thor"], best[other])]
            print("ratio thor / %-17s total %.2fx  user %.2fx  system %.2fx"
                  % (other + ":", ratios[2], ratios[0], ratios[1])
                  + ("  (target total <= 1.5x: %s)" % ("OK" if ratios[2] <= 1.5 else "MISSED")
                     if other == "asyncio Protocol" else ""))
    finally:
        cleanup()


if __name__ == "__main__":
    main()
