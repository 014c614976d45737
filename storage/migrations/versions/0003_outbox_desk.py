"""outbox.desk: the chat desk (slack, teams) a chat effect goes to; '' for sends to a platform

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('desk', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False,
                                      server_default=''))
    # Rows written before there were several desks were all Slack's (or sends).
    op.execute("UPDATE outbox SET desk = 'slack' WHERE effect <> 'send'")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('desk', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('desk')
