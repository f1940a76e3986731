"""The event loop: timers, the ready queue, file-descriptor readiness, and
hand-off of work from other threads.

One loop core (``LoopBase``) drives a small poller adapter chosen at import:
epoll, then kqueue, then poll. The adapters differ only in how they register
interest and report readiness; they all report ``(fd, mask)`` pairs using the
poll bit values (``READ``, ``WRITE``, ``ERROR``, ``HUP``, ``INVALID``), which
epoll and poll share on Linux and the kqueue adapter translates into.

Theory of operation
-------------------
- Timers live in a heap of ``(deadline, sequence, handle)`` on the monotonic
  clock. ``delete()`` only marks the handle; marked entries are dropped when
  they reach the top of the heap, or all at once at the start of a pass when
  they outnumber the live ones (as asyncio does), so delete is O(1) and one
  pass's worth of deletes costs one purge. Should deletes pile up without
  a pass (a long callback, a loop not yet running), ``delete`` itself purges
  once dead entries are 7/8 of the heap, so memory stays proportional to the
  live timers either way.
- The poller sleeps until the next deadline (zero when work is ready,
  forever when there is nothing to do), so a timer fires on time and an
  idle loop does not wake up. ``precision`` reads 0.1 (Thor 0.17's tick of
  the timer check, which thor's timers do not need); one that is set only
  bounds the longest sleep, for code that counts on the loop waking up.
- Each pass dispatches the fds that were ready, moves due timers to the ready
  queue, and runs only the callbacks that were in that queue when the run
  began; anything scheduled for "now" by them runs on the next pass.
- Other threads hand work over with ``run_in_loop``, which appends to the
  ready queue (``deque.append`` is atomic) and writes a byte to a socketpair
  the poller watches, waking it at once.
- Every callback the loop runs is guarded: an exception goes to
  ``loop.exception_handler`` (by default, the traceback is printed on
  stderr) and the loop carries on.
"""

from __future__ import annotations

import heapq
import os
import select
import socket
import sys
import time as _time
import traceback
import types
import weakref
from collections import deque

from typing import TYPE_CHECKING

from thor.events import EventEmitter

if TYPE_CHECKING:
    import cProfile
    from typing import (
        Any, Callable, Deque, Dict, Iterable, List, Optional, Protocol, Set,
        Tuple, Type,
    )

    Callback = Callable[..., Any]
    ExceptionHandler = Callable[["LoopBase", BaseException, Any], Any]
    Events = List[Tuple[int, int]]

    class _Poller(Protocol):
        """What the loop needs of a poller adapter (see below)."""

        name: str

        def register(self, fd: int, mask: int) -> None: ...
        def modify(self, fd: int, mask: int) -> None: ...
        def unregister(self, fd: int) -> None: ...
        def poll(self, timeout: Optional[float]) -> Events: ...
        def close(self) -> None: ...

    class _FdSource(Protocol):
        """What the loop dispatches readiness to."""

        def _fd_ready(self, mask: int) -> None: ...

__all__ = [
    "make", "default_loop", "run", "stop", "schedule", "time", "run_in_loop", "running",
    "debug", "EventSource", "LoopBase", "ScheduledEvent", "DEFAULT_PRECISION",
]

# Readiness bits: the values poll(2) uses, shared by epoll on Linux.
READ = 0x001
WRITE = 0x004
ERROR = 0x008
HUP = 0x010
INVALID = 0x020
# The conditions that may call for unregistering an fd (see _run_once).
_TROUBLE = ERROR | HUP | INVALID

_EVENT_BITS = {"fd_readable": READ, "fd_writable": WRITE}

# The longest the poller is asked to sleep. epoll and poll take the timeout
# in milliseconds as a C int (24.8 days at most) and raise OverflowError
# beyond it; a loop whose only timer is further away than this just wakes
# up once an hour and goes back to sleep.
_MAX_SLEEP = 3600.0

