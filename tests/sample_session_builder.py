"""Builds ``assets/sample-session.json``: the realistic session the README replays.

Run ``python tests/sample_session_builder.py`` to regenerate it. The stream is
made with tests/fixtures_builder.py's raw-hook builder (the stdin JSON of Claude
Code 2.1.x, stamped with a time and a fixed event id as a hub stamps them), fed
through a real ``EventAggregator`` into a temporary activity directory, and the
saved file is copied out. Everything is deterministic (fixed ids and times; the
host name is pinned), so the file only changes when the scenario or the session
format does; tests/test_replay.py checks the committed file against a fresh build.

The scenario: one Claude Code session in a shop API, two turns, a few minutes.
Turn 1 delegates to three subagents in a row (research, engineer, qa); the qa
agent's first test run fails and it fixes the handler; todos are updated along
the way. Turn 2 adds a CHANGELOG entry. Then the session ends.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402

from agent_aggregator.aggregator import EventAggregator  # noqa: E402
from agent_aggregator.config import Config  # noqa: E402
from agent_aggregator.jsonio import write_bytes_atomic  # noqa: E402
from agent_aggregator.model import AgentSession  # noqa: E402

ASSET = Path(__file__).resolve().parents[1] / "assets" / "sample-session.json"

SESSION_ID = "b7e4c2d9-5a31-4f6e-8c07-3d9a1f2e6b84"
CWD = "/home/maya/src/shop-api"
START = datetime(2026, 3, 16, 14, 2, 0, tzinfo=fb.UTC)
HOSTNAME = "maya-laptop"

PROMPTS = (
    "Customers get charged twice when they double-click Pay at checkout. Find out why, "
    "fix it, and make sure a test covers it.",
    "Add a CHANGELOG entry for the fix.",
)
FINAL_MESSAGES = (
    "Fixed. A double-click sent two POST /checkout/pay requests and each created its own "
    "Stripe charge. Charges now carry an idempotency key derived from the order and the "
    "attempt, and the handler returns the existing payment for a repeated request. "
    "tests/test_checkout_double_submit.py covers it; the full suite passes (41 passed).",
    "Added the fix to CHANGELOG.md under Unreleased.",
)

REL_README = "README.md"
REL_PAYMENTS = "src/shop/payments.py"
REL_CHECKOUT = "src/shop/api/checkout.py"
REL_MIGRATION = "migrations/versions/0007_payment_idempotency_key.py"
REL_TEST = "tests/test_checkout_double_submit.py"
REL_CHANGELOG = "CHANGELOG.md"

README = (
    "# shop-api\n\nThe storefront's backend: catalogue, carts, checkout and payments "
    "(Stripe).\n\n## Development\n\n    make dev\n    pytest -q\n"
)
PAYMENTS_V0 = (
    "import stripe\n"
    "\n"
    "from .models import Order, Payment\n"
    "\n"
    "\n"
    "def create_payment(order: Order) -> Payment:\n"
    "    charge = stripe.PaymentIntent.create(\n"
    "        amount=order.total_cents,\n"
    '        currency="eur",\n'
    "        customer=order.customer.stripe_id,\n"
    "        confirm=True,\n"
    "    )\n"
    "    return Payment.record(order, charge)\n"
)
PAYMENTS_EDIT_OLD = "        confirm=True,\n    )\n"
PAYMENTS_EDIT_NEW = (
    "        confirm=True,\n"
    '        idempotency_key=f"order-{order.id}-attempt-{order.payment_attempt}",\n'
    "    )\n"
)
CHECKOUT_V0 = (
    "from fastapi import APIRouter\n"
    "\n"
    "from ..payments import create_payment\n"
    "from ..store import orders\n"
    "\n"
    'router = APIRouter(prefix="/checkout")\n'
    "\n"
    "\n"
    '@router.post("/pay")\n'
    "def pay(order_id: int):\n"
    "    order = orders.get(order_id)\n"
    "    payment = create_payment(order)\n"
    '    return {"payment_id": payment.id, "status": payment.status}\n'
)
CHECKOUT_EDIT_OLD = "    order = orders.get(order_id)\n"
CHECKOUT_EDIT_NEW = (
    "    order = orders.get(order_id)\n"
    "    if order.payment is not None:  # a repeated click: answer with the payment we have\n"
    '        return {"payment_id": order.payment.id, "status": order.payment.status}\n'
)
CHECKOUT_V1 = CHECKOUT_V0.replace(CHECKOUT_EDIT_OLD, CHECKOUT_EDIT_NEW, 1)
CHECKOUT_LOCK_OLD = "    order = orders.get(order_id)\n"
CHECKOUT_LOCK_NEW = "    order = orders.get_for_update(order_id)  # row lock: two clicks are served one after the other\n"
MIGRATION = (
    '"""payment idempotency key\n\nRevision ID: 0007\nRevises: 0006\n"""\n'
    "import sqlalchemy as sa\n"
    "from alembic import op\n"
    "\n"
    'revision, down_revision = "0007", "0006"\n'
    "\n"
    "\n"
    "def upgrade() -> None:\n"
    '    op.add_column("payments", sa.Column("idempotency_key", sa.String(80), unique=True))\n'
    "\n"
    "\n"
    "def downgrade() -> None:\n"
    '    op.drop_column("payments", "idempotency_key")\n'
)
TEST = (
    "from concurrent.futures import ThreadPoolExecutor\n"
    "\n"
    "\n"
    "def test_double_click_charges_once(client, order, stripe_mock):\n"
    "    with ThreadPoolExecutor(2) as pool:\n"
    '        answers = list(pool.map(lambda _: client.post(f"/checkout/pay?order_id={order.id}"), range(2)))\n'
    "    assert [a.status_code for a in answers] == [200, 200]\n"
    '    assert answers[0].json()["payment_id"] == answers[1].json()["payment_id"]\n'
    "    assert stripe_mock.charges == 1\n"
)
CHANGELOG_V0 = "# Changelog\n\n## Unreleased\n\n## 1.8.0 - 2026-03-02\n\n- Gift cards.\n"
CHANGELOG_EDIT_OLD = "## Unreleased\n"
CHANGELOG_EDIT_NEW = "## Unreleased\n\n- Checkout: a double-clicked Pay button no longer charges twice.\n"

PYTEST_ONE = "python -m pytest tests/test_checkout_double_submit.py -q"
PYTEST_ONE_FAILED = (
    "Exit code 1\n"
    "F                                                                        [100%]\n"
    "=================================== FAILURES ===================================\n"
    "________________________ test_double_click_charges_once ________________________\n"
    ">       assert stripe_mock.charges == 1\n"
    "E       assert 2 == 1\n"
    "\n"
    "tests/test_checkout_double_submit.py:9: AssertionError\n"
    "=========================== short test summary info ============================\n"
    "FAILED tests/test_checkout_double_submit.py::test_double_click_charges_once - assert 2 == 1\n"
    "1 failed in 0.88s"
)
PYTEST_ONE_PASSED = ".                                                                        [100%]\n1 passed in 0.84s"
PYTEST_ALL = "python -m pytest -q"
PYTEST_ALL_PASSED = "." * 41 + "  [100%]\n41 passed in 6.12s"

TODOS = (
    ("Find why a double click charges twice", "Finding why a double click charges twice"),
    ("Make charges idempotent", "Making charges idempotent"),
    ("Add a regression test", "Adding a regression test"),
    ("Run the full test suite", "Running the full test suite"),
)


def _todos(done: int) -> list[dict]:
    """The todo list with the first ``done`` items completed and the next one in progress."""
    items = []
    for index, (content, active) in enumerate(TODOS):
        status = "completed" if index < done else "in_progress" if index == done else "pending"
        items.append({"content": content, "status": status, "activeForm": active})
    return items


def _write(path: str, content: str, duration_ms: int = 24) -> fb.ToolCall:
    return fb.ToolCall(
        "Write",
        {"file_path": path, "content": content},
        {"type": "create", "filePath": path, "content": content, "structuredPatch": [], "originalFile": None},
        duration_ms=duration_ms,
    )


def _read(path: str, content: str, duration_ms: int = 8) -> fb.ToolCall:
    return fb.ToolCall("Read", {"file_path": path}, fb._read_response(path, content), duration_ms=duration_ms)


def _todo_call(done: int) -> fb.ToolCall:
    before = _todos(done - 1) if done > 0 else []
    return fb.ToolCall("TodoWrite", {"todos": _todos(done)}, {"oldTodos": before, "newTodos": _todos(done)}, duration_ms=3)


def script() -> list[fb.Turn]:
    """The two turns, as fixtures_builder's raw-hook builder plays them."""
    readme, payments, checkout, migration, test, changelog = (
        fb._abs(CWD, rel) for rel in (REL_README, REL_PAYMENTS, REL_CHECKOUT, REL_MIGRATION, REL_TEST, REL_CHANGELOG)
    )
    research = fb.Delegation(
        subagent_type="research",
        description="Find the double-charge cause",
        prompt=(
            "Customers are charged twice when they double-click Pay. Find the code path from "
            "POST /checkout/pay to the Stripe call and explain how two charges can happen. "
            "Check whether Stripe idempotency keys are used. Do not modify anything."
        ),
        tools=(
            fb.ToolCall(
                "Grep",
                {"pattern": "PaymentIntent.create", "path": CWD, "output_mode": "files_with_matches"},
                {"mode": "files_with_matches", "filenames": [payments], "numFiles": 1},
                duration_ms=96,
            ),
            _read(payments, PAYMENTS_V0),
            _read(checkout, CHECKOUT_V0),
            fb.ToolCall(
                "WebFetch",
                {"url": "https://docs.stripe.com/api/idempotent_requests", "prompt": "How do idempotency keys work?"},
                {"code": 200, "codeText": "OK", "bytes": 48213, "durationMs": 2310,
                 "result": "Stripe replays the first response for a repeated idempotency key for 24 hours."},
                duration_ms=2310,
            ),
        ),
        final_message=(
            "POST /checkout/pay calls create_payment() on every request; nothing stops a second "
            "request for the same order, and stripe.PaymentIntent.create is called without an "
            "idempotency key, so two clicks make two charges. Stripe replays the first response "
            "for a repeated idempotency key, so a key per order and attempt fixes it at Stripe's end."
        ),
        usage=fb._usage(14, 4211, 22873, 655),
    )
    engineer = fb.Delegation(
        subagent_type="engineer",
        description="Make checkout payments idempotent",
        prompt=(
            "In src/shop/payments.py pass an idempotency key (order id + payment attempt) to "
            "stripe.PaymentIntent.create, store it on the payment (Alembic migration), and make "
            "POST /checkout/pay return the existing payment when the order already has one."
        ),
        tools=(
            fb._edit_call(payments, PAYMENTS_V0, PAYMENTS_EDIT_OLD, PAYMENTS_EDIT_NEW),
            _write(migration, MIGRATION),
            fb._edit_call(checkout, CHECKOUT_V0, CHECKOUT_EDIT_OLD, CHECKOUT_EDIT_NEW),
            fb._bash_ok("alembic upgrade head", "Apply the migration",
                        "INFO  [alembic.runtime.migration] Running upgrade 0006 -> 0007, payment idempotency key", 1280),
        ),
        final_message=(
            "create_payment now sends idempotency_key=order-<id>-attempt-<n>; migration 0007 adds "
            "payments.idempotency_key; the pay handler returns the existing payment for an order "
            "that already has one."
        ),
        usage=fb._usage(21, 6120, 48110, 1502),
    )
    qa = fb.Delegation(
        subagent_type="qa",
        description="Regression test for double-click checkout",
        prompt=(
            "Write a regression test that sends two concurrent POST /checkout/pay requests for one "
            "order and asserts a single Stripe charge. Run it and the full suite; fix what fails."
        ),
        tools=(
            _write(test, TEST),
            fb.ToolCall("Bash", {"command": PYTEST_ONE, "description": "Run the new test"},
                        error=PYTEST_ONE_FAILED, duration_ms=2140),
            fb._edit_call(checkout, CHECKOUT_V1, CHECKOUT_LOCK_OLD, CHECKOUT_LOCK_NEW),
            fb._bash_ok(PYTEST_ONE, "Run the new test again", PYTEST_ONE_PASSED, 2020),
            fb._bash_ok(PYTEST_ALL, "Run the full suite", PYTEST_ALL_PASSED, 7480),
        ),
        final_message=(
            "The first run failed: two concurrent requests both saw no payment and both charged. "
            "I made the handler lock the order row (orders.get_for_update), so the second request "
            "waits and then returns the first payment. The new test and the full suite pass (41 passed)."
        ),
        usage=fb._usage(33, 7455, 61204, 1876),
    )
    turn1 = fb.Turn(
        prompt=PROMPTS[0],
        steps=(
            _read(readme, README, 6),
            _todo_call(0),
            research,
            _todo_call(1),
            engineer,
            _todo_call(2),
            qa,
            _todo_call(4),
        ),
        final_message=FINAL_MESSAGES[0],
        idle_notification=True,
    )
    turn2 = fb.Turn(
        prompt=PROMPTS[1],
        steps=(fb._edit_call(changelog, CHANGELOG_V0, CHANGELOG_EDIT_OLD, CHANGELOG_EDIT_NEW),),
        final_message=FINAL_MESSAGES[1],
        idle_notification=False,
    )
    return [turn1, turn2]


