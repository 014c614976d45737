"""Sending activities to `/api/messages` as Teams does, and reading what the bot posted to the fake Bot Connector."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from tests.fakes.teams_connector import FakeBotConnector

CHANNEL = "19:cases@thread.tacv2"
ESCALATIONS = "19:escalations@thread.tacv2"
TEAM = "19:team@thread.tacv2"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
BOT_ID = "28:socialops-bot"
_ids = itertools.count(1)


def teams_config(service_url: str, **overrides: Any) -> dict[str, Any]:
    return {"service_url": service_url, "channel": CHANNEL, "escalation_channel": ESCALATIONS,
            "oncall": "29:carol", "oncall_name": "Carol", **overrides}


def envelope(user_id: str, name: str, *, service_url: str, conversation: str, reply_to: str | None = None
             ) -> dict[str, Any]:
    """What every Teams activity carries (shape of the documented channel examples)."""
    activity: dict[str, Any] = {
        "id": f"f:{next(_ids)}", "timestamp": "2026-12-02T10:00:00.000Z", "channelId": "msteams",
        "serviceUrl": service_url, "from": {"id": user_id, "name": name, "aadObjectId": f"aad-{user_id}"},
        "conversation": {"id": conversation, "conversationType": "channel", "isGroup": True, "tenantId": TENANT},
        "recipient": {"id": BOT_ID, "name": "SocialOps"}, "locale": "en-US",
        "channelData": {"channel": {"id": CHANNEL}, "team": {"id": TEAM}, "tenant": {"id": TENANT}},
        "entities": [{"type": "clientInfo", "locale": "en-US", "country": "US", "platform": "Web"}],
    }
    if reply_to:
        activity["replyToId"] = reply_to
    return activity


class TeamsUser:
    """A person in the Teams channel, clicking and typing through the bot's `/api/messages`."""

    def __init__(self, http: httpx.AsyncClient, user_id: str, name: str, *, service_url: str,
                 token: Any = None) -> None:
        self.http, self.id, self.name, self.service_url = http, user_id, name, service_url
        self.token = token
        """None, a string (the bearer token), or a callable returning one per request."""

    def _headers(self) -> dict[str, str]:
        token = self.token() if callable(self.token) else self.token
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def send(self, activity: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/api/messages", json=activity, headers=self._headers())

    def _envelope(self, card_id: str | None = None, conversation: str = CHANNEL) -> dict[str, Any]:
        return envelope(self.id, self.name, service_url=self.service_url, conversation=conversation,
                        reply_to=card_id)

    async def execute(self, verb: str, data: dict[str, Any], card_id: str | None = None) -> httpx.Response:
        """An Action.Execute click: invoke `adaptiveCard/action` (inputs merged into data, as Teams does)."""
        activity = {**self._envelope(card_id), "type": "invoke", "name": "adaptiveCard/action",
                    "value": {"action": {"type": "Action.Execute", "id": f"a{next(_ids)}", "verb": verb,
                                         "data": data}, "trigger": "manual"}}
        return await self.send(activity)

    async def click(self, card: dict[str, Any], title: str, card_id: str | None = None,
                    **inputs: Any) -> dict[str, Any]:
        """Click the button titled `title` on `card`; returns the invoke response body (an AdaptiveCardInvokeResponse)."""
        action = button(card, title)
        assert action is not None, f"no button {title!r} on the card: {[a.get('title') for a in card.get('actions', [])]}"
        response = await self.execute(action["verb"], {**action.get("data", {}), **inputs}, card_id)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def submit(self, data: dict[str, Any], card_id: str | None = None) -> httpx.Response:
        """An Action.Submit click: a message activity whose `value` is the action's data plus the inputs."""
        return await self.send({**self._envelope(card_id), "type": "message", "value": data})

    async def task(self, name: str, data: dict[str, Any]) -> httpx.Response:
        """A dialog (task module) invoke: `task/fetch` or `task/submit`."""
        return await self.send({**self._envelope(), "type": "invoke", "name": name, "value": {"data": data}})

    async def say(self, text: str, conversation: str = CHANNEL) -> httpx.Response:
        """A message to the bot (in a channel it starts with the bot's mention)."""
        activity = {**self._envelope(conversation=conversation), "type": "message", "textFormat": "plain",
                    "text": f"<at>SocialOps</at> {text}",
                    "entities": [{"type": "mention", "text": "<at>SocialOps</at>",
                                  "mentioned": {"id": BOT_ID, "name": "SocialOps"}}]}
        return await self.send(activity)


def button(card: dict[str, Any], title: str) -> dict[str, Any] | None:
    return next((a for a in card.get("actions", []) if a.get("title") == title), None)


def opened(card: dict[str, Any], title: str) -> dict[str, Any]:
    """The form a button opens inside the card (Action.ShowCard), as the reader's client shows it."""
    action = button(card, title)
    assert action is not None and action["type"] == "Action.ShowCard", action
    return dict(action["card"])


def field(card: dict[str, Any], input_id: str) -> dict[str, Any]:
    return next(item for item in card["body"] if item.get("id") == input_id)


def told(answer: dict[str, Any]) -> str:
    """The note Teams shows only to the person who clicked (the card stays as it was)."""
    assert answer["statusCode"] == 200 and answer["type"] == "application/vnd.microsoft.activity.message", answer
    return str(answer["value"])


def text_of(card: dict[str, Any]) -> str:
    """Everything a person reads on a card: TextBlocks, TextRuns, facts, input values, button titles."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("text", "title", "value", "label", "placeholder"):
                if isinstance(node.get(key), str):
                    out.append(node[key])
            for value in node.values():
                if isinstance(value, list | dict):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return "\n".join(out)


def invoked_card(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["statusCode"] == 200 and answer["type"] == "application/vnd.microsoft.card.adaptive", answer
    return dict(answer["value"])


def case_cards(connector: FakeBotConnector, conversation: str = CHANNEL) -> list[dict[str, Any]]:
    """Root posts in the channel carrying a case card: {id, card, updated}."""
    found = []
    for stored in connector.activities(conversation):
        if stored.get("reply_to"):
            continue
        for attachment in stored["activity"].get("attachments") or []:
            content = attachment.get("content") or {}
            if "case #" in text_of(content):
                found.append({"id": stored["id"], "card": content, "updated": stored["updated"]})
    return found


def thread(connector: FakeBotConnector, card_id: str, conversation: str = CHANNEL) -> list[dict[str, Any]]:
    """The activities posted in a card's thread (the conversation `{channel};messageid={card id}`), oldest first."""
    return connector.activities(f"{conversation};messageid={card_id}")
