"""Whole realistic sessions, every accepted wire format, through EventAggregator into files.

The streams and their expected outcomes come from tests/fixtures_builder.py
(modelled on real Claude Code and claude-mpm payloads); the saved JSON files
are checked, not in-memory objects, because the files are the promise.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402

from agent_aggregator.aggregator import EventAggregator  # noqa: E402
from agent_aggregator.config import Config  # noqa: E402
from agent_aggregator.model import AgentSession  # noqa: E402
from agent_aggregator.store import SessionStore  # noqa: E402


@pytest.fixture
def aggregator(tmp_path):
    instance = EventAggregator(config=Config(activity_directory=tmp_path / "activity"))
    instance.start(connect=False)
    yield instance
    if instance.running:
        instance.stop()


def feed_raw(aggregator: EventAggregator, pairs) -> None:
    """Raw hooks carry no time: stamp each as a hub does on receipt."""
    for timestamp, payload in pairs:
        aggregator.handle_event({**payload, "timestamp": timestamp})


def saved(aggregator: EventAggregator, session_id: str) -> dict:
    summary = aggregator.store.find(session_id)
    return json.loads(Path(summary.file_path).read_text())


def check_delegations(data: dict, expected: dict) -> None:
    assert len(data["delegations"]) == expected["total_delegations"]
    for got, want in zip(data["delegations"], expected["delegations"]):
        assert got["agent_type"] == want["agent_type"]
        assert got["agent_id"] == want["agent_id"]
        assert got["instructions"] == want["instructions"]
        assert got["description"] == want["description"]
        assert got["files_modified"] == want["files_modified"]
        assert got["tool_operations"] == want["tool_calls"]
        assert (got["success"], got["status"]) == (want["success"], want["status"])
    metrics = data["metrics"]
    assert metrics["total_delegations"] == expected["total_delegations"]
    assert metrics["successful_delegations"] == expected["successful_delegations"]
    assert metrics["failed_delegations"] == expected["failed_delegations"]


def check_jq_recipes(data: dict, expected: dict) -> None:
    """The seeds' jq recipes, run in Python on the saved file."""
    file_paths = {e["data"]["file_path"] for e in data["events"] if e["category"] == "file"}
    assert set(expected["files_modified"]) | set(expected["files_read"]) <= file_paths
    prompts = [e["data"]["prompt"] for e in data["events"] if e["event_type"] == "UserPromptSubmit"]
    assert prompts == expected["prompts"]


@pytest.mark.parametrize("agent_tool, key", [("Agent", "raw_hook_session"), ("Task", "raw_hook_session_task")])
def test_raw_hook_session(aggregator, agent_tool, key):
    feed_raw(aggregator, fb.raw_hook_session(agent_tool=agent_tool))
    expected = fb.EXPECTED[key]
    data = saved(aggregator, expected["session_id"])
    assert data["status"] == expected["status"] == "completed"
    assert data["working_directory"] == expected["working_directory"]
    assert data["initial_prompt"] == expected["initial_prompt"]
    assert data["final_response"] == expected["final_response"]
    assert len(data["events"]) == data["metrics"]["total_events"] == expected["total_events"]
    assert Counter(e["event_type"] for e in data["events"]) == Counter(expected["event_counts"])
    assert data["metrics"]["files_modified"] == expected["files_modified"]
    assert sorted(data["metrics"]["tools_used"]) == sorted(expected["tools_used"])
    assert data["todos"] == expected["todos"]
    check_delegations(data, expected)
    check_jq_recipes(data, expected)
    failures = [e for e in data["events"] if e["event_type"] == "PostToolUseFailure"]
    assert [(e["data"]["tool_name"], e["data"]["error"]) for e in failures] == [
        (f["tool_name"], f["error"]) for f in expected["failed_tool_calls"]
    ]
    assert not list(aggregator.save_dir.glob("*.journal.jsonl"))


