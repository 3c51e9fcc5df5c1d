"""Realistic payload streams for agent-aggregator tests (no third-party deps).

Run ``python tests/fixtures_builder.py`` to regenerate ``tests/fixtures/*``.
The output is deterministic: ids come from hashing the session id plus a label,
and times are fixed offsets from a fixed start. Every function returns freshly
built objects, with no nested object shared between payloads, so a consumer
that mutates payloads in place cannot affect another payload.

The shapes follow the research notes in ``research/formats/FORMATS.md`` (section 1
covers raw Claude Code hooks, section 3 covers claude-mpm) and DESIGN.md sections
2-4. The notes mark what was captured from real payloads and what was
reconstructed. The reconstructed parts used here are the MultiEdit
``tool_response``, every claude-mpm value (the keys come from its source), and
the ``command_acknowledged`` body.

Streams
=======

``raw_hook_session(session_id, cwd, start, *, agent_tool="Agent")``
    Returns ``[(timestamp_iso, payload), ...]``: the stdin JSON of one Claude Code
    2.1.x session (the shape of captures B/C: ``prompt_id``, ``effort`` and
    ``duration_ms`` are present), in the order the events really fire. Raw
    payloads carry no timestamp, so the time is the first element of each pair.

    Turn 1 (prompt ``RAW_PROMPTS[0]``):
      SessionStart(startup), UserPromptSubmit,
      Read README.md, TodoWrite (4 todos),
      delegation 1: PreToolUse(Agent, subagent_type "Explore"), SubagentStart,
        Grep and Read inside it (each carries ``agent_id`` and ``agent_type``),
        SubagentStop, PostToolUse(Agent) with ``status: "completed"`` and
        ``agentId``,
      delegation 2: PreToolUse(Agent, "general-purpose"), SubagentStart,
        Write tests/test_orders.py (a new file),
        Bash pytest ending in PostToolUseFailure (``"Exit code 1\\n..."``,
        ``is_interrupt`` false), Edit src/inventory/orders.py,
        Bash pytest ending in PostToolUse, SubagentStop, PostToolUse(Agent),
      a refused call: PreToolUse(Bash ``rm -rf build/ dist/ .pytest_cache``),
        then PermissionRequest (no ``tool_use_id``), then
        Notification(permission_prompt); no Post* ever follows,
      Edit CHANGELOG.md, TodoWrite (all completed), Stop,
      Notification(idle_prompt) 60 s later.
    Turn 2 (prompt ``RAW_PROMPTS[1]``):
      UserPromptSubmit, MultiEdit src/inventory/orders.py, Stop,
      SessionEnd(prompt_input_exit).

    ``agent_tool="Task"`` gives the same session as older builds name the
    subagent tool: only ``tool_name`` changes.

``claude_mpm_session(session_id, cwd, start, *, include_non_session=True,
subagent_id="a8bfb92", task_post_correlation=False)``
    Returns ``[(socketio_event_name, payload), ...]``: what claude-mpm's
    UnifiedMonitorServer emits (FORMATS section 3, stage 2). The payload is
    ``{type: <category>, subtype, data, timestamp, session_id, source,
    correlation_id?, cwd?}`` and it is emitted under the event name
    ``claude_event``, ``hook_event``, ``tool_event`` or ``session_event``.
    The session runs: session_start, user_prompt (``data.prompt_text``), pre and
    post Read (paired by ``correlation_id``; the post carries no file path),
    pre TodoWrite then todo_updated then post, pre_tool Task (subagent_type
    "research", with ``delegation_details``), subagent_start (synthetic
    ``agent_id`` "research_<session_id>"), pre and post Grep and Write inside the
    subagent, which carry no ``agent_id`` because claude-mpm never sends one,
    subagent_stop (``agent_id`` "a8bfb92", ``agent_type`` research), post_tool
    Task (success true), stop (``data.usage``), token_usage_updated, and
    notification(idle_prompt). Every hook also yields a ``hook_execution``
    claude_event; four of them arrive BEFORE the event they describe while
    carrying a later timestamp. There is no session_end, because claude-mpm emits
    none for SessionEnd.

    Format quirk, kept on purpose (``task_post_correlation=False``): claude-mpm
    keeps one correlation file per session, and each post_tool reads it and then
    deletes it. The subagent's own tool calls therefore use up the Task's
    correlation id, and the real post_tool Task carries NO ``correlation_id``.
    Pass ``task_post_correlation=True`` to get the idealised stream instead.

    With ``include_non_session=True`` the result also contains the messages
    from ``mpm_non_session_messages()``: ``dashboard:welcome`` (a Socket.IO
    connection id in ``session_id``, which is not a session), ``event_history``
    (empty), a ``heartbeat`` whose timestamp is the malformed ``...+00:00Z``,
    and a ``command_acknowledged`` claude_event with no session id anywhere.

``api_events_bodies(session_id, cwd, start, ...)``
    The same claude-mpm session as HTTP ``POST /api/events`` bodies (stage 1):
    ``{"namespace": "", "event": "claude_event", "data": {event: "mpm_event",
    source: "hook", type: "hook", subtype, timestamp, data, correlation_id?,
    session_id?, cwd?}}``. It contains no non-session messages.

``seed_envelope_events(session_id, cwd, start)``
    The seed envelope ``{type: "hook", subtype, timestamp: "...123Z", data:
    {session_id, tool_name, tool_input}}`` for a short session: user_prompt, pre
    and post Edit (``tool_input.file_path``), pre and post Task
    (``tool_input.subagent_type`` "engineer"), then stop. The seed format has no
    pairing key (no ``tool_use_id`` or ``correlation_id``).

``interleaved_stream(n_sessions=3, seed=7)``
    Returns ``[(event_name or None, payload), ...]``. Even-numbered sessions are
    raw hooks (event name None); session 2, 6, ... use ``agent_tool="Task"``.
    Odd-numbered sessions are claude-mpm. One copy of the non-session messages
    is added. The merge is a seeded uniform random interleaving that keeps the
    order within each session. ``interleaved_sessions()`` gives each session's
    id, events and EXPECTED.

``malformed_payloads()``
    Returns ``[MalformedCase(label, form, payload), ...]``. ``form`` is
    ``"value"`` for an already-decoded object, ``"text"`` for a str to be parsed
    as JSON, or ``"bytes"`` for raw bytes. Cases that JSON cannot represent (all
    bytes, NaN, sets) and the 1 MB prompt stay in the builder only; every other
    case is also written to ``fixtures/malformed.jsonl``.

EXPECTED outcome for the raw-hook session (``EXPECTED["raw_hook_session"]``)
============================================================================
Everything below is computed while building, from the same scenario constants.

- status ``completed`` (set by SessionEnd, reason ``prompt_input_exit``);
  ``start_time`` is the timestamp of the first event and ``end_time`` that of the
  SessionEnd.
- ``initial_prompt`` is ``RAW_PROMPTS[0]``, ``final_response`` is the second
  Stop's ``last_assistant_message`` and ``turns`` is 2.
- 2 delegations, both successful (0 failed), each with status completed:
    1. ``Explore``: tool calls Grep and Read; ``files_modified`` [] (it only
       read files).
    2. ``general-purpose``: tool calls Write, Bash, Edit, Bash;
       ``files_modified`` [<cwd>/tests/test_orders.py,
       <cwd>/src/inventory/orders.py] (2 files). One of its Bash calls failed
       (PostToolUseFailure), which does not fail the delegation, because its
       Agent PostToolUse says completed.
  ``agent_id`` is the 17-hex id of SubagentStart/SubagentStop (and ``agentId``
  in the Agent response); ``instructions`` is the Agent ``tool_input.prompt``.
- ``files_modified`` for the session: the unique Write/Edit/MultiEdit paths in
  first-seen order, namely tests/test_orders.py, src/inventory/orders.py and
  CHANGELOG.md (MultiEdit touches orders.py again, so there are 3 unique files).
- ``tools_used`` (sorted, the delegation tool included): Agent (or Task), Bash,
  Edit, Grep, MultiEdit, Read, TodoWrite, Write.
- 1 PreToolUse is never closed (the refused Bash ``rm -rf``); 1 PermissionRequest;
  1 failed tool call (Bash, ``error`` starts with "Exit code 1").
- ``todos``: the second TodoWrite list, with all 4 items completed.

EXPECTED for claude-mpm (``EXPECTED["claude_mpm_session"]``, status ``active``
because there is no SessionEnd) has 1 delegation ``research``, ``instructions``
set to the Task prompt, tool calls Grep and Write attributed to it (exactly one
delegation is open and claude-mpm sends no ``agent_id``), ``files_modified`` set
to [<cwd>/docs/research/invoice-retry-double-charge.md], success true (from
post_tool Task), ``usage`` from stop, and 4 non-session messages, none of which
creates a session.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import random
import re
import string
import sys
import uuid as _uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "EXPECTED",
    "FIXTURES_DIR",
    "MalformedCase",
    "api_events_bodies",
    "claude_mpm_session",
    "expected_api_events_bodies",
    "expected_claude_mpm_session",
    "expected_raw_hook_session",
    "expected_seed_envelope_events",
    "interleaved_sessions",
    "interleaved_stream",
    "malformed_payloads",
    "mpm_non_session_messages",
    "raw_hook_session",
    "render_fixtures",
    "seed_envelope_events",
    "write_fixtures",
]

UTC = timezone.utc
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"

WRITE_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit")
FILE_TOOLS = ("Read",) + WRITE_TOOLS

# --------------------------------------------------------------------------
# Scenario constants (raw Claude Code hooks)
# --------------------------------------------------------------------------
RAW_SESSION_ID = "4f6c1e2a-8b3d-4a7e-9c15-2d8e6f0b7a31"
RAW_CWD = "/home/dev/projects/inventory-api"
RAW_START = datetime(2026, 3, 14, 9, 30, 0, tzinfo=UTC)
PERMISSION_MODE = "acceptEdits"
EFFORT_LEVEL = "high"

RAW_PROMPTS = (
    "Orders can be created with a negative quantity and we can oversell stock. "
    "Fix create_order so it rejects both, add tests, and note it in the CHANGELOG.",
    "Also make the error messages in orders.py consistent: sentence case, and "
    "include the SKU.",
)
RAW_FINAL_MESSAGES = (
    "Done. create_order now rejects non-positive quantities (422) and overselling "
    "(409); tests are in tests/test_orders.py and the CHANGELOG is updated. I did "
    "not delete build/ and dist/ since you declined that command.",
    "The error messages in src/inventory/orders.py now use sentence case and "
    "include the SKU.",
)
RAW_SESSION_END_REASON = "prompt_input_exit"

REL_README = "README.md"
REL_ORDERS = "src/inventory/orders.py"
REL_TESTS = "tests/test_orders.py"
REL_CHANGELOG = "CHANGELOG.md"

README_MD = (
    "# inventory-api\n\nSmall FastAPI service that tracks stock levels and "
    "customer orders.\n\n## Development\n\n    pip install -e .[dev]\n    pytest -q\n"
)
ORDERS_PY_V0 = (
    "from fastapi import APIRouter, HTTPException\n"
    "\n"
    "from .models import Order, OrderIn\n"
    "from .store import STORE\n"
    "\n"
    'router = APIRouter(prefix="/orders")\n'
    "\n"
    "\n"
    '@router.post("", status_code=201)\n'
    "def create_order(payload: OrderIn) -> Order:\n"
    "    item = STORE.items.get(payload.sku)\n"
    "    if item is None:\n"
    '        raise HTTPException(status_code=404, detail="unknown sku")\n'
    "    item.stock -= payload.quantity\n"
    "    return STORE.add_order(payload)\n"
)
ORDERS_EDIT_OLD = "    item.stock -= payload.quantity\n"
ORDERS_EDIT_NEW = (
    "    if payload.quantity <= 0:\n"
    '        raise HTTPException(status_code=422, detail="quantity must be positive")\n'
    "    if payload.quantity > item.stock:\n"
    '        raise HTTPException(status_code=409, detail="insufficient stock")\n'
    "    item.stock -= payload.quantity\n"
)
ORDERS_MULTI_EDITS = (
    {"old_string": 'detail="unknown sku"', "new_string": 'detail=f"Unknown SKU: {payload.sku}"'},
    {
        "old_string": 'detail="quantity must be positive"',
        "new_string": 'detail=f"Quantity must be positive for SKU {payload.sku}"',
    },
    {
        "old_string": 'detail="insufficient stock"',
        "new_string": 'detail=f"Insufficient stock for SKU {payload.sku}"',
    },
)
TESTS_PY = (
    "from fastapi.testclient import TestClient\n"
    "\n"
    "from inventory.app import app\n"
    "\n"
    "client = TestClient(app)\n"
    "\n"
    "\n"
    "def test_create_order_rejects_non_positive_quantity():\n"
    '    r = client.post("/orders", json={"sku": "W-100", "quantity": 0})\n'
    "    assert r.status_code == 422\n"
    "\n"
    "\n"
    "def test_create_order_rejects_oversell():\n"
    '    r = client.post("/orders", json={"sku": "W-100", "quantity": 10_000})\n'
    "    assert r.status_code == 409\n"
)
CHANGELOG_V0 = "# Changelog\n\n## Unreleased\n\n## 0.3.0 - 2026-02-20\n\n- Stock levels endpoint.\n"
CHANGELOG_EDIT_OLD = "## Unreleased\n"
CHANGELOG_EDIT_NEW = (
    "## Unreleased\n\n- Reject non-positive order quantities (422) and overselling (409).\n"
)
PYTEST_CMD = "python -m pytest tests/test_orders.py -q"
PYTEST_FAILURE = (
    "Exit code 1\n"
    "FF                                                                       [100%]\n"
    "=================================== FAILURES ===================================\n"
    "_______________ test_create_order_rejects_non_positive_quantity ________________\n"
    "\n"
    "    def test_create_order_rejects_non_positive_quantity():\n"
    '        r = client.post("/orders", json={"sku": "W-100", "quantity": 0})\n'
    ">       assert r.status_code == 422\n"
    "E       assert 201 == 422\n"
    "E        +  where 201 = <Response [201 Created]>.status_code\n"
    "\n"
    "tests/test_orders.py:10: AssertionError\n"
    "=========================== short test summary info ============================\n"
    "FAILED tests/test_orders.py::test_create_order_rejects_non_positive_quantity - assert 201 == 422\n"
    "FAILED tests/test_orders.py::test_create_order_rejects_oversell - assert 201 == 409\n"
    "2 failed in 0.41s"
)
PYTEST_SUCCESS = "..                                                                       [100%]\n2 passed in 0.38s"
REFUSED_COMMAND = "rm -rf build/ dist/ .pytest_cache"

TODOS_1 = (
    ("Find where orders are created", "in_progress", "Finding where orders are created"),
    ("Add quantity and stock validation", "pending", "Adding quantity and stock validation"),
    ("Add regression tests", "pending", "Adding regression tests"),
    ("Update the CHANGELOG", "pending", "Updating the CHANGELOG"),
)


# --------------------------------------------------------------------------
# Scenario constants (claude-mpm and seed envelope)
# --------------------------------------------------------------------------
MPM_SESSION_ID = "9d3e7a41-2b6c-4f08-a5d1-c7e2f4b90a13"
MPM_CWD = "/Users/dana/work/billing-service"
MPM_START = datetime(2026, 3, 14, 10, 5, 0, tzinfo=UTC)
MPM_GIT_BRANCH = "main"
MPM_SUBAGENT_ID = "a8bfb92"
MPM_SOCKET_SID = "pQ7x2LmZ0vKa9WcRAAAB"  # Socket.IO connection id (20 chars)
MPM_PROMPT = (
    "The invoice retry job double-charges customers when Stripe times out. Research "
    "how retries are scheduled and write up what you find in docs/research before "
    "we change any code."
)
MPM_TASK = {
    "description": "Investigate invoice retry double-charge",
    "prompt": (
        "Investigate how src/billing/retry.py schedules invoice retries after a Stripe "
        "timeout and whether an idempotency key is sent. Write your findings to "
        "docs/research/invoice-retry-double-charge.md."
    ),
    "subagent_type": "research",
}
MPM_REL_READ = "src/billing/retry.py"
MPM_REL_WRITE = "docs/research/invoice-retry-double-charge.md"
MPM_WRITE_CONTENT = (
    "# Invoice retry double-charge\n\n"
    "- `schedule_retry()` re-enqueues the charge after a Stripe timeout without an "
    "idempotency key.\n"
    "- A timed-out request may still succeed at Stripe, so the retry charges twice.\n"
    "- Fix: pass `idempotency_key=f\"invoice-{invoice.id}-{attempt}\"` on every charge.\n"
)
MPM_TODOS = (
    ("Research invoice retry scheduling", "in_progress", "Researching invoice retry scheduling"),
    ("Write findings to docs/research", "pending", "Writing findings to docs/research"),
)
MPM_USAGE = {
    "input_tokens": 2210,
    "output_tokens": 9830,
    "cache_creation_input_tokens": 61450,
    "cache_read_input_tokens": 884120,
}

SEED_SESSION_ID = "sess_7f3a9c2e"
SEED_CWD = "/home/dev/projects/notes-app"
SEED_START = datetime(2026, 3, 14, 11, 0, 0, tzinfo=UTC)
SEED_PROMPT = "Rename the `notes` table column `body` to `content` and update the model."
SEED_REL_EDIT = "app/models.py"
SEED_TASK = {
    "subagent_type": "engineer",
    "description": "Write the migration",
    "prompt": "Create an Alembic migration renaming notes.body to notes.content, with a downgrade.",
}

INTERLEAVED_START = datetime(2026, 3, 15, 8, 0, 0, tzinfo=UTC)


# --------------------------------------------------------------------------
# Deterministic ids and time helpers
# --------------------------------------------------------------------------
_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()


def det_uuid(*parts: object) -> str:
    """A UUID v4-shaped id derived from *parts* (stable across runs)."""
    return str(_uuid.UUID(bytes=_digest(*parts)[:16], version=4))


def det_hex(length: int, *parts: object) -> str:
    return _digest(*parts).hex()[:length]


def det_toolu(*parts: object) -> str:
    """A ``toolu_01`` + 22 base62 chars id, like real Anthropic tool_use ids."""
    n = int.from_bytes(_digest("toolu", *parts), "big")
    chars = []
    for _ in range(22):
        n, r = divmod(n, 62)
        chars.append(_B62[r])
    return "toolu_01" + "".join(chars)


def iso_ms(dt: datetime) -> str:
    """``2026-03-14T09:30:00.000+00:00``: the times we attach to raw hooks."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds")


