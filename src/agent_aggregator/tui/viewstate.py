"""What the TUI's panes show, as plain data (no textual, no rich).

The live screen pulls a snapshot of the aggregator a few times a second and
diffs its tables against these rows; everything here is pure, cheap and
unit-tested without a terminal:

* ``SessionRow``: one line of the sessions pane, from a live ``AgentSession``
  or a saved ``SessionSummary`` (merged by id, the live one wins);
* ``DelegationRow``: one subagent of the selected session;
* ``FileTally`` / ``FileRow``: the files the selected session modified, counted
  incrementally from its events (a 100,000-event session is scanned once);
* ``RateMeter``: events per second over the last few seconds;
* ``is_live``: the LIVE indicator (open, and an event within the last 60 s; a run
  wrapped by ``aggregate run`` stays LIVE exactly while its process is alive);
* ``run_figures`` / ``UsageTotals``: cost, turns, tokens and API time of headless
  runs (estimates: Claude Code's own), per session and summed for the status bar.

Every "now" is passed in: the app's clock decides, so snapshots are frozen.
"""

from __future__ import annotations

import os
import socket
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from ..describe import display_status, format_cost, one_line, project_name, relative_path
from ..model import (
    ACTIVE,
    DONE,
    FAILED,
    FILE,
    FILE_WRITE_TOOLS,
    RUNNING,
    STALE,
    AgentDelegation,
    AgentSession,
    SessionEvent,
    SessionMetrics,
    SessionSummary,
    total_tokens,
)
from ..timeutil import UTC, format_duration, milliseconds_between, parse_timestamp

LIVE_WINDOW = timedelta(seconds=60)
RECENT_SAVED_LIMIT = 200  # saved sessions listed in the live screen's sessions pane (the browser has all)
_OLDEST = datetime.min.replace(tzinfo=UTC)

DELEGATION_STATUS_LABELS = {RUNNING: "running", DONE: "done", FAILED: "failed", STALE: "stale"}


# --- sessions ---------------------------------------------------------------------------------


def is_live(status: str, last_event: datetime | None, now: datetime, window: timedelta = LIVE_WINDOW) -> bool:
    """LIVE: the session is open and its last event is at most ``window`` old (by ``now``)."""
    if status != ACTIVE or last_event is None:
        return False
    return now - last_event <= window


def run_alive(metadata: dict[str, object], hostname: str | None = None) -> bool:
    """Whether the process of a run wrapped by ``aggregate run`` (``metadata.pid``, recorded
    on this machine) is still alive: such a run is LIVE while it works, however long a
    tool call keeps it silent."""
    pid = metadata.get("pid")
    if metadata.get("source") != "claude -p" or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    host = metadata.get("run_hostname")
    if isinstance(host, str) and host != (hostname or socket.gethostname()):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class RunFigures:
    """What a headless run reported (``result``): all estimates from Claude Code itself."""

    cost_usd: float | None = None
    turns: int | None = None
    tokens: int | None = None
    api_ms: int | None = None
    is_error: bool | None = None

    @classmethod
    def of(cls, metrics: SessionMetrics, usage: object, metadata: object = None) -> "RunFigures | None":
        """``metadata``: a run (source "claude -p") shows its tokens before its result comes."""
        running = isinstance(metadata, dict) and metadata.get("source") == "claude -p" and bool(usage)
        if metrics.total_cost_usd is None and metrics.num_turns is None and not running:
            return None  # the source reports none of it (hooks): show nothing rather than zeros
        return cls(metrics.total_cost_usd, metrics.num_turns, total_tokens(usage), metrics.duration_api_ms,
                   metrics.is_error)

    @classmethod
    def of_summary(cls, summary: SessionSummary) -> "RunFigures | None":
        if summary.total_cost_usd is None and summary.num_turns is None and summary.total_tokens is None:
            return None
        return cls(summary.total_cost_usd, summary.num_turns, summary.total_tokens, summary.duration_api_ms)


