"""Timestamps: one tolerant parser and one canonical format.

Every timestamp we store is ISO 8601 with a timezone (DESIGN section 4). Wire
formats disagree (``Z``, ``+00:00``, claude-mpm's malformed ``+00:00Z``, epoch
seconds or milliseconds, naive local times), so parsing is tolerant and never
raises; formatting is strict.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

UTC = timezone.utc

_DOUBLE_ZONE = re.compile(r"([+-]\d{2}:?\d{2})Z$")
_EPOCH_MS_THRESHOLD = 10_000_000_000  # larger numbers are milliseconds


def now_utc() -> datetime:
    """The current time, timezone-aware, so it compares with parsed timestamps."""
    return datetime.now(UTC)


def parse_timestamp(value: Any) -> datetime | None:
    """Parse any timestamp we have seen on the wire; None when it is not one.

    Naive datetimes are taken as UTC: hook payloads that omit the zone are
    produced by ``datetime.utcnow()``-style code far more often than not.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        return None
    cached = _PARSED.get(value)
    if cached is not None:
        return cached
    parsed = _parse_text(value)
    if parsed is not None:
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.clear()
        _PARSED[value] = parsed
    return parsed


def parse_saved_time(value: Any) -> datetime | None:
    """``parse_timestamp`` with a fast path for what we write (ISO 8601 with a zone): the strict
    parser, uncached, is several times faster on the thousands of times a listing or a load reads."""
    if type(value) is str and value[4:5] == "-":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    return parse_timestamp(value)


# Text -> parsed: one event's timestamp is parsed by normalize, the session and the tracker
# (about 2.5 times per event on live ingest); datetimes are immutable, so the result is shared.
_PARSED: dict[str, datetime] = {}
_PARSED_LIMIT = 4096


def _parse_text(value: str) -> datetime | None:
    text = value.strip()
    if not text:
        return None
    # "YYYY-..." can never be a number: skip the float() attempt for the usual ISO text.
    if not (text[4:5] == "-" and text[:4].isdigit()) and _looks_numeric(text):
        return _from_epoch(float(text))
    if text[-1:] == "Z":
        text = _DOUBLE_ZONE.sub(r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = _parse_loose(text)
        if parsed is None:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC, the one form we write: stored times then sort as text."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC).isoformat()
    return moment.astimezone(UTC).isoformat()


def normalize_timestamp(value: Any, default: datetime | None = None) -> str:
    """Canonical ISO string for any wire timestamp, or ``default`` (now) when unusable."""
    parsed = parse_timestamp(value)
    if parsed is None:
        parsed = default or now_utc()
    return format_timestamp(parsed)


def milliseconds_between(start: datetime, end: datetime) -> int:
    """Whole milliseconds from start to end, never negative."""
    return max(0, int((end - start) / timedelta(milliseconds=1)))


def format_duration(milliseconds: int | float | None) -> str:
    """A compact human duration as the usage guide prints it: ``3m 25s``."""
    if milliseconds is None:
        return "-"
    seconds = int(milliseconds // 1000)
    if seconds < 60:
        if milliseconds < 1000:
            return f"{int(milliseconds)}ms"
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _from_epoch(number: float) -> datetime | None:
    if number != number or number < 0:  # NaN or before 1970
        return None
    for _ in range(3):  # milliseconds, microseconds, nanoseconds since the epoch
        if number <= _EPOCH_MS_THRESHOLD:
            break
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


_LOOSE_FORMATS = (
    "%Y-%m-%d %H:%M:%S.%f %z",
    "%Y-%m-%d %H:%M:%S %z",
    "%Y/%m/%d %H:%M:%S",
    "%d/%b/%Y:%H:%M:%S %z",
    "%a, %d %b %Y %H:%M:%S %Z",
    "%a, %d %b %Y %H:%M:%S %z",
    "%a %b %d %H:%M:%S %Y",
)


def _parse_loose(text: str) -> datetime | None:
    for fmt in _LOOSE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None
