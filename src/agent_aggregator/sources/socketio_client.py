"""SocketIOSource: listen to a Socket.IO server (claude-mpm's monitor, or our hub).

python-socketio's ``AsyncClient`` over the websocket transport, with its own
reconnection switched off: this class runs the loop itself (connect, wait for
the disconnect, back off, retry) so that

* the backoff is capped exponential with jitter: 0.5 s doubling to 10 s;
* ``state`` is always exactly one of ``connecting``, ``connected``,
  ``disconnected`` (the link just dropped, or not started/stopped) and
  ``retrying`` (``attempt`` consecutive failures so far, next try in ``next_retry_in`` s);
* the very first failure is visible (``state == "retrying"``, ``last_error``)
  instead of hidden inside the library's retry loop.

Every event the server emits reaches ``on_event(event_name, payload)`` through
a catch-all handler (claude-mpm re-emits hooks under ``claude_event``,
``hook_event``, ``tool_event``, ... and may add names). ``event_history``
(what claude-mpm and our hub send on connect) is unpacked: each item is fed on
its own, under the name our hub recorded with it (None for claude-mpm's). Duplicates from such a replay are the
aggregator's to drop (stable event ids), not this class's: it forwards all.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime
from typing import Any, Callable

from ..timeutil import now_utc

log = logging.getLogger("agent_aggregator.sources.socketio")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # larger than any event the hub accepts (32 MiB)

CONNECTING = "connecting"
CONNECTED = "connected"
DISCONNECTED = "disconnected"
RETRYING = "retrying"
STATES = (CONNECTING, CONNECTED, DISCONNECTED, RETRYING)

HISTORY_EVENT = "event_history"
HISTORY_NAME_KEY = "_event_name"  # the hub's (sources/hub.py): the name an item was relayed under
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 10.0
JITTER = 0.2  # each delay is the nominal one minus up to 20 %, so it never exceeds the cap

EventCallback = Callable[[str | None, Any], None]
BatchCallback = Callable[[list[tuple[str | None, Any]]], None]
BATCH_LIMIT = 500  # events handed over per on_batch call (bounds how long one call holds the aggregator)
# How long received events wait to be handed over as one batch. The client reads one
# packet per loop pass (python-engineio awaits each receive), so a batch "per pass" is
# always one event; a few milliseconds gather the events of a burst.
BATCH_DELAY = 0.005
StateCallback = Callable[[str], None]


class StateReporting:
    """``state`` plus an optional ``on_state`` callback, shared by the reconnecting sources."""

    state: str
    on_state: StateCallback | None

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:  # noqa: BLE001 - a display callback must not stop the source
                log.debug("state callback failed", exc_info=True)


def backoff_delay(attempt: int, *, initial: float = BACKOFF_INITIAL, cap: float = BACKOFF_MAX,
                  rng: Callable[[], float] = random.random) -> float:
    """The wait before retry number ``attempt`` (1-based): initial * 2^(attempt-1), capped, jittered down."""
    nominal = min(cap, initial * (2 ** max(0, min(attempt - 1, 30))))
    return nominal * (1.0 - JITTER * rng())


def history_items(data: Any) -> list[Any]:
    """The payloads inside an ``event_history`` message (``{"events": [...]}`` or a bare list)."""
    if isinstance(data, dict):
        events = data.get("events")
        return list(events) if isinstance(events, list) else []
    if isinstance(data, list):
        return list(data)
    return []


def history_entry(item: Any) -> tuple[str | None, Any]:
    """``(event name, payload)`` for one ``event_history`` item.

    Our hub adds the name each item was relayed under (``HISTORY_NAME_KEY``); it
    is taken off again so the payload is the one relayed live (same event id,
    same content). claude-mpm's items carry no name: None.
    """
    if isinstance(item, dict) and HISTORY_NAME_KEY in item:
        payload = dict(item)
        name = payload.pop(HISTORY_NAME_KEY)
        return (name if isinstance(name, str) and name else None), payload
    return None, item


def describe_error(error: BaseException) -> str:
    """One short line for a connection failure.

    python-socketio wraps everything in a bare "Connection error"; the real
    reason (refused, handshake answered 404, DNS) is further down the chain.
    """
    chain: list[BaseException] = [error]
    while len(chain) < 6:
        cause = chain[-1].__cause__ or chain[-1].__context__
        if cause is None or cause in chain:
            break
        chain.append(cause)
    for link in reversed(chain):
        text = _explain(link)
        if text:
            return text
    return type(error).__name__


def _explain(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    os_error = getattr(error, "os_error", None)  # aiohttp.ClientConnectorError
    if isinstance(os_error, OSError):
        if isinstance(os_error, ConnectionRefusedError) or "Connect call failed" in str(os_error):
            return "connection refused"
        return os_error.strerror or str(os_error)
    status = getattr(error, "status", None)  # aiohttp.WSServerHandshakeError
    if isinstance(status, int) and type(error).__name__ == "WSServerHandshakeError":
        return f"websocket handshake refused with HTTP {status} (not a Socket.IO server?)"
    if isinstance(error, asyncio.TimeoutError):
        return "timed out"
    text = " ".join(str(error).split())
    if not text or text == "Connection error":
        return ""
    return text if len(text) <= 160 else text[:157] + "..."


class SocketIOSource(StateReporting):
    """A resilient Socket.IO listener feeding ``on_event(event_name, payload)``."""

    def __init__(
        self,
        url: str,
        on_event: EventCallback,
        *,
        on_state: StateCallback | None = None,
        transports: tuple[str, ...] = ("websocket",),
        connect_timeout: float = 5.0,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        socketio_path: str = "socket.io",
        token: str | None = None,
        on_batch: BatchCallback | None = None,
    ) -> None:
        self.url = url
        # With on_batch, events are collected for up to BATCH_DELAY seconds (or BATCH_LIMIT
        # events) and handed over in order as one batch instead of one call each: the
        # aggregator then takes its lock and writes each journal once per batch.
        self.on_batch = on_batch
        self._pending: list[tuple[str | None, Any]] = []
        self._flush_scheduled = False
        self.token = token or None  # presented as auth={"token": ...} (a hub that requires one)
        self._refusal: str | None = None  # why the server refused the last connect, if it said
        self.on_event = on_event
        self.on_state = on_state
        self.transports = list(transports)
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.socketio_path = socketio_path
        self.state = DISCONNECTED
        self.attempt = 0  # consecutive failed attempts (a dropped link counts as one); 0 once connected
        self.connections = 0  # successful connections so far
        self.connected_since: datetime | None = None
        self.events_received = 0
        self.history_events_received = 0
        self.callback_errors = 0
        self.last_error: str | None = None
        self._retry_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._client: Any = None

    # -- what the outside reads --------------------------------------------------------

    @property
    def server(self) -> str:
        """``host:port`` of the server (the URL without its scheme)."""
        return self.url.split("://", 1)[-1].rstrip("/")

    @property
    def next_retry_in(self) -> float | None:
        """Seconds until the next attempt while ``retrying``, else None."""
        if self.state != RETRYING or self._retry_at is None or self._loop is None:
            return None
        return max(0.0, self._retry_at - self._loop.time())

    @property
    def connected(self) -> bool:
        return self.state == CONNECTED

    def describe(self) -> str:
        """One line for status output: "connected to localhost:8765", "retrying in 4.0 s (attempt 3)"."""
        if self.state == CONNECTED:
            return f"connected to {self.server}"
        if self.state == RETRYING:
            wait = self.next_retry_in or 0.0
            why = f": {self.last_error}" if self.last_error else ""
            return f"retrying {self.server} in {wait:.1f} s (attempt {self.attempt}{why})"
        if self.state == CONNECTING:
            return f"connecting to {self.server}" + (f" (attempt {self.attempt + 1})" if self.attempt else "")
        return f"disconnected from {self.server}"

    # -- control -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run()`` to disconnect and return. Safe from any thread, before or during run()."""
        self._stopping = True
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        if _in_loop_thread(loop):
            wake.set()
        else:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed meanwhile
                pass

    async def run(self) -> None:
        """Connect, stay connected, reconnect with backoff; return once ``stop()`` is called."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._stopping:
            self._wake.set()
        try:
            while not self._stopping:
                self._set_state(CONNECTING)
                client, disconnected = self._new_client()
                try:
                    await asyncio.wait_for(self._connect(client), self.connect_timeout * 2)
                except asyncio.CancelledError:
                    await self._close(client)
                    raise
                except Exception as error:  # noqa: BLE001 - any failure is one more attempt
                    await self._close(client)
                    if self._stopping:
                        break
                    self._failed(self._refusal or describe_error(error))
                    await self._back_off()
                    continue
                self._client = client
                self.attempt = 0
                self.connections += 1
                self.last_error = None
                self.connected_since = now_utc()
                self._set_state(CONNECTED)
                log.info("connected to %s", self.server)
                await self._wait_for(disconnected)
                self._client = None
                self.connected_since = None
                if self._stopping:
                    await self._close(client)
                    break
                await self._close(client)
                self._set_state(DISCONNECTED)
                self._failed("connection lost")
                log.warning("lost the connection to %s; reconnecting", self.server)
                await self._back_off()
        finally:
            self._flush()  # whatever was received is handed over before run() returns
            self._retry_at = None
            self.connected_since = None
            if self.state != DISCONNECTED:
                self._set_state(DISCONNECTED)

    # -- internals ---------------------------------------------------------------------

    def _new_client(self) -> tuple[Any, asyncio.Event]:
        import socketio  # deferred: only the commands that listen pay for it

        # aiohttp's default 4 MiB websocket message limit drops the whole connection on
        # one big event (a Read of a large file, a long history batch): lift it.
        from . import wirejson
        from .fast_socketio import inline_client_class

        def on_any(event: str, *args: Any) -> None:
            data = args[0] if len(args) == 1 else (list(args) if args else None)
            self._dispatch(event, data)

        options: dict[str, Any] = dict(
            reconnection=False,
            handle_sigint=False,
            request_timeout=self.connect_timeout,
            websocket_extra_options={"max_msg_size": MAX_MESSAGE_BYTES},
            json=wirejson,  # orjson: the standard library's decoder was a tenth of ingest per event
        )
        inline = inline_client_class()  # the stock receive path cost ~70 µs per event before our code ran
        if inline is not None:
            client = inline(sink=lambda event, args: on_any(event, *args), **options)
        else:
            client = socketio.AsyncClient(**options)
        disconnected = asyncio.Event()

        def on_disconnect(*_reason: Any) -> None:
            disconnected.set()

        self._refusal = None

        def on_connect_error(data: Any = None) -> None:
            # The server's reason (a hub that requires a token says "unauthorized"): far more
            # useful than python-socketio's "One or more namespaces failed to connect".
            message = data.get("message") if isinstance(data, dict) else data
            if message == "unauthorized":
                self._refusal = "refused: unauthorized (the server requires a token: --token-file or --token)"
            elif message:
                self._refusal = f"refused by the server: {' '.join(str(message).split())[:160]}"

        client.on("disconnect", on_disconnect)
        client.on("connect_error", on_connect_error)
        client.on("*", on_any)
        return client, disconnected

    async def _connect(self, client: Any) -> None:
        await client.connect(
            self.url,
            transports=self.transports,
            socketio_path=self.socketio_path,
            wait_timeout=self.connect_timeout,
            auth={"token": self.token} if self.token else None,
        )

    def _dispatch(self, event: str, data: Any) -> None:
        if event == HISTORY_EVENT:
            items = history_items(data)
            self.history_events_received += len(items)
            for item in items:
                self._forward(*history_entry(item))
            return
        self.events_received += 1
        self._forward(event, data)

    def _forward(self, event: str | None, data: Any) -> None:
        if self.on_batch is not None:
            self._pending.append((event, data))
            if self._loop is None:  # fed outside run(): nothing would flush later
                self._flush()
            elif len(self._pending) >= BATCH_LIMIT:
                self._flush()
            elif not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_later(BATCH_DELAY, self._flush)
            return
        try:
            self.on_event(event, data)
        except Exception:  # noqa: BLE001 - a consumer's bug must not drop the connection
            self._callback_failed()

    def _flush(self) -> None:
        """Hand the collected events to ``on_batch``, in order, at most BATCH_LIMIT per call."""
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), BATCH_LIMIT):
            try:
                self.on_batch(pending[start : start + BATCH_LIMIT])  # type: ignore[misc]
            except Exception:  # noqa: BLE001 - a consumer's bug must not drop the connection
                self._callback_failed()

    def _callback_failed(self) -> None:
        """Count a consumer's failure; the first one is logged with its traceback (call it in ``except``)."""
        self.callback_errors += 1
        if self.callback_errors == 1:
            log.exception("event callback failed (further failures are only counted)")

    def _failed(self, reason: str) -> None:
        self.attempt += 1
        self.last_error = reason
        if self.attempt == 1 or self.attempt % 10 == 0:
            log.warning("cannot connect to %s (attempt %d): %s", self.server, self.attempt, reason)
        else:
            log.debug("cannot connect to %s (attempt %d): %s", self.server, self.attempt, reason)

    async def _back_off(self) -> None:
        assert self._loop is not None
        delay = backoff_delay(self.attempt, initial=self.backoff_initial, cap=self.backoff_max)
        self._retry_at = self._loop.time() + delay
        self._set_state(RETRYING)
        try:
            await self._sleep(delay)
        finally:
            self._retry_at = None

    async def _sleep(self, delay: float) -> None:
        """Sleep, cut short by stop()."""
        assert self._wake is not None
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except asyncio.TimeoutError:
            pass

    async def _wait_for(self, disconnected: asyncio.Event) -> None:
        assert self._wake is not None
        lost = asyncio.ensure_future(disconnected.wait())
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({lost, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (lost, woken):
                task.cancel()

    async def _close(self, client: Any) -> None:
        try:
            await asyncio.wait_for(client.disconnect(), 2.0)
        except Exception:  # noqa: BLE001 - closing a dead link may fail in many ways
            log.debug("disconnect failed", exc_info=True)



def _in_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


__all__ = [
    "BACKOFF_INITIAL",
    "BACKOFF_MAX",
    "CONNECTED",
    "CONNECTING",
    "DISCONNECTED",
    "RETRYING",
    "STATES",
    "SocketIOSource",
    "backoff_delay",
    "history_entry",
    "history_items",
]