def iso_seed(dt: datetime) -> str:
    """``2026-03-14T11:00:00.123Z``: the seed envelope's timestamp style."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _encode_cwd(cwd: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "-", cwd)


def _home_for(cwd: str) -> str:
    m = re.match(r"^(/Users/[^/]+|/home/[^/]+)", cwd)
    return m.group(1) if m else "/root"


def transcript_path(session_id: str, cwd: str) -> str:
    return f"{_home_for(cwd)}/.claude/projects/{_encode_cwd(cwd)}/{session_id}.jsonl"


def agent_transcript_path(session_id: str, cwd: str, agent_id: str) -> str:
    return (
        f"{_home_for(cwd)}/.claude/projects/{_encode_cwd(cwd)}/{session_id}"
        f"/subagents/agent-{agent_id}.jsonl"
    )


def _abs(cwd: str, rel: str) -> str:
    return f"{cwd.rstrip('/')}/{rel}"


def structured_patch(old_text: str, new_text: str) -> list[dict]:
    """Claude Code's ``structuredPatch`` hunks (3 lines of context)."""
    a, b = old_text.splitlines(), new_text.splitlines()
    hunks = []
    for group in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_grouped_opcodes(3):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        lines: list[str] = []
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                lines += [" " + s for s in a[a1:a2]]
            else:
                lines += ["-" + s for s in a[a1:a2]]
                lines += ["+" + s for s in b[b1:b2]]
        hunks.append(
            {"oldStart": i1 + 1, "oldLines": i2 - i1, "newStart": j1 + 1, "newLines": j2 - j1, "lines": lines}
        )
    return hunks


