"""Integrations > Integration Hub: the pull catalog, connector setup and status."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import abort
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from sqlalchemy import func
from sqlalchemy import select

from server.console import bp
from server.console.audiences import account_connectors
from server.console.audiences import audience_rows
from server.console.auth import login_required
from server.console.connector_status import load_delivery_view
from server.console.connector_status import load_tag_report
from server.console.forms import ConnectorForm
from server.console.tag_install import tag_snippet
from server.extensions import db
from server.models import Connector

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullIntegration:
    """A source that pushes data to us, listed in the Integration Hub."""

    slug: str
    name: str
    summary: str
    keywords: tuple[str, ...]

    def matches(self, query: str) -> bool:
        words = (self.name.lower(), *self.keywords)
        return all(any(term in word for word in words) for term in query.split())


PULL_INTEGRATIONS = (
    PullIntegration(
        slug="mparticle",
        name="mParticle",
        summary="Receive the audiences built in mParticle and target them in segments.",
        keywords=("cdp", "customer data platform", "audiences", "firehose"),
    ),
)


@bp.get("/integrations/")
@login_required
def integrations() -> Any:
    return redirect(url_for("console.hub"))


@bp.get("/integrations/hub/pull")
@login_required
def hub() -> Any:
    query = request.args.get("q", "").strip()[:100]
    results = [i for i in PULL_INTEGRATIONS if i.matches(query.lower())]
    return render_template("console/hub.html", query=query, results=results)


@bp.get("/integrations/hub/pull/<slug>")
@login_required
def integration(slug: str) -> Any:
    return render_template(
        "console/integration.html",
        integration=_find_integration(slug),
        connectors=account_connectors(g.account.id),
    )


@bp.route("/integrations/hub/pull/<slug>/setup", methods=["GET", "POST"])
@login_required
def setup_connector(slug: str) -> Any:
    integration = _find_integration(slug)
    form = ConnectorForm()
    if form.validate_on_submit():
        name = form.name.data.strip()
        if _connector_name_taken(name):
            form.name.errors.append(
                f'A connector named "{name}" already exists. Choose another name.'
            )
        else:
            connector = Connector(account_id=g.account.id, kind=slug, name=name)
            db.session.add(connector)
            db.session.commit()
            logger.info(
                "Created connector %s for account %s", connector.id, g.account.id
            )
            flash(f'Connector "{name}" created.', "success")
            return redirect(url_for("console.connector", connector_id=connector.id))

    status = 400 if form.errors else 200
    return (
        render_template(
            "console/setup_connector.html", integration=integration, form=form
        ),
        status,
    )


@bp.get("/integrations/connectors/<int:connector_id>")
@login_required
def connector(connector_id: int) -> Any:
    connector = db.first_or_404(
        select(Connector).where(
            Connector.id == connector_id, Connector.account_id == g.account.id
        )
    )
    return render_template(
        "console/connector.html",
        connector=connector,
        status=load_delivery_view(connector),
        tag_report=load_tag_report(g.account),
        audiences=audience_rows(g.account.id, connector.id),
        intake_url=url_for("firehose.receive", _external=True),
        tag_snippet=tag_snippet(g.account),
    )


def _find_integration(slug: str) -> PullIntegration:
    for integration in PULL_INTEGRATIONS:
        if integration.slug == slug:
            return integration

    abort(404)


def _connector_name_taken(name: str) -> bool:
    found = db.session.scalar(
        select(Connector.id).where(
            Connector.account_id == g.account.id,
            func.lower(Connector.name) == name.lower(),
        )
    )
    return found is not None
