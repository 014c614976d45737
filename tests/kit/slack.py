"""Sending requests to `/slack/events` exactly as Slack does: form-encoded and signed."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

SIGNING_SECRET = "test-signing-secret"
TEAM = {"id": "T0FAKE", "domain": "acme"}


def signed_headers(body: bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None,
                   content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature, "Content-Type": content_type}


def user(user_id: str, name: str) -> dict[str, str]:
    return {"id": user_id, "username": name.lower(), "name": name, "team_id": "T0FAKE"}


def block_action(*, user_id: str, name: str, action_id: str, value: str, channel: str, message: dict[str, Any],
                 ephemeral: bool = False) -> dict[str, Any]:
    """A block_actions payload for a button on a message (shape of Slack's documented examples).

    Clicks on ephemeral messages carry no `message`, only the container, as Slack sends them.
    """
    payload = {
        "type": "block_actions", "user": user(user_id, name), "api_app_id": "AFAKE", "token": "legacy",
        "container": {"type": "message", "message_ts": message.get("ts", "0"), "channel_id": channel,
                      "is_ephemeral": ephemeral},
        "trigger_id": f"trigger-{time.monotonic_ns()}", "team": TEAM, "enterprise": None,
        "is_enterprise_install": False, "channel": {"id": channel, "name": "cases"},
        "message": message, "state": {"values": {}}, "response_url": "https://hooks.slack.test/actions/1",
        "actions": [{"action_id": action_id, "block_id": "actions", "text": {"type": "plain_text", "text": "x"},
                     "value": value, "type": "button", "action_ts": f"{time.time():.6f}"}],
    }
    if ephemeral:
        del payload["message"]
    return payload


def view_submission(*, user_id: str, name: str, view: dict[str, Any], values: dict[str, dict[str, Any]],
                    ) -> dict[str, Any]:
    """A view_submission payload for a modal the bot opened, with the typed `values`."""
    return {
        "type": "view_submission", "team": TEAM, "user": user(user_id, name), "api_app_id": "AFAKE",
        "token": "legacy", "trigger_id": f"trigger-{time.monotonic_ns()}",
        "view": {**view, "state": {"values": values}, "team_id": "T0FAKE", "app_id": "AFAKE", "bot_id": "BFAKE"},
        "response_urls": [],
    }


def shown(message: dict[str, Any]) -> str:
    """What a Slack message shows: the text of its sections, fields, context lines and buttons."""
    parts: list[str] = []
    for block in message.get("blocks") or []:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        parts.extend(field["text"] for field in block.get("fields") or [])
        for element in block.get("elements") or []:
            if element.get("type") in ("mrkdwn", "plain_text"):
                parts.append(element["text"])
            elif element.get("type") == "button":
                parts.append(element["text"]["text"])
    return "\n".join(parts)


def find_action(message: dict[str, Any], action_id: str) -> dict[str, Any] | None:
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return element  # type: ignore[no-any-return]
    return None


class SlackUser:
    """One person clicking in Slack: posts signed interactions to the bot."""

    def __init__(self, http: httpx.AsyncClient, user_id: str, name: str) -> None:
        self.http, self.id, self.name = http, user_id, name

    async def post(self, payload: dict[str, Any]) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.http.post("/slack/events", content=body, headers=signed_headers(body))

    async def click(self, message: dict[str, Any], action_id: str, *, channel: str,
                    ephemeral: bool = False) -> httpx.Response:
        element = find_action(message, action_id)
        assert element is not None, f"no {action_id} button on {json.dumps(message.get('blocks'))[:800]}"
        return await self.post(block_action(user_id=self.id, name=self.name, action_id=action_id,
                                            value=element["value"], channel=channel, message=message,
                                            ephemeral=ephemeral))

    async def choose(self, message: dict[str, Any], action_id: str, value: str, *, channel: str) -> httpx.Response:
        """Pick an option of a static_select on a message (the payload carries `selected_option`)."""
        element = find_action(message, action_id)
        assert element is not None and element["type"] == "static_select", f"no {action_id} menu"
        option = next(o for o in element["options"] if o["value"] == value)
        payload = block_action(user_id=self.id, name=self.name, action_id=action_id, value="", channel=channel,
                               message=message)
        payload["actions"] = [{"action_id": action_id, "block_id": "actions", "type": "static_select",
                               "selected_option": option, "action_ts": f"{time.time():.6f}"}]
        return await self.post(payload)

    async def submit(self, view: dict[str, Any], values: dict[str, dict[str, Any]]) -> httpx.Response:
        return await self.post(view_submission(user_id=self.id, name=self.name, view=view, values=values))

    async def command(self, text: str, *, channel: str = "C0CASES") -> httpx.Response:
        body = urlencode({
            "token": "legacy", "team_id": "T0FAKE", "team_domain": "acme", "channel_id": channel,
            "channel_name": "cases", "user_id": self.id, "user_name": self.name.lower(), "command": "/social",
            "text": text, "api_app_id": "AFAKE", "response_url": "https://hooks.slack.test/commands/1",
            "trigger_id": f"trigger-{time.monotonic_ns()}",
        }).encode()
        return await self.http.post("/slack/events", content=body, headers=signed_headers(body))
