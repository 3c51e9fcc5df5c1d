"""Every export format parsed back, with payloads designed to break naive writers."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from agent_aggregator.errors import InvalidFormatError
from agent_aggregator.export import (
    CSV_COLUMNS,
    EXTENSIONS,
    FORMATS,
    default_export_path,
    export_session,
    render_export,
)
from agent_aggregator.model import COMPLETED, AgentSession

T0 = datetime(2025, 8, 12, 14, 15, 30, tzinfo=timezone.utc)
SESSION_ID = "5283b66c-2b29-4ee0-9698-f410f3a393fd"
NASTY_PROMPT = (
    "# Heading?\n"
    "    <script>alert('x')</script> & <b>bold</b>\n"
    "1. not a list, \"quoted\", comma\n"
    "- nor this | pipe | `tick` *star* _under_ ~~strike~~ $math$\n"
    "[bold]rich markup[/bold] \x1b[31mred\x1b[0m [link](http://evil.test)\n"
    "===\n"
    "unicode: naïve 日本語 🎉"
)
NASTY_PATH = '/work/proj|x/src/we,ird "name"\n<i>.py'


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def build_session() -> AgentSession:
    session = AgentSession(SESSION_ID, T0)
    session.working_directory = "/work/proj|x"
    session.add_event("UserPromptSubmit", {"prompt": NASTY_PROMPT}, at(0))
    session.add_event("PreToolUse", {"tool_name": "Task", "subagent_type": "research|er",
                                     "description": "Look <around>", "instructions": "Find `it`\nquick"},
                      at(1), correlation_id="toolu_1")
    session.add_event("PreToolUse", {"tool_name": "Bash", "tool_input": {"command": "echo \"a,b\"\nls | wc -l"}},
                      at(2), agent_id="agent-7", correlation_id="toolu_2")
    session.add_event("PostToolUseFailure", {"tool_name": "Bash", "success": False, "error": "exit 1, \"bad\""},
                      at(3), agent_id="agent-7", correlation_id="toolu_2")
    session.add_event("PreToolUse", {"tool_name": "Edit", "file_path": NASTY_PATH}, at(4))
    session.add_event("PreToolUse", {"tool_name": "TodoWrite", "todos": [
        {"content": "a", "status": "in_progress"}, {"content": "b", "status": "pending"}]}, at(5))
    session.add_event("Stop", {"response": "Done: <ok> | [b]x[/b]"}, at(6))
    delegation = session.add_delegation("research|er", "Find `it`\nquick", T0 + timedelta(seconds=1),
                                        description="Look <around>")
    delegation.event_count = 2
    delegation.note_file(NASTY_PATH)
    delegation.close(T0 + timedelta(seconds=65), success=True)
    session.metrics.note_file(NASTY_PATH)
    session.final_response = "Done: <ok> | [b]x[/b]"
    session.finish(COMPLETED, T0 + timedelta(minutes=3, seconds=25))
    return session


@pytest.fixture
def session() -> AgentSession:
    return build_session()


def test_format_table_is_consistent() -> None:
    assert FORMATS == ("full", "summary", "events", "csv", "markdown", "html")
    assert set(EXTENSIONS) == set(FORMATS)
    assert EXTENSIONS["csv"] == "csv" and EXTENSIONS["markdown"] == "md" and EXTENSIONS["full"] == "json"


def test_full_is_the_session_file_shape(session: AgentSession) -> None:
    document = json.loads(render_export(session, "full"))
    assert document == json.loads(json.dumps(session.to_dict()))
    assert document["events"][0]["data"]["prompt"] == NASTY_PROMPT
    restored = AgentSession.from_dict(document)
    assert restored.session_id == SESSION_ID and len(restored.events) == 7
    # The seeds' jq recipes hold on an export too.
    assert [e["data"]["file_path"] for e in document["events"] if e["category"] == "file"] == [NASTY_PATH]
    assert [e["data"]["prompt"] for e in document["events"] if e["event_type"] == "UserPromptSubmit"] == [NASTY_PROMPT]


def test_full_with_a_filtered_subset(session: AgentSession) -> None:
    subset = [e for e in session.events if e.category == "tool"]
    document = json.loads(render_export(session, "full", subset))
    assert [e["event_type"] for e in document["events"]] == ["PreToolUse", "PostToolUseFailure"]
    assert document["delegations"][0]["agent_type"] == "research|er"


def test_summary_has_everything_but_events(session: AgentSession) -> None:
    document = json.loads(render_export(session, "summary"))
    assert "events" not in document
    assert document["session_id"] == SESSION_ID
    assert document["metrics"]["total_events"] == 7
    summary = document["summary"]
    assert summary["total_events"] == 7
    assert summary["prompts"] == 1
    assert summary["event_counts"]["delegation"] == 1
    assert summary["event_counts"]["tool"] == 2
    assert summary["event_counts"]["file"] == 1
    assert summary["event_counts"]["todo"] == 1
    assert summary["event_counts"]["response"] == 1
    assert summary["tools_used"] == {"Bash": 1, "Edit": 1, "Task": 1, "TodoWrite": 1}
    assert summary["files_modified"] == [NASTY_PATH]
    assert summary["agents"] == {"research|er": 1}
    assert summary["delegations"] == 1
    assert summary["duration_ms"] == 205_000 and summary["duration"] == "3m 25s"


def test_events_is_an_array_of_event_dicts(session: AgentSession) -> None:
    document = json.loads(render_export(session, "events"))
    assert document == json.loads(json.dumps([e.to_dict() for e in session.events]))
    assert document[2]["agent_id"] == "agent-7" and document[2]["correlation_id"] == "toolu_2"


def parse_csv(payload: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(payload.decode("utf-8"), newline=""), strict=True))


def test_csv_round_trips_nasty_values(session: AgentSession) -> None:
    payload = render_export(session, "csv")
    rows = parse_csv(payload)
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 1 + len(session.events)
    for row, ev in zip(rows[1:], session.events):
        record = dict(zip(CSV_COLUMNS, row))
        assert len(row) == len(CSV_COLUMNS)
        assert record["timestamp"] == ev.timestamp
        assert record["session_id"] == SESSION_ID
        assert record["event_type"] == ev.event_type
        assert record["category"] == ev.category
        assert record["agent_id"] == (ev.agent_id or "")
        assert record["correlation_id"] == (ev.correlation_id or "")
        assert json.loads(record["data"]) == ev.data
        assert "\n" not in record["summary"] and "\x1b" not in record["summary"]
    records = [dict(zip(CSV_COLUMNS, r)) for r in rows[1:]]
    assert records[4]["tool_name"] == "Edit" and records[4]["file_path"] == NASTY_PATH
    assert records[2]["summary"] == 'Bash: echo "a,b" ls | wc -l'
    assert records[3]["summary"] == 'Bash failed: exit 1, "bad"'
    assert records[1]["summary"] == "research|er: Look <around>"
    assert json.loads(records[0]["data"])["prompt"] == NASTY_PROMPT


def test_csv_uses_crlf_record_ends(session: AgentSession) -> None:
    payload = render_export(session, "csv")
    assert payload.startswith(b"timestamp,session_id,event_type,category,agent_id,correlation_id,"
                              b"tool_name,file_path,summary,data\r\n")
    assert payload.endswith(b"\r\n")
    # Outside quoted fields every line break is CRLF (newlines inside payloads stay quoted).
    unquoted = re.sub(rb'"(?:[^"]|"")*"', b'""', payload)
    assert b"\n" not in unquoted.replace(b"\r\n", b"")
    assert unquoted.count(b"\r\n") == 1 + len(session.events)


def test_csv_of_a_subset_and_of_no_events(session: AgentSession) -> None:
    subset = session.events[:2]
    assert len(parse_csv(render_export(session, "csv", subset))) == 3
    assert parse_csv(render_export(session, "csv", [])) == [list(CSV_COLUMNS)]


def md_table_cells(line: str) -> list[str]:
    """Split a GFM table row on pipes that are not backslash-escaped."""
    assert line.startswith("| ") and line.endswith(" |"), line
    return re.split(r"(?<!\\)\|", line[1:-1])


def test_markdown_structure(session: AgentSession) -> None:
    text = render_export(session, "markdown").decode("utf-8")
    lines = text.split("\n")
    assert lines[0] == f"# Session {SESSION_ID} (proj\\|x)"
    for heading in ("## Summary", "## Initial prompt", "## Delegations", "## Files modified",
                    "## Timeline", "## Agents used", "## Final response"):
        assert heading in lines
    assert "| Agent Delegations | 1 |" in lines
    assert "| Duration | 3m 25s |" in lines
    # Every table row has exactly as many cells as its header.
    header_cells = None
    for line in lines:
        if line.startswith("|---"):
            assert header_cells is not None and line.count("---") == header_cells
        elif line.startswith("|"):
            cells = md_table_cells(line)
            if header_cells is None:
                header_cells = len(cells)
            assert len(cells) == header_cells, line
        else:
            header_cells = None
    timeline = lines[lines.index("## Timeline") + 2:]
    rows = [line for line in timeline if line.startswith("| 2025")]
    assert len(rows) == len(session.events)
    assert rows[0].startswith("| 2025-08-12 14:15:30 UTC | prompt | UserPromptSubmit |")
    # Payload text never contains raw markup characters.
    assert "\x1b" not in text
    # Outside code spans (literal by definition) payload text never holds raw HTML brackets.
    prose = re.sub(r"(?<!\\)(`+)(?!`).*?(?<!`)\1(?!`)", "", text)
    assert "`" not in prose.replace("\\`", "")
    assert "<" not in prose and ">" not in prose.replace("\n> ", "\n").replace("\n>\n", "\n")


def rendered(text: str) -> str:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text)


def test_markdown_payload_is_literal_when_rendered(session: AgentSession) -> None:
    output = rendered(render_export(session, "markdown").decode("utf-8"))
    for tag in ("<script", "<b>", "<i>", "<em>", "<strong>", "<s>", "<del>", "<a ", "<ol", "<h2>Heading"):
        assert tag not in output, tag
    assert output.count("<h1>") == 1
    assert output.count("<ul>") == 2  # agents used, files modified: our lists only
    quote = re.search(r"<h2>Initial prompt</h2>\s*<blockquote>\s*<p>(.*?)</p>\s*</blockquote>", output, re.S)
    assert quote is not None
    shown = html.unescape(re.sub(r"<[^>]+>", "", quote.group(1))).replace("\xa0", " ")
    expected = NASTY_PROMPT.replace("\x1b", " ")
    assert [line.rstrip() for line in shown.split("\n")] == [line.rstrip() for line in expected.split("\n")]


def test_markdown_table_cells_render_to_the_payload_text(session: AgentSession) -> None:
    output = rendered(render_export(session, "markdown").decode("utf-8"))
    cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td>(.*?)</td>", output, re.S)]
    assert "research|er" in cells
    assert "Look <around>" in cells
    assert "Done: <ok> | [b]x[/b]" in cells  # the Stop event's timeline summary
    assert 'Bash: echo "a,b" ls | wc -l' in cells
    assert "3m 25s" in cells
    files = re.search(r"<h2>Files modified</h2>\s*<ul>\s*<li>(.*?)</li>", output, re.S)
    assert files is not None
    assert html.unescape(re.sub(r"<[^>]+>", "", files.group(1))) == 'src/we,ird "name" <i>.py'


def test_markdown_without_optional_parts() -> None:
    bare = AgentSession("bare", T0)
    text = render_export(bare, "markdown").decode("utf-8")
    assert text.startswith("# Session bare\n")
    assert "## Initial prompt" not in text and "## Delegations" not in text
    assert "No events." in text


def test_unknown_format_lists_the_valid_ones(session: AgentSession) -> None:
    with pytest.raises(InvalidFormatError) as caught:
        render_export(session, "xml")
    assert "xml" in str(caught.value)
    for name in FORMATS:
        assert name in str(caught.value)
    with pytest.raises(InvalidFormatError):
        export_session(session, "pdf")


def test_default_export_path(session: AgentSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_export_path(session, "csv", tmp_path) == tmp_path / "session_5283b66c_20250812_141530_csv.csv"
    monkeypatch.chdir(tmp_path)
    assert default_export_path(session, "markdown") == tmp_path / "session_5283b66c_20250812_141530_markdown.md"
    evil = AgentSession("../../etc/passwd", T0)
    path = default_export_path(evil, "full", tmp_path)
    assert path.parent == tmp_path
    assert path.name == "session_______et_20250812_141530_full.json"


def test_export_session_writes_atomically(session: AgentSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    written = export_session(session, "summary")
    assert written == tmp_path / "session_5283b66c_20250812_141530_summary.json"
    assert json.loads(written.read_bytes())["summary"]["total_events"] == 7
    into_dir = export_session(session, "csv", tmp_path / "exports")  # not a directory yet: a file name
    assert into_dir == tmp_path / "exports"
    (tmp_path / "outdir").mkdir()
    in_dir = export_session(session, "markdown", tmp_path / "outdir")
    assert in_dir == tmp_path / "outdir" / "session_5283b66c_20250812_141530_markdown.md"
    nested = export_session(session, "events", tmp_path / "a" / "b" / "events.json")
    assert len(json.loads(nested.read_bytes())) == 7
    leftovers = [p.name for p in tmp_path.rglob("*.tmp")]
    assert leftovers == []


def test_export_session_subset_and_overwrite(session: AgentSession, tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    export_session(session, "events", target, events=session.events[:1])
    assert len(json.loads(target.read_bytes())) == 1
    export_session(session, "events", target)
    assert len(json.loads(target.read_bytes())) == 7
    with pytest.raises(FileExistsError):
        export_session(session, "events", target, overwrite=False)
    assert len(json.loads(target.read_bytes())) == 7
