"""BM25 over passages with tantivy: an on-disk inverted index with filters.

tantivy scores only the documents that hold a query term, so a query stays
fast on millions of passages (see README, "Dependencies").
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import tantivy

ANALYZER = "news_en"
# Heap for the index writer; tantivy flushes a segment when it fills.
_WRITER_HEAP = 128 * 1024 * 1024
# Lock files tantivy makes in an index folder; not index content.
_LOCK_PREFIX = ".tantivy-"


def text_analyzer() -> tantivy.TextAnalyzer:
    """Lower-cased words, English stop words dropped, Snowball-stemmed."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stopword("english"))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("passage_id", stored=False, indexed=True, fast=True)
    builder.add_text_field("body", stored=False, tokenizer_name=ANALYZER, index_option="freq")
    builder.add_text_field("outlet", stored=False, tokenizer_name="raw", index_option="basic")
    builder.add_integer_field("date", stored=False, indexed=True, fast=True)
    return builder.build()


def idf(doc_freq: int, num_docs: int) -> float:
    """BM25's idf, never negative: rare terms weigh more than common ones."""
    return math.log(1.0 + (num_docs - doc_freq + 0.5) / (doc_freq + 0.5))


def date_key(iso_date: str) -> int:
    """YYYY-MM-DD as the integer YYYYMMDD; 0 for undated (before every date)."""
    digits = iso_date.replace("-", "")
    return int(digits) if digits.isdigit() else 0


@dataclass(frozen=True)
class LexicalDoc:
    passage_id: int
    text: str
    outlet: str
    date: str


def build_lexical_index(path: Path, docs: Iterable[LexicalDoc]) -> None:
    """Write a tantivy index of ``docs`` into the empty folder ``path``."""
    index = tantivy.Index(_schema(), path=str(path))
    index.register_tokenizer(ANALYZER, text_analyzer())
    _commit(index, (), docs)


def update_lexical_index(path: Path, removed: Iterable[int], docs: Iterable[LexicalDoc]) -> None:
    """Delete the passages ``removed`` from the tantivy index in ``path`` and add ``docs``, in one commit.

    tantivy never rewrites a segment file: a commit writes new segment and
    delete files and replaces ``meta.json`` and ``.managed.json`` whole, so an
    update can start from hard links to a previous index's segment files
    (given its own copies of those two) without touching that index.
    """
    index = tantivy.Index.open(str(path))
    index.register_tokenizer(ANALYZER, text_analyzer())
    _commit(index, removed, docs)


@contextlib.contextmanager
def _openable(path: Path) -> Iterator[Path]:
    """``path``, or where it cannot be written, a temporary folder of links to its files.

    Opening a tantivy index takes its meta lock, a file it creates and locks
    in the index folder, so on a read-only mount or in another user's folder
    it fails. There it opens a private folder of symbolic links to the index
    files instead, where it can make its lock. The links are removed once
    the searcher is made: tantivy has then mapped every segment file it reads,
    and a reader that never reloads opens nothing more.
    """
    lock = path / f"{_LOCK_PREFIX}meta.lock"
    if os.access(path, os.W_OK) and (not lock.exists() or os.access(lock, os.W_OK)):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="newsqa-bm25-") as links:
        for entry in path.iterdir():
            if not entry.name.startswith(_LOCK_PREFIX):
                os.symlink(entry.absolute(), Path(links) / entry.name)
        yield Path(links)


def _commit(index: tantivy.Index, removed: Iterable[int], docs: Iterable[LexicalDoc]) -> None:
    """Delete passages ``removed``, add ``docs``, commit, and wait for any merges it started."""
    writer = index.writer(heap_size=_WRITER_HEAP, num_threads=1)
    removed = list(removed)
    if removed:
        # A query, not delete_documents_by_term: that one turns a Python int
        # into a signed term, which matches no unsigned passage_id.
        writer.delete_documents_by_query(tantivy.Query.term_set_query(index.schema, "passage_id", removed))
    for doc in docs:
        document = tantivy.Document()
        document.add_unsigned("passage_id", doc.passage_id)
        document.add_text("body", doc.text)
        document.add_text("outlet", doc.outlet)
        document.add_integer("date", date_key(doc.date))
        writer.add_document(document)
    writer.commit()
    writer.wait_merging_threads()


class LexicalIndex:
    """A read-only handle on a built tantivy index, fixed to the index as it was when opened."""

    def __init__(self, path: Path) -> None:
        with _openable(Path(path)) as folder:
            self._index = tantivy.Index.open(str(folder))
            # Never reloads by itself: a build swaps a new index in at the same
            # path, and a reader that followed it would pair this BM25 index with
            # the old index's passages and vectors.
            self._index.config_reader(reload_policy="Manual")
            self._analyzer = text_analyzer()
            self._index.register_tokenizer(ANALYZER, self._analyzer)
            self._index.reload()
            self._searcher = self._index.searcher()
            self._schema = self._index.schema

    @property
    def num_docs(self) -> int:
        return int(self._searcher.num_docs)

    def terms(self, text: str) -> list[str]:
        """The index terms of ``text`` (what BM25 matches on)."""
        return list(self._analyzer.analyze(text))

    def doc_freq(self, term: str) -> int:
        return int(self._searcher.doc_freq("body", term))

    def search(
        self,
        terms: Sequence[tuple[str, float]],
        k: int,
        outlets: Sequence[str] = (),
        since: str | None = None,
        until: str | None = None,
    ) -> list[tuple[int, float]]:
        """Top ``k`` (passage id, BM25 score) for weighted index terms.

        Terms are weighted (a follow-up's history terms count less) and OR-ed;
        filters are required clauses, applied inside the index.
        """
        weights: dict[str, float] = {}
        for term, weight in terms:
            weights[term] = max(weights.get(term, 0.0), weight)
        if not weights or k <= 0:
            return []
        should = [
            (
                tantivy.Occur.Should,
                tantivy.Query.boost_query(tantivy.Query.term_query(self._schema, "body", term), weight),
            )
            for term, weight in weights.items()
        ]
        clauses = [(tantivy.Occur.Must, tantivy.Query.boolean_query(should))]
        if outlets:
            clauses.append(
                (tantivy.Occur.Must, tantivy.Query.term_set_query(self._schema, "outlet", list(outlets)))
            )
        if since or until:
            clauses.append(
                (
                    tantivy.Occur.Must,
                    tantivy.Query.range_query(
                        self._schema,
                        "date",
                        tantivy.FieldType.Integer,
                        # Undated passages have key 0: outside any range.
                        date_key(since) if since else 1,
                        date_key(until) if until else None,
                    ),
                )
            )
        hits = self._searcher.search(tantivy.Query.boolean_query(clauses), limit=k).hits
        # passage_id is a fast field: a column read, not a stored-document fetch.
        ids = self._searcher.fast_field_values("passage_id", [address for _, address in hits])
        return [(int(pid), float(score)) for pid, (score, _) in zip(ids, hits, strict=True)]
