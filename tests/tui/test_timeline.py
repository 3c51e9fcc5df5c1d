"""Timeline: the virtual event list (Pilot tests and snapshots)."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from textual import events as tevents
from textual.app import App, ComposeResult

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fixtures_builder as fb  # noqa: E402
from conftest import session_events  # noqa: E402

from agent_aggregator.describe import event_summary  # noqa: E402
from agent_aggregator.model import SessionEvent  # noqa: E402
from agent_aggregator.normalize import normalize  # noqa: E402
from agent_aggregator.timeutil import format_timestamp, parse_timestamp  # noqa: E402
from agent_aggregator.tui.widgets import Timeline  # noqa: E402
from agent_aggregator.tui.widgets import timeline as timeline_module  # noqa: E402


def many_events(count: int, base: list[SessionEvent] | None = None) -> list[SessionEvent]:
    """``count`` events cycling through the fixture session, 37 ms apart."""
    base = base or session_events()
    start = parse_timestamp(base[0].timestamp)
    return [
        SessionEvent(
            format_timestamp(start + timedelta(milliseconds=37 * i)),
            base[i % len(base)].event_type,
            base[i % len(base)].category,
            base[i % len(base)].data,
            base[i % len(base)].session_id,
            agent_id=base[i % len(base)].agent_id,
        )
        for i in range(count)
    ]


class Host(App):
    """A timeline filling the screen; records the timeline's messages."""

    def __init__(self, events=None, *, live: bool = False, root: str | None = fb.RAW_CWD) -> None:
        super().__init__()
        self.events = events if events is not None else []
        self.live = live
        self.root = root
        self.chosen: list[SessionEvent] = []
        self.follow_changes: list[bool] = []

    def compose(self) -> ComposeResult:
        yield Timeline(id="timeline")

    def on_mount(self) -> None:
        timeline = self.query_one(Timeline)
        timeline.show(self.events, root=self.root, live=self.live)
        timeline.focus()

    def on_timeline_chosen(self, message: Timeline.Chosen) -> None:
        self.chosen.append(message.event)

    def on_timeline_follow_changed(self, message: Timeline.FollowChanged) -> None:
        self.follow_changes.append(message.follow)


def lines(timeline: Timeline) -> list[str]:
    """The text of the visible lines, as rendered."""
    return [timeline.render_line(y).text for y in range(timeline.scrollable_content_region.height)]


def run(coro):
    return asyncio.run(coro)


# --- showing ---------------------------------------------------------------------------


def test_shows_a_session_with_columns():
    events = session_events()

    async def scenario():
        app = Host(events)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            timeline = app.query_one(Timeline)
            assert timeline.total_count == timeline.matching_count == 40
            assert timeline.selected is events[0]
            assert timeline.follow is False
            shown = lines(timeline)
            assert shown[0].startswith("09:30:00.000 meta       SessionStart")
            assert "source: startup" in shown[0]
            # file paths relative to the session's root, agent column from the tracker
            grep = next(line for line in shown if "Grep:" in line)
            read = next(line for line in shown if "Read src/inventory/orders.py" in line)
            assert grep.rstrip().endswith("Explore") and read.rstrip().endswith("Explore")
            assert "/home/dev" not in "".join(shown)
            assert all(len(line) == timeline.scrollable_content_region.width for line in shown)

    run(scenario())


def test_empty_states():
    async def scenario():
        app = Host([])
        async with app.run_test(size=(100, 10)) as pilot:
            await pilot.pause()
            timeline = app.query_one(Timeline)
            assert timeline.selected is None
            assert "No events yet" in lines(timeline)[0]
            app.events.extend(session_events())
            assert timeline.sync() == 40
            await pilot.pause()
            assert timeline.selected is app.events[0]
            timeline.categories = {"memory"}
            await pilot.pause()
            assert lines(timeline)[0].strip() == "No events match category memory"
            timeline.categories = None
            timeline.search = "no such thing"
            await pilot.pause()
            assert lines(timeline)[0].strip() == 'No events match search "no such thing"'

    run(scenario())


