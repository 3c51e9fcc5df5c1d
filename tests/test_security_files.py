"""Files we write (issue 8): the user's umask applies and nothing is ever world-writable,
and no session id or file name from a payload can put a file outside the activity directory."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_aggregator.export import default_export_path
from agent_aggregator.model import AgentSession
from agent_aggregator.store import SessionStore, safe_id_fragment, session_file_name

WRITER = textwrap.dedent("""
    import json, logging, os, sys
    from pathlib import Path
    os.umask(int(sys.argv[2], 8))
    root = Path(sys.argv[1])
    from agent_aggregator.aggregator import EventAggregator
    from agent_aggregator.config import Config, setup_logging
    from agent_aggregator.runtime import write_status_file
    config = Config(activity_directory=root / "deep" / "activity", debug=True, log_file=root / "logs" / "x" / "a.log")
    setup_logging(config, stderr=False)
    logging.getLogger("agent_aggregator.test").debug("hello")
    aggregator = EventAggregator(config=config)
    aggregator.start(connect=False)
    hook = {"session_id": "perm-session-1", "cwd": "/w"}
    for event in ("SessionStart", "UserPromptSubmit", "Stop"):
        aggregator.handle_event({**hook, "hook_event_name": event, "prompt": "p"})
    aggregator.handle_event({"session_id": "perm-session-2", "cwd": "/w", "hook_event_name": "UserPromptSubmit", "prompt": "q"})
    journals = list(config.activity_directory.glob("*.journal.jsonl"))
    print(json.dumps({path.name: os.stat(path).st_mode & 0o777 for path in journals}))
    write_status_file(config.activity_directory, {"running": True})
    aggregator.export_session("perm-session-1", root / "exports" / "one.md", format="markdown")
    aggregator.stop()
    aggregator.store.list_sessions()  # the index
""")


def run_writer(root: Path, umask: int) -> dict[str, int]:
    """Run the writer under ``umask``; returns the modes of the journals it had open."""
    result = subprocess.run([sys.executable, "-c", WRITER, str(root), f"{umask:o}"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def modes(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): stat.S_IMODE(path.lstat().st_mode) for path in root.rglob("*")}


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o000, 0o664, 0o775), (0o022, 0o644, 0o755),
                                                              (0o077, 0o600, 0o700)])
def test_files_follow_the_umask_and_are_never_world_writable(tmp_path: Path, umask: int, file_mode: int,
                                                            dir_mode: int) -> None:
    root = tmp_path / "root"
    root.mkdir()
    journals = run_writer(root, umask)
    assert journals and set(journals.values()) == {file_mode}  # open sessions' journals (gone after stop)
    found = modes(root)
    names = set(found)
    assert any(name.startswith("deep/activity/session_") and name.endswith(".json") for name in names)
    assert {"deep/activity/.aggregator.lock", "deep/activity/.aggregator.status.json", "logs/x/a.log",
            "exports/one.md"} <= names
    for name, mode in found.items():
        assert not mode & stat.S_IWOTH, f"{name} is world-writable ({mode:o})"
        path = root / name
        expected = dir_mode if path.is_dir() else file_mode
        assert mode == expected, f"{name}: {mode:o}, expected {expected:o}"


# --- paths ------------------------------------------------------------------------------------

hostile_ids = st.one_of(
    st.sampled_from(["../../etc/passwd", "..", ".", "/etc/shadow", "a/b", "\\\\..\\\\x", "\x00", "..\x00/",
                     "~root", "$(rm -rf /)", "con", "x" * 5000, "\u202e\u0000../", "..%2f..%2f", "\u2215etc"]),
    st.text(min_size=0, max_size=64),
    st.text(alphabet=st.sampled_from("./\\\x00~-_ a"), max_size=20),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session_id=hostile_ids)
def test_no_session_id_names_a_path_outside_the_directory(tmp_path: Path, session_id: str) -> None:
    fragment = safe_id_fragment(session_id)
    assert fragment and fragment not in (".", "..") and set(fragment) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
    name = session_file_name(session_id, "2026-03-14T09:30:00+00:00")
    assert "/" not in name and "\x00" not in name and os.sep not in name and len(name) < 64
    directory = tmp_path / "activity"
    assert (directory / name).resolve().parent == directory.resolve()
    session = AgentSession(session_id=session_id or "x")
    export = default_export_path(session, "markdown", tmp_path / "out")
    assert export.resolve().parent == (tmp_path / "out").resolve()


def test_hostile_session_ids_are_saved_inside_the_directory(tmp_path: Path) -> None:
    from agent_aggregator.aggregator import EventAggregator
    from agent_aggregator.config import Config

    outside = tmp_path / "outside"
    activity = tmp_path / "nest" / "activity"
    ids = ["../../outside/pwned", "/tmp/abs", "..", "a\x00b", "\u202e../\u202d", "x" * 4096, "....//....//",
           "..\\..\\outside"]
    aggregator = EventAggregator(config=Config(activity_directory=activity))
    aggregator.start(connect=False)
    for sid in ids:
        for event in ("SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"):
            aggregator.handle_event({"session_id": sid, "cwd": "/w", "hook_event_name": event, "prompt": "p"})
    aggregator.stop()
    assert aggregator.total_events + sum(aggregator.rejected.values()) == 4 * len(ids)  # each kept or counted
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert written and all(path.resolve().is_relative_to(activity.resolve()) for path in written)
    assert not outside.exists()
    store = SessionStore(activity)
    saved = {summary.session_id for summary in store.list_sessions()}
    # path-like ids are kept as data, intact; ids with control characters or absurd length are rejected
    assert {"../../outside/pwned", "/tmp/abs", "..", "....//....//", "..\\..\\outside"} <= saved <= set(ids)


def test_a_symlinked_journal_is_never_followed(tmp_path: Path) -> None:
    """Someone who can write the activity directory plants a journal symlink to a file of the user's."""
    from agent_aggregator.aggregator import EventAggregator
    from agent_aggregator.config import Config

    activity = tmp_path / "activity"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    aggregator = EventAggregator(config=Config(activity_directory=activity))
    aggregator.start(connect=False)
    aggregator.handle_event({"session_id": "sym-1", "cwd": "/w", "hook_event_name": "SessionStart"})
    journals = list(activity.glob("*.journal.jsonl"))
    assert len(journals) == 1
    journals[0].unlink()
    journals[0].symlink_to(victim)
    aggregator.handle_event({"session_id": "sym-1", "cwd": "/w", "hook_event_name": "UserPromptSubmit", "prompt": "x"})
    aggregator.stop()
    assert victim.read_text() == "precious\n"


def test_the_store_refuses_to_write_through_a_planted_symlink_or_a_dot_dot_name(tmp_path: Path) -> None:
    """``SessionStore._guard``, the second line of defence behind safe names: a plain name in the
    directory passes without resolving; a symlink there, or ``..``, is resolved and refused."""
    from agent_aggregator.errors import StoreError
    from agent_aggregator.store import SessionStore

    activity = tmp_path / "activity"
    activity.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    store = SessionStore(activity)
    store._guard(activity / "session_plain.json")  # nothing there yet: fine
    (activity / "session_link.json").symlink_to(outside / "victim.json")
    for path in (activity / "session_link.json", activity / "..", activity / "sub" / "x.json"):
        with pytest.raises(StoreError, match="outside the activity directory"):
            store._guard(path)
    assert not (outside / "victim.json").exists()
