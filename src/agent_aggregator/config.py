"""Configuration: defaults < user file < project file < environment < flags.

The seeds' ``event_aggregator`` section of ``.claude-mpm/configuration.yaml``
is read as is (other sections of that file belong to claude-mpm and are
ignored), so one file configures both tools. Every value is checked once,
here, so the rest of the code can trust a ``Config``; a bad value is reported
as one ``ConfigError`` line naming the file (or variable) and the key.

PyYAML is imported only when a file exists: ``aggregate hook`` loads the
configuration on every call and must start fast.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import ConfigError
from .redact_gate import RedactionConfig

SECTION = "event_aggregator"
CONFIG_DIR_NAME = ".claude-mpm"
CONFIG_FILE_NAME = "configuration.yaml"
ENV_PREFIX = "CLAUDE_MPM_AGGREGATOR_"
# Our variables that are not settings: read where they are needed (machine.py), never warned about.
ENV_ONLY_VARIABLES = frozenset({"CLAUDE_MPM_AGGREGATOR_HOSTNAME"})
LOGGER_NAME = "agent_aggregator"

LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3

CAPTURE_KEYS: tuple[str, ...] = (
    "user_prompts",
    "agent_delegations",
    "tool_operations",
    "file_operations",
    "todo_updates",
    "responses",
    "memory_events",
)

log = logging.getLogger(f"{LOGGER_NAME}.config")


SOCKETIO = "socketio"
SSE = "sse"
SOURCE_TYPES = (SOCKETIO, SSE)


@dataclass(frozen=True)
class SourceSpec:
    """One configured source: ``socketio`` (the dashboard host/port, hub or client) or ``sse`` (a URL)."""

    type: str
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type} if self.url is None else {"type": self.type, "url": self.url}


def _source_url(value: Any) -> str:
    from urllib.parse import urlsplit

    text = value.strip() if isinstance(value, str) else ""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - ValueError when not a number in range
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        shown = _without_password(value) if isinstance(value, str) else value
        raise ValueError(f"expected an http:// or https:// URL, got {_describe(shown)}")
    return text


def _without_password(url: str) -> str:
    """``url`` with the password of any ``//user:password@`` replaced by ``***``: an error
    message quotes what it refuses, and a mistyped URL may still carry a real secret."""
    start = url.find("//")
    if start < 0:
        return url
    end = url.find("/", start + 2)
    end = len(url) if end < 0 else end
    at = url.rfind("@", start + 2, end)
    colon = url.find(":", start + 2, at) if at >= 0 else -1
    if colon < 0:
        return url
    return url[: colon + 1] + "***" + url[at:]


def _as_sources(value: Any, from_text: bool) -> tuple[SourceSpec, ...]:
    """``[{type: socketio}, {type: sse, url: http://127.0.0.1:3000/events}]``; from the environment
    (or a flag) a comma-separated list where a URL means an SSE stream: ``socketio,http://...``."""
    if from_text and isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
        value = [item if item in SOURCE_TYPES else {"type": SSE, "url": item} for item in value]
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list of sources ({type: socketio} or {type: sse, url: URL})")
    specs: list[SourceSpec] = []
    for item in value:
        if item == SOCKETIO:
            item = {"type": SOCKETIO}
        if not isinstance(item, Mapping) or item.get("type") not in SOURCE_TYPES:
            raise ValueError(f"each source needs type socketio or sse, got {_describe(item)}")
        unknown = sorted(set(item) - {"type", "url"})
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} in a source (expected type, url)")
        if item["type"] == SSE:
            spec = SourceSpec(SSE, _source_url(item.get("url")))
        elif item.get("url") is not None:
            raise ValueError("a socketio source takes no url: it uses dashboard_host and dashboard_port")
        else:
            spec = SourceSpec(SOCKETIO)
        if spec not in specs:
            specs.append(spec)
    return tuple(specs)


def _default_capture() -> dict[str, bool]:
    return {key: True for key in CAPTURE_KEYS}


@dataclass
class Config:
    """The ``event_aggregator`` settings, validated, paths made absolute by ``load_config``."""

    enabled: bool = True
    activity_directory: Path = Path(".claude-mpm/activity")
    dashboard_port: int = 8765
    session_timeout_minutes: int = 60
    auto_cleanup_days: int = 30
    capture: dict[str, bool] = field(default_factory=_default_capture)
    dashboard_host: str = "localhost"
    debug: bool = False
    log_file: Path = Path(".claude-mpm/logs/aggregator.log")
    journal: bool = True
    # Where events come from, all at once: the Socket.IO side (claude-mpm's monitor or the
    # built-in hub, as `aggregate start` picks) and any number of SSE streams (issue 6).
    sources: tuple["SourceSpec", ...] = field(default_factory=lambda: (SourceSpec(SOCKETIO),))
    # Shared secret the hub requires from every client (None: no token; loopback only).
    # Never printed: repr=False, and to_dict() masks it.
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    redaction: RedactionConfig = field(default_factory=RedactionConfig)
    # Redis URL every hub of a team shares (issue 10); None: this hub relays to its own clients only.
    message_queue: str | None = None
    # Where relative paths were resolved from, and which files were read:
    # useful in ``status`` and error messages, not part of equality.
    project_dir: Path = field(default_factory=Path.cwd, compare=False)
    config_files: tuple[str, ...] = field(default=(), compare=False)

    def get(self, key: str, default: Any = None) -> Any:
        """Dotted access as in the seeds: ``config.get("event_aggregator.activity_directory")``.

        The ``event_aggregator.`` prefix is optional; ``capture.<name>`` reaches
        one capture flag. Unknown keys give ``default``.
        """
        parts = key.split(".")
        if parts and parts[0] == SECTION:
            parts = parts[1:]
        if not parts or parts[0] not in _KEYS:
            return default
        value: Any = getattr(self, parts[0])
        for part in parts[1:]:
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return dict(value) if isinstance(value, dict) else value

    def to_dict(self) -> dict[str, Any]:
        """The ``event_aggregator`` section as YAML would hold it (paths as text)."""
        section: dict[str, Any] = {}
        for name in _KEYS:
            value = getattr(self, name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, dict):
                value = dict(value)
            elif isinstance(value, RedactionConfig):
                value = {"enabled": value.enabled, "patterns": list(value.patterns),
                         "keys": list(value.keys), "allow": list(value.allow)}
            elif name == "sources":
                value = [spec.to_dict() for spec in value]
            elif name == "token" and value is not None:
                value = "********"  # shown as set, never revealed
            section[name] = value
        return {SECTION: section}

    def captures(self, kind: str) -> bool:
        """Whether a capture flag (``tool_operations`` ...) is on; unknown kinds are captured."""
        return bool(self.capture.get(kind, True))


# --- value checking -----------------------------------------------------------------
#
# Each checker takes the raw value and whether it came as text (environment,
# command line), and returns the typed value or raises ValueError with the
# expectation, which the caller turns into a ConfigError naming where it came from.

_TRUE = frozenset({"1", "true", "yes", "on", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "n", ""})


def _as_bool(value: Any, from_text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_text and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError("expected true or false")


def _as_int(value: Any, from_text: bool, low: int, high: int | None) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif from_text and isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    bounds = f"{low}..{high}" if high is not None else f">= {low}"
    if number is None or number < low or (high is not None and number > high):
        raise ValueError(f"expected an integer {bounds}")
    return number


def _int_checker(low: int, high: int | None = None) -> Callable[[Any, bool], int]:
    return lambda value, from_text: _as_int(value, from_text, low, high)


def _as_text(value: Any, from_text: bool) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError("expected a non-empty string")


def _as_path(value: Any, from_text: bool) -> Path:
    if isinstance(value, Path):
        return value
    return Path(_as_text(value, from_text)).expanduser()


TOKEN_MIN_LENGTH = 16


def _as_token(value: Any, from_text: bool) -> str | None:
    """A shared token: printable ASCII without spaces (it travels in an HTTP header), long enough.
    None (YAML ``null``) or, from the environment or a flag, "" means no token."""
    if value is None or (from_text and value == ""):
        return None
    if not isinstance(value, str):
        raise ValueError("expected a string")
    token = value.strip()
    if len(token) < TOKEN_MIN_LENGTH or not all("!" <= char <= "~" for char in token):
        raise ValueError(f"expected at least {TOKEN_MIN_LENGTH} printable ASCII characters without spaces"
                         " (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return token


def read_token_file(path: Path) -> str:
    """The token a token file holds (its first line); ValueError saying what is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline(4096)
    except FileNotFoundError:
        raise ValueError(f"token file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot read token file {path}: {reason}") from None
    if not first.strip():
        raise ValueError(f"token file {path} is empty")
    token = _as_token(first, True)
    assert token is not None
    return token


def _as_redaction(value: Any, from_text: bool, current: RedactionConfig) -> RedactionConfig:
    if value is None:
        return current
    if not isinstance(value, Mapping):
        raise ValueError("expected a mapping with enabled, patterns, keys, allow")
    unknown = sorted(set(value) - {"enabled", "patterns", "keys", "allow"})
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (expected enabled, patterns, keys, allow)")

    def strings(name: str) -> tuple[str, ...]:
        raw = value.get(name)
        if raw is None:
            return getattr(current, name)
        if not isinstance(raw, list):
            raise ValueError(f"{name}: expected a list, got {_describe(raw)}")
        if name == "keys":
            if not all(isinstance(item, str) and item.strip() for item in raw):
                raise ValueError("keys: expected a list of non-empty names")
            return tuple(item.strip() for item in raw)
        from .redact import validate_patterns  # re and the rules: only when a config sets patterns

        return validate_patterns(raw, name)

    enabled = _as_bool(value["enabled"], from_text) if "enabled" in value else current.enabled
    return RedactionConfig(enabled=enabled, patterns=strings("patterns"), keys=strings("keys"), allow=strings("allow"))


QUEUE_SCHEMES = ("redis", "rediss", "unix")


def _as_queue_url(value: Any, from_text: bool) -> str | None:
    """``redis://HOST[:PORT][/DB]`` (``rediss://`` for TLS, ``unix:///path.sock``); None or "" is none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    expected = "expected redis://HOST:PORT/N (or rediss://..., unix:///path/to/redis.sock)"
    if not isinstance(value, str):
        raise ValueError(expected)
    from urllib.parse import urlsplit

    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port  # ValueError when not a number in range
    except ValueError:
        raise ValueError(expected) from None
    if parts.scheme not in QUEUE_SCHEMES:
        raise ValueError(expected)
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(expected)
        return text
    database = parts.path.strip("/")
    if not parts.hostname or port == 0 or (database and not database.isdigit()):
        raise ValueError(expected)
    return text


_CHECKERS: dict[str, Callable[[Any, bool], Any]] = {
    "enabled": _as_bool,
    "activity_directory": _as_path,
    "dashboard_port": _int_checker(1, 65535),
    "session_timeout_minutes": _int_checker(1),
    "auto_cleanup_days": _int_checker(0),
    "dashboard_host": _as_text,
    "debug": _as_bool,
    "log_file": _as_path,
    "journal": _as_bool,
    "sources": _as_sources,
    "message_queue": _as_queue_url,
    "token": _as_token,
    "token_file": lambda value, from_text: None if value is None or (from_text and value == "") else _as_path(value, from_text),
}
_KEYS: tuple[str, ...] = (*_CHECKERS, "capture", "redaction")
_PATH_KEYS = ("activity_directory", "log_file")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _apply(values: dict[str, Any], key: str, raw: Any, where: str, *, from_text: bool) -> None:
    """Check one value and store it, or raise ConfigError naming ``where`` and ``key``."""
    if key == "capture":
        _apply_capture(values, raw, where, from_text=from_text)
        return
    if key == "redaction":
        try:
            values[key] = _as_redaction(raw, from_text, values[key])
        except ValueError as exc:
            raise ConfigError(f"{where}: {SECTION}.redaction: {exc}") from None
        return
    try:
        values[key] = _CHECKERS[key](raw, from_text)
    except ValueError as exc:
        if key == "token":  # never echo a secret
            shown = "a value that is not shown"
        else:
            shown = _describe(_without_password(raw) if isinstance(raw, str) else raw)
        raise ConfigError(f"{where}: {SECTION}.{key}: {exc}, got {shown}") from None
    if key in ("token", "token_file"):  # the later layer decides, whichever of the two it gives
        values["token_file" if key == "token" else "token"] = None


def _apply_capture(values: dict[str, Any], raw: Any, where: str, *, from_text: bool) -> None:
    if raw is None:
        return
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: {SECTION}.capture: expected a mapping of flags, got {_describe(raw)}")
    capture = dict(values["capture"])
    for name, flag in raw.items():
        if name not in CAPTURE_KEYS:
            log.warning("%s: unknown key %s.capture.%s ignored", where, SECTION, name)
            continue
        try:
            capture[name] = _as_bool(flag, from_text)
        except ValueError as exc:
            raise ConfigError(f"{where}: {SECTION}.capture.{name}: {exc}, got {_describe(flag)}") from None
    values["capture"] = capture


# --- layers ------------------------------------------------------------------------


def user_config_path() -> Path:
    """``~/.claude-mpm/configuration.yaml``: settings shared by every project."""
    return Path.home() / CONFIG_DIR_NAME / CONFIG_FILE_NAME


def project_config_path(project_dir: Path) -> Path:
    return project_dir / CONFIG_DIR_NAME / CONFIG_FILE_NAME


def _read_section(path: Path) -> dict[str, Any] | None:
    """The ``event_aggregator`` mapping of a YAML file; None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{path}: cannot read: {reason}") from None

    import yaml  # deferred: only paid when a configuration file exists

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        document = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML{_yaml_where(exc)}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(document).__name__}")
    section = document.get(SECTION)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: {SECTION}: expected a mapping, got {_describe(section)}")
    return section


def _yaml_where(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or ""
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {problem}" if problem else where


def _apply_file(values: dict[str, Any], path: Path, sources: list[str]) -> None:
    section = _read_section(path)
    if section is None:
        return
    sources.append(str(path))
    for key, raw in section.items():
        if key not in _KEYS:
            log.warning("%s: unknown key %s.%s ignored", path, SECTION, key)
            continue
        _apply(values, key, raw, str(path), from_text=False)


def _apply_environment(values: dict[str, Any], environ: Mapping[str, str], sources: list[str]) -> None:
    used = False
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        if name in ENV_ONLY_VARIABLES:
            continue
        key = name[len(ENV_PREFIX):].lower()
        raw = environ[name]
        if key.startswith("capture_") and key[len("capture_"):] in CAPTURE_KEYS:
            _apply_capture(values, {key[len("capture_"):]: raw}, f"environment {name}", from_text=True)
        elif key in _CHECKERS:
            _apply(values, key, raw, f"environment {name}", from_text=True)
        else:
            log.warning("unknown environment variable %s ignored", name)
            continue
        used = True
    if used:
        sources.append("environment")


def _apply_overrides(values: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    for key, raw in overrides.items():
        if raw is None:
            continue
        if key not in _KEYS:
            raise ConfigError(f"command line: unknown setting {key!r}")
        _apply(values, key, raw, "command line", from_text=True)


def load_config(
    project_dir: Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    user_config: Path | None = None,
) -> Config:
    """Build the effective configuration.

    Precedence, lowest first: defaults, ``user_config`` (default
    ``~/.claude-mpm/configuration.yaml``), ``<project_dir>/.claude-mpm/configuration.yaml``
    (``project_dir`` defaults to the current directory), ``CLAUDE_MPM_AGGREGATOR_<KEY>``
    variables in ``environ`` (default ``os.environ``), then ``overrides`` (command-line
    flags; None values mean "not given"). Relative paths resolve against the project dir.
    """
    project = Path(project_dir).expanduser() if project_dir is not None else Path.cwd()
    project = project.absolute()
    defaults = Config()
    values: dict[str, Any] = {name: getattr(defaults, name) for name in _KEYS}
    values["capture"] = dict(defaults.capture)
    sources: list[str] = []

    user_file = Path(user_config).expanduser() if user_config is not None else user_config_path()
    project_file = project_config_path(project)
    _apply_file(values, user_file, sources)
    if project_file.absolute() != user_file.absolute():
        _apply_file(values, project_file, sources)
    _apply_environment(values, os.environ if environ is None else environ, sources)
    if overrides:
        _apply_overrides(values, overrides)

    for key in _PATH_KEYS:
        path = values[key]
        values[key] = path if path.is_absolute() else project / path
    if values["token_file"] is not None:
        token_file = values["token_file"]
        values["token_file"] = token_file if token_file.is_absolute() else project / token_file
        try:
            values["token"] = read_token_file(values["token_file"])
        except ValueError as exc:
            raise ConfigError(f"{SECTION}.token_file: {exc}") from None
    return Config(**values, project_dir=project, config_files=tuple(sources))


# --- logging -----------------------------------------------------------------------


class _OneLineFormatter(logging.Formatter):
    """``aggregate: warning: message`` - the same shape as the CLI's error lines."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().replace("\r", " ").replace("\n", " ")
        return f"aggregate: {record.levelname.lower()}: {message}"


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record arrives (not when set up),
    so redirections (tests, a TUI suspending the screen) are honoured. Records
    logged with ``extra={"file_only": True}`` (tracebacks the user was already
    told about in one line) are left to the debug log."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "file_only", False):
            return
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


_HANDLER_MARK = "_agent_aggregator_handler"


class _RedactingFilter(logging.Filter):
    """The debug log is disk: secrets in a message (a rejected payload quoted, an error
    echoing a command) are redacted with the built-in rules before the record is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        from .redact import default_redactor

        message = record.getMessage()
        redacted = default_redactor().redact_text(message)
        if redacted is not message and redacted != message:
            record.msg, record.args = redacted, None
        return True


def _safe_rotating_file_handler(*args: Any, **kwargs: Any) -> logging.Handler:
    """A RotatingFileHandler that opens (and reopens on rotation) the log with the user's umask,
    never world-writable. Built on first use: ``logging.handlers`` costs every command ~5 ms."""
    import logging.handlers

    class SafeRotatingFileHandler(logging.handlers.RotatingFileHandler):
        def _open(self):  # type: ignore[override]
            from .jsonio import FILE_MODE

            fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
            mode = os.fstat(fd).st_mode
            if mode & 0o002:  # an old file someone made world-writable
                os.fchmod(fd, mode & 0o7775)
            return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    return SafeRotatingFileHandler(*args, **kwargs)


def setup_logging(config: Config, *, stderr: bool = True) -> Path | None:
    """Configure the ``agent_aggregator`` logger; returns the debug log path when one is open.

    Debug mode writes everything (DEBUG) to a rotating ``log_file`` (5 MB x 3),
    which is what the usage guide tails. Warnings and errors go to stderr as
    one plain line when ``stderr`` is true (a TUI passes False: its screen owns
    the terminal). Calling it again replaces the handlers it installed before.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            logger.removeHandler(handler)
            handler.close()

    if stderr:
        console = _StderrHandler()
        console.setLevel(logging.WARNING)
        console.setFormatter(_OneLineFormatter())
        setattr(console, _HANDLER_MARK, True)
        logger.addHandler(console)

    log_path: Path | None = None
    if config.debug:
        try:
            from .jsonio import make_dirs

            make_dirs(config.log_file.parent)
            file_handler = _safe_rotating_file_handler(
                config.log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
            )
        except OSError as exc:
            logger.setLevel(logging.WARNING)
            logger.warning("cannot open debug log %s: %s", config.log_file, exc.strerror or exc)
        else:
            file_handler.setLevel(logging.DEBUG)
            file_handler.addFilter(_RedactingFilter())
            file_handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
            )
            setattr(file_handler, _HANDLER_MARK, True)
            logger.addHandler(file_handler)
            logger.setLevel(logging.DEBUG)
            log_path = config.log_file
    else:
        logger.setLevel(logging.WARNING)
    if not logger.handlers:
        # Nothing to show and nowhere to write: keep Python's last-resort
        # handler from printing our warnings over a TUI.
        quiet = logging.NullHandler()
        setattr(quiet, _HANDLER_MARK, True)
        logger.addHandler(quiet)
    return log_path
