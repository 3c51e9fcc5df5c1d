"""Faults, one integration test per scenario (issue 8): real processes, real servers, real files.

Every test runs `aggregate` commands as subprocesses in a private directory
(own HOME, own hook spool, ephemeral ports, see test_start_stop.place) and
checks the same two things at the end: every event that went in is saved
exactly once, and in the order it went in. Events carry a ``fault_seq``
number so the saved session can be compared with what was sent.

No assertion is about time: waits poll for a state and only give up (fail)
after a generous bound.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402
from test_socketio_client import free_port, wait_until  # noqa: E402
from test_start_stop import (  # noqa: E402,F401 - place is a fixture
    aggregate,
    finish,
    place,
    saved_sessions,
    start_foreground,
    status,
    wait_running,
)

WAIT = 60  # seconds a wait may take before the test fails (the machine is shared and noisy)
HOOK_TIMEOUT = "10"  # a hub that is up answers the hook; never fall back to the spool on a slow machine


# --- helpers ------------------------------------------------------------------------------


def hook_payloads(session_id: str = fb.RAW_SESSION_ID, *, first: int = 0, count: int | None = None,
                  pad: int = 0) -> list[dict]:
    """Realistic raw hook payloads (the fixtures' session, SessionEnd left out so it stays open),
    numbered with ``fault_seq``; ``pad`` adds that many bytes of tool output to each."""
    base = [payload for _, payload in fb.raw_hook_session(session_id) if payload["hook_event_name"] != "SessionEnd"]
    count = len(base) if count is None else count
    payloads = []
    for seq in range(first, first + count):
        payload = {**base[seq % len(base)], "fault_seq": seq}
        if pad:
            payload["padding"] = "x" * pad
        payloads.append(payload)
    return payloads


def post(port: int, payload: dict, path: str = "/events") -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        return json.loads(response.read())


def relayed(port: int) -> int:
    """How many events the hub on ``port`` has relayed (its /health)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as response:
        return json.loads(response.read())["events_relayed"]


def fire_hook(place: dict, port: int, payload: dict) -> None:
    """What Claude Code does for one hook event: run `aggregate hook` with the payload on stdin."""
    result = subprocess.run([sys.executable, "-m", "agent_aggregator", "hook", "--port", str(port),
                             "--timeout", HOOK_TIMEOUT], input=json.dumps(payload), cwd=place["cwd"],
                            env=place["env"], capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 0, result.stderr


def serve(place: dict, port: int) -> subprocess.Popen:
    """`aggregate serve` on ``port``, returned once /health answers."""
    process = subprocess.Popen([sys.executable, "-m", "agent_aggregator", "serve", "--port", str(port)],
                               cwd=place["cwd"], env=place["env"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"aggregate serve exited early: {process.communicate()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    wait_until(healthy, timeout=WAIT, interval=0.1)
    return process


def seqs(session: dict) -> list[int]:
    """The ``fault_seq`` of every saved event, in saved order."""
    return [event["data"]["fault_seq"] for event in session["events"] if "fault_seq" in event["data"]]


def journal_lines(place: dict) -> int:
    return sum(len(path.read_bytes().splitlines()) - 1 for path in place["activity"].glob("*.journal.jsonl"))


def spooled(place: dict) -> list[dict]:
    spool = Path(place["env"]["AGGREGATE_SPOOL_DIR"])
    lines: list[dict] = []
    for path in sorted(spool.glob("hooks*")) if spool.is_dir() else []:
        lines.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return lines


def stop(place: dict, process: subprocess.Popen) -> tuple[str, str]:
    result = aggregate(place, "stop")
    assert result.returncode == 0, result.stderr
    out, err = finish(process)
    assert process.returncode == 0, err
    return out, err


# --- the Socket.IO server goes away ---------------------------------------------------------


def test_hub_killed_and_restarted_mid_session_loses_and_doubles_nothing(place):
    """Guarantee: the hub (`aggregate serve`) killed with SIGKILL mid-session and restarted on
    the same port: the aggregator (`aggregate start --no-serve`, a client) reconnects by itself;
    hooks fired while the hub was down are spooled and delivered once it is back (or by the
    aggregator itself); every event is saved exactly once, in the order it was fired."""
    port = free_port()
    events = hook_payloads(count=24)
    before, while_down, after = events[:8], events[8:16], events[16:]
    hub = serve(place, port)
    writer = start_foreground(place, "--no-serve", "--host", "127.0.0.1", "--port", str(port))
    try:
        assert wait_running(place, writer)["connected"] is True
        for payload in before:
            fire_hook(place, port, payload)
        wait_until(lambda: status(place)["total_events"] == len(before), timeout=WAIT, interval=0.2)

        hub.kill()  # no goodbye to the client: it only sees the connection drop
        finish(hub)
        wait_until(lambda: status(place)["connected"] is False, timeout=WAIT, interval=0.2)
        for payload in while_down:
            fire_hook(place, port, payload)  # nothing listens: the hook spools

        hub = serve(place, port)
        wait_until(lambda: status(place)["connected"] is True and status(place)["total_events"] == 16,
                   timeout=WAIT, interval=0.2)
        for payload in after:
            fire_hook(place, port, payload)
        wait_until(lambda: status(place)["total_events"] == len(events), timeout=WAIT, interval=0.2)
        stop(place, writer)
    finally:
        finish(writer)
        hub.terminate()
        finish(hub)
    [session] = saved_sessions(place["activity"]).values()
    assert seqs(session) == list(range(len(events)))  # all of them, once each, in order
    assert session["metrics"]["total_events"] == len(events)
    assert spooled(place) == []


def test_late_client_replays_history_under_its_event_names_and_chatter_makes_no_session(place):
    """Guarantee: a client that connects late (a reconnecting `aggregate start`, a follower)
    gets the hub's history with each event's Socket.IO name, so control messages
    (``dashboard:*``) are never replayed as nameless payloads that would become sessions,
    and the real events are captured once."""
    import asyncio

    import socketio

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    hub = serve(place, port)
    events = hook_payloads(count=6)

    async def emit_then_listen_late() -> list[dict]:
        emitter = socketio.AsyncClient(reconnection=False)
        await emitter.connect(url, transports=["websocket"])
        async def emit(name: str, payload: dict) -> None:
            """Emit, then wait until the hub relayed it, so its order relative to the POSTs is known."""
            count = await asyncio.to_thread(relayed, port)
            await emitter.emit(name, payload)
            for _ in range(WAIT * 50):
                if await asyncio.to_thread(relayed, port) > count:
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"the hub never relayed {name}")

        await emit("dashboard:hello", {"session_id": "not-a-session", "hook_event_name": "UserPromptSubmit",
                                       "prompt": "chatter"})
        await emit("heartbeat", {"session_id": "not-a-session-either", "hook_event_name": "Stop"})
        for payload in events[:3]:
            await asyncio.to_thread(post, port, payload)
        await emit("hook_event", {**events[3], "event_id": "emitted-3"})
        for payload in events[4:]:
            await asyncio.to_thread(post, port, payload)
        await emitter.disconnect()
        late = socketio.AsyncClient(reconnection=False)
        history: list[dict] = []
        late.on("event_history", lambda data: history.extend(data["events"]))
        await late.connect(url, transports=["websocket"])
        for _ in range(WAIT * 50):
            if len(history) >= len(events):
                break
            await asyncio.sleep(0.02)
        await late.disconnect()
        return history

    try:
        history = asyncio.run(emit_then_listen_late())
        assert [item["_event_name"] for item in history] == ["claude_event"] * 3 + ["hook_event"] + ["claude_event"] * 2

        writer = start_foreground(place, "--no-serve", "--host", "127.0.0.1", "--port", str(port))
        try:
            wait_running(place, writer)
            wait_until(lambda: status(place)["total_events"] == len(events), timeout=WAIT, interval=0.2)
            stop(place, writer)
        finally:
            finish(writer)
    finally:
        hub.terminate()
        finish(hub)
    sessions = saved_sessions(place["activity"])
    assert list(sessions) == [fb.RAW_SESSION_ID]  # no session made of chatter
    saved = sessions[fb.RAW_SESSION_ID]
    assert seqs(saved) == list(range(len(events)))
    assert all("_event_name" not in event["data"] for event in saved["events"])


# --- the aggregator is killed -----------------------------------------------------------------


def test_aggregator_sigkill_mid_burst_recovers_every_acknowledged_event(place):
    """Guarantee: `aggregate start` (serving the hub) killed with SIGKILL in the middle of a
    burst loses no event the hub acknowledged: each event is appended to the session's journal
    (one write-through write) before the 202 answer, so the unflushed window is 0 events. The
    next start recovers the journal, says how many events came back and that no line was lost
    (`start` output, log, `status --json`), and saves each event exactly once, in order."""
    port = free_port()
    burst = hook_payloads(count=400)
    acknowledged: list[int] = []
    attempted: list[int] = []

    writer = start_foreground(place, "--serve", "--port", str(port))

    def fire() -> None:
        for payload in burst:
            attempted.append(payload["fault_seq"])
            try:
                post(port, payload)
            except (OSError, urllib.error.URLError):
                return  # the aggregator is gone
            acknowledged.append(payload["fault_seq"])

    poster = threading.Thread(target=fire, daemon=True)
    try:
        wait_running(place, writer)
        poster.start()
        wait_until(lambda: len(acknowledged) >= 150, timeout=WAIT)
        writer.kill()  # SIGKILL mid-burst: no chance to save anything
        finish(writer)
        poster.join(WAIT)
    finally:
        finish(writer)
    assert writer.returncode == -signal.SIGKILL
    assert not poster.is_alive() and len(acknowledged) < len(burst)
    assert journal_lines(place) >= len(acknowledged)

    restarted = start_foreground(place, "--serve", "--port", str(free_port()))
    try:
        current = wait_running(place, restarted)
        out, _ = stop(place, restarted)
    finally:
        finish(restarted)
    recovered = current["recovered_events"]
    assert current["recovered_sessions"] == 1 and current["recovery_unreadable_lines"] == 0
    # Every acknowledged event came back; at most the one in flight at the kill is there
    # without its 202 (journaled, then killed before answering).
    assert len(acknowledged) <= recovered <= len(attempted)
    assert f"Recovered session {fb.RAW_SESSION_ID} ({recovered} events)" in out and "(no line lost)" in out
    [session] = saved_sessions(place["activity"]).values()
    assert session["status"] == "recovered"
    assert seqs(session) == list(range(recovered))
    assert not list(place["activity"].glob("*.journal.jsonl"))


# --- the hub is down while hooks fire ---------------------------------------------------------


def test_hooks_fired_with_no_hub_are_spooled_then_delivered_in_order_once(place):
    """Guarantee: with nothing listening, every `aggregate hook` exits 0 at once and spools its
    event (stamped with its id and real time); the next `aggregate start` delivers the spool in
    order, exactly once, and a later start delivers nothing twice."""
    port = free_port()
    events = hook_payloads(count=12)
    for payload in events:
        fire_hook(place, port, payload)
    assert [line["body"]["fault_seq"] for line in spooled(place)] == list(range(len(events)))

    for _ in range(2):  # the second start finds an empty spool
        writer = start_foreground(place, "--serve", "--port", str(port))
        try:
            wait_running(place, writer)
            wait_until(lambda: spooled(place) == [], timeout=WAIT, interval=0.2)
            stop(place, writer)
        finally:
            finish(writer)
    [session] = saved_sessions(place["activity"]).values()
    assert seqs(session) == list(range(len(events)))
    assert all(event["event_id"] for event in session["events"])


# --- the activity directory cannot be written -------------------------------------------------


def _fsize_limit(pid: int, limit: int) -> None:
    """Cap the size of any file process ``pid`` writes (RLIMIT_FSIZE): a real "disk full" for
    that process (writes past the limit fail with EFBIG; Python ignores SIGXFSZ), which works
    as root too and can be lifted again from outside."""
    hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)[1]
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))


