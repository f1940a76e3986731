"""Tests for thor.events: every rule the emitter documents (doc/events.md)."""

import copy
import pickle
import unittest

import thor
from thor.events import EventEmitter, on


class Recorder:
    """A listener that counts its calls and keeps their arguments."""

    def __init__(self, name=None, log=None):
        self.name = name
        self.log = log
        self.calls = []

    def __call__(self, *args):
        self.calls.append(args)
        if self.log is not None:
            self.log.append(self.name)

    @property
    def count(self):
        return len(self.calls)


class TestOnAndEmit(unittest.TestCase):
    def setUp(self):
        self.emitter = EventEmitter()

    def test_emit_passes_arguments(self):
        listener = Recorder()
        self.emitter.on("data", listener)
        self.emitter.emit("data", b"abc", 2)
        self.emitter.emit("data")
        self.assertEqual(listener.calls, [(b"abc", 2), ()])

    def test_listeners_run_in_order_added(self):
        log = []
        for name in "abcde":
            self.emitter.on("x", Recorder(name, log))
        self.emitter.emit("x")
        self.assertEqual(log, list("abcde"))

    def test_same_callable_twice_runs_twice(self):
        listener = Recorder()
        self.emitter.on("x", listener)
        self.emitter.on("x", listener)
        self.emitter.emit("x", 1)
        self.assertEqual(listener.count, 2)
        self.assertEqual(self.emitter.listeners("x"), [listener, listener])

    def test_remove_one_of_two_registrations(self):
        listener = Recorder()
        self.emitter.on("x", listener)
        self.emitter.on("x", listener)
        self.emitter.removeListener("x", listener)
        self.emitter.emit("x")
        self.assertEqual(listener.count, 1)
        self.assertEqual(self.emitter.listeners("x"), [listener])

    def test_events_are_independent(self):
        a, b = Recorder(), Recorder()
        self.emitter.on("a", a)
        self.emitter.on("b", b)
        self.emitter.emit("a")
        self.assertEqual((a.count, b.count), (1, 0))

    def test_emit_without_listeners_is_silent(self):
        self.assertIsNone(self.emitter.emit("nobody", 1, 2, 3))
        self.assertEqual(self.emitter.listeners("nobody"), [])

    def test_on_returns_emitter(self):
        self.assertIs(self.emitter.on("x", Recorder()), self.emitter)

    def test_bound_methods_are_listeners(self):
        listener = Recorder()
        self.emitter.on("x", listener.__call__)
        self.emitter.removeListener("x", listener.__call__)  # a new bound object, equal
        self.emitter.emit("x")
        self.assertEqual(listener.count, 0)

    def test_exception_propagates_from_emit(self):
        after = Recorder()

        def boom(*args):
            raise ValueError("boom")

        self.emitter.on("x", boom)
        self.emitter.on("x", after)
        with self.assertRaises(ValueError):
            self.emitter.emit("x")
        self.assertEqual(after.count, 0)
        self.assertEqual(self.emitter.listeners("x"), [boom, after])

    def test_subclass_with_slots(self):
        class Source(EventEmitter):
            __slots__ = ("extra",)

            def __init__(self):
                EventEmitter.__init__(self)
                self.extra = 1

        source = Source()
        listener = Recorder()
        source.on("x", listener)
        source.other = 2  # the base keeps a __dict__ for subclasses
        source.emit("x", source.extra)
        self.assertEqual(listener.calls, [(1,)])


class Fetcher(EventEmitter):
    """A picklable emitter subclass (module level), as REDbot's RedFetcher
    is: its __getstate__ starts from EventEmitter's and drops more."""

    def __init__(self, uri):
        EventEmitter.__init__(self)
        self.uri = uri
        self.status = None
        self.exchange = object()  # unpicklable in spirit: dropped below

    def __getstate__(self):
        state = EventEmitter.__getstate__(self)
        del state["exchange"]
        return state


