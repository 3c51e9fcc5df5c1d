"""``aggregate``: the command line. Thin: parse, call the layers below, print.

Each command is one function registered with ``@command``; its arguments are
declared beside it, so adding a command touches nothing else. rich, the store
and the aggregator are imported inside the commands that use them. The console
script (``entry.py``) hands ``aggregate hook`` over before this module loads.

Every failure is one line on stderr and a non-zero exit, never a traceback:
1 for errors, 2 for usage errors (argparse), 130 for Ctrl+C.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections import namedtuple
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator, Sequence

from . import __version__
from .errors import AggregatorError, AmbiguousSessionError, SessionNotFoundError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import logging
    from collections import Counter

    from rich.console import Console

    from .aggregator import EventAggregator
    from .config import Config
    from .model import AgentSession, SessionSummary
    from .store import SessionStore

PROG = "aggregate"
EXPORT_FORMATS_HELP = "full, summary, events, csv, markdown, html"
SORT_KEYS = ("time", "events", "duration")
CAPTURE_HINT = (
    "Load recorded hook payloads with `aggregate ingest FILE.jsonl` "
    "(see the README's 'Try it in one minute'), then run this again."
)

# --- command registry --------------------------------------------------------------------


class Command(namedtuple("Command", "name help run arguments needs_config", defaults=((), True))):
    """One subcommand: its function, its help and its own arguments.

    name: str; help: str; run: Callable[[Context], int];
    arguments: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (); needs_config: bool = True
    """

    __slots__ = ()


COMMANDS: dict[str, Command] = {}


def arg(*flags: str, **options: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """An ``add_argument`` call, declared next to the command that takes it."""
    return flags, options


def command(
    name: str, help: str, *arguments: tuple[tuple[str, ...], dict[str, Any]], needs_config: bool = True
) -> Callable[[Callable[["Context"], int]], Callable[["Context"], int]]:
    """Register ``run(ctx) -> exit code`` as ``aggregate <name>``."""

    def register(run: Callable[["Context"], int]) -> Callable[["Context"], int]:
        COMMANDS[name] = Command(name, help, run, tuple(arguments), needs_config)
        return run

    return register


# --- argument types ---------------------------------------------------------------------


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _export_format(text: str) -> str:
    from .export import FORMATS  # only when --format is given

    if text not in FORMATS:
        raise argparse.ArgumentTypeError(f"invalid choice {text!r} (choose from {', '.join(FORMATS)})")
    return text


# The hub's shared token (issue 8): a file is better than the flag, which `ps` shows.
_TOKEN_ARGS = (
    arg("--token", metavar="TOKEN",
        help="shared token the hub requires (default: $CLAUDE_MPM_AGGREGATOR_TOKEN, event_aggregator.token;"
             " prefer --token-file: a command line is visible to other users)"),
    arg("--token-file", metavar="PATH", help="file whose first line is the shared token"),
)

# Across machines (issue 10): the Redis every hub of a team shares.
_QUEUE_ARGS = (
    arg("--message-queue", metavar="URL",
        help="relay events with every other hub on this Redis, e.g. redis://HOST:6379/0"
             " (default: event_aggregator.message_queue)"),
)


def _global_options(*, in_subcommand: bool) -> argparse.ArgumentParser:
    """Options accepted before or after the subcommand.

    The copy attached to each subparser defaults to SUPPRESS, so it only sets
    a value when the option is given there and never hides one given earlier.
    """
    parent = argparse.ArgumentParser(add_help=False)
    unset: Any = argparse.SUPPRESS if in_subcommand else None
    group = parent.add_argument_group("global options")
    group.add_argument(
        "--save-dir", metavar="DIR", default=unset,
        help="activity directory holding the sessions (default: from configuration)",
    )
    group.add_argument(
        "--config-dir", metavar="DIR", default=unset,
        help="project directory whose .claude-mpm/configuration.yaml is read (default: current)",
    )
    group.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS if in_subcommand else False,
        help="debug logging to the configured log_file",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Capture, store and browse the activity of AI coding agents.",
        parents=[_global_options(in_subcommand=False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    shared = _global_options(in_subcommand=True)
    for spec in COMMANDS.values():
        sub = subparsers.add_parser(spec.name, help=spec.help, description=spec.help, parents=[shared])
        for flags, options in spec.arguments:
            sub.add_argument(*flags, **options)
    return parser


# --- context: configuration, store, output ----------------------------------------------


class Context:
    """What a command needs, built lazily so each command pays only for what it uses."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.config: Config | None = None
        self._console: Console | None = None

    def load_config(self) -> "Config":
        from .config import load_config

        overrides: dict[str, Any] = {"debug": True if getattr(self.args, "debug", False) else None}
        save_dir = getattr(self.args, "save_dir", None)
        if save_dir:
            # Command-line paths are relative to where the user typed them.
            overrides["activity_directory"] = Path(save_dir).expanduser().absolute()
        message_queue = getattr(self.args, "message_queue", None)
        if message_queue is not None:
            overrides["message_queue"] = message_queue
        token, token_file = getattr(self.args, "token", None), getattr(self.args, "token_file", None)
        if token is not None:
            overrides["token"] = token
        elif token_file:
            overrides["token_file"] = Path(token_file).expanduser().absolute()
        config_dir = getattr(self.args, "config_dir", None)
        project = Path(config_dir).expanduser() if config_dir else None
        if project is not None and not project.is_dir():
            raise AggregatorError(f"--config-dir {config_dir}: not a directory")
        self.config = load_config(project, overrides=overrides)
        return self.config

    @property
    def activity_directory(self) -> Path:
        assert self.config is not None
        return Path(self.config.activity_directory)

    def has_sessions_dir(self) -> bool:
        return self.activity_directory.is_dir()

    def store(self) -> "SessionStore":
        from .store import SessionStore

        return SessionStore(self.activity_directory, rebuild=_rebuild_session)

    @property
    def out(self) -> "Console":
        """A console for stdout: colour only on a terminal, payload text never parsed as markup."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                file=sys.stdout, soft_wrap=True, highlight=False, markup=False, emoji=False
            )
        return self._console

    def line(self, *parts: str | tuple[str, str]) -> None:
        """Print one line assembled from plain strings and (text, style) pairs, literally."""
        from rich.text import Text

        self.out.print(Text.assemble(*parts))

    def field(self, label: str, value: Any, indent: int = 2) -> None:
        from .describe import one_line

        text = value if isinstance(value, str) else str(value)
        self.line(" " * indent, (f"{label}: ", "bold"), one_line(text))

    def plain_stdout(self) -> bool:
        """Whether stdout gets plain text (a pipe, a file: no terminal, so no colour), as rich
        decides it; without importing rich (~30 ms) when the answer is plainly yes."""
        if self._console is None and not _rich_may_see_a_terminal():
            return True
        out = self.out
        return out.color_system is None and not out.is_terminal

    def write_plain(self, text: str) -> None:
        """``text`` to stdout as rich writes it without a terminal: tabs expanded, control codes stripped."""
        sys.stdout.write(text.expandtabs(8).translate(_RICH_STRIPPED))
        sys.stdout.flush()

    def lines(self, lines: list[tuple[str | tuple[str, str], ...]]) -> None:
        """Many ``line()``s at once, with the same output: 10,000 sessions are 80,000 lines, and
        one rich print per line took 20-30 s. Without colour (a pipe, a file, NO_COLOR) the text is
        written as is (what rich writes then, control codes stripped as rich strips them); on a
        colour terminal rich renders them in one call."""
        if self.plain_stdout():
            text = "\n".join("".join(p if isinstance(p, str) else p[0] for p in parts) for parts in lines)
            self.write_plain(text + ("\n" if lines else ""))
            return
        out = self.out
        from rich.text import Text

        if lines:
            out.print(Text("\n").join(Text.assemble(*parts) for parts in lines))


def _rebuild_session(header: dict[str, Any], events: Any) -> "AgentSession":
    """``tracker.rebuild_session``, imported only when a journal is rebuilt: a listing reads the
    index and never needs it. Not via aggregator: listing must not import the runtime."""
    from .tracker import rebuild_session

    return rebuild_session(header, events)


# What rich.control.strip_control_codes removes (BEL, BS, VT, FF, CR); tests/test_cli_listing.py compares.
_RICH_STRIPPED = dict.fromkeys((7, 8, 11, 12, 13))


def _rich_may_see_a_terminal() -> bool:
    """False only when rich's Console would surely find no terminal on stdout: it is not a tty,
    and nothing that overrides that (FORCE_COLOR, TTY_COMPATIBLE, a notebook) is present."""
    if sys.stdout is None or "FORCE_COLOR" in os.environ or "TTY_COMPATIBLE" in os.environ:
        return True
    import builtins

    if hasattr(builtins, "get_ipython"):  # rich's test for Jupyter
        return True
    isatty = getattr(sys.stdout, "isatty", None)
    try:
        return False if isatty is None else bool(isatty())
    except ValueError:  # closed: rich says "not a terminal" too
        return False


def print_json(value: Any) -> None:
    """JSON for scripts: written directly, never through rich (no wrapping, no colour)."""
    from .jsonio import dumps

    data = dumps(value, indent=True)
    stdout = sys.stdout
    binary = getattr(stdout, "buffer", None)
    if binary is not None and (getattr(stdout, "encoding", "") or "").lower().replace("-", "") == "utf8":
        stdout.flush()  # the same bytes, without decoding 8 MB (10,000 summaries) only to encode them again
        binary.write(data + b"\n")
        binary.flush()
        return
    stdout.write(data.decode("utf-8") + "\n")
    stdout.flush()


def _no_sessions(ctx: Context) -> int:
    ctx.line(f"No sessions captured yet in {ctx.activity_directory}")
    ctx.line(CAPTURE_HINT)
    return 0


_LOCAL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_WHOLE_SECOND_FORMATS = (_LOCAL_TIME_FORMAT, "%Y-%m-%d")  # no %f/%z/%Z: time.strftime writes them alike


def _local_time(value: Any, fmt: str = _LOCAL_TIME_FORMAT) -> str:
    from .timeutil import parse_saved_time  # what we store: the strict parser first, 10x faster

    moment = parse_saved_time(value)
    if moment is None:
        return "-"
    if fmt in _WHOLE_SECOND_FORMATS:  # a 10,000-session listing: half the time of astimezone().strftime()
        import time

        try:  # the same local time astimezone() computes: localtime() of the whole seconds
            return time.strftime(fmt, time.localtime(moment.timestamp()))
        except (OverflowError, OSError, ValueError):  # beyond the platform's time_t: as before
            pass
    return moment.astimezone().strftime(fmt)


def _resolve(ctx: Context, store: "SessionStore", ident: str) -> tuple["AgentSession", Path | None]:
    """A session by id, unique id prefix, or path to a session file."""
    candidate = Path(ident).expanduser()
    if not candidate.is_file() and os.sep not in ident:
        candidate = ctx.activity_directory / ident  # a file name as `sessions` prints it
    if ident.endswith((".json", ".jsonl")) and candidate.is_file():
        return store.load(candidate), candidate
    if not ctx.has_sessions_dir():
        raise SessionNotFoundError(f"no sessions captured yet in {ctx.activity_directory}")
    summary = store.find(ident)
    return store.load(summary.file_path), Path(summary.file_path)


# --- sessions -----------------------------------------------------------------------------


def _sort_sessions(summaries: list["SessionSummary"], key: str) -> list["SessionSummary"]:
    from .timeutil import format_timestamp, parse_timestamp

    def started(summary: "SessionSummary") -> str:
        """Stored times are UTC ISO strings, which sort as text; older files may
        carry another offset and are converted once."""
        text = summary.start_time or ""
        if text.endswith("+00:00"):
            return text
        moment = parse_timestamp(text)
        return format_timestamp(moment) if moment else ""

    if key == "events":
        return sorted(summaries, key=lambda s: (s.event_count, started(s)), reverse=True)
    if key == "duration":
        return sorted(summaries, key=lambda s: (s.duration_ms, started(s)), reverse=True)
    return sorted(summaries, key=started, reverse=True)


@command(
    "sessions",
    "list captured sessions",
    arg("--limit", type=_int_at_least(1), metavar="N", help="show at most N sessions"),
    arg("--sort", choices=SORT_KEYS, default="time", help="newest first (time), most events, or longest"),
    arg("--json", action="store_true", help="print a JSON array of session summaries"),
)
def list_sessions(ctx: Context) -> int:
    """10,000 summaries and their lines hold no reference cycles: the collector's passes over
    them (~50 ms, a tenth of the listing) are skipped."""
    from .jsonio import gc_paused

    with gc_paused():
        return _list_sessions(ctx)


def _list_sessions(ctx: Context) -> int:
    args = ctx.args
    if not ctx.has_sessions_dir():
        if args.json:
            print_json([])
            return 0
        return _no_sessions(ctx)
    store = ctx.store()
    summaries = _sort_sessions(store.list_sessions(), args.sort)
    total = len(summaries)
    shown = summaries[: args.limit] if args.limit else summaries
    if args.json:
        print_json([summary.to_dict() for summary in shown])
        return 0
    if not summaries:
        return _no_sessions(ctx)

    from .describe import display_status, one_line, project_name
    from .timeutil import format_duration

    assert ctx.config is not None
    timeout = ctx.config.session_timeout_minutes
    labels = ("Start", "Duration", "Events", "Status", "Project", "File")
    projects: dict[str, str] = {}  # sessions share a few working directories

    def project(directory: Any) -> str:
        name = projects.get(directory) if isinstance(directory, str) else None
        if name is None:
            name = one_line(project_name(directory))
            if isinstance(directory, str):
                projects[directory] = name
        return name

    rows = [
        (
            one_line(summary.session_id),
            _local_time(summary.start_time),  # time, duration and status are safe single lines already
            format_duration(summary.duration_ms),
            one_line(str(summary.event_count)),
            display_status(summary, timeout),
            project(summary.working_directory),
            one_line(_file_name(summary.file_path)),
        )
        for summary in shown
    ]
    if len(shown) < total:
        trailer = f"Showing {len(shown)} of {total} sessions in {ctx.activity_directory}"
    else:
        trailer = f"{total} session{'s' if total != 1 else ''} in {ctx.activity_directory}"
    if ctx.plain_stdout():  # a pipe or a file: the same text, built as one string (10,000 sessions: 80,000 lines)
        blocks = "".join(
            f"\n  Session: {sid}\n    Start: {start}\n    Duration: {duration}\n    Events: {events}\n"
            f"    Status: {status}\n    Project: {where}\n    File: {name}\n"
            for sid, start, duration, events, status, where, name in rows
        )
        ctx.write_plain(f"Captured Sessions:\n{blocks}\n{trailer}\n")
        return 0
    lines: list[tuple[str | tuple[str, str], ...]] = [(("Captured Sessions:", "bold"),)]
    for sid, *values in rows:
        lines.append(("",))
        lines.append(("  ", ("Session: ", "bold"), (sid, "cyan")))
        lines.extend(("    ", (f"{label}: ", "bold"), value) for label, value in zip(labels, values))
    lines.append(("",))
    ctx.lines(lines)
    ctx.line(trailer)
    return 0


def _file_name(path: Any) -> str:
    """``os.path.basename(path)``; for a Path its already parsed last part (no str() of the whole path)."""
    return (path.name if isinstance(path, Path) else "") or os.path.basename(path)


# --- view ---------------------------------------------------------------------------------


@command(
    "view",
    "show one session's details",
    arg("session_id", metavar="ID", help="session id, unique prefix, or a session file's path"),
    arg("--verbose", "-v", action="store_true", help="add the full prompt and the event timeline"),
    arg("--json", action="store_true", help="print the whole session as JSON"),
    arg("--min-importance", type=_int_at_least(0), metavar="N",
        help="keep only events rated at least N (SSE sources such as mnemosyne rate events 2..9)"),
)
def view_session(ctx: Context) -> int:
    store = ctx.store()
    session, path = _resolve(ctx, store, ctx.args.session_id)
    if ctx.args.min_importance is not None:
        floor = ctx.args.min_importance
        session.events = [
            event for event in session.events
            if isinstance(event.data.get("importance"), (int, float)) and event.data["importance"] >= floor
        ]
    if ctx.args.json:
        print_json(session.to_dict())
        return 0
    _print_session(ctx, session, path, verbose=ctx.args.verbose)
    return 0


def _print_session(ctx: Context, session: "AgentSession", path: Path | None, *, verbose: bool) -> None:
    from .describe import (
        delegation_label,
        display_status,
        one_line,
        project_name,
        relative_path,
        safe_text,
        summarize_session,
        summary_rows,
        truncate,
    )
    from .timeutil import format_duration

    assert ctx.config is not None
    summary = summarize_session(session)
    root = session.working_directory
    width = ctx.out.width if ctx.out.is_terminal else None

    ctx.line(("Session Details:", "bold"))
    ctx.field("ID", session.session_id)
    ctx.field("Status", display_status(session, ctx.config.session_timeout_minutes))
    ctx.field("Start Time", _local_time(session.start_time))
    ctx.field("End Time", _local_time(session.end_time) if session.end_time else "-")
    ctx.field("Duration", summary["duration"])
    ctx.field("Project", project_name(root))
    ctx.field("Working Directory", root or "-")
    if path is not None:
        ctx.field("File", path.name)
    metrics = session.metrics
    if metrics.total_cost_usd is not None or metrics.num_turns is not None:  # a headless run's result
        from .describe import format_cost
        from .model import total_tokens

        if metrics.total_cost_usd is not None:
            ctx.field("Cost", f"{format_cost(metrics.total_cost_usd)} (Claude Code's estimate)")
        if metrics.num_turns is not None:
            ctx.field("Turns", metrics.num_turns)
        tokens = total_tokens(session.usage)
        if tokens is not None:
            ctx.field("Tokens", f"{tokens:,} (input, output and cache)")
        if metrics.duration_api_ms is not None:
            ctx.field("API Time", format_duration(metrics.duration_api_ms))
        if metrics.is_error is not None:
            ctx.field("Result", "error (is_error)" if metrics.is_error else "success")
    if session.initial_prompt:
        if verbose:
            ctx.line("  ", ("Initial Prompt:", "bold"))
            for text in safe_text(session.initial_prompt).split("\n"):
                ctx.line("    " + text)
        else:
            ctx.field("Initial Prompt", truncate(one_line(session.initial_prompt), (width or 200) - 18))

    ctx.line("")
    ctx.line(("Events Summary:", "bold"))
    for title, count in summary_rows(summary):
        ctx.field(title, count)

    if summary["agents"]:
        ctx.line("")
        ctx.line(("Agents Used:", "bold"))
        for agent, count in summary["agents"].items():
            ctx.line(f"  - {one_line(agent)} ({delegation_label(count)})")

    if session.delegations:
        ctx.line("")
        ctx.line(("Delegations:", "bold"))
        for delegation in session.delegations:
            duration = delegation.duration
            took = format_duration(duration.total_seconds() * 1000) if duration is not None else "-"
            files = len(delegation.files_modified)
            ctx.line(
                "  - ",
                (one_line(delegation.agent_type), "cyan"),
                f"  {one_line(delegation.status)}  {took}  {delegation.event_count} events"
                f"  {files} file{'s' if files != 1 else ''}",
            )
            task = one_line(delegation.description or delegation.instructions)
            if task:
                ctx.line("      ", (truncate(task, (width or 200) - 6), "dim"))

    if summary["tools_used"]:
        ctx.line("")
        ctx.line(("Tools Used:", "bold"))
        for tool, count in summary["tools_used"].items():
            ctx.line(f"  - {one_line(tool)} ({count})")

    if summary["files_modified"]:
        ctx.line("")
        ctx.line(("Files Modified:", "bold"))
        for file_path in summary["files_modified"]:
            ctx.line(f"  - {relative_path(file_path, root)}")

    if verbose:
        _print_timeline(ctx, session, width)


def _print_timeline(ctx: Context, session: "AgentSession", width: int | None) -> None:
    from .describe import event_summary, one_line
    from .timeutil import parse_timestamp

    ctx.line("")
    ctx.line(("Timeline:", "bold"))
    if not session.events:
        ctx.line("  (no events)")
        return
    days = {_local_time(event.timestamp, "%Y-%m-%d") for event in session.events}
    fmt = "%H:%M:%S.%f" if len(days) == 1 else "%Y-%m-%d %H:%M:%S.%f"
    type_width = min(max(len(one_line(event.event_type)) for event in session.events), 24)
    for event in session.events:
        moment = parse_timestamp(event.timestamp)
        stamp = moment.astimezone().strftime(fmt)[:-3] if moment else "-"
        category = one_line(event.category)
        event_type = one_line(event.event_type)
        used = 2 + len(stamp) + 2 + max(len(category), 10) + 2 + max(len(event_type), type_width) + 2
        room = (width - used) if width else 240
        ctx.line(
            "  ", (stamp, "dim"), "  ", (f"{category:<10}", "cyan"), "  ",
            f"{event_type:<{type_width}}  ",
            event_summary(event, max(room, 20), root=session.working_directory),
        )


# --- export -------------------------------------------------------------------------------


def _human_size(size: int) -> str:
    from .export import human_size  # shared with the TUI's export dialog

    return human_size(size)


@command(
    "export",
    "write a session to a file (default: the latest session)",
    arg("session_id", nargs="?", metavar="ID", help="session id or unique prefix (default: latest)"),
    arg("--output", "-o", metavar="PATH", help="file or directory to write, '-' for stdout "
        "(default: session_<id>_<time>_<format>.<ext> in the current directory)"),
    arg("--format", "-f", dest="format", type=_export_format, default="full", metavar="FORMAT",
        help=f"one of {EXPORT_FORMATS_HELP} (default: full)"),
)
def export_command(ctx: Context) -> int:
    from .describe import one_line
    from .export import export_session, render_export

    args = ctx.args
    store = ctx.store()
    if args.session_id:
        session, _ = _resolve(ctx, store, args.session_id)
    else:
        latest = store.latest() if ctx.has_sessions_dir() else None
        if latest is None:
            raise SessionNotFoundError(f"no sessions captured yet in {ctx.activity_directory}; nothing to export")
        session = store.load(latest.file_path)

    if args.output == "-":
        payload = render_export(session, args.format)
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
        print(f"Exported {one_line(session.session_id)} ({args.format}) to stdout ({_human_size(len(payload))})",
              file=sys.stderr)
        return 0
    try:
        target = export_session(session, args.format, Path(args.output) if args.output else None)
    except OSError as error:
        destination = args.output or "the current directory"
        raise AggregatorError(f"cannot write {destination}: {_message(error)}") from None
    size = target.stat().st_size
    ctx.line(f"Exported {one_line(session.session_id)} ({args.format}) to {target} ({_human_size(size)})")
    return 0


# --- cleanup ------------------------------------------------------------------------------


@command(
    "cleanup",
    "remove sessions older than N days",
    arg("--days", type=_int_at_least(0), metavar="N", help="age limit in days (default: auto_cleanup_days)"),
    arg("--dry-run", action="store_true", help="list what would be removed, remove nothing"),
    arg("--json", action="store_true", help="print the result as JSON"),
)
def cleanup_command(ctx: Context) -> int:
    args = ctx.args
    assert ctx.config is not None
    days = args.days if args.days is not None else ctx.config.auto_cleanup_days
    if args.days is None and days == 0:
        raise AggregatorError("automatic cleanup is disabled (auto_cleanup_days: 0); pass --days N")
    directory = ctx.activity_directory
    removed: list[Path] = []
    if ctx.has_sessions_dir():
        store = ctx.store()
        removed = list(store.cleanup(days, dry_run=args.dry_run))
    if args.json:
        print_json({
            "directory": str(directory),
            "days": days,
            "dry_run": args.dry_run,
            "files": [str(path) for path in removed],
        })
        return 0
    if not ctx.has_sessions_dir():
        return _no_sessions(ctx)
    if not removed:
        ctx.line(f"No sessions older than {days} days in {directory}")
        return 0
    verb = "Would remove" if args.dry_run else "Removed"
    noun = "file" if len(removed) == 1 else "files"
    ctx.line(f"{verb} {len(removed)} {noun} older than {days} days from {directory}:")
    for path in removed:
        ctx.line(f"  - {Path(path).name}")
    return 0


# --- ingest -------------------------------------------------------------------------------

STDIN = "-"
WRAPPER_KEYS = frozenset({"event", "payload", "timestamp", "transport"})
UNREADABLE_SHOWN = 5
_BOM = b"\xef\xbb\xbf"
_NOT_JSON = object()


class _Unparsed(namedtuple("_Unparsed", "line where")):
    """A line that is not JSON (line: bytes, where: str): the aggregator gets it as is
    and counts the rejection."""

    __slots__ = ()


class _Tally:
    """What one ``aggregate ingest`` fed to the aggregator and what came of it."""

    def __init__(self) -> None:
        self.records = 0
        self.events = 0
        self.sessions: set[str] = set()
        self.not_json: list[str] = []  # the first UNREADABLE_SHOWN file:line locations
        self.not_json_total = 0


def _parse(text: bytes) -> Any:
    from .jsonio import loads

    try:
        return loads(text)
    except ValueError:
        return _NOT_JSON


def _records(label: str, handle: BinaryIO, first_line: int = 1, may_be_document: bool = True) -> Iterator[Any]:
    """Each record of one input, streamed line by line (JSONL); a JSON array on a line gives
    its items. An input whose first line is not JSON but opens an object or array is tried
    as one (pretty-printed) document: the only case that is read whole."""
    for number, line in enumerate(handle, first_line):
        text = line.strip().removeprefix(_BOM)
        if not text:
            continue
        value = _parse(text)
        if value is _NOT_JSON and may_be_document and text[:1] in (b"{", b"["):
            rest = handle.read()
            value = _parse(text + b"\n" + rest)
            if value is _NOT_JSON:  # not one document either: on, line by line
                yield _Unparsed(text, f"{label}:{number}")
                yield from _records(label, io.BytesIO(rest), number + 1, may_be_document=False)
                return
        may_be_document = False
        if value is _NOT_JSON:
            yield _Unparsed(text, f"{label}:{number}")
        elif isinstance(value, list):
            yield from value
        else:
            yield value


def _unwrap(record: Any) -> tuple[Any, str | None]:
    """A recording wrapper's payload and event name; any other record is a payload itself."""
    if not (isinstance(record, dict) and isinstance(record.get("payload"), dict) and record.keys() <= WRAPPER_KEYS):
        return record, None
    payload = record["payload"]
    if "timestamp" in record and "timestamp" not in payload:  # a raw hook stamped on receipt
        payload = {**payload, "timestamp": record["timestamp"]}
    name = record.get("event")
    return payload, name if isinstance(name, str) else None


