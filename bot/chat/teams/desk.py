"""The Teams desk's inbound side: `POST /api/messages`, where Teams delivers messages and card actions.

Every request is authenticated by botbuilder's Bot Framework JWT validation when an App ID is configured (a
missing, forged, expired or misaddressed token gets 401 and changes nothing). Without an App ID the desk runs
unauthenticated for local development, and then only answers requests from this machine.

Card buttons are Universal Actions (`Action.Execute`, invoke `adaptiveCard/action`): the answer is the refreshed
card for the person who clicked (with a form inside it for Reply, Escalate and Resolve, or a refusal). The same
actions arrive as `Action.Submit` (a message with a `value`) from older clients, and from dialogs (task modules:
`task/fetch`, `task/submit`). Messages to the bot: `stats [today|7d|30d]`, `help`, `whoami`, `oncall`.

An incident card's buttons (Reply to all, Resolve all) name the incident instead of a case; Split names the
member. Teams retries an invoke it has no answer to within five seconds, so an action that may take longer (Reply
to all or Resolve all on thousands of members) answers "under way" after `answer_within` and finishes anyway.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from botbuilder.core import BotFrameworkAdapter, InvokeResponse, TurnContext
from botbuilder.schema import Activity, ActivityTypes, Attachment
from botframework.connector.auth import JwtTokenValidation, SimpleCredentialProvider
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.chat import names
from bot.chat.teams import cards
from bot.chat.teams.auth import AuthError, BotToken, InboundAuth
from bot.chat.teams.connector import ADAPTIVE_CARD
from bot.chat.teams.forms import forms_for
from bot.config import TeamsConfig
from bot.core.errors import ActionError, InvalidInput
from bot.core.model import personalise
from bot.core.view import CaseView
from bot.services.api import Services
from bot.services.cases import Actor, OwnedByOther

log = logging.getLogger("socialops.teams")
T = TypeVar("T")

MAX_BODY = 256 * 1024
PERIODS = ("today", "7d", "30d")
HELP = ("Mention me with: stats (today), stats 7d, stats 30d · oncall (who escalations ping) · whoami (your Teams "
        "id, for the config) · help. Cases arrive as cards with Claim, Reply, Escalate and Resolve.")
_MENTION = re.compile(r"<at>.*?</at>", re.DOTALL)
_KEY_REFETCH = 300.0
"""At most this often, a token signed by an unknown key makes the desk fetch the signing keys again."""
ANSWER_WITHIN = 4.0
"""Seconds a long action may take before the invoke is answered "under way" (Teams retries after 5 seconds)."""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _card_response(card: cards.Card) -> dict[str, Any]:
    return {"statusCode": 200, "type": ADAPTIVE_CARD, "value": card}


def _message_response(text: str) -> dict[str, Any]:
    return {"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": text}


def _bad_request(message: str) -> dict[str, Any]:
    return {"statusCode": 400, "type": "application/vnd.microsoft.error",
            "value": {"code": "BadRequest", "message": message}}


@dataclass(frozen=True)
class Outcome:
    """What the person who acted sees: a card (the case, a form, a refusal) or a short message."""

    card: cards.Card | None = None
    text: str | None = None


class TeamsDesk:
    def __init__(self, *, adapter: BotFrameworkAdapter, services: Services, config: TeamsConfig, app_id: str,
                 password: str, inbound: InboundAuth, token: BotToken | None) -> None:
        self._adapter = adapter
        self._services = services
        self._config = config
        self._app_id = app_id
        self._credentials = SimpleCredentialProvider(app_id, password)
        self._inbound = inbound
        self._token = token
        self._keys_fetched_at = 0.0
        self._previous_metadata: str | None = None
        self._actions: dict[str, Callable[[int, Actor, dict[str, Any]], Awaitable[Outcome]]] = {
            names.CLAIM: self._claim, names.TAKE_OVER: self._simple("take_over"),
            names.RELEASE: self._simple("release"), names.REOPEN: self._simple("reopen"),
            names.RETRY: self._retry, names.REPLY: self._reply_form, cards.SEND_REPLY: self._send_reply,
            cards.SEND_SAVED: self._send_saved, names.ESCALATE: self._form(cards.escalate_form),
            cards.SEND_ESCALATION: self._send_escalation, names.RESOLVE: self._form(cards.resolve_form),
            cards.SEND_RESOLVE: self._send_resolve,
            names.CHECKIN_SEND: self._checkin("send_checkin"), names.CHECKIN_SKIP: self._checkin("skip_checkin"),
            names.PRIORITY: self._priority, names.ACKNOWLEDGE: self._simple("acknowledge"),
            names.SPLIT: self._split,
        }
        self._incident_actions: dict[str, Callable[[int, Actor, dict[str, Any]], Awaitable[Outcome]]] = {
            names.REPLY_ALL: self._reply_all, names.RESOLVE_ALL: self._resolve_all,
        }
        self.answer_within = ANSWER_WITHIN
        self._background: set[asyncio.Task[Any]] = set()
        self._late: set[asyncio.Task[Any]] = set()

    @property
    def authenticated(self) -> bool:
        return bool(self._app_id)

    async def start(self) -> None:
        if self.authenticated:
            self._previous_metadata = self._inbound.install()
            await self._inbound.warm()
            self._keys_fetched_at = time.monotonic()

    async def stop(self) -> None:
        if self._background:  # an action answered "under way" commits before the bot stops
            await asyncio.wait(set(self._background), timeout=10)
        if self.authenticated:
            self._inbound.uninstall(self._previous_metadata)

    # ---- HTTP ----------------------------------------------------------------------------------------------
    async def endpoint(self, request: Request) -> Response:
        if not self.authenticated and not _loopback(request):
            return _error(403, "Teams authentication is off (no App ID configured): only local requests are "
                               "accepted")
        auth_header = request.headers.get("authorization", "")
        if self.authenticated and not self._inbound.issuer_allowed(auth_header):
            return _error(401, "missing or invalid Bot Framework token")
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return _error(415, "expected application/json")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _error(413, f"request body over {MAX_BODY} bytes")
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _error(400, "malformed JSON")
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return _error(400, "expected an activity: a JSON object with a type")
        try:
            activity = Activity().deserialize(data)
        except Exception:
            return _error(400, "not a Bot Framework activity")
        if not activity.service_url or activity.conversation is None or not activity.conversation.id:
            return _error(400, "an activity needs serviceUrl and conversation.id")
        identity = await self._identity(activity, auth_header)
        if identity is None:
            return _error(401, "missing or invalid Bot Framework token")
        if self._token is not None:  # answers within the turn (stats, a refusal) are sent with it
            try:
                await self._token.fresh()
            except AuthError as error:
                log.error("Teams: %s", error.message)
        try:
            answer = await self._adapter.process_activity_with_identity(activity, identity, self._turn)
        except Exception:
            log.exception("Teams: handling a %s activity failed", activity.type)
            return _error(500, "the bot failed to handle this activity")
        if isinstance(answer, InvokeResponse):
            return JSONResponse(answer.body, status_code=answer.status) if answer.body is not None \
                else Response(status_code=answer.status)
        return Response(status_code=200)

    async def _identity(self, activity: Activity, auth_header: str) -> Any:
        for attempt in range(2):
            try:
                identity = await JwtTokenValidation.authenticate_request(activity, auth_header, self._credentials)
            except IndexError:  # a key id not among the cached keys: fetch them again once, then judge
                if attempt == 0 and time.monotonic() - self._keys_fetched_at > _KEY_REFETCH:
                    self._keys_fetched_at = time.monotonic()
                    await self._inbound.warm()
                    continue
                log.warning("Teams: refused a request signed by an unknown key")
                return None
            except Exception as error:
                log.warning("Teams: refused a request: %s", type(error).__name__)
                return None
            return identity if identity is not None and identity.is_authenticated else None
        return None

    # ---- turns ---------------------------------------------------------------------------------------------
    async def _turn(self, context: TurnContext) -> None:
        activity = context.activity
        if activity.type == ActivityTypes.invoke:
            body = await self._invoke(context)
            await context.send_activity(Activity(type="invokeResponse",
                                                 value=InvokeResponse(status=200, body=body)))
        elif activity.type == ActivityTypes.message:
            if isinstance(activity.value, dict):
                await self._submitted(context, activity.value)
            else:
                await self._message(context)
        elif activity.type == ActivityTypes.conversation_update:
            data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
            log.info("Teams: conversation update in %s (team %s, channel %s)", activity.conversation.id,
                     (data.get("team") or {}).get("id"), (data.get("channel") or {}).get("id"))

    def _actor(self, activity: Activity) -> Actor:
        person = activity.from_property
        return Actor(id=str(getattr(person, "id", "") or ""), name=str(getattr(person, "name", "") or "Someone"),
                     desk="teams")

    async def _invoke(self, context: TurnContext) -> dict[str, Any]:
        activity = context.activity
        value = _object(activity.value)
        if activity.name == "adaptiveCard/action":
            action = value.get("action")
            if not isinstance(action, dict):
                return _bad_request("value.action is missing")
            if action.get("type") != "Action.Execute":
                return _bad_request(f"{action.get('type')!r} is not supported; use Action.Execute")
            data = _object(action.get("data"))
            outcome = await self.act(str(action.get("verb") or ""), data, self._actor(activity))
            return _card_response(outcome.card) if outcome.card is not None else _message_response(outcome.text or "")
        if activity.name == "task/fetch":
            data = _object(value.get("data")) or value
            outcome = await self.act(str(data.get("verb") or ""), data, self._actor(activity))
            return _task(outcome, dialog=True)
        if activity.name == "task/submit":
            data = _object(value.get("data")) or value
            outcome = await self.act(str(data.get("verb") or ""), data, self._actor(activity))
            return _task(outcome, dialog=False)
        return _bad_request(f"this bot does not handle {activity.name!r} invokes")

    async def _submitted(self, context: TurnContext, value: dict[str, Any]) -> None:
        """Action.Submit from a client without Universal Actions: act, then answer in the conversation."""
        data = _object(value.get("data")) or value
        outcome = await self.act(str(data.get("verb") or data.get("action") or ""), data,
                                 self._actor(context.activity))
        if outcome.card is not None:
            await context.send_activity(Activity(type=ActivityTypes.message, attachments=[
                Attachment(content_type=ADAPTIVE_CARD, content=outcome.card)]))
        elif outcome.text:
            await context.send_activity(outcome.text)

    async def _message(self, context: TurnContext) -> None:
        text = _MENTION.sub(" ", context.activity.text or "")
        words = text.replace("/", " ").split()
        command = words[0].lower() if words else "help"
        person = context.activity.from_property
        if command == "stats":
            period = words[1].lower() if len(words) > 1 else "today"
            if period not in PERIODS:
                await context.send_activity(f"Unknown period {period!r}: use today, 7d or 30d.")
                return
            card = cards.stats_card(await self._services.stats(period))
            await context.send_activity(Activity(type=ActivityTypes.message, attachments=[
                Attachment(content_type=ADAPTIVE_CARD, content=card)]))
        elif command == "whoami":
            await context.send_activity(
                f"Your Teams user id: {getattr(person, 'id', '?')} · this conversation: "
                f"{context.activity.conversation.id}")
        elif command == "oncall":
            config = self._services.config
            if config.oncall is not None and config.oncall.rotations:
                schedule, now = config.oncall.schedule(), datetime.now(UTC)
                upcoming = schedule.upcoming(now)
                lines = [f"{s.rotation}: {s.who} until {s.end:%Y-%m-%d %H:%M} UTC"
                         + (" (override)" if s.overridden else "")
                         + "".join(f" · next: {u.who} from {u.start:%Y-%m-%d %H:%M} UTC" for u in upcoming
                                   if u.rotation == s.rotation)[:200] for s in schedule.now(now)]
                await context.send_activity("On call now: " + ("; ".join(lines) or "nobody (no rotation started)"))
            elif self._config.oncall:
                await context.send_activity(f"On call: {self._config.oncall_name} ({self._config.oncall}). "
                                            "Escalations mention them in the escalation channel.")
            else:
                await context.send_activity("Nobody is on call: escalations are posted without a mention (set "
                                            "teams.oncall in the config).")
        else:
            await context.send_activity(HELP)

    # ---- actions -------------------------------------------------------------------------------------------
    async def act(self, verb: str, data: dict[str, Any], actor: Actor) -> Outcome:
        """One click. Success: the refreshed case or incident card (the same for everyone). A refusal or a problem:
        a note for the clicker only; the card (and whatever they typed in it) stays as it is."""
        handler = self._actions.get(verb)
        what = "case"
        if handler is None:
            handler, what = self._incident_actions.get(verb), "incident"
        if handler is None:
            return Outcome(text=f"Unknown action {verb!r}.")
        try:
            target = int(data.get(what, ""))
        except (TypeError, ValueError):
            return Outcome(text=f"This button names no {what}.")
        if not actor.id:
            return Outcome(text="Teams did not say who clicked.")
        try:
            return await handler(target, actor, data)
        except ActionError as error:
            return Outcome(text=error.message)
        except InvalidInput as error:
            return Outcome(text=f"{error} Nothing was sent.")

    async def forms(self, case_id: int) -> cards.Forms:
        """What the forms inside a case card offer: the greeting, saved replies, the platform's limit and rules."""
        context = await self._services.reply_context(case_id)
        return forms_for(context, self._services.config.saved_replies)

    async def _fresh(self, case_id: int) -> Outcome:
        view = await self._services.view(case_id)
        return Outcome(card=cards.case_card(view, await self.forms(case_id)))

    def _simple(self, method: str) -> Callable[[int, Actor, dict[str, Any]], Awaitable[Outcome]]:
        async def run(case_id: int, actor: Actor, _: dict[str, Any]) -> Outcome:
            await getattr(self._services, method)(case_id, actor)
            return await self._fresh(case_id)

        return run

    async def _claim(self, case_id: int, actor: Actor, _: dict[str, Any]) -> Outcome:
        try:
            await self._services.claim(case_id, actor)
        except OwnedByOther as owned:
            return Outcome(text=f"Case #{case_id} is already claimed by {owned.owner_name or owned.owner}. To take "
                                "it over, click Take over on the card; they will be told.")
        return await self._fresh(case_id)

    async def _retry(self, case_id: int, actor: Actor, data: dict[str, Any]) -> Outcome:
        try:
            reply_id = int(data.get("reply", ""))
        except (TypeError, ValueError):
            return Outcome(text="This button names no reply.")
        await self._services.retry(reply_id, actor)
        return await self._fresh(case_id)

    def _checkin(self, method: str) -> Callable[[int, Actor, dict[str, Any]], Awaitable[Outcome]]:
        async def run(case_id: int, actor: Actor, data: dict[str, Any]) -> Outcome:
            try:
                followup_id = int(data.get("followup", ""))
            except (TypeError, ValueError):
                return Outcome(text="This button names no check-in.")
            await getattr(self._services, method)(followup_id, actor)
            followup = await self._services.followup(followup_id)
            view = await self._services.view(case_id)
            if followup is None:
                return Outcome(text="This check-in does not exist any more.")
            text = personalise(followup.text, name=view.customer_name, handle=view.customer_handle)
            return Outcome(card=cards.prompt_card(followup_id, case_id, followup.status, text,
                                                  view.customer_name or view.customer_handle, followup.acted_by))

        return run

    async def _reply_form(self, case_id: int, actor: Actor, _: dict[str, Any]) -> Outcome:
        """Reply clicked where the form cannot open in the card (a dialog, an old card): the form on its own."""
        forms = await self.forms(case_id)
        if forms.refusal:
            return Outcome(text=forms.refusal)
        view = await self._services.view(case_id)
        if view.owner and view.owner != actor.id:
            return Outcome(text=f"Case #{case_id} is claimed by {view.owner_name or view.owner}: take it over first.")
        return Outcome(card=cards.reply_form(view, forms))

    def _form(self, render: Callable[[CaseView], cards.Card]
              ) -> Callable[[int, Actor, dict[str, Any]], Awaitable[Outcome]]:
        async def run(case_id: int, actor: Actor, _: dict[str, Any]) -> Outcome:
            return Outcome(card=render(await self._services.view(case_id)))

        return run

    async def _send_reply(self, case_id: int, actor: Actor, data: dict[str, Any]) -> Outcome:
        text = str(data.get(cards.TEXT_INPUT, "")).strip()
        if not text:
            return Outcome(text="Write the reply first. Nothing was sent.")
        return await self._reply(case_id, actor, text, data.get(cards.MODE_INPUT))

    async def _send_saved(self, case_id: int, actor: Actor, data: dict[str, Any]) -> Outcome:
        forms = await self.forms(case_id)
        try:
            text = forms.saved[int(data.get(cards.SAVED_INPUT, ""))][1]
        except (TypeError, ValueError, IndexError):
            return Outcome(text="Choose a saved reply first. Nothing was sent.")
        return await self._reply(case_id, actor, text, data.get(cards.MODE_INPUT))

    async def _reply(self, case_id: int, actor: Actor, text: str, mode: Any) -> Outcome:
        view = await self._services.view(case_id)
        if view.owner and view.owner != actor.id:
            return Outcome(text=f"Case #{case_id} is claimed by {view.owner_name or view.owner}: take it over "
                                "first. Nothing was sent.")
        await self._services.reply(case_id, actor, text, str(mode) if mode else None)
        return await self._fresh(case_id)

    async def _priority(self, case_id: int, actor: Actor, data: dict[str, Any]) -> Outcome:
        await self._services.set_priority(case_id, actor, str(data.get(cards.PRIORITY_INPUT, "")))
        return await self._fresh(case_id)

    async def _send_escalation(self, case_id: int, actor: Actor, data: dict[str, Any]) -> Outcome:
        reason = str(data.get(cards.REASON_INPUT, "")).strip()
        if not reason:
            return Outcome(text="Say why the case needs escalating. Nothing was changed.")
        await self._services.escalate(case_id, actor, reason[:1000])
        return await self._fresh(case_id)

    async def _send_resolve(self, case_id: int, actor: Actor, data: dict[str, Any]) -> Outcome:
        note = str(data.get(cards.NOTE_INPUT, "")).strip()
        await self._services.resolve(case_id, actor, note[:1000])
        return await self._fresh(case_id)

    # ---- incidents -----------------------------------------------------------------------------------------
    async def _incident(self, incident_id: int) -> Outcome:
        return Outcome(card=cards.incident_card(await self._services.incident_view(incident_id)))

    async def _reply_all(self, incident_id: int, actor: Actor, data: dict[str, Any]) -> Outcome:
        template = str(data.get(cards.TEMPLATE_INPUT, "")).strip()
        statement = str(data.get(cards.STATEMENT_INPUT, "")).strip()
        if not template:
            return Outcome(text="Write the reply each member gets ({first_name} is filled in). Nothing was sent.")
        queued = await self._in_time(self._services.reply_to_all(incident_id, actor, template, statement))
        if queued is None:
            return Outcome(text=f"Replying to all members of incident #{incident_id}: the card shows the progress "
                                "in a moment.")
        return await self._incident(incident_id)

    async def _resolve_all(self, incident_id: int, actor: Actor, data: dict[str, Any]) -> Outcome:
        note = str(data.get(cards.NOTE_INPUT, "")).strip()[:1000]
        resolved = await self._in_time(self._services.resolve_all(incident_id, actor, note))
        if resolved is None:
            return Outcome(text=f"Resolving incident #{incident_id} and its members: the card shows it in a "
                                "moment.")
        return await self._incident(incident_id)

    async def _split(self, case_id: int, actor: Actor, data: dict[str, Any]) -> Outcome:
        await self._services.split(case_id, actor)
        if data.get("digest"):  # clicked in the incident's thread: the case's own card is posted in the channel
            return Outcome(text=f"Case #{case_id} is a case of its own again: its card is posted in the channel.")
        return await self._fresh(case_id)

    async def _in_time(self, work: Coroutine[Any, Any, T]) -> T | None:
        """The result of `work` if it ends within `answer_within` (its refusal raised as usual), else None while
        it goes on in the background (a refusal then is only logged: the person was already answered)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._ended)
        await asyncio.wait({task}, timeout=self.answer_within)
        if task.done():
            return task.result()
        self._late.add(task)
        return None

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if task not in self._late:
            return
        self._late.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, ActionError | InvalidInput):
            log.info("Teams: an action answered as under way was refused: %s", error)
        elif error is not None:
            log.error("Teams: an action answered as under way failed", exc_info=error)


def _task(outcome: Outcome, *, dialog: bool) -> dict[str, Any]:
    """A dialog's answer: on task/fetch the form (its buttons as Action.Submit, which dialogs use); on task/submit
    close it with what happened."""
    card = outcome.card
    if dialog and card is not None:
        submit_card = dict(card)
        submit_card["actions"] = [
            {"type": "Action.Submit", "title": a["title"], "data": {"verb": a["verb"], **a.get("data", {})}}
            for a in card.get("actions", []) if a.get("type") == "Action.Execute"]
        return {"task": {"type": "continue", "value": {
            "title": "SocialOps", "width": "large", "height": "large",
            "card": {"contentType": ADAPTIVE_CARD, "content": submit_card}}}}
    return {"task": {"type": "message", "value": outcome.text or "Done."}}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")