class SlottedFetcher(Fetcher):
    __slots__ = ("size", "__secret")

    def __init__(self, uri):
        Fetcher.__init__(self, uri)
        self.size = 10
        self.__secret = "s"

    def secret(self):
        return self.__secret


class TestPickle(unittest.TestCase):
    """Pickling keeps an emitter's attributes, never its listeners or sink."""

    def test_round_trip_without_listeners_or_sink(self):
        fetcher = Fetcher("http://example.com/")
        fetcher.status = b"200"
        fetcher.on("done", lambda: None)  # a lambda cannot be pickled
        fetcher.once("done", print)
        fetcher.sink(self)  # nor can a TestCase
        state = EventEmitter.__getstate__(fetcher)
        self.assertIsInstance(state, dict)
        self.assertEqual(
            state,
            {"uri": "http://example.com/", "status": b"200", "exchange": fetcher.exchange},
        )
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            with self.subTest(protocol=protocol):
                copied = pickle.loads(pickle.dumps(fetcher, protocol))
                self.assertIs(type(copied), Fetcher)
                self.assertEqual((copied.uri, copied.status), (fetcher.uri, b"200"))
                self.assertFalse(hasattr(copied, "exchange"))
                self.assertEqual(copied.listeners("done"), [])
                # It works: new listeners run, and no sink is left over.
                heard = Recorder()
                copied.on("done", heard)
                copied.emit("done", 1)
                copied.emit("no_listener")
                self.assertEqual(heard.calls, [(1,)])
        self.assertEqual(len(fetcher.listeners("done")), 2)  # the original keeps its own

    def test_slots_of_subclasses_are_kept(self):
        fetcher = SlottedFetcher("u")
        fetcher.on("x", lambda: None)
        copied = pickle.loads(pickle.dumps(fetcher))
        self.assertEqual((copied.uri, copied.size, copied.secret()), ("u", 10, "s"))
        self.assertEqual(copied.listeners("x"), [])

    def test_copy_does_not_share_listeners(self):
        emitter = EventEmitter()
        heard = Recorder()
        emitter.on("x", heard)
        twin = copy.copy(emitter)
        twin.on("x", Recorder())
        twin.emit("x")
        self.assertEqual(heard.count, 0)
        self.assertEqual(emitter.listeners("x"), [heard])


class TestChangesDuringEmit(unittest.TestCase):
    """Listeners added or removed during an emit take effect from the next one."""

    def setUp(self):
        self.emitter = EventEmitter()

    def test_add_during_emit_runs_from_next_emit(self):
        added = Recorder()

        def adder():
            self.emitter.on("x", added)

        self.emitter.on("x", adder)
        self.emitter.emit("x")
        self.assertEqual(added.count, 0)
        self.emitter.emit("x")
        self.assertEqual(added.count, 1)

    def test_remove_later_listener_during_emit(self):
        later = Recorder()

        def remover():
            self.emitter.removeListener("x", later)

        self.emitter.on("x", remover)
        self.emitter.on("x", later)
        self.emitter.emit("x")
        self.assertEqual(later.count, 1)  # the emit in progress is unaffected
        self.emitter.emit("x")
        self.assertEqual(later.count, 1)

    def test_remove_self_during_emit(self):
        log = []
        second = Recorder("second", log)

        def first():
            log.append("first")
            self.emitter.removeListener("x", first)

        self.emitter.on("x", first)
        self.emitter.on("x", second)
        self.emitter.emit("x")
        self.emitter.emit("x")
        self.assertEqual(log, ["first", "second", "second"])

    def test_remove_listeners_during_emit(self):
        later = Recorder()
        self.emitter.on("x", lambda: self.emitter.removeListeners("x"))
        self.emitter.on("x", later)
        self.emitter.emit("x")
        self.emitter.emit("x")
        self.assertEqual(later.count, 1)

    def test_nested_emit_of_same_event(self):
        log = []
        depth = []

        def first():
            log.append("first")
            if not depth:
                depth.append(1)
                self.emitter.emit("x")

        self.emitter.on("x", first)
        self.emitter.on("x", Recorder("second", log))
        self.emitter.emit("x")
        self.assertEqual(log, ["first", "first", "second", "second"])


