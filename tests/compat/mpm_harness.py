"""Harness for the claude-mpm compatibility test (tests/compat/test_claude_mpm.py).

Everything here talks to the REAL claude-mpm from PyPI, installed in a
throwaway venv that is cached between runs:

* ``ensure_mpm_venv()``   creates ``$TMPDIR/agent-aggregator-compat-venv-<version>``
                          once (``pip install claude-mpm==<version>``) and reuses it;
* ``MonitorProcess``      runs claude-mpm's ``UnifiedMonitorServer`` in a subprocess
                          of that venv on a free loopback port;
* ``HookRunner``          runs claude-mpm's real hook handler
                          (``python -m claude_mpm.hooks.claude_hooks.hook_handler``) with
                          one Claude Code hook payload on stdin, as Claude Code does;
* ``Recorder``            a plain python-socketio client that records everything the
                          monitor emits (the wire evidence);
* ``AggregatorUnderTest`` our ``EventAggregator`` listening to the monitor, in the
                          best mode the source tree offers (see ``pick_mode``).

No mocks: the only stand-in is a stub ``claude`` executable, because the hook
handler silently does nothing unless ``claude --version`` reports >= 1.0.92.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

MPM_VERSION = os.environ.get("AGGREGATE_COMPAT_MPM_VERSION", "5.9.10")
STUB_CLAUDE_VERSION = "2.1.0 (Claude Code)"
HOOK_MODULE = "claude_mpm.hooks.claude_hooks.hook_handler"
READY_MARKER = ".agent-aggregator-compat-ready"

# Lines printed in the terminal summary (conftest.py).
COMPAT_REPORT: list[str] = []

# The monitor is started with a tiny driver passed to ``python -c``: construct,
# start() (it runs aiohttp + python-socketio in a daemon thread and returns once
# bound), then idle until terminated.
MONITOR_DRIVER = """
import sys, time
from claude_mpm.services.monitor.server import UnifiedMonitorServer
server = UnifiedMonitorServer(host=sys.argv[1], port=int(sys.argv[2]))
ok = server.start()
print("READY" if ok else "FAILED: %s" % (server.startup_error,), flush=True)
if not ok:
    sys.exit(1)
while True:
    time.sleep(3600)
