# Not from /work/shared/bench-refs/ (it has no thor TCP echo program): written
# for tests/bench/bench_refs.py in the same style as the thor_*.py there, so
# that thor and upstream Thor 0.17 run the same script.
"""
thor TCP echo server, public API only (TcpServer, the 'connect' event, the
connection's 'data' and 'pause' events, write, pause(False) to start
reading). Flow control as asyncio_tcp_echo.py: reading stops while the
write buffer is over its high-water mark ('pause' True) and starts again
when it drains ('pause' False).

usage: thor_tcp_echo.py PORT
"""

import sys

try:
    import resource

    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
except (ImportError, ValueError, OSError):
    pass

import thor
from thor.tcp import TcpServer

PORT = int(sys.argv[1])


def on_connect(conn):
    conn.on("data", conn.write)
    conn.on("pause", conn.pause)
    conn.pause(False)


server = TcpServer(b"127.0.0.1", PORT)
server.on("connect", on_connect)
thor.run()