def test_narrow_widths_drop_columns_but_keep_the_summary():
    events = session_events()
    for width, present, absent in (
        (80, ("09:30:02.720", "file", "PreToolUse", "Read README.md"), ()),
        (60, ("09:30:02.720", "file", "Read README.md"), ("PreToolUse",)),
        (40, ("09:30:02.720", "Read README.md"), ("file ",)),
    ):

        async def scenario():
            app = Host(events)
            async with app.run_test(size=(width, 8)) as pilot:
                await pilot.pause()
                line = lines(app.query_one(Timeline))[2]
                for text in present:
                    assert text in line, (width, line)
                for text in absent:
                    assert text not in line, (width, line)

        run(scenario())


# --- cursor and choosing -------------------------------------------------------------------


def test_cursor_keys_move_and_scroll():
    events = session_events()

    async def scenario():
        app = Host(events)
        async with app.run_test(size=(120, 10)) as pilot:
            await pilot.pause()
            timeline = app.query_one(Timeline)
            page = timeline.scrollable_content_region.height - 1
            await pilot.press("down", "down")
            assert timeline.cursor_row == 2 and timeline.selected is events[2]
            await pilot.press("up")
            assert timeline.cursor_row == 1
            await pilot.press("pagedown")
            assert timeline.cursor_row == 1 + page
            await pilot.press("pagedown", "pagedown", "pagedown", "pagedown")
            assert timeline.cursor_row == 39 and timeline.selected is events[-1]
            assert timeline.scroll_offset.y == timeline.max_scroll_y
            await pilot.press("pageup")
            assert timeline.cursor_row == 39 - page
            await pilot.press("home")
            assert timeline.cursor_row == 0 and timeline.scroll_offset.y == 0
            await pilot.press("up")
            assert timeline.cursor_row == 0
            await pilot.press("end")
            assert timeline.cursor_row == 39 and timeline.follow is True
            # the cursor line is what is highlighted
            cursor_y = timeline.cursor_row - timeline.scroll_offset.y
            cursor_style = timeline.get_component_rich_style("timeline--cursor")
            strip = timeline.render_line(cursor_y)
            assert all(segment.style.bgcolor == cursor_style.bgcolor for segment in strip if segment.text.strip())

    run(scenario())


def test_enter_and_double_click_post_chosen():
    events = session_events()

    async def scenario():
        app = Host(events)
        async with app.run_test(size=(120, 12)) as pilot:
            await pilot.pause()
            timeline = app.query_one(Timeline)
            await pilot.press("down", "enter")
            await pilot.pause()
            assert app.chosen == [events[1]]
            await pilot.click(Timeline, offset=(20, 4))
            await pilot.pause()
            assert timeline.selected is events[4] and len(app.chosen) == 1  # a single click selects
            await pilot.double_click(Timeline, offset=(20, 6))
            await pilot.pause()
            assert timeline.selected is events[6]
            assert app.chosen[-1] is events[6]

    run(scenario())


# --- follow -----------------------------------------------------------------------------------


def test_follow_keeps_the_newest_event_in_view():
    session = session_events()
    shown: list[SessionEvent] = session[:10]

    async def scenario():
        app = Host(shown, live=True)
        async with app.run_test(size=(120, 8)) as pilot:
            await pilot.pause()
            timeline = app.query_one(Timeline)
            assert timeline.follow is True and app.follow_changes == [True]
            assert timeline.selected is shown[-1]
            shown.extend(session[10:25])
            assert timeline.sync() == 15
            assert timeline.sync() == 0
            await pilot.pause()
            assert timeline.selected is session[24]
            assert timeline.scroll_offset.y == timeline.max_scroll_y > 0
            assert "Notification" not in "".join(lines(timeline))  # (event 28 not there yet)
            assert "SubagentStop" in lines(timeline)[-1]  # event 24 at the bottom

            await pilot.press("up")  # moving up stops following
            await pilot.pause()
            assert timeline.follow is False and app.follow_changes == [True, False]
            selected, offset = timeline.selected, timeline.scroll_offset.y
            shown.extend(session[25:30])
            assert timeline.sync() == 5
            await pilot.pause()
            assert timeline.selected is selected and timeline.scroll_offset.y == offset

            await pilot.press("end")  # End follows again
            await pilot.pause()
            assert timeline.follow is True and timeline.selected is session[29]
            assert app.follow_changes == [True, False, True]

            timeline.toggle_follow()
            await pilot.pause()
            assert timeline.follow is False
            timeline.toggle_follow()
            await pilot.pause()
            assert timeline.follow is True and app.follow_changes[-2:] == [False, True]

            # scrolling up with the wheel stops following; the cursor stays put
            timeline.post_message(tevents.MouseScrollUp(timeline, 5, 2, 0, -1, 0, False, False, False))
            await pilot.pause()
            assert timeline.follow is False
            assert timeline.scroll_offset.y < timeline.max_scroll_y
            assert timeline.selected is session[29]
            shown.extend(session[30:])
            timeline.sync()
            await pilot.pause()
            assert timeline.selected is session[29]

    run(scenario())


