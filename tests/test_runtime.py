"""EventAggregator.start() with a live source: real servers on loopback ports, no mocks of our code.

* a bare python-socketio server emitting claude-mpm-shaped events under their
  category names is captured into saved sessions;
* that server stopped mid-stream and restarted on the same port (replaying its
  history on connect): the client reconnects, nothing is lost or counted twice;
* nothing listening: start() runs the built-in hub, and a POST reaches a session;
* the port held by something that is not Socket.IO: ConnectionError, directory let go.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402
from test_socketio_client import NOT_HISTORY, BareServer, free_port, wait_until  # noqa: E402

from agent_aggregator.aggregator import EventAggregator  # noqa: E402
from agent_aggregator.config import Config  # noqa: E402
from agent_aggregator.errors import ConnectionError  # noqa: E402
from agent_aggregator.runtime import probe, read_status_file  # noqa: E402

SECOND_ID = "7a91d44e-8c12-4f3b-ae56-9b2c1e0f8d35"


def make(directory: Path, port: int) -> EventAggregator:
    return EventAggregator(config=Config(activity_directory=directory, dashboard_host="127.0.0.1", dashboard_port=port))


def two_sessions() -> list[tuple[str, dict]]:
    """Two claude-mpm sessions, interleaved, with the server's non-session chatter."""
    first = fb.claude_mpm_session()
    second = fb.claude_mpm_session(SECOND_ID, "/home/dev/other", include_non_session=False)
    merged: list[tuple[str, dict]] = []
    for index in range(max(len(first), len(second))):
        merged.extend(stream[index] for stream in (first, second) if index < len(stream))
    return merged


def reference(tmp_path: Path, stream: list[tuple[str, dict]]) -> dict[str, dict]:
    """What the same stream gives when fed straight in: session id -> saved file."""
    aggregator = EventAggregator(config=Config(activity_directory=tmp_path / "reference"))
    aggregator.start(connect=False)
    for name, payload in stream:
        if name == "event_history":
            for item in payload["events"]:
                aggregator.handle_event(item)
        else:
            aggregator.handle_event(payload, name)
    aggregator.stop()
    return saved(tmp_path / "reference")


def saved(directory: Path) -> dict[str, dict]:
    files = [json.loads(path.read_text()) for path in sorted(directory.glob("session_*.json"))]
    return {data["session_id"]: data for data in files}


def same_capture(got: dict[str, dict], want: dict[str, dict]) -> None:
    assert set(got) == set(want)
    for session_id, data in got.items():
        expected = want[session_id]
        assert data["metrics"]["total_events"] == expected["metrics"]["total_events"] == len(data["events"])
        assert data["events"] == expected["events"]
        assert [(d["agent_type"], d["tool_operations"], d["files_modified"]) for d in data["delegations"]] == [
            (d["agent_type"], d["tool_operations"], d["files_modified"]) for d in expected["delegations"]
        ]
        assert data["metadata"]["source"] == "claude-mpm"


def test_captures_a_socketio_stream_under_every_category_name(tmp_path):
    stream = two_sessions()
    assert {name for name, _ in stream} >= {"claude_event", "tool_event", "hook_event", "session_event"}
    server = BareServer().start()
    aggregator = make(tmp_path / "activity", server.port)
    try:
        aggregator.start()
        status = aggregator.get_status()
        assert status["running"] and status["connected"]
        assert status["connection_state"] == f"connected to 127.0.0.1:{server.port}"
        assert status["source"] == f"Socket.IO server at 127.0.0.1:{server.port}"
        wait_until(lambda: server.clients)
        server.emit(stream)
        want = reference(tmp_path, stream)
        total = sum(data["metrics"]["total_events"] for data in want.values())
        wait_until(lambda: aggregator.get_status()["total_events"] == total)
        assert aggregator.get_status()["active_sessions"] == 2
    finally:
        aggregator.stop()
        server.stop()
    assert aggregator.saved_on_stop == 2
    same_capture(saved(tmp_path / "activity"), want)
    final = read_status_file(tmp_path / "activity")
    assert final["running"] is False and final["saved_on_stop"] == 2 and final["total_events"] == total


