"""``aggregate run -- CMD``: a stand-in ``claude`` prints real stream-json transcripts
(tests/fixtures/stream_json_*.jsonl) and ``aggregate run`` runs as a real subprocess.

Checked: output passed through byte for byte, the exit code returned, the session
(cost, turns, durations, tokens, ``is_error`` trusted over subtype and exit code,
subagent attribution), ``--quiet``, ``--output-format json``, the session live in the
store (and in a running aggregator, through its hub) while the process runs, SIGINT
forwarded. Synchronisation is by files and bounded polling, never by timing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.config import Config
from agent_aggregator.model import ACTIVE, COMPLETED, AgentSession
from agent_aggregator.run import output_format_of, prompt_of
from agent_aggregator.runtime import read_status_file
from agent_aggregator.store import SessionStore
from agent_aggregator.tracker import rebuild_session
from agent_aggregator.tui.viewstate import run_alive

FIXTURES = Path(__file__).parent / "fixtures"
SUCCESS = FIXTURES / "stream_json_success.jsonl"
ERROR = FIXTURES / "stream_json_error.jsonl"
JSON_RESULT = FIXTURES / "result_json_output.json"
SUCCESS_ID = "861a7a4f-e951-4210-847e-5b48167ca7e0"
ERROR_ID = "f4b5dc4d-cff3-4a35-a333-1f5984088326"
WAIT = 60.0

STAND_IN = r'''
import os, signal, sys, time

args = sys.argv[1:]
def option(name, default=None):
    return args[args.index(name) + 1] if name in args else default

lines = open(option("--fixture"), encoding="utf-8").read().splitlines(keepends=True)
gate, gate_at = option("--gate"), int(option("--gate-at", "-1"))
if "--noise" in args:
    sys.stdout.write("warming up (not JSON)\n")
if "--sigint" in args:
    def interrupted(number, frame):
        sys.stdout.write('{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":1,'
                         '"duration_ms":5,"duration_api_ms":1,"total_cost_usd":0.001,"session_id":"%s"}\n'
                         % option("--session"))
        sys.stdout.flush()
        os._exit(130)
    signal.signal(signal.SIGINT, interrupted)
counted = option("--count-sigint")
if counted:  # how many SIGINTs came; SIGTERM (forwarded after them) writes the final count and ends
    wake_r, wake_w = os.pipe()  # one byte per signal caught at C level (Python handlers may run once for two)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGINT, lambda number, frame: open(counted, "w").write("got"))
    def finished(number, frame):
        caught = os.read(wake_r, 4096)
        open(counted + ".final", "w").write(str(caught.count(bytes([signal.SIGINT]))))
        os._exit(3)
    signal.signal(signal.SIGTERM, finished)
for index, line in enumerate(lines):
    if index == gate_at:
        open(gate + ".reached", "w").close()
        while not os.path.exists(gate):
            time.sleep(0.01)
    sys.stdout.write(line)
    sys.stdout.flush()
if "--sigint" in args or counted:
    open(option("--gate") + ".reached", "w").close()
    while True:
        time.sleep(0.05)
sys.exit(int(option("--exit", "0")))
'''


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE_MPM_AGGREGATOR_")}
    environ.update(HOME=str(tmp_path / "home"), AGGREGATE_SPOOL_DIR=str(tmp_path / "spool"),
                   CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT=str(free_port()))  # a writing run serves its hub there
    return environ


@pytest.fixture
def claude(tmp_path: Path) -> Path:
    """The stand-in ``claude`` executable (this Python running STAND_IN)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    path = folder / "claude"
    path.write_text(f"#!{sys.executable}\n{STAND_IN}")
    path.chmod(0o755)
    return path


def aggregate(tmp_path: Path, env: dict[str, str], *args: str) -> list[str]:
    """The command line of ``aggregate`` on this test's activity directory (run with ``env``)."""
    return [sys.executable, "-m", "agent_aggregator", "--save-dir", str(tmp_path / "activity"),
            "--config-dir", str(tmp_path), *args]


