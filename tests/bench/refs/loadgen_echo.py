# Copied unchanged from /work/shared/bench-refs/loadgen_echo.py, the thor project's shared
# benchmark references (see README.md beside this file); run by tests/bench/bench_refs.py.
"""
Load generator for the TCP and UDP echo workloads (plain sockets + epoll,
stdlib only). Runs for a fixed time and prints one JSON line.

  stream   one TCP connection; 64 KiB blocks with up to 1 MiB in flight;
           reports echoed MB/s
  pingpong one TCP connection, one 64-byte message at a time (blocking);
           reports round trips/s and RTT p50/p99 in microseconds
  conc     C TCP connections, each with one 64-byte message outstanding;
           reports round trips/s across all of them
  udp      W 64-byte datagrams outstanding (refilled after 20 ms of silence);
           reports echoed datagrams/s and how many were lost

usage: loadgen_echo.py MODE PORT SECONDS [C_or_W]
"""

import json
import select
import socket
import sys
import time

MODE = sys.argv[1]
PORT = int(sys.argv[2])
SECONDS = float(sys.argv[3])
PARAM = int(sys.argv[4]) if len(sys.argv) > 4 else None
ADDR = ("127.0.0.1", PORT)


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, int(round(p / 100.0 * (len(sorted_vals) - 1))))
    return sorted_vals[k]


def stream():
    s = socket.create_connection(ADDR)
    s.setblocking(False)
    block = b"e" * 65536
    buf = bytearray(262144)
    inflight_max = 1 << 20
    sent = received = 0
    ep = select.epoll()
    fd = s.fileno()
    ep.register(fd, select.EPOLLIN | select.EPOLLOUT)
    want_out = True
    start = time.perf_counter()
    deadline = start + SECONDS
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        for _, ev in ep.poll(0.2):
            if ev & select.EPOLLIN:
                try:
                    n = s.recv_into(buf)
                except BlockingIOError:
                    n = -1
                if n == 0:
                    raise SystemExit("server closed the connection")
                if n > 0:
                    received += n
            if ev & select.EPOLLOUT and sent - received < inflight_max:
                try:
                    sent += s.send(block)
                except BlockingIOError:
                    pass
        need_out = sent - received < inflight_max
        if need_out != want_out:
            want_out = need_out
            ep.modify(fd, select.EPOLLIN | (select.EPOLLOUT if need_out else 0))
    elapsed = time.perf_counter() - start
    s.close()
    return {"mb_per_s": received / elapsed / 1e6, "bytes": received,
            "seconds": elapsed}


def pingpong():
    s = socket.create_connection(ADDR)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"p" * 64
    rtts = []
    perf = time.perf_counter
    start = perf()
    deadline = start + SECONDS
    t = start
    while t < deadline:
        s.sendall(msg)
        got = 0
        while got < 64:
            d = s.recv(64 - got)
            if not d:
                raise SystemExit("server closed the connection")
            got += len(d)
        t2 = perf()
        rtts.append(t2 - t)
        t = t2
    elapsed = perf() - start
    s.close()
    rtts.sort()
    return {"rt_per_s": len(rtts) / elapsed, "round_trips": len(rtts),
            "p50_us": pct(rtts, 50) * 1e6, "p99_us": pct(rtts, 99) * 1e6,
            "seconds": elapsed}


def conc():
    c = PARAM or 50
    msg = b"c" * 64
    socks = {}
    ep = select.epoll()
    for _ in range(c):
        s = socket.create_connection(ADDR)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks[s.fileno()] = [s, 0]
        ep.register(s.fileno(), select.EPOLLIN)
    count = 0
    start = time.perf_counter()
    deadline = start + SECONDS
    for s, _ in socks.values():
        s.send(msg)
    while time.perf_counter() < deadline:
        for fd, _ in ep.poll(0.2):
            entry = socks[fd]
            s = entry[0]
            try:
                d = s.recv(4096)
            except BlockingIOError:
                continue
            if not d:
                raise SystemExit("server closed a connection")
            entry[1] += len(d)
            while entry[1] >= 64:
                entry[1] -= 64
                count += 1
                s.send(msg)
    elapsed = time.perf_counter() - start
    for s, _ in socks.values():
        s.close()
    return {"rt_per_s": count / elapsed, "round_trips": count, "seconds": elapsed,
            "connections": c}


def udp():
    w = PARAM or 32
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(ADDR)
    s.setblocking(False)
    msg = b"u" * 64
    # wait for the endpoint to answer (binding may be asynchronous)
    probe_deadline = time.perf_counter() + 10
    while True:
        s.send(msg)
        r, _, _ = select.select([s], [], [], 0.05)
        if r:
            try:
                s.recv(2048)
                break
            except (BlockingIOError, ConnectionRefusedError):
                pass
        if time.perf_counter() > probe_deadline:
            raise SystemExit("UDP endpoint did not answer")
    time.sleep(0.05)
    try:  # drain stray probe replies
        while True:
            s.recv(2048)
    except (BlockingIOError, ConnectionRefusedError):
        pass
    ep = select.epoll()
    ep.register(s.fileno(), select.EPOLLIN)
    count = sent = refills = 0
    start = time.perf_counter()
    deadline = start + SECONDS
    for _ in range(w):
        s.send(msg)
        sent += 1
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        events = ep.poll(0.02)
        if not events:  # 20 ms of silence: the window was lost; refill it
            refills += 1
            for _ in range(w):
                s.send(msg)
                sent += 1
            continue
        while True:
            try:
                s.recv(2048)
            except (BlockingIOError, ConnectionRefusedError):
                break
            count += 1
            s.send(msg)
            sent += 1
    elapsed = time.perf_counter() - start
    s.close()
    return {"dgram_per_s": count / elapsed, "echoed": count, "sent": sent,
            "lost": max(0, sent - count - w), "refills": refills, "seconds": elapsed}


print(json.dumps({"stream": stream, "pingpong": pingpong, "conc": conc,
                  "udp": udp}[MODE]()))