# What ``precision`` reads when none was set: Thor 0.17's default, the tick
# of its timer check. thor's timers fire at their deadlines, so it bounds
# nothing; a precision that is set bounds the sleep (and never delays a
# timer).
DEFAULT_PRECISION = 0.1

# Every loop made, so that a forked child can give each its own poller.
_loops: weakref.WeakSet[LoopBase] = weakref.WeakSet()


def default_exception_handler(
    loop: LoopBase, exc: BaseException, callback: Any
) -> None:
    """Print the exception and its traceback on stderr; the loop carries on."""
    sys.stderr.write("thor: exception in %r (the loop carries on):\n" % (callback,))
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


class ScheduledEvent:
    """A pending call made by ``schedule``; ``delete()`` cancels it."""

    __slots__ = ("_callback", "_args", "_state", "_loop")

    # The callback and its arguments are dropped (set to None) once done,
    # so that a kept handle does not keep them alive; they are typed as
    # never None because only a live handle's are ever read.
    _callback: Callback
    _args: Tuple[Any, ...]

    # _state: PENDING (in the heap), READY (in the ready queue), DONE.
    def __init__(
        self, loop: LoopBase, callback: Callback, args: Tuple[Any, ...], state: int
    ) -> None:
        self._loop = loop
        self._callback = callback
        self._args = args
        self._state = state

    def delete(self) -> None:
        """Cancel the call if it has not run yet; harmless otherwise."""
        state = self._state
        if state == _DONE:
            return
        self._state = _DONE
        self._callback = self._args = None  # type: ignore[assignment]
        if state == _PENDING:
            loop = self._loop
            loop._cancelled += 1
            if loop._cancelled > 64 and loop._cancelled * 8 > len(loop._timers) * 7:
                loop._purge_timers()

    @property
    def callback(self) -> Optional[Callback]:
        """The callable this handle will call; None once it has run or been
        deleted."""
        return self._callback

    def __repr__(self) -> str:
        if self._state == _DONE:
            return "<thor.loop.ScheduledEvent done>"
        return "<thor.loop.ScheduledEvent %s %r>" % (
            ("pending", "ready")[self._state], self._callback,
        )


_PENDING, _READY, _DONE = 0, 1, 2


