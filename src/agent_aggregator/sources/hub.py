"""The built-in hub: a Socket.IO server and HTTP ingest on one loopback port.

For machines without claude-mpm (issue 3): Claude Code hooks (``aggregate hook``)
and claude-mpm's own hook handler POST here; every event is relayed to the
connected Socket.IO clients (``aggregate start``, ``aggregate tui``, a
claude-mpm dashboard) and to in-process listeners (an aggregator running in
the same process). It speaks claude-mpm's monitor-server dialect, so either
can stand in for the other (docs/CONTRACTS.md, "Live capture").

The hub gives each event its identity as early as possible: a payload
without an ``event_id`` / ``timestamp`` gets them here, before it is kept in
the replay history, so a client that reconnects and replays can dedupe.

Handlers stay fast: no per-event disk I/O on the event loop. The spool is
drained in a worker thread, and an in-process aggregator is fed through a
``Feed`` (sources/feed.py), consumed by a thread of its own.

Bursts (docs/CONTRACTS.md, "Flow control"): a client's Socket.IO events are
handled one after the other, inline in its read loop, and wait for room in the
feed, so a client sending faster than the aggregator keeps up is slowed by TCP
instead of dropped. Any packet from a client counts as the answer to a pending
Engine.IO ping (its PONG queues behind everything it sent before), and a client
whose PONG is outstanding gets a NOOP every few seconds so that its own
"server stopped communicating" timer does not fire while it is still sending.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import ipaddress
import logging
import os
import signal
import socket
import time
import uuid
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import orjson
import socketio
from aiohttp import web

from .. import __version__
from ..errors import AggregatorError
from ..machine import hostname as machine_hostname
from ..normalize import CONTROL_EVENTS
from ..timeutil import format_timestamp, now_utc
from . import spool

if TYPE_CHECKING:
    from .feed import Feed
    from .relay import QueueRelay

log = logging.getLogger("agent_aggregator.hub")

SERVICE = "agent-aggregator-hub"
DEFAULT_EVENT = "claude_event"
HISTORY_EVENT = "event_history"
# Each history item is the relayed payload plus the Socket.IO event name it was
# relayed under, in this key; our client pops it and replays the item under that
# name (claude-mpm's dashboards just see one more key). Without the name, control
# messages (``dashboard:*``) and events whose meaning depends on their name were
# replayed nameless and could turn into sessions of their own.
HISTORY_NAME_KEY = "_event_name"
API_EVENTS_PATH = "/api/events"
HOOK_EVENTS_PATH = "/events"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
HISTORY_SIZE = 1000
DRAIN_INTERVAL = 2.0
STATUS_INTERVAL = 30.0
# Hook payloads carry whole tool responses (a Read of a large file): far above
# aiohttp's and Engine.IO's 1 MB defaults. normalize() caps what gets stored.
MAX_BODY_BYTES = 32 * 1024 * 1024
HISTORY_CHUNK_BYTES = 1024 * 1024
SHUTDOWN_TIMEOUT = 2.0
SPOOL_DELIVERY_TIMEOUT = 30.0
# Engine.IO heartbeat. python-socketio's 20 s timeout dropped a client whose PONG sat behind
# a burst; data from a client now counts as a PONG, and the timeout is generous because a
# stuck follower's PING waits behind everything queued for it (loopback peers that die
# close their socket at once anyway).
PING_INTERVAL = 25.0
PING_TIMEOUT = 60.0
KEEPALIVE_INTERVAL = 10.0  # seconds between NOOPs to a client whose PONG is outstanding (at most)
# "INTERVAL,TIMEOUT" in seconds: a shorter heartbeat, so a test (tests/test_flow.py) or a
# diagnosis sees in seconds what the defaults take minutes to show.
HEARTBEAT_ENV = "AGGREGATE_HUB_HEARTBEAT"
QUEUE_WAIT = 3.0  # seconds `aggregate serve` waits for Redis before saying it is not there yet
UNSAFE_HOST_MESSAGE = (
    "listening beyond this machine needs a shared token (--token-file PATH, --token, CLAUDE_MPM_AGGREGATOR_TOKEN"
    " or event_aggregator.token_file); refusing to listen without one"
)
UNAUTHORIZED = "unauthorized"

Listener = Callable[[str, Any], Any]


class HubBindError(AggregatorError, OSError):
    """The hub cannot listen on its address (``errno`` tells why)."""


class PortInUseError(HubBindError):
    """Something (another hub, claude-mpm's monitor) already listens on the port."""


class TokenRequiredError(AggregatorError):
    """Asked to listen on a non-loopback address without a shared token (exit status 2)."""

    exit_code = 2


def token_matches(expected: str | None, presented: Any) -> bool:
    """Constant-time comparison; True when no token is required."""
    if expected is None:
        return True
    if not isinstance(presented, str):
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8", "replace"))


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None when absent or another scheme)."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


