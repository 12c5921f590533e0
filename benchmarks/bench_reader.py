"""Benchmark: what the reader costs, as ratios to the question-encode floor.

The floor is what every answer must pay anyway: encoding the question with
the embedding model. Measured in one process, on the bundled corpus, over the
dev questions (each asked ``--repeats`` times, medians):

1. the floor: ``embedder.encode([question])``;
2. ``engine.ask`` without the reader, and with it in each configuration
   (int8 or float32 weights, how many candidates it reads);
3. cold start: wall time of ``qa ask QUESTION`` in a fresh process, against
   a fresh process that only loads the embedding model and encodes one
   question (the floor of a cold answer).

Writes ``benchmarks/results/reader.json`` and ``reader.png``; prints a table.
Timings depend on the machine and its load: compare the ratios of one run.

Usage: python benchmarks/bench_reader.py [--repeats 5] [--cold-runs 5]
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
CORPUS = ROOT / "data" / "corpus"
COLD_QUESTION = "Who is the director of Auckland Pride?"
_FLOOR_SCRIPT = "import sys; from qa.embedding.embedder import Embedder; Embedder().encode([sys.argv[1]])"


def _median_ms(samples: list[float]) -> float:
    return round(float(np.median(samples)) * 1000.0, 2)


def _questions() -> list[tuple[str, list[str]]]:
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["question"], r.get("history", [])) for r in rows]


def _warm(engine_open, repeats: int) -> dict:
    """Floor and answer times in this process."""
    from qa.answer.reader import Reader
    from qa.engine import Engine

    engine: Engine = engine_open()
    questions = _questions()
    embedder = engine.encoder  # the engine's own model: the floor it pays
    floor = []
    for _ in range(repeats):
        for text, _history in questions:
            start = time.perf_counter()
            embedder.encode([text])
            floor.append(time.perf_counter() - start)
    configs = {
        "no reader": (None, {}),
        "reader int8, 12 candidates (default)": (Reader(int8=True), {"reader_candidates": 12}),
        "reader int8, 8 candidates": (Reader(int8=True), {"reader_candidates": 8}),
        "reader int8, 5 candidates": (Reader(int8=True), {"reader_candidates": 5}),
        "reader float32, 12 candidates": (Reader(int8=False), {"reader_candidates": 12}),
    }
    answers = {}
    for name, (reader, changes) in configs.items():
        view = engine.with_reader(reader).with_settings(**changes)
        view.ask(questions[0][0])  # loads the reader; kept out of the figures
        times = []
        for _ in range(repeats):
            for text, history in questions:
                start = time.perf_counter()
                view.ask(text, history=history)
                times.append(time.perf_counter() - start)
        answers[name] = {
            "median_ms": _median_ms(times),
            "p95_ms": round(float(np.percentile(times, 95)) * 1000, 2),
        }
    floor_ms = _median_ms(floor)
    for figures in answers.values():
        figures["ratio_to_floor"] = round(figures["median_ms"] / floor_ms, 2)
    return {"floor_median_ms": floor_ms, "answers": answers}


def _wall(command: list[str], runs: int) -> float:
    times = []
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)), 3)


def _cold(index_dir: Path, runs: int) -> dict:
    python = sys.executable
    floor = _wall([python, "-c", _FLOOR_SCRIPT, COLD_QUESTION], runs)
    ask = [python, "-m", "qa", "ask", COLD_QUESTION, "--corpus", str(CORPUS), "--index", str(index_dir)]
    with_reader = _wall(ask, runs)
    without = _wall([*ask, "--reader", "none"], runs)
    return {
        "floor_process_s": floor,
        "qa_ask_s": with_reader,
        "qa_ask_no_reader_s": without,
        "ratio_to_floor": round(with_reader / floor, 2),
        "no_reader_ratio_to_floor": round(without / floor, 2),
    }


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    answers = results["warm"]["answers"]
    names = list(answers)
    ratios = [answers[n]["ratio_to_floor"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.barh(names, ratios, color=["#888"] + ["#3b7dd8"] * (len(names) - 1))
    for bar_limit, style, label in ((6, "--", "bar: 6x"), (3, ":", "goal: 3x")):
        ax.axvline(bar_limit, color="#c33", linestyle=style, label=label)
    ax.set(xlabel="median answer time / question-encode floor", title="Cost of an answer, dev questions")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="passes over the dev questions (default 5)")
    parser.add_argument(
        "--cold-runs", type=int, default=5, help="fresh processes per cold figure (default 5)"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from qa.engine import Engine

    with tempfile.TemporaryDirectory(prefix="qa-bench-reader-") as tmp:
        index_dir = Path(tmp) / "index"
        Engine.open(CORPUS, index_dir, progress=False, reader="none")
        warm = _warm(lambda: Engine.open(CORPUS, index_dir, progress=False), args.repeats)
        cold = _cold(index_dir, args.cold_runs)
    results = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "repeats": args.repeats,
        "warm": warm,
        "cold": cold,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reader.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    _plot(results, RESULTS / "reader.png")
    print(f"floor (question encode): {warm['floor_median_ms']} ms")
    print("| configuration | median ms | p95 ms | x floor |\n|---|---|---|---|")
    for name, f in warm["answers"].items():
        print(f"| {name} | {f['median_ms']} | {f['p95_ms']} | {f['ratio_to_floor']} |")
    print(
        f"cold: qa ask {cold['qa_ask_s']} s, without reader {cold['qa_ask_no_reader_s']} s, "
        f"load model + encode one question {cold['floor_process_s']} s: {cold['ratio_to_floor']}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
