"""The generic webhook as a source: any listening tool posts signed events; replies go to its reply_url."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from adapters.generic.client import GenericSender
from adapters.generic.webhook import generic_webhook
from adapters.source import Endpoint, Intake, SourceParts, secret
from bot.config import GenericSource
from bot.core.ports import Check, TokenStore


def make(*, config: GenericSource, env: Mapping[str, str], http: httpx.AsyncClient,
         store: TokenStore | None = None) -> SourceParts:
    key = secret(env, config.secret_env, "sources.generic.secret_env")
    sender = GenericSender(http=http, secret=key, max_length=config.max_length,
                           default_reply_url=config.default_reply_url)

    def webhook(intake: Intake) -> Endpoint:
        return generic_webhook(secret=key, accept=intake.accept)

    async def check() -> list[Check]:
        where = config.default_reply_url or "each event's reply_url"
        return [Check("Generic webhook secret", True, f"{config.secret_env} is set; replies go to {where}")]

    return SourceParts(name="generic", senders={"generic": sender}, webhook=webhook, check=check)
