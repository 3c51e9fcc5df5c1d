"""SessionStore: the only code that touches the activity directory (DESIGN section 5).

Layout (docs/CONTRACTS.md):

    session_<id8>_<YYYYMMDD_HHMMSS>.json            final file, or a turn-end snapshot (status active)
    session_<id8>_<YYYYMMDD_HHMMSS>.journal.jsonl   an open session: a header line, then one event per line
    .index.json                                      listing cache, validated by each file's stat
    .aggregator.lock                                 writer lock (flock), holds "pid host started"

One process writes (it holds the lock); any process reads. A journal always holds
the whole session (it is seeded with every event the session already has), so
recovering a journal never needs the snapshot next to it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence

from . import jsonio, sessionfile
from .jsonio import FILE_MODE, gc_paused, make_dirs
from .errors import AmbiguousSessionError, SessionNotFoundError, StoreError, StoreLockedError
from .model import ACTIVE, AgentSession, SessionEvent, SessionSummary, events_from_dicts
from .timeutil import UTC, format_timestamp, now_utc, parse_timestamp

INDEX_SAVE_INTERVAL = 2.0  # seconds between index writes while sessions are being saved
JOURNAL_FDS_OPEN = 128  # journals kept open between appends (least recently used closed first)

log = logging.getLogger("agent_aggregator.store")

INDEX_NAME = ".index.json"
LOCK_NAME = ".aggregator.lock"
INDEX_VERSION = 1
FILE_PREFIX = "session_"
FINAL_SUFFIX = ".json"
JOURNAL_SUFFIX = ".journal.jsonl"
INTERRUPTED = "interrupted"  # listed status of an open session whose writer is gone

_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_LOCK_ATTEMPTS = 5  # a reader's probe holds the lock shared for microseconds; retry past it
_OLDEST = datetime.min.replace(tzinfo=UTC)

Rebuild = Callable[[dict, list[SessionEvent]], AgentSession]


# --- names ----------------------------------------------------------------------


def safe_id_fragment(session_id: str) -> str:
    """First 8 characters of the id, reduced to [A-Za-z0-9_-]: never a path separator or '..'."""
    return "".join(c if c in _SAFE_CHARS else "_" for c in session_id[:8]) or "unknown"


def _name_prefixes(name: str) -> list[str]:
    """Every ``session_<fragment>_`` a file name starts with (a fragment is 1-8 safe characters and
    may hold "_"): may_hold() then asks a set instead of testing every name in the directory."""
    start, found = len(FILE_PREFIX), []
    cut = name.find("_", start + 1, start + 9)
    while cut != -1:
        found.append(name[: cut + 1])
        cut = name.find("_", cut + 1, start + 9)
    return found


def session_file_name(session_id: str, start_time: datetime | str) -> str:
    """``session_<id8>_<YYYYMMDD_HHMMSS>.json``, start time in UTC so names sort the same everywhere."""
    moment = parse_timestamp(start_time) or now_utc()
    stamp = moment.astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    return f"{FILE_PREFIX}{safe_id_fragment(session_id)}_{stamp}{FINAL_SUFFIX}"


def _is_final_name(name: str) -> bool:
    return name.startswith(FILE_PREFIX) and name.endswith(FINAL_SUFFIX)


def _is_journal_name(name: str) -> bool:
    return name.startswith(FILE_PREFIX) and name.endswith(JOURNAL_SUFFIX)


def _stem(name: str) -> str:
    """The name shared by a session's final file and its journal."""
    suffix = JOURNAL_SUFFIX if name.endswith(JOURNAL_SUFFIX) else FINAL_SUFFIX
    return name[: -len(suffix)]


# --- journals -------------------------------------------------------------------


@dataclass
class RecoveredJournal:
    """A journal read back: what the aggregator needs to rebuild its session."""

    path: Path
    header: dict[str, Any]
    events: list[SessionEvent]
    bad_lines: int
    truncated_tail: bool

    @property
    def final_path(self) -> Path:
        return self.path.with_name(_stem(self.path.name) + FINAL_SUFFIX)


def _parse_header(line: bytes) -> dict[str, Any]:
    """The journal's first line; ValueError when it is not one of our headers."""
    header = jsonio.loads(line)
    if not isinstance(header, dict) or header.get("kind") != "header":
        raise ValueError("first line is not a journal header")
    if not isinstance(header.get("session_id"), str):
        raise ValueError("journal header has no session_id")
    return header


