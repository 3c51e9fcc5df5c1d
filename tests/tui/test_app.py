"""Pilot tests: every key of the live screen against real stores (and one real hub).

Stores are filled through ``EventAggregator`` from tests/fixtures_builder.py
sessions; apps run with ``run_test(size=(160, 48))``. Waits poll the app's state
(no timing assertions).
"""

from __future__ import annotations

import json
import urllib.request
from datetime import timedelta

from conftest import (
    SIZE,
    config,
    fixed_clock,
    interleaved,
    last_event_time,
    stamped_raw,
    wait_for,
)
from textual.widgets import DataTable, Input

import fixtures_builder as fb
from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.tui.app import AggregateApp
from agent_aggregator.tui.screens.live import LiveScreen, StatusBar
from agent_aggregator.tui.viewstate import BROWSE, FOLLOWER, WRITER
from agent_aggregator.tui.widgets.timeline import Timeline

SAVED_IDS = {fb.RAW_SESSION_ID, fb.MPM_SESSION_ID, fb.SEED_SESSION_ID}


def table(app: AggregateApp, name: str) -> DataTable:
    return app.live_screen.query_one(f"#{name}", DataTable)


def row_keys(app: AggregateApp, name: str) -> list[str]:
    return [row.key.value for row in table(app, name).ordered_rows]


def timeline(app: AggregateApp) -> Timeline:
    return app.live_screen.query_one(Timeline)


def shown(app: AggregateApp) -> str | None:
    current = app.live_screen.current
    return current.session_id if current is not None else None


async def ready(app: AggregateApp, pilot) -> None:
    """The first session is shown and the sessions pane has the focus (set after the first frame)."""
    await wait_for(lambda: shown(app) is not None and app.focused is table(app, "sessions"), pilot)


async def open_row(app: AggregateApp, pilot, session_id: str) -> None:
    """Select a session with the keyboard, as a user would, and wait for it to be shown."""
    await pilot.press("1")
    keys = row_keys(app, "sessions")
    sessions = table(app, "sessions")
    step = "down" if keys.index(session_id) > sessions.cursor_row else "up"
    while keys[sessions.cursor_row] != session_id:
        await pilot.press(step)
    await wait_for(lambda: shown(app) == session_id, pilot)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(port: int, path: str, body: dict) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202


# --- opening ------------------------------------------------------------------------------------


