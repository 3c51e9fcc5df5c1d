"""SSESource against a real aiohttp SSE server on 127.0.0.1 (an ephemeral port).

The server plays tests/fixtures/sse_mnemosyne.txt (mnemosyne's frame layout:
``data: <json>`` then ``id: <uuid>``, keep-alive comments), drops the connection
mid-stream, and on reconnect resumes after the ``Last-Event-ID`` it is sent,
re-sending the last frame it had already delivered (a replay), so resuming and
de-duplication are both exercised. No timed assertions: waits are bounded
loops on a condition.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web

from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.config import Config
from agent_aggregator.model import COMPLETED
from agent_aggregator.sources.socketio_client import CONNECTED, RETRYING
from agent_aggregator.sources.sse import SSESource

FIXTURE = Path(__file__).parent / "fixtures" / "sse_mnemosyne.txt"
WAIT = 30.0


def frames() -> list[tuple[str | None, str]]:
    """(id, raw block) for each frame of the fixture, comments kept as blocks without an id."""
    blocks = [block for block in FIXTURE.read_text().split("\n\n") if block.strip()]
    result = []
    for block in blocks:
        ident = next((line[4:] for line in block.splitlines() if line.startswith("id: ")), None)
        result.append((ident, block + "\n\n"))
    return result


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (bounded, so a broken build fails instead of hanging)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


class StreamServer:
    """Serves the fixture; the first connection breaks after ``break_after`` frames."""

    def __init__(self, break_after: int | None = 6, *, content_type: str = "text/event-stream",
                 extra: list[str] | None = None) -> None:
        self.frames = frames()
        self.break_after = break_after
        self.content_type = content_type
        self.extra = extra or []
        self.last_event_ids: list[str | None] = []
        self.connections = 0
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.finished = asyncio.Event()

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/events", self.events)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{self.port}/events"

    async def stop(self) -> None:
        self.finished.set()
        if self.runner is not None:
            await self.runner.cleanup()

    async def events(self, request: web.Request) -> web.StreamResponse:
        self.connections += 1
        last = request.headers.get("Last-Event-ID")
        self.last_event_ids.append(last)
        response = web.StreamResponse(headers={"Content-Type": self.content_type, "Cache-Control": "no-cache"})
        await response.prepare(request)
        start = 0
        if last is not None:
            ids = [ident for ident, _ in self.frames]
            start = max(0, ids.index(last))  # resume AT the last one seen: one replayed frame to drop
        first = self.connections == 1
        for raw in self.extra if first else []:
            await response.write(raw.encode())
        for index, (_ident, raw) in enumerate(self.frames[start:], start=start):
            if first and self.break_after is not None and index >= self.break_after:
                request.transport.close()  # type: ignore[union-attr]  # drop mid-stream, no goodbye
                return response
            await response.write(raw.encode())
        await self.finished.wait()  # stay open, like a live stream
        return response


def run_async(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def data_ids() -> list[str]:
    return [ident for ident, raw in frames() if ident is not None and "data:" in raw]


def test_resumes_with_last_event_id_and_counts_each_event_once() -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []

    async def scenario() -> None:
        server = StreamServer(break_after=6)
        url = await server.start()
        source = SSESource(url, lambda name, payload: received.append((name, payload)), backoff_initial=0.05)
        task = asyncio.create_task(source.run())
        try:
            await until(lambda: len(received) >= len(data_ids()), "every event of the fixture")
            await until(lambda: source.state == CONNECTED and source.connections == 2, "the second connection")
        finally:
            source.stop()
            await asyncio.wait_for(task, WAIT)
            await server.stop()
        expected = data_ids()
        assert [payload["id"] for _, payload in received] == expected  # in order, none twice
        first_break = frames()[5][0]
        assert server.last_event_ids == [None, first_break]  # resumed after the last frame received
        assert source.duplicates == 1  # the frame the server replayed
        assert source.attempt == 0 and source.last_event_id == expected[-1]
        assert all(name is None for name, _ in received)  # mnemosyne sends no `event:` field

    run_async(scenario)


def test_events_reach_sessions_through_the_aggregator(tmp_path: Path) -> None:
    aggregator = EventAggregator(config=Config(activity_directory=tmp_path / "activity"))
    aggregator.start(connect=False)

    async def scenario() -> None:
        server = StreamServer(break_after=9)
        url = await server.start()
        source = SSESource(url, lambda name, payload: aggregator.handle_event(payload, name), backoff_initial=0.05)
        task = asyncio.create_task(source.run())
        try:
            await until(lambda: "11f3218d" in aggregator.get_completed_sessions(), "the session to end")
        finally:
            source.stop()
            await asyncio.wait_for(task, WAIT)
            await server.stop()

    try:
        run_async(scenario)
        session = aggregator.get_session("11f3218d")
        assert session is not None and session.status == COMPLETED
        kinds = [event.event_type for event in session.events]
        assert kinds[0] == "SessionStart" and kinds[-1] == "SessionEnd"
        assert len(set(e.event_id for e in session.events)) == len(session.events)
        # command started / completed / failed -> paired tool calls with durations
        posts = {e.data["tool_name"]: e for e in session.events if e.event_type.startswith("PostToolUse")}
        assert posts["remember"].event_type == "PostToolUse" and posts["remember"].data["duration_ms"] == 42
        assert posts["config"].event_type == "PostToolUseFailure" and posts["config"].data["duration_ms"] == 7
        assert session.metrics.tools_used == ["remember", "config"]
        # importance kept (its own, else the seed's rating) and filterable
        by_type = {e.event_type: e for e in session.events}
        assert by_type["memory_stored"].data["importance"] == 8
        assert by_type["memory_stored"].category == "memory"
        assert by_type["SessionStart"].data["importance"] == 8 and by_type["SessionStart"].data["importance_derived"]
        important = [e.event_type for e in session.events if e.data.get("importance", 0) >= 7]
        assert important == ["SessionStart", "phase_changed", "memory_stored", "SessionEnd"]
        # the agent's run is a delegation
        assert [(d.agent_type, d.status, d.response_preview) for d in session.delegations] == [
            ("executor", "completed", "auth middleware merged")
        ]
        # redacted values stay redacted
        text = json.dumps(session.to_dict())
        assert "REDACTED" in text
        config_call = next(e for e in session.events if e.event_type == "PreToolUse" and e.data["tool_name"] == "config")
        assert "REDACTED" in str(config_call.data["tool_input"]["args"][-1])  # the sender's mask, never a value
        # an event before any session_started belongs to the stream's own session
        stream = aggregator.get_session("sse-127.0.0.1-")  # sse-<host>-<port>: a unique prefix
        assert stream is not None and [e.event_type for e in stream.events] == ["context_modified"]
        assert aggregator.get_status()["duplicate_events"] == 0
    finally:
        aggregator.stop()


def test_refused_then_up_backs_off_and_connects() -> None:
    async def scenario() -> None:
        server = StreamServer(break_after=None)
        url = await server.start()
        port = server.port
        await server.stop()  # nothing listens on the port now
        received: list[Any] = []
        source = SSESource(url, lambda name, payload: received.append(payload), backoff_initial=0.05, backoff_max=0.2)
        task = asyncio.create_task(source.run())
        try:
            await until(lambda: source.state == RETRYING and source.attempt >= 2, "two failed attempts")
            assert source.last_error == "connection refused"
            assert source.next_retry_in is not None and source.next_retry_in <= 0.2
            assert "retrying" in source.describe()
            revived = StreamServer(break_after=None)
            revived_app = web.Application()
            revived_app.router.add_get("/events", revived.events)
            runner = web.AppRunner(revived_app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            try:
                await until(lambda: len(received) == len(data_ids()), "the stream after the server came up")
                assert source.state == CONNECTED and source.attempt == 0
            finally:
                revived.finished.set()
                source.stop()
                await asyncio.wait_for(task, WAIT)
                await runner.cleanup()
        finally:
            if not task.done():
                source.stop()
                await asyncio.wait_for(task, WAIT)

    run_async(scenario)


def test_malformed_frames_are_counted_not_fatal() -> None:
    extra = ["data: not json at all\nid: bad-1\n\n", "data: [1, 2]\nid: bad-2\n\n", ": keep-alive\n\n",
             "event: message\ndata: \n\n"]

    async def scenario() -> None:
        server = StreamServer(break_after=None, extra=extra)
        url = await server.start()
        received: list[Any] = []
        source = SSESource(url, lambda name, payload: received.append(payload), backoff_initial=0.05)
        task = asyncio.create_task(source.run())
        try:
            await until(lambda: len(received) == len(data_ids()), "the good events")
        finally:
            source.stop()
            await asyncio.wait_for(task, WAIT)
            await server.stop()
        assert source.malformed == 2 and source.connections == 1

    run_async(scenario)


def test_a_server_that_is_not_an_event_stream_is_reported() -> None:
    async def scenario() -> None:
        server = StreamServer(break_after=None, content_type="application/json")
        url = await server.start()
        source = SSESource(url, lambda name, payload: None, backoff_initial=0.05)
        task = asyncio.create_task(source.run())
        try:
            await until(lambda: source.attempt >= 1, "the first failure")
            assert source.last_error is not None and "not an event stream" in source.last_error
            assert source.events_received == 0
        finally:
            source.stop()
            await asyncio.wait_for(task, WAIT)
            await server.stop()

    run_async(scenario)


@pytest.mark.parametrize("name", ["SessionStarted", "session_started"])
def test_docs_style_event_names_are_understood(name: str) -> None:
    from agent_aggregator.normalize import normalize
    from agent_aggregator.normalize_sse import StreamContext

    context = StreamContext("http://127.0.0.1:3000/events")
    payload = context.prepare({"id": "e1", "instance_id": "abc", "timestamp": "2025-11-23T21:04:11Z"}, name)
    event = normalize(payload, name)
    assert (event.event_type, event.session_id) == ("SessionStart", "abc")


# --- the runtime runs every configured source at once ------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_in_thread(server: StreamServer) -> tuple[str, Callable[[], None]]:
    """Run the SSE server in a thread of its own (the aggregator's runtime has another loop)."""
    import threading

    loop = asyncio.new_event_loop()
    ready: list[str] = []
    started = threading.Event()

    def main() -> None:
        asyncio.set_event_loop(loop)
        ready.append(loop.run_until_complete(server.start()))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert started.wait(WAIT)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)

    return ready[0], stop