"""


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


def wait_quiet(counters: Iterable[Callable[[], int]], quiet: float = 1.5, timeout: float = 30.0) -> None:
    """Wait until none of ``counters`` has changed for ``quiet`` seconds."""
    counters = list(counters)
    last = [c() for c in counters]
    since = time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = [c() for c in counters]
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def interleave(streams: dict[str, list[Any]], seed: int) -> list[tuple[str, Any]]:
    """A seeded uniform random merge that keeps the order inside each stream."""
    rng = random.Random(seed)
    cursors = {key: 0 for key in streams}
    merged: list[tuple[str, Any]] = []
    while True:
        # weight by what is left, so every merge order is equally likely
        left = [(key, len(items) - cursors[key]) for key, items in streams.items() if cursors[key] < len(items)]
        if not left:
            return merged
        pick = rng.uniform(0, sum(n for _, n in left))
        for key, n in left:
            if pick < n:
                break
            pick -= n
        merged.append((key, streams[key][cursors[key]]))
        cursors[key] += 1


def median_ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 1) if seconds else float("nan")


# --------------------------------------------------------------------------
# the throwaway venv
# --------------------------------------------------------------------------
def venv_dir(version: str = MPM_VERSION) -> Path:
    override = os.environ.get("AGGREGATE_COMPAT_VENV")
    if override:
        return Path(override)
    return Path(tempfile.gettempdir()) / f"agent-aggregator-compat-venv-{version}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_mpm_venv(version: str = MPM_VERSION, *, log: Callable[[str], None] = print) -> Path:
    """The cached venv with claude-mpm==version, built on first use (under a file lock)."""
    venv = venv_dir(version)
    marker = venv / READY_MARKER
    lock_path = venv.parent / f".{venv.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and venv_python(venv).exists():
            return venv
        if venv.exists():
            shutil.rmtree(venv)  # a half-built venv from an interrupted run
        log(f"building {venv} (pip install claude-mpm=={version}); later runs reuse it")
        build_log = venv.parent / f"{venv.name}.build.log"
        with open(build_log, "w") as out:
            steps = [
                [sys.executable, "-m", "venv", str(venv)],
                [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check",
                 "--no-input", f"claude-mpm=={version}"],
                [str(venv_python(venv)), "-c",
                 "import claude_mpm.services.monitor.server, claude_mpm.hooks.claude_hooks.hook_handler"],
            ]
            for step in steps:
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=1200)
                if done.returncode != 0:
                    out.flush()
                    tail = build_log.read_text(errors="replace").splitlines()[-25:]
                    raise RuntimeError(f"building the claude-mpm venv failed at {step[:3]}:\n" + "\n".join(tail))
        freeze = subprocess.run([str(venv_python(venv)), "-m", "pip", "freeze"], capture_output=True, text=True)
        marker.write_text(json.dumps({"claude-mpm": version, "python": sys.version.split()[0],
                                      "freeze": freeze.stdout.splitlines()}, indent=1))
        return venv


# --------------------------------------------------------------------------
# the sandbox: HOME, a stub `claude`, and the project directories
# --------------------------------------------------------------------------
@dataclass
class Sandbox:
    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def project(self, name: str) -> Path:
        path = self.root / "projects" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def create(self) -> "Sandbox":
        self.home.mkdir(parents=True, exist_ok=True)
        self.bin.mkdir(parents=True, exist_ok=True)
        stub = self.bin / "claude"
        stub.write_text(f'#!/bin/sh\necho "{STUB_CLAUDE_VERSION}"\n')
        stub.chmod(0o755)
        return self

    def env(self, port: int) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CLAUDE_MPM_", "PYTHON", "VIRTUAL_ENV", "AGGREGATE_"))
        }
        env.update(
            HOME=str(self.home),
            PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            CLAUDE_MPM_SERVER_HOST="127.0.0.1",
            CLAUDE_MPM_SERVER_PORT=str(port),
        )
        return env


# --------------------------------------------------------------------------
# claude-mpm's monitor server
# --------------------------------------------------------------------------
class MonitorProcess:
    """``UnifiedMonitorServer`` in a subprocess of the claude-mpm venv."""

    def __init__(self, venv: Path, sandbox: Sandbox, port: int | None = None) -> None:
        self.venv = venv
        self.sandbox = sandbox
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = sandbox.root / "monitor.log"
        self.health: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 45.0) -> "MonitorProcess":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(venv_python(self.venv)), "-c", MONITOR_DRIVER, "127.0.0.1", str(self.port)],
            cwd=self.sandbox.root,
            env=self.sandbox.env(self.port),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"claude-mpm monitor exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as reply:
                    self.health = json.loads(reply.read())
                if self.health.get("service") == "claude-mpm-monitor":
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"claude-mpm monitor did not answer /health within {timeout} s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with contextlib.suppress(Exception):
            self._log.close()


# --------------------------------------------------------------------------
# claude-mpm's hook handler
# --------------------------------------------------------------------------
@dataclass
class HookCall:
    index: int
    stream: str
    hook_event_name: str
    tool_name: str | None
    started: float  # time.monotonic()
    seconds: float
    returncode: int
    stdout: str
    stderr: str


class HookRunner:
    """Runs ``<venv>/bin/python -m claude_mpm.hooks.claude_hooks.hook_handler`` per hook, like Claude Code."""

    def __init__(self, venv: Path, sandbox: Sandbox, port: int) -> None:
        self.python = str(venv_python(venv))
        self.env = sandbox.env(port)
        self.calls: list[HookCall] = []

    def run(self, stream: str, payload: dict[str, Any], timeout: float = 30.0) -> HookCall:
        cwd = payload.get("cwd") or None
        started = time.monotonic()
        done = subprocess.run(
            [self.python, "-m", HOOK_MODULE],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            env=self.env,
            cwd=cwd,  # Claude Code runs hooks in the project directory
            timeout=timeout,
        )
        call = HookCall(
            index=len(self.calls),
            stream=stream,
            hook_event_name=str(payload.get("hook_event_name")),
            tool_name=payload.get("tool_name"),
            started=started,
            seconds=time.monotonic() - started,
            returncode=done.returncode,
            stdout=done.stdout,
            stderr=done.stderr,
        )
        self.calls.append(call)
        return call

    def bare_python_seconds(self, repeat: int = 3) -> list[float]:
        """The same interpreter doing nothing, for comparison."""
        times = []
        for _ in range(repeat):
            started = time.monotonic()
            subprocess.run([self.python, "-c", "pass"], env=self.env, check=True)
            times.append(time.monotonic() - started)
        return times


# --------------------------------------------------------------------------
# Socket.IO listeners
# --------------------------------------------------------------------------
class LoopThread:
    """An asyncio loop in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


