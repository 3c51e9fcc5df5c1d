"""mnemosyne-style Server-Sent Events -> ``SessionEvent`` (FORMATS section 4; seed 003).

Each SSE frame's data is one JSON event ``{"id", "type": <snake_case>, "instance_id"?,
...fields, "timestamp"}`` (the older docs' ``event: SessionStarted`` / ``event_type``
spelling is accepted too). ``event_from_payload`` is pure and called by
``normalize``; ``StreamContext`` is the little state one stream needs before its
events are normalized, kept per connection by ``sources/sse.py``:

* which session an event belongs to: its own ``session_id`` / ``instance_id`` on
  ``session_started`` / ``session_ended``, else the stream's open session (the
  last ``session_started``), else one session per stream (``sse-<host>-<port>``);
* which ``cli_command_started`` a ``cli_command_completed`` / ``_failed`` closes:
  the oldest open one of that command (mnemosyne sends no correlation id), so
  the pair becomes a ``PreToolUse`` / ``PostToolUse`` with ``duration_ms``.

Meaning: session started / ended drive the session lifecycle (``SessionStart``,
``SessionEnd``); CLI commands are tool calls (tool name = the command);
``agent_started`` / ``agent_completed`` / ``agent_failed`` open and close a
delegation of that agent; ``memory_*`` are memory events; everything else is
kept as ``meta`` under its own type. ``importance`` (2..9 in mnemosyne) is kept
in ``data.importance``: the event's own value, else the seed's rating for its
type (``importance_derived: true``), so it can be filtered on
(``aggregate view ID --min-importance 7``, or jq). Values are never rewritten:
what mnemosyne redacted (``***REDACTED***``) stays redacted.
"""

from __future__ import annotations

import re
from collections import deque
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from .model import DELEGATION, META, SessionEvent

# The 42 variants of rand/mnemosyne src/api/events.rs (serde snake_case tags).
MNEMOSYNE_TYPES = frozenset(
    {
        "agent_started", "agent_completed", "agent_failed", "agent_error_recorded", "agent_restarted",
        "agent_health_degraded", "agent_handoff", "agent_blocked", "agent_unblocked", "sub_agent_spawned",
        "memory_stored", "memory_recalled", "memory_evolution_started", "memory_consolidated", "memory_decayed",
        "memory_archived", "context_modified", "context_validated", "context_checkpointed", "health_update",
        "session_started", "session_ended", "heartbeat", "phase_changed", "deadlock_detected", "review_failed",
        "work_item_retried", "work_item_assigned", "work_item_completed", "parallel_stream_started",
        "critical_path_updated", "typed_hole_filled", "skill_loaded", "skill_unloaded", "skill_used",
        "skill_composition_detected", "cli_command_started", "cli_command_completed", "cli_command_failed",
        "search_performed", "database_operation", "network_state_update",
    }
)

# The seed's importance ratings (003, "Event Type Catalog"), for events that do not carry their own.
_IMPORTANCE_BY_PREFIX = (
    ("session_", 8),
    ("deadlock", 9),
    ("phase_", 7),
    ("review_failed", 7),
    ("work_item", 5),
    ("critical_path", 6),
    ("typed_hole", 5),
    ("parallel_stream", 5),
    ("agent_failed", 7),
    ("agent_", 6),
    ("sub_agent", 6),
    ("cli_command_failed", 6),
    ("cli_command_completed", 4),
    ("cli_command_started", 3),
    ("memory_", 5),
    ("context_", 4),
    ("skill_", 4),
    ("health_", 4),
    ("search_", 2),
    ("database_", 3),
    ("network_", 3),
)
DEFAULT_IMPORTANCE = 4
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_ENVELOPE_KEYS = ("id", "type", "event_type", "session_id", "timestamp", "event_id")


def snake_case(name: str) -> str:
    """``SessionStarted`` -> ``session_started`` (the docs' ``event:`` names); snake stays as is."""
    return _CAMEL.sub("_", name).lower() if any(c.isupper() for c in name) else name


def event_type_of(payload: dict[str, Any], event_name: str | None = None) -> str | None:
    """The mnemosyne type of a payload (``type``, ``event_type`` or the SSE ``event:`` name), if it is one."""
    for candidate in (payload.get("type"), payload.get("event_type"), event_name):
        if isinstance(candidate, str) and candidate:
            name = snake_case(candidate)
            if name in MNEMOSYNE_TYPES:
                return name
    return None


def importance_of(event_type: str) -> int:
    for prefix, value in _IMPORTANCE_BY_PREFIX:
        if event_type.startswith(prefix):
            return value
    return DEFAULT_IMPORTANCE


def stream_session_id(url: str) -> str:
    """The session events of a stream belong to when none was announced: one per server."""
    parts = urlsplit(url)
    host = (parts.hostname or "local").replace(":", "_")
    return f"sse-{host}-{parts.port or (443 if parts.scheme == 'https' else 80)}"


