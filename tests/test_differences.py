"""Where outlets differ, end to end: the real model and index over a fixture of three articles.

``tests/fixtures/differ`` holds three short fictional articles written for these
tests. Harbour Times and Coastal Wire tell one auction and differ on the price
($2.4 million vs $2.1 million) and the seller's age (71 vs 74); they agree on
how long the bidding lasted ("twelve minutes" vs "12 minutes") and when it
opened (10am). Portmere Post tells another auction, whose figures must never be
set against theirs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.answer.differences import group_values
from qa.answer.values import read_value, same_value
from qa.cli import main
from qa.engine import Engine
from qa.records import ReportedValue
from qa.web.result_json import result_json

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "differ"
PRICE = "How much did the Arden violin sell for?"
AGE = "How old is the seller of the violin?"
AGREED = ("How long did the bidding for the violin last?", "What time did the violin auction begin?")


@pytest.fixture(scope="module")
def differ_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("differ") / "index"
    Engine.open(FIXTURE, index, progress=False)
    return index


@pytest.fixture(scope="module")
def differ(differ_index: Path) -> Engine:
    return Engine.open(FIXTURE, differ_index, progress=False)


def _values(engine: Engine, question: str) -> dict[str, str]:
    result = engine.ask(question)
    assert len(result.differences) == 1
    return {v.outlet: v.text for v in result.differences[0].values}


def test_a_price_the_outlets_report_differently_is_flagged_with_both_values(differ):
    assert _values(differ, PRICE) == {"Harbour Times": "$2.4 million", "Coastal Wire": "$2.1 million"}
    assert differ.ask(PRICE).differences[0].kind == "money"


def test_an_age_the_outlets_report_differently_is_flagged(differ):
    assert _values(differ, AGE) == {"Harbour Times": "71", "Coastal Wire": "74-year-old"}


@pytest.mark.parametrize("question", AGREED)
def test_values_that_agree_once_normalised_are_no_difference(differ, question):
    result = differ.ask(question)
    assert not result.abstained
    assert result.differences == ()


def test_another_event_in_the_archive_is_never_compared(differ):
    assert differ.ask("How much did the racing car sell for?").differences == ()
    for difference in differ.ask(PRICE).differences:
        assert "Portmere Post" not in {v.outlet for v in difference.values}


def test_each_value_maps_back_to_its_article(differ):
    for question in (PRICE, AGE):
        for difference in differ.ask(question).differences:
            for value in difference.values:
                assert differ.article(value.doc_id).body[value.start : value.end] == value.text


def test_json_and_cli_carry_the_difference(differ_index, capsys):
    assert main(["ask", "--corpus", str(FIXTURE), "--index", str(differ_index), "--json", PRICE]) == 0
    out = json.loads(capsys.readouterr().out)
    [difference] = out["differences"]
    assert difference["kind"] == "money"
    assert {v["outlet"]: v["normalized"] for v in difference["values"]} == {
        "Harbour Times": "$2400000",
        "Coastal Wire": "$2100000",
    }
    assert set(difference["values"][0]) == {"text", "normalized", "doc_id", "outlet", "date", "start", "end"}
    assert main(["ask", "--corpus", str(FIXTURE), "--index", str(differ_index), PRICE]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("outlets differ: "))
    assert sorted(line.removeprefix("outlets differ: ").split(" vs ")) == [
        "$2.1 million (Coastal Wire, 2023-06-12)",
        "$2.4 million (Harbour Times, 2023-06-12)",
    ]
    assert main(["ask", "--corpus", str(FIXTURE), "--index", str(differ_index), "--json", AGREED[0]]) == 0
    assert json.loads(capsys.readouterr().out)["differences"] == []


def test_the_bundled_dev_questions_raise_no_difference(engine):
    """No false "differences" on the bundled corpus's dev set (issue 17's bar); a person checked this."""
    questions = [json.loads(line) for line in Path("data/eval/questions.jsonl").read_text().splitlines()]
    flagged = {q["id"]: engine.ask(q["question"]).differences for q in questions}
    assert {k: v for k, v in flagged.items() if v} == {}


WORDS = st.sampled_from(
    ["violin", "Arden", "auction", "price", "seller", "bidding", "Sunday", "car", "Kelsey", "Bay", "minutes"]
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["How much", "How many", "How old", "When", "What time", "Who", "Where"]),
    st.lists(WORDS, min_size=1, max_size=5),
)
def test_any_difference_cites_different_articles_at_their_exact_text(differ, opening, words):
    result = differ.ask(f"{opening} {' '.join(words)}?")
    for difference in result.differences:
        docs = [v.doc_id for v in difference.values]
        assert len(docs) == len(set(docs)) >= 2
        assert len({v.normalized for v in difference.values}) >= 2
        for value in difference.values:
            assert differ.article(value.doc_id).body[value.start : value.end] == value.text
        assert result_json(result)["differences"]


AMOUNTS = st.sampled_from(
    ["$43,000", "43,000 dollars", "$43,350", "$2.1 million", "about $44,000", "£43,000"]
)


@given(st.lists(AMOUNTS, min_size=1, max_size=6))
def test_a_difference_needs_two_articles_whose_values_disagree(texts):
    values = []
    for n, text in enumerate(texts):
        value = read_value("amount", text)
        values.append(
            (value, ReportedValue(text, value.normalized, f"doc{n}", f"Outlet {n}", "2020-01-01", 0, 1))
        )
    found = group_values(values)
    agree = all(same_value(a, b) for a, _ in values for b, _ in values)
    assert (found == ()) if agree else bool(found)
    for difference in found:
        assert len({v.doc_id for v in difference.values}) == len(difference.values) >= 2
