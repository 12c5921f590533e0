"""The dev set: well-formed, and every answer the engine gives on it is checkable.

The quality figures themselves (hit rates, abstention) are gated against
data/eval/thresholds.json by tests/test_eval_gate.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    json.loads(line)
    for line in (ROOT / "data" / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    if line.strip()
]


def test_dev_set_is_well_formed(engine: Engine) -> None:
    bodies = {doc_id: article.body for doc_id, article in engine.articles.items()}
    assert len(QUESTIONS) >= 40
    assert sum(not q["answerable"] for q in QUESTIONS) >= 6
    assert sum(bool(q.get("history")) for q in QUESTIONS) >= 2
    assert len({q["id"] for q in QUESTIONS}) == len(QUESTIONS)
    for q in QUESTIONS:
        if not q["answerable"]:
            assert q["answers"] == [] and q["sources"] == []
            continue
        for doc_id in q["sources"]:
            assert any(g in bodies[doc_id] for g in q["answers"]), (q["id"], doc_id)


@pytest.mark.parametrize("item", QUESTIONS, ids=[q["id"] for q in QUESTIONS])
def test_every_answer_is_verbatim_and_cited_to_sources_csv(engine: Engine, sources, item) -> None:
    result = engine.ask(item["question"], history=item.get("history", []))
    assert result.abstained == (not result.answers)
    for answer in result.answers:
        assert answer.text == answer.citations[0].text
        for c in answer.citations:
            assert engine.article(c.doc_id).body[c.start : c.end] == c.text
            row = sources[c.doc_id]
            assert (c.outlet, c.date, c.title, c.url) == (
                row["outlet"],
                row["date"],
                row["title"],
                row["url"],
            )
