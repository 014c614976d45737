"""What every desk calls things: platform and kind names, and the ids of the case actions.

Action ids are constants shared by Slack's action_id and Teams' Action.Execute verb: renaming code must never
break buttons on cards already posted, in either desk.
"""

from __future__ import annotations

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

PLATFORM_NAMES = {"mastodon": "Mastodon", "generic": "Webhook", "x": "X", "facebook": "Facebook",
                  "instagram": "Instagram", "bluesky": "Bluesky", "google": "Google reviews"}
KIND_NAMES = {"mention": "mention", "dm": "DM", "comment": "comment", "review": "review", "tag": "tag"}


def platform_name(platform: str) -> str:
    return PLATFORM_NAMES.get(platform, platform.capitalize())


def kind_name(kind: str) -> str:
    return KIND_NAMES.get(kind, kind)
