"""update reports: a safe update's comparison of its throwaway clone with the environment

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "update_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("env_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("clone", sa.String(length=16), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["env_id"], ["environments.id"], name="fk_update_reports_env_id_environments"
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_update_reports_job_id_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_update_reports"),
    )
    with op.batch_alter_table("update_reports", schema=None) as batch_op:
        batch_op.create_index("ix_update_reports_env_id", ["env_id"], unique=False)
        batch_op.create_index("ix_update_reports_job_id", ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_table("update_reports")
