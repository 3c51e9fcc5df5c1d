"""Hubs on many machines, one stream: events relayed between hubs through Redis (issue 10).

We do not build our own clustering. python-socketio's ``AsyncRedisManager``
already fans ``sio.emit`` out to the Socket.IO clients of every server
attached to the same Redis channel; ``QueueRelay`` is that manager with what a
capture tool needs on top:

* **Local first.** An event is delivered to this hub's own clients and
  listeners at once; publishing happens in the background, in order, from an
  outbox. Redis being slow or gone never delays ingest or local clients.
* **Outages.** While Redis is unreachable the outbox keeps what could not be
  published (up to ``OUTBOX_LIMIT`` messages, the oldest dropped and counted
  beyond that) and publishes it, in order, once Redis answers again.
* **Pub/sub loses what nobody hears.** A message published while another
  hub's subscription is down (Redis restarting, a hub reconnecting) never
  reaches it. So whenever a hub (re)subscribes it re-publishes its own recent
  events (the last ``history_size``) and asks the others to do the same
  (``{"method": "aggregator_sync"}``); replies are coalesced.
* **Once.** Every received event is deduplicated by its ``event_id`` (the hook
  or the first hub stamped it, and it never changes), so re-published events
  reach each hub's clients and listeners exactly once.
* **Everyone sees everything.** Events from other hubs are also handed to
  ``on_remote`` (the hub's ``_accept``): kept in its ``event_history`` and
  given to in-process listeners, so an embedded aggregator, a client, and a
  client that connects late all see every machine's sessions.

Messages addressed to one local client (``event_history`` on connect) never
go through Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import orjson
import socketio

log = logging.getLogger("agent_aggregator.relay")

CHANNEL = "agent-aggregator"
SYNC_METHOD = "aggregator_sync"
OUTBOX_LIMIT = 100_000  # messages kept while Redis is away
SEEN_LIMIT = 200_000  # event ids remembered for deduplication (well above any history)
RETRY_MIN = 0.2  # seconds between attempts to reach Redis, doubling ...
RETRY_MAX = 5.0  # ... up to this
SYNC_DELAY = 0.3  # seconds to coalesce sync requests from several hubs into one reply
CONNECT_TIMEOUT = 3.0
SOCKET_TIMEOUT = 10.0
POLL = 1.0  # seconds a subscriber waits for a message before checking it should stop
FLUSH_ON_CLOSE = 2.0  # seconds a stopping hub spends publishing what is still pending

RemoteListener = Callable[[str, Any], Any]
STAT_KEYS = ("queue_connected", "queue_published", "queue_pending", "queue_received", "queue_duplicates",
             "queue_dropped", "queue_errors")


def describe_queue(url: str) -> str:
    """``url`` fit to print: any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _event_id(payload: Any) -> str | None:
    if isinstance(payload, dict):
        value = payload.get("event_id")
        if isinstance(value, str) and value:
            return value
    return None


def _payload(message: dict[str, Any]) -> Any:
    data = message.get("data")
    if isinstance(data, list) and len(data) == 1:
        return data[0]
    return data


