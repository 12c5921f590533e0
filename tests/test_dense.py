"""The dense index: the size rule, approximate search quality and filters on real FAISS indexes."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.dense import (
    APPROXIMATE_FACTORY,
    EXACT_FACTORY,
    EXACT_MAX_PASSAGES,
    build_dense_index,
    choose_factory,
    load_dense_index,
    save_dense_index,
    search_dense,
)

DIMENSION = 384


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    """3,000 clustered unit vectors: 300 centres, each with 10 perturbed copies, as near-duplicate news."""
    rng = np.random.default_rng(7)
    centres = _unit(rng.standard_normal((300, DIMENSION)))
    return _unit(np.repeat(centres, 10, axis=0) + 0.05 * rng.standard_normal((3000, DIMENSION)))


@pytest.fixture(scope="module")
def graph(vectors: np.ndarray) -> faiss.Index:
    return build_dense_index(vectors, APPROXIMATE_FACTORY)


def test_choose_factory_is_exact_up_to_the_threshold_and_approximate_above() -> None:
    assert choose_factory(1) == EXACT_FACTORY
    assert choose_factory(EXACT_MAX_PASSAGES) == EXACT_FACTORY
    assert choose_factory(EXACT_MAX_PASSAGES + 1) == APPROXIMATE_FACTORY
    assert choose_factory(10_000_000) == APPROXIMATE_FACTORY


def test_default_factory_follows_the_size(vectors: np.ndarray) -> None:
    assert isinstance(build_dense_index(vectors[:100]), faiss.IndexFlat)


def test_graph_finds_each_vector_itself_first(graph: faiss.Index, vectors: np.ndarray) -> None:
    assert isinstance(graph, faiss.IndexHNSW)
    rows = range(0, len(vectors), 7)
    found = [search_dense(graph, vectors[i], 1)[0][0] for i in rows]
    assert found == list(rows)


def test_graph_top10_agrees_with_exact_search(graph: faiss.Index, vectors: np.ndarray) -> None:
    exact = build_dense_index(vectors, EXACT_FACTORY)
    queries = _unit(vectors[::50] + 0.05 * np.random.default_rng(1).standard_normal((60, DIMENSION)))
    overlap = [
        len({i for i, _ in search_dense(graph, q, 10)} & {i for i, _ in search_dense(exact, q, 10)}) / 10
        for q in queries
    ]
    assert np.mean(overlap) >= 0.95


def test_saved_graph_loads_with_the_same_answers(graph: faiss.Index, vectors: np.ndarray, tmp_path) -> None:
    save_dense_index(graph, tmp_path / "passages.faiss")
    loaded = load_dense_index(tmp_path / "passages.faiss")
    assert isinstance(loaded, faiss.IndexHNSW)
    assert [search_dense(loaded, vectors[i], 5) for i in (0, 999)] == [
        search_dense(graph, vectors[i], 5) for i in (0, 999)
    ]


@settings(max_examples=25, deadline=None)
@given(allowed_ids=st.sets(st.integers(0, 2999), min_size=1, max_size=400), k=st.integers(1, 60))
def test_filter_on_a_graph_returns_min_k_allowed_results(
    graph: faiss.Index, vectors: np.ndarray, allowed_ids: set[int], k: int
) -> None:
    allowed = np.array(sorted(allowed_ids), dtype=np.int64)
    hits = search_dense(graph, vectors[0], k, allowed)
    assert len(hits) == min(k, len(allowed_ids))
    assert {i for i, _ in hits} <= allowed_ids
    assert len({i for i, _ in hits}) == len(hits)
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True)


def test_selective_filter_on_a_graph_is_exact_over_the_allowed_rows(
    graph: faiss.Index, vectors: np.ndarray
) -> None:
    # 30 ids spread over every cluster: a graph walk alone returns only a few of them.
    allowed = np.arange(5, 3000, 100, dtype=np.int64)
    hits = search_dense(graph, vectors[0], 10, allowed)
    expected = allowed[np.argsort(-(vectors[allowed] @ vectors[0]))][:10]
    assert [i for i, _ in hits] == expected.tolist()


def test_broad_filter_on_a_graph_stays_inside_it(graph: faiss.Index, vectors: np.ndarray) -> None:
    allowed = np.arange(0, 3000, 2, dtype=np.int64)  # half the index: the graph walk answers
    hits = search_dense(graph, vectors[10], 10, allowed)
    assert len(hits) == 10
    assert all(i % 2 == 0 for i, _ in hits)
    assert hits[0][0] == 10


def test_empty_filter_returns_nothing(graph: faiss.Index, vectors: np.ndarray) -> None:
    assert search_dense(graph, vectors[0], 10, np.array([], dtype=np.int64)) == []
    assert search_dense(build_dense_index(vectors[:50]), vectors[0], 10, np.array([], dtype=np.int64)) == []
