"""``aggregate hook``: the real console script, a real HTTP hub on loopback, a real spool."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent_aggregator import hook
from agent_aggregator.timeutil import parse_timestamp

AGGREGATE = Path(sys.executable).with_name("aggregate")
if not AGGREGATE.exists():  # an interpreter outside the venv that installed the script
    AGGREGATE = Path(shutil.which("aggregate") or AGGREGATE)

PAYLOAD = {
    "session_id": "5283b66c-2b29-4ee0-9698-f410f3a393fd",
    "transcript_path": "/home/u/.claude/projects/-home-u-proj/5283b66c.jsonl",
    "cwd": "/home/u/proj",
    "hook_event_name": "PreToolUse",
    "tool_name": "Bash",
    "tool_input": {"command": "echo 'héllo' \"quoted\" \\ back\nslash", "description": "say hi"},
    "tool_use_id": "toolu_01ABC",
}
# Claude Code writes compact JSON; this one also carries escapes a re-encoder would rewrite.
TRICKY = (
    '{"session_id":"s-1","hook_event_name":"UserPromptSubmit",'
    '"prompt":"caf\\u00e9 \\ud83d\\ude00 \\u2028 tab\\t nl\\n \\"q\\" \\\\ \\/ é 😀 中文",'
    '"n":[1,2.50,-0.0,1e3,null,true,false],"nested":{"":{"a":[]}}}'
).encode("utf-8")


class Recorder:
    """A hub stand-in: records each POST and answers with ``status``."""

    def __init__(self, status: int = 202) -> None:
        self.status = status
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                recorder.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                answer = b'{"ok": true}'
                self.send_response(recorder.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Recorder":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture()
def env(tmp_path: Path, spool_dir: Path) -> dict[str, str]:
    """A clean environment: no hub address variables, spool and HOME under tmp."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE_MPM_") and k != "AGGREGATE_SPOOL_DIR"}
    clean["AGGREGATE_SPOOL_DIR"] = str(spool_dir)
    clean["HOME"] = str(tmp_path / "home")
    return clean


def run_hook(stdin: bytes, env: dict[str, str], *args: str, program: list[str] | None = None,
             ) -> subprocess.CompletedProcess[bytes]:
    command = (program or [str(AGGREGATE), "hook"]) + list(args)
    return subprocess.run(command, input=stdin, env=env, capture_output=True, timeout=60)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spooled(spool_dir: Path) -> list[dict]:
    path = spool_dir / "hooks.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def error_lines(spool_dir: Path) -> list[str]:
    path = spool_dir / hook.ERROR_LOG
    return path.read_text().splitlines() if path.exists() else []


def assert_silent_success(result: subprocess.CompletedProcess[bytes]) -> None:
    assert result.returncode == 0
    assert result.stdout == b""
    assert result.stderr == b""


def assert_stamped(event: dict, original: dict) -> None:
    event_id, timestamp = event["event_id"], event["timestamp"]
    assert len(event_id) == 32 and int(event_id, 16) >= 0
    assert event_id[12] == "4" and event_id[16] in "89ab"  # a uuid4
    moment = parse_timestamp(timestamp)
    assert moment is not None and moment.utcoffset().total_seconds() == 0
    assert list(event)[:3] == ["event_id", "timestamp", "hostname"]
    assert event["hostname"] == socket.gethostname()  # env() clears $CLAUDE_MPM_AGGREGATOR_HOSTNAME
    assert {k: v for k, v in event.items() if k not in ("event_id", "timestamp", "hostname")} == original


# --- delivered -----------------------------------------------------------------------------


def test_posts_the_stamped_payload_once(env: dict[str, str], spool_dir: Path) -> None:
    raw = json.dumps(PAYLOAD).encode()
    with Recorder() as hub:
        result = run_hook(raw, env, "--port", str(hub.port))
    assert_silent_success(result)
    assert len(hub.requests) == 1
    path, headers, body = hub.requests[0]
    assert path == "/events"
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert_stamped(json.loads(body), PAYLOAD)
    assert not spool_dir.exists() or spooled(spool_dir) == []
    assert error_lines(spool_dir) == []


def test_forwards_the_bytes_claude_code_sent(env: dict[str, str], spool_dir: Path) -> None:
    with Recorder() as hub:
        assert_silent_success(run_hook(TRICKY, env, "--port", str(hub.port)))
    body = hub.requests[0][2]
    event = json.loads(body)
    assert_stamped(event, json.loads(TRICKY))
    stamps = (f'"event_id":"{event["event_id"]}","timestamp":"{event["timestamp"]}",'
              f'"hostname":{json.dumps(event["hostname"])},').encode()
    assert body.replace(stamps, b"", 1) == TRICKY  # every other byte untouched, escapes included


