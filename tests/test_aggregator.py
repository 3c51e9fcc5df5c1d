"""EventAggregator end to end over a real activity directory (no mocks of our code)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.config import Config
from agent_aggregator.errors import StoreLockedError
from agent_aggregator.model import AgentSession

T0 = datetime(2026, 8, 23, 10, 0, 0, tzinfo=timezone.utc)
SID_A = "aaaaaaaa-1111-4111-8111-000000000001"
SID_B = "bbbbbbbb-2222-4222-8222-000000000002"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=250)
        return self.now


def make(tmp_path: Path, **config) -> EventAggregator:
    aggregator = EventAggregator(config=Config(activity_directory=tmp_path / "activity", **config), clock=Clock())
    aggregator.start(connect=False)
    return aggregator


def hook(sid: str, event: str, **fields) -> dict:
    return {"session_id": sid, "cwd": f"/work/{sid[:4]}", "hook_event_name": event, **fields}


def turn(sid: str, prompt: str, file_name: str) -> list[dict]:
    agent = f"agent{sid[:4]}"
    return [
        hook(sid, "SessionStart", source="startup"),
        hook(sid, "UserPromptSubmit", prompt=prompt),
        hook(sid, "PreToolUse", tool_name="Agent", tool_use_id=f"t{sid[:4]}",
             tool_input={"subagent_type": "general-purpose", "prompt": f"Write {file_name}", "description": "write"}),
        hook(sid, "SubagentStart", agent_id=agent, agent_type="general-purpose"),
        hook(sid, "PreToolUse", tool_name="Write", tool_use_id=f"w{sid[:4]}", agent_id=agent, agent_type="general-purpose",
             tool_input={"file_path": f"/work/{sid[:4]}/{file_name}", "content": "print()"}),
        hook(sid, "PostToolUse", tool_name="Write", tool_use_id=f"w{sid[:4]}", agent_id=agent, agent_type="general-purpose",
             tool_input={"file_path": f"/work/{sid[:4]}/{file_name}"}, tool_response={"type": "create"}),
        hook(sid, "SubagentStop", agent_id=agent, agent_type="general-purpose", last_assistant_message="Wrote it"),
        hook(sid, "PostToolUse", tool_name="Agent", tool_use_id=f"t{sid[:4]}", tool_input={"subagent_type": "general-purpose"},
             tool_response={"status": "completed", "content": [{"type": "text", "text": "Done."}]}),
        hook(sid, "Stop", stop_hook_active=False, last_assistant_message="Finished."),
    ]


def interleave(*streams: list[dict]) -> list[dict]:
    merged: list[dict] = []
    for items in zip(*streams):
        merged.extend(items)
    return merged


def session_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("session_*.json"))


def test_interleaved_sessions_become_one_correct_file_each(tmp_path):
    aggregator = make(tmp_path)
    for payload in interleave(turn(SID_A, "make a", "a.py"), turn(SID_B, "make b", "b.py")):
        aggregator.handle_event(payload)
    for sid in (SID_A, SID_B):
        aggregator.handle_event(hook(sid, "SessionEnd", reason="prompt_input_exit"))
    files = session_files(aggregator.save_dir)
    assert len(files) == 2
    assert not list(aggregator.save_dir.glob("*.journal.jsonl"))
    for path, sid, name in zip(files, (SID_A, SID_B), ("a.py", "b.py")):
        data = json.loads(path.read_text())
        assert path.name.startswith(f"session_{sid[:8]}_")
        assert data["session_id"] == sid and data["status"] == "completed"
        assert data["initial_prompt"] == f"make {name[0]}"
        assert data["final_response"] == "Finished."
        [delegation] = data["delegations"]
        assert delegation["agent_type"] == "general-purpose"
        assert delegation["instructions"] == f"Write {name}"
        assert delegation["files_modified"] == [f"/work/{sid[:4]}/{name}"]
        assert delegation["success"] is True and delegation["status"] == "completed"
        assert data["metrics"]["tools_used"] == ["Agent", "Write"]
        assert data["metrics"]["files_modified"] == [f"/work/{sid[:4]}/{name}"]
        assert data["metrics"]["total_events"] == len(data["events"]) == 10
        # The seeds' jq recipes, in Python.
        assert [e["data"]["file_path"] for e in data["events"] if e["category"] == "file"] == [f"/work/{sid[:4]}/{name}"] * 2
        assert [e["data"]["prompt"] for e in data["events"] if e["event_type"] == "UserPromptSubmit"] == [f"make {name[0]}"]
        assert data["metadata"]["source"] == "claude-code-hook"
        assert data["working_directory"] == f"/work/{sid[:4]}"
    assert aggregator.get_completed_sessions() == [SID_A, SID_B]


def test_turn_end_saves_a_snapshot_and_keeps_the_session_open(tmp_path):
    aggregator = make(tmp_path)
    for payload in turn(SID_A, "go", "a.py"):
        aggregator.handle_event(payload)
    [snapshot] = session_files(aggregator.save_dir)
    assert json.loads(snapshot.read_text())["status"] == "active"
    assert list(aggregator.save_dir.glob("*.journal.jsonl"))
    assert SID_A in aggregator.active_sessions
    aggregator.handle_event(hook(SID_A, "UserPromptSubmit", prompt="again"))
    assert aggregator.active_sessions[SID_A].event_count == 10


def test_stop_saves_every_active_session_as_completed(tmp_path):
    aggregator = make(tmp_path)
    aggregator.handle_event(hook(SID_A, "UserPromptSubmit", prompt="a"))
    aggregator.handle_event(hook(SID_B, "UserPromptSubmit", prompt="b"))
    aggregator.stop()
    statuses = sorted(json.loads(p.read_text())["status"] for p in session_files(aggregator.save_dir))
    assert statuses == ["completed", "completed"]
    assert not aggregator.store.is_writer


def test_idle_sessions_time_out_and_their_delegations_go_stale(tmp_path):
    aggregator = make(tmp_path, session_timeout_minutes=5)
    aggregator.handle_event(hook(SID_A, "PreToolUse", tool_name="Task", tool_use_id="t1", tool_input={"subagent_type": "engineer"}))
    assert aggregator.check_timeouts(aggregator._clock.now + timedelta(minutes=1)) == []
    assert aggregator.check_timeouts(aggregator._clock.now + timedelta(minutes=6)) == [SID_A]
    data = json.loads(session_files(aggregator.save_dir)[0].read_text())
    assert data["status"] == "timed_out"
    assert data["delegations"][0]["status"] == "stale"


def test_a_session_that_continues_after_completion_is_resumed_in_the_same_file(tmp_path):
    aggregator = make(tmp_path)
    aggregator.handle_event(hook(SID_A, "UserPromptSubmit", prompt="first"))
    aggregator.handle_event(hook(SID_A, "SessionEnd", reason="other"))
    aggregator.handle_event(hook(SID_A, "UserPromptSubmit", prompt="second"))
    aggregator.handle_event(hook(SID_A, "SessionEnd", reason="other"))
    [path] = session_files(aggregator.save_dir)
    data = json.loads(path.read_text())
    assert [e["data"].get("prompt") for e in data["events"] if e["category"] == "prompt"] == ["first", "second"]
    assert data["initial_prompt"] == "first"


def test_resume_from_the_store_after_a_restart(tmp_path):
    first = make(tmp_path)
    first.handle_event(hook(SID_A, "UserPromptSubmit", prompt="before restart"))
    first.stop()
    second = make(tmp_path)
    second.handle_event(hook(SID_A, "UserPromptSubmit", prompt="after restart"))
    second.stop()
    [path] = session_files(second.save_dir)
    prompts = [e["data"]["prompt"] for e in json.loads(path.read_text())["events"]]
    assert prompts == ["before restart", "after restart"]


def test_sigkill_mid_session_then_restart_recovers_everything_journaled(tmp_path):
    directory = tmp_path / "activity"
    script = textwrap.dedent(
        f"""
        import os, signal
        from agent_aggregator.aggregator import EventAggregator
        from agent_aggregator.config import Config
        aggregator = EventAggregator(config=Config(activity_directory={str(directory)!r}))
        aggregator.start(connect=False)
        for i in range(200):
            aggregator.handle_event({{"session_id": "{SID_A}", "hook_event_name": "PreToolUse", "tool_name": "Bash",
                                      "tool_use_id": f"t{{i}}", "tool_input": {{"command": f"echo {{i}}"}}}})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert list(directory.glob("*.journal.jsonl"))

    aggregator = make(tmp_path)
    [report] = aggregator.recovered
    assert (report.session_id, report.events, report.bad_lines) == (SID_A, 200, 0)
    data = json.loads(report.file_path.read_text())
    assert data["status"] == "recovered"
    assert len(data["events"]) == 200
    assert [e["data"]["tool_input"]["command"] for e in data["events"]][-1] == "echo 199"
    assert not list(directory.glob("*.journal.jsonl"))


