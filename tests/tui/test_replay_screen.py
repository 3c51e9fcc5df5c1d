"""Pilot tests for the replay screen: every control, opened every way, and the invariant on screen.

The replay runs on a hand-driven wall clock (``Wall``), so where the cursor is
never depends on how fast this machine is; waits poll the app's state. The
session replayed is the shipped ``assets/sample-session.json`` (three
delegations, five files, two turns), copied into a real store.
"""

from __future__ import annotations

import shutil
from bisect import bisect_right
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ACTIVITY,
    LIVE_CUT,
    SIZE,
    config,
    feed,
    fixed_clock,
    interleaved,
    last_event_time,
    wait_for,
)
from textual.widgets import DataTable, Input

from agent_aggregator.model import AgentSession
from agent_aggregator.replay import Replay, differences, session_fingerprint
from agent_aggregator.tui.app import AggregateApp
from agent_aggregator.tui.viewstate import BROWSE
from agent_aggregator.tui.screens import replay as replay_screens
from agent_aggregator.tui.screens.browser import BrowserScreen
from agent_aggregator.tui.screens.help import collect_help
from agent_aggregator.tui.screens.live import LiveScreen
from agent_aggregator.tui.screens.replay import ReplayApp, ReplayBar, ReplayScreen
from agent_aggregator.tui.widgets.timeline import Timeline

ASSET = Path(__file__).resolve().parents[2] / "assets" / "sample-session.json"
SAMPLE = AgentSession.load(ASSET)
SAMPLE_ID = SAMPLE.session_id
PROMPTS = [i for i, e in enumerate(SAMPLE.events) if e.event_type == "UserPromptSubmit"]
N = len(SAMPLE.events)

class Wall:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> Wall:
    clock = Wall()
    monkeypatch.setattr(replay_screens, "WALL_CLOCK", clock)
    return clock


@pytest.fixture
def sample_store(saved_store) -> Any:
    """The saved store plus the sample session, as ``aggregate start`` names its files."""
    shutil.copy(ASSET, ACTIVITY / "session_b7e4c2d9_20260316_140200.json")
    return saved_store


def replay_of(app: AggregateApp) -> ReplayScreen:
    screen = app.screen
    assert isinstance(screen, ReplayScreen)
    return screen


def table_rows(screen: LiveScreen, name: str) -> list[tuple[str, ...]]:
    table = screen.query_one(f"#{name}", DataTable)
    return [tuple(str(cell) for cell in table.get_row_at(index)) for index in range(table.row_count)]


def timeline_lines(screen: LiveScreen) -> list[str]:
    timeline = screen.query_one(Timeline)
    return [timeline.render_line(y).text for y in range(timeline.scrollable_content_region.height)]


async def settled(screen: LiveScreen, pilot) -> None:
    """Every pane shows the screen's current session in full."""

    def done() -> bool:
        current = screen.current
        return (
            current is not None
            and screen.query_one(Timeline).total_count == len(current.events)
            and len(screen.query_one("#delegations", DataTable).rows) == len(current.delegations)
            and len(screen.query_one("#files", DataTable).rows) == len(current.metrics.files_modified)
        )

    await wait_for(done, pilot)
    await pilot.pause()


def sample_app(wall: Wall, **kwargs: Any) -> ReplayApp:
    return ReplayApp(config(), SAMPLE, label="sample-session.json", monotonic=wall, **kwargs)


async def open_sample_in_live_screen(app: AggregateApp, pilot) -> LiveScreen:
    live = app.live_screen
    await wait_for(lambda: SAMPLE_ID in live.query_one("#sessions", DataTable).rows, pilot)
    live.open_session(SAMPLE_ID)
    await wait_for(lambda: live.current is not None and live.current.session_id == SAMPLE_ID, pilot)
    await settled(live, pilot)
    return live


# --- opening ------------------------------------------------------------------------------------


