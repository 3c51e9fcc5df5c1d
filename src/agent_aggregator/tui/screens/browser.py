"""The session browser: every saved session, filterable, sortable, groupable.

``BrowserScreen`` pulls its rows from a callable (the app passes the store's
listing) and keeps a keyed ``DataTable`` in step with it: ``refresh_rows()``
diffs the new listing against what is shown and only adds, removes or updates
the rows that changed, so the app can call it on its timer with thousands of
sessions, and the cursor stays on the session the user was looking at.

Everything from payloads (prompts, directories, agent names) goes through
``describe.one_line`` into ``rich.text.Text``: it is never parsed as markup.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar, Iterable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.geometry import Size
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist, RowKey

from ...describe import display_status, one_line, project_name
from ...model import ACTIVE, SessionSummary
from ...timeutil import format_duration, now_utc, parse_timestamp
from ..importing import ImportProgress, count_available, offer_text, report_text, run_import
from .live import cursor_key

__all__ = ["BrowserScreen", "SessionTable", "FilterInput", "SORT_KEYS", "LIVE_LABEL"]

LIVE_LABEL = "● LIVE"
IMPORTED_LABEL = "imported"  # the state of a finished session read from Claude Code's transcripts
FILTER_PLACEHOLDER = "Filter: id, project, prompt, agent, file…"
SORT_KEYS = ("time", "events", "duration")  # t / n / d; the first press sorts descending
GROUP_KEY_PREFIX = "\x1fgroup:"  # row keys of group headers (never a session id)
PROMPT_CHARS = 200  # the most of a prompt kept per row (the column crops it with "…")
WIDE_MIN_WIDTH = 110  # narrower: no delegations/files columns, shorter dates
REBUILD_THRESHOLD = 200  # removing more rows than this rebuilds (DataTable.remove_row is O(rows))
FILTER_IMMEDIATE_MAX = 2000  # with more sessions, the filter applies 0.25 s after the last key
FILTER_DELAY = 0.25
NUMERIC_COLUMNS = frozenset({"duration", "events", "delegations", "files"})

_STATE_STYLES = {
    LIVE_LABEL: "bold green",
    "active": "green",
    "idle": "yellow",
    "timed_out": "yellow",
    "recovered": "magenta",
    "completed": "dim",
    IMPORTED_LABEL: "cyan",
}


def _is_group_key(key: str) -> bool:
    return key.startswith(GROUP_KEY_PREFIX)


def _home_short(path: str) -> str:
    home = os.path.expanduser("~")
    if home and home not in ("~", os.sep) and (path == home or path.startswith(home + os.sep)):
        return "~" + path[len(home):]
    return path


# --- one session, as the browser shows it --------------------------------------------------


@dataclass(slots=True)
class _Entry:
    """What the browser derived from one summary; rebuilt only when the summary changes."""

    summary: SessionSummary
    signature: tuple[Any, ...]
    project: str
    project_sort: str
    start_ts: float
    wide: tuple[str, ...]  # cells after the state, wide layout
    narrow: tuple[str, ...]  # cells after the state, narrow layout
    haystack: str  # what the filter searches, casefolded
    status: str
    machine: str = "-"  # metadata.hostname: where the session ran (issue 10)
    machine_sort: str = "-"
    state: str = ""  # LIVE / display status, as last computed
    match: tuple[str, bool] = ("", True)  # (filter text it was computed for, result)


def _signature(summary: SessionSummary) -> tuple[Any, ...]:
    return (
        summary.start_time,
        summary.end_time,
        summary.status,
        summary.event_count,
        summary.duration_ms,
        summary.working_directory,
        summary.initial_prompt,
        tuple(summary.agents_used or ()),
        summary.delegation_count,
        summary.files_modified_count,
        summary.source,
        summary.hostname,
    )


def _imported(summary: SessionSummary) -> bool:
    """Finished, and (partly) read from a Claude Code transcript (``aggregate import`` / ``i``)."""
    return summary.status == "completed" and "transcript" in (summary.source or "").split("+")


def _make_entry(summary: SessionSummary, signature: tuple[Any, ...], year: int) -> _Entry:
    start = parse_timestamp(summary.start_time)
    if start is None:
        started_wide = started_narrow = "-"
        start_ts = float("-inf")
    else:
        local = start.astimezone()  # local time (TZ); tests set TZ=UTC
        started_wide = local.strftime("%Y-%m-%d %H:%M")
        started_narrow = local.strftime("%m-%d %H:%M") if local.year == year else local.strftime("%Y-%m-%d")
        start_ts = start.timestamp()
    project = project_name(summary.working_directory)
    prompt = one_line(summary.initial_prompt)[:PROMPT_CHARS]
    duration = format_duration(summary.duration_ms)
    events = str(summary.event_count)
    haystack = "\n".join(
        one_line(part)
        for part in (
            summary.session_id,
            project,
            summary.working_directory,
            prompt,
            " ".join(one_line(agent) for agent in summary.agents_used or ()),
            summary.source,
            summary.hostname,
        )
        if part
    ).casefold()
    return _Entry(
        summary=summary,
        signature=signature,
        project=project,
        project_sort=project.casefold(),
        start_ts=start_ts,
        wide=(
            project,
            started_wide,
            duration,
            events,
            str(summary.delegation_count or "-"),
            str(summary.files_modified_count or "-"),
            prompt,
        ),
        narrow=(project, started_narrow, duration, events, prompt),
        haystack=haystack,
        status=IMPORTED_LABEL if _imported(summary) else one_line(summary.status) or "unknown",
        machine=one_line(summary.hostname) or "-",
        machine_sort=(one_line(summary.hostname) or "-").casefold(),
    )


# --- widgets -------------------------------------------------------------------------------


class FilterInput(Input):
    """The filter box: escape clears it and hands focus back to the table."""

    BINDING_GROUP_TITLE = "Sessions"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape",
            "leave(True)",
            "Clear filter",
            id="sessions.filter-clear",
            tooltip="In the filter: clear it and go back to the list.",
        ),
        Binding(
            "down",
            "leave(False)",
            "To the list",
            show=False,
            id="sessions.filter-done",
            tooltip="In the filter: keep it and go to the list (enter too).",
        ),
    ]

    def action_leave(self, clear: bool) -> None:
        if clear:
            self.value = ""
        screen = self.screen
        if isinstance(screen, BrowserScreen):
            if clear:
                screen.apply_filter_now()
            screen.focus_table()


class SessionTable(DataTable[Text]):
    """The browser's DataTable: group header rows are never under the cursor."""

    BINDING_GROUP_TITLE = "Sessions"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter",
            "select_cursor",
            "Open",
            id="sessions.open",
            tooltip="Open the session under the cursor in the live panes.",
        ),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.group_keys: set[str] = set()

    def is_group_row(self, index: int) -> bool:
        if not self.group_keys or not 0 <= index < self.row_count:
            return False
        try:
            key = self.coordinate_to_cell_key(Coordinate(index, 0)).row_key
        except CellDoesNotExist:
            return False
        return key.value in self.group_keys

    def validate_cursor_coordinate(self, value: Coordinate) -> Coordinate:
        value = super().validate_cursor_coordinate(value)
        if not self.is_group_row(value.row):
            return value
        # Step over a group header in the direction the cursor was moving.
        step = -1 if value.row < self.cursor_coordinate.row else 1
        for direction in (step, -step):
            index = value.row + direction
            while 0 <= index < self.row_count:
                if not self.is_group_row(index):
                    return Coordinate(index, value.column)
                index += direction
        return value

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """DataTable measures every cell of new rows here, which dominates adding
        10,000 rows. Every column of this table has a fixed width and every row is
        one line, so only the virtual size can change: set just that."""
        if any(column.auto_width for column in self.columns.values()):
            super()._update_dimensions(new_rows)
            return
        width = sum(column.get_render_width(self) for column in self.columns.values())
        header_height = self.header_height if self.show_header else 0
        self.virtual_size = Size(width + self._row_label_column_width, self.row_count + header_height)

    def set_column_width(self, key: str, width: int) -> None:
        """Give a fixed-width column a new width (the prompt column fills the screen)."""
        column = self.columns.get(ColumnKey(key))
        if column is None or column.width == width:
            return
        column.width = width
        # No public API resizes a column: do what DataTable does when content changes
        # (recompute the virtual size on idle, drop the render caches).
        self._require_update_dimensions = True
        self._update_count += 1
        self.check_idle()
        self.refresh()

    def reorder(self, keys: list[str], first_cells: dict[str, Text]) -> None:
        """Put the rows in ``keys`` order without rebuilding them.

        ``DataTable.sort`` hands its key function only cell values, so each row is
        recognised by its first cell object (a distinct ``Text`` per row).
        """
        rank = {id(first_cells[key]): index for index, key in enumerate(keys)}
        last = len(rank)
        self.sort(self.ordered_columns[0].key, key=lambda cell: rank.get(id(cell), last))


