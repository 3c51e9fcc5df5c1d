"""``aggregate replay ID|PATH``: a saved session played back on the command line.

The timeline is printed as the replay's clock passes each event (the line format
of ``aggregate view --verbose``, after the replayed time), then a summary that
says whether the replayed session equals the saved one. ``--emit URL`` also sends
each event to a hub as it plays (``replay_emit``); ``--json`` prints JSON Lines;
``--tui`` opens the replay screen instead. The replay itself is ``replay.Replay``:
the same engine, speeds and gap compression as the TUI. Nothing is written to
the activity directory.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .describe import event_summary, one_line, project_name
from .errors import AggregatorError
from .model import AgentSession, SessionEvent
from .replay import Replay, differences, gap_label, speed_label
from .timeutil import format_duration, parse_timestamp

if TYPE_CHECKING:  # pragma: no cover
    from .cli import Context

SLEEP_SLICE = 0.5  # seconds: the longest single sleep (Ctrl+C and the clock stay responsive)


def elapsed_text(seconds: float) -> str:
    """Replayed time as ``m:ss.s``."""
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


class TimelinePrinter:
    """Prints replayed events as ``aggregate view --verbose`` prints its timeline, after the replayed time."""

    def __init__(self, ctx: "Context", session: AgentSession) -> None:
        self.ctx = ctx
        self.root = session.working_directory
        days = {_local(event.timestamp, "%Y-%m-%d") for event in session.events}
        self.fmt = "%H:%M:%S.%f" if len(days) <= 1 else "%Y-%m-%d %H:%M:%S.%f"
        self.type_width = min(max((len(one_line(event.event_type)) for event in session.events), default=0), 24)
        self.width = ctx.out.width if ctx.out.is_terminal else None

    def line(self, event: SessionEvent, elapsed: float) -> None:
        moment = parse_timestamp(event.timestamp)
        stamp = moment.astimezone().strftime(self.fmt)[:-3] if moment else "-"
        clock = elapsed_text(elapsed)
        category = one_line(event.category)
        event_type = one_line(event.event_type)
        used = 2 + len(clock) + 2 + len(stamp) + 2 + max(len(category), 10) + 2 + max(len(event_type), self.type_width) + 2
        room = (self.width - used) if self.width else 240
        self.ctx.line(
            "  ", (f"{clock:>7}", "bold"), "  ", (stamp, "dim"), "  ", (f"{category:<10}", "cyan"), "  ",
            f"{event_type:<{self.type_width}}  ",
            event_summary(event, max(room, 20), root=self.root),
        )


def _local(value: Any, fmt: str) -> str:
    moment = parse_timestamp(value)
    return moment.astimezone().strftime(fmt) if moment is not None else "-"


def run(
    ctx: "Context",
    session: AgentSession,
    source: Path | None,
    *,
    speed: float,
    gap_cap: float | None,
    emit: str | None = None,
    fresh_ids: bool = False,
    as_json: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Play ``session`` to the end, printing (and emitting) each event when its time comes."""
    emitter = None
    if emit:
        from .replay_emit import Emitter

        emitter = Emitter(emit, fresh_ids=fresh_ids)
    replay = Replay(session, speed=speed, gap_cap=gap_cap, checkpoint_every=0)  # forward only: no checkpoints
    printer = None if as_json else TimelinePrinter(ctx, session)
    if printer is not None:
        _print_header(ctx, session, source, replay, emit)
    started = monotonic()
    replay.play()
    last = started
    try:
        while replay.playing:
            wait = replay.wall_time_to_next()
            if wait:
                sleep(min(wait, SLEEP_SLICE))
            now = monotonic()
            applied = replay.advance(now - last)
            last = now
            for index in applied:
                event = replay.source[index]
                if emitter is not None:
                    emitter.emit(event)
                if printer is not None:
                    printer.line(event, replay.offsets[index])
                else:
                    _json_line({"index": index + 1, "elapsed": round(replay.offsets[index], 3), "event": event.to_dict()})
    except KeyboardInterrupt:
        print(f"stopped at event {replay.cursor} of {replay.total}", file=sys.stderr)
        raise
    finally:
        if emitter is not None:
            emitter.close()
    took = monotonic() - started
    summary = _summary(session, replay, took, emit, emitter.sent if emitter is not None else 0)
    if as_json:
        _json_line({"summary": summary})
    else:
        _print_summary(ctx, replay, summary)
    return 0