def run(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(aggregate(tmp_path, env, *args), env=env, capture_output=True, timeout=WAIT, check=False)


def saved(tmp_path: Path, session_id: str) -> AgentSession:
    store = SessionStore(tmp_path / "activity", rebuild=rebuild_session)
    return store.load(store.find(session_id).file_path)


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def stream_args(claude: Path, fixture: Path, *extra: str) -> list[str]:
    return ["run", "--", str(claude), "-p", "fix the retry", "--output-format", "stream-json", "--verbose",
            "--fixture", str(fixture), *extra]


# --- a whole run -------------------------------------------------------------------------------


def test_a_successful_run_is_passed_through_and_recorded(tmp_path, env, claude):
    done = run(tmp_path, env, *stream_args(claude, SUCCESS, "--noise"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"warming up (not JSON)\n" + SUCCESS.read_bytes()  # untouched, non-JSON lines too
    summary = done.stderr.decode()
    assert summary.count("\n") == 1 and "$0.1351 est." in summary and "6 turns" in summary

    session = saved(tmp_path, SUCCESS_ID)
    assert session.status == COMPLETED
    assert session.metadata["source"] == "claude -p"
    assert session.metadata["command"][1:4] == ["-p", "fix the retry", "--output-format"]
    assert isinstance(session.metadata["pid"], int) and session.metadata["model"] == "claude-opus-5"
    assert session.working_directory == "/work/inventory-api"
    assert session.initial_prompt == "fix the retry"
    metrics = session.metrics
    assert (metrics.total_cost_usd, metrics.num_turns, metrics.duration_api_ms, metrics.run_duration_ms,
            metrics.is_error) == (0.1351093, 6, 29535, 29039, False)
    assert session.usage["output_tokens"] == 656 and session.usage["cache_read_input_tokens"] == 112686
    assert session.final_response == "Raised the retry limit to 5; one order test still fails and needs a look."
    # tool_use blocks: tool, file and delegation events, paired by tool_use_id
    assert metrics.tools_used == ["Agent", "Grep", "Edit", "Bash"]
    assert metrics.files_modified == ["/work/inventory-api/src/inventory/orders.py"]
    failure = next(e for e in session.events if e.event_type == "PostToolUseFailure")
    assert failure.data["tool_name"] == "Bash" and failure.data["error"].startswith("Exit code 1")
    # the subagent's lines are attributed to its delegation
    [delegation] = session.delegations
    assert (delegation.agent_type, delegation.status, delegation.tool_operations) == ("Explore", "completed", ["Grep"])
    assert delegation.response_preview == "retry_order in src/inventory/orders.py"
    grep = next(e for e in session.events if e.data.get("tool_name") == "Grep" and e.event_type == "PreToolUse")
    assert grep.agent_id == delegation.agent_id and grep.data["attributed_to"] == "Explore"
    # the process ended the session
    end = session.events[-1]
    assert (end.event_type, end.data["exit_code"]) == ("SessionEnd", 0)
    as_json = json.loads((tmp_path / "activity" / session_file(tmp_path, SUCCESS_ID)).read_text())
    assert as_json["metrics"]["total_cost_usd"] == 0.1351093 and as_json["metrics"]["is_error"] is False


def session_file(tmp_path: Path, session_id: str) -> str:
    store = SessionStore(tmp_path / "activity", rebuild=rebuild_session)
    return store.find(session_id).file_path.name


@pytest.mark.parametrize("exit_code", [1, 0])
def test_is_error_is_trusted_not_the_subtype_or_exit_code(tmp_path, env, claude, exit_code):
    done = run(tmp_path, env, *stream_args(claude, ERROR, "--exit", str(exit_code)))
    assert done.returncode == exit_code
    session = saved(tmp_path, ERROR_ID)
    result = next(e for e in session.events if e.event_type == "Result")
    assert result.data["subtype"] == "success" and result.data["is_error"] is True
    assert session.metrics.is_error is True and session.metrics.total_cost_usd == 0.0
    assert " · error · " in done.stderr.decode()
    synthetic = next(e for e in session.events if e.event_type == "AssistantMessage")
    assert synthetic.data["error"] == "authentication_failed"


def test_quiet_shows_a_summary_and_the_answer(tmp_path, env, claude):
    done = run(tmp_path, env, "run", "--quiet", "--", str(claude), "-p", "hi", "--output-format", "stream-json",
               "--verbose", "--fixture", str(SUCCESS))
    assert done.returncode == 0
    assert done.stdout == b"Raised the retry limit to 5; one order test still fails and needs a look.\n"
    line = done.stderr.decode()
    assert line.startswith("aggregate run: 861a7a4f · claude-opus-5 · 4 tool calls (1 failed), 1 subagent · success")
    assert "136,477 tokens" in line and "API 29s" in line


def test_output_format_json_records_only_the_result(tmp_path, env, claude):
    done = run(tmp_path, env, "run", "--", str(claude), "-p", "make hello.py", "--output-format", "json",
               "--fixture", str(JSON_RESULT))
    assert done.returncode == 0 and done.stdout == JSON_RESULT.read_bytes()
    session = saved(tmp_path, "dc93aac8")
    assert [e.event_type for e in session.events] == ["UserPromptSubmit", "Result", "SessionEnd"]
    assert session.metadata["source"] == "claude -p" and session.initial_prompt == "make hello.py"
    assert (session.metrics.total_cost_usd, session.metrics.num_turns) == (0.1351093, 6)


def test_bad_commands_are_one_line_errors(tmp_path, env):
    missing = run(tmp_path, env, "run", "--", str(tmp_path / "no-such-claude"), "-p", "x")
    assert missing.returncode == 1
    assert missing.stderr.decode().strip().endswith("no-such-claude: command not found")
    assert b"Traceback" not in missing.stderr
    empty = run(tmp_path, env, "run")
    assert empty.returncode == 1 and b"give the command after --" in empty.stderr


# --- while it runs -------------------------------------------------------------------------------


def test_the_session_is_live_in_the_store_while_the_process_runs(tmp_path, env, claude):
    gate = tmp_path / "gate"
    child = subprocess.Popen(aggregate(tmp_path, env, *stream_args(claude, SUCCESS, "--gate", str(gate), "--gate-at", "12")),
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        until(lambda: Path(f"{gate}.reached").exists(), "the stand-in to stop half-way")
        store = SessionStore(tmp_path / "activity", rebuild=rebuild_session)

        def listed() -> Any:
            rows = [s for s in store.list_sessions() if s.session_id == SUCCESS_ID]
            return rows[0] if rows and rows[0].event_count >= 12 else None

        until(lambda: listed() is not None, "the journal to hold the first lines")
        assert listed().status == ACTIVE  # open, its writer (aggregate run) alive
        assert store.writer_pid() == child.pid
        gate.touch()
        assert child.wait(WAIT) == 0
    finally:
        if child.poll() is None:
            child.kill()
    assert saved(tmp_path, SUCCESS_ID).status == COMPLETED


def parent_of(pid: int) -> int:
    """The parent pid, from /proc (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_running_aggregator_gets_the_run_through_its_hub(tmp_path, env, claude):
    port = free_port()
    config = Config(activity_directory=tmp_path / "activity", dashboard_host="127.0.0.1", dashboard_port=port)
    aggregator = EventAggregator(config=config)
    aggregator.start(serve=True)  # the directory's writer, serving the hub (as `aggregate start` does)
    gate = tmp_path / "gate"
    env = {**env, "CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT": str(port)}
    child = subprocess.Popen(aggregate(tmp_path, env, *stream_args(claude, SUCCESS, "--gate", str(gate), "--gate-at", "12")),
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        until(lambda: Path(f"{gate}.reached").exists(), "the stand-in to stop half-way")

        def live() -> AgentSession | None:
            with aggregator.lock:
                session = aggregator.tracker.sessions.get(SUCCESS_ID)
                return session if session is not None and len(session.events) >= 12 else None

        until(lambda: live() is not None, "the first lines to reach the aggregator")
        session = live()
        assert session is not None and session.status == ACTIVE
        assert parent_of(session.metadata["pid"]) == child.pid  # the wrapped claude, a child of `aggregate run`
        assert run_alive(session.metadata)  # LIVE while it runs
        gate.touch()
        assert child.wait(WAIT) == 0
        until(lambda: SUCCESS_ID in aggregator.get_completed_sessions(), "the run's end")
        assert not run_alive(session.metadata)
        assert "sent to the aggregator" in child.stderr.read().decode()  # type: ignore[union-attr]
    finally:
        if child.poll() is None:
            child.kill()
        aggregator.stop()
    final = saved(tmp_path, SUCCESS_ID)
    assert final.status == COMPLETED and final.metrics.total_cost_usd == 0.1351093
    assert len(final.delegations) == 1 and final.delegations[0].status == "completed"


def test_a_follower_hears_a_writing_run_live_through_its_hub(tmp_path, env, claude):
    """`aggregate run` first (it owns the directory and serves the hub), a follower second (as
    `aggregate tui` does next to it): the lines printed after the follower started reach it."""
    port = int(env["CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT"])
    gate = tmp_path / "gate"
    child = subprocess.Popen(aggregate(tmp_path, env, *stream_args(claude, SUCCESS, "--gate", str(gate), "--gate-at", "12")),
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    follower = EventAggregator(config=Config(activity_directory=tmp_path / "activity", dashboard_host="127.0.0.1",
                                             dashboard_port=port))
    try:
        until(lambda: Path(f"{gate}.reached").exists(), "the stand-in to stop half-way")
        store = SessionStore(tmp_path / "activity", rebuild=rebuild_session)
        until(lambda: store.writer_pid() == child.pid, "the run to own the directory")
        status = read_status_file(tmp_path / "activity") or {}
        assert (status.get("pid"), status.get("mode"), status.get("dashboard_port")) == (child.pid, "serve", port)
        follower.start(write=False)
        until(lambda: follower.connected, "the follower to connect to the run's hub")

        def events_seen() -> int:
            with follower.lock:
                session = follower.tracker.sessions.get(SUCCESS_ID) or follower._recent.get(SUCCESS_ID)
                return len(session.events) if session is not None else 0

        until(lambda: events_seen() >= 12, "the follower to hold the first lines")
        gate.touch()  # the rest of the transcript is printed now, after the follower started
        until(lambda: SUCCESS_ID in follower.get_completed_sessions(), "the run's end to reach the follower")
        with follower.lock:
            ended = follower._recent[SUCCESS_ID]
        assert ended.status == COMPLETED and ended.metrics.total_cost_usd == 0.1351093
        assert [e.event_type for e in ended.events][-2:] == ["Result", "SessionEnd"]
        assert child.wait(WAIT) == 0
    finally:
        follower.stop()
        if child.poll() is None:
            child.kill()
    assert saved(tmp_path, SUCCESS_ID).status == COMPLETED


def test_sigint_is_forwarded_and_the_exit_code_returned(tmp_path, env, claude):
    gate = tmp_path / "gate"
    child = subprocess.Popen(
        aggregate(tmp_path, env, *stream_args(claude, ERROR, "--sigint", "--gate", str(gate), "--session", ERROR_ID)),
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,  # no terminal: whoever runs the tests, nobody else signals the child
    )
    try:
        until(lambda: Path(f"{gate}.reached").exists(), "the stand-in to print everything")
        child.send_signal(signal.SIGINT)  # to `aggregate run` only: it must pass it on
        assert child.wait(WAIT) == 130
    finally:
        if child.poll() is None:
            child.kill()
    session = saved(tmp_path, ERROR_ID)
    assert session.status == COMPLETED
    assert session.events[-1].data["exit_code"] == 130
    results = [e for e in session.events if e.event_type == "Result"]
    assert results[-1].data["subtype"] == "error_during_execution" and session.metrics.is_error is True


def test_ctrl_c_in_the_terminal_reaches_the_child_once(tmp_path, env, claude):
    """`aggregate run` in the foreground of a real terminal (a pty): Ctrl+C goes to the whole
    foreground process group, the child included, so it must not be forwarded a second time.
    A SIGTERM sent to `aggregate run` afterwards is forwarded after any SIGINT it forwarded,
    so the count the stand-in writes then is final."""
    import pty
    import threading

    gate, counted = tmp_path / "gate", tmp_path / "sigints"
    argv = aggregate(tmp_path, env, *stream_args(claude, ERROR, "--gate", str(gate), "--count-sigint", str(counted)))
    pid, master = pty.fork()
    if pid == 0:  # the child: session leader on the pty, in its foreground process group
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    output = bytearray()
    reader = threading.Thread(target=_read_all, args=(master, output), daemon=True)
    reader.start()
    try:
        store = SessionStore(tmp_path / "activity", rebuild=rebuild_session)
        until(lambda: Path(f"{gate}.reached").exists(), "the stand-in to print everything")
        until(lambda: any(s.session_id == ERROR_ID for s in store.list_sessions()), "the run to record its lines")
        os.write(master, b"\x03")  # Ctrl+C typed in the terminal
        until(lambda: counted.exists() and counted.read_text() != "", "the stand-in to get the SIGINT")
        os.kill(pid, signal.SIGTERM)  # to `aggregate run` only: forwarded
        until(lambda: Path(f"{counted}.final").exists(), "the stand-in to end")
        _, status = os.waitpid(pid, 0)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        reader.join(WAIT)
        os.close(master)
    assert Path(f"{counted}.final").read_text() == "1", bytes(output).decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 3  # the child's exit code, returned
    assert saved(tmp_path, ERROR_ID).events[-1].data["exit_code"] == 3


def _read_all(fd: int, into: bytearray) -> None:
    """Keep the pty drained (the run tees the child's output to it) until it closes."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        into.extend(chunk)


# --- command-line helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "prompt"),
    [
        (["claude", "-p", "fix it", "--output-format", "stream-json", "--verbose"], "fix it"),
        (["claude", "--model", "opus", "-p", "--output-format=json", "why?"], "why?"),
        (["claude", "-p", "--allowedTools", "Read", "--verbose"], None),
    ],
)
def test_prompt_of_a_command_line(argv, prompt):
    assert prompt_of(argv) == prompt


def test_output_format_of_a_command_line():
    assert output_format_of(["claude", "-p", "x", "--output-format", "json"]) == "json"
    assert output_format_of(["claude", "--output-format=stream-json"]) == "stream-json"
    assert output_format_of(["claude", "-p", "x"]) is None


def test_view_shows_the_run_figures_and_filters_by_importance(tmp_path, env, claude):
    assert run(tmp_path, env, *stream_args(claude, SUCCESS)).returncode == 0
    shown = run(tmp_path, env, "view", "861a7a4f").stdout.decode()
    assert "Cost: $0.1351 (Claude Code's estimate)" in shown and "Turns: 6" in shown
    assert "Tokens: 136,477" in shown and "API Time: 29s" in shown and "Result: success" in shown
    # a session with SSE-rated events, filtered from the command line
    aggregator = EventAggregator(config=Config(activity_directory=tmp_path / "activity"))
    aggregator.start(connect=False)
    for index, (kind, importance) in enumerate([("session_started", None), ("search_performed", None),
                                                 ("memory_stored", 9), ("session_ended", None)]):
        payload = {"id": f"e{index}", "type": kind, "instance_id": "inst9", "timestamp": f"2026-03-15T09:00:0{index}Z"}
        if importance is not None:
            payload["importance"] = importance
        aggregator.handle_event(payload)
    aggregator.stop()
    filtered = run(tmp_path, env, "view", "inst9", "--json", "--min-importance", "8").stdout
    assert [e["event_type"] for e in json.loads(filtered)["events"]] == ["SessionStart", "memory_stored", "SessionEnd"]


@pytest.mark.parametrize("port_taken", [False, True], ids=["through-the-hub", "port-taken-spooled"])
def test_two_runs_at_once_in_one_directory_are_both_recorded(tmp_path, env, claude, port_taken):
    """The first run writes the directory and serves its hub: the second posts to it. When the
    port is held by something else, the first writes without a hub; the second spools, and the
    first records what it spooled (it drains the spool while it runs)."""
    port = free_port()
    env = {**env, "CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT": str(port)}
    blocker = socket.socket()
    if port_taken:  # a listener that is not ours: binding fails, connecting hangs
        blocker.bind(("127.0.0.1", port))
        blocker.listen(8)
    gate = tmp_path / "gate"
    first = subprocess.Popen(aggregate(tmp_path, env, *stream_args(claude, SUCCESS, "--gate", str(gate), "--gate-at", "12")),
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        until(lambda: Path(f"{gate}.reached").exists(), "the first run to stop half-way")
        store = SessionStore(tmp_path / "activity", rebuild=rebuild_session)
        until(lambda: store.writer_pid() == first.pid, "the first run to own the directory")
        second = run(tmp_path, env, *stream_args(claude, ERROR, "--exit", "1"))
        assert second.returncode == 1
        assert ("spooled" if port_taken else f"sent to the aggregator with pid {first.pid}") in second.stderr.decode()

        def recorded() -> bool:
            return any(s.session_id == ERROR_ID for s in store.list_sessions())

        until(recorded, "the first run to record the second one's lines")
        gate.touch()
        assert first.wait(WAIT) == 0
        said = first.stderr.read().decode()  # type: ignore[union-attr]
        assert ("no hub for followers" in said) is port_taken
        assert ("(hub on 127.0.0.1:" in said) is not port_taken
    finally:
        blocker.close()
        if first.poll() is None:
            first.kill()
    assert saved(tmp_path, SUCCESS_ID).metrics.total_cost_usd == 0.1351093
    other = saved(tmp_path, ERROR_ID)
    assert other.status == COMPLETED and other.metrics.is_error is True
    assert other.events[-1].data["exit_code"] == 1
