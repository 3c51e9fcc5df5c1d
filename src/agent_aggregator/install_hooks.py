"""``aggregate install-hooks``: add ``aggregate hook`` to Claude Code's settings.json.

Claude Code's format::

    {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [{"type": "command", "command": "...", "timeout": 5}]}],
               "Stop": [{"hooks": [...]}], ...}}

Tool events take a ``matcher`` (``*`` = every tool); the others have none. The
merge never clobbers: every existing key, event and hook stays as it is; one
group holding our hook is appended to each event that does not run it yet.

"Runs it yet" means the identical command, or any other command that runs
``aggregate hook`` (say a bare ``aggregate hook`` next to our absolute path): two
of those would post every event twice, under two event ids, and the session
would count everything double. Such an event is left alone and named.
"""

from __future__ import annotations

import difflib
import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence, TextIO

from .errors import AggregatorError

HOOK_EVENTS = (
    "PreToolUse", "PostToolUse", "PostToolUseFailure", "UserPromptSubmit", "Stop", "SubagentStart",
    "SubagentStop", "SessionStart", "SessionEnd", "Notification", "PreCompact", "PermissionRequest",
)
TOOL_EVENTS = frozenset({"PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest"})
HOOK_TIMEOUT = 5  # seconds Claude Code waits for one hook run; ours bounds itself well below
FALLBACK_COMMAND = "aggregate hook"
FAST_CODE = "from agent_aggregator.hook import run; run()"
SCRIPT_NAME = "aggregate"


class Plan:
    """What merging our hooks into one settings document does."""

    def __init__(self, before: dict[str, Any], after: dict[str, Any], added: list[str],
                 other_commands: dict[str, str]) -> None:
        self.before = before
        self.after = after
        self.added = added  # events that get our hook
        self.other_commands = other_commands  # event -> the other `aggregate hook` command it already runs

    @property
    def changed(self) -> bool:
        return bool(self.added)


# --- where and what -----------------------------------------------------------------------


DEFAULT_HUB_PORT = 8765  # what `aggregate hook` uses when given no --port


def settings_path(scope: str, *, cwd: Path | None = None, environ: dict[str, str] | None = None) -> Path:
    """``./.claude/settings.json`` (project) or the user's ``~/.claude/settings.json``
    (``$CLAUDE_CONFIG_DIR/settings.json`` when set, as Claude Code itself reads it)."""
    if scope == "project":
        return (cwd or Path.cwd()) / ".claude" / "settings.json"
    if scope != "user":
        raise ValueError(f"unknown scope {scope!r}")
    environ = os.environ if environ is None else environ  # type: ignore[assignment]
    configured = environ.get("CLAUDE_CONFIG_DIR")
    base = Path(configured).expanduser() if configured else Path(environ.get("HOME") or Path.home()) / ".claude"
    return base / "settings.json"


def hub_arguments(host: str | None, port: int | None) -> list[str]:
    """The hook's ``--host``/``--port``, only where they differ from the hook's own defaults."""
    arguments: list[str] = []
    if host and host not in ("localhost", "127.0.0.1"):
        arguments += ["--host", host]
    if port and port != DEFAULT_HUB_PORT:
        arguments += ["--port", str(port)]
    return arguments


TOKEN_FILE_NAME = "aggregator.token"


def default_token_file() -> Path:
    """Where ``install-hooks --token`` keeps the token for the hooks: ``~/.claude-mpm/aggregator.token``."""
    return Path.home() / ".claude-mpm" / TOKEN_FILE_NAME


def token_file_for(config: Any, *, dry_run: bool = False) -> Path:
    """The token file the installed hooks read (``--token-file``): settings.json is often
    committed or shared, so it never holds the token itself. The configured token_file
    when there is one; else the token is written (mode 0600) to ``default_token_file()``."""
    if config.token_file is not None:
        return Path(config.token_file)
    path = default_token_file()
    try:
        existing = path.read_text(encoding="utf-8").splitlines()[:1]
    except FileNotFoundError:
        existing = None
    except (OSError, UnicodeDecodeError) as error:
        raise AggregatorError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None
    if existing is not None:
        if existing and existing[0].strip() == config.token:
            return path
        raise AggregatorError(f"{path} already holds another token; pass --token-file PATH to use a file of yours")
    if not dry_run:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(config.token + "\n")
    return path