def run_figures(figures: RunFigures | None) -> str:
    """ "$0.1351 est. · 6 turns · 136,477 tokens · API 29s" (empty when there is nothing to say)."""
    if figures is None:
        return ""
    parts = []
    if figures.cost_usd is not None:
        parts.append(f"{format_cost(figures.cost_usd)} est.")
    if figures.turns is not None:
        parts.append(f"{figures.turns:,} turn" + ("s" if figures.turns != 1 else ""))
    if figures.tokens is not None:
        parts.append(f"{figures.tokens:,} tokens")
    if figures.api_ms is not None:
        parts.append(f"API {format_duration(figures.api_ms)}")
    if figures.is_error:
        parts.append("is_error")
    return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Cost, turns and tokens summed over the sessions listed (those that report them)."""

    runs: int
    cost_usd: float
    turns: int
    tokens: int
    reported: bool = True  # some run has a result (cost, turns); else only tokens counted so far

    @classmethod
    def of(cls, rows: Iterable["SessionRow"]) -> "UsageTotals | None":
        figures = [row.figures for row in rows if row.figures is not None]
        if not figures:
            return None
        return cls(
            runs=len(figures),
            cost_usd=sum(f.cost_usd or 0.0 for f in figures),
            turns=sum(f.turns or 0 for f in figures),
            tokens=sum(f.tokens or 0 for f in figures),
            reported=any(f.cost_usd is not None or f.turns is not None for f in figures),
        )

    def label(self) -> str:
        runs = f"{self.runs:,} run" + ("s" if self.runs != 1 else "")
        if not self.reported:  # runs still going: no cost or turns yet, only what their messages used
            return f"{self.tokens:,} tokens so far ({runs})"
        turns = f"{self.turns:,} turn" + ("s" if self.turns != 1 else "")
        return f"{format_cost(self.cost_usd)} est. · {turns} · {self.tokens:,} tokens ({runs})"


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One session as the sessions pane lists it."""

    session_id: str
    project: str
    start: datetime
    duration_ms: int
    events: int
    delegations: int
    status: str  # what to show: active / idle / completed / timed_out / recovered / interrupted ...
    live: bool
    prompt: str
    working_directory: str | None = None
    in_memory: bool = False  # tracked by this process's aggregator (its events list grows)
    figures: RunFigures | None = None  # a headless run's cost, turns, tokens, API time

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @property
    def sort_key(self) -> tuple[int, float, str]:
        """Open sessions first, then newest first."""
        return (0 if self.active else 1, -self.start.timestamp(), self.session_id)


def row_from_session(session: AgentSession, now: datetime, timeout_minutes: float) -> SessionRow:
    """A live (or just completed) session's row. Call with the aggregator's lock held."""
    status = display_status(session, timeout_minutes, now)
    duration = session.metrics.session_duration_ms or milliseconds_between(
        session.start_time, session.end_time or session.last_event_time
    )
    return SessionRow(
        session_id=session.session_id,
        project=project_name(session.working_directory),
        start=session.start_time,
        duration_ms=max(0, duration),
        events=len(session.events),
        delegations=len(session.delegations),
        status=status,
        live=is_live(status, session.last_event_time, now) or (status == ACTIVE and run_alive(session.metadata)),
        prompt=one_line(session.initial_prompt),
        working_directory=session.working_directory,
        in_memory=True,
        figures=RunFigures.of(session.metrics, session.usage, session.metadata),
    )


def row_from_summary(summary: SessionSummary, now: datetime, timeout_minutes: float) -> SessionRow:
    """A saved session's row (from the store's listing)."""
    start = parse_timestamp(summary.start_time) or _OLDEST
    status = display_status(summary, timeout_minutes, now)
    last = start + timedelta(milliseconds=summary.duration_ms) if start is not _OLDEST else None
    return SessionRow(
        session_id=summary.session_id,
        project=project_name(summary.working_directory),
        start=start,
        duration_ms=max(0, summary.duration_ms),
        events=summary.event_count,
        delegations=summary.delegation_count,
        status=status,
        live=is_live(status, last, now),
        prompt=one_line(summary.initial_prompt),
        working_directory=summary.working_directory,
        figures=RunFigures.of_summary(summary),
    )


def session_rows(
    live: Iterable[AgentSession],
    saved: Iterable[SessionSummary],
    now: datetime,
    *,
    timeout_minutes: float,
    recent_limit: int | None = RECENT_SAVED_LIMIT,
    keep: Iterable[str] = (),
) -> list[SessionRow]:
    """The sessions pane: saved sessions and live ones merged by id (live wins),
    open ones first, then newest first. Beyond ``recent_limit`` finished sessions
    only those in ``keep`` (the selected one, one opened from the browser) stay."""
    rows: dict[str, SessionRow] = {}
    for summary in saved:
        rows[summary.session_id] = row_from_summary(summary, now, timeout_minutes)
    for session in live:
        rows[session.session_id] = row_from_session(session, now, timeout_minutes)
    ordered = sorted(rows.values(), key=lambda row: row.sort_key)
    if recent_limit is None:
        return ordered
    kept = set(keep)
    result: list[SessionRow] = []
    finished = 0
    for row in ordered:
        if not row.active:
            finished += 1
            if finished > recent_limit and row.session_id not in kept:
                continue
        result.append(row)
    return result


