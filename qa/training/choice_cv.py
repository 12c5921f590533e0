"""Answer-choice validation: the engine's real candidate lists for held-out training questions.

The dev set's 45 questions cannot choose between settings a few points apart,
so every weight, threshold and candidate count of answer choice is chosen here:
on training questions no shipped model was trained on (news articles of the
held-out files, see qa.training.config.EncoderConfig, and an XQuAD fold),
asked through the engine over an index of all the training articles, so
retrieval and the candidates are the ones a user gets. The combiner is fit
with cross-validation by event group: no question is scored by weights fit on
its own article or on another outlet's account of the same event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from qa.answer.answers import extract_sentences, read_candidates
from qa.answer.combiner import Combiner, Read, features
from qa.answer.reader import sigmoid
from qa.engine import Engine
from qa.evaluation.metrics import normalize_answer
from qa.training.examples import fold_of, load_sources


@dataclass(frozen=True)
class HeldOutQuestion:
    """A validation question: its article in the validation corpus, its answer (None: unanswerable)."""

    question: str
    history: tuple[str, ...]
    doc_id: str
    answer: str | None
    answer_start: int | None
    kind: str
    source: str
    group: str


@dataclass(frozen=True)
class CandidateRecord:
    """What the engine gave for one question: its read candidates, best by evidence first, and which answer.

    ``encoder_cosine`` holds, when measured, another encoder's question-sentence cosines.
    """

    question: HeldOutQuestion
    asked: str
    reads: tuple[Read, ...]
    correct: np.ndarray
    encoder_cosine: np.ndarray | None = None

    @property
    def answerable(self) -> bool:
        return self.question.answer is not None

    def matrix(self, read: int, encoder: bool = False) -> np.ndarray:
        """The features of the ``read`` best candidates by evidence, and the encoder's if asked."""
        x = features(self.asked, self.reads[:read])
        if encoder and self.encoder_cosine is not None and len(x):
            cos = self.encoder_cosine[:read]
            x = np.column_stack([x, cos, cos - cos.max()])
        return x


