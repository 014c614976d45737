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

from bot.sandbox.workspace import BOT_USER, JSON_FIELDS, Workspace, message_errors, view_errors

Json = dict[str, Any]
T = TypeVar("T")

PERMALINK_BASE = "https://fake.slack.test/archives"


@dataclass
class _Failure:
    status: int
    retry_after: int
    times: int
    error: str | None


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
    """Fake Slack Web API server; use as a context manager or call ``start()``/``stop()``.

    The workspace itself (messages, threads, ephemerals, views, Block Kit validation) is the sandbox's
    `bot.sandbox.workspace.Workspace`; this adds the HTTP server, failure injection, delays and a call log.
    """

    def __init__(self, token: str = "xoxb-test", app_token: str = "xapp-test") -> None:
        self.token, self.app_token = token, app_token
        self.workspace = Workspace(token=token, app_token=app_token, permalink_base=PERMALINK_BASE)
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    @property
    def socket_url(self) -> str | None:
        """What ``apps.connections.open`` answers, e.g. ``FakeSocketMode.url``; None: the call fails."""
        return self.workspace.socket_url

    @socket_url.setter
    def socket_url(self, value: str | None) -> None:
        self.workspace.socket_url = value

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
            self.workspace.reset()
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
        return self.workspace.messages(channel)

    def usergroup(self, usergroup: str) -> list[str] | None:
        """The members the bot set for a user group (usergroups.users.update), None when never set."""
        return self.workspace.usergroup(usergroup)

    def replies(self, channel: str, thread_ts: str) -> list[Json]:
        """Thread replies (oldest first), without the parent."""
        return self.workspace.replies(channel, thread_ts)

    def message(self, channel: str, ts: str) -> Json | None:
        return self.workspace.message(channel, ts)

    def ephemerals(self, user: str | None = None) -> list[Json]:
        return self.workspace.ephemerals(user)

    def views(self) -> dict[str, Json]:
        """Open views by id, latest version."""
        return self.workspace.views()

    def close_view(self, view_id: str) -> None:
        """Simulate the user closing a modal."""
        self.workspace.close_view(view_id)

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
            refused = None if bad_body else self.workspace.check_auth(method, token)
            if bad_body:
                body: Json = {"ok": False, "error": "invalid_json"}
            elif refused is not None:
                body = refused
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
            else:
                body = self.workspace.handle(method, params)
                if token == self.token:
                    headers["X-OAuth-Scopes"] = ",".join(self.workspace.scopes)
            params.pop("token", None)
            call = dict(method=method, params=copy.deepcopy(params), status=status, time=time.time())
            self._calls.append(call | {"ok": body["ok"], "error": body.get("error")})
            return status, headers, copy.deepcopy(body), self._delays.get(method, 0.0)


__all__ = ["BOT_USER", "PERMALINK_BASE", "FakeSlack", "message_errors", "view_errors"]
