"""The sandbox's web side: the Slack Web API emulator, the page, its live stream and its actions.

Everything a person does in the page reaches the bot the way Slack would deliver it: clicks, modal
submissions and slash commands become Slack's payloads, form-encoded and signed with the signing
secret, POSTed to the bot's own `/slack/events`. The customer side goes through the real generic
webhook (signed, as a listening tool would) and replies come back to `/sandbox/customer/inbox` through
the bot's real generic sender. Mounted only in sandbox mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters import signing
from bot.sandbox.personas import CHANNELS, NAMES, PERSONAS, persona
from bot.sandbox.render import render_message, render_view
from bot.sandbox.workspace import JSON_FIELDS, TEAM_ID, Change, Workspace

log = logging.getLogger("socialops.sandbox")

Json = dict[str, Any]
STATIC = Path(__file__).parent / "static"
API_APP_ID = "ASANDBOX"
MAX_BODY = 256 * 1024
MAX_EVENT = 1024 * 1024
PING_EVERY_S = 15.0
TEAM = {"id": TEAM_ID, "domain": "acme-sandbox"}


class Refused(Exception):
    """A page request that cannot be done: answered 4xx with the message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def _user(user_id: str) -> Json:
    who = persona(user_id)
    if who is None:
        raise Refused(f"unknown persona {user_id!r}: use one of {', '.join(p.id for p in PERSONAS)}")
    return {"id": who.id, "username": who.name.lower(), "name": who.name.lower(), "team_id": TEAM_ID}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class CustomerMessage:
    id: str
    conversation: str
    direction: str
    author: str
    text: str
    at: str
    case_url: str | None = None

    def public(self) -> Json:
        return dict(self.__dict__)


@dataclass
class Conversation:
    """What the platform knows about a conversation: who started it and how (for answers in it)."""

    kind: str
    author: Json
    platform: str


class Broadcaster:
    """Fan-out of page events to every open stream (each stream has its own queue)."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Json]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, event: Json) -> None:
        """From any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._put(event)
        else:
            loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: Json) -> None:
        for queue in list(self._queues):
            if queue.qsize() < 1000:  # a stalled page drops events rather than the bot's memory
                queue.put_nowait(event)

    @contextlib.contextmanager
    def subscribe(self) -> Any:
        queue: asyncio.Queue[Json] = asyncio.Queue()
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)


