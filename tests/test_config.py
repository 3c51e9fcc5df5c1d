"""Configuration layering, validation, dotted access, logging setup."""

from __future__ import annotations

import logging
import logging.handlers
import shutil
from pathlib import Path

import pytest

from agent_aggregator.config import (
    CAPTURE_KEYS,
    LOGGER_NAME,
    Config,
    load_config,
    setup_logging,
)
from agent_aggregator.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
NO_FILE = Path("/nonexistent/agent-aggregator/configuration.yaml")


def write_config(directory: Path, text: str) -> Path:
    path = directory / ".claude-mpm" / "configuration.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(project: Path, **kwargs) -> Config:
    kwargs.setdefault("environ", {})
    kwargs.setdefault("user_config", NO_FILE)
    return load_config(project, **kwargs)


def test_defaults_are_the_seeds_values_with_paths_under_the_project(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config.enabled is True
    assert config.activity_directory == tmp_path / ".claude-mpm" / "activity"
    assert config.dashboard_port == 8765
    assert config.session_timeout_minutes == 60
    assert config.auto_cleanup_days == 30
    assert config.capture == {key: True for key in CAPTURE_KEYS}
    assert set(CAPTURE_KEYS) == {
        "user_prompts", "agent_delegations", "tool_operations", "file_operations",
        "todo_updates", "responses", "memory_events",
    }
    assert config.dashboard_host == "localhost"
    assert config.debug is False
    assert config.log_file == tmp_path / ".claude-mpm" / "logs" / "aggregator.log"
    assert config.journal is True
    assert config.config_files == ()


def test_project_file_is_read_and_other_sections_ignored(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "claude_mpm:\n  anything: [1, 2]\n"
        "event_aggregator:\n"
        "  activity_directory: data/sessions\n"
        "  dashboard_port: 9000\n"
        "  capture:\n    responses: false\n",
    )
    config = load(tmp_path)
    assert config.activity_directory == tmp_path / "data" / "sessions"
    assert config.dashboard_port == 9000
    assert config.capture["responses"] is False
    assert config.capture["tool_operations"] is True
    assert config.config_files == (str(path),)


def test_precedence_user_project_environment_overrides(tmp_path: Path) -> None:
    user = tmp_path / "home" / "configuration.yaml"
    user.parent.mkdir()
    user.write_text(
        "event_aggregator:\n  dashboard_port: 1111\n  session_timeout_minutes: 5\n"
        "  auto_cleanup_days: 7\n  dashboard_host: user-host\n",
        encoding="utf-8",
    )
    project = tmp_path / "project"
    write_config(project, "event_aggregator:\n  dashboard_port: 2222\n  session_timeout_minutes: 6\n  auto_cleanup_days: 8\n")
    environ = {
        "CLAUDE_MPM_AGGREGATOR_SESSION_TIMEOUT_MINUTES": "9",
        "CLAUDE_MPM_AGGREGATOR_AUTO_CLEANUP_DAYS": "10",
        "UNRELATED": "x",
    }
    config = load_config(project, user_config=user, environ=environ, overrides={"auto_cleanup_days": 11, "dashboard_port": None})
    assert config.dashboard_host == "user-host"  # only the user file sets it
    assert config.dashboard_port == 2222  # project beats user; a None override is "not given"
    assert config.session_timeout_minutes == 9  # environment beats files
    assert config.auto_cleanup_days == 11  # flags beat everything
    assert config.config_files == (str(user), str(project / ".claude-mpm" / "configuration.yaml"), "environment")


def test_environment_values_are_parsed(tmp_path: Path) -> None:
    environ = {
        "CLAUDE_MPM_AGGREGATOR_DEBUG": "yes",
        "CLAUDE_MPM_AGGREGATOR_ACTIVITY_DIRECTORY": "elsewhere",
        "CLAUDE_MPM_AGGREGATOR_DASHBOARD_HOST": "127.0.0.1",
        "CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT": " 8766 ",
        "CLAUDE_MPM_AGGREGATOR_JOURNAL": "0",
        "CLAUDE_MPM_AGGREGATOR_CAPTURE_TODO_UPDATES": "off",
    }
    config = load(tmp_path, environ=environ)
    assert config.debug is True
    assert config.activity_directory == tmp_path / "elsewhere"
    assert config.dashboard_host == "127.0.0.1"
    assert config.dashboard_port == 8766
    assert config.journal is False
    assert config.capture["todo_updates"] is False
    for word in ("true", "1", "TRUE", "on"):
        assert load(tmp_path, environ={"CLAUDE_MPM_AGGREGATOR_DEBUG": word}).debug is True
    for word in ("false", "0", "no", ""):
        assert load(tmp_path, environ={"CLAUDE_MPM_AGGREGATOR_DEBUG": word}).debug is False


def test_absolute_and_home_paths_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load(tmp_path, overrides={"activity_directory": "~/sessions", "log_file": tmp_path / "abs.log"})
    assert config.activity_directory == tmp_path / "home" / "sessions"
    assert config.log_file == tmp_path / "abs.log"


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("event_aggregator:\n  dashboard_port: abc\n", "dashboard_port"),
        ("event_aggregator:\n  dashboard_port: 70000\n", "dashboard_port"),
        ("event_aggregator:\n  dashboard_port: 0\n", "dashboard_port"),
        ("event_aggregator:\n  dashboard_port: true\n", "dashboard_port"),
        ("event_aggregator:\n  session_timeout_minutes: -5\n", "session_timeout_minutes"),
        ("event_aggregator:\n  auto_cleanup_days: -1\n", "auto_cleanup_days"),
        ("event_aggregator:\n  debug: maybe\n", "debug"),
        ("event_aggregator:\n  activity_directory: ''\n", "activity_directory"),
        ("event_aggregator:\n  activity_directory: [a]\n", "activity_directory"),
        ("event_aggregator:\n  capture: yes\n", "capture"),
        ("event_aggregator:\n  capture:\n    responses: sometimes\n", "capture.responses"),
    ],
)
def test_bad_values_name_the_file_and_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    path = write_config(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as caught:
        load(tmp_path)
    message = str(caught.value)
    assert str(path) in message
    assert f"event_aggregator.{key}" in message
    assert "\n" not in message


def test_invalid_yaml_is_one_line_with_position(tmp_path: Path) -> None:
    path = write_config(tmp_path, "event_aggregator:\n  dashboard_port: [8765\n  debug: true\n")
    with pytest.raises(ConfigError) as caught:
        load(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid YAML at line ")
    assert "\n" not in message


@pytest.mark.parametrize("text", ["- a list\n- at top\n", "event_aggregator: 42\n"])
def test_wrong_shapes_are_config_errors(tmp_path: Path, text: str) -> None:
    write_config(tmp_path, text)
    with pytest.raises(ConfigError):
        load(tmp_path)


def test_empty_file_and_empty_section_mean_defaults(tmp_path: Path) -> None:
    write_config(tmp_path, "")
    assert load(tmp_path) == Config(activity_directory=tmp_path / ".claude-mpm/activity",
                                     log_file=tmp_path / ".claude-mpm/logs/aggregator.log")
    write_config(tmp_path, "event_aggregator:\n")
    assert load(tmp_path).dashboard_port == 8765


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT.*dashboard_port"):
        load(tmp_path, environ={"CLAUDE_MPM_AGGREGATOR_DASHBOARD_PORT": "http"})
    with pytest.raises(ConfigError, match="CLAUDE_MPM_AGGREGATOR_DEBUG"):
        load(tmp_path, environ={"CLAUDE_MPM_AGGREGATOR_DEBUG": "sure"})


def test_unknown_keys_warn_and_continue(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_config(tmp_path, "event_aggregator:\n  dashbord_port: 1\n  capture:\n    everything: true\n  debug: true\n")
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        config = load(tmp_path, environ={"CLAUDE_MPM_AGGREGATOR_COLOUR": "red"})
    assert config.debug is True
    assert config.dashboard_port == 8765
    text = caplog.text
    assert "dashbord_port" in text
    assert "capture.everything" in text
    assert "CLAUDE_MPM_AGGREGATOR_COLOUR" in text


def test_unknown_override_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="save_dir"):
        load(tmp_path, overrides={"save_dir": "x"})


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / ".claude-mpm" / "configuration.yaml"
    path.mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path)


def test_dotted_get_as_in_the_seeds(tmp_path: Path) -> None:
    config = load(tmp_path, overrides={"capture": {"responses": False}})
    assert config.get("event_aggregator.activity_directory") == tmp_path / ".claude-mpm" / "activity"
    assert config.get("event_aggregator.session_timeout_minutes") == 60
    assert config.get("session_timeout_minutes") == 60
    capture = config.get("event_aggregator.capture")
    assert capture["responses"] is False and capture["user_prompts"] is True
    capture["user_prompts"] = False  # a copy: the config is not changed through it
    assert config.capture["user_prompts"] is True
    assert config.get("event_aggregator.capture.responses") is False
    assert config.get("event_aggregator.nope", "fallback") == "fallback"
    assert config.get("event_aggregator.capture.nope") is None
    assert config.get("other_section.activity_directory") is None
    assert config.captures("responses") is False
    assert config.captures("tool_operations") is True


def test_to_dict_round_trips_through_yaml(tmp_path: Path) -> None:
    import yaml

    config = load(tmp_path, overrides={"dashboard_port": 9999, "capture": {"memory_events": False}})
    write_config(tmp_path / "copy", yaml.safe_dump(config.to_dict()))
    assert load(tmp_path / "copy") == config


def test_example_configuration_loads_and_equals_the_defaults(tmp_path: Path) -> None:
    example = REPO / "configuration.example.yaml"
    defaults = load(tmp_path)
    target = tmp_path / ".claude-mpm" / "configuration.yaml"
    target.parent.mkdir()
    shutil.copy(example, target)
    loaded = load(tmp_path)
    assert loaded.config_files == (str(target),)
    assert loaded == defaults
    # Every key of the dataclass is documented in the example.
    text = example.read_text(encoding="utf-8")
    for key in Config().to_dict()["event_aggregator"]:
        assert f"  {key}:" in text
    for key in CAPTURE_KEYS:
        assert f"    {key}:" in text


@pytest.fixture
def clean_logger():
    logger = logging.getLogger(LOGGER_NAME)
    before = (list(logger.handlers), logger.level)
    yield logger
    for handler in list(logger.handlers):
        if handler not in before[0]:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(before[1])


def test_setup_logging_debug_writes_the_log_file(tmp_path: Path, clean_logger: logging.Logger) -> None:
    config = load(tmp_path, overrides={"debug": True, "log_file": "logs/deep/agg.log"})
    path = setup_logging(config, stderr=False)
    assert path == tmp_path / "logs" / "deep" / "agg.log"
    logging.getLogger(f"{LOGGER_NAME}.test").debug("hello %s", "debug")
    for handler in clean_logger.handlers:
        handler.flush()
    assert "hello debug" in path.read_text(encoding="utf-8")
    rotating = [h for h in clean_logger.handlers if isinstance(h, logging.handlers.RotatingFileHandler)]
    assert len(rotating) == 1
    assert rotating[0].maxBytes == 5 * 1024 * 1024 and rotating[0].backupCount == 3


def test_setup_logging_plain_warnings_to_stderr(tmp_path: Path, clean_logger: logging.Logger, capsys) -> None:
    config = load(tmp_path)
    assert setup_logging(config) is None
    setup_logging(config)  # a second call replaces, not duplicates, its handlers
    log = logging.getLogger(f"{LOGGER_NAME}.test")
    log.info("not shown")
    log.warning("disk is\nfull")
    err = capsys.readouterr().err
    assert err == "aggregate: warning: disk is full\n"
    assert not (tmp_path / ".claude-mpm" / "logs").exists()


def test_setup_logging_without_stderr_is_silent(tmp_path: Path, clean_logger: logging.Logger, capsys) -> None:
    setup_logging(load(tmp_path), stderr=False)
    logging.getLogger(f"{LOGGER_NAME}.test").warning("quiet please")
    assert capsys.readouterr().err == ""


def test_setup_logging_unopenable_log_falls_back_to_stderr(tmp_path: Path, clean_logger: logging.Logger, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    config = load(tmp_path, overrides={"debug": True, "log_file": blocker / "sub" / "agg.log"})
    assert setup_logging(config) is None
    err = capsys.readouterr().err
    assert err.startswith("aggregate: warning: cannot open debug log")