@dataclass
class Received:
    seq: int
    at: float  # time.monotonic()
    event: str
    payload: Any


class PlainClient:
    """A bare python-socketio AsyncClient with a catch-all handler (websocket transport)."""

    def __init__(self, url: str, on_event: Callable[[str, Any], None], name: str = "plain-client") -> None:
        self.url = url
        self.on_event = on_event
        self.loop = LoopThread(name)
        self.client: Any = None

    def connect(self) -> None:
        import socketio

        async def go() -> None:
            self.client = socketio.AsyncClient(reconnection=False, handle_sigint=False)

            def on_any(event: str, *args: Any) -> None:
                self.on_event(event, args[0] if len(args) == 1 else (list(args) if args else None))

            self.client.on("*", on_any)
            await self.client.connect(self.url, transports=["websocket"], wait_timeout=10)

        self.loop.call(go())

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.loop.call(self.client.disconnect(), timeout=10)
        self.loop.close()


class Recorder:
    """Records everything the monitor emits, in arrival order."""

    def __init__(self, url: str) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self.client = PlainClient(url, self._on_event, name="compat-recorder")

    def _on_event(self, event: str, payload: Any) -> None:
        with self._lock:
            self.received.append(Received(len(self.received), time.monotonic(), event, payload))

    def count(self) -> int:
        return len(self.received)

    def start(self) -> "Recorder":
        self.client.connect()
        wait_until(lambda: any(r.event == "dashboard:welcome" for r in self.received), 10, what="dashboard:welcome")
        return self

    def close(self) -> None:
        self.client.close()


# --------------------------------------------------------------------------
# our aggregator, listening to the monitor
# --------------------------------------------------------------------------
MODES = ("runtime", "source", "bare")


def pick_mode() -> str:
    """The most complete way the source tree can listen to a Socket.IO server.

    * ``runtime``: ``agent_aggregator.runtime`` exists, so
      ``EventAggregator(config=...).start()`` is expected to connect by itself;
    * ``source``: ``sources.socketio_client.SocketIOSource`` feeds ``handle_event``;
    * ``bare``: a plain python-socketio client feeds ``handle_event``.
    ``AGGREGATE_COMPAT_MODE`` forces one.
    """
    forced = os.environ.get("AGGREGATE_COMPAT_MODE")
    if forced:
        if forced not in MODES:
            raise ValueError(f"AGGREGATE_COMPAT_MODE must be one of {MODES}, not {forced!r}")
        return forced
    if importlib.util.find_spec("agent_aggregator.runtime") is not None:
        return "runtime"
    if importlib.util.find_spec("agent_aggregator.sources.socketio_client") is not None:
        return "source"
    return "bare"


