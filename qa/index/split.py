"""Split article bodies into sentences and passages, keeping exact offsets.

Sentence boundaries come from ``sentencex`` (Wikimedia's maintained, rule-based
segmenter): it knows abbreviations such as "Mr", decimals such as "4.00am"
and keeps a quotation that holds several sentences together. This module only
maps its output back onto the body and guarantees, for any input text, that
``body[start:end] == text`` for every sentence and passage.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import sentencex

from qa.records import Passage, Sentence

# MiniLM reads at most 256 word pieces; a "sentence" longer than this many
# characters (a table, a run-on list) is cut at whitespace so it stays
# embeddable and an answer stays short enough to read.
MAX_SENTENCE_CHARS = 600


def split_sentences(doc_id: str, body: str) -> list[Sentence]:
    """Return the sentences of ``body`` in order, each with exact offsets.

    Spans are trimmed of surrounding whitespace; spans with no letter or digit
    (a lone dash, a row of asterisks) are dropped because they answer nothing.
    """
    sentences: list[Sentence] = []
    for start, end in _segment_spans(body):
        start, end = _trim(body, start, end)
        for piece_start, piece_end in _cap_length(body, start, end):
            text = body[piece_start:piece_end]
            if any(ch.isalnum() for ch in text):
                sentences.append(Sentence(doc_id, piece_start, piece_end, text))
    return sentences


def make_passages(
    body: str,
    sentences: Sequence[Sentence],
    size: int,
    stride: int,
    first_sentence_id: int = 0,
) -> list[Passage]:
    """Group consecutive sentences of one article into overlapping windows.

    Args:
        body: the article body the sentences index into.
        sentences: that article's sentences, in order.
        size: sentences per passage.
        stride: sentences between the starts of consecutive passages;
            ``stride < size`` gives overlap, so an answer that straddles two
            sentences is whole in at least one passage.
        first_sentence_id: global id of ``sentences[0]``.

    Returns:
        Passages covering every sentence; the last window is aligned to the
        end so no passage is a short leftover.
    """
    if size < 1 or stride < 1:
        raise ValueError(f"size and stride must be >= 1, got size={size}, stride={stride}")
    if not sentences:
        return []
    starts = list(range(0, max(len(sentences) - size, 0) + 1, stride))
    last_start = max(len(sentences) - size, 0)
    if starts[-1] != last_start:
        starts.append(last_start)
    passages = []
    for i in starts:
        window = sentences[i : i + size]
        start, end = window[0].start, window[-1].end
        passages.append(
            Passage(
                doc_id=window[0].doc_id,
                start=start,
                end=end,
                text=body[start:end],
                first_sentence=first_sentence_id + i,
                last_sentence=first_sentence_id + i + len(window),
            )
        )
    return passages


def _segment_spans(body: str) -> Iterator[tuple[int, int]]:
    """Yield (start, end) of each segment sentencex finds, aligned to ``body``.

    sentencex reports offsets; they are trusted only where they reproduce the
    reported text. Otherwise the text is searched for from the last position,
    and if even that fails the rest of the paragraph is kept as one span, so no
    text is ever lost from the index.
    """
    cursor = 0
    for seg in sentencex.get_sentence_boundaries("en", body):
        if seg.get("is_paragraph_break"):
            continue
        text = seg["text"]
        start, end = seg["start_index"], seg["end_index"]
        if body[start:end] != text or start < cursor:
            found = body.find(text, cursor)
            if found < 0:
                continue
            start, end = found, found + len(text)
        if start > cursor and body[cursor:start].strip():
            yield cursor, start
        yield start, end
        cursor = end
    if body[cursor:].strip():
        yield cursor, len(body)


def _trim(body: str, start: int, end: int) -> tuple[int, int]:
    while start < end and body[start].isspace():
        start += 1
    while end > start and body[end - 1].isspace():
        end -= 1
    return start, end


def _cap_length(body: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Cut an over-long span at whitespace into pieces of at most MAX_SENTENCE_CHARS."""
    while end - start > MAX_SENTENCE_CHARS:
        cut = body.rfind(" ", start + 1, start + MAX_SENTENCE_CHARS)
        if cut <= start:
            cut = start + MAX_SENTENCE_CHARS
        piece_start, piece_end = _trim(body, start, cut)
        if piece_end > piece_start:
            yield piece_start, piece_end
        start, _ = _trim(body, cut, end)
    if end > start:
        yield start, end