def raw_stream() -> list[tuple[str, dict]]:
    """``[(timestamp, raw hook payload), ...]`` of the whole session."""
    builder = fb._RawBuilder(SESSION_ID, CWD, START, "Task")
    builder.session_start()
    for turn_no, turn in enumerate(script()):
        builder.user_prompt(turn_no, turn.prompt, 2_600 if turn_no == 0 else 48_000)
        for step in turn.steps:
            if isinstance(step, fb.Delegation):
                builder.delegation(step)
            else:
                builder.tool(step)
        builder.stop(turn.final_message)
        if turn.idle_notification:
            builder.idle()
    builder.session_end("prompt_input_exit")
    return builder.events


def stamped_payloads() -> list[dict]:
    """The payloads as a hub relays them: each with its time and a fixed event id."""
    return [
        {**payload, "timestamp": timestamp, "event_id": fb.det_hex(32, SESSION_ID, "event", index)}
        for index, (timestamp, payload) in enumerate(raw_stream())
    ]


def build_session() -> AgentSession:
    """The session exactly as ``aggregate start`` would have saved it (host name pinned)."""
    with tempfile.TemporaryDirectory() as directory:
        config = Config(activity_directory=Path(directory), dashboard_host="127.0.0.1")
        aggregator = EventAggregator(config=config)
        aggregator.start(connect=False)
        try:
            for payload in stamped_payloads():
                aggregator.handle_event(payload)
        finally:
            aggregator.stop()
        saved = [path for path in Path(directory).glob("session_*.json")]
        if len(saved) != 1:
            raise RuntimeError(f"expected one saved session, found {len(saved)}")
        session = AgentSession.load(saved[0])
    session.metadata["hostname"] = HOSTNAME
    return session


def render() -> bytes:
    """The asset's bytes: indented JSON (readable in a diff), ending with a newline."""
    import json

    return (json.dumps(build_session().to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def main() -> int:
    ASSET.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(ASSET, render())
    session = AgentSession.load(ASSET)
    print(
        f"wrote {ASSET} ({ASSET.stat().st_size:,} bytes): {len(session.events)} events, "
        f"{len(session.delegations)} delegations ({', '.join(d.agent_type for d in session.delegations)}), "
        f"{len(session.metrics.files_modified)} files modified, {session.metrics.session_duration_ms / 1000:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
