"""Batched live ingest (issue 7): ``EventAggregator.handle_events`` and ``SocketIOSource(on_batch=...)``.

A batch must leave exactly what the same events fed one by one leave (sessions,
journals, final files), every recorded event journaled when the call returns,
and a failed journal write must keep the batch in memory and catch up in order.
Also the speed-only changes that must not change results: the redaction
trigger for Stripe keys, the timestamp cache, and may_hold() after our own writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import fixtures_builder as fb  # noqa: E402
from test_socketio_client import BareServer, wait_until  # noqa: E402

from agent_aggregator import jsonio  # noqa: E402
from agent_aggregator.aggregator import EventAggregator  # noqa: E402
from agent_aggregator.config import Config  # noqa: E402
from agent_aggregator.redact import default_redactor  # noqa: E402
from agent_aggregator.sources.socketio_client import SocketIOSource  # noqa: E402
from agent_aggregator.store import SessionStore  # noqa: E402
from agent_aggregator.timeutil import parse_timestamp  # noqa: E402


def mpm_stream(sessions: int) -> list[tuple[str, dict[str, Any]]]:
    """claude-mpm events of several sessions, interleaved two at a time (as concurrent sessions arrive)."""
    streams = []
    for number in range(sessions):
        sid = fb.det_uuid("ingest-batch", number)
        start = fb.MPM_START + timedelta(minutes=3 * number)
        streams.append(fb.claude_mpm_session(sid, f"/home/dev/p{number}", start, include_non_session=False,
                                             subagent_id=fb.det_hex(7, sid, "agent")))
    out: list[tuple[str, dict[str, Any]]] = []
    for first, second in zip(streams[::2], streams[1::2]):
        for a, b in zip(first, second):
            out += [a, b]
        shorter = min(len(first), len(second))
        out += first[shorter:] + second[shorter:]
    return out


def raw_stream() -> list[tuple[str, dict[str, Any]]]:
    """One raw Claude Code hook session that ends (SessionEnd), stamped as the hub would."""
    return [("claude_event", {**payload, "event_id": fb.det_hex(32, "raw", n), "timestamp": moment})
            for n, (moment, payload) in enumerate(fb.raw_hook_session())]


def journal_events(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """Event lines of every journal, by file name (header checked, order kept)."""
    found = {}
    for path in sorted(directory.glob("session_*.journal.jsonl")):
        lines = path.read_bytes().splitlines()
        assert json.loads(lines[0])["kind"] == "header"
        found[path.name] = [json.loads(line) for line in lines[1:]]
    return found


def new_aggregator(directory: Path) -> EventAggregator:
    aggregator = EventAggregator(config=Config(activity_directory=directory))
    aggregator.start(connect=False)
    return aggregator


def test_a_batch_leaves_what_one_by_one_leaves_and_is_journaled_on_return(tmp_path: Path) -> None:
    stream = mpm_stream(4) + raw_stream()
    one, many = new_aggregator(tmp_path / "one"), new_aggregator(tmp_path / "many")
    try:
        for name, payload in stream:
            one.handle_event(payload, name)
        recorded = 0
        for start in range(0, len(stream), 37):  # batches that cut sessions anywhere
            recorded += many.handle_events(stream[start : start + 37])
            # journaled on return: every event recorded so far is on disk (or in a final file)
            on_disk = sum(len(lines) for lines in journal_events(tmp_path / "many").values())
            finals = [jsonio.read_json(p) for p in (tmp_path / "many").glob("session_*.json")]
            on_disk += sum(len(f["events"]) for f in finals if f["status"] != "active")
            assert on_disk == many.total_events
        assert recorded == many.total_events == one.total_events == len(stream)
        assert journal_events(tmp_path / "one") == journal_events(tmp_path / "many")
        assert sorted(one.tracker.sessions) == sorted(many.tracker.sessions)
        for sid, session in one.tracker.sessions.items():
            assert many.tracker.sessions[sid].to_dict() == session.to_dict()
        ended = sorted(p.name for p in (tmp_path / "one").glob("session_*.json"))
        assert ended and ended == sorted(p.name for p in (tmp_path / "many").glob("session_*.json"))
        for name in ended:  # the raw session ended inside a batch: final file, journal gone, same content
            a, b = (jsonio.read_json(tmp_path / d / name) for d in ("one", "many"))
            if a["status"] != "active":
                assert a == b and a["status"] == "completed" and not (tmp_path / "many" / name.replace(".json", ".journal.jsonl")).exists()
    finally:
        one.stop()
        many.stop()


def test_a_batch_counts_bad_payloads_and_drops_duplicates_like_handle_event(tmp_path: Path) -> None:
    stream = mpm_stream(2)
    aggregator = new_aggregator(tmp_path)
    try:
        batch = [("claude_event", "not json {"), ("claude_event", 42), *stream[:10], *stream[:10],
                 ("dashboard:welcome", {"session_id": "x"})]
        assert aggregator.handle_events(batch) == 10
        status = aggregator.get_status()
        assert status["rejected_events"] == 2 and status["ignored_messages"] == 1
        assert status["duplicate_events"] == 10 and status["total_events"] == 10
        assert sum(len(v) for v in journal_events(tmp_path).values()) == 10
    finally:
        aggregator.stop()


FAILING_WRITE = textwrap.dedent("""
    import json, os, resource, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from test_ingest_batch import mpm_stream
    from agent_aggregator.aggregator import EventAggregator
    from agent_aggregator.config import Config

    directory = Path(sys.argv[1])
    stream = mpm_stream(2)
    aggregator = EventAggregator(config=Config(activity_directory=directory))
    aggregator.start(connect=False)
    aggregator.handle_events(stream[:6])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max(p.stat().st_size for p in directory.glob("*.journal.jsonl")), hard))
    recorded = aggregator.handle_events(stream[6:30])
    failing = aggregator.get_status()
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    still = aggregator.retry_unsaved()
    print(json.dumps({"recorded": recorded, "failing": failing, "still": still,
                      "after": aggregator.get_status(), "sessions": sorted(aggregator.tracker.sessions)}))
