"""Run every bench and print one table: ``python bench/run_all.py [--quick]`` (or ``python -m bench``).

Each bench runs as its own process (``python bench/<name>.py``, its output
shown as it goes) and hands its rows back as JSON; the combined table lists
every measure with its median, its baseline measured in the same run, the
ratio, the target and whether it is met, then the command that reproduces
each row. ``--markdown`` also prints the table as the README has it.
``--only ingest,hook`` runs a subset. The exit status is non-zero only when a
bench itself failed (crashed, or found wrong results), never for a missed
target: timings are reported, not judged as pass/fail.

Full run: about 15-25 minutes on 2 busy cores; ``--quick``: about 3-5 minutes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import announce, machine_note, markdown_table, print_table, read_json  # noqa: E402

BENCHES = ("ingest", "burst", "hook", "store", "concurrency", "tui")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs of every bench")
    parser.add_argument("--only", metavar="NAMES", help=f"comma-separated subset of {', '.join(BENCHES)}")
    parser.add_argument("--markdown", action="store_true", help="also print the table in the README's form")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=ARGS",
                        help="extra arguments for one bench, e.g. --extra 'store=--sessions 500' (repeatable)")
    args = parser.parse_args(argv)
    names = BENCHES if not args.only else tuple(n.strip() for n in args.only.split(",") if n.strip())
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"run_all: unknown bench {', '.join(unknown)} (known: {', '.join(BENCHES)})", file=sys.stderr)
        return 2
    extra: dict[str, list[str]] = {}
    for item in args.extra:
        name, _, rest = item.partition("=")
        extra.setdefault(name, []).extend(rest.split())
    announce("run_all.py", argv)
    rows = []
    failed = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-all-") as temp:
        for name in names:
            out = Path(temp) / f"{name}.json"
            command = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if args.quick else []),
                       *extra.get(name, []), "--json", str(out)]
            print(f"\n=== {name} ===", flush=True)
            status = subprocess.call(command, cwd=HERE.parent)
            if status != 0:
                failed.append(f"{name} (exit {status})")
            if out.exists():
                rows.extend(read_json(out))
    print(f"\n=== all benches: {'quick' if args.quick else 'full'} run, medians; {machine_note()};"
          f" took {time.perf_counter() - began:.0f} s ===")
    print_table(rows)
    print("\ncommands:")
    for command in dict.fromkeys(row.command for row in rows):
        print(f"  {command}")
    if args.markdown:
        print()
        print(markdown_table(rows))
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