# --- the screen ----------------------------------------------------------------------------


@dataclass
class _Shown:
    """What the table holds, by row key: plain cell values, first cell object, order."""

    plain: dict[str, tuple[str, ...]] = field(default_factory=dict)
    first: dict[str, Text] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)


class BrowserScreen(Screen[str | None]):
    """Every saved session. Enter dismisses with the session id; escape / ``s`` with None.

    ``rows_provider`` is called by ``refresh_rows()`` (on mount, then whenever the
    app calls it); ``live_ids`` names the sessions to mark LIVE; ``clock`` is "now"
    for the idle state; ``directory`` (else the provider's owner's ``.directory``,
    e.g. a bound ``SessionStore.list_sessions``) is named in the header.
    """

    BINDING_GROUP_TITLE = "Sessions"
    AUTO_FOCUS = "#browser-table"

    DEFAULT_CSS = """
    BrowserScreen {
        layout: vertical;
    }
    BrowserScreen #browser-header {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $foreground;
    }
    BrowserScreen #browser-filter {
        height: 1;
        border: none;
        padding: 0 1;
    }
    BrowserScreen #browser-table {
        height: 1fr;
    }
    BrowserScreen #browser-empty {
        height: auto;
        padding: 1 2;
        color: $text-muted;
        display: none;
    }
    BrowserScreen.-no-sessions #browser-empty, BrowserScreen.-no-match #browser-empty {
        display: block;
    }
    BrowserScreen.-no-sessions #browser-table, BrowserScreen.-no-sessions #browser-filter {
        display: none;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="sessions.close", tooltip="Back to the live panes."),
        Binding("s", "close", "Back", show=False, id="sessions.close-s", tooltip="Back to the live panes."),
        Binding("slash", "focus_filter", "Filter", id="sessions.filter", tooltip="Filter by id, project, prompt, agent."),
        Binding("t", "sort('time')", "Time", id="sessions.sort-time", show=False, tooltip="Sort by start time (again: reverse)."),
        Binding("n", "sort('events')", "Events", id="sessions.sort-events", show=False, tooltip="Sort by event count (again: reverse)."),
        Binding("d", "sort('duration')", "Duration", id="sessions.sort-duration", show=False, tooltip="Sort by duration (again: reverse)."),
        Binding("g", "toggle_group", "Group", id="sessions.group", tooltip="Group sessions by project."),
        Binding("i", "import_transcripts", "Import", id="sessions.import", show=False,  # footer fits 80 columns; in ? help
                tooltip="Import Claude Code's transcripts as sessions."),
        Binding("e", "export", "Export", id="sessions.export", show=False, tooltip="Write the session under the cursor to a file."),
        Binding("r", "replay", "Replay", id="sessions.replay", tooltip="Play the session under the cursor back."),
    ]

    def __init__(
        self,
        rows_provider: Callable[[], list[SessionSummary]],
        *,
        clock: Callable[[], datetime] = now_utc,
        live_ids: Callable[[], set[str]] | None = None,
        directory: str | os.PathLike[str] | None = None,
        timeout_minutes: float = 60,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._rows_provider = rows_provider
        self._clock = clock
        self._live_ids = live_ids
        self._timeout_minutes = timeout_minutes
        self._directory = self._find_directory(rows_provider, directory)
        self.sort_key = "time"
        self.sort_descending = True
        self.grouped = False
        self.group_by = "project"  # or "machine" (g cycles: project, machine when several, flat)
        self.filter_text = ""
        self._machines: set[str] = set()  # distinct machines among the sessions
        self._multi: bool | None = None  # the machine column is shown (more than one machine)
        self._entries: dict[str, _Entry] = {}
        self._live: set[str] = set()
        self._dirty: set[str] = set()  # sessions whose cells may have changed since the last sync
        self._members_changed = True  # sessions came or went
        self._shown = _Shown()
        self._wide: bool | None = None
        self._view: tuple[Any, ...] | None = None  # (filter, sort, order, grouped, width) last synced
        self._shown_count = 0
        self._filter_timer: Timer | None = None
        self.transcripts: tuple[int, str] | None = None  # (count, where) once the background count is done
        self.importing = False

    # -- public -------------------------------------------------------------------------

    @property
    def directory(self) -> str | None:
        return self._directory

    @property
    def total_count(self) -> int:
        """Sessions the provider returned last time."""
        return len(self._entries)

    @property
    def shown_ids(self) -> list[str]:
        """Session ids in table order (group headers left out)."""
        return [key for key in self._shown.order if not _is_group_key(key)]

    @property
    def selected_id(self) -> str | None:
        """The session under the cursor, if any."""
        key = self._cursor_key()
        return None if key is None or _is_group_key(key) else key

    def refresh_rows(self) -> None:
        """Call the provider again and bring the table up to date.

        Unchanged sessions cost a comparison each: no row is rebuilt, and when
        nothing changed the table is not touched at all.
        """
        rows = self._rows_provider()
        live = set(self._live_ids()) if self._live_ids is not None else set()
        self._ingest(rows, live)
        if self.is_mounted:
            self._apply()

    def focus_table(self) -> None:
        self.query_one(SessionTable).focus()

    def apply_filter_now(self) -> None:
        """Apply the filter box's text at once (it is debounced with many sessions)."""
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        self.filter_text = self.query_one(FilterInput).value
        self._apply()

    # -- compose ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="browser-header")
        yield FilterInput(placeholder=FILTER_PLACEHOLDER, id="browser-filter", compact=True)
        yield Static(id="browser-empty")
        yield ImportProgress(id="browser-import")
        yield SessionTable(id="browser-table")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_rows()
        self.run_worker(self._count_transcripts, thread=True, group="transcripts", exit_on_error=False)

    def on_resize(self) -> None:
        if self.is_mounted:
            self._apply()

    # -- actions ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("focus_filter", "sort", "toggle_group", "export", "replay") and not self._entries:
            return None  # shown dimmed: nothing to filter or sort yet
        if action == "import_transcripts":
            return not self.importing and bool(self.transcripts and self.transcripts[0])
        return True

    def action_close(self) -> None:
        self.dismiss(None)

    # -- importing transcripts (tui/importing.py) ---------------------------------------

    def _count_transcripts(self) -> None:
        found = count_available()
        self.app.call_from_thread(self._counted, found)

    def _counted(self, found: tuple[int, str]) -> None:
        self.transcripts = found
        if self.is_mounted:
            self.refresh_bindings()
            self._update_header()

    def action_import_transcripts(self) -> None:
        if self.importing:
            return
        self.importing = True
        self.refresh_bindings()
        self.query_one(ImportProgress).start()
        self.run_worker(self._import_worker, thread=True, group="import", exit_on_error=False,
                        description="Importing Claude Code transcripts")

    def _import_worker(self) -> None:
        app = self.app
        cancel = threading.Event()
        try:
            report = run_import(app, lambda done, total, label: app.call_from_thread(self._progress, done, total, label),
                                cancel)
        except Exception as error:  # noqa: BLE001 - shown to the user, never a crash of the UI
            app.call_from_thread(self._imported, None, one_line(str(error)) or type(error).__name__)
        else:
            app.call_from_thread(self._imported, report, None)

    def _progress(self, done: int, total: int, label: str) -> None:
        if self.is_mounted:
            self.query_one(ImportProgress).advance(done, total, label)

    def _imported(self, report: Any, error: str | None) -> None:
        self.importing = False
        if self.is_mounted:
            self.query_one(ImportProgress).finish()
            self.refresh_bindings()
        if error is not None:
            self.app.notify(f"Import failed: {error}", title="Import", severity="error", timeout=10, markup=False)
        else:
            self.app.notify(report_text(report), title="Import", timeout=8, markup=False)
        poll = getattr(self.app, "poll_store", None)
        if callable(poll):
            poll()  # the listing picks the new sessions up; the browser refreshes from it

    def action_export(self) -> None:
        from .export import ExportScreen, saved_target

        session_id = self.selected_id
        entry = self._entries.get(session_id) if session_id is not None else None
        if entry is not None:
            self.app.push_screen(ExportScreen(saved_target(self.app, entry.summary)))

    def action_replay(self) -> None:
        from .replay import open_replay

        if self.selected_id is not None and self.selected_id in self._entries:
            open_replay(self.app, self.selected_id)  # type: ignore[arg-type]

    def action_focus_filter(self) -> None:
        self.query_one(FilterInput).focus()

    def action_sort(self, key: str) -> None:
        if key not in SORT_KEYS:
            return
        if key == self.sort_key:
            self.sort_descending = not self.sort_descending
        else:
            self.sort_key = key
            self.sort_descending = True
        self._apply()

    def action_toggle_group(self) -> None:
        """Flat -> by project -> by machine (only with sessions from several machines) -> flat."""
        if not self.grouped:
            self.grouped, self.group_by = True, "project"
        elif self.group_by == "project" and len(self._machines) > 1:
            self.group_by = "machine"
        else:
            self.grouped, self.group_by = False, "project"
        self._apply()

    # -- events -------------------------------------------------------------------------

    @on(Input.Changed, "#browser-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        if len(self._entries) <= FILTER_IMMEDIATE_MAX:
            self.apply_filter_now()
            return
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY, self.apply_filter_now)

    @on(Input.Submitted, "#browser-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.apply_filter_now()
        self.focus_table()

    @on(DataTable.RowSelected, "#browser-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = event.row_key.value
        if key is None or _is_group_key(key) or key not in self._entries:
            return  # a group header: nothing to open
        self.dismiss(key)

    # -- model --------------------------------------------------------------------------

    @staticmethod
    def _find_directory(provider: Any, directory: Any) -> str | None:
        if directory is None:
            owner = getattr(provider, "__self__", None)
            directory = getattr(provider, "directory", None) or getattr(owner, "directory", None)
        if directory is None:
            return None
        try:
            return one_line(os.fspath(directory))
        except TypeError:
            return one_line(directory)

    def _ingest(self, rows: list[SessionSummary], live: set[str]) -> None:
        """Update the per-session cache; note which sessions changed."""
        now = self._clock()
        year = now.astimezone().year
        old = self._entries
        entries: dict[str, _Entry] = {}
        dirty = self._dirty
        for summary in rows:
            sid = summary.session_id
            entry = old.get(sid)
            if entry is None or entry.summary is not summary:
                signature = _signature(summary)
                if entry is None or entry.signature != signature:
                    entry = _make_entry(summary, signature, year)
                    dirty.add(sid)
                else:
                    entry.summary = summary
            if sid in live:
                state = LIVE_LABEL
            elif summary.status != ACTIVE:
                state = entry.status
            else:
                state = display_status(summary, self._timeout_minutes, now)
            if state != entry.state:
                entry.state = state
                dirty.add(sid)
            entries[sid] = entry
        if len(entries) != len(old) or any(sid not in old for sid in entries):
            self._members_changed = True
        self._machines = {entry.machine_sort for entry in entries.values()}
        self._entries = entries
        self._live = live

    def _matches(self, entry: _Entry, text: str, needles: list[str]) -> bool:
        cached_for, result = entry.match
        if cached_for == text:
            return result
        result = all(needle in entry.haystack for needle in needles)
        entry.match = (text, result)
        return result

    def _visible(self) -> list[_Entry]:
        """The sessions the filter lets through, in display order."""
        text = self.filter_text.strip().casefold()
        if text:
            needles = text.split()  # every word must match somewhere
            entries = [entry for entry in self._entries.values() if self._matches(entry, text, needles)]
        else:
            entries = list(self._entries.values())
        reverse = self.sort_descending
        if self.sort_key == "events":
            entries.sort(key=lambda e: (e.summary.event_count, e.start_ts, e.summary.session_id), reverse=reverse)
        elif self.sort_key == "duration":
            entries.sort(key=lambda e: (e.summary.duration_ms, e.start_ts, e.summary.session_id), reverse=reverse)
        else:
            entries.sort(key=lambda e: (e.start_ts, e.summary.session_id), reverse=reverse)
        if self.grouped:
            by_machine = self.group_by == "machine"
            # stable: keeps the chosen order in a group
            entries.sort(key=(lambda e: e.machine_sort) if by_machine else (lambda e: e.project_sort))
        return entries

    # -- table --------------------------------------------------------------------------

    @staticmethod
    def _columns(wide: bool, machine: bool = False) -> list[tuple[str, int]]:
        """(key, fixed width) per column, in order; the prompt's width is set to fill.
        ``machine``: sessions come from several machines, so each row says which."""
        columns = [("state", 9), ("project", 20 if wide else 14), ("started", 16 if wide else 11), ("duration", 8), ("events", 6)]
        if machine:
            columns.insert(2, ("machine", 16 if wide else 10))
        if wide:
            columns += [("delegations", 11), ("files", 5)]
        columns.append(("prompt", 10))
        return columns

    def _prompt_width(self, table: SessionTable, wide: bool, width: int) -> int:
        columns = self._columns(wide, bool(self._multi))
        used = sum(size for key, size in columns if key != "prompt") + 2 * table.cell_padding * len(columns)
        return max(10, width - used - 2)  # 2: the vertical scrollbar

    @staticmethod
    def _session_cells(plain: tuple[str, ...], machine: bool = False) -> list[Text]:
        state = plain[0]
        cells = [
            Text(state, style=_STATE_STYLES.get(state, ""), no_wrap=True, overflow="ellipsis"),
            Text(plain[1], style="bold", no_wrap=True, overflow="ellipsis"),
        ]
        if machine:  # the machine column, after the project
            cells.append(Text(plain[2], style="cyan", no_wrap=True, overflow="ellipsis"))
            plain = plain[1:]
        cells.append(Text(plain[2], no_wrap=True, overflow="ellipsis"))
        for value in plain[3:-1]:  # duration, events (, delegations, files): right-aligned
            cells.append(Text(value, justify="right", style="dim" if value == "-" else "", no_wrap=True))
        cells.append(Text(plain[-1], no_wrap=True, overflow="ellipsis"))
        return cells

    @staticmethod
    def _group_plain(project: str, count: int, width: int) -> tuple[str, ...]:
        noun = "session" if count == 1 else "sessions"
        return ("▾", project, f"{count} {noun}", *([""] * (width - 3)))

    @staticmethod
    def _group_cells(plain: tuple[str, ...]) -> list[Text]:
        return [
            Text(plain[0], style="bold cyan", no_wrap=True),
            Text(plain[1], style="bold cyan", no_wrap=True, overflow="ellipsis"),
            Text(plain[2], style="cyan", no_wrap=True, overflow="ellipsis"),
            *[Text("") for _ in plain[3:]],
        ]

    def _desired(self, visible: list[_Entry], wide: bool) -> list[tuple[str, tuple[str, ...], bool]]:
        """(row key, plain cell values, is a group header), in display order.

        A session that did not change keeps the tuple the table already holds.
        """
        multi = bool(self._multi)
        width = len(self._columns(wide, multi))
        shown = self._shown.plain
        dirty = self._dirty
        rows: list[tuple[str, tuple[str, ...], bool]] = []
        counts: dict[str, int] = {}
        by_machine = self.group_by == "machine"
        prefix = GROUP_KEY_PREFIX + ("@" if by_machine else "")  # machine headers never reuse a project's row

        def group_of(entry: _Entry) -> str:
            return entry.machine_sort if by_machine else entry.project_sort

        if self.grouped:
            for entry in visible:
                counts[group_of(entry)] = counts.get(group_of(entry), 0) + 1
        current: str | None = None
        for entry in visible:
            if self.grouped and group_of(entry) != current:
                current = group_of(entry)
                label = entry.machine if by_machine else entry.project
                rows.append((prefix + current, self._group_plain(label, counts[current], width), True))
            sid = entry.summary.session_id
            plain = shown.get(sid) if sid not in dirty else None
            if plain is None:
                cells = entry.wide if wide else entry.narrow
                plain = (entry.state, cells[0], entry.machine, *cells[1:]) if multi else (entry.state, *cells)
            rows.append((sid, plain, False))
        return rows

    def _cursor_key(self) -> str | None:
        return cursor_key(self.query_one(SessionTable)) if self.is_mounted else None

    def _apply(self) -> None:
        """Bring the table in line with the cache and the view settings."""
        table = self.query_one(SessionTable)
        width = table.size.width or self.size.width or self.app.size.width
        wide = width >= WIDE_MIN_WIDTH
        view = (self.filter_text.strip().casefold(), self.sort_key, self.sort_descending, self.grouped,
                self.group_by, width)
        if view == self._view and not self._dirty and not self._members_changed:
            return  # nothing changed: leave the table alone
        cursor_key = self._cursor_key()
        cursor_index = table.cursor_row
        with self.app.batch_update():
            multi = len(self._machines) > 1
            if wide != self._wide or multi != self._multi:
                self._multi = multi
                self._rebuild_columns(table, wide)
            table.set_column_width("prompt", self._prompt_width(table, wide, width))
            visible = self._visible()
            self._sync(table, self._desired(visible, wide))
            self._restore_cursor(table, cursor_key, cursor_index)
            self._shown_count = len(visible)
            self._update_header()
        self._view = view
        self._dirty = set()
        self._members_changed = False

    def _rebuild_columns(self, table: SessionTable, wide: bool) -> None:
        table.clear(columns=True)
        self._shown = _Shown()
        table.group_keys = set()
        for key, size in self._columns(wide, bool(self._multi)):
            label = Text(key, justify="right" if key in NUMERIC_COLUMNS else "left")
            table.add_column(label, key=key, width=size)
        self._wide = wide

    def _sync(self, table: SessionTable, desired: list[tuple[str, tuple[str, ...], bool]]) -> None:
        """Make the table hold ``desired``: remove, add and update only what differs, then reorder."""
        shown = self._shown
        wanted = {key for key, _, _ in desired}
        removed = [key for key in shown.order if key not in wanted]
        if len(removed) > REBUILD_THRESHOLD:
            table.clear()  # cheaper than that many remove_row calls
            self._shown = shown = _Shown()
            removed = []
        for key in removed:
            table.remove_row(key)
            del shown.plain[key]
            del shown.first[key]
        table.group_keys = {key for key, _, is_group in desired if is_group}
        column_keys = [column.key for column in table.ordered_columns]
        order_now = [key for key in shown.order if key in wanted]
        for key, plain, is_group in desired:
            old = shown.plain.get(key)
            if old == plain:
                continue
            cells = self._group_cells(plain) if is_group else self._session_cells(plain, bool(self._multi))
            if old is None:
                table.add_row(*cells, key=key)
                order_now.append(key)
                shown.first[key] = cells[0]
            else:
                for index, (before, after) in enumerate(zip(old, plain)):
                    if before != after:
                        table.update_cell(key, column_keys[index], cells[index])
                        if index == 0:
                            shown.first[key] = cells[0]
            shown.plain[key] = plain
        order = [key for key, _, _ in desired]
        if order_now != order:
            table.reorder(order, shown.first)
        shown.order = order

    def _restore_cursor(self, table: SessionTable, key: str | None, index: int) -> None:
        if table.row_count == 0:
            return
        target: int | None = None
        if key is not None:
            try:
                target = table.get_row_index(key)
            except RowDoesNotExist:
                target = None
        if target is None:
            target = min(index, table.row_count - 1)
        if target != table.cursor_row or table.is_group_row(target):
            table.move_cursor(row=target, animate=False)

    def _update_header(self) -> None:
        total = len(self._entries)
        header = Text(no_wrap=True, overflow="ellipsis")
        header.append(f"Sessions: {total}", style="bold")
        if self.filter_text.strip():
            header.append(f" ({self._shown_count} shown)")
        if self._directory:
            header.append(" in ")
            header.append(_home_short(self._directory), style="italic")
        live = sum(1 for sid in self._live if sid in self._entries)
        if live:
            header.append(" · ")
            header.append(f"{live} live", style="bold green")
        header.append(" · sort: ")
        header.append(f"{self.sort_key} {'↓' if self.sort_descending else '↑'}", style="bold")
        if self.grouped:
            header.append(f" · by {self.group_by}", style="bold")
        if len(self._machines) > 1:
            header.append(f" · {len(self._machines)} machines")
        self.query_one("#browser-header", Static).update(header)

        if total == 0:
            where = f" in {_home_short(self._directory)}" if self._directory else ""
            message = Text(f"No saved sessions yet{where}. Sessions appear here as agents work.")
            if self.transcripts and self.transcripts[0]:
                message.append("\n\n")
                message.append_text(offer_text(*self.transcripts))
        elif self._shown_count == 0:
            message = Text("No session matches “")
            message.append(one_line(self.filter_text), style="bold")
            message.append("”. Press escape in the filter to clear it.")
        else:
            message = Text("")
        self.query_one("#browser-empty", Static).update(message)
        had_none = self.has_class("-no-sessions")
        if had_none != (total == 0):
            self.refresh_bindings()
        self.set_class(total == 0, "-no-sessions")
        self.set_class(total > 0 and self._shown_count == 0, "-no-match")
        if total == 0 and self.focused is not None:
            self.set_focus(None)  # nothing to pick or filter: escape / s still go back
        elif had_none and total > 0 and self.focused is None:
            self.focus_table()