def test_full_activity_directory_keeps_events_in_memory_and_saves_them_when_space_returns(place):
    """Guarantee: when writes fail (disk full), the aggregator says so once (log line, `status`),
    keeps every event in memory, loses nothing already saved, retries every 2 s, and once
    writing works again everything lands: the journal catches up in order and the session is
    saved with every event exactly once."""
    port = free_port()
    saved_first = hook_payloads("a1b2c3d4-0000-4000-8000-00000000000a", count=6)
    session_end = {**saved_first[0], "hook_event_name": "SessionEnd", "reason": "exit", "fault_seq": 6}
    big = hook_payloads(count=30, pad=4000)
    writer = start_foreground(place, "--serve", "--port", str(port))
    try:
        wait_running(place, writer)
        for payload in [*saved_first, session_end]:
            post(port, payload)
        wait_until(lambda: len(saved_sessions(place["activity"])) == 1, timeout=WAIT, interval=0.2)
        [first_file] = place["activity"].glob("session_*.json")
        first_bytes = first_file.read_bytes()

        _fsize_limit(writer.pid, 16 * 1024)  # the journal soon outgrows it
        for payload in big[:20]:
            post(port, payload)
        failing = wait_until(lambda: (s := status(place))["write_error"] and s["total_events"] == 7 + 20 and s,
                             timeout=WAIT, interval=0.2)
        assert failing["unsaved_sessions"] == 1
        assert failing["unjournaled_events"] > 0
        human = aggregate(place, "status").stdout
        assert "Cannot write: " in human and "kept in memory, retried every 2 s" in human
        assert first_file.read_bytes() == first_bytes  # what was saved before is untouched

        _fsize_limit(writer.pid, resource.RLIM_INFINITY)
        wait_until(lambda: status(place)["write_error"] is None, timeout=WAIT, interval=0.2)
        assert status(place)["unsaved_sessions"] == 0 and status(place)["unjournaled_events"] == 0
        for payload in big[20:]:
            post(port, payload)
        wait_until(lambda: status(place)["total_events"] == 7 + len(big), timeout=WAIT, interval=0.2)
        _, err = stop(place, writer)
    finally:
        finish(writer)
    assert err.count("kept in memory, will retry") == 1  # one clear line, not one per event
    assert "works again" in err
    sessions = saved_sessions(place["activity"])
    assert seqs(sessions[fb.RAW_SESSION_ID]) == list(range(len(big)))
    assert seqs(sessions["a1b2c3d4-0000-4000-8000-00000000000a"]) == list(range(7))
    assert first_file.read_bytes() == first_bytes


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions (the disk-full test covers root;"
                    " `unshare --user python -m pytest ...` runs this one without root's privileges)")
