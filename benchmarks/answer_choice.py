"""Answer choice on held-out training questions: the table every answer-choice setting is chosen from.

Builds (once, then reuses) an index of all training news articles and one of
the XQuAD paragraphs, asks the held-out questions through the engine (the
news files whose ids start h or i, and XQuAD fold 1: nothing the shipped
reader or the encoder trained on, except that the reader saw all of XQuAD),
and ranks each question's read candidates several ways: by evidence, by the
old hand-set blend, by the reader, and by the combiner cross-validated by
event group. With ``--encoder`` it adds that encoder's cosine, to measure an
encoder before it is part of the index. ``--write-combiner`` fits the
combiner on every held-out news question and writes qa/models/combiner.json.

    .venv/bin/python benchmarks/answer_choice.py --encoder /tmp/encoder --write-combiner
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.answer.combiner import default_combiner_path  # noqa: E402
from qa.answer.reader import sigmoid  # noqa: E402
from qa.training.choice_cv import (  # noqa: E402
    abstention,
    as_statements,
    collect,
    cross_validated,
    news_validation,
    open_validation_engine,
    shipped_combiner,
    top_k_hits,
    xquad_validation,
)
from qa.training.config import EncoderConfig  # noqa: E402

XQUAD = ROOT.parent / "shared" / "benchmarks" / "xquad-en" / "xquad.en.json"
READS = (5, 8, 12, 16)
SHIPPED_READ = 12


def _encoder(path: Path | None):
    if path is None:
        return None
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu", model_kwargs={"dtype": torch.float32})
    return lambda texts: model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)


def _rows(records, has_encoder: bool) -> list[dict]:
    """top-1/top-3 of each ranking and candidate count over the answerable records."""
    rows = []

    def add(name: str, read: int, scores) -> None:
        rows.append(
            {
                "ranking": name,
                "read": read,
                "top1": round(top_k_hits(records, scores, 1), 4),
                "top3": round(top_k_hits(records, scores, 3), 4),
            }
        )

    evidence = [np.array([r.evidence for r in rec.reads]) for rec in records]
    add("evidence only", 16, evidence)
    blend = [
        0.1 * sigmoid(np.array([r.logit for r in rec.reads[:5]])) + 0.9 * e[:5]
        for rec, e in zip(records, evidence, strict=True)
    ]
    add("old blend: reader 0.1 over the best 5", 5, blend)
    for read in READS:
        add("reader alone", read, [np.array([r.logit for r in rec.reads[:read]]) for rec in records])
    if has_encoder:
        add(
            "encoder cosine alone",
            16,
            [rec.encoder_cosine if rec.encoder_cosine is not None else np.zeros(0) for rec in records],
        )
    for read in READS:
        add("combiner (cross-validated)", read, cross_validated(records, read))
        if has_encoder:
            add("combiner + encoder (cross-validated)", read, cross_validated(records, read, encoder=True))
    return rows


def _by_kind(records, scores) -> dict[str, dict]:
    kinds: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        if rec.answerable:
            kinds.setdefault(rec.question.kind, []).append(i)
    out = {}
    for kind, idx in sorted(kinds.items()):
        sub = [records[i] for i in idx]
        out[kind] = {"n": len(idx), "top1": round(top_k_hits(sub, [scores[i] for i in idx], 1), 4)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "choice-cv", help="validation indexes")
    parser.add_argument("--encoder", type=Path, help="a sentence-transformers folder to measure as a feature")
    parser.add_argument("--write-combiner", action="store_true", help="fit on all news records and ship it")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "answer_choice.json")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the candidate records the last run saved under --work"
    )
    parser.add_argument("--limit", type=int, help="ask only the first N questions of each set (a quick look)")
    args = parser.parse_args()
    started = time.time()
    encoder = _encoder(args.encoder)
    config = EncoderConfig()
    results: dict = {"encoder": str(args.encoder) if args.encoder else None, "sets": {}}
    news_articles, news_questions = news_validation(
        [ROOT / "data" / "train", ROOT / "data" / "train" / "v2"], config.heldout_news
    )
    xquad_articles, xquad_questions = xquad_validation(
        ROOT / "data" / "train", XQUAD, config.xquad_holdout, config.xquad_folds
    )
    news_records = None
    for name, articles, questions in (
        ("news", news_articles, news_questions),
        ("xquad", xquad_articles, xquad_questions),
    ):
        questions = questions[: args.limit] if args.limit else questions
        engine = open_validation_engine(articles, args.work / name, progress=True)
        cache = args.work / f"records-{name}-{len(questions)}-{'encoder' if encoder else 'plain'}.pkl"
        if args.reuse and cache.is_file():
            records = pickle.loads(cache.read_bytes())
        else:
            records = collect(engine, questions, max(READS), encoder)
            cache.write_bytes(pickle.dumps(records))
        combined = cross_validated(records, SHIPPED_READ)
        statements, lengths, extended = as_statements(records, engine.live.current().data)
        results["sets"][name] = {
            "articles": len(articles),
            "questions": len(records),
            "answerable": sum(r.answerable for r in records),
            "candidate_holds_answer": round(
                float(np.mean([r.correct.any() for r in records if r.answerable])), 4
            ),
            "rankings": _rows(records, encoder is not None),
            "by_kind_combiner": _by_kind(records, combined),
            "abstention_combiner": abstention(records, combined, 0.03),
            "statement_extracts": {
                "combiner_top1": round(top_k_hits(statements, combined, 1), 4),
                "combiner_top3": round(top_k_hits(statements, combined, 3), 4),
                "median_extract_chars": int(np.median(lengths)) if lengths else None,
                "statement_share": round(float(np.mean(extended)), 4) if extended else None,
            },
        }
        if name == "news":
            news_records, reader_sha = records, engine.reader.sha256 if engine.reader else ""
        print(json.dumps({name: results["sets"][name]}, indent=1), flush=True)
    results["seconds"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.write_combiner and news_records:
        abstain = results["sets"]["news"]["abstention_combiner"]
        combiner = shipped_combiner(
            news_records,
            SHIPPED_READ,
            reader_sha,
            {
                "read": SHIPPED_READ,
                "fit_on": f"{len(news_records)} held-out news questions (data/train/v2 files h, i)",
                "abstain_threshold": abstain["threshold"],
                "made_by": "benchmarks/answer_choice.py --write-combiner",
            },
        )
        default_combiner_path().write_text(json.dumps(combiner.to_json(), indent=2) + "\n", encoding="utf-8")
        print(f"combiner written to {default_combiner_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
