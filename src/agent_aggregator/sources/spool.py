"""The hook spool: events that could not reach a hub wait here, in order.

``aggregate hook`` appends one line per POST the hub did not take (the hub is
down or slow); the hub drains the spool when it starts and every few seconds
while it runs, so nothing a hook saw is lost. One line is
``{"path": "/events" | "/api/events", "body": <stamped body>}``.

Concurrency, without a daemon:

* appenders open ``hooks.jsonl`` with O_APPEND, take ``flock(LOCK_EX)`` and
  write the whole line with one ``os.write``: lines from concurrent hooks
  never interleave;
* a drainer takes the same lock and renames the file to
  ``hooks.<ns>.draining``; an appender that opened the old file before the
  rename notices (its descriptor no longer names ``hooks.jsonl``) and opens
  the new one, so no line lands in a file already being drained;
* ``.drain.lock`` keeps two drainers (two hubs, a hub and a runtime) from
  delivering the same leftovers twice.

A crash while draining leaves the ``.draining`` file behind; the next drain
delivers it first (oldest first, so order holds). Lines delivered just before
such a crash are delivered again: events carry a stable ``event_id`` and
consumers dedupe on it.

Stdlib only and cheap to import (no pathlib, typing, json or our model at import
time): ``aggregate hook`` imports this module whenever it spools. ``json`` imports
``re`` (~10 ms, half a bare Python start-up), so lines are written with the C encoder
that ``json.dumps`` itself runs, and ``json`` is imported only to read the spool.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

TYPE_CHECKING = False  # typing is not imported at run time: the hook pays for every import
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Mapping
    from pathlib import Path

    Deliver = Callable[[str, dict], "bool | None"]

ENV_VAR = "AGGREGATE_SPOOL_DIR"
SPOOL_FILE = "hooks.jsonl"
DRAIN_LOCK_FILE = ".drain.lock"
_PREFIX = "hooks."
_DRAINING = ".draining"
_TEMP = ".tmp"
_LINE_START = b'{"path":'  # how json.dumps of our records begins: used to find a line after a torn one
_OPEN_ATTEMPTS = 20


class DrainReport:
    """What one drain did: lines delivered, unreadable lines skipped, lines kept for later.

    ``error`` is the exception ``deliver`` raised, if that is what stopped the drain.
    """

    __slots__ = ("delivered", "bad_lines", "remaining", "error")

    def __init__(
        self, delivered: int = 0, bad_lines: int = 0, remaining: int = 0, error: Exception | None = None
    ) -> None:
        self.delivered = delivered
        self.bad_lines = bad_lines
        self.remaining = remaining
        self.error = error

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DrainReport):
            return NotImplemented
        return (self.delivered, self.bad_lines, self.remaining) == (
            other.delivered, other.bad_lines, other.remaining
        )

    def __repr__(self) -> str:
        error = f", error={self.error!r}" if self.error is not None else ""
        return (
            f"DrainReport(delivered={self.delivered}, bad_lines={self.bad_lines},"
            f" remaining={self.remaining}{error})"
        )


# --- where ------------------------------------------------------------------------------


def spool_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$AGGREGATE_SPOOL_DIR``, else ``~/.claude-mpm/spool``."""
    from pathlib import Path  # deferred: append() does not need it

    return Path(_spool_dir_text(environ))


def _spool_dir_text(environ: Mapping[str, str]) -> str:
    configured = environ.get(ENV_VAR)
    if configured:
        return os.path.abspath(os.path.expanduser(configured))
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".claude-mpm", "spool")


def _folder(directory: str | os.PathLike[str] | None) -> str:
    return os.fspath(directory) if directory is not None else _spool_dir_text(os.environ)


# --- append (the hook side) ---------------------------------------------------------------


def append(path: str, body: dict, *, directory: str | os.PathLike[str] | None = None) -> None:
    """Spool one POST the hub did not take, as one line, atomically among appenders.

    Raises TypeError/ValueError for a body JSON cannot encode (before writing
    anything) and OSError when the spool cannot be written.
    """
    folder = _folder(directory)
    line = dumps({"path": path, "body": body}).encode("utf-8") + b"\n"
    os.makedirs(folder, mode=0o700, exist_ok=True)
    target = os.path.join(folder, SPOOL_FILE)
    for _ in range(_OPEN_ATTEMPTS):
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _names(fd, target):
                _write_all(fd, line)
                return
            # A drainer renamed the file between our open and our lock: open the new one.
        finally:
            os.close(fd)  # also releases the lock
    raise OSError(errno.EAGAIN, "the spool file kept being replaced while appending", target)


def dumps(value: object) -> str:
    """``json.dumps(value, separators=(",", ":"))``, the same text and errors, without importing json."""
    try:
        from _json import encode_basestring_ascii, make_encoder

        # json.JSONEncoder's one-shot C path with its defaults: circular check, ensure_ascii, allow_nan.
        encode = make_encoder({}, _not_serializable, encode_basestring_ascii, None, ":", ",", False, False, True)
    except (ImportError, TypeError):  # another interpreter, or another signature: json itself
        import json

        return json.dumps(value, separators=(",", ":"))
    return "".join(encode(value, 0))