def _label(name: str) -> str:
    return "<stdin>" if name == STDIN else name


def _feed(aggregator: "EventAggregator", names: list[str], tally: _Tally) -> None:
    from contextlib import nullcontext

    for name in names:
        with nullcontext(sys.stdin.buffer) if name == STDIN else open(name, "rb") as handle:
            for record in _records(_label(name), handle):
                tally.records += 1
                if isinstance(record, _Unparsed):
                    tally.not_json_total += 1
                    if len(tally.not_json) < UNREADABLE_SHOWN:
                        tally.not_json.append(record.where)
                    event = aggregator.handle_event(record.line)
                else:
                    event = aggregator.handle_event(*_unwrap(record))
                if event is not None:
                    tally.events += 1
                    tally.sessions.add(event.session_id)


@command(
    "ingest",
    "feed recorded payloads (JSONL or JSON files) into the activity directory",
    arg("files", nargs="*", metavar="FILE", help="JSONL or JSON file of payloads, '-' for stdin (default: stdin)"),
    arg("--json", action="store_true", help="print the result as JSON"),
)
def ingest_command(ctx: Context) -> int:
    from .aggregator import EventAggregator

    names = ctx.args.files or [STDIN]
    for name in names:  # an unreadable file fails before anything is ingested
        if name != STDIN:
            open(name, "rb").close()
    if STDIN in names and sys.stdin.isatty():
        print("Reading payloads from stdin (end with Ctrl+D)", file=sys.stderr)
    aggregator = EventAggregator(config=ctx.config)
    tally, existing = _Tally(), set[str]()
    try:
        aggregator.start(connect=False)  # StoreLockedError while a live aggregator holds the directory
        existing = {summary.session_id for summary in aggregator.store.list_sessions()}
        _feed(aggregator, names, tally)
    finally:
        aggregator.stop()  # saves everything ingested, even after an error or Ctrl+C

    new_sessions = len(tally.sessions - existing)
    duplicates = aggregator.get_status()["duplicate_events"]
    if ctx.args.json:
        print_json({
            "events": tally.events, "sessions": len(tally.sessions), "new_sessions": new_sessions,
            "duplicates": duplicates, "rejected": dict(aggregator.rejected), "ignored": dict(aggregator.ignored),
            "unreadable_lines": tally.not_json, "directory": str(ctx.activity_directory),
        })
    else:
        _print_ingest(ctx, aggregator, tally, new_sessions, duplicates)
    unusable = sum(aggregator.rejected.values()) + sum(aggregator.ignored.values())
    if tally.records and unusable == tally.records:
        inputs = ", ".join(_label(name) for name in names[:3])
        return _fail(f"no usable events in {inputs}" + (f" and {len(names) - 3} more" if len(names) > 3 else ""))
    return 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _print_ingest(
    ctx: Context, aggregator: "EventAggregator", tally: _Tally, new_sessions: int, duplicates: int
) -> None:
    from .describe import one_line

    def kinds(counter: "Counter[str]") -> str:
        return ", ".join(f"{one_line(kind)} ({n})" for kind, n in counter.most_common())

    ctx.line(f"Ingested {_count(tally.events, 'event')} into {_count(len(tally.sessions), 'session')}"
             f" ({new_sessions} new) in {ctx.activity_directory}")
    if duplicates:
        ctx.line(f"Skipped {_count(duplicates, 'duplicate event')} (already captured)")
    if aggregator.rejected:
        ctx.line(f"Rejected {_count(sum(aggregator.rejected.values()), 'record')}: {kinds(aggregator.rejected)}")
    if tally.not_json:
        more = tally.not_json_total - len(tally.not_json)
        ctx.line("Not JSON: " + one_line(", ".join(tally.not_json)) + (f" and {more} more" if more else ""))
    if aggregator.ignored:
        ignored = _count(sum(aggregator.ignored.values()), "transport message")
        ctx.line(f"Ignored {ignored}: {kinds(aggregator.ignored)}")
    for report in aggregator.recovered:
        ctx.line(f"Recovered session {one_line(report.session_id)} ({_count(report.events, 'event')}) from the journal"
                 f" an earlier run left behind, saved as {report.file_path.name}")


