"""Any raw payload -> one ``SessionEvent``: the only module that knows wire formats.

Accepted (DESIGN section 2):

* raw Claude Code hook payloads (``hook_event_name``; camelCase look-alikes too);
* claude-mpm's Socket.IO envelopes ``{type: <category>, subtype, data, timestamp, ...}``
  and the seed envelope ``{type: "hook", subtype, timestamp, data}``;
* claude-mpm's HTTP body ``{namespace, event, data}`` (unwrapped, then as above);
* mnemosyne-style SSE events ``{id, type: <snake_case>, ...}`` (``normalize_sse``);
* headless Claude Code output lines, ``claude -p --output-format stream-json``
  (``normalize_streamjson``); one line may stand for several events, so use
  ``normalize_all`` for those (``normalize`` returns the first).

The output's ``data`` keeps the payload's own fields and lifts the canonical
ones to its top: ``prompt``, ``tool_name``, ``tool_input``, ``file_path``,
``success``, ``error``, ``agent_type``, ``subagent_type``, ``description``,
``instructions``, ``response``, ``todos``, ``usage``, ``cwd``. Pure: no I/O,
no state, never raises anything but ``RejectedEvent``.
"""

from __future__ import annotations

import hashlib
import re
import sys
from datetime import datetime
from typing import Any, Callable

import orjson

from .errors import RejectedEvent
from .model import DELEGATION_TOOLS, SessionEvent, categorize
from .timeutil import format_timestamp, normalize_timestamp, now_utc

MAX_STRING_CHARS = 64 * 1024
MAX_DEPTH = 48
MAX_SESSION_ID_CHARS = 200
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

# Socket.IO / SSE messages that are transport chatter, not agent activity.
CONTROL_EVENTS = frozenset(
    {
        "heartbeat",
        "dashboard:welcome",
        "welcome",
        "connect",
        "connection_established",
        "connected",
        "status",
        "command_acknowledged",
        "ping",
        "pong",
        "event_history",
        "history",
        "server_info",
    }
)

# claude-mpm subtypes (snake_case) -> canonical Claude Code hook names.
SUBTYPE_EVENT_TYPES = {
    "user_prompt": "UserPromptSubmit",
    "user_prompt_submit": "UserPromptSubmit",
    "pre_tool": "PreToolUse",
    "pre_tool_use": "PreToolUse",
    "post_tool": "PostToolUse",
    "post_tool_use": "PostToolUse",
    "post_tool_failure": "PostToolUseFailure",
    "post_tool_use_failure": "PostToolUseFailure",
    "subagent_start": "SubagentStart",
    "subagent_stop": "SubagentStop",
    "stop": "Stop",
    "assistant_response": "AssistantResponse",
    "assistant_message": "AssistantResponse",
    "session_start": "SessionStart",
    "session_end": "SessionEnd",
    "notification": "Notification",
    "todo_updated": "TodoUpdated",
    "permission_request": "PermissionRequest",
    "pre_compact": "PreCompact",
}

_TOOL_EVENTS = frozenset({"PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest", "PermissionDenied"})
_FILE_PATH_KEYS = ("file_path", "notebook_path", "filePath")
# Keys naming the session on look-alike agents (Factory droid uses camelCase).
_SESSION_KEYS = ("session_id", "sessionId")


def normalize(
    payload: Any,
    event_name: str | None = None,
    *,
    received_at: datetime | None = None,
) -> SessionEvent:
    """Turn one raw payload into a ``SessionEvent``.

    ``event_name`` is the Socket.IO event (or SSE ``event:``) it arrived under;
    ``received_at`` stamps payloads that carry no time of their own (raw hooks).
    Raises ``RejectedEvent`` for payloads that cannot belong to a session.
    """
    if event_name is not None and (event_name in CONTROL_EVENTS or event_name.startswith("dashboard:")):
        raise RejectedEvent(f"control:{event_name}", ignorable=True)
    if isinstance(payload, (bytes, bytearray)):
        payload = _decode_json_bytes(payload)
    elif isinstance(payload, str):
        payload = _decode_json_bytes(payload.encode("utf-8", "surrogatepass"))
    if not isinstance(payload, dict):
        raise RejectedEvent("not_an_object", type(payload).__name__)
    payload = _storable(payload)
    parser = _pick_parser(payload, event_name)
    return parser(payload, event_name, received_at or now_utc())


