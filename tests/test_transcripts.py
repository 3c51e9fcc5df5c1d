"""Claude Code transcripts -> SessionEvents (transcripts.py): meaning, layouts, corrupt lines, streaming."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from agent_aggregator import transcripts
from agent_aggregator.importer import discover
from agent_aggregator.tracker import rebuild_session
from agent_aggregator.transcripts import ReadStats, iter_lines, read_session

FIXTURES = Path(__file__).parent / "fixtures" / "transcripts" / "projects"
MODERN = "4f6c1e2a-8b3d-4a7e-9c15-2d8e6f0b7a99"
LEGACY = "7d2e9b10-1c4f-4e2a-8b6d-3f5a7c9e1b20"
MIDDLE = "9a1c5e33-6d7b-4f80-a2c4-5e8b1d3f7a60"


def read(session_id: str, stats: ReadStats | None = None):
    sets = {s.session_id: s for s in discover([FIXTURES])}
    chosen = sets[session_id]
    result = read_session(chosen.main, chosen.agents, chosen.session_id, stats or ReadStats())
    assert len(result) == 1
    return result[0]


def types(events) -> list[str]:
    return [e.event_type for e in events]


def test_modern_layout_gives_the_events_the_hooks_would_have_sent() -> None:
    stats = ReadStats()
    session = read(MODERN, stats)
    events = session.events
    assert session.session_id == MODERN and session.cwd == "/work/inventory-api"
    assert session.version == "2.1.240" and session.title == "Cancel endpoint for orders"
    assert types(events).count("UserPromptSubmit") == 2
    prompts = [e.data["prompt"] for e in events if e.event_type == "UserPromptSubmit"]
    assert prompts == ["Add a cancel endpoint for orders and make the tests pass", "Fix the failing test"]
    # The delegation is framed as the hooks fire it: Pre(Agent), SubagentStart, its tools, SubagentStop, Post(Agent).
    order = [(e.event_type, e.data.get("tool_name"), e.agent_id) for e in events
             if e.category == "delegation" or e.agent_id]
    assert order == [
        ("PreToolUse", "Agent", None),
        ("SubagentStart", None, "a3f9c2e1b7d4"),
        ("SubagentPrompt", None, "a3f9c2e1b7d4"),
        ("PreToolUse", "Grep", "a3f9c2e1b7d4"),
        ("PostToolUse", "Grep", "a3f9c2e1b7d4"),
        ("PreToolUse", "Read", "a3f9c2e1b7d4"),
        ("PostToolUse", "Read", "a3f9c2e1b7d4"),
        ("AssistantMessage", None, "a3f9c2e1b7d4"),
        ("SubagentStop", None, "a3f9c2e1b7d4"),
        ("PostToolUse", "Agent", None),
    ]
    inside = [e for e in events if e.agent_id == "a3f9c2e1b7d4"]
    assert all(e.data.get("agent_type") == "Explore" for e in inside)
    # Post events are paired by tool_use_id and carry the tool and its structured result.
    bash = [e for e in events if e.data.get("tool_name") == "Bash"]
    assert types(bash) == ["PreToolUse", "PostToolUseFailure"]
    assert bash[1].correlation_id == "toolu_01Bash" and bash[1].data["success"] is False
    assert bash[1].data["error"].startswith("Exit code 1")
    edit = next(e for e in events if e.event_type == "PostToolUse" and e.data.get("tool_name") == "Edit")
    assert edit.category == "file" and edit.data["file_path"] == "/work/inventory-api/src/inventory/orders.py"
    assert edit.data["tool_response"]["filePath"].endswith("orders.py")
    todo = next(e for e in events if e.event_type == "PreToolUse" and e.data.get("tool_name") == "TodoWrite")
    assert todo.category == "todo" and len(todo.data["todos"]) == 3
    # Only the last assistant text ends a turn; the others are responses that do not.
    responses = [e for e in events if e.category == "response"]
    assert types(responses) == ["AssistantMessage", "AssistantMessage", "AssistantMessage", "AssistantResponse"]
    # Unknown rows and summaries are kept as meta; times are in order.
    meta = {e.event_type for e in events if e.category == "meta"}
    assert {"queue-operation", "file-history-snapshot", "Summary", "System", "mystery-row", "token_usage_updated"} <= meta
    moments = [e.moment for e in events]
    assert moments == sorted(moments)
    # Usage: every API message once (split messages repeat their usage), subagent included.
    assert session.usage == {"input_tokens": 35, "output_tokens": 1260,
                             "cache_creation_input_tokens": 12000, "cache_read_input_tokens": 159000}
    # The corrupt line is counted and located, and nothing else was lost.
    assert stats.bad_lines == 1
    assert str(stats.bad[0]).endswith(f"{MODERN}.jsonl:8: not JSON (unexpected end of data: line 1 column 89 (char 88))")


def test_the_tracker_rebuilds_delegations_files_and_todos_from_imported_events() -> None:
    session = read(MODERN)
    rebuilt = rebuild_session({"session_id": MODERN}, session.events)
    (delegation,) = rebuilt.delegations
    assert delegation.agent_type == "Explore" and delegation.agent_id == "a3f9c2e1b7d4"
    assert delegation.status == "completed" and delegation.success
    assert delegation.tool_operations == ["Grep", "Read"] and delegation.event_count == 4
    assert delegation.response_preview.startswith("Orders are created")
    assert rebuilt.metrics.files_modified == ["/work/inventory-api/src/inventory/orders.py",
                                              "/work/inventory-api/tests/test_orders.py"]
    assert rebuilt.final_response.startswith("Fixed: the test expected 204")
    assert rebuilt.usage["output_tokens"] == 1260
    assert rebuilt.metadata["git_branch"] == "feature/orders"


def test_old_inline_sidechains_are_attributed_to_their_task_by_prompt() -> None:
    session = read(LEGACY)
    rebuilt = rebuild_session({"session_id": LEGACY}, session.events)
    (delegation,) = rebuilt.delegations
    assert delegation.agent_type == "general-purpose" and delegation.status == "completed"
    assert delegation.tool_operations == ["Read"]
    assert delegation.agent_id and delegation.agent_id.startswith("sidechain-")
    # The subagent's prompt is not a user prompt; the summary row (no time of its own) took the first time.
    assert [e.data["prompt"] for e in session.events if e.event_type == "UserPromptSubmit"] == [
        "Update the docs for the new config flag"]
    assert session.events[0].event_type == "Summary" and session.events[0].timestamp.startswith("2026-03-14T09:30:00")
    assert rebuilt.metrics.files_modified == ["/work/legacy-app/docs/config.md"]


def test_2025_agent_files_beside_the_sessions_join_their_parent() -> None:
    sets = {s.session_id: s for s in discover([FIXTURES])}
    assert [p.name for p in sets[MIDDLE].agents] == ["agent-5be1d2f0.jsonl"]
    assert sets[MODERN].agents[0].parent.name == "subagents"
    session = read(MIDDLE)
    rebuilt = rebuild_session({"session_id": MIDDLE}, session.events)
    (delegation,) = rebuilt.delegations
    assert (delegation.agent_type, delegation.agent_id, delegation.tool_operations) == ("Explore", "5be1d2f0", ["Glob"])


def test_event_ids_are_stable_across_reads() -> None:
    first = [e.event_id for e in read(MODERN).events]
    second = [e.event_id for e in read(MODERN).events]
    assert first == second and len(set(first)) == len(first)
    assert all(i and i.startswith("tx-") for i in first)


def test_lines_are_streamed_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transcripts, "READ_CHUNK", 7)
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \n{"b": "' + b"x" * 50 + b'"}\n{"c": 3}')  # no final newline
    stats = ReadStats()
    lines = list(iter_lines(path, stats))
    assert [n for n, _ in lines] == [1, 4, 5]
    assert [json.loads(raw) for _, raw in lines][2] == {"c": 3}
    assert stats.bytes_read == path.stat().st_size


def test_bad_lines_are_counted_with_file_and_line_and_never_stop_the_read(tmp_path: Path) -> None:
    path = tmp_path / "s1.jsonl"
    good = {"type": "user", "sessionId": "s1", "uuid": "u1", "timestamp": "2026-03-14T09:00:00Z",
            "message": {"role": "user", "content": "hello"}}
    path.write_text("\n".join([
        "[1, 2]", "{not json", json.dumps(good), '"just a string"',
        json.dumps({"type": "user", "sessionId": 42, "uuid": "u2", "timestamp": "2026-03-14T09:00:01Z",
                    "message": {"role": "user", "content": "numeric session id: the file's id is used"}}),
    ]) + "\n")
    stats = ReadStats()
    (session,) = read_session(path, [], "s1", stats)
    assert [e.data["prompt"] for e in session.events] == ["hello", "numeric session id: the file's id is used"]
    assert [(b.line, b.reason.split(" (")[0]) for b in stats.bad] == [
        (1, "not a JSON object"), (2, "not JSON"), (4, "not a JSON object")]


def _write_big(path: Path, pairs: int) -> int:
    """A transcript of ``pairs`` Bash calls whose results carry 1 MB of stdout each."""
    output = "y" * (1 << 20)
    with open(path, "w") as handle:
        for n in range(pairs):
            stamp = f"2026-03-14T09:{n // 60:02d}:{n % 60:02d}Z"
            handle.write(json.dumps({"type": "assistant", "sessionId": "big", "uuid": f"a{n}", "timestamp": stamp,
                                     "message": {"id": f"m{n}", "role": "assistant", "content": [
                                         {"type": "tool_use", "id": f"t{n}", "name": "Bash",
                                          "input": {"command": "cat big.log"}}]}}) + "\n")
            handle.write(json.dumps({"type": "user", "sessionId": "big", "uuid": f"u{n}", "timestamp": stamp,
                                     "message": {"role": "user", "content": [
                                         {"type": "tool_result", "tool_use_id": f"t{n}", "content": "see stdout"}]},
                                     "toolUseResult": {"stdout": output, "stderr": "", "interrupted": False}}) + "\n")
    return path.stat().st_size


def _read_measured(path: Path) -> tuple[list, int, int]:
    """(events, bytes still held after the read, transient peak above that)."""
    tracemalloc.start()
    try:
        (session,) = read_session(path, [], "big", ReadStats())
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return session.events, held, peak - held


def test_a_large_transcript_streams_in_bounded_memory(tmp_path: Path) -> None:
    """Reading 4x more transcript must not need more working memory: lines stream, and
    1 MB strings are capped at 64 KiB as they go. Only the (capped) events stay held."""
    small_size = _write_big(tmp_path / "small.jsonl", 15)
    large_size = _write_big(tmp_path / "large.jsonl", 60)
    assert large_size > 60_000_000
    _, _, small_transient = _read_measured(tmp_path / "small.jsonl")
    events, held, transient = _read_measured(tmp_path / "large.jsonl")
    assert len(events) == 120
    stdout = events[1].data["tool_response"]["stdout"]
    assert len(stdout) < 70_000 and "truncated" in stdout
    assert transient < small_transient * 1.5 + 2_000_000, (
        f"working memory grew with the file: {small_transient / 1e6:.1f} MB for {small_size / 1e6:.0f} MB,"
        f" {transient / 1e6:.1f} MB for {large_size / 1e6:.0f} MB")
    assert transient < large_size / 2
    assert held < 300_000 * len(events), f"{held / len(events) / 1e3:.0f} kB held per event"
