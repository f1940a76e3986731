# Copied unchanged from /work/shared/bench-refs/asyncio_proxy.py, the thor project's shared
# benchmark references (see README.md beside this file); run by tests/bench/bench_refs.py.
"""
Reference reverse proxy: stdlib asyncio.Protocol on both sides with a pool
of persistent backend connections and a minimal hand-written HTTP/1.1
reader. It forwards the request head as received (requests without bodies
only), reads the backend's response head for its Content-Length and relays
head and body bytes as they arrive. This is roughly the least work a Python
proxy can do per request; it does not strip hop-by-hop headers, support
request bodies, chunked responses, or pipelining.

usage: asyncio_proxy.py PORT BACKEND_PORT [--uvloop]
"""

import asyncio
import sys

try:
    import resource

    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
except (ImportError, ValueError, OSError):
    pass

argv = [a for a in sys.argv[1:] if not a.startswith("--")]
PORT = int(argv[0])
BACKEND_PORT = int(argv[1])
USE_UVLOOP = "--uvloop" in sys.argv[1:]
BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)

idle_backends = []


class Backend(asyncio.Protocol):
    "A persistent connection to the backend."

    def __init__(self):
        self.transport = None
        self.front = None  # the Front waiting on this response
        self.buf = b""
        self.left = None  # body bytes still to relay, once the head is seen
        self.ready = None

    def connection_made(self, transport):
        self.transport = transport

    def send(self, front, head):
        self.front = front
        self.buf = b""
        self.left = None
        self.transport.write(head)

    def data_received(self, data):
        front = self.front
        if front is None:
            self.transport.close()  # unsolicited bytes
            return
        if self.left is None:
            buf = self.buf + data if self.buf else data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            lower = buf[:end].lower()
            i = lower.find(b"\r\ncontent-length:")
            if i < 0:
                front.fail()
                self.front = None
                self.transport.close()
                return
            j = lower.find(b"\r\n", i + 2)
            clen = int(lower[i + 17 : j if j > 0 else end])
            self.buf = b""
            body_seen = len(buf) - end - 4
            self.left = clen - body_seen
            front.relay(buf)
        else:
            self.left -= len(data)
            front.relay(data)
        if self.left <= 0:
            self.front = None
            self.left = None
            idle_backends.append(self)
            front.done()

    def connection_lost(self, exc):
        if self in idle_backends:
            idle_backends.remove(self)
        if self.front is not None:
            self.front.fail()
            self.front = None


class Front(asyncio.Protocol):
    "A client connection to the proxy."

    def __init__(self):
        self.transport = None
        self.buf = b""
        self.busy = False
        self.close_after = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        self.next_request()

    def next_request(self):
        if self.busy or self.transport is None:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[: end + 4]
        self.buf = self.buf[end + 4 :]
        self.close_after = b"\r\nconnection: close" in head.lower()
        self.busy = True
        if idle_backends:
            idle_backends.pop().send(self, head)
        else:
            asyncio.ensure_future(self.connect(head))

    async def connect(self, head):
        loop = asyncio.get_running_loop()
        try:
            _, backend = await loop.create_connection(
                Backend, "127.0.0.1", BACKEND_PORT
            )
        except OSError:
            self.fail()
            return
        backend.send(self, head)

    def relay(self, data):
        if self.transport is not None:
            self.transport.write(data)

    def done(self):
        self.busy = False
        if self.close_after and self.transport is not None:
            self.transport.close()
            self.transport = None
            return
        self.next_request()

    def fail(self):
        self.busy = False
        if self.transport is not None:
            self.transport.write(BAD_GATEWAY)
            self.transport.close()
            self.transport = None

    def connection_lost(self, exc):
        self.transport = None


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Front, "127.0.0.1", PORT, backlog=4096)
    async with server:
        await server.serve_forever()


if USE_UVLOOP:
    import uvloop

    if hasattr(uvloop, "run"):
        uvloop.run(main())
    else:
        uvloop.install()
        asyncio.run(main())
else:
    asyncio.run(main())