def normalize_all(
    payload: Any,
    event_name: str | None = None,
    *,
    received_at: datetime | None = None,
) -> list[SessionEvent]:
    """Every event a payload stands for: one for most formats, none or several for a
    stream-json line (an assistant message with text and tool calls). Same errors as
    ``normalize``."""
    if isinstance(payload, dict) and normalize_streamjson.is_stream_json(payload) and (
        event_name is None or event_name not in CONTROL_EVENTS
    ):
        return normalize_streamjson.events_from_line(_storable(payload), received_at or now_utc())
    return [normalize(payload, event_name, received_at=received_at)]


def wire_format(payload: Any) -> str:
    """Which wire format a payload is in, for a session's ``metadata.source``."""
    if not isinstance(payload, dict):
        return "unknown"
    if payload.get(SAVED_EVENT_KEY) == SAVED_EVENT_FORMAT:
        return "agent-aggregator-replay"
    if normalize_streamjson.is_stream_json(payload):
        return normalize_streamjson.SOURCE_NAME
    if "subtype" not in payload and "hook_event_name" not in payload and normalize_sse.event_type_of(payload):
        return "sse"
    if _is_api_body(payload):
        return "claude-mpm-http"
    if "hook_event_name" in payload or "hookEventName" in payload:
        return "claude-code-hook"
    if "subtype" in payload:
        return "claude-mpm" if payload.get("type") != "hook" or "event" in payload else "hook-envelope"
    return "unknown"


def stable_event_id(payload: dict[str, Any]) -> str | None:
    """A content hash that identifies an event across a replay or a reconnect.

    Only payloads that carry their own timestamp or id get one: two raw hook
    payloads of different turns can be byte-identical (``Stop`` on old builds),
    so hashing those would merge distinct events. Hubs stamp raw hooks with an
    ``event_id`` before relaying, which is used as is. The Socket.IO event name
    is left out: a server's history replay re-sends events under other names.
    """
    explicit = payload.get("event_id")
    if isinstance(explicit, str) and explicit:
        return explicit
    if "timestamp" not in payload and not isinstance(payload.get("data"), dict):
        return None
    if "timestamp" not in payload and "timestamp" not in payload["data"]:
        return None
    try:
        encoded = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    except (TypeError, orjson.JSONEncodeError):
        return None
    return hashlib.blake2b(encoded, digest_size=10).hexdigest()


# --- format detection -------------------------------------------------------------

Parser = Callable[[dict[str, Any], "str | None", datetime], SessionEvent]

# ``aggregate replay --emit`` marks the events it re-sends (a seed envelope plus the
# saved ``event_type``): they were normalized once, and lifting fields again would
# add keys the saved event does not have (``replay_emit.wire_payload``).
SAVED_EVENT_KEY = "aggregate_format"
SAVED_EVENT_FORMAT = "saved-event/1"


def _from_saved_event(payload: dict[str, Any], event_name: str | None, received_at: datetime) -> SessionEvent:
    """An event as agent-aggregator saved it: type, time, ids and data taken as they are."""
    event_type = _text(payload.get("event_type")) or "unknown"
    if event_type in CONTROL_EVENTS:
        raise RejectedEvent(f"control:{event_type}", ignorable=True)
    inner = payload.get("data")
    data = _capped_copy(inner) if isinstance(inner, dict) else {}
    return SessionEvent(
        timestamp=normalize_timestamp(payload.get("timestamp"), received_at),
        event_type=event_type,
        category=categorize(event_type, _text(data.get("tool_name"))),
        data=data,
        session_id=_session_id(payload),
        correlation_id=_text(payload.get("correlation_id")),
        agent_id=_text(payload.get("agent_id")),
        event_id=stable_event_id(payload),
    )


