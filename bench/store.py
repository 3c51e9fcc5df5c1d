"""Store benchmarks: listing, memory per event, ingest, final save and load.

Run ``python bench/store.py`` (5 runs; S = 10,000 sessions, R = 100,000 events)
or ``python bench/store.py --quick`` (3 runs; S = 2,000, R = 20,000; about 30 s).
On 2 cores the full run takes 5-6 minutes today, most of it in the five 100k
ingests at 2-3k events/s; at the 8k/s target it would take under 3 minutes.
It prints one table of medians. Every row is measured against a baseline taken
in the same run on the same data, so the ratio holds on any machine; the ratio
column is the median of each run's own ratio.

What each row measures, and why that baseline:

1. ``aggregate sessions --json`` over S saved sessions, as a real subprocess
   (and the text listing, warm, output to a pipe).
   *warm*: the listing index ``.index.json`` is valid; *cold*: it was deleted
   first, so every session file is parsed again (the files are in the page
   cache either way: "cold" is about the index, not the disk). Baseline: the
   start-up of the same interpreter doing nothing (``python -c pass``), the
   floor any console command pays. Target (from the issue): warm under 0.5 s.
   In-process ``SessionStore(d).list_sessions()``, warm and cold, against the
   least work a listing can do: decode ``.index.json`` (warm), or read and
   decode every session file (cold).
2. R realistic events (prompt, Pre/Post Read/Edit/Bash, Agent delegations with
   their subagent's tool calls; about 1 KB of JSON each) fed through
   ``EventAggregator.handle_event`` into one session, with the journal on, as in
   production. Each run is a fresh forked process, so its memory figure is its own.
   *memory*: growth of the resident set over the ingest, divided by R, against
   the mean size of one event as saved JSON (``len(jsonio.dumps(event.to_dict()))``).
   Target: under 2x. RSS is used rather than tracemalloc because it is read in
   the timed pass at no cost (tracemalloc halves the ingest rate), and because
   it is what the machine pays, allocator overhead included.
   *ingest*: events/s of ``handle_event(orjson.loads(raw))`` against a bare loop
   that only decodes the same payloads: the decode is the part no ingest can
   skip. Target: at least the transport ceiling of DESIGN section 10 (8k/s).
   It is reported over all R events and over the last tenth alone. The last
   tenth lands in a session that is already large, so a cost that grows with
   the session shows there.
   *finalize*: ``aggregator.stop()`` (finish; the final file is written
   atomically and fsynced; the journal is removed) against ``orjson.dumps`` of
   the session's ready-made dict written to a plain file: the bytes alone,
   without ``to_dict``, indentation or fsync.
3. Load of that R-event session file: ``SessionStore.load`` (what ``view``,
   ``export`` and the TUI use) and ``AgentSession.load`` (the seeds' API)
   against a bare ``orjson.loads`` of the file's bytes, and the store's load
   against ``json.loads``. Then ``aggregate view <id>`` as a real subprocess
   against a subprocess that only decodes the file with orjson.
   *memory loaded*: growth of the resident set over ``SessionStore.load`` in a
   fresh forked process, divided by R, against the event's saved JSON, as for
   ingest: what a viewer holding the session pays. Target: under 2x.

``--skip-listing`` measures parts 2 and 3 only (memory, ingest, load).

In-process baselines run with the garbage collector paused, as the store does
for its big parses. Otherwise a baseline that builds many objects mostly
measures gc passes.
Only the standard library and agent_aggregator (with its orjson) are used.
Temporary directories are removed on exit.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from common import Row, announce, bench_options, report

from agent_aggregator import jsonio
from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.config import Config
from agent_aggregator.model import AgentSession
from agent_aggregator.store import INDEX_NAME, SessionStore, session_file_name

UTC = timezone.utc
START = datetime(2026, 3, 14, 9, 30, 0, tzinfo=UTC)
CWD = "/home/dev/projects/inventory-api"
INGEST_TARGET = 8000  # events/s: the low end of the transport ceiling, DESIGN section 10


@dataclass(frozen=True)
class Sizes:
    runs: int
    sessions: int
    events: int


FULL = Sizes(runs=5, sessions=10_000, events=100_000)
QUICK = Sizes(runs=3, sessions=2_000, events=20_000)


# --- timing ------------------------------------------------------------------------------------


def timed(func: Callable[[], Any]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def timed_gc_paused(func: Callable[[], Any]) -> float:
    """A baseline's time with the collector paused, as the store runs its big parses:
    otherwise a baseline that allocates many objects measures gc passes, not its own work."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return timed(func)
    finally:
        if enabled:
            gc.enable()


