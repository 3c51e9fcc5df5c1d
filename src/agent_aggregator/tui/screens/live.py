"""LiveScreen: the panes of ``aggregate tui``.

    1 sessions      open ones first (● LIVE when an event came in the last 60 s), then saved ones
    2 timeline      the selected session's events (a virtual list; / search, c categories, f follow)
    3 delegations   its subagents: agent type, running / done / failed / stale, duration, events, files
    4 files         the files it modified, relative to its project, and how often
    status bar      connection and server, events/s, open sessions, events captured

The app's 4 Hz timer calls ``refresh_view()``: it reads the aggregator under its
lock, diffs keyed ``DataTable`` rows (cells updated, rows added or removed, never
cleared and refilled) inside one ``batch_update``, and lets the timeline pick up
the events appended since the last tick. Every cell is a ``rich.text.Text`` built
from ``describe.one_line`` text: payloads never act as markup or escape codes.
"""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Sequence

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Static
from textual.widgets.data_table import CellDoesNotExist
from textual.worker import get_current_worker

from ...describe import cell_len, one_line, project_name, truncate
from ...model import ACTIVE, CATEGORIES, AgentSession
from ...timeutil import format_duration
from ..viewstate import (
    BROWSE,
    FAILED_MODE,
    FOLLOWER,
    STARTING,
    STOPPING,
    DelegationRow,
    FileRow,
    FileTally,
    RunFigures,
    SessionRow,
    StatusInfo,
    UsageTotals,
    delegation_rows,
    run_figures,
    session_rows,
    start_label,
)
from ..widgets.timeline import Timeline

if TYPE_CHECKING:  # pragma: no cover
    from ..app import AggregateApp

DEFAULT_PORT = 8765  # where `aggregate install-hooks` points hooks unless told otherwise
PANES = ("sessions", "timeline", "delegations", "files")
PROMPT_CHARS = 80
IMPORTANCE_STEPS: tuple[int | None, ...] = (None, 3, 5, 7, 9)  # key m cycles the timeline's minimum importance
BROWSER_REFRESH_TICKS = 4  # the browser's rows are pulled every 4th tick (once a second)
# A session this big, once loaded, is moved out of the cyclic garbage collector's sight
# (gc.freeze): it lives as long as it is shown, holds no cycles to find, and every full
# collection would otherwise walk its millions of objects (~100 ms pauses, felt as keys
# that lag while events arrive). Freed as usual by reference counting when let go.
FREEZE_AFTER_EVENTS = 10_000
CELL_REFRESH_TICKS = 2  # counts in the tables change every 2nd tick (rows come and go at once)
TAIL_PAINT_WAIT = 3.0  # seconds the load worker waits for a big session's last events to be painted


# --- cells ------------------------------------------------------------------------------------


class Cell(NamedTuple):
    """A cell as plain data: compared to decide whether the table needs an update."""

    text: str
    style: str = ""
    justify: str = "left"

    def render(self) -> Text:
        return Text(self.text, style=self.style, justify=self.justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]


class KeyedText(Text):
    """A first cell that knows its row: ``DataTable.sort`` hands the key function cells, not keys."""

    def __init__(self, text: str, row_key: str, **kwargs: Any) -> None:
        super().__init__(text, **kwargs)
        self.row_key = row_key


def number(value: int) -> Cell:
    return Cell(f"{value:,}", justify="right")


STATUS_STYLES = {
    "active": "bold green",
    "idle": "yellow",
    "completed": "",
    "timed_out": "yellow",
    "recovered": "magenta",
    "interrupted": "red",
    "running": "bold yellow",
    "done": "green",
    "failed": "bold red",
    "stale": "dim",
}


def session_cells(row: SessionRow, now: datetime) -> tuple[Cell, ...]:
    return (
        Cell("● LIVE", "bold green") if row.live else Cell("○", "dim green") if row.active else Cell(""),
        Cell(truncate(row.project, 28), "bold"),
        Cell(start_label(row.start, now)),
        Cell(format_duration(row.duration_ms), justify="right"),
        number(row.events),
        number(row.delegations),
        Cell(row.status, STATUS_STYLES.get(row.status, "")),
        Cell(truncate(row.prompt, PROMPT_CHARS), "italic" if row.prompt else "dim"),
    )