""")


def test_a_failed_journal_write_keeps_the_batch_in_memory_and_catches_up_in_order(tmp_path: Path) -> None:
    """Writes fail (RLIMIT_FSIZE, in a child process): the batch is tracked and kept, status says
    so; once writing works the retry appends exactly the missing events, in order."""
    directory = tmp_path / "activity"
    done = subprocess.run([sys.executable, "-c", FAILING_WRITE, str(directory), str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["recorded"] == 24
    assert result["failing"]["write_error"] and result["failing"]["unjournaled_events"] > 0
    assert result["still"] == 0 and result["after"]["write_error"] is None
    assert result["after"]["unjournaled_events"] == 0
    expected: dict[str, list[str]] = {}
    for event in _events(mpm_stream(2)[:30]):
        expected.setdefault(event.session_id, []).append(event.event_id)
    journals = {events[0]["session_id"]: [e["event_id"] for e in events] for events in journal_events(directory).values()}
    assert journals == expected  # every event once, in arrival order, no gap


def _events(stream: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    from agent_aggregator.normalize import normalize

    return [normalize(payload, name) for name, payload in stream]


def test_socketio_source_hands_over_batches_in_order_and_flushes_on_stop(tmp_path: Path) -> None:
    server = BareServer().start()
    batches: list[list[tuple[str | None, Any]]] = []
    lock = threading.Lock()

    def on_batch(batch: list[tuple[str | None, Any]]) -> None:
        with lock:
            batches.append(list(batch))

    def per_event(*_args: Any) -> None:
        raise AssertionError("on_event is not called when on_batch is given")

    import asyncio

    source = SocketIOSource(server.url, per_event, on_batch=on_batch)
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=lambda: loop.run_until_complete(source.run()), daemon=True)
    runner.start()
    try:
        wait_until(lambda: source.connected)
        stream = mpm_stream(2)
        server.emit(stream)
        wait_until(lambda: sum(len(b) for b in batches) == len(stream))
        received = [pair for batch in batches for pair in batch]
        assert received == [(name, payload) for name, payload in stream]
        assert source.callback_errors == 0
    finally:
        source.stop()
        runner.join(15)
        server.stop()
    assert not runner.is_alive()


def test_runtime_client_mode_journals_a_burst_through_batches(tmp_path: Path, monkeypatch: Any) -> None:
    """``start(serve=False)`` against a bare server: the burst arrives in batches and every
    event is journaled; stop() saves every session with all its events."""
    monkeypatch.setenv("AGGREGATE_SPOOL_DIR", str(tmp_path / "spool"))  # a client-mode writer drains the spool
    server = BareServer().start()
    stream = mpm_stream(4)
    config = Config(activity_directory=tmp_path / "activity", dashboard_host="127.0.0.1", dashboard_port=server.port)
    aggregator = EventAggregator(config=config)
    aggregator.start(serve=False)
    try:
        wait_until(lambda: aggregator.connected)
        server.emit(stream)
        wait_until(lambda: sum(len(v) for v in journal_events(tmp_path / "activity").values()) == len(stream))
        assert aggregator.runtime.events_received == len(stream)
        # a turn-end snapshot put off by a busy batch is written once ingest is quiet (the runtime's tick)
        turned = {p["session_id"] for _, p in stream if p.get("subtype") == "stop"}
        assert turned
        wait_until(lambda: turned <= set(_snapshots(tmp_path / "activity")) and not aggregator._due_snapshots)
    finally:
        aggregator.stop()
        server.stop()
    saved = [jsonio.read_json(p) for p in (tmp_path / "activity").glob("session_*.json")]
    assert sorted(len(s["events"]) for s in saved) == sorted(
        sum(1 for _, p in stream if p["session_id"] == sid) for sid in {p["session_id"] for _, p in stream})


def test_redaction_trigger_skips_task_words_but_still_finds_stripe_keys() -> None:
    redactor = default_redactor()
    assert not redactor.might_contain_secret('{"has_pending_tasks": true, "pending_task_count": 3}')
    for key in ("sk_live_" + "a1B2c3D4e5F6g7H8", "sk_test_" + "Z9y8X7w6V5u4T3s2", "rk_live_" + "0123456789abc"):
        redacted = redactor.redact_payload({"note": f"stripe {key} here", "task_count": 1})
        assert key not in json.dumps(redacted) and "[REDACTED:stripe_key]" in redacted["note"]


def test_timestamp_cache_gives_the_same_answers() -> None:
    for _ in range(2):  # second round: from the cache
        assert parse_timestamp("1700000000") == parse_timestamp(1700000000)
        assert parse_timestamp("2026-03-14T10:05:00+00:00Z") == parse_timestamp("2026-03-14T10:05:00+00:00")
        assert parse_timestamp("2026-03-14T10:05:00Z").tzinfo is not None
        assert parse_timestamp("2026-03-14 10:05:00") == parse_timestamp("2026-03-14T10:05:00+00:00")
        assert parse_timestamp("nonsense") is None and parse_timestamp("  ") is None


def test_may_hold_sees_a_file_another_process_adds_after_our_own_writes(tmp_path: Path) -> None:
    aggregator = new_aggregator(tmp_path)
    try:
        aggregator.handle_events(mpm_stream(2))  # journals and snapshots of ours: names stay current
        store: SessionStore = aggregator.store
        assert not store.may_hold("zq_x9y8w7-0000")
        assert store.may_hold(mpm_stream(2)[0][1]["session_id"])
        (tmp_path / "session_zq_x9y8w_20260101_000000.json").write_text("{}")
        os.utime(tmp_path, ns=(0, 10**18))  # another writer's change: a different mtime, whatever the clock
        assert store.may_hold("zq_x9y8w7-0000")
    finally:
        aggregator.stop()


class _Clock:
    """A settable clock for the aggregator (its idle and wait times are measured on it)."""

    def __init__(self) -> None:
        self.now = parse_timestamp("2026-11-22T10:00:00+00:00")

    def __call__(self) -> Any:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now = self.now + timedelta(seconds=seconds)


def _snapshots(directory: Path) -> dict[str, dict[str, Any]]:
    """Active sessions' snapshot files, by session id."""
    found = {}
    for path in directory.glob("session_*.json"):
        data = jsonio.read_json(path)
        if data["status"] == "active":
            found[data["session_id"]] = data
    return found


