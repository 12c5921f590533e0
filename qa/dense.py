"""The FAISS index over passage embeddings."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

# Exact inner-product search: with unit vectors this is cosine similarity. A
# flat scan answers in about 10 ms at 100k passages and 100 ms at 1M on one core
# (benchmarks/results/retrieval.json); beyond that an approximate index pays.
# Change this one string (e.g. "HNSW32,Flat" or "IVF4096,Flat") for larger
# archives; everything else reads the index through faiss' generic API.
INDEX_FACTORY = "Flat"


def build_dense_index(vectors: np.ndarray) -> faiss.Index:
    """Index unit-length passage vectors; row i gets id i."""
    index = faiss.index_factory(vectors.shape[1], INDEX_FACTORY, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(vectors)
    index.add(vectors)
    return index


def save_dense_index(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def load_dense_index(path: Path) -> faiss.Index:
    """Read an index for querying, one question at a time.

    FAISS parallelises a single query's scan over OpenMP threads; on a small
    machine that costs more than it saves (benchmarks/: 1M passages, 2 cores:
    248 ms a query with 2 threads, 106 ms with 1). Concurrent questions run on
    the web app's own threads instead.
    """
    faiss.omp_set_num_threads(1)
    return faiss.read_index(str(path))


def search_dense(
    index: faiss.Index, query: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> list[tuple[int, float]]:
    """Top ``k`` (passage id, cosine) for one unit query vector.

    ``allowed`` restricts the search to those passage ids (outlet/date
    filters), inside FAISS, so a filter never empties the top k.
    """
    if allowed is not None and allowed.size == 0:
        return []
    k = min(k, index.ntotal if allowed is None else int(allowed.size))
    if k <= 0:
        return []
    params = None
    if allowed is not None:
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed.astype(np.int64)))
    scores, ids = index.search(query.reshape(1, -1).astype(np.float32), k, params=params)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
