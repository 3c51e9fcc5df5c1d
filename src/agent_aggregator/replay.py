"""Replay: a saved session's events fed again, on a clock, to a fresh tracker.

Replay is a source (DESIGN section 1): it reads a saved session and feeds its
events, in order, to a ``SessionTracker`` of its own, the same code that built
the session live. Every view of a replay (the TUI's panes, ``aggregate replay``'s
timeline) reads the session that tracker builds, so delegations open and close
and files appear as the clock passes them. (The tracker is the part of the
aggregator that decides what events mean; the rest of ``EventAggregator`` is
journal, saves and lifecycle against a store, which a replay must never touch.)

The invariant, property-tested: the state at cursor ``n`` (``n`` events of ``N``
applied) is what a fresh tracker makes of the first ``n`` events, however the
cursor got there (playing at any speed, pausing, stepping, seeking); at ``N`` it
also takes what events cannot tell (status and end time, metadata, dropped
events: what ``SessionTracker.adopt`` carries over), so it equals the saved
session.

Seeking back is cheap: while events are applied the replay keeps a checkpoint (a
copy of the tracker) every ``checkpoint_every`` events, and seeking to ``i``
restores the nearest checkpoint at or before ``i`` and re-feeds at most that many
events. A checkpoint shares the applied events with the live state (the tracker
never changes an event once it is recorded) and copies only the rest: the event
list's pointers, delegations and bookkeeping. ``seek_toward`` does a seek in
bounded pieces, so a UI can run a long forward seek without freezing.

Time: every event gets an offset in *replayed* seconds from the first one. With
gap compression (the default, as in the usage guide's replay script) a silence
between two events counts at most ``gap_cap`` seconds; ``gap_cap=None`` keeps
real time. The clock (``advance``) turns wall seconds into replayed seconds at
``speed``; ``MAX_SPEED`` applies events as fast as the caller asks.

Pure: no I/O, no threads, no textual. Never writes anything anywhere. The saved
session is never changed (events are copied before the tracker sees them).
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence

from .model import ACTIVE, PROMPT, AgentSession, SessionEvent
from .timeutil import milliseconds_between, parse_timestamp
from .tracker import SessionTracker

MAX_SPEED = math.inf
SPEEDS: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, MAX_SPEED)
DEFAULT_SPEED = 1.0
DEFAULT_GAP_CAP = 1.0  # seconds: the usage guide's replay script sleeps at most 1 s between events
MAX_BATCH = 2000  # events one advance() applies at most (keeps a UI frame short at "max")
CHECKPOINT_EVERY = 500  # events between checkpoints: a seek re-feeds at most this many
MAX_CHECKPOINTS = 64  # more events than 64 x 500: checkpoints spread out so memory stays bounded


def parse_speed(text: str) -> float:
    """``"max"``, ``"2"``, ``"2x"``, ``"0.5x"`` -> a speed; ValueError for anything else."""
    value = text.strip().lower()
    if value in ("max", "inf", "unlimited"):
        return MAX_SPEED
    if value.endswith("x"):
        value = value[:-1]
    try:
        speed = float(value)
    except ValueError:
        raise ValueError(f"speed must be a positive number or 'max', not {text!r}") from None
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"speed must be a positive number or 'max', not {text!r}")
    return speed


def speed_label(speed: float) -> str:
    """``0.5x``, ``1x``, ``2x`` ... ``max``."""
    if math.isinf(speed):
        return "max"
    return f"{speed:g}x"


def gap_label(gap_cap: float | None) -> str:
    """How idle gaps are replayed, for status lines: ``gaps ≤ 1s`` or ``real time``."""
    return "real time" if gap_cap is None else f"gaps ≤ {gap_cap:g}s"


def event_moments(events: Sequence[SessionEvent], fallback: datetime) -> list[datetime]:
    """Each event's time; an unreadable timestamp takes the previous event's (no gap)."""
    moments: list[datetime] = []
    last = fallback
    for event in events:
        moment = parse_timestamp(event.timestamp)
        if moment is None:
            moment = last
        moments.append(moment)
        last = moment
    return moments


def replay_offsets(moments: Sequence[datetime], gap_cap: float | None) -> list[float]:
    """Replayed seconds from the first event to each event.

    A gap is measured from the latest time seen so far (events out of order add no
    time twice) and capped at ``gap_cap`` seconds unless that is None.
    """
    offsets: list[float] = []
    elapsed = 0.0
    latest: datetime | None = None
    for moment in moments:
        if latest is not None:
            gap = max(0.0, (moment - latest).total_seconds())
            elapsed += gap if gap_cap is None else min(gap, gap_cap)
        if latest is None or moment > latest:
            latest = moment
        offsets.append(elapsed)
    return offsets


def copy_event(event: SessionEvent) -> SessionEvent:
    """A copy the tracker may change: it only ever sets top-level keys of ``data``."""
    return SessionEvent(
        timestamp=event.timestamp,
        event_type=event.event_type,
        category=event.category,
        data=dict(event.data),
        session_id=event.session_id,
        correlation_id=event.correlation_id,
        agent_id=event.agent_id,
        event_id=event.event_id,
    )


@dataclass(frozen=True)
class ReplayHeader:
    """What a replay takes from the saved session besides its events."""

    session_id: str
    start_time: datetime
    end_time: datetime | None
    status: str
    working_directory: str | None
    metadata: dict[str, Any]
    dropped_events: int

    @classmethod
    def of(cls, session: AgentSession) -> "ReplayHeader":
        return cls(
            session_id=session.session_id,
            start_time=session.start_time,
            end_time=session.end_time,
            status=session.status,
            working_directory=session.working_directory,
            metadata=dict(session.metadata),
            dropped_events=session.metrics.dropped_events,
        )

    def shell(self) -> AgentSession:
        """The session before its first event: an empty one with the saved identity."""
        session = AgentSession(self.session_id, self.start_time)
        session.working_directory = self.working_directory
        session.metadata = {**session.metadata, **self.metadata}
        return session


def build_state(header: ReplayHeader, events: Sequence[SessionEvent], *, final: bool) -> tuple[SessionTracker, AgentSession]:
    """What a fresh tracker makes of ``events`` (copied); ``final`` adds what events cannot tell.

    The replay's definition of "the state at cursor n": ``Replay`` reaches the same
    state event by event, and rebuilds with this after stepping back or seeking.
    """
    tracker = SessionTracker()
    session = header.shell()
    for event in events:
        session = _apply(tracker, header, event)
    if final:
        session = _finish(tracker, header, session)
    return tracker, session


def _apply(tracker: SessionTracker, header: ReplayHeader, event: SessionEvent) -> AgentSession:
    copied = copy_event(event)
    if copied.session_id != header.session_id:  # a file whose events name another id (hand-made)
        copied.session_id = header.session_id
    outcome = tracker.apply(copied)
    session = outcome.session
    if outcome.new_session:
        session.metadata = {**session.metadata, **header.metadata}
        if session.working_directory is None:
            session.working_directory = header.working_directory
    return session


def _finish(tracker: SessionTracker, header: ReplayHeader, session: AgentSession) -> AgentSession:
    """The saved session's lifecycle facts, which no event carries (as ``SessionTracker.adopt``)."""
    session.metadata = {**session.metadata, **header.metadata}
    if session.working_directory is None:
        session.working_directory = header.working_directory
    session.metrics.dropped_events = header.dropped_events
    if header.start_time < session.start_time:
        session.start_time = header.start_time
        session.metrics.session_duration_ms = milliseconds_between(session.start_time, session.end_time or session.last_event_time)
    if header.status != ACTIVE:
        session.finish(header.status, header.end_time)
    return session


