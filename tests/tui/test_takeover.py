"""A following TUI takes over as the writer when the writer goes away (SIGTERM, SIGKILL).

Real processes and files: ``aggregate start --serve`` runs as a subprocess on an
ephemeral port with the test's activity directory; the app runs headless against
the same directory and port, so it follows. Events go in by HTTP POST and by
``aggregate hook`` (spooled while no hub runs). Killing the writer and firing the
hook are blocking calls: the app's loop (and so its takeover) cannot run in
between, which is what makes "spooled while no hub runs" certain. Waits poll
for a state with generous bounds; nothing asserts on time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from conftest import ACTIVITY, SIZE, config, feed, stamped_raw, wait_for
from test_app import free_port, post, shown, table, timeline

import fixtures_builder as fb
from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.model import ACTIVE
from agent_aggregator.runtime import read_status_file
from agent_aggregator.store import SessionStore
from agent_aggregator.takeover import take_over
from agent_aggregator.tracker import rebuild_session
from agent_aggregator.tui.app import AggregateApp
from agent_aggregator.tui.screens.live import StatusBar, cursor_key
from agent_aggregator.tui.viewstate import FOLLOWER, WRITER

WAIT = 60.0  # seconds any wait may take before the test fails (shared, noisy machine)
SESSION = fb.RAW_SESSION_ID


def payloads(count: int) -> list[dict]:
    """The fixtures' raw hook session without its SessionEnd (it stays open), numbered ``seq``,
    stamped with fixed event ids (as the hook stamps them)."""
    base = [payload for _, payload in fb.raw_hook_session() if payload["hook_event_name"] != "SessionEnd"]
    return [{**base[seq % len(base)], "seq": seq, "event_id": fb.det_hex(32, "takeover", seq)} for seq in range(count)]


def environment(workdir: Path) -> dict[str, str]:
    """The tests' environment (its spool dir, its hostname), own HOME, none of the machine's settings."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("CLAUDE_MPM_") or key == "CLAUDE_MPM_AGGREGATOR_HOSTNAME"}
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    return env


def start_writer(workdir: Path, port: int) -> subprocess.Popen:
    """``aggregate start --serve`` on ``port`` writing the test's activity directory; returned running."""
    log = (workdir / f"writer-{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_aggregator", "start", "--serve", "--port", str(port),
         "--save-dir", str((workdir / ACTIVITY).absolute())],
        cwd=workdir, env=environment(workdir), stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline_wait(lambda: running_pid() == process.pid, process)
    return process


def deadline_wait(condition, process: subprocess.Popen | None = None) -> None:
    """Blocking bounded poll (the app's loop does not run meanwhile)."""
    import time

    deadline = time.monotonic() + WAIT
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"aggregate start exited early ({process.returncode})")
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        time.sleep(0.05)


def running_pid() -> int | None:
    """The pid of the running aggregator the status file names (None if none)."""
    status = read_status_file(ACTIVITY)
    return status.get("pid") if status and status.get("running") else None