def _todos(spec) -> list[dict]:
    return [{"content": c, "status": s, "activeForm": a} for c, s, a in spec]


def _usage(input_tokens: int, cache_creation: int, cache_read: int, output: int) -> dict:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_creation,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output,
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": cache_creation},
        "inference_geo": "",
        "iterations": [],
        "speed": "standard",
    }


def _unique(seq) -> list:
    seen, out = set(), []
    for x in seq:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


# --------------------------------------------------------------------------
# Raw Claude Code hooks
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class ToolCall:
    tool_name: str
    tool_input: dict
    tool_response: dict | None = None  # PostToolUse
    error: str | None = None  # PostToolUseFailure instead of PostToolUse
    refused: bool = False  # PreToolUse + PermissionRequest, never a Post*
    duration_ms: int = 40

    @property
    def file_path(self) -> str | None:
        return self.tool_input.get("file_path") if self.tool_name in FILE_TOOLS else None


@dataclass(frozen=True)
class Delegation:
    subagent_type: str
    description: str
    prompt: str
    tools: tuple[ToolCall, ...]
    final_message: str
    usage: dict


@dataclass(frozen=True)
class Turn:
    prompt: str
    steps: tuple  # ToolCall | Delegation
    final_message: str
    idle_notification: bool


def _read_response(path: str, content: str) -> dict:
    n = content.count("\n") + (0 if content.endswith("\n") else 1)
    return {
        "type": "text",
        "file": {"filePath": path, "content": content, "numLines": n, "startLine": 1, "totalLines": n},
    }


def _edit_call(path: str, before: str, old: str, new: str) -> ToolCall:
    after = before.replace(old, new, 1)
    return ToolCall(
        "Edit",
        {"file_path": path, "old_string": old, "new_string": new, "replace_all": False},
        {
            "filePath": path,
            "oldString": old,
            "newString": new,
            "originalFile": before,
            "structuredPatch": structured_patch(before, after),
            "userModified": False,
            "replaceAll": False,
        },
        duration_ms=31,
    )


def _bash_ok(command: str, description: str, stdout: str, duration_ms: int) -> ToolCall:
    return ToolCall(
        "Bash",
        {"command": command, "description": description},
        {"stdout": stdout, "stderr": "", "interrupted": False, "isImage": False, "noOutputExpected": False},
        duration_ms=duration_ms,
    )


def _raw_script(cwd: str) -> list[Turn]:
    readme, orders, tests, changelog = (_abs(cwd, r) for r in (REL_README, REL_ORDERS, REL_TESTS, REL_CHANGELOG))
    orders_v1 = ORDERS_PY_V0.replace(ORDERS_EDIT_OLD, ORDERS_EDIT_NEW, 1)
    orders_v2 = orders_v1
    for e in ORDERS_MULTI_EDITS:
        orders_v2 = orders_v2.replace(e["old_string"], e["new_string"], 1)
    todos_1 = _todos(TODOS_1)
    todos_2 = _todos((c, "completed", a) for c, _, a in TODOS_1)

    explore = Delegation(
        subagent_type="Explore",
        description="Locate order creation code",
        prompt=(
            "Find where orders are created in this repository and where stock is decremented. "
            "Report file paths and line numbers. Do not modify anything."
        ),
        tools=(
            ToolCall(
                "Grep",
                {"pattern": "def create_order", "path": cwd, "output_mode": "files_with_matches"},
                {"mode": "files_with_matches", "filenames": [orders], "numFiles": 1},
                duration_ms=112,
            ),
            ToolCall("Read", {"file_path": orders}, _read_response(orders, ORDERS_PY_V0), duration_ms=9),
        ),
        final_message=(
            "Orders are created in src/inventory/orders.py, create_order (line 10). Stock is "
            "decremented at line 14 (`item.stock -= payload.quantity`) with no check on the "
            "quantity or on the available stock. No tests cover this path."
        ),
        usage=_usage(11, 3120, 14208, 402),
    )
    implement = Delegation(
        subagent_type="general-purpose",
        description="Add order validation and tests",
        prompt=(
            "In src/inventory/orders.py make create_order reject non-positive quantities (422) "
            "and orders larger than the available stock (409). Add regression tests in "
            "tests/test_orders.py and make sure they pass."
        ),
        tools=(
            ToolCall(
                "Write",
                {"file_path": tests, "content": TESTS_PY},
                {"type": "create", "filePath": tests, "content": TESTS_PY, "structuredPatch": [], "originalFile": None},
                duration_ms=22,
            ),
            ToolCall(
                "Bash",
                {"command": PYTEST_CMD, "description": "Run the new order tests"},
                error=PYTEST_FAILURE,
                duration_ms=1840,
            ),
            _edit_call(orders, ORDERS_PY_V0, ORDERS_EDIT_OLD, ORDERS_EDIT_NEW),
            _bash_ok(PYTEST_CMD, "Run the order tests again", PYTEST_SUCCESS, 1710),
        ),
        final_message=(
            "Added quantity and stock validation to create_order and two regression tests in "
            "tests/test_orders.py. `python -m pytest tests/test_orders.py -q` now passes (2 passed)."
        ),
        usage=_usage(23, 5830, 41977, 1388),
    )
    turn1 = Turn(
        prompt=RAW_PROMPTS[0],
        steps=(
            ToolCall("Read", {"file_path": readme}, _read_response(readme, README_MD), duration_ms=7),
            ToolCall("TodoWrite", {"todos": todos_1}, {"oldTodos": [], "newTodos": todos_1}, duration_ms=3),
            explore,
            implement,
            ToolCall(
                "Bash",
                {"command": REFUSED_COMMAND, "description": "Remove build artifacts"},
                refused=True,
            ),
            _edit_call(changelog, CHANGELOG_V0, CHANGELOG_EDIT_OLD, CHANGELOG_EDIT_NEW),
            ToolCall("TodoWrite", {"todos": todos_2}, {"oldTodos": todos_1, "newTodos": todos_2}, duration_ms=3),
        ),
        final_message=RAW_FINAL_MESSAGES[0],
        idle_notification=True,
    )
    multi_input = {"file_path": orders, "edits": [dict(e) for e in ORDERS_MULTI_EDITS]}
    turn2 = Turn(
        prompt=RAW_PROMPTS[1],
        steps=(
            ToolCall(
                "MultiEdit",
                multi_input,
                {  # INFERRED: no real MultiEdit capture exists (FORMATS 1.4)
                    "filePath": orders,
                    "edits": [dict(e) for e in ORDERS_MULTI_EDITS],
                    "originalFileContents": orders_v1,
                    "structuredPatch": structured_patch(orders_v1, orders_v2),
                    "userModified": False,
                },
                duration_ms=36,
            ),
        ),
        final_message=RAW_FINAL_MESSAGES[1],
        idle_notification=False,
    )
    return [turn1, turn2]