def default_command(arguments: Sequence[str] = ()) -> str:
    """The hook command to install: this interpreter running ``hook.run`` directly, by
    absolute path, when that works in isolated mode; else this installation's
    ``aggregate`` script by absolute path, plus ``hook``; else the bare ``aggregate hook``.

    Why not simply ``aggregate hook``: Claude Code runs the hook for every tool call, and
    pip's console-script wrapper imports ``re`` before any of our code (about 1.6x
    Python's start-up by itself), while ``python -I -c '...run()'`` starts in bare-Python
    time (bench/hook.py). ``-I`` also keeps the user's PYTHONPATH, user site and current
    directory out of the hook's imports. An absolute path keeps working when Claude Code's
    PATH lacks the virtualenv (started from a desktop launcher, an IDE, another shell).
    """
    tail = "".join(f" {shlex.quote(a)}" for a in arguments)
    python = sys.executable
    if python and imports_in_isolation(python):
        return f"{shlex.quote(python)} -I -c {shlex.quote(FAST_CODE)}{tail}"
    script = find_console_script()
    return f"{shlex.quote(script)} hook{tail}" if script else f"{FALLBACK_COMMAND}{tail}"


def imports_in_isolation(python: str) -> bool:
    """Whether ``python -I`` can import the hook (not so when we only run from PYTHONPATH)."""
    import subprocess

    try:
        return subprocess.run([python, "-I", "-B", "-c", "import agent_aggregator.hook"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def find_console_script() -> str | None:
    candidates = []
    if sys.argv and os.path.basename(sys.argv[0]) == SCRIPT_NAME:
        candidates.append(sys.argv[0])
    candidates.append(os.path.join(os.path.dirname(sys.executable), SCRIPT_NAME))
    found = shutil.which(SCRIPT_NAME)
    if found:
        candidates.append(found)
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)  # not realpath: keep a pipx/venv bin link that upgrades follow
    return None


def hook_entry(event: str, command: str) -> dict[str, Any]:
    hooks = [{"type": "command", "command": command, "timeout": HOOK_TIMEOUT}]
    return {"matcher": "*", "hooks": hooks} if event in TOOL_EVENTS else {"hooks": hooks}


def runs_aggregate_hook(command: str) -> bool:
    """Whether a hook command runs our hook: ``<path>/aggregate hook``, ``python -m agent_aggregator
    hook``, or anything naming the module ``agent_aggregator.hook`` (``-c``, ``-m``)."""
    if "agent_aggregator.hook" in command:
        return True
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    for index, word in enumerate(words[:-1]):
        if words[index + 1] != "hook":
            continue
        if os.path.basename(word) == SCRIPT_NAME or (word == "agent_aggregator" and index and words[index - 1] == "-m"):
            return True
    return False


# --- the merge ----------------------------------------------------------------------------


def _commands(groups: list[Any]) -> list[str]:
    found = []
    for group in groups:
        if isinstance(group, dict) and isinstance(group.get("hooks"), list):
            found.extend(hook["command"] for hook in group["hooks"]
                         if isinstance(hook, dict) and isinstance(hook.get("command"), str))
    return found


def plan(settings: Any, command: str, where: str = "settings.json") -> Plan:
    """Our hooks merged into ``settings`` (a parsed settings.json), which is left unchanged.

    Raises AggregatorError when the document is not shaped like Claude Code settings
    (then we do not know how to merge without losing something).
    """
    if not isinstance(settings, dict):
        raise AggregatorError(f"{where}: expected a JSON object at the top, found {_kind(settings)}; left untouched")
    hooks = settings.get("hooks", {})
    if not isinstance(hooks, dict):
        raise AggregatorError(f"{where}: \"hooks\" is {_kind(hooks)}, expected an object; left untouched")
    for event in HOOK_EVENTS:
        if event in hooks and not isinstance(hooks[event], list):
            raise AggregatorError(f"{where}: \"hooks.{event}\" is {_kind(hooks[event])}, expected a list;"
                                  " left untouched")
    merged_hooks = dict(hooks)
    added: list[str] = []
    others: dict[str, str] = {}
    for event in HOOK_EVENTS:
        present = _commands(hooks.get(event, []))
        if command in present:
            continue
        other = next((text for text in present if runs_aggregate_hook(text)), None)
        if other is not None and runs_aggregate_hook(command):
            others[event] = other
            continue
        merged_hooks[event] = [*hooks.get(event, []), hook_entry(event, command)]
        added.append(event)
    after = {**settings, "hooks": merged_hooks} if added else settings
    return Plan(settings, after, added, others)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def render(settings: Any) -> str:
    """settings.json text as we write it (and diff it): indent 2, UTF-8 kept, final newline."""
    return json.dumps(settings, indent=2, ensure_ascii=False) + "\n"


def diff(before: Any, after: Any, label: str) -> str:
    return "".join(difflib.unified_diff(
        render(before).splitlines(keepends=True) if before is not None else [],
        render(after).splitlines(keepends=True),
        fromfile=f"{label} (current)" if before is not None else "/dev/null",
        tofile=f"{label} (with aggregate hooks)",
    ))


# --- the file -----------------------------------------------------------------------------


def read_settings(path: Path, label: str | None = None) -> tuple[Any, bytes | None]:
    """(parsed settings, raw bytes) of ``path``; ({}, None) when it does not exist, {} when blank.
    Errors name the file as ``label`` (default: the path)."""
    label = label or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}, None
    except OSError as error:
        raise AggregatorError(f"{label}: cannot read: {error.strerror or error}") from None
    if not raw.strip():
        return {}, raw
    try:
        return json.loads(raw), raw
    except json.JSONDecodeError as error:
        raise AggregatorError(f"{label}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno});"
                              " left untouched") from None
    except UnicodeDecodeError as error:
        raise AggregatorError(f"{label}: not UTF-8 text ({error.reason}); left untouched") from None


