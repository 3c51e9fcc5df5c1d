"""The session model: plain data with the seeds' public API.

Nothing here knows a wire format, a file layout or a screen. ``EventAggregator``
decides what events mean and calls the mutators below; ``SessionStore`` reads
and writes ``to_dict`` / ``from_dict``; views render from these objects.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Iterable

from . import __version__
from .compact import LOAD_SHARED_KEYS, PAIRED_KEYS, POST_TOOL_EVENTS
from .machine import hostname as machine_hostname
from .timeutil import (
    format_timestamp,
    milliseconds_between,
    normalize_timestamp,
    now_utc,
    parse_saved_time,  # a 100,000-event session has thousands of delegations, two times each
    parse_timestamp,
)

# --- categories -----------------------------------------------------------------

PROMPT = "prompt"
DELEGATION = "delegation"
TOOL = "tool"
FILE = "file"
TODO = "todo"
RESPONSE = "response"
MEMORY = "memory"
META = "meta"
CATEGORIES: tuple[str, ...] = (PROMPT, DELEGATION, TOOL, FILE, TODO, RESPONSE, MEMORY, META)

DELEGATION_TOOLS = frozenset({"Task", "Agent"})
FILE_TOOLS = frozenset({"Read", "Write", "Edit", "MultiEdit", "NotebookEdit", "NotebookRead"})
FILE_WRITE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
TODO_TOOLS = frozenset({"TodoWrite"})

TOOL_EVENT_TYPES = frozenset({"PreToolUse", "PostToolUse", "PostToolUseFailure"})
DELEGATION_EVENT_TYPES = frozenset({"SubagentStart", "SubagentStop"})
RESPONSE_EVENT_TYPES = frozenset({"Stop", "AssistantResponse", "AssistantMessage", "Result"})

# Session statuses (DESIGN section 4).
ACTIVE = "active"
COMPLETED = "completed"
TIMED_OUT = "timed_out"
RECOVERED = "recovered"

# Delegation statuses.
RUNNING = "running"
DONE = "completed"
FAILED = "failed"
STALE = "stale"

UNKNOWN_AGENT = "unknown"  # a delegation whose agent type no event has named yet

DEFAULT_IDLE_TIMEOUT = timedelta(minutes=60)
RESPONSE_PREVIEW_CHARS = 500


def categorize(event_type: str, tool_name: str | None = None) -> str:
    """The category of a canonical event (DESIGN section 3's table).

    This is about meaning, not wire formats, so it lives with the model:
    ``normalize`` calls it after mapping a payload to a canonical event type.
    """
    if event_type in TOOL_EVENT_TYPES:
        if tool_name in DELEGATION_TOOLS:
            return DELEGATION
        if tool_name in FILE_TOOLS:
            return FILE
        if tool_name in TODO_TOOLS:
            return TODO
        return TOOL
    if event_type == "UserPromptSubmit":
        return PROMPT
    if event_type in DELEGATION_EVENT_TYPES:
        return DELEGATION
    if event_type in RESPONSE_EVENT_TYPES:
        return RESPONSE
    if event_type in ("TodoUpdated", "todo_updated"):
        return TODO
    if event_type.lower().startswith("memory"):
        return MEMORY
    return META


# --- events ---------------------------------------------------------------------


@dataclass(slots=True)
class SessionEvent:
    """One normalized event. ``data`` keeps the payload's fields, with the
    canonical ones (``prompt``, ``tool_name``, ``file_path`` ...) lifted to its top."""

    timestamp: str
    event_type: str
    category: str
    data: dict[str, Any]
    session_id: str
    correlation_id: str | None = None
    agent_id: str | None = None
    event_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The seeds' event object, plus ``event_id`` when one is known."""
        result: dict[str, Any] = {
            "timestamp": self.timestamp,
            "event_type": self.event_type,
            "category": self.category,
            "data": self.data,
            "session_id": self.session_id,
            "correlation_id": self.correlation_id,
            "agent_id": self.agent_id,
        }
        if self.event_id is not None:
            result["event_id"] = self.event_id
        return result

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "SessionEvent":
        """Rebuild from ``to_dict`` output; tolerant of missing optional keys."""
        data = raw.get("data")
        return cls(
            timestamp=str(raw.get("timestamp") or ""),
            event_type=str(raw.get("event_type") or "unknown"),
            category=str(raw.get("category") or META),
            data=data if isinstance(data, dict) else {},
            session_id=str(raw.get("session_id") or ""),
            correlation_id=raw.get("correlation_id"),
            agent_id=raw.get("agent_id"),
            event_id=raw.get("event_id"),
        )

    @property
    def moment(self) -> datetime:
        """The timestamp as an aware datetime (now, if the stored text is unusable)."""
        return parse_timestamp(self.timestamp) or now_utc()

    @property
    def tool_name(self) -> str | None:
        value = self.data.get("tool_name")
        return value if isinstance(value, str) else None

    @property
    def file_path(self) -> str | None:
        value = self.data.get("file_path")
        return value if isinstance(value, str) else None


def events_from_dicts(
    items: Iterable[Any], session_id: str | None = None, *, shared: dict[str, str] | None = None
) -> list[SessionEvent]:
    """``SessionEvent.from_dict`` for a whole list, with equal results, faster and smaller.

    Loading a 100,000-event session is mostly this loop, so it skips the
    conversions when a field already has its type. Memory (``compact``): equal
    strings are kept once (session id, event type, category, agent id, and the
    ``data`` values of ``LOAD_SHARED_KEYS``), a tool call's id is one string,
    and a PostToolUse keeps its PreToolUse's ``PAIRED_KEYS`` values when they
    are equal. Each of these costs a lookup per event, so only the values that
    repeat on most events are looked at. Items that are not objects are
    skipped, as before. ``shared``: the strings kept so far, to go on sharing
    them across calls (a file read in parts).
    """
    if shared is None:
        shared = {}
    if session_id is not None:
        shared.setdefault(session_id, session_id)
    share = shared.setdefault
    shared_keys, paired_keys, posts = LOAD_SHARED_KEYS, PAIRED_KEYS, POST_TOOL_EVENTS
    pres: dict[str, dict[str, Any]] = {}  # correlation id -> data of a PreToolUse not yet paired
    new = SessionEvent
    out: list[SessionEvent] = []
    append = out.append
    for raw in items:
        if type(raw) is not dict:
            if isinstance(raw, dict):
                append(SessionEvent.from_dict(raw))
            continue
        get = raw.get
        timestamp, event_type, category = get("timestamp"), get("event_type"), get("category")
        data, sid, agent_id, correlation_id = get("data"), get("session_id"), get("agent_id"), get("correlation_id")
        event_type = share(event_type, event_type) if type(event_type) is str and event_type else str(event_type or "unknown")
        if type(data) is dict:
            data_get = data.get
            for key in shared_keys:
                value = data_get(key)
                if value.__class__ is str:
                    data[key] = share(value, value)
            if correlation_id.__class__ is str:
                tool_use_id = data_get("tool_use_id")
                if tool_use_id == correlation_id:  # the same id twice in each event: one string
                    correlation_id = tool_use_id
                if event_type == "PreToolUse":
                    pres[correlation_id] = data
                elif event_type in posts:
                    pre = pres.pop(correlation_id, None)
                    if pre is not None:
                        correlation_id = _pair(data, pre, correlation_id, paired_keys)
        elif not isinstance(data, dict):
            data = {}
        append(new(
            timestamp if type(timestamp) is str else str(timestamp or ""),
            event_type,
            share(category, category) if type(category) is str and category else str(category or META),
            data,
            share(sid, sid) if type(sid) is str else str(sid or ""),
            correlation_id,
            share(agent_id, agent_id) if type(agent_id) is str else agent_id,
            get("event_id"),
        ))
    return out


def _pair(post: dict[str, Any], pre: dict[str, Any], correlation_id: str, keys: tuple[str, ...]) -> str:
    """``events_from_dicts``: a Post's data takes its Pre's equal values of ``keys`` and
    its tool call id; returns the correlation id to keep (the Pre's, when it is the same)."""
    try:
        earlier = pre.get("tool_use_id")
        if earlier == correlation_id and post.get("tool_use_id") == correlation_id:
            post["tool_use_id"] = correlation_id = earlier
        for key in keys:
            value = post.get(key)
            if value is not None:
                earlier = pre.get(key)
                if earlier is not value and earlier == value:
                    post[key] = earlier
    except Exception:  # noqa: BLE001 - a foreign object's __eq__ (events built in Python)
        pass
    return correlation_id


# --- delegations ----------------------------------------------------------------


@dataclass
class AgentDelegation:
    """A subagent dispatched by a Task/Agent tool call, and what it did."""

    agent_type: str
    start_time: datetime
    end_time: datetime | None = None
    instructions: str = ""
    event_count: int = 0
    tool_operations: list[str] = field(default_factory=list)
    files_modified: list[str] = field(default_factory=list)
    success: bool = False
    response_preview: str | None = None
    agent_id: str | None = None
    status: str = RUNNING
    description: str = ""
    tool_use_id: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status == RUNNING

    @property
    def duration(self) -> timedelta | None:
        if self.end_time is None:
            return None
        return self.end_time - self.start_time

    def note_file(self, path: str) -> None:
        if path not in self.files_modified:
            self.files_modified.append(path)

    def close(self, end_time: datetime, *, success: bool, status: str | None = None) -> None:
        self.end_time = end_time
        self.success = success
        self.status = status or (DONE if success else FAILED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_type": self.agent_type,
            "agent_id": self.agent_id,
            "start_time": format_timestamp(self.start_time),
            "end_time": format_timestamp(self.end_time) if self.end_time else None,
            "instructions": self.instructions,
            "description": self.description,
            "event_count": self.event_count,
            "tool_operations": list(self.tool_operations),
            "files_modified": list(self.files_modified),
            "success": self.success,
            "status": self.status,
            "response_preview": self.response_preview,
            "tool_use_id": self.tool_use_id,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "AgentDelegation":
        start = parse_saved_time(raw.get("start_time")) or now_utc()
        return cls(
            agent_type=str(raw.get("agent_type") or "unknown"),
            start_time=start,
            end_time=parse_saved_time(raw.get("end_time")),
            instructions=str(raw.get("instructions") or ""),
            event_count=int(raw.get("event_count") or 0),
            tool_operations=list(raw.get("tool_operations") or []),
            files_modified=list(raw.get("files_modified") or []),
            success=bool(raw.get("success")),
            response_preview=raw.get("response_preview"),
            agent_id=raw.get("agent_id"),
            status=str(raw.get("status") or (DONE if raw.get("end_time") else RUNNING)),
            description=str(raw.get("description") or ""),
            tool_use_id=raw.get("tool_use_id"),
        )


# --- metrics --------------------------------------------------------------------


def delegation_outcome(delegation: AgentDelegation) -> str | None:
    """How a delegation counts in the metrics: ``successful``, ``failed`` or not yet."""
    if delegation.status == DONE and delegation.success:
        return "successful"
    if delegation.status == FAILED:
        return "failed"
    return None


@dataclass
class SessionMetrics:
    """Counts kept up to date event by event, so listing never re-scans events."""

    total_events: int = 0
    session_duration_ms: int = 0
    event_breakdown: dict[str, int] = field(default_factory=dict)
    agents_used: list[str] = field(default_factory=list)
    tools_used: list[str] = field(default_factory=list)
    files_modified: list[str] = field(default_factory=list)
    total_delegations: int = 0
    successful_delegations: int = 0
    failed_delegations: int = 0
    dropped_events: int = 0
    # What a headless run's final ``result`` reports (None: the source does not say).
    # The cost is Claude Code's client-side estimate, not a bill.
    total_cost_usd: float | None = None
    num_turns: int | None = None
    duration_api_ms: int | None = None
    run_duration_ms: int | None = None
    is_error: bool | None = None

    RESULT_KEYS: ClassVar[tuple[str, ...]] = (
        "total_cost_usd", "num_turns", "duration_api_ms", "run_duration_ms", "is_error"
    )

    def update(self, event: SessionEvent) -> None:
        """Count one event: its category, and the tool it names."""
        self.total_events += 1
        self.event_breakdown[event.category] = self.event_breakdown.get(event.category, 0) + 1
        tool = event.tool_name
        if tool and event.event_type == "PreToolUse" and tool not in self.tools_used:
            self.tools_used.append(tool)

    def note_agent(self, agent_type: str) -> None:
        if agent_type not in self.agents_used:
            self.agents_used.append(agent_type)

    def note_file(self, path: str) -> None:
        if path not in self.files_modified:
            self.files_modified.append(path)

    def recount_delegations(self, delegations: Iterable[AgentDelegation]) -> None:
        """Delegation totals from scratch (session end, the seeds' API); the tracker
        keeps them current event by event with ``shift_outcome`` instead."""
        items = list(delegations)
        self.total_delegations = len(items)
        self.successful_delegations = sum(1 for d in items if delegation_outcome(d) == "successful")
        self.failed_delegations = sum(1 for d in items if delegation_outcome(d) == "failed")

    def shift_outcome(self, before: str | None, after: str | None) -> None:
        """One delegation's outcome changed (running -> successful, successful -> failed ...)."""
        if before == after:
            return
        if before == "successful":
            self.successful_delegations -= 1
        elif before == "failed":
            self.failed_delegations -= 1
        if after == "successful":
            self.successful_delegations += 1
        elif after == "failed":
            self.failed_delegations += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_events": self.total_events,
            "session_duration_ms": self.session_duration_ms,
            "event_breakdown": dict(self.event_breakdown),
            "agents_used": list(self.agents_used),
            "tools_used": list(self.tools_used),
            "files_modified": list(self.files_modified),
            "total_delegations": self.total_delegations,
            "successful_delegations": self.successful_delegations,
            "failed_delegations": self.failed_delegations,
            "dropped_events": self.dropped_events,
            # only when a source reported them: hook sessions keep the seeds' exact keys
            **{key: getattr(self, key) for key in self.RESULT_KEYS if getattr(self, key) is not None},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "SessionMetrics":
        cost, turns, api_ms, run_ms = (raw.get(k) for k in ("total_cost_usd", "num_turns", "duration_api_ms", "run_duration_ms"))
        return cls(
            total_cost_usd=float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
            num_turns=int(turns) if isinstance(turns, int) and not isinstance(turns, bool) else None,
            duration_api_ms=int(api_ms) if isinstance(api_ms, (int, float)) and not isinstance(api_ms, bool) else None,
            run_duration_ms=int(run_ms) if isinstance(run_ms, (int, float)) and not isinstance(run_ms, bool) else None,
            is_error=raw["is_error"] if isinstance(raw.get("is_error"), bool) else None,
            total_events=int(raw.get("total_events") or 0),
            session_duration_ms=int(raw.get("session_duration_ms") or 0),
            event_breakdown=dict(raw.get("event_breakdown") or {}),
            agents_used=list(raw.get("agents_used") or []),
            tools_used=list(raw.get("tools_used") or []),
            files_modified=list(raw.get("files_modified") or []),
            total_delegations=int(raw.get("total_delegations") or 0),
            successful_delegations=int(raw.get("successful_delegations") or 0),
            failed_delegations=int(raw.get("failed_delegations") or 0),
            dropped_events=int(raw.get("dropped_events") or 0),
        )


# --- sessions -------------------------------------------------------------------


def default_metadata() -> dict[str, Any]:
    """Where and by what a session was captured."""
    return {
        "source": None,
        "hostname": machine_hostname(),  # events from other machines override it (tracker)
        "git_branch": None,
        "aggregator_version": __version__,
    }


class AgentSession:
    """A complete agent activity session: events, delegations, metrics, outcome."""

    idle_timeout: ClassVar[timedelta] = DEFAULT_IDLE_TIMEOUT

    def __init__(self, session_id: str, start_time: datetime | None = None) -> None:
        self.session_id = session_id
        self.start_time: datetime = start_time or now_utc()
        if self.start_time.tzinfo is None:
            self.start_time = parse_timestamp(self.start_time) or now_utc()
        self.end_time: datetime | None = None
        self.status: str = ACTIVE
        self.working_directory: str | None = None
        self.initial_prompt: str | None = None
        self.final_response: str | None = None
        self.events: list[SessionEvent] = []
        self.delegations: list[AgentDelegation] = []
        self.metrics = SessionMetrics()
        self.todos: list[Any] = []
        self.usage: dict[str, Any] = {}
        self.metadata: dict[str, Any] = default_metadata()
        self.last_event_time: datetime = self.start_time

    # -- properties from the seeds --

    @property
    def duration(self) -> timedelta:
        """From start to end, or to the last event while the session is open."""
        end = self.end_time or self.last_event_time
        return max(end - self.start_time, timedelta(0))

    @property
    def is_active(self) -> bool:
        """Open, and events kept arriving within the idle timeout."""
        if self.status != ACTIVE or self.end_time is not None:
            return False
        return now_utc() - self.last_event_time < self.idle_timeout

    @property
    def event_count(self) -> int:
        return len(self.events)

    @property
    def open_delegations(self) -> list[AgentDelegation]:
        return [d for d in self.delegations if d.is_open]

    # -- mutators --

    def add_event(
        self,
        event_type: str,
        data: dict[str, Any],
        timestamp: str | None = None,
        *,
        category: str | None = None,
        correlation_id: str | None = None,
        agent_id: str | None = None,
    ) -> SessionEvent:
        """Add an event built from its parts (the seeds' signature)."""
        data = dict(data)
        event = SessionEvent(
            timestamp=normalize_timestamp(timestamp) if timestamp else format_timestamp(now_utc()),
            event_type=event_type,
            category=category or categorize(event_type, data.get("tool_name")),
            data=data,
            session_id=self.session_id,
            correlation_id=correlation_id,
            agent_id=agent_id,
        )
        return self.append_event(event)

    def append_event(self, event: SessionEvent) -> SessionEvent:
        """Record an already-normalized event and keep the derived fields current."""
        self.events.append(event)
        self.metrics.update(event)
        moment = parse_timestamp(event.timestamp)
        if moment is not None:
            if moment > self.last_event_time:
                self.last_event_time = moment
            if moment < self.start_time:
                self.start_time = moment
        self.metrics.session_duration_ms = milliseconds_between(self.start_time, self.end_time or self.last_event_time)
        if event.category == PROMPT and self.initial_prompt is None:
            prompt = event.data.get("prompt")
            if isinstance(prompt, str):
                self.initial_prompt = prompt
        return event

    def add_delegation(
        self,
        agent_type: str,
        instructions: str = "",
        start_time: datetime | None = None,
        **fields: Any,
    ) -> AgentDelegation:
        delegation = AgentDelegation(
            agent_type=agent_type or "unknown",
            start_time=start_time or now_utc(),
            instructions=instructions or "",
            **fields,
        )
        self.delegations.append(delegation)
        if delegation.agent_type != UNKNOWN_AGENT:
            self.metrics.note_agent(delegation.agent_type)
        self.metrics.total_delegations += 1
        self.metrics.shift_outcome(None, delegation_outcome(delegation))
        return delegation

    def complete_delegation(
        self,
        agent_type: str,
        end_time: datetime,
        success: bool = True,
        response: str | None = None,
    ) -> AgentDelegation | None:
        """Close the oldest open delegation of this agent type (the seeds' API).

        The aggregator closes delegations by id or tool_use_id instead; this
        name-based form exists for scripts written against the seeds.
        """
        for delegation in self.delegations:
            if delegation.is_open and delegation.agent_type == agent_type:
                delegation.close(end_time, success=success)
                if response is not None:
                    delegation.response_preview = response[:RESPONSE_PREVIEW_CHARS]
                self.metrics.recount_delegations(self.delegations)
                return delegation
        return None

    def finish(self, status: str, end_time: datetime | None = None) -> None:
        """Mark the session ended; delegations still running become ``stale``."""
        self.status = status
        self.end_time = end_time or self.last_event_time
        for delegation in self.delegations:
            if delegation.is_open:
                delegation.status = STALE
                delegation.end_time = None
        self.metrics.recount_delegations(self.delegations)
        self.metrics.session_duration_ms = milliseconds_between(self.start_time, self.end_time)

    def reopen(self) -> None:
        """A resumed session continues where it ended."""
        self.status = ACTIVE
        self.end_time = None

    # -- serialization --

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "start_time": format_timestamp(self.start_time),
            "end_time": format_timestamp(self.end_time) if self.end_time else None,
            "status": self.status,
            "working_directory": self.working_directory,
            "initial_prompt": self.initial_prompt,
            "final_response": self.final_response,
            "events": [event.to_dict() for event in self.events],
            "delegations": [delegation.to_dict() for delegation in self.delegations],
            "metrics": self.metrics.to_dict(),
            "todos": self.todos,
            "usage": self.usage,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], events: list[SessionEvent] | None = None) -> "AgentSession":
        """Rebuild a saved session. Raises ``ValueError`` when it is not one of ours.

        ``events``: already built (a file read in parts); ``raw["events"]`` is then ignored.
        """
        if not isinstance(raw, dict) or not isinstance(raw.get("session_id"), str):
            raise ValueError("not a session: no session_id")
        if not isinstance(raw.get("events", []), list):
            raise ValueError("not a session: events is not a list")
        session = cls(raw["session_id"], parse_timestamp(raw.get("start_time")) or now_utc())
        session.end_time = parse_timestamp(raw.get("end_time"))
        session.status = str(raw.get("status") or (COMPLETED if session.end_time else ACTIVE))
        session.working_directory = raw.get("working_directory")
        session.initial_prompt = raw.get("initial_prompt")
        session.final_response = raw.get("final_response")
        session.events = events if events is not None else events_from_dicts(raw.get("events") or [], session.session_id)
        session.delegations = [
            AgentDelegation.from_dict(d) for d in raw.get("delegations") or [] if isinstance(d, dict)
        ]
        session.metrics = SessionMetrics.from_dict(raw.get("metrics") or {})
        session.todos = list(raw.get("todos") or [])
        session.usage = dict(raw.get("usage") or {})
        session.metadata = {**default_metadata(), **(raw.get("metadata") or {})}
        if session.events:
            last = parse_timestamp(session.events[-1].timestamp)
            session.last_event_time = max(last or session.start_time, session.start_time)
        return session

    def save(self, filepath: Path | str) -> None:
        """Write the session as JSON, atomically (temp file, fsync, rename)."""
        from .jsonio import write_json_atomic

        write_json_atomic(Path(filepath), self.to_dict())

    @classmethod
    def load(cls, filepath: Path | str) -> "AgentSession":
        """Load a session file. FileNotFoundError / json.JSONDecodeError as the seeds say.

        The collector is paused meanwhile, as the store does: a big file is a million new
        objects at once, and collection passes over them were a third of the time. Big
        files of ours are read in parts, as the store does (``sessionfile.read_session``).
        """
        from .jsonio import gc_paused, read_json
        from .sessionfile import read_session

        session = read_session(Path(filepath))
        if session is not None:
            return session
        with gc_paused():
            return cls.from_dict(read_json(Path(filepath)))

    def __repr__(self) -> str:
        return f"AgentSession({self.session_id!r}, status={self.status!r}, events={len(self.events)})"