def fire_hook(workdir: Path, port: int, payload: dict) -> None:
    """What Claude Code does for one hook event: ``aggregate hook`` with the payload on stdin."""
    result = subprocess.run([sys.executable, "-m", "agent_aggregator", "hook", "--port", str(port)],
                            input=json.dumps(payload), cwd=workdir, env=environment(workdir),
                            capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 0, result.stderr


def spooled(workdir: Path) -> list[dict]:
    spool = workdir / "spool"
    lines: list[dict] = []
    for path in sorted(spool.glob("hooks*")) if spool.is_dir() else []:
        lines.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return lines


def status_line(app: AggregateApp) -> str:
    return str(app.live_screen.query_one(StatusBar).render())


def held_seqs(app: AggregateApp) -> list[int]:
    """``seq`` of the session's events as the app's aggregator holds them now (live only)."""
    aggregator = app.aggregator
    if aggregator is None:
        return []
    with aggregator.lock:
        session = aggregator.tracker.sessions.get(SESSION)
        return [event.data["seq"] for event in session.events] if session is not None else []


def saved_seqs() -> tuple[str, list[int]]:
    """The saved session's status and its events' ``seq``, in saved order."""
    store = SessionStore(ACTIVITY, rebuild=rebuild_session)
    session = store.load(SESSION)
    return session.status, [event.data["seq"] for event in session.events if "seq" in event.data]


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(WAIT)


def cleanup(apps: list[AggregateApp], writer: subprocess.Popen) -> None:
    """Stop every app's capture (a failed test too: before the test's working directory is left)."""
    for app in apps:
        app.stop_ingest()
    stop_process(writer)


async def _takes_over(workdir: Path, sig: signal.Signals) -> None:
    port = free_port()
    events = payloads(30)
    apps: list[AggregateApp] = []
    writer = start_writer(workdir, port)
    try:
        for payload in events[:10]:
            post(port, "/events", payload)
        app = AggregateApp(config(dashboard_port=port))
        apps.append(app)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.mode == FOLLOWER, pilot, WAIT)
            assert app.follow_pid == writer.pid and not app.aggregator.writes
            await wait_for(lambda: shown(app) == SESSION and timeline(app).total_count == 10, pilot, WAIT)
            for payload in events[10:20]:
                post(port, "/events", payload)
            await wait_for(lambda: held_seqs(app) == list(range(20)) and timeline(app).total_count == 20, pilot, WAIT)
            assert app.live_screen.selected_id == SESSION
            await pilot.press("2", "up", "up", "up")  # the user reads an earlier event: follow off
            await wait_for(lambda: not timeline(app).follow and timeline(app).selected is not None, pilot, WAIT)
            reading = timeline(app).selected.event_id
            assert reading != events[19]["event_id"]

            # Blocking from here to the hook: the app cannot take over in between.
            writer.send_signal(sig)
            writer.wait(WAIT)
            fire_hook(workdir, port, events[20])  # no hub answers: spooled
            assert [line["body"]["seq"] for line in spooled(workdir)] == [20]

            await wait_for(lambda: app.mode == WRITER, pilot, WAIT)
            assert app.aggregator.writes and app.store.writer_pid() == os.getpid()
            await wait_for(lambda: running_pid() == os.getpid(), pilot, WAIT)
            assert any(f"pid {writer.pid} exited: this window now captures" in str(note.message)
                       for note in app._notifications)
            # the spooled event is drained by this process's hub into the resumed session
            await wait_for(lambda: spooled(workdir) == [] and held_seqs(app) == list(range(21)), pilot, WAIT)
            for payload in events[21:]:
                post(port, "/events", payload)
            await wait_for(lambda: held_seqs(app) == list(range(30)), pilot, WAIT)
            await wait_for(lambda: shown(app) == SESSION and timeline(app).total_count == 30, pilot, WAIT)
            # what was on screen is still there: the same session selected, the cursor on its row,
            # the timeline's cursor on the event the user was reading
            assert app.live_screen.selected_id == SESSION
            assert cursor_key(table(app, "sessions")) == SESSION
            assert timeline(app).selected.event_id == reading and not timeline(app).follow
            assert f"serving on 127.0.0.1:{port}" in app.status_info().connection
            await wait_for(lambda: f"took over from pid {writer.pid}" in status_line(app), pilot, WAIT)
            await pilot.press("q")
            await wait_for(lambda: not app.is_running, pilot, WAIT)
    finally:
        cleanup(apps, writer)
    status, seqs = saved_seqs()
    assert seqs == list(range(30)), "every event saved once, in order"
    assert status != ACTIVE
    assert running_pid() is None and not list((workdir / ACTIVITY).glob("*.journal.jsonl"))


async def test_takes_over_when_the_writer_is_stopped(workdir):
    """SIGTERM (``aggregate stop``, Ctrl+C): the writer saves and lets go; this window writes on."""
    await _takes_over(workdir, signal.SIGTERM)


async def test_takes_over_when_the_writer_is_killed(workdir):
    """SIGKILL: the writer's journal is recovered by this window, which then writes on."""
    await _takes_over(workdir, signal.SIGKILL)


