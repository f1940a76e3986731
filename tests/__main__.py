"""Run thor's whole test suite: ``python3 -m tests`` from the repository root.

Needs nothing but Python. Discovers tests/test_*.py; benchmarks in
tests/bench/ are not collected. Ends with a one-line summary.
"""

import os
import sys
import unittest


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)
    verbosity = 2 if "-v" in sys.argv[1:] else 1
    pattern = "test_*.py"
    names = [a for a in sys.argv[1:] if not a.startswith("-")]
    loader = unittest.TestLoader()
    if names:
        suite = loader.loadTestsFromNames(names)
    else:
        suite = loader.discover(os.path.join(root, "tests"), pattern=pattern, top_level_dir=root)
    result = unittest.TextTestRunner(verbosity=verbosity).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print("tests: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    if result.testsRun == 0:
        print("no tests ran", file=sys.stderr)
        return 1
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
