"""qa train-encoder on a tiny data set: it trains, leaves the validation out, and saves checked weights."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from qa.checksum import file_sha256
from qa.training.config import EncoderConfig
from qa.training.train_encoder import ENCODER_META, WEIGHTS_FILE, build_pairs, load_training, train_encoder

BODY = (
    "The Marlow ferry will stop running in March. "
    "Harbour master Lena Voss says the hull needs repairs. "
    "\u201cWe cannot risk another winter with it,\u201d she said. "
    "The crossing carries 400 passengers a day."
)


def _data(folder: Path) -> tuple[Path, Path]:
    train = folder / "train"
    train.mkdir()
    articles = [
        {"id": f"{p}01", "outlet": "Bay News", "date": "2024-01-02", "title": "Ferry", "body": BODY}
        for p in "ah"
    ]
    (train / "news_articles_a.jsonl").write_text("".join(json.dumps(a) + "\n" for a in articles))
    questions = []
    for article in ("a01", "h01"):
        for question, answer in (
            ("How many passengers use the crossing?", "400"),
            ("When will the ferry stop?", "March"),
        ):
            questions.append(
                {
                    "article": article,
                    "question": question,
                    "answer": answer,
                    "answer_start": BODY.index(answer),
                }
            )
        questions.append(
            {"article": article, "question": "Who owns the ferry?", "answer": None, "answer_start": None}
        )
    (train / "news_questions_a.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    context = "Paris is the capital of France. It lies on the Seine."
    xquad = {
        "data": [
            {
                "title": title,
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {
                                "question": "What river is Paris on?",
                                "answers": [{"text": "Seine", "answer_start": context.index("Seine")}],
                            }
                        ],
                    }
                ],
            }
            for title in ("Paris", "Rome")
        ]
    }
    path = folder / "xquad.json"
    path.write_text(json.dumps(xquad))
    return train, path


def test_pairs_leave_the_validation_and_unanswerables_out(tmp_path: Path) -> None:
    train, xquad = _data(tmp_path)
    docs, questions = load_training([train], xquad)
    pairs = build_pairs(docs, questions, EncoderConfig(), progress=False)
    # a01's 2 answerable questions and XQuAD fold 0 (Paris); h01 and Rome are the validation.
    assert sorted(p.source for p in pairs) == ["news", "news", "xquad"]
    for pair in pairs:
        assert pair.positive in BODY or "Seine" in pair.positive
        assert pair.positive not in pair.negatives and len(pair.negatives) <= 3


def test_training_writes_float16_weights_that_load_and_match_their_checksum(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    train, xquad = _data(tmp_path)
    out = tmp_path / "encoder"
    meta = train_encoder([train], xquad, out, replace(EncoderConfig(), batch=2), progress=False)
    assert meta["training_pairs"]["total"] == 3 and np.isfinite(meta["final_loss"])
    recorded = json.loads((out / ENCODER_META).read_text())
    assert recorded["sha256"] == file_sha256(out / WEIGHTS_FILE)
    assert (out / "README.md").read_text().count(recorded["sha256"]) == 1
    vectors = SentenceTransformer(str(out), device="cpu").encode(["When will the ferry stop?", BODY])
    assert vectors.shape == (2, 384) and np.all(np.isfinite(vectors))
