"""Benchmark: the Milvus backend on milvus-lite against the embedded FAISS + tantivy default.

Measures, and writes to ``benchmarks/results/milvus.json``:

1. on the bundled corpus: the load (sync) time into a fresh collection and a
   re-sync of an unchanged index; dense, BM25 and fused retrieval latency
   (median, p95) through :class:`qa.retrieval.milvus.MilvusRetriever` and
   :class:`qa.retrieval.retriever.LocalRetriever` for the dev questions; and how often
   the two backends give the same top answer, with the BM25 history weight
   sent as term repetition (what qa.retrieval.milvus does), ignored (every term once),
   or dropped (question terms only);
2. on synthetic sets (random unit vectors, ~100-word passages drawn from a
   Zipf vocabulary as in bench_retrieval.py, three outlets, dates over 2020):
   the same load and latency figures, plain and with an outlet and date filter.

milvus-lite is a stand-in for a Milvus server here, not a deployment tier:
it is pure Python, and its figures say nothing about a cluster's latency.
Timings depend on the machine and its load: compare ratios within one run.

Usage: python benchmarks/bench_milvus.py [--sizes 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_retrieval import DIMENSION, OUTLETS, QUERIES, _synthetic_words  # noqa: E402
from common import latency_stats, milvus_machine  # noqa: E402

from qa.index.entities import EntityTagger  # noqa: E402
from qa.index.store import IndexData, IndexSpec, build_index, load_index  # noqa: E402
from qa.records import Article  # noqa: E402
from qa.retrieval.milvus import MilvusRetriever, connect, sync_collection  # noqa: E402
from qa.retrieval.retriever import Hits, LocalRetriever, PassageFilter, QueryFilters, Retriever, retrieve  # noqa: E402
from qa.settings import Settings  # noqa: E402

if TYPE_CHECKING:
    from pymilvus import MilvusClient

RESULTS = ROOT / "benchmarks" / "results"
DEPTH = Settings().retrieve_depth
SYNTHETIC_FILTER = QueryFilters(outlets=("Outlet A",), since="2020-03-01", until="2020-06-30")


class UnweightedMilvus(MilvusRetriever):
    """Every BM25 term sent once: what sending the question and history text would give."""

    def lexical(self, terms: Sequence[tuple[str, float]], k: int, filters: QueryFilters) -> Hits:
        return super().lexical([(t, 1.0) for t, _ in terms], k, filters)


class QuestionOnlyMilvus(MilvusRetriever):
    """The history's BM25 terms dropped: what sending the question text alone would give."""

    def lexical(self, terms: Sequence[tuple[str, float]], k: int, filters: QueryFilters) -> Hits:
        return super().lexical([(t, w) for t, w in terms if w >= 1.0], k, filters)


