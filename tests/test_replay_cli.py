"""``aggregate replay`` end to end: real session files, a real hub and aggregator for --emit.

Clocks: ``replay_cli.run`` takes its sleep and wall clock as arguments, so the
pacing test drives a fake pair and never measures real time; every other test
replays at ``--speed max``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent_aggregator import cli, replay_cli
from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.config import Config
from agent_aggregator.model import AgentSession
from agent_aggregator.normalize import normalize
from agent_aggregator.replay import Replay, differences, session_fingerprint
from agent_aggregator.replay_emit import wire_payload
from agent_aggregator.store import SessionStore
from agent_aggregator.tracker import rebuild_session

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402
from test_socketio_client import free_port, wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "assets" / "sample-session.json"
SAMPLE = AgentSession.load(ASSET)
N = len(SAMPLE.events)
AGGREGATE = Path(sys.executable).with_name("aggregate")
if not AGGREGATE.exists():
    AGGREGATE = Path(shutil.which("aggregate") or AGGREGATE)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGGREGATE_SPOOL_DIR", str(tmp_path / "spool"))
    for name in list(os.environ):
        if name.startswith("CLAUDE_MPM_AGGREGATOR_"):
            monkeypatch.delenv(name)
    return tmp_path


def store_with_sessions(directory: Path) -> dict[str, AgentSession]:
    """A store filled by a real aggregator: the raw-hook, claude-mpm and seed sessions, plus the sample."""
    aggregator = EventAggregator(config=Config(activity_directory=directory, dashboard_host="127.0.0.1"))
    aggregator.start(connect=False)
    raw = [{**p, "timestamp": t, "event_id": fb.det_hex(32, "raw", i)} for i, (t, p) in enumerate(fb.raw_hook_session())]
    for payload in raw:
        aggregator.handle_event(payload)
    for name, payload in fb.claude_mpm_session(include_non_session=False):
        aggregator.handle_event(payload, name)
    for envelope in fb.seed_envelope_events():
        aggregator.handle_event(envelope)
    aggregator.stop()
    shutil.copy(ASSET, directory / "session_b7e4c2d9_20260316_140200.json")
    store = SessionStore(directory, rebuild=rebuild_session)
    return {s.session_id: store.load(s.file_path) for s in store.list_sessions()}


def event_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("  ") and ":" in line[:10]]


# --- printing -----------------------------------------------------------------------------------


def test_replaying_a_session_file_prints_its_timeline_and_says_it_matches(capsys):
    assert cli.main(["replay", str(ASSET), "--speed", "max"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Replaying session b7e4c2d9 (shop-api) from sample-session.json")
    lines = event_lines(out)
    assert len(lines) == N
    assert "SessionStart" in lines[0] and "SessionEnd" in lines[-1]
    assert lines[1].split()[0] == "0:01.0", "the replayed time (the first idle gap capped at 1 s) leads each line"
    assert any("PostToolUseFailure" in line and "Exit code 1" in line for line in lines)
    assert f"Replayed {N} of {N} events" in out
    assert "3 delegations (research, engineer, qa) · 5 files modified" in out
    assert "The replayed session equals the saved one" in out


def test_replay_by_id_prefix_from_the_store_writes_nothing(in_tmp, capsys):
    sessions = store_with_sessions(in_tmp / "activity")
    before = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in (in_tmp / "activity").iterdir())
    for session_id, saved in sessions.items():
        assert cli.main(["--save-dir", "activity", "replay", session_id[:8], "--speed", "max"]) == 0
        out = capsys.readouterr().out
        assert len(event_lines(out)) == len(saved.events)
        assert "The replayed session equals the saved one" in out, session_id
    after = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in (in_tmp / "activity").iterdir())
    assert after == before


def test_json_lines_as_it_plays_then_a_summary(capsys):
    assert cli.main(["replay", str(ASSET), "--speed", "max", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["index"] for row in rows[:-1]] == list(range(1, N + 1))
    assert [row["event"] for row in rows[:-1]] == [event.to_dict() for event in SAMPLE.events]
    summary = rows[-1]["summary"]
    assert summary["matches_saved"] is True and summary["differences"] == []
    assert summary["events_replayed"] == N and summary["delegations"] == ["research", "engineer", "qa"]
    assert summary["speed"] == "max" and summary["gap_cap_seconds"] == 1.0


class FakeTime:
    """``sleep`` and ``monotonic`` for replay_cli.run: sleeping moves the clock, nothing else does."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.mark.parametrize(("speed", "gap_cap"), [(1.0, 1.0), (2.0, 1.0), (5.0, None), (0.5, 0.25)])
def test_events_are_paced_by_the_replay_clock(capsys, speed, gap_cap):
    fake = FakeTime()
    ctx = cli.Context(cli.build_parser().parse_args(["replay", str(ASSET)]))
    ctx.load_config()
    assert replay_cli.run(ctx, SAMPLE, ASSET, speed=speed, gap_cap=gap_cap, sleep=fake.sleep,
                          monotonic=fake.monotonic) == 0
    expected = Replay(SAMPLE, gap_cap=gap_cap).duration / speed
    assert sum(fake.slept) == pytest.approx(expected)
    assert max(fake.slept) <= replay_cli.SLEEP_SLICE
    assert len(event_lines(capsys.readouterr().out)) == N


