"""Replies for generic-webhook cases: POSTed, signed, to the `reply_url` the event carried (or the
configured `default_reply_url` when it carried none). Public statements go to the `default_reply_url`,
marked `"statement": true` and answering nobody."""

from __future__ import annotations

import json
from typing import Any

import httpx

from adapters import signing
from adapters.http import error_for, network_error
from bot.core.errors import SendError
from bot.core.model import Delivery


class GenericSender:
    platform = "generic"

    def __init__(self, *, http: httpx.AsyncClient, secret: str, max_length: int,
                 default_reply_url: str | None = None) -> None:
        self._http = http
        self._secret = secret
        self.max_length = max_length
        self.announce_limit = max_length
        self._default_url = default_reply_url

    def compose(self, *, reply_to: dict[str, Any], text: str) -> str:
        return text

    async def send(self, *, reply_to: dict[str, Any], text: str, idempotency_key: str) -> Delivery:
        url = reply_to.get("reply_url") or self._default_url
        if not url:
            raise SendError("this event came without a reply_url, so there is nowhere to send the reply",
                            permanent=True)
        return await self._post(str(url), idempotency_key, {"in_reply_to": reply_to.get("in_reply_to"),
                                                            "conversation": reply_to.get("conversation"),
                                                            "text": text})

    async def announce(self, *, text: str, idempotency_key: str) -> Delivery:
        """A statement belongs to no event, so only the configured `default_reply_url` can take it."""
        if not self._default_url:
            raise SendError("sources.generic.default_reply_url is not set, so there is nowhere to send a "
                            "public statement", permanent=True)
        return await self._post(self._default_url, idempotency_key,
                                {"statement": True, "in_reply_to": None, "conversation": None, "text": text})

    async def _post(self, url: str, idempotency_key: str, fields: dict[str, Any]) -> Delivery:
        """POSTs `fields` and the key, signed, with the Idempotency-Key header the receiver dedupes on."""
        body = json.dumps({**fields, "idempotency_key": idempotency_key}).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key,
                   **signing.headers(self._secret, body)}
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise network_error(error, "reply_url") from None
        if not response.is_success:
            raise error_for(response, "reply_url")
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        sent_id, sent_url = answer.get("id"), answer.get("url")
        return Delivery(platform_id=str(sent_id) if sent_id is not None else None,
                        url=str(sent_url) if isinstance(sent_url, str) and sent_url.startswith("http") else None)
