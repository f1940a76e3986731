"""Events: the EventEmitter every thor object inherits, and the ``on`` decorator.

Rules (documented in doc/events.md and tested in tests/test_events.py):

- Listeners for an event run in the order they were added; adding the same
  callable twice makes it run twice.
- Listeners are held in tuples that are replaced, never mutated, so a
  listener added or removed while an event is being emitted takes effect
  from the next ``emit`` of that event; the one in progress is unaffected.
  This costs ``emit`` no copy at all.
- A ``once`` listener is removed before it runs; it can be removed with the
  function that was passed in, and ``listeners()`` returns that function.
- Removing a listener that is not registered is a no-op.
- ``sink(obj)``: when an event has no listeners, ``emit`` calls
  ``obj.<event>(*args)`` if ``obj`` has such a method.
- An exception raised by a listener propagates out of ``emit`` (the loop
  reports exceptions from the callbacks it dispatches; see thor.loop).
- A class that sets ``_unwrap_single = True`` keeps an event's one
  listener as the callable itself, not a 1-tuple, and its ``emit`` calls it
  without a loop (about 15% less per emit). The emitters of the hot
  paths opt in (TcpConnection, UdpEndpoint, HttpServer and both
  exchanges): nothing outside this module reads their ``_events``, so
  their emits are this module's, with no copies at call sites. Off by
  default, since a subclass written for Thor may read ``_events`` itself.
- Pickling (and ``copy``) keeps an emitter's attributes but neither its
  listeners nor its sink: they are callables bound to the running program,
  often unpicklable, and a copy sharing them would be a second emitter
  firing the first one's listeners.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, TypeVar

    Listener = Callable[..., Any]
    _F = TypeVar("_F", bound=Callable[..., Any])
    _E = TypeVar("_E", bound="EventEmitter")

__all__ = ["EventEmitter", "on"]

# Slots whose values are the emitter's own machinery, never pickled.
_UNPICKLED = frozenset(("_events", "_sink", "__dict__", "__weakref__"))


class _Once:
    """Wraps a listener added with ``once``; removes itself before calling."""

    __slots__ = ("listener", "emitter", "event", "fired")

    def __init__(self, listener: Listener, emitter: EventEmitter, event: str) -> None:
        self.listener = listener
        self.emitter = emitter
        self.event = event
        self.fired = False

    def __call__(self, *args: Any) -> Any:
        # An outer emit still holds this wrapper in its snapshot when a
        # listener emits the same event again; the flag keeps it to one call.
        if self.fired:
            return None
        self.fired = True
        self.emitter._remove(self.event, self)
        return self.listener(*args)


class EventEmitter:
    """An event emitter, in the style of Node.JS.

    Subclasses must call ``EventEmitter.__init__(self)``, or, where the
    call of ``__init__`` is too dear (an exchange made per request),
    ``self._init_emitter()``: never set the emitter's slots themselves.
    """

    # Subclasses keep their own __dict__; these two slots make the emitter's
    # own attribute lookups as cheap as they can be in pure Python.
    __slots__ = ("_events", "_sink", "__dict__", "__weakref__")

    # An event's listeners: a tuple, or with _unwrap_single the one
    # listener itself.
    _events: Dict[str, Any]
    _sink: object

    # Set True on a class to keep a lone listener unwrapped (see the module
    # docstring); __init_subclass__ gives the class the matching emit.
    _unwrap_single = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The on and emit that write and read this class's form of
        # _events, chosen once here rather than tested on every call. A
        # method of the class's own is left alone.
        for name, tuples, unwrapped in _VARIANTS:
            if name not in cls.__dict__:
                current = getattr(cls, name)
                if cls._unwrap_single:
                    if current is tuples:
                        setattr(cls, name, unwrapped)
                elif current is unwrapped:
                    setattr(cls, name, tuples)

    def __init__(self) -> None:
        self._events = {}
        self._sink = None

    def _init_emitter(self) -> None:
        """What ``__init__`` does (no listeners, no sink), for subclasses
        whose own ``__init__`` runs per request and would rather not pay
        for the call of another: ``self._init_emitter()`` costs what
        setting the slots inline does, and stays right when a field is
        added here."""
        self._events = {}
        self._sink = None

    def __getstate__(self) -> Dict[str, Any]:
        """The emitter's attributes (its ``__dict__`` and the values of any
        ``__slots__`` subclasses add), without its listeners or its sink.
        Subclasses may delete further keys before returning it."""
        state = dict(self.__dict__)
        for name in _slot_names(type(self)):
            try:
                state[name] = getattr(self, name)
            except AttributeError:
                pass  # a slot never set
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        """Restore what ``__getstate__`` kept; the emitter starts with no
        listeners and no sink."""
        self._events = {}
        self._sink = None
        slots = _slot_names(type(self))
        instance_dict = self.__dict__
        for name, value in state.items():
            if name in slots:
                object.__setattr__(self, name, value)
            elif name not in _UNPICKLED:
                instance_dict[name] = value

    def on(self: _E, event: str, listener: Listener) -> _E:
        """Call ``listener`` every time ``event`` is emitted."""
        events = self._events
        if event in events:
            events[event] += (listener,)
        else:
            events[event] = (listener,)
        return self

    def _on_unwrapped(self: _E, event: str, listener: Listener) -> _E:
        """``on`` for classes with ``_unwrap_single``."""
        events = self._events
        current = events.get(event)
        if current is None:
            events[event] = listener
        elif current.__class__ is tuple:
            events[event] = current + (listener,)
        else:
            events[event] = (current, listener)
        return self

    def once(self: _E, event: str, listener: Listener) -> _E:
        """Call ``listener`` the next time ``event`` is emitted, then forget it."""
        return self.on(event, _Once(listener, self, event))

    def _remove(self, event: str, entry: Listener) -> None:
        current = self._events.get(event)
        if current is None:
            return
        if current.__class__ is not tuple:
            if current is entry or current == entry or (
                current.__class__ is _Once and current.listener == entry
            ):
                del self._events[event]
            return
        for index, candidate in enumerate(current):
            if candidate is entry or candidate == entry or (
                candidate.__class__ is _Once and candidate.listener == entry
            ):
                remaining = current[:index] + current[index + 1 :]
                if not remaining:
                    del self._events[event]
                elif len(remaining) == 1 and self._unwrap_single:
                    self._events[event] = remaining[0]
                else:
                    self._events[event] = remaining
                return

    def removeListener(self, event: str, listener: Listener) -> None:
        """Remove ``listener`` (the first registration of it) from ``event``."""
        self._remove(event, listener)

    def removeListeners(self, *events: str) -> None:
        """Remove every listener of each of ``events``; of all events when none are given."""
        if events:
            for event in events:
                self._events.pop(event, None)
        else:
            self._events.clear()

    remove_listener = removeListener
    remove_listeners = removeListeners

    def listeners(self, event: str) -> list[Listener]:
        """Return the callables listening for ``event``, as they were registered."""
        entries = self._events.get(event, ())
        if entries.__class__ is not tuple:
            entries = (entries,)
        return [
            entry.listener if entry.__class__ is _Once else entry
            for entry in entries
        ]

    def emit(self, event: str, *args: Any) -> None:
        """Call every listener of ``event`` with ``args``; or the sink's method if none."""
        listeners = self._events.get(event)
        if listeners:
            for listener in listeners:
                listener(*args)
        elif self._sink is not None:
            method = getattr(self._sink, event, None)
            if method is not None:
                method(*args)

    def _emit_unwrapped(self, event: str, *args: Any) -> None:
        """``emit`` for classes with ``_unwrap_single``: a lone listener is
        called without a loop."""
        listeners = self._events.get(event)
        if listeners is not None:
            if listeners.__class__ is tuple:
                for listener in listeners:
                    listener(*args)
            else:
                listeners(*args)
        elif self._sink is not None:
            method = getattr(self._sink, event, None)
            if method is not None:
                method(*args)

    def sink(self, sink: object) -> None:
        """Send events that have no listeners to methods of ``sink`` with the event's name."""
        self._sink = sink


# (name, the method for tuples, the one for _unwrap_single): what
# __init_subclass__ chooses between.
_VARIANTS = (
    ("on", EventEmitter.on, EventEmitter._on_unwrapped),
    ("emit", EventEmitter.emit, EventEmitter._emit_unwrapped),
)


def _slot_names(cls: type) -> frozenset[str]:
    """The attribute names of the slots ``cls`` and its bases declare,
    mangled as Python stores them, less the emitter's own machinery."""
    names = set()
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots:
            if name.startswith("__") and not name.endswith("__"):
                name = "_%s%s" % (klass.__name__.lstrip("_"), name)
            names.add(name)
    return frozenset(names - _UNPICKLED)


def on(emitter: EventEmitter, event: Optional[str] = None) -> Callable[[_F], _F]:
    """Decorator: add the decorated function as a listener of ``event`` on ``emitter``.

    When ``event`` is omitted, the function's name is the event. The
    function is returned unchanged.
    """

    def decorate(func: _F) -> _F:
        emitter.on(event or func.__name__, func)
        return func

    return decorate
