"""Claude Code headless output (``claude -p --output-format stream-json --verbose``)
-> ``SessionEvent``s. Called by ``normalize.normalize_all``; pure, like it.

One stream-json line may hold several content blocks (an ``assistant`` line with
text and two ``tool_use`` blocks), so a line maps to a list of events:

* ``system/init``     -> ``SessionStart`` (cwd, model, tools, permission mode; plus the
                         ``aggregate_run`` block ``aggregate run`` adds: pid, command, prompt),
                         and a ``UserPromptSubmit`` when the run's prompt is known;
* ``assistant``       -> ``AssistantMessage`` (text), ``AssistantThinking``, and one
                         ``PreToolUse`` per ``tool_use`` block (``tool_use_id`` pairs it);
* ``user``            -> one ``PostToolUse`` / ``PostToolUseFailure`` per ``tool_result``
                         (``is_error``), ``UserPromptSubmit`` for text in the main thread;
* ``system/task_started`` / ``task_notification`` -> ``SubagentStart`` / ``SubagentStop``;
* ``result``          -> ``Result``: cost, turns, durations, usage, ``is_error``
                         (trusted over ``subtype`` and the exit code; FORMATS 2.2);
* ``run_exit``        -> ``SessionEnd`` (written by ``aggregate run`` when the process ends).

Lines from inside a subagent carry ``parent_tool_use_id``, the id of the Task/Agent
call that dispatched it: it becomes the events' ``agent_id``, which the tracker
binds to the delegation that call opened. ``stream_event`` deltas and
``status`` / ``thinking_tokens`` chatter are ignored (counted, not kept).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .errors import RejectedEvent
from .model import META, PROMPT, RESPONSE, SessionEvent

STREAM_JSON_TYPES = frozenset(
    {"system", "assistant", "user", "result", "stream_event", "rate_limit_event", "tool_progress",
     "tool_use_summary", "auth_status", "run_exit"}
)
IGNORED_SYSTEM_SUBTYPES = frozenset({"status", "thinking_tokens"})
SOURCE_NAME = "claude -p"
RESULT_FIELDS = ("subtype", "is_error", "duration_ms", "duration_api_ms", "num_turns", "total_cost_usd",
                 "usage", "modelUsage", "stop_reason", "permission_denials", "errors", "terminal_reason")


def is_stream_json(payload: dict[str, Any]) -> bool:
    """A headless-output line: a stream-json ``type`` and a session id (``result`` always has one)."""
    kind = payload.get("type")
    return kind in STREAM_JSON_TYPES and ("session_id" in payload or kind == "result")


def events_from_line(payload: dict[str, Any], received_at: datetime) -> list[SessionEvent]:
    """Every event one stream-json line stands for (possibly none). Raises ``RejectedEvent``."""
    from . import normalize as base  # the shared helpers; imported here to keep the import graph one-way

    kind = payload.get("type")
    if kind == "stream_event":
        raise RejectedEvent("stream_json:stream_event", ignorable=True)
    session_id = base._session_id(payload)
    timestamp = base.normalize_timestamp(payload.get("timestamp"), received_at)
    base_id = base.stable_event_id(payload) or _text(payload.get("uuid"))
    parent = _text(payload.get("parent_tool_use_id"))
    builder = _Builder(base, session_id, timestamp, base_id, parent)
    if kind == "system":
        builder.system(payload)
    elif kind == "assistant":
        builder.assistant(payload)
    elif kind == "user":
        builder.user(payload)
    elif kind == "result":
        builder.result(payload)
    elif kind == "run_exit":
        builder.run_exit(payload)
    else:
        builder.meta(kind or "unknown", base._capped_copy(_strip(payload)))
    return builder.events


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _strip(payload: dict[str, Any]) -> dict[str, Any]:
    """The line without the keys every event carries anyway."""
    return {k: v for k, v in payload.items() if k not in ("type", "session_id", "event_id")}


def _block_text(content: Any) -> str | None:
    """A tool result's content as text: a string, or the text blocks of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [b.get("text") for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)]
        return "\n".join(parts) if parts else None
    return None