def test_read_only_activity_directory_keeps_events_and_saves_them_once_writable(place):
    """Guarantee: an activity directory made read-only while capturing (a new session's journal
    cannot be created): one clear error, events kept in memory and retried, files already saved
    untouched; once it is writable again every event is saved exactly once, in order."""
    port = free_port()
    first = hook_payloads("a1b2c3d4-0000-4000-8000-00000000000a", count=5)
    events = hook_payloads(count=20)
    writer = start_foreground(place, "--serve", "--port", str(port))
    try:
        wait_running(place, writer)
        for payload in first:
            post(port, payload)
        [first_journal] = place["activity"].glob("*.journal.jsonl")
        first_bytes = first_journal.read_bytes()
        place["activity"].chmod(0o555)
        try:
            for payload in events[:12]:
                post(port, payload)  # the 202 comes after the aggregator tried to journal it
            assert list(place["activity"].glob("*.journal.jsonl")) == [first_journal]
            # The status file cannot be written either: `status` shows the last one and its age.
        finally:
            place["activity"].chmod(0o755)
        wait_until(lambda: journal_lines(place) == 5 + 12, timeout=WAIT, interval=0.2)
        assert first_journal.read_bytes() == first_bytes
        wait_until(lambda: status(place)["write_error"] is None, timeout=WAIT, interval=0.2)
        for payload in events[12:]:
            post(port, payload)
        wait_until(lambda: status(place)["total_events"] == 5 + 20, timeout=WAIT, interval=0.2)
        _, err = stop(place, writer)
    finally:
        finish(writer)
    assert err.count("kept in memory, will retry") == 1 and "works again" in err
    sessions = saved_sessions(place["activity"])
    assert seqs(sessions[fb.RAW_SESSION_ID]) == list(range(20))
    assert seqs(sessions["a1b2c3d4-0000-4000-8000-00000000000a"]) == list(range(5))


