"""``aggregate import``: discovery, filters, idempotency, merge with live capture, bad input."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent_aggregator import cli
from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.config import Config
from agent_aggregator.importer import (
    INDEX_NAME,
    claude_projects_dir,
    count_transcripts,
    discover,
    parse_since,
    project_matches,
)
from agent_aggregator.model import AgentSession

FIXTURES = Path(__file__).parent / "fixtures" / "transcripts" / "projects"
MODERN = "4f6c1e2a-8b3d-4a7e-9c15-2d8e6f0b7a99"
LEGACY = "7d2e9b10-1c4f-4e2a-8b6d-3f5a7c9e1b20"
MIDDLE = "9a1c5e33-6d7b-4f80-a2c4-5e8b1d3f7a60"
CWD = "/work/inventory-api"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Claude config dir holding the fixture transcripts; the activity dir is tmp_path/activity."""
    config_dir = tmp_path / "claude"
    shutil.copytree(FIXTURES, config_dir / "projects")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["--save-dir", "activity", *args])
    out, err = capsys.readouterr()
    return code, out, err


def saved(directory: Path) -> dict[str, AgentSession]:
    return {s.session_id: s for s in (AgentSession.load(p) for p in sorted(directory.glob("session_*.json")))}


def file_state(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.glob("session_*.json"))}


def test_claude_config_dir_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cc"))
    assert claude_projects_dir() == tmp_path / "cc" / "projects"
    assert claude_projects_dir({"HOME": "/x"}) == Path.home() / ".claude" / "projects"


def test_import_turns_every_transcript_into_a_session(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "import")
    assert code == 0, err
    assert "Imported 3 new sessions: 56 events" in out
    assert f"{MODERN}.jsonl:8: not JSON" in out  # the corrupt line, located
    sessions = saved(home / "activity")
    assert set(sessions) == {MODERN, LEGACY, MIDDLE}
    modern = sessions[MODERN]
    assert modern.status == "completed" and modern.working_directory == CWD
    assert modern.metadata["source"] == "transcript"
    assert modern.metadata["transcript"]["path"].endswith(f"projects/-work-inventory-api/{MODERN}.jsonl")
    assert modern.metadata["title"] == "Cancel endpoint for orders"
    assert modern.initial_prompt == "Add a cancel endpoint for orders and make the tests pass"
    assert [d.agent_type for d in modern.delegations] == ["Explore"]
    assert modern.delegations[0].tool_operations == ["Grep", "Read"]
    assert modern.metrics.files_modified == [f"{CWD}/src/inventory/orders.py", f"{CWD}/tests/test_orders.py"]
    assert modern.usage["output_tokens"] == 1260
    assert modern.end_time is not None and modern.end_time.isoformat().startswith("2026-03-14T09:31:06")
    # listing shows them as imported
    code, out, _ = run(capsys, "sessions", "--json")
    assert {row["source"] for row in json.loads(out)} == {"transcript"}
    assert not list((home / "activity").glob("*.journal.jsonl"))


def test_importing_twice_changes_nothing(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "import")[0] == 0
    before = file_state(home / "activity")
    code, out, _ = run(capsys, "import")
    assert code == 0 and "Imported 0 new sessions: 0 events" in out and "Already imported: 3 sessions" in out
    assert file_state(home / "activity") == before
    # Without the index every transcript is read again and compared event by event: still nothing changes.
    (home / "activity" / INDEX_NAME).unlink()
    code, out, _ = run(capsys, "import", "--json")
    report = json.loads(out)
    assert code == 0 and report["sessions_unchanged"] == 3 and report["events_added"] == 0
    assert file_state(home / "activity") == before


def test_a_transcript_that_grew_adds_only_its_new_lines(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "import")[0] == 0
    path = home / "claude" / "projects" / "-work-legacy-app" / f"{LEGACY}.jsonl"
    with open(path, "a") as handle:
        handle.write(json.dumps({"type": "user", "sessionId": LEGACY, "uuid": "later-1", "cwd": "/work/legacy-app",
                                 "timestamp": "2026-03-14T10:00:00Z",
                                 "message": {"role": "user", "content": "One more thing: bump the version"}}) + "\n")
    code, out, _ = run(capsys, "import", "--json")
    report = json.loads(out)
    assert code == 0 and report["unchanged_transcripts"] == 2 and report["sessions_merged"] == 1
    assert report["events_added"] == 1  # the new prompt; the usage total (same API messages) is already there
    session = saved(home / "activity")[LEGACY]
    prompts = [e.data["prompt"] for e in session.events if e.event_type == "UserPromptSubmit"]
    assert prompts == ["Update the docs for the new config flag", "One more thing: bump the version"]
    assert len({e.event_id for e in session.events}) == len(session.events)