def _time(repeats: int, call: Callable[..., object], *args: object) -> list[float]:
    """Milliseconds of ``repeats`` calls of ``call(*args)``."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call(*args)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _latencies(
    backends: dict[str, Retriever],
    queries: Sequence[tuple[np.ndarray, list[tuple[str, float]]]],
    filters: QueryFilters,
    repeats: int,
) -> dict[str, dict[str, dict[str, float]]]:
    """Dense, BM25 and fused (hybrid) latency of each backend over ``queries``."""
    settings = Settings()
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for name, backend in backends.items():
        for vector, terms in queries[:3]:  # warm-up: clients, caches, lazy loads
            retrieve(backend, vector, terms, filters, settings)
        runs: dict[str, list[float]] = {"dense": [], "bm25": [], "fused": []}
        for vector, terms in queries:
            runs["dense"] += _time(repeats, backend.dense, vector, DEPTH, filters)
            runs["bm25"] += _time(repeats, backend.lexical, terms, DEPTH, filters)
            runs["fused"] += _time(repeats, retrieve, backend, vector, terms, filters, settings)
        figures[name] = {kind: latency_stats(samples) for kind, samples in runs.items()}
    return figures


def _load(data: IndexData, uri: str) -> tuple[MilvusClient, dict[str, float]]:
    """Sync ``data`` into a fresh collection, then once more unchanged; both timed."""
    client = connect(uri)
    started = time.perf_counter()
    report = sync_collection(client, data, "bench", progress=True)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    again = sync_collection(client, data, "bench", progress=False)
    resync_s = time.perf_counter() - started
    assert report.rows == len(data.passages) and not again.changed
    return client, {"load_s": round(load_s, 2), "resync_unchanged_s": round(resync_s, 3)}


def bench_bundled(repeats: int, tmp: Path) -> dict[str, object]:
    """The bundled corpus: load, latency and top-answer agreement over the dev questions."""
    from qa.answer.reader import Reader
    from qa.embedding.embedder import Embedder
    from qa.embedding.packaged import DEFAULT_MODEL
    from qa.engine import Engine

    questions = [
        json.loads(line)
        for line in (ROOT / "data" / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    local_engine = Engine.open(ROOT / "data" / "corpus", tmp / "index", progress=False)
    data = load_index(tmp / "index")
    client, load = _load(data, str(tmp / "bundled.db"))
    milvus = MilvusRetriever(client, "bench")
    local = LocalRetriever(data, PassageFilter(data, local_engine.outlets))

    embedder = Embedder(DEFAULT_MODEL)
    queries = []
    for q in questions:
        vector = embedder.encode([q["question"]])[0]
        queries.append((vector, [(t, 1.0) for t in data.lexical.terms(q["question"])]))
    latency = _latencies({"local": local, "milvus_lite": milvus}, queries, QueryFilters(), repeats)

    def outcome(engine: Engine, q: dict) -> tuple[tuple[str, str, int] | None, list[int]]:
        """The top answer (text, cited article, offset) and the ids of the top 5 fused passages."""
        result = engine.ask(q["question"], history=q.get("history", []))
        passages = [p.passage_id for p in result.passages[:5]]
        if result.abstained:
            return None, passages
        answer = result.answers[0]
        return (answer.text, answer.citations[0].doc_id, answer.citations[0].start), passages

    reader = Reader(None)
    expected = {q["id"]: outcome(local_engine, q) for q in questions}
    agreement = {}
    for label, kind in (
        ("repeated_by_weight", MilvusRetriever),
        ("every_term_once", UnweightedMilvus),
        ("question_terms_only", QuestionOnlyMilvus),
    ):
        engine = Engine(data, embedder, Settings(), (), reader, kind(client, "bench"))
        found = {q["id"]: outcome(engine, q) for q in tqdm(questions, desc=label, file=sys.stderr)}
        follow_ups = [q["id"] for q in questions if q.get("history")]
        agreement[label] = {
            "same_top_answer": sum(found[i][0] == expected[i][0] for i in found),
            "differing_top_answer": [i for i in found if found[i][0] != expected[i][0]],
            "same_top5_passages": sum(found[i][1] == expected[i][1] for i in found),
            "same_top5_passages_follow_ups": sum(found[i][1] == expected[i][1] for i in follow_ups),
        }
    return {
        "passages": len(data.passages),
        "questions": len(questions),
        "follow_ups": sum(1 for q in questions if q.get("history")),
        **load,
        "latency_ms": latency,
        "agreement_with_local": agreement,
    }


class RandomEncoder:
    """Random unit vectors, one per text (seeded by the text): the backends are measured, not the model."""

    model_id = "random-unit-vectors"

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = np.random.default_rng(zlib.crc32(text.encode("utf-8"))).standard_normal(DIMENSION)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class NoEntities(EntityTagger):
    """No named entities: retrieval does not read them, and spaCy would dominate the build."""

    @property
    def version(self) -> str:
        return "none"

    def tag(self, sentences: Sequence[str], progress: bool = False) -> np.ndarray:
        return np.zeros((0, 4), dtype=np.int64)


def synthetic_index(size: int, folder: Path) -> IndexData:
    """An index of ``size`` synthetic passages (one article each), built and loaded as the engine's own."""
    rng = np.random.default_rng(0)
    words = _synthetic_words(rng)
    ranks = np.minimum(rng.zipf(1.1, size=(size, 100)) - 1, len(words) - 1)
    dates = [
        (dt.date(2020, 1, 1) + dt.timedelta(days=int(d))).isoformat() for d in rng.integers(0, 366, size)
    ]
    articles = [
        Article(f"doc{i}", " ".join(words[ranks[i]]), OUTLETS[i % 3], dates[i], "", "") for i in range(size)
    ]
    settings = Settings()
    spec = IndexSpec(
        RandomEncoder.model_id, f"synthetic-{size}", settings.sentences_per_passage, settings.passage_stride
    )
    build_index(folder / "index", articles, spec, RandomEncoder(), progress=True, tagger=NoEntities())
    return load_index(folder / "index")