async def test_opens_on_the_saved_sessions(saved_store):
    app = AggregateApp(saved_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert set(row_keys(app, "sessions")) == SAVED_IDS, "listed on the first refresh, before any worker"
        assert app.mode == BROWSE
        await ready(app, pilot)
        first = row_keys(app, "sessions")[0]
        assert shown(app) == first and timeline(app).total_count > 0
        assert app.live_screen.focused is table(app, "sessions")


async def test_waiting_state_without_sessions(workdir):
    app = AggregateApp(config(), connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.live_screen
        assert screen.has_class("-waiting")
        assert "No saved sessions yet" in str(screen.query_one("#waiting").render())


class NoIngest(AggregateApp):
    """Capture 'starting' forever: the first frame of a real start, without a socket."""

    def start_ingest(self) -> None:  # type: ignore[override]
        return None


async def test_waiting_state_says_what_to_start(workdir):
    app = NoIngest(config(dashboard_port=8765))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = str(app.live_screen.query_one("#waiting").render())
        assert "Waiting for events on 127.0.0.1:8765" in text
        assert "aggregate install-hooks" in text and "aggregate serve" in text and "claude-mpm" in text


# --- keys ---------------------------------------------------------------------------------------


async def test_tab_and_number_keys_focus_the_panes(saved_store):
    app = AggregateApp(saved_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        screen = app.live_screen
        for key, pane in (("2", "timeline"), ("3", "delegations"), ("4", "files"), ("1", "sessions")):
            await pilot.press(key)
            assert screen.focused is screen.query_one(f"#{pane}"), key
        await pilot.press("tab")
        assert screen.focused is screen.query_one("#timeline")
        await pilot.press("tab")
        assert screen.focused is screen.query_one("#delegations")
        await pilot.press("shift+tab", "shift+tab")
        assert screen.focused is screen.query_one("#sessions")


async def test_slash_searches_the_timeline_and_escape_clears(saved_store):
    app = AggregateApp(saved_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await open_row(app, pilot, fb.RAW_SESSION_ID)
        line = timeline(app)
        total = line.total_count
        await pilot.press("slash")
        search = app.live_screen.query_one("#search", Input)
        assert search.display and app.focused is search
        await pilot.press(*"pytest")
        assert line.search == "pytest"
        assert 0 < line.matching_count < total
        await pilot.press("q")  # typed, not quit
        assert line.search == "pytestq" and app.is_running
        await pilot.press("backspace", "enter")
        assert app.focused is line and line.search == "pytest", "enter keeps the search"
        await pilot.press("escape")
        assert line.search == "" and line.matching_count == total and not search.display


async def test_f_toggles_follow(saved_store):
    app = AggregateApp(saved_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        line = timeline(app)
        assert not line.follow, "a saved session opens at its first event"
        await pilot.press("f")
        assert line.follow
        await pilot.press("f")
        assert not line.follow


async def test_c_filters_the_timeline_by_category(saved_store):
    from agent_aggregator.tui.screens.category import CategoryFilterScreen

    app = AggregateApp(saved_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await open_row(app, pilot, fb.RAW_SESSION_ID)
        line = timeline(app)
        total = line.total_count
        await pilot.press("c")
        assert isinstance(app.screen, CategoryFilterScreen)
        await pilot.press("n", "space", "enter")  # none, then the first (prompt) only
        assert isinstance(app.screen, LiveScreen)
        assert line.categories == frozenset({"prompt"})
        prompts = sum(1 for event in app.live_screen.current.events if event.category == "prompt")
        assert line.matching_count == prompts < total
        await pilot.press("c", "escape")  # cancel keeps the filter
        assert line.categories == frozenset({"prompt"})
        await pilot.press("c", "a", "enter")  # all: no filter
        assert line.categories is None and line.matching_count == total


async def test_enter_on_an_event_opens_its_detail(saved_store):
    from agent_aggregator.tui.screens.detail import EventDetailScreen

    app = AggregateApp(saved_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("2", "down", "down")
        chosen = timeline(app).selected
        assert chosen is not None
        await pilot.press("enter")
        assert isinstance(app.screen, EventDetailScreen) and app.screen.event is chosen
        await pilot.press("escape")
        assert isinstance(app.screen, LiveScreen)


async def test_s_opens_the_browser_and_enter_opens_a_session_here(saved_store):
    from agent_aggregator.tui.screens.browser import BrowserScreen

    app = AggregateApp(saved_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("s")
        browser = app.screen
        assert isinstance(browser, BrowserScreen)
        await wait_for(lambda: len(browser.shown_ids) == 3, pilot)
        target = browser.shown_ids[-1]
        assert target != shown(app)
        while browser.selected_id != target:
            await pilot.press("down")
        await pilot.press("enter")
        assert isinstance(app.screen, LiveScreen)
        await wait_for(lambda: shown(app) == target, pilot)
        sessions = table(app, "sessions")
        assert row_keys(app, "sessions")[sessions.cursor_row] == target
        assert timeline(app).total_count == len(app.live_screen.current.events)


async def test_question_mark_shows_help_and_escape_closes_it(saved_store):
    from agent_aggregator.tui.screens.help import HelpScreen

    app = AggregateApp(saved_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("q")  # closes the help, does not quit
        assert isinstance(app.screen, LiveScreen) and app.is_running
        await pilot.press("question_mark")
        await pilot.press("escape")
        assert isinstance(app.screen, LiveScreen)


async def test_q_quits_and_saves_every_active_session(live_aggregator):
    ids = list(live_aggregator.tracker.sessions)
    counts = {sid: len(live_aggregator.tracker.sessions[sid].events) for sid in ids}
    app = AggregateApp(live_aggregator.config, aggregator=live_aggregator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.mode == WRITER
        await pilot.press("q")
        await wait_for(lambda: not app.is_running, pilot)
    assert not live_aggregator.running
    listed = {s.session_id: s for s in live_aggregator.store.list_sessions()}
    for sid in ids:
        assert listed[sid].status == "completed" and listed[sid].event_count == counts[sid]


async def test_command_palette_runs_the_same_actions(saved_store):
    app = AggregateApp(saved_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"toggle follow")
        await pilot.pause(0.3)  # the palette searches in a worker
        await pilot.press("enter")
        await wait_for(lambda: timeline(app).follow, pilot)


async def test_mouse_click_selects_a_session(saved_store):
    app = AggregateApp(saved_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        keys = row_keys(app, "sessions")
        await pilot.click("#sessions", offset=(10, 4))  # border, header, then the third row
        await wait_for(lambda: shown(app) == keys[2], pilot)


# --- live ---------------------------------------------------------------------------------------


async def test_live_sessions_from_a_real_hub(workdir):
    port = free_port()
    app = AggregateApp(config(dashboard_port=port))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.mode == WRITER, pilot, 30)
        assert app.listen_address() == f"127.0.0.1:{port}"
        stream = interleaved()
        for name, payload in stream:
            if name is None:
                post(port, "/events", payload)
            else:
                post(port, "/api/events", {"namespace": "/", "event": name, "data": payload})
        sessions = {spec["session_id"] for spec in fb.interleaved_sessions()}
        await wait_for(lambda: sessions <= set(row_keys(app, "sessions")), pilot)
        await wait_for(lambda: app.aggregator.total_events >= 100, pilot)
        status = app.live_screen.query_one(StatusBar)
        assert f"serving on 127.0.0.1:{port}" in str(status.render())
        await pilot.press("q")
        await wait_for(lambda: not app.is_running, pilot)
    app.stop_ingest()
    listed = {s.session_id for s in app.store.list_sessions()}
    assert sessions <= listed


async def test_follows_a_running_aggregator(workdir):
    port = free_port()
    writer = EventAggregator(config=config(dashboard_port=port))
    writer.start(serve=True)
    stream = stamped_raw(fb.raw_hook_session(), fb.RAW_SESSION_ID)[:-1]
    try:
        for _, payload in stream[:10]:
            post(port, "/events", payload)
        app = AggregateApp(config(dashboard_port=port))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.mode == FOLLOWER, pilot, 30)
            assert app.follow_pid and not app.aggregator.writes
            await wait_for(lambda: shown(app) == fb.RAW_SESSION_ID and timeline(app).total_count == 10, pilot)
            for _, payload in stream[10:]:
                post(port, "/events", payload)
            await wait_for(lambda: timeline(app).total_count == len(stream), pilot)
            assert "following pid" in str(app.live_screen.query_one(StatusBar).render())
            await pilot.press("q")
            await wait_for(lambda: not app.is_running, pilot)
        listed = {s.session_id: s for s in writer.store.list_sessions()}
        assert listed[fb.RAW_SESSION_ID].status == "active", "the follower saved nothing"
    finally:
        writer.stop()


# --- literal text -------------------------------------------------------------------------------


async def test_payload_text_is_shown_literally(saved_store):
    aggregator = EventAggregator(config=saved_store)
    aggregator.start(connect=False)
    hostile = "[bold red]not markup[/] \x1b[31mred\x1b[0m [link=http://x]y[/link]"
    aggregator.handle_event({
        "hook_event_name": "UserPromptSubmit", "session_id": "hostile-1", "cwd": "/tmp/[bold]proj",
        "prompt": hostile, "timestamp": "2026-03-15T08:00:00Z", "event_id": "e1",
    })
    app = AggregateApp(saved_store, aggregator=aggregator, clock=fixed_clock(last_event_time(aggregator) + timedelta(seconds=1)))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: "hostile-1" in row_keys(app, "sessions"), pilot)
        cells = table(app, "sessions").get_row("hostile-1")
        plain = [cell.plain for cell in cells]
        assert "[bold]proj" in plain
        assert any(text == "[bold red]not markup[/] [31mred [0m [link=http://x]y[/link]" for text in plain)
        assert all(not cell.spans for cell in cells), "no markup was parsed"
    aggregator.stop()


# --- snapshots (pytest-textual-snapshot; frozen clock, fixed ids, TZ=UTC) -----------------------


def live_app(aggregator: EventAggregator) -> AggregateApp:
    return AggregateApp(
        aggregator.config, aggregator=aggregator, clock=fixed_clock(last_event_time(aggregator) + timedelta(seconds=5))
    )


def test_snapshot_waiting(workdir, snap_compare):
    app = NoIngest(config(dashboard_port=8765))
    assert snap_compare(app, terminal_size=SIZE)


async def settled(app: AggregateApp, pilot) -> None:
    """Every pane shows the selected session in full (the panes fill on the next 4 Hz tick)."""

    def done() -> bool:
        current = app.live_screen.current
        return (
            current is not None
            and timeline(app).total_count == len(current.events)
            and len(table(app, "delegations").rows) == len(current.delegations)
        )

    await wait_for(done, pilot)
    await pilot.pause()


def test_snapshot_live_three_interleaved_sessions(live_aggregator, snap_compare):
    app = live_app(live_aggregator)

    async def run_before(pilot) -> None:
        await ready(app, pilot)
        await pilot.press("2")
        await settled(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_live_narrow(live_aggregator, snap_compare):
    app = live_app(live_aggregator)

    async def run_before(pilot) -> None:
        await ready(app, pilot)
        await settled(app, pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_snapshot_browser(live_aggregator, snap_compare):
    from agent_aggregator.tui.screens.browser import BrowserScreen

    app = live_app(live_aggregator)

    async def run_before(pilot) -> None:
        await ready(app, pilot)
        await pilot.press("s")
        await wait_for(lambda: isinstance(app.screen, BrowserScreen) and len(app.screen.shown_ids) == 6, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_event_detail(live_aggregator, snap_compare):
    from agent_aggregator.tui.screens.detail import EventDetailScreen

    app = live_app(live_aggregator)

    async def run_before(pilot) -> None:
        await ready(app, pilot)
        await pilot.press("2", "home")
        line = timeline(app)
        while line.selected is None or line.selected.event_type != "PreToolUse" or line.selected.data.get("tool_name") != "Edit":
            await pilot.press("down")
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, EventDetailScreen), pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def test_a_port_held_by_something_else_is_reported_and_browsing_goes_on(saved_store):
    import http.server
    import threading

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        app = AggregateApp(config(dashboard_port=server.server_address[1]))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.mode == "error", pilot, 30)
            assert "not a Socket.IO server" in (app.ingest_error or "")
            await wait_for(lambda: "not capturing" in str(app.live_screen.query_one(StatusBar).render()), pilot)
            assert set(row_keys(app, "sessions")) == SAVED_IDS
            await pilot.press("q")
            await wait_for(lambda: not app.is_running, pilot)
        assert app.store.writer_pid() is None, "the directory was let go"
    finally:
        server.shutdown()


async def test_warnings_are_shown_not_printed(saved_store):
    import logging

    app = AggregateApp(saved_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        threading_log = logging.getLogger("agent_aggregator.store")
        import threading

        worker = threading.Thread(target=threading_log.warning, args=("cannot write to %s: disk full", "/x"))
        worker.start()
        worker.join()
        await wait_for(lambda: any("disk full" in str(n.message) for n in app._notifications), pilot)
