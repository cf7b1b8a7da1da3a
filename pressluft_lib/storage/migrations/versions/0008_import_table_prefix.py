"""site import: environments.table_prefix (NULL is WordPress's default, wp_; site_import stores the
imported site's prefix, and every job that writes wp-config.php passes it on)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("table_prefix", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_column("table_prefix")
