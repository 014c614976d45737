"""Bolt listeners: turn clicks, modal submissions and `/social` into service calls.

Every listener acknowledges first (Slack wants an answer within 3 seconds); refusals reach only the
person who clicked, as an ephemeral message, and change nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat import names
from bot.chat.slack import blocks as render
from bot.chat.slack.mrkdwn import escape
from bot.core.errors import ActionError, InvalidInput
from bot.core.model import first_name_of, personalise
from bot.services.api import Services
from bot.services.cases import Actor, OwnedByOther
from bot.services.stats import PERIODS

log = logging.getLogger("socialops.slack")

Body = dict[str, Any]
AFTER_ACK_DELAY = 0.05
"""Seconds between answering a click and working on it: in a burst (a storm, a team clicking at once) every
click is answered before the bot spends CPU on any of them. People see the card change 50 ms later."""
Handler = Callable[[Body, AsyncWebClient], Awaitable[None]]
USAGE = "`/social stats [today|7d|30d]` or `/social oncall`"


def actor_of(body: Body) -> Actor:
    user = body.get("user") or {}
    user_id = str(user.get("id") or body.get("user_id") or "")
    name = str(user.get("name") or user.get("username") or body.get("user_name") or user_id)
    return Actor(id=user_id, name=name, desk="slack")


def _channel_of(body: Body) -> str | None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    return str(channel) if channel else None


def _action_value(body: Body) -> int | None:
    try:
        return int(str(body["actions"][0]["value"]))
    except (KeyError, IndexError, ValueError, TypeError):
        return None


def _case_of_view(body: Body) -> int | None:
    try:
        return int(json.loads(body["view"]["private_metadata"])["case"])
    except (KeyError, ValueError, TypeError):
        return None


def _input(body: Body, block_prefix: str, action_id: str) -> str:
    values = body.get("view", {}).get("state", {}).get("values", {})
    for block_id, actions in values.items():
        if block_id == block_prefix or block_id.startswith(block_prefix + "."):
            value = (actions.get(action_id) or {}).get("value")
            return str(value or "")
    return ""


def _input_block(body: Body, block_prefix: str) -> str:
    values = body.get("view", {}).get("state", {}).get("values", {})
    for block_id in values:
        if block_id == block_prefix or block_id.startswith(block_prefix + "."):
            return str(block_id)
    return block_prefix


class SlackDesk:
    """Registers the listeners on a Bolt app; holds nothing but its collaborators."""

    def __init__(self, *, app: AsyncApp, services: Services) -> None:
        self._services = services
        self._tasks: set[asyncio.Task[Any]] = set()
        self._register(app)

    def _register(self, app: AsyncApp) -> None:
        buttons = {
            names.CLAIM: self._simple("claim"), names.TAKE_OVER: self._simple("take_over"),
            names.RELEASE: self._simple("release"), names.REOPEN: self._simple("reopen"),
            names.RETRY: self._simple("retry"), names.CHECKIN_SEND: self._simple("send_checkin"),
            names.CHECKIN_SKIP: self._simple("skip_checkin"), names.REPLY: self._open_reply,
            names.ESCALATE: self._open_modal(render.escalate_modal),
            names.RESOLVE: self._open_modal(render.resolve_modal), names.SAVED_REPLY: self._saved_reply,
            names.PRIORITY: self._priority, names.ACKNOWLEDGE: self._simple("acknowledge"),
            names.SPLIT: self._simple("split"), names.REPLY_ALL: self._open_reply_all,
            names.RESOLVE_ALL: self._open_resolve_all,
        }
        for action_id, handler in buttons.items():
            app.action(action_id)(self._button(handler))
        app.view(render.REPLY_MODAL)(self._submit_reply)
        app.view(render.ESCALATE_MODAL)(self._submit_escalation)
        app.view(render.RESOLVE_MODAL)(self._submit_resolve)
        app.view(render.REPLY_ALL_MODAL)(self._submit_reply_all)
        app.view(render.RESOLVE_ALL_MODAL)(self._submit_resolve_all)
        app.command("/social")(self._command)

    def _button(self, handler: Handler) -> Any:
        """Answer Slack at once, then do the work: the click is acknowledged before any database or
        Slack call (the app runs with process_before_response, so the answer goes out when this returns)."""

        async def listener(ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
            await ack()
            task = asyncio.create_task(self._run(handler, body, client, delay=AFTER_ACK_DELAY))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        listener.__name__ = f"ack_{getattr(handler, '__name__', 'button')}"
        return listener

    async def _run(self, handler: Handler, body: Body, client: AsyncWebClient, delay: float = 0.0) -> None:
        await asyncio.sleep(delay)
        try:
            await handler(body, client)
        except Exception:
            log.exception("click %s failed", (body.get("actions") or [{}])[0].get("action_id"))

    async def drain(self) -> None:
        """Let clicks in progress finish (a graceful stop)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    async def _tell(self, client: AsyncWebClient, body: Body, text: str, blocks: list[dict[str, Any]] | None = None,
                    ) -> None:
        channel = _channel_of(body)
        user = actor_of(body).id
        if channel:
            await client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks)
        else:
            await client.chat_postMessage(channel=user, text=text, blocks=blocks)

    async def _guard(self, client: AsyncWebClient, body: Body, case_id: int | None) -> int | None:
        if case_id is None:
            await self._tell(client, body, "That button does not belong to a case I know. Nothing was changed.")
        return case_id

    async def _priority(self, body: Body, client: AsyncWebClient) -> None:
        """The priority menu on the card: its option values are "<case id>:<priority>"."""
        try:
            raw = str(body["actions"][0]["selected_option"]["value"])
            case_text, priority = raw.split(":", 1)
            case_id: int | None = int(case_text)
        except (KeyError, IndexError, ValueError, TypeError):
            case_id, priority = None, ""
        target = await self._guard(client, body, case_id)
        if target is None:
            return
        try:
            await self._services.set_priority(target, actor_of(body), priority)
        except ActionError as error:
            await self._tell(client, body, escape(error.message))
        except InvalidInput as error:
            await self._tell(client, body, escape(str(error)))

    def _simple(self, name: str) -> Any:
        """A button whose value is an id and whose service call needs nothing else."""

        async def listener(body: Body, client: AsyncWebClient) -> None:
            target = await self._guard(client, body, _action_value(body))
            if target is None:
                return
            try:
                await getattr(self._services, name)(target, actor_of(body))
            except OwnedByOther as owned:
                text, blocks = render.owned_by_other(owned.case_id, owned.owner, owned.owner_name)
                await self._tell(client, body, text, blocks)
            except ActionError as error:
                await self._tell(client, body, escape(error.message))

        listener.__name__ = f"slack_{name}"
        return listener

    async def _open_reply(self, body: Body, client: AsyncWebClient) -> None:
        case_id = await self._guard(client, body, _action_value(body))
        if case_id is None:
            return
        try:
            view, modal = await self._reply_modal(case_id)
        except ActionError as error:
            await self._tell(client, body, escape(error.message))
            return
        actor = actor_of(body)
        if view.owner and view.owner != actor.id:
            text, blocks = render.owned_by_other(view.id, view.owner, view.owner_name)
            await self._tell(client, body, text, blocks)
            return
        await client.views_open(trigger_id=body["trigger_id"], view=modal)

    async def _reply_modal(self, case_id: int, saved_index: int | None = None, version: int = 0,
                           ) -> tuple[Any, dict[str, Any]]:
        context = await self._services.reply_context(case_id)
        view, max_length, prefix, rule = context.view, context.max_length, context.prefix, context.rule
        if rule.refusal:
            raise ActionError(rule.refusal)
        budget = max(1, min(3000, max_length - len(prefix)))
        saved = [(s.title, personalise(s.text, name=view.customer_name, handle=view.customer_handle))
                 for s in self._services.config.saved_replies]
        greeting = f"Hi {first_name_of(view.customer_name, view.customer_handle)}, "
        if saved_index is not None and 0 <= saved_index < len(saved):
            greeting = saved[saved_index][1]
        modal = render.reply_modal(view, greeting=greeting, saved=saved, max_length=budget, prefix=prefix,
                                   version=version, notice=rule.notice, modes=context.modes)
        return view, modal

    async def _saved_reply(self, body: Body, client: AsyncWebClient) -> None:
        case_id = _case_of_view(body)
        if case_id is None:
            return
        try:
            index = int(body["actions"][0]["selected_option"]["value"])
        except (KeyError, IndexError, ValueError, TypeError):
            return
        current = _input_block(body, render.REPLY_INPUT).rpartition(".")[2]
        version = (int(current) if current.isdigit() else 0) + 1  # a new block id makes Slack show the new text
        _, modal = await self._reply_modal(case_id, saved_index=index, version=version)
        await client.views_update(view_id=body["view"]["id"], hash=body["view"].get("hash"), view=modal)

    def _open_modal(self, build: Any) -> Any:
        async def listener(body: Body, client: AsyncWebClient) -> None:
            case_id = await self._guard(client, body, _action_value(body))
            if case_id is None:
                return
            try:
                view = await self._services.view(case_id)
            except ActionError as error:
                await self._tell(client, body, escape(error.message))
                return
            if view.status == "resolved":
                await self._tell(client, body, f"Case #{view.id} is resolved; reopen it first.")
                return
            await client.views_open(trigger_id=body["trigger_id"], view=build(view))

        listener.__name__ = f"slack_open_{build.__name__}"
        return listener

    async def _submit(self, ack: AsyncAck, body: Body, block: str, work: Any) -> None:
        """Validate and act before acknowledging, so a refusal shows in the modal itself."""
        case_id = _case_of_view(body)
        if case_id is None:
            await ack(response_action="errors", errors={block: "This form does not belong to a known case."})
            return
        try:
            await work(case_id)
        except (ActionError, InvalidInput) as error:
            message = error.message if isinstance(error, ActionError) else str(error)
            await ack(response_action="errors", errors={block: message[:150]})
            return
        await ack()

    async def _submit_reply(self, ack: AsyncAck, body: Body) -> None:
        text = _input(body, render.REPLY_INPUT, render.REPLY_INPUT)
        block = _input_block(body, render.REPLY_INPUT)
        chosen = (body.get("view", {}).get("state", {}).get("values", {}).get(render.MODE_INPUT, {})
                  .get(render.MODE_INPUT, {}).get("selected_option") or {})
        mode = str(chosen["value"]) if chosen.get("value") else None
        await self._submit(ack, body, block,
                           lambda case_id: self._services.reply(case_id, actor_of(body), text, mode))

    async def _submit_escalation(self, ack: AsyncAck, body: Body) -> None:
        reason = _input(body, render.REASON_INPUT, render.REASON_INPUT)
        await self._submit(ack, body, render.REASON_INPUT,
                           lambda case_id: self._services.escalate(case_id, actor_of(body), reason))

    async def _submit_resolve(self, ack: AsyncAck, body: Body) -> None:
        note = _input(body, render.NOTE_INPUT, render.NOTE_INPUT)
        await self._submit(ack, body, render.NOTE_INPUT,
                           lambda case_id: self._services.resolve(case_id, actor_of(body), note))

    # ---- incidents (storms) ----------------------------------------------------------------------------------------

    async def _incident_for_button(self, body: Body, client: AsyncWebClient) -> Any:
        incident_id = _action_value(body)
        if incident_id is None:
            await self._tell(client, body, "That button does not belong to an incident I know. Nothing was changed.")
            return None
        try:
            view = await self._services.incident_view(incident_id)
        except ActionError as error:
            await self._tell(client, body, escape(error.message))
            return None
        if view.status != "open":
            await self._tell(client, body, f"Incident #{view.id} is resolved.")
            return None
        return view

    async def _open_reply_all(self, body: Body, client: AsyncWebClient) -> None:
        view = await self._incident_for_button(body, client)
        if view is None:
            return
        if view.reply_text is not None:
            await self._tell(client, body, f"{escape(view.reply_name or 'Someone')} already replied to all members of "
                                           f"incident #{view.id}; members who join get that reply too.")
            return
        senders = self._services.senders
        limits = [senders[p].max_length for p, _ in view.platforms if p in senders]
        modal = render.reply_all_modal(view, max_length=min(limits, default=3000))
        await client.views_open(trigger_id=body["trigger_id"], view=modal)

    async def _open_resolve_all(self, body: Body, client: AsyncWebClient) -> None:
        view = await self._incident_for_button(body, client)
        if view is None:
            return
        modal = render.resolve_all_modal(view, followups=len(self._services.config.followups))
        await client.views_open(trigger_id=body["trigger_id"], view=modal)

    async def _submit_incident(self, ack: AsyncAck, body: Body, client: AsyncWebClient, block: str, work: Any
                               ) -> None:
        """Like `_submit`, but a big incident may take longer than Slack waits for an answer: after two seconds the
        form closes and the work goes on; a refusal then reaches the person as a direct message."""
        try:
            incident_id = int(json.loads(body["view"]["private_metadata"])["incident"])
        except (KeyError, ValueError, TypeError):
            await ack(response_action="errors", errors={block: "This form does not belong to a known incident."})
            return
        task = asyncio.create_task(work(incident_id))
        done, _ = await asyncio.wait({task}, timeout=2.0)
        if not done:
            await ack()
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._report(t, body, client))
            return
        error = task.exception()
        if isinstance(error, (ActionError, InvalidInput)):
            message = error.message if isinstance(error, ActionError) else str(error)
            await ack(response_action="errors", errors={block: message[:150]})
            return
        await ack()
        if error is not None:
            log.error("incident action failed", exc_info=error)

    def _report(self, task: asyncio.Task[Any], body: Body, client: AsyncWebClient) -> None:
        self._tasks.discard(task)
        error = task.exception() if not task.cancelled() else None
        if error is None:
            return
        message = error.message if isinstance(error, ActionError) else str(error)
        if not isinstance(error, (ActionError, InvalidInput)):
            log.error("incident action failed", exc_info=error)
            message = "Something went wrong; nothing was changed. Please try again."
        user = actor_of(body).id
        if user:
            follow = asyncio.create_task(client.chat_postMessage(channel=user, text=escape(message)))
            self._tasks.add(follow)
            follow.add_done_callback(self._tasks.discard)

    async def _submit_reply_all(self, ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
        template = _input(body, render.TEMPLATE_INPUT, render.TEMPLATE_INPUT)
        statement = _input(body, render.STATEMENT_INPUT, render.STATEMENT_INPUT)
        await self._submit_incident(ack, body, client, render.TEMPLATE_INPUT, lambda incident_id: (
            self._services.reply_to_all(incident_id, actor_of(body), template, statement)))

    async def _submit_resolve_all(self, ack: AsyncAck, body: Body, client: AsyncWebClient) -> None:
        note = _input(body, render.NOTE_INPUT, render.NOTE_INPUT)
        await self._submit_incident(ack, body, client, render.NOTE_INPUT, lambda incident_id: (
            self._services.resolve_all(incident_id, actor_of(body), note)))

    async def _command(self, ack: AsyncAck, body: Body) -> None:
        words = str(body.get("text") or "").split()
        if not words or words[0] == "help":
            await ack(text=f"Usage: {USAGE}")
            return
        if words[0] == "oncall":
            config = self._services.config
            slack = config.slack
            assert slack is not None
            if config.oncall is not None and config.oncall.rotations:
                schedule, now = config.oncall.schedule(), datetime.now(UTC)
                text = render.oncall_schedule(schedule.now(now), schedule.upcoming(now), slack.escalation_channel,
                                              bool(config.escalation))
            else:
                text = render.oncall(slack.oncall, slack.escalation_channel)
            await ack(text=text, response_type="ephemeral")
            return
        if words[0] != "stats":
            await ack(text=f"Unknown command `{escape(words[0])}`. Try {USAGE}.")
            return
        period = words[1] if len(words) > 1 else "today"
        if period not in PERIODS:
            await ack(text=f"Unknown period `{escape(period)}`: use today, 7d or 30d.")
            return
        text, blocks = render.stats(await self._services.stats(period))
        await ack(text=text, blocks=blocks, response_type="ephemeral")
