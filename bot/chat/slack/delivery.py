"""Slack side of the outbox: posts and updates cards, thread lines, prompts, pings.

Exactly once: every chat.postMessage carries message metadata naming its outbox row. When a row is
tried again (a retry, or a crash before the answer was stored), the bot first looks for a message
with that key in the channel or thread and, if Slack already has it, records that one instead of
posting a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import Session

from bot.chat.names import SLACK_USER
from bot.chat.slack import blocks as render
from bot.chat.slack.mrkdwn import escape
from bot.config import Config
from bot.core.errors import SendError
from bot.core.model import personalise
from bot.services import incidents
from bot.services.api import Services, save_chat_ref
from bot.services.outbox import Finish, Handler, pending_card_rows
from bot.services.outbox import mark_done as _mark_done
from bot.services.records import Effect
from storage.tables import FollowupRow, OutboxRow, utcnow

log = logging.getLogger("socialops.slack")

DESK = "slack"
METADATA_TYPE = "socialops_outbox"
PERMANENT = {
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "account_inactive", "token_revoked",
    "missing_scope", "invalid_blocks", "msg_too_long", "no_permission", "not_authed", "user_not_in_channel",
    "invalid_arguments", "restricted_action", "cant_update_message", "edit_window_closed",
}


def to_send_error(error: SlackApiError) -> SendError:
    status = error.response.status_code
    code = str(error.response.get("error") or f"HTTP {status}")
    if status == 429 or code == "ratelimited":
        retry_after = float(error.response.headers.get("Retry-After", error.response.headers.get("retry-after", 1)))
        return SendError(f"Slack rate limit ({code})", permanent=False, retry_after=retry_after)
    return SendError(f"Slack: {code}", permanent=code in PERMANENT)


URGENT, NORMAL, BACKGROUND = 0, 1, 2
"""Pacer priorities: an incident card (the one message that matters most in a storm), everything else, and an
incident's member lists (they may lag; nothing is dropped)."""


class Pacer:
    """About one message per second per channel, Slack's documented posting pace.

    Posters to one channel take turns on its lock; the one holding it sleeps until its slot and, if Slack
    asked everyone to wait (a 429), until that pause is over, so a pause never releases a burst.
    A poster steps aside while one of a higher priority waits for the channel, and a background post takes at most
    every other slot: in a storm the incident card and the cases' cards keep the channel's pace.
    """

    def __init__(self, interval: float, paused_until: Callable[[], float]) -> None:
        self._interval = interval
        self._paused_until = paused_until
        self._next: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, list[int]] = {}
        self._background_next: dict[str, float] = {}

    async def wait(self, channel: str, *, priority: int = NORMAL) -> None:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        waiting = self._waiting.setdefault(channel, [0, 0, 0])
        waiting[priority] += 1
        step = max(self._interval / 4, 0.002)
        try:
            while True:
                if priority == BACKGROUND and (ready := self._background_next.get(channel, 0.0) - time.monotonic()) > 0:
                    await asyncio.sleep(ready)
                    continue
                if any(waiting[:priority]):
                    await asyncio.sleep(step)
                    continue
                async with lock:
                    if any(waiting[:priority]):
                        continue  # someone more urgent arrived while this one queued: let them go first
                    while (delay := max(self._next.get(channel, 0.0), self._paused_until()) - time.monotonic()) > 0:  # noqa: ASYNC110 - a deadline that a 429 may move
                        await asyncio.sleep(delay)
                    self._next[channel] = time.monotonic() + self._interval
                    if priority == BACKGROUND:
                        self._background_next[channel] = time.monotonic() + 2 * self._interval
                    return
        finally:
            waiting[priority] -= 1


