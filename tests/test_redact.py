"""Secret redaction (issue 8): the rules, the payload walk, configuration, and that no secret
reaches the disk through the aggregator (journal, snapshots, final files, exports, debug log)."""

from __future__ import annotations

import copy
import logging
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures_builder as fb  # noqa: E402

from agent_aggregator.aggregator import EventAggregator  # noqa: E402
from agent_aggregator.config import LOGGER_NAME, Config, load_config, setup_logging  # noqa: E402
from agent_aggregator.errors import ConfigError  # noqa: E402
from agent_aggregator.model import SessionEvent  # noqa: E402
from agent_aggregator.redact import RedactionConfig, Redactor, normalize_name  # noqa: E402

R = Redactor()

# (text, the secret in it, the rule that must catch it)
SECRETS = [
    ("export ANTHROPIC_API_KEY=sk-ant-api03-" + "x1Y2z3" * 8, "sk-ant-api03-", None),
    ("key: sk-ant-api03-AbCdEfGh12345678_-zz", "AbCdEfGh12345678", "anthropic_key"),
    ("client = OpenAI(api_key='sk-proj-" + "A1b2C3d4" * 6 + "')", "A1b2C3d4A1b2", None),
    ("sk-" + "Z9y8X7w6" * 6, "Z9y8X7w6Z9y8", "openai_key"),
    ("git clone https://ghp_" + "a1B2c3D4" * 5 + "@github.com/x/y", "a1B2c3D4a1B2", "github_token"),
    ("GH_TOKEN=github_pat_11ABCDEFG0" + "abcd1234" * 6, "abcd1234abcd", None),
    ("aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI", "assignment"),
    ("SLACK=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "AbCdEfGhIjKl", None),
    ("maps?key=AIzaSyA-1234567890abcdefghijklmnopqrstu", "AIzaSyA-1234567890", "google_api_key"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "dozjgNry", "jwt"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQUJDRA==\n-----END OPENSSH PRIVATE KEY-----",
     "b3BlbnNzaC1rZXkt", "private_key"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA (cut by a tool output limit", "MIIEowIBAAKCAQEA", "private_key"),
    ("curl -H 'Authorization: Bearer abcDEF123456789.xyz' https://api", "abcDEF123456789", "authorization"),
    ("curl -H \"authorization: Basic dXNlcjpwYXNzd29yZA==\" x", "dXNlcjpwYXNzd29yZA", "authorization"),
    ("requests.get(u, headers={'Authorization': 'token 0123456789abcdef0123'})", "0123456789abcdef0123", None),
    ("the Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi token", "eyJ0eXAiOiJKV1QiLCJhbGciOi", "bearer"),
    ("psql postgres://admin:S3cr3t!pw@db.internal:5432/app", "S3cr3t!pw", "url_password"),
    ("curl -u deploy:hunter2pass https://ci", "hunter2pass", "cli_user_password"),
    ("mysql --password=hunter2 -u root", "hunter2", "cli_option"),
    ("mysql --password hunter2 -u root", "hunter2", "cli_option"),
    ("tool --api-key 'abc def ghi' run", "abc def ghi", "cli_option"),
    ("export DB_PASSWORD=correcthorsebatterystaple", "correcthorsebatterystaple", "assignment"),
    ("PGPASSWORD='pa ss' psql", "pa ss", "assignment"),
    ('{"password": "hunter2", "user": "bob"}', "hunter2", "assignment"),
    ("db:\n  password: swordfish\n  host: localhost", "swordfish", "assignment"),
    ("Set-Cookie: sessionid=38afes7a8; HttpOnly", "38afes7a8", "assignment"),
    ("client_secret = \"d1e2f3a4b5\"", "d1e2f3a4b5", "assignment"),
    ("HF_TOKEN=hf_abcdefghijklmnop python train.py", "hf_abcdefghijklmnop", "assignment"),
]

# Text that looks close to a secret but is not one: must come out unchanged.
NOT_SECRETS = [
    "def login(password: str, token: str | None = None) -> bool:",
    "    token = self._token",
    "    password = os.environ['DB_PASSWORD']",
    "export API_KEY=$API_KEY_FROM_VAULT",
    "max_tokens=4096 input_tokens: 12 output_tokens: 7",
    "git log --author bob --since yesterday",
    "if token == '': return",
    "Read /home/dev/projects/inventory-api/src/auth/session.py",
    "session_id: 4f6c1e2a-8b3d-4a7e-9c15-2d8e6f0b7a31",
    "ask the task-runner to sk-ip this",
    "a basic understanding of the bearer of bad news",
    "https://example.com/path?q=1",
    "--token-file /home/me/.claude-mpm/aggregator.token",
    "Authorization: [REDACTED:authorization]",
]


@pytest.mark.parametrize(("text", "secret", "rule"), SECRETS)
def test_default_rules_catch_secrets(text: str, secret: str, rule: str | None) -> None:
    redacted = R.redact_text(text)
    assert secret not in redacted
    assert "[REDACTED:" in redacted
    if rule is not None:
        assert f"[REDACTED:{rule}]" in redacted
    assert R.redact_text(redacted) == redacted  # idempotent


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert R.redact_text(text) == text


def test_only_the_secret_is_replaced_so_the_command_stays_readable() -> None:
    assert R.redact_text("curl -H 'Authorization: Bearer abcDEF123456789' https://x") == \
        "curl -H 'Authorization: Bearer [REDACTED:authorization]' https://x"
    assert R.redact_text("psql postgres://bob:pw123456@db/x") == "psql postgres://bob:[REDACTED:url_password]@db/x"
    assert R.redact_text('PASSWORD="x y" ./run') == 'PASSWORD="[REDACTED:assignment]" ./run'


secret_pieces = st.sampled_from([text for text, _, _ in SECRETS] + NOT_SECRETS + ["[REDACTED:jwt]", "=", ":", " "])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(secret_pieces, st.text(max_size=20)), max_size=8))
def test_redaction_is_idempotent(pieces: list[str]) -> None:
    text = "".join(pieces)
    once = R.redact_text(text)
    assert R.redact_text(once) == once


# --- names and payloads --------------------------------------------------------------------


def test_secret_names() -> None:
    for name in ("password", "DB_PASSWORD", "apiKey", "X-Api-Key", "GITHUB_TOKEN", "access_token", "refreshToken",
                 "client_secret", "Authorization", "cookie", "AWS_SECRET_ACCESS_KEY", "private_key", "auth", "PGPASSWORD",
                 "credentials", "session_token"):
        assert R.is_secret_name(name), name
    for name in ("session_id", "input_tokens", "max_tokens", "author", "keyboard", "token_count", "tool_use_id",
                 "password_file", "token_url", "event_id", "timestamp", "transcript_path", "description"):
        assert not R.is_secret_name(name), name
    assert normalize_name("X-Api-Key") == "x_api_key" and normalize_name("refreshToken") == "refresh_token"


def test_payload_walk_redacts_secret_fields_and_leaves_the_rest() -> None:
    payload = {
        "session_id": "sess-1", "event_id": "e1", "timestamp": "2026-03-14T09:30:00+00:00",
        "hook_event_name": "PreToolUse", "tool_name": "Bash",
        "tool_input": {"command": "OPENAI_API_KEY=sk-" + "q" * 30 + " python x.py",
                       "env": {"GITHUB_TOKEN": "ghp_short", "HOME": "/home/dev"}},
        "headers": {"Authorization": "Bearer abc", "Accept": "*/*"},
        "usage": {"input_tokens": 12, "output_tokens": 5},
        "config": {"credentials": {"user": "bob", "pass": "x"}, "password": 1234},
        "cookies": ["a=1", "b=2"],
    }
    original = copy.deepcopy(payload)
    out = R.redact_payload(payload)
    assert payload == original  # never mutated
    assert out["tool_input"]["command"] == "OPENAI_API_KEY=[REDACTED:openai_key] python x.py"
    assert out["tool_input"]["env"] == {"GITHUB_TOKEN": "[REDACTED:secret_field]", "HOME": "/home/dev"}
    assert out["headers"] == {"Authorization": "[REDACTED:secret_field]", "Accept": "*/*"}
    assert out["usage"] == payload["usage"]
    assert out["config"]["credentials"] == {"user": "[REDACTED:secret_field]", "pass": "[REDACTED:secret_field]"}
    assert out["config"]["password"] == 1234  # numbers are counts far more often than secrets
    assert out["cookies"] == ["[REDACTED:secret_field]", "[REDACTED:secret_field]"]
    for key in ("session_id", "event_id", "timestamp", "hook_event_name", "tool_name"):
        assert out[key] == payload[key]
    assert R.redact_payload(out) == out
    clean = {"session_id": "s", "prompt": "hello", "list": [1, 2, {"a": "b"}]}
    assert R.redact_payload(clean) is clean  # nothing to do: no copy


def test_events_keep_their_identity() -> None:
    event = SessionEvent(timestamp="2026-03-14T09:30:00+00:00", event_type="UserPromptSubmit", category="prompt",
                         data={"prompt": "use sk-ant-api03-abcdefghijklmnop please"}, session_id="s1",
                         event_id="abc")
    out = R.redact_event(event)
    assert out.data["prompt"] == "use [REDACTED:anthropic_key] please"
    assert (out.event_id, out.timestamp, out.session_id, out.event_type) == ("abc", event.timestamp, "s1", event.event_type)
    assert event.data["prompt"].startswith("use sk-ant")  # the caller's event is not changed
    plain = SessionEvent(timestamp="t", event_type="Stop", category="response", data={"response": "ok"}, session_id="s")
    assert R.redact_event(plain) is plain


def test_events_and_payloads_agree_on_secret_key_names() -> None:
    """A key that names a secret without any trigger word in the text (``session_key``,
    ``signingKey``, ``pat``, ``dsn``) is redacted on the live path exactly as in a payload."""
    custom = Redactor(RedactionConfig(keys=["my_key"]))
    for redactor, key in [(R, "session_key"), (R, "signingKey"), (R, "masterKey"), (R, "pat"), (R, "dsn"),
                          (custom, "myKey")]:
        data = {"tool_response": {"items": [{key: "abc123"}]}}
        event = SessionEvent(timestamp="t", event_type="PostToolUse", category="tool", data=data, session_id="s")
        expected = redactor.redact_payload(data)
        assert expected["tool_response"]["items"][0][key] == "[REDACTED:secret_field]", key
        assert redactor.redact_event(event).data == expected, key


def test_configured_patterns_keys_and_allow() -> None:
    custom = Redactor(RedactionConfig(patterns=[r"ACME-[0-9]{6}", r"ticket=(\d+)"], keys=["MY_CRED"],
                                      allow=[r"sk-ant-api03-EXAMPLEEXAMPLE", "token"]))
    assert custom.redact_text("id ACME-123456 ok") == "id [REDACTED:custom] ok"
    assert custom.redact_text("ticket=42") == "ticket=[REDACTED:custom]"
    assert custom.redact_text("MY_CRED=abc") == "MY_CRED=[REDACTED:assignment]"
    assert custom.redact_payload({"MY_CRED": "x"}) == {"MY_CRED": "[REDACTED:secret_field]"}
    assert custom.redact_text("sk-ant-api03-EXAMPLEEXAMPLE") == "sk-ant-api03-EXAMPLEEXAMPLE"
    assert custom.redact_payload({"token": "keep-me"}) == {"token": "keep-me"}
    off = Redactor(RedactionConfig(enabled=False))
    assert off.redact_text("PASSWORD=x") == "PASSWORD=x"


def write_config(root: Path, body: str) -> None:
    (root / ".claude-mpm").mkdir(parents=True, exist_ok=True)
    (root / ".claude-mpm" / "configuration.yaml").write_text(body)


def test_redaction_configuration_is_validated(tmp_path: Path) -> None:
    write_config(tmp_path, "event_aggregator:\n  redaction:\n    patterns: ['ACME-\\d+']\n    keys: [MY_CRED]\n")
    config = load_config(tmp_path, environ={})
    assert config.redaction == RedactionConfig(patterns=("ACME-\\d+",), keys=("MY_CRED",))
    for body, message in (
        ("  redaction:\n    patterns: ['(unclosed']\n", "invalid regex"),
        ("  redaction:\n    patterns: 'ACME'\n", "expected a list"),
        ("  redaction:\n    enabled: maybe\n", "true or false"),
        ("  redaction:\n    colour: red\n", "unknown key"),
        ("  redaction: [1]\n", "expected a mapping"),
    ):
        write_config(tmp_path, "event_aggregator:\n" + body)
        with pytest.raises(ConfigError, match=message) as error:
            load_config(tmp_path, environ={})
        assert "\n" not in str(error.value)


# --- nothing secret reaches the disk ---------------------------------------------------------

SECRET_VALUES = ["sk-ant-api03-" + "S3cr3tS3cr3t" * 3, "ghp_" + "G1thubG1thub" * 3, "hunter2-is-my-password",
                 "AKIAZZZZZZZZZZZZZZZZ", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]


def secret_stream(sid: str) -> list[dict]:
    hook = {"session_id": sid, "cwd": "/work/p"}
    return [
        {**hook, "hook_event_name": "SessionStart", "source": "startup"},
        {**hook, "hook_event_name": "UserPromptSubmit", "prompt": f"my key is {SECRET_VALUES[0]}, fix the deploy"},
        {**hook, "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": "b1",
         "tool_input": {"command": f"export GITHUB_TOKEN={SECRET_VALUES[1]} && DB_PASSWORD={SECRET_VALUES[2]} make"}},
        {**hook, "hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_use_id": "b1",
         "tool_input": {"command": "env"},
         "tool_response": {"stdout": f"AWS_ACCESS_KEY_ID={SECRET_VALUES[3]}\nAWS_SECRET_ACCESS_KEY={SECRET_VALUES[4]}\n"}},
        {**hook, "hook_event_name": "PreToolUse", "tool_name": "Read", "tool_use_id": "r1",
         "tool_input": {"file_path": "/work/p/.env"}},
        {**hook, "hook_event_name": "PostToolUse", "tool_name": "Read", "tool_use_id": "r1",
         "tool_input": {"file_path": "/work/p/.env"},
         "tool_response": {"file": {"content": f'{{"api_key": "{SECRET_VALUES[0]}", "password": "{SECRET_VALUES[2]}"}}'}}},
        {**hook, "hook_event_name": "Stop", "last_assistant_message": "Done; I used the token " + SECRET_VALUES[1]},
    ]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 8, 23, 10, 0, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=250)
        return self.now


