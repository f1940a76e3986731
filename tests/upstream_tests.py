"""Run upstream Thor's own tests against this thor.

Usage (from the repository root)::

    git clone https://github.com/mnot/thor /tmp/upthor
    python3 tests/upstream_tests.py /tmp/upthor            # the public-API set
    python3 tests/upstream_tests.py /tmp/upthor --all      # every module
    python3 tests/upstream_tests.py /tmp/upthor test_loop  # named modules

Nothing of upstream's is copied here: the tests run from the checkout, with
this repository first on ``sys.path`` so that ``import thor`` is this thor.

Upstream's ``test/framework.py`` subclasses upstream's private parser class
(``thor.http.common.HttpMessageHandler``) at import, for its parser tests.
thor's parser is a different, sans-I/O design (``thor.http.parser``), so
when that name is missing this runner puts an inert placeholder there: the
public-API modules import framework.py only for its socket helpers, and
the tests that really drive upstream's parser class (test_http_parser)
are not part of the public-API set.

The public-API set is the modules whose tests use only the documented API:
events, loop, UDP, DNS, the TCP client and the header utilities (73 tests
at upstream's HEAD). The other modules run with ``--all``; their results
are reported the same way. doc/compat.md lists the deliberate differences
that explain the failures that remain.
"""

import enum
import os
import sys
import unittest

PUBLIC_API = (
    "test_events", "test_loop", "test_udp", "test_dns", "test_tcp_client",
    "test_http_utils",
)
OTHERS = (
    "test_http_client", "test_http_server", "test_http_parser", "test_tcp_server",
    "test_tcp_server_options", "test_tls_client", "test_graceful",
)


def _shim_framework_internals():
    """Give upstream's framework.py the private names it imports, inert."""
    try:
        import thor.http.common as common
    except ImportError:
        import types

        import thor.http

        print("warning: this thor has no thor.http.common", file=sys.stderr)
        common = types.ModuleType("thor.http.common")
        sys.modules["thor.http.common"] = common
        thor.http.common = common

    if not hasattr(common, "HttpMessageHandler"):
        class HttpMessageHandler:  # upstream's private parser base; not thor's
            def __init__(self, *args, **kw):
                raise unittest.SkipTest("upstream's private parser class is not part of thor")

        common.HttpMessageHandler = HttpMessageHandler
    if not hasattr(common, "States"):
        common.States = enum.Enum("States", "WAITING HEADERS_DONE ERROR QUIET")
    if not hasattr(common, "Delimiters"):
        common.Delimiters = enum.Enum("Delimiters", "NONE CLOSE COUNTED CHUNKED")


def main(argv):
    args = [a for a in argv if not a.startswith("-")]
    if not args:
        print(__doc__)
        return 2
    checkout = os.path.abspath(args[0])
    test_dir = os.path.join(checkout, "test")
    if not os.path.isdir(test_dir):
        print("no test/ directory in %s" % checkout, file=sys.stderr)
        return 2
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:0] = [root, test_dir]
    os.chdir(test_dir)  # upstream's tests open test.cert etc. by relative path
    _shim_framework_internals()
    modules = args[1:] or (PUBLIC_API + OTHERS if "--all" in argv else PUBLIC_API)
    verbosity = 2 if "-v" in argv else 1
    loader = unittest.TestLoader()
    totals = [0, 0, 0]
    for name in modules:
        try:
            suite = loader.loadTestsFromName(name)
        except Exception as exc:  # a module that cannot load counts as one failure
            print("%s: cannot load: %r" % (name, exc))
            totals[1] += 1
            continue
        result = unittest.TextTestRunner(verbosity=verbosity, stream=sys.stdout).run(suite)
        failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
        skipped = len(result.skipped)
        # A test can fail in several subtests: count each failing test once.
        failing = {id(test) for test, _ in result.failures + result.errors}
        failing.update(id(test) for test in result.unexpectedSuccesses)
        passed = max(0, result.testsRun - len(failing) - skipped)
        print("%s: %d passed, %d failed, %d skipped" % (name, passed, failed, skipped))
        totals = [total + value for total, value in zip(totals, (passed, failed, skipped))]
    print("upstream: %d passed, %d failed, %d skipped" % tuple(totals))
    return 0 if totals[1] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
