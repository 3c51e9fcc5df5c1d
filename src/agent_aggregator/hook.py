"""``aggregate hook``: the command a Claude Code hook runs, once per hook event.

Reads one hook payload (a JSON object) on stdin, stamps it with a top-level
``event_id`` (uuid4 hex), receipt ``timestamp`` (ISO 8601 UTC) and the
``hostname`` of this machine (``$CLAUDE_MPM_AGGREGATOR_HOSTNAME`` overrides it)
unless it has them, and POSTs it to the hub's ``/events``. When that fails (nothing listening,
no answer within ``--timeout``, a non-2xx answer) the stamped event is appended
to the spool (``sources.spool``), which the hub drains, in order, when it runs.

Contract with Claude Code: exit status 0 and nothing on stdout or stderr, always
(stdout of some hooks is read as context or a decision; empty means "no
decision"). Input that is not a JSON object is not forwarded: one line goes to
``hook-errors.log`` in the spool directory. So does any unexpected error.

Speed: this runs for every tool call, so it imports only what bare Python has
already loaded plus ``_socket`` and ``time`` on the delivered path (no socket.py,
json, datetime or uuid: those pull in re/enum/selectors, several milliseconds).
The payload is validated with the C JSON scanner and forwarded as the bytes
Claude Code sent, with the two stamp keys spliced in after the opening brace.
The spool is imported only when an event has to be spooled; ``redact`` (``re``,
its compiled rules) only when ``redact_gate`` finds something it could redact.
"""

import os
import sys
import time

MAX_PAYLOAD = 32 * 1024 * 1024 - 1024  # bytes: the hub takes bodies up to 32 MB, stamps included
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_TIMEOUT = 0.5  # seconds for connect + send + status line, in total
EVENTS_PATH = "/events"
ERROR_LOG = "hook-errors.log"
ERROR_LOG_LIMIT = 1024 * 1024  # rotated to hook-errors.log.1 past this size
HOST_VARIABLES = ("CLAUDE_MPM_AGGREGATOR_DASHBOARD_HOST", "CLAUDE_MPM_SERVER_HOST")
PORT_VARIABLES = ("CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT", "CLAUDE_MPM_SERVER_PORT")
TOKEN_VARIABLE = "CLAUDE_MPM_AGGREGATOR_TOKEN"
TOKEN_FILE_VARIABLE = "CLAUDE_MPM_AGGREGATOR_TOKEN_FILE"
HOSTNAME_VARIABLE = "CLAUDE_MPM_AGGREGATOR_HOSTNAME"  # as machine.HOSTNAME_VARIABLE (not imported: start-up time)
_LOOPBACK_ALIASES = ("localhost", "0.0.0.0", "")  # connect to these as 127.0.0.1 (no resolver)
_JSON_SPACE = " \t\n\r"
_EXCERPT = 120  # characters of a rejected payload quoted in the error log

USAGE = """\
usage: aggregate hook [--host HOST] [--port PORT] [--timeout SECONDS] [--token-file PATH | --token TOKEN]

Forward one Claude Code hook payload (JSON on stdin) to the agent-aggregator hub
(POST /events); spool it when the hub does not take it. Always exits 0 and
prints nothing, as Claude Code hooks expect.

Address: --host/--port, else $CLAUDE_MPM_AGGREGATOR_DASHBOARD_HOST/PORT, else
$CLAUDE_MPM_SERVER_HOST/PORT, else 127.0.0.1:8765. Timeout default: 0.5 s.
Token (a hub that requires one): --token/--token-file, else $CLAUDE_MPM_AGGREGATOR_TOKEN,
else the file named by $CLAUDE_MPM_AGGREGATOR_TOKEN_FILE; sent as Authorization: Bearer.
Spool and error log: $AGGREGATE_SPOOL_DIR, else ~/.claude-mpm/spool/.
"""


class Invalid(ValueError):
    """Input that is not a forwardable hook payload (logged, not forwarded)."""


# --- entry point --------------------------------------------------------------------------


def main(argv=None, *, exit_process: bool = False) -> int:
    """Run ``aggregate hook`` with ``argv`` (the arguments after ``hook``). Returns 0, always.

    ``exit_process``: end the process right here with ``os._exit(0)`` once the event is
    posted or spooled, skipping interpreter finalization (~3 ms, a fifth of Python's
    start-up). Only for a process that runs nothing else: the console script, never a test.
    """
    try:
        _run(list(sys.argv[1:] if argv is None else argv))
    except BaseException as error:  # noqa: BLE001 - the promise: exit 0, no traceback
        _log_quietly(f"unexpected {type(error).__name__}: {error}")
    if exit_process:
        _exit_now()
    return 0


