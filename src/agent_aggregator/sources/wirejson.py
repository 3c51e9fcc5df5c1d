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

import re
from typing import Any

import orjson
from engineio import json as _default

# Encoding stays the libraries' own: orjson writes NaN and infinities as null, so a hub in
# the same process would have relayed (and a client emitted) other values than it was given.
dumps = _default.dumps


# orjson reads an integer past 64 bits as a float (18446744073709551616 -> 1.8446744073709552e+19)
# without an error: a text with 19 digits in a row, wherever they are, is decoded by the default.
_LONG_NUMBER = re.compile(r"[0-9]{19}")
_LONG_NUMBER_BYTES = re.compile(rb"[0-9]{19}")


def loads(text: str | bytes, **kwargs: Any) -> Any:
    pattern = _LONG_NUMBER_BYTES if isinstance(text, (bytes, bytearray)) else _LONG_NUMBER
    if pattern.search(text) is not None:
        return _default.loads(text, **kwargs)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _default.loads(text, **kwargs)
