"""Check what the segment builder submits, and preview it for one MPID.

The builder script sends the condition as JSON, but nothing from it is
trusted: the evaluation core's parser validates it (the same parser the tag
runs), and then every criterion must name a connector and an audience of the
signed-in account. The preview runs the core's ``evaluate`` on the stored
memberships, so it decides exactly as the visitor's browser does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from sqlalchemy import select

from browser.evaluation import EvaluationResult
from browser.evaluation import evaluate
from browser.segments import MAX_GROUP_DEPTH
from browser.segments import Group
from browser.segments import Segment
from browser.segments import SegmentError
from browser.segments import iter_audience_criteria
from browser.segments import parse_segment
from server.extensions import db
from server.models import Audience
from server.models import Connector
from server.models import Membership

ROOT_PATH = "condition"
#: Maximum length of the condition JSON, in characters. The core parser allows
#: MAX_AUDIENCE_CRITERIA criteria, which the builder writes in about 100
#: characters each, so this leaves room for whitespace and dropped keys.
MAX_CONDITION_LENGTH = 64 * 1024
#: Deepest JSON nesting accepted. A group at depth d is an object at JSON
#: depth 2d - 1 and its criteria at 2d + 1, so MAX_GROUP_DEPTH groups need
#: 2 * MAX_GROUP_DEPTH + 1. The margin lets a condition a group or two too
#: deep reach the core parser, whose message names the limit.
MAX_JSON_DEPTH = 2 * MAX_GROUP_DEPTH + 5
UNREADABLE = (
    "The segment could not be read. Reload the page and build the segment again."
)
#: Keys whose errors are shown on the criterion or group that contains them.
_FIELD_SUFFIX = re.compile(r"\.(type|operator|criteria|connector_id|audience_id)$")
_MPID = re.compile(r"^-?\d{1,19}$")
_INT64 = range(-(2**63), 2**63)


@dataclass
class CheckedCondition:
    """A submitted condition: parsed when valid, with errors by builder path.

    ``raw`` is the decoded JSON, kept so the builder can be shown again as the
    user left it. ``errors`` maps the path of a group or criterion, such as
    ``condition.criteria[1]``, to the message shown next to it.
    """

    raw: Any
    condition: Group | None = None
    errors: dict[str, str] = field(default_factory=dict)


def check_condition(submitted: str | None, account_id: int) -> CheckedCondition:
    """Parse the builder's JSON and check it against the account's data.

    JSON longer than :data:`MAX_CONDITION_LENGTH` or nested deeper than
    :data:`MAX_JSON_DEPTH` is rejected before it is decoded, because the
    checks below recurse once per level.
    """
    text = submitted or ""
    if len(text) > MAX_CONDITION_LENGTH or json_depth(text) > MAX_JSON_DEPTH:
        return CheckedCondition(raw=None, errors={ROOT_PATH: UNREADABLE})

    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return CheckedCondition(raw=None, errors={ROOT_PATH: UNREADABLE})

    checked = CheckedCondition(raw=raw)
    _check_shape(raw, ROOT_PATH, checked.errors)
    if checked.errors:
        return checked

    try:
        segment = parse_segment({"name": "segment", "condition": raw})
    except SegmentError as e:
        checked.errors[_node_path(e.path)] = _sentence(e.detail)
        return checked

    checked.condition = segment.condition
    checked.errors.update(AccountCatalog.load(account_id).check(segment))
    return checked


def json_depth(text: str) -> int:
    """Return the deepest nesting of arrays and objects in ``text``, as JSON.

    Brackets inside strings do not count. The text need not be valid JSON:
    this runs in one pass, before the recursive decoder parses it.
    """
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1

    return deepest


def _check_shape(raw: Any, path: str, errors: dict[str, str]) -> None:
    """Find the gaps a user leaves while building, with messages for each.

    The core parser reports only the first problem, in JSON terms, so this pass
    names every empty group and every criterion without an audience.
    """
    if not isinstance(raw, dict) or raw.get("type") != "group":
        return

    criteria = raw.get("criteria")
    if not isinstance(criteria, list) or not criteria:
        errors[path] = (
            "Add at least one criterion to the segment."
            if path == ROOT_PATH
            else "This group is empty: add a criterion to it or remove it."
        )
        return

    for index, child in enumerate(criteria):
        child_path = f"{path}.criteria[{index}]"
        if isinstance(child, dict) and child.get("type") == "audience":
            if child.get("audience_id") in (None, ""):
                errors[child_path] = "Choose an audience."
        else:
            _check_shape(child, child_path, errors)


@dataclass(frozen=True)
class AccountCatalog:
    """The connectors and audiences of one account, to check criteria against."""

    connectors: dict[int, Connector]
    audiences: dict[int, Audience]

    @classmethod
    def load(cls, account_id: int) -> AccountCatalog:
        connectors = db.session.scalars(
            select(Connector).where(Connector.account_id == account_id)
        )
        audiences = db.session.scalars(
            select(Audience).where(Audience.account_id == account_id)
        )
        return cls(
            connectors={connector.id: connector for connector in connectors},
            audiences={audience.audience_id: audience for audience in audiences},
        )

    def check(self, segment: Segment) -> dict[str, str]:
        """Return an error for each criterion whose connector or audience is gone.

        An audience disappears when mParticle removes it from the connector,
        so a saved segment can name one that no longer exists.
        """
        errors = {}
        for path, criterion in iter_audience_criteria(segment):
            connector = self.connectors.get(criterion.connector_id)
            audience = self.audiences.get(criterion.audience_id)
            if connector is None:
                errors[path] = (
                    f"Connector {criterion.connector_id} does not exist in this"
                    " account. Remove this criterion."
                )
            elif audience is None:
                errors[path] = (
                    f"Audience {criterion.audience_id} does not exist in"
                    f' "mParticle – {connector.name}": mParticle removed it, or never'
                    " sent it. Choose another audience."
                )
            elif audience.connector_id != connector.id:
                errors[path] = (
                    f"Audience {criterion.audience_id} is not an audience of"
                    f' "mParticle – {connector.name}". Choose one from the list.'
                )

        return errors

    def check_saved(self, condition: dict[str, Any]) -> dict[str, str]:
        """Check a stored condition; one the core parser rejects gets a root error."""
        try:
            segment = parse_segment({"name": "segment", "condition": condition})
        except SegmentError as e:
            return {_node_path(e.path): _sentence(e.detail)}

        return self.check(segment)


def _node_path(path: str) -> str:
    return _FIELD_SUFFIX.sub("", path) or ROOT_PATH


def _sentence(detail: str) -> str:
    return detail[:1].upper() + detail[1:] + "."


def parse_preview_mpid(value: str | None) -> tuple[int | None, str | None]:
    """Return the MPID as an integer, or ``None`` and the error to show."""
    text = (value or "").strip()
    if not text:
        return None, "Enter the visitor's MPID to preview the segment."

    if not _MPID.match(text) or int(text) not in _INT64:
        return None, (
            "An MPID is a signed 64-bit whole number, such as -6917529027641081856."
        )

    return int(text), None


def preview(
    name: str, condition: Group, account_id: int, mpid: int
) -> EvaluationResult:
    """Evaluate the condition for the visitor ``mpid`` with the stored members."""
    audience_ids = db.session.scalars(
        select(Membership.audience_id).where(
            Membership.account_id == account_id,
            Membership.mpid == mpid,
            Membership.is_member,
        )
    ).all()
    return evaluate(Segment(name=name, condition=condition), audience_ids)