def clone_state(tracker: SessionTracker, session: AgentSession) -> tuple[SessionTracker, AgentSession]:
    """An independent copy of a tracker and its replayed session (a checkpoint, or a restore of one).

    Recorded events are shared, not copied: once ``SessionTracker.apply`` has
    recorded an event it never changes it again, and ``Replay`` feeds copies of the
    saved events, so sharing them is safe and makes a copy cost pointers, not
    payloads. The tracker's bookkeeping keys some tables by ``id()`` of a
    delegation; those keys are moved to the copies' ids.
    """
    memo: dict[int, Any] = {}
    for tracked in tracker.sessions.values():
        memo[id(tracked.events)] = list(tracked.events)
        for delegation in tracked.delegations:  # flat records: a copy with its own lists is a deep copy
            twin = copy.copy(delegation)
            for name, value in vars(twin).items():
                if isinstance(value, (list, dict, set)):
                    setattr(twin, name, copy.copy(value))
            memo[id(delegation)] = twin
    for state in tracker.states.values():
        memo[id(state.seen_ids)] = set(state.seen_ids)
        for moment in state.last_activity.values():  # datetimes are immutable: share them
            memo[id(moment)] = moment
    tracker_copy, session_copy = copy.deepcopy((tracker, session), memo)

    def moved(key: int) -> int:
        twin = memo.get(key)
        return id(twin) if twin is not None else key

    for state in tracker_copy.states.values():
        state.started = {moved(key) for key in state.started}
        state.returned = {moved(key) for key in state.returned}
        state.implicit = {moved(key): value for key, value in state.implicit.items()}
        state.last_activity = {moved(key): value for key, value in state.last_activity.items()}
    return tracker_copy, session_copy


