"""The html export parsed back (html.parser, and a real headless Chromium when installed),
with payloads built to break naive writers; plus the progress callback every format shares."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from agent_aggregator import cli
from agent_aggregator.export import (
    FORMATS,
    PROGRESS_STEP,
    export_session,
    human_size,
    render_export,
    snapshot,
)
from agent_aggregator.export_html import CSP
from agent_aggregator.model import COMPLETED, AgentSession
from agent_aggregator.normalize import normalize
from agent_aggregator.store import session_file_name
from agent_aggregator.tracker import SessionTracker

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402

T0 = datetime(2025, 8, 12, 14, 15, 30, tzinfo=timezone.utc)
HUGE = "x" * 1_000_000
HOSTILE = [
    "</script><script>alert(1)</script>",
    "<img src=x onerror=\"alert('img')\">",
    "</pre></details></td></tr></table><b>escaped the table</b>",
    "'\" onmouseover=\"alert(2)",
    "[red]rich markup[/red] [link=http://evil.test]click[/link]",
    "\x1b[31mred\x1b[0m \x1b]8;;http://evil.test\x07link\x1b]8;;\x07",
    "nul\x00bell\x07del\x7fc1\x85\x9b",
    "bidi \u202eevil\u202c \u2066iso\u2069",
    "<!-- comment --> <![CDATA[ x ]]> &amp; &lt;",
]
# Characters that must never reach the page raw (all are shown escaped or removed).
FORBIDDEN = ["\x1b", "\x00", "\x07", "\x7f", "\x85", "\x9b", "\u202e", "\u2066"]


def recorded(session_id: str = fb.RAW_SESSION_ID) -> AgentSession:
    """The raw-hook fixture session as the aggregator records it (delegations, files, 40 events)."""
    tracker = SessionTracker()
    for timestamp, payload in fb.raw_hook_session(session_id):
        tracker.apply(normalize({**payload, "timestamp": timestamp}))
    return tracker.sessions[session_id]


def hostile_session() -> AgentSession:
    session = AgentSession("evil-<b>-\"id\"", T0)
    session.working_directory = "/work/<proj>"
    session.metadata["source"] = HOSTILE[1]
    session.usage = {"cost<usd>": HOSTILE[0], "turns": 3}
    session.add_event("UserPromptSubmit", {"prompt": "\n".join(HOSTILE)}, T0.isoformat())
    for index, text in enumerate(HOSTILE):
        moment = (T0 + timedelta(seconds=index + 1)).isoformat()
        session.add_event("PreToolUse", {"tool_name": "Bash", "tool_input": {"command": text}}, moment, agent_id=text)
        session.add_event("PreToolUse", {"tool_name": "Edit", "file_path": f"/work/<proj>/{text}.py"}, moment)
    session.add_event("Notification", {"message": HUGE, "weird": {HOSTILE[0]: [HOSTILE[4]]}},
                      (T0 + timedelta(seconds=30)).isoformat(), category="<script>")
    delegation = session.add_delegation(HOSTILE[2], HOSTILE[0], T0, description=HOSTILE[1])
    delegation.tool_operations += ["Bash", HOSTILE[3]]
    delegation.note_file(f"/work/<proj>/{HOSTILE[1]}")
    delegation.response_preview = HOSTILE[5]
    delegation.close(T0 + timedelta(seconds=20), success=False)
    session.final_response = HOSTILE[6]
    session.finish(COMPLETED, T0 + timedelta(minutes=1))
    return session


class Page(HTMLParser):
    """Start tags with attributes, text, timeline rows and the text of every <pre> (all of
    them, and those of the timeline); a close tag that does not match is an error."""

    VOID = frozenset({"meta", "input", "br", "img", "link"})

    def __init__(self) -> None:
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[tuple[str, str | None]] = []
        self.pres: list[str] = []
        self.event_pres: list[str] = []
        self.rows: list[dict[str, str | None]] = []
        self.errors: list[str] = []
        super().__init__(convert_charrefs=True)

    def _inside(self, element_id: str) -> bool:
        return any(found == element_id for _, found in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "tr" and self._inside("events") and attributes.get("class"):
            self.rows.append(attributes)
        if tag == "pre":
            self.pres.append("")
            if self._inside("events"):
                self.event_pres.append("")
        if tag not in self.VOID:
            self.stack.append((tag, attributes.get("id")))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if any(tag == "pre" for tag, _ in self.stack):
            self.pres[-1] += data
            if self._inside("events"):
                self.event_pres[-1] += data

    def handle_comment(self, data: str) -> None:
        self.errors.append(f"comment: {data[:40]}")


def parse(payload: bytes) -> Page:
    page = Page()
    page.feed(payload.decode("utf-8"))
    page.close()
    return page


# --- structure --------------------------------------------------------------------------------


def test_html_is_registered_like_every_format() -> None:
    assert "html" in FORMATS
    session = recorded()
    assert render_export(session, "html").startswith(b"<!DOCTYPE html>")


def test_page_structure_of_a_recorded_session() -> None:
    session = recorded()
    payload = render_export(session, "html")
    page = parse(payload)
    assert page.errors == [] and page.stack == []
    ids = {attrs.get("id") for _, attrs in page.tags}
    assert {"summary", "prompt", "response", "delegations", "files", "timeline", "events"} <= ids
    assert len(page.rows) == len(session.events) == 40
    assert all(row["class"] and row["class"].startswith("k") for row in page.rows)
    assert sum(1 for tag, _ in page.tags if tag == "details") >= 40
    text = "".join(page.text)
    assert session.session_id in text and "inventory-api" in text
    assert "Explore" in text and "general-purpose" in text  # delegations
    assert "src/inventory/orders.py" in text  # files, relative to the project
    # Every category present has a filter checkbox and a CSS rule hiding its rows when unchecked.
    boxes = [attrs["id"] for tag, attrs in page.tags if tag == "input"]
    counts = {}
    for event in session.events:
        counts[event.category] = counts.get(event.category, 0) + 1
    assert len(boxes) == len(counts)
    source = payload.decode()
    for box in boxes:
        css = box.removeprefix("show-")
        assert f"#{box}:not(:checked) ~ table tr.{css} {{ display: none; }}" in source
    # The payload of each row is the event as JSON.
    assert [json.loads(block) for block in page.event_pres] == [event.to_dict() for event in session.events]


def test_self_contained_and_locked_down() -> None:
    payload = render_export(recorded(), "html").decode()
    page = parse(payload.encode())
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "img", "link", "iframe", "object", "embed", "form", "a", "base"}
    assert f'content="{CSP}"' in payload and "default-src 'none'" in CSP
    assert "http://" not in payload and "https://" not in payload and "url(" not in payload
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)


def test_hostile_payloads_are_text_never_markup() -> None:
    session = hostile_session()
    payload = render_export(session, "html")
    source = payload.decode("utf-8")
    page = parse(payload)
    assert page.errors == [] and page.stack == []
    tags = [tag for tag, _ in page.tags]
    assert "script" not in tags and "img" not in tags and "b" not in tags
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    for character in FORBIDDEN:
        assert character not in source, repr(character)
    text = "".join(page.text)
    for hostile in HOSTILE[:5]:
        assert hostile in text, hostile  # shown literally (decoded from entities)
    # The payload JSON keeps escaped controls as JSON escapes, so it still parses back.
    pres = [json.loads(block) for block in page.event_pres]
    commands = [p["data"]["tool_input"]["command"] for p in pres if p["data"].get("tool_name") == "Bash"]
    assert commands == HOSTILE
    huge = next(p for p in pres if p["event_type"] == "Notification")
    assert huge["data"]["message"] == HUGE and huge["category"] == "<script>"
    # An unknown category still gets a class of ours, never its own name in the CSS.
    assert "tr.<script>" not in source and "<script>" not in source.split("<body>")[0]
    assert len(page.rows) == len(session.events)


def test_filtered_subset_says_so() -> None:
    session = recorded()
    chosen = [event for event in session.events if event.category == "file"]
    page = parse(render_export(session, "html", chosen))
    assert len(page.rows) == len(chosen) == 12
    text = "".join(page.text)
    assert f"Filtered export: {len(chosen)} of {len(session.events)} events" in text
    assert {row["class"] for row in page.rows} == {page.rows[0]["class"]}


def test_empty_session() -> None:
    bare = AgentSession("bare", T0)
    page = parse(render_export(bare, "html"))
    assert page.errors == [] and page.rows == []
    text = "".join(page.text)
    assert "No events." in text and "No delegations." in text and "No file operations." in text


def test_lone_surrogates_and_odd_values_do_not_break_it() -> None:
    session = AgentSession("odd", T0)
    session.add_event("Notification", {"message": "half \ud800 a pair", "n": float("nan"), "b": b"bytes"}, T0.isoformat())
    session.add_event("Notification", {"message": "no time"}, "not a timestamp")
    payload = render_export(session, "html")
    page = parse(payload)
    assert len(page.rows) == 2 and page.errors == []
    assert json.loads(page.event_pres[0])["data"]["message"] == "half \ud800 a pair"


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_exports_html(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    session = recorded()
    directory = tmp_path / "activity"
    directory.mkdir()
    session.save(directory / session_file_name(session.session_id, session.start_time))
    code = cli.main(["--save-dir", str(directory), "export", session.session_id[:8], "--format", "html", "-o", "out.html"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert out.startswith(f"Exported {session.session_id} (html) to out.html (") and out.endswith(" KB)\n")
    page = parse((tmp_path / "out.html").read_bytes())
    assert len(page.rows) == 40
    code = cli.main(["--save-dir", str(directory), "export", "-f", "html"])  # default name, latest session
    assert code == 0
    written = list(tmp_path.glob("session_4f6c1e2a_*_html.html"))
    assert len(written) == 1 and written[0].read_bytes() == (tmp_path / "out.html").read_bytes()


# --- progress, snapshot, sizes ------------------------------------------------------------------


def many_events(count: int) -> AgentSession:
    session = AgentSession("many", T0)
    for index in range(count):
        session.add_event("PreToolUse", {"tool_name": "Bash", "tool_input": {"command": f"echo {index}"}},
                          (T0 + timedelta(milliseconds=index)).isoformat())
    return session


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reports_progress(fmt: str) -> None:
    session = many_events(2 * PROGRESS_STEP + 5)
    calls: list[tuple[int, int]] = []
    payload = render_export(session, fmt, progress=lambda done, total: calls.append((done, total)))
    total = len(session.events)
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert (PROGRESS_STEP, total) in calls
    assert payload == render_export(session, fmt)  # the callback changes nothing


def test_raising_from_progress_aborts_before_writing(tmp_path: Path) -> None:
    session = many_events(PROGRESS_STEP * 2)
    target = tmp_path / "out.html"

    class Stop(Exception):
        pass

    def stop_half_way(done: int, total: int) -> None:
        if done >= PROGRESS_STEP:
            raise Stop

    with pytest.raises(Stop):
        export_session(session, "html", target, progress=stop_half_way)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_false_refuses_before_rendering(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("mine")
    calls: list[int] = []
    with pytest.raises(FileExistsError):
        export_session(many_events(3), "csv", target, overwrite=False, progress=lambda d, t: calls.append(d))
    assert calls == [] and target.read_text() == "mine"


def test_snapshot_is_independent_of_the_live_session() -> None:
    session = recorded()
    copy = snapshot(session)
    before = render_export(copy, "full")
    session.add_event("Stop", {"response": "later"}, (T0 + timedelta(days=400)).isoformat())
    session.delegations[0].files_modified.append("/late.py")
    session.metrics.note_file("/late.py")
    session.metadata["source"] = "changed"
    assert render_export(copy, "full") == before
    assert len(copy.events) == len(session.events) - 1
    assert render_export(copy, "html") == render_export(snapshot(copy), "html")


def test_human_size() -> None:
    assert human_size(0) == "0 B" and human_size(1023) == "1023 B"
    assert human_size(1536) == "1.5 KB" and human_size(5 * 1024 * 1024) == "5.0 MB"
    assert human_size(3 * 1024**4) == "3072.0 GB"


# --- a real browser ----------------------------------------------------------------------------

CHROMIUM = next((path for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(path).exists()), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no /usr/bin/chromium (apt-get install chromium to run this)")
def test_headless_chromium_renders_the_page_without_running_anything(tmp_path: Path) -> None:
    session = hostile_session()
    page_path = tmp_path / "session.html"
    export_session(session, "html", page_path)
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page_path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    page = parse(dom.encode())
    tags = [tag for tag, _ in page.tags]
    assert "script" not in tags and "img" not in tags and "b" not in tags
    assert len(page.rows) == len(session.events)
    assert "escaped the table" in "".join(page.text)
    assert tags.count("details") >= len(session.events)
    assert 'Session evil-<b>-"id"' in "".join(page.text)  # the title, as text
