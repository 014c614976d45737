"""An in-memory Slack workspace: the Web API methods the bot calls, answered the way Slack answers them.

The sandbox serves it to the bot's real `slack_sdk` client (through `SLACK_API_URL`), and the tests' fake
Slack server wraps it. Block Kit limits are enforced like Slack enforces them (`invalid_blocks` with
json-pointer errors), message timestamps are unique and increasing, threads, ephemerals and modals
(`views.open`/`push`/`update` with hash checks) behave as documented. Every change is reported to the
listeners, so a page can show it live; refused calls are reported too.

Thread-safe: one lock around the state; listeners are called after the lock is released.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

BOT_USER = "UBOT"
BOT_ID = "BSANDBOX"
APP_ID = "ASANDBOX"
TEAM_ID = "T0SANDBOX"
BOT_FIELDS = {"user": BOT_USER, "bot_id": BOT_ID, "app_id": APP_ID}
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
JSON_FIELDS = ("blocks", "attachments", "metadata", "view")
TRIGGER_TTL_S = 3.0
"""Slack: a trigger_id is good for one views.open within 3 seconds."""
BLOCK_TYPES = {"section", "divider", "header", "context", "actions", "input", "image", "rich_text"}
ELEMENT_TYPES = set(
    "button checkboxes datepicker datetimepicker email_text_input file_input image multi_static_select"
    " multi_external_select multi_users_select multi_conversations_select multi_channels_select number_input"
    " overflow plain_text_input radio_buttons rich_text_input static_select external_select users_select"
    " conversations_select channels_select timepicker url_text_input workflow_button".split()
)


class SlackError(Exception):
    """Raised inside a handler: answered as ``{"ok": false, "error": ..., **extra}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error, self.extra = error, extra


@dataclass(frozen=True)
class Change:
    """What happened, for listeners: kind is message, ephemeral, view, view_closed or refused."""

    kind: str
    data: Json


Listener = Callable[[Change], None]


def ts_key(ts: str) -> tuple[int, int]:
    sec, _, frac = ts.partition(".")
    return int(sec or 0), int(frac.ljust(6, "0")[:6] or 0)


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _public(view: Json) -> Json:
    return {k: copy.deepcopy(v) for k, v in view.items() if not k.startswith("_")}


def is_top(m: Json) -> bool:
    return not m.get("thread_ts") or m["thread_ts"] == m["ts"]


