"""In-process fake of Meta: the Graph API a Page token reaches, and signed webhook deliveries.

Wire formats follow tests/fixtures/meta/*.json (Meta's documented examples): webhook envelopes
`{"object": "page"|"instagram", "entry": [...]}` with `messaging[]` or `changes[]`, signed
`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>` and serialised like Meta does
(non-ASCII escaped as `\\u00e9`); the Send API, comment replies (`/{id}/comments`, `/{id}/replies`),
`/{ig-user-id}/mentions`, `mentioned_comment` / `mentioned_media` look-ups, profiles and `/me`.
Graph errors are `{"error": {message, type, code, error_subcode, fbtrace_id}}`, mostly with HTTP 400.

The fake enforces what Meta enforces for a Page: the token (revocable → 401, code 190), `appsecret_proof`,
the 24-hour window (RESPONSE) and 7 days for HUMAN_AGENT, one private reply per comment within 7 days,
Instagram replies on top-level comments only, text limits, and throttling with
`X-Business-Use-Case-Usage` (`estimated_time_to_regain_access` in minutes).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.mastodon import FakeHTTPServer, Request, Response

Json = dict[str, Any]
GRAPH_VERSION = "v21.0"
WEBHOOK_PATH = "/webhooks/meta"
DAY = 86400.0
MESSENGER_CHARS = 2000
INSTAGRAM_DM_BYTES = 1000
FACEBOOK_COMMENT_CHARS = 8000
INSTAGRAM_COMMENT_CHARS = 2200
OUTSIDE_WINDOW = ("(#10) This message is sent outside of allowed window. Learn more about the new policy here: "
                  "https://developers.facebook.com/docs/messenger-platform/policy-overview")


def sign(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def graph_error(message: str, code: int, *, subcode: int | None = None, type_: str = "OAuthException",
                **extra: Any) -> Json:
    error: Json = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error.update(extra)
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(15)
    return {"error": error}


@dataclass
class _Throttle:
    prefix: str
    times: int
    code: int
    status: int
    minutes: int


@dataclass
class _Failure:
    prefix: str
    times: int
    status: int


class FakeMeta(FakeHTTPServer):
    def __init__(self, *, app_secret: str = "meta-app-secret", verify_token: str = "meta-verify-token",
                 page_token: str = "meta-page-token", page_id: str = "104857600000001", page_name: str = "Acme",
                 instagram_id: str = "17841400000000001", instagram_username: str = "acme",
                 require_proof: bool = True) -> None:
        super().__init__()
        self.graph_url = f"{self.url}/{GRAPH_VERSION}"
        self.app_secret, self.verify_token, self.page_token = app_secret, verify_token, page_token
        self.page = {"id": page_id, "name": page_name}
        self.instagram = {"id": instagram_id, "username": instagram_username}
        self.require_proof = require_proof
        self._ids = itertools.count(1)
        self._users: dict[str, Json] = {}  # id → profile + platform + last_inbound (unix seconds)
        self._by_handle: dict[tuple[str, str], str] = {}
        self._comments: dict[str, Json] = {}
        self._mentioned_comments: dict[str, Json] = {}
        self._mentioned_media: dict[str, Json] = {}
        self._private_replied: set[str] = set()
        self._sent: list[Json] = []
        self._requests: list[Json] = []
        self._throttles: list[_Throttle] = []
        self._failures: list[_Failure] = []
        self._revoked: int | None = None
        self._delays: list[tuple[str, float]] = []
        self.app_usage = 7  # percent, reported in X-App-Usage

    # ------------------------------------------------------------------ test-side API: webhook deliveries
    def _id(self, width: int = 16, prefix: str = "") -> str:
        return prefix + str(next(self._ids)).rjust(width, "0")

    def _user(self, platform: str, *, name: str, handle: str) -> Json:
        key = (platform, handle or name)
        if key not in self._by_handle:
            user_id = self._id(16, "7" if platform == "instagram" else "2")
            first, _, last = name.partition(" ")
            self._users[user_id] = {"id": user_id, "platform": platform, "name": name, "first_name": first,
                                    "last_name": last, "username": handle.lstrip("@"), "last_inbound": 0.0}
            self._by_handle[key] = user_id
        return self._users[self._by_handle[key]]

    def messenger_entry(self, text: str, *, name: str = "Jane Doe", handle: str = "@jane", at: float | None = None,
                        platform: str = "facebook", attachments: list[Json] | None = None) -> Json:
        """One message from a customer to the Page (Messenger) or the Instagram account (`platform`)."""
        with self._lock:
            user = self._user(platform, name=name, handle=handle)
            when = time.time() if at is None else at
            user["last_inbound"] = max(user["last_inbound"], when)
            own = self.page["id"] if platform == "facebook" else self.instagram["id"]
            message: Json = {"mid": f"m_{secrets.token_urlsafe(24)}"}
            if text:
                message["text"] = text
            if attachments:
                message["attachments"] = attachments
            event = {"sender": {"id": user["id"]}, "recipient": {"id": own}, "timestamp": int(when * 1000),
                     "message": message}
            return {"id": own, "time": int(when * 1000), "messaging": [event]}

    def echo_entry(self, text: str, *, to: str) -> Json:
        """Meta's copy of a message the Page sent (`message_echoes`)."""
        now = int(time.time() * 1000)
        event = {"sender": {"id": self.page["id"]}, "recipient": {"id": to}, "timestamp": now,
                 "message": {"is_echo": True, "app_id": 1517776481860111, "mid": f"m_{secrets.token_urlsafe(24)}",
                             "text": text}}
        return {"id": self.page["id"], "time": now, "messaging": [event]}

    def comment_entry(self, text: str, *, name: str = "Jane Doe", post_id: str | None = None,
                      parent_id: str | None = None, verb: str = "add", from_page: bool = False,
                      comment_id: str | None = None, at: float | None = None) -> Json:
        """A Page `feed` change: a comment on the Page's post (or a reply to a comment, or an edit)."""
        with self._lock:
            when = time.time() if at is None else at
            post_id = post_id or f"{self.page['id']}_{self._id(15, '1')}"
            author = self.page if from_page else {"id": self._user("facebook", name=name, handle=name)["id"],
                                                  "name": name}
            comment_id = comment_id or f"{post_id.partition('_')[2]}_{self._id(15, '3')}"
            self._comments.setdefault(comment_id, {
                "id": comment_id, "platform": "facebook", "post_id": post_id, "parent_id": parent_id,
                "from": author, "created": when})
            value = {"from": {"id": author["id"], "name": author["name"]}, "item": "comment",
                     "comment_id": comment_id, "post_id": post_id, "verb": verb,
                     "parent_id": parent_id or post_id, "created_time": int(when), "message": text}
            return {"id": self.page["id"], "time": int(time.time() * 1000),
                    "changes": [{"field": "feed", "value": value}]}

    def ig_comment_entry(self, text: str, *, username: str = "jane", media_id: str | None = None,
                         parent_id: str | None = None, from_account: bool = False, at: float | None = None) -> Json:
        """An Instagram `comments` change: a comment on the account's media."""
        with self._lock:
            when = time.time() if at is None else at
            media_id = media_id or self._id(17, "18")
            author = ({"id": self.instagram["id"], "username": self.instagram["username"]} if from_account else
                      {"id": self._user("instagram", name=username, handle=username)["id"], "username": username})
            comment_id = self._id(17, "17")
            self._comments[comment_id] = {"id": comment_id, "platform": "instagram", "media_id": media_id,
                                          "parent_id": parent_id, "from": author, "created": when}
            value: Json = {"from": author, "media": {"id": media_id, "media_product_type": "FEED"},
                           "id": comment_id, "text": text}
            if parent_id:
                value["parent_id"] = parent_id
            return {"id": self.instagram["id"], "time": int(when), "changes": [{"field": "comments", "value": value}]}

    def ig_mention_entry(self, text: str, *, username: str = "jane", in_caption: bool = False,
                         media_id: str | None = None, readable: bool = True) -> Json:
        """An Instagram `mentions` change (ids only); the text is served by the mentioned_* look-ups unless
        `readable` is False (Meta then answers the look-up with an error)."""
        with self._lock:
            now = time.time()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(now))
            media_id = media_id or self._id(17, "18")
            value: Json = {"media_id": media_id}
            if in_caption:
                if readable:
                    self._mentioned_media[media_id] = {
                        "id": media_id, "caption": text, "username": username, "timestamp": stamp,
                        "permalink": f"https://www.instagram.com/p/{secrets.token_urlsafe(8)}/"}
            else:
                comment_id = value["comment_id"] = self._id(17, "17")
                if readable:
                    self._mentioned_comments[comment_id] = {"id": comment_id, "text": text, "username": username,
                                                            "timestamp": stamp, "media_id": media_id}
            return {"id": self.instagram["id"], "time": int(now), "changes": [{"field": "mentions", "value": value}]}

    def deliver(self, object_: str, *entries: Json) -> tuple[str, bytes, dict[str, str]]:
        """A signed POST as Meta sends it: `(path, raw body, headers)`."""
        body = json.dumps({"object": object_, "entry": list(entries)}, separators=(",", ":")).encode()
        return WEBHOOK_PATH, body, {"Content-Type": "application/json", "X-Hub-Signature-256": sign(self.app_secret,
                                                                                                   body)}

    def customer_says(self, text: str, *, name: str = "Jane Doe", handle: str = "@jane",
                      ) -> tuple[str, bytes, dict[str, str]]:
        """A new Messenger message from the customer, as a signed webhook delivery for the bot."""
        return self.deliver("page", self.messenger_entry(text, name=name, handle=handle))

    def handshake_query(self, challenge: str = "1158201444", token: str | None = None) -> dict[str, str]:
        return {"hub.mode": "subscribe", "hub.challenge": challenge,
                "hub.verify_token": self.verify_token if token is None else token}

    # ------------------------------------------------------------------ test-side API: control and inspection
    def user_id(self, handle: str, platform: str = "facebook") -> str:
        with self._lock:
            return self._by_handle[(platform, handle)]

    def last_wrote(self, user_id: str, at: float) -> None:
        """Pretend the customer's last message was at `at` (unix seconds): for the messaging windows."""
        with self._lock:
            self._users[user_id]["last_inbound"] = at

    def revoke(self, status: int = 401) -> None:
        """The Page token stops working (user changed password, app removed): code 190 with `status`."""
        with self._lock:
            self._revoked = status

    def throttle(self, path_prefix: str = "", *, times: int = 1, code: int = 613, status: int = 400,
                 minutes: int = 3) -> None:
        """The next `times` calls under `path_prefix` are throttled, with X-Business-Use-Case-Usage saying
        access returns in `minutes`."""
        with self._lock:
            self._throttles.append(_Throttle(path_prefix, times, code, status, minutes))

    def fail_next(self, path_prefix: str = "", *, status: int = 500, times: int = 1) -> None:
        with self._lock:
            self._failures.append(_Failure(path_prefix, times, status))

    def delay_next(self, path_prefix: str, seconds: float) -> None:
        """The next call under `path_prefix` answers after `seconds` (a slow Graph)."""
        with self._lock:
            self._delays.append((path_prefix, seconds))

    def sent(self) -> list[str]:
        """Texts the Page / Instagram account sent (messages, private replies, comment replies), in order."""
        with self._lock:
            return [s["text"] for s in self._sent]

    def sent_records(self) -> list[Json]:
        """What was sent: {kind, to, text, id, messaging_type, tag}."""
        with self._lock:
            return json.loads(json.dumps(self._sent))  # type: ignore[no-any-return]

    def requests(self) -> list[Json]:
        """Every Graph call: {method, path (without version), query, body, authorization, status}."""
        with self._lock:
            return json.loads(json.dumps(self._requests))  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ HTTP
    def handle(self, req: Request) -> Response:
        path = re.sub(r"^/v\d+\.\d+", "", req.path)
        query = {k: v[-1] for k, v in req.query.items()}
        body = self._body(req)
        resp = self._authenticated(req, path, query, body)
        for n, (prefix, seconds) in enumerate(self._delays):
            if path.startswith(prefix):
                resp.delay = seconds
                del self._delays[n]
                break
        self._requests.append({"method": req.method, "path": path, "query": query, "body": body,
                               "authorization": req.headers.get("authorization"), "status": resp.status})
        return resp

    @staticmethod
    def _body(req: Request) -> Json:
        if not req.body:
            return {}
        try:
            if "json" in req.headers.get("content-type", ""):
                parsed = json.loads(req.body)
                return parsed if isinstance(parsed, dict) else {"_raw": parsed}
            form: Json = {k: v[-1] for k, v in parse_qs(req.body.decode(), keep_blank_values=True).items()}
            for key in ("recipient", "message"):  # the Send API's form fields are JSON strings
                if isinstance(form.get(key), str):
                    form[key] = json.loads(form[key])
            return form
        except ValueError:
            return {"_unparseable": req.body.decode(errors="replace")}

    def _usage_headers(self, minutes: int = 0) -> dict[str, str]:
        business = {self.page["id"]: [{"type": "pages", "call_count": 100 if minutes else 12, "total_cputime": 4,
                                       "total_time": 6, "estimated_time_to_regain_access": minutes}]}
        app = {"call_count": self.app_usage, "total_cputime": 1, "total_time": 2}
        return {"X-Business-Use-Case-Usage": json.dumps(business), "X-App-Usage": json.dumps(app)}

    def _authenticated(self, req: Request, path: str, query: Json, body: Json) -> Response:
        auth = req.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else str(query.get("access_token")
                                                                                               or "")
        if not token:
            return Response(400, graph_error("An active access token must be used to query information about the "
                                             "current user.", 2500))
        if token != self.page_token:
            return Response(400, graph_error("Invalid OAuth access token - Cannot parse access token", 190))
        if self._revoked is not None:
            return Response(self._revoked, graph_error(
                "Error validating access token: The session has been invalidated because the user changed their "
                "password or Facebook has changed the session for security reasons.", 190, subcode=460),
                {"WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token" "Error validating access token"'})
        proof = query.get("appsecret_proof")
        expected = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
        if proof is not None and not hmac.compare_digest(str(proof), expected):
            return Response(400, graph_error("Invalid appsecret_proof provided in the API argument", 100))
        if proof is None and self.require_proof:
            return Response(400, graph_error("API calls from the server require an appsecret_proof argument", 100))
        for throttle in self._throttles:
            if throttle.times > 0 and path.startswith(throttle.prefix):
                throttle.times -= 1
                return Response(throttle.status, graph_error(
                    f"(#{throttle.code}) Calls to this api have exceeded the rate limit.", throttle.code),
                    self._usage_headers(throttle.minutes))
        for failure in self._failures:
            if failure.times > 0 and path.startswith(failure.prefix):
                failure.times -= 1
                return Response(failure.status, graph_error(
                    "An unexpected error has occurred. Please retry your request later.", 2, is_transient=True))
        resp = self._dispatch(req.method, path, query, body)
        resp.headers.update(self._usage_headers())
        return resp

    def _dispatch(self, method: str, path: str, query: Json, body: Json) -> Response:
        parts = path.strip("/").split("/")
        params = {**query, **body}
        if method == "GET" and len(parts) == 1:
            return self._get(parts[0], str(query.get("fields") or ""))
        if method == "POST" and len(parts) == 2:
            node, edge = parts
            if edge == "messages" and node in ("me", self.page["id"]):
                return self._send(params)
            if edge == "comments":
                return self._reply("facebook", node, params)
            if edge == "replies":
                return self._reply("instagram", node, params)
            if edge == "mentions" and node == self.instagram["id"]:
                return self._mention_reply(params)
        return Response(400, graph_error(f"Unsupported {method.lower()} request. Please read the Graph API "
                                         "documentation at https://developers.facebook.com/docs/graph-api", 100,
                                         subcode=33, type_="GraphMethodException"))

    @staticmethod
    def _pick(node: Json, fields: str, allowed: tuple[str, ...]) -> Json:
        wanted = [f for f in fields.split(",") if f] or ["id"]
        return {f: node[f] for f in wanted if f in allowed and f in node}

    def _missing(self, node_id: str) -> Response:
        return Response(400, graph_error(
            f"Unsupported get request. Object with ID '{node_id}' does not exist, cannot be loaded due to missing "
            "permissions, or does not support this operation.", 100, subcode=33, type_="GraphMethodException"))

    def _get(self, node: str, fields: str) -> Response:
        if node in ("me", self.page["id"]):
            return Response(200, self._pick(self.page, fields, ("id", "name")))
        if node == self.instagram["id"]:
            found = re.fullmatch(r"mentioned_(comment|media)\.(?:comment|media)_id\((\w+)\)\{([^}]*)\}", fields)
            if found:
                kind, object_id, subfields = found.groups()
                store = self._mentioned_comments if kind == "comment" else self._mentioned_media
                if object_id not in store:
                    return self._missing(object_id)
                allowed = ("id", "text", "username", "timestamp", "caption", "permalink", "like_count")
                return Response(200, {f"mentioned_{kind}": self._pick(store[object_id], subfields, allowed),
                                      "id": node})
            return Response(200, self._pick(self.instagram, fields, ("id", "username")))
        user = self._users.get(node)
        if user is None:
            return self._missing(node)
        profile: tuple[str, ...] = (("name", "username", "id") if user["platform"] == "instagram" else
                                    ("first_name", "last_name", "name", "id"))
        return Response(200, self._pick(user, fields, profile))

    def _record(self, kind: str, to: str, text: str, **extra: Any) -> str:
        object_id = f"m_{secrets.token_urlsafe(24)}" if kind in ("message", "private_reply") else self._id(15, "4")
        self._sent.append({"kind": kind, "to": to, "text": text, "id": object_id, **extra})
        return object_id

    @staticmethod
    def _bad_param(message: str, subcode: int | None = None) -> Response:
        return Response(400, graph_error(message, 100, subcode=subcode))

    def _send(self, params: Json) -> Response:
        recipient, message = params.get("recipient"), params.get("message")
        if not isinstance(recipient, dict) or not isinstance(message, dict):
            return self._bad_param("(#100) The parameter recipient is required")
        text = message.get("text")
        if not isinstance(text, str) or not text:
            return self._bad_param("(#100) Must send either message or state")
        if "comment_id" in recipient:
            return self._private_reply(str(recipient["comment_id"]), text)
        user = self._users.get(str(recipient.get("id")))
        if user is None:
            return self._bad_param("(#100) No matching user found", 2018001)
        messaging_type, tag = params.get("messaging_type"), params.get("tag")
        if messaging_type not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
            return self._bad_param("(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}")
        if messaging_type == "MESSAGE_TAG" and tag != "HUMAN_AGENT":
            return self._bad_param("(#100) Param tag must be a valid message tag")
        age = time.time() - float(user["last_inbound"])
        if age > (7 * DAY if messaging_type == "MESSAGE_TAG" else DAY):
            return Response(400, graph_error(OUTSIDE_WINDOW, 10, subcode=2018278))
        if user["platform"] == "instagram" and len(text.encode()) > INSTAGRAM_DM_BYTES:
            return self._bad_param(f"(#100) Length of param message[text] must be less than or equal to "
                                   f"{INSTAGRAM_DM_BYTES}")
        if user["platform"] == "facebook" and len(text) > MESSENGER_CHARS:
            return self._bad_param(f"(#100) Length of param message[text] must be less than or equal to "
                                   f"{MESSENGER_CHARS}")
        mid = self._record("message", user["id"], text, messaging_type=messaging_type, tag=tag)
        return Response(200, {"recipient_id": user["id"], "message_id": mid})

    def _private_reply(self, comment_id: str, text: str) -> Response:
        comment = self._comments.get(comment_id)
        if comment is None:
            return self._missing(comment_id)
        if comment_id in self._private_replied:
            return Response(400, graph_error("(#10900) Activity already replied to", 10900))
        if time.time() - float(comment["created"]) > 7 * DAY:
            return Response(400, graph_error(OUTSIDE_WINDOW, 10, subcode=2018278))
        if len(text) > MESSENGER_CHARS:
            return self._bad_param(f"(#100) Length of param message[text] must be less than or equal to "
                                   f"{MESSENGER_CHARS}")
        self._private_replied.add(comment_id)
        mid = self._record("private_reply", comment_id, text, messaging_type=None, tag=None)
        return Response(200, {"recipient_id": comment["from"]["id"], "message_id": mid})

    def _reply(self, platform: str, comment_id: str, params: Json) -> Response:
        comment = self._comments.get(comment_id)
        if comment is None or comment["platform"] != platform:
            return self._missing(comment_id)
        text = params.get("message")
        if not isinstance(text, str) or not text.strip():
            return self._bad_param("(#100) Missing message or attachment")
        if platform == "instagram" and comment["parent_id"]:
            return self._bad_param("(#100) Replies can only be made to top-level comments")
        limit = INSTAGRAM_COMMENT_CHARS if platform == "instagram" else FACEBOOK_COMMENT_CHARS
        if len(text) > limit:
            return self._bad_param(f"(#100) The comment is longer than {limit} characters")
        reply_id = self._record("comment_reply" if platform == "facebook" else "ig_reply", comment_id, text,
                                messaging_type=None, tag=None)
        if platform == "facebook":
            reply_id = f"{comment_id.partition('_')[0]}_{reply_id}"
            self._sent[-1]["id"] = reply_id
        self._comments[reply_id] = {"id": reply_id, "platform": platform, "parent_id": comment_id,
                                    "post_id": comment.get("post_id"), "media_id": comment.get("media_id"),
                                    "from": self.page if platform == "facebook" else self.instagram,
                                    "created": time.time()}
        return Response(200, {"id": reply_id})

    def _mention_reply(self, params: Json) -> Response:
        media_id, comment_id, text = params.get("media_id"), params.get("comment_id"), params.get("message")
        if not isinstance(text, str) or not text.strip():
            return self._bad_param("(#100) Missing message")
        if comment_id:
            known = self._mentioned_comments.get(str(comment_id))
            if known is None or known["media_id"] != media_id:
                return self._missing(str(comment_id))
        elif str(media_id) not in self._mentioned_media:
            return self._missing(str(media_id))
        if len(text) > INSTAGRAM_COMMENT_CHARS:
            return self._bad_param(f"(#100) The comment is longer than {INSTAGRAM_COMMENT_CHARS} characters")
        reply_id = self._record("mention_reply", str(comment_id or media_id), text, messaging_type=None, tag=None)
        return Response(200, {"id": reply_id})
