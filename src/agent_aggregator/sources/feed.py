"""Feed: hand events from the hub's event loop to one consumer thread, in order, with bounded room.

Why: with the aggregator's per-event work (normalize, journal write, snapshot and
final-file fsyncs) on the event loop, a burst from one client held up everything
else there, the Engine.IO pings of every connection included, and the connection
(with the events still in flight on it) was dropped. Through a Feed the loop only
queues an event; a worker thread consumes batches of them (one ``handle_events``
call each: one lock, one journal write per session).

Flow control, never loss:

* ``put()`` never blocks and never drops (the Redis relay and other callers that
  cannot wait may push past ``capacity``; ``stats`` shows by how much).
* ``await room()`` waits while ``capacity`` events are pending. The hub awaits it
  in a client's Socket.IO handler, which it runs inline, so python-socketio stops
  reading that client's socket: the sender is slowed, nothing is dropped.
* ``await handled(ticket)`` waits until the consumer has handled that event
  (``POST /events`` answers 202 only then: journaled). Such a caller puts with
  ``inline_if_idle``: when nothing is pending, the event is handled right there,
  without the two thread hand-offs (a hook's lone POST stays as fast as before).
* ``close()`` stops taking new work off the loop and consumes everything pending
  before the thread ends, so stopping the aggregator afterwards saves all of it.

The consumer gets ``[(event_name, payload), ...]`` in put order; an exception it
raises is counted and logged once, and the batch counts as handled (as a hub
listener that raises does).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import Any, Callable

log = logging.getLogger("agent_aggregator.feed")

CAPACITY = 1024  # events pending before senders wait: ~1 s of work, so a 202 never waits much longer
BATCH = 256  # events the consumer takes per round (fewer when fewer are pending)

Consumer = Callable[[list[tuple[str, Any]]], None]


class Feed:
    """A bounded FIFO from one event loop to one consumer thread (see the module docstring)."""

    def __init__(self, consume: Consumer, *, capacity: int = CAPACITY, batch: int = BATCH,
                 name: str = "event-feed") -> None:
        if capacity < 1 or batch < 1:
            raise ValueError("capacity and batch must be at least 1")
        self.consume = consume
        self.capacity = capacity
        self.batch = batch
        self.name = name
        self._cond = threading.Condition()
        self._items: deque[tuple[str, Any]] = deque()
        self._put_seq = 0  # tickets handed out (the last event's number)
        self._done_seq = 0  # events the consumer has handled (in order, so a number says "all up to it")
        self._closing = False
        self._accepting = False  # the consumer thread runs and will still take what is queued
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Loop-side waiters, touched under _cond: (ticket, future) for handled(), futures for room().
        self._ticket_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        self.stats: dict[str, int] = {"handled": 0, "inline": 0, "batches": 0, "high_water": 0,
                                      "room_waits": 0, "consumer_errors": 0}
        self._warned = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start the consumer thread; waiters are woken on ``loop`` (default: the running one)."""
        if self._thread is not None:
            return
        self._loop = loop or asyncio.get_running_loop()
        self._accepting = True
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def close(self, timeout: float | None = None) -> bool:
        """Consume everything pending, then end the thread; True once it has ended.

        Blocking: from a coroutine call it through ``asyncio.to_thread``. Events put
        afterwards are consumed on the caller's thread (never dropped)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def running(self) -> bool:
        """The consumer thread takes queued events (False before ``start()`` and once closed)."""
        return self._accepting

    @property
    def pending(self) -> int:
        """Events put and not yet handled (queued plus the batch being consumed)."""
        return self._put_seq - self._done_seq

    # -- the loop's side -----------------------------------------------------------------------

    def put(self, event_name: str, payload: Any, *, inline_if_idle: bool = False) -> int:
        """Queue one event; returns its ticket for ``handled()``. Never blocks, never drops.

        ``inline_if_idle``: when nothing is pending, consume it right here instead (a caller
        about to wait for ``handled()`` saves the two thread hand-offs, ~0.1 ms per event;
        the order holds, as nothing is queued before it). Call from the loop's thread only."""
        with self._cond:
            self._put_seq += 1
            ticket = self._put_seq
            idle = not self._items and self._done_seq == ticket - 1
            if not self._accepting or (inline_if_idle and idle):  # also: not started, or closed
                inline = True
                self.stats["inline"] += 1
            else:
                inline = False
                self._items.append((event_name, payload))
                pending = self._put_seq - self._done_seq
                if pending > self.stats["high_water"]:
                    self.stats["high_water"] = pending
                self._cond.notify()
        if inline:
            self._consume_safely([(event_name, payload)])
            with self._cond:
                self._done_seq = max(self._done_seq, ticket)
                self.stats["handled"] += 1
        return ticket

    async def room(self, timeout: float | None = None) -> bool:
        """Wait until fewer than ``capacity`` events are pending (True; at once when there is
        room), or ``timeout`` seconds (False: still full)."""
        with self._cond:
            if self._put_seq - self._done_seq < self.capacity or not self._accepting:
                return True
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room_waiters.append(future)
            self.stats["room_waits"] += 1
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            with self._cond:
                if future in self._room_waiters:
                    self._room_waiters.remove(future)
            return False
        return True

    async def handled(self, ticket: int) -> None:
        """Return once the consumer has handled the event ``put()`` numbered ``ticket``."""
        with self._cond:
            if self._done_seq >= ticket:
                return
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._ticket_waiters.append((ticket, future))
        await future

    def _release(self) -> None:
        """On the loop: wake the waiters whose event is handled, and senders once there is room."""
        with self._cond:
            done, pending = self._done_seq, self._put_seq - self._done_seq
            ready = [future for ticket, future in self._ticket_waiters if ticket <= done]
            self._ticket_waiters = [(t, f) for t, f in self._ticket_waiters if t > done]
            rooms: list[asyncio.Future[None]] = []
            free = self.capacity - pending if self._accepting else len(self._room_waiters)
            while self._room_waiters and free > 0:
                future = self._room_waiters.popleft()
                if not future.done():  # one that gave up (timeout, cancel) takes no room
                    rooms.append(future)
                    free -= 1
        for future in ready + rooms:
            if not future.done():
                future.set_result(None)

    # -- the consumer thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._items and not self._closing:
                        self._cond.wait()
                    if not self._items:  # closing, and everything is consumed
                        self._accepting = False
                        break
                    count = min(len(self._items), self.batch)
                    batch = [self._items.popleft() for _ in range(count)]
                self._consume_safely(batch)
                with self._cond:
                    self._done_seq += len(batch)
                    self.stats["handled"] += len(batch)
                    self.stats["batches"] += 1
                    wake = bool(self._ticket_waiters or self._room_waiters)
                if wake:
                    self._wake_loop()
        finally:
            with self._cond:
                self._accepting = False
                leftover = list(self._items)  # only if the loop above died: still never dropped
                self._items.clear()
            if leftover:
                self._consume_safely(leftover)
                with self._cond:
                    self._done_seq += len(leftover)
            self._wake_loop()  # room() waiters must not wait for a consumer that is gone

    def _wake_loop(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._release)
        except RuntimeError:  # the loop closed meanwhile: nobody waits any more
            pass

    def _consume_safely(self, batch: list[tuple[str, Any]]) -> None:
        try:
            self.consume(batch)
        except Exception:  # noqa: BLE001 - one bad batch must never stop the feed
            self.stats["consumer_errors"] += 1
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            log.log(level, "%s: the consumer failed on a batch of %d events", self.name, len(batch), exc_info=True)
