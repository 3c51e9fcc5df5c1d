"""``aggregate`` end to end: real session files, real store, output as users see it."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent_aggregator import cli
from agent_aggregator.config import LOGGER_NAME, Config
from agent_aggregator.model import COMPLETED, AgentSession
from agent_aggregator.store import session_file_name
from agent_aggregator.timeutil import parse_timestamp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
AGGREGATE = Path(sys.executable).with_name("aggregate")
if not AGGREGATE.exists():  # an interpreter outside the venv that installed the script
    AGGREGATE = Path(shutil.which("aggregate") or AGGREGATE)
T0 = datetime(2025, 8, 12, 14, 15, 30, tzinfo=timezone.utc)
ID_A = "5283b66c-2b29-4ee0-9698-f410f3a393fd"
ID_B = "7a91d44e-8c12-4f3b-ae56-9b2c1e0f8d35"
ID_C = "7a91ffff-0000-4000-8000-000000000003"
NASTY = "[bold red]boom[/bold red] \x1b[31mred\x1b[0m\nsecond line"


def local(moment: datetime | str, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    parsed = parse_timestamp(moment)
    assert parsed is not None
    return parsed.astimezone().strftime(fmt)


def make_session(session_id: str, start: datetime, *, events: int = 4, minutes: float = 3.42,
                 prompt: str = "fix the bug", cwd: str = "/home/u/proj") -> AgentSession:
    session = AgentSession(session_id, start)
    session.working_directory = cwd
    at = lambda s: (start + timedelta(seconds=s)).isoformat()  # noqa: E731
    session.add_event("UserPromptSubmit", {"prompt": prompt}, at(0))
    session.add_event("PreToolUse", {"tool_name": "Task", "subagent_type": "research",
                                     "description": "Survey the code", "instructions": "look"}, at(1))
    session.add_event("PreToolUse", {"tool_name": "Edit", "file_path": f"{cwd}/src/app.py"}, at(5), agent_id="ag1")
    session.add_event("PostToolUse", {"tool_name": "Edit", "file_path": f"{cwd}/src/app.py", "success": True},
                      at(6), agent_id="ag1")
    for n in range(events - 4):
        session.add_event("PreToolUse", {"tool_name": "Bash", "tool_input": {"command": f"echo {n}"}}, at(7 + n))
    delegation = session.add_delegation("research", "look", start + timedelta(seconds=1), description="Survey the code")
    delegation.agent_id = "ag1"
    delegation.event_count = 2
    delegation.note_file(f"{cwd}/src/app.py")
    delegation.close(start + timedelta(seconds=40), success=True)
    session.metrics.note_file(f"{cwd}/src/app.py")
    session.finish(COMPLETED, start + timedelta(minutes=minutes))
    return session


def save(directory: Path, session: AgentSession) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / session_file_name(session.session_id, session.start_time)
    session.save(path)
    return path


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run in an empty project dir with no user config, no aggregator variables, no colours."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in list(os.environ):
        if name.startswith("CLAUDE_MPM_AGGREGATOR_") or name in ("FORCE_COLOR", "NO_COLOR"):
            monkeypatch.delenv(name)
    logger = logging.getLogger(LOGGER_NAME)
    handlers, level = list(logger.handlers), logger.level
    yield project
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)


@pytest.fixture
def activity(isolated: Path) -> Path:
    directory = isolated / ".claude-mpm" / "activity"
    save(directory, make_session(ID_A, T0, events=6, minutes=3 + 25 / 60))
    save(directory, make_session(ID_B, T0 + timedelta(minutes=5), events=9, minutes=1))
    save(directory, make_session(ID_C, T0 + timedelta(minutes=10), events=4, minutes=2, cwd="/srv/other"))
    return directory


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- sessions ----------------------------------------------------------------------------


def test_sessions_lists_like_the_usage_guide(activity: Path, capsys) -> None:
    code, out, err = run(capsys, "sessions")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "Captured Sessions:"
    assert "\x1b" not in out  # not a terminal: no colour codes
    block = lines[lines.index(f"  Session: {ID_A}"):][:7]
    assert block == [
        f"  Session: {ID_A}",
        f"    Start: {local(T0)}",
        "    Duration: 3m 25s",
        "    Events: 6",
        "    Status: completed",
        "    Project: proj",
        "    File: session_5283b66c_20250812_141530.json",
    ]
    order = [line.split(": ", 1)[1] for line in lines if line.startswith("  Session: ")]
    assert order == [ID_C, ID_B, ID_A]  # newest first
    assert "    Project: other" in lines
    assert lines[-1] == f"3 sessions in {activity}"


def test_sessions_sort_and_limit(activity: Path, capsys) -> None:
    code, out, _ = run(capsys, "sessions", "--sort", "events")
    order = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("  Session: ")]
    assert order == [ID_B, ID_A, ID_C]
    code, out, _ = run(capsys, "sessions", "--sort", "duration", "--limit", "2")
    order = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("  Session: ")]
    assert order == [ID_A, ID_C]
    assert out.splitlines()[-1] == f"Showing 2 of 3 sessions in {activity}"


def test_sessions_json(activity: Path, capsys) -> None:
    code, out, err = run(capsys, "sessions", "--json", "--limit", "2")
    assert code == 0 and err == ""
    listing = json.loads(out)
    assert [item["session_id"] for item in listing] == [ID_C, ID_B]
    assert listing[1]["event_count"] == 9
    assert listing[1]["duration_ms"] == 60_000
    assert Path(listing[1]["file_path"]).parent == activity
    assert listing[1]["agents_used"] == ["research"]


@pytest.mark.parametrize("argv", [["sessions"], ["cleanup"]])
def test_missing_activity_directory_is_not_an_error(isolated: Path, capsys, argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"No sessions captured yet in {isolated / '.claude-mpm' / 'activity'}"
    assert "aggregate ingest" in lines[1]
    assert not (isolated / ".claude-mpm").exists()  # reading never creates the directory


def test_empty_activity_directory(isolated: Path, capsys) -> None:
    (isolated / ".claude-mpm" / "activity").mkdir(parents=True)
    code, out, _ = run(capsys, "sessions")
    assert code == 0 and out.startswith("No sessions captured yet in ")
    code, out, _ = run(capsys, "sessions", "--json")
    assert code == 0 and json.loads(out) == []


def test_corrupt_file_is_reported_and_skipped(activity: Path, capsys) -> None:
    (activity / "session_broken0_20250101_000000.json").write_text("{not json", encoding="utf-8")
    code, out, err = run(capsys, "sessions", "--json")
    assert code == 0
    assert len(json.loads(out)) == 3
    assert "session_broken0_20250101_000000.json" in err
    assert all(line.startswith("aggregate: warning: ") for line in err.splitlines())


def test_global_options_before_or_after_the_command(activity: Path, tmp_path: Path, capsys) -> None:
    elsewhere = tmp_path / "elsewhere"
    save(elsewhere, make_session("eeeeeeee-1", T0))
    for argv in (["--save-dir", str(elsewhere), "sessions", "--json"],
                 ["sessions", "--json", "--save-dir", str(elsewhere)]):
        code, out, _ = run(capsys, *argv)
        assert code == 0
        assert [item["session_id"] for item in json.loads(out)] == ["eeeeeeee-1"]


def test_save_dir_relative_to_the_current_directory(activity: Path, isolated: Path, capsys) -> None:
    code, out, _ = run(capsys, "--save-dir", ".claude-mpm/activity", "sessions", "--json")
    assert len(json.loads(out)) == 3


def test_config_dir_reads_that_projects_configuration(activity: Path, tmp_path: Path, capsys) -> None:
    other = tmp_path / "other-project"
    save(other / "store", make_session("ffffffff-2", T0))
    (other / ".claude-mpm").mkdir()
    (other / ".claude-mpm" / "configuration.yaml").write_text(
        "event_aggregator:\n  activity_directory: store\n", encoding="utf-8")
    code, out, _ = run(capsys, "sessions", "--json", "--config-dir", str(other))
    assert [item["session_id"] for item in json.loads(out)] == ["ffffffff-2"]


def test_environment_activity_directory(activity: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    save(tmp_path / "env-dir", make_session("dddddddd-3", T0))
    monkeypatch.setenv("CLAUDE_MPM_AGGREGATOR_ACTIVITY_DIRECTORY", str(tmp_path / "env-dir"))
    code, out, _ = run(capsys, "sessions", "--json")
    assert [item["session_id"] for item in json.loads(out)] == ["dddddddd-3"]


# --- view ---------------------------------------------------------------------------------


def test_view_by_prefix(activity: Path, capsys) -> None:
    code, out, err = run(capsys, "view", "5283")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[:10] == [
        "Session Details:",
        f"  ID: {ID_A}",
        "  Status: completed",
        f"  Start Time: {local(T0)}",
        f"  End Time: {local(T0 + timedelta(minutes=3, seconds=25))}",
        "  Duration: 3m 25s",
        "  Project: proj",
        "  Working Directory: /home/u/proj",
        "  File: session_5283b66c_20250812_141530.json",
        "  Initial Prompt: fix the bug",
    ]
    summary = lines[lines.index("Events Summary:"):]
    assert summary[1:8] == [
        "  Total Events: 6",
        "  User Prompts: 1",
        "  Agent Delegations: 1",
        "  Tool Operations: 2",
        "  File Operations: 2",
        "  Todo Updates: 0",
        "  Responses: 0",
    ]
    assert lines[lines.index("Agents Used:") + 1] == "  - research (1 delegation)"
    delegations = lines[lines.index("Delegations:") + 1:][:2]
    assert delegations == ["  - research  completed  39s  2 events  1 file", "      Survey the code"]
    tools = lines[lines.index("Tools Used:") + 1:][:3]
    assert tools == ["  - Bash (2)", "  - Edit (1)", "  - Task (1)"]
    assert lines[lines.index("Files Modified:") + 1] == "  - src/app.py"
    assert "Timeline:" not in lines


def test_view_verbose_adds_the_timeline(activity: Path, capsys) -> None:
    code, out, _ = run(capsys, "view", ID_A, "--verbose")
    lines = out.splitlines()
    timeline = lines[lines.index("Timeline:") + 1:]
    assert len(timeline) == 6
    first = timeline[0].split()
    assert first[0] == local(T0, "%H:%M:%S.%f")[:-3]
    assert first[1:] == ["prompt", "UserPromptSubmit", "fix", "the", "bug"]
    assert timeline[1].split()[1:] == ["delegation", "PreToolUse", "research:", "Survey", "the", "code"]
    assert timeline[3].split()[1:] == ["file", "PostToolUse", "Edit", "src/app.py", "ok"]
    assert timeline[4].split()[-2:] == ["echo", "0"]


def test_view_json_is_the_session(activity: Path, capsys) -> None:
    code, out, _ = run(capsys, "view", "7a91d", "--json")
    document = json.loads(out)
    assert document["session_id"] == ID_B
    assert document == json.loads((activity / session_file_name(ID_B, T0 + timedelta(minutes=5))).read_text())


def test_view_by_file_name_or_path(activity: Path, capsys) -> None:
    name = session_file_name(ID_A, T0)
    code, out, _ = run(capsys, "view", name, "--json")
    assert code == 0 and json.loads(out)["session_id"] == ID_A
    code, out, _ = run(capsys, "view", str(activity / name), "--json")
    assert code == 0 and json.loads(out)["session_id"] == ID_A


def test_view_of_a_corrupt_file_says_one_line_about_that_file_only(activity: Path, capsys) -> None:
    (activity / "session_torn_20250812_000000.json").write_bytes(b'{"session_id": "torn", "events": [{"ti')
    (activity / "session_other_20250812_000000.json").write_bytes(b"{worse")
    code, out, err = run(capsys, "view", str(activity / "session_torn_20250812_000000.json"))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "session_torn" in err and "not a readable session file" in err
    code, out, err = run(capsys, "sessions")  # a listing still names both
    assert code == 0 and "session_torn" in err and "session_other" in err


def test_view_ambiguous_prefix_lists_candidates(activity: Path, capsys) -> None:
    code, out, err = run(capsys, "view", "7a91")
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith("aggregate: error: ") and "7a91" in lines[0] and "ambiguous" in lines[0]
    assert lines[1:] == [f"  {ID_B}", f"  {ID_C}"]


def test_view_unknown_session(activity: Path, capsys) -> None:
    code, out, err = run(capsys, "view", "zzzz")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("aggregate: error: ") and "zzzz" in err


def test_view_without_any_sessions(isolated: Path, capsys) -> None:
    code, _, err = run(capsys, "view", "abc")
    assert code == 1
    assert err == f"aggregate: error: no sessions captured yet in {isolated / '.claude-mpm' / 'activity'}\n"


def test_payload_text_is_printed_literally(isolated: Path, capsys) -> None:
    directory = isolated / ".claude-mpm" / "activity"
    session = make_session("[bold]id", T0, prompt=NASTY, cwd="/home/u/[red]proj")
    save(directory, session)
    code, out, _ = run(capsys, "view", "[bold]", "--verbose")
    assert code == 0
    assert "\x1b" not in out
    assert "  ID: [bold]id" in out
    assert "  Project: [red]proj" in out
    assert "    [bold red]boom[/bold red]  [31mred [0m" in out  # the full prompt, escapes defused
    assert "    second line" in out
    code, out, _ = run(capsys, "sessions")
    assert "  Session: [bold]id" in out and "\x1b" not in out


# --- export -------------------------------------------------------------------------------


def test_export_latest_by_default(activity: Path, isolated: Path, capsys) -> None:
    code, out, err = run(capsys, "export")
    assert code == 0 and err == ""
    target = isolated / "session_7a91ffff_20250812_142530_full.json"
    size = target.stat().st_size
    assert out == f"Exported {ID_C} (full) to {target} ({size / 1024:.1f} KB)\n"
    assert json.loads(target.read_bytes())["session_id"] == ID_C


def test_export_formats_and_output(activity: Path, isolated: Path, capsys) -> None:
    code, out, _ = run(capsys, "export", "5283", "--output", "my_session.json")
    assert code == 0 and out.startswith(f"Exported {ID_A} (full) to my_session.json (")
    assert json.loads((isolated / "my_session.json").read_bytes())["session_id"] == ID_A

    code, out, _ = run(capsys, "export", "5283", "--format", "summary", "-o", "s.json")
    document = json.loads((isolated / "s.json").read_bytes())
    assert "events" not in document and document["summary"]["total_events"] == 6

    code, out, _ = run(capsys, "export", "5283", "--format", "events", "-o", "e.json")
    assert len(json.loads((isolated / "e.json").read_bytes())) == 6

    (isolated / "out").mkdir()
    code, out, _ = run(capsys, "export", "5283", "-f", "csv", "-o", "out")
    written = isolated / "out" / "session_5283b66c_20250812_141530_csv.csv"
    rows = list(csv.reader(io.StringIO(written.read_text(encoding="utf-8"), newline="")))
    assert len(rows) == 7 and rows[0][0] == "timestamp"

    code, out, _ = run(capsys, "export", "5283", "-f", "markdown")
    assert (isolated / "session_5283b66c_20250812_141530_markdown.md").read_text().startswith(f"# Session {ID_A}")


def test_export_to_stdout(activity: Path, capsysbinary) -> None:
    code = cli.main(["export", "5283", "-f", "events", "-o", "-"])
    out, err = capsysbinary.readouterr()
    assert code == 0
    assert len(json.loads(out)) == 6
    assert err.decode().startswith(f"Exported {ID_A} (events) to stdout (")


def test_export_bad_format_is_a_usage_error(activity: Path, capsys) -> None:
    code, _, err = run(capsys, "export", "--format", "xml")
    assert code == 2
    assert "full, summary, events, csv, markdown" in err


def test_export_help_names_every_format(capsys) -> None:
    from agent_aggregator.export import FORMATS

    code, out, _ = run(capsys, "export", "--help")
    assert code == 0
    for name in FORMATS:
        assert name in out


def test_export_with_nothing_to_export(isolated: Path, capsys) -> None:
    code, out, err = run(capsys, "export")
    assert code == 1 and out == ""
    assert err.startswith("aggregate: error: no sessions captured yet in ") and err.count("\n") == 1


def test_export_unwritable_output(activity: Path, isolated: Path, capsys) -> None:
    (isolated / "plain-file").write_text("x")
    code, out, err = run(capsys, "export", "5283", "--output", "plain-file/inside/x.json")
    assert code == 1 and out == ""
    assert err.startswith("aggregate: error: ") and err.count("\n") == 1
    assert "plain-file" in err


# --- cleanup ------------------------------------------------------------------------------


@pytest.fixture
def aged(isolated: Path) -> Path:
    """Two finished sessions 100 and 40 days old, one from today."""
    directory = isolated / ".claude-mpm" / "activity"
    now = datetime.now(timezone.utc)
    save(directory, make_session("old00000-1", now - timedelta(days=100)))
    save(directory, make_session("mid00000-2", now - timedelta(days=40)))
    save(directory, make_session("new00000-3", now - timedelta(hours=1), minutes=1))
    return directory


def names(directory: Path) -> set[str]:
    return {p.name for p in directory.glob("session_*.json")}


def test_cleanup_dry_run_lists_and_keeps(aged: Path, capsys) -> None:
    before = names(aged)
    code, out, _ = run(capsys, "cleanup", "--dry-run", "--days", "50")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"Would remove 1 file older than 50 days from {aged}:"
    assert lines[1].startswith("  - session_old00000_")
    assert names(aged) == before


def test_cleanup_defaults_to_configured_days(aged: Path, capsys) -> None:
    code, out, _ = run(capsys, "cleanup")  # auto_cleanup_days: 30
    assert code == 0
    assert out.splitlines()[0] == f"Removed 2 files older than 30 days from {aged}:"
    assert {n.split("_")[1] for n in names(aged)} == {"new00000"}
    code, out, _ = run(capsys, "cleanup")
    assert out == f"No sessions older than 30 days in {aged}\n"


def test_cleanup_json_and_config_days(aged: Path, isolated: Path, capsys) -> None:
    (isolated / ".claude-mpm" / "configuration.yaml").write_text(
        "event_aggregator:\n  auto_cleanup_days: 60\n", encoding="utf-8")
    code, out, _ = run(capsys, "cleanup", "--json", "--dry-run")
    result = json.loads(out)
    assert result["days"] == 60 and result["dry_run"] is True
    assert [Path(p).name.split("_")[1] for p in result["files"]] == ["old00000"]
    assert len(names(aged)) == 3


def test_cleanup_disabled_by_configuration(aged: Path, isolated: Path, capsys) -> None:
    (isolated / ".claude-mpm" / "configuration.yaml").write_text(
        "event_aggregator:\n  auto_cleanup_days: 0\n", encoding="utf-8")
    code, _, err = run(capsys, "cleanup")
    assert code == 1 and "--days" in err
    assert len(names(aged)) == 3


# --- errors -------------------------------------------------------------------------------


def test_no_command_prints_help(capsys) -> None:
    code, _, err = run(capsys)
    assert code == 2 and "sessions" in err


def test_usage_errors_exit_2(capsys) -> None:
    assert run(capsys, "sessions", "--limit", "0")[0] == 2
    assert run(capsys, "sessions", "--sort", "size")[0] == 2
    assert run(capsys, "nonsense")[0] == 2
    assert run(capsys, "view")[0] == 2


def test_config_error_is_one_line(isolated: Path, capsys) -> None:
    config = isolated / ".claude-mpm" / "configuration.yaml"
    config.parent.mkdir()
    config.write_text("event_aggregator:\n  dashboard_port: many\n", encoding="utf-8")
    code, out, err = run(capsys, "sessions")
    assert code == 1 and out == ""
    assert err == f"aggregate: error: {config}: event_aggregator.dashboard_port: expected an integer 1..65535, got 'many'\n"


def test_missing_config_dir(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "--config-dir", str(tmp_path / "nope"), "sessions")
    assert code == 1 and err.startswith("aggregate: error: --config-dir") and err.count("\n") == 1


def test_unexpected_exception_is_one_line_pointing_at_the_log(activity: Path, capsys, monkeypatch) -> None:
    def explode(ctx):
        raise KeyError("surprise")

    monkeypatch.setitem(cli.COMMANDS, "sessions", cli.COMMANDS["sessions"]._replace(run=explode))
    code, out, err = run(capsys, "sessions")
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("aggregate: error: unexpected KeyError: 'surprise'")
    assert "aggregator.log" in err and "--debug" in err


def test_unexpected_exception_traceback_goes_to_the_debug_log(activity: Path, isolated: Path, capsys, monkeypatch) -> None:
    def explode(ctx):
        raise RuntimeError("deep trouble")

    monkeypatch.setitem(cli.COMMANDS, "sessions", cli.COMMANDS["sessions"]._replace(run=explode))
    code, _, err = run(capsys, "--debug", "sessions")
    log_file = isolated / ".claude-mpm" / "logs" / "aggregator.log"
    assert code == 1 and err.count("\n") == 1 and str(log_file) in err
    for handler in logging.getLogger(LOGGER_NAME).handlers:
        handler.flush()
    text = log_file.read_text(encoding="utf-8")
    assert "Traceback" in text and "deep trouble" in text


def test_keyboard_interrupt_exits_130(activity: Path, capsys, monkeypatch) -> None:
    def interrupted(ctx):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "view", cli.COMMANDS["view"]._replace(run=interrupted))
    code, _, err = run(capsys, "view", "x")
    assert code == 130 and "Traceback" not in err


# --- the console script, as a user runs it -----------------------------------------------


def aggregate(*argv: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE_MPM_AGGREGATOR_")}
    env["HOME"] = str(cwd)
    return subprocess.run([str(AGGREGATE), *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
                          input=stdin)


def test_console_script_never_prints_a_traceback(activity: Path, isolated: Path) -> None:
    (activity / "session_corrupt0_20250101_000000.json").write_bytes(b"\x00\xff{garbage")
    (isolated / "blocker").write_text("x")
    listing = aggregate("sessions", cwd=isolated)
    assert listing.returncode == 0
    assert "Captured Sessions:" in listing.stdout and "\x1b" not in listing.stdout
    assert "session_corrupt0_20250101_000000.json" in listing.stderr
    missing = aggregate("view", "no-such-id", cwd=isolated)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.splitlines()[-1] == "aggregate: error: no session matches 'no-such-id'"
    unwritable = aggregate("export", "5283", "--output", "blocker/x/y.json", cwd=isolated)
    assert unwritable.returncode == 1
    assert unwritable.stderr.splitlines()[-1].startswith("aggregate: error: ")
    corrupt = aggregate("view", "session_corrupt0_20250101_000000.json", cwd=isolated)
    assert corrupt.returncode == 1
    assert corrupt.stderr.splitlines()[-1].startswith("aggregate: error: ")
    for result in (listing, missing, unwritable, corrupt):
        assert all(line.startswith("aggregate: ") for line in result.stderr.splitlines()), result.stderr


def test_python_dash_m_is_the_same_program(isolated: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "agent_aggregator", "--version"],
                            capture_output=True, text=True, timeout=60, cwd=isolated)
    assert result.returncode == 0 and result.stdout.startswith("aggregate ")


def test_help_imports_no_heavy_modules(isolated: Path) -> None:
    probe = (
        "import sys\n"
        "from agent_aggregator import cli\n"
        "code = cli.main(['--help'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'yaml', 'orjson', 'textual', 'socketio')"
        " or m in ('agent_aggregator.store', 'agent_aggregator.aggregator', 'agent_aggregator.model', 'logging'))\n"
        "print(code, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=isolated)
    assert result.stdout.splitlines()[-1] == "0 []"


# --- a real pipeline: hook payloads -> aggregator -> files -> CLI, jq ------------------------


@pytest.fixture
def captured(isolated: Path) -> tuple[Path, dict]:
    """The raw-hooks fixture session captured by the real aggregator."""
    from agent_aggregator.aggregator import EventAggregator

    lines = [json.loads(line) for line in (FIXTURES / "raw_hooks_session.jsonl").read_text().splitlines() if line.strip()]
    clock = {"now": parse_timestamp(lines[0]["timestamp"])}
    directory = isolated / ".claude-mpm" / "activity"
    aggregator = EventAggregator(config=Config(activity_directory=directory), clock=lambda: clock["now"])
    aggregator.start(connect=False)
    for line in lines:
        clock["now"] = parse_timestamp(line["timestamp"])
        aggregator.handle_event(line["payload"])
    aggregator.stop()
    expected = json.loads((FIXTURES / "expected.json").read_text())["raw_hook_session"]
    return directory, expected


def test_view_of_a_captured_session(captured, capsys) -> None:
    directory, expected = captured
    code, out, err = run(capsys, "view", expected["session_id"][:8])
    assert code == 0, err
    lines = out.splitlines()
    assert f"  ID: {expected['session_id']}" in lines
    assert f"  Total Events: {expected['total_events']}" in lines
    assert f"  Agent Delegations: {expected['total_delegations']}" in lines
    listed = lines[lines.index("Files Modified:") + 1:]
    root = expected["working_directory"] + "/"
    for path in expected["files_modified"]:
        assert f"  - {path.removeprefix(root)}" in listed
    agents = {d["agent_type"] for d in expected["delegations"]}
    for agent in agents:
        assert any(line.startswith(f"  - {agent} (") for line in lines)


def jq_recipes_in_python(files: list[Path]) -> dict[str, list]:
    """The usage guide's jq recipes, evaluated with plain json."""
    documents = [json.loads(path.read_text()) for path in files]
    return {
        "metrics": [d["metrics"] for d in documents],
        "agent_types": [x["agent_type"] for d in documents for x in d["delegations"]],
        "files": sorted({e["data"]["file_path"] for d in documents for e in d["events"] if e["category"] == "file"}),
        "prompts": [e["data"]["prompt"] for d in documents for e in d["events"] if e["event_type"] == "UserPromptSubmit"],
    }


