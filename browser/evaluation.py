"""Decide segments for one visitor, with a reason for each decision.

Criteria use three-valued (Kleene) logic: an outcome is ``True``, ``False``
or ``None`` for undecided. Unknown membership leaves every audience
criterion undecided, ``not_in`` included, so a visitor whose audiences could
not be fetched never matches a segment by accident.

Evaluating a segment from :func:`~browser.segments.parse_segment` does not
raise, and neither does :func:`evaluate_definition` for any decoded JSON
value. The exception is an ``audiences`` iterator that raises itself. Results
convert to plain JSON-serialisable dicts with ``to_dict()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from browser.segments import MAX_NAME_LENGTH
from browser.segments import AudienceCriterion
from browser.segments import Criterion
from browser.segments import Group
from browser.segments import Segment
from browser.segments import SegmentError
from browser.segments import describe_value
from browser.segments import parse_segment

logger = logging.getLogger(__name__)

Outcome = bool | None

MEMBERSHIP_UNKNOWN_WHY = "membership unknown: audiences could not be fetched"
INVALID_AUDIENCES_WHY = "membership unknown: the audience list is invalid"


class Reason(StrEnum):
    """Machine-readable reason for a segment decision."""

    MATCHED = "matched"
    NOT_MATCHED = "not_matched"
    MEMBERSHIP_UNKNOWN = "membership_unknown"
    INVALID_AUDIENCES = "invalid_audiences"
    INVALID_DEFINITION = "invalid_definition"


@dataclass(frozen=True, slots=True)
class ConditionResult:
    """Outcome of one audience criterion, with a human-readable explanation."""

    path: str
    connector_id: int
    audience_id: int
    operator: str
    outcome: Outcome
    why: str

    def to_dict(self) -> dict[str, object]:
        """Convert the result to a JSON-serialisable dict."""
        return {
            "path": self.path,
            "connector_id": self.connector_id,
            "audience_id": self.audience_id,
            "operator": self.operator,
            "outcome": self.outcome,
            "why": self.why,
        }


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    """Decision on one segment for one visitor.

    ``decision`` is ``None`` when the segment cannot be decided. ``conditions``
    lists every audience criterion in document order, and ``error`` is the
    validation or membership error message when ``reason`` names one.
    """

    name: str
    decision: Outcome
    reason: Reason
    conditions: tuple[ConditionResult, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        """Convert the result to a JSON-serialisable dict of plain types."""
        return {
            "name": self.name,
            "decision": self.decision,
            "reason": self.reason.value,
            "error": self.error,
            "conditions": [condition.to_dict() for condition in self.conditions],
        }


@dataclass(frozen=True, slots=True)
class _Membership:
    """Audience IDs of the visitor, or ``None`` with the reason they are unknown."""

    audience_ids: frozenset[int] | None
    unknown_reason: Reason = Reason.MEMBERSHIP_UNKNOWN
    unknown_why: str = MEMBERSHIP_UNKNOWN_WHY
    error: str | None = None


def kleene_and(outcomes: Iterable[Outcome]) -> Outcome:
    """Combine outcomes with AND: any False wins, then any None, else True."""
    values = tuple(outcomes)

    if any(value is False for value in values):
        return False

    if any(value is None for value in values):
        return None

    return True


def kleene_or(outcomes: Iterable[Outcome]) -> Outcome:
    """Combine outcomes with OR: any True wins, then any None, else False."""
    values = tuple(outcomes)

    if any(value is True for value in values):
        return True

    if any(value is None for value in values):
        return None

    return False


def _is_in(is_member: Outcome) -> Outcome:
    return is_member


def _is_not_in(is_member: Outcome) -> Outcome:
    # Unknown membership must stay undecided, never turn into a match.
    if is_member is None:
        return None

    return not is_member


GROUP_OPERATORS: Mapping[str, Callable[[Iterable[Outcome]], Outcome]] = {
    "and": kleene_and,
    "or": kleene_or,
}
AUDIENCE_OPERATORS: Mapping[str, Callable[[Outcome], Outcome]] = {
    "in": _is_in,
    "not_in": _is_not_in,
}


def evaluate(segment: Segment, audiences: Iterable[int] | None) -> EvaluationResult:
    """Decide whether the visitor belongs to the segment.

    :param segment: a segment from :func:`~browser.segments.parse_segment`.
    :param audiences: IDs of the audiences the visitor is in, or ``None``
        when membership is unknown, for example because the fetch failed.
        A value that is not an iterable of integers makes the result
        undecided with reason ``invalid_audiences``.
    """
    return _evaluate_segment(segment, _resolve_membership(audiences))


def evaluate_definition(
    definition: object, audiences: Iterable[int] | None
) -> EvaluationResult:
    """Parse a decoded JSON segment definition and evaluate it.

    An invalid definition is logged and gives an undecided result with
    reason ``invalid_definition`` and the validation message as ``error``.
    """
    return _evaluate_definition(definition, _resolve_membership(audiences))


def evaluate_all(
    segments: Iterable[Segment], audiences: Iterable[int] | None
) -> dict[str, EvaluationResult]:
    """Evaluate parsed segments for one visitor, keyed by segment name.

    ``audiences`` is read once, so a generator works. When two segments share
    a name, the first one wins and the duplicate is logged.
    """
    membership = _resolve_membership(audiences)
    results: dict[str, EvaluationResult] = {}

    for segment in segments:
        _add_result(results, _evaluate_segment(segment, membership))

    return results


def evaluate_all_definitions(
    definitions: Iterable[object], audiences: Iterable[int] | None
) -> dict[str, EvaluationResult]:
    """Evaluate decoded JSON segment definitions, keyed by segment name.

    Invalid definitions give ``invalid_definition`` results like
    :func:`evaluate_definition`, keyed by their ``name`` if it is a string and
    by ``""`` otherwise. When two results share a name, the first one wins
    and the duplicate is logged.
    """
    membership = _resolve_membership(audiences)
    results: dict[str, EvaluationResult] = {}

    for definition in definitions:
        _add_result(results, _evaluate_definition(definition, membership))

    return results


def _add_result(results: dict[str, EvaluationResult], result: EvaluationResult) -> None:
    if result.name in results:
        logger.warning("Skipped segment with duplicate name %r", result.name)
        return

    results[result.name] = result


def _evaluate_definition(
    definition: object, membership: _Membership
) -> EvaluationResult:
    try:
        segment = parse_segment(definition)
    except SegmentError as error:
        name = _best_effort_name(definition)
        logger.warning("Invalid segment definition %r: %s", name, error)
        return EvaluationResult(
            name=name,
            decision=None,
            reason=Reason.INVALID_DEFINITION,
            error=str(error),
        )

    return _evaluate_segment(segment, membership)


def _evaluate_segment(segment: Segment, membership: _Membership) -> EvaluationResult:
    conditions: list[ConditionResult] = []
    decision = _evaluate_group(segment.condition, "condition", membership, conditions)

    # Every audience criterion is decided when membership is known, so an
    # undecided segment always comes from unknown or invalid membership.
    if decision is None:
        reason = membership.unknown_reason
    else:
        reason = Reason.MATCHED if decision else Reason.NOT_MATCHED

    return EvaluationResult(
        name=segment.name,
        decision=decision,
        reason=reason,
        conditions=tuple(conditions),
        error=membership.error,
    )


def _evaluate_group(
    group: Group,
    path: str,
    membership: _Membership,
    conditions: list[ConditionResult],
) -> Outcome:
    # Evaluate every criterion without short-circuiting, so the conditions
    # list explains each one.
    outcomes = [
        _evaluate_criterion(
            criterion, f"{path}.criteria[{index}]", membership, conditions
        )
        for index, criterion in enumerate(group.criteria)
    ]
    return GROUP_OPERATORS[group.operator](outcomes)


def _evaluate_criterion(
    criterion: Criterion,
    path: str,
    membership: _Membership,
    conditions: list[ConditionResult],
) -> Outcome:
    if isinstance(criterion, Group):
        return _evaluate_group(criterion, path, membership, conditions)

    condition = _evaluate_audience(criterion, path, membership)
    conditions.append(condition)
    return condition.outcome


def _evaluate_audience(
    criterion: AudienceCriterion, path: str, membership: _Membership
) -> ConditionResult:
    # NOTE: membership is matched on audience_id alone, because `audiences`
    # carries no connector. Audiences of two connectors with the same ID would
    # share membership.
    audience_ids = membership.audience_ids

    if audience_ids is None:
        is_member = None
        why = membership.unknown_why
    elif criterion.audience_id in audience_ids:
        is_member = True
        why = f"visitor is in audience {criterion.audience_id}"
    else:
        is_member = False
        why = f"visitor is not in audience {criterion.audience_id}"

    return ConditionResult(
        path=path,
        connector_id=criterion.connector_id,
        audience_id=criterion.audience_id,
        operator=criterion.operator,
        outcome=AUDIENCE_OPERATORS[criterion.operator](is_member),
        why=why,
    )


def _resolve_membership(audiences: Iterable[int] | None) -> _Membership:
    if audiences is None:
        return _Membership(audience_ids=None)

    # The audiences come from a network response, so a wrong shape makes the
    # membership unknown instead of raising in the page.
    if isinstance(audiences, (str, bytes, Mapping)) or not isinstance(
        audiences, Iterable
    ):
        return _invalid_membership(
            f"audiences: expected a list of integers, got {describe_value(audiences)}"
        )

    items = tuple(audiences)

    for index, item in enumerate(items):
        if not isinstance(item, int) or isinstance(item, bool):
            return _invalid_membership(
                f"audiences[{index}]: expected an integer audience ID,"
                f" got {describe_value(item)}"
            )

    return _Membership(audience_ids=frozenset(items))


def _invalid_membership(error: str) -> _Membership:
    logger.warning("Treating membership as unknown: %s", error)
    return _Membership(
        audience_ids=None,
        unknown_reason=Reason.INVALID_AUDIENCES,
        unknown_why=INVALID_AUDIENCES_WHY,
        error=error,
    )


def _best_effort_name(definition: object) -> str:
    name = definition.get("name") if isinstance(definition, Mapping) else None

    if not isinstance(name, str):
        return ""

    return name.strip()[:MAX_NAME_LENGTH]
