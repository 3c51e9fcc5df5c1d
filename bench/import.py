"""Transcript import on a big file: throughput and memory (``python bench/import.py [--mb 200]``).

Writes a realistic Claude Code transcript of about ``--mb`` MB into a temporary
directory with a streaming writer (turns of prompts, assistant text, tool calls
whose results range from 1 KB to 2 MB, a subagent file), then measures, each in
a fresh process so peak RSS is its own:

* baseline: ``orjson.loads`` of every line (the least any reader must do);
* read: ``transcripts.read_session`` (lines -> events, held in memory);
* import: ``aggregate import`` of the file into an empty activity directory;
* tracemalloc peak of the read (Python allocations only; slower, so separate).

Prints a table; never asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SESSION = "b16b16b1-6000-4000-8000-00000000b16b"
AGENT = "be9c4a11f0d2e3a4"
START = 1_773_480_000  # 2026-03-14, epoch seconds


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(START + seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


MIXES = {  # tool output sizes, cycled: "huge" is the stress case, "typical" has many more, smaller lines
    "huge": [1_000, 8_000, 40_000, 300_000, 2_000_000],
    "typical": [200, 800, 3_000, 12_000, 60_000],
}


def write_transcript(directory: Path, megabytes: int, mix: str = "huge") -> Path:
    """A ~``megabytes`` MB session transcript (plus one subagent file); streamed to disk."""
    project = directory / "projects" / "-work-big-project"
    (project / SESSION / "subagents").mkdir(parents=True)
    path = project / f"{SESSION}.jsonl"
    target = megabytes * 1_000_000
    base = {"isSidechain": False, "userType": "external", "cwd": "/work/big-project", "sessionId": SESSION,
            "version": "2.1.240", "gitBranch": "main"}
    sizes = MIXES[mix]
    n = 0
    with open(path, "w") as handle:
        written = 0
        while written < target:
            t = n * 2.0
            lines = [
                {**base, "type": "user", "uuid": f"p-{n}", "timestamp": _stamp(t),
                 "message": {"role": "user", "content": f"step {n}: run the checks and fix what fails"}},
                {**base, "type": "assistant", "uuid": f"a-{n}", "timestamp": _stamp(t + 0.3),
                 "message": {"id": f"msg_{n}", "role": "assistant", "model": "claude-sonnet-4-5",
                             "content": [{"type": "text", "text": "Running the checks. " * 20}],
                             "usage": {"input_tokens": 3, "output_tokens": 200, "cache_read_input_tokens": 20000,
                                       "cache_creation_input_tokens": 500}}},
                {**base, "type": "assistant", "uuid": f"b-{n}", "timestamp": _stamp(t + 0.5),
                 "message": {"id": f"msg_{n}", "role": "assistant", "content": [
                     {"type": "tool_use", "id": f"toolu_{n}", "name": "Bash", "input": {"command": f"make check-{n}"}}]}},
                {**base, "type": "user", "uuid": f"r-{n}", "timestamp": _stamp(t + 1.5),
                 "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{n}",
                                                          "content": "(see stdout)"}]},
                 "toolUseResult": {"stdout": "x" * sizes[n % len(sizes)], "stderr": "", "interrupted": False}},
            ]
            for line in lines:
                text = json.dumps(line) + "\n"
                handle.write(text)
                written += len(text)
            n += 1
    with open(project / SESSION / "subagents" / f"agent-{AGENT}.jsonl", "w") as handle:
        for k in range(200):
            handle.write(json.dumps({**base, "isSidechain": True, "agentId": AGENT, "type": "assistant",
                                     "uuid": f"s-{k}", "timestamp": _stamp(k * 0.1),
                                     "message": {"id": f"smsg_{k}", "role": "assistant",
                                                 "content": [{"type": "text", "text": f"subagent note {k}"}]}}) + "\n")
    return path


def _child(mode: str, path: str, activity: str) -> None:
    """Run one measure in this (fresh) process; print a JSON line."""
    start = time.perf_counter()
    extra: dict = {}
    if mode == "baseline":
        import orjson

        lines = 0
        with open(path, "rb") as handle:
            for raw in handle:
                orjson.loads(raw)
                lines += 1
        extra["lines"] = lines
    elif mode in ("read", "tracemalloc"):
        from agent_aggregator.importer import discover
        from agent_aggregator.transcripts import ReadStats, read_session

        if mode == "tracemalloc":
            import tracemalloc

            tracemalloc.start()
        (chosen,) = discover([Path(path).parent])
        (session,) = read_session(chosen.main, chosen.agents, chosen.session_id, ReadStats())
        extra["events"] = len(session.events)
        if mode == "tracemalloc":
            held, peak = tracemalloc.get_traced_memory()
            extra.update(held_mb=held / 1e6, peak_mb=peak / 1e6)
    elif mode == "import":
        from agent_aggregator.cli import main

        code = main(["--save-dir", activity, "import", "--json", str(Path(path).parent)])
        extra["exit"] = code
    elapsed = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "seconds": elapsed, "max_rss_mb": rss_mb, **extra}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="transcript size in MB (default 200)")
    parser.add_argument("--mix", choices=sorted(MIXES), default="huge", help="tool output sizes (default huge)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = write_transcript(directory, args.mb, args.mix)
        size = path.stat().st_size
        print(f"transcript ({args.mix} tool outputs): {size / 1e6:.0f} MB,"
              f" {sum(1 for _ in open(path, 'rb')):,} lines", flush=True)
        results = {}
        for mode in ("baseline", "read", "import", "tracemalloc"):
            activity = directory / f"activity-{mode}"
            out = subprocess.run([sys.executable, __file__, "--child", mode, str(path), str(activity)],
                                 capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        if results["import"].get("exit") != 0:
            print("import failed", results["import"], file=sys.stderr)
        print(f"{'measure':<44}{'seconds':>9}{'MB/s':>8}{'max RSS MB':>12}")
        for mode, label in (("baseline", "orjson.loads of every line (baseline)"),
                            ("read", "read_session (lines -> events)"),
                            ("import", "aggregate import (into an empty store)")):
            r = results[mode]
            print(f"{label:<44}{r['seconds']:>9.2f}{size / 1e6 / r['seconds']:>8.0f}{r['max_rss_mb']:>12.0f}")
        t = results["tracemalloc"]
        print(f"read_session tracemalloc: peak {t['peak_mb']:.0f} MB, held after {t['held_mb']:.0f} MB"
              f" ({t['events']:,} events) for a {size / 1e6:.0f} MB file")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:5])
    else:
        main()
