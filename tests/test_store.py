"""SessionStore on real files: naming, journal and recovery, index, lock, listing, cleanup."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent_aggregator import jsonio
from agent_aggregator.errors import AmbiguousSessionError, SessionNotFoundError, StoreError, StoreLockedError
from agent_aggregator.model import COMPLETED, RECOVERED, AgentSession, SessionEvent
from agent_aggregator.store import (
    INDEX_NAME,
    INTERRUPTED,
    SessionStore,
    safe_id_fragment,
    session_file_name,
)
from agent_aggregator.timeutil import parse_timestamp

T0 = datetime(2025, 8, 12, 14, 15, 30, tzinfo=timezone.utc)


def rebuild(header: dict, events: list[SessionEvent]) -> AgentSession:
    """Stands in for the aggregator's rebuild_session: replay the events into a session."""
    session = AgentSession(header["session_id"], parse_timestamp(header["start_time"]))
    for event in events:
        session.append_event(event)
    return session


def make_session(session_id: str, start: datetime = T0, events: int = 3) -> AgentSession:
    session = AgentSession(session_id, start)
    session.working_directory = "/work/project"
    session.add_event("UserPromptSubmit", {"prompt": f"prompt of {session_id}"}, start.isoformat())
    for i in range(events - 1):
        moment = (start + timedelta(seconds=i + 1)).isoformat()
        session.add_event("PreToolUse", {"tool_name": "Read", "file_path": f"/f{i}"}, moment)
    session.add_delegation("engineer", "do it", start)
    return session


def finished(session_id: str, start: datetime = T0, events: int = 3) -> AgentSession:
    session = make_session(session_id, start, events)
    session.finish(COMPLETED)
    return session


@pytest.fixture
def store(tmp_path: Path):
    s = SessionStore(tmp_path / "activity", rebuild=rebuild)
    s.acquire()
    yield s
    s.release()


def reader(store: SessionStore) -> SessionStore:
    """A second, non-writing process's view of the same directory."""
    return SessionStore(store.directory, rebuild=rebuild)


