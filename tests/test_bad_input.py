"""Bad input (issue 8): the hostile corpus (tests/fixtures/hostile/) through every entry.

normalize() directly, HTTP POST to a real hub, Socket.IO emit to it, raw
Socket.IO packets, and `aggregate ingest` on a file. At every entry nothing
crashes, every payload is counted once (accepted, rejected, ignored, or refused
as not JSON), and every accepted event is saved: counts in == counts saved.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "fixtures" / "hostile"))
import corpus  # noqa: E402
from test_socketio_client import free_port, wait_until  # noqa: E402

from agent_aggregator.aggregator import EventAggregator  # noqa: E402
from agent_aggregator.config import Config  # noqa: E402
from agent_aggregator.errors import RejectedEvent  # noqa: E402
from agent_aggregator.model import SessionEvent  # noqa: E402
from agent_aggregator.normalize import MAX_DEPTH, MAX_KEY_CHARS, MAX_STRING_CHARS, normalize  # noqa: E402

WAIT = 60.0
ALL = corpus.cases() + corpus.big_cases()


def outcome(payload: Any, event_name: str | None = None) -> str:
    """accepted | rejected | ignored; anything else normalize raises fails the test."""
    try:
        normalize(payload, event_name)
    except RejectedEvent as rejection:
        return "ignored" if rejection.ignorable else "rejected"
    return "accepted"


def saved_events(directory: Path) -> list[dict]:
    events: list[dict] = []
    for path in sorted(directory.glob("session_*.json")):
        events.extend(json.loads(path.read_bytes())["events"])
    return events


def serving(directory: Path) -> EventAggregator:
    """An aggregator that serves the built-in hub on a free loopback port (the `aggregate start` setup)."""
    aggregator = EventAggregator(config=Config(activity_directory=directory, dashboard_host="127.0.0.1",
                                               dashboard_port=free_port()))
    aggregator.start(serve=True)
    return aggregator


def counted(aggregator: EventAggregator) -> int:
    status = aggregator.get_status()
    return status["total_events"] + status["duplicate_events"] + status["rejected_events"] + status["ignored_messages"]


# --- normalize() --------------------------------------------------------------------------


def test_the_corpus_file_matches_the_generator():
    """tests/fixtures/hostile/cases.jsonl is what corpus.py writes (regenerate: python tests/fixtures/hostile/corpus.py)."""
    lines = (HERE / "fixtures" / "hostile" / "cases.jsonl").read_text().splitlines()
    labels = [json.loads(line)["label"] for line in lines]
    assert labels == [case.label for case in corpus.cases() if case.body() is not None or case.form != "value"]
    assert len(labels) > 150


@pytest.mark.parametrize("case", ALL, ids=[case.label for case in ALL])
def test_normalize_raises_nothing_but_rejected_event_and_accepted_events_can_be_stored(case):
    """Guarantee: normalize() gives an event or RejectedEvent for anything (value, JSON text, raw
    bytes), the pinned outcome where the corpus pins one, and every event it gives can be
    written by the store and read back equal."""
    primary = case.payload if case.form == "value" else case.body()
    forms = [primary]
    body = case.body()
    if case.form == "value" and body is not None and len(body) < 2 * corpus.TEN_MB:
        forms.append(body)  # the same value as JSON bytes (how HTTP and files deliver it)
    for payload in forms:
        try:
            event = normalize(payload)
        except RejectedEvent as rejection:
            assert rejection.kind
            if payload is primary and case.expect is not None:
                assert case.expect == ("ignored" if rejection.ignorable else "rejected"), case.label
            continue
        if payload is primary and case.expect is not None:
            assert case.expect == "accepted", case.label
            if case.session is not None:
                assert event.session_id == case.session
        stored = orjson.dumps(event.to_dict())  # raises on what a session file cannot hold
        assert SessionEvent.from_dict(orjson.loads(stored)).to_dict() == event.to_dict()
        assert len(stored) < 2 * 1024 * 1024, "oversized fields must be capped"


def test_oversized_fields_are_capped_with_a_marker_that_keeps_the_original_size():
    """Guarantee: nothing is dropped silently: a 10 MB string keeps its first 64 Ki characters and
    says how many it had, a 1 MB key likewise, and nesting past the limit says what was dropped."""
    [string_10mb, key_1mb, deep] = [case for case in corpus.big_cases() if case.form == "value"]
    prompt = normalize(string_10mb.payload).data["prompt"]
    dropped = corpus.TEN_MB - MAX_STRING_CHARS
    assert prompt == "p" * MAX_STRING_CHARS + f"…[truncated {dropped} chars of {corpus.TEN_MB}]"

    keys = [key for key in normalize(key_1mb.payload).data if key.startswith("kkk")]
    assert keys == ["k" * MAX_KEY_CHARS + f"…[key truncated {1024 * 1024 - MAX_KEY_CHARS} chars of {1024 * 1024}]"]

    level: Any = normalize(deep.payload).data["tool_input"]
    depth = 1
    while isinstance(level, dict):
        level, depth = level["n"], depth + 1
    assert level == "[nested too deep: a dict of 1 items dropped]" and depth <= MAX_DEPTH + 2


def test_values_json_files_cannot_hold_are_kept_as_visible_text():
    """Guarantee: integers beyond 64 bits, NaN, infinities and lone surrogates (which python-socketio's
    json can deliver) never make a session unsaveable: they are stored as text."""
    event = normalize({"session_id": "s", "hook_event_name": "Notification", "big": 2**70, "nan": float("nan"),
                       "inf": float("-inf"), "text": "a\ud800b", "\udcff": 1})
    assert event.data["big"] == str(2**70) and event.data["nan"] == "nan" and event.data["inf"] == "-inf"
    assert event.data["text"] == "a\ufffdb" and event.data["\ufffd"] == 1
    orjson.dumps(event.to_dict())


# --- every entry ------------------------------------------------------------------------------


def test_http_posts_of_the_whole_corpus_are_each_counted_and_accepted_ones_saved(tmp_path):
    """Guarantee: POST /events with any body: JSON objects get 202 and reach the aggregator, anything
    else gets 400 and is counted by the hub; the hub never stops answering; the aggregator counts
    every object once, and saves exactly the events it accepted."""
    bodies = [body for case in ALL if (body := case.body()) is not None]
    objects = [orjson.loads(body) for body in bodies if _object(body)]
    want = [outcome(payload, "claude_event") for payload in objects]
    aggregator = serving(tmp_path / "activity")
    hub = aggregator.runtime.hub

    async def post_all() -> list[int]:
        statuses = []
        async with aiohttp.ClientSession() as http:
            for body in bodies:
                async with http.post(f"{hub.url}/events", data=body) as response:
                    statuses.append(response.status)
            async with http.get(f"{hub.url}/health") as response:
                assert response.status == 200
        return statuses

    try:
        statuses = asyncio.run(post_all())
        assert statuses.count(202) == len(objects) and statuses.count(400) == len(bodies) - len(objects)
        assert hub.stats["bad_requests"] == len(bodies) - len(objects)
        wait_until(lambda: counted(aggregator) == len(objects), timeout=WAIT)
        status = aggregator.get_status()
        assert status["total_events"] + status["duplicate_events"] == want.count("accepted")
        assert status["rejected_events"] == want.count("rejected") and status["ignored_messages"] == want.count("ignored")
    finally:
        aggregator.stop()
    assert len(saved_events(tmp_path / "activity")) == status["total_events"] > 0


def test_socketio_emits_of_the_whole_corpus_are_each_counted_and_accepted_ones_saved(tmp_path):
    """Guarantee: the same through Socket.IO (python-socketio's json, which also carries NaN, lone
    surrogates and integers beyond 64 bits): every emitted value is counted once and every
    accepted event is saved."""
    import socketio

    values = []
    for case in ALL:
        body = case.body()
        if body is None or len(body) > 16 * 1024 * 1024:
            continue
        try:
            values.append(json.loads(body.decode("utf-8", "surrogatepass")))
        except (ValueError, RecursionError):
            continue
    want = [outcome(value, "claude_event") for value in values]
    aggregator = serving(tmp_path / "activity")
    hub = aggregator.runtime.hub

    async def emit_all() -> None:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(hub.url, transports=["websocket"])
        for value in values:
            await client.emit("claude_event", value)
        for _ in range(int(WAIT * 50)):
            if hub.stats["events_relayed"] >= len(values):
                break
            await asyncio.sleep(0.02)
        await client.disconnect()

    try:
        asyncio.run(emit_all())
        wait_until(lambda: counted(aggregator) == len(values), timeout=WAIT)
        status = aggregator.get_status()
        assert status["total_events"] + status["duplicate_events"] == want.count("accepted")
        assert status["rejected_events"] == want.count("rejected")
    finally:
        aggregator.stop()
    assert len(saved_events(tmp_path / "activity")) == status["total_events"] > 0


def test_raw_socketio_packets_that_are_not_json_or_nested_10k_deep_leave_the_hub_running(tmp_path):
    """Guarantee: a client sending broken Socket.IO packets (invalid JSON, nesting 10,000 deep,
    invalid UTF-8 in a binary frame) at most loses its own connection: the hub keeps relaying
    and the aggregator keeps saving."""
    aggregator = serving(tmp_path / "activity")
    hub = aggregator.runtime.hub
    url = f"{hub.url}/socket.io/?EIO=4&transport=websocket"
    deep = "[" * corpus.DEEP + "]" * corpus.DEEP
    packets: list[str | bytes] = [
        '42["claude_event",{"session_id":',
        f'42["claude_event",{deep}]',
        '42["claude_event",' + '{"a":' * corpus.DEEP + "1" + "}" * corpus.DEEP + "]",
        "4" + "2" * 1000,
        b"\xff\xfe\x00garbage",
        "42" + json.dumps(["claude_event", {"session_id": "after-garbage", "hook_event_name": "Stop", "n": 1}]),
    ]

    async def send_garbage() -> None:
        async with aiohttp.ClientSession() as http:
            for packet in packets:
                try:
                    async with http.ws_connect(url) as ws:
                        await ws.receive(timeout=WAIT)  # Engine.IO open
                        await ws.send_str("40")  # Socket.IO connect
                        await ws.receive(timeout=WAIT)
                        if isinstance(packet, bytes):
                            await ws.send_bytes(packet)
                        else:
                            await ws.send_str(packet)
                        await asyncio.sleep(0.2)
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass  # the hub may drop a connection that sent garbage; that is all it may do
            async with http.post(f"{hub.url}/events", json={"session_id": "after-garbage",
                                                            "hook_event_name": "Notification", "n": 2}) as response:
                assert response.status == 202

    try:
        asyncio.run(send_garbage())
        wait_until(lambda: aggregator.get_status()["total_events"] >= 1, timeout=WAIT)
    finally:
        aggregator.stop()
    assert hub.stats["events_relayed"] >= 1
    saved = [event["data"].get("n") for event in saved_events(tmp_path / "activity")]
    assert 2 in saved  # the hub still relays after the garbage


def test_aggregate_ingest_of_the_whole_corpus_counts_lines_and_saves_every_accepted_event(tmp_path):
    """Guarantee: `aggregate ingest` on a file of hostile lines (invalid UTF-8, not JSON, 10 MB,
    nesting 10,000 deep ...) exits 0 without a traceback, reports what it rejected and could not
    read, and the events it says it ingested are exactly the events saved."""
    lines = [b'{"session_id": "ingest-first", "hook_event_name": "Notification", "message": "first"}']
    lines += [body.replace(b"\n", b" ") for case in ALL if (body := case.body()) is not None]
    source = tmp_path / "hostile.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    activity = tmp_path / "activity"
    result = subprocess.run([sys.executable, "-m", "agent_aggregator", "--save-dir", str(activity), "ingest",
                             str(source), "--json"], cwd=tmp_path, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert b"Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["rejected"] and report["unreadable_lines"]
    assert len(saved_events(activity)) == report["events"] > 0
    listing = subprocess.run([sys.executable, "-m", "agent_aggregator", "--save-dir", str(activity), "sessions",
                              "--json"], cwd=tmp_path, capture_output=True, timeout=120)
    assert listing.returncode == 0 and b"Traceback" not in listing.stderr
    assert sum(row["event_count"] for row in json.loads(listing.stdout)) == report["events"]


def _object(body: bytes) -> bool:
    try:
        return isinstance(orjson.loads(body), dict)
    except orjson.JSONDecodeError:
        return False
