"""The hook spool: appends never interleave, drains keep order and never lose a line."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent_aggregator.sources import spool
from agent_aggregator.sources.spool import DrainReport, append, drain, spool_dir


class Collector:
    """A ``deliver`` that records what it was given and can refuse after N lines."""

    def __init__(self, accept: int | None = None, fail_with: Exception | None = None) -> None:
        self.got: list[tuple[str, dict]] = []
        self.accept = accept
        self.fail_with = fail_with

    def __call__(self, path: str, body: dict) -> bool:
        if self.accept is not None and len(self.got) >= self.accept:
            if self.fail_with is not None:
                raise self.fail_with
            return False
        self.got.append((path, body))
        return True

    @property
    def numbers(self) -> list[int]:
        return [body["n"] for _, body in self.got]


def spool_files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name != spool.DRAIN_LOCK_FILE)


# --- where the spool lives --------------------------------------------------------------


def test_spool_dir_prefers_the_environment(tmp_path: Path) -> None:
    assert spool_dir({"AGGREGATE_SPOOL_DIR": str(tmp_path / "s"), "HOME": "/nowhere"}) == tmp_path / "s"
    assert spool_dir({"HOME": str(tmp_path)}) == tmp_path / ".claude-mpm" / "spool"


def test_append_writes_one_compact_line_in_a_private_file(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    append("/events", {"hook_event_name": "Stop", "text": "line\nbreak é"}, directory=directory)
    append("/api/events", {"event": "claude_event", "data": {}}, directory=directory)

    raw = (directory / "hooks.jsonl").read_bytes()
    lines = raw.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    assert json.loads(lines[0]) == {"path": "/events", "body": {"hook_event_name": "Stop", "text": "line\nbreak é"}}
    assert b", " not in lines[1] and b": " not in lines[1]
    assert stat.S_IMODE((directory / "hooks.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_append_uses_the_environment_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGGREGATE_SPOOL_DIR", str(tmp_path / "env-spool"))
    append("/events", {"n": 1})
    assert (tmp_path / "env-spool" / "hooks.jsonl").is_file()


def test_the_module_imports_nothing_heavy() -> None:
    code = (
        "import sys; import agent_aggregator.sources.spool; "
        "print(' '.join(sorted(m for m in ('orjson', 'pathlib', 'typing', 'agent_aggregator.model') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, check=True)
    assert out.stdout.split() == []


# --- concurrent appends -----------------------------------------------------------------

WRITERS = 6
LINES_PER_WRITER = 150


def _append_many(directory: str, writer: int) -> None:
    # Bodies large enough that an unlocked, split write would visibly interleave.
    for n in range(LINES_PER_WRITER):
        append("/events", {"writer": writer, "n": n, "pad": f"{writer}" * (2000 + 37 * n)}, directory=directory)


def test_concurrent_appends_from_processes_never_interleave(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(tmp_path), w)) for w in range(WRITERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0

    lines = (tmp_path / "hooks.jsonl").read_bytes().split(b"\n")
    assert lines.pop() == b""
    records = [json.loads(line) for line in lines]  # any interleaving would break a line
    assert len(records) == WRITERS * LINES_PER_WRITER
    for writer in range(WRITERS):
        mine = [r["body"] for r in records if r["body"]["writer"] == writer]
        assert [body["n"] for body in mine] == list(range(LINES_PER_WRITER))
        assert all(body["pad"] == f"{writer}" * (2000 + 37 * body["n"]) for body in mine)


def _append_and_drain(directory: str, role: int, results: "multiprocessing.Queue[list[int]]") -> None:
    if role == 0:
        delivered: list[int] = []
        for _ in range(300):  # keeps draining while the writers append
            drain(lambda path, body: delivered.append(body["n"]) or True, directory=directory)
            time.sleep(0.002)
        results.put(delivered)
    else:
        for n in range(200):
            append("/events", {"n": role * 1000 + n}, directory=directory)
        results.put([])


def test_appends_racing_a_drain_lose_nothing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_append_and_drain, args=(str(tmp_path), role, results)) for role in range(4)]
    for worker in workers:
        worker.start()
    gathered = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    final = Collector()
    drain(final, directory=tmp_path)
    delivered = [n for part in gathered for n in part] + final.numbers

    expected = [role * 1000 + n for role in (1, 2, 3) for n in range(200)]
    assert sorted(delivered) == expected  # each line exactly once
    for role in (1, 2, 3):  # and each writer's lines in the order written
        assert [n for n in delivered if n // 1000 == role] == [role * 1000 + n for n in range(200)]
    assert spool_files(tmp_path) == []


# --- drain ------------------------------------------------------------------------------


def test_drain_delivers_in_order_and_removes_the_spool(tmp_path: Path) -> None:
    for n in range(5):
        append("/events" if n % 2 else "/api/events", {"n": n}, directory=tmp_path)
    collector = Collector()

    report = drain(collector, directory=tmp_path)

    assert report == DrainReport(delivered=5, bad_lines=0, remaining=0)
    assert collector.got == [("/api/events" if n % 2 == 0 else "/events", {"n": n}) for n in range(5)]
    assert spool_files(tmp_path) == []
    assert drain(Collector(), directory=tmp_path) == DrainReport()


def test_drain_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert drain(Collector(), directory=tmp_path / "absent") == DrainReport()
    assert not (tmp_path / "absent").exists()


def test_appends_after_a_drain_go_to_a_fresh_file(tmp_path: Path) -> None:
    append("/events", {"n": 0}, directory=tmp_path)
    drain(Collector(), directory=tmp_path)
    append("/events", {"n": 1}, directory=tmp_path)
    collector = Collector()
    drain(collector, directory=tmp_path)
    assert collector.numbers == [1]


def test_leftovers_of_a_crashed_drain_come_first_oldest_first(tmp_path: Path) -> None:
    def leftover(stamp: int, numbers: list[int]) -> None:
        lines = "".join(json.dumps({"path": "/events", "body": {"n": n}}) + "\n" for n in numbers)
        (tmp_path / f"hooks.{stamp}.draining").write_text(lines)

    leftover(2_000, [3, 4])
    leftover(1_000, [1, 2])  # older, though written second
    (tmp_path / "hooks.1000.draining.tmp").write_text("half a rewrite")  # an interrupted rewrite
    append("/events", {"n": 5}, directory=tmp_path)
    collector = Collector()

    report = drain(collector, directory=tmp_path)

    assert collector.numbers == [1, 2, 3, 4, 5]
    assert report == DrainReport(delivered=5)
    assert spool_files(tmp_path) == []


def test_a_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    append("/events", {"n": 1}, directory=tmp_path)
    append("/events", {"n": 2}, directory=tmp_path)
    with open(tmp_path / "hooks.jsonl", "ab") as handle:
        handle.write(b'{"path":"/events","body":{"n":3,"te')  # the writer died mid-line
    collector = Collector()

    report = drain(collector, directory=tmp_path)

    assert collector.numbers == [1, 2]
    assert report == DrainReport(delivered=2, bad_lines=1, remaining=0)
    assert spool_files(tmp_path) == []


def test_a_line_appended_after_a_torn_one_is_recovered(tmp_path: Path) -> None:
    with open(tmp_path / "hooks.jsonl", "ab") as handle:
        handle.write(b'{"path":"/events","body":{"n":1,"te')
    append("/events", {"n": 2, "tool_input": {"path": "/nested/looks/like/a/record"}}, directory=tmp_path)
    collector = Collector()

    report = drain(collector, directory=tmp_path)

    assert collector.numbers == [2]
    assert report == DrainReport(delivered=1, bad_lines=1)


def test_lines_that_are_not_records_are_counted(tmp_path: Path) -> None:
    (tmp_path / "hooks.jsonl").write_bytes(
        b'{"path":"/events","body":{"n":1}}\n'
        b"not json\n"
        b"\n"
        b'{"path":"/events","body":"not an object"}\n'
        b'\xff\xfe\n'
        b'{"path":"/events","body":{"n":2}}\n'
    )
    collector = Collector()
    assert drain(collector, directory=tmp_path) == DrainReport(delivered=2, bad_lines=3)
    assert collector.numbers == [1, 2]


def test_a_refusal_mid_drain_keeps_the_rest_for_next_time(tmp_path: Path) -> None:
    (tmp_path / "hooks.100.draining").write_text(
        "".join(json.dumps({"path": "/events", "body": {"n": n}}) + "\n" for n in (1, 2, 3))
    )
    for n in (4, 5):
        append("/events", {"n": n}, directory=tmp_path)
    first = Collector(accept=2)

    report = drain(first, directory=tmp_path)

    assert first.numbers == [1, 2]
    assert report == DrainReport(delivered=2, bad_lines=0, remaining=3)
    second = Collector()
    assert drain(second, directory=tmp_path) == DrainReport(delivered=3)
    assert second.numbers == [3, 4, 5]
    assert spool_files(tmp_path) == []


def test_an_exception_mid_drain_keeps_the_rest_and_is_reported(tmp_path: Path) -> None:
    for n in range(1, 5):
        append("/events", {"n": n}, directory=tmp_path)
    failing = Collector(accept=1, fail_with=RuntimeError("hub going down"))

    report = drain(failing, directory=tmp_path)

    assert failing.numbers == [1]
    assert report.remaining == 3 and report.delivered == 1
    assert isinstance(report.error, RuntimeError)
    later = Collector()
    drain(later, directory=tmp_path)
    assert later.numbers == [2, 3, 4]


def test_a_second_drainer_backs_off_while_one_drains(tmp_path: Path) -> None:
    for n in range(3):
        append("/events", {"n": n}, directory=tmp_path)
    inner_reports: list[DrainReport] = []
    outer = Collector()

    def deliver(path: str, body: dict) -> bool:
        inner_reports.append(drain(Collector(), directory=tmp_path))  # same spool, meanwhile
        return outer(path, body)

    assert drain(deliver, directory=tmp_path) == DrainReport(delivered=3)
    assert outer.numbers == [0, 1, 2]
    assert inner_reports == [DrainReport()] * 3


# --- encoding without importing json ---------------------------------------------------------


@pytest.mark.parametrize("value", [
    {"path": "/events", "body": {"a": 1, "b": [1, 2.5, -0.0, 1e300 * 10, None, True, False], "c": {}}},
    {"s": "café \u2028 😀 \ud800 tab\t nl\n \"q\" \\ /", "big": 10 ** 40, "": [[]], "nan": float("nan")},
    {1: "int key", 2.5: "float key", None: "null key", True: "bool key"},
    [], "text", 3, None,
])
def test_dumps_is_json_dumps(value: object) -> None:
    assert spool.dumps(value) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("value", [{"s": {1, 2}}, {(1, 2): 3}, {"o": object()}])
def test_dumps_refuses_what_json_dumps_refuses(value: object) -> None:
    with pytest.raises(TypeError) as ours:
        spool.dumps(value)
    with pytest.raises(TypeError) as theirs:
        json.dumps(value, separators=(",", ":"))
    assert str(ours.value) == str(theirs.value)
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        spool.dumps({"loop": loop})


def test_appending_imports_no_json(tmp_path: Path) -> None:
    probe = ("import sys\nfrom agent_aggregator.sources import spool\n"
             f"spool.append('/events', {{'n': 1, 'text': 'é'}}, directory={str(tmp_path)!r})\n"
             "sys.stdout.write(str('json' in sys.modules or 're' in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout == "False"
    assert (tmp_path / "hooks.jsonl").read_bytes() == b'{"path":"/events","body":{"n":1,"text":"\\u00e9"}}\n'
