"""What every desk calls things: platform and kind names, and the ids of the case actions.

Action ids are constants shared by Slack's action_id and Teams' Action.Execute verb: renaming code must never
break buttons on cards already posted, in either desk.
"""

from __future__ import annotations

import re

CLAIM = "case.claim"
RELEASE = "case.release"
REPLY = "case.reply"
ESCALATE = "case.escalate"
RESOLVE = "case.resolve"
REOPEN = "case.reopen"
TAKE_OVER = "case.take_over"
RETRY = "reply.retry"
CHECKIN_SEND = "followup.send"
CHECKIN_SKIP = "followup.skip"
SAVED_REPLY = "reply.saved"
PRIORITY = "case.priority"
ACKNOWLEDGE = "case.acknowledge"
REPLY_ALL = "incident.reply_all"
"""Incident card: open the Reply to all form (value: the incident id)."""
RESOLVE_ALL = "incident.resolve_all"
SPLIT = "incident.split"
"""A member line in the incident's thread, or a member's own card: the case becomes its own again (value: case id)."""

PLATFORM_NAMES = {"mastodon": "Mastodon", "generic": "Webhook", "x": "X", "facebook": "Facebook",
                  "instagram": "Instagram", "bluesky": "Bluesky", "google": "Google reviews"}
KIND_NAMES = {"mention": "mention", "dm": "DM", "comment": "comment", "review": "review", "tag": "tag"}


def platform_name(platform: str) -> str:
    return PLATFORM_NAMES.get(platform, platform.capitalize())


def kind_name(kind: str) -> str:
    return KIND_NAMES.get(kind, kind)


PERIOD_NAMES = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days"}


def period_name(period: str) -> str:
    return PERIOD_NAMES.get(period, period)


def duration(seconds: float | None) -> str:
    """A response or resolution time as the stats show it: 45s, 12m, 3.5h, 2.1d ("–" for none)."""
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
"""A Slack user id."""
SLACK_PINGABLE = re.compile(r"^[UWS][A-Z0-9]{2,}$")
"""A Slack user or user group id: what the Slack desk can ping. Any other id in `notify` is a Teams person."""