def test_a_second_aggregator_on_the_same_directory_refuses(tmp_path):
    first = make(tmp_path)
    other = EventAggregator(config=Config(activity_directory=tmp_path / "activity"))
    with pytest.raises(StoreLockedError, match=str(os.getpid())):
        other.start(connect=False)
    first.stop()
    other.start(connect=False)
    assert other.get_status()["writer"]


def test_bad_payloads_are_counted_and_logged_once_per_kind(tmp_path, caplog):
    aggregator = make(tmp_path)
    caplog.set_level(logging.WARNING, logger="agent_aggregator")
    for payload in (None, "garbage{", {"hook_event_name": "Stop"}, {"hook_event_name": "Stop"}, [1]):
        assert aggregator.handle_event(payload) is None
    aggregator.handle_event({"type": "heartbeat"}, "heartbeat")
    status = aggregator.get_status()
    assert status["rejected_events"] == 5 and status["ignored_messages"] == 1
    assert aggregator.rejected["no_session_id"] == 2
    assert sum("no_session_id" in r.getMessage() for r in caplog.records) == 1


def test_capture_flags_drop_and_count(tmp_path):
    capture = {key: True for key in ("user_prompts", "agent_delegations", "file_operations", "todo_updates", "responses", "memory_events")}
    aggregator = make(tmp_path, capture={**capture, "tool_operations": False})
    aggregator.handle_event(hook(SID_A, "PreToolUse", tool_name="Bash", tool_use_id="b", tool_input={"command": "ls"}))
    aggregator.handle_event(hook(SID_A, "UserPromptSubmit", prompt="kept"))
    session = aggregator.get_session(SID_A)
    assert [e.category for e in session.events] == ["prompt"]
    assert session.metrics.dropped_events == 1


