"""One event's full data: pretty, syntax-highlighted JSON in a modal."""

from __future__ import annotations

import json
import re
from datetime import timezone
from typing import Any, ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ...describe import event_summary, one_line
from ...model import SessionEvent
from ...timeutil import parse_timestamp
from ..widgets.timeline import category_style, event_agent

# json.dumps(ensure_ascii=False) escapes C0 controls (ESC included) but passes
# these through: C1 controls (U+009B is a one-character CSI), line separators
# and bidi controls that would reorder the screen. Escaping them keeps the JSON
# valid and equal in meaning.
_UNSAFE = re.compile(r"[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

# Past this size a payload is shown without highlighting (lexing would stall the UI).
HIGHLIGHT_LIMIT = 400_000


def event_json(event: SessionEvent) -> str:
    """The event as indented JSON in which every control character is escaped."""
    text = json.dumps(event.to_dict(), indent=2, ensure_ascii=False, default=str)
    return _UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def local_datetime(timestamp: Any) -> str:
    """``YYYY-MM-DD HH:MM:SS.mmm ZONE`` in local time, or the raw text made safe."""
    moment = parse_timestamp(timestamp)
    if moment is None:
        return one_line(timestamp) or "no time"
    try:
        local = moment.astimezone()
    except (OverflowError, OSError, ValueError):
        local = moment.astimezone(timezone.utc)
    zone = local.tzname() or ""
    return f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} {zone}".rstrip()


def event_title(event: SessionEvent) -> Text:
    """time, event type, category, session id (and agent) as literal text."""
    title = Text(no_wrap=True, overflow="ellipsis", end="")
    title.append(local_datetime(event.timestamp), "bold")
    title.append("  ")
    title.append(one_line(event.event_type) or "event", "bold")
    title.append("  ")
    category = one_line(event.category)
    title.append(category, category_style(category))
    title.append("  session ", "dim")
    title.append(one_line(event.session_id) or "-")
    agent = event_agent(event)
    if agent:
        title.append("  agent ", "dim")
        title.append(agent)
    return title


class EventDetailScreen(ModalScreen[None]):
    """The event's data as JSON; escape/q closes, y copies the JSON."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", tooltip="Back to the timeline"),
        Binding("y", "copy", "Copy JSON", tooltip="Copy the event's JSON to the clipboard"),
    ]

    DEFAULT_CSS = """
    EventDetailScreen {
        align: center middle;
        & > #detail {
            width: 92%;
            height: 90%;
            max-width: 160;
            border: round $accent;
            border-title-color: $accent;
            border-subtitle-color: $text-muted;
            background: $surface;
            padding: 0 1;
        }
        #detail-title { height: 1; }
        #detail-summary { height: 1; color: $text-muted; margin-bottom: 1; }
        #detail-body { height: 1fr; scrollbar-gutter: stable; }
        #detail-json { width: 1fr; height: auto; }
    }
    """

    def __init__(self, event: SessionEvent, *, root: str | None = None) -> None:
        super().__init__()
        self.event = event
        self.root = root
        self.json_text = event_json(event)

    def compose(self) -> ComposeResult:
        with Vertical(id="detail") as panel:
            panel.border_title = "Event"
            panel.border_subtitle = "esc close · y copy JSON"
            yield Static(event_title(self.event), id="detail-title")
            summary = Text(event_summary(self.event, root=self.root), no_wrap=True, overflow="ellipsis", end="")
            yield Static(summary, id="detail-summary")
            with VerticalScroll(id="detail-body"):
                yield Static(self._body(), id="detail-json")

    def on_mount(self) -> None:
        self.query_one("#detail-body").focus()

    def _body(self) -> Syntax | Text:
        if len(self.json_text) > HIGHLIGHT_LIMIT:
            return Text(self.json_text, end="")
        dark = getattr(getattr(self.app, "current_theme", None), "dark", True)
        try:  # the panel's own colour rather than the syntax theme's
            background = self.app.get_css_variables().get("surface")
        except Exception:  # pragma: no cover - a theme without the variable
            background = None
        return Syntax(
            self.json_text,
            "json",
            theme="monokai" if dark else "default",
            word_wrap=True,
            background_color=background,
        )

    def action_close(self) -> None:
        self.dismiss(None)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.json_text)
        self.notify("Copied the event's JSON to the clipboard", title="Event")

    def on_click(self, event: events.Click) -> None:
        if event.widget is self:  # a click outside the panel
            self.dismiss(None)