class _RawBuilder:
    GAP_MS = 420  # model "thinking" between two hook events

    def __init__(self, session_id: str, cwd: str, start: datetime, agent_tool: str):
        self.sid, self.cwd, self.agent_tool = session_id, cwd, agent_tool
        self.t = start
        self.events: list[tuple[str, dict]] = []
        self.base = {
            "session_id": session_id,
            "transcript_path": transcript_path(session_id, cwd),
            "cwd": cwd,
        }
        self.prompt_id: str | None = None
        self.n_tool = 0
        self.n_agent = 0
        # ledger for EXPECTED
        self.tool_calls: list[dict] = []
        self.delegations: list[dict] = []
        self.prompts: list[str] = []
        self.stops: list[str] = []
        self.permission_requests = 0
        self.todos: list | None = None

    # -- emission
    def emit(self, advance_ms: int, payload: dict) -> None:
        self.t += timedelta(milliseconds=advance_ms)
        self.events.append((iso_ms(self.t), copy.deepcopy(payload)))

    def hook(self, name: str, *, prompt_id=False, permission=False, agent=None, effort=False, **fields) -> dict:
        p = dict(self.base)
        if prompt_id:
            p["prompt_id"] = self.prompt_id
        if permission:
            p["permission_mode"] = PERMISSION_MODE
        if agent:
            p["agent_id"], p["agent_type"] = agent
        if effort:
            p["effort"] = {"level": EFFORT_LEVEL}
        p["hook_event_name"] = name
        p.update(fields)
        return p

    # -- scenario pieces
    def session_start(self) -> None:
        self.emit(0, self.hook("SessionStart", source="startup"))

    def user_prompt(self, turn_no: int, prompt: str, advance_ms: int) -> None:
        self.prompt_id = det_uuid(self.sid, "prompt", turn_no)
        self.prompts.append(prompt)
        self.emit(advance_ms, self.hook("UserPromptSubmit", prompt_id=True, permission=True, prompt=prompt))

    def tool(self, call: ToolCall, agent: tuple[str, str] | None = None) -> dict:
        self.n_tool += 1
        tuid = det_toolu(self.sid, self.n_tool)
        common = dict(prompt_id=True, permission=True, agent=agent, effort=True)
        self.emit(
            self.GAP_MS,
            self.hook("PreToolUse", **common, tool_name=call.tool_name, tool_input=call.tool_input, tool_use_id=tuid),
        )
        outcome = "ok"
        if call.refused:
            outcome = "refused"
            self.permission_requests += 1
            self.emit(
                35,
                self.hook(
                    "PermissionRequest",
                    permission=True,
                    agent=agent,
                    tool_name=call.tool_name,
                    tool_input=call.tool_input,
                    permission_suggestions=[
                        {
                            "type": "addRules",
                            "rules": [{"toolName": call.tool_name, "ruleContent": call.tool_input["command"] + ":*"}],
                            "behavior": "allow",
                            "destination": "localSettings",
                        }
                    ],
                ),
            )
            self.emit(
                6,
                self.hook(
                    "Notification",
                    message=f"Claude needs your permission to use {call.tool_name}",
                    notification_type="permission_prompt",
                ),
            )
            self.t += timedelta(seconds=9)  # the user reads it and declines
        elif call.error is not None:
            outcome = "failed"
            self.emit(
                call.duration_ms,
                self.hook(
                    "PostToolUseFailure",
                    **common,
                    tool_name=call.tool_name,
                    tool_input=call.tool_input,
                    tool_use_id=tuid,
                    error=call.error,
                    is_interrupt=False,
                    duration_ms=call.duration_ms,
                ),
            )
        else:
            self.emit(
                call.duration_ms,
                self.hook(
                    "PostToolUse",
                    **common,
                    tool_name=call.tool_name,
                    tool_input=call.tool_input,
                    tool_response=call.tool_response,
                    tool_use_id=tuid,
                    duration_ms=call.duration_ms,
                ),
            )
        if call.tool_name == "TodoWrite" and outcome == "ok":
            self.todos = copy.deepcopy(call.tool_input["todos"])
        rec = {
            "tool_name": call.tool_name,
            "tool_use_id": tuid,
            "agent_id": agent[0] if agent else None,
            "file_path": call.file_path,
            "outcome": outcome,
            "error": call.error,
        }
        self.tool_calls.append(rec)
        return rec

    def delegation(self, d: Delegation) -> None:
        self.n_tool += 1
        self.n_agent += 1
        tuid = det_toolu(self.sid, self.n_tool)
        agent_id = det_hex(17, self.sid, "agent", self.n_agent)
        agent = (agent_id, d.subagent_type)
        tool_input = {
            "description": d.description,
            "prompt": d.prompt,
            "subagent_type": d.subagent_type,
            "run_in_background": False,
        }
        common = dict(prompt_id=True, permission=True, effort=True)
        self.emit(
            self.GAP_MS,
            self.hook("PreToolUse", **common, tool_name=self.agent_tool, tool_input=tool_input, tool_use_id=tuid),
        )
        t0 = self.t
        self.emit(140, self.hook("SubagentStart", prompt_id=True, agent=agent))
        first_inner = len(self.events) - 1
        inner = [self.tool(c, agent=agent) for c in d.tools]
        self.emit(
            900,
            self.hook(
                "SubagentStop",
                prompt_id=True,
                permission=True,
                agent=agent,
                effort=True,
                stop_hook_active=False,
                agent_transcript_path=agent_transcript_path(self.sid, self.cwd, agent_id),
                last_assistant_message=d.final_message,
                background_tasks=[],
                session_crons=[],
            ),
        )
        inner_events = len(self.events) - first_inner
        total_ms = int((self.t - t0).total_seconds() * 1000) + 60
        usage = copy.deepcopy(d.usage)
        total_tokens = sum(
            usage[k]
            for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
        )
        self.emit(
            60,
            self.hook(
                "PostToolUse",
                **common,
                tool_name=self.agent_tool,
                tool_input=tool_input,
                tool_response={
                    "status": "completed",
                    "prompt": d.prompt,
                    "agentId": agent_id,
                    "content": [{"type": "text", "text": d.final_message}],
                    "totalDurationMs": total_ms,
                    "totalTokens": total_tokens,
                    "totalToolUseCount": len(d.tools),
                    "usage": usage,
                },
                tool_use_id=tuid,
                duration_ms=total_ms,
            ),
        )
        self.tool_calls.append(
            {
                "tool_name": self.agent_tool,
                "tool_use_id": tuid,
                "agent_id": None,
                "file_path": None,
                "outcome": "ok",
                "error": None,
            }
        )
        self.delegations.append(
            {
                "agent_type": d.subagent_type,
                "agent_id": agent_id,
                "tool_use_id": tuid,
                "description": d.description,
                "instructions": d.prompt,
                "tool_calls": [r["tool_name"] for r in inner],
                "tool_operations": len(inner),
                "failed_tool_calls": sum(1 for r in inner if r["outcome"] == "failed"),
                "inner_event_count": inner_events,
                "files_modified": _unique(
                    r["file_path"] for r in inner if r["tool_name"] in WRITE_TOOLS and r["outcome"] == "ok"
                ),
                "success": True,
                "status": "completed",
                "response_text": d.final_message,
                "total_tokens": total_tokens,
            }
        )

    def stop(self, message: str) -> None:
        self.stops.append(message)
        self.emit(
            1500,
            self.hook(
                "Stop",
                prompt_id=True,
                permission=True,
                effort=True,
                stop_hook_active=False,
                last_assistant_message=message,
                background_tasks=[],
                session_crons=[],
            ),
        )

    def idle(self) -> None:
        self.emit(
            60_000,
            self.hook("Notification", message="Claude is waiting for your input", notification_type="idle_prompt"),
        )

    def session_end(self, reason: str) -> None:
        self.emit(30_000, self.hook("SessionEnd", prompt_id=True, reason=reason))


def _build_raw(session_id: str, cwd: str, start: datetime, agent_tool: str) -> _RawBuilder:
    if agent_tool not in ("Agent", "Task"):
        raise ValueError(f"agent_tool must be 'Agent' or 'Task', not {agent_tool!r}")
    b = _RawBuilder(session_id, cwd, start, agent_tool)
    b.session_start()
    for turn_no, turn in enumerate(_raw_script(cwd)):
        b.user_prompt(turn_no, turn.prompt, 2_300 if turn_no == 0 else 95_000)
        for step in turn.steps:
            if isinstance(step, Delegation):
                b.delegation(step)
            else:
                b.tool(step)
        b.stop(turn.final_message)
        if turn.idle_notification:
            b.idle()
    b.session_end(RAW_SESSION_END_REASON)
    return b


def raw_hook_session(
    session_id: str = RAW_SESSION_ID,
    cwd: str = RAW_CWD,
    start: datetime = RAW_START,
    *,
    agent_tool: str = "Agent",
) -> list[tuple[str, dict]]:
    """One Claude Code session as ``[(timestamp_iso, hook_stdin_payload), ...]``."""
    return _build_raw(session_id, cwd, start, agent_tool).events


def expected_raw_hook_session(
    session_id: str = RAW_SESSION_ID,
    cwd: str = RAW_CWD,
    start: datetime = RAW_START,
    *,
    agent_tool: str = "Agent",
) -> dict:
    """What the aggregator should derive from ``raw_hook_session(...)`` (same args)."""
    b = _build_raw(session_id, cwd, start, agent_tool)
    calls = b.tool_calls
    return {
        "kind": "raw_hook",
        "session_id": session_id,
        "working_directory": cwd,
        "status": "completed",
        "session_end_reason": RAW_SESSION_END_REASON,
        "start_time": b.events[0][0],
        "end_time": b.events[-1][0],
        "initial_prompt": b.prompts[0],
        "prompts": list(b.prompts),
        "final_response": b.stops[-1],
        "turns": len(b.prompts),
        "total_events": len(b.events),
        "event_counts": dict(Counter(p["hook_event_name"] for _, p in b.events)),
        "delegation_tool_name": agent_tool,
        "total_delegations": len(b.delegations),
        "successful_delegations": sum(1 for d in b.delegations if d["success"]),
        "failed_delegations": sum(1 for d in b.delegations if not d["success"]),
        "delegations": b.delegations,
        "files_modified": _unique(
            c["file_path"] for c in calls if c["tool_name"] in WRITE_TOOLS and c["outcome"] == "ok"
        ),
        "files_read": _unique(c["file_path"] for c in calls if c["tool_name"] == "Read"),
        "tools_used": sorted({c["tool_name"] for c in calls}),
        "tool_call_counts": dict(Counter(c["tool_name"] for c in calls)),
        "main_agent_tool_calls": [c["tool_name"] for c in calls if c["agent_id"] is None],
        "unpaired_tool_use_ids": [c["tool_use_id"] for c in calls if c["outcome"] == "refused"],
        "failed_tool_calls": [
            {"tool_name": c["tool_name"], "tool_use_id": c["tool_use_id"], "agent_id": c["agent_id"], "error": c["error"]}
            for c in calls
            if c["outcome"] == "failed"
        ],
        "permission_requests": b.permission_requests,
        "todos": b.todos,
    }


# --------------------------------------------------------------------------
# claude-mpm (Socket.IO stage 2, HTTP stage 1)
# --------------------------------------------------------------------------
MPM_CATEGORIES = {
    "subagent_start": "hook_event",
    "subagent_stop": "hook_event",
    "todo_updated": "hook_event",
    "pre_tool": "tool_event",
    "post_tool": "tool_event",
    "session_start": "session_event",
    "session_end": "session_event",
    "token_usage_updated": "session_event",
}


def mpm_category(subtype: str) -> str:
    """UnifiedMonitorServer._categorize_event; unlisted names go to claude_event."""
    return MPM_CATEGORIES.get(subtype, "claude_event")