def _pick_parser(payload: dict[str, Any], event_name: str | None = None) -> Parser:
    if payload.get(SAVED_EVENT_KEY) == SAVED_EVENT_FORMAT:
        return _from_saved_event
    if _is_api_body(payload):
        return _from_api_body
    if "hook_event_name" in payload or "hookEventName" in payload:
        return _from_raw_hook
    if normalize_streamjson.is_stream_json(payload):
        return _from_stream_json
    if "subtype" in payload:
        return _from_envelope
    if normalize_sse.event_type_of(payload, event_name) is not None:
        return normalize_sse.event_from_payload
    data = payload.get("data")
    if isinstance(data, dict) and ("hook_event_name" in data or "subtype" in data):
        return _from_wrapper
    return _from_unknown


def _from_stream_json(payload: dict[str, Any], event_name: str | None, received_at: datetime) -> SessionEvent:
    """``normalize`` of a stream-json line: its first event (``normalize_all`` gives them all)."""
    events = normalize_streamjson.events_from_line(payload, received_at)
    if not events:
        raise RejectedEvent("stream_json:empty", ignorable=True)
    return events[0]


def _is_api_body(payload: dict[str, Any]) -> bool:
    return "namespace" in payload and "event" in payload and isinstance(payload.get("data"), dict)


def _from_api_body(payload: dict[str, Any], event_name: str | None, received_at: datetime) -> SessionEvent:
    """claude-mpm's hook handler POST body: the envelope is in ``data``."""
    inner = payload["data"]
    name = payload.get("event") if isinstance(payload.get("event"), str) else event_name
    return normalize(inner, name, received_at=received_at)


def _from_wrapper(payload: dict[str, Any], event_name: str | None, received_at: datetime) -> SessionEvent:
    """``{type: <category>, data: <hook payload or envelope>}`` with nothing else to key on."""
    inner = dict(payload["data"])
    for key in ("timestamp", "session_id", "correlation_id", "event_id", "hostname"):
        if key in payload and key not in inner:
            inner[key] = payload[key]
    return normalize(inner, event_name, received_at=received_at)


# --- raw Claude Code hooks -------------------------------------------------------


def _from_raw_hook(payload: dict[str, Any], event_name: str | None, received_at: datetime) -> SessionEvent:
    session_id = _session_id(payload)
    event_type = _text(payload.get("hook_event_name") or payload.get("hookEventName")) or "unknown"
    data = _capped_copy(payload)
    data.pop("hook_event_name", None)
    data.pop("hookEventName", None)
    for key in _SESSION_KEYS:
        data.pop(key, None)
    timestamp = normalize_timestamp(payload.get("timestamp"), received_at)
    return _finish(
        event_type,
        data,
        session_id=session_id,
        timestamp=timestamp,
        correlation_id=_text(payload.get("tool_use_id")) or _text(payload.get("correlation_id")),
        agent_id=_text(payload.get("agent_id")),
        event_id=stable_event_id(payload),
    )


# --- claude-mpm and seed envelopes -----------------------------------------------


def _from_envelope(payload: dict[str, Any], event_name: str | None, received_at: datetime) -> SessionEvent:
    """``{type, subtype, data, timestamp, session_id?, correlation_id?, cwd?}``."""
    subtype = _text(payload.get("subtype")) or "unknown"
    if subtype in CONTROL_EVENTS:
        raise RejectedEvent(f"control:{subtype}", ignorable=True)
    inner = payload.get("data")
    data = _capped_copy(inner) if isinstance(inner, dict) else ({"value": _cap(inner, 0)} if inner is not None else {})
    session_id = _session_id(payload, data)
    event_type = SUBTYPE_EVENT_TYPES.get(subtype) or _text(data.get("hook_event_name")) or subtype
    if event_type != subtype and subtype not in SUBTYPE_EVENT_TYPES:
        data.setdefault("subtype", subtype)
    data.pop("session_id", None)
    if "cwd" not in data:
        cwd = payload.get("cwd") or data.get("working_directory")
        if isinstance(cwd, str):
            data["cwd"] = cwd
    if "tool_parameters" in data and "tool_input" not in data:
        data["tool_input"] = data.pop("tool_parameters")
    if "hostname" not in data and isinstance(payload.get("hostname"), str):
        data["hostname"] = payload["hostname"]  # stamped on the envelope by the hub that took it
    agent_id = _text(data.get("agent_id")) or _text(payload.get("agent_id"))
    if agent_id and _is_synthetic_agent_id(agent_id, data, session_id):
        agent_id = None
        data["synthetic_start"] = True
    timestamp = normalize_timestamp(payload.get("timestamp") or data.get("timestamp"), received_at)
    return _finish(
        event_type,
        data,
        session_id=session_id,
        timestamp=timestamp,
        correlation_id=_text(payload.get("correlation_id")) or _text(data.get("correlation_id")) or _text(data.get("tool_use_id")),
        agent_id=agent_id,
        event_id=stable_event_id(payload),
    )


