"""The upstream pool of thor.http.proxy's reverse mode: which upstream
takes the next request (round-robin, weighted, least-connections), their
health as requests find it (passive) and as a probe finds it (active
checks with thor's HttpClient), and the log lines for an upstream going
down and coming back (logger ``thor.http.upstreams``).

It knows nothing of the proxy (a lower layer: proxy.py imports it). The
proxy tells it what happened to each request: ``pick`` when one goes out,
``failed`` with an error, ``release`` when it moves to another upstream,
``done`` with the upstream's status when the exchange is over (probes
report through ``answered`` and ``failed``).

Health rules (the same for requests and probes):

- a refused (or unreachable) connection marks the upstream down at once:
  nothing listens there;
- other failures (a connect, read or send timeout, a connection closed
  before the response was complete, a malformed response, and a 5xx
  status other than 501 and 505, as haproxy's layer-7 observation counts
  them) mark it down after ``max_fails`` of them in a row;
- a response with another status (a probe's: 2xx or 3xx) counts as a
  success, which resets the count and brings a down upstream back.

A down upstream gets no requests. Without active checks it is tried again
``down_time`` seconds later (by the next request that would go to it:
one failed attempt per ``down_time`` while it stays dead; 0 or None: by
the next request); with active checks it comes back when a probe
succeeds. When every upstream is down, requests go to them in turn anyway
(there is nothing better to do). An upstream due such a trial request is
still down (``up.down``, what the metrics and /healthz report) until one
succeeds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, List, Optional, Protocol, Sequence, Tuple

from thor.http import error
from thor.http.client import HttpClient

if TYPE_CHECKING:
    from thor.http.client import HttpClientExchange
    from thor.loop import LoopBase, ScheduledEvent
    from thor.types import RawHeaderListType


class Settings(Protocol):
    """What the pool reads of its owner when it counts a failure (so that
    a setting changed on the owner instance takes effect at once)."""

    down_time: float  # None or 0: a down upstream is tried by the next request
    max_fails: int

__all__ = [
    "Upstream", "UpstreamPool", "HealthChecker", "upstream_spec", "BALANCES", "refused",
    "counts_against",
]

log = logging.getLogger(__name__)

# The balancing policies, and the spellings accepted for them (haproxy's
# "roundrobin" / "leastconn", nginx's "least_conn").
BALANCES = {
    "round-robin": "round-robin", "roundrobin": "round-robin", "round_robin": "round-robin",
    "least-conn": "least-conn", "leastconn": "least-conn", "least_conn": "least-conn",
}

# 5xx statuses that say the origin is sick. 501 (Not Implemented) and 505
# (HTTP Version Not Supported) say something about the request instead
# (haproxy's layer-7 observation leaves them out too).
_HEALTHY_5XX = frozenset((b"501", b"505"))


def upstream_spec(spec: str | bytes) -> Tuple[str | bytes, int]:
    """Split an upstream given as ``URL`` or ``URL,weight=N`` (nginx's and
    haproxy's word for it) into the URL and the weight (1 when not given).
    Raises ValueError for an unknown option or a weight that is not a
    whole number from 1 to 1000."""
    if isinstance(spec, bytes):
        text = spec.decode("latin-1")
    else:
        text = spec
    weight = 1
    url = text
    while True:
        head, comma, option = url.rpartition(",")
        if not comma or "=" not in option or "/" in option:
            break
        name, _, value = option.partition("=")
        name = name.strip().lower()
        if name != "weight":
            raise ValueError("unknown upstream option %r in %r (known: weight=N)" % (name, text))
        value = value.strip()
        if not value.isdigit() or not 1 <= int(value) <= 1000:
            raise ValueError("upstream weight must be a whole number from 1 to 1000: %r" % text)
        weight = int(value)
        url = head
    if isinstance(spec, bytes):
        return url.encode("latin-1"), weight
    return url, weight


class Upstream:
    """One upstream of a pool.

    ``url`` (bytes, no trailing slash), ``weight``; state: ``down`` (not
    in rotation), ``down_until`` (loop clock; when a down upstream is tried
    again without active checks), ``fails`` (failures in a row),
    ``active`` (requests in flight to it); totals for the metrics:
    ``requests``, ``failures``.
    """

    __slots__ = (
        "url", "name", "weight", "down", "down_until", "fails", "active",
        "requests", "failures", "current", "probing",
    )

    def __init__(self, url: bytes, weight: int = 1) -> None:
        self.url = url
        self.name = url.decode("latin-1")
        self.weight = weight
        self.down = False
        self.down_until = 0.0
        self.fails = 0
        self.active = 0
        self.requests = 0
        self.failures = 0
        self.current = 0  # smooth weighted round-robin's running score
        self.probing = False

    def __repr__(self) -> str:
        return "<Upstream %s weight=%d %s active=%d>" % (
            self.name, self.weight, "down" if self.down else "up", self.active)


class UpstreamPool:
    """The upstreams of a reverse proxy, and the choice among them.

    ``balance``: "round-robin" (weighted when the weights differ: nginx's
    smooth weighted round-robin, so a weight-3 upstream gets three
    requests in four spread out, not three in a row) or "least-conn" (the
    upstream with the fewest requests in flight per unit of weight; ties
    go round-robin). ``settings``: an object whose ``down_time`` and
    ``max_fails`` are read when a failure is counted.

    ``retries`` counts the requests sent to another upstream after a
    failure (the proxy adds to it).
    """

    def __init__(
        self, urls: Sequence[bytes], weights: Sequence[int], loop: LoopBase,
        settings: Settings, balance: str = "round-robin",
    ) -> None:
        try:
            self.balance = BALANCES[balance]
        except KeyError:
            raise ValueError("balance must be round-robin or least-conn, not %r" % (balance,))
        self.upstreams = [Upstream(url, weight) for url, weight in zip(urls, weights)]
        self.loop = loop
        self._clock = loop._clock
        self.settings = settings
        self._next = 0
        self._weighted = len(set(weights)) > 1
        self._least = self.balance == "least-conn"
        self._scored = self._least or self._weighted
        self.down_count = 0
        self.retries = 0
        self.checker: Optional[HealthChecker] = None

    def __len__(self) -> int:
        return len(self.upstreams)

    def _usable(self, up: Upstream) -> bool:
        """May ``up`` take a request? An upstream that is not down; or,
        without active checks, one whose down time is over (on trial: its
        next request decides)."""
        if not up.down:
            return True
        return self.checker is None and self._clock() >= up.down_until

    def available(self) -> List[bool]:
        """For each upstream, whether it would be given requests now: also
        a down one due a trial request (see ``up`` for which are up)."""
        return [self._usable(up) for up in self.upstreams]

    def up(self) -> List[bool]:
        """For each upstream, whether it is up (not marked down): what
        the metrics and /healthz report. A down upstream stays down until
        a request or probe to it succeeds, even once it is due a trial."""
        return [not up.down for up in self.upstreams]

    def pick(self, tried: int = 0) -> int:
        """The index of the upstream for a request, counted as in flight
        on it. ``tried`` is a bit mask of upstreams not to use (those a
        retried request has failed on): -1 when no other is usable. With
        none tried, when every upstream is down, one is chosen anyway."""
        ups = self.upstreams
        count = len(ups)
        if self._scored:
            index = self._pick_scored(tried)
        elif not (self.down_count or tried):
            # The common case, once per request: all up, a first try.
            index = self._next
            self._next = (index + 1) % count
        else:
            index = -1
            for _ in range(count):
                candidate = self._next
                self._next = (candidate + 1) % count
                if not (tried >> candidate) & 1 and self._usable(ups[candidate]):
                    index = candidate
                    break
        if index < 0:
            if tried:
                return -1
            index = self._next
            self._next = (index + 1) % count
        up = ups[index]
        up.active += 1
        up.requests += 1
        return index

    def _pick_scored(self, tried: int) -> int:
        ups = self.upstreams
        count = len(ups)
        best = -1
        if self._least:
            # Fewest in flight per unit of weight (nginx's least_conn),
            # compared as active_a * weight_b < active_b * weight_a; ties go
            # to the next in round-robin order, so that an idle pool still
            # spreads its requests.
            start = self._next
            best_active = best_weight = 0
            for step in range(count):
                index = (start + step) % count
                up = ups[index]
                if (tried >> index) & 1 or not self._usable(up):
                    continue
                if best < 0 or up.active * best_weight < best_active * up.weight:
                    best, best_active, best_weight = index, up.active, up.weight
            if best >= 0:
                self._next = (best + 1) % count
            return best
        # nginx's smooth weighted round-robin: each usable upstream gains
        # its weight; the highest score wins and pays the total.
        total = 0
        best_score = 0
        for index in range(count):
            up = ups[index]
            if (tried >> index) & 1 or not self._usable(up):
                continue
            up.current += up.weight
            total += up.weight
            if best < 0 or up.current > best_score:
                best, best_score = index, up.current
        if best >= 0:
            ups[best].current -= total
        return best

    def release(self, index: int) -> None:
        """A request given by ``pick`` moved to another upstream."""
        up = self.upstreams[index]
        if up.active > 0:
            up.active -= 1

    def done(self, index: int, status: Optional[bytes], release: bool = True) -> None:
        """A request given by ``pick`` is over; ``status`` is what the
        upstream answered (None: nothing to count, e.g. its failure was
        counted already). One call per request: release and ``answered``.
        ``release`` False: the request stays in flight (a 101 tunnel, which
        holds a connection to the upstream) until ``release(index)``."""
        up = self.upstreams[index]
        if release and up.active > 0:
            up.active -= 1
        if status is not None and (up.fails or up.down or status[:1] == b"5"):
            self.answered(index, status)

    # -- health ----------------------------------------------------------------

    def answered(self, index: int, status: bytes) -> None:
        """The upstream answered a request (or a probe) with ``status``."""
        if status[:1] == b"5" and status not in _HEALTHY_5XX:
            self.failed(index, "status %s" % status.decode("latin-1"))
            return
        up = self.upstreams[index]
        if up.fails or up.down:
            up.fails = 0
            if up.down:
                self._mark_up(up, "it answered %s" % status.decode("latin-1"))

    def failed(self, index: int, reason: str, at_once: bool = False) -> None:
        """A request (or a probe) to the upstream failed: ``reason`` says
        how; ``at_once`` (a refused connection) marks it down without
        waiting for ``max_fails``."""
        up = self.upstreams[index]
        up.failures += 1
        up.fails += 1
        settings = self.settings
        down_time = settings.down_time or 0.0  # None too: no wait
        if up.down:
            # Still down (a trial request, or every upstream was down):
            # the wait starts again.
            up.down_until = self._clock() + down_time
            log.debug("upstream %s still down: %s", up.name, reason)
            return
        if at_once or up.fails >= settings.max_fails:
            up.down = True
            up.down_until = self._clock() + down_time
            self.down_count += 1
            if self.checker is not None:
                until = "until a health check passes"
            else:
                until = "for %g s" % down_time
            log.warning("upstream %s down %s: %s (%d failure%s in a row)", up.name, until,
                        reason, up.fails, "" if up.fails == 1 else "s")

    def _mark_up(self, up: Upstream, why: str) -> None:
        up.down = False
        up.down_until = 0.0
        self.down_count -= 1
        log.warning("upstream %s up again: %s", up.name, why)

    # -- active checks ---------------------------------------------------------

    def start_checks(self, path: str, interval: float, client: Optional[HttpClient] = None) -> HealthChecker:
        """Probe each upstream at ``path`` every ``interval`` seconds (the
        first round at once); returns the HealthChecker (``stop()`` ends
        it). ``client``: the HttpClient for the probes (made when omitted,
        with connect and read timeouts of ``interval``)."""
        if self.checker is not None:
            self.checker.stop()
        self.checker = HealthChecker(self, path, interval, client)
        self.checker.start()
        return self.checker

    def stop_checks(self) -> None:
        if self.checker is not None:
            self.checker.stop()
            self.checker = None


class HealthChecker:
    """Active health checks: ``GET url + path`` to each upstream of a pool
    every ``interval`` seconds, one probe at a time per upstream. A 2xx or
    3xx status is a success; anything else (another status, an error, no
    answer within the client's timeouts) is a failure, counted by the
    pool's rules."""

    def __init__(self, pool: UpstreamPool, path: str, interval: float,
                 client: Optional[HttpClient] = None) -> None:
        if not path.startswith("/"):
            raise ValueError("a health check path starts with /: %r" % path)
        if not interval > 0:
            raise ValueError("a health check interval is a positive number of seconds")
        self.pool = pool
        self.path = path.encode("ascii")
        self.interval = interval
        if client is None:
            client = HttpClient(pool.loop)
            client.connect_timeout = interval
            client.read_timeout = interval
            client.retry_delay = 0
        self.client = client
        self.rounds = 0
        self._timer: Optional[ScheduledEvent] = None
        self._stopped = False

    def start(self) -> None:
        if self._timer is None and not self._stopped:
            self._timer = self.pool.loop.schedule(0, self._round)

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        self.client.close()

    def _round(self) -> None:
        self._timer = None
        if self._stopped:
            return
        self.rounds += 1
        for index, up in enumerate(self.pool.upstreams):
            if not up.probing:
                self._probe(index, up)
        self._timer = self.pool.loop.schedule(self.interval, self._round)

    def _probe(self, index: int, up: Upstream) -> None:
        up.probing = True
        ex = self.client.exchange()
        probe = _Probe(self, index, up, ex)
        ex.sink(probe)
        try:
            ex.request_start(b"GET", up.url + self.path, [(b"User-Agent", b"thor-health-check")])
            ex.request_done([])
        except (ValueError, TypeError) as exc:
            up.probing = False
            ex.abort()
            log.error("health check of %s cannot be sent: %s", up.name, exc)


class _Probe:
    """One probe's exchange events (its sink)."""

    __slots__ = ("checker", "index", "up", "ex", "status")

    def __init__(self, checker: HealthChecker, index: int, up: Upstream,
                 ex: HttpClientExchange) -> None:
        self.checker = checker
        self.index = index
        self.up = up
        self.ex = ex
        self.status: Optional[bytes] = None

    def response_nonfinal(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        pass

    def response_start(self, status: bytes, phrase: bytes, headers: RawHeaderListType) -> None:
        self.status = status

    def response_body(self, chunk: bytes) -> None:
        pass

    def pause(self, paused: bool) -> None:
        pass

    def response_done(self, trailers: RawHeaderListType) -> None:
        self.up.probing = False
        if self.checker._stopped:
            return
        status = self.status or b"000"
        pool = self.checker.pool
        if status[:1] in (b"2", b"3"):
            pool.answered(self.index, status)
        else:
            pool.failed(self.index, "health check answered %s" % status.decode("latin-1"))

    def error(self, err: error.HttpError) -> None:
        self.up.probing = False
        if self.checker._stopped:
            return
        self.checker.pool.failed(self.index, "health check: %s" % (err,), at_once=refused(err))


def refused(err: error.HttpError) -> bool:
    """Did the upstream refuse (or fail to accept) the connection, as
    opposed to closing one that was working? Only then is a request
    certainly unseen by the origin, and the upstream certainly not
    listening. (Not a queue timeout: that upstream is busy, not down; nor
    a refusal by the client's own check_ip.)"""
    return isinstance(err, error.ConnectError) and not isinstance(
        err, (error.ConnectionClosedError, error.QueueTimeoutError, error.AccessError)
    )


def counts_against(err: error.HttpError) -> bool:
    """Does ``err`` count as the upstream's failure? Not a queue timeout
    (busy, or the proxy's own connection limit) nor an AccessError (the
    proxy's own check_ip rule)."""
    return not isinstance(err, (error.QueueTimeoutError, error.AccessError))