# --- payload shapes -------------------------------------------------------------------------


def stamp(payload: Any, hostname: str | None = None) -> Any:
    """``payload`` with an ``event_id`` (uuid4 hex) and a receipt ``timestamp`` when it lacks them,
    and ``hostname`` (the machine it came from) when one is given and it has none.

    A copy, never the caller's dict; payloads that are not objects pass as is.
    Existing values win: the hook stamps before spooling, so a spooled event
    keeps the time it really happened, the id it was first given and its machine.
    """
    if not isinstance(payload, dict):
        return payload
    has_id = isinstance(payload.get("event_id"), str) and bool(payload["event_id"])
    has_time = payload.get("timestamp") not in (None, "")
    has_host = hostname is None or "hostname" in payload
    if has_id and has_time and has_host:
        return payload
    stamped = dict(payload)
    if not has_id:
        stamped["event_id"] = uuid.uuid4().hex
    if not has_time:
        stamped["timestamp"] = format_timestamp(now_utc())
    if not has_host:
        stamped["hostname"] = hostname
    return stamped


def unwrap_api_body(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(event name, payload)`` for a ``POST /api/events`` body.

    claude-mpm's hook handler sends ``{namespace, event, data}`` and the
    payload is ``data``; an envelope posted directly (``type`` + ``subtype``,
    as claude-mpm's server also accepts) is relayed whole, never unwrapped to
    its own ``data``.
    """
    if "type" in body and "subtype" in body:
        return DEFAULT_EVENT, body
    data = body.get("data")
    if isinstance(data, dict):
        event = body.get("event")
        return (event if isinstance(event, str) and event else DEFAULT_EVENT), data
    return DEFAULT_EVENT, body


def route(path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """How a body POSTed (or spooled) to ``path`` is relayed; None for an unknown path."""
    if path == HOOK_EVENTS_PATH:
        return DEFAULT_EVENT, body
    if path == API_EVENTS_PATH:
        return unwrap_api_body(body)
    return None


def feed_spool(handle_event: Callable[[dict[str, Any], str], object]) -> "spool.DrainReport | None":
    """Deliver the hook spool straight to an aggregator's ``handle_event(payload, event_name)``,
    routed as the hub would relay it, where no hub of ours drains it; None when it cannot be read."""

    def deliver(path: str, body: dict[str, Any]) -> bool:
        routed = route(path, body)
        if routed is not None:
            handle_event(routed[1], routed[0])
        return True

    try:
        return spool.drain(deliver)
    except OSError as error:
        log.warning("cannot read the hook spool: %s", error)
        return None


def is_control_event(event_name: str | None) -> bool:
    """Socket.IO messages that are transport chatter, not agent activity (never kept in history)."""
    return event_name is not None and (event_name in CONTROL_EVENTS or event_name.startswith("dashboard:"))


def history_item(event_name: str, payload: Any) -> Any:
    """One ``event_history`` item: the payload with the name it was relayed under (objects only)."""
    if isinstance(payload, dict):
        return {**payload, HISTORY_NAME_KEY: event_name}
    return payload


def heartbeat(environ: dict[str, str] | None = None) -> tuple[float, float]:
    """``(ping interval, ping timeout)`` in seconds: ``$AGGREGATE_HUB_HEARTBEAT`` or the defaults.
    A malformed value is an ``AggregatorError`` (one line), never silently ignored."""
    raw = (os.environ if environ is None else environ).get(HEARTBEAT_ENV, "").strip()
    if not raw:
        return PING_INTERVAL, PING_TIMEOUT
    try:
        interval, timeout = (float(part) for part in raw.split(","))
    except ValueError:
        raise AggregatorError(f"{HEARTBEAT_ENV}={raw!r}: expected INTERVAL,TIMEOUT in seconds, e.g. 25,60") from None
    if not (0.1 <= interval <= 3600 and 0.1 <= timeout <= 3600):
        raise AggregatorError(f"{HEARTBEAT_ENV}={raw!r}: each value must be between 0.1 and 3600 seconds")
    return interval, timeout


def _json_response(value: dict[str, Any], status: int) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --- the hub ----------------------------------------------------------------------------------


class Hub:
    """Socket.IO server + ``POST /api/events`` + ``POST /events`` + ``GET /health`` on one port.

    Add listeners before ``start()`` to also receive the events drained from
    the spool at start-up. Listeners run on the event loop, in relay order;
    one that raises is counted and logged, never allowed to stop the relay.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        history_size: int = HISTORY_SIZE,
        spool_directory: str | Path | None = None,
        drain_interval: float = DRAIN_INTERVAL,
        hostname: str | None = None,
        message_queue: str | None = None,
        token: str | None = None,
        feed: Feed | None = None,
    ) -> None:
        self.host = host
        # The in-process consumer off the loop (the aggregator): relay() waits until it has
        # handled an event, a client's Socket.IO stream only until it has room (flow control).
        self.feed = feed
        self.ping_interval, self.ping_timeout = heartbeat()
        # When set, every POST needs "Authorization: Bearer <token>" and every Socket.IO
        # client auth={"token": <token>}; required to listen beyond loopback (serve()).
        self.token = token or None
        self._history_tasks: set[asyncio.Task[None]] = set()
        # The machine stamped on payloads that arrive without one (claude-mpm's bodies).
        self.hostname = hostname or machine_hostname()
        self.requested_port = port
        self.spool_directory = Path(spool_directory) if spool_directory is not None else spool.spool_dir()
        self.drain_interval = drain_interval
        self.history: deque[tuple[str, Any]] = deque(maxlen=history_size)  # (event name, stamped payload)
        self.stats: dict[str, int] = {
            "clients": 0,
            "events_relayed": 0,
            "bad_requests": 0,
            "spool_delivered": 0,
            "spool_bad_lines": 0,
            "listener_errors": 0,
            "unauthorized": 0,
            "keepalives_sent": 0,
        }
        self._listeners: list[Listener] = []
        self._bound_port: int | None = None
        self._runner: web.AppRunner | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._closing = False
        self._wake = asyncio.Event()
        self._warned: set[str] = set()
        # Across machines (issue 10): every hub on the same Redis relays every event to the
        # clients and listeners of every other hub (sources/relay.py).
        self.queue: QueueRelay | None = None
        if message_queue:
            from .relay import QueueRelay

            self.queue = QueueRelay(message_queue, on_remote=self._accept, stats=self.stats,
                                    history_size=history_size)
        # cors_allowed_origins=None: Engine.IO's same-origin check. Python clients send
        # no Origin header and pass; a web page in the user's browser cannot open a
        # socket to the hub and read every prompt and file (binding loopback does not
        # stop that). A claude-mpm dashboard served elsewhere is refused the same way.
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            cors_allowed_origins=None,
            # Without a token: accept at once, so the history emitted in the connect handler
            # arrives after CONNECT. With one: a client is accepted only once its token is
            # checked (an unauthorized one gets CONNECT_ERROR and never a single event), and
            # the history goes out from a task that runs after CONNECT is queued.
            always_connect=self.token is None,
            client_manager=self.queue,
            # One client's events are handled in order, inline in its read loop: a handler
            # waiting for room in the feed stops the reading of that socket (backpressure),
            # where a task per event let a burst pile up on the loop and starve the pings.
            async_handlers=False,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            max_http_buffer_size=MAX_BODY_BYTES,
            logger=False,
            engineio_logger=False,
        )
        self.app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._refuse_browsers])
        self.sio.attach(self.app)
        self.app.router.add_post(API_EVENTS_PATH, self._post_api_events)
        self.app.router.add_post(HOOK_EVENTS_PATH, self._post_hook_event)
        self.app.router.add_get("/health", self._get_health)
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("*", self._on_client_event)

    # -- address ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port actually bound (the requested one before ``start()``; 0 picks a free one)."""
        return self._bound_port if self._bound_port is not None else self.requested_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind, serve, deliver what the spool holds, then keep draining it every few seconds.

        Raises ``PortInUseError`` when the port is taken, ``HubBindError`` for
        any other address problem.
        """
        if self._runner is not None:
            return
        sock = _bind(self.host, self.requested_port)
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self._bound_port = sock.getsockname()[1]
        self._closing = False
        self._wake = asyncio.Event()
        if self.queue is not None and not self.sio.manager_initialized:
            # python-socketio starts the manager on the first client; a hub that only feeds an
            # in-process aggregator must publish and receive from the start.
            self.sio.manager_initialized = True
            self.queue.initialize()
        await self._drain_safely()
        self._drain_task = asyncio.create_task(self._drain_forever(), name="hub-spool-drain")
        self._keepalive_task = asyncio.create_task(self._keepalive_forever(), name="hub-keepalive")

    async def stop(self) -> None:
        """Stop draining (what is left stays spooled), disconnect clients, close the port."""
        if self._runner is None:
            return
        self._closing = True
        self._wake.set()
        if self._drain_task is not None:
            await self._drain_task
            self._drain_task = None
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            try:
                await self._keepalive_task
            except asyncio.CancelledError:
                pass
            self._keepalive_task = None
        await self._disconnect_clients()
        if self.queue is not None and self.sio.manager_initialized:
            await self.queue.close()
            self.sio.manager_initialized = False
        await self.sio.shutdown()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def _disconnect_clients(self) -> None:
        """Close the clients' websockets first: aiohttp would otherwise wait on them until
        its shutdown timeout. No Engine.IO CLOSE packet is sent, on purpose: to a client
        that means "the server dismissed you" and python-socketio then does not reconnect;
        a hub going away should look like a dropped connection, which clients retry."""
        for eio_socket in list(self.sio.eio.sockets.values()):
            try:
                await eio_socket.close(wait=False, abort=True)  # runs the disconnect handlers
                await eio_socket.queue.put(None)  # ends its writer, which closes the websocket
            except Exception:  # noqa: BLE001 - a socket already gone is fine
                log.debug("closing a client socket failed", exc_info=True)

    # -- relay ------------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event_name, payload)`` for every relayed event (on the event loop)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def relay(self, event_name: str, payload: Any, *, skip_sid: str | None = None) -> Any:
        """Stamp, remember, tell listeners and the feed, emit to Socket.IO clients. Returns the
        stamped payload once the feed's consumer has handled it (``POST`` answers 202 then:
        journaled), as when the aggregator was a listener called right here."""
        stamped, ticket = await self._relay(event_name, payload, skip_sid, inline=True)
        if ticket is not None and self.feed is not None:
            await self.feed.handled(ticket)
        return stamped

    async def _relay(self, event_name: str, payload: Any, skip_sid: str | None,
                     *, inline: bool = False) -> tuple[Any, int | None]:
        """relay() without waiting for the consumer: only for room in the feed (backpressure).
        While it waits for a client's event (``skip_sid``), that client is not the one late with
        its PONG: the ping's clock restarts every half interval (a stalled consumer slows the
        sender for as long as it stalls; it never makes the hub drop the sender)."""
        if self.feed is not None:
            while not await self.feed.room(timeout=self.ping_interval / 2):
                if skip_sid is not None:
                    self._heard_from(skip_sid)
        stamped, ticket = self._take(event_name, payload, inline=inline)
        await self.sio.emit(event_name, stamped, skip_sid=skip_sid)
        return stamped, ticket

    def _accept(self, event_name: str, payload: Any) -> Any:
        """Stamp, remember, tell listeners and the feed (never waits: the Redis relay calls it)."""
        return self._take(event_name, payload)[0]

    def _take(self, event_name: str, payload: Any, *, inline: bool = False) -> tuple[Any, int | None]:
        """``inline``: the caller waits for the event to be handled; with nothing pending in
        the feed it is handled right here (a hook's POST, one at a time, as fast as before)."""
        stamped = stamp(payload, self.hostname)
        if not is_control_event(event_name):  # transport chatter is relayed live, never replayed
            self.history.append((event_name, stamped))
        self.stats["events_relayed"] += 1
        for listener in tuple(self._listeners):
            try:
                listener(event_name, stamped)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the relay
                self.stats["listener_errors"] += 1
                self._warn_once(f"listener:{id(listener)}", "hub listener %r failed", listener, exc_info=True)
        ticket = self.feed.put(event_name, stamped, inline_if_idle=inline) if self.feed is not None else None
        return stamped, ticket

    def history_messages(self) -> list[dict[str, Any]]:
        """What a connecting client gets as ``event_history``: claude-mpm's shape, split into
        messages of about ``HISTORY_CHUNK_BYTES`` each (in order; ``total_available`` counts
        them all). One message of 1000 hook payloads carrying file contents easily passes
        the 4 MiB a python-socketio client accepts by default, and a client that drops the
        history on every connect never catches up."""
        events = [history_item(name, payload) for name, payload in self.history]
        chunks: list[list[Any]] = [[]]
        size = 0
        for payload in events:
            weight = _encoded_size(payload)
            if chunks[-1] and size + weight > HISTORY_CHUNK_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(payload)
            size += weight
        return [{"events": chunk, "count": len(chunk), "total_available": len(events)} for chunk in chunks]

    # -- Socket.IO --------------------------------------------------------------------------

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        if self.token is not None:
            presented = auth.get("token") if isinstance(auth, dict) else None
            if not token_matches(self.token, presented):
                self.stats["unauthorized"] += 1
                self._warn_once("unauthorized:sio", "refused a Socket.IO client without the right token")
                raise socketio.exceptions.ConnectionRefusedError(UNAUTHORIZED)
            self.stats["clients"] += 1
            task = asyncio.get_running_loop().create_task(self._send_history(sid))
            self._history_tasks.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._history_tasks.discard)
            return True
        self.stats["clients"] += 1
        await self._send_history(sid)
        return True

    async def _send_history(self, sid: str) -> None:
        for message in self.history_messages():
            await self.sio.emit(HISTORY_EVENT, message, to=sid)

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.stats["clients"] = max(0, self.stats["clients"] - 1)

    async def _on_client_event(self, event_name: str, sid: str, *args: Any) -> None:
        """Relay what a client emits (claude-mpm's legacy hook path) to every other client.

        Runs inline in the client's read loop: waiting here for room in the feed is the
        backpressure that slows a bursting client (never waiting for the journal itself,
        so its events stream through the feed in batches)."""
        self._heard_from(sid)
        await self._relay(event_name, args[0] if args else None, sid)

    def _heard_from(self, sid: str) -> None:
        """A packet from a client proves it alive as well as its PONG would: the PONG to a
        ping sent mid-burst queues behind everything the client sent before it, and
        Engine.IO would time the client out (losing what was still in flight) while its
        events are still arriving. So a pending ping's clock restarts at every event."""
        eio_socket = self._engineio_socket(sid)
        if eio_socket is not None and getattr(eio_socket, "last_ping", None):
            eio_socket.last_ping = time.time()

    def _engineio_socket(self, sid: str) -> Any:
        try:
            eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        except Exception:  # noqa: BLE001 - a client gone meanwhile
            return None
        return self.sio.eio.sockets.get(eio_sid) if eio_sid is not None else None

    async def _keepalive_forever(self) -> None:
        """Every few seconds, a NOOP to each client whose PONG is outstanding.

        Engine.IO sends the next PING only after the PONG; a client whose PONG waits
        behind a long burst of its own hears nothing from us meanwhile, and its client
        library gives up after ping interval + timeout ("server stopped communicating").
        Any packet resets that timer, and NOOP means nothing to any Engine.IO client."""
        from engineio import packet as eio_packet

        while not self._closing:
            await asyncio.sleep(min(KEEPALIVE_INTERVAL, self.ping_interval / 2))
            for eio_socket in list(self.sio.eio.sockets.values()):
                if not getattr(eio_socket, "last_ping", None) or eio_socket.closing or eio_socket.closed:
                    continue  # no ping outstanding (a client that answers at once almost never has one)
                try:
                    await eio_socket.send(eio_packet.Packet(eio_packet.NOOP))
                    self.stats["keepalives_sent"] += 1
                except Exception:  # noqa: BLE001 - a socket closing meanwhile
                    log.debug("keepalive to a client failed", exc_info=True)

    # -- HTTP -------------------------------------------------------------------------------

    @web.middleware
    async def _refuse_browsers(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        """Refuse POSTs a web page could forge: browsers always send ``Origin`` on them, hooks never do."""
        if request.method == "POST" and "Origin" in request.headers:
            self.stats["bad_requests"] += 1
            return _json_response({"ok": False, "error": "cross-origin requests are refused"}, 403)
        if request.method == "POST" and not token_matches(self.token, bearer_token(request.headers.get("Authorization"))):
            self.stats["unauthorized"] += 1
            self._warn_once("unauthorized:http", "refused a POST %s without the right token", request.path)
            return _json_response({"ok": False, "error": UNAUTHORIZED}, 401)
        return await handler(request)

    async def _post_api_events(self, request: web.Request) -> web.Response:
        return await self._ingest(request, API_EVENTS_PATH)

    async def _post_hook_event(self, request: web.Request) -> web.Response:
        return await self._ingest(request, HOOK_EVENTS_PATH)

    async def _ingest(self, request: web.Request, path: str) -> web.Response:
        try:
            body = await _read_json_object(request)
        except _BadRequest as bad:
            self.stats["bad_requests"] += 1
            return _json_response({"ok": False, "error": bad.reason}, bad.status)
        event_name, payload = route(path, body) or (DEFAULT_EVENT, body)
        stamped = await self.relay(event_name, payload)
        return _json_response({"ok": True, "event_id": stamped.get("event_id")}, 202)

    async def _get_health(self, request: web.Request) -> web.Response:
        """Open to anyone who can reach the port: with a token required it says only that
        the hub is up and needs one (no counts, no addresses, never the token)."""
        health: dict[str, Any] = {"status": "ok", "service": SERVICE, "version": __version__,
                                  "auth_required": self.token is not None}
        if self.token is None:
            health.update(clients=self.stats["clients"], events_relayed=self.stats["events_relayed"])
        return _json_response(health, 200)

    # -- spool ------------------------------------------------------------------------------

    async def drain_spool(self) -> spool.DrainReport:
        """Relay what hooks spooled while no hub answered, in order.

        The file work runs in a thread; each line is relayed on the loop and
        confirmed before the next, so a line counts as delivered only once
        relayed, and stopping the hub leaves the rest spooled.
        """
        loop = asyncio.get_running_loop()

        def deliver(path: str, body: dict[str, Any]) -> bool:
            if self._closing:
                return False
            future = asyncio.run_coroutine_threadsafe(self._relay_spooled(path, body), loop)
            future.result(timeout=SPOOL_DELIVERY_TIMEOUT)
            return True

        report = await asyncio.to_thread(spool.drain, deliver, directory=self.spool_directory)
        self.stats["spool_bad_lines"] += report.bad_lines
        if report.bad_lines:
            log.warning("spool %s: skipped %d unreadable lines", self.spool_directory, report.bad_lines)
        if report.error is not None:
            log.warning("spool %s: delivery stopped (%s); %d events kept for the next drain",
                        self.spool_directory, report.error, report.remaining)
        return report

    async def _relay_spooled(self, path: str, body: dict[str, Any]) -> None:
        routed = route(path, body)
        if routed is None:
            self.stats["spool_bad_lines"] += 1
            self._warn_once(f"spool-path:{path}", "spool: skipped a line for unknown path %r", path)
            return
        await self.relay(*routed)
        self.stats["spool_delivered"] += 1

    async def _drain_forever(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), self.drain_interval)
            except asyncio.TimeoutError:
                pass
            if self._closing:
                return
            await self._drain_safely()

    async def _drain_safely(self) -> None:
        try:
            await self.drain_spool()
        except Exception as error:  # noqa: BLE001 - an unusable spool must not stop the hub
            self._warn_once(f"drain:{type(error).__name__}", "cannot drain the spool %s: %s",
                            self.spool_directory, error)

    def _warn_once(self, key: str, message: str, *args: Any, exc_info: bool = False) -> None:
        """The same trouble every 2 s (or every event) is logged once, then only in debug."""
        level = logging.DEBUG if key in self._warned else logging.WARNING
        self._warned.add(key)
        log.log(level, message, *args, exc_info=exc_info)


