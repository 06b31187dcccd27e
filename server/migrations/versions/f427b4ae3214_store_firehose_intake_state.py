"""Store Firehose intake state: worker status, removals, attributes,
identities and the delivery log

Revision ID: f427b4ae3214
Revises: 51031b678754
Create Date: 2026-12-04 17:36:33.088147

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "f427b4ae3214"
down_revision = "51031b678754"
branch_labels = None
depends_on = None


def upgrade():
    _create_member_tables()
    _create_delivery_tables()
    with op.batch_alter_table("audiences", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "timestamp_ms", sa.BigInteger(), nullable=False, server_default="0"
            )
        )

    _add_worker_columns()
    _compress_inbox_bodies_with_lz4()


def _create_member_tables():
    op.create_table(
        "audience_removals",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("audience_id", sa.BigInteger(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("account_id", "audience_id"),
    )
    op.create_table(
        "member_attributes",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("mpid", sa.BigInteger(), nullable=False),
        sa.Column("audience_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("list_value", sa.JSON(), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("account_id", "mpid", "audience_id", "key"),
    )
    op.create_index(
        "ix_member_attributes_audience",
        "member_attributes",
        ["account_id", "audience_id"],
    )
    op.create_table(
        "member_identities",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("mpid", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("identity_type", sa.String(length=60), nullable=False),
        sa.Column("lookup", sa.String(length=128), nullable=False),
        sa.Column("encoding", sa.String(length=10), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint(
            "account_id", "mpid", "kind", "identity_type", "lookup"
        ),
    )
    op.create_index(
        "ix_member_identities_lookup", "member_identities", ["account_id", "lookup"]
    )


def _create_delivery_tables():
    op.create_table(
        "delivery_counts",
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("message_type", sa.String(length=60), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("changes", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["connector_id"], ["connectors.id"]),
        sa.PrimaryKeyConstraint("connector_id", "message_type", "action"),
    )
    op.create_table(
        "delivery_rejects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("field", sa.String(length=200), nullable=True),
        sa.Column("message_id", sa.String(length=100), nullable=True),
        sa.Column("message_type", sa.String(length=60), nullable=True),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["connector_id"], ["connectors.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_delivery_rejects_account", "delivery_rejects", ["account_id", "id"]
    )
    op.create_index(
        "ix_delivery_rejects_connector_id", "delivery_rejects", ["connector_id"]
    )


def _add_worker_columns():
    with op.batch_alter_table("inbox_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "status", sa.String(length=10), nullable=False, server_default="pending"
            )
        )
        batch_op.add_column(
            sa.Column("attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("last_error", sa.String(length=500), nullable=True)
        )
        batch_op.alter_column("body", existing_type=sa.LargeBinary(), nullable=True)
        batch_op.create_index("ix_inbox_messages_connector", ["connector_id", "id"])
        batch_op.create_index("ix_inbox_messages_status", ["status", "id"])

    # The first version applied every message inside its request.
    op.execute(
        "UPDATE inbox_messages SET status = 'applied' WHERE applied_at IS NOT NULL"
    )


def _compress_inbox_bodies_with_lz4():
    """Store inbox bodies with lz4 instead of pglz on PostgreSQL 14 and later.

    pglz compression of a 164 KB JSON body made each insert take about 4 ms,
    lz4 about 1.3 ms (PostgreSQL 15, 2 vCPUs). A server built without lz4
    rejects the statement, and the column then keeps the default.
    """
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return

    if bind.dialect.server_version_info < (14,):
        return

    try:
        with bind.begin_nested():
            op.execute(
                "ALTER TABLE inbox_messages ALTER COLUMN body SET COMPRESSION lz4"
            )
    except sa.exc.DBAPIError:
        pass


def downgrade():
    with op.batch_alter_table("inbox_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_messages_status")
        batch_op.drop_index("ix_inbox_messages_connector")
        batch_op.alter_column("body", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("last_error")
        batch_op.drop_column("attempts")
        batch_op.drop_column("status")

    with op.batch_alter_table("audiences", schema=None) as batch_op:
        batch_op.drop_column("timestamp_ms")

    op.drop_index("ix_delivery_rejects_connector_id", table_name="delivery_rejects")
    op.drop_index("ix_delivery_rejects_account", table_name="delivery_rejects")
    op.drop_table("delivery_rejects")
    op.drop_table("delivery_counts")
    op.drop_index("ix_member_identities_lookup", table_name="member_identities")
    op.drop_table("member_identities")
    op.drop_index("ix_member_attributes_audience", table_name="member_attributes")
    op.drop_table("member_attributes")
    op.drop_table("audience_removals")
