"""Flow control (sources/feed.py and the hub around it): real threads, a real hub on 127.0.0.1,
real python-socketio clients. Consumers are held back with a gate (a threading.Event) so
"it waits" is checked by state, never by time. The bursts through a real `aggregate start`
are in tests/test_faults.py."""

from __future__ import annotations

import asyncio
import sys
import threading
from functools import partial
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
import socketio

from agent_aggregator.errors import AggregatorError
from agent_aggregator.sources.feed import Feed
from agent_aggregator.sources.hub import HEARTBEAT_ENV, PING_INTERVAL, PING_TIMEOUT, Hub, heartbeat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_hub import eventually as hub_eventually  # noqa: E402

WAIT = 10.0  # seconds before a wait gives up: a failure guard, not a measurement


class Gated:
    """A consumer that records batches and, while its gate is shut, blocks inside the first one."""

    def __init__(self, *, open_: bool = False) -> None:
        self.gate = threading.Event()
        if open_:
            self.gate.set()
        self.entered = threading.Event()
        self.events: list[tuple[str, Any]] = []
        self.batches = 0
        self.threads: set[str] = set()

    def __call__(self, batch: list[tuple[str, Any]]) -> None:
        self.entered.set()
        assert self.gate.wait(WAIT), "the test never opened the gate"
        self.threads.add(threading.current_thread().name)
        self.batches += 1
        self.events.extend(batch)


eventually = partial(hub_eventually, timeout=WAIT)


async def settle(turns: int = 20) -> None:
    """Let every ready callback run (and the sockets move) before a state is checked."""
    for _ in range(turns):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)


async def still_pending(task: asyncio.Future[Any]) -> bool:
    """Give ``task`` every chance to finish without anything changing; True if it has not."""
    await settle()
    return not task.done()


# --- the feed -----------------------------------------------------------------------------------


def test_events_reach_the_consumer_in_order_in_batches_on_its_own_thread() -> None:
    consumer = Gated(open_=True)

    async def body() -> Feed:
        feed = Feed(consumer, capacity=64, batch=16, name="feed-under-test")
        feed.start()
        tickets = [feed.put("claude_event", {"n": n}) for n in range(500)]
        await feed.handled(tickets[-1])
        assert tickets == list(range(1, 501))
        await asyncio.to_thread(feed.close)
        return feed

    feed = asyncio.run(body())
    assert [payload["n"] for _, payload in consumer.events] == list(range(500))
    assert consumer.threads == {"feed-under-test"}
    assert feed.stats["handled"] == 500 and feed.pending == 0
    assert 500 / 16 <= consumer.batches == feed.stats["batches"] <= 500
    assert feed.stats["high_water"] >= 16  # puts outran the consumer: batches were taken


def test_room_waits_while_capacity_is_pending_and_returns_once_the_consumer_catches_up() -> None:
    consumer = Gated()

    async def body() -> Feed:
        feed = Feed(consumer, capacity=4, batch=2)
        feed.start()
        await feed.room()  # empty: at once
        for n in range(4):
            feed.put("e", n)
        assert consumer.entered.wait(WAIT)
        waiting = asyncio.ensure_future(feed.room())
        assert await still_pending(waiting), "room() returned with 4 of 4 pending"
        assert feed.pending == 4 and feed.stats["room_waits"] == 1
        consumer.gate.set()
        await asyncio.wait_for(waiting, WAIT)
        await asyncio.to_thread(feed.close)
        return feed

    feed = asyncio.run(body())
    assert [payload for _, payload in consumer.events] == [0, 1, 2, 3]
    assert feed.stats["high_water"] == 4


def test_handled_returns_only_once_that_event_is_consumed() -> None:
    consumer = Gated()

    async def body() -> None:
        feed = Feed(consumer)
        feed.start()
        ticket = feed.put("e", "first")
        assert consumer.entered.wait(WAIT)
        waiting = asyncio.ensure_future(feed.handled(ticket))
        assert await still_pending(waiting), "handled() returned before the consumer had the event"
        assert consumer.events == []
        consumer.gate.set()
        await asyncio.wait_for(waiting, WAIT)
        assert consumer.events == [("e", "first")]
        await feed.handled(ticket)  # already handled: at once
        await asyncio.to_thread(feed.close)

    asyncio.run(body())


