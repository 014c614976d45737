"""SocialOps composition root: settings, engine, clients, scheduler, web app and wiring. Nothing else."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import httpx
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, OperationalError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from adapters import registry
from adapters.source import SourceParts
from bot import checks
from bot.chat.slack.check import check_slack
from bot.chat.slack.delivery import SlackDelivery
from bot.chat.slack.listeners import SlackDesk
from bot.config import Config, ConfigError, Settings, load_config
from bot.core.ports import Check, Sender
from bot.services import followups
from bot.services.api import Services
from bot.services.outbox import Handlers, Outbox
from bot.services.polling import SourcePoller
from bot.services.records import Effect, use_desks
from bot.services.sending import SendHandler
from bot.services.tokens import DbTokens
from bot.web import build_web
from storage.db import Leadership, is_postgres, make_engine, migrate

if TYPE_CHECKING:
    from bot.chat.teams.setup import TeamsParts

log = logging.getLogger("socialops")

SWITCH_INTERVAL = 0.0005
"""Seconds a thread may keep the GIL while another waits (Python's default: 0.005). Database work runs
in worker threads and gives the GIL up inside every SQLite or PostgreSQL call; with the default, each
of those waits up to 5 ms for the busy event loop to hand it back (a convoy), which made a batch of
webhook deliveries take several times its CPU time."""


class Hook(Protocol):
    """Something that runs beside the bot in the same process (the sandbox), started last, stopped first."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Runtime:
    """Everything one process runs; `web` is the ASGI app, started and stopped by its lifespan."""

    engine: Engine
    config: Config
    services: Services
    outbox: Outbox
    scheduler: followups.FollowupScheduler
    bolt: AsyncApp | None
    desk: SlackDesk | None
    slack: AsyncWebClient | None
    web: Starlette
    http: httpx.AsyncClient
    teams: TeamsParts | None = None
    pollers: list[SourcePoller] = field(default_factory=list)
    leaders: list[Leadership] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    hooks: Sequence[Hook] = ()
    sources: list[SourceParts] = field(default_factory=list)
    target_sweep_every: float = 5.0
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        followups.runtime.engine = self.engine
        def notify() -> None:
            loop.call_soon_threadsafe(self.outbox.wake)

        followups.runtime.notify = notify
        self.services.set_notify(self.outbox.wake)
        if self.slack is not None:  # one connection pool for every Slack call (else a session per call)
            self.slack.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        if self.teams is not None:
            await self.teams.start()
        if not is_postgres(self.engine):
            released = await asyncio.to_thread(self.outbox.release_leases)
            if released:
                log.info("resuming %d delivery(ies) interrupted by the last stop", released)
        if self.services.storms is not None:  # the storm detector picks up where the last run left it
            warmed = await asyncio.to_thread(self.services.storms.warm, self.engine)
            if warmed:
                log.info("storm detector: replayed %d new case(s) of the last window", warmed)
        self.scheduler.start()
        self.tasks.append(asyncio.create_task(self.outbox.run(), name="outbox"))
        self.tasks.append(asyncio.create_task(self.services.watch_targets(self.target_sweep_every, self._stopping),
                                              name="targets"))
        for poller in self.pollers:
            self.tasks.append(asyncio.create_task(poller.run(), name="poller"))
        for hook in self.hooks:
            await hook.start()

    async def stop(self) -> None:
        """Graceful: deliveries in flight get a few seconds to finish; what is left is handed back."""
        for hook in reversed(self.hooks):
            await hook.stop()
        if self.desk is not None:
            await self.desk.drain()
        self.outbox.stop()
        self._stopping.set()
        for poller in self.pollers:
            poller.stop()
        self.scheduler.shutdown()
        _, pending = await asyncio.wait(self.tasks, timeout=5) if self.tasks else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.to_thread(self.outbox.hand_back)
        for leader in self.leaders:
            await asyncio.to_thread(leader.release)
        if self.teams is not None:
            await self.teams.stop()
        await self.http.aclose()
        if self.slack is not None and self.slack.session is not None:
            await self.slack.session.close()


def _may_poll(leader: Leadership) -> Callable[[], Awaitable[bool]]:
    async def may_poll() -> bool:
        return await asyncio.to_thread(leader.acquire)

    return may_poll


def build(settings: Settings, config: Config, env: Mapping[str, str] | None = None, *,
          slack_pace: float | None = None, scheduler_look_every: float = 15.0,
          routes: Sequence[BaseRoute] = (), hooks: Sequence[Hook] = (),
          middleware: Sequence[Middleware] = (), teams_pacer: Any = None,
          target_sweep_every: float = 5.0) -> Runtime:
    env = os.environ if env is None else env
    engine = make_engine(settings.database_url)
    migrate(engine)
    use_desks(engine, config.desks)  # every chat effect is written once per desk
    http = httpx.AsyncClient(timeout=httpx.Timeout(15.0), follow_redirects=False)

    tokens = DbTokens(engine)
    sources = [registry.factory(name)(config=source_config, env=env, http=http, store=tokens)
               for name, source_config in registry.configured(config.sources)]
    senders: dict[str, Sender] = {via: sender for parts in sources for via, sender in parts.senders.items()}

    scheduler = followups.FollowupScheduler(engine=engine, look_every=scheduler_look_every)
    services = Services(engine=engine, config=config, senders=senders, scheduler=scheduler)
    webhooks = {parts.name: parts.webhook(services) for parts in sources if parts.webhook is not None}
    leaders: list[Leadership] = []
    pollers: list[SourcePoller] = []
    for parts in sources:
        if not parts.feeds:
            continue
        leader = Leadership(engine, f"poll:{parts.name}")  # several copies: one at a time polls each source
        leaders.append(leader)
        pollers.append(SourcePoller(name=parts.name, feeds=parts.feeds, every=parts.every, spread=parts.spread,
                                    ingest=services.ingest, load_cursor=services.cursor,
                                    may_poll=_may_poll(leader), report=services.notify_admin))

    handlers: Handlers = {("", Effect.SEND): SendHandler(engine=engine, senders=senders, config=config)}
    client: AsyncWebClient | None = None
    bolt: AsyncApp | None = None
    desk: SlackDesk | None = None
    slack_events: Callable[[Request], Awaitable[Response]] | None = None
    if config.slack is not None:
        client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url or
                                AsyncWebClient.BASE_URL, retry_handlers=[])
        # Listeners ack first and hand their work to a task, so Bolt answers the moment they return.
        bolt = AsyncApp(signing_secret=settings.slack_signing_secret or "", client=client,
                        process_before_response=True)
        desk = SlackDesk(app=bolt, services=services)
        delivery = SlackDelivery(client=client, services=services, config=config,
                                 pace=settings.slack_pace_s if slack_pace is None else slack_pace)
        handlers.update(delivery.handlers())
        slack_handler = AsyncSlackRequestHandler(bolt)

        async def events(request: Request) -> Response:
            return await slack_handler.handle(request)

        if not settings.slack_app_token:  # Socket Mode: Slack delivers events over a websocket instead
            slack_events = events
    teams: TeamsParts | None = None
    if config.teams is not None:
        from bot.chat.teams.setup import build_teams  # botbuilder is loaded only for a Teams desk

        teams = build_teams(config.teams, env=env, services=services, http=http, pacer=teams_pacer)
        handlers.update(teams.handlers())
        routes = [*routes, teams.route]
    outbox = Outbox(engine=engine, handlers=handlers, lease=timedelta(seconds=settings.outbox_lease_s))

    runtime_box: list[Runtime] = []

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await runtime_box[0].start()
        try:
            yield
        finally:
            await runtime_box[0].stop()

    web = build_web(engine=engine, slack=slack_events, webhooks=webhooks, lifespan=lifespan,
                    extra_routes=routes, middleware=middleware)
    runtime = Runtime(engine=engine, config=config, services=services, outbox=outbox, scheduler=scheduler,
                      bolt=bolt, desk=desk, slack=client, web=web, http=http, teams=teams, pollers=pollers,
                      leaders=leaders, hooks=hooks, sources=sources, target_sweep_every=target_sweep_every)
    runtime_box.append(runtime)
    return runtime