def _read_journal(path: Path) -> RecoveredJournal:
    """Parse a whole journal. A torn or corrupt event line is counted, never fatal."""
    data = path.read_bytes()
    truncated = bool(data) and not data.endswith(b"\n")
    lines = data.split(b"\n")
    if not truncated:
        lines.pop()  # the empty piece after the final newline
    if not lines:
        raise ValueError("empty journal")
    header = _parse_header(lines[0])
    raws: list[dict[str, Any]] = []
    bad = 0
    with gc_paused():
        for line in lines[1:]:
            raw = _parse_event_line(line)
            if raw is not None:
                raws.append(raw)
            elif line.strip():
                bad += 1
        events = events_from_dicts(raws, header["session_id"])  # equal values shared, as a load does
    return RecoveredJournal(path, header, events, bad, truncated)


def _parse_event_line(line: bytes) -> dict[str, Any] | None:
    """One journal event line, decoded; None when it is torn, corrupt or not an event."""
    try:
        raw = jsonio.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get("kind") != "event":
        return None
    return raw


def _journal_header(session: AgentSession, final_name: str) -> dict[str, Any]:
    return {
        "kind": "header",
        "session_id": session.session_id,
        "start_time": format_timestamp(session.start_time),
        "file": final_name,
        "metadata": session.metadata,
        "working_directory": session.working_directory,
    }


def _event_lines(events: Sequence[SessionEvent]) -> bytes:
    return b"".join(jsonio.dumps({"kind": "event", **event.to_dict()}) + b"\n" for event in events)


def _journal_seed(session: AgentSession, events: Sequence[SessionEvent]) -> list[SessionEvent]:
    """Everything a new journal must hold: the whole session, then ``events`` if not already in it.

    Seeding with the whole session makes a resumed session's earlier events
    survive a crash as well; callers may pass events before or after adding them.
    """
    tail = session.events[max(0, len(session.events) - len(events)) :]
    if len(tail) == len(events) and all(a is b for a, b in zip(tail, events, strict=True)):
        return list(session.events)
    return [*session.events, *events]


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]


# --- index entries --------------------------------------------------------------


@dataclass(slots=True)
class _Record:
    """One listed session and the files behind it."""

    summary: SessionSummary
    final: Path | None
    journal: Path | None
    from_journal: bool  # the journal holds more than the final file: load() rebuilds it
    mtime_ns: int

    @property
    def source(self) -> Path:
        """The file load() reads: the journal when it is newer, else the final file."""
        return self.journal if self.from_journal and self.journal else self.summary.file_path


def _entry(st: os.stat_result, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "mtime_ns": st.st_mtime_ns,
        "size": st.st_size,
        "ino": st.st_ino,  # atomic rewrites get a new inode: catches same-size rewrites within a tick
        "summary": None,
        "problem": None,
    }
    entry.update(fields)
    return entry


def _is_fresh(entry: Any, st: os.stat_result) -> bool:
    return (
        isinstance(entry, dict)
        and entry.get("mtime_ns") == st.st_mtime_ns
        and entry.get("size") == st.st_size
        and entry.get("ino") == st.st_ino
        and (isinstance(entry.get("summary"), dict) or isinstance(entry.get("problem"), str))
    )


def _summary_dict(summary: SessionSummary) -> dict[str, Any]:
    """The index keeps summaries without file_path: the file name is the key."""
    data = summary.to_dict()
    del data["file_path"]
    return data


def _summary_from_entry(entry: dict[str, Any], path: Path) -> SessionSummary | None:
    raw = entry.get("summary")
    if not isinstance(raw, dict):
        return None
    try:
        return SessionSummary(**raw, file_path=path)  # our own index: 3x faster than from_dict at 10k
    except TypeError:
        pass
    try:
        return SessionSummary.from_dict({**raw, "file_path": path})
    except (KeyError, TypeError, ValueError):
        return None


def _summarize(raw: Any, path: Path) -> SessionSummary:
    """A listing summary without building 100k event objects; ValueError if not a session."""
    if not isinstance(raw, dict):
        raise ValueError("not a session: not a JSON object")
    events = raw.get("events")
    session = AgentSession.from_dict({**raw, "events": []})
    if not isinstance(events, list):
        raise ValueError("not a session: events is not a list")
    summary = SessionSummary.of(session, path)
    summary.event_count = len(events) or summary.event_count
    return summary


