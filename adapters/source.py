"""What every platform package hands the composition root: its senders, polled feeds, webhook and checks.

Each `adapters/<platform>/source.py` has `make(*, config, env, http) -> SourceParts`. `app.py` builds the
configured ones (see `adapters/registry.py`) and wires them: senders into the outbox, feeds into one
poller task per source (so one slow or failing platform never delays another), the webhook at
`GET|POST /webhooks/<name>`, checks into `python app.py check`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response

from bot.config import ConfigError
from bot.core.model import Item
from bot.core.ports import Check, Feed, Sender
from bot.services.ingest import Accepted

Endpoint = Callable[[Request], Awaitable[Response]]


class Intake(Protocol):
    """How a webhook hands items to the bot (both answer only after the items are committed)."""

    async def accept(self, item: Item) -> Accepted:
        """One item, committed together with others arriving at the same moment."""
        ...

    async def ingest(self, items: list[Item], *, cursor: tuple[str, str] | None = None) -> list[Accepted]:
        """Several items in one transaction."""
        ...


@dataclass
class SourceParts:
    name: str
    """The config key and webhook path: "x", "meta", "bluesky", "google_reviews"."""
    senders: dict[str, Sender] = field(default_factory=dict)
    """By the `via` their items put in reply_to."""
    feeds: list[Feed] = field(default_factory=list)
    every: float = 60.0
    """Seconds between two polling rounds."""
    spread: float = 0.0
    """Seconds between two feeds within a round."""
    webhook: Callable[[Intake], Endpoint] | None = None
    check: Callable[[], Awaitable[list[Check]]] | None = None
    """Read-only calls that prove the credentials work, for `python app.py check`."""


def secret(env: Mapping[str, str], name: str | None, key: str) -> str:
    """The credential in environment variable `name` (named by config key `key`), or a ConfigError."""
    value = env.get(name or "")
    if not name or not value:
        raise ConfigError(f"{name or key}: set this environment variable (named by {key} in the config file)")
    return value


__all__ = ["Endpoint", "Intake", "SourceParts", "secret"]