def _live_turn_one(aggregator: EventAggregator) -> None:
    """What the hooks sent live for the first turn of the modern fixture (ids from the same tool calls)."""
    base = {"session_id": MODERN, "cwd": CWD, "transcript_path": f"/x/{MODERN}.jsonl"}
    payloads = [
        ("09:30:00.300", {"hook_event_name": "UserPromptSubmit",
                          "prompt": "Add a cancel endpoint for orders and make the tests pass"}),
        ("09:30:03.410", {"hook_event_name": "PreToolUse", "tool_name": "Read", "tool_use_id": "toolu_01Read",
                          "tool_input": {"file_path": f"{CWD}/README.md"}}),
        ("09:30:03.610", {"hook_event_name": "PostToolUse", "tool_name": "Read", "tool_use_id": "toolu_01Read",
                          "tool_input": {"file_path": f"{CWD}/README.md"}, "tool_response": {"type": "text"}}),
        ("09:30:07.010", {"hook_event_name": "PreToolUse", "tool_name": "Agent", "tool_use_id": "toolu_01Agent",
                          "tool_input": {"subagent_type": "Explore", "description": "Explore order code",
                                         "prompt": "Find where orders are created and cancelled; list the files and functions."}}),
        ("09:30:07.100", {"hook_event_name": "SubagentStart", "agent_id": "a3f9c2e1b7d4", "agent_type": "Explore"}),
        ("09:30:12.400", {"hook_event_name": "SubagentStop", "agent_id": "a3f9c2e1b7d4", "agent_type": "Explore"}),
        ("09:30:12.510", {"hook_event_name": "PostToolUse", "tool_name": "Agent", "tool_use_id": "toolu_01Agent",
                          "tool_response": {"status": "completed", "agentId": "a3f9c2e1b7d4"}}),
        ("09:30:21.050", {"hook_event_name": "Stop",
                          "last_assistant_message": "The cancel endpoint is in place; one test still fails, see above."}),
    ]
    for clock, payload in payloads:
        aggregator.handle_event({**base, **payload, "timestamp": f"2026-03-14T{clock}Z", "event_id": f"live-{clock}"})


