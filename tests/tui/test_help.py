"""HelpScreen: the keys listed are the keys bound, grouped, and it closes as promised."""

from __future__ import annotations

import asyncio
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, ClassVar

import pytest
from rich.console import Console
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from agent_aggregator.model import SessionSummary
from agent_aggregator.tui.screens.browser import BrowserScreen
from agent_aggregator.tui.screens.help import GROUP_ORDER, HelpRow, HelpScreen

NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=timezone.utc)
SAVE_DIR = "/home/dev/.claude-mpm/activity"


class Panes(Static, can_focus=True):
    """Stands in for the timeline widget: its own keys, a group title of its own."""

    BINDING_GROUP_TITLE = "Timeline"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "follow", "Follow", id="timeline.follow", tooltip="Stay at the newest event."),
        Binding("c", "categories", "Categories", tooltip="Choose the categories shown."),
    ]

    def action_follow(self) -> None: ...

    def action_categories(self) -> None: ...


class LiveLike(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "next_pane", "Next pane", id="panes.next", tooltip="Focus the next pane."),
        Binding("1", "pane(1)", "Sessions pane", show=False, id="panes.sessions"),
        Binding("2", "pane(2)", "Timeline pane", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Static("sessions", id="sessions")
        yield Panes("timeline", id="timeline")
        yield Footer()

    def action_next_pane(self) -> None: ...

    def action_pane(self, number: int) -> None: ...


class HelpHost(App[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", id="app.help", tooltip="Every key, grouped."),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Leave the monitor."),
        Binding("s", "sessions", "Sessions", id="app.sessions", tooltip="Browse saved sessions."),
    ]

    def __init__(self, first: Callable[[], Screen[Any]]) -> None:
        super().__init__()
        self.first = first

    def on_mount(self) -> None:
        self.push_screen(self.first())

    def action_help(self) -> None:
        self.push_screen(HelpScreen(save_dir=SAVE_DIR))

    def action_sessions(self) -> None: ...


def summaries() -> list[SessionSummary]:
    return [
        SessionSummary(
            session_id=f"sess-{n}",
            start_time=(NOW - timedelta(hours=n)).isoformat(),
            end_time=None,
            status="completed",
            event_count=10 * n,
            duration_ms=60_000 * n,
            file_path=Path(f"/nowhere/{n}.json"),
            working_directory=f"/home/dev/projects/{name}",
            initial_prompt=f"Task {n} for {name}",
        )
        for n, name in enumerate(["alpha", "beta", "gamma"], start=1)
    ]


def browser() -> BrowserScreen:
    return BrowserScreen(summaries, clock=lambda: NOW, directory=SAVE_DIR)


def run(app: HelpHost, body: Callable[[Any], Any], size: tuple[int, int] = (160, 48)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await body(pilot)

    asyncio.run(main())


def rendered(screen: HelpScreen) -> str:
    """The help's text as a terminal would show it (tables included)."""
    console = Console(width=100, record=True, file=io.StringIO(), color_system=None)
    for widget in screen.query(Static):
        console.print(widget.content)
    return console.export_text()


def rows_by_group(screen: HelpScreen) -> dict[str, list[HelpRow]]:
    return dict(screen.sections)


def test_lists_the_app_and_screen_keys_grouped():
    app = HelpHost(LiveLike)

    async def body(pilot):
        await pilot.press("question_mark")
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        groups = rows_by_group(help_screen)
        assert list(groups)[:3] == ["Panes", "Timeline", "App"]
        panes = {row.keys: row.description for row in groups["Panes"]}
        assert panes == {"tab": "Next pane", "1": "Sessions pane", "2": "Timeline pane"}  # hidden keys too
        timeline = {row.keys: row for row in groups["Timeline"]}
        assert timeline["f"].tooltip == "Stay at the newest event."
        assert timeline["c"].description == "Categories"  # unfocused widget, grouped by its title
        app_keys = {row.keys: row.description for row in groups["App"]}
        assert app_keys["?"] == "Help" and app_keys["s"] == "Sessions"
        assert app_keys["^q / q"] == "Quit"  # Textual's ctrl+q and ours: one action, one row
        assert app_keys["^p"] == "palette"
        # Rendered, with the LIVE paragraph and where sessions are saved.
        text = rendered(help_screen)
        assert "Next pane" in text and "Every key, grouped." in text
        assert "● LIVE marks a session" in text and SAVE_DIR in text

    run(app, body)


def test_keys_follow_the_keymap():
    app = HelpHost(LiveLike)

    async def body(pilot):
        app.set_keymap({"panes.next": "n", "app.help": "f1"})
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        groups = rows_by_group(app.screen)
        assert {row.keys for row in groups["Panes"]} >= {"n"}
        assert "tab" not in {row.keys for row in groups["Panes"]}
        assert "f1" in {row.keys for row in groups["App"]}

    run(app, body)


def test_over_the_browser_it_lists_the_browser_keys():
    app = HelpHost(browser)

    async def body(pilot):
        await pilot.press("question_mark")
        await pilot.pause()
        groups = rows_by_group(app.screen)
        sessions = {row.keys: row.description for row in groups["Sessions"]}
        assert sessions["⏎"] == "Open"
        assert sessions["esc / s"] == "Back"
        assert {sessions[key] for key in ("t", "n", "d", "g", "/")} == {"Time", "Events", "Duration", "Group", "Filter"}
        assert sessions["e"] == "Export"  # e exports; events sort on n
        assert sessions["esc"] == "Clear filter"  # the filter box's own key
        # The app's `s` is shadowed by the browser's: the help does not claim it opens sessions.
        assert "s" not in {row.keys for row in groups["App"]}
        assert "Navigation" in groups and any(row.keys == "↓" for row in groups["Navigation"])
        assert list(groups)[-1] == "Navigation"
        assert [name for name in groups if name in GROUP_ORDER] == ["Sessions", "App"]

    run(app, body)


@pytest.mark.parametrize("key", ["escape", "question_mark", "q"])
def test_escape_question_mark_and_q_close(key):
    app = HelpHost(LiveLike)

    async def body(pilot):
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press(key)
        await pilot.pause()
        assert isinstance(app.screen, LiveLike)  # closed, and q did not quit the app
        assert app.is_running

    run(app, body)


def test_scrolls_on_a_small_terminal():
    app = HelpHost(browser)

    async def body(pilot):
        await pilot.press("question_mark")
        await pilot.pause()
        scroll = app.screen.query_one("#help-scroll", VerticalScroll)
        assert scroll.max_scroll_y > 0
        await pilot.press("pagedown")
        await pilot.pause()
        assert scroll.scroll_y > 0

    run(app, body, size=(80, 24))


def test_snapshot_help_over_browser_wide(snap_compare):
    assert snap_compare(HelpHost(browser), terminal_size=(160, 48), press=["question_mark"])


def test_snapshot_help_over_live_narrow(snap_compare):
    assert snap_compare(HelpHost(LiveLike), terminal_size=(80, 24), press=["question_mark"])
