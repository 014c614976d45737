"""A local fake of Slack's Socket Mode websocket server for tests.

Slack's side of Socket Mode: the app calls ``apps.connections.open`` (answered by ``FakeSlack``
with ``fake_slack.socket_url = socket.url``), connects a websocket there, gets a ``hello``, then
receives envelopes (``events_api``, ``interactive``, ``slash_commands``) and acknowledges each with
``{"envelope_id": ..., "payload": ...?}``. This server listens on 127.0.0.1 only, in a background
thread with its own event loop, so sync tests and async tests (whose loop runs the bot) can use it.

    with FakeSocketMode() as socket:
        fake_slack.socket_url = socket.url
        ...  # the bot connects
        envelope_id = socket.send("interactive", block_actions_payload)
        ack = await socket.wait_for_ack_async(envelope_id)
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
import uuid
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web

Json = dict[str, Any]

PATH = "/link"
APP_ID = "AFAKE"
ENVELOPE_TYPES = {"events_api", "interactive", "slash_commands"}


class FakeSocketMode:
    """Fake Socket Mode server; use as a context manager or call ``start()``/``stop()``.

    Envelopes go to the most recently connected client (Slack spreads them over an app's
    connections; tests use one). Everything a client sends back is kept: ``acks()`` lists the
    acknowledgements, ``received()`` every JSON text frame.
    """

    def __init__(self, app_id: str = APP_ID) -> None:
        self.app_id = app_id
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._clients: list[web.WebSocketResponse] = []
        self._connections = 0
        self._sent: dict[str, tuple[Json, float]] = {}
        self._acks: list[Json] = []
        self._received: list[Json] = []

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeSocketMode:
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start() below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fake-socket-mode", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10) or failure:
            self._thread = self._loop = None
            raise RuntimeError(f"FakeSocketMode did not start: {failure[0] if failure else 'timeout'}")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._loop = self._thread = self._runner = None
            self._port = 0

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The websocket URL ``apps.connections.open`` hands out: ``ws://127.0.0.1:PORT/link``."""
        if self._thread is None:
            raise RuntimeError("FakeSocketMode is not started")
        return f"ws://127.0.0.1:{self._port}{PATH}"

    # ---- test controls ---------------------------------------------------------------------
    @property
    def connections(self) -> int:
        """How many websocket connections were accepted so far (reconnects count)."""
        with self._cond:
            return self._connections

    def connected(self) -> bool:
        with self._cond:
            return any(not ws.closed for ws in self._clients)

    def wait_connected(self, timeout: float = 5.0) -> None:
        """Block until a client is connected (AssertionError after ``timeout``)."""
        with self._cond:
            if not self._cond.wait_for(lambda: any(not ws.closed for ws in self._clients), timeout):
                raise AssertionError(f"no Socket Mode client connected within {timeout}s")

    def send(
        self,
        envelope_type: str,
        payload: Json,
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 5.0,
    ) -> str:
        """Push one envelope to the connected client; returns its ``envelope_id``.

        ``accepts_response_payload`` defaults to False for ``events_api`` and True otherwise.
        Waits up to ``timeout`` for a client to be connected. Safe to call from any thread,
        including from async tests (it only waits for this server's own loop).
        """
        if envelope_type not in ENVELOPE_TYPES:
            raise ValueError(f"unknown envelope type {envelope_type!r}: use one of {sorted(ENVELOPE_TYPES)}")
        loop = self._loop
        if loop is None:
            raise RuntimeError("FakeSocketMode is not started")
        self.wait_connected(timeout)
        envelope_id = str(uuid.uuid4())
        accepts = envelope_type != "events_api" if accepts_response_payload is None else accepts_response_payload
        envelope: Json = {"envelope_id": envelope_id, "type": envelope_type, "payload": copy.deepcopy(payload),
                          "accepts_response_payload": accepts}
        if envelope_type == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        asyncio.run_coroutine_threadsafe(self._push(envelope), loop).result(timeout=timeout)
        return envelope_id

    def sent(self) -> list[Json]:
        """Envelopes pushed so far, oldest first."""
        with self._cond:
            return copy.deepcopy([envelope for envelope, _ in self._sent.values()])

    def acks(self) -> list[Json]:
        """Acknowledgements, oldest first: ``{"envelope_id", "payload"?, "elapsed"}`` where ``elapsed``
        is the seconds between sending the envelope and receiving its ack (None for unknown ids)."""
        with self._cond:
            return copy.deepcopy(self._acks)

    def received(self) -> list[Json]:
        """Every JSON object the client sent, acks included."""
        with self._cond:
            return copy.deepcopy(self._received)

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> Json:
        """Block until ``envelope_id`` is acknowledged; returns the ack. Blocks the calling thread:
        from an async test whose loop runs the bot, use ``wait_for_ack_async``."""
        with self._cond:
            ack = self._cond.wait_for(lambda: self._ack_of(envelope_id), timeout)
            if ack is None:
                raise AssertionError(self._not_acked(envelope_id, timeout))
            return copy.deepcopy(ack)

    async def wait_for_ack_async(self, envelope_id: str, timeout: float = 5.0, interval: float = 0.01) -> Json:
        """Like ``wait_for_ack`` but yields to the caller's event loop while waiting."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                ack = self._ack_of(envelope_id)
                if ack is not None:
                    return copy.deepcopy(ack)
                if time.monotonic() >= deadline:
                    raise AssertionError(self._not_acked(envelope_id, timeout))
            await asyncio.sleep(interval)

    # ---- server side (runs on the server thread) -------------------------------------------
    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get(PATH, self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def _shutdown(self) -> None:
        with self._cond:
            clients = list(self._clients)
        for ws in clients:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        hello = {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }
        await ws.send_str(json.dumps(hello))
        with self._cond:
            self._clients.append(ws)
            self._connections += 1
            self._cond.notify_all()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._record(message.data)
        finally:
            with self._cond:
                self._clients.remove(ws)
                self._cond.notify_all()
        return ws

    async def _push(self, envelope: Json) -> None:
        with self._cond:
            live = [ws for ws in self._clients if not ws.closed]
            if not live:
                raise ConnectionError("no Socket Mode client connected")
            self._sent[envelope["envelope_id"]] = (envelope, time.monotonic())
        await live[-1].send_str(json.dumps(envelope))

    def _record(self, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        with self._cond:
            self._received.append(message)
            envelope_id = message.get("envelope_id")
            if isinstance(envelope_id, str):
                sent = self._sent.get(envelope_id)
                ack: Json = {"envelope_id": envelope_id}
                if "payload" in message:
                    ack["payload"] = message["payload"]
                ack["elapsed"] = None if sent is None else time.monotonic() - sent[1]
                self._acks.append(ack)
            self._cond.notify_all()

    def _ack_of(self, envelope_id: str) -> Json | None:
        return next((ack for ack in self._acks if ack["envelope_id"] == envelope_id), None)

    def _not_acked(self, envelope_id: str, timeout: float) -> str:
        known = "sent" if envelope_id in self._sent else "never sent"
        acked = [ack["envelope_id"] for ack in self._acks[-5:]]
        return f"envelope {envelope_id} ({known}) not acknowledged within {timeout}s; last acks: {acked}"
