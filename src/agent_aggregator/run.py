"""``aggregate run -- CMD ...``: wrap a headless Claude Code run and record it as a session.

The command (``claude -p PROMPT --output-format stream-json --verbose``, typically)
runs as a child process with our stdin and stderr; its stdout is read line by line,
passed through to ours unchanged (or, with ``--quiet``, replaced by a compact live
summary on stderr), and every JSON line is fed to the aggregator, so the session is
live in the store and in ``aggregate tui`` while the command runs:

* where the events go: when no aggregator owns the activity directory, this process
  becomes its writer for the run (journal, snapshots, final file) and serves the hub
  (status file included) like ``aggregate start``, each line relayed through it, so an
  ``aggregate tui`` opened meanwhile follows the run live; when one does
  (``aggregate start`` or ``aggregate tui``), each line is POSTed to its hub
  (``POST /events``), falling back to the hook spool, which that writer drains;
* the first JSON line of a session (``system/init``, or the lone ``result`` of
  ``--output-format json``) is given an ``aggregate_run`` block: pid, command line,
  prompt, host. It marks the session ``metadata.source = "claude -p"`` and lets the
  TUI keep it LIVE exactly while that process is alive;
* when the child exits, a ``run_exit`` line per session completes it;
* SIGINT / SIGTERM / SIGHUP received here are forwarded to the child (not a Ctrl+C the
  terminal already sent to the child as well), and its exit code is returned (128 + N
  when a signal N ended it).

The stream's meaning (cost, turns, tool calls, subagents, ``is_error``) is
``normalize_streamjson``'s; this module only moves lines.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import signal
import socket
import sys
import threading
import uuid
from dataclasses import dataclass, field, replace
from typing import IO, Any, Sequence

from . import jsonio
from .config import SOCKETIO, Config, SourceSpec
from .describe import format_cost
from .errors import AggregatorError, ConnectionError, StoreLockedError
from .timeutil import format_duration, format_timestamp, now_utc

log = logging.getLogger("agent_aggregator.run")

LINE_LIMIT = 64 * 1024 * 1024  # one stream-json line can hold a whole file a tool read
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
HUB_TIMEOUT = 2.0
# claude's options that take a value: the prompt is the first argument that is neither an option nor one of these values.
_VALUE_OPTIONS = frozenset(
    {"--output-format", "--input-format", "--model", "--fallback-model", "--max-turns", "--max-budget-usd",
     "--permission-mode", "--permission-prompt-tool", "--append-system-prompt", "--system-prompt",
     "--system-prompt-file", "--resume", "-r", "--session-id", "--mcp-config", "--settings", "--add-dir",
     "--agents", "--agent", "--json-schema", "--allowedTools", "--allowed-tools", "--disallowedTools",
     "--disallowed-tools", "--tools", "--setting-sources", "--plugin-dir", "--betas", "--debug-file"}
)


# --- the command line ------------------------------------------------------------------------


def prompt_of(argv: Sequence[str]) -> str | None:
    """The prompt given on a ``claude`` command line (None when it comes on stdin)."""
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
            continue
        if arg == "--":
            continue
        if arg.startswith("-"):
            if "=" not in arg and arg in _VALUE_OPTIONS:
                skip = True
            continue
        return arg
    return None


def output_format_of(argv: Sequence[str]) -> str | None:
    """The ``--output-format`` a command line asks for, if any."""
    for index, arg in enumerate(argv):
        if arg == "--output-format" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--output-format="):
            return arg.split("=", 1)[1]
    return None


# --- where events go ---------------------------------------------------------------------------


SPOOL_DRAIN_INTERVAL = 1.0  # seconds: how often a writing run takes in what other runs spooled


class LocalSink:
    """This process writes the activity directory for the run (nobody else owns it).

    It also drains the hook spool about once a second and when it ends: another
    ``aggregate run`` started meanwhile in the same directory finds no hub to post
    to and spools its lines, which this writer records, in order."""

    def __init__(self, aggregator: Any) -> None:
        self.aggregator = aggregator
        self.where = f"saved to {aggregator.save_dir}"
        runtime = getattr(aggregator, "runtime", None)
        self.hub = runtime.hub if runtime is not None else None  # serving: followers hear every line
        self._loop = runtime._loop if runtime is not None else None
        if self.hub is not None:
            self.where += f" (hub on {runtime._hub_address()})"

    @property
    def drains(self) -> bool:
        """Whether this sink must drain the spool itself (a serving hub drains it already)."""
        return self.hub is None

    def feed(self, payload: dict[str, Any]) -> None:
        if self.hub is not None and self._loop is not None and not self._loop.is_closed():
            from .sources.hub import DEFAULT_EVENT

            try:  # relayed like a POST /events: the aggregator (hub listener) and connected TUIs get it
                future = asyncio.run_coroutine_threadsafe(self.hub.relay(DEFAULT_EVENT, payload), self._loop)
                future.result(timeout=HUB_TIMEOUT)
                return
            except Exception:  # noqa: BLE001 - record it directly (deduplicated by event id if it got there)
                log.debug("relaying a line through the run's hub failed", exc_info=True)
        self.aggregator.handle_event(payload)

    def drain(self) -> None:
        from .sources.hub import feed_spool

        feed_spool(self.aggregator.handle_event)

    def close(self) -> None:
        if self.drains:
            self.drain()
        self.aggregator.stop()


class HubSink:
    """The directory's writer is another process: POST each line to its hub, in order, from a
    thread (the child's output is never held up); what the hub does not take is spooled."""

    def __init__(self, host: str, port: int, pid: int | None, token: str | None = None,
                 config: Config | None = None, *, serving: bool = True) -> None:
        self.host, self.port, self.token, self.config = host, port, token, config
        self.serving = serving  # False: the writer is a client of another server: spool straight away
        self.where = f"sent to the aggregator with pid {pid or '?'} ({host}:{port})"
        self.spooled = 0
        self.local: LocalSink | None = None  # the writer went away and this run took the directory over
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._deliver, name="aggregate-run-post", daemon=True)
        self._thread.start()

    def feed(self, payload: dict[str, Any]) -> None:
        self._queue.put(payload)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self.local is not None:
            self.local.close()

    def _take_over(self) -> LocalSink | None:
        """The hub did not answer: when its writer is gone, this run becomes the writer
        (what was spooled meanwhile is drained first, so the order holds)."""
        if self.config is None:
            return None
        from .aggregator import EventAggregator

        aggregator = EventAggregator(config=self.config)
        try:
            aggregator.start(connect=False)
        except StoreLockedError:
            return None
        local = LocalSink(aggregator)
        local.drain()
        self.where = local.where + " (the aggregator it was sending to went away)"
        return local

    def _deliver(self) -> None:
        from .hook import post
        from .sources import spool

        hub_down = not self.serving
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            if self.local is not None:
                self.local.feed(payload)
                continue
            body = jsonio.dumps(payload)
            if not hub_down and post(self.host, self.port, "/events", body, timeout=HUB_TIMEOUT, token=self.token):
                continue
            hub_down = True  # keep the order: once one line is spooled, the rest follow it there
            self.local = self._take_over()
            if self.local is not None:
                self.local.feed(payload)
                continue
            try:
                from .redact import default_redactor  # the spool is disk: redacted first, as the hook does

                spool.append("/events", default_redactor().redact_payload(payload))
                self.spooled += 1
            except (OSError, TypeError, ValueError) as error:
                log.warning("cannot spool an event of the run: %s", error)


