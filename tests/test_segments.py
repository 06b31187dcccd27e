from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from browser.segments import MAX_AUDIENCE_CRITERIA
from browser.segments import MAX_GROUP_DEPTH
from browser.segments import AudienceCriterion
from browser.segments import Group
from browser.segments import Segment
from browser.segments import SegmentError
from browser.segments import describe_value
from browser.segments import iter_audience_criteria
from browser.segments import parse_segment
from tests.segment_samples import CART_ABANDONERS


def audience(audience_id: object = 456, **overrides: object) -> dict[str, object]:
    criterion: dict[str, object] = {
        "type": "audience",
        "connector_id": 1,
        "audience_id": audience_id,
        "operator": "in",
    }
    criterion.update(overrides)
    return criterion


def group(operator: object, *criteria: object) -> dict[str, object]:
    return {"type": "group", "operator": operator, "criteria": list(criteria)}


def segment(condition: object, name: object = "Test segment") -> dict[str, object]:
    return {"name": name, "condition": condition}


def nested(depth: int) -> dict[str, object]:
    """Build a condition of ``depth`` groups, each inside the previous one."""
    condition = group("and", audience())

    for level in range(depth - 1):
        condition = group("or" if level % 2 == 0 else "and", condition)

    return condition


def test_parse_segment_builds_dataclasses() -> None:
    parsed = parse_segment(CART_ABANDONERS)

    assert parsed == Segment(
        name="Cart abandoners",
        condition=Group(
            operator="and",
            criteria=(
                AudienceCriterion(connector_id=1, audience_id=456, operator="in"),
                Group(
                    operator="or",
                    criteria=(
                        AudienceCriterion(
                            connector_id=1, audience_id=789, operator="not_in"
                        ),
                    ),
                ),
            ),
        ),
    )


def test_to_dict_round_trips_definition() -> None:
    parsed = parse_segment(CART_ABANDONERS)

    assert parsed.to_dict() == CART_ABANDONERS
    assert json.loads(json.dumps(parsed.to_dict())) == CART_ABANDONERS
    assert parse_segment(parsed.to_dict()) == parsed


def test_to_dict_keeps_key_order() -> None:
    serialised = json.dumps(parse_segment(CART_ABANDONERS).to_dict())

    assert serialised == json.dumps(CART_ABANDONERS)


def test_parse_segment_ignores_unknown_keys() -> None:
    raw = copy.deepcopy(CART_ABANDONERS)
    raw["id"] = 12
    raw["condition"]["label"] = "all of"
    raw["condition"]["criteria"][0]["note"] = "added in the console"

    parsed = parse_segment(raw)

    assert parsed == parse_segment(CART_ABANDONERS)
    assert parsed.to_dict() == CART_ABANDONERS


def test_parse_segment_does_not_modify_input() -> None:
    raw = copy.deepcopy(CART_ABANDONERS)
    raw["name"] = "  Cart abandoners  "
    before = copy.deepcopy(raw)

    parse_segment(raw)

    assert raw == before


def test_name_is_stripped() -> None:
    parsed = parse_segment(segment(group("and", audience()), name="  Buyers \n"))

    assert parsed.name == "Buyers"


def test_name_at_maximum_length_accepted() -> None:
    name = "n" * 200

    parsed = parse_segment(segment(group("and", audience()), name=f" {name} "))

    assert parsed.name == name


def test_name_over_maximum_length_rejected() -> None:
    raw = segment(group("and", audience()), name="n" * 201)

    with pytest.raises(SegmentError) as error:
        parse_segment(raw)

    assert error.value.path == "name"
    assert str(error.value) == (
        "name: expected at most 200 characters after stripping whitespace, got 201"
    )


