"""Many sessions at once through the real hub: throughput, and no event in the wrong session.

Run ``python bench/concurrency.py`` (1,000 sessions, 3 runs) or ``--quick``
(100 sessions, 2 runs). ``--sessions N`` and ``--runs N`` override.

Each session is the raw-hook fixture session (``tests/fixtures_builder.raw_hook_session``:
40 hook payloads, two turns, two delegations, ending in ``SessionEnd``), stamped
with ``timestamp`` and ``event_id`` as ``aggregate hook`` stamps them. Session n
works in ``/home/dev/projects/conc-<n>``, so every one of its payloads carries
that marker (in ``cwd``, and in its file paths).

*Ours*: all sessions interleaved at random (each session's own order kept),
posted as ``aggregate hook`` posts them (``POST /events``, one payload per
request, keep-alive, up to 8 requests in flight; each session's own payloads
one at a time, in order) to a real ``aggregate start --serve`` subprocess (the
built-in hub feeding the aggregator in its process; temporary HOME and
activity directory), as fast as the hub answers. (A first version emitted the
whole stream over one Socket.IO connection at once: the client's queue held
the engine.io pong behind 40,000 events, the hub timed the connection out
and the events still queued were lost with it.) Timed from the first emit until every
session's final file is on disk and no journal is left (each session ends
with ``SessionEnd``, so that is when the last event was handled).
*Baseline*: the same payloads in the same run, session after session (one
session open at a time), through a fresh ``aggregate start --serve``.
Ratio: interleaved events/s / one-at-a-time events/s.

Then, for the interleaved run, every saved session file is read back: the bench
fails (non-zero exit) unless there is exactly one file per session, each holds
exactly its session's 40 events, and every event's data names its own
session's marker and no other. The table shows the count of misattributed
events (target 0).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from common import ROOT, Row, announce, bench_options, fill_defaults, report, stop_aggregator

sys.path.insert(0, str(ROOT / "tests"))
import fixtures_builder as fb  # noqa: E402

MARKER = re.compile(rb"conc-(\d{5})")
POLL = 0.01
IN_FLIGHT = 8
TIMEOUT = 900.0


def sessions(count: int) -> list[list[dict[str, Any]]]:
    """One stamped raw-hook session per marker."""
    out = []
    for n in range(count):
        sid = fb.det_uuid("bench-concurrency", n)
        start = fb.RAW_START + timedelta(seconds=7 * n)
        cwd = f"/home/dev/projects/conc-{n:05d}"
        out.append([
            {**payload, "timestamp": stamp, "event_id": uuid.uuid4().hex}
            for stamp, payload in fb.raw_hook_session(sid, cwd, start)
        ])
    return out


def interleave(streams: list[list[dict]], seed: int) -> list[dict]:
    """A uniformly random interleaving that keeps each stream's own order."""
    rng = random.Random(seed)
    owners = [i for i, stream in enumerate(streams) for _ in stream]
    rng.shuffle(owners)
    positions = [0] * len(streams)
    out = []
    for i in owners:
        out.append(streams[i][positions[i]])
        positions[i] += 1
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def post_all(http: aiohttp.ClientSession, url: str, payloads: list[dict]) -> None:
    """POST every payload, up to IN_FLIGHT at once, each session's payloads strictly in order."""
    # Hand out payloads in the interleaved order, but never two of one session at once.
    slots = asyncio.Semaphore(IN_FLIGHT)
    busy: dict[str, asyncio.Event] = {}

    async def post(payload: dict, previous: asyncio.Event | None, done: asyncio.Event) -> None:
        try:
            if previous is not None:
                await previous.wait()
            body = orjson.dumps(payload)
            async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as answer:
                if answer.status != 202:
                    raise RuntimeError(f"the hub answered {answer.status}: {await answer.text()}")
        finally:
            done.set()
            slots.release()

    tasks = []
    for payload in payloads:
        await slots.acquire()
        sid = payload["session_id"]
        done = asyncio.Event()
        tasks.append(asyncio.ensure_future(post(payload, busy.get(sid), done)))
        busy[sid] = done
    await asyncio.gather(*tasks)


def directory_state(directory: Path) -> tuple[int, int]:
    """(final session files, journals) in the directory."""
    finals = journals = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0, 0
    for name in names:
        if name.endswith(".journal.jsonl"):
            journals += 1
        elif name.startswith("session_") and name.endswith(".json"):
            finals += 1
    return finals, journals


