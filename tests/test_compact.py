"""Held events share equal values (issue 7's memory budget) and stay exactly the events they were."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from agent_aggregator import sessionfile
from agent_aggregator.compact import share_with_pre
from agent_aggregator.model import AgentSession, SessionEvent, events_from_dicts
from agent_aggregator.normalize import normalize
from agent_aggregator.store import SessionStore, session_file_name
from agent_aggregator.tracker import SessionTracker, rebuild_session

sys.path.insert(0, str(Path(__file__).parent))
import fixtures_builder as fb  # noqa: E402

UTC = timezone.utc
SID = "c0a1e5ce-0000-4000-8000-00000000beef"
START = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


def live_events() -> list[SessionEvent]:
    """The raw-hook fixture session, normalized and tracked as the aggregator does."""
    tracker = SessionTracker()
    for _, payload in fb.raw_hook_session(SID):
        tracker.apply(normalize(payload, received_at=START))
    return tracker.sessions[SID].events


def pairs(events: list[SessionEvent]) -> list[tuple[SessionEvent, SessionEvent]]:
    """(PreToolUse, its PostToolUse) by tool call id."""
    pres = {e.correlation_id: e for e in events if e.event_type == "PreToolUse" and e.correlation_id}
    return [
        (pres[e.correlation_id], e) for e in events
        if e.event_type in ("PostToolUse", "PostToolUseFailure") and e.correlation_id in pres
    ]


def deep_size(events: list[SessionEvent]) -> int:
    """Bytes of the events and everything they reference, each object counted once."""
    seen: set[int] = set()
    stack: list[Any] = list(events)
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, SessionEvent):
            stack.extend(getattr(item, name) for name in SessionEvent.__slots__)
    return total


def test_share_with_pre_takes_only_equal_values_and_keeps_the_key_order() -> None:
    class Touchy:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no comparing me")

    touchy = [Touchy()]
    post = {"input": {"a": [1, 2]}, "id": "".join(["toolu_", "1" * 8]), "out": {"ok": True}, "n": 3, "odd": touchy,
            "only_post": "x"}
    pre = {"n": 3, "out": {"ok": False}, "id": "".join(["toolu_", "11111111"]), "input": {"a": [1, 2]}, "odd": [Touchy()]}
    assert post["id"] is not pre["id"]
    share_with_pre(post, pre)
    assert list(post) == ["input", "id", "out", "n", "odd", "only_post"]
    assert post["input"] is pre["input"] and post["id"] is pre["id"]
    assert post["out"] == {"ok": True} and post["out"] is not pre["out"]
    assert post["odd"] is touchy  # its __eq__ raised: left as it was


def test_live_posts_hold_their_pre_values_and_no_event_changes_after_it_is_recorded() -> None:
    tracker = SessionTracker()
    recorded: list[tuple[SessionEvent, bytes]] = []
    for _, payload in fb.raw_hook_session(SID):
        outcome = tracker.apply(normalize(payload, received_at=START))
        assert outcome.event is not None
        recorded.append((outcome.event, orjson.dumps(outcome.event.to_dict())))
    # Nothing later (pairing, delegations closing, ...) changed an event through a shared object.
    assert [orjson.dumps(event.to_dict()) for event, _ in recorded] == [text for _, text in recorded]
    events = tracker.sessions[SID].events
    tool_pairs = pairs(events)
    assert len(tool_pairs) >= 10
    for pre, post in tool_pairs:
        assert post.data is not pre.data
        assert post.correlation_id is pre.correlation_id
        if post.data.get("tool_input") == pre.data.get("tool_input") is not None:
            assert post.data["tool_input"] is pre.data["tool_input"]
    for event in events:  # held in a dict sized for its items
        assert sys.getsizeof(event.data) == sys.getsizeof(dict(event.data.items()))


def test_loading_shares_repeated_values_and_gives_the_events_from_dict_gives() -> None:
    raws = orjson.loads(orjson.dumps([event.to_dict() for event in live_events()]))
    copies = orjson.loads(orjson.dumps(raws))
    loaded = events_from_dicts(raws, SID)
    plain = [SessionEvent.from_dict(raw) for raw in copies]
    assert [e.to_dict() for e in loaded] == [e.to_dict() for e in plain] == copies
    assert len({id(e.data["cwd"]) for e in loaded if "cwd" in e.data}) == 1
    assert len({id(e.data["transcript_path"]) for e in loaded if "transcript_path" in e.data}) == 1
    for pre, post in pairs(loaded):
        assert post.correlation_id is pre.correlation_id is pre.data["tool_use_id"] is post.data["tool_use_id"]
        if post.data.get("tool_input") == pre.data.get("tool_input") is not None:
            assert post.data["tool_input"] is pre.data["tool_input"]
    # What it is for: the same events in clearly less memory than one copy of everything per event.
    assert deep_size(loaded) < 0.8 * deep_size(plain)


def saved_big_session(directory: Path) -> Path:
    """A session file big enough to be read in parts (``sessionfile.MIN_SIZE``)."""
    templates = live_events()
    events = []
    size, index = 0, 0
    while size < sessionfile.MIN_SIZE * 1.2:
        event = SessionEvent.from_dict(orjson.loads(orjson.dumps(templates[index % len(templates)].to_dict())))
        event.timestamp = (START + timedelta(milliseconds=10 * index)).isoformat()
        event.event_id = f"{index:032x}"
        if event.correlation_id:  # one tool call per Pre/Post pair, as in a real session
            event.correlation_id = event.data["tool_use_id"] = f"{event.correlation_id}-{index // len(templates)}"
        size += len(orjson.dumps(event.to_dict())) + 40
        events.append(event)
        index += 1
    session = rebuild_session({"session_id": SID, "start_time": START.isoformat()}, events)
    session.finish("completed")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / session_file_name(SID, session.start_time)
    session.save(path)
    return path


def test_a_big_file_is_read_in_parts_with_or_without_a_viewer_and_equals_a_whole_decode(tmp_path: Path) -> None:
    path = saved_big_session(tmp_path / "activity")
    whole = AgentSession.from_dict(orjson.loads(path.read_bytes())).to_dict()
    read = sessionfile.read_session(path)
    assert read is not None and read.to_dict() == whole
    assert SessionStore(path.parent).load(path).to_dict() == whole
    assert AgentSession.load(path).to_dict() == whole
    tails: list[AgentSession] = []
    assert SessionStore(path.parent).load(path, on_tail=tails.append).to_dict() == whole
    assert len(tails) == 1 and 0 < len(tails[0].events) < len(whole["events"])
    events = read.events
    assert len({id(e.data["cwd"]) for e in events if "cwd" in e.data}) == 1
    shared = [post.data["tool_input"] is pre.data["tool_input"] for pre, post in pairs(events)]
    assert shared and sum(shared) >= 0.9 * len(shared)  # pairs split across two chunks are the only misses


def test_a_small_or_foreign_file_is_not_read_in_parts(tmp_path: Path) -> None:
    small = tmp_path / "small.json"
    small.write_bytes(b'{"session_id": "s", "events": []}')
    assert sessionfile.read_session(small) is None
    assert AgentSession.load(small).session_id == "s"


def test_a_recovered_journal_shares_values_as_a_load_does(tmp_path: Path) -> None:
    directory = tmp_path / "activity"
    first = SessionStore(directory)
    first.acquire()
    session = rebuild_session({"session_id": SID, "start_time": START.isoformat()},
                              [SessionEvent.from_dict(e.to_dict()) for e in live_events()])
    first.append_events(session, session.events)
    first.close_journals()
    first.release()
    second = SessionStore(directory, rebuild=rebuild_session)
    second.acquire()
    [journal] = second.recover_journals()
    second.release()
    assert [e.to_dict() for e in journal.events] == [e.to_dict() for e in session.events]
    assert len({id(e.data["cwd"]) for e in journal.events if "cwd" in e.data}) == 1
    for pre, post in pairs(journal.events):
        assert post.correlation_id is pre.data["tool_use_id"]
