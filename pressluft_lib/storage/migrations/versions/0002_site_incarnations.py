"""site incarnations: sites.incarnation, and a site name is unique only among live sites

A deleted site's name can be used again by a new row (a new incarnation); the old row keeps its
jobs, environments and backups.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LIVE = "state != 'deleted'"


def upgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("incarnation", sa.String(length=64), nullable=True))
    sites = sa.table("sites", sa.column("id", sa.Integer), sa.column("incarnation", sa.String))
    conn = op.get_bind()
    for (site_id,) in conn.execute(sa.select(sites.c.id)).all():
        # Each existing site is its own incarnation (models.new_incarnation's format).
        conn.execute(
            sites.update().where(sites.c.id == site_id).values(incarnation="i" + secrets.token_hex(8))
        )
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.alter_column("incarnation", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_constraint("uq_sites_name", type_="unique")
        batch_op.create_index(
            "uq_sites_name_live",
            ["name"],
            unique=True,
            postgresql_where=sa.text(LIVE),
            sqlite_where=sa.text(LIVE),
        )


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_index("uq_sites_name_live", postgresql_where=sa.text(LIVE), sqlite_where=sa.text(LIVE))
        batch_op.create_unique_constraint("uq_sites_name", ["name"])
        batch_op.drop_column("incarnation")
