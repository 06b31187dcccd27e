"""Command line: ``flask --app server create-user``."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import inspect

from server.console.auth import UserError
from server.console.auth import create_user
from server.extensions import db


@click.command("create-user")
@with_appcontext
@click.option(
    "--account",
    "account_name",
    required=True,
    help="Exact name of the account. A new account is created when none has it.",
)
@click.option("--email", required=True, help="Sign-in email address.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Sign-in password of at least 12 characters. Prompted for when omitted.",
)
def create_user_command(account_name: str, email: str, password: str) -> None:
    """Create a console user, and the account when it does not exist yet."""
    try:
        user = create_user(account_name, email, password)
    except UserError as e:
        raise click.ClickException(str(e)) from None

    # A new account is still pending in the session: nothing flushed it yet.
    account_is_new = inspect(user.account).pending
    db.session.commit()
    if not account_is_new:
        click.echo(
            f"Added user {user.email} to the existing account {user.account.name!r}."
        )
        return

    click.echo(f"Created account {user.account.name!r} and user {user.email} in it.")
