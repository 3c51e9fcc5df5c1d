"""The timeline's minimum importance (key m), as ``aggregate view --min-importance`` filters: SSE
events carry ``data.importance`` (their own or the seed's rating); unrated events are hidden
while a minimum is set. Listed in the help screen."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from conftest import SIZE, config, fixed_clock, wait_for

from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.tui.app import AggregateApp
from agent_aggregator.tui.screens.help import HelpScreen
from agent_aggregator.tui.widgets.timeline import Timeline

SESSION = "inst-importance"
# (type, own importance or None for the seed's rating): session_* 8, search_ 2, memory_ 5 (own 9 here),
# cli_command_started 3, cli_command_completed 4, agent_failed 7.
EVENTS = [("session_started", None), ("search_performed", None), ("memory_stored", 9),
          ("cli_command_started", None), ("cli_command_completed", None), ("agent_failed", None),
          ("search_performed", 6)]


def sse_aggregator() -> EventAggregator:
    aggregator = EventAggregator(config=config())
    aggregator.start(connect=False)
    for index, (kind, importance) in enumerate(EVENTS):
        payload = {"id": f"e{index}", "type": kind, "instance_id": SESSION, "timestamp": f"2026-03-15T09:00:0{index}Z"}
        if kind.startswith("cli_command"):
            payload["command"] = "pytest"
        if kind == "agent_failed":
            payload["agent_id"] = "planner"
        if importance is not None:
            payload["importance"] = importance
        aggregator.handle_event(payload)
    return aggregator


async def test_key_m_cycles_the_minimum_importance_and_help_lists_it(workdir):
    aggregator = sse_aggregator()
    with aggregator.lock:
        session = aggregator.tracker.sessions[SESSION]
        ratings = [event.data.get("importance") for event in session.events]
        last = session.last_event_time
    assert None not in ratings and len(ratings) == len(EVENTS)
    app = AggregateApp(aggregator.config, aggregator=aggregator, clock=fixed_clock(last + timedelta(seconds=5)))
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = app.live_screen
            timeline = screen.query_one(Timeline)
            await wait_for(lambda: screen.current is not None and timeline.total_count == len(ratings), pilot)
            assert timeline.matching_count == len(ratings) and timeline.min_importance is None
            pane = screen.query_one("#timeline-pane")
            for floor in (3, 5, 7, 9):
                await pilot.press("m")
                expected = sum(1 for rating in ratings if rating >= floor)
                await wait_for(lambda: timeline.min_importance == floor and not timeline.filtering, pilot)
                assert timeline.matching_count == expected, (floor, ratings)
                await wait_for(lambda: f"importance ≥ {floor}" in (pane.border_subtitle or ""), pilot)
            assert timeline.matching_count == 1  # only the memory event rated 9 by its source
            await pilot.press("m")  # back to every event
            await wait_for(lambda: timeline.min_importance is None and timeline.matching_count == len(ratings), pilot)
            assert "importance" not in (pane.border_subtitle or "")

            # unrated events (hooks) are hidden while a minimum is set, and the timeline says why
            unrated = [replace(event, data={k: v for k, v in event.data.items() if k != "importance"})
                       for event in session.events]
            timeline.min_importance = 3
            timeline.show(unrated)
            await wait_for(lambda: not timeline.filtering, pilot)
            assert timeline.matching_count == 0 and timeline.empty_message() == "No events match importance ≥ 3"
            timeline.min_importance = None
            timeline.show(session.events)

            await pilot.press("question_mark")
            await wait_for(lambda: isinstance(app.screen, HelpScreen), pilot)
            rows = {row.keys: row for rows in dict(app.screen.sections).values() for row in rows}
            assert rows["m"].description == "Min importance" and "rated at least N" in rows["m"].tooltip
    finally:
        aggregator.stop()