# --- import (Claude Code transcripts) ---------------------------------------------------------


@command(
    "import",
    "import Claude Code's session transcripts (~/.claude/projects) as sessions",
    arg("paths", nargs="*", metavar="PATH",
        help="transcript files or directories (default: $CLAUDE_CONFIG_DIR/projects, else ~/.claude/projects)"),
    arg("--since", metavar="DATE", help="only transcripts modified since DATE (2026-03-14, 2026-03-14T09:00, or 7d, 12h)"),
    arg("--project", metavar="NAME", help="only this project (its directory name or path)"),
    arg("--dry-run", action="store_true", help="list what would be imported; write nothing"),
    arg("--json", action="store_true", help="print the result as JSON"),
)
def import_command(ctx: Context) -> int:
    from dataclasses import replace

    from .importer import discover, import_transcripts, parse_since

    args = ctx.args
    since = parse_since(args.since) if args.since else None
    sets = discover([Path(p) for p in args.paths] or None, since=since, project=args.project)
    if not sets:
        where = ", ".join(args.paths) if args.paths else str(_projects_dir())
        return _fail(f"no Claude Code transcripts found in {where}"
                     + (" matching the filters" if since or args.project else ""))
    with _import_progress(enabled=not args.json) as progress:
        if args.dry_run:
            report = import_transcripts(sets, store=ctx.store(), dry_run=True, progress=progress)
        else:
            from .aggregator import EventAggregator

            # The final file carries durability: no journal for history being written in one go.
            aggregator = EventAggregator(config=replace(ctx.config, journal=False))
            try:
                aggregator.start(connect=False)  # StoreLockedError while a live aggregator holds the directory
                report = import_transcripts(sets, aggregator=aggregator, progress=progress)
            finally:
                aggregator.stop()
    if args.json:
        print_json(report.to_dict())
    else:
        _print_import(ctx, report)
    if report.stats.lines == report.stats.bad_lines and not report.skipped_unchanged:
        return _fail("no transcript line could be read" + (f" ({report.errors[0]})" if report.errors else ""))
    return 0


