# Copied unchanged from /work/shared/bench-refs/asyncio_tcp_echo.py, the thor project's shared
# benchmark references (see README.md beside this file); run by tests/bench/bench_refs.py.
"""
Reference TCP echo server: stdlib asyncio.Protocol; flow control by pausing
reads while the transport's write buffer is over its high-water mark.

usage: asyncio_tcp_echo.py PORT [--uvloop]
"""

import asyncio
import sys

PORT = int(sys.argv[1])
USE_UVLOOP = "--uvloop" in sys.argv[2:]


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", PORT, backlog=4096)
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
