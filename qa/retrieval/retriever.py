"""Passage retrieval behind one interface: dense and BM25 runs, fused.

The engine asks a :class:`Retriever` for two ranked runs of passage ids (by
embedding and by BM25, both honouring the outlet and date filters) and fuses
them with :func:`retrieve`. The default, :class:`LocalRetriever`, reads the
FAISS and tantivy files of the index folder; another backend (qa.retrieval.milvus) can
answer the same two calls from a server, and the fusion and everything after
it stay the same.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qa.corpus.load import parse_date
from qa.errors import InputError
from qa.index.dense import search_dense
from qa.index.lexical import date_key
from qa.index.store import IndexData
from qa.retrieval.fusion import reciprocal_rank_fusion, score_blend
from qa.retrieval.question import shown_value
from qa.settings import MAX_FILTER_OUTLETS, MAX_TOP_K, Settings

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


def check_filters(
    available: Sequence[str], outlets: Sequence[str], since: str | None, until: str | None
) -> QueryFilters:
    """Canonical outlet names (from ``available``) and ISO dates; raises InputError naming what is wrong.

    Whoever calls (the web API, the CLI, a program) gets the same rules, wrong
    types included: a filter is a list of at most MAX_FILTER_OUTLETS outlet
    names and two optional YYYY-MM-DD dates, ``since`` not after ``until``.
    """
    if isinstance(outlets, (str, bytes)) or not isinstance(outlets, Sequence):
        raise InputError(f"outlets must be a list of outlet names, got {shown_value(outlets)}")
    if len(outlets) > MAX_FILTER_OUTLETS:
        raise InputError(f"a filter may name at most {MAX_FILTER_OUTLETS} outlets, got {len(outlets)}")
    by_lower = {o.lower(): o for o in available}
    chosen = []
    for name in outlets:
        if not isinstance(name, str):
            raise InputError(f"outlets must be a list of outlet names, got {shown_value(name)}")
        canonical = by_lower.get(name.strip().lower())
        if canonical is None:
            raise InputError(f"unknown outlet {shown_value(name)}; this corpus has: {_listed(available)}")
        chosen.append(canonical)
    checked = []
    for label, value in (("since", since), ("until", until)):
        date = parse_date(value) if isinstance(value, str) and value else None
        if value not in (None, "") and date is None:
            raise InputError(f"{label} must be a date YYYY-MM-DD, got {shown_value(value)}")
        checked.append(date)
    if checked[0] and checked[1] and checked[0] > checked[1]:
        raise InputError(f"since ({checked[0]}) is after until ({checked[1]})")
    return QueryFilters(tuple(chosen), checked[0], checked[1])


def check_top_k(top_k: object) -> int:
    """``top_k`` if it is a whole number from 1 to MAX_TOP_K; raises InputError saying the rule otherwise."""
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise InputError(f"top_k must be a whole number, got {shown_value(top_k)}")
    if top_k < 1:
        raise InputError(f"top_k must be >= 1, got {top_k}")
    if top_k > MAX_TOP_K:
        raise InputError(f"top_k must be <= {MAX_TOP_K}, got {top_k}")
    return top_k


def _listed(names: Sequence[str], most: int = 20) -> str:
    """The first ``most`` names, and how many more, for an error message."""
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


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
    over every passage (millions in a large archive). Dead passages (of
    articles removed or edited since) are never admitted.
    """

    def __init__(self, data: IndexData, outlets: Sequence[str]) -> None:
        codes = {o: i for i, o in enumerate(outlets)}
        owner = data.passage_articles
        self._codes = codes
        # Dead articles' outlets may be gone from the corpus: code -1 matches no filter.
        article_outlet = np.array([codes.get(o, -1) for o in data.columns.outlet.tolist()], dtype=np.int64)
        self._outlet = article_outlet[owner]
        self._date = data.columns.date_key[owner]
        self.live = data.live
        self._live_ids: np.ndarray | None = None
        # A filtered question needs its allowed ids twice (the engine's "no
        # article matches" notice, then the dense search), and a web app sees
        # the same few filters again and again: each costs a pass over every
        # passage, so the last few are kept (read-only, up to 8 MB each at 1M).
        self.allowed = functools.lru_cache(maxsize=8)(self._allowed)

    @property
    def live_ids(self) -> np.ndarray:
        """Ids of every live passage (computed on first use)."""
        if self._live_ids is None:
            self._live_ids = np.flatnonzero(self.live)
        return self._live_ids

    def live_only(self, hits: Hits) -> Hits:
        """``hits`` without dead passages, nor ids past this index (a Milvus collection mid-sync)."""
        live = self.live
        return [(pid, score) for pid, score in hits if pid < len(live) and live[pid]]

    def _allowed(self, filters: QueryFilters) -> np.ndarray | None:
        """Ids of the live passages inside ``filters``; None when no filter is set."""
        if not filters.active:
            return None
        mask = self.live.copy()
        if filters.outlets:
            mask &= np.isin(self._outlet, [self._codes[o] for o in filters.outlets])
        # Undated articles (key 0) fall outside any date range: their date is unknown.
        if filters.since or filters.until:
            mask &= self._date > 0
        if filters.since:
            mask &= self._date >= date_key(filters.since)
        if filters.until:
            mask &= self._date <= date_key(filters.until)
        ids = np.flatnonzero(mask)
        ids.setflags(write=False)
        return ids


# Dead passages in the FAISS index (until a compaction drops them) are
# skipped by asking for this many more results and dropping the dead ones,
# which is exact; a result heap of a thousand costs next to nothing in a
# scan. With more dead passages than this, the search is restricted to the
# live ids instead (an id selector, built per query from the live ids).
_OVERFETCH_LIMIT = 1000


class LocalRetriever:
    """The embedded default: FAISS for the dense run, tantivy for BM25, both in the index folder."""

    def __init__(self, data: IndexData, passage_filter: PassageFilter) -> None:
        self._data = data
        self._filter = passage_filter

    def dense(self, vector: np.ndarray, k: int, filters: QueryFilters) -> Hits:
        allowed = self._filter.allowed(filters)
        dead = self._data.dead_in_dense
        if allowed is not None or dead == 0:
            return search_dense(self._data.dense, vector, k, allowed)
        if dead > _OVERFETCH_LIMIT:
            return search_dense(self._data.dense, vector, k, self._filter.live_ids)
        live = self._filter.live
        hits = search_dense(self._data.dense, vector, k + dead)
        return [(pid, score) for pid, score in hits if live[pid]][:k]

    def lexical(self, terms: Sequence[tuple[str, float]], k: int, filters: QueryFilters) -> Hits:
        # Dead passages are deleted from tantivy by the update that retired them.
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
