"""Plain-text descriptions of events and sessions, shared by every view.

The CLI, the exports and (later) the TUI all show "what happened" the same
way, so the wording lives here once. Everything returned is plain text made
safe for one line: newlines, terminal escape codes and bidi overrides in
payloads are collapsed, never passed through. Rich markup is not a concern of
this module; callers render the text literally.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import unicodedata
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from .model import (
    ACTIVE,
    CATEGORIES,
    DELEGATION,
    DELEGATION_TOOLS,
    FILE,
    FILE_WRITE_TOOLS,
    PROMPT,
    RESPONSE,
    TODO,
    TODO_TOOLS,
    AgentSession,
    SessionEvent,
    SessionSummary,
)
from .timeutil import format_duration, now_utc, parse_timestamp

ELLIPSIS = "…"

# C0/C1 controls (ESC included), all whitespace, line/paragraph separators.
_COLLAPSE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Controls other than the line feed (for multi-line text).
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
# Bidi embeddings, overrides and isolates would reorder what follows on screen.
_INVISIBLE = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# tool name -> tool_input keys that say what the call was about, best first.
_TOOL_SUBJECT_KEYS: dict[str, tuple[str, ...]] = {
    "Bash": ("command",),
    "BashOutput": ("bash_id", "shell_id"),
    "KillShell": ("shell_id",),
    "Grep": ("pattern",),
    "Glob": ("pattern",),
    "LS": ("path",),
    "WebFetch": ("url",),
    "WebSearch": ("query",),
    "Skill": ("skill", "command"),
    "SlashCommand": ("command",),
}
_GENERIC_SUBJECT_KEYS = (
    "command", "file_path", "path", "pattern", "url", "query", "description", "prompt", "name",
)
_FILE_PATH_KEYS = ("file_path", "notebook_path", "path")

# meta/memory events: the most telling field, with a label when the bare value would puzzle.
_META_FIELDS: tuple[tuple[str, str], ...] = (
    ("message", ""),
    ("error", "error: "),
    ("reason", "reason: "),
    ("source", "source: "),
    ("trigger", "trigger: "),
    ("task_subject", ""),
    ("task_description", ""),
    ("teammate_name", "teammate: "),
    ("hook_name", "hook: "),
    ("key", ""),
    ("content", ""),
    ("summary", ""),
)


# --- text primitives --------------------------------------------------------------------


def format_cost(value: float) -> str:
    """A run's cost estimate: "$0.1351" below a dollar (runs often cost cents), "$2.46" above."""
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def one_line(value: Any) -> str:
    """Any value as a single safe line: runs of whitespace/control characters become one space."""
    if value is None:
        return ""
    if not isinstance(value, str):
        if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            value = " ".join(value)
        elif isinstance(value, (dict, list, tuple)):
            value = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
        else:
            value = str(value)
    if value.isascii() and value.isprintable():  # the common case, exactly: no control or bidi characters
        return value.strip() if "  " not in value else _COLLAPSE.sub(" ", value).strip()
    return _COLLAPSE.sub(" ", _INVISIBLE.sub("", value)).strip()


