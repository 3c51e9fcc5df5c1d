"""ExportScreen: the export dialog (key ``e`` on the live screen and in the browser).

Format, scope (the whole session, or the events the timeline's filter matches),
destination (a default path that follows the format until the user edits it).
Writing uses ``export.export_session``, the code behind ``aggregate export``,
in a thread worker: the dialog shows a progress bar (events rendered of all),
then the path and size, or the error in one line. An existing file is never
replaced silently: the first press says so and the button becomes Overwrite.
Stop (escape while it runs) cancels through the progress callback, before the
atomic write, so nothing half-written is ever left behind.

The session is read in the worker through ``ExportTarget.load``: a snapshot of
a live session taken under the aggregator's lock, or a saved one loaded from
the store, so neither a 100,000-event render nor a load blocks the screen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, RadioButton, RadioSet, Static
from textual.worker import Worker, get_current_worker

from ...describe import one_line, project_name, truncate
from ...export import (
    FORMATS,
    export_file_name,
    export_session,
    human_size,
    resolve_output,
    snapshot,
)
from ...model import CATEGORIES, AgentSession, SessionEvent, SessionSummary
from ...timeutil import parse_timestamp

if TYPE_CHECKING:  # pragma: no cover
    from ..widgets.timeline import Timeline

__all__ = ["ExportScreen", "ExportTarget", "FORMAT_NOTES", "ChoiceSet"]

FORMAT_NOTES: dict[str, str] = {
    "full": "every field and event (JSON)",
    "summary": "fields and counts, no events (JSON)",
    "events": "the events, a JSON array",
    "csv": "one row per event, for spreadsheets",
    "markdown": "a readable report (Markdown)",
    "html": "a page to read in a browser",
}
WHOLE, FILTERED = "whole", "filtered"


@dataclass(frozen=True)
class ExportTarget:
    """What the dialog exports.

    ``load`` runs in the export thread and returns a session that thread may
    read while the app goes on (a snapshot of a live one, a saved one loaded). ``filtered`` holds
    the events the timeline's filter matched when the dialog opened (None: no
    filter, so there is only the whole session); ``filter_label`` says what
    that filter is.
    """

    session_id: str
    start_time: datetime | None
    event_count: int
    load: Callable[[], AgentSession]
    project: str = "-"
    filtered: Sequence[SessionEvent] | None = None
    filter_label: str = ""
    note: str = "Filter the timeline (/ search, c categories) to export part of a session."


def _reading(app: App[Any]) -> Any:
    """The aggregator's lock when the app has one (AggregateApp.reading), else a no-op."""
    from contextlib import nullcontext

    reading = getattr(app, "reading", None)
    return reading() if callable(reading) else nullcontext()


def live_target(app: App[Any], session: AgentSession, timeline: "Timeline | None" = None) -> ExportTarget:
    """The session the live panes show, and what its timeline's filter matches.

    The session is copied now, under the aggregator's lock (a few milliseconds even
    for 100,000 events: references are copied, not events), so the export writes
    what the screen showed when ``e`` was pressed, whoever appends to it meanwhile.
    """
    filtered: list[SessionEvent] | None = None
    label = ""
    with _reading(app):
        copied = snapshot(session)
        if timeline is not None and timeline.filter_active:
            filtered = timeline.matching_events()
            parts = []
            if timeline.search:
                parts.append(f'search "{truncate(one_line(timeline.search), 30)}"')
            if timeline.categories is not None:
                parts.append(f"{len(timeline.categories)} of {len(CATEGORIES)} categories")
            label = ", ".join(parts)

    return ExportTarget(
        session_id=copied.session_id,
        start_time=copied.start_time,
        event_count=len(copied.events),
        load=lambda: copied,
        project=project_name(session.working_directory),
        filtered=filtered,
        filter_label=label,
    )


def saved_target(app: App[Any], summary: SessionSummary) -> ExportTarget:
    """A session picked in the browser: loaded (or found live) when the export runs."""
    session_id = summary.session_id
    load_session = getattr(app, "load_session", None)

    def load() -> AgentSession:
        if callable(load_session):
            session = load_session(session_id)
        else:
            from ...store import SessionStore

            session = SessionStore(Path(summary.file_path).parent).load(summary.file_path)
        with _reading(app):
            return snapshot(session)

    return ExportTarget(
        session_id=session_id,
        start_time=parse_timestamp(summary.start_time),
        event_count=summary.event_count,
        load=load,
        project=project_name(summary.working_directory),
        note="Open the session (enter) and filter its timeline to export part of it.",
    )


