"""Secret redaction: API keys, tokens, passwords and credentials out of event payloads.

Users leave the aggregator running next to their code and secrets (issue 8):
a Bash command ``export GITHUB_TOKEN=ghp_...``, a Read of ``.env``, a prompt
with a pasted key. Whatever a payload carries is written to journals, session
files, exports and the hook spool, so it is redacted once, before anything is
written (``EventAggregator.handle_event`` / ``.ingest``; ``aggregate hook`` on
its spool path).

Pure: no I/O, only ``re`` and redact_gate's tables (the hook imports this lazily).
A redacted value becomes a visible marker ``[REDACTED:<rule>]``. Redaction is
idempotent (markers are left alone) and never touches the keys that identify
an event (``event_id``, ``timestamp``, ``session_id`` ...).

Speed: most events carry no secret. ``Redactor.redact_event`` first looks for
any trigger word in the whole payload (``_word_finder``: one RE2 pass over the
payload's JSON text), and for a secret-named key; only payloads with either are
walked leaf by leaf.
"""

from __future__ import annotations

import re

# The name tables and the text triggers live in redact_gate (no ``re`` there, so the hook can
# ask it cheaply first): one copy, shared by that check and the rules here.
from .redact_gate import DESCRIPTIVE_SUFFIXES as _DESCRIPTIVE_SUFFIXES  # names that describe a secret
from .redact_gate import PROTECTED_KEYS  # identify or order an event: never redacted
from .redact_gate import RedactionConfig  # the settings (config.py reads them without importing re)
from .redact_gate import STRONG_WORDS as _STRONG_WORDS  # a secret's name contains one
from .redact_gate import TRIGGERS as _TRIGGERS  # the cheap first look's words
from .redact_gate import WEAK_PARTS as _WEAK_PARTS  # ... or has one as a whole ``_`` part ("tokens" does not)
from .redact_gate import holds_trigger_word  # the trigger words, one substring search each
from .redact_gate import normal_name_is_secret  # the verdict on a normalized name, from those tables

TYPE_CHECKING = False  # typing/dataclasses are not imported at run time: `aggregate hook` imports this
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Iterable

MARKER = "[REDACTED:{}]"
_MARKER = re.compile(r"\[REDACTED:[A-Za-z0-9_]+\]")

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


def normalize_name(name: str) -> str:
    """``apiKey`` / ``X-Api-Key`` / ``API_KEY`` -> ``api_key`` (how names are compared)."""
    return _SEPARATORS.sub("_", _CAMEL.sub("_", name).lower()).strip("_")


# --- text rules ---------------------------------------------------------------------------
# (rule name, pattern). The secret is the group named ``s`` when there is one, else the
# whole match; only that span is replaced, so "Authorization: Bearer " stays readable.

# A name holding one of these words (the replacement then asks is_secret_name). The lookahead
# finds the word, then the name is taken greedily: one pass per name, never the quadratic
# lazy-then-greedy backtracking a run like "token_token_token..." would cost.
_SECRET_NAME = (
    r"(?=[A-Za-z0-9_.-]*?(?i:pass|pwd|secret|token|api[-_]?key|apikey|access[-_]?key|private[-_]?key|privatekey"
    r"|auth|cookie|credential|signing[-_]?key|encryption[-_]?key|master[-_]?key|dsn|_pat(?![a-z])))[A-Za-z0-9_.-]+"
)

