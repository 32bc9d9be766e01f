"""prevalence_estimates.calibration: the channel's calibration map (nlp.channel_calibration)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 16:45:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('prevalence_estimates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('calibration', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('prevalence_estimates', schema=None) as batch_op:
        batch_op.drop_column('calibration')