def delegation_cells(row: DelegationRow) -> tuple[Cell, ...]:
    return (
        Cell(truncate(row.agent_type, 24), "bold"),
        Cell(row.status, STATUS_STYLES.get(row.status, "")),
        Cell(format_duration(row.duration_ms), justify="right"),
        number(row.events),
        number(row.files),
    )


FILE_PATH_CHARS = 34


def truncate_left(text: str, width: int) -> str:
    """Keep the end of a path (the file name): "…/research/invoice-retry.md"."""
    if cell_len(text) <= width:
        return text
    kept = text[-(width - 1):]
    while cell_len(kept) > width - 1:
        kept = kept[1:]
    return "…" + kept


def file_cells(row: FileRow) -> tuple[Cell, ...]:
    return (
        Cell(truncate_left(row.path, FILE_PATH_CHARS)),
        number(row.operations),
        Cell(row.detail, "red" if row.failed else "dim"),
    )


def sync_table(
    table: DataTable[Any],
    rows: Sequence[tuple[str, tuple[Cell, ...]]],
    shown: dict[str, tuple[Cell, ...]],
    *,
    cells: bool = True,
) -> bool:
    """Bring ``table`` to ``rows`` (in that order) by diffing against ``shown`` (updated in place).

    New rows are added, vanished rows removed, and the rows re-sorted only when
    their order changed; with ``cells`` the changed cells of the other rows are
    updated too (every cell update makes a DataTable render all its visible rows
    again, so counts that tick while events pour in are batched by the caller).
    Returns whether some rows were left showing older cells (for the next pass with ``cells``).
    """
    wanted = dict(rows)
    behind = False
    for key in [key for key in shown if key not in wanted]:
        table.remove_row(key)
        del shown[key]
    columns = [column.key for column in table.ordered_columns]
    for key, row_cells in rows:
        before = shown.get(key)
        if before is None:
            first, *rest = row_cells
            table.add_row(
                KeyedText(first.text, key, style=first.style, justify=first.justify, no_wrap=True),  # type: ignore[arg-type]
                *(cell.render() for cell in rest),
                key=key,
            )
        elif before != row_cells:
            if not cells:
                behind = True
                continue  # keep ``shown`` as the table has it: the next full pass updates the row
            for index, (old, new) in enumerate(zip(before, row_cells)):
                if old != new:
                    value: Text = (
                        KeyedText(new.text, key, style=new.style, justify=new.justify, no_wrap=True)  # type: ignore[arg-type]
                        if index == 0
                        else new.render()
                    )
                    grows = cell_len(new.text) > cell_len(old.text)  # only then can the column widen
                    table.update_cell(key, columns[index], value, update_width=grows)
        shown[key] = row_cells
    order = [key for key, _ in rows]
    if [row.key.value for row in table.ordered_rows] != order:
        rank = {key: index for index, key in enumerate(order)}
        table.sort(columns[0], key=lambda cell: rank.get(getattr(cell, "row_key", ""), len(rank)))
    return behind


def cursor_key(table: DataTable[Any]) -> str | None:
    if table.row_count == 0:
        return None
    try:
        return table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
    except CellDoesNotExist:
        return None


def put_cursor(table: DataTable[Any], key: str | None) -> None:
    """Keep the cursor on ``key``'s row after rows moved (no-op when it is already there)."""
    if key is None or key not in table.rows:
        return
    index = table.get_row_index(key)
    if table.cursor_row != index:
        table.move_cursor(row=index, animate=False)


# --- small widgets ----------------------------------------------------------------------------


class StatusBar(Widget):
    """One line: connection and server, events/s, open sessions, events captured.

    It renders its own text and repaints without a layout pass (``Static.update``
    would lay the screen out again on every change, 4 times a second).
    """

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $foreground;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown: StatusInfo | None = None
        self._text = Text()

    def show(self, info: StatusInfo) -> None:
        if info == self._shown:
            return
        self._shown = info
        self._text = self.text_for(info)
        self.refresh()

    def text_for(self, info: StatusInfo) -> Text:
        """The line for ``info`` (the replay screen's bar says other things)."""
        return status_text(info)

    def render(self) -> Text:
        return self._text