class _Builder:
    """Collects the events of one line; each gets a distinct, stable event id."""

    def __init__(self, base: Any, session_id: str, timestamp: str, base_id: str | None, parent: str | None) -> None:
        self.base = base
        self.session_id = session_id
        self.timestamp = timestamp
        self.base_id = base_id
        self.parent = parent
        self.events: list[SessionEvent] = []

    def _id(self) -> str | None:
        if self.base_id is None:
            return None
        index = len(self.events)
        return self.base_id if index == 0 else f"{self.base_id}:{index}"

    def add(self, event_type: str, category: str, data: dict[str, Any], *, correlation_id: str | None = None,
            agent_id: str | None = None) -> None:
        self.events.append(
            SessionEvent(
                timestamp=self.timestamp,
                event_type=event_type,
                category=category,
                data=data,
                session_id=self.session_id,
                correlation_id=correlation_id,
                agent_id=agent_id if agent_id is not None else self.parent,
                event_id=self._id(),
            )
        )

    def canonical(self, event_type: str, data: dict[str, Any], *, correlation_id: str | None) -> None:
        """Tool events go through normalize's own lifting (file_path, subagent_type, todos ...)."""
        event = self.base._finish(
            event_type, data, session_id=self.session_id, timestamp=self.timestamp,
            correlation_id=correlation_id, agent_id=self.parent, event_id=self._id(),
        )
        self.events.append(event)

    def meta(self, event_type: str, data: dict[str, Any]) -> None:
        self.add(event_type, META, data)

    # -- line kinds --

    def system(self, payload: dict[str, Any]) -> None:
        subtype = _text(payload.get("subtype")) or "system"
        if subtype in IGNORED_SYSTEM_SUBTYPES:
            raise RejectedEvent(f"stream_json:{subtype}", ignorable=True)
        data = self.base._capped_copy(_strip(payload))
        if subtype == "init":
            data.pop("subtype", None)
            if "permissionMode" in data:
                data.setdefault("permission_mode", data["permissionMode"])
            data["source"] = "headless"
            run = data.get("aggregate_run") if isinstance(data.get("aggregate_run"), dict) else None
            self.meta("SessionStart", data)
            prompt = run.get("prompt") if run else None
            if isinstance(prompt, str) and prompt:
                self.add("UserPromptSubmit", PROMPT, {"prompt": prompt, "cwd": data.get("cwd"), "source": "argv"},
                         agent_id=None)
            return
        tool_use_id = _text(payload.get("tool_use_id"))
        if subtype == "task_started":
            data["agent_type"] = _text(payload.get("subagent_type")) or "unknown"
            if isinstance(payload.get("prompt"), str):
                data.setdefault("instructions", payload["prompt"])
            self.add("SubagentStart", "delegation", data, correlation_id=tool_use_id, agent_id=tool_use_id)
            return
        if subtype == "task_notification":
            status = _text(payload.get("status")) or "completed"
            data["success"] = status == "completed"
            summary = _text(payload.get("summary"))
            if summary:
                data["response"] = summary
            self.add("SubagentStop", "delegation", data, correlation_id=tool_use_id, agent_id=tool_use_id)
            return
        self.meta(subtype, data)

    def assistant(self, payload: dict[str, Any]) -> None:
        message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
        blocks = message.get("content")
        common: dict[str, Any] = {}
        for key in ("model", "id"):
            if isinstance(message.get(key), str):
                common["message_id" if key == "id" else key] = message[key]
        if isinstance(payload.get("error"), str):
            common["error"] = payload["error"]
        if isinstance(message.get("usage"), dict) and "message_id" in common:
            common["message_usage"] = message["usage"]  # tokens while the run goes (tracker: once per message)
        if isinstance(payload.get("subagent_type"), str):
            common["agent_type"] = payload["subagent_type"]
        if isinstance(blocks, str):
            blocks = [{"type": "text", "text": blocks}]
        for block in blocks if isinstance(blocks, list) else []:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str):
                data = {**common, "response": block["text"]}
                self.add("AssistantMessage", RESPONSE, self.base._capped_copy(data))
            elif kind == "thinking" and isinstance(block.get("thinking"), str):
                self.meta("AssistantThinking", self.base._capped_copy({**common, "thinking": block["thinking"]}))
            elif kind == "tool_use":
                tool_use_id = _text(block.get("id"))
                data = {**common, "tool_name": _text(block.get("name")) or "unknown",
                        "tool_input": block.get("input") if isinstance(block.get("input"), dict) else {},
                        "tool_use_id": tool_use_id}
                self.canonical("PreToolUse", self.base._capped_copy(data), correlation_id=tool_use_id)
            elif isinstance(kind, str):
                self.meta(f"assistant:{kind}", self.base._capped_copy({**common, "block": block}))

    def user(self, payload: dict[str, Any]) -> None:
        message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
        blocks = message.get("content")
        extra: dict[str, Any] = {}
        for key in ("subagent_type", "task_description"):
            if isinstance(payload.get(key), str):
                extra[key] = payload[key]
        if isinstance(blocks, str):
            blocks = [{"type": "text", "text": blocks}]
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"] if isinstance(blocks, list) else []
        for block in blocks if isinstance(blocks, list) else []:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "tool_result":
                tool_use_id = _text(block.get("tool_use_id"))
                failed = block.get("is_error") is True
                response = payload.get("tool_use_result") if len(results) == 1 else None
                if response is None:
                    response = {"content": block.get("content")}
                data: dict[str, Any] = {**extra, "tool_use_id": tool_use_id, "tool_response": response}
                if failed:
                    data["error"] = _block_text(block.get("content")) or "failed"
                data = self.base._capped_copy(data)
                self.canonical("PostToolUseFailure" if failed else "PostToolUse", data, correlation_id=tool_use_id)
            elif kind == "text" and isinstance(block.get("text"), str):
                if self.parent is None:
                    self.add("UserPromptSubmit", PROMPT, self.base._capped_copy({**extra, "prompt": block["text"]}))
                else:  # the prompt a subagent was given (its delegation already holds it)
                    self.meta("SubagentPrompt", self.base._capped_copy({**extra, "prompt": block["text"]}))

    def result(self, payload: dict[str, Any]) -> None:
        data: dict[str, Any] = {k: payload[k] for k in RESULT_FIELDS if k in payload}
        if isinstance(payload.get("result"), str):
            data["response"] = payload["result"]
        data["is_error"] = payload.get("is_error") is True
        run = payload.get("aggregate_run")
        if isinstance(run, dict):  # `--output-format json`: the run's only line
            data["aggregate_run"] = run
            if isinstance(run.get("prompt"), str) and run["prompt"] and self.parent is None:
                self.add("UserPromptSubmit", PROMPT, {"prompt": run["prompt"], "source": "argv"})
        data = self.base._capped_copy(data)
        if self.parent is not None:  # a subagent's sidechain result: it does not end the run
            self.meta("SubagentResult", data)
            return
        self.add("Result", RESPONSE, data)

    def run_exit(self, payload: dict[str, Any]) -> None:
        data = self.base._capped_copy(_strip(payload))
        data.setdefault("reason", "process_exit")
        self.meta("SessionEnd", data)