def open_sink(config: Config) -> LocalSink | HubSink:
    """Be the directory's writer for this run, or send to the one that is."""
    from .aggregator import EventAggregator
    from .runtime import read_status_file

    hub_config = replace(config, sources=(SourceSpec(SOCKETIO),))  # the hub only: no SSE streams for a run
    aggregator = EventAggregator(config=hub_config)
    try:
        aggregator.start(connect=True, serve=True)  # the writer serves the hub, as `aggregate start` does
        return LocalSink(aggregator)
    except StoreLockedError:
        pass
    except ConnectionError as error:  # the port is taken (or not ours to serve): write without a hub
        log.warning("aggregate run: no hub for followers (%s); recording to the directory only", error)
        aggregator = EventAggregator(config=config)
        try:
            aggregator.start(connect=False)
            return LocalSink(aggregator)
        except StoreLockedError:
            pass
    status = read_status_file(config.activity_directory) or {}
    host = status.get("dashboard_host") if isinstance(status.get("dashboard_host"), str) else config.dashboard_host
    port = status.get("dashboard_port") if isinstance(status.get("dashboard_port"), int) else config.dashboard_port
    pid = status.get("pid") if isinstance(status.get("pid"), int) else aggregator.store.writer_pid()
    # A writer that listens to another server (claude-mpm's monitor) has no /events of its own:
    # the spool, which it drains every 2 s, reaches it instead.
    serving = status.get("mode") in (None, "serve")
    return HubSink(host, port, pid, getattr(config, "token", None), config, serving=serving)


