"""Session exports: full | summary | events | csv | markdown | html.

Each format is one renderer registered in ``_REGISTRY`` (html lives in
``export_html``); the CLI, the TUI's export screen and
``EventAggregator.export_session`` pick them up from ``FORMATS``. Renderers
return bytes so writing is one atomic call and tests can parse the result back
without touching disk. Renderers walk the events through ``tracked()``, which
reports progress to an optional callback: the TUI shows a progress bar and
cancels a long export by raising from that callback.
"""

from __future__ import annotations

import copy
import csv
import io
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from . import jsonio
from .describe import (
    delegation_label,
    event_summary,
    one_line,
    project_name,
    relative_path,
    safe_text,
    summarize_session,
    summary_rows,
)
from .errors import InvalidFormatError
from .model import AgentSession, SessionEvent
from .store import safe_id_fragment
from .timeutil import format_duration, parse_timestamp

Progress = Callable[[int, int], None]
"""``progress(done, total)``: events rendered so far; may raise to abort the export."""
Renderer = Callable[[AgentSession, Sequence[SessionEvent], Progress | None], bytes]

PROGRESS_STEP = 1000  # events between two progress calls

CSV_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "session_id",
    "event_type",
    "category",
    "agent_id",
    "correlation_id",
    "tool_name",
    "file_path",
    "summary",
    "data",
)


@dataclass(frozen=True)
class ExportFormat:
    """One export format: file extension, MIME type, renderer."""

    name: str
    extension: str
    media_type: str
    render: Renderer


def tracked(events: Sequence[SessionEvent], progress: Progress | None) -> Iterator[SessionEvent]:
    """The events, calling ``progress(done, total)`` every ``PROGRESS_STEP`` and at the end."""
    if progress is None:
        yield from events
        return
    total = len(events)
    progress(0, total)
    for done, event in enumerate(events, 1):
        yield event
        if done % PROGRESS_STEP == 0:
            progress(done, total)
    progress(total, total)


# --- JSON formats ---------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return jsonio.dumps(value, indent=True) + b"\n"


def _session_document(session: AgentSession) -> dict[str, Any]:
    """``session.to_dict()`` with ``events`` still empty (the key keeps its place)."""
    shell = copy.copy(session)
    shell.events = []
    return shell.to_dict()


def _render_full(session: AgentSession, events: Sequence[SessionEvent], progress: Progress | None = None) -> bytes:
    """The session file's own shape, so the seeds' jq recipes work on it."""
    document = _session_document(session)
    document["events"] = [event.to_dict() for event in tracked(events, progress)]
    return _json(document)


def _render_summary(session: AgentSession, events: Sequence[SessionEvent], progress: Progress | None = None) -> bytes:
    """Everything but the events, plus the counts people ask for first."""
    document = _session_document(session)
    del document["events"]
    document["summary"] = summarize_session(session, list(tracked(events, progress)))
    return _json(document)


def _render_events(session: AgentSession, events: Sequence[SessionEvent], progress: Progress | None = None) -> bytes:
    return _json([event.to_dict() for event in tracked(events, progress)])


# --- CSV ----------------------------------------------------------------------------------