def run() -> None:
    """The whole process: ``python -I -c 'from agent_aggregator.hook import run; run()' [options]``,
    the quickest way to start the hook (no console-script wrapper, no runpy)."""
    main(sys.argv[1:], exit_process=True)


def _exit_now() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:  # noqa: BLE001 - a closed pipe: nothing more to say anyway
            pass
    os._exit(0)


def _run(argv: list) -> None:
    options, problems = parse_args(argv)
    if options is None:  # --help
        sys.stdout.write(USAGE)
        return
    stdin = sys.stdin
    if stdin is None:  # started with stdin closed
        _log_quietly("ignored input: no stdin")
        return
    if stdin.isatty():  # someone typed `aggregate hook` by hand: nothing to read
        sys.stderr.write("aggregate hook reads a Claude Code hook payload on stdin; see aggregate hook --help\n")
        return
    host, port, env_problems = resolve_address(options.get("host"), options.get("port"), os.environ)
    token, token_problems = resolve_token(options.get("token"), options.get("token-file"), os.environ)
    for problem in problems + env_problems + token_problems:
        _log_quietly(problem)
    raw = stdin.buffer.read(MAX_PAYLOAD + 1)
    try:
        event, body = stamp(raw)
    except Invalid as error:
        _log_quietly(f"ignored input: {error}")
        return
    if post(host, port, EVENTS_PATH, body, options.get("timeout", DEFAULT_TIMEOUT), token=token):
        return
    _spool(event)


def _spool(event: dict) -> None:
    """The spool is a file on disk: secrets are redacted before the event is written.

    ``redact_gate`` first says, without ``re``, whether the built-in rules could change
    anything in ``event``; only then is ``redact`` imported and its rules compiled
    (~20 ms, most of a spooled hook's cost before this gate).
    """
    from .redact_gate import may_hold_secret
    from .sources import spool

    try:
        if may_hold_secret(event):
            from .redact import default_redactor

            event = default_redactor().redact_payload(event)
        spool.append(EVENTS_PATH, event)
    except (OSError, ValueError, TypeError) as error:
        _log_quietly(f"could not spool event {event.get('event_id')!r}, it is lost: {error}")


# --- arguments and address ----------------------------------------------------------------


def parse_args(argv: list) -> tuple:
    """``({"host", "port", "timeout"} subset, problems)``, or ``(None, [])`` for --help.

    Bad or unknown arguments never stop the hook (that would lose the event):
    they are reported (logged) and the defaults are used.
    """
    options: dict = {}
    problems: list = []
    index = 0
    while index < len(argv):
        item = argv[index]
        index += 1
        if item in ("-h", "--help"):
            return None, []
        name, equals, value = item.partition("=")
        if name not in ("--host", "--port", "--timeout", "--token", "--token-file"):
            problems.append(f"ignored unknown argument {item!r}")
            continue
        if not equals:
            if index >= len(argv):
                problems.append(f"ignored {name}: missing value")
                continue
            value = argv[index]
            index += 1
        key = name[2:]
        if key in ("host", "token", "token-file"):
            options[key] = value
        elif key == "port":
            port = _port(value)
            if port is None:
                problems.append(f"ignored --port {value!r}: not a port number")
            else:
                options["port"] = port
        else:
            try:
                timeout = float(value)
            except ValueError:
                timeout = -1.0
            if not 0 < timeout < 3600:
                problems.append(f"ignored --timeout {value!r}: not a positive number of seconds")
            else:
                options["timeout"] = timeout
    return options, problems


def _port(text) -> "int | None":
    try:
        port = int(str(text).strip())
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


def resolve_address(host, port, environ) -> tuple:
    """``(host, port, problems)``: flags, else our variables, else claude-mpm's, else the default.

    Host and port are resolved independently; a variable that is not a port is
    reported and skipped. "localhost" (and bind-all/empty) become 127.0.0.1.
    """
    problems: list = []
    if not host:
        host = next((environ[name] for name in HOST_VARIABLES if environ.get(name)), DEFAULT_HOST)
    if port is None:
        for name in PORT_VARIABLES:
            text = environ.get(name)
            if text:
                port = _port(text)
                if port is not None:
                    break
                problems.append(f"ignored ${name}={text!r}: not a port number")
        if port is None:
            port = DEFAULT_PORT
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):  # [::1]
        host = host[1:-1]
    if host.lower() in _LOOPBACK_ALIASES:
        host = "127.0.0.1"
    return host, port, problems