def _projects_dir() -> Path:
    from .importer import claude_projects_dir

    return claude_projects_dir()


class _import_progress:
    """A rich progress bar over bytes read, on stderr when it is a terminal (else nothing)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> "Callable[[int, int, str], None] | None":
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("Importing {task.description}", markup=False), BarColumn(), DownloadColumn(),
            TimeRemainingColumn(), console=Console(file=sys.stderr), transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("transcripts", total=None)

        def update(done: int, total: int, label: str) -> None:
            self._progress.update(self._task, completed=done, total=total or None, description=label[:60])

        return update

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _print_import(ctx: Context, report: Any) -> None:
    from .describe import one_line

    verb = "Would import" if report.dry_run else "Imported"
    if report.dry_run:
        for planned in report.sessions:
            ctx.line(f"  {planned.state:9} ", (one_line(planned.session_id), "bold"),
                     f"  {one_line(planned.project or '-')}  {_count(planned.events, 'event')}"
                     f" ({planned.new_events} new)  {_human_size(planned.size)}")
    merged = f", merged {report.count('merge')} into sessions already saved" if report.count("merge") else ""
    ctx.line(f"{verb} {_count(report.count('new'), 'new session')}{merged}: {_count(report.events_added, 'event')}"
             f" from {_human_size(report.bytes_total)} of transcripts, into {ctx.activity_directory}")
    unchanged = report.count("unchanged") + report.skipped_unchanged
    if unchanged:
        ctx.line(f"Already imported: {_count(unchanged, 'session')}, unchanged")
    if report.count("live"):
        ctx.line(f"Skipped {_count(report.count('live'), 'session')} being captured live right now; import again later")
    if report.stats.bad_lines:
        ctx.line(f"Skipped {_count(report.stats.bad_lines, 'corrupt line')}:")
        for bad in report.stats.bad:
            ctx.line("  ", one_line(str(bad)))
        more = report.stats.bad_lines - len(report.stats.bad)
        if more:
            ctx.line(f"  and {more} more")
    for error in report.errors:
        ctx.line("Unreadable: ", one_line(error))


# --- start / status / stop ------------------------------------------------------------------

STATUS_LINE_INTERVAL = 30.0  # seconds between the foreground status lines (the usage guide's)
DAEMON_READY_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
STALE_STATUS_SECONDS = 10.0  # the runtime rewrites its status file every 2 s
DAEMON_OUTPUT_NAME = "aggregator.out"


def _port_number(text: str) -> int:
    value = _int_at_least(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 1..65535, got {value}")
    return value


def _say(text: str = "") -> None:
    """One plain line, flushed: a foreground aggregator's output is often piped or logged."""
    print(text, flush=True)