def status_text(info: StatusInfo) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    if info.mode == FAILED_MODE:
        text.append("✕ ", style="bold red")
        text.append(info.connection, style="red")
    elif info.mode == BROWSE:
        text.append("◌ ", style="dim")
        text.append("browsing saved sessions (capture off: --no-connect)", style="dim")
    elif info.mode == STOPPING:
        text.append("◌ ", style="yellow")
        text.append(info.connection, style="yellow")
    else:
        dot_style = "bold green" if info.connected else "bold yellow"
        text.append("● " if info.connected else "○ ", style=dot_style)
        if info.mode == FOLLOWER:
            text.append(f"following pid {info.follow_pid or '?'}", style="bold")
            text.append(" (it saves) · ", style="dim")
        text.append(info.connection)
    text.append("  │  ", style="dim")
    text.append(f"{info.rate:,.1f}", style="bold")
    text.append(" ev/s", style="dim")
    text.append("  │  ", style="dim")
    text.append(f"{info.active:,}", style="bold")
    text.append(" active", style="dim")
    text.append("  │  ", style="dim")
    text.append(f"{info.total:,}", style="bold")
    text.append(" events captured" if info.mode != FOLLOWER else " events seen", style="dim")
    if info.usage is not None:  # headless runs listed: what they cost, by Claude Code's estimate
        text.append("  │  ", style="dim")
        text.append(info.usage.label(), style="bold")
    return text


def _import_hint(text: Text) -> None:
    """Earlier Claude Code sessions are on disk already: say how to bring them in."""
    text.append("Past Claude Code sessions: ", style="bold")
    text.append("press ")
    text.append("s", style="bold")
    text.append(", then ")
    text.append("i", style="bold")
    text.append(" to import the transcripts in ~/.claude/projects (or run ")
    text.append("aggregate import", style="bold cyan")
    text.append(").\n\n")


def waiting_text(info: StatusInfo) -> Text:
    """The panel shown while there is no session at all: what to start so events arrive."""
    text = Text(justify="left")
    if info.mode == BROWSE:
        text.append("No saved sessions yet\n\n", style="bold")
        text.append("Sessions are read from ")
        text.append(one_line(info.directory), style="bold")
        text.append(" and none is there. This window was started with --no-connect, so it does not capture.\n\n")
        text.append("Run ")
        text.append("aggregate tui", style="bold")
        text.append(" without --no-connect to capture and watch live sessions.\n\n")
        _import_hint(text)
        return text
    if info.mode == FAILED_MODE:
        text.append("Not capturing\n\n", style="bold red")
        text.append(one_line(info.error or info.connection))
        text.append("\n\nFree the port or pass another one: ")
        text.append("aggregate tui --port 8766", style="bold")
        text.append("\n")
        return text
    text.append(f"Waiting for events on {info.address}\n\n", style="bold")
    if info.mode == FOLLOWER:
        text.append(f"Following the aggregator with pid {info.follow_pid or '?'}, which saves the sessions; ")
        text.append("its events show up here as they arrive.\n\n")
    elif info.mode == STARTING:
        text.append("Starting live capture...\n\n", style="dim")
    text.append("Start one of these so agent events reach it:\n\n")
    text.append("  • claude-mpm's monitor", style="bold")
    text.append(" (claude-mpm monitor start): this window listens to it.\n")
    text.append("  • Claude Code's hooks: ", style="bold")
    port = info.address.rsplit(":", 1)[-1]
    text.append("aggregate install-hooks" + ("" if port == str(DEFAULT_PORT) else f" --port {port}"), style="bold cyan")
    text.append(" once, then use Claude Code as usual; every hook posts here.\n")
    text.append("  • A standalone hub: ", style="bold")
    text.append("aggregate serve", style="bold cyan")
    text.append(" (then the hooks post to it and this window listens).\n\n")
    _import_hint(text)
    text.append("Saved sessions are read from ", style="dim")
    text.append(one_line(info.directory), style="dim bold")
    text.append("; press ", style="dim")
    text.append("s", style="bold")
    text.append(" to browse them, ", style="dim")
    text.append("?", style="bold")
    text.append(" for help, ", style="dim")
    text.append("q", style="bold")
    text.append(" to quit.", style="dim")
    return text


