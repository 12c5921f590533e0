"""Reader training examples: gold sentences, hard negatives, folds, and checked offsets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.embedding.embedder import Embedder
from qa.errors import InputError
from qa.training.examples import build_examples, fold_of, gold_sentence, load_sources, split_by_fold

BODY = (
    "A ferry captain hurt in a collision says it is not the first time he has been injured at sea. "
    "Captain Ivo Brandt, 52, was steering the Nordlys when it struck a pier on Tuesday. "
    "In 2017 he broke his wrist when a wave hit the bridge. "
    "The harbour board said repairs would cost $40,000."
)
XQUAD = {
    "data": [
        {
            "title": "Lighthouses",
            "paragraphs": [
                {
                    "context": "The Fastnet lighthouse was finished in 1904. It stands on a rock off Cork.",
                    "qas": [
                        {
                            "id": "x1",
                            "question": "When was the Fastnet lighthouse finished?",
                            "answers": [{"text": "1904", "answer_start": 39}],
                        }
                    ],
                }
            ],
        },
        {
            "title": "Canals",
            "paragraphs": [
                {
                    "context": "The Grand Canal is 132 km long. It links Dublin with the Shannon.",
                    "qas": [
                        {
                            "id": "x2",
                            "question": "How long is the Grand Canal?",
                            "answers": [{"text": "132 km", "answer_start": 19}],
                        }
                    ],
                }
            ],
        },
    ]
}


def _write(folder: Path, questions: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    article = {"id": "t01", "outlet": "Test Wire", "date": "2019-05-01", "title": "Ferry", "body": BODY}
    (folder / "news_articles_t.jsonl").write_text(json.dumps(article) + "\n", encoding="utf-8")
    lines = "".join(json.dumps(q) + "\n" for q in questions)
    (folder / "news_questions_t.jsonl").write_text(lines, encoding="utf-8")
    xquad = folder / "xquad.json"
    xquad.write_text(json.dumps(XQUAD), encoding="utf-8")
    return xquad


def _question(question: str, answer: str | None, history: list[str] | None = None) -> dict:
    start = BODY.index(answer) if answer else None
    return {
        "article": "t01",
        "question": question,
        "answer": answer,
        "answer_start": start,
        "history": history,
    }


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_examples_hold_the_answering_sentence_and_no_other_answer(tmp_path: Path, embedder: Embedder) -> None:
    xquad = _write(
        tmp_path,
        [
            _question("When did the captain break his wrist?", "2017"),
            _question("What is the name of the captain's wife?", None),
            _question("How much will the repairs cost?", "$40,000", ["Who was steering the Nordlys?"]),
        ],
    )
    docs, questions = load_sources(tmp_path, xquad)
    assert len(questions) == 5  # 2 from XQuAD, 3 written
    examples = build_examples(docs, questions, embedder, group_size=3, context_chars=240, progress=False)
    by_question = {e.question: e for e in examples}
    wrist = by_question["When did the captain break his wrist?"]
    assert len(wrist.candidates) == 3
    assert wrist.candidates[wrist.gold].startswith("In 2017 he broke his wrist")
    # Context: the sentence before, after the candidate.
    assert "[SEP] Captain Ivo Brandt, 52" in wrist.candidates[wrist.gold]
    assert sum("2017" in c.split(" [SEP] ")[0] for c in wrist.candidates) == 1
    assert by_question["What is the name of the captain's wife?"].gold == -1
    follow_up = by_question["Who was steering the Nordlys? How much will the repairs cost?"]
    assert "$40,000" in follow_up.candidates[follow_up.gold].split(" [SEP] ")[0]
    # The lead restates the wrist question without answering it: a hard negative.
    assert any(c.startswith("A ferry captain hurt") for c in wrist.candidates)


def test_a_wrong_answer_offset_is_refused(tmp_path: Path) -> None:
    bad = _question("When did the captain break his wrist?", "2017")
    bad["answer_start"] += 1
    xquad = _write(tmp_path, [bad])
    with pytest.raises(InputError, match="is not at offset"):
        load_sources(tmp_path, xquad)


def test_holdout_drops_exactly_one_fold_of_xquad_articles(tmp_path: Path, embedder: Embedder) -> None:
    xquad = _write(tmp_path, [_question("When did the captain break his wrist?", "2017")])
    docs, questions = load_sources(tmp_path, xquad)
    examples = build_examples(docs, questions, embedder, group_size=4, context_chars=0, progress=False)
    titles = ["Lighthouses", "Canals"]
    assert [fold_of(t, titles, 2) for t in titles] == [0, 1]
    kept = split_by_fold(examples, titles, holdout=0, folds=2)
    assert {e.group for e in kept} == {"Canals", "news"}
    assert len(split_by_fold(examples, titles, holdout=None, folds=2)) == len(examples)


def test_gold_sentence_is_the_one_holding_the_answer_start(tmp_path: Path) -> None:
    xquad = _write(tmp_path, [])
    docs, _ = load_sources(tmp_path, xquad)
    doc = docs["news:t01"]
    assert gold_sentence(doc, BODY.index("2017")) == 2
    assert gold_sentence(doc, 0) == 0
