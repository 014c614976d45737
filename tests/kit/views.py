"""Neutral case views for rendering tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.core.view import CaseView


def case_view(text: str = "hi", **changes: object) -> CaseView:
    """An open Mastodon mention, case #42, with `changes` applied."""
    base: dict[str, Any] = dict(
        id=42, platform="mastodon", kind="mention", status="open", channel="C0CASES",
        customer_name="Jane Doe", customer_handle="@jane@social.example", customer_followers=1234,
        text=text, url="https://social.example/@jane/1", rating=None,
        opened_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC), messages=1, owner=None, owner_name=None,
        escalated=False, escalation_reason=None, escalated_by=None, reopened=0, resolved_by=None,
        resolution_note=None, last_reply=None, actions=("claim", "reply", "escalate", "resolve"),
    )
    base.update(changes)
    return CaseView(**base)