async def test_two_followers_exactly_one_takes_over_and_the_other_follows_it(workdir):
    """Two windows follow one writer; it is killed: the lock lets one win, the other follows the winner."""
    port = free_port()
    events = payloads(12)
    writer = start_writer(workdir, port)
    first, second = AggregateApp(config(dashboard_port=port)), AggregateApp(config(dashboard_port=port))
    try:
        for payload in events[:4]:
            post(port, "/events", payload)
        async with first.run_test(size=SIZE) as pilot, second.run_test(size=SIZE) as second_pilot:
            pilots = {id(first): pilot, id(second): second_pilot}
            await wait_for(lambda: first.mode == FOLLOWER and second.mode == FOLLOWER, pilot, WAIT)
            await wait_for(lambda: held_seqs(first) == held_seqs(second) == list(range(4)), pilot, WAIT)
            writer.kill()
            writer.wait(WAIT)
            apps = (first, second)
            # the loser is a FOLLOWER all along: done once it follows the winner (this process), not the dead pid
            await wait_for(lambda: sorted(app.mode for app in apps) == [FOLLOWER, WRITER]
                           and all(app.mode == WRITER or app.follow_pid == os.getpid() for app in apps)
                           and all(app._ingest_done.is_set() for app in apps), pilot, WAIT)
            [winner] = [app for app in apps if app.mode == WRITER]
            [loser] = [app for app in apps if app.mode == FOLLOWER]
            assert winner.store.is_writer and not loser.store.is_writer and not loser.aggregator.writes
            assert loser.follow_pid == os.getpid() == running_pid()  # both windows are this process
            assert loser.aggregator.running
            for payload in events[4:]:
                post(port, "/events", payload)
            # the winner saves them; the follower hears them through the winner's hub
            await wait_for(lambda: held_seqs(winner) == list(range(12)), pilot, WAIT)
            await wait_for(lambda: held_seqs(loser) == list(range(12)), pilot, WAIT)
            for app in (loser, winner):
                await pilots[id(app)].press("q")
                await wait_for(lambda: not app.is_running, pilots[id(app)], WAIT)
    finally:
        cleanup([first, second], writer)
    status, seqs = saved_seqs()
    assert seqs == list(range(12)) and status != ACTIVE


def test_take_over_races_one_winner_the_others_follow(workdir):
    """``take_over`` from three threads at once (three followers, no UI): one writes, two follow it."""
    port = free_port()
    writer = start_writer(workdir, port)
    followers: list[EventAggregator] = []
    results: list = [None] * 3  # a Handover per follower
    try:
        for payload in payloads(3):
            post(port, "/events", payload)
        for _ in range(len(results)):
            follower = EventAggregator(config=config(dashboard_port=port))
            follower.start(connect=True, write=False)
            followers.append(follower)
        gone = writer.pid
        writer.kill()
        writer.wait(WAIT)
        barrier = threading.Barrier(len(followers))

        def race(index: int) -> None:
            barrier.wait()
            results[index] = take_over(followers[index], followers[index].config, gone)

        threads = [threading.Thread(target=race, args=(index,)) for index in range(len(followers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 2)
        assert all(result is not None for result in results)
        winners = [result for result in results if result.writes]
        assert len(winners) == 1 and winners[0].aggregator.store.is_writer
        for result in results:
            assert result.gone_pid == gone and result.aggregator.running
            if not result.writes:
                assert result.writer_pid == os.getpid() and not result.aggregator.store.is_writer
        assert running_pid() == os.getpid()
        post(port, "/events", payloads(4)[3])
        def events_held(aggregator: EventAggregator) -> int:
            with aggregator.lock:
                session = aggregator.tracker.sessions.get(SESSION)
                return len(session.events) if session is not None else -1

        # the winner resumed the recovered session; the followers add the event to the 3 they held
        deadline_wait(lambda: [events_held(result.aggregator) for result in results] == [4, 4, 4])
        # the losers kept their followers (same address), with every event they had
        assert sum(result.aggregator in followers for result in results) == 2
    finally:
        for aggregator in followers + [result.aggregator for result in results if result is not None]:
            aggregator.stop()
        stop_process(writer)
    status, seqs = saved_seqs()
    assert seqs == [0, 1, 2, 3]


def test_events_only_the_follower_heard_are_saved_by_the_new_writer(workdir):
    """The writer dies with events its hub relayed but never journaled: the follower's copies
    are given to the new writer (by event id, so nothing is doubled) after the journal is recovered."""
    port = free_port()
    settings = config(dashboard_port=port)
    stream = stamped_raw(fb.raw_hook_session(), SESSION)[:-1]  # SessionEnd left out: open
    dead = EventAggregator(config=settings)
    dead.start(connect=False)
    follower = EventAggregator(config=settings)
    handover = None
    try:
        feed(dead, stream[:10])
        follower.start(connect=False, write=False)  # adopts the 10 events from the journal
        feed(follower, stream[10:13])  # heard through the hub; the writer never wrote them
        dead.store.release()  # the writer is gone: lock free, its journal left behind
        handover = take_over(follower, settings, 12345)
        assert handover.writes and handover.gone_pid == 12345 and not follower.running
        assert handover.carried == 3 and handover.aggregator.recovered[0].events == 10
        assert running_pid() == os.getpid()
    finally:
        if handover is not None:
            handover.aggregator.stop()
        follower.stop()
        dead.stop()
    saved = SessionStore(ACTIVITY, rebuild=rebuild_session).load(SESSION)
    assert [event.event_id for event in saved.events] == [payload["event_id"] for _, payload in stream[:13]]
