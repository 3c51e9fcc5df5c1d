"""A burst over one Socket.IO connection: every event saved, the connection kept, and how fast.

Run ``python bench/burst.py`` (40,000 events, 3 runs) or ``--quick`` (4,000, 2 runs);
``--events N`` and ``--runs N`` override.

*Ours*: what claude-mpm's Socket.IO path does at its worst: one python-socketio
``AsyncClient`` (websocket) emits claude-mpm events (``tests/fixtures_builder.claude_mpm_session``,
33 per session, each numbered in its data) as fast as it can, i.e. all of them at
once into its own queue, to a real ``aggregate start --serve`` subprocess (temporary
HOME and activity directory, default heartbeat). Timed from the first emit until every
event is journaled: the hub has relayed them all (``/health``) and a ``POST /events``
sent then has its 202 (the aggregator takes events in order, and answers a POST only
once it has handled it and everything before it). Then the aggregator is stopped and every
saved session file read back: lost and doubled events are counted (target 0), and
so are dropped connections (target 0). The hub of issue 7's first measurement
dropped the connection when the burst outlasted its heartbeat (pong queued behind
the burst) and lost what was still in flight (2,485 of 40,000 events then; 28,839
of 80,000 when re-measured).
*Baseline*: the same events in the same run, POSTed to ``/api/events`` as claude-mpm's
hook handler posts them (one body per request, 8 in flight, keep-alive) to a fresh
``aggregate start --serve``. Ratio: Socket.IO events/s / HTTP events/s.

Exits non-zero when an event is lost or doubled or the connection dropped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from common import ROOT, Row, announce, bench_options, fill_defaults, report, stop_aggregator

sys.path.insert(0, str(ROOT / "tests"))
import fixtures_builder as fb  # noqa: E402

IN_FLIGHT = 8
TIMEOUT = 900.0
SEQ = "bench_seq"


def burst(count: int) -> list[tuple[str, dict[str, Any]]]:
    """``count`` claude-mpm emissions (event name, envelope), numbered with ``bench_seq`` in their data."""
    out: list[tuple[str, dict[str, Any]]] = []
    n = 0
    while len(out) < count:
        for name, payload in fb.claude_mpm_session(fb.det_uuid("bench-burst", n), f"/home/dev/projects/burst-{n}",
                                                   include_non_session=False)[: count - len(out)]:
            payload["data"][SEQ] = len(out)
            out.append((name, payload))
        n += 1
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def relayed(http: aiohttp.ClientSession, port: int) -> int:
    async with http.get(f"http://127.0.0.1:{port}/health") as answer:
        return int((await answer.json())["events_relayed"])


async def over_socketio(port: int, stream: list[tuple[str, dict[str, Any]]], http: aiohttp.ClientSession) -> int:
    """Emit everything at once; wait until relayed. Returns how many times the connection dropped."""
    import socketio

    client = socketio.AsyncClient(reconnection=False)
    dropped: list[Any] = []
    client.on("disconnect", lambda *reason: dropped.append(reason))
    await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
    for name, payload in stream:
        await client.emit(name, payload)
    began = time.perf_counter()
    while not dropped and await relayed(http, port) < len(stream):
        if time.perf_counter() - began > TIMEOUT:
            raise RuntimeError("the hub did not relay the burst in time")
        await asyncio.sleep(0.05)
    if dropped:
        return len(dropped)
    # A sentinel (rejected: no session) queued behind the burst: its 202 means all of it is journaled.
    async with http.post(f"http://127.0.0.1:{port}/events", json={"bench": "sentinel"}) as answer:
        if answer.status != 202:
            raise RuntimeError(f"the hub answered {answer.status}: {await answer.text()}")
    await client.disconnect()
    return 0


async def over_http(port: int, stream: list[tuple[str, dict[str, Any]]], http: aiohttp.ClientSession) -> int:
    """POST /api/events bodies, IN_FLIGHT at once; each session's own bodies one at a time, in order."""
    url = f"http://127.0.0.1:{port}/api/events"
    slots = asyncio.Semaphore(IN_FLIGHT)
    previous: dict[str, asyncio.Event] = {}

    async def post(body: bytes, before: asyncio.Event | None, done: asyncio.Event) -> None:
        try:
            if before is not None:
                await before.wait()
            async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as answer:
                if answer.status != 202:
                    raise RuntimeError(f"the hub answered {answer.status}: {await answer.text()}")
        finally:
            done.set()
            slots.release()

    tasks = []
    for name, payload in stream:
        await slots.acquire()
        done = asyncio.Event()
        session = payload["session_id"]
        body = orjson.dumps({"namespace": "/", "event": name, "data": payload})
        tasks.append(asyncio.ensure_future(post(body, previous.get(session), done)))
        previous[session] = done
    await asyncio.gather(*tasks)
    return 0


