"""A burst of new cases reaches Slack at Slack's pace, and a 429 holds every post back for its Retry-After."""

from __future__ import annotations

import json
from itertools import pairwise

from tests.conftest import bot_config, start_bot
from tests.fakes.slack_api import FakeSlack
from tests.kit.wait import eventually
from tests.kit.webhook import event, signed


async def test_a_burst_is_posted_at_the_channel_pace_and_waits_out_a_429(database_url: str,
                                                                        fake_slack: FakeSlack) -> None:
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=1)
    runtime, http = await start_bot(database_url, fake_slack, bot_config(), slack_pace=0.25)
    try:
        for i in range(8):
            body, headers = signed(event(f"burst-{i}", f"burst message {i}", author_id=f"b{i}"))
            assert (await http.post("/webhooks/generic", content=body, headers=headers)).status_code == 202
        await eventually(lambda: len(fake_slack.messages("C0CASES")) == 8, timeout=20)
        posts = [c for c in fake_slack.calls("chat.postMessage") if c["params"].get("channel") == "C0CASES"]
        assert posts[0]["status"] == 429
        accepted = [c["time"] for c in posts if c["status"] == 200]
        assert accepted[0] - posts[0]["time"] >= 0.95, "nothing was posted during Retry-After"
        gaps = [b - a for a, b in pairwise(accepted)]
        assert min(gaps) >= 0.2, f"posts to one channel came {min(gaps):.3f}s apart"
        shown = [json.dumps(m["blocks"]) for m in fake_slack.messages("C0CASES")]
        assert all(sum(f"burst message {i}" in s for s in shown) == 1 for i in range(8))
    finally:
        await http.aclose()
        await runtime.stop()
        runtime.engine.dispose()
