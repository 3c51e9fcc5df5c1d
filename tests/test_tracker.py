"""SessionTracker: what events mean for a session (DESIGN section 3)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agent_aggregator.model import DONE, FAILED, RUNNING, STALE
from agent_aggregator.normalize import normalize
from agent_aggregator.tracker import SessionTracker

SID = "11111111-2222-4333-8444-000000000001"
T0 = datetime(2026, 8, 23, 10, 0, 0, tzinfo=timezone.utc)


class Feed:
    """Feeds raw hook payloads one second apart, as a hub would stamp them."""

    def __init__(self, session_id: str = SID) -> None:
        self.tracker = SessionTracker()
        self.session_id = session_id
        self.tick = 0

    def hook(self, event: str, **fields):
        self.tick += 1
        payload = {"session_id": self.session_id, "cwd": "/home/agent/proj", "hook_event_name": event, **fields}
        return self.tracker.apply(normalize(payload, received_at=T0 + timedelta(seconds=self.tick)))

    def mpm(self, name: str, subtype: str, data: dict, **top):
        self.tick += 1
        stamp = (T0 + timedelta(seconds=self.tick)).isoformat()
        payload = {"type": name, "subtype": subtype, "timestamp": stamp, "session_id": self.session_id,
                   "data": {"session_id": self.session_id, "working_directory": "/w/mpm", **data}, **top}
        return self.tracker.apply(normalize(payload, name))

    @property
    def session(self):
        return self.tracker.sessions[self.session_id]


def pre(feed: Feed, tool: str, tool_id: str, agent: str | None = None, **tool_input):
    extra = {"agent_id": agent, "agent_type": "x"} if agent else {}
    return feed.hook("PreToolUse", tool_name=tool, tool_input=tool_input, tool_use_id=tool_id, **extra)


def post(feed: Feed, tool: str, tool_id: str, agent: str | None = None, failure: str | None = None, **tool_input):
    extra = {"agent_id": agent, "agent_type": "x"} if agent else {}
    if failure:
        return feed.hook("PostToolUseFailure", tool_name=tool, tool_input=tool_input, tool_use_id=tool_id, error=failure, **extra)
    return feed.hook("PostToolUse", tool_name=tool, tool_input=tool_input, tool_use_id=tool_id, tool_response={}, **extra)


def test_raw_hook_turn_with_one_delegation_in_real_order():
    feed = Feed()
    feed.hook("SessionStart", source="startup")
    feed.hook("UserPromptSubmit", prompt="Count files in /etc")
    pre(feed, "Agent", "toolu_A", subagent_type="Explore", description="Count", prompt="Run ls /etc | wc -l")
    feed.hook("SubagentStart", agent_id="a" * 17, agent_type="Explore")
    pre(feed, "Bash", "toolu_B", agent="a" * 17, command="ls /etc | wc -l")
    post(feed, "Bash", "toolu_B", agent="a" * 17, command="ls /etc | wc -l")
    feed.hook("SubagentStop", agent_id="a" * 17, agent_type="Explore", last_assistant_message="212 entries")
    feed.hook("PostToolUse", tool_name="Agent", tool_use_id="toolu_A", tool_input={"subagent_type": "Explore"},
              tool_response={"status": "completed", "content": [{"type": "text", "text": "There are 212."}]})
    outcome = feed.hook("Stop", stop_hook_active=False, last_assistant_message="212 entries in /etc.")
    assert outcome.turn_ended and not outcome.session_ended
    end = feed.hook("SessionEnd", reason="prompt_input_exit")
    assert end.session_ended

    session = feed.session
    assert session.initial_prompt == "Count files in /etc"
    assert session.final_response == "212 entries in /etc."
    assert session.working_directory == "/home/agent/proj"
    assert session.status == "completed" and session.end_time is not None
    [delegation] = session.delegations
    assert (delegation.agent_type, delegation.agent_id, delegation.status, delegation.success) == ("Explore", "a" * 17, DONE, True)
    assert delegation.instructions == "Run ls /etc | wc -l"
    assert delegation.tool_operations == ["Bash"]
    assert delegation.event_count == 2
    assert delegation.response_preview == "There are 212."
    assert delegation.end_time == T0 + timedelta(seconds=7)  # the SubagentStop, not the later PostToolUse
    metrics = session.metrics
    assert (metrics.total_delegations, metrics.successful_delegations, metrics.failed_delegations) == (1, 1, 0)
    assert metrics.agents_used == ["Explore"]
    assert metrics.tools_used == ["Agent", "Bash"]
    assert metrics.event_breakdown["delegation"] == 4


def test_main_agent_events_are_not_attributed_once_the_source_sends_agent_ids():
    feed = Feed()
    pre(feed, "Agent", "toolu_A", subagent_type="Explore")
    feed.hook("SubagentStart", agent_id="sub1", agent_type="Explore")
    pre(feed, "Read", "toolu_B", agent="sub1", file_path="/p/a.py")
    pre(feed, "Read", "toolu_C", file_path="/p/main.py")  # main agent, no id
    delegation = feed.session.delegations[0]
    assert delegation.event_count == 1
    assert delegation.tool_operations == ["Read"]


def test_without_agent_ids_only_a_single_open_delegation_gets_attribution():
    feed = Feed()
    pre(feed, "Task", "t1", subagent_type="research")
    pre(feed, "Grep", "g1", pattern="x")
    assert feed.session.delegations[0].event_count == 1
    pre(feed, "Task", "t2", subagent_type="engineer")
    pre(feed, "Grep", "g2", pattern="y")  # two open: never guess
    assert [d.event_count for d in feed.session.delegations] == [1, 0]


def test_files_modified_counted_on_successful_writes_and_attributed():
    feed = Feed()
    pre(feed, "Agent", "toolu_A", subagent_type="general-purpose")
    feed.hook("SubagentStart", agent_id="sub1", agent_type="general-purpose")
    pre(feed, "Write", "w1", agent="sub1", file_path="/p/new.py", content="x")
    post(feed, "Write", "w1", agent="sub1", file_path="/p/new.py", content="x")
    pre(feed, "Edit", "e1", agent="sub1", file_path="/p/old.py")
    post(feed, "Edit", "e1", agent="sub1", failure="String not found", file_path="/p/old.py")
    pre(feed, "Read", "r1", agent="sub1", file_path="/p/read.py")
    post(feed, "Read", "r1", agent="sub1", file_path="/p/read.py")
    assert feed.session.metrics.files_modified == ["/p/new.py"]
    assert feed.session.delegations[0].files_modified == ["/p/new.py"]


def test_post_tool_pairs_by_id_never_by_name_order_and_borrows_the_file_path():
    feed = Feed()
    feed.mpm("tool_event", "pre_tool", {"tool_name": "Write", "tool_parameters": {"file_path": "/w/a.py"}}, correlation_id="c1")
    feed.mpm("tool_event", "pre_tool", {"tool_name": "Write", "tool_parameters": {"file_path": "/w/b.py"}}, correlation_id="c2")
    outcome = feed.mpm("tool_event", "post_tool", {"tool_name": "Write", "success": True}, correlation_id="c2")
    assert outcome.event.data["file_path"] == "/w/b.py"
    assert outcome.event.category == "file"
    assert outcome.event.data["duration_ms"] == 1000
    assert feed.session.metrics.files_modified == ["/w/b.py"]


def test_claude_mpm_delegation_binds_its_real_agent_id_at_subagent_stop():
    feed = Feed()
    feed.mpm("claude_event", "user_prompt", {"prompt_text": "research it"})
    feed.mpm("tool_event", "pre_tool", {"tool_name": "Task", "tool_parameters": {"subagent_type": "research", "prompt": "Go"}},
             correlation_id="c-task")
    feed.mpm("hook_event", "subagent_start", {"agent_type": "research", "agent_id": f"research_{SID}", "prompt": "Go"})
    feed.mpm("tool_event", "pre_tool", {"tool_name": "Write", "tool_parameters": {"file_path": "/w/r.md"}}, correlation_id="c-w")
    feed.mpm("tool_event", "post_tool", {"tool_name": "Write", "success": True}, correlation_id="c-w")
    feed.mpm("hook_event", "subagent_stop", {"agent_type": "research", "agent_id": "a8bfb92"})
    feed.mpm("tool_event", "post_tool", {"tool_name": "Task", "success": True}, correlation_id="c-task")
    [delegation] = feed.session.delegations
    assert (delegation.agent_type, delegation.agent_id, delegation.status) == ("research", "a8bfb92", DONE)
    assert delegation.files_modified == ["/w/r.md"]
    assert delegation.instructions == "Go"
    assert feed.session.working_directory == "/w/mpm"


def test_subagent_start_before_its_task_call_is_adopted_not_duplicated():
    feed = Feed()
    feed.mpm("hook_event", "subagent_start", {"agent_type": "research", "agent_id": f"research_{SID}", "prompt": "Go"})
    feed.mpm("tool_event", "pre_tool", {"tool_name": "Task", "tool_parameters": {"subagent_type": "research", "prompt": "Go"}},
             correlation_id="c-task")
    assert len(feed.session.delegations) == 1
    assert feed.session.delegations[0].tool_use_id == "c-task"


def test_early_subagent_stop_waits_in_the_ledger():
    feed = Feed()
    pre(feed, "Agent", "tA", subagent_type="Explore")
    pre(feed, "Agent", "tB", subagent_type="Explore")
    # Two unbound Explore delegations: a stop for an unknown id cannot be placed yet.
    feed.hook("SubagentStop", agent_id="late", agent_type="Explore")
    assert [d.status for d in feed.session.delegations] == [RUNNING, RUNNING]
    feed.hook("SubagentStart", agent_id="late", agent_type="Explore")
    feed.hook("SubagentStart", agent_id="other", agent_type="Explore")
    first, second = feed.session.delegations
    assert (first.agent_id, first.status) == ("late", DONE)
    assert (second.agent_id, second.status) == ("other", RUNNING)


def test_an_unknown_agent_id_binds_to_the_only_open_delegation_of_its_type():
    feed = Feed()
    pre(feed, "Agent", "tA", subagent_type="Explore")
    pre(feed, "Agent", "tB", subagent_type="Plan")
    feed.hook("SubagentStop", agent_id="x1", agent_type="Explore")
    explore, plan = feed.session.delegations
    assert (explore.agent_id, explore.status) == ("x1", DONE)
    assert (plan.agent_id, plan.status) == (None, RUNNING)


def test_parallel_delegations_are_told_apart_by_agent_id():
    feed = Feed()
    pre(feed, "Agent", "tA", subagent_type="Explore")
    pre(feed, "Agent", "tB", subagent_type="Explore")
    feed.hook("SubagentStart", agent_id="one", agent_type="Explore")
    feed.hook("SubagentStart", agent_id="two", agent_type="Explore")
    pre(feed, "Grep", "g2", agent="two", pattern="x")
    feed.hook("SubagentStop", agent_id="two", agent_type="Explore")
    first, second = feed.session.delegations
    assert (first.agent_id, first.status, first.event_count) == ("one", RUNNING, 0)
    assert (second.agent_id, second.status, second.event_count) == ("two", DONE, 1)


def test_failed_delegation_call_marks_the_delegation_failed():
    feed = Feed()
    pre(feed, "Task", "t1", subagent_type="engineer")
    feed.hook("PostToolUseFailure", tool_name="Task", tool_use_id="t1", tool_input={}, error="Agent crashed")
    [delegation] = feed.session.delegations
    assert (delegation.status, delegation.success, delegation.response_preview) == (FAILED, False, "Agent crashed")
    assert feed.session.metrics.failed_delegations == 1


def test_open_delegations_go_stale_when_the_session_ends():
    feed = Feed()
    pre(feed, "Task", "t1", subagent_type="engineer")
    feed.hook("SessionEnd", reason="other")
    assert feed.session.delegations[0].status == STALE


def test_mark_stale_only_touches_idle_delegations():
    feed = Feed()
    pre(feed, "Task", "t1", subagent_type="engineer")
    assert feed.tracker.mark_stale(SID, T0) == 0
    assert feed.tracker.mark_stale(SID, T0 + timedelta(hours=1)) == 1
    assert feed.session.delegations[0].status == STALE


def test_todos_follow_todowrite_and_todo_updated():
    feed = Feed()
    todos = [{"content": "a", "status": "in_progress", "activeForm": "A"}]
    pre(feed, "TodoWrite", "td1", todos=todos)
    assert feed.session.todos == todos
    feed.mpm("hook_event", "todo_updated", {"todos": [{"content": "b", "status": "pending"}]})
    assert feed.session.todos == [{"content": "b", "status": "pending"}]


def test_replayed_events_with_ids_are_counted_once():
    feed = Feed()
    payload = {"type": "claude_event", "subtype": "user_prompt", "timestamp": T0.isoformat(), "session_id": SID,
               "data": {"session_id": SID, "prompt_text": "hi"}}
    first = feed.tracker.apply(normalize(payload, "claude_event"))
    again = feed.tracker.apply(normalize(payload, "claude_event"))
    assert not first.duplicate and again.duplicate
    assert feed.session.event_count == 1 and feed.tracker.duplicates == 1


def test_usage_is_kept_from_stop_and_token_updates():
    feed = Feed()
    feed.mpm("claude_event", "stop", {"usage": {"input_tokens": 10, "output_tokens": 5}})
    feed.mpm("session_event", "token_usage_updated", {"input_tokens": 12, "cache_read_tokens": 7, "total_tokens": 30})
    assert feed.session.usage == {"input_tokens": 12, "output_tokens": 5, "cache_read_input_tokens": 7}


def test_a_resumed_session_keeps_its_bindings():
    feed = Feed()
    pre(feed, "Agent", "tA", subagent_type="Explore")
    feed.hook("SubagentStart", agent_id="sub1", agent_type="Explore")
    saved = feed.session
    resumed_tracker = SessionTracker()
    session = resumed_tracker.adopt(saved)
    feed.tracker = resumed_tracker
    feed.hook("SubagentStop", agent_id="sub1", agent_type="Explore")
    assert session.delegations[0].status == DONE
    assert session.delegations[0].agent_id == "sub1"


def test_rebuilding_from_events_reproduces_the_session():
    feed = Feed()
    feed.hook("UserPromptSubmit", prompt="go")
    pre(feed, "Agent", "tA", subagent_type="Explore")
    feed.hook("SubagentStart", agent_id="sub1", agent_type="Explore")
    pre(feed, "Write", "w1", agent="sub1", file_path="/p/x.py")
    post(feed, "Write", "w1", agent="sub1", file_path="/p/x.py")
    feed.hook("SubagentStop", agent_id="sub1", agent_type="Explore")
    feed.hook("Stop")
    original = feed.session.to_dict()
    again = SessionTracker()
    for event in feed.session.events:
        again.apply(event)
    rebuilt = again.sessions[SID].to_dict()
    for key in ("events", "delegations", "metrics", "initial_prompt", "start_time", "todos"):
        assert rebuilt[key] == original[key], key


def test_task_post_without_correlation_completes_the_only_unreturned_delegation():
    feed = Feed()
    feed.mpm("tool_event", "pre_tool", {"tool_name": "Task", "tool_parameters": {"subagent_type": "research"}}, correlation_id="c-task")
    feed.mpm("hook_event", "subagent_stop", {"agent_type": "research", "agent_id": "a8bfb92"})
    feed.mpm("tool_event", "post_tool", {"tool_name": "Task", "success": False, "status": "error"})
    [delegation] = feed.session.delegations
    assert (delegation.status, delegation.success) == (FAILED, False)


def test_incremental_delegation_counts_match_a_full_recount():
    from agent_aggregator.model import SessionMetrics

    feed = Feed()
    for i in range(12):
        pre(feed, "Agent", f"t{i}", subagent_type=["Explore", "Plan", "general-purpose"][i % 3])
        feed.hook("SubagentStart", agent_id=f"a{i}", agent_type=["Explore", "Plan", "general-purpose"][i % 3])
        if i % 4 == 0:
            feed.hook("SubagentStop", agent_id=f"a{i}")
        if i % 4 == 1:
            feed.hook("PostToolUseFailure", tool_name="Agent", tool_use_id=f"t{i}", tool_input={}, error="boom")
        if i % 4 == 2:
            feed.hook("SubagentStop", agent_id=f"a{i}")
            feed.hook("PostToolUse", tool_name="Agent", tool_use_id=f"t{i}", tool_input={}, tool_response={"status": "error"})
    feed.tracker.mark_stale(SID, T0 + timedelta(hours=2))
    feed.hook("SubagentStop", agent_id="a3")  # a stale delegation that finishes after all
    fresh = SessionMetrics()
    fresh.recount_delegations(feed.session.delegations)
    got = feed.session.metrics
    assert (got.total_delegations, got.successful_delegations, got.failed_delegations) == (
        fresh.total_delegations, fresh.successful_delegations, fresh.failed_delegations) == (12, 4, 6)


def test_claude_mpm_synthetic_start_opens_nothing_even_before_its_task_call():
    feed = Feed()
    # Seen on claude-mpm 5.9.10: its own announcement arrives first, with a renamed type.
    feed.mpm("hook_event", "subagent_start", {"agent_type": "engineer", "agent_id": f"engineer_{SID}", "prompt": "MEMORY..."})
    feed.mpm("tool_event", "pre_tool", {"tool_name": "Task", "tool_parameters": {"subagent_type": "Explore", "prompt": "Go"}},
             correlation_id="c-task")
    feed.mpm("hook_event", "subagent_start", {"agent_type": "Explore", "agent_id": "real1"})
    feed.mpm("tool_event", "pre_tool", {"tool_name": "Grep", "tool_parameters": {"pattern": "x"}}, correlation_id="g")
    [delegation] = feed.session.delegations
    assert (delegation.agent_type, delegation.agent_id, delegation.instructions) == ("Explore", "real1", "Go")
    assert delegation.tool_operations == ["Grep"]
    assert feed.session.metrics.agents_used == ["Explore"]


def test_an_untyped_delegation_learns_its_type_from_the_subagent():
    feed = Feed()
    # claude-mpm forwards Agent calls without their parameters.
    feed.mpm("tool_event", "pre_tool", {"tool_name": "Agent", "tool_parameters": {"input_type": "dict"}}, correlation_id="c-a")
    feed.mpm("hook_event", "subagent_start", {"agent_type": "Explore", "agent_id": "real2"})
    [delegation] = feed.session.delegations
    assert delegation.agent_type == "Explore"
    assert feed.session.metrics.agents_used == ["Explore"]
