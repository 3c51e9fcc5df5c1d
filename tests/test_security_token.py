"""The hub's shared token (issue 8): refused without it beyond loopback, required from every
client when set. Real hubs on 127.0.0.1 (ephemeral ports), real HTTP and Socket.IO clients,
the real `aggregate hook` process."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from agent_aggregator import cli
from agent_aggregator.config import load_config
from agent_aggregator.errors import ConfigError
from agent_aggregator.sources.hub import (
    Hub,
    TokenRequiredError,
    bearer_token,
    bind_address,
    token_matches,
)
from agent_aggregator.sources.socketio_client import CONNECTED, SocketIOSource

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_hub import eventually as hub_eventually  # noqa: E402
from test_hub import run_hub  # noqa: E402 - one way to run a hub in a test

TOKEN = "t0k3n-for-tests-0123456789abcdef"
WAIT = 20.0  # a failure guard, not a measurement
PAYLOAD = {"hook_event_name": "UserPromptSubmit", "session_id": "sess-token-1", "prompt": "hello",
           "cwd": "/tmp/p"}


eventually = partial(hub_eventually, timeout=WAIT)


async def post(hub: Hub, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{hub.url}/events", data=json.dumps(body).encode(), headers=headers) as response:
            return response.status, await response.json()


async def get_health(hub: Hub) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{hub.url}/health") as response:
            assert response.status == 200
            return await response.json()


# --- pure helpers -------------------------------------------------------------------------


def test_non_loopback_needs_a_token() -> None:
    for host in ("0.0.0.0", "192.168.1.5", "example.com", "::"):
        with pytest.raises(TokenRequiredError, match="needs a shared token"):
            bind_address(host, None)
        assert bind_address(host, TOKEN) == host
    assert bind_address("localhost", None) == "127.0.0.1"
    assert bind_address("[::1]", None) == "::1"
    assert TokenRequiredError.exit_code == 2


def test_token_comparison_and_header_parsing() -> None:
    assert token_matches(None, None)
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN, TOKEN[:-1])
    assert not token_matches(TOKEN, None)
    assert not token_matches(TOKEN, {"token": TOKEN})
    assert not token_matches(TOKEN, "\udcff")  # a lone surrogate never crashes the check
    assert bearer_token(f"Bearer {TOKEN}") == TOKEN
    assert bearer_token(f"bearer   {TOKEN} ") == TOKEN
    assert bearer_token(f"Basic {TOKEN}") is None
    assert bearer_token("Bearer") is None and bearer_token(None) is None


# --- HTTP ---------------------------------------------------------------------------------


def test_posts_need_the_token(tmp_path: Path) -> None:
    relayed: list[Any] = []

    async def check(hub: Hub) -> None:
        hub.add_listener(lambda name, payload: relayed.append(payload))
        assert await post(hub, PAYLOAD) == (401, {"ok": False, "error": "unauthorized"})
        assert (await post(hub, PAYLOAD, {"Authorization": "Bearer wrong-token-0123456789"}))[0] == 401
        assert (await post(hub, PAYLOAD, {"Authorization": f"Basic {TOKEN}"}))[0] == 401
        status, answer = await post(hub, PAYLOAD, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 202 and answer["ok"] is True

    hub = run_hub(check, tmp_path, token=TOKEN)
    assert len(relayed) == 1 and relayed[0]["prompt"] == "hello"
    assert hub.stats["unauthorized"] == 3 and hub.stats["events_relayed"] == 1


def test_health_reveals_nothing_when_a_token_is_required(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def check(hub: Hub) -> None:
        seen.update(await get_health(hub))

    run_hub(check, tmp_path, token=TOKEN)
    assert seen["status"] == "ok" and seen["auth_required"] is True
    assert "clients" not in seen and "events_relayed" not in seen
    assert TOKEN not in json.dumps(seen)


def test_without_a_token_nothing_changes(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def check(hub: Hub) -> None:
        assert (await post(hub, PAYLOAD))[0] == 202
        seen.update(await get_health(hub))

    run_hub(check, tmp_path)
    assert seen["auth_required"] is False and seen["events_relayed"] == 1


# --- Socket.IO ----------------------------------------------------------------------------


def test_socketio_clients_need_the_token(tmp_path: Path) -> None:
    async def check(hub: Hub) -> None:
        intruder_events: list[Any] = []
        for auth in (None, {"token": "wrong-token-0123456789"}, {"other": TOKEN}, "not-a-dict"):
            intruder = socketio.AsyncClient(reconnection=False)
            intruder.on("*", lambda event, data=None: intruder_events.append(event))
            with pytest.raises(socketio.exceptions.ConnectionError):
                await intruder.connect(hub.url, transports=["websocket"], auth=auth, wait_timeout=10)
            await intruder.disconnect()
        assert hub.stats["unauthorized"] == 4 and hub.stats["clients"] == 0

        friend = socketio.AsyncClient(reconnection=False)
        received: list[tuple[str, Any]] = []
        friend.on("*", lambda event, data=None: received.append((event, data)))
        await friend.connect(hub.url, transports=["websocket"], auth={"token": TOKEN}, wait_timeout=10)
        try:
            await eventually(lambda: any(name == "event_history" for name, _ in received), "the history")
            await hub.relay("claude_event", dict(PAYLOAD))
            await eventually(lambda: any(name == "claude_event" for name, _ in received), "the relayed event")
        finally:
            await friend.disconnect()
        assert intruder_events == []  # a refused client never got one event, not even the history

    run_hub(check, tmp_path, token=TOKEN)


def test_socketio_source_presents_the_token(tmp_path: Path) -> None:
    async def check(hub: Hub) -> None:
        got: list[Any] = []
        refused = SocketIOSource(hub.url, lambda name, payload: None, backoff_initial=0.05, backoff_max=0.1)
        task = asyncio.create_task(refused.run())
        await eventually(lambda: refused.attempt >= 1, "a refused attempt")
        refused.stop()
        await asyncio.wait_for(task, WAIT)
        assert refused.connections == 0 and "unauthorized" in (refused.last_error or "")

        source = SocketIOSource(hub.url, lambda name, payload: got.append(payload), token=TOKEN)
        task = asyncio.create_task(source.run())
        try:
            await eventually(lambda: source.state == CONNECTED, "the connection")
            await hub.relay("claude_event", dict(PAYLOAD))
            await eventually(lambda: any(isinstance(p, dict) and p.get("prompt") == "hello" for p in got), "the event")
        finally:
            source.stop()
            await asyncio.wait_for(task, WAIT)

    run_hub(check, tmp_path, token=TOKEN)


# --- the hook process ---------------------------------------------------------------------


def hook_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE_MPM_") and k != "AGGREGATE_SPOOL_DIR"}
    clean.update(AGGREGATE_SPOOL_DIR=str(tmp_path / "hook-spool"), HOME=str(tmp_path / "home"), **extra)
    return clean


async def run_hook_process(env: dict[str, str], *args: str, payload: dict[str, Any] = PAYLOAD) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-c", "from agent_aggregator.hook import run; run()", *args, "--timeout", "10",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(json.dumps(payload).encode()), 60)
    assert process.returncode == 0 and out == b"" and err == b""


def spooled(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "hook-spool" / "hooks.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_hook_sends_the_token_from_a_file_or_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    relayed: list[Any] = []

    async def check(hub: Hub) -> None:
        hub.add_listener(lambda name, payload: relayed.append(payload))
        port = str(hub.port)
        await run_hook_process(hook_env(tmp_path), "--port", port, "--token-file", str(token_file))
        await run_hook_process(hook_env(tmp_path, CLAUDE_MPM_AGGREGATOR_TOKEN=TOKEN), "--port", port)
        await run_hook_process(hook_env(tmp_path, CLAUDE_MPM_AGGREGATOR_TOKEN_FILE=str(token_file)), "--port", port)

    hub = run_hub(check, tmp_path, token=TOKEN)
    assert len(relayed) == 3 and hub.stats["unauthorized"] == 0
    assert spooled(tmp_path) == []


def test_a_refused_hook_event_is_spooled_with_its_secrets_redacted(tmp_path: Path) -> None:
    secret = "ghp_" + "A1b2C3d4" * 5
    payload = {**PAYLOAD, "hook_event_name": "PreToolUse", "tool_name": "Bash",
               "tool_input": {"command": f"GITHUB_TOKEN={secret} gh pr list", "password": "hunter2-hunter2"}}

    async def check(hub: Hub) -> None:
        await run_hook_process(hook_env(tmp_path), "--port", str(hub.port), payload=payload)  # no token

    hub = run_hub(check, tmp_path, token=TOKEN)
    assert hub.stats["unauthorized"] == 1
    lines = spooled(tmp_path)
    assert len(lines) == 1  # refused, not lost: the hub drains the spool later
    raw = (tmp_path / "hook-spool" / "hooks.jsonl").read_text()
    assert secret not in raw and "hunter2" not in raw
    body = lines[0]["body"]
    assert body["tool_input"]["command"].startswith("GITHUB_TOKEN=[REDACTED:")
    assert body["tool_input"]["password"] == "[REDACTED:secret_field]"
    assert body["session_id"] == PAYLOAD["session_id"] and len(body["event_id"]) == 32


# --- configuration and the CLI --------------------------------------------------------------


def test_token_sources_and_precedence(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file-0123456789\nsecond line ignored\n")
    (tmp_path / ".claude-mpm").mkdir()
    (tmp_path / ".claude-mpm" / "configuration.yaml").write_text(
        f"event_aggregator:\n  token_file: {token_file}\n")
    assert load_config(tmp_path, environ={}).token == "from-the-file-0123456789"
    env = {"CLAUDE_MPM_AGGREGATOR_TOKEN": "from-the-environment-0123"}
    assert load_config(tmp_path, environ=env).token == "from-the-environment-0123"
    flagged = load_config(tmp_path, environ=env, overrides={"token": "from-the-flag-0123456789"})
    assert flagged.token == "from-the-flag-0123456789"
    assert "from-the" not in repr(flagged)  # never printed by accident
    assert flagged.to_dict()["event_aggregator"]["token"] == "********"
    assert load_config(tmp_path / "elsewhere", environ={}).token is None


def test_bad_tokens_are_one_line_that_never_echoes_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as short:
        load_config(tmp_path, environ={"CLAUDE_MPM_AGGREGATOR_TOKEN": "short-secret"})
    assert "short-secret" not in str(short.value) and "at least 16" in str(short.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path, environ={"CLAUDE_MPM_AGGREGATOR_TOKEN_FILE": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        load_config(tmp_path, environ={"CLAUDE_MPM_AGGREGATOR_TOKEN_FILE": str(tmp_path / "empty")})


def test_cli_refuses_to_serve_beyond_loopback_without_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLAUDE_MPM_AGGREGATOR_TOKEN", raising=False)
    monkeypatch.delenv("CLAUDE_MPM_AGGREGATOR_TOKEN_FILE", raising=False)
    for argv in (["serve", "--host", "0.0.0.0", "--port", "0"],
                 ["start", "--serve", "--host", "192.168.1.5", "--port", "1"]):
        code = cli.main(["--config-dir", str(tmp_path), "--save-dir", str(tmp_path / "act"), *argv])
        err = capsys.readouterr().err
        assert code == 2, argv
        assert err.count("\n") == 1 and "needs a shared token" in err and "Traceback" not in err
    code = cli.main(["--config-dir", str(tmp_path), "serve", "--host", "0.0.0.0", "--token", "short"])
    err = capsys.readouterr().err
    assert code == 1 and "short" not in err.replace("--token", "") and err.count("\n") == 1


def test_install_hooks_writes_a_token_file_never_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("CLAUDE_MPM_AGGREGATOR_TOKEN", raising=False)
    monkeypatch.delenv("CLAUDE_MPM_AGGREGATOR_TOKEN_FILE", raising=False)
    assert cli.main(["install-hooks", "--token", TOKEN]) == 0
    text = (project / ".claude" / "settings.json").read_text()
    assert TOKEN not in text
    token_file = tmp_path / "home" / ".claude-mpm" / "aggregator.token"
    assert f"--token-file {token_file}" in text
    assert token_file.read_text().strip() == TOKEN
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert TOKEN not in capsys.readouterr().out

    mine = tmp_path / "my.token"
    mine.write_text("another-token-0123456789\n")
    assert cli.main(["install-hooks", "--user", "--token-file", str(mine)]) == 0
    user_settings = (tmp_path / "home" / ".claude" / "settings.json").read_text()
    assert f"--token-file {mine}" in user_settings and "another-token" not in user_settings
