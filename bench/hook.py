"""``aggregate hook`` latency against bare Python start-up.

Run ``python bench/hook.py`` (40 runs of each row; ``--runs N`` to change;
``--quick``: 10 runs; ``--json PATH`` also writes the rows for ``run_all``).
Each row is the wall time of one whole process, from spawn to exit, with a
typical hook payload (a PostToolUse Edit, about 2 KB) on stdin from a file.
Rows are run round-robin, so load from other processes on the machine hits
them all alike; each row's ratio is the median over rounds of its time over
the baseline's time in the same round (the same interpreter running ``-c
pass``: the venv's python is the python3 the hook runs with). Target (issue
7): at most 1.5x, hub up and hub down.

Rows:

* baseline: ``<venv python> -c pass``, and ``python3 -c pass`` (the first on
  PATH; under pyenv that is a shell shim, far slower, shown for reference).
* ``aggregate hook``, hub up: the console script (what ``install-hooks``
  writes) posting to a tiny aiohttp server (the hub's stack) answering 202.
* ``aggregate hook``, hub down: nothing listens, the event is spooled. It is
  redacted first, but ``redact`` (``re``, ``enum``, its compiled rules: ~20 ms)
  is imported only when ``redact_gate`` finds something it could redact, and the
  line is encoded with json's C encoder without importing ``json`` (``re``).
* the same with a payload holding a secret (a Bash command exporting a GitHub
  token): the rare case that pays for the redaction rules; not judged.
* the same hook started other ways, hub up: ``python -m agent_aggregator hook``
  and ``python -I -c 'from agent_aggregator.hook import run; run()'`` (no
  console-script wrapper: pip's wrapper imports ``re``, about 1.4x start-up on
  its own, before any of our code runs).
* a plain ``aggregate`` script (shebang + ``from agent_aggregator.entry import
  main``, without pip's ``import re``), hub up and down: what ``aggregate hook``
  costs when the package ships its script that way (setuptools ``script-files``
  installs exactly this, also in editable installs; tried in a scratch venv).
* ``python -c 'import re'``: the wrapper's floor, for reference.

Bytecode: PYTHONDONTWRITEBYTECODE is dropped and PYTHONPYCACHEPREFIX points at
a temporary directory, so our modules load from .pyc as in a normal install
(a checkout run with PYTHONDONTWRITEBYTECODE=1 compiles cli.py on every start,
~10 ms). ``--as-is`` keeps the environment untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Row, announce, fill_defaults, machine_note, print_table, write_json

VENV_PYTHON = sys.executable
AGGREGATE = Path(sys.executable).with_name("aggregate")
if not AGGREGATE.exists():
    AGGREGATE = Path(shutil.which("aggregate") or AGGREGATE)

PAYLOAD = {
    "session_id": "5283b66c-2b29-4ee0-9698-f410f3a393fd",
    "transcript_path": "/home/dev/.claude/projects/-home-dev-shop/5283b66c-2b29-4ee0-9698-f410f3a393fd.jsonl",
    "cwd": "/home/dev/shop",
    "prompt_id": "0b6a3f0e-5d1c-4c9e-9a51-2f4f0d1e7c11",
    "permission_mode": "acceptEdits",
    "effort": {"level": "high"},
    "hook_event_name": "PostToolUse",
    "tool_name": "Edit",
    "tool_input": {
        "file_path": "/home/dev/shop/src/cart.py",
        "old_string": "def total(items):\n    return sum(i.price for i in items)\n",
        "new_string": "def total(items, tax=0.0):\n    subtotal = sum(i.price * i.quantity for i in items)\n"
                      "    return round(subtotal * (1 + tax), 2)\n",
        "replace_all": False,
    },
    "tool_response": {
        "filePath": "/home/dev/shop/src/cart.py",
        "oldString": "def total(items):\n    return sum(i.price for i in items)\n",
        "newString": "def total(items, tax=0.0):\n    subtotal = sum(i.price * i.quantity for i in items)\n"
                     "    return round(subtotal * (1 + tax), 2)\n",
        "originalFile": "\"\"\"Shopping cart.\"\"\"\n\n" + "# café ✓ line\n" * 40,
        "structuredPatch": [{"oldStart": 3, "oldLines": 2, "newStart": 3, "newLines": 3,
                             "lines": ["-def total(items):", "-    return sum(i.price for i in items)",
                                       "+def total(items, tax=0.0):", "+    subtotal = ...", "+    return ..."]}],
        "userModified": False,
        "replaceAll": False,
    },
    "tool_use_id": "toolu_01HqXG7mZ9bE3kq1V2aYb8Rt",
    "duration_ms": 41,
}

SERVER = r"""
import sys
from aiohttp import web

async def events(request):
    await request.read()
    return web.json_response({"ok": True}, status=202)

app = web.Application()
app.router.add_post("/events", events)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


SECRET_ROW = "aggregate hook, hub down, payload with a secret (redacted, spooled)"

