"""Helpers shared by thor's tests: driving a loop until a condition holds,
recording exceptions the loop catches, answering complete requests on an
HttpServer, throwaway TLS certificates, and counting the process's open
file descriptors.

``run_until`` drives the loop one pass at a time instead of ``loop.run()``
and ``loop.stop()``, because ``stop()`` forgets every registered file
descriptor, which would end the test's connections between two phases.
"""

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import thor.loop

__all__ = [
    "ExceptionRecorder", "run_until", "LoopTestCase", "answer_when_complete",
    "make_cert", "open_fds", "CERT_DIR",
]

CERT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "certs")


class ExceptionRecorder:
    """A loop ``exception_handler`` that keeps what it is given, so that a
    test fails on an exception the loop would otherwise print and forget."""

    def __init__(self):
        self.errors = []

    def __call__(self, loop, exc, callback):
        self.errors.append((exc, callback))

    def check(self):
        if self.errors:
            exc, callback = self.errors[0]
            raise AssertionError(
                "the loop caught %d exception(s); the first, in %r: %r"
                % (len(self.errors), callback, exc)
            ) from exc


def has_ipv6():
    """Can this machine bind the IPv6 loopback address?"""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def run_until(loop, predicate, timeout=5):
    """Run ``loop`` until ``predicate()`` is true; fail the test if it is
    not true within ``timeout`` seconds, or if the loop's exception handler
    (an ``ExceptionRecorder``) recorded an exception. No sleeping: the
    poller waits for events, and a timer at the deadline wakes it."""
    recorder = loop.exception_handler
    check = getattr(recorder, "check", None)
    if predicate():
        return
    expired = []
    deadline = time.monotonic() + timeout
    guard = loop.schedule(timeout, expired.append, True)
    try:
        while True:
            # Each pass as run() makes it: the loop counts as running (its
            # time() is the pass's), and a stop() during the pass takes
            # effect after it (scheduled events cleared, fds forgotten).
            loop._running = True
            try:
                loop._run_once()
            finally:
                loop._running = False
            if loop._stopping:
                loop._stopping = False
                loop._clear()
                guard = loop.schedule(
                    max(0.0, deadline - time.monotonic()), expired.append, True
                )
            if check is not None:
                check()
            if predicate():
                return
            if expired:
                raise AssertionError(
                    "condition not reached within %s seconds: %r" % (timeout, predicate)
                )
    finally:
        guard.delete()


class LoopTestCase(unittest.TestCase):
    """A fresh loop per test (``self.loop``), exceptions recorded and
    checked, and the loop closed afterwards."""

    def setUp(self):
        self.loop = thor.loop.make()
        self.recorder = ExceptionRecorder()
        self.loop.exception_handler = self.recorder
        self.addCleanup(self.loop.close)

    def run_until(self, predicate, timeout=5):
        run_until(self.loop, predicate, timeout)

    def tearDown(self):
        self.recorder.check()


def answer_when_complete(server, respond):
    """Have ``server`` (an HttpServer) call ``respond(exchange, body,
    trailers)`` for each request once all of it has arrived, with its body
    joined into one bytes."""

    def on_exchange(exchange):
        body = []
        exchange.on("request_body", body.append)
        exchange.on("request_done",
                    lambda trailers: respond(exchange, b"".join(body), trailers))

    server.on("exchange", on_exchange)


def open_fds():
    """How many file descriptors this process has open (None if unknown)."""
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(path))
        except OSError:
            continue
    return None


_cert_cache = {}


def make_cert(name="localhost", directory=None):
    """Return ``(certfile, keyfile)`` for a self-signed certificate for
    ``name`` (also valid for 127.0.0.1 and ::1 when ``name`` is localhost),
    made at test time with the ``openssl`` command, or taken from
    tests/certs/ when there is no ``openssl``. Made once per process."""
    if name in _cert_cache:
        return _cert_cache[name]
    openssl = shutil.which("openssl")
    if openssl:
        if directory is None:
            directory = tempfile.mkdtemp(prefix="thor-cert-")
            atexit.register(shutil.rmtree, directory, True)
        certfile = os.path.join(directory, name + ".pem")
        keyfile = os.path.join(directory, name + ".key")
        san = "subjectAltName=DNS:%s" % name
        if name == "localhost":
            san += ",IP:127.0.0.1,IP:::1"
        try:
            subprocess.run(
                [
                    openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-days", "2", "-subj", "/CN=%s" % name,
                    "-addext", san,
                    # Python 3.13 verifies strictly by default: a CA must
                    # say what its key may do.
                    "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
                    "-keyout", keyfile, "-out", certfile,
                ],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError):
            openssl = None
    if not openssl:
        certfile = os.path.join(CERT_DIR, name + ".pem")
        keyfile = os.path.join(CERT_DIR, name + ".key")
    _cert_cache[name] = (certfile, keyfile)
    return certfile, keyfile
