"""``aggregate tui``: time to first paint of a 100,000-event session, and key latency under a live burst.

Run ``python bench/tui.py`` (``--runs N`` first-paint runs per row, default 3;
``--events N`` session size, default 100,000; ``--rate N`` ingest rate, default
2,000 events/s; ``--presses N`` key presses per latency row, default 60;
``--quick``: 2 runs, 20,000 events, 20 presses; ``--json PATH`` also writes the
rows for ``run_all``).

The app runs headless (``App.run_test``, 160x48): the whole app, compositor
included, with no terminal to write to.

First paint (medians of ``--runs``), from constructing the app to the first
frame composed with the whole session in the timeline:

* baseline: an empty activity directory (the waiting panel);
* a saved session of ``--events`` events (tool calls, files, delegations from
  the raw-hook fixture, repeated; about 1.7 KB an event, so 168 MB for 100,000):
  listed from a warm index, loaded in the load worker (``SessionStore.load``),
  shown by the virtual timeline; ``SessionStore.load`` alone is timed too.

Key latency (median and 90th percentile of ``--presses`` presses, one every
50 ms or so): up / down in the focused timeline, each posted to the app as the
terminal driver posts keys; "key handled" is when the cursor has moved, "on
screen" when the next frame has been composed. (``Pilot.press`` is no measure
here: it waits until the whole process is idle, which a feeding thread never
lets it be.)

* baseline: nothing arriving;
* while a thread feeds ``--rate`` events/s into the aggregator the app shows
  (``handle_event``: normalize, session tracking, the journal written, as
  ``aggregate start`` does; the network is left out), spread over 8 sessions.
  Stop/SessionEnd are left out of the feed so the sessions stay open and no
  turn-end snapshot rewrites a growing file on every turn (real agents end
  turns every few dozen events, not hundreds of times a second).

Printed: the medians, each row's ratio to its baseline, the rate achieved and
that the timeline ended up showing every event fed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from textual import events

from common import ROOT, Row, announce, fill_defaults, machine_note, print_table, write_json

sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import fixtures_builder as fb  # noqa: E402

from agent_aggregator.aggregator import EventAggregator  # noqa: E402
from agent_aggregator.config import Config  # noqa: E402
from agent_aggregator.normalize import normalize  # noqa: E402
from agent_aggregator.store import SessionStore, session_file_name  # noqa: E402
from agent_aggregator.timeutil import format_timestamp  # noqa: E402
from agent_aggregator.tracker import rebuild_session  # noqa: E402
from agent_aggregator.tui.app import AggregateApp  # noqa: E402
from agent_aggregator.tui.widgets.timeline import Timeline  # noqa: E402

SIZE = (160, 48)
UTC = timezone.utc
BIG_ID = "b16b16b1-0000-4000-8000-000000100000"
SKIP_IN_FEED = {"Stop", "SessionEnd"}


# --- the 100,000-event session --------------------------------------------------------------------


def write_big_session(directory: Path, count: int) -> Path:
    """A saved session of ``count`` events: the raw-hook fixture's events repeated with fresh times and ids."""
    start = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
    templates = [
        normalize({**payload, "session_id": BIG_ID}, received_at=start)
        for _, payload in fb.raw_hook_session(BIG_ID, "/home/dev/projects/big", start)
        if payload.get("hook_event_name") not in SKIP_IN_FEED
    ]
    events = []
    for index in range(count):
        template = templates[index % len(templates)]
        event = type(template).from_dict(template.to_dict())
        event.timestamp = format_timestamp(start + timedelta(milliseconds=10 * index))
        event.event_id = f"{index:032x}"
        events.append(event)
    header = {"session_id": BIG_ID, "start_time": format_timestamp(start), "working_directory": "/home/dev/projects/big"}
    gc.disable()
    try:
        session = rebuild_session(header, events)
    finally:
        gc.enable()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / session_file_name(BIG_ID, session.start_time)
    session.finish("completed")
    session.save(path)
    SessionStore(directory).list_sessions()  # warm the index, as any earlier run would have
    return path


