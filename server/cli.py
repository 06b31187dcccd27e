"""Command line: ``flask --app server seed-demo``."""

from __future__ import annotations

import json
import secrets

import click
from flask import Flask
from flask.cli import with_appcontext
from flask_migrate import upgrade
from sqlalchemy import select

from server import keys
from server.extensions import db
from server.models import Account
from server.models import Connector
from server.models import Segment

DEMO_ACCOUNT = "demo"
DEMO_AUDIENCE_ID = 456


def init_app(app: Flask) -> None:
    app.cli.add_command(seed_demo_command)


def new_tag_key() -> str:
    """Return a random tag key. It is public: it ships in sites' HTML."""
    return "tag_" + secrets.token_hex(12)


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create the demo account if missing and print a new API key for it.

    Keys are stored hashed, so an earlier key cannot be shown again: every run
    issues a new one. Prints one JSON object with the account ID, the API key
    and the tag key.
    """
    upgrade()
    account = _demo_account()
    connector = _demo_connector(account)
    _demo_segment(account, connector)
    issued = keys.issue_key(account, label="demo")
    db.session.commit()
    click.echo(
        json.dumps(
            {
                "account_id": account.id,
                "api_key": issued.secret,
                "tag_key": account.tag_key,
            }
        )
    )


def _demo_account() -> Account:
    account = db.session.scalar(select(Account).where(Account.name == DEMO_ACCOUNT))
    if account is None:
        account = Account(name=DEMO_ACCOUNT, tag_key=new_tag_key())
        db.session.add(account)
        db.session.flush()

    return account


def _demo_connector(account: Account) -> Connector:
    connector = db.session.scalar(
        select(Connector).where(
            Connector.account_id == account.id, Connector.kind == "mparticle"
        )
    )
    if connector is None:
        connector = Connector(account=account, name="mParticle")
        db.session.add(connector)
        db.session.flush()

    return connector


def _demo_segment(account: Account, connector: Connector) -> None:
    name = "Cart abandoners"
    segment = db.session.scalar(
        select(Segment).where(Segment.account_id == account.id, Segment.name == name)
    )
    if segment is not None:
        return

    criterion = {
        "type": "audience",
        "connector_id": connector.id,
        "audience_id": DEMO_AUDIENCE_ID,
        "operator": "in",
    }
    db.session.add(
        Segment(
            account_id=account.id,
            name=name,
            condition={"type": "group", "operator": "and", "criteria": [criterion]},
            published=True,
        )
    )