def test_seed_recipes_on_captured_and_exported_files(captured, isolated: Path, capsys) -> None:
    directory, expected = captured
    files = sorted(directory.glob("session_*.json"))
    assert len(files) == 1
    results = jq_recipes_in_python(files)
    assert results["prompts"] == expected["prompts"]
    assert results["agent_types"] == [d["agent_type"] for d in expected["delegations"]]
    assert set(expected["files_modified"]) <= set(results["files"])
    metrics = results["metrics"][0]
    assert metrics["total_events"] == expected["total_events"]
    # The usage guide's Python snippet.
    data = json.loads(files[0].read_text())
    assert len(data["events"]) == expected["total_events"]
    assert data["metrics"]["session_duration_ms"] / 1000 > 0
    for delegation in data.get("delegations", []):
        assert isinstance(delegation["instructions"][:100], str) and isinstance(delegation["event_count"], int)
    tool_usage: dict[str, int] = {}
    for event in data["events"]:
        if event.get("category") == "tool" and event.get("data", {}).get("tool_name"):
            tool_usage[event["data"]["tool_name"]] = tool_usage.get(event["data"]["tool_name"], 0) + 1
    assert "Bash" in tool_usage and "Edit" not in tool_usage  # file tools are category "file"
    # `aggregate export --output test_session.json` (the CI example) keeps the same shape.
    code, _, _ = run(capsys, "export", "--output", "test_session.json")
    assert code == 0
    assert jq_recipes_in_python([isolated / "test_session.json"]) == results


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_seed_jq_recipes_with_real_jq(captured) -> None:
    directory, expected = captured
    files = [str(p) for p in sorted(directory.glob("session_*.json"))]

    def jq(program: str) -> list:
        out = subprocess.run(["jq", "-c", program, *files], capture_output=True, text=True, check=True).stdout
        return [json.loads(line) for line in out.splitlines()]

    assert jq(".metrics")[0]["total_events"] == expected["total_events"]
    assert jq(".delegations[].agent_type") == [d["agent_type"] for d in expected["delegations"]]
    assert set(expected["files_modified"]) <= set(jq('.events[] | select(.category == "file") | .data.file_path'))
    assert jq('.events[] | select(.event_type == "UserPromptSubmit") | .data.prompt') == expected["prompts"]