def test_saved_session_opens_at_the_top_and_shows_replace_the_list():
    first, second = session_events(), many_events(60)

    async def scenario():
        app = Host(first, live=True)
        async with app.run_test(size=(120, 8)) as pilot:
            await pilot.pause()
            timeline = app.query_one(Timeline)
            assert timeline.follow is True
            timeline.show(second, root=fb.RAW_CWD)
            await pilot.pause()
            assert timeline.follow is False and timeline.selected is second[0]
            assert timeline.scroll_offset.y == 0 and timeline.total_count == 60
            await pilot.press("down")
            # showing the same list again is a sync: nothing moves
            timeline.show(second, root=fb.RAW_CWD)
            await pilot.pause()
            assert timeline.selected is second[1]

    run(scenario())


# --- filters ---------------------------------------------------------------------------------


def test_categories_and_search_narrow_the_rows():
    events = session_events()

    async def scenario():
        app = Host(events)
        async with app.run_test(size=(140, 20)) as pilot:
            await pilot.pause()
            timeline = app.query_one(Timeline)
            await pilot.press("down", "down", "down")  # PostToolUse Read README.md
            assert timeline.selected is events[3]

            timeline.categories = frozenset({"file"})
            await pilot.pause()
            files = [e for e in events if e.category == "file"]
            assert timeline.matching_count == len(files) == 12 and timeline.total_count == 40
            assert timeline.selected is events[3]  # still matches: the cursor stays on it
            assert all(" file " in line for line in lines(timeline)[:12])

            timeline.search = "ORDERS.PY"  # case-insensitive, on the line's text
            await pilot.pause()
            expected = [e for e in files if "orders.py" in (e.data.get("file_path") or "")]
            assert timeline.matching_count == len(expected) == 8  # test_orders.py too
            assert timeline.selected is expected[0]  # README.md left: the next match

            timeline.categories = {"file", "tool"}
            timeline.search = "-m pytest"
            await pilot.pause()
            assert timeline.matching_count == 4  # 2 Bash pytest calls, Pre and Post

            timeline.search = "explore"  # the agent column is searched too
            await pilot.pause()
            assert timeline.matching_count == 4

            timeline.search = "09:30:22"  # and the time column
            timeline.categories = None
            await pilot.pause()
            assert timeline.matching_count == 4

            timeline.search = ""
            await pilot.pause()
            assert timeline.matching_count == 40

            # new events are filtered as they arrive
            timeline.categories = {"prompt"}
            await pilot.pause()
            assert timeline.matching_count == 2
            events.extend(events[:5])
            assert timeline.sync() == 5
            assert timeline.matching_count == 3 and timeline.total_count == 45

    run(scenario())


def test_long_filters_run_in_slices_and_keep_the_ui_answering(monkeypatch):
    monkeypatch.setattr(timeline_module, "SCAN_SLICE", 0.0005)
    events = many_events(20_000)

    async def scenario():
        app = Host(events)
        async with app.run_test(size=(120, 12)) as pilot:
            await pilot.pause()
            timeline = app.query_one(Timeline)
            timeline.search = "CHANGELOG"
            assert timeline.filtering  # only the first slice ran
            slices = 0
            while timeline.filtering:
                await pilot.pause()
                slices += 1
            assert slices > 1
            per_session = sum("changelog" in event_summary(e, root=fb.RAW_CWD).lower() for e in events[:40])
            assert per_session == 4  # the prompt, Edit CHANGELOG.md (Pre, Post), the Stop message
            assert timeline.matching_count == 20_000 // 40 * per_session
            assert "changelog" in event_summary(timeline.selected).lower()

    run(scenario())


