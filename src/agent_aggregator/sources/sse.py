"""SSESource: listen to a Server-Sent Events stream (mnemosyne's ``GET /events``, or any
``text/event-stream`` of JSON events) and feed it to the aggregator.

The wire is parsed by httpx-sse (over an ``httpx.AsyncClient``), not by hand. This
class adds what a long-lived listener needs, with the same surface as
``SocketIOSource``:

* ``state`` in ``connecting`` / ``connected`` / ``disconnected`` / ``retrying``,
  ``attempt`` (consecutive failures), ``next_retry_in``, ``last_error``;
* reconnection with capped exponential backoff (0.5 s doubling to 10 s, jittered;
  a server's ``retry:`` field sets the first delay), sending ``Last-Event-ID`` so
  the server can resume where the stream broke;
* de-duplication by SSE ``id`` (a server that replays on reconnect, or mnemosyne's
  synthetic replay on connect, is counted once), over the last 10,000 ids;
* per-stream context (``normalize_sse.StreamContext``): which session an event
  without one belongs to, which command start a completion closes.

Each frame's ``data`` must be one JSON object; anything else is counted in
``malformed`` and logged once, never raised. Frames reach
``on_event(event_name, payload)``: the SSE ``event:`` name (None for the default
``message``) and the decoded object.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime
from typing import Any, Callable

from ..loopcall import call_in_loop
from ..normalize_sse import StreamContext
from ..timeutil import now_utc
from .socketio_client import (
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    CONNECTED,
    CONNECTING,
    DISCONNECTED,
    RETRYING,
    StateCallback,
    StateReporting,
    backoff_delay,
    describe_error,
)

log = logging.getLogger("agent_aggregator.sources.sse")

SEEN_IDS_LIMIT = 10_000
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 90.0  # mnemosyne sends a keep-alive comment about every 15 s; silence this long is a dead link

EventCallback = Callable[[str | None, Any], None]


class SSESource(StateReporting):
    """A resilient SSE listener feeding ``on_event(event_name, payload)``."""

    def __init__(
        self,
        url: str,
        on_event: EventCallback,
        *,
        on_state: StateCallback | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        self.url = url
        self.on_event = on_event
        self.on_state = on_state
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.context = StreamContext(url)
        self.state = DISCONNECTED
        self.attempt = 0
        self.connections = 0
        self.connected_since: datetime | None = None
        self.events_received = 0
        self.duplicates = 0
        self.malformed = 0
        self.callback_errors = 0
        self.last_error: str | None = None
        self.last_event_id: str | None = None
        self.server_retry: float | None = None  # seconds, from the stream's ``retry:`` field
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._retry_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # -- what the outside reads --------------------------------------------------------

    @property
    def server(self) -> str:
        return self.url.split("://", 1)[-1].rstrip("/")

    @property
    def connected(self) -> bool:
        return self.state == CONNECTED

    @property
    def next_retry_in(self) -> float | None:
        if self.state != RETRYING or self._retry_at is None or self._loop is None:
            return None
        return max(0.0, self._retry_at - self._loop.time())

    def describe(self) -> str:
        """One line for status output, like ``SocketIOSource.describe``."""
        if self.state == CONNECTED:
            return f"SSE connected to {self.server}"
        if self.state == RETRYING:
            why = f": {self.last_error}" if self.last_error else ""
            return f"SSE retrying {self.server} in {self.next_retry_in or 0.0:.1f} s (attempt {self.attempt}{why})"
        if self.state == CONNECTING:
            return f"SSE connecting to {self.server}" + (f" (attempt {self.attempt + 1})" if self.attempt else "")
        return f"SSE disconnected from {self.server}"

    def status(self) -> dict[str, Any]:
        """For the status file: one entry per SSE source."""
        return {
            "url": self.url,
            "state": self.state,
            "attempt": self.attempt,
            "next_retry_in": self.next_retry_in,
            "last_error": self.last_error,
            "connections": self.connections,
            "events_received": self.events_received,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "last_event_id": self.last_event_id,
        }

    # -- control -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run()`` to return. Safe from any thread, before or during run()."""
        self._stopping = True
        if self._wake is not None:
            call_in_loop(self._loop, self._interrupt)

    def _interrupt(self) -> None:
        assert self._wake is not None
        self._wake.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()  # a stream read blocks until the server writes: cut it

    async def run(self) -> None:
        """Connect, read, reconnect with backoff (and ``Last-Event-ID``) until ``stop()``."""
        import httpx

        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        timeout = httpx.Timeout(self.connect_timeout, read=self.read_timeout)
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            try:
                while not self._stopping:
                    self._set_state(CONNECTING)
                    self._task = asyncio.ensure_future(self._stream(client))
                    try:
                        reason = await self._task
                    except asyncio.CancelledError:
                        if self._stopping:
                            break
                        raise
                    finally:
                        self._task = None
                        self.connected_since = None
                    if self._stopping:
                        break
                    self._failed(reason)
                    await self._back_off()
            finally:
                self._retry_at = None
                if self.state != DISCONNECTED:
                    self._set_state(DISCONNECTED)

    # -- internals ---------------------------------------------------------------------

    async def _stream(self, client: Any) -> str:
        """One connection, read to its end; returns why it ended (never raises but CancelledError)."""
        import httpx
        from httpx_sse import SSEError, aconnect_sse

        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        try:
            async with aconnect_sse(client, "GET", self.url, headers=headers) as source:
                response = source.response
                if response.status_code != 200:
                    return f"HTTP {response.status_code} from {self.server}"
                content_type = response.headers.get("content-type", "").partition(";")[0].strip()
                if content_type != "text/event-stream":
                    return f"not an event stream (Content-Type {content_type or 'missing'})"
                self._on_connected()
                async for sse in source.aiter_sse():
                    self._handle(sse)
                return "stream closed by the server"
        except SSEError as error:
            return f"not an event stream ({error})"
        except httpx.ConnectError as error:
            return _connect_reason(error)
        except httpx.TimeoutException:
            return "timed out"
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return "connection lost (the server closed the stream mid-way)"
        except (httpx.HTTPError, OSError, UnicodeDecodeError) as error:
            return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__

    def _on_connected(self) -> None:
        if self.state == CONNECTED:
            return
        self.attempt = 0
        self.connections += 1
        self.last_error = None
        self.connected_since = now_utc()
        self._set_state(CONNECTED)
        log.info("connected to the SSE stream %s", self.url)

    def _handle(self, sse: Any) -> None:
        if sse.retry is not None and sse.retry >= 0:
            self.server_retry = sse.retry / 1000.0
        if not sse.data.strip():
            return  # nothing to dispatch (the spec's rule; httpx-sse yields such frames, e.g. after a comment)
        ident = sse.id or None
        if ident is not None:
            if ident in self._seen:
                self.duplicates += 1
                return
            self._seen[ident] = None
            if len(self._seen) > SEEN_IDS_LIMIT:
                self._seen.popitem(last=False)
            self.last_event_id = ident
        try:
            from .. import jsonio

            payload = jsonio.loads(sse.data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.malformed += 1
            if self.malformed == 1:
                log.warning("%s sent a frame whose data is not a JSON object (further ones are only counted)", self.url)
            return
        self.events_received += 1
        name = sse.event if sse.event and sse.event != "message" else None
        try:
            self.on_event(name, self.context.prepare(payload, name))
        except Exception:  # noqa: BLE001 - a consumer's bug must not drop the stream
            self.callback_errors += 1
            if self.callback_errors == 1:
                log.exception("SSE event callback failed (further failures are only counted)")

    def _failed(self, reason: str) -> None:
        self.attempt += 1
        self.last_error = reason
        level = logging.WARNING if self.attempt == 1 or self.attempt % 10 == 0 else logging.DEBUG
        log.log(level, "SSE stream %s (attempt %d): %s", self.url, self.attempt, reason)

    async def _back_off(self) -> None:
        assert self._loop is not None and self._wake is not None
        initial = self.server_retry if self.server_retry is not None else self.backoff_initial
        delay = backoff_delay(self.attempt, initial=max(initial, 0.05), cap=max(self.backoff_max, initial))
        self._retry_at = self._loop.time() + delay
        self._set_state(RETRYING)
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except asyncio.TimeoutError:
            pass
        finally:
            self._retry_at = None



def _connect_reason(error: BaseException) -> str:
    """httpx says "All connection attempts failed"; the reason (refused, DNS) is down the chain."""
    text = describe_error(error)
    if "refused" in text.lower():
        return "connection refused"
    return text


__all__ = ["SSESource"]
