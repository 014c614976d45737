"""The emulated workspace as the sandbox uses it: triggers tied to people, stacked modals, refusals shown."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bot.sandbox import workspace as ws
from bot.sandbox.server import Sandbox
from bot.sandbox.workspace import Workspace

MODAL = {"type": "modal", "title": {"type": "plain_text", "text": "Reply"},
         "submit": {"type": "plain_text", "text": "Send"}, "blocks": []}


def strict() -> Workspace:
    return Workspace(token="xoxb-t", strict_triggers=True)


def test_a_modal_opens_for_the_person_whose_click_made_the_trigger() -> None:
    space = strict()
    answer = space.handle("views.open", {"trigger_id": space.issue_trigger("U0ALICE"), "view": MODAL})
    assert answer["ok"] is True
    assert list(space.views("U0ALICE")) == [answer["view"]["id"]] and space.views("U0BOB") == {}


@pytest.mark.parametrize("trigger", ["made-up", ""])
def test_unknown_triggers_are_refused(trigger: str) -> None:
    space = strict()
    assert space.handle("views.open", {"trigger_id": trigger, "view": MODAL})["error"] == "invalid_trigger_id"
    assert space.views() == {}


def test_a_trigger_works_once_and_expires_after_three_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    space = strict()
    trigger = space.issue_trigger("U0ALICE")
    assert space.handle("views.open", {"trigger_id": trigger, "view": MODAL})["ok"] is True
    assert space.handle("views.open", {"trigger_id": trigger, "view": MODAL})["error"] == "invalid_trigger_id"
    late = space.issue_trigger("U0ALICE")
    now = ws.time.monotonic()
    monkeypatch.setattr(ws.time, "monotonic", lambda: now + 3.5)
    assert space.handle("views.open", {"trigger_id": late, "view": MODAL})["error"] == "expired_trigger_id"


def test_views_push_stacks_up_to_three_and_open_replaces_the_stack() -> None:
    space = strict()
    first = space.handle("views.open", {"trigger_id": space.issue_trigger("U0BOB"), "view": MODAL})["view"]["id"]
    for _ in range(2):
        assert space.handle("views.push", {"trigger_id": space.issue_trigger("U0BOB"), "view": MODAL})["ok"]
    assert len(space.views("U0BOB")) == 3 and next(iter(space.views("U0BOB"))) == first
    over = space.handle("views.push", {"trigger_id": space.issue_trigger("U0BOB"), "view": MODAL})
    assert over["error"] == "push_limit_reached"
    space.handle("views.open", {"trigger_id": space.issue_trigger("U0BOB"), "view": MODAL})
    assert len(space.views("U0BOB")) == 1 and first not in space.views("U0BOB")


async def test_a_message_slack_would_refuse_is_shown_as_an_error_in_the_page() -> None:
    space = strict()
    async with httpx.AsyncClient() as loopback:
        sandbox = Sandbox(workspace=space, base_url="http://127.0.0.1:9", signing_secret="s", generic_secret="g",
                          http=loopback)
        too_long: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
        web = Starlette(routes=sandbox.routes())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://sandbox") as page:
            posted = await page.post("/sandbox/slack/api/chat.postMessage",
                                     headers={"Authorization": "Bearer xoxb-t"},
                                     json={"channel": "C0CASES", "text": "t", "blocks": [too_long]})
            assert posted.json()["error"] == "invalid_blocks"
            forged = await page.post("/sandbox/slack/api/chat.postMessage", headers={"Authorization": "Bearer no"},
                                     json={"channel": "C0CASES", "text": "t"})
            assert forged.json() == {"ok": False, "error": "invalid_auth"}
            state = (await page.get("/sandbox/ui/state", params={"user": "U0ALICE"})).json()
    assert state["messages"] == []
    [refused] = state["errors"]
    assert refused["method"] == "chat.postMessage" and refused["error"] == "invalid_blocks"
    assert refused["details"] == ["must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]