@dataclass(slots=True)
class SessionSummary:
    """What listing needs of a session, kept in the store's index."""

    session_id: str
    start_time: str
    end_time: str | None
    status: str
    event_count: int
    duration_ms: int
    file_path: Path
    working_directory: str | None = None
    initial_prompt: str | None = None
    agents_used: list[str] = field(default_factory=list)
    delegation_count: int = 0
    files_modified_count: int = 0
    source: str | None = None
    hostname: str | None = None
    total_cost_usd: float | None = None  # a headless run's estimate (metrics); None for other sources
    num_turns: int | None = None
    total_tokens: int | None = None
    duration_api_ms: int | None = None

    @property
    def project(self) -> str:
        """The project a session belongs to: the name of its working directory."""
        if not self.working_directory:
            return "-"
        return os.path.basename(self.working_directory.rstrip("/\\")) or self.working_directory

    @classmethod
    def of(cls, session: AgentSession, file_path: Path) -> "SessionSummary":
        prompt = session.initial_prompt
        return cls(
            session_id=session.session_id,
            start_time=format_timestamp(session.start_time),
            end_time=format_timestamp(session.end_time) if session.end_time else None,
            status=session.status,
            event_count=len(session.events) or session.metrics.total_events,
            duration_ms=session.metrics.session_duration_ms,
            file_path=file_path,
            working_directory=session.working_directory,
            initial_prompt=prompt[:200] if isinstance(prompt, str) else None,
            agents_used=list(session.metrics.agents_used),
            delegation_count=len(session.delegations),
            files_modified_count=len(session.metrics.files_modified),
            source=session.metadata.get("source"),
            hostname=session.metadata.get("hostname"),
            total_cost_usd=session.metrics.total_cost_usd,
            num_turns=session.metrics.num_turns,
            total_tokens=(  # only a run's cumulative usage: a hook session's is the last turn's
                total_tokens(session.usage)
                if session.metrics.total_cost_usd is not None or session.metrics.num_turns is not None
                or session.metadata.get("source") == "claude -p"  # a run before its result: counted so far
                else None
            ),
            duration_api_ms=session.metrics.duration_api_ms,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "status": self.status,
            "event_count": self.event_count,
            "duration_ms": self.duration_ms,
            "file_path": str(self.file_path),
            "working_directory": self.working_directory,
            "initial_prompt": self.initial_prompt,
            "agents_used": list(self.agents_used),
            "delegation_count": self.delegation_count,
            "files_modified_count": self.files_modified_count,
            "source": self.source,
            "hostname": self.hostname,
            "total_cost_usd": self.total_cost_usd,
            "num_turns": self.num_turns,
            "total_tokens": self.total_tokens,
            "duration_api_ms": self.duration_api_ms,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "SessionSummary":
        return cls(
            session_id=str(raw["session_id"]),
            start_time=str(raw.get("start_time") or ""),
            end_time=raw.get("end_time"),
            status=str(raw.get("status") or ACTIVE),
            event_count=int(raw.get("event_count") or 0),
            duration_ms=int(raw.get("duration_ms") or 0),
            file_path=Path(raw["file_path"]),
            working_directory=raw.get("working_directory"),
            initial_prompt=raw.get("initial_prompt"),
            agents_used=list(raw.get("agents_used") or []),
            delegation_count=int(raw.get("delegation_count") or 0),
            files_modified_count=int(raw.get("files_modified_count") or 0),
            source=raw.get("source"),
            hostname=raw.get("hostname"),
            total_cost_usd=raw.get("total_cost_usd"),
            num_turns=raw.get("num_turns"),
            total_tokens=raw.get("total_tokens"),
            duration_api_ms=raw.get("duration_api_ms"),
        )


TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def total_tokens(usage: Any) -> int | None:
    """All tokens an Anthropic ``usage`` block counts (input, output, cache writes and reads);
    None when it counts none of them."""
    if not isinstance(usage, dict):
        return None
    counts = [usage[key] for key in TOKEN_KEYS if isinstance(usage.get(key), int) and not isinstance(usage.get(key), bool)]
    return sum(counts) if counts else None


def dumps_pretty(value: Any) -> str:
    """Indented JSON for people (``view --verbose``, the TUI's event detail)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
