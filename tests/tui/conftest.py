"""Fixtures for the TUI tests: real stores filled from tests/fixtures_builder.py, frozen clocks.

* Times are shown in local time: the tests run in UTC so snapshots match anywhere.
* The activity directory is ``activity`` relative to a tmp working directory, so
  the paths the screens print are the same on every run.
* ``async def`` tests run with ``asyncio.run`` (no plugin needed).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

os.environ["TZ"] = "UTC"
time.tzset()
# Sessions are tagged with their machine (issue 10): one fixed name whatever this machine is
# called (module-scoped fixtures save sessions too, so not a monkeypatch).
os.environ["CLAUDE_MPM_AGGREGATOR_HOSTNAME"] = "devbox"

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fixtures_builder as fb  # noqa: E402

from agent_aggregator.model import SessionEvent  # noqa: E402
from agent_aggregator.normalize import normalize  # noqa: E402
from agent_aggregator.tracker import SessionTracker  # noqa: E402

from agent_aggregator.aggregator import EventAggregator  # noqa: E402
from agent_aggregator.config import Config  # noqa: E402

SIZE = (160, 48)
ACTIVITY = Path("activity")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests in a fresh event loop."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        asyncio.run(pyfuncitem.obj(**arguments))
        return True
    return None


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in tmp_path (so ``activity`` is a fixed relative path) with a private hook spool."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGGREGATE_SPOOL_DIR", str(tmp_path / "spool"))
    # The browser counts Claude Code transcripts (its import offer): never the machine's own.
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "no-claude-config"))
    return tmp_path


def session_events() -> list[SessionEvent]:
    """The raw-hook fixture session (40 events), attributed by the tracker as the app sees them."""
    tracker = SessionTracker()
    result = []
    for timestamp, payload in fb.raw_hook_session():
        event = normalize({**payload, "timestamp": timestamp})
        tracker.apply(event)
        result.append(event)
    return result


def fixed_clock(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def config(**overrides: Any) -> Config:
    return Config(activity_directory=ACTIVITY, dashboard_host="127.0.0.1", **overrides)


# --- streams ----------------------------------------------------------------------------------


def stamped_raw(pairs: list[tuple[str, dict]], session_id: str) -> list[tuple[None, dict]]:
    """Raw hooks as a hub relays them: with a receipt time and a (here: fixed) event id."""
    return [
        (None, {**payload, "timestamp": timestamp, "event_id": fb.det_hex(32, session_id, index)})
        for index, (timestamp, payload) in enumerate(pairs)
    ]


def interleaved(n_sessions: int = 3, seed: int = 7) -> list[tuple[str | None, dict]]:
    """``fb.interleaved_stream`` with the raw hooks stamped (real times, fixed ids): deterministic."""
    streams = []
    for spec in fb.interleaved_sessions(n_sessions, seed):
        if spec["kind"] == "raw_hook":
            index = spec["index"]
            start = fb.INTERLEAVED_START + timedelta(seconds=37 * index)
            agent_tool = "Agent" if index % 4 == 0 else "Task"
            pairs = fb.raw_hook_session(spec["session_id"], spec["cwd"], start, agent_tool=agent_tool)
            streams.append(stamped_raw(pairs, spec["session_id"]))
        else:
            streams.append(list(spec["events"]))
    streams.append(fb.mpm_non_session_messages(fb.INTERLEAVED_START, socket_sid=f"conn{seed:04d}Xy9LmQ2vRAAAC"[:20]))
    return fb._merge(streams, seed)


def feed(aggregator: EventAggregator, stream: list[tuple[str | None, dict]]) -> None:
    for name, payload in stream:
        if name == "event_history":
            continue
        aggregator.handle_event(payload, name)


def saved_sessions_stream() -> list[tuple[str | None, dict]]:
    """Three whole sessions of three wire formats (each ends, so each is saved as completed)."""
    raw = stamped_raw(fb.raw_hook_session(), fb.RAW_SESSION_ID)
    mpm = [(name, payload) for name, payload in fb.claude_mpm_session(include_non_session=False)]
    seed = [(None, envelope) for envelope in fb.seed_envelope_events()]
    return raw + mpm + seed


LIVE_CUT = 0.7  # the share of the interleaved stream fed for "live" sessions (all three still open)


def live_stream() -> list[tuple[str | None, dict]]:
    stream = interleaved()
    return stream[: int(len(stream) * LIVE_CUT)]


def last_event_time(aggregator: EventAggregator) -> datetime:
    with aggregator.lock:
        return max(session.last_event_time for session in aggregator.tracker.sessions.values())


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def saved_store(workdir: Path) -> Config:
    """An activity directory holding three completed sessions (nothing running)."""
    aggregator = EventAggregator(config=config())
    aggregator.start(connect=False)
    feed(aggregator, saved_sessions_stream())
    aggregator.stop()
    return config()


@pytest.fixture
def live_aggregator(saved_store: Config) -> Iterator[EventAggregator]:
    """A started aggregator (writing the store) with three interleaved sessions still open."""
    aggregator = EventAggregator(config=saved_store)
    aggregator.start(connect=False)
    feed(aggregator, live_stream())
    yield aggregator
    if aggregator.running:
        aggregator.stop()


async def wait_for(condition: Callable[[], bool], pilot: Any, timeout: float = 30.0) -> None:
    """Let the app run until ``condition()`` holds (no timing assertion: fails only on the timeout)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        await pilot.pause(0.05)