def test_close_consumes_everything_pending_and_later_puts_are_consumed_inline() -> None:
    consumer = Gated()

    async def body() -> Feed:
        feed = Feed(consumer, capacity=8, batch=3)
        feed.start()
        for n in range(50):  # past capacity: put() never blocks and never drops
            feed.put("e", n)
        assert consumer.entered.wait(WAIT)
        closing = asyncio.ensure_future(asyncio.to_thread(feed.close, WAIT))
        consumer.gate.set()
        assert await asyncio.wait_for(closing, WAIT) is True
        assert not feed.running and feed.pending == 0
        ticket = feed.put("e", "after close")  # consumed right here, on this thread
        await feed.handled(ticket)
        await feed.room()
        return feed

    feed = asyncio.run(body())
    assert [payload for _, payload in consumer.events] == [*range(50), "after close"]
    assert threading.current_thread().name in consumer.threads
    assert feed.stats["high_water"] == 50


def test_a_failing_consumer_is_counted_and_the_feed_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []

    def consume(batch: list[tuple[str, Any]]) -> None:
        for _, payload in batch:
            if payload == "bad":
                raise ValueError("a bug in the consumer")
            seen.append(payload)

    async def body() -> Feed:
        feed = Feed(consume, batch=1)
        feed.start()
        for payload in ("a", "bad", "b"):
            ticket = feed.put("e", payload)
        await asyncio.wait_for(feed.handled(ticket), WAIT)
        await asyncio.to_thread(feed.close)
        return feed

    feed = asyncio.run(body())
    assert seen == ["a", "b"] and feed.stats["consumer_errors"] == 1
    assert "the consumer failed on a batch of 1 events" in caplog.text


def test_a_feed_refuses_a_capacity_below_one() -> None:
    with pytest.raises(ValueError):
        Feed(lambda batch: None, capacity=0)


# --- the hub with a feed --------------------------------------------------------------------------


def run_fed_hub(test: Callable[[Hub, Feed], Awaitable[None]], tmp_path: Path, consumer: Any,
                capacity: int = 1024) -> Feed:
    async def body() -> Feed:
        feed = Feed(consumer, capacity=capacity)
        feed.start()
        hub = Hub("127.0.0.1", 0, spool_directory=tmp_path / "spool", feed=feed)
        await hub.start()
        try:
            await test(hub, feed)
        finally:
            consumer.gate.set()
            await hub.stop()
            await asyncio.to_thread(feed.close)
        return feed

    return asyncio.run(body())


def test_post_answers_202_only_once_the_feed_has_handled_the_event(tmp_path: Path) -> None:
    """``POST /events`` keeps its promise with the aggregator off the loop: 202 means handled
    (journaled, for the aggregator's consumer)."""
    consumer = Gated()

    async def test(hub: Hub, feed: Feed) -> None:
        async with aiohttp.ClientSession() as http:
            async def post() -> tuple[int, dict[str, Any]]:
                async with http.post(f"{hub.url}/events", json={"hook_event_name": "Stop", "n": 1}) as answer:
                    return answer.status, await answer.json()

            feed.put("claude_event", {"n": 0})  # the consumer is busy with an earlier event (a burst)
            assert consumer.entered.wait(WAIT)
            answer = asyncio.ensure_future(post())
            await eventually(lambda: feed.pending == 2, "the posted event queued behind it")
            assert await still_pending(answer), "202 before the consumer handled the event"
            consumer.gate.set()
            status, body = await asyncio.wait_for(answer, WAIT)
        assert status == 202 and body["ok"] is True
        assert [payload.get("event_id") for _, payload in consumer.events] == [None, body["event_id"]]

    feed = run_fed_hub(test, tmp_path, consumer)
    assert feed.stats["inline"] == 0


def test_a_post_to_an_idle_feed_is_handled_at_once_on_the_loop_in_order(tmp_path: Path) -> None:
    """With nothing pending, a POST's event is handled right in the request (no thread hand-off,
    a hook's one POST as fast as before); queued behind a burst, it waits its turn."""
    consumer = Gated(open_=True)

    async def test(hub: Hub, feed: Feed) -> None:
        async with aiohttp.ClientSession() as http:
            for n in range(3):
                async with http.post(f"{hub.url}/events", json={"n": n}) as answer:
                    assert answer.status == 202
                    assert [payload["n"] for _, payload in consumer.events] == list(range(n + 1))

    feed = run_fed_hub(test, tmp_path, consumer)
    assert feed.stats["inline"] == 3 and feed.stats["handled"] == 3
    assert consumer.threads == {threading.current_thread().name}  # asyncio.run's thread: the loop's


