"""Reading a session file in parts (tail first, then chunks) gives exactly the session a whole read gives."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from agent_aggregator import jsonio, sessionfile
from agent_aggregator.model import AgentSession, events_from_dicts
from agent_aggregator.normalize import normalize
from agent_aggregator.store import SessionStore, session_file_name
from agent_aggregator.tracker import rebuild_session

sys.path.insert(0, str(Path(__file__).parent))
import fixtures_builder as fb  # noqa: E402

UTC = timezone.utc
SID = "5e55f11e-0000-4000-8000-00000000abcd"


def saved_session(directory: Path, count: int) -> Path:
    """A session of ``count`` real events (the raw-hook fixture repeated), saved by the model's own writer."""
    start = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
    templates = [normalize({**p, "session_id": SID}, received_at=start) for _, p in fb.raw_hook_session(SID)]
    events = []
    for index in range(count):
        event = type(templates[0]).from_dict(templates[index % len(templates)].to_dict())
        event.timestamp = (start + timedelta(milliseconds=10 * index)).isoformat()
        event.event_id = f"{index:032x}"
        events.append(event)
    session = rebuild_session({"session_id": SID, "start_time": start.isoformat(), "working_directory": "/w"}, events)
    session.finish("completed")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / session_file_name(SID, session.start_time)
    session.save(path)
    return path


def test_parts_rebuild_every_event_in_order_at_any_chunk_size(tmp_path: Path) -> None:
    path = saved_session(tmp_path, 300)
    data = path.read_bytes()
    whole = orjson.loads(data)
    parts = sessionfile.split(data)
    assert parts.header == {**whole, "events": []}
    for tail_size, chunk_size in [(1, 1), (5_000, 3_000), (40_000, 100_000), (10**9, 10**9)]:
        start, tail = parts.tail_chunk(tail_size)
        head = [event for chunk in parts.chunks(start, chunk_size) for event in chunk]
        assert head + tail == whole["events"], (tail_size, chunk_size)
        assert tail  # never empty: at least the last event


def test_store_load_hands_the_tail_first_then_the_same_session_as_a_whole_read(tmp_path: Path) -> None:
    path = saved_session(tmp_path / "big", 6_000)
    assert path.stat().st_size >= sessionfile.MIN_SIZE  # big enough to be read in parts
    tails: list[AgentSession] = []
    store = SessionStore(path.parent)
    loaded = store.load(SID, on_tail=tails.append)
    plain = SessionStore(path.parent).load(SID)
    assert loaded.to_dict() == plain.to_dict() == AgentSession.load(path).to_dict()
    (tail,) = tails
    assert 0 < len(tail.events) < len(plain.events)
    assert [e.to_dict() for e in tail.events] == [e.to_dict() for e in plain.events[-len(tail.events):]]
    assert tail.metrics.total_events == len(plain.events)  # everything but the events is complete
    assert tail.delegations and len(tail.delegations) == len(plain.delegations)


@pytest.mark.parametrize("kind", ["compact", "reordered", "no events", "not json"])
def test_other_layouts_are_refused_and_the_store_reads_them_whole(tmp_path: Path, kind: str) -> None:
    path = saved_session(tmp_path / "s", 40)
    raw = orjson.loads(path.read_bytes())
    if kind == "compact":
        data = orjson.dumps(raw)
    elif kind == "reordered":
        data = orjson.dumps({**{k: v for k, v in raw.items() if k != "events"}, "events": raw["events"]},
                            option=orjson.OPT_INDENT_2)
    elif kind == "no events":
        data = jsonio.dumps({**raw, "events": []}, indent=True)
    else:
        data = path.read_bytes()[:-2000]
    with pytest.raises(sessionfile.NotOurLayout):
        sessionfile.split(data)
    if kind != "not json":
        path.write_bytes(data)
        tails: list[AgentSession] = []
        assert SessionStore(path.parent).load(path, on_tail=tails.append).to_dict() == AgentSession.from_dict(
            orjson.loads(data)).to_dict()
        assert tails == []


def test_events_from_dicts_matches_from_dict_and_shares_strings() -> None:
    raws = [
        {"timestamp": "t", "event_type": "PreToolUse", "category": "tool", "data": {"a": 1}, "session_id": "s" * 36,
         "correlation_id": "c", "agent_id": "agent-1", "event_id": "e"},
        {"timestamp": None, "event_type": "", "category": None, "data": [1], "session_id": None},
        {"timestamp": 5, "event_type": 7, "category": "", "session_id": 9, "agent_id": 3},
        "not an event",
        {},
    ]
    built = events_from_dicts(raws, "s" * 36)
    assert [e.to_dict() for e in built] == [type(built[0]).from_dict(r).to_dict() for r in raws if isinstance(r, dict)]
    copies = [orjson.loads(orjson.dumps(raws[0])) for _ in range(2)]  # equal strings, distinct objects
    assert copies[0]["session_id"] is not copies[1]["session_id"]
    again = events_from_dicts(copies)
    assert again[0].event_type is again[1].event_type and again[0].session_id is again[1].session_id
    assert again[0].agent_id is again[1].agent_id
