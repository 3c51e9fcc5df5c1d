"""The replay screen: the live screen's panes, driven by a replay instead of capture.

DESIGN sections 1 and 7: replay is a source, so ``ReplayScreen`` *is* a
``LiveScreen`` (same panes, same refresh, same timeline, no second renderer)
whose data comes from a ``ReplayFeed`` instead of the app: the live screen reads
everything through ``self.aggregate_app`` (clock, config, ``reading()``,
``live_sessions()``, ``saved_for_pane()``, ``status_info()``, ``find_live()``
...), and the feed answers those from a ``replay.Replay``. The panes' "now" is
the replayed moment, so durations and running delegations read as they did.

Added on top: a controls line (``ReplayBar``: playing / paused, a progress bar
you can click to seek, elapsed / total replayed time, event n of N, turn, speed,
gap mode) and replay keys; the status line says what is replayed and that
nothing is saved. A timer (10 Hz) runs the replay's clock on wall time.

Opened with ``r`` on the live screen (the selected session) or in the browser
(the highlighted one) via ``open_replay``, or directly by ``aggregate replay
ID|PATH --tui`` (``ReplayApp``: leaving the replay quits).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, ContextManager, Iterable

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import Input

from ...describe import one_line, project_name
from ...errors import SessionNotFoundError
from ...model import ACTIVE, AgentSession, SessionSummary
from ...replay import DEFAULT_GAP_CAP, DEFAULT_SPEED, Replay, gap_label, speed_label
from ..app import AggregateApp
from ..viewstate import RateMeter, StatusInfo
from ..widgets.timeline import Timeline
from .live import LiveScreen, StatusBar

if TYPE_CHECKING:  # pragma: no cover
    from datetime import datetime

REPLAY_MODE = "replay"
TICK_SECONDS = 0.1  # the replay clock's timer; the panes refresh on it only while something changes
WALL_CLOCK: Callable[[], float] = time.monotonic  # what replays run on unless told (tests set a hand-driven one)
# Keys that act anywhere on the screen (tables and the timeline bind arrows and home/end
# themselves), except while the search box has the focus.
PRIORITY_ACTIONS = frozenset({"step", "turn", "seek_start", "seek_end"})
SEEK_PIECE = 1000  # events a seek feeds per frame: a longer seek runs in pieces and the UI keeps answering


def replay_label(session: AgentSession, source: Path | None = None) -> str:
    """What is replayed, for the status line: a file name, or project and short id."""
    if source is not None:
        return one_line(source.name)
    project = project_name(session.working_directory)
    short = one_line(session.session_id[:8])
    return short if project == "-" else f"{one_line(project)} · {short}"


def clock_text(seconds: float) -> str:
    """Replayed time as ``m:ss`` (``h:mm:ss`` past an hour)."""
    whole = int(max(0.0, seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# --- what the live screen reads -----------------------------------------------------------------


class ReplayFeed:
    """The app's read side as the live screen uses it, answered from a replay.

    Anything not replay-specific (``config``, ``batch_update`` ...) is the app's own.
    """

    def __init__(self, app: "AggregateApp", replay: Replay, label: str) -> None:
        self._app = app
        self.replay = replay
        self.label = label
        self.meter = RateMeter()
        self.saved_version = 1  # nothing to list: the replayed session is the only one

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def clock(self) -> "datetime":
        """The replayed moment: the panes measure durations against it."""
        return self.replay.now

    def list_saved_now(self) -> None:
        return None

    def reading(self) -> ContextManager[Any]:
        return nullcontext()  # the replay changes only on the UI thread

    def live_sessions(self) -> dict[str, AgentSession]:
        return {self.replay.session_id: self.replay.session}

    def saved_for_pane(self, keep: Iterable[str]) -> list[SessionSummary]:
        return []

    def find_live(self, session_id: str) -> AgentSession | None:
        return self.replay.session if session_id == self.replay.session_id else None

    def load_session(self, session_id: str, on_tail: Callable[[AgentSession], None] | None = None) -> AgentSession:
        session = self.find_live(session_id)
        if session is None:
            raise SessionNotFoundError(f"not in this replay: {session_id}")
        return session

    def browser_rows(self) -> list[SessionSummary]:
        session = self.replay.session
        return [SessionSummary.of(session, Path(self.label))]

    def status_info(self) -> StatusInfo:
        replay = self.replay
        return StatusInfo(
            mode=REPLAY_MODE,
            connection=f"replay of {self.label}",
            connected=replay.playing,
            address="",
            rate=self.meter.rate(),
            active=1 if replay.session.status == ACTIVE else 0,
            total=replay.cursor,
            directory=str(self._app.config.activity_directory),
        )


# --- widgets ------------------------------------------------------------------------------------


class ReplayStatusBar(StatusBar):
    """The live status line, saying what is replayed: the source, events/s, how far, read only."""

    def __init__(self, replay: Replay, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.replay = replay

    def text_for(self, info: StatusInfo) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("◉ " if info.connected else "○ ", style="bold magenta" if info.connected else "magenta")
        text.append(info.connection, style="bold")
        text.append("  (read only: nothing is saved)", style="dim")
        text.append("  │  ", style="dim")
        text.append(f"{info.rate:,.1f}", style="bold")
        text.append(" ev/s", style="dim")
        text.append("  │  ", style="dim")
        text.append(f"{info.total:,}", style="bold")
        text.append(f" of {self.replay.total:,} events replayed", style="dim")
        return text


class ReplayBar(Widget):
    """One line: state, a progress bar (click to seek), elapsed / total, event n of N, turn, speed, gaps."""

    DEFAULT_CSS = """
    ReplayBar {
        height: 1;
        padding: 0 1;
        background: $boost;
        color: $foreground;
    }
    """

    MIN_BAR = 10

    def __init__(self, replay: Replay, on_seek: Callable[[float], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.replay = replay
        self.on_seek = on_seek
        self.seeking: int | None = None  # the cursor a seek in pieces is going to
        self._bar: tuple[int, int] = (0, 0)  # (first column, width) of the bar in the last render

    def _state(self) -> tuple[str, str]:
        replay = self.replay
        if self.seeking is not None:
            return " ⏩ SEEKING ", "bold reverse magenta"
        if replay.playing:
            return " ▶ PLAYING ", "bold reverse green"
        if replay.at_end:
            return " ■ END ", "bold reverse blue"
        return " ⏸ PAUSED ", "bold reverse yellow"

    def _details(self) -> Text:
        replay = self.replay
        text = Text(no_wrap=True)
        text.append(f"{clock_text(replay.elapsed)} / {clock_text(replay.duration)}", style="bold")
        text.append("  │  ", style="dim")
        text.append("event ", style="dim")
        text.append(f"{replay.cursor:,}", style="bold")
        text.append(f" of {replay.total:,}", style="dim")
        if replay.turns:
            text.append("  │  ", style="dim")
            text.append("turn ", style="dim")
            text.append(f"{replay.turn}", style="bold")
            text.append(f" of {replay.turns}", style="dim")
        text.append("  │  ", style="dim")
        text.append(speed_label(replay.speed), style="bold cyan")
        text.append("  │  ", style="dim")
        text.append(gap_label(replay.gap_cap), style="cyan")
        return text

    def render(self) -> Text:
        label, style = self._state()
        details = self._details()
        width = max(0, self.size.width)
        used = len(label) + 2 + 2 + details.cell_len
        bar_width = max(self.MIN_BAR, width - used)
        filled = round(self.replay.progress * bar_width)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(label, style=style)
        text.append("  ")
        self._bar = (text.cell_len, bar_width)
        text.append("━" * filled, style="bold magenta")
        text.append("━" * (bar_width - filled), style="dim")
        text.append("  ")
        text.append_text(details)
        return text

    def on_click(self, event: events.Click) -> None:
        start, width = self._bar
        column = event.x - self.styles.padding.left
        if width and start <= column < start + width:
            event.stop()
            self.on_seek((column - start + 0.5) / width)


# --- the screen ---------------------------------------------------------------------------------


class ReplayScreen(LiveScreen):
    """A saved session played back through the live screen's panes."""

    BINDING_GROUP_TITLE = "Replay"
    LEAVES_ON_Q = True  # AggregateApp lets "q" through to this screen instead of quitting

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_play", "Play/Pause", id="replay.play", tooltip="Play or pause the replay"),
        Binding("left", "step(-1)", "Back", priority=True, show=False, id="replay.step-back",
                tooltip="One event back (pauses)"),
        Binding("right", "step(1)", "Step", priority=True, id="replay.step", show=False, tooltip="One event forward (pauses)"),
        Binding("shift+left", "turn(-1)", "Previous turn", priority=True, show=False, id="replay.turn-back",
                tooltip="Back to the start of this turn (a user prompt), or the one before"),
        Binding("shift+right", "turn(1)", "Next turn", priority=True, show=False, id="replay.turn",
                tooltip="Forward to the next user prompt"),
        Binding("plus,equals_sign", "faster", "Faster", id="replay.faster", show=False,
                tooltip="Speed up: 0.5x 1x 2x 5x 10x max"),
        Binding("minus", "slower", "Slower", id="replay.slower", show=False, tooltip="Slow down"),
        Binding("home", "seek_start", "Start", priority=True, show=False, id="replay.start",
                tooltip="Back to the first event"),
        Binding("end", "seek_end", "End", priority=True, show=False, id="replay.end",
                tooltip="To the last event: the session as it was saved"),
        Binding("t", "toggle_gaps", "Timing", id="replay.timing", show=False,
                tooltip="Real timing, or idle gaps compressed to 1 s"),
        Binding("escape", "leave", "Leave replay", id="replay.leave",
                tooltip="Clear the search if one is active, else leave the replay"),
        # the live screen's c and f, kept out of the footer so it fits 80 columns (still in ? help)
        Binding("c", "categories", "Categories", show=False, tooltip="Choose which event categories the timeline shows"),
        Binding("f", "toggle_follow", "Follow", show=False, tooltip="Keep the timeline at the newest event"),
        Binding("q", "leave('q')", "Leave replay", priority=True, show=False, id="replay.leave-q",
                tooltip="Leave the replay (ctrl+q quits)"),
    ]

    def __init__(
        self,
        session: AgentSession,
        *,
        label: str | None = None,
        speed: float = DEFAULT_SPEED,
        gap_cap: float | None = DEFAULT_GAP_CAP,
        autoplay: bool = True,
        exit_on_leave: bool = False,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """``session`` is replayed and never changed. ``monotonic``: the wall clock the
        replay runs on (default ``WALL_CLOCK``; tests drive one by hand). ``exit_on_leave``: leaving quits the app
        (``aggregate replay --tui``)."""
        super().__init__()
        self.replay = Replay(session, speed=speed, gap_cap=gap_cap)
        self.label = label or replay_label(session)
        self.exit_on_leave = exit_on_leave
        self._autoplay = autoplay
        self._monotonic = monotonic or WALL_CLOCK
        self._last_tick = self._monotonic()
        self._shown_cursor = -1
        self._feed: ReplayFeed | None = None
        self.seek_piece = SEEK_PIECE
        self.seeking: int | None = None  # where a seek in pieces is going (None: no seek under way)
        self.seek_pieces = 0  # pieces run by seeks so far (a long seek takes more than one)

    @property
    def aggregate_app(self) -> "AggregateApp":
        """The live screen reads through this: here, the replay's feed."""
        if self._feed is None:
            self._feed = ReplayFeed(self.app, self.replay, self.label)  # type: ignore[arg-type]
        return self._feed  # type: ignore[return-value]

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """The live screen's layout, with the controls line above the status line."""
        for widget in super().compose():
            if isinstance(widget, StatusBar):
                yield ReplayBar(self.replay, self.seek_fraction, id="replay-bar")
                yield ReplayStatusBar(self.replay, id="status")
                continue
            yield widget

    def on_mount(self) -> None:
        # LiveScreen.on_mount runs after this one (Textual calls every class's handler).
        self.sub_title = f"replay · {self.label}"
        self._last_tick = self._monotonic()
        if self._autoplay:
            self.replay.play()
        self.set_interval(TICK_SECONDS, self.tick, name="replay-clock")

    def _focus_sessions(self) -> None:
        """LiveScreen focuses its sessions pane after the first frame; a replay has one
        session, so the timeline gets the focus instead."""
        self.query_one(Timeline).focus()

    # -- the clock ------------------------------------------------------------------------------

    def tick(self) -> None:
        """Run the replay's clock by the wall time since the last tick, then update the panes."""
        now = self._monotonic()
        elapsed, self._last_tick = now - self._last_tick, now
        if not self.is_running:
            return
        was_playing = self.replay.playing
        self.replay.advance(elapsed)
        feed = self.aggregate_app
        if isinstance(feed, ReplayFeed):
            feed.meter.add(now, self.replay.cursor)
        if was_playing or self.replay.cursor != self._shown_cursor:
            self.update_view()

    def update_view(self) -> None:
        """Bring the panes and the controls line to the replay's state (after a key or a tick)."""
        self._shown_cursor = self.replay.cursor
        self.refresh_view()
        bar = self.query_one(ReplayBar)
        bar.seeking = self.seeking
        bar.refresh()
        self.refresh_bindings()

    # -- seeking --------------------------------------------------------------------------------

    def seek(self, index: int) -> None:
        """Put the cursor after ``index`` events: at once when that is cheap (a checkpoint
        is near), else in pieces of ``seek_piece`` events, one per frame, so keys and
        redraws go on meanwhile (a new seek or play replaces it)."""
        self.replay.pause()
        if self.replay.seek_cost(index) <= self.seek_piece:
            self.seeking = None
            self.replay.seek(index)
            self.update_view()
            return
        self.seeking = index
        self._seek_piece()

    def _seek_piece(self) -> None:
        if self.seeking is None or not self.is_attached:
            return
        self.seek_pieces += 1
        if self.replay.seek_toward(self.seeking, self.seek_piece):
            self.seeking = None
        else:
            self.set_timer(0.001, self._seek_piece, name="replay-seek")
        self.update_view()

    # -- keys -----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("browse", "replay"):
            return False  # one session, and no replay inside a replay
        if isinstance(self.focused, Input) and (action in PRIORITY_ACTIONS or (action == "leave" and parameters)):
            return False  # the search box keeps its arrows, home / end and q (escape closes it)
        return super().check_action(action, parameters)

    def _resync_clock(self) -> None:
        self._last_tick = self._monotonic()

    def action_toggle_play(self) -> None:
        if self.seeking is not None:  # stop seeking where it got to, and play from there
            self.seeking = None
            self.replay.play()
        else:
            self.replay.toggle()
        self._resync_clock()
        self.update_view()

    def action_step(self, delta: int) -> None:
        self.seek((self.seeking if self.seeking is not None else self.replay.cursor) + delta)

    def action_turn(self, delta: int) -> None:
        self.seek(self.replay.turn_target(delta))

    def action_seek_start(self) -> None:
        self.seek(0)

    def action_seek_end(self) -> None:
        self.seek(self.replay.total)

    def seek_fraction(self, fraction: float) -> None:
        """Seek to a share of the replayed time (a click on the progress bar)."""
        self.seek(self.replay.fraction_target(fraction))

    def action_faster(self) -> None:
        self.replay.faster()
        self.update_view()

    def action_slower(self) -> None:
        self.replay.slower()
        self.update_view()

    def action_toggle_gaps(self) -> None:
        self.replay.toggle_gaps(DEFAULT_GAP_CAP)
        self.update_view()

    def action_leave(self, key: str = "escape") -> None:
        """Escape clears an active search first; otherwise (and on q) leave the replay."""
        search = self.query_one("#search", Input)
        if key == "escape" and (search.display or self.query_one(Timeline).search):
            self.action_clear_search()
            return
        self.replay.pause()
        if self.exit_on_leave:
            self.app.exit()
        else:
            self.dismiss()


# --- opening a replay ---------------------------------------------------------------------------


def snapshot(app: "AggregateApp", session: AgentSession) -> AgentSession:
    """A session to replay: a live one is copied under the aggregator's lock (it keeps
    growing); a loaded one is used as is (a replay never changes what it replays)."""
    if app.find_live(session.session_id) is session:
        with app.reading():
            return AgentSession.from_dict(session.to_dict())
    return session


def open_replay(app: "AggregateApp", session_id: str | None, session: AgentSession | None = None) -> None:
    """Replay a session on top of the current screen (key ``r``).

    With ``session`` (the live screen's current one) it opens at once; with only an id
    the session is loaded in a worker first (a big one takes a moment); failures are
    shown as a notification by the app's worker handler.
    """
    if session is not None:
        app.push_screen(ReplayScreen(snapshot(app, session)))
        return
    if not session_id:
        app.notify("No session selected to replay.", severity="warning")
        return

    def load() -> None:
        live = app.find_live(session_id)
        loaded = snapshot(app, live) if live is not None else app.load_session(session_id)
        app.call_from_thread(app.push_screen, ReplayScreen(loaded))

    app.run_worker(load, thread=True, exclusive=True, group="replay", exit_on_error=False,
                   description="Loading a session to replay")


class ReplayApp(AggregateApp):
    """``aggregate replay ID|PATH --tui``: the app with the replay as its screen; leaving it quits.

    Nothing is captured (``connect=False``) and nothing is written."""

    def __init__(
        self,
        config: Any,
        session: AgentSession,
        *,
        label: str | None = None,
        speed: float = DEFAULT_SPEED,
        gap_cap: float | None = DEFAULT_GAP_CAP,
        autoplay: bool = True,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(config, connect=False)
        self._replay_screen = ReplayScreen(
            session, label=label, speed=speed, gap_cap=gap_cap, autoplay=autoplay, exit_on_leave=True,
            monotonic=monotonic,
        )

    def get_default_screen(self) -> LiveScreen:
        return self._replay_screen


__all__ = [
    "ReplayApp",
    "ReplayBar",
    "ReplayFeed",
    "ReplayScreen",
    "ReplayStatusBar",
    "clock_text",
    "open_replay",
    "replay_label",
    "snapshot",
]
