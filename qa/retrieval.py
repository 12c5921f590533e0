"""Passage retrieval behind one interface: dense and BM25 runs, fused.

The engine asks a :class:`Retriever` for two ranked runs of passage ids (by
embedding and by BM25, both honouring the outlet and date filters) and fuses
them with :func:`retrieve`. The default, :class:`LocalRetriever`, reads the
FAISS and tantivy files of the index folder; another backend (qa.milvus) can
answer the same two calls from a server, and the fusion and everything after
it stay the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qa.dense import search_dense
from qa.fusion import reciprocal_rank_fusion, score_blend
from qa.lexical import date_key
from qa.settings import Settings
from qa.store import IndexData

Hits = list[tuple[int, float]]


@dataclass(frozen=True)
class QueryFilters:
    """Validated filters: canonical outlet names and ISO dates."""

    outlets: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.outlets or self.since or self.until)


class Retriever(Protocol):
    """Where passages are found: two ranked runs of (passage id, score), best first."""

    def dense(self, vector: np.ndarray, k: int, filters: QueryFilters) -> Hits:
        """Top ``k`` passages by cosine to the unit ``vector``, inside ``filters``."""
        ...

    def lexical(self, terms: Sequence[tuple[str, float]], k: int, filters: QueryFilters) -> Hits:
        """Top ``k`` passages by BM25 over weighted index terms, inside ``filters``."""
        ...


class PassageFilter:
    """Which passages an outlet and date filter admits, from per-passage columns.

    Per-article values are spread to passages by indexing, not a Python loop
    over every passage (millions in a large archive).
    """

    def __init__(self, data: IndexData, outlets: Sequence[str]) -> None:
        codes = {o: i for i, o in enumerate(outlets)}
        owner = data.passages[:, 0]
        self._codes = codes
        self._outlet = np.array([codes[a.outlet] for a in data.articles], dtype=np.int64)[owner]
        self._date = np.array([date_key(a.date) for a in data.articles], dtype=np.int64)[owner]

    def allowed(self, filters: QueryFilters) -> np.ndarray | None:
        """Ids of the passages inside ``filters``; None when no filter is set."""
        if not filters.active:
            return None
        mask = np.ones(len(self._outlet), dtype=bool)
        if filters.outlets:
            mask &= np.isin(self._outlet, [self._codes[o] for o in filters.outlets])
        # Undated articles (key 0) fall outside any date range: their date is unknown.
        if filters.since or filters.until:
            mask &= self._date > 0
        if filters.since:
            mask &= self._date >= date_key(filters.since)
        if filters.until:
            mask &= self._date <= date_key(filters.until)
        return np.flatnonzero(mask)


class LocalRetriever:
    """The embedded default: FAISS for the dense run, tantivy for BM25, both in the index folder."""

    def __init__(self, data: IndexData, passage_filter: PassageFilter) -> None:
        self._data = data
        self._filter = passage_filter

    def dense(self, vector: np.ndarray, k: int, filters: QueryFilters) -> Hits:
        return search_dense(self._data.dense, vector, k, self._filter.allowed(filters))

    def lexical(self, terms: Sequence[tuple[str, float]], k: int, filters: QueryFilters) -> Hits:
        return self._data.lexical.search(terms, k, filters.outlets, filters.since, filters.until)


def retrieve(
    retriever: Retriever,
    vector: np.ndarray,
    terms: Sequence[tuple[str, float]],
    filters: QueryFilters,
    settings: Settings,
) -> Hits:
    """The fused ranking of passages for one question, best first, scores in [0, 1]."""
    depth = settings.retrieve_depth
    runs: list[tuple[Hits, float]] = []
    if settings.retrieval in ("hybrid", "dense"):
        runs.append((retriever.dense(vector, depth, filters), settings.dense_weight))
    if settings.retrieval in ("hybrid", "bm25"):
        runs.append((retriever.lexical(terms, depth, filters), 1.0 - settings.dense_weight))
    if settings.fusion == "rrf":
        return reciprocal_rank_fusion([[pid for pid, _ in hits] for hits, _ in runs], k=settings.rrf_k)
    return score_blend(runs)
