"""normalize(): every accepted wire format maps to the canonical event (DESIGN sections 2-3)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent_aggregator.errors import RejectedEvent
from agent_aggregator.model import CATEGORIES
from agent_aggregator.normalize import MAX_STRING_CHARS, normalize, stable_event_id, wire_format

SID = "94692e6b-0ceb-4981-bb88-c31d81e9e21e"
CWD = "/home/dev/project"
RECEIVED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
SHARED_FORMATS = Path(__file__).resolve().parents[2] / "shared" / "research" / "formats"


def raw(event: str, **fields):
    return {"session_id": SID, "transcript_path": f"/x/{SID}.jsonl", "cwd": CWD, "hook_event_name": event, **fields}


def mpm(category: str, subtype: str, data: dict, **top):
    return {"type": category, "subtype": subtype, "data": {"session_id": SID, "working_directory": CWD, **data},
            "timestamp": "2026-02-15T14:02:11.482913+00:00", "session_id": SID, "source": "hook", **top}


# --- raw Claude Code hooks ------------------------------------------------------------


def test_raw_prompt_is_prompt_category_and_stamped_with_receipt_time():
    event = normalize(raw("UserPromptSubmit", prompt="fix the bug"), received_at=RECEIVED)
    assert (event.event_type, event.category, event.session_id) == ("UserPromptSubmit", "prompt", SID)
    assert event.data["prompt"] == "fix the bug"
    assert event.timestamp == "2026-03-01T12:00:00+00:00"
    assert "hook_event_name" not in event.data and "session_id" not in event.data
    assert event.data["cwd"] == CWD


@pytest.mark.parametrize("tool", ["Read", "Write", "Edit", "MultiEdit"])
def test_file_tools_lift_file_path(tool):
    event = normalize(raw("PreToolUse", tool_name=tool, tool_input={"file_path": "/p/a.py"}, tool_use_id="toolu_1"))
    assert event.category == "file"
    assert event.data["file_path"] == "/p/a.py"
    assert event.correlation_id == "toolu_1"


def test_notebook_edit_lifts_notebook_path():
    event = normalize(raw("PreToolUse", tool_name="NotebookEdit", tool_input={"notebook_path": "/p/n.ipynb"}))
    assert (event.category, event.data["file_path"]) == ("file", "/p/n.ipynb")


@pytest.mark.parametrize("tool", ["Task", "Agent"])
def test_both_delegation_tools_open_delegations(tool):
    payload = raw("PreToolUse", tool_name=tool, tool_use_id="toolu_9",
                  tool_input={"description": "Audit", "prompt": "Audit every file", "subagent_type": "Explore"})
    event = normalize(payload)
    assert event.category == "delegation"
    assert event.data["subagent_type"] == "Explore"
    assert event.data["instructions"] == "Audit every file"
    assert event.data["description"] == "Audit"


def test_post_delegation_carries_response_text_and_success():
    payload = raw("PostToolUse", tool_name="Agent", tool_use_id="toolu_9", tool_input={"subagent_type": "Explore"},
                  tool_response={"status": "completed", "content": [{"type": "text", "text": "Found 3 files"}]})
    event = normalize(payload)
    assert event.data["success"] is True
    assert event.data["response"] == "Found 3 files"


def test_post_tool_failure_keeps_error():
    event = normalize(raw("PostToolUseFailure", tool_name="Bash", tool_input={"command": "false"},
                          tool_use_id="toolu_2", error="Exit code 1", is_interrupt=False))
    assert (event.category, event.data["success"], event.data["error"]) == ("tool", False, "Exit code 1")


def test_subagent_tool_events_carry_agent_id():
    event = normalize(raw("PreToolUse", tool_name="Bash", tool_input={"command": "ls"}, agent_id="a8c1e6f",
                          agent_type="Explore", tool_use_id="toolu_3"))
    assert event.agent_id == "a8c1e6f"
    assert event.category == "tool"


def test_todowrite_is_todo_with_list():
    todos = [{"content": "x", "status": "pending", "activeForm": "Doing x"}]
    event = normalize(raw("PreToolUse", tool_name="TodoWrite", tool_input={"todos": todos}))
    assert event.category == "todo" and event.data["todos"] == todos


def test_stop_lifts_last_assistant_message():
    event = normalize(raw("Stop", stop_hook_active=False, last_assistant_message="All done."))
    assert (event.category, event.data["response"]) == ("response", "All done.")


def test_session_end_is_meta():
    event = normalize(raw("SessionEnd", reason="prompt_input_exit"))
    assert (event.event_type, event.category) == ("SessionEnd", "meta")


def test_unknown_hook_event_is_kept_as_meta():
    event = normalize(raw("WorktreeCreate", name="feature"))
    assert (event.event_type, event.category, event.data["name"]) == ("WorktreeCreate", "meta", "feature")


def test_camel_case_lookalike_is_accepted():
    event = normalize({"sessionId": SID, "hookEventName": "UserPromptSubmit", "prompt": "hi"})
    assert (event.session_id, event.category) == (SID, "prompt")


def test_raw_hooks_get_no_content_hash_but_keep_a_relayed_id():
    assert normalize(raw("Stop")).event_id is None
    assert normalize(raw("Stop", event_id="hub-17")).event_id == "hub-17"


# --- claude-mpm Socket.IO envelopes --------------------------------------------------


def test_mpm_pre_tool_uses_tool_parameters_as_tool_input():
    payload = mpm("tool_event", "pre_tool", {"tool_name": "Write", "tool_parameters": {"file_path": "/p/b.py", "content": "x"},
                                             "correlation_id": "c-1"}, correlation_id="c-1", cwd=CWD)
    event = normalize(payload, "tool_event")
    assert (event.event_type, event.category) == ("PreToolUse", "file")
    assert event.data["file_path"] == "/p/b.py"
    assert event.data["tool_input"]["content"] == "x"
    assert "tool_parameters" not in event.data
    assert event.correlation_id == "c-1"
    assert event.timestamp == "2026-02-15T14:02:11.482913+00:00"
    assert event.event_id is not None


def test_mpm_task_delegation_uses_tool_parameters_subagent_type():
    payload = mpm("tool_event", "pre_tool", {"tool_name": "Task", "tool_parameters": {"subagent_type": "research", "prompt": "Look"},
                                             "delegation_details": {"agent_type": "research", "description": "Research it"}})
    event = normalize(payload, "tool_event")
    assert event.category == "delegation"
    assert (event.data["subagent_type"], event.data["instructions"], event.data["description"]) == ("research", "Look", "Research it")


def test_mpm_user_prompt_text_becomes_prompt():
    event = normalize(mpm("claude_event", "user_prompt", {"prompt_text": "do it", "prompt_preview": "do it"}), "claude_event")
    assert (event.event_type, event.data["prompt"]) == ("UserPromptSubmit", "do it")


def test_mpm_synthetic_subagent_start_id_is_not_used_for_binding():
    payload = mpm("hook_event", "subagent_start", {"agent_type": "research", "agent_id": f"research_{SID}"})
    event = normalize(payload, "hook_event")
    assert event.event_type == "SubagentStart" and event.agent_id is None


def test_mpm_subagent_stop_keeps_real_agent_id():
    event = normalize(mpm("hook_event", "subagent_stop", {"agent_type": "research", "agent_id": "a8bfb92"}), "hook_event")
    assert (event.event_type, event.agent_id) == ("SubagentStop", "a8bfb92")


def test_mpm_unlisted_subtypes_are_kept_as_given():
    event = normalize(mpm("claude_event", "hook_execution", {"hook_name": "PreToolUse", "success": True}), "claude_event")
    assert (event.event_type, event.category) == ("hook_execution", "meta")


def test_mpm_memory_events_are_memory():
    event = normalize(mpm("system_event", "memory_stored", {"memory_id": "m1"}), "system_event")
    assert event.category == "memory"


def test_api_events_body_is_unwrapped():
    inner = {"event": "mpm_event", "source": "hook", "type": "hook", "subtype": "user_prompt",
             "timestamp": "2026-02-15T14:02:11+00:00", "data": {"prompt_text": "hello", "session_id": SID}, "session_id": SID}
    body = {"namespace": "", "event": "claude_event", "data": inner}
    event = normalize(body)
    assert (event.event_type, event.data["prompt"], event.session_id) == ("UserPromptSubmit", "hello", SID)
    assert wire_format(body) == "claude-mpm-http"


def test_seed_envelope():
    payload = {"type": "hook", "subtype": "pre_tool", "timestamp": "2025-01-08T14:30:22.123Z",
               "data": {"session_id": "sess_abc123", "tool_name": "Edit", "tool_input": {"file_path": "src/x.py"}}}
    event = normalize(payload, "claude_event")
    assert (event.session_id, event.category, event.data["file_path"]) == ("sess_abc123", "file", "src/x.py")
    assert event.timestamp == "2025-01-08T14:30:22.123000+00:00"


def test_malformed_double_zone_timestamp_is_repaired():
    payload = mpm("claude_event", "notification", {"message": "hi"})
    payload["timestamp"] = "2026-02-15T14:05:00.000123+00:00Z"
    assert normalize(payload).timestamp == "2026-02-15T14:05:00.000123+00:00"


def test_same_envelope_replayed_under_another_name_has_the_same_id():
    payload = mpm("tool_event", "post_tool", {"tool_name": "Bash", "success": True})
    assert normalize(payload, "tool_event").event_id == normalize(payload, "claude_event").event_id
    assert stable_event_id(payload) == normalize(payload).event_id


# --- rejections -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["heartbeat", "dashboard:welcome", "event_history"])
def test_transport_chatter_is_ignorable(name):
    with pytest.raises(RejectedEvent) as caught:
        normalize({"type": name, "timestamp": "x"}, name)
    assert caught.value.ignorable


@pytest.mark.parametrize(
    "payload, kind",
    [
        (None, "not_an_object"),
        ([1, 2], "not_an_object"),
        ("not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        ({"hook_event_name": "Stop"}, "no_session_id"),
        ({"hook_event_name": "Stop", "session_id": ["x"]}, "bad_session_id"),
        ({"hook_event_name": "Stop", "session_id": "a\x00b"}, "bad_session_id"),
        ({"type": "command_acknowledged", "command": "x"}, "control:command_acknowledged"),
    ],
)
def test_rejections_name_their_kind(payload, kind):
    with pytest.raises(RejectedEvent) as caught:
        normalize(payload)
    assert caught.value.kind == kind


def test_json_text_payload_is_decoded():
    event = normalize(json.dumps(raw("UserPromptSubmit", prompt="hi")))
    assert event.data["prompt"] == "hi"


def test_numeric_session_id_is_accepted_as_text():
    assert normalize({"hook_event_name": "Stop", "session_id": 42}).session_id == "42"


def test_huge_strings_are_capped_with_a_visible_marker():
    event = normalize(raw("UserPromptSubmit", prompt="x" * (MAX_STRING_CHARS + 500)))
    assert len(event.data["prompt"]) < MAX_STRING_CHARS + 100
    assert event.data["prompt"].endswith(f"…[truncated 500 chars of {MAX_STRING_CHARS + 500}]")


def test_deep_nesting_is_bounded_so_the_store_can_always_encode_it():
    nested: dict = {}
    cursor = nested
    for _ in range(400):
        cursor["n"] = {}
        cursor = cursor["n"]
    event = normalize(raw("Notification", message="deep", extra=nested))
    import orjson

    orjson.dumps({"events": [{"data": event.data}]})  # raises if nesting were unbounded
    assert "nested too deep" in json.dumps(event.data)


def test_categories_are_always_known():
    for payload in (raw("Foo"), raw("PreToolUse", tool_name="Mystery"), mpm("x_event", "weird", {})):
        assert normalize(payload).category in CATEGORIES


# --- the shared real samples, when the shared folder is beside the checkout ------------


def _shared_lines(name: str):
    path = SHARED_FORMATS / name
    if not path.exists():
        pytest.skip("../shared is not beside this checkout")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _strip(value):
    return {k: v for k, v in value.items() if not k.startswith("_")} if isinstance(value, dict) else value


def test_every_shared_hook_sample_normalizes():
    for line in _shared_lines("hooks_samples.jsonl"):
        payload = _strip(line)
        event = normalize(payload)
        assert event.session_id == payload["session_id"]
        assert event.category in CATEGORIES
        if payload.get("tool_name") in ("Read", "Write", "Edit", "MultiEdit") and event.event_type != "PermissionRequest":
            assert event.data["file_path"] == payload["tool_input"]["file_path"]
        if payload.get("tool_name") in ("Task", "Agent") and payload["hook_event_name"] == "PreToolUse":
            assert event.category == "delegation" and event.data["subagent_type"]


def test_every_shared_claude_mpm_sample_normalizes_or_is_chatter():
    for line in _shared_lines("claude_mpm_socketio_samples.jsonl"):
        try:
            event = normalize(line["payload"], line["event"] if line["event"] != "(body)" else None)
        except RejectedEvent as rejection:
            assert rejection.ignorable, rejection
            continue
        assert event.session_id == "94692e6b-0ceb-4981-bb88-c31d81e9e21e"
        assert event.category in CATEGORIES


def test_every_shared_stream_json_line_is_kept_or_rejected_cleanly():
    for line in _shared_lines("stream_json_sample.jsonl"):
        try:
            event = normalize(_strip(line))
        except RejectedEvent:
            continue
        assert event.category in CATEGORIES


def test_dashboard_messages_are_chatter():
    with pytest.raises(RejectedEvent) as caught:
        normalize({"count": 1}, "dashboard:client:count")
    assert caught.value.ignorable
