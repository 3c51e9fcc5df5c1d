"""The ``html`` export: one self-contained page a person opens in a browser and reads.

Summary header (ids, project, times, status, counts, tools, agents, usage),
the initial prompt and final response, delegations, files, and the timeline:
one table row per event (time, coloured category, type, one-line summary,
agent) with the event's full JSON in a collapsed ``<details>``.

Safety: every piece of text is ``html.escape``-d (quotes too); summaries come
from ``describe`` (control characters and bidi overrides removed) and the
payload JSON escapes the controls JSON leaves raw. The page carries no script,
font, image or link to anything outside it, and a Content-Security-Policy
forbids them, so even a payload that slipped through could not run or call
home. The category filter is pure CSS (checkboxes and sibling selectors).

Speed: a 100,000-event session is rendered by appending strings to one list,
joined once; time stamps take ``datetime.fromisoformat``'s fast path.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import __version__, jsonio
from .describe import (
    delegation_label,
    event_summary,
    one_line,
    project_name,
    relative_path,
    safe_text,
    summarize_session,
    summary_rows,
    truncate,
)
from .model import CATEGORIES, FILE_TOOLS, FILE_WRITE_TOOLS, AgentSession, SessionEvent
from .timeutil import format_duration, parse_timestamp

SUMMARY_CHARS = 200  # the one-line summary in a timeline row (the payload below it has everything)

# One colour per category: the TUI timeline's palette, readable on light and dark pages.
CATEGORY_COLOURS: dict[str, str] = {
    "prompt": "#2f7fd0",
    "delegation": "#a45cc0",
    "tool": "#c0861a",
    "file": "#3d9a4d",
    "todo": "#c0703f",
    "response": "#1a9a9a",
    "memory": "#c84d8a",
    "meta": "#7a7f88",
}
_FALLBACK_COLOUR = CATEGORY_COLOURS["meta"]

# What JSON leaves raw but a page should not show raw: DEL and C1 controls,
# bidi embeddings/overrides/isolates (they reorder what follows), line separators.
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")

CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

STYLE = """
:root { color-scheme: light dark; --fg: #1d2024; --muted: #60666f; --bg: #ffffff; --panel: #f4f5f7;
  --line: #dde0e4; --accent: #2f7fd0; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e4e6ea; --muted: #9aa0a8; --bg: #16181b; --panel: #202328; --line: #33373d; --accent: #6aa8f0; }
}
* { box-sizing: border-box; }
body { margin: 0; padding: 1.5rem 2rem 3rem; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: var(--bg); }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; margin: 2rem 0 .6rem; padding-bottom: .25rem; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 1rem; }
.notice { background: var(--panel); border-left: 4px solid var(--accent); padding: .5rem .8rem; margin: 1rem 0; }
.grid { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
table { border-collapse: collapse; }
th, td { text-align: left; vertical-align: top; padding: .25rem .6rem; border-bottom: 1px solid var(--line); }
th { background: var(--panel); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { background: none; color: var(--muted); font-weight: normal; white-space: nowrap; }
table.wide { width: 100%; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { margin: .3rem 0; padding: .6rem .8rem; background: var(--panel); border-radius: 4px; white-space: pre-wrap;
  overflow-wrap: anywhere; max-height: 40rem; overflow: auto; }
pre.text { font-family: inherit; font-size: inherit; }
td { overflow-wrap: anywhere; }
.cat { display: inline-block; padding: 0 .45rem; border-radius: 3px; color: #fff; font-size: 12px; white-space: nowrap; }
.st-completed, .st-done { color: #3d9a4d; } .st-failed, .st-interrupted { color: #d04040; font-weight: 600; }
.st-running, .st-active { color: #c0861a; font-weight: 600; } .st-stale, .st-timed_out { color: var(--muted); }
.muted { color: var(--muted); }
details > summary { cursor: pointer; }
#events td.t { white-space: nowrap; color: var(--muted); }
#events td.ty, #events td.a { white-space: nowrap; }
#timeline > input { margin: 0 .2rem 0 .9rem; vertical-align: middle; }
#timeline > label { cursor: pointer; }
#timeline > table { margin-top: .6rem; }
footer { margin-top: 2.5rem; color: var(--muted); font-size: 12px; }
"""


def _e(value: Any) -> str:
    """One line of text, escaped for HTML (quotes included: safe in attributes too)."""
    return html.escape(one_line(value), quote=True)


def _block(value: Any) -> str:
    """Multi-line text, controls removed, escaped."""
    return html.escape(safe_text(value), quote=True)


def _utc(moment: datetime | str | None) -> str:
    parsed = parse_timestamp(moment)
    if parsed is None:
        return "-"
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _moment(timestamp: Any) -> datetime | None:
    """An event time in UTC (the stored ISO form parses on the fast path)."""
    moment: datetime | None = None
    if isinstance(timestamp, str) and len(timestamp) >= 19 and timestamp[10] in "T ":
        try:
            moment = datetime.fromisoformat(timestamp)
        except ValueError:
            moment = None
    if moment is None:
        moment = parse_timestamp(timestamp)
        if moment is None:
            return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


def _payload_json(event: SessionEvent) -> str:
    """The event as indented JSON, escaped for a ``<pre>``."""
    document = event.to_dict()
    try:
        text = jsonio.dumps(document, indent=True).decode("utf-8")
    except (TypeError, ValueError):  # e.g. lone surrogates, which orjson refuses
        text = json.dumps(document, indent=2, ensure_ascii=True, default=str)
    if not text.isascii() or "\x7f" in text:
        text = _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
    return html.escape(text, quote=False)  # element text: quotes need no escaping (and it is most of the page)


def event_agent(event: SessionEvent) -> str:
    """Who did it: the delegation the event was attributed to, else its own agent (as the TUI says)."""
    data = event.data if isinstance(event.data, dict) else {}  # dict: isinstance(Mapping) is slow
    for value in (data.get("attributed_to"), data.get("agent_type"), event.agent_id, data.get("agent_id")):
        text = one_line(value)
        if text:
            return text
    return ""


def _counted(counts: Iterable[tuple[str, int]]) -> str:
    return " · ".join(f"{_e(name)}&nbsp;{count:,}" for name, count in counts)


def _status(value: Any) -> str:
    text = one_line(value) or "unknown"
    css = re.sub(r"[^a-z_]", "", text.lower())
    return f'<span class="st-{css}">{html.escape(text)}</span>'


def _facts(rows: Iterable[tuple[str, str]]) -> list[str]:
    """A two-column table; values are already HTML."""
    out = ['<table class="facts">']
    out.extend(f"<tr><th>{html.escape(label)}</th><td>{value}</td></tr>" for label, value in rows)
    out.append("</table>")
    return out


class _Categories:
    """Category -> a CSS class ``kN`` (category names come from data: never put them in CSS)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.index: dict[str, int] = {}
        for name in names:
            self.index.setdefault(name, len(self.index))

    def css(self, name: str) -> str:
        index = self.index.get(name)
        if index is None:
            index = self.index[name] = len(self.index)
        return f"k{index}"

    def colour(self, name: str) -> str:
        return CATEGORY_COLOURS.get(name, _FALLBACK_COLOUR)


def _file_rows(session: AgentSession, events: Sequence[SessionEvent], modified: Sequence[str]) -> list[tuple[str, Counter[str], bool]]:
    """(path, tool -> calls, modified) for every file the events touched, in first-touch order.

    A call counts once: the larger of its Pre and Post counts, as the summary counts tools.
    """
    pre: dict[str, Counter[str]] = {}
    post: dict[str, Counter[str]] = {}
    for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        tool, path = data.get("tool_name"), data.get("file_path")
        if not isinstance(tool, str) or tool not in FILE_TOOLS or not isinstance(path, str) or not path:
            continue
        if event.event_type == "PreToolUse":
            pre.setdefault(path, Counter())[tool] += 1
            post.setdefault(path, Counter())
        elif event.event_type.startswith("PostToolUse"):
            post.setdefault(path, Counter())[tool] += 1
            pre.setdefault(path, Counter())
    written = set(modified)
    rows: list[tuple[str, Counter[str], bool]] = []
    for path in post:  # insertion order: first touch
        tools = Counter({tool: max(pre[path][tool], post[path][tool]) for tool in {*pre[path], *post[path]}})
        rows.append((path, tools, path in written or any(tool in FILE_WRITE_TOOLS for tool in tools)))
    seen = {path for path, _, _ in rows}
    rows.extend((path, Counter(), True) for path in modified if path not in seen)
    return rows


def render_html(
    session: AgentSession,
    events: Sequence[SessionEvent],
    progress: Callable[[int, int], None] | None = None,
) -> bytes:
    """The page as UTF-8 bytes; ``events`` may be a filtered subset of the session's."""
    from .export import tracked  # the one progress walker every renderer uses

    out: list[str] = []
    add = out.append
    summary = summarize_session(session, events)
    root = session.working_directory
    project = project_name(root)
    filtered = events is not session.events
    title = f"Session {one_line(session.session_id)}" + (f" · {project}" if project != "-" else "")

    add("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
    add(f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n')
    add('<meta name="viewport" content="width=device-width, initial-scale=1">\n')
    add(f'<meta name="generator" content="agent-aggregator {html.escape(__version__)}">\n')
    add(f"<title>{_e(title)}</title>\n<style>{STYLE}")
    categories = _Categories([*CATEGORIES, *summary["event_counts"]])
    present = {name: count for name, count in summary["event_counts"].items() if count}
    for name in present:
        css = categories.css(name)
        add(f".cat.{css} {{ background: {categories.colour(name)}; }}\n")
        add(f"#show-{css}:not(:checked) ~ table tr.{css} {{ display: none; }}\n")
    add("</style>\n</head>\n<body>\n")

    # -- header ------------------------------------------------------------------------------
    add(f"<header>\n<h1>Session <span class=\"mono\">{_e(session.session_id)}</span></h1>\n")
    add(f'<p class="sub">{_e(project)} · {_status(session.status)} · {_e(summary["duration"])} · '
        f'{summary["total_events"]:,} events · started {_utc(session.start_time)}</p>\n</header>\n')
    if filtered:
        add(f'<p class="notice">Filtered export: {len(events):,} of {len(session.events):,} events. '
            "Counts below are of the exported events; delegations are the whole session's.</p>\n")

    add('<section id="summary">\n<h2>Summary</h2>\n<div class="grid">\n')
    metadata = session.metadata if isinstance(session.metadata, Mapping) else {}
    facts = [
        ("Session ID", f'<span class="mono">{_e(session.session_id)}</span>'),
        ("Project", _e(project)),
        ("Working directory", f'<span class="mono">{_e(root) or "-"}</span>'),
        ("Status", _status(session.status)),
        ("Start", _utc(session.start_time)),
        ("End", _utc(session.end_time)),
        ("Duration", _e(summary["duration"])),
        ("Events", f"{summary['total_events']:,}" + (f" of {len(session.events):,}" if filtered else "")),
        ("Delegations", f"{len(session.delegations):,}"),
        ("Files modified", f"{len(summary['files_modified']):,}"),
    ]
    for key, label in (("source", "Source"), ("hostname", "Host"), ("git_branch", "Git branch")):
        if metadata.get(key):
            facts.append((label, _e(metadata[key])))
    out.extend(_facts(facts))
    counts = [(html.escape(name), f'<span class="n">{count:,}</span>') for name, count in summary_rows(summary)]
    out.extend(_facts(counts))
    metrics = session.metrics
    outcome = [
        ("Successful delegations", f"{metrics.successful_delegations:,}"),
        ("Failed delegations", f"{metrics.failed_delegations:,}"),
    ]
    if metrics.dropped_events:
        outcome.append(("Dropped events", f"{metrics.dropped_events:,}"))
    if isinstance(session.usage, Mapping):
        outcome.extend((one_line(key) or "-", _e(value)) for key, value in session.usage.items()
                       if not isinstance(value, (dict, list)))
    out.extend(_facts(outcome))
    add("</div>\n")
    if summary["tools_used"]:
        add(f'<p><strong>Tools:</strong> {_counted(summary["tools_used"].items())}</p>\n')
    if summary["agents"]:
        agents = " · ".join(f"{_e(agent)} ({delegation_label(count)})" for agent, count in summary["agents"].items())
        add(f"<p><strong>Agents used:</strong> {agents}</p>\n")
    add("</section>\n")

    if session.initial_prompt:
        add(f'<section id="prompt">\n<h2>Initial prompt</h2>\n<pre class="text">{_block(session.initial_prompt)}</pre>\n</section>\n')
    if session.final_response:
        add(f'<section id="response">\n<h2>Final response</h2>\n<pre class="text">{_block(session.final_response)}</pre>\n</section>\n')

    # -- delegations ---------------------------------------------------------------------------
    add(f'<section id="delegations">\n<h2>Delegations ({len(session.delegations):,})</h2>\n')
    if session.delegations:
        add('<table class="wide">\n<thead><tr><th class="n">#</th><th>Agent</th><th>Task</th><th>Status</th>'
            '<th>Started</th><th class="n">Duration</th><th class="n">Events</th><th>Tools</th><th>Files</th></tr></thead>\n<tbody>\n')
        for number, delegation in enumerate(session.delegations, 1):
            duration = delegation.duration
            task = one_line(delegation.description or delegation.instructions) or "-"
            detail = safe_text(delegation.instructions)
            if delegation.response_preview:
                detail = f"{detail}\n\nResult: {safe_text(delegation.response_preview)}".strip()
            task_html = (
                f"<details><summary>{html.escape(truncate(task, SUMMARY_CHARS))}</summary>"
                f'<pre class="text">{html.escape(detail)}</pre></details>'
                if detail and detail != task else html.escape(task)
            )
            tools = Counter(one_line(tool) for tool in delegation.tool_operations)
            files = [relative_path(path, root) for path in delegation.files_modified]
            files_html = (
                f"<details><summary>{len(files):,}</summary><ul>"
                + "".join(f'<li class="mono">{html.escape(path)}</li>' for path in files)
                + "</ul></details>" if files else '<span class="muted">-</span>'
            )
            add(
                f'<tr><td class="n">{number}</td><td>{_e(delegation.agent_type)}</td><td>{task_html}</td>'
                f"<td>{_status(delegation.status)}</td><td>{_utc(delegation.start_time)}</td>"
                f'<td class="n">{format_duration(duration.total_seconds() * 1000) if duration is not None else "-"}</td>'
                f'<td class="n">{delegation.event_count:,}</td><td>{_counted(tools.most_common()) or "-"}</td>'
                f"<td>{files_html}</td></tr>\n"
            )
        add("</tbody>\n</table>\n")
    else:
        add('<p class="muted">No delegations.</p>\n')
    add("</section>\n")

    # -- files -----------------------------------------------------------------------------------
    file_rows = _file_rows(session, events, summary["files_modified"])
    add(f'<section id="files">\n<h2>Files ({len(file_rows):,})</h2>\n')
    if file_rows:
        add('<table>\n<thead><tr><th>File</th><th>Modified</th><th class="n">Operations</th><th>By tool</th></tr></thead>\n<tbody>\n')
        for path, tools, modified in file_rows:
            add(
                f'<tr><td class="mono">{_e(relative_path(path, root))}</td><td>{"yes" if modified else ""}</td>'
                f'<td class="n">{sum(tools.values()):,}</td><td>{_counted(tools.most_common()) or "-"}</td></tr>\n'
            )
        add("</tbody>\n</table>\n")
    else:
        add('<p class="muted">No file operations.</p>\n')
    add("</section>\n")

    # -- timeline ----------------------------------------------------------------------------------
    add(f'<section id="timeline">\n<h2>Timeline ({len(events):,} events, UTC)</h2>\n')
    if present:
        add('<span class="muted">Show:</span>\n')
        for name, count in present.items():
            css = categories.css(name)
            add(f'<input type="checkbox" id="show-{css}" checked><label for="show-{css}">'
                f'<span class="cat {css}">{_e(name)}</span> {count:,}</label>\n')
    if events:
        add('<table class="wide" id="events">\n<thead><tr><th>Time</th><th>Category</th><th>Event</th>'
            "<th>Summary (click for the event's data)</th><th>Agent</th></tr></thead>\n<tbody>\n")
        day = None
        for event in tracked(events, progress):
            moment = _moment(event.timestamp)
            if moment is None:
                shown, full = "--:--:--.---", _e(event.timestamp)
            else:
                clock = "%02d:%02d:%02d.%03d" % (moment.hour, moment.minute, moment.second, moment.microsecond // 1000)
                date = moment.date()
                shown = clock if date == day else f"{date.isoformat()} {clock}"
                day = date
                full = moment.isoformat()
            category = one_line(event.category)
            css = categories.css(event.category)
            line = event_summary(event, root=root)
            if len(line) > SUMMARY_CHARS:  # characters, not terminal cells: a browser wraps
                line = line[: SUMMARY_CHARS - 1].rstrip() + "…"
            add(
                f'<tr class="{css}"><td class="t" title="{full}">{shown}</td>'
                f'<td><span class="cat {css}">{html.escape(category)}</span></td>'
                f'<td class="ty">{_e(event.event_type)}</td>'
                f"<td><details><summary>{html.escape(line)}</summary><pre>{_payload_json(event)}</pre></details></td>"
                f'<td class="a">{_e(event_agent(event))}</td></tr>\n'
            )
        add("</tbody>\n</table>\n")
    else:
        add('<p class="muted">No events.</p>\n')
    add("</section>\n")

    add(f"<footer>Exported by agent-aggregator {html.escape(__version__)}. "
        "Times are UTC. Payloads are shown as captured, as JSON.</footer>\n</body>\n</html>\n")
    return "".join(out).encode("utf-8", "replace")


__all__ = ["CATEGORY_COLOURS", "CSP", "event_agent", "render_html"]