def test_server_restart_mid_stream_with_history_replay_loses_and_doubles_nothing(tmp_path):
    stream = [pair for pair in two_sessions() if pair[0] not in NOT_HISTORY]
    first, while_down, after = stream[: len(stream) // 3], stream[len(stream) // 3 : len(stream) // 2], stream[len(stream) // 2 :]
    server = BareServer(replay_history=True).start()
    aggregator = make(tmp_path / "activity", server.port)
    try:
        aggregator.start()
        source = aggregator.runtime.source
        wait_until(lambda: server.clients)
        server.emit(first)
        wait_until(lambda: source.events_received == len(first))

        server.stop()
        wait_until(lambda: source.state == "retrying")
        status = aggregator.get_status()
        assert status["connected"] is False and status["connection_state"].startswith("retrying 127.0.0.1:")
        server.record(while_down)  # hooks the server took while nobody listened
        server.start()  # same port; replays first + while_down on connect
        wait_until(lambda: source.state == "connected" and server.clients)
        assert aggregator.get_status()["connected"] is True
        server.emit(after)

        want = reference(tmp_path, stream)
        total = sum(data["metrics"]["total_events"] for data in want.values())
        wait_until(lambda: source.events_received == len(first) + len(after)
                   and source.history_events_received == len(first) + len(while_down))
        wait_until(lambda: aggregator.get_status()["total_events"] == total)
        assert source.connections == 2
        duplicates = aggregator.get_status()["duplicate_events"]
        assert duplicates == sum(1 for _, payload in first if payload.get("session_id"))
    finally:
        aggregator.stop()
        server.stop()
    same_capture(saved(tmp_path / "activity"), want)


def test_nothing_listening_starts_the_built_in_hub_and_a_post_reaches_a_session(tmp_path):
    port = free_port()
    aggregator = make(tmp_path / "activity", port)
    aggregator.start()
    try:
        status = aggregator.get_status()
        assert status["connected"] and status["connection_state"] == f"serving on 127.0.0.1:{port}"
        assert status["source"] == f"built-in hub on 127.0.0.1:{port}"
        bodies = fb.api_events_bodies()
        for body in bodies:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/events", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 202
        wait_until(lambda: aggregator.get_status()["total_events"] == len(bodies))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert json.loads(response.read())["events_relayed"] == len(bodies)
    finally:
        aggregator.stop()
    [data] = saved(tmp_path / "activity").values()
    assert data["session_id"] == fb.MPM_SESSION_ID and data["metrics"]["total_events"] == len(bodies)
    assert [d["agent_type"] for d in data["delegations"]] == ["research"]
    # The port is free again once stopped.
    assert asyncio.run(probe("127.0.0.1", port)).kind == "free"


def test_a_second_start_in_the_same_process_connects_to_the_first_ones_hub(tmp_path):
    port = free_port()
    first = make(tmp_path / "one", port)
    first.start()
    second = make(tmp_path / "two", port)
    try:
        second.start()
        assert second.get_status()["connection_state"] == f"connected to 127.0.0.1:{port}"
        request = urllib.request.Request(f"http://127.0.0.1:{port}/events", headers={"Content-Type": "application/json"},
                                         data=json.dumps({"session_id": "s-1", "hook_event_name": "UserPromptSubmit",
                                                          "prompt": "hi"}).encode())
        urllib.request.urlopen(request, timeout=10).close()
        wait_until(lambda: first.get_status()["total_events"] == 1 and second.get_status()["total_events"] == 1)
    finally:
        second.stop()
        first.stop()


class _NotSocketIO(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_port_held_by_something_else_raises_connection_error_and_frees_the_directory(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotSocketIO)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    port = httpd.server_address[1]
    try:
        assert asyncio.run(probe("127.0.0.1", port)).kind == "other"
        aggregator = make(tmp_path / "activity", port)
        with pytest.raises(ConnectionError, match="not a Socket.IO server"):
            aggregator.start()
        assert not aggregator.running and not aggregator.store.is_writer
        again = make(tmp_path / "activity", free_port())
        again.start(connect=False)  # the directory was let go
        again.stop()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_connect_only_waits_for_a_server_that_is_not_up_yet(tmp_path):
    port = free_port()
    aggregator = make(tmp_path / "activity", port)
    aggregator.start(serve=False)
    try:
        status = aggregator.get_status()
        assert status["running"] and not status["connected"]
        assert status["connection_state"].startswith(f"retrying 127.0.0.1:{port}")
        assert read_status_file(tmp_path / "activity")["running"] is True
        server = BareServer(port).start()
        try:
            wait_until(lambda: aggregator.get_status()["connected"])
        finally:
            server.stop()
    finally:
        aggregator.stop()


def test_probe_tells_free_socketio_and_other_apart(tmp_path):
    server = BareServer().start()
    try:
        assert asyncio.run(probe("127.0.0.1", server.port)).kind == "socketio"
        assert server.connects == 0  # the handshake never reached a namespace
    finally:
        server.stop()
    assert asyncio.run(probe("127.0.0.1", free_port())).kind == "free"


def test_seed_script_start_status_stop_from_a_plain_script(tmp_path):
    """The API reference's sync example, in a subprocess: start(), get_status(), list, stop()."""
    import subprocess

    port = free_port()
    script = f"""
import json
from agent_aggregator.aggregator import EventAggregator
aggregator = EventAggregator(host="127.0.0.1", port={port}, save_dir={str(tmp_path / 'activity')!r})
aggregator.start()
status = aggregator.get_status()
print(json.dumps({{k: status[k] for k in ("running", "connected", "active_sessions", "total_events",
                                           "save_directory", "dashboard_port")}}))
print(len(aggregator.list_sessions()))
aggregator.stop()
print(aggregator.get_status()["running"])
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={**__import__("os").environ, "AGGREGATE_SPOOL_DIR": str(tmp_path / "spool")})
    assert result.returncode == 0, result.stderr
    status_line, count, running = result.stdout.splitlines()
    status = json.loads(status_line)
    assert status["running"] is True and status["connected"] is True and status["dashboard_port"] == port
    assert count == "0" and running == "False"


def test_seed_async_example_start_inside_a_running_event_loop(tmp_path):
    """The API reference's async example calls the sync start()/get_status() from a coroutine."""
    port = free_port()
    seen: list[dict] = []

    async def monitor_sessions() -> None:
        aggregator = make(tmp_path / "activity", port)
        aggregator.start()
        try:
            for _ in range(3):
                seen.append(aggregator.get_status())
                await asyncio.sleep(0.05)
            assert aggregator.get_completed_sessions() == []
        finally:
            aggregator.stop()

    asyncio.run(monitor_sessions())
    assert [status["running"] for status in seen] == [True, True, True]
    assert all(status["connected"] for status in seen)


def test_as_a_client_the_runtime_delivers_what_hooks_spooled(tmp_path):
    # Listening to another server (claude-mpm's monitor has no POST /events), hooks
    # spool; with no hub of ours to drain the spool, the runtime feeds it in itself.
    from agent_aggregator.sources import spool

    spool.append("/events", {"session_id": "spooled-s", "hook_event_name": "UserPromptSubmit",
                             "prompt": "typed while only claude-mpm ran", "event_id": "e1",
                             "timestamp": "2026-03-01T10:00:00+00:00"})
    server = BareServer().start()
    aggregator = make(tmp_path / "activity", server.port)
    try:
        aggregator.start()
        wait_until(lambda: aggregator.get_session("spooled-s") is not None)
    finally:
        aggregator.stop()
        server.stop()
    [data] = saved(tmp_path / "activity").values()
    assert data["initial_prompt"] == "typed while only claude-mpm ran"
    assert data["start_time"] == "2026-03-01T10:00:00+00:00"
    assert not (spool.spool_dir() / "hooks.jsonl").exists()