def test_a_busy_batch_puts_turn_end_snapshots_off_until_ingest_catches_up(tmp_path: Path) -> None:
    """A batch of BUSY_BATCH+ events means more are queued: its turn-end snapshots wait (every event
    is journaled on return all the same); the next small batch, or the tick once ingest is quiet,
    writes them; none waits longer than SNAPSHOT_MAX_WAIT; stop() leaves nothing behind."""
    from agent_aggregator import aggregator as aggregator_module

    stream = mpm_stream(16)
    busy = aggregator_module.BUSY_BATCH
    assert len(stream) >= 2 * busy + 2
    clock = _Clock()
    aggregator = EventAggregator(config=Config(activity_directory=tmp_path), clock=clock)
    aggregator.start(connect=False)
    try:
        aggregator.handle_events(stream[:busy])
        assert sum(len(v) for v in journal_events(tmp_path).values()) == aggregator.total_events == busy
        assert _snapshots(tmp_path) == {} and aggregator._due_snapshots  # turns ended, nothing written yet

        clock.advance(0.5)
        assert aggregator.write_due_snapshots() == 0  # the tick: ingest was busy half a second ago
        clock.advance(5)
        aggregator.handle_events(stream[busy:2 * busy])  # still busy, but the first ones waited 5 s
        written = _snapshots(tmp_path)
        assert written and aggregator._due_snapshots  # the old ones written, this batch's put off

        aggregator.handle_events(stream[2 * busy:2 * busy + 1])  # a small batch: ingest caught up
        assert not aggregator._due_snapshots
        written = _snapshots(tmp_path)
        turned = {sid for sid, s in aggregator.tracker.sessions.items() if any(
            e.event_type in ("Stop", "AssistantResponse") for e in s.events)}
        assert turned and turned <= set(written)
        for sid in turned:  # each snapshot holds its session as it stood at its last write
            assert len(written[sid]["events"]) <= len(aggregator.tracker.sessions[sid].events)

        aggregator.handle_events(stream[2 * busy + 1:])
        clock.advance(2)
        aggregator.write_due_snapshots()  # the tick after a quiet second writes the rest
        assert not aggregator._due_snapshots
    finally:
        aggregator.stop()
    finals = [jsonio.read_json(p) for p in tmp_path.glob("session_*.json")]
    assert sum(len(f["events"]) for f in finals) == len(stream)
    assert all(f["status"] == "completed" for f in finals) and not list(tmp_path.glob("*.journal.jsonl"))
