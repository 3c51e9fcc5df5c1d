"""AggregatorRuntime: the asyncio part of a running aggregator.

It picks the source, feeds the aggregator and does the periodic work:

* the source (DESIGN sections 2 and 6): ``serve=True`` runs the built-in hub in
  this process and feeds the aggregator through ``Hub.add_listener``;
  ``serve=False`` listens to a Socket.IO server (``SocketIOSource``);
  ``serve=None``, the embedded default, probes ``dashboard_host:dashboard_port``:
  when nothing answers it starts the hub (so ``aggregate hook`` works with
  nothing else installed), when a Socket.IO server answers (claude-mpm's
  monitor, or an ``aggregate serve`` hub) it connects to it as a client, and
  when something else holds the port it fails with ``ConnectionError``;
* ``aggregator.connected`` / ``aggregator.connection_state`` kept current;
* every second: idle timeouts every 30 s, the status file every 2 s (and,
  while a write failed, another try at what is kept in memory)
  (``<activity_dir>/.aggregator.status.json``, written atomically: what
  ``aggregate status`` and ``aggregate stop`` read from another shell);
* on the way out: the source closed, then ``aggregator.stop()`` (every active
  session saved), the last status file written just before the directory's
  lock is let go, so whoever waits for the lock reads the final figures.

``run_until_stopped()`` runs in any event loop (a thread of its own for
``EventAggregator.start()``, a Textual worker for the TUI); ``request_stop()``
may be called from any thread or a signal handler's flag check.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from . import jsonio
from .errors import ConnectionError
from .loopcall import call_in_loop
from .timeutil import format_timestamp, now_utc, parse_timestamp

if TYPE_CHECKING:  # pragma: no cover
    from .aggregator import EventAggregator
    from .sources.socketio_client import SocketIOSource

log = logging.getLogger("agent_aggregator.runtime")

STATUS_FILE_NAME = ".aggregator.status.json"
TICK = 1.0
STATUS_INTERVAL = 2.0
TIMEOUT_CHECK_INTERVAL = 30.0
PROBE_TIMEOUT = 2.0
SOURCE_STOP_TIMEOUT = 5.0

SERVE = "serve"
CLIENT = "client"
SSE_ONLY = "sse"  # no Socket.IO side configured: only SSE streams
SSE_EVENT_NAME = "sse_event"  # what the hub relays SSE events under (the stream's own `event:` name if any)


# --- the status file -----------------------------------------------------------------


def status_file_path(directory: Path | str) -> Path:
    return Path(directory) / STATUS_FILE_NAME


def read_status_file(directory: Path | str) -> dict[str, Any] | None:
    """The last status a runtime wrote for this activity directory; None if absent or unreadable."""
    try:
        value = jsonio.read_json(status_file_path(directory))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_status_file(directory: Path | str, status: dict[str, Any]) -> None:
    """Atomic (readers see the old or the new file), not fsynced: it is rewritten every 2 s."""
    jsonio.write_bytes_atomic(status_file_path(directory), jsonio.dumps(status, indent=True), durable=False)


def status_age_seconds(status: dict[str, Any], now: datetime | None = None) -> float | None:
    updated = parse_timestamp(status.get("updated_at"))
    if updated is None:
        return None
    return max(0.0, ((now or now_utc()) - updated).total_seconds())


# --- what answers on host:port --------------------------------------------------------


class Probe(NamedTuple):
    """``kind`` is "free" (nothing listens), "socketio" or "other"; ``detail`` says what was seen."""

    kind: str
    detail: str = ""


async def probe(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> Probe:
    """What listens on ``host:port``: a TCP connect, then an Engine.IO polling handshake.

    The handshake's session is closed again right away (a "1" close packet), so
    the server is left as it was.
    """
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (ConnectionRefusedError, asyncio.TimeoutError) as error:
        return Probe("free", "connection refused" if isinstance(error, ConnectionRefusedError) else "timed out")
    except OSError as error:
        if isinstance(error, socket.gaierror):
            return Probe("other", f"cannot resolve {host}: {error.strerror or error}")
        return Probe("free", error.strerror or str(error))
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass

    import aiohttp  # deferred: only a runtime that probes pays for it

    base = f"http://{_url_host(host)}:{port}/socket.io/"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            async with http.get(base, params={"EIO": "4", "transport": "polling"}) as response:
                body = (await response.content.read(4096)).decode("utf-8", "replace")
                status = response.status
            sid = _engineio_sid(body) if status == 200 else None
            if sid is None:
                if "unsupported version" in body.lower():
                    return Probe("other", "a Socket.IO server speaking an unsupported protocol version")
                return Probe("other", f"HTTP {status} for /socket.io/")
            try:  # close the handshake's session at once
                async with http.post(base, params={"EIO": "4", "transport": "polling", "sid": sid}, data=b"1"):
                    pass
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            return Probe("socketio", "Socket.IO server")
    except (aiohttp.ClientError, asyncio.TimeoutError, UnicodeError) as error:
        return Probe("other", f"no HTTP answer ({type(error).__name__}: {error})".rstrip(": )") + ")")


def _engineio_sid(body: str) -> str | None:
    """The session id of an Engine.IO v4 open packet (``0{"sid": ...}``), else None."""
    if not body.startswith("0{"):
        return None
    end = body.find("\x1e")
    try:
        packet = jsonio.loads(body[1 : end if end >= 0 else None])
    except ValueError:
        return None
    sid = packet.get("sid") if isinstance(packet, dict) else None
    return sid if isinstance(sid, str) else None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def bind_host(host: str, token: str | None = None) -> str | None:
    """Where the built-in hub listens for ``dashboard_host``: its loopback address
    ("localhost" is 127.0.0.1); a host beyond this machine only with a shared ``token``
    (None without one: never served)."""
    from .errors import AggregatorError
    from .sources.hub import bind_address

    try:
        return bind_address(host, token, "dashboard_host")
    except AggregatorError:
        return None


# --- the runtime ----------------------------------------------------------------------


SPOOL_DRAIN_INTERVAL = 2.0  # seconds, as the hub drains it


class AggregatorRuntime:
    """Runs one aggregator's source and periodic work in an asyncio loop."""

    def __init__(
        self,
        aggregator: "EventAggregator",
        *,
        serve: bool | None = None,
        tick: float = TICK,
        status_interval: float = STATUS_INTERVAL,
        timeout_check_interval: float = TIMEOUT_CHECK_INTERVAL,
        write_status: bool = True,
    ) -> None:
        self.aggregator = aggregator
        self.serve = serve
        self.tick = tick
        self.status_interval = status_interval
        self.timeout_check_interval = timeout_check_interval
        self.write_status = write_status
        self.mode: str | None = None  # SERVE or CLIENT once the source is up
        self.hub: Any = None
        self.feed: Any = None  # sources.feed.Feed: the hub's events to the aggregator, off the loop
        self.source: SocketIOSource | None = None
        self.sse_sources: list[Any] = []  # SSESource, one per configured stream (config ``sources``)
        self._sse_relayed: asyncio.Future[None] | None = None  # the last SSE event relayed through the hub
        self._sse_tasks: list[asyncio.Task[None]] = []
        self.probe_result: Probe | None = None
        self.started_at = now_utc()
        self.error: BaseException | None = None
        self.events_received = 0
        self._ready = threading.Event()
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._source_task: asyncio.Task[None] | None = None
        self._status_failed = False

    # -- addresses and descriptions --

    @property
    def host(self) -> str:
        return self.aggregator.config.dashboard_host

    @property
    def port(self) -> int:
        return self.aggregator.config.dashboard_port

    @property
    def ready(self) -> bool:
        """The source is up (serving, connected or retrying), or starting failed (see ``error``)."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def _hub_address(self) -> str:
        host = self.hub.host
        return f"[{host}]:{self.hub.port}" if ":" in host else f"{host}:{self.hub.port}"

    def describe_source(self) -> str:
        parts = []
        if self.mode == SERVE and self.hub is not None:
            parts.append(f"built-in hub on {self._hub_address()}")
        elif self.mode == CLIENT and self.source is not None:
            parts.append(f"Socket.IO server at {self.source.server}")
        parts.extend(f"SSE stream {sse.url}" for sse in self.sse_sources)
        return " + ".join(parts) or "none"

    def connection_state(self) -> str:
        parts = []
        if self.mode == SERVE and self.hub is not None:
            parts.append(f"serving on {self._hub_address()}")
            queue = getattr(self.hub, "queue", None)
            if queue is not None:  # across machines (issue 10): is Redis there?
                parts.append(f"message queue {queue.describe()}")
        elif self.mode == CLIENT and self.source is not None:
            parts.append(self.source.describe())
        parts.extend(sse.describe() for sse in self.sse_sources)
        if parts:
            return "; ".join(parts)
        return "starting" if not self._ready.is_set() else "not connected"

    # -- control --

    def request_stop(self) -> None:
        """Ask ``run_until_stopped()`` to finish. Safe from any thread, before or while it runs."""
        self._stop_requested = True
        if self._stop_event is not None:
            call_in_loop(self._loop, self._stop_event.set)

    def run_in_thread(self) -> None:
        """Thread target: a fresh event loop running ``run_until_stopped()``; failures land in ``error``."""
        try:
            asyncio.run(self.run_until_stopped())
        except BaseException as error:  # noqa: BLE001 - reported through .error and the ready event
            if self.error is None:
                self.error = error
            if not isinstance(error, ConnectionError):
                log.error("the aggregator runtime failed: %s", error, exc_info=error)
        finally:
            self._ready.set()

    async def run_until_stopped(self) -> None:
        """Start the source, do the periodic work until ``request_stop()``, then stop everything."""
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        if self._stop_requested:
            self._stop_event.set()
        try:
            try:
                await self._start_source()
            except BaseException as error:
                self.error = error
                raise
            self._refresh_connection()
            self._write_status()
            self._ready.set()
            log.info("aggregator running: %s", self.connection_state())
            await self._periodic()
        finally:
            await self._stop_source()
            self._refresh_connection()
            self.aggregator.stop(before_release=self._write_final_status)
            self._ready.set()

    # -- sources --

    async def _start_source(self) -> None:
        from .config import SOCKETIO, SSE

        specs = tuple(getattr(self.aggregator.config, "sources", ()) or ())
        for spec in specs:
            if spec.type == SSE and spec.url:
                self._start_sse(spec.url)
        if specs and not any(spec.type == SOCKETIO for spec in specs):
            self.mode = SSE_ONLY  # only streams: no hub, no Socket.IO client
            return
        try:
            await self._start_socketio()
        except BaseException:
            await self._stop_sse()
            raise

    def _start_sse(self, url: str) -> None:
        """One more SSE stream, read concurrently with everything else (``sources/sse.py``)."""
        from .sources.sse import SSESource

        source = SSESource(url, self._on_sse_event, on_state=self._on_state)
        self.sse_sources.append(source)
        self._sse_tasks.append(asyncio.create_task(source.run(), name=f"sse-source-{len(self._sse_tasks)}"))

    async def _stop_sse(self) -> None:
        for source in self.sse_sources:
            source.stop()
        for task in self._sse_tasks:
            try:
                await asyncio.wait_for(asyncio.shield(task), SOURCE_STOP_TIMEOUT)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:  # noqa: BLE001
                log.debug("an SSE source ended with an error", exc_info=True)
        self._sse_tasks = []

    async def _start_socketio(self) -> None:
        host, port = self.host, self.port
        if self.serve is True:
            await self._start_hub(host, port)
            return
        if self.serve is False:
            await self._start_client(host, port)
            return
        found = self.probe_result = await probe(host, port)
        log.debug("probe %s:%s: %s (%s)", host, port, found.kind, found.detail)
        if found.kind == "free" and bind_host(host) is None:
            # A server on another machine that is not up yet: wait for it, never serve its address.
            await self._start_client(host, port)
            return
        if found.kind == "free":
            try:
                await self._start_hub(host, port)
                return
            except ConnectionError:
                found = self.probe_result = await probe(host, port)  # lost a race for the port?
                if found.kind != "socketio":
                    raise
        if found.kind == "socketio":
            await self._start_client(host, port)
            return
        raise ConnectionError(f"{host}:{port} is in use by something that is not a Socket.IO server ({found.detail})")

    async def _start_hub(self, host: str, port: int) -> None:
        from .errors import AggregatorError
        from .sources.feed import Feed
        from .sources.hub import UNSAFE_HOST_MESSAGE, Hub

        token = getattr(self.aggregator.config, "token", None)
        address = bind_host(host, token)
        if address is None:
            raise ConnectionError(f"cannot serve on {host}: {UNSAFE_HOST_MESSAGE}")
        # The aggregator's work (normalize, journal, saves) runs in the feed's thread, not on
        # the loop that reads the sockets: a burst no longer starves the hub's pings.
        feed = Feed(self._consume, name="aggregator-feed")
        try:
            hub = Hub(address, port, token=token, message_queue=self.aggregator.config.message_queue, feed=feed)
        except AggregatorError as error:  # a malformed $AGGREGATE_HUB_HEARTBEAT: one line, like a taken port
            raise ConnectionError(str(error)) from None
        feed.start()
        try:
            await hub.start()
        except OSError as error:
            await asyncio.to_thread(feed.close)
            reason = error.strerror or str(error)
            raise ConnectionError(reason if str(port) in reason else f"cannot serve on {address}:{port}: {reason}") from None
        except BaseException:
            await asyncio.to_thread(feed.close)
            raise
        self.hub, self.feed, self.mode = hub, feed, SERVE

    async def _start_client(self, host: str, port: int) -> None:
        from .sources.socketio_client import CONNECTED, RETRYING, SocketIOSource

        source = SocketIOSource(f"http://{_url_host(host)}:{port}", self._on_event, on_state=self._on_state,
                                token=getattr(self.aggregator.config, "token", None), on_batch=self._on_batch)
        self.source, self.mode = source, CLIENT
        self._source_task = asyncio.create_task(source.run(), name="socketio-source")
        while source.state not in (CONNECTED, RETRYING) and not self._source_task.done():
            if self._stop_event is not None and self._stop_event.is_set():
                break
            await asyncio.sleep(0.02)
        if self._source_task.done() and self._source_task.exception() is not None:
            raise ConnectionError(f"cannot listen to {source.server}: {self._source_task.exception()}")

    async def _stop_source(self) -> None:
        await self._stop_sse()
        if self._sse_relayed is not None:  # the streams' last events reach the aggregator before it saves
            await asyncio.wait([self._sse_relayed], timeout=SOURCE_STOP_TIMEOUT)
        if self.source is not None:
            self.source.stop()
        if self._source_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._source_task), SOURCE_STOP_TIMEOUT)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._source_task.cancel()
            except Exception:  # noqa: BLE001
                log.debug("source ended with an error", exc_info=True)
        if self.hub is not None:
            try:
                await asyncio.wait_for(self.hub.stop(), SOURCE_STOP_TIMEOUT)
            except Exception:  # noqa: BLE001
                log.warning("the built-in hub did not stop cleanly", exc_info=True)
        if self.feed is not None:
            # Everything the hub took in is handled before aggregator.stop() saves: no deadline
            # here (at most the feed's capacity, about a second of work, is pending).
            await asyncio.to_thread(self.feed.close)

    def _on_event(self, event_name: str | None, payload: Any) -> None:
        self.events_received += 1
        self.aggregator.handle_event(payload, event_name)

    def _on_batch(self, batch: list[tuple[str | None, Any]]) -> None:
        """A Socket.IO client's events of the last few milliseconds (``SocketIOSource`` batches):
        one ``handle_events`` call (one lock, one journal write per session), journaled when it returns."""
        self.events_received += len(batch)
        self.aggregator.handle_events(batch)

    def _consume(self, batch: list[tuple[str, Any]]) -> None:
        """The feed's consumer (its thread): the batch to the aggregator in one
        ``handle_events`` call (journaled when it returns). Should that raise (a bug: bad
        payloads are counted, never raised), each event goes in again on its own, so none
        is lost; those already recorded are dropped as duplicates by their event ids."""
        self.events_received += len(batch)
        try:
            self.aggregator.handle_events(batch)
            return
        except Exception:  # noqa: BLE001
            log.exception("handling a batch of %d relayed events failed; handling them one by one", len(batch))
        for event_name, payload in batch:
            try:
                self.aggregator.handle_event(payload, event_name)
            except Exception:  # noqa: BLE001
                log.exception("handling a relayed event failed")

    def _on_sse_event(self, event_name: str | None, payload: Any) -> None:
        """An SSE event. Serving the hub, it is relayed through it (its listener feeds the
        aggregator), so a TUI following this aggregator sees the stream too."""
        from .normalize_sse import event_type_of

        if self.mode == SERVE and self.hub is not None and event_type_of(payload, event_name) != "heartbeat":
            # One after the other: while the hub's feed is full, concurrent relays could
            # take turns out of order, and a stream's order is its sessions' order.
            self._sse_relayed = asyncio.ensure_future(
                self._relay(event_name or SSE_EVENT_NAME, payload, after=self._sse_relayed))
        else:
            self._on_event(event_name, payload)

    async def _relay(self, event_name: str, payload: Any, *, after: asyncio.Future[None] | None = None) -> None:
        if after is not None and not after.done():
            await asyncio.wait([after])
        try:
            await self.hub.relay(event_name, payload)
        except Exception:  # noqa: BLE001 - the aggregator got it already (listener); clients may miss it
            log.debug("relaying an SSE event failed", exc_info=True)

    def _on_state(self, state: str) -> None:
        self._refresh_connection()

    def _refresh_connection(self) -> None:
        aggregator = self.aggregator
        if self.mode == SERVE:
            aggregator.connected = self.hub is not None
        elif self.mode == CLIENT and self.source is not None:
            aggregator.connected = self.source.connected
        elif self.mode == SSE_ONLY:
            aggregator.connected = any(sse.connected for sse in self.sse_sources)
        else:
            aggregator.connected = False
        aggregator.connection_state = self.connection_state()

    # -- periodic work --

    async def _periodic(self) -> None:
        assert self._loop is not None and self._stop_event is not None
        loop = self._loop
        next_status = loop.time() + self.status_interval
        next_timeouts = loop.time() + self.timeout_check_interval
        next_drain = loop.time()
        while not self._stop_event.is_set():
            try:
                await asyncio.wait_for(self._stop_event.wait(), self.tick)
                break
            except asyncio.TimeoutError:
                pass
            now = loop.time()
            self._refresh_connection()
            try:
                self.aggregator.write_due_snapshots()  # those a burst put off (aggregator.BUSY_BATCH)
            except Exception:  # noqa: BLE001 - the loop must survive a bad save
                log.exception("writing put-off snapshots failed")
            if now >= next_timeouts:
                next_timeouts = now + self.timeout_check_interval
                try:
                    self.aggregator.check_timeouts()
                except Exception:  # noqa: BLE001 - the loop must survive a bad save
                    log.exception("checking session timeouts failed")
            if self.mode in (CLIENT, SSE_ONLY) and self.aggregator.writes and now >= next_drain:
                next_drain = now + SPOOL_DRAIN_INTERVAL
                await loop.run_in_executor(None, self._drain_spool)
            if now >= next_status:
                next_status = now + self.status_interval
                if self.aggregator.write_error is not None:
                    self.aggregator.retry_unsaved()  # a full or unwritable directory: try again
                self._write_status()

    def _drain_spool(self) -> None:
        """As a client (of claude-mpm's monitor, say) no hub of ours drains what
        ``aggregate hook`` spooled, so the runtime feeds it to the aggregator itself.
        Only the directory's writer does: a follower draining it would take those
        events away from the aggregator that saves them."""
        from .sources.hub import feed_spool

        report = feed_spool(self.aggregator.handle_event)
        if report is not None and report.delivered:
            log.info("delivered %d spooled hook events", report.delivered)

    def status(self) -> dict[str, Any]:
        """The status file's content: ``get_status()`` plus who, since when, and the source."""
        status = self.aggregator.get_status()
        status.update(
            save_directory=str(Path(self.aggregator.save_dir).absolute()),
            pid=os.getpid(),
            hostname=socket.gethostname(),
            started_at=format_timestamp(self.started_at),
            updated_at=format_timestamp(now_utc()),
            mode=self.mode,
            source=self.describe_source(),
            connection_state=self.connection_state() if status.get("running") else status.get("connection_state"),
            events_received=self.events_received,
        )
        if self.source is not None:
            status["connection_attempt"] = self.source.attempt
            status["next_retry_in"] = self.source.next_retry_in
            status["last_error"] = self.source.last_error
        if self.sse_sources:
            status["sse_sources"] = [sse.status() for sse in self.sse_sources]
        if self.hub is not None:
            stats = getattr(self.hub, "stats", None)
            if callable(stats):
                stats = stats()
            if isinstance(stats, dict):
                status["hub"] = stats
        if self.feed is not None:
            status["feed"] = {**self.feed.stats, "pending": self.feed.pending, "capacity": self.feed.capacity}
        return status

    def _write_status(self, extra: dict[str, Any] | None = None) -> None:
        if not self.write_status or not self.aggregator.store.is_writer:
            return
        status = self.status()
        if extra:
            status.update(extra)
        try:
            write_status_file(self.aggregator.save_dir, status)
        except OSError as error:
            if not self._status_failed:
                self._status_failed = True
                log.warning("cannot write the status file in %s: %s", self.aggregator.save_dir, error.strerror or error)

    def _write_final_status(self) -> None:
        """Called by ``aggregator.stop()`` after saving, before the lock is released."""
        extra: dict[str, Any] = {
            "running": False,
            "connected": False,
            "connection_state": "stopped",
            "stopped_at": format_timestamp(now_utc()),
            "saved_on_stop": self.aggregator.saved_on_stop,
        }
        if self.error is not None:
            extra["error"] = str(self.error) or type(self.error).__name__
        self._write_status(extra)


__all__ = [
    "STATUS_FILE_NAME",
    "AggregatorRuntime",
    "Probe",
    "bind_host",
    "probe",
    "read_status_file",
    "status_age_seconds",
    "status_file_path",
    "write_status_file",
]
