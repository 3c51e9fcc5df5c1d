"""viewstate: the panes' rows as plain data (no textual imported)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from conftest import feed, interleaved, live_stream, saved_sessions_stream

from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.model import AgentSession, SessionEvent, SessionSummary
from agent_aggregator.tui.viewstate import (
    FileTally,
    RateMeter,
    delegation_rows,
    is_live,
    row_from_session,
    session_rows,
    start_label,
)

UTC = timezone.utc
T0 = datetime(2026, 3, 15, 8, 0, tzinfo=UTC)


def test_viewstate_never_imports_textual():
    code = "import sys, agent_aggregator.tui.viewstate; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_live_means_open_with_an_event_in_the_last_minute():
    assert is_live("active", T0, T0 + timedelta(seconds=60))
    assert not is_live("active", T0, T0 + timedelta(seconds=61))
    assert not is_live("completed", T0, T0)
    assert not is_live("idle", T0, T0)
    assert not is_live("active", None, T0)


def summary(session_id: str, start: datetime, *, status: str = "completed", events: int = 3, cwd: str = "/p/x") -> SessionSummary:
    return SessionSummary(
        session_id=session_id,
        start_time=start.isoformat(),
        end_time=None,
        status=status,
        event_count=events,
        duration_ms=1000,
        file_path=Path(f"session_{session_id}.json"),
        working_directory=cwd,
        initial_prompt="do\nthings \x1b[31m",
        delegation_count=1,
    )


def live_session(session_id: str, start: datetime, *, cwd: str = "/p/live") -> AgentSession:
    session = AgentSession(session_id, start)
    session.working_directory = cwd
    session.add_event("UserPromptSubmit", {"prompt": "hello"}, start.isoformat())
    return session


def test_rows_merge_by_id_live_wins_open_first_then_newest():
    saved = [
        summary("old", T0 - timedelta(hours=2)),
        summary("new", T0 - timedelta(minutes=5)),
        summary("both", T0 - timedelta(hours=1), status="active", events=1),
    ]
    both = live_session("both", T0 - timedelta(hours=1))
    for index in range(4):
        both.add_event("Notification", {"message": "x"}, (T0 - timedelta(seconds=10 - index)).isoformat())
    rows = session_rows([both], saved, T0, timeout_minutes=60)
    assert [row.session_id for row in rows] == ["both", "new", "old"]
    first = rows[0]
    assert first.in_memory and first.events == 5 and first.live and first.project == "live"
    assert rows[1].prompt == "do things [31m", "one line, the escape character removed"


def test_rows_limit_finished_sessions_but_keep_the_selected_one():
    saved = [summary(f"s{index:02d}", T0 - timedelta(minutes=index)) for index in range(10)]
    rows = session_rows([], saved, T0, timeout_minutes=60, recent_limit=3, keep={"s09"})
    assert [row.session_id for row in rows] == ["s00", "s01", "s02", "s09"]


def test_a_silent_open_session_is_idle_not_live():
    stale = summary("stale", T0 - timedelta(hours=3), status="active")
    (row,) = session_rows([], [stale], T0, timeout_minutes=60)
    assert row.status == "idle" and not row.live and not row.active


def test_rows_from_real_sessions(saved_store):
    aggregator = EventAggregator(config=saved_store)
    aggregator.start(connect=False)
    try:
        feed(aggregator, live_stream())
        with aggregator.lock:
            sessions = list(aggregator.tracker.sessions.values())
            now = max(s.last_event_time for s in sessions)
            rows = session_rows(sessions, aggregator.store.list_sessions(), now, timeout_minutes=60)
        assert len(rows) == 6
        assert [row.active for row in rows] == [True] * 3 + [False] * 3
        assert {row.project for row in rows[:3]} == {"service-0", "service-1", "service-2"}
        assert all(row.in_memory for row in rows[:3]) and not any(row.in_memory for row in rows[3:])
        assert rows[3:] == sorted(rows[3:], key=lambda row: row.start, reverse=True)
    finally:
        aggregator.stop()


def test_delegation_rows_show_status_duration_events_files(saved_store):
    aggregator = EventAggregator(config=saved_store)
    aggregator.start(connect=False)
    try:
        feed(aggregator, interleaved())
        session = aggregator.store.load(aggregator.store.list_sessions()[0].session_id)
    finally:
        aggregator.stop()
    rows = delegation_rows(session, T0)
    assert rows and all(row.status in {"done", "failed", "stale", "running"} for row in rows)
    assert [row.key for row in rows] == [str(index) for index in range(len(rows))]
    assert all(row.duration_ms is not None and row.duration_ms >= 0 for row in rows if row.status == "done")


def test_a_running_delegation_counts_up_to_now():
    session = live_session("s", T0)
    session.add_delegation("Explore", "look", T0)
    (row,) = delegation_rows(session, T0 + timedelta(seconds=90))
    assert (row.agent_type, row.status, row.duration_ms) == ("Explore", "running", 90_000)


def file_event(event_type: str, tool: str, path: str, **data) -> SessionEvent:
    return SessionEvent(
        timestamp=T0.isoformat(),
        event_type=event_type,
        category="file",
        data={"tool_name": tool, "file_path": path, **data},
        session_id="s",
    )


def test_file_tally_counts_calls_once_relative_to_the_project_and_incrementally():
    events = [
        file_event("PreToolUse", "Write", "/p/x/a.py"),
        file_event("PostToolUse", "Write", "/p/x/a.py", success=True),
        file_event("PreToolUse", "Read", "/p/x/a.py"),
        file_event("PreToolUse", "Edit", "/p/x/a.py"),
        file_event("PostToolUseFailure", "Edit", "/p/x/a.py", error="no match"),
        file_event("PostToolUse", "MultiEdit", "/elsewhere/b.py"),  # a source that sent only Post
    ]
    events_list = events[:3]
    tally = FileTally()
    assert tally.update(events_list, "/p/x")
    (row,) = tally.rows()
    assert (row.path, row.writes, row.edits, row.operations) == ("a.py", 1, 0, 1)
    assert not tally.update(events_list, "/p/x"), "nothing new: nothing to do"
    events_list.extend(events[3:])  # the aggregator appends to the same list
    assert tally.update(events_list, "/p/x")
    first, second = tally.rows()
    assert (first.path, first.writes, first.edits, first.failed) == ("a.py", 1, 1, 1)
    assert first.detail == "1 write, 1 edit, 1 failed"
    assert (second.path, second.operations, second.detail) == ("/elsewhere/b.py", 1, "1 edit")


def test_rate_meter_over_the_last_seconds():
    meter = RateMeter(window=5.0)
    assert meter.rate() == 0.0
    for second in range(10):
        meter.add(float(second), second * 100)
    assert meter.rate() == 100.0
    meter.add(10.0, 1000)  # nothing new for a while: the rate falls
    meter.add(15.0, 1000)
    assert meter.rate() < 100.0
    meter.add(16.0, 5)  # a new aggregator: counts start over
    assert meter.rate() == 0.0
    frozen = RateMeter()
    frozen.add(1.0, 10)
    frozen.add(1.0, 20)
    assert frozen.rate() == 0.0, "no time passed (a frozen clock): no rate"


def test_start_label_today_or_with_the_date():
    assert start_label(T0, T0 + timedelta(hours=1)) == "08:00:00"
    assert start_label(T0, T0 + timedelta(days=1)) == "Mar 15 08:00"
    assert start_label(T0, T0 + timedelta(days=400)) == "2026-03-15"


def test_row_from_a_session_with_no_events():
    session = AgentSession("empty", T0)
    row = row_from_session(session, T0, 60)
    assert (row.events, row.project, row.prompt, row.live) == (0, "-", "", True)


def test_saved_stream_is_three_sessions():
    assert len({payload.get("session_id") or payload.get("data", {}).get("session_id") for _, payload in saved_sessions_stream()}) == 3


def test_a_running_delegation_of_a_silent_session_stops_at_its_last_event():
    session = live_session("s", T0)
    session.add_delegation("Explore", "look", T0)
    session.add_event("Notification", {"message": "x"}, (T0 + timedelta(seconds=30)).isoformat())
    (row,) = delegation_rows(session, T0 + timedelta(days=200))
    assert (row.status, row.duration_ms) == ("running", 30_000)
