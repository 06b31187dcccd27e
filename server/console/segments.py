"""Segments: the list, the segment builder, its preview, publish and unpublish."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from browser.segments import iter_audience_criteria
from browser.segments import parse_segment
from server.console import bp
from server.console.audiences import account_connectors
from server.console.audiences import audience_rows
from server.console.auth import login_required
from server.console.builder import ROOT_PATH
from server.console.builder import AccountCatalog
from server.console.builder import CheckedCondition
from server.console.builder import check_condition
from server.console.builder import parse_preview_mpid
from server.console.builder import preview
from server.console.forms import ActionForm
from server.console.forms import SegmentForm
from server.extensions import db
from server.models import Segment
from server.models import segment_name_key

logger = logging.getLogger(__name__)

EMPTY_CONDITION = {"type": "group", "operator": "and", "criteria": []}


@bp.get("/segments")
@login_required
def segments() -> Any:
    records = db.session.scalars(
        select(Segment).where(Segment.account_id == g.account.id).order_by(Segment.name)
    ).all()
    catalog = AccountCatalog.load(g.account.id)
    return render_template(
        "console/segments.html",
        segments=records,
        criteria_counts={s.id: _criteria_count(s) for s in records},
        problems={s.id: catalog.check_saved(s.condition) for s in records},
        action_form=ActionForm(),
    )


@bp.route("/segments/new", methods=["GET", "POST"])
@login_required
def new_segment() -> Any:
    return _builder(None)


@bp.route("/segments/<int:segment_id>", methods=["GET", "POST"])
@login_required
def edit_segment(segment_id: int) -> Any:
    return _builder(_account_segment(segment_id))


@bp.post("/segments/<int:segment_id>/publish")
@login_required
def publish_segment(segment_id: int) -> Any:
    return _set_published(_account_segment(segment_id), True)


@bp.post("/segments/<int:segment_id>/unpublish")
@login_required
def unpublish_segment(segment_id: int) -> Any:
    return _set_published(_account_segment(segment_id), False)


def _builder(segment: Segment | None) -> Any:
    form = SegmentForm(obj=segment)
    if request.method == "GET" and segment is None:
        return _render_builder(form, segment, CheckedCondition(raw=EMPTY_CONDITION))

    if request.method == "GET":
        # Audiences removed in mParticle since the segment was saved.
        problems = AccountCatalog.load(g.account.id).check_saved(segment.condition)
        checked = CheckedCondition(raw=segment.condition, errors=problems)
        return _render_builder(form, segment, checked, saved_problems=len(problems))

    if request.form.get("action") == "preview":
        return _preview(form, segment)

    return _save(form, segment)


def _save(form: SegmentForm, segment: Segment | None) -> Any:
    valid = form.validate()
    checked = check_condition(form.condition.data, g.account.id)
    name = (form.name.data or "").strip()
    if valid and _name_taken(name, segment):
        form.name.errors.append(_name_taken_message(name))

    if not valid or form.name.errors or checked.errors:
        return _render_builder(form, segment, checked, status=400)

    if segment is None:
        segment = Segment(account_id=g.account.id)
        db.session.add(segment)

    segment.name = name
    segment.condition = checked.condition.to_dict()
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent request saved a segment under this name after the check.
        db.session.rollback()
        segment = _reload(segment)
        if not _name_taken(name, segment):
            raise

        logger.warning("Segment name taken concurrently in account %s", g.account.id)
        form.name.errors.append(_name_taken_message(name))
        return _render_builder(form, segment, checked, status=400)

    logger.info("Saved segment %s of account %s", segment.id, g.account.id)
    flash(f'Segment "{name}" saved.', "success")
    return redirect(url_for("console.edit_segment", segment_id=segment.id))


def _preview(form: SegmentForm, segment: Segment | None) -> Any:
    checked = check_condition(form.condition.data, g.account.id)
    mpid, mpid_error = parse_preview_mpid(form.mpid.data)
    if mpid_error is not None:
        form.mpid.errors = [mpid_error]

    if mpid is None or checked.condition is None or checked.errors:
        return _render_builder(form, segment, checked, status=400)

    name = (form.name.data or "").strip() or "Unsaved segment"
    result = preview(name, checked.condition, g.account.id, mpid)
    return _render_builder(form, segment, checked, result=result.to_dict())


def _render_builder(
    form: SegmentForm,
    segment: Segment | None,
    checked: CheckedCondition,
    status: int = 200,
    result: dict[str, Any] | None = None,
    saved_problems: int = 0,
) -> Any:
    state = checked.raw if isinstance(checked.raw, dict) else EMPTY_CONDITION
    catalog = _catalog()
    return (
        render_template(
            "console/segment_builder.html",
            form=form,
            segment=segment,
            state=state,
            errors=checked.errors,
            root_error=checked.errors.get(ROOT_PATH),
            catalog=catalog,
            result=result,
            audience_names={
                a["id"]: a["name"] for c in catalog for a in c["audiences"]
            },
            connector_labels={c["id"]: c["label"] for c in catalog},
            saved_problems=saved_problems,
            action_form=ActionForm(),
        ),
        status,
    )


def _catalog() -> list[dict[str, Any]]:
    """List the account's connectors and their audiences for the builder script.

    Every audience is listed with its member count: the script offers only
    those with members, and uses the rest to name a saved choice that has
    since emptied.
    """
    rows = audience_rows(g.account.id)
    return [
        {
            "id": connector.id,
            "label": f"mParticle – {connector.name}",
            "audiences": [
                {
                    "id": row.audience.audience_id,
                    "name": row.audience.name,
                    "members": row.member_count,
                }
                for row in rows
                if row.audience.connector_id == connector.id
            ],
        }
        for connector in account_connectors(g.account.id)
    ]


def _set_published(segment: Segment, published: bool) -> Any:
    if ActionForm().validate_on_submit() and segment.published != published:
        segment.published = published
        db.session.commit()
        logger.info(
            "Set segment %s of account %s published=%s",
            segment.id,
            g.account.id,
            published,
        )
        max_age = current_app.config["TAG_SEGMENTS_MAX_AGE"]
        if published:
            message = (
                f'Segment "{segment.name}" is published: tags evaluate it within'
                f" {max_age} seconds."
            )
        else:
            message = (
                f'Segment "{segment.name}" is unpublished: tags stop evaluating it'
                f" within {max_age} seconds."
            )
        flash(message, "success")

    if request.form.get("return_to") == "builder":
        return redirect(url_for("console.edit_segment", segment_id=segment.id))

    return redirect(url_for("console.segments"))


def _account_segment(segment_id: int) -> Segment:
    return db.first_or_404(
        select(Segment).where(
            Segment.id == segment_id, Segment.account_id == g.account.id
        )
    )


def _name_taken(name: str, segment: Segment | None) -> bool:
    """Return whether another segment of the account has this name, in any case."""
    query = select(Segment.id).where(
        Segment.account_id == g.account.id,
        Segment.name_key == segment_name_key(name),
    )
    if segment is not None:
        query = query.where(Segment.id != segment.id)

    return db.session.scalar(query) is not None


def _name_taken_message(name: str) -> str:
    return f'A segment named "{name}" already exists. Choose another name.'


def _reload(segment: Segment) -> Segment | None:
    """Return the stored segment after a rollback, or ``None`` for a new one."""
    if segment.id is None:
        return None

    return db.session.get(Segment, segment.id)


def _criteria_count(segment: Segment) -> int:
    try:
        parsed = parse_segment(segment.to_definition())
    except ValueError:
        return 0

    return sum(1 for _ in iter_audience_criteria(parsed))
