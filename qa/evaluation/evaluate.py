"""Offline evaluation: run an engine over a question file and measure it.

Each mode is a view of the same loaded index and reader: retrieval
ablations (hybrid, BM25 only, dense only) and ranking ablations (evidence
alone, "no-reader"; the reader alone, "reader-only"), so each costs one pass
over the questions and no re-embedding.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qa.errors import InputError
from qa.evaluation.differences import (
    DifferenceScore,
    GoldDifference,
    difference_score_json,
    parse_gold,
    score_question,
    summarize_differences,
)
from qa.evaluation.metrics import (
    MAX_RANK,
    QuestionOutcome,
    Summary,
    SweepPoint,
    abstention_sweep,
    best_over_golds,
    contains_answer,
    exact_match,
    recommended_threshold,
    summarize,
    token_f1,
)

if TYPE_CHECKING:
    from qa.engine import Engine
    from qa.records import Article, Citation, Result

Mode = Literal["hybrid", "bm25", "dense", "no-reader", "reader-only"]
# The default first: the report's per-question table and sweep are for it.
MODES: tuple[Mode, ...] = ("hybrid", "bm25", "dense", "no-reader", "reader-only")
# Each mode is a view of one engine: a retrieval ablation, or (with hybrid
# retrieval) a ranking ablation of the reader: evidence alone, reader alone.
_MODE_SETTINGS: dict[str, dict[str, object]] = {
    "hybrid": {"retrieval": "hybrid"},
    "bm25": {"retrieval": "bm25"},
    "dense": {"retrieval": "dense"},
    "no-reader": {"retrieval": "hybrid", "reader_candidates": 0},
    "reader-only": {"retrieval": "hybrid", "reader_weight": 1.0},
}
_READER_MODES = ("no-reader", "reader-only")
# Most problems listed when a question file is rejected; the rest are counted.
_MAX_PROBLEMS = 20


@dataclass(frozen=True)
class EvalQuestion:
    """One line of a question file: the question and what counts as right."""

    id: str
    question: str
    answers: tuple[str, ...]
    sources: tuple[str, ...]
    answerable: bool
    history: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    differences: tuple[GoldDifference, ...] | None = None  # None: the line has no "differences" field


@dataclass(frozen=True)
class Run:
    """One retrieval or ranking mode over every question."""

    mode: Mode
    outcomes: tuple[QuestionOutcome, ...]
    summary: Summary
    sweep: tuple[SweepPoint, ...]
    recommended_threshold: float | None


@dataclass(frozen=True)
class Evaluation:
    """All runs of one evaluation; ``runs[0]`` is the engine's default mode."""

    name: str
    abstain_threshold: float
    runs: tuple[Run, ...]
    reader: dict[str, str] | None = None  # id and sha256 of the reader, None without one
    differences: DifferenceScore | None = None  # only when some question carries a differences gold


def _string_list(item: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{key!r} must be a list of strings, got {value!r}")
    return tuple(value)


def parse_question(item: object, default_id: str) -> EvalQuestion:
    """Validate one decoded line of a question file.

    Raises:
        InputError: saying which rule the line breaks.
    """
    if not isinstance(item, dict):
        raise InputError(f"each line must be a JSON object, got {type(item).__name__}")
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        raise InputError(f"'question' must be a non-empty string, got {question!r}")
    item_id = item.get("id", default_id)
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool):
        raise InputError(f"'id' must be a string or an integer, got {item_id!r}")
    answers, sources = _string_list(item, "answers"), _string_list(item, "sources")
    answerable = item.get("answerable", bool(answers))
    if not isinstance(answerable, bool):
        raise InputError(f"'answerable' must be true or false, got {answerable!r}")
    if answerable and not (answers and sources):
        raise InputError("an answerable question needs at least one of 'answers' and of 'sources'")
    if not answerable and answers:
        raise InputError("an unanswerable question must have no 'answers'")
    return EvalQuestion(
        id=str(item_id),
        question=question,
        answers=answers,
        sources=sources,
        answerable=answerable,
        history=_string_list(item, "history"),
        tags=_string_list(item, "tags"),
        differences=parse_gold(item.get("differences")),
    )


