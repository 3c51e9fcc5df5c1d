"""Claude Code session transcripts (``~/.claude/projects/<encoded-cwd>/<session_id>.jsonl``) -> SessionEvents.

This module knows the transcript line format (FORMATS.md section 1.6: ``parentUuid,
isSidechain, userType, cwd, sessionId, version, gitBranch, type, message, uuid,
timestamp, requestId, toolUseResult`` plus ``summary`` / ``queue-operation`` / other
rows) and nothing about the store. Each line becomes the *hook-shaped* payload the
same activity would have produced live (``UserPromptSubmit``, ``PreToolUse`` /
``PostToolUse`` / ``PostToolUseFailure`` with ``tool_use_id``, ``SubagentStart`` /
``SubagentStop`` for Task/Agent delegations ...) and goes through ``normalize``, so
imported events mean exactly what live ones mean.

Files are read line by line (never whole), so memory follows the events a session
holds (strings capped at 64 KiB by ``normalize``), not the size of the file.

Subagents come in three layouts, all handled:
* 2026: ``<session_id>/subagents/agent-<agent_id>.jsonl`` beside the session file;
* 2025: ``agent-<agent_id>.jsonl`` beside the session files (lines name the parent ``sessionId``);
* older builds: ``isSidechain: true`` lines inside the session file itself (no agent id:
  chains are followed by ``parentUuid`` and matched to their Task call by prompt).
A subagent is tied to its delegation by the Task result's ``agentId`` (or, failing
that, by its first prompt being the Task's prompt); its tool events carry its
``agent_id`` / ``agent_type``, framed by a ``SubagentStart`` right after the Task call
and a ``SubagentStop`` right before the Task's result, as the hooks fire them.

Event ids are stable (``tx-<line uuid>[-<block>]``), so importing a file twice yields
the same events.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from .errors import RejectedEvent
from .model import DELEGATION_TOOLS, RESPONSE, SessionEvent
from .normalize import normalize
from .timeutil import UTC, format_timestamp, parse_timestamp

SOURCE = "transcript"
ASSISTANT_MESSAGE = "AssistantMessage"  # an assistant text that is not the session's last word
SUBAGENT_PROMPT = "SubagentPrompt"  # a subagent's first user line: its Task prompt
BAD_LINES_KEPT = 20  # locations of corrupt lines remembered per import (the rest are counted)
READ_CHUNK = 1 << 20

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class BadLine:
    """A line that could not be read, where it is and why."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class ReadStats:
    """What reading transcripts met: lines, corrupt ones (first few located), bytes."""

    lines: int = 0
    bad_lines: int = 0
    bad: list[BadLine] = field(default_factory=list)
    bytes_read: int = 0

    def note_bad(self, path: Path, line: int, reason: str) -> None:
        self.bad_lines += 1
        if len(self.bad) < BAD_LINES_KEPT:
            self.bad.append(BadLine(path, line, reason))


@dataclass
class _TaskCall:
    """A Task/Agent tool call in the main transcript."""

    tool_use_id: str
    subagent_type: str | None
    prompt: str | None
    pre_index: int
    pre_timestamp: str
    post_index: int | None = None
    post_timestamp: str | None = None
    agent_id: str | None = None  # from the result's toolUseResult.agentId


@dataclass
class _AgentRun:
    """One subagent's own lines (a sidechain), wherever they were found."""

    agent_id: str
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    first_prompt: str | None = None
    last_text: str | None = None
    events: list[SessionEvent] = field(default_factory=list)


@dataclass
class SessionTranscript:
    """Every event of one session read from its transcript files, in time order."""

    session_id: str
    events: list[SessionEvent]
    cwd: str | None = None
    git_branch: str | None = None
    version: str | None = None
    title: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


