"""Record when tags last saw mParticle on the account's site

Revision ID: 7c2d9e4a1b38
Revises: 51031b678754
Create Date: 2026-12-04 18:05:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "7c2d9e4a1b38"
down_revision = "51031b678754"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mparticle_seen_at", sa.DateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("mparticle_missing_at", sa.DateTime(), nullable=True)
        )


def downgrade():
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("mparticle_missing_at")
        batch_op.drop_column("mparticle_seen_at")
