"""``aggregate``: the command line. Thin: parse, call the layers below, print.

Each command is one function registered with ``@command``; its arguments are
declared beside it, so adding ``start``/``hook``/``tui`` later touches nothing
else. Module import stays cheap (argparse and our exceptions only): rich, the
store and the aggregator are imported inside the commands that use them, so
``aggregate hook`` and ``--help`` start in bare-Python time.

Every failure is one line on stderr and a non-zero exit, never a traceback:
1 for errors, 2 for usage errors (argparse), 130 for Ctrl+C.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator, NamedTuple, Sequence

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
EXPORT_FORMATS_HELP = "full, summary, events, csv, markdown"
SORT_KEYS = ("time", "events", "duration")
CAPTURE_HINT = (
    "Load recorded hook payloads with `aggregate ingest FILE.jsonl` "
    "(see the README's 'Try it in one minute'), then run this again."
)

# --- command registry --------------------------------------------------------------------


class Command(NamedTuple):
    """One subcommand: its function, its help and its own arguments."""

    name: str
    help: str
    run: Callable[["Context"], int]
    arguments: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = ()
    needs_config: bool = True


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
        from .aggregator import rebuild_session
        from .store import SessionStore

        return SessionStore(self.activity_directory, rebuild=rebuild_session)

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


def print_json(value: Any) -> None:
    """JSON for scripts: written directly, never through rich (no wrapping, no colour)."""
    from .jsonio import dumps

    sys.stdout.write(dumps(value, indent=True).decode("utf-8") + "\n")
    sys.stdout.flush()


def _no_sessions(ctx: Context) -> int:
    ctx.line(f"No sessions captured yet in {ctx.activity_directory}")
    ctx.line(CAPTURE_HINT)
    return 0


def _local_time(value: Any, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    from .timeutil import parse_timestamp

    moment = parse_timestamp(value)
    return moment.astimezone().strftime(fmt) if moment is not None else "-"


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
    from datetime import datetime, timezone

    from .timeutil import parse_timestamp

    oldest = datetime.min.replace(tzinfo=timezone.utc)

    def started(summary: "SessionSummary") -> datetime:
        return parse_timestamp(summary.start_time) or oldest

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
    ctx.line(("Captured Sessions:", "bold"))
    for summary in shown:
        ctx.line("")
        ctx.line("  ", ("Session: ", "bold"), (one_line(summary.session_id), "cyan"))
        ctx.field("Start", _local_time(summary.start_time), indent=4)
        ctx.field("Duration", format_duration(summary.duration_ms), indent=4)
        ctx.field("Events", summary.event_count, indent=4)
        ctx.field("Status", display_status(summary, ctx.config.session_timeout_minutes), indent=4)
        ctx.field("Project", project_name(summary.working_directory), indent=4)
        ctx.field("File", Path(summary.file_path).name, indent=4)
    ctx.line("")
    if len(shown) < total:
        ctx.line(f"Showing {len(shown)} of {total} sessions in {ctx.activity_directory}")
    else:
        ctx.line(f"{total} session{'s' if total != 1 else ''} in {ctx.activity_directory}")
    return 0


# --- view ---------------------------------------------------------------------------------


@command(
    "view",
    "show one session's details",
    arg("session_id", metavar="ID", help="session id, unique prefix, or a session file's path"),
    arg("--verbose", "-v", action="store_true", help="add the full prompt and the event timeline"),
    arg("--json", action="store_true", help="print the whole session as JSON"),
)
def view_session(ctx: Context) -> int:
    store = ctx.store()
    session, path = _resolve(ctx, store, ctx.args.session_id)
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
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable; keeps type checkers content


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


class _Unparsed(NamedTuple):
    """A line that is not JSON: the aggregator gets it as is and counts the rejection."""

    line: bytes
    where: str


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
        aggregator.start()  # StoreLockedError while a live aggregator holds the directory
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
    import logging  # deferred: keeps `aggregate hook` and `--help` light

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
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
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
        return _fail(_message(error))
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