def _yes_no(flag: Any) -> str:
    return "Yes" if flag else "No"


# `start` and `tui` capture alike: the server they listen to, or where they serve the hub.
_CAPTURE_ADDRESS_ARGS = (
    arg("--host", metavar="HOST", help="Socket.IO server to listen to, or where to serve (default: dashboard_host)"),
    arg("--port", type=_port_number, metavar="PORT", help="its port (default: dashboard_port, 8765)"),
)


@command(
    "start",
    "capture live events into the activity directory (foreground; --daemon to detach)",
    *_CAPTURE_ADDRESS_ARGS,
    *_TOKEN_ARGS,
    *_QUEUE_ARGS,
    arg("--serve", action="store_true", help="run the built-in hub in this process (no other server needed)"),
    arg("--no-serve", action="store_true",
        help="only connect as a client, waiting for the server if it is down (never serve)"),
    arg("--daemon", action="store_true", help="run detached in the background; `aggregate stop` ends it"),
    arg("--sse", action="append", default=[], metavar="URL",
        help="also read this Server-Sent Events stream, e.g. mnemosyne's http://127.0.0.1:3000/events (repeatable)"),
    arg("--status-interval", type=float, default=STATUS_LINE_INTERVAL, metavar="SECONDS",
        help="seconds between status lines in the foreground (default: 30)"),
)
def start_command(ctx: Context) -> int:
    from dataclasses import replace

    args = ctx.args
    assert ctx.config is not None
    if args.serve and args.no_serve:
        raise AggregatorError("--serve and --no-serve exclude each other")
    config = replace(
        ctx.config,
        dashboard_host=args.host or ctx.config.dashboard_host,
        dashboard_port=args.port or ctx.config.dashboard_port,
        sources=_with_sse(ctx.config, args.sse),
    )
    serve = True if args.serve else (False if args.no_serve else None)
    if serve:
        from .sources.hub import bind_address

        bind_address(config.dashboard_host, config.token, "--host" if args.host else "dashboard_host")
    if args.daemon:
        return _start_daemon(config, serve)
    return _run_foreground(config, serve, max(0.5, args.status_interval))