# --- what the run did, for the summary line --------------------------------------------------------


@dataclass
class RunSummary:
    """Counts kept from the normalized events, for ``--quiet`` and the closing line."""

    session_ids: list[str] = field(default_factory=list)
    model: str | None = None
    tool_calls: int = 0
    failed_tools: int = 0
    subagents: int = 0
    last_tool: str | None = None
    result: dict[str, Any] | None = None
    lines: int = 0
    bad_lines: int = 0
    message_tokens: dict[str, int] = field(default_factory=dict)  # before the result: per message id, last seen

    def note(self, payload: dict[str, Any]) -> None:
        from .errors import RejectedEvent
        from .normalize import normalize_all

        try:
            events = normalize_all(payload)
        except (RejectedEvent, ValueError):
            return
        for event in events:
            if event.session_id not in self.session_ids:
                self.session_ids.append(event.session_id)
            data = event.data
            if isinstance(data.get("message_usage"), dict) and isinstance(data.get("message_id"), str):
                from .model import total_tokens

                self.message_tokens[data["message_id"]] = total_tokens(data["message_usage"]) or 0
            if event.event_type == "SessionStart" and isinstance(data.get("model"), str):
                self.model = data["model"]
            elif event.event_type == "PreToolUse":
                self.tool_calls += 1
                self.last_tool = event.tool_name
                if event.category == "delegation":
                    self.subagents += 1
            elif event.event_type == "PostToolUseFailure":
                self.failed_tools += 1
            elif event.event_type == "Result":
                self.result = data

    def line(self) -> str:
        """One line: "861a7a4f · claude-opus-5 · 4 tool calls (1 failed), 1 subagent · success · 6 turns · $0.1351 est. ..."."""
        parts = [self.session_ids[0][:8] if self.session_ids else "no session yet"]
        if self.model:
            parts.append(self.model)
        calls = f"{self.tool_calls} tool call{'s' if self.tool_calls != 1 else ''}"
        if self.failed_tools:
            calls += f" ({self.failed_tools} failed)"
        if self.subagents:
            calls += f", {self.subagents} subagent{'s' if self.subagents != 1 else ''}"
        parts.append(calls)
        result = self.result
        if result is None:
            if self.message_tokens:
                parts.append(f"{sum(self.message_tokens.values()):,} tokens so far")
            if self.last_tool:
                parts.append(f"last: {self.last_tool}")
            return " · ".join(parts)
        parts.append("error" if result.get("is_error") else "success")
        if isinstance(result.get("num_turns"), int):
            parts.append(f"{result['num_turns']} turn{'s' if result['num_turns'] != 1 else ''}")
        if isinstance(result.get("total_cost_usd"), (int, float)):
            parts.append(f"{format_cost(result['total_cost_usd'])} est.")
        if isinstance(result.get("duration_ms"), (int, float)):
            api = result.get("duration_api_ms")
            api_text = f" (API {format_duration(int(api))})" if isinstance(api, (int, float)) else ""
            parts.append(f"{format_duration(int(result['duration_ms']))}{api_text}")
        from .model import total_tokens

        tokens = total_tokens(result.get("usage"))
        if tokens is not None:
            parts.append(f"{tokens:,} tokens")
        return " · ".join(parts)


