"""The JSON shape of a result, shared by ``qa ask --json``, the web API and evaluation."""

from __future__ import annotations

from typing import Any

from qa.records import Answer, Citation, Difference, Result, RetrievedPassage


def citation_json(citation: Citation) -> dict[str, Any]:
    return {
        "doc_id": citation.doc_id,
        "outlet": citation.outlet,
        "date": citation.date,
        "title": citation.title,
        "url": citation.url,
        "start": citation.start,
        "end": citation.end,
        "text": citation.text,
    }


def answer_json(answer: Answer) -> dict[str, Any]:
    """An answer; ``span`` offsets are into the lead citation's article body, like ``start``/``end``."""
    lead = answer.citations[0] if answer.citations else None
    base = lead.start if lead else 0
    end = len(answer.text) if answer.span_end < 0 else answer.span_end
    return {
        "text": answer.text,
        "span": {"start": base + answer.span_start, "end": base + end, "text": answer.span},
        "score": answer.score,
        "confidence": answer.confidence,
        "citations": [citation_json(c) for c in answer.citations],
    }


def difference_json(difference: Difference) -> dict[str, Any]:
    """One difference; each value's ``start``/``end`` are offsets into its article's body."""
    return {
        "kind": difference.kind,
        "values": [
            {
                "text": v.text,
                "normalized": v.normalized,
                "doc_id": v.doc_id,
                "outlet": v.outlet,
                "date": v.date,
                "start": v.start,
                "end": v.end,
            }
            for v in difference.values
        ],
    }


def passage_json(passage: RetrievedPassage) -> dict[str, Any]:
    return {
        "doc_id": passage.doc_id,
        "start": passage.start,
        "end": passage.end,
        "score": passage.score,
        "text": passage.text,
    }


def result_json(result: Result, item_id: str | None = None) -> dict[str, Any]:
    """One result as the documented JSON object (``id`` only when given)."""
    out: dict[str, Any] = {} if item_id is None else {"id": item_id}
    out.update(
        {
            "question": result.question,
            "abstained": result.abstained,
            "answers": [answer_json(a) for a in result.answers],
            "differences": [difference_json(d) for d in result.differences],
            "passages": [passage_json(p) for p in result.passages],
            "latency_ms": round(result.latency_ms, 2),
        }
    )
    return out