def _mpm_tool_parameters(tool_name: str, tool_input: dict) -> dict:
    """Mirror of claude-mpm tool_analysis.extract_tool_parameters (subset used here)."""
    params: dict[str, Any] = {"input_type": "dict", "param_keys": list(tool_input)}
    if tool_name in ("Write", "Edit", "MultiEdit", "Read", "NotebookRead", "NotebookEdit"):
        params.update(
            {
                "file_path": tool_input.get("file_path") or tool_input.get("notebook_path"),
                "content_length": len(str(tool_input.get("content", tool_input.get("new_string", "")))),
                "is_create": tool_name == "Write",
                "is_edit": tool_name in ("Edit", "MultiEdit", "NotebookEdit"),
            }
        )
    elif tool_name == "Bash":
        cmd = tool_input.get("command", "")
        params.update(
            {
                "command": cmd[:100],
                "command_length": len(cmd),
                "has_pipe": "|" in cmd,
                "has_redirect": ">" in cmd or "<" in cmd,
                "timeout": tool_input.get("timeout"),
            }
        )
    elif tool_name in ("Grep", "Glob"):
        params.update(
            {
                "pattern": tool_input.get("pattern", ""),
                "path": tool_input.get("path", ""),
                "output_mode": tool_input.get("output_mode"),
            }
        )
    elif tool_name == "Task":
        sub = tool_input.get("subagent_type") or ""
        prompt = tool_input.get("prompt", "")
        params.update(
            {
                "subagent_type": tool_input.get("subagent_type", "unknown"),
                "description": tool_input.get("description", ""),
                "prompt": prompt,
                "prompt_preview": prompt[:200],
                "is_pm_delegation": sub.lower() == "pm",
                "is_research_delegation": sub.lower() == "research",
                "is_engineer_delegation": sub.lower() == "engineer",
            }
        )
    elif tool_name == "TodoWrite":
        todos = tool_input.get("todos", [])
        counts = {"pending": 0, "in_progress": 0, "completed": 0}
        for t in todos:
            counts[t.get("status", "pending")] += 1
        parts = [
            f"{counts[k]} {label}"
            for k, label in (("completed", "completed"), ("in_progress", "in progress"), ("pending", "pending"))
            if counts[k]
        ]
        params.update(
            {
                "todo_count": len(todos),
                "todos": todos,
                "todo_summary": {
                    "total": len(todos),
                    "status_counts": counts,
                    "priority_counts": {"high": 0, "medium": len(todos), "low": 0},
                    "summary": ", ".join(parts) if parts else "No tasks",
                },
                "has_in_progress": counts["in_progress"] > 0,
                "has_pending": counts["pending"] > 0,
                "has_completed": counts["completed"] > 0,
                "priorities": ["medium"],
            }
        )
    return params


_MPM_OPERATION = {
    "Read": "read", "Grep": "read", "Glob": "read", "LS": "read",
    "Write": "write", "Edit": "write", "MultiEdit": "write", "NotebookEdit": "write",
    "Bash": "execute", "WebFetch": "network", "WebSearch": "network",
    "TodoWrite": "task_management", "Task": "delegation",
}  # fmt: skip


def _mpm_security_risk(tool_name: str, tool_input: dict) -> str:
    if tool_name == "Bash":
        cmd = tool_input.get("command", "").lower()
        if any(p in cmd for p in ("rm -rf", "sudo", "chmod 777", "curl", "wget", "> /etc/", "dd if=")):
            return "high"
        return "medium" if any(w in cmd for w in ("install", "delete", "format", "kill")) else "low"
    if tool_name in ("Write", "Edit", "MultiEdit"):
        fp = tool_input.get("file_path", "")
        if any(p in fp for p in ("/etc/", "/usr/", "/var/", "/sys/")):
            return "high"
        return "medium" if fp.startswith("/") else "low"
    return "low"


class _MpmBuilder:
    """Builds the handler dicts claude-mpm's hook handler emits, in emission order."""

    def __init__(self, session_id: str, cwd: str, start: datetime, subagent_id: str, task_post_correlation: bool):
        self.sid, self.cwd = session_id, cwd
        self.subagent_id = subagent_id
        self.task_post_correlation = task_post_correlation
        self.t = start
        self.n = 0
        self.n_corr = 0
        self.records: list[tuple[str, dict]] = []  # (subtype, handler data)
        self.pending_corr: str | None = None  # claude-mpm's per-session correlation file
        self.tool_calls: list[dict] = []
        self.pairs: list[dict] = []

    def ts(self, advance_ms: int) -> str:
        """``datetime.now(UTC).isoformat()``: microseconds, ``+00:00``."""
        self.t += timedelta(milliseconds=advance_ms)
        self.n += 1
        return (self.t + timedelta(microseconds=(self.n * 7919) % 997 + 1)).isoformat()

    def add(self, subtype: str, data: dict) -> None:
        self.records.append((subtype, copy.deepcopy(data)))

    def hook_execution(self, hook: str, summary: str, ts: str, duration_ms: int, tool_name: str | None = None) -> dict:
        data = {
            "hook_name": hook,
            "hook_type": hook,
            "hook_event_type": hook,
            "session_id": self.sid,
            "working_directory": self.cwd,
            "success": True,
            "duration_ms": duration_ms,
            "result_summary": summary,
            "timestamp": ts,
            "source": "claude_hook_handler",
        }
        if tool_name:
            data["tool_name"] = tool_name
        return data

    def emit_with_exec(self, subtype: str, data: dict, exec_data: dict, before: bool) -> None:
        if before:  # hook_execution overtakes the event it describes
            self.add("hook_execution", exec_data)
            self.add(subtype, data)
        else:
            self.add(subtype, data)
            self.add("hook_execution", exec_data)

    # -- scenario pieces
    def session_start(self) -> None:
        ts = self.ts(0)
        data = {
            "session_id": self.sid,
            "working_directory": self.cwd,
            "git_branch": MPM_GIT_BRANCH,
            "timestamp": ts,
            "hook_event_name": "SessionStart",
            "has_pending_tasks": False,
            "pending_task_count": 0,
        }
        self.emit_with_exec("session_start", data, self.hook_execution("SessionStart", "Session started", self.ts(18), 18), False)

    def user_prompt(self, prompt: str) -> None:
        ts = self.ts(2_100)
        data = {
            "prompt_text": prompt,
            "prompt_preview": prompt[:200],
            "prompt_length": len(prompt),
            "session_id": self.sid,
            "working_directory": self.cwd,
            "git_branch": MPM_GIT_BRANCH,
            "timestamp": ts,
            "is_command": prompt.startswith("/"),
            "contains_code": "```" in prompt,
            "urgency": "normal",
        }
        exec_data = self.hook_execution(
            "UserPromptSubmit", f"Processed user prompt ({len(prompt)} chars)", self.ts(15), 15
        )
        self.emit_with_exec("user_prompt", data, exec_data, True)

    def pre_tool(self, tool_name: str, tool_input: dict, *, exec_before: bool = False) -> str:
        self.n_corr += 1
        corr = det_uuid(self.sid, "corr", self.n_corr)
        ts = self.ts(450)
        data = {
            "tool_name": tool_name,
            "operation_type": _MPM_OPERATION.get(tool_name, "other"),
            "tool_parameters": _mpm_tool_parameters(tool_name, tool_input),
            "session_id": self.sid,
            "working_directory": self.cwd,
            "git_branch": MPM_GIT_BRANCH,
            "timestamp": ts,
            "parameter_count": len(tool_input),
            "is_file_operation": tool_name in ("Write", "Edit", "MultiEdit", "Read", "LS", "Glob"),
            "is_execution": tool_name in ("Bash", "NotebookEdit"),
            "is_delegation": tool_name == "Task",
            "security_risk": _mpm_security_risk(tool_name, tool_input),
            "correlation_id": corr,
        }
        if tool_name == "Task":
            data["delegation_details"] = {
                "agent_type": tool_input["subagent_type"].lower(),
                "original_agent_type": tool_input["subagent_type"],
                "prompt": tool_input.get("prompt", ""),
                "description": tool_input.get("description", ""),
                "task_preview": (tool_input.get("prompt", "") or tool_input.get("description", ""))[:100],
            }
        self.pending_corr = corr  # CorrelationManager.store overwrites the session's file
        records = [("pre_tool", data)]
        if tool_name == "TodoWrite":
            records.append(
                (
                    "todo_updated",
                    {
                        "todos": tool_input["todos"],
                        "total_count": len(tool_input["todos"]),
                        "session_id": self.sid,
                        "timestamp": ts,
                    },
                )
            )
        elif tool_name == "Task":
            agent_type = tool_input["subagent_type"].lower()
            records.append(
                (
                    "subagent_start",  # emitted by the pre_tool handler itself
                    {
                        "agent_type": agent_type,
                        "agent_id": f"{agent_type}_{self.sid}",
                        "session_id": self.sid,
                        "prompt": tool_input.get("prompt", ""),
                        "description": tool_input.get("description", ""),
                        "timestamp": self.ts(2),
                        "hook_event_name": "SubagentStart",
                    },
                )
            )
        # hook_execution is emitted once the handler returns, after everything it emitted
        exec_data = self.hook_execution("PreToolUse", f"Pre-processing tool call: {tool_name}", self.ts(21), 21, tool_name)
        if exec_before:
            self.add("hook_execution", exec_data)
        for subtype, rec in records:
            self.add(subtype, rec)
        if not exec_before:
            self.add("hook_execution", exec_data)
        self.tool_calls.append({"tool_name": tool_name, "correlation_id": corr, "tool_input": tool_input})
        return corr

    def post_tool(self, tool_name: str, pre_corr: str, duration_ms: int, *, exec_before: bool = False) -> None:
        # CorrelationManager.retrieve reads then deletes the session's single file.
        corr = self.pending_corr
        self.pending_corr = None
        if tool_name == "Task" and self.task_post_correlation:
            corr = pre_corr
        ts = self.ts(duration_ms)
        data = {
            "tool_name": tool_name,
            "exit_code": 0,
            "success": True,
            "status": "success",
            "duration_ms": None,
            "result_summary": {"exit_code": 0, "has_output": False, "has_error": False},
            "session_id": self.sid,
            "working_directory": self.cwd,
            "git_branch": MPM_GIT_BRANCH,
            "timestamp": ts,
            "has_output": False,
            "has_error": False,
            "output_size": 0,
        }
        if corr:
            data["correlation_id"] = corr
        exec_data = self.hook_execution(
            "PostToolUse", f"Completed tool call: {tool_name} (success)", self.ts(17), 17, tool_name
        )
        self.emit_with_exec("post_tool", data, exec_data, exec_before)
        self.pairs.append({"tool_name": tool_name, "pre_correlation_id": pre_corr, "post_correlation_id": corr})

    def subagent_stop(self, agent_type: str) -> None:
        ts = self.ts(1_200)
        data = {
            "agent_type": agent_type,
            "agent_type_inferred": False,
            "agent_id": self.subagent_id,
            "reason": "unknown",
            "session_id": self.sid,
            "working_directory": self.cwd,
            "git_branch": MPM_GIT_BRANCH,
            "timestamp": ts,
            "is_successful_completion": False,
            "is_error_termination": False,
            "is_delegation_related": True,
            "has_results": False,
            "duration_context": None,
            "hook_event_name": "SubagentStop",
        }
        exec_data = self.hook_execution("SubagentStop", f"Subagent {agent_type} stopped: unknown", self.ts(25), 25)
        self.emit_with_exec("subagent_stop", data, exec_data, False)

    def stop(self, usage: dict) -> None:
        ts = self.ts(1_600)
        data = {
            "reason": "unknown",
            "stop_type": "normal",
            "session_id": self.sid,
            "working_directory": self.cwd,
            "git_branch": MPM_GIT_BRANCH,
            "timestamp": ts,
            "is_user_initiated": False,
            "is_error_stop": False,
            "is_completion_stop": False,
            "has_output": False,
            "usage": dict(usage),
        }
        self.add("stop", data)
        self.add(
            "token_usage_updated",
            {
                "session_id": self.sid,
                "input_tokens": usage["input_tokens"],
                "output_tokens": usage["output_tokens"],
                "cache_creation_tokens": usage["cache_creation_input_tokens"],
                "cache_read_tokens": usage["cache_read_input_tokens"],
                "total_tokens": sum(usage.values()),
                "timestamp": ts,
            },
        )
        self.add("hook_execution", self.hook_execution("Stop", "Stop event processed", self.ts(40), 40))

    def notification(self, notification_type: str, message: str) -> None:
        ts = self.ts(60_000)
        low = message.lower()
        data = {
            "notification_type": notification_type,
            "message": message,
            "message_preview": message[:200],
            "message_length": len(message),
            "session_id": self.sid,
            "working_directory": self.cwd,
            "git_branch": MPM_GIT_BRANCH,
            "timestamp": ts,
            "is_user_input_request": "input" in low or "waiting" in low,
            "is_error_notification": "error" in low or "failed" in low,
            "is_status_update": any(w in low for w in ("processing", "analyzing", "working", "thinking")),
        }
        exec_data = self.hook_execution("Notification", f"Notification: {notification_type}", self.ts(12), 12)
        self.emit_with_exec("notification", data, exec_data, False)


