"""EventDetailScreen and CategoryFilterScreen (Pilot tests and snapshots)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Region

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fixtures_builder as fb  # noqa: E402
from conftest import session_events  # noqa: E402

from agent_aggregator.model import CATEGORIES, SessionEvent  # noqa: E402
from agent_aggregator.normalize import normalize  # noqa: E402
from agent_aggregator.tui.screens.category import CategoryFilterScreen  # noqa: E402
from agent_aggregator.tui.screens.detail import EventDetailScreen, event_json  # noqa: E402
from agent_aggregator.tui.widgets import Timeline  # noqa: E402


class Host(App):
    """A timeline that opens the detail screen on Chosen, as the live screen does."""

    def __init__(self, events: list[SessionEvent]) -> None:
        super().__init__()
        self.events = events
        self.copied: list[str] = []
        self.filter_results: list[object] = []

    def compose(self) -> ComposeResult:
        yield Timeline(id="timeline")

    def on_mount(self) -> None:
        timeline = self.query_one(Timeline)
        timeline.show(self.events, root=fb.RAW_CWD)
        timeline.focus()

    def on_timeline_chosen(self, message: Timeline.Chosen) -> None:
        self.push_screen(EventDetailScreen(message.event, root=fb.RAW_CWD))

    def copy_to_clipboard(self, text: str) -> None:
        self.copied.append(text)
        super().copy_to_clipboard(text)

    def open_filter(self, selected=None, counts=None) -> None:
        self.push_screen(CategoryFilterScreen(selected, counts), self.filter_results.append)


def widget_text(widget) -> str:
    """What a widget shows, from its rendered lines."""
    region = Region(0, 0, widget.size.width, widget.size.height)
    return "\n".join(strip.text.rstrip() for strip in widget.render_lines(region))


def run(coro):
    return asyncio.run(coro)


# --- EventDetailScreen --------------------------------------------------------------------


def test_enter_opens_the_event_as_json_and_escape_closes():
    events = session_events()

    async def scenario():
        app = Host(events)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            await pilot.press("down", "down", "enter")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, EventDetailScreen) and screen.event is events[2]
            title = widget_text(screen.query_one("#detail-title"))
            assert title.startswith("2026-03-14 09:30:02.720 UTC  PreToolUse  file  session 4f6c1e2a-8b3d-4a7e-9c15-2d8e6f0b7a31")
            assert widget_text(screen.query_one("#detail-summary")) == "Read README.md"
            body = widget_text(screen.query_one("#detail-json"))
            assert '"event_type": "PreToolUse"' in body and '"tool_name": "Read"' in body
            assert json.loads(screen.json_text) == events[2].to_dict()
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen.query_one(Timeline), Timeline)
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, EventDetailScreen)
            await pilot.press("q")
            await pilot.pause()
            assert not isinstance(app.screen, EventDetailScreen)

    run(scenario())


def test_y_copies_the_json():
    events = session_events()

    async def scenario():
        app = Host(events)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
            assert app.copied == [app.screen.json_text]
            assert json.loads(app.copied[0])["event_type"] == "SessionStart"
            assert any("Copied" in str(n.message) for n in app._notifications)

    run(scenario())


def hostile_event() -> SessionEvent:
    return normalize(
        {
            "hook_event_name": "UserPromptSubmit",
            "session_id": "[bold]sess[/bold]",
            "timestamp": "2026-03-14T09:30:00Z",
            "prompt": "[bold]x[/] \x1b[31mred\x1b[0m \x9b2J \u202eevil \u2028next",
            "agent_type": "[i]agent[/i]",
        }
    )


def test_event_json_escapes_every_control_character():
    event = hostile_event()
    text = event_json(event)
    for raw in ("\x1b", "\x9b", "\u202e", "\u2028"):
        assert raw not in text
    for escaped in ("\\u001b[31m", "\\u009b2J", "\\u202eevil", "\\u2028next"):
        assert escaped in text
    assert json.loads(text) == event.to_dict()


def test_detail_shows_payload_text_literally():
    event = hostile_event()

    async def scenario():
        app = Host([event])
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            screen = app.screen
            title = widget_text(screen.query_one("#detail-title"))
            assert "session [bold]sess[/bold]" in title and "agent [i]agent[/i]" in title
            body = widget_text(screen.query_one("#detail-json"))
            assert "[bold]x[/] \\u001b[31mred" in body and "\\u009b2J" in body
            summary = widget_text(screen.query_one("#detail-summary"))
            assert summary.startswith("[bold]x[/] [31mred")
            for raw in ("\x1b", "\x9b", "\u202e", "\u2028"):
                assert raw not in title + body + summary

    run(scenario())


# --- CategoryFilterScreen ------------------------------------------------------------------


def test_category_filter_applies_cancels_and_all_means_none():
    counts = {"prompt": 2, "file": 12, "tool": 7, "custom": 1}

    async def scenario():
        app = Host(session_events())
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            app.open_filter(None, counts)
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, CategoryFilterScreen)
            assert screen.names == (*CATEGORIES, "custom")
            assert screen.selection == frozenset(screen.names)  # None: everything ticked
            await pilot.press("space")  # untick the highlighted first entry: prompt
            await pilot.press("enter")
            await pilot.pause()
            assert app.filter_results[-1] == frozenset(screen.names) - {"prompt"}

            app.open_filter(frozenset({"file"}), counts)
            await pilot.pause()
            assert app.screen.selection == {"file"}
            await pilot.press("down", "space")  # tick delegation too, then cancel
            await pilot.press("escape")
            await pilot.pause()
            assert app.filter_results[-1] == frozenset({"file"})  # unchanged

            app.open_filter(frozenset({"file"}), counts)
            await pilot.pause()
            await pilot.press("a", "enter")  # every category: no filter
            await pilot.pause()
            assert app.filter_results[-1] is None

            app.open_filter(None, None)
            await pilot.pause()
            await pilot.press("n", "enter")  # nothing chosen: refused, the screen stays
            await pilot.pause()
            assert isinstance(app.screen, CategoryFilterScreen) and len(app.filter_results) == 3
            await pilot.press("down", "down", "space", "enter")
            await pilot.pause()
            assert app.filter_results[-1] == frozenset({"tool"})

    run(scenario())


def test_category_filter_result_drives_the_timeline():
    events = session_events()

    async def scenario():
        app = Host(events)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            timeline = app.query_one(Timeline)

            def apply(result):
                timeline.categories = result

            app.push_screen(CategoryFilterScreen(timeline.categories), apply)
            await pilot.pause()
            await pilot.press("n", "down", "space", "enter")  # delegation only
            await pilot.pause()
            assert timeline.categories == {"delegation"} and timeline.matching_count == 8

    run(scenario())


# --- snapshots ----------------------------------------------------------------------------------


def test_snapshot_event_detail(snap_compare):
    async def run_before(pilot):
        await pilot.press(*["down"] * 19, "enter")  # PostToolUseFailure of the first pytest run
        await pilot.pause()

    assert snap_compare(Host(session_events()), terminal_size=(160, 48), run_before=run_before)


def test_snapshot_category_filter(snap_compare):
    events = session_events()
    counts: dict[str, int] = {}
    for event in events:
        counts[event.category] = counts.get(event.category, 0) + 1

    async def run_before(pilot):
        pilot.app.open_filter(frozenset({"prompt", "file", "tool", "response"}), counts)
        await pilot.pause()
        await pilot.press("down")

    assert snap_compare(Host(events), terminal_size=(160, 48), run_before=run_before)