async def one_pass(payloads: list[dict], count: int, work: Path, label: str) -> tuple[float, Path]:
    """Seconds from the first emit until ``count`` sessions are final; and the activity directory."""
    home = work / label
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    directory = home / "activity"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_MPM_", "AGGREGATE_"))}
    env.update(HOME=str(home), AGGREGATE_SPOOL_DIR=str(home / "spool"))
    argv = [sys.executable, "-m", "agent_aggregator", "--save-dir", str(directory), "--config-dir", str(home),
            "start", "--host", "127.0.0.1", "--port", str(port), "--serve"]
    child = subprocess.Popen(argv, env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
    url = f"http://127.0.0.1:{port}/events"
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT))
    try:
        deadline = time.perf_counter() + 60
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/health") as answer:
                    if answer.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.perf_counter() > deadline or child.poll() is not None:
                raise RuntimeError("aggregate start --serve did not come up")
            await asyncio.sleep(0.1)
        began = time.perf_counter()
        await post_all(http, url, payloads)
        while True:
            finals, journals = directory_state(directory)
            if finals >= count and journals == 0:
                done = time.perf_counter()
                break
            if time.perf_counter() - began > TIMEOUT:
                raise RuntimeError(f"{label}: {finals} of {count} sessions final, {journals} journals left")
            await asyncio.sleep(POLL)
        return done - began, directory
    finally:
        await http.close()
        await stop_aggregator(child)


def misattributed(directory: Path, streams: list[list[dict]]) -> tuple[int, list[str]]:
    """(events in the wrong session, problems): every file read back and checked against its marker."""
    problems: list[str] = []
    wrong = 0
    seen: dict[int, int] = {}
    for path in sorted(directory.glob("session_*.json")):
        session = orjson.loads(path.read_bytes())
        events = session.get("events") or []
        markers = {int(m) for m in MARKER.findall(orjson.dumps(session.get("working_directory")))}
        if len(markers) != 1:
            problems.append(f"{path.name}: working directory {session.get('working_directory')!r}")
            continue
        (n,) = markers
        seen[n] = seen.get(n, 0) + 1
        expected_id = streams[n][0]["session_id"]
        if session.get("session_id") != expected_id:
            problems.append(f"{path.name}: session id {session.get('session_id')} for marker {n}")
        for event in events:
            found = {int(m) for m in MARKER.findall(orjson.dumps(event.get("data")))}
            if found != {n} or event.get("session_id") != expected_id:
                wrong += 1
        if len(events) != len(streams[n]):
            problems.append(f"{path.name}: {len(events)} events, expected {len(streams[n])}")
    missing = [n for n in range(len(streams)) if seen.get(n) != 1]
    if missing:
        problems.append(f"{len(missing)} sessions without exactly one file (first: {missing[:5]})")
    return wrong, problems


async def measure(count: int, runs: int, work: Path, rows: dict[str, Row]) -> list[str]:
    problems: list[str] = []
    for run in range(runs):
        streams = sessions(count)
        mixed = interleave(streams, seed=run)
        serial = [payload for stream in streams for payload in stream]
        total = len(mixed)
        if run % 2 == 0:
            ours, directory = await one_pass(mixed, count, work, "interleaved")
            base, _ = await one_pass(serial, count, work, "serial")
        else:
            base, _ = await one_pass(serial, count, work, "serial")
            ours, directory = await one_pass(mixed, count, work, "interleaved")
        wrong, found = misattributed(directory, streams)
        problems += [f"run {run + 1}: {p}" for p in found]
        rows["rate"].add(total / ours, total / base)
        rows["wrong"].add(wrong)
        print(f"  run {run + 1}: interleaved {total / ours:,.0f} ev/s, one at a time {total / base:,.0f} ev/s,"
              f" misattributed {wrong}", flush=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = bench_options(__doc__.splitlines()[0], "100 sessions, 2 runs", "runs (default 3; quick 2)")
    parser.add_argument("--sessions", type=int, help="sessions open at once (default 1,000; quick 100)")
    args = fill_defaults(parser, parser.parse_args(argv), sessions=(100, 1_000), runs=(2, 3))
    count, runs = args.sessions, args.runs
    command = announce("concurrency.py", argv)
    per = len(fb.raw_hook_session())
    rows = {
        "rate": Row(f"concurrency: {count:,} sessions interleaved through the hub ({count * per:,} events)", "ev/s",
                    "same events, one session at a time", "-", None, command),
        "wrong": Row(f"concurrency: events in the wrong session, {count:,} sessions interleaved", "count",
                     "-", "0", lambda ours, ratio: ours == 0, command),
    }
    with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as temp:
        problems = asyncio.run(measure(count, runs, Path(temp), rows))
    if any(rows["wrong"].ours):
        problems.append("events were saved in the wrong session")
    return report("concurrency", runs, rows, args.json, problems)

if __name__ == "__main__":
    raise SystemExit(main())
