"""Builds the Teams desk from the config and the environment: the one entry point app.py uses (imported only when
a `teams:` section is configured, so Slack-only deployments never load botbuilder)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from botbuilder.core import BotFrameworkAdapter, BotFrameworkAdapterSettings
from starlette.routing import Route

from bot.chat.teams.auth import DEFAULT_METADATA_URL, AuthError, BotToken, InboundAuth, PrefetchedCredentials
from bot.chat.teams.connector import Connector, Pacer
from bot.chat.teams.delivery import TeamsDelivery
from bot.chat.teams.desk import TeamsDesk
from bot.config import ConfigError, TeamsConfig
from bot.core.ports import Check
from bot.services.api import Services
from bot.services.outbox import Handler

log = logging.getLogger("socialops.teams")


@dataclass
class TeamsParts:
    desk: TeamsDesk
    delivery: TeamsDelivery
    connector: Connector
    route: Route

    def handlers(self) -> dict[tuple[str, str], Handler]:
        return self.delivery.handlers()

    async def start(self) -> None:
        await self.desk.start()

    async def stop(self) -> None:
        await self.desk.stop()
        await self.connector.close()


def build_teams(config: TeamsConfig, *, env: Mapping[str, str], services: Services, http: httpx.AsyncClient,
                pacer: Pacer | None = None) -> TeamsParts:
    app_id = (env.get(config.app_id_env) or "").strip()
    password = env.get(config.app_password_env) or ""
    tenant = (env.get(config.tenant_id_env) or "").strip() or None
    if app_id and not password:
        raise ConfigError(f"{config.app_password_env}: set it to the bot's client secret (the App ID "
                          f"{config.app_id_env} is set)")
    token = BotToken(http=http, login_url=config.login_url, app_id=app_id, password=password, tenant=tenant) \
        if app_id else None
    metadata_url = config.openid_metadata_url or DEFAULT_METADATA_URL
    settings = BotFrameworkAdapterSettings(app_id=app_id, app_password=password, channel_auth_tenant=tenant,
                                           app_credentials=PrefetchedCredentials(app_id, token) if app_id else None)
    adapter = BotFrameworkAdapter(settings)
    connector = Connector(adapter=adapter, app_id=app_id, token=token, service_url=config.service_url,
                          tenant=tenant, pacer=pacer)
    desk = TeamsDesk(adapter=adapter, services=services, config=config, app_id=app_id, password=password,
                     inbound=InboundAuth(metadata_url), token=token)
    delivery = TeamsDelivery(connector=connector, services=services, config=config)
    if app_id:
        log.info("Teams desk: App ID %s, requests to /api/messages need a Bot Framework token", app_id)
    else:
        log.warning("Teams desk: no App ID (%s is unset): local development mode, /api/messages accepts requests "
                    "without authentication from this machine only", config.app_id_env)
    return TeamsParts(desk=desk, delivery=delivery, connector=connector,
                      route=Route("/api/messages", desk.endpoint, methods=["POST"]))


async def check_teams(config: TeamsConfig, *, env: Mapping[str, str], http: httpx.AsyncClient) -> list[Check]:
    """`python app.py check`: can the bot get its Bot Connector token (App ID, password, tenant)?"""
    app_id = (env.get(config.app_id_env) or "").strip()
    if not app_id:
        return [Check("Teams credentials", False, f"{config.app_id_env} is not set: no authentication (local "
                      "development only)", "register the bot and set the App ID, password and tenant (docs/teams.md)")]
    password = env.get(config.app_password_env) or ""
    if not password:
        return [Check("Teams credentials", False, f"{config.app_password_env} is not set",
                      "create a client secret for the bot's app registration")]
    tenant = (env.get(config.tenant_id_env) or "").strip() or None
    token = BotToken(http=http, login_url=config.login_url, app_id=app_id, password=password, tenant=tenant)
    try:
        await token.fresh()
    except AuthError as error:
        return [Check("Teams credentials", False, error.message,
                      f"check {config.app_id_env}, {config.app_password_env} and {config.tenant_id_env}")]
    return [Check("Teams credentials", True, f"the bot got a Bot Connector token for App ID {app_id}")]