async def one_pass(stream: list[tuple[str, dict[str, Any]]], work: Path, label: str) -> tuple[float, int, Path]:
    """(seconds, connections dropped, activity directory) for one fresh `aggregate start --serve`."""
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
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT + 1))
    try:
        deadline = time.perf_counter() + 60
        while True:
            try:
                await relayed(http, port)
                break
            except aiohttp.ClientError:
                if time.perf_counter() > deadline or child.poll() is not None:
                    raise RuntimeError("aggregate start --serve did not come up") from None
                await asyncio.sleep(0.1)
        began = time.perf_counter()
        send = over_socketio if label == "socketio" else over_http
        dropped = await send(port, stream, http)
        return time.perf_counter() - began, dropped, directory
    finally:
        await http.close()
        await stop_aggregator(child, timeout=300)  # every event relayed is saved before it exits


def saved(directory: Path, count: int) -> tuple[int, int]:
    """(lost, doubled) events of the burst, from the saved session files."""
    seen: dict[int, int] = {}
    for path in directory.glob("session_*.json"):
        for event in orjson.loads(path.read_bytes()).get("events") or []:
            data = event.get("data")
            number = data.get(SEQ) if isinstance(data, dict) else None
            if isinstance(number, int):
                seen[number] = seen.get(number, 0) + 1
    lost = sum(1 for n in range(count) if n not in seen)
    doubled = sum(times - 1 for times in seen.values() if times > 1)
    return lost, doubled


async def measure(count: int, runs: int, work: Path, rows: dict[str, Row]) -> list[str]:
    problems: list[str] = []
    stream = burst(count)
    for run in range(runs):
        order = ("socketio", "http") if run % 2 == 0 else ("http", "socketio")
        results = {label: await one_pass(stream, work, label) for label in order}
        ours, dropped, directory = results["socketio"]
        base, _, base_directory = results["http"]
        lost, doubled = saved(directory, count)
        base_lost, base_doubled = saved(base_directory, count)
        if lost or doubled or dropped:
            problems.append(f"run {run + 1}: Socket.IO burst: {lost} lost, {doubled} doubled, {dropped} drops")
        if base_lost or base_doubled:
            problems.append(f"run {run + 1}: HTTP baseline: {base_lost} lost, {base_doubled} doubled")
        rows["rate"].add(count / ours, count / base)
        rows["lost"].add(lost)
        rows["dropped"].add(dropped)
        print(f"  run {run + 1}: Socket.IO burst {count / ours:,.0f} ev/s ({lost} lost, {doubled} doubled,"
              f" {dropped} drops), HTTP {count / base:,.0f} ev/s", flush=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = bench_options(__doc__.splitlines()[0], "4,000 events, 2 runs", "runs (default 3; quick 2)")
    parser.add_argument("--events", type=int, help="events in the burst (default 40,000; quick 4,000)")
    args = fill_defaults(parser, parser.parse_args(argv), events=(4_000, 40_000), runs=(2, 3))
    count, runs = args.events, args.runs
    command = announce("burst.py", argv)
    rows = {
        "rate": Row(f"burst: {count:,} claude-mpm events at once over one Socket.IO connection", "ev/s",
                    "same events POSTed to /api/events, 8 in flight", "-", None, command),
        "lost": Row(f"burst: events lost of {count:,} over one Socket.IO connection", "count",
                    "-", "0", lambda ours, ratio: ours == 0, command),
        "dropped": Row("burst: Socket.IO connection dropped by the hub", "count",
                       "-", "0", lambda ours, ratio: ours == 0, command),
    }
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as temp:
        problems = asyncio.run(measure(count, runs, Path(temp), rows))
    return report("burst", runs, rows, args.json, problems)

if __name__ == "__main__":
    raise SystemExit(main())
