"""The built-in hub, over real sockets on 127.0.0.1 (ephemeral ports): HTTP ingest,
Socket.IO relay and history, listeners, the spool, and ``aggregate serve``."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
import socketio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402

from agent_aggregator.aggregator import EventAggregator  # noqa: E402
from agent_aggregator.cli import main  # noqa: E402
from agent_aggregator.config import Config  # noqa: E402
from agent_aggregator.errors import AggregatorError  # noqa: E402
from agent_aggregator.sources import spool  # noqa: E402
from agent_aggregator.timeutil import parse_timestamp  # noqa: E402
from agent_aggregator.sources.hub import (  # noqa: E402
    HISTORY_NAME_KEY,
    Hub,
    PortInUseError,
    _serve,
    loopback_address,
    stamp,
    unwrap_api_body,
)

AGGREGATE = Path(sys.executable).with_name("aggregate")
WAIT = 10.0  # seconds before a wait gives up: a failure guard, not a measurement


# --- helpers ------------------------------------------------------------------------------


async def eventually(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
    """Until ``condition()`` holds; AssertionError naming ``what`` after ``timeout`` (a guard, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Client:
    """A real python-socketio client that records every event it receives."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: list[tuple[str, Any]] = []
        self.sio.on("*", self._record)

    async def _record(self, event: str, data: Any = None) -> None:
        self.received.append((event, data))

    wait = WAIT

    async def connect(self, hub: Hub | str) -> "Client":
        """Connect to a hub (or its URL) and wait for the history it sends first."""
        await self.sio.connect(hub if isinstance(hub, str) else hub.url, transports=["websocket"])
        await eventually(lambda: self.named("event_history"), "event_history", self.wait)
        return self

    def named(self, event: str) -> list[Any]:
        return [data for name, data in self.received if name == event]

    def relayed(self) -> list[tuple[str, Any]]:
        return [(name, data) for name, data in self.received if name != "event_history"]


async def post(hub: Hub, path: str, body: Any, *, raw: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    data = raw if raw is not None else json.dumps(body).encode()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{hub.url}{path}", data=data, headers=headers) as response:
            return response.status, await response.json()


def run_hub(test: Callable[[Hub], Awaitable[None]], tmp_path: Path, **options: Any) -> Hub:
    """Start a hub on an ephemeral loopback port, run ``test(hub)``, always stop it."""

    async def body() -> Hub:
        hub = Hub("127.0.0.1", 0, spool_directory=tmp_path / "spool", **options)
        await hub.start()
        try:
            await test(hub)
        finally:
            await hub.stop()
        return hub

    return asyncio.run(body())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- payload handling (pure) -------------------------------------------------------------


def test_stamp_adds_what_is_missing_without_touching_the_original() -> None:
    raw = {"hook_event_name": "Stop", "session_id": "s"}
    stamped = stamp(raw)
    assert raw == {"hook_event_name": "Stop", "session_id": "s"}
    assert len(stamped["event_id"]) == 32 and stamped["timestamp"].endswith("+00:00")

    envelope = {"type": "hook", "subtype": "stop", "timestamp": "2026-03-14T10:05:00+00:00", "data": {}}
    assert stamp(envelope)["timestamp"] == envelope["timestamp"]  # only the id is added
    kept = {"event_id": "abc", "timestamp": "t"}
    assert stamp(kept) is kept
    assert stamp(["not", "an", "object"]) == ["not", "an", "object"]


def test_api_bodies_unwrap_like_claude_mpm() -> None:
    body = fb.api_events_bodies()[0]
    assert unwrap_api_body(body) == ("claude_event", body["data"])
    assert unwrap_api_body({"namespace": "", "event": "hook_event", "data": {"a": 1}}) == ("hook_event", {"a": 1})
    envelope = body["data"]  # posted directly: relayed whole, not unwrapped to its own data
    assert unwrap_api_body(envelope) == ("claude_event", envelope)
    assert unwrap_api_body({"event": "", "data": {"a": 1}}) == ("claude_event", {"a": 1})


def test_only_loopback_addresses_are_served() -> None:
    assert loopback_address("localhost") == "127.0.0.1"
    assert loopback_address("127.0.0.1") == "127.0.0.1"
    assert loopback_address("::1") == "::1"
    for host in ("0.0.0.0", "192.168.1.5", "example.com", "::"):
        with pytest.raises(AggregatorError, match="needs a shared token"):
            loopback_address(host)


# --- HTTP in, Socket.IO out ----------------------------------------------------------------


def test_posted_events_reach_socketio_clients_stamped(tmp_path: Path) -> None:
    api_body = fb.api_events_bodies()[0]
    _, raw_hook = fb.raw_hook_session()[1]

    async def test(hub: Hub) -> None:
        client = await Client().connect(hub)
        try:
            status, answer = await post(hub, "/api/events", api_body)
            assert status == 202 and answer["ok"] is True
            status, answer2 = await post(hub, "/events", raw_hook)
            assert status == 202
            await eventually(lambda: len(client.relayed()) == 2, "two relayed events")
        finally:
            await client.sio.disconnect()

        (name1, got1), (name2, got2) = client.relayed()
        assert name1 == api_body["event"] == "claude_event"
        hostname = hub.hostname  # the hub tags payloads without a machine with its own
        assert got1 == {**api_body["data"], "event_id": answer["event_id"], "hostname": hostname}  # own time kept
        assert name2 == "claude_event"
        assert got2["event_id"] == answer2["event_id"]
        assert {k: v for k, v in got2.items() if k not in ("event_id", "timestamp", "hostname")} == raw_hook
        assert got2["hostname"] == hostname
        assert got2["timestamp"].endswith("+00:00")

    hub = run_hub(test, tmp_path)
    assert hub.stats["events_relayed"] == 2


def test_api_events_keep_the_event_name_of_the_body(tmp_path: Path) -> None:
    async def test(hub: Hub) -> None:
        client = await Client().connect(hub)
        await post(hub, "/api/events", {"namespace": "", "event": "tool_event", "data": {"subtype": "pre_tool"}})
        await eventually(lambda: client.relayed(), "a relayed event")
        await client.sio.disconnect()
        assert client.relayed()[0][0] == "tool_event"

    run_hub(test, tmp_path)


def test_a_late_client_gets_the_history_in_order(tmp_path: Path) -> None:
    bodies = fb.api_events_bodies()[:5]

    async def test(hub: Hub) -> None:
        for body in bodies:
            await post(hub, "/api/events", body)
        late = await Client().connect(hub)
        await late.sio.disconnect()
        (history,) = late.named("event_history")
        assert history["count"] == history["total_available"] == 3  # history_size
        assert [event["timestamp"] for event in history["events"]] == [b["data"]["timestamp"] for b in bodies[2:]]
        assert all(event["event_id"] for event in history["events"])

    run_hub(test, tmp_path, history_size=3)


def test_a_large_history_comes_in_several_messages(tmp_path: Path) -> None:
    big = "x" * 400_000  # hook payloads carry file contents

    async def test(hub: Hub) -> None:
        for n in range(6):
            await post(hub, "/events", {"hook_event_name": "PostToolUse", "session_id": "s", "n": n, "out": big})
        late = await Client().connect(hub)
        await eventually(lambda: sum(m["count"] for m in late.named("event_history")) == 6, "the whole history")
        await late.sio.disconnect()
        messages = late.named("event_history")
        assert len(messages) > 1
        assert all(m["total_available"] == 6 for m in messages)
        assert [event["n"] for m in messages for event in m["events"]] == list(range(6))

    run_hub(test, tmp_path)


def test_a_client_gets_an_empty_history_first(tmp_path: Path) -> None:
    async def test(hub: Hub) -> None:
        client = await Client().connect(hub)
        await client.sio.disconnect()
        assert client.received[0] == ("event_history", {"events": [], "count": 0, "total_available": 0})

    run_hub(test, tmp_path)


def test_a_clients_emit_reaches_the_others_not_itself(tmp_path: Path) -> None:
    envelope = fb.claude_mpm_session(include_non_session=False)[0][1]

    async def test(hub: Hub) -> None:
        sender, other = await Client().connect(hub), await Client().connect(hub)
        await eventually(lambda: hub.stats["clients"] == 2, "two clients counted")
        try:
            await sender.sio.emit("claude_event", envelope)
            await eventually(lambda: other.relayed(), "the relayed event")
            # A marker posted after it proves the sender had its chance to receive it.
            await post(hub, "/events", {"hook_event_name": "Marker", "session_id": "m"})
            await eventually(lambda: sender.relayed(), "the marker at the sender")
        finally:
            await sender.sio.disconnect()
            await other.sio.disconnect()
        (name, payload), _marker = other.relayed()
        assert name == "claude_event"
        assert payload == {**envelope, "event_id": payload["event_id"], "hostname": hub.hostname}
        assert [p["hook_event_name"] for _, p in sender.relayed()] == ["Marker"]
        await eventually(lambda: hub.stats["clients"] == 0, "clients gone")

    run_hub(test, tmp_path)


def test_listeners_get_every_event_and_a_failing_one_stops_nothing(tmp_path: Path) -> None:
    seen: list[tuple[str, Any]] = []

    def broken(event_name: str, payload: Any) -> None:
        raise RuntimeError("listener bug")

    async def test(hub: Hub) -> None:
        client = await Client().connect(hub)
        await post(hub, "/api/events", {"namespace": "", "event": "hook_event", "data": {"n": 1}})
        await post(hub, "/events", {"hook_event_name": "Stop", "session_id": "s", "n": 2})
        await client.sio.emit("agent_event", {"n": 3})
        await eventually(lambda: len(seen) == 3, "three events at the listener")
        await hub.relay("system_event", {"n": 4})
        await client.sio.disconnect()

    hub = Hub("127.0.0.1", 0, spool_directory=tmp_path / "spool")
    hub.add_listener(broken)
    hub.add_listener(lambda name, payload: seen.append((name, payload)))

    async def body() -> None:
        await hub.start()
        try:
            await test(hub)
        finally:
            await hub.stop()

    asyncio.run(body())
    assert [(name, payload["n"]) for name, payload in seen] == [
        ("hook_event", 1), ("claude_event", 2), ("agent_event", 3), ("system_event", 4)
    ]
    assert all(payload["event_id"] for _, payload in seen)
    assert hub.stats["listener_errors"] == 4
    assert hub.stats["events_relayed"] == 4


def test_bad_requests_are_refused_and_counted(tmp_path: Path) -> None:
    async def test(hub: Hub) -> None:
        status, answer = await post(hub, "/events", None, raw=b'{"hook_event_name": "Stop",')
        assert status == 400 and answer["ok"] is False and "invalid JSON" in answer["error"]
        status, answer = await post(hub, "/api/events", [1, 2])
        assert status == 400 and "expected a JSON object" in answer["error"]
        # What a web page in the user's browser could forge: refused.
        status, answer = await post(hub, "/events", {"hook_event_name": "Stop", "session_id": "s"},
                                    headers={"Origin": "http://attacker.example"})
        assert status == 403

    hub = run_hub(test, tmp_path)
    assert hub.stats["bad_requests"] == 3
    assert hub.stats["events_relayed"] == 0


def test_a_browser_page_cannot_open_a_socket(tmp_path: Path) -> None:
    async def test(hub: Hub) -> None:
        intruder = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await intruder.connect(hub.url, transports=["websocket"],
                                   headers={"Origin": "http://attacker.example"})
        assert hub.stats["clients"] == 0

    run_hub(test, tmp_path)


def test_health_reports_the_service(tmp_path: Path) -> None:
    async def test(hub: Hub) -> None:
        await post(hub, "/events", {"hook_event_name": "Stop", "session_id": "s"})
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{hub.url}/health") as response:
                health = await response.json()
        assert health["status"] == "ok" and health["service"] == "agent-aggregator-hub"
        assert health["events_relayed"] == 1 and health["clients"] == 0 and health["version"]

    run_hub(test, tmp_path)


def test_a_taken_port_is_a_clear_oserror(tmp_path: Path) -> None:
    async def test(hub: Hub) -> None:
        second = Hub("127.0.0.1", hub.port, spool_directory=tmp_path / "spool")
        with pytest.raises(PortInUseError) as caught:
            await second.start()
        assert isinstance(caught.value, OSError) and caught.value.errno == errno.EADDRINUSE
        assert f"port {hub.port}" in str(caught.value) and "--port" in str(caught.value)

    run_hub(test, tmp_path)


def test_stop_drops_clients_so_they_reconnect_to_a_restarted_hub(tmp_path: Path) -> None:
    async def body() -> None:
        hub = Hub("127.0.0.1", 0, spool_directory=tmp_path / "spool")
        await hub.start()
        client = socketio.AsyncClient(reconnection=True, reconnection_delay=0.05, reconnection_delay_max=0.2)
        histories: list[Any] = []
        client.on("event_history", histories.append)
        await client.connect(hub.url, transports=["websocket"])
        await eventually(lambda: len(histories) == 1, "the first history")
        await hub.stop()  # must not wait on the open websocket
        assert not hub.running
        restarted = Hub("127.0.0.1", hub.port, spool_directory=tmp_path / "spool")
        await restarted.start()  # the port is free again at once
        try:
            await eventually(lambda: len(histories) == 2, "the client to reconnect by itself")
        finally:
            await client.disconnect()
            await restarted.stop()

    asyncio.run(body())


# --- the spool -------------------------------------------------------------------------------


def test_spooled_events_are_relayed_in_order_at_start(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    bodies = fb.api_events_bodies()[:4]
    for index, body in enumerate(bodies):
        if index == 2:
            spool.append("/events", {"hook_event_name": "Stop", "session_id": "s", "event_id": "raw-1"},
                         directory=directory)
        spool.append("/api/events", body, directory=directory)
    seen: list[tuple[str, Any]] = []

    async def body() -> Hub:
        hub = Hub("127.0.0.1", 0, spool_directory=directory)
        hub.add_listener(lambda name, payload: seen.append((name, payload)))
        await hub.start()  # the first drain is part of start
        try:
            late = await Client().connect(hub)
            await late.sio.disconnect()
            (history,) = late.named("event_history")
            assert history["events"] == [{**payload, HISTORY_NAME_KEY: name} for name, payload in seen]
        finally:
            await hub.stop()
        return hub

    hub = asyncio.run(body())
    expected = [b["data"]["timestamp"] for b in bodies[:2]] + [None] + [b["data"]["timestamp"] for b in bodies[2:]]
    assert [payload.get("timestamp") if payload.get("hook_event_name") != "Stop" else None
            for _, payload in seen] == expected
    assert seen[2] == ("claude_event", {**seen[2][1], "event_id": "raw-1"})  # the hook's id is kept
    assert hub.stats["spool_delivered"] == 5
    assert not (directory / "hooks.jsonl").exists()
    assert [name for name in os.listdir(directory) if "hooks" in name] == []


def test_events_spooled_while_running_are_drained(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    seen: list[Any] = []

    async def body() -> None:
        hub = Hub("127.0.0.1", 0, spool_directory=directory, drain_interval=0.05)
        hub.add_listener(lambda name, payload: seen.append(payload["n"]))
        await hub.start()
        try:
            for n in range(3):
                spool.append("/events", {"hook_event_name": "Stop", "session_id": "s", "n": n}, directory=directory)
            await eventually(lambda: len(seen) == 3, "the periodic drain")
            spool.append("/nowhere", {"n": 99}, directory=directory)  # a path no hub serves
            await eventually(lambda: hub.stats["spool_bad_lines"] == 1, "the unknown path to be skipped")
        finally:
            await hub.stop()

    asyncio.run(body())
    assert seen == [0, 1, 2]


def test_an_unusable_spool_does_not_stop_the_hub(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "spool"
    (directory / spool.DRAIN_LOCK_FILE).mkdir(parents=True)  # the drain cannot take its lock

    async def test(hub: Hub) -> None:
        status, _ = await post(hub, "/events", {"hook_event_name": "Stop", "session_id": "s"})
        assert status == 202

    with caplog.at_level("WARNING", logger="agent_aggregator.hub"):
        hub = Hub("127.0.0.1", 0, spool_directory=directory)

        async def body() -> None:
            await hub.start()
            try:
                await test(hub)
            finally:
                await hub.stop()

        asyncio.run(body())
    assert hub.stats["events_relayed"] == 1
    assert [r.getMessage() for r in caplog.records if "cannot drain the spool" in r.getMessage()]


# --- into a real aggregator -----------------------------------------------------------------


def test_hub_events_become_saved_sessions(tmp_path: Path) -> None:
    aggregator = EventAggregator(config=Config(activity_directory=tmp_path / "activity"))
    aggregator.start(connect=False)
    raw = fb.raw_hook_session()
    spool.append("/events", {**raw[0][1], "timestamp": raw[0][0]}, directory=tmp_path / "spool")

    async def test(hub: Hub) -> None:
        for body in fb.api_events_bodies():
            status, _ = await post(hub, "/api/events", body)
            assert status == 202
        for timestamp, payload in raw[1:]:  # as the hook posts them: stamped with their time
            status, _ = await post(hub, "/events", {**payload, "timestamp": timestamp})
            assert status == 202

    async def body() -> None:
        hub = Hub("127.0.0.1", 0, spool_directory=tmp_path / "spool")
        hub.add_listener(lambda name, payload: aggregator.handle_event(payload, name))
        await hub.start()
        try:
            await test(hub)
        finally:
            await hub.stop()

    try:
        asyncio.run(body())
        aggregator.save_all()
    finally:
        aggregator.stop()

    raw_expected = fb.expected_raw_hook_session()
    mpm_expected = fb.expected_api_events_bodies()
    for expected in (raw_expected, mpm_expected):
        summary = aggregator.store.find(expected["session_id"])
        data = json.loads(Path(summary.file_path).read_text())
        assert data["initial_prompt"] == expected["initial_prompt"]
        assert len(data["delegations"]) == expected["total_delegations"]
        assert [d["agent_type"] for d in data["delegations"]] == [d["agent_type"] for d in expected["delegations"]]
        assert data["metrics"]["files_modified"] == expected["files_modified"]
    raw_data = json.loads(Path(aggregator.store.find(raw_expected["session_id"]).file_path).read_text())
    assert len(raw_data["events"]) == raw_expected["total_events"]  # the spooled SessionStart included
    assert parse_timestamp(raw_data["start_time"]) == parse_timestamp(raw_expected["start_time"])


# --- aggregate serve ---------------------------------------------------------------------------


def test_aggregate_serve_runs_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "AGGREGATE_SPOOL_DIR": str(tmp_path / "spool"), "HOME": str(tmp_path)}
    process = subprocess.Popen(
        [str(AGGREGATE), "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        health = _wait_for_health(base, process)
        assert health["service"] == "agent-aggregator-hub"
        request = urllib.request.Request(
            f"{base}/events", data=json.dumps({"hook_event_name": "Stop", "session_id": "s"}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            assert response.status == 202
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert f"Hub listening on http://127.0.0.1:{port} (POST /api/events, POST /events, Socket.IO)" in out
    assert "Hub stopped (1 events relayed)" in out
    assert err == ""


def _wait_for_health(base: str, process: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while True:
        if process.poll() is not None:
            raise AssertionError(f"aggregate serve exited early: {process.communicate()}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_serve_prints_status_lines_and_stops_on_sigterm(tmp_path: Path) -> None:
    lines: list[str] = []

    async def body() -> int:
        hub = Hub("127.0.0.1", 0, spool_directory=tmp_path / "spool")
        serving = asyncio.create_task(_serve(hub, lines.append, status_interval=0.02))
        await eventually(lambda: any("events relayed" in line for line in lines[1:]), "a status line")
        os.kill(os.getpid(), signal.SIGTERM)  # caught by the serve loop's handler
        return await serving

    assert asyncio.run(body()) == 0
    assert lines[0].startswith("Hub listening on http://127.0.0.1:")
    assert "Hub: 0 clients, 0 events relayed" in lines[1]
    assert lines[-1] == "Hub stopped (0 events relayed)"


def test_serve_refuses_a_taken_port_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGGREGATE_SPOOL_DIR", str(tmp_path / "spool"))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = main(["--config-dir", str(tmp_path), "serve", "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and f"port {port}" in err and "--port" in err


def test_serve_refuses_a_host_beyond_this_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--config-dir", str(tmp_path), "serve", "--host", "0.0.0.0", "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2  # issue 8: refused without a token (tests/test_security_token.py covers the token case)
    assert err.startswith("aggregate: error: --host 0.0.0.0: listening beyond this machine needs a shared token")
    assert err.count("\n") == 1