def _build_mpm(session_id: str, cwd: str, start: datetime, subagent_id: str, task_post_correlation: bool) -> _MpmBuilder:
    b = _MpmBuilder(session_id, cwd, start, subagent_id, task_post_correlation)
    read_path, write_path = _abs(cwd, MPM_REL_READ), _abs(cwd, MPM_REL_WRITE)
    b.session_start()
    b.user_prompt(MPM_PROMPT)
    c = b.pre_tool("Read", {"file_path": read_path})
    b.post_tool("Read", c, 11, exec_before=True)
    todos = _todos(MPM_TODOS)
    c = b.pre_tool("TodoWrite", {"todos": todos})
    b.post_tool("TodoWrite", c, 4)
    task_input = {k: MPM_TASK[k] for k in ("description", "prompt", "subagent_type")}
    c_task = b.pre_tool("Task", task_input)
    c = b.pre_tool("Grep", {"pattern": "idempotency_key", "path": cwd, "output_mode": "files_with_matches"}, exec_before=True)
    b.post_tool("Grep", c, 95)
    c = b.pre_tool("Write", {"file_path": write_path, "content": MPM_WRITE_CONTENT})
    b.post_tool("Write", c, 19)
    b.subagent_stop(task_input["subagent_type"].lower())
    b.post_tool("Task", c_task, 80, exec_before=True)
    b.stop(MPM_USAGE)
    b.notification("idle_prompt", "Claude is waiting for your input")
    # SessionEnd: claude-mpm emits nothing.
    return b


def _mpm_stage2(subtype: str, data: dict) -> tuple[str, dict]:
    category = mpm_category(subtype)
    w: dict[str, Any] = {"type": category, "subtype": subtype, "data": data, "timestamp": data.get("timestamp")}
    if data.get("session_id"):
        w["session_id"] = data["session_id"]
    w["source"] = data.get("source", "hook")
    if data.get("correlation_id"):
        w["correlation_id"] = data["correlation_id"]
    if data.get("working_directory"):
        w["cwd"] = data["working_directory"]
    return category, w


def _mpm_stage1(subtype: str, data: dict) -> dict:
    n: dict[str, Any] = {
        "event": "mpm_event",
        "source": "hook",
        "type": "hook",
        "subtype": subtype,
        "timestamp": data.get("timestamp"),
        "data": data,
    }
    if data.get("correlation_id"):
        n["correlation_id"] = data["correlation_id"]
    if data.get("session_id"):
        n["session_id"] = data["session_id"]
    if data.get("working_directory"):
        n["cwd"] = data["working_directory"]
    return {"namespace": "", "event": "claude_event", "data": n}


def mpm_non_session_messages(start: datetime = MPM_START, socket_sid: str = MPM_SOCKET_SID) -> list[tuple[str, dict]]:
    """Server messages that belong to no session: (event name, payload)."""
    # The server started before the session: its 3-minute heartbeat lands mid-session.
    hb = start + timedelta(seconds=5, milliseconds=500, microseconds=123)
    ack = (start + timedelta(seconds=7, milliseconds=800, microseconds=4321)).isoformat()
    return [
        (
            "dashboard:welcome",  # DashboardHandler.handle_connect
            {
                "message": "Connected to Claude MPM Unified Monitor",
                "session_id": socket_sid,
                "server_info": {"service": "unified-monitor", "version": "1.0.0"},
            },
        ),
        ("event_history", {"events": [], "count": 0, "total_available": 0}),
        (
            "heartbeat",  # _heartbeat_loop: isoformat() + "Z" -> malformed "+00:00Z"
            {
                "timestamp": hb.isoformat() + "Z",
                "type": "heartbeat",
                "server_uptime": 180.0,
                "server_uptime_formatted": "0:03:00",
                "connected_clients": 1,
                "heartbeat_number": 1,
                "message": "Server heartbeat #1 - Socket.IO connection active",
                "service": "unified-monitor",
                "port": 8765,
            },
        ),
        (
            "claude_event",  # INFERRED body: the subtype is listed by claude-mpm, the fields are not verified
            {
                "type": "claude_event",
                "subtype": "command_acknowledged",
                "data": {"command": "/mpm-status", "acknowledged": True, "timestamp": ack},
                "timestamp": ack,
                "source": "hook",
            },
        ),
    ]


def claude_mpm_session(
    session_id: str = MPM_SESSION_ID,
    cwd: str = MPM_CWD,
    start: datetime = MPM_START,
    *,
    include_non_session: bool = True,
    subagent_id: str = MPM_SUBAGENT_ID,
    task_post_correlation: bool = False,
) -> list[tuple[str, dict]]:
    """claude-mpm UnifiedMonitorServer Socket.IO emissions: ``[(event_name, payload), ...]``."""
    b = _build_mpm(session_id, cwd, start, subagent_id, task_post_correlation)
    out = [_mpm_stage2(s, d) for s, d in b.records]
    if include_non_session:
        welcome, history, heartbeat, ack = mpm_non_session_messages(start)
        stop_at = next(i for i, (_, p) in enumerate(out) if p["subtype"] == "subagent_stop")
        out.insert(stop_at, heartbeat)
        out.insert(len(out) - 2, ack)
        out[0:0] = [welcome, history]
    return copy.deepcopy(out)


def api_events_bodies(
    session_id: str = MPM_SESSION_ID,
    cwd: str = MPM_CWD,
    start: datetime = MPM_START,
    *,
    subagent_id: str = MPM_SUBAGENT_ID,
    task_post_correlation: bool = False,
) -> list[dict]:
    """The same claude-mpm session as ``POST /api/events`` bodies (stage 1)."""
    b = _build_mpm(session_id, cwd, start, subagent_id, task_post_correlation)
    return copy.deepcopy([_mpm_stage1(s, d) for s, d in b.records])


def expected_claude_mpm_session(
    session_id: str = MPM_SESSION_ID,
    cwd: str = MPM_CWD,
    start: datetime = MPM_START,
    *,
    include_non_session: bool = True,
    subagent_id: str = MPM_SUBAGENT_ID,
    task_post_correlation: bool = False,
) -> dict:
    b = _build_mpm(session_id, cwd, start, subagent_id, task_post_correlation)
    calls = b.tool_calls
    task_idx = next(i for i, c in enumerate(calls) if c["tool_name"] == "Task")
    inner = [c for c in calls[task_idx + 1 :]]
    files = lambda cs: _unique(  # noqa: E731
        c["tool_input"]["file_path"] for c in cs if c["tool_name"] in WRITE_TOOLS
    )
    subtypes = [s for s, _ in b.records]
    times = [d["timestamp"] for s, d in b.records]
    todos = next(c["tool_input"]["todos"] for c in calls if c["tool_name"] == "TodoWrite")
    agent_type = MPM_TASK["subagent_type"].lower()
    non_session = [n for n, _ in mpm_non_session_messages(start)] if include_non_session else []
    return {
        "kind": "claude_mpm",
        "session_id": session_id,
        "working_directory": cwd,
        "status": "active",  # no session_end ever arrives; only the idle timeout completes it
        "session_end_received": False,
        "start_time": min(times),
        "last_event_time": max(times),
        "initial_prompt": MPM_PROMPT,
        "prompts": [MPM_PROMPT],
        "final_response": None,  # claude-mpm's stop carries no response text
        "total_session_events": len(b.records),
        "subtype_counts": dict(Counter(subtypes)),
        "total_delegations": 1,
        "successful_delegations": 1,
        "failed_delegations": 0,
        "delegations": [
            {
                "agent_type": agent_type,
                "synthetic_agent_id": f"{agent_type}_{session_id}",  # subagent_start
                "agent_id": subagent_id,  # subagent_stop (the real Claude Code id)
                "correlation_id": calls[task_idx]["correlation_id"],
                "description": MPM_TASK["description"],
                "instructions": MPM_TASK["prompt"],
                "tool_calls": [c["tool_name"] for c in inner],
                "tool_operations": len(inner),
                "files_modified": files(inner),
                "success": True,  # post_tool Task success true (subagent_stop says is_successful_completion false)
                "status": "completed",
            }
        ],
        "files_modified": files(calls),
        "files_read": _unique(c["tool_input"]["file_path"] for c in calls if c["tool_name"] == "Read"),
        "tools_used": sorted({c["tool_name"] for c in calls}),
        "tool_call_counts": dict(Counter(c["tool_name"] for c in calls)),
        "correlation_pairs": b.pairs,
        "post_tool_without_correlation": [p["tool_name"] for p in b.pairs if not p["post_correlation_id"]],
        "todos": todos,
        "usage": dict(MPM_USAGE),
        "non_session_messages": non_session,
        "sessions_created": 1,
    }