def _render_csv(session: AgentSession, events: Sequence[SessionEvent], progress: Progress | None = None) -> bytes:
    """RFC 4180: CRLF rows, quoted when needed; ``data`` is the event's payload as compact JSON."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    root = session.working_directory
    for event in tracked(events, progress):
        data = event.data if isinstance(event.data, dict) else {}
        writer.writerow(
            (
                event.timestamp,
                event.session_id,
                event.event_type,
                event.category,
                event.agent_id or "",
                event.correlation_id or "",
                _cell_text(data.get("tool_name")),
                _cell_text(data.get("file_path")),
                event_summary(event, root=root),
                jsonio.dumps(data).decode("utf-8"),
            )
        )
    return buffer.getvalue().encode("utf-8")


def _cell_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# --- Markdown ---------------------------------------------------------------------------
#
# Payload text must read as text, never as markup: inline constructs are
# backslash-escaped, HTML is entity-escaped, and lines that would start a
# block (heading, list, setext underline, indented code) are defused.

_MD_INLINE = re.compile(r"([\\`*_\[\]|~$])")
_MD_LIST_NUMBER = re.compile(r"^(\d{1,9})([.)])")


def md_inline(text: Any) -> str:
    """One line of payload text as literal Markdown (table cells, list items)."""
    line = one_line(text)
    line = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_INLINE.sub(r"\\\1", line)


def _md_block_line(line: str) -> str:
    stripped = line.lstrip(" \t")
    indent = len(line) - len(stripped)
    body = stripped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = _MD_INLINE.sub(r"\\\1", body)
    if body[:1] in ("#", "-", "+", "="):
        body = "\\" + body
    body = _MD_LIST_NUMBER.sub(r"\1\\\2", body)
    return "&nbsp;" * indent + body


def md_quote(text: Any) -> str:
    """Multi-line payload text as a Markdown block quote, every line literal."""
    lines = safe_text(text).split("\n") if text else [""]
    return "\n".join(f"> {_md_block_line(line)}" if line.strip() else ">" for line in lines)


def md_code(text: Any, *, in_table: bool = False) -> str:
    """A code span for paths and ids; the fence outgrows any backtick run inside."""
    line = one_line(text)
    if not line:
        return ""
    longest = max((len(run) for run in re.findall(r"`+", line)), default=0)
    fence = "`" * (longest + 1)
    if line.startswith("`") or line.endswith("`"):
        line = f" {line} "
    if in_table:
        line = line.replace("|", "\\|")
    return f"{fence}{line}{fence}"


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows are already-escaped cell strings."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out.extend("| " + " | ".join(cell or " " for cell in row) + " |" for row in rows)
    return out


def _utc(moment: datetime | str | None) -> str:
    parsed = parse_timestamp(moment)
    if parsed is None:
        return "-"
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _render_markdown(session: AgentSession, events: Sequence[SessionEvent], progress: Progress | None = None) -> bytes:
    summary = summarize_session(session, events)
    root = session.working_directory
    project = project_name(session.working_directory)
    title = f"# Session {md_inline(session.session_id)}"
    if project != "-":
        title += f" ({md_inline(project)})"
    lines = [title, ""]

    details = [
        ("Session ID", md_code(session.session_id, in_table=True)),
        ("Project", md_inline(project)),
        ("Working directory", md_code(session.working_directory, in_table=True) or "-"),
        ("Status", md_inline(session.status)),
        ("Start", _utc(session.start_time)),
        ("End", _utc(session.end_time)),
        ("Duration", summary["duration"]),
        ("Events", str(summary["total_events"])),
        ("Source", md_inline(session.metadata.get("source") or "-")),
    ]
    lines += _md_table(("Field", "Value"), details) + [""]

    lines += ["## Summary", ""]
    counts = [(md_inline(title), str(count)) for title, count in summary_rows(summary)]
    lines += _md_table(("What", "Count"), counts) + [""]
    if summary["tools_used"]:
        rows = [(md_code(tool, in_table=True), str(count)) for tool, count in summary["tools_used"].items()]
        lines += _md_table(("Tool", "Calls"), rows) + [""]
    if summary["agents"]:
        lines += ["## Agents used", ""]
        lines += [f"- {md_inline(agent)} ({delegation_label(count)})" for agent, count in summary["agents"].items()]
        lines.append("")

    if session.initial_prompt:
        lines += ["## Initial prompt", "", md_quote(session.initial_prompt), ""]

    if session.delegations:
        lines += ["## Delegations", ""]
        rows = []
        for number, delegation in enumerate(session.delegations, 1):
            duration = delegation.duration
            rows.append(
                (
                    str(number),
                    md_inline(delegation.agent_type),
                    md_inline(delegation.status),
                    format_duration(duration.total_seconds() * 1000) if duration is not None else "-",
                    str(delegation.event_count),
                    str(len(delegation.files_modified)),
                    md_inline(delegation.description or delegation.instructions),
                )
            )
        lines += _md_table(("#", "Agent", "Status", "Duration", "Events", "Files", "Task"), rows) + [""]

    if summary["files_modified"]:
        lines += ["## Files modified", ""]
        lines += [f"- {md_code(relative_path(path, root))}" for path in summary["files_modified"]]
        lines.append("")

    if session.final_response:
        lines += ["## Final response", "", md_quote(session.final_response), ""]

    lines += ["## Timeline", ""]
    rows = [
        (
            _utc(event.timestamp),
            md_inline(event.category),
            md_inline(event.event_type),
            md_inline(event_summary(event, root=root)),
        )
        for event in tracked(events, progress)
    ]
    lines += _md_table(("Time", "Category", "Event", "Summary"), rows) if rows else ["No events."]
    lines.append("")
    return "\n".join(lines).encode("utf-8")


# --- HTML ---------------------------------------------------------------------------------


def _render_html(session: AgentSession, events: Sequence[SessionEvent], progress: Progress | None = None) -> bytes:
    from .export_html import render_html  # its own module; imported when asked for

    return render_html(session, events, progress)


# --- registry and entry points -----------------------------------------------------------

_REGISTRY: dict[str, ExportFormat] = {
    fmt.name: fmt
    for fmt in (
        ExportFormat("full", "json", "application/json", _render_full),
        ExportFormat("summary", "json", "application/json", _render_summary),
        ExportFormat("events", "json", "application/json", _render_events),
        ExportFormat("csv", "csv", "text/csv", _render_csv),
        ExportFormat("markdown", "md", "text/markdown", _render_markdown),
        ExportFormat("html", "html", "text/html", _render_html),
    )
}
FORMATS: tuple[str, ...] = tuple(_REGISTRY)
EXTENSIONS: dict[str, str] = {name: fmt.extension for name, fmt in _REGISTRY.items()}


def get_format(fmt: str) -> ExportFormat:
    """The format named ``fmt``; InvalidFormatError listing the valid ones otherwise."""
    try:
        return _REGISTRY[fmt]
    except (KeyError, TypeError):
        raise InvalidFormatError(
            f"invalid export format {fmt!r} (choose from {', '.join(FORMATS)})"
        ) from None


def render_export(
    session: AgentSession,
    fmt: str,
    events: Sequence[SessionEvent] | None = None,
    *,
    progress: Progress | None = None,
) -> bytes:
    """The export as bytes; ``events`` is a filtered subset (default: all of them).

    ``progress(done, total)`` is called as events are rendered (every
    ``PROGRESS_STEP`` and once at the end); an exception it raises aborts the export.
    """
    return get_format(fmt).render(session, session.events if events is None else events, progress)


def export_file_name(session_id: str, start_time: datetime | None, fmt: str) -> str:
    """``session_<id8>_<start, UTC>_<fmt>.<ext>`` (without the time when it is unknown)."""
    extension = get_format(fmt).extension
    stamp = f"_{start_time.astimezone(timezone.utc):%Y%m%d_%H%M%S}" if start_time is not None else ""
    return f"session_{safe_id_fragment(session_id)}{stamp}_{fmt}.{extension}"


def default_export_path(session: AgentSession, fmt: str, directory: Path | None = None) -> Path:
    """``export_file_name`` in ``directory`` (default: the current one)."""
    name = export_file_name(session.session_id, session.start_time, fmt)
    return (Path.cwd() if directory is None else Path(directory)) / name


def resolve_output(session: AgentSession, fmt: str, output: Path | None) -> Path:
    """Where ``export_session`` writes: ``output``, the default name inside it when it is
    a directory, or the default name in the current directory when it is None."""
    if output is None:
        return default_export_path(session, fmt)
    target = Path(output).expanduser()
    if target.is_dir():
        return default_export_path(session, fmt, target)
    return target


def human_size(size: int) -> str:
    """Bytes as people read them: "812 B", "4.2 KB", "39.8 MB"."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable; keeps type checkers content