# --- literal text ------------------------------------------------------------------------------


def hostile_events() -> list[SessionEvent]:
    base = session_events()[0]
    stamp = base.timestamp
    sid = base.session_id
    return [
        normalize({"hook_event_name": "UserPromptSubmit", "session_id": sid, "timestamp": stamp,
                   "prompt": "[bold]x[/] and [link=https://evil]y[/link]"}),
        normalize({"hook_event_name": "UserPromptSubmit", "session_id": sid, "timestamp": stamp,
                   "prompt": "\x1b[31mred\x1b[0m \x9b2J\u202eevil\nsecond line"}),
        normalize({"hook_event_name": "PreToolUse", "session_id": sid, "timestamp": stamp, "tool_name": "Bash",
                   "tool_input": {"command": "echo '[red]boom[/red]' \x07"}, "agent_type": "[i]agent[/i]"}),
        normalize({"hook_event_name": "[b]Custom[/b]", "session_id": sid, "timestamp": stamp,
                   "message": "\x1b]0;title\x07:rocket: [/]"}),
    ]


def test_payload_text_is_shown_literally():
    events = hostile_events()

    async def scenario():
        app = Host(events)
        async with app.run_test(size=(160, 8)) as pilot:
            await pilot.pause()
            timeline = app.query_one(Timeline)
            strips = [timeline.render_line(y) for y in range(4)]
            text = [strip.text for strip in strips]
            assert "[bold]x[/] and [link=https://evil]y[/link]" in text[0]
            assert "[31mred [0m 2J" in text[1] and "evil second line" in text[1]
            assert "Bash: echo '[red]boom[/red]'" in text[2] and "[i]agent[/i]" in text[2]
            assert "[b]Custom[/b]" in text[3] and ":rocket: [/]" in text[3]
            joined = "".join(text)
            for bad in ("\x1b", "\x9b", "\x07", "\u202e", "\n"):
                assert bad not in joined
            for strip in strips:
                for segment in strip:
                    assert segment.style is None or segment.style.link is None  # no [link] acted upon

    run(scenario())


# --- scale -------------------------------------------------------------------------------------


def test_100k_events_format_only_the_visible_lines():
    events = many_events(100_000)

    async def scenario():
        app = Host(events, live=True)
        async with app.run_test(size=(160, 48)) as pilot:
            timeline = app.query_one(Timeline)
            started = time.perf_counter()
            await pilot.pause()
            first_paint = time.perf_counter() - started
            height = timeline.scrollable_content_region.height
            assert timeline.matching_count == 100_000 and timeline.selected is events[-1]
            assert timeline.format_count <= height + 2
            await pilot.press("home")
            await pilot.pause()
            assert timeline.selected is events[0]
            await pilot.press("end", "pageup", "pageup")
            await pilot.pause()
            assert timeline.format_count <= 4 * height + 8
            assert first_paint < 5  # generous: the point is the count above
            # appending while following formats the new rows only
            before = timeline.format_count
            events.extend(many_events(1_000))
            assert timeline.sync() == 1_000
            await pilot.press("end")
            await pilot.pause()
            assert timeline.selected is events[-1]
            assert timeline.format_count - before <= height + 2

    run(scenario())


# --- snapshots ---------------------------------------------------------------------------------


def test_snapshot_timeline(snap_compare):
    async def run_before(pilot):
        await pilot.press("down", "down", "down")

    assert snap_compare(Host(session_events()), terminal_size=(160, 48), run_before=run_before)


def test_snapshot_timeline_live_narrow(snap_compare):
    assert snap_compare(Host(session_events(), live=True), terminal_size=(80, 24))


def test_snapshot_timeline_filtered(snap_compare):
    async def run_before(pilot):
        timeline = pilot.app.query_one(Timeline)
        timeline.categories = {"file", "tool", "delegation"}
        timeline.search = "orders"

    assert snap_compare(Host(session_events()), terminal_size=(160, 24), run_before=run_before)