def count_read_json(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    original = jsonio.read_json

    def counting(path: Path):
        calls.append(Path(path))
        return original(path)

    monkeypatch.setattr(jsonio, "read_json", counting)
    return calls


# --- names ------------------------------------------------------------------------


def test_file_name_uses_first_eight_chars_and_utc_start() -> None:
    start = datetime(2025, 8, 12, 16, 15, 30, tzinfo=timezone(timedelta(hours=2)))
    assert session_file_name("5283b66c-aaaa-bbbb", start) == "session_5283b66c_20250812_141530.json"


@pytest.mark.parametrize(
    ("session_id", "fragment"),
    [
        ("../../x", "______x"),
        ("", "unknown"),
        ("a/b", "a_b"),
        ("/etc/passwd", "_etc_pas"),
        ("..\\x", "___x"),
        ("ünïcödé-id", "_n_c_d_-"),
        ("ok_id-12345", "ok_id-12"),
    ],
)
def test_hostile_ids_are_sanitized(session_id: str, fragment: str) -> None:
    assert safe_id_fragment(session_id) == fragment


@pytest.mark.parametrize("session_id", ["../../x", "/etc/passwd", "..\\x", "a/b", "", "..", "ünï/../"])
def test_hostile_ids_never_write_outside_the_directory(store: SessionStore, session_id: str) -> None:
    session = finished(session_id)
    store.append_events(session, session.events)
    path = store.finalize(session)
    assert path.parent == store.directory
    assert path.resolve().parent == store.directory.resolve()
    assert store.load(path).session_id == session_id
    assert sorted(p.name for p in store.directory.parent.iterdir()) == ["activity"]


def test_path_is_stable_and_collisions_get_a_suffix(store: SessionStore) -> None:
    first, second = make_session("same-8chars-1"), make_session("same-8chars-2")
    path = store.path_for(first)
    assert store.path_for(first) == path
    other = store.path_for(second)
    assert path.name == "session_same-8ch_20250812_141530.json"
    assert other.name == "session_same-8ch_20250812_141530_2.json"
    assert store.journal_path_for(second).name == "session_same-8ch_20250812_141530_2.journal.jsonl"


def test_a_new_session_never_overwrites_a_file_it_did_not_load(store: SessionStore) -> None:
    old = finished("abc")
    (store.directory / session_file_name("abc", T0)).write_bytes(jsonio.dumps(old.to_dict()))
    assert store.path_for(make_session("abc")).name.endswith("_2.json")


def test_a_loaded_session_keeps_its_file_and_its_journal_holds_everything(store: SessionStore) -> None:
    target = store.directory / session_file_name("resumed", T0)
    finished("resumed", events=4).save(target)
    session = store.load("resumed")
    session.reopen()
    new = session.add_event("Stop", {}, (T0 + timedelta(minutes=1)).isoformat())
    store.append_events(session, [new])
    assert store.path_for(session) == target
    lines = store.journal_path_for(session).read_bytes().splitlines()
    assert [jsonio.loads(line)["event_type"] for line in lines[1:]] == [e.event_type for e in session.events]
    assert len(lines) == 1 + 5


# --- journal, kill and recovery -----------------------------------------------------


def test_append_events_writes_a_header_then_one_line_per_event(store: SessionStore) -> None:
    session = make_session("journaled")
    store.append_events(session, session.events)
    extra = session.add_event("Stop", {}, (T0 + timedelta(minutes=1)).isoformat())
    store.append_events(session, [extra])
    lines = store.journal_path_for(session).read_bytes().splitlines()
    header = jsonio.loads(lines[0])
    assert header["kind"] == "header" and header["session_id"] == "journaled"
    assert header["file"] == store.path_for(session).name
    assert [jsonio.loads(line)["event_type"] for line in lines[1:]] == [e.event_type for e in session.events]


def test_events_passed_before_they_are_added_are_still_journaled_once(store: SessionStore) -> None:
    session = make_session("early", events=2)
    pending = SessionEvent(T0.isoformat(), "Stop", "response", {}, "early")
    store.append_events(session, [pending])
    lines = store.journal_path_for(session).read_bytes().splitlines()
    assert len(lines) == 1 + 2 + 1


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from agent_aggregator.model import AgentSession
    from agent_aggregator.store import SessionStore

    store = SessionStore(sys.argv[1])
    store.acquire()
    session = AgentSession("killed-session", datetime(2025, 8, 12, tzinfo=timezone.utc))
    for batch in range(5):
        new = [session.add_event("PreToolUse", {"tool_name": "Bash", "n": batch * 10 + i}) for i in range(10)]
        store.append_events(session, new)
    print("appended", flush=True)
    sys.stdin.read()
    """
)


def test_sigkill_loses_nothing_already_appended(tmp_path: Path) -> None:
    directory = tmp_path / "activity"
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "appended"
            assert SessionStore(directory).writer_pid() == child.pid
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    store = SessionStore(directory, rebuild=rebuild)
    assert store.list_sessions()[0].status == INTERRUPTED
    store.acquire()
    [journal] = store.recover_journals()
    assert [e.data["n"] for e in journal.events] == list(range(50))
    assert (journal.bad_lines, journal.truncated_tail) == (0, False)
    session = rebuild(journal.header, journal.events)
    session.finish(RECOVERED)
    path = store.finalize(session)
    assert path.name == journal.header["file"]
    assert not journal.path.exists()
    assert store.recover_journals() == []
    assert store.find("killed").status == RECOVERED
    store.release()


def test_dropped_store_leaves_a_recoverable_journal(tmp_path: Path) -> None:
    directory = tmp_path / "activity"
    first = SessionStore(directory)
    first.acquire()
    session = make_session("dropped")
    first.append_events(session, session.events)
    with pytest.warns(ResourceWarning, match="unclosed file"):
        del first  # no finalize, no release: the lock goes with the object
    second = SessionStore(directory, rebuild=rebuild)
    second.acquire()
    [journal] = second.recover_journals()
    assert [e.to_dict() for e in journal.events] == [e.to_dict() for e in session.events]
    second.release()


def test_torn_last_line_is_counted_and_later_appends_stay_whole(store: SessionStore) -> None:
    session = make_session("torn")
    store.append_events(session, session.events)
    journal_path = store.journal_path_for(session)
    with open(journal_path, "ab") as handle:
        handle.write(b'{"kind": "event", "timest')
    store.release()

    successor = SessionStore(store.directory, rebuild=rebuild)
    successor.acquire()
    [journal] = successor.recover_journals()
    assert len(journal.events) == 3
    assert (journal.bad_lines, journal.truncated_tail) == (1, True)
    resumed = rebuild(journal.header, journal.events)
    extra = resumed.add_event("Stop", {}, (T0 + timedelta(minutes=1)).isoformat())
    successor.append_events(resumed, [extra])
    assert successor.journal_path_for(resumed) == journal_path
    successor.release()

    third = SessionStore(store.directory)
    third.acquire()
    [again] = third.recover_journals()
    assert [e.event_type for e in again.events][-1] == "Stop"
    assert (len(again.events), again.bad_lines, again.truncated_tail) == (4, 1, False)
    third.release()
    store.acquire()  # for the fixture's release


def test_corrupt_journal_header_is_reported_and_skipped(store: SessionStore) -> None:
    (store.directory / "session_bad_20250812_141530.journal.jsonl").write_bytes(b"garbage\n{}\n")
    assert store.recover_journals() == []
    assert [p.name for p, _ in store.problems] == ["session_bad_20250812_141530.journal.jsonl"]


def test_journal_left_after_a_complete_final_write_is_dropped(store: SessionStore) -> None:
    session = finished("late-unlink")
    store.append_events(session, session.events)
    journal = store.journal_path_for(session)
    kept = journal.read_bytes()
    store.finalize(session)
    journal.write_bytes(kept)
    successor = SessionStore(store.directory)
    store.release()
    successor.acquire()
    assert successor.recover_journals() == []
    assert not journal.exists()
    successor.release()
    store.acquire()


# --- snapshots and final files ------------------------------------------------------


def test_snapshot_keeps_the_journal_and_finalize_removes_it(store: SessionStore) -> None:
    session = make_session("turns")
    store.append_events(session, session.events)
    snapshot = store.save_snapshot(session)
    journal = store.journal_path_for(session)
    assert snapshot.exists() and journal.exists()
    assert jsonio.read_json(snapshot)["status"] == "active"
    assert store.list_sessions()[0].status == "active"

    session.finish(COMPLETED)
    assert store.finalize(session) == snapshot
    assert not journal.exists()
    assert jsonio.read_json(snapshot)["status"] == COMPLETED
    [summary] = reader(store).list_sessions()
    assert (summary.status, summary.event_count, summary.file_path) == (COMPLETED, 3, snapshot)


def test_atomic_writes_leave_no_temporary_files(store: SessionStore) -> None:
    for n in range(3):
        session = finished(f"atomic-{n}")
        store.append_events(session, session.events)
        store.save_snapshot(session)
        store.finalize(session)
    names = sorted(p.name for p in store.directory.iterdir())
    assert [n for n in names if n.endswith(".tmp")] == []
    assert names == [".aggregator.lock", ".index.json"] + [session_file_name(f"atomic-{n}", T0) for n in range(3)]


def test_writing_requires_the_lock(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "activity")
    session = finished("no-lock")
    for write in (store.save_snapshot, store.finalize, store.path_for):
        with pytest.raises(StoreError, match="acquire"):
            write(session)
    with pytest.raises(StoreError, match="acquire"):
        store.append_events(session, session.events)
    assert not (tmp_path / "activity").exists()


# --- listing and the index ------------------------------------------------------------


def save_all(store: SessionStore, *sessions: AgentSession) -> None:
    for session in sessions:
        store.finalize(session)


def test_second_listing_parses_nothing(store: SessionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    save_all(store, finished("a1"), finished("b2"))
    (store.directory / "session_zz_20250812_141530.json").write_bytes(jsonio.dumps(finished("zz").to_dict()))
    calls = count_read_json(monkeypatch)
    other = reader(store)
    assert len(other.list_sessions()) == 3
    parsed = [p.name for p in calls]
    assert ".index.json" in parsed and "session_zz_20250812_141530.json" in parsed
    assert not any(name.startswith("session_a1") for name in parsed)  # the writer indexed its own files
    calls.clear()
    assert len(other.list_sessions()) == 3
    assert calls == []
    assert len(reader(store).list_sessions()) == 3
    assert [p.name for p in calls] == [".index.json"]


def test_index_is_stale_when_a_file_changes(store: SessionStore) -> None:
    session = finished("changing")
    path = store.finalize(session)
    other = reader(store)
    assert other.find("changing").initial_prompt == "prompt of changing"
    raw = jsonio.read_json(path)
    raw["initial_prompt"] = "edited"
    path.write_bytes(jsonio.dumps(raw))
    assert other.find("changing").initial_prompt == "edited"
    path.unlink()
    assert other.list_sessions() == []
    assert "session_changing" not in (store.directory / ".index.json").read_text()


@pytest.mark.parametrize("damage", ["delete", "garbage", "foreign"])
def test_missing_or_corrupt_index_is_rebuilt(store: SessionStore, damage: str) -> None:
    save_all(store, finished("one"), finished("two"))
    index = store.directory / ".index.json"
    if damage == "delete":
        index.unlink()
    else:
        index.write_bytes(b"\x00garbage" if damage == "garbage" else b'{"version": 99, "files": []}')
    assert sorted(s.session_id for s in reader(store).list_sessions()) == ["one", "two"]
    assert jsonio.read_json(index)["version"] == 1
    assert reader(store).problems == []


CORRUPT_FILES = {
    "session_garbage_20250812_000000.json": b"\x89PNG not json",
    "session_empty_20250812_000000.json": b"",
    "session_list_20250812_000000.json": b"[1, 2, 3]",
    "session_noid_20250812_000000.json": b'{"events": []}',
    "session_torn_20250812_000000.json": b'{"session_id": "torn", "events": [{"ti',
    "session_badevents_20250812_000000.json": b'{"session_id": "x", "events": {}}',
}


def test_corrupt_files_are_reported_once_and_skipped(store: SessionStore, caplog: pytest.LogCaptureFixture) -> None:
    save_all(store, finished("good-one"), finished("good-two"))
    for name, content in CORRUPT_FILES.items():
        (store.directory / name).write_bytes(content)
    other = reader(store)
    with caplog.at_level(logging.WARNING, logger="agent_aggregator.store"):
        assert sorted(s.session_id for s in other.list_sessions()) == ["good-one", "good-two"]
        assert sorted(s.session_id for s in other.list_sessions()) == ["good-one", "good-two"]
        assert other.find("good-o").session_id == "good-one"
        assert other.load("good-two").session_id == "good-two"
    assert sorted(p.name for p, _ in other.problems) == sorted(CORRUPT_FILES)
    assert len([r for r in caplog.records if r.name == "agent_aggregator.store"]) == len(CORRUPT_FILES)
    for name in CORRUPT_FILES:
        with pytest.raises(StoreError, match="not a readable session file"):
            other.load(store.directory / name)
    # the problems are cached: a fresh reader reports them without re-parsing
    fresh = reader(store)
    fresh.list_sessions()
    assert len(fresh.problems) == len(CORRUPT_FILES)


def test_ten_thousand_sessions_list_from_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "activity"
    directory.mkdir()
    for n in range(10_000):
        session_id = f"{n:05d}-session"
        start = (T0 + timedelta(seconds=n)).isoformat()
        raw = {"session_id": session_id, "start_time": start, "status": COMPLETED, "events": []}
        (directory / session_file_name(session_id, start)).write_bytes(jsonio.dumps(raw))
    listing = SessionStore(directory).list_sessions()
    assert len(listing) == 10_000
    assert listing[0].session_id == "09999-session"
    calls = count_read_json(monkeypatch)
    assert len(SessionStore(directory).list_sessions()) == 10_000
    assert [p.name for p in calls] == [".index.json"]


def test_journal_only_session_is_listed_active_then_interrupted(store: SessionStore) -> None:
    session = make_session("open-one", events=4)
    store.append_events(session, session.events)
    other = reader(store)
    [summary] = other.list_sessions()
    assert (summary.session_id, summary.event_count, summary.status) == ("open-one", 4, "active")
    assert summary.working_directory == "/work/project"
    store.release()
    assert other.list_sessions()[0].status == INTERRUPTED
    store.acquire()


def test_newer_journal_wins_over_its_snapshot(store: SessionStore) -> None:
    session = make_session("snap", events=2)
    store.append_events(session, session.events)
    store.save_snapshot(session)
    more = [session.add_event("PreToolUse", {"tool_name": "Bash"}, T0.isoformat()) for _ in range(3)]
    store.append_events(session, more)
    other = reader(store)
    assert other.find("snap").event_count == 5
    assert len(other.load("snap").events) == 5
    assert len(other.load(store.path_for(session)).events) == 5
    with pytest.raises(StoreError, match="cannot be read yet"):
        SessionStore(store.directory).load("snap")


def test_journal_only_session_loads_through_rebuild(store: SessionStore) -> None:
    session = make_session("journal-only")
    store.append_events(session, session.events)
    loaded = reader(store).load("journal-only")
    assert [e.to_dict() for e in loaded.events] == [e.to_dict() for e in session.events]
    assert loaded.initial_prompt == "prompt of journal-only"


def test_listing_a_missing_directory_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "nowhere")
    assert store.list_sessions() == []
    assert store.latest() is None
    assert not (tmp_path / "nowhere").exists()


# --- find, latest, load -----------------------------------------------------------------


@pytest.fixture
def populated(store: SessionStore) -> SessionStore:
    save_all(
        store,
        finished("abc", T0),
        finished("abcdef", T0 + timedelta(hours=1)),
        finished("abd-123", T0 + timedelta(hours=3)),
        finished("xyz-789", T0 + timedelta(hours=2)),
    )
    return store


def test_find_by_unique_prefix_exact_ambiguous_and_missing(populated: SessionStore) -> None:
    assert populated.find("xy").session_id == "xyz-789"
    assert populated.find("abc").session_id == "abc"  # exact match wins over prefix
    with pytest.raises(AmbiguousSessionError) as ambiguous:
        populated.find("ab")
    assert ambiguous.value.candidates == ["abc", "abcdef", "abd-123"]
    with pytest.raises(SessionNotFoundError, match="no session matches 'nope'"):
        populated.find("nope")


def test_latest_is_newest_by_start_time(populated: SessionStore) -> None:
    latest = populated.latest()
    assert latest is not None and latest.session_id == "abd-123"
    assert [s.session_id for s in populated.list_sessions()] == ["abd-123", "xyz-789", "abcdef", "abc"]


def test_load_by_id_prefix_and_path(populated: SessionStore, tmp_path: Path) -> None:
    path = populated.find("xyz").file_path
    assert populated.load("xyz").session_id == "xyz-789"
    assert populated.load(path).session_id == "xyz-789"
    assert populated.load(str(path)).session_id == "xyz-789"
    outside = tmp_path / "exported.json"
    outside.write_bytes(path.read_bytes())
    loaded = populated.load(outside)
    assert (loaded.session_id, len(loaded.events), len(loaded.delegations)) == ("xyz-789", 3, 1)
    with pytest.raises(SessionNotFoundError):
        populated.load(tmp_path / "missing.json")
    with pytest.raises(SessionNotFoundError):
        populated.load("missing")


# --- the writer lock ------------------------------------------------------------------


def test_second_writer_is_refused_and_told_who_holds_the_lock(store: SessionStore) -> None:
    second = SessionStore(store.directory)
    with pytest.raises(StoreLockedError, match=f"already used by another aggregator \\(pid {os.getpid()}\\)"):
        second.acquire()
    assert not second.is_writer
    assert second.writer_pid() == os.getpid()
    assert store.is_writer and store.writer_pid() == os.getpid()
    assert (store.directory / ".aggregator.lock").read_text().split()[0] == str(os.getpid())

    store.release()
    assert second.writer_pid() is None
    second.acquire()
    assert second.is_writer
    second.release()
    store.acquire()


def test_acquire_on_a_file_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        SessionStore(target).acquire()
    with pytest.raises(StoreError, match="cannot create"):
        SessionStore(target / "below").acquire()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_directory_lists_but_cannot_be_written(store: SessionStore) -> None:
    save_all(store, finished("ro-one"))
    (store.directory / ".index.json").unlink()
    store.release()
    store.directory.chmod(0o555)
    try:
        other = reader(store)
        assert [s.session_id for s in other.list_sessions()] == ["ro-one"]
        assert other.load("ro").session_id == "ro-one"
        with pytest.raises(StoreError, match="not writable"):
            other.acquire()
    finally:
        store.directory.chmod(0o755)
    store.acquire()


# --- cleanup ----------------------------------------------------------------------------


def test_cleanup_dry_run_then_for_real(store: SessionStore) -> None:
    now = T0 + timedelta(days=40)
    old = finished("old-one", T0)
    recent = finished("recent", T0 + timedelta(days=35))
    save_all(store, old, recent)
    open_old = make_session("open-old", T0)
    store.append_events(open_old, open_old.events)
    store.save_snapshot(open_old)
    journaled_old = finished("journaled-old", T0)
    store.append_events(journaled_old, journaled_old.events)
    store.save_snapshot(journaled_old)

    expected = [store.path_for(old)]
    assert store.cleanup(30, dry_run=True, now=now) == expected
    assert expected[0].exists()
    assert reader(store).cleanup(30, now=now) == expected
    assert not expected[0].exists()
    assert sorted(s.session_id for s in store.list_sessions()) == ["journaled-old", "open-old", "recent"]
    assert "old-one" not in (store.directory / ".index.json").read_text()
    assert store.cleanup(30, now=now) == []


def test_index_writes_are_debounced_and_flushed_on_release(tmp_path: Path, monkeypatch) -> None:
    writes: list[Path] = []
    real_write = jsonio.write_bytes_atomic

    def counting_write(path, payload, **options):
        if Path(path).name == INDEX_NAME:
            writes.append(Path(path))
        return real_write(path, payload, **options)

    monkeypatch.setattr(jsonio, "write_bytes_atomic", counting_write)
    writer = SessionStore(tmp_path / "activity", rebuild=rebuild)
    writer.acquire()
    for i in range(20):
        writer.finalize(make_session(f"burst-{i:02d}", T0 + timedelta(minutes=i)))
    assert len(writes) == 1  # the first save writes the index; the rest of the burst waits
    # A reader meanwhile sees every session: a stale index only means re-parsing.
    assert len(SessionStore(tmp_path / "activity").list_sessions()) == 20
    writer.release()
    on_disk = json.loads((tmp_path / "activity" / INDEX_NAME).read_text())
    assert len([e for e in on_disk["files"].values() if e.get("summary")]) == 20
