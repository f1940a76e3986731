"""Tests for thor.loop: timers, the ready queue, fd sources, thread hand-off,
error handling, and the default loop's module face.

Every loop test runs once per poller adapter available here (thor.loop.POLLERS).
Timer logic runs on an injected clock that "sleeps" by jumping forward by the
timeout the loop asks for (as trio's autojump MockClock), so it is exact and
instant; real-time checks are one-sided ("not before the deadline"). Nothing
sleeps to synchronise: a test runs its loop until a callback stops it, under
a guard deadline that fails the test instead of hanging it.
"""

import contextlib
import io
import os
import random
import signal
import socket
import threading
import time
import unittest

import thor
import thor.loop
from thor.loop import POLLERS, EventSource, LoopBase

GUARD = 5.0  # seconds a test's loop may run before the test fails


class FakeClock:
    """A monotonic clock the test controls."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, delta):
        self.now += delta


def reraise(loop, exc, callback):
    raise exc


def stderr_of(func, *args):
    """What ``func(*args)`` wrote to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        func(*args)
    return err.getvalue()


def busy_wait(seconds):
    """Hold the CPU for ``seconds`` (stands in for a callback that blocks)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Counter:
    """A callback that counts its calls, keeps their arguments, and can run
    an action on each call."""

    def __init__(self, action=None):
        self.calls = []
        self.action = action

    def __call__(self, *args):
        self.calls.append(args)
        if self.action is not None:
            self.action(*args)

    @property
    def count(self):
        return len(self.calls)


class LoopTests:
    """Run against one poller; subclasses below set ``poller``."""

    poller = None

    # -- helpers -------------------------------------------------------------

    def make_loop(self, clock=None, precision=None):
        loop = LoopBase(precision, clock=clock, poller=POLLERS[self.poller])
        loop.exception_handler = reraise  # a failing callback fails the test
        self.addCleanup(loop.close)
        self.timeouts = []
        self.passes = 0
        original = loop._poller.poll

        def poll(timeout):
            self.passes += 1
            self.timeouts.append(timeout)
            if clock is not None and timeout is not None:
                # Autojump: the fake clock moves as if the poller had slept.
                clock.advance(timeout)
                timeout = 0
            return original(timeout)

        loop._poller.poll = poll
        return loop

    def run_loop(self, loop, guard=GUARD):
        """Run ``loop`` until something stops it; fail if that takes > guard."""
        expired = []

        def expire():
            expired.append(True)
            loop.stop()

        timer = threading.Timer(guard, expire)
        timer.daemon = True
        timer.start()
        try:
            loop.run()
        finally:
            timer.cancel()
        if expired:
            self.fail("the loop was still running after %s seconds" % guard)

    def socketpair(self):
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        return a, b

    def stop_after_passes(self, loop, passes):
        """Stop ``loop`` ``passes`` passes from now (schedule(0) chains)."""

        def step(left):
            if left <= 0:
                loop.stop()
            else:
                loop.schedule(0, step, left - 1)

        loop.schedule(0, step, passes - 1)

    # -- construction --------------------------------------------------------

    def test_poller_name(self):
        loop = self.make_loop()
        self.assertEqual(loop.poller_name, self.poller)
        self.assertIn(self.poller, repr(loop))
        made = thor.loop.make(precision=0.5, poller=self.poller)
        self.addCleanup(made.close)
        self.assertEqual((made.poller_name, made.precision), (self.poller, 0.5))

    # -- timers --------------------------------------------------------------

    def test_timers_fire_in_deadline_order(self):
        clock = FakeClock()
        loop = self.make_loop(clock)
        log = []

        def record(name):
            log.append((name, clock.now))
            if len(log) == 4:
                loop.stop()

        loop.schedule(3, record, "c")
        loop.schedule(1, record, "a")
        loop.schedule(2, record, "b")
        loop.schedule(2.5, record, "b2")
        self.run_loop(loop)
        self.assertEqual([name for name, _ in log], ["a", "b", "b2", "c"])
        # Each fires exactly at its deadline on the fake clock, never before.
        self.assertEqual([at for _, at in log], [1001.0, 1002.0, 1002.5, 1003.0])

    def test_equal_deadlines_keep_scheduling_order(self):
        clock = FakeClock()
        loop = self.make_loop(clock)
        log = []
        names = list(range(50))

        def record(name):
            log.append(name)
            if len(log) == len(names):
                loop.stop()

        for name in names:
            loop.schedule(1.5, record, name)
        self.run_loop(loop)
        self.assertEqual(log, names)

    def test_poller_sleeps_until_next_deadline(self):
        clock = FakeClock()
        loop = self.make_loop(clock)
        fired = Counter(lambda: loop.stop())
        loop.schedule(2.5, fired)
        self.run_loop(loop)
        self.assertEqual(fired.count, 1)
        self.assertEqual(self.timeouts, [2.5])  # one sleep, the whole way

    def test_default_precision_reads_0_1_and_bounds_nothing(self):
        # Thor 0.17's default value, for code that reads it; thor's timers
        # do not need the tick, so the loop still sleeps the whole way.
        clock = FakeClock()
        loop = self.make_loop(clock)
        self.assertEqual(loop.precision, 0.1)
        self.assertEqual(thor.loop.DEFAULT_PRECISION, 0.1)
        loop.schedule(2.5, loop.stop)
        self.run_loop(loop)
        self.assertEqual(self.timeouts, [2.5])

    def test_precision_set_later_takes_effect_and_is_checked(self):
        clock = FakeClock()
        loop = self.make_loop(clock, precision=0.5)
        for bad in (0, -1, float("nan")):
            with self.assertRaisesRegex(ValueError, "precision"):
                loop.precision = bad
        for bad in ("0.2", True):
            with self.assertRaises(TypeError):
                loop.precision = bad
        self.assertEqual(loop.precision, 0.5)
        loop.precision = 0.2  # as REDbot does to the default loop
        loop.schedule(1.0, loop.stop)
        self.run_loop(loop)
        self.assertEqual(loop.precision, 0.2)
        self.assertTrue(all(t <= 0.2 + 1e-9 for t in self.timeouts), self.timeouts)
        self.assertAlmostEqual(sum(self.timeouts), 1.0)
        loop.precision = None  # no bound again: one sleep, the whole way
        self.assertEqual(loop.precision, 0.1)
        self.timeouts.clear()
        loop.schedule(3.0, loop.stop)
        self.run_loop(loop)
        self.assertEqual(self.timeouts, [3.0])

    def test_precision_bounds_sleep_without_delaying_timer(self):
        clock = FakeClock()
        loop = self.make_loop(clock, precision=0.3)
        fired_at = []
        loop.schedule(1.0, lambda: (fired_at.append(clock.now), loop.stop()))
        self.run_loop(loop)
        self.assertTrue(all(t <= 0.3 + 1e-9 for t in self.timeouts), self.timeouts)
        self.assertAlmostEqual(sum(self.timeouts), 1.0)
        self.assertAlmostEqual(fired_at[0], 1001.0)

    def test_timer_not_before_deadline_real_clock(self):
        loop = self.make_loop()
        delay = 0.02
        fired = []
        start = time.monotonic()
        loop.schedule(delay, lambda: (fired.append(time.monotonic()), loop.stop()))
        self.run_loop(loop)
        self.assertGreaterEqual(fired[0] - start, delay)

    def test_timer_arguments(self):
        loop = self.make_loop(FakeClock())
        got = Counter(lambda *args: loop.stop())
        loop.schedule(1, got, 1, b"two", None)
        self.run_loop(loop)
        self.assertEqual(got.calls, [(1, b"two", None)])

    def test_later_timer_waits_for_its_deadline(self):
        clock = FakeClock()
        loop = self.make_loop(clock)
        log = []
        loop.schedule(10, lambda: (log.append(("late", self.passes)), loop.stop()))
        loop.schedule(1, lambda: log.append(("early", self.passes)))
        self.run_loop(loop)
        self.assertEqual(log, [("early", 1), ("late", 2)])
        self.assertEqual(self.timeouts, [1, 9])

    def test_delete(self):
        loop = self.make_loop(FakeClock())
        deleted = Counter()
        handle = loop.schedule(1, deleted)
        loop.schedule(2, loop.stop)
        handle.delete()
        self.run_loop(loop)
        self.assertEqual(deleted.count, 0)

    def test_delete_ready_call(self):
        loop = self.make_loop(FakeClock())
        deleted = Counter()
        loop.schedule(0, deleted).delete()
        self.stop_after_passes(loop, 2)
        self.run_loop(loop)
        self.assertEqual(deleted.count, 0)

    def test_delete_during_firing(self):
        # a, b and c are due in the same pass; a deletes b before it runs.
        loop = self.make_loop(FakeClock())
        log = []
        handles = {}
        handles["a"] = loop.schedule(1, lambda: (log.append("a"), handles["b"].delete()))
        handles["b"] = loop.schedule(1, lambda: log.append("b"))
        handles["c"] = loop.schedule(1, lambda: (log.append("c"), loop.stop()))
        self.run_loop(loop)
        self.assertEqual(log, ["a", "c"])
        self.assertEqual(self.passes, 1)

    def test_delete_after_firing_is_harmless(self):
        loop = self.make_loop(FakeClock())
        fired = Counter()
        handle = loop.schedule(1, fired)
        loop.schedule(2, loop.stop)
        self.run_loop(loop)
        self.assertEqual(fired.count, 1)
        handle.delete()
        handle.delete()
        self.assertEqual(loop._cancelled, 0)  # not counted as a dead heap entry
        # The loop still works afterwards.
        again = Counter(lambda: loop.stop())
        loop.schedule(1, again)
        self.run_loop(loop)
        self.assertEqual(again.count, 1)

    def test_delete_self_while_running(self):
        loop = self.make_loop(FakeClock())
        handles = []
        handles.append(loop.schedule(1, lambda: (handles[0].delete(), loop.stop())))
        self.run_loop(loop)
        self.assertIn("done", repr(handles[0]))

    def test_schedule_zero_from_callback_runs_next_pass(self):
        loop = self.make_loop(FakeClock())
        log = []

        def second():
            log.append(("second", self.passes))
            loop.stop()

        def first():
            log.append(("first", self.passes))
            loop.schedule(0, second)

        loop.schedule(1, first)
        self.run_loop(loop)
        self.assertEqual(log, [("first", 1), ("second", 2)])
        self.assertEqual(self.timeouts, [1, 0])  # no sleep before "soon" work

    def test_schedule_negative_raises(self):
        # As in Thor 0.17: a negative delta is a mistake, not "soon".
        loop = self.make_loop(FakeClock())
        for delta in (-5, -0.001, float("nan")):
            with self.assertRaisesRegex(ValueError, "delta"):
                loop.schedule(delta, loop.stop)
        self.assertEqual(loop.scheduled_events(), [])

    def test_soon_runs_in_order_of_scheduling(self):
        loop = self.make_loop(FakeClock())
        log = []
        for i in range(10):
            loop.schedule(0, log.append, i)
        loop.schedule(0, loop.stop)
        self.run_loop(loop)
        self.assertEqual(log, list(range(10)))

    def test_schedule_timer_from_callback(self):
        clock = FakeClock()
        loop = self.make_loop(clock)
        fired_at = []

        def first():
            loop.schedule(2, lambda: (fired_at.append(clock.now), loop.stop()))

        loop.schedule(1, first)
        self.run_loop(loop)
        self.assertEqual(fired_at, [1003.0])

    def test_cancelled_timers_are_purged_in_batches(self):
        loop = self.make_loop(FakeClock())
        handles = [loop.schedule(1 + i * 0.001, lambda: None) for i in range(10000)]
        keep = handles[::1000]
        doomed = [h for h in handles if h not in keep]
        random.Random(7).shuffle(doomed)
        live = len(handles)
        for handle in doomed:
            handle.delete()
            live -= 1
            # Even with no pass to purge them, dead entries stay at most 7/8
            # of the heap.
            self.assertLessEqual(len(loop._timers), 8 * live + 65)
        self.assertEqual(len(loop.scheduled_events()), len(keep))
        # The survivors still fire, in order.
        log = []
        for i, handle in enumerate(keep):
            handle._callback = log.append
            handle._args = (i,)
        loop.schedule(100, loop.stop)
        self.run_loop(loop)
        self.assertEqual(log, list(range(len(keep))))

    def test_pass_purges_cancelled_timers(self):
        loop = self.make_loop(FakeClock())
        handles = [loop.schedule(10 + i, lambda: None) for i in range(1000)]
        for handle in handles[:600]:
            handle.delete()
        self.assertEqual(len(loop._timers), 1000)  # below delete's own limit
        sizes = []
        loop.schedule(0, lambda: (sizes.append(len(loop._timers)), loop.stop()))
        self.run_loop(loop)
        # The pass dropped all 600 in one batch before running anything.
        self.assertEqual(sizes, [400])

    def test_heap_stays_bounded_under_churn(self):
        # Schedule-and-cancel churn (a connection resetting its idle timer on
        # every read) must not grow the heap without bound, within one pass
        # or across passes.
        loop = self.make_loop(FakeClock())
        current = [loop.schedule(60, lambda: None)]
        for _ in range(100000):
            current[0].delete()
            current[0] = loop.schedule(60, lambda: None)
        self.assertLessEqual(len(loop._timers), 8 * 1 + 66)
        sizes = []

        def churn(rounds):
            for _ in range(100):
                current[0].delete()
                current[0] = loop.schedule(60, lambda: None)
            sizes.append(len(loop._timers))
            if rounds:
                loop.schedule(0, churn, rounds - 1)
            else:
                loop.stop()

        loop.schedule(0, churn, 50)
        self.run_loop(loop)
        self.assertLessEqual(max(sizes), 2 * 1 + 66 + 100)

    def test_scheduled_events(self):
        clock = FakeClock()
        loop = self.make_loop(clock)
        late = loop.schedule(5, lambda: None)
        early = loop.schedule(1, lambda: None)
        gone = loop.schedule(2, lambda: None)
        soon = loop.schedule(0, lambda: None)
        gone.delete()
        # (delay from now, handle) pairs, soonest first, as in Thor 0.17.
        self.assertEqual(
            loop.scheduled_events(), [(0.0, soon), (1.0, early), (5.0, late)]
        )
        clock.advance(0.25)
        self.assertEqual(
            loop.scheduled_events(), [(0.0, soon), (0.75, early), (4.75, late)]
        )
        for when, event in loop.scheduled_events():  # as REDbot's daemon reads it
            self.assertIn("pending" if when else "ready", repr(event))
            self.assertIn("lambda", repr(event))

    # -- stop, start, running -----------------------------------------------------

    def test_start_and_stop_events(self):
        loop = self.make_loop(FakeClock())
        log = []
        loop.on("start", lambda: log.append(("start", loop.running)))
        loop.on("stop", lambda: log.append(("stop", loop.running)))
        loop.schedule(1, lambda: (log.append(("timer", loop.running)), loop.stop()))
        self.assertFalse(loop.running)
        self.run_loop(loop)
        self.assertFalse(loop.running)
        self.assertEqual(log, [("start", True), ("timer", True), ("stop", False)])

    def test_stop_clears_timers_and_forgets_fds(self):
        loop = self.make_loop(FakeClock())
        a, _ = self.socketpair()
        source = EventSource(loop)
        source.register_fd(a.fileno())
        pending = Counter()
        soon = Counter()
        handle = loop.schedule(10, pending)

        def stopper():
            loop.schedule(0, soon)
            loop.stop()

        loop.schedule(1, stopper)
        self.assertEqual(loop.fd_count(), 1)
        self.run_loop(loop)
        self.assertEqual(loop.fd_count(), 0)
        self.assertEqual(loop.scheduled_events(), [])
        handle.delete()  # harmless after stop
        # Running again: nothing from before fires.
        loop.schedule(20, loop.stop)
        self.run_loop(loop)
        self.assertEqual((pending.count, soon.count), (0, 0))

    def test_stop_skips_rest_of_pass(self):
        loop = self.make_loop(FakeClock())
        after = Counter()
        loop.schedule(1, loop.stop)
        loop.schedule(1, after)
        self.run_loop(loop)
        self.assertEqual(after.count, 0)

    def test_stop_from_fd_event_skips_scheduled_callbacks(self):
        loop = self.make_loop()
        a, b = self.socketpair()
        source = EventSource(loop)
        source.on("fd_readable", loop.stop)
        source.register_fd(a.fileno(), "fd_readable")
        b.send(b"x")
        soon = Counter()
        loop.schedule(0, soon)
        self.run_loop(loop)
        self.assertEqual(self.passes, 1)
        self.assertEqual(soon.count, 0)

    def test_stop_when_not_running_clears(self):
        loop = self.make_loop(FakeClock())
        loop.schedule(1, lambda: None)
        loop.stop()
        self.assertEqual(loop.scheduled_events(), [])
        self.assertFalse(loop.running)

    def test_stop_from_another_thread(self):
        loop = self.make_loop()
        started = threading.Event()
        loop.on("start", started.set)
        thread = threading.Thread(target=lambda: (started.wait(GUARD), loop.stop()))
        thread.start()
        self.addCleanup(thread.join)
        self.run_loop(loop)
        self.assertFalse(loop.running)

    @unittest.skipUnless(hasattr(signal, "setitimer"), "no setitimer here")
    def test_stop_from_a_signal_handler_wakes_the_poller(self):
        # The handler runs in the main thread between two polls: PEP 475
        # retries an interrupted poll, so stop() must wake it to be seen.
        if threading.current_thread() is not threading.main_thread():
            self.skipTest("signals are handled in the main thread only")
        loop = self.make_loop()
        fired = Counter(lambda *args: loop.stop())
        previous = signal.signal(signal.SIGALRM, fired)
        self.addCleanup(signal.signal, signal.SIGALRM, previous)
        self.addCleanup(signal.setitimer, signal.ITIMER_REAL, 0)
        loop.on("start", lambda: signal.setitimer(signal.ITIMER_REAL, 0.05))
        self.run_loop(loop)
        self.assertEqual(fired.count, 1)
        self.assertIsNone(self.timeouts[0])  # it was blocked with no timeout

    def test_running_is_read_only(self):
        loop = self.make_loop(FakeClock())
        with self.assertRaises(AttributeError):
            loop.running = True
        seen = []
        loop.schedule(1, lambda: (seen.append(loop.running), loop.stop()))
        self.run_loop(loop)
        self.assertEqual((seen, loop.running), ([True], False))

    def test_run_while_running_raises(self):
        loop = self.make_loop(FakeClock())
        errors = []
        loop.exception_handler = lambda loop_, exc, cb: errors.append(exc)
        loop.schedule(1, loop.run)
        loop.schedule(2, loop.stop)
        self.run_loop(loop)
        self.assertEqual([type(e) for e in errors], [RuntimeError])

    # -- time ------------------------------------------------------------------

    def test_time_cached_per_pass_and_near_unix_time(self):
        loop = self.make_loop()
        seen = []

        def first():
            before = loop.time()
            busy_wait(0.003)
            seen.append((before, loop.time(), time.time()))
            loop.schedule(0, second)

        def second():
            seen.append((loop.time(), None, time.time()))
            loop.stop()

        loop.schedule(0, first)
        self.run_loop(loop)
        (t1, t1_again, wall1), (t2, _, wall2) = seen
        self.assertEqual(t1, t1_again)  # cached for the pass
        self.assertLessEqual(t1, wall1)
        self.assertLess(wall1 - t1, 1.0)
        self.assertGreater(t2, t1)  # read again on the next pass
        self.assertLess(abs(wall2 - t2), 1.0)

    def test_time_when_not_running_is_fresh(self):
        loop = self.make_loop()
        loop._now = 0.0  # as if the last pass were long ago
        self.assertLess(abs(loop.time() - time.time()), 1.0)

    # -- debug -------------------------------------------------------------------

    def test_debug_warns_about_slow_callback(self):
        loop = self.make_loop()
        loop.debug = True
        loop.slow_callback = 0.002

        def slow():
            busy_wait(0.01)
            loop.stop()

        loop.schedule(0, slow)
        err = stderr_of(self.run_loop, loop)
        self.assertIn("blocked the loop", err)

    def test_debug_warns_about_slow_fd_callback(self):
        loop = self.make_loop()
        loop.debug = True
        loop.slow_callback = 0.002
        a, b = self.socketpair()
        source = EventSource(loop)
        source.on("fd_readable", lambda: (busy_wait(0.01), a.recv(10), loop.stop()))
        source.register_fd(a.fileno(), "fd_readable")
        b.send(b"x")
        err = stderr_of(self.run_loop, loop)
        self.assertIn("blocked the loop", err)

    def test_debug_out_is_replaceable_per_loop(self):
        # As REDbot does: loop.debug_out = print_debug(message, profile).
        loop = self.make_loop()
        other = self.make_loop()
        loop.debug = other.debug = True
        loop.slow_callback = other.slow_callback = 0.002
        got = []
        loop.debug_out = lambda message, profile: got.append((message, profile))

        def slow():
            busy_wait(0.01)
            loop.stop()

        loop.schedule(0, slow)
        err = stderr_of(self.run_loop, loop)
        self.assertEqual(err, "")
        self.assertEqual(len(got), 1)
        self.assertIn("blocked the loop", got[0][0])
        self.assertIn("slow", got[0][0])
        self.assertIsNone(got[0][1])
        # Other loops keep the default: a line on stderr.
        other.schedule(0, lambda: (busy_wait(0.01), other.stop()))
        self.assertIn("blocked the loop", stderr_of(self.run_loop, other))
        self.assertEqual(len(got), 1)

    def test_no_warning_without_debug(self):
        loop = self.make_loop()
        loop.slow_callback = 0.002
        loop.schedule(0, lambda: (busy_wait(0.01), loop.stop()))
        err = stderr_of(self.run_loop, loop)
        self.assertEqual(err, "")

    # -- threads -------------------------------------------------------------------

    def test_run_in_loop_wakes_idle_loop(self):
        loop = self.make_loop()
        polling = threading.Event()
        original = loop._poller.poll

        def poll(timeout):
            polling.set()
            return original(timeout)

        loop._poller.poll = poll
        got = []

        def callback(value):
            got.append((value, threading.get_ident()))
            loop.stop()

        def other_thread():
            polling.wait(GUARD)
            loop.run_in_loop(callback, "hello")

        thread = threading.Thread(target=other_thread)
        thread.start()
        self.addCleanup(thread.join)
        started = time.monotonic()
        self.run_loop(loop)
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertEqual(got, [("hello", threading.get_ident())])
        self.assertIsNone(self.timeouts[0])  # it was blocked with no timeout

    def test_run_in_loop_before_run(self):
        loop = self.make_loop()
        got = Counter(lambda: loop.stop())
        loop.run_in_loop(got)
        self.run_loop(loop)
        self.assertEqual(got.count, 1)

    def test_run_in_loop_many_threads(self):
        loop = self.make_loop()
        total = 8 * 200
        got = []

        def callback(value):
            got.append(value)
            if len(got) == total:
                loop.stop()

        def worker(base):
            for i in range(200):
                loop.run_in_loop(callback, base + i)

        threads = [threading.Thread(target=worker, args=(n * 1000,)) for n in range(8)]
        loop.on("start", lambda: [t.start() for t in threads])
        self.run_loop(loop)
        for thread in threads:
            thread.join()
        self.assertEqual(sorted(got), sorted(n * 1000 + i for n in range(8) for i in range(200)))

    # -- errors --------------------------------------------------------------------

    def test_exception_in_timer_goes_to_handler(self):
        loop = self.make_loop(FakeClock())
        errors = []
        loop.exception_handler = lambda loop_, exc, cb: errors.append((loop_, exc, cb))

        def bad():
            raise ValueError("bad timer")

        after = Counter(lambda: loop.stop())
        loop.schedule(1, bad)
        loop.schedule(2, after)
        self.run_loop(loop)
        self.assertEqual(after.count, 1)  # the loop carried on
        self.assertEqual(len(errors), 1)
        self.assertIs(errors[0][0], loop)
        self.assertIsInstance(errors[0][1], ValueError)
        self.assertIs(errors[0][2], bad)

    def test_exception_in_fd_callback_goes_to_handler(self):
        loop = self.make_loop()
        errors = []
        loop.exception_handler = lambda loop_, exc, cb: errors.append((exc, cb))
        a, b = self.socketpair()
        source = EventSource(loop)

        def readable():
            a.recv(10)
            raise KeyError("bad fd callback")

        source.on("fd_readable", readable)
        source.register_fd(a.fileno(), "fd_readable")
        b.send(b"x")
        after = Counter(lambda: loop.stop())
        loop.schedule(0.001, after)
        self.run_loop(loop)
        self.assertEqual(after.count, 1)
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0][0], KeyError)
        self.assertIs(errors[0][1], source)

    def test_default_handler_prints_traceback(self):
        loop = self.make_loop(FakeClock())
        loop.exception_handler = thor.loop.default_exception_handler

        def bad():
            raise ValueError("printed")

        after = Counter(lambda: loop.stop())
        loop.schedule(1, bad)
        loop.schedule(2, after)
        err = stderr_of(self.run_loop, loop)
        self.assertEqual(after.count, 1)
        self.assertIn("Traceback", err)
        self.assertIn("ValueError: printed", err)

    def test_new_loop_uses_default_handler(self):
        loop = LoopBase(poller=POLLERS[self.poller])
        self.addCleanup(loop.close)
        self.assertIs(loop.exception_handler, thor.loop.default_exception_handler)

    def test_handler_that_raises_makes_run_raise(self):
        loop = self.make_loop(FakeClock())
        stopped = Counter()
        loop.on("stop", stopped)

        def bad():
            raise ZeroDivisionError("fail the test")

        loop.schedule(1, bad)
        loop.schedule(2, loop.stop)  # not reached
        with self.assertRaises(ZeroDivisionError):
            self.run_loop(loop)
        self.assertFalse(loop.running)
        self.assertEqual(loop.scheduled_events(), [])

    # -- fd sources ----------------------------------------------------------------

    def test_fd_readable(self):
        loop = self.make_loop()
        a, b = self.socketpair()
        source = EventSource(loop)
        got = []

        def readable():
            got.append(a.recv(100))
            if b"".join(got) == b"hello world":
                loop.stop()

        source.on("fd_readable", readable)
        source.register_fd(a.fileno(), "fd_readable")
        self.assertEqual(source.interesting_events(), {"fd_readable"})
        loop.on("start", lambda: b.send(b"hello world"))
        self.run_loop(loop)
        self.assertEqual(b"".join(got), b"hello world")

    def test_fd_writable_and_event_del(self):
        loop = self.make_loop()
        a, _ = self.socketpair()
        source = EventSource(loop)

        def writable():
            source.event_del("fd_writable")
            self.stop_after_passes(loop, 3)

        counter = Counter(writable)
        source.on("fd_writable", counter)
        source.register_fd(a.fileno())
        self.assertEqual(source.interesting_events(), set())
        source.event_add("fd_writable")
        self.assertEqual(source.interesting_events(), {"fd_writable"})
        self.run_loop(loop)
        self.assertEqual(counter.count, 1)  # still writable, but no interest
        self.assertEqual(source.interesting_events(), set())

    def test_event_add_and_del_are_cheap_when_unchanged(self):
        loop = self.make_loop()
        a, _ = self.socketpair()
        source = EventSource(loop)
        source.register_fd(a.fileno(), "fd_readable")
        modifies = []
        original = loop._poller.modify
        loop._poller.modify = lambda fd, mask: (modifies.append(mask), original(fd, mask))
        source.event_add("fd_readable")
        source.event_del("fd_writable")
        self.assertEqual(modifies, [])
        source.event_add("fd_writable")
        source.event_add("fd_writable")
        self.assertEqual(modifies, [thor.loop.READ | thor.loop.WRITE])
        self.assertEqual(source.interesting_events(), {"fd_readable", "fd_writable"})

    def test_readable_and_writable_together(self):
        loop = self.make_loop()
        a, b = self.socketpair()
        source = EventSource(loop)
        log = []

        def readable():
            log.append("r")
            a.recv(10)

        def writable():
            log.append("w")
            source.event_del("fd_writable")
            loop.stop()

        source.on("fd_readable", readable)
        source.on("fd_writable", writable)
        source.register_fd(a.fileno(), "fd_readable")
        source.event_add("fd_writable")
        b.send(b"x")
        self.run_loop(loop)
        self.assertEqual(log, ["r", "w"])

    def test_unregister_fd(self):
        loop = self.make_loop()
        a, b = self.socketpair()
        source = EventSource(loop)
        readable = Counter()
        source.on("fd_readable", readable)
        source.register_fd(a.fileno(), "fd_readable")
        self.assertEqual(loop.fd_count(), 1)
        source.unregister_fd()
        source.unregister_fd()  # twice is harmless
        self.assertEqual(loop.fd_count(), 0)
        b.send(b"x")
        self.stop_after_passes(loop, 3)
        self.run_loop(loop)
        self.assertEqual(readable.count, 0)
        self.assertEqual(a.recv(10), b"x")  # not closed

    def test_registered_fd_handlers(self):
        loop = self.make_loop()
        self.assertEqual(loop.registered_fd_handlers(), [])  # not the waker
        a, _ = self.socketpair()
        b, _ = self.socketpair()
        first, second = EventSource(loop), EventSource(loop)
        first.register_fd(a.fileno(), "fd_readable")
        second.register_fd(b.fileno())
        self.assertEqual(
            sorted(map(id, loop.registered_fd_handlers())), sorted((id(first), id(second)))
        )
        first.unregister_fd()
        self.assertEqual(loop.registered_fd_handlers(), [second])
        self.assertIs(first.loop, loop)  # Thor 0.17's name for _loop

    def test_fd_count(self):
        loop = self.make_loop()
        self.assertEqual(loop.fd_count(), 0)
        sources = []
        for _ in range(3):
            a, _ = self.socketpair()
            source = EventSource(loop)
            source.register_fd(a.fileno(), "fd_readable")
            sources.append(source)
        self.assertEqual(loop.fd_count(), 3)
        sources[1].unregister_fd()
        self.assertEqual(loop.fd_count(), 2)

    def test_peer_close_with_interest(self):
        loop = self.make_loop()
        a, b = self.socketpair()
        source = EventSource(loop)
        log = []

        def readable():
            data = a.recv(10)
            log.append(("readable", data))
            if not data:  # kqueue reports the peer's close as readable EOF
                closed()

        def closed():
            log.append("close")
            source.unregister_fd()
            loop.stop()

        source.on("fd_readable", readable)
        source.on("fd_close", closed)
        source.register_fd(a.fileno(), "fd_readable")
        b.send(b"bye")
        b.close()
        self.run_loop(loop)
        self.assertEqual(log[0], ("readable", b"bye"))
        self.assertEqual(log[-1], "close")

    def test_peer_close_without_interest_does_not_spin(self):
        loop = self.make_loop()
        a, b = self.socketpair()
        source = EventSource(loop)
        closes = Counter()
        errors = Counter()
        source.on("fd_close", closes)
        source.on("fd_error", errors)  # neither listener unregisters
        source.register_fd(a.fileno())
        passes_at_close = []
        closes.action = lambda: passes_at_close.append(self.passes)
        stopper = Counter(lambda: loop.stop())
        loop.on("start", lambda: (b.close(), loop.schedule(0.05, stopper)))
        self.run_loop(loop)
        if self.poller == "kqueue":
            # kqueue has no HUP without a filter: nothing is reported at all.
            self.assertEqual(closes.count + errors.count, 0)
        else:
            self.assertEqual(closes.count + errors.count, 1)
            self.assertEqual(loop.fd_count(), 0)  # the loop stopped watching it
        # Without the unregister this would be thousands of passes.
        self.assertLessEqual(self.passes, 5)

    def test_fd_error_without_interest(self):
        # The write end of a pipe whose reader has gone reports POLLERR.
        loop = self.make_loop()
        r, w = os.pipe()
        self.addCleanup(os.close, w)
        source = EventSource(loop)
        errors = Counter()
        source.on("fd_error", errors)
        source.register_fd(w)
        stopper = Counter(lambda: loop.stop())
        loop.on("start", lambda: (os.close(r), loop.schedule(0.05, stopper)))
        self.run_loop(loop)
        if self.poller != "kqueue":  # no filter, no report on kqueue
            self.assertEqual(errors.count, 1)
            self.assertEqual(loop.fd_count(), 0)
        self.assertLessEqual(self.passes, 5)

    def test_stale_source_does_not_touch_new_owner_of_fd(self):
        loop = self.make_loop()
        a, b = self.socketpair()
        old = EventSource(loop)
        old.register_fd(a.fileno())
        loop.stop()  # not running: forgets the fd, old still thinks it has it
        self.assertEqual(loop.fd_count(), 0)
        new = EventSource(loop)
        readable = Counter(lambda: (a.recv(10), loop.stop()))
        new.on("fd_readable", readable)
        new.register_fd(a.fileno(), "fd_readable")
        old.event_del("fd_readable")
        old.event_add("fd_writable")
        old.unregister_fd()
        self.assertEqual(loop.fd_count(), 1)
        b.send(b"x")
        self.run_loop(loop)
        self.assertEqual(readable.count, 1)

    def test_far_future_timer_does_not_overflow_the_poller(self):
        # epoll and poll take milliseconds in a C int (24.8 days at most);
        # a timer further away than that must not make the pass raise.
        loop = self.make_loop()
        handle = loop.schedule(40 * 86400, lambda: None)
        loop._wake()  # the poll returns at once, but is asked to sleep long
        loop._run_once()
        self.assertLess(self.timeouts[-1], 24 * 86400)
        self.assertEqual([h for _, h in loop.scheduled_events()], [handle])

    def test_stop_while_other_threads_hand_over_work(self):
        # stop() clears the ready queue while run_in_loop may be appending
        # to it from another thread: that must never raise.
        loop = self.make_loop()
        done = threading.Event()
        errors = []
        handed = [0]

        def hammer():
            try:
                while not done.is_set():
                    loop.run_in_loop(int)
                    handed[0] += 1
            except Exception as exc:  # reported to the test below
                errors.append(exc)

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            for _ in range(2000):
                for _ in range(20):
                    loop.schedule(0, int)
                loop.stop()  # not running: clears at once
                loop.scheduled_events()
        finally:
            done.set()
            thread.join()
        self.assertEqual(errors, [])
        self.assertGreater(handed[0], 0)

    @unittest.skipUnless(hasattr(os, "fork"), "no fork here")
    def test_fork_child_gets_its_own_poller_and_keeps_sources(self):
        loop = self.make_loop()
        a, b = self.socketpair()
        source = EventSource(loop)
        source.register_fd(a.fileno(), "fd_readable")
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            status = 1
            try:
                # Unregistering here must not touch the parent's poller.
                got = []
                source.on("fd_readable", lambda: (got.append(a.recv(1)), loop.stop()))
                loop.schedule(GUARD, loop.stop)
                loop.run_in_loop(b.send, b"c")
                loop.run()
                if got == [b"c"] and loop.fd_count() == 0:
                    status = 0
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status) if hasattr(
            os, "waitstatus_to_exitcode") else status >> 8, 0)
        # The child's loop stopped (forgetting the fd) and is gone; the
        # parent's registration is intact.
        self.assertEqual(loop.fd_count(), 1)
        readable = Counter(lambda: (a.recv(10), loop.stop()))
        source.on("fd_readable", readable)
        b.send(b"p")
        self.run_loop(loop)
        self.assertEqual(readable.count, 1)

    def test_source_uses_default_loop(self):
        self.assertIs(EventSource()._loop, thor.loop._loop)


def _poller_case(name):
    skip = unittest.skipUnless(name in POLLERS, "%s is not available here" % name)
    return skip(type("TestLoop_" + name, (LoopTests, unittest.TestCase), {"poller": name}))


TestLoop_epoll = _poller_case("epoll")
TestLoop_kqueue = _poller_case("kqueue")
TestLoop_poll = _poller_case("poll")


@unittest.skipUnless("poll" in POLLERS, "poll is not available here")
class TestPollInvalid(unittest.TestCase):
    def test_closed_fd_is_dropped(self):
        # poll reports POLLNVAL for a registered fd that was closed; the loop
        # reports fd_error and stops watching it (epoll forgets closed fds
        # by itself).
        loop = LoopBase(poller=POLLERS["poll"])
        loop.exception_handler = reraise
        self.addCleanup(loop.close)
        a, b = socket.socketpair()
        self.addCleanup(b.close)
        source = EventSource(loop)
        errors = Counter(lambda: loop.stop())
        source.on("fd_error", errors)
        source.register_fd(a.fileno(), "fd_readable")
        a.close()
        guard = threading.Timer(GUARD, loop.stop)
        guard.start()
        loop.run()
        guard.cancel()
        self.assertEqual(errors.count, 1)
        self.assertEqual(loop.fd_count(), 0)


class _Deadline(thor.loop.LazyTimer):
    """A LazyTimer host: one timeout, and a log of when the deadline was
    found to have passed (on the loop's clock)."""

    __slots__ = ("loop", "timeout", "expired", "init")

    def __init__(self, loop, timeout, init=True):
        self.loop = loop
        self.timeout = timeout
        self.expired = []
        if init:
            self._init_timer(loop)
        else:
            # As hosts written before _init_timer set the slots.
            self._deadline = None
            self._timer = None
            self._timer_due = 0.0

    def _timeouts(self):
        return (self.timeout,)

    def _on_timer(self):
        self._timer = None
        if self._deadline_passed():
            self.expired.append(self.loop._clock())


class TestLazyTimerClock(unittest.TestCase):
    """LazyTimer deadlines are on the loop's clock: a fake clock, moved by
    hand between passes, drives them with no real time passing."""

    def make_loop(self):
        clock = FakeClock()
        loop = LoopBase(clock=clock)
        loop.exception_handler = reraise
        self.addCleanup(loop.close)
        original = loop._poller.poll
        # Never sleep: the test moves the clock itself.
        loop._poller.poll = lambda timeout: original(0)
        return loop, clock

    def check_host(self, init):
        loop, clock = self.make_loop()
        host = _Deadline(loop, 5.0, init=init)
        started = time.monotonic()
        host._set_deadline(5.0)  # due at 1005
        loop._run_once()
        clock.advance(4.75)
        loop._run_once()
        self.assertEqual(host.expired, [])
        host._set_deadline(5.0)  # moved to 1009.75; the timer stays at 1005
        clock.advance(0.5)  # 1005.25: the timer fires early and re-arms
        loop._run_once()
        loop._run_once()
        self.assertEqual(host.expired, [])
        self.assertIsNotNone(host._timer)
        clock.advance(4.25)  # 1009.5: still before the deadline
        loop._run_once()
        self.assertEqual(host.expired, [])
        clock.advance(0.25)  # 1009.75: the deadline
        loop._run_once()
        self.assertEqual(host.expired, [1009.75])
        self.assertIsNone(host._deadline)
        # 9.75 s on the fake clock took no real time to speak of.
        self.assertLess(time.monotonic() - started, 1.0)

    def test_fake_clock_drives_deadline(self):
        self.check_host(init=True)

    def test_host_without_init_timer_binds_loop_clock(self):
        self.check_host(init=False)

    def test_init_timer_binds_loop_clock(self):
        loop, clock = self.make_loop()
        host = _Deadline(loop, 1.0)
        self.assertIs(host._clock, clock)
        self.assertIsNone(host._deadline)
        self.assertIsNone(host._timer)
        host._set_deadline(2.0)
        self.assertEqual(host._deadline, 1002.0)
        host._stop_timer()
        self.assertIsNone(host._timer)
        self.assertEqual(loop.scheduled_events(), [])


class TestDefaultLoop(unittest.TestCase):
    """The module face: thor.loop.* and thor.* act on the default loop."""

    def setUp(self):
        self.loop = thor.loop._loop
        self.addCleanup(setattr, self.loop, "debug", self.loop.debug)
        self.addCleanup(setattr, self.loop, "exception_handler", self.loop.exception_handler)
        self.loop.exception_handler = reraise

    def run_default(self):
        guard = threading.Timer(GUARD, thor.loop.stop)
        guard.daemon = True
        guard.start()
        try:
            thor.loop.run()
        finally:
            guard.cancel()

    def test_default_loop(self):
        self.assertIsInstance(thor.loop.default_loop(), LoopBase)
        self.assertIs(thor.loop.default_loop(), thor.loop._loop)  # REDbot reads _loop
        self.assertEqual(thor.loop.default_loop().schedule, thor.schedule)

    def test_names(self):
        loop = self.loop
        self.assertEqual(thor.loop.schedule, loop.schedule)
        self.assertEqual(thor.loop.run, loop.run)
        self.assertEqual(thor.loop.stop, loop.stop)
        self.assertEqual(thor.loop.time, loop.time)
        self.assertEqual(thor.loop.run_in_loop, loop.run_in_loop)
        self.assertEqual(thor.loop.fd_count, loop.fd_count)
        self.assertEqual(thor.loop.scheduled_events, loop.scheduled_events)
        for name in ("run", "stop", "schedule", "time", "run_in_loop"):
            self.assertIs(getattr(thor, name), getattr(thor.loop, name))
        self.assertEqual(thor.loop.on, loop.on)

    def test_thor_on_both_faces(self):
        # thor.on(event_name, listener) listens to the default loop;
        # thor.on(emitter, event=None) is the decorator thor.events.on.
        started = Counter()
        thor.on("start", started)
        self.addCleanup(self.loop.removeListener, "start", started)
        self.assertIn(started, self.loop.listeners("start"))
        emitter = thor.events.EventEmitter()

        @thor.on(emitter)
        def blow_up(value):
            started(value)

        emitter.emit("blow_up", 1)
        self.assertEqual(started.calls, [(1,)])
        self.assertIn(thor.loop._loop.poller_name, POLLERS)

    def test_make_picks_best_poller(self):
        loop = thor.loop.make()
        self.addCleanup(loop.close)
        best = next(name for name in ("epoll", "kqueue", "poll") if name in POLLERS)
        self.assertEqual(loop.poller_name, best)
        self.assertEqual(loop.precision, 0.1)  # as in Thor 0.17
        with self.assertRaises(KeyError):
            thor.loop.make(poller="no-such-poller")
        for bad in (0, -1):
            with self.assertRaisesRegex(ValueError, "precision"):
                thor.loop.make(bad)
        self.assertEqual(thor.loop._loop.precision, 0.1)

    def test_running_is_live_and_read_only(self):
        self.assertFalse(thor.loop.running)
        with self.assertRaises(AttributeError):
            thor.loop.running = True
        self.assertFalse(thor.loop.running)
        seen = []
        thor.schedule(0, lambda: (seen.append(thor.loop.running), thor.stop()))
        self.run_default()
        self.assertEqual(seen, [True])
        self.assertFalse(thor.loop.running)

    def test_debug_is_live(self):
        self.assertFalse(thor.loop.debug)
        thor.loop.debug = True
        self.assertIs(self.loop.debug, True)
        self.loop.debug = False
        self.assertIs(thor.loop.debug, False)

    def test_debug_on_module_warns_on_default_loop(self):
        thor.loop.debug = True
        self.addCleanup(setattr, self.loop, "slow_callback", self.loop.slow_callback)
        self.loop.slow_callback = 0.002
        thor.schedule(0, lambda: (busy_wait(0.01), thor.stop()))
        err = stderr_of(self.run_default)
        self.assertIn("blocked the loop", err)

    def test_exception_handler_is_live(self):
        handler = lambda loop, exc, cb: None  # noqa: E731
        thor.loop.exception_handler = handler
        self.assertIs(self.loop.exception_handler, handler)

    def test_start_stop_events_on_default_loop(self):
        log = []
        start = lambda: log.append("start")  # noqa: E731
        stop = lambda: log.append("stop")  # noqa: E731
        thor.loop.on("start", start)
        thor.loop.on("stop", stop)
        self.addCleanup(self.loop.removeListener, "start", start)
        self.addCleanup(self.loop.removeListener, "stop", stop)
        thor.schedule(0, thor.stop)
        self.run_default()
        self.assertEqual(log, ["start", "stop"])

    def test_time(self):
        self.assertLess(abs(thor.time() - time.time()), 1.0)


if __name__ == "__main__":
    unittest.main()
