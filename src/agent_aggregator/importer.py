"""Import Claude Code's own session transcripts into the activity directory.

Discovery (``~/.claude/projects``, or ``$CLAUDE_CONFIG_DIR/projects``), the
``--since`` / ``--project`` filters, idempotency and the merge with sessions that
were also captured live. What a transcript line *means* is ``transcripts.py``'s
job; every imported event enters through ``EventAggregator.ingest`` (so redaction
and capture settings apply exactly as they do live).

Idempotency, twice over:
* ``<activity>/.imports.json`` remembers each transcript's files (path, size,
  mtime); an unchanged transcript whose sessions are still saved is not read again;
* when a transcript is read anyway (changed, or the index is gone), its events are
  compared with the saved session by identity (event id; else tool_use_id + type,
  prompt text, agent id, response text), so nothing already there is added twice.
  Live events win: an imported event only fills what live capture did not see.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from . import jsonio
from .jsonio import gc_paused
from .errors import AggregatorError, SessionNotFoundError, StoreError
from .model import ACTIVE, RESPONSE, AgentSession, SessionEvent
from .timeutil import UTC, format_timestamp, now_utc, parse_timestamp
from .transcripts import SOURCE, ReadStats, SessionTranscript, agent_id_from_name, peek_session_id, read_session

if TYPE_CHECKING:  # pragma: no cover
    from .aggregator import EventAggregator
    from .store import SessionStore

INDEX_NAME = ".imports.json"
INDEX_VERSION = 1
COUNT_LIMIT = 10_000  # the TUI's "found N transcripts" stops counting here

Progress = Callable[[int, int, str], None]  # (bytes done, bytes total, what is being read)


class ImportArgumentError(AggregatorError):
    """Bad import arguments (a path that does not exist, a date that is not one)."""


# --- where transcripts are ----------------------------------------------------------------


def claude_projects_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Claude Code's transcript root: ``$CLAUDE_CONFIG_DIR/projects``, else ``~/.claude/projects``."""
    env = os.environ if environ is None else environ
    base = env.get("CLAUDE_CONFIG_DIR")
    return (Path(base).expanduser() if base else Path.home() / ".claude") / "projects"


@dataclass
class TranscriptSet:
    """One session's files: its transcript and its subagents' transcripts."""

    session_id: str
    main: Path | None
    agents: list[Path] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return ([self.main] if self.main is not None else []) + sorted(self.agents)

    def stats(self) -> list[tuple[str, int, int]]:
        """(path, size, mtime_ns) per file: the index's signature of this set."""
        result = []
        for path in self.files:
            try:
                st = path.stat()
            except OSError:
                continue
            result.append((str(path), st.st_size, st.st_mtime_ns))
        return result

    @property
    def size(self) -> int:
        return sum(size for _, size, _ in self.stats())

    @property
    def modified(self) -> datetime | None:
        times = [mtime for _, _, mtime in self.stats()]
        return datetime.fromtimestamp(max(times) / 1e9, UTC) if times else None

    @property
    def key(self) -> str:
        return str(self.main) if self.main is not None else f"{self.session_id}:{self.files[0] if self.files else ''}"


def _encode(name: str) -> str:
    """Claude Code's project directory name for a path: every non-alphanumeric character -> '-'."""
    return re.sub(r"[^A-Za-z0-9]", "-", name)


def project_matches(project_dir_name: str, wanted: str) -> bool:
    """``--project``: a project's name (last path part), a path, or part of the encoded name."""
    encoded = _encode(wanted.rstrip("/"))
    if not encoded.strip("-"):
        return False
    name = project_dir_name.lower()
    encoded = encoded.lower()
    return name == encoded or name.endswith("-" + encoded.lstrip("-")) or (len(encoded) >= 3 and encoded in name)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO date or time (``2026-03-14``, ``2026-03-14T09:00``), or an age: ``7d``, ``12h``, ``30m``."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhmw])\s*", text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        delta = {"m": timedelta(minutes=amount), "h": timedelta(hours=amount), "d": timedelta(days=amount),
                 "w": timedelta(weeks=amount)}[unit]
        return (now or now_utc()) - delta
    moment = parse_timestamp(text) if not re.fullmatch(r"\s*\d+(\.\d+)?\s*", text) else None
    if moment is None:
        raise ImportArgumentError(f"--since {text!r}: not a date (use 2026-03-14, 2026-03-14T09:00 or an age like 7d)")
    return moment