def _not_serializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _names(fd: int, path: str) -> bool:
    """Whether the open file ``fd`` is still the file at ``path``."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (current.st_dev, current.st_ino)


def _write_all(fd: int, data: bytes) -> None:
    """One write in practice; the loop only matters for huge lines (the lock keeps them whole)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# --- drain (the hub side) -----------------------------------------------------------------


def drain(deliver: Deliver, *, directory: str | os.PathLike[str] | None = None) -> DrainReport:
    """Deliver every spooled line, oldest first, with ``deliver(path, body)``.

    ``deliver`` returning False or raising stops the drain; the line it
    refused and everything after it stay spooled for the next drain. Lines
    that are not a ``{"path", "body"}`` record (a torn last line after a
    crash) are skipped and counted. Returns an empty report when there is no
    spool or another process is draining it right now.
    """
    folder = _folder(directory)
    report = DrainReport()
    if not os.path.isdir(folder):
        return report
    lock = _take_drain_lock(folder)
    if lock is None:
        return report
    try:
        _claim(folder)
        pending = _draining_files(folder)
        for index, name in enumerate(pending):
            if not _drain_file(os.path.join(folder, name), deliver, report):
                report.remaining += sum(_count_lines(os.path.join(folder, rest)) for rest in pending[index + 1:])
                break
    finally:
        os.close(lock)
    return report


def _take_drain_lock(folder: str) -> int | None:
    """The drainers' lock (non-blocking): None when another drainer holds it."""
    fd = os.open(os.path.join(folder, DRAIN_LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _claim(folder: str) -> None:
    """Move ``hooks.jsonl`` aside under the appenders' lock, so appends go to a fresh file."""
    target = os.path.join(folder, SPOOL_FILE)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_size and _names(fd, target):
            os.rename(target, os.path.join(folder, f"{_PREFIX}{_next_stamp(folder)}{_DRAINING}"))
    finally:
        os.close(fd)


def _stamp_of(name: str) -> int | None:
    """The number in ``hooks.<ns>.draining``; None for any other name."""
    if not (name.startswith(_PREFIX) and name.endswith(_DRAINING)):
        return None
    middle = name[len(_PREFIX):-len(_DRAINING)]
    return int(middle) if middle.isdigit() else None


def _next_stamp(folder: str) -> int:
    """A name later than every leftover even if the clock went back: order is kept by name."""
    stamps = [stamp for stamp in map(_stamp_of, os.listdir(folder)) if stamp is not None]
    return max([time.time_ns(), *(stamp + 1 for stamp in stamps)])


def _draining_files(folder: str) -> list[str]:
    """The files to deliver, oldest first; stray temp files of an interrupted rewrite are removed
    (the rewrite replaces its file atomically, so the original is still complete)."""
    stamped: list[tuple[int, str]] = []
    for name in os.listdir(folder):
        if name.endswith(_DRAINING + _TEMP) and name.startswith(_PREFIX):
            _unlink_quietly(os.path.join(folder, name))
            continue
        stamp = _stamp_of(name)
        if stamp is not None:
            stamped.append((stamp, name))
    return [name for _, name in sorted(stamped)]


def _drain_file(path: str, deliver: Deliver, report: DrainReport) -> bool:
    """Deliver one file's lines in order and delete it; False when delivery stopped
    (the file then holds exactly the undelivered rest)."""
    with open(path, "rb") as handle:
        for raw in handle:
            if not raw.strip():
                continue
            record, torn = _parse(raw)
            report.bad_lines += torn
            if record is None:
                continue
            try:
                accepted = deliver(record["path"], record["body"]) is not False
            except BaseException as error:
                _keep_rest(path, raw + handle.read(), report)
                if not isinstance(error, Exception):
                    raise
                report.error = error
                return False
            if not accepted:
                _keep_rest(path, raw + handle.read(), report)
                return False
            report.delivered += 1
    os.unlink(path)
    return True


def _keep_rest(path: str, rest: bytes, report: DrainReport) -> None:
    """Rewrite a draining file with its undelivered lines (atomically: temp file + rename)."""
    temporary = path + _TEMP
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, rest)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    report.remaining += _lines_in(rest)


def _parse(raw: bytes) -> tuple[dict | None, int]:
    """A spooled record from one line, and how many torn lines it held (0 or 1).

    A line torn by a crash mid-write has no newline, so the next append ends
    up glued to it: the record that starts later on the line is recovered.
    """
    line = raw.strip()
    record = _record(line)
    if record is not None:
        return record, 0
    start = line.find(_LINE_START, 1)
    while start != -1:
        record = _record(line[start:])
        if record is not None:
            return record, 1
        start = line.find(_LINE_START, start + 1)
    return None, 1


def _record(text: bytes) -> dict | None:
    import json  # the drainer's side (a long-running hub): no start-up to save

    try:
        value = json.loads(text)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    if isinstance(value, dict) and isinstance(value.get("path"), str) and isinstance(value.get("body"), dict):
        return value
    return None


def _lines_in(data: bytes) -> int:
    """Non-blank lines in a chunk of spool."""
    return sum(1 for line in data.split(b"\n") if line.strip())


def _count_lines(path: str) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    except FileNotFoundError:
        return 0


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
