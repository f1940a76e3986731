# Copied unchanged from /work/shared/bench-refs/asyncio_udp_echo.py, the thor project's shared
# benchmark references (see README.md beside this file); run by tests/bench/bench_refs.py.
"""
Reference UDP echo endpoint: stdlib asyncio DatagramProtocol.

usage: asyncio_udp_echo.py PORT [--uvloop]
"""

import asyncio
import sys

PORT = int(sys.argv[1])
USE_UVLOOP = "--uvloop" in sys.argv[2:]


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


async def main():
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", PORT))
    await asyncio.Event().wait()


if USE_UVLOOP:
    import uvloop

    if hasattr(uvloop, "run"):
        uvloop.run(main())
    else:
        uvloop.install()
        asyncio.run(main())
else:
    asyncio.run(main())
