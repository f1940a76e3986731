"""Sans-I/O HTTP/2 (RFC 9113) with HPACK (RFC 7541): bytes in, events out.

``hpack``: header compression; ``frames``: the frame codec;
``connection``: the connection and stream state machine, one class for
client and server. Nothing here imports a socket or the loop; see
doc/http2.md.
"""

from __future__ import annotations
