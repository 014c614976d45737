"""Numbers for `/metrics` (Prometheus text format): what an admin alerts on."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import col, func, select

from storage.db import transaction
from storage.tables import CaseRow, OutboxRow, ReplyRow


def metrics(engine: Engine) -> str:
    with transaction(engine, write=False) as session:
        cases = dict(session.exec(select(CaseRow.status, func.count()).group_by(col(CaseRow.status))).all())
        pending = session.exec(select(func.count()).select_from(OutboxRow).where(col(OutboxRow.done).is_(False))).one()
        dead = session.exec(select(func.count()).select_from(OutboxRow).where(col(OutboxRow.dead).is_(True))).one()
        oldest = session.exec(select(func.min(OutboxRow.created_at)).where(col(OutboxRow.done).is_(False))).one()
        replies = dict(session.exec(select(ReplyRow.status, func.count()).group_by(col(ReplyRow.status))).all())
    lines = [
        "# HELP socialops_cases Cases by status.", "# TYPE socialops_cases gauge",
        *(f'socialops_cases{{status="{status}"}} {cases.get(status, 0)}' for status in ("open", "claimed", "resolved")),
        "# HELP socialops_outbox_pending Side effects not yet delivered.", "# TYPE socialops_outbox_pending gauge",
        f"socialops_outbox_pending {pending}",
        "# HELP socialops_outbox_dead Side effects given up on (see the log).", "# TYPE socialops_outbox_dead gauge",
        f"socialops_outbox_dead {dead}",
        "# HELP socialops_outbox_oldest_pending_timestamp_seconds Creation time of the oldest undelivered effect.",
        "# TYPE socialops_outbox_oldest_pending_timestamp_seconds gauge",
        f"socialops_outbox_oldest_pending_timestamp_seconds {oldest.timestamp() if oldest else 0:.0f}",
        "# HELP socialops_replies Replies and check-ins by status.", "# TYPE socialops_replies gauge",
        *(f'socialops_replies{{status="{s}"}} {replies.get(s, 0)}' for s in ("queued", "sent", "failed")),
    ]
    return "\n".join(lines) + "\n"
