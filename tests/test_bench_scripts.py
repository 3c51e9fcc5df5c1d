"""The bench scripts run end to end with tiny sizes and print their table (no timing is asserted).

One ``run_all`` over every bench: each runs as its own process against real
servers and real files, exactly as ``python -m bench`` does, only smaller.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

TINY = {
    "ingest": "--events 120 --runs 1",
    "burst": "--events 300 --runs 1",
    "hook": "--runs 1",
    "store": "--sessions 12 --events 200 --runs 1",
    "concurrency": "--sessions 4 --runs 1",
    "tui": "--events 300 --runs 1 --presses 2 --rate 200",
}


def run(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def all_benches() -> subprocess.CompletedProcess[str]:
    extras = [arg for name, extra in TINY.items() for arg in ("--extra", f"{name}={extra}")]
    return run([str(BENCH / "run_all.py"), "--markdown", *extras])


def test_run_all_runs_every_bench_and_prints_one_table(all_benches: subprocess.CompletedProcess[str]) -> None:
    out = all_benches.stdout
    assert all_benches.returncode == 0, out[-3000:] + all_benches.stderr[-3000:]
    table = out[out.index("=== all benches"):]
    header = table.splitlines()[1]
    for column in ("measure", "ours (median)", "baseline", "ratio", "target", "met?"):
        assert column in header
    for prefix in ("ingest:", "burst:", "hook:", "store:", "concurrency:", "tui:"):
        assert f"\n{prefix}" in table, prefix
    # Each bench printed the command that reproduces it, and the markdown rows carry it too.
    for name, extra in TINY.items():
        assert f"command: python bench/{name}.py {extra}" in out
        assert f"`python bench/{name}.py {extra}` |" in table
    assert "concurrency: events in the wrong session, 4 sessions interleaved | 0 " in table
    assert "burst: events lost of 300 over one Socket.IO connection | 0 " in table


def test_each_bench_writes_rows_with_samples(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    result = run([str(BENCH / "hook.py"), "--runs", "2", "--json", str(out)])
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(out.read_text())
    assert {row["measure"] for row in rows} >= {"hook: aggregate hook, hub up", "hook: aggregate hook, hub down (spooled)"}
    for row in rows:
        assert len(row["ours"]) == 2 and len(row["baseline"]) == 2
        assert all(value > 0 for value in row["ours"] + row["baseline"])
        assert row["command"] == "python bench/hook.py --runs 2"
    assert "spooled lines: 20 (expected 20" in result.stdout  # 4 hub-down rows x (3 warm-up + 2 runs)


def test_run_all_refuses_an_unknown_bench() -> None:
    result = run([str(BENCH / "run_all.py"), "--only", "nope"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["run_all: unknown bench nope (known: ingest, burst, hook, store, concurrency, tui)"]
