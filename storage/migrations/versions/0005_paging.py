"""cases: the escalation policy's state (page_level, page_next_at) and who acknowledged the escalation, when

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('page_level', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('page_next_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('acked_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('acked_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('acked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_cases_page_next_at'), ['page_next_at'], unique=False)
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.alter_column('page_level', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_page_next_at'))
        for column in ('acked_at', 'acked_name', 'acked_by', 'page_next_at', 'page_level'):
            batch_op.drop_column(column)
