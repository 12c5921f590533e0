"""One article's rows for a streaming build (``qa build-shards``): its ids, sentences and passages.

Pure and Ray-free, so the part that decides offsets and ids is tested on its
own. Ids are made where the article is, without asking the driver:

- article id  = (input shard number << 24) | row of the article within its shard
- sentence id = (article id << 16) | index of the sentence within the article
- passage id  = (article id << 16) | index of the passage within the article

24 bits hold 16.7 million articles a shard, far past any archive file; 16
bits hold 65,535 sentences an article, where a long feature has a few hundred.
An article past that is refused (the build skips it and counts a problem),
and a sentence id's index never reaches 65,536, so a passage's exclusive
``last_sentence`` stays inside its article's range.
"""

from __future__ import annotations

from dataclasses import dataclass

from qa.index.split import make_passages, split_sentences
from qa.records import Article, Passage, Sentence

ROW_BITS = 24
SENTENCE_BITS = 16
MAX_SHARD_ROWS = 1 << ROW_BITS
MAX_SENTENCES = (1 << SENTENCE_BITS) - 1
# Shard numbers that keep a sentence id (shard << 40) inside a signed 64-bit integer.
MAX_SHARDS = 1 << (63 - ROW_BITS - SENTENCE_BITS)


class TooManySentences(ValueError):
    """An article has more sentences than its ids can number."""


@dataclass(frozen=True)
class ArticleSplit:
    """The sentences and passages of one article, with the ids the streaming build gives them.

    ``passages[i].first_sentence``/``last_sentence`` are sentence ids of this
    article (inclusive, exclusive), as the in-process build's are global ids.
    """

    article_id: int
    sentences: tuple[Sentence, ...]
    passages: tuple[Passage, ...]
    passage_ids: tuple[int, ...]


def article_id(shard: int, row: int) -> int:
    """The id of the article at ``row`` of input shard ``shard``.

    Raises:
        ValueError: a shard number or row the id has no room for.
    """
    if not 0 <= shard < MAX_SHARDS:
        raise ValueError(f"shard must be in [0, {MAX_SHARDS}), got {shard}")
    if not 0 <= row < MAX_SHARD_ROWS:
        raise ValueError(f"row must be in [0, {MAX_SHARD_ROWS}), got {row}")
    return (shard << ROW_BITS) | row


def sentence_id(article: int, index: int) -> int:
    """The id of sentence ``index`` of article ``article`` (a passage's id is made alike)."""
    return (article << SENTENCE_BITS) | index


def split_article(
    number: int, article: Article, sentences_per_passage: int, passage_stride: int
) -> ArticleSplit:
    """Split ``article``, whose id is ``number``, as the in-process build does (qa.index.split).

    Raises:
        TooManySentences: more than MAX_SENTENCES sentences.
    """
    sentences = split_sentences(article.doc_id, article.body)
    if len(sentences) > MAX_SENTENCES:
        raise TooManySentences(
            f"article {article.doc_id!r} has {len(sentences):,} sentences, over the {MAX_SENTENCES:,} "
            "one article may have"
        )
    passages = make_passages(
        article.body,
        sentences,
        sentences_per_passage,
        passage_stride,
        first_sentence_id=sentence_id(number, 0),
    )
    ids = tuple(sentence_id(number, i) for i in range(len(passages)))
    return ArticleSplit(number, tuple(sentences), tuple(passages), ids)
