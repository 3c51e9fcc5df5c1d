"""The public exceptions, named as in the seeds' API reference.

``ConnectionError`` deliberately shadows the builtin inside this package's
namespace, as the seeds' examples import it from the aggregator module; it
still derives from the builtin so ``except ConnectionError`` written against
either name catches it.
"""

from __future__ import annotations

import builtins


class AggregatorError(Exception):
    """Base exception for aggregator errors."""


class ConnectionError(AggregatorError, builtins.ConnectionError):  # noqa: A001 - seeds' name
    """Unable to connect to the Socket.IO server."""


AggregatorConnectionError = ConnectionError


class SessionNotFoundError(AggregatorError, LookupError, ValueError):
    """Requested session does not exist (or a prefix matches none)."""


class AmbiguousSessionError(SessionNotFoundError):
    """A session id prefix matches more than one session."""

    def __init__(self, prefix: str, candidates: list[str]) -> None:
        self.prefix = prefix
        self.candidates = candidates
        super().__init__(
            f"session prefix {prefix!r} is ambiguous: matches {len(candidates)} sessions"
        )


class InvalidFormatError(AggregatorError, ValueError):
    """Invalid export format specified."""


class StoreError(AggregatorError):
    """The activity directory cannot be used (unwritable, locked, foreign)."""


class StoreLockedError(StoreError):
    """Another live aggregator holds the activity directory's writer lock."""


class ConfigError(AggregatorError):
    """The configuration file or an override is invalid."""


class RejectedEvent(AggregatorError):
    """A payload that cannot become a session event.

    ``kind`` is a short, stable reason used to count and log rejections once
    per kind instead of once per event; ``ignorable`` marks transport chatter
    (heartbeats, welcome messages) that is expected and not an error.
    """

    def __init__(self, kind: str, detail: str = "", *, ignorable: bool = False) -> None:
        self.kind = kind
        self.detail = detail
        self.ignorable = ignorable
        super().__init__(f"{kind}: {detail}" if detail else kind)
