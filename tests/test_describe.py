"""One-line event descriptions and session digests shared by the views."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent_aggregator.describe import (
    cell_len,
    display_status,
    event_summary,
    files_modified,
    one_line,
    project_name,
    relative_path,
    safe_text,
    summarize_session,
    summary_rows,
    truncate,
)
from agent_aggregator.model import COMPLETED, AgentSession, SessionEvent, SessionSummary, categorize

T0 = datetime(2025, 8, 12, 14, 15, 30, tzinfo=timezone.utc)


def event(event_type: str, data: dict | None = None, *, category: str | None = None, agent_id: str | None = None) -> SessionEvent:
    data = dict(data or {})
    return SessionEvent(
        timestamp=T0.isoformat(),
        event_type=event_type,
        category=category or categorize(event_type, data.get("tool_name")),
        data=data,
        session_id="s1",
        agent_id=agent_id,
    )


@pytest.mark.parametrize(
    ("ev", "expected"),
    [
        (event("PreToolUse", {"tool_name": "Edit", "file_path": "/repo/src/app.py"}), "Edit src/app.py"),
        (event("PreToolUse", {"tool_name": "Read", "tool_input": {"file_path": "/elsewhere/x.py"}}), "Read /elsewhere/x.py"),
        (event("PreToolUse", {"tool_name": "Bash", "tool_input": {"command": "pytest -q\n  --lf"}}), "Bash: pytest -q --lf"),
        (event("PreToolUse", {"tool_name": "Grep", "tool_input": {"pattern": "TODO", "path": "/repo/src"}}), "Grep: TODO in src"),
        (event("PreToolUse", {"tool_name": "Glob", "tool_input": {"pattern": "**/*.py"}}), "Glob: **/*.py"),
        (event("PreToolUse", {"tool_name": "WebFetch", "tool_input": {"url": "https://x.test/a", "prompt": "p"}}), "WebFetch: https://x.test/a"),
        (event("PreToolUse", {"tool_name": "mcp__db__query", "tool_input": {"sql": "select 1"}}), "mcp__db__query: select 1"),
        (event("PreToolUse", {"tool_name": "Mystery"}), "Mystery"),
        (event("PostToolUse", {"tool_name": "Bash", "tool_input": {"command": "ls"}, "success": True}), "Bash: ls ok"),
        (event("PostToolUseFailure", {"tool_name": "Bash", "tool_input": {"command": "ls"}, "success": False, "error": "exit 2\nno such dir"}), "Bash: ls failed: exit 2 no such dir"),
        (event("PostToolUse", {"tool_name": "Write", "file_path": "/repo/a.md", "success": False}), "Write a.md failed"),
        (event("UserPromptSubmit", {"prompt": "Fix the\nbug please"}), "Fix the bug please"),
        (event("PreToolUse", {"tool_name": "Task", "subagent_type": "research", "description": "Survey", "instructions": "long"}), "research: Survey"),
        (event("PreToolUse", {"tool_name": "Agent", "tool_input": {"subagent_type": "engineer", "prompt": "Build it"}}), "engineer: Build it"),
        (event("PostToolUse", {"tool_name": "Task", "subagent_type": "research", "description": "Survey", "success": True}), "research: Survey ok"),
        (event("SubagentStart", {"agent_type": "research"}, agent_id="a1b2"), "research (a1b2)"),
        (event("SubagentStop", {"agent_id": "zz9"}), "agent zz9"),
        (event("PreToolUse", {"tool_name": "TodoWrite", "todos": [
            {"content": "a", "status": "completed"}, {"content": "b", "status": "in_progress"}, {"content": "c", "status": "pending"}]}),
         "3 todos (1 in progress)"),
        (event("TodoUpdated", {"todos": [{"content": "a", "status": "pending"}]}), "1 todo (0 in progress)"),
        (event("Stop", {"response": "All done.\nTests pass."}), "All done. Tests pass."),
        (event("Stop", {}), "Stop"),
        (event("Notification", {"message": "Claude needs your permission"}), "Claude needs your permission"),
        (event("SessionStart", {"source": "resume"}), "source: resume"),
        (event("SessionEnd", {"reason": "logout"}), "reason: logout"),
        (event("PreCompact", {"trigger": "auto"}), "trigger: auto"),
        (event("hook_execution", {"success": True}), "hook_execution"),
        (event("PermissionDenied", {"tool_name": "Bash", "tool_input": {"command": "rm -rf /"}, "reason": "denied"}), "Bash: rm -rf / (reason: denied)"),
    ],
)
def test_event_summary(ev: SessionEvent, expected: str) -> None:
    assert event_summary(ev, root="/repo") == expected


def test_summary_is_one_safe_line() -> None:
    nasty = "a\r\nb\tc\x1b[31mred\x00\u2028d\u202eevil"
    text = event_summary(event("UserPromptSubmit", {"prompt": nasty}))
    assert text == "a b c [31mred devil"  # bidi override removed, not replaced
    assert "\x1b" not in text and "\n" not in text and "\u202e" not in text


def test_summary_survives_odd_data() -> None:
    weird = event("PreToolUse", {"tool_name": "Bash", "tool_input": "not a dict", "file_path": 42})
    assert event_summary(weird) == "Bash"
    listed = event("PreToolUse", {"tool_name": "Bash", "tool_input": {"command": ["git", "status"]}})
    assert event_summary(listed) == "Bash: git status"
    nested = event("Notification", {"message": {"text": "hi"}})
    assert event_summary(nested) == '{"text":"hi"}'
    no_data = SessionEvent(T0.isoformat(), "Odd", "meta", None, "s1")  # type: ignore[arg-type]
    assert event_summary(no_data) == "Odd"


def test_width_truncates_with_ellipsis_and_keeps_the_outcome() -> None:
    ev = event("PostToolUse", {"tool_name": "Bash", "tool_input": {"command": "x" * 100}, "success": True})
    short = event_summary(ev, width=20)
    assert short == "Bash: xxxxxxxxxx… ok"
    assert cell_len(short) == 20
    failed = event("PostToolUseFailure", {"tool_name": "Bash", "tool_input": {"command": "ls"}, "error": "e" * 50})
    assert cell_len(event_summary(failed, width=20)) == 20
    assert event_summary(failed, width=20).endswith("…")
    assert event_summary(event("UserPromptSubmit", {"prompt": "short"}), width=20) == "short"


def test_truncate_counts_wide_characters() -> None:
    assert truncate("日本語テキスト", 7) == "日本語…"
    assert cell_len(truncate("日本語テキスト", 7)) <= 7
    assert truncate("abc", 3) == "abc"
    assert truncate("abcd", 1) == "…"
    assert truncate("abcd", 0) == ""
    assert truncate("abcd", None) == "abcd"


def test_one_line_and_safe_text() -> None:
    assert one_line(None) == ""
    assert one_line(12) == "12"
    assert one_line("  a \n\n b  ") == "a b"
    assert safe_text("line 1\r\n    indented\x1b[0m\n\n") == "line 1\n    indented [0m"


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        ("/repo/src/app.py", "/repo", "src/app.py"),
        ("/repo/src/app.py", "/repo/", "src/app.py"),
        ("/repo", "/repo", "."),
        ("/repository/x", "/repo", "/repository/x"),
        ("/other/x", "/repo", "/other/x"),
        ("src/x", "/repo", "src/x"),
        ("/repo/a/../b", "/repo", "b"),
        ("/repo/x", None, "/repo/x"),
        ("/x/y", "/", "x/y"),
    ],
)
def test_relative_path(path: str, root: str | None, expected: str) -> None:
    assert relative_path(path, root) == expected


def test_project_name() -> None:
    assert project_name("/home/u/proj/") == "proj"
    assert project_name("C:\\work\\proj") == "proj"
    assert project_name(None) == "-"
    assert project_name("") == "-"


def make_session() -> AgentSession:
    session = AgentSession("sess-1", T0)
    session.working_directory = "/repo"
    at = lambda s: (T0 + timedelta(seconds=s)).isoformat()  # noqa: E731
    session.add_event("UserPromptSubmit", {"prompt": "go"}, at(0))
    session.add_event("PreToolUse", {"tool_name": "Bash", "tool_input": {"command": "ls"}}, at(1))
    session.add_event("PostToolUse", {"tool_name": "Bash", "success": True}, at(2))
    session.add_event("PreToolUse", {"tool_name": "Bash", "tool_input": {"command": "pwd"}}, at(3))
    session.add_event("PostToolUse", {"tool_name": "Grep", "success": True}, at(4))  # only the Post side seen
    session.add_event("PreToolUse", {"tool_name": "Edit", "file_path": "/repo/a.py"}, at(5))
    session.add_event("PreToolUse", {"tool_name": "Read", "file_path": "/repo/read-only.py"}, at(6))
    session.add_event("PreToolUse", {"tool_name": "Write", "file_path": "/repo/b.py"}, at(7))
    session.add_event("Stop", {"response": "done"}, at(8))
    session.add_event("memory_store", {"key": "k"}, at(9))
    for agent in ("research", "engineer", "research"):
        session.add_delegation(agent, "do it", T0)
    return session


def test_summarize_session_counts() -> None:
    session = make_session()
    digest = summarize_session(session)
    assert digest["total_events"] == 10
    assert digest["prompts"] == 1
    assert digest["event_counts"]["tool"] == 4
    assert digest["event_counts"]["file"] == 3
    assert digest["event_counts"]["response"] == 1
    assert digest["event_counts"]["memory"] == 1
    assert digest["event_counts"]["todo"] == 0
    assert digest["tools_used"] == {"Bash": 2, "Edit": 1, "Grep": 1, "Read": 1, "Write": 1}
    assert list(digest["tools_used"])[0] == "Bash"
    assert digest["agents"] == {"research": 2, "engineer": 1}
    assert digest["delegations"] == 3
    assert digest["files_modified"] == ["/repo/a.py", "/repo/b.py"]  # derived: the session kept no metrics
    assert digest["duration_ms"] == 9000 and digest["duration"] == "9s"

    subset = summarize_session(session, [e for e in session.events if e.category == "file"])
    assert subset["total_events"] == 3
    assert subset["tools_used"] == {"Edit": 1, "Read": 1, "Write": 1}


def test_files_modified_prefers_the_aggregators_metrics() -> None:
    session = make_session()
    session.metrics.note_file("/repo/decided-by-aggregator.py")
    assert files_modified(session) == ["/repo/decided-by-aggregator.py"]
    assert files_modified(session, session.events) == ["/repo/a.py", "/repo/b.py"]


def test_summary_rows_follow_the_usage_guide() -> None:
    rows = dict(summary_rows(summarize_session(make_session())))
    assert list(rows)[:7] == [
        "Total Events", "User Prompts", "Agent Delegations", "Tool Operations",
        "File Operations", "Todo Updates", "Responses",
    ]
    assert rows["Agent Delegations"] == 3  # delegations, not delegation events
    assert rows["Memory Events"] == 1
    assert "Other Events" not in rows  # zero, so not shown


def test_display_status_marks_silent_active_sessions_idle() -> None:
    session = make_session()
    now = T0 + timedelta(minutes=30)
    assert display_status(session, 60, now=now) == "active"
    assert display_status(session, 10, now=now) == "idle"
    session.finish(COMPLETED)
    assert display_status(session, 10, now=now) == "completed"
    summary = SessionSummary("s", T0.isoformat(), None, "active", 3, 9000, Path("x.json"))
    assert display_status(summary, 10, now=now) == "idle"
    assert display_status(summary, 60, now=now) == "active"