def _classify(path: Path) -> tuple[str, str | None]:
    """("main", session id) | ("agent", parent session id or None: peek) | ("skip", None)."""
    if not path.name.endswith(".jsonl"):
        return "skip", None
    parts = path.parts
    if len(parts) >= 3 and parts[-2] == "subagents":
        return "agent", parts[-3]
    if path.name.startswith("agent-"):
        return "agent", None
    return "main", path.name[: -len(".jsonl")]


def _walk(root: Path) -> Iterable[Path]:
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            if name.endswith(".jsonl"):
                yield Path(directory) / name


def discover(
    paths: Iterable[Path] | None = None,
    *,
    since: datetime | None = None,
    project: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[TranscriptSet]:
    """Every transcript set under ``paths`` (default: Claude Code's projects directory).

    A path may be a transcript file, a project directory or the projects root.
    ``since`` drops sets whose files were all last modified before it; ``project``
    keeps the projects whose directory matches (``project_matches``).
    Raises ``ImportArgumentError`` for a path that does not exist.
    """
    roots = [Path(p).expanduser().absolute() for p in paths] if paths else [claude_projects_dir(environ).absolute()]
    sets: dict[str, TranscriptSet] = {}
    loose_agents: list[tuple[Path, str | None]] = []
    for root in roots:
        if not root.exists():
            if not paths:
                return []  # no Claude Code history on this machine: nothing to import
            raise ImportArgumentError(f"{root}: no such file or directory")
        files = [root] if root.is_file() else list(_walk(root))
        for path in files:
            kind, session_id = _classify(path)
            if kind == "skip":
                continue
            if project is not None:
                project_dir = path.parent.parent.parent if kind == "agent" and path.parent.name == "subagents" else path.parent
                if not project_matches(project_dir.name, project):
                    continue
            if kind == "main" and session_id:
                key = f"{path.parent}/{session_id}"
                entry = sets.setdefault(key, TranscriptSet(session_id, None))
                entry.main = path
            else:
                loose_agents.append((path, session_id))
    for path, session_id in loose_agents:
        project_dir = path.parent.parent.parent if path.parent.name == "subagents" else path.parent
        parent = session_id or peek_session_id(path) or agent_id_from_name(path) or path.stem
        key = f"{project_dir}/{parent}"
        entry = sets.setdefault(key, TranscriptSet(parent, None))
        if path not in entry.agents:
            entry.agents.append(path)
    result = list(sets.values())
    if since is not None:
        result = [s for s in result if (s.modified or since) >= since]
    result.sort(key=lambda s: (s.modified or datetime.min.replace(tzinfo=UTC), s.key))
    return result


def count_transcripts(root: Path | None = None, limit: int = COUNT_LIMIT) -> int:
    """How many session transcripts are under ``root`` (bounded: stops at ``limit``); 0 when none or unreadable."""
    root = root or claude_projects_dir()
    count = 0
    try:
        with os.scandir(root) as projects:
            for project in projects:
                if not project.is_dir(follow_symlinks=False):
                    continue
                try:
                    with os.scandir(project.path) as entries:
                        for entry in entries:
                            if entry.name.endswith(".jsonl") and not entry.name.startswith("agent-"):
                                count += 1
                                if count >= limit:
                                    return count
                except OSError:
                    continue
    except OSError:
        return 0
    return count


# --- identity and merge --------------------------------------------------------------------


def identity(event: SessionEvent) -> tuple[str, ...]:
    """What makes two records the same event, whichever source saw it."""
    kind = event.event_type
    data = event.data
    if kind == "PreToolUse" and event.correlation_id:
        return ("pre", event.correlation_id)
    if kind in ("PostToolUse", "PostToolUseFailure") and event.correlation_id:
        return ("post", event.correlation_id)
    if kind == "UserPromptSubmit" and isinstance(data.get("prompt"), str):
        return ("prompt", data["prompt"].strip())
    if kind in ("SubagentStart", "SubagentStop") and event.agent_id:
        return (kind, event.agent_id)
    if (kind in ("Stop", "AssistantResponse") or event.category == RESPONSE) and isinstance(data.get("response"), str):
        return ("response", data["response"].strip())
    return ("id", event.event_id or f"{kind}@{event.timestamp}")


def new_events(existing: Iterable[SessionEvent], incoming: list[SessionEvent]) -> list[SessionEvent]:
    """The incoming events the existing ones do not already hold (by event id, then by identity,
    as a multiset: two identical prompts in a transcript match two live ones, not one)."""
    existing = list(existing)
    ids = {event.event_id for event in existing if event.event_id}
    keys: Counter[tuple[str, ...]] = Counter(identity(event) for event in existing)
    unmatched = []
    for event in incoming:
        if event.event_id and event.event_id in ids:
            keys[identity(event)] -= 1  # this very event is there: it does not use up a live twin
        else:
            unmatched.append(event)
    result = []
    for event in unmatched:
        key = identity(event)
        if keys[key] > 0:
            keys[key] -= 1
        else:
            result.append(event)
    return result


# --- the index of what was imported -----------------------------------------------------------


class ImportIndex:
    """``.imports.json``: transcript set -> the file stats it had and the sessions it made."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / INDEX_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        try:
            raw = jsonio.read_json(self.path)
        except (OSError, ValueError):
            raw = None
        if isinstance(raw, dict) and raw.get("version") == INDEX_VERSION and isinstance(raw.get("sets"), dict):
            self.entries = {k: v for k, v in raw["sets"].items() if isinstance(v, dict)}

    def unchanged(self, transcript: TranscriptSet, saved_ids: set[str]) -> bool:
        entry = self.entries.get(transcript.key)
        if entry is None:
            return False
        signature = [list(item) for item in transcript.stats()]
        sessions = entry.get("sessions") or []
        return entry.get("files") == signature and all(sid in saved_ids for sid in sessions)

    def record(self, transcript: TranscriptSet, sessions: list[str]) -> None:
        self.entries[transcript.key] = {
            "files": [list(item) for item in transcript.stats()],
            "sessions": sessions,
            "imported_at": format_timestamp(now_utc()),
        }

    def save(self) -> None:
        jsonio.write_json_atomic(self.path, {"version": INDEX_VERSION, "sets": self.entries})


# --- importing -----------------------------------------------------------------------------------


@dataclass
class Planned:
    """One session an import adds to, merges into, or leaves alone."""

    session_id: str
    project: str | None
    events: int  # events read from the transcript
    new_events: int  # of those, not in the store yet
    size: int  # bytes of the transcript set
    state: str  # "new" | "merge" | "unchanged" | "live" (being captured right now: left alone)


@dataclass
class ImportReport:
    """What an import did (or, dry, would do)."""

    sets: int = 0
    skipped_unchanged: int = 0  # sets the index says were imported already, unchanged
    sessions: list[Planned] = field(default_factory=list)
    stats: ReadStats = field(default_factory=ReadStats)
    bytes_total: int = 0
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)  # files that could not be read at all

    def count(self, state: str) -> int:
        return sum(1 for p in self.sessions if p.state == state)

    @property
    def events_added(self) -> int:
        return sum(p.new_events for p in self.sessions if p.state in ("new", "merge"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "transcripts": self.sets,
            "unchanged_transcripts": self.skipped_unchanged,
            "sessions_new": self.count("new"),
            "sessions_merged": self.count("merge"),
            "sessions_unchanged": self.count("unchanged"),
            "sessions_live": self.count("live"),
            "events_added": self.events_added,
            "bytes": self.bytes_total,
            "lines": self.stats.lines,
            "corrupt_lines": self.stats.bad_lines,
            "corrupt": [str(bad) for bad in self.stats.bad],
            "errors": list(self.errors),
            "sessions": [p.__dict__ for p in self.sessions],
        }


def _saved(store: "SessionStore", session_id: str) -> AgentSession | None:
    try:
        summary = store.find(session_id)
    except SessionNotFoundError:
        return None
    if summary.session_id != session_id:
        return None
    try:
        return store.load(summary.file_path)
    except (OSError, ValueError, StoreError):
        return None


def import_transcripts(
    sets: list[TranscriptSet],
    *,
    aggregator: "EventAggregator | None" = None,
    store: "SessionStore | None" = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> ImportReport:
    """Import transcript sets into the store of ``aggregator`` (which must own the directory).

    ``dry_run`` reads the transcripts and compares them with ``store`` (or the
    aggregator's) but writes nothing, not even the index. ``progress`` is called
    with bytes read as files stream; ``cancelled`` is polled between sessions.
    """
    if aggregator is None and not dry_run:
        raise ValueError("importing needs an aggregator that owns the activity directory")
    store = store or (aggregator.store if aggregator is not None else None)
    if store is None:
        raise ValueError("a dry run needs a store to compare with")
    if not dry_run and not store.is_writer:
        raise AggregatorError(f"the activity directory {store.directory} is written by another process (pid "
                              f"{store.writer_pid() or '?'}); import there, or stop it and import again")
    report = ImportReport(dry_run=dry_run)
    index = ImportIndex(store.directory)
    saved_ids = {summary.session_id for summary in store.list_sessions()}
    todo: list[TranscriptSet] = []
    for transcript in sets:
        if index.unchanged(transcript, saved_ids):
            report.skipped_unchanged += 1
        else:
            todo.append(transcript)
    report.sets = len(sets)
    report.bytes_total = sum(t.size for t in todo)
    done = 0

    def advance(label: str) -> Callable[[int], None]:
        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, report.bytes_total, label)
        return step

    for transcript in todo:
        if cancelled is not None and cancelled():
            break
        label = (transcript.main or transcript.files[0]).name if transcript.files else transcript.session_id
        size = transcript.size
        imported: list[str] = []
        with gc_paused():  # a 200 MB transcript reads about a third faster
            try:
                sessions = read_session(transcript.main, transcript.agents, transcript.session_id, report.stats,
                                        advance(label))
            except OSError as error:
                report.errors.append(f"{transcript.key}: {error.strerror or error}")
                continue
            for read in sessions:
                if progress is not None and not dry_run:
                    progress(done, report.bytes_total, f"{label} (saving)")
                planned = _import_one(read, transcript, size, aggregator, store, dry_run)
                report.sessions.append(planned)
                if planned.state in ("new", "merge", "unchanged"):
                    imported.append(read.session_id)
        if not dry_run and imported:
            index.record(transcript, imported)
            index.save()
    return report


def _import_one(
    read: SessionTranscript, transcript: TranscriptSet, size: int, aggregator: "EventAggregator | None", store: "SessionStore", dry_run: bool
) -> Planned:
    project = os.path.basename(read.cwd.rstrip("/")) if read.cwd else None
    session_id = read.session_id
    if aggregator is not None:
        with aggregator.lock:
            live = aggregator.tracker.sessions.get(session_id)
            if live is not None and live.status == ACTIVE:
                return Planned(session_id, project, len(read.events), 0, size, "live")
    existing = _saved(store, session_id)
    added = new_events(existing.events, read.events) if existing is not None else read.events
    state = "unchanged" if not added else ("merge" if existing is not None else "new")
    planned = Planned(session_id, project, len(read.events), len(added), size, state)
    if dry_run or not added:
        return planned
    assert aggregator is not None
    last_existing = max((e.moment for e in existing.events), default=None) if existing is not None else None
    out_of_order = last_existing is not None and any(e.moment < last_existing for e in added)
    for event in added:
        aggregator.ingest(event, source=SOURCE)
    metadata: dict[str, Any] = {
        "transcript": {
            "path": str(transcript.main) if transcript.main is not None else None,
            "subagent_files": len(transcript.agents),
            "claude_code_version": read.version,
            "title": read.title,
            "imported_at": format_timestamp(now_utc()),
            "events": len(added),
        },
    }
    if read.git_branch:
        metadata["git_branch"] = read.git_branch
    if read.title:
        metadata["title"] = read.title
    if existing is not None:
        before = existing.metadata.get("source")
        if isinstance(before, str) and SOURCE not in before.split("+"):
            metadata["source"] = f"{before}+{SOURCE}"
    aggregator.complete_session(session_id, sort_events=out_of_order, metadata=metadata)
    return planned
