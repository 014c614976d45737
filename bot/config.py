"""Team policy from one YAML file (`SOCIALOPS_CONFIG`) and deployment settings from the environment.

Every error names the key and the problem, so an admin can fix the file without reading code.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


def parse_duration(value: object) -> float:
    """'30s', '5m', '2h', '1d' → seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError("must be positive")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("must be a duration such as 30s, 5m, 2h or 1d")
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration such as 30s, 5m, 2h or 1d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be positive")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def parse_delay(value: object) -> float:
    """Like parse_duration, but zero is allowed ('0s': at once)."""
    if value in (0, "0", "0s", "0m", "0h", "0d") or (isinstance(value, str) and value.strip() in ("0s", "0")):
        return 0.0
    return parse_duration(value)


Delay = Annotated[float, BeforeValidator(parse_delay)]
SLACK_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$")
SLACK_PING = re.compile(r"^[US][A-Z0-9]{2,}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackConfig(_Strict):
    channel: str
    escalation_channel: str
    oncall: str | None = None
    admin_channel: str | None = None
    """Where the bot tells the admin about problems (a source whose credentials stopped working);
    default: the escalation channel."""

    @property
    def admin(self) -> str:
        return self.admin_channel or self.escalation_channel

    @field_validator("channel", "escalation_channel", "admin_channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not SLACK_CHANNEL.match(value):
            raise ValueError(f"{value!r} is not a Slack channel id (C…, G… or D…)")
        return value

    @field_validator("oncall")
    @classmethod
    def _oncall(cls, value: str | None) -> str | None:
        if value is not None and not SLACK_PING.match(value):
            raise ValueError(f"{value!r} is not a Slack user id (U…) or user group id (S…)")
        return value


TEAMS_ID = re.compile(r"^\S{3,300}$")


def _teams_id(value: str | None) -> str | None:
    if value is not None and not TEAMS_ID.match(value):
        raise ValueError(f"{value!r} is not a Teams id (a channel's conversation id looks like 19:…@thread.tacv2, "
                         "a person's like 29:…)")
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class TeamsConfig(_Strict):
    """The Microsoft Teams desk. Secrets are read from the environment variables named here."""

    app_id_env: str = "MICROSOFT_APP_ID"
    """Unset or empty: local development without authentication (logged at start)."""
    app_password_env: str = "MICROSOFT_APP_PASSWORD"
    tenant_id_env: str = "MICROSOFT_APP_TENANT_ID"
    """Single-tenant bots: the tenant's id; unset: multi-tenant (tokens from botframework.com)."""
    service_url: HttpUrl = "https://smba.trafficmanager.net/teams"
    channel: str
    """The team channel new cases are posted to (its conversation id, 19:…@thread.tacv2)."""
    escalation_channel: str | None = None
    """Where escalations are announced; default: the cases channel."""
    admin_channel: str | None = None
    """Where the bot tells the admin about problems; default: the escalation channel."""
    oncall: str | None = None
    """The Teams user id (29:…) mentioned on escalation."""
    oncall_name: str = Field(default="on call", min_length=1, max_length=100)
    """The name shown in that mention."""
    login_url: HttpUrl = "https://login.microsoftonline.com"
    """Where the bot gets its access tokens (change only for a sovereign cloud, or tests)."""
    openid_metadata_url: HttpUrl | None = None
    """Where inbound tokens' signing keys are published (default: the Bot Framework's; tests only)."""

    @property
    def escalations(self) -> str:
        return self.escalation_channel or self.channel

    @property
    def admin(self) -> str:
        return self.admin_channel or self.escalations

    _ids = field_validator("channel", "escalation_channel", "admin_channel", "oncall")(
        classmethod(lambda cls, value: _teams_id(value)))


class RouteWhen(_Strict):
    platform: str | None = None
    kind: str | None = None


class Route(_Strict):
    when: RouteWhen
    channel: str | None = None
    """The Slack channel for these cases."""
    teams_channel: str | None = None
    """The Teams channel for these cases."""

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        return SlackConfig._channel(value)

    @field_validator("teams_channel")
    @classmethod
    def _teams_channel(cls, value: str | None) -> str | None:
        return _teams_id(value)

    @model_validator(mode="after")
    def _somewhere(self) -> Route:
        if self.channel is None and self.teams_channel is None:
            raise ValueError("a route needs channel (Slack) or teams_channel (Teams)")
        return self


class GenericSource(_Strict):
    secret_env: str = "GENERIC_WEBHOOK_SECRET"
    max_length: int = Field(default=2000, ge=1, le=3000)
    default_reply_url: str | None = None
    """Where replies go for events that carry no reply_url (none: such cases cannot be answered)."""

    @field_validator("default_reply_url")
    @classmethod
    def _reply_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class MastodonSource(_Strict):
    base_url: str
    token_env: str = "MASTODON_TOKEN"
    poll_every: Duration = 30.0
    max_length: int = Field(default=500, ge=1, le=3000)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class XSource(_Strict):
    """X (API v2): mentions, DMs and keyword search polled; replies and DMs sent as the brand."""

    user_id: str = Field(pattern=r"^\d{1,20}$")
    bearer_token_env: str = "X_BEARER_TOKEN"
    user_token_env: str = "X_USER_TOKEN"
    consumer_secret_env: str | None = "X_CONSUMER_SECRET"
    """For the optional Account Activity webhook (CRC and signatures); null: no webhook."""
    client_id_env: str | None = None
    """With refresh_token_env: the user token renews itself (X's OAuth 2.0 user tokens last two hours)."""
    client_secret_env: str | None = None
    """Confidential clients only (sent as HTTP Basic); public clients leave it out."""
    refresh_token_env: str | None = None
    """The first refresh token (scope offline.access); X rotates it, the bot keeps the newest in its database."""
    keywords: list[str] = []
    dms: bool = True
    poll_every: Duration = 60.0
    base_url: HttpUrl = "https://api.x.com"
    max_length: int = Field(default=280, ge=1, le=25_000)


class MetaSource(_Strict):
    """Facebook Page comments, Messenger, Instagram comments, mentions and messages: one webhook."""

    app_secret_env: str = "META_APP_SECRET"
    verify_token_env: str = "META_VERIFY_TOKEN"
    page_token_env: str = "META_PAGE_TOKEN"
    graph_url: HttpUrl = "https://graph.facebook.com/v21.0"
    page_id: str | None = None
    """The Page's id: its own comments and messages are echoes, never cases."""
    instagram_id: str | None = None
    """The Instagram professional account's id (mentions are fetched through it)."""


class BlueskySource(_Strict):
    """Bluesky: notifications (mention, reply, quote) and keyword search polled; replies posted."""

    service: HttpUrl = "https://bsky.social"
    handle: str = Field(min_length=3)
    app_password_env: str = "BLUESKY_APP_PASSWORD"
    keywords: list[str] = []
    poll_every: Duration = 30.0
    max_graphemes: int = Field(default=300, ge=1, le=300)


class GoogleReviewsSource(_Strict):
    """Google Business Profile reviews, polled per location; answered with the review reply."""

    account: str = Field(pattern=r"^accounts/[^/]+$")
    locations: list[Annotated[str, Field(pattern=r"^locations/[^/]+$")]] = Field(min_length=1)
    token_env: str = "GOOGLE_TOKEN"
    """An access token; optional when the refresh settings below are given."""
    client_id_env: str | None = None
    client_secret_env: str | None = None
    refresh_token_env: str | None = None
    """With the client id and secret: access tokens (one hour) renew themselves."""
    token_url: HttpUrl = "https://oauth2.googleapis.com/token"
    poll_every: Duration = 900.0
    base_url: HttpUrl = "https://mybusiness.googleapis.com/v4"
    max_length: int = Field(default=4096, ge=1, le=4096)


class Sources(_Strict):
    generic: GenericSource | None = None
    mastodon: MastodonSource | None = None
    x: XSource | None = None
    meta: MetaSource | None = None
    bluesky: BlueskySource | None = None
    google_reviews: GoogleReviewsSource | None = None


class Followup(_Strict):
    after: Duration
    text: str = Field(min_length=1)


class SavedReply(_Strict):
    title: str = Field(min_length=1, max_length=75)
    text: str = Field(min_length=1)


class Targets(_Strict):
    """Response-time targets per priority, in business time (business_hours), else around the clock."""

    urgent: Duration = 900.0
    high: Duration = 1800.0
    normal: Duration = 3600.0
    low: Duration = 14400.0

    def for_priority(self, priority: str) -> float:
        return float(getattr(self, priority, self.normal))


class BusinessHoursConfig(_Strict):
    timezone: str
    weekly: dict[str, str] = Field(min_length=1)
    holidays: list[str] | dict[str, str] | None = None
    """Dates ("2026-12-24"), or a country from the `holidays` package: {country: DE} (optionally subdiv: BY)."""

    @model_validator(mode="after")
    def _valid(self) -> BusinessHoursConfig:
        from bot.core.hours import BusinessHours, HoursError

        try:
            BusinessHours.from_config(self.timezone, self.weekly, self.holidays)
        except HoursError as error:
            raise ValueError(str(error)) from None
        return self


class Vip(_Strict):
    handles: list[str] = []
    """Handles (with or without @, any case) whose messages are urgent business."""
    followers_at_least: int | None = Field(default=None, ge=1)


class OncallConfig(_Strict):
    """On-call rotations and dated overrides (bot.core.oncall), and the optional Slack user group kept equal to
    whoever is on call now."""

    rotations: list[dict[str, Any]] = []
    overrides: list[dict[str, Any]] = []
    usergroup: str | None = Field(default=None, pattern=r"^S[A-Z0-9]{2,}$")
    """A Slack user group (S…) whose members the bot keeps equal to whoever is on call (scope usergroups:write)."""

    @model_validator(mode="after")
    def _valid(self) -> OncallConfig:
        from bot.core.oncall import OncallError, Schedule

        try:
            Schedule.from_config({"rotations": self.rotations, "overrides": self.overrides})
        except OncallError as error:
            raise ValueError(str(error)) from None
        return self

    def schedule(self) -> Any:
        from bot.core.oncall import Schedule

        return Schedule.from_config({"rotations": self.rotations, "overrides": self.overrides})


class EscalationLevel(_Strict):
    """One level of the escalation policy: who is paged, how long after the escalation, and how often again."""

    after: Delay
    """Counted from the moment the case is escalated; level 1 is usually 0s."""
    notify: Literal["oncall"] | list[Annotated[str, Field(min_length=1)]]
    """"oncall" (whoever is on call now), or ids: people (Slack U…, Teams 29:…) or Slack user groups (S…)."""
    repeat_every: Duration | None = None
    """Reminders at this level until someone acknowledges (or the next level is paged)."""


class AwayMessage(_Strict):
    """Outside business hours, a new customer gets one automatic reply saying when the team is back."""

    text: str = Field(min_length=1)
    """{first_name} and {next_open} are filled in."""
    at_most_every: Duration = 43200.0
    """Never twice to the same customer within this time."""
    platforms: list[str] | None = None
    """Only on these platforms (e.g. [x, facebook]); default: every platform."""


DEFAULT_REPLY_PACE = {"x": 6.0, "mastodon": 1.5, "bluesky": 25.0, "facebook": 60.0, "instagram": 60.0,
                      "google": 60.0, "generic": 600.0}
"""Replies per minute per platform for Reply to all, below each platform's posting limit for one account: X's
100 posts per 15 minutes (leaving room for the team's own replies), Mastodon's 300 statuses per 3 hours, Bluesky's
5,000 points per hour at 3 points per post, Meta's and Google's per-hour call budgets."""


class StormsConfig(_Strict):
    """Grouping storms: `threshold` alike new items within `window` become one incident card."""

    threshold: int = Field(default=10, ge=2)
    window: Duration = 900.0
    keywords: list[Annotated[str, Field(min_length=1)]] = []
    """Words or phrases that make items alike when they share one (e.g. outage, "app down")."""
    ignore: list[Annotated[str, Field(min_length=1)]] = []
    """Never grouped on: the brand's own hashtags and sites ("#acme", "acme.com"), which many unrelated items carry."""
    update_every: Duration = 5.0
    """The incident card is updated at most this often, however fast members join."""
    reply_pace: dict[str, Annotated[float, Field(gt=0)]] = {}
    """Replies per minute per platform for Reply to all (defaults: DEFAULT_REPLY_PACE)."""

    def pace(self, platform: str) -> float:
        return float(self.reply_pace.get(platform, DEFAULT_REPLY_PACE.get(platform, 60.0)))

    def ignored_features(self) -> list[str]:
        """`ignore` as the detector's features ("#acme" → tag:acme, "acme.com/x" → link:acme.com/x, a word →
        kw:word), normalised by the detector itself so they match what it counts."""
        from bot.core.storms import feature_of

        return [feature_of(entry) for entry in self.ignore]


class Config(_Strict):
    slack: SlackConfig | None = None
    teams: TeamsConfig | None = None
    routes: list[Route] = []
    sources: Sources = Sources()
    followups: list[Followup] = []
    saved_replies: list[SavedReply] = []
    targets: Targets = Targets()
    business_hours: BusinessHoursConfig | None = None
    vip: Vip = Vip()
    complaint_words: dict[str, list[Annotated[str, Field(min_length=1)]]] = {}
    """Per language (any label: en, de…): words and phrases that make a message a complaint."""
    oncall: OncallConfig | None = None
    away_message: AwayMessage | None = None
    escalation: list[EscalationLevel] = []
    """The escalation policy; empty: an escalation pings slack.oncall / teams.oncall once, as before."""
    storms: StormsConfig | None = None
    """Grouping storms into incidents; None: every case gets its own card."""

    @field_validator("escalation")
    @classmethod
    def _levels_in_order(cls, levels: list[EscalationLevel]) -> list[EscalationLevel]:
        afters = [level.after for level in levels]
        if afters != sorted(afters) or len(set(afters)) != len(afters):
            raise ValueError("levels must come in order of `after`, each later than the one before")
        return levels

    @model_validator(mode="after")
    def _a_desk(self) -> Config:
        if self.slack is None and self.teams is None:
            raise ValueError("configure a desk: slack, teams, or both")
        return self

    @model_validator(mode="after")
    def _away_needs_hours(self) -> Config:
        if self.away_message is not None and self.business_hours is None:
            raise ValueError("away_message needs business_hours (it is sent outside them)")
        return self

    @property
    def desks(self) -> tuple[str, ...]:
        """The chat desks every case is shown in."""
        return tuple(name for name, desk in (("slack", self.slack), ("teams", self.teams)) if desk is not None)

    def _route(self, platform: str, kind: str, pick: str) -> str | None:
        for route in self.routes:
            if route.when.platform not in (None, platform) or route.when.kind not in (None, kind):
                continue
            value = getattr(route, pick)
            if value is not None:
                return str(value)
        return None

    def channel_for(self, *, platform: str, kind: str) -> str:
        """The Slack channel of a new case ("" without a Slack desk)."""
        if self.slack is None:
            return ""
        return self._route(platform, kind, "channel") or self.slack.channel

    def teams_channel_for(self, *, platform: str, kind: str) -> str:
        """The Teams channel of a case ("" without a Teams desk)."""
        if self.teams is None:
            return ""
        return self._route(platform, kind, "teams_channel") or self.teams.channel


def _describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"]
        if problem["type"] == "missing":
            message = "is required"
        elif problem["type"] == "extra_forbidden":
            message = "is not a known key"
        message = message.removeprefix("Value error, ")
        lines.append(f"{key}: {message}")
    return "; ".join(lines)


def config_from_mapping(data: Mapping[str, Any]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"SOCIALOPS_CONFIG: cannot read {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with at least a 'slack' or 'teams' key")
    return config_from_mapping(data)


class Settings(BaseModel):
    """Deployment settings and secrets, from the environment only."""

    model_config = ConfigDict(frozen=True)

    database_url: str = "sqlite:///socialops.db"
    port: int = 3000
    host: str = "0.0.0.0"
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str | None = None
    config_path: str = "socialops.yml"
    slack_pace_s: float = 1.0
    """Seconds between two messages to one channel (Slack allows about one per second)."""
    outbox_lease_s: float = 60.0
    """How long a copy may hold an outbox row before another copy may take it (after a crash)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, slack: bool = True) -> Settings:
        """`slack` False: no Slack desk is configured, so no Slack credentials are needed."""
        env = os.environ if env is None else env
        problems: list[str] = []
        port_text = env.get("PORT", "3000")
        try:
            port = int(port_text)
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            problems.append(f"PORT: {port_text!r} is not a TCP port number")
            port = 3000
        token = env.get("SLACK_BOT_TOKEN") or None
        secret = env.get("SLACK_SIGNING_SECRET") or None
        app_token = env.get("SLACK_APP_TOKEN") or None
        if not slack:
            pass
        elif not token:
            problems.append("SLACK_BOT_TOKEN: set it to the app's Bot User OAuth Token (xoxb-…)")
        elif not token.startswith("xoxb-"):
            problems.append("SLACK_BOT_TOKEN: expected a bot token starting with xoxb-")
        if slack and not secret and not app_token:
            problems.append("SLACK_SIGNING_SECRET: set it to the app's Signing Secret (Basic Information)")
        if slack and app_token and not app_token.startswith("xapp-"):
            problems.append("SLACK_APP_TOKEN: expected an app-level token starting with xapp-")
        api_url = env.get("SLACK_API_URL") or None
        if api_url and not api_url.startswith(("http://", "https://")):
            problems.append("SLACK_API_URL: must start with http:// or https://")
        if api_url and not api_url.endswith("/"):
            api_url += "/"
        lease = 60.0
        if env.get("SOCIALOPS_OUTBOX_LEASE"):
            try:
                lease = parse_duration(env["SOCIALOPS_OUTBOX_LEASE"])
            except ValueError as error:
                problems.append(f"SOCIALOPS_OUTBOX_LEASE: {error}")
        pace = 1.0
        if env.get("SOCIALOPS_SLACK_PACE"):
            try:
                pace = float(env["SOCIALOPS_SLACK_PACE"])
                if not 0 <= pace <= 60:
                    raise ValueError
            except ValueError:
                problems.append("SOCIALOPS_SLACK_PACE: seconds between messages to one channel, 0 to 60")
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(
            database_url=env.get("DATABASE_URL") or "sqlite:///socialops.db",
            port=port,
            host=env.get("HOST") or "0.0.0.0",
            slack_bot_token=token,
            slack_signing_secret=secret,
            slack_app_token=app_token,
            slack_api_url=api_url,
            config_path=env.get("SOCIALOPS_CONFIG") or "socialops.yml",
            outbox_lease_s=lease,
            slack_pace_s=pace,
        )
