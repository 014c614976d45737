"""`python app.py`: missing or invalid settings get a message naming what to set, and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GOOD = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "secret", "GENERIC_WEBHOOK_SECRET": "g"}


def run_app(tmp_path: Path, env: dict[str, str], config: object | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SOCIALOPS_", "DATABASE_URL"))}
    base["DATABASE_URL"] = f"sqlite:///{tmp_path / 'app.db'}"
    if config is not None:
        (tmp_path / "socialops.yml").write_text(yaml.safe_dump(config))
        base["SOCIALOPS_CONFIG"] = str(tmp_path / "socialops.yml")
    base.update(env)
    return subprocess.run([sys.executable, str(ROOT / "app.py")], env=base, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)


CONFIG = {"slack": {"channel": "C0CASES", "escalation_channel": "C0ESC"},
          "sources": {"generic": {"secret_env": "GENERIC_WEBHOOK_SECRET"}}}


@pytest.mark.parametrize(("env", "config", "expected"), [
    ({"SLACK_SIGNING_SECRET": "s"}, CONFIG, "SLACK_BOT_TOKEN: set it"),  # none at all: the sandbox
    ({"SLACK_BOT_TOKEN": "xoxb-1"}, CONFIG, "SLACK_SIGNING_SECRET: set it"),
    ({**GOOD, "PORT": "http"}, CONFIG, "PORT: 'http' is not a TCP port number"),
    (GOOD, None, "SOCIALOPS_CONFIG: cannot read"),
    (GOOD, {"slack": {"channel": "C0CASES"}}, "slack.escalation_channel: is required"),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}, CONFIG, "GENERIC_WEBHOOK_SECRET: set this environment variable"),
    ({**GOOD, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}, CONFIG, "DATABASE_URL: cannot use the database"),
    ({**GOOD, "DATABASE_URL": "nonsense"}, CONFIG, "DATABASE_URL: cannot use the database"),
])
def test_bad_settings_name_what_to_set_and_exit_non_zero(tmp_path: Path, env: dict[str, str], config: object,
                                                         expected: str) -> None:
    result = run_app(tmp_path, env, config)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert "xoxb-1" not in result.stderr + result.stdout and "secret" not in result.stderr.replace("secret_env", "")


TEAMS_ONLY = {"teams": {"channel": "19:cases@thread.tacv2"}, "sources": {"generic": {"secret_env": "GENERIC_WEBHOOK_SECRET"}}}


def test_a_teams_only_config_runs_the_bot_not_the_sandbox(tmp_path: Path) -> None:
    """No Slack credentials, but a Teams desk configured: the bot starts (here it stops at the missing password)."""
    result = run_app(tmp_path, {"MICROSOFT_APP_ID": "5c3f2a1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b",
                                "GENERIC_WEBHOOK_SECRET": "g"}, TEAMS_ONLY)
    assert result.returncode == 2, result.stderr
    assert "MICROSOFT_APP_PASSWORD: set it to the bot's client secret" in result.stderr
    assert "sandbox" not in result.stderr.lower()


def test_the_teams_package_command_builds_the_zip(tmp_path: Path) -> None:
    out = tmp_path / "app.zip"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_"))}
    result = subprocess.run([sys.executable, str(ROOT / "app.py"), "teams-package", "--out", str(out)],
                            env={**base, "MICROSOFT_APP_ID": "5c3f2a1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b"}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 500 and str(out) in result.stdout
    refused = subprocess.run([sys.executable, str(ROOT / "app.py"), "teams-package"], env=base, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "MICROSOFT_APP_ID" in refused.stderr