def test_real_time_replays_the_real_gaps(capsys):
    fake = FakeTime()
    ctx = cli.Context(cli.build_parser().parse_args(["replay", str(ASSET)]))
    ctx.load_config()
    replay_cli.run(ctx, SAMPLE, ASSET, speed=10.0, gap_cap=None, sleep=fake.sleep, monotonic=fake.monotonic)
    assert sum(fake.slept) == pytest.approx(SAMPLE.metrics.session_duration_ms / 1000 / 10, abs=0.01)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["replay", "missing/session.json"], 1, "missing/session.json: no such file"),
        (["replay", "abcdef12"], 1, "no sessions captured yet"),
        (["replay", str(ASSET), "--speed", "fast"], 2, "speed must be a positive number or 'max'"),
        (["replay", str(ASSET), "--speed", "0"], 2, "speed must be a positive number"),
        (["replay", str(ASSET), "--gap-cap", "-1"], 2, "must be 0 or more seconds"),
        (["replay", str(ASSET), "--tui", "--json"], 1, "does not combine with --emit or --json"),
        (["replay", str(ASSET), "--fresh-ids"], 1, "--fresh-ids only applies with --emit"),
        (["replay", str(ASSET), "--emit", "ftp://x"], 1, "expected a hub URL"),
    ],
)
def test_bad_input_is_one_line(capsys, arguments, code, message):
    assert cli.main(arguments) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_file_that_is_not_a_session_is_one_line(in_tmp, capsys):
    (in_tmp / "other.json").write_text('{"hello": "world"}')
    (in_tmp / "broken.json").write_text('{"session_id": ')
    for name in ("other.json", "broken.json"):
        assert cli.main(["replay", str(in_tmp / name)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("aggregate: error:") and err.count("\n") == 1


def test_tui_needs_a_terminal(capsys):
    assert cli.main(["replay", str(ASSET), "--tui"]) == 1
    assert "needs a terminal" in capsys.readouterr().err


def test_ctrl_c_stops_cleanly(in_tmp):
    process = subprocess.Popen(
        [str(AGGREGATE), "replay", str(ASSET), "--speed", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=in_tmp,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        while "SessionStart" not in line:  # the first event is printed at once: replay is under way
            assert line, "the replay ended before printing its first event"
            line = process.stdout.readline()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "Traceback" not in err and "stopped at event" in err


# --- --emit -------------------------------------------------------------------------------------


def test_every_saved_event_survives_the_wire_format(in_tmp):
    sessions = store_with_sessions(in_tmp / "activity")
    for saved in sessions.values():
        for event in saved.events:
            assert normalize(json.loads(json.dumps(wire_payload(event)))).to_dict() == event.to_dict()


def test_emit_into_a_real_hub_recreates_the_session(in_tmp, capsys):
    sessions = store_with_sessions(in_tmp / "source")
    chosen = [SAMPLE.session_id, fb.MPM_SESSION_ID]  # one ended by SessionEnd, one by stop()
    port = free_port()
    receiver = EventAggregator(config=Config(activity_directory=in_tmp / "received", dashboard_host="127.0.0.1",
                                             dashboard_port=port))
    receiver.start(serve=True)
    try:
        expected = 0
        for session_id in chosen:
            code = cli.main(["--save-dir", "source", "replay", session_id[:8], "--speed", "max",
                             "--emit", f"http://127.0.0.1:{port}"])
            assert code == 0
            expected += len(sessions[session_id].events)
            out = capsys.readouterr().out
            assert f"Sent {len(sessions[session_id].events)} events to http://127.0.0.1:{port}" in out
            wait_until(lambda: receiver.get_status()["total_events"] == expected)
        # Emitting again sends the same event ids: the aggregator counts nothing twice.
        assert cli.main(["replay", str(ASSET), "--speed", "max", "--emit", f"127.0.0.1:{port}"]) == 0
        wait_until(lambda: receiver.get_status()["duplicate_events"] == N)
        assert receiver.get_status()["total_events"] == expected
    finally:
        receiver.stop()
    store = SessionStore(in_tmp / "received", rebuild=rebuild_session)
    received = {s.session_id: store.load(s.file_path) for s in store.list_sessions()}
    assert set(received) == set(chosen)
    for session_id in chosen:
        assert session_fingerprint(received[session_id]) == session_fingerprint(sessions[session_id]), session_id
        assert differences(received[session_id], sessions[session_id]) == []


def test_emit_with_fresh_ids_makes_a_new_session_each_time(in_tmp, capsys):
    port = free_port()
    receiver = EventAggregator(config=Config(activity_directory=in_tmp / "received", dashboard_host="127.0.0.1",
                                             dashboard_port=port))
    receiver.start(serve=True)
    try:
        for _ in range(2):
            assert cli.main(["replay", str(ASSET), "--speed", "max", "--json", "--fresh-ids",
                             "--emit", f"http://127.0.0.1:{port}/api/events"]) == 0
        wait_until(lambda: receiver.get_status()["total_events"] == 2 * N)
    finally:
        receiver.stop()
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]
    assert summary["events_emitted"] == N
    store = SessionStore(in_tmp / "received", rebuild=rebuild_session)
    received = [store.load(s.file_path) for s in store.list_sessions()]
    assert len(received) == 2 and SAMPLE.session_id not in {s.session_id for s in received}
    for session in received:
        assert [d.agent_type for d in session.delegations] == ["research", "engineer", "qa"]
        assert session.metrics.files_modified == SAMPLE.metrics.files_modified


def test_emit_to_nothing_listening_is_one_line(capsys):
    port = free_port()
    assert cli.main(["replay", str(ASSET), "--speed", "max", "--emit", f"http://127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert f"cannot send events to http://127.0.0.1:{port}" in err and "Traceback" not in err
