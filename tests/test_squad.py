"""SQuAD JSON -> temporary corpus -> real index -> evaluation, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.cli import main
from qa.corpus.folder import load_corpus
from qa.errors import InputError
from qa.evaluation.squad import evaluate_squad, fold_questions, load_squad, parse_squad, write_corpus

# Three paragraphs under two titles; the first context starts with whitespace
# (the loader strips it, so answer_start would point at the wrong place) and
# the second title repeats it word for word (one article, two titles).
GLACIER = "  The Aletsch Glacier is the largest glacier in the Alps. It is about 23 kilometres long."
VOLCANO = (
    "Mount Etna is an active stratovolcano on the east coast of Sicily. "
    "Its most recent major eruption began in 2021 and sent lava towards the village of Zafferana."
)
TELESCOPE = (
    "The Hubble Space Telescope was launched into low Earth orbit in 1990. "
    "It was named after the astronomer Edwin Hubble."
)
SQUAD = {
    "version": "v2.0",
    "data": [
        {
            "title": "Nature",
            "paragraphs": [
                {
                    "context": GLACIER,
                    "qas": [
                        {
                            "id": "g1",
                            "question": "How long is the Aletsch Glacier?",
                            "answers": [{"text": "about 23 kilometres", "answer_start": 66}],
                            "is_impossible": False,
                        },
                        {
                            "id": "g2",
                            "question": "Who won the 1998 football World Cup final?",
                            "answers": [],
                            "plausible_answers": [{"text": "Alps", "answer_start": 53}],
                            "is_impossible": True,
                        },
                    ],
                },
                {
                    "context": VOLCANO,
                    "qas": [
                        {
                            "id": "v1",
                            "question": "Where is Mount Etna?",
                            "answers": [
                                {"text": "the east coast of Sicily", "answer_start": 43},
                                {"text": "Sicily", "answer_start": 61},
                                {"text": "Sicily", "answer_start": 61},
                            ],
                        }
                    ],
                },
            ],
        },
        {
            "title": "Space",
            "paragraphs": [
                {
                    "context": TELESCOPE,
                    "qas": [
                        {
                            "id": "t1",
                            "question": "When was the Hubble Space Telescope launched?",
                            "answers": [{"text": "1990", "answer_start": 64}],
                        }
                    ],
                },
                {
                    "context": GLACIER,
                    "qas": [
                        {
                            "id": "g3",
                            "question": "What is the largest glacier in the Alps?",
                            "answers": [{"text": "The Aletsch Glacier", "answer_start": 2}],
                        }
                    ],
                },
            ],
        },
    ],
}


@pytest.fixture()
def squad_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-squad.json"
    path.write_text(json.dumps(SQUAD), encoding="utf-8")
    return path


def test_parse_keeps_golds_as_text_and_merges_repeated_contexts(squad_file: Path) -> None:
    squad = load_squad(squad_file)
    assert squad.name == "tiny-squad"
    assert [p.context for p in squad.paragraphs] == [GLACIER, VOLCANO, TELESCOPE]
    by_id = {q.id: q for q in squad.questions}
    assert by_id["v1"].answers == ("the east coast of Sicily", "Sicily")  # duplicate dropped
    assert by_id["g1"].sources == by_id["g3"].sources == ("p00000",)
    assert not by_id["g2"].answerable
    assert by_id["g2"].answers == by_id["g2"].sources == ()


def test_written_corpus_loads_through_the_real_loader(squad_file: Path, tmp_path: Path) -> None:
    write_corpus(load_squad(squad_file), tmp_path / "corpus")
    load = load_corpus(tmp_path / "corpus")
    assert load.problems == ()
    articles = {a.doc_id: a for a in load.articles}
    assert articles["p00000"].body == GLACIER.lstrip()
    assert (articles["p00001"].outlet, articles["p00001"].title) == ("tiny-squad", "Nature")
    assert "about 23 kilometres" in articles["p00000"].body


def test_bad_squad_shape_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"data\[0\].paragraphs\[0\]: expected 'context'"):
        parse_squad({"data": [{"title": "x", "paragraphs": [{"qas": []}]}]}, "bad")
    with pytest.raises(InputError, match="top level: expected 'data'"):
        parse_squad({"version": "1.1"}, "bad")


def test_squad_end_to_end(squad_file: Path) -> None:
    evaluation = evaluate_squad(squad_file, progress=False)
    assert [run.mode for run in evaluation.runs] == ["hybrid", "bm25", "dense", "no-reader", "reader-only"]
    summary = evaluation.runs[0].summary
    assert (summary.questions, summary.answerable, summary.unanswerable) == (5, 4, 1)
    # Three unrelated paragraphs: the gold paragraph must come first every time.
    assert summary.source_hit_at[0] == 1.0
    assert summary.citation_accuracy == 1.0
    # The off-topic question counts for abstention, not for answer metrics.
    assert summary.abstention_recall == 1.0
    outcomes = {o.id: o for o in evaluation.runs[0].outcomes}
    assert outcomes["t1"].contains_gold
    assert (outcomes["t1"].cited_outlet, outcomes["t1"].cited_date) == ("tiny-squad", "undated")
    # Matched by text although the loader shifted the first context by two characters.
    assert outcomes["g3"].hits[0]


def test_cli_refuses_questions_and_squad_together(
    squad_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "data/eval/questions.jsonl", "--squad", str(squad_file)]) == 1
    assert "one of them" in capsys.readouterr().err


def test_fold_keeps_only_that_folds_articles(squad_file: Path) -> None:
    squad = load_squad(squad_file)
    titles = list(dict.fromkeys(p.title for p in squad.paragraphs))
    title_of = {p.doc_id: p.title for p in squad.paragraphs}
    parts = [fold_questions(squad, k, 2) for k in (0, 1)]
    answerable = [q for q in squad.questions if q.sources]
    assert sorted(q.id for part in parts for q in part) == sorted(q.id for q in answerable)
    for k, part in enumerate(parts):
        assert all(titles.index(title_of[q.sources[0]]) % 2 == k for q in part)
