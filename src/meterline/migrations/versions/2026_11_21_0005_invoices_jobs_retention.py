"""Invoices and their numbers, the jobs outbox, workspace grace and retention settings.

Every subscription that exists gets its billing-cycle job, so periods that ended
before this version close into invoices once a worker runs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 12:57:53.066796
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invoice_numbers",
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("last_number", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_invoice_numbers_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_invoice_numbers")),
    )
    op.create_table(
        "jobs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_jobs_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("key", name=op.f("uq_jobs_key")),
    )
    op.create_index("ix_jobs_run_at", "jobs", ["run_at"])

    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("plan", sa.String(length=100), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column(
            "total", sa.String(length=80).with_variant(sa.Numeric(), "postgresql"), nullable=False
        ),
        sa.Column("finalize_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_invoices_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_invoices_subscription_id_subscriptions"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_invoices_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint(
            "subscription_id", "period_start", name=op.f("uq_invoices_subscription_id")
        ),
        sa.UniqueConstraint("workspace_id", "number", name=op.f("uq_invoices_workspace_id")),
    )
    op.create_index("ix_invoices_customer_id", "invoices", ["customer_id", "period_start"])
    op.create_index("ix_invoices_workspace_id", "invoices", ["workspace_id", "id"])

    op.add_column(
        "workspaces",
        sa.Column("invoice_grace_days", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("workspaces", sa.Column("event_retention_days", sa.Integer(), nullable=True))
    op.create_index(
        "ix_reservations_held_expiry",
        "reservations",
        ["expires_at"],
        sqlite_where=sa.text("status = 'held'"),
        postgresql_where=sa.text("status = 'held'"),
    )
    _schedule_cycles()


def _schedule_cycles() -> None:
    bind = op.get_bind()
    now = datetime.now(UTC)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # stored as UTC wall time there
    jobs = sa.table(
        "jobs",
        sa.column("key", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("workspace_id", sa.BigInteger()),
        sa.column("payload", sa.JSON()),
        sa.column("run_at", sa.DateTime(timezone=True)),
        sa.column("attempts", sa.Integer()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    rows = bind.execute(sa.text("SELECT id, workspace_id FROM subscriptions")).all()
    if rows:
        op.bulk_insert(
            jobs,
            [
                {
                    "key": f"cycle:{sub_id}",
                    "kind": "billing.cycle",
                    "workspace_id": workspace_id,
                    "payload": {"subscription": sub_id},
                    "run_at": now,
                    "attempts": 0,
                    "created_at": now,
                }
                for sub_id, workspace_id in rows
            ],
        )


def downgrade() -> None:
    op.drop_index("ix_reservations_held_expiry", table_name="reservations")
    op.drop_column("workspaces", "event_retention_days")
    op.drop_column("workspaces", "invoice_grace_days")
    op.drop_index("ix_invoices_workspace_id", table_name="invoices")
    op.drop_index("ix_invoices_customer_id", table_name="invoices")
    op.drop_table("invoices")
    op.drop_index("ix_jobs_run_at", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("invoice_numbers")