def test_a_closed_pipe_is_quiet(isolated: Path) -> None:
    """`aggregate view ID -v | head -1` must not spray errors when head exits."""
    session = make_session("pipe0000-1", T0, events=3000)
    save(isolated / ".claude-mpm" / "activity", session)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE_MPM_AGGREGATOR_")}
    process = subprocess.Popen([str(AGGREGATE), "view", "pipe0000", "--verbose"], cwd=isolated, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == b"Session Details:\n"
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait(timeout=60)
    assert stderr == b""
    assert process.returncode in (0, 1)


# --- ingest: recorded payloads through the real aggregator -----------------------------------

RAW = fb.EXPECTED["raw_hook_session"]
MPM = fb.EXPECTED["claude_mpm_session"]


def listed_counts(capsys) -> dict[str, int]:
    code, out, _ = run(capsys, "sessions", "--json")
    assert code == 0
    return {item["session_id"]: item["event_count"] for item in json.loads(out)}


def test_ingest_recorded_jsonl_then_list_and_view(isolated: Path, capsys) -> None:
    directory = isolated / ".claude-mpm" / "activity"
    code, out, err = run(capsys, "ingest", str(FIXTURES / "raw_hooks_session.jsonl"),
                         str(FIXTURES / "claude_mpm_session.jsonl"))
    assert code == 0 and err == ""
    events = RAW["total_events"] + MPM["total_session_events"]
    lines = out.splitlines()
    assert lines[0] == f"Ingested {events} events into 2 sessions (2 new) in {directory}"
    assert lines[1].startswith("Ignored 4 transport messages: control:dashboard:welcome (1), ")
    assert len(lines) == 2  # nothing rejected, nothing recovered
    assert listed_counts(capsys) == {RAW["session_id"]: RAW["total_events"],
                                     MPM["session_id"]: MPM["total_session_events"]}
    assert not list(directory.glob("*.journal.jsonl"))  # stop() saved everything

    code, out, _ = run(capsys, "view", RAW["session_id"][:8])
    assert code == 0
    lines = out.splitlines()
    assert "  Status: completed" in lines
    assert RAW["total_delegations"] == 2 and "  Agent Delegations: 2" in lines
    block = lines[lines.index("Delegations:") + 1:]
    block = block[:block.index("")]
    agents = [line.split()[1] for line in block if line.startswith("  - ")]
    assert agents == [d["agent_type"] for d in RAW["delegations"]] == ["Explore", "general-purpose"]


def test_ingest_json_documents(isolated: Path, tmp_path: Path, capsys) -> None:
    """A pretty-printed array, a one-line array and a single pretty-printed object."""
    wrapped = [{"timestamp": ts, "payload": payload} for ts, payload in fb.raw_hook_session()]
    (tmp_path / "array.json").write_text(json.dumps(wrapped[:-1], indent=2), encoding="utf-8")
    (tmp_path / "last.json").write_text(json.dumps(wrapped[-1], indent=2), encoding="utf-8")
    (tmp_path / "seed.json").write_text(json.dumps(fb.seed_envelope_events()), encoding="utf-8")
    code, out, err = run(capsys, "--save-dir", str(tmp_path / "act"), "ingest", "--json",
                         str(tmp_path / "array.json"), str(tmp_path / "last.json"), str(tmp_path / "seed.json"))
    assert code == 0 and err == ""
    result = json.loads(out)
    seed = fb.EXPECTED["seed_envelope_events"]
    assert result == {
        "events": RAW["total_events"] + seed["total_events"], "sessions": 2, "new_sessions": 2, "duplicates": 0,
        "rejected": {}, "ignored": {}, "unreadable_lines": [], "directory": str(tmp_path / "act"),
    }
    code, out, _ = run(capsys, "--save-dir", str(tmp_path / "act"), "view", RAW["session_id"], "--json")
    assert json.loads(out)["status"] == "completed"  # the SessionEnd in last.json arrived


def test_ingest_reads_stdin(isolated: Path, capsys, monkeypatch) -> None:
    data = (FIXTURES / "api_events_bodies.jsonl").read_bytes()
    for argv in (["ingest"], ["ingest", "-"]):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        code, out, err = run(capsys, *argv, "--json")
        assert code == 0 and err == ""
        result = json.loads(out)
        if argv == ["ingest"]:
            assert (result["events"], result["new_sessions"]) == (MPM["total_session_events"], 1)
        else:  # the same bodies again: every one a duplicate, which is not a failure
            assert (result["events"], result["duplicates"]) == (0, MPM["total_session_events"])
    assert listed_counts(capsys) == {MPM["session_id"]: MPM["total_session_events"]}


def test_ingest_console_script_from_a_pipe(isolated: Path) -> None:
    data = (FIXTURES / "raw_hooks_session.jsonl").read_text(encoding="utf-8")
    result = aggregate("ingest", cwd=isolated, stdin=data + "not json\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"Ingested {RAW['total_events']} events into 1 session (1 new) in {isolated / '.claude-mpm' / 'activity'}",
        "Rejected 1 record: invalid_json (1)",
        f"Not JSON: <stdin>:{RAW['total_events'] + 1}",
    ]
    assert "Traceback" not in result.stderr
    assert all(line.startswith("aggregate: warning: ") for line in result.stderr.splitlines())


def test_ingest_of_garbage_fails(isolated: Path, capsys) -> None:
    (isolated / "garbage.jsonl").write_text("".join(f"junk {n}\n" for n in range(7)), encoding="utf-8")
    code, out, err = run(capsys, "ingest", "garbage.jsonl")
    assert code == 1
    assert err.splitlines()[-1] == "aggregate: error: no usable events in garbage.jsonl"
    assert all(line.startswith("aggregate: ") for line in err.splitlines())
    lines = out.splitlines()
    assert lines[1] == "Rejected 7 records: invalid_json (7)"
    assert lines[2] == "Not JSON: " + ", ".join(f"garbage.jsonl:{n}" for n in range(1, 6)) + " and 2 more"
    code, out, err = run(capsys, "ingest", "--json", "garbage.jsonl")
    assert code == 1 and json.loads(out)["unreadable_lines"] == [f"garbage.jsonl:{n}" for n in range(1, 6)]


def test_ingest_of_a_mixed_file_reports_the_rejects(isolated: Path, capsys) -> None:
    good = (FIXTURES / "seed_envelope.jsonl").read_text(encoding="utf-8").splitlines()
    text = "\n".join([good[0], "{oops", *good[1:], '{"hook_event_name": "Stop"}', "[1, 2]", ""])
    (isolated / "mixed.jsonl").write_text(text, encoding="utf-8")
    code, out, err = run(capsys, "ingest", "mixed.jsonl")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"Ingested {len(good)} events into 1 session (1 new) in ")
    assert lines[1] == "Rejected 4 records: not_an_object (2), invalid_json (1), no_session_id (1)"
    assert lines[2] == "Not JSON: mixed.jsonl:2"
    assert "error" not in err


