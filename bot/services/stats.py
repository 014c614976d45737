"""`/social stats`: the numbers a support lead asks for, from the daily rollups.

A period is whole UTC days ending today: `today`, `7d` (the last 7 days including today) or `30d`.
Its figures are sums of `daily_counts` rows (bot.services.rollups; at most a few thousand rows for
30 days), plus one count of the cases open or claimed now (`ix_cases_status`), so the answer stays
well within Slack's 3 seconds whatever the number of cases. Medians and p90 come from the duration
buckets (see `rollups.percentile`), precise to the bucket (a few minutes at an hour, hours at a day).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from bot.core.errors import InvalidInput
from bot.core.model import Status
from bot.core.priority import PRIORITIES
from bot.core.view import StatsView
from bot.services import incidents, rollups
from storage.db import transaction
from storage.tables import CaseRow, DailyCountRow, utcnow

PERIODS = {"today": 1, "7d": 7, "30d": 30}
"""Days in each period, today included."""

DAILY = DailyCountRow.__table__  # type: ignore[attr-defined]
CASES = CaseRow.__table__  # type: ignore[attr-defined]
PEOPLE = (rollups.PERSON_CLAIM, rollups.PERSON_REPLY, rollups.PERSON_RESOLVE)


def period_days(period: str, now: datetime) -> tuple[date, date]:
    """The first and last UTC day of the period."""
    if period not in PERIODS:
        raise InvalidInput(f"Unknown period {period!r}: use today, 7d or 30d.")
    today = rollups.day_of(now)
    return today - timedelta(days=PERIODS[period] - 1), today


def period_start(period: str, now: datetime) -> datetime:
    """Midnight UTC of the period's first day."""
    first, _ = period_days(period, now)
    return datetime.combine(first, time(), tzinfo=UTC)


def compute(session: Session, period: str = "today", *, now: datetime | None = None) -> StatsView:
    now = now or utcnow()
    first, last = period_days(period, now)
    in_period = (DAILY.c.day >= first, DAILY.c.day <= last)
    connection = session.connection()

    totals: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
    for metric, dim1, dim2, value in connection.execute(
        select(DAILY.c.metric, DAILY.c.dim1, DAILY.c.dim2, func.sum(DAILY.c.value))
        .where(*in_period).group_by(DAILY.c.metric, DAILY.c.dim1, DAILY.c.dim2)
    ):
        totals[metric][(dim1, dim2)] = int(value)
    # A person's name: the label of their latest day in the period (the last row wins). Within a day the
    # order is fixed by metric, not by row id, so a rebuild (new ids) shows the same name.
    names = {dim1: label for dim1, label in connection.execute(
        select(DAILY.c.dim1, DAILY.c.label)
        .where(*in_period, DAILY.c.metric.in_(PEOPLE), DAILY.c.label.is_not(None))
        .order_by(DAILY.c.day, DAILY.c.metric)
    )}
    now_counts = {status: int(count) for status, count in connection.execute(
        select(CASES.c.status, func.count()).where(CASES.c.status.in_([Status.OPEN, Status.CLAIMED]))
        .group_by(CASES.c.status)
    )}

    def total(metric: str) -> int:
        return sum(totals[metric].values())

    def buckets(metric: str) -> dict[int, int]:
        return {int(index): n for (index, _), n in totals[metric].items() if index.isdigit()}

    by_platform_kind = sorted(
        ((platform, kind, n) for (platform, kind), n in totals[rollups.NEW].items() if n),
        key=lambda row: (-row[2], row[0], row[1]),
    )
    new, answered = total(rollups.NEW), total(rollups.ANSWERED)
    people: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for position, metric in enumerate(PEOPLE):
        for (user, _), n in totals[metric].items():
            if user:
                people[user][position] += n
    per_person = sorted(
        ((user, names.get(user) or user, claims, replies, resolves)
         for user, (claims, replies, resolves) in people.items()),
        key=lambda row: (-(row[2] + row[3] + row[4]), row[1]),
    )
    first_response = buckets(rollups.FIRST_RESPONSE)
    met, missed = total(rollups.TARGET_MET), total(rollups.TARGET_MISSED)
    return StatsView(
        period=period, since=period_start(period, now), new=new, open_now=now_counts.get(Status.OPEN, 0),
        claimed_now=now_counts.get(Status.CLAIMED, 0), resolved=total(rollups.RESOLVED),
        escalated=total(rollups.ESCALATED), by_platform_kind=by_platform_kind,
        first_response_median_s=rollups.percentile(first_response, 0.5),
        first_response_p90_s=rollups.percentile(first_response, 0.9),
        resolution_median_s=rollups.percentile(buckets(rollups.RESOLUTION), 0.5),
        response_rate=(answered / new) if new else None, per_person=per_person,
        within_target=(met / (met + missed)) if met + missed else None,
        ack_median_s=rollups.percentile(buckets(rollups.ACK), 0.5), acks=total(rollups.ACK),
        missed_by_priority=[(p, totals[rollups.TARGET_MISSED].get((p, ""), 0)) for p in PRIORITIES
                            if totals[rollups.TARGET_MISSED].get((p, ""), 0)],
        incidents=incidents.stats(session, period_start(period, now)),
    )


def stats(engine: Engine, period: str = "today") -> StatsView:
    with transaction(engine, write=False) as session:
        return compute(session, period)
