"""Daily rollups behind `/social stats`: counters per UTC day, bumped in the transaction they count.

Scanning and sorting cases and events takes seconds on a million cases (Slack allows 3); a period's
stats instead sum a few hundred `daily_counts` rows. Each use case bumps its counters in its own
transaction, so a rollup is exactly as committed as the change it counts. `rebuild` recomputes
every counter from the raw tables (a backfill, or a check that the bumps are right).

| metric | dim1 | dim2 | day (UTC) | bumped when |
| --- | --- | --- | --- | --- |
| `new` | platform | kind | case opened | ingest opens a case |
| `answered` | platform | kind | case opened | the case's first reply is sent |
| `fr_bucket` | bucket | | case opened | the case's first reply is sent (first-response time) |
| `resolved` | platform | kind | resolved | resolve |
| `res_bucket` | bucket | | resolved | resolve (time from opening to this resolve) |
| `escalated` | platform | kind | escalated | escalate, unless the case is already escalated |
| `person_claim` | Slack user id (label: name) | | claimed | claim, take over, the claim a reply makes |
| `person_reply` | Slack user id (label: name) | | sent | a reply (not a check-in) is sent, for its author |
| `person_resolve` | Slack user id (label: name) | | resolved | resolve, for the resolver |
| `target_met` | priority | | replied | a reply is sent before its response target |
| `target_missed` | priority | | missed | the target passes unanswered (the sweep), or a reply is sent late |
| `ack_bucket` | bucket | | acknowledged | an escalation is acknowledged (time from escalation) |

Durations are counted in buckets on a fixed log scale (`BOUNDARIES`): bucket *i* holds durations
in `[BOUNDARIES[i], BOUNDARIES[i + 1])`, stored as a zero-padded index ("00" … "28").
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Date,
    Engine,
    Insert,
    Select,
    case,
    cast,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from bot.core.model import Action, ReplyStatus
from storage.db import transaction
from storage.tables import CaseRow, DailyCountRow, EventRow, ReplyRow

DAILY = DailyCountRow.__table__  # type: ignore[attr-defined]
CASES = CaseRow.__table__  # type: ignore[attr-defined]
EVENTS = EventRow.__table__  # type: ignore[attr-defined]
REPLIES = ReplyRow.__table__  # type: ignore[attr-defined]

NEW = "new"
ANSWERED = "answered"
FIRST_RESPONSE = "fr_bucket"
RESOLVED = "resolved"
RESOLUTION = "res_bucket"
ESCALATED = "escalated"
PERSON_CLAIM = "person_claim"
PERSON_REPLY = "person_reply"
PERSON_RESOLVE = "person_resolve"
TARGET_MET = "target_met"
TARGET_MISSED = "target_missed"
ACK = "ack_bucket"

_M, _H, _D = 60.0, 3600.0, 86400.0
BOUNDARIES: tuple[float, ...] = (
    0.0, 30.0, 1 * _M, 2 * _M, 3 * _M, 5 * _M, 7.5 * _M, 10 * _M, 15 * _M, 20 * _M, 30 * _M, 45 * _M,
    1 * _H, 1.5 * _H, 2 * _H, 3 * _H, 4 * _H, 6 * _H, 8 * _H, 12 * _H, 18 * _H,
    1 * _D, 1.5 * _D, 2 * _D, 3 * _D, 5 * _D, 7 * _D, 14 * _D, 30 * _D, math.inf,
)
"""Bucket edges in seconds. Changing them invalidates stored buckets: run `rebuild` afterwards."""
LAST_BUCKET = len(BOUNDARIES) - 2


def day_of(moment: datetime) -> date:
    """The UTC day of an aware timestamp: the day a rollup counts it on."""
    return moment.astimezone(UTC).date()


def bucket_index(seconds: float) -> int:
    """The bucket a duration falls in; negative durations (clock skew) count as the first."""
    return min(max(bisect_right(BOUNDARIES, seconds) - 1, 0), LAST_BUCKET)


def bucket(seconds: float) -> str:
    """`bucket_index` as stored in `dim1`."""
    return f"{bucket_index(seconds):02d}"


def percentile(counts: Mapping[int, int], fraction: float) -> float | None:
    """The `fraction` quantile (0.5: median) of the durations counted per bucket index, in seconds.

    Linear interpolation inside the bucket where the cumulative count reaches `fraction × total`,
    taking the durations as spread evenly across that bucket (one value in the 3–5 minute bucket
    has a median of 4 minutes). The last, open-ended bucket reports its lower edge (30 days). None
    when nothing was counted.
    """
    positive = sorted((min(max(index, 0), LAST_BUCKET), n) for index, n in counts.items() if n > 0)
    total = sum(n for _, n in positive)
    if not total:
        return None
    rank = fraction * total
    seen = 0
    for index, n in positive:
        if seen + n >= rank:
            low, high = BOUNDARIES[index], BOUNDARIES[index + 1]
            if math.isinf(high):
                return low
            return low + (high - low) * max(rank - seen, 0.0) / n
        seen += n
    return BOUNDARIES[positive[-1][0]]  # only reached through rounding with fraction ≈ 1


@cache
def _upsert(dialect: str) -> Insert:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(DAILY)
    return statement.on_conflict_do_update(
        index_elements=["day", "metric", "dim1", "dim2"],
        set_={"value": DAILY.c.value + statement.excluded.value,
              "label": func.coalesce(statement.excluded.label, DAILY.c.label)},
    )


def bump(session: Session, *, day: date, metric: str, dim1: str = "", dim2: str = "", n: int = 1,
         label: str | None = None) -> None:
    """Add `n` to one day's counter (creating it at `n`), in the caller's transaction.

    One `INSERT … ON CONFLICT DO UPDATE`: concurrent bumps of the same counter add up, and the
    counter commits or rolls back with the change it counts. `label`, when given, replaces the stored one.
    """
    if isinstance(day, datetime):
        day = day_of(day)
    connection = session.connection()
    connection.execute(_upsert(connection.dialect.name), {
        "day": day, "metric": metric, "dim1": str(dim1), "dim2": str(dim2), "value": n, "label": label,
    })


def bump_many(session: Session, counts: Mapping[tuple[date, str, str, str], int]) -> None:
    """`bump` for a batch: {(day, metric, dim1, dim2): n}, one executemany, no labels.

    Counters are bumped in key order, so two concurrent batches lock shared counters in the same order
    (on PostgreSQL, bumping them in arrival order could deadlock two batches).
    """
    rows = [{"day": day, "metric": metric, "dim1": str(dim1), "dim2": str(dim2), "value": n, "label": None}
            for (day, metric, dim1, dim2), n in sorted(counts.items()) if n]
    if rows:
        connection = session.connection()
        connection.execute(_upsert(connection.dialect.name), rows)


# --- rebuild -------------------------------------------------------------------------------------

_COLUMNS = ["day", "metric", "dim1", "dim2", "value", "label"]


def _text(value: str) -> ColumnElement[Any]:
    """A constant inlined in the SQL (not a bound parameter), so GROUP BY and INSERT see one plain value."""
    assert "'" not in value
    return literal_column(f"'{value}'")


def _day(column: Any, dialect: str) -> ColumnElement[Any]:
    """The UTC date of a timestamp column, as the dialect stores a `date` (SQLite: 'YYYY-MM-DD' text)."""
    if dialect == "postgresql":
        return cast(func.timezone(_text("UTC"), column), Date)
    return func.date(column)


def _bucket(seconds: ColumnElement[Any]) -> ColumnElement[Any]:
    """`bucket()` in SQL: the same comparisons on the same floats, so rebuild and bumps agree."""
    whens = [(seconds < literal_column(repr(edge)), _text(f"{index:02d}"))
             for index, edge in enumerate(BOUNDARIES[1:-1])]
    return case(*whens, else_=_text(f"{LAST_BUCKET:02d}"))


def _counts(rows: Any, metric: str, dim1: Any, dim2: Any = None) -> Select[Any]:
    """count(*) per (day, dim1, dim2) of a subquery with a `day` column, as rows of `metric`; no label."""
    dims = [dim1] if dim2 is None else [dim1, dim2]
    return (select(rows.c.day, _text(metric), dim1, _text("") if dim2 is None else dim2, func.count(),
                   literal_column("NULL"))
            .group_by(rows.c.day, *dims))


def _statements(dialect: str) -> list[Insert]:
    into = DAILY.insert().from_select
    c = CASES.c
    opened = select(_day(c.opened_at, dialect).label("day"), c.platform, c.kind, c.first_response_s).subquery()
    answered = (select(opened).where(opened.c.first_response_s.is_not(None))).subquery()
    first_response = select(answered.c.day, _bucket(answered.c.first_response_s).label("bucket")).subquery()

    e = EVENTS.c
    resolves = (
        select(_day(e.at, dialect).label("day"), c.platform, c.kind,
               _bucket(e.detail["resolution_s"].as_float()).label("bucket"))
        .join_from(EVENTS, CASES, c.id == e.case_id).where(e.action == Action.RESOLVE)
    ).subquery()

    # An escalation counts unless the case was already escalated: its previous escalate or resolve
    # event (resolve clears the flag) is an escalate.
    sequence = (
        select(e.case_id, e.action, e.at,
               func.lag(e.action).over(partition_by=e.case_id, order_by=e.id).label("previous"))
        .where(e.action.in_([Action.ESCALATE, Action.RESOLVE]))
    ).subquery()
    escalations = (
        select(_day(sequence.c.at, dialect).label("day"), c.platform, c.kind)
        .join_from(sequence, CASES, c.id == sequence.c.case_id)
        .where(sequence.c.action == Action.ESCALATE,
               or_(sequence.c.previous.is_(None), sequence.c.previous != Action.ESCALATE))
    ).subquery()

    # People: counts per day and person, labelled with the name on the latest event that carried one.
    acts = (
        select(_day(e.at, dialect).label("day"),
               case((e.action == Action.RESOLVE, _text(PERSON_RESOLVE)), else_=_text(PERSON_CLAIM)).label("metric"),
               e.actor, case((e.actor_name.is_not(None), e.id)).label("named"))
        .where(e.action.in_([Action.CLAIM, Action.TAKE_OVER, Action.RESOLVE]), e.actor.is_not(None))
    ).subquery()
    per_person = (
        select(acts.c.day, acts.c.metric, acts.c.actor, func.count().label("n"), func.max(acts.c.named).label("named"))
        .group_by(acts.c.day, acts.c.metric, acts.c.actor)
    ).subquery()
    named = EVENTS.alias("named")
    people = (
        select(per_person.c.day, per_person.c.metric, per_person.c.actor, _text(""), per_person.c.n,
               named.c.actor_name)
        .join_from(per_person, named, named.c.id == per_person.c.named, isouter=True)
    )

    # Sent replies, by author and the day they were sent; the label is the name on the last one sent.
    r = REPLIES.c
    sent_day = _day(r.sent_at, dialect)
    group = [sent_day, r.author]
    sent = (
        select(sent_day.label("day"), r.author, r.author_name, func.count().over(partition_by=group).label("n"),
               func.row_number().over(partition_by=group,
                                      order_by=[r.author_name.is_(None), r.sent_at.desc(), r.id.desc()])
               .label("rank"))
        .where(r.status == ReplyStatus.SENT, r.kind == "reply", r.author.is_not(None), r.sent_at.is_not(None))
    ).subquery()
    replies = (select(sent.c.day, _text(PERSON_REPLY), sent.c.author, _text(""), sent.c.n, sent.c.author_name)
               .where(sent.c.rank == 1))

    # Response targets: one event per target met or missed (bot.services.targets writes exactly one).
    targets = (
        select(_day(e.at, dialect).label("day"), e.action, e.detail["priority"].as_string().label("priority"))
        .where(e.action.in_([Action.TARGET_MET, Action.TARGET_MISSED]))
    ).subquery()
    target_counts = (
        select(targets.c.day, case((targets.c.action == Action.TARGET_MET, _text(TARGET_MET)),
                                   else_=_text(TARGET_MISSED)),
               targets.c.priority, _text(""), func.count(), literal_column("NULL"))
        .group_by(targets.c.day, targets.c.action, targets.c.priority)
    )

    acks = (
        select(_day(e.at, dialect).label("day"), _bucket(e.detail["seconds"].as_float()).label("bucket"))
        .where(e.action == Action.ACKNOWLEDGE)
    ).subquery()

    return [
        into(_COLUMNS, _counts(opened, NEW, opened.c.platform, opened.c.kind)),
        into(_COLUMNS, target_counts),
        into(_COLUMNS, _counts(acks, ACK, acks.c.bucket)),
        into(_COLUMNS, _counts(answered, ANSWERED, answered.c.platform, answered.c.kind)),
        into(_COLUMNS, _counts(first_response, FIRST_RESPONSE, first_response.c.bucket)),
        into(_COLUMNS, _counts(resolves, RESOLVED, resolves.c.platform, resolves.c.kind)),
        into(_COLUMNS, _counts(resolves, RESOLUTION, resolves.c.bucket)),
        into(_COLUMNS, _counts(escalations, ESCALATED, escalations.c.platform, escalations.c.kind)),
        into(_COLUMNS, people),
        into(_COLUMNS, replies),
    ]


def rebuild(engine: Engine) -> int:
    """Recompute every rollup from cases, events and replies, in one transaction; returns the row count.

    On PostgreSQL the table is locked first: use cases that want to bump wait until the rebuild
    commits (and are then counted once, by their bump), and those that bumped already are waited for
    (and are then counted once, by the rebuild). On SQLite the writer lock does the same.
    """
    with transaction(engine) as session:
        connection = session.connection()
        dialect = connection.dialect.name
        if dialect == "postgresql":
            connection.execute(text("LOCK TABLE daily_counts IN EXCLUSIVE MODE"))
        connection.execute(delete(DAILY))
        for statement in _statements(dialect):
            connection.execute(statement)
        return int(connection.execute(select(func.count()).select_from(DAILY)).scalar_one())

