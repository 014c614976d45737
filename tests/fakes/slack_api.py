"""A local fake of the Slack Web API for tests (stdlib only).

The real ``slack_sdk`` clients talk to it through ``base_url=fake.url``. It listens on
127.0.0.1 in a background thread, so both in-process async tests and a bot running as a
subprocess can use it. Block Kit limits are enforced the way Slack does, failures
(429 / 5xx / error codes) and slow responses can be injected, and everything the
client did can be inspected. ``apps.connections.open`` (Socket Mode) takes the app-level
token and answers with ``fake.socket_url`` (see ``tests/fakes/slack_socket.py``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

Json = dict[str, Any]
T = TypeVar("T")

BOT_USER = "UBOT"
BOT_ID = "BFAKE"
APP_ID = "AFAKE"
TEAM_ID = "T0FAKE"
BOT_FIELDS = {"user": BOT_USER, "bot_id": BOT_ID, "app_id": APP_ID}
PERMALINK_BASE = "https://fake.slack.test/archives"
APP_TOKEN_METHODS = {"apps.connections.open"}
JSON_FIELDS = ("blocks", "attachments", "metadata", "view")
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


@dataclass
class _Failure:
    status: int
    retry_after: int
    times: int
    error: str | None


def _ts_key(ts: str) -> tuple[int, int]:
    sec, _, frac = ts.partition(".")
    return int(sec or 0), int(frac.ljust(6, "0")[:6] or 0)


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeSlack


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        if not url.path.startswith("/api/"):
            self.send_error(404)
            return
        params: Json = dict(parse_qsl(url.query, keep_blank_values=True))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        bad_body = False
        try:
            if raw and "json" in self.headers.get("Content-Type", ""):
                params.update(json.loads(raw))
            elif raw:
                params.update(parse_qsl(raw.decode(), keep_blank_values=True))
            for key in JSON_FIELDS:
                if isinstance(params.get(key), str) and params[key][:1] in ("[", "{"):
                    params[key] = json.loads(params[key])
        except (ValueError, TypeError):  # malformed JSON, or a JSON body that is not an object
            bad_body = True
        method = url.path[len("/api/") :]
        status, headers, body, delay = self.server.fake._dispatch(
            method, params, self.headers.get("Authorization"), bad_body
        )
        if delay > 0:
            time.sleep(delay)
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. killed inside a crash window)


class FakeSlack:
    """Fake Slack Web API server; use as a context manager or call ``start()``/``stop()``."""

    def __init__(self, token: str = "xoxb-test", app_token: str = "xapp-test") -> None:
        self.token, self.app_token = token, app_token
        self.socket_url: str | None = None
        """What ``apps.connections.open`` answers, e.g. ``FakeSocketMode.url``; None: the call fails."""
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
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
            "views.push": self._views_open,
            "views.update": self._views_update,
            "apps.connections.open": self._connections_open,
        }
        self.reset()

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeSlack:
        if self._server is None:
            self._server = _Server(("127.0.0.1", 0), _Handler)
            self._server.fake = self
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL for ``AsyncWebClient(base_url=...)``, e.g. ``http://127.0.0.1:PORT/api/``."""
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    # ---- test controls ---------------------------------------------------------------------
    def reset(self) -> None:
        """Forget messages, calls, views, ephemerals, injected failures and delays."""
        with self._lock:
            self._messages: dict[tuple[str, str], Json] = {}
            self._ephemerals: list[Json] = []
            self._views: dict[str, Json] = {}
            self._calls: list[Json] = []
            self._failures: dict[str, list[_Failure]] = {}
            self._delays: dict[str, float] = {}

    def fail_next(
        self, method: str, status: int = 429, retry_after: int = 2, times: int = 1, error: str | None = None
    ) -> None:
        """Next ``times`` calls of ``method`` fail: HTTP 429 + Retry-After, another HTTP status,
        or (when ``error`` is given) HTTP 200 ``{"ok": false, "error": error}``. No state changes."""
        with self._lock:
            self._failures.setdefault(method, []).append(_Failure(status, retry_after, times, error))

    def delay(self, method: str, seconds: float) -> None:
        """Answer ``method`` only after ``seconds`` (the effect is stored first). 0 clears it."""
        with self._lock:
            self._delays[method] = seconds

    # ---- introspection (deep copies, thread-safe) ------------------------------------------
    def calls(self, method: str | None = None) -> list[Json]:
        """Each call: ``{method, params, status, ok, error, time}``; params have JSON fields decoded."""
        with self._lock:
            return copy.deepcopy([c for c in self._calls if method is None or c["method"] == method])

    def messages(self, channel: str | None = None) -> list[Json]:
        """Top-level messages (oldest first) in their current state."""
        with self._lock:
            return copy.deepcopy(
                [m for m in self._sorted() if (channel is None or m["channel"] == channel) and _top(m)]
            )

    def replies(self, channel: str, thread_ts: str) -> list[Json]:
        """Thread replies (oldest first), without the parent."""
        with self._lock:
            return copy.deepcopy(self._thread_of(channel, thread_ts))

    def message(self, channel: str, ts: str) -> Json | None:
        with self._lock:
            return copy.deepcopy(self._messages.get((channel, ts)))

    def ephemerals(self, user: str | None = None) -> list[Json]:
        with self._lock:
            return copy.deepcopy([e for e in self._ephemerals if user is None or e["user"] == user])

    def views(self) -> dict[str, Json]:
        """Open views by id, latest version."""
        with self._lock:
            return copy.deepcopy(self._views)

    def close_view(self, view_id: str) -> None:
        """Simulate the user closing a modal."""
        with self._lock:
            self._views.pop(view_id, None)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
        """Poll ``predicate`` (raising LookupError counts as falsy) until truthy, else AssertionError
        naming the last value and the recent Slack calls. Blocks: from async code use wait_for_async."""
        deadline = time.monotonic() + timeout
        while not (value := self._probe(predicate, deadline, timeout)):
            time.sleep(interval)
        return value

    async def wait_for_async(
        self,
        predicate: Callable[[], T],
        timeout: float = 10.0,
        interval: float = 0.02,
    ) -> T:
        """Like ``wait_for`` but yields to the event loop (use when the bot runs in-process)."""
        deadline = time.monotonic() + timeout
        while not (value := self._probe(predicate, deadline, timeout)):  # noqa: ASYNC110
            await asyncio.sleep(interval)
        return value

    def _probe(self, predicate: Callable[[], T], deadline: float, timeout: float) -> T | None:
        try:
            value: T | None = predicate()
            last = f"returned {value!r}"
        except LookupError as exc:
            value, last = None, f"raised {exc!r}"
        if not value and time.monotonic() >= deadline:
            calls = [f"  {c['method']} -> {c['status']} {c['error'] or 'ok'}" for c in self.calls()[-15:]]
            recent = "\n".join(calls) or "  none"
            raise AssertionError(
                f"not met within {timeout}s (predicate {last}); recent Slack calls:\n{recent}"
            )
        return value

    # ---- request dispatch (runs on server threads) -----------------------------------------
    def _dispatch(
        self, method: str, params: Json, authorization: str | None, bad_body: bool
    ) -> tuple[int, dict[str, str], Json, float]:
        headers: dict[str, str] = {}
        status = 200
        with self._lock:
            token = (authorization or "").removeprefix("Bearer ").strip() or params.get("token")
            failures = self._failures.get(method)
            if bad_body:
                body: Json = {"ok": False, "error": "invalid_json"}
            elif not token:
                body = {"ok": False, "error": "not_authed"}
            elif token not in (self.token, self.app_token):
                body = {"ok": False, "error": "invalid_auth"}
            elif (token == self.app_token) != (method in APP_TOKEN_METHODS):  # xapp- only for these, and vice versa
                body = {"ok": False, "error": "not_allowed_token_type"}
            elif failures:
                fail = failures[0]
                fail.times -= 1
                if fail.times <= 0:
                    failures.pop(0)
                if fail.error is not None:
                    body = {"ok": False, "error": fail.error}
                elif fail.status == 429:
                    status, headers = 429, {"Retry-After": str(fail.retry_after)}
                    body = {"ok": False, "error": "ratelimited"}
                else:
                    status, body = fail.status, {"ok": False, "error": "internal_error"}
            elif method not in self._handlers:
                body = {"ok": False, "error": "unknown_method"}
            else:
                try:
                    body = {"ok": True, **self._handlers[method](params)}
                except SlackError as exc:
                    body = {"ok": False, "error": exc.error, **exc.extra}
            params.pop("token", None)
            call = dict(method=method, params=copy.deepcopy(params), status=status, time=time.time())
            self._calls.append(call | {"ok": body["ok"], "error": body.get("error")})
            return status, headers, copy.deepcopy(body), self._delays.get(method, 0.0)

    # ---- helpers ---------------------------------------------------------------------------
    def _next_ts(self) -> str:
        """Like Slack: the posting time in microseconds, unique and increasing within the workspace."""
        self._seq = max(self._seq + 100, int(time.time() * 1_000_000))
        return f"{self._seq // 1_000_000}.{self._seq % 1_000_000:06d}"

    def _sorted(self) -> list[Json]:
        return sorted(self._messages.values(), key=lambda m: _ts_key(m["ts"]))

    def _thread_of(self, channel: str, thread_ts: str) -> list[Json]:
        return [
            m
            for m in self._sorted()
            if m["channel"] == channel and m["thread_ts"] == thread_ts and m["ts"] != thread_ts
        ]

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
            v = _Validator()
            v.blocks(params["blocks"])
            if v.errors:
                raise SlackError("invalid_blocks", errors=v.errors)
        meta = params.get("metadata")
        if meta is not None and not (
            isinstance(meta, dict)
            and isinstance(meta.get("event_type"), str)
            and isinstance(meta.get("event_payload", {}), dict)
        ):
            raise SlackError("invalid_metadata_format")

    def _render(self, m: Json, with_metadata: bool = True) -> Json:
        out: Json = {"type": "message", **BOT_FIELDS, "team": TEAM_ID, "text": m["text"], "ts": m["ts"]}
        for key in ("blocks", "attachments", "thread_ts"):
            if m.get(key):
                out[key] = m[key]
        if _top(m):
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

    # ---- method handlers (called with the lock held; raise SlackError before mutating) -----
    def _auth_test(self, params: Json) -> Json:
        team = {"url": "https://fake.slack.test/", "team": "Fake Team", "team_id": TEAM_ID}
        return team | {
            "user": "socialops",
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _connections_open(self, params: Json) -> Json:
        if not self.socket_url:
            raise SlackError("socket_mode_not_enabled")  # the fake's own error: no FakeSocketMode attached
        return {"url": self.socket_url}

    def _post_message(self, p: Json) -> Json:
        self._require(p, "channel")
        self._validate_message(p)
        ts, channel = self._next_ts(), str(p["channel"])
        thread_ts = str(p["thread_ts"]) if p.get("thread_ts") else None
        content = {k: p.get(k) for k in ("blocks", "attachments", "metadata")}
        msg: Json = dict(channel=channel, ts=ts, text=p.get("text") or "", thread_ts=thread_ts, **content)
        msg.update(user=BOT_USER, updates=0, reply_broadcast=_truthy(p.get("reply_broadcast")))
        self._messages[(channel, ts)] = msg
        return {"channel": channel, "ts": ts, "message": self._render(msg)}

    def _update(self, p: Json) -> Json:
        self._require(p, "channel", "ts")
        msg = self._find(str(p["channel"]), p["ts"])
        self._validate_message({"text": msg["text"], **p})
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in p:
                msg[key] = p[key]
        msg["updates"] += 1
        msg["edited_ts"] = self._next_ts()
        return {"channel": msg["channel"], "ts": msg["ts"], "text": msg["text"], "message": self._render(msg)}

    def _delete(self, p: Json) -> Json:
        self._require(p, "channel", "ts")
        msg = self._find(str(p["channel"]), p["ts"])
        del self._messages[(msg["channel"], msg["ts"])]
        return {"channel": msg["channel"], "ts": msg["ts"]}

    def _post_ephemeral(self, p: Json) -> Json:
        self._require(p, "channel")
        if not p.get("user"):
            raise SlackError("user_not_in_channel")
        self._validate_message(p)
        ts = self._next_ts()
        eph = dict(channel=str(p["channel"]), user=str(p["user"]), text=p.get("text") or "", message_ts=ts)
        self._ephemerals.append(eph | {"blocks": p.get("blocks"), "thread_ts": p.get("thread_ts")})
        return {"message_ts": ts}

    def _permalink(self, p: Json) -> Json:
        self._require(p, "channel", "message_ts")
        msg = self._find(str(p["channel"]), p["message_ts"])
        link = f"{PERMALINK_BASE}/{msg['channel']}/p{msg['ts'].replace('.', '')}"
        if not _top(msg):
            link += f"?thread_ts={msg['thread_ts']}&cid={msg['channel']}"
        return {"channel": msg["channel"], "permalink": link}

    def _history(self, p: Json) -> Json:
        self._require(p, "channel")
        limit = int(p.get("limit") or 100)
        inclusive = _truthy(p.get("inclusive"))
        oldest, latest = _ts_key(str(p.get("oldest") or "0")), _ts_key(str(p.get("latest") or "9999999999"))
        found = [
            m
            for m in reversed(self._sorted())
            if m["channel"] == p["channel"]
            and (_top(m) or m["reply_broadcast"])
            and (oldest <= _ts_key(m["ts"]) <= latest if inclusive else oldest < _ts_key(m["ts"]) < latest)
        ]
        meta = _truthy(p.get("include_all_metadata"))
        page = [self._render(m, meta) for m in found[:limit]]
        return {"messages": page, "has_more": len(found) > limit, "response_metadata": {"next_cursor": ""}}

    def _replies(self, p: Json) -> Json:
        self._require(p, "channel", "ts")
        try:
            first = self._find(str(p["channel"]), p["ts"])
        except SlackError:
            raise SlackError("thread_not_found") from None
        root = first if _top(first) else self._messages.get((first["channel"], first["thread_ts"]), first)
        thread = [root, *self._thread_of(root["channel"], root["ts"])]
        limit = int(p.get("limit") or 1000)
        meta = _truthy(p.get("include_all_metadata"))
        page = [self._render(m, meta) for m in thread[:limit]]
        return {"messages": page, "has_more": len(thread) > limit, "response_metadata": {"next_cursor": ""}}

    def _check_view(self, p: Json) -> Json:
        view = p.get("view")
        v = _Validator()
        v.view(view)
        if v.errors:
            raise SlackError(
                "invalid_arguments",
                errors=v.errors,
                response_metadata={"messages": [f"[ERROR] {e}" for e in v.errors]},
            )
        assert isinstance(view, dict)
        return view

    def _store_view(self, view: Json, view_id: str, old: Json | None) -> Json:
        old = old or {}
        defaults = dict(
            state={"values": {}}, private_metadata="", callback_id="", external_id=old.get("external_id", "")
        )
        ids = dict(
            id=view_id,
            hash=f"{time.time():.0f}.{self._seq:08d}",
            team_id=TEAM_ID,
            bot_id=BOT_ID,
            app_id=APP_ID,
        )
        stored: Json = {**defaults, **view, **ids, "root_view_id": old.get("root_view_id", view_id)}
        self._views[view_id] = stored
        return {"view": copy.deepcopy(stored)}

    def _views_open(self, p: Json) -> Json:  # views.open and views.push
        if not p.get("trigger_id"):
            raise SlackError("invalid_trigger_id")
        view = self._check_view(p)
        ext = view.get("external_id")
        if ext and any(v.get("external_id") == ext for v in self._views.values()):
            raise SlackError("duplicate_external_id")
        self._seq += 1
        return self._store_view(view, f"V{self._seq:010d}", None)

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
        self._seq += 1
        return self._store_view(view, old["id"], old)


def _top(m: Json) -> bool:
    return not m.get("thread_ts") or m["thread_ts"] == m["ts"]


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
