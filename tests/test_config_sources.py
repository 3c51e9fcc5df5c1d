"""The ``sources`` setting (issue 6): YAML, environment, ``--sse``, and bad values as one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent_aggregator.config import SOCKETIO, SSE, SourceSpec, load_config
from agent_aggregator.errors import ConfigError


def project(tmp_path: Path, section: str) -> Path:
    folder = tmp_path / "project" / ".claude-mpm"
    folder.mkdir(parents=True)
    (folder / "configuration.yaml").write_text(f"event_aggregator:\n{section}")
    return tmp_path / "project"


def load(tmp_path: Path, section: str = "", environ: dict[str, str] | None = None):
    return load_config(project(tmp_path, section), environ=environ or {}, user_config=tmp_path / "none.yaml")


def test_default_is_the_socketio_side_only(tmp_path):
    config = load(tmp_path)
    assert config.sources == (SourceSpec(SOCKETIO),)
    assert config.to_dict()["event_aggregator"]["sources"] == [{"type": "socketio"}]
    assert config.config_files == (str(tmp_path / "project" / ".claude-mpm" / "configuration.yaml"),)


def test_yaml_lists_several_sources(tmp_path):
    config = load(tmp_path, "  sources:\n    - type: socketio\n    - {type: sse, url: 'http://127.0.0.1:3000/events'}\n"
                            "    - {type: sse, url: 'http://127.0.0.1:3000/events'}\n")
    assert config.sources == (SourceSpec(SOCKETIO), SourceSpec(SSE, "http://127.0.0.1:3000/events"))  # no duplicate
    assert config.get("event_aggregator.sources") == config.sources


def test_environment_takes_a_comma_separated_list(tmp_path):
    config = load(tmp_path, environ={"CLAUDE_MPM_AGGREGATOR_SOURCES": "http://a:1/events, http://b:2/events"})
    assert config.sources == (SourceSpec(SSE, "http://a:1/events"), SourceSpec(SSE, "http://b:2/events"))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  sources: []\n", "expected a non-empty list"),
        ("  sources: [{type: kafka}]\n", "each source needs type socketio or sse"),
        ("  sources: [{type: sse}]\n", "expected an http:// or https:// URL"),
        ("  sources: [{type: sse, url: 'ftp://x/events'}]\n", "expected an http:// or https:// URL"),
        ("  sources: [{type: socketio, url: 'http://x/'}]\n", "takes no url"),
        ("  sources: [{type: sse, url: 'http://x/', retry: 3}]\n", "unknown key 'retry'"),
    ],
)
def test_bad_sources_are_one_config_error(tmp_path, section, message):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, section)
    assert "event_aggregator.sources" in str(caught.value) and message in str(caught.value)


def test_start_with_a_bad_sse_url_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "agent_aggregator", "--save-dir", str(tmp_path / "a"), "--config-dir", str(tmp_path),
         "start", "--sse", "not a url"],
        capture_output=True, text=True, timeout=60, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "aggregate: error: --sse: expected an http:// or https:// URL, got 'not a url'"