async def _read_json_object(request: web.Request) -> dict[str, Any]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _BadRequest(413, f"body larger than {MAX_BODY_BYTES} bytes") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise _BadRequest(400, f"invalid JSON: {str(error).splitlines()[0][:120]}") from None
    if not isinstance(body, dict):
        raise _BadRequest(400, f"expected a JSON object, got {type(body).__name__}")
    return body


def _encoded_size(payload: Any) -> int:
    try:
        return len(orjson.dumps(payload, default=str))
    except (TypeError, orjson.JSONEncodeError):
        return 0


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on exactly one address, so ``port=0`` means one port, and a
    taken port is a clear error (SO_REUSEADDR still lets a restarted hub rebind at once)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(
                errno.EADDRINUSE,
                f"port {port} on {host} is already in use (another hub or claude-mpm's monitor?);"
                " choose another with --port",
            ) from None
        raise HubBindError(error.errno, f"cannot listen on {host}:{port}: {error.strerror or error}") from None


# --- aggregate serve -------------------------------------------------------------------------


def loopback_address(host: str, where: str = "--host") -> str:
    """The address to bind for ``host``; refuses anything beyond this machine
    (``TokenRequiredError``): see ``bind_address`` for the token-holding case."""
    return bind_address(host, None, where)


def bind_address(host: str, token: str | None, where: str = "--host") -> str:
    """The address to bind for ``host``: a loopback address always; any other address
    ("0.0.0.0", a LAN address, a host name) only with a shared token, else
    ``TokenRequiredError`` (one line; exit status 2)."""
    text = host.strip()
    if text.lower() == "localhost":
        return DEFAULT_HOST
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        address = None
    if address is not None and address.is_loopback:
        return str(address)
    if not token:
        raise TokenRequiredError(f"{where} {host}: {UNSAFE_HOST_MESSAGE}")
    if not text:
        raise AggregatorError(f"{where}: empty address")
    return str(address) if address is not None else text


