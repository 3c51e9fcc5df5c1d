"""Reading our own session files in parts: the last events first, then the rest in chunks.

Decoding a 100,000-event file (170 MB) is one ``orjson.loads`` call of about a
second, and it holds the GIL all along, so a viewer that waits for it shows
nothing and answers no key meanwhile. Session files written by this package
(``jsonio.write_json_atomic``: orjson, 2-space indent, ``to_dict`` key order)
have a fixed shape around the events array::

    {
      "session_id": ...,
      ...
      "events": [
        {
          ...one event, every line indented deeper...
        },
        {
          ...
        }
      ],
      "delegations": [
      ...

JSON strings never hold a raw newline, so ``\\n  "events": [\\n`` and
``\\n    }\\n  ],\\n  "delegations": `` can only be those two places, and
``\\n    },\\n    {\\n`` only the border between two events. ``read_parts``
uses that to decode the session without its events, then the last events,
then the rest in chunks of a few megabytes, each one a short ``orjson.loads``.
Any file that does not have this shape (written by hand, by another tool, an
older layout, corrupt) raises ``NotOurLayout`` and the caller decodes it whole,
as before: the result is the same session either way.

``read_session`` reads every big session file this way, viewer or not: chunks
of 1 MB are decoded and turned into events while their objects are still in
the CPU cache, which is faster than one ``orjson.loads`` of the whole file and
then a pass over it (about a quarter less time for the 100,000-event file of
bench/store.py), and pays for sharing equal values between the events
(``model.events_from_dicts``, ``compact``).
"""

from __future__ import annotations

import copy
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import orjson

from .jsonio import gc_paused

if TYPE_CHECKING:  # model imports this module lazily (AgentSession.load)
    from .model import AgentSession

EVENTS_OPEN = b'\n  "events": [\n'
EVENTS_CLOSE = b'\n    }\n  ],\n  "delegations": '
BORDER = b"\n    },\n    {\n"
BORDER_END = len(b"\n    }")  # the first event's text ends here within a border
BORDER_NEXT = len(b"\n    },\n")  # the next event's text starts here
CHUNK_BYTES = 1024 * 1024  # decoded, about 2.5 MB of objects: about what a core's cache holds
TAIL_BYTES = 1024 * 1024  # about 600 events: a screen's worth many times over
MIN_SIZE = 8 * 1024 * 1024  # smaller files are decoded whole: fast enough, nothing to gain


class NotOurLayout(ValueError):
    """The file is not laid out as ``write_json_atomic`` writes sessions: decode it whole."""


@dataclass
class Parts:
    """A session file split without decoding its events."""

    header: dict[str, Any]  # the whole session object with "events": []
    data: bytes | mmap.mmap
    first: int  # offset of the first event's "{" line
    last: int  # offset just past the last event's closing "}"

    def tail_chunk(self, size: int = TAIL_BYTES) -> tuple[int, list[Any]]:
        """(offset where it starts, the decoded events) of the last ``size`` bytes' whole events."""
        if self.last - self.first <= size:
            return self.first, _decode(self.data, self.first, self.last)
        border = self.data.rfind(BORDER, self.first, self.last - size)
        start = self.first if border < 0 else border + BORDER_NEXT
        return start, _decode(self.data, start, self.last)

    def chunks(self, end: int, size: int = CHUNK_BYTES) -> Iterator[list[Any]]:
        """The events from the first one up to offset ``end`` (an event's start), in chunks of about ``size``."""
        start = self.first
        stop = end - BORDER_NEXT + BORDER_END if end > self.first else self.first  # end of the event before
        while start < stop:
            target = start + size
            if target >= stop:
                yield _decode(self.data, start, stop)
                return
            border = self.data.find(BORDER, target, stop)
            if border < 0:
                yield _decode(self.data, start, stop)
                return
            yield _decode(self.data, start, border + BORDER_END)
            start = border + BORDER_NEXT


def _decode(data: bytes | mmap.mmap, start: int, end: int) -> list[Any]:
    try:
        value = orjson.loads(b"[" + data[start:end] + b"]")
    except orjson.JSONDecodeError as error:
        raise NotOurLayout(f"events do not decode: {error}") from None
    if not isinstance(value, list):
        raise NotOurLayout("events are not a list")
    return value


def split(data: bytes | mmap.mmap) -> Parts:
    """Find the events array and decode everything else; NotOurLayout when the shape differs."""
    opening = data.find(EVENTS_OPEN)
    if opening < 0:  # the 2-space indent makes it the top level's, and the first one is the only one
        raise NotOurLayout("no events array at the top level")
    closing = data.rfind(EVENTS_CLOSE)
    if closing < opening:
        raise NotOurLayout("the events array is not followed by delegations")
    first = opening + len(EVENTS_OPEN)
    last = closing + BORDER_END
    if data[first:first + 5] != b"    {":
        raise NotOurLayout("the events array does not start with an object")
    try:
        header = orjson.loads(
            data[:opening] + b'\n  "events": [],\n  "delegations": ' + data[closing + len(EVENTS_CLOSE):]
        )
    except orjson.JSONDecodeError as error:
        raise NotOurLayout(f"the session around the events does not decode: {error}") from None
    if not isinstance(header, dict):
        raise NotOurLayout("not a JSON object")
    return Parts(header, data, first, last)


def open_parts(path: Path) -> Parts:
    """``split`` of a file, memory-mapped (only the pages decoded are read); NotOurLayout for small files.

    OSError (missing file, permissions) propagates.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < MIN_SIZE:
            raise NotOurLayout("small file")
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    return split(data)


def read_session(path: Path, on_tail: Callable[["AgentSession"], None] | None = None) -> "AgentSession | None":
    """A whole session file read in parts; None when it is small or not our layout (decode it whole).

    ``on_tail``: a viewer's early look, called first with the session holding
    only its last events (everything else complete); between the later chunks
    the thread yields, so the viewer's thread runs. One collector pause over the
    whole read: re-enabling it after each part let a full collection pass over
    the events built so far each time. OSError propagates.
    """
    from .model import AgentSession, SessionEvent, events_from_dicts

    try:
        parts = open_parts(path)
    except NotOurLayout:
        return None
    events: list[SessionEvent] = []
    shared: dict[str, str] = {}  # one copy of each repeated string for the whole file
    with gc_paused():
        try:
            tail_start, tail_raw = parts.tail_chunk()
            session_id = parts.header.get("session_id")
            tail = events_from_dicts(tail_raw, session_id if isinstance(session_id, str) else None, shared=shared)
            partial = AgentSession.from_dict(parts.header, tail)
            del tail_raw
            if on_tail is not None:
                on_tail(partial)
            for chunk in parts.chunks(tail_start):
                events += events_from_dicts(chunk, partial.session_id, shared=shared)
                del chunk
                if on_tail is not None:
                    time.sleep(0)  # let a waiting thread (the viewer's) run between chunks
        except NotOurLayout:
            return None
    whole = copy.copy(partial)  # the viewer keeps its partial one; the rest is shared, unchanged
    events += tail
    whole.events = events
    return whole