def test_existing_stamps_are_kept(env: dict[str, str]) -> None:
    raw = (b'  {"event_id": "abc", "timestamp": "2025-08-12T14:15:30+00:00", "hostname": "ci-7",'
           b' "hook_event_name": "Stop"}\n')
    with Recorder() as hub:
        assert_silent_success(run_hook(raw, env, "--port", str(hub.port)))
    assert hub.requests[0][2] == raw


def test_address_from_our_variables_then_claude_mpms(env: dict[str, str], spool_dir: Path) -> None:
    raw = json.dumps(PAYLOAD).encode()
    with Recorder() as ours, Recorder() as theirs:
        both = {**env, "CLAUDE_MPM_AGGREGATOR_DASHBOARD_HOST": "localhost",
                "CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT": str(ours.port),
                "CLAUDE_MPM_SERVER_HOST": "localhost", "CLAUDE_MPM_SERVER_PORT": str(theirs.port)}
        assert_silent_success(run_hook(raw, both))
        only_theirs = {**env, "CLAUDE_MPM_SERVER_PORT": str(theirs.port)}
        assert_silent_success(run_hook(raw, only_theirs))
        flag_wins = run_hook(raw, both, "--host", "127.0.0.1", f"--port={theirs.port}")
        assert_silent_success(flag_wins)
    assert len(ours.requests) == 1 and len(theirs.requests) == 2
    assert spooled(spool_dir) == []


def test_bad_arguments_are_logged_not_fatal(env: dict[str, str], spool_dir: Path) -> None:
    raw = json.dumps(PAYLOAD).encode()
    with Recorder() as hub:
        variables = {**env, "CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT": str(hub.port)}
        result = run_hook(raw, variables, "--port", "not-a-port", "--bogus", "--timeout", "-1")
    assert_silent_success(result)
    assert len(hub.requests) == 1  # delivered with the address from the environment
    log = "\n".join(error_lines(spool_dir))
    assert "not-a-port" in log and "--bogus" in log and "--timeout" in log


def test_global_options_before_hook_take_the_argparse_route(env: dict[str, str]) -> None:
    raw = json.dumps(PAYLOAD).encode()
    with Recorder() as hub:
        result = run_hook(raw, env, program=[str(AGGREGATE), "--debug", "hook", "--port", str(hub.port)])
    assert_silent_success(result)
    assert len(hub.requests) == 1


@pytest.mark.parametrize("program", [
    [sys.executable, "-m", "agent_aggregator", "hook"],
    [sys.executable, "-m", "agent_aggregator.hook"],
    [sys.executable, "-I", "-B", "-c", "from agent_aggregator.hook import run; run()"],  # -B: -I ignores
    # PYTHONDONTWRITEBYTECODE, and the checkout should stay free of __pycache__
], ids=["-m agent_aggregator hook", "-m agent_aggregator.hook", "-I -c run()"])
def test_other_ways_to_start_the_same_hook(env: dict[str, str], program: list[str]) -> None:
    with Recorder() as hub:
        result = run_hook(TRICKY, env, "--port", str(hub.port), program=program)
    assert_silent_success(result)
    assert len(hub.requests) == 1


# --- not delivered: spooled ---------------------------------------------------------------


def test_hub_down_spools_the_stamped_event(env: dict[str, str], spool_dir: Path) -> None:
    result = run_hook(json.dumps(PAYLOAD).encode(), env, "--port", str(closed_port()))
    assert_silent_success(result)
    lines = spooled(spool_dir)
    assert len(lines) == 1
    assert lines[0]["path"] == "/events"
    assert_stamped(lines[0]["body"], PAYLOAD)
    assert error_lines(spool_dir) == []


def test_spooled_secrets_are_redacted_on_disk(env: dict[str, str], spool_dir: Path) -> None:
    """The gate that skips redaction for clean events must still catch these (text and key names)."""
    secret = "sk-ant-api03-" + "S3cr3tS3cr3t" * 3
    payload = {**PAYLOAD, "tool_input": {"command": f"ANTHROPIC_API_KEY={secret} claude", "description": "run"},
               "tool_response": {"signingKey": "abc123-signing", "session_key": "k-98765"}}
    assert_silent_success(run_hook(json.dumps(payload).encode(), env, "--port", str(closed_port())))
    raw = (spool_dir / "hooks.jsonl").read_text()
    for value in (secret, "abc123-signing", "k-98765"):
        assert value not in raw
    body = spooled(spool_dir)[0]["body"]
    assert body["tool_input"] == {"command": "ANTHROPIC_API_KEY=[REDACTED:anthropic_key] claude", "description": "run"}
    assert body["tool_response"] == {"signingKey": "[REDACTED:secret_field]", "session_key": "[REDACTED:secret_field]"}
    assert body["session_id"] == PAYLOAD["session_id"] and len(body["event_id"]) == 32


