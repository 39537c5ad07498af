"""Stripe sync: the integration, reported series and hours, the report ledger and its
attempts; mapping fields on customers and meters; Stripe's invoice id, status and
payment status on invoices. Touches nothing else (its own tables and columns only).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 13:02:52.145649
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stripe_integrations",
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("secret_key", sa.String(length=255), nullable=True),
        sa.Column("webhook_secret", sa.String(length=255), nullable=True),
        sa.Column("report_delay_minutes", sa.Integer(), nullable=False),
        sa.Column("identifier_prefix", sa.String(length=20), nullable=False),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("aggregated_through", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_stripe_integrations_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_stripe_integrations")),
    )
    op.create_table(
        "stripe_usage_hours",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("meter_id", sa.BigInteger(), nullable=False),
        sa.Column("hour_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "measured",
            sa.String(length=80).with_variant(sa.Numeric(), "postgresql"),
            nullable=False,
        ),
        sa.Column("sent", sa.BigInteger(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_stripe_usage_hours_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "customer_id", "meter_id", "hour_start", name=op.f("pk_stripe_usage_hours")
        ),
    )
    with op.batch_alter_table("stripe_usage_hours", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stripe_usage_hours_meter", ["meter_id", "hour_start"], unique=False
        )

    op.create_table(
        "stripe_usage_series",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("meter_id", sa.BigInteger(), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "measured",
            sa.String(length=80).with_variant(sa.Numeric(), "postgresql"),
            nullable=False,
        ),
        sa.Column("sent", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_stripe_usage_series_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "meter_id", name=op.f("pk_stripe_usage_series")),
    )
    op.create_table(
        "stripe_reports",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("meter_id", sa.BigInteger(), nullable=True),
        sa.Column("hour_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("identifier", sa.String(length=120), nullable=True),
        sa.Column("event_name", sa.String(length=100), nullable=True),
        sa.Column("value", sa.BigInteger(), nullable=True),
        sa.Column("cancels", sa.String(length=40), nullable=True),
        sa.Column("cancelled_by", sa.String(length=40), nullable=True),
        sa.Column("invoice_id", sa.String(length=40), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("error_report", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_stripe_reports_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_stripe_reports_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_stripe_reports_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_stripe_reports")),
        sa.UniqueConstraint("id", name=op.f("uq_stripe_reports_id")),
        sa.UniqueConstraint("identifier", name=op.f("uq_stripe_reports_identifier")),
    )
    with op.batch_alter_table("stripe_reports", schema=None) as batch_op:
        batch_op.create_index("ix_stripe_reports_customer_id", ["customer_id", "id"], unique=False)
        batch_op.create_index("ix_stripe_reports_invoice_id", ["invoice_id"], unique=False)
        batch_op.create_index(
            "ix_stripe_reports_queue", ["workspace_id", "status", "seq"], unique=False
        )
        batch_op.create_index(
            "ix_stripe_reports_workspace_id", ["workspace_id", "id"], unique=False
        )

    op.create_table(
        "stripe_report_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("report_id", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["stripe_reports.id"],
            name=op.f("fk_stripe_report_attempts_report_id_stripe_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_report_attempts")),
    )
    with op.batch_alter_table("stripe_report_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stripe_report_attempts_report_id", ["report_id", "id"], unique=False
        )

    # Plain ALTER TABLE ... ADD COLUMN on both databases (no table rebuild).
    op.add_column("customers", sa.Column("stripe_customer_id", sa.String(length=255)))
    op.create_index(
        "ix_customers_stripe_customer_id", "customers", ["workspace_id", "stripe_customer_id"]
    )
    op.add_column("invoices", sa.Column("stripe_invoice_id", sa.String(length=255)))
    op.add_column("invoices", sa.Column("stripe_status", sa.String(length=20)))
    op.add_column("invoices", sa.Column("payment_status", sa.String(length=20)))
    op.add_column("meters", sa.Column("stripe_event_name", sa.String(length=100)))


def downgrade() -> None:
    op.drop_table("stripe_report_attempts")  # its index goes with it
    op.drop_table("stripe_reports")
    op.drop_table("stripe_usage_series")
    op.drop_table("stripe_usage_hours")
    op.drop_table("stripe_integrations")
    # SQLite drops these columns in place (3.35+): no rebuild of tables others reference.
    op.drop_index("ix_customers_stripe_customer_id", table_name="customers")
    op.drop_column("customers", "stripe_customer_id")
    op.drop_column("invoices", "stripe_invoice_id")
    op.drop_column("invoices", "stripe_status")
    op.drop_column("invoices", "payment_status")
    op.drop_column("meters", "stripe_event_name")
