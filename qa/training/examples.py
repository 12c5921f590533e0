"""Training examples for the reader: each question with a short list of candidate sentences.

Sources (``data/train/README.md`` says how each was made):

- XQuAD-en (CC BY-SA 4.0): the original questions, and the team's extra
  questions over the same 240 paragraphs (``xquad_extra_*.jsonl``);
- short news-style articles the team wrote on unrelated topics, with
  questions (``news_articles_*.jsonl``, ``news_questions_*.jsonl``).

A question's candidates are the sentence that holds its answer plus the
sentences most like the question by the packaged bi-encoder (hard negatives:
exactly the sentences today's ranking confuses with the answer), each with
the sentence before it as context, as the engine shows them to the reader.
Sentences that also contain the answer text are left out rather than called
wrong. Unanswerable questions have no gold candidate. Nothing here reads
``data/eval/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.answer.reader import reader_candidate, reader_question
from qa.embedding.encoder import Encoder
from qa.errors import InputError
from qa.evaluation.metrics import normalize_answer
from qa.index.split import split_sentences


@dataclass(frozen=True)
class Document:
    """A text the questions are asked about, with its sentences' offsets."""

    key: str
    group: str  # the unit folds are drawn by: an XQuAD article title, or "news"
    text: str
    spans: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class RawQuestion:
    """A labelled question: ``answer_start`` None means unanswerable."""

    doc_key: str
    question: str
    answer: str | None
    answer_start: int | None
    source: str
    history: tuple[str, ...] = ()
    # A sentence of the article that looks like the answer and is not (the
    # attribution before a quote, the topic sentence): a forced negative.
    distractor: str | None = None


@dataclass(frozen=True)
class ReaderExample:
    """One training item: the reader's inputs and which one answers (-1: none)."""

    question: str
    candidates: tuple[str, ...]
    gold: int
    group: str
    source: str


def _read_jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise InputError(f"{path}:{number}: not valid JSON: {exc}") from None


def _document(key: str, group: str, text: str) -> Document:
    spans = tuple((s.start, s.end) for s in split_sentences(key, text))
    return Document(key, group, text, spans)


def load_sources(train_dir: Path, xquad: Path) -> tuple[dict[str, Document], list[RawQuestion]]:
    """All documents and labelled questions from XQuAD and ``train_dir``."""
    if not xquad.is_file():
        raise InputError(f"XQuAD file not found: {xquad}")
    docs: dict[str, Document] = {}
    questions: list[RawQuestion] = []
    raw = json.loads(xquad.read_text(encoding="utf-8"))
    for article in raw["data"]:
        title = article["title"]
        for p, paragraph in enumerate(article["paragraphs"]):
            key = f"xquad:{title}:{p}"
            docs[key] = _document(key, title, paragraph["context"])
            for qa in paragraph["qas"]:
                answer = qa["answers"][0]
                questions.append(
                    RawQuestion(key, qa["question"], answer["text"], answer["answer_start"], "xquad")
                )
    for path in sorted(train_dir.glob("xquad_extra_*.jsonl")):
        for item in _read_jsonl(path):
            key = f"xquad:{item['title']}:{item['paragraph']}"
            if key not in docs:
                raise InputError(f"{path}: no XQuAD paragraph {item['title']!r} #{item['paragraph']}")
            questions.append(
                RawQuestion(
                    key, item["question"], item.get("answer"), item.get("answer_start"), "xquad-extra"
                )
            )
    for path in sorted(train_dir.glob("news_articles_*.jsonl")):
        for item in _read_jsonl(path):
            key = f"news:{item['id']}"
            docs[key] = _document(key, "news", item["body"])
    for path in sorted(train_dir.glob("news_questions_*.jsonl")):
        for item in _read_jsonl(path):
            key = f"news:{item['article']}"
            if key not in docs:
                raise InputError(f"{path}: no article {item['article']!r}")
            questions.append(
                RawQuestion(
                    key,
                    item["question"],
                    item.get("answer"),
                    item.get("answer_start"),
                    "news",
                    tuple(item.get("history") or ()),
                    item.get("distractor"),
                )
            )
    for q in questions:
        doc = docs[q.doc_key]
        if (
            q.answer_start is not None
            and doc.text[q.answer_start : q.answer_start + len(q.answer or "")] != q.answer
        ):
            raise InputError(f"answer {q.answer!r} is not at offset {q.answer_start} of {q.doc_key}")
    return docs, questions


