"""The ``?`` help screen: every key of the app and of the screen below it.

Nothing here lists keys by hand. The rows come from the bindings the screen
below really has: its focus chain up to the app, resolved as Textual resolves
keys (keymap overrides applied, shadowed keys left out), plus the own keys of
its other widgets (which act once they have focus), shown by
``App.get_key_display`` as the footer shows them. So the help never drifts
from the real keys.

Grouping: a binding whose ``id`` starts with ``panes.``, ``timeline.``,
``sessions.`` or ``app.`` goes to that group; otherwise the node's
``BINDING_GROUP_TITLE``; otherwise App for the app's bindings, Panes for a
screen's, and Navigation for Textual's own widget keys (arrows, page keys).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable

from rich.table import Table
from rich.text import Text
from textual.actions import parse as parse_action
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Static, TextArea

from ...describe import one_line

__all__ = ["HelpScreen", "HelpRow", "GROUP_ORDER", "binding_group"]

GROUP_ORDER = ("Panes", "Timeline", "Sessions", "App")
NAVIGATION = "Navigation"
ID_PREFIXES = {
    "panes": "Panes",
    "pane": "Panes",
    "timeline": "Timeline",
    "sessions": "Sessions",
    "browser": "Sessions",
    "app": "App",
}


@dataclass(frozen=True)
class HelpRow:
    """One line of the help: the keys (as the footer shows them) and what they do."""

    keys: str
    description: str
    tooltip: str = ""


def _signature(binding: Binding) -> tuple[str, str]:
    return (binding.action, binding.description)


def _textual_bindings(node: DOMNode) -> set[tuple[str, str]]:
    """(action, description) of the bindings Textual's own classes give ``node``.

    Compared by value: a BindingsMap holds copies (split per key, keymap applied).
    """
    found: set[tuple[str, str]] = set()
    for cls in type(node).__mro__:
        if not cls.__module__.startswith("textual."):
            continue
        for item in cls.__dict__.get("BINDINGS", ()):
            if isinstance(item, Binding):
                found.add(_signature(item))
            elif isinstance(item, tuple) and len(item) >= 2:
                found.add((str(item[1]), str(item[2]) if len(item) > 2 else ""))
    return found


def binding_group(namespace: DOMNode, binding: Binding, builtin: bool = False) -> str:
    """The help group a binding belongs to (see the module docstring)."""
    if binding.id:
        prefix = binding.id.split(".", 1)[0].casefold()
        if "." in binding.id and prefix in ID_PREFIXES:
            return ID_PREFIXES[prefix]
    if isinstance(namespace, App):
        return "App"
    if builtin:
        return NAVIGATION
    title = getattr(namespace, "BINDING_GROUP_TITLE", None)
    if title:
        return str(title)
    if isinstance(namespace, Screen):
        return "Panes"
    return type(namespace).__name__


def _node_bindings(node: DOMNode) -> Iterable[tuple[str, Binding]]:
    """A node's bindings with the app's keymap applied, as they act when it has focus."""
    bindings = getattr(node, "_bindings", None)
    if bindings is None:
        return ()
    bindings = bindings.copy()
    keymap = getattr(node.app, "_keymap", None)
    if keymap:
        bindings.apply_keymap(keymap)
    return list(bindings)


def _focus_chain(app: App[Any], below: Screen[Any] | None) -> list[DOMNode]:
    """The nodes whose keys act on ``below``, in lookup order (as Textual looks keys up)."""
    if below is None:
        return [app]
    focused = below.focused
    if focused is None:
        return [below, app]
    return list(focused.ancestors_with_self)


def _disabled(node: DOMNode, binding: Binding) -> bool:
    """A binding the node's ``check_action`` turns off (False: hidden and inactive)."""
    try:
        name, parameters = parse_action(binding.action)[1:]
    except Exception:  # an action string Textual could not run either
        return False
    return node.check_action(name, parameters) is False