def check_mpm(aggregator: EventAggregator, expected: dict) -> dict:
    aggregator.save_all()  # events after the last Stop are journaled; snapshot them now
    data = saved(aggregator, expected["session_id"])
    assert data["status"] == "active"  # claude-mpm yields no SessionEnd: the session stays open
    assert data["working_directory"] == expected["working_directory"]
    assert data["initial_prompt"] == expected["initial_prompt"]
    assert data["usage"] == expected["usage"]
    assert data["metrics"]["files_modified"] == expected["files_modified"]
    assert sorted(data["metrics"]["tools_used"]) == sorted(expected["tools_used"])
    assert data["todos"] == expected["todos"]
    assert data["metadata"]["git_branch"] == fb.MPM_GIT_BRANCH
    check_delegations(data, expected)
    check_jq_recipes(data, expected)
    return data


def test_claude_mpm_socketio_session(aggregator):
    for name, payload in fb.claude_mpm_session():
        aggregator.handle_event(payload, name)
    expected = fb.EXPECTED["claude_mpm_session"]
    data = check_mpm(aggregator, expected)
    assert len(data["events"]) == expected["total_session_events"]
    assert aggregator.get_status()["active_sessions"] == expected["sessions_created"] == 1
    assert aggregator.get_status()["rejected_events"] == 0  # chatter is ignored, not rejected
    assert data["metadata"]["source"] == "claude-mpm"


def test_claude_mpm_http_bodies(aggregator):
    for body in fb.api_events_bodies():
        aggregator.handle_event(body)
    expected = fb.EXPECTED["api_events_bodies"]
    data = check_mpm(aggregator, expected)
    assert data["metadata"]["source"] == "claude-mpm-http"


def test_seed_envelope_session(aggregator):
    for payload in fb.seed_envelope_events():
        aggregator.handle_event(payload, "claude_event")
    expected = fb.EXPECTED["seed_envelope_events"]
    aggregator.save_all()
    data = saved(aggregator, expected["session_id"])
    assert data["initial_prompt"] == expected["initial_prompt"]
    assert len(data["events"]) == expected["total_events"]
    assert data["metrics"]["files_modified"] == expected["files_modified"]
    assert [d["agent_type"] for d in data["delegations"]] == [d["agent_type"] for d in expected["delegations"]]


def test_interleaved_sessions_are_each_captured_once_and_right(aggregator):
    sessions = fb.interleaved_sessions(4)
    for name, payload in fb.interleaved_stream(4):
        aggregator.handle_event(payload, name)
    aggregator.stop()
    store = SessionStore(aggregator.save_dir)
    listed = store.list_sessions()
    assert sorted(s.session_id for s in listed) == sorted(s["session_id"] for s in sessions)
    for entry in sessions:
        expected = entry["expected"]
        data = json.loads(Path(store.find(entry["session_id"]).file_path).read_text())
        assert {e["session_id"] for e in data["events"]} == {entry["session_id"]}
        assert data["initial_prompt"] == expected["initial_prompt"]
        assert data["metrics"]["files_modified"] == expected["files_modified"]
        check_delegations(data, expected)


def test_saved_sessions_load_back_equal(aggregator):
    feed_raw(aggregator, fb.raw_hook_session())
    summary = aggregator.store.find(fb.RAW_SESSION_ID)
    session = AgentSession.load(summary.file_path)
    assert session.to_dict() == json.loads(Path(summary.file_path).read_text())


def test_malformed_corpus_never_breaks_ingest(aggregator):
    good = 0
    for case in fb.malformed_payloads():
        payload = case.payload
        aggregator.handle_event(payload)
    status = aggregator.get_status()
    assert status["rejected_events"] > 0
    # Everything accepted can be saved and read back.
    aggregator.save_all()
    for summary in aggregator.store.list_sessions():
        assert aggregator.store.load(summary.file_path).session_id == summary.session_id
        good += 1
    assert good >= 1
    for path in aggregator.save_dir.glob("session_*"):
        assert path.resolve().parent == aggregator.save_dir.resolve()