def test_spooled_line_is_what_json_dumps_writes(env: dict[str, str], spool_dir: Path) -> None:
    """The spool encodes with json's C encoder directly (no json import): byte for byte json.dumps."""
    assert_silent_success(run_hook(TRICKY, env, "--port", str(closed_port())))
    line = (spool_dir / "hooks.jsonl").read_bytes()
    record = json.loads(line)
    assert line == json.dumps(record, separators=(",", ":")).encode() + b"\n"


def test_spooled_unicode_means_the_same(env: dict[str, str], spool_dir: Path) -> None:
    assert_silent_success(run_hook(TRICKY, env, "--port", str(closed_port())))
    assert_stamped(spooled(spool_dir)[0]["body"], json.loads(TRICKY))


def test_hub_that_never_answers_spools_within_the_timeout(env: dict[str, str], spool_dir: Path) -> None:
    with socket.socket() as silent:  # the kernel completes the connection; nobody ever reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        result = run_hook(json.dumps(PAYLOAD).encode(), env, "--port", str(silent.getsockname()[1]),
                          "--timeout", "0.3")
    assert_silent_success(result)
    assert len(spooled(spool_dir)) == 1


@pytest.mark.parametrize("status", [400, 404, 500, 301])
def test_answer_other_than_2xx_spools(env: dict[str, str], spool_dir: Path, status: int) -> None:
    with Recorder(status=status) as hub:
        assert_silent_success(run_hook(json.dumps(PAYLOAD).encode(), env, "--port", str(hub.port)))
    assert len(hub.requests) == 1
    lines = spooled(spool_dir)
    assert len(lines) == 1 and json.loads(hub.requests[0][2]) == lines[0]["body"]


def test_spooled_events_keep_their_order(env: dict[str, str], spool_dir: Path) -> None:
    port = str(closed_port())
    for number in range(3):
        assert_silent_success(run_hook(json.dumps({**PAYLOAD, "n": number}).encode(), env, "--port", port))
    assert [line["body"]["n"] for line in spooled(spool_dir)] == [0, 1, 2]
    assert len({line["body"]["event_id"] for line in spooled(spool_dir)}) == 3


# --- not forwarded -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"not json", b"", b"   \n", b"[1, 2]", b'"text"', b"null", b'{"a": 1} trailing', b'{"a": NaN}',
    b'{"a": 1', b'{"a": "\xff\xfe"}', b"[" * 100_000,
])
def test_input_that_is_not_a_json_object_is_logged_and_dropped(
    env: dict[str, str], spool_dir: Path, raw: bytes
) -> None:
    with Recorder() as hub:
        result = run_hook(raw, env, "--port", str(hub.port))
    assert_silent_success(result)
    assert hub.requests == []
    assert spooled(spool_dir) == []
    lines = error_lines(spool_dir)
    assert len(lines) == 1 and "aggregate hook: ignored input:" in lines[0]


def test_help_is_for_people(env: dict[str, str]) -> None:
    result = run_hook(b"", env, "--help")
    assert result.returncode == 0 and result.stdout.startswith(b"usage: aggregate hook")


# --- in process: the pieces ----------------------------------------------------------------


def test_stamp_splices_after_the_brace() -> None:
    event, body = hook.stamp(b"\xef\xbb\xbf \n{}")
    assert body == (f' \n{{"event_id":"{event["event_id"]}","timestamp":"{event["timestamp"]}",'
                    f'"hostname":{json.dumps(event["hostname"])}}}').encode()
    assert json.loads(body) == event
    event, body = hook.stamp(b'{"event_id": null, "x": 1}')  # present (even null) is left alone
    assert "event_id" in event and event["event_id"] is None and json.loads(body) == event


def test_utc_timestamp_matches_timeutil() -> None:
    assert hook.utc_timestamp(1_755_008_130_000_001_999) == "2025-08-12T14:15:30.000001+00:00"
    assert hook.utc_timestamp(1_755_008_130_000_000_000) == "2025-08-12T14:15:30.000000+00:00"