def test_a_session_also_captured_live_is_merged_not_duplicated(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aggregator = EventAggregator(config=Config(activity_directory=home / "activity"))
    aggregator.start(connect=False)
    try:
        _live_turn_one(aggregator)
    finally:
        aggregator.stop()
    live = saved(home / "activity")[MODERN]
    assert len(live.events) == 8

    code, out, err = run(capsys, "import", str(home / "claude" / "projects" / "-work-inventory-api"))
    assert code == 0, err
    assert "Imported 0 new sessions, merged 1 into sessions already saved" in out
    sessions = saved(home / "activity")
    assert list(sessions) == [MODERN]  # one file: merged, not a second session
    merged = sessions[MODERN]
    assert merged.metadata["source"] == "claude-code-hook+transcript"
    events = merged.events
    # Live events win: every live one is still there, none has an imported twin.
    assert {e.event_id for e in live.events} <= {e.event_id for e in events}
    read_pre = [e for e in events if e.event_type == "PreToolUse" and e.correlation_id == "toolu_01Read"]
    assert [e.event_id for e in read_pre] == ["live-09:30:03.410"]
    assert [e.data["prompt"] for e in events if e.event_type == "UserPromptSubmit"] == [
        "Add a cancel endpoint for orders and make the tests pass", "Fix the failing test"]
    assert sum(e.event_type == "SubagentStart" for e in events) == 1
    assert not any(e.category == "response" and e.data.get("response", "").startswith("The cancel endpoint")
                   and e.event_type != "Stop" for e in events)
    # What live capture missed came from the transcript: the subagent's tools, turn 2, the failing Bash.
    assert [e.data["tool_name"] for e in events if e.agent_id == "a3f9c2e1b7d4" and e.event_type == "PreToolUse"] == [
        "Grep", "Read"]
    assert any(e.event_type == "PostToolUseFailure" and e.correlation_id == "toolu_01Bash" for e in events)
    moments = [e.moment for e in events]
    assert moments == sorted(moments)
    (delegation,) = merged.delegations
    assert delegation.agent_id == "a3f9c2e1b7d4" and delegation.tool_operations == ["Grep", "Read"]
    assert merged.final_response and merged.final_response.startswith("Fixed:")
    assert merged.status == "completed"

    before = file_state(home / "activity")
    (home / "activity" / INDEX_NAME).unlink()
    code, out, _ = run(capsys, "import", "--json", str(home / "claude" / "projects" / "-work-inventory-api"))
    report = json.loads(out)
    assert code == 0 and report["events_added"] == 0 and report["sessions_merged"] == 0
    assert [(s["session_id"], s["state"]) for s in report["sessions"]] == [(MODERN, "unchanged")]
    assert file_state(home / "activity") == before


def test_dry_run_lists_and_writes_nothing(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "import", "--dry-run")
    assert code == 0
    assert f"  new       {MODERN}  inventory-api  31 events (31 new)" in out
    assert "Would import 3 new sessions" in out
    activity = home / "activity"
    assert not activity.exists() or not any(activity.iterdir())


def test_filters_since_and_project(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    projects = home / "claude" / "projects"
    old = datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()
    for path in (projects / "-work-legacy-app").rglob("*.jsonl"):
        os.utime(path, (old, old))
    assert {s.session_id for s in discover(since=parse_since("2025-06-01"))} == {MODERN}
    assert {s.session_id for s in discover(project="legacy-app")} == {LEGACY, MIDDLE}
    assert {s.session_id for s in discover(project="/work/inventory-api")} == {MODERN}
    code, out, _ = run(capsys, "import", "--project", "legacy-app", "--since", "2024-12-31")
    assert code == 0 and set(saved(home / "activity")) == {LEGACY, MIDDLE}
    assert project_matches("-Users-me-src-my-app", "my_app") and not project_matches("-Users-me-src-other", "my_app")


def test_parse_since_accepts_ages_and_dates() -> None:
    now = datetime(2026, 3, 14, 12, 0, tzinfo=timezone.utc)
    assert parse_since("7d", now) == datetime(2026, 3, 7, 12, 0, tzinfo=timezone.utc)
    assert parse_since("2026-03-01T09:00").isoformat() == "2026-03-01T09:00:00+00:00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "nowhere"], "nowhere: no such file or directory"),
        (["import", "--since", "yesterday-ish"], "--since 'yesterday-ish': not a date"),
        (["import", "empty"], "no Claude Code transcripts found in empty"),
        (["import", "corrupt.jsonl"], "no transcript line could be read"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (home / "empty").mkdir()
    (home / "corrupt.jsonl").write_text("{oops\nnot json either\n")
    code, out, err = run(capsys, *args)
    assert code == 1
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_import_refuses_while_another_process_writes_the_directory(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    holder = EventAggregator(config=Config(activity_directory=home / "activity"))
    holder.start(connect=False)
    try:
        code, _, err = run(capsys, "import")
    finally:
        holder.stop()
    assert code == 1 and "already used by another aggregator" in err
    assert not saved(home / "activity")


def test_secrets_in_transcripts_are_redacted_like_live_events(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "sk-ant-api03-" + "Q" * 40
    path = home / "claude" / "projects" / "-work-secret" / "5ec2e7a1-0000-4000-8000-000000000001.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps({"type": "user", "sessionId": "5ec2e7a1-0000-4000-8000-000000000001", "uuid": "s1",
                                "timestamp": "2026-03-14T09:00:00Z", "cwd": "/work/secret",
                                "message": {"role": "user", "content": f"use the key {secret} please"}}) + "\n")
    assert run(capsys, "import", str(path))[0] == 0
    raw = next((home / "activity").glob("session_5ec2e7a1_*.json")).read_text()
    assert secret not in raw and "[REDACTED:" in raw


def test_count_transcripts_is_bounded(home: Path) -> None:
    assert count_transcripts() == 3
    assert count_transcripts(limit=2) == 2
    assert count_transcripts(home / "nowhere") == 0