def serve(
    host: str | None,
    port: int | None,
    *,
    config_host: str = "localhost",
    config_port: int = DEFAULT_PORT,
    out: Callable[[str], None] | None = None,
    status_interval: float = STATUS_INTERVAL,
    token: str | None = None,
    message_queue: str | None = None,
) -> int:
    """``aggregate serve``: run a hub in the foreground until Ctrl+C or SIGTERM (exit 0).

    Raises ``TokenRequiredError`` for a non-loopback address without ``token``."""
    bind_host = (bind_address(host, token, "--host") if host is not None
                 else bind_address(config_host, token, "dashboard_host"))
    bind_port = config_port if port is None else port
    if not 0 <= bind_port <= 65535:
        raise AggregatorError(f"--port {bind_port}: expected 0..65535")
    hub = Hub(bind_host, bind_port, token=token, message_queue=message_queue)
    return asyncio.run(_serve(hub, out or _print, status_interval))


def _print(text: str) -> None:
    print(text, flush=True)


async def _serve(hub: Hub, out: Callable[[str], None], status_interval: float) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    try:
        await hub.start()
        out(f"Hub listening on {hub.url} (POST {API_EVENTS_PATH}, POST {HOOK_EVENTS_PATH}, Socket.IO)")
        if hub.queue is not None:
            reached = await hub.queue.wait_connected(QUEUE_WAIT)
            out(f"Message queue {hub.queue.describe()}" + ("" if reached else
                ": events are relayed to the other hubs once it answers"))
        if hub.stats["spool_delivered"]:
            out(f"Delivered {hub.stats['spool_delivered']} spooled events from {hub.spool_directory}")
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), status_interval)
            except asyncio.TimeoutError:
                out(_status_line(hub))
    finally:
        await hub.stop()
        for number in signals:
            loop.remove_signal_handler(number)
    out(f"Hub stopped ({hub.stats['events_relayed']} events relayed)")
    return 0


def _status_line(hub: Hub) -> str:
    clients = hub.stats["clients"]
    return (
        f"[{time.strftime('%H:%M:%S')}] Hub: {clients} client{'' if clients == 1 else 's'},"
        f" {hub.stats['events_relayed']} events relayed"
        + (f", message queue {hub.queue.describe()}" if hub.queue is not None else "")
    )