def _json_line(value: Any) -> None:
    from .jsonio import dumps

    sys.stdout.write(dumps(value).decode("utf-8") + "\n")
    sys.stdout.flush()


def _print_header(ctx: "Context", session: AgentSession, source: Path | None, replay: Replay, emit: str | None) -> None:
    project = project_name(session.working_directory)
    what = one_line(session.session_id[:8]) + (f" ({one_line(project)})" if project != "-" else "")
    if source is not None:
        what += f" from {one_line(source.name)}"
    ctx.line(("Replaying session ", "bold"), (what, "bold"))
    real = format_duration(session.metrics.session_duration_ms)
    pace = "as fast as possible" if speed_label(replay.speed) == "max" else (
        f"at {speed_label(replay.speed)}, {gap_label(replay.gap_cap)}: "
        f"{format_duration(replay.duration / replay.speed * 1000)}"
    )
    ctx.line(f"  {replay.total:,} events over {real}; {pace}. Ctrl+C stops.")
    if emit:
        ctx.line(f"  Sending each event to {one_line(emit)}")
    ctx.line("")


def _summary(session: AgentSession, replay: Replay, took: float, emit: str | None, sent: int) -> dict[str, Any]:
    replayed = replay.session
    differs = differences(replayed, session)
    return {
        "session_id": session.session_id,
        "events_replayed": replay.cursor,
        "events_total": replay.total,
        "speed": speed_label(replay.speed),
        "gap_cap_seconds": replay.gap_cap,
        "replayed_seconds": round(replay.duration, 3),
        "wall_seconds": round(took, 3),
        "session_duration_ms": session.metrics.session_duration_ms,
        "status": replayed.status,
        "delegations": [d.agent_type for d in replayed.delegations],
        "files_modified": list(replayed.metrics.files_modified),
        "matches_saved": not differs,
        "differences": differs,
        "emitted_to": emit,
        "events_emitted": sent,
    }


def _print_summary(ctx: "Context", replay: Replay, summary: dict[str, Any]) -> None:
    ctx.line("")
    ctx.line(
        ("Replayed ", "bold"),
        (f"{summary['events_replayed']:,} of {summary['events_total']:,} events", "bold"),
        f" in {summary['wall_seconds']:.1f} s (the session took {format_duration(summary['session_duration_ms'])}).",
    )
    delegations = summary["delegations"]
    agents = f" ({', '.join(one_line(a) for a in delegations)})" if delegations else ""
    files = len(summary["files_modified"])
    ctx.line(
        f"  {one_line(summary['status'])} · {len(delegations)} delegation{'s' if len(delegations) != 1 else ''}{agents}"
        f" · {files} file{'s' if files != 1 else ''} modified"
    )
    if summary["matches_saved"]:
        ctx.line("  The replayed session equals the saved one (events, delegations, metrics, files).")
    else:
        ctx.line(("  The replayed session differs from the saved one in: ", "yellow"), ", ".join(summary["differences"]))
    if summary["emitted_to"]:
        ctx.line(f"  Sent {summary['events_emitted']:,} events to {one_line(summary['emitted_to'])}.")


def run_tui(ctx: "Context", session: AgentSession, source: Path | None, *, speed: float, gap_cap: float | None) -> int:
    """``--tui``: the replay screen, alone (leaving it quits)."""
    from .config import setup_logging

    if not sys.stdin.isatty() or not sys.__stderr__.isatty():  # Textual draws on stderr
        raise AggregatorError("`aggregate replay --tui` needs a terminal (without --tui it prints the timeline)")
    assert ctx.config is not None
    setup_logging(ctx.config, stderr=False)
    from .tui.screens.replay import ReplayApp, replay_label

    app = ReplayApp(ctx.config, session, label=replay_label(session, source), speed=speed, gap_cap=gap_cap)
    app.run()
    return app.return_code or 0


__all__ = ["TimelinePrinter", "elapsed_text", "run", "run_tui"]
