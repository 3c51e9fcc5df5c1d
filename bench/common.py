"""What every bench script shares: result rows, the table, the JSON hand-over to ``run_all``.

A row holds the samples of one measure (ours and its baseline, one pair per
run) and prints medians. The ratio is always ours / baseline in the row's own
unit (a time, a rate, bytes), computed per run and then the median taken, so
machine load that hits a whole run cancels out. Nothing here asserts a timing:
"met?" is printed, never raised.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    import subprocess

ROOT = Path(__file__).resolve().parents[1]

# A check gets (median of ours, median of the per-run ratios) and says whether the target is met.
Check = Callable[[float, float], bool]


@dataclass
class Row:
    """One measure: samples of ours and of the baseline, the target and how to judge it."""

    measure: str
    unit: str  # "s", "ms", "ev/s", "B", "x", "count"
    baseline_name: str = "-"
    target: str = "-"
    check: Check | None = None
    command: str = ""
    ours: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, ours: float, baseline: float | None = None) -> None:
        self.ours.append(ours)
        if baseline is not None:
            self.baseline.append(baseline)

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours)

    @property
    def baseline_median(self) -> float | None:
        return statistics.median(self.baseline) if self.baseline else None

    @property
    def ratio(self) -> float | None:
        """Median of each run's ours / baseline."""
        pairs = [(o, b) for o, b in zip(self.ours, self.baseline) if b]
        if not pairs:
            return None
        return statistics.median(o / b for o, b in pairs)

    @property
    def met(self) -> bool | None:
        if self.check is None or not self.ours:
            return None
        return bool(self.check(self.ours_median, self.ratio if self.ratio is not None else float("nan")))

    def to_json(self) -> dict[str, Any]:
        return {
            "measure": self.measure, "unit": self.unit, "baseline_name": self.baseline_name,
            "target": self.target, "command": self.command, "ours": self.ours, "baseline": self.baseline,
            "met": self.met, "note": self.note,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Row":
        row = cls(raw["measure"], raw["unit"], raw["baseline_name"], raw["target"], None, raw["command"],
                  list(raw["ours"]), list(raw["baseline"]), raw.get("note", ""))
        met = raw.get("met")
        if met is not None:
            row.check = lambda _ours, _ratio, met=met: met
        return row

    def cells(self) -> list[str]:
        if not self.ours:
            return [self.measure, "not measured", "-", "-", "-", self.target, "-"]
        base = self.baseline_median
        ratio = self.ratio
        met = self.met
        return [
            self.measure,
            fmt(self.ours_median, self.unit),
            self.baseline_name,
            "-" if base is None else fmt(base, self.unit),
            "-" if ratio is None else f"{ratio:.2f}x",
            self.target,
            "-" if met is None else ("yes" if met else "NO"),
        ]


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:,.0f} ms" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "ev/s":
        return f"{value:,.0f} ev/s"
    if unit == "B":
        return f"{value:,.0f} B"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.0f}"


HEADER = ["measure", "ours (median)", "baseline", "baseline (median)", "ratio", "target", "met?"]


def print_table(rows: list[Row], *, file: Any = None) -> None:
    """An aligned plain-text table of medians (one line per row)."""
    out = file or sys.stdout
    lines = [HEADER] + [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    for n, line in enumerate(lines):
        print(" | ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip(), file=out)
        if n == 0:
            print("-|-".join("-" * width for width in widths), file=out)
    notes = [(row.measure, row.note) for row in rows if row.note]
    for measure, note in notes:
        print(f"  note ({measure}): {note}", file=out)


def markdown_table(rows: list[Row]) -> str:
    """The README form: every row with the command that produced it."""
    out = ["| measure | ours | baseline | ratio | target | met | command |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        measure, ours, base_name, base, ratio, target, met = row.cells()
        baseline = base_name if base == "-" else f"{base_name}: {base}"
        out.append(f"| {measure} | {ours} | {baseline} | {ratio} | {target} | {met} | `{row.command}` |")
    return "\n".join(out)


def command_line(script: str, argv: list[str]) -> str:
    """How to re-run this exact measurement, as the user would type it (``--json PATH`` left out)."""
    shown: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith("--json="):
            shown.append(arg)
    return " ".join(["python", f"bench/{script}", *map(shlex.quote, shown)])


def announce(script: str, argv: list[str]) -> str:
    line = command_line(script, argv)
    print(f"command: {line}", flush=True)
    return line


def write_json(path: str | None, rows: list[Row]) -> None:
    """``--json PATH``: the rows for ``run_all`` to merge into one table."""
    if path:
        Path(path).write_text(json.dumps([row.to_json() for row in rows], indent=1))


def read_json(path: Path) -> list[Row]:
    return [Row.from_json(raw) for raw in json.loads(path.read_text())]


def machine_note() -> str:
    import os
    import platform

    return f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}"


def bench_options(description: str, quick: str, runs: str) -> argparse.ArgumentParser:
    """The options every bench shares: ``--quick``, ``--runs``, ``--json``; add the bench's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--runs", type=int, help=runs)
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON (for run_all)")
    return parser


def fill_defaults(parser: argparse.ArgumentParser, args: argparse.Namespace,
                  **defaults: tuple[int, int]) -> argparse.Namespace:
    """Each ``--NAME`` not given takes its ``(quick, full)`` default, by ``--quick``; a value below 1
    is the parser's one-line error (a median of no runs would be a traceback)."""
    for name, (quick, full) in defaults.items():
        value = getattr(args, name) or (quick if args.quick else full)
        if value < 1:
            parser.error(f"--{name} must be at least 1")
        setattr(args, name, value)
    return args


def report(name: str, runs: int, rows: dict[str, Row], json_path: str | None, problems: Sequence[str] = (),
           *, note: str = "") -> int:
    """Print the bench's table (and its problems), write ``--json``; the exit code: 1 on any problem."""
    print(f"agent-aggregator {name} bench: {runs} runs, medians; {machine_note()}{note}")
    table = list(rows.values())
    print_table(table)
    write_json(json_path, table)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


async def stop_aggregator(child: "subprocess.Popen[bytes]", timeout: float = 120) -> None:
    """SIGTERM an ``aggregate start`` the bench started (it saves everything first) and wait;
    RuntimeError with its last stderr when it did not exit cleanly."""
    import asyncio
    import signal
    import subprocess

    child.send_signal(signal.SIGTERM)
    try:
        _, err = await asyncio.to_thread(child.communicate, timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        _, err = child.communicate()
    if child.returncode not in (0, -signal.SIGTERM):
        raise RuntimeError(f"aggregate start exited {child.returncode}: {err.decode(errors='replace')[-500:]}")


def settle_disk(directory: Path) -> None:
    """Remove what one measured side wrote and flush the kernel's dirty pages (``os.sync``),
    so the next side does not pay for this one's disk writes.

    Without it, the kernel wrote back one side's files (tens of MB of journals and
    snapshots) while the next side ran: in one ingest run, ``aggregate start`` measured
    0.61-0.63x when it came right after the redaction-off pass, 0.94-0.97x when the
    bare client (which writes nothing) came in between.
    """
    import os
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
    os.sync()