def recent_summaries(summaries: Iterable[SessionSummary], limit: int = RECENT_SAVED_LIMIT) -> list[SessionSummary]:
    """What the sessions pane can show of a listing: every open session and the ``limit``
    newest others. Computed once per listing, so a store of 10,000 sessions costs the
    4 Hz refresh only these few hundred rows."""
    ordered = sorted(summaries, key=lambda s: parse_timestamp(s.start_time) or _OLDEST, reverse=True)
    kept: list[SessionSummary] = []
    finished = 0
    for summary in ordered:
        if summary.status != ACTIVE:
            finished += 1
            if finished > limit:
                continue
        kept.append(summary)
    return kept


def start_label(start: datetime, now: datetime) -> str:
    """When a session started, in local time: the time of day today, else the date too."""
    if start is _OLDEST:
        return "-"
    local = start.astimezone()
    if local.date() == now.astimezone().date():
        return local.strftime("%H:%M:%S")
    if local.year == now.astimezone().year:
        return local.strftime("%b %d %H:%M")
    return local.strftime("%Y-%m-%d")


# --- delegations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DelegationRow:
    """One subagent of the selected session."""

    key: str  # its index in session.delegations (that list only grows)
    agent_type: str
    status: str  # running / done / failed / stale
    duration_ms: int | None
    events: int
    files: int
    description: str


def delegation_row(index: int, delegation: AgentDelegation, now: datetime) -> DelegationRow:
    if delegation.end_time is not None:
        duration: int | None = milliseconds_between(delegation.start_time, delegation.end_time)
    elif delegation.status == RUNNING:
        duration = milliseconds_between(delegation.start_time, now)
    else:
        duration = None
    return DelegationRow(
        key=str(index),
        agent_type=one_line(delegation.agent_type) or "unknown",
        status=DELEGATION_STATUS_LABELS.get(delegation.status, one_line(delegation.status)),
        duration_ms=max(0, duration) if duration is not None else None,
        events=delegation.event_count,
        files=len(delegation.files_modified),
        description=one_line(delegation.description or delegation.instructions),
    )


DELEGATION_ROWS_LIMIT = 300  # the newest ones (and every running one): a table, not an archive


def delegation_rows(
    session: AgentSession | None,
    now: datetime,
    limit: int = DELEGATION_ROWS_LIMIT,
    *,
    timeout_minutes: float = 60,
) -> list[DelegationRow]:
    """The session's delegations in order: all running ones and the ``limit`` newest.

    A running delegation's duration runs to ``now`` while its session is active,
    else to the session's last event (a silent session's clock stopped there).
    Call with the aggregator's lock held when the session is live.
    """
    if session is None:
        return []
    if display_status(session, timeout_minutes, now) != ACTIVE:
        now = min(now, session.last_event_time)
    delegations = session.delegations
    first = max(0, len(delegations) - limit)
    chosen = [(index, delegations[index]) for index in range(first) if delegations[index].status == RUNNING]
    chosen.extend((index, delegations[index]) for index in range(first, len(delegations)))
    return [delegation_row(index, delegation, now) for index, delegation in chosen]


# --- files ------------------------------------------------------------------------------------

_EDIT_TOOLS = frozenset(FILE_WRITE_TOOLS - {"Write"})


@dataclass(frozen=True, slots=True)
class FileRow:
    """One file the session wrote to: path relative to the project, operations on it."""

    key: str  # the path as the events name it
    path: str  # relative to the session's working directory when inside it
    writes: int
    edits: int
    failed: int

    @property
    def operations(self) -> int:
        return self.writes + self.edits

    @property
    def detail(self) -> str:
        parts = []
        if self.writes:
            parts.append(f"{self.writes} write" + ("s" if self.writes != 1 else ""))
        if self.edits:
            parts.append(f"{self.edits} edit" + ("s" if self.edits != 1 else ""))
        if self.failed:
            parts.append(f"{self.failed} failed")
        return ", ".join(parts)