def test_a_clients_burst_waits_for_room_then_arrives_whole_and_in_order(tmp_path: Path) -> None:
    """A client emitting faster than the consumer handles: the hub stops taking its events at the
    feed's capacity (it stops reading that socket), nothing is dropped, the client stays connected;
    other clients still get what was taken, live."""
    consumer = Gated()
    capacity, count = 8, 200

    async def test(hub: Hub, feed: Feed) -> None:
        sender = socketio.AsyncClient(reconnection=False)
        watcher = socketio.AsyncClient(reconnection=False)
        watched: list[int] = []
        watcher.on("claude_event", lambda data: watched.append(data["n"]))
        await watcher.connect(hub.url, transports=["websocket"])
        await sender.connect(hub.url, transports=["websocket"])
        for n in range(count):
            await sender.emit("claude_event", {"n": n})
        await eventually(lambda: feed.pending >= capacity, "the feed to fill")
        await eventually(lambda: len(watched) >= capacity, "the watcher to get what was taken")
        for _ in range(5):  # the hub has stopped taking events: state stays put, gate shut
            await settle()
            assert feed.pending == capacity and hub.stats["events_relayed"] == capacity
        assert feed.stats["room_waits"] >= 1 and sender.connected
        consumer.gate.set()
        await eventually(lambda: len(consumer.events) == count, "every event consumed")
        await eventually(lambda: len(watched) == count, "the watcher to get every event")
        assert sender.connected and watcher.connected
        await sender.disconnect()
        await watcher.disconnect()
        assert watched == list(range(count))

    run_fed_hub(test, tmp_path, consumer, capacity=capacity)
    assert [payload["n"] for _, payload in consumer.events] == list(range(count))


def test_a_ping_outstanding_during_a_burst_is_answered_by_the_clients_events(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With a 0.5 s heartbeat, a client whose events are held back by a full feed for 2.5 s (more
    than twice the 1 s ping timeout) stays connected: every event that arrives counts as its PONG, and the hub's NOOPs
    keep the client's own timer from firing."""
    monkeypatch.setenv(HEARTBEAT_ENV, "0.5,1")
    consumer = Gated()

    async def test(hub: Hub, feed: Feed) -> None:
        assert (hub.sio.eio.ping_interval, hub.sio.eio.ping_timeout) == (0.5, 1.0)
        sender = socketio.AsyncClient(reconnection=False)
        dropped: list[Any] = []
        sender.on("disconnect", lambda *reason: dropped.append(reason))
        await sender.connect(hub.url, transports=["websocket"])
        # a steady trickle while the consumer is held back: the hub waits for room with a ping outstanding
        for n in range(30):
            assert dropped == [], f"the hub dropped the client after {n} events: {dropped}"
            await sender.emit("claude_event", {"n": n})
            await asyncio.sleep(0.1)
            if n == 25:
                consumer.gate.set()
        await eventually(lambda: len(consumer.events) == 30 or dropped, "every event consumed")
        await eventually(lambda: hub.stats["keepalives_sent"] > 0 or dropped, "a keepalive")
        assert dropped == [] and sender.connected
        await sender.disconnect()

    run_fed_hub(test, tmp_path, consumer, capacity=2)
    assert [payload["n"] for _, payload in consumer.events] == list(range(30))


# --- the heartbeat setting --------------------------------------------------------------------------


def test_heartbeat_defaults_and_reads_the_environment() -> None:
    assert heartbeat({}) == (PING_INTERVAL, PING_TIMEOUT) == (25.0, 60.0)
    assert heartbeat({HEARTBEAT_ENV: " 1 , 2.5 "}) == (1.0, 2.5)
    for bad in ("abc", "1", "1,2,3", "0,5", "5,-1", "1,99999"):
        with pytest.raises(AggregatorError, match=HEARTBEAT_ENV):
            heartbeat({HEARTBEAT_ENV: bad})
