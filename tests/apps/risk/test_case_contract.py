"""The JSON case contract: malformed input names the field; one-class training is refused."""

from __future__ import annotations

import pytest

from luodi.apps.risk.case import inputs_sha256, parse_cases, parse_labelled
from luodi.apps.risk.learners import check_two_classes
from luodi.errors import InvalidRequestError
from tests.apps.risk.cases import card_testing_case, labelled_set


@pytest.mark.parametrize(
    ("mutate", "param"),
    [
        (lambda c: c.pop("id"), "cases[0].id"),
        (lambda c: c["events"][2].update(ts="yesterday"), "cases[0].events[2].ts"),
        (lambda c: c["events"][1].update(amount="lots"), "cases[0].events[1].amount"),
        (lambda c: c["events"][0].pop("type"), "cases[0].events[0].type"),
        (lambda c: c["features"].update(bad=[1, 2]), "cases[0].features.bad"),
        (lambda c: c.update(colour="red"), "cases[0].colour"),
    ],
)
def test_a_malformed_case_is_refused_naming_the_field(mutate, param: str) -> None:
    case = card_testing_case()
    mutate(case)
    with pytest.raises(InvalidRequestError) as caught:
        parse_cases([case])
    assert caught.value.param is not None
    assert caught.value.param.startswith(param)
    assert caught.value.status_code == 400


def test_a_label_other_than_zero_or_one_is_refused() -> None:
    item = {**card_testing_case(), "label": 2}
    with pytest.raises(InvalidRequestError) as caught:
        parse_labelled([item])
    assert caught.value.param == "cases[0].label"


def test_duplicate_case_ids_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="appears twice"):
        parse_cases([card_testing_case(), card_testing_case()])


def test_events_may_be_empty() -> None:
    [case] = parse_cases([{"id": "a", "features": {"x": 1}, "events": []}])
    assert case.events == []


def test_training_on_one_class_only_is_a_clear_error() -> None:
    only_fraud = [c for c in parse_labelled(labelled_set(10)) if c.label == 1]
    with pytest.raises(InvalidRequestError, match=r"all 5 labelled cases have label 1"):
        check_two_classes(only_fraud)


def test_the_inputs_hash_ignores_key_order() -> None:
    raw = card_testing_case()
    reordered = {"events": raw["events"], "features": raw["features"], "id": raw["id"]}
    [a] = parse_cases([raw])
    [b] = parse_cases([reordered])
    assert inputs_sha256(a) == inputs_sha256(b)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_numbers_are_refused(bad: float) -> None:
    case = card_testing_case()
    case["features"]["account_age_days"] = bad
    with pytest.raises(InvalidRequestError):
        parse_cases([case])
    case = card_testing_case()
    case["events"][0]["amount"] = bad
    with pytest.raises(InvalidRequestError) as caught:
        parse_cases([case])
    assert caught.value.param == "cases[0].events[0].amount"
