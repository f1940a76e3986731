# Copied unchanged from /work/shared/bench-refs/thor_udp_echo.py, the thor project's shared
# benchmark references (see README.md beside this file); run by tests/bench/bench_refs.py.
"""
thor UDP echo endpoint, public API only (UdpEndpoint, bind, 'datagram'
event, send, pause(False) to start receiving).

usage: thor_udp_echo.py PORT
"""

import sys

import thor
from thor.udp import UdpEndpoint

PORT = int(sys.argv[1])

endpoint = UdpEndpoint()
endpoint.bind(b"127.0.0.1", PORT)
endpoint.on("datagram", lambda data, host, port: endpoint.send(data, host, port))
endpoint.pause(False)
thor.run()
