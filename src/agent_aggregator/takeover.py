"""Taking over an activity directory whose writer went away (a following ``aggregate tui``).

Why: a TUI that follows another aggregator (``aggregate start``, another TUI,
``aggregate run``) captures nothing of its own. When that writer exits (Ctrl+C, a
crash, ``kill -9``) hooks fall back to the spool and nobody drains it until a new
writer starts. The follower becomes that writer instead, by the same path as any
start: take the directory's lock, recover the dead writer's journals, serve (or
listen) where the writer did, drain the spool.

* Proof that the writer is gone is the directory's lock being free
  (``SessionStore.writer_pid() is None``; the kernel lets go of an flock when its
  process dies, ``kill -9`` included). A dropped Socket.IO connection is only a
  reason to look: a writer restarting its hub still holds the lock.
* Two followers racing: the lock lets exactly one win; the other reads the
  winner's status file (once it names the winner's pid) and follows it.
* Events only the follower heard (relayed by the writer's hub but not yet in its
  journal when it died) are given to the new writer; event ids make that a no-op
  for everything the store already has.

No textual here: the TUI calls ``take_over`` from a thread worker.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Callable

from .aggregator import EventAggregator
from .config import Config
from .errors import AggregatorError, StoreLockedError
from .model import SessionEvent
from .runtime import read_status_file
from .store import SessionStore

log = logging.getLogger("agent_aggregator.takeover")

STATUS_WAIT = 15.0  # seconds a race's loser waits for the winner's status file (written once its hub is up)
STATUS_POLL = 0.05
ATTEMPTS = 5  # lock races in a row (a winner that dies at once frees the lock again)


@dataclass
class Handover:
    """What ``take_over`` ended with: the aggregator to show, and whether it writes."""

    aggregator: EventAggregator
    writes: bool
    writer_pid: int | None  # the pid followed (None when this process writes)
    gone_pid: int | None  # the writer that went away
    carried: int = 0  # events only the follower had, handed to the new writer


def follow_config(config: Config, pid: int | None) -> Config:
    """Listen where the writer ``pid`` listens: its status file names its server.
    ``config`` unchanged when the file is absent, stale (another pid) or says it stopped."""
    status = read_status_file(config.activity_directory)
    if not status or not pid or status.get("pid") != pid or not status.get("running"):
        return config
    host, port = status.get("dashboard_host"), status.get("dashboard_port")
    if not isinstance(host, str) or not host or not isinstance(port, int) or not 0 < port < 65536:
        return config
    return replace(config, dashboard_host=host, dashboard_port=port)


def wait_for_status(config: Config, pid: int, timeout: float = STATUS_WAIT,
                    stopped: Callable[[], bool] = lambda: False) -> bool:
    """Wait (bounded) until the status file is the running writer ``pid``'s; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        status = read_status_file(config.activity_directory)
        if status and status.get("pid") == pid and status.get("running"):
            return True
        if time.monotonic() >= deadline or stopped():
            return False
        time.sleep(STATUS_POLL)


def start_follower(config: Config, store: SessionStore,
                   pending: Callable[[EventAggregator], None] = lambda aggregator: None) -> EventAggregator:
    """A running aggregator that listens with ``config`` (``follow_config``) on ``store`` and never
    writes; ``pending`` is told of it before it starts (so a quit can abort the start)."""
    follower = EventAggregator(config=config, store=store)
    pending(follower)
    follower.start(connect=True, write=False)
    return follower


def held_events(aggregator: EventAggregator) -> list[tuple[str, list[SessionEvent]]]:
    """The sessions a follower tracks, each with its events (copied lists, under its lock)."""
    with aggregator.lock:
        return [(session_id, list(session.events)) for session_id, session in aggregator.tracker.sessions.items()]


def carry_over(writer: EventAggregator, held: list[tuple[str, list[SessionEvent]]]) -> int:
    """Give ``writer`` the events of ``held`` its store lacks (by event id); returns how many.

    The first missing event resumes the saved (completed or recovered) session, as
    any late event does; the rest follow it in order.
    """
    added = 0
    for session_id, events in held:
        try:
            saved = writer.get_session(session_id)
        except (AggregatorError, OSError, ValueError) as error:
            log.warning("cannot read session %s to complete it: %s", session_id, error)
            continue
        known = {event.event_id for event in saved.events} if saved is not None and saved.session_id == session_id else set()
        for event in events:
            if event.event_id in known or (event.event_id is None and saved is not None):
                continue  # saved already (an event without an id cannot be told apart: left out)
            # a copy: the tracker adds enrichment keys to data, and the follower's copy is still on screen
            if writer.ingest(replace(event, data=dict(event.data))) is not None:
                added += 1
    if added:
        log.info("%d events only the follower had were saved", added)
    return added


def take_over(
    follower: EventAggregator,
    base_config: Config,
    gone_pid: int | None,
    *,
    pending: Callable[[EventAggregator], None] = lambda aggregator: None,
    stopped: Callable[[], bool] = lambda: False,
    attempts: int = ATTEMPTS,
    status_wait: float = STATUS_WAIT,
) -> Handover:
    """After the writer ``gone_pid`` left: write the directory, or follow whoever does now.

    ``follower`` (running, ``write=False``) is stopped once this process holds the
    lock; it is kept when another writer took over on the same address. The new
    writer has a store of its own (``Handover.aggregator.store``).
    ``pending`` is told of each aggregator before it starts (so a quit can abort
    it); ``stopped`` says the app is quitting. Raises what ``EventAggregator.start``
    raises (``ConnectionError`` when the port is held by something else).
    """
    store = follower.store
    for _ in range(max(1, attempts)):
        if stopped():  # quitting: nothing to take over any more
            return Handover(follower, False, None, gone_pid)
        pid = store.writer_pid()
        if pid is None:
            # Where the writer served or listened. Its own store: the follower's must never
            # hold the lock (stopping the follower would let go of it). The follower runs on
            # until the lock is ours: a loser keeps it, with everything it holds.
            writer = EventAggregator(config=follower.config)
            pending(writer)
            try:
                writer.start(connect=True)
            except StoreLockedError:
                continue  # another follower won: follow it (next round)
            held = held_events(follower) if follower.running else []
            follower.stop()
            carried = carry_over(writer, held)
            return Handover(writer, True, None, gone_pid, carried)
        if pid == 0:  # locked, its pid not written yet (microseconds)
            time.sleep(STATUS_POLL)
            continue
        # Its status file says where it listens once its source is up; without one in time,
        # follow_config falls back to the configured address (the lock is proof enough).
        wait_for_status(base_config, pid, status_wait, stopped)
        config = follow_config(base_config, pid)
        same_address = (config.dashboard_host, config.dashboard_port) == (
            follower.config.dashboard_host, follower.config.dashboard_port)
        if follower.running and same_address:
            return Handover(follower, False, pid, gone_pid)  # its client reconnects by itself
        if follower.running:
            follower.stop()
        return Handover(start_follower(config, store, pending), False, pid, gone_pid)
    # The lock kept changing hands: follow whoever holds it now, at the configured address.
    pid = store.writer_pid()
    if follower.running:
        return Handover(follower, False, pid, gone_pid)
    return Handover(start_follower(follow_config(base_config, pid), store, pending), False, pid, gone_pid)


__all__ = ["Handover", "carry_over", "follow_config", "held_events", "start_follower", "take_over",
           "wait_for_status"]
