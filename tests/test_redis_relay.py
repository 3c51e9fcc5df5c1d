"""Across machines (issue 10): hubs relaying through a real ``redis-server`` on loopback.

Every test that needs Redis starts its own ``redis-server`` on an ephemeral port in a
temporary directory (no persistence) and skips, saying why, when the program is
absent (a developer machine without it; CI installs it, see ``.ci/run``). Two
"machines" are two hubs (and their hooks) with distinct hostname overrides
(``$CLAUDE_MPM_AGGREGATOR_HOSTNAME`` / ``Hub(hostname=...)``) and spool directories.
No timed assertions: waits poll a condition and only give up after a generous limit.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any, Callable

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402
from test_hub import Client as HubClient  # noqa: E402 - one recording Socket.IO client
from test_hub import eventually as hub_eventually  # noqa: E402

from agent_aggregator import hook  # noqa: E402
from agent_aggregator.aggregator import EventAggregator  # noqa: E402
from agent_aggregator.cli import main  # noqa: E402
from agent_aggregator.config import Config, load_config  # noqa: E402
from agent_aggregator.errors import ConfigError  # noqa: E402
from agent_aggregator.machine import HOSTNAME_VARIABLE, hostname  # noqa: E402
from agent_aggregator.sources.hub import Hub  # noqa: E402
from agent_aggregator.sources.relay import describe_queue  # noqa: E402

REDIS = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (CI installs it: .ci/run)")
WAIT = 60.0  # seconds before a wait gives up: a failure guard, not a measurement
HOOK_TIMEOUT = "5"  # seconds; the default 0.5 s could spool (and resend) on a loaded machine


# --- helpers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


eventually = partial(hub_eventually, timeout=WAIT)


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1: no persistence, restartable on the same port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        assert REDIS is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, f"redis-server on port {self.port}")
        return self

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


@pytest.fixture()
def redis(tmp_path: Path):
    if REDIS is None:
        pytest.skip("redis-server is not installed (CI installs it: .ci/run)")
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def no_hostname_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each hub stamps the machine name it is given, not one from the environment (the spool
    is private already: tests/conftest.py)."""
    monkeypatch.delenv(HOSTNAME_VARIABLE, raising=False)


class Client(HubClient):
    """test_hub's recording client, with what these tests read of it."""

    wait = WAIT  # a hub here may first reach Redis

    def history(self) -> list[Any]:
        return [item for name, data in self.received if name == "event_history" for item in data["events"]]

    def ids(self) -> list[str]:
        return [data["event_id"] for name, data in self.received if name == "claude_event"]


