"""Teams side of the outbox: posts and updates case cards, thread lines, check-in prompts, escalations and notices,
and the incident cards of storms with their members listed in the card's thread.

Each handler delivers one outbox row of desk "teams"; Slack's rows for the same change are separate rows, so both
desks show every change whichever desk it came from. A storm member that never had a card of its own gets
nothing posted for it: its history is the incident's.
"""

from __future__ import annotations

import logging

from sqlmodel import Session

from bot.chat.names import SLACK_PINGABLE, platform_name
from bot.chat.teams import cards
from bot.chat.teams.connector import Connector
from bot.chat.teams.forms import forms_for
from bot.config import TeamsConfig
from bot.core.errors import SendError
from bot.core.model import personalise
from bot.services import incidents
from bot.services.api import Services, save_chat_ref
from bot.services.outbox import Finish, Handler, mark_done, pending_card_rows
from bot.services.records import Effect
from storage.tables import OutboxRow, utcnow

log = logging.getLogger("socialops.teams")

DESK = "teams"


def is_teams_id(target: str) -> bool:
    """Not a Slack user or user group id: a Teams person (29:…, or another id a Teams client uses)."""
    return not SLACK_PINGABLE.match(target)


class TeamsDelivery:
    def __init__(self, *, connector: Connector, services: Services, config: TeamsConfig) -> None:
        self._connector = connector
        self._services = services
        self._config = config

    def handlers(self) -> dict[tuple[str, str], Handler]:
        mine = {Effect.CARD: self.card, Effect.THREAD: self.thread, Effect.EPHEMERAL: self.personal,
                Effect.ESCALATION: self.escalation, Effect.PROMPT: self.prompt, Effect.NOTICE: self.notice,
                Effect.PAGE: self.page, Effect.HANDOFF: self.handoff, Effect.INCIDENT: self.incident,
                Effect.MEMBERS: self.members}
        return {(DESK, effect): handler for effect, handler in mine.items()}

    async def _card_ref(self, case_id: int) -> tuple[str, str] | None:
        ref = await self._services.chat_ref(desk=DESK, purpose="card", key=str(case_id))
        return (ref.conversation, ref.message_id) if ref else None

    async def _require_card(self, case_id: int) -> tuple[str, str]:
        ref = await self._card_ref(case_id)
        if ref is None:
            raise SendError(f"the Teams card of case {case_id} is not posted yet", permanent=False, retry_after=2)
        return ref

    async def _incident_ref(self, incident_id: int) -> tuple[str, str] | None:
        ref = await self._services.chat_ref(desk=DESK, purpose="incident", key=str(incident_id))
        return (ref.conversation, ref.message_id) if ref else None

    async def _require_incident_card(self, incident_id: int) -> tuple[str, str]:
        ref = await self._incident_ref(incident_id)
        if ref is None:
            raise SendError(f"the Teams card of incident {incident_id} is not posted yet", permanent=False,
                            retry_after=2)
        return ref

    async def _member_without_card(self, case_id: int) -> bool:
        return await self._services.read(lambda s: incidents.is_member_without_card(s, case_id))

    async def card(self, row: OutboxRow) -> Finish | None:
        assert row.case_id is not None
        case_id = row.case_id
        covered = await self._services.read(lambda s: pending_card_rows(s, case_id, DESK))
        context = await self._services.reply_context(case_id)
        view = context.view
        forms = forms_for(context, self._services.config.saved_replies)
        activity = self._connector.card_activity(
            cards.case_card(view, forms), summary=f"{platform_name(view.platform)} case #{view.id}: {view.status}")
        ref = await self._card_ref(case_id)
        if ref is None and view.incident_id is not None:
            return mark_done(covered)  # a storm member: the incident card and its thread show it
        if ref is not None:
            try:
                await self._connector.update(ref[0], ref[1], activity)
                return mark_done(covered)
            except SendError as error:
                if "HTTP 404" not in error.message:
                    raise
                log.warning("Teams card of case %s was deleted; posting it again", case_id)
        channel = self._services.config.teams_channel_for(platform=view.platform, kind=view.kind)
        activity_id = await self._connector.post(channel, activity)

        def finish(session: Session) -> None:
            save_chat_ref(session, case_id=case_id, desk=DESK, purpose="card", key=str(case_id),
                          conversation=channel, message_id=activity_id, replace=ref is not None)
            mark_done(covered)(session)

        return finish

    async def thread(self, row: OutboxRow) -> Finish | None:
        assert row.case_id is not None
        incident_id = row.payload.get("incident_id")
        if incident_id is not None:  # a line of the incident's history, in its card's thread
            channel, card_id = await self._require_incident_card(int(incident_id))
        elif await self._member_without_card(row.case_id):
            return None
        else:
            channel, card_id = await self._require_card(row.case_id)
        card = cards.thread_card(str(row.payload.get("text", "")), row.payload.get("quote"), row.payload.get("url"))
        await self._connector.post(channel, self._connector.card_activity(card), reply_to=card_id)
        return None

    async def personal(self, row: OutboxRow) -> Finish | None:
        """A note for one person (Slack shows it only to them): in Teams, in the card's thread, mentioning them."""
        assert row.case_id is not None
        user = str(row.payload.get("user", ""))
        if await self._member_without_card(row.case_id):
            return None
        channel, card_id = await self._require_card(row.case_id)
        name = str(row.payload.get("name") or "you")
        text = str(row.payload.get("text", ""))
        card = cards.mention_card(user, name, text)
        entities = card.get("msteams", {}).get("entities", [])
        await self._connector.post(channel, self._connector.card_activity(card, entities=entities), reply_to=card_id)
        return None

    async def escalation(self, row: OutboxRow) -> Finish | None:
        assert row.case_id is not None
        view = await self._services.view(row.case_id)
        card, entities = cards.escalation_card(view, reason=str(row.payload.get("reason", "")),
                                               by=str(row.payload.get("by", "someone")),
                                               oncall=None if self._services.config.escalation else self._config.oncall,
                                               oncall_name=self._config.oncall_name)
        await self._connector.post(self._config.escalations,
                                   self._connector.card_activity(card, summary=f"Case #{view.id} escalated",
                                                                 entities=entities))
        return None

    async def page(self, row: OutboxRow) -> Finish | None:
        """A level of the escalation policy, in the escalation channel, mentioning the Teams people paged."""
        assert row.case_id is not None
        view = await self._services.view(row.case_id)
        mentions = [(who, self._config.oncall_name if who == self._config.oncall else who)
                    for who in (str(x) for x in row.payload.get("notify", [])) if is_teams_id(who)]
        card = cards.page_card(view, level=int(row.payload.get("level", 1)), mentions=mentions,
                               reminder=bool(row.payload.get("reminder")), minutes=int(row.payload.get("minutes", 0)))
        await self._connector.post(self._config.escalations, self._connector.card_activity(
            card, summary=f"Case #{view.id}: escalation not acknowledged", entities=card.get("msteams", {}).get(
                "entities")))
        return None

    async def handoff(self, row: OutboxRow) -> Finish | None:
        who = str(row.payload.get("who", ""))
        name = self._config.oncall_name if who == self._config.oncall else who
        mentions = [(who, name)] if is_teams_id(who) else []
        until = str(row.payload.get("until", ""))[:16].replace("T", " ")
        text = (f"is now on call{' (covering)' if row.payload.get('overridden') else ''} for "
                f"{row.payload.get('rotation', '')} until {until} UTC.")
        card = cards.mention_card(who, name, text) if mentions else cards.text_card(f"{who} {text}")
        await self._connector.post(self._config.escalations, self._connector.card_activity(
            card, summary="On-call hand-off", entities=card.get("msteams", {}).get("entities")))
        return None

    async def notice(self, row: OutboxRow) -> Finish | None:
        await self._connector.post(self._config.admin, self._connector.card_activity(
            cards.notice_card(str(row.payload.get("text", ""))), summary="SocialOps needs an admin"))
        return None

    async def prompt(self, row: OutboxRow) -> Finish | None:
        assert row.case_id is not None
        followup_id = int(row.payload["followup_id"])
        if await self._member_without_card(row.case_id):
            return None
        followup = await self._services.followup(followup_id)
        if followup is None:
            return None
        view = await self._services.view(row.case_id)
        text = personalise(followup.text, name=view.customer_name, handle=view.customer_handle)
        card = cards.prompt_card(followup_id, view.id, followup.status, text,
                                 view.customer_name or view.customer_handle, followup.acted_by)
        activity = self._connector.card_activity(card, summary="Check-in due")
        key = f"followup:{followup_id}"
        ref = await self._services.chat_ref(desk=DESK, purpose="prompt", key=key)
        if ref is not None:
            await self._connector.update(ref.conversation, ref.message_id, activity)
            return None
        if followup.status != "prompted":
            return None  # never shown, nothing to update
        channel, card_id = await self._require_card(row.case_id)
        activity_id = await self._connector.post(channel, activity, reply_to=card_id)
        case_id = row.case_id
        in_thread = f"{channel};messageid={card_id}"

        def finish(session: Session) -> None:
            save_chat_ref(session, case_id=case_id, desk=DESK, purpose="prompt", key=key, conversation=in_thread,
                          message_id=activity_id)

        return finish

    async def incident(self, row: OutboxRow) -> Finish | None:
        """Post the incident card, or update it in place; one delivery covers every update owed before its view
        was read (they are coalesced, so a storm of thousands updates the card every `update_every`)."""
        incident_id = int(row.payload["incident_id"])
        covered = await self._services.read(
            lambda s: incidents.covered_rows(s, Effect.INCIDENT, incident_id, DESK))
        view = await self._services.incident_view(incident_id)
        activity = self._connector.card_activity(
            cards.incident_card(view), summary=f"Incident #{view.id}: {view.count:,} alike messages ({view.status})")
        ref = await self._incident_ref(incident_id)
        if ref is not None:
            try:
                await self._connector.update(ref[0], ref[1], activity)
            except SendError as error:
                if "HTTP 404" not in error.message:
                    raise
                log.warning("Teams card of incident %s was deleted; posting it again", incident_id)
            else:
                return self._shown(incident_id, view.version, covered)
        channel = view.teams_channel
        activity_id = await self._connector.post(channel, activity)
        lead_case_id = view.lead_case_id
        shown = self._shown(incident_id, view.version, covered)

        def finish(session: Session) -> None:
            save_chat_ref(session, case_id=lead_case_id, desk=DESK, purpose="incident", key=str(incident_id),
                          conversation=channel, message_id=activity_id, replace=ref is not None)
            shown(session)

        return finish

    def _shown(self, incident_id: int, version: int, covered: list[int]) -> Finish:
        config = self._services.config

        def finish(session: Session) -> None:
            incidents.shown(session, incident_id, DESK, version, covered, utcnow(), config)

        return finish

    async def members(self, row: OutboxRow) -> Finish | None:
        """The next members, as one reply in the incident card's thread; the digest after it starts where this
        one ended (`listed` owes it when more are waiting)."""
        incident_id = int(row.payload["incident_id"])
        channel, card_id = await self._require_incident_card(incident_id)
        members = await self._services.members_after(incident_id, DESK, incidents.MEMBERS_PER_MESSAGE[DESK])
        if not members:
            return None
        activity = self._connector.card_activity(
            cards.members_card(members), summary=f"Incident #{incident_id}: {len(members)} more member(s)")
        await self._connector.post(channel, activity, reply_to=card_id)
        last = members[-1].seq

        def finish(session: Session) -> None:
            incidents.listed(session, incident_id, DESK, last, utcnow())

        return finish
