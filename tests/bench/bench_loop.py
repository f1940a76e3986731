"""Benchmark thor's loop and emitter beside asyncio and a minimal emitter.

    python3 tests/bench/bench_loop.py [--quick]

Measures, in one run:
- 100k timers: schedule, delete (in random order, plus the loop pass that
  drops the deleted entries) and fire, in microseconds per timer, and bytes per pending timer (tracemalloc), for thor's
  schedule/delete and asyncio's call_later/cancel;
- lateness of 10 ms timers (p50, p99 over 300 timers, one after another);
- CPU time and wake-ups of an idle loop over 5 s (wake-ups counted by
  wrapping thor's poller ``poll`` and asyncio's selector ``select``);
- emit to 1 and 10 listeners, against a minimal dict-of-lists emitter.

The targets come from the foundation issue; each line says whether it is met.
--quick shortens the idle run to 2 s and the lateness run to 100 timers.
"""

import asyncio
import gc
import os
import random
import sys
import time
import timeit
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import thor.loop  # noqa: E402
from thor.events import EventEmitter  # noqa: E402

QUICK = "--quick" in sys.argv[1:]
N_TIMERS = 100_000
N_LATE = 100 if QUICK else 300
IDLE_SECONDS = 2.0 if QUICK else 5.0

results = []  # (label, met: bool, detail)


def row(name, thor_value, other_value, unit, other_name="asyncio"):
    ratio = thor_value / other_value if other_value else float("inf")
    print("  %-34s thor %9.3f %-5s %s %9.3f %-5s  ratio %5.2fx" % (
        name, thor_value, unit, other_name, other_value, unit, ratio))
    return ratio


def target(label, met, detail):
    results.append((label, met, detail))


# -- 100k timers ---------------------------------------------------------------


def bench_thor_timers(delays, order):
    loop = thor.loop.make()
    gc.collect()
    gc.disable()
    try:
        schedule = loop.schedule
        cb = _noop
        # Memory first, on its own: tracemalloc slows allocation down.
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        handles = [schedule(delay, cb) for delay in delays]
        size = (tracemalloc.get_traced_memory()[0] - before) / len(delays)
        tracemalloc.stop()
        for handle in handles:
            handle.delete()
        handles = None
        loop.stop()

        handles = [None] * len(delays)
        started = time.perf_counter()
        for i, delay in enumerate(delays):
            handles[i] = schedule(delay, cb)
        schedule_s = time.perf_counter() - started

        started = time.perf_counter()
        for i in order:
            handles[i].delete()
        handles = None
        # One pass, so that the cost of dropping the dead entries counts.
        loop.schedule(0, loop.stop)
        loop.run()
        delete_s = time.perf_counter() - started

        # Fire: schedule timers that are all due by the time the loop runs,
        # so the measurement is the loop's own work, not its sleeping.
        count = [0]
        total = len(delays)

        def fire():
            count[0] += 1
            if count[0] == total:
                loop.stop()

        for delay in delays:
            schedule(delay * 1e-4, fire)  # all within 10 ms
        time.sleep(0.02)
        started = time.perf_counter()
        loop.run()
        fire_s = time.perf_counter() - started
        assert count[0] == total
    finally:
        gc.enable()
        loop.close()
    n = len(delays)
    return schedule_s / n * 1e6, delete_s / n * 1e6, fire_s / n * 1e6, size


def bench_asyncio_timers(delays, order):
    loop = asyncio.new_event_loop()
    gc.collect()
    gc.disable()
    try:
        call_later = loop.call_later
        cb = _noop
        # Memory first, on its own: tracemalloc slows allocation down.
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        handles = [call_later(delay, cb) for delay in delays]
        size = (tracemalloc.get_traced_memory()[0] - before) / len(delays)
        tracemalloc.stop()
        for handle in handles:
            handle.cancel()
        handles = None
        loop.run_until_complete(asyncio.sleep(0))

        handles = [None] * len(delays)
        started = time.perf_counter()
        for i, delay in enumerate(delays):
            handles[i] = call_later(delay, cb)
        schedule_s = time.perf_counter() - started

        started = time.perf_counter()
        for i in order:
            handles[i].cancel()
        handles = None
        # One pass, in which asyncio purges the cancelled handles.
        loop.run_until_complete(asyncio.sleep(0))
        delete_s = time.perf_counter() - started

        count = [0]
        total = len(delays)

        def fire():
            count[0] += 1
            if count[0] == total:
                loop.stop()

        for delay in delays:
            call_later(delay * 1e-4, fire)
        time.sleep(0.02)
        started = time.perf_counter()
        loop.run_forever()
        fire_s = time.perf_counter() - started
        assert count[0] == total
    finally:
        gc.enable()
        loop.close()
    n = len(delays)
    return schedule_s / n * 1e6, delete_s / n * 1e6, fire_s / n * 1e6, size


def _noop(*args):
    pass


def timers_section():
    print("100k timers (us per timer; bytes per pending timer)")
    rng = random.Random(1)
    delays = [1 + rng.random() * 99 for _ in range(N_TIMERS)]
    order = list(range(N_TIMERS))
    rng.shuffle(order)
    # Best of three, alternating, to keep both on an equal footing.
    thor_runs, aio_runs = [], []
    for _ in range(3):
        thor_runs.append(bench_thor_timers(delays, order))
        aio_runs.append(bench_asyncio_timers(delays, order))
    thor_best = [min(r[i] for r in thor_runs) for i in range(4)]
    aio_best = [min(r[i] for r in aio_runs) for i in range(4)]
    for i, name in enumerate(("schedule", "delete (random order) + pass", "fire")):
        ratio = row(name, thor_best[i], aio_best[i], "us")
        target("100k timers %s <= 1.5x asyncio" % name, ratio <= 1.5, "%.2fx" % ratio)
    row("memory per pending timer", thor_best[3], aio_best[3], "B")