async def test_r_on_the_live_screen_replays_the_shown_session_and_escape_comes_back(sample_store, wall):
    app = AggregateApp(sample_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        live = await open_sample_in_live_screen(app, pilot)
        await pilot.press("r")
        await wait_for(lambda: isinstance(app.screen, ReplayScreen), pilot)
        screen = replay_of(app)
        assert screen.replay.session_id == SAMPLE_ID and screen.replay.total == N
        assert screen.replay.playing, "it starts playing"
        assert screen.focused is screen.query_one(Timeline)
        await pilot.press("escape")
        await wait_for(lambda: app.screen is live, pilot)
        assert live.current is not None and live.current.session_id == SAMPLE_ID


async def test_r_in_the_browser_replays_the_highlighted_session(sample_store, wall):
    app = AggregateApp(sample_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.live_screen.current is not None, pilot)
        await pilot.press("s")
        await wait_for(lambda: isinstance(app.screen, BrowserScreen) and len(app.screen.shown_ids) == 4, pilot)
        browser = app.screen
        while browser.selected_id != SAMPLE_ID:
            await pilot.press("down")
        await pilot.press("r")
        await wait_for(lambda: isinstance(app.screen, ReplayScreen), pilot)
        assert replay_of(app).replay.session_id == SAMPLE_ID
        await pilot.press("q")
        await wait_for(lambda: app.screen is browser, pilot)
        assert app.is_running, "q leaves the replay; it does not quit"


async def test_replaying_a_live_session_replays_a_snapshot(live_aggregator, wall):
    app = AggregateApp(live_aggregator.config, aggregator=live_aggregator,
                       clock=fixed_clock(last_event_time(live_aggregator)))
    async with app.run_test(size=SIZE) as pilot:
        live = app.live_screen
        await wait_for(lambda: live.current is not None and live.current_live, pilot)
        shown = live.current
        await pilot.press("r")
        await wait_for(lambda: isinstance(app.screen, ReplayScreen), pilot)
        screen = replay_of(app)
        before = len(shown.events)
        assert screen.replay.total == before
        stream = interleaved()
        feed(live_aggregator, stream[int(len(stream) * LIVE_CUT):])  # the rest of the capture arrives
        with live_aggregator.lock:
            assert len(shown.events) > before
        assert screen.replay.total == before, "events captured later do not reach the replay"
        screen.seek(screen.replay.total)
        assert screen.replay.session is not shown
        assert [e.to_dict() for e in screen.replay.session.events] == [e.to_dict() for e in shown.events[:before]]


# --- every control ------------------------------------------------------------------------------


async def test_every_control(workdir, wall):
    app = sample_app(wall, autoplay=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = replay_of(app)
        replay = screen.replay
        await settled(screen, pilot)
        assert replay.cursor == 0 and not replay.playing

        await pilot.press("right", "right", "right", "right")
        assert replay.cursor == 4
        await pilot.press("left")
        assert replay.cursor == 3 and replay.rebuilds == 1
        await pilot.press("home")
        assert replay.cursor == 0
        await pilot.press("shift+right")
        assert replay.cursor == PROMPTS[0] + 1
        await pilot.press("shift+right")
        assert replay.cursor == PROMPTS[1] + 1
        await pilot.press("right", "shift+left")
        assert replay.cursor == PROMPTS[1] + 1, "mid-turn: back to the start of this turn"
        await pilot.press("shift+left")
        assert replay.cursor == PROMPTS[0] + 1
        await pilot.press("end")
        assert replay.at_end and differences(replay.session, SAMPLE) == []
        await pilot.press("home")
        assert replay.cursor == 0

        labels = []
        for key in ("plus", "plus", "equals_sign", "plus", "plus", "minus", "minus", "minus", "minus", "minus"):
            await pilot.press(key)
            labels.append(replay.speed)
        assert labels == [2.0, 5.0, 10.0, float("inf"), float("inf"), 10.0, 5.0, 2.0, 1.0, 0.5]
        await pilot.press("plus")  # back to 1x

        await pilot.press("t")
        assert replay.gap_cap is None
        await pilot.press("t")
        assert replay.gap_cap == 1.0

        await pilot.press("space")
        assert replay.playing
        wall.advance(3.0)  # 3 replayed seconds at 1x
        expected = bisect_right(replay.offsets, 3.0 + 1e-9)
        await wait_for(lambda: replay.cursor == expected, pilot)
        assert replay.elapsed == pytest.approx(3.0)
        await pilot.press("space")
        assert not replay.playing
        wall.advance(60.0)
        await pilot.pause(0.3)  # a few ticks of the timer: paused, nothing moves
        assert replay.cursor == expected

        bar = screen.query_one(ReplayBar)
        start, width = bar._bar
        column = start + width // 2
        await pilot.click(ReplayBar, offset=(bar.styles.padding.left + column, 0))
        check = Replay(SAMPLE)
        assert replay.cursor == check.seek_fraction((width // 2 + 0.5) / width)


async def test_the_screen_shows_the_replay_state(workdir, wall):
    app = sample_app(wall, autoplay=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = replay_of(app)
        screen.seek(PROMPTS[1])
        await settled(screen, pilot)
        bar = str(screen.query_one(ReplayBar).render())
        assert "PAUSED" in bar and f"event {PROMPTS[1]} of {N}" in bar and "turn 1 of 2" in bar
        assert "1x" in bar and "gaps ≤ 1s" in bar
        status = str(screen.query_one("#status").render())
        assert "replay of sample-session.json" in status and "nothing is saved" in status
        assert f"{PROMPTS[1]} of {N} events replayed" in status
        assert table_rows(screen, "delegations")[0][:2] == ("research", "done")
        assert screen.query_one("#sessions", DataTable).row_count == 1


async def test_delegations_open_and_close_and_files_appear_as_the_clock_passes(workdir, wall):
    app = sample_app(wall, autoplay=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = replay_of(app)
        await settled(screen, pilot)
        start = next(i for i, e in enumerate(SAMPLE.events) if e.event_type == "SubagentStart")
        screen.seek(start + 1)
        await settled(screen, pilot)
        assert table_rows(screen, "delegations")[0][:2] == ("research", "running")
        assert table_rows(screen, "files") == []
        first_write = next(i for i, e in enumerate(SAMPLE.events)
                           if e.event_type == "PostToolUse" and e.data.get("tool_name") in ("Edit", "Write"))
        await pilot.press("space")
        while replay_of(app).replay.cursor <= first_write:
            wall.advance(0.5)
            await pilot.pause(0.05)
        await pilot.press("space")
        await settled(screen, pilot)
        assert [row[1] for row in table_rows(screen, "delegations")][:2] == ["done", "running"]
        assert len(table_rows(screen, "files")) >= 1


async def test_q_in_the_search_box_types_and_escape_clears_it_before_leaving(workdir, wall):
    app = sample_app(wall, autoplay=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = replay_of(app)
        screen.seek(N)
        await settled(screen, pilot)
        await pilot.press("slash", "q", "a", "left", "home")
        search = screen.query_one("#search", Input)
        assert search.value == "qa" and screen.replay.cursor == N, "arrows and home edit the search"
        assert screen.query_one(Timeline).matching_count < N
        await pilot.press("escape")
        assert not search.display and screen.query_one(Timeline).search == ""
        assert app.is_running
        await pilot.press("escape")
        await wait_for(lambda: not app.is_running, pilot)


async def test_help_lists_the_replay_keys(workdir, wall):
    app = sample_app(wall, autoplay=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        groups = dict(collect_help(app, replay_of(app)))
        rows = {row.description: row.keys for row in groups["Replay"]}
        for description in ("Play/Pause", "Step", "Back", "Next turn", "Previous turn", "Faster", "Slower",
                             "Start", "End", "Timing", "Leave replay"):
            assert description in rows, description
        assert ("q", "Leave replay") in {(row.keys, row.description) for row in groups["Replay"]}
        assert "q" not in {row.keys for row in groups["App"]}, "q leaves the replay; ctrl+q quits"


# --- the invariant, on screen -------------------------------------------------------------------


async def test_speeds_steps_and_seeks_end_on_the_sessions_own_view(sample_store, wall):
    """Replay at several speeds with steps and seeks; the final panes equal the session's own view."""
    app = AggregateApp(sample_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        live = await open_sample_in_live_screen(app, pilot)
        own = {name: table_rows(live, name) for name in ("delegations", "files")}
        own_events = [event.to_dict() for event in live.current.events]

        await pilot.press("r")
        await wait_for(lambda: isinstance(app.screen, ReplayScreen), pilot)
        screen = replay_of(app)
        replay = screen.replay
        await pilot.press("plus", "plus")  # 5x, playing
        wall.advance(2.0)
        await wait_for(lambda: replay.cursor >= bisect_right(replay.offsets, 10.0), pilot)
        await pilot.press("left", "left", "left", "shift+right", "plus")  # paused by the steps; 10x
        await pilot.press("space")
        wall.advance(0.7)
        await wait_for(lambda: replay.elapsed > 0, pilot)
        await pilot.press("home", "minus", "minus", "minus", "t")  # 0.5x, real time
        await pilot.press("space")
        wall.advance(5.0)
        await wait_for(lambda: replay.cursor > 0, pilot)
        await pilot.press("end", "left", "shift+left", "right", "plus", "plus", "plus", "plus", "plus")  # max
        await pilot.press("space")
        while not replay.at_end:
            wall.advance(1.0)
            await pilot.pause(0.05)
        await settled(screen, pilot)

        assert differences(replay.session, SAMPLE) == []
        assert {name: table_rows(screen, name) for name in ("delegations", "files")} == own
        assert [event.to_dict() for event in screen.current.events] == own_events
        assert screen.query_one(Timeline).total_count == N


async def test_the_replay_never_writes_to_the_store(sample_store, wall):
    before = sorted((p.name, p.stat().st_mtime_ns) for p in ACTIVITY.iterdir() if p.name.startswith("session_"))
    app = AggregateApp(sample_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_sample_in_live_screen(app, pilot)
        await pilot.press("r")
        await wait_for(lambda: isinstance(app.screen, ReplayScreen), pilot)
        await pilot.press("end")
        await pilot.press("escape")
    after = sorted((p.name, p.stat().st_mtime_ns) for p in ACTIVITY.iterdir() if p.name.startswith("session_"))
    assert after == before
    assert session_fingerprint(AgentSession.load(ACTIVITY / "session_b7e4c2d9_20260316_140200.json")) == \
        session_fingerprint(SAMPLE)


def test_snapshot_replay_half_way(workdir, snap_compare):
    wall = Wall()
    app = ReplayApp(config(), SAMPLE, label="sample-session.json", monotonic=wall, autoplay=False)

    async def run_before(pilot) -> None:
        screen = replay_of(app)
        screen.seek(N // 2)
        await settled(screen, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def test_the_replay_app_captures_nothing_and_q_quits_it(workdir, wall):
    """``aggregate replay --tui``: no aggregator, no hub, nothing written; leaving the replay ends the app."""
    app = sample_app(wall)
    async with app.run_test(size=SIZE) as pilot:
        await settled(replay_of(app), pilot)
        assert app.aggregator is None and app.mode == BROWSE
        await pilot.press("q")
        await wait_for(lambda: not app.is_running, pilot)
    assert not (workdir / ACTIVITY).exists()


async def test_a_long_seek_runs_in_pieces_and_keys_still_work_meanwhile(workdir, wall):
    """A seek costing more than ``seek_piece`` events runs one piece per frame; space stops it."""
    app = sample_app(wall, autoplay=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = replay_of(app)
        replay = screen.replay
        await settled(screen, pilot)
        screen.seek_piece = 3
        await pilot.press("end")
        await wait_for(lambda: screen.seeking is None, pilot)
        assert replay.cursor == N and screen.seek_pieces >= N // 3
        assert differences(replay.session, SAMPLE) == []
        await settled(screen, pilot)
        assert screen.query_one(ReplayBar).render().plain.startswith(" ■ END ")

        # a seek under way shows SEEKING and space stops it where it got to, and plays
        replay.seek(0)
        screen.seeking = N
        screen.update_view()
        assert screen.query_one(ReplayBar).render().plain.startswith(" ⏩ SEEKING ")
        await pilot.press("space")
        assert screen.seeking is None and replay.playing and replay.cursor < N
        fresh = Replay(SAMPLE).state_at(replay.cursor)
        assert session_fingerprint(replay.session) == session_fingerprint(fresh)


async def test_help_lists_only_what_works_on_the_screen_below(sample_store, wall):
    """s (browse) and r (replay) work on the live screen, not inside a replay: help says so."""
    app = AggregateApp(sample_store, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        live = await open_sample_in_live_screen(app, pilot)
        live_keys = {row.keys for _group, rows in collect_help(app, live) for row in rows}
        assert {"s", "r"} <= live_keys
        await pilot.press("r")
        await wait_for(lambda: isinstance(app.screen, ReplayScreen), pilot)
        await pilot.pause()
        replay_rows = {(row.keys, row.description) for _group, rows in collect_help(app, app.screen) for row in rows}
        replay_keys = {keys for keys, _description in replay_rows}
        assert "s" not in replay_keys and "r" not in replay_keys
        assert ("space", "Play/Pause") in replay_rows and "c" in replay_keys and "/" in replay_keys
