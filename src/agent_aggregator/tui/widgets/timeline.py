"""The event timeline: a virtual list of one session's events.

``Timeline`` is a Line API widget (``ScrollView`` + ``render_line``), in the
manner of toolong's ``LogLines``: it holds a reference to the session's own
event list, a list of the row -> event indices that match the filter, and an
LRU cache of rendered lines. Nothing is formatted until a line is painted, so
showing a 100,000-event session costs what the visible rows cost.

Every piece of payload text goes through ``describe.one_line`` (via
``event_summary``) and into ``rich.text.Text`` objects: it is never parsed as
markup and control characters never reach the terminal.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime, timezone
from time import perf_counter
from typing import Any, ClassVar, Iterable, Sequence

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollTo, ScrollUp
from textual.strip import Strip

from ...describe import cell_len, event_summary, one_line, truncate
from ...model import SessionEvent
from ...timeutil import parse_timestamp

# One fixed colour per category (readable on dark and light themes).
CATEGORY_STYLES: dict[str, str] = {
    "prompt": "bold #4aa8ff",
    "delegation": "#c678dd",
    "tool": "#e0a030",
    "file": "#4fb860",
    "todo": "#d7875f",
    "response": "#20b0b0",
    "memory": "#e060a0",
    "meta": "#8a8f98",
}
_FALLBACK_CATEGORY_STYLE = CATEGORY_STYLES["meta"]

TIME_WIDTH = 12  # HH:MM:SS.mmm
CATEGORY_WIDTH = 10  # "delegation"
NO_TIME = "--:--:--.---"
# Filtering a long session is done in slices of this many seconds, with a
# repaint between slices, so the UI keeps answering keys while it runs.
SCAN_SLICE = 0.02


def category_style(category: str) -> Style:
    """The colour a category is shown in (unknown categories look like meta)."""
    return _CATEGORY_RICH_STYLES.get(category) or Style.parse(_FALLBACK_CATEGORY_STYLE)


_CATEGORY_RICH_STYLES = {name: Style.parse(spec) for name, spec in CATEGORY_STYLES.items()}


def local_clock(timestamp: Any) -> str:
    """``HH:MM:SS.mmm`` in local time (the ``TZ`` environment decides), or dashes."""
    moment: datetime | None = None
    if isinstance(timestamp, str) and len(timestamp) >= 19 and timestamp[10] in "T ":
        try:  # the stored form; parse_timestamp handles every other one
            moment = datetime.fromisoformat(timestamp)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
    if moment is None:
        moment = parse_timestamp(timestamp)
        if moment is None:
            return NO_TIME
    try:
        local = moment.astimezone()
    except (OverflowError, OSError, ValueError):
        return NO_TIME
    return "%02d:%02d:%02d.%03d" % (local.hour, local.minute, local.second, local.microsecond // 1000)


def event_agent(event: SessionEvent) -> str:
    """Who did it: the delegation the event was attributed to, else its own agent."""
    data = event.data if isinstance(event.data, dict) else {}
    for value in (data.get("attributed_to"), data.get("agent_type"), event.agent_id, data.get("agent_id")):
        text = one_line(value)
        if text:
            return text
    return ""


def _layout(width: int) -> tuple[int, int, int, int]:
    """Column widths (time, category, event type, agent) for a line ``width`` wide;
    the summary takes what is left. Narrow panes drop agent, then type, then category."""
    if width >= 110:
        return TIME_WIDTH, CATEGORY_WIDTH, 18, 18
    if width >= 90:
        return TIME_WIDTH, CATEGORY_WIDTH, 17, 14
    if width >= 70:
        return TIME_WIDTH, CATEGORY_WIDTH, 16, 0
    if width >= 50:
        return TIME_WIDTH, CATEGORY_WIDTH, 0, 0
    if width >= 30:
        return TIME_WIDTH, 0, 0, 0
    return 0, 0, 0, 0


def _fit(text: str, width: int) -> str:
    """``text`` cut (with "…") or padded to exactly ``width`` columns."""
    text = truncate(text, width)
    return text + " " * (width - cell_len(text))


class Timeline(ScrollView, can_focus=True, inherit_bindings=False):
    """One session's events, one line each, filtered by category and text.

    The widget never copies or formats the whole event list: ``show`` keeps a
    reference, ``sync`` looks only at events appended since the last call, and
    lines are formatted in ``render_line`` for the rows on screen.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last (follow)", show=False),
        Binding("enter", "choose", "Details", tooltip="Show the event's full data"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "timeline--cursor",
        "timeline--time",
        "timeline--type",
        "timeline--agent",
        "timeline--empty",
        "timeline--match",
    }

    DEFAULT_CSS = """
    Timeline {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-gutter: stable;
        & > .timeline--time { color: $text-muted; }
        & > .timeline--type { color: $foreground; }
        & > .timeline--agent { color: $text-secondary; }
        & > .timeline--empty { color: $text-muted; text-style: italic; }
        & > .timeline--match { background: $warning 40%; }
        & > .timeline--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .timeline--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """

    class Chosen(Message):
        """The user asked for an event's details (enter or double click)."""

        def __init__(self, event: SessionEvent, timeline: "Timeline | None" = None) -> None:
            self.event = event
            self.timeline = timeline
            super().__init__()

        @property
        def control(self) -> "Timeline | None":
            return self.timeline

    class FollowChanged(Message):
        """``Timeline.follow`` changed (by a key, a scroll or the program)."""

        def __init__(self, follow: bool, timeline: "Timeline | None" = None) -> None:
            self.follow = follow
            self.timeline = timeline
            super().__init__()

        @property
        def control(self) -> "Timeline | None":
            return self.timeline

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._events: Sequence[SessionEvent] = ()
        self._root: str | None = None
        self._total = 0  # len(self._events) at the last show/sync
        self._seen = 0  # events the filter has looked at (rows are final for these)
        self._rows: list[int] | None = None  # row -> event index; None: every event, in order
        self._target: int | None = None  # event the cursor goes back to once the filter reaches it
        self._scan_pending = False
        self._cursor = -1  # row of the highlighted event, -1 when there are no rows
        self._follow = False
        self._categories: frozenset[str] | None = None
        self._min_importance: int | None = None  # SSE events' rating (data.importance) at least this
        self._search = ""
        self._needle = ""  # the search, lower-cased
        self._haystack: list[str | None] = []  # event index -> lower-cased line text, on demand
        self._lines: LRUCache[tuple[int, int, bool], Strip] = LRUCache(maxsize=1024)
        self.format_count = 0  # lines formatted so far (tests and benchmarks read it)

    # --- public API ------------------------------------------------------------------

    def show(
        self,
        events: Sequence[SessionEvent],
        *,
        root: str | None = None,
        live: bool = False,
        keep_position: bool = False,
    ) -> None:
        """Show a session's own event list (kept by reference, never copied).

        ``root`` (the session's working directory) shortens file paths. ``live``
        turns follow on (cursor on the newest event); otherwise the cursor starts
        on the first event. Showing the list already shown is a ``sync``: the
        cursor, scroll position and follow state are kept. The category filter
        and search stay as they are. ``keep_position``: the same session in a new
        list (a saved session resumed live, a capture that changed hands): when the
        event under the cursor has the same place in it, follow, cursor and scroll
        position stay as they were (``live`` is then ignored).
        """
        kept: tuple[int, bool, float] | None = None
        if keep_position and events is not self._events:
            index = self._selected_index()
            if (index is not None and index < len(events) and events[index].event_id is not None
                    and events[index].event_id == self._events[index].event_id):
                kept = (index, self._follow, self.scroll_offset.y)
        root = one_line(root) or None
        if root != self._root:
            self._root = root
            self._haystack.clear()
            self._lines.clear()
            if events is self._events and self._needle:
                self._events = ()  # the summaries changed: filter again below
        if events is self._events:
            self.sync()
            return
        self._events = events
        self._total = len(events)
        self._seen = 0
        self._rows = None
        self._cursor = -1
        self._target = None
        self._haystack.clear()
        self._lines.clear()
        if kept is not None:
            index, follow, top = kept
            self._set_follow(follow)
            if not follow:
                self._target = index
            self._advance()
            if not follow and self.is_mounted:
                self.scroll_to(y=top, animate=False)
            return
        self._set_follow(live)
        if not live and self.is_mounted:
            self.scroll_to(y=0, animate=False)
        self._advance()

    def sync(self) -> int:
        """Take the events appended to the shown list since the last look.

        Returns how many there were (all of them, matching or not). Cheap when
        nothing changed; only new events are examined, and none is formatted.
        """
        total = len(self._events)
        if total == self._total:
            return 0
        if total < self._total:  # the list was cut or replaced in place: start over
            self._target = self._selected_index()
            self._seen = 0
            self._rows = None
            self._cursor = -1
            self._haystack.clear()
            self._lines.clear()
            added = total
        else:
            added = total - self._total
        self._total = total
        self._advance()
        return added

    @property
    def categories(self) -> frozenset[str] | None:
        """Categories shown; ``None`` shows all."""
        return self._categories

    @categories.setter
    def categories(self, value: Iterable[str] | None) -> None:
        chosen = None if value is None else frozenset(value)
        if chosen != self._categories:
            self._categories = chosen
            self._refilter()

    @property
    def min_importance(self) -> int | None:
        """Show only events rated at least this (``data.importance``, as ``aggregate view
        --min-importance``: unrated events are hidden too); ``None`` shows all."""
        return self._min_importance

    @min_importance.setter
    def min_importance(self, value: int | None) -> None:
        if value != self._min_importance:
            self._min_importance = value
            self._refilter()

    @property
    def search(self) -> str:
        """Case-insensitive text the line must contain ("" shows all)."""
        return self._search

    @search.setter
    def search(self, value: str) -> None:
        value = value or ""
        if value != self._search:
            self._search = value
            needle = one_line(value).lower()
            if needle != self._needle:
                self._needle = needle
                self._refilter()

    @property
    def follow(self) -> bool:
        """Stay on the newest event as events arrive."""
        return self._follow

    @follow.setter
    def follow(self, value: bool) -> None:
        self._set_follow(bool(value))
        if self._follow:
            self._target = None
            self._go_to_end()

    @property
    def selected(self) -> SessionEvent | None:
        """The event under the cursor."""
        index = self._selected_index()
        return None if index is None else self._events[index]

    @property
    def matching_count(self) -> int:
        """Events that pass the filter (the rows; still growing while ``filtering``)."""
        return self._seen if self._rows is None else len(self._rows)

    @property
    def total_count(self) -> int:
        """Events in the shown list (as of the last ``show``/``sync``)."""
        return self._total

    @property
    def filtering(self) -> bool:
        """True while a new filter is still being applied to a long session."""
        return self._seen < self._total

    @property
    def filter_active(self) -> bool:
        """A category filter or a search narrows the shown events."""
        return self._filter_active()

    def matching_events(self) -> list[SessionEvent]:
        """The events the filter matches, in order, as a new list (what an export of
        "the filtered events" writes). A filter still being applied is finished first."""
        if self.filtering:
            self._scan(None)
            self._advance()
        events = self._events
        if self._rows is None:
            return list(events[: self._total])
        return [events[index] for index in self._rows]

    @property
    def cursor_row(self) -> int:
        """Row of the cursor (-1 with no rows)."""
        return self._cursor

    def toggle_follow(self) -> None:
        self.follow = not self._follow

    def empty_message(self) -> str:
        """What the empty timeline says."""
        if not self._total:
            return "No events yet"
        if self.filtering:
            return "Searching…"
        parts = []
        if self._categories is not None:
            names = ", ".join(sorted(self._categories)) or "none"
            parts.append(f"category {names}")
        if self._min_importance is not None:
            parts.append(f"importance ≥ {self._min_importance}")
        if self._needle:
            parts.append(f'search "{one_line(self._search)}"')
        return f"No events match {' and '.join(parts)}" if parts else "No events"

    # --- rows -----------------------------------------------------------------------

    def _filter_active(self) -> bool:
        return self._categories is not None or bool(self._needle) or self._min_importance is not None

    def _matches(self, index: int) -> bool:
        event = self._events[index]
        if self._categories is not None and event.category not in self._categories:
            return False
        if self._min_importance is not None:
            rating = event.data.get("importance")
            if not isinstance(rating, (int, float)) or isinstance(rating, bool) or rating < self._min_importance:
                return False
        if self._needle:
            return self._needle in self._search_text(index)
        return True

    def _search_text(self, index: int) -> str:
        """The line's text, lower-cased, as search sees it (cached per event)."""
        haystack = self._haystack
        if index >= len(haystack):
            haystack.extend([None] * (index + 1 - len(haystack)))
        text = haystack[index]
        if text is None:
            event = self._events[index]
            text = " ".join(
                (
                    local_clock(event.timestamp),
                    one_line(event.category),
                    one_line(event.event_type),
                    event_summary(event, root=self._root),
                    event_agent(event),
                )
            ).lower()
            haystack[index] = text
        return text

    def _scan(self, budget: float | None) -> bool:
        """Run the filter over events not looked at yet, for about ``budget`` seconds
        (None: all of them). Returns True when every event has been looked at."""
        total = self._total
        if not self._filter_active():
            self._rows = None
            self._seen = total
            return True
        if self._rows is None:
            self._rows = []
        rows, matches = self._rows, self._matches
        index = self._seen
        deadline = None if budget is None else perf_counter() + budget
        while index < total:
            stop = min(total, index + 256)
            rows.extend(position for position in range(index, stop) if matches(position))
            index = stop
            if deadline is not None and perf_counter() >= deadline:
                break
        self._seen = index
        return index >= total

    def _advance(self) -> None:
        """Filter what is new (a slice at a time), then place the cursor and repaint."""
        done = self._scan(SCAN_SLICE if self.is_mounted else None)
        self._update_virtual_size()
        count = self.matching_count
        if self._follow:
            self._go_to_end()
        elif self._target is not None:
            row = self._row_near(self._target)
            if done or self._seen > self._target:
                self._target = None
                self._move_cursor(row, center=True)
            else:
                self._cursor = row
        elif self._cursor < 0 and count:
            self._cursor = 0
        self.refresh()
        if not done and not self._scan_pending:
            self._scan_pending = True
            self.call_after_refresh(self._continue_scan)

    def _continue_scan(self) -> None:
        self._scan_pending = False
        if self.filtering:
            self._advance()

    def _refilter(self) -> None:
        """The filter changed: rebuild the rows, keep the cursor on (or near) its event."""
        if self._target is None:
            self._target = self._selected_index()
        self._lines.clear()
        self._seen = 0
        self._rows = None
        self._cursor = -1
        self._advance()

    def _row_near(self, index: int | None) -> int:
        """The row showing event ``index``, else the next one after it (or the last)."""
        count = self.matching_count
        if not count:
            return -1
        if index is None:
            return 0
        if self._rows is None:
            return min(index, count - 1)
        return min(bisect_left(self._rows, index), count - 1)

    def _event_index(self, row: int) -> int:
        return row if self._rows is None else self._rows[row]

    def _selected_index(self) -> int | None:
        if 0 <= self._cursor < self.matching_count:
            return self._event_index(self._cursor)
        return None

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(0, self.matching_count)

    # --- follow and cursor ------------------------------------------------------------

    def _set_follow(self, value: bool) -> None:
        if value != self._follow:
            self._follow = value
            self.set_class(value, "-follow")
            if self.is_mounted:
                # Textual's anchor keeps the view at the bottom through every layout
                # (first paint, resize, growth) until follow is turned off.
                self.anchor(value)
            self.post_message(self.FollowChanged(value, self))

    def _go_to_end(self) -> None:
        count = self.matching_count
        self._move_cursor(count - 1 if count else -1)
        if self.is_mounted:
            self.anchor()

    def _move_cursor(self, row: int, *, center: bool = False) -> None:
        count = self.matching_count
        row = max(0, min(row, count - 1)) if count else -1
        old = self._cursor
        self._cursor = row
        if old != row:
            self._refresh_row(old)
            self._refresh_row(row)
        if not self._follow:  # following, the anchor keeps the newest row in view
            self._scroll_to_cursor(center=center)

    def _refresh_row(self, row: int) -> None:
        if row >= 0:
            self.refresh_line(row)

    def _scroll_to_cursor(self, center: bool = False) -> None:
        row = self._cursor
        if row < 0 or not self.is_mounted:
            return
        height = self.scrollable_content_region.height
        if height <= 0:
            return
        top = self.scroll_offset.y
        if top <= row < top + height:
            return
        if center:
            target = row - height // 2
        elif row < top:
            target = row
        else:
            target = row - height + 1
        self.scroll_to(y=max(0, target), animate=False)

    def _cursor_moved_by_user(self, row: int) -> None:
        """Move the cursor; moving off the newest event stops following."""
        count = self.matching_count
        row = max(0, min(row, count - 1))
        if self._follow and row < count - 1:
            self._set_follow(False)
        self._target = None
        self._move_cursor(row)

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def action_cursor_up(self) -> None:
        self._cursor_moved_by_user(self._cursor - 1)

    def action_cursor_down(self) -> None:
        self._cursor_moved_by_user(self._cursor + 1)

    def action_page_up(self) -> None:
        self._cursor_moved_by_user(self._cursor - self._page())

    def action_page_down(self) -> None:
        self._cursor_moved_by_user(self._cursor + self._page())

    def action_first(self) -> None:
        self._cursor_moved_by_user(0)

    def action_last(self) -> None:
        self.follow = True

    def action_toggle_follow(self) -> None:
        self.toggle_follow()

    def action_choose(self) -> None:
        event = self.selected
        if event is not None:
            self.post_message(self.Chosen(event, self))

    # --- mouse ------------------------------------------------------------------------

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        row = self.scroll_offset.y + offset.y
        if not 0 <= row < self.matching_count:
            return
        self._cursor_moved_by_user(row)
        if event.chain >= 2:
            self.action_choose()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if self._follow and self.max_scroll_y > 0 and not (event.ctrl or event.shift):
            self._set_follow(False)

    def on_scroll_up(self, message: ScrollUp) -> None:  # scrollbar track clicked above the thumb
        if self._follow:
            self._set_follow(False)

    def on_scroll_to(self, message: ScrollTo) -> None:  # scrollbar thumb dragged
        if self._follow and message.y is not None and message.y < self.max_scroll_y:
            self._set_follow(False)

    # --- painting ---------------------------------------------------------------------

    def on_mount(self) -> None:
        if self._follow:
            self._go_to_end()
        else:
            self._scroll_to_cursor()

    def on_resize(self, event: events.Resize) -> None:
        self._lines.clear()
        if self._follow:
            self._go_to_end()
        else:
            self._scroll_to_cursor()

    def on_focus(self) -> None:
        self._lines.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._lines.clear()
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        row = self.scroll_offset.y + y
        count = self.matching_count
        if row >= count or width <= 0:
            if count == 0 and y == 0 and width > 0:
                return self._empty_line(width, base)
            return Strip.blank(width, base)
        index = self._event_index(row)
        if index >= len(self._events):  # the list was cut since the last sync
            return Strip.blank(width, base)
        selected = row == self._cursor
        key = (index, width, selected)
        strip = self._lines.get(key)
        if strip is None:
            strip = self._format_line(self._events[index], width, selected, base)
            self._lines[key] = strip
        return strip

    def _empty_line(self, width: int, base: Style) -> Strip:
        text = Text(" " + self.empty_message(), style=base, no_wrap=True, end="")
        text.stylize(self.get_component_rich_style("timeline--empty", partial=True))
        text.truncate(width, overflow="ellipsis", pad=True)
        return Strip(text.render(self.app.console), width).adjust_cell_length(width, base)

    def _format_line(self, event: SessionEvent, width: int, selected: bool, base: Style) -> Strip:
        """One event as a line exactly ``width`` cells wide (the only place lines are built)."""
        self.format_count += 1
        time_w, cat_w, type_w, agent_w = _layout(width)
        gaps = sum(1 for column in (time_w, cat_w, type_w, agent_w) if column)
        summary_w = max(1, width - time_w - cat_w - type_w - agent_w - gaps)
        text = Text(style=base, no_wrap=True, end="")
        if time_w:
            text.append(_fit(local_clock(event.timestamp), time_w), self.get_component_rich_style("timeline--time", partial=True))
            text.append(" ")
        if cat_w:
            category = one_line(event.category)
            text.append(_fit(category, cat_w), category_style(category))
            text.append(" ")
        if type_w:
            text.append(_fit(one_line(event.event_type), type_w), self.get_component_rich_style("timeline--type", partial=True))
            text.append(" ")
        text.append(_fit(event_summary(event, summary_w, root=self._root), summary_w))
        if agent_w:
            text.append(" ")
            text.append(_fit(event_agent(event), agent_w), self.get_component_rich_style("timeline--agent", partial=True))
        if selected:
            text.stylize(self.get_component_rich_style("timeline--cursor"))
        if self._needle:
            text.highlight_words(
                [one_line(self._search)], self.get_component_rich_style("timeline--match"), case_sensitive=False
            )
        return Strip(text.render(self.app.console)).adjust_cell_length(width, base)
