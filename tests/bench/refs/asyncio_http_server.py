# Copied unchanged from /work/shared/bench-refs/asyncio_http_server.py, the thor project's shared
# benchmark references (see README.md beside this file); run by tests/bench/bench_refs.py.
"""
Reference HTTP/1.1 server: stdlib asyncio.Protocol with a minimal
hand-written HTTP/1.1 request reader and canned responses. This is about as
fast as a pure-stdlib Python server gets; it is *not* a complete HTTP
implementation (GET/HEAD without request bodies; no chunked requests).

Same URL space as thor_http_server.py:
  /        -> "Hello, world!" (13 bytes)
  /1m, /100m, /bytes/N -> streamed 64 KiB chunks with Content-Length,
              using transport flow control (pause_writing / resume_writing)

Persistence: HTTP/1.1 keeps the connection unless "Connection: close";
HTTP/1.0 closes unless "Connection: keep-alive".

usage: asyncio_http_server.py PORT [--uvloop]
"""

import asyncio
import sys

try:
    import resource

    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
except (ImportError, ValueError, OSError):
    pass

PORT = int(sys.argv[1])
USE_UVLOOP = "--uvloop" in sys.argv[2:]

HELLO_KEEP = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
    b"Hello, world!"
)
HELLO_CLOSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
    b"Connection: close\r\n\r\nHello, world!"
)
CHUNK = b"x" * 65536
SIZES = {b"/1m": 1 << 20, b"/100m": 100 << 20}


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("transport", "buf", "left", "write_paused", "close_after")

    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""
        self.left = 0  # body bytes still to stream
        self.write_paused = False
        self.close_after = False

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        while not self.left and self.transport is not None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            buf = buf[end + 4 :]
            self.request(head)
        self.buf = buf
        if len(buf) > 65536:  # no request head is that long here
            self.transport.close()

    def request(self, head):
        line_end = head.find(b"\r\n")
        line = head if line_end < 0 else head[:line_end]
        parts = line.split(b" ")
        if len(parts) != 3:
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n"
            )
            self.transport.close()
            self.transport = None
            return
        method, path, version = parts
        lower = head.lower()
        if version == b"HTTP/1.1":
            close = b"\r\nconnection: close" in lower
        else:
            close = b"\r\nconnection: keep-alive" not in lower
        size = SIZES.get(path)
        if size is None and path.startswith(b"/bytes/"):
            size = int(path[7:])
        if size is None:
            if close:
                self.transport.write(HELLO_CLOSE)
                self.transport.close()
                self.transport = None
            else:
                self.transport.write(HELLO_KEEP)
            return
        hdr = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n%s\r\n"
            % (size, b"Connection: close\r\n" if close else b"")
        )
        self.transport.write(hdr)
        if method == b"HEAD":
            size = 0
        self.left = size
        self.close_after = close
        self.pump()

    def pump(self):
        transport = self.transport
        while self.left > 0 and not self.write_paused:
            n = min(self.left, len(CHUNK))
            self.left -= n
            transport.write(CHUNK if n == len(CHUNK) else CHUNK[:n])
        if self.left == 0 and self.close_after and self.transport is not None:
            self.transport.close()
            self.transport = None

    def pause_writing(self):
        self.write_paused = True

    def resume_writing(self):
        self.write_paused = False
        if self.left and self.transport is not None:
            self.pump()
            if not self.left and self.buf and self.transport is not None:
                pending, self.buf = self.buf, b""
                self.data_received(pending)  # requests pipelined meanwhile

    def connection_lost(self, exc):
        self.transport = None
        self.left = 0


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        HttpProtocol, "127.0.0.1", PORT, backlog=4096, reuse_address=True
    )
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
