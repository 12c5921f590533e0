"""SQuAD v1.1/v2.0 JSON as an evaluation: contexts become a pooled corpus.

Every distinct context is written as one article file (with a ``sources.csv``
giving the dataset name as outlet and the Wikipedia title as title) and goes
through ``Engine.open``, so the benchmark exercises the real loading and
indexing path. Every question is then asked against the whole pool.
"""

from __future__ import annotations

import csv
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.corpus.folder import SOURCES_COLUMNS, SOURCES_FILE
from qa.errors import InputError
from qa.evaluation.evaluate import MODES, EvalQuestion, Evaluation, Mode, evaluate


@dataclass(frozen=True)
class SquadParagraph:
    """One distinct context of the dataset, under the file name it is written as."""

    doc_id: str
    title: str
    context: str


@dataclass(frozen=True)
class SquadSet:
    """A SQuAD file as paragraphs plus questions whose sources are paragraph ids."""

    name: str
    paragraphs: tuple[SquadParagraph, ...]
    questions: tuple[EvalQuestion, ...]


def _field(value: object, key: str, kind: type, where: str) -> Any:
    if not isinstance(value, dict) or not isinstance(value.get(key), kind):
        raise InputError(f"{where}: expected {key!r} to be a {kind.__name__} (SQuAD v1.1/v2.0 format)")
    return value[key]


def parse_squad(raw: dict[str, Any], name: str) -> SquadSet:
    """Turn decoded SQuAD JSON into paragraphs and questions.

    Gold answers are kept as text, not ``answer_start``: the corpus loader
    strips leading whitespace from bodies, which would shift every offset.
    A v2.0 question marked ``is_impossible`` (or with no answers) is unanswerable.

    Raises:
        InputError: the JSON is not in SQuAD shape.
    """
    paragraphs: dict[str, SquadParagraph] = {}
    questions: list[EvalQuestion] = []
    for a, article in enumerate(_field(raw, "data", list, "top level")):
        title = article.get("title", "") if isinstance(article, dict) else ""
        for p, paragraph in enumerate(_field(article, "paragraphs", list, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, where)
            if not context.strip():
                raise InputError(f"{where}: empty context")
            # Identical contexts are one article, so a question about either
            # is answered by the one document the index holds.
            if context not in paragraphs:
                paragraphs[context] = SquadParagraph(f"p{len(paragraphs):05d}", str(title), context)
            doc_id = paragraphs[context].doc_id
            for q, qa in enumerate(_field(paragraph, "qas", list, where)):
                q_where = f"{where}.qas[{q}]"
                question = _field(qa, "question", str, q_where)
                answers = _field(qa, "answers", list, q_where) if "answers" in qa else []
                texts = (_field(ans, "text", str, f"{q_where}.answers") for ans in answers)
                golds = tuple(dict.fromkeys(texts))
                answerable = bool(golds) and not qa.get("is_impossible", False)
                questions.append(
                    EvalQuestion(
                        id=str(qa.get("id", q_where)),
                        question=question,
                        answers=golds if answerable else (),
                        sources=(doc_id,) if answerable else (),
                        answerable=answerable,
                    )
                )
    if not questions:
        raise InputError(f"{name}: no questions in the SQuAD file")
    return SquadSet(name, tuple(paragraphs.values()), tuple(questions))


def load_squad(path: Path) -> SquadSet:
    """Read a SQuAD JSON file; the dataset name is the file name without ``.json``."""
    if not path.is_file():
        raise InputError(f"SQuAD file not found: {path}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path} is not a JSON file: {exc}") from None
    return parse_squad(raw, path.name.removesuffix(".json"))


def write_corpus(squad: SquadSet, folder: Path) -> None:
    """Write each paragraph as ``<doc_id>.txt`` plus a ``sources.csv`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for paragraph in squad.paragraphs:
        (folder / f"{paragraph.doc_id}.txt").write_text(paragraph.context, encoding="utf-8")
    with (folder / SOURCES_FILE).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SOURCES_COLUMNS)
        for paragraph in squad.paragraphs:
            writer.writerow([f"{paragraph.doc_id}.txt", squad.name, "", paragraph.title, ""])


def fold_questions(squad: SquadSet, fold: int, folds: int) -> tuple[EvalQuestion, ...]:
    """The answerable questions about articles in fold ``fold``: titles in file order, modulo ``folds``.

    The same split as ``qa train-reader --holdout`` (qa.training.examples.fold_of),
    so a held-out reader is scored only on paragraphs it never trained on.
    """
    titles = list(dict.fromkeys(p.title for p in squad.paragraphs))
    title_of = {p.doc_id: p.title for p in squad.paragraphs}
    return tuple(
        q for q in squad.questions if q.sources and titles.index(title_of[q.sources[0]]) % folds == fold
    )


def evaluate_squad(
    path: Path,
    model: str | None = None,
    modes: tuple[Mode, ...] = MODES,
    progress: bool = True,
    reader: str | None = None,
    fold: tuple[int, int] | None = None,
) -> Evaluation:
    """Index a SQuAD file's contexts in a temporary folder and evaluate on its questions.

    ``fold`` (k, n) keeps only the questions of fold k of n; every context
    stays in the index, so retrieval is as hard as without it.
    """
    from qa.engine import Engine

    squad = load_squad(path)
    questions = squad.questions if fold is None else fold_questions(squad, *fold)
    name = squad.name if fold is None else f"{squad.name} fold {fold[0]}/{fold[1]}"
    with tempfile.TemporaryDirectory(prefix="qa-squad-") as tmp:
        corpus = Path(tmp) / "corpus"
        write_corpus(squad, corpus)
        engine = Engine.open(corpus, Path(tmp) / "index", model=model, progress=progress, reader=reader)
        return evaluate(engine, questions, name, modes=modes, progress=progress)
