"""``aggregate replay --emit URL``: a saved session's events sent to a hub again.

Each event goes out as the seed envelope ``{type: "hook", subtype, timestamp,
session_id, correlation_id, agent_id, event_id, data}`` plus ``event_type`` and the
mark ``aggregate_format: "saved-event/1"``, in a ``POST /api/events``.
Our hub relays an envelope posted there as the ``claude_event`` it is (claude-mpm's
monitor accepts the same body), and ``normalize`` turns it back into the very
event that was saved: same type, category, time, ids and data. So replaying into
a hub that an aggregator listens to re-creates the session (tested), and any
Socket.IO dashboard connected to the hub sees the events as they are replayed.

Event ids are kept, so a second emit of the same session into the same
aggregator is recognised as a repeat and changes nothing. ``fresh_ids`` gives
the session and every event new ids instead: each emit is then a new session.

The HTTP client is the standard library's (one keep-alive connection): the
events go out one at a time, in order, each acknowledged before the next.
"""

from __future__ import annotations

import http.client
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from .errors import AggregatorError, ConnectionError
from .model import SessionEvent
from .normalize import SAVED_EVENT_FORMAT, SAVED_EVENT_KEY, SUBTYPE_EVENT_TYPES

API_EVENTS_PATH = "/api/events"
EMIT_TIMEOUT = 10.0  # seconds a hub may take to acknowledge one event

# Canonical event type -> the snake_case subtype claude-mpm uses for it (the first
# one ``normalize`` maps back to that type); other types are sent as they are.
_SUBTYPES: dict[str, str] = {}
for _subtype, _event_type in SUBTYPE_EVENT_TYPES.items():
    _SUBTYPES.setdefault(_event_type, _subtype)


def wire_payload(event: SessionEvent, *, session_id: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    """The envelope ``normalize`` turns back into ``event`` (with ``session_id`` /
    ``event_id`` replaced when given). ``data`` is sent as saved; the
    ``aggregate_format`` mark tells our ``normalize`` to take it as it is (the
    tracker added keys when it was saved, which lifting again would change), while
    other dashboards read the envelope's ``type`` / ``subtype`` / ``data``."""
    payload: dict[str, Any] = {
        "type": "hook",
        "subtype": _SUBTYPES.get(event.event_type, event.event_type),
        SAVED_EVENT_KEY: SAVED_EVENT_FORMAT,
        "event_type": event.event_type,
        "timestamp": event.timestamp,
        "session_id": session_id or event.session_id,
        "data": event.data,
    }
    if event.correlation_id is not None:
        payload["correlation_id"] = event.correlation_id
    if event.agent_id is not None:
        payload["agent_id"] = event.agent_id
    identifier = event_id or event.event_id
    if identifier is not None:
        payload["event_id"] = identifier
    return payload


class Emitter:
    """POSTs events to a hub's ``/api/events``, one at a time, over one connection."""

    def __init__(self, url: str, *, fresh_ids: bool = False, timeout: float = EMIT_TIMEOUT) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AggregatorError(f"--emit {url}: expected a hub URL like http://127.0.0.1:8765")
        try:
            port = parts.port
        except ValueError:
            raise AggregatorError(f"--emit {url}: bad port") from None
        self.url = url
        self.host = parts.hostname
        self.port = port or (443 if parts.scheme == "https" else 80)
        self.path = parts.path if parts.path not in ("", "/") else API_EVENTS_PATH
        self.https = parts.scheme == "https"
        self.timeout = timeout
        self.fresh_ids = fresh_ids
        self.session_id = uuid.uuid4().hex if fresh_ids else None
        self.sent = 0
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            factory = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._connection = factory(self.host, self.port, timeout=self.timeout)
        return self._connection

    def emit(self, event: SessionEvent) -> None:
        """Send one event; raises ConnectionError (one line) when the hub does not take it."""
        payload = wire_payload(
            event,
            session_id=self.session_id,
            event_id=uuid.uuid4().hex if self.fresh_ids else None,
        )
        body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        for attempt in (1, 2):  # a kept-alive connection the server closed: reconnect once
            connection = self._connect()
            try:
                connection.request("POST", self.path, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as error:
                self.close()
                if attempt == 2 or isinstance(error, (ConnectionRefusedError, TimeoutError)):
                    raise ConnectionError(f"cannot send events to {self.url}: {_reason(error)}") from None
                continue
            if response.status >= 300:
                detail = answer.decode("utf-8", "replace").strip().splitlines()[:1]
                raise ConnectionError(
                    f"{self.url} refused an event: HTTP {response.status}" + (f" ({detail[0][:200]})" if detail else "")
                )
            self.sent += 1
            return

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


__all__ = ["API_EVENTS_PATH", "Emitter", "wire_payload"]
