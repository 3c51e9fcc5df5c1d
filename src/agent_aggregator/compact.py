"""Held events share what is equal: how a session stays under twice its JSON size (issue 7).

The live aggregator and the TUI hold every event of a session, 100,000 and
more. Decoded JSON costs more than its text: each string has a 49-byte header,
each dict a table of 16 or 24 bytes per slot. Three costs are not information
(measured in ``bench/store.py``):

* values repeated on every event of a session (``cwd``, ``transcript_path``,
  ``permission_mode``, tool and agent names): one string each, not one per
  event (``normalize`` interns them live; ``model.events_from_dicts`` on load);
* a PostToolUse repeats its PreToolUse's ``tool_input``, ``tool_use_id``,
  ``effort`` ...: the Post keeps the Pre's objects where they are equal;
* orjson presizes each decoded dict with 24-byte "general" slots, and a dict
  copy keeps the table it copies; a dict rebuilt from its items gets 16-byte
  slots for string keys and no room left by keys normalize removed.

Sharing is safe because nothing changes a held event's nested values in place:
normalize, the redactor and the tracker only replace top-level keys of ``data``
(the tracker already borrowed a Pre's ``tool_input`` for a Post without one).
Strings are immutable. Events stay equal (``to_dict``) to unshared ones.
"""

from __future__ import annotations

from typing import Any

# Loading looks at these keys of each event's data (about 0.1 us a lookup, so only the
# ones on most hook events); equal string values become one object.
LOAD_SHARED_KEYS = (
    "cwd", "transcript_path", "permission_mode", "prompt_id", "tool_name", "agent_type", "attributed_to",
)
# What loading compares of a PostToolUse with its PreToolUse (the tool_use_id is shared
# too); the live tracker compares every value (``share_with_pre``).
PAIRED_KEYS = ("tool_input", "effort")

POST_TOOL_EVENTS = frozenset({"PostToolUse", "PostToolUseFailure"})
_SHAREABLE = (str, dict, list)


def share_with_pre(post: dict[str, Any], pre: dict[str, Any]) -> None:
    """A Post's ``data`` takes its Pre's object for every top-level value equal to it.

    Only values are replaced, no key is added or removed, so assigning while
    iterating is safe and the key order (the saved file) does not change.
    """
    pre_get = pre.get
    for key, value in post.items():
        earlier = pre_get(key)
        if earlier is None or earlier is value or type(earlier) is not type(value) or type(value) not in _SHAREABLE:
            continue
        try:
            same = earlier == value
        except Exception:  # noqa: BLE001 - a foreign object's __eq__ (payloads handed in from Python)
            continue
        if same:
            post[key] = earlier


def compact(data: dict[str, Any]) -> dict[str, Any]:
    """The same items in a dict sized for them, with 16-byte slots when every key is a string.

    ``dict(d)`` and ``{**d}`` clone the source's table; only rebuilding from the
    items resizes it. About 0.7 us for 13 keys.
    """
    return dict(data.items())
