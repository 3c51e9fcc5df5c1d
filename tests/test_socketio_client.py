"""SocketIOSource against a real python-socketio server on a loopback port (no mocks).

``BareServer`` (also used by test_runtime.py and test_start_stop.py) is a plain
python-socketio ``AsyncServer`` on aiohttp, run in its own thread and event
loop, shaped like claude-mpm's monitor: it emits events under their category
names and, when ``replay_history`` is on, sends ``event_history`` with every
payload it has emitted so far to each client that connects.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402

from agent_aggregator.sources.socketio_client import (  # noqa: E402
    BACKOFF_MAX,
    CONNECTED,
    RETRYING,
    SocketIOSource,
    backoff_delay,
    history_items,
)

NOT_HISTORY = frozenset({"dashboard:welcome", "event_history", "heartbeat"})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll until ``condition()`` is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {condition}")
        time.sleep(interval)


class BareServer:
    """A bare python-socketio server in a background thread: start(), emit(), stop(), start() again."""

    def __init__(self, port: int | None = None, *, replay_history: bool = False) -> None:
        self.port = port or free_port()
        self.replay_history = replay_history
        self.history: list[dict] = []
        self.clients: set[str] = set()
        self.connects = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self.sio: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "BareServer":
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._open())
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True, name=f"bare-sio-{self.port}")
        self._thread.start()
        assert ready.wait(10), "test server did not start"
        return self

    async def _open(self) -> None:
        import socketio
        from aiohttp import web

        sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
        app = web.Application()
        sio.attach(app)

        @sio.event
        async def connect(sid, environ, auth=None):
            self.clients.add(sid)
            self.connects += 1
            if self.replay_history:
                events = list(self.history)
                await sio.emit("event_history", {"events": events, "count": len(events),
                                                 "total_available": len(events)}, to=sid)

        @sio.event
        async def disconnect(sid, *reason):
            self.clients.discard(sid)

        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.sio, self._runner = sio, runner

    def _call(self, coroutine: Any, timeout: float = 30.0) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def emit(self, pairs: list[tuple[str, Any]], *, record: bool = True) -> None:
        """Emit (event name, payload) pairs in order; remember session payloads for history replays."""

        async def send() -> None:
            for name, payload in pairs:
                await self.sio.emit(name, payload)
                if record and name not in NOT_HISTORY:
                    self.history.append(payload)

        self._call(send())

    def record(self, pairs: list[tuple[str, Any]]) -> None:
        """Events the server received while no client listened: only in its history."""
        self.history.extend(payload for name, payload in pairs if name not in NOT_HISTORY)

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close() -> None:
            for sid in list(self.clients):
                try:
                    await self.sio.disconnect(sid)
                except Exception:  # noqa: BLE001
                    pass
            await self._runner.cleanup()

        self._call(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop = None
        self.clients.clear()


@pytest.fixture
def server():
    instance = BareServer().start()
    yield instance
    instance.stop()


class Collector:
    """Runs a SocketIOSource in its own thread; records what it forwards and the states it goes through."""

    def __init__(self, url: str, **options: Any) -> None:
        self.events: list[tuple[str | None, Any]] = []
        self.states: list[str] = []
        self.source = SocketIOSource(url, self._on_event, on_state=self.states.append, **options)
        self._thread = threading.Thread(target=lambda: asyncio.run(self.source.run()), daemon=True)

    def _on_event(self, name: str | None, payload: Any) -> None:
        self.events.append((name, payload))

    def __enter__(self) -> "Collector":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.source.stop()
        self._thread.join(10)
        assert not self._thread.is_alive()


def test_backoff_doubles_from_half_a_second_to_ten_with_jitter():
    nominal = [backoff_delay(n, rng=lambda: 0.0) for n in range(1, 9)]
    assert nominal == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    jittered = [backoff_delay(n) for n in range(1, 50)]
    assert all(0 < delay <= BACKOFF_MAX for delay in jittered)
    assert backoff_delay(1, rng=lambda: 1.0) < 0.5


def test_history_items_accepts_claude_mpm_shape_and_a_bare_list():
    assert history_items({"events": [{"a": 1}], "count": 1}) == [{"a": 1}]
    assert history_items([{"a": 1}]) == [{"a": 1}]
    assert history_items({"count": 0}) == [] and history_items(None) == []


def test_every_event_name_is_forwarded_in_order(server):
    stream = fb.claude_mpm_session()
    with Collector(server.url) as collector:
        wait_until(lambda: collector.source.state == CONNECTED and server.clients)
        server.emit(stream)
        wait_until(lambda: len(collector.events) >= len(stream) - 1)
    # event_history (empty here) is unpacked into its items, everything else comes as is.
    expected = [(name, payload) for name, payload in stream if name != "event_history"]
    assert collector.events == expected
    assert {name for name, _ in collector.events} >= {"claude_event", "tool_event", "hook_event", "session_event"}
    assert collector.source.events_received == len(stream) - 1


def test_event_history_is_unpacked_with_no_event_name():
    server = BareServer(replay_history=True).start()
    try:
        stream = [pair for pair in fb.claude_mpm_session() if pair[0] not in NOT_HISTORY]
        server.record(stream)
        with Collector(server.url) as collector:
            wait_until(lambda: len(collector.events) == len(stream))
            assert collector.events == [(None, payload) for _, payload in stream]
            assert collector.source.history_events_received == len(stream)
    finally:
        server.stop()


def test_first_failure_is_visible_then_it_connects_when_the_server_appears():
    port = free_port()
    with Collector(f"http://127.0.0.1:{port}") as collector:
        source = collector.source
        wait_until(lambda: source.state == RETRYING)
        assert source.attempt >= 1 and source.last_error
        assert source.next_retry_in is not None and 0 <= source.next_retry_in <= BACKOFF_MAX
        assert "retrying 127.0.0.1:%d" % port in source.describe()
        server = BareServer(port).start()
        try:
            wait_until(lambda: source.state == CONNECTED)
            assert source.attempt == 0 and source.connected_since is not None
            assert source.describe() == f"connected to 127.0.0.1:{port}"
        finally:
            server.stop()
    assert collector.states[:2] == ["connecting", "retrying"]
    assert collector.states[-1] == "disconnected"


def test_reconnects_after_the_server_restarts_on_the_same_port(server):
    with Collector(server.url) as collector:
        source = collector.source
        wait_until(lambda: source.state == CONNECTED and server.clients)
        server.emit([("claude_event", {"n": 1})])
        wait_until(lambda: len(collector.events) == 1)
        server.stop()
        wait_until(lambda: source.state == RETRYING)
        server.start()
        wait_until(lambda: source.state == CONNECTED and server.clients)
        server.emit([("tool_event", {"n": 2})])
        wait_until(lambda: len(collector.events) == 2)
    assert collector.events == [("claude_event", {"n": 1}), ("tool_event", {"n": 2})]
    states = collector.states
    assert states.index("disconnected") < len(states) - 1
    after_drop = states[states.index("disconnected"):]
    assert after_drop[:2] == ["disconnected", "retrying"] and "connected" in after_drop
    assert source.connections == 2


def test_stop_while_retrying_returns_promptly():
    collector = Collector(f"http://127.0.0.1:{free_port()}", backoff_initial=30.0, backoff_max=30.0)
    with collector:
        wait_until(lambda: collector.source.state == RETRYING)
    assert collector.source.state == "disconnected"


def test_a_failing_callback_does_not_drop_the_connection(server):
    seen: list[Any] = []

    def flaky(name: str | None, payload: Any) -> None:
        if payload.get("n") == 1:
            raise RuntimeError("consumer bug")
        seen.append(payload)

    source = SocketIOSource(server.url, flaky)
    thread = threading.Thread(target=lambda: asyncio.run(source.run()), daemon=True)
    thread.start()
    try:
        wait_until(lambda: source.state == CONNECTED and server.clients)
        server.emit([("claude_event", {"n": 1}), ("claude_event", {"n": 2})])
        wait_until(lambda: seen == [{"n": 2}])
        assert source.callback_errors == 1 and source.state == CONNECTED
    finally:
        source.stop()
        thread.join(10)


def test_an_event_larger_than_the_websocket_default_keeps_the_connection(server):
    # A Read of a big file: aiohttp's default 4 MiB message limit would drop the client.
    big = {"session_id": "s-big", "hook_event_name": "PostToolUse", "tool_name": "Read",
           "tool_response": {"file": {"content": "x" * (5 * 1024 * 1024)}}}
    after = {"session_id": "s-big", "hook_event_name": "Stop"}
    with Collector(server.url) as collector:
        wait_until(lambda: collector.source.state == CONNECTED and server.clients)
        server.emit([("claude_event", big), ("claude_event", after)])
        wait_until(lambda: len(collector.events) >= 2)
        assert collector.source.state == CONNECTED
    assert [payload["hook_event_name"] for _, payload in collector.events] == ["PostToolUse", "Stop"]


def test_every_packet_shape_arrives_in_order_through_the_inline_client(server):
    """The fast path (sources/fast_socketio.py) takes plain events; acks, binary attachments and
    several arguments take the library's path. Interleaved, they still arrive in the order sent."""
    from agent_aggregator.sources.fast_socketio import InlineSocketIOClient

    acked: list[Any] = []
    with Collector(server.url) as collector:
        wait_until(lambda: collector.source.state == CONNECTED and server.clients)
        assert isinstance(collector.source._client, InlineSocketIOClient)

        async def send() -> None:
            sio = server.sio
            await sio.emit("claude_event", {"n": 1, "text": "caf\u00e9 \u2603"})
            await sio.emit("hook_event", {"n": 2, "blob": b"\x00\x01binary"})  # a binary event: two frames
            await sio.emit("claude_event", {"n": 3, "big": 2**70})  # past 64 bits: decoded exactly
            await sio.emit("tool_event", {"n": 4}, callback=lambda *args: acked.append(args))  # with an ack id
            await sio.emit("several", ({"n": 5}, "second"))  # two arguments
            await sio.emit("nothing")  # no argument
            await sio.emit("claude_event", {"n": 7}, namespace="/elsewhere")  # a namespace we never joined
            await sio.emit("claude_event", {"n": 8})

        server._call(send())
        wait_until(lambda: len(collector.events) >= 7)
        wait_until(lambda: acked)
    assert collector.events == [
        ("claude_event", {"n": 1, "text": "caf\u00e9 \u2603"}),
        ("hook_event", {"n": 2, "blob": b"\x00\x01binary"}),
        ("claude_event", {"n": 3, "big": 2**70}),
        ("tool_event", {"n": 4}),
        ("several", [{"n": 5}, "second"]),
        ("nothing", None),
        ("claude_event", {"n": 8}),
    ]
    assert acked == [()]  # the client answered the ack (our handler returns nothing)


def test_the_stock_client_is_used_when_the_library_lacks_what_the_inline_one_overrides(server, monkeypatch):
    import engineio

    from agent_aggregator.sources import fast_socketio

    monkeypatch.delattr(engineio.AsyncClient, "_read_loop_websocket")
    assert fast_socketio.inline_client_class() is None
    monkeypatch.undo()
    monkeypatch.setattr(fast_socketio, "inline_client_class", lambda: None)
    with Collector(server.url) as collector:
        wait_until(lambda: collector.source.state == CONNECTED and server.clients)
        assert type(collector.source._client).__name__ == "AsyncClient"
        server.emit([("claude_event", {"n": 1}), ("claude_event", {"n": 2})])
        wait_until(lambda: len(collector.events) >= 2)
    assert collector.events == [("claude_event", {"n": 1}), ("claude_event", {"n": 2})]