async def post(url: str, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/events", json=body) as response:
            assert response.status == 202


def marker(session: str, index: int, machine: str) -> dict[str, Any]:
    return {"session_id": session, "hook_event_name": "Notification", "message": f"{machine} {index}",
            "event_id": f"{machine}-{session}-{index}", "cwd": f"/work/{machine}"}


def hubs(redis: RedisServer, tmp_path: Path, **options: Any) -> tuple[Hub, Hub]:
    first = Hub("127.0.0.1", 0, spool_directory=tmp_path / "spool-a", hostname="machine-a",
                message_queue=redis.url, **options)
    second = Hub("127.0.0.1", 0, spool_directory=tmp_path / "spool-b", hostname="machine-b",
                 message_queue=redis.url, **options)
    return first, second


async def started(*hubs_: Hub) -> None:
    for each in hubs_:
        await each.start()
    for each in hubs_:
        assert each.queue is not None
        await eventually(lambda each=each: each.queue.connected, "the hub to reach Redis")


# --- configuration and stamping (no Redis needed) -------------------------------------------


def test_message_queue_setting_is_checked_once_with_one_clear_line(tmp_path: Path, capsys) -> None:
    for good in ("redis://127.0.0.1:6379/0", "redis://redis.internal", "rediss://user:pw@host:6380/2",
                 "unix:///run/redis/redis.sock"):
        assert load_config(tmp_path, environ={"CLAUDE_MPM_AGGREGATOR_MESSAGE_QUEUE": good},
                           user_config=tmp_path / "none.yaml").message_queue == good
    assert load_config(tmp_path, environ={}, user_config=tmp_path / "none.yaml").message_queue is None
    for bad in ("localhost:6379", "http://host:6379/0", "redis://:6379/0", "redis://host:99999/0", "redis://h/db"):
        with pytest.raises(ConfigError, match="message_queue: expected redis://HOST:PORT/N"):
            load_config(tmp_path, environ={"CLAUDE_MPM_AGGREGATOR_MESSAGE_QUEUE": bad},
                        user_config=tmp_path / "none.yaml")
    project = tmp_path / "project"
    (project / ".claude-mpm").mkdir(parents=True)
    (project / ".claude-mpm" / "configuration.yaml").write_text(
        "event_aggregator:\n  message_queue: redis://10.0.0.5:6379/1\n")
    assert load_config(project, environ={}, user_config=tmp_path / "none.yaml").message_queue == "redis://10.0.0.5:6379/1"

    assert main(["serve", "--message-queue", "not-a-url", "--port", "0"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "message_queue: expected redis://HOST:PORT/N" in err and "Traceback" not in err
    assert describe_queue("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    # A refused URL is quoted in the error, its password never: a typo must not print a real secret.
    for bad in ("redis://user:s3cret@host:notaport/0", "http://:s3cret@host/0"):
        assert main(["serve", "--message-queue", bad, "--port", "0"]) != 0
        err = capsys.readouterr().err
        assert "s3cret" not in err and ":***@host" in err
    assert main(["start", "--sse", "ftp://u:s3cret@host/x"]) != 0
    err = capsys.readouterr().err
    assert "s3cret" not in err and "u:***@host" in err and err.count("\n") == 1
    assert describe_queue("redis://h:6379/0") == "redis://h:6379/0"


def test_the_hostname_override_is_not_a_setting_and_is_never_warned_about(tmp_path: Path, caplog) -> None:
    environ = {HOSTNAME_VARIABLE: "ci-runner-7"}
    config = load_config(tmp_path, environ=environ, user_config=tmp_path / "none.yaml")
    assert "environment" not in config.sources
    assert not [r for r in caplog.records if HOSTNAME_VARIABLE in r.getMessage()]
    assert hostname(environ) == "ci-runner-7"
    assert hostname({HOSTNAME_VARIABLE: "  "}) == socket.gethostname()


def test_the_hook_stamps_its_machine_and_keeps_one_already_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOSTNAME_VARIABLE, 'lab "7"\\x\tbox')
    event, body = hook.stamp(b'{"session_id": "s", "hook_event_name": "Stop"}')
    assert event["hostname"] == 'lab "7"\\x\tbox'
    assert json.loads(body) == event
    event, body = hook.stamp(b'{"hostname": "elsewhere", "session_id": "s"}')
    assert event["hostname"] == "elsewhere" and json.loads(body) == event
    monkeypatch.delenv(HOSTNAME_VARIABLE)
    assert hook.stamp(b"{}")[0]["hostname"] == socket.gethostname()


def test_sessions_are_tagged_with_the_machine_of_their_first_event(tmp_path: Path) -> None:
    aggregator = EventAggregator(config=Config(activity_directory=tmp_path / "activity"))
    aggregator.start(connect=False)
    try:
        aggregator.handle_event({**marker("raw", 0, "m1"), "hostname": "laptop"})
        aggregator.handle_event({**marker("raw", 1, "m1"), "hostname": "other"})  # first event wins
        envelope = {"type": "hook", "subtype": "user_prompt", "session_id": "mpm", "hostname": "ci-runner",
                    "timestamp": "2026-03-14T10:05:00+00:00", "data": {"prompt": "hi"}}
        aggregator.handle_event(envelope, "claude_event")
        aggregator.handle_event({"namespace": "/", "event": "claude_event",
                                 "data": {**envelope, "session_id": "api", "hostname": "dev-box"}})
        aggregator.handle_event(marker("plain", 0, "m1"))  # no machine given: this one's
        hosts = {session_id: aggregator.get_session(session_id).metadata["hostname"]
                 for session_id in ("raw", "mpm", "api", "plain")}
    finally:
        aggregator.stop()
    assert hosts == {"raw": "laptop", "mpm": "ci-runner", "api": "dev-box", "plain": socket.gethostname()}
    listed = {row.session_id: row.hostname for row in aggregator.store.list_sessions()}
    assert listed == hosts
    saved = {json.loads(p.read_text())["session_id"]: json.loads(p.read_text())
             for p in (tmp_path / "activity").glob("session_*.json")}
    assert saved["mpm"]["events"][0]["data"]["hostname"] == "ci-runner"


# --- two hubs, one Redis, in this process ---------------------------------------------------


@needs_redis
def test_every_event_reaches_every_hubs_clients_and_listeners_once(redis: RedisServer, tmp_path: Path) -> None:
    async def body() -> None:
        first, second = hubs(redis, tmp_path)
        heard: dict[str, list[str]] = {"a": [], "b": []}
        first.add_listener(lambda name, payload: heard["a"].append(payload["event_id"]))
        second.add_listener(lambda name, payload: heard["b"].append(payload["event_id"]))
        await started(first, second)
        clients = []
        try:
            clients = [await Client().connect(first.url), await Client().connect(second.url)]
            published = first.stats["queue_published"]
            for index in range(5):
                await post(first.url, marker("sa", index, "a"))
                await post(second.url, marker("sb", index, "b"))
            await post(first.url, {"session_id": "sa", "hook_event_name": "Stop"})  # stamped by hub A
            everything = 11
            for client in clients:
                await eventually(lambda client=client: len(client.ids()) == everything, "all events at each client")
            await eventually(lambda: len(heard["a"]) == len(heard["b"]) == everything, "all events at each listener")
            # A late client on hub B catches up on hub A's events too (event_history fed from the queue).
            late = await Client().connect(second.url)
            clients.append(late)
            history_ids = [item["event_id"] for item in late.history()]
            # Addressed to one client, the history never went through Redis.
            assert first.stats["queue_published"] - published == 6
        finally:
            for client in clients:
                await client.sio.disconnect()
            await first.stop()
            await second.stop()
        for client in clients[:2]:
            assert sorted(client.ids()) == sorted(heard["a"]) and len(set(client.ids())) == everything
        assert sorted(heard["a"]) == sorted(heard["b"]) and len(set(heard["a"])) == everything
        assert sorted(history_ids) == sorted(heard["a"])
        stop = next(item for item in late.history() if item.get("hook_event_name") == "Stop")
        assert stop["hostname"] == "machine-a"  # the hub that took it tagged it, not the one that relayed it
        assert (first.stats["queue_received"], second.stats["queue_received"]) == (5, 6)
        assert first.stats["queue_duplicates"] == second.stats["queue_duplicates"] == 0

    asyncio.run(body())


@needs_redis
def test_while_redis_is_down_local_clients_keep_up_and_the_rest_follows_once(redis: RedisServer,
                                                                              tmp_path: Path) -> None:
    async def body() -> None:
        first, second = hubs(redis, tmp_path)
        await started(first, second)
        clients = []
        try:
            clients = [await Client().connect(first.url), await Client().connect(second.url)]
            on_a, on_b = clients
            await post(first.url, marker("sa", 0, "a"))
            await eventually(lambda: len(on_b.ids()) == 1, "the first event on hub B")

            redis.stop()
            await eventually(lambda: not first.queue.connected and not second.queue.connected, "both hubs to notice")
            for index in range(1, 6):
                await post(first.url, marker("sa", index, "a"))
                await post(second.url, marker("sb", index, "b"))
            # Each hub's own clients are served without Redis ...
            await eventually(lambda: len(on_a.ids()) == 6, "hub A's client to get A's events")
            await eventually(lambda: len(on_b.ids()) == 6, "hub B's client to get B's events")
            assert {i for i in on_a.ids() if i.startswith("b-")} == set()
            assert first.queue.pending >= 5  # ... and what the others need is kept

            redis.start()
            await eventually(lambda: len(on_a.ids()) == len(on_b.ids()) == 11, "everything everywhere")
            await eventually(lambda: first.queue.pending == second.queue.pending == 0, "outboxes flushed")
            await asyncio.sleep(1.0)  # a late resync would show up as a second copy below
        finally:
            for client in clients:
                await client.sio.disconnect()
            await first.stop()
            await second.stop()
        for client in clients:
            assert len(client.ids()) == len(set(client.ids())) == 11
        assert first.stats["queue_errors"] > 0 and first.stats["queue_connected"] == 0  # stopped

    asyncio.run(body())


@needs_redis
def test_a_hub_that_subscribes_late_gets_what_was_published_before_it_listened(redis: RedisServer,
                                                                               tmp_path: Path) -> None:
    """Pub/sub keeps nothing: what hub A published while hub B was not subscribed (B starting,
    or resubscribing after Redis came back) reaches B only because B asks for it on subscribe."""

    async def body() -> None:
        first, second = hubs(redis, tmp_path)
        heard: list[str] = []
        second.add_listener(lambda name, payload: heard.append(payload["event_id"]))
        await started(first)
        try:
            for index in range(3):
                await post(first.url, marker("early", index, "a"))
            await eventually(lambda: first.queue.pending == 0, "hub A to publish to nobody")
            assert first.stats["queue_published"] == 3
            await started(second)
            await eventually(lambda: len(heard) == 3, "hub B to catch up on hub A's events")
            await post(first.url, marker("early", 3, "a"))
            await eventually(lambda: len(heard) == 4, "the next live event")
            late = await Client().connect(second.url)
            await late.sio.disconnect()
            await asyncio.sleep(1.0)  # a second resync reply would show up as a duplicate below
        finally:
            await first.stop()
            await second.stop()
        assert sorted(heard) == [f"a-early-{index}" for index in range(4)]
        assert sorted(item["event_id"] for item in late.history()) == sorted(heard)

    asyncio.run(body())


def test_a_hub_whose_redis_never_answers_still_serves_its_own_clients(tmp_path: Path) -> None:
    async def body() -> None:
        hub = Hub("127.0.0.1", 0, spool_directory=tmp_path / "spool", hostname="solo",
                  message_queue=f"redis://127.0.0.1:{free_port()}/0")
        await hub.start()
        try:
            client = await Client().connect(hub.url)
            await post(hub.url, marker("s", 0, "solo"))
            await eventually(lambda: len(client.ids()) == 1, "the event at the local client")
            assert hub.queue is not None and not hub.queue.connected
            assert "unreachable" in hub.queue.describe()
            await client.sio.disconnect()
        finally:
            await hub.stop()
        assert hub.stats["events_relayed"] == 1 and hub.stats["queue_errors"] > 0

    asyncio.run(body())


@needs_redis
def test_an_aggregator_embedded_in_one_hub_captures_the_other_machines_sessions(redis: RedisServer,
                                                                                tmp_path: Path) -> None:
    """`aggregate start --message-queue URL` serving its own hub (no client connection at all)."""
    port = free_port()
    config = Config(activity_directory=tmp_path / "activity", dashboard_host="127.0.0.1", dashboard_port=port,
                    message_queue=redis.url)
    aggregator = EventAggregator(config=config)
    aggregator.start(serve=True)

    async def feed() -> None:
        other = Hub("127.0.0.1", 0, spool_directory=tmp_path / "spool-b", hostname="machine-b",
                    message_queue=redis.url)
        await started(other)
        try:
            await eventually(lambda: aggregator.runtime.hub.queue.connected, "the embedded hub on Redis")
            state = aggregator.runtime.connection_state()  # what `status` and the TUI's status bar say
            assert state == f"serving on 127.0.0.1:{port}; message queue {redis.url} (connected)"
            for index in range(4):
                await post(other.url, marker("remote", index, "b"))
            await eventually(lambda: aggregator.get_status()["total_events"] == 4, "the remote events")
        finally:
            await other.stop()

    try:
        asyncio.run(feed())
    finally:
        aggregator.stop()
    session = json.loads(next((tmp_path / "activity").glob("session_remote*.json")).read_text())
    assert session["metadata"]["hostname"] == "machine-b"  # stamped by the hub that took it
    assert len(session["events"]) == 4


# --- the whole set-up: real processes, hooks into each machine, Redis restarted -------------


class ServeProcess:
    """`aggregate serve --message-queue URL` as one machine's hub: its own hostname and spool."""

    def __init__(self, port: int, queue: str, machine: str, spool: Path, log: Path) -> None:
        self.port, self.queue, self.machine, self.spool, self.log = port, queue, machine, spool, log
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE_MPM_")}
        return {**clean, HOSTNAME_VARIABLE: self.machine, "AGGREGATE_SPOOL_DIR": str(self.spool),
                "HOME": str(self.spool.parent / f"home-{self.machine}")}

    def start(self) -> "ServeProcess":
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent_aggregator", "serve", "--port", str(self.port),
                 "--message-queue", self.queue],
                stdout=out, stderr=out, env=self.environment(), cwd=self.spool.parent,
            )
        wait_until(self.healthy, f"the hub of {self.machine}")
        return self

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the hub of {self.machine} exited: {self.log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        self.process = None

    def hook(self, payload: dict[str, Any]) -> None:
        """What Claude Code runs on this machine for one hook event (the form install-hooks writes)."""
        subprocess.run(
            [sys.executable, "-I", "-c", "from agent_aggregator.hook import run; run()",
             "--port", str(self.port), "--timeout", HOOK_TIMEOUT],
            input=json.dumps(payload).encode(), env=self.environment(), check=True, timeout=60,
        )

    def spooled(self) -> int:
        spool_file = self.spool / "hooks.jsonl"
        return len(spool_file.read_bytes().splitlines()) if spool_file.exists() else 0


def machine_sessions(machine: str, count: int) -> dict[str, list[dict[str, Any]]]:
    """``count`` realistic Claude Code sessions of one machine (session id -> hook payloads, each
    timed as it fired)."""
    sessions = {}
    for number in range(count):
        session_id = fb.det_uuid(machine, number)
        stream = fb.raw_hook_session(session_id, f"/home/dev/{machine}/project-{number}")
        sessions[session_id] = [{**payload, "timestamp": when} for when, payload in stream]
    return sessions


@needs_redis
def test_two_machines_one_aggregator_redis_and_a_hub_lost_mid_stream(redis: RedisServer, tmp_path: Path) -> None:
    machines = {name: ServeProcess(free_port(), redis.url, name, tmp_path / f"spool-{name}", tmp_path / f"{name}.log")
                for name in ("laptop", "ci-runner")}
    laptop, runner = machines["laptop"], machines["ci-runner"]
    streams = {name: machine_sessions(name, 2) for name in machines}
    # Interleave every session of both machines: one event of each in turn.
    plan: list[tuple[str, dict[str, Any]]] = []
    owner = {session_id: name for name, sessions in streams.items() for session_id in sessions}
    for index in range(max(len(s) for sessions in streams.values() for s in sessions.values())):
        for name, sessions in streams.items():
            plan.extend((name, session[index]) for session in sessions.values() if index < len(session))
    total = len(plan)
    fed: collections.Counter[str] = collections.Counter()

    def feed(part: list[tuple[str, dict[str, Any]]]) -> None:
        for name, payload in part:
            machines[name].hook(payload)
            fed[payload["session_id"]] += 1

    for machine in machines.values():
        machine.start()
    aggregator = EventAggregator(config=Config(activity_directory=tmp_path / "activity", dashboard_host="127.0.0.1",
                                               dashboard_port=laptop.port))
    wire: list[str] = []  # every event id a plain Socket.IO client on the laptop's hub receives
    loop = asyncio.new_event_loop()
    watcher = Client()
    watcher.sio.on("claude_event", lambda data: wire.append(data["event_id"]))
    try:
        aggregator.start(serve=False)  # a client of the laptop's hub, as `aggregate tui --port` is
        loop.run_until_complete(watcher.connect(f"http://127.0.0.1:{laptop.port}"))
        watching = threading.Thread(target=loop.run_forever, daemon=True)
        watching.start()

        def captured() -> int:
            return aggregator.get_status()["total_events"]

        first, second, third, fourth = (plan[: total // 4], plan[total // 4: total // 2],
                                        plan[total // 2: 3 * total // 4], plan[3 * total // 4:])
        feed(first)
        wait_until(lambda: captured() == len(first), "the first quarter from both machines")

        redis.stop()  # Redis lost: both hubs keep taking their hooks and serving their own clients
        feed(second)
        redis.start()  # same port, empty: nothing survives in Redis itself
        wait_until(lambda: captured() == len(first) + len(second), "what both hubs took while Redis was away")

        runner.stop()  # a hub lost: the runner's hooks spool on the runner
        runner_third = [(name, payload) for name, payload in third if name == "ci-runner"]
        feed(third)
        assert runner.spooled() == len(runner_third) > 0
        runner.start()  # drains its spool, in order, through Redis to the laptop's hub
        feed(fourth)
        wait_until(lambda: captured() == total, "every event of both machines")
        wait_until(lambda: len(wire) >= total, "every event on the wire")
        time.sleep(1.0)  # a duplicate arriving late would show up below
    finally:
        aggregator.stop()
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(watcher.sio.disconnect(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
        for machine in machines.values():
            machine.stop()

    assert runner.spooled() == 0
    assert len(wire) == len(set(wire)) == total  # each event once, at a client of the other machine's hub
    saved = [json.loads(path.read_text()) for path in (tmp_path / "activity").glob("session_*.json")]
    by_id = {data["session_id"]: data for data in saved}
    assert len(saved) == len(by_id) == 4  # every session present once
    assert aggregator.get_status()["total_events"] == total
    assert set(by_id) == set(owner)
    for session_id, data in by_id.items():
        machine = owner[session_id]
        assert data["metadata"]["hostname"] == machine  # tagged with the machine it came from
        assert data["working_directory"].startswith(f"/home/dev/{machine}/")
        ids = [event["event_id"] for event in data["events"]]
        assert len(ids) == len(set(ids)) == fed[session_id] == data["metrics"]["total_events"]  # in == saved
        kinds = collections.Counter(event["event_type"] for event in data["events"])
        assert kinds == collections.Counter(p["hook_event_name"] for p in streams[machine][session_id])
    assert sorted(e for data in saved for e in (ev["event_id"] for ev in data["events"])) == sorted(wire)
