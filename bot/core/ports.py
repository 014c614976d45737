"""Ports the services call; desks and sources implement them."""

from __future__ import annotations

from typing import Any, Protocol

from bot.core.model import Delivery


class Sender(Protocol):
    """Sends a message to the customer on one platform, exactly once per idempotency key."""

    platform: str
    max_length: int

    async def send(self, *, reply_to: dict[str, Any], text: str, idempotency_key: str) -> Delivery: ...

    def compose(self, *, reply_to: dict[str, Any], text: str) -> str:
        """The text as it will appear on the platform (e.g. with the @acct prefix)."""
        ...
