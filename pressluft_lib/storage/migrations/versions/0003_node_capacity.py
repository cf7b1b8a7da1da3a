"""node capacity: nodes.site_capacity (override), memory_mb and limits_capacity (reported by node_provision)

Existing nodes get NULLs: their capacity is the default until an override is set or the next
node_provision reports the node's memory and PHP-FPM limit (pressluft_lib/capacity.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = ("site_capacity", "memory_mb", "limits_capacity")


def upgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