def load_questions(path: Path) -> tuple[EvalQuestion, ...]:
    """Read a JSONL question file, rejecting it whole if any line is bad.

    A partly read dev set would make every figure quietly wrong, so every bad
    line is reported (with its number) rather than skipped.

    Raises:
        InputError: the file is missing, empty, or has bad lines.
    """
    if not path.is_file():
        raise InputError(f"questions file not found: {path}")
    questions: list[EvalQuestion] = []
    problems: list[str] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                parsed = parse_question(json.loads(line), str(number))
                if parsed.id in seen:
                    raise InputError(f"id {parsed.id!r} is used by an earlier line")
            except (ValueError, InputError) as exc:
                problems.append(f"{path}:{number}: {exc}")
                continue
            seen.add(parsed.id)
            questions.append(parsed)
    if problems:
        shown = "\n  ".join(problems[:_MAX_PROBLEMS])
        more = f"\n  ... and {len(problems) - _MAX_PROBLEMS} more" if len(problems) > _MAX_PROBLEMS else ""
        raise InputError(f"{len(problems)} bad line(s) in {path}:\n  {shown}{more}")
    if not questions:
        raise InputError(f"no questions in {path}")
    return tuple(questions)


def citation_correct(
    citations: Sequence[Citation], sources: Sequence[str], articles: Mapping[str, Article]
) -> bool:
    """The lead citation is a gold source and every citation matches its article.

    "Matches" means the outlet and date are the article's metadata and the
    quoted text is exactly the article's text at the cited offsets.
    """
    if not citations or citations[0].doc_id not in sources:
        return False
    for citation in citations:
        article = articles.get(citation.doc_id)
        if (
            article is None
            or citation.outlet != article.outlet
            or citation.date != article.date
            or article.body[citation.start : citation.end] != citation.text
        ):
            return False
    return True


def score_result(
    question: EvalQuestion, result: Result, articles: Mapping[str, Article], threshold: float
) -> QuestionOutcome:
    """Turn one engine result into a QuestionOutcome.

    ``result`` must come from an engine that withholds nothing (threshold
    -inf) so the top answer can be scored even when the engine would abstain;
    what the user is shown is then decided here exactly as ``Engine.ask`` does:
    the answers whose confidence reaches ``threshold``, in the engine's order
    (so the top answer scored is the first shown, which is not always the
    first ranked), and abstention when none does. An abstained question is
    scored on the answers the engine would have shown without a threshold.
    """
    shown = [a for a in result.answers if a.confidence >= threshold] or list(result.answers)
    top = shown[0] if shown else None
    text, span = (top.text, top.span) if top else ("", "")
    golds = question.answers
    lead = top.citations[0] if top and top.citations else None
    return QuestionOutcome(
        id=question.id,
        question=question.question,
        answerable=question.answerable,
        golds=golds,
        top_answer=text,
        top_span=span,
        best_score=result.best_score,
        abstained=top is None or result.best_score < threshold,
        cited_doc=lead.doc_id if lead else "",
        cited_outlet=lead.outlet if lead else "",
        cited_date=lead.date if lead else "",
        hits=tuple(p.doc_id in question.sources and contains_answer(p.text, golds) for p in result.passages),
        source_hits=tuple(p.doc_id in question.sources for p in result.passages),
        exact_match=best_over_golds(exact_match, text, golds),
        f1=best_over_golds(token_f1, text, golds),
        span_exact_match=best_over_golds(exact_match, span, golds),
        span_f1=best_over_golds(token_f1, span, golds),
        contains_gold=contains_answer(text, golds),
        contains_gold_at_3=any(contains_answer(a.text, golds) for a in shown[:3]),
        citation_ok=top is not None and citation_correct(top.citations, question.sources, articles),
        latency_ms=result.latency_ms,
    )