def all_bytes(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file())


def test_no_secret_reaches_the_activity_directory(tmp_path: Path) -> None:
    activity = tmp_path / "activity"
    aggregator = EventAggregator(config=Config(activity_directory=activity), clock=Clock())
    aggregator.start(connect=False)
    stream = secret_stream("sess-secret-1")
    for payload in stream[:-1]:
        assert aggregator.handle_event(payload) is not None
    live = all_bytes(activity)  # journal (and snapshots) while the session is open
    assert b"sess-secret-1" in live or list(activity.glob("*.journal.jsonl"))
    assert aggregator.handle_event(stream[-1]) is not None
    # replay / import path: an already-normalized event with a secret goes through ingest()
    replayed = SessionEvent(timestamp="2026-08-23T10:00:05+00:00", event_type="UserPromptSubmit", category="prompt",
                            data={"prompt": f"again with PASSWORD={SECRET_VALUES[2]} and {SECRET_VALUES[3]}"},
                            session_id="sess-secret-2", event_id="replayed-1")
    recorded = aggregator.ingest(replayed)
    assert recorded is not None and SECRET_VALUES[2] not in recorded.data["prompt"]
    session = aggregator.get_session("sess-secret-1")
    assert session is not None
    export_dir = tmp_path / "exports"
    export_dir.mkdir()
    for fmt in ("full", "events", "csv", "markdown"):
        aggregator.export_session("sess-secret-1", export_dir / f"out.{fmt}", format=fmt)
    aggregator.stop()
    written = live + all_bytes(activity) + all_bytes(export_dir)
    for secret in SECRET_VALUES:
        assert secret.encode() not in written, secret
    assert b"[REDACTED:" in written
    assert aggregator.total_events == len(stream) + 1  # in == saved: redaction drops nothing


