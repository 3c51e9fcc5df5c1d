"""``redact_gate``: the hook's re-free first look must never let a secret through to the spool.

Its promise: ``may_hold_secret(p)`` is False only when ``default_redactor().redact_payload(p) is p``.
Checked three ways: its tables are redact.py's (they are copies), its name logic equals
redact.py's on generated names, and on generated payloads a False answer means nothing to redact.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402
from test_redact import NOT_SECRETS, SECRET_VALUES, SECRETS, secret_stream  # noqa: E402

from agent_aggregator import redact, redact_gate  # noqa: E402

R = redact.Redactor()


def test_its_tables_are_redact_pys() -> None:
    """One copy: redact.py judges names and triggers with these very tables (a copy of its own
    could drift from the gate's). The AWS look is a regex there and a run length here."""
    assert redact_gate.PROTECTED_KEYS is redact.PROTECTED_KEYS
    assert redact_gate.STRONG_WORDS is redact._STRONG_WORDS
    assert redact_gate.WEAK_PARTS is redact._WEAK_PARTS
    assert redact_gate.DESCRIPTIVE_SUFFIXES is redact._DESCRIPTIVE_SUFFIXES
    assert redact_gate.TRIGGERS is redact._TRIGGERS
    assert redact._AWS_TRIGGER.pattern == "A[A-Z]{2}A[A-Z0-9]{16}"  # what AWS_RUN stands for
    assert redact_gate.AWS_RUN == 20


NAME_WORDS = sorted({*redact._STRONG_WORDS, *redact._WEAK_PARTS, *redact._DESCRIPTIVE_SUFFIXES,
                     *redact.PROTECTED_KEYS, "file", "tokens", "author", "Key", "API", "Token", "session",
                     "K\u212aEY", "\u0130d", "pAss", "PWD", "X"})
names = st.one_of(
    st.text(max_size=24),
    st.lists(st.one_of(st.sampled_from(NAME_WORDS), st.sampled_from(["_", "-", ".", " ", "__", "9", "é"])),
             max_size=5).map("".join),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names)
def test_names_are_judged_exactly_as_redact_judges_them(name: str) -> None:
    assert redact_gate.normalize_name(name) == redact.normalize_name(name)
    assert redact_gate.is_secret_name(name) == R.is_secret_name(name)


texts = st.lists(st.one_of(st.sampled_from([text for text, _, _ in SECRETS] + NOT_SECRETS + SECRET_VALUES
                                           + ["AKIA", "ZZZZZZZZZZZZZZZZ", "://", "@", "\u212a", "-u\t"]),
                           st.text(max_size=12)), max_size=6).map("".join)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_every_text_redact_would_look_at_is_flagged(text: str) -> None:
    if R._mentions(text):
        assert redact_gate.mentions(text)
    if not redact_gate.mentions(text):
        assert R.redact_text(text) == text


payloads = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(names, children, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(names, payloads, max_size=5))
def test_a_clean_verdict_means_redaction_changes_nothing(payload: dict) -> None:
    if not redact_gate.may_hold_secret(payload):
        assert R.redact_payload(payload) is payload


def test_every_secret_the_redact_tests_know_is_flagged() -> None:
    for text, _, _ in SECRETS:
        assert redact_gate.may_hold_secret({"tool_input": {"command": text}}), text
        assert redact_gate.may_hold_secret({text: "value"}), text  # a key is text redact looks at too
    for value in SECRET_VALUES:
        payload = {"prompt": value}
        assert redact_gate.may_hold_secret(payload) or R.redact_payload(payload) is payload, value
    stream = secret_stream("s")
    assert sum(R.redact_payload(payload) is not payload for payload in stream) >= 4
    for payload in stream:
        assert redact_gate.may_hold_secret(payload) or R.redact_payload(payload) is payload, payload
    # names only the payload walk catches (no trigger word in the text): the key itself is judged
    for key in ("session_key", "signingKey", "Master.Key", "pat", "dsn", "encryptionKey", "credentials"):
        assert R.redact_payload({key: "abc"}) != {key: "abc"}, key
        assert redact_gate.may_hold_secret({"tool_input": [{key: "abc"}]}), key


@pytest.mark.parametrize("payload", [
    {"prompt": "plain"}, {"list": [1, 2.5, None, True, {"a": ["b"]}]}, {}, {"file_path": "/x", "filePath": "/y"},
    {"usage": {"input_tokens": 3, "cache_read_input_tokens": 9}}, {"session_id": "sk-ant-" + "a" * 20},
])
def test_ordinary_payloads_are_clean(payload: dict) -> None:
    assert R.redact_payload(payload) is payload
    # session_id is protected, but its text is still looked at: the gate may say yes, never wrongly no
    if "session_id" not in payload:
        assert not redact_gate.may_hold_secret(payload)


def test_realistic_hook_streams_need_no_redaction_and_the_gate_knows_it() -> None:
    """The gate is only worth having if ordinary events pass it: every fixture event does."""
    for _, payload in fb.raw_hook_session():
        assert not redact_gate.may_hold_secret(payload), json.dumps(payload)[:200]
        assert R.redact_payload(payload) is payload


def test_deep_nesting_is_no_problem() -> None:
    deep: object = "AKIAZZZZZZZZZZZZZZZZ"
    for _ in range(5000):
        deep = [deep]
    assert redact_gate.may_hold_secret({"x": deep})
    assert not redact_gate.may_hold_secret({"x": [[[[[["fine"]]]]]]})