def snapshot(session: AgentSession) -> AgentSession:
    """A copy of a live session that another thread can render while the original grows.

    Take it under the aggregator's lock. The event list, delegations, metrics and
    the small dicts are copied; events themselves are shared (the tracker finishes
    an event before it is appended and never changes it afterwards).
    """
    copied = copy.copy(session)
    copied.events = list(session.events)
    copied.delegations = [
        replace(d, tool_operations=list(d.tool_operations), files_modified=list(d.files_modified))
        for d in session.delegations
    ]
    copied.metrics = copy.deepcopy(session.metrics)
    copied.todos = list(session.todos) if isinstance(session.todos, list) else session.todos
    copied.usage = dict(session.usage)
    copied.metadata = dict(session.metadata)
    return copied


def export_session(
    session: AgentSession,
    fmt: str = "full",
    output: Path | None = None,
    events: Sequence[SessionEvent] | None = None,
    *,
    overwrite: bool = True,
    progress: Progress | None = None,
) -> Path:
    """Render and write atomically; returns the path written.

    ``output`` may be a file path, an existing directory (the default name is
    used inside it) or None (the default name in the current directory).
    With ``overwrite=False`` an existing file raises FileExistsError (checked
    before rendering, and again just before the write). ``progress`` as in
    ``render_export``.
    """
    target = resolve_output(session, fmt, output)
    if not overwrite and target.exists():
        raise FileExistsError(17, "File exists", str(target))
    payload = render_export(session, fmt, events, progress=progress)
    if not overwrite and target.exists():
        raise FileExistsError(17, "File exists", str(target))
    jsonio.write_bytes_atomic(target, payload)
    return target