class _Waker:
    """The read end of the self-pipe used by ``run_in_loop`` and ``stop``."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def _fd_ready(self, mask: int) -> None:
        try:
            while self.sock.recv(4096):
                pass
        except OSError:
            pass  # drained (EAGAIN), or closed with the loop: nothing to do


class LoopBase(EventEmitter):
    """The loop core. Create loops with ``thor.loop.make()``.

    Emits: start(), stop().
    """

    # Where debug mode draws the line for a callback that blocks the loop.
    slow_callback = 0.1

    def __init__(
        self,
        precision: Optional[float] = None,
        clock: Optional[Callable[[], float]] = None,
        poller: Optional[Callable[[], _Poller]] = None,
    ) -> None:
        EventEmitter.__init__(self)
        self._precision: Optional[float] = None  # the bound on a sleep
        if precision is not None:
            self.precision = precision
        self.debug = False
        self.exception_handler: ExceptionHandler = default_exception_handler
        self._clock: Callable[[], float] = clock or _time.monotonic
        self._poller: _Poller = (poller or _default_poller)()
        # The poll the pass calls, and its "forever": bound by the first
        # pass (see _bind_poller).
        self._poll: Optional[Callable[[Optional[float]], Events]] = None
        self._forever: Optional[float] = None
        self._running = False
        self._stopping = False
        self._fd_sources: Dict[int, _FdSource] = {}
        self._timers: List[Tuple[float, int, ScheduledEvent]] = []
        self._timer_seq = 0
        self._cancelled = 0
        self._ready: Deque[ScheduledEvent] = deque()
        self._now = _time.time()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._waker_fd = self._wake_r.fileno()
        self._poller.register(self._waker_fd, READ)
        self._fd_sources[self._waker_fd] = _Waker(self._wake_r)
        self._closed = False
        _loops.add(self)

    def _bind_poller(self) -> Callable[[Optional[float]], Events]:
        # The adapter's poll, or the system call itself when the adapter
        # needs no translation (epoll's raw_poll): one Python call less per
        # pass. A poll replaced on the adapter instance (tests wrap it to
        # watch the timeouts) is honoured: the first pass binds, and so
        # does each run().
        poller = self._poller
        poll = poller.poll
        raw = getattr(poller, "raw_poll", None)
        if raw is not None and getattr(poll, "__func__", None) is type(poller).poll:
            self._poll = raw
            self._forever = getattr(poller, "forever", None)
            return raw  # type: ignore[no-any-return]  # found by getattr
        self._poll = poll
        self._forever = None
        return poll

    def __repr__(self) -> str:
        return "<thor loop (%s) %s>" % (
            self._poller.name, "running" if self._running else "stopped",
        )

    @property
    def running(self) -> bool:
        """True while the loop is running."""
        return self._running

    @property
    def precision(self) -> float:
        """Thor 0.17's precision, in seconds: ``DEFAULT_PRECISION`` unless
        one was set. One that is set (here or to ``make``) is the longest
        the loop sleeps between passes; it never delays a timer. Setting
        None removes the bound."""
        precision = self._precision
        return DEFAULT_PRECISION if precision is None else precision

    @precision.setter
    def precision(self, value: Optional[float]) -> None:
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(
                    "precision must be a number of seconds, not %s"
                    % type(value).__name__
                )
            if not value > 0:  # also refuses NaN
                raise ValueError("precision must be greater than zero, not %r" % value)
        self._precision = value

    @property
    def poller_name(self) -> str:
        """Which poller this loop uses: "epoll", "kqueue" or "poll"."""
        return self._poller.name

    def time(self) -> float:
        """The Unix time, read once per pass of the loop (read afresh when
        the loop is not running, so it is never older than the last pass)."""
        if self._running:
            return self._now
        return _time.time()

    # -- timers ----------------------------------------------------------

    def schedule(self, delta: float, callback: Callback, *args: Any) -> ScheduledEvent:
        """Call ``callback(*args)`` ``delta`` seconds from now; returns a
        ``ScheduledEvent`` whose ``delete()`` cancels it. A negative (or
        NaN) ``delta`` raises ``ValueError``."""
        if delta > 0:
            handle = ScheduledEvent(self, callback, args, _PENDING)
            self._timer_seq += 1
            heapq.heappush(
                self._timers, (self._clock() + delta, self._timer_seq, handle)
            )
        elif delta == 0:
            handle = ScheduledEvent(self, callback, args, _READY)
            self._ready.append(handle)
        else:
            raise ValueError("schedule delta must be non-negative, not %r" % (delta,))
        return handle

    def _purge_timers(self) -> None:
        # Drop every deleted entry in one batch rather than let dead entries
        # dominate the heap.
        self._timers = [e for e in self._timers if e[2]._state == _PENDING]
        heapq.heapify(self._timers)
        self._cancelled = 0

    def scheduled_events(self) -> List[Tuple[float, ScheduledEvent]]:
        """The pending calls, soonest first, as ``(delay, handle)`` pairs:
        ``delay`` is in seconds from now (0 for those due at once), as in
        Thor 0.17; ``handle`` is the ``ScheduledEvent`` (for introspection)."""
        now = self._clock()
        pending = sorted(e for e in self._timers if e[2]._state == _PENDING)
        # list() copies in one C call, safe while other threads append.
        ready = [(0.0, h) for h in list(self._ready) if h._state == _READY]
        return ready + [(max(0.0, e[0] - now), e[2]) for e in pending]

    def run_in_loop(self, callback: Callback, *args: Any) -> None:
        """Thread-safe: run ``callback(*args)`` in the loop's thread, soon."""
        self._ready.append(ScheduledEvent(self, callback, args, _READY))
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # a wake-up is already pending
        except OSError:
            pass  # closed: the loop is gone

    # -- file descriptors --------------------------------------------------

    def _register_fd(self, fd: int, mask: int, source: _FdSource) -> None:
        self._poller.register(fd, mask)
        self._fd_sources[fd] = source

    def _modify_fd(
        self, fd: int, mask: int, source: Optional[_FdSource] = None
    ) -> None:
        # With ``source``, act only if that source still owns the fd: after
        # the loop (or stop()) forgot it, the fd number may belong to another.
        current = self._fd_sources.get(fd)
        if current is not None and (source is None or current is source):
            self._poller.modify(fd, mask)

    def _unregister_fd(self, fd: int, source: Optional[_FdSource] = None) -> None:
        if source is not None and self._fd_sources.get(fd) is not source:
            return
        if self._fd_sources.pop(fd, None) is not None:
            try:
                self._poller.unregister(fd)
            except (OSError, ValueError, KeyError):
                pass  # already closed: the kernel forgot it for us

    def fd_count(self) -> int:
        """How many file descriptors the loop is watching for its users."""
        return len(self._fd_sources) - 1

    def registered_fd_handlers(self) -> List[Any]:
        """The sources (``EventSource``s: connections, servers...) whose file
        descriptors the loop is watching, as in Thor 0.17."""
        return [
            source for source in self._fd_sources.values()
            if source.__class__ is not _Waker
        ]

    # No default for ``profile``: Thor 0.17's signature exactly, so that a
    # replacement typed for it (REDbot's) type-checks against this one.
    def debug_out(self, message: str, profile: Optional[cProfile.Profile]) -> None:
        """Report a ``debug`` warning (a callback that blocked the loop):
        by default, a line on stderr. Replace it on the instance to send
        the warnings elsewhere (``loop.debug_out = my_function``). thor
        passes no ``profile`` (None); the argument is Thor 0.17's, where it
        was a ``cProfile.Profile``, so that replacements written for it
        work unchanged."""
        sys.stderr.write("thor: %s\n" % message)

    # -- running -----------------------------------------------------------

    def run(self) -> None:
        """Run until ``stop()`` is called."""
        if self._running:
            raise RuntimeError("the loop is already running")
        self._running = True
        self._stopping = False
        self._now = _time.time()
        self._bind_poller()
        try:
            self.emit("start")
            while not self._stopping:
                self._run_once()
        finally:
            self._running = False
            self._clear()
        self.emit("stop")

    def stop(self) -> None:
        """Stop the loop, clearing scheduled events and forgetting file
        descriptors; 'stop' is emitted once the loop has stopped."""
        if self._running:
            self._stopping = True
            self._wake()
        else:
            self._clear()

    def _clear(self) -> None:
        for fd in list(self._fd_sources):
            if fd != self._waker_fd:
                self._unregister_fd(fd)
        for _, _, handle in self._timers:
            handle._state = _DONE
        self._timers = []
        self._cancelled = 0
        # Other threads may append (run_in_loop) while this runs: popleft
        # until empty, never iterate (a deque raises if it changes under
        # an iterator).
        ready = self._ready
        while ready:
            try:
                ready.popleft()._state = _DONE
            except IndexError:
                break

    def close(self) -> None:
        """Release the loop's own resources (poller, wake-up sockets)."""
        self._clear()
        self._closed = True
        _loops.discard(self)
        self._poller.close()
        self._wake_r.close()
        self._wake_w.close()

    def _after_fork(self) -> None:
        # Theory of operation: a forked child inherits the parent's epoll
        # instance (kqueue is not inherited at all), and an epoll instance
        # is shared by every process holding it: a registration changed in
        # one changes it in the other, and an event is reported to whichever
        # waits first. The wake-up socketpair is shared the same way. So the
        # child gets a poller and a socketpair of its own, and registers on
        # them every fd the loop was watching, with the same interest, so
        # that what was set up before the fork (a listening socket shared
        # by worker processes) keeps working in the child.
        for resource in (self._poller, self._wake_r, self._wake_w):
            try:
                resource.close()
            except OSError:
                pass
        self._poller = poller = type(self._poller)()
        self._poll = self._forever = None  # bound again by the next pass
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        sources = self._fd_sources
        self._fd_sources = {}
        self._waker_fd = self._wake_r.fileno()
        poller.register(self._waker_fd, READ)
        self._fd_sources[self._waker_fd] = _Waker(self._wake_r)
        for fd, source in sources.items():
            if source.__class__ is _Waker or fd == self._waker_fd:
                continue
            try:
                poller.register(fd, getattr(source, "_interest", 0))
            except (OSError, ValueError):
                continue  # closed meanwhile: nothing to watch
            self._fd_sources[fd] = source

    def _run_once(self) -> None:
        if self._cancelled > 64 and self._cancelled * 2 > len(self._timers):
            self._purge_timers()
        ready = self._ready
        timers = self._timers
        precision = self._precision
        timeout: Optional[float]
        if ready:
            timeout = 0
        elif timers:
            while timers and timers[0][2]._state != _PENDING:
                heapq.heappop(timers)
                self._cancelled -= 1
            if timers:
                timeout = timers[0][0] - self._clock()
                if timeout < 0:
                    timeout = 0
            else:
                timeout = precision
        else:
            timeout = precision
        if timeout is None:
            timeout = self._forever
        else:
            if precision is not None and timeout > precision:
                timeout = precision
            if timeout > _MAX_SLEEP:
                timeout = _MAX_SLEEP
        poll = self._poll
        if poll is None:
            poll = self._bind_poller()
            if timeout is None:
                timeout = self._forever
        events = poll(timeout)
        self._now = _time.time()

        sources = self._fd_sources
        debug = self.debug
        for fd, mask in events:
            source = sources.get(fd)
            if source is None:
                continue
            try:
                if debug:
                    self._timed(source._fd_ready, (mask,))
                else:
                    source._fd_ready(mask)
            except Exception as exc:
                self.exception_handler(self, exc, source)
            if mask & _TROUBLE and sources.get(fd) is source:
                if mask & INVALID or not getattr(source, "_interest", 1):
                    # Nothing will ever clear this condition; stop watching
                    # rather than spin on it.
                    self._unregister_fd(fd)

        timers = self._timers
        if timers:
            now = self._clock()
            while timers and timers[0][0] <= now:
                handle = heapq.heappop(timers)[2]
                if handle._state == _PENDING:
                    handle._state = _READY
                    ready.append(handle)
                else:
                    self._cancelled -= 1

        if not ready:
            return
        for _ in range(len(ready)):
            if self._stopping:
                break  # stop() from an fd event or an earlier callback
            handle = ready.popleft()
            if handle._state != _READY:
                continue
            handle._state = _DONE
            callback = handle._callback
            args = handle._args
            handle._callback = handle._args = None  # type: ignore[assignment]
            try:
                if debug:
                    self._timed(callback, args)
                else:
                    callback(*args)
            except Exception as exc:
                self.exception_handler(self, exc, callback)

    def _timed(self, callback: Callback, args: Tuple[Any, ...]) -> None:
        started = _time.perf_counter()
        try:
            callback(*args)
        finally:
            took = _time.perf_counter() - started
            if took > self.slow_callback:
                self.debug_out(
                    "%r blocked the loop for %.3f seconds" % (callback, took), None
                )