class Replay:
    """A clock-driven cursor over a saved session's events, with the state it implies.

    ``cursor`` counts the events applied (0..``total``); ``session`` is the state at
    the cursor; ``position`` is the replayed time in seconds (``elapsed``, out of
    ``duration``). Controls: ``play`` / ``pause`` / ``toggle``, ``step(±1)``,
    ``step_turn(±1)`` (user prompts), ``seek(n)`` / ``seek_start`` / ``seek_end`` /
    ``seek_fraction``, ``faster`` / ``slower`` / ``set_speed``, ``set_gap_cap`` /
    ``toggle_gaps``; ``advance(wall_seconds)`` runs the clock while playing.
    """

    def __init__(
        self,
        saved: AgentSession,
        *,
        speed: float = DEFAULT_SPEED,
        gap_cap: float | None = DEFAULT_GAP_CAP,
        batch_limit: int = MAX_BATCH,
        checkpoint_every: int | None = None,
    ) -> None:
        """``checkpoint_every``: events between checkpoints (default: ``CHECKPOINT_EVERY``,
        spread to at most ``MAX_CHECKPOINTS`` on a big session; 0: none, for a replay
        that only ever goes forward, since each checkpoint costs a copy of the state)."""
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.header = ReplayHeader.of(saved)
        self.source: Sequence[SessionEvent] = list(saved.events)  # the saved events, never changed
        self.total = len(self.source)
        self.moments = event_moments(self.source, saved.start_time)
        self.turn_starts = [i for i, event in enumerate(self.source) if event.category == PROMPT]
        self.speed = speed
        self.gap_cap = gap_cap
        self.offsets = replay_offsets(self.moments, gap_cap)
        self.batch_limit = max(1, batch_limit)
        self.playing = False
        self.cursor = 0
        self.position = 0.0
        self.rebuilds = 0  # how often a checkpoint was restored (stepping back, seeking)
        if checkpoint_every is None:
            checkpoint_every = max(CHECKPOINT_EVERY, -(-self.total // MAX_CHECKPOINTS))
        elif checkpoint_every == 0:
            checkpoint_every = self.total + 1
        self.checkpoint_every = max(1, checkpoint_every)
        self._tracker, self.session = build_state(self.header, (), final=self.total == 0)
        self._checkpoints: dict[int, tuple[SessionTracker, AgentSession]] = {}  # cursor -> state there (< total)

    # -- what views show --------------------------------------------------------------

    @property
    def session_id(self) -> str:
        return self.header.session_id

    @property
    def duration(self) -> float:
        """Replayed seconds from the first event to the last."""
        return self.offsets[-1] if self.offsets else 0.0

    @property
    def elapsed(self) -> float:
        return self.position

    @property
    def at_end(self) -> bool:
        return self.cursor >= self.total

    @property
    def at_start(self) -> bool:
        return self.cursor == 0

    @property
    def progress(self) -> float:
        """0.0 .. 1.0 by replayed time (by events when the session takes no time)."""
        if self.duration > 0:
            return min(1.0, self.position / self.duration)
        return self.cursor / self.total if self.total else 1.0

    @property
    def turn(self) -> int:
        """The turn the cursor is in: how many user prompts have been applied."""
        return bisect_right(self.turn_starts, self.cursor - 1)

    @property
    def turns(self) -> int:
        return len(self.turn_starts)

    @property
    def now(self) -> datetime:
        """The replayed moment in the session's own time: the last applied event's
        time plus the replayed time since (views measure durations against it)."""
        if self.cursor == 0:
            return self.moments[0] if self.moments else self.header.start_time
        since = max(0.0, self.position - self.offsets[self.cursor - 1])
        return self.moments[self.cursor - 1] + timedelta(seconds=since)

    @property
    def last_event(self) -> SessionEvent | None:
        """The saved event the cursor last applied."""
        return self.source[self.cursor - 1] if self.cursor else None

    # -- controls ---------------------------------------------------------------------

    def play(self) -> None:
        """Play from here; at the end, from the start again."""
        if self.at_end and self.total:
            self.seek(0)
        self.playing = self.total > 0

    def pause(self) -> None:
        self.playing = False

    def toggle(self) -> None:
        if self.playing:
            self.pause()
        else:
            self.play()

    def set_speed(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.speed = speed

    def faster(self) -> float:
        """The next speed up the ladder (0.5x 1x 2x 5x 10x max)."""
        higher = [s for s in SPEEDS if s > self.speed]
        self.speed = higher[0] if higher else SPEEDS[-1]
        return self.speed

    def slower(self) -> float:
        lower = [s for s in SPEEDS if s < self.speed]
        self.speed = lower[-1] if lower else SPEEDS[0]
        return self.speed

    def set_gap_cap(self, gap_cap: float | None) -> None:
        """Compress idle gaps to ``gap_cap`` seconds, or replay real time (None)."""
        if gap_cap is not None and not gap_cap >= 0:
            raise ValueError("the gap cap must be zero or more seconds")
        self.gap_cap = gap_cap
        self.offsets = replay_offsets(self.moments, gap_cap)
        self.position = self._offset_before(self.cursor)

    def toggle_gaps(self, cap: float = DEFAULT_GAP_CAP) -> None:
        self.set_gap_cap(cap if self.gap_cap is None else None)

    def step(self, delta: int = 1) -> int:
        """Move ``delta`` events (negative: back); pauses. Returns the new cursor."""
        self.pause()
        return self.seek(self.cursor + delta)

    def step_turn(self, delta: int = 1) -> int:
        """Forward: to just after the next user prompt (the end when none is left).
        Back: to just after the prompt before the current one's start (mid-turn: to
        the start of this turn), or the very start. Pauses."""
        self.pause()
        return self.seek(self.turn_target(delta))

    def turn_target(self, delta: int) -> int:
        """Where ``step_turn(delta)`` goes, without going there."""
        target = self.cursor
        for _ in range(abs(delta)):
            if delta > 0:
                later = [p + 1 for p in self.turn_starts if p + 1 > target]
                target = later[0] if later else self.total
            else:
                earlier = [p + 1 for p in self.turn_starts if p + 1 < target]
                target = earlier[-1] if earlier else 0
        return target

    def seek_start(self) -> int:
        return self.seek(0)

    def seek_end(self) -> int:
        return self.seek(self.total)

    def seek_fraction(self, fraction: float) -> int:
        """To the last event at or before this share of the replayed time (a click on a progress bar)."""
        return self.seek(self.fraction_target(fraction))

    def fraction_target(self, fraction: float) -> int:
        """Where ``seek_fraction(fraction)`` goes, without going there."""
        fraction = min(1.0, max(0.0, fraction))
        if fraction >= 1.0:
            return self.total
        if self.duration <= 0:
            return round(fraction * self.total)
        return bisect_right(self.offsets, fraction * self.duration)

    def seek(self, index: int) -> int:
        """Put the cursor at ``index`` (clamped): from the nearest checkpoint at or before
        it when that saves work (always when going back), then event by event. The
        clock moves to that event."""
        self.seek_toward(index, None)
        return self.cursor

    def seek_toward(self, index: int, budget: int | None) -> bool:
        """Like ``seek``, applying at most ``budget`` events (None: no limit); True when
        the cursor is at ``index``. Call again with the same index to go on: a UI
        can seek a long way in pieces without freezing. Pauses a replay that has
        not arrived."""
        index = max(0, min(self.total, index))
        base = self._checkpoint_at_or_before(index)
        if index < self.cursor or base > self.cursor:
            self._restore(base)
        stop = index if budget is None else min(index, self.cursor + max(1, budget))
        self._apply_until(stop)
        self.position = self._offset_before(self.cursor)
        if self.cursor != index:
            self.playing = False
            return False
        if self.at_end:
            self.playing = False
        return True

    def seek_cost(self, index: int) -> int:
        """How many events ``seek(index)`` would feed (after restoring a checkpoint)."""
        index = max(0, min(self.total, index))
        base = self._checkpoint_at_or_before(index)
        start = base if index < self.cursor or base > self.cursor else self.cursor
        return index - start

    def advance(self, wall_seconds: float) -> list[int]:
        """Run the clock for ``wall_seconds`` of wall time while playing; returns the
        indices of the events applied. At most ``batch_limit`` events per call: when
        the clock outruns that, it waits for the events (never skips one)."""
        if not self.playing or self.at_end:
            self.playing = self.playing and not self.at_end
            return []
        if math.isinf(self.speed):
            target = min(self.total, self.cursor + self.batch_limit)
            applied = list(range(self.cursor, target))
            self._apply_until(target)
            self.position = self._offset_before(self.cursor)
        else:
            self.position = min(self.duration, self.position + max(0.0, wall_seconds) * self.speed)
            due = bisect_right(self.offsets, self.position + 1e-9)
            target = min(due, self.cursor + self.batch_limit)
            applied = list(range(self.cursor, target))
            self._apply_until(target)
            if target < due:
                self.position = self._offset_before(self.cursor)
        if self.at_end:
            self.position = self.duration
            self.playing = False
        return applied

    def wall_time_to_next(self) -> float | None:
        """Wall seconds until the next event is due while playing (None: nothing to wait for)."""
        if not self.playing or self.at_end:
            return None
        if math.isinf(self.speed):
            return 0.0
        return max(0.0, (self.offsets[self.cursor] - self.position) / self.speed)

    # -- state ------------------------------------------------------------------------

    def state_at(self, index: int) -> AgentSession:
        """A fresh rebuild of the state at ``index`` (for checks; the replay itself is unchanged)."""
        index = max(0, min(self.total, index))
        return build_state(self.header, self.source[:index], final=index == self.total)[1]

    def _offset_before(self, index: int) -> float:
        return self.offsets[index - 1] if index > 0 else 0.0

    def _apply_until(self, index: int) -> None:
        if self.cursor >= index:
            return
        every = self.checkpoint_every
        while self.cursor < index:
            self.session = _apply(self._tracker, self.header, self.source[self.cursor])
            self.cursor += 1
            if self.cursor % every == 0 and self.cursor < self.total and self.cursor not in self._checkpoints:
                self._checkpoints[self.cursor] = clone_state(self._tracker, self.session)
        if self.cursor == self.total:
            self.session = _finish(self._tracker, self.header, self.session)

    def _checkpoint_at_or_before(self, index: int) -> int:
        """The latest checkpointed cursor <= ``index`` (0: the empty start)."""
        every = self.checkpoint_every
        candidate = min(index, self.total - 1) // every * every
        while candidate > 0 and candidate not in self._checkpoints:
            candidate -= every
        return max(0, candidate)

    def _restore(self, base: int) -> None:
        """The state at checkpoint ``base`` (0: a fresh tracker), as an independent copy."""
        self.rebuilds += 1
        if base in self._checkpoints:
            self._tracker, self.session = clone_state(*self._checkpoints[base])
        else:
            self._tracker, self.session = build_state(self.header, (), final=self.total == 0)
            base = 0
        self.cursor = base


def session_fingerprint(session: AgentSession) -> dict[str, Any]:
    """What "the replay equals the saved session" compares: events, delegations,
    metrics, files, todos, prompt and response, lifecycle."""
    raw = session.to_dict()
    return {key: raw[key] for key in (
        "session_id", "start_time", "end_time", "status", "working_directory", "initial_prompt",
        "final_response", "events", "delegations", "metrics", "todos", "usage",
    )}


def differences(replayed: AgentSession, saved: AgentSession) -> list[str]:
    """The fingerprint fields where two sessions differ (empty: equal)."""
    mine, theirs = session_fingerprint(replayed), session_fingerprint(saved)
    return [key for key in mine if mine[key] != theirs[key]]


__all__ = [
    "DEFAULT_GAP_CAP",
    "DEFAULT_SPEED",
    "MAX_BATCH",
    "MAX_SPEED",
    "SPEEDS",
    "Replay",
    "ReplayHeader",
    "CHECKPOINT_EVERY",
    "MAX_CHECKPOINTS",
    "build_state",
    "clone_state",
    "copy_event",
    "differences",
    "event_moments",
    "gap_label",
    "parse_speed",
    "replay_offsets",
    "session_fingerprint",
    "speed_label",
]
