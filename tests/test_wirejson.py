"""The Socket.IO JSON codec (sources/wirejson.py) is process-wide once a client exists: a hub
in the same process encodes and decodes with it too. It must give exactly what python-engineio's
own module gives, for every value the hostile corpus carries."""

from __future__ import annotations

import math

from engineio import json as engineio_json

from agent_aggregator.sources import wirejson

VALUES = [
    {"session_id": float("nan"), "x": float("inf"), "y": -float("inf")},
    {"big": 2**70, "neg": -(2**70), "lone": "\ud800", "nested": [1, 2.5, None, True, {"1": "a"}]},
    {"session_id": "s", "prompt": "caf\u00e9 \u2603 \U0001f600", "ctl": "\x00\x1f"},
]


def test_encoding_is_engineio_s_own_nan_and_infinities_included() -> None:
    for value in VALUES:
        assert wirejson.dumps(value) == engineio_json.dumps(value)
        assert wirejson.dumps(value, separators=(",", ":")) == engineio_json.dumps(value, separators=(",", ":"))


def test_decoding_gives_what_engineio_gives() -> None:
    for value in VALUES:
        text = engineio_json.dumps(value)
        ours, theirs = wirejson.loads(text), engineio_json.loads(text)
        assert repr(ours) == repr(theirs)  # repr: NaN != NaN
    assert math.isnan(wirejson.loads('{"a": NaN}')["a"])
    for number in ("18446744073709551616", "-9223372036854775809", "123456789012345678901234567890"):
        [value] = wirejson.loads(f"[{number}]")  # orjson alone gives a float here
        assert type(value) is int and value == int(number)
        assert wirejson.loads(f"[{number}]".encode()) == [int(number)]
    assert wirejson.loads('{"id": "12345678901234567890", "n": 1.5}') == {"id": "12345678901234567890", "n": 1.5}


def test_a_long_digit_run_is_found_wherever_it_is_and_only_then() -> None:
    assert wirejson.has_long_digit_run("x" * 500 + "1" * 19)
    assert wirejson.has_long_digit_run(b"1" * 19 + b"]")
    assert wirejson.has_long_digit_run(bytearray(b"[" + b"9" * 30 + b"]"))
    assert wirejson.has_long_digit_run("caf\u00e9 \ud800 " + "0" * 19)  # non-ASCII and a lone surrogate around it
    assert not wirejson.has_long_digit_run("1" * 18 + "a" + "1" * 18)
    assert not wirejson.has_long_digit_run("\u0661" * 30)  # Arabic-Indic digits are not JSON digits
    assert not wirejson.has_long_digit_run("")
