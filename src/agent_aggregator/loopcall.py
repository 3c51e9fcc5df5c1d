"""Run a callback on an asyncio loop from whichever thread asks.

``stop()``-style methods are called from signal handlers, the TUI's thread and
tests alike; each needs the same dance (direct call on the loop's own thread,
``call_soon_threadsafe`` elsewhere, nothing once the loop has closed).
"""

from __future__ import annotations

import asyncio
from typing import Callable


def call_in_loop(loop: asyncio.AbstractEventLoop | None, callback: Callable[[], object]) -> None:
    """Call ``callback`` on ``loop`` now if we are on it, else schedule it there; a closed loop is a no-op."""
    if loop is None or loop.is_closed():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        callback()
        return
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:  # closed meanwhile
        pass