def _is_synthetic_agent_id(agent_id: str, data: dict[str, Any], session_id: str) -> bool:
    """claude-mpm announces every Task call with a subagent_start of its own, whose
    ``<agent_type>_<session_id>`` id matches nothing and whose type is renamed
    (seen on 5.9.10: Explore and general-purpose both became ``engineer``); the real
    SubagentStart hook follows separately. Such events are marked ``synthetic_start``."""
    return agent_id.endswith(f"_{session_id}")


# --- anything else -------------------------------------------------------------------


def _from_unknown(payload: dict[str, Any], event_name: str | None, received_at: datetime) -> SessionEvent:
    """Unknown shapes are kept as ``meta`` when they name a session."""
    event_type = _text(payload.get("type")) or _text(payload.get("event")) or event_name or "unknown"
    if event_type in CONTROL_EVENTS:
        raise RejectedEvent(f"control:{event_type}", ignorable=True)
    inner = payload.get("data")
    session_id = _session_id(payload, inner if isinstance(inner, dict) else None)
    data = _capped_copy(payload)
    for key in _SESSION_KEYS:
        data.pop(key, None)
    timestamp = normalize_timestamp(payload.get("timestamp"), received_at)
    return SessionEvent(
        timestamp=timestamp,
        event_type=event_type,
        category="meta",
        data=data,
        session_id=session_id,
        correlation_id=_text(payload.get("correlation_id")),
        agent_id=_text(payload.get("agent_id")),
        event_id=stable_event_id(payload),
    )


# --- canonical fields ------------------------------------------------------------


def _finish(
    event_type: str,
    data: dict[str, Any],
    *,
    session_id: str,
    timestamp: str,
    correlation_id: str | None,
    agent_id: str | None,
    event_id: str | None,
) -> SessionEvent:
    """Lift the canonical fields, pick the category, build the event."""
    if event_type == "PostToolUse" and data.get("success") is False:
        event_type = "PostToolUseFailure"
    _lift_common(data)
    tool_name = _text(data.get("tool_name"))
    if event_type in _TOOL_EVENTS:
        _lift_tool_fields(event_type, data, tool_name)
    elif event_type == "UserPromptSubmit":
        prompt = data.get("prompt")
        if not isinstance(prompt, str):
            prompt = data.get("prompt_text") or data.get("prompt_preview") or data.get("message")
            data["prompt"] = prompt if isinstance(prompt, str) else ""
    elif event_type in ("SubagentStart", "SubagentStop"):
        if not _text(data.get("agent_type")):
            data.pop("agent_type", None)
        _lift_response(data, "last_assistant_message")
    elif event_type in ("Stop", "AssistantResponse"):
        _lift_response(data, "last_assistant_message", "response", "content", "text", "message")
    return SessionEvent(
        timestamp=timestamp,
        event_type=event_type,
        category=categorize(event_type, tool_name),
        data=data,
        session_id=session_id,
        correlation_id=correlation_id,
        agent_id=agent_id,
        event_id=event_id,
    )


def _lift_common(data: dict[str, Any]) -> None:
    if "cwd" not in data and isinstance(data.get("working_directory"), str):
        data["cwd"] = data["working_directory"]