def safe_text(value: Any) -> str:
    """Multi-line text with control characters removed but line breaks kept (full prompts)."""
    text = value if isinstance(value, str) else one_line(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    text = _CONTROL.sub(" ", _INVISIBLE.sub("", text.expandtabs(4)))
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _char_cells(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def cell_len(text: str) -> int:
    """Terminal columns a one-line text takes (wide CJK/emoji count two)."""
    if text.isascii():
        return len(text)
    return sum(_char_cells(char) for char in text)


def truncate(text: str, width: int | None) -> str:
    """Cut ``text`` to ``width`` terminal columns, ending with "…" when something was cut."""
    if width is None or cell_len(text) <= width:
        return text
    if width <= 0:
        return ""
    budget = width - 1
    used = 0
    kept: list[str] = []
    for char in text:
        cells = _char_cells(char)
        if used + cells > budget:
            break
        kept.append(char)
        used += cells
    return "".join(kept).rstrip() + ELLIPSIS


def relative_path(path: Any, root: Any) -> str:
    """``path`` relative to ``root`` when it lies inside it, else unchanged.

    Purely lexical: the files usually live on the machine that ran the agent,
    not this one, so nothing is resolved on disk.
    """
    text = one_line(path)
    if not text or not root:
        return text
    base = one_line(os.fspath(root)) if isinstance(root, os.PathLike) else one_line(root)
    base = base.rstrip("/") or "/"
    if not (posixpath.isabs(text) and posixpath.isabs(base)):
        return text
    normal = posixpath.normpath(text)
    if normal == base:
        return "."
    prefix = base if base.endswith("/") else base + "/"
    return normal[len(prefix):] if normal.startswith(prefix) else text


def project_name(working_directory: Any) -> str:
    """The project a session belongs to: its working directory's last component ("-" if unknown)."""
    text = one_line(working_directory).rstrip("/\\")
    if not text:
        return "-"
    cut = max(text.rfind("/"), text.rfind("\\"))  # re.split(r"[/\\]", text)[-1], without a regex per row
    return text[cut + 1:] or text


# --- one event ----------------------------------------------------------------------------


def event_summary(event: SessionEvent, width: int | None = None, *, root: Any = None) -> str:
    """One line saying what an event was: "Edit src/app.py", "Bash: pytest -q ok" ...

    ``root`` (usually the session's working directory) shortens file paths;
    ``width`` truncates to that many terminal columns.
    """
    data = event.data if isinstance(event.data, Mapping) else {}
    body, outcome = _describe(event, data, root)
    body = body or one_line(event.event_type) or "event"
    if not outcome or width is None or cell_len(body + outcome) <= width:
        return truncate(body + outcome, width)
    if cell_len(outcome) <= width // 2:
        return truncate(body, width - cell_len(outcome)) + outcome
    return truncate(body + outcome, width)


def _describe(event: SessionEvent, data: Mapping[str, Any], root: Any) -> tuple[str, str]:
    """(what, outcome) for an event; the outcome is kept visible when the line is cut."""
    event_type = event.event_type
    tool_name = data.get("tool_name") if isinstance(data.get("tool_name"), str) else None
    category = event.category
    if category == PROMPT:
        return one_line(_first(data, "prompt", "message")), ""
    if event_type in ("SubagentStart", "SubagentStop"):
        return _agent_line(event, data), ""
    if tool_name is not None and (event_type.endswith("ToolUse") or event_type.startswith("PostToolUse")):
        return _tool_line(event_type, tool_name, data, root), _outcome(event_type, data)
    if category == RESPONSE:
        text = _first(data, "response", "error", "message", "reason")
        return one_line(text), ""
    if category == TODO:
        return _todo_line(data), _outcome(event_type, data)
    if tool_name is not None:  # PermissionRequest / PermissionDenied and look-alikes
        detail = _meta_line(data)
        line = _tool_line(event_type, tool_name, data, root)
        return (f"{line} ({detail})" if detail else line), ""
    return _meta_line(data), ""


def _first(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = data.get(key)
        if value not in (None, "", [], {}):
            return value
    return None


def _tool_input(data: Mapping[str, Any]) -> Mapping[str, Any]:
    value = data.get("tool_input")
    return value if isinstance(value, Mapping) else {}


def _tool_line(event_type: str, tool_name: str, data: Mapping[str, Any], root: Any) -> str:
    tool_input = _tool_input(data)
    name = one_line(tool_name)
    if tool_name in DELEGATION_TOOLS:
        agent = one_line(_first(data, "subagent_type", "agent_type") or tool_input.get("subagent_type"))
        what = one_line(
            _first(data, "description", "instructions")
            or _first(tool_input, "description", "prompt")
        )
        agent = agent or name
        return f"{agent}: {what}" if what else agent
    if tool_name in TODO_TOOLS:
        return _todo_line(data)
    path = data.get("file_path") if isinstance(data.get("file_path"), str) else _first(tool_input, *_FILE_PATH_KEYS)
    if tool_name in _TOOL_SUBJECT_KEYS:
        subject = _first(tool_input, *_TOOL_SUBJECT_KEYS[tool_name])
        if subject is not None:
            line = f"{name}: {one_line(subject)}"
            where = tool_input.get("path") if tool_name == "Grep" else None
            return f"{line} in {relative_path(where, root)}" if isinstance(where, str) and where else line
    if isinstance(path, str) and path:
        return f"{name} {relative_path(path, root)}"
    subject = _first(tool_input, *_GENERIC_SUBJECT_KEYS)
    if subject is None:
        subject = next((v for v in tool_input.values() if isinstance(v, str) and v.strip()), None)
    return f"{name}: {one_line(subject)}" if subject is not None else name


def _outcome(event_type: str, data: Mapping[str, Any]) -> str:
    if event_type == "PostToolUseFailure" or (event_type == "PostToolUse" and data.get("success") is False):
        error = one_line(_first(data, "error", "reason"))
        return f" failed: {error}" if error else " failed"
    if event_type == "PostToolUse" and data.get("success") is True:
        return " ok"
    return ""


def _agent_line(event: SessionEvent, data: Mapping[str, Any]) -> str:
    agent = one_line(_first(data, "agent_type", "subagent_type"))
    agent_id = one_line(event.agent_id or data.get("agent_id"))
    if agent and agent_id:
        return f"{agent} ({agent_id})"
    return agent or (f"agent {agent_id}" if agent_id else "")


def _todo_line(data: Mapping[str, Any]) -> str:
    todos = data.get("todos")
    if not isinstance(todos, list):
        todos = _tool_input(data).get("todos")
    if not isinstance(todos, list):
        return ""
    active = sum(1 for t in todos if isinstance(t, Mapping) and t.get("status") == "in_progress")
    noun = "todo" if len(todos) == 1 else "todos"
    return f"{len(todos)} {noun} ({active} in progress)"


def _meta_line(data: Mapping[str, Any]) -> str:
    for key, label in _META_FIELDS:
        value = data.get(key)
        if value not in (None, "", [], {}) and not isinstance(value, bool):
            return label + one_line(value)
    return ""


# --- one session ----------------------------------------------------------------------------


def summarize_session(session: AgentSession, events: Sequence[SessionEvent] | None = None) -> dict[str, Any]:
    """The counts every view shows ("Events Summary", "Agents Used", tools, files).

    Counted from ``events`` (a filtered subset; default all of the session's).
    Tool calls are counted once per call: the larger of its Pre and Post counts,
    so sources that send only one side still count. Delegations and agents come
    from the session, which the aggregator keeps.
    """
    chosen = session.events if events is None else list(events)
    categories = Counter(event.category for event in chosen)
    pre: Counter[str] = Counter()
    post: Counter[str] = Counter()
    for event in chosen:
        tool = event.data.get("tool_name") if isinstance(event.data, Mapping) else None
        if not isinstance(tool, str) or not tool:
            continue
        if event.event_type == "PreToolUse":
            pre[tool] += 1
        elif event.event_type.startswith("PostToolUse"):
            post[tool] += 1
    tools = {tool: max(pre[tool], post[tool]) for tool in {*pre, *post}}
    agents = Counter(delegation.agent_type for delegation in session.delegations)
    duration_ms = session.metrics.session_duration_ms or int(session.duration.total_seconds() * 1000)
    return {
        "total_events": len(chosen),
        "event_counts": {category: categories.get(category, 0) for category in _ordered(categories)},
        "prompts": categories.get(PROMPT, 0),
        "delegations": len(session.delegations),
        "tools_used": dict(sorted(tools.items(), key=lambda item: (-item[1], item[0]))),
        "files_modified": files_modified(session, None if events is None else chosen),
        "agents": dict(sorted(agents.items(), key=lambda item: (-item[1], item[0]))),
        "duration_ms": duration_ms,
        "duration": format_duration(duration_ms),
    }


def _ordered(categories: Counter[str]) -> list[str]:
    """Known categories in their canonical order, then any others the data holds."""
    return [*CATEGORIES, *sorted(set(categories) - set(CATEGORIES))]


def files_modified(session: AgentSession, events: Iterable[SessionEvent] | None = None) -> list[str]:
    """Files written, in first-touch order.

    For the whole session the aggregator's ``metrics.files_modified`` is the
    answer; a filtered subset (or a file from a tool that kept no metrics) is
    derived from its write-tool events.
    """
    if events is None and session.metrics.files_modified:
        return list(session.metrics.files_modified)
    found: dict[str, None] = {}
    for event in session.events if events is None else events:
        data = event.data if isinstance(event.data, Mapping) else {}
        path = data.get("file_path")
        if event.category == FILE and data.get("tool_name") in FILE_WRITE_TOOLS and isinstance(path, str) and path:
            found.setdefault(path, None)
    return list(found)


def display_status(
    item: AgentSession | SessionSummary, timeout_minutes: float, now: datetime | None = None
) -> str:
    """The status to show: a saved "active" session that has been silent longer
    than the session timeout is shown as "idle" (nothing is capturing it now)."""
    status = one_line(item.status) or "unknown"
    if item.status != ACTIVE:
        return status
    if isinstance(item, AgentSession):
        last: datetime | None = item.last_event_time
    else:
        start = parse_timestamp(item.start_time)
        last = start + timedelta(milliseconds=item.duration_ms) if start is not None else None
    if last is not None and (now or now_utc()) - last > timedelta(minutes=timeout_minutes):
        return "idle"
    return status


def delegation_label(count: int) -> str:
    """ "1 delegation" / "2 delegations", as the usage guide's "Agents Used" prints it."""
    return f"{count} delegation" if count == 1 else f"{count} delegations"


def summary_rows(summary: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The usage guide's "Events Summary" lines from ``summarize_session`` output.

    "Agent Delegations" counts delegations (as its "Agents Used" list does), the
    rest count events; memory and other events appear only when present.
    """
    counts = summary["event_counts"]
    rows = [("Total Events", summary["total_events"])]
    for category, title in CATEGORY_TITLES.items():
        value = summary["delegations"] if category == DELEGATION else counts.get(category, 0)
        if category in _ALWAYS_SHOWN or value:
            rows.append((title, value))
    rows.extend((f"{one_line(name).title()} Events", n) for name, n in counts.items() if name not in CATEGORY_TITLES and n)
    return rows


_ALWAYS_SHOWN = frozenset({PROMPT, DELEGATION, "tool", FILE, TODO, RESPONSE})

CATEGORY_TITLES: dict[str, str] = {
    PROMPT: "User Prompts",
    DELEGATION: "Agent Delegations",
    "tool": "Tool Operations",
    FILE: "File Operations",
    TODO: "Todo Updates",
    RESPONSE: "Responses",
    "memory": "Memory Events",
    "meta": "Other Events",
}
