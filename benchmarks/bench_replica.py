"""Benchmark: thin Milvus replicas (no index folder, no corpus) against the full index, on milvus-lite.

Measures, and writes to ``benchmarks/results/replica.json``:

1. the bundled corpus and its 55 dev questions: how many get the same top
   answer (text, article, offsets, outlet, date) from a replica as from the
   embedded default (FAISS + tantivy), and how many get the very same result
   as an engine with the index folder retrieving from the same collection; the
   per-question latency of the three (median, p95), each as a ratio to the
   floor: encoding the question with the packaged model on one thread
   (ONNX Runtime, as the engine does), measured in the same run;
2. synthetic archives of growing size (one-sentence articles of ~100 Zipf words,
   random vectors, as in bench_milvus.py): the sync time (passages plus what a
   replica reads), then, in a fresh process each, the time a replica takes to
   open (connect, read the manifest) and to fetch the rows of 20 found
   passages, cold, against the time ``load_index`` takes to open the folder.
   On milvus-lite the first open also loads the collections into its server,
   which lives in the replica's process; ``open_loaded_s`` is a second open
   once they are loaded, the case of a replica joining a running server.

milvus-lite is a stand-in for a Milvus server (one process per file, pure
Python): the figures show what grows with the archive and what does not, not
a cluster's latency. Compare within one run.

Usage: python benchmarks/bench_replica.py [--sizes 1000 10000 50000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import latency_stats, milvus_machine  # noqa: E402

# Run in a fresh process per size: what a replica's start costs, with nothing cached.
_OPEN_REPLICA = """
import json, sys, time
import numpy as np
started = time.perf_counter()
from qa.retrieval.milvus import connect
from qa.retrieval.remote import open_remote
imported = time.perf_counter()
connect(sys.argv[1])  # on milvus-lite this starts its server process, which reads the file
served = time.perf_counter()
index, _ = open_remote(sys.argv[1], "bench")
opened = time.perf_counter()
rng = np.random.default_rng(0)
timings = []
for _ in range(3):
    pids = rng.choice(index.live_passages, size=min(20, index.live_passages), replace=False).tolist()
    before = time.perf_counter()
    index.prefetch(pids)
    texts = [index.sentence_text(index.passage_row(p).first_sentence) for p in pids]
    timings.append(time.perf_counter() - before)