class QueueRelay(socketio.AsyncRedisManager):
    """``AsyncRedisManager`` with local-first delivery, an outbox, resync and dedupe (module doc).

    ``on_remote(event_name, payload)`` is called once per event another hub
    published; ``stats`` (the hub's dict) gets the ``queue_*`` counters.
    """

    name = "agent-aggregator-redis"

    def __init__(
        self,
        url: str,
        *,
        on_remote: RemoteListener,
        stats: dict[str, int] | None = None,
        history_size: int = 1000,
        channel: str = CHANNEL,
        retry_min: float = RETRY_MIN,
        retry_max: float = RETRY_MAX,
    ) -> None:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # Our loops retry with their own backoff; redis-py's retries would only stall them.
        options = {"socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": SOCKET_TIMEOUT,
                   "socket_keepalive": True, "retry": Retry(NoBackoff(), 0)}
        super().__init__(url, channel=channel, redis_options=options)
        self.url = url
        self.on_remote = on_remote
        self.stats = stats if stats is not None else {}
        for key in STAT_KEYS:
            self.stats.setdefault(key, 0)
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.publishing = False  # the last publish attempt succeeded
        self.subscribed = False
        self._outbox: deque[dict[str, Any]] = deque()
        self._own: deque[dict[str, Any]] = deque(maxlen=max(1, history_size))
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._wake = asyncio.Event()
        self._closing = False
        self._pump_task: asyncio.Task[None] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._publisher: Any = None
        self._subscriber: Any = None
        self._pubsub: Any = None
        self._trouble: str | None = None  # what went wrong last, logged once per outage

    # -- what the hub sees ---------------------------------------------------------------

    @property
    def connected(self) -> bool:  # type: ignore[override]
        """Both directions work: publishing and subscribed."""
        return self.publishing and self.subscribed

    @connected.setter
    def connected(self, value: bool) -> None:
        """AsyncRedisManager's own flag; we track both directions ourselves."""

    @property
    def pending(self) -> int:
        return len(self._outbox)

    def _unpublished(self) -> int:
        """Events (not control messages) still waiting in the outbox."""
        return sum(1 for message in self._outbox if message.get("method") == "emit")

    def describe(self) -> str:
        state = "connected" if self.connected else "unreachable, retrying"
        pending = f", {self.pending} to publish" if self._outbox else ""
        return f"{describe_queue(self.url)} ({state}{pending})"

    # -- lifecycle -----------------------------------------------------------------------

    def initialize(self) -> None:
        """Start the subscriber (the base class's listening task) and the publisher (again after close())."""
        self._closing = False
        self._wake = asyncio.Event()
        super().initialize()
        self._pump_task = asyncio.ensure_future(self._pump())

    async def close(self) -> None:
        """Publish what is pending (briefly, if Redis answers), then stop both tasks and disconnect."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLUSH_ON_CLOSE
        while self._unpublished() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        self._closing = True
        self._wake.set()
        left = self._unpublished()
        if left:
            log.warning("message queue %s: %d events were not published before the hub stopped"
                        " (its own clients had them)", describe_queue(self.url), left)
        tasks = [task for task in (self._pump_task, self._sync_task, getattr(self, "thread", None)) if task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_subscriber()
        if self._publisher is not None:
            try:
                await self._publisher.aclose()
            except Exception:  # noqa: BLE001 - closing a dead connection
                log.debug("closing the publisher failed", exc_info=True)
            self._publisher = None
        self.publishing = self.subscribed = False
        self.stats["queue_connected"] = 0

    # -- emitting: local now, Redis later -----------------------------------------------

    async def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None,
                   skip_sid: Any = None, callback: Any = None, to: Any = None, **kwargs: Any) -> Any:
        """As the base class, but a message for one client of this hub never goes through Redis."""
        target = to or room
        if target is not None and self.is_connected(target, namespace or "/"):
            kwargs["ignore_queue"] = True
        return await super().emit(event, data, namespace=namespace, room=target, skip_sid=skip_sid,
                                  callback=callback, **kwargs)

    async def _publish(self, data: dict[str, Any]) -> None:
        """Called by the base class after local delivery: queue for the publisher, never wait."""
        if data.get("method") == "emit" and data.get("room") is None and _event_id(_payload(data)):
            self._own.append(data)
        self._enqueue(data)

    def _enqueue(self, message: dict[str, Any]) -> None:
        if self._closing:
            return
        if len(self._outbox) >= OUTBOX_LIMIT:
            self._outbox.popleft()
            self.stats["queue_dropped"] += 1
        self._outbox.append(message)
        self.stats["queue_pending"] = len(self._outbox)
        self._wake.set()

    async def _pump(self) -> None:
        """Publish the outbox in order; on failure wait (backoff) and retry the same message.
        With nothing to publish and no connection yet, a PING tells whether Redis answers."""
        delay = self.retry_min
        while not self._closing:
            if not self._outbox and self.publishing:
                self._wake.clear()
                await self._wake.wait()
                continue
            message = self._outbox[0] if self._outbox else None
            try:
                if self._publisher is None:
                    self._publisher = self._get_redis_module().Redis.from_url(self.url, **self.redis_options)
                if message is None:
                    await self._publisher.ping()
                else:
                    await self._publisher.publish(self.channel, orjson.dumps(message, default=str))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any Redis trouble: keep the message, retry
                self._lost("publishing", error)
                self.publishing = False
                self.stats["queue_connected"] = 0
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            delay = self.retry_min
            if message is not None:
                if self._outbox and self._outbox[0] is message:
                    self._outbox.popleft()
                self.stats["queue_pending"] = len(self._outbox)
                if message.get("method") == "emit":
                    self.stats["queue_published"] += 1
            if not self.publishing:
                self.publishing = True
                self._back()

    # -- receiving -----------------------------------------------------------------------

    async def _listen(self):  # type: ignore[override]
        """The base class's message source: decoded messages from Redis; sync requests
        are answered here and not passed on."""
        async for raw in self._subscription():
            try:
                message = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self.stats["queue_errors"] += 1
                continue
            if not isinstance(message, dict):
                continue
            if message.get("method") == SYNC_METHOD:
                if message.get("host_id") != self.host_id:
                    self._schedule_sync_reply()
                continue
            yield message

    async def _subscription(self):
        """Messages on the channel, forever: resubscribes with backoff after any failure and,
        each time it is subscribed again, re-publishes this hub's recent events and asks
        the other hubs for theirs (what was published meanwhile never reached us)."""
        delay = self.retry_min
        while not self._closing:
            try:
                if self._pubsub is None:
                    client = self._get_redis_module().Redis.from_url(self.url, **self.redis_options)
                    pubsub = client.pubsub(ignore_subscribe_messages=True)
                    self._subscriber, self._pubsub = client, pubsub
                    await pubsub.subscribe(self.channel)
                    self.subscribed = True
                    self._resync()
                    self._back()
                    delay = self.retry_min
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any Redis trouble: resubscribe later
                self._lost("subscribing", error)
                self.subscribed = False
                self.stats["queue_connected"] = 0
                await self._close_subscriber()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            if message and message.get("type") == "message":
                yield message["data"]

    async def _close_subscriber(self) -> None:
        pubsub, client = self._pubsub, self._subscriber
        self._pubsub = self._subscriber = None
        for thing in (pubsub, client):
            if thing is None:
                continue
            try:
                await thing.aclose()
            except Exception:  # noqa: BLE001 - closing a dead connection
                log.debug("closing the subscriber failed", exc_info=True)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        """Deliver to this hub's clients; for another hub's event, first drop it if already
        seen (by ``event_id``), then hand it to ``on_remote`` (history and listeners)."""
        if message.get("host_id") == self.host_id:
            await super()._handle_emit(message)
            return
        payload = _payload(message)
        if message.get("room") is None:
            event_id = _event_id(payload)
            if event_id is not None:
                if event_id in self._seen:
                    self.stats["queue_duplicates"] += 1
                    return
                self._seen[event_id] = None
                if len(self._seen) > SEEN_LIMIT:
                    self._seen.popitem(last=False)
            self.stats["queue_received"] += 1
            event = message.get("event")
            try:
                self.on_remote(event if isinstance(event, str) else "claude_event", payload)
            except Exception:  # noqa: BLE001 - the hub counts its listeners' errors; this is a last guard
                log.warning("handling an event from another hub failed", exc_info=True)
        await super()._handle_emit(message)

    # -- resync --------------------------------------------------------------------------

    def _resync(self) -> None:
        """Just (re)subscribed: re-publish our recent events and ask the others for theirs."""
        for message in tuple(self._own):
            self._enqueue(message)
        self._enqueue({"method": SYNC_METHOD, "host_id": self.host_id})

    def _schedule_sync_reply(self) -> None:
        if self._sync_task is not None and not self._sync_task.done():
            return  # a reply is already on its way: one covers every request in the window
        self._sync_task = asyncio.ensure_future(self._sync_reply())

    async def _sync_reply(self) -> None:
        await asyncio.sleep(SYNC_DELAY)
        for message in tuple(self._own):
            self._enqueue(message)

    # -- telling the user ----------------------------------------------------------------

    def _lost(self, doing: str, error: BaseException) -> None:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if self._trouble is None:
            log.warning("message queue %s: %s failed (%s); retrying, events are kept and relayed when it is back",
                        describe_queue(self.url), doing, reason)
        else:
            log.debug("message queue %s: %s failed again (%s)", describe_queue(self.url), doing, reason)
        self._trouble = reason
        self.stats["queue_errors"] += 1

    def _back(self) -> None:
        self.stats["queue_connected"] = int(self.connected)
        if self._trouble is not None and self.connected:
            log.warning("message queue %s: connected again", describe_queue(self.url))
            self._trouble = None

    async def wait_connected(self, timeout: float) -> bool:
        """Whether both directions work within ``timeout`` seconds (for a start-up message)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.connected and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return self.connected
