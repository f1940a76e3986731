"""Name resolution that never blocks the loop.

``lookup()`` runs ``getaddrinfo`` in a small pool of daemon worker threads
and hands the result back to the loop's thread with ``run_in_loop``. IP
literals are answered without the resolver, and names under ``.invalid``
(RFC 6761 section 6.4: "guaranteed to be invalid") fail at once without a
query leaving the machine.
"""

from __future__ import annotations

import os
import socket
import threading
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, overload

import thor.loop

if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Sequence, Tuple, Union

    # getaddrinfo's answer: (family, type, proto, canonname, sockaddr)...
    AddrInfo = Tuple[int, int, int, str, Any]
    # ...or the exception it raised; what a lookup's callback is given.
    Result = Union[Sequence[AddrInfo], Exception]
    Job = Tuple[str, int, int, int, "thor.loop.LoopBase", Callable[[Result], Any]]

__all__ = ["lookup", "parse_host", "literal_family", "max_workers"]

# getaddrinfo blocks for as long as the system resolver takes; a few threads
# cover the usual case of a handful of names in flight, and the bound stops a
# burst of lookups from starting a burst of threads.
max_workers = 8

# An idle worker exits after this long, so a process that resolved a name
# once does not keep a thread forever.
_idle_timeout = 30.0

_state_lock = threading.Lock()
_jobs: SimpleQueue[Job] = SimpleQueue()
_workers = 0
_idle = 0
_queued = 0


def parse_host(host: Union[str, bytes, bytearray]) -> str:
    """``host`` as ``str``: bytes decoded, the brackets of ``[::1]`` removed."""
    if host.__class__ is not str:
        if isinstance(host, (bytes, bytearray)):
            host = bytes(host).decode("idna" if any(b > 127 for b in host) else "ascii")
        else:
            raise TypeError("host must be str or bytes, not %s" % type(host).__name__)
    if host[:1] == "[" and host[-1:] == "]":
        host = host[1:-1]
    return host


def literal_family(host: str) -> Optional[int]:
    """``AF_INET`` / ``AF_INET6`` when ``host`` (a parsed ``str``) is an IP
    literal, else ``None``."""
    try:
        socket.inet_pton(socket.AF_INET, host)
        return socket.AF_INET
    except (OSError, ValueError):
        pass
    try:
        socket.inet_pton(socket.AF_INET6, host)
        return socket.AF_INET6
    except (OSError, ValueError):
        return None


def _is_invalid(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "invalid" or name.endswith(".invalid")


@overload
def lookup(
    host: Union[str, bytes, bytearray],
    port: Union[int, str],
    callback: Callable[[Result], Any],
    loop: Optional[thor.loop.LoopBase] = None,
    family: int = 0,
    type: int = socket.SOCK_STREAM,
) -> None: ...


@overload
def lookup(
    host: thor.loop.LoopBase,
    port: Union[str, bytes, bytearray],
    callback: Union[int, str],
    loop: int,
    family: Callable[[Result], Any],
) -> None: ...


def lookup(
    host: Any,
    port: Any,
    callback: Any,
    loop: Any = None,
    family: Any = 0,
    type: int = socket.SOCK_STREAM,
) -> None:
    """Resolve ``host``/``port``; later, in the loop's thread, call
    ``callback(result)``, where ``result`` is ``getaddrinfo``'s list of
    ``(family, type, proto, canonname, sockaddr)`` or the exception it raised
    (``socket.gaierror`` for a name that does not resolve).

    The callback is never called from inside ``lookup`` itself.

    Thor 0.17's order, ``lookup(loop, host, port, socktype, callback)``,
    is accepted too.
    """
    if isinstance(host, thor.loop.LoopBase):
        loop, host, port, type, callback, family = host, port, callback, loop, family, 0
    loop = loop or thor.loop._loop
    try:
        name = parse_host(host)
        number = int(port)
        if not 0 <= number <= 65535:
            # connect() and sendto() would raise OverflowError much later.
            raise ValueError("port %d is out of range (0-65535)" % number)
    except (TypeError, ValueError, UnicodeError) as why:
        loop.schedule(0, callback, why)
        return
    found = literal_family(name)
    if found is not None and family in (0, found):
        sockaddr: Tuple[Any, ...]
        if found == socket.AF_INET6:
            sockaddr = (name, number, 0, 0)
        else:
            sockaddr = (name, number)
        loop.schedule(0, callback, [(found, type, 0, "", sockaddr)])
        return
    if _is_invalid(name):
        loop.schedule(0, callback, socket.gaierror(
            socket.EAI_NONAME, "Name or service not known (RFC 6761 .invalid)"
        ))
        return
    _submit((name, number, family, type, loop, callback))


def _submit(job: Job) -> None:
    global _workers, _queued
    # Bookkeeping and put happen under one lock, so that a worker deciding to
    # retire (also under the lock) either sees this job or was never counted
    # on to take it.
    with _state_lock:
        _queued += 1
        start = _queued > _idle and _workers < max_workers
        if start:
            _workers += 1
        _jobs.put(job)
    if start:
        threading.Thread(target=_work, name="thor-dns", daemon=True).start()


def _work() -> None:
    global _workers, _idle, _queued
    while True:
        with _state_lock:
            _idle += 1
        try:
            job = _jobs.get(timeout=_idle_timeout)
        except Empty:
            with _state_lock:
                _idle -= 1
                if not _queued:
                    _workers -= 1
                    return
            continue
        with _state_lock:
            _idle -= 1
            _queued -= 1
        host, port, family, type_, loop, callback = job
        result: Result
        try:
            result = socket.getaddrinfo(host, port, family, type_)
        except Exception as why:  # gaierror, UnicodeError...: all go back
            result = why
        if not result and not isinstance(result, Exception):
            result = socket.gaierror(socket.EAI_NONAME, "no addresses")
        loop.run_in_loop(callback, result)


def _reset_after_fork() -> None:
    # The workers did not survive the fork; neither must their bookkeeping.
    global _state_lock, _jobs, _workers, _idle, _queued
    _state_lock = threading.Lock()
    _jobs = SimpleQueue()
    _workers = _idle = _queued = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