def _with_sse(config: "Config", urls: list[str]) -> tuple[Any, ...]:
    """The configured sources plus one SSE stream per ``--sse URL``."""
    from .config import SSE, SourceSpec, _source_url

    sources = list(config.sources)
    for url in urls:
        try:
            spec = SourceSpec(SSE, _source_url(url))
        except ValueError as error:
            raise AggregatorError(f"--sse: {error}") from None
        if spec not in sources:
            sources.append(spec)
    return tuple(sources)


def _run_foreground(config: "Config", serve: bool | None, interval: float) -> int:
    """Capture until Ctrl+C, SIGTERM (``aggregate stop``) or SIGHUP; every active session is saved."""
    import signal
    import time
    from datetime import datetime

    from .aggregator import EventAggregator

    received: list[int] = []
    watched = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    previous = {number: signal.signal(number, lambda number, _frame: received.append(number)) for number in watched}
    aggregator = EventAggregator(config=config)
    try:
        aggregator.start(serve=serve)  # StoreLockedError, ConnectionError: one line from main()
        status = aggregator.get_status()
        _say("Event aggregator started")
        _say(f"  Saving sessions to: {aggregator.save_dir}")
        _say(f"  Source: {status['source']}")
        _say(f"  Connection: {status['connection_state']}")
        for report in aggregator.recovered:
            lost = (f"{_count(report.bad_lines, 'unreadable line')} skipped" if report.bad_lines
                    else "no line lost")
            _say(f"  Recovered session {report.session_id} ({_count(report.events, 'event')}) from the journal"
                 f" an earlier run left behind: {report.file_path.name} ({lost})")
        _say(f"Status every {interval:g} s; Ctrl+C or `aggregate stop` saves every active session and stops.")
        next_line = time.monotonic() + interval
        while not received and aggregator.running:
            time.sleep(0.2)
            if time.monotonic() >= next_line:
                next_line += interval
                status = aggregator.get_status()
                state = "" if status["connected"] else f" ({status['connection_state']})"
                _say(f"[{datetime.now():%H:%M:%S}] Connected: {_yes_no(status['connected'])}{state}"
                     f" | Active Sessions: {status['active_sessions']} | Total Events: {status['total_events']}")
    finally:
        was_running = aggregator.running
        if was_running:
            if received:
                _say(f"Stopping ({signal.Signals(received[0]).name}): saving every active session...")
            aggregator.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
    if not was_running:
        error = aggregator.runtime.error if aggregator.runtime is not None else None
        raise AggregatorError(f"capture stopped unexpectedly: {error or 'see the log'}")
    saved = aggregator.saved_on_stop
    _say(f"Event aggregator stopped ({_count(saved, 'session')} saved to {aggregator.save_dir};"
         f" {_count(aggregator.total_events, 'event')} captured)")
    return 0


def _daemon_output(config: "Config") -> Path:
    """Where a detached aggregator's stderr goes: next to the debug log, else the activity directory."""
    from .jsonio import make_dirs

    for folder in (Path(config.log_file).parent, Path(config.activity_directory)):
        try:
            make_dirs(folder)  # never world-writable, whatever the umask
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder / DAEMON_OUTPUT_NAME
    raise AggregatorError(f"cannot create {Path(config.log_file).parent} for the background aggregator's output")


def _start_daemon(config: "Config", serve: bool | None) -> int:
    """``start --daemon``: the same command detached; returns once its status file says it runs."""
    import subprocess
    import time

    from .runtime import read_status_file

    directory = Path(config.activity_directory)
    argv = [sys.executable, "-m", "agent_aggregator", "--save-dir", str(directory),
            "--config-dir", str(config.project_dir)]
    if config.debug:
        argv.append("--debug")
    argv += ["start", "--host", config.dashboard_host, "--port", str(config.dashboard_port)]
    for spec in config.sources:
        if spec.type == "sse" and spec.url:
            argv += ["--sse", spec.url]  # the configured ones too: the same set, whatever the child reads
    if serve is not None:
        argv.append("--serve" if serve else "--no-serve")
    output = _daemon_output(config)
    from .jsonio import FILE_MODE

    environment = dict(os.environ)
    if config.message_queue:  # a Redis URL may hold a password: the environment, like the token
        environment["CLAUDE_MPM_AGGREGATOR_MESSAGE_QUEUE"] = config.message_queue
    if config.token:  # through the environment, never argv (anyone can read a command line in ps)
        environment["CLAUDE_MPM_AGGREGATOR_TOKEN"] = config.token
        environment.pop("CLAUDE_MPM_AGGREGATOR_TOKEN_FILE", None)
    with os.fdopen(os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE), "ab") as err:
        offset = err.seek(0, os.SEEK_END)
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                 start_new_session=True, close_fds=True, env=environment)
    deadline = time.monotonic() + DAEMON_READY_TIMEOUT
    while time.monotonic() < deadline:
        code = child.poll()
        status = read_status_file(directory)
        if status and status.get("pid") == child.pid and status.get("running"):
            _say(f"Event aggregator running in the background (pid {child.pid})")
            _say(f"  Saving sessions to: {directory}")
            _say(f"  Source: {status.get('source')}")
            _say(f"  Connection: {status.get('connection_state')}")
            _say(f"  Output: {output}; stop it with `aggregate stop`")
            return 0
        if code is not None:
            return _fail(_last_error_line(output, offset) or f"the background aggregator exited with status {code}")
        time.sleep(0.1)
    print(f"{PROG}: warning: the background aggregator (pid {child.pid}) is still starting after"
          f" {DAEMON_READY_TIMEOUT:.0f} s; see `aggregate status` and {output}", file=sys.stderr)
    return 0


def _last_error_line(path: Path, offset: int) -> str:
    """The child's last stderr line since ``offset``, without our own "aggregate: error: " prefix."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    errors = [line for line in lines if line.startswith(f"{PROG}: error: ")]
    return (errors or lines)[-1].removeprefix(f"{PROG}: error: ")


def _aggregator_status(ctx: Context) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(what ``status --json`` prints, the raw status file) for the activity directory."""
    from .runtime import read_status_file, status_age_seconds, status_file_path

    assert ctx.config is not None
    directory = ctx.activity_directory
    exists = directory.is_dir()
    status = read_status_file(directory) if exists else None
    writer = ctx.store().writer_pid() if exists else None
    running = bool(status and status.get("running") and writer and status.get("pid") == writer)
    report: dict[str, Any] = dict(status or {})
    report.update(
        running=running,
        save_directory=str(directory),
        dashboard_port=(status or {}).get("dashboard_port", ctx.config.dashboard_port),
        writer_pid=writer,
        status_file=str(status_file_path(directory)) if status else None,
        last_update_age_s=round(status_age_seconds(status), 1) if status and status_age_seconds(status) is not None else None,
    )
    if not running:
        report.update(connected=False, active_sessions=0, total_events=0, connection_state="stopped")
        if status:
            report["last_run"] = {key: status.get(key) for key in (
                "pid", "started_at", "stopped_at", "updated_at", "total_events", "saved_on_stop", "source", "error")}
            report["last_run"]["stopped_cleanly"] = bool(status.get("stopped_at"))
    return report, status