def test_ingest_twice_does_not_duplicate(isolated: Path, capsys) -> None:
    mpm = str(FIXTURES / "claude_mpm_session.jsonl")
    assert run(capsys, "ingest", mpm)[0] == 0
    assert listed_counts(capsys) == {MPM["session_id"]: MPM["total_session_events"]}
    code, out, _ = run(capsys, "ingest", mpm, "--json")
    assert code == 0
    assert (json.loads(out)["events"], json.loads(out)["duplicates"]) == (0, MPM["total_session_events"])
    assert listed_counts(capsys) == {MPM["session_id"]: MPM["total_session_events"]}


def test_ingest_twice_leaves_the_session_as_it_was(isolated: Path, capsys) -> None:
    mpm = str(FIXTURES / "claude_mpm_session.jsonl")
    run(capsys, "ingest", mpm)
    run(capsys, "ingest", mpm)
    code, out, _ = run(capsys, "sessions", "--json")
    assert [item["status"] for item in json.loads(out)] == ["completed"]


def test_ingest_into_a_locked_directory(isolated: Path, tmp_path: Path, capsys) -> None:
    from agent_aggregator.aggregator import EventAggregator

    directory = tmp_path / "live"
    live = EventAggregator(config=Config(activity_directory=directory))
    live.start(connect=False)
    try:
        code, out, err = run(capsys, "--save-dir", str(directory), "ingest",
                             str(FIXTURES / "raw_hooks_session.jsonl"))
    finally:
        live.stop()
    assert code == 1 and out == ""
    assert err == (f"aggregate: error: activity directory {directory} is already used by another aggregator "
                   f"(pid {os.getpid()})\n")
    assert not list(directory.glob("session_*"))


def test_ingest_unreadable_or_empty_input(isolated: Path, capsys) -> None:
    code, out, err = run(capsys, "ingest", "missing.jsonl")
    assert (code, out) == (1, "")
    assert err == "aggregate: error: missing.jsonl: No such file or directory\n"
    assert not (isolated / ".claude-mpm").exists()  # failed before touching the directory
    (isolated / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    code, out, err = run(capsys, "ingest", "empty.jsonl")
    assert (code, err) == (0, "")
    assert out.startswith("Ingested 0 events into 0 sessions (0 new) in ")