class Sandbox:
    """The emulated workspace, the customer side and the page's endpoints, for one bot process."""

    def __init__(self, *, workspace: Workspace, base_url: str, signing_secret: str, generic_secret: str,
                 http: httpx.AsyncClient, feed: Any | None = None) -> None:
        self.workspace = workspace
        self.base_url = base_url.rstrip("/")
        self._signer = SignatureVerifier(signing_secret)
        self._generic_secret = generic_secret
        self._http = http
        self.feed = feed
        self.events = Broadcaster()
        self.customer: list[CustomerMessage] = []
        self.refused: list[Json] = []
        self._conversations: dict[str, Conversation] = {}
        self._sent: dict[str, CustomerMessage] = {}
        self._responses: dict[str, tuple[str, str]] = {}
        self._ids = itertools.count(1)
        self._session = f"{int(time.time())}"
        workspace.listen(self._on_change)

    @property
    def slack_api_url(self) -> str:
        return f"{self.base_url}/sandbox/slack/api/"

    @property
    def generic_reply_url(self) -> str:
        return f"{self.base_url}/sandbox/customer/inbox"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/sandbox", self.page, methods=["GET"]),
            Route("/sandbox/", self.page, methods=["GET"]),
            Mount("/sandbox/static", app=StaticFiles(directory=STATIC), name="sandbox-static"),
            Route("/sandbox/archives/{channel}/{message}", self.permalink, methods=["GET"]),
            Route("/sandbox/slack/api/{method}", self.slack_api, methods=["GET", "POST"]),
            Route("/sandbox/slack/response/{key}", self.response_url, methods=["POST"]),
            Route("/sandbox/customer/inbox", self.inbox, methods=["POST"]),
            Route("/sandbox/ui/state", self.state, methods=["GET"]),
            Route("/sandbox/ui/events", self.stream, methods=["GET"]),
            Route("/sandbox/ui/action", self._page_call(self.action), methods=["POST"]),
            Route("/sandbox/ui/submit", self._page_call(self.submit), methods=["POST"]),
            Route("/sandbox/ui/close", self._page_call(self.close), methods=["POST"]),
            Route("/sandbox/ui/command", self._page_call(self.command), methods=["POST"]),
            Route("/sandbox/ui/customer", self._page_call(self.customer_writes), methods=["POST"]),
            Route("/sandbox/ui/feed", self._page_call(self.set_feed), methods=["POST"]),
        ]

    def start(self) -> None:
        self.events.bind(asyncio.get_running_loop())

    # ---- what the page shows ----------------------------------------------------------------------
    def message_json(self, msg: Json, reply_count: int | None = None) -> Json:
        top = not msg.get("thread_ts") or msg["thread_ts"] == msg["ts"]
        if reply_count is None:
            reply_count = self.workspace.reply_count(msg["channel"], msg["ts"]) if top else 0
        return {"channel": msg["channel"], "ts": msg["ts"], "thread_ts": msg.get("thread_ts"),
                "html": render_message(msg.get("blocks"), msg.get("text") or "", NAMES),
                "text": msg.get("text") or "", "reply_count": reply_count, "edited": bool(msg.get("updates")),
                "author": "SocialOps"}

    def ephemeral_json(self, eph: Json) -> Json:
        return {"id": eph["message_ts"], "channel": eph["channel"], "thread_ts": eph.get("thread_ts"),
                "user": eph["user"], "html": render_message(eph.get("blocks"), eph.get("text") or "", NAMES),
                "text": eph.get("text") or ""}

    def view_json(self, view: Json, user: str | None, stack: int) -> Json:
        def label(key: str) -> str | None:
            value = view.get(key)
            return str(value.get("text")) if isinstance(value, dict) else None

        return {"id": view["id"], "user": user, "title": label("title") or "", "submit": label("submit"),
                "close": label("close"), "html": render_view(view, NAMES), "stack": stack}

    def _on_change(self, change: Change) -> None:
        data = change.data
        if change.kind == "message":
            event = {"type": "message", **self.message_json(data, int(data.get("reply_count") or 0))}
        elif change.kind == "ephemeral":
            event = {"type": "ephemeral", **self.ephemeral_json(data)}
        elif change.kind == "view":
            user = data.get("user")
            stack = len(self.workspace.views(user)) if user else 1
            event = {"type": "view", **self.view_json(data, user, stack)}
        elif change.kind == "refused":
            self.refused.append(data)
            del self.refused[:-50]
            event = {"type": "refused", **data, "at": datetime.fromtimestamp(data["at"], UTC).isoformat()}
            log.warning("Slack would refuse %s: %s %s", data["method"], data["error"], data["details"][:3])
        else:
            event = {"type": change.kind, **data}
        self.events.publish(event)

    async def page(self, _: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def permalink(self, request: Request) -> Response:
        """chat.getPermalink's links (e.g. "Open the case" in an escalation) open that message in the page."""
        channel, message = request.path_params["channel"], request.path_params["message"]
        digits = message.removeprefix("p")
        if not channel.isalnum() or not digits.isdigit() or len(digits) < 7:
            return JSONResponse({"ok": False, "error": "not a message link"}, status_code=404)
        query = {"channel": channel, "ts": f"{digits[:-6]}.{digits[-6:]}"}
        thread = request.query_params.get("thread_ts")
        if thread:
            query["thread_ts"] = thread
        return RedirectResponse(f"/sandbox?{urlencode(query)}", status_code=302)

    async def state(self, request: Request) -> Response:
        user = request.query_params.get("user") or PERSONAS[0].id
        try:
            _user(user)
        except Refused as error:
            return JSONResponse({"ok": False, "error": error.message}, status_code=400)
        messages = [self.message_json(m) for m in self.workspace.messages(with_replies=True)
                    if not m["channel"].startswith(("U", "D")) or m["channel"] == user]
        channels = [{"id": cid, "name": name, "kind": "channel"} for cid, name in CHANNELS.items()]
        if any(m["channel"] == user for m in messages):
            channels.append({"id": user, "name": "SocialOps", "kind": "dm"})
        views = list(self.workspace.views(user).values())
        return JSONResponse({
            "personas": [{"id": p.id, "name": p.name, "role": p.role} for p in PERSONAS],
            "channels": channels, "messages": messages,
            "ephemerals": [self.ephemeral_json(e) for e in self.workspace.ephemerals(user)],
            "views": [self.view_json(v, user, i + 1) for i, v in enumerate(views)],
            "customer": [m.public() for m in self.customer],
            "errors": [{**r, "at": datetime.fromtimestamp(r["at"], UTC).isoformat()} for r in self.refused],
            "feed": {"running": bool(self.feed is not None and self.feed.running), "available": self.feed is not None},
        })

    async def stream(self, request: Request) -> Response:
        async def events() -> AsyncIterator[str]:
            with self.events.subscribe() as queue:
                yield ": connected\n\n"
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), timeout=PING_EVERY_S)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield ": ping\n\n"
                        continue
                    yield f"data: {json.dumps(event)}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # ---- the Slack Web API, for the bot -------------------------------------------------------------
    async def slack_api(self, request: Request) -> Response:
        params: Json = dict(request.query_params)
        raw = await request.body()
        try:
            if raw and "json" in request.headers.get("content-type", ""):
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError
                params.update(body)
            elif raw:
                params.update(parse_qsl(raw.decode(), keep_blank_values=True))
            for key in JSON_FIELDS:
                if isinstance(params.get(key), str) and params[key][:1] in ("[", "{"):
                    params[key] = json.loads(params[key])
        except (ValueError, TypeError):
            return JSONResponse({"ok": False, "error": "invalid_json"})
        token = (request.headers.get("authorization") or "").removeprefix("Bearer ").strip()
        token = token or params.pop("token", None)
        return JSONResponse(self.workspace.call(request.path_params["method"], params, token))

    # ---- the page's actions ----------------------------------------------------------------------
    def _page_call(self, handler: Callable[[Json], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                # Only the page's own script sends JSON; a form on another site cannot (CORS preflight).
                return JSONResponse({"ok": False, "error": "send application/json"}, status_code=415)
            raw = await request.body()
            if len(raw) > MAX_BODY:
                return JSONResponse({"ok": False, "error": "request too large"}, status_code=413)
            try:
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise Refused("expected a JSON object")
                answer = await handler(body)
            except ValueError:
                return JSONResponse({"ok": False, "error": "malformed JSON"}, status_code=400)
            except Refused as error:
                return JSONResponse({"ok": False, "error": error.message}, status_code=error.status)
            return JSONResponse({"ok": True, **answer})

        return endpoint

    async def _to_bot(self, payload: Json | None = None, form: dict[str, str] | None = None) -> httpx.Response:
        """POST to the bot's /slack/events as Slack does: form-encoded, signed, with a fresh timestamp."""
        body = urlencode(form if form is not None else {"payload": json.dumps(payload)}).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": stamp,
                   "X-Slack-Signature": self._signer.generate_signature(timestamp=stamp, body=body) or ""}
        try:
            response = await self._http.post(f"{self.base_url}/slack/events", content=body, headers=headers)
        except httpx.HTTPError as error:
            raise Refused(f"the bot did not answer: {error}", status=502) from None
        if response.status_code >= 400:
            raise Refused(f"the bot answered HTTP {response.status_code}: {response.text[:200]}", status=502)
        return response

    def _response_url(self, user: str, channel: str) -> str:
        key = secrets.token_urlsafe(16)
        self._responses[key] = (user, channel)
        return f"{self.base_url}/sandbox/slack/response/{key}"

    @staticmethod
    def _find_element(blocks: list[Json] | None, block_id: str, action_id: str) -> Json | None:
        for block in blocks or []:
            if block_id and block.get("block_id") not in (None, block_id):
                continue
            for element in [*(block.get("elements") or []), block.get("accessory"), block.get("element")]:
                if isinstance(element, dict) and element.get("action_id") == action_id:
                    return element
        return None

    @staticmethod
    def _state_of(view: Json, typed: Any) -> Json:
        """The view's current values: what the page sent, else each input's initial value."""
        values: Json = {}
        for block in view.get("blocks") or []:
            element = block.get("element")
            if block.get("type") != "input" or not isinstance(element, dict):
                continue
            block_id, action_id = str(block.get("block_id")), str(element.get("action_id"))
            value = element.get("initial_value")
            if isinstance(typed, dict) and isinstance(typed.get(block_id), dict) and action_id in typed[block_id]:
                value = typed[block_id][action_id]
            values[block_id] = {action_id: {"type": element.get("type"), "value": value}}
        return {"values": values}

    async def action(self, body: Json) -> Json:
        user_id = str(body.get("user") or "")
        user = _user(user_id)
        action_id, block_id = str(body.get("action_id") or ""), str(body.get("block_id") or "")
        if not action_id:
            raise Refused("missing action_id")
        payload: Json = {"type": "block_actions", "user": user, "api_app_id": API_APP_ID, "token": "sandbox",
                         "trigger_id": self.workspace.issue_trigger(user_id), "team": TEAM, "enterprise": None,
                         "is_enterprise_install": False, "state": {"values": {}}}
        blocks: list[Json] | None
        if body.get("view_id"):
            view = self.workspace.view(str(body["view_id"]))
            if view is None or self.workspace.view_user(str(body["view_id"])) != user_id:
                raise Refused("that dialog is not open any more", status=404)
            payload["container"] = {"type": "view", "view_id": view["id"]}
            payload["view"] = {**view, "state": self._state_of(view, body.get("values"))}
            blocks = view.get("blocks")
        else:
            channel = str(body.get("channel") or "")
            if body.get("ephemeral_id"):
                eph = self.workspace.ephemeral(str(body["ephemeral_id"]))
                if eph is None or eph["user"] != user_id:
                    raise Refused("that message is gone", status=404)
                channel = eph["channel"]
                payload["container"] = {"type": "message", "message_ts": eph["message_ts"], "channel_id": channel,
                                        "is_ephemeral": True}
                blocks = eph.get("blocks")
            else:
                msg = self.workspace.message(channel, str(body.get("message_ts") or ""))
                if msg is None:
                    raise Refused("that message is not in the channel", status=404)
                payload["container"] = {"type": "message", "message_ts": msg["ts"], "channel_id": channel,
                                        "is_ephemeral": False}
                payload["message"] = self.workspace.render(msg)
                blocks = msg.get("blocks")
            payload["channel"] = {"id": channel, "name": CHANNELS.get(channel, "directmessage")}
            payload["response_url"] = self._response_url(user_id, channel)
        element = self._find_element(blocks, block_id, action_id)
        if element is None:
            raise Refused(f"no element {action_id!r} in that message", status=404)
        action: Json = {"action_id": action_id, "block_id": block_id, "type": element.get("type"),
                        "action_ts": f"{time.time():.6f}"}
        if element.get("type") == "button":
            action |= {"text": element.get("text"), "value": element.get("value")}
            if element.get("style"):
                action["style"] = element["style"]
        else:
            selected = next((o for o in element.get("options") or [] if o.get("value") == body.get("selected")), None)
            if selected is None:
                raise Refused("pick one of the options")
            action["selected_option"] = selected
        payload["actions"] = [action]
        await self._to_bot(payload)
        return {}

    async def submit(self, body: Json) -> Json:
        user_id = str(body.get("user") or "")
        user = _user(user_id)
        view_id = str(body.get("view_id") or "")
        view = self.workspace.view(view_id)
        if view is None or self.workspace.view_user(view_id) != user_id:
            raise Refused("that dialog is not open any more", status=404)
        payload = {"type": "view_submission", "team": TEAM, "user": user, "api_app_id": API_APP_ID,
                   "token": "sandbox", "trigger_id": self.workspace.issue_trigger(user_id),
                   "view": {**view, "state": self._state_of(view, body.get("values"))}, "response_urls": [],
                   "is_enterprise_install": False, "enterprise": None}
        response = await self._to_bot(payload)
        answer: Json = {}
        if response.content:
            with contextlib.suppress(ValueError):
                answer = response.json()
        action = answer.get("response_action")
        if action == "errors":
            return {"errors": answer.get("errors") or {}}
        if action == "update":
            self.workspace.replace_view(view_id, answer.get("view") or {})
            return {}
        if action == "push":
            self.workspace.handle("views.push", {"trigger_id": self.workspace.issue_trigger(user_id),
                                                 "view": answer.get("view")})
            return {}
        if action == "clear":
            for open_id in self.workspace.views(user_id):
                self.workspace.close_view(open_id)
            return {}
        self.workspace.close_view(view_id)
        return {}

    async def close(self, body: Json) -> Json:
        user_id = str(body.get("user") or "")
        _user(user_id)
        view_id = str(body.get("view_id") or "")
        if self.workspace.view_user(view_id) != user_id:
            raise Refused("that dialog is not open", status=404)
        self.workspace.close_view(view_id)
        return {}

    async def command(self, body: Json) -> Json:
        user_id = str(body.get("user") or "")
        user = _user(user_id)
        channel = str(body.get("channel") or "")
        text = str(body.get("text") or "").strip()
        if not text.startswith("/"):
            raise Refused("the bot only reads slash commands here: try /social stats")
        command, _, rest = text.partition(" ")
        if command != "/social":
            raise Refused(f"{command} is not a command of this app: try /social stats")
        form = {"token": "sandbox", "team_id": TEAM_ID, "team_domain": TEAM["domain"], "channel_id": channel,
                "channel_name": CHANNELS.get(channel, "directmessage"), "user_id": user_id,
                "user_name": user["name"], "command": command, "text": rest.strip(), "api_app_id": API_APP_ID,
                "is_enterprise_install": "false", "response_url": self._response_url(user_id, channel),
                "trigger_id": self.workspace.issue_trigger(user_id)}
        response = await self._to_bot(form=form)
        if response.content:
            try:
                answer = response.json()
            except ValueError:
                answer = {"text": response.text}
            self._show_response(user_id, channel, answer)
        return {}

    def _show_response(self, user: str, channel: str, answer: Json) -> None:
        """A slash command's or response_url's answer: in the channel, or for that person only."""
        text, blocks = str(answer.get("text") or ""), answer.get("blocks")
        if not text and not blocks:
            return
        if answer.get("response_type") == "in_channel":
            self.workspace.handle("chat.postMessage", {"channel": channel, "text": text, "blocks": blocks})
        else:
            params: Json = {"channel": channel, "user": user, "text": text}
            if blocks:
                params["blocks"] = blocks
            self.workspace.handle("chat.postEphemeral", params)

    async def response_url(self, request: Request) -> Response:
        target = self._responses.get(request.path_params["key"])
        if target is None:
            return JSONResponse({"ok": False, "error": "expired_url"}, status_code=404)
        try:
            answer = json.loads(await request.body())
            if not isinstance(answer, dict):
                raise ValueError
        except ValueError:
            return JSONResponse({"ok": False, "error": "invalid_payload"}, status_code=400)
        self._show_response(*target, answer)
        return JSONResponse({"ok": True})

    # ---- the customer's side ---------------------------------------------------------------------------
    def _customer_event(self, message: CustomerMessage) -> None:
        self.customer.append(message)
        del self.customer[:-500]
        self.events.publish({"type": "customer", **message.public()})

    async def post_event(self, event: Json) -> Json:
        """A platform event into the bot's generic webhook, signed like a listening tool signs it."""
        raw = json.dumps(event).encode()
        headers = {"Content-Type": "application/json", **signing.headers(self._generic_secret, raw)}
        response = await self._http.post(f"{self.base_url}/webhooks/generic", content=raw, headers=headers)
        if response.status_code >= 400:
            raise Refused(f"the webhook answered HTTP {response.status_code}: {response.text[:200]}", 502)
        answer: Json = response.json()
        return answer

    def saw_event(self, raw: bytes) -> None:
        """An event the bot accepted at /webhooks/generic (from the feed, the pane or your own tool): the
        customer said it on the platform, so the customer pane shows it."""
        try:
            event = json.loads(raw)
            kind, event_id, text = str(event["kind"]), str(event["id"]), str(event["text"])
            author = event.get("author") if isinstance(event.get("author"), dict) else {}
        except (ValueError, KeyError, TypeError):
            return
        conversation = str(event.get("conversation") or
                           (f"dm:{author.get('id')}" if kind == "dm" else f"{kind}:{event_id}"))
        self._conversations.setdefault(conversation, Conversation(
            kind=kind, author=dict(author), platform=str(event.get("platform") or "generic")))
        self._customer_event(CustomerMessage(
            id=event_id, conversation=conversation, direction="in",
            author=str(author.get("name") or author.get("handle") or "customer"), text=text, at=_now_iso()))

    async def customer_writes(self, body: Json) -> Json:
        text = str(body.get("text") or "").strip()
        if not text:
            raise Refused("write something first")
        if len(text) > 5000:
            raise Refused("that is longer than 5,000 characters")
        number = next(self._ids)
        conversation = body.get("conversation")
        if conversation:
            known = self._conversations.get(str(conversation))
            if known is None:
                raise Refused("no such conversation", status=404)
            kind = "dm" if known.kind == "dm" else ("comment" if known.kind == "review" else known.kind)
            event: Json = {"id": f"sandbox-pane-{self._session}-{number}", "kind": kind, "text": text,
                           "author": known.author, "platform": known.platform, "conversation": str(conversation)}
        else:
            name = str(body.get("name") or "").strip()[:80] or "Sam Sandbox"
            handle = "@" + "".join(ch for ch in name.lower() if ch.isalnum())[:20]
            event = {"id": f"sandbox-pane-{self._session}-{number}", "kind": "mention", "text": text,
                     "author": {"id": f"pane-{self._session}-{number}", "name": name, "handle": handle,
                                "followers": 42},
                     "platform": "x", "conversation": f"sandbox-pane-conv-{self._session}-{number}"}
        answer = await self.post_event(event)
        return {"case": answer.get("case")}

    async def inbox(self, request: Request) -> Response:
        """Where the bot's generic sender delivers replies and check-ins for events without a reply_url."""
        raw = await request.body()
        problem = signing.verify(self._generic_secret, request.headers.get("x-socialops-timestamp"),
                                 request.headers.get("x-socialops-signature"), raw)
        if problem:
            return JSONResponse({"error": problem}, status_code=401)
        try:
            data = json.loads(raw)
            text = str(data["text"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "expected JSON with text"}, status_code=400)
        key = request.headers.get("idempotency-key") or str(data.get("idempotency_key") or "")
        sent = self._sent.get(key) if key else None
        if sent is None:  # a retried delivery is answered with the first one's id and shown once
            number = next(self._ids)
            sent = CustomerMessage(id=f"reply-{self._session}-{number}", conversation=str(data.get("conversation")),
                                   direction="out", author="Acme", text=text, at=_now_iso(),
                                   case_url=None)
            if key:
                self._sent[key] = sent
            self._customer_event(sent)
        return JSONResponse({"id": sent.id, "url": f"{self.base_url}/sandbox#customer-{sent.id}"})

    async def set_feed(self, body: Json) -> Json:
        if self.feed is None:
            raise Refused("the sample feed is not available in this sandbox", status=409)
        running = body.get("running")
        if not isinstance(running, bool):
            raise Refused("running must be true or false")
        if running:
            self.feed.start()
        else:
            await self.feed.stop()
        return {"running": self.feed.running}

    def feed_changed(self, running: bool) -> None:
        self.events.publish({"type": "feed", "running": running})


class WebhookWatch:
    """ASGI middleware around the bot's web app: events accepted (202) at /webhooks/generic reach the customer
    pane, whoever posted them (the feed, the pane, your own tool). Everything passes through unchanged."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app, self.sandbox = app, sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/webhooks/generic":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        status: list[int] = []

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request" and sum(map(len, chunks)) <= MAX_EVENT:
                chunks.append(message.get("body", b""))
            return message

        async def send_and_look(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, receive_and_keep, send_and_look)
        if status == [202]:
            self.sandbox.saw_event(b"".join(chunks))


class LoopbackOnly:
    """ASGI middleware: /sandbox answers only requests addressed to this machine's loopback name, so a web
    page elsewhere cannot reach it through a DNS name that points at 127.0.0.1 (DNS rebinding)."""

    def __init__(self, app: ASGIApp, port: int) -> None:
        self.app = app
        self.allowed = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith("/sandbox"):
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            if host.lower() not in self.allowed:
                response = JSONResponse({"ok": False, "error": "the sandbox answers only at 127.0.0.1"},
                                        status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