def test_resolve_address() -> None:
    env = {"CLAUDE_MPM_SERVER_HOST": "0.0.0.0", "CLAUDE_MPM_SERVER_PORT": "9000",
           "CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT": "bad"}
    host, port, problems = hook.resolve_address(None, None, env)
    assert (host, port) == ("127.0.0.1", 9000) and len(problems) == 1
    assert hook.resolve_address("[::1]", 1, {})[:2] == ("::1", 1)
    assert hook.resolve_address(None, None, {})[:2] == ("127.0.0.1", 8765)
    assert hook.resolve_address("LocalHost", None, {"CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT": "8123"})[:2] == (
        "127.0.0.1", 8123)


def test_ipv6_loopback_delivery(env: dict[str, str]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with socket.socket(socket.AF_INET6) as server:
        try:
            server.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback")
        server.listen(1)
        port = server.getsockname()[1]
        got: list[bytes] = []

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += connection.recv(65536)
                connection.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                got.append(data)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        assert hook.post("::1", port, "/events", b"{}", timeout=5.0)
        thread.join(5)
    assert got and got[0].startswith(b"POST /events HTTP/1.1\r\n") and f"Host: [::1]:{port}".encode() in got[0]


def test_unexpected_error_is_one_log_line_and_exit_0(monkeypatch: pytest.MonkeyPatch, spool_dir: Path) -> None:
    monkeypatch.setenv("AGGREGATE_SPOOL_DIR", str(spool_dir))

    def explode(argv: list[str]) -> None:
        raise KeyError("surprise\nsecond line")

    monkeypatch.setattr(hook, "_run", explode)
    assert hook.main([]) == 0
    lines = error_lines(spool_dir)
    assert len(lines) == 1 and "unexpected KeyError" in lines[0]


def test_unwritable_spool_loses_the_event_quietly(env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_hook(json.dumps(PAYLOAD).encode(), {**env, "AGGREGATE_SPOOL_DIR": str(blocker / "spool")},
                      "--port", str(closed_port()))
    assert_silent_success(result)


# --- cheap start-up ---------------------------------------------------------------------

HEAVY = ("argparse", "pathlib", "typing", "asyncio", "rich", "yaml", "orjson", "aiohttp", "socketio",
         "textual", "agent_aggregator.model", "agent_aggregator.config", "agent_aggregator.store",
         "agent_aggregator.aggregator", "agent_aggregator.normalize")


def loaded_modules(env: dict[str, str], port: int, stdin: bytes) -> set[str]:
    """Modules loaded by a whole `aggregate hook` run through the console script's entry point."""
    probe = (
        "import sys\n"
        f"sys.argv = ['aggregate', 'hook', '--port', '{port}']\n"
        "import agent_aggregator.hook as hook\n"
        "run_hook = hook.main\n"
        "hook.main = lambda argv, exit_process=False: run_hook(argv)  # stay alive to list the modules\n"
        "from agent_aggregator.entry import main\n"
        "main()\n"
        "sys.stderr.write(' '.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], input=stdin, env=env, capture_output=True, timeout=60)
    assert result.returncode == 0 and result.stdout == b""
    return set(result.stderr.decode().split())


def test_delivering_imports_nothing_heavy(env: dict[str, str]) -> None:
    with Recorder() as hub:
        modules = loaded_modules(env, hub.port, json.dumps(PAYLOAD).encode())
    assert len(hub.requests) == 1
    assert "agent_aggregator.hook" in modules
    assert not modules & set(HEAVY)
    # not even what socket.py, json, uuid and datetime would pull in
    assert not modules & {"re", "enum", "socket", "json", "uuid", "datetime", "agent_aggregator.sources.spool"}


def test_spooling_imports_nothing_heavy(env: dict[str, str], spool_dir: Path) -> None:
    modules = loaded_modules(env, closed_port(), json.dumps(PAYLOAD).encode())
    assert "agent_aggregator.sources.spool" in modules and len(spooled(spool_dir)) == 1
    assert not modules & set(HEAVY)
    # an event with nothing to redact: neither the rules (re, enum) nor a JSON encoder module
    assert not modules & {"re", "enum", "json", "agent_aggregator.redact"}
    secret = {**PAYLOAD, "tool_input": {"command": "export GITHUB_TOKEN=ghp_" + "a1B2c3D4" * 5}}
    modules = loaded_modules(env, closed_port(), json.dumps(secret).encode())
    assert "agent_aggregator.redact" in modules and "ghp_a1B2" not in (spool_dir / "hooks.jsonl").read_text()


def test_oversized_payload_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hook, "MAX_PAYLOAD", 16)
    with pytest.raises(hook.Invalid, match="over the 16 the hub takes"):
        hook.stamp(b'{"prompt": "' + b"x" * 32 + b'"}')


