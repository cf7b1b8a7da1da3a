"""providers: cloud accounts nodes are created from; nodes.provider_id and nodes.cloud

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("api_endpoint", sa.String(length=255), nullable=False),
        sa.Column("admin_cidrs", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("name", name=op.f("uq_providers_name")),
    )
    # SQLite: a plain ADD COLUMN with a REFERENCES clause (allowed on a NULL column); a batch rebuild of
    # `nodes` would drop the table that sites and jobs reference, which enforced foreign keys refuse.
    fk = op.f("fk_nodes_provider_id_providers")
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            f"ALTER TABLE nodes ADD COLUMN provider_id INTEGER CONSTRAINT {fk} REFERENCES providers (id)"
        )
    else:
        op.add_column("nodes", sa.Column("provider_id", sa.Integer(), nullable=True))
        op.create_foreign_key(fk, "nodes", "providers", ["provider_id"], ["id"])
    op.add_column("nodes", sa.Column("cloud", sa.JSON(), nullable=True))
    op.create_index(op.f("ix_nodes_provider_id"), "nodes", ["provider_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        if op.get_bind().dialect.name != "sqlite":  # SQLite: the rebuilt table simply has no such column
            batch_op.drop_constraint(batch_op.f("fk_nodes_provider_id_providers"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_nodes_provider_id"))
        batch_op.drop_column("cloud")
        batch_op.drop_column("provider_id")
    op.drop_table("providers")
