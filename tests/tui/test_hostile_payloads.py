"""Hostile payload text is shown literally (issue 8): Rich markup, terminal escape sequences,
carriage returns, backspaces, zero-width and bidi characters in prompts, commands, paths,
project names, agent names and responses, in every pane of the TUI and in the CLI.

Snapshots (tests/tui/__snapshots__/test_hostile_payloads/) prove what the screen shows; the
assertions next to them check the parts that matter in the SVG text and the CLI output.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import ACTIVITY, SIZE, config, fixed_clock, wait_for

from agent_aggregator import cli
from agent_aggregator.aggregator import EventAggregator
from agent_aggregator.tui.app import AggregateApp
from agent_aggregator.tui.screens.detail import EventDetailScreen
from agent_aggregator.tui.widgets.timeline import Timeline

MARKUP = "[bold red]x[/]"
LINK = "[link=file:///etc/passwd]click[/link]"
ANSI = "\x1b[31mred\x1b[0m"
OSC = "\x1b]0;pwned-title\x07"
CR = "visible\roverwritten"
BS = "abc\b\b\bXYZ"
ZERO_WIDTH = "zero\u200bwidth\u200djoin\ufeff"
BIDI = "bidi \u202eexe.txt\u202c end"
PROMPT = f"{MARKUP} {LINK} {ANSI} {OSC} {CR} {BS} {ZERO_WIDTH} {BIDI} :warning:"
PROJECT = "/home/dev/[bold red]proj[blink]"
SID = "hostile0-[red]-4a7e-9c15-2d8e6f0b7a31"
T0 = datetime(2026, 3, 14, 9, 30, 0, tzinfo=timezone.utc)

# What must reach the screen as text (escape characters themselves never do).
LITERALS = ("[bold red]x[/]", "[link=file:///etc/passwd]click[/link]", "[31mred", "[blink]researcher[/blink]",
            ":warning:")


def hostile_stream() -> list[dict]:
    base = {"session_id": SID, "cwd": PROJECT}
    agent = "agent-h1"
    steps = [
        {"hook_event_name": "SessionStart", "source": "startup"},
        {"hook_event_name": "UserPromptSubmit", "prompt": PROMPT},
        {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": "b1",
         "tool_input": {"command": f"echo '{MARKUP}' {ANSI} {OSC}", "description": f"run {LINK}"}},
        {"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_use_id": "b1",
         "tool_input": {"command": f"echo '{MARKUP}'"}, "tool_response": {"stdout": f"{ANSI}\n{CR}\n{BS}"}},
        {"hook_event_name": "PreToolUse", "tool_name": "Agent", "tool_use_id": "t1",
         "tool_input": {"subagent_type": "[blink]researcher[/blink]", "description": f"look {MARKUP}",
                        "prompt": f"instructions {LINK} {OSC}"}},
        {"hook_event_name": "SubagentStart", "agent_id": agent, "agent_type": "[blink]researcher[/blink]"},
        {"hook_event_name": "PreToolUse", "tool_name": "Write", "tool_use_id": "w1", "agent_id": agent,
         "agent_type": "[blink]researcher[/blink]",
         "tool_input": {"file_path": f"{PROJECT}/[red]notes[/].md", "content": f"{MARKUP}\n{ANSI}"}},
        {"hook_event_name": "PostToolUse", "tool_name": "Write", "tool_use_id": "w1", "agent_id": agent,
         "agent_type": "[blink]researcher[/blink]", "tool_input": {"file_path": f"{PROJECT}/[red]notes[/].md"},
         "tool_response": {"type": "create"}},
        {"hook_event_name": "SubagentStop", "agent_id": agent, "agent_type": "[blink]researcher[/blink]",
         "last_assistant_message": f"done {OSC} {MARKUP}"},
        {"hook_event_name": "PostToolUse", "tool_name": "Agent", "tool_use_id": "t1",
         "tool_input": {"subagent_type": "[blink]researcher[/blink]"},
         "tool_response": {"status": "completed", "content": [{"type": "text", "text": f"{LINK}"}]}},
        {"hook_event_name": "Stop", "stop_hook_active": False, "last_assistant_message": f"Finished {MARKUP} {BIDI}"},
    ]
    return [
        {**base, **step, "timestamp": (T0 + timedelta(seconds=index)).isoformat(), "event_id": f"h{index:031d}"}
        for index, step in enumerate(steps)
    ]


@pytest.fixture
def hostile_store(workdir: Path):
    aggregator = EventAggregator(config=config())
    aggregator.start(connect=False)
    for payload in hostile_stream():
        assert aggregator.handle_event(payload) is not None
    aggregator.stop()
    return config()


def hostile_app(store_config) -> AggregateApp:
    return AggregateApp(store_config, connect=False, clock=fixed_clock(T0 + timedelta(minutes=5)))


async def shown_in_full(app: AggregateApp, pilot) -> None:
    def done() -> bool:
        current = app.live_screen.current
        return current is not None and app.live_screen.query_one(Timeline).total_count == len(current.events)

    await wait_for(done, pilot)
    await pilot.pause()


def check_svg(svg: str) -> None:
    """The snapshot's text: payload markup literal, no escape characters, no bidi overrides."""
    for forbidden in ("\x1b", "\x07", "\r", "\b", "\u202e", "\u202c"):
        assert forbidden not in svg
    assert "pwned-title" in svg or "[31mred" in svg  # the payload is there, as text