async def first_paint(directory: Path, expect: int) -> tuple[float, float]:
    """Seconds from constructing the app to (the first frame that shows events of the session in
    the timeline, the first frame that shows all ``expect`` of them). ``expect`` 0: the waiting
    panel, which is there once ``run_test`` hands over."""
    started = time.perf_counter()
    app = AggregateApp(Config(activity_directory=directory), connect=False)
    async with app.run_test(size=SIZE):
        screen = app.screen
        if expect == 0:
            assert screen.has_class("-waiting")
            done = time.perf_counter() - started
            return done, done
        timeline = screen.query_one(Timeline)
        some: list[float] = []
        whole: list[float] = []
        compose = screen._compositor_refresh

        def counted() -> None:
            compose()
            if timeline.total_count > 0:
                some.append(time.perf_counter())
            if timeline.total_count >= expect:
                whole.append(time.perf_counter())

        screen._compositor_refresh = counted  # type: ignore[method-assign]
        while not whole:
            await asyncio.sleep(0.005)
        return some[0] - started, whole[0] - started


# --- a live burst ------------------------------------------------------------------------------------


class Feeder(threading.Thread):
    """Feeds raw hook payloads into the aggregator at ``rate`` events/s until stopped."""

    def __init__(self, aggregator: EventAggregator, rate: int, sessions: int = 8) -> None:
        super().__init__(name="feeder", daemon=True)
        self.aggregator = aggregator
        self.rate = rate
        self.fed = 0
        self.stopped = threading.Event()
        start = datetime.now(UTC)
        self.templates = []
        for number in range(sessions):
            session_id = str(uuid.UUID(int=number + 1))
            cwd = f"/home/dev/projects/burst-{number}"
            self.templates.extend(
                payload for _, payload in fb.raw_hook_session(session_id, cwd, start)
                if payload.get("hook_event_name") not in SKIP_IN_FEED
            )

    def run(self) -> None:
        began = time.perf_counter()
        batch = max(1, self.rate // 100)  # a batch every 10 ms
        while not self.stopped.is_set():
            for _ in range(batch):
                template = self.templates[self.fed % len(self.templates)]
                self.aggregator.handle_event(
                    {**template, "timestamp": format_timestamp(datetime.now(UTC)), "event_id": uuid.uuid4().hex}
                )
                self.fed += 1
            due = began + self.fed / self.rate
            delay = due - time.perf_counter()
            if delay > 0:
                self.stopped.wait(delay)

    def stop(self) -> float:
        self.stopped.set()
        self.join()
        return self.fed


async def key_latency(directory: Path, presses: int, rate: int) -> tuple[list[float], list[float], dict[str, float]]:
    """(handled, painted) seconds per key press, and what the feed did.

    A press is a Key event posted to the app (as the terminal driver does);
    *handled* is when the timeline's cursor has moved, *painted* when the next
    frame after that has been composed (the screen's compositor refresh).
    """
    aggregator = EventAggregator(config=Config(activity_directory=directory))
    aggregator.start(connect=False)
    feeder = Feeder(aggregator, rate) if rate else None
    app = AggregateApp(aggregator.config, aggregator=aggregator)
    handled: list[float] = []
    painted: list[float] = []
    info: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        if feeder is not None:
            feeder.start()
            began = time.perf_counter()
            while aggregator.total_events < rate:  # a second of traffic first
                await asyncio.sleep(0.05)
        else:
            for _, payload in fb.raw_hook_session():
                aggregator.handle_event({**payload, "timestamp": format_timestamp(datetime.now(UTC))})
        screen = app.screen
        timeline = screen.query_one(Timeline)
        while screen.current is None or timeline.total_count < 10:
            await asyncio.sleep(0.05)
        frames: list[tuple[float, int]] = []  # (when a frame was composed, the cursor row it shows)
        compose = screen._compositor_refresh

        def counted() -> None:
            compose()
            frames.append((time.perf_counter(), timeline.cursor_row))

        screen._compositor_refresh = counted  # type: ignore[method-assign]
        timeline.focus()
        first, second = ("up", "down") if timeline.cursor_row > 0 else ("down", "up")
        for index in range(presses):
            key = first if index % 2 == 0 else second
            before = timeline.cursor_row
            started = time.perf_counter()
            key_event = events.Key(key, None)
            key_event.set_sender(app)  # as the driver does: input from the terminal
            app.post_message(key_event)
            while timeline.cursor_row == before:
                await asyncio.sleep(0.0005)
            done = time.perf_counter()
            while not any(at >= started and row != before for at, row in frames):
                await asyncio.sleep(0.0005)
            handled.append(done - started)
            painted.append(next(at for at, row in frames if at >= started and row != before) - started)
            await asyncio.sleep(0.05)  # a user's pace, not a key-repeat storm
        if feeder is not None:
            fed = feeder.stop()
            info["rate"] = fed / (time.perf_counter() - began)
            info["fed"] = fed
            await asyncio.sleep(0.6)  # two refreshes: the last events reach the screen
            with aggregator.lock:
                info["shown_ok"] = float(timeline.total_count == len(screen.current.events))
        await app.run_action("quit")
        del pilot
    if aggregator.running:
        aggregator.stop()
    return handled, painted, info


# --- report ------------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 runs, 20,000 events, 20 presses")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--events", type=int)
    parser.add_argument("--rate", type=int, default=2_000)
    parser.add_argument("--presses", type=int)
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON (for run_all)")
    args = fill_defaults(parser, parser.parse_args(argv), runs=(2, 3), events=(20_000, 100_000), presses=(20, 60))
    command = announce("tui.py", argv)
    e = f"{args.events:,}"
    judged = args.events >= 100_000
    rows = {
        "paint": Row(f"tui: first paint of a {e}-event session, its last events (headless {SIZE[0]}x{SIZE[1]})",
                     "s", "empty directory (waiting panel)", "< 1 s" if judged else "(< 1 s at 100,000)",
                     (lambda ours, ratio: ours < 1.0) if judged else None, command),
        "whole": Row(f"tui: all {e} events in the timeline", "s", "empty directory (waiting panel)", "-", None,
                     command),
        "load": Row(f"tui: of which SessionStore.load of the {e} events", "s", "-", "-", None, command),
        "key": Row(f"tui: key press to screen while {args.rate:,} events/s arrive (median)", "s",
                   "nothing arriving", "< 100 ms", lambda ours, ratio: ours < 0.1, command),
        "key90": Row(f"tui: key press to screen while {args.rate:,} events/s arrive (p90)", "s",
                     "nothing arriving", "< 100 ms", lambda ours, ratio: ours < 0.1, command),
    }

    with tempfile.TemporaryDirectory(prefix="bench-tui-") as temp:
        root = Path(temp)
        print(f"building a {args.events:,}-event session...", flush=True)
        began = time.perf_counter()
        path = write_big_session(root / "big", args.events)
        print(f"  {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - began:.1f} s", flush=True)

        for run in range(args.runs):  # round-robin: machine load hits both rows alike
            gc.collect()  # each run starts clean, as a new process would (the last one's events are garbage)
            empty, _ = asyncio.run(first_paint(root / f"empty-{run}", 0))
            gc.collect()
            big, whole = asyncio.run(first_paint(root / "big", args.events))
            rows["paint"].add(big, empty)
            rows["whole"].add(whole, empty)
            print(f"  first paint run {run + 1}: {big:.2f} s, whole session {whole:.2f} s"
                  f" (empty directory {empty:.2f} s)", flush=True)
        for _ in range(args.runs):
            store = SessionStore(root / "big", rebuild=rebuild_session)
            began = time.perf_counter()
            store.load(BIG_ID)
            rows["load"].add(time.perf_counter() - began)
            del store
            gc.collect()

        idle_handled, idle_painted, _ = asyncio.run(key_latency(root / "idle", args.presses, 0))
        busy_handled, busy_painted, info = asyncio.run(key_latency(root / "busy", args.presses, args.rate))
        # One sample per press: pair the busy presses with the idle ones in order (medians compare alike).
        for busy, idle in zip(busy_painted, idle_painted):
            rows["key"].add(busy, idle)
        p90_busy, p90_idle = percentile(busy_painted, 0.9), percentile(idle_painted, 0.9)
        rows["key90"].add(p90_busy, p90_idle)
        rows["key"].note = (f"the feeding thread achieved {info['rate']:,.0f} events/s of the {args.rate:,} asked"
                            f" ({info['fed']:,.0f} events fed)")
        print(f"  key handled (before the frame): {statistics.median(busy_handled) * 1000:.1f} ms busy,"
              f" {statistics.median(idle_handled) * 1000:.1f} ms idle")
        print(f"  ingest achieved {info['rate']:,.0f} events/s ({info['fed']:,.0f} fed);"
              f" timeline shows every event of its session: {'yes' if info['shown_ok'] else 'NO'}")
    print(f"agent-aggregator TUI bench: {args.runs} first-paint runs, {args.presses} presses; medians;"
          f" {machine_note()}")
    table = list(rows.values())
    print_table(table)
    write_json(args.json, table)
    return 0 if info["shown_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
