"""Talking to Teams through botbuilder: proactive posts, thread replies and in-place updates, paced within Teams'
limits, with the connector's errors turned into the outbox's SendError.

Proactive messages continue a stored conversation reference (`BotFrameworkAdapter.continue_conversation`), as
Teams wants; a reply in a card's thread is a reply to the card's activity; an update is `update_activity`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from botbuilder.core import BotFrameworkAdapter, TurnContext
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    ChannelAccount,
    ConversationAccount,
    ConversationReference,
    Entity,
)
from botframework.connector.auth import ClaimsIdentity

from bot.chat.teams.auth import AuthError, BotToken
from bot.chat.teams.cards import Card
from bot.core.errors import SendError

log = logging.getLogger("socialops.teams")

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
LIMITS = ((7, 1.0), (60, 30.0))
"""Teams' documented limits per bot per conversation: 7 messages a second and 60 in 30 seconds."""
TRANSIENT = {412, 429, 500, 502, 503, 504}
"""Teams asks bots to retry these with backoff (412: a precondition, usually a concurrent update)."""


class Pacer:
    """At most 7 messages a second and 60 in 30 seconds per conversation (a thread counts to its channel), and
    nothing at all while Teams has asked to wait (a 429's Retry-After)."""

    def __init__(self, limits: tuple[tuple[int, float], ...] = LIMITS) -> None:
        self._limits = limits
        self._sent: dict[str, deque[float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.paused_until = 0.0
        self.waited = 0.0
        """Seconds spent waiting for a slot, in total (benchmarks read it)."""

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    async def wait(self, conversation: str) -> None:
        key = conversation.split(";", 1)[0]
        lock = self._locks.setdefault(key, asyncio.Lock())
        sent = self._sent.setdefault(key, deque())
        longest = max(window for _, window in self._limits)
        async with lock:
            while True:
                now = time.monotonic()
                while sent and sent[0] <= now - longest:
                    sent.popleft()
                ready = self.paused_until
                for count, window in self._limits:
                    recent = [t for t in sent if t > now - window]
                    if len(recent) >= count:
                        ready = max(ready, recent[-count] + window)
                if ready <= now:
                    break
                self.waited += ready - now
                await asyncio.sleep(ready - now)
            sent.append(time.monotonic())


def status_of(error: BaseException) -> tuple[int | None, dict[str, str]]:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    headers = getattr(response, "headers", None) or {}
    try:
        return (int(status) if status is not None else None), {str(k).lower(): str(v) for k, v in headers.items()}
    except (TypeError, ValueError, AttributeError):
        return None, {}


def to_send_error(error: BaseException) -> SendError:
    if isinstance(error, SendError):
        return error
    if isinstance(error, AuthError):
        return SendError(f"Teams: {error.message}", permanent=False)  # fixed credentials let it through later
    if isinstance(error, aiohttp.ClientError | asyncio.TimeoutError | OSError):
        return SendError(f"Teams unreachable: {type(error).__name__}", permanent=False)
    status, headers = status_of(error)
    if status is None:
        return SendError(f"Teams: {type(error).__name__}: {error}", permanent=False)
    retry_after: float | None = None
    if "retry-after" in headers:
        try:
            retry_after = max(0.0, float(headers["retry-after"]))
        except ValueError:
            retry_after = None
    if status == 429 and retry_after is None:
        retry_after = 2.0
    message = f"Teams: HTTP {status}"
    detail = getattr(getattr(error, "error", None), "error", None)
    code = getattr(detail, "code", None)
    if code:
        message += f" {code}"
    return SendError(message, permanent=status not in TRANSIENT, retry_after=retry_after)


class Connector:
    """Posts and updates activities in Teams conversations through botbuilder's adapter."""

    def __init__(self, *, adapter: BotFrameworkAdapter, app_id: str, token: BotToken | None, service_url: str,
                 tenant: str | None, pacer: Pacer | None = None) -> None:
        self._adapter = adapter
        self._app_id = app_id
        self._token = token
        self._service_url = service_url.rstrip("/") + "/"
        self._tenant = tenant
        self.pacer = pacer or Pacer()

    def reference(self, conversation: str, activity_id: str | None = None) -> ConversationReference:
        return ConversationReference(
            channel_id="msteams", service_url=self._service_url, activity_id=activity_id,
            conversation=ConversationAccount(id=conversation, is_group=True, conversation_type="channel",
                                             tenant_id=self._tenant),
            bot=ChannelAccount(id=f"28:{self._app_id}" if self._app_id else "28:socialops"),
        )

    async def _turn(self, reference: ConversationReference, work: Callable[[TurnContext], Awaitable[Any]]) -> Any:
        if self._token is not None:
            await self._token.fresh()
        box: list[Any] = []

        async def logic(context: TurnContext) -> None:
            # The continuation activity has a made-up id, which botbuilder would send as replyToId: only a thread
            # reply names the activity it answers.
            context.activity.id = reference.activity_id
            box.append(await work(context))

        identity = None if self._app_id else ClaimsIdentity({}, True)
        await self._adapter.continue_conversation(reference, logic, bot_id=self._app_id or None,
                                                  claims_identity=identity)
        return box[0] if box else None

    async def _call(self, conversation: str, work: Callable[[], Awaitable[Any]]) -> Any:
        await self.pacer.wait(conversation)
        try:
            return await work()
        except Exception as error:
            failure = to_send_error(error)
            if failure.retry_after:
                self.pacer.pause(failure.retry_after)
            raise failure from None

    def card_activity(self, card: Card, *, summary: str = "", entities: list[dict[str, Any]] | None = None
                      ) -> Activity:
        activity = Activity(type=ActivityTypes.message, attachments=[Attachment(content_type=ADAPTIVE_CARD,
                                                                                content=card)])
        if summary:
            activity.summary = summary
        if entities:
            activity.entities = [Entity().deserialize(entity) for entity in entities]
        if self._tenant:
            activity.channel_data = {"tenant": {"id": self._tenant}}
        return activity

    async def post(self, conversation: str, activity: Activity, *, reply_to: str | None = None) -> str:
        """A new message in `conversation` (a channel: a new post), or in the thread of the post `reply_to`
        (Teams' documented way: the conversation `{channel};messageid={post id}`)."""
        target = f"{conversation};messageid={reply_to}" if reply_to else conversation

        async def work(context: TurnContext) -> str:
            response = await context.send_activity(activity)
            if response is None or not getattr(response, "id", None):
                raise SendError("Teams answered without an activity id", permanent=False)
            return str(response.id)

        result = await self._call(target, lambda: self._turn(self.reference(target), work))
        return str(result)

    async def update(self, conversation: str, activity_id: str, activity: Activity) -> None:
        async def work(context: TurnContext) -> None:
            activity.id = activity_id
            await context.update_activity(activity)

        await self._call(conversation, lambda: self._turn(self.reference(conversation), work))

    async def close(self) -> None:
        for client in list(getattr(self._adapter, "_connector_client_cache", {}).values()):
            closer = getattr(client, "close", None)
            if closer is not None:
                try:
                    result = closer()
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.debug("closing a Teams connector client failed", exc_info=True)