@command(
    "status",
    "show whether an aggregator is capturing into the activity directory",
    arg("--json", action="store_true", help="print the status as JSON"),
)
def status_command(ctx: Context) -> int:
    report, _ = _aggregator_status(ctx)
    if ctx.args.json:
        print_json(report)
        return 0
    ctx.line(("Event Aggregator Status:", "bold"))
    ctx.field("Status", "Running" if report["running"] else "Stopped")
    ctx.field("Connected", _yes_no(report["connected"]))
    ctx.field("Active Sessions", report["active_sessions"])
    ctx.field("Total Events", report["total_events"])
    ctx.field("Activity Directory", report["save_directory"])
    ctx.field("Dashboard Port", report["dashboard_port"])
    if report["running"]:
        ctx.field("Source", report.get("source") or "-")
        ctx.field("Connection", report.get("connection_state") or "-")
        ctx.field("PID", report.get("pid"))
        ctx.field("Started", _local_time(report.get("started_at")))
        age = report.get("last_update_age_s")
        ctx.field("Last Update", f"{age:.0f} s ago" if age is not None else "-")
        if report.get("recovered_sessions"):
            unreadable = report.get("recovery_unreadable_lines") or 0
            ctx.field("Recovered", f"{_count(report['recovered_sessions'], 'session')},"
                                   f" {_count(report.get('recovered_events') or 0, 'event')} from journals"
                                   f" ({_count(unreadable, 'unreadable line')} skipped)")
        if report.get("write_error"):
            ctx.line("  ", (f"Cannot write: {report['write_error']}. {_count(report.get('unsaved_sessions') or 0, 'session')}"
                            " kept in memory, retried every 2 s.", "red"))
        if age is not None and age > STALE_STATUS_SECONDS:
            ctx.line("  ", (f"No status update for {age:.0f} s: the aggregator may be stuck.", "yellow"))
        return 0
    last = report.get("last_run")
    if last:
        if last["stopped_cleanly"]:
            saved = last.get("saved_on_stop") or 0
            ctx.field("Last Run", f"{_local_time(last.get('started_at'))} to {_local_time(last.get('stopped_at'))},"
                                  f" {_count(last.get('total_events') or 0, 'event')},"
                                  f" {_count(saved, 'session')} saved on stop")
        else:
            ctx.field("Last Run", f"pid {last.get('pid')} ended without stopping (killed?) after"
                                  f" {_local_time(last.get('updated_at'))}; its open sessions are recovered"
                                  " on the next start")
    writer = report.get("writer_pid")
    if writer is not None:
        ctx.line(f"  The activity directory is in use by pid {writer or 'unknown'} (not a running `aggregate start`).")
    return 0


@command(
    "stop",
    "stop the aggregator capturing into the activity directory (it saves every active session)",
)
def stop_command(ctx: Context) -> int:
    import signal
    import socket
    import time

    from .runtime import read_status_file

    directory = ctx.activity_directory
    store = ctx.store() if directory.is_dir() else None
    pid = store.writer_pid() if store is not None else None
    if store is None or pid is None:
        ctx.line(f"No aggregator is running for {directory}")
        return 0
    status = read_status_file(directory)
    deadline = time.monotonic() + 3.0  # a start that has the lock but has not written its status yet
    while (not pid or not status or status.get("pid") != pid) and time.monotonic() < deadline:
        time.sleep(0.1)
        pid, status = store.writer_pid(), read_status_file(directory)
        if pid is None:
            ctx.line(f"No aggregator is running for {directory}")
            return 0
    if not pid or not status or status.get("pid") != pid:
        raise AggregatorError(f"activity directory {directory} is in use by pid {pid or 'unknown'},"
                              " which is not an `aggregate start` process; not stopping it")
    host = status.get("hostname")
    if host and host != socket.gethostname():
        raise AggregatorError(f"the aggregator for {directory} runs on {host} (pid {pid}); stop it there")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise AggregatorError(f"not allowed to stop the aggregator (pid {pid})") from None
    deadline = time.monotonic() + STOP_TIMEOUT
    while store.writer_pid() is not None:
        if time.monotonic() > deadline:
            raise AggregatorError(f"the aggregator (pid {pid}) did not stop within {STOP_TIMEOUT:.0f} s")
        time.sleep(0.1)
    final = read_status_file(directory) or {}
    if final.get("pid") == pid and final.get("stopped_at"):
        ctx.line(f"Event aggregator stopped ({_count(final.get('saved_on_stop') or 0, 'session')} saved)")
    else:
        ctx.line(f"Event aggregator stopped (pid {pid}; it saved nothing on the way out:"
                 " its open sessions are recovered on the next start)")
    return 0


# --- serve --------------------------------------------------------------------------------


@command(
    "serve",
    "run the built-in hub: Socket.IO plus HTTP POST /api/events and /events for hooks",
    arg("--host", metavar="HOST", help="address to listen on (default: dashboard_host, i.e. 127.0.0.1;"
        " any non-loopback address needs --token-file)"),
    arg("--port", type=_int_at_least(0), metavar="PORT", help="port to listen on (default: dashboard_port, 8765)"),
    *_TOKEN_ARGS,
    *_QUEUE_ARGS,
)
def serve_command(ctx: Context) -> int:
    from .sources.hub import serve

    assert ctx.config is not None
    return serve(ctx.args.host, ctx.args.port,
                 config_host=ctx.config.dashboard_host, config_port=ctx.config.dashboard_port,
                 token=ctx.config.token, message_queue=ctx.config.message_queue)


# --- tui ----------------------------------------------------------------------------------


@command(
    "tui",
    "full-screen live monitor and session browser (captures like `start`, or follows a running one)",
    *_CAPTURE_ADDRESS_ARGS,
    *_TOKEN_ARGS,
    *_QUEUE_ARGS,
    arg("--no-connect", action="store_true", help="only browse the saved sessions: no live capture"),
    arg("--sse", action="append", default=[], metavar="URL",
        help="also read this Server-Sent Events stream, as `start --sse` does (repeatable)"),
)
def tui_command(ctx: Context) -> int:
    from dataclasses import replace

    from .config import setup_logging

    args = ctx.args
    assert ctx.config is not None
    if not sys.stdin.isatty() or not sys.__stderr__.isatty():  # Textual draws on stderr
        raise AggregatorError("`aggregate tui` needs a terminal (for scripts: `aggregate sessions --json`)")
    config = replace(
        ctx.config,
        dashboard_host=args.host or ctx.config.dashboard_host,
        dashboard_port=args.port or ctx.config.dashboard_port,
        sources=_with_sse(ctx.config, args.sse),
    )
    setup_logging(config, stderr=False)  # the screen owns the terminal; --debug still logs to the file
    from .tui.app import AggregateApp

    app = AggregateApp(config, connect=not args.no_connect)
    try:
        app.run()
    finally:
        app.stop_ingest()  # saves every active session, also when the app ended another way
    return app.return_code or 0


# --- replay -------------------------------------------------------------------------------


def _replay_speed(text: str) -> float:
    from .replay import parse_speed

    try:
        return parse_speed(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text!r}")
    return value


