"""A headless run's tokens while it runs: each assistant message's usage counted once (stream-json
repeats it on the line of every content block, growing), replaced by the result's totals."""

from __future__ import annotations

import json
from pathlib import Path

from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.config import Config
from agent_aggregator.model import total_tokens
from agent_aggregator.run import RunSummary

FIXTURES = Path(__file__).parent / "fixtures"
SESSION_ID = "861a7a4f-e951-4210-847e-5b48167ca7e0"


def lines() -> list[dict]:
    out = []
    for index, line in enumerate((FIXTURES / "stream_json_success.jsonl").read_text().splitlines()):
        payload = json.loads(line)
        payload["event_id"] = f"line-{index}"
        if payload.get("subtype") == "init":
            payload["aggregate_run"] = {"pid": 1, "command": ["claude", "-p", "x"], "prompt": "x", "hostname": "h"}
        out.append(payload)
    return out


def message_total(payloads: list[dict]) -> int:
    last: dict[str, int] = {}
    for payload in payloads:
        if payload.get("type") == "assistant":
            last[payload["message"]["id"]] = total_tokens(payload["message"]["usage"]) or 0
    return sum(last.values())


def test_tokens_accumulate_per_message_then_the_result_replaces_them(tmp_path):
    aggregator = EventAggregator(config=Config(activity_directory=tmp_path / "activity"))
    aggregator.start(connect=False)
    summary = RunSummary()
    payloads = lines()
    first_two = [p for p in payloads if p.get("type") == "assistant"][:2]
    assert first_two[0]["message"]["id"] == first_two[1]["message"]["id"]  # one message, two content blocks
    try:
        for index, payload in enumerate(payloads[:-1]):  # everything but the result
            aggregator.handle_event(payload)
            summary.note(payload)
            with aggregator.lock:
                usage = aggregator.tracker.sessions[SESSION_ID].usage
            expected = message_total(payloads[: index + 1])
            assert (total_tokens(usage) or 0) == expected
        assert expected == 24_742  # 24,551 (the split message, counted once at its last usage) + 35 + 86 + 46 + 24
        assert summary.line().endswith("24,742 tokens so far · last: Bash")
        with aggregator.lock:
            listed = [s for s in aggregator.list_sessions() if s["session_id"] == SESSION_ID]
        assert listed and listed[0]["total_tokens"] == 24_742  # the listing has it before the result

        result = payloads[-1]
        aggregator.handle_event(result)
        with aggregator.lock:
            session = aggregator.tracker.sessions[SESSION_ID]
            assert session.usage == result["usage"]  # the totals, not added to the running count
            # a later message (a further turn) counts on top of the result's totals
            aggregator.handle_event({"type": "assistant", "session_id": SESSION_ID, "event_id": "late",
                                     "message": {"id": "msg_late", "content": [{"type": "text", "text": "more"}],
                                                 "usage": {"input_tokens": 3, "output_tokens": 7}}})
            assert total_tokens(session.usage) == 136_477 + 10
    finally:
        aggregator.stop()


def test_the_status_bar_total_of_runs_still_going_has_no_cost_yet():
    from agent_aggregator.model import SessionMetrics
    from agent_aggregator.tui.viewstate import RunFigures, UsageTotals

    running = RunFigures.of(SessionMetrics(), {"input_tokens": 5, "output_tokens": 30}, {"source": "claude -p"})
    assert running is not None and (running.cost_usd, running.turns, running.tokens) == (None, None, 35)
    assert RunFigures.of(SessionMetrics(), {"input_tokens": 5}, {"source": "hook"}) is None  # a hook turn's usage

    class Row:
        figures = running

    assert UsageTotals.of([Row()]).label() == "35 tokens so far (1 run)"
