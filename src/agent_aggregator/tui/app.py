"""AggregateApp: the Textual app behind ``aggregate tui``.

It owns the ``EventAggregator`` (the same one ``aggregate start`` runs) and the
store, and nothing else: screens render from them.

* On mount the saved sessions are listed at once (the store's index makes that
  fast); live capture starts in a thread worker, so the first frame never waits
  for a socket. The aggregator runs its own runtime thread: the built-in hub when
  nothing answers on the dashboard port, else a client of claude-mpm's monitor or
  of a hub.
* When another aggregator already writes the activity directory (``aggregate
  start``: ``StoreLockedError``) the app *follows* it: an aggregator that never
  takes nor writes the directory, seeded with the writer's open sessions from the
  store, listening to the same server as a Socket.IO client (events deduplicate by
  event id). When that writer goes away (the directory's lock is free) the app
  takes over as the writer (``takeover.py``); if another follower won the lock,
  it follows that one.
* The live screen refreshes from aggregator state on a timer (4 Hz), never once
  per event; the store listing is re-read every few seconds in a thread.
* Quitting stops the aggregator in a thread (it saves every active session) and
  only then exits: quitting never loses captured events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from contextlib import nullcontext
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, ContextManager, Iterable

from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, TextArea
from textual.worker import Worker, WorkerState

from ..aggregator import START_TIMEOUT, EventAggregator
from ..tracker import rebuild_session
from ..config import Config
from ..describe import one_line
from ..errors import StoreLockedError
from ..model import ACTIVE, AgentSession, SessionSummary
from ..store import SessionStore
from ..takeover import Handover, follow_config, start_follower, take_over
from ..timeutil import now_utc
from .viewstate import (
    BROWSE,
    FAILED_MODE,
    FOLLOWER,
    STARTING,
    STOPPING,
    WRITER,
    RateMeter,
    StatusInfo,
    recent_summaries,
)

if TYPE_CHECKING:  # pragma: no cover
    from .screens.live import LiveScreen

log = logging.getLogger("agent_aggregator.tui")

REFRESH_INTERVAL = 0.25  # seconds: the live screen pulls aggregator state 4 times a second
STORE_POLL_INTERVAL = 2.0  # seconds between store listings (another writer's sessions, finished ones)
WATCH_INTERVAL = 1.0  # seconds between a follower's looks at the directory's lock (is the writer there?)
WATCH_INTERVAL_DISCONNECTED = 0.25  # ... while its Socket.IO client is disconnected (a hint the writer left)
LOADED_CACHE_SIZE = 2  # saved sessions kept loaded (a 100,000-event session is ~100 MB)


class IngestStarted(Message):
    """The ingest worker has a running aggregator (writing or following)."""

    def __init__(self, aggregator: EventAggregator, mode: str, follow_pid: int | None,
                 gone_pid: int | None = None, carried: int = 0) -> None:
        super().__init__()
        self.aggregator = aggregator
        self.mode = mode
        self.follow_pid = follow_pid
        self.gone_pid = gone_pid  # set after a takeover: the writer that went away
        self.carried = carried


class SavedListed(Message):
    """A fresh listing of the store (newest first), taken at ``taken_at`` (monotonic)."""

    def __init__(self, summaries: list[SessionSummary], taken_at: float) -> None:
        super().__init__()
        self.summaries = summaries
        self.taken_at = taken_at

    def can_replace(self, message: Message) -> bool:  # only the newest listing matters
        return isinstance(message, SavedListed)


class Logged(Message):
    """A warning the aggregator logged (from any thread), shown as a notification."""

    def __init__(self, text: str, error: bool) -> None:
        super().__init__()
        self.text = text
        self.error = error


# Counted and shown by ``aggregate status``; a toast for each kind would only puzzle.
QUIET_PREFIXES = ("rejected event",)


class _NotifyHandler(logging.Handler):
    """Routes the package's warnings to the screen: the terminal belongs to the app, so
    stderr is off (``setup_logging(stderr=False)``). ``post_message`` is thread-safe and
    never blocks, so a warning logged under the aggregator's lock cannot deadlock the UI."""

    def __init__(self, app: "AggregateApp") -> None:
        super().__init__(logging.WARNING)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "file_only", False) or str(record.msg).startswith(QUIET_PREFIXES):
            return
        try:
            text = one_line(record.getMessage())
        except Exception:  # noqa: BLE001 - a bad log call must not break the UI
            return
        self.app.post_message(Logged(text, record.levelno >= logging.ERROR))