before = time.perf_counter()
open_remote(sys.argv[1], "bench")
reopen = time.perf_counter() - before
figures = {
    "import_s": imported - started,
    "open_loaded_s": reopen,
    "milvus_lite_server_start_s": served - imported,
    "open_s": opened - served,
    "fetch_20_first_s": timings[0],
    "fetch_20_next_s": float(np.median(timings[1:])),
}
print(json.dumps(figures))
"""
_SYNC = """
import json, sys, time
from pathlib import Path
from qa.index.store import load_index
from qa.retrieval.milvus import connect, sync_collection
data = load_index(Path(sys.argv[1]) / "index")
client = connect(str(Path(sys.argv[1]) / "milvus.db"))
started = time.perf_counter()
sync_collection(client, data, "bench", progress=False)
print(json.dumps({"sync_s": time.perf_counter() - started}))
"""
_OPEN_FOLDER = """
import json, sys, time
started = time.perf_counter()
from qa.index.store import load_index
imported = time.perf_counter()
load_index(__import__("pathlib").Path(sys.argv[1]))
print(json.dumps({"import_s": imported - started, "open_s": time.perf_counter() - imported}))
"""


def _fresh(script: str, argument: str) -> dict[str, float]:
    env = os.environ | {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, argument], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"the fresh process failed:\n{done.stderr[-3000:]}")
    return {k: round(v, 3) for k, v in json.loads(done.stdout.splitlines()[-1]).items()}


def bench_bundled(tmp: Path, repeats: int) -> dict[str, object]:
    """Agreement and per-question latency on the bundled corpus: local, index + Milvus, replica."""
    from qa.engine import Engine

    questions = [
        json.loads(line)
        for line in (ROOT / "data" / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    uri = str(tmp / "bundled.db")
    local = Engine.open(ROOT / "data" / "corpus", tmp / "index", progress=False)
    started = time.perf_counter()
    fat = Engine.open(
        ROOT / "data" / "corpus", tmp / "index", progress=False, backend="milvus", uri=uri, sync=True
    )
    sync_s = time.perf_counter() - started
    started = time.perf_counter()
    replica = Engine.open(backend="milvus", uri=uri)
    open_s = time.perf_counter() - started
    engines = {"local": local, "index_and_milvus": fat, "replica": replica}

    def top(result: object) -> tuple | None:
        if result.abstained:
            return None
        answer, cited = result.answers[0], result.answers[0].citations[0]
        return answer.text, cited.doc_id, cited.start, cited.end, cited.outlet, cited.date

    results = {name: {} for name in engines}
    samples: dict[str, list[float]] = {name: [] for name in [*engines, "encode_floor"]}
    for _ in range(repeats):
        for q in questions:
            history = q.get("history", [])
            for name, engine in engines.items():
                t = time.perf_counter()
                results[name][q["id"]] = engine.ask(q["question"], history)
                samples[name].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            local.encoder.encode([q["question"]])
            samples["encode_floor"].append((time.perf_counter() - t) * 1000)
    same_top = [i for i in results["local"] if top(results["replica"][i]) == top(results["local"][i])]
    unlatched = {n: {i: replace(r, latency_ms=0) for i, r in found.items()} for n, found in results.items()}
    replica_found, fat_found = unlatched["replica"], unlatched["index_and_milvus"]
    identical = [i for i in replica_found if replica_found[i] == fat_found[i]]
    latency = {name: latency_stats(values) for name, values in samples.items()}
    floor = latency["encode_floor"]["median_ms"]
    return {
        "passages": local.manifest["counts"]["live_passages"],
        "questions": len(questions),
        "sync_s": round(sync_s, 2),
        "replica_open_s_with_model_and_reader": round(open_s, 2),
        "same_top_answer_as_local": len(same_top),
        "differing_from_local": sorted(set(results["local"]) - set(same_top)),
        "identical_result_to_index_and_milvus": len(identical),
        "latency_ms": latency,
        "median_ratio_to_encode_floor": {n: round(latency[n]["median_ms"] / floor, 1) for n in engines},
    }


def bench_size(size: int, tmp: Path) -> dict[str, object]:
    """Sync time, then a replica's and a folder's start in fresh processes, at ``size`` passages."""
    from bench_milvus import synthetic_index

    folder = tmp / f"synthetic-{size}"
    folder.mkdir()
    data = synthetic_index(size, folder)
    # Each Milvus step in its own process: milvus-lite lets one process at a time hold its file.
    return {
        "passages": size,
        "sentences": len(data.sentences),
        **_fresh(_SYNC, str(folder)),
        "replica_start": _fresh(_OPEN_REPLICA, str(folder / "milvus.db")),
        "folder_start": _fresh(_OPEN_FOLDER, str(folder / "index")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Measure thin Milvus replicas on milvus-lite: agreement with the full index, "
        "per-question latency against the encode floor, and start-up time by archive size; writes "
        "benchmarks/results/replica.json.",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[1_000, 10_000, 50_000], help="synthetic sizes in passages"
    )
    parser.add_argument("--repeats", type=int, default=3, help="times each dev question is asked (default 3)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict[str, object] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": milvus_machine("shared 2-core machine with other jobs running: compare within this run"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        results["bundled"] = bench_bundled(Path(tmp), args.repeats)
        results["by_size"] = [bench_size(size, Path(tmp)) for size in args.sizes]
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "replica.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    bundled = results["bundled"]
    print(
        f"bundled: same top answer as local {bundled['same_top_answer_as_local']}/{bundled['questions']}, "
        f"identical to index+Milvus {bundled['identical_result_to_index_and_milvus']}/{bundled['questions']}"
    )
    print(json.dumps(bundled["median_ratio_to_encode_floor"]))
    print("| passages | sync s | lite start s | open s: first / loaded | fetch 20 s: 1st / next | folder s |")
    print("|---|---|---|---|---|---|")
    for entry in results["by_size"]:
        r, f = entry["replica_start"], entry["folder_start"]
        fetch = f"{r['fetch_20_first_s']} / {r['fetch_20_next_s']}"
        start = r["milvus_lite_server_start_s"]
        opened = f"{r['open_s']} / {r['open_loaded_s']}"
        cells = [f"{entry['passages']:,}", entry["sync_s"], start, opened, fetch, f["open_s"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
