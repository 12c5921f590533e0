"""Benchmark: query latency of the engine, and how its two retrievers scale.

Measures, and writes to ``benchmarks/results/retrieval.json`` (plus a plot):

1. the whole engine on the bundled corpus: index build time, ``engine.ask``
   latency over the dev questions (median, p95), process memory;
2. each retriever alone on synthetic data of growing size, each size in a
   fresh process so its memory figure is its own: FAISS exact search over
   random unit vectors (384 dimensions, as MiniLM), and tantivy BM25 over
   passages of ~100 words drawn from a Zipf vocabulary, with and without the
   outlet and date filters the engine applies.

Timings depend on the machine and its load: compare ratios within one run.

Usage: python benchmarks/bench_retrieval.py [--sizes 10000 100000 1000000] [--repeats 5]
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
from pathlib import Path

import numpy as np
from common import latency_stats, peak_rss_mb
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DIMENSION = 384
QUERIES = 50
VOCABULARY = 50_000
OUTLETS = ("Outlet A", "Outlet B", "Outlet C")


def bench_engine(repeats: int) -> dict[str, object]:
    """Build the bundled corpus's index, then time ``ask`` over the dev questions."""
    from qa.engine import Engine

    questions = [
        json.loads(line)
        for line in (ROOT / "data" / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        engine = Engine.open(ROOT / "data" / "corpus", Path(tmp) / "index", progress=False)
        build_s = time.perf_counter() - started
        for q in questions:  # warm-up: thread pools, lazy caches
            engine.ask(q["question"], history=q.get("history", []))
        samples = []
        for _ in tqdm(range(repeats), desc="engine.ask", unit="pass", file=sys.stderr):
            for q in questions:
                started = time.perf_counter()
                engine.ask(q["question"], history=q.get("history", []))
                samples.append((time.perf_counter() - started) * 1000)
    return {
        "questions": len(questions),
        "repeats": repeats,
        "build_s": round(build_s, 2),
        "ask": latency_stats(samples),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def bench_dense(size: int) -> dict[str, object]:
    """FAISS exact inner-product search over ``size`` random unit vectors."""
    from qa.index.dense import build_dense_index, load_dense_index, save_dense_index, search_dense

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((size, DIMENSION), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    started = time.perf_counter()
    built = build_dense_index(vectors)
    build_s = time.perf_counter() - started
    del vectors
    # Query the index as the engine does: saved, then read back by load_dense_index.
    with tempfile.TemporaryDirectory() as tmp:
        save_dense_index(built, Path(tmp) / "passages.faiss")
        del built
        index = load_dense_index(Path(tmp) / "passages.faiss")
    queries = rng.standard_normal((QUERIES, DIMENSION), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    allowed = np.sort(rng.choice(size, size=max(1, size // 10), replace=False)).astype(np.int64)
    plain, filtered = [], []
    for query in queries:
        started = time.perf_counter()
        search_dense(index, query, 50)
        plain.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        search_dense(index, query, 50, allowed)
        filtered.append((time.perf_counter() - started) * 1000)
    return {
        "size": size,
        "build_s": round(build_s, 2),
        "index_mb": round(index.ntotal * DIMENSION * 4 / 2**20, 1),
        "search": latency_stats(plain),
        "search_10pct_filter": latency_stats(filtered),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _synthetic_words(rng: np.random.Generator) -> np.ndarray:
    """A made-up vocabulary of pronounceable words, so stemming leaves them alone."""
    syllables = np.array(["ka", "lo", "mi", "nu", "te", "ra", "so", "vi", "pe", "du", "go", "ze"])
    picks = rng.integers(0, len(syllables), size=(VOCABULARY, 4))
    words = {"".join(syllables[row]) for row in picks}
    return np.array(sorted(words))


def bench_bm25(size: int) -> dict[str, object]:
    """tantivy BM25 over ``size`` synthetic ~100-word passages."""
    from qa.index.lexical import LexicalDoc, LexicalIndex, build_lexical_index

    rng = np.random.default_rng(0)
    words = _synthetic_words(rng)
    # Zipf ranks, as in natural text: a few words are everywhere, most are rare.
    ranks = np.minimum(rng.zipf(1.1, size=(size, 100)) - 1, len(words) - 1)
    dates = [
        (dt.date(2020, 1, 1) + dt.timedelta(days=int(d))).isoformat() for d in rng.integers(0, 366, size=size)
    ]

    def docs():
        for i in range(size):
            yield LexicalDoc(i, " ".join(words[ranks[i]]), OUTLETS[i % 3], dates[i])

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bm25"
        path.mkdir()
        started = time.perf_counter()
        build_lexical_index(path, docs())
        build_s = time.perf_counter() - started
        disk_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
        index = LexicalIndex(path)
        plain, filtered = [], []
        for _ in range(QUERIES):
            text = " ".join(words[rng.integers(0, 2000, size=int(rng.integers(5, 9)))])
            terms = [(t, 1.0) for t in index.terms(text)]
            started = time.perf_counter()
            index.search(terms, 50)
            plain.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            index.search(terms, 50, outlets=("Outlet A",), since="2020-03-01", until="2020-06-30")
            filtered.append((time.perf_counter() - started) * 1000)
    return {
        "size": size,
        "build_s": round(build_s, 2),
        "disk_mb": round(disk_mb, 1),
        "search": latency_stats(plain),
        "search_outlet_and_dates": latency_stats(filtered),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _in_fresh_process(kind: str, size: int) -> dict[str, object]:
    """Run one measurement in a new interpreter, so memory is per size."""
    done = subprocess.run(
        [sys.executable, __file__, "--one", kind, str(size)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def _plot(results: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("search", "no filter"), ("search_10pct_filter", "10% of ids allowed")):
        rows = results["dense"]
        axes[0].plot([r["size"] for r in rows], [r[key]["median_ms"] for r in rows], marker="o", label=label)
    for key, label in (("search", "no filter"), ("search_outlet_and_dates", "outlet + date range")):
        rows = results["bm25"]
        axes[1].plot([r["size"] for r in rows], [r[key]["median_ms"] for r in rows], marker="o", label=label)
    titles = ("FAISS exact search (384-d)", "tantivy BM25 (~100-word passages)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("passages")
        ax.set_ylabel("median query latency (ms)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Measure engine query latency on the bundled corpus and how FAISS and "
        "tantivy BM25 scale with synthetic passages; writes benchmarks/results/retrieval.json and .png.",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
        help="synthetic corpus sizes in passages (default 10000 100000 1000000)",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5, help="passes over the dev questions (default 5)")
    parser.add_argument("--one", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, size = args.one
        measure = bench_dense if kind == "dense" else bench_bm25
        print(json.dumps(measure(int(size))))
        return 0

    from importlib.metadata import version

    import faiss

    results: dict[str, object] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "tantivy": version("tantivy"),
        },
        "engine": bench_engine(args.repeats),
        "dense": [],
        "bm25": [],
    }
    for size in tqdm(args.sizes, desc="synthetic sizes", unit="size", file=sys.stderr):
        results["dense"].append(_in_fresh_process("dense", size))
        results["bm25"].append(_in_fresh_process("bm25", size))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "retrieval.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    _plot(results, RESULTS / "retrieval.png")

    engine = results["engine"]
    print(
        f"engine on the bundled corpus: build {engine['build_s']} s, ask median "
        f"{engine['ask']['median_ms']} ms, p95 {engine['ask']['p95_ms']} ms, "
        f"peak RSS {engine['peak_rss_mb']} MB\n"
    )
    print(
        "| retriever | passages | build s | median ms | p95 ms | filtered median ms | size MB | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in results["dense"]:
        print(
            f"| FAISS | {row['size']:,} | {row['build_s']} | {row['search']['median_ms']} | "
            f"{row['search']['p95_ms']} | {row['search_10pct_filter']['median_ms']} | {row['index_mb']} | "
            f"{row['peak_rss_mb']} |"
        )
    for row in results["bm25"]:
        print(
            f"| BM25 | {row['size']:,} | {row['build_s']} | {row['search']['median_ms']} | "
            f"{row['search']['p95_ms']} | {row['search_outlet_and_dates']['median_ms']} | {row['disk_mb']} | "
            f"{row['peak_rss_mb']} |"
        )
    print(f"\nwrote {RESULTS / 'retrieval.json'} and {RESULTS / 'retrieval.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
