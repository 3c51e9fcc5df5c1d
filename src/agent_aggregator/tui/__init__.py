"""``aggregate tui``: the full-screen live monitor and session browser.

The only package that imports textual. ``viewstate`` is plain Python (what the
panes show, unit-tested without a terminal); ``app`` owns the aggregator and
the refresh timer; ``screens`` and ``widgets`` render.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AggregateApp"]


def __getattr__(name: str) -> Any:  # lazy: importing tui.viewstate must not load textual
    if name == "AggregateApp":
        from .app import AggregateApp

        return AggregateApp
    raise AttributeError(name)
