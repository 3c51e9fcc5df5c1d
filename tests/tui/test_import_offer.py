"""The session browser offers Claude Code's transcripts when the store is empty, and `i` imports them.

HOME points at a tmp dir whose ``.claude/projects`` holds the fixture transcripts
(tests/fixtures/transcripts), so the offer names ``~/.claude/projects`` on every run.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.tui.app import AggregateApp
from agent_aggregator.tui.importing import ImportProgress
from agent_aggregator.tui.screens.browser import IMPORTED_LABEL, BrowserScreen
from agent_aggregator.tui.widgets.timeline import Timeline

from conftest import SIZE, config, fixed_clock, wait_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts" / "projects"
NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=timezone.utc)
IDS = {"4f6c1e2a-8b3d-4a7e-9c15-2d8e6f0b7a99", "7d2e9b10-1c4f-4e2a-8b6d-3f5a7c9e1b20",
       "9a1c5e33-6d7b-4f80-a2c4-5e8b1d3f7a60"}


@pytest.fixture
def claude_home(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = workdir / "home"
    shutil.copytree(FIXTURES, home / ".claude" / "projects")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    return home


def browser(app: AggregateApp) -> BrowserScreen:
    screen = app.screen
    assert isinstance(screen, BrowserScreen)
    return screen


def empty_text(app: AggregateApp) -> str:
    return str(browser(app).query_one("#browser-empty", Static).render())


async def open_browser_with_offer(app: AggregateApp, pilot) -> None:
    await pilot.pause()
    await pilot.press("s")
    await wait_for(lambda: isinstance(app.screen, BrowserScreen) and browser(app).transcripts is not None, pilot)
    await pilot.pause()


async def test_the_empty_browser_offers_the_transcripts_and_i_imports_them(claude_home: Path) -> None:
    app = AggregateApp(config(), connect=False, clock=fixed_clock(NOW))
    async with app.run_test(size=SIZE) as pilot:
        await open_browser_with_offer(app, pilot)
        screen = browser(app)
        assert screen.transcripts == (3, "~/.claude/projects")
        assert "Found 3 Claude Code transcripts in ~/.claude/projects — press i to import" in empty_text(app)
        await pilot.press("i")
        await wait_for(lambda: not screen.importing and set(screen.shown_ids) == IDS, pilot)
        assert not screen.query_one(ImportProgress).has_class("-running")
        table = screen.query_one(DataTable)
        states = {str(table.get_row(sid)[0]) for sid in IDS}
        assert states == {IMPORTED_LABEL}
        notes = " ".join(str(n.message) for n in app._notifications)
        assert "Imported 3 new sessions, 56 events; 1 corrupt line skipped (first: 4f6c1e2a-" in notes
        assert ".jsonl:8)" in notes
        # Open one: its events are in the panes like any saved session.
        await pilot.press("enter")
        await wait_for(lambda: app.live_screen.current is not None and app.screen is app.live_screen, pilot)
        current = app.live_screen.current
        await wait_for(lambda: app.live_screen.query_one(Timeline).total_count == len(current.events), pilot)
        assert current.metadata["source"] == "transcript" and current.events
    assert len(list(Path("activity").glob("session_*.json"))) == 3


async def test_no_offer_and_no_key_without_transcripts(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(workdir / "empty-home"))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    app = AggregateApp(config(), connect=False, clock=fixed_clock(NOW))
    async with app.run_test(size=SIZE) as pilot:
        await open_browser_with_offer(app, pilot)
        assert browser(app).transcripts[0] == 0
        assert "Found" not in empty_text(app)
        assert browser(app).check_action("import_transcripts", ()) is False


async def test_import_goes_through_the_running_aggregator(claude_home: Path) -> None:
    """With the app writing the directory, the import uses its aggregator (no second writer)."""
    aggregator = EventAggregator(config=config())
    aggregator.start(connect=False)
    app = AggregateApp(aggregator.config, aggregator=aggregator, clock=fixed_clock(NOW))
    async with app.run_test(size=SIZE) as pilot:
        await open_browser_with_offer(app, pilot)
        await pilot.press("i")
        await wait_for(lambda: not browser(app).importing and set(browser(app).shown_ids) == IDS, pilot)
        assert aggregator.store.is_writer and aggregator.total_events == 56
    aggregator.stop()


def test_snapshot_offer(claude_home: Path, snap_compare) -> None:
    app = AggregateApp(config(), connect=False, clock=fixed_clock(NOW))

    async def run_before(pilot) -> None:
        await open_browser_with_offer(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