def bench_synthetic(size: int, repeats: int, tmp: Path) -> dict[str, object]:
    folder = tmp / f"synthetic-{size}"
    folder.mkdir()
    data = synthetic_index(size, folder)
    client, load = _load(data, str(folder / "milvus.db"))
    milvus = MilvusRetriever(client, "bench")
    local = LocalRetriever(data, PassageFilter(data, list(OUTLETS)))
    rng = np.random.default_rng(1)
    words = _synthetic_words(np.random.default_rng(0))
    queries = []
    for _ in range(QUERIES):
        vector = rng.standard_normal(DIMENSION).astype(np.float32)
        text = " ".join(words[rng.integers(0, 2000, size=int(rng.integers(5, 9)))])
        queries.append((vector / np.linalg.norm(vector), [(t, 1.0) for t in data.lexical.terms(text)]))
    backends = {"local": local, "milvus_lite": milvus}
    return {
        "passages": size,
        **load,
        "latency_ms": _latencies(backends, queries, QueryFilters(), repeats),
        "latency_ms_outlet_and_dates": _latencies(backends, queries, SYNTHETIC_FILTER, repeats),
    }


def bench_index_types(size: int, tmp: Path) -> dict[str, object]:
    """Dense search on lite with FLAT and with HNSW over ``size`` synthetic passages: latency and recall@10.

    Recall is against the exact local search (FAISS Flat up to 50k passages), on the same random queries.
    """
    folder = tmp / f"index-types-{size}"
    folder.mkdir()
    data = synthetic_index(size, folder)
    local = LocalRetriever(data, PassageFilter(data, list(OUTLETS)))
    rng = np.random.default_rng(2)
    queries = rng.standard_normal((QUERIES, DIMENSION)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = [{pid for pid, _ in local.dense(q, 10, QueryFilters())} for q in queries]
    figures: dict[str, object] = {"passages": size}
    for index_type in ("FLAT", "HNSW"):
        client = connect(str(folder / f"{index_type.lower()}.db"))
        started = time.perf_counter()
        sync_collection(client, data, "bench", progress=False, index_type=index_type)
        load_s = time.perf_counter() - started
        milvus = MilvusRetriever(client, "bench")
        found = [{pid for pid, _ in milvus.dense(q, 10, QueryFilters())} for q in queries]
        times = [t for q in queries for t in _time(3, milvus.dense, q, DEPTH, QueryFilters())]
        figures[index_type] = {
            "load_s": round(load_s, 2),
            "dense_top50": latency_stats(times),
            "recall_at_10": round(
                float(np.mean([len(f & t) / 10 for f, t in zip(found, truth, strict=True)])), 4
            ),
        }
        client.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Measure the Milvus backend on milvus-lite against FAISS + tantivy: load time, "
        "dense/BM25/fused latency and answer agreement; writes benchmarks/results/milvus.json.",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[10_000], help="synthetic sizes in passages (default 10000)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each query (default 3)")
    parser.add_argument(
        "--index-sizes",
        type=int,
        nargs="*",
        default=[10_000, 50_000],
        help="synthetic sizes at which FLAT and HNSW are compared on lite (default 10000 50000)",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    note = "shared 2-core machine with other jobs running: compare ratios within this run"
    results: dict[str, object] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": milvus_machine(note),
    }
    with tempfile.TemporaryDirectory() as tmp:
        results["bundled"] = bench_bundled(args.repeats, Path(tmp))
        results["synthetic"] = [bench_synthetic(size, args.repeats, Path(tmp)) for size in args.sizes]
        results["index_types"] = [bench_index_types(size, Path(tmp)) for size in args.index_sizes]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "milvus.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    print("| set | passages | load s | backend | dense p50/p95 ms | BM25 p50/p95 ms | fused p50/p95 ms |")
    print("|---|---|---|---|---|---|---|")
    rows = [("bundled", results["bundled"], "latency_ms")]
    for entry in results["synthetic"]:
        rows += [
            ("synthetic", entry, "latency_ms"),
            ("synthetic, filtered", entry, "latency_ms_outlet_and_dates"),
        ]
    for label, entry, key in rows:
        for backend, figures in entry[key].items():
            cells = " | ".join(
                f"{figures[k]['median_ms']} / {figures[k]['p95_ms']}" for k in ("dense", "bm25", "fused")
            )
            print(f"| {label} | {entry['passages']:,} | {entry['load_s']} | {backend} | {cells} |")
    print(json.dumps(results["bundled"]["agreement_with_local"], indent=2))
    print("| passages | index | load s | dense top-50 p50 / p95 ms | recall@10 |")
    print("|---|---|---|---|---|")
    for entry in results["index_types"]:
        for index_type in ("FLAT", "HNSW"):
            f = entry[index_type]
            latency = f["dense_top50"]
            print(
                f"| {entry['passages']:,} | {index_type} | {f['load_s']} "
                f"| {latency['median_ms']} / {latency['p95_ms']} | {f['recall_at_10']} |"
            )
    print(f"wrote {RESULTS / 'milvus.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