# --- the command palette ----------------------------------------------------------------------

# (title, action run on the live screen, help); the palette mirrors the keys.
LIVE_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("Focus sessions pane", "focus_pane('sessions')", "Sessions list (key 1)"),
    ("Focus timeline pane", "focus_pane('timeline')", "The selected session's events (key 2)"),
    ("Focus delegations pane", "focus_pane('delegations')", "Subagents of the selected session (key 3)"),
    ("Focus files pane", "focus_pane('files')", "Files the selected session modified (key 4)"),
    ("Search the timeline", "search", "Show only events whose line contains a text (key /)"),
    ("Clear the timeline search", "clear_search", "Show every event again (escape)"),
    ("Filter categories", "categories", "Choose the event categories the timeline shows (key c)"),
    ("Minimum importance", "min_importance", "Show only events rated at least 3, 5, 7, 9 (SSE sources; key m)"),
    ("Browse saved sessions", "browse", "Every saved session: sort, filter, open (key s)"),
    ("Toggle follow", "toggle_follow", "Keep the timeline on the newest event (key f)"),
    ("Export the session", "export", "Write the shown session or its filtered events to a file (key e)"),
    ("Replay the session", "replay", "Play the shown session back: step, seek, speed (key r)"),
)
APP_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("Help", "help", "Keys and panes (key ?)"),
    ("Quit", "quit", "Save every active session and quit (key q)"),
)


