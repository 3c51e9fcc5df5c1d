"""Pick the event categories the timeline shows."""

from __future__ import annotations

from typing import ClassVar, Iterable, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import SelectionList, Static
from textual.widgets.selection_list import Selection

from ...describe import one_line
from ...model import CATEGORIES
from ..widgets.timeline import category_style

NAME_WIDTH = 12


class CategoryFilterScreen(ModalScreen[frozenset[str] | None]):
    """A checklist of categories.

    Dismissed with the chosen set, or ``None`` when every category is chosen
    (no filter). Escape dismisses with the ``selected`` it was opened with, so
    the caller can always assign the result to ``Timeline.categories``.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "apply", "Apply", priority=True),
        Binding("escape", "cancel", "Cancel"),
        Binding("a", "select_all", "All"),
        Binding("n", "select_none", "None"),
    ]

    DEFAULT_CSS = """
    CategoryFilterScreen {
        align: center middle;
        & > #category-filter {
            width: 44;
            height: auto;
            border: round $accent;
            border-title-color: $accent;
            border-subtitle-color: $text-muted;
            background: $surface;
            padding: 0 1;
        }
        #categories { height: auto; max-height: 20; border: none; padding: 0; background: $surface; }
        #category-hint { color: $text-muted; margin-top: 1; }
    }
    """

    def __init__(
        self,
        selected: Iterable[str] | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.previous: frozenset[str] | None = None if selected is None else frozenset(selected)
        self.counts: dict[str, int] = dict(counts or {})
        extra = {*self.counts, *(self.previous or ())} - set(CATEGORIES)
        self.names: tuple[str, ...] = (*CATEGORIES, *sorted(extra))

    def compose(self) -> ComposeResult:
        with Vertical(id="category-filter") as panel:
            panel.border_title = "Categories"
            panel.border_subtitle = "enter apply · esc cancel"
            yield SelectionList[str](
                *(
                    Selection(self._label(name), name, self.previous is None or name in self.previous)
                    for name in self.names
                ),
                id="categories",
            )
            yield Static("space toggle · a all · n none", id="category-hint")

    def _label(self, name: str) -> Text:
        label = Text(no_wrap=True, end="")
        shown = one_line(name)
        label.append(shown.ljust(NAME_WIDTH), category_style(name))
        if self.counts:
            count = self.counts.get(name, 0)
            label.append(f"{count:>8,}", "" if count else "dim")
        return label

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    @property
    def selection(self) -> frozenset[str]:
        return frozenset(self.query_one("#categories", SelectionList).selected)

    def action_apply(self) -> None:
        chosen = self.selection
        if not chosen:
            self.notify("Choose at least one category (a selects all)", severity="warning")
            return
        self.dismiss(None if chosen >= set(self.names) else chosen)

    def action_cancel(self) -> None:
        self.dismiss(self.previous)

    def action_select_all(self) -> None:
        self.query_one("#categories", SelectionList).select_all()

    def action_select_none(self) -> None:
        self.query_one("#categories", SelectionList).deselect_all()
