"""Benchmark: the embedding job in process against Ray Data on this machine.

Encodes the same passages (the bundled corpus's sentences, repeated and
numbered to ``--passages``) with the in-process Embedder, then with a
RayEmbedder over a local Ray with 1 and 2 workers, and times Ray's start-up
(``ray.init``) on its own. One machine gains nothing from Ray: the figure that
matters is what the cluster path costs per job (start-up, one model load per
worker) against the passages/s a worker reaches.

Writes ``benchmarks/results/ray.json``; prints the figures. Timings depend on
the machine and its load: compare within one run.

Usage: python benchmarks/bench_ray.py [--passages 1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from qa.embedding.embedder import Embedder
from qa.embedding.ray_job import RayEmbedder, connect

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CORPUS = ROOT / "data" / "corpus"


def _passages(count: int) -> list[str]:
    """``count`` distinct passage-length texts: runs of 3 corpus lines, numbered."""
    lines = [
        line.strip()
        for path in sorted(CORPUS.glob("*.txt"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return [f"{i}. " + " ".join(lines[(3 * i + k) % len(lines)] for k in range(3)) for i in range(count)]


def _timed(encode, texts: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = encode(texts)
    return time.perf_counter() - started, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1000, help="texts to encode (default 1000)")
    args = parser.parse_args()
    texts = _passages(args.passages)

    local = Embedder()
    local.dimension  # noqa: B018 - load outside the timing, as a build's driver has it loaded
    seconds, expected = _timed(local.encode, texts)
    runs = [{"backend": "in-process Embedder", "workers": None, "seconds": round(seconds, 2)}]

    started = time.perf_counter()
    connect("local")
    startup = time.perf_counter() - started
    for workers in (1, 2):
        remote = RayEmbedder("local", workers=workers)
        # Each call starts its actors and loads the model in each afresh: a
        # call with one text per worker is that fixed cost alone.
        fixed, _ = _timed(remote.encode, texts[:workers])
        seconds, vectors = _timed(remote.encode, texts)
        assert np.allclose(vectors, expected, atol=1e-5), "Ray vectors differ from the in-process ones"
        runs.append(
            {
                "backend": "RayEmbedder local",
                "workers": workers,
                "seconds": round(seconds, 2),
                "fixed_cost_s": round(fixed, 2),
                "passages_per_s_after_start": round(args.passages / max(seconds - fixed, 1e-9), 1),
            }
        )
    for run in runs:
        run["passages_per_s"] = round(args.passages / run["seconds"], 1)

    result = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "passages": args.passages,
        "ray_startup_s": round(startup, 2),
        "runs": runs,
        "note": "Ray times include starting the workers and one model load each; "
        "the machine was shared with other jobs (load_avg at the end)",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ray.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
