"""domains: each name's role (canonical, alias, serve) and its certificate's state and expiry

Existing rows (from `site create --domain`) are served names without a certificate.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=16), server_default="serve", nullable=False))
        batch_op.add_column(sa.Column("tls_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("tls_expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("tls_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("hsts", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("domains", schema=None) as batch_op:
        for column in ("hsts", "tls_error", "tls_expires_at", "tls_state", "role"):
            batch_op.drop_column(column)