INVALID_DEFINITIONS = [
    pytest.param(
        [group("and", audience())],
        "segment",
        "segment: expected an object, got a list",
        id="segment is a list",
    ),
    pytest.param(
        "Cart abandoners",
        "segment",
        'segment: expected an object, got "Cart abandoners"',
        id="segment is a string",
    ),
    pytest.param(
        {"condition": group("and", audience())},
        "name",
        "name: required field is missing",
        id="name missing",
    ),
    pytest.param(
        segment(group("and", audience()), name=None),
        "name",
        "name: expected a non-empty string, got null",
        id="name null",
    ),
    pytest.param(
        segment(group("and", audience()), name=7),
        "name",
        "name: expected a non-empty string, got 7",
        id="name number",
    ),
    pytest.param(
        segment(group("and", audience()), name=""),
        "name",
        'name: expected a non-empty string, got ""',
        id="name empty",
    ),
    pytest.param(
        segment(group("and", audience()), name=" \t"),
        "name",
        'name: expected a non-empty string, got " \\t"',
        id="name whitespace",
    ),
    pytest.param(
        {"name": "No condition"},
        "condition",
        "condition: required field is missing",
        id="condition missing",
    ),
    pytest.param(
        segment([audience()]),
        "condition",
        "condition: expected an object, got a list",
        id="condition is a list",
    ),
    pytest.param(
        segment(audience()),
        "condition",
        'condition: expected type "group", got "audience"',
        id="condition is an audience criterion",
    ),
    pytest.param(
        segment({"operator": "and", "criteria": [audience()]}),
        "condition.type",
        "condition.type: required field is missing",
        id="type missing",
    ),
    pytest.param(
        segment(group("and", {"type": "page_view", "url": "/cart"})),
        "condition.criteria[0].type",
        'condition.criteria[0].type: expected "group" or "audience", got "page_view"',
        id="type unknown",
    ),
    pytest.param(
        segment(group("xor", audience())),
        "condition.operator",
        'condition.operator: expected "and" or "or", got "xor"',
        id="group operator unknown",
    ),
    pytest.param(
        segment(group("AND", audience())),
        "condition.operator",
        'condition.operator: expected "and" or "or", got "AND"',
        id="group operator upper case",
    ),
    pytest.param(
        segment({"type": "group", "criteria": [audience()]}),
        "condition.operator",
        "condition.operator: required field is missing",
        id="group operator missing",
    ),
    pytest.param(
        segment(group(["and"], audience())),
        "condition.operator",
        'condition.operator: expected "and" or "or", got a list',
        id="group operator list",
    ),
    pytest.param(
        segment(group("and")),
        "condition.criteria",
        "condition.criteria: expected a non-empty list, got an empty list",
        id="criteria empty",
    ),
    pytest.param(
        segment({"type": "group", "operator": "and", "criteria": audience()}),
        "condition.criteria",
        "condition.criteria: expected a non-empty list, got an object",
        id="criteria object",
    ),
    pytest.param(
        segment({"type": "group", "operator": "and"}),
        "condition.criteria",
        "condition.criteria: required field is missing",
        id="criteria missing",
    ),
    pytest.param(
        segment(group("and", audience(), 456)),
        "condition.criteria[1]",
        "condition.criteria[1]: expected an object, got 456",
        id="criterion is a number",
    ),
    pytest.param(
        segment(group("and", audience(), audience(789, operator="maybe"))),
        "condition.criteria[1].operator",
        'condition.criteria[1].operator: expected "in" or "not_in", got "maybe"',
        id="audience operator unknown",
    ),
    pytest.param(
        segment(group("and", audience(operator=None))),
        "condition.criteria[0].operator",
        'condition.criteria[0].operator: expected "in" or "not_in", got null',
        id="audience operator null",
    ),
    pytest.param(
        segment(group("and", audience("456"))),
        "condition.criteria[0].audience_id",
        'condition.criteria[0].audience_id: expected an integer, got "456"',
        id="audience id string",
    ),
    pytest.param(
        segment(group("and", audience(True))),
        "condition.criteria[0].audience_id",
        "condition.criteria[0].audience_id: expected an integer, got true",
        id="audience id boolean",
    ),
    pytest.param(
        segment(group("and", audience(456.0))),
        "condition.criteria[0].audience_id",
        "condition.criteria[0].audience_id: expected an integer, got 456.0",
        id="audience id integral float",
    ),
    pytest.param(
        segment(group("and", audience(None))),
        "condition.criteria[0].audience_id",
        "condition.criteria[0].audience_id: expected an integer, got null",
        id="audience id null",
    ),
    pytest.param(
        segment(group("and", {"type": "audience", "connector_id": 1})),
        "condition.criteria[0].audience_id",
        "condition.criteria[0].audience_id: required field is missing",
        id="audience id missing",
    ),
    pytest.param(
        segment(group("and", audience(connector_id=0))),
        "condition.criteria[0].connector_id",
        "condition.criteria[0].connector_id: expected a positive integer, got 0",
        id="connector id zero",
    ),
    pytest.param(
        segment(group("and", audience(connector_id=-3))),
        "condition.criteria[0].connector_id",
        "condition.criteria[0].connector_id: expected a positive integer, got -3",
        id="connector id negative",
    ),
    pytest.param(
        segment(group("and", audience(connector_id=True))),
        "condition.criteria[0].connector_id",
        "condition.criteria[0].connector_id: expected a positive integer, got true",
        id="connector id boolean",
    ),
    pytest.param(
        segment(group("and", audience(connector_id=1.5))),
        "condition.criteria[0].connector_id",
        "condition.criteria[0].connector_id: expected a positive integer, got 1.5",
        id="connector id float",
    ),
    pytest.param(
        segment(group("and", audience(connector_id="1"))),
        "condition.criteria[0].connector_id",
        'condition.criteria[0].connector_id: expected a positive integer, got "1"',
        id="connector id string",
    ),
    pytest.param(
        segment(group("and", group("or", audience(), audience(operator="is")))),
        "condition.criteria[0].criteria[1].operator",
        "condition.criteria[0].criteria[1].operator:"
        ' expected "in" or "not_in", got "is"',
        id="nested error path",
    ),
]