# --- realistic payloads (shapes of raw Claude Code 2.1.x hooks, as in the test fixtures) ---------


TRANSCRIPT = "/home/dev/.claude/projects/-home-dev-projects-inventory-api/{sid}.jsonl"
ORDERS_PY = (
    "from fastapi import APIRouter, HTTPException\n\nfrom .models import Order, OrderIn\n"
    "from .store import STORE\n\nrouter = APIRouter(prefix=\"/orders\")\n\n\n"
    "@router.post(\"\", status_code=201)\ndef create_order(payload: OrderIn) -> Order:\n"
    "    item = STORE.items.get(payload.sku)\n    if item is None:\n"
    "        raise HTTPException(status_code=404, detail=\"unknown sku\")\n"
    "    item.stock -= payload.quantity\n    return STORE.add_order(payload)\n"
)
EDIT_OLD = "    item.stock -= payload.quantity\n"
EDIT_NEW = (
    "    if payload.quantity <= 0:\n"
    "        raise HTTPException(status_code=422, detail=\"quantity must be positive\")\n"
    "    if payload.quantity > item.stock:\n"
    "        raise HTTPException(status_code=409, detail=\"insufficient stock\")\n"
    "    item.stock -= payload.quantity\n"
)
PROMPT = (
    "Orders can be created with a negative quantity and we can oversell stock. "
    "Fix create_order so it rejects both, add tests, and note it in the CHANGELOG."
)
PYTEST_OUT = "..                                                                       [100%]\n2 passed in 0.38s"
SUBAGENT_REPLY = (
    "Orders are created in src/inventory/orders.py, create_order (line 10). Stock is decremented at "
    "line 14 with no check on the quantity or on the available stock. No tests cover this path."
)
USAGE = {
    "input_tokens": 11, "cache_creation_input_tokens": 3120, "cache_read_input_tokens": 14208,
    "output_tokens": 402, "service_tier": "standard",
}


