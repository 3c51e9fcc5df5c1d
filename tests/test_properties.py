"""Property-based tests (hypothesis, issue 8): for any payload at all,

* normalize() returns an event or raises RejectedEvent, nothing else;
* every event it accepts is saved by the store and read back equal: from the
  session file, and from the journal a killed writer leaves behind.

Payloads are drawn around the real wire formats (raw hooks, claude-mpm
envelopes and HTTP bodies, the seed envelope) with every field allowed to be
of any JSON type, plus what python-socketio's json can deliver beyond JSON
files: integers past 64 bits, NaN, infinities, lone surrogates.
``derandomize=True``: the same examples on every run, so CI is repeatable.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.config import Config
from agent_aggregator.errors import RejectedEvent
from agent_aggregator.model import SessionEvent
from agent_aggregator.normalize import normalize
from agent_aggregator.store import SessionStore
from agent_aggregator.tracker import rebuild_session

HOOK_NAMES = ["PreToolUse", "PostToolUse", "PostToolUseFailure", "UserPromptSubmit", "Stop", "SubagentStart",
              "SubagentStop", "SessionStart", "SessionEnd", "Notification", "PreCompact", "TodoUpdated"]
SUBTYPES = ["pre_tool", "post_tool", "user_prompt", "stop", "subagent_start", "subagent_stop", "session_end",
            "todo_updated", "assistant_response", "memory_injected"]
EVENT_NAMES = [None, "claude_event", "hook_event", "tool_event", "session_event", "heartbeat", "dashboard:welcome",
               "event_history", "system_event", "agent_event"]
TOOLS = ["Bash", "Read", "Write", "Edit", "MultiEdit", "Task", "Agent", "TodoWrite", "Grep", "NotebookEdit"]

texts = st.text(alphabet=st.characters(codec=None), max_size=40)  # lone surrogates and control characters too
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), texts,
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)), max_leaves=12)
session_ids = st.one_of(st.sampled_from(["s1", "s2", "4f6c1e2a-8b3d"]), texts, st.integers(), json_values)
timestamps = st.one_of(
    st.none(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.sampled_from(["2026-03-14T09:30:00Z", "2026-03-14T09:30:00+00:00Z", "Sat, 14 Mar 2026 09:30:00 +0000",
                     "1773480600000", "9999-12-31T23:59:59Z", "garbage", ""]),
    texts,
)
tool_inputs = st.one_of(
    st.fixed_dictionaries({}, optional={"file_path": st.one_of(texts, json_values), "command": texts,
                                        "subagent_type": texts, "prompt": texts, "todos": json_values,
                                        "content": texts}),
    json_values,
)


def _optional(**fields: st.SearchStrategy) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({}, optional=fields)


raw_hooks = st.builds(
    lambda required, extra: {**extra, **required},
    st.fixed_dictionaries({"session_id": session_ids,
                           "hook_event_name": st.one_of(st.sampled_from(HOOK_NAMES), texts, json_values)}),
    _optional(tool_name=st.one_of(st.sampled_from(TOOLS), json_values), tool_input=tool_inputs,
              tool_response=json_values, tool_use_id=st.one_of(texts, json_values), agent_id=st.one_of(texts, json_values),
              agent_type=texts, prompt=st.one_of(texts, json_values), cwd=st.one_of(texts, json_values),
              timestamp=timestamps, event_id=st.one_of(texts, json_values), last_assistant_message=texts,
              extra=json_values),
)
envelopes = st.builds(
    lambda required, extra: {**extra, **required},
    st.fixed_dictionaries({"type": st.one_of(st.sampled_from(["hook", "claude_event", "tool_event"]), texts),
                           "subtype": st.one_of(st.sampled_from(SUBTYPES), texts, json_values)}),
    _optional(session_id=session_ids, timestamp=timestamps, data=st.one_of(raw_hooks, json_values),
              correlation_id=texts, source=texts),
)
api_bodies = st.fixed_dictionaries({"namespace": texts, "event": st.one_of(texts, json_values),
                                    "data": st.one_of(raw_hooks, envelopes, json_values)})
payloads = st.one_of(raw_hooks, envelopes, api_bodies, st.dictionaries(texts, json_values, max_size=6), json_values)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(payload=payloads, event_name=st.sampled_from(EVENT_NAMES))
def test_normalize_never_raises_anything_but_rejected_event(payload: Any, event_name: str | None) -> None:
    """Guarantee: one bad payload never stops ingest: the only exception normalize() raises is RejectedEvent."""
    try:
        event = normalize(payload, event_name)
    except RejectedEvent as rejection:
        assert isinstance(rejection.kind, str) and rejection.kind
        return
    assert isinstance(event, SessionEvent) and event.session_id
    orjson.dumps(event.to_dict())  # what the store writes: raises on values a session file cannot hold


def _accepted(drawn: list[tuple[Any, str | None]]) -> list[SessionEvent]:
    events = []
    for payload, event_name in drawn:
        try:
            events.append(normalize(payload, event_name))
        except RejectedEvent:
            continue
    return events


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(drawn=st.lists(st.tuples(st.one_of(raw_hooks, envelopes, api_bodies), st.sampled_from(EVENT_NAMES)),
                      min_size=1, max_size=12))
def test_every_accepted_event_round_trips_through_the_store(drawn: list[tuple[Any, str | None]]) -> None:
    """Guarantee: every event normalize() accepts is saved and read back equal: through the
    aggregator into a session file, and through the journal a dead writer leaves behind."""
    events = _accepted(drawn)
    with tempfile.TemporaryDirectory() as directory:
        aggregator = EventAggregator(config=Config(activity_directory=Path(directory) / "activity"))
        aggregator.start(connect=False)
        try:
            ingested = [event for event in events if aggregator.ingest(event) is not None]
            sessions = {event.session_id for event in ingested}
            journaled = _read_journals(aggregator.store)  # what a SIGKILL now would leave
        finally:
            aggregator.stop()
        assert aggregator.get_status()["save_errors"] == 0
        saved: dict[str, list[dict]] = {}
        for summary in aggregator.store.list_sessions():
            saved.setdefault(summary.session_id, []).extend(
                event.to_dict() for event in aggregator.store.load(summary.file_path).events)
    assert set(saved) == sessions
    for session_id in sessions:
        want = [event.to_dict() for event in ingested if event.session_id == session_id]
        assert saved[session_id] == want
        if session_id in journaled:  # completed sessions have no journal any more
            assert journaled[session_id] == want


def _read_journals(store: SessionStore) -> dict[str, list[dict]]:
    """Each open session's journal rebuilt as recovery would do it (read-only: the writer is still alive)."""
    from agent_aggregator.store import _read_journal

    rebuilt: dict[str, list[dict]] = {}
    for path in sorted(store.directory.glob("*.journal.jsonl")):
        journal = _read_journal(path)
        assert journal.bad_lines == 0
        session = rebuild_session(journal.header, journal.events)
        rebuilt[session.session_id] = [event.to_dict() for event in session.events]
    return rebuilt
