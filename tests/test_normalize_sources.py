"""Normalization of the two neighbouring formats (issue 6): headless Claude Code
stream-json lines and mnemosyne-style SSE events. Pure functions, fixture lines."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent_aggregator.errors import RejectedEvent
from agent_aggregator.normalize import normalize, normalize_all, wire_format
from agent_aggregator.normalize_sse import StreamContext, importance_of, snake_case, stream_session_id
from agent_aggregator.tracker import SessionTracker

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "research" / "formats"
NOW = datetime(2026, 3, 15, 9, 0, tzinfo=timezone.utc)


def lines(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def all_events(name: str) -> list:
    """Every event of a fixture transcript (ignored chatter left out, as the aggregator counts it)."""
    events = []
    for line in lines(name):
        try:
            events.extend(normalize_all(line, received_at=NOW))
        except RejectedEvent as rejection:
            assert rejection.ignorable
    return events


def sse_payloads() -> list[dict]:
    return [json.loads(line[6:]) for line in (FIXTURES / "sse_mnemosyne.txt").read_text().splitlines()
            if line.startswith("data: ")]


# --- stream-json ---------------------------------------------------------------------------------


def test_init_opens_the_session_with_model_cwd_tools_and_the_run():
    init = lines("stream_json_success.jsonl")[1]
    init["aggregate_run"] = {"pid": 4242, "command": ["claude", "-p", "fix"], "prompt": "fix", "hostname": "h"}
    start, prompt = normalize_all(init, received_at=NOW)
    assert (start.event_type, start.category, start.session_id) == ("SessionStart", "meta", init["session_id"])
    assert start.data["model"] == "claude-opus-5" and start.data["cwd"] == "/work/inventory-api"
    assert start.data["permission_mode"] == "acceptEdits" and "Task" in start.data["tools"]
    assert (prompt.event_type, prompt.data["prompt"]) == ("UserPromptSubmit", "fix")
    assert wire_format(init) == "claude -p"
    tracker = SessionTracker()
    for event in (start, prompt):
        tracker.apply(event)
    session = tracker.sessions[init["session_id"]]
    assert session.metadata["source"] == "claude -p" and session.metadata["pid"] == 4242
    assert session.metadata["model"] == "claude-opus-5" and session.initial_prompt == "fix"


def test_one_assistant_line_can_hold_several_blocks_with_distinct_ids():
    line = {
        "type": "assistant", "session_id": "s1", "parent_tool_use_id": None, "uuid": "u-1",
        "message": {"id": "msg_1", "model": "m", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "x"},
            {"type": "text", "text": "Reading both files."},
            {"type": "tool_use", "id": "toolu_a", "name": "Read", "input": {"file_path": "/p/a.py"}},
            {"type": "tool_use", "id": "toolu_b", "name": "Write", "input": {"file_path": "/p/b.py", "content": "x"}},
        ]},
    }
    events = normalize_all(line, received_at=NOW)
    assert [(e.event_type, e.category) for e in events] == [
        ("AssistantThinking", "meta"), ("AssistantMessage", "response"), ("PreToolUse", "file"), ("PreToolUse", "file"),
    ]
    assert [e.event_id for e in events] == ["u-1", "u-1:1", "u-1:2", "u-1:3"]
    assert [e.correlation_id for e in events[2:]] == ["toolu_a", "toolu_b"]
    assert events[3].data["file_path"] == "/p/b.py"
    assert normalize(line, received_at=NOW).event_type == "AssistantThinking"  # normalize(): the first one


def test_tool_results_pair_by_tool_use_id_and_take_the_tool_name_from_their_call():
    tracker = SessionTracker()
    events = all_events("stream_json_success.jsonl")
    for event in events:
        tracker.apply(event)
    edit_post = next(e for e in events if e.event_type == "PostToolUse" and e.correlation_id == "toolu_01Edit1")
    assert edit_post.category == "file" and edit_post.data["tool_name"] == "Edit"  # learnt from its PreToolUse
    assert edit_post.data["tool_response"]["filePath"].endswith("orders.py")  # tool_use_result kept
    failed = next(e for e in events if e.event_type == "PostToolUseFailure")
    assert failed.data["success"] is False and failed.data["tool_name"] == "Bash"
    session = tracker.sessions["861a7a4f-e951-4210-847e-5b48167ca7e0"]
    assert session.metrics.files_modified == ["/work/inventory-api/src/inventory/orders.py"]


def test_subagent_lines_attribute_to_the_delegation_their_call_opened():
    tracker = SessionTracker()
    for event in all_events("stream_json_success.jsonl"):
        tracker.apply(event)
    session = tracker.sessions["861a7a4f-e951-4210-847e-5b48167ca7e0"]
    [delegation] = session.delegations
    assert delegation.agent_id == delegation.tool_use_id == "toolu_01WpAVhnCvdR8Ywmh4rK4jed"
    assert delegation.event_count == 2 and delegation.tool_operations == ["Grep"]
    inside = [e for e in session.events if e.agent_id == delegation.agent_id and e.category == "tool"]
    assert {e.data["attributed_to"] for e in inside} == {"Explore"}
    main_edit = next(e for e in session.events if e.data.get("tool_name") == "Edit")
    assert main_edit.agent_id is None and "attributed_to" not in main_edit.data


def test_two_parallel_subagents_each_get_their_own_lines():
    def call(tool_id: str, kind: str) -> dict:
        return {"type": "assistant", "session_id": "par", "parent_tool_use_id": None, "message": {"id": tool_id,
                "content": [{"type": "tool_use", "id": tool_id, "name": "Task",
                             "input": {"subagent_type": kind, "prompt": f"go {kind}", "description": kind}}]}}

    def inside(parent: str, tool_id: str) -> dict:
        return {"type": "assistant", "session_id": "par", "parent_tool_use_id": parent, "message": {"id": tool_id,
                "content": [{"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": "ls"}}]}}

    tracker = SessionTracker()
    for line in [call("t1", "Explore"), call("t2", "Plan"), inside("t2", "b1"), inside("t1", "b2"), inside("t2", "b3")]:
        for event in normalize_all(line, received_at=NOW):
            tracker.apply(event)
    by_type = {d.agent_type: d.event_count for d in tracker.sessions["par"].delegations}
    assert by_type == {"Explore": 1, "Plan": 2}


def test_result_carries_cost_turns_durations_usage_and_trusts_is_error():
    [ok] = normalize_all(lines("stream_json_success.jsonl")[-1], received_at=NOW)
    assert (ok.event_type, ok.category) == ("Result", "response")
    assert ok.data["total_cost_usd"] == 0.1351093 and ok.data["num_turns"] == 6
    assert ok.data["duration_ms"] == 29039 and ok.data["duration_api_ms"] == 29535
    assert ok.data["usage"]["output_tokens"] == 656 and ok.data["is_error"] is False
    [bad] = normalize_all(lines("stream_json_error.jsonl")[-1], received_at=NOW)
    assert bad.data["subtype"] == "success" and bad.data["is_error"] is True
    tracker = SessionTracker()
    outcome = tracker.apply(bad)
    assert outcome.turn_ended and tracker.sessions[bad.session_id].metrics.is_error is True
    sidechain = {**lines("stream_json_success.jsonl")[-1], "parent_tool_use_id": "toolu_x"}
    [side] = normalize_all(sidechain, received_at=NOW)
    assert side.event_type == "SubagentResult"  # a subagent's result does not end the run


def test_chatter_is_ignored_and_lines_without_a_session_are_rejected():
    for line in [
        {"type": "stream_event", "event": {"type": "message_stop"}, "session_id": "s"},
        {"type": "system", "subtype": "status", "status": "requesting", "session_id": "s"},
        {"type": "system", "subtype": "thinking_tokens", "estimated_tokens": 5, "session_id": "s"},
    ]:
        with pytest.raises(RejectedEvent) as caught:
            normalize_all(line, received_at=NOW)
        assert caught.value.ignorable
    with pytest.raises(RejectedEvent) as caught:
        normalize_all({"type": "result", "subtype": "success", "is_error": False}, received_at=NOW)
    assert caught.value.kind == "no_session_id" and not caught.value.ignorable


def test_run_exit_ends_the_session():
    [end] = normalize_all({"type": "run_exit", "session_id": "s", "exit_code": 2, "pid": 9}, received_at=NOW)
    assert (end.event_type, end.data["exit_code"], end.data["reason"]) == ("SessionEnd", 2, "process_exit")


# --- SSE (mnemosyne) ----------------------------------------------------------------------------------


def test_sse_events_map_to_lifecycle_tools_delegations_memory_and_meta():
    context = StreamContext("http://127.0.0.1:3000/events")
    events = []
    for payload in sse_payloads():
        try:
            events.append(normalize(context.prepare(payload), received_at=NOW))
        except RejectedEvent as rejection:
            assert rejection.kind == "control:heartbeat" and rejection.ignorable
    kinds = [(e.event_type, e.category, e.session_id) for e in events]
    assert kinds[0] == ("context_modified", "meta", "sse-127.0.0.1-3000")  # before any session_started
    assert kinds[1:] == [
        ("SessionStart", "meta", "11f3218d"),
        ("SubagentStart", "delegation", "11f3218d"),
        ("work_item_assigned", "meta", "11f3218d"),
        ("phase_changed", "meta", "11f3218d"),
        ("PreToolUse", "tool", "11f3218d"),
        ("memory_stored", "memory", "11f3218d"),
        ("PostToolUse", "tool", "11f3218d"),
        ("PreToolUse", "tool", "11f3218d"),
        ("PostToolUseFailure", "tool", "11f3218d"),
        ("work_item_completed", "meta", "11f3218d"),
        ("SubagentStop", "delegation", "11f3218d"),
        ("SessionEnd", "meta", "11f3218d"),
    ]
    assert all(e.event_id == p["id"] for e, p in zip(events, [p for p in sse_payloads() if p["type"] != "heartbeat"]))
    started, completed = events[5], events[7]
    assert started.correlation_id == completed.correlation_id and completed.data["duration_ms"] == 42
    assert started.data["tool_input"]["command"] == "remember -c Auth uses JWT -i 8"
    assert events[6].data["importance"] == 8 and "importance_derived" not in events[6].data  # its own value
    assert events[1].data["importance"] == 8 and events[1].data["importance_derived"] is True  # the seed's rating
    assert events[2].data["instructions"] == "Implement auth middleware" and events[2].agent_id == "executor"
    assert wire_format(sse_payloads()[2]) == "sse"


def test_command_completions_close_the_oldest_open_command_of_that_name():
    context = StreamContext("http://h:1/events")
    a = context.prepare({"id": "a", "type": "cli_command_started", "command": "recall"})
    b = context.prepare({"id": "b", "type": "cli_command_started", "command": "recall"})
    c = context.prepare({"id": "c", "type": "cli_command_started", "command": "remember"})
    done1 = context.prepare({"id": "d", "type": "cli_command_completed", "command": "recall"})
    done2 = context.prepare({"id": "e", "type": "cli_command_failed", "command": "recall"})
    done3 = context.prepare({"id": "f", "type": "cli_command_completed", "command": "remember"})
    orphan = context.prepare({"id": "g", "type": "cli_command_completed", "command": "recall"})
    assert (a["correlation_id"], b["correlation_id"], c["correlation_id"]) == ("a", "b", "c")
    assert (done1["correlation_id"], done2["correlation_id"], done3["correlation_id"]) == ("a", "b", "c")
    assert "correlation_id" not in orphan
    assert stream_session_id("http://h:1/events") == "sse-h-1" == done1["session_id"]


def test_redacted_values_stay_redacted():
    payload = {"id": "x1", "type": "cli_command_started", "command": "secrets",
               "args": ["set", "OPENAI_KEY", "***REDACTED***"], "timestamp": "2025-11-23T21:05:10Z"}
    event = normalize(StreamContext("http://h:1/events").prepare(payload), received_at=NOW)
    assert event.data["args"][-1] == "***REDACTED***"
    assert event.data["tool_input"]["args"][-1] == "***REDACTED***"


def test_names_and_importance_helpers():
    assert snake_case("CliCommandCompleted") == "cli_command_completed" and snake_case("heartbeat") == "heartbeat"
    assert importance_of("session_ended") == 8 and importance_of("deadlock_detected") == 9
    assert importance_of("search_performed") == 2 and importance_of("something_new") == 4


# --- the shared research samples (skipped when ../shared is absent) --------------------------------------


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/research/formats is not here")
def test_every_shared_sample_normalizes_or_is_rejected_cleanly():
    kept = 0
    for raw in (SHARED / "stream_json_sample.jsonl").read_text().splitlines():
        line = {k: v for k, v in json.loads(raw).items() if not k.startswith("_")}
        try:
            kept += len(normalize_all(line, received_at=NOW))
        except RejectedEvent as rejection:
            assert rejection.ignorable, rejection
    context = StreamContext("http://127.0.0.1:3000/events")
    for raw in (SHARED / "sse_samples.txt").read_text().splitlines():
        if raw.startswith("data: "):
            try:
                normalize(context.prepare(json.loads(raw[6:])), received_at=NOW)
                kept += 1
            except RejectedEvent as rejection:
                assert rejection.ignorable, rejection
    assert kept > 30