class StreamBuilder:
    """One session's raw hook payloads, one turn at a time (17 events, about 1 KB each on average)."""

    def __init__(self, session_id: str, start: datetime = START) -> None:
        self.sid = session_id
        self.clock = start
        self.calls = 0
        self.turns = 0

    def _tick(self, ms: int) -> str:
        self.clock += timedelta(milliseconds=ms)
        return self.clock.isoformat(timespec="milliseconds")

    def _base(self, event: str, **fields: Any) -> dict[str, Any]:
        return {
            "session_id": self.sid, "transcript_path": TRANSCRIPT.format(sid=self.sid), "cwd": CWD,
            "prompt_id": f"{self.sid[:8]}-prompt-{self.turns:06d}", "permission_mode": "acceptEdits",
            "hook_event_name": event, **fields,
        }

    def _tool_pair(self, tool: str, tool_input: dict, response: dict, agent: dict) -> list[dict]:
        self.calls += 1
        common = {
            **agent, "effort": {"level": "high"}, "tool_name": tool, "tool_input": tool_input,
            "tool_use_id": f"toolu_{self.sid[:8]}{self.calls:016d}",
        }
        pre = self._base("PreToolUse", **common, timestamp=self._tick(420))
        post = self._base("PostToolUse", **common, tool_response=response, duration_ms=31, timestamp=self._tick(31))
        return [pre, post]

    def _work(self, n: int, agent: dict) -> list[dict]:
        """Read, Edit and Bash of one file: the bulk of any session."""
        path = f"{CWD}/src/inventory/module_{n % 97}.py"
        read = {
            "type": "text",
            "file": {"filePath": path, "content": ORDERS_PY, "numLines": 15, "startLine": 1, "totalLines": 15},
        }
        edit_in = {"file_path": path, "old_string": EDIT_OLD, "new_string": EDIT_NEW, "replace_all": False}
        patch = {"oldStart": 11, "oldLines": 5, "newStart": 11, "newLines": 9, "lines": EDIT_NEW.splitlines()}
        edit_out = {
            "filePath": path, "oldString": EDIT_OLD, "newString": EDIT_NEW, "originalFile": ORDERS_PY,
            "structuredPatch": [patch], "userModified": False, "replaceAll": False,
        }
        bash_in = {"command": "python -m pytest tests/test_orders.py -q", "description": "Run the order tests"}
        bash_out = {"stdout": PYTEST_OUT, "stderr": "", "interrupted": False, "isImage": False}
        return (
            self._tool_pair("Read", {"file_path": path}, read, agent)
            + self._tool_pair("Edit", edit_in, edit_out, agent)
            + self._tool_pair("Bash", bash_in, bash_out, agent)
        )

    def turn(self) -> list[dict]:
        """A prompt, the main agent's own work, then one delegation doing the same work.

        No ``Stop``: a turn end saves a snapshot of the whole session, which is
        not what this stream measures (``ending`` adds one for the small template).
        """
        self.turns += 1
        n = self.turns
        events = [self._base("UserPromptSubmit", prompt=f"{PROMPT} (turn {n})", timestamp=self._tick(2300))]
        events += self._work(n, {})
        self.calls += 1
        agent_id = f"{n:017x}"
        sub = {"agent_id": agent_id, "agent_type": "general-purpose"}
        task_in = {
            "description": "Locate order creation code", "prompt": PROMPT,
            "subagent_type": "general-purpose", "run_in_background": False,
        }
        task = {
            "effort": {"level": "high"}, "tool_name": "Agent", "tool_input": task_in,
            "tool_use_id": f"toolu_{self.sid[:8]}{self.calls:016d}",
        }
        task_out = {
            "status": "completed", "prompt": PROMPT, "agentId": agent_id,
            "content": [{"type": "text", "text": SUBAGENT_REPLY}], "totalDurationMs": 2061, "usage": USAGE,
        }
        events.append(self._base("PreToolUse", **task, timestamp=self._tick(420)))
        events.append(self._base("SubagentStart", **sub, timestamp=self._tick(140)))
        events += self._work(n + 1, sub)
        events.append(self._base(
            "SubagentStop", **sub, stop_hook_active=False, last_assistant_message=SUBAGENT_REPLY,
            timestamp=self._tick(900),
        ))
        events.append(self._base(
            "PostToolUse", **task, tool_response=task_out, duration_ms=2061, timestamp=self._tick(60),
        ))
        return events

    def events(self, count: int) -> Iterator[dict]:
        made = 0
        while made < count:
            for payload in self.turn()[: count - made]:
                made += 1
                yield payload

    def ending(self) -> list[dict]:
        stop = self._base("Stop", last_assistant_message="Done.", stop_hook_active=False, timestamp=self._tick(1500))
        end = self._base("SessionEnd", reason="prompt_input_exit", timestamp=self._tick(30000))
        return [stop, end]


def session_id(n: int) -> str:
    return f"{n:08x}-8b3d-4a7e-9c15-{n:012x}"


def new_aggregator(directory: Path) -> EventAggregator:
    aggregator = EventAggregator(config=Config(activity_directory=directory))
    aggregator.start()
    return aggregator


# --- 1. listing ----------------------------------------------------------------------------------


def template_session(scratch: Path) -> dict[str, Any]:
    """One small realistic session (19 events, one delegation) saved by the real pipeline."""
    directory = scratch / "template"
    aggregator = new_aggregator(directory)
    builder = StreamBuilder(session_id(0))
    for payload in [*builder.turn(), *builder.ending()]:
        aggregator.handle_event(payload)
    aggregator.stop()
    (path,) = directory.glob("session_*.json")
    return jsonio.read_json(path)