def _lift_tool_fields(event_type: str, data: dict[str, Any], tool_name: str | None) -> None:
    tool_input = data.get("tool_input")
    if not isinstance(tool_input, dict):
        if tool_input is not None:
            data["tool_input"] = tool_input = {"value": tool_input}
        else:
            tool_input = {}
    path = _first_text(tool_input, _FILE_PATH_KEYS) or _first_text(data, _FILE_PATH_KEYS[1:])
    if path and not isinstance(data.get("file_path"), str):
        data["file_path"] = path
    if tool_name in DELEGATION_TOOLS:
        details = data.get("delegation_details") if isinstance(data.get("delegation_details"), dict) else {}
        subagent = _text(tool_input.get("subagent_type")) or _text(details.get("agent_type"))
        if subagent:
            data.setdefault("subagent_type", subagent)
        description = _text(tool_input.get("description")) or _text(details.get("description"))
        if description:
            data.setdefault("description", description)
        instructions = tool_input.get("prompt") or details.get("prompt")
        if isinstance(instructions, str):
            data.setdefault("instructions", instructions)
    if event_type == "PostToolUse":
        data.setdefault("success", _response_succeeded(data.get("tool_response")))
        if tool_name in DELEGATION_TOOLS:
            _lift_response(data, "tool_response", "output")
    elif event_type == "PostToolUseFailure":
        data["success"] = False
        error = data.get("error")
        if error is None:
            data["error"] = _text(data.get("status")) or "failed"
    elif event_type == "PermissionDenied":
        data.setdefault("success", False)
    if tool_name == "TodoWrite" and "todos" not in data and isinstance(tool_input.get("todos"), list):
        data["todos"] = tool_input["todos"]


def _response_succeeded(response: Any) -> bool:
    """A PostToolUse means the tool ran; a response may still report failure."""
    if isinstance(response, dict):
        if response.get("is_error") is True or response.get("success") is False:
            return False
        status = response.get("status")
        if isinstance(status, str) and status.lower() in ("error", "failed", "failure", "cancelled"):
            return False
    return True


def _lift_response(data: dict[str, Any], *keys: str) -> None:
    """Find the reply text an agent gave and keep it as ``data.response``."""
    if isinstance(data.get("response"), str):
        return
    for key in keys:
        text = _text_of(data.get(key))
        if text:
            data["response"] = text
            return