def test_realistic_sessions_are_untouched_by_redaction(tmp_path: Path) -> None:
    """The fixture sessions hold no secret: redaction must not change a byte of what is saved."""
    events = fb.raw_hook_session()
    changed = [payload for _, payload in events if R.redact_payload(payload) is not payload]
    assert changed == []


def test_the_debug_log_is_redacted(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "aggregator.log"
    config = Config(activity_directory=tmp_path / "a", debug=True, log_file=log_file)
    logger = logging.getLogger(LOGGER_NAME)
    before = (list(logger.handlers), logger.level)
    try:
        setup_logging(config, stderr=False)
        logging.getLogger(f"{LOGGER_NAME}.test").debug("running %s", f"curl -u me:{SECRET_VALUES[2]} x")
        logging.getLogger(f"{LOGGER_NAME}.test").warning("prompt: %s", SECRET_VALUES[0])
    finally:
        for handler in list(logger.handlers):
            if handler not in before[0]:
                logger.removeHandler(handler)
                handler.close()
        logger.setLevel(before[1])
    text = log_file.read_text()
    assert "running curl -u me:[REDACTED:cli_user_password] x" in text
    assert SECRET_VALUES[0] not in text and SECRET_VALUES[2] not in text


# --- the trigger-word look (RE2 when installed, substring searches otherwise) -----------------

_FRAGMENTS = ["pass", "passw", "token", "token=", "key", "api_key", "-u", "-u ", "--user", "sk", "sk-", "sk_live_",
              "gh", "ghp_", "secret", "auth", "eyj", "aiza", "-----begin", "x", " ", "_", "=", ":", "\"", "\t",
              "\u212a", "\u0130", "caf\u00e9", "\ud800", "\n"]


def _finders(monkeypatch: pytest.MonkeyPatch) -> tuple:
    from agent_aggregator import redact

    triggers = redact._TRIGGERS + (("my_custom_key", ()),)
    fast = redact._word_finder(triggers)
    monkeypatch.setitem(sys.modules, "re2", None)  # `import re2` now raises ImportError
    plain = redact._word_finder(triggers)
    monkeypatch.delitem(sys.modules, "re2")
    return fast, plain


def test_the_one_pass_look_answers_as_the_substring_searches_do(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("re2")
    fast, plain = _finders(monkeypatch)
    assert fast is not plain and fast.__name__ == "one_pass" and plain.__name__ == "searches"
    cases = ["", "nothing to see", "the key is here", "api_key=1", "a passport", "password", "-u root",
             "curl --user a:b", "sk-abc", "task_1", "my_custom_key", "ghp_x", "\ud800 token=1", "\u212aey"]
    for text in cases:
        assert fast(text.lower()) == plain(text.lower()), text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=4), max_size=12))