def test_seed_api_status_listing_lookup_and_export(tmp_path, monkeypatch):
    aggregator = make(tmp_path)
    for payload in turn(SID_A, "go", "a.py"):
        aggregator.handle_event(payload)
    aggregator.handle_event(hook(SID_B, "UserPromptSubmit", prompt="b"))
    aggregator.handle_event(hook(SID_B, "SessionEnd"))
    status = aggregator.get_status()
    for key in ("running", "connected", "active_sessions", "total_events", "save_directory", "dashboard_port"):
        assert key in status
    assert (status["running"], status["active_sessions"], status["total_events"]) == (True, 1, 11)
    rows = {row["session_id"]: row for row in aggregator.list_sessions()}
    assert set(rows) == {SID_A, SID_B}
    assert rows[SID_A]["event_count"] == 9 and isinstance(rows[SID_A]["start_time"], datetime)
    assert isinstance(rows[SID_B]["file_path"], Path) and rows[SID_B]["file_path"].exists()
    assert aggregator.get_session(SID_A[:8]).session_id == SID_A
    assert aggregator.get_session(SID_B[:8]).session_id == SID_B
    assert aggregator.get_session("nope") is None
    monkeypatch.chdir(tmp_path)
    path = aggregator.export_session(SID_B[:8], format="summary")
    assert path.exists() and json.loads(path.read_text())["session_id"] == SID_B
    assert isinstance(AgentSession.load(rows[SID_B]["file_path"]), AgentSession)


def test_disabled_aggregator_captures_nothing(tmp_path):
    aggregator = make(tmp_path, enabled=False)
    assert aggregator.handle_event(hook(SID_A, "UserPromptSubmit", prompt="x")) is None
    assert aggregator.get_status()["ignored_messages"] == 1
    assert aggregator.active_sessions == {}