class LazyTimer:
    """A mixin for something with one deadline that moves often (per read,
    per request): an HTTP connection's idle and request timeouts.

    Moving the deadline is a clock read and a comparison: the one timer is
    scheduled again only when the deadline comes before it. A timer that
    fires before the deadline re-arms for the rest, and it is never armed
    further ahead than the shortest of the host's ``_timeouts()``, so that
    going from one phase's deadline to a shorter one's (idle, then a
    request) does not move it either.

    Deadlines are on the loop's clock (``LoopBase(clock=...)``), the one its
    timers fire by, so that a fake clock drives them in tests. The host calls
    ``_init_timer(loop)`` once, in its ``__init__``; it binds that clock to
    ``_clock`` (a slot: reading it costs what reading ``time.monotonic``
    does). A host that does not is bound on its first ``_set_deadline``.

    The host provides ``loop``, ``_timeouts()`` (its timeouts, None for
    none), and ``_on_timer()``, which starts with ``self._timer = None`` and
    acts only if ``_deadline_passed()``. A host reads the time, when it
    needs it, with ``self._clock()``.
    """

    __slots__ = ("_deadline", "_timer", "_timer_due", "_clock")

    if TYPE_CHECKING:
        # What the host provides (see above), and the slots' types.
        loop: LoopBase
        _deadline: Optional[float]
        _timer: Optional[ScheduledEvent]
        _timer_due: float
        _clock: Callable[[], float]

        def _timeouts(self) -> Iterable[Optional[float]]: ...

        def _on_timer(self) -> None: ...

    def _init_timer(self, loop: LoopBase) -> None:
        """No deadline, no timer; deadlines on ``loop``'s clock."""
        self._deadline = None
        self._timer = None
        self._timer_due = 0.0
        self._clock = loop._clock

    def _set_deadline(self, timeout: Optional[float]) -> None:
        """The deadline is ``timeout`` seconds from now (None: no deadline)."""
        if timeout is None:
            self._deadline = None
            return
        try:
            clock = self._clock
        except AttributeError:
            # A host that sets the other slots itself (as hosts did before
            # _init_timer): bind once, here.
            clock = self._clock = self.loop._clock
        now = clock()
        deadline = self._deadline = now + timeout
        if self._timer is None or deadline < self._timer_due:
            self._arm(now, timeout)

    def _arm(self, now: float, delay: float) -> None:
        if self._timer is not None:
            self._timer.delete()
        for other in self._timeouts():
            # A timeout of 0 (act at once) is no bound: it would re-arm
            # the timer on every pass until a longer deadline came.
            if other is not None and 0 < other < delay:
                delay = other
        if delay < 0:
            delay = 0  # a negative timeout acts at once (schedule refuses it)
        self._timer_due = now + delay
        self._timer = self.loop.schedule(delay, self._on_timer)

    def _deadline_passed(self) -> bool:
        """For ``_on_timer``: True once the deadline has passed (it is then
        cleared); with none, or one still ahead (re-armed), False."""
        deadline = self._deadline
        if deadline is None:
            return False
        try:
            clock = self._clock
        except AttributeError:
            # A deadline written by a host itself, before any
            # _set_deadline bound the clock.
            clock = self._clock = self.loop._clock
        now = clock()
        if deadline > now:
            self._arm(now, deadline - now)
            return False
        self._deadline = None
        return True

    def _stop_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.delete()
            self._timer = None