def _journal_summary(header: dict[str, Any], path: Path) -> SessionSummary:
    metadata = header.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    workdir = header.get("working_directory")
    return SessionSummary(
        session_id=header["session_id"],
        start_time=str(header.get("start_time") or ""),
        end_time=None,
        status=INTERRUPTED,
        event_count=0,
        duration_ms=0,
        file_path=path,
        working_directory=workdir if isinstance(workdir, str) else None,
        source=metadata.get("source"),
        hostname=metadata.get("hostname"),
    )


def _start_key(record: _Record) -> datetime:
    text = record.summary.start_time
    try:
        moment = datetime.fromisoformat(text)  # what we write; the tolerant parser is 10x slower
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        moment = parse_timestamp(text) or _OLDEST
    return moment


# --- the store ------------------------------------------------------------------


class SessionStore:
    """Sessions in one activity directory: journal, final files, index, writer lock, cleanup."""

    def __init__(self, directory: Path | str, *, rebuild: Rebuild | None = None) -> None:
        self.directory = Path(directory).expanduser()
        self._real_dir: Path | None = None  # self.directory resolved, once it exists (see _real_directory)
        self.rebuild = rebuild
        self.problems: list[tuple[Path, str]] = []
        self._reported: set[str] = set()
        self._lock_file: BinaryIO | None = None
        self._index: dict[str, dict[str, Any]] | None = None
        self._mutex = threading.RLock()
        self._quiet = False  # _report() holds its warnings (see _record_at)
        self._guarded: set[Path] = set()
        self._index_dirty = False
        self._index_saved_at = float("-inf")
        # Final paths by session id: assigned once, or taken from load() (a resumed
        # session keeps its file) or from a recovered journal (its final name).
        self._paths: dict[str, Path] = {}
        self._assigned: set[str] = set()
        self._adopted: dict[str, list[str]] = {}
        self._live_journals: set[str] = set()
        self._names: set[str] | None = None  # name prefixes of session files, for may_hold(); None: not read yet
        # Open journals by name: open/fstat/pread/close on every append cost more than the write.
        # File objects, so a store dropped without release() still closes them when collected.
        self._journal_fds: OrderedDict[str, BinaryIO] = OrderedDict()
        self._names_mtime_ns = -1

    @property
    def _lock_path(self) -> Path:
        return self.directory / LOCK_NAME

    @property
    def _index_path(self) -> Path:
        return self.directory / INDEX_NAME

    # -- writer lock --

    @property
    def is_writer(self) -> bool:
        return self._lock_file is not None

    def acquire(self) -> None:
        """Become the directory's one writer, or raise StoreLockedError naming the current one."""
        if self.is_writer:
            return
        self._prepare_directory()
        lock_file = self._open_lock_file()
        for _ in range(_LOCK_ATTEMPTS):
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pid = self.writer_pid()
                if pid is not None:
                    lock_file.close()
                    raise StoreLockedError(self._locked_message(pid)) from None
                time.sleep(0.01)
        else:
            lock_file.close()
            raise StoreLockedError(self._locked_message(None))
        self._lock_file = lock_file
        note = f"{os.getpid()} {socket.gethostname()} {format_timestamp(now_utc())}\n".encode()
        os.pwrite(lock_file.fileno(), note, 0)  # overwrite, then cut: the pid is never missing
        os.ftruncate(lock_file.fileno(), len(note))

    def release(self) -> None:
        self.close_journals()
        if self._lock_file is None:
            return
        with self._mutex:
            if self._index_dirty:
                self._save_index()
        fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
        self._lock_file.close()
        self._lock_file = None

    def writer_pid(self) -> int | None:
        """Pid of the live process holding the lock (0 if it has not written it yet); None if free."""
        if self.is_writer:
            return os.getpid()
        try:
            fd = os.open(self._lock_path, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_pid(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _locked_message(self, pid: int | None) -> str:
        return f"activity directory {self.directory} is already used by another aggregator (pid {pid or 'unknown'})"

    def _prepare_directory(self) -> None:
        try:
            make_dirs(self.directory)
        except FileExistsError:
            raise StoreError(f"activity directory {self.directory} exists and is not a directory") from None
        except OSError as err:
            raise StoreError(f"cannot create activity directory {self.directory}: {err.strerror}") from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise StoreError(f"activity directory {self.directory} is not writable (permission denied)")

    def _open_lock_file(self) -> BinaryIO:
        """A file object, so a store dropped without release() still frees the lock when collected."""
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as err:
            raise StoreError(f"cannot open lock file {self._lock_path}: {err.strerror}") from None
        return os.fdopen(fd, "r+b", buffering=0)

    def _require_writer(self) -> None:
        if not self.is_writer:
            raise StoreError(
                f"activity directory {self.directory} is not locked by this process: call acquire() before writing"
            )

    def _guard(self, path: Path) -> None:
        """Second line of defence behind safe names: never write outside the directory.

        A path is checked once: resolving it on every journal append cost more
        than the append itself, and a session's paths never change.
        """
        if path in self._guarded:
            return
        if path.parent == self.directory and path.name not in ("", ".", "..") and not path.is_symlink():
            pass  # a plain name in the directory: resolving would give the directory's own real path
        elif path.resolve().parent != self._real_directory():
            raise StoreError(f"refusing to write {path}: outside the activity directory {self.directory}")
        self._guarded.add(path)

    # -- paths --

    def _real_directory(self) -> Path:
        """The directory's real path; resolved once it exists (each resolve is an lstat per path
        component, and new sessions asked several times each on live ingest)."""
        if self._real_dir is not None:
            return self._real_dir
        real = self.directory.resolve()
        if self.directory.is_dir():
            self._real_dir = real
        return real

    def path_for(self, session: AgentSession) -> Path:
        """The session's final file: assigned once per session id and remembered.

        A session read by load() keeps the file it came from; a recovered journal's
        session gets the journal's name. Otherwise the name never collides with an
        existing file, so a session that merely shares an id overwrites nothing.
        """
        self._require_writer()
        with self._mutex:
            adopted = self._adopted.get(session.session_id)
            if adopted:
                self._bind(session.session_id, self.directory / adopted.pop(0))
            elif session.session_id not in self._paths:
                self._bind(session.session_id, self.directory / self._fresh_name(session))
            return self._paths[session.session_id]

    def journal_path_for(self, session: AgentSession) -> Path:
        final = self.path_for(session)
        return final.with_name(_stem(final.name) + JOURNAL_SUFFIX)

    def _fresh_name(self, session: AgentSession) -> str:
        stem = _stem(session_file_name(session.session_id, session.start_time))
        candidate, n = stem, 1
        while self._stem_taken(candidate):
            n += 1
            candidate = f"{stem}_{n}"
        return candidate + FINAL_SUFFIX

    def _stem_taken(self, stem: str) -> bool:
        return stem + FINAL_SUFFIX in self._assigned or any(
            os.path.lexists(self.directory / (stem + suffix)) for suffix in (FINAL_SUFFIX, JOURNAL_SUFFIX)
        )

    def _bind(self, session_id: str, path: Path) -> None:
        if path.parent == self.directory or path.parent.resolve() == self._real_directory():
            self._paths[session_id] = self.directory / path.name
            self._assigned.add(path.name)
            if self._names is not None:
                self._names.update(_name_prefixes(path.name))  # within one mtime tick the directory may look unchanged

    def may_hold(self, session_id: str) -> bool:
        """False when no file name in the directory can belong to ``session_id`` (no name has its fragment).

        The aggregator asks this before looking for a saved session to resume: a
        full listing for every new session made live ingest of many short
        sessions quadratic in the directory's size. Names are re-read only when
        the directory's mtime changed; names this store binds are added at once.
        """
        prefix = f"{FILE_PREFIX}{safe_id_fragment(session_id)}_"
        with self._mutex:
            mtime_ns = self._directory_mtime_ns()
            if mtime_ns is None:
                return False
            if self._names is None or mtime_ns != self._names_mtime_ns:
                try:
                    self._names = {f for n in os.listdir(self.directory) if n.startswith(FILE_PREFIX)
                                   for f in _name_prefixes(n)}
                except OSError:
                    return True  # cannot tell: let the listing decide
                self._names_mtime_ns = mtime_ns
            return prefix in self._names

    # -- writing --

    def append_events(self, session: AgentSession, events: Sequence[SessionEvent]) -> None:
        """Append to the session's journal in one write (a SIGKILL after it returns loses nothing)."""
        path = self.journal_path_for(session)
        self._guard(path)
        with self._mutex:  # two threads must not both find the journal empty and write a header
            handle = self._journal_fds.pop(path.name, None)
            try:
                if handle is not None and os.fstat(handle.fileno()).st_nlink == 0:  # removed behind our back
                    self._close_fd(handle)
                    handle = None
                if handle is None:
                    mark = self._listing_mark()
                    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
                    self._own_change(mark)
                    handle = os.fdopen(fd, "r+b", buffering=0)
                    payload = self._journal_payload(fd, session, events, path)
                else:  # ours, kept open since a write that ended with a newline
                    payload = _event_lines(events)
                if payload:
                    _write_all(handle.fileno(), payload)
            except OSError as err:
                if handle is not None:
                    self._close_fd(handle)  # reopened next time, with the torn-tail check
                raise StoreError(f"cannot append to journal {path}: {err.strerror}") from None
            self._journal_fds[path.name] = handle
            while len(self._journal_fds) > JOURNAL_FDS_OPEN:
                self._close_fd(self._journal_fds.popitem(last=False)[1])
            self._live_journals.add(path.name)

    def _close_journal(self, name: str) -> None:
        with self._mutex:
            fd = self._journal_fds.pop(name, None)
            if fd is not None:
                self._close_fd(fd)

    def close_journals(self) -> None:
        """Close every journal kept open (each append was already written through)."""
        with self._mutex:
            while self._journal_fds:
                self._close_fd(self._journal_fds.popitem()[1])

    @staticmethod
    def _close_fd(handle: BinaryIO) -> None:
        try:
            handle.close()
        except OSError:
            pass

    def _journal_payload(self, fd: int, session: AgentSession, events: Sequence[SessionEvent], path: Path) -> bytes:
        size = os.fstat(fd).st_size
        if size == 0:
            final_name = _stem(path.name) + FINAL_SUFFIX
            header = jsonio.dumps(_journal_header(session, final_name)) + b"\n"
            return header + _event_lines(_journal_seed(session, events))
        # A writer killed mid-line left a torn tail: end it so our first line stays whole.
        torn = os.pread(fd, 1, size - 1) != b"\n"
        return (b"\n" if torn else b"") + _event_lines(events)

    def save_snapshot(self, session: AgentSession) -> Path:
        """Turn end: the session as it stands, written atomically; the journal stays.

        Not fsynced: the journal already holds every event through a crash, and
        the snapshot is there for readers; two fsyncs per turn end were the
        largest cost of live ingest.
        """
        path = self.path_for(session)
        self._write_session(session, path, durable=False)
        with self._mutex:
            self._remember(path, session)
            self._index_changed()
        return path

    def finalize(self, session: AgentSession) -> Path:
        """Session end: the final file, written atomically, then the journal is removed."""
        path = self.path_for(session)
        self._write_session(session, path)
        journal = path.with_name(_stem(path.name) + JOURNAL_SUFFIX)
        self._close_journal(journal.name)
        mark = self._listing_mark()
        try:
            journal.unlink()
            self._own_change(mark)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise StoreError(f"cannot remove journal {journal}: {err.strerror}") from None
        with self._mutex:
            self._live_journals.discard(journal.name)
            self._remember(path, session)
            self._entries().pop(journal.name, None)
            self._index_changed()
        return path

    def _write_session(self, session: AgentSession, path: Path, *, durable: bool = True) -> None:
        self._guard(path)
        with gc_paused():
            payload = jsonio.dumps(session.to_dict(), indent=True)
        mark = self._listing_mark()
        try:
            jsonio.write_bytes_atomic(path, payload, durable=durable)
        except OSError as err:
            raise StoreError(f"cannot write session file {path}: {err.strerror}") from None
        self._own_change(mark)

    def _listing_mark(self) -> int | None:
        """The directory's mtime before a change of ours, when may_hold()'s names are current."""
        if self._names is None:
            return None
        mtime_ns = self._directory_mtime_ns()
        return mtime_ns if mtime_ns is not None and mtime_ns == self._names_mtime_ns else None

    def _own_change(self, mark: int | None) -> None:
        """After a file change of ours (its name is known already, see _bind): the names stay
        current. Without this every new session re-listed the directory (our own journal and
        snapshot writes change its mtime), a listing per session on live ingest."""
        if mark is None:
            return
        mtime_ns = self._directory_mtime_ns()
        if mtime_ns is None:
            return
        with self._mutex:
            if self._names_mtime_ns == mark:
                self._names_mtime_ns = mtime_ns

    def _directory_mtime_ns(self) -> int | None:
        """The directory's mtime (what says whether may_hold()'s names are current); None when unreadable."""
        try:
            return os.stat(self.directory).st_mtime_ns
        except OSError:
            return None

    def _remember(self, path: Path, session: AgentSession) -> None:
        """Index what we just wrote, so listing never re-parses our own files."""
        summary = _summary_dict(SessionSummary.of(session, path))
        self._entries()[path.name] = _entry(path.stat(), summary=summary)

    def recover_journals(self) -> list[RecoveredJournal]:
        """Journals a dead writer left behind, read back for the aggregator to rebuild and finalize."""
        self._require_writer()
        recovered = []
        for path in self._scan_journals():
            if path.name in self._live_journals:
                continue
            try:
                journal = _read_journal(path)
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as err:
                self._report(path, f"unreadable journal: {err}")
                continue
            if self._superseded(journal):
                log.info("removing journal %s: its final file is complete", path)
                path.unlink(missing_ok=True)
                continue
            self._adopted.setdefault(journal.header["session_id"], []).append(journal.final_path.name)
            recovered.append(journal)
        return recovered

    def _scan_journals(self) -> list[Path]:
        try:
            with os.scandir(self.directory) as scan:
                return sorted(Path(e.path) for e in scan if _is_journal_name(e.name))
        except OSError:
            return []

    def _superseded(self, journal: RecoveredJournal) -> bool:
        """A writer killed between its final write and the journal's removal: the final file wins."""
        try:
            raw = jsonio.read_json(journal.final_path)
        except (OSError, ValueError):
            return False
        return (
            isinstance(raw, dict)
            and raw.get("session_id") == journal.header["session_id"]
            and raw.get("status") != ACTIVE
            and isinstance(raw.get("events"), list)
            and len(raw["events"]) >= len(journal.events)
        )

    # -- reading --

    def list_sessions(self) -> list[SessionSummary]:
        """Every session, newest first, from the index (re-parsing only files that changed)."""
        return [record.summary for record in self._records()]

    def find(self, prefix: str) -> SessionSummary:
        return self._find_record(prefix).summary

    def latest(self) -> SessionSummary | None:
        records = self._records()
        return records[0].summary if records else None

    def load(self, target: str | Path, *, on_tail: Callable[[AgentSession], None] | None = None) -> AgentSession:
        """A whole session by id, unique prefix or path; a journal newer than its file is rebuilt.

        ``on_tail``: a viewer's early look. For a big session file it is called
        first with the session holding only its last events (about 1 MB of
        them; everything else complete), then the rest is decoded in short
        chunks (``sessionfile``) and the whole session returned. Not called for
        small files, journals or files of another layout.
        """
        path = _as_path(target)
        if path is None:
            return self._load_path(self._find_record(str(target)).source, on_tail)
        record = self._record_at(path)
        return self._load_path(record.source if record else path, on_tail)

    def cleanup(self, days: int, *, dry_run: bool = False, now: datetime | None = None) -> list[Path]:
        """Remove finished sessions older than ``days``; open or journaled ones are never touched."""
        cutoff = (parse_timestamp(now) or now_utc()) - timedelta(days=days)
        with self._mutex:
            expired = [r.final for r in self._records() if r.final is not None and _expired(r, cutoff)]
            if dry_run or not expired:
                return expired
            try:
                for path in expired:
                    path.unlink(missing_ok=True)
                    self._entries().pop(path.name, None)
            except OSError as err:
                raise StoreError(f"cannot remove {err.filename}: {err.strerror}") from None
            finally:
                self._save_index()
        return expired

    def _find_record(self, prefix: str) -> _Record:
        records = self._records()
        exact = [r for r in records if r.summary.session_id == prefix]
        if exact:
            return exact[0]
        matches = [r for r in records if prefix and r.summary.session_id.startswith(prefix)]
        ids = sorted({r.summary.session_id for r in matches})
        if not ids:
            raise SessionNotFoundError(f"no session matches {prefix!r}")
        if len(ids) > 1:
            raise AmbiguousSessionError(prefix, ids)
        return matches[0]

    def _record_at(self, path: Path) -> _Record | None:
        if path.parent.resolve() != self._real_directory():
            return None
        with self._mutex:  # opening one file says nothing about the others: their problems wait for a listing
            self._quiet = True
            try:
                records = self._records()
            finally:
                self._quiet = False
        for record in records:
            if path.name in (record.final and record.final.name, record.journal and record.journal.name):
                return record
        return None

    def _load_path(self, path: Path, on_tail: Callable[[AgentSession], None] | None = None) -> AgentSession:
        if path.name.endswith(JOURNAL_SUFFIX):
            return self._rebuild(path)
        try:
            session = sessionfile.read_session(path, on_tail)  # big files: in parts, faster
            if session is None:
                with gc_paused():
                    session = AgentSession.from_dict(jsonio.read_json(path))
        except FileNotFoundError:
            raise SessionNotFoundError(f"no session file {path}") from None
        except OSError as err:
            raise StoreError(f"cannot read {path}: {err.strerror}") from None
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            raise StoreError(f"{path} is not a readable session file: {err}") from None
        self._bind(session.session_id, path)
        return session

    def _rebuild(self, journal_path: Path) -> AgentSession:
        if self.rebuild is None:
            raise StoreError(f"session {journal_path.name} is still being recorded and cannot be read yet")
        try:
            journal = _read_journal(journal_path)
        except FileNotFoundError:
            raise SessionNotFoundError(f"no session file {journal_path}") from None
        except (OSError, ValueError) as err:
            raise StoreError(f"{journal_path} is not a readable journal: {err}") from None
        session = self.rebuild(journal.header, journal.events)
        self._bind(session.session_id, journal.final_path)
        return session

    # -- the index --

    def _records(self) -> list[_Record]:
        """Bring the index up to date with the directory, then merge files and journals per session."""
        with self._mutex, gc_paused():
            stats = self._scan()
            entries = self._entries()
            changed = False
            for name in [n for n in entries if n not in stats]:
                del entries[name]
                changed = True
            for name, st in stats.items():
                changed |= self._refresh_entry(entries, name, st)
            if changed:
                self._save_index()
            return self._merge(entries)

    def _scan(self) -> dict[str, os.stat_result]:
        """One scandir: the stat of every session file and journal (no file is opened)."""
        stats: dict[str, os.stat_result] = {}
        try:
            with os.scandir(self.directory) as scan:
                for entry in scan:
                    if not (_is_final_name(entry.name) or _is_journal_name(entry.name)):
                        continue
                    try:
                        if entry.is_file():
                            stats[entry.name] = entry.stat()
                    except OSError:
                        continue  # removed while we looked
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise StoreError(f"cannot read activity directory {self.directory}: {err.strerror}") from None
        return stats

    def _refresh_entry(self, entries: dict[str, dict[str, Any]], name: str, st: os.stat_result) -> bool:
        """Re-parse one file if its stat changed; True when the on-disk index should be rewritten.

        A growing journal alone does not rewrite the index: it changes on every append.
        """
        old = entries.get(name)
        if _is_fresh(old, st):
            return False
        journal = _is_journal_name(name)
        entries[name] = self._parse_journal_entry(name, st) if journal else self._parse_file_entry(name, st)
        return old is None or not journal

    def _parse_file_entry(self, name: str, st: os.stat_result) -> dict[str, Any]:
        path = self.directory / name
        try:
            raw = jsonio.read_json(path)
        except OSError as err:
            return _entry(st, problem=f"cannot read: {err.strerror}")
        except ValueError as err:
            return _entry(st, problem=f"invalid JSON ({err})")
        try:
            summary = _summarize(raw, path)
        except Exception as err:  # foreign content can fail anywhere in from_dict; it must not break listing
            return _entry(st, problem=str(err) if isinstance(err, ValueError) else f"not a session file ({err!r})")
        return _entry(st, summary=_summary_dict(summary))

    def _parse_journal_entry(self, name: str, st: os.stat_result) -> dict[str, Any]:
        path = self.directory / name
        try:
            data = path.read_bytes()
        except OSError as err:
            return _entry(st, problem=f"cannot read: {err.strerror}")
        first, _, rest = data.partition(b"\n")
        try:
            header = _parse_header(first)
        except ValueError as err:
            return _entry(st, problem=f"corrupt journal header ({err})")
        # Complete lines only: a line being written (no newline yet) is not counted.
        summary = _summary_dict(_journal_summary(header, path))
        return _entry(st, summary=summary, journal_events=rest.count(b"\n"))

    def _merge(self, entries: dict[str, dict[str, Any]]) -> list[_Record]:
        """One record per session stem: the final file's summary, overridden by a newer journal."""
        live = self.writer_pid() is not None
        open_status = ACTIVE if live else INTERRUPTED
        finals: dict[str, tuple[SessionSummary, int]] = {}
        journals: dict[str, tuple[SessionSummary | None, int]] = {}
        child = getattr(self.directory, "_make_child_relpath", None)  # CPython's no-parse child path
        for name, entry in entries.items():
            path = child(name) if child is not None else self.directory / name
            if entry.get("problem"):
                self._report(path, entry["problem"])
            summary = _summary_from_entry(entry, path)
            if _is_journal_name(name):
                journals[_stem(name)] = (summary, int(entry.get("journal_events") or 0))
            elif summary is not None:
                finals[_stem(name)] = (summary, entry["mtime_ns"])
        records = []
        for stem, final in finals.items():
            journal = journals.pop(stem, None)
            if journal is None:  # most sessions: a saved file alone (what _merge_one does for it, inline)
                summary, mtime_ns = final
                if summary.status == ACTIVE and not live:
                    summary.status = INTERRUPTED
                records.append(_Record(summary, summary.file_path, None, False, mtime_ns))
            else:
                records.append(self._merge_one(stem, final, journal, open_status, live))  # type: ignore[arg-type]
        for stem, journal in journals.items():
            record = self._merge_one(stem, None, journal, open_status, live)
            if record is not None:
                records.append(record)
        records.sort(key=_start_key, reverse=True)
        return records

    def _merge_one(
        self,
        stem: str,
        final: tuple[SessionSummary, int] | None,
        journal: tuple[SessionSummary | None, int] | None,
        open_status: str,
        live: bool,
    ) -> _Record | None:
        """None for a corrupt journal with no final file: it is only a reported problem."""
        journal_path = self.directory / (stem + JOURNAL_SUFFIX) if journal else None
        journal_summary, count = journal or (None, 0)
        if final is None:
            if journal_summary is None:
                return None
            journal_summary.event_count, journal_summary.status = count, open_status
            return _Record(journal_summary, None, journal_path, True, 0)
        summary, mtime_ns = final
        from_journal = journal_summary is not None and count > summary.event_count
        if journal is not None:
            summary.event_count = max(summary.event_count, count)
            summary.status = open_status
        elif summary.status == ACTIVE and not live:
            summary.status = INTERRUPTED
        return _Record(summary, summary.file_path, journal_path, from_journal, mtime_ns)

    def _entries(self) -> dict[str, dict[str, Any]]:
        """The index in memory, read once; a missing, corrupt or foreign index starts empty."""
        if self._index is None:
            self._index = self._read_index()
        return self._index

    def _read_index(self) -> dict[str, dict[str, Any]]:
        try:
            raw = jsonio.read_json(self._index_path)
        except (OSError, ValueError):
            return {}
        if not isinstance(raw, dict) or raw.get("version") != INDEX_VERSION or not isinstance(raw.get("files"), dict):
            return {}
        return {name: entry for name, entry in raw["files"].items() if isinstance(entry, dict)}

    def _index_changed(self) -> None:
        """Write the index at most every INDEX_SAVE_INTERVAL seconds while saves pour in.

        Rewriting it on every turn end made bulk writes quadratic in the number
        of sessions; a stale index on disk costs readers only a re-parse of the
        files whose inode, mtime or size no longer match, and release() writes
        the last state.
        """
        self._index_dirty = True
        if time.monotonic() - self._index_saved_at >= INDEX_SAVE_INTERVAL:
            self._save_index()

    def _save_index(self) -> None:
        """The index is a cache: failing to write it (read-only directory) only costs re-parsing
        later, and losing it in a crash costs the same, so it is renamed into place without fsync."""
        payload = jsonio.dumps({"version": INDEX_VERSION, "files": self._entries()})
        self._index_dirty = False
        self._index_saved_at = time.monotonic()
        try:
            jsonio.write_bytes_atomic(self._index_path, payload, durable=False)
        except OSError as err:
            log.debug("index %s not written: %s", self._index_path, err)

    def _report(self, path: Path, problem: str) -> None:
        if path.name in self._reported or self._quiet:
            return
        self._reported.add(path.name)
        self.problems.append((path, problem))
        log.warning("skipping %s: %s", path, problem)


def _read_pid(fd: int) -> int:
    try:
        return int(os.pread(fd, 64, 0).split()[0])
    except (IndexError, ValueError, OSError):
        return 0


def _as_path(target: str | Path) -> Path | None:
    """A Path, a .json/.jsonl name, or an existing file's path; anything else is an id or prefix."""
    if isinstance(target, Path):
        return target
    if target.endswith((FINAL_SUFFIX, ".jsonl")) or (os.sep in target and os.path.isfile(target)):
        return Path(target)
    return None


def _expired(record: _Record, cutoff: datetime) -> bool:
    if record.journal is not None or record.summary.status == ACTIVE:
        return False
    summary = record.summary
    moment = parse_timestamp(summary.end_time) or parse_timestamp(summary.start_time)
    if moment is None:
        moment = datetime.fromtimestamp(record.mtime_ns / 1e9, UTC)
    return moment < cutoff
