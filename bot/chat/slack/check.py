"""`python app.py check` for Slack: the token works, has the scopes the manifest asks for, and can see the
configured channels' history (read-only calls only)."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Config
from bot.core.ports import Check

SCOPES = ("chat:write", "commands", "channels:history", "groups:history", "usergroups:write")
"""What manifest.yml asks for (a test keeps the two equal)."""


async def check_slack(client: AsyncWebClient, config: Config) -> list[Check]:
    try:
        answer = await client.auth_test()
    except SlackApiError as error:
        code = error.response.get("error") if error.response is not None else str(error)
        return [Check("Slack token", False, f"auth.test: {code}",
                      "set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-…) of the installed app")]
    rows = [Check("Slack token", True, f"{answer.get('user')} in {answer.get('team')}")]
    granted = {s.strip() for s in str(answer.headers.get("x-oauth-scopes", "")).split(",") if s.strip()}
    missing = [scope for scope in SCOPES if scope not in granted]
    rows.append(Check("Slack scopes", not missing, "all granted" if not missing else f"missing {', '.join(missing)}",
                      "" if not missing else "add them under OAuth & Permissions (or re-create the app from "
                      "manifest.yml) and reinstall the app"))
    slack = config.slack
    assert slack is not None
    channels = dict.fromkeys([slack.channel, slack.escalation_channel, slack.admin,
                              *(route.channel for route in config.routes if route.channel)])
    for channel in channels:
        try:
            await client.conversations_history(channel=channel, limit=1)
        except SlackApiError as error:
            code = error.response.get("error") if error.response is not None else str(error)
            fix = "invite the bot: /invite @SocialOps" if code in ("not_in_channel", "channel_not_found") else ""
            rows.append(Check(f"Slack channel {channel}", False, code, fix))
        else:
            rows.append(Check(f"Slack channel {channel}", True, "the bot can read it"))
    return rows