class EventSource(EventEmitter):
    """Something with a file descriptor that the loop watches.

    Emits: fd_readable(), fd_writable(), fd_error(), fd_close().

    ``fd_error`` and ``fd_close`` are reported whatever the interest (the
    kernel cannot be told to keep them quiet); a source that receives one
    must close or unregister.
    """

    def __init__(self, loop: Optional[LoopBase] = None) -> None:
        EventEmitter.__init__(self)
        self._loop: LoopBase = loop or _loop
        self._fd: Optional[int] = None
        self._interest = 0

    @property
    def loop(self) -> LoopBase:
        """The loop this source belongs to (Thor 0.17's name)."""
        return self._loop

    @loop.setter
    def loop(self, loop: LoopBase) -> None:
        # Thor 0.17 had a plain attribute, which subclasses may set.
        self._loop = loop

    def register_fd(self, fd: int, event: Optional[str] = None) -> None:
        """Watch ``fd``; ``event`` ('fd_readable'/'fd_writable') is the first interest."""
        self._fd = fd
        self._interest = _EVENT_BITS[event] if event else 0
        self._loop._register_fd(fd, self._interest, self)

    def unregister_fd(self) -> None:
        """Stop watching the fd (it is not closed)."""
        if self._fd is not None:
            self._loop._unregister_fd(self._fd, self)
            self._fd = None
            self._interest = 0

    def event_add(self, event: str) -> None:
        """Start reporting ``event`` ('fd_readable' or 'fd_writable')."""
        interest = self._interest | _EVENT_BITS[event]
        if interest != self._interest and self._fd is not None:
            self._interest = interest
            self._loop._modify_fd(self._fd, interest, self)

    def event_del(self, event: str) -> None:
        """Stop reporting ``event``."""
        interest = self._interest & ~_EVENT_BITS[event]
        if interest != self._interest and self._fd is not None:
            self._interest = interest
            self._loop._modify_fd(self._fd, interest, self)

    def interesting_events(self) -> Set[str]:
        """The set of events currently reported."""
        return {name for name, bit in _EVENT_BITS.items() if self._interest & bit}

    def watched(self) -> bool:
        """True while the loop watches this source's fd: from register_fd()
        until unregister_fd(), or until the loop forgets every fd (stop())."""
        return self._fd is not None and self._loop._fd_sources.get(self._fd) is self

    def _fd_ready(self, mask: int) -> None:
        if mask & (ERROR | INVALID):
            self.emit("fd_error")
            return
        if mask & READ and self._interest & READ:
            self.emit("fd_readable")
        if mask & WRITE and self._interest & WRITE and self._fd is not None:
            self.emit("fd_writable")
        if mask & HUP and self._fd is not None:
            self.emit("fd_close")