def _text_of(value: Any) -> str | None:
    """Text from a string, a content-block list, or a tool response dict."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, list):
        parts = [block.get("text") for block in value if isinstance(block, dict) and isinstance(block.get("text"), str)]
        return "\n".join(parts) or None
    if isinstance(value, dict):
        for key in ("content", "result", "text", "output", "message"):
            text = _text_of(value.get(key))
            if text:
                return text
    return None


# --- small helpers --------------------------------------------------------------------


def _session_id(payload: dict[str, Any], data: dict[str, Any] | None = None) -> str:
    """The session an event belongs to; rejected when there is none usable."""
    value: Any = None
    for source in (payload, data or {}):
        for key in _SESSION_KEYS:
            if source.get(key) not in (None, ""):
                value = source[key]
                break
        if value is not None:
            break
    if value is None:
        raise RejectedEvent("no_session_id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RejectedEvent("bad_session_id", f"session id of type {type(value).__name__}")
    text = str(value).strip()
    if not text or len(text) > MAX_SESSION_ID_CHARS or _CONTROL_CHARS.search(text):
        raise RejectedEvent("bad_session_id", "empty, too long or containing control characters")
    return sys.intern(text)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_text(mapping: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        text = _text(mapping.get(key))
        if text:
            return text
    return None


def _decode_json_bytes(raw: bytes | bytearray) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise RejectedEvent("invalid_json", str(error).splitlines()[0][:120]) from None


# Values repeated on every event of a session: interned, so 100k events hold one
# copy of each instead of 100k (about 0.5 KB per event, DESIGN's memory budget).
_SHARED_VALUE_KEYS = frozenset(
    {"cwd", "transcript_path", "working_directory", "permission_mode", "git_branch", "agent_type",
     "agent_id", "tool_name", "prompt_id", "source", "hook_event_name", "operation_type", "security_risk"}
)


# Nesting the session file adds around a payload (session, events, event, data ...);
# a payload orjson still encodes under this many extra levels is safe to store.
_STORE_NESTING = 8


def _capped_copy(mapping: dict[str, Any]) -> dict[str, Any]:
    """A copy whose strings, depth and keys are bounded, with a visible marker on
    every cap, so one pathological payload cannot bloat or break the store.

    Fast path: when orjson encodes the payload (wrapped as deep as the store will
    nest it) in fewer bytes than one string may have, nothing needs capping and a
    shallow copy will do (normalize and the tracker only change top-level keys).
    """
    capped = _shallow_if_safe(mapping)
    if capped is None:
        capped = _cap(mapping, 0)
    if not isinstance(capped, dict):
        return {}
    for key in _SHARED_VALUE_KEYS.intersection(capped):
        value = capped[key]
        if isinstance(value, str) and len(value) <= 512:
            capped[key] = sys.intern(value)
    return capped


def _shallow_if_safe(mapping: dict[str, Any]) -> dict[str, Any] | None:
    wrapped: Any = mapping
    for _ in range(_STORE_NESTING):
        wrapped = [wrapped]
    try:
        encoded = orjson.dumps(wrapped)
    except (TypeError, orjson.JSONEncodeError):
        return None
    return dict(mapping) if len(encoded) <= MAX_STRING_CHARS else None


def _storable(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` itself when the store can write it back exactly, else a cleaned copy.

    Payloads decoded by the standard ``json`` module (python-socketio) or handed
    in from Python can hold what JSON files cannot: integers beyond 64 bits,
    lone UTF-16 surrogates, NaN and infinities, non-string keys, sets, nesting
    deeper than orjson writes. One such value used to make every later save of
    its session fail; ``_cap`` turns each into visible text instead. One orjson
    encode per payload decides (a few microseconds); ``b"null"`` is where NaN
    and infinities hide, and only then is the payload decoded again to compare.
    """
    try:
        encoded = orjson.dumps(payload)
    except (TypeError, orjson.JSONEncodeError):
        return _cap(payload, 0)
    if b"null" in encoded and not _same(orjson.loads(encoded), payload):
        return _cap(payload, 0)
    return payload


def _same(decoded: Any, original: Any) -> bool:
    try:
        return bool(decoded == original)
    except Exception:  # noqa: BLE001 - a foreign object's __eq__
        return False


def _clean_text(text: str) -> str:
    """Lone surrogates (from ``\ud800`` escapes) become U+FFFD; JSON files must be UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
MAX_KEY_CHARS = 1024


def _cap_key(key: Any) -> str:
    text = _clean_text(key if isinstance(key, str) else str(key))
    if len(text) > MAX_KEY_CHARS:
        return f"{text[:MAX_KEY_CHARS]}…[key truncated {len(text) - MAX_KEY_CHARS} chars of {len(text)}]"
    return text


def _cap(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        value = _clean_text(value)
        if len(value) > MAX_STRING_CHARS:
            return f"{value[:MAX_STRING_CHARS]}…[truncated {len(value) - MAX_STRING_CHARS} chars of {len(value)}]"
        return value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _UINT64_MAX else str(value)  # JSON files hold 64 bits
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if depth >= MAX_DEPTH:
        size = f" of {len(value)} items" if isinstance(value, (dict, list, tuple)) else ""
        return f"[nested too deep: a {type(value).__name__}{size} dropped]"
    if isinstance(value, dict):
        return {_cap_key(key): _cap(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cap(item, depth + 1) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return _cap(bytes(value).decode("utf-8", "replace"), depth)
    if isinstance(value, datetime):
        return format_timestamp(value)
    return str(value)


# The sibling modules use the helpers above; imported last so they find them defined.
from . import normalize_sse, normalize_streamjson  # noqa: E402