# --- corrupt files ----------------------------------------------------------------------------


def _journal(session_id: str, events: list[dict], *, file: str) -> list[bytes]:
    header = {"kind": "header", "session_id": session_id, "start_time": "2026-03-14T09:30:00+00:00",
              "file": file, "metadata": {}, "working_directory": "/work/app"}
    lines = [json.dumps(header).encode()]
    for n, payload in enumerate(events):
        lines.append(json.dumps({"kind": "event", "event_id": f"{session_id[:4]}-{n}", "session_id": session_id,
                                 "event_type": payload["hook_event_name"], "category": "meta",
                                 "timestamp": f"2026-03-14T09:30:{n:02d}+00:00", "data": payload}).encode())
    return lines


def test_corrupt_journals_and_session_files_keep_what_is_readable(place):
    """Guarantee: truncated, garbage and empty session files and journals never stop listing,
    viewing, export or start-up. A journal with garbage lines and a torn last line is recovered
    with every readable event and the skipped lines are reported; a journal without a header
    or an empty one is reported and left for the user; `view` of a corrupt file is one line."""
    result = aggregate(place, "ingest", str(Path(__file__).parent / "fixtures" / "raw_hooks_session.jsonl"))
    assert result.returncode == 0, result.stderr
    activity = place["activity"]
    [good] = activity.glob("session_*.json")
    good_data = json.loads(good.read_text())
    (activity / "session_trunc000_20260314_093000.json").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (activity / "session_garbage0_20260314_093000.json").write_bytes(b"\x00\xffnot json at all\n")
    (activity / "session_empty000_20260314_093000.json").write_bytes(b"")

    damaged_id = "d4m4g3d0-1111-4222-8333-444455556666"
    lines = _journal(damaged_id, hook_payloads(damaged_id, count=6), file="session_d4m4g3d0_20260314_093000.json")
    lines.insert(3, b"{this is not json")
    lines.insert(5, b"\x80\x81 invalid utf-8 \xfe")
    torn = lines[-1][: len(lines[-1]) // 2]
    (activity / "session_d4m4g3d0_20260314_093000.journal.jsonl").write_bytes(b"\n".join(lines[:-1]) + b"\n" + torn)
    headless = _journal("h3adl3ss-0000", hook_payloads("h3adl3ss-0000", count=2), file="x.json")[1:]
    (activity / "session_h3adl3ss_20260314_093000.journal.jsonl").write_bytes(b"\n".join(headless) + b"\n")
    (activity / "session_emptyjnl_20260314_093000.journal.jsonl").write_bytes(b"")

    listing = aggregate(place, "sessions", "--json")
    assert listing.returncode == 0, listing.stderr
    listed = {row["session_id"]: row for row in json.loads(listing.stdout)}
    assert set(listed) == {good_data["session_id"], damaged_id}
    for name in ("session_trunc000", "session_garbage0", "session_empty000", "session_h3adl3ss", "session_emptyjnl"):
        assert name in listing.stderr  # each problem is reported, none is fatal

    viewed = aggregate(place, "view", good_data["session_id"][:8])
    assert viewed.returncode == 0 and good_data["session_id"] in viewed.stdout
    for corrupt in ("session_trunc000_20260314_093000.json", "session_garbage0_20260314_093000.json",
                    "session_empty000_20260314_093000.json"):
        bad = aggregate(place, "view", str(activity / corrupt))
        assert bad.returncode == 1 and bad.stdout == "" and "Traceback" not in bad.stderr
        # One error line about this file; any other line is the one-line warning each corrupt file gets.
        errors = [line for line in bad.stderr.splitlines() if line.startswith("aggregate: error: ")]
        assert len(errors) == 1 and corrupt in errors[0], bad.stderr
        assert all(line.startswith(("aggregate: error: ", "aggregate: warning: skipping "))
                   for line in bad.stderr.splitlines())

    writer = start_foreground(place, "--serve", "--port", str(free_port()))
    try:
        current = wait_running(place, writer)
        out, err = stop(place, writer)
    finally:
        finish(writer)
    assert current["recovered_sessions"] == 1 and current["recovered_events"] == 5
    assert current["recovery_unreadable_lines"] == 3  # two garbage lines and the torn last one
    assert f"Recovered session {damaged_id} (5 events)" in out and "(3 unreadable lines skipped)" in out
    [recovered_file] = activity.glob("session_d4m4g3d0_*.json")
    recovered = json.loads(recovered_file.read_text())
    assert recovered["status"] == "recovered" and [e["data"]["fault_seq"] for e in recovered["events"]] == list(range(5))
    assert recovered["metrics"]["dropped_events"] == 3
    # What cannot be read is left where it was, for the user to look at.
    for name in ("session_h3adl3ss_20260314_093000.journal.jsonl", "session_emptyjnl_20260314_093000.journal.jsonl",
                 "session_trunc000_20260314_093000.json", "session_garbage0_20260314_093000.json"):
        assert (activity / name).exists()
    assert json.loads(good.read_text()) == good_data


# --- two aggregators ---------------------------------------------------------------------------


def test_two_aggregators_on_one_directory_the_second_is_refused_and_nothing_is_written_twice(place):
    """Guarantee: one writer per activity directory. A second `aggregate start` (foreground or
    --daemon) or `aggregate ingest` on the same directory exits 1 with one line naming the first
    one's pid and writes nothing; `aggregate status` names the running one; once the first
    stops, the directory is free again."""
    port = free_port()
    events = hook_payloads(count=10)
    first = start_foreground(place, "--serve", "--port", str(port))
    try:
        wait_running(place, first)
        for payload in events[:5]:
            post(port, payload)
        for args in (("start", "--serve", "--port", str(free_port())),
                     ("start", "--daemon", "--serve", "--port", str(free_port())),
                     ("ingest", str(Path(__file__).parent / "fixtures" / "raw_hooks_session.jsonl"))):
            second = aggregate(place, *args)
            assert second.returncode == 1, (args, second.stdout, second.stderr)
            assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
            assert "already used by another aggregator" in second.stderr and f"pid {first.pid}" in second.stderr
        assert status(place)["pid"] == first.pid
        for payload in events[5:]:
            post(port, payload)
        wait_until(lambda: status(place)["total_events"] == 10, timeout=WAIT, interval=0.2)
        stop(place, first)
    finally:
        finish(first)
    [session] = saved_sessions(place["activity"]).values()
    assert seqs(session) == list(range(10))

    again = start_foreground(place, "--serve", "--port", str(free_port()))
    try:
        assert wait_running(place, again)["pid"] == again.pid
        stop(place, again)
    finally:
        finish(again)


# --- a burst from one client ------------------------------------------------------------------

HEARTBEAT = "1,2"  # Engine.IO ping every 1 s, 2 s to answer: what the defaults (25 s, 60 s) show in minutes
BURST = 10_000  # events: ~6 s of work for the aggregator on 2 shared cores, far past one heartbeat


def mpm_burst(count: int) -> list[tuple[str, dict]]:
    """``count`` claude-mpm Socket.IO emissions (event name, envelope), one session per 33, each
    numbered with ``fault_seq`` in its data."""
    out: list[tuple[str, dict]] = []
    n = 0
    while len(out) < count:
        session = fb.claude_mpm_session(fb.det_uuid("burst", n), f"/home/dev/projects/burst-{n}",
                                        include_non_session=False)
        for name, payload in session[: count - len(out)]:
            payload["data"]["fault_seq"] = len(out)
            out.append((name, payload))
        n += 1
    return out


def emit_burst(port: int, stream: list[tuple[str, dict]]) -> list[Any]:
    """What claude-mpm's Socket.IO path does, as fast as it can: connect, emit every event at once
    (python-socketio queues them all), stay until the hub has relayed them all (or the connection
    dropped); returns the disconnect reasons seen (none, if the connection held)."""
    import asyncio

    import socketio

    async def run() -> list[Any]:
        client = socketio.AsyncClient(reconnection=False)
        dropped: list[Any] = []
        client.on("disconnect", lambda *reason: dropped.append(reason or ("?",)))
        await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"], wait_timeout=WAIT)
        for name, payload in stream:
            await client.emit(name, payload)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 4 * WAIT
        while not dropped and await asyncio.to_thread(relayed, port) < len(stream):
            assert loop.time() < deadline, "the hub did not relay the burst in time"
            await asyncio.sleep(0.2)
        if not dropped:
            await client.disconnect()
            dropped.clear()  # our own goodbye
        return dropped

    return asyncio.run(run())


def assert_burst_saved(place: dict, count: int) -> None:
    """Every event of the burst saved exactly once, each session's in the order emitted."""
    found: list[int] = []
    for session in saved_sessions(place["activity"]).values():
        numbers = seqs(session)
        assert numbers == sorted(numbers), f"session {session['session_id']} out of order"
        found += numbers
    assert len(found) == len(set(found)), "an event was saved twice"
    missing = sorted(set(range(count)) - set(found))
    assert not missing, f"{len(missing)} of {count} events lost (first {missing[:5]})"
    assert len(found) == count


def test_burst_over_socketio_is_slowed_not_dropped_and_every_event_is_saved_once(place):
    """Guarantee: a client emitting events as fast as it can over Socket.IO (claude-mpm's legacy
    path: 10,000 at once here) is slowed down, never disconnected, and every event is saved exactly
    once. The hub handles one client's events in order and waits for room in the aggregator's
    feed, so TCP slows the sender; the client's PONG, queued behind its own burst, is not needed
    while its events keep arriving. With a short heartbeat the old hub (a task per event on the
    loop) dropped the connection within seconds and lost about half the burst."""
    place["env"]["AGGREGATE_HUB_HEARTBEAT"] = HEARTBEAT
    port = free_port()
    stream = mpm_burst(BURST)
    writer = start_foreground(place, "--serve", "--port", str(port))
    try:
        wait_running(place, writer)
        dropped = emit_burst(port, stream)
        assert dropped == [], f"the hub dropped the client: {dropped}"
        current = wait_until(lambda: (s := status(place))["total_events"] == BURST and s, timeout=WAIT, interval=0.2)
        assert current["feed"]["high_water"] <= current["feed"]["capacity"]  # the hub held no more than that
        stop(place, writer)
    finally:
        finish(writer)
    assert_burst_saved(place, BURST)
    assert not list(place["activity"].glob("*.journal.jsonl"))


def test_a_slow_follower_does_not_hold_up_or_drop_the_writers_burst(place):
    """Guarantee: a follower (a TUI following the writer's hub) that reads far slower than events
    arrive does not slow the writer or make it drop anything: the hub queues what the follower has
    not read yet and never waits for it. The follower itself may be timed out by the heartbeat and
    reconnect (it then replays the hub's history; what is older comes from the saved files)."""
    import asyncio
    import time

    import socketio

    place["env"]["AGGREGATE_HUB_HEARTBEAT"] = HEARTBEAT
    port = free_port()
    count = BURST // 2
    stream = mpm_burst(count)
    heard: list[int] = []
    ready, finished = threading.Event(), threading.Event()

    def follow() -> None:
        async def run() -> None:
            client = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2)

            @client.on("*")
            def slow(event: str, data: Any = None) -> None:
                if isinstance(data, dict) and isinstance(data.get("data"), dict):
                    heard.append(data["data"].get("fault_seq", -1))
                time.sleep(0.005)  # a busy UI thread: ~200 events/s at most

            await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"], wait_timeout=WAIT)
            ready.set()
            await asyncio.to_thread(finished.wait)
            await client.disconnect()

        asyncio.run(run())

    writer = start_foreground(place, "--serve", "--port", str(port))
    follower = threading.Thread(target=follow, daemon=True)
    try:
        wait_running(place, writer)
        follower.start()
        assert ready.wait(WAIT)
        dropped = emit_burst(port, stream)
        assert dropped == [], f"the hub dropped the writer's client: {dropped}"
        wait_until(lambda: status(place)["total_events"] == count, timeout=WAIT, interval=0.2)
        assert len(set(heard)) < count  # the follower really was behind when the writer was done
        stop(place, writer)
    finally:
        finished.set()
        finish(writer)
        follower.join(WAIT)
    assert_burst_saved(place, count)