class SlackDelivery:
    def __init__(self, *, client: AsyncWebClient, services: Services, config: Config, pace: float = 1.0) -> None:
        self._client = client
        self._services = services
        self._config = config
        assert config.slack is not None, "the Slack desk needs a slack: section"
        self._slack = config.slack
        self._paused_until = 0.0
        self._pacer = Pacer(pace, lambda: self._paused_until)

    def handlers(self) -> dict[tuple[str, str], Handler]:
        mine = {Effect.CARD: self.card, Effect.THREAD: self.thread, Effect.EPHEMERAL: self.ephemeral,
                Effect.ESCALATION: self.escalation, Effect.PROMPT: self.prompt, Effect.NOTICE: self.notice,
                Effect.PAGE: self.page, Effect.HANDOFF: self.handoff, Effect.USERGROUP: self.usergroup,
                Effect.INCIDENT: self.incident, Effect.MEMBERS: self.members}
        return {(DESK, effect): handler for effect, handler in mine.items()}

    async def _call(self, method: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        """One Web API call. A 429 pauses every call for its Retry-After, not just the row that met it:
        Slack's limits are per method and workspace, so the next row would only be refused too."""
        await self._wait_out_pause()
        try:
            return await method(**kwargs)
        except SlackApiError as error:
            failure = to_send_error(error)
            if failure.retry_after:
                self._paused_until = max(self._paused_until, time.monotonic() + failure.retry_after)
            raise failure from None

    async def _wait_out_pause(self) -> None:
        while (wait := self._paused_until - time.monotonic()) > 0:  # noqa: ASYNC110 - a deadline, moved by 429s
            await asyncio.sleep(wait)

    async def _post(self, row: OutboxRow, *, channel: str, text: str, blocks: list[dict[str, Any]],
                    thread_ts: str | None = None, priority: int = NORMAL) -> str:
        """Post once per outbox row; returns the message ts."""
        found = await self._posted_before(row, channel=channel, thread_ts=thread_ts)
        if found:
            return found
        await self._pacer.wait(channel, priority=priority)
        return await self._send_post(row, channel=channel, text=text, blocks=blocks, thread_ts=thread_ts)

    async def _posted_before(self, row: OutboxRow, *, channel: str, thread_ts: str | None) -> str | None:
        """A retried row: the message an earlier attempt posted (Slack stored it, the answer was lost), if any."""
        if row.attempts <= 1:
            return None
        found = await self._find(channel=channel, key=f"outbox-{row.id}", thread_ts=thread_ts,
                                 since=row.created_at.replace(tzinfo=UTC).timestamp() - 60)
        if found:
            log.info("outbox row %s was already posted as %s; not posting again", row.id, found)
        return found

    async def _send_post(self, row: OutboxRow, *, channel: str, text: str, blocks: list[dict[str, Any]],
                         thread_ts: str | None = None) -> str:
        """chat.postMessage, marked with the row's key (the caller waited for the channel's slot)."""
        kwargs: dict[str, Any] = {}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        response = await self._call(
            self._client.chat_postMessage, channel=channel, text=text, blocks=blocks, unfurl_links=False,
            unfurl_media=False, metadata={"event_type": METADATA_TYPE, "event_payload": {"key": f"outbox-{row.id}"}},
            **kwargs)
        return str(response["ts"])

    async def _find(self, *, channel: str, key: str, thread_ts: str | None, since: float) -> str | None:
        cursor: str | None = None
        for _ in range(10):
            if thread_ts:
                response = await self._call(self._client.conversations_replies, channel=channel, ts=thread_ts,
                                            include_all_metadata=True, limit=200, cursor=cursor)
            else:
                response = await self._call(self._client.conversations_history, channel=channel,
                                            oldest=f"{since:.6f}", include_all_metadata=True, limit=200,
                                            cursor=cursor)
            for message in response.get("messages", []):
                meta = message.get("metadata") or {}
                if meta.get("event_type") == METADATA_TYPE and (meta.get("event_payload") or {}).get("key") == key:
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    async def _update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]], priority: int = NORMAL
                      ) -> None:
        """chat.update, paced with the posts to its channel: in a storm every call to a channel counts."""
        await self._pacer.wait(channel, priority=priority)
        await self._call(self._client.chat_update, channel=channel, ts=ts, text=text, blocks=blocks)

    async def _card_ref(self, case_id: int) -> tuple[str, str] | None:
        ref = await self._services.chat_ref(desk=DESK, purpose="card", key=str(case_id))
        return (ref.conversation, ref.message_id) if ref else None

    async def card(self, row: OutboxRow) -> Finish | None:
        assert row.case_id is not None
        case_id = row.case_id
        covered = await self._services.read(lambda s: pending_card_rows(s, case_id, DESK))
        view = await self._services.view(case_id)
        text, blocks = render.card(view)
        ref = await self._card_ref(case_id)
        if ref is None and view.incident_id is not None:
            return _mark_done(covered)  # a storm member: listed in the incident's thread, no card of its own
        if ref is not None:
            try:
                await self._update(ref[0], ref[1], text, blocks)
                return _mark_done(covered)
            except SendError as error:
                if "message_not_found" not in error.message:
                    raise
                log.warning("card of case %s was deleted in Slack; posting it again", case_id)
        channel = view.channel
        ts = await self._posted_before(row, channel=channel, thread_ts=None)
        if ts is None:  # the channel's slot first, then the case as it is then: a storm may have taken it meanwhile
            await self._pacer.wait(channel)
            view = await self._services.view(case_id)
            if view.incident_id is not None and ref is None:
                return _mark_done(covered)
            text, blocks = render.card(view)
            ts = await self._send_post(row, channel=channel, text=text, blocks=blocks)

        def finish(session: Session) -> None:
            save_chat_ref(session, case_id=case_id, desk=DESK, purpose="card", key=str(case_id),
                          conversation=channel, message_id=ts, replace=ref is not None)
            _mark_done(covered)(session)

        return finish

    async def _require_card(self, case_id: int) -> tuple[str, str]:
        ref = await self._card_ref(case_id)
        if ref is None:
            raise SendError(f"the card of case {case_id} is not posted yet", permanent=False, retry_after=2)
        return ref

    async def _member_without_card(self, case_id: int) -> bool:
        return await self._services.read(lambda s: incidents.is_member_without_card(s, case_id))

    async def thread(self, row: OutboxRow) -> Finish | None:
        assert row.case_id is not None
        if row.payload.get("incident_id") is not None:
            channel, ts = await self._require_incident(int(row.payload["incident_id"]))
        elif await self._member_without_card(row.case_id):
            return None  # its history is the incident's
        else:
            channel, ts = await self._require_card(row.case_id)
        line = render.thread_line(str(row.payload.get("text", "")), row.payload.get("quote"), row.payload.get("url"))
        await self._post(row, channel=channel, text=line, blocks=render.thread_blocks(line), thread_ts=ts)
        return None

    async def ephemeral(self, row: OutboxRow) -> Finish | None:
        assert row.case_id is not None
        view = await self._services.view(row.case_id)
        if view.incident_id is not None and await self._card_ref(row.case_id) is None:
            return None
        text = escape(str(row.payload.get("text", "")))
        await self._call(self._client.chat_postEphemeral, channel=view.channel, user=str(row.payload["user"]),
                         text=text)
        return None

    async def escalation(self, row: OutboxRow) -> Finish | None:
        assert row.case_id is not None
        view = await self._services.view(row.case_id)
        ref = await self._card_ref(row.case_id)
        permalink = None
        if ref is not None:
            try:
                response = await self._call(self._client.chat_getPermalink, channel=ref[0], message_ts=ref[1])
                permalink = response.get("permalink")
            except SendError:
                permalink = None
        text, blocks = render.escalation(view, reason=str(row.payload.get("reason", "")),
                                         by=str(row.payload.get("by", "someone")),
                                         oncall=None if self._config.escalation else self._slack.oncall,
                                         permalink=permalink)
        await self._post(row, channel=self._slack.escalation_channel, text=text, blocks=blocks)
        return None

    async def page(self, row: OutboxRow) -> Finish | None:
        """A level of the escalation policy: in the escalation channel (once per outbox row), and a direct message
        to each Slack user paged."""
        assert row.case_id is not None
        view = await self._services.view(row.case_id)
        ref = await self._card_ref(row.case_id)
        permalink = None
        if ref is not None:
            try:
                permalink = (await self._call(self._client.chat_getPermalink, channel=ref[0],
                                              message_ts=ref[1])).get("permalink")
            except SendError:
                permalink = None
        notify = [str(x) for x in row.payload.get("notify", [])]
        text, blocks = render.page(view, level=int(row.payload.get("level", 1)), notify=notify,
                                   reminder=bool(row.payload.get("reminder")),
                                   minutes=int(row.payload.get("minutes", 0)), permalink=permalink)
        await self._post(row, channel=self._slack.escalation_channel, text=text, blocks=blocks)
        for person in notify:
            if SLACK_USER.match(person):
                await self._pacer.wait(person)
                await self._call(self._client.chat_postMessage, channel=person, text=text, blocks=blocks,
                                 unfurl_links=False)
        return None

    async def usergroup(self, row: OutboxRow) -> Finish | None:
        users = ",".join(str(u) for u in row.payload.get("users", []))
        await self._call(self._client.usergroups_users_update, usergroup=str(row.payload["usergroup"]), users=users)
        return None

    async def handoff(self, row: OutboxRow) -> Finish | None:
        from datetime import datetime

        text, blocks = render.handoff(str(row.payload.get("rotation", "")), str(row.payload.get("who", "")),
                                      datetime.fromisoformat(str(row.payload["until"])),
                                      bool(row.payload.get("overridden")))
        await self._post(row, channel=self._slack.escalation_channel, text=text, blocks=blocks)
        return None

    async def notice(self, row: OutboxRow) -> Finish | None:
        text, blocks = render.notice(str(row.payload.get("text", "")))
        await self._post(row, channel=self._slack.admin, text=text, blocks=blocks)
        return None

    async def prompt(self, row: OutboxRow) -> Finish | None:
        assert row.case_id is not None
        followup_id = int(row.payload["followup_id"])
        followup = await self._services.followup(followup_id)
        if followup is None:
            return None
        view = await self._services.view(row.case_id)
        text, blocks = render.prompt(followup_id, followup.status,
                                     _personal(followup, view.customer_name, view.customer_handle),
                                     view.customer_name or view.customer_handle, followup.acted_by)
        key = f"followup:{followup_id}"
        ref = await self._services.chat_ref(desk=DESK, purpose="prompt", key=key)
        if ref is not None:
            await self._call(self._client.chat_update, channel=ref.conversation, ts=ref.message_id, text=text,
                             blocks=blocks)
            return None
        if followup.status != "prompted" or await self._member_without_card(row.case_id):
            return None  # never shown, nothing to update
        channel, thread_ts = await self._require_card(row.case_id)
        ts = await self._post(row, channel=channel, text=text, blocks=blocks, thread_ts=thread_ts)
        case_id = row.case_id

        def finish(session: Session) -> None:
            save_chat_ref(session, case_id=case_id, desk=DESK, purpose="prompt", key=key, conversation=channel,
                          message_id=ts)

        return finish


    # ---- incidents (storms) ----------------------------------------------------------------------------------------

    async def _incident_ref(self, incident_id: int) -> tuple[str, str] | None:
        ref = await self._services.chat_ref(desk=DESK, purpose="incident", key=str(incident_id))
        return (ref.conversation, ref.message_id) if ref else None

    async def _require_incident(self, incident_id: int) -> tuple[str, str]:
        ref = await self._incident_ref(incident_id)
        if ref is None:
            raise SendError(f"the card of incident {incident_id} is not posted yet", permanent=False, retry_after=2)
        return ref

    async def incident(self, row: OutboxRow) -> Finish | None:
        """Post or update the incident card; one delivery covers every update written before it."""
        incident_id = int(row.payload["incident_id"])
        covered = await self._services.read(
            lambda s: incidents.covered_rows(s, Effect.INCIDENT, incident_id, DESK))
        view = await self._services.incident_view(incident_id)
        text, blocks = render.incident_card(view)
        ref = await self._incident_ref(incident_id)
        if ref is not None:
            try:
                await self._update(ref[0], ref[1], text, blocks, priority=URGENT)
            except SendError as error:
                if "message_not_found" not in error.message:
                    raise
                ref = None
            else:
                def updated(session: Session) -> None:
                    incidents.shown(session, incident_id, DESK, view.version, covered, utcnow(), self._config)

                return updated
        ts = await self._post(row, channel=view.channel, text=text, blocks=blocks, priority=URGENT)
        channel = view.channel

        def finish(session: Session) -> None:
            save_chat_ref(session, case_id=view.lead_case_id, desk=DESK, purpose="incident", key=str(incident_id),
                          conversation=channel, message_id=ts, replace=True)
            incidents.shown(session, incident_id, DESK, view.version, covered, utcnow(), self._config)

        return finish

    async def members(self, row: OutboxRow) -> Finish | None:
        """The next members of an incident, as one message in its thread (the one after it is owed in `finish`)."""
        incident_id = int(row.payload["incident_id"])
        channel, thread_ts = await self._require_incident(incident_id)
        members = await self._services.members_after(incident_id, DESK, incidents.MEMBERS_PER_MESSAGE[DESK])
        if not members:
            return None
        text, blocks = render.members_digest(members)
        await self._post(row, channel=channel, text=text, blocks=blocks, thread_ts=thread_ts, priority=BACKGROUND)
        last = members[-1].seq

        def finish(session: Session) -> None:
            incidents.listed(session, incident_id, DESK, last, utcnow())

        return finish


def _personal(followup: FollowupRow, name: str, handle: str) -> str:
    return personalise(followup.text, name=name, handle=handle)



