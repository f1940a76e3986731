"""Transport benchmarks: thor beside a plain stdlib asyncio doing the same.

    python3 tests/bench/bench_transports.py [--duration 2] [--rounds 3] [--only NAME]

Each echo server runs in its own subprocess; this process is the load
generator (the same one for both servers), and reads the server's CPU time
before and after each run, so the CPU figures are the server's alone. The
two servers take turns, and the median of the rounds is reported.

- stream: one TCP connection, the client keeps 1 MiB in flight; MB/s echoed.
- rpc50: 50 TCP connections, each with one 64-byte message outstanding;
  server CPU microseconds per message (and messages/s).
- udp: 32 datagrams of 64 bytes in flight; datagrams/s echoed.

Targets (issue 3): rpc50 at most 1.5x asyncio's CPU per message; stream at
least 0.9x asyncio's MB/s. tests/bench/bench_refs.py --jobs tcp,udp runs
the shared references (refs/asyncio_*_echo.py, refs/loadgen_echo.py) and
upstream Thor 0.17 with each program pinned to its own CPU.
"""

import argparse
import os
import selectors
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- the servers (run in a subprocess) -----------------------------------------


def report_cpu_on_request():
    """Answer each line on stdin with this process's CPU seconds so far."""

    def answer():
        for _ in sys.stdin:
            sys.stdout.write("%.6f\n" % time.process_time())
            sys.stdout.flush()
        os._exit(0)  # the parent went away

    threading.Thread(target=answer, daemon=True).start()


def serve_thor(kind):
    sys.path.insert(0, ROOT)
    import thor.loop
    from thor.tcp import TcpServer
    from thor.udp import UdpEndpoint

    loop = thor.loop.make()
    if kind == "udp":
        endpoint = UdpEndpoint(loop)
        endpoint.bind("127.0.0.1", 0)
        endpoint.on("datagram", endpoint.send)
        endpoint.pause(False)
        port = endpoint.port
    else:
        server = TcpServer("127.0.0.1", 0, loop)

        def on_connect(conn):
            conn.on("data", conn.write)
            # Echo at the pace the client reads: stop reading while the
            # write side is paused.
            conn.on("pause", conn.pause)
            conn.pause(False)

        server.on("connect", on_connect)
        port = server.port
    print(port, flush=True)
    report_cpu_on_request()
    loop.run()


def serve_asyncio(kind):
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

        def pause_writing(self):
            self.transport.pause_reading()

        def resume_writing(self):
            self.transport.resume_reading()

    class UdpEcho(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    async def main():
        loop = asyncio.get_running_loop()
        if kind == "udp":
            transport, _ = await loop.create_datagram_endpoint(
                UdpEcho, local_addr=("127.0.0.1", 0)
            )
            port = transport.get_extra_info("sockname")[1]
        else:
            server = await loop.create_server(Echo, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        report_cpu_on_request()
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the load generator ----------------------------------------------------------


class Server:
    def __init__(self, impl, kind):
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", impl, kind],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self.port = int(self.process.stdout.readline())

    def cpu(self):
        self.process.stdin.write("cpu\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def stop(self):
        self.process.stdin.close()
        self.process.wait(10)


def run_stream(port, duration):
    chunk = b"s" * 65536
    window = 1024 * 1024
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent = received = 0
    deadline = time.perf_counter() + duration
    while time.perf_counter() < deadline:
        for key, events in sel.select(0.5):
            if events & selectors.EVENT_READ:
                data = sock.recv(262144)
                received += len(data)
            if events & selectors.EVENT_WRITE and sent - received < window:
                try:
                    sent += sock.send(chunk)
                except BlockingIOError:
                    pass
        mask = selectors.EVENT_READ
        if sent - received < window:
            mask |= selectors.EVENT_WRITE
        sel.modify(sock, mask)
    sock.close()
    return received


def run_rpc(port, duration, connections=50, size=64):
    message = b"r" * size
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, [0])
        socks.append(sock)
        sock.send(message)
    done = 0
    deadline = time.perf_counter() + duration
    while time.perf_counter() < deadline:
        for key, _ in sel.select(0.5):
            sock = key.fileobj
            got = key.data
            got[0] += len(sock.recv(65536))
            while got[0] >= size:
                got[0] -= size
                done += 1
                sock.send(message)
    for sock in socks:
        sock.close()
    return done


def run_udp(port, duration, window=32, size=64):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(0.2)
    message = b"u" * size
    for _ in range(window):
        sock.send(message)
    done = 0
    deadline = time.perf_counter() + duration
    while time.perf_counter() < deadline:
        try:
            sock.recv(65536)
        except socket.timeout:
            for _ in range(window):  # replace what was lost
                sock.send(message)
            continue
        done += 1
        sock.send(message)
    sock.close()
    return done


RUNS = {"stream": run_stream, "rpc50": run_rpc, "udp": run_udp}


def measure(impl, kind, duration):
    run = RUNS[kind]
    server = Server(impl, kind)
    try:
        # Warm up (imports, first connections), then measure.
        run(server.port, min(0.3, duration / 4))
        cpu_before = server.cpu()
        started = time.perf_counter()
        count = run(server.port, duration)
        elapsed = time.perf_counter() - started
        cpu = server.cpu() - cpu_before
    finally:
        server.stop()
    return count, elapsed, cpu


def median_run(found):
    """The run with the median rate, of (count, elapsed, cpu) runs."""
    ordered = sorted(found, key=lambda run: run[0] / run[1])
    return ordered[len(ordered) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate thor and asyncio this many times; report medians")
    parser.add_argument("--only", choices=tuple(RUNS))
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        impl, kind = args.serve
        (serve_thor if impl == "thor" else serve_asyncio)(kind)
        return 0

    kinds = [args.only] if args.only else list(RUNS)
    failed = False
    for kind in kinds:
        runs = {"thor": [], "asyncio": []}
        for _ in range(args.rounds):
            # Alternating keeps a noisy neighbour from favouring one side.
            for impl in runs:
                runs[impl].append(measure(impl, kind, args.duration))
        results = {impl: median_run(found) for impl, found in runs.items()}
        if kind == "stream":
            rate = {i: c / e / 1e6 for i, (c, e, _) in results.items()}
            ratio = rate["thor"] / rate["asyncio"]
            print("stream  thor %8.1f MB/s   asyncio %8.1f MB/s   thor/asyncio %.2fx (target >= 0.9)"
                  % (rate["thor"], rate["asyncio"], ratio))
            failed |= ratio < 0.9
        elif kind == "rpc50":
            us = {i: cpu / max(c, 1) * 1e6 for i, (c, e, cpu) in results.items()}
            rate = {i: c / e for i, (c, e, _) in results.items()}
            ratio = us["thor"] / us["asyncio"]
            print("rpc50   thor %6.1f us/msg (%7.0f msg/s)   asyncio %6.1f us/msg (%7.0f msg/s)"
                  "   CPU thor/asyncio %.2fx (target <= 1.5)"
                  % (us["thor"], rate["thor"], us["asyncio"], rate["asyncio"], ratio))
            failed |= ratio > 1.5
        else:
            rate = {i: c / e for i, (c, e, _) in results.items()}
            us = {i: cpu / max(c, 1) * 1e6 for i, (c, e, cpu) in results.items()}
            print("udp     thor %8.0f dgram/s (%5.1f us)   asyncio %8.0f dgram/s (%5.1f us)"
                  "   thor/asyncio %.2fx"
                  % (rate["thor"], us["thor"], rate["asyncio"], us["asyncio"],
                     rate["thor"] / rate["asyncio"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