def resolve_token(token, token_file, environ) -> tuple:
    """``(token or None, problems)``: --token, else --token-file, else $CLAUDE_MPM_AGGREGATOR_TOKEN,
    else the file $CLAUDE_MPM_AGGREGATOR_TOKEN_FILE names. A token that could not travel in
    an HTTP header (spaces, control characters) is reported and not sent: the hub then
    refuses the event and it is spooled, never lost."""
    problems: list = []
    if not token and not token_file:
        token = environ.get(TOKEN_VARIABLE) or None
        if not token:
            token_file = environ.get(TOKEN_FILE_VARIABLE) or None
    if not token and token_file:
        try:
            with open(os.path.expanduser(token_file), "rb") as handle:
                token = handle.readline(4096).decode("utf-8", "replace")
        except OSError as error:
            problems.append(f"cannot read token file {token_file!r}: {error.strerror or error}")
            return None, problems
    if not token:
        return None, problems
    token = token.strip()
    if not token or not all("!" <= char <= "~" for char in token):
        problems.append("ignored the token: it must be printable ASCII without spaces")
        return None, problems
    return token, problems


# --- stamping -----------------------------------------------------------------------------


def new_event_id() -> str:
    """A uuid4 as 32 hex digits, without importing uuid."""
    data = bytearray(os.urandom(16))
    data[6] = (data[6] & 0x0F) | 0x40  # version 4
    data[8] = (data[8] & 0x3F) | 0x80  # RFC 4122 variant
    return data.hex()


def utc_timestamp(ns: "int | None" = None) -> str:
    """Now (or ``ns`` since the epoch) as ISO 8601 UTC with microseconds, as timeutil writes it."""
    seconds, rest = divmod(time.time_ns() if ns is None else ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}+00:00"


def machine_name() -> str:
    """The machine events are tagged with: ``$CLAUDE_MPM_AGGREGATOR_HOSTNAME``, else the system
    hostname (``machine.hostname()`` without importing socket.py)."""
    override = os.environ.get(HOSTNAME_VARIABLE, "").strip()
    if override:
        return override
    import _socket

    return _socket.gethostname() or "localhost"


def _json_string(text: str) -> str:
    """``text`` as a JSON string literal (ids, times and host names need little escaping)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(ch if ch >= " " else f"\\u{ord(ch):04x}" for ch in escaped) + '"'


def stamp(raw: bytes) -> tuple:
    """``(event, body)``: the payload as a dict with ``event_id``/``timestamp``/``hostname`` added when
    missing, and the same as the bytes to POST. Raises Invalid for anything but one JSON object.

    ``body`` is ``raw`` itself with the missing stamp keys spliced in after the opening
    brace, so every other byte is forwarded exactly as Claude Code wrote it.
    """
    if len(raw) > MAX_PAYLOAD:
        raise Invalid(f"payload of {len(raw)} bytes, over the {MAX_PAYLOAD} the hub takes; dropped")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Invalid(f"not UTF-8 ({error.reason} at byte {error.start}): {_excerpt(raw)}") from None
    payload = decode_object(text)
    added: dict = {}
    if "event_id" not in payload:
        added["event_id"] = new_event_id()
    if "timestamp" not in payload:
        added["timestamp"] = utc_timestamp()
    if "hostname" not in payload:
        added["hostname"] = machine_name()
    if not added:
        return payload, raw
    event = {**added, **payload}
    start = len(raw) - len(raw.lstrip(_JSON_SPACE.encode())) + 1  # just after "{"
    keys = ",".join(f'"{key}":{_json_string(value)}' for key, value in added.items())
    separator = "," if payload else ""
    return event, b"".join((raw[:start], keys.encode(), separator.encode(), raw[start:]))


def decode_object(text: str) -> dict:
    """The JSON object ``text`` holds (strict JSON: no NaN/Infinity, nothing after it)."""
    scan = _scanner()
    if scan is not None:
        start = len(text) - len(text.lstrip(_JSON_SPACE))
        try:
            value, end = scan(text, start)
        except Exception:  # noqa: BLE001 - any failure: let json say precisely what is wrong
            value, end = None, -1
        if end != -1 and not text[end:].strip(_JSON_SPACE):
            if isinstance(value, dict):
                return value
            raise Invalid(f"a JSON {type(value).__name__}, not an object: {_excerpt(text)}")
    import json  # the slow, authoritative path: only for input the fast scanner refused

    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise Invalid(f"not JSON ({error}): {_excerpt(text)}") from None
    if not isinstance(value, dict):
        raise Invalid(f"a JSON {type(value).__name__}, not an object: {_excerpt(text)}")
    return value


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class _ScanContext:
    """What ``_json.make_scanner`` reads from a JSONDecoder, with json.loads' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)


