"""Headless runs (``aggregate run``) in the TUI: cost, turns, tokens and API time, labelled as
estimates; their totals in the status bar; LIVE while the run's process is alive.

The sessions are the stream-json fixtures fed through a real aggregator, stamped with
fixed times. The running one names this test process as its ``aggregate run`` pid: it
is alive for the whole test, so the session must stay LIVE long after its last event
(the frozen clock is 10 minutes past it, far beyond the 60 s event window).
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

from conftest import SIZE, config, fixed_clock, wait_for

from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.tui.app import AggregateApp
from agent_aggregator.tui.screens.live import StatusBar
from agent_aggregator.tui.viewstate import row_from_session, run_alive
from agent_aggregator.tui.widgets.timeline import Timeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUNNING_ID = "861a7a4f-e951-4210-847e-5b48167ca7e0"
FAILED_ID = "f4b5dc4d-cff3-4a35-a333-1f5984088326"
START = datetime(2026, 3, 15, 9, 0, 0, tzinfo=timezone.utc)
DEAD_PID = 2**22 + 12345  # above Linux's pid_max default: no such process


def run_lines(name: str, start: datetime, pid: int, *, finished: bool) -> list[dict]:
    """A fixture transcript as `aggregate run` sends it: times, ids, the run block on init."""
    lines = [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]
    run = {"pid": pid, "command": ["claude", "-p", "fix the retry"], "prompt": "fix the retry",
           "hostname": socket.gethostname()}
    stamped = []
    for index, line in enumerate(lines):
        if line.get("subtype") == "init":
            line["aggregate_run"] = run
        line["timestamp"] = (start + timedelta(seconds=2 * index)).isoformat()
        line["event_id"] = f"{name}-{index}"
        stamped.append(line)
    if finished:
        stamped.append({"type": "run_exit", "session_id": stamped[0]["session_id"], "exit_code": 1, "pid": pid,
                        "timestamp": (start + timedelta(seconds=2 * len(lines))).isoformat(), "event_id": f"{name}-exit"})
    return stamped


def runs_aggregator(activity_config) -> EventAggregator:
    aggregator = EventAggregator(config=activity_config)
    aggregator.start(connect=False)
    for line in run_lines("stream_json_error.jsonl", START - timedelta(hours=1), DEAD_PID, finished=True):
        aggregator.handle_event(line)
    running = run_lines("stream_json_success.jsonl", START, os.getpid(), finished=False)
    for line in running[:-1]:  # still working: its result line has not come yet
        aggregator.handle_event(line)
    return aggregator


def clock_after(aggregator: EventAggregator):
    with aggregator.lock:
        last = aggregator.tracker.sessions[RUNNING_ID].last_event_time
    return fixed_clock(last + timedelta(minutes=10))


def test_a_run_is_live_while_its_process_lives(workdir):
    aggregator = runs_aggregator(config())
    try:
        with aggregator.lock:
            session = aggregator.tracker.sessions[RUNNING_ID]
            now = session.last_event_time + timedelta(minutes=10)
            assert run_alive(session.metadata)
            assert row_from_session(session, now, 60).live
            session.metadata["pid"] = DEAD_PID  # the process is gone: LIVE goes by events again
            assert not run_alive(session.metadata)
            assert not row_from_session(session, now, 60).live
            session.metadata["pid"] = os.getpid()
            session.metadata["run_hostname"] = "another-machine"  # a pid on another host proves nothing here
            assert not run_alive(session.metadata)
    finally:
        aggregator.stop()


async def test_cost_turns_tokens_and_totals_are_shown(workdir):
    aggregator = runs_aggregator(config())
    app = AggregateApp(aggregator.config, aggregator=aggregator, clock=clock_after(aggregator))
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = app.live_screen
            await wait_for(lambda: screen.current is not None and screen.current.session_id == RUNNING_ID, pilot)
            sessions = screen.query_one("#sessions")
            await wait_for(lambda: FAILED_ID in sessions.rows, pilot)
            live_cell = sessions.get_row(RUNNING_ID)[0]
            assert live_cell.plain == "● LIVE"  # 10 minutes after its last event: its process is alive
            # the running session has no result yet: only the tokens its messages used so far
            # (each message once, though stream-json repeats its usage on every content block)
            pane = screen.query_one("#timeline-pane")
            await wait_for(lambda: "tokens" in (pane.border_subtitle or ""), pilot)
            assert pane.border_subtitle.startswith("24,742 tokens")
            assert "est." not in pane.border_subtitle and "turn" not in pane.border_subtitle
            bar = screen.query_one(StatusBar)
            await wait_for(lambda: "est." in bar.render().plain, pilot)
            assert "$0.0000 est. · 1 turn · 24,742 tokens (2 runs)" in bar.render().plain

            # the result arrives: the session shows its figures, the totals add them up
            result = json.loads((FIXTURES / "stream_json_success.jsonl").read_text().splitlines()[-1])
            aggregator.handle_event({**result, "timestamp": (START + timedelta(minutes=1)).isoformat(), "event_id": "r"})
            await wait_for(lambda: "est." in (pane.border_subtitle or ""), pilot)
            assert pane.border_subtitle.startswith("$0.1351 est. · 6 turns · 136,477 tokens · API 29s")  # the result's totals
            await wait_for(lambda: "136,477 tokens (2 runs)" in bar.render().plain, pilot)
            assert "$0.1351 est. · 7 turns · 136,477 tokens (2 runs)" in bar.render().plain

            # the failed run (is_error: true, though its subtype says success)
            await pilot.press("1")
            await pilot.press("down")
            await wait_for(lambda: screen.current is not None and screen.current.session_id == FAILED_ID, pilot)
            await wait_for(lambda: "is_error" in (pane.border_subtitle or ""), pilot)
            assert pane.border_subtitle.startswith("$0.0000 est. · 1 turn · 0 tokens · API 0ms · is_error")
    finally:
        aggregator.stop()


def test_snapshot_a_live_run(workdir, snap_compare):
    aggregator = runs_aggregator(config())
    result = json.loads((FIXTURES / "stream_json_success.jsonl").read_text().splitlines()[-1])
    aggregator.handle_event({**result, "timestamp": (START + timedelta(minutes=1)).isoformat(), "event_id": "r"})
    app = AggregateApp(aggregator.config, aggregator=aggregator, clock=clock_after(aggregator))

    async def run_before(pilot) -> None:
        screen = app.live_screen
        await wait_for(lambda: screen.current is not None and screen.current.session_id == RUNNING_ID, pilot)
        pane = screen.query_one("#timeline-pane")
        await wait_for(lambda: "est." in (pane.border_subtitle or ""), pilot)
        await wait_for(lambda: "(2 runs)" in screen.query_one(StatusBar).render().plain, pilot)
        timeline = screen.query_one(Timeline)
        await wait_for(lambda: timeline.total_count == len(screen.current.events), pilot)
        await wait_for(lambda: len(screen.query_one("#delegations").rows) == 1, pilot)
        await wait_for(lambda: len(screen.query_one("#files").rows) == 1, pilot)
        sessions = screen.query_one("#sessions")
        await wait_for(lambda: len(sessions.rows) == 2 and sessions.get_row(RUNNING_ID)[0].plain == "● LIVE", pilot)
        await pilot.pause()

    try:
        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    finally:
        aggregator.stop()