# Rows judged against the target: the hook as installed, and as typed, hub up and down.
JUDGED = {
    "installed form (python -I -c <hook.run()>), hub up",
    "installed form (python -I -c <hook.run()>), hub down",
    "aggregate hook, hub up",
    "aggregate hook, hub down (spooled)",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the bench hub did not start on port {port}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, help="rounds (default 40; quick 10)")
    parser.add_argument("--quick", action="store_true", help="10 rounds")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON (for run_all)")
    parser.add_argument("--as-is", action="store_true", help="keep PYTHONDONTWRITEBYTECODE etc. as they are")
    parser.add_argument("--real-hub", action="store_true",
                        help="post to `aggregate serve` (the real hub) instead of a bare aiohttp handler")
    options = fill_defaults(parser, parser.parse_args(argv), runs=(10, 40))
    command_text = announce("hook.py", argv)

    work = Path(tempfile.mkdtemp(prefix="bench-hook-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE_MPM_")}
    env["AGGREGATE_SPOOL_DIR"] = str(work / "spool")
    env["HOME"] = str(work)  # the real hub's configuration and activity directory stay in here
    if not options.as_is:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    payload_file = work / "payload.json"
    payload_file.write_bytes(json.dumps(PAYLOAD, ensure_ascii=False, separators=(",", ":")).encode())
    secret_file = work / "secret.json"  # same size and shape, one secret in it
    secret_payload = {**PAYLOAD, "tool_input": {**PAYLOAD["tool_input"],
                                                "old_string": "export GITHUB_TOKEN=ghp_" + "a1B2c3D4" * 5 + "\n"}}
    secret_file.write_bytes(json.dumps(secret_payload, ensure_ascii=False, separators=(",", ":")).encode())

    plain = work / "aggregate"
    plain.write_text(f"#!{VENV_PYTHON}\nimport sys\nfrom agent_aggregator.entry import main\nsys.exit(main())\n")
    plain.chmod(0o755)

    up, down = free_port(), free_port()
    if options.real_hub:  # its own spool, so the hub does not drain the hub-down row's lines
        hub_env = {**env, "AGGREGATE_SPOOL_DIR": str(work / "hub-spool")}
        hub = subprocess.Popen([str(AGGREGATE), "serve", "--port", str(up)], env=hub_env, stdout=subprocess.DEVNULL)
    else:
        hub = subprocess.Popen([VENV_PYTHON, "-c", SERVER, str(up)], env=env)
    try:
        wait_for(up)
        python3 = shutil.which("python3") or VENV_PYTHON
        direct = "from agent_aggregator.hook import run; run()"
        rows = [
            ("venv python -c pass (baseline)", [VENV_PYTHON, "-c", "pass"]),
            (f"python3 -c pass ({python3})", [python3, "-c", "pass"]),
            ("aggregate hook, hub up", [str(AGGREGATE), "hook", "--port", str(up)]),
            ("aggregate hook, hub down (spooled)", [str(AGGREGATE), "hook", "--port", str(down)]),
            (SECRET_ROW, [str(AGGREGATE), "hook", "--port", str(down)]),
            ("python -m agent_aggregator hook, hub up", [VENV_PYTHON, "-m", "agent_aggregator", "hook",
                                                         "--port", str(up)]),
            ("installed form (python -I -c <hook.run()>), hub up", [VENV_PYTHON, "-I", "-c", direct, "--port", str(up)]),
            ("installed form (python -I -c <hook.run()>), hub down", [VENV_PYTHON, "-I", "-c", direct, "--port", str(down)]),
            ("plain aggregate script (no re), hub up", [str(plain), "hook", "--port", str(up)]),
            ("plain aggregate script (no re), hub down", [str(plain), "hook", "--port", str(down)]),
            ("python -c 'import re' (the wrapper's floor)", [VENV_PYTHON, "-c", "import re"]),
        ]
        times: dict[str, list[float]] = {label: [] for label, _ in rows}
        for _ in range(3):  # warm-up: page cache, .pyc files
            for label, command in rows:
                with (secret_file if label == SECRET_ROW else payload_file).open("rb") as stdin:
                    subprocess.run(command, stdin=stdin, env=env, stdout=subprocess.DEVNULL, check=True)
        for _ in range(options.runs):
            for label, command in rows:
                with (secret_file if label == SECRET_ROW else payload_file).open("rb") as stdin:
                    start = time.perf_counter()
                    subprocess.run(command, stdin=stdin, env=env, stdout=subprocess.DEVNULL, check=True)
                    times[label].append(time.perf_counter() - start)
    finally:
        hub.terminate()
        hub.wait(10)

    spool = work / "spool" / "hooks.jsonl"
    spooled = len(spool.read_bytes().splitlines()) if spool.exists() else 0
    expected = 4 * (3 + options.runs)  # the four hub-down rows
    if spool.exists() and b"ghp_a1B2" in spool.read_bytes():
        print("the secret reached the spool: redaction is broken", file=sys.stderr)
        return 1
    baseline = times[rows[0][0]]
    which = "aggregate serve" if options.real_hub else "a bare aiohttp handler"
    print(f"aggregate hook latency, {options.runs} rounds (payload {payload_file.stat().st_size} B,"
          f" hub: {which}); {machine_note()}")
    table = []
    for label, _ in rows[1:]:
        judged = label in JUDGED
        row = Row(f"hook: {label}", "s", "venv python -c pass", "<= 1.5x" if judged else "-",
                  (lambda ours, ratio: ratio <= 1.5) if judged else None, command_text)
        for ours, base in zip(times[label], baseline):
            row.add(ours, base)
        table.append(row)
    print_table(table)
    write_json(options.json, table)
    print(f"spooled lines: {spooled} (expected {expected}: the hub-down rows)")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if spooled == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