class AggregatorUnderTest:
    def __init__(self, activity_dir: Path, port: int, mode: str | None = None) -> None:
        from agent_aggregator.aggregator import EventAggregator
        from agent_aggregator.config import Config

        self.mode = mode or pick_mode()
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.config = Config(activity_directory=activity_dir, dashboard_host="127.0.0.1", dashboard_port=port)
        self.aggregator = EventAggregator(config=self.config)
        self.fed = 0  # payloads handed to handle_event (source/bare modes)
        self._source: Any = None
        self._loop: LoopThread | None = None
        self._source_task: Any = None
        self._plain: PlainClient | None = None

    def _feed(self, event: str | None, payload: Any) -> None:
        self.fed += 1
        self.aggregator.handle_event(payload, event)

    def start(self, timeout: float = 30.0) -> None:
        if self.mode == "runtime":
            # start() may run for a while (connect, recover); never let it hang the test
            box: dict[str, BaseException] = {}

            def go() -> None:
                try:
                    self.aggregator.start()
                except BaseException as error:  # noqa: BLE001
                    box["error"] = error

            starter = threading.Thread(target=go, name="aggregator-start", daemon=True)
            starter.start()
            starter.join(timeout)
            if starter.is_alive():
                raise AssertionError(f"EventAggregator.start() did not return within {timeout} s")
            if "error" in box:
                raise box["error"]
            wait_until(lambda: self.aggregator.get_status().get("connected"), timeout,
                       what=f"EventAggregator to connect to {self.url} (status: {self.aggregator.get_status()})")
            return
        self.aggregator.start()
        if self.mode == "source":
            from agent_aggregator.sources.socketio_client import SocketIOSource

            self._source = SocketIOSource(self.url, self._feed)
            self._loop = LoopThread("compat-source")
            self._source_task = self._loop.submit(self._source.run())
            wait_until(lambda: self._source.connected, timeout, what=f"SocketIOSource to connect ({self._source.describe()})")
        else:
            self._plain = PlainClient(self.url, self._feed, name="compat-bare-feed")
            self._plain.connect()

    def describe(self) -> str:
        """Where the aggregator gets its events from, in its own words when it can say."""
        runtime = getattr(self.aggregator, "runtime", None)
        if runtime is not None and hasattr(runtime, "describe_source"):
            try:
                return str(runtime.describe_source())
            except Exception as error:  # noqa: BLE001 - a description only
                return f"runtime ({type(error).__name__})"
        if self._source is not None:
            return f"SocketIOSource {self._source.describe()}"
        return f"plain python-socketio client of {self.url}"

    def seen(self) -> int:
        """Messages handled so far, whatever became of them."""
        status = self.aggregator.get_status()
        return sum(int(status.get(key) or 0) for key in ("total_events", "rejected_events", "ignored_messages", "duplicate_events"))

    def stop(self) -> None:
        if self._source is not None:
            self._source.stop()
            with contextlib.suppress(Exception):
                self._source_task.result(15)
        if self._loop is not None:
            self._loop.close()
        if self._plain is not None:
            self._plain.close()
        self.aggregator.stop()


# --------------------------------------------------------------------------
# evidence file
# --------------------------------------------------------------------------
def attribute(received: list[Received], calls: list[HookCall]) -> dict[int, HookCall]:
    """The hook call each message arrived during (each call's POSTs finish before it exits)."""
    owner: dict[int, HookCall] = {}
    starts = sorted(calls, key=lambda c: c.started)
    for message in received:
        current = None
        for call in starts:
            if call.started <= message.at:
                current = call
            else:
                break
        if current is not None:
            owner[message.seq] = current
    return owner


def write_observed(path: Path, received: list[Received], calls: list[HookCall], meta: dict[str, Any],
                   replacements: dict[str, str]) -> None:
    """JSONL: a ``_meta`` line, then one line per message in arrival order.

    ``_hook`` (annotation) names the hook call during which the message arrived.
    Sandbox paths are replaced by placeholders so the file does not depend on the run.
    """
    owner = attribute(received, calls)
    lines = [json.dumps({"_meta": meta}, ensure_ascii=False)]
    for message in received:
        call = owner.get(message.seq)
        row: dict[str, Any] = {"event": message.event, "payload": message.payload}
        if call is not None:
            row["_hook"] = {"call": call.index, "stream": call.stream, "hook_event_name": call.hook_event_name,
                            "tool_name": call.tool_name}
        lines.append(json.dumps(row, ensure_ascii=False))
    text = "\n".join(lines) + "\n"
    for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