def wait_until(condition: Callable[[], bool], what: str) -> None:
    import time

    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def test_the_runtime_reads_sse_next_to_the_hub(tmp_path: Path) -> None:
    import urllib.request

    from agent_aggregator.config import SOCKETIO, SSE, SourceSpec
    from agent_aggregator.runtime import read_status_file

    url, stop_server = serve_in_thread(StreamServer(break_after=None))
    port = free_port()
    config = Config(activity_directory=tmp_path / "activity", dashboard_host="127.0.0.1", dashboard_port=port,
                    sources=(SourceSpec(SOCKETIO), SourceSpec(SSE, url)))
    aggregator = EventAggregator(config=config)
    aggregator.start(serve=True)
    try:
        hook = {"hook_event_name": "UserPromptSubmit", "session_id": "hook-1", "prompt": "hello", "cwd": "/tmp/p"}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/events", data=json.dumps(hook).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            assert answer.status == 202
        wait_until(lambda: aggregator.get_session("hook-1") is not None, "the hook event")
        wait_until(lambda: "11f3218d" in aggregator.get_completed_sessions(), "the SSE session")
        status = aggregator.get_status()
        assert f"built-in hub on 127.0.0.1:{port}" in status["source"] and f"SSE stream {url}" in status["source"]

        def streams() -> list:
            return (read_status_file(tmp_path / "activity") or {}).get("sse_sources") or []

        wait_until(lambda: any(s["events_received"] >= 13 for s in streams()), "the status file's next write")
        [sse] = streams()
        assert sse["url"] == url and sse["state"] == "connected" and sse["attempt"] == 0
        # relayed through the hub, so a TUI following this aggregator sees the stream too
        relayed = [payload for name, payload in aggregator.runtime.hub.history if name == "sse_event"]
        assert [p["type"] for p in relayed].count("session_started") == 1
    finally:
        aggregator.stop()
        stop_server()


def test_only_sse_sources_mean_no_hub(tmp_path: Path) -> None:
    from agent_aggregator.config import SSE, SourceSpec

    url, stop_server = serve_in_thread(StreamServer(break_after=None))
    config = Config(activity_directory=tmp_path / "activity", dashboard_host="127.0.0.1", dashboard_port=free_port(),
                    sources=(SourceSpec(SSE, url),))
    aggregator = EventAggregator(config=config)
    aggregator.start()
    try:
        wait_until(lambda: "11f3218d" in aggregator.get_completed_sessions(), "the SSE session")
        wait_until(lambda: aggregator.get_status()["connected"], "connected")
        status = aggregator.get_status()
        assert status["source"] == f"SSE stream {url}" and aggregator.runtime.hub is None
    finally:
        aggregator.stop()
        stop_server()
