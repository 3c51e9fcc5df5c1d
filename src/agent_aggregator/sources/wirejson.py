"""A ``json`` module stand-in for python-socketio / python-engineio packets, on orjson.

Every Socket.IO event the client receives is one JSON text to decode; the
standard library's decoder was about a tenth of live ingest's time per 1 KB
event, orjson's is several times faster. Anything orjson refuses to decode (NaN,
lone surrogates), and any text holding an integer orjson would read as a float, goes
to engineio's own module, so the results and errors are those the libraries give by
default. Encoding is left to engineio's module: orjson would turn NaN into null.

python-socketio sets this on its packet classes process-wide (``AsyncClient(json=...)``),
so a hub in the same process uses it too.
"""

from __future__ import annotations

from typing import Any

import orjson
from engineio import json as _default

# Encoding stays the libraries' own: orjson writes NaN and infinities as null, so a hub in
# the same process would have relayed (and a client emitted) other values than it was given.
dumps = _default.dumps


# orjson reads an integer past 64 bits as a float (18446744073709551616 -> 1.8446744073709552e+19)
# without an error: a text with 19 digits in a row, wherever they are, is decoded by the default.
# The look for such a run is a bytes.translate (digits -> "0", every other byte -> " ") and one
# substring search: about 1 µs per 1 KB event, where the regex [0-9]{19} took about 20.
LONG_RUN = 19
_DIGITS_TABLE = bytes(ord("0") if ord("0") <= byte <= ord("9") else ord(" ") for byte in range(256))
_LONG_RUN_NEEDLE = b"0" * LONG_RUN


def has_long_digit_run(text: str | bytes | bytearray) -> bool:
    """Whether ``text`` holds LONG_RUN or more ASCII digits in a row."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return _LONG_RUN_NEEDLE in data.translate(_DIGITS_TABLE)


def loads(text: str | bytes, **kwargs: Any) -> Any:
    if has_long_digit_run(text):
        return _default.loads(text, **kwargs)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _default.loads(text, **kwargs)
