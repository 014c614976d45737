"""Interaction acknowledgement latency: 50 simultaneous Claim clicks on 50 cases, several rounds.

Set-up (untimed): the real bot (app.build, uvicorn, its own process) and the fake Slack (its own process);
50 cases created through the signed generic webhook; their cards fetched from the fake Slack once posted,
so each click carries the card's real message payload. Each round, 50 different agents click Claim on
the 50 cards at once (form-encoded signed `payload=`, as tests/kit/slack.py builds it); the time from
sending to having read the HTTP answer is recorded. Between rounds (untimed) the outbox is left to
deliver what the claims owe Slack, then the agents click Release, so every timed click is a real claim.
The same rounds go to a bare Bolt app whose Claim listener only acks (the floor), served the same way.
Run: .venv/bin/python bench/clicks.py [--rounds 10] [--clicks 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CASES_CHANNEL,
    Child,
    Request,
    blast,
    block_action,
    card_case_id,
    event,
    machine,
    median,
    percentile,
    session,
    slack_form,
    slack_history,
    start_bot,
    start_fake_slack,
    table,
    timed_post,
    wait_until_settled,
    webhook_request,
)

CLAIM, RELEASE = "case.claim", "case.release"


def agent(i: int) -> tuple[str, str]:
    return f"U0AGENT{i:03d}", f"Agent {i}"


def click(action_id: str, card: dict[str, Any], i: int) -> Request:
    user_id, name = agent(i)
    case_id = card_case_id(card)
    message = {key: value for key, value in card.items() if key != "metadata"}  # Slack does not echo metadata
    payload = block_action(user_id=user_id, name=name, action_id=action_id, value=str(case_id),
                           channel=CASES_CHANNEL, message=message)
    return slack_form(payload)


async def cards(slack_url: str, case_ids: set[int], within: float = 60.0) -> dict[int, dict[str, Any]]:
    """The current card of each case, once the fake Slack has all of them."""
    deadline = time.monotonic() + within
    async with session(2) as http:
        while True:
            found = {card_case_id(m): m for m in await slack_history(http, slack_url, CASES_CHANNEL)}
            if case_ids <= found.keys():
                return {case_id: found[case_id] for case_id in case_ids}
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(case_ids & found.keys())} of {len(case_ids)} cards appeared")
            await asyncio.sleep(0.1)


async def burst(url: str, requests: list[Request]) -> tuple[list[float], dict[int, int]]:
    """All requests at once, each on its own connection; (latencies in ms, count per status)."""
    async with session(len(requests)) as http:
        results = await asyncio.gather(*(timed_post(http, url, request) for request in requests))
    statuses: dict[int, int] = {}
    for status, _, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    return [seconds * 1000 for _, seconds, _ in results], statuses


def summary(latencies: list[float]) -> tuple[float, float, float]:
    return percentile(latencies, 0.5), percentile(latencies, 0.99), max(latencies)


async def wait_for_events(db: Path, action: str, count: int, within: float = 60.0) -> None:
    """Until the audit log holds `count` events of `action` (or `within` seconds passed)."""
    for _ in range(int(within / 0.05)):
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            done = connection.execute("SELECT count(*) FROM events WHERE action = ?", (action,)).fetchone()[0]
        finally:
            connection.close()
        if done >= count:
            return
        await asyncio.sleep(0.05)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--clicks", type=int, default=50)
    parser.add_argument("--slack-pace", type=float, default=0.01,
                        help="seconds between Slack posts per channel (production 1.0; small so set-up is quick)")
    args = parser.parse_args()
    print(f"Claim acknowledgement: {args.rounds} rounds of {args.clicks} simultaneous clicks; {machine()}")
    with tempfile.TemporaryDirectory(prefix="socialops-bench-") as directory:
        tmp = Path(directory)
        db = tmp / "bot.db"
        slack, slack_url = await start_fake_slack(tmp)
        bot, base = await start_bot(tmp, f"sqlite:///{db}", slack_url, slack_pace=args.slack_pace)
        floor = Child("bolt-floor", "--slack-url", slack_url, log_dir=tmp)
        async with slack, bot, floor:
            floor_base = f"http://127.0.0.1:{await floor.start()}"
            events = [webhook_request(event(f"click-{i}", conversation=f"click-conv-{i}", author=i))
                      for i in range(args.clicks)]
            async with session(8) as http:
                _, statuses = await blast(http, base + "/webhooks/generic", events, 8)
            assert statuses == {202: args.clicks}, statuses
            connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            case_ids = {int(row[0]) for row in connection.execute("SELECT id FROM cases")}
            connection.close()
            await cards(slack_url, case_ids)
            await wait_until_settled(db)

            real: list[list[float]] = []
            bare: list[list[float]] = []
            for round_no in range(args.rounds + 1):  # round 0 warms both servers up and is not counted
                current = list((await cards(slack_url, case_ids)).values())
                claims = [click(CLAIM, card, i) for i, card in enumerate(current)]
                latencies, statuses = await burst(base + "/slack/events", claims)
                # The bot acks before it works: wait for the work (claims recorded, Slack told) to be done,
                # so it neither overlaps the floor's burst nor races the releases below.
                await wait_for_events(db, "claim", (round_no + 1) * len(claims))
                await wait_until_settled(db)
                floor_latencies, floor_statuses = await burst(floor_base + "/slack/events", claims)
                if statuses != {200: len(claims)} or floor_statuses != {200: len(claims)}:
                    print(f"  round {round_no}: real answered {statuses}, floor {floor_statuses}")
                released = [click(RELEASE, card, i) for i, card in enumerate(current)]
                await burst(base + "/slack/events", released)
                await wait_for_events(db, "release", (round_no + 1) * len(released))
                await wait_until_settled(db)
                if round_no == 0:
                    continue
                real.append(latencies)
                bare.append(floor_latencies)
                p50, p99, worst = summary(latencies)
                f50, f99, fworst = summary(floor_latencies)
                print(f"  round {round_no:2d}: real p50 {p50:5.1f} p99 {p99:5.1f} max {worst:5.1f} ms | "
                      f"bare Bolt p50 {f50:5.1f} p99 {f99:5.1f} max {fworst:5.1f} ms", flush=True)

            connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            claims_logged = connection.execute("SELECT count(*) FROM events WHERE action = 'claim'").fetchone()[0]
            connection.close()
            expected = (args.rounds + 1) * args.clicks
            if claims_logged != expected:
                print(f"  the audit log has {claims_logged} claims, expected {expected}")

    rows = []
    for name, rounds in [("real bot", real), ("bare Bolt (floor)", bare)]:
        pooled = [value for latencies in rounds for value in latencies]
        p50, p99, worst = summary(pooled)
        per_round = [summary(latencies) for latencies in rounds]
        rows.append([name, f"{p50:.1f}", f"{p99:.1f}", f"{worst:.1f}",
                     f"{median([r[0] for r in per_round]):.1f}", f"{median([r[1] for r in per_round]):.1f}"])
    print()
    print(table(["ack latency, ms", "p50", "p99", "max", "median round p50", "median round p99"], rows))
    print(f"({args.rounds * args.clicks} clicks each; target: real p99 < 50 ms)")


if __name__ == "__main__":
    asyncio.run(main())