def news_validation(
    folders: Sequence[Path], prefixes: Sequence[str]
) -> tuple[list[dict], list[HeldOutQuestion]]:
    """All training news articles (the corpus); the questions on articles with a held-out id prefix."""
    articles: list[dict] = []
    for folder in folders:
        for path in sorted(folder.glob("news_articles_*.jsonl")):
            articles.extend(
                json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line
            )
    groups = event_groups(articles)
    questions: list[HeldOutQuestion] = []
    for folder in folders:
        for path in sorted(folder.glob("news_questions_*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if not item["article"].startswith(tuple(prefixes)):
                    continue
                questions.append(
                    HeldOutQuestion(
                        item["question"],
                        tuple(item.get("history") or ()),
                        item["article"],
                        item.get("answer"),
                        item.get("answer_start"),
                        item.get("kind", "factoid"),
                        "news",
                        groups[item["article"]],
                    )
                )
    return articles, questions


def event_groups(articles: Sequence[dict]) -> dict[str, str]:
    """Articles on one event share a group: same file letter and titles the packaged model finds close.

    A second outlet's account and a follow-up story name the same people and
    places, so their titles sit above 0.6 cosine; unrelated stories sit far below.
    """
    from qa.embedding.embedder import Embedder
    from qa.embedding.packaged import PACKAGED_MODEL

    vectors = Embedder(PACKAGED_MODEL).encode([a["title"] + ". " + a["body"][:300] for a in articles])
    parent = list(range(len(articles)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sims = vectors @ vectors.T
    for i in range(len(articles)):
        for j in range(i + 1, len(articles)):
            if articles[i]["id"][0] == articles[j]["id"][0] and sims[i, j] >= 0.6:
                parent[root(j)] = root(i)
    return {a["id"]: articles[root(i)]["id"] for i, a in enumerate(articles)}


def xquad_validation(
    train_dir: Path, xquad: Path, holdout: int, folds: int
) -> tuple[list[dict], list[HeldOutQuestion]]:
    """Every XQuAD paragraph as an article (the corpus), and the questions of fold ``holdout``'s articles."""
    docs, raw = load_sources(train_dir, xquad)
    titles = list(dict.fromkeys(d.group for d in docs.values() if d.group != "news"))
    articles = [
        {"id": key.replace(":", "_"), "outlet": d.group, "title": d.group, "body": d.text}
        for key, d in docs.items()
        if d.group != "news"
    ]
    questions = [
        HeldOutQuestion(
            q.question,
            (),
            q.doc_key.replace(":", "_"),
            q.answer,
            q.answer_start,
            q.source,
            "xquad",
            docs[q.doc_key].group,
        )
        for q in raw
        if q.source != "news" and fold_of(docs[q.doc_key].group, titles, folds) == holdout
    ]
    return articles, questions


def open_validation_engine(articles: Sequence[dict], index_dir: Path, progress: bool) -> Engine:
    """An engine over ``articles`` written as one JSON Lines archive (rebuilt only when they change)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    archive = index_dir / "corpus.jsonl"
    text = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles)
    if not archive.is_file() or archive.read_text(encoding="utf-8") != text:
        archive.write_text(text, encoding="utf-8")
    return Engine.open(archive, index_dir / "index", progress=progress)


def collect(
    engine: Engine,
    questions: Sequence[HeldOutQuestion],
    read: int,
    encoder: Callable[[Sequence[str]], np.ndarray] | None = None,
    progress: bool = True,
) -> list[CandidateRecord]:
    """Ask every question; keep the ``read`` best candidates by evidence with their features.

    ``encoder`` (texts to unit vectors), when given, adds its question-sentence
    cosine as one more column, to measure an encoder not yet in the index.
    """
    from tqdm import tqdm

    settings = replace(engine.settings, reader_candidates=read)
    records = []
    for q in tqdm(questions, desc="asking held-out questions", unit="question", disable=not progress):
        found = engine.retrieval(q.question, q.history)
        data = found.data
        scored, reads = read_candidates(
            data, found.prepared, found.fused, settings, engine.reader, found.outlets
        )
        cosine = None
        if encoder is not None and reads:
            vectors = encoder([found.prepared.text] + [r.text for r in reads])
            cosine = vectors[1:] @ vectors[0]
        correct = np.array(
            [
                _answers(data, s.sentence_id, r.text, q)
                for s, r in zip(scored[: len(reads)], reads, strict=True)
            ],
            dtype=bool,
        )
        records.append(CandidateRecord(q, found.prepared.text, tuple(reads), correct, cosine))
    return records


def as_statements(
    records: Sequence[CandidateRecord], data
) -> tuple[list[CandidateRecord], list[int], list[bool]]:
    """The records with each candidate shown as its extract (qa.answer.statement), its length, if a statement.

    A candidate counts as correct when any sentence of its extract holds the answer.
    """
    out, lengths, statements = [], [], []
    for record in records:
        correct = []
        for read in record.reads:
            first, last = extract_sentences(data, read.candidate.sentence_id)
            texts = [data.sentence_text(sid) for sid in range(first, last + 1)]
            lengths.append(data.sentence_row(last).end - data.sentence_row(first).start)
            statements.append(last > first)
            correct.append(
                any(
                    _answers(data, sid, t, record.question)
                    for sid, t in zip(range(first, last + 1), texts, strict=True)
                )
            )
        out.append(replace(record, correct=np.array(correct, dtype=bool)))
    return out, lengths, statements


def _answers(data, sid: int, text: str, q: HeldOutQuestion) -> bool:
    """Whether sentence ``sid`` is in the question's own article and holds its answer."""
    if q.answer is None:
        return False
    row = data.sentence_row(sid)
    if data.article(row.article).doc_id != q.doc_id:
        return False
    if q.answer_start is not None and row.start <= q.answer_start < row.end:
        return True
    answer = normalize_answer(q.answer)
    return bool(answer) and answer in normalize_answer(text)


def fit_logistic(
    records: Sequence[CandidateRecord], read: int, encoder: bool = False, c: float = 1.0
) -> tuple[np.ndarray, float]:
    """Logistic regression weights over the records' candidate features (standardised, then folded back)."""
    from sklearn.linear_model import LogisticRegression

    kept = [r for r in records if r.reads]
    x = np.vstack([r.matrix(read, encoder) for r in kept])
    y = np.concatenate([r.correct[:read] for r in kept])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, y)
    weights = model.coef_[0] / scale
    return weights, float(model.intercept_[0] - (mean * weights).sum())


def cross_validated(
    records: Sequence[CandidateRecord], read: int, encoder: bool = False, folds: int = 5, c: float = 1.0
) -> list[np.ndarray]:
    """Each question's candidate probabilities from weights fit on the other event groups' folds."""
    groups = sorted({r.question.group for r in records})
    fold = {g: i % folds for i, g in enumerate(groups)}
    out: list[np.ndarray] = [np.zeros(0)] * len(records)
    for k in range(folds):
        weights, bias = fit_logistic([r for r in records if fold[r.question.group] != k], read, encoder, c)
        for i, r in enumerate(records):
            if fold[r.question.group] == k and r.reads:
                out[i] = sigmoid(r.matrix(read, encoder) @ weights + bias)
    return out


def top_k_hits(records: Sequence[CandidateRecord], scores: Sequence[np.ndarray], k: int) -> float:
    """Share of answerable questions with an answering sentence among the ``k`` best scored."""
    hits = [
        bool(r.correct[: len(s)][np.argsort(-s, kind="stable")[:k]].any()) if len(s) else False
        for r, s in zip(records, scores, strict=True)
        if r.answerable
    ]
    return float(np.mean(hits)) if hits else 0.0


def abstention(records: Sequence[CandidateRecord], scores: Sequence[np.ndarray], max_false: float) -> dict:
    """The highest threshold on the best score wrongly abstaining on at most ``max_false`` of answerables."""
    best = [float(s.max()) if len(s) else 0.0 for s in scores]
    answerable = np.array([b for b, r in zip(best, records, strict=True) if r.answerable])
    unanswerable = np.array([b for b, r in zip(best, records, strict=True) if not r.answerable])
    threshold = float(np.quantile(answerable, max_false)) if len(answerable) else 0.0
    return {
        "threshold": round(threshold, 4),
        "false_abstention": round(float(np.mean(answerable < threshold)), 4) if len(answerable) else None,
        "unanswerable_abstained": round(float(np.mean(unanswerable < threshold)), 4)
        if len(unanswerable)
        else None,
        "unanswerable": len(unanswerable),
    }


def shipped_combiner(
    records: Sequence[CandidateRecord], read: int, reader_sha256: str, meta: dict
) -> Combiner:
    """The combiner over FEATURES fit on all the validation records, for qa/models/combiner.json."""
    weights, bias = fit_logistic(records, read)
    return Combiner(weights, bias, reader_sha256, meta)
