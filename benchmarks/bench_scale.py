"""Benchmark: retrieval at 10k, 100k and 1M passages with the index qa/index/dense.py chooses.

Each size runs in a fresh process, so its memory figures are its own, and
measures: dense index build time, size on disk and in RAM (resident memory
added by loading it), dense search latency, BM25 build and search latency
(tantivy over passages of a generated archive, benchmarks/archive_gen.py),
combined retrieval latency (dense search + BM25 search + the engine's score
fusion; encoding the question is excluded: query vectors are computed first),
and recall@10 of the chosen index against exact search, with no filter and
with outlet filters allowing about 10% and 1.7% of passages.

Vectors: real MiniLM embeddings of passages recombined from real text
(benchmarks/real_text.py, run it first), and beyond those, "derived" vectors:
a real vector plus Gaussian noise, renormalised, with the noise level chosen
so that a derived vector's cosine to its source equals the median
nearest-neighbour cosine among the real vectors. Queries are real: question
embeddings and held-out real passages never added to the index.

Usage: python benchmarks/bench_scale.py [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from common import latency_stats, peak_rss_mb, rss_mb
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# Real passages embedded by real_text.py; the last HELD_OUT are queries only.
REAL_PASSAGES = 40_000
HELD_OUT = 300
# Real questions used as queries (of about 4,000), a fixed random sample.
QUESTION_QUERIES = 500
# Rows of derived vectors generated at once (noise for 100k rows is 150 MB).
DERIVE_CHUNK = 100_000
# The efSearch values tried at each size for a graph index (the "ef_sweep").
EF_SWEEP = (64, 128, 256, 512, 1024)
# The nprobe values tried for an inverted-file index (same list, "nprobe" runs).
NPROBE_SWEEP = (16, 32, 64, 128, 256)
SEED = 20260901


def real_vectors() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index-able real passage vectors, held-out real passage vectors, question vectors)."""
    from real_text import cached_prefix, real_questions, recombined_passages

    passages = cached_prefix(recombined_passages(REAL_PASSAGES), "passages")
    questions = cached_prefix(real_questions(), "questions")
    if len(passages) < 2 * HELD_OUT:
        raise SystemExit("run benchmarks/real_text.py first: no real passage vectors in build/real_vectors/")
    return passages[:-HELD_OUT], passages[-HELD_OUT:], questions


