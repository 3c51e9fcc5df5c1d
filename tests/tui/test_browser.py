"""BrowserScreen: every saved session, filtered, sorted, grouped, opened by id.

The rows are SessionSummary objects of real saved sessions (the fixture
streams fed through EventAggregator into a store, as tests/test_pipeline.py
does) plus a few synthetic ones with hostile text. A tiny host app pushes the
screen with a callback, as the real app does. Times are frozen and shown in UTC.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fixtures_builder as fb  # noqa: E402

from rich.text import Text  # noqa: E402
from textual.app import App  # noqa: E402
from textual.widgets import DataTable, Static  # noqa: E402
from textual.widgets.data_table import RowKey  # noqa: E402

from agent_aggregator.aggregator import EventAggregator  # noqa: E402
from agent_aggregator.config import Config  # noqa: E402
from agent_aggregator.describe import one_line  # noqa: E402
from agent_aggregator.model import SessionSummary  # noqa: E402
from agent_aggregator.store import SessionStore  # noqa: E402
from agent_aggregator.tui.screens.browser import (  # noqa: E402
    GROUP_KEY_PREFIX,
    LIVE_LABEL,
    BrowserScreen,
    FilterInput,
    SessionTable,
)

NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=timezone.utc)
SHOWN_DIR = "/home/dev/.claude-mpm/activity"  # fixed, so snapshots do not show tmp paths
HOSTILE_PROMPT = "render [bold]x[/] and \x1b[31mred\x1b[0m [link=http://e.vil]click[/link]"


# --- data --------------------------------------------------------------------------------


def saved_summaries(directory: Path) -> list[SessionSummary]:
    """Real sessions: the fixture streams through the aggregator into files, then listed.

    Listed before the aggregator stops, as a browser opened during capture sees
    them: claude-mpm sessions (which never send SessionEnd) are still active.
    """
    aggregator = EventAggregator(config=Config(activity_directory=directory))
    aggregator.start(connect=False)
    try:
        raw_streams = [
            fb.raw_hook_session(),
            fb.raw_hook_session(
                fb.det_uuid("browser", 1), "/home/dev/projects/service-0", NOW - timedelta(hours=4), agent_tool="Task"
            ),
        ]
        for stream in raw_streams:
            for timestamp, payload in stream:
                aggregator.handle_event({**payload, "timestamp": timestamp})
        mpm_streams = [
            fb.claude_mpm_session(),
            fb.claude_mpm_session(
                fb.det_uuid("browser", 2),
                "/Users/dana/work/service-1",
                NOW - timedelta(hours=2, minutes=50),
                include_non_session=False,
                subagent_id=fb.det_hex(7, "browser", 2),
            ),
        ]
        for stream in mpm_streams:
            for name, payload in stream:
                aggregator.handle_event(payload, name)
        for payload in fb.seed_envelope_events():
            aggregator.handle_event(payload, "claude_event")
        aggregator.save_all()
        return SessionStore(directory).list_sessions()
    finally:
        aggregator.stop()


def synthetic(
    session_id: str,
    *,
    project: str,
    start: datetime,
    prompt: str = "",
    events: int = 10,
    duration_ms: int = 60_000,
    status: str = "completed",
    agents: tuple[str, ...] = (),
    delegations: int = 0,
    files: int = 0,
) -> SessionSummary:
    return SessionSummary(
        session_id=session_id,
        start_time=start.isoformat(),
        end_time=None if status == "active" else (start + timedelta(milliseconds=duration_ms)).isoformat(),
        status=status,
        event_count=events,
        duration_ms=duration_ms,
        file_path=Path(f"/nowhere/{session_id}.json"),
        working_directory=f"/home/dev/projects/{project}",
        initial_prompt=prompt,
        agents_used=list(agents),
        delegation_count=delegations,
        files_modified_count=files,
        source="claude-code",
        hostname="devbox",
    )


def synthetic_summaries() -> list[SessionSummary]:
    return [
        synthetic(
            "syn-hostile-0001",
            project="alpha",
            start=NOW - timedelta(minutes=30),
            prompt=HOSTILE_PROMPT,
            events=3,
            duration_ms=5_000,
        ),
        synthetic(
            "syn-live-0002",
            project="beta",
            start=NOW - timedelta(minutes=5),
            prompt="Refactor the payment retry loop\nand add tests",
            events=250,
            duration_ms=290_000,
            status="active",
            agents=("engineer", "qa"),
            delegations=2,
            files=4,
        ),
        synthetic(
            "syn-old-0003",
            project="alpha",
            start=NOW - timedelta(days=400),
            prompt="Summarise last quarter's incidents",
            events=42,
            duration_ms=3_600_000 * 2,
            status="timed_out",
        ),
    ]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> list[SessionSummary]:
    return saved_summaries(tmp_path_factory.mktemp("activity"))


@pytest.fixture
def summaries(saved) -> list[SessionSummary]:
    return [*saved, *synthetic_summaries()]


# --- host app ----------------------------------------------------------------------------


class BrowserHost(App[None]):
    """Pushes a BrowserScreen on mount and records what it is dismissed with."""

    def __init__(self, provider: Callable[[], list[SessionSummary]], **screen_kwargs: Any) -> None:
        super().__init__()
        self.provider = provider
        self.screen_kwargs = {"clock": lambda: NOW, "directory": SHOWN_DIR, **screen_kwargs}
        self.results: list[str | None] = []
        self.browser: BrowserScreen | None = None

    def on_mount(self) -> None:
        self.browser = BrowserScreen(self.provider, **self.screen_kwargs)
        self.push_screen(self.browser, self.results.append)


def run(app: BrowserHost, body: Callable[[Any, BrowserScreen], Any], size: tuple[int, int] = (160, 48)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            assert app.browser is not None
            await body(pilot, app.browser)

    asyncio.run(main())


async def wait_until(condition: Callable[[], bool], pilot: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met within the timeout"
        await pilot.pause(0.05)


def by_time(items: list[SessionSummary], reverse: bool = True) -> list[str]:
    return [s.session_id for s in sorted(items, key=lambda s: (datetime.fromisoformat(s.start_time), s.session_id), reverse=reverse)]


def table_of(screen: BrowserScreen) -> SessionTable:
    return screen.query_one(SessionTable)


# --- tests -------------------------------------------------------------------------------


def test_lists_every_saved_session_newest_first(summaries):
    app = BrowserHost(lambda: summaries)

    async def body(pilot, screen):
        assert screen.shown_ids == by_time(summaries)
        assert len(summaries) == 8  # 2 raw-hook, 2 claude-mpm, 1 seed-envelope, 3 synthetic
        header = str(screen.query_one("#browser-header", Static).render())
        assert f"Sessions: {len(summaries)}" in header
        assert "in /home/dev/.claude-mpm/activity" in header
        assert "sort: time ↓" in header
        assert screen.focused is table_of(screen)

    run(app, body)


def test_cells_show_project_times_counts_and_literal_prompts(summaries):
    app = BrowserHost(lambda: summaries)

    async def body(pilot, screen):
        table = table_of(screen)
        raw = next(s for s in summaries if s.session_id == fb.RAW_SESSION_ID)
        state, project, started, duration, events, delegations, files, prompt = (
            cell.plain for cell in table.get_row(fb.RAW_SESSION_ID)
        )
        assert (state, project, started) == ("completed", "inventory-api", "2026-03-14 09:30")
        assert events == str(raw.event_count) and delegations == str(raw.delegation_count)
        assert files == str(raw.files_modified_count)
        assert prompt == one_line(raw.initial_prompt) and prompt
        hostile = table.get_row("syn-hostile-0001")
        assert all(isinstance(cell, Text) for cell in hostile)
        assert hostile[-1].plain.startswith("render [bold]x[/] and ")
        assert "\x1b" not in hostile[-1].plain and not hostile[-1].spans  # no markup became style
        assert "[link=http://e.vil]click[/link]" in hostile[-1].plain
        multi_line = table.get_row("syn-live-0002")[-1].plain
        assert multi_line == "Refactor the payment retry loop and add tests"
        assert table.get_row("syn-old-0003")[3].plain == "2h 0m"

    run(app, body)


def test_live_ids_are_marked_live_and_quiet_active_sessions_idle(summaries):
    app = BrowserHost(lambda: summaries, live_ids=lambda: {"syn-live-0002"})

    async def body(pilot, screen):
        table = table_of(screen)
        assert table.get_row("syn-live-0002")[0].plain == LIVE_LABEL
        # claude-mpm sessions never end: saved as active, silent for a day by NOW -> idle.
        assert table.get_row(fb.MPM_SESSION_ID)[0].plain == "idle"
        assert "1 live" in str(screen.query_one("#browser-header", Static).render())

    run(app, body)

    app = BrowserHost(lambda: summaries)  # not live: an active session that spoke lately

    async def not_live(pilot, screen):
        assert table_of(screen).get_row("syn-live-0002")[0].plain == "active"
        assert "live" not in str(screen.query_one("#browser-header", Static).render())

    run(app, not_live)


def test_filter_narrows_rows_case_insensitively(summaries):
    app = BrowserHost(lambda: summaries)

    async def body(pilot, screen):
        await pilot.press("slash")
        assert isinstance(screen.focused, FilterInput)
        await pilot.press(*"BILLING")  # project (claude-mpm's cwd is billing-service)
        await pilot.pause()
        assert screen.shown_ids == [fb.MPM_SESSION_ID]
        header = str(screen.query_one("#browser-header", Static).render())
        assert f"Sessions: {len(summaries)} (1 shown)" in header

        screen.query_one(FilterInput).value = "qa"  # an agent used
        await pilot.pause()
        assert screen.shown_ids == ["syn-live-0002"]

        screen.query_one(FilterInput).value = "payment retry"  # every word, anywhere
        await pilot.pause()
        assert screen.shown_ids == ["syn-live-0002"]

        screen.query_one(FilterInput).value = fb.RAW_SESSION_ID[:8]  # id prefix
        await pilot.pause()
        assert screen.shown_ids == [fb.RAW_SESSION_ID]

        screen.query_one(FilterInput).value = "[bold]x"  # literal text, not markup
        await pilot.pause()
        assert screen.shown_ids == ["syn-hostile-0001"]

        screen.query_one(FilterInput).value = "no such thing anywhere"
        await pilot.pause()
        assert screen.shown_ids == []
        empty = str(screen.query_one("#browser-empty", Static).render())
        assert "No session matches" in empty and screen.has_class("-no-match")

        await pilot.press("escape")  # clears and returns to the table
        await pilot.pause()
        assert screen.query_one(FilterInput).value == ""
        assert screen.focused is table_of(screen)
        assert screen.shown_ids == by_time(summaries)
        assert app.results == []  # escape in the input did not close the browser

    run(app, body)


def test_enter_in_filter_keeps_it_and_goes_to_the_list(summaries):
    app = BrowserHost(lambda: summaries)

    async def body(pilot, screen):
        await pilot.press("slash", *"alpha", "enter")
        await pilot.pause()
        assert screen.focused is table_of(screen)
        assert set(screen.shown_ids) == {"syn-hostile-0001", "syn-old-0003"}
        await pilot.press("enter")
        await pilot.pause()
        assert app.results == ["syn-hostile-0001"]

    run(app, body)


def test_sort_keys_reorder_and_reverse(summaries):
    app = BrowserHost(lambda: summaries)

    def order(key: Callable[[SessionSummary], Any], reverse: bool) -> list[str]:
        return [
            s.session_id
            for s in sorted(
                summaries,
                key=lambda s: (key(s), datetime.fromisoformat(s.start_time), s.session_id),
                reverse=reverse,
            )
        ]

    async def body(pilot, screen):
        header = screen.query_one("#browser-header", Static)
        await pilot.press("n")  # e exports
        assert screen.shown_ids == order(lambda s: s.event_count, True)
        assert screen.shown_ids[0] == "syn-live-0002"  # 250 events
        assert "sort: events ↓" in str(header.render())
        await pilot.press("n")
        assert screen.shown_ids == order(lambda s: s.event_count, False)
        assert "sort: events ↑" in str(header.render())
        await pilot.press("d")
        assert screen.shown_ids == order(lambda s: s.duration_ms, True)
        assert screen.shown_ids[0] == "syn-old-0003"  # 2 hours
        await pilot.press("t")
        assert screen.shown_ids == by_time(summaries)
        await pilot.press("t")
        assert screen.shown_ids == by_time(summaries, reverse=False)
        assert screen.shown_ids[0] == "syn-old-0003"  # last year
        # The table's rows really are in that order (not just the bookkeeping).
        table = table_of(screen)
        keys = [table.coordinate_to_cell_key((row, 0)).row_key.value for row in range(table.row_count)]
        assert keys == screen.shown_ids

    run(app, body)


def test_grouping_by_project(summaries):
    app = BrowserHost(lambda: summaries)

    async def body(pilot, screen):
        table = table_of(screen)
        await pilot.press("g")
        keys = [table.coordinate_to_cell_key((row, 0)).row_key.value for row in range(table.row_count)]
        headers = [key for key in keys if key.startswith(GROUP_KEY_PREFIX)]
        projects = [key[len(GROUP_KEY_PREFIX):] for key in headers]
        assert projects == sorted({s.project.casefold() for s in summaries})
        # Each header is followed by its sessions, newest first, and says how many.
        alpha = keys.index(GROUP_KEY_PREFIX + "alpha")
        assert keys[alpha + 1 : alpha + 3] == ["syn-hostile-0001", "syn-old-0003"]
        assert [cell.plain for cell in table.get_row(GROUP_KEY_PREFIX + "alpha")][1:3] == ["alpha", "2 sessions"]
        assert "by project" in str(screen.query_one("#browser-header", Static).render())

        # The cursor stays on the session it was on, and never rests on a header.
        assert screen.selected_id == by_time(summaries)[0]
        await pilot.press("ctrl+home")
        assert table.cursor_row == 1  # row 0 is the first header
        await pilot.press("up")
        assert table.cursor_row == 1
        second_header = keys.index(headers[1])
        for _ in range(second_header - 2):
            await pilot.press("down")
        assert table.cursor_row == second_header - 1
        await pilot.press("down")
        assert table.cursor_row == second_header + 1  # stepped over the header
        await pilot.press("up")
        assert table.cursor_row == second_header - 1

        # enter on a header (say, a click that selected it) does nothing.
        table.post_message(DataTable.RowSelected(table, 0, RowKey(headers[0])))
        await pilot.pause()
        assert app.results == [] and app.screen is screen

        await pilot.press("g")  # back to a flat list
        assert screen.shown_ids == by_time(summaries)
        assert table.row_count == len(summaries)

    run(app, body)


def test_enter_dismisses_with_the_session_id(summaries):
    app = BrowserHost(lambda: summaries)

    async def body(pilot, screen):
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert app.results == [by_time(summaries)[2]]
        assert app.screen is not screen

    run(app, body)


def test_double_click_opens_a_session(summaries):
    app = BrowserHost(lambda: summaries)

    async def body(pilot, screen):
        await pilot.double_click(SessionTable, offset=(20, 4))  # header line, then rows 0..
        await pilot.pause()
        assert app.results == [by_time(summaries)[3]]

    run(app, body)


@pytest.mark.parametrize("key", ["escape", "s"])
def test_escape_and_s_dismiss_with_none(summaries, key):
    app = BrowserHost(lambda: summaries)

    async def body(pilot, screen):
        await pilot.press(key)
        await pilot.pause()
        assert app.results == [None]
        assert app.screen is not screen

    run(app, body)


def test_refresh_keeps_the_cursor_on_the_same_session(summaries):
    rows = list(summaries)
    app = BrowserHost(lambda: rows)

    async def body(pilot, screen):
        table = table_of(screen)
        await pilot.press("down", "down", "down")
        chosen = screen.selected_id
        assert chosen == by_time(summaries)[3]

        newer = [
            synthetic(f"syn-new-{n}", project="gamma", start=NOW - timedelta(seconds=n), prompt="new")
            for n in range(3)
        ]
        rows[:0] = newer
        screen.refresh_rows()
        await pilot.pause()
        assert screen.shown_ids[:3] == ["syn-new-0", "syn-new-1", "syn-new-2"]
        assert screen.selected_id == chosen and table.cursor_row == 6

        rows.remove(next(s for s in rows if s.session_id == by_time(summaries)[0]))  # one above goes away
        screen.refresh_rows()
        await pilot.pause()
        assert screen.selected_id == chosen and table.cursor_row == 5

        # The session under the cursor changes: its row is updated in place.
        index = next(i for i, s in enumerate(rows) if s.session_id == chosen)
        rows[index] = replace(rows[index], event_count=rows[index].event_count + 7)
        screen.refresh_rows()
        await pilot.pause()
        assert table.get_row(chosen)[4].plain == str(rows[index].event_count)
        assert screen.selected_id == chosen

        rows.remove(rows[index])  # the session under the cursor goes: the cursor stays put
        screen.refresh_rows()
        await pilot.pause()
        assert table.cursor_row == 5 and screen.selected_id not in (None, chosen)

    run(app, body)


def test_ten_thousand_sessions_refresh_without_rebuilding_unchanged_rows():
    base = NOW - timedelta(days=30)
    rows = [
        synthetic(
            f"bulk-{n:05d}",
            project=f"project-{n % 37}",
            start=base + timedelta(minutes=n),
            prompt=f"task number {n}",
            events=n % 500,
            duration_ms=n * 1000,
        )
        for n in range(10_000)
    ]
    app = BrowserHost(lambda: rows)
    calls: dict[str, int] = {}

    def count(table: SessionTable, name: str) -> None:
        original = getattr(table, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return original(*args, **kwargs)

        setattr(table, name, wrapper)

    async def body(pilot, screen):
        table = table_of(screen)
        assert table.row_count == 10_000
        for name in ("add_row", "update_cell", "remove_row", "clear", "sort", "add_column"):
            count(table, name)
        await pilot.press("down", "down")
        chosen = screen.selected_id

        # Same sessions, new objects (as a store re-read gives): nothing is touched.
        rows[:] = [replace(s) for s in rows]
        screen.refresh_rows()
        assert calls == {}

        # One session changes: one cell is updated, nothing else.
        rows[5] = replace(rows[5], event_count=rows[5].event_count + 1)
        screen.refresh_rows()
        assert calls == {"update_cell": 1}

        # One new session: one row added, then put in place (one sort, no rebuild).
        calls.clear()
        rows.append(synthetic("bulk-new", project="project-1", start=NOW, prompt="fresh"))
        screen.refresh_rows()
        assert calls == {"add_row": 1, "sort": 1}
        assert screen.shown_ids[0] == "bulk-new" and screen.selected_id == chosen

        # One goes away: one row removed.
        calls.clear()
        del rows[0]
        screen.refresh_rows()
        assert calls == {"remove_row": 1}
        assert table.row_count == 10_000 and screen.selected_id == chosen

        # With this many sessions the filter applies after a pause in typing.
        screen.query_one(FilterInput).value = "bulk-0999"
        await wait_until(lambda: len(screen.shown_ids) == 10, pilot)
        assert screen.shown_ids == [f"bulk-0{n}" for n in range(9999, 9989, -1)]

    run(app, body)


def test_empty_store_says_where_sessions_will_appear_then_shows_them(summaries):
    rows: list[SessionSummary] = []
    app = BrowserHost(lambda: rows)

    async def body(pilot, screen):
        assert screen.has_class("-no-sessions") and screen.focused is None
        message = str(screen.query_one("#browser-empty", Static).render())
        assert message == (
            "No saved sessions yet in /home/dev/.claude-mpm/activity. Sessions appear here as agents work."
        )
        await pilot.press("enter")
        assert app.results == []

        rows.extend(summaries)  # the first sessions arrive
        screen.refresh_rows()
        await pilot.pause()
        assert not screen.has_class("-no-sessions")
        assert screen.focused is table_of(screen) and screen.shown_ids == by_time(summaries)

        await pilot.press("escape")  # and escape goes back, as from an empty store
        await pilot.pause()
        assert app.results == [None]

    run(app, body)


def test_escape_leaves_an_empty_browser():
    app = BrowserHost(lambda: [])

    async def body(pilot, screen):
        await pilot.press("escape")
        await pilot.pause()
        assert app.results == [None]

    run(app, body)


def test_directory_comes_from_a_store_provider(tmp_path):
    store = SessionStore(tmp_path)
    screen = BrowserScreen(store.list_sessions)
    assert screen.directory == str(tmp_path)
    assert BrowserScreen(lambda: []).directory is None


def test_narrow_terminal_keeps_the_prompt_readable(summaries):
    app = BrowserHost(lambda: summaries)

    async def body(pilot, screen):
        table = table_of(screen)
        assert [str(column.key.value) for column in table.ordered_columns] == [
            "state", "project", "started", "duration", "events", "prompt",
        ]
        assert table.get_row(fb.RAW_SESSION_ID)[2].plain == "03-14 09:30"
        assert table.get_row("syn-old-0003")[2].plain == "2025-02-08"  # another year: the date
        assert table.columns[table.ordered_columns[-1].key].width >= 15
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        assert len(table.ordered_columns) == 8
        assert table.row_count == len(summaries)

    run(app, body, size=(80, 24))


def test_refresh_before_mount_is_harmless(summaries):
    """The app's timer may call refresh_rows before the screen is up."""
    calls = []

    def provider() -> list[SessionSummary]:
        calls.append(1)
        return summaries

    screen = BrowserScreen(provider, clock=lambda: NOW)
    screen.refresh_rows()
    assert calls == [1] and screen.total_count == len(summaries)


# --- snapshots ---------------------------------------------------------------------------


def snapshot_app(summaries: list[SessionSummary]) -> BrowserHost:
    return BrowserHost(lambda: summaries, live_ids=lambda: {"syn-live-0002"})


def test_snapshot_browser_wide(snap_compare, summaries):
    assert snap_compare(snapshot_app(summaries), terminal_size=(160, 48))


def test_snapshot_browser_narrow(snap_compare, summaries):
    assert snap_compare(snapshot_app(summaries), terminal_size=(80, 24), press=["down"])


def test_snapshot_browser_grouped_and_filtered(snap_compare, summaries):
    assert snap_compare(
        snapshot_app(summaries), terminal_size=(160, 48), press=["g", "slash", *"service", "enter", "down"]
    )


def test_snapshot_browser_empty(snap_compare):
    assert snap_compare(BrowserHost(lambda: []), terminal_size=(80, 24))

