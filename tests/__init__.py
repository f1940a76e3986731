"""thor's tests (``python3 -m tests`` runs them all).

The library configures no logging; what thor's loggers say in tests that
do not check it (proxies and pools in-process) would reach stderr through
logging's last-resort handler and bury the test runner's output, so the
``thor`` logger gets a handler that drops it. Tests that check logs attach
their own (``assertLogs``) and see everything.
"""

import logging

logging.getLogger("thor").addHandler(logging.NullHandler())
