"""``aggregate install-hooks``: merging into Claude Code's settings.json, never clobbering."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent_aggregator import cli, install_hooks
from agent_aggregator.install_hooks import HOOK_EVENTS, TOOL_EVENTS

AGGREGATE = Path(sys.executable).with_name("aggregate")
if not AGGREGATE.exists():
    AGGREGATE = Path(shutil.which("aggregate") or AGGREGATE)
CMD = "/opt/agg/bin/aggregate hook"

EXISTING = {
    "model": "opus",
    "permissions": {"allow": ["Bash(npm test:*)"], "deny": []},
    "env": {"FOO": "bär"},
    "hooks": {
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "~/bin/guard.sh", "timeout": 10}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "say done"}]}],
        "TeammateIdle": [{"hooks": [{"type": "command", "command": "notify idle"}]}],
    },
    "statusLine": {"type": "command", "command": "ccstatus"},
}


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    return root


def settings_file(root: Path) -> Path:
    return root / ".claude" / "settings.json"


def install(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["install-hooks", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def our_commands(settings: dict, event: str) -> list[str]:
    return [hook["command"] for group in settings["hooks"].get(event, []) for hook in group["hooks"]
            if install_hooks.runs_aggregate_hook(hook["command"])]


def test_fresh_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = install(capsys, "--command", CMD)
    assert code == 0 and err == ""
    assert out == f"Added 12 hook entries to .claude/settings.json; each runs: {CMD}\n"
    settings = json.loads(settings_file(project).read_text())
    assert list(settings["hooks"]) == list(HOOK_EVENTS)
    for event in HOOK_EVENTS:
        (group,) = settings["hooks"][event]
        assert group["hooks"] == [{"type": "command", "command": CMD, "timeout": 5}]
        assert group.get("matcher") == ("*" if event in TOOL_EVENTS else None)
    assert not (project / ".claude" / "settings.json.bak").exists()  # nothing to back up
    assert settings_file(project).read_text() == json.dumps(settings, indent=2, ensure_ascii=False) + "\n"


def test_merge_keeps_everything_else(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = settings_file(project)
    path.parent.mkdir()
    original = json.dumps(EXISTING, indent=4, ensure_ascii=False)
    path.write_text(original)
    code, out, _ = install(capsys, "--project", "--command", CMD)
    assert code == 0 and out.startswith("Added 12 hook entries") and "settings.json.bak" in out
    settings = json.loads(path.read_text())
    # every other key, unchanged and in its place
    assert list(settings) == list(EXISTING)
    assert {k: v for k, v in settings.items() if k != "hooks"} == {k: v for k, v in EXISTING.items() if k != "hooks"}
    # existing hooks first and untouched, ours appended as a group of its own
    assert settings["hooks"]["PreToolUse"][0] == EXISTING["hooks"]["PreToolUse"][0]
    assert settings["hooks"]["PreToolUse"][1] == {"matcher": "*", "hooks": [{"type": "command", "command": CMD,
                                                                             "timeout": 5}]}
    assert settings["hooks"]["Stop"] == [EXISTING["hooks"]["Stop"][0], {"hooks": [{"type": "command",
                                                                                 "command": CMD, "timeout": 5}]}]
    assert settings["hooks"]["TeammateIdle"] == EXISTING["hooks"]["TeammateIdle"]
    assert (path.parent / "settings.json.bak").read_text() == original


def test_idempotent(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    install(capsys, "--command", CMD)
    first = settings_file(project).read_bytes()
    code, out, _ = install(capsys, "--command", CMD)
    assert code == 0 and out == "aggregate hooks already installed in .claude/settings.json: nothing to change\n"
    assert settings_file(project).read_bytes() == first
    assert not (project / ".claude" / "settings.json.bak").exists()


def test_adds_only_the_missing_events(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = settings_file(project)
    path.parent.mkdir()
    path.write_text(json.dumps({"hooks": {"Stop": [{"hooks": [{"type": "command", "command": CMD}]}]}}))
    code, out, _ = install(capsys, "--command", CMD)
    assert code == 0 and out.startswith("Added 11 hook entries")
    assert len(json.loads(path.read_text())["hooks"]["Stop"]) == 1


def test_never_a_second_aggregate_hook(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    install(capsys, "--command", "aggregate hook")
    before = settings_file(project).read_bytes()
    code, out, _ = install(capsys, "--command", CMD)
    assert code == 0 and "Not adding a second aggregate hook" in out and "nothing to change" in out
    assert settings_file(project).read_bytes() == before


def test_dry_run_prints_a_diff_and_writes_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = settings_file(project)
    path.parent.mkdir()
    path.write_text(json.dumps(EXISTING))
    before = path.read_bytes()
    code, out, _ = install(capsys, "--dry-run", "--command", CMD)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "--- .claude/settings.json (current)"
    assert lines[1] == "+++ .claude/settings.json (with aggregate hooks)"
    added = [line for line in lines if line.startswith("+") and not line.startswith("+++")]
    removed = [line for line in lines if line.startswith("-") and not line.startswith("---")]
    assert removed == [] and sum(CMD in line for line in added) == 12
    assert lines[-1].startswith("Would add 12 hook entries to .claude/settings.json (dry run: nothing written)")
    assert path.read_bytes() == before
    assert not (path.parent / "settings.json.bak").exists()


def test_dry_run_of_a_missing_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = install(capsys, "--dry-run", "--command", CMD)
    assert code == 0 and out.startswith("--- /dev/null\n+++ .claude/settings.json")
    assert not (project / ".claude").exists()


@pytest.mark.parametrize("content", [
    '{"model": "opus",}',  # trailing comma
    "{'single': 'quotes'}",
    '{"hooks": []}',  # valid JSON, not settings-shaped
    '{"hooks": {"Stop": {"hooks": []}}}',
    "[1, 2]",
    b"\xff\xfe{}",
])
def test_unusable_file_is_refused_and_left_untouched(
    project: Path, capsys: pytest.CaptureFixture[str], content: str | bytes
) -> None:
    path = settings_file(project)
    path.parent.mkdir()
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = path.read_bytes()
    code, out, err = install(capsys, "--command", CMD)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("aggregate: error: .claude/settings.json: ")
    assert "left untouched" in err
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["settings.json"]


def test_blank_file_counts_as_empty(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = settings_file(project)
    path.parent.mkdir()
    path.write_text("\n")
    code, out, _ = install(capsys, "--command", CMD)
    assert code == 0 and out.startswith("Added 12")
    assert (path.parent / "settings.json.bak").read_text() == "\n"


def test_user_scope(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = install(capsys, "--user", "--command", CMD)
    user = tmp_path / "home" / ".claude" / "settings.json"
    assert code == 0 and out.startswith("Added 12 hook entries to ~/.claude/settings.json")
    assert our_commands(json.loads(user.read_text()), "Stop") == [CMD]
    assert not settings_file(project).exists()


def test_user_scope_follows_claude_config_dir(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude-config"))
    assert install(capsys, "--user", "--command", CMD)[0] == 0
    assert (tmp_path / "claude-config" / "settings.json").exists()


def test_project_and_user_exclude_each_other(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = install(capsys, "--project", "--user")
    assert code == 1 and "exclude each other" in err


def test_symlinked_settings_are_written_through(project: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    dotfiles = tmp_path / "dotfiles" / "claude-settings.json"
    dotfiles.parent.mkdir()
    dotfiles.write_text('{"model": "opus"}')
    settings_file(project).parent.mkdir()
    settings_file(project).symlink_to(dotfiles)
    assert install(capsys, "--command", CMD)[0] == 0
    assert settings_file(project).is_symlink()
    assert json.loads(dotfiles.read_text())["model"] == "opus" and "hooks" in json.loads(dotfiles.read_text())


def test_file_mode_is_kept(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = settings_file(project)
    path.parent.mkdir()
    path.write_text("{}")
    path.chmod(0o600)
    install(capsys, "--command", CMD)
    assert path.stat().st_mode & 0o777 == 0o600


def test_runs_aggregate_hook() -> None:
    yes = ["aggregate hook", "/x/y/aggregate hook --port 9", "'/a b/aggregate' hook", "python -m agent_aggregator hook",
           "/v/python -I -c 'from agent_aggregator.hook import run; run()'", "python -m agent_aggregator.hook"]
    no = ["aggregate", "aggregate serve", "say hook", "python -m other hook", "echo 'unbalanced"]
    assert all(install_hooks.runs_aggregate_hook(text) for text in yes)
    assert not any(install_hooks.runs_aggregate_hook(text) for text in no)


# --- the default command, as installed, really delivers -------------------------------------


def test_default_command_runs_the_hook_fast_and_isolated(project: Path, tmp_path: Path) -> None:
    command = install_hooks.default_command()
    words = shlex.split(command)
    assert words[0] == sys.executable and words[1:3] == ["-I", "-c"]
    # Run it as Claude Code does (through a shell), hub down: the event lands in the spool.
    spool = tmp_path / "spool"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE_MPM_")}
    env.update(AGGREGATE_SPOOL_DIR=str(spool), CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT="1",
               PYTHONPATH=str(tmp_path / "shadow"))
    (tmp_path / "shadow").mkdir()
    (tmp_path / "shadow" / "json.py").write_text("raise SystemExit('shadowed')\n")  # -I ignores PYTHONPATH
    checkout_friendly = command.replace(" -I ", " -I -B ", 1)  # -I ignores PYTHONDONTWRITEBYTECODE
    result = subprocess.run(checkout_friendly, shell=True, input=b'{"hook_event_name": "Stop", "session_id": "s"}',
                            env=env, capture_output=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    (line,) = (spool / "hooks.jsonl").read_text().splitlines()
    assert json.loads(line)["body"]["hook_event_name"] == "Stop"


def test_default_command_falls_back_to_the_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install_hooks, "imports_in_isolation", lambda python: False)
    monkeypatch.setattr(sys, "argv", [str(AGGREGATE), "install-hooks"])
    assert install_hooks.default_command() == f"{shlex.quote(str(AGGREGATE))} hook"
    monkeypatch.setattr(install_hooks, "find_console_script", lambda: None)
    assert install_hooks.default_command() == "aggregate hook"


def test_console_script(project: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    env.pop("CLAUDE_CONFIG_DIR", None)
    dry = subprocess.run([str(AGGREGATE), "install-hooks", "--user", "--dry-run"], env=env, cwd=project,
                         capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0 and dry.stderr == "" and "+++ ~/.claude/settings.json" in dry.stdout
    assert not (tmp_path / "home" / ".claude").exists()


def test_a_hub_on_another_port_is_written_into_the_command(tmp_path, monkeypatch, capsys):
    from agent_aggregator import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli.main(["install-hooks", "--port", "18999"]) == 0
    settings = json.loads((tmp_path / ".claude" / "settings.json").read_text())
    commands = {h["command"] for groups in settings["hooks"].values() for g in groups for h in g["hooks"]}
    assert len(commands) == 1 and next(iter(commands)).endswith(" --port 18999")


def test_the_default_hub_adds_no_arguments():
    from agent_aggregator.install_hooks import hub_arguments

    assert hub_arguments("localhost", 8765) == []
    assert hub_arguments("127.0.0.1", 9000) == ["--port", "9000"]
