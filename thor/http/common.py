"""Thor 0.17's ``thor.http.common`` names, for programs written for it.

The header helpers are thor.http.headers' own (re-exported, one
implementation); the lists are Thor 0.17's, as values. ``States`` and
``Delimiters`` are kept as names only: thor's parser (thor.http.parser) is
a different design and does not use them.

Where thor differs (see doc/compat.md): ``hop_by_hop_hdrs`` is RFC 9110's
list, as thor strips it (``trailer``, not ``trailers``; Proxy-Authenticate
and Proxy-Authorization are left to the application); ``header_dict`` drops
empty list elements; the helpers also take str tuples.
"""

from __future__ import annotations

from enum import Enum
from typing import List

from thor.http.headers import (
    HOP_BY_HOP, get_header, header_dict, header_names, strip_hop_by_hop,
)

__all__ = [
    "get_header", "header_dict", "header_names", "hop_by_hop_hdrs", "strip_hop_by_hop",
    "idempotent_methods", "safe_methods", "no_body_status", "States", "Delimiters",
]

#: Methods a client may retry after a failure (RFC 9110 9.2.2).
idempotent_methods: List[bytes] = [b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"]
#: Methods that do not change the server's state (RFC 9110 9.2.1).
safe_methods: List[bytes] = [b"GET", b"HEAD", b"OPTIONS", b"TRACE"]
#: Status codes whose responses never have a body (besides 1xx).
no_body_status: List[bytes] = [b"204", b"304"]
#: Fields that apply to one connection only (RFC 9110 7.6.1), lower case.
hop_by_hop_hdrs: List[bytes] = sorted(HOP_BY_HOP)


class Delimiters(Enum):
    """How a message body is delimited (Thor 0.17's names)."""

    CLOSE = "close"
    COUNTED = "counted"
    CHUNKED = "chunked"
    NOBODY = "nobody"
    NONE = "none"


class States(Enum):
    """Thor 0.17's parser states (a name kept for its test framework)."""

    WAITING = 1
    HEADERS_DONE = 2
    ERROR = 3
    QUIET = 4
