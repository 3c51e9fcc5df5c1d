"""Fixtures for every test.

Each test gets its own hook spool (``AGGREGATE_SPOOL_DIR``): a writer drains the
spool it finds, and the default one is the machine's real ``~/.claude-mpm/spool``,
shared by every run on the machine. Subprocesses inherit it with the environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_spool(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    spool = tmp_path_factory.mktemp("spool")
    monkeypatch.setenv("AGGREGATE_SPOOL_DIR", str(spool))
    return spool