def last_snapshot(name: str) -> str:
    path = Path(__file__).parent / "__snapshots__" / "test_hostile_payloads" / f"{name}.svg"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def svg_text(svg: str) -> str:
    """The visible text of a Textual SVG screenshot (rows of <tspan>/<text> content, entities decoded)."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


def test_snapshot_hostile_live_screen(hostile_store, snap_compare):
    app = hostile_app(hostile_store)

    async def run_before(pilot) -> None:
        await shown_in_full(app, pilot)
        await pilot.press("2")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    svg = last_snapshot("test_snapshot_hostile_live_screen")
    check_svg(svg)
    text = svg_text(svg)
    for literal in ("[bold red]x[/]", "[blink]researcher[/blink]", "[bold red]proj[blink]", "[red]notes[/].md",
                    "Timeline · [bold red]proj[blink] · 11 events"):  # a border title: markup unless Text
        assert literal in text, literal


def test_snapshot_hostile_event_detail(hostile_store, snap_compare):
    app = hostile_app(hostile_store)

    async def run_before(pilot) -> None:
        await shown_in_full(app, pilot)
        await pilot.press("2", "home")
        line = app.live_screen.query_one(Timeline)
        while line.selected is None or line.selected.event_type != "UserPromptSubmit":
            await pilot.press("down")
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, EventDetailScreen), pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    svg = last_snapshot("test_snapshot_hostile_event_detail")
    check_svg(svg)
    text = svg_text(svg)
    for literal in ("[bold red]x[/]", "[link=file:///etc/passwd]click[/link]", ":warning:"):
        assert literal in text, literal


def test_snapshot_hostile_browser(hostile_store, snap_compare):
    from agent_aggregator.tui.screens.browser import BrowserScreen

    app = hostile_app(hostile_store)

    async def run_before(pilot) -> None:
        await shown_in_full(app, pilot)
        await pilot.press("s")
        await wait_for(lambda: isinstance(app.screen, BrowserScreen) and len(app.screen.shown_ids) == 1, pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    svg = last_snapshot("test_snapshot_hostile_browser")
    check_svg(svg)
    text = svg_text(svg)
    for literal in ("[bold red]proj[blin", "[bold red]x[/]", "[link=file:///etc/passwd]click[/link]"):
        assert literal in text, literal


# --- the CLI ------------------------------------------------------------------------------


@pytest.mark.parametrize("force_colour", [False, True])
def test_cli_shows_payloads_literally(hostile_store, capsys, monkeypatch, force_colour):
    if force_colour:  # a real terminal: our own colours are on, the payload's never are
        monkeypatch.setenv("FORCE_COLOR", "1")
        monkeypatch.setenv("COLUMNS", "200")
    else:
        monkeypatch.delenv("FORCE_COLOR", raising=False)
    outputs = []
    for argv in (["sessions"], ["view", SID[:12], "--verbose"]):
        assert cli.main(["--save-dir", str(ACTIVITY), *argv]) == 0
        outputs.append(capsys.readouterr().out)
    text = "\n".join(outputs)
    for forbidden in ("\x1b[31mred", "\x1b]0;", "\x07", "\r", "\b", "\u202e"):
        assert forbidden not in text, repr(forbidden)
    if not force_colour:
        assert "\x1b" not in text
    assert "[bold red]proj[blink]" in outputs[0]
    assert "[bold red]x[/]" in outputs[1]
