"""thor: evented I/O for HTTP intermediaries, clients and servers.

The public face: the default loop's run/stop/schedule/time/on, the transport
classes, and the HTTP client and server.
"""

__version__ = "0.1.0"

from thor import events, loop  # noqa: E402
from thor.loop import run, stop, schedule, time, on, run_in_loop  # noqa: E402

__all__ = [
    "events", "loop", "run", "stop", "schedule", "time", "on", "run_in_loop",
]