class TestOnce(unittest.TestCase):
    def setUp(self):
        self.emitter = EventEmitter()

    def test_once_runs_once(self):
        listener = Recorder()
        self.emitter.once("x", listener)
        self.emitter.emit("x", 1)
        self.emitter.emit("x", 2)
        self.assertEqual(listener.calls, [(1,)])
        self.assertEqual(self.emitter.listeners("x"), [])

    def test_once_removed_before_it_runs(self):
        seen = []

        def listener():
            seen.append(self.emitter.listeners("x"))

        self.emitter.once("x", listener)
        self.emitter.emit("x")
        self.assertEqual(seen, [[]])

    def test_once_listener_emitting_again_does_not_recurse(self):
        calls = []

        def listener():
            calls.append(1)
            self.emitter.emit("x")

        self.emitter.once("x", listener)
        self.emitter.emit("x")
        self.assertEqual(len(calls), 1)

    def test_once_runs_once_under_nested_emit(self):
        # The outer emit's snapshot still holds the once wrapper when an
        # earlier listener re-emits; the listener must still run only once.
        once = Recorder()
        depth = []

        def reemit():
            if len(depth) < 2:
                depth.append(1)
                self.emitter.emit("x")

        self.emitter.on("x", reemit)
        self.emitter.once("x", once)
        self.emitter.emit("x")
        self.assertEqual(once.count, 1)

    def test_once_removable_by_original_function(self):
        listener = Recorder()
        self.emitter.once("x", listener)
        self.emitter.removeListener("x", listener)
        self.emitter.emit("x")
        self.assertEqual(listener.count, 0)
        self.assertEqual(self.emitter.listeners("x"), [])

    def test_listeners_returns_original_functions(self):
        plain, single = Recorder(), Recorder()
        self.emitter.on("x", plain)
        self.emitter.once("x", single)
        self.assertEqual(self.emitter.listeners("x"), [plain, single])
        self.assertIs(self.emitter.listeners("x")[1], single)

    def test_once_and_on_same_function(self):
        listener = Recorder()
        self.emitter.on("x", listener)
        self.emitter.once("x", listener)
        self.emitter.emit("x")
        self.emitter.emit("x")
        self.assertEqual(listener.count, 3)
        self.assertEqual(self.emitter.listeners("x"), [listener])

    def test_once_keeps_order(self):
        log = []
        self.emitter.on("x", Recorder("a", log))
        self.emitter.once("x", Recorder("b", log))
        self.emitter.on("x", Recorder("c", log))
        self.emitter.emit("x")
        self.emitter.emit("x")
        self.assertEqual(log, ["a", "b", "c", "a", "c"])

    def test_once_returns_emitter(self):
        self.assertIs(self.emitter.once("x", Recorder()), self.emitter)