def evaluate(
    engine: Engine,
    questions: Sequence[EvalQuestion],
    name: str,
    modes: Sequence[Mode] = MODES,
    progress: bool = True,
) -> Evaluation:
    """Ask every question in every retrieval mode and measure the answers.

    Args:
        engine: an open engine; its settings (other than retrieval mode) are evaluated.
        questions: from :func:`load_questions` or a SQuAD file.
        name: what was evaluated, for the report (e.g. the file name).
        modes: retrieval and ranking modes, the default first; the ranking
            ablations ("no-reader", "reader-only") are skipped without a reader.
        progress: show a progress bar on stderr.

    Raises:
        InputError: a question names a source that is not in the engine's corpus.
    """
    from tqdm import tqdm

    articles = engine.articles
    unknown = sorted({s for q in questions for s in q.sources if s not in articles})
    if unknown:
        raise InputError(
            f"{len(unknown)} gold source(s) not in this corpus: {', '.join(unknown[:10])}; "
            "check the 'sources' of the question file against the corpus file names"
        )
    threshold = engine.threshold
    if engine.reader is None:
        modes = [m for m in modes if m not in _READER_MODES]
    # The first query pays one-off costs (thread pools, lazy caches); keep it
    # out of the latency figures.
    engine.ask(questions[0].question)
    runs = []
    total = len(questions) * len(modes)
    with tqdm(total=total, desc="evaluating", unit="q", file=sys.stderr, disable=not progress) as bar:
        for mode in modes:
            view = engine.with_settings(
                **_MODE_SETTINGS[mode],
                passages_shown=MAX_RANK,
                abstain_threshold=float("-inf"),
                evidence_abstain_threshold=float("-inf"),
            )
            # Each kind of score keeps its own threshold (see Settings).
            mode_threshold = engine.with_settings(**_MODE_SETTINGS[mode]).threshold
            bar.set_postfix_str(mode)
            outcomes = []
            for question in questions:
                result = view.ask(question.question, history=question.history)
                outcomes.append(score_result(question, result, articles, mode_threshold))
                bar.update()
            sweep = abstention_sweep([o.best_score for o in outcomes], [o.answerable for o in outcomes])
            runs.append(Run(mode, tuple(outcomes), summarize(outcomes), sweep, recommended_threshold(sweep)))
    reader = None
    if engine.reader is not None:
        reader = {"id": engine.reader.reader_id, "sha256": engine.reader.sha256}
    differences = score_differences(engine, questions)
    return Evaluation(name, threshold, tuple(runs), reader, differences)


def score_differences(engine: Engine, questions: Sequence[EvalQuestion]) -> DifferenceScore | None:
    """Difference precision and recall over the questions that carry the gold, asked as a user asks them.

    The runs above ask with no threshold; differences depend on it, so these are asked again.
    """
    labelled = [q for q in questions if q.differences is not None]
    if not labelled:
        return None
    outcomes = []
    for q in labelled:
        reported = engine.ask(q.question, history=q.history).differences
        outcomes.append(score_question(q.id, q.question, q.differences or (), reported))
    return summarize_differences(outcomes)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summary_json(summary: Summary) -> dict[str, float | None]:
    """The figures of one run under the names used by the docs and thresholds.json."""
    figures: dict[str, float | None] = {}
    for k in (1, 3, 5, 10):
        figures[f"hit@{k}"] = summary.hit_at[k - 1]
    for k in (1, 3, 5, 10):
        figures[f"source_hit@{k}"] = summary.source_hit_at[k - 1]
    figures.update(
        {
            "mrr@10": summary.mrr_at_10,
            "exact_match": summary.exact_match,
            "f1": summary.f1,
            "span_exact_match": summary.span_exact_match,
            "span_f1": summary.span_f1,
            "contains_gold": summary.contains_gold,
            "contains_gold@3": summary.contains_gold_at_3,
            "citation_accuracy": summary.citation_accuracy,
            "abstention_recall": summary.abstention_recall,
            "false_abstention_rate": summary.false_abstention_rate,
            "latency_p50_ms": summary.latency_p50_ms,
            "latency_p95_ms": summary.latency_p95_ms,
        }
    )
    return {key: _round(value) for key, value in figures.items()}


def evaluation_json(evaluation: Evaluation) -> dict[str, Any]:
    """The whole evaluation as one JSON-ready object (``qa eval --json``)."""
    default = evaluation.runs[0]
    return {
        "name": evaluation.name,
        "reader": evaluation.reader,
        "questions": default.summary.questions,
        "answerable": default.summary.answerable,
        "unanswerable": default.summary.unanswerable,
        "abstain_threshold": evaluation.abstain_threshold,
        "recommended_threshold": default.recommended_threshold,
        "runs": {run.mode: summary_json(run.summary) for run in evaluation.runs},
        "differences": evaluation.differences and difference_score_json(evaluation.differences),
        "sweep": [
            {
                "threshold": p.threshold,
                "precision": _round(p.precision),
                "recall": _round(p.recall),
                "false_abstention_rate": _round(p.false_abstention_rate),
                "accuracy": _round(p.accuracy),
            }
            for p in default.sweep
        ],
    }