def write_settings(path: Path, text: str, previous: bytes | None) -> Path | None:
    """Replace ``path`` atomically (temp file + rename, mode kept); the previous
    content goes to ``settings.json.bak`` first. Writes through a symlink (dotfiles)
    instead of replacing it. Returns the backup's path, if one was written."""
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    mode = 0o644
    if previous is not None:
        try:
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            pass
        backup = target.with_name(target.name + ".bak")
        _write_atomic(backup, previous, mode)
    _write_atomic(target, text.encode("utf-8"), mode)
    return backup


def _write_atomic(target: Path, data: bytes, mode: int) -> None:
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(temporary, mode)  # the umask may have narrowed it
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


# --- the command --------------------------------------------------------------------------


def _shown(path: Path, scope: str, cwd: Path) -> str:
    """The path as the user thinks of it: relative for the project, under ~ for the user."""
    base, prefix = (cwd, "") if scope == "project" else (Path.home(), "~/")
    try:
        return prefix + str(path.relative_to(base))
    except ValueError:
        return str(path)


def run(scope: str = "project", *, dry_run: bool = False, command: str | None = None,
        out: TextIO | None = None, cwd: Path | None = None, hub: Sequence[str] = ()) -> int:
    """``aggregate install-hooks``: merge, then write (or, with ``dry_run``, print the diff).
    ``hub`` is the hook's --host/--port when the hub is not on its default address."""
    out = out or sys.stdout
    command = (command if command is not None else default_command(hub)).strip()
    if not command:
        raise AggregatorError("--command: empty command")
    cwd = cwd or Path.cwd()
    path = settings_path(scope, cwd=cwd)
    shown = _shown(path, scope, cwd)
    settings, raw = read_settings(path, shown)
    result = plan(settings, command, shown)
    by_command: dict[str, list[str]] = {}
    for event, other in result.other_commands.items():
        by_command.setdefault(other, []).append(event)
    for other, events in by_command.items():
        which = "every event" if len(events) == len(HOOK_EVENTS) else ", ".join(events)
        out.write(f"Not adding a second aggregate hook (each event would be posted twice) where one already"
                  f" runs ({which}): {other}\n")
    noun = "entry" if len(result.added) == 1 else "entries"
    if not result.changed:
        out.write(f"aggregate hooks already installed in {shown}: nothing to change\n")
        return 0
    if dry_run:
        out.write(diff(settings if raw is not None else None, result.after, shown))
        out.write(f"Would add {len(result.added)} hook {noun} to {shown} (dry run: nothing written); each runs:"
                  f" {command}\n")
        return 0
    try:
        backup = write_settings(path, render(result.after), raw)
    except OSError as error:
        raise AggregatorError(f"{shown}: cannot write: {error.strerror or error}") from None
    kept = f" (previous version kept as {shown}.bak)" if backup is not None else ""
    out.write(f"Added {len(result.added)} hook {noun} to {shown}{kept}; each runs: {command}\n")
    if command == FALLBACK_COMMAND:
        out.write("Note: `aggregate` must be on the PATH Claude Code runs hooks with; pass --command"
                  " '/absolute/path/to/aggregate hook' if it is not\n")
    return 0
