"""Add segment name keys and user session epochs

Revision ID: f9cfedb6bef2
Revises: 1a8bd0fd9de6
Create Date: 2026-12-07 10:05:00.000000

"""

import hashlib
import logging
import unicodedata

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "f9cfedb6bef2"
down_revision = "1a8bd0fd9de6"
branch_labels = None
depends_on = None

logger = logging.getLogger(__name__)


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
        )

    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_key", sa.String(length=64), nullable=True))

    _fill_name_keys()
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.alter_column(
            "name_key", existing_type=sa.String(length=64), nullable=False
        )
        batch_op.create_unique_constraint(
            "uq_segments_name_key", ["account_id", "name_key"]
        )


def _fill_name_keys():
    """Set each segment's name key, as ``server.models.segment_name_key`` does.

    Names that differ only in case, such as "ÉCOLE" and "école", could be
    saved before this revision. The oldest segment keeps the plain key, and
    each later one gets a key salted with its ID, so the unique constraint
    holds and no segment is renamed: the tag reports results by name. The
    console asks for a new name when such a segment is saved again.
    """
    connection = op.get_bind()
    segments = sa.table(
        "segments",
        sa.column("id", sa.Integer()),
        sa.column("account_id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("name_key", sa.String()),
    )
    rows = connection.execute(
        sa.select(segments.c.id, segments.c.account_id, segments.c.name).order_by(
            segments.c.id
        )
    ).all()
    taken = set()
    for segment_id, account_id, name in rows:
        folded = unicodedata.normalize("NFKC", name.strip()).casefold()
        key = hashlib.sha256(folded.encode()).hexdigest()
        if (account_id, key) in taken:
            logger.warning(
                "Segment %s of account %s has the name of an older segment but"
                " for case; it keeps its name until it is saved again",
                segment_id,
                account_id,
            )
            key = hashlib.sha256(f"{folded}\0{segment_id}".encode()).hexdigest()

        taken.add((account_id, key))
        connection.execute(
            segments.update().where(segments.c.id == segment_id).values(name_key=key)
        )


def downgrade():
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.drop_constraint("uq_segments_name_key", type_="unique")
        batch_op.drop_column("name_key")

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_epoch")
