"""A python-socketio ``AsyncClient`` whose receive path costs a third of the stock one's.

Measured per 1 KB claude-mpm event (py-spy, the ingest bench): the stock client
spent about 70 µs in python-engineio / python-socketio before our handler ran,
most of it not in decoding but in bookkeeping done for every message:

* ``asyncio.wait_for(ws.receive(), timeout)`` makes a new task per message (Python 3.11);
* each Engine.IO MESSAGE is handed to python-socketio in a new background task;
* two packet objects are built, one per protocol layer.

Two subclasses change only that path, and only for the common case:

* ``InlineEngineIOClient`` reads with aiohttp's own ``receive(timeout=...)`` and
  awaits the message handler in the read loop instead of spawning a task. Events
  are then handled strictly in arrival order, and a slow handler slows the reading
  (the server's sends back up, as for any websocket), instead of piling up tasks.
* ``InlineSocketIOClient`` decodes a plain event (``2[...]``: default namespace,
  no ack id, no binary attachments) in one JSON call and hands it straight to
  ``sink(event, args)``. Anything else (connect, disconnect, acks, binary, other
  namespaces, an event with an explicit handler) takes the library's own path.

Everything else (handshake, pings, reconnect, polling) is the libraries' own code.
``inline_client_class()`` gives the stock ``AsyncClient`` should a future release
rename what these override: slower, never broken.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import aiohttp
import engineio
import socketio
from engineio import base_client as engineio_base_client
from engineio import packet as engineio_packet

from . import wirejson

log = logging.getLogger("agent_aggregator.sources.socketio")

EventSink = Callable[[str, tuple[Any, ...]], None]
_MESSAGE = str(engineio_packet.MESSAGE)  # "4": an Engine.IO text frame carrying a Socket.IO packet
_PLAIN_EVENT = "2["  # a Socket.IO EVENT for "/" with no ack id


class InlineEngineIOClient(engineio.AsyncClient):
    """python-engineio's client, reading without a task per message (see the module doc)."""

    async def _read_loop_websocket(self) -> None:
        """The library's ``_read_loop_websocket`` with the two changes above; the rest as it is."""
        while self.state == "connected" and self.write_loop_task:
            try:
                message = await self.ws.receive(timeout=self.ping_interval + self.ping_timeout)
            except TimeoutError:
                self.logger.warning("Server has stopped communicating, aborting")
                await self.queue.put(None)
                break
            except aiohttp.client_exceptions.ServerDisconnectedError:
                self.logger.info("Read loop: WebSocket connection was closed, aborting")
                await self.queue.put(None)
                break
            except Exception as error:  # noqa: BLE001 - the library's own policy: any failure ends the loop
                self.logger.info('Unexpected error receiving packet: "%s", aborting', str(error))
                await self.queue.put(None)
                break
            data = message.data
            if not isinstance(data, (str, bytes)):
                self.logger.warning("Server sent %s packet data %s, aborting",
                                    "close" if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING)
                                    else str(message.type), str(data))
                await self.queue.put(None)
                break
            if isinstance(data, str) and data[:1] == _MESSAGE and data[1:2].isdigit():
                # What Packet.decode gives for this frame: a MESSAGE whose data is the text after
                # the type (a payload starting with a digit is never JSON-decoded by engineio).
                await self._message(data[1:])
                continue
            try:
                pkt = engineio_packet.Packet(encoded_packet=data)
            except Exception as error:  # noqa: BLE001 - as the library: a frame it cannot decode ends the loop
                self.logger.info('Unexpected error decoding packet: "%s", aborting', str(error))
                await self.queue.put(None)
                break
            if pkt.packet_type == engineio_packet.MESSAGE:
                await self._message(pkt.data)
            else:
                await self._receive_packet(pkt)

        if self.write_loop_task:
            self.logger.info("Waiting for write loop task to end")
            await self.write_loop_task
        if self.state == "connected":
            await self._trigger_event("disconnect", self.reason.TRANSPORT_ERROR, run_async=False)
            try:
                engineio_base_client.connected_clients.remove(self)
            except ValueError:
                pass
            await self._reset()
        self.logger.info("Exiting read loop task")

    async def _message(self, data: Any) -> None:
        """One MESSAGE to its handler, awaited here (the library spawns a task for each)."""
        handler = self.handlers.get("message")
        if handler is None:
            return
        try:
            result = handler(data)
            if result is not None and hasattr(result, "__await__"):
                await result
        except Exception:  # noqa: BLE001 - as the library's tasks: logged, the connection stays up
            self.logger.exception("message async handler error")


class InlineSocketIOClient(socketio.AsyncClient):
    """python-socketio's client handing plain events straight to ``sink`` (see the module doc)."""

    def __init__(self, *args: Any, sink: EventSink, **kwargs: Any) -> None:
        self._sink = sink
        super().__init__(*args, **kwargs)

    def _engineio_client_class(self) -> type:
        return InlineEngineIOClient

    async def _handle_eio_message(self, data: Any) -> None:
        if not self._binary_packet and isinstance(data, str) and data.startswith(_PLAIN_EVENT):
            try:
                decoded = wirejson.loads(data[1:])
            except ValueError:
                decoded = None
            if (isinstance(decoded, list) and decoded and isinstance(decoded[0], str)
                    and decoded[0] not in self.handlers.get("/", ())):
                self._sink(decoded[0], tuple(decoded[1:]))
                return
        await super()._handle_eio_message(data)


def inline_client_class() -> type | None:
    """``InlineSocketIOClient``, or None when the installed libraries lack what it overrides."""
    needed = (
        (engineio.AsyncClient, "_read_loop_websocket"), (engineio.AsyncClient, "_receive_packet"),
        (engineio.AsyncClient, "_trigger_event"), (socketio.AsyncClient, "_engineio_client_class"),
        (socketio.AsyncClient, "_handle_eio_message"),
    )
    missing = [f"{cls.__module__}.{cls.__name__}.{name}" for cls, name in needed if not hasattr(cls, name)]
    if missing:
        log.info("the stock Socket.IO client is used: %s not found", ", ".join(missing))
        return None
    return InlineSocketIOClient