@command(
    "replay",
    "play a saved session back: print its timeline as it plays, re-send it to a hub, or watch it in the TUI",
    arg("session_id", metavar="ID|PATH", help="session id, unique prefix, or a session file's path"),
    arg("--speed", type=_replay_speed, default=1.0, metavar="X",
        help="0.5, 1, 2, 5, 10 ... or max (default: 1)"),
    arg("--gap-cap", type=_seconds, default=1.0, metavar="SECONDS",
        help="replay idle gaps at most this long (default: 1, as the usage guide's replay script)"),
    arg("--real-time", action="store_true", help="keep the real gaps between events (no compression)"),
    arg("--emit", metavar="URL", help="also POST each event to a hub's /api/events, e.g. http://127.0.0.1:8765"),
    arg("--fresh-ids", action="store_true",
        help="with --emit: new session and event ids, so every emit makes a new session (default: the saved ids,"
             " so emitting twice changes nothing)"),
    arg("--json", action="store_true", help="JSON Lines: one object per event as it plays, then a summary"),
    arg("--tui", action="store_true", help="watch the replay in the TUI's replay screen instead"),
)
def replay_command(ctx: Context) -> int:
    from . import replay_cli

    args = ctx.args
    ident = args.session_id
    if ident.endswith((".json", ".jsonl")) and os.sep in ident and not Path(ident).expanduser().is_file():
        raise AggregatorError(f"{ident}: no such file")
    if args.tui and (args.emit or args.json):
        raise AggregatorError("--tui shows the replay on screen; it does not combine with --emit or --json")
    if args.fresh_ids and not args.emit:
        raise AggregatorError("--fresh-ids only applies with --emit")
    session, path = _resolve(ctx, ctx.store(), ident)
    source = path if path is not None and ident.endswith((".json", ".jsonl")) else None
    gap_cap = None if args.real_time else args.gap_cap
    if args.tui:
        return replay_cli.run_tui(ctx, session, source, speed=args.speed, gap_cap=gap_cap)
    return replay_cli.run(ctx, session, source, speed=args.speed, gap_cap=gap_cap, emit=args.emit,
                          fresh_ids=args.fresh_ids, as_json=args.json)


# --- run: a headless Claude Code run --------------------------------------------------------


@command(
    "run",
    "run a headless Claude Code command (claude -p ... --output-format stream-json --verbose) and record it",
    arg("--quiet", "-q", action="store_true",
        help="show a compact live summary on stderr (and the final answer) instead of the raw stream"),
    arg("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ...", help="the command to run, after --"),
)
def run_headless_command(ctx: Context) -> int:
    from .run import run_command

    assert ctx.config is not None
    argv = list(ctx.args.cmd)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise AggregatorError("run: give the command after --, e.g. "
                              "aggregate run -- claude -p 'fix the tests' --output-format stream-json --verbose")
    return run_command(argv, ctx.config, quiet=ctx.args.quiet)


# --- hook / install-hooks -----------------------------------------------------------------


@command(
    "hook",
    "forward one Claude Code hook payload (JSON on stdin) to the hub; spooled when the hub is down",
    arg("--host", metavar="HOST", help="hub address (default: $CLAUDE_MPM_AGGREGATOR_DASHBOARD_HOST, "
        "$CLAUDE_MPM_SERVER_HOST, 127.0.0.1)"),
    arg("--port", metavar="PORT", help="hub port (default: $CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT, "
        "$CLAUDE_MPM_SERVER_PORT, 8765)"),
    arg("--timeout", metavar="SECONDS", help="give up on the hub after this long and spool (default: 0.5)"),
    *_TOKEN_ARGS,
    needs_config=False,
)
def hook_command(ctx: Context) -> int:
    """Only reached with global options before ``hook``: ``main`` runs ``aggregate hook ...``
    itself, before argparse. Values stay strings: the hook reports bad ones and goes on,
    since a usage error (exit 2) would block Claude Code's tool call."""
    from .hook import main as hook_main

    argv: list[str] = []
    for name in ("host", "port", "timeout", "token", "token_file"):
        value = getattr(ctx.args, name, None)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", value]
    return hook_main(argv)


@command(
    "install-hooks",
    "add `aggregate hook` to Claude Code's settings.json for every hook event (merging, never clobbering)",
    arg("--project", action="store_true", help="./.claude/settings.json (the default)"),
    arg("--user", action="store_true", help="~/.claude/settings.json ($CLAUDE_CONFIG_DIR/settings.json if set)"),
    arg("--dry-run", action="store_true", help="print the change as a unified diff, write nothing"),
    arg("--command", dest="hook_command", metavar="CMD",
        help="the hook command to install (default: this Python, by absolute path, running the hook directly:"
             " `python -I -c 'from agent_aggregator.hook import run; run()'`, which starts faster than the"
             " aggregate script; e.g. --command 'aggregate hook' for the plain form)"),
    arg("--host", metavar="HOST", help="the hub the hooks post to (default: dashboard_host)"),
    arg("--port", type=_port_number, metavar="PORT", help="its port (default: dashboard_port, 8765)"),
    *_TOKEN_ARGS,
)
def install_hooks_command(ctx: Context) -> int:
    from .install_hooks import hub_arguments, run

    args = ctx.args
    if args.project and args.user:
        raise AggregatorError("--project and --user exclude each other")
    config = ctx.load_config()
    hub = hub_arguments(args.host or config.dashboard_host, args.port or config.dashboard_port)
    if config.token:  # the hooks read the token from a file: settings.json never holds it
        from .install_hooks import token_file_for

        hub += ["--token-file", str(token_file_for(config, dry_run=args.dry_run))]
    return run("user" if args.user else "project", dry_run=args.dry_run, command=args.hook_command, hub=hub)


# --- entry point --------------------------------------------------------------------------


def _message(error: BaseException) -> str:
    """One line for a user: OSErrors as "path: reason", others as their text."""
    from .describe import one_line

    if isinstance(error, OSError) and error.strerror:
        where = error.filename if error.filename is not None else None
        text = f"{where}: {error.strerror}" if where is not None else error.strerror
        if error.filename2 is not None:
            text += f" (-> {error.filename2})"
        return one_line(text)
    return one_line(str(error)) or type(error).__name__


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


def _log() -> "logging.Logger":
    import logging  # deferred: keeps `--help` light

    return logging.getLogger("agent_aggregator.cli")


def _unexpected(error: BaseException, ctx: Context | None) -> int:
    _log().error("unexpected error", exc_info=error, extra={"file_only": True})
    config = ctx.config if ctx is not None else None
    where = str(config.log_file) if config is not None else ".claude-mpm/logs/aggregator.log"
    if config is not None and config.debug:
        hint = f"the traceback is in {where}"
    else:
        hint = f"rerun with --debug (or CLAUDE_MPM_AGGREGATOR_DEBUG=true) and see {where}"
    return _fail(f"unexpected {type(error).__name__}: {_message(error)} ({hint})")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``aggregate`` with ``argv`` (default: the process arguments); returns the exit code."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["hook"]:  # before argparse: a Claude Code hook must start in bare-Python time
        from .hook import main as hook_main

        return hook_main(arguments[1:], exit_process=argv is None)  # the process's own arguments: exits
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exit_:  # --help, --version, usage errors (argparse printed them)
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    spec = COMMANDS.get(args.command or "")
    if spec is None:
        parser.print_help(sys.stderr)
        return 2

    ctx = Context(args)
    try:
        if spec.needs_config:
            from .config import setup_logging

            setup_logging(ctx.load_config())
        return spec.run(ctx)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except SystemExit as exit_:  # rich exits 1 by itself when the reader of a pipe goes away
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BrokenPipeError:
        # The reader went away (``aggregate sessions | head``): not an error worth a line.
        _silence_stdout()
        return 141
    except AmbiguousSessionError as error:
        _fail(_message(error))
        for candidate in error.candidates:
            print(f"  {_message(ValueError(candidate))}", file=sys.stderr)
        return 1
    except (AggregatorError, OSError, ValueError) as error:
        _log().debug("command failed", exc_info=True)
        code = _fail(_message(error))
        return getattr(error, "exit_code", code)  # e.g. 2: a hub asked to listen beyond loopback without a token
    except Exception as error:  # noqa: BLE001 - the promise is: never a traceback
        return _unexpected(error, ctx)


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
