"""Answer choice: from the fused passages to ranked, grouped, cited answers.

The candidate sentences of the best passages are scored by their evidence
(qa.answer.candidates, qa.answer.scoring); the reader, when there is one,
re-reads the best of them; sentences that say the same thing are grouped so
every outlet that carried an answer is cited; each answer's lead sentence
gets the span to highlight.
"""

from __future__ import annotations

from collections.abc import Sequence

from qa.answer.candidates import Question, gather_candidates
from qa.answer.reader import Reader, reader_candidate, reader_question, rerank
from qa.answer.scoring import ScoredSentence, group_same_reports, rank_candidates
from qa.answer.span import answer_span, question_shape
from qa.index.entities import sentence_entities
from qa.index.store import IndexData
from qa.records import Answer, Citation, RetrievedPassage
from qa.retrieval.question import PreparedQuestion
from qa.settings import Settings


def choose_answers(
    data: IndexData,
    question: PreparedQuestion,
    fused: Sequence[tuple[int, float]],
    top_k: int,
    settings: Settings,
    reader: Reader | None,
    outlets: Sequence[str],
) -> list[Answer]:
    """At most ``top_k`` answers from the sentences of the best ``fused`` passages, best first.

    Args:
        data: the loaded index.
        question: the prepared question.
        fused: passage ids and fused scores, best first.
        top_k: most answers (groups of the same report).
        settings: how many passages and candidates to read, and the weights.
        reader: reads the best candidates; None ranks by evidence alone.
        outlets: the corpus's outlets, which a question may name.
    """
    shaped = Question(question.text, question.vector, question.terms, question_shape(question.text))
    candidates = gather_candidates(data, shaped, fused, settings.answer_passages, outlets)
    scored = rank_candidates(candidates, settings.weights)
    if reader is not None and settings.reader_candidates > 0:
        scored = read(data, reader, scored[: settings.reader_candidates], question, settings.reader_weight)
    groups = group_same_reports(scored, data.sentence_vectors, settings.same_report_cosine, top_k)
    answers = []
    for group in groups:
        citations = tuple(citation(data, s.sentence_id, s.passage_id) for s in group)
        lead = citations[0]
        entities = sentence_entities(data.entities, group[0].sentence_id)
        span_start, span_end = answer_span(shaped.shape, lead.text, entities)
        answers.append(
            Answer(
                lead.text,
                round(group[0].score, 4),
                citations,
                span_start,
                span_end,
                round(group[0].confidence, 4),
            )
        )
    return answers


def read(
    data: IndexData,
    reader: Reader,
    scored: Sequence[ScoredSentence],
    question: PreparedQuestion,
    reader_weight: float,
) -> list[ScoredSentence]:
    """Re-rank candidates by the reader blended with their evidence, best first."""
    context = reader.context_chars
    texts = [
        reader_candidate(data.sentence_text(s.sentence_id), data.sentence_before(s.sentence_id), context)
        for s in scored
    ]
    logits = reader.logits(reader_question(question.text, question.previous), texts)
    return rerank(scored, logits, reader_weight)


def citation(data: IndexData, sid: int, pid: int) -> Citation:
    """The citation of sentence ``sid`` read in passage ``pid``: its article, offsets and text."""
    sentence, passage = data.sentence_row(sid), data.passage_row(pid)
    article = data.article(sentence.article)
    return Citation(
        doc_id=article.doc_id,
        outlet=article.outlet,
        date=article.date,
        title=article.title,
        url=article.url,
        start=sentence.start,
        end=sentence.end,
        text=article.body[sentence.start : sentence.end],
        passage_start=passage.start,
        passage_end=passage.end,
        passage=article.body[passage.start : passage.end],
    )


def retrieved_passage(data: IndexData, pid: int, score: float) -> RetrievedPassage:
    """Passage ``pid`` as a source shown beside the answers."""
    row = data.passage_row(pid)
    article = data.article(row.article)
    return RetrievedPassage(
        passage_id=pid,
        doc_id=article.doc_id,
        start=row.start,
        end=row.end,
        text=article.body[row.start : row.end],
        score=round(score, 4),
        outlet=article.outlet,
        date=article.date,
        title=article.title,
        url=article.url,
    )