_RULES: tuple[tuple[str, str], ...] = (
    ("private_key",
     r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"),
    ("anthropic_key", r"(?<![A-Za-z0-9_-])sk-ant-[A-Za-z0-9_-]{8,}"),
    ("openai_key", r"(?<![A-Za-z0-9_-])sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}"),
    ("stripe_key", r"(?<![A-Za-z0-9_])[sr]k_(?:live|test)_[A-Za-z0-9]{10,}"),
    ("github_token", r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    ("aws_access_key",
     r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16}(?![A-Z0-9])"),
    ("slack_token", r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}"),
    ("google_api_key", r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}"),
    ("jwt", r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}"),
    ("authorization",
     r"(?i)\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
     r"(?:(?:bearer|basic|token|digest|negotiate|aws4-hmac-sha256)\s+)?(?P<s>[^\s\"',;]+)"),
    ("bearer", r"(?i)\bbearer\s+(?P<s>(?=[A-Za-z0-9._~+/-]{12,})[A-Za-z0-9._~+/-]+=*)"),
    ("url_password", r"(?i)\b[a-z][a-z0-9+.-]*://[^\s/:@'\"<>\[\]]+:(?P<s>[^\s/@'\"<>]+)@"),
    ("cli_user_password", r"(?<![\w-])(?:-u|--user)(?:=|\s+)[\"']?[^\s:\"']+:(?P<s>[^\s\"']+)"),
    ("cli_option",
     r"(?i)(?<![\w-])--?(?P<n>" + _SECRET_NAME + r")(?:=|\s+)(?P<s>\[REDACTED:\w+\]|\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'-][^\s;&|]*)"),
    ("assignment",
     r"(?<![A-Za-z0-9_.-])(?P<q>[\"']?)(?P<n>(?i:" + _SECRET_NAME + r"))(?P=q)[^\S\n]*(?P<op>:|=)(?![=:/])[^\S\n]*"
     r"(?P<s>\[REDACTED:\w+\]|\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[^\s\"',;&|)}\]]+)"),
)

# Cheap first look, besides the trigger words (redact_gate.TRIGGERS): an AWS access key id's shape.
_AWS_TRIGGER = re.compile(r"A[A-Z]{2}A[A-Z0-9]{16}")

_TYPE_NAMES = frozenset(
    {"str", "int", "bool", "bytes", "float", "none", "optional", "any", "dict", "list", "tuple", "path",
     "string", "boolean", "number", "object", "true", "false", "null", "undefined", "nil",
     # an Authorization header's scheme: the "authorization" rule redacts the credential after it
     "bearer", "basic", "digest", "negotiate", "aws4-hmac-sha256"}
)
_CODE_VALUE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[.(\[].*)?\Z|\$.*|<[^>]*>\Z|\*+\Z")


class _Rule:
    __slots__ = ("name", "regex", "group", "named")

    def __init__(self, name: str, regex: re.Pattern[str], group: str | int = 0, named: bool = False) -> None:
        self.name = name
        self.regex = regex
        self.group = group
        self.named = named


class Redactor:
    """Compiled rules for one configuration; ``redact_*`` are pure functions of their input."""

    def __init__(self, config: RedactionConfig | None = None) -> None:
        self.config = config if config is not None else RedactionConfig()
        self._rules: list[_Rule] = []
        for name, pattern in _RULES:
            regex = re.compile(pattern)
            self._rules.append(_Rule(name, regex, "s" if "s" in regex.groupindex else 0, "n" in regex.groupindex))
        custom: list[str] = []
        for pattern in self.config.patterns:
            regex = re.compile(pattern)
            group: str | int = "s" if "s" in regex.groupindex else (1 if regex.groups else 0)
            self._rules.append(_Rule("custom", regex, group))
            custom.append(f"(?:{pattern})")
        self._custom_trigger = re.compile("|".join(custom)) if custom else None
        self._extra_keys = frozenset(normalize_name(key) for key in self.config.keys)
        self._triggers = _TRIGGERS + tuple((key.lower(), ()) for key in self.config.keys)
        # The substring searches first; RE2 once this redactor has looked at enough text to repay
        # importing it (~5 ms): the hook, which looks at one payload, never imports it.
        self._plain_words = _word_searches(self._triggers)
        self._trigger_words: Callable[[str], bool] = self._words_before_re2
        self._looked_at = 0
        if self._extra_keys:
            names = "|".join(re.escape(key) for key in self.config.keys)
            self._rules.append(_Rule(
                "assignment",
                re.compile(r"(?<![A-Za-z0-9_.-])(?P<q>[\"']?)(?P<n>(?i:" + names + r"))(?P=q)[^\S\n]*(?P<op>:|=)"
                           r"(?![=:/])[^\S\n]*(?P<s>\[REDACTED:\w+\]|\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[^\s\"',;&|)}\]]+)"),
                "s", True))
        self._allow = [re.compile(pattern) for pattern in self.config.allow]
        self._name_cache: dict[str, bool] = {}

    # -- names ------------------------------------------------------------------------

    def is_secret_name(self, name: str) -> bool:
        """Whether a dict key / variable / option called ``name`` holds a secret."""
        cached = self._name_cache.get(name)
        if cached is not None:
            return cached
        result = self._judge_name(name)
        if len(self._name_cache) < 4096:
            self._name_cache[name] = result
        return result

    def _judge_name(self, name: str) -> bool:
        if name in PROTECTED_KEYS or self._allowed(name):
            return False
        normal = normalize_name(name)
        if not normal:
            return False
        return normal in self._extra_keys or normal_name_is_secret(normal)

    def _allowed(self, text: str) -> bool:
        return any(regex.fullmatch(text) for regex in self._allow)

    # -- text -------------------------------------------------------------------------

    def redact_text(self, text: str) -> str:
        """``text`` with every secret the rules find replaced by a marker."""
        if not self.config.enabled or not self._mentions(text):
            return text
        for _ in range(8):  # a marker can expose a neighbour to a rule that ran before it: until stable
            before = text
            for rule in self._rules:
                if rule.regex.search(text) is None:
                    continue
                text = rule.regex.sub(lambda match, rule=rule: self._replace(rule, match), text)
            if text == before:
                break
        return text

    def _replace(self, rule: _Rule, match: re.Match[str]) -> str:
        whole = match.group(0)
        try:
            start, end = match.span(rule.group)
        except IndexError:
            start, end = match.span(0)
        if start < 0:
            return whole
        secret = match.string[start:end]
        bare = secret[1:-1] if len(secret) >= 2 and secret[0] == secret[-1] and secret[0] in "\"'" else secret
        if not bare or _MARKER.fullmatch(bare) or self._allowed(bare):
            return whole
        if rule.named:
            name = match.group("n")
            if not self.is_secret_name(name):
                return whole
            if rule.name == "assignment" and bare is secret and _looks_like_code(name, bare):
                return whole
        if bare is not secret:  # keep the quotes: "[REDACTED:...]"
            start, end = start + 1, end - 1
        offset = match.start(0)
        return whole[: start - offset] + MARKER.format(rule.name) + whole[end - offset:]

    def _words_before_re2(self, lowered: str) -> bool:
        self._looked_at += len(lowered)
        if self._looked_at >= RE2_AFTER_CHARS:
            self._trigger_words = _word_finder(self._triggers)
        return self._plain_words(lowered)

    def _mentions(self, text: str) -> bool:
        """The cheap first look: whether ``text`` contains anything a rule could match."""
        if self._trigger_words(text.lower()):
            return True
        if "://" in text and "@" in text:
            return True
        if _AWS_TRIGGER.search(text) is not None:
            return True
        return self._custom_trigger is not None and self._custom_trigger.search(text) is not None

    # -- payloads ---------------------------------------------------------------------

    def might_contain_secret(self, blob: str) -> bool:
        """The cheap first look, for callers that already hold the payload as text (JSON)."""
        return self.config.enabled and self._mentions(blob)

    def redact_payload(self, value: Any) -> Any:
        """A copy of a JSON-like value with secrets redacted; ``value`` itself when nothing
        changed (containers are copied only along changed paths; the input is never mutated)."""
        if not self.config.enabled:
            return value
        return self._walk(value, False)

    def _walk(self, value: Any, secret: bool) -> Any:
        if isinstance(value, str):
            if secret and value and not _MARKER.fullmatch(value) and not self._allowed(value):
                return MARKER.format("secret_field")
            return self.redact_text(value)
        if isinstance(value, dict):
            changed: dict[Any, Any] | None = None
            for key, item in value.items():
                key_secret = secret or (isinstance(key, str) and self.is_secret_name(key))
                protected = key in PROTECTED_KEYS and isinstance(item, str) and not secret
                new_item = item if protected else self._walk(item, key_secret)
                new_key = self.redact_text(key) if isinstance(key, str) and key not in PROTECTED_KEYS else key
                if new_item is not item or new_key is not key:
                    if changed is None:
                        changed = {}
                        for earlier_key, earlier in value.items():
                            if earlier_key is key:
                                break
                            changed[earlier_key] = earlier
                    changed[new_key] = new_item
                elif changed is not None:
                    changed[key] = item
            return value if changed is None else changed
        if isinstance(value, (list, tuple)):
            items = [self._walk(item, secret) for item in value]
            if all(new is old for new, old in zip(items, value)):
                return value
            return items if isinstance(value, list) else tuple(items)
        return value

    def redact_event(self, event: Any) -> Any:
        """A ``SessionEvent`` with its ``data`` redacted (the same object when nothing changed).

        The identity fields (id, time, type, session) are never touched.
        """
        if not self.config.enabled:
            return event
        data = event.data
        if not self._payload_triggers(data) and not self._has_secret_key(data):
            return event
        redacted = self.redact_payload(data)
        if redacted is data:
            return event
        from dataclasses import replace  # SessionEvent is a dataclass; no import of model here

        return replace(event, data=redacted)

    def _has_secret_key(self, value: Any) -> bool:
        """Whether any dict key in ``value`` names a secret: the text triggers look for values,
        and a key such as ``session_key`` or ``signingKey`` holds no trigger word of its own.
        Keys repeat from event to event, so ``is_secret_name``'s cache answers most of them."""
        if isinstance(value, dict):
            known = self._name_cache
            for key, item in value.items():
                secret = known.get(key) if isinstance(key, str) else False
                if secret is None:
                    secret = self.is_secret_name(key)
                if secret:
                    return True
                if isinstance(item, (dict, list)) and self._has_secret_key(item):
                    return True
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, (dict, list)) and self._has_secret_key(item):
                    return True
        return False

    def _payload_triggers(self, data: Any) -> bool:
        try:
            import orjson

            blob = orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
        except Exception:  # noqa: BLE001 - odd content: walk it instead
            return True
        return self._mentions(blob)


def _word_finder(triggers: tuple[tuple[str, tuple[str, ...]], ...]) -> Callable[[str], bool]:
    """Whether lowered text holds a trigger word: ``base`` and one of its ``forms`` (every form
    contains its base), or ``base`` alone when it has no forms.

    Why RE2: the words are ~60 literals, and the same question as 17 substring searches
    took ~20 µs per 1 KB payload, the largest cost of live ingest after decoding. RE2
    (google-re2) answers it in one linear pass, ~6 µs. Without it (a platform it has no
    wheel for), or for text RE2 refuses (lone surrogates), the searches run as before.
    """

    searches = _word_searches(triggers)
    try:
        import re2
    except ImportError:
        return searches
    words = sorted({word for base, forms in triggers for word in (forms or (base,))})
    pattern = re2.compile("|".join(re.escape(word) for word in words))
    search = pattern.search

    def one_pass(lowered: str) -> bool:
        try:
            return search(lowered) is not None
        except Exception:  # noqa: BLE001 - text RE2 cannot take: the plain searches decide
            return searches(lowered)

    return one_pass


def _word_searches(triggers: tuple[tuple[str, tuple[str, ...]], ...]) -> Callable[[str], bool]:
    """``_word_finder``'s question as one substring search per word (no RE2)."""

    def searches(lowered: str) -> bool:
        return holds_trigger_word(lowered, triggers)

    return searches


def _looks_like_code(name: str, value: str) -> bool:
    """``password: str`` / ``token = self._token`` / ``key=$KEY`` in source or shell: not a literal
    secret. Only for lower/mixed-case names: ``API_KEY=...`` is an environment assignment."""
    if value.lower() in _TYPE_NAMES:
        return True
    if name.isupper():
        return value.startswith("$")
    return _CODE_VALUE.match(value) is not None and (value.startswith("$") or any(c in value for c in ".([<*"))


RE2_AFTER_CHARS = 256 * 1024  # text a redactor looks at before it imports RE2 (see Redactor.__init__)

_DEFAULT: Redactor | None = None


def default_redactor() -> Redactor:
    """The built-in rules (the hook's spool path, logs): compiled once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Redactor()
    return _DEFAULT


def redactor_for(config: RedactionConfig | None) -> Redactor:
    """A Redactor for a configuration (the shared default one when it is the default)."""
    if config is None or config == RedactionConfig():
        return default_redactor()
    return Redactor(config)


def validate_patterns(patterns: Iterable[Any], what: str) -> tuple[str, ...]:
    """The patterns as a tuple of strings; ValueError naming the first that is not a valid regex."""
    checked: list[str] = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"{what}: expected a list of non-empty regex strings, got {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{what}: invalid regex {pattern!r}: {error}") from None
        checked.append(pattern)
    return tuple(checked)


__all__ = [
    "MARKER",
    "PROTECTED_KEYS",
    "RedactionConfig",
    "Redactor",
    "default_redactor",
    "normalize_name",
    "redactor_for",
    "validate_patterns",
]