def load_training(train_dirs: Sequence[Path], xquad: Path) -> tuple[dict[str, Document], list[RawQuestion]]:
    """Documents and questions of XQuAD and every team data folder, XQuAD read once."""
    if not train_dirs:
        raise InputError("no training data folder given")
    docs, questions = load_sources(train_dirs[0], xquad)
    for folder in train_dirs[1:]:
        more_docs, more = load_sources(folder, xquad)
        docs.update({k: d for k, d in more_docs.items() if d.group == "news"})
        questions.extend(q for q in more if q.source == "news")
    return docs, questions


def news_held_out(question: RawQuestion, prefixes: Sequence[str]) -> bool:
    """Whether a news question is on a validation article (its id starts with one of ``prefixes``)."""
    return question.source == "news" and question.doc_key.removeprefix("news:").startswith(tuple(prefixes))


def gold_sentence(doc: Document, answer_start: int) -> int:
    """Index of the sentence holding character ``answer_start``, or the nearest before it."""
    best = 0
    for i, (start, _end) in enumerate(doc.spans):
        if start <= answer_start:
            best = i
    return best


def build_examples(
    docs: dict[str, Document],
    questions: Sequence[RawQuestion],
    embedder: Encoder,
    group_size: int,
    context_chars: int,
    progress: bool = True,
) -> list[ReaderExample]:
    """Turn labelled questions into reader examples with hard negatives.

    Negatives come from the question's own document and, for XQuAD, the
    other paragraphs of the same article (which retrieval also brings up).
    """
    # Every sentence of every document, with the text the reader will see.
    sentence_text: list[str] = []
    reader_text: list[str] = []
    first: dict[str, int] = {}
    for key, doc in docs.items():
        first[key] = len(sentence_text)
        for i, (start, end) in enumerate(doc.spans):
            before = doc.text[doc.spans[i - 1][0] : doc.spans[i - 1][1]] if i else ""
            sentence_text.append(doc.text[start:end])
            reader_text.append(reader_candidate(doc.text[start:end], before, context_chars))
    pools: dict[str, list[int]] = {}
    for key, doc in docs.items():
        pools.setdefault(_pool(doc), []).extend(range(first[key], first[key] + len(doc.spans)))
    sentence_vectors = embedder.encode(sentence_text, progress=progress)
    question_vectors = embedder.encode([q.question for q in questions], progress=progress)
    examples = []
    for q, vector in zip(questions, question_vectors, strict=True):
        doc = docs[q.doc_key]
        pool = pools[_pool(doc)]
        gold = None if q.answer_start is None else first[q.doc_key] + gold_sentence(doc, q.answer_start)
        answer = normalize_answer(q.answer or "")
        ranked = sorted(pool, key=lambda sid: -float(sentence_vectors[sid] @ vector))
        negatives = [
            sid
            for sid in ranked
            if sid != gold and not (answer and answer in normalize_answer(sentence_text[sid]))
        ]
        # The written distractor (the attribution, the topic sentence) always competes.
        forced = [sid for sid in negatives if q.distractor and sentence_text[sid] == q.distractor]
        negatives = forced[:1] + [sid for sid in negatives if sid not in forced[:1]]
        chosen = ([gold] if gold is not None else []) + negatives[: group_size - (gold is not None)]
        order = sorted(chosen)  # the gold's position must carry no signal
        previous = q.history[-1] if q.history else None
        examples.append(
            ReaderExample(
                question=reader_question(q.question, previous),
                candidates=tuple(reader_text[sid] for sid in order),
                gold=order.index(gold) if gold is not None else -1,
                group=doc.group,
                source=q.source,
            )
        )
    return examples


def _pool(doc: Document) -> str:
    """Where a question's negatives come from: its news article, or its whole XQuAD article."""
    return doc.key if doc.group == "news" else doc.group


def fold_of(group: str, groups: Sequence[str], folds: int) -> int:
    """The cross-validation fold of an XQuAD article: its position in the file, modulo ``folds``."""
    return groups.index(group) % folds


def split_by_fold(
    examples: Sequence[ReaderExample], xquad_titles: Sequence[str], holdout: int | None, folds: int
) -> list[ReaderExample]:
    """The examples to train on: all, or all but the XQuAD articles of fold ``holdout``."""
    if holdout is None:
        return list(examples)
    return [e for e in examples if e.group == "news" or fold_of(e.group, xquad_titles, folds) != holdout]


def class_counts(examples: Sequence[ReaderExample]) -> dict[str, int]:
    """Examples per source, and how many are unanswerable, for the model card."""
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.source] = counts.get(e.source, 0) + 1
    counts["unanswerable"] = sum(e.gold < 0 for e in examples)
    counts["total"] = len(examples)
    return counts


def candidates_per_example(examples: Sequence[ReaderExample]) -> float:
    return float(np.mean([len(e.candidates) for e in examples])) if examples else 0.0
