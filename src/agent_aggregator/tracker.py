"""What an event means for its session: pairing, delegations, files, todos, lifecycle.

``SessionTracker`` is deterministic on the sequence of events it is given and
does no I/O, so the live aggregator, journal recovery and replay all rebuild
the same session from the same events (DESIGN sections 1 and 3).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from .compact import compact, share_with_pre
from .model import (
    ACTIVE,
    COMPLETED,
    DELEGATION_TOOLS,
    DONE,
    FAILED,
    RUNNING,
    FILE_WRITE_TOOLS,
    RESPONSE_PREVIEW_CHARS,
    STALE,
    TOKEN_KEYS,
    AgentDelegation,
    AgentSession,
    UNKNOWN_AGENT,
    SessionEvent,
    categorize,
    delegation_outcome,
)
from .timeutil import milliseconds_between, parse_timestamp

LEDGER_LIMIT = 64
LEDGER_TTL = timedelta(minutes=10)
# A SubagentStart-opened delegation is adopted by a PreToolUse(Task) this close in time.
ADOPT_WINDOW = timedelta(seconds=30)
TURN_END_EVENTS = frozenset({"Stop", "AssistantResponse", "Result"})  # Result: a headless run's last line


# claude-mpm's token_usage_updated names -> the Anthropic usage names Stop carries.
_USAGE_NAMES = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_creation_tokens": "cache_creation_input_tokens",
    "cache_creation_input_tokens": "cache_creation_input_tokens",
    "cache_read_tokens": "cache_read_input_tokens",
    "cache_read_input_tokens": "cache_read_input_tokens",
}


def _canonical_usage(data: dict[str, Any]) -> dict[str, Any]:
    """Token counts under one vocabulary (totals are derived, so not kept)."""
    return {_USAGE_NAMES[k]: v for k, v in data.items() if k in _USAGE_NAMES and isinstance(v, (int, float))}


@dataclass
class Outcome:
    """What one event did, for the aggregator to act on (save, complete, count)."""

    session: AgentSession
    event: SessionEvent | None
    new_session: bool = False
    duplicate: bool = False
    turn_ended: bool = False
    session_ended: bool = False


@dataclass
class _Pending:
    """An early SubagentStop waiting for the delegation it closes."""

    event: SessionEvent
    moment: datetime


@dataclass
class SessionState:
    """Per-session bookkeeping that is derived from events and never saved."""

    open_tools: dict[str, SessionEvent] = field(default_factory=dict)
    by_tool_use_id: dict[str, AgentDelegation] = field(default_factory=dict)
    by_agent_id: dict[str, AgentDelegation] = field(default_factory=dict)
    open: list[AgentDelegation] = field(default_factory=list)  # running ones, oldest first (pruned lazily)
    started: set[int] = field(default_factory=set)  # id() of delegations a SubagentStart reached
    implicit: dict[int, AgentDelegation] = field(default_factory=dict)  # opened by SubagentStart, not yet by a call
    last_activity: dict[int, datetime] = field(default_factory=dict)
    returned: set[int] = field(default_factory=set)  # id() of delegations whose Task call returned
    seen_ids: set[str] = field(default_factory=set)
    # A headless run's tokens before its result: the last usage of each assistant message
    # (stream-json repeats a message's usage on every line of its content blocks), on top
    # of the last result's totals (``usage_base``).
    message_usage: dict[str, dict[str, int]] = field(default_factory=dict)
    usage_base: dict[str, Any] = field(default_factory=dict)
    ledger: "OrderedDict[str, _Pending]" = field(default_factory=OrderedDict)
    source_sends_agent_ids: bool = False


def _of_type(delegations: list[AgentDelegation], agent_type: str | None) -> list[AgentDelegation]:
    """Delegations of this agent type first, then those whose type is still unknown."""
    if agent_type is None:
        return list(delegations)
    exact = [d for d in delegations if d.agent_type == agent_type]
    return exact or [d for d in delegations if d.agent_type == UNKNOWN_AGENT]


class SessionTracker:
    """Routes normalized events into sessions and keeps each session's meaning current."""

    def __init__(self) -> None:
        self.sessions: dict[str, AgentSession] = {}
        self.states: dict[str, SessionState] = {}
        self.duplicates = 0

    # -- sessions ---------------------------------------------------------------

    def adopt(self, session: AgentSession) -> AgentSession:
        """Track a session that already exists (resumed from the store).

        The session is rebuilt from its own events, so pairing and delegation
        bindings survive the resume; what events cannot tell (where it was
        captured, how many events were dropped) is carried over.
        """
        scratch = SessionTracker()
        for event in session.events:
            scratch.apply(event)
        rebuilt = scratch.sessions.get(session.session_id, session)
        state = scratch.states.get(session.session_id, SessionState())
        if rebuilt is not session:
            rebuilt.metadata = {**rebuilt.metadata, **session.metadata}
            rebuilt.metrics.dropped_events = session.metrics.dropped_events
            rebuilt.status, rebuilt.end_time = session.status, session.end_time
        self.sessions[session.session_id] = rebuilt
        self.states[session.session_id] = state
        return rebuilt

    def open_session(self, event: SessionEvent) -> AgentSession:
        """The session an event belongs to, created on its first event."""
        session = self.sessions.get(event.session_id)
        if session is None:
            session = AgentSession(event.session_id, parse_timestamp(event.timestamp))
            self.sessions[event.session_id] = session
            self.states[event.session_id] = SessionState()
        return session

    def forget(self, session_id: str) -> AgentSession | None:
        self.states.pop(session_id, None)
        return self.sessions.pop(session_id, None)

    # -- events -----------------------------------------------------------------

    def apply(self, event: SessionEvent) -> Outcome:
        """Record one event in its session and update everything it implies."""
        new_session = event.session_id not in self.sessions
        session = self.open_session(event)
        state = self.states[event.session_id]
        host = event.data.get("hostname")
        if new_session and isinstance(host, str) and host:
            session.metadata["hostname"] = host  # the machine it runs on (issue 10), not the aggregator's
        if event.event_id is not None:
            if event.event_id in state.seen_ids:
                self.duplicates += 1
                return Outcome(session, None, new_session=new_session, duplicate=True)
            state.seen_ids.add(event.event_id)
        if session.status != ACTIVE:
            session.reopen()
        self._interpret(session, state, event)
        self._settle(event)
        session.append_event(event)
        outcome = Outcome(session, event, new_session=new_session)
        if event.event_type in TURN_END_EVENTS:
            outcome.turn_ended = True
        elif event.event_type == "SessionEnd":
            session.finish(COMPLETED, event.moment)
            outcome.session_ended = True
        return outcome

    def mark_stale(self, session_id: str, idle_since: datetime) -> int:
        """Delegations with no activity since ``idle_since`` become ``stale``."""
        session = self.sessions.get(session_id)
        state = self.states.get(session_id)
        if session is None or state is None:
            return 0
        marked = 0
        for delegation in self._open(state):
            last = state.last_activity.get(id(delegation), delegation.start_time)
            if last < idle_since:
                delegation.status = STALE  # running -> stale changes no outcome count
                marked += 1
        return marked

    # -- meaning ----------------------------------------------------------------

    def _interpret(self, session: AgentSession, state: SessionState, event: SessionEvent) -> None:
        data = event.data
        self._note_context(session, data)
        if isinstance(data.get("message_usage"), dict) and isinstance(data.get("message_id"), str):
            self._note_message_usage(session, state, data["message_id"], data["message_usage"])
        kind = event.event_type
        if kind == "PreToolUse":
            self._pre_tool(session, state, event)
        elif kind in ("PostToolUse", "PostToolUseFailure"):
            self._post_tool(session, state, event)
        elif kind == "SubagentStart":
            self._subagent_start(session, state, event)
        elif kind == "SubagentStop":
            self._subagent_stop(session, state, event)
        elif kind == "TodoUpdated" and isinstance(data.get("todos"), list):
            session.todos = data["todos"]
        elif kind == "Result":
            self._note_result(session, data)
            state.message_usage.clear()  # the result's totals replace the running count
            state.usage_base = dict(session.usage)
        elif kind == "AssistantMessage":
            if event.agent_id is None and isinstance(data.get("response"), str) and data["response"]:
                session.final_response = data["response"]
        elif kind in TURN_END_EVENTS:
            response = data.get("response")
            if isinstance(response, str) and response:
                session.final_response = response
            self._note_usage(session, data.get("usage"))
        elif kind == "token_usage_updated":
            self._note_usage(session, _canonical_usage(data))
        elif kind == "SessionStart":
            model = data.get("model")
            if isinstance(model, str):
                session.metadata["model"] = model
            self._note_run(session, data)

    def _note_context(self, session: AgentSession, data: dict[str, Any]) -> None:
        if session.working_directory is None and isinstance(data.get("cwd"), str):
            session.working_directory = data["cwd"]
        if session.metadata.get("git_branch") is None and isinstance(data.get("git_branch"), str):
            session.metadata["git_branch"] = data["git_branch"]

    @staticmethod
    def _note_run(session: AgentSession, data: dict[str, Any]) -> None:
        """A headless run wrapped by ``aggregate run``: where it runs, so views can tell it is alive."""
        run = data.get("aggregate_run")
        if isinstance(run, dict):
            session.metadata["source"] = "claude -p"
            for key in ("pid", "command", "hostname"):
                if run.get(key) is not None:
                    session.metadata["run_hostname" if key == "hostname" else key] = run[key]

    @staticmethod
    def _note_result(session: AgentSession, data: dict[str, Any]) -> None:
        """A headless run's final ``result``: cost (an estimate), turns, durations, tokens,
        and ``is_error``, which is trusted over the subtype and the exit code."""
        SessionTracker._note_run(session, data)
        metrics = session.metrics
        number = lambda value: isinstance(value, (int, float)) and not isinstance(value, bool)  # noqa: E731
        if number(data.get("total_cost_usd")):
            metrics.total_cost_usd = float(data["total_cost_usd"])
        if number(data.get("num_turns")):
            metrics.num_turns = int(data["num_turns"])
        if number(data.get("duration_api_ms")):
            metrics.duration_api_ms = int(data["duration_api_ms"])
        if number(data.get("duration_ms")):
            metrics.run_duration_ms = int(data["duration_ms"])
        metrics.is_error = data.get("is_error") is True
        if isinstance(data.get("usage"), dict) and data["usage"]:
            session.usage = dict(data["usage"])  # cumulative for the run: replaces, never adds
        response = data.get("response")
        if isinstance(response, str) and response:
            session.final_response = response

    @staticmethod
    def _note_message_usage(session: AgentSession, state: SessionState, message_id: str, usage: dict[str, Any]) -> None:
        """Tokens as a run goes (its result gives the totals only at the end): each message counted once."""
        state.message_usage[message_id] = {
            key: value for key in TOKEN_KEYS
            if isinstance(value := usage.get(key), int) and not isinstance(value, bool)
        }
        running = dict(state.usage_base)
        for counts in state.message_usage.values():
            for key, value in counts.items():
                base = running.get(key)
                running[key] = (base if isinstance(base, int) and not isinstance(base, bool) else 0) + value
        session.usage = running

    @staticmethod
    def _note_usage(session: AgentSession, usage: Any) -> None:
        if isinstance(usage, dict) and usage:
            session.usage = {**session.usage, **usage}

    # tools

    def _pre_tool(self, session: AgentSession, state: SessionState, event: SessionEvent) -> None:
        tool = event.tool_name
        if event.correlation_id:
            state.open_tools[event.correlation_id] = event
        if tool in DELEGATION_TOOLS:
            self._open_delegation(session, state, event)
            return
        if tool == "TodoWrite" and isinstance(event.data.get("todos"), list):
            session.todos = event.data["todos"]
        delegation = self._attribute(session, state, event)
        if delegation is not None and tool:
            delegation.tool_operations.append(tool)

    def _post_tool(self, session: AgentSession, state: SessionState, event: SessionEvent) -> None:
        data = event.data
        pre = state.open_tools.pop(event.correlation_id, None) if event.correlation_id else None
        if pre is not None:
            share_with_pre(data, pre.data)  # memory: the Post's copies of the Pre's values go
            if event.correlation_id == pre.correlation_id:
                event.correlation_id = pre.correlation_id
            self._enrich_from_pre(event, pre)
        tool = event.tool_name
        if tool in DELEGATION_TOOLS:
            self._finish_delegation_call(session, state, event)
            return
        delegation = self._attribute(session, state, event)
        succeeded = event.event_type == "PostToolUse" and data.get("success") is not False
        path = event.file_path
        if succeeded and tool in FILE_WRITE_TOOLS and path:
            session.metrics.note_file(path)
            if delegation is not None:
                delegation.note_file(path)
        if tool == "TodoWrite" and succeeded:
            todos = data.get("todos")
            if not isinstance(todos, list) and isinstance(data.get("tool_response"), dict):
                todos = data["tool_response"].get("newTodos")
            if isinstance(todos, list):
                session.todos = todos

    @staticmethod
    def _settle(event: SessionEvent) -> None:
        """An event as it will be held for the session's life: its ``data`` in a compact
        dict, its agent id the one shared string (``compact``; about 1 us)."""
        event.data = compact(event.data)
        if type(event.agent_id) is str:
            event.agent_id = sys.intern(event.agent_id)

    @staticmethod
    def _enrich_from_pre(post: SessionEvent, pre: SessionEvent) -> None:
        """claude-mpm's post_tool carries no parameters: borrow them from its Pre."""
        data = post.data
        named = "tool_name" in data
        for key in ("tool_name", "file_path", "subagent_type", "description"):
            if key not in data and key in pre.data:
                data[key] = pre.data[key]
        if "tool_input" not in data and "tool_input" in pre.data:
            data["tool_input"] = pre.data["tool_input"]
        if data.get("duration_ms") is None:
            start, end = parse_timestamp(pre.timestamp), parse_timestamp(post.timestamp)
            if start and end:
                data["duration_ms"] = milliseconds_between(start, end)
        if not named and post.tool_name:  # its category could not be told without the tool's name
            post.category = categorize(post.event_type, post.tool_name)

    def _attribute(self, session: AgentSession, state: SessionState, event: SessionEvent) -> AgentDelegation | None:
        """The delegation a tool event belongs to, counting it there.

        By ``agent_id`` when the event has one. Without one, only when exactly
        one delegation is open, and only for sources that never send agent ids
        (on builds that do, an id-less event is the main agent's own).
        """
        delegation: AgentDelegation | None = None
        if event.agent_id:
            state.source_sends_agent_ids = True
            delegation = state.by_agent_id.get(event.agent_id)
            if delegation is None:
                delegation = self._bind_unknown_agent(session, state, event.agent_id, event.data.get("agent_type"))
        elif not state.source_sends_agent_ids:
            open_now = self._open(state)
            if len(open_now) == 1:
                delegation = open_now[0]
        if delegation is not None:
            delegation.event_count += 1
            state.last_activity[id(delegation)] = event.moment
            if "attributed_to" not in event.data:
                event.data["attributed_to"] = delegation.agent_type
        return delegation

    # delegations

    def _open_delegation(self, session: AgentSession, state: SessionState, event: SessionEvent) -> None:
        data = event.data
        agent_type = data.get("subagent_type") if isinstance(data.get("subagent_type"), str) else UNKNOWN_AGENT
        instructions = data.get("instructions") if isinstance(data.get("instructions"), str) else ""
        description = data.get("description") if isinstance(data.get("description"), str) else ""
        moment = event.moment
        delegation = self._adoptable(session, state, agent_type, moment)
        if delegation is None:
            delegation = session.add_delegation(agent_type, instructions, moment, description=description)
            state.open.append(delegation)
        else:
            state.implicit.pop(id(delegation), None)
            delegation.instructions = delegation.instructions or instructions
            delegation.description = delegation.description or description
        delegation.tool_use_id = event.correlation_id
        if event.correlation_id:
            state.by_tool_use_id[event.correlation_id] = delegation
        state.last_activity[id(delegation)] = moment

    def _adoptable(
        self, session: AgentSession, state: SessionState, agent_type: str, moment: datetime
    ) -> AgentDelegation | None:
        """A delegation a SubagentStart opened before its PreToolUse(Task) arrived."""
        for delegation in state.implicit.values():
            if (
                delegation.tool_use_id is None
                and delegation.agent_type in (agent_type, UNKNOWN_AGENT)
                and abs(moment - delegation.start_time) <= ADOPT_WINDOW
            ):
                self._learn_type(session, delegation, agent_type)
                return delegation
        return None

    def _subagent_start(self, session: AgentSession, state: SessionState, event: SessionEvent) -> None:
        if event.data.get("synthetic_start"):
            return  # claude-mpm's own announcement of a Task call: the call itself opens it
        agent_type = event.data.get("agent_type") if isinstance(event.data.get("agent_type"), str) else None
        delegation = self._by_call(state, event.agent_id)
        if delegation is None:
            candidates = [d for d in self._open(state) if id(d) not in state.started and d.agent_id is None]
            delegation = (_of_type(candidates, agent_type) or candidates or [None])[0]
        if delegation is None:
            instructions = event.data.get("prompt") if isinstance(event.data.get("prompt"), str) else ""
            delegation = session.add_delegation(agent_type or UNKNOWN_AGENT, instructions, event.moment)
            state.open.append(delegation)
            state.implicit[id(delegation)] = delegation
        self._learn_type(session, delegation, agent_type)
        state.started.add(id(delegation))
        state.last_activity[id(delegation)] = event.moment
        if event.agent_id:
            self._bind(state, delegation, event.agent_id)
            pending = state.ledger.pop(event.agent_id, None)
            if pending is not None:
                self._close_by_stop(session, state, delegation, pending.event)

    def _subagent_stop(self, session: AgentSession, state: SessionState, event: SessionEvent) -> None:
        agent_type = event.data.get("agent_type") if isinstance(event.data.get("agent_type"), str) else None
        delegation = state.by_agent_id.get(event.agent_id) if event.agent_id else None
        if delegation is None and event.agent_id:
            delegation = self._bind_unknown_agent(session, state, event.agent_id, agent_type)
        if delegation is None and not event.agent_id:
            open_now = self._open(state)
            if len(open_now) == 1:
                delegation = open_now[0]
        if delegation is None:
            self._remember_early_stop(state, event)
            return
        self._learn_type(session, delegation, agent_type)
        self._close_by_stop(session, state, delegation, event)

    def _bind_unknown_agent(
        self, session: AgentSession, state: SessionState, agent_id: str, agent_type: Any
    ) -> AgentDelegation | None:
        """An agent id we have not seen: it belongs to the only open, unbound delegation
        (of its type, when the event names one). Several candidates: no guess. An id that
        is the tool_use_id of the call that opened a delegation (stream-json's
        ``parent_tool_use_id``) is that delegation's."""
        called = self._by_call(state, agent_id)
        if called is not None:
            self._bind(state, called, agent_id)
            self._learn_type(session, called, agent_type)
            return called
        unbound = [d for d in self._open(state) if d.agent_id is None]
        if isinstance(agent_type, str) and agent_type:
            unbound = _of_type(unbound, agent_type) or unbound
        if len(unbound) != 1:
            return None
        self._bind(state, unbound[0], agent_id)
        self._learn_type(session, unbound[0], agent_type)
        return unbound[0]

    @staticmethod
    def _learn_type(session: AgentSession, delegation: AgentDelegation, agent_type: Any) -> None:
        """A delegation opened without a type (claude-mpm drops Agent's parameters)
        takes the one its subagent reports."""
        if delegation.agent_type == UNKNOWN_AGENT and isinstance(agent_type, str) and agent_type:
            delegation.agent_type = agent_type
            session.metrics.note_agent(agent_type)

    @staticmethod
    def _by_call(state: SessionState, agent_id: str | None) -> AgentDelegation | None:
        """The delegation opened by the tool call whose id is ``agent_id``, while it has no agent id of its own."""
        if not agent_id:
            return None
        delegation = state.by_tool_use_id.get(agent_id)
        if delegation is None or (delegation.agent_id not in (None, agent_id)):
            return None
        return delegation

    @staticmethod
    def _open(state: SessionState) -> list[AgentDelegation]:
        """Running delegations, oldest first; closed ones are pruned here, so the
        cost follows how many are open, not how many the session ever had."""
        if any(not d.is_open for d in state.open):
            state.open = [d for d in state.open if d.is_open]
        return state.open

    @staticmethod
    def _bind(state: SessionState, delegation: AgentDelegation, agent_id: str) -> None:
        delegation.agent_id = agent_id
        state.by_agent_id[agent_id] = delegation

    def _close_by_stop(
        self, session: AgentSession, state: SessionState, delegation: AgentDelegation, stop: SessionEvent
    ) -> None:
        if delegation.is_open or delegation.status == STALE:
            before = delegation_outcome(delegation)
            delegation.close(stop.moment, success=stop.data.get("success") is not False)
            session.metrics.shift_outcome(before, delegation_outcome(delegation))
        response = stop.data.get("response")
        if isinstance(response, str) and response and not delegation.response_preview:
            delegation.response_preview = response[:RESPONSE_PREVIEW_CHARS]

    def _remember_early_stop(self, state: SessionState, event: SessionEvent) -> None:
        key = event.agent_id or f"type:{event.data.get('agent_type') or 'unknown'}"
        moment = event.moment
        for stale_key in [k for k, v in state.ledger.items() if moment - v.moment > LEDGER_TTL]:
            del state.ledger[stale_key]
        state.ledger[key] = _Pending(event, moment)
        while len(state.ledger) > LEDGER_LIMIT:
            state.ledger.popitem(last=False)

    def _finish_delegation_call(self, session: AgentSession, state: SessionState, event: SessionEvent) -> None:
        """PostToolUse(Task/Agent): the call returned; its outcome is the delegation's."""
        delegation = state.by_tool_use_id.get(event.correlation_id) if event.correlation_id else None
        if delegation is None:
            # claude-mpm often loses the Task's correlation id: the only delegation
            # whose call has not returned yet (running, or ended by SubagentStop) is it.
            agent_type = event.data.get("subagent_type")
            candidates = [
                d
                for d in session.delegations
                if id(d) not in state.returned
                and d.status in (RUNNING, DONE)
                and agent_type in (None, d.agent_type)
            ]
            if len(candidates) == 1:
                delegation = candidates[0]
        if delegation is None:
            return
        state.returned.add(id(delegation))
        success = event.event_type == "PostToolUse" and event.data.get("success") is not False
        end_time = delegation.end_time if delegation.end_time and not delegation.is_open else event.moment
        before = delegation_outcome(delegation)
        delegation.close(end_time, success=success, status=DONE if success else FAILED)
        session.metrics.shift_outcome(before, delegation_outcome(delegation))
        text = event.data.get("response") if success else event.data.get("error")
        if isinstance(text, str) and text:
            delegation.response_preview = text[:RESPONSE_PREVIEW_CHARS]
        if delegation.agent_id is None and isinstance(event.data.get("tool_response"), dict):
            agent_id = event.data["tool_response"].get("agentId")
            if isinstance(agent_id, str) and agent_id:
                self._bind(state, delegation, agent_id)


def rebuild_session(header: dict[str, Any], events: Iterable[SessionEvent]) -> AgentSession:
    """A session from its journal: header fields plus every event replayed in order."""
    session_id = str(header.get("session_id") or "")
    tracker = SessionTracker()
    for event in events:
        if event.session_id != session_id:
            event.session_id = session_id
        tracker.apply(event)
    start = parse_timestamp(header.get("start_time"))
    session = tracker.sessions.get(session_id) or AgentSession(session_id, start)
    if start is not None and start < session.start_time:
        session.start_time = start
    metadata = header.get("metadata")
    if isinstance(metadata, dict):
        session.metadata = {**session.metadata, **metadata}
    if session.working_directory is None and isinstance(header.get("working_directory"), str):
        session.working_directory = header["working_directory"]
    return session
