"""Replay costs on a big session: ``python bench/replay.py [--events 100000] [--runs 3]``.

Builds one session of N events (the shipped sample's scenario, repeated with
fresh ids and later times) through a real aggregator, then prints medians of:

* the whole replay at max speed (``Replay.seek_end``: copy + track every event),
  against ``rebuild_session`` of the same events (the journal recovery path);
* the same without checkpoints, and one checkpoint copy of the whole state;
* one step back from the end, and a seek back to the middle (a checkpoint
  restore and at most K events re-fed: what ``left`` or a click costs);
* ``aggregate replay FILE --speed max`` to /dev/null, against ``aggregate view FILE
  --verbose`` (the same timeline lines, printed without replaying).

Numbers only; nothing is asserted (DESIGN section 9).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import sample_session_builder as sample  # noqa: E402

from agent_aggregator.aggregator import EventAggregator  # noqa: E402
from agent_aggregator.config import Config  # noqa: E402
from agent_aggregator.model import AgentSession, SessionEvent  # noqa: E402
from agent_aggregator.replay import Replay, clone_state  # noqa: E402
from agent_aggregator.timeutil import format_timestamp, parse_timestamp  # noqa: E402
from agent_aggregator.tracker import rebuild_session  # noqa: E402


def big_session(events: int, directory: Path) -> Path:
    """One saved session of about ``events`` events; returns its file."""
    aggregator = EventAggregator(config=Config(activity_directory=directory, dashboard_host="127.0.0.1"))
    aggregator.start(connect=False)
    chunk = 0
    total = 0
    try:
        while total < events:
            original_id = sample.SESSION_ID
            sample.SESSION_ID = f"chunk-{chunk}"  # fresh tool, agent and event ids for this chunk
            try:
                payloads = sample.stamped_payloads()
            finally:
                sample.SESSION_ID = original_id
            for payload in payloads:
                if payload["hook_event_name"] in ("SessionEnd", "SessionStart") and chunk:
                    continue
                if payload["hook_event_name"] == "SessionEnd":
                    continue
                moment = parse_timestamp(payload["timestamp"]) + timedelta(seconds=200 * chunk)
                aggregator.handle_event({**payload, "session_id": "big-replay", "timestamp": format_timestamp(moment)})
                total += 1
                if total >= events:
                    break
            chunk += 1
    finally:
        aggregator.stop()
    [path] = directory.glob("session_*.json")
    return path


def median_time(action, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        path = big_session(args.events, Path(tmp) / "activity")
        print(f"built a {args.events:,}-event session in {time.perf_counter() - started:.1f} s: {path.stat().st_size / 1e6:.1f} MB")
        saved = AgentSession.load(path)
        n = len(saved.events)
        header = {"session_id": saved.session_id, "start_time": saved.events[0].timestamp,
                  "metadata": saved.metadata, "working_directory": saved.working_directory}

        def whole_replay() -> None:
            replay = Replay(saved)
            replay.seek_end()

        def journal_rebuild() -> None:
            rebuild_session(header, [SessionEvent.from_dict(e.to_dict()) for e in saved.events])

        replay = Replay(saved)
        replay.seek_end()

        def step_back() -> None:
            replay.step(-1)
            replay.seek_end()

        def seek_middle() -> None:
            replay.seek(n // 2 + replay.checkpoint_every - 1)  # the worst case: K - 1 events after a checkpoint
            replay.seek_end()

        def whole_replay_without_checkpoints() -> None:
            Replay(saved, checkpoint_every=n + 1).seek_end()

        def checkpoint_copy() -> None:
            clone_state(replay._tracker, replay.session)

        ours = median_time(whole_replay, args.runs)
        bare = median_time(whole_replay_without_checkpoints, args.runs)
        base = median_time(journal_rebuild, args.runs)
        back = median_time(step_back, args.runs)
        middle = median_time(seek_middle, args.runs)
        clone = median_time(checkpoint_copy, args.runs)
        print(f"replay to the end (max speed): {ours:.2f} s = {n / ours:,.0f} events/s"
              f" ({bare:.2f} s without checkpoints: {len(replay._checkpoints)} checkpoints every"
              f" {replay.checkpoint_every} events);"
              f" rebuild_session of the same events: {base:.2f} s ({ours / base:.2f}x)")
        print(f"one checkpoint copy of the state at the end: {clone * 1000:.0f} ms;"
              f" re-feeding {replay.checkpoint_every} events: {bare / n * replay.checkpoint_every * 1000:.0f} ms")
        print(f"one step back from the end, then seek_end: {back * 1000:.0f} ms;"
              f" seek from the end to the middle + K - 1, then seek_end: {middle * 1000:.0f} ms")

        aggregate = str(Path(sys.executable).with_name("aggregate"))

        def cli(*arguments: str) -> None:
            subprocess.run([aggregate, *arguments], stdout=subprocess.DEVNULL, check=True, cwd=tmp)

        cli_replay = median_time(lambda: cli("replay", str(path), "--speed", "max"), args.runs)
        cli_view = median_time(lambda: cli("view", str(path), "--verbose"), args.runs)
        print(f"aggregate replay FILE --speed max > /dev/null: {cli_replay:.2f} s;"
              f" aggregate view FILE --verbose > /dev/null: {cli_view:.2f} s ({cli_replay / cli_view:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
