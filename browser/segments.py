"""Parse, validate and serialise segment definitions.

A segment definition is the JSON object that the server stores and the tag
receives::

    {"name": "Cart abandoners",
     "condition": {"type": "group", "operator": "and", "criteria": [
         {"type": "audience", "connector_id": 1, "audience_id": 456,
          "operator": "in"}]}}

:func:`parse_segment` turns it into frozen dataclasses and raises
:class:`SegmentError` naming the JSON path of the first invalid field.
Unknown keys are ignored on input and left out by ``to_dict()``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from typing import TypeGuard
from typing import TypeVar
from typing import cast

MAX_NAME_LENGTH = 200
MAX_GROUP_DEPTH = 5
MAX_AUDIENCE_CRITERIA = 100

GroupOperator = Literal["and", "or"]
AudienceOperator = Literal["in", "not_in"]

GROUP_OPERATORS: tuple[GroupOperator, ...] = ("and", "or")
AUDIENCE_OPERATORS: tuple[AudienceOperator, ...] = ("in", "not_in")
CRITERION_TYPES = ("group", "audience")

_Choice = TypeVar("_Choice", bound=str)

_MISSING = object()
_MAX_QUOTED_LENGTH = 40


class SegmentError(ValueError):
    """Invalid segment definition.

    :param path: JSON path of the invalid value, e.g. ``condition.criteria[1]``.
    :param detail: what is wrong with the value.
    """

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


@dataclass(frozen=True, slots=True)
class AudienceCriterion:
    """External data criterion: membership of one mParticle audience."""

    connector_id: int
    audience_id: int
    operator: AudienceOperator

    def to_dict(self) -> dict[str, object]:
        """Serialise the criterion to its wire format."""
        return {
            "type": "audience",
            "connector_id": self.connector_id,
            "audience_id": self.audience_id,
            "operator": self.operator,
        }


@dataclass(frozen=True, slots=True)
class Group:
    """Criteria combined with ``and`` or ``or``."""

    operator: GroupOperator
    criteria: tuple[Criterion, ...]

    def to_dict(self) -> dict[str, object]:
        """Serialise the group and its criteria to their wire format."""
        return {
            "type": "group",
            "operator": self.operator,
            "criteria": [criterion.to_dict() for criterion in self.criteria],
        }


Criterion = Group | AudienceCriterion


@dataclass(frozen=True, slots=True)
class Segment:
    """Named targeting segment whose condition is always a group."""

    name: str
    condition: Group

    def to_dict(self) -> dict[str, object]:
        """Serialise the segment to the JSON object :func:`parse_segment` reads."""
        return {"name": self.name, "condition": self.condition.to_dict()}


def parse_segment(raw: object) -> Segment:
    """Parse and validate a decoded JSON segment definition.

    :param raw: the definition as decoded by :func:`json.loads`.
    :raises SegmentError: if any field is missing or invalid. The message
        starts with the JSON path of that field.
    """
    data = _require_object(raw, "segment")
    name = _parse_name(_get(data, "name", "name"), "name")
    condition = _parse_criterion(
        _get(data, "condition", "condition"), "condition", _CriteriaCount()
    )

    if not isinstance(condition, Group):
        raise SegmentError("condition", 'expected type "group", got "audience"')

    return Segment(name=name, condition=condition)


def iter_audience_criteria(
    segment: Segment,
) -> Iterator[tuple[str, AudienceCriterion]]:
    """Yield each audience criterion with its JSON path, in document order."""
    yield from _walk(segment.condition, "condition")


def _walk(group: Group, path: str) -> Iterator[tuple[str, AudienceCriterion]]:
    for index, criterion in enumerate(group.criteria):
        child_path = f"{path}.criteria[{index}]"

        if isinstance(criterion, Group):
            yield from _walk(criterion, child_path)
        else:
            yield child_path, criterion


class _CriteriaCount:
    """Number of audience criteria parsed so far in one segment."""

    def __init__(self) -> None:
        self.value = 0

    def add(self, path: str) -> None:
        self.value += 1

        if self.value > MAX_AUDIENCE_CRITERIA:
            raise SegmentError(
                path,
                f"a segment may contain at most {MAX_AUDIENCE_CRITERIA} audience"
                " criteria, so split it into smaller segments",
            )


def _parse_name(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SegmentError(
            path, f"expected a non-empty string, got {describe_value(value)}"
        )

    name = value.strip()

    if len(name) > MAX_NAME_LENGTH:
        raise SegmentError(
            path,
            f"expected at most {MAX_NAME_LENGTH} characters after stripping"
            f" whitespace, got {len(name)}",
        )

    return name


def _parse_criterion(
    raw: object, path: str, count: _CriteriaCount, depth: int = 1
) -> Criterion:
    data = _require_object(raw, path)
    criterion_type = _get(data, "type", f"{path}.type")

    if criterion_type == "group":
        return _parse_group(data, path, count, depth)

    if criterion_type == "audience":
        count.add(path)
        return _parse_audience_criterion(data, path)

    raise SegmentError(
        f"{path}.type",
        f"expected {_choices(CRITERION_TYPES)}, got {describe_value(criterion_type)}",
    )


def _parse_group(
    data: Mapping[object, object], path: str, count: _CriteriaCount, depth: int
) -> Group:
    if depth > MAX_GROUP_DEPTH:
        raise SegmentError(
            path,
            f"groups may be nested at most {MAX_GROUP_DEPTH} deep, and this group"
            f" is at depth {depth}",
        )

    operator = _parse_choice(data, "operator", path, GROUP_OPERATORS)
    items = _get(data, "criteria", f"{path}.criteria")

    if not isinstance(items, (list, tuple)) or not items:
        raise SegmentError(
            f"{path}.criteria",
            f"expected a non-empty list, got {describe_value(items)}",
        )

    criteria = tuple(
        _parse_criterion(item, f"{path}.criteria[{index}]", count, depth + 1)
        for index, item in enumerate(items)
    )
    return Group(operator=operator, criteria=criteria)


def _parse_audience_criterion(
    data: Mapping[object, object], path: str
) -> AudienceCriterion:
    connector_id = _get(data, "connector_id", f"{path}.connector_id")

    if not _is_int(connector_id) or connector_id <= 0:
        raise SegmentError(
            f"{path}.connector_id",
            f"expected a positive integer, got {describe_value(connector_id)}",
        )

    audience_id = _get(data, "audience_id", f"{path}.audience_id")

    if not _is_int(audience_id):
        raise SegmentError(
            f"{path}.audience_id",
            f"expected an integer, got {describe_value(audience_id)}",
        )

    operator = _parse_choice(data, "operator", path, AUDIENCE_OPERATORS)
    return AudienceCriterion(
        connector_id=connector_id, audience_id=audience_id, operator=operator
    )


def _parse_choice(
    data: Mapping[object, object],
    key: str,
    path: str,
    choices: tuple[_Choice, ...],
) -> _Choice:
    value = _get(data, key, f"{path}.{key}")

    if isinstance(value, str) and value in choices:
        return cast(_Choice, value)

    raise SegmentError(
        f"{path}.{key}", f"expected {_choices(choices)}, got {describe_value(value)}"
    )


def _require_object(value: object, path: str) -> Mapping[object, object]:
    if not isinstance(value, Mapping):
        raise SegmentError(path, f"expected an object, got {describe_value(value)}")

    return value


def _get(data: Mapping[object, object], key: str, path: str) -> object:
    value = data.get(key, _MISSING)

    if value is _MISSING:
        raise SegmentError(path, "required field is missing")

    return value


def _is_int(value: object) -> TypeGuard[int]:
    # bool is a subclass of int, but true and false are never audience IDs.
    return isinstance(value, int) and not isinstance(value, bool)


def _choices(choices: tuple[str, ...]) -> str:
    quoted = [json.dumps(choice) for choice in choices]

    if len(quoted) == 2:
        return f"{quoted[0]} or {quoted[1]}"

    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


def describe_value(value: object) -> str:
    """Describe a decoded JSON value for an error message, in JSON terms.

    Scalars appear as JSON (strings quoted and cut to 40 characters), lists
    and objects by their kind only.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)

    if isinstance(value, str):
        if len(value) > _MAX_QUOTED_LENGTH:
            return json.dumps(value[:_MAX_QUOTED_LENGTH] + "...")

        return json.dumps(value)

    if isinstance(value, (list, tuple)):
        return "an empty list" if not value else "a list"

    if isinstance(value, Mapping):
        return "an object"

    return f"a Python {type(value).__name__}"