_scan = None


def _scanner():
    """CPython's C scanner (what json.loads runs), built without importing json; None if absent."""
    global _scan
    if _scan is None:
        try:
            import _json

            _scan = _json.make_scanner(_ScanContext())
        except Exception:  # noqa: BLE001 - another interpreter: json.loads it is
            _scan = False
    return _scan or None


def _excerpt(value) -> str:
    text = value if isinstance(value, str) else value.decode("utf-8", "replace")
    if not text.strip():
        return "(empty input)"
    from .redact import default_redactor  # the error log is on disk too (only rejected input pays)

    text = default_redactor().redact_text(text[:4096])
    short = repr(text[:_EXCERPT])
    return short + (f"... ({len(value)} {'chars' if isinstance(value, str) else 'bytes'})"
                    if len(text) > _EXCERPT else "")


# --- delivery -----------------------------------------------------------------------------


def post(host: str, port: int, path: str, body: bytes, timeout: float = DEFAULT_TIMEOUT, *, token=None) -> bool:
    """POST ``body`` (JSON) to http://host:port/path; True when the answer's status is 2xx.

    One raw HTTP/1.1 request with ``Connection: close``; connect, send and the
    status line share one deadline. Any failure (refused, unreachable,
    timeout, closed early, non-2xx) is False, never an exception.
    """
    import _socket

    deadline = time.monotonic() + timeout
    try:
        family, address = _address(_socket, host, port)
        sock = _socket.socket(family, _socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        authority = f"[{host}]:{port}" if family == _socket.AF_INET6 else f"{host}:{port}"
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: agent-aggregator-hook\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            + (f"Authorization: Bearer {token}\r\n" if token else "")
            + "\r\n"
        ).encode("latin-1")
        sock.settimeout(_remaining(deadline))
        sock.connect(address)
        sock.settimeout(_remaining(deadline))
        sock.sendall(head + body)  # one buffer: no Nagle/delayed-ACK stall between head and body
        answer = b""
        while b"\n" not in answer and len(answer) < 8192:
            sock.settimeout(_remaining(deadline))
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    except (OSError, ValueError):  # ValueError: the deadline passed (a zero or negative timeout)
        return False
    finally:
        sock.close()
    parts = answer.split(b" ", 2)
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1][:1] == b"2" and parts[1].isdigit()


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("hook delivery timed out")
    return left


def _address(_socket, host: str, port: int) -> tuple:
    """``(family, sockaddr)`` for an IP literal without the resolver; the resolver otherwise."""
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
        except OSError:
            continue
        return family, (host, port)
    family, _, _, _, address = _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM)[0]
    return family, address


# --- error log ----------------------------------------------------------------------------


def error_log_path() -> str:
    """``hook-errors.log`` in the spool directory."""
    from .sources import spool

    return os.path.join(os.fspath(spool.spool_dir()), ERROR_LOG)


def log_error(message: str) -> None:
    """Append one line to the error log (rotated once past ERROR_LOG_LIMIT)."""
    path = error_log_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        if os.stat(path).st_size > ERROR_LOG_LIMIT:
            os.replace(path, path + ".1")
    except FileNotFoundError:
        pass
    line = f"{utc_timestamp()} pid {os.getpid()} aggregate hook: {' '.join(message.split())}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line.encode("utf-8", "backslashreplace"))
    finally:
        os.close(fd)


def _log_quietly(message: str) -> None:
    try:
        log_error(message)
    except BaseException:  # noqa: BLE001 - nowhere left to report to; stay silent for Claude Code
        pass


if __name__ == "__main__":  # python -m agent_aggregator.hook
    run()
