"""The session browser across machines (issue 10): a machine column when sessions come from
more than one machine, grouping by machine (``g`` cycles project -> machine -> flat), and the
filter matching the machine name. Sessions are SessionSummary rows as the store lists them."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from rich.text import Text
from textual.app import App
from textual.widgets import Static

from agent_aggregator.model import SessionSummary
from agent_aggregator.tui.screens.browser import GROUP_KEY_PREFIX, BrowserScreen, SessionTable

NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=timezone.utc)
SHOWN_DIR = "/home/dev/.claude-mpm/activity"


def row(session_id: str, project: str, machine: str | None, minutes_ago: int) -> SessionSummary:
    start = NOW - timedelta(minutes=minutes_ago)
    return SessionSummary(
        session_id=session_id, start_time=start.isoformat(), end_time=(start + timedelta(seconds=30)).isoformat(),
        status="completed", event_count=10 + minutes_ago, duration_ms=30_000,
        file_path=Path(f"/nowhere/{session_id}.json"), working_directory=f"/home/dev/{project}",
        initial_prompt=f"work on {project}", source="claude-code", hostname=machine,
    )


TEAM = [
    row("lap-1", "api", "laptop", 5),
    row("ci-1", "api", "ci-runner-7", 10),
    row("lap-2", "web", "laptop", 20),
    row("box-1", "web", "[bold]dev-box[/]", 30),  # a machine name is shown literally, never as markup
]


class Host(App[None]):
    def __init__(self, provider: Callable[[], list[SessionSummary]]) -> None:
        super().__init__()
        self.provider = provider
        self.browser: BrowserScreen | None = None

    def on_mount(self) -> None:
        self.browser = BrowserScreen(self.provider, clock=lambda: NOW, directory=SHOWN_DIR)
        self.push_screen(self.browser)


def run(provider: Callable[[], list[SessionSummary]], body: Callable[[Any, BrowserScreen], Any],
        size: tuple[int, int] = (160, 40)) -> None:
    async def main() -> None:
        app = Host(provider)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            assert app.browser is not None
            await body(pilot, app.browser)

    asyncio.run(main())


def columns(screen: BrowserScreen) -> list[str]:
    return [str(column.label) for column in screen.query_one(SessionTable).ordered_columns]


def keys(screen: BrowserScreen) -> list[str]:
    table = screen.query_one(SessionTable)
    return [table.coordinate_to_cell_key((index, 0)).row_key.value for index in range(table.row_count)]


def header(screen: BrowserScreen) -> str:
    return str(screen.query_one("#browser-header", Static).render())


def test_a_machine_column_appears_with_sessions_from_several_machines() -> None:
    async def body(pilot, screen):
        assert columns(screen)[:3] == ["state", "project", "machine"]
        table = screen.query_one(SessionTable)
        cells = table.get_row("box-1")
        assert isinstance(cells[2], Text) and cells[2].plain == "[bold]dev-box[/]" and not cells[2].spans
        state, project, machine, started = [cell.plain for cell in table.get_row("ci-1")][:4]
        assert (state, project, machine) == ("completed", "api", "ci-runner-7") and started.endswith("03-15 11:50")
        assert "3 machines" in header(screen)

    run(lambda: TEAM, body)
    run(lambda: TEAM, body, size=(90, 30))  # the narrow layout keeps it too


def test_one_machine_needs_no_column_and_g_skips_machine_grouping() -> None:
    alone = [row(s.session_id, s.working_directory.rsplit("/", 1)[-1], "laptop", 5 + i) for i, s in enumerate(TEAM)]

    async def body(pilot, screen):
        assert "machine" not in columns(screen) and "machines" not in header(screen)
        await pilot.press("g")
        assert screen.grouped and screen.group_by == "project"
        await pilot.press("g")  # only one machine: straight back to the flat list
        assert not screen.grouped
        assert not any(key.startswith(GROUP_KEY_PREFIX) for key in keys(screen))

    run(lambda: alone, body)


def test_g_cycles_project_machine_flat_and_the_filter_matches_machines() -> None:
    async def body(pilot, screen):
        await pilot.press("g")
        assert header(screen).count("by project") == 1
        await pilot.press("g")
        assert screen.group_by == "machine" and "by machine" in header(screen)
        shown = keys(screen)
        assert shown == [
            GROUP_KEY_PREFIX + "@[bold]dev-box[/]", "box-1",
            GROUP_KEY_PREFIX + "@ci-runner-7", "ci-1",
            GROUP_KEY_PREFIX + "@laptop", "lap-1", "lap-2",  # newest first inside a group
        ]
        table = screen.query_one(SessionTable)
        assert [cell.plain for cell in table.get_row(GROUP_KEY_PREFIX + "@laptop")][1:3] == ["laptop", "2 sessions"]
        assert screen.selected_id in {"box-1", "ci-1", "lap-1", "lap-2"}  # never a header

        await pilot.press("slash", *"laptop", "enter")
        assert screen.shown_ids == ["lap-1", "lap-2"]
        await pilot.press("slash", "escape")
        await pilot.press("g")
        assert not screen.grouped and screen.shown_ids == ["lap-1", "ci-1", "lap-2", "box-1"]

    run(lambda: TEAM, body)


def test_the_column_follows_the_sessions_as_machines_come_and_go() -> None:
    rows = [TEAM[0], TEAM[2]]  # the laptop only

    async def body(pilot, screen):
        assert "machine" not in columns(screen)
        rows.append(TEAM[1])  # a session from the CI runner arrives through the message queue
        screen.refresh_rows()
        await pilot.pause()
        assert "machine" in columns(screen)
        assert [cell.plain for cell in screen.query_one(SessionTable).get_row("ci-1")][2] == "ci-runner-7"
        del rows[-1]
        screen.refresh_rows()
        await pilot.pause()
        assert "machine" not in columns(screen) and screen.shown_ids == ["lap-1", "lap-2"]

    run(lambda: list(rows), body)
