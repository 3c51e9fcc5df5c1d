"""Fast JSON in and out, and atomic file writes.

orjson is several times faster than the standard library at dumping large
sessions (DESIGN section 10: 0.05 s vs 0.31 s for 100k events), and it is the
one JSON library every module uses, so behaviour (non-str keys, NaN, odd
types) is the same everywhere.
"""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import orjson

_DUMP_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

# Modes for everything we create (issue 8): the user's umask applies, and on top of it
# others never get write access, even with umask 000. Passed to os.open/mkdir, which
# apply the umask themselves, so nobody has to read (or briefly change) the umask.
FILE_MODE = 0o664
DIR_MODE = 0o775


def _fallback(value: Any) -> Any:
    """Anything orjson cannot encode is written as its text, never dropped."""
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def dumps(value: Any, *, indent: bool = False) -> bytes:
    """Encode to UTF-8 JSON bytes."""
    options = _DUMP_OPTIONS | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(value, default=_fallback, option=options)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON; raises ``ValueError`` (orjson.JSONDecodeError) on bad input."""
    return orjson.loads(data)


def read_json(path: Path) -> Any:
    """Read and decode a JSON file (FileNotFoundError / ValueError propagate)."""
    with open(path, "rb") as handle:
        return orjson.loads(handle.read())


def write_bytes_atomic(path: Path, payload: bytes, *, durable: bool = True) -> None:
    """Write a whole file so that readers see the old or the new, never a half.

    Temp file in the same directory, fsync, rename, then fsync the directory so
    the rename itself survives a crash. ``durable=False`` skips both fsyncs, for
    caches that are cheap to rebuild.
    """
    path = Path(path)
    make_dirs(path.parent)
    fd, temp_name = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
    if durable:
        _fsync_directory(path.parent)


def write_json_atomic(path: Path, value: Any, *, indent: bool = True) -> None:
    """Atomically write ``value`` as JSON (indented: session files are read by people and jq)."""
    write_bytes_atomic(path, dumps(value, indent=indent))


def make_dirs(directory: Path) -> None:
    """``mkdir -p`` with DIR_MODE for every directory it creates (``Path.mkdir(parents=True)``
    gives the parents 0o777 & ~umask: world-writable under umask 000)."""
    directory = Path(directory)
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise
    if not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory")


def _create_temp(path: Path) -> tuple[int, str]:
    """A new temp file next to ``path`` (``.<name>.<random>.tmp``), created with FILE_MODE:
    the final file gets the user's umask without the umask being read or changed."""
    for _ in range(100):
        name = str(path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE), name
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file next to {path}")


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Decoding a big session or transcript allocates many objects it keeps: the collector's
    passes over them only cost time (about a third of a 100k-event load, DESIGN 10)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