async def connect_socket_mode(runtime: Runtime, app_token: str) -> Any:
    """Socket Mode: Slack delivers events over a websocket the bot opens (apps.connections.open)."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    assert runtime.bolt is not None
    socket = AsyncSocketModeHandler(runtime.bolt, app_token)
    await socket.connect_async()  # type: ignore[no-untyped-call]
    log.info("Slack Socket Mode connected")
    return socket


async def _serve(settings: Settings, runtime: Runtime) -> None:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(runtime.web, host=settings.host, port=settings.port,
                                           log_level="info", access_log=False, lifespan="on"))
    if settings.slack_app_token and runtime.bolt is not None:
        socket = await connect_socket_mode(runtime, settings.slack_app_token)
        try:
            await server.serve()
        finally:
            await socket.close_async()
    else:
        await server.serve()


USAGE = """usage: python app.py [check | teams-package [--out FILE] | sandbox [--no-feed] [--port N] [--config FILE]
                                                                     [--ignore-credentials]]

  python app.py           run the bot; with no Slack credentials set (and no Teams-only config), the local
                          sandbox instead
  python app.py check     check the Slack token, scopes and channels, the Teams credentials and every source's
                          credentials (read-only calls), print what works and what to fix; exit 1 if anything fails
  python app.py teams-package
                          build the Microsoft Teams app package (manifest.json and icons, zipped) for
                          MICROSOFT_APP_ID: build/socialops-teams.zip, or --out FILE
  python app.py sandbox   the local sandbox: an emulated Slack channel in the browser, on 127.0.0.1
    --no-feed             start without the sample customer traffic (start it from the page)
    --port N              listen on port N (default: PORT, else 3000)
    --config FILE         team policy for the sandbox (default: its own; channels C0CASES, C0ESCAL)
    --ignore-credentials  start the sandbox even though SLACK_* credentials are set (they are not used)