class TestRemove(unittest.TestCase):
    def setUp(self):
        self.emitter = EventEmitter()

    def test_remove_unregistered_listener_is_noop(self):
        listener = Recorder()
        self.emitter.removeListener("x", listener)  # no such event
        self.emitter.on("x", listener)
        self.emitter.removeListener("x", Recorder())  # no such listener
        self.emitter.removeListener("y", listener)  # wrong event
        self.emitter.emit("x")
        self.assertEqual(listener.count, 1)

    def test_remove_last_listener_leaves_no_listeners(self):
        listener = Recorder()
        self.emitter.on("x", listener)
        self.emitter.removeListener("x", listener)
        self.assertEqual(self.emitter.listeners("x"), [])
        self.emitter.emit("x")
        self.assertEqual(listener.count, 0)

    def test_remove_listeners_several_events(self):
        a, b, c = Recorder(), Recorder(), Recorder()
        self.emitter.on("a", a)
        self.emitter.on("b", b)
        self.emitter.on("c", c)
        self.emitter.removeListeners("a", "b", "not-there")
        for event in "abc":
            self.emitter.emit(event)
        self.assertEqual((a.count, b.count, c.count), (0, 0, 1))

    def test_remove_listeners_no_arguments_removes_all(self):
        a, b = Recorder(), Recorder()
        self.emitter.on("a", a)
        self.emitter.once("b", b)
        self.emitter.removeListeners()
        self.emitter.emit("a")
        self.emitter.emit("b")
        self.assertEqual((a.count, b.count), (0, 0))
        self.assertEqual(self.emitter.listeners("a"), [])

    def test_aliases(self):
        self.assertIs(EventEmitter.remove_listener, EventEmitter.removeListener)
        self.assertIs(EventEmitter.remove_listeners, EventEmitter.removeListeners)
        a, b = Recorder(), Recorder()
        self.emitter.on("a", a)
        self.emitter.on("b", b)
        self.emitter.remove_listener("a", a)
        self.emitter.remove_listeners("b")
        self.emitter.emit("a")
        self.emitter.emit("b")
        self.assertEqual((a.count, b.count), (0, 0))


class TestSink(unittest.TestCase):
    def setUp(self):
        self.emitter = EventEmitter()

        class Sink:
            def __init__(self):
                self.calls = []

            def data(self, *args):
                self.calls.append(("data",) + args)

        self.sink = Sink()
        self.emitter.sink(self.sink)

    def test_sink_called_when_nobody_listens(self):
        self.emitter.emit("data", b"x", 1)
        self.assertEqual(self.sink.calls, [("data", b"x", 1)])

    def test_sink_not_called_when_someone_listens(self):
        listener = Recorder()
        self.emitter.on("data", listener)
        self.emitter.emit("data", b"x")
        self.assertEqual(self.sink.calls, [])
        self.assertEqual(listener.count, 1)

    def test_sink_called_again_after_listener_removed(self):
        listener = Recorder()
        self.emitter.on("data", listener)
        self.emitter.removeListener("data", listener)
        self.emitter.emit("data")
        self.assertEqual(self.sink.calls, [("data",)])

    def test_sink_without_method_is_ignored(self):
        self.emitter.emit("other", 1)  # Sink has no 'other'
        self.assertEqual(self.sink.calls, [])

    def test_sink_replaced(self):
        calls = []

        class Other:
            def data(self, *args):
                calls.append(args)

        self.emitter.sink(Other())
        self.emitter.emit("data", 1)
        self.assertEqual((self.sink.calls, calls), ([], [(1,)]))

    def test_exception_from_sink_propagates(self):
        class Bad:
            def data(self):
                raise KeyError("data")

        self.emitter.sink(Bad())
        with self.assertRaises(KeyError):
            self.emitter.emit("data")


class TestOnDecorator(unittest.TestCase):
    def setUp(self):
        self.emitter = EventEmitter()

    def test_with_event_name(self):
        calls = []

        @on(self.emitter, "blow_up")
        def push_red_button(thing):
            calls.append(thing)

        self.emitter.emit("blow_up", 1)
        self.assertEqual(calls, [1])
        self.assertEqual(self.emitter.listeners("blow_up"), [push_red_button])

    def test_without_event_name_uses_function_name(self):
        calls = []

        @on(self.emitter)
        def blow_up(thing):
            calls.append(thing)

        self.emitter.emit("blow_up", 2)
        self.assertEqual(calls, [2])

    def test_decorator_returns_function(self):
        def handler():
            return 42

        decorated = on(self.emitter, "x")(handler)
        self.assertIs(decorated, handler)
        self.assertEqual(decorated(), 42)

    def test_exported_names(self):
        self.assertIs(thor.events.on, on)
        self.assertIn("EventEmitter", thor.events.__all__)



# -- a lone listener kept unwrapped (_unwrap_single) ---------------------------


class Unwrapped(EventEmitter):
    """An emitter that opts in to keeping a lone listener unwrapped."""

    _unwrap_single = True


