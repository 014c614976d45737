"""The Slack app manifest is what an admin pastes into Slack: it must pass Slack's published schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((Path(__file__).parent / "fixtures/slack/manifest.schema.1.0.0.json").read_text())


def load_manifest() -> dict[str, object]:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())  # type: ignore[no-any-return]


def test_manifest_passes_slacks_schema() -> None:
    jsonschema.validate(load_manifest(), SCHEMA)


def test_a_typo_in_the_manifest_would_be_caught() -> None:
    manifest = load_manifest()
    manifest["settings"]["interactivity"]["is_enabled"] = "yes"  # type: ignore[index]
    try:
        jsonschema.validate(manifest, SCHEMA)
    except jsonschema.ValidationError:
        return
    raise AssertionError("the schema accepted a string for a boolean")


def test_manifest_asks_only_for_the_scopes_the_code_uses() -> None:
    scopes = set(load_manifest()["oauth_config"]["scopes"]["bot"])  # type: ignore[index]
    assert scopes == {"chat:write", "commands", "channels:history", "groups:history", "usergroups:write"}
    code = "\n".join(p.read_text() for p in (ROOT / "bot").rglob("*.py"))
    methods = set(re.findall(r"self\._client\.(\w+)|client\.(\w+)\(", code))
    used = {m for pair in methods for m in pair if m}
    assert {"conversations_history", "conversations_replies"} <= used  # why channels/groups:history
    assert "chat_postMessage" in used and "chat_update" in used  # why chat:write
    assert "usergroups_users_update" in used  # why usergroups:write (oncall.usergroup)


def test_slash_command_and_interactivity_point_at_the_bots_endpoint() -> None:
    manifest = load_manifest()
    command = manifest["features"]["slash_commands"][0]  # type: ignore[index]
    assert command["command"] == "/social" and command["url"].endswith("/slack/events")
    assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/events")  # type: ignore[index]