"""


@dataclass(frozen=True)
class Command:
    sandbox: bool = False
    explicit: bool = False
    feed: bool = True
    port: int | None = None
    config: str | None = None
    ignore_credentials: bool = False
    check: bool = False
    teams_package: bool = False
    rest: list[str] = field(default_factory=list)


def parse_args(argv: list[str]) -> Command:
    """The command line; ValueError names what is wrong."""
    if not argv:
        return Command()
    if argv[0] in ("-h", "--help", "help"):
        raise SystemExit(USAGE)
    if argv[0] == "check":
        if len(argv) > 1:
            raise ValueError(f"check takes no arguments, got {' '.join(argv[1:])!r}")
        return Command(check=True)
    if argv[0] == "teams-package":
        return Command(teams_package=True, rest=argv[1:])
    if argv[0] != "sandbox":
        raise ValueError(f"unknown command {argv[0]!r}")
    options: dict[str, Any] = {"sandbox": True, "explicit": True}
    rest = iter(argv[1:])
    for word in rest:
        if word == "--no-feed":
            options["feed"] = False
        elif word == "--ignore-credentials":
            options["ignore_credentials"] = True
        elif word in ("--port", "--config"):
            value = next(rest, None)
            if value is None:
                raise ValueError(f"{word} needs a value")
            if word == "--port":
                if not value.isdigit():
                    raise ValueError(f"--port: {value!r} is not a TCP port number")
                options["port"] = int(value)
            else:
                options["config"] = value
        else:
            raise ValueError(f"unknown option {word!r}")
    return Command(**options)


def _problem(error: Exception) -> int:
    if isinstance(error, ConfigError):
        print(f"socialops: configuration problem: {error}", file=sys.stderr)
    else:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        print(f"socialops: configuration problem: DATABASE_URL: cannot use the database: {reason}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        command = parse_args(sys.argv[1:] if argv is None else argv)
    except ValueError as error:
        print(f"socialops: {error}\n\n{USAGE}", file=sys.stderr)
        return 2
    env = os.environ
    if command.check:
        return run_check(env)
    if command.teams_package:
        from bot.chat.teams.package import command as teams_package

        return teams_package(command.rest, env)
    if command.sandbox or (not any(env.get(name) for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET",
                                                              "SLACK_APP_TOKEN")) and not _teams_only(env)):
        return run_sandbox(command, env)
    try:
        config = load_config(env.get("SOCIALOPS_CONFIG") or "socialops.yml")
        settings = Settings.from_env(slack=config.slack is not None)
        runtime = build(settings, config)
    except (ConfigError, OperationalError, ArgumentError) as error:
        return _problem(error)
    desks = []
    if config.slack is not None:
        desks.append("Slack " + ("Socket Mode" if settings.slack_app_token else "HTTP mode (POST /slack/events)"))
    if config.teams is not None:
        desks.append("Teams (POST /api/messages)")
    log.info("SocialOps starting on port %d: %s, database %s", settings.port, ", ".join(desks),
             runtime.engine.url.render_as_string())
    run_async(_serve(settings, runtime))
    return 0


def _teams_only(env: Mapping[str, str]) -> bool:
    """A config with a Teams desk and no Slack desk: run the bot, not the sandbox, without Slack credentials."""
    try:
        config = load_config(env.get("SOCIALOPS_CONFIG") or "socialops.yml")
    except ConfigError:
        return False
    return config.slack is None and config.teams is not None


def run_check(env: Mapping[str, str]) -> int:
    """`python app.py check`: read-only calls against Slack and every configured source; a table; exit 1 on
    any failure."""
    try:
        config = load_config(env.get("SOCIALOPS_CONFIG") or "socialops.yml")
        settings = Settings.from_env(env, slack=config.slack is not None)
    except ConfigError as error:
        return _problem(error)

    async def gather() -> list[Check]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(15.0), follow_redirects=False) as http:
            rows: list[Check] = []
            try:
                engine = make_engine(settings.database_url)  # renewed OAuth tokens are kept there
                migrate(engine)
                tokens = DbTokens(engine)
                sources = [registry.factory(name)(config=source_config, env=env, http=http, store=tokens)
                           for name, source_config in registry.configured(config.sources)]
            except ConfigError as error:
                return [Check("configuration", False, str(error))]
            except (OperationalError, ArgumentError) as error:
                reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
                return [Check("database", False, reason, "fix DATABASE_URL")]
            client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url or
                                    AsyncWebClient.BASE_URL, retry_handlers=[])
            if config.slack is not None:
                rows += await check_slack(client, config)
            if config.teams is not None:
                from bot.chat.teams.setup import check_teams

                rows += await check_teams(config.teams, env=env, http=http)
            for parts in sources:
                if parts.check is None:
                    continue
                try:
                    rows += await parts.check()
                except Exception as error:  # a check must report, never crash the table
                    rows.append(Check(parts.name, False, f"{type(error).__name__}: {error}"))
            return rows

    rows = asyncio.run(gather())
    print(checks.table(rows))
    return 0 if all(row.ok for row in rows) else 1


def run_sandbox(command: Command, env: Mapping[str, str]) -> int:
    """The local sandbox: the real bot against an emulated Slack workspace, on 127.0.0.1 only."""
    from bot.sandbox import setup  # imported here only: production mode never loads the sandbox

    present = setup.credentials_set(env)
    if present and not command.ignore_credentials:
        print(f"socialops: {', '.join(present)} is set: the sandbox never uses real Slack credentials. Unset it to "
              "try the sandbox, or start it anyway with `python app.py sandbox --ignore-credentials` "
              "(the credentials are then ignored).", file=sys.stderr)
        return 2
    try:
        port = setup.port_from(env, command.port)
        prepared = setup.prepare(setup.Options(port=port, feed=command.feed, config_path=command.config), env)
        runtime = build(prepared.settings, prepared.config, prepared.env, routes=prepared.sandbox.routes(),
                        hooks=[prepared.hook], middleware=prepared.middleware)
    except (ConfigError, OperationalError, ArgumentError) as error:
        return _problem(error)
    why = "as asked" if command.explicit else "because no Slack credentials (SLACK_BOT_TOKEN) are set"
    log.info("SocialOps sandbox (%s): open %s — nothing here reaches Slack or any platform", why, prepared.url)
    if prepared.generic_secret_is_default:
        log.info("sandbox: your own tools can POST to http://127.0.0.1:%d/webhooks/generic signed with the "
                 "sandbox's webhook secret %r (set GENERIC_WEBHOOK_SECRET to use your own)", port,
                 setup.DEFAULT_GENERIC_SECRET)
    if prepared.database_is_temporary:
        log.info("sandbox: a fresh database for this run, removed at exit: %s", runtime.engine.url.database)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the sandbox talks to itself: no access log
    try:
        run_async(_serve(prepared.settings, runtime))
    finally:
        runtime.engine.dispose()
        if prepared.database_is_temporary and runtime.engine.url.database:
            shutil.rmtree(Path(runtime.engine.url.database).parent, ignore_errors=True)
    return 0


def run_async(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where it is installed (a dependency except on Windows), else asyncio's own loop."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