def iter_lines(path: Path, stats: ReadStats, progress: ProgressFn | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of a file, read in 1 MiB chunks; blank lines skipped.

    Progress is reported in bytes as each chunk is consumed.
    """
    number = 0
    with open(path, "rb") as handle:
        pending = b""
        while True:
            chunk = handle.read(READ_CHUNK)
            if not chunk:
                break
            stats.bytes_read += len(chunk)
            if progress is not None:
                progress(len(chunk))
            pending += chunk
            lines = pending.split(b"\n")
            pending = lines.pop()
            for raw in lines:
                number += 1
                if raw.strip():
                    yield number, raw
            del lines
        if pending.strip():
            number += 1
            yield number, pending


def peek_session_id(path: Path, max_lines: int = 20) -> str | None:
    """The ``sessionId`` named by a file's first lines (a 2025 ``agent-*.jsonl`` names its parent)."""
    try:
        with open(path, "rb") as handle:
            for _ in range(max_lines):
                raw = handle.readline(4 << 20)
                if not raw:
                    return None
                try:
                    line = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(line, dict) and isinstance(line.get("sessionId"), str) and line["sessionId"]:
                    return line["sessionId"]
    except OSError:
        return None
    return None


def agent_id_from_name(path: Path) -> str | None:
    """``agent-<id>.jsonl`` -> ``<id>``."""
    stem = path.name[: -len(".jsonl")] if path.name.endswith(".jsonl") else path.stem
    return stem[len("agent-"):] or None if stem.startswith("agent-") else None


def _text_of(content: Any) -> str:
    """The text of a message content: a string, or the text blocks of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def _line_hash(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=10).hexdigest()


class _FileReader:
    """Turns the lines of one transcript file into events (hook-shaped payloads through normalize)."""

    def __init__(self, path: Path, session_hint: str, stats: ReadStats, *, agent_id: str | None = None) -> None:
        self.path = path
        self.session_hint = session_hint
        self.stats = stats
        self.file_agent_id = agent_id  # set for a subagent's own file
        self.events: list[SessionEvent] = []
        self.tool_uses: dict[str, tuple[str, Any]] = {}  # open tool_use id -> (name, input)
        self.tasks: dict[str, _TaskCall] = {}
        self.runs: dict[str, _AgentRun] = {}
        self.chain_root: dict[str, str] = {}  # sidechain uuid -> its chain's agent id (old layout)
        self.usage: dict[str, dict[str, Any]] = {}  # message id -> usage (split messages repeat it)
        self.last_timestamp: str | None = None
        self.untimed: list[SessionEvent] = []  # events seen before any timestamp (summary rows)
        self.session_ids: set[str] = set()
        self.cwd: str | None = None
        self.git_branch: str | None = None
        self.version: str | None = None
        self.title: str | None = None
        self.last_main_text: tuple[int, str] | None = None  # (event index, text)

    # -- reading ------------------------------------------------------------------------

    def read(self, progress: ProgressFn | None = None) -> None:
        for number, raw in iter_lines(self.path, self.stats, progress):
            self.stats.lines += 1
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                self.stats.note_bad(self.path, number, f"not JSON ({str(error).splitlines()[0][:80]})")
                continue
            if not isinstance(line, dict):
                self.stats.note_bad(self.path, number, f"not a JSON object ({type(line).__name__})")
                continue
            try:
                self._line(line, raw)
            except RejectedEvent as rejection:
                self.stats.note_bad(self.path, number, f"unusable line ({rejection})")
            except (TypeError, ValueError, AttributeError, KeyError) as error:
                self.stats.note_bad(self.path, number, f"unexpected shape ({type(error).__name__}: {error})")
        for event in self.untimed:  # a file with no timestamp at all: its own mtime
            event.timestamp = self.last_timestamp or _mtime(self.path)

    def _line(self, line: dict[str, Any], raw: bytes) -> None:
        kind = line.get("type")
        kind = kind if isinstance(kind, str) and kind else "unknown"
        session_id = line.get("sessionId") if isinstance(line.get("sessionId"), str) and line["sessionId"] else self.session_hint
        self.session_ids.add(session_id)
        timestamp = line.get("timestamp") if parse_timestamp(line.get("timestamp")) is not None else None
        if timestamp is not None:
            self.last_timestamp = timestamp
            if self.untimed:
                for event in self.untimed:
                    event.timestamp = format_timestamp(parse_timestamp(timestamp) or datetime.now(UTC))
                self.untimed.clear()
        uuid = line.get("uuid") if isinstance(line.get("uuid"), str) and line["uuid"] else None
        base_id = f"tx-{uuid}" if uuid else f"tx-h{_line_hash(raw)}"
        self._context(line)
        agent_id = self._agent_of(line, uuid)
        ctx = _Ctx(session_id, timestamp or self.last_timestamp, base_id, agent_id, line)
        if kind == "user" and isinstance(line.get("message"), dict):
            self._user(ctx)
        elif kind == "assistant" and isinstance(line.get("message"), dict):
            self._assistant(ctx)
        elif kind == "summary":
            summary = line.get("summary")
            if isinstance(summary, str) and summary:
                self.title = summary
            self._meta(ctx, "Summary")
        elif kind == "system" and line.get("subtype") == "compact_boundary":
            meta = line.get("compactMetadata") if isinstance(line.get("compactMetadata"), dict) else {}
            self._emit(ctx, "PreCompact", {"trigger": meta.get("trigger"), "pre_tokens": meta.get("preTokens"),
                                           "content": line.get("content")})
        else:
            self._meta(ctx, "System" if kind == "system" else kind)

    def _context(self, line: dict[str, Any]) -> None:
        if self.cwd is None and isinstance(line.get("cwd"), str):
            self.cwd = line["cwd"]
        if isinstance(line.get("gitBranch"), str) and line["gitBranch"]:
            self.git_branch = line["gitBranch"]
        if isinstance(line.get("version"), str):
            self.version = line["version"]

    def _agent_of(self, line: dict[str, Any], uuid: str | None) -> str | None:
        """The subagent a line belongs to (None: the main agent)."""
        if self.file_agent_id is not None:
            agent = line.get("agentId")
            return agent if isinstance(agent, str) and agent else self.file_agent_id
        if line.get("isSidechain") is not True:
            return None
        agent = line.get("agentId")
        if not (isinstance(agent, str) and agent):
            parent = line.get("parentUuid")
            agent = self.chain_root.get(parent) if isinstance(parent, str) else None
            if agent is None:
                agent = f"sidechain-{(uuid or _line_hash(orjson.dumps(line)))[:12]}"
        if uuid:
            self.chain_root[uuid] = agent
        return agent

    # -- line kinds ---------------------------------------------------------------------

    def _user(self, ctx: "_Ctx") -> None:
        message = ctx.line["message"]
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        for index, block in enumerate(results):
            self._tool_result(ctx, block, index, with_response=len(results) == 1)
        text = _text_of(content)
        if not text.strip():
            if not results:
                self._meta(ctx, "user")
            return
        if ctx.line.get("isMeta") is True:
            self._emit(ctx, "UserMeta", {"message": text}, block=len(results))
            return
        if ctx.agent_id is not None:
            run = self._run(ctx.agent_id, ctx.timestamp)
            if run.first_prompt is None:
                run.first_prompt = text
                self._emit(ctx, SUBAGENT_PROMPT, {"message": text}, block=len(results))
                return
        if text.startswith("[Request interrupted by user"):
            self._emit(ctx, "Interrupted", {"message": text}, block=len(results))
            return
        self._emit(ctx, "UserPromptSubmit", {"prompt": text}, block=len(results))

    def _tool_result(self, ctx: "_Ctx", block: dict[str, Any], index: int, *, with_response: bool) -> None:
        tool_use_id = block.get("tool_use_id") if isinstance(block.get("tool_use_id"), str) else None
        name, tool_input = self.tool_uses.pop(tool_use_id, (None, None)) if tool_use_id else (None, None)
        result = ctx.line.get("toolUseResult") if with_response else None
        failed = block.get("is_error") is True
        payload: dict[str, Any] = {"tool_use_id": tool_use_id}
        if name is not None:
            payload["tool_name"] = name
            payload["tool_input"] = tool_input
        if failed:
            payload["error"] = _text_of(block.get("content")) or (result if isinstance(result, str) else "failed")
        elif isinstance(result, dict):
            payload["tool_response"] = result  # the structured result, as the PostToolUse hook carries it
        else:
            payload["tool_response"] = {"content": block.get("content")}
        event = self._emit(ctx, "PostToolUseFailure" if failed else "PostToolUse", payload, block=index)
        task = self.tasks.get(tool_use_id or "")
        if task is not None and event is not None:
            task.post_index = len(self.events) - 1
            task.post_timestamp = event.timestamp
            agent = result.get("agentId") if isinstance(result, dict) else None
            if isinstance(agent, str) and agent:
                task.agent_id = agent

    def _assistant(self, ctx: "_Ctx") -> None:
        message = ctx.line["message"]
        message_id = message.get("id") if isinstance(message.get("id"), str) else None
        usage = message.get("usage")
        if message_id and isinstance(usage, dict):
            self.usage[message_id] = usage
        model = message.get("model") if isinstance(message.get("model"), str) else None
        content = message.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}] if isinstance(content, str) else []
        for index, block in enumerate(blocks):
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "tool_use":
                self._tool_use(ctx, block, index)
            elif kind == "text" and isinstance(block.get("text"), str) and block["text"].strip():
                data = {"response": block["text"], "model": model, "message_id": message_id}
                event = self._emit(ctx, ASSISTANT_MESSAGE, data, block=index)
                if event is not None:
                    event.category = RESPONSE
                    if ctx.agent_id is None:
                        self.last_main_text = (len(self.events) - 1, block["text"])
                    else:
                        self._run(ctx.agent_id, ctx.timestamp).last_text = block["text"]
            elif kind in ("thinking", "redacted_thinking"):
                self._emit(ctx, "AssistantThinking", {"thinking": block.get("thinking"), "model": model}, block=index)
            else:
                self._emit(ctx, f"assistant:{kind}", {"block": block}, block=index)
        if not blocks:
            self._meta(ctx, "assistant")

    def _tool_use(self, ctx: "_Ctx", block: dict[str, Any], index: int) -> None:
        tool_use_id = block.get("id") if isinstance(block.get("id"), str) else None
        name = block.get("name") if isinstance(block.get("name"), str) else "unknown"
        tool_input = block.get("input") if isinstance(block.get("input"), dict) else {}
        if tool_use_id:
            self.tool_uses[tool_use_id] = (name, tool_input)
        event = self._emit(ctx, "PreToolUse", {"tool_name": name, "tool_input": tool_input, "tool_use_id": tool_use_id},
                           block=index)
        if event is not None and name in DELEGATION_TOOLS and tool_use_id and ctx.agent_id is None:
            prompt = tool_input.get("prompt")
            kind = tool_input.get("subagent_type")
            self.tasks[tool_use_id] = _TaskCall(
                tool_use_id,
                kind if isinstance(kind, str) and kind else None,
                prompt if isinstance(prompt, str) else None,
                len(self.events) - 1,
                event.timestamp,
            )

    def _meta(self, ctx: "_Ctx", event_type: str) -> None:
        data = {k: v for k, v in ctx.line.items() if k not in ("sessionId", "type", "timestamp")}
        self._emit(ctx, event_type, data)

    # -- events -------------------------------------------------------------------------

    def _emit(self, ctx: "_Ctx", event_type: str, fields: dict[str, Any], *, block: int = 0) -> SessionEvent | None:
        payload: dict[str, Any] = {
            "hook_event_name": event_type,
            "session_id": ctx.session_id,
            "event_id": ctx.base_id if block == 0 else f"{ctx.base_id}-{block}",
            **{k: v for k, v in fields.items() if v is not None},
        }
        if ctx.timestamp is not None:
            payload["timestamp"] = ctx.timestamp
        if self.cwd is not None:
            payload.setdefault("cwd", ctx.line.get("cwd") if isinstance(ctx.line.get("cwd"), str) else self.cwd)
        if self.git_branch is not None:
            payload.setdefault("git_branch", self.git_branch)
        if ctx.agent_id is not None:
            payload["agent_id"] = ctx.agent_id
        uuid = ctx.line.get("uuid")
        if isinstance(uuid, str):
            payload.setdefault("transcript_uuid", uuid)
        event = normalize(payload)
        if ctx.timestamp is None:
            self.untimed.append(event)
        if ctx.agent_id is not None:
            run = self._run(ctx.agent_id, ctx.timestamp)
            run.events.append(event)
            if ctx.timestamp is not None:
                run.last_timestamp = event.timestamp
            if self.file_agent_id is None:
                self.events.append(event)  # an inline sidechain stays in file order
        else:
            self.events.append(event)
        return event

    def _run(self, agent_id: str, timestamp: str | None) -> _AgentRun:
        run = self.runs.get(agent_id)
        if run is None:
            run = self.runs[agent_id] = _AgentRun(agent_id)
        if run.first_timestamp is None and timestamp is not None:
            run.first_timestamp = format_timestamp(parse_timestamp(timestamp) or datetime.now(UTC))
        return run


@dataclass
class _Ctx:
    session_id: str
    timestamp: str | None
    base_id: str
    agent_id: str | None
    line: dict[str, Any]


def _mtime(path: Path) -> str:
    try:
        return format_timestamp(datetime.fromtimestamp(os.stat(path).st_mtime, UTC))
    except OSError:
        return format_timestamp(datetime.now(UTC))


def _moment(event: SessionEvent) -> datetime:
    return parse_timestamp(event.timestamp) or datetime.min.replace(tzinfo=UTC)


def read_session(
    main: Path | None,
    agent_files: list[Path],
    session_hint: str,
    stats: ReadStats,
    progress: ProgressFn | None = None,
) -> list[SessionTranscript]:
    """Read one session's transcript and its subagents' into time-ordered events.

    Usually one session comes back; a file whose lines name several session ids
    gives one ``SessionTranscript`` per id. Corrupt lines are counted in ``stats``.
    """
    main_reader: _FileReader | None = None
    if main is not None:
        main_reader = _FileReader(main, session_hint, stats)
        main_reader.read(progress)
    agent_readers: list[_FileReader] = []
    for path in agent_files:
        reader = _FileReader(path, session_hint, stats, agent_id=agent_id_from_name(path) or path.stem)
        reader.read(progress)
        agent_readers.append(reader)

    events = main_reader.events if main_reader is not None else []
    tasks = main_reader.tasks if main_reader is not None else {}
    runs: dict[str, _AgentRun] = dict(main_reader.runs) if main_reader is not None else {}
    loose: list[SessionEvent] = []  # subagent files' events, merged by time below
    for reader in agent_readers:
        for agent_id, run in reader.runs.items():
            runs.setdefault(agent_id, run)
            loose.extend(run.events)

    inserts_after: dict[int, list[SessionEvent]] = {}
    inserts_before: dict[int, list[SessionEvent]] = {}
    tasks_left = [t for t in tasks.values()]
    for agent_id, run in runs.items():
        task = next((t for t in tasks_left if t.agent_id == agent_id), None)
        if task is None and run.first_prompt is not None:
            task = next((t for t in tasks_left if t.agent_id is None and t.prompt == run.first_prompt), None)
        if task is not None:
            tasks_left.remove(task)
        agent_type = task.subagent_type if task is not None else None
        for event in run.events:
            if agent_type and "agent_type" not in event.data:
                event.data["agent_type"] = agent_type
        session_id = run.events[0].session_id if run.events else session_hint
        start = _frame(session_id, "SubagentStart", agent_id, agent_type,
                       task.pre_timestamp if task is not None else run.first_timestamp, None)
        stop_time = task.post_timestamp if task is not None and task.post_timestamp else run.last_timestamp
        stop = _frame(session_id, "SubagentStop", agent_id, agent_type, stop_time, run.last_text)
        if task is not None:
            inserts_after.setdefault(task.pre_index, []).append(start)
            if task.post_index is not None:
                inserts_before.setdefault(task.post_index, []).append(stop)
            else:
                loose.append(stop)
        else:
            loose.insert(0, start)
            loose.append(stop)

    ordered: list[SessionEvent] = []
    for index, event in enumerate(events):
        ordered.extend(inserts_before.get(index, ()))
        ordered.append(event)
        ordered.extend(inserts_after.get(index, ()))
    ordered.extend(loose)
    ordered.sort(key=_moment)  # stable: file order breaks ties, so frames stay beside their call

    readers = ([main_reader] if main_reader is not None else []) + agent_readers
    last_text = main_reader.last_main_text if main_reader is not None else None
    if last_text is not None:  # the session's last word is its response (one turn-end, not one per message)
        event = events[last_text[0]]
        event.event_type = "AssistantResponse"
    usage_by_message: dict[str, dict[str, Any]] = {}
    for reader in readers:
        usage_by_message.update(reader.usage)
    totals = _usage_totals(usage_by_message.values())

    by_session: dict[str, list[SessionEvent]] = {}
    for event in ordered:
        by_session.setdefault(event.session_id, []).append(event)
    owner = session_hint if session_hint in by_session else next(iter(by_session), None)
    if totals and owner is not None:
        owner_events = by_session[owner]
        owner_events.append(_usage_event(owner, owner_events[-1].timestamp, totals, len(usage_by_message)))
    result = []
    for session_id, session_events in by_session.items():
        first = main_reader or (agent_readers[0] if agent_readers else None)
        result.append(
            SessionTranscript(
                session_id=session_id,
                events=session_events,
                cwd=first.cwd if first else None,
                git_branch=first.git_branch if first else None,
                version=first.version if first else None,
                title=first.title if first else None,
                usage=totals,
            )
        )
    return result


_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _usage_totals(usages: Any) -> dict[str, int]:
    totals = {key: 0 for key in _USAGE_KEYS}
    seen = False
    for usage in usages:
        for key in _USAGE_KEYS:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                totals[key] += value
                seen = True
    return totals if seen else {}


def _usage_event(session_id: str, timestamp: str, totals: dict[str, int], messages: int) -> SessionEvent:
    """The session's token usage, summed over its API messages (each counted once)."""
    return normalize({
        "hook_event_name": "token_usage_updated",
        "session_id": session_id,
        "event_id": f"tx-usage-{session_id}-{messages}",
        "timestamp": timestamp,
        "messages": messages,
        **totals,
    })


def _frame(
    session_id: str, event_type: str, agent_id: str, agent_type: str | None, timestamp: str | None, response: str | None
) -> SessionEvent:
    """A SubagentStart / SubagentStop as the hooks send it (the transcript has no line for them)."""
    payload: dict[str, Any] = {
        "hook_event_name": event_type,
        "session_id": session_id,
        "event_id": f"tx-{event_type}-{agent_id}",
        "agent_id": agent_id,
        "from_transcript": True,
    }
    if agent_type:
        payload["agent_type"] = agent_type
    if timestamp is not None:
        payload["timestamp"] = timestamp
    if response:
        payload["last_assistant_message"] = response
    return normalize(payload)