def write_sessions(directory: Path, template: dict[str, Any], count: int) -> None:
    """``count`` copies of the template with their own id and start time, in store naming."""
    directory.mkdir(parents=True)
    for n in range(1, count + 1):
        sid = session_id(n)
        shift = timedelta(minutes=17 * n)
        start = datetime.fromisoformat(template["start_time"]) - shift
        copy = {
            **template,
            "session_id": sid,
            "start_time": start.isoformat(),
            "end_time": (datetime.fromisoformat(template["end_time"]) - shift).isoformat(),
            "events": [{**event, "session_id": sid} for event in template["events"]],
        }
        (directory / session_file_name(sid, start)).write_bytes(jsonio.dumps(copy, indent=True))


def decode_files(paths: list[Path]) -> None:
    """Read and decode every file, keeping nothing (as a cold listing must at least do)."""
    loads = orjson.loads
    for path in paths:
        loads(path.read_bytes())


def command_env(scratch: Path) -> dict[str, str]:
    """As a normal install runs: bytecode cached (a checkout run with PYTHONDONTWRITEBYTECODE=1
    compiles every module of the command on every start, about 150 ms here), in a temporary prefix."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    return env


def run_command(directory: Path, argv: list[str]) -> float:
    """Wall time of one console command, output discarded; it must succeed."""
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, cwd=directory.parent, env=command_env(directory.parent))
    return time.perf_counter() - start


def bench_listing(scratch: Path, sizes: Sizes, rows: dict[str, Row]) -> None:
    directory = scratch / "sessions"
    write_sessions(directory, template_session(scratch), sizes.sessions)
    files = sorted(directory.glob("session_*.json"))
    index = directory / INDEX_NAME
    command = [sys.executable, "-m", "agent_aggregator", "--save-dir", str(directory), "sessions", "--json"]
    text = command[:-1]  # the listing people read: 8 lines per session
    startup = [sys.executable, "-c", "pass"]
    run_command(directory, command)  # build the index once; runs below alternate cold and warm
    for _ in range(sizes.runs):
        index.unlink()
        cold = run_command(directory, command)
        rows["cmd_cold"].add(cold, run_command(directory, startup))
        rows["cmd_warm"].add(run_command(directory, command), run_command(directory, startup))
        rows["cmd_text"].add(run_command(directory, text), run_command(directory, startup))
        index.unlink()
        cold = timed(lambda: SessionStore(directory).list_sessions())
        rows["list_cold"].add(cold, timed_gc_paused(lambda: decode_files(files)))
        warm = timed(lambda: SessionStore(directory).list_sessions())
        rows["list_warm"].add(warm, timed_gc_paused(lambda: orjson.loads(index.read_bytes())))
    shutil.rmtree(directory)


# --- 2. memory, ingest rate, finalize -----------------------------------------------------------


def raw_payloads(count: int) -> list[bytes]:
    """The payloads as they arrive on the wire: JSON bytes, each decoded once by the consumer."""
    return [orjson.dumps(payload) for payload in StreamBuilder(session_id(1)).events(count)]


def ingest(aggregator: EventAggregator, raws: list[bytes]) -> None:
    handle, loads = aggregator.handle_event, orjson.loads
    for raw in raws:
        handle(loads(raw))


def decode_only(raws: list[bytes]) -> None:
    loads = orjson.loads
    for raw in raws:
        loads(raw)


def rss_bytes() -> int:
    """Resident set size now (Linux /proc; elsewhere the peak, which only grows during ingest)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def only_session(aggregator: EventAggregator) -> AgentSession:
    (session,) = aggregator.tracker.sessions.values()
    return session