# --- the run -----------------------------------------------------------------------------------------


def run_command(
    argv: Sequence[str],
    config: Config,
    *,
    quiet: bool = False,
    stdout: IO[bytes] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run ``argv`` to completion, recording its stream-json output; returns its exit code."""
    if not argv:
        raise AggregatorError("aggregate run: no command given (usage: aggregate run [--quiet] -- claude -p ...)")
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr
    sink = open_sink(config)
    summary = RunSummary()
    try:
        code = asyncio.run(_run(list(argv), sink, summary, quiet=quiet, out=out, err=err))
    finally:
        sink.close()
    where = sink.where
    if isinstance(sink, HubSink) and sink.spooled:
        where += f"; {sink.spooled} line(s) spooled: the hub did not answer"
    if summary.session_ids:
        err.write(f"aggregate run: {summary.line()} · {where}\n")
    else:
        err.write(f"aggregate run: no stream-json session in the output (exit code {code});"
                  " use --output-format stream-json --verbose (or json)\n")
    err.flush()
    return code


async def _run(argv: list[str], sink: LocalSink | HubSink, summary: RunSummary, *, quiet: bool,
               out: IO[bytes], err: IO[str]) -> int:
    loop = asyncio.get_running_loop()
    forwarder = _SignalForwarder(loop)  # before the child exists: a signal that comes while it starts waits for it
    try:
        child = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, limit=LINE_LIMIT)
    except FileNotFoundError:
        forwarder.remove()
        raise AggregatorError(f"{argv[0]}: command not found") from None
    except PermissionError:
        forwarder.remove()
        raise AggregatorError(f"{argv[0]}: permission denied") from None
    forwarder.attach(child)
    live = _LiveLine(err) if quiet and err.isatty() else None
    run_info = {"pid": child.pid, "command": list(argv), "prompt": prompt_of(argv), "hostname": socket.gethostname(),
                "started_at": format_timestamp(now_utc())}
    feeder = _Feeder(sink, summary, run_info)
    unparsed: list[bytes] = []
    tee = not quiet
    drainer = asyncio.create_task(_drain_every(sink)) if isinstance(sink, LocalSink) and sink.drains else None
    try:
        assert child.stdout is not None
        while True:
            try:
                raw = await child.stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):  # a line beyond LINE_LIMIT: pass it on, unrecorded
                raw = await child.stdout.read(LINE_LIMIT)
                summary.bad_lines += 1
            if not raw:
                break
            if tee:
                try:
                    out.write(raw)
                    out.flush()
                except (BrokenPipeError, ValueError):  # our reader went away (| head): keep recording
                    tee = False
            if not feeder.feed_line(raw) and raw.strip():
                unparsed.append(raw)
            if live is not None:
                live.show(summary.line())
        code = await child.wait()
    finally:
        if drainer is not None:
            drainer.cancel()
        forwarder.remove()
    if not summary.session_ids and unparsed:  # `--output-format json` printed over several lines
        feeder.feed_line(b"".join(unparsed))
    if live is not None:
        live.clear()
    if quiet and summary.result is not None and isinstance(summary.result.get("response"), str):
        try:
            out.write(summary.result["response"].encode("utf-8", "replace") + b"\n")  # the answer, without the stream
            out.flush()
        except (BrokenPipeError, ValueError):
            pass
    feeder.finish(code)
    return 128 - code if code < 0 else code


async def _drain_every(sink: LocalSink) -> None:
    """A writing run takes in, once a second, what runs that could not write spooled."""
    while True:
        await asyncio.sleep(SPOOL_DRAIN_INTERVAL)
        try:
            sink.drain()
        except Exception:  # noqa: BLE001 - recording must never break the user's run
            log.warning("could not drain the hook spool", exc_info=True)


class _Feeder:
    """Parses lines, stamps them, marks each session's first line with the run's details."""

    def __init__(self, sink: LocalSink | HubSink, summary: RunSummary, run_info: dict[str, Any]) -> None:
        self.sink = sink
        self.summary = summary
        self.run_info = run_info
        self.marked: set[str] = set()

    def feed_line(self, raw: bytes) -> bool:
        text = raw.strip()
        if not text.startswith(b"{"):
            return False
        try:
            payload = jsonio.loads(text)
        except ValueError:
            self.summary.bad_lines += 1
            return False
        if not isinstance(payload, dict):
            return False
        self.summary.lines += 1
        session_id = payload.get("session_id")
        opening = payload.get("type") == "result" or (payload.get("type") == "system" and payload.get("subtype") == "init")
        if opening and isinstance(session_id, str) and session_id and session_id not in self.marked:
            self.marked.add(session_id)  # its init line (or, with --output-format json, its result)
            payload["aggregate_run"] = self.run_info
        self._send(payload)
        return True

    def _send(self, payload: dict[str, Any]) -> None:
        payload.setdefault("event_id", uuid.uuid4().hex)
        payload.setdefault("timestamp", format_timestamp(now_utc()))
        self.summary.note(payload)
        try:
            self.sink.feed(payload)
        except Exception:  # noqa: BLE001 - recording must never break the user's run
            log.warning("could not record a line of the run", exc_info=True)

    def finish(self, code: int) -> None:
        for session_id in self.summary.session_ids:
            self._send({"type": "run_exit", "session_id": session_id, "exit_code": code,
                        "pid": self.run_info["pid"]})


class _SignalForwarder:
    """Ctrl+C and friends go to the child; we keep reading until it exits.

    Installed before the child is spawned: a signal that arrives in between is held and
    delivered as soon as the child exists, instead of killing this process with the
    child's output still unread (and its session unrecorded)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.child: asyncio.subprocess.Process | None = None
        self.pending: list[int] = []
        self.installed: list[int] = []
        for number in FORWARDED_SIGNALS:
            try:
                loop.add_signal_handler(number, self.forward, number)
                self.installed.append(number)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    def attach(self, child: asyncio.subprocess.Process) -> None:
        self.child = child
        pending, self.pending = self.pending, []
        for number in pending:
            self.forward(number, held=True)

    def forward(self, number: int, *, held: bool = False) -> None:
        """``held``: it came before the child existed, so no terminal gave the child a copy."""
        child = self.child
        if child is None:
            self.pending.append(number)
            return
        if not held and number == signal.SIGINT and _terminal_sent_it_too(child.pid):
            return  # Ctrl+C: the terminal signalled its whole foreground group, the child included
        if child.returncode is None:
            try:
                child.send_signal(number)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        for number in self.installed:
            self.loop.remove_signal_handler(number)
        self.installed = []


def _terminal_sent_it_too(child_pid: int) -> bool:
    """Whether a SIGINT here is (taken to be) Ctrl+C that the child got as well: our process
    group is our terminal's foreground group and the child is in it. Then forwarding would
    deliver it twice. (A ``kill -INT`` aimed at us alone while we run in the foreground is
    not forwarded either: it cannot be told apart.)"""
    try:
        group = os.getpgrp()
        if os.getpgid(child_pid) != group:
            return False
    except OSError:
        return False
    for fd in (0, 2, 1):
        try:
            return os.tcgetpgrp(fd) == group
        except OSError:
            continue  # not a terminal
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False  # no controlling terminal: nobody else sent it
    try:
        return os.tcgetpgrp(fd) == group
    except OSError:
        return False
    finally:
        os.close(fd)


class _LiveLine:
    """``--quiet`` on a terminal: one status line on stderr, rewritten in place."""

    def __init__(self, err: IO[str]) -> None:
        self.err = err
        self.shown = ""

    def show(self, text: str) -> None:
        if text == self.shown:
            return
        self.shown = text
        width = _terminal_width()
        self.err.write("\r\x1b[K" + (text if len(text) < width else text[: width - 2] + "…"))
        self.err.flush()

    def clear(self) -> None:
        self.err.write("\r\x1b[K")
        self.err.flush()


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 120


__all__ = ["HubSink", "LocalSink", "RunSummary", "open_sink", "output_format_of", "prompt_of",
           "run_command"]
