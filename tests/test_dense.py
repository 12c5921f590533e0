"""The dense index: the size rule, approximate search quality and filters on real FAISS indexes."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.index.dense import (
    EXACT_FACTORY,
    EXACT_MAX_PASSAGES,
    approximate_factory,
    build_dense_index,
    choose_factory,
    load_dense_index,
    prepare_for_search,
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


# The inverted file choose_factory picks for large archives, and a graph, which search_dense also serves.
@pytest.fixture(scope="module", params=[approximate_factory(3000), "HNSW32,SQ8"])
def approximate(vectors: np.ndarray, request: pytest.FixtureRequest) -> faiss.Index:
    return build_dense_index(vectors, request.param)


def test_choose_factory_is_exact_up_to_the_threshold_and_approximate_above() -> None:
    assert choose_factory(1) == EXACT_FACTORY
    assert choose_factory(EXACT_MAX_PASSAGES) == EXACT_FACTORY
    # 4 * sqrt(n) cells, rounded to a power of two: 4 * 224 = 894 -> 1024; 4 * 1000 -> 4096.
    assert choose_factory(EXACT_MAX_PASSAGES + 1) == "IVF1024,SQ8"
    assert choose_factory(1_000_000) == "IVF4096,SQ8"
    assert choose_factory(10_000_000) == "IVF16384,SQ8"


def test_default_factory_follows_the_size(vectors: np.ndarray) -> None:
    assert isinstance(build_dense_index(vectors[:100]), faiss.IndexFlat)


def test_approximate_index_finds_each_vector_itself_first(
    approximate: faiss.Index, vectors: np.ndarray
) -> None:
    assert not isinstance(approximate, faiss.IndexFlat)
    rows = range(0, len(vectors), 7)
    found = [search_dense(approximate, vectors[i], 1)[0][0] for i in rows]
    assert found == list(rows)


def test_approximate_top10_agrees_with_exact_search(approximate: faiss.Index, vectors: np.ndarray) -> None:
    exact = build_dense_index(vectors, EXACT_FACTORY)
    queries = _unit(vectors[::50] + 0.05 * np.random.default_rng(1).standard_normal((60, DIMENSION)))
    overlap = [
        len({i for i, _ in search_dense(approximate, q, 10)} & {i for i, _ in search_dense(exact, q, 10)})
        / 10
        for q in queries
    ]
    assert np.mean(overlap) >= 0.95


def test_saved_index_loads_with_the_same_answers(
    approximate: faiss.Index, vectors: np.ndarray, tmp_path
) -> None:
    save_dense_index(approximate, tmp_path / "passages.faiss")
    loaded = load_dense_index(tmp_path / "passages.faiss")
    assert type(loaded) is type(approximate)
    assert [search_dense(loaded, vectors[i], 5) for i in (0, 999)] == [
        search_dense(approximate, vectors[i], 5) for i in (0, 999)
    ]


@settings(max_examples=25, deadline=None)
@given(allowed_ids=st.sets(st.integers(0, 2999), min_size=1, max_size=400), k=st.integers(1, 60))
def test_filter_on_an_approximate_index_returns_min_k_allowed_results(
    approximate: faiss.Index, vectors: np.ndarray, allowed_ids: set[int], k: int
) -> None:
    allowed = np.array(sorted(allowed_ids), dtype=np.int64)
    hits = search_dense(approximate, vectors[0], k, allowed)
    assert len(hits) == min(k, len(allowed_ids))
    assert {i for i, _ in hits} <= allowed_ids
    assert len({i for i, _ in hits}) == len(hits)
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True)


def test_selective_filter_is_exact_over_the_allowed_rows(
    approximate: faiss.Index, vectors: np.ndarray
) -> None:
    # 30 ids spread over every cluster: a graph walk alone returns only a few of them.
    allowed = np.arange(5, 3000, 100, dtype=np.int64)
    hits = search_dense(approximate, vectors[0], 10, allowed)
    expected = allowed[np.argsort(-(vectors[allowed] @ vectors[0]))][:10]
    assert [i for i, _ in hits] == expected.tolist()


def test_broad_filter_stays_inside_it(approximate: faiss.Index, vectors: np.ndarray) -> None:
    allowed = np.arange(0, 3000, 2, dtype=np.int64)  # half the index: the approximate search answers
    hits = search_dense(approximate, vectors[10], 10, allowed)
    assert len(hits) == 10
    assert all(i % 2 == 0 for i, _ in hits)
    assert hits[0][0] == 10


def test_empty_filter_returns_nothing(approximate: faiss.Index, vectors: np.ndarray) -> None:
    assert search_dense(approximate, vectors[0], 10, np.array([], dtype=np.int64)) == []
    assert search_dense(build_dense_index(vectors[:50]), vectors[0], 10, np.array([], dtype=np.int64)) == []


@pytest.mark.parametrize("factory", ["IDMap,Flat", "IDMap,IVF64,SQ8"])
def test_filters_on_an_id_map_use_passage_ids_beyond_the_row_count(vectors: np.ndarray, factory: str) -> None:
    # The store keeps passage ids in an IDMap: after deletions they run past the number of rows.
    rows = vectors[:1000]
    index = faiss.index_factory(DIMENSION, factory, faiss.METRIC_INNER_PRODUCT)
    index.train(rows)
    ids = np.arange(1000, dtype=np.int64) * 7 + 5000
    index.add_with_ids(rows, ids)
    prepare_for_search(index)
    for allowed in (ids[::3], ids[[9, 500, 999]]):
        hits = search_dense(index, rows[9], 20, allowed)
        assert len(hits) == min(20, allowed.size)
        assert {i for i, _ in hits} <= set(allowed.tolist())
        assert hits[0][0] == ids[9]


def test_needs_retype_only_across_the_exact_size_or_a_fourfold_change_in_cells() -> None:
    from qa.index.dense import EXACT_MAX_PASSAGES, approximate_factory, needs_retype

    assert not needs_retype("Flat", EXACT_MAX_PASSAGES)
    assert needs_retype("Flat", EXACT_MAX_PASSAGES + 1)
    assert needs_retype(approximate_factory(100_000), EXACT_MAX_PASSAGES)
    # 100k passages: 1024 cells; 400k: 2048 (kept); 1.6M, sixteen times the size: 4096.
    assert approximate_factory(100_000) == "IVF1024,SQ8"
    assert not needs_retype("IVF1024,SQ8", 400_000)
    assert needs_retype("IVF1024,SQ8", 1_600_000)
    assert needs_retype("IVF4096,SQ8", 100_000)
