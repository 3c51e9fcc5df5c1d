"""Sanity checks for tests/fixtures_builder.py and the committed tests/fixtures/ files."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402

COMMON_RAW_FIELDS = ("session_id", "transcript_path", "cwd", "hook_event_name")
NO_PERMISSION_MODE = {"SessionStart", "SessionEnd", "Notification", "SubagentStart", "PreCompact"}
NO_PROMPT_ID = {"SessionStart", "Notification", "PermissionRequest"}
TOOL_EVENTS = {"PreToolUse", "PostToolUse", "PostToolUseFailure"}


def _parse(ts: str) -> datetime:
    dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    assert dt.tzinfo is not None, ts
    return dt


# ---------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", sorted(fb.render_fixtures()))
def test_committed_fixture_matches_regeneration(name):
    committed = (fb.FIXTURES_DIR / name).read_text(encoding="utf-8")
    assert committed == fb.render_fixtures()[name], (
        f"tests/fixtures/{name} is stale: run `python tests/fixtures_builder.py`"
    )


def test_builders_are_deterministic_and_return_fresh_objects():
    a, b = fb.raw_hook_session(), fb.raw_hook_session()
    assert a == b
    a[2][1]["tool_input"]["file_path"] = "mutated"
    assert fb.raw_hook_session() == b
    # no nested object is shared between two payloads of the same stream
    pre, post = a[2][1], a[3][1]
    assert pre["tool_use_id"] == post["tool_use_id"]
    assert pre["tool_input"] is not post["tool_input"]
    assert fb.claude_mpm_session() == fb.claude_mpm_session()
    assert fb.interleaved_stream() == fb.interleaved_stream()
    assert [c.label for c in fb.malformed_payloads()] == [c.label for c in fb.malformed_payloads()]


def test_expected_json_matches_expected_constant():
    on_disk = json.loads((fb.FIXTURES_DIR / "expected.json").read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(fb.EXPECTED))


# ---------------------------------------------------------------- raw hooks
@pytest.mark.parametrize("agent_tool", ["Agent", "Task"])
def test_raw_payloads_have_common_fields_and_real_shapes(agent_tool):
    events = fb.raw_hook_session(agent_tool=agent_tool)
    sid = fb.RAW_SESSION_ID
    for ts, p in events:
        _parse(ts)
        for key in COMMON_RAW_FIELDS:
            assert isinstance(p.get(key), str) and p[key], (key, p)
        assert p["session_id"] == sid and p["cwd"] == fb.RAW_CWD
        assert p["transcript_path"].endswith(f"/{sid}.jsonl")
        name = p["hook_event_name"]
        assert ("permission_mode" in p) == (name not in NO_PERMISSION_MODE), p
        assert ("prompt_id" in p) == (name not in NO_PROMPT_ID), p
        if name in TOOL_EVENTS:
            assert re.fullmatch(r"toolu_01[0-9A-Za-z]{22}", p["tool_use_id"]), p
            assert isinstance(p["tool_input"], dict)
        if name == "PermissionRequest":
            assert "tool_use_id" not in p and isinstance(p["tool_input"], dict)
        if name == "PostToolUse":
            assert "tool_response" in p and isinstance(p["duration_ms"], int)
        if name == "PostToolUseFailure":
            assert "tool_response" not in p and p["error"].startswith("Exit code 1\n") and p["is_interrupt"] is False
        if "agent_id" in p:
            assert re.fullmatch(r"[0-9a-f]{17}", p["agent_id"]) and p["agent_type"]
    times = [_parse(ts) for ts, _ in events]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert {p["tool_name"] for _, p in events if p.get("tool_input", {}).get("subagent_type")} == {agent_tool}


def test_raw_order_follows_claude_code():
    events = [p for _, p in fb.raw_hook_session()]
    names = [p["hook_event_name"] for p in events]
    assert names[0] == "SessionStart" and events[0]["source"] == "startup"
    assert names[1] == "UserPromptSubmit"
    assert names[-1] == "SessionEnd" and events[-1]["reason"] == "prompt_input_exit"
    # exactly one Stop per turn, each turn opened by UserPromptSubmit
    turns = [i for i, n in enumerate(names) if n == "UserPromptSubmit"]
    stops = [i for i, n in enumerate(names) if n == "Stop"]
    assert len(turns) == len(stops) == 2 and turns[0] < stops[0] < turns[1] < stops[1]
    # Agent pre -> SubagentStart -> inner calls carry agent_id -> SubagentStop -> Agent post
    open_agent = None
    for p in events:
        n = p["hook_event_name"]
        if n == "SubagentStart":
            assert open_agent is None
            open_agent = p["agent_id"]
        elif n == "SubagentStop":
            assert p["agent_id"] == open_agent
            assert p["agent_transcript_path"].endswith(f"/subagents/agent-{open_agent}.jsonl")
            open_agent = None
        elif n in TOOL_EVENTS:
            assert p.get("agent_id") == open_agent, p
        else:
            assert n != "Stop" or open_agent is None
    # pairing by tool_use_id: every Post has an earlier Pre; one Pre is never closed
    pres = {p["tool_use_id"]: p for p in events if p["hook_event_name"] == "PreToolUse"}
    closed = [p["tool_use_id"] for p in events if p["hook_event_name"] in ("PostToolUse", "PostToolUseFailure")]
    assert len(closed) == len(set(closed)) and set(closed) <= set(pres)
    never_closed = sorted(set(pres) - set(closed))
    assert never_closed == fb.EXPECTED["raw_hook_session"]["unpaired_tool_use_ids"]
    assert pres[never_closed[0]]["tool_input"]["command"].startswith("rm -rf")
    agent_posts = [p for p in events if p["hook_event_name"] == "PostToolUse" and p["tool_name"] == "Agent"]
    stops_by_agent = {p["agent_id"]: p for p in events if p["hook_event_name"] == "SubagentStop"}
    for post in agent_posts:
        r = post["tool_response"]
        assert r["status"] == "completed" and r["agentId"] in stops_by_agent
        assert r["content"][0]["text"] == stops_by_agent[r["agentId"]]["last_assistant_message"]


def test_raw_task_variant_differs_only_in_tool_name():
    agent = fb.raw_hook_session(agent_tool="Agent")
    task = fb.raw_hook_session(agent_tool="Task")
    rename = json.dumps(agent).replace('"tool_name": "Agent"', '"tool_name": "Task"')
    assert json.loads(rename) == json.loads(json.dumps(task))
    with pytest.raises(ValueError):
        fb.raw_hook_session(agent_tool="Delegate")


def test_raw_expected_outcome():
    exp = fb.EXPECTED["raw_hook_session"]
    cwd = fb.RAW_CWD
    assert exp["status"] == "completed" and exp["turns"] == 2
    assert exp["initial_prompt"] == fb.RAW_PROMPTS[0]
    assert exp["total_delegations"] == 2 and exp["successful_delegations"] == 2
    d1, d2 = exp["delegations"]
    assert (d1["agent_type"], d1["files_modified"]) == ("Explore", [])
    assert d2["agent_type"] == "general-purpose"
    assert d2["files_modified"] == [f"{cwd}/tests/test_orders.py", f"{cwd}/src/inventory/orders.py"]
    assert exp["files_modified"] == d2["files_modified"] + [f"{cwd}/CHANGELOG.md"]
    assert exp["tools_used"] == ["Agent", "Bash", "Edit", "Grep", "MultiEdit", "Read", "TodoWrite", "Write"]
    assert all(t["status"] == "completed" for t in exp["todos"])
    assert fb.EXPECTED["raw_hook_session_task"]["tools_used"][-1] == "Write"
    assert "Task" in fb.EXPECTED["raw_hook_session_task"]["tools_used"]
    events = fb.raw_hook_session()
    assert exp["total_events"] == len(events) and exp["end_time"] == events[-1][0]


# ---------------------------------------------------------------- claude-mpm
def test_mpm_envelopes():
    stream = fb.claude_mpm_session()
    sid = fb.MPM_SESSION_ID
    session = [(n, p) for n, p in stream if p.get("session_id") == sid]
    others = [(n, p) for n, p in stream if p.get("session_id") != sid]
    assert [n for n, _ in others] == fb.EXPECTED["claude_mpm_session"]["non_session_messages"] == [
        "dashboard:welcome", "event_history", "heartbeat", "claude_event"
    ]  # fmt: skip
    assert dict(others)["heartbeat"]["timestamp"].endswith("+00:00Z")
    assert dict(others)["dashboard:welcome"]["session_id"] == fb.MPM_SOCKET_SID
    ack = dict(others)["claude_event"]
    assert ack["subtype"] == "command_acknowledged" and "session_id" not in ack and "session_id" not in ack["data"]
    for name, p in session:
        assert name == p["type"] == fb.mpm_category(p["subtype"])
        assert set(p) >= {"type", "subtype", "data", "timestamp", "session_id", "source"}
        assert p["data"]["session_id"] == sid
        assert "agent_id" not in p["data"] or p["subtype"] in ("subagent_start", "subagent_stop")
        _parse(p["timestamp"])
    subtypes = [p["subtype"] for _, p in session]
    assert "session_end" not in subtypes and subtypes[0] == "session_start"
    for required in ("user_prompt", "todo_updated", "subagent_start", "subagent_stop", "stop", "token_usage_updated", "notification"):
        assert required in subtypes
    by_sub = {p["subtype"]: p for _, p in session}
    assert by_sub["user_prompt"]["data"]["prompt_text"] == fb.MPM_PROMPT
    assert by_sub["subagent_start"]["data"]["agent_id"] == f"research_{sid}"
    assert by_sub["subagent_stop"]["data"]["agent_id"] == "a8bfb92"
    assert by_sub["stop"]["data"]["usage"] == fb.MPM_USAGE
    # pre/post correlation: Read pairs; the post has no file path; Task post lost its id (claude-mpm quirk)
    pre = {p["data"]["tool_name"]: p for _, p in session if p["subtype"] == "pre_tool"}
    post = {p["data"]["tool_name"]: p for _, p in session if p["subtype"] == "post_tool"}
    assert pre["Read"]["correlation_id"] == post["Read"]["correlation_id"]
    assert pre["Read"]["data"]["tool_parameters"]["file_path"].endswith(fb.MPM_REL_READ)
    assert "file_path" not in json.dumps(post["Read"])
    assert pre["Write"]["data"]["tool_parameters"]["file_path"].endswith(fb.MPM_REL_WRITE)
    assert pre["Task"]["data"]["delegation_details"]["agent_type"] == "research"
    assert "correlation_id" not in post["Task"] and post["Task"]["data"]["success"] is True
    assert fb.EXPECTED["claude_mpm_session"]["post_tool_without_correlation"] == ["Task"]
    ideal = {
        p["data"]["tool_name"]: p
        for _, p in fb.claude_mpm_session(task_post_correlation=True)
        if p.get("subtype") == "post_tool"
    }
    assert ideal["Task"]["correlation_id"] == pre["Task"]["correlation_id"]
    # at least one hook_execution arrives before the event it describes, with a later timestamp
    times = [_parse(p["timestamp"]) for _, p in session]
    assert times != sorted(times)


def test_api_bodies_mirror_socketio_stream():
    bodies = fb.api_events_bodies()
    stream = [p for _, p in fb.claude_mpm_session(include_non_session=False)]
    assert len(bodies) == len(stream)
    for body, w in zip(bodies, stream):
        assert body["namespace"] == "" and body["event"] == "claude_event"
        n = body["data"]
        assert (n["event"], n["source"], n["type"]) == ("mpm_event", "hook", "hook")
        assert n["subtype"] == w["subtype"] and n["data"] == w["data"] and n["timestamp"] == w["timestamp"]
        assert n.get("session_id") == w.get("session_id") and n.get("correlation_id") == w.get("correlation_id")
        assert n.get("cwd") == w.get("cwd")


def test_seed_envelope():
    events = fb.seed_envelope_events()
    assert [e["subtype"] for e in events] == ["user_prompt", "pre_tool", "post_tool", "pre_tool", "post_tool", "stop"]
    for e in events:
        assert e["type"] == "hook" and e["data"]["session_id"] == fb.SEED_SESSION_ID
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["timestamp"])
    assert events[1]["data"]["tool_input"]["file_path"] in fb.EXPECTED["seed_envelope_events"]["files_modified"]
    assert events[3]["data"]["tool_input"]["subagent_type"] == "engineer"


# ---------------------------------------------------------------- interleaving
@pytest.mark.parametrize("n_sessions,seed", [(3, 7), (4, 1), (1, 0)])
def test_interleaved_preserves_per_session_order(n_sessions, seed):
    sessions = fb.interleaved_sessions(n_sessions, seed)
    stream = fb.interleaved_stream(n_sessions, seed)
    ids = [s["session_id"] for s in sessions]
    assert len(set(ids)) == n_sessions
    for s in sessions:
        mine = [(n, p) for n, p in stream if p.get("session_id") == s["session_id"]]
        assert mine == s["events"]
        assert all((n is None) == (s["kind"] == "raw_hook") for n, _ in mine)
    non_session = [n for n, p in stream if p.get("session_id") not in ids]
    assert non_session == [n for n, _ in fb.mpm_non_session_messages()]
    assert len(stream) == sum(len(s["events"]) for s in sessions) + len(non_session)
    if n_sessions > 1:
        firsts = [next(i for i, (_, p) in enumerate(stream) if p.get("session_id") == sid) for sid in ids]
        assert max(firsts) < len(stream) // 2  # actually interleaved, not concatenated


def test_interleaved_seed_changes_order_only():
    a, b = fb.interleaved_stream(3, 7), fb.interleaved_stream(3, 8)
    assert a != b
    key = lambda pair: json.dumps(pair, sort_keys=True)  # noqa: E731
    # the session ids depend on the seed, so compare shapes, not identities
    assert Counter(type(n).__name__ for n, _ in a) == Counter(type(n).__name__ for n, _ in b)
    assert len(a) == len(b) and key(a) != key(b)


# ---------------------------------------------------------------- malformed
def test_malformed_corpus_covers_the_brief():
    cases = fb.malformed_payloads()
    labels = {c.label for c in cases}
    for needed in (
        "none", "list_of_ints", "string", "int", "bytes_not_utf8", "json_truncated",
        "raw_missing_session_id", "session_id_int", "session_id_list", "tool_input_string",
        "mpm_data_list", "prompt_huge_1mb", "tool_input_nested_200", "unknown_hook_event_name",
        "ts_epoch_seconds", "ts_epoch_millis", "ts_double_zone", "ts_naive", "ts_garbage",
        "prompt_rich_markup", "prompt_terminal_escape", "file_path_rich_markup",
        "file_path_terminal_escape", "sid_path_traversal", "sid_absolute_path", "sid_nul_byte",
    ):  # fmt: skip
        assert needed in labels, needed
    by = {c.label: c for c in cases}
    assert len(by["prompt_huge_1mb"].payload["prompt"]) == fb.HUGE_PROMPT_CHARS
    assert isinstance(by["bytes_not_utf8"].payload, bytes)
    with pytest.raises(UnicodeDecodeError):
        by["bytes_not_utf8"].payload.decode("utf-8")
    for label in ("json_truncated", "json_single_quotes", "json_trailing_comma", "json_empty"):
        with pytest.raises(ValueError):
            json.loads(by[label].payload)
    depth, node = 0, by["tool_input_nested_200"].payload["tool_input"]
    while "a" in node:
        node, depth = node["a"], depth + 1
    assert depth == 200


def test_malformed_file_holds_every_json_representable_case():
    rows = [json.loads(line) for line in (fb.FIXTURES_DIR / "malformed.jsonl").read_text(encoding="utf-8").splitlines()]
    in_file = [c for c in fb.malformed_payloads() if fb.malformed_in_file(c)]
    assert [r["label"] for r in rows] == [c.label for c in in_file]
    assert all(r["payload"] == c.payload for r, c in zip(rows, in_file))
    left_out = {c.label for c in fb.malformed_payloads()} - {r["label"] for r in rows}
    assert left_out == {
        c.label for c in fb.malformed_payloads() if c.form == "bytes"
    } | {"float_nan", "set_value", "prompt_huge_1mb"}