def expected_api_events_bodies(
    session_id: str = MPM_SESSION_ID,
    cwd: str = MPM_CWD,
    start: datetime = MPM_START,
    *,
    subagent_id: str = MPM_SUBAGENT_ID,
    task_post_correlation: bool = False,
) -> dict:
    exp = expected_claude_mpm_session(
        session_id, cwd, start, include_non_session=False, subagent_id=subagent_id,
        task_post_correlation=task_post_correlation,
    )  # fmt: skip
    exp["kind"] = "api_events"
    return exp


# --------------------------------------------------------------------------
# Seed envelope
# --------------------------------------------------------------------------
def _seed_steps(cwd: str) -> list[tuple[str, dict, int]]:
    path = _abs(cwd, SEED_REL_EDIT)
    edit = {"file_path": path, "old_string": "body = Column(Text)", "new_string": "content = Column(Text)"}
    task = dict(SEED_TASK)
    return [
        ("user_prompt", {"prompt": SEED_PROMPT}, 0),
        ("pre_tool", {"tool_name": "Edit", "tool_input": edit}, 3_100),
        ("post_tool", {"tool_name": "Edit", "tool_input": edit}, 45),
        ("pre_tool", {"tool_name": "Task", "tool_input": task}, 900),
        ("post_tool", {"tool_name": "Task", "tool_input": task}, 41_250),
        ("stop", {}, 1_800),
    ]


def seed_envelope_events(
    session_id: str = SEED_SESSION_ID, cwd: str = SEED_CWD, start: datetime = SEED_START
) -> list[dict]:
    """Seed-format envelopes ``{type: "hook", subtype, timestamp, data: {...}}``."""
    out, t = [], start + timedelta(milliseconds=123)
    for subtype, fields, advance in _seed_steps(cwd):
        t += timedelta(milliseconds=advance)
        out.append({"type": "hook", "subtype": subtype, "timestamp": iso_seed(t), "data": {"session_id": session_id, **fields}})
    return copy.deepcopy(out)


def expected_seed_envelope_events(
    session_id: str = SEED_SESSION_ID, cwd: str = SEED_CWD, start: datetime = SEED_START
) -> dict:
    events = seed_envelope_events(session_id, cwd, start)
    pres = [f for s, f, _ in _seed_steps(cwd) if s == "pre_tool"]
    return {
        "kind": "seed",
        "session_id": session_id,
        "status": "active",
        "start_time": events[0]["timestamp"],
        "initial_prompt": SEED_PROMPT,
        "total_events": len(events),
        "total_delegations": 1,
        "delegations": [
            {"agent_type": SEED_TASK["subagent_type"], "instructions": SEED_TASK["prompt"], "description": SEED_TASK["description"]}
        ],
        "files_modified": _unique(f["tool_input"]["file_path"] for f in pres if f["tool_name"] in WRITE_TOOLS),
        "tools_used": sorted({f["tool_name"] for f in pres}),
    }


# --------------------------------------------------------------------------
# Interleaving
# --------------------------------------------------------------------------
def interleaved_sessions(n_sessions: int = 3, seed: int = 7) -> list[dict]:
    """The sessions that ``interleaved_stream`` mixes, with their own events and EXPECTED."""
    sessions = []
    for i in range(n_sessions):
        sid = det_uuid("interleaved", seed, i)
        start = INTERLEAVED_START + timedelta(seconds=37 * i)
        if i % 2 == 0:
            agent_tool = "Agent" if i % 4 == 0 else "Task"
            cwd = f"/home/dev/projects/service-{i}"
            events = [(None, p) for _, p in raw_hook_session(sid, cwd, start, agent_tool=agent_tool)]
            expected = expected_raw_hook_session(sid, cwd, start, agent_tool=agent_tool)
        else:
            cwd = f"/Users/dana/work/service-{i}"
            sub = det_hex(7, sid, "mpm-agent")
            events = list(claude_mpm_session(sid, cwd, start, include_non_session=False, subagent_id=sub))
            expected = expected_claude_mpm_session(sid, cwd, start, include_non_session=False, subagent_id=sub)
        sessions.append({"index": i, "kind": expected["kind"], "session_id": sid, "cwd": cwd, "events": events, "expected": expected})
    return sessions


def _merge(streams: list[list], seed: int) -> list:
    """Uniform random interleaving that keeps each stream's own order."""
    rng = random.Random(seed)
    pos = [0] * len(streams)
    out = []
    remaining = sum(len(s) for s in streams)
    while remaining:
        k = int(rng.random() * remaining)
        for i, s in enumerate(streams):
            left = len(s) - pos[i]
            if k < left:
                out.append(s[pos[i]])
                pos[i] += 1
                break
            k -= left
        remaining -= 1
    return out


def interleaved_stream(n_sessions: int = 3, seed: int = 7) -> list[tuple[str | None, dict]]:
    """Raw-hook and claude-mpm sessions interleaved: ``[(event_name or None, payload), ...]``."""
    streams = [s["events"] for s in interleaved_sessions(n_sessions, seed)]
    streams.append(mpm_non_session_messages(INTERLEAVED_START, socket_sid=f"conn{seed:04d}Xy9LmQ2vRAAAC"[:20]))
    return copy.deepcopy(_merge(streams, seed))


# --------------------------------------------------------------------------
# Malformed input
# --------------------------------------------------------------------------
class MalformedCase(NamedTuple):
    label: str
    form: str  # "value" (decoded object) | "text" (str to parse as JSON) | "bytes"
    payload: Any


_MALFORMED_SID = "0b7d5e1c-3f2a-4c9e-8d6b-1a2b3c4d5e6f"
_MALFORMED_CWD = "/home/dev/projects/hostile"
HUGE_PROMPT_CHARS = 1024 * 1024
BUILDER_ONLY_LABELS = frozenset({"prompt_huge_1mb"})  # representable, but too big to commit


def _raw_pre(**over) -> dict:
    p = {
        "session_id": _MALFORMED_SID,
        "transcript_path": transcript_path(_MALFORMED_SID, _MALFORMED_CWD),
        "cwd": _MALFORMED_CWD,
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": "Write",
        "tool_input": {"file_path": _abs(_MALFORMED_CWD, "a.txt"), "content": "x"},
        "tool_use_id": det_toolu("malformed", 1),
    }
    p.update(over)
    return p


def _raw_prompt(prompt: Any, **over) -> dict:
    p = {
        "session_id": _MALFORMED_SID,
        "transcript_path": transcript_path(_MALFORMED_SID, _MALFORMED_CWD),
        "cwd": _MALFORMED_CWD,
        "permission_mode": "default",
        "hook_event_name": "UserPromptSubmit",
        "prompt": prompt,
    }
    p.update(over)
    return p


def _mpm_env(**over) -> dict:
    w = {
        "type": "claude_event",
        "subtype": "user_prompt",
        "data": {"prompt_text": "hi", "session_id": _MALFORMED_SID, "working_directory": _MALFORMED_CWD},
        "timestamp": "2026-03-14T09:30:00.000001+00:00",
        "session_id": _MALFORMED_SID,
        "source": "hook",
    }
    w.update(over)
    return w


def _seed_env(timestamp: Any) -> dict:
    return {
        "type": "hook",
        "subtype": "pre_tool",
        "timestamp": timestamp,
        "data": {"session_id": _MALFORMED_SID, "tool_name": "Read", "tool_input": {"file_path": "/tmp/a.txt"}},
    }


def _nested(depth: int, leaf: Any, key: str | None = "a") -> Any:
    node = leaf
    for _ in range(depth):
        node = {key: node} if key is not None else [node]
    return node