def collect_help(app: App[Any], below: Screen[Any] | None) -> list[tuple[str, list[HelpRow]]]:
    """(group, rows) for the screen ``below`` the help and the app, groups in GROUP_ORDER.

    The focus chain's keys are resolved as Textual does (the nearest node wins a
    key unless a farther one binds it with priority). A screen's or widget's
    ``check_action`` drops what it disables there; the app's is not consulted,
    since the help is on top and would disable, say, a quit key.
    """
    chain = _focus_chain(app, below)
    winners: dict[str, tuple[DOMNode, Binding]] = {}
    for node in chain:
        for key, binding in _node_bindings(node):
            current = winners.get(key)
            if current is None or (binding.priority and not current[1].priority):
                winners[key] = (node, binding)
    # Shadowed keys dropped, in lookup order (the same action may have won several keys).
    found: list[tuple[DOMNode, Binding]] = [
        (node, binding)
        for node in chain
        for key, binding in _node_bindings(node)
        if winners.get(key) == (node, binding)
    ]
    if below is not None:
        in_chain = {id(node) for node in chain}
        for node in below.walk_children():
            if id(node) in in_chain:
                continue
            builtin = _textual_bindings(node)
            for _key, binding in _node_bindings(node):
                if _signature(binding) not in builtin:  # its own keys; Textual's act only with focus
                    found.append((node, binding))

    # One row per action of a node, with all its keys.
    groups: dict[str, dict[tuple[int, str], list[Any]]] = {}
    builtin_cache: dict[int, set[tuple[str, str]]] = {}
    for node, binding in found:
        if binding.system or not binding.description:
            continue
        if not isinstance(node, App) and _disabled(node, binding):
            continue  # e.g. s and r inside a replay: list only what works on this screen
        if id(node) not in builtin_cache:
            builtin_cache[id(node)] = _textual_bindings(node)
        builtin = _signature(binding) in builtin_cache[id(node)] and not isinstance(node, App)
        if builtin and isinstance(node, (Input, TextArea)):
            continue  # text editing keys: not what the help is for
        rows = groups.setdefault(binding_group(node, binding, builtin), {})
        slot = rows.setdefault((id(node), binding.action), [[], binding])
        display = app.get_key_display(binding)
        if display not in slot[0]:
            slot[0].append(display)
        if binding.show and not slot[1].show:
            slot[1] = binding  # prefer the wording the footer shows

    def rank(name: str) -> tuple[int, str]:
        if name in GROUP_ORDER:
            return (GROUP_ORDER.index(name), "")
        if name == NAVIGATION:
            return (len(GROUP_ORDER) + 1, "")
        return (len(GROUP_ORDER), name)

    return [
        (
            group,
            [
                HelpRow(
                    keys=" / ".join(keys),
                    description=one_line(binding.description),
                    tooltip=one_line(binding.tooltip),
                )
                for keys, binding in groups[group].values()
            ],
        )
        for group in sorted(groups, key=rank)
    ]


class HelpScreen(ModalScreen[None]):
    """Keys of the app and the screen below, grouped; escape / ? / q closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="help.close", tooltip="Close the help."),
        Binding("question_mark", "close", "Close", show=False, id="help.close-question"),
        Binding("q", "close", "Close", show=False, id="help.close-q"),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen #help-box {
        width: 100;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $primary;
        border-title-align: center;
        border-subtitle-align: center;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen #help-scroll {
        height: auto;
        max-height: 100%;
    }
    HelpScreen .help-group {
        height: auto;
        margin: 0 0 1 0;
    }
    HelpScreen #help-about {
        height: auto;
        color: $text-muted;
    }
    """

    def __init__(
        self,
        save_dir: str | os.PathLike[str] | None = None,
        *,
        live_seconds: int = 60,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.save_dir = None if save_dir is None else one_line(os.fspath(save_dir))
        self.live_seconds = live_seconds
        self.sections: list[tuple[str, list[HelpRow]]] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box") as box:
            box.border_title = "Keys"
            yield VerticalScroll(id="help-scroll")

    def on_mount(self) -> None:
        self.sections = collect_help(self.app, self._screen_below())
        scroll = self.query_one("#help-scroll", VerticalScroll)
        widgets: list[Static] = [
            Static(self._group_table(group, rows), classes="help-group") for group, rows in self.sections
        ]
        widgets.append(Static(self._about(), id="help-about"))
        scroll.mount_all(widgets)
        scroll.focus()
        closers = [self.app.get_key_display(b) for _, b in _node_bindings(self) if b.action == "close"]
        self.query_one("#help-box").border_subtitle = " / ".join(dict.fromkeys(closers)) + " to close"

    def _screen_below(self) -> Screen[Any] | None:
        stack = self.app.screen_stack
        if self in stack:
            index = stack.index(self)
            return stack[index - 1] if index > 0 else None
        return stack[-1] if stack else None

    def _group_table(self, group: str, rows: list[HelpRow]) -> Table | Text:
        title = Text(group, style="bold underline")
        if group == NAVIGATION:  # Textual's own keys: one flowing paragraph
            text = Text.assemble(title, "\n")
            for index, row in enumerate(rows):
                if index:
                    text.append("  ·  ", style="dim")
                text.append(row.keys, style="bold")
                if row.description.lower() != row.keys.lower():  # "home home" says it once
                    text.append(" " + row.description.lower())
            return text
        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right", min_width=12, no_wrap=True)
        table.add_column(no_wrap=True, min_width=14)
        table.add_column(ratio=1, style="dim")
        table.title = title
        table.title_justify = "left"
        for row in rows:
            keys = Text(row.keys, style="bold")
            what = Text(row.description)
            tooltip = Text(row.tooltip if row.tooltip != row.description else "")
            table.add_row(keys, what, tooltip)
        return table

    def _about(self) -> Text:
        text = Text()
        text.append("● LIVE", style="bold green")
        text.append(
            f" marks a session that is still open and sent an event in the last {self.live_seconds} s. "
            "Other states: active (open, quiet), idle (open, but silent longer than the session timeout), "
            "completed, timed_out (closed by the timeout), recovered (rebuilt from its journal after a crash)."
        )
        if self.save_dir:
            text.append("\nSessions are saved in ")
            text.append(self.save_dir, style="bold")
            text.append(" (one JSON file each; ")
            text.append("aggregate sessions", style="bold")
            text.append(" shows them too).")
        return text

    def action_close(self) -> None:
        self.dismiss(None)