# --- snapshots are taken of a quiet screen ----------------------------------------------------------


def tables_measured(app: Any) -> bool:
    """Every DataTable on the screen stack has measured its newest cells: a DataTable widens its
    columns when it is next idle, so a screenshot taken before that clips the new text."""
    from rich.cells import cell_len
    from textual.widgets import DataTable

    for screen in app.screen_stack:
        for table in screen.query(DataTable):
            # Measured is not yet laid out: the new widths reach the screen after the idle pass that
            # also updates the table's dimensions (a screenshot between the two clipped "Explore").
            if table._updated_cells or table._new_rows or table._require_update_dimensions:
                return False
            for column in table.ordered_columns:
                if not column.auto_width:
                    continue
                widest = max((cell_len(getattr(cell, "plain", str(cell))) for cell in table.get_column(column.key)),
                             default=0)
                if column.content_width < widest:
                    return False
    return True


def screens_quiet(app: Any) -> bool:
    """No live pane is waiting for its next full pass (counts are refreshed every other tick),
    nor loading a session; no timeline filtering, or following without being at its end; and
    every table measured."""
    from agent_aggregator.tui.screens.live import LiveScreen
    from agent_aggregator.tui.widgets.timeline import Timeline

    for screen in app.screen_stack:
        if isinstance(screen, LiveScreen) and (screen.cells_behind or screen.loading is not None):
            return False
        for timeline in screen.query(Timeline):
            if timeline.filtering:
                return False
            if timeline.follow and timeline.matching_count and (  # the anchor scrolls on the next layout
                timeline.cursor_row != timeline.matching_count - 1 or timeline.scroll_offset.y != timeline.max_scroll_y
            ):
                return False
    return tables_measured(app)


@pytest.fixture
def snap_compare(snap_compare: Callable[..., bool]) -> Callable[..., bool]:
    """pytest-textual-snapshot's ``snap_compare``, which first waits for ``screens_quiet``
    (after ``run_before`` and the key presses): what is compared never depends on where the
    4 Hz refresh or the tables' idle measuring happened to be."""

    def compare(app: Any, *args: Any, press: Any = (), run_before: Any = None, **kwargs: Any) -> bool:
        async def before(pilot: Any) -> None:
            if run_before is not None:
                result = run_before(pilot)
                if inspect.isawaitable(result):
                    await result
            if press:
                await pilot.press(*press)
            await wait_for(lambda: screens_quiet(pilot.app), pilot)
            await pilot.pause()

        return snap_compare(app, *args, run_before=before, **kwargs)

    return compare
