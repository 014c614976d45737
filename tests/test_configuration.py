"""A config or settings mistake names the key and the problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.config import ConfigError, Settings, config_from_mapping, load_config, parse_duration

ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_example_is_valid_and_routes_mastodon_dms() -> None:
    config = load_config(ROOT / "socialops.example.yml")
    assert config.slack.channel == "C0CASES"
    assert config.channel_for(platform="mastodon", kind="dm") == "C0DMS"
    assert config.channel_for(platform="mastodon", kind="mention") == "C0CASES"
    assert config.followups[0].after == 86400
    assert config.sources.generic is not None and config.sources.mastodon is None  # Mastodon: opt in


def test_the_example_with_every_source_uncommented_is_valid(tmp_path: Path) -> None:
    text = (ROOT / "socialops.example.yml").read_text()
    enabled = re.sub(r"^(\s*)# (?=(?:  )?[a-z_]+:)", r"\1", text, flags=re.MULTILINE)
    (tmp_path / "everything.yml").write_text(enabled)
    config = load_config(tmp_path / "everything.yml")
    assert config.sources.mastodon is not None and config.sources.mastodon.poll_every == 30
    assert config.sources.mastodon.base_url == "https://mastodon.example"
    assert config.sources.x is not None and config.sources.x.keywords == ["acme", "#acmefail"]
    assert config.sources.x.poll_every == 60
    assert config.sources.meta is not None and config.sources.meta.page_id == "1234567890"
    assert config.sources.bluesky is not None and config.sources.bluesky.handle == "acme.bsky.social"
    assert config.sources.google_reviews is not None and config.sources.google_reviews.locations == ["locations/456"]
    assert config.slack.admin == "C0ADMIN"
    assert config.oncall is not None and config.oncall.rotations[0]["people"] == ["U0ALICE", "U0BOB"]
    assert [level.after for level in config.escalation] == [0, 600]
    assert config.business_hours is not None and config.business_hours.timezone == "Europe/Berlin"
    assert config.away_message is not None and config.away_message.at_most_every == 43200


@pytest.mark.parametrize(("change", "message"), [
    ({"slack": {"escalation_channel": "C0ESC"}}, "slack.channel: is required"),
    ({"slack": {"channel": "general", "escalation_channel": "C0ESC"}}, "slack.channel: 'general' is not a Slack channel id"),
    ({"followups": [{"after": "soon", "text": "x"}]}, "followups.0.after: 'soon' is not a duration"),
    ({"slack": {"channel": "C1", "escalation_channel": "C0ESC", "oncall": "bob"}}, "slack.oncall: 'bob' is not a Slack user id"),
    ({"sources": {"mastodon": {"base_url": "mastodon.example"}}}, "sources.mastodon.base_url: must start with http"),
    ({"sorces": {}}, "sorces: is not a known key"),
])
def test_config_errors_name_the_key(change: dict[str, object], message: str) -> None:
    data: dict[str, object] = {"slack": {"channel": "C0CASES", "escalation_channel": "C0ESC"}}
    data.update(change)
    with pytest.raises(ConfigError) as raised:
        config_from_mapping(data)
    assert message in str(raised.value)


def test_unreadable_or_broken_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SOCIALOPS_CONFIG: cannot read"):
        load_config(tmp_path / "missing.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("slack: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    broken.write_text(yaml.safe_dump(["a list"]))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(broken)


def test_durations() -> None:
    assert [parse_duration(v) for v in ("30s", "5m", "2h", "1d", 12)] == [30, 300, 7200, 86400, 12]
    for bad in ("0s", "-1m", "1w", True, None):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_settings_name_what_to_set() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({})
    assert "SLACK_BOT_TOKEN" in str(raised.value) and "SLACK_SIGNING_SECRET" in str(raised.value)
    with pytest.raises(ConfigError, match="PORT: 'abc'"):
        Settings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "PORT": "abc"})
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN: expected an app-level token"):
        Settings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-2"})
    socket = Settings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1", "PORT": "8080",
                                "SLACK_API_URL": "http://127.0.0.1:9/api"})
    assert socket.port == 8080 and socket.slack_api_url == "http://127.0.0.1:9/api/"
    assert Settings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}).database_url.startswith("sqlite")
