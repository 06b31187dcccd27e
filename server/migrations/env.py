"""Alembic environment: run migrations with the Flask app's engine and models."""

from __future__ import annotations

from alembic import context
from flask import current_app

# Logging is left to the application: alembic's usual fileConfig() call would
# disable every logger the app created before the migration ran.
db = current_app.extensions["migrate"].db
config = context.config
url = db.engine.url.render_as_string(hide_password=False)
config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))


def run_migrations_offline() -> None:
    """Write the migration SQL to stdout without connecting (``--sql``)."""
    context.configure(
        url=url, target_metadata=db.metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with db.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=db.metadata,
            # Flask-Migrate sets render_as_batch, which SQLite needs because
            # it cannot ALTER most things: batch mode rebuilds the table.
            **current_app.extensions["migrate"].configure_args,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
