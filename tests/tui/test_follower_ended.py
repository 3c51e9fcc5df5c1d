"""A follower TUI lets go of the open sessions it adopted once the writer ended them.

The writer here ends them without an event the follower could hear (its ``stop()``
saves every active session as completed), as it does on its timeout too: only the
store says so. Before the fix the follower kept them active (and LIVE) for good.
"""

from __future__ import annotations

from datetime import timedelta

from conftest import SIZE, config, feed, fixed_clock, last_event_time, live_stream, wait_for

from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.model import ACTIVE, COMPLETED
from agent_aggregator.tui.app import FOLLOWER, AggregateApp


def _writer_with_open_sessions() -> EventAggregator:
    writer = EventAggregator(config=config())
    writer.start(connect=False)
    feed(writer, live_stream())
    return writer


def test_release_ended_skips_a_stale_listing_and_writers(workdir):
    writer = _writer_with_open_sessions()
    follower = EventAggregator(config=config())
    follower.start(connect=False, write=False)
    try:
        open_ids = sorted(follower.active_sessions)
        assert len(open_ids) == 3 and sorted(writer.active_sessions) == open_ids
        assert writer.release_ended(writer.store.list_sessions()) == []  # the writer knows its own
        listing = writer.store.list_sessions()
        stale = [s for s in listing if s.session_id == open_ids[0]]
        writer.stop()
        ended = {s.session_id: s for s in writer.store.list_sessions()}
        assert all(ended[sid].status == COMPLETED for sid in open_ids)
        assert follower.release_ended(stale) == []  # listed as open still: kept
        with follower.lock:  # the follower heard one more event than the listing holds: kept
            follower.tracker.sessions[open_ids[1]].events.append(follower.tracker.sessions[open_ids[1]].events[-1])
        assert sorted(follower.release_ended(ended.values())) == [open_ids[0], open_ids[2]]
        assert sorted(follower.active_sessions) == [open_ids[1]]
        assert set(follower.get_completed_sessions()) == {open_ids[0], open_ids[2]}
    finally:
        follower.stop()
        writer.stop()


async def test_a_follower_tui_shows_sessions_the_writer_ended_as_ended(workdir):
    writer = _writer_with_open_sessions()
    follower = EventAggregator(config=config())
    follower.start(connect=False, write=False)
    app = AggregateApp(follower.config, aggregator=follower,
                       clock=fixed_clock(last_event_time(writer) + timedelta(seconds=5)))
    try:
        async with app.run_test(size=SIZE) as pilot:
            assert app.mode == FOLLOWER
            open_ids = set(writer.active_sessions)

            def statuses() -> dict[str, str]:
                return {row.session_id: row.status for row in app.browser_rows() if row.session_id in open_ids}

            await wait_for(lambda: statuses() == dict.fromkeys(open_ids, ACTIVE), pilot)
            writer.stop()  # every open session saved as completed; the follower hears nothing
            app.poll_store()
            await wait_for(lambda: statuses() == dict.fromkeys(open_ids, COMPLETED), pilot)
            assert follower.active_sessions == {}
            assert app.status_info().active == 0
    finally:
        writer.stop()
        follower.stop()