class ChoiceSet(RadioSet, inherit_bindings=False):
    """A RadioSet where the arrows choose (no separate press), so enter is free to export.

    ``on_choose(button_id)`` is called at once when a key chooses: RadioSet.Changed
    arrives a few message hops later, after an enter typed right behind the arrow.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,right", "step(1)", "Next option", show=False),
        Binding("up,left", "step(-1)", "Previous option", show=False),
        Binding("space", "choose", "Choose", show=False),
    ]

    def __init__(self, *buttons: RadioButton, on_choose: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*buttons, **kwargs)
        self._on_choose = on_choose

    def on_mount(self) -> None:
        # RadioSet's own mount handler (it runs after this one) highlights the first option.
        self.call_after_refresh(self._highlight_pressed)

    def _highlight_pressed(self) -> None:
        if self.pressed_index >= 0:
            self._selected = self.pressed_index  # start on the chosen option

    def action_step(self, direction: int) -> None:
        if direction > 0:
            self.action_next_button()
        else:
            self.action_previous_button()
        self.action_choose()

    def action_choose(self) -> None:
        """Press the highlighted option."""
        if self._selected is None:
            return
        button = self._nodes[self._selected]
        if not isinstance(button, RadioButton) or button.disabled:
            return
        button.value = True
        if self._on_choose is not None and button.id:
            self._on_choose(button.id)

    def choose(self, button_id: str) -> None:
        """Press the option with this id (as a click would)."""
        button = self.query_one(f"#{button_id}", RadioButton)
        if not button.disabled:
            button.value = True


class _Cancelled(Exception):
    """Raised from the progress callback when the user stops the export."""


def _os_message(error: OSError) -> str:
    where = error.filename
    reason = error.strerror or one_line(str(error)) or type(error).__name__
    return f"{where}: {reason}" if where else reason


class ExportScreen(ModalScreen["Path | None"]):
    """Choose format, scope and destination; write with ``aggregate export``'s code.

    Dismisses with the path written last (None when nothing was written), as
    it was written: relative to the current directory when the destination was.
    """

    DIRECTORY: ClassVar[Path | None] = None
    """Where the default destination points (None: the current directory)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "export", "Export", id="export.go", tooltip="Write the file"),
        Binding("escape", "close", "Cancel", id="export.close",
                tooltip="Close the dialog (while writing: stop, nothing is written)"),
    ]

    DEFAULT_CSS = """
    ExportScreen {
        align: center middle;
        & > #export-dialog {
            width: 96;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: round $accent;
            border-title-color: $text;
            border-title-style: bold;
            border-subtitle-color: $text-muted;
            background: $surface;
            padding: 0 1;
        }
        & .export-heading { margin: 1 0 0 0; text-style: bold; color: $text-muted; }
        & #export-choices { height: auto; }
        & #export-format-box { width: 52; height: auto; }
        & #export-scope-box { width: 1fr; height: auto; margin-left: 2; }
        & ChoiceSet { width: 100%; height: auto; }
        & #export-path { margin: 0; padding: 0 1; background: $boost; }
        & #export-status { height: auto; min-height: 1; margin: 1 0 0 0; }
        & #export-status.-error { color: $error; }
        & #export-status.-warning { color: $warning; }
        & #export-status.-success { color: $success; }
        & #export-progress { display: none; margin: 0; }
        & #export-progress.-shown { display: block; }
        & #export-buttons { height: auto; align-horizontal: right; margin: 1 0 0 0; }
        & #export-buttons Button { margin-left: 2; min-width: 12; }
    }
    """

    class Progressed(Message):
        """The worker rendered ``done`` of ``total`` events (total 0: loading the session)."""

        def __init__(self, done: int, total: int) -> None:
            super().__init__()
            self.done = done
            self.total = total

        def can_replace(self, message: Message) -> bool:  # only the latest count matters
            return isinstance(message, ExportScreen.Progressed)

    class Finished(Message):
        """Written: ``path``, ``size`` bytes; else ``error``, ``exists`` (the file that is there) or ``cancelled``."""

        def __init__(
            self,
            path: Path | None = None,
            size: int = 0,
            *,
            error: str | None = None,
            exists: Path | None = None,
            cancelled: bool = False,
        ) -> None:
            super().__init__()
            self.path = path
            self.size = size
            self.error = error
            self.exists = exists
            self.cancelled = cancelled

    def __init__(self, target: ExportTarget, *, fmt: str = "full", directory: Path | None = None) -> None:
        super().__init__()
        self.target = target
        self.fmt = fmt if fmt in FORMATS else FORMATS[0]
        self.scope = WHOLE
        self.directory = Path(directory or self.DIRECTORY or Path.cwd())
        self.written: Path | None = None  # the last file written
        self.last_error: str | None = None
        self._auto_destination = self.default_destination(self.fmt)
        self._confirm: tuple[str, str] | None = None  # (destination, format) the user was warned about
        self._worker: Worker[None] | None = None

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        target = self.target
        with Vertical(id="export-dialog") as dialog:
            title = f"Export session {one_line(target.session_id)[:8]}"
            if target.project != "-":
                title += f" · {truncate(one_line(target.project), 40)}"
            dialog.border_title = Text(title)  # a project name: never parsed as markup
            dialog.border_subtitle = "tab next · arrows choose · enter export · esc cancel"
            with Horizontal(id="export-choices"):
                with Vertical(id="export-format-box"):
                    yield Label("Format", classes="export-heading")
                    yield ChoiceSet(
                        *(
                            RadioButton(
                                Text.assemble((f"{name:<9}", "bold"), FORMAT_NOTES.get(name, "")),
                                value=name == self.fmt,
                                id=f"format-{name}",
                            )
                            for name in FORMATS
                        ),
                        id="export-format",
                        compact=True,
                        on_choose=self._choose_format,
                    )
                with Vertical(id="export-scope-box"):
                    yield Label("Scope", classes="export-heading")
                    whole = Text(f"Whole session ({target.event_count:,} events)")
                    if target.filtered is None:
                        filtered = Text("Filtered events (no filter)")
                    else:
                        filtered = Text(f"Filtered: {len(target.filtered):,} of {target.event_count:,} events")
                    yield ChoiceSet(
                        RadioButton(whole, value=True, id="scope-whole"),
                        RadioButton(filtered, id="scope-filtered", disabled=target.filtered is None),
                        id="export-scope",
                        compact=True,
                        on_choose=self._choose_scope,
                    )
                    if target.filtered is not None:
                        note = Text(target.filter_label, style="italic")
                    else:
                        note = Text(target.note, style="dim")
                    yield Static(note, id="export-scope-note")
            yield Label("Destination (a file, or a directory for the default name)", classes="export-heading")
            yield Input(value=self._auto_destination, id="export-path", compact=True)
            yield Static("", id="export-status")
            yield ProgressBar(id="export-progress", show_eta=False)
            with Horizontal(id="export-buttons"):
                yield Button("Export", id="export-go", variant="primary", compact=True)
                yield Button("Cancel", id="export-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#export-format", ChoiceSet).focus()

    # -- state ----------------------------------------------------------------------------------

    def default_destination(self, fmt: str) -> str:
        return str(self.directory / export_file_name(self.target.session_id, self.target.start_time, fmt))

    @property
    def destination(self) -> str:
        return self.query_one("#export-path", Input).value

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_running

    def _set_status(self, text: str | Text, kind: str = "") -> None:
        status = self.query_one("#export-status", Static)
        status.update(text if isinstance(text, Text) else Text(text))
        for name in ("error", "warning", "success"):
            status.set_class(kind == name, f"-{name}")

    def _reset_confirm(self) -> None:
        if self._confirm is not None:
            self._confirm = None
            button = self.query_one("#export-go", Button)
            button.label = "Export"
            button.variant = "primary"
            self._set_status("")

    @on(RadioSet.Changed, "#export-format")
    def _format_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        self._choose_format(event.pressed.id or "")

    @on(RadioSet.Changed, "#export-scope")
    def _scope_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        self._choose_scope(event.pressed.id or "")

    def _choose_format(self, button_id: str) -> None:
        fmt = button_id.removeprefix("format-")
        if fmt not in FORMATS or fmt == self.fmt:
            return
        self.fmt = fmt
        path = self.query_one("#export-path", Input)
        if path.value == self._auto_destination:  # not edited by the user: follow the format
            self._auto_destination = self.default_destination(fmt)
            path.value = self._auto_destination
        self._reset_confirm()

    def _choose_scope(self, button_id: str) -> None:
        scope = FILTERED if button_id == "scope-filtered" else WHOLE
        if scope != self.scope:
            self.scope = scope
            self._reset_confirm()

    @on(Input.Changed, "#export-path")
    def _path_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._confirm is not None and self._confirm != (event.value, self.fmt):
            self._reset_confirm()

    @on(Input.Submitted, "#export-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_export()

    @on(Button.Pressed, "#export-go")
    def _go_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_export()

    @on(Button.Pressed, "#export-cancel")
    def _cancel_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_close()

    # -- actions ----------------------------------------------------------------------------------

    def action_export(self) -> None:
        """Start writing (a second press after "exists" overwrites)."""
        if self.running:
            return
        destination = self.destination.strip()
        if not destination:
            self._set_status("Choose a file to write (the destination is empty).", "error")
            self.query_one("#export-path", Input).focus()
            return
        overwrite = self._confirm == (self.destination, self.fmt)
        events = self.target.filtered if self.scope == FILTERED else None
        self.last_error = None
        self.query_one("#export-go", Button).disabled = True
        self.query_one("#export-cancel", Button).label = "Stop"
        bar = self.query_one("#export-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.add_class("-shown")
        self._set_status("Loading the session…")
        self._worker = self._write(self.fmt, destination, events, overwrite)

    def action_close(self) -> None:
        """Stop a running export; otherwise close, handing back the path written."""
        if self.running and self._worker is not None:
            self._worker.cancel()
            self._set_status("Stopping…", "warning")
            return
        self.dismiss(self.written)

    # -- the worker -------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="export", exit_on_error=False, description="Exporting a session")
    def _write(self, fmt: str, destination: str, events: Sequence[SessionEvent] | None, overwrite: bool) -> None:
        worker = get_current_worker()

        def progress(done: int, total: int) -> None:
            if worker.is_cancelled:
                raise _Cancelled
            self.post_message(self.Progressed(done, total))

        output = Path(os.path.expanduser(destination))
        target = output
        try:
            session = self.target.load()
            if worker.is_cancelled:
                raise _Cancelled
            target = resolve_output(session, fmt, output)
            if not overwrite and target.exists():
                self.post_message(self.Finished(exists=target))
                return
            self.post_message(self.Progressed(0, len(session.events if events is None else events)))
            written = export_session(session, fmt, target, events, overwrite=overwrite, progress=progress)
            size = written.stat().st_size
        except _Cancelled:
            self.post_message(self.Finished(cancelled=True))
        except FileExistsError as error:
            if error.filename == str(target) and not overwrite:  # created meanwhile
                self.post_message(self.Finished(exists=target))
            else:
                self.post_message(self.Finished(error=f"cannot write {destination}: {_os_message(error)}"))
        except OSError as error:
            self.post_message(self.Finished(error=f"cannot write {destination}: {_os_message(error)}"))
        except Exception as error:  # noqa: BLE001 - shown in the dialog, never raised into the UI
            self.post_message(self.Finished(error=one_line(str(error)) or type(error).__name__))
        else:
            self.post_message(self.Finished(written, size))

    def on_export_screen_progressed(self, message: Progressed) -> None:
        if not self.running:
            return
        bar = self.query_one("#export-progress", ProgressBar)
        if message.total <= 0 and message.done == 0 and bar.total is None:
            return  # still loading
        bar.update(total=max(message.total, 1), progress=message.done if message.total else 1)
        if message.done >= message.total:
            self._set_status(f"Writing {message.total:,} events…")
        else:
            self._set_status(f"Rendering {message.done:,} of {message.total:,} events…")

    def on_export_screen_finished(self, message: Finished) -> None:
        self._worker = None
        go = self.query_one("#export-go", Button)
        go.disabled = False
        cancel = self.query_one("#export-cancel", Button)
        bar = self.query_one("#export-progress", ProgressBar)
        if message.path is not None:
            self.written = message.path
            self._confirm = None
            go.label, go.variant = "Export", "primary"
            if bar.total is None:
                bar.update(total=1)
            bar.update(progress=bar.total)
            cancel.label = "Close"
            text = Text("✓ Wrote ", style="bold")
            text.append(str(message.path))
            text.append(f" ({human_size(message.size)})")
            self._set_status(text, "success")
            cancel.focus()
            return
        bar.remove_class("-shown")
        cancel.label = "Close" if self.written is not None else "Cancel"
        if message.exists is not None:
            self._confirm = (self.destination, self.fmt)
            go.label, go.variant = "Overwrite", "warning"
            text = Text("⚠ ")
            text.append(str(message.exists))
            text.append(" exists. Press Overwrite (or enter) to replace it, or change the destination.")
            self._set_status(text, "warning")
            go.focus()
        elif message.cancelled:
            self._set_status("Stopped: nothing was written.", "warning")
            go.focus()
        else:
            self.last_error = message.error
            self._set_status(Text("✕ " + one_line(message.error or "export failed")), "error")
            self.query_one("#export-path", Input).focus()
