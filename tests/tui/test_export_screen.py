"""The export dialog: every control by keyboard (and the mouse where it matters), from the
live screen and the browser, against real stores; files written are parsed back.

Waits poll the app's state (no timing assertions). The default destination's directory is
pinned to ``exports`` (relative to the tmp working directory) for the snapshots.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import SIZE, config, fixed_clock, wait_for
from textual.app import App, ComposeResult
from textual.widgets import Button, DataTable, Input, ProgressBar, RadioButton, Static

import fixtures_builder as fb
from agent_aggregator.describe import project_name
from agent_aggregator.model import AgentSession
from agent_aggregator.normalize import normalize
from agent_aggregator.tracker import SessionTracker
from agent_aggregator.tui.app import AggregateApp
from agent_aggregator.tui.screens.browser import BrowserScreen
from agent_aggregator.tui.screens.export import ChoiceSet, ExportScreen, ExportTarget
from agent_aggregator.tui.screens.live import LiveScreen
from agent_aggregator.tui.widgets.timeline import Timeline

NOON = datetime(2026, 3, 14, 12, 0, tzinfo=timezone.utc)
RAW_START = "20260314_093000"  # the raw-hook fixture session's start, UTC


def saved_app(store) -> AggregateApp:
    return AggregateApp(store, connect=False, clock=fixed_clock(NOON))


def dialog(app: App) -> ExportScreen:
    screen = app.screen
    assert isinstance(screen, ExportScreen)
    return screen


def status(app: App) -> str:
    return str(dialog(app).query_one("#export-status", Static).render())


def go_button(app: App) -> Button:
    return dialog(app).query_one("#export-go", Button)


async def show(app: AggregateApp, pilot, session_id: str) -> None:
    """Show a session in the panes and wait until every pane has it.

    Through ``open_session`` (what the browser's enter does), not arrow keys: the 4 Hz
    refresh puts the cursor back on the selected row when it ticks between a key and
    its RowHighlighted message, so arrow-key navigation here would be flaky.
    """
    await wait_for(lambda: app.live_screen.current is not None, pilot)  # mounted, listed, one session shown
    table = app.live_screen.query_one("#sessions", DataTable)
    await wait_for(lambda: session_id in table.rows, pilot)
    app.live_screen.open_session(session_id)
    await pilot.press("1")
    current = lambda: app.live_screen.current  # noqa: E731

    await wait_for(
        lambda: current() is not None and current().session_id == session_id
        and app.live_screen.query_one(Timeline).total_count == len(current().events)
        and len(app.live_screen.query_one("#delegations", DataTable).rows) == len(current().delegations),
        pilot,
    )
    await pilot.pause()


async def open_export(app: App, pilot, key: str = "e") -> ExportScreen:
    await pilot.press(key)
    await wait_for(lambda: isinstance(app.screen, ExportScreen), pilot)
    await pilot.pause()
    return dialog(app)


async def finished(app: App, pilot) -> None:
    """The export worker is done (written, refused, failed or stopped)."""
    await wait_for(lambda: not dialog(app).running and not go_button(app).disabled, pilot)
    await pilot.pause()


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> Path:
    """Default destinations go to ./exports (a fixed relative path: the same on every run)."""
    monkeypatch.setattr(ExportScreen, "DIRECTORY", Path("exports"))
    return workdir / "exports"


# --- opening ------------------------------------------------------------------------------------


async def test_e_opens_the_dialog_on_the_shown_session(saved_store, workdir):
    app = saved_app(saved_store)
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fb.RAW_SESSION_ID)
        screen = await open_export(app, pilot)
        assert screen.target.session_id == fb.RAW_SESSION_ID and screen.target.event_count == 40
        destination = screen.query_one("#export-path", Input).value
        assert destination == str(workdir / f"session_4f6c1e2a_{RAW_START}_full.json")  # <cwd>/..., as the CLI names it
        assert app.focused is screen.query_one("#export-format", ChoiceSet)
        assert screen.query_one("#format-full", RadioButton).value
        assert screen.query_one("#scope-whole", RadioButton).value
        assert screen.query_one("#scope-filtered", RadioButton).disabled  # no filter on the timeline
        assert "Export session 4f6c1e2a · inventory-api" in str(screen.query_one("#export-dialog").border_title)
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, LiveScreen), pilot)
        assert list(workdir.glob("session_*")) == []


async def test_e_does_nothing_while_waiting_for_a_session(workdir):
    app = AggregateApp(config(), connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.live_screen.has_class("-waiting")
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, LiveScreen)


# --- keyboard: format, destination, enter ---------------------------------------------------------


async def test_keyboard_only_html_export(saved_store, exports):
    app = saved_app(saved_store)
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fb.RAW_SESSION_ID)
        screen = await open_export(app, pilot)
        path = screen.query_one("#export-path", Input)
        await pilot.press("down")
        assert screen.fmt == "summary" and path.value == f"exports/session_4f6c1e2a_{RAW_START}_summary.json"
        await pilot.press("down", "down", "down", "down")  # events, csv, markdown, html
        assert screen.fmt == "html" and path.value.endswith("_html.html")
        await pilot.press("enter")  # the enter right behind the arrows exports what they chose
        await finished(app, pilot)
        written = exports / f"session_4f6c1e2a_{RAW_START}_html.html"
        assert written.read_bytes().startswith(b"<!DOCTYPE html>")
        assert screen.written == Path(path.value)
        size = written.stat().st_size
        assert status(app) == f"✓ Wrote {path.value} ({size / 1024:.1f} KB)"
        bar = screen.query_one("#export-progress", ProgressBar)
        assert bar.total == 40 and bar.progress == 40
        cancel = screen.query_one("#export-cancel", Button)
        assert str(cancel.label) == "Close" and app.focused is cancel
        await pilot.press("enter")  # Close
        await wait_for(lambda: isinstance(app.screen, LiveScreen), pilot)


async def test_arrows_wrap_and_space_chooses(saved_store, exports):
    app = saved_app(saved_store)
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fb.RAW_SESSION_ID)
        screen = await open_export(app, pilot)
        await pilot.press("up")  # from full back to html
        assert screen.fmt == "html"
        await pilot.press("right", "right")  # full, summary
        assert screen.fmt == "summary"
        await pilot.press("space")
        assert screen.fmt == "summary" and screen.query_one("#format-summary", RadioButton).value


async def test_an_edited_destination_is_kept_when_the_format_changes(saved_store, exports, workdir):
    app = saved_app(saved_store)
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fb.RAW_SESSION_ID)
        screen = await open_export(app, pilot)
        await pilot.press("tab", "tab")  # format -> scope -> destination
        path = screen.query_one("#export-path", Input)
        assert app.focused is path
        await pilot.press("ctrl+u", *"mine.txt")
        await pilot.press("shift+tab", "shift+tab")
        assert app.focused is screen.query_one("#export-format", ChoiceSet)
        await pilot.press("down")
        assert screen.fmt == "summary" and path.value == "mine.txt"
        await pilot.press("enter")
        await finished(app, pilot)
        document = json.loads((workdir / "mine.txt").read_bytes())
        assert document["session_id"] == fb.RAW_SESSION_ID and "events" not in document
        assert document["summary"]["total_events"] == 40


async def test_a_directory_destination_gets_the_default_name(saved_store, exports, workdir):
    (workdir / "outdir").mkdir()
    app = saved_app(saved_store)
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fb.RAW_SESSION_ID)
        screen = await open_export(app, pilot)
        await pilot.press("tab", "tab", "ctrl+u", *"outdir", "enter")  # enter in the box exports
        await finished(app, pilot)
        written = workdir / "outdir" / f"session_4f6c1e2a_{RAW_START}_full.json"
        assert json.loads(written.read_bytes())["session_id"] == fb.RAW_SESSION_ID
        assert screen.written == Path("outdir") / written.name


async def test_mouse_chooses_and_exports(saved_store, exports):
    app = saved_app(saved_store)
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fb.RAW_SESSION_ID)
        screen = await open_export(app, pilot)
        await pilot.click("#format-csv")
        await wait_for(lambda: screen.fmt == "csv", pilot)
        assert screen.query_one("#export-path", Input).value.endswith("_csv.csv")
        await pilot.click("#export-go")
        await finished(app, pilot)
        rows = list(csv.reader(io.StringIO((exports / f"session_4f6c1e2a_{RAW_START}_csv.csv").read_text(), newline="")))
        assert len(rows) == 41 and rows[0][0] == "timestamp"
        await pilot.click("#export-cancel")  # now "Close"
        await wait_for(lambda: isinstance(app.screen, LiveScreen), pilot)


# --- scope -------------------------------------------------------------------------------------------


async def test_filtered_scope_writes_what_the_timeline_matches(saved_store, exports):
    app = saved_app(saved_store)
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fb.RAW_SESSION_ID)
        await pilot.press("slash", *"orders.py", "enter")
        timeline = app.live_screen.query_one(Timeline)
        await wait_for(lambda: not timeline.filtering and timeline.matching_count < timeline.total_count, pilot)
        matching = timeline.matching_events()
        assert 0 < len(matching) < 40
        screen = await open_export(app, pilot)
        filtered = screen.query_one("#scope-filtered", RadioButton)
        assert not filtered.disabled and str(filtered.label) == f"Filtered: {len(matching)} of 40 events"
        assert 'search "orders.py"' in str(screen.query_one("#export-scope-note", Static).render())
        await pilot.press("down", "down")  # events
        await pilot.press("tab", "down")  # scope: filtered
        assert screen.scope == "filtered"
        await pilot.press("enter")
        await finished(app, pilot)
        events = json.loads((exports / f"session_4f6c1e2a_{RAW_START}_events.json").read_bytes())
        assert [event["event_id"] for event in events] == [event.event_id for event in matching]


async def test_disabled_filtered_scope_cannot_be_chosen(saved_store, exports):
    app = saved_app(saved_store)
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fb.RAW_SESSION_ID)
        screen = await open_export(app, pilot)
        await pilot.press("tab", "down", "space")
        assert screen.scope == "whole" and screen.query_one("#scope-whole", RadioButton).value


# --- existing files and errors --------------------------------------------------------------------


async def test_an_existing_file_is_replaced_only_after_a_second_press(saved_store, exports):
    exports.mkdir()
    target = exports / f"session_4f6c1e2a_{RAW_START}_full.json"
    target.write_text("keep me")
    app = saved_app(saved_store)
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fb.RAW_SESSION_ID)
        screen = await open_export(app, pilot)
        await pilot.press("enter")
        await finished(app, pilot)
        assert target.read_text() == "keep me"
        assert "exists. Press Overwrite" in status(app)
        assert str(go_button(app).label) == "Overwrite" and app.focused is go_button(app)
        await pilot.press("enter")  # the Overwrite button
        await finished(app, pilot)
        assert json.loads(target.read_bytes())["session_id"] == fb.RAW_SESSION_ID
        assert status(app).startswith("✓ Wrote ") and str(go_button(app).label) == "Export"
        assert screen.written == Path("exports") / target.name


async def test_changing_the_format_withdraws_the_overwrite(saved_store, exports):
    exports.mkdir()
    (exports / f"session_4f6c1e2a_{RAW_START}_full.json").write_text("keep me")
    app = saved_app(saved_store)
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fb.RAW_SESSION_ID)
        screen = await open_export(app, pilot)
        await pilot.press("enter")
        await finished(app, pilot)
        assert str(go_button(app).label) == "Overwrite"
        screen.query_one("#export-format", ChoiceSet).focus()
        await pilot.press("down")
        assert str(go_button(app).label) == "Export" and status(app) == ""


async def test_an_unwritable_destination_is_one_line_in_the_dialog(saved_store, exports, workdir):
    (workdir / "plain-file").write_text("x")
    app = saved_app(saved_store)
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, fb.RAW_SESSION_ID)
        screen = await open_export(app, pilot)
        await pilot.press("tab", "tab", "ctrl+u", *"plain-file/inside/x.json", "enter")
        await finished(app, pilot)
        text = status(app)
        assert text.startswith("✕ cannot write plain-file/inside/x.json: ") and "\n" not in text
        assert "plain-file" in (screen.last_error or "")
        assert isinstance(app.screen, ExportScreen) and screen.written is None
        assert app.focused is screen.query_one("#export-path", Input)
        assert str(screen.query_one("#export-cancel", Button).label) == "Cancel"
        await pilot.press("ctrl+u", "enter")
        await pilot.pause()
        assert status(app) == "Choose a file to write (the destination is empty)."
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, LiveScreen), pilot)


# --- the browser ---------------------------------------------------------------------------------------


async def test_e_in_the_browser_exports_the_session_under_the_cursor(saved_store, exports):
    app = saved_app(saved_store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.live_screen.current is not None, pilot)
        await pilot.press("s")
        await wait_for(lambda: isinstance(app.screen, BrowserScreen) and len(app.screen.shown_ids) == 3, pilot)
        browser = app.screen
        for _ in range(4):
            if browser.selected_id == fb.MPM_SESSION_ID:
                break
            await pilot.press("down")
        assert browser.selected_id == fb.MPM_SESSION_ID
        screen = await open_export(app, pilot)
        assert screen.target.session_id == fb.MPM_SESSION_ID
        assert screen.query_one("#scope-filtered", RadioButton).disabled
        assert "Open the session" in str(screen.query_one("#export-scope-note", Static).render())
        await pilot.press("up", "enter")  # html
        await finished(app, pilot)
        written = exports / "session_9d3e7a41_20260314_100500_html.html"
        assert fb.MPM_SESSION_ID.encode() in written.read_bytes()
        await pilot.press("escape")
        await wait_for(lambda: app.screen is browser, pilot)


# --- a live session -----------------------------------------------------------------------------------


async def test_a_live_session_is_exported_as_it_was_when_e_was_pressed(live_aggregator, exports):
    app = AggregateApp(live_aggregator.config, aggregator=live_aggregator, clock=fixed_clock(NOON + timedelta(days=1)))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.live_screen.current is not None and app.live_screen.current.status == "active", pilot)
        session = app.live_screen.current
        with live_aggregator.lock:
            count = len(session.events)
        screen = await open_export(app, pilot)
        assert screen.target.event_count == count
        await pilot.press("enter")
        await finished(app, pilot)
        document = json.loads(Path(str(screen.written)).read_bytes())
        assert document["session_id"] == session.session_id and document["status"] == "active"
        assert len(document["events"]) == count


# --- progress and stop (a host app with a hand-made target) -----------------------------------------------


def many_events(count: int) -> AgentSession:
    start = datetime(2026, 3, 14, 9, 0, tzinfo=timezone.utc)
    session = AgentSession("many-events", start)
    for index in range(count):
        session.add_event("PreToolUse", {"tool_name": "Bash", "tool_input": {"command": f"echo {index}"}},
                          (start + timedelta(milliseconds=index)).isoformat())
    return session


class Host(App[None]):
    def __init__(self, target: ExportTarget, directory: Path = Path("out")) -> None:
        super().__init__()
        self.target = target
        self.directory = directory
        self.result: list[Path | None] = []

    def compose(self) -> ComposeResult:
        yield Static("host")

    def on_mount(self) -> None:
        self.push_screen(ExportScreen(self.target, directory=self.directory), self.result.append)


async def test_progress_bar_counts_every_event(workdir):
    session = many_events(3500)
    target = ExportTarget(session.session_id, session.start_time, len(session.events), lambda: session)
    app = Host(target)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, ExportScreen), pilot)
        await pilot.press(*["down"] * 4, "enter")  # markdown
        await finished(app, pilot)
        bar = dialog(app).query_one("#export-progress", ProgressBar)
        assert bar.total == 3500 and bar.progress == 3500
        assert (workdir / "out" / "session_many-eve_20260314_090000_markdown.md").exists()
        await pilot.press("escape")
        await wait_for(lambda: app.result != [], pilot)
        assert app.result == [Path("out/session_many-eve_20260314_090000_markdown.md")]


async def test_stop_while_loading_writes_nothing(workdir):
    session = many_events(10)
    release = threading.Event()
    loading = threading.Event()

    def load() -> AgentSession:
        loading.set()
        release.wait(30)
        return session

    app = Host(ExportTarget(session.session_id, session.start_time, 10, load))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, ExportScreen), pilot)
        await pilot.press("enter")
        await wait_for(loading.is_set, pilot)
        assert dialog(app).running and status(app) == "Loading the session…"
        assert str(dialog(app).query_one("#export-cancel", Button).label) == "Stop"
        await pilot.press("escape")  # stop, do not close
        assert isinstance(app.screen, ExportScreen)
        release.set()
        await wait_for(lambda: status(app) == "Stopped: nothing was written.", pilot)
        assert not (workdir / "out").exists()
        await pilot.press("escape")
        await wait_for(lambda: app.result == [None], pilot)


class TimelineHost(App[None]):
    def __init__(self, session: AgentSession) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        yield Timeline(id="timeline")

    def on_mount(self) -> None:
        self.query_one(Timeline).show(self.session.events)


async def test_matching_events_finishes_the_filter_first():
    session = many_events(20_000)
    for index, event in enumerate(session.events):
        if index % 7 == 0:
            event.category = "file"
    app = TimelineHost(session)
    async with app.run_test(size=SIZE) as pilot:
        timeline = app.query_one(Timeline)
        await pilot.pause()
        assert not timeline.filter_active and timeline.matching_events() == session.events
        timeline.categories = {"file"}
        timeline.search = "echo 1"  # a long session may still be filtering now: the call completes it
        expected = [e for e in session.events if e.category == "file" and "echo 1" in e.data["tool_input"]["command"]]
        assert timeline.filter_active
        assert timeline.matching_events() == expected
        assert not timeline.filtering and timeline.matching_count == len(expected)


# --- snapshots ------------------------------------------------------------------------------------------------


def test_snapshot_export_dialog_with_a_filter(saved_store, exports, snap_compare):
    app = saved_app(saved_store)

    async def run_before(pilot) -> None:
        await show(app, pilot, fb.RAW_SESSION_ID)
        await pilot.press("slash", *"orders.py", "enter")
        timeline = app.live_screen.query_one(Timeline)
        await wait_for(lambda: not timeline.filtering and timeline.matching_count < timeline.total_count, pilot)
        await open_export(app, pilot)
        await pilot.press("tab", "down")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def recorded_target() -> ExportTarget:
    """The raw-hook fixture session as the tracker records it, ready to export."""
    tracker = SessionTracker()
    for timestamp, payload in fb.raw_hook_session():
        tracker.apply(normalize({**payload, "timestamp": timestamp}))
    session = tracker.sessions[fb.RAW_SESSION_ID]
    return ExportTarget(session.session_id, session.start_time, len(session.events), lambda: session,
                        project=project_name(session.working_directory))


# The next two sit on a plain host screen: behind a modal, the live panes' focus styling
# depends on whether a refresh tick repainted them after the dialog took the focus.


def test_snapshot_export_written(workdir, snap_compare):
    app = Host(recorded_target(), directory=Path("exports"))

    async def run_before(pilot) -> None:
        await wait_for(lambda: isinstance(app.screen, ExportScreen), pilot)
        await pilot.press("down", "down", "down", "enter")  # csv: no host name inside, the size is stable
        await finished(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_export_asks_before_overwriting(workdir, snap_compare):
    exports = workdir / "exports"
    exports.mkdir()
    (exports / f"session_4f6c1e2a_{RAW_START}_full.json").write_text("keep me")
    app = Host(recorded_target(), directory=Path("exports"))

    async def run_before(pilot) -> None:
        await wait_for(lambda: isinstance(app.screen, ExportScreen), pilot)
        await pilot.press("enter")
        await finished(app, pilot)

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)