class StreamContext:
    """Per-stream state that the events themselves do not carry (see the module doc)."""

    def __init__(self, url: str, *, open_limit: int = 256) -> None:
        self.fallback_session = stream_session_id(url)
        self.current_session: str | None = None
        self._open_commands: dict[tuple[str, str], deque[str]] = {}
        self._open_limit = open_limit

    def prepare(self, payload: dict[str, Any], event_name: str | None = None) -> dict[str, Any]:
        """A copy of ``payload`` with ``session_id`` (and, for CLI commands, ``correlation_id``) filled in."""
        kind = event_type_of(payload, event_name)
        prepared = dict(payload)
        if kind is not None and "type" not in prepared:
            prepared["type"] = kind
        own = payload.get("session_id") or payload.get("instance_id")
        if kind == "session_started" and isinstance(own, str) and own:
            self.current_session = own
        if isinstance(payload.get("session_id"), str) and payload["session_id"]:
            session = payload["session_id"]
        elif kind in ("session_started", "session_ended") and isinstance(own, str) and own:
            session = own
        else:
            session = self.current_session or self.fallback_session
        prepared["session_id"] = session
        if kind == "session_ended" and session == self.current_session:
            self.current_session = None
        if kind and kind.startswith("cli_command_") and "correlation_id" not in payload:
            command = payload.get("command") if isinstance(payload.get("command"), str) else "?"
            key = (session, command)
            if kind == "cli_command_started":
                ident = str(payload.get("id") or f"{command}-{len(self._open_commands.get(key, ()))}")
                queue = self._open_commands.setdefault(key, deque(maxlen=self._open_limit))
                queue.append(ident)
                prepared["correlation_id"] = ident
            else:
                queue = self._open_commands.get(key)
                if queue:
                    prepared["correlation_id"] = queue.popleft()
        return prepared


def _one_line(kind: str, payload: dict[str, Any]) -> str | None:
    """A readable line for the kinds whose fields say nothing alone (phase_changed: "A -> B")."""
    def text(key: str) -> str | None:
        value = payload.get(key)
        return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "" else None

    if kind == "phase_changed" and text("from") and text("to"):
        return f"{text('from')} -> {text('to')}"
    if kind in ("session_started", "session_ended"):
        return f"instance {text('instance_id')}" if text("instance_id") else None
    if kind.startswith("context_") and text("file"):
        return text("file")
    if kind.startswith("work_item_"):
        parts = [p for p in (text("agent_id"), text("item_id"), text("task")) if p]
        return ": ".join([" ".join(parts[:2]), *parts[2:]]) if parts else None
    if kind == "memory_recalled" and text("query"):
        return f"{text('query')} ({text('count') or '?'} found)"
    for key in ("summary", "result_summary", "task", "result", "error", "query", "skill_name", "name"):
        if text(key):
            return text(key)
    return None


def event_from_payload(payload: dict[str, Any], event_name: str | None, received_at: datetime) -> SessionEvent:
    """One mnemosyne event as a ``SessionEvent``. Raises ``RejectedEvent`` (heartbeats, no session)."""
    from . import normalize as base  # shared helpers; imported here to keep the import graph one-way
    from .errors import RejectedEvent

    kind = event_type_of(payload, event_name) or "unknown"
    if kind in base.CONTROL_EVENTS:
        raise RejectedEvent(f"control:{kind}", ignorable=True)
    if not payload.get("session_id") and isinstance(payload.get("instance_id"), str) and payload["instance_id"]:
        payload = {**payload, "session_id": payload["instance_id"]}  # not through a stream: its instance
    session_id = base._session_id(payload)
    data = base._capped_copy({k: v for k, v in payload.items() if k not in _ENVELOPE_KEYS})
    if "importance" not in data:
        data["importance"] = importance_of(kind)
        data["importance_derived"] = True
    line = _one_line(kind, payload)
    if line:
        data.setdefault("message", line)  # what the timeline shows for it
    timestamp = base.normalize_timestamp(payload.get("timestamp"), received_at)
    ident = payload.get("id") if isinstance(payload.get("id"), str) and payload.get("id") else None
    event_id = ident or base.stable_event_id(payload)
    correlation = base._text(payload.get("correlation_id"))
    agent_id = base._text(payload.get("agent_id"))

    def finish(event_type: str) -> SessionEvent:
        return base._finish(event_type, data, session_id=session_id, timestamp=timestamp,
                            correlation_id=correlation, agent_id=None, event_id=event_id)

    def plain(event_type: str, category: str, agent: str | None = agent_id) -> SessionEvent:
        return SessionEvent(timestamp=timestamp, event_type=event_type, category=category, data=data,
                            session_id=session_id, correlation_id=correlation, agent_id=agent, event_id=event_id)

    if kind == "session_started":
        return plain("SessionStart", META)
    if kind == "session_ended":
        return plain("SessionEnd", META)
    if kind.startswith("cli_command_"):
        command = base._text(payload.get("command")) or "cli"
        data["tool_name"] = command
        args = payload.get("args") if isinstance(payload.get("args"), list) else []
        line = " ".join([command, *(str(arg) for arg in args)])
        data.setdefault("tool_input", {"command": line, "args": args})
        if kind == "cli_command_started":
            return finish("PreToolUse")
        if kind == "cli_command_completed":
            data["success"] = True
            return finish("PostToolUse")
        data.setdefault("error", base._text(payload.get("error")) or "failed")
        return finish("PostToolUseFailure")
    if kind == "agent_started":
        data["agent_type"] = agent_id or "agent"
        if isinstance(payload.get("task"), str):
            data["instructions"] = data["prompt"] = payload["task"]
        return plain("SubagentStart", DELEGATION)
    if kind in ("agent_completed", "agent_failed"):
        data["agent_type"] = agent_id or "agent"
        data["success"] = kind == "agent_completed"
        text = payload.get("result") if kind == "agent_completed" else payload.get("error")
        if isinstance(text, str) and text:
            data["response"] = text
        return plain("SubagentStop", DELEGATION)
    return plain(kind, "memory" if kind.startswith("memory_") else META)
