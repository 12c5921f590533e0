"""The FAISS index over passage embeddings: exact for small archives, approximate for large ones.

The index type is chosen by size here and nowhere else (``choose_factory``);
everything else reads the index through FAISS' generic API. Figures behind
the constants: benchmarks/results/scale.json (docs/performance.md), measured
on a shared 2-core machine with real MiniLM embeddings.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

# Exact inner-product search: with unit vectors this is cosine similarity.
EXACT_FACTORY = "Flat"

# A flat scan costs about 0.09 ms per 1,000 passages on one core (9 ms at
# 100k, 105 ms at 1M: benchmarks/results/retrieval.json). Up to 50k passages
# it stays under 5 ms, half the 10 ms retrieval budget, and is exact and free
# to build; above, an inverted file answers in 1-2 ms at 1M.
EXACT_MAX_PASSAGES = 50_000

# Above that: an inverted file (k-means cells, a query scans the vectors of
# the NPROBE nearest cells) over 8-bit scalar-quantised vectors, 384 bytes a
# vector instead of 1,536, so 1M passages take 0.38 GB of RAM. At 1M passages
# (benchmarks/results/scale.json, real question embeddings) it reached
# recall@10 0.972 against exact search in 0.9 to 2.1 ms (p50, by machine
# load), built in 34 s in the final run ("sizes"; 103 s in an earlier attempt
# on a busier machine, "attempts").
# Tried and not chosen: HNSW32,SQ8 (0.63 GB, built in 362 s, recall@10 only
# 0.89 at efSearch 256 and 0.956 at 1024, where it took 8.6 ms); product
# quantisation was not needed to fit in 1 GB and loses more recall.
APPROXIMATE_CODEC = "SQ8"
# Cells: about 4 * sqrt(n) (the low end of FAISS' 4 to 16 * sqrt(n)), rounded to a power of two, so a
# cell holds a few hundred vectors at 1M (4096 cells) and a probe stays cheap.
CELLS_PER_SQRT_N = 4
# Cells a query scans: the smallest of 16, 32, 64, 128, 256 whose recall@10 at
# 1M passages was over 0.95 with headroom (16: 0.958, 32: 0.972; scale.json,
# "ef_sweep" of the 1M row).
NPROBE = 32
# A filtered scan of an inverted file keeps only allowed ids among the cells
# it reads, so with a filter admitting a share s of the archive it reads
# NPROBE / s cells to see as many allowed vectors as an unfiltered search,
# capped here (a quarter of the cells at 1M; filters under 5% are scanned
# exactly anyway). With NPROBE alone a 10% filter had recall@10 0.915 at 100k.
FILTER_NPROBE_MAX = 256
# For an "HNSW..." factory (not chosen by size, still supported): candidates
# kept a search (efSearch) and a build insertion (efConstruction, FAISS'
# default). A filtered walk keeps only allowed ids, so it needs about k /
# share candidates to find k of them, capped at FILTER_EF_MAX.
EF_SEARCH = 256
EF_CONSTRUCTION = 40
FILTER_EF_MAX = 1024

# Build: vectors are added this many at a time, so the progress bar moves and
# FAISS' per-call buffers stay small. Training reads at most TRAIN_SAMPLE
# vectors, a random sample: 8-bit ranges settle long before, and 4096 cells
# trained on 100k (24 a cell, under FAISS' suggested 39) still gave the
# recall above while keeping k-means short on 2 cores.
ADD_CHUNK = 50_000
TRAIN_SAMPLE = 100_000

# A filtered approximate search keeps only allowed ids among what it scans.
# When the filter allows under this share of the index, most of the scan is
# wasted and the answer can come back short, so the allowed rows are scanned
# exactly instead (scale.json: the "1outlet" filter).
APPROXIMATE_FILTER_MIN_FRACTION = 0.05
# Exact scans decode just the allowed rows when they are at most this share of
# the index, else scan every stored code with a bitmap of the allowed ids.
# Measured on 100k 8-bit codes, one core: decoding costs about 2.6 us a row,
# the bitmap scan about 12 ns a row of the whole index, so they cross near
# 1/200.
RECONSTRUCT_MAX_FRACTION = 1 / 200


def choose_factory(n: int) -> str:
    """The FAISS factory string for an index of ``n`` passages: the one place the type is chosen.

    Args:
        n: number of passages the index will hold.

    Returns:
        ``EXACT_FACTORY`` up to ``EXACT_MAX_PASSAGES``, else ``approximate_factory(n)``.
    """
    return EXACT_FACTORY if n <= EXACT_MAX_PASSAGES else approximate_factory(n)


def needs_retype(built: str, n: int) -> bool:
    """Whether an index built as ``built`` should be rebuilt now that it holds ``n`` passages.

    When ``choose_factory`` moves from exact to approximate (or back), or to
    an inverted file with at least four times more or fewer cells (the
    archive grew or shrank about sixteen-fold). Smaller drifts keep the
    trained cells: a rebuild costs a full k-means, and a cell count off by
    two still probes a similar share of the archive.
    """
    chosen = choose_factory(n)
    if (built == EXACT_FACTORY) != (chosen == EXACT_FACTORY):
        return True
    if chosen == EXACT_FACTORY:
        return False
    ratio = _cells(chosen) / max(_cells(built), 1)
    return ratio >= 4 or ratio <= 1 / 4


def _cells(factory: str) -> int:
    """The cell count of an "IVF<cells>,..." factory string; 0 for any other."""
    head = factory.split(",", 1)[0]
    return int(head[3:]) if head.startswith("IVF") and head[3:].isdigit() else 0


def approximate_factory(n: int) -> str:
    """The inverted-file factory for ``n`` passages, e.g. "IVF4096,SQ8" at 1M."""
    cells = 2 ** round(np.log2(max(CELLS_PER_SQRT_N * np.sqrt(max(n, 1)), 1)))
    return f"IVF{cells},{APPROXIMATE_CODEC}"


def build_dense_index(
    vectors: np.ndarray,
    factory: str | None = None,
    progress: bool = False,
    ids: np.ndarray | None = None,
) -> faiss.Index:
    """Index unit-length passage vectors under ``ids`` (row i gets id i without them).

    Training and adding use every core; searching later uses one
    (``load_dense_index``), so the thread count is put back afterwards.

    Args:
        vectors: float32 array, one unit vector a row.
        factory: a FAISS factory string; ``None`` means ``choose_factory(len(vectors))``.
        progress: show a progress bar while adding (for large inputs).
        ids: the passage id of each row; the index is then wrapped in an id
            map, so an update can add passages under their own ids and a
            compaction leave dead ones out while every other id stays put.

    Returns:
        The built index, ready to save.
    """
    factory = factory or choose_factory(len(vectors))
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.index_factory(
        vectors.shape[1], factory if ids is None else f"IDMap,{factory}", faiss.METRIC_INNER_PRODUCT
    )
    if isinstance(_inner(index), faiss.IndexHNSW):
        _inner(index).hnsw.efConstruction = EF_CONSTRUCTION
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        if not index.is_trained:
            index.train(_training_sample(vectors))
        chunks = range(0, len(vectors), ADD_CHUNK)
        show = progress and len(chunks) > 1
        for start in tqdm(chunks, desc="dense index", unit="chunk", file=sys.stderr, disable=not show):
            if ids is None:
                index.add(vectors[start : start + ADD_CHUNK])
            else:
                index.add_with_ids(vectors[start : start + ADD_CHUNK], ids[start : start + ADD_CHUNK])
    finally:
        faiss.omp_set_num_threads(threads)
    prepare_for_search(index)
    return index


def save_dense_index(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def load_dense_index(path: Path) -> faiss.Index:
    """Read an index for querying, one question at a time, at the recall target.

    FAISS parallelises a single query's scan over OpenMP threads; on a small
    machine that costs more than it saves (benchmarks/: 1M passages, 2 cores:
    248 ms a query with 2 threads, 106 ms with 1). Concurrent questions run on
    the web app's own threads instead.
    """
    faiss.omp_set_num_threads(1)
    index = faiss.read_index(str(path))
    prepare_for_search(index)
    return index


def search_dense(
    index: faiss.Index, query: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> list[tuple[int, float]]:
    """Top ``k`` (passage id, cosine) for one unit query vector, best first.

    Args:
        index: an index from ``build_dense_index`` or ``load_dense_index``.
        query: one unit vector.
        k: how many results at most.
        allowed: passage ids the results must come from (outlet/date
            filters), or ``None`` for all. A filter never empties the top k:
            ``min(k, len(allowed))`` results come back however few ids it allows.

    Returns:
        (passage id, inner product) pairs, highest first.
    """
    if allowed is not None and allowed.size == 0:
        return []
    k = min(k, index.ntotal if allowed is None else int(allowed.size))
    if k <= 0:
        return []
    query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    if allowed is None:
        return _pairs(*index.search(query, k))
    allowed = allowed.astype(np.int64)
    if _is_exact(index):
        return _pairs(
            *index.search(query, k, params=faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed)))
        )
    if allowed.size >= APPROXIMATE_FILTER_MIN_FRACTION * index.ntotal:
        hits = _pairs(*index.search(query, k, params=_approximate_parameters(index, allowed, k)))
        if len(hits) == k:
            return hits
    return _exact_over(index, query, k, allowed)


def _training_sample(vectors: np.ndarray) -> np.ndarray:
    if len(vectors) <= TRAIN_SAMPLE:
        return vectors
    rows = np.sort(np.random.default_rng(0).choice(len(vectors), TRAIN_SAMPLE, replace=False))
    return vectors[rows]


def prepare_for_search(index: faiss.Index) -> None:
    """Set the search-time parameters that reach the recall target, and what filtered search needs.

    An inverted file that is not wrapped in an id map (``IDMap,...``) also
    gets its id-to-cell map (8 bytes a vector), so an exact scan of a few
    allowed rows decodes just those rows.
    """
    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = EF_SEARCH
    elif isinstance(inner, faiss.IndexIVF):
        inner.nprobe = NPROBE
        if inner is index and inner.direct_map.type == faiss.DirectMap.NoMap:
            inner.make_direct_map()


def _inner(index: faiss.Index) -> faiss.Index:
    """The index holding the vectors: the one inside an ``IDMap`` (rows to passage ids), or ``index``."""
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index


def _is_exact(index: faiss.Index) -> bool:
    return isinstance(_inner(index), faiss.IndexFlat)


def _approximate_parameters(index: faiss.Index, allowed: np.ndarray, k: int) -> faiss.SearchParameters:
    """Search parameters restricting an approximate index to ``allowed`` (an id map passes them on)."""
    selector = _bitmap_selector(allowed)
    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        wanted = int(np.ceil(k * index.ntotal / allowed.size))
        ef = min(max(inner.hnsw.efSearch, wanted), FILTER_EF_MAX)
        return faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
    if isinstance(inner, faiss.IndexIVF):
        wanted = int(np.ceil(inner.nprobe * index.ntotal / allowed.size))
        nprobe = min(max(inner.nprobe, wanted), FILTER_NPROBE_MAX, inner.nlist)
        return faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
    return faiss.SearchParameters(sel=selector)


def _exact_over(
    index: faiss.Index, query: np.ndarray, k: int, allowed: np.ndarray
) -> list[tuple[int, float]]:
    """Exact top ``k`` among the ``allowed`` rows of an approximate index (its stored codes)."""
    inner = _inner(index)
    if inner is index and allowed.size <= RECONSTRUCT_MAX_FRACTION * index.ntotal:
        scores = index.reconstruct_batch(allowed) @ query[0]
        top = np.argsort(-scores, kind="stable")[:k]
        return [(int(allowed[i]), float(scores[i])) for i in top]
    selector = _bitmap_selector(allowed)
    if isinstance(inner, faiss.IndexIVF):
        params = faiss.SearchParametersIVF(sel=selector, nprobe=inner.nlist)
        return _pairs(*index.search(query, k, params=params))
    if isinstance(index, faiss.IndexHNSW):
        params = faiss.SearchParameters(sel=selector)
        return _pairs(*faiss.downcast_index(index.storage).search(query, k, params=params))
    raise ValueError(
        f"no exact filtered scan for index type {type(index).__name__} over {type(inner).__name__}"
    )


def _bitmap_selector(allowed: np.ndarray) -> faiss.IDSelectorBitmap:
    """A selector testing membership with one bit an id: cheaper to test than a hash set."""
    mask = np.zeros(int(allowed.max()) + 1, dtype=bool)
    mask[allowed] = True
    return faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))


def _pairs(scores: np.ndarray, ids: np.ndarray) -> list[tuple[int, float]]:
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