def noise_level(real: np.ndarray) -> tuple[float, float]:
    """(sigma, median nearest-neighbour cosine among real vectors).

    ``normalise(v + sigma * g / sqrt(d))`` with g standard normal has cosine
    about ``1 / sqrt(1 + sigma**2)`` to v; sigma is set so that equals the
    real median nearest-neighbour cosine.
    """
    import faiss

    sample = real[:: max(1, len(real) // 2000)][:2000]
    scores, _ = faiss.knn(sample, real, 2, metric=faiss.METRIC_INNER_PRODUCT)
    median = float(np.median(scores[:, 1]))
    return float(np.sqrt(1.0 / median**2 - 1.0)), median


def corpus_vectors(size: int, real: np.ndarray, sigma: float) -> np.ndarray:
    """``size`` unit vectors: the real ones first, then derived ones cycling over the real ones."""
    out = np.empty((size, real.shape[1]), dtype=np.float32)
    head = min(size, len(real))
    out[:head] = real[:head]
    for start in tqdm(range(head, size, DERIVE_CHUNK), desc="derived vectors", unit="chunk", file=sys.stderr):
        end = min(start + DERIVE_CHUNK, size)
        rng = np.random.default_rng([SEED, start])
        rows = real[np.arange(start, end) % len(real)]
        noise = rng.standard_normal(rows.shape, dtype=np.float32) * (sigma / np.sqrt(real.shape[1]))
        rows = rows + noise
        out[start:end] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def generated_passages(size: int) -> tuple[list[str], list[str], list[str]]:
    """(texts, outlets, dates) of ``size`` passages cut from a generated archive as the engine cuts them."""
    from archive_gen import generator_from_real, real_sentences

    from qa.settings import Settings

    settings = Settings()
    window, stride = settings.sentences_per_passage, settings.passage_stride
    texts: list[str] = []
    outlets: list[str] = []
    dates: list[str] = []
    bar = tqdm(total=size, desc="generated passages", unit="passage", file=sys.stderr)
    for article in generator_from_real(real_sentences()).articles(10**9):
        sentences = article.sentences
        for start in range(0, max(len(sentences) - window, 0) + 1, stride):
            texts.append(" ".join(sentences[start : start + window]))
            outlets.append(article.outlet)
            dates.append(article.date)
        bar.update(len(texts) - bar.n)
        if len(texts) >= size:
            break
    bar.close()
    return texts[:size], outlets[:size], dates[:size]


def recall_at_10(found: list[list[int]], truth: np.ndarray) -> float:
    """Mean share of each query's exact top 10 that the search found in its top 10."""
    return round(
        float(np.mean([len(set(f[:10]) & set(t[:10])) / 10 for f, t in zip(found, truth, strict=True)])), 4
    )


def exact_top10(vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    import faiss

    if allowed is None:
        return faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)[1]
    ids = faiss.knn(queries, vectors[allowed], 10, metric=faiss.METRIC_INNER_PRODUCT)[1]
    return allowed[ids]


def bench_size(size: int, factory: str | None) -> dict[str, object]:
    """Every figure for one corpus size, in this process."""
    from real_text import real_questions

    from qa.index.dense import (
        build_dense_index,
        choose_factory,
        load_dense_index,
        prepare_for_search,
        save_dense_index,
    )
    from qa.index.lexical import LexicalDoc, LexicalIndex, build_lexical_index
    from qa.settings import Settings

    depth = Settings().retrieve_depth
    factory = factory or choose_factory(size)
    real, held_out, question_vectors = real_vectors()
    rng = np.random.default_rng(SEED)
    picked = np.sort(rng.choice(len(question_vectors), QUESTION_QUERIES, replace=False))
    query_sets = {"questions": question_vectors[picked], "held_out_passages": held_out}
    question_texts = [real_questions()[i] for i in picked]
    sigma, real_nn = noise_level(real)

    texts, outlets, dates = generated_passages(size)
    outlet_names = sorted(set(outlets))
    broad = tuple(outlet_names[: max(1, len(outlet_names) // 10)])  # 6 of 60 outlets: about 10%
    narrow = (outlet_names[0],)  # one outlet: about 1.7%
    outlet_array = np.array(outlets, dtype=object)
    filters = {"10pct": broad, "1outlet": narrow}
    allowed = {name: np.flatnonzero(np.isin(outlet_array, list(chosen))) for name, chosen in filters.items()}
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
        bm25_path = Path(tmp) / "bm25"
        bm25_path.mkdir()
        started = time.perf_counter()
        build_lexical_index(
            bm25_path,
            (LexicalDoc(i, t, o, d) for i, (t, o, d) in enumerate(zip(texts, outlets, dates, strict=True))),
        )
        bm25_build_s = time.perf_counter() - started
        bm25_disk = sum(f.stat().st_size for f in bm25_path.rglob("*") if f.is_file()) / 2**20
        del texts, outlets, dates
        lexical = LexicalIndex(bm25_path)

        vectors = corpus_vectors(size, real, sigma)
        derived_nn = None
        if size > len(real):
            import faiss

            tail = vectors[len(real) :][:2000]
            derived_nn = float(
                np.median(faiss.knn(tail, vectors, 2, metric=faiss.METRIC_INNER_PRODUCT)[0][:, 1])
            )
        started = time.perf_counter()
        built = build_dense_index(vectors, factory, progress=True)
        dense_build_s = time.perf_counter() - started
        save_dense_index(built, Path(tmp) / "passages.faiss")
        dense_disk = (Path(tmp) / "passages.faiss").stat().st_size / 2**20
        del built
        dense_ram = _loaded_ram_mb(Path(tmp) / "passages.faiss")
        index = load_dense_index(Path(tmp) / "passages.faiss")

        truth = {
            (qname, fname): exact_top10(vectors, queries, allowed.get(fname))
            for qname, queries in query_sets.items()
            for fname in ("none", *filters)
        }
        del vectors
        terms = [[(t, 1.0) for t in lexical.terms(q)] for q in question_texts]
        questions = query_sets["questions"]
        sweep = []
        for name, value in _sweep(index):
            dense_figures = _dense_run(index, questions, None, truth[("questions", "none")], depth)
            retrieval = _retrieval_run(index, lexical, questions, terms, (), None)
            sweep.append({name: value, "dense": dense_figures, "retrieval": latency_stats(retrieval)})
        prepare_for_search(index)
        dense = {
            f"{qname}_{fname}": _dense_run(index, queries, allowed.get(fname), truth[(qname, fname)], depth)
            for qname, queries in query_sets.items()
            for fname in ("none", *filters)
        }
        bm25 = [_timed(lambda t=t: lexical.search(t, depth)) for t in terms]
        bm25_filtered = [_timed(lambda t=t: lexical.search(t, depth, broad)) for t in terms]
        combined = _retrieval_run(index, lexical, questions, terms, (), None)
        combined_filtered = _retrieval_run(index, lexical, questions, terms, broad, allowed["10pct"])
    return {
        "size": size,
        "factory": factory,
        "ef_construction": index.hnsw.efConstruction if hasattr(index, "hnsw") else None,
        "real_vectors_in_index": min(size, len(real)),
        "derived_vectors": max(0, size - len(real)),
        "noise_sigma": round(sigma, 4),
        "median_nn_cosine_real": round(real_nn, 4),
        "median_nn_cosine_derived": None if derived_nn is None else round(derived_nn, 4),
        "filter_share": {name: round(len(ids) / size, 4) for name, ids in allowed.items()},
        "dense_build_s": round(dense_build_s, 2),
        "dense_disk_mb": round(dense_disk, 1),
        "dense_ram_mb": round(dense_ram, 1),
        "dense": dense,
        "ef_sweep": sweep,
        "bm25_build_s": round(bm25_build_s, 2),
        "bm25_disk_mb": round(bm25_disk, 1),
        "bm25": latency_stats(bm25),
        "bm25_10pct_filter": latency_stats(bm25_filtered),
        "retrieval": latency_stats(combined),
        "retrieval_10pct_filter": latency_stats(combined_filtered),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _sweep(index) -> Iterator[tuple[str, int]]:
    """Set each search-time parameter value of the sweep on ``index`` in turn, yielding (name, value)."""
    import faiss

    if isinstance(index, faiss.IndexHNSW):
        for ef in EF_SWEEP:
            index.hnsw.efSearch = ef
            yield "ef_search", ef
    elif isinstance(index, faiss.IndexIVF):
        for nprobe in NPROBE_SWEEP:
            index.nprobe = nprobe
            yield "nprobe", nprobe


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def _retrieval_run(index, lexical, queries: np.ndarray, terms: list, outlets: tuple, allowed) -> list[float]:
    """Milliseconds a query of what the engine runs to retrieve: dense search, BM25 search, fusion.

    The outlet filter is applied as the engine applies it: ids for the dense
    index, a required outlet clause in tantivy.
    """
    from qa.index.dense import search_dense
    from qa.retrieval.fusion import score_blend
    from qa.settings import Settings

    settings = Settings()
    depth, weight = settings.retrieve_depth, settings.dense_weight

    def retrieve(query: np.ndarray, term_list: list) -> None:
        dense_hits = search_dense(index, query, depth, allowed)
        lexical_hits = lexical.search(term_list, depth, outlets)
        score_blend([(dense_hits, weight), (lexical_hits, 1.0 - weight)])

    return [_timed(lambda q=q, t=t: retrieve(q, t)) for q, t in zip(queries, terms, strict=True)]


def _loaded_ram_mb(path: Path) -> float:
    """Resident memory a fresh process gains by loading the index at ``path``.

    Measured apart from the benchmark, whose freed build memory the allocator
    would reuse for the index and hide it.
    """
    done = subprocess.run(
        [sys.executable, __file__, "--ram", str(path)], stdout=subprocess.PIPE, text=True, check=True
    )
    return float(json.loads(done.stdout)["ram_mb"])


def _dense_run(index, queries: np.ndarray, allowed: np.ndarray | None, truth: np.ndarray, depth: int) -> dict:
    """Latency and recall@10 of ``search_dense`` over ``queries``."""
    from qa.index.dense import search_dense

    found, samples = [], []
    for query in queries:
        started = time.perf_counter()
        hits = search_dense(index, query, depth, allowed)
        samples.append((time.perf_counter() - started) * 1000)
        found.append([i for i, _ in hits])
    return latency_stats(samples) | {"recall_at_10": recall_at_10(found, truth), "queries": len(queries)}


def _in_fresh_process(size: int, factory: str | None) -> dict[str, object]:
    """Run one size in a new interpreter, so its memory figures are its own."""
    command = [sys.executable, __file__, "--one", str(size)] + (["--factory", factory] if factory else [])
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout)


def _plot(rows: list[dict], latency_path: Path, memory_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["size"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in (
        ("retrieval (dense + BM25 + fusion), p50", [r["retrieval"]["median_ms"] for r in rows]),
        ("retrieval, p95", [r["retrieval"]["p95_ms"] for r in rows]),
        ("dense search, p50", [r["dense"]["questions_none"]["median_ms"] for r in rows]),
        ("BM25 search, p50", [r["bm25"]["median_ms"] for r in rows]),
    ):
        ax.plot(sizes, values, marker="o", label=label)
    ax.axhline(10, color="grey", linestyle="--", label="target: 10 ms p50 at 1M")
    _axes(ax, "latency a question (ms)", "Retrieval latency against corpus size")
    fig.tight_layout()
    fig.savefig(latency_path, dpi=120)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, key in (("dense index in RAM", "dense_ram_mb"), ("dense index on disk", "dense_disk_mb"),
                       ("BM25 index on disk", "bm25_disk_mb")):  # fmt: skip
        ax.plot(sizes, [r[key] for r in rows], marker="o", label=label)
    ax.axhline(1024, color="grey", linestyle="--", label="target: 1 GB dense RAM at 1M")
    _axes(ax, "MB", "Index memory against corpus size")
    fig.tight_layout()
    fig.savefig(memory_path, dpi=120)


def _axes(ax, ylabel: str, title: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("passages")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Measure dense (the index qa/index/dense.py chooses), BM25 and combined retrieval "
        "at growing corpus sizes; writes benchmarks/results/scale.json, scale_latency.png and "
        "scale_memory.png.",
        epilog="example: python benchmarks/bench_scale.py --sizes 10000 100000 1000000 "
        "(run benchmarks/real_text.py first)",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
        help="corpus sizes in passages (default 10000 100000 1000000)",
    )  # fmt: skip
    parser.add_argument("--factory", help="FAISS factory for every size instead of choose_factory's")
    parser.add_argument("--attempt", action="store_true", help="add the runs to the results' attempts list")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ram", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ram:
        from qa.index.dense import load_dense_index

        before = rss_mb()
        index = load_dense_index(args.ram)
        print(json.dumps({"ram_mb": round(rss_mb() - before, 1), "vectors": index.ntotal}))
        return 0
    if args.one:
        print(json.dumps(bench_size(args.one, args.factory)))
        return 0

    from importlib.metadata import version

    import faiss
    from archive_gen import compare_with_real

    path = RESULTS / "scale.json"
    results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"attempts": []}
    rows = [_in_fresh_process(size, args.factory) for size in tqdm(args.sizes, desc="sizes", file=sys.stderr)]
    if args.attempt:
        results["attempts"] = results.get("attempts", []) + rows
    else:
        results |= {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "gpu": None,
                "python": platform.python_version(),
                "faiss": faiss.__version__,
                "tantivy": version("tantivy"),
                "note": "shared with other jobs while measured (load average 4-9 on 2 cores)",
            },
            "generator_check": compare_with_real(),
            "sizes": rows,
        }
        _plot(rows, RESULTS / "scale_latency.png", RESULTS / "scale_memory.png")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(
        "| passages | factory | dense build s | dense disk MB | dense RAM MB | dense p50/p95 ms | recall@10 "
        "| BM25 p50/p95 ms | retrieval p50/p95 ms | retrieval 10% filter p50 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d, b, c = r["dense"]["questions_none"], r["bm25"], r["retrieval"]
        print(
            f"| {r['size']:,} | {r['factory']} | {r['dense_build_s']} | {r['dense_disk_mb']} "
            f"| {r['dense_ram_mb']} | {d['median_ms']}/{d['p95_ms']} | {d['recall_at_10']} "
            f"| {b['median_ms']}/{b['p95_ms']} | {c['median_ms']}/{c['p95_ms']} "
            f"| {r['retrieval_10pct_filter']['median_ms']} |"
        )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