@pytest.mark.parametrize(("raw", "path", "message"), INVALID_DEFINITIONS)
def test_parse_segment_rejects_invalid(raw: object, path: str, message: str) -> None:
    with pytest.raises(SegmentError) as error:
        parse_segment(raw)

    assert error.value.path == path
    assert str(error.value) == message


def test_segment_error_is_value_error() -> None:
    error = SegmentError("condition.operator", "expected a string")

    assert isinstance(error, ValueError)
    assert error.path == "condition.operator"
    assert error.detail == "expected a string"
    assert str(error) == "condition.operator: expected a string"


def test_nesting_at_maximum_depth_accepted() -> None:
    parsed = parse_segment(segment(nested(MAX_GROUP_DEPTH)))

    paths = [path for path, _ in iter_audience_criteria(parsed)]
    assert paths == ["condition" + ".criteria[0]" * MAX_GROUP_DEPTH]


def test_nesting_over_maximum_depth_rejected() -> None:
    with pytest.raises(SegmentError) as error:
        parse_segment(segment(nested(MAX_GROUP_DEPTH + 1)))

    assert error.value.path == "condition" + ".criteria[0]" * MAX_GROUP_DEPTH
    assert error.value.detail == (
        "groups may be nested at most 5 deep, and this group is at depth 6"
    )


def test_nesting_checked_before_group_contents() -> None:
    too_deep = nested(MAX_GROUP_DEPTH + 1)
    innermost = too_deep

    for _ in range(MAX_GROUP_DEPTH):
        innermost = innermost["criteria"][0]

    innermost["operator"] = "xor"

    with pytest.raises(SegmentError) as error:
        parse_segment(segment(too_deep))

    assert error.value.detail.startswith("groups may be nested at most")


def test_maximum_audience_criteria_accepted() -> None:
    criteria = [audience(index) for index in range(MAX_AUDIENCE_CRITERIA)]

    parsed = parse_segment(segment(group("or", *criteria)))

    assert len(list(iter_audience_criteria(parsed))) == MAX_AUDIENCE_CRITERIA


def test_too_many_audience_criteria_rejected() -> None:
    criteria = [audience(index) for index in range(MAX_AUDIENCE_CRITERIA + 1)]

    with pytest.raises(SegmentError) as error:
        parse_segment(segment(group("or", *criteria)))

    assert error.value.path == "condition.criteria[100]"
    assert str(error.value) == (
        "condition.criteria[100]: a segment may contain at most 100 audience"
        " criteria, so split it into smaller segments"
    )


def test_audience_criteria_counted_across_groups() -> None:
    first = group("and", *[audience(index) for index in range(60)])
    second = group("and", *[audience(index) for index in range(41)])

    with pytest.raises(SegmentError) as error:
        parse_segment(segment(group("or", first, second)))

    assert error.value.path == "condition.criteria[1].criteria[40]"


def test_groups_not_counted_as_audience_criteria() -> None:
    criteria = [group("and", audience(index)) for index in range(50)]
    criteria += [audience(index) for index in range(50)]

    parsed = parse_segment(segment(group("or", *criteria)))

    assert len(list(iter_audience_criteria(parsed))) == 100


def test_huge_criteria_list_rejected() -> None:
    criteria = [audience(index) for index in range(100_000)]

    with pytest.raises(SegmentError) as error:
        parse_segment(segment(group("or", *criteria)))

    assert error.value.path == "condition.criteria[100]"


def test_audience_id_beyond_64_bits_accepted() -> None:
    parsed = parse_segment(segment(group("and", audience(2**70))))

    assert parsed.condition.criteria == (
        AudienceCriterion(connector_id=1, audience_id=2**70, operator="in"),
    )


def test_iter_audience_criteria_document_order() -> None:
    parsed = parse_segment(CART_ABANDONERS)

    assert list(iter_audience_criteria(parsed)) == [
        (
            "condition.criteria[0]",
            AudienceCriterion(connector_id=1, audience_id=456, operator="in"),
        ),
        (
            "condition.criteria[1].criteria[0]",
            AudienceCriterion(connector_id=1, audience_id=789, operator="not_in"),
        ),
    ]


def test_parsed_segment_is_frozen() -> None:
    parsed = parse_segment(CART_ABANDONERS)

    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.name = "Renamed"  # type: ignore[misc]

    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.condition.operator = "or"  # type: ignore[misc]

    assert isinstance(parsed.condition.criteria, tuple)


def test_parsed_segment_is_hashable() -> None:
    assert hash(parse_segment(CART_ABANDONERS)) == hash(
        parse_segment(copy.deepcopy(CART_ABANDONERS))
    )


def test_describe_value_truncates_long_strings() -> None:
    assert describe_value("x" * 41) == json.dumps("x" * 40 + "...")
    assert describe_value("x" * 40) == json.dumps("x" * 40)
