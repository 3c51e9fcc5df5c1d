"""`aggregate start | status | stop` as a user runs them: real processes, real loopback servers.

Each test runs in its own directory with its own HOME and hook spool, so no
user configuration or spooled hook leaks in, and uses ephemeral ports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402
from test_socketio_client import NOT_HISTORY, BareServer, free_port, wait_until  # noqa: E402

TIMEOUT = 60


@pytest.fixture
def place(tmp_path: Path) -> dict:
    """cwd + environment for the commands; sessions land in <cwd>/.claude-mpm/activity."""
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLAUDE_MPM_")}
    env.update(HOME=str(home), AGGREGATE_SPOOL_DIR=str(tmp_path / "spool"), PYTHONUNBUFFERED="1")
    return {"cwd": tmp_path, "env": env, "activity": tmp_path / ".claude-mpm" / "activity"}


def aggregate(place: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent_aggregator", *args], cwd=place["cwd"], env=place["env"],
                          capture_output=True, text=True, timeout=TIMEOUT)


def start_foreground(place: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "agent_aggregator", "start", *args], cwd=place["cwd"],
                            env=place["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def status(place: dict) -> dict:
    result = aggregate(place, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_running(place: dict, process: subprocess.Popen | None = None) -> dict:
    def running() -> dict | None:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"aggregate start exited early: {process.communicate()}")
        current = status(place)
        return current if current["running"] else None

    return wait_until(running, timeout=30, interval=0.1)


def post_hooks(port: int, payloads: list[dict]) -> None:
    for payload in payloads:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/events", data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202


def finish(process: subprocess.Popen) -> tuple[str, str]:
    """Wait for a foreground start to end (killing it if a test failed first)."""
    try:
        return process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def saved_sessions(directory: Path) -> dict[str, dict]:
    return {data["session_id"]: data for data in
            (json.loads(path.read_text()) for path in sorted(directory.glob("session_*.json")))}


def test_status_and_stop_with_nothing_running(place):
    result = aggregate(place, "status")
    assert result.returncode == 0, result.stderr
    assert "Event Aggregator Status:" in result.stdout and "Status: Stopped" in result.stdout
    assert "Connected: No" in result.stdout
    assert status(place)["running"] is False
    result = aggregate(place, "stop")
    assert result.returncode == 0
    assert result.stdout.strip() == f"No aggregator is running for {place['activity']}"


def test_foreground_start_serves_hooks_then_status_and_stop_from_other_processes(place):
    port = free_port()
    process = start_foreground(place, "--port", str(port), "--status-interval", "0.5")
    try:
        current = wait_running(place, process)
        assert current["connected"] is True and current["source"] == f"built-in hub on 127.0.0.1:{port}"
        assert current["save_directory"] == str(place["activity"]) and current["dashboard_port"] == port

        payloads = [payload for _, payload in fb.raw_hook_session()]
        post_hooks(port, payloads[:10])
        wait_until(lambda: status(place)["total_events"] == 10, timeout=30, interval=0.2)
        human = aggregate(place, "status")
        assert human.returncode == 0
        for line in ("Status: Running", "Connected: Yes", "Active Sessions: 1", "Total Events: 10",
                     f"Activity Directory: {place['activity']}", f"Dashboard Port: {port}",
                     f"Connection: serving on 127.0.0.1:{port}"):
            assert line in human.stdout

        second = aggregate(place, "start", "--port", str(free_port()))
        assert second.returncode == 1 and second.stdout == ""
        assert len(second.stderr.strip().splitlines()) == 1
        assert "already used by another aggregator" in second.stderr and str(process.pid) in second.stderr

        stopped = aggregate(place, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip() == "Event aggregator stopped (1 session saved)"
    finally:
        out, err = finish(process)
    assert process.returncode == 0, err
    assert out.startswith("Event aggregator started\n")
    assert f"Saving sessions to: {place['activity']}" in out
    assert "Connected: Yes | Active Sessions: 1 | Total Events: 10" in out
    assert "Event aggregator stopped (1 session saved" in out
    [data] = saved_sessions(place["activity"]).values()
    assert data["status"] == "completed" and data["metrics"]["total_events"] == 10
    assert status(place)["running"] is False


def test_foreground_start_listens_to_a_socketio_server_and_ctrl_c_saves(place):
    server = BareServer().start()
    process = start_foreground(place, "--host", "127.0.0.1", "--port", str(server.port))
    try:
        current = wait_running(place, process)
        assert current["connection_state"] == f"connected to 127.0.0.1:{server.port}"
        wait_until(lambda: server.clients)
        stream = fb.claude_mpm_session()
        server.emit(stream)
        sessions_events = sum(1 for name, payload in stream if name not in NOT_HISTORY and "session_id" in payload)
        wait_until(lambda: status(place)["total_events"] == sessions_events, timeout=30, interval=0.2)
        process.send_signal(signal.SIGINT)
        out, err = finish(process)
    finally:
        finish(process)
        server.stop()
    assert process.returncode == 0, err
    assert "Stopping (SIGINT)" in out and "Event aggregator stopped (1 session saved" in out
    [data] = saved_sessions(place["activity"]).values()
    assert data["session_id"] == fb.MPM_SESSION_ID and data["metrics"]["total_events"] == sessions_events


def test_daemon_start_then_stop(place):
    port = free_port()
    started = aggregate(place, "start", "--daemon", "--serve", "--port", str(port))
    assert started.returncode == 0, started.stderr
    first_line = started.stdout.splitlines()[0]
    assert first_line.startswith("Event aggregator running in the background (pid ")
    pid = int(first_line.rsplit(" ", 1)[1].rstrip(")"))
    try:
        current = status(place)
        assert current["running"] is True and current["pid"] == pid and current["mode"] == "serve"
        post_hooks(port, [{"session_id": "daemon-1", "hook_event_name": "UserPromptSubmit", "prompt": "hi"}])
        again = aggregate(place, "start", "--daemon", "--port", str(free_port()))
        assert again.returncode == 1 and "already used by another aggregator" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1
        stopped = aggregate(place, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip() == "Event aggregator stopped (1 session saved)"
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert status(place)["running"] is False
    assert (place["cwd"] / ".claude-mpm" / "logs" / "aggregator.out").exists()
    [data] = saved_sessions(place["activity"]).values()
    assert data["session_id"] == "daemon-1" and data["status"] == "completed"


def test_a_port_taken_by_something_else_fails_with_one_line(place):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = aggregate(place, "start", "--daemon", "--port", str(port))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not a Socket.IO server" in result.stderr
    assert status(place)["running"] is False


def test_sigkill_mid_stream_then_a_new_start_recovers_the_journaled_session(place):
    server = BareServer().start()
    stream = [pair for pair in fb.claude_mpm_session() if pair[0] not in NOT_HISTORY]
    half = stream[: len(stream) // 2]
    process = start_foreground(place, "--host", "127.0.0.1", "--port", str(server.port))
    try:
        wait_running(place, process)
        wait_until(lambda: server.clients)
        server.emit(half)
        journals = lambda: list(place["activity"].glob("*.journal.jsonl"))  # noqa: E731
        wait_until(lambda: journals() and len(journals()[0].read_text().splitlines()) == 1 + len(half))
        process.kill()  # SIGKILL: no chance to save
        finish(process)
    finally:
        finish(process)
        server.stop()
    assert process.returncode == -signal.SIGKILL
    after = aggregate(place, "status")
    assert "Status: Stopped" in after.stdout and "ended without stopping" in after.stdout

    restarted = start_foreground(place, "--serve", "--port", str(free_port()))
    try:
        current = wait_running(place, restarted)
        assert current["recovered_sessions"] == 1
        assert aggregate(place, "stop").returncode == 0
    finally:
        out, err = finish(restarted)
    assert restarted.returncode == 0, err
    assert f"Recovered session {fb.MPM_SESSION_ID} ({len(half)} events)" in out
    [data] = saved_sessions(place["activity"]).values()
    assert data["status"] == "recovered" and data["metrics"]["total_events"] == len(half)
    assert not list(place["activity"].glob("*.journal.jsonl"))
