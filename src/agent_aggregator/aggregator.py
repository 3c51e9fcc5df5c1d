"""EventAggregator: the seeds' service object around the session tracker.

It owns the lifecycle (sessions open, turn ends, completion, idle timeout,
resume, recovery), the journal and saves through ``SessionStore``, and the
counters behind ``get_status()``. What an event *means* is ``SessionTracker``'s
job; what a payload *is* is ``normalize``'s. Sources (Socket.IO, hub, replay)
call ``handle_event`` / ``ingest``; every public method is thread-safe.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections import Counter, OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable

from .config import Config, load_config
from .errors import ConnectionError, RejectedEvent, SessionNotFoundError, StoreError
from .model import ACTIVE, COMPLETED, RECOVERED, TIMED_OUT, AgentSession, SessionEvent, SessionSummary
from .normalize import normalize_all, wire_format
from .redact import redactor_for
from .store import SessionStore
from .timeutil import now_utc, parse_timestamp
from .tracker import SessionTracker, rebuild_session  # noqa: F401 - rebuild_session: public here too

log = logging.getLogger("agent_aggregator.aggregator")

RECENT_COMPLETED_LIMIT = 256
START_TIMEOUT = 30.0  # seconds start() waits for the source (a client's first attempt is bounded at 10 s)
RUNTIME_JOIN_TIMEOUT = 15.0
# handle_events records at most this many events per hold of the lock (~10-15 ms of work), with
# one journal write per session each time: a burst's batch of 1,000 would hold it for ~150 ms.
LOCK_SPAN = 100
# A batch this large means events are queued behind it (the Socket.IO client hands over what
# piled up, up to 500 at a time): its turn-end snapshots wait until ingest catches up (the
# journal already holds every event), but never longer than SNAPSHOT_MAX_WAIT.
BUSY_BATCH = 200
SNAPSHOT_MAX_WAIT = timedelta(seconds=5)
IDLE_AFTER = timedelta(seconds=1)  # no busy batch for this long: ingest has caught up
SNAPSHOTS_PER_LOCK = 20  # put-off snapshots written per hold of the lock (a reader waits for 20 at most)

# Which capture flag (configuration ``capture.*``) governs each category.
CAPTURE_FLAGS = {
    "prompt": "user_prompts",
    "delegation": "agent_delegations",
    "tool": "tool_operations",
    "file": "file_operations",
    "todo": "todo_updates",
    "response": "responses",
    "memory": "memory_events",
}


@dataclass(frozen=True)
class RecoveryReport:
    """One journal left behind by a dead writer, turned back into a session."""

    session_id: str
    events: int
    bad_lines: int  # unreadable lines skipped (a torn last line included)
    file_path: Path
    torn_tail: bool = False  # the last line was cut mid-write: the one event that can be lost

    def describe(self) -> str:
        """What came back and what could not, for the log line."""
        lost = "no line lost" if not self.bad_lines else f"{self.bad_lines} unreadable line{'s' if self.bad_lines != 1 else ''} skipped"
        torn = " (the last one was cut mid-write)" if self.torn_tail else ""
        return f"{self.events} event{'s' if self.events != 1 else ''}, {lost}{torn}"


class _Batch:
    """What ``handle_events`` defers to the end of a batch: per session, the object and the
    index of its first event of the batch (journal), and the sessions whose turn ended."""

    __slots__ = ("journal", "snapshots")

    def __init__(self) -> None:
        self.journal: dict[str, tuple[AgentSession, int]] = {}
        self.snapshots: dict[str, AgentSession] = {}


class EventAggregator:
    """Captures agent events into sessions and keeps them in the activity directory."""

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        save_dir: str | Path | None = None,
        *,
        config: Config | None = None,
        store: SessionStore | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        overrides = {"dashboard_host": host, "dashboard_port": port, "activity_directory": save_dir}
        if config is None:
            config = load_config(overrides=overrides)
        else:
            config = replace(config, **{k: (Path(v) if k == "activity_directory" else v) for k, v in overrides.items() if v is not None})
        self.config = config
        self.store = store or SessionStore(config.activity_directory, rebuild=rebuild_session)
        self.tracker = SessionTracker()
        # Secrets are redacted in ingest(), the one door every event passes before
        # anything is written (journal, snapshot, final file, exports later).
        self.redactor = redactor_for(getattr(config, "redaction", None))
        self.session_timeout = timedelta(minutes=config.session_timeout_minutes)
        self._clock = clock or now_utc
        self._lock = threading.RLock()
        self._last_seen: dict[str, datetime] = {}
        self._recent: OrderedDict[str, AgentSession] = OrderedDict()
        self._completed_ids: list[str] = []
        self._unsaved: set[str] = set()
        # Session id -> index in session.events of the first event a failed journal
        # append left out: the next append (new event or retry) writes from there, in order.
        self._journal_backlog: dict[str, int] = {}
        # Turn-end snapshots a busy batch put off: session id -> (session, when it became due).
        self._due_snapshots: dict[str, tuple[AgentSession, datetime]] = {}
        self._last_busy: datetime | None = None
        self.write_error: str | None = None  # the last write failure, until writing works again
        self._logged: set[str] = set()
        self.running = False
        self.connected = False
        self.connection_state = "not connected"
        self.total_events = 0
        self.rejected: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()
        self.save_errors = 0
        self.saved_on_stop = 0
        self.recovered: list[RecoveryReport] = []
        self._runtime: Any = None
        self._runtime_thread: threading.Thread | None = None
        self._exit_hook: Callable[[], None] | None = None

    # -- the seeds' properties ------------------------------------------------------

    @property
    def host(self) -> str:
        return self.config.dashboard_host

    @property
    def port(self) -> int:
        return self.config.dashboard_port

    @property
    def save_dir(self) -> Path:
        return Path(self.config.activity_directory)

    @property
    def active_sessions(self) -> dict[str, AgentSession]:
        with self._lock:
            return {sid: s for sid, s in self.tracker.sessions.items() if s.status == ACTIVE}

    @property
    def writes(self) -> bool:
        """Whether this aggregator owns the activity directory (a follower only reads)."""
        return self.store.is_writer

    @property
    def lock(self) -> threading.RLock:
        """The lock every public method holds: views hold it while they read sessions
        (``tracker.sessions``, a session's events and delegations) another thread updates."""
        return self._lock

    # -- lifecycle ------------------------------------------------------------------

    def start(
        self, *, connect: bool = True, serve: bool | None = None, timeout: float = START_TIMEOUT, write: bool = True
    ) -> None:
        """Take the activity directory (one writer per directory), recover journals a
        previous run left behind, then (``connect``) start capturing.

        Capturing runs an ``AggregatorRuntime`` in a daemon thread with its own event
        loop, so the seeds' plain-script API works: ``start(); get_status(); stop()``.
        It returns once the source is up: serving the built-in hub, connected to a
        Socket.IO server, or retrying one (a Socket.IO server that went away comes
        back by itself). ``serve``: True runs the hub, False only connects, None (the
        default) connects when something answers on the dashboard port and serves
        when nothing does. Raises ``ConnectionError`` when it can neither serve nor
        connect (the port held by something that is not Socket.IO, say); the
        directory is let go again then. ``connect=False`` only takes the directory
        (ingest, replay, tests): events come in through ``handle_event`` / ``ingest``.

        ``write=False`` follows a directory another aggregator writes (``aggregate tui``
        next to a running ``aggregate start``): the directory is never taken nor
        written, its open sessions are loaded (journals rebuilt) so their history is
        there, and ``connect`` only ever listens as a client (``serve`` is ignored):
        the events the writer receives arrive here too, deduplicated by event id.
        """
        with self._lock:
            if self.running:
                return
            if write:
                self.store.acquire()
                try:
                    self.recover()
                except BaseException:
                    self.store.release()
                    raise
            else:
                self.adopt_open_sessions()
            self.running = True
        if connect:
            self._start_runtime(serve if write else False, timeout)

    def adopt_open_sessions(self) -> list[str]:
        """Track the sessions the store lists as open (a follower's history); returns their ids.

        Reads only. A session that cannot be read is skipped (and logged once).
        """
        adopted: list[str] = []
        for summary in self.store.list_sessions():
            if summary.status != ACTIVE or summary.session_id in self.tracker.sessions:
                continue
            try:
                session = self.store.load(summary.file_path)
            except (OSError, ValueError, StoreError, SessionNotFoundError) as error:
                self._log_once(f"follow:{summary.session_id}", "cannot read open session %s: %s", summary.session_id, error)
                continue
            if session.status != ACTIVE:
                continue
            with self._lock:
                self.tracker.adopt(session)
                self._last_seen[session.session_id] = self._clock()
            adopted.append(session.session_id)
        return adopted

    def release_ended(self, summaries: Iterable[SessionSummary]) -> list[str]:
        """A follower lets go of tracked sessions the store lists as ended; returns their ids.

        Why: a follower adopts the open sessions at start and ends them only on a
        SessionEnd it receives, but the writer also ends sessions without one (its
        timeout, its ``stop()``, or an end sent while this follower was not connected).
        A listing holding at least the events this follower has is not stale: the
        session takes the listed status and leaves the tracker. A writer ignores this.
        """
        if self.store.is_writer:
            return []
        released: list[str] = []
        with self._lock:
            for summary in summaries:
                session = self.tracker.sessions.get(summary.session_id)
                if session is None or summary.status == ACTIVE or summary.event_count < len(session.events):
                    continue
                session.finish(summary.status, parse_timestamp(summary.end_time))
                self.tracker.forget(session.session_id)
                self._last_seen.pop(session.session_id, None)
                self._remember_completed(session)
                self._completed_ids.append(session.session_id)
                released.append(session.session_id)
        return released

    def _start_runtime(self, serve: bool | None, timeout: float) -> None:
        from .runtime import AggregatorRuntime  # deferred: sources sit on top of the aggregator

        runtime = AggregatorRuntime(self, serve=serve)
        thread = threading.Thread(target=runtime.run_in_thread, name="agent-aggregator-runtime", daemon=True)
        self._runtime, self._runtime_thread = runtime, thread
        thread.start()
        if not runtime.wait_ready(timeout):
            self.stop()
            raise ConnectionError(f"could not start listening on {self.host}:{self.port} within {timeout:.0f} s")
        if runtime.error is not None:
            thread.join(RUNTIME_JOIN_TIMEOUT)
            self.stop()  # already done by the runtime; makes sure the directory is free
            error = runtime.error
            if isinstance(error, ConnectionError):
                raise ConnectionError(str(error)) from None
            raise ConnectionError(f"cannot start capturing on {self.host}:{self.port}: {error}") from error
        self._exit_hook = _stop_at_exit(self)

    @property
    def runtime(self) -> Any:
        """The running ``AggregatorRuntime`` (None unless started with ``connect=True``)."""
        return self._runtime

    def recover(self) -> list[RecoveryReport]:
        """Turn every orphaned journal into a saved session with status ``recovered``."""
        reports: list[RecoveryReport] = []
        for journal in self.store.recover_journals():
            session = rebuild_session(journal.header, journal.events)
            session.finish(RECOVERED)
            session.metrics.dropped_events += journal.bad_lines
            path = self.store.finalize(session)
            self._remember_completed(session)
            report = RecoveryReport(session.session_id, len(journal.events), journal.bad_lines, path, journal.truncated_tail)
            reports.append(report)
            log.warning("journal of session %s recovered: %s; saved as %s", session.session_id, report.describe(), path.name)
        self.recovered.extend(reports)
        return reports

    def stop(self, *, before_release: Callable[[], None] | None = None) -> None:
        """Stop capturing (the runtime thread, if any), save every active session as
        completed, then let go of the directory. ``saved_on_stop`` tells how many
        sessions this saved; ``before_release`` runs after saving, still holding the
        directory (the runtime writes its last status file there)."""
        thread = self._runtime_thread
        if thread is not None and thread is not threading.current_thread():
            if self._runtime is not None:
                self._runtime.request_stop()
            thread.join(RUNTIME_JOIN_TIMEOUT)
            if thread.is_alive():
                log.warning("the capture thread did not stop within %.0f s; saving anyway", RUNTIME_JOIN_TIMEOUT)
            self._runtime_thread = None
        if self._exit_hook is not None:
            atexit.unregister(self._exit_hook)
            self._exit_hook = None
        with self._lock:
            was_running = self.running
            saved = 0
            for session in list(self.active_sessions.values()):
                session.finish(COMPLETED)
                self._complete(session)
                saved += 1
            self._retry_unsaved()
            if was_running or saved:
                self.saved_on_stop = saved
            self.running = False
            self.connected = False
            if was_running:
                self.connection_state = "stopped"
            if before_release is not None:
                try:
                    before_release()
                except Exception:  # noqa: BLE001 - saving is done; the lock must still be released
                    log.warning("stop hook failed", exc_info=True)
            if self.store.is_writer:
                self.store.release()

    # -- events ---------------------------------------------------------------------

    def handle_event(self, payload: Any, event_name: str | None = None) -> SessionEvent | None:
        """Normalize and ingest one raw payload; bad ones are counted, never raised."""
        if not self.config.enabled:
            self._count_rejection(RejectedEvent("capture_disabled", ignorable=True))
            return None
        try:
            events = normalize_all(payload, event_name, received_at=self._clock())
        except RejectedEvent as rejection:
            self._count_rejection(rejection)
            return None
        except Exception as error:  # noqa: BLE001 - one bad payload must never stop ingest
            self._count_rejection(RejectedEvent(f"normalize_error:{type(error).__name__}", str(error)))
            log.debug("normalize failed", exc_info=True)
            return None
        source = wire_format(payload)
        recorded: SessionEvent | None = None
        for event in events:  # a stream-json line may stand for several events
            recorded = self.ingest(event, source=source) or recorded
        return recorded

    def handle_events(self, items: Iterable[tuple[str | None, Any]]) -> int:
        """Normalize and ingest a batch of ``(event_name, payload)`` in order; returns how many
        were recorded. Bad payloads are counted, never raised, as in ``handle_event``.

        Why: a Socket.IO client's burst costs far less as one batch. Normalizing and
        redacting happen before the lock; then, per ``LOCK_SPAN`` events, one lock, one
        journal ``write()`` per session (after all its events of the span are tracked)
        and one turn-end snapshot per session (put off while busy: ``BUSY_BATCH``). On
        return every recorded event is in the journal (or, when writing failed, kept in
        memory for the retry, as for one event).
        """
        if not self.config.enabled:
            for _ in items:
                self._count_rejection(RejectedEvent("capture_disabled", ignorable=True))
            return 0
        items = items if isinstance(items, list) else list(items)
        busy = len(items) >= BUSY_BATCH
        received_at = self._clock()
        if busy:
            self._last_busy = received_at
        redact = self.redactor.redact_event
        prepared: list[tuple[SessionEvent, str]] = []
        for event_name, payload in items:
            try:
                events = normalize_all(payload, event_name, received_at=received_at)
            except RejectedEvent as rejection:
                self._count_rejection(rejection)
                continue
            except Exception as error:  # noqa: BLE001 - one bad payload must never stop ingest
                self._count_rejection(RejectedEvent(f"normalize_error:{type(error).__name__}", str(error)))
                log.debug("normalize failed", exc_info=True)
                continue
            try:
                source = wire_format(payload)
                prepared.extend((redact(event), source) for event in events)
            except Exception as error:  # noqa: BLE001 - a bug on one payload must not cost the batch
                self._batch_error(error)
        recorded = 0
        for start in range(0, len(prepared), LOCK_SPAN):
            with self._lock:  # a reader (the TUI's 4 Hz refresh) waits for one span, not the whole batch
                batch = _Batch()
                now = self._clock()
                try:
                    for event, source in prepared[start:start + LOCK_SPAN]:
                        try:
                            if self._record(event, source, now, batch) is not None:
                                recorded += 1
                        except Exception as error:  # noqa: BLE001 - as above; what was tracked is still written
                            self._batch_error(error)
                finally:
                    self._flush_batch(batch, defer_snapshots=busy)
        self._write_due_snapshots(everything=not busy)
        return recorded

    def _batch_error(self, error: Exception) -> None:
        """A bug met on one event of a batch: counted as a rejection, logged once with its traceback,
        and the rest of the batch goes on (one call per event used to lose only that event too)."""
        self._count_rejection(RejectedEvent(f"ingest_error:{type(error).__name__}", str(error)))
        if f"batch:{type(error).__name__}" not in self._logged:
            self._logged.add(f"batch:{type(error).__name__}")
            log.error("ingesting an event failed; further failures of this kind are only counted", exc_info=error)

    def ingest(self, event: SessionEvent, *, source: str | None = None) -> SessionEvent | None:
        """Record an already-normalized event (replay and recovery come in here too).

        Secrets in the event's data are redacted first (``redact.py``): what is
        returned, kept and written is the redacted event.
        """
        event = self.redactor.redact_event(event)
        with self._lock:
            return self._record(event, source, self._clock(), None)

    def _record(
        self, event: SessionEvent, source: str | None, now: datetime, batch: _Batch | None
    ) -> SessionEvent | None:
        """Track one redacted event (the lock held). Without a batch it is journaled (and the
        session saved at a turn end) at once; with one, its session's journal append and
        snapshot wait for ``_flush_batch`` (a session that ends is flushed first)."""
        resumed = event.session_id not in self.tracker.sessions
        session = self._session_for(event)
        resumed = resumed and session is not None
        if not self._captures(event):
            session = session or self.tracker.open_session(event)
            session.metrics.dropped_events += 1
            return None
        held = len(session.events) if session is not None else 0  # where this event will land
        outcome = self.tracker.apply(event)
        if outcome.duplicate:
            if resumed:  # a replay of what was saved: leave the saved session as it was
                self._remember_completed(self.tracker.forget(event.session_id) or outcome.session)
            return None
        session = outcome.session
        if outcome.new_session and session.metadata.get("source") is None:
            session.metadata["source"] = source
        self.total_events += 1
        self._last_seen[session.session_id] = now
        if batch is None:
            self._journal(session, [event])  # a new journal starts with every earlier event
            if outcome.session_ended:
                self._complete(session)
            elif outcome.turn_ended:
                self._save(session, final=False)
            return event
        pending = batch.journal.get(session.session_id)
        if pending is not None and pending[0] is not session:  # another object under this id: write it first
            self._journal(pending[0], pending[0].events[pending[1]:])
            pending = None
        if pending is None:
            batch.journal[session.session_id] = (session, held)
        if outcome.session_ended:
            self._flush_session(batch, session)
            self._complete(session)
        elif outcome.turn_ended:
            batch.snapshots[session.session_id] = session
        return event

    def _flush_session(self, batch: _Batch, session: AgentSession) -> None:
        """Write one session's pending journal lines (the events from its first one of the batch on)."""
        pending = batch.journal.pop(session.session_id, None)
        batch.snapshots.pop(session.session_id, None)
        if pending is not None:
            self._journal(pending[0], pending[0].events[pending[1]:])

    def _flush_batch(self, batch: _Batch, *, defer_snapshots: bool = False) -> None:
        """Every pending journal append (one ``write()`` per session), then the turn-end snapshots
        (or, for a busy batch, a note that they are due: ``_write_due_snapshots``)."""
        for session, start in batch.journal.values():
            self._journal(session, session.events[start:])
        batch.journal.clear()
        now = self._clock()
        for session_id, session in batch.snapshots.items():
            if defer_snapshots:
                self._due_snapshots.setdefault(session_id, (session, now))
            elif self._snapshot_if_current(session_id, session):
                self._due_snapshots.pop(session_id, None)
        batch.snapshots.clear()

    def _snapshot_if_current(self, session_id: str, session: AgentSession) -> bool:
        """A turn-end snapshot, unless the session ended or was replaced since its turn ended."""
        if session.status != ACTIVE or self.tracker.sessions.get(session_id) is not session:
            return False
        self._save(session, final=False)
        return True

    def write_due_snapshots(self) -> int:
        """The runtime's tick: write the snapshots busy batches put off, once ingest has been
        quiet for IDLE_AFTER (else only those due for SNAPSHOT_MAX_WAIT). Returns how many."""
        last_busy = self._last_busy
        return self._write_due_snapshots(everything=last_busy is None or self._clock() - last_busy >= IDLE_AFTER)

    def _write_due_snapshots(self, *, everything: bool) -> int:
        """Write put-off snapshots (all, or those waiting SNAPSHOT_MAX_WAIT), a few per hold of the lock."""
        if not self._due_snapshots:
            return 0
        now = self._clock()
        with self._lock:
            due = [session_id for session_id, (_, since) in self._due_snapshots.items()
                   if everything or now - since >= SNAPSHOT_MAX_WAIT]
        written = 0
        for start in range(0, len(due), SNAPSHOTS_PER_LOCK):  # a reader (the TUI's refresh) waits between
            with self._lock:
                for session_id in due[start:start + SNAPSHOTS_PER_LOCK]:
                    entry = self._due_snapshots.pop(session_id, None)
                    if entry is not None and self._snapshot_if_current(session_id, entry[0]):
                        written += 1
        return written

    def _session_for(self, event: SessionEvent) -> AgentSession | None:
        """The tracked session for an event, resuming a completed one when it continues."""
        session = self.tracker.sessions.get(event.session_id)
        if session is not None:
            return session
        earlier = self._recent.pop(event.session_id, None) or self._load_saved(event.session_id)
        if earlier is None:
            return None
        log.debug("resuming session %s (%d events so far)", earlier.session_id, len(earlier.events))
        return self.tracker.adopt(earlier)

    def _load_saved(self, session_id: str) -> AgentSession | None:
        if not self.store.is_writer or not self.store.may_hold(session_id):
            return None
        try:
            summary = self.store.find(session_id)
        except SessionNotFoundError:
            return None
        if summary.session_id != session_id:
            return None
        try:
            return self.store.load(summary.file_path)
        except (OSError, ValueError, StoreError) as error:
            self._log_once(f"resume:{session_id}", "cannot resume session %s: %s", session_id, error)
            return None

    def _captures(self, event: SessionEvent) -> bool:
        flag = CAPTURE_FLAGS.get(event.category)
        return flag is None or self.config.captures(flag)

    # -- timeouts -------------------------------------------------------------------

    def check_timeouts(self, now: datetime | None = None) -> list[str]:
        """Complete sessions idle past the timeout; mark idle delegations ``stale``.

        Idleness is measured on our clock (when events arrived), not on event
        timestamps, which come from other machines' clocks or from history.
        """
        now = now or self._clock()
        cutoff = now - self.session_timeout
        timed_out: list[str] = []
        with self._lock:
            for session_id, session in list(self.active_sessions.items()):
                last_seen = self._last_seen.get(session_id, now)
                if last_seen <= cutoff:
                    session.finish(TIMED_OUT)
                    self._complete(session)
                    timed_out.append(session_id)
                else:
                    idle_since = session.last_event_time - self.session_timeout
                    if self.tracker.mark_stale(session_id, idle_since):
                        self._save(session, final=False)
            self._retry_unsaved()
        return timed_out

    # -- saving ---------------------------------------------------------------------

    def save_all(self) -> None:
        """Snapshot every active session now (they stay open)."""
        with self._lock:
            self._due_snapshots.clear()
            for session in self.active_sessions.values():
                self._save(session, final=False)

    def complete_session(
        self, session_id: str, *, sort_events: bool = False, metadata: dict[str, Any] | None = None
    ) -> AgentSession | None:
        """Finish a tracked session now and save it as completed (transcript import: the
        history ends where the file does). ``sort_events`` first puts its events in time
        order and rebuilds what they imply (history merged into a live capture);
        ``metadata`` is merged into the session's. None when the session is not tracked."""
        with self._lock:
            session = self.tracker.sessions.get(session_id)
            if session is None:
                return None
            if sort_events:
                session.events.sort(key=lambda event: event.moment)
                session = self.tracker.adopt(session)
            if metadata:
                session.metadata.update(metadata)
            session.finish(COMPLETED, session.last_event_time)
            self._complete(session)
            return session

    def _complete(self, session: AgentSession) -> None:
        self._due_snapshots.pop(session.session_id, None)  # the final file supersedes a put-off snapshot
        self._save(session, final=True)
        self.tracker.forget(session.session_id)
        self._last_seen.pop(session.session_id, None)
        self._remember_completed(session)
        self._completed_ids.append(session.session_id)

    def _remember_completed(self, session: AgentSession) -> None:
        self._recent[session.session_id] = session
        self._recent.move_to_end(session.session_id)
        while len(self._recent) > RECENT_COMPLETED_LIMIT:
            self._recent.popitem(last=False)

    def _journal(self, session: AgentSession, events: list[SessionEvent]) -> None:
        """Append ``events`` (already in ``session.events``) to the journal, after any
        backlog an earlier failed append left, so the journal never has a gap."""
        if not self.store.is_writer or not self.config.journal:
            return
        backlog = self._journal_backlog.get(session.session_id)
        if backlog is not None:
            events = session.events[backlog:]
        if not events:
            return
        try:
            self.store.append_events(session, events)
        except (OSError, StoreError) as error:
            if backlog is None:
                self._journal_backlog[session.session_id] = len(session.events) - len(events)
            self._write_failed(session, error)
            return
        if backlog is not None:
            del self._journal_backlog[session.session_id]

    def _save(self, session: AgentSession, *, final: bool) -> None:
        if not self.store.is_writer:
            return
        try:
            if final:
                self.store.finalize(session)
            else:
                self.store.save_snapshot(session)
        except (OSError, StoreError) as error:
            self._write_failed(session, error)
            return
        if final:
            self._journal_backlog.pop(session.session_id, None)  # the final file holds every event
        elif session.session_id in self._journal_backlog:
            return  # the snapshot landed but the journal still misses events: not safe yet
        self._unsaved.discard(session.session_id)
        if self.write_error is not None and not self._unsaved:
            log.warning("writing to %s works again: every session is saved", self.save_dir)
            self.write_error = None
            self._logged = {key for key in self._logged if not key.startswith("write:")}

    def _write_failed(self, session: AgentSession, error: Exception) -> None:
        """Keep the session in memory and retry later; say so once per cause."""
        self.save_errors += 1
        self._unsaved.add(session.session_id)
        self.write_error = str(error)
        self._log_once(f"write:{type(error).__name__}", "cannot write to %s: %s (kept in memory, will retry)", self.save_dir, error)

    def retry_unsaved(self) -> int:
        """Try again to write what a failed write kept in memory (the runtime calls this
        every few seconds while anything is unsaved); returns how many sessions still are."""
        with self._lock:
            self._retry_unsaved()
            return len(self._unsaved)

    def _retry_unsaved(self) -> None:
        for session_id in list(self._unsaved):
            session = self.tracker.sessions.get(session_id) or self._recent.get(session_id)
            if session is None:
                self._unsaved.discard(session_id)
                self._journal_backlog.pop(session_id, None)
                continue
            if session.status == ACTIVE and session_id in self._journal_backlog:
                self._journal(session, [])
                if session_id in self._journal_backlog:
                    continue  # still failing: the snapshot would fail the same way
            self._save(session, final=session.status != ACTIVE)

    # -- queries (the seeds' API) -----------------------------------------------------

    def get_status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "running": self.running,
                "connected": self.connected,
                "connection_state": self.connection_state,
                "active_sessions": len(self.active_sessions),
                "total_events": self.total_events,
                "save_directory": str(self.save_dir),
                "dashboard_host": self.host,
                "dashboard_port": self.port,
                "source": self._runtime.describe_source() if self._runtime is not None and self.running else None,
                "writer": self.store.is_writer,
                "rejected_events": sum(self.rejected.values()),
                "ignored_messages": sum(self.ignored.values()),
                "duplicate_events": self.tracker.duplicates,
                "save_errors": self.save_errors,
                "write_error": self.write_error,
                "unsaved_sessions": len(self._unsaved),
                "unjournaled_events": sum(
                    len(s.events) - i for sid, i in self._journal_backlog.items() if (s := self.tracker.sessions.get(sid))
                ),
                "recovered_sessions": len(self.recovered),
                "recovered_events": sum(r.events for r in self.recovered),
                "recovery_unreadable_lines": sum(r.bad_lines for r in self.recovered),
            }

    def list_sessions(self) -> list[dict[str, Any]]:
        """Every session: saved ones from the store, live ones from memory (newest first)."""
        with self._lock:
            summaries = {s.session_id: s for s in self.store.list_sessions()}
            for session in self.tracker.sessions.values():
                summaries[session.session_id] = SessionSummary.of(session, self.store_path(session))
        rows = sorted(summaries.values(), key=lambda s: s.start_time, reverse=True)
        return [_seed_listing(summary) for summary in rows]

    def store_path(self, session: AgentSession) -> Path:
        try:
            return self.store.path_for(session)
        except StoreError:
            return self.save_dir

    def get_session(self, session_id: str) -> AgentSession | None:
        """A live or saved session by id or unique prefix; None when nothing matches."""
        with self._lock:
            live = self.tracker.sessions.get(session_id)
            if live is not None:
                return live
            matches = [s for sid, s in self.tracker.sessions.items() if sid.startswith(session_id)]
            if len(matches) == 1:
                return matches[0]
        try:
            return self.store.load(session_id)
        except SessionNotFoundError:
            return None

    def export_session(self, session_id: str, output_path: Path | None = None, format: str = "full") -> Path:
        """Write one session in an export format; raises SessionNotFoundError / InvalidFormatError."""
        from .export import export_session

        session = self.get_session(session_id)
        if session is None:
            raise SessionNotFoundError(f"no session matches {session_id!r}")
        return export_session(session, format, Path(output_path) if output_path else None)

    def get_completed_sessions(self) -> list[str]:
        """Ids of the sessions completed since this aggregator started, oldest first."""
        with self._lock:
            return list(self._completed_ids)

    # -- bad input ----------------------------------------------------------------------

    def _count_rejection(self, rejection: RejectedEvent) -> None:
        with self._lock:
            if rejection.ignorable:
                self.ignored[rejection.kind] += 1
                return
            self.rejected[rejection.kind] += 1
        self._log_once(f"rejected:{rejection.kind}", "rejected event (%s); further ones of this kind are only counted",
                       self.redactor.redact_text(str(rejection)))  # a debug log file is disk too

    def _log_once(self, key: str, message: str, *args: Any) -> None:
        if key in self._logged:
            return
        self._logged.add(key)
        log.warning(message, *args)


def _stop_at_exit(aggregator: EventAggregator) -> Callable[[], None]:
    """An atexit hook that saves a still-running aggregator's sessions (a script that forgot stop())."""
    ref = weakref.ref(aggregator)

    def stop_if_running() -> None:
        live = ref()
        if live is not None and live.running:
            live.stop()

    atexit.register(stop_if_running)
    return stop_if_running


def _seed_listing(summary: SessionSummary) -> dict[str, Any]:
    """The seeds' list_sessions() row (datetimes and Path), plus our summary fields."""
    row = summary.to_dict()
    row["start_time"] = parse_timestamp(summary.start_time)
    row["end_time"] = parse_timestamp(summary.end_time)
    row["file_path"] = summary.file_path
    return row
