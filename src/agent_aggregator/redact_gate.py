"""Whether a payload could hold anything the built-in redaction rules would change, without ``re``.

``aggregate hook`` must redact an event before it spools it to disk, but importing
``redact`` (``re`` and ``enum`` come with it) and compiling its rules costs ~20 ms: more
than the whole rest of the hook. Most events hold no secret, so the hook asks this module
first and imports ``redact`` only when the answer is yes.

The answer is conservative by construction: ``may_hold_secret(value)`` is False only when
``default_redactor().redact_payload(value) is value``, i.e. the walk would change nothing:

* no dict key is a secret name (``Redactor.is_secret_name``, recomputed here exactly,
  ``normalize_name`` included, with plain string operations);
* no key or string value passes ``Redactor._mentions``, the rules' own cheap first look,
  done here once on all strings joined (a superset: every substring one string holds, the
  join holds too; the AWS-key look becomes "a run of 20 ``[A-Z0-9]``").

The name tables and the triggers below are redact.py's own (it imports them from here, so
there is one copy); tests/test_redact_gate.py checks on generated payloads that a False answer
always means "nothing to redact".
Only the default configuration is covered (no custom patterns, keys or allow-lists).

``RedactionConfig`` (the ``event_aggregator.redaction`` settings) lives here too: config.py
builds it on every command, and importing redact.py for it would cost ``re`` and the rules.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Iterable

# Shared with redact.py (PROTECTED_KEYS, _STRONG_WORDS, _WEAK_PARTS, _DESCRIPTIVE_SUFFIXES, _TRIGGERS).
PROTECTED_KEYS = frozenset(
    {"event_id", "timestamp", "session_id", "event_type", "hook_event_name", "type", "subtype",
     "correlation_id", "tool_use_id", "agent_id", "category"}
)
STRONG_WORDS = (
    "password", "passwd", "passphrase", "secret", "apikey", "api_key", "private_key", "privatekey",
    "access_key", "accesskey", "credential", "cookie", "authorization", "auth_token", "session_token",
    "session_key", "session_secret", "client_secret", "signing_key", "encryption_key", "master_key",
)
WEAK_PARTS = frozenset({"token", "auth", "pwd", "pass", "pat", "dsn"})
DESCRIPTIVE_SUFFIXES = frozenset(
    {"file", "path", "dir", "url", "uri", "type", "types", "count", "limit", "length", "len", "size", "name",
     "id", "env", "var", "prompt", "required", "enabled", "expires", "expiry", "field", "header", "hint",
     "mode", "kind", "used", "usage", "location", "endpoint", "method"}
)
TRIGGERS = (
    ("pass", ("passw", "passphrase", "pass=", "pass:", 'pass"', "pass'", "pass_", "_pass", "-pass")),
    ("token", ("token=", "token:", 'token"', "token'", "token_", "-token", "token ")),
    ("key", ("apikey", "api_key", "api-key", "access_key", "access-key", "accesskey", "master_key", "master-key",
             "private_key", "private-key", "privatekey", "signing_key", "signing-key", "encryption_key",
             "encryption-key", "secret_key")),
    ("-u", ("--user", "-u ", "-u\t")),
    ("sk", ("sk-", "sk_live_", "sk_test_")),  # not "sk_": "task_" is in most claude-mpm payloads
    ("gh", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "gh_pat")),
    ("pwd", ()), ("secret", ()), ("auth", ()), ("cookie", ()), ("credential", ()), ("bearer", ()), ("rk_", ()),
    ("xox", ()), ("eyj", ()), ("aiza", ()), ("-----begin", ()),
)
# redact._AWS_TRIGGER is A[A-Z]{2}A[A-Z0-9]{16}: 20 characters of [A-Z0-9] in a row, at least.
AWS_RUN = 20

_UPPER_OR_DIGIT = bytes(range(ord("0"), ord("9") + 1)) + bytes(range(ord("A"), ord("Z") + 1))
# bytes.translate table: [A-Z0-9] -> "A", every other byte -> " " (non-ASCII is "?" after encoding)
_RUN_TABLE = bytes(ord("A") if byte in _UPPER_OR_DIGIT else ord(" ") for byte in range(256))
_AWS_NEEDLE = b"A" * AWS_RUN
_SEPARATOR = "\x00"  # joins the strings: no trigger contains it, so none spans two strings


def may_hold_secret(value) -> bool:
    """False only when the default redactor would return ``value`` unchanged (see the module doc)."""
    texts: list = []
    stack = [value]
    while stack:  # iterative: a deeply nested payload must not hit the recursion limit here
        item = stack.pop()
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str):
                    if is_secret_name(key):
                        return True
                    texts.append(key)
                stack.append(child)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return mentions(_SEPARATOR.join(texts))


def mentions(text: str) -> bool:
    """``Redactor._mentions`` for the default configuration, without ``re``."""
    if holds_trigger_word(text.lower()):
        return True
    if "://" in text and "@" in text:
        return True
    return _AWS_NEEDLE in text.encode("ascii", "replace").translate(_RUN_TABLE)


def holds_trigger_word(lowered: str, triggers: tuple = TRIGGERS) -> bool:
    """Whether lowered text holds a trigger word: a base and one of its forms (each form contains
    its base, so the base is the cheap test first), or a base that has no forms."""
    for base, forms in triggers:
        if base in lowered and (not forms or any(form in lowered for form in forms)):
            return True
    return False


def is_secret_name(name: str) -> bool:
    """``Redactor.is_secret_name`` for the default configuration (no allow-list, no extra keys)."""
    if name in PROTECTED_KEYS:
        return False
    normal = normalize_name(name)
    return bool(normal) and normal_name_is_secret(normal)


def normal_name_is_secret(normal: str) -> bool:
    """The built-in verdict on a normalized (snake_case, lower) name: shared with redact.py."""
    parts = normal.split("_")
    if parts[-1] in DESCRIPTIVE_SUFFIXES:
        return False
    if any(word in normal for word in STRONG_WORDS):
        return True
    return any(part in WEAK_PARTS for part in parts)


def normalize_name(name: str) -> str:
    """``redact.normalize_name`` without ``re``: ``apiKey`` / ``X-Api-Key`` / ``API_KEY`` -> ``api_key``."""
    if name.isascii():  # nearly every key: C-speed string methods
        lowered = name.lower()
        if lowered != name:
            lowered = _split_camel(name).lower()
        return "_".join(part for part in lowered.translate(_ASCII_GAPS).split("_") if part)
    out: list = []
    gap = False
    for char in _split_camel(name).lower():  # runs of [^a-z0-9] -> "_", then strip("_")
        if "a" <= char <= "z" or "0" <= char <= "9":
            if gap and out:
                out.append("_")
            gap = False
            out.append(char)
        else:
            gap = True
    return "".join(out)


def _split_camel(name: str) -> str:
    """``(?<=[a-z0-9])(?=[A-Z])`` -> ``_``: ``refreshToken`` -> ``refresh_Token``."""
    split: list = []
    after_lower_or_digit = False
    for char in name:
        if after_lower_or_digit and "A" <= char <= "Z":
            split.append("_")
        split.append(char)
        after_lower_or_digit = "a" <= char <= "z" or "0" <= char <= "9"
    return "".join(split)


# str.translate table: every ASCII character but [a-z0-9] -> "_" (names are lowered first)
_ASCII_GAPS = {code: "_" for code in range(128) if not (chr(code).isdigit() or "a" <= chr(code) <= "z")}


class RedactionConfig:
    """``event_aggregator.redaction`` (validated by config.py). Immutable, compared by value.

    ``patterns``: extra regexes; the group named ``s`` (else group 1, else the whole
    match) is replaced with ``[REDACTED:custom]``. ``keys``: extra secret names (dict
    keys, ``KEY=value``). ``allow``: regexes; a value they match in full, or a name
    they match in full, is never redacted.
    """

    __slots__ = ("enabled", "patterns", "keys", "allow")

    def __init__(self, enabled: bool = True, patterns: Iterable[str] = (), keys: Iterable[str] = (),
                 allow: Iterable[str] = ()) -> None:
        object.__setattr__(self, "enabled", bool(enabled))
        object.__setattr__(self, "patterns", tuple(patterns))
        object.__setattr__(self, "keys", tuple(keys))
        object.__setattr__(self, "allow", tuple(allow))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("RedactionConfig is immutable")

    def _key(self) -> tuple:
        return (self.enabled, self.patterns, self.keys, self.allow)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RedactionConfig) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"RedactionConfig(enabled={self.enabled!r}, patterns={self.patterns!r}, keys={self.keys!r},"
                f" allow={self.allow!r})")
