"""Merge the console and intake migrations.

Revision ID: 3367d448f96b
Revises: c4e7a1f09b2d, f427b4ae3214
Create Date: 2026-12-04 17:59:59.433261
"""

revision = "3367d448f96b"
down_revision = ("c4e7a1f09b2d", "f427b4ae3214")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