def test_the_one_pass_look_agrees_on_any_text(monkeypatch: pytest.MonkeyPatch, pieces: list[str]) -> None:
    pytest.importorskip("re2")
    fast, plain = _finders(monkeypatch)
    lowered = "".join(pieces).lower()
    assert fast(lowered) == plain(lowered)


def test_without_re2_the_redactor_still_finds_every_trigger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "re2", None)
    redactor = Redactor()
    assert redactor.redact_text("export API_KEY=abcd1234efgh5678") != "export API_KEY=abcd1234efgh5678"
    assert redactor.might_contain_secret('{"cmd": "curl -u admin:hunter2 x"}')
    assert not redactor.might_contain_secret('{"cmd": "ls -la"}')


def test_a_redactor_imports_re2_only_after_looking_at_enough_text() -> None:
    """The hook redacts one payload and exits: importing RE2 (~5 ms) would cost it more than it saves."""
    pytest.importorskip("re2")
    from agent_aggregator import redact

    redactor = Redactor()
    assert redactor.might_contain_secret('{"cmd": "curl -u admin:hunter2 x"}')
    assert redactor._trigger_words == redactor._words_before_re2
    text = '{"output": "' + "ordinary words " * 1000 + '"}'
    while redactor._looked_at < redact.RE2_AFTER_CHARS:
        assert not redactor.might_contain_secret(text)
    assert redactor._trigger_words.__name__ == "one_pass"
    assert redactor.might_contain_secret('{"cmd": "curl -u admin:hunter2 x"}')
    assert not redactor.might_contain_secret(text)
