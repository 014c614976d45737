"""`/social stats` over a million cases on SQLite.

Generates, with bulk SQL into a database migrated by storage.db.migrate: 1,000,000 cases opened over the
last 60 days (platform and kind mix; ~70% answered with first_response_s; ~60% resolved with resolution_s;
owners among 20 agents; ~3% escalated), their audit events (open, claim, reply, reply_sent, escalate,
resolve: ~4 per case) and one sent reply per answered case. Then fills the daily rollups from those rows with
bot.services.rollups.rebuild(engine) (timed: it is also the backfill), times bot.services.stats.stats(engine,
period) for today, 7d and 30d (5 runs each, median and max), and the same through the real slash command
path: a signed `/social stats <period>` POSTed to the bot's /slack/events (uvicorn, its own process).
Bolt gives a listener 3 s to ack; a slower command gets HTTP 404 "unhandled request" (Slack: a timeout).
Run: .venv/bin/python bench/stats.py [--cases 1000000] [--runs 5] [--command-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, median, session, slash_command, start_bot, start_fake_slack, table
from bot.services.rollups import rebuild
from bot.services.stats import stats
from storage.db import make_engine, migrate

PERIODS = ["today", "7d", "30d"]
AGENTS = 20


def ts(epoch: str) -> str:
    """SQL turning a unix-epoch REAL into the text SQLAlchemy stores for a DateTime on SQLite."""
    return (f"(strftime('%Y-%m-%d %H:%M:%S', {epoch}, 'unixepoch') || "
            f"printf('.%06d', CAST(({epoch} - CAST({epoch} AS INTEGER)) * 1000000 AS INTEGER)))")


def generate(db: Path, cases: int) -> dict[str, int]:
    """Fill the migrated database; returns row counts."""
    now = time.time()
    start = now - 60 * 86400
    step = 60 * 86400 / cases
    connection = sqlite3.connect(db)
    # Bulk-load settings for this connection only; the file goes back to WAL (what the bot uses) at the end.
    connection.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-400000; "
                             "PRAGMA temp_store=MEMORY;")
    # One row per case with its random draws; everything else is derived from it.
    connection.execute(f"""
        CREATE TEMP TABLE gen AS
        WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {cases}),
        draws AS MATERIALIZED (  -- each random() drawn once: SQLite re-evaluates it per reference otherwise
            SELECT n, {start} + (n - 1) * {step} + (abs(random()) % 1000) / 1000.0 * {step} AS opened,
                   abs(random()) % 100 AS p, abs(random()) % 100 AS k, abs(random()) % 100 AS answered,
                   abs(random()) % 100 AS resolved, abs(random()) % 100 AS claimed, abs(random()) % 100 AS esc,
                   abs(random()) % {AGENTS} AS agent, (abs(random()) % 100000) / 100000.0 AS u1,
                   (abs(random()) % 100000) / 100000.0 AS u2
            FROM seq),
        timed AS (
            SELECT *, CASE WHEN answered < 70 THEN 20 + u1 * u1 * u1 * u1 * 86400 END AS frs,
                   60 + u2 * u2 * 3 * 86400 AS res_extra FROM draws)
        SELECT n, opened, p, k, agent, esc < 3 AS escalated,
               CASE WHEN opened + frs < {now} THEN frs END AS frs,
               CASE WHEN answered < 70 AND resolved < 86 AND opened + frs + res_extra < {now}
                    THEN frs + res_extra END AS res,
               answered < 70 OR claimed < 50 AS owned
        FROM timed
    """)
    platform = ("CASE WHEN p < 40 THEN 'x' WHEN p < 65 THEN 'facebook' WHEN p < 85 THEN 'instagram' "
                "WHEN p < 95 THEN 'trustpilot' ELSE 'mastodon' END")
    kind = "CASE WHEN k < 50 THEN 'mention' WHEN k < 75 THEN 'comment' WHEN k < 90 THEN 'dm' ELSE 'review' END"
    owner = "CASE WHEN owned THEN printf('U0AGENT%03d', agent) END"
    owner_name = "CASE WHEN owned THEN 'Agent ' || agent END"
    status = "CASE WHEN res IS NOT NULL THEN 'resolved' WHEN owned THEN 'claimed' ELSE 'open' END"
    connection.execute(f"""
        INSERT INTO cases (id, platform, conversation, kind, status, channel, customer_id, customer_name,
            customer_handle, customer_followers, owner, owner_name, escalated, escalation_reason, escalated_by,
            resolution_note, resolved_by, reopened, cycle, first_responder, opened_at, last_message_at,
            first_response_at, first_response_s, resolved_at, resolution_s, escalated_at, updated_at)
        SELECT n, {platform}, printf('conv-%08d', n), {kind}, {status},
            CASE WHEN k BETWEEN 75 AND 89 THEN 'C0DMS' ELSE 'C0CASES' END,
            'cust-' || (n % 300000), 'Customer ' || (n % 300000), '@cust' || (n % 300000), (n * 7919) % 20000,
            {owner}, {owner_name}, escalated AND res IS NULL,
            CASE WHEN escalated THEN 'Threatening legal action' END,
            CASE WHEN escalated THEN 'Agent ' || agent END,
            CASE WHEN res IS NOT NULL THEN 'Refund issued' END, CASE WHEN res IS NOT NULL THEN {owner} END,
            0, CASE WHEN res IS NOT NULL THEN 1 ELSE 0 END, CASE WHEN frs IS NOT NULL THEN {owner} END,
            {ts('opened')}, {ts('opened')},
            CASE WHEN frs IS NOT NULL THEN {ts('opened + frs')} END, frs,
            CASE WHEN res IS NOT NULL THEN {ts('opened + res')} END, res,
            CASE WHEN escalated THEN {ts('opened + 300')} END,
            {ts('opened + coalesce(res, frs, 0)')}
        FROM gen ORDER BY n
    """)

    def events(action: str, at: str, where: str, actor: str = owner, name: str = owner_name,
               detail: str = "'{}'") -> None:
        connection.execute(f"""
            INSERT INTO events (case_id, action, actor, actor_name, desk, detail, at)
            SELECT n, '{action}', {actor}, {name}, 'slack', {detail}, {ts(at)} FROM gen WHERE {where} ORDER BY n
        """)

    events("open", "opened", "1", actor="NULL", name="NULL", detail="json_object('platform_id', 'evt-' || n)")
    events("claim", "opened + coalesce(frs, 600) / 2", "owned")
    events("reply", "opened + frs - 15", "frs IS NOT NULL", detail="json_object('reply_id', n)")
    events("reply_sent", "opened + frs", "frs IS NOT NULL", detail="json_object('reply_id', n)")
    events("escalate", "opened + 300", "escalated", detail="json_object('reason', 'Threatening legal action')")
    events("resolve", "opened + res", "res IS NOT NULL",
           detail="json_object('note', 'Refund issued', 'resolution_s', res)")
    connection.execute(f"""
        INSERT INTO replies (id, case_id, kind, text, author, author_name, status, idempotency_key, platform_id,
            url, error, attempts, created_at, sent_at)
        SELECT n, n, 'reply', 'Hi, sorry about that. Could you DM us your order number?', {owner}, {owner_name},
            'sent', printf('socialops-bench-%08d', n), 'msg-' || n, 'https://x.example/status/msg-' || n, NULL, 1,
            {ts('opened + frs - 15')}, {ts('opened + frs')}
        FROM gen WHERE frs IS NOT NULL ORDER BY n
    """)
    connection.commit()
    counts = {table: int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
              for table in ("cases", "events", "replies")}
    connection.execute("DROP TABLE gen")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.close()
    return counts


def time_direct(url: str, runs: int) -> dict[str, list[float]]:
    engine = make_engine(url)
    timings: dict[str, list[float]] = {}
    try:
        for period in PERIODS:
            timings[period] = []
            for _ in range(runs):
                started = time.perf_counter()
                view = stats(engine, period)
                timings[period].append((time.perf_counter() - started) * 1000)
            print(f"  stats({period!r}): new {view.new:,}, resolved {view.resolved:,}, escalated {view.escalated:,}, "
                  f"first response p50 {view.first_response_median_s or 0:,.0f}s, "
                  f"{len(view.per_person)} people; runs {', '.join(f'{t:.0f}' for t in timings[period])} ms",
                  flush=True)
    finally:
        engine.dispose()
    return timings


async def time_command(url: str, runs: int, tmp: Path, direct: dict[str, list[float]],
                       ) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Response times of signed `/social stats <period>` commands, and how many were not answered in time.

    After a timeout the bot's worker thread is still computing; wait about as long as stats() takes before
    the next command, so one command's leftover work does not slow the next one down.
    """
    timings: dict[str, list[float]] = {period: [] for period in PERIODS}
    failed = dict.fromkeys(PERIODS, 0)
    slack, slack_url = await start_fake_slack(tmp)
    async with slack:
        bot, base = await start_bot(tmp, url, slack_url, slack_pace=1.0)
        async with bot, session(1) as http:
            body, headers = slash_command("help")  # warms Bolt up (its one auth.test call)
            async with http.post(base + "/slack/events", data=body, headers=headers) as response:
                await response.read()
            for period in [p for p in PERIODS for _ in range(runs)]:
                body, headers = slash_command(f"stats {period}")
                started = time.perf_counter()
                async with http.post(base + "/slack/events", data=body, headers=headers) as response:
                    answer = await response.read()
                timings[period].append((time.perf_counter() - started) * 1000)
                if response.status != 200 or b'"blocks"' not in answer:
                    failed[period] += 1
                    print(f"  /social stats {period}: HTTP {response.status} {answer[:80]!r} after "
                          f"{timings[period][-1]:.0f} ms")
                    await asyncio.sleep(max(0.0, median(direct[period]) - timings[period][-1]) / 1000 + 0.5)
    for period in PERIODS:
        print(f"  /social stats {period}: {', '.join(f'{t:.0f}' for t in timings[period])} ms", flush=True)
    return timings, failed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--command-runs", type=int, default=3, help="runs per period through /slack/events; 0 skips")
    args = parser.parse_args()
    print(f"/social stats over {args.cases:,} cases on SQLite; {machine()}")
    with tempfile.TemporaryDirectory(prefix="socialops-bench-") as directory:
        tmp = Path(directory)
        db = tmp / "stats.db"
        url = f"sqlite:///{db}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        started = time.perf_counter()
        counts = generate(db, args.cases)
        print(f"  generated {', '.join(f'{n:,} {t}' for t, n in counts.items())} in "
              f"{time.perf_counter() - started:.1f}s ({db.stat().st_size / 2**20:,.0f} MiB)", flush=True)
        engine = make_engine(url)
        started = time.perf_counter()
        rollups = rebuild(engine)
        rebuild_s = time.perf_counter() - started
        engine.dispose()
        print(f"  rollups.rebuild: {rollups:,} daily_counts rows in {rebuild_s:.1f}s", flush=True)
        direct = time_direct(url, args.runs)
        command = await time_command(url, args.command_runs, tmp, direct) if args.command_runs else None
    rows = []
    for period in PERIODS:
        row = [period, f"{median(direct[period]):.0f}", f"{max(direct[period]):.0f}"]
        if command is not None:
            timings, failed = command
            row += [f"{median(timings[period]):.0f}", f"{max(timings[period]):.0f}",
                    f"{failed[period]}/{len(timings[period])}"]
        rows.append(row)
    headers = ["period", "stats() median ms", "max ms"]
    if command is not None:
        headers += ["/social stats HTTP median ms", "max ms", "not answered in 3 s"]
    print()
    print(table(headers, rows))
    print(f"(stats(): {args.runs} runs each, slash command: {args.command_runs} runs each; target < 300 ms)")
    print(f"rollups.rebuild over {args.cases:,} cases: {rebuild_s:.1f}s ({rollups:,} rows)")


if __name__ == "__main__":
    asyncio.run(main())