class _Validator:
    """Collects Slack-style errors: ``"<problem> [json-pointer:/blocks/0/text/text]"``."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, problem: str, ptr: str) -> None:
        self.errors.append(f"{problem} [json-pointer:{ptr}]")

    def maxlen(self, value: Any, limit: int, ptr: str) -> None:
        if isinstance(value, str) and len(value) > limit:
            self.err(f"must be less than {limit + 1} characters", ptr)

    def text(self, obj: Any, ptr: str, limit: int, plain: bool = False) -> None:
        if not isinstance(obj, dict):
            return self.err("must be a text object", ptr)
        kind = obj.get("type")
        if kind not in ("plain_text", "mrkdwn") or (plain and kind != "plain_text"):
            self.err("must be a valid enum value" if not plain else "must be plain_text", f"{ptr}/type")
        if kind == "plain_text" and "verbatim" in obj:
            self.err("verbatim is not allowed for plain_text", f"{ptr}/verbatim")
        value = obj.get("text")
        if not isinstance(value, str) or not value:
            return self.err("must be more than 0 characters", f"{ptr}/text")
        self.maxlen(value, limit, f"{ptr}/text")

    def items(self, seq: Any, ptr: str, most: int, least: int = 1) -> list[Any]:
        if not isinstance(seq, list):
            self.err("must be an array", ptr)
            return []
        if len(seq) > most:
            self.err(f"must be less than {most + 1} items", ptr)
        if len(seq) < least:
            self.err(f"must be more than {least - 1} items", ptr)
        return seq

    def blocks(self, blocks: Any, ptr: str = "/blocks", most: int = 50) -> None:
        for i, block in enumerate(self.items(blocks, ptr, most, least=0)):
            self.block(block, f"{ptr}/{i}")

    def block(self, b: Any, p: str) -> None:
        if not isinstance(b, dict) or b.get("type") not in BLOCK_TYPES:
            return self.err("must be a valid enum value", f"{p}/type")
        self.maxlen(b.get("block_id"), 255, f"{p}/block_id")
        kind = b["type"]
        if kind == "section":
            if "text" not in b and "fields" not in b:
                self.err("must provide either text or fields", p)
            if "text" in b:
                self.text(b["text"], f"{p}/text", 3000)
            if "fields" in b:
                for i, f in enumerate(self.items(b["fields"], f"{p}/fields", 10)):
                    self.text(f, f"{p}/fields/{i}", 2000)
            if "accessory" in b:
                self.element(b["accessory"], f"{p}/accessory")
        elif kind == "header":
            self.text(b.get("text"), f"{p}/text", 150, plain=True)
        elif kind == "context":
            for i, e in enumerate(self.items(b.get("elements"), f"{p}/elements", 10)):
                if isinstance(e, dict) and e.get("type") == "image":
                    self.element(e, f"{p}/elements/{i}")
                else:
                    self.text(e, f"{p}/elements/{i}", 3000)
        elif kind == "actions":
            for i, e in enumerate(self.items(b.get("elements"), f"{p}/elements", 25)):
                self.element(e, f"{p}/elements/{i}")
        elif kind == "input":
            self.text(b.get("label"), f"{p}/label", 2000, plain=True)
            if "hint" in b:
                self.text(b["hint"], f"{p}/hint", 2000, plain=True)
            self.element(b.get("element"), f"{p}/element")
        elif kind == "image":
            self.image(b, p)
        elif kind == "rich_text":
            self.items(b.get("elements"), f"{p}/elements", 10_000, least=0)

    def image(self, e: Json, p: str) -> None:
        if not e.get("image_url") and not e.get("slack_file"):
            self.err("must provide image_url or slack_file", p)
        if not isinstance(e.get("alt_text"), str) or not e["alt_text"]:
            self.err("must be more than 0 characters", f"{p}/alt_text")
        self.maxlen(e.get("alt_text"), 2000, f"{p}/alt_text")
        self.maxlen(e.get("image_url"), 3000, f"{p}/image_url")

    def element(self, e: Any, p: str) -> None:
        if not isinstance(e, dict) or e.get("type") not in ELEMENT_TYPES:
            return self.err("must be a valid enum value", f"{p}/type")
        kind = e["type"]
        self.maxlen(e.get("action_id"), 255, f"{p}/action_id")
        if kind == "image":
            return self.image(e, p)
        if "placeholder" in e:
            self.text(e["placeholder"], f"{p}/placeholder", 150, plain=True)
        if kind in ("button", "workflow_button"):
            self.text(e.get("text"), f"{p}/text", 75, plain=True)
            self.maxlen(e.get("value"), 2000, f"{p}/value")
            self.maxlen(e.get("url"), 3000, f"{p}/url")
            if e.get("style") not in (None, "primary", "danger"):
                self.err("must be a valid enum value", f"{p}/style")
        if kind == "plain_text_input":
            max_length = e.get("max_length", 3000)
            if not isinstance(max_length, int) or not 1 <= max_length <= 3000:
                self.err("must be between 1 and 3000", f"{p}/max_length")
                max_length = 3000
            self.maxlen(e.get("initial_value"), max_length, f"{p}/initial_value")
        if "options" in e:
            most = {"overflow": 5, "checkboxes": 10, "radio_buttons": 10}.get(kind, 100)
            plain = kind not in ("checkboxes", "radio_buttons")
            for i, o in enumerate(self.items(e["options"], f"{p}/options", most)):
                self.text(o.get("text") if isinstance(o, dict) else o, f"{p}/options/{i}/text", 75, plain)
                self.maxlen(o.get("value") if isinstance(o, dict) else None, 150, f"{p}/options/{i}/value")

    def view(self, v: Any, p: str = "/view") -> None:
        if not isinstance(v, dict) or v.get("type") not in ("modal", "home"):
            return self.err("must be a valid enum value", f"{p}/type")
        if v["type"] == "modal":
            self.text(v.get("title"), f"{p}/title", 24, plain=True)
            for key in ("submit", "close"):
                if key in v:
                    self.text(v[key], f"{p}/{key}", 24, plain=True)
            blocks = v.get("blocks")
            if (
                isinstance(blocks, list)
                and "submit" not in v
                and any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
            ):
                self.err("must provide submit when using input blocks", f"{p}/submit")
        self.blocks(v.get("blocks"), f"{p}/blocks", most=100)
        self.maxlen(v.get("private_metadata"), 3000, f"{p}/private_metadata")
        self.maxlen(v.get("callback_id"), 255, f"{p}/callback_id")
        self.maxlen(v.get("external_id"), 255, f"{p}/external_id")


def message_errors(blocks: list[Json]) -> list[str]:
    """What Slack would answer (invalid_blocks errors) for these message blocks; [] when valid."""
    validator = _Validator()
    validator.blocks(blocks)
    return validator.errors


def view_errors(view: Json) -> list[str]:
    """What Slack would answer for this modal; [] when valid."""
    validator = _Validator()
    validator.view(view)
    return validator.errors


class Workspace:
    """The state of one workspace and the Web API methods over it.

    `strict_triggers`: views.open/push need a trigger_id issued by `issue_trigger` (for the user who
    clicked) and used within 3 seconds, once, as on Slack. Off, any trigger_id is accepted (unit tests).
    """

    def __init__(self, *, token: str, app_token: str | None = None, strict_triggers: bool = False,
                 permalink_base: str = "https://sandbox.slack.test/archives") -> None:
        self.token, self.app_token = token, app_token
        self.strict_triggers = strict_triggers
        self.permalink_base = permalink_base.rstrip("/")
        self.socket_url: str | None = None
        """What ``apps.connections.open`` answers; None: Socket Mode is not available."""
        self.scopes = ["chat:write", "commands", "channels:history", "groups:history", "usergroups:write"]
        """What the bot token was granted (Slack sends them in the X-OAuth-Scopes header)."""
        self.not_in_channels: set[str] = set()
        """Channels the bot was never invited to: posting or reading there answers not_in_channel."""
        self.lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._pending: list[Change] = []
        self._seq = 0
        self._handlers: dict[str, Callable[[Json], Json]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "apps.connections.open": self._connections_open,
            "usergroups.users.update": self._usergroup_users,
        }
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self._messages: dict[tuple[str, str], Json] = {}
            self._ephemerals: list[Json] = []
            self._views: dict[str, Json] = {}
            self._triggers: dict[str, tuple[str, float]] = {}
            self._usergroups: dict[str, list[str]] = {}

    def usergroup(self, usergroup: str) -> list[str] | None:
        """The members set for a user group (None: never set)."""
        with self.lock:
            members = self._usergroups.get(usergroup)
            return None if members is None else list(members)

    def _usergroup_users(self, p: Json) -> Json:
        self._require(p, "usergroup", "users")
        users = [u.strip() for u in str(p["users"]).split(",") if u.strip()]
        if not users:
            raise SlackError("invalid_users")
        self._usergroups[str(p["usergroup"])] = users
        return {"usergroup": {"id": str(p["usergroup"]), "users": users, "user_count": len(users)}}

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every change; returns a function that stops it."""
        with self.lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self.lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    # ---- the API ------------------------------------------------------------------------------
    def check_auth(self, method: str, token: str | None) -> Json | None:
        """The error body Slack would answer for this token, or None when it may call `method`."""
        if not token:
            return {"ok": False, "error": "not_authed"}
        if token not in (self.token, self.app_token):
            return {"ok": False, "error": "invalid_auth"}
        if (token == self.app_token) != (method in APP_TOKEN_METHODS):  # xapp- only for these, and vice versa
            return {"ok": False, "error": "not_allowed_token_type"}
        return None

    def handle(self, method: str, params: Json) -> Json:
        """Run an authorised call; the answer body (ok true, or ok false with Slack's error)."""
        with self.lock:
            handler = self._handlers.get(method)
            if handler is None:
                body: Json = {"ok": False, "error": "unknown_method"}
            else:
                try:
                    body = {"ok": True, **handler(params)}
                except SlackError as exc:
                    body = {"ok": False, "error": exc.error, **exc.extra}
                    if exc.extra.get("errors") or exc.error in ("msg_too_long", "no_text", "invalid_metadata_format"):
                        self._emit("refused", {"method": method, "error": exc.error,
                                               "details": list(exc.extra.get("errors") or []), "at": time.time()})
            body = copy.deepcopy(body)
        self.flush()
        return body

    def call(self, method: str, params: Json, token: str | None) -> Json:
        """check_auth, then handle."""
        return self.check_auth(method, token) or self.handle(method, params)

    def flush(self) -> None:
        """Deliver pending changes to the listeners (outside the lock)."""
        with self.lock:
            pending, self._pending = self._pending, []
            listeners = list(self._listeners)
        for change in pending:
            for listener in listeners:
                listener(change)

    # ---- what the sandbox page and tests read (deep copies) --------------------------------------
    def messages(self, channel: str | None = None, *, with_replies: bool = False) -> list[Json]:
        """Messages oldest first in their current state: top level only unless `with_replies`."""
        with self.lock:
            return copy.deepcopy([m for m in self._sorted()
                                  if (channel is None or m["channel"] == channel) and (with_replies or is_top(m))])

    def replies(self, channel: str, thread_ts: str) -> list[Json]:
        """Thread replies (oldest first), without the parent."""
        with self.lock:
            return copy.deepcopy(self._thread_of(channel, thread_ts))

    def message(self, channel: str, ts: str) -> Json | None:
        with self.lock:
            return copy.deepcopy(self._messages.get((channel, ts)))

    def reply_count(self, channel: str, ts: str) -> int:
        with self.lock:
            return len(self._thread_of(channel, ts))

    def ephemerals(self, user: str | None = None) -> list[Json]:
        with self.lock:
            return copy.deepcopy([e for e in self._ephemerals if user is None or e["user"] == user])

    def ephemeral(self, message_ts: str) -> Json | None:
        with self.lock:
            return copy.deepcopy(next((e for e in self._ephemerals if e["message_ts"] == message_ts), None))

    def views(self, user: str | None = None) -> dict[str, Json]:
        """Open views by id (latest version), in stack order."""
        with self.lock:
            found = sorted(self._views.values(), key=lambda v: v["_opened"])
            return {v["id"]: _public(v) for v in found if user is None or v.get("_user") == user}

    def view(self, view_id: str) -> Json | None:
        with self.lock:
            found = self._views.get(view_id)
            return None if found is None else _public(found)

    def view_user(self, view_id: str) -> str | None:
        with self.lock:
            found = self._views.get(view_id)
            return None if found is None else found.get("_user")

    def close_view(self, view_id: str) -> None:
        """The user closed a modal (or the app answered a submission with nothing to show)."""
        with self.lock:
            view = self._views.pop(view_id, None)
            if view is not None:
                self._emit("view_closed", {"id": view_id, "user": view.get("_user")})
        self.flush()

    def replace_view(self, view_id: str, view: Json) -> Json:
        """`response_action: update` from a submission: validated like views.update."""
        with self.lock:
            old = self._views.get(view_id)
            if old is None:
                raise SlackError("not_found")
            stored = self._store_view(self._check_view({"view": view}), view_id, old)
        self.flush()
        return stored

    def issue_trigger(self, user: str) -> str:
        """A trigger_id for an interaction by `user` (what Slack puts in block_actions payloads)."""
        with self.lock:
            self._seq += 1
            trigger = f"{self._seq}.{int(time.time())}.sandbox{self._seq:06d}"
            self._triggers[trigger] = (user, time.monotonic())
            return trigger

    # ---- helpers ------------------------------------------------------------------------------
    def _emit(self, kind: str, data: Json) -> None:
        self._pending.append(Change(kind, copy.deepcopy(data)))

    def next_ts(self) -> str:
        """Like Slack: the posting time in microseconds, unique and increasing within the workspace."""
        with self.lock:
            self._seq = max(self._seq + 100, int(time.time() * 1_000_000))
            return f"{self._seq // 1_000_000}.{self._seq % 1_000_000:06d}"

    def _sorted(self) -> list[Json]:
        return sorted(self._messages.values(), key=lambda m: ts_key(m["ts"]))

    def _thread_of(self, channel: str, thread_ts: str) -> list[Json]:
        return [m for m in self._sorted()
                if m["channel"] == channel and m["thread_ts"] == thread_ts and m["ts"] != thread_ts]

    @staticmethod
    def _require(params: Json, *names: str) -> None:
        for name in names:
            if not params.get(name):
                raise SlackError(
                    "channel_not_found" if name == "channel" else "invalid_arguments",
                    response_metadata={"messages": [f"[ERROR] missing required field: {name}"]},
                )

    @staticmethod
    def _validate_message(params: Json) -> None:
        text = params.get("text")
        if isinstance(text, str) and len(text) > 40_000:
            raise SlackError("msg_too_long")
        if not text and not params.get("blocks") and not params.get("attachments"):
            raise SlackError("no_text")
        if "blocks" in params:
            errors = message_errors(params["blocks"])
            if errors:
                raise SlackError("invalid_blocks", errors=errors)
        meta = params.get("metadata")
        if meta is not None and not (
            isinstance(meta, dict)
            and isinstance(meta.get("event_type"), str)
            and isinstance(meta.get("event_payload", {}), dict)
        ):
            raise SlackError("invalid_metadata_format")

    def render(self, m: Json, with_metadata: bool = True) -> Json:
        """A message as the Web API returns it."""
        with self.lock:
            out: Json = {"type": "message", **BOT_FIELDS, "team": TEAM_ID, "text": m["text"], "ts": m["ts"]}
            for key in ("blocks", "attachments", "thread_ts"):
                if m.get(key):
                    out[key] = m[key]
            if is_top(m):
                thread = self._thread_of(m["channel"], m["ts"])
                if thread:
                    out.update(thread_ts=m["ts"], reply_count=len(thread), latest_reply=thread[-1]["ts"])
                    out.update(reply_users=[BOT_USER], reply_users_count=1)
            if m["updates"]:
                out["edited"] = {"user": BOT_USER, "ts": m["edited_ts"]}
            if with_metadata and m.get("metadata"):
                out["metadata"] = m["metadata"]
            return copy.deepcopy(out)

    def _find(self, channel: str, ts: Any) -> Json:
        msg = self._messages.get((channel, str(ts)))
        if msg is None:
            raise SlackError("message_not_found")
        return msg

    def _changed(self, msg: Json) -> None:
        self._emit("message", {**msg, "reply_count": len(self._thread_of(msg["channel"], msg["ts"]))
                               if is_top(msg) else 0})
        if not is_top(msg):  # the parent's reply count changed
            parent = self._messages.get((msg["channel"], msg["thread_ts"]))
            if parent is not None:
                self._changed(parent)

    # ---- method handlers (called with the lock held; raise SlackError before mutating) ----------
    def _auth_test(self, params: Json) -> Json:
        team = {"url": "https://sandbox.slack.test/", "team": "Acme (sandbox)", "team_id": TEAM_ID}
        return team | {"user": "socialops", "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": False}

    def _connections_open(self, params: Json) -> Json:
        if not self.socket_url:
            raise SlackError("socket_mode_not_enabled")
        return {"url": self.socket_url}

    def _member(self, channel: str) -> None:
        if channel in self.not_in_channels:
            raise SlackError("not_in_channel")

    def _post_message(self, p: Json) -> Json:
        self._require(p, "channel")
        self._member(str(p["channel"]))
        self._validate_message(p)
        ts, channel = self.next_ts(), str(p["channel"])
        thread_ts = str(p["thread_ts"]) if p.get("thread_ts") else None
        content = {k: p.get(k) for k in ("blocks", "attachments", "metadata")}
        msg: Json = dict(channel=channel, ts=ts, text=p.get("text") or "", thread_ts=thread_ts, **content)
        msg.update(user=BOT_USER, updates=0, reply_broadcast=_truthy(p.get("reply_broadcast")))
        self._messages[(channel, ts)] = msg
        self._changed(msg)
        return {"channel": channel, "ts": ts, "message": self.render(msg)}

    def _update(self, p: Json) -> Json:
        self._require(p, "channel", "ts")
        msg = self._find(str(p["channel"]), p["ts"])
        self._validate_message({"text": msg["text"], **p})
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in p:
                msg[key] = p[key]
        msg["updates"] += 1
        msg["edited_ts"] = self.next_ts()
        self._changed(msg)
        return {"channel": msg["channel"], "ts": msg["ts"], "text": msg["text"], "message": self.render(msg)}

    def _delete(self, p: Json) -> Json:
        self._require(p, "channel", "ts")
        msg = self._find(str(p["channel"]), p["ts"])
        del self._messages[(msg["channel"], msg["ts"])]
        self._emit("message_deleted", {"channel": msg["channel"], "ts": msg["ts"]})
        return {"channel": msg["channel"], "ts": msg["ts"]}

    def _post_ephemeral(self, p: Json) -> Json:
        self._require(p, "channel")
        if not p.get("user"):
            raise SlackError("user_not_in_channel")
        self._validate_message(p)
        ts = self.next_ts()
        eph = dict(channel=str(p["channel"]), user=str(p["user"]), text=p.get("text") or "", message_ts=ts)
        eph |= {"blocks": p.get("blocks"), "thread_ts": p.get("thread_ts")}
        self._ephemerals.append(eph)
        self._emit("ephemeral", eph)
        return {"message_ts": ts}

    def add_ephemeral(self, *, channel: str, user: str, text: str, blocks: list[Json] | None,
                      thread_ts: str | None = None) -> Json:
        """An ephemeral that did not come through the API (a slash command's answer)."""
        body = self.handle("chat.postEphemeral", {"channel": channel, "user": user, "text": text,
                                                  "blocks": blocks, "thread_ts": thread_ts})
        return body

    def _permalink(self, p: Json) -> Json:
        self._require(p, "channel", "message_ts")
        msg = self._find(str(p["channel"]), p["message_ts"])
        link = f"{self.permalink_base}/{msg['channel']}/p{msg['ts'].replace('.', '')}"
        if not is_top(msg):
            link += f"?thread_ts={msg['thread_ts']}&cid={msg['channel']}"
        return {"channel": msg["channel"], "permalink": link}

    def _history(self, p: Json) -> Json:
        self._require(p, "channel")
        self._member(str(p["channel"]))
        limit = int(p.get("limit") or 100)
        inclusive = _truthy(p.get("inclusive"))
        oldest, latest = ts_key(str(p.get("oldest") or "0")), ts_key(str(p.get("latest") or "9999999999"))
        found = [
            m
            for m in reversed(self._sorted())
            if m["channel"] == p["channel"]
            and (is_top(m) or m["reply_broadcast"])
            and (oldest <= ts_key(m["ts"]) <= latest if inclusive else oldest < ts_key(m["ts"]) < latest)
        ]
        meta = _truthy(p.get("include_all_metadata"))
        page = [self.render(m, meta) for m in found[:limit]]
        return {"messages": page, "has_more": len(found) > limit, "response_metadata": {"next_cursor": ""}}

    def _replies(self, p: Json) -> Json:
        self._require(p, "channel", "ts")
        try:
            first = self._find(str(p["channel"]), p["ts"])
        except SlackError:
            raise SlackError("thread_not_found") from None
        root = first if is_top(first) else self._messages.get((first["channel"], first["thread_ts"]), first)
        thread = [root, *self._thread_of(root["channel"], root["ts"])]
        limit = int(p.get("limit") or 1000)
        meta = _truthy(p.get("include_all_metadata"))
        page = [self.render(m, meta) for m in thread[:limit]]
        return {"messages": page, "has_more": len(thread) > limit, "response_metadata": {"next_cursor": ""}}

    def _check_view(self, p: Json) -> Json:
        view = p.get("view")
        errors = view_errors(view) if isinstance(view, dict) else view_errors({})
        if errors:
            raise SlackError("invalid_arguments", errors=errors,
                             response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})
        assert isinstance(view, dict)
        return view

    def _store_view(self, view: Json, view_id: str, old: Json | None, user: str | None = None) -> Json:
        old = old or {}
        defaults = dict(state={"values": {}}, private_metadata="", callback_id="",
                        external_id=old.get("external_id", ""))
        self._seq += 1
        ids = dict(id=view_id, hash=f"{time.time():.0f}.{self._seq:08d}", team_id=TEAM_ID, bot_id=BOT_ID,
                   app_id=APP_ID)
        private = {"_user": old.get("_user", user), "_opened": old.get("_opened", self._seq)}
        stored: Json = {**defaults, **view, **ids, "root_view_id": old.get("root_view_id", view_id), **private}
        self._views[view_id] = stored
        self._emit("view", {**_public(stored), "user": private["_user"]})
        return {"view": _public(stored)}

    def _trigger_user(self, p: Json) -> str | None:
        trigger = p.get("trigger_id")
        if not trigger:
            raise SlackError("invalid_trigger_id")
        issued = self._triggers.pop(str(trigger), None)
        if issued is None:
            if self.strict_triggers:
                raise SlackError("invalid_trigger_id")
            return None
        user, at = issued
        if time.monotonic() - at > TRIGGER_TTL_S:
            raise SlackError("expired_trigger_id")
        return user

    def _open(self, p: Json, *, push: bool) -> Json:
        view = self._check_view(p)
        user = self._trigger_user(p)
        ext = view.get("external_id")
        if ext and any(v.get("external_id") == ext for v in self._views.values()):
            raise SlackError("duplicate_external_id")
        if push and user is not None and len([v for v in self._views.values() if v.get("_user") == user]) >= 3:
            raise SlackError("push_limit_reached")
        if not push and user is not None:  # a new modal replaces whatever that user had open
            for view_id in [k for k, v in self._views.items() if v.get("_user") == user]:
                self._emit("view_closed", {"id": view_id, "user": user})
                del self._views[view_id]
        self._seq += 1
        return self._store_view(view, f"V{self._seq:010d}", None, user)

    def _views_open(self, p: Json) -> Json:
        return self._open(p, push=False)

    def _views_push(self, p: Json) -> Json:
        return self._open(p, push=True)

    def _views_update(self, p: Json) -> Json:
        if p.get("view_id"):
            old = self._views.get(str(p["view_id"]))
        elif p.get("external_id"):
            old = next((v for v in self._views.values() if v.get("external_id") == p["external_id"]), None)
        else:
            raise SlackError("invalid_arguments")
        if old is None:
            raise SlackError("not_found")
        if p.get("hash") and p["hash"] != old["hash"]:
            raise SlackError("hash_conflict")
        view = self._check_view(p)
        return self._store_view(view, old["id"], old)