def ingest_run(directory: Path, count: int) -> dict[str, float]:
    """One ingest of ``count`` events into a fresh aggregator, then its final save.

    Runs in a fresh process (see ``in_child``) so the memory growth it reports
    is this ingest's alone, not memory that an earlier run freed and this one reused.
    """
    raws = raw_payloads(count)
    split = count - max(1, count // 10)
    head, tail = raws[:split], raws[split:]  # the tail lands in an already large session
    aggregator = new_aggregator(directory)
    gc.collect()
    before = rss_bytes()
    ours_head = timed(lambda: ingest(aggregator, head))
    ours_tail = timed(lambda: ingest(aggregator, tail))
    gc.collect()
    held = rss_bytes() - before
    decode, decode_tail = timed(lambda: decode_only(raws)), timed(lambda: decode_only(tail))
    session = only_session(aggregator)
    if session.event_count != count:
        raise RuntimeError(f"{session.event_count} of {count} events kept: {aggregator.get_status()}")
    saved = sum(len(jsonio.dumps(event.to_dict())) for event in session.events) / count
    plain, data = directory.parent / "plain.json", session.to_dict()
    dump = timed(lambda: plain.write_bytes(orjson.dumps(data)))  # the bytes alone: no to_dict, indent, fsync
    plain.unlink()
    del data
    finalize = timed(aggregator.stop)
    return {
        "ours": ours_head + ours_tail, "decode": decode, "ours_tail": ours_tail, "decode_tail": decode_tail,
        "tail": len(tail), "held": held / count, "saved": saved, "finalize": finalize, "dump": dump,
    }


def in_child(func: Callable[..., dict[str, float]], *args: Any) -> dict[str, float]:
    """``func(*args)`` in a forked process; its result (or its error) comes back by pipe."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def target() -> None:
        try:
            send.send(("ok", func(*args)))
        except BaseException:  # noqa: BLE001 - report anything to the parent, then exit
            send.send(("error", traceback.format_exc()))

    child = context.Process(target=target)
    child.start()
    send.close()
    try:
        status, value = receive.recv()
    except EOFError:
        status, value = "error", "the child exited without a result"
    child.join()
    if status != "ok":
        raise RuntimeError(f"{func.__name__} failed:\n{value}")
    return value


def bench_ingest(scratch: Path, sizes: Sizes, rows: dict[str, Row]) -> Path:
    """Returns the last run's saved session file, kept for the load bench."""
    directory = scratch / "ingest"
    for _ in range(sizes.runs):
        shutil.rmtree(directory, ignore_errors=True)
        result = in_child(ingest_run, directory, sizes.events)
        rows["memory"].add(result["held"], result["saved"])
        rows["ingest"].add(sizes.events / result["ours"], sizes.events / result["decode"])
        rows["ingest_tail"].add(result["tail"] / result["ours_tail"], result["tail"] / result["decode_tail"])
        rows["finalize"].add(result["finalize"], result["dump"])
    (path,) = directory.glob("session_*.json")
    return path


# --- 3. load ---------------------------------------------------------------------------------------


def load_memory_run(path: Path) -> dict[str, float]:
    """Resident memory a loaded session holds (``SessionStore.load``, as view and the TUI load),
    per event, in a fresh process (see ``in_child``); the decode's own garbage is freed first."""
    gc.collect()
    before = rss_bytes()
    session = SessionStore(path.parent).load(path)
    gc.collect()
    held = rss_bytes() - before
    count = len(session.events)
    saved = sum(len(jsonio.dumps(event.to_dict())) for event in session.events) / count
    return {"held": held / count, "saved": saved}


def bench_load(path: Path, sizes: Sizes, rows: dict[str, Row]) -> None:
    for _ in range(sizes.runs):
        result = in_child(load_memory_run, path)
        rows["memory_loaded"].add(result["held"], result["saved"])
    for _ in range(sizes.runs):
        gc.collect()
        store = timed(lambda: SessionStore(path.parent).load(path))
        seeds = timed(lambda: AgentSession.load(path))
        bare = timed_gc_paused(lambda: orjson.loads(path.read_bytes()))
        stdlib = timed_gc_paused(lambda: json.loads(path.read_bytes()))
        rows["load_store"].add(store, bare)
        rows["load_seeds"].add(seeds, bare)
        rows["load_json"].add(store, stdlib)
    # The command a user types, against the least any process reading that file must do.
    view = [sys.executable, "-m", "agent_aggregator", "--save-dir", str(path.parent), "view", session_id(1)]
    floor = [sys.executable, "-c", f"import orjson; orjson.loads(open({str(path)!r}, 'rb').read())"]
    run_command(path.parent, view)  # bytecode compiled once
    for _ in range(sizes.runs):
        rows["view"].add(run_command(path.parent, view), run_command(path.parent, floor))


# --- main -----------------------------------------------------------------------------------------------


def make_rows(sizes: Sizes, command: str) -> dict[str, Row]:
    s, e, tail = f"{sizes.sessions:,}", f"{sizes.events:,}", f"{sizes.events // 10:,}"
    # The target is for 10,000 sessions: a smaller directory is shown, not judged.
    judged = sizes.sessions >= FULL.sessions
    fast_enough = f">= {INGEST_TARGET:,} ev/s"

    def rate_met(ours: float, ratio: float) -> bool:
        return ours >= INGEST_TARGET

    def row(key: str, measure: str, unit: str, baseline: str, target: str = "-", check=None) -> tuple[str, Row]:
        return key, Row(measure, unit, baseline, target, check, command)

    return dict([
        row("cmd_warm", f"store: aggregate sessions --json, {s} sessions, warm index", "s", "python -c pass",
            "< 0.5 s" if judged else "(< 0.5 s at 10,000)", (lambda ours, ratio: ours < 0.5) if judged else None),
        row("cmd_text", f"store: aggregate sessions (text, to a pipe), {s} sessions, warm index", "s",
            "python -c pass", "< 0.5 s" if judged else "(< 0.5 s at 10,000)",
            (lambda ours, ratio: ours < 0.5) if judged else None),
        row("cmd_cold", f"store: aggregate sessions --json, {s} sessions, no index", "s", "python -c pass"),
        row("list_warm", f"store: SessionStore.list_sessions, {s}, warm", "s", "orjson.loads of the index"),
        row("list_cold", f"store: SessionStore.list_sessions, {s}, no index", "s", "orjson.loads of every file"),
        row("memory", f"store: memory held per event, {e} events", "B", "the event's saved JSON",
            "< 2x", lambda ours, ratio: ratio < 2),
        row("memory_loaded", f"store: memory held per event, {e} events loaded (view, TUI)", "B",
            "the event's saved JSON", "< 2x", lambda ours, ratio: ratio < 2),
        row("ingest", f"store: handle_event + journal, {e} events in one session", "ev/s", "orjson.loads only",
            fast_enough, rate_met),
        row("ingest_tail", f"store: handle_event + journal, last {tail} of the {e}", "ev/s", "orjson.loads only",
            fast_enough, rate_met),
        row("finalize", f"store: finalize (stop) of the {e}-event session", "s", "orjson.dumps + write"),
        row("load_store", f"store: SessionStore.load (view, export), {e} events", "s", "orjson.loads of the file"),
        row("load_seeds", f"store: AgentSession.load, {e} events", "s", "orjson.loads of the file"),
        row("load_json", f"store: SessionStore.load, {e} events", "s", "json.loads of the file"),
        row("view", f"store: aggregate view of the {e}-event session", "s",
            "python -c 'orjson.loads(file)'"),
    ])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = bench_options(__doc__.splitlines()[0], "3 runs and smaller sizes (about 30 s)", "runs (default 5; quick 3)")
    parser.add_argument("--sessions", type=int, help="saved sessions to list (default 10,000; quick 2,000)")
    parser.add_argument("--events", type=int, help="events in the big session (default 100,000; quick 20,000)")
    parser.add_argument("--skip-listing", action="store_true",
                        help="only memory, ingest, finalize and load (the listing rows are left unmeasured)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    sizes = Sizes(runs=args.runs or sizes.runs, sessions=args.sessions or sizes.sessions,
                  events=args.events or sizes.events)
    command = announce("store.py", argv)
    rows = make_rows(sizes, command)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aggregator-bench-") as tmp:
        scratch = Path(tmp)
        # Ingest first: its runs fork from this process, best while its heap is still small.
        session_file = bench_ingest(scratch, sizes, rows)
        size_mb = session_file.stat().st_size / 1e6
        bench_load(session_file, sizes, rows)
        if not args.skip_listing:
            bench_listing(scratch, sizes, rows)
    return report("store", sizes.runs, rows, args.json,
                  note=f"; session file {size_mb:.1f} MB; took {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
