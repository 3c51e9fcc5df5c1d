"""Importing Claude Code transcripts from inside the TUI (the session browser's ``i``).

Counting the transcripts and importing them both run in worker threads, so
``aggregate tui`` opens as fast as ever: counting is one bounded directory scan,
and the import reports its progress in bytes to a ``ProgressBar``. The import goes
through the app's own aggregator when it writes the activity directory (so events
pass ``EventAggregator.ingest`` like live ones); with ``--no-connect`` it takes
the directory for the time of the import.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

from ..describe import one_line
from ..importer import COUNT_LIMIT, ImportReport, claude_projects_dir, count_transcripts, discover, import_transcripts

__all__ = ["ImportProgress", "offer_text", "projects_label", "run_import", "count_available", "report_text"]


def projects_label(root: Path | None = None) -> str:
    """The projects directory as a user would type it (``~/.claude/projects``)."""
    path = str(root or claude_projects_dir())
    home = os.path.expanduser("~")
    if home not in ("~", os.sep) and (path == home or path.startswith(home + os.sep)):
        return "~" + path[len(home):]
    return path


def count_available() -> tuple[int, str]:
    """(how many transcripts, where): one bounded scan, for a worker thread."""
    root = claude_projects_dir()
    return count_transcripts(root), projects_label(root)


def offer_text(count: int, where: str) -> Text:
    """The empty browser's offer: what was found and the key that imports it."""
    noun = "transcript" if count == 1 else "transcripts"
    more = "+" if count >= COUNT_LIMIT else ""
    text = Text("Found ")
    text.append(f"{count:,}{more} Claude Code {noun}", style="bold")
    text.append(" in ")
    text.append(one_line(where), style="italic")
    text.append(" — press ")
    text.append("i", style="bold reverse")
    text.append(f" to import {'it' if count == 1 else 'them'} as sessions (")
    text.append("aggregate import", style="bold")
    text.append(" does the same from a shell).")
    return text


def report_text(report: ImportReport) -> str:
    """One line for a notification."""
    new, merged = report.count("new"), report.count("merge")
    parts = [f"{new} new session{'s' if new != 1 else ''}"]
    if merged:
        parts.append(f"{merged} merged into saved ones")
    parts.append(f"{report.events_added:,} events")
    line = "Imported " + ", ".join(parts)
    if report.stats.bad_lines:
        line += f"; {report.stats.bad_lines} corrupt line{'s' if report.stats.bad_lines != 1 else ''} skipped"
        if report.stats.bad:
            first = report.stats.bad[0]
            line += f" (first: {one_line(first.path.name)}:{first.line})"
    unchanged = report.count("unchanged") + report.skipped_unchanged
    if unchanged and not new and not merged:
        line = f"Nothing new: {unchanged} session{'s' if unchanged != 1 else ''} already imported"
    return line


def run_import(app: Any, progress: Callable[[int, int, str], None], cancelled: threading.Event) -> ImportReport:
    """Import every transcript into the app's activity directory (blocking: a worker thread).

    Uses the app's aggregator when it owns the directory; refuses (AggregatorError)
    when another process does; otherwise takes the directory for the import.
    """
    from ..aggregator import EventAggregator
    from ..errors import AggregatorError

    from .viewstate import STARTING

    if getattr(app, "mode", None) == STARTING:  # the capture is taking the directory right now
        raise AggregatorError("live capture is still starting; press i again in a moment")
    sets = discover()
    aggregator = getattr(app, "aggregator", None)
    if aggregator is not None and aggregator.running:
        if not aggregator.writes:
            pid = aggregator.store.writer_pid()
            raise AggregatorError(f"the aggregator with pid {pid or '?'} writes this directory: "
                                  "run `aggregate import` after stopping it")
        return import_transcripts(sets, aggregator=aggregator, progress=progress, cancelled=cancelled.is_set)
    own = EventAggregator(config=app.config, store=app.store)
    own.start(connect=False)  # StoreLockedError when another process writes the directory
    try:
        return import_transcripts(sets, aggregator=own, progress=progress, cancelled=cancelled.is_set)
    finally:
        own.stop()


class ImportProgress(Horizontal):
    """A label and a bar over the bytes read; hidden until an import runs."""

    DEFAULT_CSS = """
    ImportProgress {
        height: 1;
        padding: 0 1;
        display: none;
    }
    ImportProgress.-running {
        display: block;
    }
    ImportProgress Label {
        width: auto;
        padding: 0 1 0 0;
    }
    """

    def compose(self) -> ComposeResult:
        yield Label("Importing transcripts", id="import-label")
        yield ProgressBar(total=None, show_eta=False, id="import-bar")

    def start(self) -> None:
        self.add_class("-running")
        self.query_one(ProgressBar).update(total=None, progress=0)

    def advance(self, done: int, total: int, label: str) -> None:
        self.query_one(ProgressBar).update(total=total or None, progress=done)
        self.query_one(Label).update(Text(f"Importing {one_line(label)[:60]}"))

    def finish(self) -> None:
        self.remove_class("-running")