@dataclass
class _FileCounts:
    pre: dict[str, int] = field(default_factory=dict)
    post: dict[str, int] = field(default_factory=dict)
    failed: int = 0

    def operations(self, tools: Iterable[str]) -> int:
        """Calls of these tools: a call has a Pre and a Post event; count the larger side
        (sources that send only one side still count)."""
        return sum(max(self.pre.get(tool, 0), self.post.get(tool, 0)) for tool in tools)


class FileTally:
    """The modified files of one session's event list, counted incrementally.

    ``update(events)`` looks only at events appended since the last call (the
    aggregator only ever appends); a different list starts over.
    """

    def __init__(self, root: str | None = None) -> None:
        self.root = root
        self._events: Sequence[SessionEvent] | None = None
        self._seen = 0
        self._files: dict[str, _FileCounts] = {}

    def reset(self, root: str | None = None) -> None:
        self.root = root
        self._events = None
        self._seen = 0
        self._files = {}

    def update(self, events: Sequence[SessionEvent], root: str | None = None) -> bool:
        """Count the new events; True when something was added. Call with the aggregator's lock held."""
        if events is not self._events or len(events) < self._seen or root != self.root:
            self.reset(root)
            self._events = events
        end = len(events)
        if end == self._seen:
            return False
        changed = False
        for event in events[self._seen : end]:
            changed |= self._count(event)
        self._seen = end
        return changed

    def _count(self, event: SessionEvent) -> bool:
        if event.category != FILE:
            return False
        data = event.data
        tool = data.get("tool_name")
        path = data.get("file_path") or data.get("notebook_path")
        if tool not in FILE_WRITE_TOOLS or not isinstance(path, str) or not path:
            return False
        counts = self._files.setdefault(path, _FileCounts())
        kind = event.event_type
        if kind == "PreToolUse":
            counts.pre[tool] = counts.pre.get(tool, 0) + 1
        elif kind.startswith("PostToolUse"):
            counts.post[tool] = counts.post.get(tool, 0) + 1
            if kind == "PostToolUseFailure" or data.get("success") is False:
                counts.failed += 1
        else:
            return False
        return True

    def rows(self) -> list[FileRow]:
        """Files in the order the session first touched them."""
        return [
            FileRow(
                key=path,
                path=relative_path(path, self.root),
                writes=counts.operations(("Write",)),
                edits=counts.operations(_EDIT_TOOLS),
                failed=counts.failed,
            )
            for path, counts in self._files.items()
        ]


# --- events per second ------------------------------------------------------------------------


class RateMeter:
    """Events per second over the last ``window`` seconds, from (time, running total) samples."""

    def __init__(self, window: float = 5.0, capacity: int = 64) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque(maxlen=capacity)

    def add(self, moment: float, total: int) -> None:
        if self._samples and (total < self._samples[-1][1] or moment < self._samples[-1][0]):
            self._samples.clear()  # a new aggregator (or a clock jump): start over
        self._samples.append((moment, total))
        while len(self._samples) > 2 and moment - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (first_time, first_total), (last_time, last_total) = self._samples[0], self._samples[-1]
        elapsed = last_time - first_time
        if elapsed <= 0:
            return 0.0
        return (last_total - first_total) / elapsed




# --- the status bar ---------------------------------------------------------------------------

STARTING = "starting"
WRITER = "writer"
FOLLOWER = "follower"
BROWSE = "browse"
FAILED_MODE = "error"
STOPPING = "stopping"


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """What the status bar and the waiting panel say about capture."""

    mode: str  # starting / writer / follower / browse / error / stopping
    connection: str  # "serving on 127.0.0.1:8765", "connected to localhost:8765", "retrying ..."
    connected: bool
    address: str  # host:port hooks post to / the server listened to
    rate: float  # events per second, last few seconds
    active: int  # open sessions
    total: int  # events this process captured
    follow_pid: int | None = None
    error: str | None = None
    directory: str = ""
    usage: UsageTotals | None = None  # headless runs' cost, turns, tokens over the listed sessions


__all__ = [
    "StatusInfo",
    "LIVE_WINDOW",
    "DELEGATION_ROWS_LIMIT",
    "RECENT_SAVED_LIMIT",
    "DelegationRow",
    "FileRow",
    "FileTally",
    "RateMeter",
    "RunFigures",
    "SessionRow",
    "UsageTotals",
    "run_alive",
    "run_figures",
    "delegation_row",
    "delegation_rows",
    "is_live",
    "row_from_session",
    "recent_summaries",
    "row_from_summary",
    "session_rows",
    "start_label",
]
