"""Tests for browser.evaluation.

The named cases in ``cases/evaluation.json`` need nothing but the ``browser``
package: each is ``evaluate_definition(case["segment"], case["audiences"])``.
Decode the file with Python's :func:`json.loads` when running it in Pyodide,
because a JavaScript ``JSON.parse`` turns ``456.0`` into an integer.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import segments
from browser.evaluation import AUDIENCE_OPERATORS
from browser.evaluation import GROUP_OPERATORS
from browser.evaluation import INVALID_AUDIENCES_WHY
from browser.evaluation import MEMBERSHIP_UNKNOWN_WHY
from browser.evaluation import ConditionResult
from browser.evaluation import EvaluationResult
from browser.evaluation import Reason
from browser.evaluation import evaluate
from browser.evaluation import evaluate_all
from browser.evaluation import evaluate_all_definitions
from browser.evaluation import evaluate_definition
from browser.evaluation import kleene_and
from browser.evaluation import kleene_or
from browser.segments import parse_segment
from tests.segment_samples import CART_ABANDONERS

CASES_PATH = Path(__file__).parent / "cases" / "evaluation.json"
CASES = json.loads(CASES_PATH.read_text(encoding="utf-8"))
CASE_KEYS = {"name", "segment", "audiences", "expected", "expected_reason"}
OPTIONAL_CASE_KEYS = {"expected_outcomes", "expected_error"}


def run_case(case: dict[str, object]) -> EvaluationResult:
    return evaluate_definition(case["segment"], case["audiences"])


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_evaluation_case(case: dict[str, object]) -> None:
    result = run_case(case)

    assert result.decision is case["expected"]
    assert result.reason == case["expected_reason"]
    assert result.error == case.get("expected_error")

    if "expected_outcomes" in case:
        outcomes = [condition.outcome for condition in result.conditions]
        assert outcomes == case["expected_outcomes"]


def test_case_names_unique() -> None:
    names = [case["name"] for case in CASES]

    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case_format(case: dict[str, object]) -> None:
    assert CASE_KEYS <= case.keys()
    assert case.keys() <= CASE_KEYS | OPTIONAL_CASE_KEYS
    assert case["expected"] in (True, False, None)
    assert case["expected_reason"] in {reason.value for reason in Reason}

    audiences = case["audiences"]
    assert audiences is None or isinstance(audiences, list)

    for audience_id in audiences or []:
        assert type(audience_id) is int


def test_cases_cover_every_reason_except_invalid_audiences() -> None:
    reasons = {case["expected_reason"] for case in CASES}

    assert reasons == {reason.value for reason in Reason} - {"invalid_audiences"}


THREE_VALUES = [True, False, None]

KLEENE_AND = {
    (True, True): True,
    (True, False): False,
    (True, None): None,
    (False, True): False,
    (False, False): False,
    (False, None): False,
    (None, True): None,
    (None, False): False,
    (None, None): None,
}

KLEENE_OR = {
    (True, True): True,
    (True, False): True,
    (True, None): True,
    (False, True): True,
    (False, False): False,
    (False, None): None,
    (None, True): True,
    (None, False): None,
    (None, None): None,
}


@pytest.mark.parametrize(("left", "right"), list(KLEENE_AND), ids=str)
def test_kleene_and_truth_table(left: bool | None, right: bool | None) -> None:
    assert kleene_and([left, right]) is KLEENE_AND[left, right]


@pytest.mark.parametrize(("left", "right"), list(KLEENE_OR), ids=str)
def test_kleene_or_truth_table(left: bool | None, right: bool | None) -> None:
    assert kleene_or([left, right]) is KLEENE_OR[left, right]


def test_kleene_three_operands() -> None:
    for values in itertools.product(THREE_VALUES, repeat=3):
        first, second, third = values
        expected_and = KLEENE_AND[KLEENE_AND[first, second], third]
        expected_or = KLEENE_OR[KLEENE_OR[first, second], third]

        assert kleene_and(values) is expected_and, values
        assert kleene_or(values) is expected_or, values


def test_kleene_accepts_generators() -> None:
    assert kleene_and(value for value in [True, None]) is None
    assert kleene_or(value for value in [False, None, True]) is True


def test_operator_tables_match_segment_model() -> None:
    assert set(GROUP_OPERATORS) == set(segments.GROUP_OPERATORS)
    assert set(AUDIENCE_OPERATORS) == set(segments.AUDIENCE_OPERATORS)


def test_not_in_undecided_for_unknown_membership() -> None:
    assert AUDIENCE_OPERATORS["not_in"](None) is None
    assert AUDIENCE_OPERATORS["in"](None) is None
    assert AUDIENCE_OPERATORS["not_in"](False) is True
    assert AUDIENCE_OPERATORS["not_in"](True) is False


def test_conditions_explain_each_criterion() -> None:
    result = evaluate(parse_segment(CART_ABANDONERS), [456, 789])

    assert result.conditions == (
        ConditionResult(
            path="condition.criteria[0]",
            connector_id=1,
            audience_id=456,
            operator="in",
            outcome=True,
            why="visitor is in audience 456",
        ),
        ConditionResult(
            path="condition.criteria[1].criteria[0]",
            connector_id=1,
            audience_id=789,
            operator="not_in",
            outcome=False,
            why="visitor is in audience 789",
        ),
    )


def test_conditions_explain_non_membership() -> None:
    result = evaluate(parse_segment(CART_ABANDONERS), [])

    whys = [condition.why for condition in result.conditions]
    assert whys == ["visitor is not in audience 456", "visitor is not in audience 789"]


def test_conditions_explain_unknown_membership() -> None:
    result = evaluate(parse_segment(CART_ABANDONERS), None)

    assert result.decision is None
    assert result.reason is Reason.MEMBERSHIP_UNKNOWN
    assert result.error is None

    for condition in result.conditions:
        assert condition.outcome is None
        assert condition.why == MEMBERSHIP_UNKNOWN_WHY


def test_conditions_listed_without_short_circuit() -> None:
    raw = {
        "name": "Any of three",
        "condition": {
            "type": "group",
            "operator": "or",
            "criteria": [
                {"type": "audience", "connector_id": 1, "audience_id": audience_id}
                | {"operator": "in"}
                for audience_id in (1, 2, 3)
            ],
        },
    }

    result = evaluate(parse_segment(raw), [1])

    assert result.decision is True
    assert [condition.outcome for condition in result.conditions] == [
        True,
        False,
        False,
    ]


def test_to_dict_is_json_serialisable() -> None:
    result = evaluate(parse_segment(CART_ABANDONERS), [456])

    assert json.loads(json.dumps(result.to_dict())) == {
        "name": "Cart abandoners",
        "decision": True,
        "reason": "matched",
        "error": None,
        "conditions": [
            {
                "path": "condition.criteria[0]",
                "connector_id": 1,
                "audience_id": 456,
                "operator": "in",
                "outcome": True,
                "why": "visitor is in audience 456",
            },
            {
                "path": "condition.criteria[1].criteria[0]",
                "connector_id": 1,
                "audience_id": 789,
                "operator": "not_in",
                "outcome": True,
                "why": "visitor is not in audience 789",
            },
        ],
    }


def test_to_dict_contains_only_plain_types() -> None:
    # The dict is handed to JavaScript code, so a StrEnum member must not
    # stand in for a plain string.
    result = evaluate_definition(CART_ABANDONERS, None).to_dict()

    assert type(result["reason"]) is str
    assert type(result["conditions"]) is list
    assert type(result["conditions"][0]) is dict
    assert type(result["conditions"][0]["operator"]) is str


def test_invalid_definition_to_dict() -> None:
    raw = copy.deepcopy(CART_ABANDONERS)
    raw["condition"]["criteria"][1]["criteria"][0]["operator"] = "maybe"

    result = evaluate_definition(raw, [456])

    assert result.to_dict() == {
        "name": "Cart abandoners",
        "decision": None,
        "reason": "invalid_definition",
        "error": "condition.criteria[1].criteria[0].operator:"
        ' expected "in" or "not_in", got "maybe"',
        "conditions": [],
    }


def test_invalid_definition_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="browser.evaluation"):
        evaluate_definition({"name": "Broken"}, [456])

    assert caplog.messages == [
        "Invalid segment definition 'Broken': condition: required field is missing"
    ]


def test_invalid_definition_name_is_best_effort() -> None:
    assert evaluate_definition({"name": "  Broken  "}, [1]).name == "Broken"
    assert evaluate_definition({"name": 5}, [1]).name == ""
    assert evaluate_definition([], [1]).name == ""


@pytest.mark.parametrize(
    "audiences",
    [
        pytest.param([456], id="list"),
        pytest.param((456,), id="tuple"),
        pytest.param({456, 1}, id="set"),
        pytest.param(frozenset({456}), id="frozenset"),
        pytest.param(range(456, 457), id="range"),
        pytest.param((audience_id for audience_id in [456]), id="generator"),
    ],
)
def test_evaluate_accepts_iterables(audiences: object) -> None:
    result = evaluate(parse_segment(CART_ABANDONERS), audiences)

    assert result.decision is True
    assert result.reason is Reason.MATCHED


@pytest.mark.parametrize(
    ("audiences", "error"),
    [
        pytest.param(
            "456", 'audiences: expected a list of integers, got "456"', id="string"
        ),
        pytest.param(
            b"456",
            "audiences: expected a list of integers, got a Python bytes",
            id="bytes",
        ),
        pytest.param(
            {"456": True},
            "audiences: expected a list of integers, got an object",
            id="object",
        ),
        pytest.param(456, "audiences: expected a list of integers, got 456", id="int"),
        pytest.param(
            [456, "789"],
            'audiences[1]: expected an integer audience ID, got "789"',
            id="string item",
        ),
        pytest.param(
            [True],
            "audiences[0]: expected an integer audience ID, got true",
            id="boolean item",
        ),
        pytest.param(
            [456.0],
            "audiences[0]: expected an integer audience ID, got 456.0",
            id="float item",
        ),
        pytest.param(
            [None],
            "audiences[0]: expected an integer audience ID, got null",
            id="null item",
        ),
    ],
)
def test_invalid_audiences_undecided(audiences: object, error: str) -> None:
    result = evaluate(parse_segment(CART_ABANDONERS), audiences)

    assert result.decision is None
    assert result.reason is Reason.INVALID_AUDIENCES
    assert result.error == error

    for condition in result.conditions:
        assert condition.outcome is None
        assert condition.why == INVALID_AUDIENCES_WHY


def test_invalid_audiences_never_match_not_in() -> None:
    raw = {
        "name": "Not churned",
        "condition": {
            "type": "group",
            "operator": "and",
            "criteria": [
                {
                    "type": "audience",
                    "connector_id": 1,
                    "audience_id": 789,
                    "operator": "not_in",
                }
            ],
        },
    }

    result = evaluate_definition(raw, ["456"])

    assert result.decision is None
    assert result.reason == "invalid_audiences"


def test_evaluate_all_keys_by_name() -> None:
    cart = parse_segment(CART_ABANDONERS)
    renamed = parse_segment(CART_ABANDONERS | {"name": "Loyal buyers"})

    results = evaluate_all([cart, renamed], [456])

    assert list(results) == ["Cart abandoners", "Loyal buyers"]
    assert results["Cart abandoners"].decision is True
    assert results["Loyal buyers"].decision is True


def test_evaluate_all_reads_generator_once() -> None:
    first = parse_segment(CART_ABANDONERS)
    second = parse_segment(CART_ABANDONERS | {"name": "Second"})

    def audience_ids() -> Iterator[int]:
        yield 456

    results = evaluate_all([first, second], audience_ids())

    assert results["Cart abandoners"].decision is True
    assert results["Second"].decision is True


def test_evaluate_all_unknown_membership() -> None:
    results = evaluate_all([parse_segment(CART_ABANDONERS)], None)

    assert results["Cart abandoners"].decision is None
    assert results["Cart abandoners"].reason is Reason.MEMBERSHIP_UNKNOWN


def test_evaluate_all_keeps_first_duplicate(caplog: pytest.LogCaptureFixture) -> None:
    first = parse_segment(CART_ABANDONERS)
    raw_second = copy.deepcopy(CART_ABANDONERS)
    raw_second["condition"]["operator"] = "or"
    second = parse_segment(raw_second)

    with caplog.at_level(logging.WARNING, logger="browser.evaluation"):
        results = evaluate_all([first, second], [789])

    assert results["Cart abandoners"].decision is False
    assert caplog.messages == ["Skipped segment with duplicate name 'Cart abandoners'"]


def test_evaluate_all_definitions_mixes_valid_and_invalid() -> None:
    broken = {"name": "Broken", "condition": {"type": "group", "operator": "and"}}

    results = evaluate_all_definitions([CART_ABANDONERS, broken], [456])

    assert results["Cart abandoners"].reason is Reason.MATCHED
    assert results["Broken"].reason is Reason.INVALID_DEFINITION
    assert results["Broken"].error == ("condition.criteria: required field is missing")


def test_evaluate_all_empty() -> None:
    assert evaluate_all([], [456]) == {}
    assert evaluate_all_definitions([], None) == {}


def test_result_is_frozen() -> None:
    result = evaluate(parse_segment(CART_ABANDONERS), [456])

    with pytest.raises(AttributeError):
        result.decision = False  # type: ignore[misc]


JSON_SCALARS: list[object] = [None, True, False, 0, -1, 1, 2.5, "", "in", "group"]


def random_json(rng: random.Random, depth: int = 0) -> object:
    """Build a random decoded JSON value, biased towards segment-like keys."""
    kind = rng.randrange(4 if depth < 3 else 2)

    if kind == 0:
        return rng.choice(JSON_SCALARS)

    if kind == 1:
        return rng.randrange(-5, 1000)

    if kind == 2:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]

    keys = ["type", "operator", "criteria", "name", "condition", "audience_id"]
    return {key: random_json(rng, depth + 1) for key in rng.sample(keys, 3)}


def mutate(rng: random.Random, value: object) -> object:
    """Replace one randomly chosen node of a decoded JSON value."""
    if rng.random() < 0.3 or not isinstance(value, (dict, list)) or not value:
        return random_json(rng)

    mutated = copy.copy(value)

    if isinstance(mutated, dict):
        key = rng.choice(list(mutated))

        if rng.random() < 0.2:
            del mutated[key]
        else:
            mutated[key] = mutate(rng, mutated[key])
    else:
        index = rng.randrange(len(mutated))
        mutated[index] = mutate(rng, mutated[index])

    return mutated


def test_evaluate_definition_total_for_malformed_input() -> None:
    rng = random.Random(20261204)
    reasons: set[Reason] = set()

    for _ in range(3000):
        definition = mutate(rng, CART_ABANDONERS)
        audiences = rng.choice([None, [456], [789], "456", [456, None]])

        result = evaluate_definition(definition, audiences)
        reasons.add(result.reason)

        assert result.decision in (True, False, None)
        assert json.dumps(result.to_dict())

        if result.reason is Reason.INVALID_DEFINITION:
            assert result.decision is None
            assert result.conditions == ()

    # The mutations must reach both valid and invalid definitions, or the loop
    # above proves nothing.
    assert Reason.INVALID_DEFINITION in reasons
    assert Reason.MATCHED in reasons


def test_core_imports_only_stdlib() -> None:
    # The core runs in Pyodide without the server's dependencies, so importing
    # it must load nothing outside the standard library.
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import browser.evaluation, browser.segments\n"
        "loaded = {name.partition('.')[0] for name in set(sys.modules) - before}\n"
        "print(' '.join(sorted(loaded - set(sys.stdlib_module_names))))\n"
    )

    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert completed.stdout.split() == ["browser"]
