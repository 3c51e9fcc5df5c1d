"""Following an aggregator that already writes the directory (what ``aggregate tui`` does
next to a running ``aggregate start``): ``EventAggregator.start(write=False)``.

Real servers on loopback ports: a writer serving the built-in hub, a follower
listening to it. The follower gets the writer's open sessions from the store
(history), then the live events (the hub's history replay deduplicated by event
id); it never takes, writes or finalizes anything in the directory, and it never
drains the hook spool (that would take events away from the writer).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import stamped_raw

import fixtures_builder as fb
from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.config import Config
from agent_aggregator.errors import StoreLockedError
from agent_aggregator.sources import spool
from agent_aggregator.sources.hub import Hub

SID = fb.RAW_SESSION_ID


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)
    return value


def post(port: int, path: str, body: dict) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202


def events_of(aggregator: EventAggregator, session_id: str) -> int:
    with aggregator.lock:
        session = aggregator.tracker.sessions.get(session_id)
        return len(session.events) if session is not None else 0


def make_config(port: int) -> Config:
    return Config(activity_directory=Path("activity").absolute(), dashboard_host="127.0.0.1", dashboard_port=port)


def test_a_follower_gets_history_and_live_events_and_writes_nothing():
    port = free_port()
    stream = stamped_raw(fb.raw_hook_session(), SID)
    body = [payload for _, payload in stream[:-1]]  # everything but SessionEnd: the session stays open
    first, second = body[:15], body[15:]
    writer = EventAggregator(config=make_config(port))
    writer.start(serve=True)
    follower = EventAggregator(config=make_config(port))
    try:
        for payload in first:
            post(port, "/events", payload)
        wait_until(lambda: events_of(writer, SID) == len(first))

        with pytest.raises(StoreLockedError):
            EventAggregator(config=make_config(port)).start(connect=False)
        writes: list[str] = []
        for name in ("acquire", "append_events", "save_snapshot", "finalize", "cleanup"):
            setattr(follower.store, name, lambda *args, _name=name, **kwargs: writes.append(_name))

        follower.start(write=False)
        assert not follower.writes and not follower.store.is_writer
        assert events_of(follower, SID) == len(first), "history: the open session was loaded from the store"
        wait_until(lambda: follower.tracker.duplicates >= len(first))  # the hub's history replay, deduplicated
        assert events_of(follower, SID) == len(first)

        for payload in second:
            post(port, "/events", payload)
        wait_until(lambda: events_of(follower, SID) == len(body))
        assert events_of(writer, SID) == len(body)
        assert follower.get_status()["writer"] is False
        assert "connected to" in follower.get_status()["connection_state"]

        follower.stop()
        listed = {s.session_id: s for s in writer.store.list_sessions()}
        assert listed[SID].status == "active", "the follower finalized nothing"
        assert writer.store.is_writer
        assert writes == [] and follower.save_errors == 0, "the follower never tried to write"
    finally:
        follower.stop()
        writer.stop()
    saved = writer.store.load(SID)
    assert saved.status == "completed" and len(saved.events) == len(body), "the writer saved everything on stop"


class HubThread:
    """The built-in hub on its own event loop in a thread (with its own spool directory)."""

    def __init__(self, spool_directory: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.hub = Hub("127.0.0.1", 0, spool_directory=spool_directory)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Hub:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.hub.start(), self.loop).result(10)
        return self.hub

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.hub.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_only_the_writer_drains_the_hook_spool(workdir):
    spooled = stamped_raw(fb.raw_hook_session(), SID)[0][1]
    spool.append("/events", spooled)  # AGGREGATE_SPOOL_DIR: the test's private spool
    spool_dir = Path(os.environ["AGGREGATE_SPOOL_DIR"])

    def pending() -> list[str]:
        return sorted(p.name for p in spool_dir.iterdir() if p.name.startswith("hooks"))

    assert pending()
    with HubThread(workdir / "hub-spool") as hub:
        writer = EventAggregator(config=make_config(hub.port))
        writer.store.acquire()  # another process's writer, as far as the follower can tell
        follower = EventAggregator(config=make_config(hub.port))
        try:
            follower.start(write=False)
            runtime = follower.runtime
            wait_until(lambda: runtime.mode == "client" and runtime.source is not None and runtime.source.connected)
            time.sleep(2.5)  # past the first drain (due at once) and the next one (2 s later)
            assert pending(), "the follower left the spool alone"
            assert events_of(follower, SID) == 0
        finally:
            follower.stop()
            writer.store.release()
        writer = EventAggregator(config=make_config(hub.port))
        try:
            writer.start(serve=False)
            wait_until(lambda: events_of(writer, SID) == 1)
            assert not pending(), "the writer drained it"
        finally:
            writer.stop()