class AggregateCommands(Provider):
    """The palette's commands: the same actions as the keys, for discoverability."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        from .screens.live import LiveScreen

        app = self.app
        commands: list[tuple[str, Callable[[], Any], str]] = []
        if isinstance(self.screen, LiveScreen):
            screen = self.screen
            commands += [(title, partial(screen.run_action, action), help) for title, action, help in LIVE_COMMANDS]
        commands += [(title, partial(app.run_action, action), help) for title, action, help in APP_COMMANDS]
        return commands

    async def discover(self) -> Hits:
        for title, callback, help in self._commands():
            yield DiscoveryHit(title, callback, help=help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help)


# --- the app ------------------------------------------------------------------------------------


class AggregateApp(App[None]):
    """Live monitor and session browser for agent activity."""

    TITLE = "agent-aggregator"
    CSS_PATH = Path(__file__).parent / "aggregate.tcss"  # absolute: subclasses live elsewhere
    COMMANDS = App.COMMANDS | {AggregateCommands}
    BINDING_GROUP_TITLE = "App"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", priority=True, id="app.quit",
                tooltip="Save every active session and quit (not while typing in a text box)"),
        Binding("ctrl+q", "quit_now", "Quit", show=False, priority=True, id="app.quit-now",
                tooltip="Save every active session and quit, even while typing"),
        Binding("question_mark", "help", "Help", id="app.help", tooltip="Keys and what each pane shows"),
    ]

    def __init__(
        self,
        config: Config,
        *,
        connect: bool = True,
        clock: Callable[[], datetime] = now_utc,
        refresh_interval: float = REFRESH_INTERVAL,
        store_poll_interval: float = STORE_POLL_INTERVAL,
        aggregator: EventAggregator | None = None,
    ) -> None:
        """``connect``: capture live (else only browse the store). ``clock``: every "now"
        the screens show. ``aggregator``: an already started one to show instead of
        starting capture (tests, replay); the app stops it on quit."""
        super().__init__()
        self.config = config
        self.connect = connect
        self.clock = clock
        self.refresh_interval = refresh_interval
        self.store_poll_interval = store_poll_interval
        self.store = SessionStore(config.activity_directory, rebuild=rebuild_session)
        self.aggregator: EventAggregator | None = None
        self.mode = STARTING if connect else BROWSE
        self.follow_pid: int | None = None
        self.ingest_error: str | None = None
        self.saved: list[SessionSummary] = []  # the last store listing, newest first
        self.saved_by_id: dict[str, SessionSummary] = {}
        self.saved_recent: list[SessionSummary] = []  # what the sessions pane merges every tick
        self.saved_version = 0  # bumped by every listing
        self.meter = RateMeter()
        self._pending: EventAggregator | None = None  # being started by the ingest worker
        self._ingest_done = threading.Event()
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._quitting = False
        self._listed_at = float("-inf")
        self._departed: dict[str, tuple[AgentSession, float]] = {}  # left the tracker; not listed since
        self._tracked: dict[str, AgentSession] = {}
        self._completed_seen = 0
        self._loaded: OrderedDict[tuple[str, int], AgentSession] = OrderedDict()
        self._loaded_lock = threading.Lock()
        self._log_handler: logging.Handler = logging.NullHandler()
        if aggregator is not None:
            self.aggregator = aggregator
            self.store = aggregator.store
            self.mode = WRITER if aggregator.writes else FOLLOWER
            self.follow_pid = None if aggregator.writes else self.store.writer_pid()
            self.connect = False
        if not self.connect:
            self._ingest_done.set()
        # Only a follower this app started itself takes over when its writer goes away
        # (one handed in belongs to the caller: tests, replay).
        self.takes_over = self.connect
        self.takeover_note: str | None = None  # the status bar's line while taking over
        self.took_over_from: int | None = None  # the pid of the writer this window replaced (0: unknown)
        self._watched_at = float("-inf")

    # -- screens ------------------------------------------------------------------------------

    def get_default_screen(self) -> "LiveScreen":
        from .screens.live import LiveScreen

        return LiveScreen()

    @property
    def live_screen(self) -> "LiveScreen":
        from .screens.live import LiveScreen

        for screen in self.screen_stack:
            if isinstance(screen, LiveScreen):
                return screen
        raise LookupError("no live screen")

    def list_saved_now(self) -> None:
        """The first listing, synchronous (the store's index makes it fast): the first frame has the sessions."""
        self._listed_at = time.monotonic()
        self._take_listing(self._list_saved())

    def _take_listing(self, summaries: list[SessionSummary]) -> None:
        self.saved = summaries
        self.saved_by_id = {summary.session_id: summary for summary in summaries}
        self.saved_recent = recent_summaries(summaries)
        self.saved_version += 1

    def on_mount(self) -> None:
        self._log_handler = _NotifyHandler(self)
        logging.getLogger("agent_aggregator").addHandler(self._log_handler)
        if self.saved_version == 0:
            self.list_saved_now()
        self.set_interval(self.refresh_interval, self.refresh_live, name="refresh")
        self.set_interval(self.store_poll_interval, self.poll_store, name="store-poll")
        if self.connect:
            self._ingest_done.clear()
            self.start_ingest()

    def on_unmount(self) -> None:
        logging.getLogger("agent_aggregator").removeHandler(self._log_handler)

    def on_logged(self, message: Logged) -> None:
        # markup=False: log lines quote session ids and payload text, which must show literally
        self.notify(message.text, severity="error" if message.error else "warning", timeout=8, markup=False)

    def refresh_live(self) -> None:
        """The timer: sample the event meter, then let the live screen pull what changed."""
        if not self.is_running:
            return  # shutting down: the screens' widgets are being removed under the timer
        aggregator = self.aggregator
        if aggregator is not None:
            self.meter.add(self.clock().timestamp(), aggregator.total_events)
            completed = len(aggregator.get_completed_sessions())
            if completed != self._completed_seen:  # a session was saved: list the store again soon
                self._completed_seen = completed
                self.poll_store()
            self._watch_writer()
        try:
            screen = self.live_screen
        except LookupError:
            return
        screen.refresh_view()

    # -- ingest ---------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="ingest", exit_on_error=False, description="Starting live capture")
    def start_ingest(self) -> None:
        """Write (own the directory) when possible, else follow the aggregator that does."""
        try:
            aggregator = EventAggregator(config=self.config, store=self.store)
            self._pending = aggregator
            try:
                aggregator.start(connect=True)
            except StoreLockedError:
                pass
            else:
                self.post_message(IngestStarted(aggregator, WRITER, None))
                return
            pid = self.store.writer_pid()
            follower = start_follower(follow_config(self.config, pid), self.store, pending=self._set_pending)
            self.post_message(IngestStarted(follower, FOLLOWER, pid))
        finally:
            self._ingest_done.set()

    def _set_pending(self, aggregator: EventAggregator) -> None:
        """The aggregator being started (a quit meanwhile stops it: ``_pending``)."""
        self._pending = aggregator

    def _watch_writer(self) -> None:
        """A follower looks whether its writer is still there (the timer; cheap: one flock probe).

        Proof it has gone is the directory's lock being free; the follower's client
        being disconnected only makes it look more often (a writer restarting its hub
        keeps the lock). Another pid holding the lock means another writer took over.
        """
        aggregator = self.aggregator
        if (not self.takes_over or self.mode != FOLLOWER or aggregator is None or self._stopped
                or self._quitting or not self._ingest_done.is_set()):
            return
        now = time.monotonic()
        interval = WATCH_INTERVAL if aggregator.connected else WATCH_INTERVAL_DISCONNECTED
        if now - self._watched_at < interval:
            return
        self._watched_at = now
        try:
            pid = self.store.writer_pid()
        except OSError as error:  # a lock the filesystem will not probe (NFS): look again later
            log.debug("cannot probe the writer lock: %s", error)
            return
        if pid == 0 or (pid is not None and pid == self.follow_pid):
            return
        gone = self.follow_pid
        self.takeover_note = (f"the aggregator with pid {gone or '?'} exited: taking over..." if pid is None
                              else f"another aggregator (pid {pid}) writes now: following it...")
        self._ingest_done.clear()  # stop_ingest() waits for the switch, as for the first start
        self._take_over(aggregator, gone)  # refresh_live (the caller) shows the note next

    @work(thread=True, exclusive=True, group="ingest", exit_on_error=False, description="Taking over live capture")
    def _take_over(self, follower: EventAggregator, gone_pid: int | None) -> None:
        """The writer went away: write the directory here, or follow whoever won it (``takeover.py``)."""
        try:
            if self._stopped:
                return

            handover: Handover = take_over(follower, self.config, gone_pid, pending=self._set_pending,
                                           stopped=lambda: self._stopped)
            self.post_message(IngestStarted(handover.aggregator, WRITER if handover.writes else FOLLOWER,
                                            handover.writer_pid, gone_pid=gone_pid or 0, carried=handover.carried))
        finally:
            self._ingest_done.set()

    def on_ingest_started(self, message: IngestStarted) -> None:
        if self._stopped:
            return
        switched = message.aggregator is not self.aggregator
        self.aggregator = message.aggregator
        self.store = message.aggregator.store  # a writer that took over has a store of its own
        self.mode = message.mode
        previous, self.follow_pid = self.follow_pid, message.follow_pid
        self.ingest_error = None
        self.takeover_note = None
        if switched:
            self.meter = RateMeter()
        if message.gone_pid is not None:
            self._tell_takeover(message, previous)
        self.poll_store()
        self.refresh_live()

    def _tell_takeover(self, message: IngestStarted, previous: int | None) -> None:
        """Say what happened to the writer this window followed, and who captures now."""
        gone = f"the aggregator with pid {message.gone_pid}" if message.gone_pid else "the aggregator followed"
        if message.mode == WRITER:
            self.took_over_from = message.gone_pid
            text = f"{gone} exited: this window now captures (on {self.listen_address()})"
            if message.carried:
                text += f"; {message.carried} events only this window had were saved"
            log.info("%s", text)
            self.notify(text, title="Capturing here", timeout=10, markup=False)
        elif message.follow_pid != previous:
            text = f"{gone} exited: following pid {message.follow_pid or '?'}, which took over"
            self.notify(text, title="Following", timeout=10, markup=False)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state != WorkerState.ERROR:
            return
        reason = one_line(str(worker.error)) or type(worker.error).__name__
        if worker.group == "ingest":
            self.mode = FAILED_MODE
            self.ingest_error = reason
            self.notify(f"Live capture could not start: {reason}. Saved sessions can still be browsed.",
                        title="Not capturing", severity="error", timeout=10, markup=False)
            self.refresh_live()
        elif worker.group == "store":
            log.warning("listing the store failed: %s", reason)
        else:
            self.notify(reason, title="Error", severity="error", markup=False)

    def stop_ingest(self) -> None:
        """Stop capturing and save every active session (blocking; any thread; idempotent)."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            pending = self._pending
            if pending is not None and not self._ingest_done.is_set() and pending.runtime is not None:
                pending.runtime.request_stop()  # abort a connect still in progress
            self._ingest_done.wait(START_TIMEOUT + 5)
            for aggregator in {id(a): a for a in (self.aggregator, self._pending) if a is not None}.values():
                if aggregator.running:
                    aggregator.stop()

    @work(thread=True, exclusive=True, group="shutdown", exit_on_error=False, description="Saving sessions")
    def _stop_worker(self) -> None:
        self.stop_ingest()

    async def action_quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        if self.mode in (WRITER, FOLLOWER, STARTING):
            self.mode = STOPPING
            self.refresh_live()
        worker = self._stop_worker()
        try:
            await worker.wait()
        except Exception:  # noqa: BLE001 - reported by _worker_failed; exit anyway
            log.warning("stopping the aggregator failed", exc_info=True)
        self.exit()

    async def action_quit_now(self) -> None:
        await self.action_quit()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "quit" and (isinstance(self.focused, (Input, TextArea)) or isinstance(self.screen, ModalScreen)):
            return False  # "q" types a q in a text box and closes a dialog; ctrl+q always quits
        if action == "quit" and getattr(self.screen, "LEAVES_ON_Q", False):
            return False  # the replay screen's "q" leaves the replay (ctrl+q still quits)
        return True

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.config.activity_directory))

    # -- what screens read ------------------------------------------------------------------------

    def reading(self) -> ContextManager[Any]:
        """Hold this while reading live sessions (the aggregator's lock)."""
        aggregator = self.aggregator
        return aggregator.lock if aggregator is not None else nullcontext()

    def live_sessions(self) -> dict[str, AgentSession]:
        """Sessions in memory: tracked ones, plus those just completed that no listing shows yet.

        Call inside ``reading()``.
        """
        aggregator = self.aggregator
        if aggregator is None:
            return {}
        tracked = dict(aggregator.tracker.sessions)
        now = time.monotonic()
        for session_id, session in self._tracked.items():
            if session_id not in tracked:
                self._departed[session_id] = (session, now)
        for session_id in tracked:
            self._departed.pop(session_id, None)
        self._tracked = tracked
        sessions = {session_id: session for session_id, (session, _) in self._departed.items()}
        sessions.update(tracked)
        return sessions

    def status_info(self) -> StatusInfo:
        aggregator = self.aggregator
        if aggregator is not None:
            status = aggregator.get_status()
            connection, connected = status["connection_state"], bool(status["connected"])
            active, total = status["active_sessions"], status["total_events"]
        else:
            connection = "capture off (--no-connect)" if self.mode == BROWSE else f"starting on {self._configured_address()}"
            connected, active, total = False, 0, 0
        if self.mode == FAILED_MODE:
            connection = f"not capturing: {self.ingest_error}"
        elif self.mode == STOPPING:
            connection = "saving every active session..."
        elif self.takeover_note is not None:
            connection = self.takeover_note
        elif self.mode == WRITER and self.took_over_from is not None:
            connection += f" (took over from pid {self.took_over_from or '?'})"
        return StatusInfo(
            mode=self.mode,
            connection=one_line(connection),
            connected=connected,
            address=self.listen_address(),
            rate=self.meter.rate(),
            active=active,
            total=total,
            follow_pid=self.follow_pid,
            error=self.ingest_error,
            directory=str(self.config.activity_directory),
        )

    def listen_address(self) -> str:
        """Where events arrive: the hub's address, the server listened to, or the configured one."""
        aggregator = self.aggregator
        runtime = aggregator.runtime if aggregator is not None else None
        if runtime is not None:
            if runtime.hub is not None:
                host = runtime.hub.host
                return f"[{host}]:{runtime.hub.port}" if ":" in host else f"{host}:{runtime.hub.port}"
            if runtime.source is not None:
                return runtime.source.server
        return self._configured_address()

    def _configured_address(self) -> str:
        """host:port from the configuration, "localhost" as the hub binds it (without importing
        the hub: aiohttp and socketio would cost the first frame a third of a second)."""
        host = self.config.dashboard_host
        host = "127.0.0.1" if host.lower() in ("localhost", "") else host
        return f"[{host}]:{self.config.dashboard_port}" if ":" in host else f"{host}:{self.config.dashboard_port}"

    # -- the store -----------------------------------------------------------------------------------

    def _list_saved(self) -> list[SessionSummary]:
        try:
            return self.store.list_sessions()
        except Exception as error:  # noqa: BLE001 - an unreadable directory must not stop the UI
            log.warning("cannot list %s: %s", self.config.activity_directory, error)
            return []

    def poll_store(self) -> None:
        self._list_worker()

    @work(thread=True, exclusive=True, group="store", exit_on_error=False, description="Listing saved sessions")
    def _list_worker(self) -> None:
        taken_at = time.monotonic()
        self.post_message(SavedListed(self.store.list_sessions(), taken_at))

    def on_saved_listed(self, message: SavedListed) -> None:
        if message.taken_at < self._listed_at:
            return
        self._listed_at = message.taken_at
        self._take_listing(message.summaries)
        if self.aggregator is not None and self.mode == FOLLOWER:  # ended by the writer without telling us
            self.aggregator.release_ended(message.summaries)
        for session_id, (session, departed_at) in list(self._departed.items()):
            summary = self.saved_by_id.get(session_id)
            if summary is not None and departed_at < message.taken_at and summary.status != ACTIVE:
                del self._departed[session_id]

    def browser_rows(self) -> list[SessionSummary]:
        """Every session for the browser: the store's, with live ones as they are now (live wins)."""
        summaries = {summary.session_id: summary for summary in self.saved}  # the last listing (every 2 s)
        with self.reading():
            for session in self.live_sessions().values():
                summaries[session.session_id] = SessionSummary.of(session, self._path_of(session))
        return list(summaries.values())

    def _path_of(self, session: AgentSession) -> Path:
        aggregator = self.aggregator
        if aggregator is not None:
            return aggregator.store_path(session)
        return Path(self.config.activity_directory)

    def find_live(self, session_id: str) -> AgentSession | None:
        with self.reading():
            return self.live_sessions().get(session_id)

    def load_session(self, session_id: str, on_tail: Callable[[AgentSession], None] | None = None) -> AgentSession:
        """A session by id: the live object when in memory, else loaded from the store (blocking).

        Loaded sessions are cached (by id and event count, so a session another
        process is still writing is read again when it grew). ``on_tail``: see
        ``SessionStore.load`` (a big file's last events, before the whole).
        """
        live = self.find_live(session_id)
        if live is not None:
            return live
        summary = self.saved_by_id.get(session_id)
        key = (session_id, summary.event_count if summary is not None else -1)
        with self._loaded_lock:
            cached = self._loaded.get(key)
            if cached is not None:
                self._loaded.move_to_end(key)
                return cached
        session = self.store.load(summary.file_path if summary is not None else session_id, on_tail=on_tail)
        with self._loaded_lock:
            self._loaded[key] = session
            while len(self._loaded) > LOADED_CACHE_SIZE:
                self._loaded.popitem(last=False)
        return session

    def saved_for_pane(self, keep: Iterable[str]) -> list[SessionSummary]:
        """The listing's recent part, plus the sessions in ``keep`` (selected, opened from the browser)."""
        extra = [self.saved_by_id[session_id] for session_id in keep if session_id in self.saved_by_id]
        return [*self.saved_recent, *extra] if extra else self.saved_recent


__all__ = ["AggregateApp", "AggregateCommands", "IngestStarted", "Logged", "SavedListed"]