# -- lateness ------------------------------------------------------------------------


def percentile(values, fraction):
    ordered = sorted(values)
    index = min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))
    return ordered[index]


def lateness(loop, schedule, run):
    """How late each of N_LATE 10 ms timers fired, one after another, on
    ``loop`` (its ``schedule`` and ``run`` methods named: thor's, asyncio's)."""
    schedule = getattr(loop, schedule)
    late = []
    state = {}

    def fired():
        late.append(time.monotonic() - state["due"])
        if len(late) == N_LATE:
            loop.stop()
        else:
            arm()

    def arm():
        state["due"] = time.monotonic() + 0.010
        schedule(0.010, fired)

    arm()
    getattr(loop, run)()
    loop.close()
    return late


def lateness_section():
    print("lateness of 10 ms timers, %d in sequence (ms)" % N_LATE)
    thor_late = lateness(thor.loop.make(), "schedule", "run")
    aio_late = lateness(asyncio.new_event_loop(), "call_later", "run_forever")
    for name, fraction in (("p50", 0.50), ("p99", 0.99)):
        row(name, percentile(thor_late, fraction) * 1e3,
            percentile(aio_late, fraction) * 1e3, "ms")
    early = sum(1 for x in thor_late if x < 0)
    print("  thor timers fired early: %d" % early)
    p99 = percentile(thor_late, 0.99) * 1e3
    target("10 ms timer lateness p99 < 2 ms", p99 < 2.0, "%.3f ms" % p99)
    target("no thor timer fires before its deadline", early == 0, "%d early" % early)


# -- idle ------------------------------------------------------------------------------


def idle(loop, poller, poll, schedule, run):
    """(CPU seconds, wake-ups) of ``loop`` idle for IDLE_SECONDS; a wake-up
    is a call of ``poller``'s ``poll`` method (the other names as in
    ``lateness``)."""
    wakes = [0]
    original = getattr(poller, poll)

    def counted(timeout=None):
        wakes[0] += 1
        return original(timeout)

    setattr(poller, poll, counted)
    getattr(loop, schedule)(IDLE_SECONDS, loop.stop)
    cpu = time.process_time()
    getattr(loop, run)()
    cpu = time.process_time() - cpu
    loop.close()
    return cpu, wakes[0]


def idle_section():
    print("idle loop for %.0f s (one timer at the end)" % IDLE_SECONDS)
    loop = thor.loop.make()
    thor_cpu, thor_wakes = idle(loop, loop._poller, "poll", "schedule", "run")
    loop = asyncio.new_event_loop()
    aio_cpu, aio_wakes = idle(loop, loop._selector, "select", "call_later", "run_forever")
    row("CPU time", thor_cpu * 1e3, aio_cpu * 1e3, "ms")
    row("wake-ups", thor_wakes, aio_wakes, "")
    per_second = thor_wakes / IDLE_SECONDS
    target("idle loop wakes at most once a second", per_second <= 1.0,
           "%d wake-ups in %.0f s" % (thor_wakes, IDLE_SECONDS))


# -- emit ----------------------------------------------------------------------------------


class MinimalEmitter:
    """The least an emitter can do: a dict of lists, no rules."""

    def __init__(self):
        self.listeners = {}

    def on(self, event, listener):
        self.listeners.setdefault(event, []).append(listener)

    def emit(self, event, *args):
        for listener in self.listeners.get(event, ()):
            listener(*args)


def time_emit(emitter, listeners, number=200_000):
    for _ in range(listeners):
        emitter.on("data", _noop)
    emit = emitter.emit
    timer = timeit.Timer(lambda: emit("data", b"chunk"))
    return min(timer.repeat(repeat=5, number=number)) / number * 1e9


def emit_section():
    print("emit (ns per emit)")
    for listeners in (1, 10):
        thor_ns = time_emit(EventEmitter(), listeners)
        minimal_ns = time_emit(MinimalEmitter(), listeners)
        ratio = row("%d listener%s" % (listeners, "" if listeners == 1 else "s"),
                    thor_ns, minimal_ns, "ns", "minimal")
        if listeners == 1:
            target("emit to 1 listener >= half the minimal emitter's speed",
                   ratio <= 2.0, "%.2fx the time" % ratio)
    thor_ns = time_emit(EventEmitter(), 0)
    minimal_ns = time_emit(MinimalEmitter(), 0)
    row("0 listeners", thor_ns, minimal_ns, "ns", "minimal")
    print("  (asyncio has no emitter; its nearest cost, call_soon + run, is in 'fire')")


def main():
    print("thor %s, Python %s, poller %s" % (
        getattr(sys.modules.get("thor"), "__version__", "?"),
        sys.version.split()[0], thor.loop._loop.poller_name))
    timers_section()
    lateness_section()
    idle_section()
    emit_section()
    print("targets")
    missed = 0
    for label, met, detail in results:
        print("  %-4s %-56s %s" % ("ok" if met else "MISS", label, detail))
        missed += not met
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
