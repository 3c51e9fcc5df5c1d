"""``aggregate sessions`` text listing, fast path: to a pipe it is written as one string without
rich (issue 7: 10,000 sessions in under 0.5 s); it must stay byte for byte what rich writes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cli import make_session, save  # noqa: E402

from agent_aggregator import cli  # noqa: E402
from agent_aggregator.describe import project_name  # noqa: E402
from agent_aggregator.model import ACTIVE  # noqa: E402

T0 = datetime(2025, 8, 12, 14, 15, 30, tzinfo=timezone.utc)
# Session ids and working directories that need every kind of cleaning one_line and rich do.
ODD = [
    ("plain-1", "/home/u/proj"),
    ("tab\tid\x07bell\rcr", "C:\\Users\\me\\repo"),
    ("bidi\u202eevil\u2066x", "/"),
    ("wide-中文-😀", ""),
    ("  spaced   out  ", "/a/ b/"),
    ("[bold]x[/bold]\x1b[31m", "/x\ty/z\x0bq"),
]


@pytest.fixture
def listing_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An activity directory with odd sessions; no colour variables; returns the directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in list(os.environ):
        if name.startswith("CLAUDE_MPM_AGGREGATOR_") or name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE"):
            monkeypatch.delenv(name)
    directory = tmp_path / "activity"
    for n, (session_id, cwd) in enumerate(ODD):
        session = make_session(session_id, T0 + timedelta(days=60 * n, minutes=n), events=4 + n,
                               minutes=0.01 + 70 * n, cwd=cwd)
        if n % 2:
            session.status = ACTIVE  # no writer alive: listed as interrupted
        save(directory, session)
    save(directory, make_session("from-1999", datetime(1999, 1, 1, tzinfo=timezone.utc), cwd="/srv/x"))
    return directory


def listing(capsys: pytest.CaptureFixture[str], directory: Path, *extra: str) -> str:
    assert cli.main(["--save-dir", str(directory), "sessions", *extra]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


@pytest.mark.parametrize("extra", [(), ("--limit", "3"), ("--sort", "events")])
def test_the_pipe_listing_is_what_rich_writes(listing_env: Path, capsys, monkeypatch, extra) -> None:
    fast = listing(capsys, listing_env, *extra)
    # rich itself: a "terminal" without colours (TERM=dumb) renders the same lines through Text
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("TERM", "dumb")
    rendered = listing(capsys, listing_env, *extra)
    assert fast == rendered
    assert fast.startswith("Captured Sessions:\n\n  Session: ") and "\x1b" not in fast and "\x07" not in fast
    if extra == ("--limit", "3"):
        assert fast.count("  Session: ") == 3 and fast.endswith(f"\n\nShowing 3 of 7 sessions in {listing_env}\n")
    else:
        assert fast.count("  Session: ") == 7 and fast.endswith(f"\n\n7 sessions in {listing_env}\n")
        assert "  Session: tab id bell cr\n" in fast and "    Project: repo\n" in fast and "    Project: b\n" in fast
        assert f"    Start: {T0.astimezone().strftime('%Y-%m-%d %H:%M:%S')}\n" in fast


def test_rich_colours_on_a_terminal_are_unchanged(listing_env: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    out = listing(capsys, listing_env)
    assert "\x1b[1mCaptured Sessions:\x1b[0m" in out and "\x1b[36mplain-1\x1b[0m" in out


def test_our_copy_of_richs_control_code_table() -> None:
    from rich.control import strip_control_codes

    every = "".join(chr(code) for code in range(0x2100))
    assert every.translate(cli._RICH_STRIPPED) == strip_control_codes(every)


def test_a_piped_listing_does_not_import_rich(listing_env: Path) -> None:
    probe = ("import sys\nfrom agent_aggregator import cli\n"
             f"code = cli.main(['--save-dir', {str(listing_env)!r}, 'sessions'])\n"
             "sys.stderr.write(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'agent_aggregator'))))\n"
             "sys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("Captured Sessions:")
    modules = set(result.stderr.split())
    assert "agent_aggregator.store" in modules
    assert not {m for m in modules if m == "rich" or m.startswith("rich.")}
    assert "agent_aggregator.tracker" not in modules  # only a journal rebuild needs it


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
                                  "Europe/Amsterdam", "Pacific/Chatham"])
def test_local_time_is_astimezone_strftime(zone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/usr/share/zoneinfo", zone).exists():
        pytest.skip(f"no tz database entry for {zone}")
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        start = datetime(1850, 1, 1, tzinfo=timezone.utc)
        for n in range(4000):  # a spread of instants, DST changes and historic offsets among them
            moment = start + timedelta(seconds=n * 3_155_813 + n * n * 7, microseconds=(n * 7919) % 1_000_000)
            if n % 3 == 0:
                moment = moment.astimezone(timezone(timedelta(hours=n % 25 - 12)))
            for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
                assert cli._local_time(moment.isoformat(), fmt) == moment.astimezone().strftime(fmt), moment
        assert cli._local_time("0999-05-06T07:08:09+00:00") == datetime(999, 5, 6, 7, 8, 9, tzinfo=timezone.utc
                                                                          ).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        assert cli._local_time(None) == "-" and cli._local_time("not a time") == "-"
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("directory", ["/a/b", "a\\b\\c", "/a/b/", "C:\\", "/", "", None, "x", "/a//b\\\\",
                                       "/a/ b", "\\\\server\\share\\", 42, ["a", "b"]])
def test_project_name_is_the_last_component(directory: object) -> None:
    from agent_aggregator.describe import one_line

    text = one_line(directory).rstrip("/\\")
    expected = "-" if not text else (re.split(r"[/\\]", text)[-1] or text)
    assert project_name(directory) == expected