def _unwrapped_case(base):
    """``base``'s tests, run again on an Unwrapped emitter: every rule holds
    in both forms of ``_events``."""

    def setUp(self):
        base.setUp(self)
        self.emitter = Unwrapped()

    return type(base.__name__ + "Unwrapped", (base,), {"setUp": setUp})


TestOnAndEmitUnwrapped = _unwrapped_case(TestOnAndEmit)
TestChangesDuringEmitUnwrapped = _unwrapped_case(TestChangesDuringEmit)
TestOnceUnwrapped = _unwrapped_case(TestOnce)
TestRemoveUnwrapped = _unwrapped_case(TestRemove)
TestOnDecoratorUnwrapped = _unwrapped_case(TestOnDecorator)


class TestSinkUnwrapped(TestSink):
    def setUp(self):
        TestSink.setUp(self)
        emitter = Unwrapped()
        emitter.sink(self.emitter._sink)
        self.emitter = emitter


class TestUnwrapSingle(unittest.TestCase):
    def test_default_keeps_tuples(self):
        # Code outside thor.events (thor.tcp, the HTTP exchanges) still
        # reads _events as tuples: the default form must stay.
        emitter = EventEmitter()
        emitter.on("a", len)
        self.assertEqual(emitter._events["a"], (len,))
        self.assertIs(type(emitter).emit, EventEmitter.emit)

    def test_lone_listener_unwrapped_then_tuple_then_unwrapped(self):
        emitter = Unwrapped()
        emitter.on("a", len)
        self.assertIs(emitter._events["a"], len)
        emitter.on("a", abs)
        self.assertEqual(emitter._events["a"], (len, abs))
        emitter.removeListener("a", len)
        self.assertIs(emitter._events["a"], abs)
        emitter.removeListener("a", abs)
        self.assertNotIn("a", emitter._events)
        self.assertEqual(emitter.listeners("a"), [])

    def test_emit_chosen_per_class(self):
        self.assertIs(Unwrapped.emit, EventEmitter._emit_unwrapped)

        class Again(Unwrapped):  # inherits the opt-in and its emit
            pass

        class OptedOut(Unwrapped):
            _unwrap_single = False

        class OwnEmit(Unwrapped):
            def emit(self, event, *args):
                EventEmitter._emit_unwrapped(self, event, "own", *args)

        self.assertIs(Again.emit, EventEmitter._emit_unwrapped)
        self.assertIs(OptedOut.emit, EventEmitter.emit)
        self.assertIs(Unwrapped.on, EventEmitter._on_unwrapped)
        self.assertIs(OptedOut.on, EventEmitter.on)
        for cls in (Again, OptedOut, OwnEmit):
            emitter = cls()
            got = []
            emitter.on("a", lambda *args: got.append(args))
            emitter.emit("a", 1)
            self.assertEqual(got, [("own", 1)] if cls is OwnEmit else [(1,)])
        self.assertEqual(OptedOut()._events, {})
        emitter = OptedOut()
        emitter.on("a", len)
        self.assertEqual(emitter._events["a"], (len,))

    def test_once_alone_unwrapped(self):
        emitter = Unwrapped()
        got = []
        emitter.once("a", got.append)
        self.assertEqual(emitter.listeners("a"), [got.append])
        emitter.emit("a", 1)
        emitter.emit("a", 2)
        self.assertEqual(got, [1])
        self.assertNotIn("a", emitter._events)


class TestInitEmitter(unittest.TestCase):
    def test_init_emitter_is_init(self):
        class Exchange(EventEmitter):
            def __init__(self):
                self._init_emitter()
                self.x = 1

        exchange = Exchange()
        self.assertEqual(exchange._events, {})
        self.assertIsNone(exchange._sink)
        got = []
        exchange.on("a", got.append)
        exchange.emit("a", 1)
        self.assertEqual(got, [1])
        self.assertEqual(copy.copy(exchange).x, 1)


if __name__ == "__main__":
    unittest.main()