# --- the screen -------------------------------------------------------------------------------


@dataclass
class _Shown:
    sessions: dict[str, tuple[Cell, ...]]
    delegations: dict[str, tuple[Cell, ...]]
    files: dict[str, tuple[Cell, ...]]


class LiveScreen(Screen[None]):
    """Sessions, the selected session's timeline, delegations and files, and a status bar."""

    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-narrow"), (120, "-wide")]
    BINDING_GROUP_TITLE = "Panes"
    AUTO_FOCUS = "#sessions"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "focus_pane('sessions')", "Sessions", show=False, id="panes.sessions",
                tooltip="Focus the sessions pane"),
        Binding("2", "focus_pane('timeline')", "Timeline", show=False, id="panes.timeline",
                tooltip="Focus the timeline pane"),
        Binding("3", "focus_pane('delegations')", "Delegations", show=False, id="panes.delegations",
                tooltip="Focus the delegations pane"),
        Binding("4", "focus_pane('files')", "Files", show=False, id="panes.files",
                tooltip="Focus the files pane"),
        Binding("slash", "search", "Search", id="timeline.search",
                tooltip="Search the timeline (case-insensitive; escape clears)"),
        Binding("escape", "clear_search", "Clear search", show=False, id="timeline.clear-search",
                tooltip="Clear the timeline search"),
        Binding("c", "categories", "Categories", id="timeline.categories",
                tooltip="Choose which event categories the timeline shows"),
        Binding("m", "min_importance", "Min importance", show=False, id="timeline.importance",
                tooltip="Show only events rated at least N (SSE sources rate 2..9): any, 3, 5, 7, 9 in turn"),
        Binding("f", "toggle_follow", "Follow", id="timeline.follow",
                tooltip="Keep the timeline on the newest event (scrolling up stops following)"),
        Binding("s", "browse", "Browse", id="sessions.browse",
                tooltip="Browse every saved session: sort, filter, group; enter opens one here"),
        Binding("e", "export", "Export", id="sessions.export", show=False,  # footer fits 80 columns; in ? help
                tooltip="Write the shown session (or the events the timeline's filter matches) to a file"),
        Binding("r", "replay", "Replay", id="sessions.replay", show=False,
                tooltip="Play the shown session back: play/pause, step, seek, speed"),
    ]

    class SessionLoaded(Message):
        """A saved session finished loading (or failed to) in the load worker.

        ``partial``: only its last events so far (a big file); the whole one follows.
        """

        def __init__(
            self,
            session_id: str,
            session: AgentSession | None,
            error: str | None = None,
            *,
            partial: bool = False,
            painted: threading.Event | None = None,
        ) -> None:
            super().__init__()
            self.session_id = session_id
            self.session = session
            self.error = error
            self.partial = partial
            self.painted = painted  # set once the partial session is on screen (or was not wanted)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.selected_id: str | None = None
        self.current: AgentSession | None = None  # the session the panes show (live or loaded)
        self.current_live = False
        self.loading: str | None = None
        self._pinned: set[str] = set()  # sessions opened from the browser stay listed
        self._shown = _Shown({}, {}, {})
        self._tally = FileTally()
        self._file_rows: list[FileRow] = []
        self._ticks = 0
        self.cells_behind = False  # some rows still show older counts: the next full pass updates them
        self._titles: dict[str, tuple[str, str]] = {}
        self._waiting_info: StatusInfo | None = None
        self._rows: list[SessionRow] = []  # the sessions pane as of the last refresh
        self._browser_version = -1
        self._tables_ready = False

    @property
    def aggregate_app(self) -> "AggregateApp":
        return self.app  # type: ignore[return-value]

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="body"):
            yield Static(id="waiting")
            sessions: DataTable[Text] = DataTable(id="sessions", cursor_type="row", zebra_stripes=True, classes="pane")
            sessions.border_title = "1 Sessions"
            yield sessions
            with Horizontal(id="lower"):
                with Vertical(id="timeline-pane", classes="pane") as pane:
                    pane.border_title = "2 Timeline"
                    yield Timeline(id="timeline")
                    yield Input(placeholder="search the timeline (enter keeps it, escape clears)", id="search", compact=True)
                with Container(id="side"):
                    delegations: DataTable[Text] = DataTable(id="delegations", cursor_type="row", classes="pane")
                    delegations.border_title = "3 Delegations"
                    yield delegations
                    files: DataTable[Text] = DataTable(id="files", cursor_type="row", classes="pane")
                    files.border_title = "4 Files"
                    yield files
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        sessions = self.query_one("#sessions", DataTable)
        for label, key in (("", "live"), ("Project", "project"), ("Started", "start"), ("Duration", "duration"),
                           ("Events", "events"), ("Deleg.", "delegations"), ("Status", "status"),
                           ("First prompt", "prompt")):
            sessions.add_column(label, key=key)
        delegations = self.query_one("#delegations", DataTable)
        for label, key in (("Agent", "agent"), ("Status", "status"), ("Time", "duration"),
                           ("Events", "events"), ("Files", "files")):
            delegations.add_column(label, key=key)
        files = self.query_one("#files", DataTable)
        for label, key in (("File", "path"), ("Ops", "ops"), ("Operations", "detail")):
            files.add_column(label, key=key)
        self.query_one("#search", Input).display = False
        self._tables_ready = True
        if self.aggregate_app.saved_version == 0:
            self.aggregate_app.list_saved_now()
        self.refresh_view()
        self.call_after_refresh(self._focus_sessions)

    def _focus_sessions(self) -> None:
        if not self.has_class("-waiting"):
            self.query_one("#sessions").focus()

    # -- the refresh ----------------------------------------------------------------------------

    def refresh_view(self) -> None:
        """Pull aggregator and store state and bring every pane up to date (the 4 Hz timer)."""
        if not self._tables_ready or not self.is_running:
            return  # the app's timer can fire before this screen is mounted, or while it is torn down
        app = self.aggregate_app
        now = app.clock()
        timeout = app.config.session_timeout_minutes
        keep = set(self._pinned)
        if self.selected_id is not None:
            keep.add(self.selected_id)
        with app.reading():
            live = app.live_sessions()
            rows = session_rows(live.values(), app.saved_for_pane(keep), now, timeout_minutes=timeout, keep=keep)
            current = self.current
            selected_live = live.get(self.selected_id) if self.selected_id is not None else None
            if selected_live is not None and selected_live is not current:
                current = selected_live  # a saved session resumed: show the live object from now on
            deleg = delegation_rows(current, now, timeout_minutes=timeout)
            files_changed = False
            if current is not None:
                files_changed = self._tally.update(current.events, current.working_directory)
        if current is not self.current and current is not None:
            # the same session in a new object (resumed, or the capture changed hands): the
            # timeline keeps its cursor and scroll position
            resumed = self.current is not None and self.current.session_id == current.session_id
            self._show(current, live=True, keep_position=resumed)
        if files_changed:
            self._file_rows = self._tally.rows()
        self._rows = rows
        info = app.status_info()
        usage = UsageTotals.of(rows)
        if usage is not None:
            info = replace(info, usage=usage)
        timeline = self.query_one(Timeline)
        with app.batch_update():
            if self.has_class("-waiting") == bool(rows):
                self.set_class(not rows, "-waiting")
                self.refresh_bindings()
            if not rows and info != self._waiting_info:
                self._waiting_info = info
                self.query_one("#waiting", Static).update(waiting_text(info))
            full = self._ticks % CELL_REFRESH_TICKS == 0
            behind = self._sync_sessions(rows, now, cells=full)
            self.cells_behind = self._sync_side(deleg, self._file_rows, cells=full) or behind
            timeline.sync()
            self._update_titles(rows)
            self.query_one(StatusBar).show(info)
        if rows and self.focused is None and self.app.screen is self:
            self.query_one("#sessions").focus()  # the first session arrived: the panes replace the waiting panel
        self._ticks += 1
        if self._ticks % BROWSER_REFRESH_TICKS == 0:
            self._refresh_browser()

    def _sync_sessions(self, rows: list[SessionRow], now: datetime, *, cells: bool = True) -> bool:
        table = self.query_one("#sessions", DataTable)
        # A key press may have moved the cursor while its RowHighlighted message is still queued:
        # take the user's row first, or the put_cursor below would snap it back and lose the key.
        moved_to = cursor_key(table)
        if moved_to is not None and moved_to != self.selected_id and self.selected_id in table.rows:
            self.select_session(moved_to)
        behind = sync_table(table, [(row.session_id, session_cells(row, now)) for row in rows], self._shown.sessions,
                            cells=cells)
        if self.selected_id is None or self.selected_id not in table.rows:
            if rows:
                first = rows[0].session_id
                put_cursor(table, first)
                self.select_session(first)
            elif self.selected_id is not None:
                self.select_session(None)
        else:
            put_cursor(table, self.selected_id)
        return behind

    def _sync_side(self, deleg: list[DelegationRow], files: list[FileRow], *, cells: bool = True) -> bool:
        behind = sync_table(
            self.query_one("#delegations", DataTable),
            [(row.key, delegation_cells(row)) for row in deleg],
            self._shown.delegations,
            cells=cells,
        )
        return sync_table(
            self.query_one("#files", DataTable),
            [(row.key, file_cells(row)) for row in files],
            self._shown.files,
            cells=cells,
        ) or behind

    def _update_titles(self, rows: list[SessionRow]) -> None:
        timeline = self.query_one(Timeline)
        live_count = sum(1 for row in rows if row.live)
        active = sum(1 for row in rows if row.active)
        self._title("#sessions", f"1 Sessions ({len(rows):,})", f"{live_count} live · {active} open" if active else "")
        current = self.current
        if self.loading is not None and current is None:
            title, subtitle = f"2 Timeline · loading {self.loading[:8]}…", ""
        elif current is None:
            title, subtitle = "2 Timeline", ""
        else:
            project = project_name(current.working_directory)
            if project == "-":
                project = one_line(current.session_id[:8])
            matching, total = timeline.matching_count, timeline.total_count
            counted = f"{total:,} events" if matching == total else f"{matching:,} of {total:,} events"
            if self.loading is not None:  # a big session's last events, the rest still loading
                counted = f"last {counted} of {current.metrics.total_events or len(current.events):,}, loading…"
            title = f"2 Timeline · {truncate(project, 30)} · {counted}"
            parts = []
            with self.aggregate_app.reading():
                figures = run_figures(RunFigures.of(current.metrics, current.usage, current.metadata))
            if figures:  # a headless run: cost, turns, tokens, API time (estimates)
                parts.append(figures)
            if timeline.search:
                parts.append(f"search: {truncate(one_line(timeline.search), 24)}")
            if timeline.categories is not None:
                parts.append(f"categories: {len(timeline.categories)} of {len(CATEGORIES)}")
            if timeline.min_importance is not None:
                parts.append(f"importance ≥ {timeline.min_importance}")
            parts.append("following" if timeline.follow else "paused (f follows)")
            subtitle = " · ".join(parts)
        self._title("#timeline-pane", title, subtitle)
        shown = len(self._shown.delegations)
        total = len(current.delegations) if current is not None else 0
        counted = f"{total:,}" if total <= shown else f"{total:,} · newest {shown:,}"
        self._title("#delegations", f"3 Delegations ({counted})", "")
        self._title("#files", f"4 Files ({len(self._shown.files)})", "")

    def _title(self, selector: str, title: str, subtitle: str) -> None:
        if self._titles.get(selector) == (title, subtitle):
            return
        self._titles[selector] = (title, subtitle)
        widget = self.query_one(selector)
        # Text, not str: Textual parses a str title as markup, and titles carry project names
        widget.border_title = Text(title)
        widget.border_subtitle = Text(subtitle)

    def _refresh_browser(self) -> None:
        """The browser (when it is on top) pulls its rows when the listing changed or sessions are live."""
        from .browser import BrowserScreen

        screen = self.app.screen
        app = self.aggregate_app
        if not isinstance(screen, BrowserScreen):
            return
        if app.saved_version != self._browser_version or any(row.in_memory for row in self._rows):
            self._browser_version = app.saved_version
            screen.refresh_rows()

    # -- selection ------------------------------------------------------------------------------

    def select_session(self, session_id: str | None) -> None:
        """Show a session in the panes: the live object at once, a saved one loaded in a worker."""
        if session_id == self.selected_id:
            return
        self.selected_id = session_id
        if session_id is None:
            self._show(None, live=False)
            return
        session = self.aggregate_app.find_live(session_id)
        if session is not None:
            self.loading = None
            self._show(session, live=True)
            return
        self.loading = session_id
        self._show(None, live=False)
        self._load(session_id)

    def open_session(self, session_id: str) -> None:
        """Open a session picked in the browser: listed (pinned) and selected."""
        self._pinned.add(session_id)
        self.select_session(session_id)
        self.refresh_view()
        put_cursor(self.query_one("#sessions", DataTable), session_id)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False, description="Loading a session")
    def _load(self, session_id: str) -> None:
        worker = get_current_worker()
        if worker.is_cancelled:
            return
        def show_tail(tail: AgentSession) -> None:
            if worker.is_cancelled:
                return
            painted = threading.Event()
            self.post_message(self.SessionLoaded(session_id, tail, partial=True, painted=painted))
            # Decoding the rest holds the GIL in long stretches: let the tail reach the screen first.
            painted.wait(TAIL_PAINT_WAIT)

        try:
            session = self.aggregate_app.load_session(session_id, on_tail=show_tail)
        except Exception as error:  # noqa: BLE001 - shown, never raised into the UI
            self.post_message(self.SessionLoaded(session_id, None, one_line(str(error)) or type(error).__name__))
            return
        if not worker.is_cancelled:
            self.post_message(self.SessionLoaded(session_id, session))

    def on_live_screen_session_loaded(self, message: SessionLoaded) -> None:
        if message.partial:  # the last events first: painted now, the whole session replaces them
            painted = message.painted or threading.Event()
            if message.session_id == self.selected_id == self.loading and message.session is not None:
                self._show(message.session, live=False)
                self.refresh_view()
                self.call_after_refresh(painted.set)
            else:
                painted.set()
            return
        if message.session_id != self.selected_id:
            return  # the user moved on meanwhile
        self.loading = None
        if message.session is None:
            self.notify(f"Cannot open session {message.session_id}: {message.error}", severity="error", markup=False)
            self._show(None, live=False)
        else:
            self._show(message.session, live=False)
            if len(message.session.events) >= FREEZE_AFTER_EVENTS:
                gc.freeze()  # see FREEZE_AFTER_EVENTS
        self.refresh_view()

    def _show(self, session: AgentSession | None, *, live: bool, keep_position: bool = False) -> None:
        self.current = session
        self.current_live = live
        self._tally.reset(session.working_directory if session is not None else None)
        self._file_rows = []
        timeline = self.query_one(Timeline)
        if session is None:
            timeline.show([], live=False)
            return
        with self.aggregate_app.reading():
            self._tally.update(session.events, session.working_directory)
            self._file_rows = self._tally.rows()
        timeline.show(session.events, root=session.working_directory, live=live and session.status == ACTIVE,
                      keep_position=keep_position)

    @on(DataTable.RowHighlighted, "#sessions")
    def _session_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Read the cursor now, not the message: rows may have moved since it was posted.
        key = cursor_key(self.query_one("#sessions", DataTable))
        if key is not None:
            self.select_session(key)

    @on(DataTable.RowSelected, "#sessions")
    def _session_chosen(self, event: DataTable.RowSelected) -> None:
        self.action_focus_pane("timeline")

    @on(Timeline.Chosen)
    def _event_chosen(self, message: Timeline.Chosen) -> None:
        from .detail import EventDetailScreen

        message.stop()
        root = self.current.working_directory if self.current is not None else None
        self.app.push_screen(EventDetailScreen(message.event, root=root))

    @on(Timeline.FollowChanged)
    def _follow_changed(self, message: Timeline.FollowChanged) -> None:
        self._update_titles(self._rows)

    # -- search ---------------------------------------------------------------------------------

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.display = True
        search.focus()

    def action_clear_search(self) -> None:
        search = self.query_one("#search", Input)
        timeline = self.query_one(Timeline)
        if not search.display and not timeline.search:
            return
        search.value = ""
        timeline.search = ""
        search.display = False
        timeline.focus()
        self._update_titles(self._rows)

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.query_one(Timeline).search = event.value
        self._update_titles(self._rows)

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        search = self.query_one("#search", Input)
        if not event.value:
            search.display = False
        self.query_one(Timeline).focus()


    # -- other actions --------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While waiting for the first session only browse / help / quit make sense (the footer says so)."""
        if self.has_class("-waiting") and action in (
            "focus_pane", "search", "clear_search", "categories", "min_importance", "toggle_follow", "export", "replay"
        ):
            return False
        return True

    def action_focus_pane(self, pane: str) -> None:
        if pane not in PANES or self.has_class("-waiting"):
            return
        self.query_one(f"#{pane}").focus()

    def action_toggle_follow(self) -> None:
        timeline = self.query_one(Timeline)
        timeline.toggle_follow()
        self._update_titles(self._rows)

    def action_min_importance(self) -> None:
        """The next minimum importance (none, 3, 5, 7, 9, none ...), as ``view --min-importance``."""
        timeline = self.query_one(Timeline)
        steps = IMPORTANCE_STEPS
        current = timeline.min_importance
        timeline.min_importance = steps[(steps.index(current) + 1) % len(steps) if current in steps else 0]
        shown = "every event" if timeline.min_importance is None else f"events rated {timeline.min_importance} or more"
        self.notify(f"Timeline: {shown}", timeout=3)
        self._update_titles(self._rows)
        self.refresh_view()

    def action_categories(self) -> None:
        from .category import CategoryFilterScreen

        timeline = self.query_one(Timeline)
        counts: dict[str, int] = {}
        if self.current is not None:
            with self.aggregate_app.reading():
                counts = dict(self.current.metrics.event_breakdown)

        def apply(result: frozenset[str] | None) -> None:
            timeline.categories = result  # None: every category (escape returns what was there)
            self._update_titles(self._rows)
            self.refresh_view()

        self.app.push_screen(CategoryFilterScreen(timeline.categories, counts), apply)

    def action_export(self) -> None:
        from .export import ExportScreen, live_target

        if self.current is None:
            self.notify("No session is shown yet: pick one in the sessions pane.", severity="warning")
            return
        self.app.push_screen(ExportScreen(live_target(self.app, self.current, self.query_one(Timeline))))

    def action_replay(self) -> None:
        from .replay import open_replay

        if self.current is None:
            self.notify("No session is shown yet: pick one in the sessions pane.", severity="warning")
            return
        # While a big session is still loading, ``current`` holds only its last events: load it whole.
        whole = self.current if self.loading is None else None
        open_replay(self.app, self.current.session_id, whole)  # type: ignore[arg-type]

    def action_browse(self) -> None:
        from .browser import BrowserScreen

        app = self.aggregate_app

        def live_ids() -> set[str]:
            now = app.clock()
            with app.reading():
                return {row.session_id for row in session_rows(
                    app.live_sessions().values(), (), now, timeout_minutes=app.config.session_timeout_minutes
                ) if row.live}

        def opened(session_id: str | None) -> None:
            if session_id:
                self.open_session(session_id)

        self.app.push_screen(
            BrowserScreen(
                app.browser_rows,
                clock=app.clock,
                live_ids=live_ids,
                directory=app.config.activity_directory,
                timeout_minutes=app.config.session_timeout_minutes,
            ),
            opened,
        )


__all__ = ["Cell", "LiveScreen", "StatusBar", "sync_table", "status_text", "waiting_text"]
