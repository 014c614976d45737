"""Sandbox mode: the settings, policy and pieces that make the real bot run against an emulated Slack.

Nothing here is imported in production mode: `app.py` imports this module only when it starts the
sandbox, and no other package imports `bot.sandbox` (an import contract checks it).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.middleware import Middleware

from bot.config import Config, ConfigError, GenericSource, Settings, load_config, parse_duration
from bot.sandbox.feed import FeedRunner, SampleFeed
from bot.sandbox.server import LoopbackOnly, Sandbox, WebhookWatch
from bot.sandbox.workspace import Workspace

log = logging.getLogger("socialops.sandbox")

POLICY = Path(__file__).parent / "sandbox.yml"
DEFAULT_GENERIC_SECRET = "sandbox-webhook-secret"
"""Used when GENERIC_WEBHOOK_SECRET is not set, so a listening tool can be tried against the sandbox."""
SLACK_CREDENTIALS = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN")
FEED_START_DELAY_S = 1.0


def credentials_set(env: Mapping[str, str]) -> list[str]:
    """The real Slack credentials present in the environment (names only)."""
    return [name for name in SLACK_CREDENTIALS if env.get(name)]


@dataclass(frozen=True)
class Options:
    port: int = 3000
    feed: bool = True
    config_path: str | None = None
    database_url: str | None = None
    seed: int | None = None


@dataclass
class Prepared:
    settings: Settings
    config: Config
    env: dict[str, str]
    sandbox: Sandbox
    hook: SandboxHook
    url: str
    generic_secret_is_default: bool
    database_is_temporary: bool
    middleware: list[Middleware]


@dataclass
class SandboxHook:
    """Started after the bot (the page's stream, then the sample feed), stopped before it."""

    sandbox: Sandbox
    http: httpx.AsyncClient
    feed: FeedRunner | None
    start_feed: bool
    _timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    async def start(self) -> None:
        self.sandbox.start()
        if self.feed is not None and self.start_feed:
            # The web server starts listening right after the app's startup: give it a moment.
            self._timer = asyncio.get_running_loop().call_later(FEED_START_DELAY_S, self.feed.start)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.feed is not None:
            await self.feed.stop()
        await self.http.aclose()


def port_from(env: Mapping[str, str], given: int | None) -> int:
    if given is not None:
        port = given
    else:
        text = env.get("PORT") or "3000"
        if not text.isdigit():
            raise ConfigError(f"PORT: {text!r} is not a TCP port number")
        port = int(text)
    if not 0 < port < 65536:
        raise ConfigError(f"PORT: {port} is not a TCP port number")
    return port


def prepare(options: Options, env: Mapping[str, str]) -> Prepared:
    base_url = f"http://127.0.0.1:{options.port}"
    config = load_config(options.config_path or POLICY)
    generic = config.sources.generic or GenericSource()
    env_out = dict(env)
    secret = env.get(generic.secret_env) or ""
    is_default = not secret
    if is_default:
        secret = DEFAULT_GENERIC_SECRET
        env_out[generic.secret_env] = secret
    bot_token = "xoxb-sandbox-" + secrets.token_hex(8)
    signing_secret = secrets.token_hex(16)
    workspace = Workspace(token=bot_token, strict_triggers=True, permalink_base=f"{base_url}/sandbox/archives")
    http = httpx.AsyncClient(timeout=httpx.Timeout(30.0), follow_redirects=False)
    sandbox = Sandbox(workspace=workspace, base_url=base_url, signing_secret=signing_secret, generic_secret=secret,
                      http=http)
    seed = secrets.randbelow(1 << 30) if options.seed is None else options.seed
    feed = FeedRunner(post=_post_event(sandbox), feed=SampleFeed(seed=seed), on_change=sandbox.feed_changed)
    sandbox.feed = feed
    sources = config.sources.model_copy(update={
        "generic": generic.model_copy(update={"default_reply_url": sandbox.generic_reply_url})})
    config = config.model_copy(update={"sources": sources})
    temporary = options.database_url is None
    database_url = options.database_url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='socialops-sandbox-'))}/sandbox.db"
    pace = 1.0
    if env.get("SOCIALOPS_SLACK_PACE"):
        try:
            pace = float(env["SOCIALOPS_SLACK_PACE"])
        except ValueError:
            raise ConfigError("SOCIALOPS_SLACK_PACE: seconds between messages to one channel, 0 to 60") from None
    lease = parse_duration(env["SOCIALOPS_OUTBOX_LEASE"]) if env.get("SOCIALOPS_OUTBOX_LEASE") else 60.0
    settings = Settings(database_url=database_url, port=options.port, host="127.0.0.1", slack_bot_token=bot_token,
                        slack_signing_secret=signing_secret, slack_app_token=None,
                        slack_api_url=sandbox.slack_api_url, config_path=str(options.config_path or POLICY),
                        slack_pace_s=pace, outbox_lease_s=lease)
    hook = SandboxHook(sandbox=sandbox, http=http, feed=feed, start_feed=options.feed)
    return Prepared(settings=settings, config=config, env=env_out, sandbox=sandbox, hook=hook,
                    url=f"{base_url}/sandbox", generic_secret_is_default=is_default,
                    database_is_temporary=temporary, middleware=[Middleware(LoopbackOnly, port=options.port),
                                                              Middleware(WebhookWatch, sandbox=sandbox)])


def _post_event(sandbox: Sandbox) -> Callable[[dict[str, Any]], Awaitable[None]]:
    async def post(event: dict[str, Any]) -> None:
        await sandbox.post_event(event)

    return post


__all__ = ["Options", "Prepared", "credentials_set", "port_from", "prepare"]