def malformed_payloads() -> list[MalformedCase]:
    """A corpus of bad input. Ingest must never crash on any of it."""
    V, T, B = "value", "text", "bytes"
    no_sid = _raw_pre()
    del no_sid["session_id"]
    mpm_no_sid = _mpm_env()
    del mpm_no_sid["session_id"]
    del mpm_no_sid["data"]["session_id"]
    seed_no_sid = _seed_env("2026-03-14T09:30:00.000Z")
    del seed_no_sid["data"]["session_id"]
    cases = [
        # non-dict values
        MalformedCase("none", V, None),
        MalformedCase("list_of_ints", V, [1, 2, 3]),
        MalformedCase("list_wrapping_event", V, [_raw_pre()]),
        MalformedCase("string", V, "PreToolUse"),
        MalformedCase("int", V, 42),
        MalformedCase("float", V, 3.5),
        MalformedCase("bool", V, True),
        MalformedCase("float_nan", V, math.nan),
        MalformedCase("empty_dict", V, {}),
        # undecodable / unparsable
        MalformedCase("bytes_not_utf8", B, b'\xff\xfe\xfa{"session_id": "x"}\xc3\x28'),
        MalformedCase("bytes_latin1", B, '{"session_id": "caf\u00e9", "hook_event_name": "Stop"}'.encode("latin-1")),
        MalformedCase("bytes_truncated_utf8", B, '{"prompt": "\u00e9'.encode("utf-8")[:-1]),
        MalformedCase("bytes_utf8_bom", B, b'\xef\xbb\xbf{"session_id": "x", "hook_event_name": "Stop"}'),
        MalformedCase("bytes_empty", B, b""),
        MalformedCase("json_truncated", T, '{"session_id": "abc", "hook_event_name": "PreToolUse", '),
        MalformedCase("json_single_quotes", T, "{'session_id': 'abc', 'hook_event_name': 'Stop'}"),
        MalformedCase("json_trailing_comma", T, '{"session_id": "abc",}'),
        MalformedCase("json_nan_literal", T, '{"session_id": "abc", "hook_event_name": "Stop", "duration_ms": NaN}'),
        MalformedCase("json_duplicate_keys", T, '{"session_id": "a", "session_id": "b", "hook_event_name": "Stop"}'),
        MalformedCase("json_empty", T, ""),
        MalformedCase("json_whitespace", T, " \n\t "),
        MalformedCase("json_two_objects", T, '{"session_id": "a"}{"session_id": "b"}'),
        # missing session id
        MalformedCase("raw_missing_session_id", V, no_sid),
        MalformedCase("mpm_missing_session_id", V, mpm_no_sid),
        MalformedCase("seed_missing_session_id", V, seed_no_sid),
        # wrong types
        MalformedCase("session_id_int", V, _raw_pre(session_id=12345)),
        MalformedCase("session_id_list", V, _raw_pre(session_id=["a", "b"])),
        MalformedCase("session_id_dict", V, _raw_pre(session_id={"id": "x"})),
        MalformedCase("session_id_null", V, _raw_pre(session_id=None)),
        MalformedCase("session_id_empty", V, _raw_pre(session_id="")),
        MalformedCase("session_id_whitespace", V, _raw_pre(session_id="   ")),
        MalformedCase("tool_input_string", V, _raw_pre(tool_input="ls -la")),
        MalformedCase("tool_input_list", V, _raw_pre(tool_input=["file_path", "/tmp/a"])),
        MalformedCase("tool_input_null", V, _raw_pre(tool_input=None)),
        MalformedCase("tool_name_int", V, _raw_pre(tool_name=7)),
        MalformedCase("file_path_int", V, _raw_pre(tool_input={"file_path": 123, "content": "x"})),
        MalformedCase("hook_event_name_int", V, _raw_pre(hook_event_name=3)),
        MalformedCase("cwd_list", V, _raw_pre(cwd=["/a", "/b"])),
        MalformedCase("mpm_data_list", V, _mpm_env(data=[{"prompt_text": "hi"}])),
        MalformedCase("mpm_data_string", V, _mpm_env(data="prompt_text=hi")),
        MalformedCase("mpm_subtype_int", V, _mpm_env(subtype=5)),
        MalformedCase("api_body_data_list", V, {"namespace": "", "event": "claude_event", "data": [1, 2]}),
        MalformedCase("api_body_data_null", V, {"namespace": "", "event": "claude_event", "data": None}),
        MalformedCase("seed_data_list", V, {"type": "hook", "subtype": "pre_tool", "timestamp": "2026-03-14T09:30:00Z", "data": ["x"]}),
        MalformedCase("set_value", V, {"session_id": _MALFORMED_SID, "hook_event_name": "Stop", "tags": {1, 2}}),
        # size and depth
        MalformedCase("prompt_huge_1mb", V, _raw_prompt("A" * HUGE_PROMPT_CHARS)),
        MalformedCase("tool_input_nested_200", V, _raw_pre(tool_input=_nested(200, {"file_path": "/tmp/deep"}))),
        MalformedCase("list_nested_200", V, _raw_pre(tool_input={"file_path": "/tmp/x", "edits": _nested(200, "x", None)})),
        MalformedCase("mpm_data_nested_200", V, _mpm_env(data=_nested(200, {"session_id": _MALFORMED_SID}, "data"))),
        # unknown events
        MalformedCase("unknown_hook_event_name", V, _raw_prompt("hi", hook_event_name="FutureHookEvent2027")),
        MalformedCase("hook_event_name_empty", V, _raw_prompt("hi", hook_event_name="")),
        MalformedCase("hook_event_name_lowercase", V, _raw_pre(hook_event_name="pretooluse")),
        MalformedCase("mpm_unknown_subtype", V, _mpm_env(subtype="quantum_flux", type="claude_event")),
        MalformedCase("camelcase_lookalike", V, {"hookEventName": "Stop", "sessionId": _MALFORMED_SID, "permissionMode": "auto-high"}),
        # odd timestamps
        MalformedCase("ts_epoch_seconds", V, _seed_env(1773480600)),
        MalformedCase("ts_epoch_millis", V, _seed_env(1773480600123)),
        MalformedCase("ts_epoch_float", V, _seed_env(1773480600.25)),
        MalformedCase("ts_epoch_string", V, _seed_env("1773480600")),
        MalformedCase("ts_double_zone", V, _seed_env("2026-03-14T09:30:00.000123+00:00Z")),
        MalformedCase("ts_naive", V, _seed_env("2026-03-14T09:30:00")),
        MalformedCase("ts_garbage", V, _seed_env("yesterday at noon")),
        MalformedCase("ts_empty", V, _seed_env("")),
        MalformedCase("ts_null", V, _seed_env(None)),
        MalformedCase("ts_bool", V, _seed_env(True)),
        MalformedCase("ts_invalid_date", V, _seed_env("2026-02-30T10:00:00Z")),
        MalformedCase("ts_far_future", V, _seed_env("9999-12-31T23:59:59Z")),
        MalformedCase("ts_pre_epoch", V, _seed_env("1969-12-31T23:59:59Z")),
        MalformedCase("ts_negative_epoch", V, _seed_env(-1)),
        MalformedCase("ts_huge_epoch", V, _seed_env(1e20)),
        MalformedCase("mpm_ts_double_zone", V, _mpm_env(timestamp="2026-03-14T09:30:00.000123+00:00Z")),
        # markup and terminal escapes
        MalformedCase("prompt_rich_markup", V, _raw_prompt("[bold red]x[/]")),
        MalformedCase("prompt_rich_unclosed", V, _raw_prompt("[/] [bold [link=file:///etc/passwd]click")),
        MalformedCase("prompt_terminal_escape", V, _raw_prompt("\x1b[2J\x1b[Hcleared")),
        MalformedCase("prompt_osc_title", V, _raw_prompt("\x1b]0;pwned\x07hello")),
        MalformedCase("prompt_control_chars", V, _raw_prompt("a\x00b\x08c\rd\x7f")),
        MalformedCase("file_path_rich_markup", V, _raw_pre(tool_input={"file_path": "/tmp/[bold red]x[/].py", "content": "x"})),
        MalformedCase("file_path_terminal_escape", V, _raw_pre(tool_input={"file_path": "/tmp/\x1b[2Jevil.py", "content": "x"})),
        MalformedCase("mpm_prompt_rich_markup", V, _mpm_env(data={"prompt_text": "[bold red]x[/]", "session_id": _MALFORMED_SID})),
        # hostile session ids
        MalformedCase("sid_path_traversal", V, _raw_prompt("hi", session_id="../../etc/x")),
        MalformedCase("sid_absolute_path", V, _raw_prompt("hi", session_id="/abs")),
        MalformedCase("sid_nul_byte", V, _raw_prompt("hi", session_id="a\x00b")),
        MalformedCase("sid_dotdot", V, _raw_prompt("hi", session_id="..")),
        MalformedCase("sid_windows_path", V, _raw_prompt("hi", session_id="C:\\Windows\\x")),
        MalformedCase("sid_embedded_traversal", V, _raw_prompt("hi", session_id="sess/../../x")),
        MalformedCase("sid_reserved_name", V, _raw_prompt("hi", session_id="con")),
        MalformedCase("sid_very_long", V, _raw_prompt("hi", session_id="s" * 10_000)),
        MalformedCase("sid_unicode_bidi", V, _raw_prompt("hi", session_id="abc\u202egpj.exe")),
        MalformedCase("sid_rich_markup", V, _raw_prompt("hi", session_id="[bold red]x[/]")),
        MalformedCase("sid_terminal_escape", V, _raw_prompt("hi", session_id="\x1b[2Jx")),
        MalformedCase("mpm_sid_traversal", V, _mpm_env(session_id="../../etc/x", data={"prompt_text": "hi", "session_id": "../../etc/x"})),
    ]
    labels = [c.label for c in cases]
    assert len(labels) == len(set(labels)), "duplicate malformed labels"
    return cases


def _json_line(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=True, allow_nan=False)


def malformed_in_file(case: MalformedCase) -> bool:
    """Whether *case* is written to ``fixtures/malformed.jsonl``."""
    if case.form == "bytes" or case.label in BUILDER_ONLY_LABELS:
        return False
    try:
        _json_line(case.payload)
    except (TypeError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------
# EXPECTED and fixture files
# --------------------------------------------------------------------------
def _expected_all() -> dict:
    return {
        "raw_hook_session": expected_raw_hook_session(),
        "raw_hook_session_task": expected_raw_hook_session(agent_tool="Task"),
        "claude_mpm_session": expected_claude_mpm_session(),
        "api_events_bodies": expected_api_events_bodies(),
        "seed_envelope_events": expected_seed_envelope_events(),
        "interleaved_stream": [s["expected"] for s in interleaved_sessions()],
    }


EXPECTED: dict = _expected_all()


def _jsonl(rows) -> str:
    return "".join(_json_line(r) + "\n" for r in rows)


def render_fixtures() -> dict[str, str]:
    """File name -> exact text of every committed fixture file."""
    return {
        "raw_hooks_session.jsonl": _jsonl({"timestamp": ts, "payload": p} for ts, p in raw_hook_session()),
        "claude_mpm_session.jsonl": _jsonl({"event": e, "payload": p} for e, p in claude_mpm_session()),
        "api_events_bodies.jsonl": _jsonl(api_events_bodies()),
        "seed_envelope.jsonl": _jsonl(seed_envelope_events()),
        "malformed.jsonl": _jsonl(
            {"label": c.label, "form": c.form, "payload": c.payload} for c in malformed_payloads() if malformed_in_file(c)
        ),
        "expected.json": json.dumps(_expected_all(), ensure_ascii=True, indent=2) + "\n",
    }


def write_fixtures(directory: Path = FIXTURES_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_fixtures().items():
        path = directory / name
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_fixtures(Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURES_DIR):
        print(p)
