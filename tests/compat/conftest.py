"""Compat tests: opt-in (AGGREGATE_COMPAT=1), marked ``compat``; see README.md here.

The lines the tests append to ``COMPAT_REPORT`` (hook latency, which listening
mode was used, what was captured) are printed in pytest's terminal summary, so
a run shows them without ``-s``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):  # mpm_harness, fixtures_builder
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from mpm_harness import COMPAT_REPORT  # noqa: E402


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    if COMPAT_REPORT:
        terminalreporter.section("claude-mpm compatibility")
        for line in COMPAT_REPORT:
            terminalreporter.write_line(line)