# -- poller adapters ---------------------------------------------------------
# Each has: name, register(fd, mask), modify(fd, mask), unregister(fd),
# poll(timeout or None) -> [(fd, mask)], close(); optionally raw_poll and
# forever: a poll taking ``forever`` for None, that the loop calls instead.


class _EpollPoller:
    """epoll: level-triggered; its bit values are poll's on Linux, so events
    are passed through untouched. EPOLLERR and EPOLLHUP are always reported."""

    name = "epoll"
    # What the loop may pass raw_poll for "forever": raw_poll is epoll's own
    # poll, called by the loop directly (it takes seconds, as the loop does).
    forever = -1

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self.register = self._epoll.register
        self.modify = self._epoll.modify
        self.unregister = self._epoll.unregister
        self.close = self._epoll.close
        self.raw_poll = self._epoll.poll

    def poll(self, timeout: Optional[float]) -> Events:
        # epoll takes -1 for "forever"; it rounds sub-millisecond timeouts
        # *up*, so a timer is never run early.
        return self._epoll.poll(-1 if timeout is None else timeout)


class _PollPoller:
    """poll(2): same bits as epoll; the timeout is in milliseconds and must be
    rounded up so that a timer never wakes the loop a little too early."""

    name = "poll"

    _poll: Optional[select.poll]

    def __init__(self) -> None:
        self._poll = select.poll()
        self.register = self._poll.register
        self.modify = self._poll.modify
        self.unregister = self._poll.unregister

    def poll(self, timeout: Optional[float]) -> Events:
        if timeout is None:
            return self._poll.poll()  # type: ignore[union-attr]  # None once closed
        return self._poll.poll(-(-timeout * 1000 // 1))  # type: ignore[union-attr]

    def close(self) -> None:
        self._poll = None


# The select module as the kqueue adapter sees it: typeshed leaves kqueue
# out on Linux, and this name (the same module) keeps the adapter checked
# everywhere at no cost.
_kqselect: Any = select


class _KqueuePoller:
    """kqueue: read and write interest are separate filters, so a modify is a
    delete of one and an add of the other, and one fd can come back as two
    events, which are merged here. EV_EOF on the read filter is reported as
    READ (the read returns b"" after any data left), EV_ERROR as ERROR."""

    name = "kqueue"

    def __init__(self) -> None:
        self._kq = _kqselect.kqueue()
        self._masks: Dict[int, int] = {}

    def _control(self, fd: int, old: int, new: int) -> None:
        changes = []
        for bit, filt in (
            (READ, _kqselect.KQ_FILTER_READ), (WRITE, _kqselect.KQ_FILTER_WRITE)
        ):
            if new & bit and not old & bit:
                changes.append(_kqselect.kevent(fd, filt, _kqselect.KQ_EV_ADD))
            elif old & bit and not new & bit:
                changes.append(_kqselect.kevent(fd, filt, _kqselect.KQ_EV_DELETE))
        if changes:
            self._kq.control(changes, 0, 0)

    def register(self, fd: int, mask: int) -> None:
        self._masks[fd] = mask
        self._control(fd, 0, mask)

    def modify(self, fd: int, mask: int) -> None:
        old = self._masks[fd]
        self._masks[fd] = mask
        self._control(fd, old, mask)

    def unregister(self, fd: int) -> None:
        old = self._masks.pop(fd)
        try:
            self._control(fd, old, 0)
        except OSError:
            pass

    def poll(self, timeout: Optional[float]) -> Events:
        events = self._kq.control(None, max(len(self._masks), 1) * 2, timeout)
        merged: Dict[int, int] = {}
        for kev in events:
            mask = merged.get(kev.ident, 0)
            if kev.flags & _kqselect.KQ_EV_ERROR:
                mask |= ERROR
            elif kev.filter == _kqselect.KQ_FILTER_READ:
                mask |= READ
            elif kev.filter == _kqselect.KQ_FILTER_WRITE:
                mask |= WRITE
            merged[kev.ident] = mask
        return list(merged.items())

    def close(self) -> None:
        self._kq.close()


_default_poller: Type[_Poller]
if hasattr(select, "epoll"):
    _default_poller = _EpollPoller
elif hasattr(select, "kqueue"):
    _default_poller = _KqueuePoller
else:
    _default_poller = _PollPoller

POLLERS: Dict[str, Type[_Poller]] = {
    name: cls
    for name, cls, present in (
        ("epoll", _EpollPoller, hasattr(select, "epoll")),
        ("kqueue", _KqueuePoller, hasattr(select, "kqueue")),
        ("poll", _PollPoller, hasattr(select, "poll")),
    )
    if present
}


def make(precision: Optional[float] = None, poller: Optional[str] = None) -> LoopBase:
    """Create a new loop. ``precision`` (seconds), when given, bounds how
    long the loop sleeps between passes; it never delays a timer, and a
    value that is not above zero raises ``ValueError``.
    ``poller`` picks one of ``POLLERS`` by name (the best available by
    default)."""
    return LoopBase(precision, poller=POLLERS[poller] if poller else None)


# The default loop and its module-level face. ``_loop`` is kept under
# that name: REDbot and Thor 0.17 code import it.
_loop = make()


def default_loop() -> LoopBase:
    """The default loop: the one ``thor.run``, ``thor.schedule`` and every
    object made without a ``loop`` argument use."""
    return _loop


run = _loop.run
stop = _loop.stop
schedule = _loop.schedule
time = _loop.time
run_in_loop = _loop.run_in_loop
fd_count = _loop.fd_count
scheduled_events = _loop.scheduled_events
on = _loop.on


def _reinit_after_fork() -> None:
    # Every open loop (the default one included) gets its own poller and
    # wake-up sockets in the child; see LoopBase._after_fork.
    for loop in list(_loops):
        if not loop._closed:
            loop._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


class _LoopModule(types.ModuleType):
    """Makes ``thor.loop.running`` and ``thor.loop.debug`` live views of the
    default loop (``running`` read-only, as documented)."""

    @property
    def running(self) -> bool:
        return _loop._running

    @property
    def debug(self) -> bool:
        return _loop.debug

    @debug.setter
    def debug(self, value: bool) -> None:
        _loop.debug = bool(value)

    @property
    def exception_handler(self) -> ExceptionHandler:
        return _loop.exception_handler

    @exception_handler.setter
    def exception_handler(self, value: ExceptionHandler) -> None:
        _loop.exception_handler = value


sys.modules[__name__].__class__ = _LoopModule
