"""`python app.py check`: read-only calls against Slack and every source; a table of what works and what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from bot.chat.slack.check import SCOPES
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.slack_api import FakeSlack

ROOT = Path(__file__).resolve().parent.parent


def run_check(tmp_path: Path, slack: FakeSlack, mastodon: FakeMastodon, **env: str) -> subprocess.CompletedProcess[str]:
    config = {"slack": {"channel": "C0CASES", "escalation_channel": "C0ESC"},
              "sources": {"generic": {}, "mastodon": {"base_url": mastodon.url}}}
    (tmp_path / "socialops.yml").write_text(yaml.safe_dump(config))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SOCIALOPS_", "MASTODON", "GENERIC"))}
    base.update({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": slack.url,
                 "SOCIALOPS_CONFIG": str(tmp_path / "socialops.yml"), "GENERIC_WEBHOOK_SECRET": "g",
                 "MASTODON_TOKEN": mastodon.token, **env})
    return subprocess.run([sys.executable, str(ROOT / "app.py"), "check"], env=base, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def test_everything_works(tmp_path: Path, fake_slack: FakeSlack, mastodon: FakeMastodon) -> None:
    result = run_check(tmp_path, fake_slack, mastodon)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("Slack scopes") and " ok " in line for line in lines)
    assert any(line.startswith("Mastodon token") and " ok " in line for line in lines)
    assert lines[-1] == "everything works"
    assert "xoxb-test" not in result.stdout and mastodon.token not in result.stdout
    called = {c["method"] for c in fake_slack.calls()}
    assert called <= {"auth.test", "conversations.history"}  # read-only


def test_problems_are_named_with_what_to_fix(tmp_path: Path, fake_slack: FakeSlack, mastodon: FakeMastodon) -> None:
    fake_slack.workspace.scopes = [s for s in SCOPES if s != "channels:history"]
    fake_slack.workspace.not_in_channels = {"C0ESC"}
    result = run_check(tmp_path, fake_slack, mastodon, MASTODON_TOKEN="revoked-token")
    assert result.returncode == 1
    out = result.stdout
    assert "Slack scopes" in out and "missing channels:history" in out and "reinstall the app" in out
    assert "Slack channel C0ESC" in out and "not_in_channel" in out and "/invite @SocialOps" in out
    assert "Mastodon token" in out and "FAIL" in out and "set MASTODON_TOKEN" in out
    assert out.splitlines()[-1] == "3 problem(s) to fix"
    assert "revoked-token" not in out


def test_a_wrong_slack_token_is_reported(tmp_path: Path, fake_slack: FakeSlack, mastodon: FakeMastodon) -> None:
    result = run_check(tmp_path, fake_slack, mastodon, SLACK_BOT_TOKEN="xoxb-wrong")
    assert result.returncode == 1
    assert "invalid_auth" in result.stdout and "SLACK_BOT_TOKEN" in result.stdout


def test_manifest_and_check_ask_for_the_same_scopes() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(SCOPES)
